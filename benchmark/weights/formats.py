"""Checkpoint formats as data, and the pure renaming from a format's keys to detectron2's names.

RULE: a format is data, never code of its own. A `Source` says where the ResNet's state dict sits
in the file (`paths`: nested keys from the top level, alternatives in order), the prefix its keys
carry (after an optional DataParallel `module.`), how its names become torchvision's (`renames`,
regular expressions, for the few layouts that name their modules otherwise), which other networks
the file holds (`dropped`: key prefixes, each with the kind the summary counts), how it is told
apart from the others (`markers`, `top_markers`) and the input settings a model fine-tuned from it
needs. One generic function (`Source.rename`) applies any of them, and every format names the
public file that writes or reads that layout (`source`, repo:path). A key that is neither the
ResNet's nor listed as dropped keeps its own name, so that the architecture's `validate` names it
as unexpected: a layout is never made to fit by silently dropping what the format does not know.

The renaming is per key, so basic-block ResNet-18/34 (width 64) convert in every layout as bottleneck
ones do. Covered by tests (tests/weights/test_basic_blocks.py), as the layouts whose projects publish or
train ResNet-18s: torchvision (plain and DataParallel; also timm's published resnet18 weights), moco
(main_moco.py takes any torchvision --arch), backbone (mmselfsup / OpenSelfSup / mmpretrain, which
publishes resnet18_8xb32_in1k), solo_learn (its ImageNet-100 zoo; its CIFAR ResNet-18s have a 3x3 stem
detectron2 cannot build and are refused by shape), timm (training checkpoints) and exemplar (Zhao et
al.'s layout, Table 4's user-given rows). MoCo v3, SwAV, DINO, Barlow Twins, VICReg, BYOL, SimCLR v1/v2,
PyContrast, DenseCL and VISSL publish bottleneck ResNet-50s (or wider) only.

`convert_state_dict(sd, source)` renames, `dropped_keys` says what was left out and why,
`format_table` lists the formats. Finding the format and the state dict in a checkpoint is
benchmark.weights.detect's; checking the renamed weights, benchmark.weights.architecture's
(shapes) and benchmark.weights.tensors' (values). Nothing here reads or writes a file: the
callers (benchmark.weights.convert) name the file in the errors raised here.
"""
import dataclasses
import functools
import re
from typing import Optional

import numpy as np
import torch

from benchmark.weights.errors import ConversionError

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


# --------------------------------------------------------------------------- torchvision -> detectron2

_TV_BLOCK = re.compile(r"layer([1-4])\.(\d+)\.(conv[1-3]|bn[1-3]|downsample\.[01])\.(.+)")


def torchvision_to_detectron2(key: str) -> Optional[str]:
    """Rename one torchvision ResNet key to detectron2's name; None for keys that are dropped.

    fc (the classifier) and num_batches_tracked are dropped. A key that is neither a ResNet
    tensor nor droppable is returned unchanged, so that the architecture's `validate` names it as unexpected
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

def strip_module(key: str) -> str:
    """`key` without DataParallel's `module.` prefix."""
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
        k = strip_module(key)
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
        k = strip_module(key)
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
    Source("moco", "MoCo v1/v2: state_dict, (module.)encoder_q.* query encoder; encoder_k (momentum), queue, fc/MLP head dropped",
         "facebookresearch/moco:main_moco.py, main_lincls.py", paths=(_SD, ()), prefix="encoder_q.",
         dropped=(("encoder_k.", "momentum_encoder"), ("queue", "queue"))),
    Source("mocov3", "MoCo v3 ResNet: state_dict, module.base_encoder.*; momentum_encoder, predictor and the fc MLP dropped",
         "facebookresearch/moco-v3:main_moco.py, moco/builder.py", paths=(_SD, ()), prefix="base_encoder.",
         dropped=(("momentum_encoder.", "momentum_encoder"), ("predictor.", "head"))),
    Source("swav", "SwAV / DeepCluster-v2 (the released file: module.-prefixed torchvision keys; or main_swav's state_dict); "
         "projection_head and prototypes dropped",
         "facebookresearch/swav:hubconf.py, src/resnet50.py", paths=((), _SD), markers=("prototypes",),
         dropped=(("projection_head.", "head"), ("prototypes", "head"))),
    Source("dino", "DINO full checkpoint: student/teacher (module.backbone.*, module.head.*), optimizer, args, dino_loss; "
         "the teacher's backbone is taken", "facebookresearch/dino:main_dino.py, utils.py (load_pretrained_weights)",
         paths=(("teacher",),), prefix="backbone.", dropped=(("head.", "head"),), top_markers=(("student", None),),
         note="checkpoint['teacher'], the EMA network DINO evaluates; --format dino_student takes the student"),
    Source("dino_student", "DINO full checkpoint, the student's backbone instead of the teacher's",
         "facebookresearch/dino:main_dino.py", paths=(("student",),), prefix="backbone.", dropped=(("head.", "head"),),
         detect=False, note="checkpoint['student'], chosen with --format dino_student (default: the teacher)"),
    Source("dino_backbone", "DINO backbone-only file (dino_resnet50_pretrain.pth): torchvision keys without fc",
         "facebookresearch/dino:hubconf.py (dino_resnet50, fc = Identity)", **_TV_SAME),
    Source("barlowtwins", "Barlow Twins resnet50.pth: the backbone's state dict, torchvision keys without fc",
         "facebookresearch/barlowtwins:main.py (torch.save(model.module.backbone.state_dict()), fc = Identity)", **_TV_SAME),
    Source("vicreg", "VICReg resnet50.pth: the backbone's state dict, torchvision keys (its ResNet has no fc)",
         "facebookresearch/vicreg:resnet.py, README.md", **_TV_SAME),
    Source("byol", "BYOL converted from the JAX release by byol-convert: torchvision keys with fc, no num_batches_tracked",
         "chigur/byol-convert:convert.py (as naver/cog:prepare_models/prepare_byol.sh runs it)", **_TV_SAME),
    Source("simclr_v1", "SimCLR v1 converted by simclr-converter: state_dict of torchvision keys with fc; input in [0, 1], "
         "no mean/std", "tonylins/simclr-converter:convert.py, eval.py", paths=(_SD,), input_settings=dict(SIMCLR_INPUT),
         **_TV_SAME),
    Source("simclr_v2", "SimCLR v2 converted by SimCLRv2-Pytorch: {'resnet': net.* modules, 'head': projection}; selective "
         "kernels (sk1) unsupported; input in [0, 1], no mean/std",
         "Separius/SimCLRv2-Pytorch:convert.py (and its resnet.py)", paths=(("resnet",),), renames=_SIMCLR_V2_RENAMES,
         input_settings=dict(SIMCLR_INPUT)),
    Source("pycontrast", "PyContrast (InsDis, PIRL, MoCo, InfoMin): model = module.encoder.* + module.head(_jig).*; "
         "model_ema, contrast (memory) beside it",
         "HobbitLong/PyContrast:pycontrast/learning/contrast_trainer.py, pycontrast/detection/convert_pretrained.py",
         paths=(("model",),), prefix="encoder.", dropped=(("head", "head"),), top_markers=(("contrast", None),),
         note="checkpoint['model'], the online encoder; --format pycontrast_ema takes the momentum encoder"),
    Source("pycontrast_ema", "PyContrast, the momentum (model_ema) encoder instead of the online one",
         "HobbitLong/PyContrast:pycontrast/detection/convert_pretrained.py (--ema)", paths=(("model_ema",),),
         prefix="encoder.", dropped=(("head", "head"),), detect=False,
         note="checkpoint['model_ema'], chosen with --format pycontrast_ema (default: the online encoder)"),
    Source("densecl", "DenseCL released (extracted) weights: {'state_dict': torchvision keys, 'author': 'DenseCL'}",
         "WXinlong/DenseCL:tools/extract_backbone_weights.py", paths=(_SD,), top_markers=(("author", "DenseCL"),)),
    Source("backbone", "mmselfsup / OpenSelfSup / DenseCL training checkpoint: state_dict, backbone.*; neck, head, "
         "encoder_q/encoder_k (DenseCL's copies), queues dropped", "WXinlong/DenseCL:tools/extract_backbone_weights.py",
         paths=_ANY_CONTAINER, prefix="backbone.",
         dropped=(("neck.", "head"), ("head.", "head"), ("encoder_q.0.", "backbone_copy"), ("encoder_q.", "head"),
                  ("encoder_k.", "momentum_encoder"),
                  ("target_net.", "momentum_encoder"), ("queue", "queue"))),
    Source("solo_learn", "solo-learn (PyTorch Lightning) checkpoint: state_dict, backbone.*; momentum_*, projector, predictor, "
         "classifier and every other module dropped", "vturrisi/solo-learn:solo/methods/base.py, solo/methods/byol.py",
         # () too: its state dict re-saved bare is read with --format solo_learn (detection needs Lightning's key)
         paths=(_SD, ()), prefix="backbone.", top_markers=(("pytorch-lightning_version", None),),
         dropped=(("momentum_", "momentum_encoder"), ("queue", "queue"), ("", "head"))),
    Source("vissl", "VISSL checkpoint: classy_state_dict -> base_model -> model -> trunk, _feature_blocks.* (heads beside it)",
         "facebookresearch/vissl:extra_scripts/convert_vissl_to_torchvision.py",
         paths=(("classy_state_dict", "base_model", "model", "trunk"), ("model_state_dict",)), prefix="_feature_blocks."),
    Source("timm", "timm training checkpoint: state_dict (torchvision-named ResNet with fc), version 2, args, optimizer, "
         "state_dict_ema", "huggingface/pytorch-image-models:timm/utils/checkpoint_saver.py", paths=(_SD,),
         top_markers=(("version", None),),
         note="checkpoint['state_dict'], the trained weights; --format timm_ema takes state_dict_ema"),
    Source("timm_ema", "timm training checkpoint, its EMA weights (state_dict_ema) instead of state_dict",
         "huggingface/pytorch-image-models:timm/utils/checkpoint_saver.py", paths=(("state_dict_ema",),), detect=False,
         note="checkpoint['state_dict_ema'], chosen with --format timm_ema (default: state_dict)"),
    Source("exemplar", "Exemplar (Zhao et al.): torchvision keys, possibly module.-prefixed, plus fc",
         "nanxuanzhao/Good_transfer (loading code as REFERENCES.md describes it)", paths=_ANY_CONTAINER, **_TV_SAME),
    Source("supervised", "supervised torchvision ResNet (the released supervised_*.pth files of Zhao et al.)",
         "nanxuanzhao/Good_transfer (loading code as REFERENCES.md describes it)", paths=_ANY_CONTAINER, **_TV_SAME),
    Source("torchvision", "torchvision ResNet, plain or DataParallel (module.), bare or under state_dict / model",
         "pytorch/vision:torchvision/models/resnet.py", paths=_ANY_CONTAINER),
    Source("encoder", "torchvision ResNet under encoder. (SimCLR-style re-implementations); projector dropped",
         "(generic layout, no single project)", paths=_ANY_CONTAINER, prefix="encoder.",
         dropped=(("projector.", "head"), ("head.", "head"))),
    Source("model", "torchvision ResNet under model.", "(generic layout, no single project)", paths=_ANY_CONTAINER,
         prefix="model."),
)}


def format_table() -> str:
    """Every format as an aligned text table (tools/convert.py --list-formats)."""
    from tabulate import tabulate

    rows = [(s.name, s.detection, s.description, s.source) for s in SOURCES.values()]
    text = tabulate(rows, headers=("name", "detected", "description", "source"), tablefmt="plain", disable_numparse=True)
    odd = sorted(n for n, s in SOURCES.items() if s.input_settings != TORCHVISION_INPUT)
    return (f"{len(rows)} checkpoint formats (bottleneck ResNet-50/101/152 of any width)\n\n{text}\n\n"
            "basic-block ResNet-18/34 (width 64) convert in every layout; tested in torchvision (plain, module.), moco, "
            "backbone, solo_learn, timm and exemplar, whose projects publish or train them\n"
            f"input settings: RGB, torchvision mean/std, stride in the 3x3 (STRIDE_IN_1X1 False); "
            f"{', '.join(odd)}: RGB in [0, 1] without mean/std\n")


# --------------------------------------------------------------------------- state dict -> detectron2 names

def convert_state_dict(sd, source: Source) -> dict:
    """Rename `sd` with `source` into {detectron2 name: np.ndarray}.

    Pure: `sd` is not modified; arrays share memory with its tensors where possible.
    """
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


def dropped_keys(sd, source: Source) -> dict:
    """{kind: sorted keys} of the keys of `sd` that `source` drops (`Source.drop_kind` says the kind)."""
    dropped = {}
    for key in sd:
        if source.rename(key) is None:
            dropped.setdefault(source.drop_kind(key), []).append(key)
    return {kind: sorted(keys) for kind, keys in sorted(dropped.items())}
