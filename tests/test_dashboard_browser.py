"""The dashboard in a real browser: Debian's chromium driven by Playwright against `retrain dashboard`."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

from retrain_lib.synthetic import make_shapes_classification
from tests.conftest import HOST_CA_BUNDLE, PROJECT_DIR, TEST_BASE_IMAGE, TEST_REGISTRY, free_port

pytestmark = pytest.mark.slow
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync", "--disable-quic"]
ARTIFACTS = PROJECT_DIR / "test-artifacts" / "dashboard"
TOKEN = "test-token-123"


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory):
    home = tmp_path_factory.mktemp("dashboard-home")
    port = free_port()
    env = {**os.environ, "RETRAIN_HOME": str(home)}
    command = [sys.executable, "-m", "retrain_lib.cli", "dashboard", "--port", str(port), "--token", TOKEN,
               "--registry", f"{TEST_REGISTRY}/tests/dashboard", "--base-image", TEST_BASE_IMAGE,
               "--no-edgetpu-runtime"] + (["--build-ca", HOST_CA_BUNDLE] if Path(HOST_CA_BUNDLE).exists() else [])
    log = open(home / "dashboard.log", "wb")  # noqa: SIM115 - closed in teardown
    process = subprocess.Popen(command, cwd=PROJECT_DIR, env=env, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}?token={TOKEN}", timeout=2)
            break
        except OSError:
            time.sleep(0.3)
    else:
        pytest.fail((home / "dashboard.log").read_text())
    yield url, home
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=30)
    worker_pid = (home / "worker.pid").read_text().strip() if (home / "worker.pid").exists() else ""
    if worker_pid:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(int(worker_pid), signal.SIGTERM)
    log.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "Debian's chromium must be installed (run-tests installs it)"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def _archive(tmp_path: Path) -> Path:
    data = make_shapes_classification(tmp_path / "shapes", images_per_class=12, size=64)
    path = tmp_path / "shapes.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for image in data.rglob("*.jpg"):
            zf.write(image, image.relative_to(tmp_path).as_posix())
    return path


def _upload(page, path: Path) -> None:
    with page.expect_file_chooser() as chooser:
        page.click(".widget-upload")
    chooser.value.set_files(str(path))


def test_without_the_token_the_app_is_refused(dashboard, browser):
    url, _home = dashboard
    page = browser.new_page()
    page.goto(url)
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(ARTIFACTS / "0_without_token.png"))
    assert "Coral model trainer" not in page.content()
    assert "login" in page.url or "token" in page.content().lower() or "password" in page.content().lower()
    page.close()


def test_broken_archive_shows_a_plain_error(dashboard, browser, tmp_path):
    url, _home = dashboard
    broken = tmp_path / "photos.zip"
    with zipfile.ZipFile(broken, "w") as zf:
        zf.writestr("cats/a.jpg", b"this is not a jpeg")
        zf.writestr("cats/../../evil.txt", b"x")
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.goto(f"{url}?token={TOKEN}")
    page.wait_for_selector("text=Coral model trainer", timeout=60000)
    _upload(page, broken)
    page.wait_for_selector(".problems", timeout=60000)
    page.screenshot(path=str(ARTIFACTS / "1_broken_archive.png"), full_page=True)
    text = page.inner_text(".problems")
    assert "photos.zip" in text and "How to fix" in text and "'..'" in text
    assert page.is_disabled("button:has-text('Launch training')")
    assert "Traceback" not in page.content()
    page.close()


def test_upload_preview_launch_and_collect(dashboard, browser, tmp_path):
    url, home = dashboard
    page = browser.new_page(viewport={"width": 1200, "height": 1000})
    page.goto(f"{url}?token={TOKEN}")
    page.wait_for_selector("text=Coral model trainer", timeout=60000)
    page.screenshot(path=str(ARTIFACTS / "2_opened.png"))
    _upload(page, _archive(tmp_path))
    page.wait_for_selector("text=Everything can be used", timeout=60000)
    assert "classification" in page.inner_text(".ok") and "folder per class" in page.inner_text(".ok")
    assert page.locator(".thumb img").count() >= 6
    page.screenshot(path=str(ARTIFACTS / "3_preview.png"), full_page=True)

    page.click("button:has-text('Quick')")
    page.click("text=Advanced settings")
    page.get_by_label("Head epochs").fill("15")
    page.get_by_label("Fine-tune epochs").fill("2")
    page.get_by_label("Fine-tune epochs").press("Enter")
    page.click("button:has-text('Launch training')")
    page.wait_for_selector("h3:has-text('Job ')", timeout=30000)
    page.wait_for_selector("h3:has-text('Running')", timeout=120000)
    page.screenshot(path=str(ARTIFACTS / "4_running.png"), full_page=True)

    # responsive while the worker trains: a widget round trip through the kernel
    page.click("text=New model")
    start = time.monotonic()
    page.click("button:has-text('Most accurate')")
    page.wait_for_selector("text=224 x 224", timeout=10000)
    assert time.monotonic() - start < 2.0
    page.click("text=Models")

    page.wait_for_selector("text=Accuracy on photos the model never saw", timeout=600000)
    page.wait_for_selector("text=docker pull", timeout=600000)
    page.screenshot(path=str(ARTIFACTS / "5_ready.png"), full_page=True)
    content = page.inner_text(".widget-tab-contents")
    assert f"docker pull {TEST_REGISTRY}/tests/dashboard:" in content
    assert "--device /dev/bus/usb" in content
    link = page.locator("a:has-text('model (.tflite)')")
    assert link.count() == 1
    with page.expect_download() as download:
        link.click()
    saved = tmp_path / "model.tflite"
    download.value.save_as(saved)
    assert saved.read_bytes()[4:8] == b"TFL3"
    page.close()


def test_draw_a_box_and_it_is_saved_as_pascal_voc(dashboard, browser, tmp_path):
    from PIL import Image

    from retrain_lib.detection_formats import from_pascal_voc

    url, home = dashboard
    archive = tmp_path / "objects.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for i in range(3):
            path = tmp_path / f"photo{i}.jpg"
            Image.new("RGB", (320, 240), (40 * i, 120, 200)).save(path)
            zf.write(path, f"objects/photo{i}.jpg")
    page = browser.new_page(viewport={"width": 1200, "height": 1200})
    page.goto(f"{url}?token={TOKEN}")
    page.wait_for_selector("text=Coral model trainer", timeout=60000)
    _upload(page, archive)
    page.wait_for_selector(".problems", timeout=60000)
    page.click("button:has-text('Find objects with boxes')")
    page.wait_for_selector("text=Draw the boxes", timeout=60000)
    page.get_by_label("Classes").fill("cup")
    page.get_by_label("Classes").press("Enter")
    # the class list reaches the drawing widget through the kernel; draw only once it shows there
    page.locator(".annotator .class-label", has_text="cup").wait_for(timeout=30000)
    image = page.locator(".annotator img").first
    image.wait_for(timeout=30000)
    box = image.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.2, box["y"] + box["height"] * 0.25)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.75, steps=8)
    page.mouse.up()
    page.screenshot(path=str(ARTIFACTS / "6_annotating.png"), full_page=True)
    page.locator(".annotator button:has-text('Submit')").click()
    uploads = home / "uploads"
    deadline = time.monotonic() + 30
    saved = []
    while time.monotonic() < deadline and not saved:
        saved = list(uploads.rglob("photo0.xml"))
        time.sleep(0.3)
    assert saved, "the drawn box must be saved as Pascal VOC beside the photo"
    annotated = [a for a in from_pascal_voc(saved[0].parent.parent).images if a.boxes]
    assert len(annotated) == 1 and len(annotated[0].boxes) == 1
    drawn = annotated[0].boxes[0]
    assert drawn.label == "cup"
    assert 0.3 * 320 < drawn.xmax - drawn.xmin < 0.5 * 320 and 0.4 * 240 < drawn.ymax - drawn.ymin < 0.6 * 240
    page.close()
