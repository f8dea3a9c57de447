"""Where every protocol value comes from: the [tags] of the config files and configs/sources.yaml.

RULE: every value line of a protocol config (configs/*.yaml but zoo.yaml and sources.yaml; the
smoke/, sanity/ and paper/ folders are not protocols) carries, in its comment, at least one tag:
a file of a peer project read at a known commit (`[moco:detection/configs/Base-RCNN-C4-BN.yaml]`),
a published document (`[paper:...]`, `[doc:...]`), an assumption (`[assumption:ID]`) or a value of
the suite's own machinery (`[suite:why]`). Every tag names an entry of sources.yaml, and a task's
assumptions are exactly the assumption tags on the values its config chain ends up with (a value
overridden by a leaf takes its tags with it: coco_2x does not inherit coco's 1x assumption).
Pure Python and YAML (no torch, no detectron2), like the registry.
"""
import functools
import re
from pathlib import Path

import yaml

from benchmark import CONFIG_DIR

SOURCES_PATH = CONFIG_DIR / "sources.yaml"
TAG = re.compile(r"\[([a-z0-9]+):([^\]]+)\]")
_KEY_LINE = re.compile(r"^(\s*)([A-Za-z_][A-Za-z0-9_]*):(.*)$")
_NOT_VALUES = ("_BASE_", "VERSION")  # structure of the file, not protocol values


class SourceError(ValueError):
    """A config whose tags or chain cannot be read; str() names the file and line."""


@functools.lru_cache(maxsize=None)
def load_sources(path: Path = SOURCES_PATH) -> dict:
    data = yaml.safe_load(Path(path).read_text())
    for part in ("repositories", "files", "documents", "assumptions"):
        if not isinstance(data.get(part), dict):
            raise SourceError(f"{path}: needs a mapping `{part}`")
    return data


def _split_comment(text: str) -> tuple[str, str]:
    """(value, comment) of what follows `KEY:` (no value of ours holds a '#')."""
    value, _, comment = text.partition("#")
    return value.strip(), comment


@functools.lru_cache(maxsize=None)
def value_lines(path: Path) -> tuple:
    """((dotted key, line number, tags), ...) for every value line; tags are (kind, name) pairs of
    the line's own comment (a comment line above a value explains it; it does not source it)."""
    out, stack = [], []
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        m = _KEY_LINE.match(line)
        if not m:
            continue
        indent, key, rest = len(m.group(1)), m.group(2), m.group(3)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        value, comment = _split_comment(rest)
        if value:
            dotted = ".".join([k for _, k in stack] + [key])
            out.append((dotted, number, tuple(TAG.findall(comment))))
        else:
            stack.append((indent, key))
    return tuple(out)


def file_tags(path: Path) -> list:
    """Every tag anywhere in the file, header comments included (what the file cites)."""
    return TAG.findall(Path(path).read_text())


def config_chain(path: Path) -> list:
    """The file and its _BASE_ files, base first (detectron2's inheritance, relative paths)."""
    chain, current = [], Path(path)
    while True:
        if current in chain:
            raise SourceError(f"{current}: _BASE_ loop")
        chain.insert(0, current)
        base = (yaml.safe_load(current.read_text()) or {}).get("_BASE_")
        if not base:
            return chain
        current = (current.parent / base).resolve()


def effective_tags(path: Path) -> dict:
    """{dotted key: (file, tags)} for the value each key ends up with in the chain of `path`."""
    out = {}
    for file in config_chain(path):
        for key, _, tags in value_lines(file):
            out[key] = (file, tags)
    return out


def assumption_text(ident: str) -> str:
    """'ID: text' of an assumption of sources.yaml (what --list-tasks shows and records store)."""
    text = load_sources()["assumptions"][ident]
    return f"{ident}: {' '.join(str(text).split())}"


@functools.lru_cache(maxsize=None)
def config_assumptions(path: Path) -> tuple:
    """The assumptions of a task config: the assumption tags of its effective values, in order."""
    idents = dict.fromkeys(name for _, tags in effective_tags(Path(path)).values()
                           for kind, name in tags if kind == "assumption")
    return tuple(assumption_text(i) for i in idents)


def assumption_ids(assumptions) -> list:
    """The IDs of 'ID: text' assumption strings (what tables show beside a verdict)."""
    return [str(a).split(":", 1)[0] for a in assumptions]
