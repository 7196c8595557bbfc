"""A whole detection job through papermill on a raccoon subset, and the robot image answering /v1/detect."""

from __future__ import annotations

import http.client
import json
import shutil
import uuid
from pathlib import Path

import numpy as np
import pytest

from retrain_lib.detection_dataset import load_detection_dataset
from retrain_lib.detector import DetectionImages
from retrain_lib.detector_export import detect_batch
from retrain_lib.edgetpu_analyzer import analyze_model
from retrain_lib.packaging import docker_client
from retrain_lib.pipeline import run_job
from retrain_lib.report import read_report
from retrain_lib.tflite_model import input_quantization, make_interpreter, op_names, tensor_type_problems
from tests.conftest import SHARED_DIR, free_port, package_settings, wait_for_health

pytestmark = pytest.mark.slow
RACCOON = SHARED_DIR / "datasets" / "raccoon_dataset"
TINY = {"detection_input_size": "192", "detection_steps": "40", "detection_eval_every": "20",
        "detection_batch_size": "8", "max_map_drop": "0.5", "min_boxes_per_class": "3"}


@pytest.fixture(scope="module")
def raccoon_subset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("raccoon") / "raccoon"
    (root / "images").mkdir(parents=True)
    (root / "annotations").mkdir()
    for xml in sorted((RACCOON / "annotations").glob("*.xml"))[:36]:
        shutil.copy(xml, root / "annotations" / xml.name)
        shutil.copy(RACCOON / "images" / f"{xml.stem}.jpg", root / "images" / f"{xml.stem}.jpg")
    return root


@pytest.fixture(scope="module")
def detection_job(raccoon_subset, tmp_path_factory) -> Path:
    job_dir = tmp_path_factory.mktemp("detjob") / f"raccoon-{uuid.uuid4().hex[:8]}"
    run_job("detection", raccoon_subset, job_dir, {**TINY, **package_settings("tests/raccoon")},
            log=lambda line: None)
    return job_dir


def test_report_and_dataset(detection_job):
    report = read_report(detection_job)
    assert report["task"] == "detection" and report["status"] == "succeeded"
    assert report["dataset"]["layout"] == "Pascal VOC XML" and report["dataset"]["classes"] == ["raccoon"]
    for key in ("map50", "map"):
        assert 0.0 <= report["metrics"]["float"][key] <= 1.0
        assert 0.0 <= report["metrics"]["int8"][key] <= 1.0
    assert (detection_job / "dataset" / "health.png").stat().st_size > 5000
    assert (detection_job / "model" / "detections_int8.png").exists()
    smallest, largest = report["training"]["anchor_scales"]
    assert 0.05 <= smallest <= 0.2 and largest == 0.95
    anchors = np.load(detection_job / "model" / "anchors.npy")
    assert np.sqrt(anchors[:, 2] * anchors[:, 3]).min() == pytest.approx(smallest, rel=1e-3)


def test_int8_model_structure(detection_job):
    model = detection_job / "export" / "model_int8.tflite"
    ops = op_names(model)
    assert ops[0] == "QUANTIZE" and ops[-1] == "TFLite_Detection_PostProcess"
    assert tensor_type_problems(model, allow_detection_tail=True) == []
    quant = input_quantization(make_interpreter(model))
    assert quant.dtype == "uint8" and quant.shape == (1, 192, 192, 3)
    analysis = analyze_model(model)
    assert sorted(analysis.cpu_ops()) == ["DEQUANTIZE", "DEQUANTIZE", "TFLite_Detection_PostProcess"], \
        "everything but the post-processing tail must map to the Edge TPU"
    assert read_report(detection_job)["edgetpu"]["mapped"] == len(ops) - 3


def test_interpreter_returns_boxes_in_range(detection_job):
    dataset = load_detection_dataset(detection_job / "dataset")
    images = DetectionImages(dataset.data_dir, dataset.split("test"), dataset.classes).model_inputs(192)
    for boxes, classes, scores in detect_batch(make_interpreter(detection_job / "export" / "model_int8.tflite"),
                                               images):
        assert boxes.shape[1:] == (4,) and np.all((boxes >= 0) & (boxes <= 1))
        assert np.all(boxes[:, 2] >= boxes[:, 0]) and np.all(classes == 0)
        assert np.all((scores >= 0) & (scores <= 1))


def test_int8_detections_match_the_float_model_on_real_images(detection_job):
    """What the int8 graph hands to the post-processing op (box encodings, class scores) against the Keras model.

    Compared before non-maximum suppression: a model trained for a few steps scores its boxes nearly alike, so
    after NMS the two could keep different near-ties even when every number is close.
    """
    import keras
    from ai_edge_litert.interpreter import Interpreter

    dataset = load_detection_dataset(detection_job / "dataset")
    records = dataset.split("test") + dataset.split("val")
    images = DetectionImages(dataset.data_dir, records, dataset.classes).model_inputs(192)
    float_boxes, float_logits = keras.models.load_model(detection_job / "model" / "model.keras").predict(
        images.astype(np.float32), verbose=0)
    float_scores = 1 / (1 + np.exp(-float_logits[..., 1:]))
    interpreter = Interpreter(model_path=str(detection_job / "export" / "model_int8.tflite"),
                              experimental_preserve_all_tensors=True)
    interpreter.allocate_tensors()
    (post,) = [op for op in interpreter._get_ops_details() if op["op_name"] == "TFLite_Detection_PostProcess"]
    boxes_index, scores_index = post["inputs"][:2]
    for image, f_boxes, f_scores in zip(images, float_boxes, float_scores, strict=True):
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], image[None])
        interpreter.invoke()
        q_boxes = interpreter.get_tensor(boxes_index)[0]
        q_scores = interpreter.get_tensor(scores_index)[0][:, 1:]
        box_error = np.sqrt(np.mean((q_boxes - f_boxes) ** 2)) / f_boxes.std()
        assert box_error < 0.3, f"int8 box encodings off by {box_error:.0%} of their spread"
        assert np.corrcoef(q_boxes.ravel(), f_boxes.ravel())[0, 1] > 0.95
        assert np.abs(q_scores - f_scores).max() < 0.05


def test_robot_image_detects_like_the_model_in_process(detection_job):
    client = docker_client()
    assert client is not None, "the Docker engine must run (run-tests starts it)"
    image = read_report(detection_job)["packaging"]["image"]
    port = free_port()
    container = client.containers.run(image, detach=True, network_mode="host",
                                      environment={"HOST": "127.0.0.1", "PORT": str(port)})
    try:
        wait_for_health(port, describe=lambda: container.logs().decode()[-2000:])
        dataset = load_detection_dataset(detection_job / "dataset")
        records = dataset.split("test")[:4]
        interpreter = make_interpreter(detection_job / "export" / "model_int8.tflite")
        expected = detect_batch(interpreter, DetectionImages(dataset.data_dir, records, dataset.classes)
                                .model_inputs(192))
        for record, (boxes, _classes, scores) in zip(records, expected, strict=True):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("POST", "/v1/detect?score_threshold=0.0&max_results=100",
                         body=(dataset.data_dir / record.file).read_bytes(), headers={"Content-Type": "image/jpeg"})
            response = conn.getresponse()
            answer = json.loads(response.read())
            assert response.status == 200
            got = answer["predictions"]
            assert len(got) == len(scores)
            want = sorted(zip(scores, boxes, strict=True), key=lambda pair: -pair[0])
            for item, (score, box) in zip(got, want, strict=True):
                assert item["label"] == "raccoon" and item["score"] == pytest.approx(float(score), abs=1e-5)
                ymin, xmin, ymax, xmax = box
                pixel = (xmin * record.width, ymin * record.height, xmax * record.width, ymax * record.height)
                assert [item["box"][k] for k in ("xmin", "ymin", "xmax", "ymax")] == pytest.approx(pixel, abs=1.0)
    finally:
        container.remove(force=True)
