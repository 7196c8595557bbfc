"""SSD anchors, box encoding and matching (normalised [ymin, xmin, ymax, xmax] boxes), in NumPy.

Encoding follows the SSD / TFLite_Detection_PostProcess convention: (ty, tx, th, tw) relative to the anchor's
centre and size, multiplied by BOX_SCALES (10, 10, 5, 5).
"""

from __future__ import annotations

import numpy as np

BOX_SCALES = (10.0, 10.0, 5.0, 5.0)


def make_anchors(grid_sizes: list[int], min_scale: float = 0.2, max_scale: float = 0.95,
                 ratios: tuple[float, ...] = (1.0, 2.0, 0.5)) -> np.ndarray:
    """Anchors per cell of each square grid: one per ratio at the level's scale, plus one between levels.

    Returns:
        float32 array (N, 4) of (ycenter, xcenter, height, width), normalised, level by level, row-major,
        the anchors of one cell adjacent (the order the heads' reshapes produce).
    """
    levels = len(grid_sizes)
    scales = [min_scale + (max_scale - min_scale) * k / max(levels - 1, 1) for k in range(levels)] + [1.0]
    anchors = []
    for k, size in enumerate(grid_sizes):
        shapes = [(scales[k] / np.sqrt(r), scales[k] * np.sqrt(r)) for r in ratios]
        extra = np.sqrt(scales[k] * scales[k + 1])
        shapes.append((extra, extra))
        centres = (np.arange(size) + 0.5) / size
        for cy in centres:
            for cx in centres:
                anchors += [(cy, cx, h, w) for h, w in shapes]
    return np.asarray(anchors, dtype=np.float32)


def fit_anchor_scales(boxes: np.ndarray, default: tuple[float, float] = (0.2, 0.95),
                      floor: float = 0.05) -> tuple[float, float]:
    """Anchor scales (smallest, largest, as fractions of the image side) that cover the dataset's boxes.

    SSD's default range is kept when the boxes fit it; when the 2nd percentile of the boxes' sizes (sqrt of
    normalised width x height) lies below the smallest scale, that scale comes down to it (not below `floor`):
    an anchor overlaps a square box with IoU >= 0.5 only within a factor of 1.4 of its size, so boxes much
    smaller than the smallest anchor would only ever match by force. The largest scale stays: the level above
    it (scale 1.0) already covers boxes as large as the image.

    Args:
        boxes: (N, 4) normalised corner boxes of the training split.
    """
    if len(boxes) == 0:
        return default
    sizes = np.sqrt(np.clip(boxes[:, 2] - boxes[:, 0], 0, 1) * np.clip(boxes[:, 3] - boxes[:, 1], 0, 1))
    smallest = float(np.percentile(sizes, 2)) * 1.1
    return (round(max(floor, min(default[0], smallest)), 3), default[1])


def anchors_per_cell(ratios: tuple[float, ...] = (1.0, 2.0, 0.5)) -> int:
    return len(ratios) + 1


def corners(anchors: np.ndarray) -> np.ndarray:
    """(ycenter, xcenter, h, w) -> (ymin, xmin, ymax, xmax)."""
    cy, cx, h, w = anchors.T
    return np.stack([cy - h / 2, cx - w / 2, cy + h / 2, cx + w / 2], axis=1)


def iou_matrix(boxes: np.ndarray, anchor_corners: np.ndarray) -> np.ndarray:
    """IoU of every box (M, 4) with every anchor (N, 4), corners format: (M, N)."""
    ymin = np.maximum(boxes[:, None, 0], anchor_corners[None, :, 0])
    xmin = np.maximum(boxes[:, None, 1], anchor_corners[None, :, 1])
    ymax = np.minimum(boxes[:, None, 2], anchor_corners[None, :, 2])
    xmax = np.minimum(boxes[:, None, 3], anchor_corners[None, :, 3])
    inter = np.clip(ymax - ymin, 0, None) * np.clip(xmax - xmin, 0, None)
    area_b = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    area_a = (anchor_corners[:, 2] - anchor_corners[:, 0]) * (anchor_corners[:, 3] - anchor_corners[:, 1])
    return inter / np.maximum(area_b[:, None] + area_a[None, :] - inter, 1e-9)


def encode(boxes: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """Corner boxes (N, 4) matched to anchors (N, 4) -> regression targets (N, 4)."""
    h = np.maximum(boxes[:, 2] - boxes[:, 0], 1e-6)
    w = np.maximum(boxes[:, 3] - boxes[:, 1], 1e-6)
    cy = boxes[:, 0] + h / 2
    cx = boxes[:, 1] + w / 2
    ay, ax, ah, aw = anchors.T
    sy, sx, sh, sw = BOX_SCALES
    return np.stack([(cy - ay) / ah * sy, (cx - ax) / aw * sx, np.log(h / ah) * sh, np.log(w / aw) * sw], axis=1)


def decode(encoded: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """Regression outputs (N, 4) -> corner boxes (N, 4), the inverse of `encode`."""
    ay, ax, ah, aw = anchors.T
    sy, sx, sh, sw = BOX_SCALES
    cy = encoded[:, 0] / sy * ah + ay
    cx = encoded[:, 1] / sx * aw + ax
    h = np.exp(encoded[:, 2] / sh) * ah
    w = np.exp(encoded[:, 3] / sw) * aw
    return np.stack([cy - h / 2, cx - w / 2, cy + h / 2, cx + w / 2], axis=1)


def match(boxes: np.ndarray, labels: np.ndarray, anchors: np.ndarray, anchor_corners: np.ndarray,
          positive_iou: float = 0.5, negative_iou: float = 0.4) -> tuple[np.ndarray, np.ndarray]:
    """Targets for one image.

    Returns:
        (class target per anchor: label index, -1 background, -2 ignored; box targets (N, 4)).
    """
    n = len(anchors)
    classes = np.full(n, -1, dtype=np.int32)
    targets = np.zeros((n, 4), dtype=np.float32)
    if len(boxes) == 0:
        return classes, targets
    iou = iou_matrix(boxes, anchor_corners)
    best_box = iou.argmax(axis=0)
    best_iou = iou.max(axis=0)
    classes[(best_iou >= negative_iou) & (best_iou < positive_iou)] = -2
    positive = best_iou >= positive_iou
    forced = iou.argmax(axis=1)  # every box keeps its best anchor
    best_box[forced] = np.arange(len(boxes))
    positive[forced] = True
    classes[positive] = labels[best_box[positive]]
    targets[positive] = encode(boxes[best_box[positive]], anchors[positive])
    return classes, targets
