"""fewshot_miniimagenet: the mini-ImageNet family (split hashes, both image layouts), the episodes (a
function of the seed, CloserLook's update count, the interval formula, any split over processes), the
features cache, the --smoke run through the CLI on 1 and 2 processes, and the learning check with its
injected bug (support labels shuffled across the support set)."""
import json
import math
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from benchmark.data import DatasetLayoutError, get_family, write_synthetic
from benchmark.data import miniimagenet as mini
from benchmark.engine import fewshot, sanity
from benchmark.records import results
from benchmark.tasks import get_task
from tests.helpers.tools import tool

FAMILY = get_family("miniimagenet")
TEST = "miniimagenet_test"


def _cli(*args):
    return tool("run_transfer")([str(a) for a in args])


def _params(**kw):
    p = {"seed": 0, "head": "baseline", "ways": 5, "queries": 3, "epochs": 100, "batch": 4, "lr": 0.01,
         "momentum": 0.9, "dampening": 0.9, "weight_decay": 0.001, "rfs_c": 1.0, "rfs_max_iter": 1000}
    return {**p, **kw}


def _features(classes=6, per_class=8, dim=16, seed=0):
    r = np.random.default_rng(seed)
    labels = np.repeat(np.arange(classes), per_class)
    centres = r.normal(0, 1, (classes, dim))
    return (centres[labels] + r.normal(0, 0.8, (len(labels), dim))).astype(np.float32), labels


# ----------------------------------------------------------------------------- data

def test_a_split_file_with_one_line_changed_is_refused_naming_file_and_hash(tmp_path, monkeypatch):
    path = tmp_path / "test.csv"
    path.write_text("filename,label\nn0153282900000005.jpg,n01532829\nn0153282900000006.jpg,n01532829\n")
    monkeypatch.setitem(mini.SPLIT_SHA256, "test.csv", mini.sha256_of(path))
    mini.check_split_file(TEST, path)  # the published bytes pass
    path.write_text("filename,label\nn0153282900000005.jpg,n01532829\nn0153282900000007.jpg,n01532829\n")
    with pytest.raises(DatasetLayoutError) as err:
        mini.check_split_file(TEST, path)
    assert str(path) in str(err.value) and mini.SPLIT_SHA256["test.csv"] in str(err.value)
    assert "is not Ravi & Larochelle's split file" in str(err.value)


def test_the_published_hashes_are_those_of_the_references():
    assert mini.SPLIT_SHA256["test.csv"] == "2b7cfa78342995761a572a8158e539bc4e0a80f9bbd7d00c1e17a460fbbb93fa"
    assert set(mini.SPLIT_SHA256) == {"train.csv", "val.csv", "test.csv"}


def test_both_layouts_hold_the_same_images_and_the_check_says_which(tmp_path, caplog):
    images = write_synthetic("miniimagenet", tmp_path / "a", num_train=4, image_size=(32, 32))
    folders = write_synthetic("miniimagenet", tmp_path / "b", num_train=4, image_size=(32, 32), layout="imagenet")
    a = mini.split_files(TEST, **FAMILY.paths(TEST, images))
    b = mini.split_files(TEST, **FAMILY.paths(TEST, folders))
    assert (a[0], b[0]) == ("images", "imagenet") and len(a[1]) == len(b[1]) == 24
    # CloserLook's mapping: row n of a class is the n-th file by the numeric part (7, 38, 69, 100), not by name
    assert [p.rsplit("/", 1)[1] for p, _ in b[1][:4]] == ["n93000000_7.JPEG", "n93000000_38.JPEG",
                                                           "n93000000_69.JPEG", "n93000000_100.JPEG"]
    for (pa, wa), (pb, wb) in zip(a[1], b[1]):
        assert wa == wb and np.array_equal(np.asarray(Image.open(pa)), np.asarray(Image.open(pb)))
    with caplog.at_level("INFO"):
        FAMILY.validate(TEST, folders)
    assert "imagenet layout" in caplog.text and "(synthetic data)" in caplog.text
    # what is missing is named, before any compute
    for n in (100, 131):  # the 4th file and the one beyond the CSV's
        (folders / f"imagenet/train/n93000000/n93000000_{n}.JPEG").unlink()
    with pytest.raises(DatasetLayoutError, match="maps to file 4 of the sorted class folder, which holds 3"):
        FAMILY.validate(TEST, folders)
    (images / "miniimagenet/images/n9300000100000002.jpg").unlink()
    with pytest.raises(DatasetLayoutError, match="images layout .*missing image of test.csv.*n9300000100000002.jpg"):
        FAMILY.validate(TEST, images)
    shutil.rmtree(images / "miniimagenet/images")
    with pytest.raises(DatasetLayoutError, match="no images: neither"):
        FAMILY.validate(TEST, images)


def test_real_data_without_the_marker_is_hash_checked(tmp_path):
    root = write_synthetic("miniimagenet", tmp_path, num_train=4, image_size=(32, 32))
    (root / "miniimagenet" / mini.SYNTHETIC_MARK).unlink()
    with pytest.raises(DatasetLayoutError, match="train.csv is not Ravi & Larochelle's split file .*expected 4985"):
        FAMILY.validate(TEST, root)


# ----------------------------------------------------------------------------- episodes

def test_episodes_are_a_function_of_the_seed():
    feats, labels = _features()

    def draws(seed):
        return [tuple(map(tuple, mini_draw[:2])) for mini_draw in
                (fewshot.draw_episode(labels, 5, 5, 3, fewshot.episode_rng(seed, 5, e)) for e in range(4))]

    assert draws(0) == draws(0) and draws(0) != draws(1)
    accs = [fewshot.run_episode(feats, labels, _params(seed=s, epochs=10), 1, e) for s in (0, 0, 1) for e in range(6)]
    assert accs[:6] == accs[6:12] and accs[:6] != accs[12:]


@pytest.mark.parametrize("shot,steps", [(1, 200), (5, 700)])
def test_the_baseline_head_takes_closerlooks_update_count(shot, steps, monkeypatch):
    feats, labels = _features()
    calls = []
    step = torch.optim.SGD.step
    monkeypatch.setattr(torch.optim.SGD, "step", lambda self, *a, **k: calls.append(1) or step(self, *a, **k))
    fewshot.run_episode(feats, labels, _params(), shot, 0)
    assert len(calls) == steps


def test_rfs_head_and_the_interval_formula():
    feats, labels = _features()
    acc = [fewshot.run_episode(feats, labels, _params(head="rfs"), 5, e) for e in range(3)]
    assert all(a > 60 for a in acc)  # separable clusters; chance is 20
    out = fewshot.summarize([(1, 0, 40.0), (1, 1, 60.0), (5, 0, 80.0), (5, 1, 80.0)], (1, 5))
    assert out == {"1shot": 50.0, "1shot_ci95": pytest.approx(1.96 * 10.0 / math.sqrt(2)), "5shot": 80.0,
                   "5shot_ci95": 0.0}


def test_the_head_option_changes_the_config_digest():
    from benchmark.tasks.config import ConfigError, build_config, config_digest

    task = get_task("fewshot_miniimagenet")
    base, _ = build_config(task)
    rfs, deviations = build_config(task, opts=["BENCHMARK.FEWSHOT.HEAD", "rfs"])
    assert config_digest(base) != config_digest(rfs)
    assert deviations == ["BENCHMARK.FEWSHOT.HEAD: 'baseline' in the protocol, 'rfs' from the command line"]
    with pytest.raises(ConfigError, match="HEAD must be one of baseline, rfs"):
        build_config(task, opts=["BENCHMARK.FEWSHOT.HEAD", "svm"])


def test_local_worker_processes_give_the_same_numbers():
    feats, labels = _features()
    items = [(s, e) for s in (1, 5) for e in range(2)]
    one = fewshot.run_episodes(feats, labels, _params(epochs=10), items, workers=1)
    two = fewshot.run_episodes(feats, labels, _params(epochs=10), items, workers=2)
    assert sorted(one) == sorted(two) and len(one) == 4


# ----------------------------------------------------------------------------- runs through the CLI

@pytest.fixture(scope="module")
def weights(synthetic_checkpoint):
    return synthetic_checkpoint("torchvision", width=8, init="torchvision")


def test_smoke_run_on_1_and_2_processes_and_the_features_cache(tmp_path, weights, caplog):
    out1, out2 = tmp_path / "one", tmp_path / "two"
    assert _cli("--task", "fewshot_miniimagenet", "--weights", weights, "--smoke", "--output", out1) == 0
    record = results.read_record(out1 / "trial_0" / results.RECORD_NAME)
    m = record.metrics["fewshot"]
    assert sorted(m) == ["1shot", "1shot_ci95", "5shot", "5shot_ci95"]
    assert all(math.isfinite(v) for v in m.values()) and 0 <= m["1shot"] <= 100 and m["5shot_ci95"] >= 0
    assert record.iterations == 8 and any(a.startswith("fewshot-protocol:") for a in record.assumptions)
    episodes = json.loads((out1 / "trial_0" / fewshot.EPISODES_NAME).read_text())
    assert len(episodes["episodes"]["1shot"]) == len(episodes["episodes"]["5shot"]) == 4
    assert np.mean(episodes["episodes"]["5shot"]) == pytest.approx(m["5shot"])
    # a second run in the same folder reads the cached features (npz, no pickle) and gives the same numbers
    cache = out1 / "trial_0" / fewshot.FEATURES_NAME
    stamp = cache.stat().st_mtime_ns
    assert _cli("--task", "fewshot_miniimagenet", "--weights", weights, "--smoke", "--output", out1, "--eval-only") == 0
    again = results.read_record(out1 / "trial_0" / "eval_only" / results.RECORD_NAME)
    assert again.metrics == record.metrics and cache.stat().st_mtime_ns == stamp
    assert "features read from" in (out1 / "trial_0" / "eval_only" / "log.txt").read_text()
    # two gloo processes: the same episodes, the same numbers
    assert _cli("--task", "fewshot_miniimagenet", "--weights", weights, "--smoke", "--output", out2,
                "--num-gpus", 2) == 0
    two = json.loads((out2 / "trial_0" / fewshot.EPISODES_NAME).read_text())
    assert two["episodes"] == episodes["episodes"]
    assert results.read_record(out2 / "trial_0" / results.RECORD_NAME).metrics == record.metrics


def test_learning_check_passes_and_fails_on_shuffled_support_labels(tmp_path, weights, monkeypatch, capsys):
    check = sanity.check_for(get_task("fewshot_miniimagenet"))
    args = ["--task", "fewshot_miniimagenet", "--weights", weights, "--sanity", "--data-root", tmp_path / "data"]
    assert _cli(*args, "--output", tmp_path / "ok") == 0
    ok = results.read_record(tmp_path / "ok" / "trial_0" / results.RECORD_NAME)
    assert ok.metrics["fewshot"]["5shot"] >= check.threshold

    correct = fewshot.support_labels

    def shuffled(ways, shot):  # the bug: labels permuted across the support set
        return np.random.default_rng(0).permutation(correct(ways, shot))

    monkeypatch.setattr(fewshot, "support_labels", shuffled)
    assert _cli(*args, "--output", tmp_path / "bug") == sanity.EXIT_BELOW_THRESHOLD
    bug = results.read_record(tmp_path / "bug" / "trial_0" / results.RECORD_NAME)
    assert bug.metrics["fewshot"]["5shot"] < 60.0, bug.metrics
    assert "FAIL" in capsys.readouterr().out


def test_smoke_run_on_a_converted_resnet18(tmp_path):
    """The paper's Table 4 backbone: a random torchvision ResNet-18 through tools/convert.py, then --smoke."""
    import torchvision

    torch.manual_seed(0)
    checkpoint = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), checkpoint)
    converted = tmp_path / "resnet18.pkl"
    assert tool("convert")([str(checkpoint), "-o", str(converted)]) == 0
    out = tmp_path / "run"
    assert _cli("--task", "fewshot_miniimagenet", "--weights", converted, "--smoke", "--output", out) == 0
    record = results.read_record(out / "trial_0" / results.RECORD_NAME)
    assert record.status == "finished" and record.weights.format == "torchvision"
    assert "DEPTH: 18" in (out / "trial_0" / "config.yaml").read_text()  # run as the ResNet-18 it is
    m = record.metrics["fewshot"]
    assert sorted(m) == ["1shot", "1shot_ci95", "5shot", "5shot_ci95"]
    assert all(math.isfinite(v) for v in m.values()) and 0 <= m["1shot"] <= 100 and 0 <= m["5shot"] <= 100
    assert m["1shot_ci95"] >= 0 and m["5shot_ci95"] >= 0
