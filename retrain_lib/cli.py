"""The `retrain` command: run a job, run the demo."""

from __future__ import annotations

import argparse
import os
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

    demo = commands.add_parser("demo", help="run a whole job on a generated shapes dataset (no image unless "
                                          "--set build_image=true)")
    demo.add_argument("--job-dir", type=Path, default=None)
    demo.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    demo.set_defaults(handler=_demo)

    params = commands.add_parser("parameters", help="list every stage parameter with its default")
    params.set_defaults(handler=_parameters)

    submit = commands.add_parser("submit", help="queue a job for the workers; prints its id")
    submit.add_argument("data", type=Path, help="dataset folder or .zip/.tar/.tar.gz archive")
    submit.add_argument("--task", required=True, choices=("classification", "detection"))
    submit.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    submit.add_argument("--owner", default="")
    submit.add_argument("--backend", choices=("local", "celery"), default=None,
                        help="local workers (default) or Celery workers ($RETRAIN_BACKEND)")
    submit.set_defaults(handler=_submit)

    listing = commands.add_parser("list", help="jobs, oldest first")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=_list)

    for name, handler, text in (("show", _show, "one job: state, stage, progress, error, artifacts, pull command"),
                                ("logs", _logs, "the job's stage logs"),
                                ("cancel", _cancel, "cancel a queued or running job"),
                                ("retry", _retry, "queue a failed or cancelled job again, resuming where it failed")):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("job")
        if name == "show":
            sub.add_argument("--json", action="store_true")
        sub.set_defaults(handler=handler)

    worker = commands.add_parser("worker", help="run a worker that takes queued jobs")
    worker.add_argument("--backend", choices=("local", "celery"), default="local")
    worker.add_argument("--queues", default="cpu,gpu,docker", help="celery: the stage queues this worker takes")
    worker.add_argument("--until-idle", action="store_true", help="local: stop when the queue is empty")
    worker.add_argument("--name", default="", help="celery: the worker's node name, e.g. gpu1@%%h")
    worker.set_defaults(handler=_worker)

    dash = commands.add_parser("dashboard", help="serve the upload-and-launch dashboard (with a local worker)")
    dash.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    dash.add_argument("--port", type=int, default=8866)
    dash.add_argument("--token", default="", help="access token (default: a new random one, printed)")
    dash.add_argument("--base-url", default="/", help="path prefix when served behind a proxy")
    dash.add_argument("--no-worker", action="store_true", help="do not start a local worker")
    dash.add_argument("--registry", default=os.environ.get("RETRAIN_REGISTRY", ""),
                      help="push robot images here, e.g. 127.0.0.1:5000/robots (default: keep them local)")
    dash.add_argument("--base-image", default=os.environ.get("RETRAIN_BASE_IMAGE", ""),
                      help="base image of the robot image (default python:3.11-slim-bookworm)")
    dash.add_argument("--build-ca", default=os.environ.get("RETRAIN_BUILD_CA", ""),
                      help="CA bundle for pip inside image builds (TLS-intercepting proxies)")
    dash.add_argument("--no-edgetpu-runtime", action="store_true",
                      help="do not install the Edge TPU runtime into robot images (offline build servers)")
    dash.set_defaults(handler=_dashboard)

    comp = commands.add_parser("compile", help="add an Edge TPU model to a finished job and rebuild its image")
    comp.add_argument("job_dir", type=Path)
    comp.add_argument("--model", type=Path, default=None, help="a *_edgetpu.tflite compiled elsewhere")
    comp.add_argument("--compiler-image", default="", help="a Docker image with edgetpu_compiler")
    comp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                      help="04_package parameters for the rebuild (registry, base_image, ...)")
    comp.add_argument("--no-package", action="store_true", help="do not rebuild the serving image")
    comp.set_defaults(handler=_compile)

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
    overrides = ["input_size=96", "head_epochs=10", "fine_tune_epochs=3", "build_image=false", *args.set]
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


def _submit(args: argparse.Namespace) -> int:
    from retrain_lib.parameters import parse_assignments
    from scheduler.jobs import submit_job

    job = submit_job(args.data, args.task, parse_assignments(args.set), owner=args.owner, backend=args.backend)
    print(job.id)
    return 0


def _list(args: argparse.Namespace) -> int:
    import json

    from scheduler.jobs import open_store
    from scheduler.runner import recover_dead_workers

    store = open_store()
    recover_dead_workers(store)
    jobs = store.list()
    if args.json:
        print(json.dumps([{"id": j.id, "state": j.state, "stage": j.stage, "task": j.task, "owner": j.owner,
                           "created": j.created, "error": j.error} for j in jobs], indent=2))
        return 0
    for job in jobs:
        stage = f" ({job.stage})" if job.state == "running" else ""
        print(f"{job.id}  {job.state + stage:<24} {job.task:<15} {job.owner}")
    return 0


def _load_job(job_id: str):
    from scheduler.jobs import open_store
    from scheduler.runner import recover_dead_workers

    store = open_store()
    recover_dead_workers(store)
    job = store.get(job_id)
    if job is None:
        raise input_error(f"job {job_id}", "does not exist", "see `retrain list` for job ids")
    return job


def _show(args: argparse.Namespace) -> int:
    import json

    from scheduler.jobs import job_summary

    summary = job_summary(_load_job(args.job))
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"job {summary['id']}: {summary['state']}" + (f", stage {summary['stage']}" if summary["stage"] else ""))
    if summary["progress"]:
        p = summary["progress"]
        print(f"  progress: {p['phase']} epoch {p['step']} of {p['total']}")
    if summary["error"]:
        print(f"  error ({summary['error_stage']}): {summary['error']}")
    for name, value in summary["metrics"].items():
        print(f"  {name}: " + ", ".join(f"{k} {v:.3f}" for k, v in value.items() if isinstance(v, float)))
    for name, rel in summary["artifacts"].items():
        print(f"  {name}: {Path(summary['job_dir']) / rel}")
    if summary["pull_command"]:
        print(f"  on the robot: {summary['pull_command']}")
    return 0


def _logs(args: argparse.Namespace) -> int:
    from scheduler.jobs import job_logs

    print(job_logs(_load_job(args.job)))
    return 0


def _cancel(args: argparse.Namespace) -> int:
    from scheduler.jobs import cancel_job

    state = cancel_job(_load_job(args.job).id)
    print("cancelled" if state == "cancelled" else f"cancel requested (job is {state})")
    return 0


def _retry(args: argparse.Namespace) -> int:
    from scheduler.jobs import retry_job

    print(f"job {retry_job(_load_job(args.job).id).id} queued again")
    return 0


def _worker(args: argparse.Namespace) -> int:
    if args.backend == "celery":
        from scheduler.celery_backend import run_celery_worker

        run_celery_worker(args.queues.split(","), args.name)
        return 0
    from scheduler.local import run_worker

    run_worker(stop_when_idle=args.until_idle)
    return 0


def _dashboard(args: argparse.Namespace) -> int:
    from retrain_lib.dashboard_server import run_dashboard

    settings = {"RETRAIN_REGISTRY": args.registry, "RETRAIN_BASE_IMAGE": args.base_image,
                "RETRAIN_BUILD_CA": args.build_ca, "RETRAIN_INSTALL_EDGETPU": "0" if args.no_edgetpu_runtime else "1"}
    return run_dashboard(args.host, args.port, args.token, args.base_url, not args.no_worker, settings)


def _compile(args: argparse.Namespace) -> int:
    from retrain_lib.parameters import check_parameters, parameters_for, parse_assignments
    from retrain_lib.pipeline import StageFailed, run_stage
    from retrain_lib.stages.compile import add_edgetpu_model

    overrides = check_parameters(parse_assignments(args.set), ("04_package",))
    report = add_edgetpu_model(args.job_dir, args.model, args.compiler_image)
    print(report["summary"])
    if args.no_package:
        return 0
    try:
        run_stage("04_package", args.job_dir, parameters_for("04_package", overrides))
    except StageFailed as err:
        print(f"error: {err.message}", file=sys.stderr)
        return 1
    return 0


def _print_summary(report: dict, job_dir: Path) -> None:
    metrics = report.get("metrics", {})
    print(f"Job {job_dir} {report.get('status')}.")
    if report.get("warning"):
        print(f"  warning: {report['warning']}")
    if "float" in metrics and "int8" in metrics:
        print(f"  test accuracy: float {metrics['float']['accuracy']:.3f}, int8 {metrics['int8']['accuracy']:.3f}")
    for name, rel in report.get("artifacts", {}).items():
        print(f"  {name}: {job_dir / rel}")


if __name__ == "__main__":
    sys.exit(main())
