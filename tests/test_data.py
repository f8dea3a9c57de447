"""Dataset registration by root and layout validation, on synthetic trees in the real layouts."""
import json
import shutil

import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog

import benchmark  # noqa: F401
from benchmark.data import DatasetLayoutError, register_datasets, validate_layout, write_synthetic
from benchmark.tasks import get_task


@pytest.fixture(scope="module")
def root(module_tmp):
    r = module_tmp / "data"
    for fmt in ("voc", "coco", "cityscapes"):
        write_synthetic(fmt, r, num_train=6, num_test=3)
    return r


def _copy(root, tmp_path, *tops):
    for top in tops:
        shutil.copytree(root / top, tmp_path / top)
    return tmp_path


def _count(name):
    dicts = DatasetCatalog.get(name)
    return len(dicts), sum(len(d.get("annotations", ())) for d in dicts)


def _voc_objects(root, year, split):
    import xml.etree.ElementTree as ET

    ids = (root / year / "ImageSets/Main" / f"{split}.txt").read_text().split()
    return len(ids), sum(len(ET.parse(root / year / "Annotations" / f"{i}.xml").findall("object")) for i in ids)


def test_voc_registered_under_root(root):
    validate_layout("voc0712", root)
    assert register_datasets(get_task("voc0712"), root) == ["voc_2007_trainval", "voc_2012_trainval", "voc_2007_test"]
    assert _count("voc_2007_trainval") == _voc_objects(root, "VOC2007", "trainval")
    assert _count("voc_2012_trainval") == _voc_objects(root, "VOC2012", "trainval")
    assert _count("voc_2007_test") == _voc_objects(root, "VOC2007", "test")
    assert _count("voc_2007_test")[0] == 3
    meta = MetadataCatalog.get("voc_2007_test")
    assert (meta.dirname, meta.split, meta.year, meta.evaluator_type) == (str(root / "VOC2007"), "test", 2007, "pascal_voc")
    assert len(meta.thing_classes) == 20 and meta.thing_classes[0] == "aeroplane"
    d = DatasetCatalog.get("voc_2007_test")[0]
    assert d["file_name"].startswith(str(root / "VOC2007/JPEGImages/")) and (d["height"], d["width"]) == (128, 160)


def test_coco_registered_under_root(root):
    validate_layout("coco", root)
    register_datasets("coco", root)
    for split, n in (("train", 6), ("val", 3)):
        data = json.loads((root / f"coco/annotations/instances_{split}2017.json").read_text())
        assert _count(f"coco_2017_{split}") == (n, len(data["annotations"]))
    meta = MetadataCatalog.get("coco_2017_val")
    assert meta.json_file == str(root / "coco/annotations/instances_val2017.json")
    assert meta.image_root == str(root / "coco/val2017") and meta.evaluator_type == "coco"
    assert len(meta.thing_classes) == 80 and meta.thing_dataset_id_to_contiguous_id[90] == 79
    # loaded annotations carry the contiguous ids detectron2 maps COCO's ids to (dog: 18 -> 16)
    cats = {a["category_id"] for d in DatasetCatalog.get("coco_2017_train") for a in d["annotations"]}
    assert cats <= {0, 2, 16, 39}


def test_cityscapes_registered_under_root(root):
    validate_layout("cityscapes", root)
    register_datasets("cityscapes", root)
    assert _count("cityscapes_fine_sem_seg_train") == (6, 0)
    assert _count("cityscapes_fine_sem_seg_val") == (3, 0)
    d = DatasetCatalog.get("cityscapes_fine_sem_seg_val")[0]
    assert d["sem_seg_file_name"].endswith("_gtFine_labelTrainIds.png")
    meta = MetadataCatalog.get("cityscapes_fine_sem_seg_val")
    assert meta.gt_dir == str(root / "cityscapes/gtFine/val") and meta.ignore_label == 255
    assert meta.evaluator_type == "cityscapes_sem_seg" and len(meta.stuff_classes) == 19


@pytest.mark.parametrize("task", ["voc07", "voc0712", "coco", "coco_2x", "cityscapes"])
def test_every_task_validates_on_synthetic_data(root, task):
    validate_layout(get_task(task), root)
    for name in register_datasets(task, root):
        assert len(DatasetCatalog.get(name)) in (3, 6)


def test_unknown_dataset_name_is_refused():
    from benchmark.data.register import register_dataset

    with pytest.raises(ValueError, match="dataset 'voc_2099_test' has no known layout; known: .*voc_2007_test"):
        register_dataset("voc_2099_test", "/x")


def test_reregistering_repoints_names(root, tmp_path):
    other = write_synthetic("coco", tmp_path, num_train=2, num_test=2)
    register_datasets("coco", root)
    register_datasets("coco", root)  # idempotent
    assert _count("coco_2017_val")[0] == 3
    register_datasets("coco", other)
    assert _count("coco_2017_val")[0] == 2
    assert MetadataCatalog.get("coco_2017_val").image_root == str(other / "coco/val2017")


@pytest.mark.parametrize("task,tops,missing", [
    ("voc07", ("VOC2007",), "VOC2007/Annotations"),
    ("voc07", ("VOC2007",), "VOC2007/ImageSets/Main/test.txt"),
    ("voc07", ("VOC2007",), "VOC2007/JPEGImages/000007.jpg"),
    ("voc0712", ("VOC2007",), "VOC2012"),
    ("coco", ("coco",), "coco/val2017"),
    ("coco", ("coco",), "coco/annotations/instances_train2017.json"),
    ("coco", ("coco",), "coco/train2017/000000000002.jpg"),
    ("cityscapes", ("cityscapes",), "cityscapes/gtFine/val"),
    ("cityscapes", ("cityscapes",), "cityscapes/gtFine/train/aachen/aachen_000002_000019_gtFine_labelTrainIds.png"),
    ("cityscapes", ("cityscapes",), "cityscapes/gtFine/train/bochum/bochum_000001_000019_gtFine_polygons.json"),
])
def test_missing_path_is_named(root, tmp_path, task, tops, missing):
    data = _copy(root, tmp_path, *tops)
    p = data / missing
    if p.is_dir():
        shutil.rmtree(p)
    elif p.exists():
        p.unlink()  # (VOC2012 is simply not copied)
    with pytest.raises(DatasetLayoutError) as exc:
        validate_layout(task, data)
    msg = str(exc.value)
    assert f" {p} " in msg and "datasets.md" in msg and "\n" not in msg
    assert isinstance(exc.value, ValueError)


def test_missing_label_train_ids_says_how_to_make_them(root, tmp_path):
    data = _copy(root, tmp_path, "cityscapes")
    for p in (data / "cityscapes/gtFine").rglob("*_labelTrainIds.png"):
        p.unlink()
    with pytest.raises(DatasetLayoutError, match="createTrainIdLabelImgs"):
        validate_layout("cityscapes", data)


def test_missing_root(tmp_path):
    with pytest.raises(DatasetLayoutError, match=f"data root {tmp_path / 'nope'} does not exist"):
        validate_layout("voc07", tmp_path / "nope")


def test_corrupt_xml_is_named(root, tmp_path):
    data = _copy(root, tmp_path, "VOC2007")
    xml = data / "VOC2007/Annotations/000002.xml"
    xml.write_text(xml.read_text()[:150])
    with pytest.raises(DatasetLayoutError, match=f"corrupt annotation .*{xml}"):
        validate_layout("voc07", data)


def test_unknown_voc_class_is_named(root, tmp_path):
    data = _copy(root, tmp_path, "VOC2007")
    xml = data / "VOC2007/Annotations/000008.xml"  # a test image
    text = xml.read_text()
    name = text.split("<name>")[1].split("</name>")[0]
    xml.write_text(text.replace(f"<name>{name}</name>", "<name>unicorn</name>", 1))
    with pytest.raises(DatasetLayoutError, match=f"unknown class 'unicorn' {xml}"):
        validate_layout("voc07", data)


def test_corrupt_json_is_named(root, tmp_path):
    data = _copy(root, tmp_path, "coco")
    js = data / "coco/annotations/instances_val2017.json"
    js.write_text(js.read_text()[:-10])
    with pytest.raises(DatasetLayoutError, match=f"corrupt JSON annotation file .*{js}"):
        validate_layout("coco", data)


def test_big_truncated_json_is_caught_without_parsing(root, tmp_path, monkeypatch):
    from benchmark.data import validate

    data = _copy(root, tmp_path, "coco")
    js = data / "coco/annotations/instances_train2017.json"
    monkeypatch.setattr(validate, "FULL_PARSE_MAX_BYTES", 100)
    validate_layout("coco", data)  # intact: the ends are checked only
    js.write_text(js.read_text()[:-3])
    with pytest.raises(DatasetLayoutError, match=f"truncated.*{js}"):
        validate_layout("coco", data)


def test_corrupt_polygons_json_is_named(root, tmp_path):
    data = _copy(root, tmp_path, "cityscapes")
    js = next((data / "cityscapes/gtFine/val").rglob("*_polygons.json"))
    js.write_text("{not json")
    with pytest.raises(DatasetLayoutError, match=f"corrupt JSON annotation file .*{js}"):
        validate_layout("cityscapes", data)
