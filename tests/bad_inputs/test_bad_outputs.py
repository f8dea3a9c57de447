"""Every command that writes refuses an output it cannot write before any work, with one `error:` line naming
its option, and makes or changes nothing (benchmark.fileio.unusable_output).

Before, `leaderboard --out FILE` printed the whole board and then a FileExistsError traceback, `convert -o` and
`reproduce --output` into a symbolic-link loop ended in a RuntimeError traceback, and `reproduce --output FILE`
in a NotADirectoryError one. run_transfer's own cases are in tests/engine/test_trial_rules.py.
"""
import pytest

from tests.helpers.hostile import tree_digest
from tests.helpers.outputs import OUTPUT_IDS, UNUSABLE_OUTPUTS
from tests.helpers.records import write_record
from tests.helpers.refusal import one_error_line
from tests.helpers.tools import ROOT, tool

SMOKE_TABLE = ROOT / "tests" / "fixtures" / "paper" / "smoke.yaml"


# command(folder, inputs) -> (argv: the tool's name and its arguments, valid but for `folder`, the option the
# refusal names). `inputs`: a folder for valid inputs. Where the command writes a file, it goes into `folder`.
def _leaderboard(folder, inputs):
    write_record(inputs / "runs" / "a", name="moco")
    return ["leaderboard", inputs / "runs", "--out", folder], "--out"


def _convert(folder, inputs):
    from benchmark.weights.synthetic import make_synthetic_checkpoint

    checkpoint = make_synthetic_checkpoint(inputs / "moco.pth", "moco", width=8)
    return ["convert", checkpoint, "-o", folder / "moco.pkl"], "--output"


def _make_synthetic(folder, inputs):
    return ["make_synthetic", "--out", folder, "--format", "voc"], "--out"


def _reproduce(folder, inputs):
    return ["reproduce", "--table", SMOKE_TABLE, "--smoke", "--trials", "1", "--output", folder], "--output"


def _fp_chart(folder, inputs):
    return ["fp_chart", inputs / "no_such_run", "--out", folder / "chart.svg"], "--out"


def _invert(folder, inputs):
    return ["invert", "--weights", inputs / "no_such.pth", "--output", folder], "--output"


COMMANDS = [_leaderboard, _convert, _make_synthetic, _reproduce, _fp_chart, _invert]


@pytest.mark.parametrize("case", UNUSABLE_OUTPUTS, ids=OUTPUT_IDS)
@pytest.mark.parametrize("command", COMMANDS, ids=[c.__name__.strip("_") for c in COMMANDS])
def test_an_output_that_cannot_be_written_is_refused_first(tmp_path, capsys, monkeypatch, command, case):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    folder, problem = case(tmp_path, monkeypatch)
    argv, option = command(folder, inputs)
    before = tree_digest(tmp_path), sorted(tmp_path.rglob("*"))
    capsys.readouterr()
    rc = tool(argv[0])([str(a) for a in argv[1:]])
    out = capsys.readouterr()
    line = one_error_line(out.err)
    assert rc == 1 and problem in line and f"{option} {folder}" in line, line
    assert out.out == ""  # nothing printed before the refusal (the leaderboard printed the whole board)
    assert (tree_digest(tmp_path), sorted(tmp_path.rglob("*"))) == before  # nothing made or written
