"""The ResNet that converted weights are: its tensors' shapes, read back from the weights, as config keys.

RULE: converted weights are exactly one detectron2 ResNet backbone, every tensor of
`expected_shapes(depth, width)` with its shape and nothing else: a missing or extra key means
the format was misread, not something to ignore. `validate` infers the architecture from the
weights (the depth from the blocks per stage, the width from the stem) and checks the shapes
against it; `architecture_settings` are the config keys that build that same network and
`settings_for` adds a format's input settings to them. The tensors' values (dtypes, NaN/Inf,
BatchNorm variances) are benchmark.weights.tensors' rule, checked after this one.

Two block types, as detectron2's build_resnet_backbone builds them: bottleneck blocks (ResNet-50/
101/152, any base width) and basic blocks (ResNet-18/34: two 3x3 convolutions; detectron2 requires
RES2_OUT_CHANNELS 64, NUM_GROUPS 1, RES5_DILATION 1 and no deformable stage for them, and torchvision's
basic blocks have no width option, so their width is 64 only). A block type is two things here: its
blocks per stage for each depth (`BLOCKS`, `BLOCK_TYPE`) and the tensors of one block (`_bottleneck`,
`_basic`); the stages around them (stem, widths doubling per stage) are shared. The depth is told
from the weights by the block type (a res2.0.conv3 tensor or not) and the blocks per stage, which
alone cannot tell ResNet-34 from ResNet-50 (both 3/4/6/3).
"""
import functools
import re
from typing import NamedTuple

from benchmark.weights.errors import ConversionError, listing
from benchmark.weights.formats import Source

# blocks in res2..res5 for each supported depth, and their type (detectron2's build_resnet_backbone)
BLOCKS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}
BASIC, BOTTLENECK = "basic", "bottleneck"
BLOCK_TYPE = {18: BASIC, 34: BASIC, 50: BOTTLENECK, 101: BOTTLENECK, 152: BOTTLENECK}
TORCHVISION_WIDTH = 64  # stem channels of torchvision's (and detectron2's default) ResNets
# detectron2 asserts RES2_OUT_CHANNELS == 64 for ResNet-18/34 and torchvision's BasicBlock has no
# width option: basic-block ResNets have the torchvision width and no other
BASIC_WIDTH = 64


def block_type(depth: int) -> str:
    """"basic" (ResNet-18/34) or "bottleneck" (ResNet-50/101/152); ConversionError for another depth."""
    if depth not in BLOCKS:
        raise ConversionError(None, f"unsupported ResNet depth {depth}; supported: {', '.join(map(str, BLOCKS))}")
    return BLOCK_TYPE[depth]


def _check_width(depth: int, width: int) -> None:
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ConversionError(None, f"ResNet width must be a positive number of channels, got {width!r}")
    if block_type(depth) == BASIC and width != BASIC_WIDTH:
        raise ConversionError(None, f"a ResNet-{depth} (basic blocks) has a stem of {BASIC_WIDTH} channels, got {width}: "
                                    f"detectron2 builds basic-block ResNets with RES2_OUT_CHANNELS {BASIC_WIDTH} only, and "
                                    "torchvision's have no other width; only bottleneck ResNet-50/101/152 may be narrower "
                                    "or wider")


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


def _basic(conv, name: str, in_c: int, out_c: int) -> None:
    """Declare the tensors of one basic block (detectron2's BasicBlock): 3x3, 3x3 and a 1x1 projection
    shortcut only where the channels change (so not in res2.0 of ResNet-18/34, whose stem has 64)."""
    if in_c != out_c:
        conv(f"{name}.shortcut", out_c, in_c, 1)
    conv(f"{name}.conv1", out_c, in_c, 3)
    conv(f"{name}.conv2", out_c, out_c, 3)


@functools.lru_cache(maxsize=None)
def expected_shapes(depth: int, width: int = TORCHVISION_WIDTH) -> dict:
    """{name: shape} of every tensor of detectron2's ResNet of `depth` and base `width`.

    Stem of `width` channels. Bottleneck blocks (50/101/152): in stage i (res2..res5) bottleneck
    width `width*2^i` and output `4*width*2^i`, a projection shortcut in the first block of each
    stage; width 64 is torchvision's ResNet-50/101/152 (and detectron2's default), SimCLR's
    ResNet-50 x2 has 128. Basic blocks (18/34, width 64 only): output `64*2^i`, a shortcut where
    the channels change (res3.0, res4.0, res5.0).
    """
    kind = block_type(depth)
    _check_width(depth, width)

    def conv(name, out_c, in_c, k):
        shapes[f"{name}.weight"] = (out_c, in_c, k, k)
        shapes.update({f"{name}.norm.{p}": (out_c,) for p in ("weight", "bias", "running_mean", "running_var")})

    shapes = {}
    conv("stem.conv1", width, 3, 7)
    in_c = width
    for i, n in enumerate(BLOCKS[depth]):
        mid, out_c = width * 2**i, (4 if kind == BOTTLENECK else 1) * width * 2**i
        for b in range(n):
            if kind == BOTTLENECK:
                _bottleneck(conv, f"res{i + 2}.{b}", in_c if b == 0 else out_c, mid, out_c, first=b == 0)
            else:
                _basic(conv, f"res{i + 2}.{b}", in_c if b == 0 else out_c, out_c)
        in_c = out_c
    return shapes


def infer_block_type(converted) -> str:
    """"bottleneck" where any block has a third convolution (conv3), else "basic" (two 3x3 convolutions)."""
    return BOTTLENECK if any(re.match(r"res[2-5]\.\d+\.conv3\.", k) for k in converted if isinstance(k, str)) else BASIC


def infer_depth(converted) -> int:
    """The ResNet depth whose block type and block counts per stage match the converted weights.

    The block type comes first: ResNet-34 and ResNet-50 both have 3/4/6/3 blocks.
    """
    if not converted:
        raise ConversionError(None, "no ResNet weights found: the converted state dict is empty")
    kind = infer_block_type(converted)
    counts = []
    for stage in range(2, 6):
        blocks = {int(m.group(1)) for k in converted if isinstance(k, str) and (m := re.match(rf"res{stage}\.(\d+)\.", k))}
        counts.append(max(blocks) + 1 if blocks else 0)
    for depth, blocks in BLOCKS.items():
        if BLOCK_TYPE[depth] == kind and tuple(counts) == blocks:
            return depth
    known = "; ".join(f"{d}: {'/'.join(map(str, b))}" for d, b in BLOCKS.items() if BLOCK_TYPE[d] == kind)
    why = "with conv3" if kind == BOTTLENECK else "without conv3"
    raise ConversionError(None, f"blocks per stage res2..res5 {'/'.join(map(str, counts))} match no supported ResNet of "
                                f"{kind} blocks ({why}; {known})")


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

    They travel with the converted weights (provenance input_settings) so that a ResNet-101, a
    ResNet-18 or a width-8 test backbone is fine-tuned as what it is, not as the configs' default
    ResNet-50. ResNet-18/34: RES2_OUT_CHANNELS 64 (detectron2 asserts it; WIDTH_PER_GROUP is unused by
    basic blocks and kept at the width). Their other requirement, RES5_DILATION 1 and no bottleneck
    res5 head, is the task's: benchmark.tasks.config refuses tasks that need otherwise.
    """
    block_type(depth)
    _check_width(depth, width)
    return {
        "MODEL.RESNETS.DEPTH": depth,
        "MODEL.RESNETS.STEM_OUT_CHANNELS": width,
        "MODEL.RESNETS.RES2_OUT_CHANNELS": (4 if BLOCK_TYPE[depth] == BOTTLENECK else 1) * width,
        "MODEL.RESNETS.WIDTH_PER_GROUP": width,
        "MODEL.RESNETS.NUM_GROUPS": 1,  # plain bottlenecks (ResNeXt's grouped 3x3 convs are not a supported format)
    }


def settings_for(source: Source, depth: int, width: int) -> dict:
    """Everything a model fine-tuned from these weights needs: the format's input settings and
    the architecture's config keys (a fresh dict, safe to modify)."""
    return {**source.input_settings, **architecture_settings(depth, width)}
