"""Deterministic, stratified train/val/test split that keeps identical files together."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from retrain_lib.validation import Record

SPLITS = ("train", "val", "test")


def assign_splits(records: Sequence[Record], seed: int, val_fraction: float = 0.1,
                  test_fraction: float = 0.1) -> list[str]:
    """Chooses a split for every record.

    Records the user already placed keep their split; duplicates (same sha256) follow the first
    placed copy. The others are grouped by content, shuffled per class with `seed`, and dealt so
    every class with at least three distinct images has at least one in val and one in test.

    Returns:
        The split names, parallel to `records`.
    """
    by_hash_split = {r.sha256: r.split for r in records if r.split}
    groups: dict[str, list[int]] = defaultdict(list)
    for index, record in enumerate(records):
        groups[record.sha256].append(index)
    splits: list[str | None] = [by_hash_split.get(r.sha256) for r in records]
    per_class: dict[str, list[str]] = defaultdict(list)
    for sha, members in sorted(groups.items()):
        if splits[members[0]] is None:
            per_class[records[members[0]].label].append(sha)
    rng = np.random.default_rng(seed)
    for label in sorted(per_class):
        hashes = sorted(per_class[label])
        order = rng.permutation(len(hashes))
        n_test, n_val = _counts(len(hashes), val_fraction, test_fraction)
        for rank, pick in enumerate(order):
            split = "test" if rank < n_test else "val" if rank < n_test + n_val else "train"
            for index in groups[hashes[pick]]:
                splits[index] = split
    return [s or "train" for s in splits]


def _counts(n: int, val_fraction: float, test_fraction: float) -> tuple[int, int]:
    if n < 3:
        return 0, 0
    n_test = max(1, round(n * test_fraction)) if test_fraction > 0 else 0
    n_val = max(1, round(n * val_fraction)) if val_fraction > 0 else 0
    return n_test, n_val
