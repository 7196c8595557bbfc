"""The upload stage: every layout, every bad-input case, and the split."""

from __future__ import annotations

import csv
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from retrain_lib.dataset import load_dataset
from retrain_lib.errors import InputError
from retrain_lib.report import read_report
from retrain_lib.stages.upload import run_upload
from tests.conftest import make_class_folders, write_image

GOOD = {"cat": 6, "dog": 6}


def _upload(tmp_path: Path, data: Path, **kw):
    return run_upload(tmp_path / "job", data, **kw)


def test_folder_per_class(tmp_path):
    data = make_class_folders(tmp_path / "data", {"cat": 10, "dog": 12})
    result = _upload(tmp_path, data)
    assert result.health["layout"] == "folder per class"
    assert result.dataset.classes == ["cat", "dog"]
    assert len(result.dataset.records) == 22
    counts = result.dataset.counts()
    assert all(counts[s][c] >= 1 for s in ("train", "val", "test") for c in ("cat", "dog"))
    manifest = (tmp_path / "job" / "dataset" / "manifest.csv").read_text().splitlines()
    assert manifest[0].startswith("file,label,split,sha256,size")
    recorded = read_report(tmp_path / "job")["dataset"]["counts"]
    assert recorded["train"] == counts["train"]["cat"] + counts["train"]["dog"]
    assert result.health_plot.stat().st_size > 1000


def test_zip_archive_with_wrapper_folder(tmp_path):
    data = make_class_folders(tmp_path / "src" / "pets", GOOD)
    archive = tmp_path / "pets.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in data.rglob("*.png"):
            zf.write(path, path.relative_to(tmp_path / "src").as_posix())
    result = _upload(tmp_path, archive)
    assert result.dataset.classes == ["cat", "dog"]
    assert (tmp_path / "job" / "data" / "pets" / "cat" / "0.png").exists()


def test_csv_with_split_column_is_honoured(tmp_path):
    data = tmp_path / "data"
    rows = []
    for n in range(12):
        label = "cat" if n % 2 else "dog"
        write_image(data / "images" / f"{n}.png", seed=n)
        split = "TRAIN" if n < 8 else "VALIDATION" if n < 10 else "TEST"
        rows.append([split, f"images/{n}.png", label])
    with open(data / "labels.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)
    result = _upload(tmp_path, data, min_images_per_class=5)
    assert result.health["layout"] == "CSV of labels (labels.csv)"
    splits = {r.file: r.split for r in result.dataset.records}
    assert splits["images/0.png"] == "train" and splits["images/8.png"] == "val" and splits["images/11.png"] == "test"


def test_csv_path_label_with_header_and_uri_paths(tmp_path):
    data = tmp_path / "data"
    lines = ["path,label"]
    for n in range(10):
        write_image(data / "img" / f"p{n}.jpg", seed=n, fmt="JPEG")
        lines.append(f"gs://bucket/whatever/p{n}.jpg,{'a' if n < 5 else 'b'}")
    (data / "labels.csv").write_text("\n".join(lines))
    result = _upload(tmp_path, data)
    assert {r.file for r in result.dataset.records} == {f"img/p{n}.jpg" for n in range(10)}


def test_split_folders_layout(tmp_path):
    for seed, (split, n) in enumerate((("train", 6), ("valid", 2), ("test", 2))):
        make_class_folders(tmp_path / "data" / split, {"cat": n, "dog": n}, start_seed=100 * seed)
    result = _upload(tmp_path, tmp_path / "data")
    assert result.health["layout"].startswith("split folders")
    counts = result.dataset.counts()
    assert counts["train"]["cat"] == 6 and counts["val"]["dog"] == 2 and counts["test"]["cat"] == 2


def test_converts_modes_and_applies_exif_orientation(tmp_path):
    data = make_class_folders(tmp_path / "data", GOOD)
    write_image(data / "cat" / "cmyk.jpg", seed=100, mode="CMYK", fmt="JPEG")
    write_image(data / "cat" / "grey.png", seed=101, mode="L")
    write_image(data / "cat" / "palette.png", seed=102, mode="P")
    write_image(data / "dog" / "alpha.png", seed=103, mode="RGBA")
    write_image(data / "dog" / "deep.png", seed=104, mode="I;16")
    rotated = Image.fromarray(np.zeros((30, 50, 3), np.uint8))
    exif = rotated.getexif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    rotated.save(data / "dog" / "rotated.jpg", exif=exif)
    result = _upload(tmp_path, data)
    records = {r.file: r for r in result.dataset.records}
    assert records["cat/cmyk.jpg"].mode == "CMYK" and "CMYK" in records["cat/cmyk.jpg"].converted
    assert records["dog/deep.png"].converted.startswith("I;16")
    assert "alpha" in records["dog/alpha.png"].converted
    assert (records["dog/rotated.jpg"].width, records["dog/rotated.jpg"].height) == (30, 50)
    assert any("CMYK" in note for note in result.health["notes"])


def test_duplicates_stay_in_one_split_and_are_reported(tmp_path):
    data = make_class_folders(tmp_path / "data", {"cat": 20, "dog": 20})
    for n in range(5):
        shutil.copy(data / "cat" / f"{n}.png", data / "cat" / f"copy{n}.png")
    result = _upload(tmp_path, data)
    by_hash = {}
    for record in result.dataset.records:
        by_hash.setdefault(record.sha256, set()).add(record.split)
    assert all(len(splits) == 1 for splits in by_hash.values())
    assert len(result.health["duplicate_groups"]) == 5


def test_same_seed_same_split_other_seed_differs(tmp_path):
    data = make_class_folders(tmp_path / "data", {"cat": 30, "dog": 30})
    first = run_upload(tmp_path / "a", data, seed=7).dataset.records
    again = run_upload(tmp_path / "b", data, seed=7).dataset.records
    other = run_upload(tmp_path / "c", data, seed=8).dataset.records
    assert [r.split for r in first] == [r.split for r in again]
    assert [r.split for r in first] != [r.split for r in other]
    assert load_dataset(tmp_path / "a" / "dataset").records == first


def test_non_images_are_listed_not_fatal(tmp_path):
    data = make_class_folders(tmp_path / "data", GOOD)
    (data / "cat" / "notes.txt").write_text("hello")
    (data / "README.md").write_text("about")
    result = _upload(tmp_path, data)
    assert "cat/notes.txt: not an image, ignored" in result.health["notes"]
    assert "README.md: not an image, ignored" in result.health["notes"]


def test_conflicting_duplicates_can_be_excluded(tmp_path):
    data = make_class_folders(tmp_path / "data", {"cat": 7, "dog": 7})
    shutil.copy(data / "cat" / "0.png", data / "dog" / "same.png")
    with pytest.raises(InputError, match="duplicate_conflicts=exclude"):
        _upload(tmp_path, data)
    result = _upload(tmp_path, data, duplicate_conflicts="exclude")
    files = {r.file for r in result.dataset.records}
    assert "cat/0.png" not in files and "dog/same.png" not in files
    assert any(n.startswith("left out") and "dog/same.png" in n for n in result.health["notes"])


def _truncated_jpeg(data: Path) -> None:
    path = write_image(data / "cat" / "broken.jpg", seed=200, size=(64, 64), fmt="JPEG")
    path.write_bytes(path.read_bytes()[:300])


def _empty_class(data: Path) -> None:
    (data / "bird").mkdir()


def _csv_missing_file(data: Path) -> None:
    rows = [f"{p.relative_to(data).as_posix()},{p.parent.name}" for p in sorted(data.rglob("*.png"))]
    (data / "labels.csv").write_text("\n".join(rows + ["cat/ghost.png,cat"]))


def _one_class(data: Path) -> None:
    shutil.rmtree(data / "dog")


def _too_few(data: Path) -> None:
    for n in range(3, 6):
        (data / "dog" / f"{n}.png").unlink()


def _whitespace_variant(data: Path) -> None:
    make_class_folders(data, {"cat ": 6}, start_seed=500)


def _case_variant(data: Path) -> None:
    make_class_folders(data, {"Cat": 6}, start_seed=600)


def _image_outside_class(data: Path) -> None:
    write_image(data / "stray.png", seed=700)


def _text_named_jpg(data: Path) -> None:
    (data / "dog" / "fake.jpg").write_text("not really a jpeg")


BAD_INPUT = [
    # (case, break the good dataset, fragments the error must contain)
    ("truncated jpeg", _truncated_jpeg, ["cat/broken.jpg", "cannot be decoded", "re-export"]),
    ("empty class folder", _empty_class, ["bird/", "has no images", "delete the empty folder"]),
    ("csv names a missing file", _csv_missing_file, ["labels.csv:13", "cat/ghost.png", "not in the upload"]),
    ("one class", _one_class, ["has 1 class(es)", "at least 2"]),
    ("too few images", _too_few, ["class 'dog'", "3 distinct image(s)", "minimum of 5", "add at least 2 more"]),
    ("label whitespace variant", _whitespace_variant, ["'cat '", "never merged silently"]),
    ("label case variant", _case_variant, ["'Cat', 'cat'", "upper/lower case"]),
    ("image outside class folders", _image_outside_class, ["stray.png", "outside any class folder"]),
    ("text file named .jpg", _text_named_jpg, ["dog/fake.jpg", "cannot be decoded"]),
]


@pytest.mark.parametrize(("case", "breaker", "fragments"), BAD_INPUT, ids=[c[0] for c in BAD_INPUT])
def test_bad_input_gives_a_clear_error(tmp_path, case, breaker, fragments):
    data = make_class_folders(tmp_path / "data", GOOD)
    breaker(data)
    with pytest.raises(InputError) as err:
        _upload(tmp_path, data)
    message = str(err.value)
    for fragment in fragments:
        assert fragment in message, f"{case}: {fragment!r} not in {message!r}"
    assert "Fix:" in message
    assert (tmp_path / "job" / "data").exists(), "the upload must be kept for the user to fix"


def test_all_problems_are_reported_at_once(tmp_path):
    data = make_class_folders(tmp_path / "data", GOOD)
    _truncated_jpeg(data)
    _empty_class(data)
    _too_few(data)
    with pytest.raises(InputError) as err:
        _upload(tmp_path, data)
    assert len(err.value.problems) == 3
    assert str(err.value).startswith("3 problems found")


def test_zip_slip_via_stage_keeps_nothing_outside(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("cat/1.png", b"x")
        zf.writestr("../../evil.txt", b"owned")
    with pytest.raises(InputError, match="'..'"):
        _upload(tmp_path, archive)
    assert not (tmp_path / "evil.txt").exists()
    assert not (tmp_path / "job" / "evil.txt").exists()


def test_wrong_task_is_refused(tmp_path):
    with pytest.raises(InputError, match="task: is 'segmentation'"):
        _upload(tmp_path, make_class_folders(tmp_path / "data", GOOD), task="segmentation")


def test_missing_path(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        _upload(tmp_path, tmp_path / "nope")
