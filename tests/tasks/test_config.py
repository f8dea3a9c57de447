"""Configs: every task builds its model, protocol values pinned against their published sources, world-size rule."""
import pytest
from detectron2.modeling import build_model

import benchmark  # noqa: F401
from benchmark.tasks import get_task, list_tasks
from benchmark.tasks.config import ConfigError, build_config, protocol_config

TORCHVISION_SETTINGS = {  # what the converter records for MoCo / torchvision checkpoints
    "INPUT.FORMAT": "RGB",
    "MODEL.PIXEL_MEAN": [123.675, 116.280, 103.530],
    "MODEL.PIXEL_STD": [58.395, 57.120, 57.375],
    "MODEL.RESNETS.STRIDE_IN_1X1": False,
}
VOC_SIZES = (480, 512, 544, 576, 608, 640, 672, 704, 736, 768, 800)
COCO_SIZES = (640, 672, 704, 736, 768, 800)

# (task, MAX_ITER, STEPS, WARMUP_ITERS, MIN_SIZE_TRAIN, MIN_SIZE_TEST, train, test), as MoCo's detection/configs,
# VISSL's voc07 config and detectron2's COCO schedules give them (configs/sources.yaml cites each)
DETECTION = [
    ("voc07", 12500, (9500,), 100, VOC_SIZES, 800, ("voc_2007_trainval",), ("voc_2007_test",)),
    ("voc0712", 24000, (18000, 22000), 100, VOC_SIZES, 800,
     ("voc_2007_trainval", "voc_2012_trainval"), ("voc_2007_test",)),
    ("coco", 90000, (60000, 80000), 1000, COCO_SIZES, 800, ("coco_2017_train",), ("coco_2017_val",)),
    ("coco_2x", 180000, (120000, 160000), 1000, COCO_SIZES, 800, ("coco_2017_train",), ("coco_2017_val",)),
]


@pytest.mark.parametrize("task", [t.name for t in list_tasks()])
def test_every_task_builds_its_model(task):
    cfg, _ = build_config(get_task(task), TORCHVISION_SETTINGS, num_gpus=8)
    model = build_model(cfg)
    n_params = sum(p.numel() for p in model.parameters())
    if task == "fewshot_miniimagenet":  # a frozen ResNet-18 trunk, always in eval mode (benchmark.tasks.fewshot)
        assert not model.training and 11_000_000 < n_params < 12_000_000
        assert not any(p.requires_grad for p in model.parameters())
    else:
        assert model.training and n_params > 23_000_000  # at least the ResNet-50 trunk
    assert cfg.DATASETS.TRAIN == get_task(task).train and cfg.DATASETS.TEST == get_task(task).test


@pytest.mark.parametrize("name,max_iter,steps,warmup,sizes,test_size,train,test", DETECTION)
def test_detection_protocol_values(name, max_iter, steps, warmup, sizes, test_size, train, test):
    cfg = protocol_config(get_task(name))
    assert (cfg.SOLVER.MAX_ITER, tuple(cfg.SOLVER.STEPS), cfg.SOLVER.WARMUP_ITERS) == (max_iter, steps, warmup)
    assert (cfg.SOLVER.IMS_PER_BATCH, cfg.SOLVER.BASE_LR, cfg.BENCHMARK.PROTOCOL_WORLD_SIZE) == (16, 0.02, 8)
    assert tuple(cfg.INPUT.MIN_SIZE_TRAIN) == sizes and cfg.INPUT.MIN_SIZE_TEST == test_size
    assert (tuple(cfg.DATASETS.TRAIN), tuple(cfg.DATASETS.TEST)) == (train, test)
    assert cfg.MODEL.META_ARCHITECTURE == "GeneralizedRCNN"
    assert (cfg.MODEL.RESNETS.DEPTH, cfg.MODEL.BACKBONE.FREEZE_AT) == (50, 0)
    assert cfg.MODEL.RESNETS.NORM == "naiveSyncBN"
    assert cfg.MODEL.ROI_HEADS.NAME == "Res5ROIHeadsExtraNorm"
    assert list(cfg.MODEL.RESNETS.OUT_FEATURES) == ["res4"]  # C4
    assert (cfg.MODEL.RPN.PRE_NMS_TOPK_TEST, cfg.MODEL.RPN.POST_NMS_TOPK_TEST) == (6000, 1000)
    assert cfg.TEST.PRECISE_BN.ENABLED is True
    assert cfg.MODEL.MASK_ON is name.startswith("coco")
    assert cfg.MODEL.ROI_HEADS.NUM_CLASSES == (80 if name.startswith("coco") else 20)
    # Input settings are not in the configs: they come from the checkpoint's provenance.
    assert cfg.INPUT.FORMAT == "BGR" and cfg.MODEL.RESNETS.STRIDE_IN_1X1 is True


def test_cityscapes_protocol_values():
    cfg = protocol_config(get_task("cityscapes"))
    assert cfg.MODEL.META_ARCHITECTURE == "SemanticSegmentor"
    assert cfg.MODEL.BACKBONE.NAME == "build_resnet_deeplab_backbone" and cfg.MODEL.BACKBONE.FREEZE_AT == 0
    r = cfg.MODEL.RESNETS
    assert (r.DEPTH, r.STEM_TYPE, r.STEM_OUT_CHANNELS, r.RES5_DILATION, r.NORM) == (50, "basic", 64, 2, "naiveSyncBN")
    assert list(r.OUT_FEATURES) == ["res5"]
    h = cfg.MODEL.SEM_SEG_HEAD
    assert (h.NAME, h.ASPP_CHANNELS, list(h.ASPP_DILATIONS), h.ASPP_DROPOUT) == ("DeepLabV3Head", 256, [6, 12, 18], 0.1)
    assert (h.LOSS_TYPE, h.NUM_CLASSES, h.COMMON_STRIDE, h.NORM) == ("hard_pixel_mining", 19, 16, "naiveSyncBN")
    s = cfg.SOLVER
    assert (s.LR_SCHEDULER_NAME, s.BASE_LR, s.MAX_ITER, s.IMS_PER_BATCH) == ("WarmupPolyLR", 0.01, 90000, 16)
    assert s.POLY_LR_POWER == 0.9
    assert cfg.INPUT.CROP.ENABLED and cfg.INPUT.CROP.TYPE == "absolute" and tuple(cfg.INPUT.CROP.SIZE) == (512, 1024)
    assert (cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST) == (1024, 2048)
    assert tuple(cfg.DATASETS.TRAIN) == ("cityscapes_fine_sem_seg_train",)


def test_output_stride_16_on_a_crop():
    import torch

    cfg, _ = build_config(get_task("cityscapes"), TORCHVISION_SETTINGS, smoke=True)
    backbone = build_model(cfg).backbone
    feats = backbone(torch.zeros(1, 3, 64, 128))
    assert tuple(feats["res5"].shape) == (1, 2048, 4, 8)
    assert tuple(backbone.stem.conv1.weight.shape) == (64, 3, 7, 7)  # torchvision stem


def test_input_settings_come_from_the_weights():
    cfg, deviations = build_config(get_task("voc07"), TORCHVISION_SETTINGS, num_gpus=8)
    assert cfg.INPUT.FORMAT == "RGB" and list(cfg.MODEL.PIXEL_MEAN) == [123.675, 116.280, 103.530]
    assert list(cfg.MODEL.PIXEL_STD) == [58.395, 57.120, 57.375] and cfg.MODEL.RESNETS.STRIDE_IN_1X1 is False
    assert deviations == []  # the protocol on 8 processes, with the checkpoint's own settings


def test_smoke_overlay_is_small():
    for task in ("voc07", "coco", "cityscapes"):
        cfg, deviations = build_config(get_task(task), smoke=True)
        assert cfg.BENCHMARK.SMOKE and cfg.SOLVER.MAX_ITER <= 40 and cfg.DATALOADER.NUM_WORKERS == 0
        assert 0 < cfg.SOLVER.CHECKPOINT_PERIOD < cfg.SOLVER.MAX_ITER  # a checkpoint to resume from
        assert max(cfg.INPUT.MIN_SIZE_TRAIN) <= 192 and cfg.INPUT.MIN_SIZE_TEST == 128
        assert deviations[0].startswith("smoke run")
        if task != "cityscapes":
            assert cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE <= 16 and cfg.MODEL.RPN.POST_NMS_TOPK_TEST <= 50
            assert cfg.TEST.PRECISE_BN.NUM_ITER <= 2


@pytest.mark.parametrize("world,batch,lr,max_iter,steps", [
    (8, 16, 0.02, 12500, (9500,)),    # the protocol
    (4, 16, 0.02, 12500, (9500,)),    # same total batch, 4 images per process
    (16, 16, 0.02, 12500, (9500,)),   # 1 image per process
    (2, 4, 0.005, 50000, (38000,)),   # CPU: 8 per process would be more than 4: the protocol's 2 each, scaled
    (1, 2, 0.0025, 100000, (76000,)),
    (3, 6, 0.0075, 33333, (25333,)),  # 16 does not split over 3
])
def test_world_size_rule_of_cpu_processes(world, batch, lr, max_iter, steps):
    cfg, deviations = build_config(get_task("voc07"), num_gpus=world, device_memory_gb=None)
    assert (cfg.SOLVER.IMS_PER_BATCH, tuple(cfg.SOLVER.STEPS), cfg.SOLVER.MAX_ITER) == (batch, steps, max_iter)
    assert cfg.SOLVER.BASE_LR == pytest.approx(lr)
    assert cfg.SOLVER.REFERENCE_WORLD_SIZE == 0  # the trainer must not rescale again
    if batch == 16:
        assert deviations == []
    else:
        assert len(deviations) == 1 and f"world size {world}" in deviations[0] and "12500 -> " in deviations[0]
        assert "2 images per process (CPU processes: at most 4 images each" in deviations[0]
        assert f"warmup 100 -> {round(100 * 16 / batch)}" in deviations[0]
        assert f"images per BN statistic 16 -> {batch}" in deviations[0]
        assert not any(k in deviations[0] for k in ("SEED", "MODEL.WEIGHTS", "OUTPUT_DIR"))  # the engine's keys


# Capacity of one device by the rule: floor((GB - 1) / GB per image), R50-C4 Faster ~3 GB, Mask ~3.25 GB
# (detectron2 MODEL_ZOO.md: 4.8 / 5.2 GB at 2 images per GPU, x1.25), DeepLabV3 see cityscapes.yaml.
CAPACITY = {"voc07": {16: 5, 24: 7, 40: 13, 80: 26}, "coco": {16: 4, 24: 7, 40: 12, 80: 24}}


@pytest.mark.parametrize("task", ["voc07", "coco", "cityscapes"])
@pytest.mark.parametrize("memory", [16, 24, 40, 80])
@pytest.mark.parametrize("devices", [1, 2, 4, 8])
def test_sixteen_images_are_kept_wherever_sixteen_over_devices_fit(task, memory, devices):
    from benchmark.tasks.config import images_per_process

    protocol = protocol_config(get_task(task))
    per_image, fixed = protocol.BENCHMARK.TRAIN_GB_PER_IMAGE, protocol.BENCHMARK.TRAIN_GB_FIXED
    fit = int((memory - fixed) // per_image)
    if task in CAPACITY:
        assert fit == CAPACITY[task][memory]  # the figures the rule is stated with (README)
    assert images_per_process(protocol, devices, memory).capacity == fit
    cfg, deviations = build_config(get_task(task), num_gpus=devices, device_memory_gb=memory)
    if 16 // devices <= fit:
        assert (cfg.SOLVER.IMS_PER_BATCH, deviations) == (16, []), deviations
        assert cfg.SOLVER.MAX_ITER == protocol.SOLVER.MAX_ITER and cfg.SOLVER.BASE_LR == protocol.SOLVER.BASE_LR
    else:  # as many as fit on each process, LR and schedule scaled to that batch
        batch = fit * devices
        assert cfg.SOLVER.IMS_PER_BATCH == batch < 16
        assert cfg.SOLVER.BASE_LR == pytest.approx(protocol.SOLVER.BASE_LR * batch / 16)
        assert cfg.SOLVER.MAX_ITER == round(protocol.SOLVER.MAX_ITER * 16 / batch)
        (line,) = deviations
        assert f"{fit} images per process ({memory:.1f} GB per device holds {fit} images" in line
        assert f"images per BN statistic 16 -> {batch}" in line and f"batch 16 -> {batch}" in line


def test_one_80_gb_gpu_runs_the_published_batch_of_every_task():
    for task in list_tasks():
        cfg, deviations = build_config(task, num_gpus=1, device_memory_gb=80)
        # MoCo's main_lincls.py batch; the few-shot feature extraction batch (no training batch)
        # and the landmark head's batch of 32 (an assumption: configs/sources.yaml landmark-schedule)
        published = {"imagenet_linear": 256, "fewshot_miniimagenet": 240, "mafl_landmarks": 32}.get(task.name, 16)
        assert (cfg.SOLVER.IMS_PER_BATCH, deviations) == (published, []), task.name


def test_a_shrunk_batch_lists_every_derived_change():
    cfg, deviations = build_config(get_task("voc07"), num_gpus=2, device_memory_gb=24)
    (line,) = deviations
    for change in ("batch 16 -> 14", "LR 0.02 -> 0.0175", "iterations 12500 -> 14286", "steps [9500] -> [10857]",
                   "warmup 100 -> 114", "images per BN statistic 16 -> 14"):
        assert change in line, (change, line)
    assert (cfg.SOLVER.IMS_PER_BATCH, cfg.SOLVER.WARMUP_ITERS) == (14, 114)


@pytest.mark.parametrize("ims,world,memory,batch", [
    (16, 1, 80, 16),   # the published batch on one GPU, by hand
    (16, 1, None, 16),  # also on a CPU process: the user says it fits
    (4, 2, 80, 8),     # fewer than fit: by hand wins, the batch shrinks to 2 x 4
    (2, 8, 16, 16),    # the protocol's own split
    (8, 3, 80, 15),    # 16 does not split over 3: 5 each (at most 8)
])
def test_ims_per_gpu_overrides_the_memory_rule(ims, world, memory, batch):
    cfg, deviations = build_config(get_task("voc07"), opts=["BENCHMARK.IMS_PER_GPU", str(ims)], num_gpus=world,
                                   device_memory_gb=memory)
    assert cfg.SOLVER.IMS_PER_BATCH == batch
    if batch == 16:
        assert deviations == []  # the option itself is no deviation: only what it changes
    else:
        (line,) = deviations
        assert f"(--ims-per-gpu {ims})" in line and f"batch 16 -> {batch}" in line


def test_the_split_is_not_part_of_the_protocol_digest():
    from benchmark.tasks.config import config_digest

    eight, _ = build_config(get_task("voc07"), num_gpus=8, device_memory_gb=16)
    one, _ = build_config(get_task("voc07"), opts=["BENCHMARK.IMS_PER_GPU", "16"], num_gpus=1, device_memory_gb=80)
    small, _ = build_config(get_task("voc07"), num_gpus=1, device_memory_gb=40)  # 13 images: another protocol
    assert config_digest(eight, seed=False) == config_digest(one, seed=False) != config_digest(small, seed=False)


@pytest.mark.parametrize("task, foreign, own", [
    ("voc07", ("LINEAR", "FEWSHOT", "LANDMARKS"), None),
    ("imagenet_linear", ("FEWSHOT", "LANDMARKS"), "LINEAR"),
    ("fewshot_miniimagenet", ("LINEAR", "LANDMARKS"), "FEWSHOT"),
    ("mafl_landmarks", ("LINEAR", "FEWSHOT"), "LANDMARKS"),
])
def test_a_settings_group_of_another_trainer_is_no_part_of_the_digest(task, foreign, own):
    """Adding a task (with its group of settings) must not change the other tasks' digests: their runs
    would stop being reused and pooled. The task's own group stays in its digest."""
    from benchmark.tasks.config import config_digest

    cfg, _ = build_config(get_task(task))
    for group in foreign:
        changed = cfg.clone()
        changed.defrost()
        for key in changed.BENCHMARK[group]:
            value = changed.BENCHMARK[group][key]
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                changed.BENCHMARK[group][key] = value + 1
        assert config_digest(changed) == config_digest(cfg), group
    if own:
        changed = cfg.clone()
        changed.defrost()
        changed.BENCHMARK[own].EPOCHS = changed.BENCHMARK[own].EPOCHS + 1
        assert config_digest(changed) != config_digest(cfg)


def test_two_machines_count_in_the_world_size():
    cfg, deviations = build_config(get_task("coco"), num_gpus=2, num_machines=2, device_memory_gb=None)
    assert (cfg.SOLVER.IMS_PER_BATCH, cfg.SOLVER.MAX_ITER, deviations) == (16, 90000, [])


def test_options_norm_and_amp_are_deviations():
    cfg, deviations = build_config(get_task("voc07"), opts=["SOLVER.BASE_LR", "0.04", "SOLVER.MAX_ITER", "12500"],
                                   num_gpus=8, norm="BN", amp=True)
    assert cfg.SOLVER.BASE_LR == 0.04 and cfg.MODEL.RESNETS.NORM == "BN" and cfg.SOLVER.AMP.ENABLED
    assert deviations == [
        "norm BN: batch statistics per process, not synchronized over the whole batch",
        "SOLVER.BASE_LR: 0.02 in the protocol, 0.04 from the command line",  # MAX_ITER unchanged: none
        "mixed precision (AMP) training; the protocol trains in FP32",
    ]
    seg, _ = build_config(get_task("cityscapes"), norm="SyncBN", num_gpus=8)
    assert seg.MODEL.RESNETS.NORM == seg.MODEL.SEM_SEG_HEAD.NORM == "SyncBN"


@pytest.mark.parametrize("opts,message", [
    (["SOLVER.NO_SUCH_KEY", "1"], "SOLVER.NO_SUCH_KEY"),
    (["SOLVER.BASE_LR"], "KEY VALUE pairs"),
    (["SOLVER.MAX_ITER", "'many'"], "MAX_ITER"),
])
def test_bad_options_are_config_errors(opts, message):
    with pytest.raises(ConfigError, match=message):
        build_config(get_task("voc07"), opts=opts)


def test_unknown_norm():
    with pytest.raises(ConfigError, match="unknown norm 'GN'"):
        build_config(get_task("voc07"), norm="GN")


@pytest.mark.parametrize("value", ["0", "-2", "two"])
def test_ims_per_gpu_must_be_a_whole_number_of_at_least_one(value, capsys):
    from benchmark.cli.run_transfer import parser

    with pytest.raises(SystemExit) as exc:
        parser().parse_args(["--ims-per-gpu", value])
    assert exc.value.code == 2 and f"expected a whole number >= 1, got '{value}'" in capsys.readouterr().err


def test_a_key_given_twice_is_one_deviation_with_its_last_value():
    """The learning check's overlay and then the user both set a key: the record lists it once, with the user's value."""
    key = "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE"
    cfg, deviations = build_config(get_task("voc07"), opts=[key, "16", key, "32"], device_memory_gb=None)
    assert cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE == 32
    assert [d for d in deviations if d.startswith(key)] == [f"{key}: 512 in the protocol, 32 from the command line"]
