"""SafeCheckpointer: detectron2's DetectionCheckpointer with our safe loaders and atomic saves.

RULE (pinned weights): the converted weights a run loads are the very bytes that were checked when
they were prepared. The runner pins MODEL.WEIGHTS to the sha256 it had then (`pinned_weights`);
the checkpointer hashes the bytes it actually reads and refuses a file that differs (swapped or
edited between preparation and loading), so the record's `weights.sha256` is what was loaded.
"""
import contextlib
import errno
import hashlib
import os
import shutil

import torch
from detectron2.checkpoint import DetectionCheckpointer

from benchmark.fileio import atomic_write

_PINNED = {}  # absolute path of a converted weights file -> the sha256 it must have when read


class WeightsChangedError(RuntimeError):
    """MODEL.WEIGHTS is not the file that was prepared (its bytes differ from the pinned sha256)."""


@contextlib.contextmanager
def pinned_weights(path, sha256: str):
    """While active, the checkpointers of this process load `path` only if its bytes hash to `sha256`."""
    key = os.path.abspath(os.fspath(path))
    before = _PINNED.get(key)
    _PINNED[key] = sha256
    try:
        yield
    finally:
        if before is None:
            _PINNED.pop(key, None)
        else:
            _PINNED[key] = before


def _sha256_of_fd(fd: int) -> str:
    digest = hashlib.sha256()
    os.lseek(fd, 0, os.SEEK_SET)
    while chunk := os.read(fd, 1 << 20):
        digest.update(chunk)
    os.lseek(fd, 0, os.SEEK_SET)
    return digest.hexdigest()


def _load_pinned(filename: str, expected: str):
    """load_converted of the file `filename` names now, after checking its bytes hash to `expected`.

    The file is opened once; the hash and the unpickling read that same open file (through
    /proc/self/fd where there is one), so a file renamed over it after the check is not read.
    """
    from benchmark.weights.errors import ConversionError
    from benchmark.weights.loading import load_converted

    fd = os.open(filename, os.O_RDONLY)
    try:
        actual = _sha256_of_fd(fd)
        if actual != expected:
            raise WeightsChangedError(
                f"MODEL.WEIGHTS {filename}: its bytes have sha256 {actual[:12]}..., not {expected[:12]}... as when it "
                "was prepared (the file was replaced or changed since); not loaded. Run again to prepare it anew")
        same_file = f"/proc/self/fd/{fd}"
        try:
            return load_converted(same_file if os.path.exists(same_file) else filename)
        except ConversionError as exc:
            raise ConversionError(filename, exc.problem) from None
    finally:
        os.close(fd)


class AtomicWritePathManager:
    """iopath's PathManager, except that files opened for writing are written atomically.

    fvcore writes checkpoints and the `last_checkpoint` pointer in place: a job killed or a disk
    filling up mid-write leaves a torn file under the final name, and `--resume` then fails on it.
    Through `atomic_write` a reader sees the previous file or the complete new one. The
    checkpointer's `path_manager` is a public attribute meant to be replaced (fvcore's Checkpointer).
    """

    def __init__(self, inner):
        self.inner = inner

    def open(self, path, mode="r", **kwargs):
        if "w" in mode:
            return atomic_write(path, mode)
        return self.inner.open(path, mode, **kwargs)

    def __getattr__(self, name):
        return getattr(self.inner, name)


class SafeCheckpointer(DetectionCheckpointer):
    """DetectionCheckpointer that never unpickles arbitrary code and never leaves a torn file.

    detectron2 `pickle.load`s .pkl files, which runs whatever they contain; the suite's converter
    writes .pkl files that `benchmark.weights.loading.load_converted` reads with a restricted
    unpickler. Every other file (our own training checkpoints) goes through torch.load with
    weights_only=True, said explicitly so that $TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD cannot turn it
    off. `_load_file` is the override point fvcore documents for reading other formats.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.path_manager = AtomicWritePathManager(self.path_manager)

    def save(self, name, **kwargs):
        try:
            super().save(name, **kwargs)
        except (OSError, RuntimeError) as exc:
            # torch's zip writer turns a failed write (full disk, quota) into an opaque RuntimeError
            # ("unexpected pos"); say what happened and how much room there is.
            free = shutil.disk_usage(self.save_dir).free / 2**20
            detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else " ".join(str(exc).split())
            raise OSError(getattr(exc, "errno", None) or errno.EIO,
                          f"checkpoint {name}.pth not saved in {self.save_dir} ({detail}; {free:.0f} MiB free there); "
                          "the previous checkpoint is intact") from None

    def _load_model(self, checkpoint):
        # detectron2's own override point for matching a checkpoint to the model; ours also refuses
        # converted weights that do not fit (check_backbone_load). Our training checkpoints
        # (resuming) hold the whole model under its own names and load strictly enough as they are.
        converted = bool(checkpoint.get("matching_heuristics")) and "__author__" in checkpoint
        given = list(checkpoint["model"])
        incompatible = super()._load_model(checkpoint)  # consumes checkpoint["model"]
        if converted:
            # detectron2 matches a file's name to the model name it is a dot-separated suffix of
            # (res5.0.conv1.weight -> roi_heads.res5.0.conv1.weight); a name that is the suffix of
            # nothing was dropped with a log line only.
            model_keys = list(self.model.state_dict())
            unmatched = [k for k in given if not any(m == k or m.endswith("." + k) for m in model_keys)]
            check_backbone_load(len(given), len(given) - len(unmatched), incompatible)
        return incompatible

    def _load_file(self, filename):
        if filename.endswith(".pkl"):
            from benchmark.weights.loading import load_converted

            expected = _PINNED.get(os.path.abspath(filename))
            data = dict(_load_pinned(filename, expected) if expected else load_converted(filename))
            data.setdefault("matching_heuristics", True)
            self.logger.info("Reading converted weights from '%s' (%s)", filename, data["__author__"])
            return data
        if filename.endswith(".pyth"):  # detectron2 would torch.load it without weights_only
            raise ValueError(f"{filename}: pycls .pyth files are not read; convert the checkpoint with tools/convert.py")
        with self.path_manager.open(filename, "rb") as f:
            loaded = torch.load(f, map_location=torch.device("cpu"), weights_only=True)
        # As DetectionCheckpointer does for a plain .pth: our own checkpoints hold "model" (and
        # optimizer, scheduler, iteration); a bare state dict is a model.
        return loaded if "model" in loaded else {"model": loaded}


class WeightsLoadError(RuntimeError):
    """Converted weights that do not fit the model: backbone tensors left unused, missing or misshapen."""


# Model parameters no pretrained backbone provides: the detection and segmentation heads, and the
# extra norm after res5 of the C4 protocol (benchmark.tasks.modeling). Everything else under the
# backbone (and res5, which R50-C4 runs in its ROI head) must come from the weights.
_BACKBONE_PREFIXES = ("backbone.", "roi_heads.res5.")
_NOT_PRETRAINED = ("roi_heads.res5.norm.",)


def check_backbone_load(given: int, used: int, incompatible) -> None:
    """Refuse a load of converted weights that leaves any of them unused or any backbone tensor empty.

    detectron2 matches names by suffix and logs what it could not match; a ResNet-101 file on a
    ResNet-50 model, or a layout misread by a converter, would then fine-tune from partly random
    weights with exit 0. `given`/`used`: converted tensors in the file / matched to the model.
    """
    problems = []
    if used < given:
        problems.append(f"{given - used} of its {given} tensors match nothing in the model")
    missing = sorted(k for k in incompatible.missing_keys
                     if k.startswith(_BACKBONE_PREFIXES) and not k.startswith(_NOT_PRETRAINED))
    if missing:
        shown = ", ".join(missing[:3]) + (f", ... ({len(missing) - 3} more)" if len(missing) > 3 else "")
        problems.append(f"{len(missing)} backbone tensors of the model are not in it ({shown})")
    if incompatible.incorrect_shapes:
        key, have, want = incompatible.incorrect_shapes[0]
        problems.append(f"{len(incompatible.incorrect_shapes)} tensors have the wrong shape ({key}: {tuple(have)} "
                        f"in the weights, {tuple(want)} in the model)")
    if problems:
        raise WeightsLoadError("the weights do not fit the model: " + "; ".join(problems)
                               + " (a checkpoint of another architecture, or converted from another layout)")
