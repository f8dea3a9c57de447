"""The public self-supervised ResNet-50 layouts (benchmark/weights/formats.py), one replica each.

Each replica (benchmark.weights.synthetic.REPLICAS) is the file its project writes, rebuilt with
width-8 random weights and every other entry the real file carries (momentum encoders, students,
heads, optimizer, args, queues). tools/convert.py must find the format, name it in the summary and
the provenance, and write exactly the ResNet's arrays: the torchvision weights behind the replica,
never a decoy (student, momentum or EMA copy). Layouts with torchvision's very keys are detected as
torchvision and named when --format says which.
"""
import argparse

import numpy as np
import pytest
import torch

from benchmark.weights import formats
from benchmark.weights.loading import load_checkpoint, load_converted
from benchmark.weights.synthetic import REPLICAS, make_synthetic_checkpoint, synthetic_checkpoint, torchvision_weights
from tests.helpers.oracle import detectron2_name, expected_backbone
from tests.helpers.refusal import one_error_line
from tests.helpers.tools import tool

TINY = 8
SIMCLR_INPUT = {"INPUT.FORMAT": "RGB", "MODEL.PIXEL_MEAN": [0.0, 0.0, 0.0], "MODEL.PIXEL_STD": [255.0, 255.0, 255.0],
                "MODEL.RESNETS.STRIDE_IN_1X1": False}
TV_INPUT = {"INPUT.FORMAT": "RGB", "MODEL.PIXEL_MEAN": [123.675, 116.280, 103.530],
            "MODEL.PIXEL_STD": [58.395, 57.120, 57.375], "MODEL.RESNETS.STRIDE_IN_1X1": False}

# replica -> (format detected, entry the weights come from, dropped kinds the summary counts)
DETECTED = {
    "mocov3": ("mocov3", "state_dict", {"head", "momentum_encoder", "num_batches_tracked"}),
    "swav": ("swav", "", {"head", "num_batches_tracked"}),
    "dino": ("dino", "teacher", {"head", "num_batches_tracked"}),
    "simclr_v2": ("simclr_v2", "resnet", {"head", "num_batches_tracked"}),
    "pycontrast": ("pycontrast", "model", {"head", "num_batches_tracked"}),
    "densecl": ("densecl", "state_dict", {"num_batches_tracked"}),
    "densecl_train": ("backbone", "state_dict", {"backbone_copy", "head", "momentum_encoder", "num_batches_tracked", "queue"}),
    "solo_learn": ("solo_learn", "state_dict", {"head", "momentum_encoder", "num_batches_tracked"}),
    "vissl": ("vissl", "classy_state_dict/base_model/model/trunk", {"num_batches_tracked"}),
    "timm": ("timm", "state_dict", {"head", "num_batches_tracked"}),
}
# replicas with torchvision's very keys: detected as torchvision, recorded as themselves with --format
SAME_KEYS = {"dino_backbone": "", "barlowtwins": "", "vicreg": "", "byol": "", "simclr_v1": "state_dict"}


def backbone(seed=0):
    return {k: v.numpy() for k, v in expected_backbone(seed, 50, TINY).items()}


def assert_exact(model, expected):
    assert sorted(model) == sorted(expected)
    for name, array in expected.items():
        assert model[name].dtype == np.float32
        np.testing.assert_array_equal(model[name], array, err_msg=name)


def convert(tmp_path, capsys, layout, *extra):
    src = make_synthetic_checkpoint(tmp_path / f"{layout}.pth", layout, 0, 50, TINY, "random")
    out = tmp_path / f"{layout}.pkl"
    assert tool("convert")([str(src), "-o", str(out), *extra]) == 0, capsys.readouterr().err
    return capsys.readouterr().out, load_converted(out)


@pytest.mark.parametrize("layout", sorted(DETECTED))
def test_each_public_layout_is_detected_and_converts_exactly(layout, tmp_path, capsys):
    fmt, entry, kinds = DETECTED[layout]
    summary, data = convert(tmp_path, capsys, layout)
    assert summary.splitlines()[0].split()[:2] == ["format:", fmt]
    assert summary.splitlines()[2] == "tensors: 265 written"
    assert set(part.split(" ", 1)[1] for part in summary.splitlines()[3][len("dropped: "):].split(", ")) == kinds
    assert (data["__author__"], data["__provenance__"]["format"], data["__provenance__"]["entry"]) == (fmt, fmt, entry)
    expected_input = SIMCLR_INPUT if fmt == "simclr_v2" else TV_INPUT
    assert {k: data["__provenance__"]["input_settings"][k] for k in expected_input} == expected_input
    assert_exact(data["model"], backbone())


@pytest.mark.parametrize("layout", sorted(SAME_KEYS))
def test_a_torchvision_keyed_layout_is_named_by_format(layout, tmp_path, capsys):
    summary, data = convert(tmp_path, capsys, layout)
    first = summary.splitlines()[0]
    assert first.startswith("format:  torchvision (the keys of ") and f" {layout}," in first.replace(" too;", ",")
    assert data["__provenance__"]["format"] == "torchvision"
    summary, data = convert(tmp_path, capsys, layout, "--format", layout, "--force")
    assert summary.splitlines()[0] == f"format:  {layout}"
    assert (data["__provenance__"]["format"], data["__provenance__"]["entry"]) == (layout, SAME_KEYS[layout])
    expected_input = SIMCLR_INPUT if layout == "simclr_v1" else TV_INPUT
    assert {k: data["__provenance__"]["input_settings"][k] for k in expected_input} == expected_input
    assert_exact(data["model"], backbone())


def test_simclr_v1_detected_as_torchvision_warns_about_its_input(tmp_path, capsys):
    summary, _ = convert(tmp_path, capsys, "simclr_v1")
    assert "simclr_v1 also change the input settings" in summary.splitlines()[0]


@pytest.mark.parametrize("layout, fmt, entry, network", [("dino", "dino_student", "student", "student"),
                                                         ("pycontrast", "pycontrast_ema", "model_ema", "model_ema"),
                                                         ("timm", "timm_ema", "state_dict_ema", "state_dict_ema")])
def test_the_other_network_of_a_file_is_taken_only_when_asked(layout, fmt, entry, network, tmp_path, capsys):
    """DINO's student, PyContrast's momentum encoder, timm's EMA: a format of their own, recorded."""
    summary, data = convert(tmp_path, capsys, layout, "--format", fmt)
    assert summary.splitlines()[0].startswith(f"format:  {fmt} (checkpoint['{entry}']")
    assert (data["__provenance__"]["format"], data["__provenance__"]["entry"]) == (fmt, entry)
    other = synthetic_checkpoint(layout, 0, 50, TINY)[network]
    prefix = {"dino_student": "module.backbone.", "pycontrast_ema": "encoder.", "timm_ema": ""}[fmt]
    expected = {detectron2_name(k[len(prefix):]): v.numpy() for k, v in other.items() if k.startswith(prefix)
                and not k[len(prefix):].startswith(("fc.", "head")) and not k.endswith("num_batches_tracked")}
    assert_exact(data["model"], expected)
    assert not np.array_equal(data["model"]["res3.1.conv2.weight"], backbone()["res3.1.conv2.weight"])  # not the default


def test_the_dino_default_is_the_teacher_and_the_summary_says_so(tmp_path, capsys):
    summary, data = convert(tmp_path, capsys, "dino")
    assert summary.splitlines()[0] == ("format:  dino (checkpoint['teacher'], the EMA network DINO evaluates; "
                                       "--format dino_student takes the student)")
    student = synthetic_checkpoint("dino", 0, 50, TINY)["student"]
    assert not np.array_equal(data["model"]["stem.conv1.weight"], student["module.backbone.conv1.weight"].numpy())


def test_replicas_carry_what_the_real_files_carry(tmp_path):
    """The entries beside the weights, as the cited code saves them; args loads as a Namespace."""
    top = {layout: set(synthetic_checkpoint(layout, 0, 50, TINY)) for layout in ("mocov3", "dino", "timm", "solo_learn")}
    assert top["mocov3"] == {"epoch", "arch", "state_dict", "optimizer", "scaler"}
    assert top["dino"] == {"student", "teacher", "optimizer", "epoch", "args", "dino_loss"}
    assert {"version", "args", "state_dict_ema", "amp_scaler"} <= top["timm"]
    assert {"pytorch-lightning_version", "optimizer_states", "hyper_parameters"} <= top["solo_learn"]
    loaded = load_checkpoint(make_synthetic_checkpoint(tmp_path / "dino.pth", "dino", 0, 50, TINY, "random"))
    assert isinstance(loaded["args"], argparse.Namespace) and loaded["args"].arch == "resnet50"
    sd = synthetic_checkpoint("mocov3", 0, 50, TINY)["state_dict"]
    assert {k.split(".")[1] for k in sd} == {"base_encoder", "momentum_encoder", "predictor"}


def test_every_format_cites_its_source_and_every_replica_has_a_test():
    for source in formats.SOURCES.values():
        assert source.description and source.source, source.name
        assert source.detect or source.note or source.same_keys_as, source.name  # how a user gets it
    assert set(REPLICAS) == set(DETECTED) | set(SAME_KEYS)


# --------------------------------------------------------------------------- unknown layouts

def _save(tmp_path, name, obj):
    path = tmp_path / name
    torch.save(obj, path)
    return path


def test_an_unknown_prefix_names_the_prefixes_found_and_the_nearest_format(tmp_path, capsys):
    tv = torchvision_weights(0, 50, TINY)
    path = _save(tmp_path, "trunk.pth", {"state_dict": {f"module.trunk.{k}": v for k, v in tv.items()},
                                         "epoch": 3})
    assert tool("convert")([str(path), "-o", str(tmp_path / "x.pkl")]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert line == (f"error: {path}: not a ResNet checkpoint of a known format: a torchvision ResNet under "
                    f"'module.trunk.', which no format reads; key prefixes in checkpoint['state_dict']: "
                    f"module.trunk. (320); nearest known format: vissl (prefix '_feature_blocks.', closest to 'trunk.') "
                    f"(tools/convert.py --list-formats)")
    assert not (tmp_path / "x.pkl").exists()


def test_a_half_known_layout_names_the_format_that_reads_most_of_it(tmp_path, capsys):
    tv = torchvision_weights(0, 50, TINY)
    sd = {f"module.base_encoder.{k}": v for k, v in tv.items() if not k.startswith(("conv1", "bn1"))}  # no stem
    path = _save(tmp_path, "nostem.pth", {"state_dict": sd})
    assert tool("convert")([str(path), "-o", str(tmp_path / "x.pkl")]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert "key prefixes in checkpoint['state_dict']: module.base_encoder. (314); nearest known format: mocov3 " \
           "(its renaming reads 260 of the 314 keys)" in line  # 265 tensors, less the stem's 5


def test_a_vit_is_not_a_known_format(tmp_path, capsys):
    vit = {"cls_token": torch.zeros(1, 1, 8), "pos_embed": torch.zeros(1, 5, 8), "patch_embed.proj.weight": torch.zeros(8, 3, 4, 4),
           **{f"blocks.{i}.attn.qkv.weight": torch.zeros(24, 8) for i in range(3)}}
    path = _save(tmp_path, "vit.pth", vit)
    assert tool("convert")([str(path)]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith(f"error: {path}: not a ResNet checkpoint of a known format: key prefixes in the top level: "
                           "blocks. (3), cls_token (1), pos_embed (1), patch_embed. (1); nearest known format: ")


def test_an_extra_network_a_format_does_not_know_is_named_not_dropped(tmp_path, capsys):
    ckpt = synthetic_checkpoint("mocov3", 0, 50, TINY)
    ckpt["state_dict"]["module.extra_head.weight"] = torch.zeros(3, 3)
    path = _save(tmp_path, "extra.pth", ckpt)
    assert tool("convert")([str(path), "-o", str(tmp_path / "x.pkl")]) == 1
    assert one_error_line(capsys.readouterr().err) == (
        f"error: {path}: not a detectron2 ResNet-50 (width 8) backbone: unexpected 1 (module.extra_head.weight) "
        "(as format mocov3)")


def test_a_format_named_for_the_wrong_file_says_where_it_looked(tmp_path, capsys):
    path = make_synthetic_checkpoint(tmp_path / "moco.pth", "mocov3", 0, 50, TINY, "random")
    assert tool("convert")([str(path), "--format", "dino", "-o", str(tmp_path / "x.pkl")]) == 1
    assert one_error_line(capsys.readouterr().err) == (
        f"error: {path}: no state dict at checkpoint['teacher'] (top-level entries: arch, epoch, optimizer, scaler, "
        "state_dict) (as format dino)")


# --------------------------------------------------------------------------- --list-formats

def test_list_formats_prints_every_format_with_its_source(capsys):
    assert tool("convert")(["--list-formats"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{len(formats.SOURCES)} checkpoint formats (bottleneck ResNet-50/101/152 of any width)"
    assert lines[2].split() == ["name", "detected", "description", "source"]
    rows = lines[3:3 + len(formats.SOURCES)]
    assert [r.split()[0] for r in rows] == list(formats.SOURCES)
    for row, source in zip(rows, formats.SOURCES.values()):
        assert row.rstrip().endswith(source.source) and source.description in row
    by_name = dict(zip(formats.SOURCES, rows))
    assert by_name["barlowtwins"].split()[1:4] == ["--format", "(keys", "of"]
    assert "facebookresearch/vissl:extra_scripts/convert_vissl_to_torchvision.py" in by_name["vissl"]
    assert lines[-1].endswith("simclr_v1, simclr_v2: RGB in [0, 1] without mean/std")


def test_input_is_still_required_without_list_formats(capsys):
    with pytest.raises(SystemExit) as exit_info:
        tool("convert")([])
    assert exit_info.value.code == 2 and "INPUT is required (or --list-formats)" in capsys.readouterr().err
