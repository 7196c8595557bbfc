"""Benchmark: a whole detection job on the raccoon dataset (200 images, its own train/test CSV split).

Run:  .venv/bin/python -m bench.detection_raccoon [--half-budget-too]
Writes bench/results/detection_raccoon.json and prints a Markdown summary for docs/benchmarks.md.

Records wall time per stage and mAP@0.5 / mAP@[.5:.95] of the float and int8 models on raccoon's test split,
and, with --half-budget-too, the same recipe with half the training steps.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from datetime import datetime
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
RACCOON = PROJECT_DIR.parent / "shared" / "datasets" / "raccoon_dataset"
RESULTS = PROJECT_DIR / "bench" / "results" / "detection_raccoon.json"


def package_overrides() -> dict[str, str]:
    """Builds the robot image like a real job when this machine has the local registry and base image."""
    from retrain_lib.packaging import docker_client

    if docker_client() is None:
        return {"build_image": "false"}
    ca = "/etc/ssl/certs/ca-certificates.crt"
    return {"registry": os.environ.get("RETRAIN_TEST_REGISTRY", "127.0.0.1:5000") + "/bench/raccoon",
            "base_image": os.environ.get("RETRAIN_TEST_BASE_IMAGE", "local/bookworm-python:base"),
            "install_edgetpu": "false", "build_ca": ca if Path(ca).exists() else ""}


def run(steps: int | None, job_dir: Path, extra: dict[str, str] | None = None) -> dict:
    from retrain_lib.pipeline import run_job

    overrides = {"annotation_format": "csv", **package_overrides(), **(extra or {})}
    if steps:
        overrides["detection_steps"] = str(steps)
    start = time.perf_counter()
    report = run_job("detection", RACCOON, job_dir, overrides, log=print)
    wall = time.perf_counter() - start
    stages = {name: (datetime.fromisoformat(s["end"]) - datetime.fromisoformat(s["start"])).total_seconds()
              for name, s in report["stages"].items()}
    return {"wall_s": wall, "stage_s": stages, "steps": report["training"]["config"]["steps"],
            "input_size": report["training"]["config"]["input_size"], "float": report["metrics"]["float"],
            "int8": {k: v for k, v in report["metrics"]["int8"].items() if k != "per_class"},
            "edgetpu": report["edgetpu"]["summary"], "dataset": report["dataset"]["counts"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--half-budget-too", action="store_true")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a job parameter to override (recipe experiments)")
    args = parser.parse_args()
    extra = dict(item.split("=", 1) for item in args.set)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    root = Path(tempfile.mkdtemp(prefix="bench-raccoon-"))
    full = run(None, root / "full", extra)
    half = run(full["steps"] // 2, root / "half", extra) if args.half_budget_too else None
    result = {"date": datetime.now().isoformat(timespec="seconds"), "machine": platform.platform(),
              "cpus": os.cpu_count(), "overrides": extra, "full": full, "half_budget": half}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    for name, run_result in (("full budget", full), ("half budget", half)):
        if run_result:
            print(f"- {name} ({run_result['steps']} steps at {run_result['input_size']} px): whole job "
                  f"**{run_result['wall_s'] / 60:.1f} min** (" + ", ".join(
                      f"{k} {v:.0f} s" for k, v in run_result["stage_s"].items()) + f"); test mAP@0.5 float "
                  f"{run_result['float']['map50']:.3f} / int8 **{run_result['int8']['map50']:.3f}**, mAP@[.5:.95] "
                  f"float {run_result['float']['map']:.3f} / int8 **{run_result['int8']['map']:.3f}**; "
                  f"{run_result['edgetpu']}")


if __name__ == "__main__":
    main()
