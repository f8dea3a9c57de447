"""Synthetic datasets: the real on-disk formats, learnable content, determinism, safe concurrent writing."""
import hashlib
import json
import multiprocessing as mp
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmark.data import FAMILIES, get_family, write_synthetic
from benchmark.data.coco import CATEGORY_IDS as COCO_CATEGORY_IDS
from benchmark.data.drawing import class_style
from benchmark.data.voc import classes as voc_classes
from tests.helpers.tools import run_tool, tool

VOC_CLASSES = voc_classes()


def _tree_digest(root):
    h = hashlib.sha256()
    for p in sorted(Path(root).rglob("*")):
        if p.is_file() and not p.name.startswith(".synthetic"):
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_voc_tree_and_xml_fields(tmp_path):
    write_synthetic("voc", tmp_path, num_train=6, num_test=5)
    for year, splits in (("VOC2007", {"trainval": 6, "test": 5, "train": 3, "val": 3}),
                         ("VOC2012", {"trainval": 6, "train": 3, "val": 3})):
        d = tmp_path / year
        for split, n in splits.items():
            ids = (d / "ImageSets/Main" / f"{split}.txt").read_text().split()
            assert len(ids) == n
            for i in ids:
                assert Image.open(d / "JPEGImages" / f"{i}.jpg").size == (160, 128)
                tree = ET.parse(d / "Annotations" / f"{i}.xml")
                assert tree.findtext("size/width") == "160" and tree.findtext("size/height") == "128"
                objs = tree.findall("object")
                assert objs
                for obj in objs:
                    assert obj.findtext("name") in VOC_CLASSES
                    assert obj.findtext("pose") == "Unspecified"
                    assert obj.findtext("truncated") == "0" and obj.findtext("difficult") == "0"
                    b = [int(obj.findtext(f"bndbox/{k}")) for k in ("xmin", "ymin", "xmax", "ymax")]
                    assert 1 <= b[0] < b[2] <= 160 and 1 <= b[1] < b[3] <= 128
    test_ids = set((tmp_path / "VOC2007/ImageSets/Main/test.txt").read_text().split())
    assert not test_ids & set((tmp_path / "VOC2007/ImageSets/Main/trainval.txt").read_text().split())


def test_voc_every_class_in_every_split(tmp_path):
    # The VOC evaluator averages over all 20 classes: each must have ground truth in the test split.
    write_synthetic("voc", tmp_path, num_train=8, num_test=4)
    for d, split in (("VOC2007", "trainval"), ("VOC2007", "test"), ("VOC2012", "trainval")):
        names = set()
        for i in (tmp_path / d / "ImageSets/Main" / f"{split}.txt").read_text().split():
            names |= {o.findtext("name") for o in ET.parse(tmp_path / d / "Annotations" / f"{i}.xml").findall("object")}
        assert names == set(VOC_CLASSES), (d, split)


def test_voc_objects_painted_in_their_class_colour(tmp_path):
    write_synthetic("voc", tmp_path, num_train=2, num_test=2)
    img = np.asarray(Image.open(tmp_path / "VOC2007/JPEGImages/000001.jpg"), np.float32)
    for obj in ET.parse(tmp_path / "VOC2007/Annotations/000001.xml").findall("object"):
        x0, y0, x1, y1 = (int(obj.findtext(f"bndbox/{k}")) for k in ("xmin", "ymin", "xmax", "ymax"))
        cx, cy = (x0 + x1) // 2, (y0 + y1) // 2  # every shape covers its box centre
        patch = img[cy - 1:cy + 2, cx - 1:cx + 2].reshape(-1, 3).mean(0)
        colour = np.array(class_style(VOC_CLASSES.index(obj.findtext("name")))[1])
        assert np.abs(patch - colour).max() < 30


def test_class_styles_are_distinct():
    styles = [class_style(i) for i in range(20)]
    assert len(set(styles)) == 20
    assert len({s[0] for s in styles[:4]}) == 4 and len({s[1] for s in styles[:4]}) == 4


def test_coco_json(tmp_path):
    write_synthetic("coco", tmp_path, num_train=5, num_test=3)
    for split, n in (("train", 5), ("val", 3)):
        data = json.loads((tmp_path / f"coco/annotations/instances_{split}2017.json").read_text())
        assert len(data["images"]) == n
        assert len(data["categories"]) == 80
        assert {c["id"]: c["name"] for c in data["categories"]}[18] == "dog"
        assert max(c["id"] for c in data["categories"]) == 90
        ids = {im["id"] for im in data["images"]}
        for im in data["images"]:
            assert Image.open(tmp_path / f"coco/{split}2017" / im["file_name"]).size == (im["width"], im["height"])
        assert data["annotations"]
        for a in data["annotations"]:
            assert a["image_id"] in ids and a["category_id"] in COCO_CATEGORY_IDS and a["iscrowd"] == 0
            poly = a["segmentation"][0]
            xs, ys = poly[0::2], poly[1::2]
            assert a["bbox"] == pytest.approx([min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)])
            assert 0 < a["area"] <= a["bbox"][2] * a["bbox"][3] + max(xs) + max(ys)


def test_cityscapes_label_images_agree(tmp_path):
    from cityscapesscripts.helpers.labels import id2label

    write_synthetic("cityscapes", tmp_path, num_train=3, num_test=2, image_size=(64, 128))
    imgs = sorted((tmp_path / "cityscapes/leftImg8bit").rglob("*_leftImg8bit.png"))
    assert [p.parent.parent.name for p in imgs].count("train") == 3
    assert [p.parent.parent.name for p in imgs].count("val") == 2
    for img in imgs:
        stem = img.name[: -len("leftImg8bit.png")]
        gt = tmp_path / "cityscapes/gtFine" / img.parent.parent.name / img.parent.name
        ids = np.asarray(Image.open(gt / f"{stem}gtFine_labelIds.png"))
        train_ids = np.asarray(Image.open(gt / f"{stem}gtFine_labelTrainIds.png"))
        inst = np.asarray(Image.open(gt / f"{stem}gtFine_instanceIds.png")).astype(np.int64)
        assert ids.shape == train_ids.shape == inst.shape == (64, 128)
        lut = np.full(256, 255, np.uint8)
        for i, label in id2label.items():
            if i >= 0:
                lut[i] = label.trainId if label.trainId >= 0 else 255
        np.testing.assert_array_equal(train_ids, lut[ids])
        np.testing.assert_array_equal(np.where(inst >= 1000, inst // 1000, inst), ids)
        poly = json.loads((gt / f"{stem}gtFine_polygons.json").read_text())
        assert (poly["imgHeight"], poly["imgWidth"]) == (64, 128)
        assert (ids == 0).sum() == 0  # stuff bands cover the image: nothing left unlabeled


@pytest.mark.parametrize("fmt", list(FAMILIES))
def test_deterministic_and_seeded(tmp_path, fmt):
    a = _tree_digest(write_synthetic(fmt, tmp_path / "a", num_train=2, num_test=2))
    assert a == _tree_digest(write_synthetic(fmt, tmp_path / "b", num_train=2, num_test=2))
    assert a != _tree_digest(write_synthetic(fmt, tmp_path / "c", num_train=2, num_test=2, seed=1))


@pytest.mark.parametrize("fmt", list(FAMILIES))
def test_writes_the_familys_folders_at_its_smoke_size(tmp_path, fmt):
    family = get_family(fmt)
    assert family.write_synthetic(tmp_path, num_train=2, num_test=2) == tmp_path
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == sorted(family.tops)
    image = next(p for p in sorted(tmp_path.rglob("*")) if p.suffix in (".jpg", ".png") and "gtFine" not in p.parts)
    h, w = family.smoke_image_size
    assert Image.open(image).size == (w, h)
    assert json.loads((tmp_path / f".synthetic_{fmt}.json").read_text())["image_size"] == [h, w]


def test_existing_root_is_returned_and_other_params_refused(tmp_path):
    write_synthetic("coco", tmp_path, num_train=2, num_test=2)
    before = _tree_digest(tmp_path)
    assert write_synthetic("coco", tmp_path, num_train=2, num_test=2) == tmp_path
    assert _tree_digest(tmp_path) == before
    with pytest.raises(ValueError, match="already holds a synthetic coco dataset"):
        write_synthetic("coco", tmp_path, num_train=3, num_test=2)
    # complete: returned without taking the lock, so a read-only copy works too
    (tmp_path / ".synthetic.lock").unlink()
    tmp_path.chmod(0o555)
    try:
        assert write_synthetic("coco", tmp_path, num_train=2, num_test=2) == tmp_path
        assert not (tmp_path / ".synthetic.lock").exists()
    finally:
        tmp_path.chmod(0o755)


def test_refuses_to_write_over_a_real_dataset(tmp_path):
    (tmp_path / "coco").mkdir()
    with pytest.raises(FileExistsError, match="is not a synthetic dataset"):
        write_synthetic("coco", tmp_path)


def test_stale_partial_write_is_replaced(tmp_path):
    # A writer that died after renaming VOC2007 but before VOC2012 and its marker.
    write_synthetic("voc", tmp_path / "ref", num_train=2, num_test=2)
    write_synthetic("voc", tmp_path / "x", num_train=2, num_test=2)
    shutil.rmtree(tmp_path / "x/VOC2012")
    (tmp_path / "x/.synthetic_voc.json").unlink()
    write_synthetic("voc", tmp_path / "x", num_train=2, num_test=2)
    assert _tree_digest(tmp_path / "x") == _tree_digest(tmp_path / "ref")


def _write(root):
    write_synthetic("voc", root, num_train=4, num_test=4)
    return _tree_digest(root)


def test_concurrent_writers_agree(tmp_path):
    # fork: real separate processes racing on one root, without re-importing torch in each
    with mp.get_context("fork").Pool(3) as pool:
        digests = pool.map(_write, [tmp_path] * 3)
    assert len(set(digests)) == 1
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".synthetic-")]  # no temp left
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == ["VOC2007", "VOC2012"]


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown data format 'kitti'; known: voc, coco, cityscapes"):
        write_synthetic("kitti", "/nonexistent")
    with pytest.raises(ValueError, match="at least 32x32"):
        write_synthetic("voc", "/nonexistent", image_size=(16, 16))


@pytest.mark.slow  # a fresh interpreter importing torch and detectron2
def test_make_synthetic_cli(tmp_path, capsys):
    args = ["--out", tmp_path, "--format", "coco", "--num-train", "2", "--num-test", "2", "--size", "64", "96"]
    r = run_tool("make_synthetic", *args, "--seed", "5")
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"coco: {tmp_path}\n"
    data = json.loads((tmp_path / "coco/annotations/instances_val2017.json").read_text())
    assert [(i["height"], i["width"]) for i in data["images"]] == [(64, 96)] * 2
    # Another seed into the same folder: refused with one line and status 1 (in-process: faster).
    capsys.readouterr()
    assert tool("make_synthetic")([str(a) for a in args] + ["--seed", "6"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {tmp_path} already holds a synthetic coco dataset") and err.count("\n") == 1


def test_make_synthetic_cli_default_size_is_the_familys(tmp_path, capsys):
    assert tool("make_synthetic")(["--out", str(tmp_path), "--format", "cityscapes", "--num-train", "2",
                                   "--num-test", "2"]) == 0
    assert capsys.readouterr().out == f"cityscapes: {tmp_path}\n"
    image = next((tmp_path / "cityscapes/leftImg8bit/val").rglob("*_leftImg8bit.png"))
    assert Image.open(image).size == (256, 128)


def test_size_real_writes_the_protocol_training_size(tmp_path, capsys):
    """`--size real` (gpu_acceptance's memory and loader figures): VOC at the largest training short side
    of voc07's config at 4:3, Cityscapes at the full 1024x2048 of its config; anything else is refused."""
    from benchmark.tasks import get_task
    from benchmark.tasks.config import protocol_config, real_image_size

    voc = protocol_config(get_task("voc07"))
    assert real_image_size("voc") == (max(voc.INPUT.MIN_SIZE_TRAIN), 1067) == (800, 1067)
    assert real_image_size("cityscapes") == (1024, 2048)
    assert real_image_size("imagenet") == (256, 341)
    assert tool("make_synthetic")(["--out", str(tmp_path), "--format", "voc", "--size", "real",
                                   "--num-train", "2", "--num-test", "2"]) == 0
    images = sorted((tmp_path / "VOC2007" / "JPEGImages").glob("*.jpg"))
    assert len(images) == 4 and {Image.open(p).size for p in images} == {(1067, 800)}  # PIL: (width, height)
    for bad in (["5"], ["real", "3"], ["a", "b"]):
        with pytest.raises(SystemExit) as exit_:
            tool("make_synthetic")(["--out", str(tmp_path / "x"), "--size", *bad])
        assert exit_.value.code == 2
        assert "--size: expected two whole numbers H W or 'real'" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
