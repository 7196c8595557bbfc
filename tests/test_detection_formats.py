"""Detection annotations: every format, round trips, and every bad-box case, as tables."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from retrain_lib.detection_formats import (
    AnnotatedImage,
    Box,
    as_pascal_voc,
    detect_detection_format,
    from_pascal_voc,
    read_detection,
    write_pascal_voc,
)
from retrain_lib.detection_validation import check_detection
from retrain_lib.errors import InputError
from tests.conftest import SHARED_DIR, write_image

W, H = 80, 60


def _images(root: Path, n: int = 6) -> list[str]:
    names = []
    for i in range(n):
        write_image(root / "images" / f"img{i}.jpg", seed=i, size=(W, H), fmt="JPEG")
        names.append(f"img{i}.jpg")
    return names


def _voc(root: Path, boxes: dict[str, list[tuple]], size=(W, H)) -> None:
    for name, items in boxes.items():
        image = AnnotatedImage(f"images/{name}", [Box(*b) for b in items])
        xml = as_pascal_voc(image, *size)
        (root / "annotations").mkdir(parents=True, exist_ok=True)
        (root / "annotations" / f"{Path(name).stem}.xml").write_text(xml)


def _good_boxes(names: list[str]) -> dict[str, list[tuple]]:
    return {n: [("cat", 5, 5, 40, 30), ("dog", 30, 20, 70, 55)] for n in names}


def _coco(root: Path, names: list[str]) -> None:
    data = {"images": [{"id": i, "file_name": f"images/{n}", "width": W, "height": H} for i, n in enumerate(names)],
            "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}],
            "annotations": [{"id": 10 + i, "image_id": i, "category_id": 1 + i % 2, "bbox": [5, 5, 35, 25]}
                            for i in range(len(names))] * 1}
    data["annotations"] += [{"id": 100 + i, "image_id": i, "category_id": 2 - i % 2, "bbox": [30, 20, 40, 35]}
                            for i in range(len(names))]
    (root / "annotations.json").write_text(json.dumps(data))


def _yolo(root: Path, names: list[str], yaml: bool) -> None:
    (root / "labels").mkdir(parents=True, exist_ok=True)
    for n in names:
        (root / "labels" / f"{Path(n).stem}.txt").write_text("0 0.25 0.25 0.3 0.3\n1 0.6 0.6 0.4 0.5\n")
    if yaml:
        (root / "data.yaml").write_text("names:\n  0: cat\n  1: dog\n")
    else:
        (root / "classes.txt").write_text("cat\ndog\n")


def _model_maker_csv(root: Path, names: list[str]) -> None:
    rows = []
    for i, n in enumerate(names):
        split = "TRAIN" if i < 4 else "TEST"
        rows.append(f"{split},images/{n},cat,0.1,0.1,,,0.5,0.5,,")
        rows.append(f"{split},images/{n},dog,0.4,0.4,,,0.9,0.9,,")
    (root / "boxes.csv").write_text("\n".join(rows))


def _pixel_csv(root: Path, names: list[str]) -> None:
    rows = ["path,label,xmin,ymin,xmax,ymax"] + [f"images/{n},{lab},5,5,40,30" for n in names for lab in ("cat", "dog")]
    (root / "boxes.csv").write_text("\n".join(rows))


FORMATS = [
    ("voc", lambda r, n: _voc(r, _good_boxes(n)), "voc", "Pascal VOC XML"),
    ("coco", _coco, "coco", "COCO JSON"),
    ("yolo data.yaml", lambda r, n: _yolo(r, n, True), "yolo", "YOLO txt"),
    ("yolo classes.txt", lambda r, n: _yolo(r, n, False), "yolo", "YOLO txt"),
    ("model maker csv", _model_maker_csv, "csv", "Model Maker / AutoML CSV (normalised)"),
    ("pixel csv", _pixel_csv, "csv", "CSV of boxes in pixels"),
]


@pytest.mark.parametrize(("case", "writer", "detected", "name"), FORMATS, ids=[f[0] for f in FORMATS])
def test_every_format_reads_into_pixel_boxes(tmp_path, case, writer, detected, name):
    names = _images(tmp_path)
    writer(tmp_path, names)
    assert detect_detection_format(tmp_path) == detected
    read = read_detection(tmp_path)
    checked = check_detection(tmp_path, read, min_boxes_per_class=3)
    assert read.format == name
    assert checked.classes == ["cat", "dog"]
    assert len(checked.records) == 6 and all(len(r.boxes) == 2 for r in checked.records)
    for record in checked.records:
        for box in record.boxes:
            assert 0 <= box.xmin < box.xmax <= W and 0 <= box.ymin < box.ymax <= H
    if case == "model maker csv":
        first = next(r for r in checked.records if r.file == "images/img0.jpg")
        assert first.split == "train" and first.boxes[0] == Box("cat", 8.0, 6.0, 40.0, 30.0)


def test_voc_round_trip(tmp_path):
    _images(tmp_path, 1)
    original = AnnotatedImage("images/img0.jpg", [Box("cat", 1, 2, 30, 40), Box("dog", 10, 11, 79, 59)])
    write_pascal_voc(original, W, H, tmp_path / "annotations" / "img0.xml")
    again = from_pascal_voc(tmp_path).images[0]
    assert again.file == original.file and again.boxes == original.boxes
    assert (again.width, again.height) == (W, H)
    assert as_pascal_voc(again, W, H) == as_pascal_voc(original, W, H)


def test_raccoon_reads_in_voc_and_csv_alike():
    root = SHARED_DIR / "datasets" / "raccoon_dataset"
    voc = check_detection(root, read_detection(root, "voc"))
    csv = check_detection(root, read_detection(root, "csv"))
    assert len(voc.records) == len(csv.records) == 200
    assert sum(len(r.boxes) for r in voc.records) == sum(len(r.boxes) for r in csv.records) == 217
    assert {r.split for r in csv.records} == {"train", "test"}
    by_file = {r.file.rsplit("/", 1)[-1]: sorted(r.boxes, key=lambda b: b.xmin) for r in csv.records}
    for record in voc.records:
        assert sorted(record.boxes, key=lambda b: b.xmin) == by_file[record.file.rsplit("/", 1)[-1]]


def _break(boxes):
    def apply(root: Path, names: list[str]) -> None:
        good = _good_boxes(names)
        good["img0.jpg"] = boxes
        _voc(root, good)
    return apply


BAD = [
    ("box far outside", _break([("cat", 5, 5, 200, 30)]), ["box 1 (cat)", "outside the 80x60 image", "inside"]),
    ("zero area", _break([("cat", 5, 5, 5, 30)]), ["has no area", "draw the box"]),
    ("inverted corners", _break([("cat", 40, 5, 10, 30)]), ["inverted corners", "swap"]),
    ("nan", _break([("cat", math.nan, 5, 10, 30)]), ["not a number"]),
    ("no label", _break([("", 5, 5, 10, 30)]), ["has no label"]),
    ("no boxes", _break([]), ["img0.jpg", "has no annotation", "allow_background_images"]),
    ("too few boxes", lambda r, n: _voc(r, {x: [("cat", 5, 5, 40, 30)] + ([("dog", 30, 20, 70, 55)] if x == n[0]
                                                                         else []) for x in n}),
     ["class 'dog'", "1 box(es)", "minimum of 3"]),
    ("size mismatch", lambda r, n: _voc(r, _good_boxes(n), size=(800, 600)),
     ["says the image is 800x600", "is 80x60"]),
    ("missing image", lambda r, n: (_voc(r, _good_boxes(n)), (r / "images" / "img1.jpg").unlink()),
     ["img1.xml", "names the image 'img1.jpg'", "not in the upload"]),
    ("broken xml", lambda r, n: (_voc(r, _good_boxes(n)), (r / "annotations" / "img2.xml").write_text("<annotation>")),
     ["img2.xml", "not valid XML"]),
    ("yolo class out of range", lambda r, n: (_yolo(r, n, False),
                                             (r / "labels" / "img0.txt").write_text("7 0.5 0.5 0.2 0.2\n")),
     ["'#7'", "not in the class list"]),
]


@pytest.mark.parametrize(("case", "writer", "fragments"), BAD, ids=[b[0] for b in BAD])
def test_bad_annotations_give_clear_errors(tmp_path, case, writer, fragments):
    names = _images(tmp_path)
    writer(tmp_path, names)
    with pytest.raises(InputError) as err:
        check_detection(tmp_path, read_detection(tmp_path), min_boxes_per_class=3)
    for fragment in fragments:
        assert fragment in str(err.value), f"{case}: {fragment!r} not in {err.value}"
    assert "Fix:" in str(err.value)


def test_slightly_outside_is_clipped_with_a_note(tmp_path):
    names = _images(tmp_path)
    _break([("cat", -2, 5, 81.5, 30), ("dog", 30, 20, 70, 55)])(tmp_path, names)
    checked = check_detection(tmp_path, read_detection(tmp_path), min_boxes_per_class=3)
    box = next(r for r in checked.records if r.file == "images/img0.jpg").boxes[0]
    assert (box.xmin, box.xmax) == (0.0, 80.0)
    assert any("clipped by 2 px" in n for n in checked.notes)


def test_background_images_allowed_by_parameter(tmp_path):
    names = _images(tmp_path)
    _break([])(tmp_path, names)
    checked = check_detection(tmp_path, read_detection(tmp_path), min_boxes_per_class=3, allow_background_images=True)
    assert any(r.file == "images/img0.jpg" and not r.boxes for r in checked.records)


def test_xml_bomb_is_refused(tmp_path):
    _images(tmp_path, 1)
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "img0.xml").write_text(
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]>'
        "<annotation><filename>&lol2;</filename></annotation>")
    read = read_detection(tmp_path, "voc")
    assert any("not valid XML" in p.message for p in read.problems)


def test_tiny_boxes_are_warned_about_with_the_input_size_that_fits_them(tmp_path):
    from retrain_lib.stages.upload import run_upload

    data = tmp_path / "data"
    names = _images(data, 8)
    # 2 px wide on an 80 px image: 8 px at 320, 11.2 px at 448, 12.8 px at 512
    _voc(data, {n: [("cat", 10, 10, 12, 12), ("dog", 30, 20, 70, 55)] for n in names})
    health = run_upload(tmp_path / "job", data, task="detection", min_boxes_per_class=3).health
    assert health["small_boxes"] == 8
    (note,) = [n for n in health["notes"] if "hard to detect" in n]
    assert note.startswith("8 box(es) are smaller than 12 px at the model's 320 px input")
    assert "--set detection_input_size=512" in note
    larger = run_upload(tmp_path / "job2", data, task="detection", min_boxes_per_class=3, detection_input_size=512)
    assert larger.health["small_boxes"] == 0 and not any("hard to detect" in n for n in larger.health["notes"])
