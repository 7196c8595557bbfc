"""The serving app in-process on a real int8 model (Coral's MobileNet v1 from ../shared): answers and bad requests."""

from __future__ import annotations

import http.client
import json
import shutil
import sys
import threading
import uuid
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from retrain_lib.images import load_for_model
from retrain_lib.tflite_model import classify_batch, make_interpreter
from tests.conftest import PROJECT_DIR, SHARED_DIR

sys.path.insert(0, str(PROJECT_DIR / "edge_image"))
from app.preprocess import decode_rgb, to_model_input  # noqa: E402
from app.server import build_server  # noqa: E402

CORAL_MODEL = SHARED_DIR / "coral_models" / "mobilenet_v1_0.25_128_quant.tflite"
PHOTOS = [SHARED_DIR / "images" / name for name in ("cat.bmp", "bird.bmp", "parrot.jpg", "grace_hopper.bmp")]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("model")
    shutil.copy(CORAL_MODEL, folder / "model_int8.tflite")
    labels = (SHARED_DIR / "coral_models" / "imagenet_labels.txt").read_text().splitlines()
    (folder / "manifest.json").write_text(json.dumps({"task": "classification", "labels": labels,
                                                      "metrics": {"int8": {"accuracy": 0.5}}}))
    return folder


@pytest.fixture(scope="module")
def server(model_dir):
    srv = build_server(model_dir, "127.0.0.1", 0, max_body_bytes=2 * 1024 * 1024)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()


def _request(server, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    conn = http.client.HTTPConnection(*server.server_address[:2], timeout=30)
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, data, response.headers


def test_preprocessing_matches_the_training_contract():
    for photo in PHOTOS:
        served = to_model_input(decode_rgb(photo.read_bytes()), 128, 128)
        trained = load_for_model(photo, 128)
        np.testing.assert_array_equal(served, trained)


def test_classify_equals_the_interpreter_in_process(server):
    interpreter = make_interpreter(CORAL_MODEL)
    for photo in PHOTOS:
        status, data, _ = _request(server, "POST", "/v1/classify?top_k=3", photo.read_bytes(),
                                   {"Content-Type": "application/octet-stream"})
        assert status == 200
        predictions = json.loads(data)["predictions"]
        assert len(predictions) == 3 and predictions[0]["score"] >= predictions[1]["score"]
        expected = classify_batch(interpreter, load_for_model(photo, 128)[None])[0]
        assert predictions[0]["id"] == int(expected.argmax())
        assert predictions[0]["score"] == pytest.approx(float(expected.max()), abs=1e-6)


def test_cat_is_a_cat(server):
    status, data, _ = _request(server, "POST", "/v1/classify", PHOTOS[0].read_bytes(), {"Content-Type": "image/bmp"})
    assert status == 200
    assert "cat" in json.loads(data)["predictions"][0]["label"].lower()


def test_multipart_upload(server):
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"parrot.jpg\"\r\n"
            f"Content-Type: image/jpeg\r\n\r\n").encode() + PHOTOS[2].read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    status, data, _ = _request(server, "POST", "/v1/classify", body,
                               {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert status == 200, data
    raw = _request(server, "POST", "/v1/classify", PHOTOS[2].read_bytes(), {"Content-Type": "image/jpeg"})[1]
    assert json.loads(data) == json.loads(raw)


def test_model_health_and_metrics(server):
    status, data, _ = _request(server, "GET", "/v1/model")
    info = json.loads(data)
    assert status == 200 and info["accelerator"] == "cpu" and info["task"] == "classification"
    assert info["input_size"] == {"width": 128, "height": 128} and len(info["sha256"]) == 64
    assert "not compiled" in info["accelerator_note"]
    assert _request(server, "GET", "/health")[0] == 200
    status, data, headers = _request(server, "GET", "/metrics")
    text = data.decode()
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    assert 'retrain_requests_total{route="/v1/classify",code="200"}' in text
    assert "retrain_inference_duration_seconds_bucket" in text


BAD_REQUESTS = [
    ("not an image", "POST", "/v1/classify", b"hello there", {"Content-Type": "image/jpeg"}, 400, "not a decodable"),
    ("empty body", "POST", "/v1/classify", b"", {"Content-Type": "image/jpeg"}, 400, "empty"),
    ("wrong content type", "POST", "/v1/classify", b"{}", {"Content-Type": "application/json"}, 415, "not an image"),
    ("too large", "POST", "/v1/classify", b"x" * (2 * 1024 * 1024 + 1), {"Content-Type": "image/jpeg"}, 413,
     "more than the limit"),
    ("bad top_k", "POST", "/v1/classify?top_k=zero", b"x", {"Content-Type": "image/jpeg"}, 400, "top_k"),
    ("detect on a classifier", "POST", "/v1/detect", b"x", {"Content-Type": "image/jpeg"}, 400, "/v1/classify"),
    ("unknown route", "GET", "/nope", None, {}, 404, "no route"),
    ("wrong method", "GET", "/v1/classify", None, {}, 405, "no route"),
    ("multipart without file", "POST", "/v1/classify",
     b"--b\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n1\r\n--b--\r\n",
     {"Content-Type": "multipart/form-data; boundary=b"}, 400, "no file part"),
]


@pytest.mark.parametrize(("case", "method", "path", "body", "headers", "status", "fragment"), BAD_REQUESTS,
                         ids=[c[0] for c in BAD_REQUESTS])
def test_bad_requests_get_4xx_json_and_the_server_keeps_serving(server, case, method, path, body, headers, status,
                                                                 fragment):
    got, data, _ = _request(server, method, path, body, headers)
    assert got == status, data
    assert fragment in json.loads(data)["error"]
    assert _request(server, "POST", "/v1/classify", PHOTOS[0].read_bytes(), {"Content-Type": "image/bmp"})[0] == 200


def test_concurrent_requests_agree(server):
    expected = json.loads(_request(server, "POST", "/v1/classify", PHOTOS[1].read_bytes(),
                                   {"Content-Type": "image/bmp"})[1])
    answers, errors = [], []

    def worker():
        for _ in range(10):
            status, data, _ = _request(server, "POST", "/v1/classify", PHOTOS[1].read_bytes(),
                                       {"Content-Type": "image/bmp"})
            (answers if status == 200 else errors).append(json.loads(data))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(answers) == 40
    assert all(a == expected for a in answers)


def test_rgba_and_greyscale_photos_are_served(server, tmp_path):
    for mode in ("RGBA", "L"):
        path = tmp_path / f"x_{mode}.png"
        Image.open(PHOTOS[0]).convert(mode).save(path)
        assert _request(server, "POST", "/v1/classify", path.read_bytes(), {"Content-Type": "image/png"})[0] == 200


def test_compiled_model_without_edgetpu_runtime_falls_back_to_cpu_and_says_why(tmp_path):
    """No Edge TPU device or libedgetpu can exist here: the app must fall back and report it honestly."""
    from app.model import ModelRunner

    folder = tmp_path / "model"
    folder.mkdir()
    shutil.copy(CORAL_MODEL, folder / "model_int8.tflite")
    shutil.copy(CORAL_MODEL.with_name("mobilenet_v1_0.25_128_quant_edgetpu.tflite"), folder / "model_edgetpu.tflite")
    (folder / "manifest.json").write_text(json.dumps({"task": "classification", "labels": ["x"] * 1001}))
    runner = ModelRunner(folder)
    assert runner.info.accelerator == "cpu" and runner.info.model_file == "model_int8.tflite"
    note = runner.info.accelerator_note
    assert "Edge TPU unavailable" in note and "--device /dev/bus/usb" in note
