"""Checks every file and label of a classification upload and reports all problems at once."""

from __future__ import annotations

from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from retrain_lib.classification_formats import ReadResult
from retrain_lib.errors import InputError, Problem
from retrain_lib.images import ImageDecodeError, ImageInfo, inspect_image


@dataclass(frozen=True)
class Record:
    """One checked image: the row of the dataset manifest."""

    file: str
    label: str
    split: str | None
    sha256: str
    size: int
    width: int
    height: int
    mode: str
    converted: str


@dataclass
class CheckedDataset:
    """A dataset that passed every check, with what the user should know about it."""

    layout: str
    records: list[Record]
    classes: list[str]
    notes: list[str] = field(default_factory=list)
    duplicate_groups: list[list[str]] = field(default_factory=list)


def normalise_label(label: str) -> str:
    """Trims a label and folds runs of white space into one space."""
    return " ".join(label.split())


DUPLICATE_CONFLICT_POLICIES = ("error", "exclude")


def check_classification(root: Path, read: ReadResult, min_images_per_class: int = 5,
                         duplicate_conflicts: str = "error", workers: int = 4) -> CheckedDataset:
    """Decodes every image, checks labels, counts and duplicates.

    Args:
        root: the folder the sample paths are relative to.
        read: what a reader of `retrain_lib.classification_formats` found.
        min_images_per_class: fewer distinct images than this in a class is an error.
        duplicate_conflicts: identical files under different labels are an "error", or are
            all left out ("exclude") and listed in the notes.
        workers: threads decoding images.

    Raises:
        InputError: with every problem found, reader problems included.
    """
    problems = list(read.problems)
    notes = list(read.notes)
    problems += _label_problems([s.label for s in read.samples])
    with ThreadPoolExecutor(max_workers=workers) as pool:
        infos = list(pool.map(lambda s: _inspect(root / s.file), read.samples))
    records = []
    for sample, info in zip(read.samples, infos, strict=True):
        if isinstance(info, str):
            problems.append(Problem(sample.file, f"cannot be decoded as an image ({info})",
                                    "re-export the image as JPEG or PNG, or remove it"))
            continue
        records.append(Record(sample.file, normalise_label(sample.label), sample.split, info.sha256, info.size,
                              info.width, info.height, info.mode, info.converted))
    converted = [r for r in records if r.converted]
    if converted:
        modes = Counter(r.converted for r in converted)
        notes += [f"{n} image(s): {what}" for what, n in sorted(modes.items())]
    groups = _duplicate_groups(records)
    conflicts = [g for g in groups if len({r.label for r in g}) > 1]
    if duplicate_conflicts == "exclude" and conflicts:
        dropped = {r.file for g in conflicts for r in g}
        records = [r for r in records if r.file not in dropped]
        groups = [g for g in groups if g not in conflicts]
        notes += [f"left out (same image under labels {', '.join(sorted({r.label for r in g}))}): "
                  f"{', '.join(r.file for r in g)}" for g in conflicts]
    problems += _duplicate_problems(groups)
    problems += _count_problems(records, min_images_per_class)
    if problems:
        raise InputError(problems)
    notes += [f"duplicate files (same bytes, kept in the same split): {', '.join(r.file for r in g)}"
              for g in groups]
    classes = sorted({r.label for r in records})
    return CheckedDataset(read.layout, records, classes, notes, [[r.file for r in g] for g in groups])


def _inspect(path: Path) -> ImageInfo | str:
    try:
        return inspect_image(path)
    except ImageDecodeError as err:
        return str(err)


def _label_problems(labels: list[str]) -> list[Problem]:
    problems = []
    spellings: dict[str, set[str]] = defaultdict(set)
    for label in labels:
        if not normalise_label(label):
            problems.append(Problem(f"label {label!r}", "is empty", "give every image a class name"))
        else:
            spellings[normalise_label(label)].add(label)
    for normal, raw in sorted(spellings.items()):
        if len(raw) > 1:
            shown = ", ".join(repr(r) for r in sorted(raw))
            problems.append(Problem(f"label '{normal}'", f"is spelled differently with white space: {shown}",
                                    "use one spelling for the class (they are never merged silently)"))
    by_case: dict[str, set[str]] = defaultdict(set)
    for normal in spellings:
        by_case[normal.casefold()].add(normal)
    for variants in by_case.values():
        if len(variants) > 1:
            shown = ", ".join(repr(v) for v in sorted(variants))
            problems.append(Problem(f"labels {shown}", "differ only in upper/lower case",
                                    "rename them to one spelling if they are the same class, "
                                    "or to clearly different names"))
    return problems


def _duplicate_groups(records: list[Record]) -> list[list[Record]]:
    by_hash: dict[str, list[Record]] = defaultdict(list)
    for record in records:
        by_hash[record.sha256].append(record)
    return [group for group in by_hash.values() if len(group) > 1]


def _duplicate_problems(groups: list[list[Record]]) -> list[Problem]:
    problems = []
    for group in groups:
        files = ", ".join(r.file for r in group)
        labels = sorted({r.label for r in group})
        if len(labels) > 1:
            problems.append(Problem(files, f"are the same image labelled {', '.join(repr(x) for x in labels)}",
                                    "keep one copy under its right class and delete the others, "
                                    "or set duplicate_conflicts=exclude to leave all copies out"))
        splits = sorted({r.split for r in group if r.split})
        if len(splits) > 1:
            problems.append(Problem(files, f"are the same image placed in the splits {', '.join(splits)}",
                                    "keep the copies in one split, or the test accuracy measures memory, not skill"))
    return problems


def _count_problems(records: list[Record], min_images_per_class: int) -> list[Problem]:
    problems = []
    distinct: dict[str, set[str]] = defaultdict(set)
    for record in records:
        distinct[record.label].add(record.sha256)
    if len(distinct) < 2:
        found = ", ".join(repr(c) for c in sorted(distinct)) or "none"
        problems.append(Problem("dataset", f"has {len(distinct)} class(es) ({found}); at least 2 are needed",
                                "add a folder (or CSV label) for every class the model should tell apart"))
    for label, hashes in sorted(distinct.items()):
        if len(hashes) < min_images_per_class:
            problems.append(Problem(f"class '{label}'",
                                    f"has {len(hashes)} distinct image(s), "
                                    f"fewer than the minimum of {min_images_per_class}",
                                    f"add at least {min_images_per_class - len(hashes)} more images of '{label}'"))
    return problems
