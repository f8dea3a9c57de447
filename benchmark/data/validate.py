"""Check a data root before any compute is spent: every folder and file a task reads must exist.

detectron2's loaders fail late and obscurely (an `assert` deep in a dataloader worker, minutes
into a run, or a `ValueError: 'cat' is not in list`). `validate_layout(task, root)` walks what the
loaders will read and raises one `DatasetLayoutError` naming the first missing or corrupt path and
pointing to datasets.md, where the expected trees are written out. Each family's check here is
named by its DatasetFamily (benchmark.data.families) and gets the dataset's absolute layout.
"""
import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

from benchmark.data.families import get_family, task_datasets

DOC = "datasets.md"
# A COCO annotation file bigger than this is checked for truncation only (its ends), not parsed:
# parsing instances_train2017.json (448 MB) costs ~20 s and GBs of memory, and the loader parses it anyway.
FULL_PARSE_MAX_BYTES = 64 << 20


class DatasetLayoutError(ValueError):
    """A dataset folder or file is missing or unreadable; the message names it."""


def _fail(name, problem, path):
    raise DatasetLayoutError(f"dataset {name}: {problem} {path} (expected layout and preparation: see {DOC})")


def _need_dir(name, path):
    if not Path(path).is_dir():
        _fail(name, "missing folder", path)


def _need_file(name, path, what="missing file"):
    if not Path(path).is_file():
        _fail(name, what, path)


def check_voc(name, *, dirname, split, year):
    from detectron2.data.datasets.pascal_voc import CLASS_NAMES

    d = Path(dirname)
    _need_dir(name, d)
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        _need_dir(name, d / sub)
    split_file = d / "ImageSets" / "Main" / f"{split}.txt"
    _need_file(name, split_file)
    ids = split_file.read_text().split()
    if len(ids) < 2:  # np.loadtxt in detectron2's loader turns a one-line list into a 0-d array
        _fail(name, "fewer than 2 images (detectron2's VOC loader needs at least 2) in", split_file)
    for fileid in ids:
        _need_file(name, d / "JPEGImages" / f"{fileid}.jpg")
        xml = d / "Annotations" / f"{fileid}.xml"
        _need_file(name, xml)
        try:
            tree = ET.parse(xml)
        except ET.ParseError as e:
            _fail(name, f"corrupt annotation ({e})", xml)
        if tree.find("./size/height") is None or tree.find("./size/width") is None:
            _fail(name, "annotation without size/height and size/width", xml)
        try:
            width, height = float(tree.findtext("./size/width")), float(tree.findtext("./size/height"))
        except ValueError:
            _fail(name, "annotation whose size/width or size/height is not a number", xml)
        for obj in tree.findall("object"):
            cls = obj.findtext("name")
            if cls not in CLASS_NAMES:
                _fail(name, f"annotation with unknown class {cls!r}", xml)
            box = obj.find("bndbox")
            if box is None or any(box.find(k) is None for k in ("xmin", "ymin", "xmax", "ymax")):
                _fail(name, "annotation object without a complete bndbox", xml)
            _check_voc_box(name, xml, box, width, height)


def _check_voc_box(name, xml, box, width, height):
    """VOC boxes are 1-based pixel indices inside the image; detectron2 would train on anything.

    A box outside the image or inverted means the annotation (or its size) is wrong, and would
    silently teach the model garbage or crash box sampling later; 0 is tolerated as a start.
    """
    try:
        x0, y0, x1, y1 = (float(box.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
    except ValueError:
        _fail(name, "annotation with a bndbox coordinate that is not a number in", xml)
    if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
        _fail(name, f"annotation with a box ({x0:g}, {y0:g}, {x1:g}, {y1:g}) outside the {width:g}x{height:g} image "
                    "or empty, in", xml)


def _check_json_file(name, path):
    """Parse `path` (or, when huge, check its ends); return the parsed dict or None."""
    size = path.stat().st_size
    if size > FULL_PARSE_MAX_BYTES:
        with open(path, "rb") as f:
            head = f.read(64).lstrip()
            f.seek(max(0, size - 64))
            tail = f.read().rstrip()
        if not (head.startswith(b"{") and tail.endswith(b"}")):
            _fail(name, "corrupt (truncated?) JSON annotation file", path)
        return None
    try:
        with open(path, "rb") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        _fail(name, f"corrupt JSON annotation file ({e})", path)


def check_coco(name, *, image_root, json_file):
    image_root, json_file = Path(image_root), Path(json_file)
    _need_dir(name, image_root)
    _need_file(name, json_file)
    data = _check_json_file(name, json_file)
    if data is None:
        return
    if not isinstance(data, dict) or any(k not in data for k in ("images", "annotations", "categories")):
        _fail(name, "COCO annotation file without images/annotations/categories in", json_file)
    for img in data["images"]:
        _need_file(name, image_root / img["file_name"])
    _check_coco_annotations(name, json_file, data)


def _check_coco_annotations(name, json_file, data):
    """What detectron2's COCO loader would trip over minutes later, or silently mis-train on.

    An unknown category id raises a KeyError inside the loader; an empty segmentation drops the
    key from one instance, and the mask head then fails on the batch that mixes it with others.
    """
    categories = {c.get("id") for c in data["categories"] if isinstance(c, dict)}
    images = {img.get("id") for img in data["images"] if isinstance(img, dict)}
    for ann in data["annotations"]:
        where = f"annotation id {ann.get('id')!r} of"
        if ann.get("category_id") not in categories:
            _fail(name, f"{where} category_id {ann.get('category_id')!r}, which is not in its 'categories', in", json_file)
        if ann.get("image_id") not in images:
            _fail(name, f"{where} image_id {ann.get('image_id')!r}, which is not in its 'images', in", json_file)
        if "segmentation" in ann and not ann["segmentation"]:
            _fail(name, f"{where} an empty segmentation, in", json_file)


def check_cityscapes(name, *, image_dir, gt_dir):
    image_dir, gt_dir = Path(image_dir), Path(gt_dir)
    _need_dir(name, image_dir)
    _need_dir(name, gt_dir)
    images = sorted(image_dir.glob("*/*_leftImg8bit.png"))
    if not images:
        _fail(name, "no <city>/*_leftImg8bit.png images in", image_dir)
    for img in images:
        stem = img.name[: -len("leftImg8bit.png")]
        city_gt = gt_dir / img.parent.name
        for suffix in ("labelIds.png", "instanceIds.png", "polygons.json"):
            _need_file(name, city_gt / f"{stem}gtFine_{suffix}")
        _need_file(name, city_gt / f"{stem}gtFine_labelTrainIds.png",
                   "missing file (create the labelTrainIds with cityscapesscripts' createTrainIdLabelImgs)")
        polygons = city_gt / f"{stem}gtFine_polygons.json"
        data = _check_json_file(name, polygons)
        if not isinstance(data, dict) or "imgHeight" not in data or "imgWidth" not in data:
            _fail(name, "polygons file without imgHeight/imgWidth", polygons)
        _check_label_size(name, img, city_gt / f"{stem}gtFine_labelTrainIds.png")


def _check_label_size(name, image, label):
    """A label image must cover its image pixel for pixel; only the PNG headers are read (cheap).

    Label ids are checked where the labels are decoded anyway (benchmark.engine's sem-seg mapper):
    decoding all of Cityscapes here would add ~a minute to every run.
    """
    from PIL import Image, UnidentifiedImageError

    sizes = []
    for path in (image, label):
        try:
            with Image.open(path) as im:
                sizes.append(im.size)
        except (OSError, UnidentifiedImageError) as e:
            _fail(name, f"unreadable image ({type(e).__name__})", path)
    image_size, label_size = sizes
    if image_size != label_size:
        _fail(name, f"label image of size {label_size[0]}x{label_size[1]} for an image of size "
                    f"{image_size[0]}x{image_size[1]}:", label)


def validate_layout(task, data_root):
    """Check every train and test dataset of `task` (a Task or its name) under `data_root`."""
    if isinstance(task, str):
        from benchmark.tasks import get_task

        task = get_task(task)
    data_root = Path(os.path.expanduser(str(data_root)))
    if not data_root.is_dir():
        raise DatasetLayoutError(
            f"data root {data_root} does not exist (pass --data-root or set $DETECTRON2_DATASETS; see {DOC})")
    family = get_family(task.data_format)
    for name in task_datasets(task):
        family.validate(name, data_root)
