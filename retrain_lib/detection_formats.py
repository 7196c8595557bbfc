"""Readers and writers of object-detection annotations: Pascal VOC, COCO JSON, YOLO txt, and CSV.

Every reader returns the same internal representation: per image, boxes in pixels (xmin, ymin, xmax,
ymax) of the image as stored, labels as written, plus the problems met. `as_pascal_voc` writes VOC back out
(the dashboard's annotation tool saves VOC). Checking boxes against the real images is
`retrain_lib.detection_validation`'s job.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from xml.etree.ElementTree import Element, SubElement, tostring

from defusedxml import ElementTree as SafeET
from defusedxml.common import DefusedXmlException

from retrain_lib.errors import Problem
from retrain_lib.images import images_by_name

CSV_SPLITS = {"TRAIN": "train", "VALIDATION": "val", "VAL": "val", "TEST": "test", "UNASSIGNED": None}


@dataclass(frozen=True)
class Box:
    """One labelled box in pixels: xmin, ymin inclusive corner, xmax, ymax exclusive corner."""

    label: str
    xmin: float
    ymin: float
    xmax: float
    ymax: float

    @property
    def area(self) -> float:
        return max(0.0, self.xmax - self.xmin) * max(0.0, self.ymax - self.ymin)


@dataclass
class AnnotatedImage:
    """An image and its boxes; `width`/`height` are what the annotation says (None when it says nothing)."""

    file: str
    boxes: list[Box] = field(default_factory=list)
    width: int | None = None
    height: int | None = None
    split: str | None = None
    source: str = ""


@dataclass
class DetectionRead:
    """What a reader found."""

    format: str
    images: list[AnnotatedImage] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def detect_detection_format(root: Path) -> str | None:
    """The annotation format under `root`: "voc", "coco", "yolo", "csv", or None (no boxes: classification)."""
    files = [p for p in root.rglob("*")
             if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)]
    if any(p.suffix.lower() == ".json" and _looks_like_coco(p) for p in files):
        return "coco"
    if any(p.name in ("data.yaml", "classes.txt") for p in files) and any(
            p.suffix == ".txt" and p.parent.name == "labels" for p in files):
        return "yolo"
    if any(p.suffix.lower() == ".xml" for p in files):
        return "voc"
    if any(p.suffix.lower() == ".csv" and _csv_has_boxes(p) for p in files):
        return "csv"
    return None


def read_detection(root: Path, fmt: str | None = None) -> DetectionRead:
    """Reads the annotations under `root` in `fmt` (detected when None; photos without any annotation file
    are read as Pascal VOC with every image unannotated, so the dashboard can offer to draw the boxes)."""
    fmt = fmt or detect_detection_format(root) or "voc"
    readers = {"voc": from_pascal_voc, "coco": from_coco, "yolo": from_yolo, "csv": from_csv}
    return readers[fmt](root)


def _resolve(root: Path, near: Path, ref: str, by_name: dict[str, list[str]]) -> str | None:
    ref = ref.replace("\\", "/")
    pure = PurePosixPath(ref)
    if "://" not in ref and not pure.is_absolute() and ".." not in pure.parts:
        for base in (near, root):
            if (base / ref).is_file():
                return (base / ref).relative_to(root).as_posix()
    matches = by_name.get(pure.name, [])
    return matches[0] if len(matches) == 1 else None


# ----- Pascal VOC
def from_pascal_voc(root: Path) -> DetectionRead:
    """Reads every `*.xml` VOC annotation (LabelImg, CVAT); the image is found by <filename> or <path>."""
    result = DetectionRead("Pascal VOC XML")
    by_name = images_by_name(root)
    annotated = set()
    for xml_path in sorted(root.rglob("*.xml")):
        rel = xml_path.relative_to(root).as_posix()
        try:
            tree = SafeET.parse(xml_path)
        except (SafeET.ParseError, DefusedXmlException) as err:
            result.problems.append(Problem(rel, f"is not valid XML ({err})", "re-export the annotation"))
            continue
        node = tree.getroot()
        if node.tag != "annotation":
            result.notes.append(f"{rel}: not a VOC annotation (<{node.tag}>), ignored")
            continue
        filename = (node.findtext("filename") or "").strip()
        image = _resolve(root, xml_path.parent, filename, by_name) if filename else None
        if image is None:
            image = _resolve(root, xml_path.parent, xml_path.with_suffix(".jpg").name, by_name) or \
                _resolve(root, xml_path.parent, xml_path.with_suffix(".png").name, by_name)
        if image is None:
            result.problems.append(Problem(rel, f"names the image '{filename}', which is not in the upload",
                                           "add the image or correct <filename>"))
            continue
        size = node.find("size")
        width = _int_or_none(size.findtext("width")) if size is not None else None
        height = _int_or_none(size.findtext("height")) if size is not None else None
        boxes = []
        for index, obj in enumerate(node.findall("object")):
            label = (obj.findtext("name") or "").strip()
            bnd = obj.find("bndbox")
            values = [_float(bnd.findtext(k)) if bnd is not None else math.nan
                      for k in ("xmin", "ymin", "xmax", "ymax")]
            boxes.append(Box(label, *values))
            if bnd is None:
                result.problems.append(Problem(f"{rel} object {index + 1}", "has no <bndbox>",
                                               "draw the box again or delete the object"))
        annotated.add(image)
        result.images.append(AnnotatedImage(image, boxes, width, height, source=rel))
    _note_unannotated(result, by_name, annotated)
    return result


def as_pascal_voc(image: AnnotatedImage, width: int, height: int) -> str:
    """The VOC XML of one image (what LabelImg writes), boxes rounded to whole pixels."""
    node = Element("annotation")
    SubElement(node, "folder").text = str(PurePosixPath(image.file).parent)
    SubElement(node, "filename").text = PurePosixPath(image.file).name
    size = SubElement(node, "size")
    for key, value in (("width", width), ("height", height), ("depth", 3)):
        SubElement(size, key).text = str(value)
    for box in image.boxes:
        obj = SubElement(node, "object")
        SubElement(obj, "name").text = box.label
        SubElement(obj, "difficult").text = "0"
        bnd = SubElement(obj, "bndbox")
        for key in ("xmin", "ymin", "xmax", "ymax"):
            value = getattr(box, key)
            SubElement(bnd, key).text = str(int(round(value))) if math.isfinite(value) else str(value)
    return tostring(node, encoding="unicode")


def write_pascal_voc(image: AnnotatedImage, width: int, height: int, xml_path: Path) -> Path:
    """Writes `as_pascal_voc` to `xml_path` atomically."""
    from retrain_lib.atomic import atomic_write_text

    atomic_write_text(xml_path, as_pascal_voc(image, width, height))
    return xml_path


# ----- COCO
def _looks_like_coco(path: Path) -> bool:
    try:
        head = path.read_text(encoding="utf-8", errors="replace")[:200_000]
    except OSError:
        return False
    return '"annotations"' in head and '"images"' in head and '"categories"' in head


def from_coco(root: Path) -> DetectionRead:
    """Reads COCO JSON files (CVAT, Label Studio): bbox [x, y, width, height] in pixels."""
    result = DetectionRead("COCO JSON")
    by_name = images_by_name(root)
    annotated = set()
    for json_path in sorted(p for p in root.rglob("*.json") if _looks_like_coco(p)):
        rel = json_path.relative_to(root).as_posix()
        try:
            data = json.loads(json_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            result.problems.append(Problem(rel, f"is not valid JSON ({err})", "re-export the annotations"))
            continue
        categories = {c["id"]: str(c["name"]) for c in data.get("categories", [])}
        result.classes += [n for n in categories.values() if n not in result.classes]
        images = {}
        for entry in data.get("images", []):
            image = _resolve(root, json_path.parent, str(entry.get("file_name", "")), by_name)
            if image is None:
                result.problems.append(Problem(f"{rel} image id {entry.get('id')}",
                                               f"names '{entry.get('file_name')}', which is not in the upload",
                                               "add the image or correct its file_name"))
                continue
            images[entry["id"]] = AnnotatedImage(image, [], _int_or_none(entry.get("width")),
                                                 _int_or_none(entry.get("height")), source=rel)
        for ann in data.get("annotations", []):
            image = images.get(ann.get("image_id"))
            if image is None:
                continue
            label = categories.get(ann.get("category_id"))
            if label is None:
                result.problems.append(Problem(f"{rel} annotation id {ann.get('id')}",
                                               f"has category_id {ann.get('category_id')}, not in categories",
                                               "add the category or fix the annotation"))
                continue
            x, y, w, h = (list(ann.get("bbox", [])) + [math.nan] * 4)[:4]
            image.boxes.append(Box(label, _float(x), _float(y), _float(x) + _float(w), _float(y) + _float(h)))
        for image in images.values():
            annotated.add(image.file)
            result.images.append(image)
    _note_unannotated(result, by_name, annotated)
    return result


# ----- YOLO
def from_yolo(root: Path) -> DetectionRead:
    """Reads YOLO txt labels (`class cx cy w h`, normalised) with names from data.yaml or classes.txt."""
    result = DetectionRead("YOLO txt")
    result.classes = _yolo_names(root, result)
    by_name = images_by_name(root)
    stems = {}
    for names in by_name.values():
        for rel in names:
            stems.setdefault(PurePosixPath(rel).stem, []).append(rel)
    annotated = set()
    for txt in sorted(p for p in root.rglob("*.txt") if p.parent.name == "labels"):
        rel = txt.relative_to(root).as_posix()
        candidates = stems.get(txt.stem, [])
        if len(candidates) != 1:
            result.problems.append(Problem(rel, "has no image of the same name" if not candidates else
                                           f"matches several images ({', '.join(candidates)})",
                                           "keep one image per label file, with the same name"))
            continue
        boxes = []
        for line_no, line in enumerate(txt.read_text(encoding="utf-8").splitlines(), start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 5:
                result.problems.append(Problem(f"{rel}:{line_no}", f"has {len(parts)} values, not 5",
                                               "write `class cx cy w h` with normalised numbers"))
                continue
            try:
                cls = int(parts[0])
                cx, cy, w, h = (float(v) for v in parts[1:])
            except ValueError:
                result.problems.append(Problem(f"{rel}:{line_no}", f"line {line!r} is not numeric",
                                               "write `class cx cy w h` with numbers"))
                continue
            label = result.classes[cls] if 0 <= cls < len(result.classes) else f"#{cls}"
            # normalised; scaled to pixels once the image size is known (validation)
            boxes.append(Box(label, cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2))
        annotated.add(candidates[0])
        result.images.append(AnnotatedImage(candidates[0], boxes, None, None, source=rel))
    _note_unannotated(result, by_name, annotated)
    result.notes.append("YOLO boxes are normalised; they are scaled by each image's size")
    return result


def _yolo_names(root: Path, result: DetectionRead) -> list[str]:
    import yaml

    for path in root.rglob("data.yaml"):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as err:
            result.problems.append(Problem(path.name, f"is not valid YAML ({err})", "fix data.yaml"))
            return []
        names = data.get("names", [])
        return [str(names[k]) for k in sorted(names)] if isinstance(names, dict) else [str(n) for n in names]
    for path in root.rglob("classes.txt"):
        return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return []


# ----- CSV
def _csv_has_boxes(path: Path) -> bool:
    try:
        first = next(csv.reader(path.read_text(encoding="utf-8-sig").splitlines()[:1]), [])
    except (UnicodeDecodeError, StopIteration):
        return False
    lowered = [c.strip().lower() for c in first]
    return (len(first) >= 9 and first[0].strip().upper() in CSV_SPLITS) or {"xmin", "ymin"} <= set(lowered)


def from_csv(root: Path) -> DetectionRead:
    """Reads the Model Maker / AutoML CSV (`set,path,label,x_min,y_min,,,x_max,y_max,,`, normalised) or a
    plain `path,label,xmin,ymin,xmax,ymax` CSV in pixels (with a header naming those columns).

    CSV files named after a split (`train_labels.csv`, `test.csv`, ...) give their rows that split; when
    such files exist, other CSV files are ignored (with a note), since they usually repeat the same rows.
    """
    result = DetectionRead("CSV of boxes")
    by_name = images_by_name(root)
    per_image: dict[str, AnnotatedImage] = {}
    box_csvs = sorted(p for p in root.rglob("*.csv") if _csv_has_boxes(p))
    by_split = {p: _split_of_name(p.stem) for p in box_csvs}
    chosen = [p for p in box_csvs if by_split[p]] or box_csvs[:1]
    result.notes += [f"{p.relative_to(root).as_posix()}: ignored (the split files are read instead)"
                     for p in box_csvs if p not in chosen]
    for csv_path in chosen:
        rel = csv_path.relative_to(root).as_posix()
        rows = list(csv.reader(csv_path.read_text(encoding="utf-8-sig").splitlines()))
        header = [c.strip().lower() for c in rows[0]] if rows else []
        normalised = bool(rows) and rows[0][0].strip().upper() in CSV_SPLITS
        if not normalised:
            rows = rows[1:]
        for line_no, row in enumerate(rows, start=1 if normalised else 2):
            if not any(c.strip() for c in row):
                continue
            where = f"{rel}:{line_no}"
            try:
                split, ref, label, box, size = _csv_row(row, header, normalised)
            except (ValueError, IndexError, KeyError, StopIteration):
                result.problems.append(Problem(where, f"row {row!r} is not a box row",
                                               "write set,path,label,x_min,y_min,,,x_max,y_max,, (normalised) or "
                                               "path,label,xmin,ymin,xmax,ymax (pixels)"))
                continue
            image = _resolve(root, csv_path.parent, ref, by_name)
            if image is None:
                result.problems.append(Problem(where, f"names the file '{ref}', which is not in the upload",
                                               "add the image or correct its path"))
                continue
            entry = per_image.setdefault(image, AnnotatedImage(image, [], *size, split or by_split[csv_path],
                                                               source=rel))
            if label:
                entry.boxes.append(Box(label, *box))
        result.format = "Model Maker / AutoML CSV (normalised)" if normalised else "CSV of boxes in pixels"
    result.images = list(per_image.values())
    _note_unannotated(result, by_name, set(per_image))
    return result


def _split_of_name(stem: str) -> str | None:
    tokens = stem.lower().replace("-", "_").split("_")
    for token, split in (("train", "train"), ("training", "train"), ("val", "val"), ("valid", "val"),
                         ("validation", "val"), ("test", "test")):
        if token in tokens:
            return split
    return None


def _csv_row(row: list[str], header: list[str], normalised: bool):
    cells = [c.strip() for c in row]
    if normalised:
        split = CSV_SPLITS[cells[0].upper()]
        values = [float(cells[i]) if cells[i] else math.nan for i in (3, 4, 7, 8)]
        return split, cells[1], cells[2], values, (None, None)
    index = {name: i for i, name in enumerate(header)}
    path_key = next(k for k in ("path", "filename", "file", "image") if k in index)
    values = [float(cells[index[k]]) for k in ("xmin", "ymin", "xmax", "ymax")]
    size = (_int_or_none(cells[index["width"]]), _int_or_none(cells[index["height"]])) \
        if "width" in index and "height" in index else (None, None)
    return None, cells[index[path_key]], cells[index.get("label", index.get("class", 1))], values, size


def _note_unannotated(result: DetectionRead, by_name: dict[str, list[str]], annotated: set[str]) -> None:
    for rel in sorted(r for rels in by_name.values() for r in rels):
        if rel not in annotated:
            result.images.append(AnnotatedImage(rel, [], source=""))


def _int_or_none(value) -> int | None:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return None


def _float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
