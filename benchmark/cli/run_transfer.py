"""Fine-tune a pretrained checkpoint on a transfer task and write OUTPUT/trial_k/results.json.

  python tools/run_transfer.py --task voc07 --weights moco.pth --num-gpus 8 --trials 5
  python tools/run_transfer.py --task voc07 --weights moco.pth --smoke     # CPU, synthetic data
  python tools/run_transfer.py --task voc07 --weights moco.pth --sanity    # does fine-tuning learn? (minutes)
  python tools/run_transfer.py --list-tasks | --list-zoo

Exit status: 0 every trial finished; 1 bad input (one line `error: ...`) or a failed trial; 2 usage;
3 (--sanity) the learning check finished on the wrong side of its threshold (below it; above it for an error).
"""
import argparse
import sys


def parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", help="registered task name (see --list-tasks)")
    p.add_argument("--weights", help="converted .pkl, raw checkpoint, http(s) URL or zoo:NAME")
    p.add_argument("--list-tasks", action="store_true", help="print the task registry and exit")
    p.add_argument("--list-zoo", action="store_true", help="print the released checkpoints usable as zoo:NAME and exit")
    p.add_argument("--num-gpus", type=int, default=1, help="processes per machine (CPU processes without CUDA)")
    p.add_argument("--ims-per-gpu", type=_positive_int, metavar="N",
                   help="images per process (default: as many of the protocol's 16 as each GPU's memory holds, README "
                        "'Fewer GPUs'; CPU processes: at most 4); a batch that does not fit shrinks, LR and schedule "
                        "scaled, listed as a deviation")
    p.add_argument("--num-machines", type=int, default=1, help="machines, each running --num-gpus processes")
    p.add_argument("--machine-rank", type=int, default=0, help="this machine's rank, 0..num-machines-1")
    p.add_argument("--dist-url", default="auto", help="tcp://HOST:PORT of machine 0 (several machines)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--trials", type=int, default=1, help="run trials 0..K-1, K <= 1000 (seeds S..S+K-1); finished ones are skipped")
    g.add_argument("--trial", type=int, help="run only trial k (seed S+k, OUTPUT/trial_k)")
    p.add_argument("--seed", type=int, default=0, help="seed S of trial 0")
    p.add_argument("--output", help="output folder (default output/<task>/<weights name>)")
    p.add_argument("--data-root", help="datasets root (default $DETECTRON2_DATASETS or datasets/)")
    p.add_argument("--eval-only", action="store_true", help="evaluate the weights (or, with --resume, the last checkpoint)")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint (always done with --trials/--trial)")
    p.add_argument("--smoke", action="store_true", help="synthetic data and a tiny schedule: an end-to-end check on CPU")
    p.add_argument("--sanity", action="store_true",
                   help="learning check: fine-tune on a few synthetic images (written by itself) and evaluate on the "
                        "same ones; prints the score and PASS/FAIL, exit 3 below the threshold (above it for an error); "
                        "record kind 'sanity' "
                        "(default --output output/sanity/<task>/<name>)")
    p.add_argument("--norm", choices=("naiveSyncBN", "SyncBN", "BN"), help="norm layers (default: the protocol's naiveSyncBN)")
    p.add_argument("--amp", action="store_true", help="mixed-precision training (CUDA only; recorded as a deviation)")
    p.add_argument("--head", choices=("baseline", "rfs"),
                   help="fewshot_miniimagenet: the per-episode head, CloserLookFewShot's linear layer (default) or RFS's "
                        "logistic regression on L2-normalised features (sets BENCHMARK.FEWSHOT.HEAD; a deviation)")
    p.add_argument("--name", help="weights name in the run record, not blank (default: checkpoint file stem or zoo name)")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides, e.g. SOLVER.MAX_ITER 100")
    return p


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def format_task_table() -> str:
    """The task registry as an aligned table, then each task's protocol assumptions (for --list-tasks)."""
    from tabulate import tabulate

    from benchmark.tasks import list_tasks

    tasks = list_tasks()
    rows = [(t.name, t.data_format, t.primary_metric, t.config, t.description) for t in tasks]
    table = tabulate(rows, headers=("task", "data", "primary metric", "config", "description"), tablefmt="plain",
                     disable_numparse=True)
    lines = ["", "assumptions (protocol values no publication gives for the task; run records store them; "
             "sources of every value: configs/sources.yaml):"]
    for t in tasks:
        lines += [f"  {t.name}: {a}" for a in t.assumptions] or [f"  {t.name}: none (every value published)"]
    return table + "\n" + "\n".join(lines)


def main(argv=None):
    args = parser().parse_args(argv)
    if args.list_tasks:
        print(format_task_table())
        return 0
    if args.list_zoo:
        from benchmark.weights.zoo import format_zoo_table

        print(format_zoo_table(), end="")
        return 0
    if not args.task or not args.weights:
        parser().error("--task and --weights are required (or --list-tasks)")
    if args.head and args.task != "fewshot_miniimagenet":
        parser().error(f"--head is an option of fewshot_miniimagenet, not of task {args.task}")
    if args.head:  # a config key: the dumped config, its digest and the deviations say which head ran
        args.opts = ["BENCHMARK.FEWSHOT.HEAD", args.head, *args.opts]
    if args.ims_per_gpu:  # a config key, so the dumped config.yaml says how the batch was split
        args.opts = ["BENCHMARK.IMS_PER_GPU", str(args.ims_per_gpu), *args.opts]
    from benchmark.cli import quiet_third_party_deprecations

    with quiet_third_party_deprecations():
        from benchmark.engine import Options, RunError, prepare, run_jobs  # torch and detectron2: only for a real run

        opts = Options.from_args(args)
        try:
            jobs = prepare(opts)
            rc = run_jobs(jobs, opts)
        except RunError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return sanity_verdict(jobs, rc) if opts.sanity else rc


def sanity_verdict(jobs, rc: int) -> int:
    """Print each sanity trial's score and PASS/FAIL; the exit status (EXIT_BELOW_THRESHOLD when it misses)."""
    from benchmark.engine import sanity
    from benchmark.records import results

    task = jobs[0].task
    check = sanity.check_for(task)
    passed_all = rc == 0
    for job in jobs:
        try:
            record = results.read_record(job.output_dir / results.RECORD_NAME)
        except results.RecordError:
            record = None
        score, passed = sanity.score_of(record, task)
        shown = "none (the run failed)" if score is None else f"{score:.1f}"
        print(f"sanity {task.name} trial {job.trial}: {check.metric} = {shown} (threshold {check.threshold:g}): "
              f"{'PASS' if passed else 'FAIL'}")
        passed_all = passed_all and passed
    if rc != 0:
        return rc
    if not passed_all:
        print(f"sanity check FAILED: fine-tuned on {check.num_images} easy images and evaluated on the same ones, "
              f"{task.name} misses {check.metric} {check.comparison(task)} {check.threshold:g}; look for a label, "
              "box-format or weights-conversion bug before running the full protocol")
        return sanity.EXIT_BELOW_THRESHOLD
    return 0

if __name__ == "__main__":
    sys.exit(main())
