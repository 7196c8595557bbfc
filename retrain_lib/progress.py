"""Progress of a running stage (epoch x of y), written where the scheduler and dashboard read it."""

from __future__ import annotations

import json
import time
from pathlib import Path

from retrain_lib.atomic import atomic_write_text

PROGRESS_NAME = "progress.json"


def write_progress(job_dir: Path, stage: str, phase: str, step: int, total: int) -> None:
    """Records that `stage` is at `step` of `total` in `phase`."""
    atomic_write_text(Path(job_dir) / PROGRESS_NAME, json.dumps(
        {"stage": stage, "phase": phase, "step": step, "total": total, "time": time.time()}))


def read_progress(job_dir: Path) -> dict | None:
    """The last progress written, or None."""
    path = Path(job_dir) / PROGRESS_NAME
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
