"""Finding the ImageNet MobileNetV2 weights without a network: Keras' cache, a configured folder, ../shared."""

from __future__ import annotations

import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from retrain_lib.atomic import atomic_write_bytes

MOBILENET_V2_NO_TOP = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"
WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/"  # where Keras fetches it
DOWNLOAD_TIMEOUT_S = 60
PROJECT_DIR = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class WeightsChoice:
    """What to pass as Keras' `weights=` argument and how to describe it in the report.

    Attributes:
        keras_arg: a file path, or None (random initialisation).
        source: a plain sentence for the job report.
        pretrained: False when training starts from random weights.
    """

    keras_arg: str | None
    source: str
    pretrained: bool


def candidate_weight_dirs() -> list[Path]:
    """Folders searched for the weights file, first match wins."""
    dirs = []
    if os.environ.get("RETRAIN_WEIGHTS_DIR"):
        dirs.append(Path(os.environ["RETRAIN_WEIGHTS_DIR"]))
    dirs.append(keras_cache_dir())
    dirs.append(PROJECT_DIR.parent / "shared" / "weights")
    return dirs


def choose_mobilenet_v2_weights(allow_download: bool | None = None) -> WeightsChoice:
    """Finds the MobileNetV2 (alpha 1.0) ImageNet weights.

    Args:
        allow_download: fetch the file into Keras' cache when no copy is found (random initialisation
            when that fails); defaults to True unless the environment variable RETRAIN_OFFLINE is set.
    """
    for folder in candidate_weight_dirs():
        path = folder / MOBILENET_V2_NO_TOP
        if path.is_file():
            return WeightsChoice(str(path), f"ImageNet weights from {path}", True)
    if allow_download is None:
        allow_download = not os.environ.get("RETRAIN_OFFLINE")
    failure = ""
    if allow_download:
        path = keras_cache_dir() / MOBILENET_V2_NO_TOP
        try:
            download_weights(path)
            return WeightsChoice(str(path), f"ImageNet weights downloaded to {path}", True)
        except OSError as error:  # no network on this machine: train anyway, and say so
            failure = f"; downloading it from {WEIGHTS_URL} failed: {error}"
    return WeightsChoice(None, "NO PRETRAINED WEIGHTS: the backbone starts from random initialisation "
                         f"(no {MOBILENET_V2_NO_TOP} in {', '.join(map(str, candidate_weight_dirs()))}{failure}); "
                         "expect much lower accuracy. Fix: put that file in one of those folders or set "
                         "RETRAIN_WEIGHTS_DIR", False)


def keras_cache_dir() -> Path:
    """Keras' own model cache, where a downloaded weights file is kept for the next job."""
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models"


def download_weights(path: Path) -> None:
    """Fetches the no-top weights file (any input size loads it) into `path`, atomically.

    Raises:
        OSError: when the network or the server fails (urllib's errors are OSErrors).
    """
    with urllib.request.urlopen(WEIGHTS_URL + MOBILENET_V2_NO_TOP, timeout=DOWNLOAD_TIMEOUT_S) as response:
        data = response.read()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, data)
