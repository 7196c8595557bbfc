"""Benchmark: the serving image's size, rebuild time, and per-request overhead over a bare interpreter invoke.

Run (the Docker engine, registry and base image up: scripts/services.sh):
    .venv/bin/python -m bench.serving_image
Writes bench/results/serving_image.json and prints a Markdown summary for docs/benchmarks.md.

- image size above the base image;
- rebuild time when only the model changes (the model layer is last, so only it is rebuilt);
- per-request overhead: p50/p95 of an HTTP round trip to the container (keep-alive, one client) minus p50 of
  a bare `invoke()` of the same model in-process on the same image, and requests/s from 4 client threads.
"""

from __future__ import annotations

import http.client
import json
import os
import platform
import shutil
import socket
import statistics
import tempfile
import threading
import time
from datetime import datetime
from io import BytesIO
from pathlib import Path

import numpy as np

PROJECT_DIR = Path(__file__).resolve().parent.parent
SHARED = PROJECT_DIR.parent / "shared"
RESULTS = PROJECT_DIR / "bench" / "results" / "serving_image.json"
MODEL = SHARED / "coral_models" / "mobilenet_v2_1.0_224_quant.tflite"
PHOTO = SHARED / "images" / "grace_hopper.bmp"
BASE = os.environ.get("RETRAIN_TEST_BASE_IMAGE", "local/bookworm-python:base")
CA = "/etc/ssl/certs/ca-certificates.crt"


def _export_dir(root: Path, model_bytes: bytes) -> Path:
    export = root / "export"
    export.mkdir(parents=True, exist_ok=True)
    (export / "model_int8.tflite").write_bytes(model_bytes)
    labels = (SHARED / "coral_models" / "imagenet_labels.txt").read_text().splitlines()
    (export / "manifest.json").write_text(json.dumps({"task": "classification", "labels": labels}))
    return export


def _build(client, export: Path, context: Path, tag: str, nocache: bool = False) -> float:
    from retrain_lib.packaging import ImageRef, assemble_context, build_image

    assemble_context(export, context, CA if Path(CA).exists() else "")
    start = time.perf_counter()
    build_image(client, context, ImageRef("bench/serving", tag), BASE, False, {}, log=lambda line: None,
                nocache=nocache)
    return time.perf_counter() - start


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bare_invoke_ms(repeats: int = 300) -> list[float]:
    """Preprocessing excluded: set_tensor + invoke + get_tensor on the same model, 2 threads."""
    from retrain_lib.images import load_for_model
    from retrain_lib.tflite_model import make_interpreter

    interpreter = make_interpreter(MODEL, num_threads=2)
    image = load_for_model(PHOTO, 224)[None]
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        interpreter.set_tensor(inp["index"], image)
        interpreter.invoke()
        interpreter.get_tensor(out["index"])
        times.append((time.perf_counter() - start) * 1000)
    return times[20:]


def request_ms(port: int, body: bytes, repeats: int = 300) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        conn.request("POST", "/v1/classify", body=body, headers={"Content-Type": "application/octet-stream"})
        response = conn.getresponse()
        response.read()
        assert response.status == 200
        times.append((time.perf_counter() - start) * 1000)
    conn.close()
    return times[20:]


def throughput(port: int, body: bytes, threads: int = 4, per_thread: int = 150) -> float:
    def client():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for _ in range(per_thread):
            conn.request("POST", "/v1/classify", body=body, headers={"Content-Type": "application/octet-stream"})
            conn.getresponse().read()
        conn.close()

    workers = [threading.Thread(target=client) for _ in range(threads)]
    start = time.perf_counter()
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    return threads * per_thread / (time.perf_counter() - start)


def main() -> None:
    from PIL import Image

    from retrain_lib.packaging import docker_client

    client = docker_client()
    assert client is not None, "start the Docker engine first: scripts/services.sh docker base-image"
    work = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    model_bytes = MODEL.read_bytes()
    cold = _build(client, _export_dir(work / "a", model_bytes), work / "ctx", "cold", nocache=True)
    warm_same = _build(client, _export_dir(work / "a", model_bytes), work / "ctx", "same")
    changed = bytearray(model_bytes)
    changed[-1] ^= 1  # another model of the same size: only the model layer changes
    rebuild = _build(client, _export_dir(work / "b", bytes(changed)), work / "ctx", "model-changed")
    image = client.images.get("bench/serving:cold")
    base = client.images.get(BASE)
    size_above_base = image.attrs["Size"] - base.attrs["Size"]

    raw = np.asarray(Image.open(PHOTO).convert("RGB").resize((224, 224)), dtype=np.uint8)
    buffer = BytesIO()
    Image.fromarray(raw).save(buffer, format="JPEG", quality=90)  # what a robot's camera sends
    body = buffer.getvalue()
    png = BytesIO()
    Image.fromarray(raw).save(png, format="PNG")
    port = _free_port()
    container = client.containers.run("bench/serving:cold", detach=True, network_mode="host",
                                      environment={"HOST": "127.0.0.1", "PORT": str(port)})
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/health")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.2)
        bare = bare_invoke_ms()
        served = request_ms(port, body)
        served_png = request_ms(port, png.getvalue(), repeats=120)
        rps = throughput(port, body)
    finally:
        container.remove(force=True)
        shutil.rmtree(work, ignore_errors=True)
    p50_bare, p50_served = statistics.median(bare), statistics.median(served)
    result = {
        "date": datetime.now().isoformat(timespec="seconds"), "machine": platform.platform(), "cpus": os.cpu_count(),
        "model": MODEL.name, "base_image": BASE,
        "image_size_above_base_mb": size_above_base / 1e6, "base_size_mb": base.attrs["Size"] / 1e6,
        "build_cold_s": cold, "rebuild_unchanged_s": warm_same, "rebuild_model_changed_s": rebuild,
        "bare_invoke_p50_ms": p50_bare, "request_p50_ms": p50_served,
        "request_p95_ms": float(np.percentile(served, 95)), "overhead_p50_ms": p50_served - p50_bare,
        "overhead_p50_ms_png_body": statistics.median(served_png) - p50_bare,
        "requests_per_s_4_threads": rps,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    print(f"- same with a PNG body: overhead p50 {result['overhead_p50_ms_png_body']:.2f} ms (PNG decoding)")
    print(f"- Image size above the base ({result['base_size_mb']:.0f} MB): "
          f"**{result['image_size_above_base_mb']:.0f} MB**\n"
          f"- Build: cold {cold:.1f} s; rebuild with only the model changed **{rebuild:.1f} s**; "
          f"unchanged {warm_same:.1f} s\n"
          f"- {MODEL.name}, JPEG 224x224 body: bare invoke p50 {p50_bare:.2f} ms; HTTP request p50 {p50_served:.2f} ms "
          f"(p95 {result['request_p95_ms']:.2f} ms): **overhead p50 {result['overhead_p50_ms']:.2f} ms** (decode, "
          f"resize, JSON, HTTP); {rps:.0f} requests/s from 4 threads")


if __name__ == "__main__":
    main()
