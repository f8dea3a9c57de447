"""FewShotTrainer: few-shot recognition (fewshot_miniimagenet) on frozen features, episode by episode.

The protocol (configs/fewshot_miniimagenet.yaml cites it; the assumption `fewshot-protocol`) is
CloserLookFewShot's Baseline: the converted backbone frozen and in eval mode
(benchmark.tasks.fewshot.FewShotFeatures), pooled res5 features of the novel classes' images
(Resize to RESIZE x RESIZE, CenterCrop CROP, the checkpoint's mean/std), then per episode a fresh
`nn.Linear(feature_dim, WAYS)` trained EPOCHS passes over a random permutation of the support set in
batches of BATCH (SGD with LR, MOMENTUM, DAMPENING, WEIGHT_DECAY, cross-entropy) and scored on the
queries. BENCHMARK.FEWSHOT.HEAD "rfs" (`--head rfs`): RFS's scikit-learn LogisticRegression on
L2-normalised features instead.

It is driven by the worker as the other trainers are (benchmark.engine.worker): `resume_or_load`,
`start_iter`/`max_iter` (episodes), `register_hooks`, `train()` -> metrics, `evaluate_only(cfg, resume)`,
`RESUME_EXACT`/`RESUME_NOTE`.

RULES
- Episodes: episode e of shot count s is a function of (SEED, s, e) only (`episode_rng`,
  benchmark.engine.sampler.derived_seed): its classes, its support and query images, the head's
  initialisation and its epochs' permutations. Episodes are dealt round the trial's processes (e
  -> rank e % world) and, within a process, over BENCHMARK.FEWSHOT.WORKERS local processes, each head
  trained on one thread; any split gives the same numbers.
- Features are extracted once per run folder: images in chunks of IMS_PER_BATCH / PROTOCOL_WORLD_SIZE
  (the same chunks whatever the world size), chunk k on rank k % world, gathered on every rank; rank 0
  writes them to `fewshot_features.npz` (atomically; numpy arrays only, read with allow_pickle=False),
  keyed by the weights' sha256, the preprocessing and the image list. A later run in the same folder
  with the same key reads them instead of extracting again; any other key extracts again.
- Metrics: per shot count s, "<s>shot" = the mean query accuracy over the episodes in percent, and
  "<s>shot_ci95" = 1.96 * std / sqrt(episodes) (numpy std, ddof 0), as CloserLookFewShot reports it.
  Rank 0 writes every episode's accuracy to `episodes.json` (atomically).
"""
import hashlib
import json
import logging
import math
import os
import time

import numpy as np
import torch
import torchvision.transforms as T
from detectron2.data import DatasetCatalog
from detectron2.engine import TrainerBase
from detectron2.modeling import build_model
from detectron2.utils import comm
from detectron2.utils.events import EventStorage
from PIL import Image

from benchmark.engine.checkpointer import SafeCheckpointer
from benchmark.engine.sampler import derived_seed
from benchmark.fileio import atomic_write, write_json_atomic
from benchmark.tasks.fewshot import FewShotFeatures  # noqa: F401  (registers the model build_model names)
from benchmark.tasks.registry import INTERVAL_SUFFIX

logger = logging.getLogger(__name__)

FEATURES_NAME = "fewshot_features.npz"
EPISODES_NAME = "episodes.json"
GROUP = "fewshot"


def is_fewshot(cfg) -> bool:
    return cfg.MODEL.META_ARCHITECTURE == "FewShotFeatures"


# ----------------------------------------------------------------------------- features

def preprocessing(cfg) -> dict:
    """What the features depend on besides the weights and the images (part of the cache key)."""
    f = cfg.BENCHMARK.FEWSHOT
    return {"resize": int(f.RESIZE), "crop": int(f.CROP), "format": cfg.INPUT.FORMAT,
            "pixel_mean": [float(v) for v in cfg.MODEL.PIXEL_MEAN], "pixel_std": [float(v) for v in cfg.MODEL.PIXEL_STD],
            "depth": int(cfg.MODEL.RESNETS.DEPTH), "stride_in_1x1": bool(cfg.MODEL.RESNETS.STRIDE_IN_1X1)}


def _sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def cache_key(cfg, files) -> str:
    """The features' key: sha256 of the weights file, the preprocessing and the image list, as JSON."""
    listing = hashlib.sha256("\n".join(files).encode()).hexdigest()
    return json.dumps({"weights_sha256": _sha256_file(cfg.MODEL.WEIGHTS), "preprocessing": preprocessing(cfg),
                       "images_sha256": listing}, sort_keys=True)


def read_cached_features(path, key):
    """The cached feature matrix of `path` when its key is `key`, else None (numpy arrays only, no pickle)."""
    if not os.path.isfile(path):
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            if str(data["key"]) != key:
                return None
            return np.array(data["features"])
    except (OSError, ValueError, KeyError) as exc:
        logger.warning("feature cache %s unreadable (%s): extracting again", path, exc)
        return None


def _load_image(path, transform, bgr):
    with Image.open(path) as im:
        arr = np.array(transform(im.convert("RGB")), dtype=np.uint8)
    if bgr:
        arr = np.ascontiguousarray(arr[:, :, ::-1])
    return torch.from_numpy(arr).permute(2, 0, 1)


def extract_features(model, cfg, files) -> np.ndarray:
    """N x C float32 features of `files` (module's rule: fixed chunks dealt round the ranks, gathered)."""
    f = cfg.BENCHMARK.FEWSHOT
    transform = T.Compose([T.Resize((int(f.RESIZE), int(f.RESIZE))), T.CenterCrop(int(f.CROP))])
    chunk = max(1, int(cfg.SOLVER.IMS_PER_BATCH) // int(cfg.BENCHMARK.PROTOCOL_WORLD_SIZE))
    starts = list(range(0, len(files), chunk))
    rank, world = comm.get_rank(), comm.get_world_size()
    mine = {}
    t0 = time.perf_counter()
    for k in range(rank, len(starts), world):
        batch = torch.stack([_load_image(p, transform, cfg.INPUT.FORMAT == "BGR")
                             for p in files[starts[k]:starts[k] + chunk]])
        mine[k] = model(batch).cpu().numpy().astype(np.float32)
    parts = {}
    for gathered in comm.all_gather(mine):
        parts.update(gathered)
    logger.info("few-shot: features of %d images extracted in %.1f s", len(files), time.perf_counter() - t0)
    return np.concatenate([parts[k] for k in range(len(starts))])


def features_of(model, cfg, files) -> np.ndarray:
    """The features of `files`: the run folder's cache when its key matches, else extracted (rank 0 caches them)."""
    path = os.path.join(cfg.OUTPUT_DIR, FEATURES_NAME)
    key = cache_key(cfg, files)
    cached = read_cached_features(path, key)
    hit = comm.all_gather(cached is not None)
    if all(hit):
        logger.info("few-shot: features read from %s", path)
        return cached
    feats = extract_features(model, cfg, files)
    if comm.is_main_process():
        with atomic_write(path) as out:
            np.savez(out, features=feats, key=np.array(key))
    comm.synchronize()
    return feats


# ----------------------------------------------------------------------------- episodes

def episode_rng(seed: int, shot: int, episode: int) -> np.random.Generator:
    """The random stream of one episode: its draw, head initialisation and permutations (module's rule)."""
    return np.random.default_rng(derived_seed("fewshot-episode", seed, shot, episode))


def support_labels(ways: int, shot: int) -> np.ndarray:
    """The support set's labels: class c of the episode for its images c*shot .. (c+1)*shot - 1."""
    return np.repeat(np.arange(ways), shot)


def draw_episode(labels: np.ndarray, ways: int, shot: int, queries: int, rng):
    """(support indices, query indices, query labels): `ways` classes, then `shot` + `queries` images of each."""
    classes = np.unique(labels)
    if len(classes) < ways:
        raise ValueError(f"the test split has {len(classes)} classes, an episode needs {ways}")
    chosen = rng.choice(classes, ways, replace=False)
    support, query = [], []
    for c in chosen:
        pool = np.flatnonzero(labels == c)
        if len(pool) < shot + queries:
            raise ValueError(f"class {c} has {len(pool)} images, an episode needs {shot} + {queries}")
        picked = rng.choice(pool, shot + queries, replace=False)
        support.append(picked[:shot])
        query.append(picked[shot:])
    return np.concatenate(support), np.concatenate(query), np.repeat(np.arange(ways), queries)


class StepCounter:
    """How many optimizer steps the baseline heads took in this process (tests read it)."""
    steps = 0


def baseline_head(zs, ys, zq, params, rng):
    """CloserLookFewShot's Baseline: a fresh linear layer, EPOCHS passes of SGD over permutations; query predictions."""
    torch.manual_seed(int(rng.integers(2**62)))
    zs, zq = torch.from_numpy(zs), torch.from_numpy(zq)
    ys = torch.from_numpy(ys.astype(np.int64))
    head = torch.nn.Linear(zs.shape[1], params["ways"])
    opt = torch.optim.SGD(head.parameters(), lr=params["lr"], momentum=params["momentum"],
                          dampening=params["dampening"], weight_decay=params["weight_decay"])
    n, batch = len(zs), params["batch"]
    for _ in range(params["epochs"]):
        order = torch.from_numpy(rng.permutation(n))
        for i in range(0, n, batch):
            ids = order[i:i + batch]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(head(zs[ids]), ys[ids]).backward()
            opt.step()
            StepCounter.steps += 1
    with torch.no_grad():
        return head(zq).argmax(1).numpy()


def rfs_head(zs, ys, zq, params, rng):
    """RFS's logistic regression on L2-normalised features (lbfgs is multinomial for several classes)."""
    from sklearn.linear_model import LogisticRegression

    def normalise(z):
        return z / np.linalg.norm(z, axis=1, keepdims=True).clip(min=1e-12)

    clf = LogisticRegression(penalty="l2", C=params["rfs_c"], solver="lbfgs", max_iter=params["rfs_max_iter"],
                             random_state=0)
    clf.fit(normalise(zs.astype(np.float64)), ys)
    return clf.predict(normalise(zq.astype(np.float64)))


HEADS = {"baseline": baseline_head, "rfs": rfs_head}


def run_episode(features, labels, params, shot, episode) -> float:
    """Query accuracy (percent) of episode `episode` of `shot` shots (a function of seed, shot and episode only)."""
    rng = episode_rng(params["seed"], shot, episode)
    s, q, yq = draw_episode(labels, params["ways"], shot, params["queries"], rng)
    ys = support_labels(params["ways"], shot)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: one thread is fastest, and the same sums in every split
    try:
        predicted = HEADS[params["head"]](features[s], ys, features[q], params, rng)
    finally:
        torch.set_num_threads(threads)
    return 100.0 * float(np.mean(predicted == yq))


def episode_params(cfg) -> dict:
    f = cfg.BENCHMARK.FEWSHOT
    return {"seed": int(cfg.SEED), "head": f.HEAD, "ways": int(f.WAYS), "queries": int(f.QUERIES),
            "epochs": int(f.EPOCHS), "batch": int(f.BATCH), "lr": float(f.LR), "momentum": float(f.MOMENTUM),
            "dampening": float(f.DAMPENING), "weight_decay": float(f.WEIGHT_DECAY), "rfs_c": float(f.RFS_C),
            "rfs_max_iter": int(f.RFS_MAX_ITER)}


_STATE = {}  # a local worker's features, labels and parameters (set once per process by _init_worker)


def _init_worker(features, labels, params):
    torch.set_num_threads(1)
    _STATE.update(features=features, labels=labels, params=params)


def _run_items(items):
    st = _STATE
    return [(shot, e, run_episode(st["features"], st["labels"], st["params"], shot, e)) for shot, e in items]


def run_episodes(features, labels, params, items, workers=1, log_period_s=10.0) -> list:
    """[(shot, episode, accuracy)] of `items` [(shot, episode)], over `workers` local processes, with progress."""
    items = list(items)
    chunks = [items[i:i + 10] for i in range(0, len(items), 10)]
    out, t0, last = [], time.perf_counter(), time.perf_counter()

    def progress():
        nonlocal last
        now = time.perf_counter()
        if now - last < log_period_s and len(out) < len(items):
            return
        last = now
        rate = len(out) / max(now - t0, 1e-9)
        eta = (len(items) - len(out)) / rate if rate > 0 else float("inf")
        logger.info("few-shot: %d/%d episodes of this process, %.1f episodes/s, ETA %s", len(out), len(items), rate,
                    time.strftime("%H:%M:%S", time.gmtime(eta)) if math.isfinite(eta) else "unknown")

    if workers <= 1:
        _STATE.update(features=features, labels=labels, params=params)
        for chunk in chunks:
            out += _run_items(chunk)
            progress()
        return out
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(workers, initializer=_init_worker, initargs=(features, labels, params)) as pool:
        for done in pool.imap_unordered(_run_items, chunks):
            out += done
            progress()
    return out


def summarize(results, shots) -> dict:
    """{"<s>shot": mean, "<s>shot_ci95": 1.96 * std / sqrt(n)} in percent (numpy std, ddof 0)."""
    metrics = {}
    for shot in shots:
        acc = np.array([a for s, _, a in results if s == shot], dtype=np.float64)
        metrics[f"{shot}shot"] = float(acc.mean())
        metrics[f"{shot}shot{INTERVAL_SUFFIX}"] = float(1.96 * acc.std() / math.sqrt(len(acc)))
    return metrics


def local_workers(cfg) -> int:
    n = int(cfg.BENCHMARK.FEWSHOT.WORKERS)
    if cfg.MODEL.DEVICE != "cpu" and n == 0:
        return 1
    return n or max(1, (os.cpu_count() or 1) // comm.get_world_size())


# ----------------------------------------------------------------------------- the trainer

class FewShotTrainer(TrainerBase):
    """One few-shot evaluation: features once, then every episode of every shot count (module's rules)."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        if comm.is_main_process():
            os.makedirs(cfg.OUTPUT_DIR, exist_ok=True)
        self.model = build_model(cfg)
        SafeCheckpointer(self.model, cfg.OUTPUT_DIR).load(cfg.MODEL.WEIGHTS, checkpointables=[])
        self.model.eval()
        dicts = DatasetCatalog.get(cfg.DATASETS.TEST[0])
        self.files = [d["file_name"] for d in dicts]
        self.labels = np.array([int(d["label"]) for d in dicts], dtype=np.int64)
        self.shots = tuple(int(s) for s in cfg.BENCHMARK.FEWSHOT.SHOTS)
        self.episodes = int(cfg.BENCHMARK.FEWSHOT.EPISODES)
        self.iter = self.start_iter = 0
        self.max_iter = len(self.shots) * self.episodes
        self.RESUME_EXACT, self.RESUME_NOTE = True, None
        logger.info("few-shot: %d images of %d classes, %d episodes per shot count %s, head %s", len(self.files),
                    len(np.unique(self.labels)), self.episodes, self.shots, cfg.BENCHMARK.FEWSHOT.HEAD)

    def resume_or_load(self, resume=True):
        """The backbone is loaded; nothing else is trained across episodes (the features cache is reused)."""

    def evaluate(self) -> dict:
        feats = features_of(self.model, self.cfg, self.files)
        items = [(s, e) for s in self.shots for e in range(self.episodes)]
        rank, world = comm.get_rank(), comm.get_world_size()
        mine = run_episodes(feats, self.labels, episode_params(self.cfg), items[rank::world],
                            local_workers(self.cfg), float(self.cfg.BENCHMARK.FEWSHOT.LOG_PERIOD_S))
        results = sorted(r for part in comm.all_gather(mine) for r in part)
        metrics = summarize(results, self.shots)
        if comm.is_main_process():
            write_json_atomic(os.path.join(self.cfg.OUTPUT_DIR, EPISODES_NAME), {
                "seed": int(self.cfg.SEED), "head": self.cfg.BENCHMARK.FEWSHOT.HEAD, "metrics": metrics,
                "episodes": {f"{s}shot": [a for t, _, a in results if t == s] for s in self.shots}})
        logger.info("few-shot: %s", ", ".join(f"{k} {v:.2f}" for k, v in metrics.items()))
        return {GROUP: metrics}

    def train(self):
        with EventStorage(0) as self.storage:
            self.before_train()
            metrics = self.evaluate()
            self.iter = self.max_iter - 1
            self.after_step()
            self.iter = self.max_iter
            self.after_train()
        return metrics

    @classmethod
    def evaluate_only(cls, cfg, resume: bool):
        """(metrics, episodes): the evaluation is the protocol itself; nothing is saved between runs but features."""
        trainer = cls(cfg)
        return trainer.evaluate(), trainer.max_iter
