"""Stage 1: take the upload into the job, check every file, split, and write the dataset manifest."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from retrain_lib.archive import ExtractionLimits, copy_folder, extract_archive, is_archive
from retrain_lib.classification_formats import read_classification
from retrain_lib.dataset import Dataset, write_dataset, write_health
from retrain_lib.detection_dataset import (
    DetectionDataset,
    detection_health,
    draw_samples,
    split_detection,
    write_detection_dataset,
)
from retrain_lib.detection_formats import read_detection
from retrain_lib.detection_validation import check_detection
from retrain_lib.errors import input_error
from retrain_lib.health import build_health, plot_health
from retrain_lib.report import update_report
from retrain_lib.split import assign_splits
from retrain_lib.validation import DUPLICATE_CONFLICT_POLICIES, check_classification

TASKS = ("classification", "detection")


@dataclass
class UploadResult:
    """What the upload stage produced, for display."""

    dataset: Dataset | DetectionDataset
    health: dict[str, Any]
    health_plot: Path

    def tables(self) -> dict[str, dict[str, dict[str, int]]]:
        """Title -> table of the health report, for display."""
        if "boxes" in self.health:
            return {"Boxes per class and split": self.health["boxes"]}
        return {"Images per class and split": self.health["counts"]}


def run_upload(job_dir: Path, data_path: Path, task: str = "classification", min_images_per_class: int = 5,
               val_fraction: float = 0.1, test_fraction: float = 0.1, seed: int = 42,
               duplicate_conflicts: str = "error", max_upload_mb: int = 4096, max_files: int = 100_000,
               annotation_format: str = "auto", min_boxes_per_class: int = 5,
               allow_background_images: bool = False, detection_input_size: int = 320) -> UploadResult:
    """Brings `data_path` (archive or folder) into `job_dir/data`, checks it and writes `job_dir/dataset`.

    Raises:
        InputError: with every problem of the upload.
    """
    job_dir, data_path = Path(job_dir), Path(data_path)
    if task not in TASKS:
        raise input_error("task", f"is {task!r}", f"use one of {', '.join(TASKS)}")
    data_root = import_upload(job_dir, data_path, ExtractionLimits(max_total_bytes=max_upload_mb * 1024**2,
                                                                   max_files=max_files))
    if task == "detection":
        return _upload_detection(job_dir, data_root, annotation_format, min_boxes_per_class,
                                 allow_background_images, seed, val_fraction, test_fraction, detection_input_size)
    read = read_classification(data_root)
    if duplicate_conflicts not in DUPLICATE_CONFLICT_POLICIES:
        raise input_error("duplicate_conflicts", f"is {duplicate_conflicts!r}",
                          f"use one of {', '.join(DUPLICATE_CONFLICT_POLICIES)}")
    checked = check_classification(data_root, read, min_images_per_class=min_images_per_class,
                                   duplicate_conflicts=duplicate_conflicts)
    splits = assign_splits(checked.records, seed=seed, val_fraction=val_fraction, test_fraction=test_fraction)
    dataset_dir = job_dir / "dataset"
    dataset = write_dataset(dataset_dir, data_root, checked.records, splits, checked.classes)
    health = build_health(checked, dataset)
    write_health(dataset_dir, health)
    plot_path = plot_health(health, dataset_dir / "health.png")
    update_report(job_dir, dataset={"layout": checked.layout, "classes": dataset.classes,
                                    "counts": {s: sum(c.values()) for s, c in health["counts"].items()},
                                    "per_class": health["counts"], "notes": len(checked.notes)},
                  artifacts={"dataset_manifest": "dataset/manifest.csv", "health": "dataset/health.json"})
    return UploadResult(dataset, health, plot_path)


def import_upload(job_dir: Path, data_path: Path, limits: ExtractionLimits) -> Path:
    """Copies or safely extracts the upload into `job_dir/data` (replacing an earlier import).

    Returns:
        The folder holding the data.
    """
    if not data_path.exists():
        raise input_error(str(data_path), "does not exist", "give the path of a dataset folder or archive")
    target = job_dir / "data"
    staging = job_dir / ".data.partial"
    shutil.rmtree(staging, ignore_errors=True)
    if is_archive(data_path):
        root = extract_archive(data_path, staging, limits)
    elif data_path.is_dir():
        root = copy_folder(data_path, staging)
    else:
        raise input_error(data_path.name, "is neither a folder nor a .zip/.tar/.tar.gz archive",
                          "upload the dataset as a folder or as one of those archives")
    relative = root.relative_to(staging)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target / relative


def _upload_detection(job_dir: Path, data_root: Path, annotation_format: str, min_boxes_per_class: int,
                      allow_background_images: bool, seed: int, val_fraction: float, test_fraction: float,
                      input_size: int) -> UploadResult:
    fmt = None if annotation_format == "auto" else annotation_format
    read = read_detection(data_root, fmt)
    checked = check_detection(data_root, read, min_boxes_per_class=min_boxes_per_class,
                              allow_background_images=allow_background_images)
    records = split_detection(checked.records, seed, val_fraction, test_fraction)
    dataset_dir = job_dir / "dataset"
    dataset = write_detection_dataset(dataset_dir, data_root, records, checked.classes)
    health = detection_health(checked, dataset, input_size)
    write_health(dataset_dir, health)
    plot_path = draw_samples(dataset, dataset_dir / "health.png")
    update_report(job_dir, dataset={"layout": checked.format, "classes": dataset.classes,
                                    "counts": health["images_per_split"], "boxes": health["boxes"],
                                    "notes": len(health["notes"])},
                  artifacts={"dataset_manifest": "dataset/detection_manifest.json", "health": "dataset/health.json"})
    return UploadResult(dataset, health, plot_path)
