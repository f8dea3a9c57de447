"""Which tasks' protocols rest on an assumption (Task.assumptions: values no publication gives), and how
a verdict judged on one is marked: the plan (--dry-run), the judge and the report all say so beside it.
"""
from benchmark.tasks import get_task


def assumed(tasks) -> dict:
    """{task: ('ID: why', ...)} for the tasks of `tasks` whose protocol rests on an assumption."""
    return {t: get_task(t).assumptions for t in tasks if get_task(t).assumptions}


def assumption_ids(assumptions) -> tuple:
    """The IDs ("ID: why" -> "ID") of a task's assumptions."""
    return tuple(str(a).split(":", 1)[0] for a in assumptions)


def marked(verdict: str, assumptions) -> str:
    """A verdict with the assumptions it was judged under beside it (as the report shows it)."""
    return f"{verdict} [assumed protocol: {', '.join(assumptions)}]" if assumptions else verdict
