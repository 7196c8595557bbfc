"""The preprocessing contract of the model manifest, without TensorFlow.

Mirrors `retrain_lib/images.py` of the training side (a test checks they give identical arrays):
decode with Pillow, apply EXIF orientation, convert to 8-bit RGB (alpha on white, 16-bit scaled),
resize the whole image to the input size with BILINEAR, uint8.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

Image.MAX_IMAGE_PIXELS = 100_000_000


class BadImage(ValueError):
    """The request body is not an image Pillow can decode."""


def decode_rgb(data: bytes) -> Image.Image:
    """Decodes image bytes to an EXIF-oriented 8-bit RGB image."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            oriented = ImageOps.exif_transpose(image)
            return _to_rgb(oriented)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise BadImage(f"the body is not a decodable image ({err})") from err


def _to_rgb(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        array = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if mode.startswith("I;16") or array.max() > 255 else 255.0
        gray = np.clip(array / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(gray, "L").convert("RGB")
    if mode == "P" and "transparency" in image.info or mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def to_model_input(image: Image.Image, width: int, height: int) -> np.ndarray:
    """Resizes the whole RGB image to the model's input: uint8 array (height, width, 3)."""
    if image.size != (width, height):
        image = image.resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.uint8)
