"""Exports the detector to full-int8 TFLite ending in TFLite_Detection_PostProcess, and runs that model.

uint8 input (one QUANTIZE), int8 inside, DEQUANTIZE before the post-processing op, float32 outputs:
boxes (1, K, 4) normalised (ymin, xmin, ymax, xmax), classes (1, K), scores (1, K), count (1,), like
Coral's SSD models.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from retrain_lib.atomic import atomic_write_bytes
from retrain_lib.ssd_anchors import BOX_SCALES

POSTPROCESS = "TFLite_Detection_PostProcess"


def _implements_signature(num_classes: int, max_detections: int, score_threshold: float,
                          iou_threshold: float) -> str:
    y, x, h, w = BOX_SCALES
    return " ".join([
        f'name: "{POSTPROCESS}"',
        f'attr {{ key: "max_detections" value {{ i: {max_detections} }} }}',
        'attr { key: "max_classes_per_detection" value { i: 1 } }',
        'attr { key: "detections_per_class" value { i: 100 } }',
        'attr { key: "use_regular_nms" value { b: false } }',
        f'attr {{ key: "nms_score_threshold" value {{ f: {score_threshold:f} }} }}',
        f'attr {{ key: "nms_iou_threshold" value {{ f: {iou_threshold:f} }} }}',
        f'attr {{ key: "y_scale" value {{ f: {y:f} }} }}',
        f'attr {{ key: "x_scale" value {{ f: {x:f} }} }}',
        f'attr {{ key: "h_scale" value {{ f: {h:f} }} }}',
        f'attr {{ key: "w_scale" value {{ f: {w:f} }} }}',
        f'attr {{ key: "num_classes" value {{ i: {num_classes} }} }}',
    ])


def export_detector_int8(model, anchors: np.ndarray, num_classes: int, representative_images: np.ndarray,
                         out_path: Path, max_detections: int = 25, score_threshold: float = 0.01,
                         iou_threshold: float = 0.6) -> Path:
    """Converts the Keras detector into a full-int8 .tflite with the post-processing op (written atomically)."""
    import tensorflow as tf

    size = model.input_shape[1]
    signature = _implements_signature(num_classes, max_detections, score_threshold, iou_threshold)

    @tf.function(experimental_implements=signature)
    def postprocess(boxes, scores, anchor_boxes):  # converted to the TFLite custom op, never run
        del boxes, scores, anchor_boxes
        zero = tf.constant(0.0, dtype=tf.float32)
        return zero, zero, zero, zero

    import keras

    anchor_boxes = tf.constant(anchors, dtype=tf.float32)

    def serve(image):
        boxes, logits = model(image, training=False)
        return postprocess(boxes, tf.sigmoid(logits), anchor_boxes)

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(name="serve", fn=serve,
                         input_signature=[tf.TensorSpec([1, size, size, 3], tf.float32, name="image")])
    with tempfile.TemporaryDirectory() as saved:
        archive.write_out(saved, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([img[None].astype(np.float32)] for img in representative_images)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
        converter.inference_output_type = tf.float32
        converter.allow_custom_ops = True
        atomic_write_bytes(out_path, converter.convert())
    return out_path


def detect_batch(interpreter, images: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Runs an exported detector on uint8 images: per image (boxes normalised, class ids, scores).

    The post-processing op's outputs are matched by name (NAME, NAME:1, NAME:2, NAME:3), never by shape.
    """
    inp = interpreter.get_input_details()[0]
    outputs = _outputs_by_role(interpreter)
    results = []
    for image in images:
        interpreter.set_tensor(inp["index"], image[None].astype(np.uint8))
        interpreter.invoke()
        count = int(interpreter.get_tensor(outputs[3]).reshape(-1)[0])
        boxes = interpreter.get_tensor(outputs[0])[0][:count]
        classes = interpreter.get_tensor(outputs[1])[0][:count].astype(np.int32)
        scores = interpreter.get_tensor(outputs[2])[0][:count]
        results.append((np.clip(boxes, 0, 1), classes, scores))
    return results


def _outputs_by_role(interpreter) -> dict[int, int]:
    roles = {}
    for detail in interpreter.get_output_details():
        name = detail["name"]
        suffix = name.rsplit(":", 1)[1] if ":" in name else "0"
        roles[int(suffix) if suffix.isdigit() else 0] = detail["index"]
    if sorted(roles) != [0, 1, 2, 3]:
        raise RuntimeError(f"not a detection model: outputs {[d['name'] for d in interpreter.get_output_details()]}")
    return roles
