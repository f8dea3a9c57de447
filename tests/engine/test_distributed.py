"""Two CPU processes over gloo (`--num-gpus 2` without CUDA): naiveSyncBN keeps the BN running
statistics identical on both ranks, and only rank 0 writes the run record."""
import functools
from pathlib import Path
from unittest import mock

import pytest
import torch

from benchmark.engine import runner, worker
from benchmark.engine.trainer import Trainer
from benchmark.records import results
from tests.helpers.tools import tool


def _cli(*args):
    return tool("run_transfer")([str(a) for a in args])


def _bn_stats(model):
    model = getattr(model, "module", model)  # unwrap DDP
    return {k: v.detach().clone() for k, v in model.state_dict().items()
            if k.endswith(("running_mean", "running_var"))}


def run_one_saving_bn(job, dump_dir):
    """engine.run_one, plus each rank's BN statistics once training (PreciseBN included) is done.

    Runs in the spawned worker processes; the patch lives only there.
    """
    from detectron2.utils import comm

    train = Trainer.train

    def train_and_dump(self):
        out = train(self)
        torch.save(_bn_stats(self.model), Path(dump_dir) / f"bn_rank{comm.get_rank()}.pt")
        return out

    with mock.patch.object(Trainer, "train", train_and_dump):
        return worker.run_one(job)


@pytest.mark.slow
def test_two_cpu_processes_sync_bn_and_write_one_record(tmp_path, synthetic_checkpoint, monkeypatch):
    from benchmark.data import write_synthetic
    from benchmark.weights.convert import load_converted, prepare_weights

    data = write_synthetic("voc", tmp_path / "data")
    weights = prepare_weights(synthetic_checkpoint("moco", width=8), cache_dir=tmp_path / "cache")
    dump = tmp_path / "bn"
    dump.mkdir()
    # launch() pickles the worker function by reference: the spawned processes import this module.
    monkeypatch.setattr(runner, "run_one", functools.partial(run_one_saving_bn, dump_dir=str(dump)))
    out = tmp_path / "out"
    rc = _cli("--task", "voc07", "--smoke", "--num-gpus", 2, "--weights", weights.path, "--data-root", data,
              "--output", out, "SOLVER.MAX_ITER", 6)
    assert rc == 0

    rank0, rank1 = (torch.load(dump / f"bn_rank{r}.pt") for r in (0, 1))
    assert len(rank0) > 100 and rank0.keys() == rank1.keys()
    assert "roi_heads.res5.norm.running_mean" in rank0  # the extra norm after res5
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key
    # ... and they were trained (PreciseBN), not left at the checkpoint's values.
    start = torch.from_numpy(load_converted(weights.path)["model"]["res2.0.conv1.norm.running_mean"])
    assert not torch.allclose(rank0["backbone.res2.0.conv1.norm.running_mean"], start)

    trial = out / "trial_0"
    assert sorted(p.name for p in trial.glob("*.json")) == ["attempts.json", "metrics.json", "results.json"]  # rank 0 only
    record = results.read_record(trial / "results.json")
    assert (record.status, record.world_size, record.ims_per_batch, record.iterations) == ("finished", 2, 2, 6)
    assert sorted(record.metrics["bbox"]) == ["AP", "AP50", "AP75"]
    assert (trial / "log.txt").is_file() and (trial / "log.txt.rank1").is_file()
