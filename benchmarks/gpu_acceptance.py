#!/usr/bin/env python
"""GPU acceptance in one call: what the suite has only estimated, measured on the GPU it runs on.

One process, at most ~8 minutes on one H100 (each section checks the time left and records
"skipped: time budget" rather than overrun). Sections, in order (each one's figures, or why not):
  correctness  the GPU-only tests (`pytest -m gpu`: AMP, naiveSyncBN on one process, resume on CUDA)
               and `run_transfer --task voc07 --sanity` on the GPU, which must PASS
  memory       peak GPU memory per training image of voc07 / coco (R50-C4 at the protocol's largest
               training size) and per 512x1024 cityscapes crop, from the peaks at two batch sizes,
               against BENCHMARK.TRAIN_GB_PER_IMAGE / TRAIN_GB_FIXED of the images-per-process rule;
               then a few iterations at the rule's own images per process on this GPU (no OOM?)
  speed        s/iter at the protocol's batch per GPU in FP32 (cudnn.benchmark off, as the engine
               runs, and on) and AMP bf16 / fp16, with the speed-ups
  data         images/s of the train loader at 0, 4, 8, 16 workers (real sizes) against the images/s
               the GPU consumes at the rule's batch: from how many workers it is not starved
  linear       imagenet_linear: frozen ResNet-50 forward images/s and the readoff loader's images/s
  cost         the measured voc07 s/iter in benchmark.reproduce.cost's terms, against its estimate
Synthetic data at real sizes (benchmark.tasks.config.real_image_size) and a synthetic MoCo R50.

  python benchmarks/gpu_acceptance.py --json gpu_acceptance.json     # on the lent GPU
  python benchmarks/gpu_acceptance.py --tiny --json tiny.json         # CPU: small sizes, every section
In --tiny (and wherever CUDA is missing) what needs CUDA says "skipped: no CUDA", with a CPU
stand-in where one means something; tests/benchmarks/test_gpu_acceptance.py runs it and checks the
JSON (check_schema). Exit status: 0 every section ran or was skipped with a reason and the learning
check passed (or was skipped); 1 a section failed, the check failed, or the rule's batch ran out of memory.
"""
import argparse
import gc
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `benchmarks` imports from the checkout, wherever this runs from

import torch  # noqa: E402

from benchmark.fileio import write_json_atomic  # noqa: E402
from benchmarks.common import median, quiet_logs, quiet_stdout  # noqa: E402

SCHEMA_VERSION = 1
SECTIONS = ("correctness", "memory", "speed", "data", "linear", "cost")
STATUSES = ("ok", "skipped", "failed")
DETECTION_TASKS = ("voc07", "coco", "cityscapes")
FAMILY = {"voc07": "voc", "coco": "coco", "cityscapes": "cityscapes", "imagenet_linear": "imagenet"}
NO_CUDA = "skipped: no CUDA"
GIB = 2 ** 30

# What each mode measures. full: the lent GPU's run; tiny: a CPU check that every section works.
MODES = {
    "full": {"budget_s": 480, "real_size": True, "weights_width": 64, "smoke": False, "num_train": 16,
             "memory_tasks": DETECTION_TASKS, "memory_batches": (1, 4), "memory_warmup": 1, "memory_iters": 2,
             "rule_iters": 3, "speed_warmup": 3, "speed_iters": 8,
             "data_workers": (0, 4, 8, 16), "data_batches": 8, "linear_batch": 32, "linear_iters": 10,
             "linear_images": 64, "linear_workers": (0, 8), "sanity": True},
    "tiny": {"budget_s": 600, "real_size": False, "weights_width": 8, "smoke": True, "num_train": 4,
             "memory_tasks": ("voc07",), "memory_batches": (1, 2), "memory_warmup": 0, "memory_iters": 1,
             "rule_iters": 1, "speed_warmup": 1, "speed_iters": 1,
             "data_workers": (0, 1), "data_batches": 2, "linear_batch": 4, "linear_iters": 2,
             "linear_images": 8, "linear_workers": (0, 1), "sanity": False},
}


def cuda() -> bool:
    return torch.cuda.is_available()


def machine() -> dict:
    out = {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
           "cuda": cuda(), "load_average": [round(x, 2) for x in os.getloadavg()]}
    if cuda():
        p = torch.cuda.get_device_properties(0)
        out.update(gpu=p.name, gpu_memory_gib=round(p.total_memory / GIB, 2), gpus=torch.cuda.device_count(),
                   capability=f"{p.major}.{p.minor}")
    return out


def versions() -> dict:
    import detectron2

    import benchmark

    out = {"torch": torch.__version__, "detectron2": detectron2.__version__, "suite": benchmark.__version__,
           "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version() if cuda() else None}
    try:
        from detectron2 import _C  # noqa: F401
        out["detectron2_compiled_ops"] = True
    except ImportError:
        out["detectron2_compiled_ops"] = False
    return out


class Budget:
    """Seconds left of the run's budget: a section that cannot start in time is skipped, not overrun."""

    def __init__(self, seconds):
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()


# ----------------------------------------------------------------------------- shared inputs

class Inputs:
    """Synthetic data per family (real or smoke sizes) and one converted synthetic MoCo R50, made on demand."""

    def __init__(self, workdir: Path, mode: dict):
        self.workdir, self.mode = workdir, mode
        self._data, self._weights, self._settings = {}, None, None

    def datasets(self, task, num_train=None) -> dict:
        from benchmark.data import register_datasets, write_synthetic
        from benchmark.tasks import get_task
        from benchmark.tasks.config import real_image_size

        family = FAMILY[task]
        n = num_train or self.mode["num_train"]
        key = (family, n)
        if key not in self._data:
            size = real_image_size(family) if self.mode["real_size"] else None
            root = write_synthetic(get_task(task).data_format, self.workdir / f"data_{family}_{n}", num_train=n,
                                   num_test=2, image_size=size)
            self._data[key] = root
        return register_datasets(get_task(task), self._data[key])

    def weights(self):
        if self._weights is None:
            from benchmark.weights.convert import prepare_weights
            from benchmark.weights.synthetic import make_synthetic_checkpoint

            ckpt = make_synthetic_checkpoint(self.workdir / "moco.pth", "moco", seed=0,
                                             width=self.mode["weights_width"])
            self._weights = prepare_weights(ckpt, cache_dir=self.workdir / "cache")
        return self._weights


def task_cfg(inputs, task, ims, out, opts=()):
    """`task`'s protocol config (--tiny: its smoke overlay) on the synthetic data, `ims` images per
    iteration on this one process, the largest training size (the memory rule's worst case)."""
    from benchmark.tasks import get_task
    from benchmark.tasks.config import build_config, protocol_config

    proto = protocol_config(get_task(task))
    sizes = ["INPUT.MIN_SIZE_TRAIN", f"({max(proto.INPUT.MIN_SIZE_TRAIN)},)"] if not inputs.mode["smoke"] else []
    if task == "cityscapes" and not inputs.mode["smoke"]:
        sizes = ["INPUT.MIN_SIZE_TRAIN", "(1024,)"]  # full-size images, cropped to CROP.SIZE (512x1024)
    weights = inputs.weights()
    cfg, _ = build_config(get_task(task), weights.input_settings, [
        "SOLVER.IMS_PER_BATCH", str(ims), "BENCHMARK.IMS_PER_GPU", str(ims), *sizes, *opts],
        smoke=inputs.mode["smoke"], num_gpus=1)
    cfg = cfg.clone()
    cfg.defrost()
    cfg.OUTPUT_DIR, cfg.SEED, cfg.MODEL.WEIGHTS = str(out), 0, str(weights.path)
    datasets = inputs.datasets(task, num_train=max(inputs.mode["num_train"], ims))
    cfg.DATASETS.TRAIN = tuple(datasets.get(n, n) for n in cfg.DATASETS.TRAIN)
    cfg.DATASETS.TEST = tuple(datasets.get(n, n) for n in cfg.DATASETS.TEST)
    cfg.freeze()
    return cfg


def build_trainer(cfg):
    from detectron2.utils.env import seed_all_rng

    from benchmark.engine.trainer import Trainer
    from benchmarks.train_speed import Stepper

    os.makedirs(cfg.OUTPUT_DIR, exist_ok=True)
    seed_all_rng(0)
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=False)
    return trainer, Stepper(trainer)


def release(*objects):
    for o in objects:
        del o
    gc.collect()
    if cuda():
        torch.cuda.empty_cache()


def timed_iters(stepper, warmup, iters) -> list:
    stepper.step(warmup)
    if cuda():
        torch.cuda.synchronize()
    return [t[0] for t in stepper.step(iters)]  # run_step ends in optimizer.step, which waits for the GPU


# ----------------------------------------------------------------------------- sections

def child_env(**extra) -> dict:
    """os.environ for a child run from the checkout (cwd=ROOT), PYTHONPATH's entries made absolute:
    `PYTHONPATH=.gpu_site python3 benchmarks/gpu_acceptance.py` from elsewhere must reach the same bundle."""
    env = dict(os.environ, **extra)
    if env.get("PYTHONPATH"):
        env["PYTHONPATH"] = os.pathsep.join(str(Path(p).resolve()) if p else p
                                            for p in env["PYTHONPATH"].split(os.pathsep))
    return env


def section_correctness(inputs, mode, budget) -> dict:
    out = {}
    junit = inputs.workdir / "gpu_tests.xml"
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:randomly",
                           str(ROOT / "tests" / "engine" / "test_gpu.py"), f"--junitxml={junit}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=max(60, budget.left()),
                          env=child_env())
    out["gpu_tests"] = junit_counts(junit) | {"exit_status": proc.returncode, "tail": proc.stdout[-1500:]}
    if not mode["sanity"]:
        out["sanity_voc07"] = {"status": "skipped: --tiny (the learning check takes minutes on CPU; "
                                         "tests/learning runs it there)"}
    elif not cuda():
        out["sanity_voc07"] = {"status": NO_CUDA}
    else:
        out["sanity_voc07"] = sanity_voc07(inputs.workdir)
    failed = out["gpu_tests"]["failed"] + out["gpu_tests"]["errors"] > 0 or out["sanity_voc07"]["status"] == "FAIL"
    out["status"] = "failed" if failed else "ok"
    return out


def junit_counts(path) -> dict:
    import xml.etree.ElementTree as ET

    suite = ET.parse(path).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    cases = {c.get("name"): ("failed" if c.find("failure") is not None or c.find("error") is not None
                             else "skipped" if c.find("skipped") is not None else "passed")
             for c in suite.iter("testcase")}
    return {"tests": counts["tests"], "failed": counts["failures"], "errors": counts["errors"],
            "skipped": counts["skipped"], "passed": counts["tests"] - counts["failures"] - counts["errors"]
            - counts["skipped"], "cases": cases}


def sanity_voc07(workdir) -> dict:
    """`run_transfer --task voc07 --sanity` with an initialised (torchvision-init) ResNet-50, as a user runs it."""
    from benchmark.weights.synthetic import make_synthetic_checkpoint

    ckpt = make_synthetic_checkpoint(workdir / "r50_init.pth", "torchvision", init="torchvision")
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "benchmark.cli.run_transfer", "--task", "voc07", "--sanity",
                           "--weights", str(ckpt), "--output", str(workdir / "sanity")],
                          cwd=ROOT, capture_output=True, text=True, env=child_env(BENCHMARK_CACHE=str(workdir)))
    verdict = [line for line in proc.stdout.splitlines() if line.rstrip().endswith(("PASS", "FAIL"))]
    return {"status": "PASS" if proc.returncode == 0 else "FAIL", "exit_status": proc.returncode,
            "verdict": verdict[-1] if verdict else None, "seconds": round(time.perf_counter() - start, 1),
            "tail": None if proc.returncode == 0 else (proc.stdout + proc.stderr)[-1500:]}


def peak_gib():
    return torch.cuda.max_memory_allocated() / GIB, torch.cuda.max_memory_reserved() / GIB


def section_memory(inputs, mode, budget) -> dict:
    from benchmark.tasks import get_task
    from benchmark.tasks.config import cuda_memory_gb, images_per_process, protocol_config

    out = {"tasks": {}}
    for task in DETECTION_TASKS:
        if task not in mode["memory_tasks"]:
            out["tasks"][task] = {"status": "skipped: --tiny runs the memory code path for voc07 only"}
            continue
        if budget.left() < 60:
            out["tasks"][task] = {"status": "skipped: time budget"}
            continue
        fig, peaks, times = {}, {}, {}
        for ims in mode["memory_batches"]:
            cfg = task_cfg(inputs, task, ims, inputs.workdir / f"mem_{task}_{ims}")
            if cuda():
                torch.cuda.reset_peak_memory_stats()
            trainer, stepper = build_trainer(cfg)
            times[ims] = median(timed_iters(stepper, mode["memory_warmup"], mode["memory_iters"]))
            if cuda():
                peaks[ims] = peak_gib()
            stepper.close()
            release(trainer, stepper)
        fig["train_gb_per_image_constant"] = float(cfg.BENCHMARK.TRAIN_GB_PER_IMAGE)
        fig["train_gb_fixed_constant"] = float(cfg.BENCHMARK.TRAIN_GB_FIXED)
        fig["input"] = "largest training size" + (" (smoke overlay)" if mode["smoke"] else "")
        lo, hi = mode["memory_batches"]
        if not cuda():
            fig.update(status=NO_CUDA, cpu_stand_in_s_per_iter={str(k): v for k, v in times.items()})
            out["tasks"][task] = fig
            continue
        per_image = (peaks[hi][1] - peaks[lo][1]) / (hi - lo)  # reserved: what the allocator must get
        fixed = peaks[lo][1] - lo * per_image
        fig.update(peak_reserved_gib={str(k): v[1] for k, v in peaks.items()},
                   peak_allocated_gib={str(k): v[0] for k, v in peaks.items()},
                   gb_per_image_measured=per_image, gb_fixed_measured=fixed,
                   ratio_constant_to_measured=fig["train_gb_per_image_constant"] / per_image if per_image > 0 else None)
        # the rule as a real run applies it: the protocol's config, this GPU's memory, one process
        split = images_per_process(protocol_config(get_task(task)), 1, cuda_memory_gb(1))
        rule_cfg = task_cfg(inputs, task, split.per_process, inputs.workdir / f"rule_{task}")
        torch.cuda.reset_peak_memory_stats()
        try:
            trainer, stepper = build_trainer(rule_cfg)
            fig["rule_s_per_iter"] = median(timed_iters(stepper, 1, mode["rule_iters"]))
            stepper.close()
            fig["rule_run"] = "completed"
            release(trainer, stepper)
        except torch.cuda.OutOfMemoryError as exc:
            fig["rule_run"] = f"OUT OF MEMORY: {str(exc).splitlines()[0]}"
            release()
        fig.update(rule_images_per_process=split.per_process, rule_basis=split.basis,
                   rule_peak_reserved_gib=peak_gib()[1], status="ok" if fig["rule_run"] == "completed" else "failed")
        out["tasks"][task] = fig
    out["status"] = "failed" if any(f.get("status") == "failed" for f in out["tasks"].values()) else "ok"
    return out


def section_speed(inputs, mode, budget) -> dict:
    from detectron2.engine import AMPTrainer

    out = {"tasks": {}, "reference": ("detectron2 MODEL_ZOO.md, 8 V100, batch 16: faster_rcnn_R_50_C4 0.537 s/iter, "
                                      "mask_rcnn_R_50_C4_1x 0.584 s/iter (benchmark.reproduce.cost.SPEED)")}
    for task in DETECTION_TASKS:
        if budget.left() < 45:
            out["tasks"][task] = {"status": "skipped: time budget"}
            continue
        from benchmark.tasks import get_task
        from benchmark.tasks.config import protocol_config

        proto = protocol_config(get_task(task))
        ims = int(proto.SOLVER.IMS_PER_BATCH) // int(proto.BENCHMARK.PROTOCOL_WORLD_SIZE)
        cfg = task_cfg(inputs, task, ims, inputs.workdir / f"speed_{task}")
        trainer, stepper = build_trainer(cfg)
        fig = {"images_per_iter": ims, "s_per_iter": {}}
        variants = [("fp32_cudnn_benchmark_off", None, False), ("fp32_cudnn_benchmark_on", None, True)]
        if cuda():
            variants += [("amp_bf16", torch.bfloat16, True), ("amp_fp16", torch.float16, True)]
        saved = torch.backends.cudnn.benchmark
        try:
            for name, precision, bench in variants:
                torch.backends.cudnn.benchmark = bench
                if precision is not None:  # our Trainer's step is its own attribute: a detectron2 AMPTrainer
                    trainer.step_trainer = AMPTrainer(trainer.model, trainer.data_loader, trainer.optimizer,
                                                      precision=precision)
                fig["s_per_iter"][name] = median(timed_iters(stepper, mode["speed_warmup"], mode["speed_iters"]))
        finally:
            torch.backends.cudnn.benchmark = saved
            stepper.close()
            release(trainer, stepper)
        s = fig["s_per_iter"]
        base = s["fp32_cudnn_benchmark_off"]
        fig["speedup_cudnn_benchmark"] = base / s["fp32_cudnn_benchmark_on"]
        if cuda():
            fig["speedup_amp_bf16"] = s["fp32_cudnn_benchmark_on"] / s["amp_bf16"]
            fig["speedup_amp_fp16"] = s["fp32_cudnn_benchmark_on"] / s["amp_fp16"]
            fig["status"] = "ok"
        else:
            fig["status"] = f"{NO_CUDA} (AMP); FP32 figures are the CPU stand-in"
        out["tasks"][task] = fig
    out["status"] = "ok"
    return out


def section_data(inputs, mode, budget, speed=None) -> dict:
    from detectron2.data import DatasetMapper, build_detection_train_loader
    from detectron2.utils.env import seed_all_rng

    out = {"task": "voc07", "workers": {}}
    ims = 16 if not mode["smoke"] else 2
    cfg = task_cfg(inputs, "voc07", ims, inputs.workdir / "data")
    for n in mode["data_workers"]:
        if budget.left() < 20:
            out["workers"][str(n)] = {"status": "skipped: time budget"}
            continue
        c = cfg.clone()
        c.defrost()
        c.DATALOADER.NUM_WORKERS = n
        seed_all_rng(0)
        loader = build_detection_train_loader(c, mapper=DatasetMapper(c, is_train=True))
        it = iter(loader)
        t0 = time.perf_counter()
        next(it)
        first = time.perf_counter() - t0
        images, t0 = 0, time.perf_counter()
        for _ in range(mode["data_batches"]):
            images += len(next(it))
        elapsed = time.perf_counter() - t0
        del it, loader
        out["workers"][str(n)] = {"images_per_s": images / elapsed, "first_batch_s": first}
    out["images_per_batch"] = ims
    rule = (speed or {}).get("tasks", {}).get("voc07", {})
    s_iter = (rule.get("s_per_iter") or {}).get("fp32_cudnn_benchmark_off")
    if s_iter:
        consumed = rule["images_per_iter"] / s_iter
        out["gpu_consumes_images_per_s"] = consumed
        fed = [int(n) for n, f in out["workers"].items() if f.get("images_per_s", 0) >= consumed]
        out["fewest_workers_not_starving"] = min(fed) if fed else None
    out["status"] = "ok" if cuda() else "ok (CPU loader; the GPU's consumption is the CPU stand-in)"
    return out


def section_linear(inputs, mode, budget) -> dict:
    from detectron2.modeling import build_model

    from benchmark.engine.linear import ImageSplit, _dicts, collate, train_transform
    from benchmark.engine.trainer import Trainer  # noqa: F401  (registers the suite's model pieces)
    from benchmark.tasks import get_task
    from benchmark.tasks.config import build_config

    task = get_task("imagenet_linear")
    weights = inputs.weights()
    cfg, _ = build_config(task, weights.input_settings, smoke=mode["smoke"], num_gpus=1)
    model = build_model(cfg).eval()
    crop = int(cfg.BENCHMARK.LINEAR.TRAIN_CROP)
    b = mode["linear_batch"]
    x = torch.randint(0, 255, (b, 3, crop, crop), dtype=torch.uint8, device=model.device)
    out = {"batch": b, "crop": crop, "forward_images_per_s": {}}
    variants = [("fp32", None)] + ([("bf16", torch.bfloat16), ("fp16", torch.float16)] if cuda() else [])
    with torch.no_grad():
        for name, dtype in variants:
            with torch.autocast("cuda", dtype=dtype, enabled=dtype is not None):
                times = []
                for i in range(mode["linear_iters"] + 2):
                    t0 = time.perf_counter()
                    model.features(x)
                    if cuda():
                        torch.cuda.synchronize()
                    if i >= 2:
                        times.append(time.perf_counter() - t0)
            out["forward_images_per_s"][name] = b / median(times)
    release(model, x)
    datasets = inputs.datasets("imagenet_linear", num_train=mode["linear_images"])
    dicts = _dicts(datasets.get(cfg.DATASETS.TRAIN[0], cfg.DATASETS.TRAIN[0]))
    split = ImageSplit(dicts, train_transform(cfg), cfg.INPUT.FORMAT)
    out["loader_images_per_s"] = {}
    for n in mode["linear_workers"]:
        loader = torch.utils.data.DataLoader(split, batch_size=b, num_workers=n, collate_fn=collate, shuffle=True)
        for _ in range(2):  # the first pass starts the workers and warms the page cache
            t0, images = time.perf_counter(), 0
            for batch in loader:
                images += len(batch["label"])
            elapsed = time.perf_counter() - t0
        out["loader_images_per_s"][str(n)] = images / elapsed
    out["status"] = "ok" if cuda() else f"ok; {NO_CUDA}: the forward figure is the CPU stand-in"
    return out


def section_cost(speed) -> dict:
    from benchmark.reproduce.cost import SPEED, max_iter, run_gpu_hours

    fig = (speed or {}).get("tasks", {}).get("voc07", {})
    s_iter = (fig.get("s_per_iter") or {}).get("fp32_cudnn_benchmark_off")
    est = SPEED["voc07"]
    out = {"estimate": {"seconds_per_iter": est.seconds_per_iter, "gpus": est.gpus, "basis": est.basis,
                        "gpu_hours_per_run": run_gpu_hours("voc07")}, "max_iter": max_iter("voc07")}
    if s_iter is None:
        out["status"] = "skipped: no voc07 speed figure"
        return out
    gpus = est.gpus  # the protocol batch split as the estimate's: each GPU holds images_per_iter of it
    hours = s_iter * out["max_iter"] * gpus / 3600
    out["measured"] = {"seconds_per_iter": s_iter, "images_per_gpu": fig["images_per_iter"], "gpus": gpus,
                       "gpu_hours_per_run": hours, "ratio_to_estimate": hours / out["estimate"]["gpu_hours_per_run"],
                       "assumes": "linear scaling over the protocol's GPUs (synchronised BN's all-reduce not included)"}
    out["status"] = "ok" if cuda() else "ok (CPU stand-in: not a figure for cost.py)"
    if cuda():
        out["speed_figure"] = (f'SpeedFigure({s_iter:.3f}, {gpus}, True, "{machine().get("gpu")}, '
                               f'benchmarks/gpu_acceptance.py, FP32, {fig["images_per_iter"]} images per GPU")')
    return out


# ----------------------------------------------------------------------------- run, check, print

def run(mode_name="full", sections=SECTIONS, workdir=None, progress=print) -> dict:
    mode = MODES[mode_name]
    budget = Budget(mode["budget_s"])
    started = time.perf_counter()
    report = {"schema": SCHEMA_VERSION, "mode": mode_name, "machine": machine(), "versions": versions(),
              "budget_s": mode["budget_s"], "sections": {}}
    with tempfile.TemporaryDirectory(prefix="gpu_acceptance-") as tmp, quiet_logs():
        inputs = Inputs(Path(workdir or tmp), mode)
        for name in SECTIONS:
            if name not in sections:
                report["sections"][name] = {"status": "skipped: not asked for (--sections)"}
                continue
            if budget.left() < 10:
                report["sections"][name] = {"status": "skipped: time budget"}
                continue
            progress(f"{name} ... ({budget.left():.0f} s left)")
            t0 = time.perf_counter()
            try:
                with quiet_stdout():
                    if name == "data":
                        fig = section_data(inputs, mode, budget, report["sections"].get("speed"))
                    elif name == "cost":
                        fig = section_cost(report["sections"].get("speed"))
                    else:
                        fig = globals()[f"section_{name}"](inputs, mode, budget)
            except Exception as exc:  # one broken section must not cost the GPU window's other figures
                fig = {"status": "failed", "error": f"{type(exc).__name__}: {exc}",
                       "traceback": traceback.format_exc()[-3000:]}
            fig["seconds"] = round(time.perf_counter() - t0, 1)
            report["sections"][name] = fig
    report["elapsed_s"] = round(time.perf_counter() - started, 1)
    check_schema(report)
    return report


def check_schema(report) -> None:
    """Raise ValueError unless `report` has the shape the README and tests read."""
    for key in ("schema", "mode", "machine", "versions", "budget_s", "elapsed_s", "sections"):
        if key not in report:
            raise ValueError(f"report: no {key!r}")
    if report["schema"] != SCHEMA_VERSION or report["mode"] not in MODES:
        raise ValueError(f"report: schema {report['schema']!r}, mode {report['mode']!r}")
    for key in ("torch", "detectron2", "suite"):
        if not report["versions"].get(key):
            raise ValueError(f"report: versions has no {key!r}")
    if set(report["sections"]) != set(SECTIONS):  # the JSON file holds them with sorted keys
        raise ValueError(f"report: sections {list(report['sections'])}, expected {list(SECTIONS)}")
    for name, fig in report["sections"].items():
        status = fig.get("status")
        if not isinstance(status, str) or not status.startswith(STATUSES):
            raise ValueError(f"report: section {name} has status {status!r}")
    json.dumps(report, allow_nan=False)  # plain JSON: no NaN/Infinity, every value serialisable


def problems(report) -> list:
    out = [f"{name}: {fig.get('error') or fig['status']}" for name, fig in report["sections"].items()
           if fig["status"].startswith("failed")]
    mem = report["sections"]["memory"].get("tasks", {})
    out += [f"memory {t}: the rule's batch: {f['rule_run']}" for t, f in mem.items() if "OUT OF MEMORY" in f.get("rule_run", "")]
    return out


def table(report) -> str:
    rows = []
    s = report["sections"]
    c = s["correctness"]
    if "gpu_tests" in c:
        g = c["gpu_tests"]
        rows.append(("correctness", "pytest -m gpu", f"{g['passed']} passed, {g['failed'] + g['errors']} failed, "
                     f"{g['skipped']} skipped", ""))
        rows.append(("correctness", "voc07 --sanity", c["sanity_voc07"]["status"], c["sanity_voc07"].get("verdict") or ""))
    for task, f in s["memory"].get("tasks", {}).items():
        if "gb_per_image_measured" in f:
            rows.append(("memory", f"{task} GB/image", f"{f['gb_per_image_measured']:.2f}",
                         f"constant {f['train_gb_per_image_constant']:g}; rule {f['rule_images_per_process']}/GPU: "
                         f"{f['rule_run']}"))
        else:
            rows.append(("memory", task, f.get("status", ""), ""))
    for task, f in s["speed"].get("tasks", {}).items():
        for name, v in (f.get("s_per_iter") or {}).items():
            rows.append(("speed", f"{task} {name}", f"{v:.3f} s/iter", f"{f['images_per_iter']} images"))
    for n, f in s["data"].get("workers", {}).items():
        rows.append(("data", f"voc07 loader {n} workers", f"{f['images_per_s']:.1f} img/s" if "images_per_s" in f
                     else f["status"], f"GPU needs {s['data']['gpu_consumes_images_per_s']:.1f} img/s"
                     if "gpu_consumes_images_per_s" in s["data"] else ""))
    for name, v in s["linear"].get("forward_images_per_s", {}).items():
        rows.append(("linear", f"forward {name}", f"{v:.0f} img/s", f"batch {s['linear']['batch']}"))
    for n, v in s["linear"].get("loader_images_per_s", {}).items():
        rows.append(("linear", f"loader {n} workers", f"{v:.0f} img/s", ""))
    if "measured" in s["cost"]:
        m, e = s["cost"]["measured"], s["cost"]["estimate"]
        rows.append(("cost", "voc07 GPU-hours/run", f"{m['gpu_hours_per_run']:.2f}", f"estimate {e['gpu_hours_per_run']:.2f}"))
    for name, f in s.items():
        if f["status"] != "ok":
            rows.append((name, "status", f["status"][:60], f.get("error", "")[:80]))
    width = [max(len(str(r[i])) for r in rows) for i in range(3)] if rows else [0, 0, 0]
    head = f"GPU acceptance ({report['mode']}) on {report['machine'].get('gpu', 'CPU only')}, {report['elapsed_s']} s"
    return "\n".join([head] + [f"{a:<{width[0]}}  {b:<{width[1]}}  {v:<{width[2]}}  {n}" for a, b, v, n in rows])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tiny", action="store_true", help="CPU check: small sizes, few iterations, every section")
    p.add_argument("--json", metavar="PATH", help="write every figure as JSON")
    p.add_argument("--sections", default=",".join(SECTIONS), help=f"comma list of {','.join(SECTIONS)}")
    p.add_argument("--workdir", type=Path, help="keep the synthetic data and runs here (default: a temporary folder)")
    args = p.parse_args(argv)
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    bad = [s for s in sections if s not in SECTIONS]
    if bad or not sections:
        p.error(f"--sections: unknown section {', '.join(bad) or repr(args.sections)}; choose from {','.join(SECTIONS)}")
    if args.json and Path(args.json).parent.is_file():
        p.error(f"--json {args.json}: its folder is a file")
    report = run("tiny" if args.tiny else "full", sections, args.workdir, progress=lambda m: print(m, flush=True))
    print("\n" + table(report))
    if args.json:
        write_json_atomic(args.json, report)
        print(f"figures written to {args.json}")
    missed = problems(report)
    for line in missed:
        print(f"PROBLEM: {line}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
