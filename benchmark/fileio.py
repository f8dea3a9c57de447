"""Atomic file writing: a reader sees the old file or the complete new one, never a torn one."""
import contextlib
import json
import os
import tempfile
import time
from pathlib import Path


@contextlib.contextmanager
def atomic_write(path, mode="wb"):
    """Open a temporary file beside `path`; on success fsync it and rename it over `path`.

    On any exception (including a full disk) the temporary file is removed and `path` keeps its
    previous content. The rename is atomic on POSIX because both live in the same folder.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp makes the file 0600; give it what open() would (0666 minus the umask), so that
        # records, converted weights and downloads in a shared cache stay readable by the team.
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


# A temporary of a live writer is touched as it grows (downloads) or lives seconds (conversions);
# one this old was left by a killed process.
STALE_TEMPORARY_AGE_S = 6 * 3600


def remove_stale_temporaries(folder, min_age_s: float = STALE_TEMPORARY_AGE_S) -> list:
    """Delete atomic_write temporaries (.NAME.XXXX.tmp) in `folder` untouched for `min_age_s`.

    For folders that several processes may write at once (the shared cache), where a temporary
    cannot be assumed dead just because it is there: only its age says so. Returns the removed paths.
    """
    removed, cutoff = [], time.time() - min_age_s
    for tmp in Path(folder).glob(".*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            if tmp.is_file() and tmp.stat().st_mtime < cutoff:
                tmp.unlink()
                removed.append(tmp)
    return removed


def _umask() -> int:
    """The process umask, read without changing it (os.umask would, racing other threads)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_json_atomic(path, data) -> Path:
    with atomic_write(path, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")
    return Path(path)
