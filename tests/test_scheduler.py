"""The job queue with real worker processes: order, cancel, a killed worker, retry, bad parameters."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from retrain_lib.errors import InputError
from retrain_lib.report import read_report
from retrain_lib.synthetic import make_shapes_classification
from scheduler.jobs import cancel_job, open_store, retry_job, submit_job
from tests.conftest import PROJECT_DIR

pytestmark = pytest.mark.slow
TINY = {"input_size": 96, "head_epochs": 2, "fine_tune": False, "augment_views": 0, "build_image": False,
        "min_int8_agreement": 0.5}
SLOW_TRAIN = {"input_size": 96, "head_epochs": 3, "fine_tune_epochs": 150, "patience": 100, "augment_views": 1,
              "build_image": False, "min_int8_agreement": 0.5}


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("RETRAIN_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    return make_shapes_classification(tmp_path_factory.mktemp("shapes") / "shapes", images_per_class=30, size=64)


def _start_worker(home: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "retrain_lib.cli", "worker", "--backend", "local"],
                            cwd=PROJECT_DIR, env={**os.environ, "RETRAIN_HOME": str(home)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def _wait_for(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}")


def _stop(worker: subprocess.Popen) -> None:
    if worker.poll() is None:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)


def test_bad_parameters_are_refused_and_nothing_is_queued(home, shapes):
    for params, fragment in (({"epochs": 3}, "not a parameter of any stage"),
                             ({"head_epochs": "many"}, "not a int"),
                             ({"head_epochs": -1}, "outside the range")):
        with pytest.raises(InputError, match=fragment):
            submit_job(shapes, "classification", params)
    assert open_store(home).list() == []
    done = subprocess.run([sys.executable, "-m", "retrain_lib.cli", "submit", str(shapes), "--task", "classification",
                           "--set", "fine_tune_epochs=-5"], cwd=PROJECT_DIR, capture_output=True, text=True,
                          env={**os.environ, "RETRAIN_HOME": str(home)}, timeout=120)
    assert done.returncode == 2 and "fine_tune_epochs" in done.stderr
    assert open_store(home).list() == []


def test_five_jobs_succeed_in_submission_order(home, shapes):
    ids = [submit_job(shapes, "classification", TINY).id for _ in range(5)]
    worker = _start_worker(home)
    try:
        store = open_store(home)
        _wait_for(lambda: all(store.get(i).state in ("succeeded", "failed") for i in ids), 900, "five jobs")
    finally:
        _stop(worker)
    jobs = [store.get(i) for i in ids]
    assert [j.state for j in jobs] == ["succeeded"] * 5, [j.error for j in jobs]
    starts = [j.started for j in jobs]
    assert starts == sorted(starts)
    for earlier, later in zip(jobs, jobs[1:], strict=False):
        assert earlier.finished <= later.started
    report = read_report(Path(jobs[0].job_dir))
    assert report["status"] == "succeeded" and report["packaging"]["status"] == "skipped"
    shown = subprocess.run([sys.executable, "-m", "retrain_lib.cli", "show", ids[0], "--json"], cwd=PROJECT_DIR,
                           capture_output=True, text=True, env={**os.environ, "RETRAIN_HOME": str(home)}, timeout=120)
    summary = json.loads(shown.stdout)
    assert summary["id"] == ids[0] and summary["state"] == "succeeded" and summary["error"] is None
    assert "stage" in summary and summary["metrics"]["int8"]["accuracy"] >= 0


def test_cancel_while_training_then_the_next_job_starts(home, shapes):
    slow = submit_job(shapes, "classification", SLOW_TRAIN)
    quick = submit_job(shapes, "classification", TINY)
    worker = _start_worker(home)
    store = open_store(home)
    try:
        _wait_for(lambda: (Path(slow.job_dir) / "progress.json").exists(), 300, "training to start")
        assert store.get(slow.id).stage == "02_train"
        cancel_job(slow.id)
        asked = time.monotonic()
        _wait_for(lambda: store.get(slow.id).state == "cancelled", 30, "the cancel")
        assert time.monotonic() - asked < 15
        _wait_for(lambda: store.get(quick.id).state in ("running", "succeeded"), 60, "the next job")
    finally:
        _stop(worker)
    assert read_report(Path(slow.job_dir))["stages"]["02_train"]["status"] == "cancelled"


def test_killed_worker_fails_the_job_and_retry_resumes_from_train(home, shapes):
    job = submit_job(shapes, "classification", SLOW_TRAIN)
    store = open_store(home)
    worker = _start_worker(home)
    try:
        _wait_for(lambda: (Path(job.job_dir) / "progress.json").exists(), 300, "training to start")
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)
    finally:
        _stop(worker)
    upload = read_report(Path(job.job_dir))["stages"]["01_upload"]
    manifest_mtime = (Path(job.job_dir) / "dataset" / "manifest.csv").stat().st_mtime_ns
    second = _start_worker(home)
    try:
        failed = _wait_for(lambda: store.get(job.id) if store.get(job.id).state == "failed" else None, 60,
                           "the job to be marked failed")
        assert failed.error_stage == "02_train" and "killed or out of memory" in failed.error
        assert read_report(Path(job.job_dir))["stages"]["02_train"]["status"] == "failed"
        retry_job(job.id, home)
        _wait_for(lambda: store.get(job.id).state in ("succeeded", "failed"), 600, "the retry")
    finally:
        _stop(second)
    done = store.get(job.id)
    assert done.state == "succeeded", done.error
    report = read_report(Path(job.job_dir))
    assert report["stages"]["01_upload"] == upload, "upload must not run again"
    assert (Path(job.job_dir) / "dataset" / "manifest.csv").stat().st_mtime_ns == manifest_mtime
    assert [r["stage"] for r in done.stages if r["attempt"] == 2] == ["02_train", "03_convert", "04_package"]
