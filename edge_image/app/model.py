"""Loads the job's model once and runs it: the Edge TPU delegate when present, else the CPU.

`make_interpreter` is the one place the delegate is loaded. Results are small named tuples, as in pycoral.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

from app.preprocess import to_model_input

log = logging.getLogger(__name__)
EDGETPU_LIBRARY = "libedgetpu.so.1"
EDGETPU_MODEL = "model_edgetpu.tflite"
INT8_MODEL = "model_int8.tflite"


class Class(NamedTuple):
    """One classification result: class index, label and score in [0, 1]."""

    id: int
    label: str
    score: float


class BBox(NamedTuple):
    """A box in pixels of the original image."""

    xmin: float
    ymin: float
    xmax: float
    ymax: float


class Object(NamedTuple):
    """One detection: class index, label, score and box."""

    id: int
    label: str
    score: float
    box: BBox


@dataclass(frozen=True)
class ModelInfo:
    """What GET /v1/model reports."""

    task: str
    labels: list[str]
    input_width: int
    input_height: int
    accelerator: str
    model_file: str
    sha256: str
    accelerator_note: str


def make_interpreter(model_dir: Path, num_threads: int):
    """An allocated interpreter for the best model the hardware can run.

    Returns:
        (interpreter, model path, accelerator "edgetpu" or "cpu", a note on why).
    """
    from ai_edge_litert.interpreter import Interpreter, load_delegate

    compiled = model_dir / EDGETPU_MODEL
    note = f"no {EDGETPU_MODEL} in the image (the model was not compiled for the Edge TPU)"
    if compiled.exists():
        try:
            delegate = load_delegate(EDGETPU_LIBRARY)
            interpreter = Interpreter(model_path=str(compiled), experimental_delegates=[delegate])
            interpreter.allocate_tensors()
            return interpreter, compiled, "edgetpu", "running on the Edge TPU"
        except (OSError, ValueError, RuntimeError) as err:
            note = f"Edge TPU unavailable ({err}); is the Coral plugged in and the container run with " \
                   "--device /dev/bus/usb?"
    interpreter = Interpreter(model_path=str(model_dir / INT8_MODEL), num_threads=num_threads)
    interpreter.allocate_tensors()
    return interpreter, model_dir / INT8_MODEL, "cpu", note


class ModelRunner:
    """Owns the interpreter; `classify` and `detect` are safe to call from many threads."""

    def __init__(self, model_dir: Path, num_threads: int = 2):
        self.manifest = json.loads((model_dir / "manifest.json").read_text(encoding="utf-8"))
        self.labels = list(self.manifest["labels"])
        self.task = self.manifest["task"]
        self._interpreter, path, accelerator, note = make_interpreter(model_dir, num_threads)
        self._lock = threading.Lock()
        self._input = self._interpreter.get_input_details()[0]
        self._outputs = self._interpreter.get_output_details()  # built once: the interpreter makes new dicts
        _, height, width, _ = self._input["shape"]
        self.info = ModelInfo(self.task, self.labels, int(width), int(height), accelerator, path.name,
                              hashlib.sha256(path.read_bytes()).hexdigest(), note)
        log.info("model %s loaded on %s: %s", path.name, accelerator, note)

    def invoke(self, model_input: np.ndarray) -> list[np.ndarray]:
        """Runs the model on one uint8 input; returns copies of every output tensor."""
        with self._lock:
            self._interpreter.set_tensor(self._input["index"], model_input[None])
            self._interpreter.invoke()
            return [self._interpreter.get_tensor(d["index"]).copy() for d in self._outputs]

    def prepare(self, image: Image.Image) -> np.ndarray:
        return to_model_input(image, self.info.input_width, self.info.input_height)

    def classify(self, image: Image.Image, top_k: int = 5) -> list[Class]:
        """Scores of every class, best first, at most `top_k`."""
        raw = self.invoke(self.prepare(image))[0][0].astype(np.float32)
        scale, zero_point = self._outputs[0]["quantization"]
        scores = (raw - zero_point) * scale if scale else raw
        order = np.argsort(-scores, kind="stable")[:top_k]
        return [Class(int(i), self.labels[i], float(scores[i])) for i in order]

    def detect(self, image: Image.Image, score_threshold: float = 0.5, max_results: int = 20) -> list[Object]:
        """Detections above `score_threshold`, best first, boxes in pixels of `image`."""
        outputs = self.invoke(self.prepare(image))
        boxes, classes, scores, count = _postprocess_outputs(self._interpreter, outputs)
        found = []
        for i in range(min(int(count), len(scores))):
            if scores[i] < score_threshold:
                continue
            ymin, xmin, ymax, xmax = np.clip(boxes[i], 0.0, 1.0)
            box = BBox(float(xmin * image.width), float(ymin * image.height),
                       float(xmax * image.width), float(ymax * image.height))
            label_id = int(classes[i])
            found.append(Object(label_id, self.labels[label_id] if label_id < len(self.labels) else str(label_id),
                                float(scores[i]), box))
        found.sort(key=lambda o: -o.score)
        return found[:max_results]


def _postprocess_outputs(interpreter, outputs: list[np.ndarray]):
    """Boxes, classes, scores and count of TFLite_Detection_PostProcess, ordered by the op's output names.

    The op's outputs are named NAME, NAME:1, NAME:2, NAME:3 for boxes, classes, scores and count; the
    interpreter may list them in any order, so they are matched by name, never by shape.
    """
    details = interpreter.get_output_details()
    by_suffix = {}
    for detail, value in zip(details, outputs, strict=True):
        name = detail["name"]
        suffix = int(name.rsplit(":", 1)[1]) if ":" in name and name.rsplit(":", 1)[1].isdigit() else 0
        by_suffix[suffix] = value
    if sorted(by_suffix) != [0, 1, 2, 3]:
        raise RuntimeError(f"unexpected detection outputs {[d['name'] for d in details]}")
    return by_suffix[0][0], by_suffix[1][0], by_suffix[2][0], by_suffix[3].reshape(-1)[0]
