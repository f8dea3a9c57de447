"""Training data order as a function of the global batch index, never of the process count.

RULE: the image at position k of global batch i (global sample index g = i * B + k, with
B = SOLVER.IMS_PER_BATCH over all processes) is `GlobalOrder(size, seed).index(g)`, whatever the
number of processes and whatever ran before: g // size is the epoch, and each epoch is the
permutation of the dataset seeded by (seed, epoch). Process r of W takes positions
r*B/W ... (r+1)*B/W - 1 of every global batch, so 1 process x 4 images and 2 processes x 2 images
train on the same images in the same global batches. A run resumed at iteration s starts at
global batch s: it continues where the interrupted run stopped, not at the start of the stream.

The sampler yields global sample indices g; `GlobalOrderDataset` turns g into the dataset's record
(with g attached under GLOBAL_INDEX_KEY), and `benchmark.engine.mapper.GlobalSeededMapper` seeds
each image's augmentation from (seed, g). detectron2's TrainingSampler instead slices one infinite
stream by rank (`islice(stream, rank, None, world_size)`) and starts it again at 0 on every run.

NOT invariant to the process count (tests/engine/test_invariance.py isolates them): which anchors
and proposals the RPN and ROI heads sample per image (each process's torch RNG); the padding of a
process's batch to its largest image when image sizes differ; each process's mean loss over its own
ROIs (equal to the mean over all only when every image has as many); and running_var, unbiased on
one process (torch's BatchNorm), biased on several (detectron2's NaiveSyncBatchNorm).
"""
import hashlib

import torch
from detectron2.utils import comm
from torch.utils.data import Dataset, Sampler

GLOBAL_INDEX_KEY = "benchmark_global_index"  # the record's global sample index, for the mapper


def derived_seed(purpose: str, *numbers: int, bits: int = 63) -> int:
    """A seed for `purpose` (e.g. "order", "augment") from integers, the same on every platform and process."""
    text = ":".join([purpose, *(str(int(n)) for n in numbers)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") % (1 << bits)


class GlobalOrder:
    """The global sample stream: index(g) is the dataset index of global sample g (see the module's rule)."""

    def __init__(self, size: int, seed: int, shuffle: bool = True):
        if not isinstance(size, int) or size <= 0:
            raise ValueError(f"the training dataset must hold at least one image, got size {size!r}")
        self.size, self.seed, self.shuffle = size, int(seed), bool(shuffle)
        self._cached = (None, None)  # (epoch, its indices): a process reads one epoch after the other

    def epoch(self, epoch: int) -> list:
        """The dataset indices of epoch `epoch`, in order."""
        if self._cached[0] != epoch:
            if self.shuffle:
                generator = torch.Generator()
                generator.manual_seed(derived_seed("order", self.seed, epoch))
                indices = torch.randperm(self.size, generator=generator).tolist()
            else:
                indices = list(range(self.size))
            self._cached = (epoch, indices)
        return self._cached[1]

    def index(self, g: int) -> int:
        if g < 0:
            raise IndexError(f"global sample index must be >= 0, got {g}")
        return self.epoch(g // self.size)[g % self.size]


class GlobalBatchSampler(Sampler):
    """This process's global sample indices, global batch after global batch, from `start_iter` on (infinite).

    `total_batch_size` is B over all processes; each of the `world_size` processes takes B / world_size
    consecutive positions of every global batch (rank r: r*B/W ... (r+1)*B/W - 1). `start_iter` can be
    set until iteration begins (`set_start_iter`): the trainer learns it when it resumes, after the
    data loader is built.
    """

    def __init__(self, total_batch_size: int, *, start_iter: int = 0, rank: int = None, world_size: int = None):
        self.rank = comm.get_rank() if rank is None else int(rank)
        self.world_size = comm.get_world_size() if world_size is None else int(world_size)
        if total_batch_size <= 0 or total_batch_size % self.world_size:
            raise ValueError(f"SOLVER.IMS_PER_BATCH {total_batch_size} must be a positive multiple of the "
                             f"number of processes ({self.world_size})")
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank {self.rank} outside 0..{self.world_size - 1}")
        self.total_batch_size = int(total_batch_size)
        self.batch_size = self.total_batch_size // self.world_size
        self.set_start_iter(start_iter)

    def set_start_iter(self, start_iter: int) -> None:
        if start_iter < 0:
            raise ValueError(f"start iteration must be >= 0, got {start_iter}")
        self.start_iter = int(start_iter)

    def positions(self, iteration: int) -> range:
        """The global sample indices this process trains on at `iteration`."""
        first = iteration * self.total_batch_size + self.rank * self.batch_size
        return range(first, first + self.batch_size)

    def __iter__(self):
        iteration = self.start_iter
        while True:
            yield from self.positions(iteration)
            iteration += 1


class GlobalOrderDataset(Dataset):
    """Map-style dataset indexed by global sample index: item g is record `order.index(g)` of `dataset`.

    The record is a fresh dict with g under GLOBAL_INDEX_KEY (for the mapper's per-image seed).
    """

    def __init__(self, dataset, order: GlobalOrder):
        if len(dataset) != order.size:
            raise ValueError(f"the order is of {order.size} records, the dataset has {len(dataset)}")
        self.dataset, self.order = dataset, order

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, g):
        record = dict(self.dataset[self.order.index(int(g))])
        record[GLOBAL_INDEX_KEY] = int(g)
        return record
