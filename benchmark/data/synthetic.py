"""Small synthetic datasets in the exact on-disk formats of PASCAL VOC, COCO 2017 and Cityscapes.

They let every task run end to end on a CPU (`--smoke`, tests, `make demo`) through the *same*
loaders and evaluators as the real data: after `write_synthetic("voc", root)`, `root` is a data
root for voc_2007_trainval etc. Each family's writer here (`write_voc`, `write_coco`,
`write_cityscapes`) is named by its DatasetFamily (benchmark.data.families), which also gives the
top folders it writes and its default (smoke) image size. The content is learnable: each class is
one shape in one saturated colour over a muted, noisy, textured background, so a detector's loss
falls within a few dozen iterations. Everything is seeded: the same arguments give the same files.

`sanity=True` writes the data of a learning check (benchmark.engine.sanity): only large objects,
every class of the split's images drawn in few images, and a test split that holds exact copies of
the training images and annotations (under the test split's own ids and folders), so that a model
fine-tuned on them and evaluated on the same images must score high -- unless a bug is in the way.

Writing is safe when several processes ask for the same root at once (trials, ranks, tests): the
writer takes a lock, builds the tree in a temporary folder beside its destination, renames it into
place and then drops a completion marker; a root already complete with the same parameters is
returned as it is.
"""
import contextlib
import fcntl
import json
import os
import shutil
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from benchmark.data.families import get_family, resolve
from benchmark.fileio import write_json_atomic

# Class i is drawn as shape i % 4 in colour (i % 4 + i // 4) % 5: the 20 (shape, colour) pairs are
# all different, and the first four classes differ in both shape and colour.
_SHAPES = ("rectangle", "ellipse", "triangle", "diamond")
_COLOURS = ((220, 40, 40), (40, 190, 60), (40, 80, 230), (235, 200, 30), (200, 40, 210))


def class_style(i):
    """(shape, RGB colour) of class index i (0..19)."""
    return _SHAPES[i % 4], _COLOURS[(i % 4 + i // 4) % 5]


# Real class names of each dataset. VOC: all 20 classes, each in every split when the split has
# >= 20 objects (its evaluator averages over all 20, so an absent class would score 0).
# COCO and Cityscapes: a few classes only (their evaluators skip classes without ground truth).
from detectron2.data.datasets.pascal_voc import CLASS_NAMES as VOC_CLASSES  # noqa: E402

COCO_CATEGORY_IDS = (3, 1, 18, 44)  # car, person, dog, bottle: their real COCO ids
# Cityscapes: background regions ("stuff") and objects, by their cityscapesscripts names.
CITYSCAPES_STUFF = ("sky", "building", "vegetation", "sidewalk", "road")
CITYSCAPES_THINGS = ("car", "person", "traffic sign", "bicycle")

_SEED_CODE = {"voc": 1, "coco": 2, "cityscapes": 3, "imagenet": 4}


# ----------------------------------------------------------------------------- drawing

def _rng(seed, fmt, split, index):
    return np.random.default_rng([seed, _SEED_CODE[fmt], split, index])


def _texture(rng, h, w, base, amplitude=40.0):
    """A muted texture: `base` colour, a random low-frequency wave and per-pixel noise."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    fy, fx = rng.uniform(0.03, 0.25, size=2)
    phase = rng.uniform(0, 2 * np.pi)
    wave = np.sin(fy * yy + fx * xx + phase)[..., None] * (amplitude / 2)
    noise = rng.normal(0, amplitude / 4, size=(h, w, 3))
    return np.asarray(base, np.float32) + wave + noise


def _shape_polygon(shape, x0, y0, x1, y1):
    """Vertices (x, y) of `shape` inscribed in the box [x0, x1] x [y0, y1]; extents touch the box."""
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    if shape == "rectangle":
        pts = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
    elif shape == "triangle":
        pts = [(cx, y0), (x1, y1), (x0, y1)]
    elif shape == "diamond":
        pts = [(cx, y0), (x1, cy), (cx, y1), (x0, cy)]
    elif shape == "ellipse":
        t = np.linspace(0, 2 * np.pi, 24, endpoint=False)  # a multiple of 4: touches all 4 sides
        pts = list(zip(cx + (x1 - x0) / 2 * np.cos(t), cy + (y1 - y0) / 2 * np.sin(t)))
    else:
        raise ValueError(shape)
    return [(round(float(x), 2), round(float(y), 2)) for x, y in pts]


def _random_classes(rng, num_classes, max_objects=4):
    return [int(c) for c in rng.integers(num_classes, size=int(rng.integers(1, max_objects + 1)))]


def _place_objects(rng, h, w, classes, large=False):
    """Non-overlapping integer boxes (x0, y0, x1, y1), one per class in `classes`, small to large.

    Sizes are log-uniform up to a limit that shrinks with the number of objects and on each failed
    try, so that crowded images still fit every object. `large`: from half that limit only (no
    object smaller than half the largest that fits), for the learning checks.
    """
    objects = []
    largest = 0.8 * min(h, w) / max(1.0, np.sqrt(len(classes) / 2))
    for cls in classes:
        for attempt in range(60):
            top = max(12.0, largest * 0.93 ** attempt)
            smallest = max(10.0, top / 2) if large else 10.0
            side = float(np.exp(rng.uniform(np.log(smallest), np.log(top))))
            bw = int(np.clip(side * rng.uniform(0.7, 1.4), 8, w - 4))
            bh = int(np.clip(side * rng.uniform(0.7, 1.4), 8, h - 4))
            x0 = int(rng.integers(1, w - bw - 1))
            y0 = int(rng.integers(1, h - bh - 1))
            box = (x0, y0, x0 + bw, y0 + bh)
            if all(box[2] + 2 < o[0] or o[2] + 2 < box[0] or box[3] + 2 < o[1] or o[3] + 2 < box[1]
                   for _, o in objects):
                objects.append((int(cls), box))
                break
    return objects


def _draw_objects(rng, img, objects):
    """Paint each object's polygon in its class colour (with a little noise) onto `img` (HxWx3)."""
    h, w = img.shape[:2]
    polys = []
    for cls, box in objects:
        shape, colour = class_style(cls)
        poly = _shape_polygon(shape, *box)
        mask = Image.new("L", (w, h), 0)
        ImageDraw.Draw(mask).polygon(poly, fill=1)
        m = np.asarray(mask, bool)
        img[m] = np.asarray(colour, np.float32) + rng.normal(0, 8, size=(int(m.sum()), 3))
        polys.append(poly)
    return polys


def _detection_image(rng, h, w, classes, large=False):
    """A textured background with non-overlapping objects: (uint8 image, [(cls, box, polygon)])."""
    img = _texture(rng, h, w, rng.uniform(90, 160, size=3))
    objects = _place_objects(rng, h, w, classes, large)
    polys = _draw_objects(rng, img, objects)
    img = np.clip(img, 0, 255).astype(np.uint8)
    return img, [(cls, box, poly) for (cls, box), poly in zip(objects, polys)]


# ----------------------------------------------------------------------------- VOC

def _covering_classes(rng, num_images, num_classes, max_objects=8):
    """Per image, the classes to draw: shuffled rounds of all classes, so that a split with
    enough images (>= num_classes / max_objects) holds every class at least once."""
    need = -(-num_classes // num_images)  # objects per image for every class to appear
    stream = []
    per_image = []
    for _ in range(num_images):
        k = min(max_objects, max(int(rng.integers(1, 5)), need))
        while len(stream) < k:
            stream.extend(int(c) for c in rng.permutation(num_classes))
        per_image.append(stream[:k])
        del stream[:k]
    return per_image


def _voc_xml(folder, filename, h, w, objects):
    """An annotation as real VOC writes it (1-based inclusive pixel boxes, pose/truncated/difficult)."""
    ann = ET.Element("annotation")
    ET.SubElement(ann, "folder").text = folder
    ET.SubElement(ann, "filename").text = filename
    source = ET.SubElement(ann, "source")
    ET.SubElement(source, "database").text = "The VOC2007 Database (synthetic)"
    size = ET.SubElement(ann, "size")
    for tag, val in (("width", w), ("height", h), ("depth", 3)):
        ET.SubElement(size, tag).text = str(val)
    ET.SubElement(ann, "segmented").text = "0"
    for cls, (x0, y0, x1, y1), _poly in objects:
        obj = ET.SubElement(ann, "object")
        ET.SubElement(obj, "name").text = VOC_CLASSES[cls]
        ET.SubElement(obj, "pose").text = "Unspecified"
        ET.SubElement(obj, "truncated").text = "0"
        ET.SubElement(obj, "difficult").text = "0"
        bnd = ET.SubElement(obj, "bndbox")
        # detectron2's loader subtracts 1 from xmin/ymin: box [x0, x1] is written as x0+1 .. x1.
        for tag, val in (("xmin", x0 + 1), ("ymin", y0 + 1), ("xmax", x1), ("ymax", y1)):
            ET.SubElement(bnd, tag).text = str(val)
    ET.indent(ann)
    return ET.tostring(ann, encoding="unicode") + "\n"


def write_voc(out, p):
    h, w = p["image_size"]
    sanity = p.get("sanity", False)
    years = (("VOC2007", 0, {"trainval": p["num_train"], "test": p["num_test"]}),
             ("VOC2012", 1, {"trainval": p["num_train"]}))
    for year_dir, code, splits in years:
        d = out / year_dir
        for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
            (d / sub).mkdir(parents=True)
        ids, offset, drawn = {}, 0, []
        for split_code, (split, n) in enumerate(splits.items()):
            ids[split] = []
            classes = _covering_classes(_rng(p["seed"], "voc", 10 * code + split_code, 10**6), n,
                                        len(VOC_CLASSES))
            copy = sanity and split == "test"  # the learning check's test split: the trainval images again
            for i in range(n):
                # ids as in VOC: 6 digits in VOC2007 (test continues the numbering), YYYY_NNNNNN later
                fileid = f"{offset + i + 1:06d}" if code == 0 else f"2012_{offset + i + 1:06d}"
                if copy:
                    source, objects = drawn[i]
                    shutil.copyfile(d / "JPEGImages" / f"{source}.jpg", d / "JPEGImages" / f"{fileid}.jpg")
                else:
                    rng = _rng(p["seed"], "voc", 10 * code + split_code, i)
                    img, objects = _detection_image(rng, h, w, classes[i], large=sanity)
                    Image.fromarray(img).save(d / "JPEGImages" / f"{fileid}.jpg", quality=95)
                    drawn.append((fileid, objects))
                (d / "Annotations" / f"{fileid}.xml").write_text(
                    _voc_xml(year_dir, f"{fileid}.jpg", h, w, objects))
                ids[split].append(fileid)
            offset += n
        if "trainval" in ids and len(ids["trainval"]) >= 4:  # real VOC ships train/val too: halves
            tv = ids["trainval"]
            ids["train"], ids["val"] = tv[: (len(tv) + 1) // 2], tv[(len(tv) + 1) // 2:]
        for split, lst in ids.items():
            (d / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(f"{x}\n" for x in lst))


# ----------------------------------------------------------------------------- COCO

def coco_categories():
    """The 80 COCO thing categories with their real ids and names (detectron2's table)."""
    from detectron2.data.datasets.builtin_meta import COCO_CATEGORIES

    return [{"id": c["id"], "name": c["name"]} for c in COCO_CATEGORIES if c["isthing"]]


def write_coco(out, p):
    import pycocotools.mask as mask_util

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
            if sanity and split_code == 1:  # the learning check's val2017: the train2017 images again
                source, objects = drawn[i]
                shutil.copyfile(source, d / split / file_name)
            else:
                rng = _rng(p["seed"], "coco", split_code, i)
                # sanity: every category in every image (4), each large
                classes = ([int(c) for c in rng.permutation(len(COCO_CATEGORY_IDS))] if sanity
                           else _random_classes(rng, len(COCO_CATEGORY_IDS)))
                img, objects = _detection_image(rng, h, w, classes, large=sanity)
                Image.fromarray(img).save(d / split / file_name, quality=95)
                drawn.append((d / split / file_name, objects))
            images.append({"id": image_id, "file_name": file_name, "height": h, "width": w,
                           "license": 1})
            for cls, _box, poly in objects:
                flat = [c for xy in poly for c in xy]
                xs, ys = flat[0::2], flat[1::2]
                rle = mask_util.merge(mask_util.frPyObjects([flat], h, w))
                anns.append({
                    "id": ann_id, "image_id": image_id, "category_id": COCO_CATEGORY_IDS[cls],
                    "segmentation": [flat], "area": float(mask_util.area(rle)),
                    "bbox": [min(xs), min(ys), round(max(xs) - min(xs), 2), round(max(ys) - min(ys), 2)],
                    "iscrowd": 0,
                })
                ann_id += 1
        dataset = {
            "info": {"description": "synthetic COCO-format dataset (benchmark.data.synthetic)",
                     "version": "1.0", "year": 2017},
            "licenses": [{"id": 1, "name": "synthetic", "url": ""}],
            "images": images, "annotations": anns, "categories": coco_categories(),
        }
        (d / "annotations" / f"instances_{split[:-4]}2017.json").write_text(json.dumps(dataset))


# ----------------------------------------------------------------------------- Cityscapes

_CITIES = {"train": ("aachen", "bochum"), "val": ("frankfurt",)}


def _cityscapes_polygons(rng, h, w, sanity=False):
    """Polygons as in `*_gtFine_polygons.json`: stuff bands covering the image, then objects."""
    sky = int(h * rng.uniform(0.2, 0.35))
    horizon = int(h * rng.uniform(0.5, 0.65))
    walk = horizon + int((h - horizon) * rng.uniform(0.2, 0.4))
    trees = int(w * rng.uniform(0.2, 0.4))
    x_tree = int(rng.integers(0, w - trees))
    bands = {
        "sky": [(0, 0), (w, 0), (w, sky), (0, sky)],
        "building": [(0, sky), (w, sky), (w, horizon), (0, horizon)],
        "vegetation": [(x_tree, sky - 6), (x_tree + trees, sky - 6),
                       (x_tree + trees, horizon), (x_tree, horizon)],
        "sidewalk": [(0, horizon), (w, horizon), (w, walk), (0, walk)],
        "road": [(0, walk), (w, walk), (w, h), (0, h)],
    }
    objects = [{"label": k, "polygon": [list(xy) for xy in v]} for k, v in bands.items()]
    things = []
    # sanity: every object class in every image, each large
    classes = ([int(c) for c in rng.permutation(len(CITYSCAPES_THINGS))] if sanity
               else _random_classes(rng, len(CITYSCAPES_THINGS)))
    for cls, box in _place_objects(rng, h, w, classes, large=sanity):
        poly = _shape_polygon(class_style(cls)[0], *box)
        objects.append({"label": CITYSCAPES_THINGS[cls], "polygon": [list(xy) for xy in poly]})
        things.append(cls)
    return {"imgHeight": h, "imgWidth": w, "objects": objects}, things


def write_cityscapes(out, p):
    # cityscapesscripts' own rasterisers turn the polygons into the label images, exactly as
    # `createTrainIdLabelImgs` does for the real dataset.
    from cityscapesscripts.helpers.annotation import Annotation
    from cityscapesscripts.helpers.labels import name2label
    from cityscapesscripts.preparation.json2instanceImg import createInstanceImage
    from cityscapesscripts.preparation.json2labelImg import createLabelImage

    h, w = p["image_size"]
    sanity = p.get("sanity", False)
    d = out / "cityscapes"
    colour = {name: np.asarray(name2label[name].color, np.float32) * 0.8 + 20
              for name in CITYSCAPES_STUFF}
    for split_code, (split, n) in enumerate((("train", p["num_train"]), ("val", p["num_test"]))):
        cities = _CITIES[split]
        for i in range(n):
            city = cities[i % len(cities)]
            img_dir, gt_dir = d / "leftImg8bit" / split / city, d / "gtFine" / split / city
            img_dir.mkdir(parents=True, exist_ok=True)
            gt_dir.mkdir(parents=True, exist_ok=True)
            stem = f"{city}_{i:06d}_000019"
            if sanity and split == "val":  # the learning check's val: the train images and labels again
                src_city = _CITIES["train"][i % len(_CITIES["train"])]
                src = f"{src_city}_{i:06d}_000019"
                src_img, src_gt = d / "leftImg8bit" / "train" / src_city, d / "gtFine" / "train" / src_city
                shutil.copyfile(src_img / f"{src}_leftImg8bit.png", img_dir / f"{stem}_leftImg8bit.png")
                for f in sorted(src_gt.glob(f"{src}_gtFine_*")):
                    shutil.copyfile(f, gt_dir / f.name.replace(src, stem))
                continue
            rng = _rng(p["seed"], "cityscapes", split_code, i)
            polygons, things = _cityscapes_polygons(rng, h, w, sanity)
            json_path = gt_dir / f"{stem}_gtFine_polygons.json"
            json_path.write_text(json.dumps(polygons, indent=1))
            ann = Annotation()
            ann.fromJsonFile(str(json_path))
            label_ids = createLabelImage(ann, "ids")
            label_ids.save(gt_dir / f"{stem}_gtFine_labelIds.png")
            createLabelImage(ann, "trainIds").save(gt_dir / f"{stem}_gtFine_labelTrainIds.png")
            # 16-bit, as the real files (ids reach 33xxx); Pillow cannot write its 32-bit mode as PNG
            instance_ids = np.asarray(createInstanceImage(ann, "ids"), np.uint16)
            Image.fromarray(instance_ids).save(gt_dir / f"{stem}_gtFine_instanceIds.png")
            createLabelImage(ann, "color").save(gt_dir / f"{stem}_gtFine_color.png")
            # The photo: each stuff region a texture of its own colour, then the objects on top,
            # painted with the same polygons so that image and labels agree pixel for pixel.
            ids = np.asarray(label_ids)
            img = np.full((h, w, 3), 100.0, np.float32)
            for name in CITYSCAPES_STUFF:
                m = ids == name2label[name].id
                img[m] = _texture(rng, h, w, colour[name], amplitude=30)[m]
            for obj, cls in zip(polygons["objects"][len(CITYSCAPES_STUFF):], things):
                m = ids == name2label[obj["label"]].id
                img[m] = np.asarray(class_style(cls)[1], np.float32) + rng.normal(0, 8, (int(m.sum()), 3))
            Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(
                img_dir / f"{stem}_leftImg8bit.png")


# ----------------------------------------------------------------------------- ImageNet (ImageFolder)

IMAGENET_MAX_CLASSES = 4


def imagenet_classes(num_test):
    """The synthetic class folders (WordNet-id-like names): min(4, num_test) of them, so that every
    class has a validation image. Class i is a texture around colour i of the VOC palette: the
    classes differ by colour, which a linear layer on any reasonable features separates."""
    return [f"n{90000000 + i:08d}" for i in range(min(IMAGENET_MAX_CLASSES, num_test))]


def write_imagenet(out, p):
    """imagenet/{train,val}/<wnid>/*.png: num_train / num_test images in all, dealt round the classes.
    PNG (lossless) so that the colours are exact; ImageFolder takes any of its image extensions."""
    h, w = p["image_size"]
    classes = imagenet_classes(p["num_test"])
    drawn = []
    for split_code, (split, n) in enumerate((("train", p["num_train"]), ("val", p["num_test"]))):
        for c in classes:
            (out / "imagenet" / split / c).mkdir(parents=True)
        for i in range(n):
            k = i % len(classes)
            path = out / "imagenet" / split / classes[k] / f"{classes[k]}_{i:05d}.png"
            if p.get("sanity") and split == "val":  # the learning check's val split: the training images again
                shutil.copyfile(drawn[i], path)
                continue
            rng = _rng(p["seed"], "imagenet", split_code, i)
            colour = np.asarray(_COLOURS[k % len(_COLOURS)], np.float32) * rng.uniform(0.8, 1.0)
            Image.fromarray(np.clip(_texture(rng, h, w, colour), 0, 255).astype(np.uint8)).save(path)
            drawn.append(path)


# ----------------------------------------------------------------------------- safe writing

_OWN_MARK = ".synthetic"  # inside each top folder we wrote: tells it apart from a real dataset


@contextlib.contextmanager
def _locked(path):
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def write_synthetic(data_format, root, *, num_train=8, num_test=4, image_size=None, seed=0, sanity=False) -> Path:
    """Write a synthetic `data_format` dataset ("voc", "coco", "cityscapes", "imagenet") under `root`; return `root`.

    The trees are those of the real datasets (see datasets.md), so `register_datasets(task, root)`
    resolves the protocol dataset names to them. `num_train` images go to each training split
    (VOC2007 and VOC2012 trainval, COCO train2017, Cityscapes train), `num_test` to the test split
    (VOC2007 test, COCO val2017, Cityscapes val; ImageNet: train and val in all, dealt round its
    min(4, num_test) classes); images are `image_size` = (height, width),
    by default the family's smoke image size (128x160; Cityscapes 128x256). `sanity`: the data of
    a learning check (module docstring): large objects, and the test split a copy of the training
    split (so `num_test` must equal `num_train`).
    """
    family = get_family(data_format)
    data_format = family.name
    if image_size is None:
        image_size = family.smoke_image_size
    h, w = (int(s) for s in image_size)
    if h < 32 or w < 32 or num_train < 2 or num_test < 2:
        # 2: detectron2's VOC loader cannot read a one-line image list (np.loadtxt gives a 0-d array)
        raise ValueError("synthetic datasets need images of at least 32x32 and >= 2 images per split")
    if sanity and num_test != num_train:
        raise ValueError("a learning check's test split copies its training split: num_test must equal num_train")
    params = {"format": data_format, "num_train": int(num_train), "num_test": int(num_test),
              "image_size": [h, w], "seed": int(seed)}
    if sanity:  # only then: the markers of the other datasets stay as they were
        params["sanity"] = True
    write, tops = resolve(family.synthesize_with), family.tops
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    marker = root / f".synthetic_{data_format}.json"
    if marker.exists() and json.loads(marker.read_text()) == params:
        return root  # complete (the marker is written last, atomically): no lock needed, even read-only
    with _locked(root / ".synthetic.lock"):
        if marker.exists():
            recorded = json.loads(marker.read_text())
            if recorded == params:
                return root
            raise ValueError(f"{root} already holds a synthetic {data_format} dataset written with "
                             f"{recorded}, not {params}; choose another folder")
        for top in tops:
            if (root / top).exists():
                if not (root / top / _OWN_MARK).exists():
                    raise FileExistsError(f"{root / top} exists and is not a synthetic dataset; "
                                          "refusing to write over it")
                shutil.rmtree(root / top)  # left by a writer that died before its marker
        tmp = Path(tempfile.mkdtemp(prefix=f".synthetic-{data_format}-", dir=root))
        try:
            write(tmp, params)
            for top in tops:
                (tmp / top / _OWN_MARK).write_text(json.dumps(params) + "\n")
                os.rename(tmp / top, root / top)
            write_json_atomic(marker, params)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return root
