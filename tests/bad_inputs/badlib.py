"""Helpers of the hostile/broken inputs corpus: the tally and the one check every input goes through
(`refused`); CLI mains and checksums come from tests/helpers.py."""
import os

from tests.helpers import ROOT, tool, tree_digest  # noqa: F401  (re-exported for the corpus modules)


class Tally:
    """Inputs tried and handled cleanly, by name, for the summary line."""

    def __init__(self):
        self.tried, self.clean = [], []


TALLY = Tally()


def refused(capsys, name, call, must_name, *, protect=(), problem=None, rc=1, absent=()):
    """Run `call()` (a CLI main) on a bad input and check it was handled as a user would want.

    Exit code `rc`; exactly one line on stderr, starting 'error: ' and naming `must_name` (the
    file) and, when given, `problem`; no traceback; every file under `protect` unchanged; every
    path in `absent` still absent (no output left behind). Counts in the tally.
    """
    TALLY.tried.append(name)
    before = tree_digest(*protect)
    capsys.readouterr()
    got = call()
    err = capsys.readouterr().err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert got == rc, (name, got, err[-2000:])
    assert "Traceback" not in err, err
    assert len(lines) == 1, (name, lines)
    assert lines[0].startswith("error: ") and str(must_name) in lines[0], (name, lines[0])
    if problem is not None:
        assert problem in lines[0], (name, problem, lines[0])
    assert tree_digest(*protect) == before, f"{name}: files were changed"
    for path in absent:
        assert not os.path.lexists(path), f"{name}: {path} was left behind"
    TALLY.clean.append(name)
    return lines[0]


def count(name, ok):
    """Tally an input checked by a test's own assertions (call after they passed)."""
    TALLY.tried.append(name)
    if ok:
        TALLY.clean.append(name)
