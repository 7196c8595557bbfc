"""The Edge TPU step of a job: compile when a compiler can be used, predict with the analyzer always.

The job report gets "N of M ops will run on the Edge TPU", labelled "measured" (compiled) or "predicted".
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from retrain_lib.atomic import atomic_write_text
from retrain_lib.edgetpu_analyzer import analyze_model
from retrain_lib.edgetpu_compiler import CompilerError, compile_model, find_compiler

EDGETPU_MODEL_NAME = "model_edgetpu.tflite"
# Ops that run on the CPU in Coral's own SSD and EfficientDet models too: the detection tail.
EXPECTED_CPU_TAIL = ("DEQUANTIZE", "TFLite_Detection_PostProcess")


def edgetpu_report(model_path: Path, export_dir: Path, compile_edgetpu: bool = True, compiler_image: str = "",
                   timeout_s: int = 300) -> dict[str, Any]:
    """Predicts the mapping, compiles when possible (writing model_edgetpu.tflite), and describes both."""
    analysis = analyze_model(model_path)
    ops = [op.__dict__ for op in analysis.ops]
    report: dict[str, Any] = {"predicted": {"mapped": analysis.mapped_count, "total": len(analysis.ops), "ops": ops},
                              "advice": advice(analysis)}
    compiled = None
    if compile_edgetpu and (find_compiler() or (compiler_image and _docker_available())):
        try:
            out_dir = export_dir.parent / ".edgetpu-compile"
            shutil.rmtree(out_dir, ignore_errors=True)
            path, parsed, output = compile_model(model_path, out_dir, timeout_s, compiler_image)
            shutil.move(str(path), export_dir / EDGETPU_MODEL_NAME)
            atomic_write_text(export_dir / "edgetpu_compiler.log", output)
            shutil.rmtree(out_dir, ignore_errors=True)
            compiled = parsed
        except CompilerError as err:
            report["compiler_error"] = str(err)
    if compiled is not None:
        mapped, total = compiled.tpu_ops or 0, compiled.total_ops or 0
        report.update(compiled=True, source="measured", mapped=mapped, total=total, compiler=compiled.to_dict(),
                      reason="compiled with edgetpu_compiler " + compiled.version)
    else:
        mapped, total = analysis.mapped_count, len(analysis.ops)
        reason = report.get("compiler_error") or (
            "edgetpu_compiler is not installed on this server" if compile_edgetpu else "compilation was switched off")
        report.update(compiled=False, source="predicted", mapped=mapped, total=total,
                      reason=f"{reason}; the robot runs the int8 model on its CPU until it is compiled "
                             "(`retrain compile JOB` on a machine with the compiler)")
    report["summary"] = f"{mapped} of {total} ops will run on the Edge TPU ({report['source']})"
    return report


def advice(analysis) -> list[str]:
    """Plain advice for every op that stays on the CPU, the expected detection tail excepted."""
    lines = []
    first_cut = next((v for v in analysis.ops if not v.mapped and v.op not in EXPECTED_CPU_TAIL), None)
    if first_cut is not None:
        later = sum(1 for v in analysis.ops if v.index > first_cut.index and not v.mapped)
        lines.append(f"Op {first_cut.index} ({first_cut.op}) runs on the CPU: {first_cut.reason}. "
                     f"Fix: {first_cut.fix}." + (f" The {later} ops after it run on the CPU too." if later else ""))
    elif any(not v.mapped for v in analysis.ops):
        lines.append("Only the detection post-processing runs on the CPU, as in Coral's own detection models.")
    return lines


def write_edgetpu_report(export_dir: Path, report: dict[str, Any]) -> Path:
    path = export_dir / "edgetpu_report.json"
    atomic_write_text(path, json.dumps(report, indent=2))
    return path


def _docker_available() -> bool:
    from retrain_lib.packaging import docker_client

    return docker_client() is not None
