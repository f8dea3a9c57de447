"""The linear readoff (imagenet_linear, benchmark.engine.linear) on CPU: the backbone stays bit-identical,
a linear layer learns colour-separable classes, smoke runs through the CLI on 1 and 2 (gloo) processes
write one record, and a run killed after an epoch resumes to the uninterrupted run's weights."""
import functools
import json
import math
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import pytest
import torch

from benchmark.engine import runner, worker
from benchmark.records import results
from benchmark.tasks import get_task
from tests.helpers.tools import tool


def _cli(*args):
    return tool("run_transfer")([str(a) for a in args])


@pytest.fixture(scope="module")
def work(module_tmp, synthetic_checkpoint):
    """A MoCo-layout width-8 ResNet-50 initialised as torchvision's ResNet.__init__ does, and a cache.

    The default synthetic checkpoints hold std-1 random convolutions: through 50 frozen layers their
    features reach ~1e34 and any linear layer on them overflows at the protocol's LR 30. A backbone
    initialised like a real network (He-normal convolutions, BN at identity) gives features of order 1,
    as a pretrained one does.
    """
    root = module_tmp / "linear"
    root.mkdir()
    return SimpleNamespace(root=root, ckpt=synthetic_checkpoint("moco", width=8, init="torchvision"),
                           cache=root / "cache")


def _trainer(work, data_root, *opts):
    """A LinearTrainer of the smoke config in this process (world size 1), on `data_root`."""
    from detectron2.utils.env import seed_all_rng

    from benchmark.data import register_datasets
    from benchmark.engine.linear import LinearTrainer
    from benchmark.engine.worker import _with_registered_datasets
    from benchmark.tasks.config import build_config
    from benchmark.weights.convert import prepare_weights

    weights = prepare_weights(work.ckpt, cache_dir=work.cache)
    cfg, _ = build_config(get_task("imagenet_linear"), weights.input_settings, list(opts), smoke=True)
    cfg = cfg.clone()
    cfg.defrost()
    cfg.MODEL.WEIGHTS, cfg.OUTPUT_DIR, cfg.SEED = str(weights.path), str(work.root / "direct"), 0
    cfg = _with_registered_datasets(cfg, register_datasets(get_task("imagenet_linear"), data_root))
    seed_all_rng(0)  # the linear layer's initialisation, as the runner seeds it; else it follows test order
    return LinearTrainer(cfg)


# ----------------------------------------------------------------------------- units (fast)

def test_the_protocol_is_main_lincls():
    from benchmark.tasks.config import protocol_config

    cfg = protocol_config(get_task("imagenet_linear"))
    lin = cfg.BENCHMARK.LINEAR
    assert (cfg.SOLVER.BASE_LR, cfg.SOLVER.MOMENTUM, cfg.SOLVER.WEIGHT_DECAY, cfg.SOLVER.IMS_PER_BATCH) == (30.0, 0.9, 0.0, 256)
    assert (lin.EPOCHS, tuple(lin.LR_STEPS), cfg.SOLVER.GAMMA) == (100, (60, 80), 0.1)
    assert (lin.TRAIN_CROP, lin.TEST_RESIZE, lin.TEST_CROP, lin.INIT_STD, lin.NUM_CLASSES) == (224, 256, 224, 0.01, 1000)
    assert (cfg.MODEL.BACKBONE.FREEZE_AT, list(cfg.MODEL.RESNETS.OUT_FEATURES), cfg.MODEL.RESNETS.DEPTH) == (5, ["res5"], 50)
    assert cfg.SOLVER.MAX_ITER == 100 * math.ceil(1281167 / 256)  # the cost estimate's iterations


def test_the_model_normalizes_as_torchvision_and_trains_only_the_linear_layer():
    import torchvision.transforms.functional as TF
    from detectron2.modeling import build_model

    from benchmark.tasks.config import build_config

    settings = {"INPUT.FORMAT": "RGB", "MODEL.PIXEL_MEAN": [123.675, 116.28, 103.53],
                "MODEL.PIXEL_STD": [58.395, 57.12, 57.375], "MODEL.RESNETS.STRIDE_IN_1X1": False}
    cfg, _ = build_config(get_task("imagenet_linear"), settings)
    model = build_model(cfg)
    image = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8)
    ours = (image.float() - model.pixel_mean) / model.pixel_std
    theirs = TF.normalize(image.float() / 255, mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
    assert torch.allclose(ours, theirs, atol=1e-5)  # MoCo's ToTensor + Normalize
    model.train()
    assert model.training and not model.backbone.training  # eval mode whatever train() says
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["fc.weight", "fc.bias"]
    assert model.fc.in_features == 2048 and model.fc.out_features == 1000 and not model.fc.bias.any()
    assert model.fc.weight.std().item() == pytest.approx(0.01, rel=0.05)


def test_the_evaluator_counts_top1_and_top5():
    from benchmark.data.evaluators import ClassificationEvaluator

    logits = torch.tensor([[9.0, 1, 2, 3, 4, 5, 6], [0.0, 9, 8, 7, 6, 5, 4], [0.0, 1, 2, 3, 4, 5, 6]])
    labels = torch.tensor([0, 5, 0])  # right; 5th highest: in the top 5 only; lowest: in neither
    ev = ClassificationEvaluator()
    ev.process({"label": labels[:2]}, logits[:2])
    ev.process({"label": labels[2:]}, logits[2:])
    assert ev.evaluate() == {"cls": {"top1": pytest.approx(100 / 3), "top5": pytest.approx(200 / 3)}}


def test_each_epochs_order_and_crops_are_a_function_of_seed_and_epoch(tmp_path):
    from detectron2.config import CfgNode

    from benchmark.data import write_synthetic
    from benchmark.data.imagenet import imagefolder_files
    from benchmark.engine.linear import EpochLoader, ImageSplit, collate, train_transform

    root = write_synthetic("imagenet", tmp_path, num_train=12, num_test=4)
    dicts = [{"file_name": p, "label": i % 4} for i, (p, _) in enumerate(imagefolder_files(root / "imagenet/train"))]
    cfg = CfgNode({"SEED": 3, "SOLVER": {"IMS_PER_BATCH": 4}, "DATALOADER": {"NUM_WORKERS": 0},
                   "MODEL": {"DEVICE": "cpu"}, "BENCHMARK": {"LINEAR": {"TRAIN_CROP": 16}}})

    def batches(start_epoch=0):
        loader = EpochLoader(ImageSplit(dicts, train_transform(cfg)), cfg, epochs=2, collate=collate)
        loader.start_epoch = start_epoch
        return [(b["image"], b["label"]) for b in loader]

    a, b = batches(), batches()
    assert len(a) == 6 and all(torch.equal(x[0], y[0]) and torch.equal(x[1], y[1]) for x, y in zip(a, b))
    assert not torch.equal(a[0][0], a[3][0])  # epoch 1 is another order and other crops
    resumed = batches(start_epoch=1)  # what a run resumed at epoch 1 sees
    assert all(torch.equal(x[0], y[0]) for x, y in zip(resumed, a[3:]))


# ----------------------------------------------------------------------------- training (slow)

@pytest.mark.slow
def test_the_backbone_and_its_bn_statistics_are_bit_identical_after_training(work, tmp_path):
    from benchmark.data import write_synthetic

    data = write_synthetic("imagenet", tmp_path / "data", num_train=16, num_test=4)
    trainer = _trainer(work, data)
    backbone = trainer.classifier.backbone
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    stats = [k for k in before if k.endswith(("running_mean", "running_var"))]
    assert len(stats) == 2 * 53  # every norm of the ResNet-50 (stem + 16 blocks x 3 + 4 shortcuts) has its statistics
    fc_before = trainer.classifier.fc.weight.detach().clone()
    trainer.train()
    assert trainer.iter == trainer.max_iter == 2 * 4  # 2 epochs of 16 images at batch 4
    after = backbone.state_dict()
    assert after.keys() == before.keys()
    for key, value in before.items():
        assert torch.equal(after[key], value), key  # bit for bit, BN statistics included
    assert not backbone.training and all(not p.requires_grad for p in backbone.parameters())
    assert not torch.equal(trainer.classifier.fc.weight, fc_before)  # ... while the linear layer learned


@pytest.mark.slow
def test_a_linear_layer_learns_colour_separable_classes_far_above_chance(work, tmp_path):
    """4 classes (one colour each), 64 training and 32 validation images: chance top-1 is 25%.

    30 epochs (120 steps): with 10, top-1 ranged 56-97% over the initialisation seeds 0-7; with 30 it
    is 94-100% for each of them.

    The threshold, 75% (24 of 32), is reached by guessing with probability < 1e-8 (binomial, p = 1/4),
    and by a constant prediction never (it scores 25%); the frozen features carry the colour (the
    network's first layers average it), so a trained linear layer must pass it.
    """
    from benchmark.data import write_synthetic

    data = write_synthetic("imagenet", tmp_path / "data", num_train=64, num_test=32)
    trainer = _trainer(work, data, "BENCHMARK.LINEAR.EPOCHS", 30, "BENCHMARK.LINEAR.LR_STEPS", "(24,)",
                       "SOLVER.IMS_PER_BATCH", 16)
    metrics = trainer.train()
    top1 = metrics["cls"]["top1"]
    print(f"linear readoff on 4 colour classes: top-1 {top1:.1f}% (chance 25%, threshold 75%)")
    assert top1 >= 75.0 and metrics["cls"]["top5"] == 100.0  # 4 classes: top-5 holds every class


def _smoke(work, out, *extra):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BENCHMARK_CACHE", str(work.cache))
        return _cli("--task", "imagenet_linear", "--weights", work.ckpt, "--smoke", "--output", out, *extra)


@pytest.fixture(scope="module")
def smoke_run(work):
    out = work.root / "smoke"
    return _smoke(work, out), out / "trial_0"


@pytest.mark.slow
def test_smoke_run_writes_a_record_with_finite_top1_and_top5(smoke_run, work):
    rc, trial = smoke_run
    assert rc == 0
    record = results.read_record(trial / "results.json")
    assert (record.task, record.status, record.kind, record.iterations) == ("imagenet_linear", "finished",
                                                                       "smoke", 4)
    for name in ("top1", "top5"):
        value = record.metrics["cls"][name]
        assert value is not None and math.isfinite(value) and 0.0 <= value <= 100.0
    assert record.metrics["cls"]["top5"] == 100.0  # 4 synthetic classes
    assert record.weights.format and len(record.weights.sha256) == 64
    assert [a.split(":")[0] for a in record.assumptions] == ["linear-readoff-recipe"]
    rows = [json.loads(line) for line in (trial / "metrics.json").read_text().splitlines()]
    assert [r["iteration"] for r in rows if "total_loss" in r] == [0, 1, 2, 3]  # LOG_PERIOD 1 (loss_cls alone)
    assert [r["lr"] for r in rows if "lr" in r] == pytest.approx([30.0, 30.0, 3.0, 3.0])  # x0.1 at epoch 1 (smoke)
    assert any("cls/top1" in r for r in rows)
    log = (trial / "log.txt").read_text()
    assert "eta:" in log and "epoch 2/2 done" in log
    state = torch.load(trial / "linear_checkpoint.pth", weights_only=True)
    assert (state["epoch"], state["iteration"], set(state["fc"])) == (2, 3, {"weight", "bias"})
    assert (trial / "last_checkpoint").read_text() == "linear_checkpoint.pth"


@pytest.mark.slow
def test_a_finished_smoke_trial_is_skipped(smoke_run, work, capsys):
    rc, trial = smoke_run
    before = (trial / "results.json").read_bytes()
    assert _smoke(work, trial.parent) == 0
    assert "finished earlier, skipped" in capsys.readouterr().out
    assert (trial / "results.json").read_bytes() == before


class _Killed(Exception):
    pass


@pytest.mark.slow
def test_a_run_stopped_after_an_epoch_resumes_to_the_uninterrupted_weights(smoke_run, work):
    from benchmark.engine.epochs import EpochCheckpoint

    _, uninterrupted = smoke_run
    out = work.root / "killed"
    after_step = EpochCheckpoint.after_step

    def stop_after_first_epoch(self):
        after_step(self)
        if self._owner.iter + 1 == self._owner.iters_per_epoch:
            raise _Killed("stopped after epoch 1")

    with mock.patch.object(EpochCheckpoint, "after_step", stop_after_first_epoch):
        assert _smoke(work, out) == 1  # a failed record, its checkpoint of epoch 1 kept
    assert torch.load(out / "trial_0" / "linear_checkpoint.pth", weights_only=True)["epoch"] == 1
    assert _smoke(work, out) == 0  # the same command again resumes
    record = results.read_record(out / "trial_0" / "results.json")
    assert record.status == "finished" and record.resume.count == 1
    assert record.resume.from_iterations == (2,) and record.resume.exact is True
    resumed = torch.load(out / "trial_0" / "linear_checkpoint.pth", weights_only=True)["fc"]
    straight = torch.load(uninterrupted / "linear_checkpoint.pth", weights_only=True)["fc"]
    for key in straight:
        assert torch.equal(resumed[key], straight[key]), key
    first = results.read_record(uninterrupted / "results.json")
    assert record.metrics == first.metrics


def run_one_saving_fc(job, dump_dir):
    """worker.run_one, plus each rank's linear layer after training (runs in the spawned processes)."""
    from detectron2.utils import comm

    from benchmark.engine.linear import LinearTrainer

    train = LinearTrainer.train

    def train_and_dump(self):
        out = train(self)
        torch.save({k: v.detach().clone() for k, v in self.classifier.fc.state_dict().items()},
                   Path(dump_dir) / f"fc_rank{comm.get_rank()}.pt")
        return out

    with mock.patch.object(LinearTrainer, "train", train_and_dump):
        return worker.run_one(job)


@pytest.mark.slow
def test_two_gloo_processes_write_one_record_with_identical_linear_weights(work, tmp_path, monkeypatch):
    dump = tmp_path / "fc"
    dump.mkdir()
    # launch() pickles the worker function by reference: the spawned processes import this module.
    monkeypatch.setattr(runner, "run_one", functools.partial(run_one_saving_fc, dump_dir=str(dump)))
    out = tmp_path / "out"
    assert _smoke(work, out, "--num-gpus", 2) == 0
    rank0, rank1 = (torch.load(dump / f"fc_rank{r}.pt") for r in (0, 1))
    assert rank0.keys() == rank1.keys() == {"weight", "bias"}
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key
    trial = out / "trial_0"
    assert sorted(p.name for p in trial.glob("*.json")) == ["attempts.json", "metrics.json", "results.json"]
    record = results.read_record(trial / "results.json")
    assert (record.status, record.world_size, record.ims_per_batch) == ("finished", 2, 4)
    assert record.iterations == 4  # 8 images, 2 per process per step: 2 iterations per epoch
    saved = torch.load(trial / "linear_checkpoint.pth", weights_only=True)["fc"]
    assert torch.equal(saved["weight"], rank0["weight"])
    assert all(math.isfinite(record.metrics["cls"][k]) for k in ("top1", "top5"))


@pytest.mark.slow
def test_the_learning_check_passes(work, tmp_path, capsys):
    """--sanity: 8 synthetic images of 4 colour classes, trained and evaluated on (benchmark.engine.sanity)."""
    from benchmark.engine import sanity

    check = sanity.check_for(get_task("imagenet_linear"))
    out = tmp_path / "out"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BENCHMARK_CACHE", str(work.cache))
        rc = _cli("--task", "imagenet_linear", "--weights", work.ckpt, "--sanity", "--output", out)
    record = results.read_record(out / "trial_0" / "results.json")
    score, passed = sanity.score_of(record, get_task("imagenet_linear"))
    print(f"imagenet_linear sanity: {check.metric} = {score} (threshold {check.threshold}; {check.chance})")
    assert rc == 0 and passed and record.kind == "sanity" and record.iterations == 30
    assert "PASS" in capsys.readouterr().out
