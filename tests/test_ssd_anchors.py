"""SSD anchors: encoding round trip, matching, and anchor scales fitted to the dataset's boxes."""

from __future__ import annotations

import numpy as np

from retrain_lib.detector import grid_sizes
from retrain_lib.ssd_anchors import corners, decode, encode, fit_anchor_scales, iou_matrix, make_anchors, match


def _square_boxes(sizes: list[float]) -> np.ndarray:
    """Square boxes of the given normalised sizes, centred at different places."""
    rng = np.random.default_rng(0)
    boxes = []
    for size in sizes:
        cy, cx = rng.uniform(size / 2, 1 - size / 2, 2)
        boxes.append([cy - size / 2, cx - size / 2, cy + size / 2, cx + size / 2])
    return np.asarray(boxes, dtype=np.float32)


def test_encode_then_decode_gives_the_box_back():
    anchors = make_anchors(grid_sizes(320))
    boxes = _square_boxes([0.3] * len(anchors))
    np.testing.assert_allclose(decode(encode(boxes, anchors), anchors), boxes, atol=1e-5)


def test_every_box_gets_its_best_anchor_and_the_ambiguous_band_is_ignored():
    anchors = make_anchors(grid_sizes(320))
    boxes = _square_boxes([0.5, 0.12])
    classes, targets = match(boxes, np.array([0, 1]), anchors, corners(anchors))
    iou = iou_matrix(boxes, corners(anchors))
    assert classes[iou[0].argmax()] == 0 and classes[iou[1].argmax()] == 1
    best = iou.max(axis=0)
    assert (classes[(best >= 0.4) & (best < 0.5)] <= -2).sum() > 0
    forced = set(iou.argmax(axis=1).tolist())
    assert all(classes[i] == -1 for i in np.flatnonzero(best < 0.4) if i not in forced)
    assert np.all(targets[classes < 0] == 0)


def test_anchor_scales_keep_the_default_for_large_boxes():
    assert fit_anchor_scales(_square_boxes(list(np.linspace(0.3, 0.95, 50)))) == (0.2, 0.95)
    assert fit_anchor_scales(np.zeros((0, 4), np.float32)) == (0.2, 0.95)


def test_small_boxes_get_small_anchors_that_can_match_them():
    sizes = list(np.linspace(0.06, 0.2, 40))
    boxes = _square_boxes(sizes)
    smallest, largest = fit_anchor_scales(boxes)
    assert 0.05 <= smallest < 0.1 and largest == 0.95
    grids = grid_sizes(320)
    default_best = iou_matrix(boxes, corners(make_anchors(grids))).max(axis=1)
    fitted_best = iou_matrix(boxes, corners(make_anchors(grids, smallest, largest))).max(axis=1)
    assert (default_best >= 0.5).mean() < 0.5, "the default anchors reach fewer than half of these boxes"
    assert (fitted_best >= 0.5).mean() > 0.75
    assert fit_anchor_scales(_square_boxes([0.01] * 10)) == (0.05, 0.95)
