"""The number of processes does not change what is trained on: data order and augmentations are a
function of (seed, global batch index) (benchmark.engine.sampler, benchmark.engine.mapper); the
same seed as 1 process x 4 images and 2 processes x 2 images trains alike (slow test)."""
import itertools
import json
import random

import numpy as np
import pytest
import torch

from benchmark.engine.mapper import GlobalSeededMapper
from benchmark.engine.sampler import GLOBAL_INDEX_KEY, GlobalBatchSampler, GlobalOrder, GlobalOrderDataset
from benchmark.engine.trainer import rng_state, set_rng_state
from benchmark.records import results
from tests.helpers.tools import tool


def _take(sampler, n):
    return list(itertools.islice(iter(sampler), n))


@pytest.mark.parametrize("world_size", [1, 2, 4])
def test_ranks_concatenate_to_the_global_batches(world_size):
    batch, iterations = 4, 5
    per_rank = [_take(GlobalBatchSampler(batch, rank=r, world_size=world_size), iterations * batch // world_size)
                for r in range(world_size)]
    share = batch // world_size
    for i in range(iterations):
        global_batch = [g for r in range(world_size) for g in per_rank[r][i * share:(i + 1) * share]]
        assert global_batch == list(range(i * batch, (i + 1) * batch))  # rank r: positions r*B/W..(r+1)*B/W-1


def test_the_same_images_in_the_same_global_batches_for_every_world_size():
    order = GlobalOrder(size=7, seed=3)
    images = {}
    for world_size in (1, 2, 4):
        streams = [_take(GlobalBatchSampler(4, rank=r, world_size=world_size), 12 // world_size)
                   for r in range(world_size)]
        share = 4 // world_size
        images[world_size] = [[order.index(g) for r in range(world_size) for g in streams[r][i * share:(i + 1) * share]]
                              for i in range(3)]
    assert images[1] == images[2] == images[4]
    assert images[1][0] != images[1][1]  # shuffled, and batches move on through the epoch


def test_start_iteration_continues_the_stream_where_it_stopped():
    for world_size, rank in ((1, 0), (2, 1), (4, 2)):
        full = _take(GlobalBatchSampler(8, rank=rank, world_size=world_size), 10 * 8 // world_size)
        resumed = GlobalBatchSampler(8, rank=rank, world_size=world_size)
        resumed.set_start_iter(6)
        assert _take(resumed, 4 * 8 // world_size) == full[6 * 8 // world_size:]
        assert _take(GlobalBatchSampler(8, rank=rank, world_size=world_size, start_iter=6), 3) == full[6 * 8 // world_size:][:3]


def test_each_epoch_is_a_permutation_fixed_by_the_seed():
    order = GlobalOrder(size=10, seed=0)
    first, second = [order.index(g) for g in range(10)], [order.index(g) for g in range(10, 20)]
    assert sorted(first) == sorted(second) == list(range(10)) and first != second
    assert [GlobalOrder(10, 0).index(g) for g in range(25)] == [order.index(g) for g in range(25)]  # any instance
    assert [GlobalOrder(10, 1).index(g) for g in range(10)] != first  # another seed, another order
    assert [GlobalOrder(10, 0, shuffle=False).index(g) for g in range(12)] == [*range(10), 0, 1]
    assert order.index(10**9) in range(10)  # a late iteration needs no earlier epochs


@pytest.mark.parametrize("batch, world_size", [(3, 2), (0, 1), (4, 3)])
def test_batch_not_splitting_over_the_processes_is_refused(batch, world_size):
    with pytest.raises(ValueError, match="must be a positive multiple of the number of processes"):
        GlobalBatchSampler(batch, rank=0, world_size=world_size)


def _draws(record):
    return record["file_name"], float(np.random.rand()), random.random(), float(torch.rand(()))


def test_augmentation_randomness_is_a_function_of_seed_and_global_index():
    dataset = GlobalOrderDataset([{"file_name": f"{i}.jpg"} for i in range(5)], GlobalOrder(5, seed=0))
    mapper = GlobalSeededMapper(_draws, seed=0)
    assert GLOBAL_INDEX_KEY in dataset[7] and dataset[7][GLOBAL_INDEX_KEY] == 7
    np.random.seed(1)
    first = [mapper(dataset[g]) for g in range(8)]
    np.random.seed(99)
    random.seed(5)
    torch.manual_seed(7)
    before = rng_state()
    again = [mapper(dataset[g]) for g in reversed(range(8))][::-1]  # other history, other order
    assert first == again
    assert len({d[1] for d in first}) == 8  # each image its own draws
    after = rng_state()  # the global streams are as they were
    assert torch.equal(before["torch"], after["torch"]) and before["numpy"] == after["numpy"]
    assert before["python"] == after["python"]
    assert [GlobalSeededMapper(_draws, seed=1)(dataset[g]) for g in range(8)] != first  # the trial's seed counts


@pytest.mark.parametrize("workers", [2, 3])
def test_dataloader_workers_keep_the_global_order_and_draws(workers):
    """detectron2's loader shards our sampler over DataLoader workers in chunks of a batch and reads them
    round-robin: batches come in the global order, with the same per-image draws as without workers."""
    from detectron2.data import build_detection_train_loader

    def batches(num_workers):
        dataset = GlobalOrderDataset([{"file_name": f"{i}.jpg"} for i in range(5)], GlobalOrder(5, seed=0))
        loader = build_detection_train_loader(dataset, mapper=GlobalSeededMapper(_draws, seed=0),
                                              sampler=GlobalBatchSampler(4, rank=0, world_size=1, start_iter=2),
                                              total_batch_size=4, aspect_ratio_grouping=False,
                                              num_workers=num_workers, seed=0)
        return list(itertools.islice(iter(loader), 5))

    order = GlobalOrder(5, seed=0)
    expected = [[f"{order.index(g)}.jpg" for g in range(i * 4, (i + 1) * 4)] for i in range(2, 7)]
    without = batches(0)
    assert [[d[0] for d in batch] for batch in without] == expected
    assert batches(workers) == without


def test_rng_states_round_trip_through_a_weights_only_checkpoint(tmp_path):
    torch.manual_seed(3)
    np.random.seed(3)
    random.seed(3)
    torch.save({"per_rank": [rng_state()]}, tmp_path / "c.pth")
    expected = (float(torch.rand(())), float(np.random.rand()), random.random())
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)
    set_rng_state(torch.load(tmp_path / "c.pth", weights_only=True)["per_rank"][0])
    assert (float(torch.rand(())), float(np.random.rand()), random.random()) == expected


# ----------------------------------------------------------------------------- 1 x 4 against 2 x 2

# The model's own randomness (which anchors the RPN and which proposals the ROI head sample per
# image) draws from each process's torch RNG, so it is NOT invariant (README). These options take
# every anchor and every proposal instead of a random subset, so the comparison isolates what is
# claimed invariant; with PROPOSAL_APPEND_GT off and no NMS (NMS_THRESH 1) each image then gives
# exactly POST_NMS_TOPK_TRAIN ROIs, so a process's mean loss over its ROIs averaged over the processes equals the mean over
# all ROIs, as on one process. One fixed scale (images of one size): detectron2 pads a process's
# images to the largest of its batch, so mixed sizes would pad differently on 1 and 2 processes.
# Flips (per-image random) remain, drawn from (seed, global sample index).
TAKE_ALL = ("MODEL.RPN.BATCH_SIZE_PER_IMAGE", "100000", "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", "100000",
            "MODEL.ROI_HEADS.PROPOSAL_APPEND_GT", "False", "MODEL.RPN.NMS_THRESH", "1.0", "INPUT.MIN_SIZE_TRAIN", "(96,)",
            "INPUT.MAX_SIZE_TRAIN", "128", "INPUT.MIN_SIZE_TEST", "96", "INPUT.MAX_SIZE_TEST", "128")
ITERATIONS = 3
LOSSES = ("total_loss", "loss_cls", "loss_box_reg", "loss_rpn_cls", "loss_rpn_loc")


def _losses(trial):
    rows = [json.loads(line) for line in (trial / "metrics.json").read_text().splitlines() if "total_loss" in line]
    return {row["iteration"]: [row[k] for k in LOSSES] for row in rows}


@pytest.mark.slow
def test_one_process_of_4_and_two_of_2_train_alike(tmp_path, synthetic_checkpoint):
    from benchmark.data import write_synthetic
    from benchmark.weights.convert import prepare_weights

    data = write_synthetic("voc", tmp_path / "data", image_size=(96, 128), num_test=2)
    weights = prepare_weights(synthetic_checkpoint("moco", width=8), cache_dir=tmp_path / "cache").path
    trials = {}
    for processes in (1, 2):
        out = tmp_path / f"w{processes}"
        rc = tool("run_transfer")([str(a) for a in (
            "--task", "voc07", "--smoke", "--num-gpus", processes, "--weights", weights, "--data-root", data,
            "--output", out, "SOLVER.IMS_PER_BATCH", 4, "SOLVER.MAX_ITER", ITERATIONS, "SOLVER.STEPS", "(2,)",
            "SOLVER.CHECKPOINT_PERIOD", 100, "TEST.PRECISE_BN.NUM_ITER", 1, *TAKE_ALL)])
        assert rc == 0
        trials[processes] = out / "trial_0"
        record = results.read_record(trials[processes] / "results.json")
        assert (record.world_size, record.ims_per_batch, record.iterations) == (processes, 4, ITERATIONS)

    one, two = (_losses(trials[p]) for p in (1, 2))
    assert sorted(one) == sorted(two) == list(range(ITERATIONS))
    # Tolerance: both runs compute the same sums in another order (convolutions over 2 images
    # instead of 4, naiveSyncBN's mean of 2 per-process means against one batch mean, DDP's average
    # of two gradients, the logged losses averaged over processes), each rounding at float32 (~6e-8
    # relative). Measured: losses and parameters within 2e-7 relative. rel 1e-5 leaves a 50x margin
    # and stays far below what another image, another flip or another ROI count changes (the first
    # iteration's loss_box_reg moved by 6e-4 when one image had a few ROIs fewer).
    for i in range(ITERATIONS):
        assert one[i] == pytest.approx(two[i], rel=1e-5, abs=1e-8), (i, one[i], two[i])
    final = {p: torch.load(trials[p] / "model_final.pth", map_location="cpu", weights_only=True)["model"] for p in (1, 2)}
    assert final[1].keys() == final[2].keys() and len(final[1]) > 100
    # Per tensor, relative to its largest value (rounding errors scale with the magnitudes summed,
    # not with each element: a BN mean near 0 is off by as much as its neighbours).
    for key, tensor in final[1].items():
        if not tensor.is_floating_point():  # num_batches_tracked: torch's BN counts batches, NaiveSyncBatchNorm does not
            assert key.endswith("num_batches_tracked"), key
            continue
        scale = float(tensor.abs().max()) + 1e-12
        difference = float((final[2][key] - tensor).abs().max()) / scale
        # running_var: one process runs naiveSyncBN as torch's BatchNorm, whose running variance is
        # the unbiased one (x n/(n-1), n = images x positions per statistic); on 2 processes
        # detectron2's NaiveSyncBatchNorm keeps the biased one. Measured 1.04e-2 on the 6x8 res4 maps
        # of these 96x128 images (< 1e-4 at the protocol's sizes); training's batch statistics agree.
        assert difference <= (2e-2 if key.endswith("running_var") else 1e-5), (key, difference)


def test_a_resume_restores_this_process_rng_states_only_from_a_checkpoint_of_its_world_size():
    from benchmark.engine.trainer import RNGStates

    hook = RNGStates(period=2, max_iter=4)
    assert (hook.restored, hook.state_dict()) == (False, {})  # nothing gathered, nothing saved
    assert "holds no RNG states" in hook.problem  # a checkpoint without them: not exact, and why
    torch.manual_seed(11)
    saved = {"per_rank": [rng_state()]}
    expected = float(torch.rand(()))
    hook.load_state_dict({"per_rank": [rng_state(), rng_state()]})  # written by 2 processes, resumed on 1
    assert not hook.restored and "resumed on 1 processes from a checkpoint of 2" in hook.problem
    hook.load_state_dict(saved)
    assert (hook.restored, hook.problem) == (True, None) and float(torch.rand(())) == expected
