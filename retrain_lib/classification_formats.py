"""Readers for the classification layouts people upload: a folder per class, or a CSV of labels.

Each reader returns `Sample`s (file relative to the data root, raw label, optional user split) plus the
problems and notes it met; decoding and counting happen later, in `retrain_lib.validation`.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from retrain_lib.errors import Problem
from retrain_lib.images import images_by_name, is_image_name

SPLIT_FOLDER_NAMES = {
    "train": "train", "training": "train",
    "val": "val", "valid": "val", "validation": "val",
    "test": "test", "testing": "test",
}
CSV_SPLIT_NAMES = {"TRAIN": "train", "VALIDATION": "val", "VAL": "val", "TEST": "test", "UNASSIGNED": None}


@dataclass(frozen=True)
class Sample:
    """One labelled image as the user gave it."""

    file: str
    label: str
    split: str | None = None


@dataclass
class ReadResult:
    """What a format reader found: samples, blocking problems and plain notes."""

    layout: str
    samples: list[Sample] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def read_classification(root: Path) -> ReadResult:
    """Detects the layout under `root` and reads it.

    A CSV file at the top level means the CSV layout; top-level folders named train/val/test mean
    split folders holding a folder per class; anything else is a folder per class.
    """
    csv_files = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() == ".csv")
    if csv_files:
        return from_csv(root, csv_files[0], extra_csvs=csv_files[1:])
    subdirs = [p for p in root.iterdir() if p.is_dir() and not _is_hidden(p.name)]
    if subdirs and all(p.name.lower() in SPLIT_FOLDER_NAMES for p in subdirs):
        return from_split_folders(root)
    return from_folders(root)


def from_folders(root: Path, split: str | None = None, layout: str = "folder per class") -> ReadResult:
    """Reads `root/<class>/**/<image>`; the class is the name of the top folder."""
    result = ReadResult(layout=layout)
    base = root.parent if split else root
    for entry in sorted(root.iterdir()):
        rel = _relative(entry, base)
        if _is_hidden(entry.name):
            result.notes.append(f"{rel}: hidden file or folder ignored")
        elif entry.is_file():
            if is_image_name(entry):
                result.problems.append(Problem(rel, "is an image outside any class folder",
                                               "move it into the folder named after its class"))
            else:
                result.notes.append(f"{rel}: not an image, ignored")
        elif entry.is_dir():
            _read_class_folder(entry, base, split, result)
    if not result.samples and not result.problems:
        result.problems.append(Problem(root.name or str(root), "holds no class folders with images",
                                       "upload a folder (or archive) with one sub-folder of images per class"))
    return result


def _read_class_folder(class_dir: Path, base: Path, split: str | None, result: ReadResult) -> None:
    count = 0
    for path in sorted(class_dir.rglob("*")):
        rel = _relative(path, base)
        if any(_is_hidden(part) for part in path.relative_to(class_dir).parts):
            if path.is_file():
                result.notes.append(f"{rel}: hidden file ignored")
            continue
        if not path.is_file():
            continue
        if is_image_name(path):
            result.samples.append(Sample(rel, class_dir.name, split))
            count += 1
        else:
            result.notes.append(f"{rel}: not an image, ignored")
    if count == 0:
        result.problems.append(Problem(_relative(class_dir, base) + "/",
                                       f"class folder '{class_dir.name}' has no images",
                                       "add images of this class or delete the empty folder"))


def from_split_folders(root: Path) -> ReadResult:
    """Reads `root/{train,val,test}/<class>/<image>`, keeping the user's split."""
    result = ReadResult(layout="split folders (train/val/test) with a folder per class")
    for split_dir in sorted(p for p in root.iterdir() if p.is_dir() and not _is_hidden(p.name)):
        part = from_folders(split_dir, split=SPLIT_FOLDER_NAMES[split_dir.name.lower()], layout=result.layout)
        part.samples = [Sample(s.file, s.label, s.split) for s in part.samples]
        result.samples += part.samples
        result.problems += part.problems
        result.notes += part.notes
    return result


def from_csv(root: Path, csv_path: Path, extra_csvs: list[Path] | None = None) -> ReadResult:
    """Reads a label CSV: rows of `path,label` or `TRAIN|VALIDATION|TEST,path,label` (Model Maker / AutoML).

    Paths are relative to the CSV's folder; absolute paths and URIs (gs://...) are matched by file name.
    """
    result = ReadResult(layout=f"CSV of labels ({csv_path.name})")
    for extra in extra_csvs or []:
        result.notes.append(f"{extra.name}: a second CSV file, ignored (only {csv_path.name} is read)")
    by_name = images_by_name(root)
    try:
        rows = list(csv.reader(csv_path.read_text(encoding="utf-8-sig").splitlines()))
    except UnicodeDecodeError as err:
        result.problems.append(Problem(csv_path.name, f"is not UTF-8 text ({err.reason})", "save the CSV as UTF-8"))
        return result
    rows = [(n, row) for n, row in enumerate(rows, start=1) if any(cell.strip() for cell in row)]
    if rows and _is_header(rows[0][1]):
        rows = rows[1:]
    for line_no, row in rows:
        where = f"{csv_path.name}:{line_no}"
        cells = [c.strip() for c in row]
        split = None
        if len(cells) >= 3 and cells[0].upper() in CSV_SPLIT_NAMES:
            split = CSV_SPLIT_NAMES[cells[0].upper()]
            cells = cells[1:]
        if len(cells) < 2 or not cells[0]:
            result.problems.append(Problem(where, f"row {row!r} does not have the form path,label",
                                           "write one image per row as path,label "
                                           "(optionally TRAIN|VALIDATION|TEST first)"))
            continue
        file_ref, label = cells[0], cells[1]
        resolved = _resolve_csv_path(root, csv_path.parent, file_ref, by_name)
        if resolved is None:
            result.problems.append(Problem(where, f"names the file '{file_ref}', which is not in the upload",
                                           "add the image to the archive or correct its path in the CSV"))
            continue
        result.samples.append(Sample(resolved, label, split))
    if not rows:
        result.problems.append(Problem(csv_path.name, "has no rows", "write one image per row as path,label"))
    listed = {s.file for s in result.samples}
    for rel in sorted(r for rels in by_name.values() for r in rels):
        if rel not in listed:
            result.notes.append(f"{rel}: image not listed in {csv_path.name}, ignored")
    return result


def _resolve_csv_path(root: Path, csv_dir: Path, ref: str, by_name: dict[str, list[str]]) -> str | None:
    ref_posix = ref.replace("\\", "/")
    pure = PurePosixPath(ref_posix)
    if "://" not in ref_posix and not pure.is_absolute() and ".." not in pure.parts:
        candidate = csv_dir / ref_posix
        if candidate.is_file():
            return _relative(candidate, root)
    matches = by_name.get(PurePosixPath(ref_posix).name, [])
    return matches[0] if len(matches) == 1 else None


def _is_header(row: list[str]) -> bool:
    lowered = [c.strip().lower() for c in row]
    names_path = any(c in ("path", "file", "filename", "image", "image_path") for c in lowered)
    return names_path and "label" in " ".join(lowered)


def _is_hidden(name: str) -> bool:
    return name.startswith(".") or name == "__MACOSX"


def _relative(path: Path, base: Path) -> str:
    return path.relative_to(base).as_posix()
