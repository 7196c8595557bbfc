"""The model manifest: what the serving image needs to feed and read the model, and file hashes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from retrain_lib.atomic import atomic_write_text
from retrain_lib.images import PREPROCESSING
from retrain_lib.report import now

MANIFEST_NAME = "manifest.json"
LABELS_NAME = "labels.txt"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def write_labels(export_dir: Path, classes: list[str]) -> Path:
    """Writes labels.txt: one class per line, line number = class index."""
    path = export_dir / LABELS_NAME
    atomic_write_text(path, "\n".join(classes) + "\n")
    return path


def write_model_manifest(export_dir: Path, task: str, input_size: int, input_quant, output_quant,
                         classes: list[str], metrics: dict[str, Any], source_job: str) -> Path:
    """Writes manifest.json listing every other file of `export_dir` with its sha256."""
    files = {p.name: sha256_file(p) for p in sorted(export_dir.iterdir())
             if p.is_file() and p.name != MANIFEST_NAME and not p.name.startswith(".")}
    manifest = {
        "format": "coral-retrain-model/1",
        "task": task,
        "input": {"size": input_size, "shape": list(input_quant.shape), "dtype": input_quant.dtype,
                  "scale": input_quant.scale, "zero_point": input_quant.zero_point},
        "output": {"shape": list(output_quant.shape), "dtype": output_quant.dtype,
                   "scale": output_quant.scale, "zero_point": output_quant.zero_point},
        "labels": classes,
        "preprocessing": PREPROCESSING,
        "metrics": metrics,
        "files": files,
        "source_job": source_job,
        "created": now(),
    }
    path = export_dir / MANIFEST_NAME
    atomic_write_text(path, json.dumps(manifest, indent=2, ensure_ascii=False))
    return path
