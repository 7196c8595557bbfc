"""The Celery backend: each stage is a task on its own queue (cpu, gpu, docker), on any machine.

Workers share the job folders and the SQLite store through a shared path (RETRAIN_HOME on NFS or
similar); the broker is Redis (RETRAIN_BROKER_URL). A finished stage sends the next stage's task to
that stage's queue, so a GPU machine takes training and a Docker host takes packaging.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from celery import Celery

from retrain_lib.parameters import STAGES
from retrain_lib.report import finish_job, read_report, start_job
from scheduler.jobs import open_store, retrain_home
from scheduler.runner import STAGE_QUEUES, run_stage_process, write_job_file
from scheduler.store import SUCCEEDED, Job

DEFAULT_BROKER = "redis://127.0.0.1:6379/0"
app = Celery("coral_retrain", broker=os.environ.get("RETRAIN_BROKER_URL", DEFAULT_BROKER))
app.conf.update(task_acks_late=True, worker_prefetch_multiplier=1, task_default_queue="cpu",
                broker_connection_retry_on_startup=True, worker_hijack_root_logger=False,
                task_ignore_result=True, broker_transport_options={"visibility_timeout": 24 * 3600})


def dispatch(job: Job) -> None:
    """Sends the job's first unfinished stage to its queue."""
    write_job_file(job)
    start_job(Path(job.job_dir), job.task, list(STAGES))
    done = read_report(Path(job.job_dir)).get("stages", {})
    pending = [s for s in STAGES if done.get(s, {}).get("status") != SUCCEEDED]
    home = str(Path(job.job_dir).parent.parent)
    if pending:
        run_stage_task.apply_async(args=(job.id, pending[0], home), queue=STAGE_QUEUES[pending[0]])


@app.task(name="retrain.run_stage", bind=True)
def run_stage_task(self, job_id: str, stage: str, home: str) -> str:
    """Runs one stage of one job on this worker, then queues the next stage."""
    store = open_store(Path(home))
    worker = self.request.hostname or socket.gethostname()
    if not store.claim(job_id, worker, socket.gethostname(), os.getpid()):
        return "skipped"
    job = store.get(job_id)
    store.start_stage(job_id, stage, worker, STAGE_QUEUES[stage])
    status, error = run_stage_process(store, job, stage)
    store.end_stage(job_id, stage, status, error)
    if status != SUCCEEDED:
        store.finish(job_id, status, error, stage)
        return status
    remaining = STAGES[STAGES.index(stage) + 1:]
    if remaining:
        run_stage_task.apply_async(args=(job_id, remaining[0], home), queue=STAGE_QUEUES[remaining[0]])
    else:
        store.finish(job_id, SUCCEEDED)
        finish_job(Path(job.job_dir))
    return status


def run_celery_worker(queues: list[str], name: str = "") -> None:
    """Runs a Celery worker taking `queues`, one stage at a time."""
    os.environ.setdefault("RETRAIN_HOME", str(retrain_home()))
    argv = ["worker", "--queues", ",".join(queues), "--concurrency", "1", "--pool", "solo", "--loglevel", "INFO"]
    if name:
        argv += ["--hostname", name]
    app.worker_main(argv)
