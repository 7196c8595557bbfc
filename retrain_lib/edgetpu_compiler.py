"""Running Google's edgetpu_compiler (locally or in a Docker image) and parsing what it prints."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

COMPILER = "edgetpu_compiler"
COMPILER_DOCKERFILE = Path(__file__).resolve().parent.parent / "edge_image" / "compiler.Dockerfile"
DEFAULT_COMPILER_IMAGE = "coral-retrain/edgetpu-compiler:16"
_SIZE = re.compile(r"([\d.]+)\s*(B|KiB|MiB|GiB)")
_UNITS = {"B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}


class CompilerError(RuntimeError):
    """The compiler failed or timed out; the message carries its output."""


@dataclass(frozen=True)
class OperatorRow:
    """One line of the compiler's operator table."""

    op: str
    count: int
    status: str

    @property
    def mapped(self) -> bool:
        return self.status == "Mapped to Edge TPU"


@dataclass
class CompilerReport:
    """What the compiler said about a model."""

    version: str = ""
    subgraphs: int | None = None
    total_ops: int | None = None
    tpu_ops: int | None = None
    cpu_ops: int | None = None
    on_chip_bytes: int | None = None
    off_chip_bytes: int | None = None
    operators: list[OperatorRow] = field(default_factory=list)
    compiled: bool = False

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["operators"] = [asdict(r) | {"mapped": r.mapped} for r in self.operators]
        return data


def parse_compiler_log(text: str) -> CompilerReport:
    """Parses the compiler's standard output (with -s) or its .log file into a `CompilerReport`.

    Operator counts not printed (all ops mapped, older compilers) are derived from the table.
    """
    report = CompilerReport()
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("Edge TPU Compiler version"):
            report.version = stripped.rsplit(" ", 1)[-1]
        elif stripped.startswith("Model compiled successfully") or stripped == "Compilation succeeded!":
            report.compiled = True
        elif stripped.startswith("Number of Edge TPU subgraphs:"):
            report.subgraphs = int(stripped.rsplit(":", 1)[1])
        elif stripped.startswith("Total number of operations:"):
            report.total_ops = int(stripped.rsplit(":", 1)[1])
        elif stripped.startswith("Number of operations that will run on Edge TPU:"):
            report.tpu_ops = int(stripped.rsplit(":", 1)[1])
        elif stripped.startswith("Number of operations that will run on CPU:"):
            report.cpu_ops = int(stripped.rsplit(":", 1)[1])
        elif stripped.startswith("On-chip memory used for caching model parameters:"):
            report.on_chip_bytes = _bytes(stripped)
        elif stripped.startswith("Off-chip memory used for streaming uncached model parameters:"):
            report.off_chip_bytes = _bytes(stripped)
        else:
            row = _operator_row(stripped)
            if row:
                report.operators.append(row)
    if report.operators:
        mapped = sum(r.count for r in report.operators if r.mapped)
        total = sum(r.count for r in report.operators)
        report.tpu_ops = mapped if report.tpu_ops is None else report.tpu_ops
        report.cpu_ops = total - mapped if report.cpu_ops is None else report.cpu_ops
        report.total_ops = total if report.total_ops is None else report.total_ops
    return report


def _operator_row(line: str) -> OperatorRow | None:
    match = re.match(r"^([A-Za-z][A-Za-z0-9_\-]*)\s+(\d+)\s{2,}(\S.*)$", line)
    if not match or match.group(1) in ("Operator", "Number"):
        return None
    return OperatorRow(match.group(1), int(match.group(2)), match.group(3).strip())


def _bytes(line: str) -> int | None:
    match = _SIZE.search(line.rsplit(":", 1)[1])
    return int(float(match.group(1)) * _UNITS[match.group(2)]) if match else None


def find_compiler() -> str | None:
    """The path of a local edgetpu_compiler, or None."""
    return shutil.which(COMPILER)


def compile_model(model_path: Path, out_dir: Path, timeout_s: int = 300,
                  compiler_image: str = "") -> tuple[Path, CompilerReport, str]:
    """Compiles `model_path` into `out_dir` with the local compiler, or with `compiler_image` through Docker.

    Returns:
        (path of the *_edgetpu.tflite, the parsed report, the compiler's full output).

    Raises:
        CompilerError: no compiler, a failure, or a timeout.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    local = find_compiler()
    if local:
        command = [local, "-s", "-o", str(out_dir), str(model_path)]
    elif compiler_image:
        shutil.copy2(model_path, out_dir / model_path.name)
        command = ["docker", "run", "--rm", "--network", "none", "-v", f"{out_dir.resolve()}:/work",
                   compiler_image, "-s", "-o", "/work", f"/work/{model_path.name}"]
    else:
        raise CompilerError(f"{COMPILER} is not installed and no compiler image is configured")
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as err:
        raise CompilerError(f"{COMPILER} did not finish within {timeout_s} s") from err
    output = done.stdout + done.stderr
    compiled = out_dir / f"{model_path.stem}_edgetpu.tflite"
    if done.returncode != 0 or not compiled.exists():
        raise CompilerError(f"{COMPILER} failed (exit {done.returncode}):\n{output[-3000:]}")
    return compiled, parse_compiler_log(output), output
