"""Broken datasets under --data-root: each is refused before any compute with one line naming the
file and the problem (exit 1, no output folder, the dataset itself untouched); a Cityscapes label
with ids the model cannot learn fails the run at its first batch with a failed record naming it.
"""
import json
import re
import shutil

import numpy as np
import pytest
from badlib import count, refused
from PIL import Image

from tests.helpers import tool

run_transfer = tool("run_transfer")
TASK_OF = {"voc": "voc07", "coco": "coco", "cityscapes": "cityscapes"}


@pytest.fixture(scope="module")
def pristine(module_tmp, synthetic_checkpoint):
    """Converted weights and one pristine synthetic dataset per family, at its smoke size (copied,
    never modified)."""
    from benchmark.data import FAMILIES
    from benchmark.weights.convert import prepare_weights

    root = module_tmp
    weights = prepare_weights(synthetic_checkpoint("moco", width=8), cache_dir=root / "cache").path
    data = {fmt: family.write_synthetic(root / fmt) for fmt, family in FAMILIES.items()}
    return weights, data


def _copy(pristine, fmt, tmp_path):
    dest = tmp_path / f"data_{fmt}"
    shutil.copytree(pristine[1][fmt], dest)
    return dest


def _edit_first(pattern, replacement, path):
    text = path.read_text()
    new = re.sub(pattern, replacement, text, count=1)
    assert new != text
    path.write_text(new)


# Each case: corrupt(root) breaks one thing in a copy of the pristine dataset and returns
# (the path the error must name, the problem it must state).

def _first_voc(root):
    fileid = (root / "VOC2007" / "ImageSets" / "Main" / "trainval.txt").read_text().split()[0]
    return fileid, root / "VOC2007" / "Annotations" / f"{fileid}.xml"


def voc_missing_image(root):
    fileid, _ = _first_voc(root)
    jpg = root / "VOC2007" / "JPEGImages" / f"{fileid}.jpg"
    jpg.unlink()
    return jpg, "missing file"


def voc_box_outside_the_image(root):
    _, xml = _first_voc(root)
    width = int(re.search(r"<width>(\d+)</width>", xml.read_text()).group(1))
    _edit_first(r"<xmax>\d+</xmax>", f"<xmax>{width + 40}</xmax>", xml)
    return xml, f"outside the {width}x128 image"


def voc_inverted_box(root):
    _, xml = _first_voc(root)
    _edit_first(r"<xmin>\d+</xmin>(\s*)<ymin>(\d+)</ymin>(\s*)<xmax>\d+</xmax>",
                r"<xmin>100</xmin>\1<ymin>\2</ymin>\3<xmax>50</xmax>", xml)
    return xml, "(100, "


def voc_class_not_in_the_task(root):
    _, xml = _first_voc(root)
    _edit_first(r"<name>\w+</name>", "<name>unicorn</name>", xml)
    return xml, "unknown class 'unicorn'"


def voc_coordinate_not_a_number(root):
    _, xml = _first_voc(root)
    _edit_first(r"<ymin>\d+</ymin>", "<ymin>12px</ymin>", xml)
    return xml, "not a number"


def voc_truncated_xml(root):
    _, xml = _first_voc(root)
    xml.write_text(xml.read_text()[:200])
    return xml, "corrupt annotation"


def _coco_train(root):
    return root / "coco" / "annotations" / "instances_train2017.json"


def _set_first_annotation(root, key, value):
    ann = _coco_train(root)
    data = json.loads(ann.read_text())
    data["annotations"][0][key] = value
    ann.write_text(json.dumps(data))
    return ann


def coco_unknown_category_id(root):
    return _set_first_annotation(root, "category_id", 9999), "category_id 9999, which is not in its 'categories'"


def coco_empty_segmentation(root):
    return _set_first_annotation(root, "segmentation", []), "an empty segmentation"


def coco_annotation_of_an_unknown_image(root):
    return _set_first_annotation(root, "image_id", 123456), "image_id 123456"


def coco_missing_image(root):
    image = root / "coco" / "train2017" / json.loads(_coco_train(root).read_text())["images"][0]["file_name"]
    image.unlink()
    return image, "missing file"


def coco_truncated_json(root):
    ann = _coco_train(root)
    ann.write_text(ann.read_text()[:1000])
    return ann, "corrupt JSON annotation file"


def _first_label(root):
    return sorted((root / "cityscapes" / "gtFine" / "train").glob("*/*_gtFine_labelTrainIds.png"))[0]


def cityscapes_label_image_of_the_wrong_size(root):
    label = _first_label(root)
    Image.open(label).resize((64, 32), Image.NEAREST).save(label)
    return label, "label image of size 64x32 for an image of size 256x128"


def cityscapes_label_not_an_image(root):
    label = _first_label(root)
    label.write_bytes(b"\x89PNG garbage")
    return label, "unreadable image"


def cityscapes_missing_label_train_ids(root):
    label = _first_label(root)
    label.unlink()
    return label, "createTrainIdLabelImgs"


CASES = [
    ("voc", voc_missing_image), ("voc", voc_box_outside_the_image), ("voc", voc_inverted_box),
    ("voc", voc_class_not_in_the_task), ("voc", voc_coordinate_not_a_number), ("voc", voc_truncated_xml),
    ("coco", coco_unknown_category_id), ("coco", coco_empty_segmentation), ("coco", coco_annotation_of_an_unknown_image),
    ("coco", coco_missing_image), ("coco", coco_truncated_json),
    ("cityscapes", cityscapes_label_image_of_the_wrong_size), ("cityscapes", cityscapes_label_not_an_image),
    ("cityscapes", cityscapes_missing_label_train_ids),
]


@pytest.mark.parametrize("fmt,corrupt", CASES, ids=[c.__name__ for _, c in CASES])
def test_broken_dataset_is_refused_before_training(fmt, corrupt, pristine, tmp_path, capsys):
    weights, _ = pristine
    root = _copy(pristine, fmt, tmp_path)
    path, problem = corrupt(root)
    out = tmp_path / "out"
    name = corrupt.__name__.replace("_", " ")
    refused(capsys, name, lambda: run_transfer(["--task", TASK_OF[fmt], "--smoke", "--weights", str(weights),
                                                "--data-root", str(root), "--output", str(out)]),
            path, problem=problem, protect=[root], absent=[out])


@pytest.mark.slow
def test_cityscapes_label_ids_out_of_range_fail_the_run_naming_the_file(pristine, tmp_path):
    """Ids are only decoded where training reads them: the run fails at its first batch."""
    from benchmark.records import results

    weights, _ = pristine
    root = _copy(pristine, "cityscapes", tmp_path)
    for label in (root / "cityscapes" / "gtFine" / "train").glob("*/*_gtFine_labelTrainIds.png"):
        ids = np.array(Image.open(label))
        ids[ids != 255] = 40  # e.g. labelIds where labelTrainIds (0..18) belong
        Image.fromarray(ids).save(label)
    out = tmp_path / "out"
    rc = run_transfer(["--task", "cityscapes", "--smoke", "--weights", str(weights), "--data-root", str(root),
                       "--output", str(out)])
    record = results.read_record(out / "trial_0" / "results.json")
    assert rc == 1
    assert record["status"] == "failed" and record["iterations"] == 0
    assert re.search(r"_gtFine_labelTrainIds\.png: label ids 40 are outside 0\.\.18 and the ignore value 255",
                     record["reason"]), record["reason"]
    count("Cityscapes: label ids out of range (at the first batch)", True)
