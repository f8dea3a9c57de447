"""The command-line tools: `tools/NAME.py` and the console scripts are `benchmark.cli.NAME:main`.

Each module parses arguments and calls one library function; heavy imports (torch, detectron2)
happen inside main(), only on the path that needs them, so `--help` and the listing flags stay
fast. Importing this package (or any tool module) changes no warning filter and no logging level.
"""
import contextlib
import os
import warnings

# Deprecation notices raised by third-party code the user cannot act on. detectron2 (every
# version to date) calls torch.jit.script at import, which torch >= 2.10 answers with a
# FutureWarning per call site: noise on every run, not a problem of the run.
THIRD_PARTY_DEPRECATIONS = (
    # (action, message regex, category, module regex)
    ("ignore", r"`torch\.jit\.script` is deprecated", FutureWarning, ""),
)
# The same for worker processes spawned by the run (detectron2's launch): -W syntax, which matches
# a literal prefix of the message.
_PYTHONWARNINGS = ("ignore:`torch.jit.script` is deprecated:FutureWarning",)


@contextlib.contextmanager
def quiet_third_party_deprecations():
    """While a tool does its real work: hide THIRD_PARTY_DEPRECATIONS, here and in the processes it
    spawns. Filters and PYTHONWARNINGS are restored on exit, so a caller of main() (a test, a
    notebook) keeps its own settings; it is never applied at import."""
    old_env = os.environ.get("PYTHONWARNINGS")
    with warnings.catch_warnings():
        for action, message, category, module in THIRD_PARTY_DEPRECATIONS:
            warnings.filterwarnings(action, message=message, category=category, module=module)
        os.environ["PYTHONWARNINGS"] = ",".join(filter(None, [old_env, *_PYTHONWARNINGS]))
        try:
            yield
        finally:
            if old_env is None:
                os.environ.pop("PYTHONWARNINGS", None)
            else:
                os.environ["PYTHONWARNINGS"] = old_env
