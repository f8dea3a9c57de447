"""The hostile and broken inputs corpus: every input is generated here, in tmp dirs, by the tests.

At the end of the run the terminal summary says how many inputs were tried and how many were
handled cleanly (one clear line naming the file, the right exit code, nothing damaged).
"""
from badlib import TALLY


def pytest_terminal_summary(terminalreporter):
    if TALLY.tried:
        bad = [n for n in TALLY.tried if n not in TALLY.clean]
        terminalreporter.write_sep("-", "bad inputs corpus")
        terminalreporter.write_line(f"bad inputs tried: {len(TALLY.tried)}, handled cleanly: {len(TALLY.clean)}"
                                    + (f"; not handled: {', '.join(bad)}" if bad else ""))
