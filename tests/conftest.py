"""Shared fixtures: small images and archives made by the tests, paths to ../shared."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

PROJECT_DIR = Path(__file__).resolve().parent.parent
SHARED_DIR = PROJECT_DIR.parent / "shared"
FLOWERS_DIR = SHARED_DIR / "datasets" / "flowers_128px" / "flowers"

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


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


@pytest.fixture
def shared_flowers() -> Path:
    if not FLOWERS_DIR.is_dir():
        pytest.fail(f"../shared is missing {FLOWERS_DIR}; CI always has it")
    return FLOWERS_DIR
