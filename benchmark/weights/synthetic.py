"""Synthetic checkpoints in the layouts the converter reads, for tests, `make demo` and smoke runs.

The weights are random but seeded (same seed, same bytes) and every tensor, BN statistics
included, gets distinct values, so a test comparing converted arrays with the source catches a
swapped or mis-named key. Nothing is downloaded and no network is initialised: the tensors are
those of torchvision's bottleneck ResNet (its names, shapes and order; tests/weights/test_convert.py
checks them against torchvision's own model), at any base `width`: 64 is torchvision's
ResNet-50/101/152, 8 a tiny backbone that keeps tests and smoke runs fast.

    python -m benchmark.weights.synthetic OUT.pth --layout moco --seed 0 [--depth 50] [--width 64]
"""
import argparse
import functools
from pathlib import Path

import torch

from benchmark.fileio import atomic_write
from benchmark.weights.formats import BLOCKS, TORCHVISION_WIDTH

LAYOUTS = ("moco", "moco_v1", "torchvision", "dataparallel", "exemplar", "encoder_q", "backbone", "encoder", "model")
MOCO_DIM, MOCO_QUEUE = 128, 65536  # MoCo's defaults (feature dim, queue length)
NUM_CLASSES = 1000  # torchvision's ImageNet classifier (fc), dropped by the converter


def torchvision_shapes(depth=50, width=TORCHVISION_WIDTH) -> dict:
    """{torchvision key: shape} of a bottleneck ResNet, in torchvision's state_dict order; a
    0-d shape is a BN layer's num_batches_tracked (an integer)."""
    shapes = {}

    def conv_bn(conv, bn, out_c, in_c, k):
        shapes[f"{conv}.weight"] = (out_c, in_c, k, k)
        shapes.update({f"{bn}.{p}": (out_c,) for p in ("weight", "bias", "running_mean", "running_var")})
        shapes[f"{bn}.num_batches_tracked"] = ()

    conv_bn("conv1", "bn1", width, 3, 7)
    in_c = width
    for i, n in enumerate(BLOCKS[depth]):
        mid, out_c = width * 2**i, 4 * width * 2**i
        for b in range(n):
            name = f"layer{i + 1}.{b}"
            conv_bn(f"{name}.conv1", f"{name}.bn1", mid, in_c if b == 0 else out_c, 1)
            conv_bn(f"{name}.conv2", f"{name}.bn2", mid, mid, 3)
            conv_bn(f"{name}.conv3", f"{name}.bn3", out_c, mid, 1)
            if b == 0:
                conv_bn(f"{name}.downsample.0", f"{name}.downsample.1", out_c, in_c, 1)
        in_c = out_c
    shapes["fc.weight"], shapes["fc.bias"] = (NUM_CLASSES, in_c), (NUM_CLASSES,)
    return shapes


@functools.lru_cache(maxsize=4)
def _torchvision_weights(seed, depth, width):
    """A torchvision ResNet state dict (fc included) filled with seeded random values."""
    gen = torch.Generator().manual_seed(seed)
    weights = {}
    for name, shape in torchvision_shapes(depth, width).items():
        if name.endswith("num_batches_tracked"):
            weights[name] = torch.randint(0, 10**6, shape, generator=gen, dtype=torch.long)
        elif name.endswith("running_var"):
            weights[name] = torch.rand(shape, generator=gen) + 0.5
        else:
            weights[name] = torch.randn(shape, generator=gen)
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


def synthetic_checkpoint(layout="moco", seed=0, depth=50, width=TORCHVISION_WIDTH) -> dict:
    """The object `make_synthetic_checkpoint` saves: a container around a state dict."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; known: {', '.join(LAYOUTS)}")
    if depth not in BLOCKS:
        raise ValueError(f"unsupported depth {depth}; supported: {', '.join(map(str, BLOCKS))}")
    if width < 1:
        raise ValueError(f"width must be a positive number of channels, got {width}")
    tv = _torchvision_weights(seed, depth, width)
    features = tv["fc.weight"].shape[1]
    gen = torch.Generator().manual_seed(seed + 1)
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


def torchvision_weights(seed=0, depth=50, width=TORCHVISION_WIDTH) -> dict:
    """The torchvision-named source weights behind every layout of a given seed, depth and width."""
    return dict(_torchvision_weights(seed, depth, width))


def make_synthetic_checkpoint(path, layout="moco", seed=0, depth=50, width=TORCHVISION_WIDTH) -> Path:
    """Save a synthetic ResNet checkpoint in `layout` to `path` (atomically) and return the path."""
    obj = synthetic_checkpoint(layout, seed, depth, width)
    with atomic_write(path, "wb") as f:
        torch.save(obj, f)
    return Path(path)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Write a synthetic (random, seeded) ResNet checkpoint in a given layout.")
    parser.add_argument("output", help="file to write, e.g. moco.pth")
    parser.add_argument("--layout", default="moco", choices=LAYOUTS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--depth", type=int, default=50, choices=tuple(BLOCKS))
    parser.add_argument("--width", type=int, default=TORCHVISION_WIDTH,
                        help="stem channels (default 64: torchvision's ResNet; 8: a tiny backbone for tests)")
    args = parser.parse_args(argv)
    if args.width < 1:
        parser.error(f"--width must be >= 1, got {args.width}")
    path = make_synthetic_checkpoint(args.output, args.layout, args.seed, args.depth, args.width)
    width = "" if args.width == TORCHVISION_WIDTH else f" width {args.width}"
    print(f"wrote {path} ({args.layout}, ResNet-{args.depth}{width}, seed {args.seed}, {path.stat().st_size / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
