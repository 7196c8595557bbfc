"""Predicts, op by op, what Google's edgetpu_compiler maps to the Edge TPU, without the compiler.

Reads the .tflite flatbuffer with the schema bindings that ship with LiteRT and applies Coral's published
rules: the table of supported operations and their constraints, full int8/uint8 quantization, static
shapes, batch 1, at most three innermost dimensions above 1, and the single-subgraph rule: the compiler
cuts the graph at the first op it cannot map, and every op that depends on it runs on the CPU.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

EDGETPU_CUSTOM_OP = "edgetpu-custom-op"
QUANTIZED_TYPES = ("INT8", "UINT8")
LSTM_INTERNAL_TYPES = ("INT16", "INT32")  # a quantized LSTM keeps its cell state and gate biases wider


@dataclass(frozen=True)
class OpVerdict:
    """One operator in execution order and whether the compiler will map it."""

    index: int
    op: str
    mapped: bool
    reason: str
    fix: str = ""


@dataclass(frozen=True)
class Analysis:
    """The analyzer's prediction for a whole model."""

    model: str
    ops: list[OpVerdict]

    @property
    def mapped_count(self) -> int:
        return sum(v.mapped for v in self.ops)

    @property
    def cpu_count(self) -> int:
        return len(self.ops) - self.mapped_count

    def cpu_ops(self) -> list[str]:
        return [v.op for v in self.ops if not v.mapped]

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "ops": [asdict(v) for v in self.ops], "mapped_count": self.mapped_count,
                "cpu_count": self.cpu_count, "source": "predicted"}


class _Graph:
    """The first subgraph of a model with names and helpers the rules need."""

    def __init__(self, model_bytes: bytes):
        from ai_edge_litert import schema_py_generated as schema

        self.schema = schema
        self.model = schema.ModelT.InitFromPackedBuf(model_bytes, 0)
        self.builtin_names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
        self.type_names = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
        self.subgraph = self.model.subgraphs[0]
        self.tensors = self.subgraph.tensors

    def op_name(self, op) -> str:
        code = self.model.operatorCodes[op.opcodeIndex]
        if code.customCode:
            return code.customCode.decode()
        return self.builtin_names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "UNKNOWN")

    def op_version(self, op) -> int:
        return self.model.operatorCodes[op.opcodeIndex].version

    def is_constant(self, index: int) -> bool:
        buffer = self.model.buffers[self.tensors[index].buffer]
        return buffer is not None and buffer.data is not None and len(buffer.data) > 0

    def constant(self, index: int) -> np.ndarray:
        tensor = self.tensors[index]
        dtype = {"INT32": np.int32, "INT64": np.int64, "UINT8": np.uint8, "INT8": np.int8,
                 "FLOAT32": np.float32}.get(self.type_name(index), np.uint8)
        return np.frombuffer(bytes(self.model.buffers[tensor.buffer].data), dtype=dtype)

    def type_name(self, index: int) -> str:
        return self.type_names.get(self.tensors[index].type, "UNKNOWN")

    def shape(self, index: int) -> list[int]:
        shape = self.tensors[index].shape
        return [] if shape is None else [int(d) for d in shape]

    def is_dynamic(self, index: int) -> bool:
        signature = self.tensors[index].shapeSignature
        return signature is not None and any(int(d) < 0 for d in signature)


# Coral's table of supported operations (https://coral.ai/docs/edgetpu/models-intro/#supported-operations):
# op name -> a check returning (reason, fix) when a constraint is broken, or None.
Check = Callable[[_Graph, Any], "tuple[str, str] | None"]


def _same_dilation(graph: _Graph, op) -> tuple[str, str] | None:
    options = op.builtinOptions
    if options is not None and options.dilationWFactor != options.dilationHFactor:
        return (f"dilation differs in x ({options.dilationWFactor}) and y ({options.dilationHFactor})",
                "use the same dilation rate in both directions")
    return None


def _no_fused_activation(graph: _Graph, op) -> tuple[str, str] | None:
    options = op.builtinOptions
    if options is not None and getattr(options, "fusedActivationFunction", 0) != 0:
        return ("has a fused activation function", "apply the activation as a separate ReLU layer")
    return None


def _concatenation(graph: _Graph, op) -> tuple[str, str] | None:
    fused = _no_fused_activation(graph, op)
    if fused:
        return fused
    constants = [i for i in op.inputs if i >= 0 and graph.is_constant(i)]
    if constants and (len(op.inputs) != 2 or any(graph.constant(i).any() for i in constants)):
        return ("has a constant input that is not a single all-zeros tensor",
                "concatenate only computed tensors (a constant input may only be zero padding)")
    return None


def _fully_connected(graph: _Graph, op) -> tuple[str, str] | None:
    options = op.builtinOptions
    if options is not None and getattr(options, "weightsFormat", 0) != 0:
        return ("uses a shuffled weights format", "convert with the default fully-connected weights format")
    return None


def _not_over_batch(axes_input: int, data_input: int) -> Check:
    def check(graph: _Graph, op) -> tuple[str, str] | None:
        if len(op.inputs) <= axes_input or op.inputs[axes_input] < 0:
            return None
        index = op.inputs[axes_input]
        if graph.is_constant(index):
            rank = len(graph.shape(op.inputs[data_input]))
            axes = [int(a) % max(rank, 1) for a in graph.constant(index)]
            if 0 in axes:
                return ("operates over the batch dimension", "reduce, pad or split only over non-batch axes")
        return None
    return check


def _not_over_batch_padding(graph: _Graph, op) -> tuple[str, str] | None:
    if len(op.inputs) > 1 and graph.is_constant(op.inputs[1]):
        paddings = graph.constant(op.inputs[1]).reshape(-1, 2)
        if len(paddings) and paddings[0].any():
            return ("pads the batch dimension", "pad only height, width or channels")
    return None


def _axis_not_batch(graph: _Graph, op) -> tuple[str, str] | None:
    options = op.builtinOptions
    if options is not None and getattr(options, "axis", 1) == 0:
        return ("operates over the batch dimension", "pack or split only over non-batch axes")
    return None


def _resize(graph: _Graph, op) -> tuple[str, str] | None:
    in_shape, out_shape = graph.shape(op.inputs[0]), graph.shape(op.outputs[0])
    if len(in_shape) != 4 or len(out_shape) != 4:
        return None
    (in_h, in_w), (out_h, out_w) = in_shape[1:3], out_shape[1:3]
    if in_h == 1 or in_w == 1:
        return (f"resizes from {in_h}x{in_w} to {out_h}x{out_w}, a broadcast the compiler leaves to the CPU to avoid "
                "losing precision", "tile or broadcast with a supported op, or compute at the larger size")
    if out_h % in_h or out_w % in_w:
        return (f"resizes {in_h}x{in_w} to {out_h}x{out_w}, not an integer scale",
                "resize by an integer factor")
    return None


def _softmax(graph: _Graph, op) -> tuple[str, str] | None:
    shape = graph.shape(op.inputs[0])
    if shape and int(np.prod(shape)) > 16000:
        return (f"has {int(np.prod(shape))} elements, more than 16,000", "use a smaller softmax")
    return None


SUPPORTED: dict[str, Check | None] = {
    "ADD": None, "SUB": None, "MUL": None, "MAXIMUM": None, "MINIMUM": None, "SQUARED_DIFFERENCE": None,
    "AVERAGE_POOL_2D": _no_fused_activation, "MAX_POOL_2D": _no_fused_activation,
    "CONCATENATION": _concatenation,
    "CONV_2D": _same_dilation, "DEPTHWISE_CONV_2D": _same_dilation, "TRANSPOSE_CONV": None,
    "FULLY_CONNECTED": _fully_connected,
    "EXPAND_DIMS": None, "SQUEEZE": None, "RESHAPE": None, "SLICE": None, "STRIDED_SLICE": None,
    "TRANSPOSE": None, "SPACE_TO_DEPTH": None,
    "L2_NORMALIZATION": None, "LOGISTIC": None, "TANH": None, "RELU": None, "RELU6": None, "RELU_N1_TO_1": None,
    "PRELU": None, "RSQRT": None, "SOFTMAX": _softmax, "QUANTIZE": None,
    "MEAN": _not_over_batch(1, 0), "SUM": _not_over_batch(1, 0), "REDUCE_MAX": _not_over_batch(1, 0),
    "REDUCE_MIN": _not_over_batch(1, 0), "PAD": _not_over_batch_padding, "SPLIT": _not_over_batch(0, 1),
    "PACK": _axis_not_batch,
    "RESIZE_BILINEAR": _resize, "RESIZE_NEAREST_NEIGHBOR": _resize,
    "UNIDIRECTIONAL_SEQUENCE_LSTM": None, EDGETPU_CUSTOM_OP: None,
}
ADVICE = {
    "DEQUANTIZE": "float outputs run on the CPU; for detection this is expected before the post-processing op",
    "TFLite_Detection_PostProcess": "non-maximum suppression always runs on the CPU, as in Coral's own SSD models",
    "ARG_MAX": "take the arg-max in your application code instead",
    "TILE": "replace tiling by a broadcast in a supported op (ADD/MUL) or a CONCATENATION",
    "GATHER": "avoid gathers inside the model",
    "CAST": "keep the whole graph in int8/uint8",
}


def analyze_model(model_path: Path) -> Analysis:
    """Predicts the compiler's verdict for every op of `model_path`, in execution order.

    The single-subgraph rule in graph form: an op whose input comes (directly or not) from an op on the
    CPU runs on the CPU too, whatever its type, because the Edge TPU part must be one subgraph.
    """
    graph = _Graph(Path(model_path).read_bytes())
    verdicts, cpu_tensors = [], set()
    for index, op in enumerate(graph.subgraph.operators):
        name = graph.op_name(op)
        inputs = [i for i in op.inputs if i >= 0]
        if any(i in cpu_tensors for i in inputs):
            verdicts.append(OpVerdict(index, name, False, "More than one subgraph is not supported",
                                      "it depends on an op that runs on the CPU: fix that one"))
            cpu_tensors.update(op.outputs)
            continue
        problem = _op_problem(graph, op, name)
        if problem is None:
            verdicts.append(OpVerdict(index, name, True, "Mapped to Edge TPU"))
        else:
            reason, fix = problem
            verdicts.append(OpVerdict(index, name, False, reason, fix))
            cpu_tensors.update(op.outputs)
    return Analysis(str(model_path), verdicts)


def _op_problem(graph: _Graph, op, name: str) -> tuple[str, str] | None:
    if len(graph.model.subgraphs) > 1:
        return ("the model has more than one subgraph (control flow)", "remove control flow such as while/if loops")
    if name not in SUPPORTED:
        return ("Operation not supported", ADVICE.get(name, "replace this op by one from Coral's supported table"))
    for index in [i for i in list(op.inputs) + list(op.outputs) if i >= 0]:
        problem = _tensor_problem(graph, index, name)
        if problem:
            return problem
    check = SUPPORTED[name]
    return check(graph, op) if check else None


def _tensor_problem(graph: _Graph, index: int, name: str) -> tuple[str, str] | None:
    dtype = graph.type_name(index)
    constant = graph.is_constant(index)
    allowed = QUANTIZED_TYPES + (LSTM_INTERNAL_TYPES if name == "UNIDIRECTIONAL_SEQUENCE_LSTM" else ())
    float_into_quantize = name == "QUANTIZE" and dtype == "FLOAT32"
    if dtype not in allowed and not (constant and dtype in ("INT32", "INT64")) and not float_into_quantize:
        return (f"Operation is working on an unsupported data type ({dtype} tensor "
                f"'{graph.tensors[index].name.decode(errors='replace')}')",
                "convert with full-integer quantization (a representative dataset and TFLITE_BUILTINS_INT8)")
    if graph.is_dynamic(index):
        return ("has a dynamic-sized tensor", "convert with a fixed input shape and batch size 1")
    shape = graph.shape(index)
    if constant:
        return None
    if len(shape) == 4 and shape[0] != 1:
        return (f"has batch size {shape[0]}", "convert with batch size 1")
    if len(shape) > 3 and sum(d > 1 for d in shape[:-3]) > 0:
        return (f"has a tensor of shape {shape} with more than 3 dimensions above 1",
                "reshape so that only the 3 innermost dimensions exceed 1")
    return None


def format_table(analysis: Analysis, source: str = "predicted") -> str:
    """A plain-text table of the verdicts and the one-line summary."""
    width = max([len(v.op) for v in analysis.ops] + [8])
    lines = [f"{'#':>4}  {'op':<{width}}  {'where':<8}  reason"]
    for v in analysis.ops:
        lines.append(f"{v.index:>4}  {v.op:<{width}}  {'EdgeTPU' if v.mapped else 'CPU':<8}  {v.reason}"
                     + (f" (fix: {v.fix})" if v.fix and not v.mapped else ""))
    lines.append(f"{analysis.mapped_count} of {len(analysis.ops)} ops will run on the Edge TPU ({source}).")
    return "\n".join(lines)


def compiled_cpu_ops(compiled_path: Path) -> list[str]:
    """The ops a compiled *_edgetpu.tflite leaves beside edgetpu-custom-op: the compiler's real verdict."""
    graph = _Graph(Path(compiled_path).read_bytes())
    return [name for name in (graph.op_name(op) for op in graph.subgraph.operators) if name != EDGETPU_CUSTOM_OP]
