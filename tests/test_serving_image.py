"""The serving image against the real Docker engine and registry: build, push, remove, pull, run, answer."""

from __future__ import annotations

import http.client
import json
import threading
from pathlib import Path

import pytest

from retrain_lib.classifier import load_images
from retrain_lib.dataset import load_dataset
from retrain_lib.errors import InputError
from retrain_lib.model_manifest import sha256_file
from retrain_lib.packaging import assemble_context, docker_client, image_ref, robot_commands
from retrain_lib.report import read_report
from retrain_lib.tflite_model import classify_batch, make_interpreter
from tests.conftest import free_port, wait_for_health

pytestmark = pytest.mark.slow


def _post(port: int, path: str, body: bytes, content_type: str = "image/png"):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("POST", path, body=body, headers={"Content-Type": content_type})
    response = conn.getresponse()
    return response.status, json.loads(response.read())


def _get(port: int, path: str):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path)
    response = conn.getresponse()
    return response.status, response.read()


@pytest.fixture(scope="module")
def engine():
    client = docker_client()
    assert client is not None, "the Docker engine must run (run-tests starts it with scripts/services.sh)"
    return client


@pytest.fixture(scope="module")
def served(engine, flowers_job):
    """The job's image removed locally, pulled back from the registry and run with host networking."""
    packaging = read_report(flowers_job)["packaging"]
    image = packaging["image"]
    repository = image.rsplit(":", 1)[0]
    for tag in (image, f"{repository}:latest"):
        engine.images.remove(tag, force=True)
    local_tags = {t for img in engine.images.list(name=repository) for t in img.tags}
    assert image not in local_tags and f"{repository}:latest" not in local_tags
    engine.images.pull(repository, tag=image.rsplit(":", 1)[1])
    port = free_port()
    container = engine.containers.run(image, detach=True, network_mode="host",
                                      environment={"HOST": "127.0.0.1", "PORT": str(port)})
    try:
        wait_for_health(port, describe=lambda: container.logs().decode()[-2000:])
        yield port, container, packaging
    finally:
        container.remove(force=True)


def test_report_has_the_robot_commands(flowers_job):
    packaging = read_report(flowers_job)["packaging"]
    assert packaging["status"] == "built" and packaging["digest"].startswith("sha256:")
    assert packaging["commands"]["pull"] == f"docker pull {packaging['image']}"
    assert "--device /dev/bus/usb" in packaging["commands"]["run"]


def test_pulled_image_answers_like_the_int8_model_in_process(served, flowers_job):
    port, _container, _ = served
    dataset = load_dataset(flowers_job / "dataset")
    interpreter = make_interpreter(flowers_job / "export" / "model_int8.tflite")
    images, _ = load_images(dataset, "test", 96)
    expected = classify_batch(interpreter, images).argmax(axis=1)
    for record, want in zip(dataset.split("test"), expected, strict=True):
        status, answer = _post(port, "/v1/classify", (dataset.data_dir / record.file).read_bytes(), "image/jpeg")
        assert status == 200
        assert answer["predictions"][0]["id"] == int(want)
        assert answer["predictions"][0]["label"] == dataset.classes[want]


def test_top_k_beyond_the_classes_gives_all_classes(served):
    port, _container, _ = served
    status, answer = _post(port, "/v1/classify?top_k=50", _any_flower(), "image/jpeg")
    assert status == 200 and len(answer["predictions"]) == 3
    assert _post(port, "/v1/classify?top_k=0", _any_flower(), "image/jpeg")[0] == 400


def _any_flower() -> bytes:
    from tests.conftest import FLOWERS_DIR

    return next((FLOWERS_DIR / "daisy").glob("*.jpg")).read_bytes()


def test_model_route_reports_cpu_and_the_model_hash(served, flowers_job):
    port, _container, _ = served
    status, body = _get(port, "/v1/model")
    info = json.loads(body)
    assert status == 200 and info["accelerator"] == "cpu"
    assert info["sha256"] == sha256_file(flowers_job / "export" / "model_int8.tflite")
    assert info["labels"] == list(load_dataset(flowers_job / "dataset").classes)


def test_image_labels_and_user(engine, served, flowers_job):
    _port, container, packaging = served
    image = engine.images.get(packaging["image"])
    labels = image.labels
    assert labels["coral-retrain.model.sha256"] == sha256_file(flowers_job / "export" / "model_int8.tflite")
    assert labels["coral-retrain.task"] == "classification"
    assert json.loads(labels["coral-retrain.labels"]) == ["daisy", "dandelion", "tulip"]
    assert image.attrs["Config"]["User"] == "app"
    assert image.attrs["Config"]["Healthcheck"]["Test"][0] == "CMD"


def test_bad_requests_then_bounded_load_without_errors(served, flowers_job):
    port, _container, _ = served
    assert _post(port, "/v1/classify", b"not an image", "image/jpeg")[0] == 400
    assert _post(port, "/v1/classify", b"", "image/jpeg")[0] == 400
    assert _post(port, "/v1/classify", b"{}", "application/json")[0] == 415
    assert _post(port, "/v1/detect", b"x", "image/jpeg")[0] == 400
    photo = next((flowers_job / "data").rglob("*.jpg")).read_bytes()
    errors, done = [], []

    def client(n: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for _ in range(n):
            conn.request("POST", "/v1/classify", body=photo, headers={"Content-Type": "image/jpeg"})
            response = conn.getresponse()
            response.read()
            (done if response.status == 200 else errors).append(response.status)
        conn.close()

    threads = [threading.Thread(target=client, args=(500,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert errors == [] and len(done) == 2000


def test_image_ref_and_context(tmp_path):
    assert image_ref("", "job 1/é", "classification").name == "coral-retrain/classification:job-1--"
    assert image_ref("127.0.0.1:5000/robots/x", "j", "detection").latest == "127.0.0.1:5000/robots/x:latest"
    with pytest.raises(InputError, match="not a repository reference"):
        image_ref("127.0.0.1:5000/Robots/x:tag", "j", "classification")
    export = tmp_path / "export"
    export.mkdir()
    (export / "model_int8.tflite").write_bytes(b"m")
    (export / "model_int8.tflite").chmod(0o600)
    context = assemble_context(export, tmp_path / "ctx")
    assert (context / "Dockerfile").exists() and (context / "app" / "server.py").exists()
    assert (context / "model" / "model_int8.tflite").read_bytes() == b"m"
    assert all(p.stat().st_mode & 0o004 for p in context.rglob("*")), "the non-root user must read every file"
    assert not (context / "build-ca.pem").exists()
    with pytest.raises(InputError, match="build_ca"):
        assemble_context(export, tmp_path / "ctx2", build_ca=str(tmp_path / "missing.pem"))
    commands = robot_commands(image_ref("", "j", "classification"), "classification", pushed=False)
    assert commands["pull"].endswith("| docker load")


def test_job_without_registry_saves_a_loadable_tarball(engine, flowers_job, tmp_path):
    from retrain_lib.stages.package import run_package
    from tests.conftest import HOST_CA_BUNDLE, TEST_BASE_IMAGE

    job = tmp_path / "copy-job"
    (job / "export").mkdir(parents=True)
    for f in (flowers_job / "export").iterdir():
        (job / "export" / f.name).write_bytes(f.read_bytes())
    result = run_package(job, registry="", base_image=TEST_BASE_IMAGE, install_edgetpu=False,
                         build_ca=HOST_CA_BUNDLE if Path(HOST_CA_BUNDLE).exists() else "", log=lambda line: None)
    assert result.status == "built" and result.tarball == job / "image.tar.gz"
    engine.images.remove(result.image, force=True)
    loaded = engine.images.load(result.tarball.read_bytes())
    assert result.image in loaded[0].tags
    assert read_report(job)["artifacts"]["image_tarball"] == "image.tar.gz"
