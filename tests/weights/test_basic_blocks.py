"""ResNet-18/34 (basic blocks) through the converter, into detectron2's ResNet, and refused where a task
needs bottleneck blocks.

Formats covered at depth 18/34, each because its project publishes or trains ResNet-18s:
torchvision (plain and DataParallel `module.`: torchvision's own resnet18/34 and timm's published
resnet18 weights, torchvision-named), moco (MoCo's `module.encoder_q.`: main_moco.py takes any
torchvision --arch, and Table 4's MoCo v2 ResNet-18 rows are user-given), backbone (mmselfsup /
OpenSelfSup / mmpretrain checkpoints: `state_dict` of `backbone.*`; mmpretrain publishes
resnet18_8xb32_in1k), solo_learn (solo-learn's zoo/imagenet100.sh ResNet-18s; its CIFAR ones have a
3x3 stem and no max-pool, which detectron2's stem is not, and are refused by shape), timm (training
checkpoints of timm's resnet18/34, torchvision-named) and exemplar (the Zhao et al. layout, in which
Table 4's Exemplar-v2 ResNet-18 rows are expected). The other formats convert basic blocks alike (the
renaming is per key), but their projects publish bottleneck ResNet-50s (or wider) only: MoCo v3, SwAV,
DINO, Barlow Twins, VICReg, BYOL, SimCLR v1/v2, PyContrast, DenseCL, VISSL.
"""
import hashlib

import numpy as np
import pytest
import torch

import benchmark
from benchmark.weights import architecture
from benchmark.weights.convert import ConversionError, convert_file, prepare_weights
from benchmark.weights.loading import load_converted
from benchmark.weights.synthetic import synthetic_checkpoint, torchvision_shapes, torchvision_weights
from tests.helpers.oracle import backbone_of, expected_backbone

RGB_INPUT = {"INPUT.FORMAT": "RGB", "MODEL.PIXEL_MEAN": [123.675, 116.280, 103.530],
             "MODEL.PIXEL_STD": [58.395, 57.120, 57.375], "MODEL.RESNETS.STRIDE_IN_1X1": False}


def basic_arch(depth):
    """The architecture keys of a converted ResNet-18/34, written out: RES2_OUT_CHANNELS 64 (detectron2's assert)."""
    return {"MODEL.RESNETS.DEPTH": depth, "MODEL.RESNETS.STEM_OUT_CHANNELS": 64, "MODEL.RESNETS.RES2_OUT_CHANNELS": 64,
            "MODEL.RESNETS.WIDTH_PER_GROUP": 64, "MODEL.RESNETS.NUM_GROUPS": 1}


@pytest.mark.parametrize("depth, tensors", [(18, 100), (34, 180)])
def test_shapes_are_torchvisions_and_detectron2s_basic_resnet(depth, tensors):
    """The synthetic writer's table is torchvision's model; the validator's is detectron2's, built from the settings."""
    import torchvision
    from detectron2.config import get_cfg
    from detectron2.layers import ShapeSpec
    from detectron2.modeling.backbone.resnet import build_resnet_backbone

    with torch.device("meta"):
        model = getattr(torchvision.models, f"resnet{depth}")()
    assert list(torchvision_shapes(depth).items()) == [(k, tuple(v.shape)) for k, v in model.state_dict().items()]
    cfg = get_cfg()
    cfg.merge_from_list([x for kv in architecture.architecture_settings(depth, 64).items() for x in kv])
    cfg.MODEL.RESNETS.NORM, cfg.MODEL.RESNETS.OUT_FEATURES = "BN", ["res5"]
    with torch.device("meta"):
        backbone = build_resnet_backbone(cfg, ShapeSpec(channels=3))
    shapes = {k: tuple(v.shape) for k, v in backbone.state_dict().items() if not k.endswith("num_batches_tracked")}
    assert shapes == architecture.expected_shapes(depth, 64) and len(shapes) == tensors
    assert "res2.0.shortcut.weight" not in shapes and shapes["res3.0.shortcut.weight"] == (128, 64, 1, 1)


def _random_resnet18():
    """torchvision's ResNet-18, its own random init (no download), BN statistics and affines randomised too."""
    import torchvision

    torch.manual_seed(18)
    model = torchvision.models.resnet18()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5), m.bias.normal_(0, 0.1)
                m.running_mean.normal_(0, 0.1), m.running_var.uniform_(0.5, 1.5)
    return model.eval()


def _perturbed(sd):
    return {k: v + 1 if v.is_floating_point() else v for k, v in sd.items()}


# each covered format's file around a torchvision ResNet-18 state dict, as its project writes it
WRAPPERS = {
    "torchvision": lambda sd: dict(sd),
    "dataparallel": lambda sd: {f"module.{k}": v for k, v in sd.items()},
    "moco": lambda sd: {"epoch": 200, "arch": "resnet18", "state_dict": {
        **{f"module.encoder_q.{k}": v for k, v in sd.items() if not k.startswith("fc.")},
        **{f"module.encoder_k.{k}": v for k, v in _perturbed(sd).items() if not k.startswith("fc.")},
        "module.encoder_q.fc.0.weight": torch.zeros(512, 512), "module.encoder_q.fc.2.weight": torch.zeros(128, 512),
        "module.queue": torch.zeros(128, 16), "module.queue_ptr": torch.zeros(1, dtype=torch.long)}},
    "backbone": lambda sd: {"meta": {"mmcv_version": "1.3.8"}, "state_dict": {
        **{f"backbone.{k}": v for k, v in sd.items() if not k.startswith("fc.")}, "head.fc.weight": torch.zeros(1000, 512)}},
    "solo_learn": lambda sd: {"pytorch-lightning_version": "1.6.5", "epoch": 399, "state_dict": {
        **{f"backbone.{k}": v for k, v in sd.items() if not k.startswith("fc.")},
        **{f"momentum_backbone.{k}": v for k, v in _perturbed(sd).items() if not k.startswith("fc.")},
        "projector.0.weight": torch.zeros(4096, 512), "classifier.weight": torch.zeros(100, 512)}},
    "timm": lambda sd: {"version": 2, "arch": "resnet18", "state_dict": dict(sd), "state_dict_ema": _perturbed(sd)},
    "exemplar": lambda sd: {"epoch": 200, "state_dict": {f"module.{k}": v for k, v in sd.items()}},
}
FORMAT = {"dataparallel": "torchvision", "exemplar": "torchvision"}  # what detection reports; the rest: the name


@pytest.fixture(scope="module")
def resnet18():
    return _random_resnet18()


@pytest.mark.parametrize("fmt", WRAPPERS)
def test_a_random_torchvision_resnet18_converts_exactly_and_runs_as_torchvisions(fmt, resnet18, tmp_path):
    """Array for array the independent renaming; depth 18 recorded; loaded by the suite's checkpointer into
    detectron2's build_resnet_backbone with every tensor matched; res5 = torchvision's layer4 on one input."""
    from detectron2.config import get_cfg
    from detectron2.layers import ShapeSpec
    from detectron2.modeling.backbone.resnet import build_resnet_backbone

    from benchmark.engine.checkpointer import SafeCheckpointer

    sd = resnet18.state_dict()
    src = tmp_path / "r18.pth"
    torch.save(WRAPPERS[fmt](sd), src)
    result = convert_file(src, tmp_path / "r18.pkl")
    assert (result.format, result.depth, result.width, result.tensors) == (FORMAT.get(fmt, fmt), 18, 64, 100)
    data = load_converted(result.output)
    expected = backbone_of(sd)
    assert sorted(data["model"]) == sorted(expected)
    for name, tensor in expected.items():
        np.testing.assert_array_equal(data["model"][name], tensor.numpy(), err_msg=name)
    assert (data["__provenance__"]["depth"], data["__provenance__"]["width"]) == (18, 64)
    assert data["__provenance__"]["input_settings"] == {**RGB_INPUT, **basic_arch(18)}

    cfg = get_cfg()
    cfg.merge_from_list([x for kv in data["__provenance__"]["input_settings"].items() for x in kv])
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res5"]  # NORM: detectron2's default FrozenBN, the eval-mode BN of the tasks
    model = torch.nn.ModuleDict({"backbone": build_resnet_backbone(cfg, ShapeSpec(channels=3))}).eval()
    checkpointer = SafeCheckpointer(model)  # its _load_model refuses unmatched or missing backbone tensors
    report = checkpointer._load_model(checkpointer._load_file(str(result.output)))
    assert (report.missing_keys, report.unexpected_keys, report.incorrect_shapes) == ([], [], [])
    state = model.state_dict()
    for name, tensor in expected.items():
        np.testing.assert_array_equal(state[f"backbone.{name}"].numpy(), tensor.numpy(), err_msg=name)
    x = torch.randn(2, 3, 64, 96, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        t = resnet18.maxpool(resnet18.relu(resnet18.bn1(resnet18.conv1(x))))
        ours = model["backbone"](x)["res5"]
        theirs = resnet18.layer4(resnet18.layer3(resnet18.layer2(resnet18.layer1(t))))
    assert ours.shape == theirs.shape == (2, 512, 2, 3)
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4 * theirs.abs().max().item())


def test_a_moco_wrapped_resnet34_converts_to_its_query_encoder(tmp_path):
    """MoCo's main_moco.py layout around a ResNet-34 (queue kept short: its length is not what is tested)."""
    src = tmp_path / "moco34.pth"
    torch.save(WRAPPERS["moco"](torchvision_weights(3, 34)), src)
    result = convert_file(src, tmp_path / "moco34.pkl")
    assert (result.format, result.depth, result.width, result.tensors) == ("moco", 34, 64, 180)
    assert {k: len(v) for k, v in result.dropped.items()} == {"head": 2, "momentum_encoder": 216,
                                                               "num_batches_tracked": 36, "queue": 2}
    data = load_converted(result.output)
    expected = expected_backbone(3, 34)
    assert sorted(data["model"]) == sorted(expected)
    for name, tensor in expected.items():
        np.testing.assert_array_equal(data["model"][name], tensor.numpy(), err_msg=name)
    # hand-written spot checks: res4 has 6 blocks, res5.0 its shortcut, res2.0 none
    q = torch.load(src, weights_only=True)["state_dict"]
    np.testing.assert_array_equal(data["model"]["res4.5.conv2.norm.running_var"], q["module.encoder_q.layer3.5.bn2.running_var"].numpy())
    np.testing.assert_array_equal(data["model"]["res5.0.shortcut.weight"], q["module.encoder_q.layer4.0.downsample.0.weight"].numpy())
    assert "res2.0.shortcut.weight" not in data["model"]
    assert data["__provenance__"] == {
        "input": str(src.resolve()), "sha256": hashlib.sha256(src.read_bytes()).hexdigest(), "format": "moco",
        "entry": "state_dict", "converter": benchmark.__version__, "depth": 34, "width": 64,
        "input_settings": {**RGB_INPUT, **basic_arch(34)}}


@pytest.mark.parametrize("layout", ["moco", "solo_learn"])
def test_synthetic_resnet18_checkpoints_convert_to_their_source_arrays(layout, tmp_path):
    """What the other tests and the integrator use: synthetic_checkpoint(layout, seed, depth=18)."""
    torch.save(synthetic_checkpoint(layout, 5, depth=18), tmp_path / "s.pth")
    data = load_converted(convert_file(tmp_path / "s.pth", tmp_path / "s.pkl").output)
    expected = expected_backbone(5, 18)
    assert sorted(data["model"]) == sorted(expected) and data["__provenance__"]["depth"] == 18
    for name, tensor in expected.items():
        np.testing.assert_array_equal(data["model"][name], tensor.numpy(), err_msg=name)


def test_the_synthetic_cli_writes_a_resnet18_and_refuses_a_narrow_one(tmp_path, capsys):
    """python -m benchmark.weights.synthetic OUT --depth 18 (its main, in this process)."""
    from benchmark.weights.synthetic import main

    main([str(tmp_path / "r18.pth"), "--depth", "18", "--seed", "2", "--layout", "torchvision"])
    assert "(torchvision, ResNet-18, seed 2, torchvision init, 44.7 MiB)" in capsys.readouterr().out
    saved = torch.load(tmp_path / "r18.pth", weights_only=True)
    assert list(saved) == list(torchvision_shapes(18))
    for key, value in synthetic_checkpoint("torchvision", 2, depth=18, init="torchvision").items():  # the writer's default
        assert torch.equal(saved[key], value), key
    with pytest.raises(SystemExit) as refused:
        main([str(tmp_path / "x.pth"), "--depth", "34", "--width", "8"])
    assert refused.value.code == 2
    assert ("a ResNet-34 (basic blocks) has width 64 only (torchvision's and detectron2's), got 8; narrow test backbones "
            "are bottleneck ResNets (--depth 50 --width 8)") in capsys.readouterr().err
    assert not (tmp_path / "x.pth").exists()


def test_basic_and_bottleneck_blocks_are_told_apart():
    """ResNet-34 and ResNet-50 both have 3/4/6/3 blocks: conv3 decides."""
    r34 = {k: np.zeros(s, np.float32) for k, s in architecture.expected_shapes(34).items()}
    r50 = {k: np.zeros(s, np.float32) for k, s in architecture.expected_shapes(50, 8).items()}
    assert (architecture.infer_depth(r34), architecture.infer_depth(r50)) == (34, 50)
    assert architecture.validate(r34) == (34, 64)
    cut = {k: v for k, v in r34.items() if not k.startswith("res4.5.")}
    with pytest.raises(ConversionError, match=r"blocks per stage res2..res5 3/4/5/3 match no supported ResNet of basic "
                                              r"blocks \(without conv3; 18: 2/2/2/2; 34: 3/4/6/3\)"):
        architecture.infer_depth(cut)


def test_a_narrow_basic_block_resnet_is_refused_naming_the_width(tmp_path):
    import torchvision

    model = torchvision.models.resnet18()
    sd = {k: (v[:32] if k in ("conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var")
              else v[:, :32] if k == "layer1.0.conv1.weight" else v) for k, v in model.state_dict().items()}
    torch.save(sd, tmp_path / "narrow.pth")
    with pytest.raises(ConversionError, match=r"a ResNet-18 \(basic blocks\) has a stem of 64 channels, got 32: detectron2 "
                                              r"builds basic-block ResNets with RES2_OUT_CHANNELS 64 only"):
        convert_file(tmp_path / "narrow.pth", tmp_path / "narrow.pkl")
    assert not (tmp_path / "narrow.pkl").exists()
    with pytest.raises(ConversionError, match="has a stem of 64 channels, got 8"):
        architecture.architecture_settings(34, 8)


# --------------------------------------------------------------------------- tasks that cannot take them

@pytest.fixture(scope="module")
def r18_settings(tmp_path_factory):
    path = tmp_path_factory.mktemp("r18") / "r18.pth"
    torch.save(synthetic_checkpoint("torchvision", 0, depth=18), path)
    return prepare_weights(path, cache_dir=path.parent / "cache").input_settings


@pytest.mark.parametrize("task, why", [
    ("voc07", "its R50-C4 ROI head (Res5ROIHeadsExtraNorm) builds a bottleneck res5 stage on res4"),
    ("voc0712", "its R50-C4 ROI head (Res5ROIHeadsExtraNorm) builds a bottleneck res5 stage on res4"),
    ("coco", "its R50-C4 ROI head (Res5ROIHeadsExtraNorm) builds a bottleneck res5 stage on res4"),
    ("coco_2x", "its R50-C4 ROI head (Res5ROIHeadsExtraNorm) builds a bottleneck res5 stage on res4"),
    ("cityscapes", "its backbone build_resnet_deeplab_backbone builds bottleneck ResNets only; it dilates res5 "
                   "(MODEL.RESNETS.RES5_DILATION 2; detectron2 builds ResNet-18/34 with 1 only)"),
])
def test_tasks_that_need_bottleneck_blocks_refuse_resnet18_weights_before_compute(task, why, r18_settings):
    from benchmark.tasks import get_task
    from benchmark.tasks.config import ConfigError, build_config

    assert r18_settings["MODEL.RESNETS.DEPTH"] == 18
    message = (f"ResNet-18 weights (basic blocks) cannot be used for task {task}: {why}. Use bottleneck "
               "ResNet-50/101/152 weights for it; ResNet-18/34 weights fit imagenet_linear, fewshot_miniimagenet, "
               "mafl_landmarks")
    with pytest.raises(ConfigError) as refused:
        build_config(get_task(task), r18_settings, smoke=True)
    assert str(refused.value) == message


def test_the_tasks_said_to_fit_resnet18_take_it(r18_settings):
    """The refusal's list of tasks is true: their protocols have no bottleneck-only piece, and imagenet_linear
    builds the ResNet-18 the weights describe (res5 of 512 channels)."""
    from detectron2.modeling import build_model

    from benchmark.tasks import get_task
    from benchmark.tasks.config import BASIC_BLOCK_TASKS, basic_block_conflicts, build_config, protocol_config

    for name in BASIC_BLOCK_TASKS:
        assert basic_block_conflicts(protocol_config(get_task(name))) == [], name
    cfg, deviations = build_config(get_task("imagenet_linear"), r18_settings, smoke=True)
    assert (cfg.MODEL.RESNETS.DEPTH, cfg.MODEL.RESNETS.RES2_OUT_CHANNELS) == (18, 64)
    assert "MODEL.RESNETS.DEPTH: 50 in the protocol, 18 from the weights (the architecture of the checkpoint)" in deviations
    assert build_model(cfg).backbone.output_shape()["res5"].channels == 512
