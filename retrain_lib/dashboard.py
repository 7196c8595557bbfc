"""The voila dashboard: upload, check, launch, follow and collect a job, in plain language.

`build_app()` is the one call the dashboard notebook makes. Jobs go to the scheduler's store and run in
worker processes, never in the dashboard's kernel.
"""

from __future__ import annotations

import base64
import html
import io
import os
import shutil
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ipywidgets as w

from retrain_lib.archive import ExtractionLimits
from retrain_lib.detection_formats import AnnotatedImage, Box, detect_detection_format, write_pascal_voc
from retrain_lib.errors import InputError
from retrain_lib.images import load_rgb
from retrain_lib.report import read_report
from retrain_lib.stages.upload import import_upload, run_upload

REFRESH_S = 2.0
MAX_UPLOAD_BYTES = 2 * 1024**3
PRESETS = {
    "Quick": {"input_size": 128, "head_epochs": 15, "fine_tune_epochs": 5, "augment_views": 1},
    "Balanced": {"input_size": 160, "head_epochs": 30, "fine_tune_epochs": 20, "augment_views": 4},  # the defaults
    "Most accurate": {"input_size": 224, "head_epochs": 40, "fine_tune_epochs": 40, "augment_views": 6},
}
PRESET_HELP = {
    "Quick": "a first model in a few minutes",
    "Balanced": "the best trade-off for most robots",
    "Most accurate": "slower training and inference, sometimes more accurate",
}
STATE_WORDS = {"queued": "Waiting for a worker", "running": "Running", "succeeded": "Ready",
               "failed": "Failed", "cancelled": "Cancelled"}
STAGE_WORDS = {"01_upload": "checking the images", "02_train": "training", "03_convert": "converting for the Edge TPU",
               "04_package": "building the robot image"}


@dataclass
class DeploymentSettings:
    """Where images go on this server, from the environment `retrain dashboard` sets."""

    registry: str = ""
    base_image: str = ""
    build_ca: str = ""
    install_edgetpu: bool = True

    @classmethod
    def from_env(cls) -> DeploymentSettings:
        return cls(os.environ.get("RETRAIN_REGISTRY", ""), os.environ.get("RETRAIN_BASE_IMAGE", ""),
                   os.environ.get("RETRAIN_BUILD_CA", ""),
                   os.environ.get("RETRAIN_INSTALL_EDGETPU", "1") not in ("0", "false", "no"))

    def job_parameters(self) -> dict[str, Any]:
        params: dict[str, Any] = {"install_edgetpu": self.install_edgetpu}
        if self.registry:
            params["registry"] = self.registry
        if self.base_image:
            params["base_image"] = self.base_image
        if self.build_ca:
            params["build_ca"] = self.build_ca
        return params


def build_app(home: Path | None = None) -> w.Widget:
    """Builds and displays the dashboard; returns its root widget."""
    from IPython.display import display

    from scheduler.jobs import retrain_home

    app = Dashboard(home or retrain_home())
    display(app.root)
    app.start_refresh()
    return app.root


def thumbnails_html(paths: list[Path], size: int = 96) -> str:
    """A grid of small previews as inline images."""
    cells = []
    for path in paths:
        try:
            image, _ = load_rgb(path)
        except Exception:  # a preview must never break the page
            continue
        image.thumbnail((size, size))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=80)
        data = base64.b64encode(buffer.getvalue()).decode()
        cells.append(f'<figure class="thumb"><img src="data:image/jpeg;base64,{data}"/>'
                     f"<figcaption>{html.escape(path.parent.name)}</figcaption></figure>")
    return '<div class="thumbs">' + "".join(cells) + "</div>"


def problems_html(error: InputError) -> str:
    """The problems of a rejected upload as a plain-language list."""
    items = "".join(f"<li><b>{html.escape(p.file)}</b>: {html.escape(p.message)}.<br/>"
                    f"<i>How to fix:</i> {html.escape(p.fix)}</li>" for p in error.problems)
    count = len(error.problems)
    return (f'<div class="problems"><p>We found {count} problem{"s" if count > 1 else ""} in this upload. '
            f"Fix {'them' if count > 1 else 'it'} and upload the archive again.</p><ul>{items}</ul></div>")


def save_annotation(data_root: Path, file: str, boxes: list[Box], width: int, height: int) -> Path:
    """Writes the boxes drawn for `file` as a Pascal VOC file beside the image."""
    xml_path = (data_root / file).with_suffix(".xml")
    return write_pascal_voc(AnnotatedImage(file, boxes), width, height, xml_path)


def boxes_table_html(health: dict[str, Any]) -> str:
    rows = "".join(f"<tr><td>{html.escape(c)}</td><td>{health['boxes']['train'][c]}</td>"
                   f"<td>{health['boxes']['val'][c]}</td><td>{health['boxes']['test'][c]}</td></tr>"
                   for c in health["classes"])
    return ("<table class='counts'><tr><th>class (boxes)</th><th>training</th><th>checking</th><th>final test</th>"
            f"</tr>{rows}</table>")


def counts_table_html(health: dict[str, Any]) -> str:
    rows = "".join(f"<tr><td>{html.escape(c)}</td><td>{health['counts']['train'][c]}</td>"
                   f"<td>{health['counts']['val'][c]}</td><td>{health['counts']['test'][c]}</td></tr>"
                   for c in health["classes"])
    return ("<table class='counts'><tr><th>class</th><th>training</th><th>checking</th><th>final test</th></tr>"
            f"{rows}</table>")


STYLE = """<style>
.retrain h2 {margin: 0.2em 0;} .retrain .hint {color: #555;}
.thumbs {display: flex; flex-wrap: wrap; gap: 6px;} .thumb {margin: 0; text-align: center; font-size: 11px;}
.problems {background: #fff3f3; border-left: 4px solid #c62828; padding: 6px 12px;}
.ok {background: #f1f8f1; border-left: 4px solid #2e7d32; padding: 6px 12px;}
.counts td, .counts th {padding: 2px 10px; text-align: right;} .counts td:first-child {text-align: left;}
.cmd {font-family: monospace; background: #f4f4f4; padding: 4px 8px; display: inline-block;}
</style>"""


class Dashboard:
    """The widgets and their callbacks; all work is done by library functions."""

    def __init__(self, home: Path):
        self.home = Path(home)
        self.settings = DeploymentSettings.from_env()
        self.upload_path: Path | None = None
        self.upload_task = "classification"
        self.selected_job: str | None = None
        self._stop = threading.Event()
        self._build_widgets()

    # ----- layout
    def _build_widgets(self) -> None:
        self.file_upload = w.FileUpload(accept=".zip,.tar,.gz,.tgz", multiple=False,
                                        description="Choose an archive", layout=w.Layout(width="220px"))
        self.upload_status = w.HTML("<p class='hint'>Upload a .zip or .tar.gz with one folder of photos per "
                                    "class (for example <code>cats/</code>, <code>dogs/</code>).</p>")
        self.preview = w.HTML()
        self.preview_image = w.Image(format="png", layout=w.Layout(max_width="900px", display="none"))
        self.task = w.ToggleButtons(options=[("Recognise the whole photo", "classification"),
                                             ("Find objects with boxes", "detection")],
                                    description="The model should",
                                    style={"description_width": "initial", "button_width": "220px"},
                                    layout=w.Layout(display="none"))
        self.annotator_box = w.VBox()
        self.preset = w.ToggleButtons(options=list(PRESETS), value="Balanced", description="Training")
        self.preset_note = w.HTML()
        self.head_epochs = w.BoundedIntText(description="Head epochs", min=1, max=500)
        self.fine_tune_epochs = w.BoundedIntText(description="Fine-tune epochs", min=0, max=500)
        self.head_lr = w.BoundedFloatText(description="Head LR", value=0.001, min=1e-6, max=1.0, step=0.0001)
        self.fine_lr = w.BoundedFloatText(description="Fine-tune LR", value=0.0002, min=1e-7, max=0.1, step=0.0001)
        advanced = w.Accordion(children=[w.VBox([self.head_epochs, self.fine_tune_epochs, self.head_lr,
                                                 self.fine_lr])])
        advanced.set_title(0, "Advanced settings")
        advanced.selected_index = None
        self.launch = w.Button(description="Launch training", button_style="success", disabled=True,
                               icon="rocket", layout=w.Layout(width="200px"))
        self.launch_status = w.HTML()
        upload_panel = w.VBox([w.HTML("<h2>1. Your images</h2>"), self.file_upload, self.task, self.upload_status,
                               self.annotator_box, self.preview, self.preview_image,
                               w.HTML("<h2>2. Train</h2>"), self.preset, self.preset_note,
                               advanced, self.launch, self.launch_status])

        self.jobs_table = w.HTML()
        self.job_picker = w.Dropdown(description="Job", options=[], layout=w.Layout(width="420px"))
        self.job_view = w.HTML()
        self.progress = w.FloatProgress(min=0, max=1, layout=w.Layout(width="420px", visibility="hidden"))
        self.retry = w.Button(description="Retry", icon="redo", layout=w.Layout(display="none"))
        self.cancel = w.Button(description="Cancel", icon="stop", button_style="warning",
                               layout=w.Layout(display="none"))
        self.job_images = w.HBox()
        jobs_panel = w.VBox([w.HTML("<h2>Your models</h2>"), self.jobs_table, self.job_picker, self.progress,
                             w.HBox([self.retry, self.cancel]), self.job_view, self.job_images])

        self.tabs = w.Tab(children=[upload_panel, jobs_panel])
        self.tabs.set_title(0, "New model")
        self.tabs.set_title(1, "Models")
        self.root = w.VBox([w.HTML(STYLE + "<div class='retrain'><h1>Coral model trainer</h1><p class='hint'>"
                                   "Teach your robot to recognise your own things: upload photos, press "
                                   "Launch, and install the result on the robot.</p></div>"), self.tabs],
                           layout=w.Layout(padding="8px"))
        self.root.add_class("retrain")

        self.file_upload.observe(self._on_upload, names="value")
        self.task.observe(lambda change: self.check_data(), names="value")
        self.preset.observe(self._on_preset, names="value")
        self.launch.on_click(self._on_launch)
        self.job_picker.observe(lambda _change: self._show_job(), names="value")
        self.retry.on_click(self._on_retry)
        self.cancel.on_click(self._on_cancel)
        self._on_preset(None)

    # ----- upload and launch
    def _on_upload(self, change) -> None:
        files = change["new"]
        if not files:
            return
        item = files[0]
        name = Path(item["name"]).name
        content = bytes(item["content"])
        self.launch.disabled = True
        if len(content) > MAX_UPLOAD_BYTES:
            self.upload_status.value = (f"<div class='problems'>{html.escape(name)} is {len(content)} bytes, more "
                                        f"than the limit of {MAX_UPLOAD_BYTES}. Resize the photos and try again.</div>")
            return
        folder = self.home / "uploads" / uuid.uuid4().hex[:12]
        folder.mkdir(parents=True)
        path = folder / name
        path.write_bytes(content)
        self.upload_status.value = f"<p>Checking every image in <b>{html.escape(name)}</b>...</p>"
        self.preview.value = ""
        self.open_upload(path)

    def open_upload(self, path: Path) -> bool:
        """Unpacks an uploaded archive safely, guesses the task and checks the data."""
        try:
            self.data_root = import_upload(path.parent, path, ExtractionLimits())
        except InputError as err:
            self.upload_status.value = problems_html(err)
            self.launch.disabled = True
            return False
        guessed = "detection" if detect_detection_format(self.data_root) else "classification"
        self.task.layout.display = ""
        if self.task.value != guessed:
            self.task.value = guessed  # observed: runs check_data
            return self.upload_path is not None
        return self.check_data()

    def check_data(self) -> bool:
        """Checks the unpacked upload for the chosen task; shows the preview and enables Launch when usable."""
        if getattr(self, "data_root", None) is None:
            return False
        self.upload_path = None
        self.launch.disabled = True
        self.annotator_box.children = []
        preview_dir = self.data_root.parent.parent / "preview"
        shutil.rmtree(preview_dir, ignore_errors=True)
        task = self.task.value
        try:
            result = run_upload(preview_dir, self.data_root, task=task)
        except InputError as err:
            self.preview.value = ""
            self.preview_image.layout.display = "none"
            unannotated = [p for p in err.problems if p.message == "has no annotation (no boxes)"]
            if task == "detection" and len(unannotated) == len(err.problems):
                self.upload_status.value = (f"<div class='ok'>{len(unannotated)} photo(s) have no boxes yet: draw "
                                            "them below and the model can be trained.</div>")
            else:
                self.upload_status.value = problems_html(err)
            if task == "detection":
                self._offer_annotation(err)
            return False
        health = result.health
        self.upload_path, self.upload_task = self.data_root, task
        self.upload_status.value = (
            f"<div class='ok'>Task: <b>{task}</b> &middot; format: <b>{html.escape(health['layout'])}</b> "
            f"&middot; {health['images']} images in {len(health['classes'])} classes. Everything can be used.</div>")
        notes = "".join(f"<li>{html.escape(n)}</li>" for n in health["notes"][:10])
        notes_html = f"<p>Notes:</p><ul>{notes}</ul>" if notes else ""
        if task == "detection":
            self.preview.value = boxes_table_html(health) + notes_html
            self.preview_image.value = result.health_plot.read_bytes()
            self.preview_image.layout.display = ""
        else:
            samples = {}
            for record in result.dataset.records:
                samples.setdefault(record.label, []).append(result.dataset.data_dir / record.file)
            shown = [p for paths in samples.values() for p in paths[:4]]
            self.preview.value = counts_table_html(health) + thumbnails_html(shown) + notes_html
            self.preview_image.layout.display = "none"
        self.launch.disabled = False
        return True

    # ----- annotation of images without boxes
    def _offer_annotation(self, error: InputError) -> None:
        missing = [p.file for p in error.problems if p.message == "has no annotation (no boxes)"]
        if not missing:
            return
        from jupyter_bbox_widget import BBoxWidget

        self.to_annotate = missing
        self.class_names = w.Text(description="Classes", placeholder="e.g. cup, key, remote",
                                  value=", ".join(self._known_classes()))
        self.annotator = BBoxWidget(classes=self._known_classes() or ["object"], hide_buttons=False)
        self.annotator.add_class("annotator")
        self.annotation_status = w.HTML()
        self.annotator.on_submit(self._save_annotation)
        self.annotator.on_skip(self._next_annotation)
        self.class_names.observe(self._on_class_names, names="value")
        self.annotator_box.children = [
            w.HTML(f"<h3>Draw the boxes</h3><p>{len(missing)} photo(s) have no boxes yet. Choose a class, drag a "
                   "box around each object, then press Submit; the boxes are saved with your photos.</p>"),
            self.class_names, self.annotator, self.annotation_status]
        self.annotation_index = 0
        self._show_annotation_image()

    def _known_classes(self) -> list[str]:
        from retrain_lib.detection_formats import from_pascal_voc

        return sorted({b.label for image in from_pascal_voc(self.data_root).images for b in image.boxes if b.label})

    def _on_class_names(self, change) -> None:
        names = [n.strip() for n in change["new"].split(",") if n.strip()]
        if names:
            self.annotator.classes = names
            if self.annotator.label not in names:
                self.annotator.label = names[0]

    def _show_annotation_image(self) -> None:
        file = self.to_annotate[self.annotation_index]
        image, _ = load_rgb(self.data_root / file)
        view = self.data_root.parent / "annotating.jpg"
        image.save(view, format="JPEG", quality=90)
        self.annotating_size = image.size
        self.annotator.image = str(view)
        self.annotator.bboxes = []
        self.annotation_status.value = f"<p class='hint'>{html.escape(file)} ({self.annotation_index + 1} of " \
                                       f"{len(self.to_annotate)})</p>"

    def _save_annotation(self) -> None:
        file = self.to_annotate[self.annotation_index]
        width, height = self.annotating_size
        boxes = [Box(b["label"], b["x"], b["y"], b["x"] + b["width"], b["y"] + b["height"])
                 for b in self.annotator.bboxes]
        save_annotation(self.data_root, file, boxes, width, height)
        self._next_annotation()

    def _next_annotation(self) -> None:
        self.annotation_index += 1
        if self.annotation_index < len(self.to_annotate):
            self._show_annotation_image()
        else:
            self.check_data()

    def _on_preset(self, _change) -> None:
        preset = PRESETS[self.preset.value]
        self.head_epochs.value = preset["head_epochs"]
        self.fine_tune_epochs.value = preset["fine_tune_epochs"]
        self.preset_note.value = (f"<p class='hint'>{PRESET_HELP[self.preset.value]}; the model will look at "
                                  f"photos of <b>{preset['input_size']} x {preset['input_size']}</b> pixels.</p>")

    def launch_job(self) -> str:
        """Submits the checked upload to the scheduler; returns the job id."""
        from scheduler.jobs import submit_job

        params = {**PRESETS[self.preset.value], "head_epochs": self.head_epochs.value,
                  "fine_tune_epochs": self.fine_tune_epochs.value, "head_learning_rate": self.head_lr.value,
                  "fine_tune_learning_rate": self.fine_lr.value, **self.settings.job_parameters()}
        job = submit_job(self.upload_path, self.upload_task, params, home=self.home)
        return job.id

    def _on_launch(self, _button) -> None:
        if self.upload_path is None:
            return
        self.launch.disabled = True
        try:
            job_id = self.launch_job()
        except InputError as err:
            self.launch_status.value = problems_html(err)
            self.launch.disabled = False
            return
        self.launch_status.value = f"<div class='ok'>Started. Follow it under <b>Models</b> (job {job_id}).</div>"
        self.selected_job = job_id
        self.refresh()
        self.job_picker.value = job_id
        self.tabs.selected_index = 1

    # ----- jobs
    def start_refresh(self) -> None:
        self.refresh()
        threading.Thread(target=self._refresh_loop, daemon=True).start()

    def _refresh_loop(self) -> None:
        while not self._stop.wait(REFRESH_S):
            try:
                self.refresh()
            except Exception:  # keep refreshing whatever one round met
                continue

    def refresh(self) -> None:
        from scheduler.jobs import open_store
        from scheduler.runner import recover_dead_workers

        store = open_store(self.home)
        recover_dead_workers(store)
        jobs = list(reversed(store.list()))
        rows = "".join(f"<tr><td>{j.id}</td><td>{html.escape(STATE_WORDS.get(j.state, j.state))}</td>"
                       f"<td>{html.escape(STAGE_WORDS.get(j.stage, '') if j.state == 'running' else '')}</td></tr>"
                       for j in jobs[:20])
        self.jobs_table.value = ("<table class='counts'><tr><th>job</th><th>state</th><th>step</th></tr>"
                                 f"{rows}</table>" if jobs else "<p class='hint'>No models yet.</p>")
        options = [(f"{j.id} ({STATE_WORDS.get(j.state, j.state)})", j.id) for j in jobs]
        if options != list(self.job_picker.options):
            current = self.job_picker.value
            self.job_picker.options = options
            if current in [o[1] for o in options]:
                self.job_picker.value = current
        self._show_job()

    def _show_job(self) -> None:
        from scheduler.jobs import job_summary, open_store

        job_id = self.job_picker.value
        if not job_id:
            self.job_view.value = ""
            return
        job = open_store(self.home).get(job_id)
        summary = job_summary(job)
        self.retry.layout.display = "" if job.state in ("failed", "cancelled") else "none"
        self.cancel.layout.display = "" if job.state in ("queued", "running") else "none"
        self._show_progress(summary)
        self.job_view.value = job_page_html(summary, self.home)
        self._show_images(Path(job.job_dir), job.state)

    def _show_progress(self, summary: dict[str, Any]) -> None:
        progress = summary["progress"]
        if summary["state"] != "running" or not progress:
            self.progress.layout.visibility = "hidden"
            return
        self.progress.layout.visibility = "visible"
        self.progress.value = progress["step"] / max(progress["total"], 1)
        self.progress.description = f"{progress['step']}/{progress['total']}"

    def _show_images(self, job_dir: Path, state: str) -> None:
        images = [job_dir / rel for rel in ("dataset/health.png", "model/curves.png", "model/confusion_int8.png",
                                            "model/detections_int8.png")]
        key = tuple((p, p.stat().st_mtime) for p in images if p.exists())
        if getattr(self, "_images_key", None) == key:
            return
        self._images_key = key
        self.job_images.children = [w.Image(value=p.read_bytes(), format="png", layout=w.Layout(max_width="32%"))
                                    for p, _ in key]

    def _on_retry(self, _button) -> None:
        from scheduler.jobs import retry_job

        retry_job(self.job_picker.value, self.home)
        self.refresh()

    def _on_cancel(self, _button) -> None:
        from scheduler.jobs import cancel_job

        cancel_job(self.job_picker.value, self.home)
        self.refresh()


def eta_text(progress: dict[str, Any] | None, stage_start: float | None) -> str:
    """"epoch 3 of 20, about 2 min left" from a progress record and the stage's start time."""
    if not progress:
        return ""
    text = f"{progress['phase'].replace('_', '-')} epoch {progress['step']} of {progress['total']}"
    if stage_start and progress["step"]:
        per_step = (progress["time"] - stage_start) / progress["step"]
        left = per_step * (progress["total"] - progress["step"])
        text += f", at most about {max(1, round(left / 60))} min left" if left > 0 else ""
    return text


def job_page_html(summary: dict[str, Any], home: Path) -> str:
    """Everything about one job a robot owner needs, in plain words."""
    state = summary["state"]
    parts = [f"<h3>Job {summary['id']}: {html.escape(STATE_WORDS.get(state, state))}</h3>"]
    if state == "running":
        stage_start = _stage_start(summary)
        parts.append(f"<p>Now {html.escape(STAGE_WORDS.get(summary['stage'], summary['stage'] or ''))}. "
                     f"{html.escape(eta_text(summary['progress'], stage_start))}</p>")
    if summary["error"]:
        parts.append(f"<div class='problems'><p><b>What went wrong</b> (while "
                     f"{html.escape(STAGE_WORDS.get(summary['error_stage'], summary['error_stage'] or ''))}):</p>"
                     f"<pre style='white-space: pre-wrap'>{html.escape(summary['error'])}</pre>"
                     "<p>Fix the cause, then press Retry: finished steps are not repeated.</p></div>")
    metrics = summary["metrics"]
    if "float" in metrics and "int8" in metrics and "map50" in metrics["int8"]:
        parts.append(f"<p>On photos the model never saw, it finds the objects with a score (mAP@0.5) of "
                     f"<b>{metrics['int8']['map50']:.1%}</b> on the robot vs {metrics['float']['map50']:.1%} "
                     "before conversion.</p>")
    if "float" in metrics and "int8" in metrics and "accuracy" in metrics["int8"]:
        parts.append(f"<p>Accuracy on photos the model never saw: <b>{metrics['int8']['accuracy']:.1%}</b> on the "
                     f"robot (Edge TPU model) vs {metrics['float']['accuracy']:.1%} before conversion.</p>")
    report = read_report(Path(summary["job_dir"]))
    edgetpu = report.get("edgetpu", {})
    if edgetpu.get("summary"):
        parts.append(f"<p>Edge TPU: {html.escape(edgetpu['summary'])}</p>")
    packaging = summary["packaging"]
    if packaging.get("commands"):
        parts.append("<p><b>On the robot</b>, run:</p>")
        for key in ("pull", "run", "try"):
            command = packaging["commands"][key]
            parts.append(f"<div><span class='cmd'>{html.escape(command)}</span> "
                         f"<button onclick=\"navigator.clipboard.writeText(this.dataset.cmd)\" "
                         f"data-cmd=\"{html.escape(command, quote=True)}\">Copy</button></div>")
        parts.append(f"<p class='hint'>{html.escape(packaging['commands']['note'])}</p>")
    elif packaging.get("reason"):
        parts.append(f"<p class='hint'>{html.escape(packaging['reason'])}</p>")
    links = _download_links(summary, home)
    if links:
        parts.append("<p>Downloads: " + " &middot; ".join(links) + "</p>")
    if state in ("succeeded", "failed"):
        parts.append(f"<p class='hint'>Experts: the executed notebooks are in <code>"
                     f"{html.escape(summary['job_dir'])}/notebooks</code> (open them with <code>jupyter lab "
                     f"{html.escape(summary['job_dir'])}/notebooks</code>).</p>")
    return "".join(parts)


def _stage_start(summary: dict[str, Any]) -> float | None:
    from datetime import datetime

    runs = [r for r in summary["stages"] if r["stage"] == summary["stage"] and r.get("start")]
    return datetime.fromisoformat(runs[-1]["start"]).timestamp() if runs else None


def _download_links(summary: dict[str, Any], home: Path) -> list[str]:
    job_dir = Path(summary["job_dir"])
    try:
        rel_job = job_dir.resolve().relative_to(home.resolve()).as_posix()
    except ValueError:
        return []
    names = {"model_int8": "model (.tflite)", "labels": "labels", "manifest": "manifest",
             "image_tarball": "robot image (.tar.gz)"}
    return [f"<a href='voila/files/{rel_job}/{html.escape(rel)}' download>{label}</a>"
            for key, label in names.items() if (rel := summary["artifacts"].get(key)) and (job_dir / rel).exists()]
