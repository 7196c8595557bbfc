"""An SSD-lite object detector on keras.applications.MobileNetV2, trained from ImageNet weights.

Shape of Coral's own SSD MobileNet models: raw uint8-valued RGB in (scaling inside), six feature maps
(block_13_expand_relu, out_relu and four SSDLite extra blocks), separable box/class heads, sigmoid class
scores, and TFLite_Detection_PostProcess at the end of the exported model. Training: quality focal loss
(scores learn the IoU of their box) + smooth L1 + GIoU, augmentation that moves boxes with the image, the
backbone frozen for the first part of the budget, then its upper blocks fine-tuned with BatchNormalization
frozen, a warm-up and a cosine decay, validation mAP measured as it goes and the best weights (by mAP@[.5:.95]) kept.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

from retrain_lib.detection_validation import DetectionRecord
from retrain_lib.images import load_rgb, resize_for_model
from retrain_lib.ssd_anchors import (
    BOX_SCALES,
    anchors_per_cell,
    corners,
    decode,
    fit_anchor_scales,
    make_anchors,
    match,
)
from retrain_lib.weights import WeightsChoice

ProgressFn = Callable[[str, int, int], None]
FEATURE_LAYERS = ("block_13_expand_relu", "out_relu")
EXTRA_CHANNELS = (256, 128, 128, 64)
UNFREEZE_FROM = "block_10_expand"


@dataclass(frozen=True)
class DetectorConfig:
    """Detection training settings; defaults live in the parameters cell of `notebooks/02_train.ipynb`."""

    input_size: int
    steps: int
    frozen_fraction: float
    batch_size: int
    learning_rate: float
    fine_tune_learning_rate: float
    eval_every: int
    seed: int


@dataclass
class DetectorResult:
    model: object
    anchors: np.ndarray
    history: dict[str, list] = field(default_factory=dict)
    best_val_map50: float = 0.0
    best_val_map: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    anchor_scales: tuple[float, float] = (0.2, 0.95)


def grid_sizes(input_size: int) -> list[int]:
    """The six feature-map sizes for a square input (320 -> 20, 10, 5, 3, 2, 1)."""
    sizes = [math.ceil(input_size / 16), math.ceil(input_size / 32)]
    while len(sizes) < 6:
        sizes.append(math.ceil(sizes[-1] / 2))
    return sizes


def build_detector(num_classes: int, input_size: int, weights: WeightsChoice):
    """The Keras detector: image -> (box encodings (1, N, 4), class logits (1, N, num_classes + 1)).

    Column 0 of the class logits is a background slot that TFLite_Detection_PostProcess skips.
    """
    import keras
    from keras import layers

    inputs = keras.Input((input_size, input_size, 3), name="image")
    scaled = layers.Rescaling(1 / 127.5, offset=-1.0, name="scale_to_unit")(inputs)
    backbone = keras.applications.MobileNetV2(input_shape=(input_size, input_size, 3), include_top=False,
                                              weights=weights.keras_arg, alpha=1.0)
    extractor = keras.Model(backbone.input, [backbone.get_layer(n).output for n in FEATURE_LAYERS], name="backbone")
    features = list(extractor(scaled, training=False))
    x = features[-1]
    for i, channels in enumerate(EXTRA_CHANNELS):
        x = _conv_bn(x, channels // 2, 1, f"extra{i}_reduce")
        x = layers.DepthwiseConv2D(3, strides=2, padding="same", use_bias=False, name=f"extra{i}_dw")(x)
        x = _bn_relu6(x, f"extra{i}_dw")
        x = _conv_bn(x, channels, 1, f"extra{i}_expand")
        features.append(x)
    per_cell = anchors_per_cell()
    # class heads first, box heads last: the int8 graph then ends with the box branch, and no DEQUANTIZE
    # comes before an op the Edge TPU could run
    class_outputs = [layers.Reshape((-1, num_classes + 1), name=f"classes{level}")(
        _head(feature, per_cell * (num_classes + 1), f"class{level}", bias=-4.6))
        for level, feature in enumerate(features)]
    logits = layers.Concatenate(axis=1, name="class_logits")(class_outputs)
    box_outputs = [layers.Reshape((-1, 4), name=f"boxes{level}")(_head(feature, per_cell * 4, f"box{level}", bias=0.0))
                   for level, feature in enumerate(features)]
    boxes = layers.Concatenate(axis=1, name="box_encodings")(box_outputs)
    return keras.Model(inputs, [boxes, logits], name="ssdlite_mobilenet_v2"), extractor


def _conv_bn(x, channels: int, kernel: int, name: str):
    from keras import layers

    x = layers.Conv2D(channels, kernel, padding="same", use_bias=False, name=f"{name}_conv")(x)
    return _bn_relu6(x, name)


def _bn_relu6(x, name: str):
    from keras import layers

    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.ReLU(6.0, name=f"{name}_relu6")(x)


def _head(x, channels: int, name: str, bias: float):
    import keras
    from keras import layers

    x = layers.DepthwiseConv2D(3, padding="same", use_bias=False, name=f"{name}_dw")(x)
    x = _bn_relu6(x, f"{name}_dw")
    return layers.Conv2D(channels, 1, name=f"{name}_out",
                         bias_initializer=keras.initializers.Constant(bias))(x)


# ----- data
class DetectionImages:
    """The dataset's images in memory (RGB) with their boxes normalised to [0, 1] (ymin, xmin, ymax, xmax)."""

    def __init__(self, data_dir: Path, records: list[DetectionRecord], classes: list[str]):
        self.images = [load_rgb(data_dir / r.file)[0] for r in records]
        index = {c: i for i, c in enumerate(classes)}
        self.boxes = [np.array([[b.ymin / r.height, b.xmin / r.width, b.ymax / r.height, b.xmax / r.width]
                                for b in r.boxes], dtype=np.float32).reshape(-1, 4) for r in records]
        self.labels = [np.array([index[b.label] for b in r.boxes], dtype=np.int32) for r in records]

    def __len__(self) -> int:
        return len(self.images)

    def model_inputs(self, input_size: int) -> np.ndarray:
        return np.stack([resize_for_model(image, input_size) for image in self.images])


def augment(image: Image.Image, boxes: np.ndarray, labels: np.ndarray, input_size: int,
            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Colour jitter, zoom-out, random crop and flip, moving the boxes with the pixels; resizes to the input."""
    for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        image = enhancer(image).enhance(1.0 + rng.uniform(-0.25, 0.25))
    width, height = image.size
    box_px = boxes * np.array([height, width, height, width], dtype=np.float32)
    if rng.random() < 0.3:
        scale = rng.uniform(1.0, 2.0)
        canvas_w, canvas_h = int(width * scale), int(height * scale)
        left, top = int(rng.integers(0, canvas_w - width + 1)), int(rng.integers(0, canvas_h - height + 1))
        mean = tuple(int(v) for v in np.asarray(image).reshape(-1, 3).mean(axis=0))
        canvas = Image.new("RGB", (canvas_w, canvas_h), mean)
        canvas.paste(image, (left, top))
        image, width, height = canvas, canvas_w, canvas_h
        box_px = box_px + np.array([top, left, top, left], dtype=np.float32)
    if rng.random() < 0.5 and len(box_px):
        for _ in range(10):
            area = rng.uniform(0.3, 1.0)
            aspect = math.exp(rng.uniform(math.log(0.5), math.log(2.0)))
            crop_w = int(min(width, width * math.sqrt(area * aspect)))
            crop_h = int(min(height, height * math.sqrt(area / aspect)))
            x0, y0 = int(rng.integers(0, width - crop_w + 1)), int(rng.integers(0, height - crop_h + 1))
            centres_y = (box_px[:, 0] + box_px[:, 2]) / 2
            centres_x = (box_px[:, 1] + box_px[:, 3]) / 2
            keep = (centres_y > y0) & (centres_y < y0 + crop_h) & (centres_x > x0) & (centres_x < x0 + crop_w)
            if keep.any():
                image = image.crop((x0, y0, x0 + crop_w, y0 + crop_h))
                box_px = np.clip(box_px[keep] - np.array([y0, x0, y0, x0], dtype=np.float32), 0,
                                 [crop_h, crop_w, crop_h, crop_w])
                labels = labels[keep]
                width, height = crop_w, crop_h
                break
    normalised = box_px / np.array([height, width, height, width], dtype=np.float32)
    if rng.random() < 0.5:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        normalised = np.stack([normalised[:, 0], 1 - normalised[:, 3], normalised[:, 2], 1 - normalised[:, 1]],
                              axis=1) if len(normalised) else normalised
    return resize_for_model(image, input_size), normalised.astype(np.float32), labels


def _batches(data: DetectionImages, anchors: np.ndarray, config: DetectorConfig, num_classes: int,
             seed: int, stop: threading.Event, out: queue.Queue) -> None:
    """Producer thread: augmented batches with their anchor targets."""
    rng = np.random.default_rng(seed)
    anchor_corners = corners(anchors)
    while not stop.is_set():
        picks = rng.integers(0, len(data), config.batch_size)
        images, classes, targets = [], [], []
        for i in picks:
            image, boxes, labels = augment(data.images[i], data.boxes[i], data.labels[i], config.input_size, rng)
            cls, tgt = match(boxes, labels, anchors, anchor_corners)
            images.append(image)
            classes.append(cls)
            targets.append(tgt)
        batch = (np.stack(images).astype(np.float32), np.stack(classes), np.stack(targets))
        while not stop.is_set():
            try:
                out.put(batch, timeout=0.5)
                break
            except queue.Full:
                continue


# ----- training
def train_detector(train: DetectionImages, val: DetectionImages, classes: list[str], config: DetectorConfig,
                   weights: WeightsChoice, progress: ProgressFn | None = None) -> DetectorResult:
    """Trains for `config.steps` steps, evaluating val mAP@0.5 every `eval_every` steps and keeping the best."""
    import keras
    import tensorflow as tf

    from retrain_lib.classifier import configure_tensorflow

    configure_tensorflow(config.seed)
    progress = progress or (lambda phase, step, total: None)
    num_classes = len(classes)
    model, extractor = build_detector(num_classes, config.input_size, weights)
    anchor_scales = fit_anchor_scales(np.concatenate(train.boxes) if train.boxes else np.zeros((0, 4)))
    anchors = make_anchors(grid_sizes(config.input_size), *anchor_scales)
    frozen_steps = int(config.steps * config.frozen_fraction)
    history: dict[str, list] = {"step": [], "loss": [], "val_map50": [], "val_map": [], "val_step": []}
    best, best_map50 = (-1.0, None), 0.0
    stop, batches = threading.Event(), queue.Queue(maxsize=4)
    producer = threading.Thread(target=_batches, args=(train, anchors, config, num_classes, config.seed, stop,
                                                       batches), daemon=True)
    producer.start()
    start = time.perf_counter()
    val_inputs = val.model_inputs(config.input_size)
    try:
        for phase, first, last in (("frozen", 0, frozen_steps), ("fine_tune", frozen_steps, config.steps)):
            if last <= first:
                continue
            _set_trainable(extractor, phase)
            lr = config.learning_rate if phase == "frozen" else config.fine_tune_learning_rate
            # a longer warm-up once the backbone thaws: its first large steps can wreck the pretrained features
            warmup = min(50 if phase == "frozen" else 150, (last - first) // 4)
            schedule = keras.optimizers.schedules.CosineDecay(
                lr / 10, decay_steps=max(1, last - first - warmup), alpha=0.05, warmup_target=lr,
                warmup_steps=warmup)
            optimizer = keras.optimizers.Adam(schedule)
            step_fn = _make_step(model, optimizer, num_classes, anchors)
            for step in range(first, last):
                images, cls, tgt = batches.get()
                loss = float(step_fn(tf.constant(images), tf.constant(cls), tf.constant(tgt)))
                history["step"].append(step + 1)
                history["loss"].append(loss)
                if (step + 1) % config.eval_every == 0 or step + 1 == last:
                    scores = evaluate_float(model, anchors, val_inputs, val)
                    history["val_map50"].append(scores["map50"])
                    history["val_map"].append(scores["map"])
                    history["val_step"].append(step + 1)
                    # mAP@[.5:.95] picks the best: on a few validation images mAP@0.5 saturates early,
                    # and on a tie the later (further trained) weights win
                    if scores["map"] >= best[0]:
                        best = (scores["map"], [w.copy() for w in model.get_weights()])
                        best_map50 = scores["map50"]
                    progress(phase, step + 1, config.steps)
    finally:
        stop.set()
    if best[1] is not None:
        model.set_weights(best[1])
    return DetectorResult(model, anchors, history, best_val_map50=best_map50, best_val_map=max(best[0], 0.0),
                          timings={"train_s": time.perf_counter() - start}, anchor_scales=anchor_scales)


def _set_trainable(extractor, phase: str) -> None:
    import keras

    extractor.trainable = phase != "frozen"
    if phase == "frozen":
        return
    unfrozen = False
    for layer in extractor.layers:
        unfrozen = unfrozen or layer.name == UNFREEZE_FROM
        layer.trainable = unfrozen and not isinstance(layer, keras.layers.BatchNormalization)


def _make_step(model, optimizer, num_classes: int, anchors: np.ndarray):
    import tensorflow as tf

    variables = model.trainable_variables
    anchors = tf.constant(anchors)

    @tf.function
    def step(images, cls_targets, box_targets):
        with tf.GradientTape() as tape:
            boxes, logits = model(images, training=True)
            loss = detection_loss(boxes, logits, cls_targets, box_targets, anchors, num_classes)
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(grads, variables, strict=True))
        return loss

    return step


def detection_loss(boxes, logits, cls_targets, box_targets, anchors, num_classes: int, beta: float = 2.0):
    """Quality focal loss + smooth L1 + GIoU over positives, per positive anchor.

    The class target of a positive anchor is the IoU of its predicted box with the true box (Li et al. 2020,
    generalised focal loss), so scores rank detections by how well they are placed: what mAP@[.5:.95] and
    non-maximum suppression reward. Ignored anchors (-2) are masked out.
    """
    import tensorflow as tf

    foreground = logits[..., 1:]
    positive = cls_targets >= 0
    positive_f = tf.cast(positive, tf.float32)
    valid = tf.cast(cls_targets > -2, tf.float32)
    predicted, true = _decode_tf(boxes, anchors), _decode_tf(box_targets, anchors)
    iou, giou = _iou_giou(predicted, true)
    quality = tf.stop_gradient(tf.clip_by_value(iou, 0.0, 1.0)) * positive_f
    onehot = tf.one_hot(tf.where(positive, cls_targets, 0), num_classes) * positive_f[..., None]
    target = onehot * quality[..., None]
    ce = tf.nn.sigmoid_cross_entropy_with_logits(labels=target, logits=foreground)
    qfl = tf.reduce_sum(tf.pow(tf.abs(target - tf.sigmoid(foreground)), beta) * ce * valid[..., None])
    positives = tf.maximum(tf.reduce_sum(positive_f), 1.0)
    diff = tf.abs(boxes - box_targets)
    smooth_l1 = tf.reduce_sum(tf.where(diff < 1.0, 0.5 * diff * diff, diff - 0.5), -1)
    box_loss = tf.reduce_sum((smooth_l1 + (1.0 - giou)) * positive_f)
    return (qfl + box_loss) / positives


def _decode_tf(encoded, anchors):
    """TensorFlow twin of `ssd_anchors.decode` for (batch, N, 4) encodings."""
    import tensorflow as tf

    sy, sx, sh, sw = BOX_SCALES
    ay, ax, ah, aw = tf.unstack(anchors, axis=-1)
    cy = encoded[..., 0] / sy * ah + ay
    cx = encoded[..., 1] / sx * aw + ax
    h = tf.exp(tf.minimum(encoded[..., 2] / sh, 4.0)) * ah
    w = tf.exp(tf.minimum(encoded[..., 3] / sw, 4.0)) * aw
    return tf.stack([cy - h / 2, cx - w / 2, cy + h / 2, cx + w / 2], axis=-1)


def _iou_giou(a, b):
    """Elementwise IoU and generalised IoU of two (..., 4) corner-box tensors."""
    import tensorflow as tf

    inter_h = tf.nn.relu(tf.minimum(a[..., 2], b[..., 2]) - tf.maximum(a[..., 0], b[..., 0]))
    inter_w = tf.nn.relu(tf.minimum(a[..., 3], b[..., 3]) - tf.maximum(a[..., 1], b[..., 1]))
    inter = inter_h * inter_w
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    union = tf.maximum(area_a + area_b - inter, 1e-9)
    hull = ((tf.maximum(a[..., 2], b[..., 2]) - tf.minimum(a[..., 0], b[..., 0])) *
            (tf.maximum(a[..., 3], b[..., 3]) - tf.minimum(a[..., 1], b[..., 1])))
    iou = inter / union
    return iou, iou - (hull - union) / tf.maximum(hull, 1e-9)


# ----- inference (float) and evaluation
def predict_float(model, anchors: np.ndarray, inputs: np.ndarray, max_detections: int = 100,
                  score_threshold: float = 0.01, iou_threshold: float = 0.6) -> list[tuple]:
    """Per image: (boxes normalised (K, 4), class ids (K,), scores (K,)), class-agnostic NMS like the TFLite op."""
    import tensorflow as tf

    results = []
    for start in range(0, len(inputs), 16):
        boxes, logits = model.predict(inputs[start:start + 16].astype(np.float32), verbose=0)
        for enc, lg in zip(boxes, logits, strict=True):
            scores_all = 1 / (1 + np.exp(-lg[:, 1:]))
            cls = scores_all.argmax(axis=1)
            scores = scores_all.max(axis=1)
            decoded = decode(enc, anchors)
            keep = tf.image.non_max_suppression(decoded, scores, max_detections, iou_threshold, score_threshold)
            keep = keep.numpy()
            results.append((np.clip(decoded[keep], 0, 1), cls[keep], scores[keep]))
    return results


def evaluate_float(model, anchors: np.ndarray, inputs: np.ndarray, data: DetectionImages) -> dict[str, float]:
    """mAP@0.5 and mAP@[.5:.95] of the float model on `data`."""
    from retrain_lib.detection_metrics import coco_map

    result = coco_map(data.boxes, data.labels, predict_float(model, anchors, inputs), sizes=None)
    return {"map50": result["map50"], "map": result["map"]}
