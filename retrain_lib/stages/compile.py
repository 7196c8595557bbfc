"""`retrain compile JOB`: add an Edge TPU model to a finished job (compiled here or elsewhere) and repackage."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from retrain_lib.edgetpu_analyzer import compiled_cpu_ops
from retrain_lib.edgetpu_step import EDGETPU_MODEL_NAME, edgetpu_report, write_edgetpu_report
from retrain_lib.errors import input_error
from retrain_lib.model_manifest import MANIFEST_NAME, sha256_file
from retrain_lib.report import update_report


def add_edgetpu_model(job_dir: Path, compiled_model: Path | None = None, compiler_image: str = "",
                      timeout_s: int = 300) -> dict[str, Any]:
    """Puts model_edgetpu.tflite into the job's export/: `compiled_model` (compiled elsewhere) or a fresh compile.

    Raises:
        InputError: the job has no int8 model, or `compiled_model` is not a compiled Edge TPU model.
    """
    export_dir = Path(job_dir) / "export"
    int8 = export_dir / "model_int8.tflite"
    if not int8.exists():
        raise input_error(str(int8), "does not exist", "run the job's convert stage first")
    if compiled_model is not None:
        if not compiled_model.is_file():
            raise input_error(str(compiled_model), "does not exist", "give the *_edgetpu.tflite the compiler wrote")
        try:
            cpu_ops = compiled_cpu_ops(compiled_model)
        except Exception as err:
            raise input_error(str(compiled_model), f"is not a .tflite model ({err})",
                              "give the *_edgetpu.tflite the compiler wrote") from err
        if len(cpu_ops) == len(_ops_of(compiled_model)):
            raise input_error(str(compiled_model), "has no edgetpu-custom-op: it was not compiled",
                              "run edgetpu_compiler on export/model_int8.tflite and give its output")
        shutil.copy2(compiled_model, export_dir / EDGETPU_MODEL_NAME)
        report = edgetpu_report(int8, export_dir, compile_edgetpu=False)
        report.update(compiled=True, source="measured (compiled elsewhere)", reason="compiled elsewhere",
                      cpu_ops=cpu_ops,
                      summary=f"{len(cpu_ops)} op(s) left on the CPU beside the Edge TPU part (measured)")
    else:
        report = edgetpu_report(int8, export_dir, True, compiler_image, timeout_s)
        if not report["compiled"]:
            raise input_error("edgetpu_compiler", report["reason"],
                              "install edgetpu_compiler, pass --compiler-image, or pass --model with a compiled file")
    write_edgetpu_report(export_dir, report)
    _refresh_manifest_hashes(export_dir)
    update_report(job_dir, edgetpu=report, artifacts={"model_edgetpu": f"export/{EDGETPU_MODEL_NAME}"})
    return report


def _ops_of(model: Path) -> list[str]:
    from retrain_lib.edgetpu_analyzer import analyze_model

    return [v.op for v in analyze_model(model).ops]


def _refresh_manifest_hashes(export_dir: Path) -> None:
    from retrain_lib.atomic import atomic_write_text

    path = export_dir / MANIFEST_NAME
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest["files"] = {p.name: sha256_file(p) for p in sorted(export_dir.iterdir())
                         if p.is_file() and p.name != MANIFEST_NAME and not p.name.startswith(".")}
    atomic_write_text(path, json.dumps(manifest, indent=2, ensure_ascii=False))
