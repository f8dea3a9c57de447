"""COCO 2017 instances: layout under a data root, registration, layout check, synthetic writer, evaluator.

Evaluator: detectron2's `COCOEvaluator` for bbox and segm. Which COCOeval scores it is chosen
through the evaluator's own `use_fast_impl` argument (benchmark.env.coco_eval_backend):
pycocotools (the official implementation) by default, detectron2's compiled fast evaluation
(same numbers, faster) with `BENCHMARK_COCO_EVAL=detectron2` where the compiled ops are
installed. It reads the dataset's metadata (json_file), which registration sets as detectron2
does for its builtin names. detectron2 is imported inside the functions only.
"""
import json
import math
import os
import shutil
from pathlib import Path

from benchmark.data import checks
from benchmark.data.checks import check_image_complete, check_json_file, fail, need_dir, need_file
from benchmark.data.family import DatasetFamily, frozen_layouts
from benchmark.data.synthetic import test_split_copies_training

SEED_CODE = 2  # of the synthetic images (benchmark.data.drawing.rng)
# How far (pixels) a box may reach past its image's right or bottom edge: COCO's float boxes round,
# VOC's check allows none; a box beyond this is a wrong annotation or a wrong image size.
BOX_SLACK = 1.0
# The synthetic data draws a few classes only (the evaluator skips classes without ground truth).
CATEGORY_IDS = (3, 1, 18, 44)  # car, person, dog, bottle: their real COCO ids


def register(registered, *, image_root, json_file):
    """As detectron2's register_all_coco does for one instances split (metadata of the 80 classes)."""
    from detectron2.data.datasets import register_coco_instances
    from detectron2.data.datasets.builtin_meta import _get_builtin_metadata

    register_coco_instances(registered, _get_builtin_metadata("coco"), json_file, image_root)


def categories():
    """The 80 COCO thing categories with their real ids and names (detectron2's table)."""
    from detectron2.data.datasets.builtin_meta import COCO_CATEGORIES

    return [{"id": c["id"], "name": c["name"]} for c in COCO_CATEGORIES if c["isthing"]]


# ----------------------------------------------------------------------------- layout check

def check(name, *, image_root, json_file):
    image_root, json_file = Path(image_root), Path(json_file)
    need_dir(name, image_root)
    need_file(name, json_file)
    if json_file.stat().st_size > checks.FULL_PARSE_MAX_BYTES:  # checked for truncation only (benchmark.data.checks)
        check_json_file(name, json_file)
        return
    data = check_json_file(name, json_file)
    if not isinstance(data, dict) or any(k not in data for k in ("images", "annotations", "categories")):
        fail(name, "COCO annotation file without images/annotations/categories in", json_file)
    _check_shape(name, json_file, data)
    _check_categories(name, json_file, data["categories"])
    for img in data["images"]:
        need_file(name, image_root / img["file_name"])
        size = check_image_complete(name, image_root / img["file_name"])
        # swapped sides pass: detectron2 compares the size after the JPEG's EXIF rotation, which the header lacks
        if (img["width"], img["height"]) not in (size, size[::-1]):
            fail(name, f"images entry {img['file_name']} says {img['width']}x{img['height']}, the image's header "
                       f"{size[0]}x{size[1]}, in", json_file)
    _check_annotations(name, json_file, data)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_shape(name, json_file, data):
    """The types detectron2's load_coco_json indexes into without a check (a KeyError or TypeError later)."""
    for key in ("images", "annotations", "categories"):
        if not isinstance(data[key], list):
            fail(name, f"'{key}' is a {type(data[key]).__name__}, not a list, in", json_file)
    ids, files = set(), set()
    for i, img in enumerate(data["images"]):
        where = f"images[{i}]"
        if not isinstance(img, dict):
            fail(name, f"{where} is {_short(img)}, not an object, in", json_file)
        file_name = img.get("file_name")
        if not isinstance(file_name, str) or not file_name:
            fail(name, f"{where} (id {img.get('id')!r}) has no file_name, in", json_file)
        if os.path.isabs(file_name) or ".." in Path(file_name).parts:
            fail(name, f"{where} file_name {file_name!r} points outside the image folder, in", json_file)
        if not _is_int(img.get("id")):
            fail(name, f"{where} ({file_name}) has no integer id, in", json_file)
        if img["id"] in ids or file_name in files:  # read, and its objects evaluated, twice
            twice = f"id {img['id']}" if img["id"] in ids else f"file_name {file_name!r}"
            fail(name, f"{where} lists {twice} a second time (an image listed twice is trained on and evaluated "
                       "twice), in", json_file)
        ids.add(img["id"])
        files.add(file_name)
        for key in ("height", "width"):
            if not _is_int(img.get(key)) or img[key] <= 0:
                fail(name, f"{where} ({file_name}) has {key} {img.get(key)!r}, not a positive integer, in", json_file)
    for i, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict):
            fail(name, f"annotations[{i}] is {_short(ann)}, not an object, in", json_file)
    for i, cat in enumerate(data["categories"]):
        if not isinstance(cat, dict) or not _is_int(cat.get("id")) or not isinstance(cat.get("name"), str):
            fail(name, f"categories[{i}] is {_short(cat)}, not an object with an integer id and a name, in", json_file)


def _short(value) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _check_categories(name, json_file, given):
    """COCO tasks train and evaluate detectron2's 80 COCO classes (its metadata maps their ids)."""
    want = {c["id"]: c["name"] for c in categories()}
    have = {c["id"]: c["name"] for c in given}
    if have == want and len(given) == len(want):
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
    fail(name, f"categories other than COCO's 80 ({len(given)} given; {detail}) in", json_file)


def rle_counts(counts):
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
    runs = rle_counts(seg["counts"])
    if runs is None:
        return "an RLE whose counts cannot be read"
    if sum(runs) != size[0] * size[1]:
        return f"an RLE of the wrong length (its runs cover {sum(runs)} pixels, its size {size[0]}x{size[1]} has {size[0] * size[1]})"
    return None


def _check_annotations(name, json_file, data):
    """What detectron2's COCO loader would trip over minutes later, or silently mis-train on.

    An unknown category id raises a KeyError inside the loader; an empty segmentation drops the
    key from one instance, and the mask head then fails on the batch that mixes it with others.
    """
    known = {c.get("id") for c in data["categories"] if isinstance(c, dict)}
    images = {img.get("id"): img for img in data["images"] if isinstance(img, dict)}
    for ann in data["annotations"]:
        where = f"annotation id {ann.get('id')!r} of"
        if ann.get("category_id") not in known:
            fail(name, f"{where} category_id {ann.get('category_id')!r}, which is not in its 'categories', in", json_file)
        if ann.get("image_id") not in images:
            fail(name, f"{where} image_id {ann.get('image_id')!r}, which is not in its 'images', in", json_file)
        box = ann.get("bbox")
        if not (isinstance(box, list) and len(box) == 4 and all(_is_number(v) for v in box)):
            fail(name, f"{where} bbox {_short(box)}, not [x, y, width, height] numbers, in", json_file)
        if min(box) < 0:
            fail(name, f"{where} bbox {box} with a negative coordinate or size, in", json_file)
        image = images[ann["image_id"]]
        if box[0] + box[2] > image["width"] + BOX_SLACK or box[1] + box[3] > image["height"] + BOX_SLACK:
            fail(name, f"{where} bbox {box} reaching outside its {image['width']}x{image['height']} image "
                       f"({image['file_name']}), in", json_file)
        if "segmentation" in ann and not ann["segmentation"]:
            fail(name, f"{where} an empty segmentation, in", json_file)
        if "segmentation" in ann:
            problem = _segmentation_problem(ann["segmentation"], images.get(ann["image_id"]))
            if problem:
                fail(name, f"{where} {problem}, in", json_file)


# ----------------------------------------------------------------------------- synthetic data

def synthesize(out, p):
    """coco/{train2017,val2017} and coco/annotations/instances_{train,val}2017.json under `out`."""
    import pycocotools.mask as mask_util
    from PIL import Image

    from benchmark.data.drawing import detection_image, random_classes, rng

    h, w = p["image_size"]
    d = out / "coco"
    (d / "annotations").mkdir(parents=True)
    sanity = p.get("sanity", False)
    ann_id, drawn = 1, []
    for split_code, (split, n) in enumerate((("train2017", p["num_train"]), ("val2017", p["num_test"]))):
        (d / split).mkdir()
        images, anns = [], []
        for i in range(n):
            image_id = split_code * 100000 + i + 1
            file_name = f"{image_id:012d}.jpg"
            if split_code == 1 and test_split_copies_training(p):
                source, objects = drawn[i]
                shutil.copyfile(source, d / split / file_name)
            else:
                r = rng(p["seed"], SEED_CODE, split_code, i)
                # sanity: every category in every image (4), each large
                classes = ([int(c) for c in r.permutation(len(CATEGORY_IDS))] if sanity
                           else random_classes(r, len(CATEGORY_IDS)))
                img, objects = detection_image(r, h, w, classes, large=sanity)
                Image.fromarray(img).save(d / split / file_name, quality=95)
                drawn.append((d / split / file_name, objects))
            images.append({"id": image_id, "file_name": file_name, "height": h, "width": w,
                           "license": 1})
            for cls, _box, poly in objects:
                flat = [c for xy in poly for c in xy]
                xs, ys = flat[0::2], flat[1::2]
                rle = mask_util.merge(mask_util.frPyObjects([flat], h, w))
                anns.append({
                    "id": ann_id, "image_id": image_id, "category_id": CATEGORY_IDS[cls],
                    "segmentation": [flat], "area": float(mask_util.area(rle)),
                    "bbox": [min(xs), min(ys), round(max(xs) - min(xs), 2), round(max(ys) - min(ys), 2)],
                    "iscrowd": 0,
                })
                ann_id += 1
        dataset = {
            "info": {"description": "synthetic COCO-format dataset (benchmark.data.synthetic)",
                     "version": "1.0", "year": 2017},
            "licenses": [{"id": 1, "name": "synthetic", "url": ""}],
            "images": images, "annotations": anns, "categories": categories(),
        }
        (d / "annotations" / f"instances_{split[:-4]}2017.json").write_text(json.dumps(dataset))


# ----------------------------------------------------------------------------- evaluator

def evaluator(dataset_name, output_dir=None, distributed=True):
    from detectron2.evaluation import COCOEvaluator

    from benchmark.env import coco_eval_backend

    return COCOEvaluator(dataset_name, tasks=("bbox", "segm"), distributed=distributed, output_dir=output_dir,
                         use_fast_impl=coco_eval_backend() == "detectron2")


FAMILY = DatasetFamily(
    name="coco",
    datasets=frozen_layouts({
        f"coco_2017_{split}": {"image_root": f"coco/{split}2017",
                               "json_file": f"coco/annotations/instances_{split}2017.json"}
        for split in ("train", "val")
    }),
    tops=("coco",),
    smoke_image_size=(128, 160),
    smoke_overlay="detection.yaml",  # as VOC's: the tasks differ by their mask head only
    evaluator_type="coco",
    register_split=register,
    check=check,
    synthesize=synthesize,
    evaluator=evaluator,
)
