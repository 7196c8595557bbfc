"""Image-space augmentation for classification: flip, crop/zoom and brightness, seeded."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageEnhance

from retrain_lib.images import resize_for_model


def augmented_view(image: Image.Image, input_size: int, rng: np.random.Generator,
                   min_area: float = 0.6, max_brightness: float = 0.2) -> np.ndarray:
    """One random view of an RGB image as the model's uint8 input.

    Flips left-right half the time, crops a random box of `min_area`-100 % of the area (aspect
    3:4 to 4:3), then scales brightness by up to +/- `max_brightness`.
    """
    if rng.random() < 0.5:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    image = image.crop(_random_box(image.width, image.height, rng, min_area))
    factor = 1.0 + rng.uniform(-max_brightness, max_brightness)
    image = ImageEnhance.Brightness(image).enhance(factor)
    return resize_for_model(image, input_size)


def _random_box(width: int, height: int, rng: np.random.Generator, min_area: float) -> tuple[int, int, int, int]:
    area = rng.uniform(min_area, 1.0) * width * height
    aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
    w = int(round(min(width, np.sqrt(area * aspect))))
    h = int(round(min(height, np.sqrt(area / aspect))))
    x = int(rng.integers(0, width - w + 1))
    y = int(rng.integers(0, height - h + 1))
    return x, y, x + w, y + h
