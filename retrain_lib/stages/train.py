"""Stage 2: transfer learning on the checked dataset; keeps the model, curves and float metrics."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from retrain_lib.atomic import atomic_write_text
from retrain_lib.classifier import TrainConfig, load_images, save_model, train_classifier
from retrain_lib.dataset import load_dataset
from retrain_lib.evaluation import classification_metrics, plot_confusion, plot_history
from retrain_lib.progress import write_progress
from retrain_lib.quantize import CALIBRATION_FILE
from retrain_lib.report import editing_report, update_report
from retrain_lib.weights import choose_mobilenet_v2_weights


@dataclass
class TrainStageResult:
    """What the train stage produced, for display."""

    weights_source: str
    pretrained: bool
    metrics: dict[str, Any]
    history: dict[str, list]
    curves_plot: Path
    confusion_plot: Path
    timings: dict[str, float]

    @property
    def plots(self) -> list[Path]:
        return [self.curves_plot, self.confusion_plot]

    @property
    def summary(self) -> str:
        return (f"float model: validation accuracy {self.metrics['val']['accuracy']:.3f}, "
                f"test accuracy {self.metrics['test']['accuracy']:.3f}")


def run_train(job_dir: Path, config: TrainConfig) -> TrainStageResult:
    """Trains on `job_dir/dataset` and writes `job_dir/model` (model, history, plots)."""
    job_dir = Path(job_dir)
    dataset = load_dataset(job_dir / "dataset")
    weights = choose_mobilenet_v2_weights()
    if not weights.pretrained:
        put_warning_first(job_dir, weights.source)
    result = train_classifier(dataset, config, weights,
                              progress=lambda phase, step, total: write_progress(job_dir, "train", phase, step, total))
    model_dir = job_dir / "model"
    save_model(result.model, model_dir)
    metrics = {}
    for split in ("val", "test"):
        images, labels = load_images(dataset, split, config.input_size)
        predicted = result.model.predict(images.astype("float32"), batch_size=64, verbose=0).argmax(axis=1)
        metrics[split] = classification_metrics(labels, predicted, dataset.classes)
    atomic_write_text(model_dir / "history.json", json.dumps(result.history))
    train_files = [r.file for r in dataset.split("train")]
    atomic_write_text(model_dir / CALIBRATION_FILE, "".join(f"{train_files[i]}\n" for i in result.calibration))
    atomic_write_text(model_dir / "float_metrics.json", json.dumps(metrics, indent=2))
    curves = plot_history(result.history, model_dir / "curves.png")
    confusion = plot_confusion(metrics["test"]["confusion_matrix"], dataset.classes, model_dir / "confusion.png",
                               "Test split, float model")
    update_report(job_dir,
                  training={"weights": weights.source, "pretrained": weights.pretrained, "config": asdict(config),
                            "epochs": result.phase_epochs, "timings_s": result.timings},
                  metrics={"float": {"accuracy": metrics["test"]["accuracy"],
                                     "val_accuracy": metrics["val"]["accuracy"],
                                     "per_class": metrics["test"]["per_class"]}},
                  artifacts={"model_float": "model/model.keras", "calibration": f"model/{CALIBRATION_FILE}",
                             "curves": "model/curves.png",
                             "confusion_matrix": "model/confusion.png"})
    return TrainStageResult(weights.source, weights.pretrained, metrics, result.history, curves, confusion,
                            result.timings)


def put_warning_first(job_dir: Path, warning: str) -> None:
    """Puts `warning` as the first key of the job report, where a reader sees it first."""
    with editing_report(job_dir) as report:
        rest = {k: v for k, v in report.items() if k != "warning"}
        report.clear()
        report["warning"] = warning
        report.update(rest)
