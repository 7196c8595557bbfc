"""The Celery backend with a real redis-server and two real workers: stages go to the queues they belong to."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from retrain_lib.report import read_report
from retrain_lib.synthetic import make_shapes_classification
from scheduler.jobs import open_store, submit_job
from tests.conftest import PROJECT_DIR, free_port

pytestmark = pytest.mark.slow


@pytest.fixture
def redis_url(tmp_path):
    server = shutil.which("redis-server")
    assert server, "redis-server must be installed (run-tests installs it with scripts/services.sh)"
    port = free_port()
    process = subprocess.Popen([server, "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                                "--appendonly", "no", "--dir", str(tmp_path)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.1)
    yield f"redis://127.0.0.1:{port}/0"
    process.terminate()
    process.wait(timeout=20)


def _celery_worker(name: str, queues: str, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "retrain_lib.cli", "worker", "--backend", "celery",
                             "--queues", queues, "--name", name], cwd=PROJECT_DIR, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def test_stages_run_on_the_workers_of_their_queues(tmp_path, redis_url, monkeypatch):
    home = tmp_path / "shared-home"
    env = {**os.environ, "RETRAIN_HOME": str(home), "RETRAIN_BROKER_URL": redis_url}
    monkeypatch.setenv("RETRAIN_HOME", str(home))
    monkeypatch.setenv("RETRAIN_BROKER_URL", redis_url)
    data = make_shapes_classification(tmp_path / "shapes", images_per_class=10, size=64)
    workers = [_celery_worker("cpuworker@%h", "cpu,docker", env), _celery_worker("gpuworker@%h", "gpu", env)]
    try:
        import scheduler.celery_backend as backend

        backend.app.conf.broker_url = redis_url
        job = submit_job(data, "classification", {"input_size": 96, "head_epochs": 2, "fine_tune": False,
                                                  "augment_views": 0, "build_image": False,
                                                  "min_int8_agreement": 0.5}, backend="celery")
        store = open_store(home)
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and store.get(job.id).state not in ("succeeded", "failed"):
            time.sleep(1)
    finally:
        for worker in workers:
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGTERM)
        for worker in workers:
            try:
                worker.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
    done = store.get(job.id)
    assert done.state == "succeeded", done.error
    ran_on = {run["stage"]: (run["worker"], run["queue"]) for run in done.stages}
    assert ran_on["02_train"][0].startswith("gpuworker@") and ran_on["02_train"][1] == "gpu"
    for stage in ("01_upload", "03_convert", "04_package"):
        assert ran_on[stage][0].startswith("cpuworker@"), (stage, ran_on[stage])
    assert ran_on["04_package"][1] == "docker"
    assert read_report(Path(done.job_dir))["status"] == "succeeded"
