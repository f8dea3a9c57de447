"""The imagenet family: ImageFolder layout (imagenet/{train,val}/<wnid>/*), its synthetic tree,
registration (val labels index the training split's classes) and the layout check, whose refusals
come before any compute as one line each, from the CLI with exit status 1 and nothing written."""
import shutil

import numpy as np
import pytest
from detectron2.data import DatasetCatalog
from PIL import Image

from benchmark.data import get_family, register_datasets, validate_layout, write_synthetic
from benchmark.data.checks import DatasetLayoutError
from benchmark.data.imagenet import synthetic_classes
from benchmark.tasks import get_task
from tests.helpers.tools import tool


@pytest.fixture(scope="module")
def root(module_tmp):
    return write_synthetic("imagenet", module_tmp / "data", num_train=12, num_test=8)


def test_synthetic_tree_is_an_imagefolder_of_colour_classes(root):
    classes = synthetic_classes(8)
    assert classes == ["n90000000", "n90000001", "n90000002", "n90000003"]
    for split, per_class in (("train", 3), ("val", 2)):
        assert sorted(p.name for p in (root / "imagenet" / split).iterdir()) == classes
        for c in classes:
            assert len(list((root / "imagenet" / split / c).glob("*.png"))) == per_class
    # Separable by colour: each class's mean colour is far from every other's, across splits.
    means = {(split, c): np.mean([np.asarray(Image.open(p), np.float32).mean((0, 1))
                                  for p in (root / "imagenet" / split / c).glob("*.png")], 0)
             for split in ("train", "val") for c in classes}
    for a in classes:
        nearest = min(classes, key=lambda b: np.linalg.norm(means[("val", a)] - means[("train", b)]))
        assert nearest == a
    assert Image.open(next((root / "imagenet/train/n90000000").glob("*.png"))).size == (48, 48)


def test_sanity_tree_copies_the_training_images_into_val(tmp_path):
    r = write_synthetic("imagenet", tmp_path, num_train=8, num_test=8, sanity=True)
    train = sorted(p.read_bytes() for p in (r / "imagenet/train").rglob("*.png"))
    assert train == sorted(p.read_bytes() for p in (r / "imagenet/val").rglob("*.png"))


def test_registration_labels_index_the_training_classes(root):
    names = register_datasets(get_task("imagenet_linear"), root)
    assert list(names) == ["imagenet_train", "imagenet_val"]
    train, val = (DatasetCatalog.get(names[n]) for n in names)
    assert (len(train), len(val)) == (12, 8)
    for dicts in (train, val):
        for d in dicts:
            assert d["file_name"].split("/")[-2] == synthetic_classes(8)[d["label"]]
    assert sorted({d["label"] for d in val}) == [0, 1, 2, 3]


def test_the_synthetic_tree_validates(root):
    validate_layout(get_task("imagenet_linear"), root)
    assert get_family("imagenet").tops == ("imagenet",)


# ----------------------------------------------------------------------------- bad layouts

def _remove_train(r):
    shutil.rmtree(r / "imagenet/train")


def _remove_val(r):
    shutil.rmtree(r / "imagenet/val")


def _extra_val_class(r):
    shutil.copytree(r / "imagenet/val/n90000003", r / "imagenet/val/n01440764")


def _missing_val_class(r):
    shutil.rmtree(r / "imagenet/val/n90000002")


def _unreadable_image(r):
    (r / "imagenet/train/n90000001/broken.JPEG").write_bytes(b"this is no image")


def _truncated_jpeg(r):
    path = r / "imagenet/val/n90000000/cut.JPEG"
    Image.new("RGB", (48, 48), (200, 30, 30)).save(path, quality=90)
    path.write_bytes(path.read_bytes()[:-200])


def _empty_class(r):
    for p in (r / "imagenet/val/n90000001").iterdir():
        p.unlink()


def _flat_val(r):
    val = r / "imagenet/val"
    for p in list(val.rglob("*.png")):
        p.rename(val / p.name)
    for d in [d for d in val.iterdir() if d.is_dir()]:
        d.rmdir()


BAD = {
    "missing train": (_remove_train, "dataset imagenet_train: missing folder {root}/imagenet/train"),
    "missing val": (_remove_val, "dataset imagenet_val: missing folder {root}/imagenet/val"),
    "class set differs: extra": (_extra_val_class, "dataset imagenet_val: class folders differ from "
                                 "{root}/imagenet/train's: 1 classes not in the training split (n01440764), in "
                                 "{root}/imagenet/val"),
    "class set differs: missing": (_missing_val_class, "dataset imagenet_val: class folders differ from "
                                   "{root}/imagenet/train's: 1 classes of the training split missing (n90000002), "
                                   "in {root}/imagenet/val"),
    "unreadable image": (_unreadable_image, "dataset imagenet_train: unreadable image (UnidentifiedImageError: not an "
                         "image PIL can read) {root}/imagenet/train/n90000001/broken.JPEG"),
    "truncated jpeg": (_truncated_jpeg, "dataset imagenet_val: truncated image (its JPEG end marker is missing; copy or "
                       "download the file again) {root}/imagenet/val/n90000000/cut.JPEG"),
    "empty class folder": (_empty_class, "dataset imagenet_val: class folder n90000001 without images"),
    "val not in class folders": (_flat_val, "dataset imagenet_val: no class folders (<wnid>/) but 8 images directly "
                                 "in {root}/imagenet/val; move each image into the folder of its class "
                                 "(datasets.md: ImageNet val, valprep.sh)"),
}


@pytest.fixture
def bad_root(root, tmp_path):
    r = tmp_path / "data"
    shutil.copytree(root / "imagenet", r / "imagenet")
    return r


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_layout_is_refused_by_the_check_in_one_line(bad_root, case):
    damage, message = BAD[case]
    damage(bad_root)
    with pytest.raises(DatasetLayoutError) as exc:
        validate_layout(get_task("imagenet_linear"), bad_root)
    text = str(exc.value)
    assert "\n" not in text and text.startswith(message.format(root=bad_root)), text
    assert text.endswith("(expected layout and preparation: see datasets.md)")


@pytest.mark.parametrize("case", ["missing train", "class set differs: extra", "unreadable image"])
def test_the_cli_refuses_a_bad_layout_before_any_compute(bad_root, case, tmp_path, synthetic_checkpoint, capsys):
    damage, message = BAD[case]
    damage(bad_root)
    before = sorted((p.relative_to(bad_root), p.stat().st_size) for p in bad_root.rglob("*"))
    out = tmp_path / "out"
    rc = tool("run_transfer")(["--task", "imagenet_linear", "--weights", str(synthetic_checkpoint("moco", width=8)),
                               "--data-root", str(bad_root), "--output", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and err[0].startswith("error: " + message.format(root=bad_root)), err
    assert not out.exists()  # nothing written
    assert sorted((p.relative_to(bad_root), p.stat().st_size) for p in bad_root.rglob("*")) == before  # input intact
