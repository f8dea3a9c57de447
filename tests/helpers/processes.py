"""Children started in their own process group and stopped with SIGKILL at a known point."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers.tools import ROOT, child_env


def start(argv, log, **env):
    """A child process in its own session (so that SIGKILL of the group reaches its workers)."""
    return subprocess.Popen([str(a) for a in argv], cwd=ROOT, env=child_env(**env), stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)


def kill(proc):
    """SIGKILL the child's whole process group (detectron2 may have spawned workers) and reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, proc.returncode


def wait_for(condition, proc, log_path, timeout=240, what="the condition"):
    """Poll `condition()` until true; fail with the child's log if it exits or time runs out."""
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"child exited ({proc.returncode}) before {what}:\n{Path(log_path).read_text()[-4000:]}")
        if time.monotonic() > deadline:
            kill(proc)
            raise AssertionError(f"timed out waiting for {what}:\n{Path(log_path).read_text()[-4000:]}")
        time.sleep(0.05)


def run_python_and_kill(code, tmp_path, *args, ready_name="READY", timeout=120, **env):
    """Run `python -c code READY_FILE *args`; once the child creates READY_FILE, SIGKILL it.

    The child's code blocks (sleeps) at the point to interrupt after touching sys.argv[1], so the
    kill lands exactly there, not at some random moment.
    """
    ready = tmp_path / ready_name
    log = tmp_path / f"{ready_name}.log"
    with open(log, "wb") as f:
        proc = start([sys.executable, "-c", code, ready, *args], f, **env)
        wait_for(ready.exists, proc, log, timeout=timeout, what=f"{ready_name} (the child reaching the kill point)")
        kill(proc)
    return log
