"""Finding the ImageNet MobileNetV2 weights without a network: Keras' cache, a configured folder, ../shared."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

MOBILENET_V2_NO_TOP = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"
PROJECT_DIR = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class WeightsChoice:
    """What to pass as Keras' `weights=` argument and how to describe it in the report.

    Attributes:
        keras_arg: a file path, "imagenet" (Keras downloads) or None (random initialisation).
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
    keras_home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
    dirs.append(keras_home / "models")
    dirs.append(PROJECT_DIR.parent / "shared" / "weights")
    return dirs


def choose_mobilenet_v2_weights(allow_download: bool | None = None) -> WeightsChoice:
    """Finds the MobileNetV2 (alpha 1.0) ImageNet weights.

    Args:
        allow_download: let Keras fetch the file when no copy is found; defaults to True unless the
            environment variable RETRAIN_OFFLINE is set.
    """
    for folder in candidate_weight_dirs():
        path = folder / MOBILENET_V2_NO_TOP
        if path.is_file():
            return WeightsChoice(str(path), f"ImageNet weights from {path}", True)
    if allow_download is None:
        allow_download = not os.environ.get("RETRAIN_OFFLINE")
    if allow_download:
        return WeightsChoice("imagenet", "ImageNet weights downloaded by Keras", True)
    return WeightsChoice(None, "NO PRETRAINED WEIGHTS: the backbone starts from random initialisation "
                         f"(no {MOBILENET_V2_NO_TOP} in {', '.join(map(str, candidate_weight_dirs()))}); "
                         "expect much lower accuracy", False)
