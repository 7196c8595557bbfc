"""Runs a job's stage notebooks one after another with papermill, recording each in report.json."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from retrain_lib.parameters import STAGES, check_parameters, notebook_path, parameters_for
from retrain_lib.report import finish_job, mark_stage, read_report, start_job

Log = Callable[[str], None]


class StageFailed(RuntimeError):
    """A stage notebook raised; `message` is the error a person can act on."""

    def __init__(self, stage: str, message: str):
        self.stage, self.message = stage, message
        super().__init__(f"stage {stage} failed: {message}")


def kernel_name() -> str:
    """The project's Jupyter kernel ("retrain") when registered, else the running environment's python3."""
    from jupyter_client.kernelspec import find_kernel_specs

    wanted = os.environ.get("RETRAIN_KERNEL", "retrain")
    return wanted if wanted in find_kernel_specs() else "python3"


def run_stage(stage: str, job_dir: Path, parameters: dict[str, Any], log: Log = print,
              log_output: bool = False) -> None:
    """Executes one stage notebook into `job_dir/notebooks/`, raising `StageFailed` on error.

    Args:
        log_output: also stream the notebook's printed output to papermill's logger (the job log).
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    job_dir = Path(job_dir).resolve()
    out_dir = job_dir / "notebooks"
    out_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    mark_stage(job_dir, stage, "running")
    log(f"[{stage}] started")
    try:
        papermill.execute_notebook(str(notebook_path(stage)), str(out_dir / f"{stage}.ipynb"),
                                   parameters={**parameters, "job_dir": str(job_dir)},
                                   kernel_name=kernel_name(), cwd=str(job_dir), progress_bar=False,
                                   log_output=log_output)
    except PapermillExecutionError as err:
        message = err.evalue or err.ename
        mark_stage(job_dir, stage, "failed", message)
        log(f"[{stage}] failed: {message}")
        raise StageFailed(stage, message) from err
    except Exception as err:
        mark_stage(job_dir, stage, "failed", str(err))
        raise StageFailed(stage, str(err)) from err
    mark_stage(job_dir, stage, "succeeded")
    log(f"[{stage}] succeeded")


def run_job(task: str, data_path: Path, job_dir: Path, overrides: dict[str, Any] | None = None,
            stages: tuple[str, ...] = STAGES, resume: bool = False, log: Log = print) -> dict[str, Any]:
    """Checks the parameters, then runs every stage; returns the final report.

    Args:
        resume: skip stages that already succeeded in `job_dir` (a retry).

    Raises:
        InputError: bad parameters (nothing has run).
        StageFailed: a stage failed; report.json says which and why.
    """
    job_dir = Path(job_dir).resolve()
    values = check_parameters({**(overrides or {}), "task": task, "data_path": str(Path(data_path).resolve())},
                              stages)
    start_job(job_dir, task, list(stages))
    done = read_report(job_dir).get("stages", {}) if resume else {}
    for stage in stages:
        if done.get(stage, {}).get("status") == "succeeded":
            log(f"[{stage}] already succeeded, skipped")
            continue
        run_stage(stage, job_dir, parameters_for(stage, values), log)
    finish_job(job_dir)
    return read_report(job_dir)
