"""Fault injection with real processes: a child is started, stopped with SIGKILL at a known point
(inside a write, mid-download, mid-training), and what it leaves behind is checked.

The tally of faults injected and survived is printed at the end of the run (terminal summary),
whatever pytest's capture settings.
"""
import pytest

from tests.helpers.tally import FAULTS


@pytest.fixture
def faults():
    """The tally: `faults.attempt(name)` when a fault is injected, `faults.succeed(name)` once survived."""
    return FAULTS


def pytest_terminal_summary(terminalreporter):
    FAULTS.write_summary(terminalreporter)
