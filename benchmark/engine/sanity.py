"""Learning checks (`tools/run_transfer.py --sanity`): the task's own pipeline must learn a few easy images.

RULE: a sanity run is the task's code path unchanged -- its config's model, loss, mapper, label
handling and official evaluator, the weights converted by benchmark.weights -- with the overrides
of ONE overlay per family (configs/sanity/<family>.yaml: image size, ROIs per image, iterations,
LR; nothing else) and ONE data set per family (`CHECKS`): a few synthetic images of large,
distinctive objects written in the dataset's real on-disk format (benchmark.data.synthetic,
sanity=True), whose test split holds the training images again (the rule is
benchmark.data.synthetic.test_split_copies_training). Fine-tuned on them and evaluated
on them, the task's metric must reach the family's threshold (at least it; at most it for an error,
Task.lower_is_better: MAFL's inter-ocular error); a class id off by one, boxes in the wrong format,
label PNGs with shifted ids or landmarks with x and y swapped keep it far from it (tests/learning and
tests/landmarks prove each).
The tests and the CLI (benchmark.cli.run_transfer, which prints the verdict) use this module alone,
so what CI checks is what a user runs.

A sanity run is never mixed with real runs: its record has kind "sanity" (the leaderboard never
pools kinds), its config (and so its digest) is not a protocol's, its deviations say what it is,
and its default folder is output/sanity/<task>/<weights name>, apart from the real runs'.
"""
import dataclasses
from pathlib import Path

from benchmark import CONFIG_DIR
from benchmark.tasks.config import ConfigError

# The landmark check (family mafl): its faces, its error bound, and the error of the mean shape on those
# faces (tests/learning/test_landmark_learning.py recomputes it from the data).
MAFL_IMAGES = 8
MAFL_THRESHOLD = 20.0
MAFL_MEAN_SHAPE_ERROR = 49.5
EXIT_BELOW_THRESHOLD = 3  # tools/run_transfer.py --sanity: 0 passed, 1 bad input or failed run, 2 usage, 3 this


@dataclasses.dataclass(frozen=True)
class SanityCheck:
    """One family's learning check: its overlay, its data and the score it must reach."""
    family: str
    overlay: str  # file under configs/sanity/
    metric: str  # "group/name" of the task's evaluator
    threshold: float  # the check passes at metric >= threshold (<= for an error: `comparison`)
    num_images: int  # training images (the test split holds them again: benchmark.data.synthetic)
    image_size: tuple  # (height, width)
    chance: str  # why the threshold cannot be reached by chance (said in the test and the deviation)

    @property
    def overlay_path(self) -> Path:
        return CONFIG_DIR / "sanity" / self.overlay

    def comparison(self, task) -> str:
        """">=" when a higher value of the check's metric is better for `task` (Task.higher_is_better), else "<="."""
        return ">=" if task.higher_is_better(self.metric) else "<="

    def passes(self, value: float, task) -> bool:
        """Whether `value` of the metric passes: at least the threshold, or at most it for a lower-is-better one."""
        return value >= self.threshold if task.higher_is_better(self.metric) else value <= self.threshold


CHECKS = {
    "voc": SanityCheck(
        family="voc", overlay="detection.yaml", metric="bbox/AP50", threshold=90.0, num_images=4,
        image_size=(224, 288),
        chance="VOC AP50 is the mean over all 20 classes, each drawn 1 time in 4 images (5 objects each): "
               "every class must be found and named right, with IoU >= 0.5, ranked above the false positives"),
    "coco": SanityCheck(
        family="coco", overlay="detection.yaml", metric="segm/AP50", threshold=80.0, num_images=4,
        image_size=(224, 288),
        chance="COCO mask AP50 is the mean over the 4 categories of 4 images (each in every image): a mask "
               "must overlap its object at IoU >= 0.5 under the right category, ranked above false positives"),
    "cityscapes": SanityCheck(
        family="cityscapes", overlay="cityscapes.yaml", metric="sem_seg/mIoU", threshold=80.0, num_images=2,
        image_size=(256, 512),
        chance="Cityscapes mIoU is the mean IoU over the 9 classes present (5 regions, 4 objects in each image); "
               "a constant or shuffled prediction scores IoU <= the largest class's share (~35%) on one class, "
               "0 on the others"),
    "imagenet": SanityCheck(
        family="imagenet", overlay="imagenet_linear.yaml", metric="cls/top1", threshold=75.0, num_images=8,
        image_size=(48, 48),
        chance="4 classes of 2 images each, told apart by colour: chance top-1 is 25% (a constant prediction too); "
               "75% needs 6 of the 8 right, which guessing reaches with probability 0.4% (binomial, p = 1/4)"),
    # The few-shot evaluation trains nothing shared: each episode's head learns its own 5x5 support images and
    # is scored on 5x5 other query images of the same colour classes (the test split is the episodes' pool;
    # benchmark.data.miniimagenet.synthesize).
    "miniimagenet": SanityCheck(
        family="miniimagenet", overlay="fewshot_miniimagenet.yaml", metric="fewshot/5shot", threshold=90.0,
        num_images=10, image_size=(84, 84),
        chance="5-way episodes: chance accuracy is 20% (a constant prediction too); 90% over 12 episodes of 25 "
               "queries each is 270 of 300 right, which guessing reaches with probability < 1e-100 (binomial, "
               "p = 1/5); support labels shuffled across the support set leave the head nothing to learn"),
    # An error: the check passes at iod_error <= threshold (Task.lower_is_better).
    "mafl": SanityCheck(
        family="mafl", overlay="mafl_landmarks.yaml", metric="landmarks/iod_error", threshold=MAFL_THRESHOLD,
        num_images=MAFL_IMAGES, image_size=(218, 178),
        chance=f"each synthetic face is shifted (+-32 px), scaled (0.75-1.25) and turned (+-14 degrees) at random, so no "
               f"one shape fits them all: on these {MAFL_IMAGES} faces the mean-shape predictor (one constant shape for all) "
               f"errs by {MAFL_MEAN_SHAPE_ERROR:g}% of the eye distance, and x/y-swapped training landmarks keep the "
               f"error far above the threshold of {MAFL_THRESHOLD:g}%"),
}


class SanityError(ConfigError):
    """A sanity run that cannot be set up (the runner reports it as bad input: exit 1)."""


def check_for(task) -> SanityCheck:
    """The learning check of `task` (a Task): its family's."""
    return CHECKS[task.data_format]


def write_data(task, root=None) -> Path:
    """Write (once; reused when complete) the check's synthetic data under `root`; return the root.

    Default root: the cache's synthetic/sanity-<family> (as --smoke's data).
    """
    check = check_for(task)
    if root is None:
        from benchmark.weights.download import cache_dir

        root = cache_dir() / "synthetic" / f"sanity-{check.family}"
    from benchmark.data import get_family

    return get_family(check.family).write_synthetic(root, num_train=check.num_images, image_size=check.image_size,
                                                    sanity=True)


def overlay_pairs(task) -> list:
    """The overlay as flat KEY VALUE pairs (for benchmark.tasks.config.build_config's options)."""
    from detectron2.config import CfgNode

    cfg = CfgNode.load_cfg(check_for(task).overlay_path.read_text())
    cfg.pop("VERSION", None)
    pairs = []

    def walk(node, prefix):
        for key, value in node.items():
            if isinstance(value, CfgNode):
                walk(value, f"{prefix}{key}.")
            else:
                pairs.extend([f"{prefix}{key}", value])

    walk(cfg, "")
    return pairs


def build_sanity_config(task, weights_settings=None, opts=(), **kwargs):
    """(frozen cfg, deviations) of the sanity run of `task`: build_config with the overlay applied first.

    The overlay's keys are not listed one by one as deviations; one line says it is a sanity run.
    Options the user gives (`opts`) come after the overlay and are listed as usual.
    """
    from benchmark.tasks.config import build_config

    check = check_for(task)
    pairs = overlay_pairs(task)
    overlay_keys = set(pairs[::2]) - set(list(opts)[::2])
    cfg, deviations = build_config(task, weights_settings, pairs + list(opts), **kwargs)
    deviations = [d for d in deviations if d.partition(":")[0] not in overlay_keys]
    world, batch = kwargs.get("num_gpus", 1) * kwargs.get("num_machines", 1), int(cfg.SOLVER.IMS_PER_BATCH)
    if world > 1 and batch % world:  # else the world-size rule would scale LR and batch: another check
        raise SanityError(f"the sanity batch of {batch} images does not split over {world} processes; run it on "
                          f"{' or '.join(str(n) for n in range(1, batch + 1) if batch % n == 0)} process(es)")
    head = (f"sanity run (learning check): fine-tuned and evaluated on the same {check.num_images} synthetic images "
            f"(configs/sanity/{check.overlay}); passes at {check.metric} {check.comparison(task)} {check.threshold:g}; "
            "not comparable to references")
    return cfg, [head] + deviations


def score_of(record, task):
    """(score, passed) of a sanity run's record (records.results.Record, None when there is none): its
    check's metric against the threshold; score None when the run failed or did not report the metric."""
    check = check_for(task)
    group, _, name = check.metric.partition("/")
    value = record.metrics.get(group, {}).get(name) if record is not None else None
    if value is None or record.status != "finished":
        return None, False
    value = float(value)
    return value, check.passes(value, task)
