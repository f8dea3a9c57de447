"""Dataset families, registration by root under our own names, and layout validation, on synthetic
trees in the real layouts."""
import json
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog

from benchmark.data import (
    FAMILIES,
    DatasetLayoutError,
    get_family,
    protocol_name,
    register_datasets,
    registered_name,
    validate_layout,
    write_synthetic,
)
from benchmark.tasks import Task, get_task, list_tasks
from tests.helpers.tools import ROOT

TASKS = [t.name for t in list_tasks()]


@pytest.fixture(scope="module")
def root(module_tmp):
    r = module_tmp / "data"
    for fmt in FAMILIES:
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
    ids = (root / year / "ImageSets/Main" / f"{split}.txt").read_text().split()
    return len(ids), sum(len(ET.parse(root / year / "Annotations" / f"{i}.xml").findall("object")) for i in ids)


# ----------------------------------------------------------------------------- families

def test_importing_families_and_tasks_imports_no_torch_or_detectron2():
    code = ("import sys, benchmark.data, benchmark.data.families, benchmark.tasks\n"
            "from benchmark.data import get_family, registered_name\n"
            "registered_name('voc_2007_test', '/x'); get_family('coco').smoke_overlay_path\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'detectron2'))\n"
            "assert not bad, bad\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("task", TASKS)
def test_every_task_names_a_family_that_places_its_datasets(task):
    t = get_task(task)
    family = get_family(t.data_format)
    assert t.family is family and family.name == t.data_format
    for name in (*t.train, *t.test):
        assert name in family.datasets
    assert family.smoke_overlay_path.is_file()


def test_family_table():
    assert list(FAMILIES) == ["voc", "coco", "cityscapes", "imagenet", "miniimagenet", "mafl"]
    voc, coco, cityscapes, imagenet, miniimagenet, mafl = FAMILIES.values()
    assert voc.paths("voc_2012_trainval", "/data") == {"dirname": "/data/VOC2012", "split": "trainval", "year": 2012}
    assert coco.paths("coco_2017_val", "/data") == {"image_root": "/data/coco/val2017",
                                                    "json_file": "/data/coco/annotations/instances_val2017.json"}
    assert cityscapes.paths("cityscapes_fine_sem_seg_train", "/data") == {
        "image_dir": "/data/cityscapes/leftImg8bit/train", "gt_dir": "/data/cityscapes/gtFine/train"}
    assert imagenet.paths("imagenet_val", "/data") == {"image_dir": "/data/imagenet/val",
                                                      "classes_dir": "/data/imagenet/train"}
    assert miniimagenet.paths("miniimagenet_test", "/data") == {
        "csv_dir": "/data/miniimagenet", "image_dir": "/data/miniimagenet/images", "imagenet_dir": "/data/imagenet/train",
        "split": "test"}
    assert mafl.paths("mafl_test", "/data") == {"celeba_dir": "/data/celeba", "mafl_dir": "/data/celeba/MAFL",
                                                "split": "testing"}
    assert [f.smoke_overlay for f in FAMILIES.values()] == ["detection.yaml", "detection.yaml", "cityscapes.yaml",
                                                           "imagenet_linear.yaml", "fewshot_miniimagenet.yaml",
                                                           "mafl_landmarks.yaml"]
    assert [f.smoke_image_size for f in FAMILIES.values()] == [(128, 160), (128, 160), (128, 256), (48, 48), (84, 84),
                                                               (218, 178)]
    assert [f.evaluator_type for f in FAMILIES.values()] == ["pascal_voc", "coco", "cityscapes_sem_seg", "classification",
                                                             "fewshot", "landmarks"]
    assert get_family(coco) is coco


def test_unknown_family_is_refused():
    with pytest.raises(ValueError, match="unknown data format 'kitti'; known: voc, coco, cityscapes"):
        get_family("kitti")


def test_task_of_an_unknown_family_or_foreign_dataset_is_refused():
    fields = dict(name="x", config="voc07.yaml", train=("voc_2007_trainval",), test=("voc_2007_test",),
                  primary_metric="bbox/AP", metrics=("bbox/AP",), source="test")
    with pytest.raises(ValueError, match="unknown data format 'kitti'"):
        Task(**fields, data_format="kitti")
    with pytest.raises(ValueError, match="dataset 'voc_2007_trainval' has no known layout in the coco family"):
        Task(**fields, data_format="coco")


# ----------------------------------------------------------------------------- registered names

def test_registered_name_is_a_pure_function_of_name_and_absolute_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    name = registered_name("voc_2007_test", tmp_path / "data")
    prefix, digest, protocol = name.split(":")
    assert (prefix, len(digest), protocol) == ("benchmark", 12, "voc_2007_test")
    assert registered_name("voc_2007_test", "data") == name  # relative to the working directory
    assert registered_name("voc_2007_test", f"{tmp_path}/x/../data/") == name
    assert registered_name("voc_2007_test", tmp_path / "other") != name
    assert registered_name("voc_2007_trainval", tmp_path / "data") == f"benchmark:{digest}:voc_2007_trainval"
    assert protocol_name(name) == "voc_2007_test" and protocol_name("voc_2007_test") == "voc_2007_test"


def test_unknown_dataset_name_is_refused():
    with pytest.raises(ValueError, match="dataset 'voc_2099_test' has no known layout; known: .*voc_2007_test"):
        registered_name("voc_2099_test", "/x")


def test_voc_registered_under_root(root):
    validate_layout(get_task("voc0712"), root)
    names = register_datasets(get_task("voc0712"), root)
    protocol = ["voc_2007_trainval", "voc_2012_trainval", "voc_2007_test"]
    assert names == {n: registered_name(n, root) for n in protocol} and list(names) == protocol
    assert _count(names["voc_2007_trainval"]) == _voc_objects(root, "VOC2007", "trainval")
    assert _count(names["voc_2012_trainval"]) == _voc_objects(root, "VOC2012", "trainval")
    assert _count(names["voc_2007_test"]) == _voc_objects(root, "VOC2007", "test")
    assert _count(names["voc_2007_test"])[0] == 3
    meta = MetadataCatalog.get(names["voc_2007_test"])
    assert (meta.dirname, meta.split, meta.year, meta.evaluator_type) == (str(root / "VOC2007"), "test", 2007, "pascal_voc")
    assert len(meta.thing_classes) == 20 and meta.thing_classes[0] == "aeroplane"
    d = DatasetCatalog.get(names["voc_2007_test"])[0]
    assert d["file_name"].startswith(str(root / "VOC2007/JPEGImages/")) and (d["height"], d["width"]) == (128, 160)


def test_coco_registered_under_root(root):
    validate_layout(get_task("coco"), root)
    names = register_datasets(get_task("coco"), root)
    for split, n in (("train", 6), ("val", 3)):
        data = json.loads((root / f"coco/annotations/instances_{split}2017.json").read_text())
        assert _count(names[f"coco_2017_{split}"]) == (n, len(data["annotations"]))
    meta = MetadataCatalog.get(names["coco_2017_val"])
    assert meta.json_file == str(root / "coco/annotations/instances_val2017.json")
    assert meta.image_root == str(root / "coco/val2017") and meta.evaluator_type == "coco"
    assert len(meta.thing_classes) == 80 and meta.thing_dataset_id_to_contiguous_id[90] == 79
    # loaded annotations carry the contiguous ids detectron2 maps COCO's ids to (dog: 18 -> 16)
    cats = {a["category_id"] for d in DatasetCatalog.get(names["coco_2017_train"]) for a in d["annotations"]}
    assert cats <= {0, 2, 16, 39}


def test_cityscapes_registered_under_root(root):
    validate_layout(get_task("cityscapes"), root)
    names = register_datasets(get_task("cityscapes"), root)
    assert _count(names["cityscapes_fine_sem_seg_train"]) == (6, 0)
    assert _count(names["cityscapes_fine_sem_seg_val"]) == (3, 0)
    d = DatasetCatalog.get(names["cityscapes_fine_sem_seg_val"])[0]
    assert d["sem_seg_file_name"].endswith("_gtFine_labelTrainIds.png")
    meta = MetadataCatalog.get(names["cityscapes_fine_sem_seg_val"])
    assert meta.gt_dir == str(root / "cityscapes/gtFine/val") and meta.ignore_label == 255
    assert meta.evaluator_type == "cityscapes_sem_seg" and len(meta.stuff_classes) == 19


@pytest.mark.parametrize("task", TASKS)
def test_every_task_validates_and_registers_on_synthetic_data(root, task):
    validate_layout(get_task(task), root)
    names = register_datasets(get_task(task), root)
    assert list(names) == list(dict.fromkeys(get_task(task).train + get_task(task).test))
    for name in names.values():
        # 3 or 6 images per split; the few-shot pool holds its 6 synthetic classes of 6 images each
        assert len(DatasetCatalog.get(name)) in ((36,) if task == "fewshot_miniimagenet" else (3, 6)), name


def test_registration_is_idempotent(root):
    first = register_datasets(get_task("coco"), root)
    loader = DatasetCatalog[first["coco_2017_val"]]  # the registered function itself
    assert register_datasets(get_task("coco"), root) == first
    assert DatasetCatalog[first["coco_2017_val"]] is loader


def test_two_roots_coexist(root, tmp_path):
    other = write_synthetic("coco", tmp_path, num_train=2, num_test=2)
    here, there = register_datasets(get_task("coco"), root), register_datasets(get_task("coco"), other)
    assert here["coco_2017_val"] != there["coco_2017_val"]
    assert _count(here["coco_2017_val"])[0] == 3 and _count(there["coco_2017_val"])[0] == 2
    assert MetadataCatalog.get(there["coco_2017_val"]).image_root == str(other / "coco/val2017")
    assert MetadataCatalog.get(here["coco_2017_val"]).image_root == str(root / "coco/val2017")


BUILTIN = ("voc_2007_trainval", "voc_2007_test", "voc_2012_trainval", "coco_2017_train", "coco_2017_val",
           "cityscapes_fine_sem_seg_train", "cityscapes_fine_sem_seg_val")


def test_builtin_catalog_entries_are_untouched(root):
    loaders = {n: DatasetCatalog[n] for n in BUILTIN}  # registered by detectron2.data on import
    metadata = {n: MetadataCatalog.get(n).as_dict() for n in BUILTIN}
    assert metadata["voc_2007_trainval"]["dirname"] != str(root / "VOC2007")
    everything = set(DatasetCatalog)
    for task in TASKS:
        register_datasets(get_task(task), root)
    assert all(DatasetCatalog[n] is loaders[n] for n in BUILTIN)
    assert {n: MetadataCatalog.get(n).as_dict() for n in BUILTIN} == metadata
    added = set(DatasetCatalog) - everything
    assert all(n.startswith("benchmark:") for n in added)


# ----------------------------------------------------------------------------- validation

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
        validate_layout(get_task(task), data)
    msg = str(exc.value)
    assert f" {p} " in msg and "datasets.md" in msg and "\n" not in msg
    assert isinstance(exc.value, ValueError)


def test_missing_label_train_ids_says_how_to_make_them(root, tmp_path):
    data = _copy(root, tmp_path, "cityscapes")
    for p in (data / "cityscapes/gtFine").rglob("*_labelTrainIds.png"):
        p.unlink()
    with pytest.raises(DatasetLayoutError, match="createTrainIdLabelImgs"):
        validate_layout(get_task("cityscapes"), data)


def test_missing_root(tmp_path):
    with pytest.raises(DatasetLayoutError, match=f"data root {tmp_path / 'nope'} does not exist"):
        validate_layout(get_task("voc07"), tmp_path / "nope")


def test_corrupt_xml_is_named(root, tmp_path):
    data = _copy(root, tmp_path, "VOC2007")
    xml = data / "VOC2007/Annotations/000002.xml"
    xml.write_text(xml.read_text()[:150])
    with pytest.raises(DatasetLayoutError, match=f"corrupt annotation .*{xml}"):
        validate_layout(get_task("voc07"), data)


def test_unknown_voc_class_is_named(root, tmp_path):
    data = _copy(root, tmp_path, "VOC2007")
    xml = data / "VOC2007/Annotations/000008.xml"  # a test image
    text = xml.read_text()
    name = text.split("<name>")[1].split("</name>")[0]
    xml.write_text(text.replace(f"<name>{name}</name>", "<name>unicorn</name>", 1))
    with pytest.raises(DatasetLayoutError, match=f"unknown class 'unicorn' {xml}"):
        validate_layout(get_task("voc07"), data)


def test_corrupt_json_is_named(root, tmp_path):
    data = _copy(root, tmp_path, "coco")
    js = data / "coco/annotations/instances_val2017.json"
    js.write_text(js.read_text()[:-10])
    with pytest.raises(DatasetLayoutError, match=f"corrupt JSON annotation file .*{js}"):
        validate_layout(get_task("coco"), data)


def test_big_truncated_json_is_caught_without_parsing(root, tmp_path, monkeypatch):
    from benchmark.data import checks

    data = _copy(root, tmp_path, "coco")
    js = data / "coco/annotations/instances_train2017.json"
    monkeypatch.setattr(checks, "FULL_PARSE_MAX_BYTES", 100)
    validate_layout(get_task("coco"), data)  # intact: the ends are checked only
    js.write_text(js.read_text()[:-3])
    with pytest.raises(DatasetLayoutError, match=f"truncated.*{js}"):
        validate_layout(get_task("coco"), data)


def test_corrupt_polygons_json_is_named(root, tmp_path):
    data = _copy(root, tmp_path, "cityscapes")
    js = next((data / "cityscapes/gtFine/val").rglob("*_polygons.json"))
    js.write_text("{not json")
    with pytest.raises(DatasetLayoutError, match=f"corrupt JSON annotation file .*{js}"):
        validate_layout(get_task("cityscapes"), data)


# ----------------------------------------------------------------------------- cheap content checks

def test_compressed_rle_counts_read_as_pycocotools_writes_them():
    import numpy as np
    from pycocotools import mask as mask_util

    from benchmark.data.coco import rle_counts

    rng = np.random.default_rng(0)
    for h, w in ((128, 160), (7, 300), (1, 1)):
        m = np.asfortranarray((rng.random((h, w)) > 0.7).astype(np.uint8))
        rle = mask_util.encode(m)
        runs = rle_counts(rle["counts"].decode())
        assert sum(runs) == h * w
        assert sum(runs[1::2]) == int(m.sum())  # odd runs are the mask's pixels
    assert rle_counts("0a") is None and rle_counts([3, -1]) is None and rle_counts(5) is None


def test_a_complete_image_with_trailing_bytes_passes_and_a_cut_one_is_named(tmp_path):
    from PIL import Image

    from benchmark.data.checks import check_image_complete

    for suffix in ("jpg", "png"):
        path = tmp_path / f"x.{suffix}"
        Image.new("RGB", (40, 30), (10, 200, 30)).save(path)
        check_image_complete("d", path)
        path.write_bytes(path.read_bytes() + b"\0" * 16)  # padding after the end marker: still complete
        check_image_complete("d", path)
        path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
        with pytest.raises(DatasetLayoutError, match=rf"dataset d: truncated image .* {path} "):
            check_image_complete("d", path)
