"""Synthetic checkpoints in the layouts the converter reads, for tests, `make demo` and smoke runs.

The weights are random but seeded (same seed, same bytes) and every tensor, BN statistics
included, gets distinct values, so a test comparing converted arrays with the source catches a
swapped or mis-named key. Nothing is downloaded: shapes come from torchvision's own ResNet built
on the meta device, so no time is spent on its initialisation.

    python -m benchmark.weights.synthetic OUT.pth --layout moco --seed 0 [--depth 50]
"""
import argparse
import functools
from pathlib import Path

import torch

from benchmark.fileio import atomic_write

LAYOUTS = ("moco", "moco_v1", "torchvision", "dataparallel", "exemplar", "encoder_q", "backbone", "encoder", "model")
MOCO_DIM, MOCO_QUEUE = 128, 65536  # MoCo's defaults (feature dim, queue length)


@functools.lru_cache(maxsize=4)
def _torchvision_weights(seed, depth):
    """A torchvision ResNet state dict (fc included) filled with seeded random values."""
    import torchvision

    with torch.device("meta"):
        shapes = {k: (v.shape, v.dtype) for k, v in getattr(torchvision.models, f"resnet{depth}")().state_dict().items()}
    gen = torch.Generator().manual_seed(seed)
    weights = {}
    for name, (shape, dtype) in shapes.items():
        if dtype == torch.long:  # num_batches_tracked
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
    if mlp:
        sd.update(_linear(gen, 2048, 2048, f"{prefix}fc.0"))
        sd.update(_linear(gen, MOCO_DIM, 2048, f"{prefix}fc.2"))
    else:
        sd.update(_linear(gen, MOCO_DIM, 2048, f"{prefix}fc"))
    return sd


def _moco_state_dict(tv, gen, prefix, mlp):
    """MoCo's state dict: query and key (momentum) encoders, the queue and its pointer."""
    sd = _moco_encoder(tv, gen, f"{prefix}encoder_q.", mlp)
    # the key encoder is a momentum average of the query encoder: close to it but not equal
    sd.update({k.replace("encoder_q.", "encoder_k.", 1): v + 0.01 * torch.randn(v.shape, generator=gen) if v.is_floating_point() else v.clone()
               for k, v in list(sd.items())})
    sd[f"{prefix}queue"] = torch.randn(MOCO_DIM, MOCO_QUEUE, generator=gen)
    sd[f"{prefix}queue_ptr"] = torch.zeros(1, dtype=torch.long)
    return sd


def synthetic_checkpoint(layout="moco", seed=0, depth=50) -> dict:
    """The object `make_synthetic_checkpoint` saves: a container around a state dict."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; known: {', '.join(LAYOUTS)}")
    tv = _torchvision_weights(seed, depth)
    gen = torch.Generator().manual_seed(seed + 1)
    # what MoCo's main_moco.py saves besides the weights (optimizer state kept small)
    meta = {"epoch": 200, "arch": f"resnet{depth}", "optimizer": {"state": {}, "param_groups": [{"lr": 0.03, "momentum": 0.9, "params": [0]}]}}
    if layout == "moco":
        return {**meta, "state_dict": _moco_state_dict(tv, gen, "module.", mlp=True)}
    if layout == "moco_v1":
        return {**meta, "state_dict": _moco_state_dict(tv, gen, "module.", mlp=False)}
    if layout == "encoder_q":  # MoCo trained without DataParallel
        return {**meta, "state_dict": _moco_state_dict(tv, gen, "", mlp=True)}
    if layout == "torchvision":
        return dict(tv)
    if layout == "dataparallel":
        return {"model": {f"module.{k}": v for k, v in tv.items()}}
    if layout == "exemplar":  # as the released files: torchvision keys, module.-prefixed, plus fc
        return {"epoch": 200, "arch": f"resnet{depth}", "state_dict": {f"module.{k}": v for k, v in tv.items()}}
    if layout == "backbone":  # mmselfsup-style: backbone + neck/head
        sd = {f"backbone.{k}": v for k, v in tv.items() if not k.startswith("fc.")}
        sd.update(_linear(gen, MOCO_DIM, 2048, "head.fc"))
        return {"state_dict": sd}
    if layout == "encoder":  # SimCLR-style: encoder + projector, raw dict
        sd = {f"encoder.{k}": v for k, v in tv.items() if not k.startswith("fc.")}
        sd.update(_linear(gen, 2048, 2048, "projector.0"))
        return sd
    # "model": a wrapped torchvision model saved as a raw dict
    return {f"model.{k}": v for k, v in tv.items()}


def torchvision_weights(seed=0, depth=50) -> dict:
    """The torchvision-named source weights behind every layout of a given seed and depth."""
    return dict(_torchvision_weights(seed, depth))


def make_synthetic_checkpoint(path, layout="moco", seed=0, depth=50) -> Path:
    """Save a synthetic ResNet checkpoint in `layout` to `path` (atomically) and return the path."""
    obj = synthetic_checkpoint(layout, seed, depth)
    with atomic_write(path, "wb") as f:
        torch.save(obj, f)
    return Path(path)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Write a synthetic (random, seeded) ResNet checkpoint in a given layout.")
    parser.add_argument("output", help="file to write, e.g. moco.pth")
    parser.add_argument("--layout", default="moco", choices=LAYOUTS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--depth", type=int, default=50, choices=(50, 101, 152))
    args = parser.parse_args(argv)
    path = make_synthetic_checkpoint(args.output, args.layout, args.seed, args.depth)
    print(f"wrote {path} ({args.layout}, ResNet-{args.depth}, seed {args.seed}, {path.stat().st_size / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
