"""benchmark.weights: formats (pure renames), the --weights spec, conversion and prepare_weights.

Every layout converts to exactly the source arrays (full-width ResNet-50, the one place where
size matters); the recorded settings build a detectron2 model the weights load into completely;
every broken input gets one line, exit 1, no output. Everything else uses a width-8 backbone.
"""
import hashlib
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

import benchmark
from benchmark.fileio import STALE_TEMPORARY_AGE_S
from benchmark.weights import architecture, download, formats
from benchmark.weights.convert import ConversionError, convert_file, prepare_weights
from benchmark.weights.detect import locate
from benchmark.weights.loading import load_converted
from benchmark.weights.spec import WeightsSpec
from benchmark.weights.synthetic import LAYOUTS, make_synthetic_checkpoint, torchvision_shapes, torchvision_weights
from tests.helpers.hostile import CodeRunningPickle, write_code_running_pickle
from tests.helpers.oracle import expected_backbone
from tests.helpers.refusal import one_error_line
from tests.helpers.tools import run_tool, tool

TINY = 8  # base width of the test backbones: ResNet-50's 265 tensors, 1/64 of its parameters
RGB_INPUT = {"INPUT.FORMAT": "RGB", "MODEL.PIXEL_MEAN": [123.675, 116.280, 103.530],
             "MODEL.PIXEL_STD": [58.395, 57.120, 57.375], "MODEL.RESNETS.STRIDE_IN_1X1": False}


def arch(depth, width):
    """The architecture keys a converted ResNet-`depth` of base `width` must carry, written out."""
    return {"MODEL.RESNETS.DEPTH": depth, "MODEL.RESNETS.STEM_OUT_CHANNELS": width,
            "MODEL.RESNETS.RES2_OUT_CHANNELS": 4 * width, "MODEL.RESNETS.WIDTH_PER_GROUP": width,
            "MODEL.RESNETS.NUM_GROUPS": 1}


@pytest.fixture
def tiny(synthetic_checkpoint):
    """`tiny(layout="moco", seed=0, depth=50) -> Path`: a width-8 synthetic checkpoint (shared, read-only)."""
    return lambda layout="moco", seed=0, depth=50: synthetic_checkpoint(layout, seed, depth, TINY)


# --------------------------------------------------------------------------- formats: pure renames

@pytest.mark.parametrize("source, key, expected", [
    ("moco", "module.encoder_q.layer3.2.bn1.bias", "res4.2.conv1.norm.bias"),
    ("moco", "encoder_q.conv1.weight", "stem.conv1.weight"),
    ("moco", "module.encoder_k.conv1.weight", None),
    ("moco", "module.queue", None),
    ("moco", "module.encoder_q.fc.0.weight", None),
    ("moco", "module.encoder_q.bn1.num_batches_tracked", None),
    ("torchvision", "module.layer4.0.downsample.1.running_var", "res5.0.shortcut.norm.running_var"),
    ("torchvision", "layer1.0.downsample.0.weight", "res2.0.shortcut.weight"),
    ("torchvision", "bn1.running_mean", "stem.conv1.norm.running_mean"),
    ("torchvision", "fc.weight", None),
    ("backbone", "backbone.layer2.3.conv3.weight", "res3.3.conv3.weight"),
    ("backbone", "head.fc.weight", None),
    ("encoder", "projector.0.weight", None),
    ("model", "model.layer1.0.bn2.weight", "res2.0.conv2.norm.weight"),
    # neither a ResNet tensor nor a known head: kept under its own name, so that validate names it
    ("torchvision", "blocks.0.attn.qkv.weight", "blocks.0.attn.qkv.weight"),
])
def test_a_source_is_a_pure_rename(source, key, expected):
    assert formats.SOURCES[source].rename(key) == expected


@pytest.mark.parametrize("key, kind", [("module.encoder_k.layer1.0.conv1.weight", "momentum_encoder"),
                                       ("module.queue_ptr", "queue"), ("bn1.num_batches_tracked", "num_batches_tracked"),
                                       ("module.encoder_q.fc.2.bias", "head")])
def test_drop_kind(key, kind):
    assert formats.dropped_keys({key: None}, formats.SOURCES["moco"]) == {kind: [key]}


@pytest.mark.parametrize("depth, width", [(50, 64), (101, 64), (152, 64), (50, 8), (101, 16), (50, 128)])
def test_expected_shapes_are_detectron2s_resnet(depth, width):
    """The validator's table equals the tensors of detectron2's own ResNet built from the settings."""
    from detectron2.config import get_cfg
    from detectron2.layers import ShapeSpec
    from detectron2.modeling.backbone.resnet import build_resnet_backbone

    cfg = get_cfg()
    cfg.merge_from_list([x for kv in architecture.architecture_settings(depth, width).items() for x in kv])
    cfg.MODEL.RESNETS.NORM = "BN"
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res5"]
    with torch.device("meta"):
        backbone = build_resnet_backbone(cfg, ShapeSpec(channels=3))
    shapes = {k: tuple(v.shape) for k, v in backbone.state_dict().items() if not k.endswith("num_batches_tracked")}
    assert shapes == architecture.expected_shapes(depth, width)


@pytest.mark.parametrize("depth", [50, 101, 152])
def test_synthetic_checkpoints_have_torchvisions_keys_shapes_and_order(depth):
    import torchvision

    with torch.device("meta"):
        model = getattr(torchvision.models, f"resnet{depth}")()
    assert list(torchvision_shapes(depth).items()) == [(k, tuple(v.shape)) for k, v in model.state_dict().items()]


def test_torchvision_init_matches_torchvisions_resnet_init_and_keeps_every_other_tensor():
    """--init torchvision: each convolution's std is torchvision's kaiming_normal_(fan_out) one, BN is at
    identity; fc and num_batches_tracked are those of the default init (same seed, same tensors)."""
    import torchvision

    model = torchvision.models.resnet50()  # its __init__ is the reference
    reference = dict(model.named_modules())
    random, he = torchvision_weights(0, 50, 64), torchvision_weights(0, 50, 64, init="torchvision")
    assert list(he) == list(random)
    for name, value in he.items():
        module = reference[name.rpartition(".")[0]]
        if isinstance(module, torch.nn.Conv2d):
            assert value.std().item() == pytest.approx(module.weight.std().item(), rel=0.1), name
        elif isinstance(module, torch.nn.BatchNorm2d):
            assert torch.equal(value, module.state_dict()[name.rpartition(".")[2]].to(value.dtype)) \
                or name.endswith("num_batches_tracked"), name
        else:  # fc
            assert torch.equal(value, random[name]), name
    with pytest.raises(ValueError, match="unknown init 'xavier'; known: random, torchvision"):
        torchvision_weights(0, 50, 8, init="xavier")


@pytest.mark.parametrize("depth, width", [(50, 8), (101, 8), (50, 16), (152, 4)])
def test_validate_returns_the_architecture_of_the_weights(depth, width):
    sd = torchvision_weights(1, depth, width)
    assert architecture.validate(formats.convert_state_dict(sd, formats.SOURCES["torchvision"])) == (depth, width)


def test_architecture_settings_are_detectron2_keys():
    assert architecture.architecture_settings(101, 128) == arch(101, 128)
    assert architecture.settings_for(formats.SOURCES["moco"], 50, 8) == {**RGB_INPUT, **arch(50, 8)}


# --------------------------------------------------------------------------- WeightsSpec: parsed once

@pytest.mark.parametrize("text, kind, name, shown", [
    ("ckpt/moco_v2_800ep.pth.tar", "file", "moco_v2_800ep.pth", None),
    ("weights/exemplar.pkl", "converted", "exemplar", None),
    ("https://h/a/moco_v2_imagenet.pth?x=1", "url", "moco_v2_imagenet", "https://h/a/moco_v2_imagenet.pth?x=***"),
    ("https://me:s3cret@h/r50.pth?token=abc&v=2#frag", "url", "r50", "https://***@h/r50.pth?token=***&v=***"),
    ("HTTP://h/r50.pth", "url", "r50", None),
    ("zoo:exemplar_v1", "zoo", "exemplar_v1", None),
])
def test_weights_spec_kinds_and_names(text, kind, name, shown):
    """A URL's secrets stay in `target` (the request); text, label and repr show it redacted."""
    spec = WeightsSpec.parse(text)
    assert (spec.kind, spec.name, spec.text) == (kind, name, shown or text)
    if kind == "url":
        assert spec.target == text and spec.label == spec.text
        assert "s3cret" not in repr(spec) and "abc" not in repr(spec) and "x=1" not in repr(spec)


def test_weights_spec_of_a_path_expands_home_and_labels_it_absolute(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    spec = WeightsSpec.parse("~/moco.pth")
    assert spec.target == str(tmp_path / "moco.pth") and spec.label == str((tmp_path / "moco.pth").resolve())


@pytest.mark.parametrize("text, problem", [
    ("ftp://h/moco.pth", "refused scheme 'ftp': only http and https URLs are downloaded"),
    ("file:///etc/passwd", "refused scheme 'file': only http and https URLs are downloaded"),
    ("zoo:moco_v3", "unknown zoo checkpoint 'moco_v3'"),
    ("zoo:../../x", "unsafe zoo name '../../x'"),
])
def test_weights_spec_refuses_before_any_io(text, problem, isolated_cache):
    with pytest.raises(ConversionError) as info:
        WeightsSpec.parse(text)
    assert str(info.value).startswith(f"{text}: {problem}")
    assert not isolated_cache.exists()


@pytest.mark.parametrize("text, hint", [("zoo:exemplar_v1", "exemplar"), ("zoo:supervised_imagenet", "supervised"),
                                        ("zoo:moco_v2_imagenet", None), ("exemplar_v1.pth", None)])
def test_the_zoo_says_which_format_a_torchvision_keyed_file_is(text, hint):
    assert WeightsSpec.parse(text).format_hint == hint


# --------------------------------------------------------------------------- exact conversion (full width)

EXPECTED_FORMAT = {"moco": "moco", "moco_v1": "moco", "encoder_q": "moco", "torchvision": "torchvision",
                   "dataparallel": "torchvision", "exemplar": "torchvision", "backbone": "backbone",
                   "encoder": "encoder", "model": "model"}
EXPECTED_ENTRY = {"moco": "state_dict", "moco_v1": "state_dict", "encoder_q": "state_dict", "dataparallel": "model",
                  "exemplar": "state_dict", "backbone": "state_dict"}  # where the weights are: '' = the top level
EXPECTED_DROPPED = {  # kind -> count, for ResNet-50 (53 BN layers, fc = weight + bias)
    "moco": {"head": 4, "momentum_encoder": 322, "num_batches_tracked": 53, "queue": 2},
    "moco_v1": {"head": 2, "momentum_encoder": 320, "num_batches_tracked": 53, "queue": 2},
    "encoder_q": {"head": 4, "momentum_encoder": 322, "num_batches_tracked": 53, "queue": 2},
}
# spot checks written out by hand, independent of any renaming code
HAND_WRITTEN = [("stem.conv1.norm.running_var", "bn1.running_var"),
                ("res5.0.shortcut.norm.weight", "layer4.0.downsample.1.weight"),
                ("res3.3.conv2.norm.running_mean", "layer2.3.bn2.running_mean"),
                ("res4.5.conv3.weight", "layer3.5.conv3.weight")]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_layout_converts_to_the_exact_source_arrays(layout, tmp_path):
    # Written per test, not through the session fixture: most layouts are used only here, and
    # keeping all nine (~1.2 GB) until the session ends is what fills a small CI disk.
    src = make_synthetic_checkpoint(tmp_path / f"{layout}.pth", layout, 0, 50, init="random")
    result = convert_file(src, tmp_path / "out.pkl")
    assert (result.format, result.depth, result.width, result.tensors) == (EXPECTED_FORMAT[layout], 50, 64, 265)
    assert {k: len(v) for k, v in result.dropped.items()} == EXPECTED_DROPPED.get(
        layout, {"head": 2, "num_batches_tracked": 53})

    data = load_converted(tmp_path / "out.pkl")
    source = expected_backbone()
    assert sorted(data["model"]) == sorted(source)
    for name, tensor in source.items():
        assert data["model"][name].dtype == np.float32
        np.testing.assert_array_equal(data["model"][name], tensor.numpy(), err_msg=name)
    tv = torchvision_weights()
    for d2_name, tv_name in HAND_WRITTEN:
        np.testing.assert_array_equal(data["model"][d2_name], tv[tv_name].numpy())
    assert data["__author__"] == EXPECTED_FORMAT[layout] and data["matching_heuristics"] is True
    assert data["__provenance__"] == {
        "input": str(src.resolve()), "sha256": hashlib.sha256(src.read_bytes()).hexdigest(),
        "format": EXPECTED_FORMAT[layout], "entry": EXPECTED_ENTRY.get(layout, ""), "converter": benchmark.__version__,
        "depth": 50, "width": 64,
        "input_settings": {**RGB_INPUT, **arch(50, 64)}}


# --------------------------------------------------------------------------- conversion (tiny backbones)

def test_moco_takes_the_query_encoder_not_the_key_encoder(tiny):
    located = locate(torch.load(tiny("moco"), weights_only=True))
    assert located.format == "moco"
    sd = located.state_dict
    out = formats.convert_state_dict(sd, formats.SOURCES["moco"])
    np.testing.assert_array_equal(out["res2.0.conv1.weight"], sd["module.encoder_q.layer1.0.conv1.weight"].numpy())
    assert not np.array_equal(out["res2.0.conv1.weight"], sd["module.encoder_k.layer1.0.conv1.weight"].numpy())


def test_moco_and_torchvision_copies_convert_to_identical_weights(tiny, tmp_path):
    a = load_converted(convert_file(tiny("moco"), tmp_path / "a.pkl").output)
    b = load_converted(convert_file(tiny("torchvision"), tmp_path / "b.pkl").output)
    assert pickle.dumps(a["model"], protocol=5) == pickle.dumps(b["model"], protocol=5)
    assert a["__provenance__"]["input_settings"] == b["__provenance__"]["input_settings"] == {**RGB_INPUT, **arch(50, TINY)}


def test_legacy_serialization_converts(tmp_path):
    torch.save(torchvision_weights(0, 50, TINY), tmp_path / "old.pth", _use_new_zipfile_serialization=False)
    model = load_converted(convert_file(tmp_path / "old.pth").output)["model"]
    np.testing.assert_array_equal(model["res3.1.conv1.weight"], torchvision_weights(0, 50, TINY)["layer2.1.conv1.weight"].numpy())


def test_explicit_format_is_recorded(tiny, tmp_path):
    result = convert_file(tiny("exemplar"), tmp_path / "e.pkl", fmt="exemplar")
    assert result.format == "exemplar" and load_converted(result.output)["__author__"] == "exemplar"


def test_resnet101_is_detected_and_its_depth_recorded(tiny, tmp_path):
    result = convert_file(tiny("torchvision", seed=3, depth=101), tmp_path / "r101.pkl")
    assert (result.format, result.depth, result.width, result.tensors) == ("torchvision", 101, TINY, 520)
    data = load_converted(result.output)
    np.testing.assert_array_equal(data["model"]["res4.22.conv3.norm.bias"],
                                  torchvision_weights(3, 101, TINY)["layer3.22.bn3.bias"].numpy())
    assert data["__provenance__"]["input_settings"] == {**RGB_INPUT, **arch(101, TINY)}


# --------------------------------------------------------------------------- into the tasks' models

def task_model(task, settings):
    """The task's smoke model, built by the suite's own config path from a checkpoint's settings."""
    from detectron2.modeling import build_model

    from benchmark.tasks import get_task  # registers the model pieces too
    from benchmark.tasks.config import build_config

    cfg, _ = build_config(get_task(task), settings, smoke=True)
    torch.manual_seed(0)
    return cfg, build_model(cfg)


HEADS = {  # what a backbone checkpoint does not hold: the task's head, left to its initialisation
    "voc07": {"proposal_generator.rpn_head.conv", "proposal_generator.rpn_head.objectness_logits",
              "proposal_generator.rpn_head.anchor_deltas", "roi_heads.res5.norm",
              "roi_heads.box_predictor.cls_score", "roi_heads.box_predictor.bbox_pred"},
    "cityscapes": {"sem_seg_head.aspp.convs.0", "sem_seg_head.aspp.convs.0.norm", "sem_seg_head.aspp.convs.1",
                   "sem_seg_head.aspp.convs.1.norm", "sem_seg_head.aspp.convs.2", "sem_seg_head.aspp.convs.2.norm",
                   "sem_seg_head.aspp.convs.3", "sem_seg_head.aspp.convs.3.norm", "sem_seg_head.aspp.convs.4.1",
                   "sem_seg_head.aspp.project", "sem_seg_head.aspp.project.norm", "sem_seg_head.predictor"},
}
# where each converted tensor lands in the model (R50-C4 runs res5 in the ROI head)
PLACES = {"voc07": lambda name: ("roi_heads." if name.startswith("res5.") else "backbone.") + name,
          "cityscapes": lambda name: "backbone." + name}


@pytest.mark.parametrize("task", ["voc07", "cityscapes"])
@pytest.mark.parametrize("depth", [50, 101])
def test_the_recorded_settings_build_the_network_the_weights_load_into(task, depth, tiny):
    """A ResNet-101 of width 8 is built as one (not as the configs' ResNet-50) and fills it."""
    from detectron2.checkpoint import DetectionCheckpointer

    prepared = prepare_weights(tiny("dataparallel", depth=depth))
    cfg, model = task_model(task, prepared.input_settings)
    assert (cfg.MODEL.RESNETS.DEPTH, cfg.MODEL.RESNETS.STEM_OUT_CHANNELS) == (depth, TINY)
    checkpointer = DetectionCheckpointer(model)
    report = checkpointer._load_model(dict(load_converted(prepared.path)))
    assert report.unexpected_keys == [] and report.incorrect_shapes == []
    assert {k.rsplit(".", 1)[0] for k in report.missing_keys} == HEADS[task]
    state = model.state_dict()
    for name, tensor in expected_backbone(0, depth, TINY).items():
        np.testing.assert_array_equal(state[PLACES[task](name)].numpy(), tensor.numpy(), err_msg=name)


# --------------------------------------------------------------------------- broken inputs (tools/convert.py)
# The I/O-level corpus (truncated, random bytes, code-running pickles, NaN, ViT, ResNet-18, a
# folder, ...) is tests/bad_inputs/test_bad_checkpoints.py; these are broken *formats*.

def tv(changes=None):
    """The width-8 torchvision state dict with `changes` ({key: tensor, or None to delete}) applied."""
    sd = torchvision_weights(0, 50, TINY)
    for key, value in (changes or {}).items():
        if value is None:
            del sd[key]
        else:
            sd[key] = value
    return sd


BROKEN = {  # name -> (object torch.save writes, or bytes; the message fragment)
    "text file": (b"model: resnet50\n", "not a PyTorch checkpoint"),
    "a list": ([torch.zeros(2)], "top level is a list, not a dict"),
    "an empty dict": ({}, "empty state dict"),
    "a ResNet missing a tensor": (tv({"layer3.4.bn2.running_var": None}), "missing 1 (res4.4.conv2.norm.running_var)"),
    "a tensor of the wrong shape": (tv({"layer1.0.conv2.weight": torch.zeros(8, 8, 1, 1)}),
                                    "wrong shape 1 (res2.0.conv2.weight: (8, 8, 1, 1), expected (8, 8, 3, 3))"),
    "an extra tensor": (tv({"layer2.0.se.fc1.weight": torch.zeros(2, 64)}), "unexpected 1 (layer2.0.se.fc1.weight)"),
    "a stem wider than its stages": (tv({"conv1.weight": torch.zeros(16, 3, 7, 7)}),
                                     "not a detectron2 ResNet-50 (width 16) backbone"),
    "a block missing from res4": ({k: v for k, v in tv().items() if not k.startswith("layer3.5.")},
                                  "blocks per stage res2..res5 3/4/5/3 match no supported ResNet"),
    "two keys for one tensor": ({**tv(), "module.conv1.weight": torch.zeros(8, 3, 7, 7)},
                                "two keys map to 'stem.conv1.weight'"),
    "a non-tensor value": ({**tv(), "layer1.0.conv1.weight": [0.0]}, "'layer1.0.conv1.weight' is a list, not a tensor"),
    "detectron2 names already": ({"stem.conv1.weight": torch.zeros(8, 3, 7, 7)}, "already in detectron2's naming"),
}


@pytest.mark.parametrize("case", BROKEN)
def test_a_broken_checkpoint_gets_one_line_exit_1_and_no_output(case, tmp_path, capsys):
    content, problem = BROKEN[case]
    src = tmp_path / "broken.pth"
    if isinstance(content, bytes):
        src.write_bytes(content)
    else:
        torch.save(content, src)
    assert tool("convert")([str(src)]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith(f"error: {src}: ") and problem in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.pth"]  # no output, no temporary


def test_a_code_running_checkpoint_is_refused_and_never_runs(tmp_path, capsys):
    marker = tmp_path / "MARKER"
    src = tmp_path / "evil.pth"
    torch.save({"state_dict": tv(), "hook": CodeRunningPickle(marker)}, src)
    assert tool("convert")([str(src), "-o", str(tmp_path / "out.pkl")]) == 1
    assert one_error_line(capsys.readouterr().err) == (
        f"error: {src}: refused: unpickling it would call posix.system, i.e. run code; it was not loaded and nothing in it ran")
    assert not marker.exists() and not (tmp_path / "out.pkl").exists()


def test_a_missing_input_is_named(tmp_path, capsys):
    assert tool("convert")([str(tmp_path / "nope.pth")]) == 1
    assert one_error_line(capsys.readouterr().err) == f"error: {tmp_path / 'nope.pth'}: no such file"


def test_an_unknown_format_is_a_usage_error(tiny):
    with pytest.raises(SystemExit) as exit_info:
        tool("convert")([str(tiny("moco")), "--format", "simclr"])
    assert exit_info.value.code == 2


def test_a_wrong_explicit_format_names_the_format(tmp_path, tiny):
    with pytest.raises(ConversionError, match=r"converted state dict is empty \(as format backbone\)"):
        convert_file(tiny("torchvision"), tmp_path / "x.pkl", fmt="backbone")
    assert not (tmp_path / "x.pkl").exists()


def test_an_existing_output_is_kept_without_force(tmp_path, tiny, capsys):
    out = tmp_path / "out.pkl"
    out.write_bytes(b"previous")
    assert tool("convert")([str(tiny("moco")), "-o", str(out)]) == 1
    assert one_error_line(capsys.readouterr().err) == f"error: {out}: already exists; pass --force to overwrite"
    assert out.read_bytes() == b"previous"


def test_force_overwrites_and_prints_the_summary(tmp_path, tiny, capsys):
    out = tmp_path / "out.pkl"
    out.write_bytes(b"previous")
    assert tool("convert")([str(tiny("moco")), "-o", str(out), "--force"]) == 0
    assert capsys.readouterr().out == (
        "format:  moco\ndepth:   ResNet-50 (width 8)\ntensors: 265 written\n"
        f"dropped: 4 head, 322 momentum_encoder, 53 num_batches_tracked, 2 queue\noutput:  {out}\n")
    assert len(load_converted(out)["model"]) == 265


@pytest.mark.slow  # a fresh interpreter importing torch and detectron2
def test_the_tool_in_a_fresh_process_writes_beside_the_input(tmp_path):
    src = make_synthetic_checkpoint(tmp_path / "moco_v1.pth", "moco_v1", 0, 50, TINY, "random")
    run = run_tool("convert", src, cwd=tmp_path, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[-1] == f"output:  {tmp_path / 'moco_v1.pkl'}"
    assert load_converted(tmp_path / "moco_v1.pkl")["__author__"] == "moco"


# --------------------------------------------------------------------------- our .pkl, read safely

def test_load_converted_refuses_a_code_running_pkl(tmp_path):
    marker = tmp_path / "MARKER"
    path = write_code_running_pickle(tmp_path / "hostile.pkl", marker, wrap=lambda o: {"model": {}, "__author__": "x", "hook": o})
    with pytest.raises(ConversionError, match=r"hostile.pkl: not a converted weights file: refused global posix.system"):
        load_converted(path)
    assert not marker.exists()


@pytest.mark.parametrize("content, message", [
    ({"model": {"a": np.array(["x"], dtype=object), "b": np.zeros(2)}, "__author__": "x"}, "non-numeric entries 1 (a)"),
    ({"model": {"a": np.zeros(2), "b": "text"}, "__author__": "x"}, "non-numeric entries 1 (b)"),
    ({"weights": {}}, "expected a dict with 'model' and '__author__'"),
    ([1, 2], "expected a dict with 'model' and '__author__'"),
])
def test_load_converted_refuses_foreign_content(tmp_path, content, message):
    path = tmp_path / "foreign.pkl"
    path.write_bytes(pickle.dumps(content))
    with pytest.raises(ConversionError) as info:
        load_converted(path)
    assert str(info.value).startswith(f"{path}: ") and message in str(info.value)


def test_load_converted_refuses_a_truncated_pkl(tmp_path, tiny):
    full = convert_file(tiny("torchvision"), tmp_path / "full.pkl").output
    (tmp_path / "cut.pkl").write_bytes(full.read_bytes()[:1000])
    with pytest.raises(ConversionError, match=r"cut.pkl: not a converted weights file \(unreadable pickle"):
        load_converted(tmp_path / "cut.pkl")


# --------------------------------------------------------------------------- prepare_weights

def test_prepare_weights_converts_once_and_reuses_by_content(tmp_path, tiny, isolated_cache):
    src = tmp_path / "moco_v2_imagenet.pth"
    src.write_bytes(tiny("moco").read_bytes())
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    first = prepare_weights(src)
    assert (first.path, first.name, first.source_sha256, first.source, first.format) == (
        isolated_cache / "converted" / f"{digest}.pkl", "moco_v2_imagenet", digest, str(src), "moco")
    assert first.sha256 == hashlib.sha256(first.path.read_bytes()).hexdigest() != digest
    assert first.input_settings == {**RGB_INPUT, **arch(50, TINY)}
    mtime = first.path.stat().st_mtime_ns
    copy = tmp_path / "same_weights.pth"
    copy.write_bytes(src.read_bytes())
    second = prepare_weights(str(copy))
    assert (second.path, second.path.stat().st_mtime_ns, second.name) == (first.path, mtime, "same_weights")
    assert (second.sha256, second.source_sha256) == (first.sha256, digest)


def counting_sha256_file(monkeypatch):
    """Count calls of download.sha256_file (the one full read of a file's bytes for its digest)."""
    calls = []
    real = download.sha256_file
    monkeypatch.setattr(download, "sha256_file", lambda path: calls.append(Path(path)) or real(path))
    return calls


def test_a_local_checkpoint_is_hashed_exactly_once(tmp_path, tiny, monkeypatch):
    calls = counting_sha256_file(monkeypatch)
    prepared = prepare_weights(tiny("moco"), cache_dir=tmp_path / "cache")
    assert calls == [tiny("moco")]  # the converted file is hashed while it is written, not read back
    assert load_converted(prepared.path)["__provenance__"]["sha256"] == prepared.source_sha256
    assert prepared.sha256 == hashlib.sha256(prepared.path.read_bytes()).hexdigest()


def test_a_downloaded_checkpoint_is_hashed_while_it_streams(http_server, tiny, monkeypatch):
    base, folder = http_server
    (folder / "exemplar_v1.pth").write_bytes(tiny("exemplar").read_bytes())
    calls = counting_sha256_file(monkeypatch)
    prepared = prepare_weights(f"{base}/exemplar_v1.pth")
    assert calls == []
    assert prepared.source_sha256 == hashlib.sha256((folder / "exemplar_v1.pth").read_bytes()).hexdigest()


def test_prepare_weights_from_a_url(http_server, tiny):
    base, folder = http_server
    (folder / "exemplar_v1.pth").write_bytes(tiny("exemplar").read_bytes())
    prepared = prepare_weights(f"{base}/exemplar_v1.pth")
    assert (prepared.name, prepared.source) == ("exemplar_v1", f"{base}/exemplar_v1.pth")
    data = load_converted(prepared.path)
    assert data["__provenance__"]["input"] == f"{base}/exemplar_v1.pth" and len(data["model"]) == 265


def test_prepare_weights_removes_temporaries_that_killed_conversions_left(tiny, isolated_cache):
    converted = isolated_cache / "converted"
    converted.mkdir(parents=True)
    dead, live = converted / ".0123.pkl.k1ll3d.tmp", converted / ".4567.pkl.wr1t1ng.tmp"
    for path, age_s in ((dead, STALE_TEMPORARY_AGE_S + 60), (live, 5)):
        path.write_bytes(b"partial")
        stamp = path.stat().st_mtime - age_s
        os.utime(path, (stamp, stamp))
    prepared = prepare_weights(tiny("torchvision"))
    assert sorted(p.name for p in converted.iterdir()) == sorted([live.name, prepared.path.name])


def test_prepare_weights_uses_a_converted_pkl_in_place(tmp_path, tiny):
    result = convert_file(tiny("exemplar"), tmp_path / "exemplar_v2.pkl", fmt="exemplar")
    prepared = prepare_weights(str(result.output), cache_dir=tmp_path / "unused")
    assert (prepared.path, prepared.name, prepared.format) == (result.output, "exemplar_v2", "exemplar")
    assert prepared.sha256 == hashlib.sha256(result.output.read_bytes()).hexdigest() == result.sha256
    assert result.provenance["sha256"] == hashlib.sha256(tiny("exemplar").read_bytes()).hexdigest()
    assert prepared.source_sha256 is None  # the provenance's sha256 is the file's claim, not recorded as verified
    assert prepared.input_settings == {**RGB_INPUT, **arch(50, TINY)}
    assert not (tmp_path / "unused").exists()


def test_a_pkl_without_the_architecture_in_its_provenance_still_builds_its_network(tmp_path, tiny):
    """Files converted before the architecture was recorded: it is read off the weights' shapes."""
    data = load_converted(convert_file(tiny("torchvision", depth=101), tmp_path / "r101.pkl").output)
    data["__provenance__"]["input_settings"] = dict(RGB_INPUT)
    (tmp_path / "old.pkl").write_bytes(pickle.dumps(data, protocol=5))
    assert prepare_weights(tmp_path / "old.pkl").input_settings == {**RGB_INPUT, **arch(101, TINY)}


def test_a_pkl_without_provenance_takes_its_authors_settings(tmp_path, tiny):
    data = load_converted(convert_file(tiny("torchvision"), tmp_path / "tv.pkl").output)
    del data["__provenance__"]
    (tmp_path / "bare.pkl").write_bytes(pickle.dumps(data, protocol=5))
    prepared = prepare_weights(tmp_path / "bare.pkl")
    assert prepared.input_settings == {**RGB_INPUT, **arch(50, TINY)}
    assert prepared.sha256 == hashlib.sha256((tmp_path / "bare.pkl").read_bytes()).hexdigest()
    assert (prepared.source_sha256, prepared.format) == (None, "torchvision")


def test_prepare_weights_refuses_a_pkl_that_is_not_a_backbone(tmp_path):
    path = tmp_path / "partial.pkl"
    path.write_bytes(pickle.dumps({"model": {"stem.conv1.weight": np.zeros((64, 3, 7, 7), np.float32)}, "__author__": "moco"}))
    with pytest.raises(ConversionError) as info:
        prepare_weights(path)
    assert str(info.value).startswith(f"{path}: blocks per stage res2..res5 0/0/0/0")


def test_prepare_weights_refuses_a_pkl_that_does_not_say_its_input_settings(tmp_path, tiny):
    data = load_converted(convert_file(tiny("torchvision"), tmp_path / "tv.pkl").output)
    del data["__provenance__"]
    data["__author__"] = "caffe2"
    path = tmp_path / "caffe2.pkl"
    path.write_bytes(pickle.dumps(data, protocol=5))
    with pytest.raises(ConversionError) as info:
        prepare_weights(path)
    assert str(info.value).startswith(f"{path}: does not say which input settings it needs (no __provenance__, author 'caffe2')")


# --------------------------------------------------------------------------- URLs through the tool

def test_a_url_input_converts_into_the_cache(http_server, tiny, isolated_cache, capsys):
    base, folder = http_server
    (folder / "moco.pth").write_bytes(tiny("moco").read_bytes())
    assert tool("convert")([f"{base}/moco.pth"]) == 0
    out = Path(capsys.readouterr().out.splitlines()[-1].split("output:  ")[1])
    assert out.is_relative_to(isolated_cache) and out.name == "moco.pkl"
    data = load_converted(out)
    assert data["__provenance__"]["input"] == f"{base}/moco.pth"
    np.testing.assert_array_equal(data["model"]["res5.2.conv3.weight"], expected_backbone(0, 50, TINY)["res5.2.conv3.weight"].numpy())


def test_a_url_download_cut_short_is_refused_and_not_kept(http_server, tiny, isolated_cache, capsys):
    base, folder = http_server
    (folder / "moco.pth").write_bytes(tiny("moco").read_bytes())
    size = (folder / "moco.pth").stat().st_size
    assert tool("convert")([f"{base}/cut/moco.pth"]) == 1
    assert one_error_line(capsys.readouterr().err) == (
        f"error: {base}/cut/moco.pth: download cut short: received {size // 2} of {size} bytes; "
        "nothing was stored; run the same command again to download afresh")
    assert [p for p in isolated_cache.rglob("*") if p.is_file()] == []


# --------------------------------------------------------------------------- dtypes and plain pickles

@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_is_upcast_exactly_and_said_so(dtype, tmp_path, capsys):
    """float16/bfloat16 checkpoints exist in the wild: every value survives the upcast to float32."""
    half = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in torchvision_weights(0, 50, TINY).items()}
    torch.save(half, tmp_path / "half.pth")
    assert tool("convert")([str(tmp_path / "half.pth")]) == 0
    name = str(dtype).replace("torch.", "")
    assert f"dtype:   {name} -> float32 (exact): 265 tensors\n" in capsys.readouterr().out
    model = load_converted(tmp_path / "half.pkl")["model"]
    for d2, tv_name in HAND_WRITTEN:
        assert model[d2].dtype == np.float32
        np.testing.assert_array_equal(model[d2], half[tv_name].float().numpy())


def test_float64_is_rounded_to_float32_and_said_so(tmp_path):
    sd = {k: (v.double() if v.is_floating_point() else v) for k, v in torchvision_weights(0, 50, TINY).items()}
    torch.save(sd, tmp_path / "f64.pth")
    result = convert_file(tmp_path / "f64.pth")
    assert result.casts == {"float64": 265} and "float64 -> float32 (rounded, as the float32 model would)" in result.summary()
    np.testing.assert_array_equal(load_converted(result.output)["model"]["res2.0.conv1.weight"],
                                  sd["layer1.0.conv1.weight"].float().numpy())


@pytest.mark.parametrize("protocol", [2, 4])
def test_a_plain_pickle_of_numpy_arrays_converts(protocol, tmp_path, capsys):
    """What older tools wrote (pickle.dump of {name: ndarray}): read by the restricted unpickler, not called hostile."""
    sd = {k: v.numpy() for k, v in torchvision_weights(0, 50, TINY).items()}
    (tmp_path / "plain.pth").write_bytes(pickle.dumps({"state_dict": sd}, protocol=protocol))
    assert tool("convert")([str(tmp_path / "plain.pth")]) == 0
    assert capsys.readouterr().err == ""
    np.testing.assert_array_equal(load_converted(tmp_path / "plain.pkl")["model"]["res4.2.conv3.norm.bias"],
                                  sd["layer3.2.bn3.bias"])


def test_a_protocol_2_converted_pkl_is_read(tmp_path, tiny):
    """detectron2's own model-zoo .pkl files are protocol-2 pickles (bytes through _codecs.encode)."""
    data = load_converted(convert_file(tiny("torchvision"), tmp_path / "tv.pkl").output)
    (tmp_path / "p2.pkl").write_bytes(pickle.dumps(data, protocol=2))
    prepared = prepare_weights(tmp_path / "p2.pkl")
    assert prepared.sha256 == hashlib.sha256((tmp_path / "p2.pkl").read_bytes()).hexdigest()
    np.testing.assert_array_equal(load_converted(tmp_path / "p2.pkl")["model"]["stem.conv1.weight"],
                                  data["model"]["stem.conv1.weight"])


def test_convert_file_reports_the_sha256_of_what_it_wrote(tmp_path, tiny):
    result = convert_file(tiny("moco"), tmp_path / "m.pkl")
    assert result.sha256 == hashlib.sha256((tmp_path / "m.pkl").read_bytes()).hexdigest()
