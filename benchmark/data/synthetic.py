"""Writing a family's synthetic dataset under a data root: safely, once, and the learning-check rule.

Small synthetic datasets in the exact on-disk formats of the real ones let every task run end to
end on a CPU (`--smoke`, tests, `make demo`) through the *same* loaders and evaluators as the real
data: after `write(VOC, root)`, `root` is a data root for voc_2007_trainval etc. What each tree
holds is the family's (`DatasetFamily.synthesize`, in benchmark.data.voc, .coco, .cityscapes,
.imagenet); this module decides where and when it is written, and the rule they all follow for
learning checks (`test_split_copies_training`).

Writing is safe when several processes ask for the same root at once (trials, ranks, tests): the
writer takes a lock, builds the tree in a temporary folder beside its destination, renames it into
place and then drops a completion marker; a root already complete with the same parameters is
returned as it is.
"""
import contextlib
import fcntl
import json
import os
import shutil
import tempfile
from pathlib import Path

from benchmark.fileio import write_json_atomic

_OWN_MARK = ".synthetic"  # inside each top folder we wrote: tells it apart from a real dataset


def test_split_copies_training(params) -> bool:
    """RULE (learning checks, benchmark.engine.sanity): with `sanity`, the test split holds exact copies of
    the training images and annotations (under the test split's own ids and folders), so that a model
    fine-tuned on them and evaluated on the same images must score high -- unless a bug is in the way.
    Its drawn data also differs: only large objects, every class of the split drawn in few images.
    Each family's writer asks this for its test split; `write` makes both splits the same size."""
    return bool(params.get("sanity"))


test_split_copies_training.__test__ = False  # a rule, not a pytest test (its name starts with "test")


@contextlib.contextmanager
def _locked(path):
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def write(family, root, *, num_train=8, num_test=None, image_size=None, seed=0, sanity=False, layout=None) -> Path:
    """Write `family`'s synthetic dataset (a DatasetFamily) under `root`; return `root`.

    The trees are those of the real datasets (see datasets.md), so `register_datasets(task, root)`
    resolves the protocol dataset names to them. `num_train` images go to each training split
    (VOC2007 and VOC2012 trainval, COCO train2017, Cityscapes train), `num_test` (default 4) to
    the test split (VOC2007 test, COCO val2017, Cityscapes val; ImageNet: train and val in all,
    dealt round its min(4, num_test) classes); images are `image_size` = (height, width), by
    default the family's smoke image size. `sanity`: the data of a learning check
    (`test_split_copies_training`): the test split is a copy of the training split, so `num_test`
    is `num_train` (given otherwise, it is refused). `layout`: the on-disk layout of a family that has
    several (miniimagenet: "images" or "imagenet"; benchmark.data.miniimagenet); a top folder the writer
    adds beyond the family's `tops` (miniimagenet's "imagenet" layout writes imagenet/train) must not exist.
    """
    if sanity and num_test is None:
        num_test = num_train
    if num_test is None:
        num_test = 4
    if image_size is None:
        image_size = family.smoke_image_size
    h, w = (int(s) for s in image_size)
    if h < 32 or w < 32 or num_train < 2 or num_test < 2:
        # 2: detectron2's VOC loader cannot read a one-line image list (np.loadtxt gives a 0-d array)
        raise ValueError("synthetic datasets need images of at least 32x32 and >= 2 images per split")
    if sanity and num_test != num_train:
        raise ValueError("a learning check's test split copies its training split: num_test must equal num_train")
    data_format = family.name
    params = {"format": data_format, "num_train": int(num_train), "num_test": int(num_test),
              "image_size": [h, w], "seed": int(seed)}
    if sanity:  # only then: the markers of the other datasets stay as they were
        params["sanity"] = True
    if layout is not None:  # likewise
        params["layout"] = str(layout)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    marker = root / f".synthetic_{data_format}.json"
    if marker.exists() and _recorded(marker) == params:
        return root  # complete (the marker is written last, atomically): no lock needed, even read-only
    with _locked(root / ".synthetic.lock"):
        if marker.exists():
            recorded = _recorded(marker)
            if recorded == params:
                return root
            raise ValueError(f"{root} already holds a synthetic {data_format} dataset written with "
                             f"{recorded}, not {params}; choose another folder")
        for top in family.tops:
            if (root / top).exists():
                if not (root / top / _OWN_MARK).exists():
                    raise FileExistsError(f"{root / top} exists and is not a synthetic dataset; "
                                          "refusing to write over it")
                shutil.rmtree(root / top)  # left by a writer that died before its marker
        tmp = Path(tempfile.mkdtemp(prefix=f".synthetic-{data_format}-", dir=root))
        try:
            family.synthesize(tmp, params)
            extra = sorted(p.name for p in tmp.iterdir() if p.is_dir() and p.name not in family.tops)
            for top in extra:  # another family's top (a layout that shares it): never written over
                if (root / top).exists():
                    raise FileExistsError(f"{root / top} exists; the synthetic {data_format} data in layout "
                                          f"{layout!r} writes its own {top}/: choose another folder")
            for top in (*family.tops, *extra):
                (tmp / top / _OWN_MARK).write_text(json.dumps(params) + "\n")
                os.rename(tmp / top, root / top)
            write_json_atomic(marker, params)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return root


def _recorded(marker: Path):
    """The parameters a completion marker records. This suite writes it atomically, so one that does not
    parse was torn or written by something else: refused naming it, as the dataset beside it is unknown."""
    try:
        return json.loads(marker.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{marker}: the completion marker of a synthetic dataset is not valid JSON ({e}), so what "
                         f"the folder holds is unknown; delete it and the dataset folders beside it, or choose another "
                         f"folder") from None
