"""The verdicts as the reproduction's report: OUTPUT/NAME.md (for people) and OUTPUT/NAME.csv.

The table's other works (paper.OtherWork) get a section of their own, each value marked "other work,
same protocol" or "other work, same metric only" with its source: shown beside our numbers, never a
verdict, never in the CSV of verdicts.
"""
import csv
import io

from benchmark.records.escape import csv_text, md_cell, visible
from benchmark.reproduce import paper
from benchmark.reproduce.assumed import assumed, marked
from benchmark.reproduce.judge import passed
from benchmark.reproduce.paper import direction_lines, other_work_lines
from benchmark.reproduce.plan import selected_tasks


def _f(x, digits=2, sign=False) -> str:
    if x is None:
        return "-"
    return f"{x:+.{digits}f}" if sign else f"{x:.{digits}f}"


def _paper_value(ref) -> str:
    return "-" if ref is None else f"{ref.value:g}" + (" (secondary)" if ref.secondary else "")


def _code(expr) -> str:
    """A check's expression in a Markdown code span, where `<` stays `<`: one line, pipes escaped (a table cell)."""
    return visible(" ".join(str(expr).split())).replace("|", "\\|")


def summary_line(cells, checks, none_finished=False) -> str:
    """The verdict line. `none_finished`: runs were planned and not one finished, which is a FAIL even when
    nothing was judged (it read "PASS: 0/0" when every run failed)."""
    jc = [c for c in cells if c.judged]
    jk = [c for c in checks if c.judged]
    verdict = "PASS" if passed(cells, checks) and not none_finished else "FAIL"
    return (f"{verdict}: {sum(c.ok for c in jc)}/{len(jc)} judged cells hold, {sum(c.ok for c in jk)}/{len(jk)} "
            f"judged checks hold; {len(cells) - len(jc)} cells and {len(checks) - len(jk)} checks not judged"
            + ("; no planned run finished" if none_finished else ""))


def to_markdown(table, cells, checks, failures, problems, opts, counts, none_finished=False) -> str:
    esc = md_cell  # a table's title, sources, notes and claims are text from a file anyone can write
    out = [f"# Reproduction of {esc(table.name)}", "", f"{esc(table.title)}. Source: {esc(table.source)}.", ""]
    if opts.smoke:
        out += ["**--smoke: synthetic data and a tiny schedule. These numbers test the machinery; they are not a "
                "reproduction.**", ""]
    tasks = selected_tasks(table, opts)
    out += [f"Runs: tasks {', '.join(tasks)}; {opts.trials} trials (seeds {opts.seed}..{opts.seed + opts.trials - 1}); "
            f"{counts}.",
            "Ours: mean ± sample standard deviation (ddof=1) (n finished trials). "
            f"Tolerance: 2 x std x sqrt(1/n + 1/n_pub) + {paper.ROUNDING} with the published run-to-run std"
            + (f" ({esc(table.std_source)})" if table.std_source else "")
            + f", n_pub = {table.published_trials}, unless set per metric. A cell holds when |ours - paper| <= tolerance; "
              "cells without a published value are shown, not judged.", "",
            "| row | task | metric | ours | paper | source | diff | tolerance | verdict |",
            "| --- | --- | --- | ---: | ---: | --- | ---: | ---: | --- |"]
    for c in cells:
        out.append(f"| {c.row} | {c.task} | {esc(c.metric)} | {c.stat.format() if c.stat else '-'} | {_paper_value(c.ref)} | "
                   f"{esc(c.ref.source) if c.ref else '-'} | {_f(c.diff, sign=True)} | {_f(c.tolerance)} | "
                   f"{marked(c.verdict, c.assumptions)} |")
    directions = direction_lines(table, tasks)
    if directions:
        out += ["", "Direction: " + "; ".join(directions) + "."]
    if checks:
        out += ["", "## Checks (direction only, on our means)" + (f": {esc(table.check_source)}" if table.check_source else ""), "",
                "| task | metric | check | claim | our means | verdict |", "| --- | --- | --- | --- | --- | --- |"]
        for k in checks:
            vals = ", ".join(f"{n} {_f(v)}" for n, v in k.values.items())
            out.append(f"| {k.check.task} | {esc(k.check.metric)} | `{_code(k.check.expr)}` | {esc(k.check.claim)} | {vals} | "
                       f"{marked(k.verdict, k.assumptions)} |")
    others = other_work_lines(table, tasks)
    if others:
        out += ["", "## Other works (shown for context, never judged)", "",
                "Other works' published numbers: 'same protocol' where the work ran the protocol this suite runs, "
                "'same metric only' where it reports this metric on other features or training. No cell or check "
                "counts them.", ""]
        out += [f"- {esc(line)}" for line in others]
    under = assumed(tasks)
    if under:
        out += ["", "## Assumed protocols", "",
                "A verdict marked [assumed protocol: ID] is judged on runs of a protocol that no publication gives "
                "for that task (configs/sources.yaml); it says how this suite's protocol compares, not "
                "necessarily the paper's.", ""]
        out += [f"- {task}: {esc(a)}" for task, items in under.items() for a in items]
    notes = [f"- {r.name}: {esc(r.note)}" for r in table.rows if r.note]
    notes += [f"- {r.name}: {esc(o['what'])} {o['value']:g} ({esc(o['source'])}"
              + ("; secondary" if o.get("secondary") else "") + "): no task of this suite, not judged"
              for r in table.rows for o in r.other]
    if notes:
        out += ["", "## Notes", ""] + notes
    if failures:
        out += ["", "## Failed runs", "", "| row | task | trial | reason | record |", "| --- | --- | ---: | --- | --- |"]
        out += [f"| {esc(f.name)} | {esc(f.task)} | {f.trial} | {esc(f.reason)} | {esc(f.path or '-')} |" for f in failures]
    if problems:
        out += ["", "## Records refused", ""] + [f"- {esc(p)}" for p in problems]
    out += ["", f"**{summary_line(cells, checks, none_finished)}**"]
    return "\n".join(out) + "\n"


def to_csv(cells, checks) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    # sources, expressions and assumptions are text from the table: a spreadsheet must not run them (csv_text)
    w.writerow(["kind", "row", "task", "metric", "ours_mean", "ours_std", "n", "paper", "paper_source", "secondary",
                "diff", "tolerance", "verdict", "check", "assumptions"])
    num = lambda x: "" if x is None else f"{x:.4f}"  # noqa: E731
    for c in cells:
        w.writerow(["cell", c.row, c.task, c.metric, num(c.stat.mean if c.stat else None), num(c.stat.std if c.stat else None),
                    c.stat.n if c.stat else 0, "" if c.ref is None else f"{c.ref.value:g}", csv_text(c.ref.source) if c.ref else "",
                    "" if c.ref is None else str(c.ref.secondary).lower(), num(c.diff), num(c.tolerance), c.verdict, "",
                    csv_text(";".join(c.assumptions))])
    for k in checks:
        w.writerow(["check", "", k.check.task, k.check.metric, "", "", "", "", "", "", "", "", k.verdict, csv_text(k.check.expr),
                    csv_text(";".join(k.assumptions))])
    return buf.getvalue()
