"""The one helper module of the test suite: run records, tool entry points, hostile pickles, checksums.

Imported by tests as `from tests.helpers import ...` (the repository root is on sys.path under
`python -m pytest`; tests/conftest.py also puts it there). Fixtures (isolated cache, local HTTP
server, synthetic checkpoints) live in tests/conftest.py.
"""
import hashlib
import importlib
import os
import pickle
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# ------------------------------------------------------------------------------- run records

RECORD_DEFAULTS = dict(
    task="voc07", weights={"name": "moco", "sha256": "ab" * 32, "source": "moco.pth"},
    seed=0, trial=0, status="finished", metrics={"bbox": {"AP": 46.6, "AP50": 70.0, "AP75": 50.0}},
    iterations=20, world_size=1, ims_per_batch=2, duration_s=1.5, config_digest="cd" * 32,
    environment={"torch": "x"},
)


def make_record(**over) -> dict:
    """A complete, valid run record (benchmark.records.results.new_record) with `over` applied.

    `name="x"` is a shortcut for weights={"name": "x", ...}.
    """
    from benchmark.records import results

    fields = {k: (dict(v) if isinstance(v, dict) else v) for k, v in RECORD_DEFAULTS.items()}
    if "name" in over:
        fields["weights"] = {**fields["weights"], "name": over.pop("name")}
    fields.update(over)
    if fields["status"] == "failed":
        fields.setdefault("reason", "it failed")
    return results.new_record(**fields)


def write_record(folder, **over) -> Path:
    """Write make_record(**over) as FOLDER/results.json (atomically, as the engine does)."""
    from benchmark.records import results

    return results.write_record(Path(folder), make_record(**over))


# ------------------------------------------------------------------------------- tools

TOOLS = ("convert", "run_transfer", "leaderboard", "reproduce", "make_synthetic", "demo")


def tool(name):
    """The `main(argv) -> exit code` of a command-line tool (benchmark.cli.NAME), in this process."""
    if name not in TOOLS:
        raise ValueError(f"unknown tool {name!r}; tools: {', '.join(TOOLS)}")
    return importlib.import_module(f"benchmark.cli.{name}").main


def run_tool(name, *args, cwd=None, env=None, timeout=600) -> subprocess.CompletedProcess:
    """Run a tool as a user does, in a fresh interpreter: `python -m benchmark.cli.NAME ARGS`."""
    if name not in TOOLS:
        raise ValueError(f"unknown tool {name!r}; tools: {', '.join(TOOLS)}")
    full_env = {**os.environ, **(env or {})}
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), full_env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", f"benchmark.cli.{name}", *map(str, args)], cwd=cwd,
                          env=full_env, capture_output=True, text=True, timeout=timeout)


# ------------------------------------------------------------------------------- hostile input

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


def tree_digest(*roots) -> dict:
    """{path: sha256 of contents} of every file under `roots` (to prove nothing was damaged)."""
    out = {}
    for root in map(Path, roots):
        if not root.exists():
            continue
        paths = [root] if root.is_file() else sorted(root.rglob("*"))
        for path in paths:
            if path.is_file() and not path.is_symlink():
                out[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def one_error_line(stderr: str) -> str:
    """The single `error: ...` line a refused input must produce; asserts there is nothing else."""
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    assert "Traceback" not in stderr, stderr[-3000:]
    assert len(lines) == 1, lines[-20:]
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]
