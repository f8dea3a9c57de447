"""Inputs that attack the reader, and the checksums that prove nothing was damaged."""
import hashlib
import os
import pickle
from pathlib import Path


class CodeRunningPickle:
    """An object whose unpickling runs `touch MARKER`: the file appears only if the code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def write_code_running_pickle(path, marker, wrap=None) -> Path:
    """Write a pickle at `path` that runs `touch MARKER` when loaded; `wrap(obj)` may nest it
    (e.g. lambda o: {"model": o}) so that it hides inside a plausible container."""
    payload = CodeRunningPickle(marker)
    path = Path(path)
    path.write_bytes(pickle.dumps(wrap(payload) if wrap else payload))
    return path


def sha256(path) -> str:
    """The sha256 of one file's contents."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def tree_digest(*roots) -> dict:
    """{path: sha256 of contents} of every file under `roots` (to prove nothing was damaged)."""
    out = {}
    for root in map(Path, roots):
        if not root.exists():
            continue
        paths = [root] if root.is_file() else sorted(root.rglob("*"))
        for path in paths:
            if path.is_file() and not path.is_symlink():
                out[str(path)] = sha256(path)
    return out
