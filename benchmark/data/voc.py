"""PASCAL VOC (2007, 2012): layout under a data root, registration, layout check, synthetic writer, evaluator.

Evaluator: detectron2's `PascalVOCDetectionEvaluator` (11-point AP for VOC2007, as the protocol
says); it reads the dataset's metadata (dirname, year, split), which registration sets as
detectron2 sets it for its builtin names. detectron2 is imported inside the functions only.
"""
import math
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

from benchmark.data.checks import check_ids, check_image_complete, fail, need_dir, need_file
from benchmark.data.family import DatasetFamily, frozen_layouts
from benchmark.data.synthetic import test_split_copies_training

SEED_CODE = 1  # of the synthetic images (benchmark.data.drawing.rng)


def register(registered, *, dirname, split, year):
    """As detectron2's register_all_pascal_voc does for one split."""
    from detectron2.data.datasets import register_pascal_voc

    register_pascal_voc(registered, dirname, split, year)


# ----------------------------------------------------------------------------- layout check

# The split detectron2's PascalVOCDetectionEvaluator reads annotations of (its parse_rec), and the
# fields it converts with int() without a check: a value it cannot convert fails the run at evaluation,
# after training, with a reason that names no file.
EVALUATED_SPLIT = "test"
EVALUATOR_INT_FIELDS = ("truncated", "difficult")


def check(name, *, dirname, split, year):
    """What detectron2's VOC loader (every split) and, for the test split, its evaluator will read.

    Loader (load_voc_instances): size/width and size/height through int(), boxes through float(),
    class names of its table. Evaluator (parse_rec): `pose`, `truncated` and `difficult` present, the
    last two and every box coordinate through int(). The JPEG header's size must be the annotation's.
    """
    from detectron2.data.datasets.pascal_voc import CLASS_NAMES

    d = Path(dirname)
    need_dir(name, d)
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        need_dir(name, d / sub)
    split_file = d / "ImageSets" / "Main" / f"{split}.txt"
    need_file(name, split_file)
    ids = split_file.read_text().split()
    if len(ids) < 2:  # np.loadtxt in detectron2's loader turns a one-line list into a 0-d array
        fail(name, "fewer than 2 images (detectron2's VOC loader needs at least 2) in", split_file)
    check_ids(name, ids, split_file)
    evaluated = split == EVALUATED_SPLIT
    for fileid in ids:
        jpg = d / "JPEGImages" / f"{fileid}.jpg"
        need_file(name, jpg)
        image_size = check_image_complete(name, jpg)
        xml = d / "Annotations" / f"{fileid}.xml"
        need_file(name, xml)
        try:
            tree = ET.parse(xml)
        except ET.ParseError as e:
            fail(name, f"corrupt annotation ({e})", xml)
        width, height = _annotated_size(name, xml, tree)
        # swapped sides pass: an EXIF-rotated JPEG is annotated as displayed, its header holds the stored size
        if (width, height) not in (image_size, image_size[::-1]):
            fail(name, f"annotation of a {width}x{height} image for {jpg.name}, whose header says "
                       f"{image_size[0]}x{image_size[1]}, in", xml)
        for obj in tree.findall("object"):
            cls = obj.findtext("name")
            if cls not in CLASS_NAMES:
                fail(name, f"annotation with unknown class {cls!r}", xml)
            box = obj.find("bndbox")
            if box is None or any(box.find(k) is None for k in ("xmin", "ymin", "xmax", "ymax")):
                fail(name, "annotation object without a complete bndbox", xml)
            _check_box(name, xml, box, width, height)
            if evaluated:
                _check_evaluated_object(name, xml, obj, box)


def _annotated_size(name, xml, tree) -> tuple:
    """(width, height) of an annotation, as detectron2's loader reads them (int(), positive)."""
    if tree.find("./size/height") is None or tree.find("./size/width") is None:
        fail(name, "annotation without size/height and size/width", xml)
    texts = (tree.findtext("./size/width") or "").strip(), (tree.findtext("./size/height") or "").strip()
    try:
        width, height = (float(t) for t in texts)
    except ValueError:
        fail(name, "annotation whose size/width or size/height is not a number", xml)
    if not (width > 0 and height > 0 and math.isfinite(width) and math.isfinite(height)):
        fail(name, f"annotation with an image size of {width:g}x{height:g} (must be positive) in", xml)
    if not all(_is_int_text(t) for t in texts):
        fail(name, f"annotation with an image size of {texts[0]}x{texts[1]}: detectron2's loader reads whole "
                   "numbers (int()), in", xml)
    return int(texts[0]), int(texts[1])


def _is_int_text(text) -> bool:
    """Whether int(text) succeeds, as the evaluator and loader call it (no float text such as '12.0')."""
    try:
        int(text)
    except (TypeError, ValueError):
        return False
    return True


def _check_evaluated_object(name, xml, obj, box):
    """An object of the test split as detectron2's evaluator (parse_rec) reads it."""
    if obj.find("pose") is None:
        fail(name, "test annotation object without <pose> (detectron2's VOC evaluator reads it), in", xml)
    for field in EVALUATOR_INT_FIELDS:
        if not _is_int_text(obj.findtext(field)):
            value = obj.findtext(field)
            what = f"<{field}> {value.strip()!r}" if value is not None else f"no <{field}>"
            fail(name, f"test annotation object with {what}: detectron2's VOC evaluator reads a whole number "
                       "(int()), in", xml)
    for key in ("xmin", "ymin", "xmax", "ymax"):
        if not _is_int_text(box.findtext(key)):
            fail(name, f"test annotation box with {key} {box.findtext(key).strip()!r}: detectron2's VOC evaluator "
                       "reads whole pixel numbers (int()), in", xml)


def _check_box(name, xml, box, width, height):
    """VOC boxes are 1-based pixel indices inside the image; detectron2 would train on anything.

    A box outside the image or inverted means the annotation (or its size) is wrong, and would
    silently teach the model garbage or crash box sampling later; 0 is tolerated as a start.
    """
    try:
        x0, y0, x1, y1 = (float(box.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
    except ValueError:
        fail(name, "annotation with a bndbox coordinate that is not a number in", xml)
    if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
        fail(name, f"annotation with a box ({x0:g}, {y0:g}, {x1:g}, {y1:g}) outside the {width:g}x{height:g} image "
                   "or empty, in", xml)


# ----------------------------------------------------------------------------- synthetic data

def classes() -> tuple:
    """The 20 VOC class names (detectron2's table): all of them drawn, each in every split when the
    split has >= 20 objects (the evaluator averages over all 20, so an absent class would score 0)."""
    from detectron2.data.datasets.pascal_voc import CLASS_NAMES

    return tuple(CLASS_NAMES)


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


def annotation_xml(folder, filename, h, w, objects):
    """An annotation as real VOC writes it (1-based inclusive pixel boxes, pose/truncated/difficult)."""
    names = classes()
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
        ET.SubElement(obj, "name").text = names[cls]
        ET.SubElement(obj, "pose").text = "Unspecified"
        ET.SubElement(obj, "truncated").text = "0"
        ET.SubElement(obj, "difficult").text = "0"
        bnd = ET.SubElement(obj, "bndbox")
        # detectron2's loader subtracts 1 from xmin/ymin: box [x0, x1] is written as x0+1 .. x1.
        for tag, val in (("xmin", x0 + 1), ("ymin", y0 + 1), ("xmax", x1), ("ymax", y1)):
            ET.SubElement(bnd, tag).text = str(val)
    ET.indent(ann)
    return ET.tostring(ann, encoding="unicode") + "\n"


def synthesize(out, p):
    """VOC2007 (trainval, test; train/val its halves) and VOC2012 (trainval, train, val) under `out`."""
    from PIL import Image

    from benchmark.data.drawing import detection_image, rng

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
            per_image = _covering_classes(rng(p["seed"], SEED_CODE, 10 * code + split_code, 10**6), n,
                                          len(classes()))
            copy = split == "test" and test_split_copies_training(p)
            for i in range(n):
                # ids as in VOC: 6 digits in VOC2007 (test continues the numbering), YYYY_NNNNNN later
                fileid = f"{offset + i + 1:06d}" if code == 0 else f"2012_{offset + i + 1:06d}"
                if copy:
                    source, objects = drawn[i]
                    shutil.copyfile(d / "JPEGImages" / f"{source}.jpg", d / "JPEGImages" / f"{fileid}.jpg")
                else:
                    img, objects = detection_image(rng(p["seed"], SEED_CODE, 10 * code + split_code, i), h, w,
                                                   per_image[i], large=sanity)
                    Image.fromarray(img).save(d / "JPEGImages" / f"{fileid}.jpg", quality=95)
                    drawn.append((fileid, objects))
                (d / "Annotations" / f"{fileid}.xml").write_text(
                    annotation_xml(year_dir, f"{fileid}.jpg", h, w, objects))
                ids[split].append(fileid)
            offset += n
        if "trainval" in ids and len(ids["trainval"]) >= 4:  # real VOC ships train/val too: halves
            tv = ids["trainval"]
            ids["train"], ids["val"] = tv[: (len(tv) + 1) // 2], tv[(len(tv) + 1) // 2:]
        for split, lst in ids.items():
            (d / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(f"{x}\n" for x in lst))


# ----------------------------------------------------------------------------- evaluator

def evaluator(dataset_name, output_dir=None, distributed=True):
    # It gathers over all ranks itself (comm.gather); one process is the 1-rank case.
    from detectron2.evaluation import PascalVOCDetectionEvaluator

    return PascalVOCDetectionEvaluator(dataset_name)


FAMILY = DatasetFamily(
    name="voc",
    datasets=frozen_layouts({
        f"voc_{year}_{split}": {"dirname": f"VOC{year}", "split": split, "year": year}
        for year, splits in ((2007, ("trainval", "train", "val", "test")), (2012, ("trainval", "train", "val")))
        for split in splits
    }),
    tops=("VOC2007", "VOC2012"),
    smoke_image_size=(128, 160),
    smoke_overlay="detection.yaml",
    evaluator_type="pascal_voc",
    register_split=register,
    check=check,
    synthesize=synthesize,
    evaluator=evaluator,
    difficult_is_ignored=True,
)
