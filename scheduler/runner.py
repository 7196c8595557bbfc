"""Runs a job's stages, each in a child process the worker can stop (cancel) and that dies with the worker."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from retrain_lib.parameters import STAGES
from retrain_lib.report import finish_job, mark_stage, read_report, start_job
from scheduler.store import CANCELLED, FAILED, RUNNING, SUCCEEDED, Job, JobStore

STAGE_QUEUES = {"01_upload": "cpu", "02_train": "gpu", "03_convert": "cpu", "04_package": "docker"}
JOB_FILE = "job.json"
HEARTBEAT_S = 1.0
STALE_HEARTBEAT_S = 120.0
_PR_SET_PDEATHSIG = 1


def write_job_file(job: Job) -> None:
    """Writes what a stage process needs to know about its job into the job folder."""
    path = Path(job.job_dir) / JOB_FILE
    path.write_text(json.dumps({"id": job.id, "task": job.task, "data_path": job.data_path, "params": job.params}))


def _die_with_parent() -> None:
    """In the child: receive SIGKILL when the worker dies, and lead a process group of its own."""
    os.setsid()
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def run_stage_process(store: JobStore, job: Job, stage: str, poll_s: float = HEARTBEAT_S) -> tuple[str, str | None]:
    """Runs `python -m scheduler.stage_main JOB_DIR STAGE`, heart-beating and honouring cancel requests.

    Returns:
        (succeeded | failed | cancelled, error message or None).
    """
    job_dir = Path(job.job_dir)
    log_path = job_dir / "logs" / f"{stage}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        child = subprocess.Popen([sys.executable, "-m", "scheduler.stage_main", str(job_dir), stage],
                                 stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent,
                                 cwd=Path(__file__).resolve().parent.parent)
        while True:
            try:
                code = child.wait(timeout=poll_s)
                break
            except subprocess.TimeoutExpired:
                if store.heartbeat(job.id):
                    _stop(child)
                    mark_stage(job_dir, stage, "cancelled", "cancelled by the user")
                    return CANCELLED, "cancelled by the user"
    if code == 0:
        return SUCCEEDED, None
    entry = read_report(job_dir).get("stages", {}).get(stage, {})
    error = entry.get("error") or f"the stage process exited with code {code} (see logs/{stage}.log)"
    if entry.get("status") != "failed":
        mark_stage(job_dir, stage, "failed", error)
    return FAILED, error


def _stop(child: subprocess.Popen, grace_s: float = 5.0) -> None:
    """Stops the stage process and everything it started (the Jupyter kernel too)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(child.pid, sig)
        except ProcessLookupError:
            return
        try:
            child.wait(timeout=grace_s)
            return
        except subprocess.TimeoutExpired:
            continue


def run_job_stages(store: JobStore, job: Job, worker: str,
                   run_stage: Callable[[JobStore, Job, str], tuple[str, str | None]] = run_stage_process,
                   stages: tuple[str, ...] = STAGES) -> str:
    """Runs the job's stages in order, skipping those that already succeeded (a retry resumes)."""
    write_job_file(job)
    start_job(Path(job.job_dir), job.task, list(STAGES))
    done = read_report(Path(job.job_dir)).get("stages", {})
    for stage in stages:
        if done.get(stage, {}).get("status") == SUCCEEDED:
            continue
        store.start_stage(job.id, stage, worker, STAGE_QUEUES[stage])
        status, error = run_stage(store, job, stage)
        store.end_stage(job.id, stage, status, error)
        if status != SUCCEEDED:
            store.finish(job.id, status, error, stage)
            return status
    store.finish(job.id, SUCCEEDED)
    finish_job(Path(job.job_dir))
    return SUCCEEDED


def recover_dead_workers(store: JobStore) -> list[str]:
    """Marks failed every running job whose worker is gone (killed, out of memory); returns their ids.

    A worker on this host is gone when its pid no longer exists; elsewhere when its heartbeat is stale.
    """
    import socket

    host = socket.gethostname()
    recovered = []
    for job in store.list((RUNNING,)):
        if job.worker_pid is None:
            continue
        if job.worker_host == host:
            alive = _pid_alive(job.worker_pid)
        else:
            alive = job.heartbeat is not None and time.time() - job.heartbeat < STALE_HEARTBEAT_S
        if alive:
            continue
        error = (f"the worker {job.worker} stopped during stage {job.stage} (killed or out of memory); "
                 f"retry resumes from that stage")
        store.finish(job.id, FAILED, error, job.stage)
        if job.stage:
            mark_stage(Path(job.job_dir), job.stage, "failed", error)
        recovered.append(job.id)
    return recovered


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ", 1)[-1].startswith("Z"))
