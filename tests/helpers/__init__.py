"""Helpers of the test suite, one job a module; import a name from its module
(`from tests.helpers.tools import tool`), the package itself exports nothing.

- `records`: the one run-record factory (`make_record`, `write_record`): a complete, valid record
  with only the fields a test cares about changed.
- `tools`: the repository `ROOT`, a command-line tool's `main` in this process (`tool`), the same
  tool in a fresh interpreter (`run_tool`), and the environment children run in (`child_env`).
- `hostile`: inputs that attack the reader (`CodeRunningPickle`, `write_code_running_pickle`) and
  the checksums that prove nothing was damaged (`sha256`, `tree_digest`).
- `refusal`: the one check of a refused input: exactly one `error: ...` line and no traceback
  (`one_error_line`), and the bad-input corpus' full check built on it (`refused`).
- `tally`: the one `Tally` of named cases tried and handled (the bad-input corpus, the faults
  injected) and the line it adds to pytest's terminal summary.
- `processes`: children in their own process group, stopped with SIGKILL at a known point
  (`start`, `kill`, `wait_for`, `run_python_and_kill`).
- `server`: the one local HTTP server: plain files, downloads cut short (/cut/) and downloads that
  stall half-way (/stall/); `serve` runs any handler for the test-specific servers.
- `oracle`: detectron2's names for torchvision's ResNet keys, written out independently of
  benchmark/weights/formats.py, and the arrays a converted backbone must hold.

`tests.helpers` resolves because the repository root is on sys.path: `python -m pytest` puts the
working directory there, and pytest's default import mode the root of the `tests` package.
Fixtures (isolated cache, the HTTP server, synthetic checkpoints) live in tests/conftest.py.
"""
