"""One stage of one job, as its own process: `python -m scheduler.stage_main JOB_DIR STAGE`."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from retrain_lib.parameters import parameters_for
from retrain_lib.pipeline import StageFailed, run_stage
from scheduler.runner import JOB_FILE


def main(argv: list[str]) -> int:
    job_dir, stage = Path(argv[0]), argv[1]
    job = json.loads((job_dir / JOB_FILE).read_text())
    values = {**job["params"], "task": job["task"], "data_path": job["data_path"]}
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stdout)
    logging.getLogger("papermill").setLevel(logging.INFO)
    try:
        run_stage(stage, job_dir, parameters_for(stage, values), log=lambda line: print(line, flush=True),
                  log_output=True)
    except StageFailed as err:
        print(f"stage {stage} failed: {err.message}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
