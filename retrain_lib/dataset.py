"""The dataset manifest of a job: what the upload stage writes and the later stages read."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, fields, replace
from pathlib import Path

from retrain_lib.atomic import atomic_write_text
from retrain_lib.validation import Record

MANIFEST_NAME = "manifest.csv"
CLASSES_NAME = "classes.txt"
HEALTH_NAME = "health.json"


@dataclass(frozen=True)
class Dataset:
    """A checked, split dataset.

    Attributes:
        data_dir: the folder the record paths are relative to.
        records: one per image, each with its split.
        classes: class names in label-index order.
    """

    data_dir: Path
    records: list[Record]
    classes: list[str]

    def split(self, name: str) -> list[Record]:
        """The records of one split ("train", "val" or "test")."""
        return [r for r in self.records if r.split == name]

    def counts(self) -> dict[str, dict[str, int]]:
        """Images per class per split: {split: {class: count}}."""
        table = {s: {c: 0 for c in self.classes} for s in ("train", "val", "test")}
        for record in self.records:
            table[record.split][record.label] += 1
        return table

    def labels(self, records: list[Record]) -> list[int]:
        """Class indices of `records`."""
        index = {c: i for i, c in enumerate(self.classes)}
        return [index[r.label] for r in records]


def write_dataset(dataset_dir: Path, data_dir: Path, records: list[Record], splits: list[str],
                  classes: list[str]) -> Dataset:
    """Writes the manifest (file, label, split, sha256, size, ...) and the class list."""
    dataset_dir.mkdir(parents=True, exist_ok=True)
    placed = [replace(r, split=s) for r, s in zip(records, splits, strict=True)]
    names = [f.name for f in fields(Record)]
    rows = [",".join(names)] + [_csv_line([getattr(r, n) for n in names]) for r in placed]
    atomic_write_text(dataset_dir / MANIFEST_NAME, "\n".join(rows) + "\n")
    atomic_write_text(dataset_dir / CLASSES_NAME, "\n".join(classes) + "\n")
    atomic_write_text(dataset_dir / "data_dir.txt", _portable(data_dir, dataset_dir.parent) + "\n")
    return Dataset(data_dir, placed, classes)


def load_dataset(dataset_dir: Path) -> Dataset:
    """Reads what `write_dataset` wrote."""
    classes = (dataset_dir / CLASSES_NAME).read_text(encoding="utf-8").splitlines()
    data_dir = dataset_dir.parent / (dataset_dir / "data_dir.txt").read_text(encoding="utf-8").strip()
    with open(dataset_dir / MANIFEST_NAME, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    records = [Record(file=row["file"], label=row["label"], split=row["split"], sha256=row["sha256"],
                      size=int(row["size"]), width=int(row["width"]), height=int(row["height"]),
                      mode=row["mode"], converted=row["converted"]) for row in rows]
    return Dataset(data_dir, records, classes)


def write_health(dataset_dir: Path, health: dict) -> None:
    atomic_write_text(dataset_dir / HEALTH_NAME, json.dumps(health, indent=2, ensure_ascii=False))


def _portable(data_dir: Path, job_dir: Path) -> str:
    """The data folder relative to the job folder when inside it, so job folders can move."""
    try:
        return data_dir.resolve().relative_to(job_dir.resolve()).as_posix()
    except ValueError:
        return str(data_dir.resolve())


def _csv_line(values: list) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(values)
    return buffer.getvalue()

