"""Full-integer post-training quantization: uint8 input, int8 inside, batch 1, static shape."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from retrain_lib.atomic import atomic_write_bytes

CALIBRATION_FILE = "calibration.txt"  # in model/: the training images that calibrate the int8 ranges


def calibration_indices(num_train: int, count: int, seed: int) -> np.ndarray:
    """Which training images calibrate the int8 ranges: `count` of them drawn with `seed`, in order."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(num_train, size=min(count, num_train), replace=False))


def fix_batch_one(model):
    """Wraps a Keras model so its input has the static shape (1, H, W, C) the Edge TPU needs."""
    import keras

    inputs = keras.Input(model.input_shape[1:], batch_size=1, name="image")
    return keras.Model(inputs, model(inputs), name=f"{model.name}_batch1")


def convert_to_int8(model, representative_images: np.ndarray, out_path: Path,
                    output_type: str = "uint8") -> Path:
    """Converts a Keras model taking 0-255 float RGB into a full-int8 TFLite file.

    Args:
        model: the trained Keras model.
        representative_images: uint8 images (N x H x W x 3) from the training split that calibrate
            the activation ranges.
        out_path: where the .tflite goes (written atomically).
        output_type: "uint8" for classifiers; "float32" keeps float outputs (detection post-processing).
    """
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(fix_batch_one(model))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: _representative(representative_images)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.uint8
    converter.inference_output_type = tf.uint8 if output_type == "uint8" else tf.float32
    atomic_write_bytes(out_path, converter.convert())
    return out_path


def _representative(images: np.ndarray) -> Iterator[list[np.ndarray]]:
    for image in images:
        yield [image[None].astype(np.float32)]
