"""Learning checks (benchmark.engine.sanity, `tools/run_transfer.py --sanity`): each task family's own
pipeline learns a few easy images, and fails the check when a label bug is injected into its data.

Every run here is the CLI's --sanity run (same overlay, same data, same threshold), with a
ResNet-50 of width 8 initialised as torchvision initialises a ResNet (Kaiming-normal convolutions,
BN weight 1 / bias 0): the real depth, code path and conversion, at a cost CI's 2 cores afford
(width 64 takes ~10x longer per iteration). Not the suite's synthetic checkpoints: their N(0, 1)
weights and BN scales are what no initialised or trained network has, and under BN they make each
SGD step ~400x smaller on the convolutions than on a real network's, so they learn too slowly to
test learning. The bugs are injected into the training split only (its files, as a data-preparation
bug would be, or its registration where the dataset check would refuse the files first); the
evaluator reads the test split's correct files (the same images).

Why the thresholds cannot be passed by chance: see SanityCheck.chance of each family
(benchmark.engine.sanity.CHECKS); the injected-bug runs below show how far a wrong label falls.
"""
import dataclasses
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmark.engine import sanity
from benchmark.records import results
from benchmark.tasks import get_task
from tests.helpers.tools import tool


@pytest.fixture(scope="module")
def initialised_r50(synthetic_checkpoint):
    """A torchvision-layout ResNet-50 of width 8, initialised as torchvision's ResNet.__init__ does."""
    return synthetic_checkpoint("torchvision", width=8, init="torchvision")


def sanity_run(tmp_path, task, weights, data_root=None):
    """`run_transfer --sanity` in this process; (exit status, score, record)."""
    out = tmp_path / "out"
    args = ["--task", task, "--weights", str(weights), "--sanity", "--output", str(out)]
    if data_root is not None:
        args += ["--data-root", str(data_root)]
    rc = tool("run_transfer")(args)
    record = results.read_record(out / "trial_0" / results.RECORD_NAME)
    score, _ = sanity.score_of(record, get_task(task))
    return rc, score, record


# ----------------------------------------------------------------------------- the checks pass

@pytest.mark.slow
@pytest.mark.parametrize("task", ["voc07", "coco", "cityscapes"])
def test_learning_check_passes(task, tmp_path, initialised_r50, capsys):
    check = sanity.check_for(get_task(task))
    rc, score, record = sanity_run(tmp_path, task, initialised_r50)
    printed = capsys.readouterr().out
    print(f"learning check {task}: {check.metric} = {score} in {record.duration_s:.0f} s")  # pytest -rP shows it
    assert rc == 0, printed[-2000:]
    assert score >= check.threshold, (check.metric, score)
    assert f"{check.metric} = {score:.1f} (threshold {check.threshold:g}): PASS" in printed
    assert record.kind == "sanity" and record.status == "finished"
    assert record.iterations == sanity_iterations(task)
    assert record.deviations[0].startswith("sanity run (learning check)")


def sanity_iterations(task):
    pairs = sanity.overlay_pairs(get_task(task))
    return int(pairs[pairs.index("SOLVER.MAX_ITER") + 1])


# ----------------------------------------------------------------------------- and fail on a bug

def _training_xmls(root):
    voc = Path(root) / "VOC2007"
    ids = (voc / "ImageSets" / "Main" / "trainval.txt").read_text().split()
    return [voc / "Annotations" / f"{i}.xml" for i in ids]


def _rewrite_xml(path, change):
    tree = ET.parse(path)
    for obj in tree.getroot().iter("object"):
        change(obj)
    tree.write(path)


def shift_voc_class_ids(root):
    """Bug: each training object's class is the next one (contiguous class id + 1)."""
    from detectron2.data.datasets.pascal_voc import CLASS_NAMES

    def change(obj):
        name = obj.find("name")
        name.text = CLASS_NAMES[(CLASS_NAMES.index(name.text) + 1) % len(CLASS_NAMES)]

    for path in _training_xmls(root):
        _rewrite_xml(path, change)


def voc_boxes_as_xywh(monkeypatch):
    """Bug: the training dataset's boxes are x, y, width, height where detectron2's XYXY_ABS is expected.

    Injected in our dataset registration (the voc family's `register_split`), not in the files: written
    into the XML, the bug leaves boxes outside the image or empty, which the dataset check refuses
    before any training (benchmark.data.voc.check) -- a good catch, but not the learning check's.
    """
    from detectron2.data import DatasetCatalog
    from detectron2.data.datasets.pascal_voc import CLASS_NAMES, load_voc_instances

    from benchmark.data import families, voc

    correct = voc.register

    def register_voc(registered, *, dirname, split, year):
        correct(registered, dirname=dirname, split=split, year=year)  # the metadata the evaluator reads
        if split != "trainval":
            return

        def load():
            dicts = load_voc_instances(dirname, split, CLASS_NAMES)
            for d in dicts:
                for ann in d["annotations"]:
                    x0, y0, x1, y1 = ann["bbox"]
                    ann["bbox"] = [x0, y0, x1 - x0, y1 - y0]  # bbox_mode stays BoxMode.XYXY_ABS
            return dicts

        DatasetCatalog.remove(registered)
        DatasetCatalog.register(registered, load)

    monkeypatch.setattr(families, "FAMILIES", {**families.FAMILIES, "voc": dataclasses.replace(voc.FAMILY, register_split=register_voc)})


def shift_cityscapes_train_ids(root):
    """Bug: the training labelTrainIds PNGs hold each class's id + 1 (ignore 255 kept)."""
    paths = sorted((Path(root) / "cityscapes" / "gtFine" / "train").rglob("*_gtFine_labelTrainIds.png"))
    assert paths
    for path in paths:
        ids = np.asarray(Image.open(path)).astype(np.int64)
        shifted = np.where(ids == 255, 255, (ids + 1) % 19).astype(np.uint8)
        Image.fromarray(shifted).save(path)


BUGS = {
    "class ids shifted by one": ("voc07", shift_voc_class_ids),
    "boxes as XYWH where XYXY is expected": ("voc07", voc_boxes_as_xywh),
    "label PNG ids shifted": ("cityscapes", shift_cityscapes_train_ids),
}


@pytest.mark.slow
@pytest.mark.parametrize("bug", list(BUGS))
def test_learning_check_fails_on_an_injected_bug(bug, tmp_path, initialised_r50, capsys, monkeypatch):
    task, inject = BUGS[bug]
    check = sanity.check_for(get_task(task))
    data = sanity.write_data(get_task(task), tmp_path / "data")  # the check's own data; the run reuses it as it is
    if inject is voc_boxes_as_xywh:  # in the registration, not the files
        inject(monkeypatch)
    else:
        inject(data)
    rc, score, record = sanity_run(tmp_path, task, initialised_r50, data_root=data)
    printed = capsys.readouterr().out
    print(f"learning check {task} with bug {bug!r}: {check.metric} = {score} in {record.duration_s:.0f} s")
    assert record.status == "finished"  # the pipeline ran; only what it learnt is wrong
    assert rc == sanity.EXIT_BELOW_THRESHOLD, printed[-2000:]
    assert score < check.threshold / 2, (bug, check.metric, score)  # far below, not a near miss
    assert "FAIL" in printed and "sanity check FAILED" in printed


# ----------------------------------------------------------------------------- set-up, no training

def test_sanity_run_is_apart_from_real_runs(synthetic_checkpoint):
    from benchmark.engine import Options, prepare

    weights = synthetic_checkpoint("moco", width=8)
    job = prepare(Options(task="voc07", weights=str(weights), sanity=True))[0]
    full = prepare(Options(task="voc07", weights=str(weights), data_root=job.data_root))[0]
    assert job.kind == "sanity" and full.kind == "full"
    assert job.output_dir == Path("output", "sanity", "voc07", full.weights["name"], "trial_0")
    assert full.output_dir == Path("output", "voc07", full.weights["name"], "trial_0")
    assert job.protocol_digest != full.protocol_digest
    assert job.cfg.SOLVER.MAX_ITER == sanity_iterations("voc07") and job.cfg.SOLVER.IMS_PER_BATCH == 4
    # The overlay's keys are summed up in one deviation line, not listed as command-line options.
    assert job.deviations[0].startswith("sanity run (learning check)") and "bbox/AP50 >= 90" in job.deviations[0]
    assert not any("from the command line" in d for d in job.deviations), job.deviations
    # The check's data: the test split holds the training images again, byte for byte.
    voc = Path(job.data_root) / "VOC2007"
    train = (voc / "ImageSets" / "Main" / "trainval.txt").read_text().split()
    test = (voc / "ImageSets" / "Main" / "test.txt").read_text().split()
    assert len(train) == len(test) == 4 and not set(train) & set(test)
    for a, b in zip(train, test):
        assert (voc / "JPEGImages" / f"{a}.jpg").read_bytes() == (voc / "JPEGImages" / f"{b}.jpg").read_bytes()


@pytest.mark.parametrize("flag", ["--smoke", "--eval-only"])
def test_sanity_refuses_smoke_and_eval_only(flag, tmp_path, synthetic_checkpoint, capsys):
    rc = tool("run_transfer")(["--task", "voc07", "--weights", str(synthetic_checkpoint("moco", width=8)),
                               "--sanity", flag, "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and err == ["error: --sanity is a fine-tuning run of its own: it cannot be combined with "
                               "--smoke or --eval-only"]
    assert not (tmp_path / "out").exists()


def test_every_family_has_a_check_with_its_task_metric():
    from benchmark.tasks import list_tasks

    for task in list_tasks():
        check = sanity.check_for(task)
        assert check.metric in task.metrics, (task.name, check.metric)
        assert check.overlay_path.is_file()
        assert check.chance and check.threshold > 0


def test_sanity_refuses_a_real_runs_folder(tmp_path, synthetic_checkpoint, capsys):
    """--output pointing at a real run's finished trial: refused before training, the record kept as it is."""
    from benchmark.engine.runner import Options, prepare
    from tests.helpers.records import write_record

    weights = str(synthetic_checkpoint("moco", width=8))
    out = tmp_path / "real"
    job = prepare(Options(task="voc07", weights=weights, sanity=True, output=str(out)))[0]
    record = write_record(out / "trial_0", kind="full", weights=dict(job.weights), config_digest=job.digest)
    before = record.read_bytes()
    rc = tool("run_transfer")(["--task", "voc07", "--weights", weights, "--sanity", "--output", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and "it is a 'full' run and this one is 'sanity'" in err[0], err
    assert record.read_bytes() == before and sorted(p.name for p in (out / "trial_0").iterdir()) == ["results.json"]
