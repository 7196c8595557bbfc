"""Transfer learning of a MobileNetV2 image classifier with cached backbone activations.

Training never runs the lower backbone more than once per image view:
1. the lower backbone (up to `cache_layer`) turns every image, plus `augment_views` random views of
   each training image, into activations that are computed once and kept in memory;
2. phase 1 trains the head (dropout + softmax) on pooled features of those activations (of the
   unaugmented images only when the dataset is large, see `head_view_count`);
3. phase 2 (optional) fine-tunes the upper blocks and the head on the cached activations of the
   augmented views, at a lower learning rate, with BatchNormalization kept in inference mode (or, with
   `fine_tune_batchnorm`, adapting its statistics to the new images).
With `int8_aware` (the default) the cached activations come from the full-int8 conversion of the lower
backbone, calibrated on the very images the convert stage will calibrate the whole model on: the frozen
blocks then quantize in the exported model as in the cache (bit for bit below the cache layer, to one step at
it), so the upper blocks and the head learn
on what the int8 model computes (on flowers, post-training quantization of the frozen ImageNet blocks alone
cost 3.5 points of accuracy). It is also about 5x faster than running the float lower backbone.
Mixup (blending pairs of cached activations and their labels) regularises both phases.
Both phases stop early on validation loss and keep their best weights. The exported model takes raw
uint8-valued RGB (see `retrain_lib.images`), with the [-1, 1] scaling inside.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from retrain_lib.augment import augmented_view
from retrain_lib.dataset import Dataset
from retrain_lib.images import load_rgb, resize_for_model
from retrain_lib.quantize import calibration_indices, convert_to_int8
from retrain_lib.tflite_model import classify_batch, make_interpreter
from retrain_lib.weights import WeightsChoice

ProgressFn = Callable[[str, int, int], None]
HEAD_SAMPLES = 4096  # pooled features the head phase learns on, at most (see `head_view_count`)


@dataclass(frozen=True)
class TrainConfig:
    """Training settings; the defaults live in the parameters cell of `notebooks/02_train.ipynb`."""

    input_size: int
    head_epochs: int
    fine_tune: bool
    fine_tune_epochs: int
    head_learning_rate: float
    fine_tune_learning_rate: float
    batch_size: int
    augment_views: int
    cache_layer: str
    dropout: float
    label_smoothing: float
    mixup: float
    patience: int
    fine_tune_batchnorm: bool
    seed: int
    int8_aware: bool
    representative_images: int


@dataclass
class TrainResult:
    """The trained model and what happened while training it."""

    model: object
    history: dict[str, list[float]]
    phase_epochs: dict[str, int]
    calibration: np.ndarray
    timings: dict[str, float] = field(default_factory=dict)


def configure_tensorflow(seed: int) -> None:
    """Seeds every generator and makes TensorFlow ops deterministic (same seed, same metrics on CPU)."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def build_classifier(num_classes: int, config: TrainConfig, weights: WeightsChoice):
    """Builds the exported model: uint8-valued RGB in, class probabilities out.

    Returns:
        (model, backbone, head) where `head` is the list of layers after the backbone.
    """
    import keras

    size = config.input_size
    inputs = keras.Input((size, size, 3), name="image")
    scaled = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="scale_to_unit")(inputs)
    backbone = keras.applications.MobileNetV2(input_shape=(size, size, 3), include_top=False,
                                              weights=weights.keras_arg, alpha=1.0)
    head = [keras.layers.GlobalAveragePooling2D(name="pool"),
            keras.layers.Dropout(config.dropout, name="dropout"),
            keras.layers.Dense(num_classes, activation="softmax", name="classes")]
    x = backbone(scaled, training=False)
    for layer in head:
        x = layer(x)
    return keras.Model(inputs, x, name="classifier"), backbone, head


def load_images(dataset: Dataset, split: str, input_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The split's images as model input (uint8, N x size x size x 3) and their class indices."""
    records = dataset.split(split)
    images = np.stack([resize_for_model(load_rgb(dataset.data_dir / r.file)[0], input_size) for r in records]) \
        if records else np.zeros((0, input_size, input_size, 3), np.uint8)
    return images, np.array(dataset.labels(records), dtype=np.int64)


def augmented_views(dataset: Dataset, input_size: int, views: int, seed: int) -> np.ndarray:
    """`views` random views of every training image: uint8 array (views, N, size, size, 3)."""
    rng = np.random.default_rng(seed)
    records = dataset.split("train")
    out = np.empty((views, len(records), input_size, input_size, 3), np.uint8)
    for i, record in enumerate(records):
        image, _ = load_rgb(dataset.data_dir / record.file)
        for v in range(views):
            out[v, i] = augmented_view(image, input_size, rng)
    return out


def train_classifier(dataset: Dataset, config: TrainConfig, weights: WeightsChoice,
                     progress: ProgressFn | None = None) -> TrainResult:
    """Trains the classifier on the dataset's train split, stopping early on the val split."""
    import keras

    configure_tensorflow(config.seed)
    progress = progress or (lambda phase, step, total: None)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    num_classes = len(dataset.classes)
    model, backbone, head = build_classifier(num_classes, config, weights)
    lower, upper = split_backbone(backbone, config.cache_layer)

    x_train, y_train = load_images(dataset, "train", config.input_size)
    x_val, y_val = load_images(dataset, "val", config.input_size)
    views = augmented_views(dataset, config.input_size, config.augment_views, config.seed)
    timings["load_images_s"] = time.perf_counter() - start

    t = time.perf_counter()
    calibration = calibration_indices(len(x_train), config.representative_images, config.seed)
    with tempfile.TemporaryDirectory(prefix="lower-int8-") as tmp:
        activations = (int8_activations(lower, x_train[calibration], Path(tmp)) if config.int8_aware
                       else _float_activations(lower, config.batch_size))
        act_train = np.concatenate([activations(x_train)] + [activations(v) for v in views])
        act_val = activations(x_val)
    y_train_all = np.tile(y_train, 1 + config.augment_views)
    timings["cache_activations_s"] = time.perf_counter() - t

    t = time.perf_counter()
    pool = head[0]
    head_views = head_view_count(len(y_train), 1 + config.augment_views)
    pooled_train = pool(upper.predict(act_train[:head_views * len(y_train)], batch_size=128, verbose=0)).numpy()
    pooled_val = pool(upper.predict(act_val, batch_size=128, verbose=0)).numpy()
    head_model = keras.Sequential([keras.Input(pooled_train.shape[1:]), head[1], head[2]])
    # the head sees every view it has each epoch (measured better than one random view per epoch)
    history = _fit(head_model, pooled_train, y_train_all[:len(pooled_train)], pooled_val, y_val, num_classes,
                   config, config.head_learning_rate, config.head_epochs, "head", progress)
    phase_epochs = {"head": len(history["loss"])}
    timings["train_head_s"] = time.perf_counter() - t

    if config.fine_tune and config.fine_tune_epochs > 0:
        t = time.perf_counter()
        _unfreeze(upper, batchnorm=config.fine_tune_batchnorm)
        tail_model = _tail_model(upper, head, training=None if config.fine_tune_batchnorm else False)
        fine = _fit(tail_model, act_train, y_train_all, act_val, y_val, num_classes, config,
                    config.fine_tune_learning_rate, config.fine_tune_epochs, "fine_tune", progress,
                    views_per_image=1 + config.augment_views, warmup_epochs=1)
        phase_epochs["fine_tune"] = len(fine["loss"])
        for key, values in fine.items():
            history.setdefault(key, []).extend(values)
        timings["fine_tune_s"] = time.perf_counter() - t
    history["phase"] = ["head"] * phase_epochs["head"] + ["fine_tune"] * phase_epochs.get("fine_tune", 0)
    timings["train_total_s"] = time.perf_counter() - start
    return TrainResult(model, history, phase_epochs, calibration, timings)


def split_backbone(backbone, cache_layer: str):
    """(lower, upper): the backbone up to and including `cache_layer`, and the rest, as two models."""
    import keras

    split_tensor = backbone.get_layer(cache_layer).output
    return (keras.Model(backbone.input, split_tensor, name="lower_backbone"),
            keras.Model(split_tensor, backbone.output, name="upper_backbone"))


def _tail_model(upper, head: list, training: bool | None = False):
    """The upper backbone and the head as one model that takes cached activations."""
    import keras

    tail_in = keras.Input(upper.input.shape[1:])
    x = upper(tail_in, training=training)
    for layer in head:
        x = layer(x)
    return keras.Model(tail_in, x)


def trained_model_predictions(model, cache_layer: str, calibration_images: np.ndarray, images: np.ndarray,
                              work_dir: Path) -> np.ndarray:
    """Class probabilities of `model` as int8-aware training saw it: the float upper blocks and head on the int8
    lower backbone's activations (calibrated on `calibration_images`, the set training used).

    This, not the all-float model, is what the int8 model is a quantization of: below the cache layer the two
    compute the same int8 activations, so comparing them checks only how the trained blocks quantized. (On flowers
    the int8 model agreed with this reference on 98.7 % of 1000 images, with the all-float model on 90.3 %: the
    all-float model meets float activations the upper blocks never trained on.)
    """
    import keras

    backbone = next(layer for layer in model.layers if isinstance(layer, keras.Model))
    head = model.layers[model.layers.index(backbone) + 1:]
    lower, upper = split_backbone(backbone, cache_layer)
    activations = int8_activations(lower, calibration_images, work_dir)(images)
    return _tail_model(upper, head).predict(activations, batch_size=64, verbose=0)


def head_view_count(num_train: int, views: int) -> int:
    """How many cached views of each training image (the unaugmented one first) the head phase learns on.

    A small dataset needs its augmented views to train even a linear head well (the dashboard test's
    shapes job: its int8 model agreed with the float one on 94 % of images without them, on 100 % with
    them); on a large one they only cost time (all of flowers, 3449 images: 25 s for no better model).
    So the head gets as many whole views as fit in `HEAD_SAMPLES` pooled features, and at least the
    unaugmented images.
    """
    return max(1, min(views, HEAD_SAMPLES // max(num_train, 1)))


def _float_activations(lower, batch_size: int) -> Callable[[np.ndarray], np.ndarray]:
    def activations(images: np.ndarray) -> np.ndarray:
        scaled = images.astype(np.float32) / 127.5 - 1.0
        return lower.predict(scaled, batch_size=max(batch_size, 64), verbose=0)

    return activations


def int8_activations(lower, calibration_images: np.ndarray, work_dir: Path) -> Callable[[np.ndarray], np.ndarray]:
    """The lower backbone as the int8 model will run it: converted like the whole model, outputs dequantized."""
    import keras

    inputs = keras.Input(lower.input_shape[1:], name="image")
    scaled = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="scale_to_unit")(inputs)
    lower_model = keras.Model(inputs, lower(scaled), name="lower_backbone_uint8")
    interpreter = make_interpreter(convert_to_int8(lower_model, calibration_images, work_dir / "lower.tflite",
                                                   output_type="float32"))
    return lambda images: classify_batch(interpreter, images)


def _unfreeze(model, batchnorm: bool) -> None:
    """Makes the upper backbone trainable; BatchNormalization too only when `batchnorm`."""
    import keras

    model.trainable = True
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = batchnorm


def _fit(model, x, y, x_val, y_val, num_classes: int, config: TrainConfig, learning_rate: float,
         epochs: int, phase: str, progress: ProgressFn, views_per_image: int = 1,
         warmup_epochs: int = 0) -> dict[str, list[float]]:
    """Fits with label smoothing and early stopping on val loss; one random view per image per epoch.

    The learning rate warms up linearly over `warmup_epochs`, then follows a cosine decay.
    """
    import keras

    steps = math.ceil(len(x) / views_per_image / config.batch_size)
    warmup = steps * min(warmup_epochs, max(epochs - 1, 0))
    schedule = keras.optimizers.schedules.CosineDecay(
        learning_rate / 10 if warmup else learning_rate, decay_steps=max(1, steps * epochs - warmup), alpha=0.05,
        warmup_target=learning_rate if warmup else None, warmup_steps=warmup)
    model.compile(optimizer=keras.optimizers.Adam(schedule),
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
                  metrics=["accuracy"])
    batches = _ViewBatches(x, y, num_classes, config.batch_size, views_per_image, config.mixup, config.seed)
    callbacks = [keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.patience,
                                               restore_best_weights=True),
                 keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: progress(phase, epoch + 1, epochs))]
    fitted = model.fit(batches, validation_data=(x_val, keras.utils.to_categorical(y_val, num_classes)),
                       epochs=epochs, callbacks=callbacks, verbose=0)
    return {k: [float(v) for v in values] for k, values in fitted.history.items()}


def _view_batches_class():
    import keras

    class ViewBatches(keras.utils.PyDataset):
        """Batches drawing, per epoch, one random cached view of every training image."""

        def __init__(self, x, y, num_classes, batch_size, views, mixup, seed):
            super().__init__()
            self.x, self.views, self.batch_size, self.mixup = x, views, batch_size, mixup
            self.n = len(x) // views
            self.y = keras.utils.to_categorical(y[: self.n], num_classes)
            self.rng = np.random.default_rng(seed)
            self.on_epoch_end()

        def __len__(self):
            return math.ceil(self.n / self.batch_size)

        def __getitem__(self, index):
            rows = self.order[index * self.batch_size:(index + 1) * self.batch_size]
            picks = self.view_of[rows] * self.n + rows
            x, y = self.x[picks], self.y[rows]
            if self.mixup > 0:
                lam = self.rng.beta(self.mixup, self.mixup, size=len(rows)).astype(np.float32)
                partner = self.rng.permutation(len(rows))
                lam_x = lam.reshape((-1,) + (1,) * (x.ndim - 1))
                x = lam_x * x + (1 - lam_x) * x[partner]
                y = lam[:, None] * y + (1 - lam[:, None]) * y[partner]
            return x, y

        def on_epoch_end(self):
            self.order = self.rng.permutation(self.n)
            self.view_of = self.rng.integers(0, self.views, self.n)

    return ViewBatches


def _ViewBatches(x, y, num_classes, batch_size, views, mixup, seed):  # noqa: N802 - keras is imported lazily
    return _view_batches_class()(x, y, num_classes, batch_size, views, mixup, seed)


def save_model(model, model_dir: Path) -> Path:
    """Saves the Keras model atomically as `model_dir/model.keras`."""
    model_dir.mkdir(parents=True, exist_ok=True)
    tmp = model_dir / ".model.partial.keras"
    model.save(tmp)
    final = model_dir / "model.keras"
    tmp.replace(final)
    return final
