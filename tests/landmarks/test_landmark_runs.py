"""mafl_landmarks end to end on CPU: the model's pieces, a `--smoke` run through the real CLI on a width-8
ResNet-50, and the learning check (`--sanity`), which passes and fails when the training landmark file
has x and y swapped (tests/learning/test_learning.py does the same for the other families)."""
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmark.data import mafl
from benchmark.engine import sanity
from benchmark.records import results
from benchmark.tasks import get_task
from tests.helpers.tools import tool

TASK = get_task("mafl_landmarks")


# ----------------------------------------------------------------------------- units

def test_the_protocol_is_dves_head_on_dves_crop():
    from benchmark.tasks.config import protocol_config

    cfg = protocol_config(TASK)
    lm = cfg.BENCHMARK.LANDMARKS
    assert (lm.CROP_TOP, lm.CROP_LEFT, lm.CROP_SIZE) == (30, 0, 178)
    assert (list(lm.PIXEL_MEAN), list(lm.PIXEL_STD)) == ([0.5084, 0.4224, 0.3769], [0.2599, 0.2371, 0.2323])
    assert (lm.NUM_LANDMARKS, lm.NUM_INTERMEDIATE, lm.SOFTARGMAX_MUL, lm.LOSS_SCALE, lm.AMSGRAD) == (5, 50, 100.0, 10.0, True)
    assert (cfg.SOLVER.BASE_LR, cfg.SOLVER.WEIGHT_DECAY) == (0.001, 0.0005)
    assert (cfg.MODEL.BACKBONE.FREEZE_AT, list(cfg.MODEL.RESNETS.OUT_FEATURES)) == (5, ["res5"])
    ids = [a.split(":")[0] for a in TASK.assumptions]
    assert sorted(ids) == ["landmark-head", "landmark-input", "landmark-schedule", "mafl-test-overlap"]


def test_soft_argmax_finds_a_peak_at_its_cell_centre():
    from benchmark.tasks.landmarks import soft_argmax

    heat = torch.zeros(1, 2, 4, 8)
    heat[0, 0, 1, 6] = 1.0  # row 1 of 4, column 6 of 8
    heat[0, 1] = 0.0  # flat: the centre
    points = soft_argmax(heat, 100.0)
    assert points[0, 0].tolist() == pytest.approx([(2 * 6 + 1) / 8 - 1, (2 * 1 + 1) / 4 - 1], abs=1e-6)
    assert points[0, 1].tolist() == pytest.approx([0.0, 0.0], abs=1e-6)


def test_landmarks_are_cropped_and_scaled_to_the_square_crop():
    from benchmark.engine.landmarks import crop_and_scale
    from benchmark.tasks.config import protocol_config

    cfg = protocol_config(TASK)
    got = crop_and_scale([[0, 30], [177, 207], [88.5, 118.5]], cfg)
    expected = [[-1 + 1 / 178, -1 + 1 / 178], [1 - 1 / 178, 1 - 1 / 178], [0.0, 0.0]]
    assert got.reshape(-1).tolist() == pytest.approx(np.reshape(expected, -1).tolist(), abs=1e-12)


def test_only_the_head_learns_and_the_backbone_stays_in_eval_mode():
    from detectron2.modeling import build_model

    from benchmark.tasks.config import build_config

    settings = {"MODEL.RESNETS.STEM_OUT_CHANNELS": 8, "MODEL.RESNETS.RES2_OUT_CHANNELS": 32,
                "MODEL.RESNETS.WIDTH_PER_GROUP": 8}
    cfg, _ = build_config(TASK, settings, ["BENCHMARK.LANDMARKS.INPUT_SIZE", 64])
    model = build_model(cfg).train()
    assert not model.backbone.training
    learning = sorted(n for n, p in model.named_parameters() if p.requires_grad)
    assert learning == ["heatmaps.bias", "heatmaps.weight", "regressor.weight"]
    assert model.regressor.weight.shape == (5, 1, 50) and model.regressor.bias is None
    batch = {"image": torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8), "landmarks": torch.zeros(2, 5, 2),
             "index": torch.tensor([0, 1])}
    loss = model(batch)["loss_landmarks"]
    assert loss.ndim == 0 and math.isfinite(float(loss.detach()))
    assert sorted(model.feature_cache) == [0, 1]  # the frozen features, kept for the next epochs
    model.eval()
    assert model(batch).shape == (2, 5, 2)


# ----------------------------------------------------------------------------- smoke, through the CLI

@pytest.fixture(scope="module")
def r50(module_tmp):
    """A torchvision-layout ResNet-50 of width 8 initialised as torchvision's ResNet (tests/learning's reason)."""
    from benchmark.weights.synthetic import make_synthetic_checkpoint

    return make_synthetic_checkpoint(module_tmp / "r50_w8.pth", "torchvision", 0, 50, 8, "torchvision")


class _Killed(Exception):
    pass


def _smoke(module_tmp, out, *extra):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BENCHMARK_CACHE", str(module_tmp / "cache"))  # one synthetic tree and conversion for the module
        return tool("run_transfer")(["--task", "mafl_landmarks", "--weights", str(extra[0]), "--smoke", "--output",
                                     str(out), *map(str, extra[1:])])


@pytest.fixture(scope="module")
def smoke_run(module_tmp, r50):
    out = module_tmp / "smoke"
    return _smoke(module_tmp, out, r50), out


def test_smoke_run_writes_a_record_with_a_finite_inter_ocular_error(smoke_run, module_tmp, r50):
    rc, out = smoke_run
    assert rc == 0
    trial = out / "trial_0"
    record = results.read_record(trial / results.RECORD_NAME)
    assert (record.task, record.status, record.kind, record.iterations) == ("mafl_landmarks", "finished", "smoke", 4)
    error = record.metrics["landmarks"]["iod_error"]
    assert error is not None and math.isfinite(error) and error > 0
    assert any(a.startswith("mafl-test-overlap:") for a in record.assumptions)
    rows = [json.loads(line) for line in (trial / "metrics.json").read_text().splitlines()]
    assert [r["iteration"] for r in rows if "total_loss" in r] == [0, 1, 2, 3]  # LOG_PERIOD 1
    assert any("landmarks/iod_error" in r for r in rows)
    assert "eta:" in (trial / "log.txt").read_text()
    state = torch.load(trial / "landmark_checkpoint.pth", weights_only=True)
    assert (state["epoch"], state["iteration"], sorted(state["head"])) == (2, 3, ["heatmaps", "regressor"])
    assert (trial / "last_checkpoint").read_text() == "landmark_checkpoint.pth"
    assert [r["lr"] for r in rows if "lr" in r] == pytest.approx([0.001] * 4)  # Adam's constant LR
    # --eval-only --resume evaluates the saved head: the trained run's number again
    rc = _smoke(module_tmp, out, r50, "--eval-only", "--resume")
    again = results.read_record(trial / "eval_only" / results.RECORD_NAME)
    assert rc == 0 and again.iterations == 4
    assert again.metrics["landmarks"]["iod_error"] == pytest.approx(error, abs=1e-6)


def test_a_run_stopped_after_an_epoch_resumes_to_the_uninterrupted_head(smoke_run, module_tmp, r50):
    from unittest import mock

    from benchmark.engine.epochs import EpochCheckpoint

    _, uninterrupted = smoke_run
    out = module_tmp / "killed"
    after_step = EpochCheckpoint.after_step

    def stop_after_first_epoch(self):
        after_step(self)
        if self._owner.iter + 1 == self._owner.iters_per_epoch:
            raise _Killed("stopped after epoch 1")

    with mock.patch.object(EpochCheckpoint, "after_step", stop_after_first_epoch):
        assert _smoke(module_tmp, out, r50) == 1  # a failed record, its checkpoint of epoch 1 kept
    assert torch.load(out / "trial_0" / "landmark_checkpoint.pth", weights_only=True)["epoch"] == 1
    assert _smoke(module_tmp, out, r50) == 0  # the same command again resumes
    record = results.read_record(out / "trial_0" / results.RECORD_NAME)
    assert record.status == "finished" and record.resume.count == 1
    assert record.resume.from_iterations == (2,) and record.resume.exact is True
    resumed = torch.load(out / "trial_0" / "landmark_checkpoint.pth", weights_only=True)["head"]
    straight = torch.load(uninterrupted / "trial_0" / "landmark_checkpoint.pth", weights_only=True)["head"]
    for module in straight:
        for key in straight[module]:
            assert torch.equal(resumed[module][key], straight[module][key]), (module, key)
    assert record.metrics == results.read_record(uninterrupted / "trial_0" / results.RECORD_NAME).metrics


def test_two_gloo_processes_give_the_one_process_numbers(smoke_run, module_tmp, r50):
    """The same global batches split over 2 processes (gradients averaged) and the test faces sharded and
    gathered (each once): the same error, up to float summation order."""
    _, one = smoke_run
    out = module_tmp / "two"
    assert _smoke(module_tmp, out, r50, "--num-gpus", 2) == 0
    record = results.read_record(out / "trial_0" / results.RECORD_NAME)
    assert (record.status, record.world_size, record.ims_per_batch, record.iterations) == ("finished", 2, 4, 4)
    single = results.read_record(one / "trial_0" / results.RECORD_NAME)
    assert record.metrics["landmarks"]["iod_error"] == pytest.approx(single.metrics["landmarks"]["iod_error"], abs=1e-4)
    # The heads are not compared weight by weight: Adam divides each step by the gradient's running RMS,
    # so a weight whose gradient is ~0 (a saturated soft-argmax) moves by up to the LR in a direction
    # set by summation-order noise; the predictions, which those weights barely affect, agree.


# ----------------------------------------------------------------------------- learning check

def _sanity(tmp_path, weights, data_root):
    out = tmp_path / "sanity"
    rc = tool("run_transfer")(["--task", "mafl_landmarks", "--weights", str(weights), "--sanity", "--output", str(out),
                               "--data-root", str(data_root)])
    record = results.read_record(out / "trial_0" / results.RECORD_NAME)
    return rc, sanity.score_of(record, TASK)[0], record


def test_the_mean_shape_is_far_from_the_threshold(tmp_path):
    """The check's chance argument, recomputed from its data."""
    from benchmark.data.evaluators import inter_ocular_error

    check = sanity.check_for(TASK)
    celeba = sanity.write_data(TASK, tmp_path / "data") / "celeba"
    names = mafl.read_names(celeba / "MAFL" / "training.txt")
    points = np.array([mafl.read_landmarks(celeba / mafl.LANDMARK_FILE)[n] for n in names])
    mean_shape = np.broadcast_to(points.mean(axis=0), points.shape).copy()
    error = inter_ocular_error(mean_shape, points)
    assert len(names) == check.num_images and error == pytest.approx(sanity.MAFL_MEAN_SHAPE_ERROR, abs=0.05)
    assert error > 2 * check.threshold and check.comparison(TASK) == "<="


def swap_training_xy(root):
    """Bug: the training faces' rows of the landmark file hold y, x where CelebA has x, y."""
    celeba = Path(root) / "celeba"
    train = set(mafl.read_names(celeba / "MAFL" / "training.txt"))
    path = celeba / mafl.LANDMARK_FILE
    lines = path.read_text().splitlines()
    for k, line in enumerate(lines):
        parts = line.split()
        if parts and parts[0] in train:
            values = parts[1:]
            lines[k] = " ".join([parts[0]] + [v for i in range(0, len(values), 2) for v in (values[i + 1], values[i])])
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("bug", [None, "x/y swapped in the training landmarks"])
def test_learning_check_passes_and_fails_on_swapped_coordinates(bug, tmp_path, r50, capsys):
    check = sanity.check_for(TASK)
    data = sanity.write_data(TASK, tmp_path / "data")
    if bug:
        swap_training_xy(data)
    rc, score, record = _sanity(tmp_path, r50, data)
    printed = capsys.readouterr().out
    print(f"landmark learning check, bug {bug}: {check.metric} = {score} in {record.duration_s:.0f} s")
    assert record.status == "finished" and record.kind == "sanity"
    assert record.deviations[0].startswith("sanity run") and "landmarks/iod_error <= 20" in record.deviations[0]
    if bug is None:
        assert rc == 0 and score <= check.threshold, printed[-2000:]
        assert f"{check.metric} = {score:.1f} (threshold 20): PASS" in printed
    else:
        assert rc == sanity.EXIT_BELOW_THRESHOLD and score > 2 * check.threshold, (score, printed[-2000:])
        assert "FAIL" in printed and "misses landmarks/iod_error <= 20" in printed
