"""The local backend: worker processes on this machine taking jobs from the SQLite store in order."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from scheduler.jobs import open_store, retrain_home
from scheduler.runner import recover_dead_workers, run_job_stages
from scheduler.store import this_worker


def run_worker(home: Path | None = None, poll_s: float = 1.0, stop_when_idle: bool = False) -> None:
    """Takes queued jobs one at a time, oldest first, until stopped (or idle, with `stop_when_idle`)."""
    store = open_store(home)
    worker, host, pid = this_worker()
    stopping = False

    def request_stop(_signum, _frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, request_stop)
    while not stopping:
        recover_dead_workers(store)
        job = store.claim_next(worker, host, pid)
        if job is None:
            if stop_when_idle:
                return
            time.sleep(poll_s)
            continue
        print(f"{worker}: job {job.id} started", flush=True)
        state = run_job_stages(store, job, worker)
        print(f"{worker}: job {job.id} {state}", flush=True)


def start_worker_process(home: Path | None = None, log_path: Path | None = None) -> subprocess.Popen:
    """Starts `retrain worker` as a process of its own session: it outlives the caller (the dashboard)."""
    home = home or retrain_home()
    log_path = log_path or home / "worker.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "RETRAIN_HOME": str(home)}
    with open(log_path, "ab") as log:
        return subprocess.Popen([sys.executable, "-m", "retrain_lib.cli", "worker", "--backend", "local"],
                                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
                                cwd=Path(__file__).resolve().parent.parent)
