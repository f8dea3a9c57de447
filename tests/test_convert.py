"""benchmark.weights.convert and tools/convert.py: every layout converts to exact arrays; the result loads
fully into the R50-C4 and DeepLabV3 models; every bad input gets one line, exit 1, no output."""
import importlib.util
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmark.weights import convert
from benchmark.weights.synthetic import LAYOUTS, make_synthetic_checkpoint, torchvision_weights
from benchmark.weights.convert import ConversionError
from benchmark.fileio import STALE_TEMPORARY_AGE_S

ROOT = Path(__file__).resolve().parents[1]


def moco_script_name(tv_key):
    """The renaming of MoCo's detection/convert-pretrain-to-detectron2.py, as an independent oracle."""
    k = tv_key if "layer" in tv_key else "stem." + tv_key
    for t in [1, 2, 3, 4]:
        k = k.replace(f"layer{t}", f"res{t + 1}")
    for t in [1, 2, 3]:
        k = k.replace(f"bn{t}", f"conv{t}.norm")
    return k.replace("downsample.0", "shortcut").replace("downsample.1", "shortcut.norm")


def backbone_source(seed=0, depth=50):
    """{detectron2 name: tensor} every converted file of these weights must hold exactly."""
    return {moco_script_name(k): v for k, v in torchvision_weights(seed, depth).items()
            if not k.startswith("fc.") and not k.endswith("num_batches_tracked")}


@pytest.fixture(scope="module")
def cli():
    """tools/convert.py's main(argv), run in this process (importing detectron2 once)."""
    spec = importlib.util.spec_from_file_location("convert_tool", ROOT / "tools" / "convert.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


# --------------------------------------------------------------------------- exact conversion

EXPECTED_FORMAT = {"moco": "moco", "moco_v1": "moco", "encoder_q": "moco", "torchvision": "torchvision",
                   "dataparallel": "torchvision", "exemplar": "torchvision", "backbone": "backbone",
                   "encoder": "encoder", "model": "model"}
EXPECTED_DROPPED = {  # kind -> count, for ResNet-50 (53 BN layers, fc = weight + bias)
    "moco": {"head": 4, "momentum_encoder": 322, "num_batches_tracked": 53, "queue": 2},
    "moco_v1": {"head": 2, "momentum_encoder": 320, "num_batches_tracked": 53, "queue": 2},
    "encoder_q": {"head": 4, "momentum_encoder": 322, "num_batches_tracked": 53, "queue": 2},
}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_layout_converts_to_the_exact_source_arrays(layout, tmp_path):
    # Written per test, not through the session fixture: most layouts are used only here, and
    # keeping all nine (~1.2 GB) until the session ends is what fills a small CI disk.
    src = make_synthetic_checkpoint(tmp_path / f"{layout}.pth", layout, 0, 50)
    result = convert.convert_file(src, tmp_path / "out.pkl")
    assert (result.format, result.depth, result.tensors) == (EXPECTED_FORMAT[layout], 50, 265)
    assert {k: len(v) for k, v in result.dropped.items()} == EXPECTED_DROPPED.get(
        layout, {"head": 2, "num_batches_tracked": 53})

    data = convert.load_converted(tmp_path / "out.pkl")
    source = backbone_source()
    assert sorted(data["model"]) == sorted(source) == sorted(convert.expected_shapes(50))
    for name, tensor in source.items():
        assert data["model"][name].dtype == np.float32
        np.testing.assert_array_equal(data["model"][name], tensor.numpy(), err_msg=name)
    # spot checks written out by hand, independent of any renaming code
    tv = torchvision_weights()
    for d2_name, tv_name in [("stem.conv1.norm.running_var", "bn1.running_var"),
                             ("res5.0.shortcut.norm.weight", "layer4.0.downsample.1.weight"),
                             ("res3.3.conv2.norm.running_mean", "layer2.3.bn2.running_mean"),
                             ("res4.5.conv3.weight", "layer3.5.conv3.weight")]:
        np.testing.assert_array_equal(data["model"][d2_name], tv[tv_name].numpy())
    assert data["__author__"] == EXPECTED_FORMAT[layout] and data["matching_heuristics"] is True
    prov = data["__provenance__"]
    assert prov["sha256"] == convert.download.sha256_file(src)
    assert (prov["format"], prov["depth"], prov["input"]) == (EXPECTED_FORMAT[layout], 50, str(src.resolve()))
    assert prov["converter"] == __import__("benchmark").__version__
    assert prov["input_settings"] == {"INPUT.FORMAT": "RGB", "MODEL.PIXEL_MEAN": [123.675, 116.280, 103.530],
                                      "MODEL.PIXEL_STD": [58.395, 57.120, 57.375], "MODEL.RESNETS.STRIDE_IN_1X1": False}


def test_moco_takes_the_query_encoder_not_the_key_encoder(synthetic_checkpoint):
    sd = convert.extract_state_dict(torch.load(synthetic_checkpoint("moco"), weights_only=True))
    out = convert.convert_state_dict(sd, "moco")
    np.testing.assert_array_equal(out["res2.0.conv1.weight"], sd["module.encoder_q.layer1.0.conv1.weight"].numpy())
    assert not np.array_equal(out["res2.0.conv1.weight"], sd["module.encoder_k.layer1.0.conv1.weight"].numpy())


def test_moco_and_torchvision_copies_convert_to_identical_weights(synthetic_checkpoint, tmp_path):
    a = convert.convert_file(synthetic_checkpoint("moco"), tmp_path / "a.pkl")
    b = convert.convert_file(synthetic_checkpoint("torchvision"), tmp_path / "b.pkl")
    da, db = convert.load_converted(a.output), convert.load_converted(b.output)
    assert pickle.dumps(da["model"], protocol=5) == pickle.dumps(db["model"], protocol=5)
    assert da["__provenance__"]["input_settings"] == db["__provenance__"]["input_settings"]


def test_legacy_serialization_converts(tmp_path):
    torch.save(dict(torchvision_weights()), tmp_path / "old.pth", _use_new_zipfile_serialization=False)
    model = convert.load_converted(convert.convert_file(tmp_path / "old.pth").output)["model"]
    np.testing.assert_array_equal(model["res3.1.conv1.weight"], torchvision_weights()["layer2.1.conv1.weight"].numpy())


def test_explicit_format_is_recorded(synthetic_checkpoint, tmp_path):
    result = convert.convert_file(synthetic_checkpoint("exemplar"), tmp_path / "e.pkl", fmt="exemplar")
    assert result.format == "exemplar" and convert.load_converted(result.output)["__author__"] == "exemplar"


def test_resnet101_is_detected_and_validated(tmp_path):
    torch.save(dict(torchvision_weights(seed=3, depth=101)), tmp_path / "r101.pth")
    result = convert.convert_file(tmp_path / "r101.pth")
    assert (result.format, result.depth, result.tensors) == ("torchvision", 101, 520)
    model = convert.load_converted(result.output)["model"]
    np.testing.assert_array_equal(model["res4.22.conv3.norm.bias"], torchvision_weights(3, 101)["layer3.22.bn3.bias"].numpy())


@pytest.mark.parametrize("depth", [50, 101, 152])
def test_expected_shapes_are_detectron2s_resnet(depth):
    """The validator's table equals the tensors of detectron2's own ResNet of that depth."""
    from detectron2.config import get_cfg
    from detectron2.layers import ShapeSpec
    from detectron2.modeling.backbone.resnet import build_resnet_backbone

    cfg = get_cfg()
    cfg.MODEL.RESNETS.DEPTH, cfg.MODEL.RESNETS.NORM = depth, "BN"
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res5"]
    with torch.device("meta"):
        backbone = build_resnet_backbone(cfg, ShapeSpec(channels=3))
    shapes = {k: tuple(v.shape) for k, v in backbone.state_dict().items() if not k.endswith("num_batches_tracked")}
    assert shapes == convert.expected_shapes(depth)


def test_source_formats_are_pure_renames():
    assert convert.SOURCES["moco"].rename("module.encoder_q.layer3.2.bn1.bias") == "res4.2.conv1.norm.bias"
    assert convert.SOURCES["moco"].rename("encoder_q.conv1.weight") == "stem.conv1.weight"
    for dropped in ("module.encoder_k.conv1.weight", "module.queue", "module.encoder_q.fc.0.weight",
                    "module.encoder_q.bn1.num_batches_tracked"):
        assert convert.SOURCES["moco"].rename(dropped) is None
    assert convert.SOURCES["torchvision"].rename("module.layer4.0.downsample.1.running_var") == "res5.0.shortcut.norm.running_var"
    assert convert.SOURCES["backbone"].rename("head.fc.weight") is None
    assert convert.SOURCES["torchvision"].rename("blocks.0.attn.qkv.weight") == "blocks.0.attn.qkv.weight"  # kept for validate to name


# --------------------------------------------------------------------------- into detectron2 models

def load_report(model, path):
    """Load `path` with detectron2's DetectionCheckpointer; return {model key: tensor} after."""
    from detectron2.checkpoint import DetectionCheckpointer

    DetectionCheckpointer(model).load(str(path))
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_backbone_loaded(state, prefixes, source):
    """Every backbone tensor under `prefixes` equals the source; every source tensor was used."""
    used = set()
    for key, value in state.items():
        prefix = next((p for p in prefixes if key.startswith(p)), None)
        if prefix is None or key.endswith("num_batches_tracked"):
            continue
        name = key[len(prefix):]
        assert name in source, f"model tensor {key} has no counterpart in the converted file"
        np.testing.assert_array_equal(value.numpy(), source[name].numpy(), err_msg=key)
        used.add(name)
    assert used == set(source), f"converted tensors not loaded: {sorted(set(source) - used)[:5]}"


@pytest.fixture(scope="module")
def r50_c4_model():
    """The voc07 model: Faster R-CNN R50-C4 with an extra norm after res5, BN, torchvision stride."""
    from detectron2 import model_zoo
    from detectron2.config import get_cfg
    from detectron2.modeling import build_model

    cfg = get_cfg()
    cfg.merge_from_file(model_zoo.get_config_file("COCO-Detection/faster_rcnn_R_50_C4_1x.yaml"))
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.WEIGHTS = ""
    cfg.MODEL.ROI_HEADS.NAME = "Res5ROIHeadsExtraNorm"
    cfg.MODEL.RESNETS.NORM = "BN"
    cfg.MODEL.RESNETS.STRIDE_IN_1X1 = False
    cfg.MODEL.BACKBONE.FREEZE_AT = 0  # the protocol fine-tunes all layers: BN everywhere, none frozen
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 20
    torch.manual_seed(0)
    return build_model(cfg)


def test_converted_moco_loads_completely_into_r50_c4(r50_c4_model, synthetic_checkpoint, tmp_path):
    result = convert.convert_file(synthetic_checkpoint("moco"), tmp_path / "moco.pkl")
    state = load_report(r50_c4_model, result.output)
    source = backbone_source()
    res4_and_below = {k: v for k, v in source.items() if not k.startswith("res5.")}
    assert_backbone_loaded({k: v for k, v in state.items() if not k.startswith("roi_heads.")}, ["backbone."], res4_and_below)
    res5 = {k: v for k, v in source.items() if k.startswith("res5.")}
    res5_state = {k: v for k, v in state.items() if k.startswith("roi_heads.res5.") and not k.startswith("roi_heads.res5.norm.")}
    assert_backbone_loaded(res5_state, ["roi_heads."], res5)
    # detectron2's own load report: only the heads and the extra norm after res5 are left out
    from detectron2.checkpoint import DetectionCheckpointer

    checkpointer = DetectionCheckpointer(r50_c4_model)
    report = checkpointer._load_model(checkpointer._load_file(str(result.output)))
    assert not report.unexpected_keys and not report.incorrect_shapes
    assert {k.rsplit(".", 1)[0] for k in report.missing_keys} == {
        "proposal_generator.rpn_head.conv", "proposal_generator.rpn_head.objectness_logits",
        "proposal_generator.rpn_head.anchor_deltas", "roi_heads.res5.norm",
        "roi_heads.box_predictor.cls_score", "roi_heads.box_predictor.bbox_pred"}
    # the extra norm after res5 is not pretrained: it keeps BN's initial values
    np.testing.assert_array_equal(state["roi_heads.res5.norm.weight"].numpy(), np.ones(2048, np.float32))
    np.testing.assert_array_equal(state["roi_heads.res5.norm.running_mean"].numpy(), np.zeros(2048, np.float32))


def test_converted_weights_load_completely_into_deeplabv3(synthetic_checkpoint, tmp_path):
    from detectron2.config import get_cfg
    from detectron2.modeling import build_model
    from detectron2.projects.deeplab import add_deeplab_config

    cfg = get_cfg()
    add_deeplab_config(cfg)
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.META_ARCHITECTURE = "SemanticSegmentor"
    cfg.MODEL.BACKBONE.NAME = "build_resnet_deeplab_backbone"
    cfg.MODEL.BACKBONE.FREEZE_AT = 0
    cfg.MODEL.RESNETS.DEPTH, cfg.MODEL.RESNETS.NORM, cfg.MODEL.RESNETS.STRIDE_IN_1X1 = 50, "BN", False
    cfg.MODEL.RESNETS.STEM_TYPE = "basic"  # torchvision's stem: one 7x7 conv, as in the checkpoint
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res2", "res5"]
    cfg.MODEL.RESNETS.RES4_DILATION, cfg.MODEL.RESNETS.RES5_DILATION = 1, 2
    cfg.MODEL.RESNETS.RES5_MULTI_GRID = [1, 2, 4]
    cfg.MODEL.SEM_SEG_HEAD.NAME = "DeepLabV3Head"
    cfg.MODEL.SEM_SEG_HEAD.IN_FEATURES = ["res5"]
    cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES = 19
    cfg.MODEL.SEM_SEG_HEAD.COMMON_STRIDE = 16
    cfg.MODEL.SEM_SEG_HEAD.NORM = "BN"
    torch.manual_seed(0)
    model = build_model(cfg)
    result = convert.convert_file(synthetic_checkpoint("dataparallel"), tmp_path / "tv.pkl")
    state = load_report(model, result.output)
    assert_backbone_loaded(state, ["backbone."], backbone_source())
    assert model.backbone.res5[1].conv2.dilation == (4, 4)  # the dilated res5 it was loaded into


# --------------------------------------------------------------------------- bad inputs

class Evil:
    """Unpickling this runs `touch MARKER`."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def resnet_missing_one():
    sd = dict(torchvision_weights())
    del sd["layer3.4.bn2.running_var"]
    return sd


def resnet18():
    import torchvision

    with torch.device("meta"):
        shapes = {k: v.shape for k, v in torchvision.models.resnet18().state_dict().items()}
    return {k: torch.zeros(s) for k, s in shapes.items()}


def vit():
    return {"cls_token": torch.zeros(1, 1, 768), "pos_embed": torch.zeros(1, 197, 768),
            "patch_embed.proj.weight": torch.zeros(768, 3, 16, 16), "blocks.0.attn.qkv.weight": torch.zeros(2304, 768)}


def wrong_shape():
    sd = dict(torchvision_weights())
    sd["layer1.0.conv2.weight"] = torch.zeros(64, 64, 1, 1)
    return sd


def extra_tensor():
    sd = dict(torchvision_weights())
    sd["layer2.0.se.fc1.weight"] = torch.zeros(8, 512)
    return sd


def legacy_bytes(p):
    """A ResNet-50 in torch's legacy (pre-1.6, non-zip) serialization."""
    torch.save(dict(torchvision_weights()), p, _use_new_zipfile_serialization=False)
    return p.read_bytes()


BAD_CHECKPOINTS = {  # name -> (writer(path), message fragment)
    "empty": (lambda p: p.write_bytes(b""), "empty file"),
    "truncated": (lambda p: p.write_bytes((p.parent / "good.pth").read_bytes()[:200_000]), "truncated or corrupt"),
    "random": (lambda p: p.write_bytes(np.random.default_rng(0).bytes(4096)), "not a PyTorch checkpoint"),
    "text": (lambda p: p.write_text("model: resnet50\n"), "not a PyTorch checkpoint"),
    "legacy_truncated": (lambda p: p.write_bytes(legacy_bytes(p)[:300_000]), "truncated: the file ends in the middle"),
    "list": (lambda p: torch.save([torch.zeros(2)], p), "top level is a list, not a dict"),
    "empty_dict": (lambda p: torch.save({}, p), "empty state dict"),
    "empty_state_dict": (lambda p: torch.save({"state_dict": {}}, p), "empty state dict"),
    "vit": (lambda p: torch.save({"model": vit()}, p), "not a ResNet checkpoint of a known format"),
    "resnet18": (lambda p: torch.save(resnet18(), p), "basic-block ResNet (ResNet-18/34"),
    "missing_tensor": (lambda p: torch.save(resnet_missing_one(), p), "missing 1 (res4.4.conv2.norm.running_var)"),
    "wrong_shape": (lambda p: torch.save(wrong_shape(), p),
                    "wrong shape 1 (res2.0.conv2.weight: (64, 64, 1, 1), expected (64, 64, 3, 3))"),
    "extra_tensor": (lambda p: torch.save(extra_tensor(), p), "unexpected 1 (layer2.0.se.fc1.weight)"),
    "detectron2_names": (lambda p: torch.save({"stem.conv1.weight": torch.zeros(64, 3, 7, 7)}, p), "already in detectron2's naming"),
}


@pytest.fixture
def bad_dir(tmp_path):
    torch.save(dict(torchvision_weights()), tmp_path / "good.pth")
    return tmp_path


@pytest.mark.parametrize("case", BAD_CHECKPOINTS)
def test_bad_checkpoint_one_line_exit_1_no_output(case, bad_dir, cli, capsys):
    write, message = BAD_CHECKPOINTS[case]
    src = bad_dir / f"{case}.pth"
    write(src)
    assert cli([str(src)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {src}: ") and err.count("\n") == 1, err
    assert message in err
    assert not (bad_dir / f"{case}.pkl").exists()
    assert sorted(p.name for p in bad_dir.iterdir()) == sorted(["good.pth", f"{case}.pth"])  # no temp file left


def test_code_running_pickle_is_refused_and_never_runs(tmp_path, cli, capsys):
    marker = tmp_path / "MARKER"
    src = tmp_path / "evil.pth"
    torch.save({"state_dict": dict(torchvision_weights()), "hook": Evil(marker)}, src)
    assert cli([str(src), "-o", str(tmp_path / "out.pkl")]) == 1
    err = capsys.readouterr().err
    assert err == f"error: {src}: refused: unpickling it would call posix.system, i.e. run code; it was not loaded and nothing in it ran\n"
    assert not marker.exists() and not (tmp_path / "out.pkl").exists()


def test_missing_input_and_unknown_format(tmp_path, cli, capsys, synthetic_checkpoint):
    assert cli([str(tmp_path / "nope.pth")]) == 1
    assert capsys.readouterr().err == f"error: {tmp_path / 'nope.pth'}: no such file\n"
    with pytest.raises(SystemExit) as exit_info:
        cli([str(synthetic_checkpoint("moco")), "--format", "simclr"])
    assert exit_info.value.code == 2


def test_wrong_explicit_format_names_the_format(tmp_path, synthetic_checkpoint):
    with pytest.raises(ConversionError, match=r"converted state dict is empty \(as format backbone\)"):
        convert.convert_file(synthetic_checkpoint("torchvision"), tmp_path / "x.pkl", fmt="backbone")
    assert not (tmp_path / "x.pkl").exists()


def test_existing_output_kept_without_force(tmp_path, cli, capsys, synthetic_checkpoint):
    out = tmp_path / "out.pkl"
    out.write_bytes(b"previous")
    assert cli([str(synthetic_checkpoint("moco")), "-o", str(out)]) == 1
    assert capsys.readouterr().err == f"error: {out}: already exists; pass --force to overwrite\n"
    assert out.read_bytes() == b"previous"
    assert cli([str(synthetic_checkpoint("moco")), "-o", str(out), "--force"]) == 0
    printed = capsys.readouterr().out
    assert printed == ("format:  moco\ndepth:   ResNet-50\ntensors: 265 written\n"
                       f"dropped: 4 head, 322 momentum_encoder, 53 num_batches_tracked, 2 queue\noutput:  {out}\n")
    assert len(convert.load_converted(out)["model"]) == 265


def test_cli_as_a_program_default_output_beside_input(tmp_path):
    src = make_synthetic_checkpoint(tmp_path / "moco_v2.pth", "moco_v1", 0, 50)
    run = subprocess.run([sys.executable, str(ROOT / "tools" / "convert.py"), str(src)], capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert f"output:  {tmp_path / 'moco_v2.pkl'}" in run.stdout
    assert convert.load_converted(tmp_path / "moco_v2.pkl")["__author__"] == "moco"


# --------------------------------------------------------------------------- our .pkl, read safely

def test_load_converted_refuses_a_code_running_pkl(tmp_path):
    marker = tmp_path / "MARKER"
    path = tmp_path / "hostile.pkl"
    path.write_bytes(pickle.dumps({"model": {}, "__author__": "x", "hook": Evil(marker)}))
    with pytest.raises(ConversionError, match=r"hostile.pkl: not a converted weights file: refused global posix.system"):
        convert.load_converted(path)
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
    with pytest.raises(ConversionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        convert.load_converted(path)


def test_load_converted_refuses_truncated_pkl(tmp_path, synthetic_checkpoint):
    full = convert.convert_file(synthetic_checkpoint("torchvision"), tmp_path / "full.pkl").output
    (tmp_path / "cut.pkl").write_bytes(full.read_bytes()[:1000])
    with pytest.raises(ConversionError, match=r"cut.pkl: not a converted weights file \(unreadable pickle"):
        convert.load_converted(tmp_path / "cut.pkl")


# --------------------------------------------------------------------------- prepare_weights

def test_prepare_weights_converts_once_and_reuses_by_content(tmp_path, synthetic_checkpoint, isolated_cache):
    src = tmp_path / "moco_v2_imagenet.pth"
    src.write_bytes(synthetic_checkpoint("moco").read_bytes())
    first = convert.prepare_weights(str(src))
    digest = convert.download.sha256_file(src)
    assert first.path == isolated_cache / "converted" / f"{digest}.pkl"
    assert (first.name, first.sha256, first.source) == ("moco_v2_imagenet", digest, str(src))
    assert first.input_settings["MODEL.RESNETS.STRIDE_IN_1X1"] is False
    mtime = first.path.stat().st_mtime_ns
    copy = tmp_path / "same_weights.pth"
    copy.write_bytes(src.read_bytes())
    second = convert.prepare_weights(str(copy))
    assert second.path == first.path and second.path.stat().st_mtime_ns == mtime and second.name == "same_weights"


def test_prepare_weights_removes_temporaries_that_killed_conversions_left(tmp_path, synthetic_checkpoint, isolated_cache):
    converted = isolated_cache / "converted"
    converted.mkdir(parents=True)
    dead, live = converted / ".0123.pkl.k1ll3d.tmp", converted / ".4567.pkl.wr1t1ng.tmp"
    for path, age_s in ((dead, STALE_TEMPORARY_AGE_S + 60), (live, 5)):
        path.write_bytes(b"partial")
        stamp = path.stat().st_mtime - age_s
        os.utime(path, (stamp, stamp))
    prepared = convert.prepare_weights(str(synthetic_checkpoint("torchvision")))
    assert sorted(p.name for p in converted.iterdir()) == sorted([live.name, prepared.path.name])


def test_prepare_weights_passes_a_converted_pkl_through(tmp_path, synthetic_checkpoint):
    result = convert.convert_file(synthetic_checkpoint("exemplar"), tmp_path / "exemplar_v2.pkl", fmt="exemplar")
    prepared = convert.prepare_weights(str(result.output), cache_dir=tmp_path / "unused")
    assert prepared.path == result.output and prepared.name == "exemplar_v2"
    assert prepared.sha256 == convert.download.sha256_file(synthetic_checkpoint("exemplar"))
    assert not (tmp_path / "unused").exists()


def test_prepare_weights_refuses_a_pkl_that_is_not_a_backbone(tmp_path):
    path = tmp_path / "partial.pkl"
    path.write_bytes(pickle.dumps({"model": {"stem.conv1.weight": np.zeros((64, 3, 7, 7), np.float32)}, "__author__": "moco"}))
    with pytest.raises(ConversionError, match=r"partial.pkl: blocks per stage res2..res5 0/0/0/0"):
        convert.prepare_weights(str(path))


def test_prepare_weights_from_url_and_zoo(http_server, synthetic_checkpoint, monkeypatch, isolated_cache):
    base, folder = http_server
    (folder / "exemplar_v1.pth").write_bytes(synthetic_checkpoint("exemplar").read_bytes())
    prepared = convert.prepare_weights(f"{base}/exemplar_v1.pth")
    assert prepared.name == "exemplar_v1" and prepared.source == f"{base}/exemplar_v1.pth"
    assert convert.load_converted(prepared.path)["__provenance__"]["input"] == f"{base}/exemplar_v1.pth"
    assert prepared.sha256 == convert.download.sha256_file(folder / "exemplar_v1.pth")
    assert len(convert.load_converted(prepared.path)["model"]) == 265

    import types

    fake_zoo = types.SimpleNamespace(fetch=lambda name: folder / f"{name}.pth")
    monkeypatch.setitem(sys.modules, "benchmark.weights.zoo", fake_zoo)
    monkeypatch.setattr("benchmark.weights.zoo", fake_zoo, raising=False)
    zoo = convert.prepare_weights("zoo:exemplar_v1")
    assert (zoo.name, zoo.sha256, zoo.path) == ("exemplar_v1", prepared.sha256, prepared.path)


def test_url_input_converts_into_the_cache(http_server, synthetic_checkpoint, isolated_cache, cli, capsys):
    base, folder = http_server
    (folder / "moco.pth").write_bytes(synthetic_checkpoint("moco").read_bytes())
    assert cli([f"{base}/moco.pth"]) == 0
    out = Path(capsys.readouterr().out.splitlines()[-1].split("output:  ")[1])
    assert out.is_relative_to(isolated_cache) and out.name == "moco.pkl"
    data = convert.load_converted(out)
    assert data["__provenance__"]["input"] == f"{base}/moco.pth"
    np.testing.assert_array_equal(data["model"]["res5.2.conv3.weight"], backbone_source()["res5.2.conv3.weight"].numpy())


def test_url_download_cut_short_is_refused_and_not_kept(http_server, synthetic_checkpoint, isolated_cache, cli, capsys):
    base, folder = http_server
    (folder / "moco.pth").write_bytes(synthetic_checkpoint("moco").read_bytes())
    size = (folder / "moco.pth").stat().st_size
    assert cli([f"{base}/cut/moco.pth"]) == 1
    err = capsys.readouterr().err
    assert err == f"error: {base}/cut/moco.pth: download cut short: received {size // 2} of {size} bytes\n"
    assert [p for p in isolated_cache.rglob("*") if p.is_file()] == []
