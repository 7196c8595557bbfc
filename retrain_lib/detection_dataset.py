"""The detection dataset of a job: split by image, manifest, health report and sample images with boxes."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from statistics import median
from typing import Any

import numpy as np

from retrain_lib.atomic import atomic_write_text
from retrain_lib.detection_formats import Box
from retrain_lib.detection_validation import CheckedDetection, DetectionRecord

MANIFEST_NAME = "detection_manifest.json"
SMALL_BOX_PX = 12  # boxes smaller than this at the model's input size are hard to detect


@dataclass(frozen=True)
class DetectionDataset:
    data_dir: Path
    records: list[DetectionRecord]
    classes: list[str]

    def split(self, name: str) -> list[DetectionRecord]:
        return [r for r in self.records if r.split == name]


def split_detection(records: list[DetectionRecord], seed: int, val_fraction: float,
                    test_fraction: float) -> list[DetectionRecord]:
    """Splits by image, keeping the user's split; others stratified by each image's rarest label.

    When the user gave train/test but no val, val is drawn from their train images.
    """
    rng = np.random.default_rng(seed)
    counts = Counter(b.label for r in records for b in r.boxes)
    given = {r.split for r in records if r.split}
    groups: dict[str, list[int]] = defaultdict(list)
    for i, record in enumerate(records):
        if record.split and not (record.split == "train" and "val" not in given):
            continue
        rarest = min((b.label for b in record.boxes), key=lambda label: counts[label], default="")
        groups[rarest].append(i)
    splits = [r.split for r in records]
    for label in sorted(groups):
        members = groups[label]
        order = rng.permutation(len(members))
        from_user_train = all(records[i].split == "train" for i in members)
        n_test = 0 if from_user_train else _share(len(members), test_fraction)
        n_val = _share(len(members), val_fraction)
        for rank, pick in enumerate(order):
            index = members[pick]
            splits[index] = "test" if rank < n_test else "val" if rank < n_test + n_val else "train"
    return [replace(r, split=s or "train") for r, s in zip(records, splits, strict=True)]


def _share(n: int, fraction: float) -> int:
    return max(1, round(n * fraction)) if fraction > 0 and n >= 3 else 0


def write_detection_dataset(dataset_dir: Path, data_dir: Path, records: list[DetectionRecord],
                            classes: list[str]) -> DetectionDataset:
    dataset_dir.mkdir(parents=True, exist_ok=True)
    try:
        data_rel = data_dir.resolve().relative_to(dataset_dir.parent.resolve()).as_posix()
    except ValueError:
        data_rel = str(data_dir.resolve())
    payload = {"data_dir": data_rel, "classes": classes,
               "records": [{**asdict(r), "boxes": [asdict(b) for b in r.boxes]} for r in records]}
    atomic_write_text(dataset_dir / MANIFEST_NAME, json.dumps(payload, indent=1, ensure_ascii=False))
    atomic_write_text(dataset_dir / "classes.txt", "\n".join(classes) + "\n")
    return DetectionDataset(data_dir, records, classes)


def load_detection_dataset(dataset_dir: Path) -> DetectionDataset:
    payload = json.loads((dataset_dir / MANIFEST_NAME).read_text(encoding="utf-8"))
    records = [DetectionRecord(r["file"], tuple(Box(**b) for b in r["boxes"]), r["width"], r["height"],
                               r["sha256"], r["split"]) for r in payload["records"]]
    return DetectionDataset(dataset_dir.parent / payload["data_dir"], records, payload["classes"])


def detection_health(checked: CheckedDetection, dataset: DetectionDataset, input_size: int) -> dict[str, Any]:
    """Boxes per class and split, box sizes relative to the model input, and warnings about tiny boxes."""
    per_split = {s: Counter(b.label for r in dataset.split(s) for b in r.boxes) for s in ("train", "val", "test")}
    relative = [max(b.xmax - b.xmin, b.ymax - b.ymin) / max(r.width, r.height) for r in dataset.records
                for b in r.boxes]
    small = sum(1 for v in relative if v * input_size < SMALL_BOX_PX)
    notes = list(checked.notes)
    if small:
        larger = [size for size in (384, 448, 512, 640) if size > input_size]
        fitting = [size for size in larger
                   if sum(1 for v in relative if v * size < SMALL_BOX_PX) <= 0.02 * len(relative)]
        suggestion = (f" (--set detection_input_size={(fitting or larger)[0]}: training and inference get slower)"
                      if larger else "")
        notes.append(f"{small} box(es) are smaller than {SMALL_BOX_PX} px at the model's {input_size} px input and "
                     f"will be hard to detect; use closer photos or a larger input size{suggestion}")
    return {
        "layout": checked.format, "classes": dataset.classes, "images": len(dataset.records),
        "images_per_split": {s: len(dataset.split(s)) for s in ("train", "val", "test")},
        "boxes": {s: {c: per_split[s][c] for c in dataset.classes} for s in per_split},
        "box_size_relative": {"min": min(relative, default=0), "median": median(relative) if relative else 0,
                              "max": max(relative, default=0)},
        "small_boxes": small, "notes": notes, "problems": [],
    }


def draw_samples(dataset: DetectionDataset, out_path: Path, count: int = 8,
                 predictions: dict[str, list[tuple[Box, float]]] | None = None) -> Path:
    """A grid of images with their true boxes (green) and, when given, predicted boxes (orange)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    from retrain_lib.images import load_rgb

    records = dataset.split("test")[:count] if predictions else dataset.records[:count]
    columns = 4
    rows = max(1, (len(records) + columns - 1) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3 * columns, 3 * rows))
    for ax in np.atleast_1d(axes).ravel():
        ax.axis("off")
    for ax, record in zip(np.atleast_1d(axes).ravel(), records, strict=False):
        image, _ = load_rgb(dataset.data_dir / record.file)
        ax.imshow(image)
        for box in record.boxes:
            ax.add_patch(Rectangle((box.xmin, box.ymin), box.xmax - box.xmin, box.ymax - box.ymin, fill=False,
                                   edgecolor="#2e7d32", linewidth=2))
        for box, score in (predictions or {}).get(record.file, []):
            ax.add_patch(Rectangle((box.xmin, box.ymin), box.xmax - box.xmin, box.ymax - box.ymin, fill=False,
                                   edgecolor="#ef6c00", linewidth=1.5, linestyle="--"))
            ax.text(box.xmin, box.ymin, f"{box.label} {score:.2f}", color="#ef6c00", fontsize=7)
        ax.set_title(Path(record.file).name, fontsize=8)
    fig.tight_layout()
    fig.savefig(out_path, dpi=80)
    plt.close(fig)
    return out_path
