"""A whole classification job through papermill on real flowers, and its record."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from retrain_lib.pipeline import run_job
from retrain_lib.tflite_model import input_quantization, make_interpreter, tensor_type_problems
from tests.conftest import FLOWER_CLASSES, PROJECT_DIR

pytestmark = pytest.mark.slow


def test_report_records_the_job(flowers_job):
    report = json.loads((flowers_job / "report.json").read_text())
    assert report["task"] == "classification"
    assert report["status"] == "succeeded"
    assert list(report["stages"]) == ["01_upload", "02_train", "03_convert", "04_package"]
    assert all(s["status"] == "succeeded" and s["start"] and s["end"] for s in report["stages"].values())
    assert report["dataset"]["classes"] == list(FLOWER_CLASSES)
    assert sum(report["dataset"]["counts"].values()) == 120
    for key in ("model_int8", "labels", "manifest"):
        assert (flowers_job / report["artifacts"][key]).is_file()
    for stage in report["stages"]:
        assert (flowers_job / "notebooks" / f"{stage}.ipynb").is_file()
    assert report["training"]["pretrained"] is True


def test_calibration_images_chosen_by_training_are_training_images(flowers_job):
    """int8-aware training and the convert stage calibrate on one recorded set of training images."""
    from retrain_lib.dataset import load_dataset

    report = json.loads((flowers_job / "report.json").read_text())
    assert report["training"]["config"]["int8_aware"] is True
    names = (flowers_job / report["artifacts"]["calibration"]).read_text().splitlines()
    train_files = {r.file for r in load_dataset(flowers_job / "dataset").split("train")}
    wanted = min(report["training"]["config"]["representative_images"], len(train_files))
    assert len(names) == len(set(names)) == wanted
    assert set(names) <= train_files


def test_int8_model_is_fully_integer_with_uint8_input(flowers_job):
    model = flowers_job / "export" / "model_int8.tflite"
    assert tensor_type_problems(model) == []
    quant = input_quantization(make_interpreter(model))
    assert quant.dtype == "uint8" and quant.shape == (1, 96, 96, 3)


def test_int8_accuracy_and_agreement(flowers_job):
    report = json.loads((flowers_job / "report.json").read_text())
    int8 = report["metrics"]["int8"]
    assert int8["accuracy"] > 0.6, "well above chance (1/3) for three flower classes"
    assert int8["agreement_with_float"] >= 0.9
    # the gate's reference: the float upper blocks on the int8 lower backbone, as int8-aware training left them;
    # only the trained blocks' quantization separates the int8 model from it
    assert int8["agreement_with_trained"] >= 0.95
    assert int8["agreement_with_trained"] >= int8["agreement_with_float"] - 0.02
    assert report["metrics"]["float"]["accuracy"] > 0.6
    manifest = json.loads((flowers_job / "export" / "manifest.json").read_text())
    assert manifest["labels"] == list(FLOWER_CLASSES)
    assert manifest["input"]["dtype"] == "uint8"
    assert manifest["metrics"]["int8"]["accuracy"] == pytest.approx(int8["accuracy"])
    assert set(manifest["files"]) == {"model_int8.tflite", "labels.txt", "edgetpu_report.json"}
    edgetpu = report["edgetpu"]
    assert edgetpu["source"] == "predicted" and not edgetpu["compiled"]
    assert edgetpu["mapped"] == edgetpu["total"], "our classifier must map 100 % to the Edge TPU"
    assert edgetpu["summary"].endswith("ops will run on the Edge TPU (predicted)")
    assert "not installed" in edgetpu["reason"]


def test_int8_model_agrees_with_keras_model_on_images(flowers_job):
    """An independent path (Keras vs the exported file in LiteRT) over all 120 images: the stage's own gate
    measured the same thing; 12 test images alone are too few for a 90 % bar."""
    import keras

    from retrain_lib.classifier import load_images
    from retrain_lib.dataset import load_dataset
    from retrain_lib.tflite_model import classify_batch

    dataset = load_dataset(flowers_job / "dataset")
    images = np.concatenate([load_images(dataset, split, 96)[0] for split in ("train", "val", "test")])
    keras_top1 = keras.models.load_model(flowers_job / "model" / "model.keras").predict(
        images.astype(np.float32), verbose=0).argmax(1)
    tflite_top1 = classify_batch(make_interpreter(flowers_job / "export" / "model_int8.tflite"), images).argmax(1)
    assert len(images) == 120
    assert (keras_top1 == tflite_top1).mean() >= 0.9


def test_same_seed_gives_the_same_split(flowers_job, flowers_subset, tmp_path):
    run_job("classification", flowers_subset, tmp_path / "again", {}, stages=("01_upload",),
            log=lambda line: None)
    first = (flowers_job / "dataset" / "manifest.csv").read_text()
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
