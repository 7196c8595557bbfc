"""Small synthetic datasets (rendered shapes) so a fresh clone runs end to end with no download."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle")


def render_shape(shape: str, size: int, rng: np.random.Generator) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """Draws one shape of random colour, size and place on a noisy background.

    Returns:
        The RGB image and the shape's box (xmin, ymin, xmax, ymax) in pixels.
    """
    background = rng.integers(0, 256, size=3)
    noise = rng.normal(0, 18, size=(size, size, 3))
    pixels = np.clip(background + noise, 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels, "RGB")
    draw = ImageDraw.Draw(image)
    extent = int(rng.integers(size // 4, size // 2))
    x0 = int(rng.integers(0, size - extent))
    y0 = int(rng.integers(0, size - extent))
    box = (x0, y0, x0 + extent, y0 + extent)
    colour = tuple(int(c) for c in (background + rng.integers(90, 166, size=3)) % 256)
    if shape == "circle":
        draw.ellipse(box, fill=colour)
    elif shape == "square":
        draw.rectangle(box, fill=colour)
    elif shape == "triangle":
        draw.polygon([(x0, y0 + extent), (x0 + extent, y0 + extent), (x0 + extent // 2, y0)], fill=colour)
    else:
        raise ValueError(f"unknown shape {shape!r}; use one of {SHAPES}")
    return image, box


def make_shapes_classification(out_dir: Path, images_per_class: int = 30, size: int = 96, seed: int = 0,
                               shapes: tuple[str, ...] = SHAPES) -> Path:
    """Writes `out_dir/<shape>/<n>.jpg`, a folder-per-class dataset; returns `out_dir`."""
    rng = np.random.default_rng(seed)
    for shape in shapes:
        class_dir = out_dir / shape
        class_dir.mkdir(parents=True, exist_ok=True)
        for n in range(images_per_class):
            image, _ = render_shape(shape, size, rng)
            image.save(class_dir / f"{shape}_{n:04d}.jpg", quality=92)
    return out_dir
