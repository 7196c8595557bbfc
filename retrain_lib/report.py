"""The job record `report.json`: task, status, stages, dataset, metrics and artifacts."""

from __future__ import annotations

import fcntl
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from retrain_lib.atomic import atomic_write_text

REPORT_NAME = "report.json"


def now() -> str:
    """The current time as an ISO 8601 UTC string."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def read_report(job_dir: Path) -> dict[str, Any]:
    """The job's report, or an empty one when none was written yet."""
    path = Path(job_dir) / REPORT_NAME
    if not path.exists():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))


@contextmanager
def editing_report(job_dir: Path) -> Iterator[dict[str, Any]]:
    """Yields the report for changes and writes it back atomically, under a lock."""
    job_dir = Path(job_dir)
    job_dir.mkdir(parents=True, exist_ok=True)
    with open(job_dir / ".report.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        report = read_report(job_dir)
        yield report
        atomic_write_text(job_dir / REPORT_NAME, json.dumps(report, indent=2, ensure_ascii=False, default=str))


def update_report(job_dir: Path, **sections: Any) -> dict[str, Any]:
    """Merges `sections` into the report (dicts are merged one level deep) and returns it."""
    with editing_report(job_dir) as report:
        for key, value in sections.items():
            if isinstance(value, dict) and isinstance(report.get(key), dict):
                report[key].update(value)
            else:
                report[key] = value
    return report


def start_job(job_dir: Path, task: str, stages: list[str]) -> None:
    """Marks the job running with every stage pending (keeps stages that already succeeded)."""
    with editing_report(job_dir) as report:
        report["task"] = task
        report["status"] = "running"
        report.setdefault("created", now())
        old = report.get("stages", {})
        report["stages"] = {s: old[s] if old.get(s, {}).get("status") == "succeeded" else {"status": "pending"}
                            for s in stages}
        report.pop("error", None)


def mark_stage(job_dir: Path, stage: str, status: str, error: str | None = None) -> None:
    """Records a stage's status with its start or end time, and the job's status on failure."""
    with editing_report(job_dir) as report:
        entry = report.setdefault("stages", {}).setdefault(stage, {})
        entry["status"] = status
        if status == "running":
            entry.update(start=now(), end=None, error=None)
        else:
            entry["end"] = now()
            entry["error"] = error
        if status in ("failed", "cancelled"):
            report["status"] = status
            report["error"] = {"stage": stage, "message": error}


def finish_job(job_dir: Path) -> None:
    """Marks the job succeeded."""
    with editing_report(job_dir) as report:
        report["status"] = "succeeded"
        report["finished"] = now()
