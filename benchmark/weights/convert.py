"""Checkpoint formats -> detectron2 weights: load safely, detect the format, rename, validate, write.

Checkpoint formats are data (`SOURCES`): each is a pure rename `str -> str | None` (None = drop)
plus the input settings a model fine-tuned from it needs. Converting is the pure
`convert_state_dict(sd, source)`; everything touching files (`load_checkpoint`, `convert_file`,
`load_converted`, `prepare_weights`) is a thin layer around it that fails with one clear
`ConversionError` naming the file and the problem, and never leaves a partial output.

The output is detectron2's own pickle (DESIGN.md, "Converted weights"):
    {"model": {name: np.ndarray}, "__author__": format, "matching_heuristics": True,
     "__provenance__": {"input", "sha256", "format", "converter", "depth", "input_settings"}}
with names of detectron2's ResNet (stem.conv1.weight, res2.0.conv1.norm.running_mean, ...).
"""
import dataclasses
import functools
import hashlib
import pickle
import re
import warnings
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from benchmark import __version__
from benchmark.weights import download
from benchmark.fileio import atomic_write, remove_stale_temporaries

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
_LIST_AT_MOST = 5


class ConversionError(ValueError):
    """A checkpoint that cannot be converted; str() is '<file>: <problem>' (one line)."""

    def __init__(self, path, problem):
        super().__init__(f"{path}: {problem}" if path is not None else problem)
        self.path, self.problem = path, problem


# --------------------------------------------------------------------------- the formats (data)

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


# --------------------------------------------------------------------------- pure functions

def extract_state_dict(checkpoint) -> dict:
    """The state dict inside a checkpoint: checkpoint["state_dict"], checkpoint["model"] or itself.

    The released files' layout is undocumented (REFERENCES.md); this is the order the authors'
    own loader tries, with MoCo's "state_dict" first because MoCo files also carry "arch" etc.
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
    as "torchvision" (same renaming, same input settings); name them explicitly to record them
    as such.
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
    source = SOURCES[source] if isinstance(source, str) else source
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
    source = SOURCES[source] if isinstance(source, str) else source
    dropped = {}
    for key in sd:
        if source.rename(key) is None:
            dropped.setdefault(drop_kind(key), []).append(key)
    return {kind: sorted(keys) for kind, keys in sorted(dropped.items())}


@functools.lru_cache(maxsize=None)
def expected_shapes(depth: int) -> dict:
    """{name: shape} of every tensor of detectron2's bottleneck ResNet of `depth` (res2..res5).

    Widths are torchvision's (= detectron2's defaults): 64-channel stem, bottleneck width 64*2^i,
    output 256*2^i, a projection shortcut in the first block of each stage.
    """
    if depth not in BLOCKS:
        raise ConversionError(None, f"unsupported ResNet depth {depth}; supported: {', '.join(map(str, BLOCKS))}")

    def conv(name, out_c, in_c, k):
        shapes[f"{name}.weight"] = (out_c, in_c, k, k)
        shapes.update({f"{name}.norm.{p}": (out_c,) for p in ("weight", "bias", "running_mean", "running_var")})

    shapes = {}
    conv("stem.conv1", 64, 3, 7)
    in_c = 64
    for i, n in enumerate(BLOCKS[depth]):
        width, out_c = 64 * 2**i, 256 * 2**i
        for b in range(n):
            name = f"res{i + 2}.{b}"
            if b == 0:
                conv(f"{name}.shortcut", out_c, in_c, 1)
            conv(f"{name}.conv1", width, in_c if b == 0 else out_c, 1)
            conv(f"{name}.conv2", width, width, 3)
            conv(f"{name}.conv3", out_c, width, 1)
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


def _listing(what, items):
    shown = ", ".join(items[:_LIST_AT_MOST]) + (f", ... ({len(items) - _LIST_AT_MOST} more)" if len(items) > _LIST_AT_MOST else "")
    return f"{what} {len(items)} ({shown})"


def validate(converted, depth) -> None:
    """Raise ConversionError unless `converted` is exactly detectron2's ResNet-`depth` backbone.

    Every tensor must be present with the right shape and nothing else may be there: a key
    that is not part of the backbone means the format was misread, not something to ignore.
    """
    expected = expected_shapes(depth)
    if not converted:
        raise ConversionError(None, f"no ResNet-{depth} weights: the converted state dict is empty")
    missing = sorted(set(expected) - set(converted))
    unexpected = sorted(set(converted) - set(expected))
    wrong = sorted(f"{k}: {tuple(converted[k].shape)}, expected {expected[k]}"
                   for k in set(expected) & set(converted) if tuple(converted[k].shape) != expected[k])
    problems = [_listing(what, items) for what, items in
                (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)) if items]
    if problems:
        raise ConversionError(None, f"not a detectron2 ResNet-{depth} backbone: " + "; ".join(problems))
    # A diverged or corrupted pretraining run saves NaN/Inf weights; fine-tuning from them burns
    # hours before the loss turns NaN, so they are refused here, where it costs one pass over memory.
    non_finite = sorted(k for k, v in converted.items() if v.dtype.kind == "f" and not np.isfinite(v).all())
    if non_finite:
        raise ConversionError(None, "weights are not finite: " + _listing("tensors with NaN or Inf values", non_finite))


# --------------------------------------------------------------------------- files

_BLOCKED_GLOBAL = re.compile(r"GLOBAL (\S+)")


def load_checkpoint(path) -> dict:
    """torch.load(path, weights_only=True) with one clear ConversionError per way it can fail.

    weights_only refuses any pickle that would import or call something other than tensors and
    plain containers, *before* calling it: a checkpoint crafted to run code is refused and the
    code never runs.
    """
    path = Path(path)
    if not path.is_file():
        raise ConversionError(path, "no such file" if not path.exists() else "not a regular file")
    if path.stat().st_size == 0:
        raise ConversionError(path, "empty file")
    try:
        with warnings.catch_warnings():
            # torch warns (two lines on stderr) about pickle protocols of non-torch pickles before
            # refusing them; the ConversionError below is the one line the user needs.
            warnings.simplefilter("ignore", UserWarning)
            try:
                # mmap: tensors stay in the page cache instead of being copied into memory
                checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError as e:
                if "mmap" not in str(e):
                    raise
                checkpoint = torch.load(path, map_location="cpu", weights_only=True)  # legacy (non-zip) format
    except pickle.UnpicklingError as e:
        blocked = _BLOCKED_GLOBAL.search(str(e))
        if blocked:
            raise ConversionError(path, f"refused: unpickling it would call {blocked.group(1)}, i.e. run code; "
                                        "it was not loaded and nothing in it ran") from None
        hint = "; converted .pkl weights are used as they are (--weights FILE.pkl)" if path.suffix == ".pkl" else ""
        raise ConversionError(path, f"not a PyTorch checkpoint (unreadable pickle, not loaded){hint}") from None
    except EOFError:
        raise ConversionError(path, "truncated: the file ends in the middle of the checkpoint") from None
    except RuntimeError as e:
        if "zip archive" in str(e) or "central directory" in str(e):
            raise ConversionError(path, "truncated or corrupt: its zip archive cannot be read") from None
        if "EOF" in str(e):  # legacy (pre-1.6, non-zip) format cut short
            raise ConversionError(path, "truncated: the file ends in the middle of the checkpoint") from None
        raise ConversionError(path, f"not a readable PyTorch checkpoint ({str(e).splitlines()[0]})") from None
    except Exception as e:  # noqa: BLE001  (torch raises KeyError, ValueError, ... on garbage)
        raise ConversionError(path, f"not a PyTorch checkpoint ({type(e).__name__})") from None
    if not isinstance(checkpoint, dict):
        raise ConversionError(path, f"not a checkpoint: top level is a {type(checkpoint).__name__}, not a dict")
    return checkpoint


@dataclasses.dataclass
class ConversionResult:
    output: Path
    format: str
    depth: int
    tensors: int
    dropped: dict  # {kind: [keys]}
    provenance: dict

    def summary(self) -> str:
        dropped = ", ".join(f"{len(keys)} {kind}" for kind, keys in self.dropped.items()) or "none"
        return (f"format:  {self.format}\ndepth:   ResNet-{self.depth}\ntensors: {self.tensors} written\n"
                f"dropped: {dropped}\noutput:  {self.output}")


def _zoo_format(name):
    """The zoo's word on a torchvision-keyed file: "exemplar" or "supervised" (same renaming)."""
    from benchmark.weights import zoo

    return zoo.get(name).source_format


def _resolve_input(spec):
    """(local path, label for provenance) of a path, an http(s) URL or zoo:NAME."""
    spec = str(spec)
    if spec.startswith("zoo:"):
        from benchmark.weights import zoo  # written separately; imported only when a zoo name is used

        try:
            return Path(zoo.fetch(spec[len("zoo:"):])), spec
        except download.DownloadError as e:
            raise ConversionError(spec, e.problem) from None
        except (KeyError, ValueError, OSError) as e:
            raise ConversionError(spec, str(e).strip("'\"")) from None
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", spec):
        name = download.url_filename(spec)
        folder = f"downloads/{hashlib.sha256(spec.encode()).hexdigest()[:16]}"
        try:
            dest = download.safe_cache_path(f"{folder}/{name}")
        except ValueError as e:
            raise ConversionError(spec, str(e)) from None
        if not dest.is_file():  # a file in the cache is complete: fetch renames it in at the end
            try:
                download.fetch(spec, dest)
            except download.DownloadError as e:
                raise ConversionError(spec, e.problem) from None
        return dest, spec
    path = Path(spec).expanduser()
    return path, str(path.resolve())


def _refuse_existing(output, force):
    if output is not None and Path(output).exists() and not force:
        raise ConversionError(output, "already exists; pass --force to overwrite")


def convert_file(input, output=None, fmt="auto", force=False, *, sha256=None, label=None) -> ConversionResult:
    """Convert a checkpoint (path, http(s) URL or zoo:NAME) into detectron2 weights at `output`.

    `output` defaults to the input's name with .pkl beside it (in the cache for URLs). An
    existing output is kept unless `force`. Validation happens before anything is written, and
    the write is atomic: on any error there is no output file. `sha256` (of the input) and
    `label` (what provenance calls the input) are for callers that already know them.
    """
    if fmt != "auto" and fmt not in SOURCES:
        raise ConversionError(input, f"unknown format {fmt!r}; known: auto, {', '.join(SOURCES)}")
    _refuse_existing(output, force)  # an explicit output: before any download
    path, resolved_label = _resolve_input(input)
    output = Path(output) if output is not None else path.with_suffix(".pkl")
    _refuse_existing(output, force)
    checkpoint = load_checkpoint(path)
    try:
        sd = extract_state_dict(checkpoint)
        fmt = detect_format(sd) if fmt == "auto" else fmt
        origin = str(label or resolved_label)
        if fmt == "torchvision" and origin.startswith("zoo:"):
            fmt = _zoo_format(origin[len("zoo:"):]) or fmt
        converted = convert_state_dict(sd, fmt)
        depth = infer_depth(converted)
        validate(converted, depth)
    except ConversionError as e:
        raise ConversionError(path, e.problem + ("" if fmt == "auto" else f" (as format {fmt})")) from None
    provenance = {
        "input": label or resolved_label,
        "sha256": sha256 or download.sha256_file(path),
        "format": fmt,
        "converter": __version__,
        "depth": depth,
        "input_settings": dict(SOURCES[fmt].input_settings),
    }
    data = {"model": converted, "__author__": fmt, "matching_heuristics": True, "__provenance__": provenance}
    try:
        with atomic_write(output, "wb") as f:
            pickle.dump(data, f, protocol=5)
    except OSError as e:  # a full disk, a read-only or missing folder: atomic_write left nothing behind
        raise ConversionError(output, f"cannot write the converted weights ({e.strerror or e}); nothing was written") from None
    return ConversionResult(output, fmt, depth, len(converted), dropped_keys(sd, fmt), provenance)


# --------------------------------------------------------------------------- reading our output

# The only globals a converted file needs: numpy's array reconstruction (numpy 1 and 2 module
# names) and dtypes. Everything else (dicts, lists, str, numbers, bools) is built by pickle's
# own opcodes without a lookup, so this allow-list is the whole attack surface.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("collections", "OrderedDict"),
}


class _RefusedGlobal(pickle.UnpicklingError):
    pass


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _ALLOWED_GLOBALS or (module == "numpy.dtypes" and name.endswith("DType")):
            return super().find_class(module, name)
        raise _RefusedGlobal(f"refused global {module}.{name}")


def load_converted(path) -> dict:
    """Read a converted .pkl without ever running code from it, and check its shape.

    Returns the dict detectron2 expects ({"model": {name: ndarray}, "__author__", ...}).
    detectron2's own loader would `pickle.load` the file, which runs whatever it contains.
    """
    path = Path(path)
    if not path.is_file():
        raise ConversionError(path, "no such file" if not path.exists() else "not a regular file")
    try:
        with open(path, "rb") as f:
            data = _RestrictedUnpickler(f, encoding="latin1").load()
    except _RefusedGlobal as e:
        raise ConversionError(path, f"not a converted weights file: {e}; it was not loaded and nothing in it ran") from None
    except Exception as e:  # noqa: BLE001  (truncated or garbage pickles raise many types)
        raise ConversionError(path, f"not a converted weights file (unreadable pickle: {e or type(e).__name__})") from None
    if not isinstance(data, dict) or not isinstance(data.get("model"), dict) or "__author__" not in data:
        raise ConversionError(path, "not a converted weights file: expected a dict with 'model' and '__author__'")
    bad = [k for k, v in data["model"].items() if not isinstance(v, np.ndarray) or v.dtype.kind not in "fiub"]
    if bad:
        raise ConversionError(path, f"not a converted weights file: {_listing('non-numeric entries', sorted(map(str, bad)))}")
    return data


# --------------------------------------------------------------------------- what the engine calls

@dataclasses.dataclass
class PreparedWeights:
    path: Path  # a converted .pkl, ready for cfg.MODEL.WEIGHTS
    name: str
    sha256: str  # of the original input checkpoint
    source: str  # the spec as given
    input_settings: dict


def prepare_weights(spec, cache_dir=None) -> PreparedWeights:
    """Turn whatever the user passed as --weights into a validated converted .pkl.

    `spec`: a converted .pkl (checked, used in place), a raw checkpoint path, an http(s) URL, or
    zoo:NAME. Raw checkpoints are converted into `cache_dir/converted/<sha256>.pkl` (default:
    download.cache_dir()) and that file is reused when the same content comes again.
    """
    spec = str(spec)
    cache = Path(cache_dir) if cache_dir is not None else download.cache_dir()
    if spec.endswith(".pkl") and "://" not in spec and not spec.startswith("zoo:"):
        return _prepared_pkl(Path(spec), spec)
    path, label = _resolve_input(spec)
    if spec.startswith("zoo:"):
        name = spec[len("zoo:"):]
    else:
        name = Path(download.url_filename(spec) if "://" in spec else spec).stem
    if not path.is_file():
        raise ConversionError(path, "no such file" if not path.exists() else "not a regular file")
    digest = download.sha256_file(path)
    out = download.safe_cache_path(f"converted/{digest}.pkl", root=cache)
    if out.is_file():
        try:
            data = load_converted(out)
            return PreparedWeights(out, name, digest, spec, dict(data["__provenance__"]["input_settings"]))
        except (ConversionError, KeyError, TypeError):
            pass  # a stale or foreign cache entry: convert again over it
    if out.parent.is_dir():
        remove_stale_temporaries(out.parent)  # what conversions killed earlier left
    result = convert_file(path, out, force=True, sha256=digest, label=label)
    return PreparedWeights(out, name, digest, spec, dict(result.provenance["input_settings"]))


def _prepared_pkl(path, spec) -> PreparedWeights:
    data = load_converted(path)
    try:
        validate(data["model"], infer_depth(data["model"]))
    except ConversionError as e:
        raise ConversionError(path, e.problem) from None
    provenance = data.get("__provenance__") if isinstance(data.get("__provenance__"), dict) else {}
    settings = provenance.get("input_settings")
    if settings is None:
        author = str(data["__author__"]).lower()
        if author not in SOURCES:
            raise ConversionError(path, f"does not say which input settings it needs (no __provenance__, author "
                                        f"{data['__author__']!r}); convert the original checkpoint with tools/convert.py")
        settings = SOURCES[author].input_settings
    sha256 = provenance.get("sha256") or download.sha256_file(path)
    return PreparedWeights(path, path.stem, sha256, spec, dict(settings))
