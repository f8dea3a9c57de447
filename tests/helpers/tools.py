"""The command-line tools as the tests call them: in this process, or in a fresh interpreter."""
import importlib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

TOOLS = ("convert", "run_transfer", "leaderboard", "reproduce", "make_synthetic", "demo", "fp_chart", "invert")


def tool(name):
    """The `main(argv) -> exit code` of a command-line tool (benchmark.cli.NAME), in this process."""
    if name not in TOOLS:
        raise ValueError(f"unknown tool {name!r}; tools: {', '.join(TOOLS)}")
    return importlib.import_module(f"benchmark.cli.{name}").main


def child_env(**extra) -> dict:
    """The environment of a child interpreter: this one's, with the repository first on its path
    (so that it imports this checkout's `benchmark`), unbuffered output (so that a log read while
    it runs is current) and `extra` (values as strings)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run_tool(name, *args, cwd=None, env=None, timeout=600) -> subprocess.CompletedProcess:
    """Run a tool as a user does, in a fresh interpreter: `python -m benchmark.cli.NAME ARGS`."""
    if name not in TOOLS:
        raise ValueError(f"unknown tool {name!r}; tools: {', '.join(TOOLS)}")
    return subprocess.run([sys.executable, "-m", f"benchmark.cli.{name}", *map(str, args)], cwd=cwd,
                          env=child_env(**(env or {})), capture_output=True, text=True, timeout=timeout)
