"""Check a data root before any compute is spent: every folder and file a task reads must exist.

detectron2's loaders fail late and obscurely (an `assert` deep in a dataloader worker, minutes
into a run, or a `ValueError: 'cat' is not in list`). `validate_layout(task, root)` walks what the
loaders will read and raises one `DatasetLayoutError` naming the first missing or corrupt path and
pointing to datasets.md, where the expected trees are written out. Each family's check here is
named by its DatasetFamily (benchmark.data.families) and gets the dataset's absolute layout.

RULE: what is cheap to check is checked here, before compute: every file exists; every image is
complete (its JPEG/PNG end marker is there: a truncated file fails here naming it, not in a loader
worker without a name); every annotation file has the shape its loader expects, its boxes and
masks fit its images, and its categories are the task's (COCO: exactly detectron2's 80).
Decoding pixels (label ids) is left to the run, where they are decoded anyway.
"""
import json
import math
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


_JPEG_END, _PNG_END = b"\xff\xd9", b"IEND\xaeB`\x82"
_TAIL = 1024  # bytes read from an image's end: its end marker lies there (trailing padding tolerated)


def _check_image_complete(name, path):
    """An image file that is cut short fails here, naming it (two small reads, no decoding).

    JPEG ends with the EOI marker FFD9, which entropy-coded data never holds (0xFF is stuffed), and
    PNG with its IEND chunk; any other file must at least be an image PIL recognises.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - _TAIL))
            tail = f.read()
    except OSError as e:
        _fail(name, f"unreadable image ({e.strerror or e})", path)
    if head.startswith(b"\xff\xd8"):
        if _JPEG_END not in tail:
            _fail(name, "truncated image (its JPEG end marker is missing; copy or download the file again)", path)
    elif head.startswith(b"\x89PNG\r\n\x1a\n"):
        if _PNG_END not in tail:
            _fail(name, "truncated image (its PNG IEND chunk is missing; copy or download the file again)", path)
    else:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path):
                pass
        except (OSError, UnidentifiedImageError) as e:
            _fail(name, f"unreadable image ({type(e).__name__}: not an image PIL can read)", path)


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
        _check_image_complete(name, d / "JPEGImages" / f"{fileid}.jpg")
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
        if not (width > 0 and height > 0 and math.isfinite(width) and math.isfinite(height)):
            _fail(name, f"annotation with an image size of {width:g}x{height:g} (must be positive) in", xml)
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
    _check_coco_shape(name, json_file, data)
    _check_coco_categories(name, json_file, data["categories"])
    for img in data["images"]:
        _need_file(name, image_root / img["file_name"])
        _check_image_complete(name, image_root / img["file_name"])
    _check_coco_annotations(name, json_file, data)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_coco_shape(name, json_file, data):
    """The types detectron2's load_coco_json indexes into without a check (a KeyError or TypeError later)."""
    for key in ("images", "annotations", "categories"):
        if not isinstance(data[key], list):
            _fail(name, f"'{key}' is a {type(data[key]).__name__}, not a list, in", json_file)
    for i, img in enumerate(data["images"]):
        where = f"images[{i}]"
        if not isinstance(img, dict):
            _fail(name, f"{where} is {_short(img)}, not an object, in", json_file)
        file_name = img.get("file_name")
        if not isinstance(file_name, str) or not file_name:
            _fail(name, f"{where} (id {img.get('id')!r}) has no file_name, in", json_file)
        if os.path.isabs(file_name) or ".." in Path(file_name).parts:
            _fail(name, f"{where} file_name {file_name!r} points outside the image folder, in", json_file)
        if not _is_int(img.get("id")):
            _fail(name, f"{where} ({file_name}) has no integer id, in", json_file)
        for key in ("height", "width"):
            if not _is_int(img.get(key)) or img[key] <= 0:
                _fail(name, f"{where} ({file_name}) has {key} {img.get(key)!r}, not a positive integer, in", json_file)
    for i, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict):
            _fail(name, f"annotations[{i}] is {_short(ann)}, not an object, in", json_file)
    for i, cat in enumerate(data["categories"]):
        if not isinstance(cat, dict) or not _is_int(cat.get("id")) or not isinstance(cat.get("name"), str):
            _fail(name, f"categories[{i}] is {_short(cat)}, not an object with an integer id and a name, in", json_file)


def _short(value) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _check_coco_categories(name, json_file, categories):
    """COCO tasks train and evaluate detectron2's 80 COCO classes (its metadata maps their ids)."""
    from detectron2.data.datasets.builtin_meta import COCO_CATEGORIES

    want = {c["id"]: c["name"] for c in COCO_CATEGORIES if c["isthing"]}
    have = {c["id"]: c["name"] for c in categories}
    if have == want and len(categories) == len(want):
        return
    extra = sorted(set(have) - set(want))
    missing = sorted(set(want) - set(have))
    renamed = sorted(i for i in set(have) & set(want) if have[i] != want[i])
    if extra:
        detail = f"id {extra[0]} ({have[extra[0]]!r}) is not one of them"
    elif renamed:
        detail = f"id {renamed[0]} is {have[renamed[0]]!r}, not {want[renamed[0]]!r}"
    elif missing:
        detail = f"{len(missing)} of them missing (id {missing[0]}, {want[missing[0]]!r})"
    else:
        detail = "a category is listed twice"
    _fail(name, f"categories other than COCO's 80 ({len(categories)} given; {detail}) in", json_file)


def _rle_counts(counts):
    """The run lengths of an RLE's counts (a list, or pycocotools' compressed string); None if malformed."""
    if isinstance(counts, list):
        return counts if all(_is_int(c) and c >= 0 for c in counts) else None
    if not isinstance(counts, str):
        return None
    out, p = [], 0
    while p < len(counts):  # pycocotools' rleFrString
        x, k, more = 0, 0, True
        while more:
            if p >= len(counts):
                return None
            c = ord(counts[p]) - 48
            if not 0 <= c < 64:
                return None
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p, k = p + 1, k + 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(out) > 2:
            x += out[-2]
        if x < 0:
            return None
        out.append(x)
    return out


def _segmentation_problem(seg, image):
    """Why an annotation's segmentation does not fit its image (None: it does)."""
    if isinstance(seg, list):
        for poly in seg:
            if not isinstance(poly, list) or not all(_is_number(v) for v in poly) or len(poly) % 2 or len(poly) < 6:
                return "a polygon that is not an even list of >= 6 numbers"
        return None
    if not isinstance(seg, dict) or "counts" not in seg or "size" not in seg:
        return f"a segmentation {_short(seg)} that is neither polygons nor an RLE {{size, counts}}"
    size = seg["size"]
    if not (isinstance(size, list) and len(size) == 2 and all(_is_int(v) for v in size)):
        return f"an RLE of size {_short(size)}, not [height, width]"
    if image is not None and size != [image.get("height"), image.get("width")]:
        return f"an RLE of size {size} on an image of {image.get('height')}x{image.get('width')}"
    runs = _rle_counts(seg["counts"])
    if runs is None:
        return "an RLE whose counts cannot be read"
    if sum(runs) != size[0] * size[1]:
        return f"an RLE of the wrong length (its runs cover {sum(runs)} pixels, its size {size[0]}x{size[1]} has {size[0] * size[1]})"
    return None


def _check_coco_annotations(name, json_file, data):
    """What detectron2's COCO loader would trip over minutes later, or silently mis-train on.

    An unknown category id raises a KeyError inside the loader; an empty segmentation drops the
    key from one instance, and the mask head then fails on the batch that mixes it with others.
    """
    categories = {c.get("id") for c in data["categories"] if isinstance(c, dict)}
    images = {img.get("id"): img for img in data["images"] if isinstance(img, dict)}
    for ann in data["annotations"]:
        where = f"annotation id {ann.get('id')!r} of"
        if ann.get("category_id") not in categories:
            _fail(name, f"{where} category_id {ann.get('category_id')!r}, which is not in its 'categories', in", json_file)
        if ann.get("image_id") not in images:
            _fail(name, f"{where} image_id {ann.get('image_id')!r}, which is not in its 'images', in", json_file)
        box = ann.get("bbox")
        if not (isinstance(box, list) and len(box) == 4 and all(_is_number(v) for v in box)):
            _fail(name, f"{where} bbox {_short(box)}, not [x, y, width, height] numbers, in", json_file)
        if min(box) < 0:
            _fail(name, f"{where} bbox {box} with a negative coordinate or size, in", json_file)
        if "segmentation" in ann and not ann["segmentation"]:
            _fail(name, f"{where} an empty segmentation, in", json_file)
        if "segmentation" in ann:
            problem = _segmentation_problem(ann["segmentation"], images.get(ann["image_id"]))
            if problem:
                _fail(name, f"{where} {problem}, in", json_file)


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
        _check_image_complete(name, img)
        _check_image_complete(name, city_gt / f"{stem}gtFine_labelTrainIds.png")
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


# ----------------------------------------------------------------------------- ImageFolder (imagenet)

# What torchvision's ImageFolder takes as an image (torchvision.datasets.folder.IMG_EXTENSIONS),
# compared case-insensitively as it does: ImageNet's files end in .JPEG.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
# Images are checked by this many threads at once: the check is two small reads per file, so on a
# network filesystem it waits on latency; 1.33M ImageNet files take minutes in one thread.
CHECK_THREADS = 16


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def imagefolder_classes(folder) -> list:
    """The class folders of an ImageFolder split, sorted (their index is the label), as torchvision's."""
    with os.scandir(folder) as it:
        return sorted(e.name for e in it if e.is_dir() and not e.name.startswith("."))


def imagefolder_files(folder) -> list:
    """[(path, class folder name)] of every image of the split, sorted by class then file name."""
    out = []
    for cls in imagefolder_classes(folder):
        with os.scandir(os.path.join(folder, cls)) as it:
            names = sorted(e.name for e in it if _is_image(e.name) and e.is_file())
        out += [(os.path.join(folder, cls, n), cls) for n in names]
    return out


def _few(names, n=3) -> str:
    names = sorted(names)
    return ", ".join(names[:n]) + (f", ... ({len(names) - n} more)" if len(names) > n else "")


def check_imagefolder(name, *, image_dir, classes_dir):
    """An ImageFolder split: class folders there, each holding images, the same classes as the
    training split (`classes_dir`), and every image complete (see `_check_image_complete`)."""
    folder = Path(image_dir)
    _need_dir(name, folder)
    classes = imagefolder_classes(folder)
    if not classes:
        loose = sum(1 for e in os.scandir(folder) if e.is_file() and _is_image(e.name))
        if loose:
            _fail(name, f"no class folders (<wnid>/) but {loose} images directly in", folder.as_posix() +
                  "; move each image into the folder of its class (datasets.md: ImageNet val, valprep.sh)")
        _fail(name, "no class folders (<wnid>/*.JPEG) in", folder)
    if Path(classes_dir) != folder:
        expected = set(imagefolder_classes(classes_dir)) if Path(classes_dir).is_dir() else set()
        missing, extra = expected - set(classes), set(classes) - expected
        if missing or extra:
            parts = ([f"{len(missing)} classes of the training split missing ({_few(missing)})"] if missing else []) + \
                    ([f"{len(extra)} classes not in the training split ({_few(extra)})"] if extra else [])
            _fail(name, f"class folders differ from {classes_dir}'s: {'; '.join(parts)}, in", folder)
    files = []
    for cls in classes:
        with os.scandir(folder / cls) as it:
            images = sorted(e.name for e in it if _is_image(e.name) and e.is_file())
        if not images:
            _fail(name, f"class folder {cls} without images ({', '.join(IMAGE_EXTENSIONS)}):", folder / cls)
        files += [folder / cls / n for n in images]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(CHECK_THREADS) as pool:
        for start in range(0, len(files), 4096):  # in chunks: the first bad file (in order) ends the check soon
            for _ in pool.map(lambda p: _check_image_complete(name, p), files[start:start + 4096]):
                pass
