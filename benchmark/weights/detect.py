"""Which format a checkpoint is and where its ResNet's state dict sits in it; an unknown layout diagnosed.

`locate(checkpoint, fmt)` finds the format (detected unless named, in `_DETECT_ORDER`) and its
state dict, reading only the formats' data (benchmark.weights.formats). A layout no format reads
is one line naming the key prefixes found and the nearest known format, so that the user knows
whether to pass --format or to report a new layout. Nothing here renames or checks tensors, and
nothing reads a file: the callers name the file in the errors raised here.
"""
import collections
import dataclasses
import difflib
import re
from typing import Optional

import numpy as np
import torch

from benchmark.weights.architecture import validate
from benchmark.weights.errors import ConversionError, listing
from benchmark.weights.formats import SOURCES, Source, strip_module

# the order detection tries: the most specific layouts (markers, nesting, prefixes) before a plain ResNet
_DETECT_ORDER = ("dino", "vissl", "simclr_v2", "pycontrast", "solo_learn", "densecl", "timm", "mocov3", "moco", "swav",
                 "backbone", "encoder", "model", "torchvision")
assert set(_DETECT_ORDER) == {n for n, s in SOURCES.items() if s.detect}


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
    keys = [strip_module(k) for k in sd if isinstance(k, str)]
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
        return _explicit(checkpoint, SOURCES[fmt])
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


# --------------------------------------------------------------------------- which --format would read it

def _reads_whole_resnet(checkpoint, source: Source) -> bool:
    """True when `source`, named with --format, finds a complete ResNet (names and shapes) in `checkpoint`."""
    for path in source.paths:
        sd = _follow(checkpoint, path)
        if not sd or not _has_resnet(source, sd):
            continue
        renamed = {}
        for key, value in sd.items():
            new = source.rename(key)
            if new is not None:
                if not hasattr(value, "shape") or new in renamed:
                    break
                renamed[new] = value
        else:
            try:
                validate(renamed)
                return True
            except ConversionError:
                continue
    return False


def format_that_reads(checkpoint, exclude=()) -> Optional[str]:
    """The first format (besides `exclude`) that, named with --format, reads a valid ResNet from `checkpoint`.

    Detection needs a format's markers (Lightning's version key, DINO's student beside the teacher,
    PyContrast's memory) and never tries the --format-only ones (dino_student, pycontrast_ema): a
    file re-saved without its markers is then refused, or misread, while one --format reads it.
    The refusal names that format. Only names and shapes are compared, so this costs a rename of
    the keys per format, and runs only where a file is refused.
    """
    if not isinstance(checkpoint, dict):
        return None
    return next((n for n, s in SOURCES.items() if n not in exclude and _reads_whole_resnet(checkpoint, s)), None)


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
    if "stem.conv1.weight" in {strip_module(k) for k in keys}:
        return ConversionError(None, "already in detectron2's naming (stem.conv1.weight): use it as it is")
    prefixes = collections.Counter(_prefix_of(k) for k in keys)
    found = ", ".join(f"{p} ({n})" for p, n in prefixes.most_common(4)) + (
        f", ... ({len(prefixes) - 4} more)" if len(prefixes) > 4 else "")
    # a torchvision ResNet under a prefix no format knows
    under = [p for p in prefixes if p.endswith(".") and
             {f"{p}conv1.weight", f"{p}layer1.0.conv1.weight"} <= set(keys)]
    scores = {n: sum(1 for k in keys if (r := s.rename(k)) and r != k and _D2_NAME.match(r)) for n, s in SOURCES.items()}
    reader = format_that_reads(checkpoint)
    # the format --format would read it as; else the one reading most keys, on a tie the most general one (the
    # latest detected: torchvision, not swav or simclr_v2, for torchvision keys)
    generality = {n: _DETECT_ORDER.index(n) if n in _DETECT_ORDER else -1 for n in SOURCES}
    best = reader or max(scores, key=lambda n: (scores[n], generality[n]))
    if scores[best]:
        # the keys its renaming leaves as they are (neither read nor dropped): the odd ones, e.g. a misspelt conv1.weight
        odd = [k for k in keys if (r := SOURCES[best].rename(k)) is not None and not _D2_NAME.match(r)]
        unread = f"; {listing('keys it does not read', odd)}" if odd else ""
        nearest = f"{best} (its renaming reads {scores[best]} of the {len(keys)} keys{unread})"
    else:
        top = strip_module(under[0] if under else prefixes.most_common(1)[0][0])
        known = {s.prefix: n for n, s in reversed(list(SOURCES.items())) if s.prefix}
        close = difflib.get_close_matches(top, list(known), n=1, cutoff=0.0)
        nearest = f"{known[close[0]]} (prefix '{close[0]}', closest to '{top}')" if close else "none"
    if reader:
        what = f"a ResNet that --format {reader} reads ({_markers(SOURCES[reader])}); "
    else:
        what = f"a torchvision ResNet under '{under[0]}', which no format reads; " if under else ""
    return ConversionError(None, f"not a ResNet checkpoint of a known format: {what}key prefixes in {_shown(path)}: "
                                 f"{found}; nearest known format: {nearest} (tools/convert.py --list-formats)")


def _markers(source: Source) -> str:
    """Why detection did not take `source`, in words."""
    if not source.detect:
        return "a format never detected, only named"
    needs = [f"the top-level entry '{k}'" for k, _ in source.top_markers] + [f"keys under '{m}'" for m in source.markers]
    return "detected only with " + (" and ".join(needs) or "its keys")
