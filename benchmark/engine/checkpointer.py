"""SafeCheckpointer: detectron2's DetectionCheckpointer with our safe loaders and atomic saves."""
import errno
import shutil

import torch
from detectron2.checkpoint import DetectionCheckpointer

from benchmark.fileio import atomic_write


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

    def _load_file(self, filename):
        if filename.endswith(".pkl"):
            from benchmark.weights.loading import load_converted

            data = dict(load_converted(filename))
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
