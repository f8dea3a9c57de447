"""Our statistics against a paper table: a verdict per cell (the tolerance rule of reproduce.paper)
and per check (direction-only claims; two-row ones tested with Welch's t-test).

Only the table's rows are judged: its `other_work` (other works' numbers) never reaches a verdict.
A check compares numbers, whichever way the metric is better: `moco_v2_celeba < supervised_celeba` on
an error (Task.lower_is_better) claims MoCo's error is the lower, and holds only when the mean is lower
and Welch's test finds the difference significant.
"""
import ast
import dataclasses

from benchmark.records.pooling import ALPHA, Stat, welch
from benchmark.reproduce import paper
from benchmark.reproduce.assumed import assumed, assumption_ids


@dataclasses.dataclass(frozen=True)
class CellVerdict:
    row: str
    task: str
    metric: str
    stat: Stat | None
    ref: paper.Reference | None
    diff: float | None
    tolerance: float | None
    basis: str
    verdict: str
    judged: bool
    ok: bool
    assumptions: tuple = ()  # IDs of the assumptions the task's protocol rests on, when judged


@dataclasses.dataclass(frozen=True)
class CheckVerdict:
    check: paper.Check
    values: dict  # {row: mean}
    verdict: str
    judged: bool
    ok: bool
    assumptions: tuple = ()


def judge(table, stats, tasks, runnable) -> tuple[list, list]:
    """Verdicts of every cell and check. `stats`: {(row, task): {metric: Stat}} (aggregate's),
    `tasks`: the tasks run, `runnable`: rows that had weights. A published value whose runs all
    failed is judged and does not hold; cells without a published value, and secondary values
    (docs/REFERENCES.md: shown, never judged pass/fail), are shown with their difference, not judged. A
    judged verdict on a task whose protocol rests on an assumption carries its IDs (`assumptions`)."""
    under = {t: assumption_ids(a) for t, a in assumed(table.tasks).items()}
    cells = []
    for row in table.rows:
        for task, metric in table.columns:
            stat = stats.get((row.name, task), {}).get(metric)
            ref = row.cells.get((task, metric))
            diff = tol = None
            basis = ""
            if row.name not in runnable:
                verdict, judged = "not run: no weights", False
            elif task not in tasks:
                verdict, judged = "not run: task not selected", False
            elif ref is None:
                verdict, judged = "no reference", False
            elif stat is None:
                verdict, judged = ("no result (secondary value: not judged)", False) if ref.secondary else ("no result", True)
            else:
                diff = stat.mean - ref.value
                tol, basis = table.tolerance_for(task, metric, stat.n)
                if ref.secondary:  # docs/REFERENCES.md: shown, marked secondary, never judged pass/fail
                    verdict = ("within" if abs(diff) <= tol else "outside") + " tolerance (secondary value: not judged)"
                    judged = False
                else:
                    verdict, judged = ("holds" if abs(diff) <= tol else "differs"), True
            cells.append(CellVerdict(row.name, task, metric, stat, ref, diff, tol, basis, verdict, judged,
                                     verdict in ("holds",) or not judged, under.get(task, ()) if judged else ()))
    checks = []
    for check in table.checks:
        values = {n: stats.get((n, check.task), {}).get(check.metric) for n in check.names}
        values = {n: (s.mean if s else None) for n, s in values.items()}
        missing_weights = [n for n in check.names if n not in runnable]
        if missing_weights:
            checks.append(CheckVerdict(check, values, f"not run: {', '.join(missing_weights)} without weights", False, True))
        elif check.task not in tasks:
            checks.append(CheckVerdict(check, values, "not run: task not selected", False, True))
        elif any(v is None for v in values.values()):
            checks.append(CheckVerdict(check, values, "no result", True, False, under.get(check.task, ())))
        elif two_rows(check):
            verdict, judged, ok = tested_comparison(check, stats)
            checks.append(CheckVerdict(check, values, verdict, judged, ok, under.get(check.task, ()) if judged else ()))
        else:
            try:
                ok = paper.evaluate_check(check, values)
                verdict = "holds" if ok else "does not hold"
            except ZeroDivisionError:  # the claim says nothing on these means: not shown to hold
                ok, verdict = False, "does not hold: it divides by zero on our means"
            checks.append(CheckVerdict(check, values, verdict, True, ok, under.get(check.task, ())))
    return cells, checks


def two_rows(check):
    """(a, strict, b) for a check that claims `a > b` / `a >= b` (or the same with < <=) of two rows;
    None for any other expression (judged on the means)."""
    node = ast.parse(check.expr, mode="eval").body
    if not (isinstance(node, ast.Compare) and len(node.ops) == 1 and isinstance(node.left, ast.Name)
            and isinstance(node.comparators[0], ast.Name)):
        return None
    a, op, b = node.left.id, node.ops[0], node.comparators[0].id
    if isinstance(op, (ast.Lt, ast.LtE)):
        a, b = b, a
    if not isinstance(op, (ast.Gt, ast.GtE, ast.Lt, ast.LtE)):
        return None
    return a, isinstance(op, (ast.Gt, ast.Lt)), b


def tested_comparison(check, stats) -> tuple[str, bool, bool]:
    """(verdict, judged, ok) of a two-row check, tested with Welch's t-test (records.pooling.welch).

    `a > b` holds only when a's mean is the larger and the difference is significant (p < ALPHA);
    `a >= b` ("b does not beat a") holds unless b's mean is the larger and significantly so; `b < a`
    and `b <= a` are the same claims (two_rows turns them round), and the reasons name the rows as the
    check does. With fewer than 2 trials on either side nothing can be tested: "not enough trials", not judged.
    """
    a, strict, b = two_rows(check)
    op = ast.parse(check.expr, mode="eval").body.ops[0]
    larger = "lower" if isinstance(op, (ast.Lt, ast.LtE)) else "higher"  # the word of the check as written
    first, second = (b, a) if larger == "lower" else (a, b)  # the rows as the check names them
    sa, sb = (stats.get((n, check.task), {}).get(check.metric) for n in (a, b))
    if sa.n < 2 or sb.n < 2:
        return (f"not enough trials ({a}: {sa.n}, {b}: {sb.n}; a significance test needs >= 2 each)", False, True)
    p = welch(sa, sb)
    significant = p < ALPHA
    if strict:
        ok = sa.mean > sb.mean and significant
        why = "" if ok else (": the difference is not significant" if sa.mean > sb.mean
                             else f": the mean of {first} is not {larger} than that of {second}")
    else:
        ok = not (sb.mean > sa.mean and significant)
        flip = "lower" if larger == "higher" else "higher"
        why = "" if ok else f": {first} is significantly {flip}"
    return f"{'holds' if ok else 'does not hold'} (Welch p = {p:.3g}){why}", True, ok


def passed(cells, checks) -> bool:
    return all(c.ok for c in cells if c.judged) and all(c.ok for c in checks if c.judged)
