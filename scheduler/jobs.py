"""What users do with jobs: submit (checked first), list, show, logs, cancel, retry."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from retrain_lib.archive import is_archive
from retrain_lib.errors import input_error
from retrain_lib.parameters import check_parameters
from retrain_lib.progress import read_progress
from retrain_lib.report import read_report
from scheduler.store import CANCELLED, FAILED, RUNNING, Job, JobStore, new_job_id

DEFAULT_HOME = Path.home() / ".coral-retrain"


def retrain_home() -> Path:
    """The data folder: $RETRAIN_HOME, or ~/.coral-retrain."""
    return Path(os.environ.get("RETRAIN_HOME", DEFAULT_HOME))


def open_store(home: Path | None = None) -> JobStore:
    return JobStore((home or retrain_home()) / "jobs.sqlite")


BACKENDS = ("local", "celery")


def default_backend() -> str:
    """$RETRAIN_BACKEND, or "local"."""
    return os.environ.get("RETRAIN_BACKEND", "local")


def submit_job(data_path: Path, task: str, params: dict[str, Any] | None = None, owner: str = "",
               home: Path | None = None, backend: str | None = None) -> Job:
    """Checks the parameters, copies the upload into a new job folder and queues the job.

    Raises:
        InputError: bad parameters or a missing upload; nothing is queued.
    """
    home = home or retrain_home()
    backend = backend or default_backend()
    if backend not in BACKENDS:
        raise input_error("backend", f"is {backend!r}", f"use one of {', '.join(BACKENDS)}")
    data_path = Path(data_path)
    checked = check_parameters({**(params or {}), "task": task})
    checked.pop("task")
    if not data_path.exists():
        raise input_error(str(data_path), "does not exist", "give the path of a dataset folder or archive")
    job_id = new_job_id()
    job_dir = home / "jobs" / job_id
    upload_dir = job_dir / "upload"
    upload_dir.mkdir(parents=True)
    target = upload_dir / data_path.name
    if is_archive(data_path) or data_path.is_file():
        shutil.copy2(data_path, target)
    else:
        shutil.copytree(data_path, target, symlinks=False)
    job = open_store(home).add(job_id, owner or os.environ.get("USER", "user"), task, str(target), str(job_dir),
                               checked, backend)
    if backend == "celery":
        from scheduler.celery_backend import dispatch

        dispatch(job)
    return job


def cancel_job(job_id: str, home: Path | None = None) -> str:
    """Cancels a queued job, or asks the running job's worker to stop within seconds."""
    return open_store(home).request_cancel(job_id)


def retry_job(job_id: str, home: Path | None = None) -> Job:
    """Queues a failed or cancelled job again; stages that succeeded are not redone."""
    store = open_store(home)
    job = store.get(job_id)
    if job is None:
        raise input_error(f"job {job_id}", "does not exist", "see `retrain list` for job ids")
    if job.state not in (FAILED, CANCELLED):
        raise input_error(f"job {job_id}", f"is {job.state}", "only failed or cancelled jobs can be retried")
    store.requeue(job_id)
    job = store.get(job_id)
    if job.backend == "celery":
        from scheduler.celery_backend import dispatch

        dispatch(job)
    return job


def job_summary(job: Job) -> dict[str, Any]:
    """The job as `retrain show --json` prints it: store state plus what its folder says."""
    report = read_report(Path(job.job_dir))
    progress = read_progress(Path(job.job_dir)) if job.state == RUNNING else None
    return {
        "id": job.id, "state": job.state, "stage": job.stage, "error": job.error, "error_stage": job.error_stage,
        "task": job.task, "owner": job.owner, "created": job.created, "started": job.started,
        "finished": job.finished, "attempts": job.attempts, "job_dir": job.job_dir, "params": job.params,
        "progress": progress, "stages": job.stages, "metrics": report.get("metrics", {}),
        "artifacts": report.get("artifacts", {}), "packaging": report.get("packaging", {}),
        "pull_command": report.get("packaging", {}).get("commands", {}).get("pull"),
    }


def job_logs(job: Job) -> str:
    """Every stage log of the job, in stage order."""
    log_dir = Path(job.job_dir) / "logs"
    if not log_dir.is_dir():
        return ""
    return "\n".join(f"===== {p.stem} =====\n{p.read_text(errors='replace')}" for p in sorted(log_dir.glob("*.log")))
