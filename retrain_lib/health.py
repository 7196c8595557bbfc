"""The dataset health report: counts per class and split, image sizes, problems and notes."""

from __future__ import annotations

from pathlib import Path
from statistics import median
from typing import Any

from retrain_lib.dataset import Dataset
from retrain_lib.validation import CheckedDataset


def build_health(checked: CheckedDataset, dataset: Dataset) -> dict[str, Any]:
    """Summarises a checked, split dataset as a JSON-ready dict."""
    widths = [r.width for r in dataset.records]
    heights = [r.height for r in dataset.records]
    counts = dataset.counts()
    return {
        "layout": checked.layout,
        "classes": dataset.classes,
        "images": len(dataset.records),
        "counts": counts,
        "per_class": {c: sum(counts[s][c] for s in counts) for c in dataset.classes},
        "image_size": {
            "width": {"min": min(widths), "median": median(widths), "max": max(widths)},
            "height": {"min": min(heights), "median": median(heights), "max": max(heights)},
        },
        "duplicate_groups": checked.duplicate_groups,
        "notes": checked.notes,
        "problems": [],
    }


def plot_health(health: dict[str, Any], out_path: Path) -> Path:
    """Draws images per class (stacked by split) beside the image-size spread; saves a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    classes = health["classes"]
    fig, (bars, sizes) = plt.subplots(1, 2, figsize=(11, 3.8))
    bottom = [0] * len(classes)
    for split, colour in (("train", "#4c72b0"), ("val", "#dd8452"), ("test", "#55a868")):
        values = [health["counts"][split][c] for c in classes]
        bars.bar(classes, values, bottom=bottom, label=split, color=colour)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    bars.set_title("Images per class")
    bars.legend()
    bars.tick_params(axis="x", rotation=30)
    size = health["image_size"]
    sizes.bar(["width", "height"], [size["width"]["median"], size["height"]["median"]], color="#8172b2")
    for i, key in enumerate(("width", "height")):
        sizes.plot([i, i], [size[key]["min"], size[key]["max"]], color="black")
    sizes.set_title("Image size in pixels (median, min-max)")
    fig.tight_layout()
    fig.savefig(out_path, dpi=90)
    plt.close(fig)
    return out_path
