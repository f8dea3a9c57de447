"""Gather the run records (results.json) under the given folders into a leaderboard.

  python tools/leaderboard.py output/                       # Markdown on the terminal
  python tools/leaderboard.py output/ --out board/ --format md,csv,html --sort-by voc07
  python tools/leaderboard.py output/ --published moco_voc0712     # only MoCo's published rows
  python tools/leaderboard.py output/ --published none             # measured rows only

Cells are mean ± sample std (ddof=1) (n) over finished trials. Runs that measure different things
(smoke, sanity, eval-only, AMP, another world size or protocol) are separate rows, never averaged
together; published baselines from the paper tables are rows marked [published: TABLE]. Per column,
the best row and those not significantly different from it (Welch's t-test) are marked. Failed
runs and refused records (other schema versions, torn or mistyped files) are listed apart.
The HTML page is one self-contained file (sortable, charts, links to each run's record and config).
Exit status: 0 a leaderboard was made; 1 no usable record, a missing folder or a bad option
(one line `error: ...`).
"""
import argparse
import sys


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folders", nargs="+", help="folders (searched recursively) or results.json files")
    p.add_argument("--out", help="write the leaderboard files into this folder")
    p.add_argument("--format", default="md,csv,html", help="comma-separated: md, csv, html (html adds a PNG chart)")
    p.add_argument("--sort-by", help="task whose primary metric orders the rows (default: the first task)")
    p.add_argument("--name", default="leaderboard", help="file stem of the written files")
    p.add_argument("--published", default="all", metavar="TABLES",
                   help="published baselines to show: all (every paper table, the default), none, or "
                        "comma-separated names of configs/paper/NAME.yaml tables or paths of .yaml tables")
    args = p.parse_args(argv)
    from benchmark.fileio import unusable_output
    from benchmark.records import leaderboard, results
    from benchmark.records.escape import visible
    from benchmark.reproduce import paper
    from benchmark.reproduce.published import published_rows

    problem = unusable_output(args.out, "--out") if args.out else None
    if problem:  # before the records are read: nothing is printed or written
        print(f"error: {visible(problem)}", file=sys.stderr)
        return 1
    try:
        records, problems = results.gather(args.folders)
        for problem in problems:
            print(f"refused: {visible(problem)}", file=sys.stderr)  # a path may hold an ANSI escape
        if not records:
            raise ValueError(f"no usable run record under {', '.join(args.folders)}")
        tables = {"all": None, "none": []}.get(args.published, [t for t in args.published.split(",") if t])
        published = published_rows(tables) if tables != [] else []
        board = leaderboard.build(records, problems, sort_by=args.sort_by, published=published)
        for conflict in board.problems[len(problems):]:  # two records of one trial with other values
            print(f"warning: {visible(conflict)}", file=sys.stderr)
        print(leaderboard.to_markdown(board), end="")
        if args.out:
            for path in leaderboard.write(board, args.out, [f for f in args.format.split(",") if f], args.name):
                print(f"wrote {visible(path)}", file=sys.stderr)
    except (ValueError, FileNotFoundError, paper.TableError) as exc:
        print(f"error: {visible(exc)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
