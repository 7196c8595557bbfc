"""Checks every box and image of a detection upload against the real images; all problems at once."""

from __future__ import annotations

import math
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from PIL import Image

from retrain_lib.detection_formats import AnnotatedImage, Box, DetectionRead
from retrain_lib.errors import InputError, Problem
from retrain_lib.images import ImageDecodeError, ImageInfo, inspect_image
from retrain_lib.validation import normalise_label

CLIP_TOLERANCE_PX = 3.0
NORMALISED_FORMATS = ("YOLO txt", "Model Maker / AutoML CSV (normalised)")


@dataclass(frozen=True)
class DetectionRecord:
    """One checked image with its boxes in pixels of the EXIF-corrected image."""

    file: str
    boxes: tuple[Box, ...]
    width: int
    height: int
    sha256: str
    split: str | None


@dataclass
class CheckedDetection:
    """A detection dataset that passed every check."""

    format: str
    records: list[DetectionRecord]
    classes: list[str]
    notes: list[str] = field(default_factory=list)


def check_detection(root: Path, read: DetectionRead, min_boxes_per_class: int = 5,
                    allow_background_images: bool = False, workers: int = 4) -> CheckedDetection:
    """Decodes every image, fits every box to it, and checks labels and counts.

    Boxes that leave the image by at most `CLIP_TOLERANCE_PX` are clipped with a note; further out, or
    with NaN, inverted corners or no area, they are errors. Images without boxes are errors unless
    `allow_background_images`.

    Raises:
        InputError: with every problem found.
    """
    problems = list(read.problems)
    notes = list(read.notes)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        infos = list(pool.map(lambda a: _inspect(root / a.file), read.images))
    declared = [normalise_label(c) for c in read.classes]
    records = []
    for annotated, info in zip(read.images, infos, strict=True):
        if isinstance(info, str):
            problems.append(Problem(annotated.file, f"cannot be decoded as an image ({info})",
                                    "re-export the image as JPEG or PNG, or remove it and its annotation"))
            continue
        boxes, image_problems, image_notes = _fit_boxes(root, annotated, info, read.format, declared)
        problems += image_problems
        notes += image_notes
        if not boxes and not image_problems:
            if not allow_background_images:
                problems.append(Problem(annotated.file, "has no annotation (no boxes)",
                                        "draw its boxes (the dashboard can), remove it, or set "
                                        "allow_background_images=true if it shows none of the classes"))
                continue
            notes.append(f"{annotated.file}: background image (no boxes)")
        records.append(DetectionRecord(annotated.file, tuple(boxes), info.width, info.height, info.sha256,
                                       annotated.split))
    counts = Counter(b.label for r in records for b in r.boxes)
    classes = declared or sorted(counts)
    if not counts and not problems:
        problems.append(Problem("dataset", "has no boxes at all", "annotate the objects the model should find"))
    for label in classes:
        if counts[label] < min_boxes_per_class:
            problems.append(Problem(f"class '{label}'", f"has {counts[label]} box(es), fewer than the minimum of "
                                    f"{min_boxes_per_class}",
                                    f"annotate at least {min_boxes_per_class - counts[label]} more '{label}' objects"
                                    + (" or remove the class from the class list" if declared else "")))
    if problems:
        raise InputError(problems)
    return CheckedDetection(read.format, records, classes, notes)


def _inspect(path: Path) -> ImageInfo | str:
    try:
        return inspect_image(path)
    except ImageDecodeError as err:
        return str(err)


def _fit_boxes(root: Path, annotated: AnnotatedImage, info: ImageInfo, fmt: str,
               declared: list[str]) -> tuple[list[Box], list[Problem], list[str]]:
    problems, notes, fitted = [], [], []
    width, height = info.width, info.height
    boxes = list(annotated.boxes)
    if fmt in NORMALISED_FORMATS:
        boxes = [replace(b, xmin=b.xmin * width, xmax=b.xmax * width, ymin=b.ymin * height, ymax=b.ymax * height)
                 for b in boxes]
    elif annotated.width and annotated.height and (annotated.width, annotated.height) != (width, height):
        if (annotated.width, annotated.height) == (height, width) and _exif_rotated(root / annotated.file):
            boxes = [_rotate_to_exif(root / annotated.file, b) for b in boxes]
            notes.append(f"{annotated.file}: boxes turned with the photo's EXIF orientation")
        else:
            problems.append(Problem(annotated.source or annotated.file,
                                    f"says the image is {annotated.width}x{annotated.height} but {annotated.file} "
                                    f"is {width}x{height}",
                                    "re-annotate on this image, or upload the image the boxes were drawn on"))
            return [], problems, notes
    for index, box in enumerate(boxes, start=1):
        where = f"{annotated.source or annotated.file} box {index} ({box.label or 'no label'})"
        label = normalise_label(box.label)
        values = (box.xmin, box.ymin, box.xmax, box.ymax)
        if not label:
            problems.append(Problem(where, "has no label", "give every box a class name"))
            continue
        if declared and label not in declared:
            problems.append(Problem(where, f"has label '{label}', which is not in the class list "
                                    f"({', '.join(declared)})", "fix the label or add the class to the class list"))
            continue
        if any(math.isnan(v) or math.isinf(v) for v in values):
            problems.append(Problem(where, f"has a coordinate that is not a number {values}",
                                    "draw the box again"))
            continue
        if box.xmin > box.xmax or box.ymin > box.ymax:
            problems.append(Problem(where, f"has inverted corners (xmin {box.xmin:g} > xmax {box.xmax:g} or ymin "
                                    f"{box.ymin:g} > ymax {box.ymax:g})", "swap the corners or draw the box again"))
            continue
        if box.area <= 0:
            problems.append(Problem(where, f"has no area ({box.xmax - box.xmin:g} x {box.ymax - box.ymin:g} px)",
                                    "draw the box around the object, or delete it"))
            continue
        outside = max(-box.xmin, -box.ymin, box.xmax - width, box.ymax - height)
        if outside > CLIP_TOLERANCE_PX:
            problems.append(Problem(where, f"reaches {outside:g} px outside the {width}x{height} image "
                                    f"({box.xmin:g}, {box.ymin:g}, {box.xmax:g}, {box.ymax:g})",
                                    "draw the box inside the image"))
            continue
        if outside > 0:
            notes.append(f"{where}: clipped by {outside:g} px to the image")
        clipped = Box(label, max(0.0, box.xmin), max(0.0, box.ymin), min(float(width), box.xmax),
                      min(float(height), box.ymax))
        fitted.append(clipped)
    return fitted, problems, notes


def _exif_rotated(path: Path) -> bool:
    with Image.open(path) as image:
        return image.getexif().get(0x0112, 1) in (5, 6, 7, 8)


def _rotate_to_exif(path: Path, box: Box) -> Box:
    """Maps a box drawn on the stored pixels to the EXIF-corrected image (90-degree turns)."""
    with Image.open(path) as image:
        orientation = image.getexif().get(0x0112, 1)
        stored_w, stored_h = image.size
    if orientation == 6:  # rotate 90 CW on display
        return Box(box.label, stored_h - box.ymax, box.xmin, stored_h - box.ymin, box.xmax)
    if orientation == 8:  # rotate 90 CCW on display
        return Box(box.label, box.ymin, stored_w - box.xmax, box.ymax, stored_w - box.xmin)
    return box
