"""Stage 3: full-int8 conversion, float vs int8 evaluation on the test split, the model bundle."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from retrain_lib.classifier import load_images, trained_model_predictions
from retrain_lib.dataset import load_dataset
from retrain_lib.edgetpu_step import edgetpu_report, write_edgetpu_report
from retrain_lib.errors import input_error
from retrain_lib.evaluation import classification_metrics, plot_confusion
from retrain_lib.model_manifest import write_labels, write_model_manifest
from retrain_lib.quantize import CALIBRATION_FILE, calibration_indices, convert_to_int8
from retrain_lib.report import read_report, update_report
from retrain_lib.tflite_model import (
    classify_batch,
    input_quantization,
    make_interpreter,
    output_quantization,
    tensor_type_problems,
)

MODEL_INT8_NAME = "model_int8.tflite"
MAX_AGREEMENT_IMAGES = 1000


def new_staging(job_dir: Path) -> Path:
    """An empty `job_dir/.export.partial` where the bundle is assembled before `publish_export`."""
    staging = job_dir / ".export.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    return staging


def write_bundle(staging: Path, task: str, input_size: int, interpreter, classes: list[str],
                 summary: dict[str, Any], job_id: str, edgetpu: dict[str, Any]) -> None:
    """The files beside the int8 model: Edge TPU report, labels, and last the manifest hashing them all."""
    write_edgetpu_report(staging, edgetpu)
    write_labels(staging, classes)
    write_model_manifest(staging, task, input_size, input_quantization(interpreter), output_quantization(interpreter),
                         classes, summary, job_id)


def publish_export(job_dir: Path, staging: Path) -> Path:
    """Replaces `job_dir/export` by the assembled staging folder in one rename; returns the export folder."""
    export_dir = job_dir / "export"
    shutil.rmtree(export_dir, ignore_errors=True)
    staging.rename(export_dir)
    return export_dir


class QualityGateError(RuntimeError):
    """The int8 model strays too far from the float model to ship."""


@dataclass
class ConvertResult:
    """What the convert stage produced, for display."""

    model_path: Path
    float_metrics: dict[str, Any]
    int8_metrics: dict[str, Any]
    agreement: float
    confusion_plot: Path
    edgetpu: dict[str, Any]
    agreement_with_trained: float | None = None

    @property
    def summary(self) -> str:
        text = (f"test accuracy: float {self.float_metrics['accuracy']:.3f}, int8 {self.int8_metrics['accuracy']:.3f};"
                f" int8/float top-1 agreement {self.agreement:.1%}")
        if self.agreement_with_trained is not None:
            text += f"; int8/trained-model agreement {self.agreement_with_trained:.1%} (the gate)"
        return text


def run_convert(job_dir: Path, input_size: int, representative_images: int = 200,
                min_int8_agreement: float = 0.95, seed: int = 42, compile_edgetpu: bool = True,
                compiler_image: str = "", compiler_timeout_s: int = 300) -> ConvertResult:
    """Quantizes `job_dir/model/model.keras` into `job_dir/export/` and checks it.

    The agreement gate compares the int8 model with the model as training made it: for an int8-aware job that
    is the float upper blocks and head on the int8 lower backbone (`classifier.trained_model_predictions`),
    otherwise the float model. Agreement with the all-float model is reported either way.

    Raises:
        QualityGateError: int8 top-1 agreement with the trained model below `min_int8_agreement`, or tensors
            left unquantized.
    """
    import keras

    job_dir = Path(job_dir)
    if not 0.0 <= min_int8_agreement <= 1.0:
        raise input_error("min_int8_agreement", f"is {min_int8_agreement}", "use a fraction between 0 and 1")
    dataset = load_dataset(job_dir / "dataset")
    model = keras.models.load_model(job_dir / "model" / "model.keras")
    train_images, _ = load_images(dataset, "train", input_size)
    pick = _calibration(job_dir, dataset, representative_images, seed)

    staging = new_staging(job_dir)
    model_path = convert_to_int8(model, train_images[pick], staging / MODEL_INT8_NAME)
    untyped = tensor_type_problems(model_path)
    if untyped:
        raise QualityGateError("the int8 model still has non-integer tensors: " + "; ".join(untyped[:5]))

    test_images, test_labels = load_images(dataset, "test", input_size)
    interpreter = make_interpreter(model_path)
    check_images = _agreement_images(test_images, dataset, input_size, train_images, pick)
    float_top1 = model.predict(check_images.astype("float32"), batch_size=64, verbose=0).argmax(axis=1)
    int8_top1 = classify_batch(interpreter, check_images).argmax(axis=1)
    agreement = _share_equal(float_top1, int8_top1)
    cache_layer = _int8_aware_cache_layer(job_dir)
    agreement_with_trained = None
    if cache_layer:
        with tempfile.TemporaryDirectory(prefix="trained-reference-") as tmp:
            trained_top1 = trained_model_predictions(model, cache_layer, train_images[pick], check_images,
                                                     Path(tmp)).argmax(axis=1)
        agreement_with_trained = _share_equal(trained_top1, int8_top1)
    gated = agreement if agreement_with_trained is None else agreement_with_trained
    n_test = len(test_labels)
    float_metrics = classification_metrics(test_labels, float_top1[:n_test], dataset.classes)
    int8_metrics = classification_metrics(test_labels, int8_top1[:n_test], dataset.classes)
    confusion = plot_confusion(int8_metrics["confusion_matrix"], dataset.classes, job_dir / "model" /
                               "confusion_int8.png", "Test split, int8 model")

    edgetpu = edgetpu_report(model_path, staging, compile_edgetpu, compiler_image, compiler_timeout_s)
    agreements = {"agreement_with_float": agreement}
    if agreement_with_trained is not None:
        agreements["agreement_with_trained"] = agreement_with_trained
    summary = {"float": {"accuracy": float_metrics["accuracy"]},
               "int8": {"accuracy": int8_metrics["accuracy"], **agreements},
               "test_images": int(len(test_labels)), "agreement_images": int(len(check_images))}
    write_bundle(staging, "classification", input_size, interpreter, dataset.classes, summary, job_dir.name, edgetpu)
    export_dir = publish_export(job_dir, staging)
    update_report(job_dir,
                  metrics={"int8": {"accuracy": int8_metrics["accuracy"], **agreements,
                                    "agreement_images": int(len(check_images)),
                                    "per_class": int8_metrics["per_class"]}},
                  edgetpu=edgetpu,
                  artifacts={"model_int8": f"export/{MODEL_INT8_NAME}", "labels": "export/labels.txt",
                             "manifest": "export/manifest.json", "confusion_matrix_int8": "model/confusion_int8.png"})
    if gated < min_int8_agreement:
        reference = "float" if agreement_with_trained is None else "trained (int8-aware)"
        raise QualityGateError(
            f"int8 and {reference} models agree on {gated:.1%} of {len(check_images)} images, below the "
            f"threshold of {min_int8_agreement:.0%}. Fix: give more varied training images (the calibration "
            f"draws on them), raise representative_images, or lower min_int8_agreement if you accept it")
    return ConvertResult(export_dir / MODEL_INT8_NAME, float_metrics, int8_metrics, agreement, confusion, edgetpu,
                         agreement_with_trained)


def _share_equal(a: np.ndarray, b: np.ndarray) -> float:
    return float((a == b).mean()) if len(a) else 1.0


def _int8_aware_cache_layer(job_dir: Path) -> str:
    """The layer whose int8 activations the train stage trained on; empty when training was not int8-aware."""
    config = read_report(job_dir).get("training", {}).get("config", {})
    return config.get("cache_layer", "") if config.get("int8_aware") else ""


def _calibration(job_dir: Path, dataset, representative_images: int, seed: int) -> np.ndarray:
    """Indices of the calibration images among the training split.

    The set the train stage chose and used for int8-aware training (model/calibration.txt) when there is one:
    the frozen blocks then quantize as they did in training. Otherwise `representative_images` drawn
    with `seed`.
    """
    train_files = [r.file for r in dataset.split("train")]
    chosen = job_dir / "model" / CALIBRATION_FILE
    if chosen.exists():
        position = {file: i for i, file in enumerate(train_files)}
        names = chosen.read_text(encoding="utf-8").splitlines()
        if names and all(name in position for name in names):
            return np.array(sorted(position[name] for name in names))
    return calibration_indices(len(train_files), representative_images, seed)


def _agreement_images(test_images: np.ndarray, dataset, input_size: int, train_images: np.ndarray,
                      calibration: np.ndarray) -> np.ndarray:
    """Test images first, then val, then training images not used for calibration, then the calibration ones
    (at most 1000 in all).

    Agreement needs no labels, and calibration only sets the activation ranges, so every image counts; on small
    datasets a gate over the held-out images alone would judge a handful of images.
    """
    val_images, _ = load_images(dataset, "val", input_size)
    unused = np.setdiff1d(np.arange(len(train_images)), calibration)
    ordered = np.concatenate([train_images[unused], train_images[calibration]])
    limit = max(MAX_AGREEMENT_IMAGES, len(test_images))
    return np.concatenate([test_images, val_images, ordered])[:limit]
