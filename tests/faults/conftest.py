"""Fault injection with real processes: a child is started, stopped with SIGKILL at a known point
(inside a write, mid-download, mid-training), and what it leaves behind is checked.

The tally of faults injected and survived is printed at the end of the run (terminal summary),
whatever pytest's capture settings.
"""
import functools
import http.server
import threading

import pytest
from faultlib import TALLY, StallingHandler


@pytest.fixture
def faults():
    return TALLY


def pytest_terminal_summary(terminalreporter):
    if TALLY.injected:
        lost = [n for n in TALLY.injected if n not in TALLY.survived]
        terminalreporter.write_sep("-", "fault injection")
        terminalreporter.write_line(f"faults injected: {len(TALLY.injected)}, survived: {len(TALLY.survived)}"
                                    + (f"; not survived: {', '.join(lost)}" if lost else ""))


@pytest.fixture
def stalling_server(tmp_path):
    """(base_url, folder): files in `folder` at base_url/NAME, and hanging half-way at base_url/stall/NAME."""
    folder = tmp_path / "served"
    folder.mkdir()
    release = threading.Event()
    handler = type("Handler", (StallingHandler,), {"release": release})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(folder)))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", folder
    finally:
        release.set()
        server.shutdown()
        server.server_close()
        thread.join()
