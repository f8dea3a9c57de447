"""Logging of a run: detectron2's console logging once per process, and a log file per run and rank."""
import contextlib
import logging
import sys
from pathlib import Path

from detectron2.utils.logger import setup_logger


def _no_model_dump(record: logging.LogRecord) -> bool:
    """Console filter: detectron2 logs the whole model (~300 lines) when it builds it; keep that
    in log.txt, where it is useful, and off the terminal, where it buries the progress lines."""
    return not (isinstance(record.msg, str) and record.msg.startswith("Model:\n"))


def console_follows_stdout() -> None:
    """Point the console handlers of detectron2's and our loggers at the current sys.stdout.

    detectron2's setup_logger is cached per process and binds its handler to the sys.stdout of its
    first call. Where the suite is imported and run several times in one process (a notebook, a
    test harness that swaps sys.stdout per test), that stream may since have been replaced and
    closed, and every later message would end as a "--- Logging error ---" on stderr.
    """
    for name in ("detectron2", "benchmark"):
        for handler in logging.getLogger(name).handlers:
            # only a console handler whose stream is closed: one a user pointed elsewhere stays so
            if type(handler) is logging.StreamHandler and getattr(handler.stream, "closed", False):
                handler.stream = sys.stdout  # not setStream: it would first flush the closed stream


@contextlib.contextmanager
def run_logging(output_dir: Path, rank: int):
    """detectron2's console logging once per process; a log file per run (rank 0: log.txt)."""
    console_follows_stdout()
    for handler in setup_logger(distributed_rank=rank, name="detectron2").handlers:
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
            if _no_model_dump not in handler.filters:
                handler.addFilter(_no_model_dump)
    setup_logger(distributed_rank=rank, name="benchmark", abbrev_name="bm")
    output_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(output_dir / ("log.txt" if rank == 0 else f"log.txt.rank{rank}"))
    handler.setFormatter(logging.Formatter("[%(asctime)s] %(name)s %(levelname)s: %(message)s"))
    targets = [logging.getLogger(n) for n in ("detectron2", "benchmark", "fvcore")]
    for lg in targets:
        lg.addHandler(handler)
    try:
        yield
    finally:
        for lg in targets:
            lg.removeHandler(handler)
        handler.close()
