"""The hostile and broken inputs corpus: every input is generated here, in tmp dirs, by the tests.

At the end of the run the terminal summary says how many inputs were tried and how many were
handled cleanly (one clear line naming the file, the right exit code, nothing damaged).
"""
from tests.helpers.tally import BAD_INPUTS


def pytest_terminal_summary(terminalreporter):
    BAD_INPUTS.write_summary(terminalreporter)
