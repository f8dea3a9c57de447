"""The one check of a refused input: one `error: ...` line, nothing else, no traceback; and the
bad-input corpus' full check built on it (exit code, the file named, nothing damaged, counted)."""
import os

from tests.helpers.hostile import tree_digest
from tests.helpers.tally import BAD_INPUTS


def one_error_line(stderr: str) -> str:
    """The single `error: ...` line a refused input must produce; asserts there is nothing else."""
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    assert "Traceback" not in stderr, stderr[-3000:]
    assert len(lines) == 1, lines[-20:]
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


def refused(capsys, name, call, must_name, *, protect=(), problem=None, rc=1, absent=()):
    """Run `call()` (a CLI main) on a bad input and check it was handled as a user would want.

    Exit code `rc`; exactly one line on stderr (`one_error_line`) naming `must_name` (the file)
    and, when given, `problem`; every file under `protect` unchanged; every path in `absent`
    still absent (no output left behind). Counted in the bad-input tally as `name`.
    """
    BAD_INPUTS.attempt(name)
    before = tree_digest(*protect)
    capsys.readouterr()
    got = call()
    err = capsys.readouterr().err
    assert got == rc, (name, got, err[-2000:])
    line = one_error_line(err)
    assert str(must_name) in line, (name, line)
    if problem is not None:
        assert problem in line, (name, problem, line)
    assert tree_digest(*protect) == before, f"{name}: files were changed"
    for path in absent:
        assert not os.path.lexists(path), f"{name}: {path} was left behind"
    BAD_INPUTS.succeed(name)
    return line
