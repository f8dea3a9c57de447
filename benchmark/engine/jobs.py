"""Options -> jobs: every check of a run's input, before any compute, and one `Job` per trial.

`prepare(options)` resolves the task, checks the options, converts and verifies the weights
(`benchmark.weights.convert.prepare_weights`: the converted file is hashed there, once), chooses
and checks the data root, builds the config (`benchmark.tasks.config.build_config`, or the
learning check's `benchmark.engine.sanity.build_sanity_config`) and checks the output folder. Any
bad input is a `RunError` (one line: what and where) and nothing has been written or computed.
A `Job` is everything one trial's processes need; it is picklable, so spawned workers get it whole.
"""
import dataclasses
import enum
from pathlib import Path

import torch

from benchmark.engine import trials as trial_folder
from benchmark.fileio import unusable_output
from benchmark.tasks import Task, UnknownTaskError, get_task
from benchmark.tasks.config import ConfigError, WeightsSettingsError, build_config, config_digest


class RunError(Exception):
    """Bad input found before training (one line: what and where); the CLI exits 1."""


class RunKind(str, enum.Enum):
    """What a run measures: the record's `kind`. Runs of different kinds are never pooled or reused for one another."""
    FULL = "full"
    SMOKE = "smoke"  # synthetic data, a tiny schedule: the pipeline runs end to end
    SANITY = "sanity"  # the learning check: fine-tuned and evaluated on a few easy images
    EVAL_ONLY = "eval-only"  # the weights (or the last checkpoint) evaluated, nothing trained

    def __str__(self):
        return self.value


@dataclasses.dataclass
class Options:
    """What tools/run_transfer.py passes in: the user's flags, as typed (`from_args` takes argparse's Namespace)."""
    task: str
    weights: str
    num_gpus: int = 1
    num_machines: int = 1
    machine_rank: int = 0
    dist_url: str = "auto"
    trials: int = 1
    trial: int = None
    seed: int = 0
    output: str = None
    data_root: str = None
    eval_only: bool = False
    resume: bool = False
    smoke: bool = False
    sanity: bool = False  # learning check (benchmark.engine.sanity): its data, overlay and kind "sanity"
    norm: str = None
    amp: bool = False
    name: str = None
    opts: list = dataclasses.field(default_factory=list)

    @classmethod
    def from_args(cls, args) -> "Options":
        """The options of a parsed command line (its other attributes, such as --list-tasks, are not options)."""
        return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)})

    @property
    def kind(self) -> RunKind:
        """Evaluation only wins over smoke (a smoke config evaluated); --sanity combines with neither (checked)."""
        if self.eval_only:
            return RunKind.EVAL_ONLY
        if self.smoke:
            return RunKind.SMOKE
        return RunKind.SANITY if self.sanity else RunKind.FULL

    @property
    def world_size(self) -> int:
        return self.num_gpus * self.num_machines


@dataclasses.dataclass
class Job:
    """Everything a worker process needs for one trial (picklable: sent to spawned processes)."""
    task: Task
    cfg: object  # frozen CfgNode with OUTPUT_DIR, SEED, MODEL.WEIGHTS set
    data_root: str
    weights: dict  # the record's weights fields (PreparedWeights.record_fields): sha256 of the .pkl loaded, pinned
    seed: int
    trial: int
    resume: bool
    kind: RunKind
    deviations: list
    world_size: int = 1
    assumptions: list = dataclasses.field(default_factory=list)  # the task's protocol assumptions

    @property
    def eval_only(self) -> bool:
        return self.kind is RunKind.EVAL_ONLY

    @property
    def output_dir(self) -> Path:
        """The trial folder: checkpoints, config.yaml, metrics.json, and the fine-tuning record."""
        return Path(self.cfg.OUTPUT_DIR)

    @property
    def record_dir(self) -> Path:
        """Where this run's record and log go: an evaluation-only run never replaces a fine-tuning record."""
        return self.output_dir / trial_folder.EVAL_ONLY_DIR if self.eval_only else self.output_dir

    @property
    def digest(self) -> str:
        return config_digest(self.cfg)

    @property
    def protocol_digest(self) -> str:
        """The config's digest less its seed: equal for every trial of one protocol."""
        return config_digest(self.cfg, seed=False)


def prepare(opts: Options) -> list:
    """Check every input and build the per-trial jobs, before any compute; raise RunError."""
    from benchmark.engine.logs import console_follows_stdout

    console_follows_stdout()  # config building logs (detectron2's auto-scaling message)
    try:
        task = get_task(opts.task)
    except UnknownTaskError as exc:
        raise RunError(str(exc)) from None
    trials = _trials(opts)
    _check_name(opts.name)
    _check_processes(opts)
    weights = _prepared_weights(opts.weights)
    data_root = _data_root(task, opts)
    cfg, deviations = _config(task, weights, opts)
    _check_settings_fit_data(task, data_root, cfg)
    name = opts.name or weights.name
    # A sanity run's default folder is apart from the real runs' (its kind and digest differ too).
    sanity = opts.kind is RunKind.SANITY
    output = Path(opts.output) if opts.output else Path("output", *(["sanity"] if sanity else []), task.name, name)
    _check_writable(output)
    record_weights = weights.record_fields(name)
    assumptions = [str(a) for a in task.assumptions]
    # Fine-tuning always resumes an interrupted trial of the same config (trials.py says when
    # that is); --resume matters only to --eval-only, which then evaluates the last checkpoint.
    resume = opts.resume if opts.kind is RunKind.EVAL_ONLY else True
    return [Job(task, _trial_config(cfg, output / f"trial_{k}", opts.seed + k, weights.path), str(data_root),
                dict(record_weights), opts.seed + k, k, resume, opts.kind, deviations, opts.world_size,
                assumptions=assumptions)
            for k in trials]


# Far beyond any protocol's trial count (papers report 3 to 5); a trial is a whole training run.
MAX_TRIALS = 1000


def _check_name(name) -> None:
    """--name is the record's weights name, which a record may not have blank (records.results): refused
    here, not after training, when the record would be refused. An empty --name is no default either."""
    if name is not None and not name.strip():
        raise RunError(f"--name must not be blank, got {name!r}")


def _trials(opts: Options) -> list:
    if opts.trial is not None:
        if opts.trial < 0:
            raise RunError(f"--trial must be >= 0, got {opts.trial}")
        trials = [opts.trial]
    elif not 1 <= opts.trials <= MAX_TRIALS:  # one Job (a config) each, made before any runs: 10**10 is a MemoryError
        raise RunError(f"--trials must be >= 1 and at most {MAX_TRIALS}, got {opts.trials}")
    else:
        trials = list(range(opts.trials))
    if opts.seed < 0 or opts.seed + max(trials) >= 2**32:  # numpy's range; otherwise each trial fails late
        raise RunError(f"--seed must be in 0..2**32-1 for every trial (seed + trial), got {opts.seed}")
    return trials


def _check_processes(opts: Options) -> None:
    """The device and process options: refused here, not by a rendezvous that waits forever or a late CUDA error."""
    cuda = torch.cuda.is_available()
    if opts.amp and not cuda:
        raise RunError("--amp needs CUDA (detectron2's AMPTrainer trains in float16 on GPUs only)")
    if opts.norm == "SyncBN" and not cuda:
        raise RunError("--norm SyncBN needs CUDA (torch's SyncBatchNorm); use naiveSyncBN, which also syncs CPU processes")
    if opts.num_gpus < 1 or opts.num_machines < 1:
        raise RunError(f"--num-gpus and --num-machines must be >= 1, got {opts.num_gpus} and {opts.num_machines}")
    if not 0 <= opts.machine_rank < opts.num_machines:
        raise RunError(f"--machine-rank must be in 0..{opts.num_machines - 1} (--num-machines {opts.num_machines}), "
                       f"got {opts.machine_rank}")
    if opts.num_machines > 1 and (not opts.dist_url or opts.dist_url == "auto"):
        raise RunError("--num-machines > 1 needs --dist-url tcp://HOST:PORT of machine 0")
    if cuda and opts.num_gpus > torch.cuda.device_count():
        raise RunError(f"--num-gpus {opts.num_gpus} but only {torch.cuda.device_count()} GPUs are visible")
    if opts.sanity and (opts.smoke or opts.eval_only):
        raise RunError("--sanity is a fine-tuning run of its own: it cannot be combined with --smoke or --eval-only")


def _prepared_weights(spec: str):
    """`prepare_weights(spec)`, its errors as RunError; the user's spelling may carry URL secrets
    (user:password@, ?token=): only the redacted one is shown."""
    from benchmark.weights.convert import ConversionError, prepare_weights
    from benchmark.weights.download import DownloadError, redact_url

    try:
        return prepare_weights(spec)
    except (ConversionError, DownloadError, OSError, ValueError, KeyError, ImportError) as exc:
        shown = redact_url(str(spec))
        message = str(exc).replace(str(spec), shown)
        raise RunError(message if shown in message else f"weights {shown}: {message}") from None


def synthetic_root(task) -> Path:
    """The shared synthetic dataset of `task`'s family for --smoke (written once, reused), at the family's smoke size."""
    from benchmark.weights.download import cache_dir

    family = task.family
    return family.write_synthetic(cache_dir() / "synthetic" / family.name)


def _data_root(task, opts: Options) -> Path:
    """The data root of the run, its layout checked: the learning check's and --smoke's synthetic data are
    written here (once) unless --data-root is given; else $DETECTRON2_DATASETS or datasets/."""
    from benchmark.data import DatasetLayoutError, validate_layout
    from benchmark.env import default_data_root

    if opts.kind is RunKind.SANITY:
        from benchmark.engine.sanity import write_data

        try:
            data_root = write_data(task, opts.data_root)
        except (OSError, ValueError) as exc:
            raise RunError(f"synthetic {task.data_format} data of the --sanity check: {exc}") from None
    elif opts.data_root:
        data_root = Path(opts.data_root)
    elif opts.smoke:
        try:
            data_root = synthetic_root(task)
        except (OSError, ValueError) as exc:
            raise RunError(f"synthetic {task.data_format} dataset for --smoke: {exc}") from None
    else:
        data_root = default_data_root()
    try:
        validate_layout(task, data_root)
    except DatasetLayoutError as exc:
        raise RunError(str(exc)) from None
    return data_root


def _check_settings_fit_data(task, data_root, cfg) -> None:
    """What the run's settings need of its data (an episode's classes, a crop inside the images, a head's
    outputs), before compute: benchmark.data.validate_settings."""
    from benchmark.data import DatasetLayoutError, validate_settings

    try:
        validate_settings(task, data_root, cfg)
    except DatasetLayoutError as exc:
        raise RunError(str(exc)) from None


def _config(task, weights, opts: Options):
    """(frozen cfg, deviations) of the run: the protocol's, or the learning check's overlay on it."""
    if opts.kind is RunKind.SANITY:
        from benchmark.engine.sanity import build_sanity_config as build
    else:
        build = build_config
    try:
        cfg, deviations = build(task, weights.input_settings, list(opts.opts), smoke=opts.smoke,
                                num_gpus=opts.num_gpus, num_machines=opts.num_machines, norm=opts.norm, amp=opts.amp)
    except WeightsSettingsError as exc:
        raise RunError(f"weights {weights.path}: {exc}") from None
    except ConfigError as exc:
        raise RunError(str(exc)) from None
    if opts.kind is RunKind.EVAL_ONLY:
        deviations = deviations + ["evaluation only: no fine-tuning in this run"]
    return cfg, deviations


def _trial_config(cfg, output_dir: Path, seed: int, weights_path):
    """One trial's config: its folder, its seed and the converted weights it loads."""
    trial_cfg = cfg.clone()
    trial_cfg.defrost()
    trial_cfg.OUTPUT_DIR = str(output_dir)
    trial_cfg.SEED = seed
    trial_cfg.MODEL.WEIGHTS = str(weights_path)
    trial_cfg.freeze()
    return trial_cfg


def _check_writable(output: Path) -> None:
    """Refuse an output folder that cannot be made or written, before any compute and without creating it
    (benchmark.fileio.unusable_output says when): one line naming --output."""
    problem = unusable_output(output, "--output")
    if problem:
        raise RunError(problem)
