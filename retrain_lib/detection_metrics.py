"""COCO-style detection metrics with pycocotools: mAP@0.5, mAP@[.5:.95] and per-class AP."""

from __future__ import annotations

import contextlib
import io

import numpy as np

SCALE = 1000.0  # normalised boxes are scaled to a 1000 px canvas when no image sizes are given


def coco_map(gt_boxes: list[np.ndarray], gt_labels: list[np.ndarray], predictions: list[tuple],
             sizes: list[tuple[int, int]] | None, class_names: list[str] | None = None) -> dict:
    """mAP of `predictions` (per image: normalised boxes, class ids, scores) against the ground truth.

    Args:
        gt_boxes, gt_labels: per image, normalised (ymin, xmin, ymax, xmax) boxes and class ids.
        sizes: per image (width, height) to measure in pixels; None measures on a 1000 px canvas.

    Returns:
        {"map50", "map", "per_class": {name: {"ap50", "ap"}}}.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    classes = sorted({int(c) for labels in gt_labels for c in labels})
    names = class_names or [str(c) for c in range(max(classes, default=0) + 1)]
    images, annotations, detections = [], [], []
    for image_id, (boxes, labels, (p_boxes, p_classes, p_scores)) in enumerate(
            zip(gt_boxes, gt_labels, predictions, strict=True)):
        width, height = sizes[image_id] if sizes else (SCALE, SCALE)
        images.append({"id": image_id, "width": width, "height": height})
        for box, label in zip(boxes, labels, strict=True):
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": int(label),
                                "bbox": _xywh(box, width, height), "area": _area(box, width, height),
                                "iscrowd": 0})
        for box, label, score in zip(p_boxes, p_classes, p_scores, strict=True):
            detections.append({"image_id": image_id, "category_id": int(label), "bbox": _xywh(box, width, height),
                               "score": float(score)})
    categories = [{"id": i, "name": n} for i, n in enumerate(names)]
    if not annotations:
        return {"map50": 0.0, "map": 0.0, "per_class": {}}
    with contextlib.redirect_stdout(io.StringIO()):
        truth = COCO()
        truth.dataset = {"images": images, "annotations": annotations, "categories": categories}
        truth.createIndex()
        if not detections:
            return {"map50": 0.0, "map": 0.0, "per_class": {names[c]: {"ap50": 0.0, "ap": 0.0} for c in classes}}
        found = truth.loadRes(detections)
        evaluation = COCOeval(truth, found, "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    precision = evaluation.eval["precision"]  # [iou, recall, class, area, maxdets]
    per_class = {}
    for k, cat in enumerate(evaluation.params.catIds):
        if cat not in classes:
            continue
        values = precision[:, :, k, 0, -1]
        per_class[names[cat]] = {"ap50": _mean(values[0]), "ap": _mean(values)}
    return {"map50": float(max(evaluation.stats[1], 0.0)), "map": float(max(evaluation.stats[0], 0.0)),
            "per_class": per_class}


def _xywh(box, width: float, height: float) -> list[float]:
    ymin, xmin, ymax, xmax = (float(v) for v in box)
    return [xmin * width, ymin * height, (xmax - xmin) * width, (ymax - ymin) * height]


def _area(box, width: float, height: float) -> float:
    ymin, xmin, ymax, xmax = (float(v) for v in box)
    return max(0.0, (xmax - xmin) * width) * max(0.0, (ymax - ymin) * height)


def _mean(values: np.ndarray) -> float:
    valid = values[values > -1]
    return float(valid.mean()) if valid.size else 0.0
