"""Stage 4: the serving image: built from the job's model bundle, pushed or saved, with robot commands."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from retrain_lib.model_manifest import sha256_file
from retrain_lib.packaging import (
    Log,
    PackagingError,
    assemble_context,
    build_image,
    docker_client,
    image_labels,
    image_ref,
    push_image,
    robot_commands,
    save_image,
)
from retrain_lib.report import update_report

TARBALL_NAME = "image.tar.gz"


@dataclass
class PackageResult:
    """What the package stage did, for display."""

    status: str
    image: str = ""
    digest: str = ""
    tarball: Path | None = None
    commands: dict[str, str] = field(default_factory=dict)
    reason: str = ""
    timings_s: dict[str, float] = field(default_factory=dict)


def run_package(job_dir: Path, build_image: bool = True, registry: str = "",
                base_image: str = "python:3.11-slim-bookworm",
                install_edgetpu: bool = True, build_ca: str = "", save_tarball: bool = False,
                require_docker: bool = False, log: Log = print) -> PackageResult:
    """Builds the serving image for `job_dir/export`, pushes it to `registry` or saves it as a tarball.

    Raises:
        PackagingError: the engine or registry refused, or no engine answers and `require_docker` is set.
        InputError: a malformed `registry` or missing `build_ca`.
    """
    job_dir = Path(job_dir)
    export_dir = job_dir / "export"
    manifest = json.loads((export_dir / "manifest.json").read_text(encoding="utf-8"))
    ref = image_ref(registry, job_dir.name, manifest["task"])
    log_path = job_dir / "logs" / "package.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a", encoding="utf-8") as log_file:
        def both(line: str) -> None:
            log(line)
            log_file.write(line + "\n")

        if not build_image:
            reason = "build_image is off: the model bundle in export/ is the result of this job"
            update_report(job_dir, packaging={"status": "skipped", "reason": reason})
            both(reason)
            return PackageResult("skipped", reason=reason)
        client = docker_client()
        if client is None:
            reason = ("no Docker engine answers (DOCKER_HOST or /var/run/docker.sock); the model bundle in export/ "
                      "is ready, build the image later with `retrain package` on a machine with Docker")
            if require_docker:
                raise PackagingError(reason)
            update_report(job_dir, packaging={"status": "skipped", "reason": reason})
            both(reason)
            return PackageResult("skipped", reason=reason)
        result = _build_and_ship(client, job_dir, export_dir, manifest, ref, registry, base_image,
                                 install_edgetpu, build_ca, save_tarball, both)
    update_report(job_dir, packaging={"status": result.status, "image": result.image, "digest": result.digest,
                                      "pushed": bool(registry), "commands": result.commands,
                                      "timings_s": result.timings_s},
                  artifacts={"image_tarball": TARBALL_NAME} if result.tarball else {})
    return result


def _build_and_ship(client, job_dir: Path, export_dir: Path, manifest: dict[str, Any], ref, registry: str,
                    base_image: str, install_edgetpu: bool, build_ca: str, save_tarball: bool,
                    log: Log) -> PackageResult:
    timings = {}
    model_file = "model_edgetpu.tflite" if (export_dir / "model_edgetpu.tflite").exists() else "model_int8.tflite"
    labels = image_labels(manifest, job_dir.name, sha256_file(export_dir / model_file))
    context = assemble_context(export_dir, job_dir / ".build-context", build_ca)
    try:
        start = time.perf_counter()
        build_image(client, context, ref, base_image, install_edgetpu, labels, log)
        timings["build"] = time.perf_counter() - start
    except PackagingError as err:
        if "pull access denied" in str(err) or "manifest unknown" in str(err) or "lookup" in str(err):
            raise PackagingError(f"{err}. Fix: the base image {base_image!r} cannot be pulled here; build a local "
                                 "one (scripts/services.sh base-image) and set base_image") from err
        raise
    finally:
        shutil.rmtree(context, ignore_errors=True)
    digest, tarball = "", None
    if registry:
        start = time.perf_counter()
        digest = push_image(client, ref, log)
        timings["push"] = time.perf_counter() - start
    if not registry or save_tarball:
        start = time.perf_counter()
        tarball = save_image(client, ref, job_dir / TARBALL_NAME)
        timings["save"] = time.perf_counter() - start
    commands = robot_commands(ref, manifest["task"], pushed=bool(registry))
    log(f"image {ref.name} ready" + (f", pushed as {digest}" if digest else f", saved to {tarball}"))
    return PackageResult("built", ref.name, digest, tarball, commands, timings_s=timings)
