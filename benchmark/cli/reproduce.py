"""Reproduce a paper table (configs/paper/NAME.yaml or a .yaml file) and judge it cell by cell.

  python tools/reproduce.py --table table3 --dry-run            # the plan, zoo URLs, GPU-hours
  python tools/reproduce.py --table table3 --trials 5 --num-gpus 8
  python tools/reproduce.py --table table1 --launcher slurm --partition gpu --gpus-per-node 8
  python tools/reproduce.py --table tests/fixtures/paper/smoke.yaml --smoke --trials 2   # machinery, CPU

Finished runs under --output are skipped, so an interrupted reproduction resumes. Writes
OUTPUT/NAME.md and OUTPUT/NAME.csv. Exit status: 0 every judged cell and check holds; 1 one does
not, or bad input (one line `error: ...`); 2 usage.
"""
import argparse
import sys


def _pairs(items, what) -> dict:
    from benchmark.reproduce.plan import ReproduceError

    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise ReproduceError(f"{what} {item}: not of the form ROW=SPEC")
        out[key] = value
    return out


def _say(text) -> None:
    """Print the reproduction's lines with the hidden characters of a table's text (notes, sources) as escapes."""
    from benchmark.records.escape import visible

    print("\n".join(visible(line) for line in str(text).split("\n")))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--table", help="a paper table's name (configs/paper/NAME.yaml) or the path of a .yaml file")
    p.add_argument("--list-zoo", action="store_true", help="print the model zoo and exit")
    p.add_argument("--tasks", nargs="+", help="only these of the table's tasks")
    p.add_argument("--trials", type=int, default=5, help="trials per row and task (seeds S..S+K-1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--launcher", choices=("local", "slurm"), default="local")
    p.add_argument("--dry-run", action="store_true", help="print the planned runs and their cost; run nothing")
    p.add_argument("--smoke", action="store_true", help="synthetic data and a tiny schedule (CPU machinery check)")
    p.add_argument("--output", default="output/reproduce", help="runs, logs and the tables go here")
    p.add_argument("--data-root", help="datasets root (default $DETECTRON2_DATASETS or datasets/)")
    p.add_argument("--num-gpus", type=int, help="GPUs per run (default 1; slurm: --gpus-per-node)")
    p.add_argument("--weights", nargs="+", metavar="ROW=SPEC", help="weights for a row (path, URL or zoo:NAME)")
    p.add_argument("--tolerance", nargs="+", metavar="TASK:METRIC=VALUE",
                   help="set the tolerance of a column of the table by hand, e.g. voc07:bbox/AP=1.0 (a number >= 0)")
    s = p.add_argument_group("slurm (submitit)")
    s.add_argument("--partition"), s.add_argument("--account")
    s.add_argument("--nodes", type=int, default=1, help="machines per run")
    s.add_argument("--gpus-per-node", type=int, default=8)
    s.add_argument("--cpus-per-task", type=int)
    s.add_argument("--timeout-min", type=int, default=24 * 60)
    p.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides for every run")
    args = p.parse_args(argv)
    from benchmark.records.escape import visible
    from benchmark.reproduce import paper, plan
    from benchmark.reproduce.run import reproduce
    from benchmark.weights import zoo

    if args.list_zoo:
        print(zoo.format_zoo_table(), end="")
        return 0
    if not args.table:
        p.error("--table is required (or --list-zoo); tables: " + ", ".join(paper.list_tables()))
    try:
        opts = plan.Options(**{k: v for k, v in vars(args).items() if k not in ("list_zoo", "weights", "tolerance")},
                                 weights=_pairs(args.weights, "--weights"),
                                 tolerance=plan.parse_tolerances(args.tolerance))
        if opts.dry_run:
            return reproduce(opts, say=_say)
        from benchmark.cli import quiet_third_party_deprecations

        with quiet_third_party_deprecations():
            return reproduce(opts, say=_say)
    except (plan.ReproduceError, paper.TableError) as exc:
        print(f"error: {visible(exc)}", file=sys.stderr)  # it may quote the table's text
        return 1

if __name__ == "__main__":
    sys.exit(main())
