"""Shared fixtures: small images and archives made by the tests, paths to ../shared."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

PROJECT_DIR = Path(__file__).resolve().parent.parent
SHARED_DIR = PROJECT_DIR.parent / "shared"
FLOWERS_DIR = SHARED_DIR / "datasets" / "flowers_128px" / "flowers"

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_health(port: int, timeout_s: float = 60, describe=lambda: "") -> None:
    """Waits until http://127.0.0.1:PORT/health answers 200; fails the test with `describe()` otherwise."""
    import http.client
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"nothing answered /health on port {port} within {timeout_s:.0f} s. {describe()}")


def write_image(path: Path, seed: int = 0, size: tuple[int, int] = (40, 32), mode: str = "RGB",
                fmt: str | None = None) -> Path:
    """Writes a random image of `mode`; distinct seeds give distinct bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rgb = Image.fromarray(rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8), "RGB")
    if mode == "I;16":
        image = Image.fromarray((rng.integers(0, 65536, size=(size[1], size[0]))).astype(np.uint16))
    elif mode == "P":
        image = rgb.convert("P", palette=Image.Palette.ADAPTIVE)
    else:
        image = rgb.convert(mode)
    image.save(path, format=fmt)
    return path


def make_class_folders(root: Path, counts: dict[str, int], start_seed: int = 0) -> Path:
    """root/<class>/<n>.png with `counts[class]` distinct images each."""
    seed = start_seed
    for label, count in counts.items():
        (root / label).mkdir(parents=True, exist_ok=True)
        for n in range(count):
            write_image(root / label / f"{n}.png", seed=seed)
            seed += 1
    return root


FLOWER_CLASSES = ("daisy", "dandelion", "tulip")
# tiny training (12 test images: a single run moves by 10 points) with the product's 4 augmented views and its
# default agreement gate (95 % with the trained model)
FAST_CLASSIFICATION = {"input_size": "96", "head_epochs": "30", "fine_tune_epochs": "4", "augment_views": "4",
                       "cache_layer": "block_12_add", "mixup": "0.0", "label_smoothing": "0.0"}
TEST_REGISTRY = os.environ.get("RETRAIN_TEST_REGISTRY", "127.0.0.1:5000")
TEST_BASE_IMAGE = os.environ.get("RETRAIN_TEST_BASE_IMAGE", "local/bookworm-python:base")
HOST_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


def package_settings(repository: str) -> dict[str, str]:
    """04_package parameters for these machines: the local registry, the offline base, no Coral repository."""
    return {"registry": f"{TEST_REGISTRY}/{repository}", "base_image": TEST_BASE_IMAGE,
            "install_edgetpu": "false", "build_ca": HOST_CA_BUNDLE if Path(HOST_CA_BUNDLE).exists() else "",
            "require_docker": "true"}


@pytest.fixture(scope="session")
def flowers_subset(tmp_path_factory) -> Path:
    """3 classes x 40 real flower photos from ../shared."""
    assert FLOWERS_DIR.is_dir(), "../shared/datasets/flowers_128px is needed (CI always has it)"
    root = tmp_path_factory.mktemp("flowers") / "flowers"
    for label in FLOWER_CLASSES:
        (root / label).mkdir(parents=True)
        for path in sorted((FLOWERS_DIR / label).glob("*.jpg"))[:40]:
            shutil.copy(path, root / label / path.name)
    return root


@pytest.fixture(scope="session")
def flowers_job(flowers_subset, tmp_path_factory) -> Path:
    """A whole classification job (all four stages through papermill), image pushed to the test registry."""
    from retrain_lib.pipeline import run_job

    job_dir = tmp_path_factory.mktemp("job") / f"flowers-{uuid.uuid4().hex[:8]}"
    run_job("classification", flowers_subset, job_dir,
            {**FAST_CLASSIFICATION, **package_settings("tests/flowers")}, log=lambda line: None)
    return job_dir
