"""The HTTP API: POST /v1/classify, POST /v1/detect, GET /v1/model, GET /health, GET /metrics.

Settings come from environment variables only: HOST (0.0.0.0), PORT (8080), MODEL_DIR (/app/model),
MAX_BODY_BYTES (10485760), NUM_THREADS (interpreter threads, 2), LOG_LEVEL (INFO).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from app.metrics import Metrics
from app.model import ModelRunner
from app.preprocess import BadImage, decode_rgb

log = logging.getLogger("edge_app")
IMAGE_TYPES = ("image/", "application/octet-stream")
DRAIN_FACTOR = 8  # bodies up to 8x the limit are read and dropped before the 413; larger ones close the socket


class RequestError(Exception):
    """A bad request: answered with `status` and a JSON error, the server keeps serving."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def make_handler(runner: ModelRunner, metrics: Metrics, max_body_bytes: int):
    """The request handler class bound to one model runner."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "coral-retrain-edge/1"

        def setup(self):
            super().setup()
            # headers and body go out in separate writes: without this, Nagle's algorithm and the client's
            # delayed ACK add about 40 ms to every keep-alive request
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def do_GET(self):  # noqa: N802 - http.server's naming
            routes = {"/health": self._health, "/v1/model": self._model, "/metrics": self._metrics}
            self._dispatch(routes)

        def do_POST(self):  # noqa: N802
            self._dispatch({"/v1/classify": self._classify, "/v1/detect": self._detect})

        def _dispatch(self, routes):
            start = time.perf_counter()
            url = urlsplit(self.path)
            handler = routes.get(url.path)
            route = url.path if handler else "other"
            try:
                if handler is None:
                    raise RequestError(404 if url.path not in KNOWN_PATHS else 405,
                                       f"no route {self.command} {url.path}")
                status, body, content_type = handler(parse_qs(url.query))
            except RequestError as err:
                status, body, content_type = err.status, _json({"error": err.message}), "application/json"
                self.close_connection = self.close_connection or err.status in (411, 413)
            except Exception as err:  # the server must keep serving whatever one request does
                log.exception("request failed")
                status, body, content_type = 500, _json({"error": f"internal error: {err}"}), "application/json"
            self._send(status, body, content_type)
            metrics.record_request(route, status, time.perf_counter() - start)

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)

        def _health(self, _query):
            return 200, _json({"status": "ok", "accelerator": runner.info.accelerator}), "application/json"

        def _model(self, _query):
            info = runner.info
            return 200, _json({"task": info.task, "labels": info.labels,
                               "input_size": {"width": info.input_width, "height": info.input_height},
                               "accelerator": info.accelerator, "accelerator_note": info.accelerator_note,
                               "model_file": info.model_file, "sha256": info.sha256,
                               "metrics": runner.manifest.get("metrics", {})}), "application/json"

        def _metrics(self, _query):
            return 200, metrics.render().encode(), "text/plain; version=0.0.4"

        def _classify(self, query):
            if runner.task != "classification":
                raise RequestError(400, f"this model is a {runner.task} model; use /v1/detect")
            top_k = min(_int_option(query, "top_k", 5, 1, 100_000), len(runner.labels))  # more than there are: all
            image = self._read_image()
            start = time.perf_counter()
            results = runner.classify(image, top_k)
            metrics.record_inference(runner.task, time.perf_counter() - start)
            return 200, _json({"predictions": [r._asdict() for r in results]}), "application/json"

        def _detect(self, query):
            if runner.task != "detection":
                raise RequestError(400, f"this model is a {runner.task} model; use /v1/classify")
            threshold = _float_option(query, "score_threshold", 0.5, 0.0, 1.0)
            max_results = _int_option(query, "max_results", 20, 1, 1000)
            image = self._read_image()
            start = time.perf_counter()
            results = runner.detect(image, threshold, max_results)
            metrics.record_inference(runner.task, time.perf_counter() - start)
            return 200, _json({"predictions": [{**r._asdict(), "box": r.box._asdict()} for r in results]}), \
                "application/json"

        def _read_image(self):
            length_header = self.headers.get("Content-Length")
            if length_header is None:
                raise RequestError(411, "send the image with a Content-Length header")
            try:
                length = int(length_header)
            except ValueError as err:
                raise RequestError(400, f"Content-Length {length_header!r} is not a number") from err
            if length > max_body_bytes:
                if length <= DRAIN_FACTOR * max_body_bytes:
                    self._discard(length)  # so the client reads the 413 instead of a broken pipe
                raise RequestError(413, f"the body has {length} bytes, more than the limit of {max_body_bytes}")
            body = self.rfile.read(length) if length > 0 else b""
            if not body:
                raise RequestError(400, "the body is empty; send an image (raw bytes or multipart/form-data)")
            content_type = self.headers.get("Content-Type", "application/octet-stream")
            if content_type.startswith("multipart/form-data"):
                body = _multipart_file(content_type, body)
            elif not content_type.startswith(IMAGE_TYPES):
                raise RequestError(415, f"Content-Type {content_type!r} is not an image; send image/jpeg, "
                                        "image/png, application/octet-stream or multipart/form-data")
            try:
                return decode_rgb(body)
            except BadImage as err:
                raise RequestError(400, str(err)) from err

        def _discard(self, length: int) -> None:
            while length > 0:
                chunk = self.rfile.read(min(length, 1 << 20))
                if not chunk:
                    break
                length -= len(chunk)

        def log_message(self, fmt, *args):
            log.debug("%s " + fmt, self.address_string(), *args)

    return Handler


KNOWN_PATHS = ("/health", "/v1/model", "/metrics", "/v1/classify", "/v1/detect")


def _multipart_file(content_type: str, body: bytes) -> bytes:
    message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    if not message.is_multipart():
        raise RequestError(400, "the multipart body could not be parsed (is the boundary right?)")
    for part in message.iter_parts():
        if part.get_filename() or part.get_param("name", header="content-disposition") in ("image", "file"):
            return part.get_payload(decode=True) or b""
    raise RequestError(400, "the multipart body has no file part; send the image as a field named 'image'")


def _int_option(query, name: str, default: int, low: int, high: int) -> int:
    return _number_option(query, name, default, low, high, int, "a whole number")


def _float_option(query, name: str, default: float, low: float, high: float) -> float:
    return _number_option(query, name, default, low, high, float, "a number")


def _number_option(query, name: str, default, low, high, kind, what: str):
    raw = query.get(name, [str(default)])[0]
    try:
        value = kind(raw)
    except ValueError as err:
        raise RequestError(400, f"{name}={raw!r} is not {what}") from err
    if not low <= value <= high:
        raise RequestError(400, f"{name}={value} is outside {low}..{high}")
    return value


def _json(payload) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode()


def build_server(model_dir: Path, host: str, port: int, max_body_bytes: int = 10 * 1024 * 1024,
                 num_threads: int = 2) -> ThreadingHTTPServer:
    """Loads the model and returns a server ready for `serve_forever()`."""
    runner = ModelRunner(model_dir, num_threads)
    server = ThreadingHTTPServer((host, port), make_handler(runner, Metrics(), max_body_bytes))
    server.daemon_threads = True
    return server


def main() -> None:
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"), format="%(asctime)s %(levelname)s %(message)s")
    server = build_server(Path(os.environ.get("MODEL_DIR", "/app/model")), os.environ.get("HOST", "0.0.0.0"),
                          int(os.environ.get("PORT", "8080")), int(os.environ.get("MAX_BODY_BYTES", 10 * 1024**2)),
                          int(os.environ.get("NUM_THREADS", "2")))
    host, port = server.server_address[:2]
    log.info("serving on http://%s:%s", host, port)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    main()
