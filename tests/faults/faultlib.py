"""Helpers of the fault-injection tests: children started in their own process group, stopped
with SIGKILL at a known point, the tally of faults, and an HTTP server that stalls mid-transfer."""
import hashlib
import http.server
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class Tally:
    """Faults injected and survived, by name, for the summary line."""

    def __init__(self):
        self.injected, self.survived = [], []

    def inject(self, name):
        self.injected.append(name)

    def survive(self, name):
        assert name in self.injected, name
        self.survived.append(name)


TALLY = Tally()


def child_env(**extra):
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    env.update({k: str(v) for k, v in extra.items()})
    return env


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


def sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class StallingHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files from its folder; /stall/NAME announces the full length, sends the first
    half, then keeps the connection open and silent (a transfer that hangs until the client dies)."""

    release = None  # threading.Event set at teardown

    def do_GET(self):
        if not self.path.startswith("/stall/"):
            return super().do_GET()
        data = Path(self.directory, self.path[len("/stall/"):]).read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        self.wfile.flush()
        self.release.wait(timeout=120)
        self.close_connection = True

    def log_message(self, *args):
        pass
