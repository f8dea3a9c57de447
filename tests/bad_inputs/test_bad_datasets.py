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

from tests.helpers.refusal import refused
from tests.helpers.tally import BAD_INPUTS
from tests.helpers.tools import tool

run_transfer = tool("run_transfer")
TASK_OF = {"voc": "voc07", "coco": "coco", "cityscapes": "cityscapes", "imagenet": "imagenet_linear"}


@pytest.fixture(scope="module")
def pristine(module_tmp, synthetic_checkpoint):
    """Converted weights and one pristine synthetic dataset per family, at its smoke size (copied,
    never modified)."""
    from benchmark.data import FAMILIES
    from benchmark.weights.convert import prepare_weights

    root = module_tmp
    weights = prepare_weights(synthetic_checkpoint("moco", width=8), cache_dir=root / "cache").path
    data = {fmt: FAMILIES[fmt].write_synthetic(root / fmt) for fmt in TASK_OF}
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


def _edit_coco(root, edit):
    """Apply `edit(data)` to the train annotation file; return it."""
    ann = _coco_train(root)
    data = json.loads(ann.read_text())
    edit(data)
    ann.write_text(json.dumps(data))
    return ann


def _first_image(root):
    return json.loads(_coco_train(root).read_text())["images"][0]


def _truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def voc_truncated_image(root):
    fileid, _ = _first_voc(root)
    return _truncate(root / "VOC2007" / "JPEGImages" / f"{fileid}.jpg"), "truncated image"


def voc_negative_image_width(root):
    _, xml = _first_voc(root)
    _edit_first(r"<width>\d+</width>", "<width>-160</width>", xml)
    return xml, "image size of -160x128 (must be positive)"


def coco_truncated_image(root):
    return _truncate(root / "coco" / "train2017" / _first_image(root)["file_name"]), "truncated image"


def coco_image_without_file_name(root):
    return _edit_coco(root, lambda d: d["images"][0].pop("file_name")), "images[0] (id "


def coco_images_an_object(root):
    return _edit_coco(root, lambda d: d.update(images={})), "'images' is a dict, not a list"


def coco_annotation_a_number(root):
    return _edit_coco(root, lambda d: d["annotations"].insert(0, 5)), "annotations[0] is 5, not an object"


def coco_file_name_outside_the_image_folder(root):
    return _edit_coco(root, lambda d: d["images"][0].update(file_name="../../../etc/passwd")), "points outside"


def coco_negative_image_height(root):
    return _edit_coco(root, lambda d: d["images"][0].update(height=-5)), "height -5, not a positive integer"


def coco_categories_not_cocos_80(root):
    return _edit_coco(root, lambda d: d.update(categories=[{"id": 1, "name": "person"}, {"id": 2, "name": "kitten"}])), \
        "categories other than COCO's 80 (2 given; id 2 is 'kitten', not 'bicycle')"


def coco_category_unknown_to_coco(root):
    return _edit_coco(root, lambda d: d["categories"].append({"id": 500, "name": "dragon"})), \
        "categories other than COCO's 80 (81 given; id 500 ('dragon') is not one of them)"


def coco_negative_bbox(root):
    return _set_first_annotation(root, "bbox", [10.0, 5.0, -20.0, 8.0]), "with a negative coordinate or size"


def coco_bbox_not_four_numbers(root):
    return _set_first_annotation(root, "bbox", [10.0, 5.0, "wide"]), "not [x, y, width, height] numbers"


def _rle_on_first_image(root, counts, size=None):
    img = _first_image(root)
    seg = {"size": size or [img["height"], img["width"]], "counts": counts}
    return _edit_coco(root, lambda d: d["annotations"][0].update(segmentation=seg, iscrowd=1))


def coco_rle_of_the_wrong_length(root):
    img = _first_image(root)
    return _rle_on_first_image(root, [10, img["height"] * img["width"]]), "an RLE of the wrong length"


def coco_compressed_rle_of_the_wrong_length(root):
    from pycocotools import mask as mask_util

    counts = mask_util.encode(np.asfortranarray(np.ones((64, 64), np.uint8)))["counts"].decode()  # 4096 pixels
    return _rle_on_first_image(root, counts), "its runs cover 4096 pixels, its size 128x160 has 20480"


def coco_compressed_rle_cut_short(root):
    return _rle_on_first_image(root, "0a"), "an RLE whose counts cannot be read"


def coco_rle_of_another_size(root):
    return _rle_on_first_image(root, [64 * 64], size=[64, 64]), "an RLE of size [64, 64] on an image of 128x160"


def coco_odd_polygon(root):
    return _set_first_annotation(root, "segmentation", [[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]]), \
        "a polygon that is not an even list of >= 6 numbers"


def cityscapes_truncated_image(root):
    image = sorted((root / "cityscapes" / "leftImg8bit" / "train").glob("*/*_leftImg8bit.png"))[0]
    return _truncate(image), "truncated image"


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
    ("voc", voc_truncated_image), ("voc", voc_negative_image_width),
    ("coco", coco_truncated_image), ("coco", coco_image_without_file_name), ("coco", coco_images_an_object),
    ("coco", coco_annotation_a_number), ("coco", coco_file_name_outside_the_image_folder),
    ("coco", coco_negative_image_height), ("coco", coco_categories_not_cocos_80), ("coco", coco_category_unknown_to_coco),
    ("coco", coco_negative_bbox), ("coco", coco_bbox_not_four_numbers), ("coco", coco_rle_of_the_wrong_length),
    ("coco", coco_compressed_rle_of_the_wrong_length), ("coco", coco_compressed_rle_cut_short),
    ("coco", coco_rle_of_another_size), ("coco", coco_odd_polygon),
    ("cityscapes", cityscapes_truncated_image),
]


# ----------------------------------------------------------------------------- what the evaluator and the image headers need

def _first_voc_test(root):
    fileid = (root / "VOC2007" / "ImageSets" / "Main" / "test.txt").read_text().split()[0]
    return root / "VOC2007" / "Annotations" / f"{fileid}.xml"


def voc_test_box_not_a_whole_number(root):
    xml = _first_voc_test(root)
    _edit_first(r"<xmin>(\d+)</xmin>", r"<xmin>\1.5</xmin>", xml)
    return xml, "evaluator reads whole pixel numbers"


def voc_test_object_without_difficult(root):
    xml = _first_voc_test(root)
    _edit_first(r"<difficult>\d+</difficult>", "", xml)
    return xml, "no <difficult>"


def voc_test_object_without_pose(root):
    xml = _first_voc_test(root)
    _edit_first(r"<pose>\w+</pose>", "", xml)
    return xml, "without <pose>"


def voc_test_difficult_not_a_number(root):
    xml = _first_voc_test(root)
    _edit_first(r"<difficult>\d+</difficult>", "<difficult>yes</difficult>", xml)
    return xml, "<difficult> 'yes'"


def voc_image_size_not_a_whole_number(root):
    _, xml = _first_voc(root)
    _edit_first(r"<width>(\d+)</width>", r"<width>\1.0</width>", xml)
    return xml, "reads whole numbers"


def voc_annotation_of_another_image_size(root):
    _, xml = _first_voc(root)
    _edit_first(r"<height>\d+</height>", "<height>200</height>", xml)
    return xml, "whose header says"


def voc_split_lists_an_image_twice(root):
    split = root / "VOC2007" / "ImageSets" / "Main" / "test.txt"
    ids = split.read_text().split()
    split.write_text("\n".join(ids + ids[:1]) + "\n")
    return split, "twice"


def voc_split_id_outside_the_data_root(root):
    split = root / "VOC2007" / "ImageSets" / "Main" / "trainval.txt"
    split.write_text("../../etc/passwd\n" + split.read_text())
    return split, "not a plain file name"


def _jpeg_bomb(path):
    """Rewrite a real JPEG's SOF header to claim 60000x60000 pixels (its data untouched)."""
    data = bytearray(path.read_bytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = (60000).to_bytes(2, "big") * 2
    path.write_bytes(bytes(data))
    return path


def _png_bomb(path):
    """A PNG whose IHDR claims 60000x60000 pixels, complete down to its IEND chunk."""
    import struct
    import zlib

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", 60000, 60000, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


def voc_decompression_bomb(root):
    fileid = (root / "VOC2007" / "ImageSets" / "Main" / "test.txt").read_text().split()[0]
    return _jpeg_bomb(root / "VOC2007" / "JPEGImages" / f"{fileid}.jpg"), "decompression bomb"


def coco_decompression_bomb(root):
    return _jpeg_bomb(root / "coco" / "train2017" / _first_image(root)["file_name"]), "decompression bomb"


def coco_image_of_another_size(root):
    return _edit_coco(root, lambda d: d["images"][0].update(width=d["images"][0]["width"] + 10)), "the image's header"


def coco_image_listed_twice(root):
    return _edit_coco(root, lambda d: d["images"].append(dict(d["images"][0]))), "a second time"


def coco_bbox_outside_its_image(root):
    def edit(data):
        ann = data["annotations"][0]
        image = next(i for i in data["images"] if i["id"] == ann["image_id"])
        ann["bbox"] = [image["width"] - 10.0, 0.0, 50.0, 10.0]
    return _edit_coco(root, edit), "reaching outside its"


def coco_annotation_file_null(root):
    ann = _coco_train(root)
    ann.write_text("null")
    return ann, "without images/annotations/categories"


def cityscapes_label_decompression_bomb(root):
    return _png_bomb(_first_label(root)), "decompression bomb"


def imagenet_decompression_bomb(root):
    image = sorted((root / "imagenet" / "val").glob("*/*.png"))[0]
    return _png_bomb(image), "decompression bomb"


CASES += [
    ("voc", voc_test_box_not_a_whole_number), ("voc", voc_test_object_without_difficult),
    ("voc", voc_test_object_without_pose), ("voc", voc_test_difficult_not_a_number),
    ("voc", voc_image_size_not_a_whole_number), ("voc", voc_annotation_of_another_image_size),
    ("voc", voc_split_lists_an_image_twice), ("voc", voc_split_id_outside_the_data_root),
    ("voc", voc_decompression_bomb), ("coco", coco_decompression_bomb), ("coco", coco_image_of_another_size),
    ("coco", coco_image_listed_twice), ("coco", coco_bbox_outside_its_image), ("coco", coco_annotation_file_null),
    ("cityscapes", cityscapes_label_decompression_bomb), ("imagenet", imagenet_decompression_bomb),
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
    assert record.status == "failed" and record.iterations == 0
    assert re.search(r"_gtFine_labelTrainIds\.png: label ids 40 are outside 0\.\.18 and the ignore value 255",
                     record.reason), record.reason
    BAD_INPUTS.count("Cityscapes: label ids out of range (at the first batch)", True)


# ----------------------------------------------------------------------------- make_synthetic

make_synthetic = tool("make_synthetic")


def _out_is_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    return ["--out", tmp_path / "f"], tmp_path / "f", "is a file, not a folder"


def _out_under_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    return ["--out", tmp_path / "f" / "data"], tmp_path / "f", "is a file, not a folder"


def _cityscapes_too_wide_for_the_pool_kernel(tmp_path):
    return (["--out", tmp_path / "d", "--format", "cityscapes", "--size", "32", "512"], tmp_path / "d",
            "smaller than the ASPP pool kernel 4x8")


def _all_families_one_too_wide(tmp_path):
    # checked before any family is written: no VOC or COCO left behind either
    return ["--out", tmp_path / "d", "--size", "32", "512"], tmp_path / "d", "smaller than the ASPP pool kernel"


def _images_too_small(tmp_path):
    return ["--out", tmp_path / "d", "--format", "voc", "--size", "8", "8"], tmp_path / "d", "at least 32x32"


MAKE_SYNTHETIC = [_out_is_a_file, _out_under_a_file, _cityscapes_too_wide_for_the_pool_kernel,
                  _all_families_one_too_wide, _images_too_small]


@pytest.mark.parametrize("case", MAKE_SYNTHETIC, ids=[c.__name__.strip("_") for c in MAKE_SYNTHETIC])
def test_make_synthetic_refuses_with_one_line_naming_the_folder(case, tmp_path, capsys):
    argv, named, problem = case(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    refused(capsys, f"make_synthetic {case.__name__.strip('_')}", lambda: make_synthetic([str(a) for a in argv]),
            named, problem=problem, protect=[tmp_path])
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written


@pytest.mark.slow
def test_make_synthetic_default_cityscapes_runs_the_smoke_task(pristine, tmp_path):
    """make_synthetic's default Cityscapes data is what `--task cityscapes --smoke` trains and evaluates."""
    from benchmark.records import results

    weights, _ = pristine
    assert make_synthetic(["--out", str(tmp_path / "data"), "--format", "cityscapes"]) == 0
    rc = run_transfer(["--task", "cityscapes", "--smoke", "--weights", str(weights), "--data-root",
                       str(tmp_path / "data"), "--output", str(tmp_path / "out")])
    record = results.read_record(tmp_path / "out" / "trial_0" / "results.json")
    assert rc == 0 and record.status == "finished", record.reason
    assert record.metrics["sem_seg"]["mIoU"] is not None
