"""Building, pushing and saving the serving image with the Docker SDK, and the commands for the robot."""

from __future__ import annotations

import gzip
import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from retrain_lib.errors import input_error

EDGE_IMAGE_DIR = Path(__file__).resolve().parent.parent / "edge_image"
CONTEXT_FILES = ("Dockerfile", ".dockerignore", "requirements.txt")
DEFAULT_BASE_IMAGE = "python:3.11-slim-bookworm"
Log = Callable[[str], None]


class PackagingError(RuntimeError):
    """The Docker engine or the registry refused a build, push or save; the message says which and why."""


@dataclass(frozen=True)
class ImageRef:
    """Where the image lives: repository (with registry host when pushed) and tags."""

    repository: str
    tag: str

    @property
    def name(self) -> str:
        return f"{self.repository}:{self.tag}"

    @property
    def latest(self) -> str:
        return f"{self.repository}:latest"


def docker_client():
    """A client of the local Docker engine (DOCKER_HOST or the default socket), or None when none answers."""
    import docker

    try:
        client = docker.from_env(timeout=600)
        client.ping()
        return client
    except Exception:
        return None


def image_ref(registry: str, job_id: str, task: str) -> ImageRef:
    """The image's repository and tag: `registry` (e.g. 127.0.0.1:5000/robots/flowers) or a local name.

    Raises:
        InputError: `registry` is not a valid repository reference.
    """
    tag = re.sub(r"[^A-Za-z0-9_.-]", "-", job_id).lstrip(".-")[:128] or "job"
    if not registry:
        return ImageRef(f"coral-retrain/{task}", tag)
    repository = registry.strip().rstrip("/")
    if ":" in repository.rsplit("/", 1)[-1] or not re.fullmatch(r"[a-z0-9]+([._:/-]*[a-z0-9]+)*", repository):
        raise input_error("registry", f"is {registry!r}, not a repository reference",
                          "give host:port/path/name in lower case without a tag, e.g. 127.0.0.1:5000/robots/flowers")
    return ImageRef(repository, tag)


def assemble_context(export_dir: Path, context_dir: Path, build_ca: str = "") -> Path:
    """Copies edge_image/ and the job's model bundle into a fresh Docker build context."""
    if context_dir.exists():
        shutil.rmtree(context_dir)
    context_dir.mkdir(parents=True)
    for name in CONTEXT_FILES:
        shutil.copy2(EDGE_IMAGE_DIR / name, context_dir / name)
    shutil.copytree(EDGE_IMAGE_DIR / "app", context_dir / "app", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(export_dir, context_dir / "model")
    if build_ca:
        ca = Path(build_ca)
        if not ca.is_file():
            raise input_error("build_ca", f"is {build_ca!r}, which is not a file",
                              "give the path of a PEM bundle with your proxy's CA, or leave it empty")
        shutil.copy2(ca, context_dir / "build-ca.pem")
    _normalise_mtimes(context_dir)
    return context_dir


def _normalise_mtimes(folder: Path) -> None:
    """Fixed times (the legacy builder hashes metadata, so unchanged layers stay cached) and readable modes
    (the image runs as a non-root user)."""
    import os

    for path in [folder, *folder.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
        os.utime(path, (0, 0), follow_symlinks=False)


def build_image(client, context_dir: Path, ref: ImageRef, base_image: str, install_edgetpu: bool,
                labels: dict[str, str], log: Log = print, nocache: bool = False) -> str:
    """Builds the image (host network, as this site requires), streaming the build log to `log`.

    Returns:
        The image id.
    """
    image_id = None
    stream = client.api.build(path=str(context_dir), tag=ref.name, rm=True, forcerm=True, decode=True, nocache=nocache,
                              network_mode="host", labels=labels,
                              buildargs={"BASE_IMAGE": base_image, "INSTALL_EDGETPU": "1" if install_edgetpu else "0"})
    for event in stream:
        if "error" in event:
            raise PackagingError(f"docker build failed: {event['error'].strip()}")
        if "stream" in event and event["stream"].strip():
            log(event["stream"].rstrip())
        if "aux" in event and "ID" in event["aux"]:
            image_id = event["aux"]["ID"]
    image = client.images.get(ref.name)
    image.tag(ref.repository, "latest")
    return image_id or image.id


def push_image(client, ref: ImageRef, log: Log = print) -> str:
    """Pushes both tags, checking every event of the stream (the SDK reports errors inside it).

    Returns:
        The pushed digest ("sha256:...").
    """
    digest = ""
    for tag in (ref.tag, "latest"):
        last_status = ""
        for event in client.api.push(ref.repository, tag=tag, stream=True, decode=True):
            if "error" in event or "errorDetail" in event:
                detail = event.get("errorDetail", {}).get("message") or event.get("error")
                raise PackagingError(f"docker push of {ref.repository}:{tag} failed: {detail}")
            status = event.get("status", "")
            if status and status != last_status and "id" not in event:
                log(f"push {tag}: {status}")
                last_status = status
            if "aux" in event and "Digest" in event["aux"]:
                digest = event["aux"]["Digest"]
    if not digest:
        raise PackagingError(f"docker push of {ref.name} ended without a digest; the registry may have refused it")
    return digest


def save_image(client, ref: ImageRef, out_path: Path) -> Path:
    """Writes `docker save` of the image as a .tar.gz for robots without registry access."""
    tmp = out_path.with_suffix(".partial")
    with gzip.open(tmp, "wb", compresslevel=3) as f:
        for chunk in client.images.get(ref.name).save(named=True):
            f.write(chunk)
    tmp.replace(out_path)
    return out_path


def robot_commands(ref: ImageRef, task: str, pushed: bool, port: int = 8080,
                   tarball: str = "image.tar.gz") -> dict[str, str]:
    """The exact commands a robot owner types, with why the whole USB bus is passed."""
    route = "classify" if task == "classification" else "detect"
    fetch = f"docker pull {ref.name}" if pushed else f"gunzip -c {tarball} | docker load"
    return {
        "pull": fetch,
        "run": f"docker run -d --name coral-model --restart unless-stopped --device /dev/bus/usb "
               f"-p {port}:8080 {ref.name}",
        "try": f"curl -s -X POST --data-binary @photo.jpg -H 'Content-Type: image/jpeg' "
               f"http://localhost:{port}/v1/{route}",
        "note": "--device /dev/bus/usb passes the whole USB bus: the Coral USB Accelerator re-enumerates "
                "(1a6e:089a becomes 18d1:9302) after its firmware loads, so a single /dev/bus/usb/BBB/DDD node "
                "breaks. Without the accelerator the model runs on the robot's CPU.",
    }


def image_labels(manifest: dict[str, Any], job_id: str, model_sha256: str) -> dict[str, str]:
    """OCI-style labels describing the model inside the image."""
    return {
        "org.opencontainers.image.title": f"coral-retrain {manifest['task']} model",
        "coral-retrain.model.sha256": model_sha256,
        "coral-retrain.task": manifest["task"],
        "coral-retrain.labels": json.dumps(manifest["labels"], ensure_ascii=False),
        "coral-retrain.source-job": job_id,
    }
