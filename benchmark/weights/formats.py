"""Checkpoint formats as data, and the pure functions between a checkpoint and detectron2's names.

RULE: a format is data, never code of its own. A `Source` says where the ResNet's state dict sits
in the file (`paths`: nested keys from the top level, alternatives in order), the prefix its keys
carry (after an optional DataParallel `module.`), how its names become torchvision's (`renames`,
regular expressions, for the few layouts that name their modules otherwise), which other networks
the file holds (`dropped`: key prefixes, each with the kind the summary counts), how it is told
apart from the others (`markers`, `top_markers`) and the input settings a model fine-tuned from it
needs. One generic function (`Source.rename`) applies any of them, and every format names the
public file that writes or reads that layout (`source`, repo:path). A key that is neither the
ResNet's nor listed as dropped keeps its own name, so that `validate` names it as unexpected:
a layout is never made to fit by silently dropping what the format does not know.

`locate(checkpoint, fmt)` finds the format (detected unless named) and its state dict; an unknown
layout is one line naming the key prefixes found and the nearest known format.
`convert_state_dict(sd, source)` renames; `validate` checks that the result is exactly a
detectron2 bottleneck ResNet and returns its architecture, which `architecture_settings` turns
into the config keys that build that same network. Nothing here reads or writes a file: the
callers (benchmark.weights.convert) name the file in the errors raised here.
"""
import collections
import dataclasses
import difflib
import functools
import re
from typing import Optional

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
# SimCLR's TensorFlow ResNets see RGB in [0, 1] without mean/std ("the original model do not have
# normalization", tonylins/simclr-converter:eval.py; ToTensor() only, Separius/SimCLRv2-Pytorch:verify.py):
# detectron2's (x - 0) / 255. Stride in the 3x3 (their bottlenecks stride the 3x3 conv).
SIMCLR_INPUT = {
    "INPUT.FORMAT": "RGB",
    "MODEL.PIXEL_MEAN": [0.0, 0.0, 0.0],
    "MODEL.PIXEL_STD": [255.0, 255.0, 255.0],
    "MODEL.RESNETS.STRIDE_IN_1X1": False,
}

# bottleneck blocks in res2..res5 for each supported depth
BLOCKS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}
TORCHVISION_WIDTH = 64  # stem channels of torchvision's (and detectron2's default) ResNet-50/101/152


# --------------------------------------------------------------------------- torchvision -> detectron2

_TV_BLOCK = re.compile(r"layer([1-4])\.(\d+)\.(conv[1-3]|bn[1-3]|downsample\.[01])\.(.+)")


def torchvision_to_detectron2(key: str) -> Optional[str]:
    """Rename one torchvision ResNet key to detectron2's name; None for keys that are dropped.

    fc (the classifier) and num_batches_tracked are dropped. A key that is neither a ResNet
    tensor nor droppable is returned unchanged, so that `validate` names it as unexpected
    instead of it vanishing silently.
    """
    if key.endswith("num_batches_tracked") or key.startswith("fc.") or key == "fc":
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


# --------------------------------------------------------------------------- the formats

def _strip_module(key: str) -> str:
    return key[len("module."):] if key.startswith("module.") else key


@dataclasses.dataclass(frozen=True)
class Source:
    """A checkpoint format (see the module docstring): data only; `rename` is the same for all."""

    name: str
    description: str  # the layout, in a sentence
    source: str  # repo:path of the public code that writes (or reads) it
    paths: tuple = ((),)  # where the state dict is: each a tuple of nested keys; () the top level
    prefix: str = ""  # the ResNet's keys start with (module.)prefix
    renames: tuple = ()  # ((regex, replacement), ...): the key after the prefix -> its torchvision name
    dropped: tuple = ()  # ((key prefix, kind), ...) of the other networks; prefix "" = every key outside `prefix`
    markers: tuple = ()  # key prefixes the state dict must each hold at least one key under (detection)
    top_markers: tuple = ()  # ((top-level key, required str value or None), ...) (detection)
    detect: bool = True  # False: same keys as `same_keys_as`; recorded only when named (--format, the zoo)
    same_keys_as: Optional[str] = None
    note: Optional[str] = None  # said in the summary, e.g. which of two networks the file holds was taken
    input_settings: dict = dataclasses.field(default_factory=lambda: dict(TORCHVISION_INPUT))

    @functools.cached_property
    def _patterns(self):
        return tuple((re.compile(p), r) for p, r in self.renames)

    def rename(self, key: str) -> Optional[str]:
        """detectron2's name for `key`; None if dropped; `key` itself if it is not this format's."""
        if not isinstance(key, str):
            return key  # tensors.check_keys names it
        if key.endswith("num_batches_tracked"):
            return None
        k = _strip_module(key)
        if any(p and k.startswith(p) for p, _ in self.dropped):
            return None
        if k.startswith(self.prefix):
            inner = k[len(self.prefix):]
            for pattern, replacement in self._patterns:
                m = pattern.fullmatch(inner)
                if m:
                    inner = m.expand(replacement)
                    break
            return torchvision_to_detectron2(inner)
        return None if any(not p for p, _ in self.dropped) else key

    def drop_kind(self, key: str) -> str:
        """Why this format drops `key` (the summary's counts): the dropped network's kind,
        num_batches_tracked, or head (a classifier or projector inside the ResNet's own keys)."""
        k = _strip_module(key)
        for prefix, kind in self.dropped:
            if prefix and k.startswith(prefix):
                return kind
        if key.endswith("num_batches_tracked"):
            return "num_batches_tracked"
        if not k.startswith(self.prefix):
            return next((kind for prefix, kind in self.dropped if not prefix), "head")
        return "head"

    @property
    def detection(self) -> str:
        return "auto" if self.detect else f"--format (keys of {self.same_keys_as})" if self.same_keys_as else "--format"


def _src(name, description, source, **kw):
    return Source(name, description, source, **kw)


_SD = ("state_dict",)
_ANY_CONTAINER = (_SD, ("model",), ())  # the released Zhao et al. files: tried in this order (REFERENCES.md)
_TV_SAME = dict(detect=False, same_keys_as="torchvision")
# SimCLRv2-Pytorch's module tree (its resnet.py): net.0 stem, net.1-4 stages of blocks, each a net
# of conv/BatchNormRelu pairs and a projection shortcut -> torchvision's names
_SIMCLR_V2_RENAMES = (
    (r"net\.0\.0\.(weight)", r"conv1.\1"),
    (r"net\.0\.1\.0\.(.+)", r"bn1.\1"),
    (r"net\.([1-4])\.blocks\.(\d+)\.net\.0\.(.+)", r"layer\1.\2.conv1.\3"),
    (r"net\.([1-4])\.blocks\.(\d+)\.net\.1\.0\.(.+)", r"layer\1.\2.bn1.\3"),
    (r"net\.([1-4])\.blocks\.(\d+)\.net\.2\.(.+)", r"layer\1.\2.conv2.\3"),
    (r"net\.([1-4])\.blocks\.(\d+)\.net\.3\.0\.(.+)", r"layer\1.\2.bn2.\3"),
    (r"net\.([1-4])\.blocks\.(\d+)\.net\.4\.(.+)", r"layer\1.\2.conv3.\3"),
    (r"net\.([1-4])\.blocks\.(\d+)\.net\.5\.0\.(.+)", r"layer\1.\2.bn3.\3"),
    (r"net\.([1-4])\.blocks\.(\d+)\.projection\.shortcut\.(.+)", r"layer\1.\2.downsample.0.\3"),
    (r"net\.([1-4])\.blocks\.(\d+)\.projection\.bn\.0\.(.+)", r"layer\1.\2.downsample.1.\3"),
)

SOURCES = {s.name: s for s in (
    _src("moco", "MoCo v1/v2: state_dict, (module.)encoder_q.* query encoder; encoder_k (momentum), queue, fc/MLP head dropped",
         "facebookresearch/moco:main_moco.py, main_lincls.py", paths=(_SD, ()), prefix="encoder_q.",
         dropped=(("encoder_k.", "momentum_encoder"), ("queue", "queue"))),
    _src("mocov3", "MoCo v3 ResNet: state_dict, module.base_encoder.*; momentum_encoder, predictor and the fc MLP dropped",
         "facebookresearch/moco-v3:main_moco.py, moco/builder.py", paths=(_SD, ()), prefix="base_encoder.",
         dropped=(("momentum_encoder.", "momentum_encoder"), ("predictor.", "head"))),
    _src("swav", "SwAV / DeepCluster-v2 (the released file: module.-prefixed torchvision keys; or main_swav's state_dict); "
         "projection_head and prototypes dropped",
         "facebookresearch/swav:hubconf.py, src/resnet50.py", paths=((), _SD), markers=("prototypes",),
         dropped=(("projection_head.", "head"), ("prototypes", "head"))),
    _src("dino", "DINO full checkpoint: student/teacher (module.backbone.*, module.head.*), optimizer, args, dino_loss; "
         "the teacher's backbone is taken", "facebookresearch/dino:main_dino.py, utils.py (load_pretrained_weights)",
         paths=(("teacher",),), prefix="backbone.", dropped=(("head.", "head"),), top_markers=(("student", None),),
         note="checkpoint['teacher'], the EMA network DINO evaluates; --format dino_student takes the student"),
    _src("dino_student", "DINO full checkpoint, the student's backbone instead of the teacher's",
         "facebookresearch/dino:main_dino.py", paths=(("student",),), prefix="backbone.", dropped=(("head.", "head"),),
         detect=False, note="checkpoint['student'], chosen with --format dino_student (default: the teacher)"),
    _src("dino_backbone", "DINO backbone-only file (dino_resnet50_pretrain.pth): torchvision keys without fc",
         "facebookresearch/dino:hubconf.py (dino_resnet50, fc = Identity)", **_TV_SAME),
    _src("barlowtwins", "Barlow Twins resnet50.pth: the backbone's state dict, torchvision keys without fc",
         "facebookresearch/barlowtwins:main.py (torch.save(model.module.backbone.state_dict()), fc = Identity)", **_TV_SAME),
    _src("vicreg", "VICReg resnet50.pth: the backbone's state dict, torchvision keys (its ResNet has no fc)",
         "facebookresearch/vicreg:resnet.py, README.md", **_TV_SAME),
    _src("byol", "BYOL converted from the JAX release by byol-convert: torchvision keys with fc, no num_batches_tracked",
         "chigur/byol-convert:convert.py (as naver/cog:prepare_models/prepare_byol.sh runs it)", **_TV_SAME),
    _src("simclr_v1", "SimCLR v1 converted by simclr-converter: state_dict of torchvision keys with fc; input in [0, 1], "
         "no mean/std", "tonylins/simclr-converter:convert.py, eval.py", paths=(_SD,), input_settings=dict(SIMCLR_INPUT),
         **_TV_SAME),
    _src("simclr_v2", "SimCLR v2 converted by SimCLRv2-Pytorch: {'resnet': net.* modules, 'head': projection}; selective "
         "kernels (sk1) unsupported; input in [0, 1], no mean/std",
         "Separius/SimCLRv2-Pytorch:convert.py (and its resnet.py)", paths=(("resnet",),), renames=_SIMCLR_V2_RENAMES,
         input_settings=dict(SIMCLR_INPUT)),
    _src("pycontrast", "PyContrast (InsDis, PIRL, MoCo, InfoMin): model = module.encoder.* + module.head(_jig).*; "
         "model_ema, contrast (memory) beside it",
         "HobbitLong/PyContrast:pycontrast/learning/contrast_trainer.py, pycontrast/detection/convert_pretrained.py",
         paths=(("model",),), prefix="encoder.", dropped=(("head", "head"),), top_markers=(("contrast", None),),
         note="checkpoint['model'], the online encoder; --format pycontrast_ema takes the momentum encoder"),
    _src("pycontrast_ema", "PyContrast, the momentum (model_ema) encoder instead of the online one",
         "HobbitLong/PyContrast:pycontrast/detection/convert_pretrained.py (--ema)", paths=(("model_ema",),),
         prefix="encoder.", dropped=(("head", "head"),), detect=False,
         note="checkpoint['model_ema'], chosen with --format pycontrast_ema (default: the online encoder)"),
    _src("densecl", "DenseCL released (extracted) weights: {'state_dict': torchvision keys, 'author': 'DenseCL'}",
         "WXinlong/DenseCL:tools/extract_backbone_weights.py", paths=(_SD,), top_markers=(("author", "DenseCL"),)),
    _src("backbone", "mmselfsup / OpenSelfSup / DenseCL training checkpoint: state_dict, backbone.*; neck, head, "
         "encoder_q/encoder_k (DenseCL's copies), queues dropped", "WXinlong/DenseCL:tools/extract_backbone_weights.py",
         paths=_ANY_CONTAINER, prefix="backbone.",
         dropped=(("neck.", "head"), ("head.", "head"), ("encoder_q.0.", "backbone_copy"), ("encoder_q.", "head"),
                  ("encoder_k.", "momentum_encoder"),
                  ("target_net.", "momentum_encoder"), ("queue", "queue"))),
    _src("solo_learn", "solo-learn (PyTorch Lightning) checkpoint: state_dict, backbone.*; momentum_*, projector, predictor, "
         "classifier and every other module dropped", "vturrisi/solo-learn:solo/methods/base.py, solo/methods/byol.py",
         paths=(_SD,), prefix="backbone.", top_markers=(("pytorch-lightning_version", None),),
         dropped=(("momentum_", "momentum_encoder"), ("queue", "queue"), ("", "head"))),
    _src("vissl", "VISSL checkpoint: classy_state_dict -> base_model -> model -> trunk, _feature_blocks.* (heads beside it)",
         "facebookresearch/vissl:extra_scripts/convert_vissl_to_torchvision.py",
         paths=(("classy_state_dict", "base_model", "model", "trunk"), ("model_state_dict",)), prefix="_feature_blocks."),
    _src("timm", "timm training checkpoint: state_dict (torchvision-named ResNet with fc), version 2, args, optimizer, "
         "state_dict_ema", "huggingface/pytorch-image-models:timm/utils/checkpoint_saver.py", paths=(_SD,),
         top_markers=(("version", None),),
         note="checkpoint['state_dict'], the trained weights; --format timm_ema takes state_dict_ema"),
    _src("timm_ema", "timm training checkpoint, its EMA weights (state_dict_ema) instead of state_dict",
         "huggingface/pytorch-image-models:timm/utils/checkpoint_saver.py", paths=(("state_dict_ema",),), detect=False,
         note="checkpoint['state_dict_ema'], chosen with --format timm_ema (default: state_dict)"),
    _src("exemplar", "Exemplar (Zhao et al.): torchvision keys, possibly module.-prefixed, plus fc",
         "nanxuanzhao/Good_transfer (loading code as REFERENCES.md describes it)", paths=_ANY_CONTAINER, **_TV_SAME),
    _src("supervised", "supervised torchvision ResNet (the released supervised_*.pth files of Zhao et al.)",
         "nanxuanzhao/Good_transfer (loading code as REFERENCES.md describes it)", paths=_ANY_CONTAINER, **_TV_SAME),
    _src("torchvision", "torchvision ResNet, plain or DataParallel (module.), bare or under state_dict / model",
         "pytorch/vision:torchvision/models/resnet.py", paths=_ANY_CONTAINER),
    _src("encoder", "torchvision ResNet under encoder. (SimCLR-style re-implementations); projector dropped",
         "(generic layout, no single project)", paths=_ANY_CONTAINER, prefix="encoder.",
         dropped=(("projector.", "head"), ("head.", "head"))),
    _src("model", "torchvision ResNet under model.", "(generic layout, no single project)", paths=_ANY_CONTAINER,
         prefix="model."),
)}
# the order detection tries: the most specific layouts (markers, nesting, prefixes) before a plain ResNet
_DETECT_ORDER = ("dino", "vissl", "simclr_v2", "pycontrast", "solo_learn", "densecl", "timm", "mocov3", "moco", "swav",
                 "backbone", "encoder", "model", "torchvision")
assert set(_DETECT_ORDER) == {n for n, s in SOURCES.items() if s.detect}


def _as_source(source) -> Source:
    return SOURCES[source] if isinstance(source, str) else source


def format_table() -> str:
    """Every format as an aligned text table (tools/convert.py --list-formats)."""
    from tabulate import tabulate

    rows = [(s.name, s.detection, s.description, s.source) for s in SOURCES.values()]
    text = tabulate(rows, headers=("name", "detected", "description", "source"), tablefmt="plain", disable_numparse=True)
    odd = sorted(n for n, s in SOURCES.items() if s.input_settings != TORCHVISION_INPUT)
    return (f"{len(rows)} checkpoint formats (bottleneck ResNet-50/101/152 of any width)\n\n{text}\n\n"
            f"input settings: RGB, torchvision mean/std, stride in the 3x3 (STRIDE_IN_1X1 False); "
            f"{', '.join(odd)}: RGB in [0, 1] without mean/std\n")


# --------------------------------------------------------------------------- checkpoint -> state dict + format

@dataclasses.dataclass(frozen=True)
class Located:
    """Where a checkpoint's ResNet is: its format, the state dict holding it, the entry path."""

    format: str
    state_dict: dict
    entry: str  # the nested keys from the top level, joined by '/'; '' = the top level
    note: Optional[str] = None  # what the summary says about it (which network, same keys as...)


def _follow(checkpoint, path):
    node = checkpoint
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else None


def _has_resnet(source: Source, sd) -> bool:
    names = {source.rename(k) for k in sd if isinstance(k, str)}
    return {"stem.conv1.weight", "res2.0.conv1.weight"} <= names


def _has_markers(source: Source, sd) -> bool:
    keys = [_strip_module(k) for k in sd if isinstance(k, str)]
    return all(any(k.startswith(m) for k in keys) for m in source.markers)


def _has_top_markers(source: Source, checkpoint) -> bool:
    for key, value in source.top_markers:
        if key not in checkpoint:
            return False
        if value is not None and not (isinstance(checkpoint[key], str) and checkpoint[key] == value):
            return False
    return True


def _match(source: Source, checkpoint):
    """(path, state dict) where `source` finds its ResNet in `checkpoint`, or None."""
    if not _has_top_markers(source, checkpoint):
        return None
    for path in source.paths:
        sd = _follow(checkpoint, path)
        if sd and _has_markers(source, sd) and _has_resnet(source, sd):
            return path, sd
    return None


def _entry_name(path) -> str:
    return "/".join(map(str, path))


def _shown(path) -> str:
    return "checkpoint" + "".join(f"[{k!r}]" for k in path) if path else "the top level"


def _same_keys_note(name: str) -> Optional[str]:
    alike = [n for n, s in SOURCES.items() if s.same_keys_as == name]
    other_input = [n for n in alike if SOURCES[n].input_settings != SOURCES[name].input_settings]
    warn = f"; {', '.join(other_input)} also change the input settings" if other_input else ""
    return f"the keys of {', '.join(alike)} too; --format NAME records which{warn}" if alike else None


def locate(checkpoint, fmt="auto", hint=None) -> Located:
    """The format and the state dict of `checkpoint`'s ResNet.

    `fmt`: a format name, or "auto" to detect it (the order of `_DETECT_ORDER`). `hint`: the
    format the zoo knows the file to be; used when its layout matches (Exemplar, Barlow Twins ...
    have torchvision's keys, which detection alone cannot tell apart), else detection decides.
    """
    if not isinstance(checkpoint, dict):
        raise ConversionError(None, f"not a checkpoint: top level is a {type(checkpoint).__name__}, not a dict")
    if fmt != "auto":
        return _explicit(checkpoint, _as_source(fmt))
    if hint is not None and hint in SOURCES:
        found = _match(SOURCES[hint], checkpoint)
        if found:
            return Located(hint, found[1], _entry_name(found[0]), SOURCES[hint].note)
    for name in _DETECT_ORDER:
        found = _match(SOURCES[name], checkpoint)
        if found:
            return Located(name, found[1], _entry_name(found[0]), SOURCES[name].note or _same_keys_note(name))
    raise _unknown_layout(checkpoint)


def _explicit(checkpoint, source: Source) -> Located:
    """`source`'s state dict in `checkpoint`, however little of it is a ResNet (validate says what)."""
    located = [(p, _follow(checkpoint, p)) for p in source.paths]
    located = [(p, sd) for p, sd in located if sd]
    if not located:
        where = " or ".join(_shown(p) for p in source.paths)
        top = ", ".join(sorted(map(str, checkpoint))[:6])
        raise ConversionError(None, f"no state dict at {where} (top-level entries: {top})")
    path, sd = next(((p, sd) for p, sd in located if _has_resnet(source, sd)), located[0])
    if not any(source.rename(k) not in (None, k) for k in sd if isinstance(k, str)):
        raise ConversionError(None, f"no ResNet weights where format {source.name} keeps them (keys under "
                                    f"'{source.prefix}' in {_shown(path)}): the converted state dict is empty")
    return Located(source.name, sd, _entry_name(path), source.note)


def extract_state_dict(checkpoint) -> dict:
    """The state dict `locate` finds (detection); kept for callers that want only the tensors."""
    return locate(checkpoint).state_dict


def detect_format(checkpoint) -> str:
    """The name in SOURCES of the format of `checkpoint` (a checkpoint or a bare state dict)."""
    return locate(checkpoint).format


# --------------------------------------------------------------------------- an unknown layout, in one line

_D2_NAME = re.compile(r"(stem|res[2-5]\.\d+)\.")


def _largest_tensor_dict(checkpoint, depth=4):
    """(path, dict) of the nested dict holding the most tensors: where the weights most likely are."""
    best, stack = ((), checkpoint), [((), checkpoint)]
    count = lambda d: sum(isinstance(v, (torch.Tensor, np.ndarray)) for v in d.values())  # noqa: E731
    while stack:
        path, node = stack.pop()
        if count(node) > count(best[1]):
            best = (path, node)
        if len(path) < depth:
            stack.extend((path + (k,), v) for k, v in node.items() if isinstance(v, dict))
    return best


def _prefix_of(key: str) -> str:
    head, k = ("module.", key[len("module."):]) if key.startswith("module.") else ("", key)
    return head + (k.split(".", 1)[0] + "." if "." in k else k)


def _unknown_layout(checkpoint) -> ConversionError:
    path, sd = _largest_tensor_dict(checkpoint)
    keys = [k for k in sd if isinstance(k, str)]
    if not keys or not any(isinstance(v, (torch.Tensor, np.ndarray)) for v in sd.values()):
        return ConversionError(None, "empty state dict: no weights in the checkpoint")
    if "stem.conv1.weight" in {_strip_module(k) for k in keys}:
        return ConversionError(None, "already in detectron2's naming (stem.conv1.weight): use it as it is")
    prefixes = collections.Counter(_prefix_of(k) for k in keys)
    found = ", ".join(f"{p} ({n})" for p, n in prefixes.most_common(4)) + (
        f", ... ({len(prefixes) - 4} more)" if len(prefixes) > 4 else "")
    # a torchvision ResNet under a prefix no format knows
    under = [p for p in prefixes if p.endswith(".") and
             {f"{p}conv1.weight", f"{p}layer1.0.conv1.weight"} <= set(keys)]
    scores = {n: sum(1 for k in keys if (r := s.rename(k)) and r != k and _D2_NAME.match(r)) for n, s in SOURCES.items()}
    best = max(scores, key=lambda n: scores[n])
    if scores[best]:
        nearest = f"{best} (its renaming reads {scores[best]} of the {len(keys)} keys)"
    else:
        top = _strip_module(under[0] if under else prefixes.most_common(1)[0][0])
        known = {s.prefix: n for n, s in reversed(list(SOURCES.items())) if s.prefix}
        close = difflib.get_close_matches(top, list(known), n=1, cutoff=0.0)
        nearest = f"{known[close[0]]} (prefix '{close[0]}', closest to '{top}')" if close else "none"
    what = f"a torchvision ResNet under '{under[0]}', which no format reads; " if under else ""
    return ConversionError(None, f"not a ResNet checkpoint of a known format: {what}key prefixes in {_shown(path)}: "
                                 f"{found}; nearest known format: {nearest} (tools/convert.py --list-formats)")


# --------------------------------------------------------------------------- state dict -> detectron2 names

def drop_kind(key: str) -> str:
    """Why a key is dropped, for the summary: momentum_encoder, queue, num_batches_tracked, head
    (by its name alone; `Source.drop_kind` knows each format's networks)."""
    if "encoder_k." in key or "momentum_" in key:
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
            dropped.setdefault(source.drop_kind(key), []).append(key)
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
