"""Image decoding and the preprocessing contract shared by training and the serving image.

The contract (also written into every model manifest, and re-implemented without TensorFlow in
`edge_image/app/preprocess.py`): decode with Pillow, apply the EXIF orientation, convert to 8-bit RGB
(alpha composited on white, 16-bit scaled down), resize the whole image (no crop) to the model's
square input with Pillow's BILINEAR filter, feed raw uint8 values; normalisation is inside the model.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
PREPROCESSING = {
    "decoder": "Pillow",
    "exif_orientation": "applied",
    "color": "RGB (alpha composited on white, 16-bit scaled to 8-bit)",
    "resize": "whole image to input_size x input_size, PIL.Image.BILINEAR, no crop, no letterbox",
    "dtype": "uint8, values 0-255; normalisation is inside the model",
}
Image.MAX_IMAGE_PIXELS = 100_000_000


@dataclass(frozen=True)
class ImageInfo:
    """What checking one image file found.

    Attributes:
        width, height: size after the EXIF orientation is applied.
        mode: Pillow's mode of the file as stored (e.g. "RGB", "CMYK", "I;16").
        converted: a note on what was converted to reach RGB, or "".
        sha256: hex digest of the file's bytes.
        size: file size in bytes.
    """

    width: int
    height: int
    mode: str
    converted: str
    sha256: str
    size: int


class ImageDecodeError(Exception):
    """The file is not an image Pillow can fully decode."""


def is_image_name(path: Path | str) -> bool:
    """True when the file name has an image suffix."""
    return str(path).lower().endswith(IMAGE_SUFFIXES)


def to_rgb(image: Image.Image) -> tuple[Image.Image, str]:
    """Converts any Pillow image to 8-bit RGB.

    Returns:
        The RGB image and a short note of the conversion made ("" when none was needed).
    """
    mode = image.mode
    if mode == "RGB":
        return image, ""
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        array = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if mode.startswith("I;16") or array.max() > 255 else 255.0
        gray = np.clip(array / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(gray, "L").convert("RGB"), f"{mode} (16-bit) scaled to 8-bit RGB"
    if mode == "P" and "transparency" in image.info or mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB"), f"{mode} with alpha composited on white"
    return image.convert("RGB"), f"{mode} converted to RGB"


def load_rgb(path: Path) -> tuple[Image.Image, str]:
    """Decodes an image fully, applies its EXIF orientation and converts it to RGB.

    Raises:
        ImageDecodeError: the file is missing, truncated, or not an image.
    """
    try:
        with Image.open(path) as image:
            image.load()
            oriented = ImageOps.exif_transpose(image)
            return to_rgb(oriented)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise ImageDecodeError(str(err) or type(err).__name__) from err


def inspect_image(path: Path) -> ImageInfo:
    """Checks that `path` decodes and returns its size, mode, conversion note and hash."""
    data = path.read_bytes()
    rgb, note = load_rgb(path)
    with Image.open(path) as raw:
        mode = raw.mode
    return ImageInfo(rgb.width, rgb.height, mode, note, hashlib.sha256(data).hexdigest(), len(data))


def resize_for_model(image: Image.Image, input_size: int) -> np.ndarray:
    """Applies the contract's resize: the whole RGB image to a square uint8 array (no-op at the right size)."""
    if image.size != (input_size, input_size):
        image = image.resize((input_size, input_size), Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.uint8)


def load_for_model(path: Path, input_size: int) -> np.ndarray:
    """Decodes `path` and returns the model's uint8 input of shape (input_size, input_size, 3)."""
    rgb, _ = load_rgb(path)
    return resize_for_model(rgb, input_size)


def images_by_name(root: Path) -> dict[str, list[str]]:
    """Image files under `root` (hidden ones left out), by file name: name -> paths relative to `root`."""
    found: dict[str, list[str]] = {}
    for path in root.rglob("*"):
        if path.is_file() and is_image_name(path) and not any(p.startswith(".") for p in path.relative_to(root).parts):
            found.setdefault(path.name, []).append(path.relative_to(root).as_posix())
    return found
