"""The one error the weights stage raises for a checkpoint it cannot use.

Its own module, below every other one of the stage, so that the pure format code, the loaders,
the --weights parser and the converter can all raise it without importing one another.
"""

LIST_AT_MOST = 5  # names shown in a message before "... (N more)"


class ConversionError(ValueError):
    """A checkpoint that cannot be converted or used; str() is '<file>: <problem>' (one line).

    `path` is the file (or URL, or zoo:NAME) the user gave; None while a pure function raises it,
    before the caller names the file (`ConversionError(path, e.problem)`).
    """

    def __init__(self, path, problem):
        super().__init__(f"{path}: {problem}" if path is not None else problem)
        self.path, self.problem = path, problem


def listing(what, items) -> str:
    """'missing 2 (a, b)': a count and the first few names, for one-line messages."""
    items = list(items)
    shown = ", ".join(items[:LIST_AT_MOST])
    if len(items) > LIST_AT_MOST:
        shown += f", ... ({len(items) - LIST_AT_MOST} more)"
    return f"{what} {len(items)} ({shown})"
