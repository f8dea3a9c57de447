"""The ResNet that converted weights are: its tensors' shapes, read back from the weights, as config keys.

RULE: converted weights are exactly one detectron2 ResNet backbone, every tensor of
`expected_shapes(depth, width)` with its shape and nothing else: a missing or extra key means
the format was misread, not something to ignore. `validate` infers the architecture from the
weights (the depth from the blocks per stage, the width from the stem) and checks the shapes
against it; `architecture_settings` are the config keys that build that same network and
`settings_for` adds a format's input settings to them. The tensors' values (dtypes, NaN/Inf,
BatchNorm variances) are benchmark.weights.tensors' rule, checked after this one.

Only bottleneck blocks are supported. A block type is two things here: its blocks per stage
for each depth (`BLOCKS`) and the tensors of one block (`_bottleneck`); the stages around them
(stem, widths doubling per stage, a projection shortcut in each stage's first block) are shared.
"""
import functools
import re
from typing import NamedTuple

from benchmark.weights.errors import ConversionError, listing
from benchmark.weights.formats import Source

# bottleneck blocks in res2..res5 for each supported depth
BLOCKS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}
TORCHVISION_WIDTH = 64  # stem channels of torchvision's (and detectron2's default) ResNet-50/101/152


class Architecture(NamedTuple):
    """A detectron2 ResNet backbone as its weights describe it (compares and unpacks as (depth, width))."""

    depth: int
    width: int = TORCHVISION_WIDTH

    @property
    def name(self) -> str:
        return f"ResNet-{self.depth}" if self.width == TORCHVISION_WIDTH else f"ResNet-{self.depth} (width {self.width})"


def _bottleneck(conv, name: str, in_c: int, mid: int, out_c: int, first: bool) -> None:
    """Declare (through `conv`) the tensors of one bottleneck block: 1x1, 3x3, 1x1 and, first in
    its stage, the projection shortcut."""
    if first:
        conv(f"{name}.shortcut", out_c, in_c, 1)
    conv(f"{name}.conv1", mid, in_c, 1)
    conv(f"{name}.conv2", mid, mid, 3)
    conv(f"{name}.conv3", out_c, mid, 1)


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
            _bottleneck(conv, f"res{i + 2}.{b}", in_c if b == 0 else out_c, mid, out_c, first=b == 0)
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


def validate(converted, depth=None, width=None) -> Architecture:
    """Raise ConversionError unless `converted` is exactly detectron2's ResNet of `depth` and
    `width` (each inferred from the weights where None); return that architecture.

    Every tensor must be present with the right shape and nothing else may be there: a key
    that is not part of the backbone means the format was misread, not something to ignore.
    Only names and shapes are looked at: the values are `tensors.check_values`'.
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
        raise ConversionError(None, f"not a detectron2 {Architecture(depth, width).name} backbone: " + "; ".join(problems))
    return Architecture(depth, width)


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


def settings_for(source: Source, depth: int, width: int) -> dict:
    """Everything a model fine-tuned from these weights needs: the format's input settings and
    the architecture's config keys (a fresh dict, safe to modify)."""
    return {**source.input_settings, **architecture_settings(depth, width)}
