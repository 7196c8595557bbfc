"""Stage 3 for detection: full-int8 export with the post-processing op, float vs int8 mAP, the bundle."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from retrain_lib.detection_dataset import draw_samples, load_detection_dataset
from retrain_lib.detection_formats import Box
from retrain_lib.detection_metrics import coco_map
from retrain_lib.detector import DetectionImages, predict_float
from retrain_lib.detector_export import detect_batch, export_detector_int8
from retrain_lib.edgetpu_step import edgetpu_report
from retrain_lib.quantize import calibration_indices
from retrain_lib.report import update_report
from retrain_lib.stages.convert import MODEL_INT8_NAME, QualityGateError, new_staging, publish_export, write_bundle
from retrain_lib.tflite_model import make_interpreter, tensor_type_problems


@dataclass
class DetectionConvertResult:
    model_path: Path
    float_metrics: dict[str, Any]
    int8_metrics: dict[str, Any]
    samples_plot: Path
    edgetpu: dict[str, Any]

    @property
    def summary(self) -> str:
        return (f"test mAP@0.5: float {self.float_metrics['map50']:.3f}, int8 {self.int8_metrics['map50']:.3f}; "
                f"mAP@[.5:.95]: float {self.float_metrics['map']:.3f}, int8 {self.int8_metrics['map']:.3f}")


def run_convert_detection(job_dir: Path, input_size: int, representative_images: int = 200,
                          max_map_drop: float = 0.05, seed: int = 42, compile_edgetpu: bool = True,
                          compiler_image: str = "", compiler_timeout_s: int = 300) -> DetectionConvertResult:
    """Quantizes `job_dir/model` into `job_dir/export/` and checks int8 mAP@0.5 against the float model.

    Raises:
        QualityGateError: int8 mAP@0.5 more than `max_map_drop` below float, or unquantized tensors outside
            the post-processing tail.
    """
    import keras

    job_dir = Path(job_dir)
    dataset = load_detection_dataset(job_dir / "dataset")
    model = keras.models.load_model(job_dir / "model" / "model.keras")
    anchors = np.load(job_dir / "model" / "anchors.npy")
    train = DetectionImages(dataset.data_dir, dataset.split("train"), dataset.classes)
    calibration = train.model_inputs(input_size)
    calibration = calibration[calibration_indices(len(calibration), representative_images, seed)]
    staging = new_staging(job_dir)
    model_path = export_detector_int8(model, anchors, len(dataset.classes), calibration, staging / MODEL_INT8_NAME)
    untyped = tensor_type_problems(model_path, allow_detection_tail=True)
    if untyped:
        raise QualityGateError("the int8 model still has non-integer tensors: " + "; ".join(untyped[:5]))

    records = dataset.split("test")
    test = DetectionImages(dataset.data_dir, records, dataset.classes)
    inputs = test.model_inputs(input_size)
    sizes = [(r.width, r.height) for r in records]
    interpreter = make_interpreter(model_path)
    int8_predictions = detect_batch(interpreter, inputs)
    float_metrics = coco_map(test.boxes, test.labels, predict_float(model, anchors, inputs), sizes, dataset.classes)
    int8_metrics = coco_map(test.boxes, test.labels, int8_predictions, sizes, dataset.classes)
    samples = draw_samples(dataset, job_dir / "model" / "detections_int8.png",
                           predictions=_as_boxes(records, int8_predictions, dataset.classes))

    edgetpu = edgetpu_report(model_path, staging, compile_edgetpu, compiler_image, compiler_timeout_s)
    summary = {"float": {"map50": float_metrics["map50"], "map": float_metrics["map"]},
               "int8": {"map50": int8_metrics["map50"], "map": int8_metrics["map"]}, "test_images": len(records)}
    write_bundle(staging, "detection", input_size, interpreter, dataset.classes, summary, job_dir.name, edgetpu)
    export_dir = publish_export(job_dir, staging)
    update_report(job_dir,
                  metrics={"int8": {"map50": int8_metrics["map50"], "map": int8_metrics["map"],
                                    "per_class": int8_metrics["per_class"]},
                           "float": {"map50": float_metrics["map50"], "map": float_metrics["map"]}},
                  edgetpu=edgetpu,
                  artifacts={"model_int8": f"export/{MODEL_INT8_NAME}", "labels": "export/labels.txt",
                             "manifest": "export/manifest.json", "detections": "model/detections_int8.png"})
    drop = float_metrics["map50"] - int8_metrics["map50"]
    if drop > max_map_drop:
        raise QualityGateError(
            f"int8 mAP@0.5 is {int8_metrics['map50']:.3f}, {drop:.3f} below the float model's "
            f"{float_metrics['map50']:.3f} (allowed: {max_map_drop}). Fix: raise representative_images, give more "
            "varied training images, or raise max_map_drop if you accept it")
    return DetectionConvertResult(export_dir / MODEL_INT8_NAME, float_metrics, int8_metrics, samples, edgetpu)


def _as_boxes(records, predictions, classes: list[str], min_score: float = 0.3):
    drawn = {}
    for record, (boxes, ids, scores) in zip(records, predictions, strict=True):
        drawn[record.file] = [(Box(classes[int(c)] if int(c) < len(classes) else str(int(c)),
                                   b[1] * record.width, b[0] * record.height, b[3] * record.width,
                                   b[2] * record.height), float(s))
                              for b, c, s in zip(boxes, ids, scores, strict=True) if s >= min_score]
    return drawn
