"""Safe loaders: a raw checkpoint with torch.load(weights_only=True), a converted .pkl with a
restricted unpickler. Neither ever runs code from the file; each failure is one ConversionError
naming the file.

RULE: a file is unpickled only by torch's weights-only unpickler (plus `SAFE_CHECKPOINT_GLOBALS`) or by `_RestrictedUnpickler`,
whose allow-list (numpy arrays, dtypes, OrderedDict, bytes) is the whole attack surface. A
checkpoint that is a plain pickle of numpy arrays (protocol 2, as older tools wrote) is read by
the latter and is not called hostile; only a pickle that names something else is refused as
code, naming the global it would have called.

`load_converted` (or `load_converted_with_sha256`, which also hashes the very bytes it parsed) is
what the engine's checkpointer (benchmark/engine/checkpointer.py) reads MODEL.WEIGHTS with,
instead of detectron2's plain `pickle.load`.
"""
import argparse
import datetime
import hashlib
import io
import math
import pathlib
import pickle
import re
import warnings
from pathlib import Path

import numpy as np
import torch

from benchmark.weights.errors import ConversionError, listing

_BLOCKED_GLOBAL = re.compile(r"GLOBAL (\S+)")
# Plain data classes that public training scripts put beside the weights, which torch's weights-only
# unpickler may rebuild. Each only builds a value from values and runs no code of the file's choosing:
# - argparse.Namespace only sets attributes (DINO's and timm's checkpoints save their `args`;
#   facebookresearch/dino:main_dino.py, timm/utils/checkpoint_saver.py);
# - numpy scalars and arrays (`best_acc1: np.float64`, as torchvision's and MoCo's main.py keep it):
#   numpy.dtype and its classes, scalar (a dtype and its bytes), _reconstruct + ndarray (an empty array, then its data);
# - datetime values (built from their packed bytes) and pure paths (built from their parts).
# Allowed per call (torch.serialization.safe_globals, a context manager), never added to torch's global
# allow-list, which belongs to the user's process. Everything else (os.system, eval, any class with a
# __reduce__ of its own) is still refused by torch before it is called.
_NUMPY_CORE = getattr(np, "_core", None) or np.core  # numpy 2 names it _core; files pickled by numpy 1 say numpy.core
SAFE_CHECKPOINT_GLOBALS = (
    argparse.Namespace,
    np.dtype, np.ndarray, _NUMPY_CORE.multiarray.scalar, _NUMPY_CORE.multiarray._reconstruct,
    (_NUMPY_CORE.multiarray.scalar, "numpy.core.multiarray.scalar"),
    (_NUMPY_CORE.multiarray._reconstruct, "numpy.core.multiarray._reconstruct"),
    # a dtype's state (byte order, ...) is set on its class (np.dtypes.Float64DType, ...): data only. Object
    # arrays are left out: nothing beside the weights needs them, and they may hold anything.
    *(cls for name, cls in vars(getattr(np, "dtypes", np)).items() if name.endswith("DType") and name != "ObjectDType"),
    datetime.date, datetime.time, datetime.datetime, datetime.timedelta, datetime.timezone,
    pathlib.PurePosixPath, pathlib.PosixPath, pathlib.PureWindowsPath,
)


def require_file(path) -> Path:
    """`path` as a Path, or a ConversionError saying why it is not a readable regular file."""
    path = Path(path)
    if not path.is_file():
        raise ConversionError(path, "no such file" if not path.exists() else "not a regular file")
    return path


def load_checkpoint(path) -> dict:
    """torch.load(path, weights_only=True) with one clear ConversionError per way it can fail.

    weights_only refuses any pickle that would import or call something other than tensors and
    plain containers, *before* calling it: a checkpoint crafted to run code is refused and the
    code never runs. An explicit weights_only=True also wins over $TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD.
    """
    path = require_file(path)
    if path.stat().st_size == 0:
        raise ConversionError(path, "empty file")
    try:
        with warnings.catch_warnings():
            # torch warns (two lines on stderr) about pickle protocols of non-torch pickles before
            # refusing them; the ConversionError below is the one line the user needs.
            warnings.simplefilter("ignore", UserWarning)
            with torch.serialization.safe_globals(list(SAFE_CHECKPOINT_GLOBALS)):
                checkpoint = _torch_load(path)
    except pickle.UnpicklingError as e:
        # Not a torch.save file torch's weights-only unpickler accepts: a plain pickle, maybe of
        # numpy arrays only (harmless), maybe not. The restricted unpickler decides which.
        blocked = _BLOCKED_GLOBAL.search(str(e))
        checkpoint = _plain_pickle(path, blocked.group(1) if blocked else None)
    except EOFError:
        raise ConversionError(path, "truncated: the file ends in the middle of the checkpoint") from None
    except RuntimeError as e:
        if "Invalid magic number" in str(e):
            # torch's legacy reader took a plain pickle's first record for its magic number: with numpy allowed
            # above, a pickle.dump of numpy arrays now parses that far. Not a torch.save file: read it as a plain pickle.
            return _checked_dict(path, _plain_pickle(path, None))
        if "zip archive" in str(e) or "central directory" in str(e):
            raise ConversionError(path, "truncated or corrupt: its zip archive cannot be read") from None
        if "EOF" in str(e):  # legacy (pre-1.6, non-zip) format cut short
            raise ConversionError(path, "truncated: the file ends in the middle of the checkpoint") from None
        raise ConversionError(path, f"not a readable PyTorch checkpoint ({str(e).splitlines()[0]})") from None
    except Exception as e:  # noqa: BLE001  (torch raises KeyError, ValueError, ... on garbage)
        raise ConversionError(path, f"not a PyTorch checkpoint ({type(e).__name__})") from None
    return _checked_dict(path, checkpoint)


def _checked_dict(path, checkpoint) -> dict:
    if not isinstance(checkpoint, dict):
        raise ConversionError(path, f"not a checkpoint: top level is a {type(checkpoint).__name__}, not a dict")
    return checkpoint


def _torch_load(path):
    try:
        # mmap: tensors stay in the page cache instead of being copied into memory
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as e:
        if "mmap" not in str(e):
            raise
        return torch.load(path, map_location="cpu", weights_only=True)  # legacy (non-zip) format


# The only globals a converted file needs: numpy's array reconstruction (numpy 1 and 2 module
# names) and dtypes. Everything else (dicts, lists, str, numbers, bools) is built by pickle's
# own opcodes without a lookup, so this allow-list is the whole attack surface.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("collections", "OrderedDict"),
    ("_codecs", "encode"),  # protocol 2 stores bytes as _codecs.encode(str, "latin1"); codecs only convert data
}


class _RefusedGlobal(pickle.UnpicklingError):
    def __init__(self, name):
        super().__init__(f"refused global {name}")
        self.name = name


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _ALLOWED_GLOBALS or (module == "numpy.dtypes" and name.endswith("DType")):
            return super().find_class(module, name)
        raise _RefusedGlobal(f"{module}.{name}")


def _plain_pickle(path, torch_blocked):
    """A checkpoint torch.load(weights_only=True) refused, read as a plain pickle of numpy arrays.

    `torch_blocked`: the global torch's unpickler refused (None: it could not parse the file).
    Refuses, naming the global, anything that needs more than `_ALLOWED_GLOBALS`.
    """
    try:
        with open(path, "rb") as f:
            return _RestrictedUnpickler(f, encoding="latin1").load()
    except _RefusedGlobal as e:
        if e.name.startswith("torch."):
            # pickle.dump of tensors: their storages come back through torch.storage._load_from_bytes,
            # i.e. a torch.load without weights_only: an unrestricted unpickling inside this one
            raise ConversionError(path, "a plain pickle of torch tensors (pickle.dump, not torch.save): its tensors are "
                                        "rebuilt by torch.storage._load_from_bytes, an unrestricted torch.load, so it was "
                                        "not loaded (nothing in it ran); re-save it with torch.save(obj, path)") from None
        raise ConversionError(path, f"refused: unpickling it would call {e.name}, i.e. run code; "
                                    "it was not loaded and nothing in it ran") from None
    except Exception:  # noqa: BLE001  (garbage or truncated bytes raise many types)
        if torch_blocked:  # unreadable for us too, but torch saw a global first: name it
            raise ConversionError(path, f"refused: unpickling it would call {torch_blocked}, i.e. run code; "
                                        "it was not loaded and nothing in it ran") from None
        hint = "; converted .pkl weights are used as they are (--weights FILE.pkl)" if path.suffix == ".pkl" else ""
        raise ConversionError(path, f"not a PyTorch checkpoint (unreadable pickle, not loaded){hint}") from None


def load_converted(path) -> dict:
    """Read a converted .pkl without ever running code from it, and check its shape.

    Returns the dict detectron2 expects ({"model": {name: ndarray}, "__author__", ...}).
    detectron2's own loader would `pickle.load` the file, which runs whatever it contains.
    """
    return load_converted_with_sha256(path)[0]


def load_converted_with_sha256(path) -> tuple:
    """(load_converted(path), sha256 of the bytes it was parsed from): one read, so that the
    digest is that of the weights returned, whatever happens to the file meanwhile."""
    path = require_file(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ConversionError(path, f"cannot be read ({e.strerror or e})") from None
    try:
        data = _RestrictedUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except _RefusedGlobal as e:
        hint = "; if it is a raw checkpoint, convert it first (tools/convert.py FILE -o OTHER.pkl)" if e.name.startswith("torch.") else ""
        raise ConversionError(path, f"not a converted weights file: {e}; it was not loaded and nothing in it ran{hint}") from None
    except Exception as e:  # noqa: BLE001  (truncated or garbage pickles raise many types)
        if raw.startswith(b"PK\x03\x04"):  # torch.save's zip archive under a .pkl name
            raise ConversionError(path, "a raw PyTorch checkpoint (torch.save zip archive), not converted weights: convert "
                                        "it first (tools/convert.py FILE -o OTHER.pkl)") from None
        raise ConversionError(path, f"not a converted weights file (unreadable pickle: {e or type(e).__name__})") from None
    if not isinstance(data, dict) or not isinstance(data.get("model"), dict) or "__author__" not in data:
        raise ConversionError(path, "not a converted weights file: expected a dict with 'model' and '__author__'")
    bad = [k for k, v in data["model"].items() if not isinstance(v, np.ndarray) or v.dtype.kind not in "fiub"]
    if bad:
        raise ConversionError(path, f"not a converted weights file: {listing('non-numeric entries', sorted(map(str, bad)))}")
    # torch.as_tensor refuses a byte order other than the machine's, which detectron2 would meet only in the launched run
    foreign = [f"{k}: {v.dtype.str}" for k, v in data["model"].items() if not v.dtype.isnative]
    if foreign:
        raise ConversionError(path, f"not usable weights: {listing('arrays in a foreign byte order', sorted(map(str, foreign)))}"
                                    "; torch reads the machine's byte order only: convert the original checkpoint again")
    provenance = data.get("__provenance__")
    if isinstance(provenance, dict) and isinstance(provenance.get("input_settings"), dict):
        problem = input_settings_problem(provenance["input_settings"])
        if problem:
            raise ConversionError(path, f"__provenance__ input_settings: {problem}; convert the original checkpoint again")
    return data, hashlib.sha256(raw).hexdigest()


# An image enters the network as 3 channels (INPUT.FORMAT RGB or BGR, the stem's 3 input channels),
# each normalised as (x - mean) / std: a mean or std of another length fails detectron2's model
# build, and a non-finite mean or a std that is not positive makes every input NaN or Inf.
INPUT_CHANNELS = 3
INPUT_FORMATS = ("RGB", "BGR")


def input_settings_problem(settings: dict):
    """What is wrong with the input settings a converted file carries (its provenance), or None."""
    fmt = settings.get("INPUT.FORMAT", "RGB")
    if fmt not in INPUT_FORMATS:
        return f"INPUT.FORMAT is {fmt!r}, not one of {', '.join(INPUT_FORMATS)}"
    for key, positive in (("MODEL.PIXEL_MEAN", False), ("MODEL.PIXEL_STD", True)):
        if key not in settings:
            continue
        value = settings[key]
        numbers = isinstance(value, (list, tuple)) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        if not numbers or len(value) != INPUT_CHANNELS:
            return f"{key} is {_short(value)}, not a list of {INPUT_CHANNELS} numbers (one per input channel)"
        if not all(_finite(v) and (v > 0 or not positive) for v in value):
            return f"{key} is {_short(value)}: each value must be a finite number{' above 0' if positive else ''}"
    return None


def _finite(value) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int beyond float's range
        return False


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
