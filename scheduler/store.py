"""The SQLite job store: jobs, their state and per-stage runs, safe for many processes at once.

States: queued -> running (with the current stage) -> succeeded | failed | cancelled.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = "queued", "running", "succeeded", "failed", "cancelled"
FINAL_STATES = (SUCCEEDED, FAILED, CANCELLED)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT UNIQUE NOT NULL,
    owner TEXT NOT NULL,
    task TEXT NOT NULL,
    data_path TEXT NOT NULL,
    job_dir TEXT NOT NULL,
    params TEXT NOT NULL,
    state TEXT NOT NULL,
    stage TEXT,
    error TEXT,
    error_stage TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    worker TEXT,
    worker_host TEXT,
    worker_pid INTEGER,
    heartbeat REAL,
    created TEXT NOT NULL,
    started TEXT,
    finished TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    backend TEXT NOT NULL DEFAULT 'local'
);
CREATE TABLE IF NOT EXISTS stage_runs (
    job_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    stage TEXT NOT NULL,
    status TEXT NOT NULL,
    worker TEXT,
    queue TEXT,
    start TEXT,
    end TEXT,
    error TEXT,
    PRIMARY KEY (job_id, attempt, stage)
);
"""


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def new_job_id() -> str:
    """A sortable, readable id: 20261121-075512-1a2b3c."""
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]


def this_worker() -> tuple[str, str, int]:
    """(worker name, host, pid) of the calling process."""
    host = socket.gethostname()
    return f"{host}:{os.getpid()}", host, os.getpid()


@dataclass
class Job:
    """One row of the store."""

    id: str
    owner: str
    task: str
    data_path: str
    job_dir: str
    params: dict[str, Any]
    state: str
    stage: str | None
    error: str | None
    error_stage: str | None
    cancel_requested: bool
    worker: str | None
    worker_host: str | None
    worker_pid: int | None
    heartbeat: float | None
    created: str
    started: str | None
    finished: str | None
    attempts: int
    backend: str = "local"
    stages: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


class JobStore:
    """Jobs in one SQLite file (WAL mode; every write in its own short transaction)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.executescript(_SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA busy_timeout=30000")
            yield db
        finally:
            db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def add(self, job_id: str, owner: str, task: str, data_path: str, job_dir: str, params: dict[str, Any],
            backend: str = "local") -> Job:
        with self._transaction() as db:
            db.execute("INSERT INTO jobs (id, owner, task, data_path, job_dir, params, state, created, backend) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (job_id, owner, task, data_path, job_dir, json.dumps(params), QUEUED, now(), backend))
        return self.get(job_id)

    def get(self, job_id: str) -> Job | None:
        with self._connect() as db:
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                return None
            stages = [dict(r) for r in db.execute(
                "SELECT * FROM stage_runs WHERE job_id = ? ORDER BY attempt, start", (job_id,))]
        return _job(row, stages)

    def list(self, states: tuple[str, ...] | None = None) -> list[Job]:
        with self._connect() as db:
            rows = db.execute("SELECT * FROM jobs ORDER BY seq").fetchall()
        return [_job(r) for r in rows if states is None or r["state"] in states]

    def claim_next(self, worker: str, host: str, pid: int) -> Job | None:
        """Atomically takes the oldest queued job for this worker, or returns None."""
        with self._transaction() as db:
            row = db.execute("SELECT id FROM jobs WHERE state = ? AND backend = 'local' ORDER BY seq LIMIT 1",
                             (QUEUED,)).fetchone()
            if row is None:
                return None
            self._claim(db, row["id"], worker, host, pid)
        return self.get(row["id"])

    def claim(self, job_id: str, worker: str, host: str, pid: int) -> bool:
        """Takes a specific queued or running job (a distributed stage); False when it is final or cancelled."""
        with self._transaction() as db:
            row = db.execute("SELECT state, cancel_requested FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None or row["state"] in FINAL_STATES or row["cancel_requested"]:
                return False
            self._claim(db, job_id, worker, host, pid)
        return True

    def _claim(self, db: sqlite3.Connection, job_id: str, worker: str, host: str, pid: int) -> None:
        db.execute("UPDATE jobs SET state = ?, worker = ?, worker_host = ?, worker_pid = ?, heartbeat = ?, "
                   "started = COALESCE(started, ?), attempts = CASE WHEN state = ? THEN attempts + 1 ELSE attempts END "
                   "WHERE id = ?", (RUNNING, worker, host, pid, time.time(), now(), QUEUED, job_id))

    def start_stage(self, job_id: str, stage: str, worker: str, queue: str = "local") -> None:
        with self._transaction() as db:
            attempt = db.execute("SELECT attempts FROM jobs WHERE id = ?", (job_id,)).fetchone()["attempts"]
            db.execute("UPDATE jobs SET stage = ?, heartbeat = ? WHERE id = ?", (stage, time.time(), job_id))
            db.execute("INSERT OR REPLACE INTO stage_runs (job_id, attempt, stage, status, worker, queue, start) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?)", (job_id, attempt, stage, RUNNING, worker, queue, now()))

    def end_stage(self, job_id: str, stage: str, status: str, error: str | None = None) -> None:
        with self._transaction() as db:
            attempt = db.execute("SELECT attempts FROM jobs WHERE id = ?", (job_id,)).fetchone()["attempts"]
            db.execute("UPDATE stage_runs SET status = ?, end = ?, error = ? WHERE job_id = ? AND attempt = ? "
                       "AND stage = ?", (status, now(), error, job_id, attempt, stage))

    def heartbeat(self, job_id: str) -> bool:
        """Records that the job's worker is alive; returns whether a cancel was requested."""
        with self._transaction() as db:
            db.execute("UPDATE jobs SET heartbeat = ? WHERE id = ?", (time.time(), job_id))
            row = db.execute("SELECT cancel_requested FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return bool(row and row["cancel_requested"])

    def finish(self, job_id: str, state: str, error: str | None = None, error_stage: str | None = None) -> None:
        with self._transaction() as db:
            db.execute("UPDATE jobs SET state = ?, error = ?, error_stage = ?, finished = ?, worker_pid = NULL "
                       "WHERE id = ?", (state, error, error_stage, now(), job_id))
            if state in (FAILED, CANCELLED):
                db.execute("UPDATE stage_runs SET status = ?, end = COALESCE(end, ?), error = COALESCE(error, ?) "
                           "WHERE job_id = ? AND status = ?", (state, now(), error, job_id, RUNNING))

    def request_cancel(self, job_id: str) -> str:
        """Cancels a queued job at once, or asks the running job's worker to stop it; returns the state."""
        with self._transaction() as db:
            row = db.execute("SELECT state FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                raise KeyError(job_id)
            if row["state"] == QUEUED:
                db.execute("UPDATE jobs SET state = ?, finished = ?, error = ? WHERE id = ?",
                           (CANCELLED, now(), "cancelled before it started", job_id))
                return CANCELLED
            if row["state"] == RUNNING:
                db.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ?", (job_id,))
            return row["state"]

    def requeue(self, job_id: str) -> None:
        """Puts a failed or cancelled job back in the queue (a retry)."""
        with self._transaction() as db:
            db.execute("UPDATE jobs SET state = ?, stage = NULL, error = NULL, error_stage = NULL, "
                       "cancel_requested = 0, finished = NULL, worker = NULL, worker_pid = NULL, "
                       "seq = (SELECT MAX(seq) + 1 FROM jobs) WHERE id = ?", (QUEUED, job_id))


def _job(row: sqlite3.Row, stages: list[dict[str, Any]] | None = None) -> Job:
    data = dict(row)
    data.pop("seq")
    data["params"] = json.loads(data["params"])
    data["cancel_requested"] = bool(data["cancel_requested"])
    return Job(**data, stages=stages or [])
