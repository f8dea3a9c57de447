"""The one local HTTP server of the tests, and `serve`, which runs any handler for the duration
of a `with` block (the tests' own hostile servers use it too)."""
import contextlib
import functools
import http.server
import threading
from pathlib import Path


class FileHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the files of its folder at /NAME, and two broken transfers of them:

    /cut/NAME announces the full length, sends half the bytes and closes the connection (a
    download cut short); /stall/NAME announces the full length, sends half, then keeps the
    connection open and silent until `release` is set (a transfer that hangs until the client dies).
    """

    release = None  # threading.Event, set when the server stops

    def do_GET(self):
        for prefix in ("/cut/", "/stall/"):
            if self.path.startswith(prefix):
                return self._send_half(Path(self.directory, self.path[len(prefix):]).read_bytes(), stall=prefix == "/stall/")
        return super().do_GET()

    def _send_half(self, data, stall):
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        self.wfile.flush()
        if stall:
            self.release.wait(timeout=120)
        self.close_connection = True

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serve(handler):
    """Run `handler` (a request handler class or factory) on 127.0.0.1 at a free port; yields the
    base URL. Request threads are daemons, so that a stalled one does not hold up the stop."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@contextlib.contextmanager
def serve_files(folder):
    """FileHandler over `folder`; yields the base URL. Stalled transfers are released at the end."""
    release = threading.Event()
    handler = type("Handler", (FileHandler,), {"release": release})
    with serve(functools.partial(handler, directory=str(folder))) as base:
        try:
            yield base
        finally:
            release.set()
