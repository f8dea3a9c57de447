"""Cityscapes fine semantic segmentation: layout under a data root, registration, layout check,
synthetic writer, evaluator.

Evaluator: detectron2's `CityscapesSemSegEvaluator` (cityscapesscripts), as
`CityscapesMIoUEvaluator` that also reports "mIoU" (benchmark.data.evaluators). It reads the
dataset's metadata (gt_dir), which registration sets as detectron2 does for its builtin names.
detectron2 is imported inside the functions only.
"""
import json
import shutil
from pathlib import Path

from benchmark.data.checks import check_image_complete, check_json_file, fail, image_header_size, need_dir, need_file
from benchmark.data.family import DatasetFamily, frozen_layouts
from benchmark.data.synthetic import test_split_copies_training

SEED_CODE = 3  # of the synthetic images (benchmark.data.drawing.rng)
# Synthetic classes: background regions ("stuff") and objects, by their cityscapesscripts names
# (a few only: the evaluator skips classes without ground truth).
STUFF = ("sky", "building", "vegetation", "sidewalk", "road")
THINGS = ("car", "person", "traffic sign", "bicycle")
_CITIES = {"train": ("aachen", "bochum"), "val": ("frankfurt",)}


def register(registered, *, image_dir, gt_dir):
    """As detectron2's register_all_cityscapes does for one semantic-segmentation split."""
    from detectron2.data import DatasetCatalog, MetadataCatalog
    from detectron2.data.datasets.builtin_meta import _get_builtin_metadata
    from detectron2.data.datasets.cityscapes import load_cityscapes_semantic

    DatasetCatalog.register(registered, lambda x=image_dir, y=gt_dir: load_cityscapes_semantic(x, y))
    MetadataCatalog.get(registered).set(image_dir=image_dir, gt_dir=gt_dir, ignore_label=255,
                                        **_get_builtin_metadata("cityscapes"))


# ----------------------------------------------------------------------------- layout check

def check(name, *, image_dir, gt_dir):
    image_dir, gt_dir = Path(image_dir), Path(gt_dir)
    need_dir(name, image_dir)
    need_dir(name, gt_dir)
    images = sorted(image_dir.glob("*/*_leftImg8bit.png"))
    if not images:
        fail(name, "no <city>/*_leftImg8bit.png images in", image_dir)
    for img in images:
        stem = img.name[: -len("leftImg8bit.png")]
        city_gt = gt_dir / img.parent.name
        for suffix in ("labelIds.png", "instanceIds.png", "polygons.json"):
            need_file(name, city_gt / f"{stem}gtFine_{suffix}")
        need_file(name, city_gt / f"{stem}gtFine_labelTrainIds.png",
                  "missing file (create the labelTrainIds with cityscapesscripts' createTrainIdLabelImgs)")
        polygons = city_gt / f"{stem}gtFine_polygons.json"
        data = check_json_file(name, polygons)
        if not isinstance(data, dict) or "imgHeight" not in data or "imgWidth" not in data:
            fail(name, "polygons file without imgHeight/imgWidth", polygons)
        check_image_complete(name, img)
        check_image_complete(name, city_gt / f"{stem}gtFine_labelTrainIds.png")
        _check_label_size(name, img, city_gt / f"{stem}gtFine_labelTrainIds.png")


def _check_label_size(name, image, label):
    """A label image must cover its image pixel for pixel; only the PNG headers are read (cheap).

    Label ids are checked where the labels are decoded anyway (benchmark.engine's sem-seg mapper):
    decoding all of Cityscapes here would add ~a minute to every run.
    """
    image_size, label_size = image_header_size(name, image), image_header_size(name, label)
    if image_size != label_size:
        fail(name, f"label image of size {label_size[0]}x{label_size[1]} for an image of size "
                   f"{image_size[0]}x{image_size[1]}:", label)


# ----------------------------------------------------------------------------- synthetic data

def _polygons(rng, h, w, sanity=False):
    """Polygons as in `*_gtFine_polygons.json`: stuff bands covering the image, then objects."""
    from benchmark.data.drawing import class_style, place_objects, random_classes, shape_polygon

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
    classes = ([int(c) for c in rng.permutation(len(THINGS))] if sanity
               else random_classes(rng, len(THINGS)))
    for cls, box in place_objects(rng, h, w, classes, large=sanity):
        poly = shape_polygon(class_style(cls)[0], *box)
        objects.append({"label": THINGS[cls], "polygon": [list(xy) for xy in poly]})
        things.append(cls)
    return {"imgHeight": h, "imgWidth": w, "objects": objects}, things


def synthesize(out, p):
    """cityscapes/{leftImg8bit,gtFine}/{train,val}/<city>/ under `out`, with every label file the loader reads."""
    # cityscapesscripts' own rasterisers turn the polygons into the label images, exactly as
    # `createTrainIdLabelImgs` does for the real dataset.
    import numpy as np
    from cityscapesscripts.helpers.annotation import Annotation
    from cityscapesscripts.helpers.labels import name2label
    from cityscapesscripts.preparation.json2instanceImg import createInstanceImage
    from cityscapesscripts.preparation.json2labelImg import createLabelImage
    from PIL import Image

    from benchmark.data.drawing import class_style, rng, texture

    h, w = p["image_size"]
    sanity = p.get("sanity", False)
    d = out / "cityscapes"
    colour = {name: np.asarray(name2label[name].color, np.float32) * 0.8 + 20 for name in STUFF}
    for split_code, (split, n) in enumerate((("train", p["num_train"]), ("val", p["num_test"]))):
        cities = _CITIES[split]
        for i in range(n):
            city = cities[i % len(cities)]
            img_dir, gt_dir = d / "leftImg8bit" / split / city, d / "gtFine" / split / city
            img_dir.mkdir(parents=True, exist_ok=True)
            gt_dir.mkdir(parents=True, exist_ok=True)
            stem = f"{city}_{i:06d}_000019"
            if split == "val" and test_split_copies_training(p):
                src_city = _CITIES["train"][i % len(_CITIES["train"])]
                src = f"{src_city}_{i:06d}_000019"
                src_img, src_gt = d / "leftImg8bit" / "train" / src_city, d / "gtFine" / "train" / src_city
                shutil.copyfile(src_img / f"{src}_leftImg8bit.png", img_dir / f"{stem}_leftImg8bit.png")
                for f in sorted(src_gt.glob(f"{src}_gtFine_*")):
                    shutil.copyfile(f, gt_dir / f.name.replace(src, stem))
                continue
            r = rng(p["seed"], SEED_CODE, split_code, i)
            polygons, things = _polygons(r, h, w, sanity)
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
            for name in STUFF:
                m = ids == name2label[name].id
                img[m] = texture(r, h, w, colour[name], amplitude=30)[m]
            for obj, cls in zip(polygons["objects"][len(STUFF):], things):
                m = ids == name2label[obj["label"]].id
                img[m] = np.asarray(class_style(cls)[1], np.float32) + r.normal(0, 8, (int(m.sum()), 3))
            Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(
                img_dir / f"{stem}_leftImg8bit.png")


# ----------------------------------------------------------------------------- evaluator

def evaluator(dataset_name, output_dir=None, distributed=True):
    # Every rank writes its predictions into one shared temporary folder (one machine only); rank 0
    # scores them with cityscapesscripts.
    from benchmark.data.evaluators import CityscapesMIoUEvaluator

    return CityscapesMIoUEvaluator(dataset_name)


FAMILY = DatasetFamily(
    name="cityscapes",
    datasets=frozen_layouts({
        f"cityscapes_fine_sem_seg_{split}": {"image_dir": f"cityscapes/leftImg8bit/{split}",
                                             "gt_dir": f"cityscapes/gtFine/{split}"}
        for split in ("train", "val")
    }),
    tops=("cityscapes",),
    # The 1:2 aspect of Cityscapes, so that smoke test features divide by the ASPP pool kernel.
    smoke_image_size=(128, 256),
    smoke_overlay="cityscapes.yaml",
    evaluator_type="cityscapes_sem_seg",
    register_split=register,
    check=check,
    synthesize=synthesize,
    evaluator=evaluator,
)
