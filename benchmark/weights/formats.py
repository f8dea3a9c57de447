"""Checkpoint formats as data, and the pure functions between a state dict and detectron2's names.

A format (`Source`) is where the ResNet lives in a state dict (a key prefix), a pure rename
`str -> str | None` (None = dropped) and the input settings a model fine-tuned from it needs.
`convert_state_dict(sd, source)` applies one; `validate` checks that the result is exactly a
detectron2 bottleneck ResNet and returns its architecture, which `architecture_settings` turns
into the config keys that build that same network. Nothing here reads or writes a file: the
callers (benchmark.weights.convert) name the file in the errors raised here.
"""
import dataclasses
import functools
import re
from typing import Callable, Optional

import numpy as np
import torch

from benchmark.weights.errors import ConversionError, listing

# Torchvision-trained weights see RGB images in [0, 255] normalised with ImageNet's mean/std and
# have the stride in the 3x3 conv of each bottleneck (detectron2's default, from Caffe2, is BGR,
# its own mean/std and the stride in the 1x1).
TORCHVISION_INPUT = {
    "INPUT.FORMAT": "RGB",
    "MODEL.PIXEL_MEAN": [123.675, 116.280, 103.530],
    "MODEL.PIXEL_STD": [58.395, 57.120, 57.375],
    "MODEL.RESNETS.STRIDE_IN_1X1": False,
}

# bottleneck blocks in res2..res5 for each supported depth
BLOCKS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}
TORCHVISION_WIDTH = 64  # stem channels of torchvision's (and detectron2's default) ResNet-50/101/152


# --------------------------------------------------------------------------- the formats

_TV_BLOCK = re.compile(r"layer([1-4])\.(\d+)\.(conv[1-3]|bn[1-3]|downsample\.[01])\.(.+)")


def torchvision_to_detectron2(key: str) -> Optional[str]:
    """Rename one torchvision ResNet key to detectron2's name; None for keys that are dropped.

    fc (the classifier) and num_batches_tracked are dropped. A key that is neither a ResNet
    tensor nor droppable is returned unchanged, so that `validate` names it as unexpected
    instead of it vanishing silently.
    """
    if key.endswith("num_batches_tracked") or key.startswith("fc."):
        return None
    if key == "conv1.weight":
        return "stem.conv1.weight"
    if key.startswith("bn1."):
        return "stem.conv1.norm." + key[len("bn1."):]
    m = _TV_BLOCK.fullmatch(key)
    if m is None:
        return key
    stage, block, layer, param = m.groups()
    layer = {"downsample.0": "shortcut", "downsample.1": "shortcut.norm"}.get(layer, layer)
    if layer.startswith("bn"):
        layer = f"conv{layer[2]}.norm"
    return f"res{int(stage) + 1}.{block}.{layer}.{param}"


def _prefixed(prefix: str, key: str) -> Optional[str]:
    """Strip an optional DataParallel `module.` and the encoder `prefix`; keys outside it drop."""
    if key.startswith("module."):
        key = key[len("module."):]
    if not key.startswith(prefix):
        return None  # another network in the file: MoCo's key encoder, a projector, a queue
    return torchvision_to_detectron2(key[len(prefix):])


@dataclasses.dataclass(frozen=True)
class Source:
    """A checkpoint format: where the ResNet lives in the state dict and what input it expects."""

    name: str
    prefix: str  # the ResNet's keys start with (module.)prefix
    rename: Callable[[str], Optional[str]]
    input_settings: dict
    description: str


def _source(name, prefix, description):
    return Source(name, prefix, functools.partial(_prefixed, prefix), TORCHVISION_INPUT, description)


SOURCES = {
    s.name: s
    for s in (
        _source("moco", "encoder_q.", "MoCo v1/v2: (module.)encoder_q.* query encoder; encoder_k, queue, fc/MLP head dropped"),
        _source("exemplar", "", "Exemplar (Zhao et al.): torchvision keys, possibly module.-prefixed, plus fc"),
        _source("supervised", "", "supervised torchvision ResNet (the released supervised_*.pth files)"),
        _source("torchvision", "", "torchvision ResNet, plain or DataParallel (module.)"),
        _source("backbone", "backbone.", "torchvision ResNet under backbone. (mmselfsup-style); neck/head dropped"),
        _source("encoder", "encoder.", "torchvision ResNet under encoder. (SimCLR-style); projector dropped"),
        _source("model", "model.", "torchvision ResNet under model."),
    )
}
# the order detection tries: a prefixed ResNet before a plain one
_DETECT_ORDER = ("moco", "backbone", "encoder", "model", "torchvision")


def _as_source(source) -> Source:
    return SOURCES[source] if isinstance(source, str) else source


# --------------------------------------------------------------------------- state dict -> detectron2 names

def extract_state_dict(checkpoint) -> dict:
    """The state dict inside a checkpoint: checkpoint["state_dict"], checkpoint["model"] or itself.

    The released files' layout is not documented. MoCo's "state_dict" comes first because MoCo
    files hold other entries beside it ("arch", "epoch", the optimizer); a file with neither
    container is taken to be a bare state dict.
    """
    if not isinstance(checkpoint, dict):
        raise ConversionError(None, f"not a checkpoint: top level is a {type(checkpoint).__name__}, not a dict")
    for container in ("state_dict", "model"):
        if isinstance(checkpoint.get(container), dict):
            return checkpoint[container]
    return checkpoint


def detect_format(state_dict) -> str:
    """The name in SOURCES of the format of `state_dict` (keys only are looked at).

    Exemplar and supervised files have the same keys as a torchvision ResNet and are reported
    as "torchvision" (same renaming, same input settings); name them explicitly (or come through
    the zoo, which knows) to record them as such.
    """
    if not state_dict:
        raise ConversionError(None, "empty state dict: no weights in the checkpoint")
    keys = {k[len("module."):] if k.startswith("module.") else k for k in state_dict}
    found = [name for name in _DETECT_ORDER
             if {f"{SOURCES[name].prefix}conv1.weight", f"{SOURCES[name].prefix}layer1.0.conv1.weight"} <= keys]
    if found:
        return found[0]
    if "stem.conv1.weight" in keys:
        raise ConversionError(None, "already in detectron2's naming (stem.conv1.weight): use it as it is")
    sample = ", ".join(sorted(state_dict)[:3])
    raise ConversionError(None, f"not a ResNet checkpoint of a known format: no conv1.weight/layer1.0.conv1.weight under "
                                f"any of the prefixes '', encoder_q., backbone., encoder., model. (keys start: {sample})")


def drop_kind(key: str) -> str:
    """Why a key is dropped, for the summary: momentum_encoder, queue, num_batches_tracked, head."""
    if "encoder_k." in key:
        return "momentum_encoder"
    if key.rsplit(".", 1)[-1].startswith("queue"):
        return "queue"
    if key.endswith("num_batches_tracked"):
        return "num_batches_tracked"
    return "head"


def convert_state_dict(sd, source) -> dict:
    """Rename `sd` with `source` (a Source or its name) into {detectron2 name: np.ndarray}.

    Pure: `sd` is not modified; arrays share memory with its tensors where possible.
    """
    source = _as_source(source)
    out = {}
    for key, value in sd.items():
        new = source.rename(key)
        if new is None:
            continue
        if new in out:
            raise ConversionError(None, f"two keys map to {new!r} (one is {key!r})")
        if isinstance(value, torch.Tensor):
            out[new] = value.detach().cpu().numpy()
        elif isinstance(value, np.ndarray):
            out[new] = value
        else:
            raise ConversionError(None, f"{key!r} is a {type(value).__name__}, not a tensor")
    return out


def dropped_keys(sd, source) -> dict:
    """{kind: sorted keys} of the keys of `sd` that `source` drops."""
    source = _as_source(source)
    dropped = {}
    for key in sd:
        if source.rename(key) is None:
            dropped.setdefault(drop_kind(key), []).append(key)
    return {kind: sorted(keys) for kind, keys in sorted(dropped.items())}


# --------------------------------------------------------------------------- the architecture

@functools.lru_cache(maxsize=None)
def expected_shapes(depth: int, width: int = TORCHVISION_WIDTH) -> dict:
    """{name: shape} of every tensor of detectron2's bottleneck ResNet of `depth` and base `width`.

    Stem of `width` channels; in stage i (res2..res5) bottleneck width `width*2^i` and output
    `4*width*2^i`; a projection shortcut in the first block of each stage. Width 64 is
    torchvision's ResNet-50/101/152 (and detectron2's default); SimCLR's ResNet-50 x2 has 128.
    """
    if depth not in BLOCKS:
        raise ConversionError(None, f"unsupported ResNet depth {depth}; supported: {', '.join(map(str, BLOCKS))}")
    if width < 1:
        raise ConversionError(None, f"ResNet width must be a positive number of channels, got {width}")

    def conv(name, out_c, in_c, k):
        shapes[f"{name}.weight"] = (out_c, in_c, k, k)
        shapes.update({f"{name}.norm.{p}": (out_c,) for p in ("weight", "bias", "running_mean", "running_var")})

    shapes = {}
    conv("stem.conv1", width, 3, 7)
    in_c = width
    for i, n in enumerate(BLOCKS[depth]):
        mid, out_c = width * 2**i, 4 * width * 2**i
        for b in range(n):
            name = f"res{i + 2}.{b}"
            if b == 0:
                conv(f"{name}.shortcut", out_c, in_c, 1)
            conv(f"{name}.conv1", mid, in_c if b == 0 else out_c, 1)
            conv(f"{name}.conv2", mid, mid, 3)
            conv(f"{name}.conv3", out_c, mid, 1)
        in_c = out_c
    return shapes


def infer_depth(converted) -> int:
    """The ResNet depth whose block counts per stage match the converted weights."""
    if not converted:
        raise ConversionError(None, "no ResNet weights found: the converted state dict is empty")
    if "res2.0.conv1.weight" in converted and "res2.0.conv3.weight" not in converted:
        raise ConversionError(None, "basic-block ResNet (ResNet-18/34: no res2.0.conv3): only bottleneck ResNet-50/101/152 are supported")
    counts = []
    for stage in range(2, 6):
        blocks = {int(m.group(1)) for k in converted if (m := re.match(rf"res{stage}\.(\d+)\.", k))}
        counts.append(max(blocks) + 1 if blocks else 0)
    for depth, blocks in BLOCKS.items():
        if tuple(counts) == blocks:
            return depth
    known = "; ".join(f"{d}: {'/'.join(map(str, b))}" for d, b in BLOCKS.items())
    raise ConversionError(None, f"blocks per stage res2..res5 {'/'.join(map(str, counts))} match no supported ResNet ({known})")


def infer_width(converted) -> int:
    """The base width: the stem's output channels (stem.conv1.weight's first dimension).

    Without a 4-d stem weight the torchvision width is assumed, so that `validate` then names
    the stem as missing or of the wrong shape instead of failing here on a vaguer message.
    """
    stem = converted.get("stem.conv1.weight")
    shape = tuple(getattr(stem, "shape", ()))
    return shape[0] if len(shape) == 4 and shape[0] >= 1 else TORCHVISION_WIDTH


def validate(converted, depth=None, width=None) -> tuple:
    """Raise ConversionError unless `converted` is exactly detectron2's ResNet of `depth` and
    `width` (each inferred from the weights where None); return (depth, width).

    Every tensor must be present with the right shape and nothing else may be there: a key
    that is not part of the backbone means the format was misread, not something to ignore.
    """
    depth = infer_depth(converted) if depth is None else depth
    width = infer_width(converted) if width is None else width
    expected = expected_shapes(depth, width)
    if not converted:
        raise ConversionError(None, f"no ResNet-{depth} weights: the converted state dict is empty")
    missing = sorted(set(expected) - set(converted))
    unexpected = sorted(set(converted) - set(expected))
    wrong = sorted(f"{k}: {tuple(converted[k].shape)}, expected {expected[k]}"
                   for k in set(expected) & set(converted) if tuple(converted[k].shape) != expected[k])
    problems = [listing(what, items) for what, items in
                (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)) if items]
    if problems:
        raise ConversionError(None, f"not a detectron2 {_arch_name(depth, width)} backbone: " + "; ".join(problems))
    # A diverged or corrupted pretraining run saves NaN/Inf weights; fine-tuning from them burns
    # hours before the loss turns NaN, so they are refused here, where it costs one pass over memory.
    non_finite = sorted(k for k, v in converted.items() if v.dtype.kind == "f" and not np.isfinite(v).all())
    if non_finite:
        raise ConversionError(None, "weights are not finite: " + listing("tensors with NaN or Inf values", non_finite))
    return depth, width


def _arch_name(depth, width):
    return f"ResNet-{depth}" if width == TORCHVISION_WIDTH else f"ResNet-{depth} (width {width})"


def architecture_settings(depth: int, width: int) -> dict:
    """The detectron2 config keys that build the network `expected_shapes(depth, width)` describes.

    They travel with the converted weights (provenance input_settings) so that a ResNet-101 or a
    width-8 test backbone is fine-tuned as what it is, not as the configs' default ResNet-50.
    """
    return {
        "MODEL.RESNETS.DEPTH": depth,
        "MODEL.RESNETS.STEM_OUT_CHANNELS": width,
        "MODEL.RESNETS.RES2_OUT_CHANNELS": 4 * width,
        "MODEL.RESNETS.WIDTH_PER_GROUP": width,
        "MODEL.RESNETS.NUM_GROUPS": 1,  # plain bottlenecks (ResNeXt's grouped 3x3 convs are not a supported format)
    }


def settings_for(source, depth: int, width: int) -> dict:
    """Everything a model fine-tuned from these weights needs: the format's input settings and
    the architecture's config keys (a fresh dict, safe to modify)."""
    return {**_as_source(source).input_settings, **architecture_settings(depth, width)}
