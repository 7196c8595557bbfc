"""Safe extraction of uploaded archives (.zip, .tar, .tar.gz) into a job folder."""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from retrain_lib.errors import input_error

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz")


@dataclass(frozen=True)
class ExtractionLimits:
    """Refuse archives beyond these sizes before anything is written.

    Attributes:
        max_total_bytes: sum of the uncompressed member sizes.
        max_files: number of members.
        max_ratio: uncompressed / compressed size (zip bombs compress by 1000x and more).
    """

    max_total_bytes: int = 4 * 1024**3
    max_files: int = 100_000
    max_ratio: float = 200.0


@dataclass(frozen=True)
class _Member:
    name: str
    size: int
    is_dir: bool
    is_file: bool


def is_archive(path: Path) -> bool:
    """True when `path` names a file in one of the supported archive formats."""
    return path.is_file() and path.name.lower().endswith(ARCHIVE_SUFFIXES)


def extract_archive(archive_path: Path, dest_dir: Path, limits: ExtractionLimits | None = None) -> Path:
    """Extracts `archive_path` into `dest_dir`, refusing anything unsafe.

    Every member is checked before the first byte is written: absolute paths, `..` components,
    links and device files are refused, and so are archives beyond `limits`.

    Returns:
        The folder holding the data (see `find_data_root`).

    Raises:
        InputError: the archive is unreadable, unsafe or too large.
    """
    limits = limits or ExtractionLimits()
    name = archive_path.name
    members, opener = _list_members(archive_path)
    _check_members(name, members, archive_path.stat().st_size, limits)
    dest_dir.mkdir(parents=True, exist_ok=True)
    opener(dest_dir, members)
    return find_data_root(dest_dir)


def _list_members(archive_path: Path):
    name = archive_path.name
    lower = name.lower()
    try:
        if lower.endswith(".zip"):
            return _zip_members(archive_path)
        if lower.endswith((".tar", ".tar.gz", ".tgz")):
            return _tar_members(archive_path)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as err:
        raise input_error(name, f"the archive cannot be read ({err})",
                          "upload the archive again; if it was cut short, re-create it") from err
    raise input_error(name, "is not a supported archive",
                      f"upload a folder or one of {', '.join(ARCHIVE_SUFFIXES)}")


def _zip_members(archive_path: Path):
    with zipfile.ZipFile(archive_path) as zf:
        infos = zf.infolist()
    members = []
    for info in infos:
        mode = info.external_attr >> 16
        is_link = stat.S_ISLNK(mode)
        members.append(_Member(info.filename, info.file_size, info.is_dir(), not info.is_dir() and not is_link))

    def extract(dest_dir: Path, checked: list[_Member]) -> None:
        with zipfile.ZipFile(archive_path) as zf:
            for info, member in zip(zf.infolist(), checked, strict=True):
                target = dest_dir / member.name
                if member.is_dir:
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as dst:
                    _copy_bounded(src, dst, member.size, archive_path.name, member.name)

    return members, extract


def _tar_members(archive_path: Path):
    with tarfile.open(archive_path) as tf:
        infos = tf.getmembers()
    members = [_Member(i.name, i.size, i.isdir(), i.isfile()) for i in infos]
    links = [i.name for i in infos if not (i.isdir() or i.isfile())]

    def extract(dest_dir: Path, checked: list[_Member]) -> None:
        with tarfile.open(archive_path) as tf:
            for info in tf.getmembers():
                target = dest_dir / info.name
                if info.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                src = tf.extractfile(info)
                with src, open(target, "wb") as dst:
                    _copy_bounded(src, dst, info.size, archive_path.name, info.name)

    if links:
        members.append(_Member(links[0], 0, False, False))
    return members, extract


def _check_members(archive_name: str, members: list[_Member], packed_size: int, limits: ExtractionLimits) -> None:
    if len(members) > limits.max_files:
        raise input_error(archive_name, f"holds {len(members)} files, more than the limit of {limits.max_files}",
                          "split the dataset into smaller archives or raise max_files")
    total = 0
    for member in members:
        _check_member_name(archive_name, member)
        total += max(member.size, 0)
    if total > limits.max_total_bytes:
        raise input_error(archive_name,
                          f"unpacks to {total} bytes, more than the limit of {limits.max_total_bytes} bytes",
                          "upload a smaller dataset (resize the images) or raise max_total_bytes")
    if packed_size > 0 and total > 1024**2 and total / packed_size > limits.max_ratio:
        raise input_error(archive_name,
                          f"unpacks to {total} bytes from {packed_size} ({total / packed_size:.0f}x), "
                          f"a compression ratio above {limits.max_ratio:.0f}x that only zip bombs reach",
                          "upload the images as they are (JPEG/PNG do not compress further)")


def _check_member_name(archive_name: str, member: _Member) -> None:
    path = PurePosixPath(member.name.replace("\\", "/"))
    where = f"{archive_name}:{member.name}"
    if path.is_absolute() or (path.parts and ":" in path.parts[0]):
        raise input_error(where, "has an absolute path", "re-create the archive with paths relative to its top folder")
    if ".." in path.parts:
        raise input_error(where, "has a '..' path component that points outside the archive",
                          "re-create the archive from inside the dataset folder")
    if not (member.is_dir or member.is_file):
        raise input_error(where, "is a link or special file, which is not accepted",
                          "replace links by the files they point to before archiving")


def _copy_bounded(src, dst, declared_size: int, archive_name: str, member_name: str) -> None:
    written = 0
    while chunk := src.read(1 << 20):
        written += len(chunk)
        if written > declared_size:
            raise input_error(f"{archive_name}:{member_name}", "unpacks to more bytes than its header declares",
                              "re-create the archive; this one is damaged or crafted")
        dst.write(chunk)


def find_data_root(folder: Path) -> Path:
    """Steps down through wrapper folders: a lone sub-folder that holds only folders.

    `flowers.zip` holding `flowers/<class>/...` gives `flowers/`; a lone class folder of images is kept.
    """
    while True:
        entries = [e for e in folder.iterdir() if e.name not in {"__MACOSX", ".DS_Store"}]
        if len(entries) != 1 or not entries[0].is_dir():
            return folder
        inner = [e for e in entries[0].iterdir() if e.name not in {"__MACOSX", ".DS_Store"}]
        if not inner or any(e.is_file() for e in inner):
            return folder
        folder = entries[0]


def copy_folder(src_dir: Path, dest_dir: Path) -> Path:
    """Copies an uploaded folder into the job, refusing links that point outside it."""
    src_dir = src_dir.resolve()
    for root, _dirs, files in os.walk(src_dir):
        for fname in files:
            path = Path(root) / fname
            if path.is_symlink() and src_dir not in path.resolve().parents:
                raise input_error(str(path.relative_to(src_dir)), "is a link to a file outside the dataset folder",
                                  "copy the file into the folder instead of linking it")
    shutil.copytree(src_dir, dest_dir, symlinks=False, dirs_exist_ok=True)
    return find_data_root(dest_dir)
