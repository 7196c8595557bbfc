"""Edge TPU: the analyzer against the real compiler's verdicts, the log parser on real compiler output."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from retrain_lib.edgetpu_analyzer import analyze_model, compiled_cpu_ops
from retrain_lib.edgetpu_compiler import CompilerError, compile_model, find_compiler, parse_compiler_log
from tests.conftest import PROJECT_DIR, SHARED_DIR

CORAL = SHARED_DIR / "coral_models"
PAIRS = sorted(p for p in CORAL.glob("*_edgetpu.tflite")) if CORAL.is_dir() else []
LOGS = Path(__file__).parent / "data" / "edgetpu_logs"


def test_shared_has_compiled_pairs():
    assert len(PAIRS) >= 7, "../shared/coral_models must hold the X / X_edgetpu pairs"


@pytest.mark.parametrize("compiled", PAIRS, ids=[p.name for p in PAIRS])
def test_analyzer_puts_on_the_cpu_exactly_what_the_compiler_left(compiled):
    source = compiled.with_name(compiled.name.replace("_edgetpu", ""))
    predicted = Counter(analyze_model(source).cpu_ops())
    assert predicted == Counter(compiled_cpu_ops(compiled))


def test_partially_mapped_model_explains_the_first_cpu_op():
    analysis = analyze_model(CORAL / "deeplabv3_mnv2_dm05_pascal_quant.tflite")
    first = next(v for v in analysis.ops if not v.mapped)
    assert first.op == "RESIZE_BILINEAR" and "1x1 to 33x33" in first.reason and first.fix
    later = [v for v in analysis.ops if v.index > first.index]
    assert all(not v.mapped and v.reason == "More than one subgraph is not supported" for v in later)
    assert (analysis.mapped_count, analysis.cpu_count) == (64, 8)


def test_float_model_ops_are_flagged_with_a_fix(tmp_path):
    import tensorflow as tf

    model = tf.keras.Sequential([tf.keras.Input((8, 8, 3)), tf.keras.layers.Conv2D(4, 3)])
    path = tmp_path / "float.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    analysis = analyze_model(path)
    first = analysis.ops[0]
    assert not first.mapped and "unsupported data type (FLOAT32" in first.reason
    assert "full-integer quantization" in first.fix


def test_cli_json_lists_ops_in_execution_order():
    done = subprocess.run([sys.executable, "-m", "retrain_lib.cli", "edgetpu-check", "--json",
                           str(CORAL / "deeplabv3_mnv2_dm05_pascal_quant.tflite")],
                          capture_output=True, text=True, cwd=PROJECT_DIR, timeout=120)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert [op["index"] for op in data["ops"]] == list(range(72))
    assert data["ops"][0]["op"] == "CONV_2D" and data["ops"][-1]["op"] == "ARG_MAX"
    assert set(data["ops"][0]) >= {"index", "op", "mapped", "reason"}
    assert (data["mapped_count"], data["cpu_count"]) == (64, 8)


def test_cli_table_and_bad_file(tmp_path):
    done = subprocess.run([sys.executable, "-m", "retrain_lib.cli", "edgetpu-check",
                           str(CORAL / "mobilenet_v2_1.0_224_quant.tflite")],
                          capture_output=True, text=True, cwd=PROJECT_DIR, timeout=120)
    assert done.returncode == 0
    assert done.stdout.strip().endswith("66 of 66 ops will run on the Edge TPU (predicted).")
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"not a model")
    done = subprocess.run([sys.executable, "-m", "retrain_lib.cli", "edgetpu-check", str(junk)],
                          capture_output=True, text=True, cwd=PROJECT_DIR, timeout=120)
    assert done.returncode == 2 and "not a readable .tflite" in done.stderr


def test_parse_log_with_cpu_ops():
    report = parse_compiler_log((LOGS / "v2_partial.txt").read_text())
    assert report.version == "2.1.302470888" and report.compiled
    assert (report.subgraphs, report.total_ops, report.tpu_ops, report.cpu_ops) == (1, 93, 83, 10)
    assert report.on_chip_bytes == int(6.86 * 1024**2) and report.off_chip_bytes == int(1.22 * 1024**2)
    statuses = Counter(r.status for r in report.operators)
    assert statuses["Operation not supported"] == 1
    assert statuses["Operation is working on an unsupported data type"] == 1
    assert sum(r.count for r in report.operators if r.mapped) == 83
    assert sum(r.count for r in report.operators) == 93


def test_parse_log_all_mapped_v16():
    report = parse_compiler_log((LOGS / "v16_all_mapped.txt").read_text())
    assert report.version == "16.0.384591198" and report.compiled
    assert (report.tpu_ops, report.cpu_ops, report.total_ops) == (50, 0, 50)
    assert report.on_chip_bytes == int(604.5 * 1024) and all(r.mapped for r in report.operators)


def test_parse_log_v15():
    report = parse_compiler_log((LOGS / "v15_one_cpu_op.txt").read_text())
    assert (report.tpu_ops, report.cpu_ops) == (135, 1)
    assert [r.op for r in report.operators if not r.mapped] == ["CUSTOM"]


def test_no_compiler_here_is_reported_plainly(tmp_path):
    assert find_compiler() is None, "Google's compiler cannot be installed on these machines"
    with pytest.raises(CompilerError, match="not installed and no compiler image"):
        compile_model(CORAL / "mobilenet_v1_0.25_128_quant.tflite", tmp_path)


def _job_with_int8_model(tmp_path: Path) -> Path:
    job = tmp_path / "job"
    export = job / "export"
    export.mkdir(parents=True)
    (export / "model_int8.tflite").write_bytes((CORAL / "mobilenet_v1_0.25_128_quant.tflite").read_bytes())
    (export / "manifest.json").write_text(json.dumps({"task": "classification", "labels": ["a"], "files": {}}))
    return job


def test_compile_command_takes_a_model_compiled_elsewhere(tmp_path):
    job = _job_with_int8_model(tmp_path)
    done = subprocess.run([sys.executable, "-m", "retrain_lib.cli", "compile", str(job), "--no-package", "--model",
                           str(CORAL / "mobilenet_v1_0.25_128_quant_edgetpu.tflite")],
                          capture_output=True, text=True, cwd=PROJECT_DIR, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (job / "export" / "model_edgetpu.tflite").exists()
    report = json.loads((job / "report.json").read_text())
    assert report["edgetpu"]["compiled"] is True and report["edgetpu"]["cpu_ops"] == []
    manifest = json.loads((job / "export" / "manifest.json").read_text())
    assert "model_edgetpu.tflite" in manifest["files"]


def test_compile_command_refuses_an_uncompiled_model(tmp_path):
    job = _job_with_int8_model(tmp_path)
    done = subprocess.run([sys.executable, "-m", "retrain_lib.cli", "compile", str(job), "--no-package", "--model",
                           str(CORAL / "mobilenet_v1_0.25_128_quant.tflite")],
                          capture_output=True, text=True, cwd=PROJECT_DIR, timeout=120)
    assert done.returncode == 2 and "no edgetpu-custom-op" in done.stderr
    assert not (job / "export" / "model_edgetpu.tflite").exists()


def test_compile_command_without_any_compiler_says_so(tmp_path):
    job = _job_with_int8_model(tmp_path)
    done = subprocess.run([sys.executable, "-m", "retrain_lib.cli", "compile", str(job), "--no-package"],
                          capture_output=True, text=True, cwd=PROJECT_DIR, timeout=120)
    assert done.returncode == 2 and "not installed on this server" in done.stderr
