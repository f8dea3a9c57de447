"""The one tally of named cases tried and handled, printed as one line at the end of the run
(pytest's terminal summary, whatever its capture settings)."""


class Tally:
    """Cases tried and handled, by name; `title` heads the summary line, `words` name its counts
    (tried, handled, not handled)."""

    def __init__(self, title, words):
        self.title, self.words = title, words
        self.tried, self.handled = [], []

    def attempt(self, name):
        """A case begins (a fault injected, a bad input tried)."""
        self.tried.append(name)

    def succeed(self, name):
        """The case `attempt`ed under `name` was handled (the fault survived, the input refused cleanly)."""
        assert name in self.tried, name
        self.handled.append(name)

    def count(self, name, ok):
        """Tally a case checked by a test's own assertions (call after they passed)."""
        self.attempt(name)
        if ok:
            self.succeed(name)

    def write_summary(self, terminalreporter):
        """One section in pytest's terminal summary, when any case was tried."""
        if not self.tried:
            return
        tried, handled, missed = self.words
        lost = [n for n in self.tried if n not in self.handled]
        terminalreporter.write_sep("-", self.title)
        terminalreporter.write_line(f"{tried}: {len(self.tried)}, {handled}: {len(self.handled)}"
                                    + (f"; {missed}: {', '.join(lost)}" if lost else ""))


# inputs tried and handled cleanly (one clear line naming the file, the right exit code, nothing damaged)
BAD_INPUTS = Tally("bad inputs corpus", ("bad inputs tried", "handled cleanly", "not handled"))
# faults injected into real processes, and survived
FAULTS = Tally("fault injection", ("faults injected", "survived", "not survived"))
