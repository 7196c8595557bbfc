"""A whole classification job through papermill on real flowers, and its record."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from retrain_lib.pipeline import run_job
from retrain_lib.tflite_model import input_quantization, make_interpreter, tensor_type_problems
from tests.conftest import PROJECT_DIR

pytestmark = pytest.mark.slow
CLASSES = ("daisy", "dandelion", "tulip")
FAST = {"input_size": "96", "head_epochs": "15", "fine_tune_epochs": "3", "augment_views": "1",
        "cache_layer": "block_12_add"}


@pytest.fixture(scope="module")
def flowers_subset(tmp_path_factory, ) -> Path:
    from tests.conftest import FLOWERS_DIR

    assert FLOWERS_DIR.is_dir(), "../shared/datasets/flowers_128px is needed (CI always has it)"
    root = tmp_path_factory.mktemp("flowers") / "flowers"
    for label in CLASSES:
        (root / label).mkdir(parents=True)
        for path in sorted((FLOWERS_DIR / label).glob("*.jpg"))[:40]:
            shutil.copy(path, root / label / path.name)
    return root


@pytest.fixture(scope="module")
def finished_job(flowers_subset, tmp_path_factory) -> Path:
    job_dir = tmp_path_factory.mktemp("job") / "flowers-job"
    run_job("classification", flowers_subset, job_dir, dict(FAST), log=lambda line: None)
    return job_dir


def test_report_records_the_job(finished_job):
    report = json.loads((finished_job / "report.json").read_text())
    assert report["task"] == "classification"
    assert report["status"] == "succeeded"
    assert list(report["stages"]) == ["01_upload", "02_train", "03_convert"]
    assert all(s["status"] == "succeeded" and s["start"] and s["end"] for s in report["stages"].values())
    assert report["dataset"]["classes"] == list(CLASSES)
    assert sum(report["dataset"]["counts"].values()) == 120
    for key in ("model_int8", "labels", "manifest"):
        assert (finished_job / report["artifacts"][key]).is_file()
    for stage in report["stages"]:
        assert (finished_job / "notebooks" / f"{stage}.ipynb").is_file()
    assert report["training"]["pretrained"] is True


def test_int8_model_is_fully_integer_with_uint8_input(finished_job):
    model = finished_job / "export" / "model_int8.tflite"
    assert tensor_type_problems(model) == []
    quant = input_quantization(make_interpreter(model))
    assert quant.dtype == "uint8" and quant.shape == (1, 96, 96, 3)


def test_int8_accuracy_and_agreement(finished_job):
    report = json.loads((finished_job / "report.json").read_text())
    int8 = report["metrics"]["int8"]
    assert int8["accuracy"] > 0.6, "well above chance (1/3) for three flower classes"
    assert int8["agreement_with_float"] >= 0.9
    assert report["metrics"]["float"]["accuracy"] > 0.6
    manifest = json.loads((finished_job / "export" / "manifest.json").read_text())
    assert manifest["labels"] == list(CLASSES)
    assert manifest["input"]["dtype"] == "uint8"
    assert manifest["metrics"]["int8"]["accuracy"] == pytest.approx(int8["accuracy"])
    assert set(manifest["files"]) == {"model_int8.tflite", "labels.txt"}


def test_int8_model_agrees_with_keras_model_on_images(finished_job):
    import keras

    from retrain_lib.classifier import load_images
    from retrain_lib.dataset import load_dataset
    from retrain_lib.tflite_model import classify_batch

    dataset = load_dataset(finished_job / "dataset")
    images, _ = load_images(dataset, "test", 96)
    keras_top1 = keras.models.load_model(finished_job / "model" / "model.keras").predict(
        images.astype(np.float32), verbose=0).argmax(1)
    tflite_top1 = classify_batch(make_interpreter(finished_job / "export" / "model_int8.tflite"), images).argmax(1)
    assert (keras_top1 == tflite_top1).mean() >= 0.9


def test_same_seed_gives_the_same_split(finished_job, flowers_subset, tmp_path):
    run_job("classification", flowers_subset, tmp_path / "again", dict(FAST), stages=("01_upload",),
            log=lambda line: None)
    first = (finished_job / "dataset" / "manifest.csv").read_text()
    again = (tmp_path / "again" / "dataset" / "manifest.csv").read_text()
    assert first == again


def test_failed_job_names_stage_and_error(tmp_path):
    data = tmp_path / "data"
    (data / "cat").mkdir(parents=True)
    (data / "cat" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    result = subprocess.run([sys.executable, "-m", "retrain_lib.cli", "run", "--task", "classification",
                             "--data", str(data), "--job-dir", str(tmp_path / "job")],
                            capture_output=True, text=True, cwd=PROJECT_DIR, timeout=300)
    assert result.returncode == 1
    assert "stage 01_upload failed" in result.stderr and "cat/broken.jpg" in result.stderr
    report = json.loads((tmp_path / "job" / "report.json").read_text())
    assert report["status"] == "failed"
    assert report["error"]["stage"] == "01_upload"
    assert "cat/broken.jpg: cannot be decoded" in report["error"]["message"]
    assert report["stages"]["02_train"]["status"] == "pending"


def test_bad_parameter_is_refused_before_anything_runs(tmp_path):
    result = subprocess.run([sys.executable, "-m", "retrain_lib.cli", "run", "--task", "classification",
                             "--data", str(tmp_path), "--job-dir", str(tmp_path / "job"), "--set", "head_epochs=-2"],
                            capture_output=True, text=True, cwd=PROJECT_DIR, timeout=120)
    assert result.returncode == 2
    assert "head_epochs" in result.stderr and "outside the range" in result.stderr
    assert not (tmp_path / "job").exists()
