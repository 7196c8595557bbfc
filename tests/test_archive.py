"""Safe extraction: every unsafe or oversized archive is refused before anything is written."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from retrain_lib.archive import ExtractionLimits, extract_archive
from retrain_lib.errors import InputError


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _tar_with_symlink(folder: Path) -> Path:
    path = folder / "links.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        info = tarfile.TarInfo("data/cat/link.jpg")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tf.addfile(info)
    return path


CASES = [
    # (name, builder, limits, expected message fragment)
    ("dotdot", lambda p: _zip(p / "a.zip", {"cat/1.jpg": b"x", "../evil.txt": b"owned"}), None, "'..'"),
    ("nested dotdot", lambda p: _zip(p / "a.zip", {"cat/../../evil.txt": b"x"}), None, "'..'"),
    ("absolute", lambda p: _zip(p / "a.zip", {"/etc/evil": b"x"}), None, "absolute path"),
    ("symlink in tar", _tar_with_symlink, None, "link"),
    ("zip bomb ratio", lambda p: _zip(p / "bomb.zip", {"zeros.bin": bytes(60 * 1024**2)}), None, "compression ratio"),
    ("over size limit", lambda p: _zip(p / "a.zip", {"a.bin": bytes(5000)}), ExtractionLimits(max_total_bytes=4000),
     "more than the limit of 4000 bytes"),
    ("too many files", lambda p: _zip(p / "a.zip", {f"{i}.jpg": b"x" for i in range(12)}),
     ExtractionLimits(max_files=10), "more than the limit of 10"),
    ("not an archive", lambda p: (p / "a.zip").write_bytes(b"this is not a zip") and p / "a.zip", None,
     "cannot be read"),
    ("truncated tar.gz", lambda p: (p / "a.tar.gz").write_bytes(b"\x1f\x8b\x08\x00garbage") and p / "a.tar.gz", None,
     "cannot be read"),
]


@pytest.mark.parametrize(("name", "build", "limits", "expected"), CASES, ids=[c[0] for c in CASES])
def test_unsafe_archives_are_refused_before_extraction(tmp_path, name, build, limits, expected):
    archive = build(tmp_path)
    dest = tmp_path / "out"
    with pytest.raises(InputError) as err:
        extract_archive(archive, dest, limits)
    assert expected in str(err.value)
    assert archive.name in str(err.value)
    assert "Fix:" in str(err.value)
    assert not (tmp_path / "evil.txt").exists()
    assert not dest.exists() or not any(dest.rglob("*"))


def test_unicode_names_and_wrapper_folder(tmp_path):
    archive = _zip(tmp_path / "fleurs.zip", {"fleurs/rosé/été 1.jpg": b"a", "fleurs/日本/花.jpg": b"b"})
    root = extract_archive(archive, tmp_path / "out")
    assert root.name == "fleurs"
    assert (root / "rosé" / "été 1.jpg").read_bytes() == b"a"
    assert (root / "日本" / "花.jpg").read_bytes() == b"b"


def test_tar_gz_extracts(tmp_path):
    buffer = io.BytesIO(b"hello")
    path = tmp_path / "d.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        info = tarfile.TarInfo("cat/a.jpg")
        info.size = 5
        tf.addfile(info, buffer)
    root = extract_archive(path, tmp_path / "out")
    assert (root / "cat" / "a.jpg").read_bytes() == b"hello"
