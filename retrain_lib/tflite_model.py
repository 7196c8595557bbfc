"""Running and inspecting .tflite models with the LiteRT interpreter (the runtime the robot uses)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

ALLOWED_QUANTIZED_TYPES = ("int8", "uint8")
BIASED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV")
DETECTION_TAIL = ("DEQUANTIZE", "TFLite_Detection_PostProcess")


@dataclass(frozen=True)
class Quantization:
    """A tensor's dtype and affine quantization: real = scale * (q - zero_point)."""

    dtype: str
    scale: float
    zero_point: int
    shape: tuple[int, ...]


def make_interpreter(model_path: Path, num_threads: int = 2):
    """A LiteRT interpreter for `model_path`, tensors allocated."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(model_path), num_threads=num_threads)
    interpreter.allocate_tensors()
    return interpreter


def input_quantization(interpreter) -> Quantization:
    """The dtype, scale, zero point and shape of the model's (only) input."""
    return _quantization(interpreter.get_input_details()[0])


def output_quantization(interpreter) -> Quantization:
    return _quantization(interpreter.get_output_details()[0])


def _quantization(detail: dict) -> Quantization:
    scale, zero_point = detail["quantization"]
    return Quantization(np.dtype(detail["dtype"]).name, float(scale), int(zero_point),
                        tuple(int(d) for d in detail["shape"]))


def classify_batch(interpreter, images: np.ndarray) -> np.ndarray:
    """Runs a classifier on uint8 images one at a time; returns dequantized scores (N x classes)."""
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]
    scale, zero_point = out["quantization"]
    scores = []
    for image in images:
        interpreter.set_tensor(inp["index"], image[None].astype(inp["dtype"]))
        interpreter.invoke()
        raw = interpreter.get_tensor(out["index"])[0].astype(np.float32)
        scores.append((raw - zero_point) * scale if scale else raw)
    return np.stack(scores)


def tensor_type_problems(model_path: Path, allow_detection_tail: bool = False) -> list[str]:
    """Tensors of a supposedly full-integer model that are not int8/uint8.

    Allowed besides: int32 biases of convolutions and fully connected layers, and int32 constant
    parameters such as a MEAN's axis or a RESHAPE's shape (they are not activations); with
    `allow_detection_tail`, the float tensors of the DEQUANTIZE -> TFLite_Detection_PostProcess tail.

    Returns:
        One line per offending tensor; empty when the model is fully quantized.
    """
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(model_path))
    ops = interpreter._get_ops_details()
    biases = {op["inputs"][2] for op in ops if op["op_name"] in BIASED_OPS and len(op["inputs"]) > 2}
    activations = {t for op in ops for t in op["outputs"]} | {d["index"] for d in interpreter.get_input_details()}
    tail = set()
    if allow_detection_tail:
        for op in ops:
            if op["op_name"] in DETECTION_TAIL:
                tail.update(t for t in list(op["inputs"]) + list(op["outputs"]) if t >= 0)
    problems = []
    for tensor in interpreter.get_tensor_details():
        dtype = np.dtype(tensor["dtype"]).name
        index = tensor["index"]
        if dtype in ALLOWED_QUANTIZED_TYPES or (dtype == "int32" and (index in biases or index not in activations)):
            continue
        if index in tail and dtype == "float32":
            continue
        problems.append(f"tensor {index} '{tensor['name']}' is {dtype}")
    return problems


def op_names(model_path: Path) -> list[str]:
    """The model's operators in execution order, as TFLite spells them (before delegation)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(model_path))
    return [op["op_name"] for op in interpreter._get_ops_details()]
