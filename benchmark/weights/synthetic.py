"""Synthetic checkpoints in the layouts the converter reads, for tests, `make demo` and smoke runs.

The weights are random but seeded (same seed, same bytes) and every tensor, BN statistics
included, gets distinct values, so a test comparing converted arrays with the source catches a
swapped or mis-named key. Nothing is downloaded and no network is initialised: the tensors are
those of torchvision's ResNet (its names, shapes and order; tests/weights/test_convert.py
checks them against torchvision's own model): bottleneck ResNet-50/101/152 at any base `width`
(64 is torchvision's, 8 a tiny backbone that keeps tests and smoke runs fast) or basic-block
ResNet-18/34 (`depth=18`, width 64 only, as torchvision and detectron2 build them), in every layout:
`synthetic_checkpoint("moco", seed, depth=18)`, `python -m benchmark.weights.synthetic OUT --depth 18`.

`REPLICAS` are the public self-supervised checkpoints (MoCo v3, SwAV, DINO, Barlow Twins, VICReg,
BYOL, SimCLR v1/v2, PyContrast, DenseCL, solo-learn, VISSL, timm) rebuilt with these random
weights and every other entry the real file carries (momentum encoders, heads, optimizer, args,
queues, ...), each as its source project writes it (benchmark/weights/formats.py cites the file).
The ResNet a converter must extract is always `torchvision_weights(seed, depth, width)`; the other
networks of the file (students, momentum encoders, EMA copies) are perturbed copies of it, so that
taking the wrong one shows.

`init`: "torchvision", the default of the file writer (`make_synthetic_checkpoint`, the command
line), draws the convolutions as torchvision's ResNet.__init__ does (He-normal, fan_out) and sets
BN to identity (weight 1, bias 0, running mean 0, variance 1), giving features of order 1 as a
pretrained network does: every task, the frozen-backbone ones and `--sanity` included, runs on it
as on weights without a bug. "random" (`--init random`; the default of the in-memory builders
`synthetic_checkpoint` and `torchvision_weights`, which converter tests compare against) draws
every tensor from N(0, 1): each tensor, BN included, gets distinct values, which is what a test of
the renaming wants. Fine-tuning survives it but does not learn as from real weights (voc07
`--sanity` reaches AP50 67.5 against its threshold of 90), and through 50 such frozen layers the
features reach ~1e34, so that a linear readoff on them overflows.

    python -m benchmark.weights.synthetic OUT.pth --layout moco --seed 0 [--depth 50|18|34|101|152] [--width 64]
        [--init torchvision|random]
"""
import argparse
import functools
import math
from pathlib import Path

import torch

from benchmark.fileio import atomic_write
from benchmark.weights.architecture import BASIC, BASIC_WIDTH, BLOCK_TYPE, BLOCKS, TORCHVISION_WIDTH

LAYOUTS = ("moco", "moco_v1", "torchvision", "dataparallel", "exemplar", "encoder_q", "backbone", "encoder", "model")
INITS = ("random", "torchvision")
WRITER_INIT = "torchvision"  # what a written file gets unless asked: the one --sanity passes on (see `init` above)
MOCO_DIM, MOCO_QUEUE = 128, 65536  # MoCo's defaults (feature dim, queue length)
NUM_CLASSES = 1000  # torchvision's ImageNet classifier (fc), dropped by the converter


def _check_architecture(depth, width) -> None:
    if depth not in BLOCKS:
        raise ValueError(f"unsupported depth {depth}; supported: {', '.join(map(str, BLOCKS))}")
    if width < 1:
        raise ValueError(f"width must be a positive number of channels, got {width}")
    if BLOCK_TYPE[depth] == BASIC and width != BASIC_WIDTH:
        raise ValueError(f"a ResNet-{depth} (basic blocks) has width {BASIC_WIDTH} only (torchvision's and detectron2's), "
                         f"got {width}; narrow test backbones are bottleneck ResNets (--depth 50 --width 8)")


def torchvision_shapes(depth=50, width=TORCHVISION_WIDTH) -> dict:
    """{torchvision key: shape} of a ResNet (bottleneck 50/101/152 or basic-block 18/34), in
    torchvision's state_dict order; a 0-d shape is a BN layer's num_batches_tracked (an integer).

    Basic blocks (torchvision's BasicBlock): conv1 3x3 (strided), conv2 3x3, a downsample where the
    stride or the channels change (layer2.0, layer3.0, layer4.0; not layer1.0)."""
    _check_architecture(depth, width)
    basic = BLOCK_TYPE[depth] == BASIC
    shapes = {}

    def conv_bn(conv, bn, out_c, in_c, k):
        shapes[f"{conv}.weight"] = (out_c, in_c, k, k)
        shapes.update({f"{bn}.{p}": (out_c,) for p in ("weight", "bias", "running_mean", "running_var")})
        shapes[f"{bn}.num_batches_tracked"] = ()

    conv_bn("conv1", "bn1", width, 3, 7)
    in_c = width
    for i, n in enumerate(BLOCKS[depth]):
        mid, out_c = width * 2**i, (1 if basic else 4) * width * 2**i
        for b in range(n):
            name = f"layer{i + 1}.{b}"
            block_in = in_c if b == 0 else out_c
            if basic:
                conv_bn(f"{name}.conv1", f"{name}.bn1", out_c, block_in, 3)
                conv_bn(f"{name}.conv2", f"{name}.bn2", out_c, out_c, 3)
                if b == 0 and (i > 0 or in_c != out_c):  # stride 2 in layer2-4, or a channel change
                    conv_bn(f"{name}.downsample.0", f"{name}.downsample.1", out_c, in_c, 1)
            else:
                conv_bn(f"{name}.conv1", f"{name}.bn1", mid, block_in, 1)
                conv_bn(f"{name}.conv2", f"{name}.bn2", mid, mid, 3)
                conv_bn(f"{name}.conv3", f"{name}.bn3", out_c, mid, 1)
                if b == 0:
                    conv_bn(f"{name}.downsample.0", f"{name}.downsample.1", out_c, in_c, 1)
        in_c = out_c
    shapes["fc.weight"], shapes["fc.bias"] = (NUM_CLASSES, in_c), (NUM_CLASSES,)
    return shapes


_BN_AT_ZERO = ("running_mean", "bn1.bias", "bn2.bias", "bn3.bias", "downsample.1.bias")
_BN_AT_ONE = ("running_var", "bn1.weight", "bn2.weight", "bn3.weight", "downsample.1.weight")


@functools.lru_cache(maxsize=4)
def _torchvision_weights(seed, depth, width, init="random"):
    """A torchvision ResNet state dict (fc included) filled with seeded random values (see `init` above)."""
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; known: {', '.join(INITS)}")
    gen = torch.Generator().manual_seed(seed)
    weights = {}
    for name, shape in torchvision_shapes(depth, width).items():
        if name.endswith("num_batches_tracked"):
            weights[name] = torch.randint(0, 10**6, shape, generator=gen, dtype=torch.long)
        elif name.endswith("running_var"):
            weights[name] = torch.rand(shape, generator=gen) + 0.5
        else:
            weights[name] = torch.randn(shape, generator=gen)
    if init == "torchvision":
        he = torch.Generator().manual_seed(seed)  # its own stream: the other tensors stay those of "random"
        for name, value in weights.items():
            if value.dim() == 4:  # nn.init.kaiming_normal_(mode="fan_out", nonlinearity="relu")
                fan_out = value.shape[0] * value.shape[2] * value.shape[3]
                weights[name] = torch.randn(value.shape, generator=he) * math.sqrt(2.0 / fan_out)
            elif name.endswith(_BN_AT_ZERO):
                weights[name] = torch.zeros_like(value)
            elif name.endswith(_BN_AT_ONE):
                weights[name] = torch.ones_like(value)
    return weights


def _linear(gen, out_f, in_f, prefix):
    return {f"{prefix}.weight": torch.randn(out_f, in_f, generator=gen), f"{prefix}.bias": torch.randn(out_f, generator=gen)}


def _moco_encoder(tv, gen, prefix, mlp):
    """A MoCo encoder: the ResNet with its fc replaced by MoCo's head (v2: MLP fc.0/fc.2; v1: fc)."""
    sd = {f"{prefix}{k}": v for k, v in tv.items() if not k.startswith("fc.")}
    features = tv["fc.weight"].shape[1]  # 2048 for ResNet-50
    if mlp:
        sd.update(_linear(gen, features, features, f"{prefix}fc.0"))
        sd.update(_linear(gen, MOCO_DIM, features, f"{prefix}fc.2"))
    else:
        sd.update(_linear(gen, MOCO_DIM, features, f"{prefix}fc"))
    return sd


def _moco_state_dict(tv, gen, prefix, mlp, width):
    """MoCo's state dict: query and key (momentum) encoders, the queue and its pointer."""
    sd = _moco_encoder(tv, gen, f"{prefix}encoder_q.", mlp)
    # the key encoder is a momentum average of the query encoder: close to it but not equal
    sd.update({k.replace("encoder_q.", "encoder_k.", 1):
               v + 0.01 * torch.randn(v.shape, generator=gen) if v.is_floating_point() else v.clone()
               for k, v in list(sd.items())})
    # MoCo's queue (32 MB) would be most of a tiny backbone's file: below torchvision's width it
    # shrinks with width^2, as the network's parameters do.
    queue = MOCO_QUEUE * min(width, TORCHVISION_WIDTH) ** 2 // TORCHVISION_WIDTH**2
    sd[f"{prefix}queue"] = torch.randn(MOCO_DIM, queue, generator=gen)
    sd[f"{prefix}queue_ptr"] = torch.zeros(1, dtype=torch.long)
    return sd


def synthetic_checkpoint(layout="moco", seed=0, depth=50, width=TORCHVISION_WIDTH, init="random") -> dict:
    """The object `make_synthetic_checkpoint` saves: a container around a state dict."""
    if layout not in LAYOUTS and layout not in REPLICAS:
        raise ValueError(f"unknown layout {layout!r}; known: {', '.join((*LAYOUTS, *REPLICAS))}")
    _check_architecture(depth, width)
    tv = _torchvision_weights(seed, depth, width, init)
    features = tv["fc.weight"].shape[1]
    gen = torch.Generator().manual_seed(seed + 1)
    if layout in REPLICAS:
        return REPLICAS[layout](tv, gen, features, width)
    # what MoCo's main_moco.py saves besides the weights (optimizer state kept small)
    meta = {"epoch": 200, "arch": f"resnet{depth}",
            "optimizer": {"state": {}, "param_groups": [{"lr": 0.03, "momentum": 0.9, "params": [0]}]}}
    if layout == "moco":
        return {**meta, "state_dict": _moco_state_dict(tv, gen, "module.", mlp=True, width=width)}
    if layout == "moco_v1":
        return {**meta, "state_dict": _moco_state_dict(tv, gen, "module.", mlp=False, width=width)}
    if layout == "encoder_q":  # MoCo trained without DataParallel
        return {**meta, "state_dict": _moco_state_dict(tv, gen, "", mlp=True, width=width)}
    if layout == "torchvision":
        return dict(tv)
    if layout == "dataparallel":
        return {"model": {f"module.{k}": v for k, v in tv.items()}}
    if layout == "exemplar":  # as the released files: torchvision keys, module.-prefixed, plus fc
        return {"epoch": 200, "arch": f"resnet{depth}", "state_dict": {f"module.{k}": v for k, v in tv.items()}}
    if layout == "backbone":  # mmselfsup-style: backbone + neck/head
        sd = {f"backbone.{k}": v for k, v in tv.items() if not k.startswith("fc.")}
        sd.update(_linear(gen, MOCO_DIM, features, "head.fc"))
        return {"state_dict": sd}
    if layout == "encoder":  # SimCLR-style: encoder + projector, raw dict
        sd = {f"encoder.{k}": v for k, v in tv.items() if not k.startswith("fc.")}
        sd.update(_linear(gen, features, features, "projector.0"))
        return sd
    # "model": a wrapped torchvision model saved as a raw dict
    return {f"model.{k}": v for k, v in tv.items()}


# --------------------------------------------------------------------------- the public layouts (REPLICAS)

def _backbone(tv, prefix="", fc=False, tracked=True):
    """The ResNet's tensors under `prefix`: without fc (the projects that replace it by Identity)
    unless `fc`, without num_batches_tracked where the writer drops them."""
    return {f"{prefix}{k}": v for k, v in tv.items()
            if (fc or not k.startswith("fc.")) and (tracked or not k.endswith("num_batches_tracked"))}


def _decoy(sd, gen):
    """Another network of the file (student, momentum encoder, EMA): close to `sd`, never equal."""
    return {k: v + 0.01 * torch.randn(v.shape, generator=gen) if v.is_floating_point() else v.clone()
            for k, v in sd.items()}


def _bn1d(gen, n, prefix, affine=True):
    d = {f"{prefix}.weight": torch.randn(n, generator=gen), f"{prefix}.bias": torch.randn(n, generator=gen)} if affine else {}
    d.update({f"{prefix}.running_mean": torch.randn(n, generator=gen), f"{prefix}.running_var": torch.rand(n, generator=gen) + 0.5,
              f"{prefix}.num_batches_tracked": torch.tensor(1000)})
    return d


def _weight(gen, out_f, in_f, prefix, bias=False):
    d = {f"{prefix}.weight": torch.randn(out_f, in_f, generator=gen)}
    if bias:
        d[f"{prefix}.bias"] = torch.randn(out_f, generator=gen)
    return d


def _mlp2(gen, in_f, hidden, out_f, prefix, bias=True, last_bn=False):
    """Linear, BatchNorm1d, ReLU, Linear (+ BatchNorm1d without affine): MoCo v3's, SwAV's, BYOL's heads."""
    d = {**_weight(gen, hidden, in_f, f"{prefix}.0", bias), **_bn1d(gen, hidden, f"{prefix}.1"),
         **_weight(gen, out_f, hidden, f"{prefix}.3", bias)}
    return {**d, **_bn1d(gen, out_f, f"{prefix}.4", affine=False)} if last_bn else d


def _arch(tv) -> str:
    """torchvision's model name of the ResNet `tv` holds ("resnet50", "resnet18"), as the writers record it."""
    basic = "layer1.0.conv3.weight" not in tv
    counts = tuple(len({k.split(".")[1] for k in tv if k.startswith(f"layer{i}.")}) for i in range(1, 5))
    return next(f"resnet{d}" for d, n in BLOCKS.items() if n == counts and (BLOCK_TYPE[d] == BASIC) == basic)


_OPTIMIZER = {"state": {}, "param_groups": [{"lr": 0.3, "momentum": 0.9, "weight_decay": 1e-6, "params": [0, 1]}]}
_SCALER = {"scale": 65536.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 2000, "_growth_tracker": 0}


def _mocov3(tv, gen, features, width):  # facebookresearch/moco-v3: main_moco.py, moco/builder.py
    mlp, dim = 4096 * width // 64, 256 * width // 64
    sd = {}
    for encoder, weights in (("base_encoder", tv), ("momentum_encoder", _decoy(tv, gen))):
        sd.update(_backbone(weights, f"module.{encoder}."))
        sd.update(_mlp2(gen, features, mlp, dim, f"module.{encoder}.fc", bias=False, last_bn=True))
    sd.update(_mlp2(gen, dim, mlp, dim, "module.predictor", bias=False, last_bn=True))
    return {"epoch": 1000, "arch": _arch(tv), "state_dict": sd, "optimizer": _OPTIMIZER, "scaler": _SCALER}


def _swav(tv, gen, features, width):  # facebookresearch/swav: the released file is the raw (DDP) state dict
    hidden, out, prototypes = 2048 * width // 64, 128 * width // 64, 3000 * width // 64
    sd = _backbone(tv, "module.")
    sd.update(_mlp2(gen, features, hidden, out, "module.projection_head"))
    sd.update(_weight(gen, prototypes, out, "module.prototypes"))
    return sd


def _dino_network(weights, gen, features, width):  # utils.MultiCropWrapper(backbone, DINOHead) under DDP
    hidden, bottleneck, out = 2048 * width // 64, 256 * width // 64, 60000 * width // 640
    sd = _backbone(weights, "module.backbone.")
    sd.update({**_weight(gen, hidden, features, "module.head.mlp.0", True), **_weight(gen, hidden, hidden, "module.head.mlp.2", True),
               **_weight(gen, bottleneck, hidden, "module.head.mlp.4", True),
               "module.head.last_layer.weight_g": torch.ones(out, 1),
               "module.head.last_layer.weight_v": torch.randn(out, bottleneck, generator=gen)})
    return sd


def _dino(tv, gen, features, width):  # facebookresearch/dino: main_dino.py save_dict
    out = 60000 * width // 640
    return {"student": _dino_network(_decoy(tv, gen), gen, features, width), "teacher": _dino_network(tv, gen, features, width),
            "optimizer": _OPTIMIZER, "epoch": 800,
            "args": argparse.Namespace(arch=_arch(tv), out_dim=out, optimizer="sgd", lr=0.03, epochs=800, use_fp16=False),
            "dino_loss": {"center": torch.randn(1, out, generator=gen)}}


def _simclr_v2_name(key):  # SimCLRv2-Pytorch's resnet.py names for a torchvision key (formats.py reads them back)
    if key == "conv1.weight":
        return "net.0.0.weight"
    if key.startswith("bn1."):
        return "net.0.1.0." + key[4:]
    if key.startswith("fc."):
        return key
    stage, block, rest = key[len("layer"):].split(".", 2)
    layer, param = rest.rsplit(".", 1)
    inner = {"conv1": "net.0", "bn1": "net.1.0", "conv2": "net.2", "bn2": "net.3.0", "conv3": "net.4", "bn3": "net.5.0",
             "downsample.0": "projection.shortcut", "downsample.1": "projection.bn.0"}[layer]
    return f"net.{stage}.blocks.{block}.{inner}.{param}"


def _simclr_v2(tv, gen, features, width):  # Separius/SimCLRv2-Pytorch: convert.py saves {'resnet', 'head'}
    head = {}
    for i, out_f in enumerate((features, features, 128 * width // 64)):
        head.update(_weight(gen, out_f, features, f"layers.{3 * i}"))
        head.update(_bn1d(gen, out_f, f"layers.{3 * i + 1}"))
    return {"resnet": {_simclr_v2_name(k): v for k, v in tv.items()}, "head": head}


def _pycontrast(tv, gen, features, width):  # HobbitLong/PyContrast: ContrastTrainer.save
    feat = 128 * width // 64

    def model(weights, prefix):
        return {**_backbone(weights, f"{prefix}encoder."), **_weight(gen, features, features, f"{prefix}head.0", True),
                **_weight(gen, feat, features, f"{prefix}head.2", True)}

    return {"model": model(tv, "module."), "contrast": {"params": torch.tensor([16384.0, 0.2, -1.0, -1.0, 0.5]),
                                                        "memory": torch.randn(16384 * width // 64, feat, generator=gen)},
            "optimizer": _OPTIMIZER, "epoch": 800, "model_ema": model(_decoy(tv, gen), "")}


def _densecl_train(tv, gen, features, width):  # WXinlong/DenseCL (OpenSelfSup/mmcv): epoch_200.pth
    hidden, out, queue = 2048 * width // 64, 128 * width // 64, 65536 * width // 640
    sd = _backbone(tv, "backbone.")
    sd.update(_backbone(tv, "encoder_q.0."))  # the same module, registered twice (self.backbone = encoder_q[0])
    sd.update(_backbone(_decoy(tv, gen), "encoder_k.0."))
    for enc in ("encoder_q", "encoder_k"):
        for mlp in ("mlp", "mlp2"):
            sd.update({**_weight(gen, hidden, features, f"{enc}.1.{mlp}.0", True), **_weight(gen, out, hidden, f"{enc}.1.{mlp}.2", True)})
    sd.update({"queue": torch.randn(out, queue, generator=gen), "queue_ptr": torch.zeros(1, dtype=torch.long),
               "queue2": torch.randn(out, queue, generator=gen), "queue2_ptr": torch.zeros(1, dtype=torch.long)})
    meta = {"epoch": 200, "iter": 500400, "mmcv_version": "1.0.3", "time": "Wed Feb  3 00:00:00 2021",
            "config": "model = dict(type='DenseCL', pretrained=None)"}
    return {"meta": meta, "state_dict": sd, "optimizer": _OPTIMIZER}


def _solo_learn(tv, gen, features, width):  # vturrisi/solo-learn: a PyTorch Lightning checkpoint of BYOL
    hidden, out = 4096 * width // 64, 256 * width // 64
    sd = {**_backbone(tv, "backbone."), **_backbone(_decoy(tv, gen), "momentum_backbone.")}
    for head in ("projector", "momentum_projector"):
        sd.update(_mlp2(gen, features, hidden, out, head))
    sd.update(_mlp2(gen, out, hidden, out, "predictor"))
    sd.update(_weight(gen, NUM_CLASSES, features, "classifier", True))
    return {"epoch": 399, "global_step": 500400, "pytorch-lightning_version": "1.6.5", "state_dict": sd, "loops": {},
            "callbacks": {}, "optimizer_states": [_OPTIMIZER], "lr_schedulers": [{"last_epoch": 399}],
            "hyper_parameters": {"method": "byol", "backbone": {"name": _arch(tv)}, "max_epochs": 400}}


def _vissl(tv, gen, features, width):  # facebookresearch/vissl: a classy checkpoint (SwAV head)
    heads = {**_weight(gen, features, features, "0.projection_head.0", True), **_weight(gen, 3000 * width // 64, features, "0.prototypes0")}
    classy = {"train": True, "base_model": {"model": {"trunk": _backbone(tv, "_feature_blocks."), "heads": heads}, "meta": {}},
              "meters": {}, "optimizer": _OPTIMIZER, "phase_idx": 799, "train_phase_idx": 799, "num_updates": 500400,
              "losses": [], "hooks": {}, "loss": {}, "train_dataset_iterator": None}
    return {"phase_idx": 799, "iteration": 500400, "loss": {}, "iteration_num": 500400, "train_phase_idx": 799,
            "classy_state_dict": classy}


def _timm(tv, gen, features, width):  # huggingface/pytorch-image-models: CheckpointSaver._save
    return {"epoch": 299, "arch": _arch(tv), "state_dict": dict(tv), "optimizer": _OPTIMIZER, "version": 2,
            "args": argparse.Namespace(model=_arch(tv), lr=0.5, epochs=300, model_ema=True), "amp_scaler": _SCALER,
            "state_dict_ema": _decoy(tv, gen), "metric": 80.4}


REPLICAS = {
    "mocov3": _mocov3,
    "swav": _swav,
    "dino": _dino,
    "dino_backbone": lambda tv, gen, features, width: _backbone(tv),  # hubconf: fc = Identity
    "barlowtwins": lambda tv, gen, features, width: _backbone(tv),  # model.module.backbone.state_dict()
    "vicreg": lambda tv, gen, features, width: _backbone(tv),  # its resnet.py has no fc
    "byol": lambda tv, gen, features, width: _backbone(tv, fc=True, tracked=False),  # byol-convert drops 'tracked'
    "simclr_v1": lambda tv, gen, features, width: {"state_dict": dict(tv)},  # simclr-converter: resnet_wider + fc
    "simclr_v2": _simclr_v2,
    "pycontrast": _pycontrast,
    "densecl": lambda tv, gen, features, width: {"state_dict": _backbone(tv), "author": "DenseCL"},  # extract_backbone_weights.py
    "densecl_train": _densecl_train,
    "solo_learn": _solo_learn,
    "vissl": _vissl,
    "timm": _timm,
}


def torchvision_weights(seed=0, depth=50, width=TORCHVISION_WIDTH, init="random") -> dict:
    """The torchvision-named source weights behind every layout of a given seed, depth, width and init."""
    return dict(_torchvision_weights(seed, depth, width, init))


def make_synthetic_checkpoint(path, layout="moco", seed=0, depth=50, width=TORCHVISION_WIDTH, init=WRITER_INIT) -> Path:
    """Save a synthetic ResNet checkpoint in `layout` to `path` (atomically) and return the path."""
    obj = synthetic_checkpoint(layout, seed, depth, width, init)
    with atomic_write(path, "wb") as f:
        torch.save(obj, f)
    return Path(path)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Write a synthetic (random, seeded) ResNet checkpoint in a given layout.")
    parser.add_argument("output", help="file to write, e.g. moco.pth")
    parser.add_argument("--layout", default="moco", choices=(*LAYOUTS, *REPLICAS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--depth", type=int, default=50, choices=tuple(BLOCKS))
    parser.add_argument("--width", type=int, default=TORCHVISION_WIDTH,
                        help="stem channels (default 64: torchvision's ResNet; 8: a tiny backbone for tests; ResNet-18/34: 64 only)")
    parser.add_argument("--init", default=WRITER_INIT, choices=INITS,
                        help="torchvision (default): He-normal convolutions and BN at identity, features of order 1 as "
                             "from pretrained weights (every task and --sanity run on it); random: every tensor N(0, 1), "
                             "distinct values for converter tests (--sanity fails on it, frozen backbones overflow)")
    args = parser.parse_args(argv)
    if args.width < 1:
        parser.error(f"--width must be >= 1, got {args.width}")
    try:
        _check_architecture(args.depth, args.width)
    except ValueError as e:
        parser.error(str(e))
    path = make_synthetic_checkpoint(args.output, args.layout, args.seed, args.depth, args.width, args.init)
    width = "" if args.width == TORCHVISION_WIDTH else f" width {args.width}"
    init = f", {args.init} init"
    print(f"wrote {path} ({args.layout}, ResNet-{args.depth}{width}, seed {args.seed}{init}, "
          f"{path.stat().st_size / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
