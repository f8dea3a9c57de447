"""Gather the run records (results.json) under the given folders into a leaderboard.

  python tools/leaderboard.py output/                       # Markdown on the terminal
  python tools/leaderboard.py output/ --out board/ --format md,csv,html --sort-by voc07

Cells are mean ± sample std (ddof=1) (n) over finished trials; failed runs and refused records
(other schema versions, torn files) are listed apart. Exit status: 0 a leaderboard was made;
1 no usable record, a missing folder or a bad option (one line `error: ...`).
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
    args = p.parse_args(argv)
    from benchmark.records import leaderboard, results

    try:
        records, problems = results.gather(args.folders)
        for problem in problems:
            print(f"refused: {problem}", file=sys.stderr)
        if not records:
            raise ValueError(f"no usable run record under {', '.join(args.folders)}")
        board = leaderboard.build(records, problems, sort_by=args.sort_by)
        print(leaderboard.to_markdown(board), end="")
        if args.out:
            for path in leaderboard.write(board, args.out, [f for f in args.format.split(",") if f], args.name):
                print(f"wrote {path}", file=sys.stderr)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
