"""The `retrain` command: run a job, run the demo."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from retrain_lib.errors import InputError, input_error


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `retrain` console script; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="retrain", description="Retrain Coral Edge TPU models from your images.")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run every stage of one job in the foreground")
    run.add_argument("--task", required=True, choices=("classification", "detection"))
    run.add_argument("--data", required=True, type=Path, help="dataset folder or .zip/.tar/.tar.gz archive")
    run.add_argument("--job-dir", required=True, type=Path, help="folder for the job's outputs")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a stage parameter")
    run.add_argument("--resume", action="store_true", help="skip stages that already succeeded in --job-dir")
    run.set_defaults(handler=_run)

    demo = commands.add_parser("demo", help="run a whole job on a generated shapes dataset")
    demo.add_argument("--job-dir", type=Path, default=None)
    demo.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    demo.set_defaults(handler=_demo)

    params = commands.add_parser("parameters", help="list every stage parameter with its default")
    params.set_defaults(handler=_parameters)

    check = commands.add_parser("edgetpu-check", help="predict which ops of a .tflite the Edge TPU compiler maps")
    check.add_argument("model", type=Path, help="a .tflite file")
    check.add_argument("--json", action="store_true", help="print one JSON object")
    check.set_defaults(handler=_edgetpu_check)
    return parser


def _run(args: argparse.Namespace) -> int:
    from retrain_lib.parameters import parse_assignments
    from retrain_lib.pipeline import StageFailed, run_job

    try:
        report = run_job(args.task, args.data, args.job_dir, parse_assignments(args.set), resume=args.resume)
    except StageFailed as err:
        print(f"error: stage {err.stage} failed:\n{err.message}", file=sys.stderr)
        print(f"The job folder {args.job_dir} keeps the executed notebooks and report.json.", file=sys.stderr)
        return 1
    _print_summary(report, args.job_dir)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from retrain_lib.synthetic import make_shapes_classification

    job_dir = args.job_dir or Path(tempfile.mkdtemp(prefix="retrain-demo-"))
    data_dir = make_shapes_classification(job_dir.parent / f"{job_dir.name}-data", images_per_class=40)
    print(f"Generated a shapes dataset in {data_dir}")
    overrides = ["input_size=96", "head_epochs=10", "fine_tune_epochs=3", *args.set]
    return _run(argparse.Namespace(task="classification", data=data_dir, job_dir=job_dir, set=overrides,
                                   resume=False))


def _parameters(_args: argparse.Namespace) -> int:
    from retrain_lib.parameters import STAGES, stage_parameters

    for stage in STAGES:
        print(f"{stage}:")
        for spec in stage_parameters(stage).values():
            print(f"  {spec.describe()}")
    return 0


def _edgetpu_check(args: argparse.Namespace) -> int:
    import json

    from retrain_lib.edgetpu_analyzer import analyze_model, format_table

    if not args.model.is_file():
        raise input_error(str(args.model), "does not exist", "give the path of a .tflite model")
    try:
        analysis = analyze_model(args.model)
    except Exception as err:  # a file that is not a TFLite flatbuffer
        print(f"error: {args.model} is not a readable .tflite model ({err})", file=sys.stderr)
        return 2
    print(json.dumps(analysis.to_dict(), indent=2) if args.json else format_table(analysis))
    return 0


def _print_summary(report: dict, job_dir: Path) -> None:
    metrics = report.get("metrics", {})
    print(f"Job {job_dir} {report.get('status')}.")
    if "float" in metrics and "int8" in metrics:
        print(f"  test accuracy: float {metrics['float']['accuracy']:.3f}, int8 {metrics['int8']['accuracy']:.3f}")
    for name, rel in report.get("artifacts", {}).items():
        print(f"  {name}: {job_dir / rel}")


if __name__ == "__main__":
    sys.exit(main())
