"""Broken datasets under --data-root: each is refused before any compute with one line naming the
file and the problem (exit 1, no output folder, the dataset itself untouched); a Cityscapes label
with ids the model cannot learn fails the run at its first batch with a failed record naming it.
"""
import json
import re
import shutil

import numpy as np
import pytest
from PIL import Image

from badlib import count, refused, tool

run_transfer = tool("run_transfer")
TASK_OF = {"voc": "voc07", "coco": "coco", "cityscapes": "cityscapes"}


@pytest.fixture(scope="module")
def pristine(module_tmp, synthetic_checkpoint):
    """Converted weights and one pristine synthetic dataset per format (copied, never modified)."""
    from benchmark.weights.convert import prepare_weights
    from benchmark.data import write_synthetic

    root = module_tmp
    weights = prepare_weights(synthetic_checkpoint("moco"), cache_dir=root / "cache").path
    sizes = {"voc": (128, 160), "coco": (128, 160), "cityscapes": (128, 256)}
    data = {fmt: write_synthetic(fmt, root / fmt, image_size=size) for fmt, size in sizes.items()}
    return weights, data


def _copy(pristine, fmt, tmp_path):
    dest = tmp_path / f"data_{fmt}"
    shutil.copytree(pristine[1][fmt], dest)
    return dest


def _first_voc(root):
    ids = (root / "VOC2007" / "ImageSets" / "Main" / "trainval.txt").read_text().split()
    return ids[0], root / "VOC2007" / "Annotations" / f"{ids[0]}.xml"


def _edit_first(pattern, replacement, path):
    text = path.read_text()
    new = re.sub(pattern, replacement, text, count=1)
    assert new != text
    path.write_text(new)


def _voc_cases(root):
    fileid, xml = _first_voc(root)
    width = int(re.search(r"<width>(\d+)</width>", xml.read_text()).group(1))
    jpg = root / "VOC2007" / "JPEGImages" / f"{fileid}.jpg"
    return {
        "VOC: missing image": (lambda: jpg.unlink(), jpg, "missing file"),
        "VOC: box outside the image": (lambda: _edit_first(r"<xmax>\d+</xmax>", f"<xmax>{width + 40}</xmax>", xml), xml,
                                       f"outside the {width}x128 image"),
        "VOC: inverted box": (lambda: _edit_first(r"<xmin>\d+</xmin>(\s*)<ymin>(\d+)</ymin>(\s*)<xmax>\d+</xmax>",
                                                  r"<xmin>100</xmin>\1<ymin>\2</ymin>\3<xmax>50</xmax>", xml),
                              xml, "(100, "),
        "VOC: class not in the task": (lambda: _edit_first(r"<name>\w+</name>", "<name>unicorn</name>", xml), xml,
                                       "unknown class 'unicorn'"),
        "VOC: coordinate not a number": (lambda: _edit_first(r"<ymin>\d+</ymin>", "<ymin>12px</ymin>", xml), xml,
                                         "not a number"),
        "VOC: truncated XML": (lambda: xml.write_text(xml.read_text()[:200]), xml, "corrupt annotation"),
    }


def _coco_json_edit(path, edit):
    def apply():
        data = json.loads(path.read_text())
        edit(data)
        path.write_text(json.dumps(data))
    return apply


def _coco_cases(root):
    ann = root / "coco" / "annotations" / "instances_train2017.json"
    first_image = json.loads(ann.read_text())["images"][0]["file_name"]
    image = root / "coco" / "train2017" / first_image

    def set_first(key, value):
        return _coco_json_edit(ann, lambda d: d["annotations"][0].__setitem__(key, value))

    return {
        "COCO: unknown category id": (set_first("category_id", 9999), ann, "category_id 9999, which is not in its 'categories'"),
        "COCO: empty segmentation": (set_first("segmentation", []), ann, "an empty segmentation"),
        "COCO: annotation of an unknown image": (set_first("image_id", 123456), ann, "image_id 123456"),
        "COCO: missing image": (lambda: image.unlink(), image, "missing file"),
        "COCO: truncated JSON": (lambda: ann.write_text(ann.read_text()[:1000]), ann, "corrupt JSON annotation file"),
    }


def _cityscapes_cases(root):
    labels = sorted((root / "cityscapes" / "gtFine" / "train").glob("*/*_gtFine_labelTrainIds.png"))
    label = labels[0]

    def shrink():
        Image.open(label).resize((64, 32), Image.NEAREST).save(label)

    return {
        "Cityscapes: label image of the wrong size": (shrink, label, "label image of size 64x32 for an image of size 256x128"),
        "Cityscapes: label not an image": (lambda: label.write_bytes(b"\x89PNG garbage"), label, "unreadable image"),
        "Cityscapes: missing labelTrainIds": (lambda: label.unlink(), label, "createTrainIdLabelImgs"),
    }


CASES = {"voc": _voc_cases, "coco": _coco_cases, "cityscapes": _cityscapes_cases}


@pytest.mark.parametrize("fmt", ["voc", "coco", "cityscapes"])
def test_broken_datasets_are_refused_before_training(fmt, pristine, tmp_path, capsys):
    weights, _ = pristine
    names = list(CASES[fmt](_copy(pristine, fmt, tmp_path / "probe")))
    for i, name in enumerate(names):
        root = _copy(pristine, fmt, tmp_path / str(i))
        corrupt, path, problem = CASES[fmt](root)[name]
        corrupt()
        out = tmp_path / f"out{i}"
        refused(capsys, name, lambda: run_transfer(["--task", TASK_OF[fmt], "--smoke", "--weights", str(weights),
                                                    "--data-root", str(root), "--output", str(out)]),
                path, problem=problem, protect=[root], absent=[out])


@pytest.mark.slow
def test_cityscapes_label_ids_out_of_range_fail_the_run_naming_the_file(pristine, tmp_path, capsys):
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
    reason = record["reason"]
    ok = (rc == 1 and record["status"] == "failed" and record["iterations"] == 0
          and re.search(r"_gtFine_labelTrainIds\.png: label ids 40 are outside 0\.\.18 and the ignore value 255", reason))
    count("Cityscapes: label ids out of range (at the first batch)", bool(ok))
    assert ok, reason
