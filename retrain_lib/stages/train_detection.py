"""Stage 2 for detection: trains the SSD-lite detector; keeps the model, anchors, curves and float mAP."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from retrain_lib.atomic import atomic_write_text
from retrain_lib.classifier import save_model
from retrain_lib.detection_dataset import load_detection_dataset
from retrain_lib.detection_metrics import coco_map
from retrain_lib.detector import DetectionImages, DetectorConfig, predict_float, train_detector
from retrain_lib.progress import write_progress
from retrain_lib.report import update_report
from retrain_lib.stages.train import put_warning_first
from retrain_lib.weights import choose_mobilenet_v2_weights


@dataclass
class DetectionTrainResult:
    """What the detection train stage produced, for display."""

    weights_source: str
    pretrained: bool
    metrics: dict[str, Any]
    plots: list[Path]
    timings: dict[str, float]

    @property
    def summary(self) -> str:
        return (f"float model: val mAP@0.5 {self.metrics['val']['map50']:.3f}, test mAP@0.5 "
                f"{self.metrics['test']['map50']:.3f}, test mAP@[.5:.95] {self.metrics['test']['map']:.3f}")


def run_train_detection(job_dir: Path, config: DetectorConfig) -> DetectionTrainResult:
    """Trains on `job_dir/dataset` (detection) and writes `job_dir/model`."""
    job_dir = Path(job_dir)
    dataset = load_detection_dataset(job_dir / "dataset")
    weights = choose_mobilenet_v2_weights()
    if not weights.pretrained:
        put_warning_first(job_dir, weights.source)
    train = DetectionImages(dataset.data_dir, dataset.split("train"), dataset.classes)
    val = DetectionImages(dataset.data_dir, dataset.split("val") or dataset.split("train"), dataset.classes)
    result = train_detector(train, val, dataset.classes, config, weights,
                            progress=lambda phase, step, total: write_progress(job_dir, "train", phase, step, total))
    model_dir = job_dir / "model"
    save_model(result.model, model_dir)
    np.save(model_dir / "anchors.npy", result.anchors)
    metrics = {split: evaluate_split(result.model, result.anchors, dataset, split, config.input_size)
               for split in ("val", "test")}
    atomic_write_text(model_dir / "history.json", json.dumps(result.history))
    atomic_write_text(model_dir / "float_metrics.json", json.dumps(metrics, indent=2))
    curves = plot_detection_history(result.history, model_dir / "curves.png")
    update_report(job_dir,
                  training={"weights": weights.source, "pretrained": weights.pretrained, "config": asdict(config),
                            "best_val_map50": result.best_val_map50,
                            "best_val_map": result.best_val_map, "anchor_scales": list(result.anchor_scales),
                            "timings_s": result.timings},
                  metrics={"float": {"map50": metrics["test"]["map50"], "map": metrics["test"]["map"],
                                     "val_map50": metrics["val"]["map50"], "per_class": metrics["test"]["per_class"]}},
                  artifacts={"model_float": "model/model.keras", "curves": "model/curves.png"})
    return DetectionTrainResult(weights.source, weights.pretrained, metrics, [curves], result.timings)


def evaluate_split(model, anchors: np.ndarray, dataset, split: str, input_size: int) -> dict[str, Any]:
    """Float-model COCO metrics on one split, measured in pixels of the original images."""
    records = dataset.split(split)
    if not records:
        return {"map50": 0.0, "map": 0.0, "per_class": {}}
    images = DetectionImages(dataset.data_dir, records, dataset.classes)
    predictions = predict_float(model, anchors, images.model_inputs(input_size))
    return coco_map(images.boxes, images.labels, predictions, [(r.width, r.height) for r in records],
                    dataset.classes)


def plot_detection_history(history: dict[str, list], out_path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (loss_ax, map_ax) = plt.subplots(1, 2, figsize=(11, 3.8))
    loss_ax.plot(history["step"], history["loss"], linewidth=0.8)
    loss_ax.set_title("training loss")
    loss_ax.set_xlabel("step")
    map_ax.plot(history["val_step"], history["val_map50"], marker="o", label="mAP@0.5")
    map_ax.plot(history["val_step"], history["val_map"], marker="o", label="mAP@[.5:.95] (picks the best)")
    map_ax.legend()
    map_ax.set_title("validation mAP")
    map_ax.set_xlabel("step")
    fig.tight_layout()
    fig.savefig(out_path, dpi=90)
    plt.close(fig)
    return out_path
