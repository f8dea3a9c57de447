"""Atomic file writing: a reader sees the old file or the complete new one, never a torn one; and the
check every command makes of the folder it will write into, before any work."""
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


# a trial's deepest file (trial_K/eval_only/inference/...) below an output folder: room kept under PATH_MAX
OUTPUT_DEPTH_BYTES = 100


def unusable_output(folder, option: str) -> str | None:
    """Why `folder` cannot become (or be) the output folder that `option` names, or None when it can.

    Checked without creating anything, before any work: a file where a folder is needed (the folder itself or
    an ancestor), a symbolic link that leads nowhere (dangling or a loop), a name or path longer than the
    filesystem allows, a read-only or forbidden folder. The reason is one line, `OPTION FOLDER: why`, that
    says what to do; commands print it as their `error:` line."""
    folder = Path(folder)
    head = f"{option} {folder}"
    probe = folder.absolute()
    try:
        problem = _name_length_problem(probe, option)
        if problem:
            return f"{head}: {problem}"
        while not probe.exists():
            if probe.is_symlink():  # exists() is False for a dangling link and for a loop: mkdir would fail
                return (f"{head}: {probe} is a symbolic link that leads nowhere (dangling or a loop); remove it or "
                        f"choose another {option}")
            probe = probe.parent
    except OSError as exc:
        return f"{head}: cannot be used ({exc.strerror or exc})"
    if not probe.is_dir():
        return f"{head}: {probe} is a file, not a folder"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"{head}: {probe} is not writable (read-only filesystem or no permission)"
    return None


def _name_length_problem(path: Path, option: str) -> str | None:
    """Each name on the path, and the whole path with a trial's files under it, within the filesystem's limits."""
    existing = Path(path.anchor)
    for ancestor in reversed(path.parents):  # from the root down: the deepest folder that exists
        try:
            if not ancestor.is_dir():
                break
        except OSError:  # a name too long to even look up
            break
        existing = ancestor
    name_max = os.pathconf(existing, "PC_NAME_MAX")
    path_max = os.pathconf(existing, "PC_PATH_MAX")
    for part in path.parts:
        if len(os.fsencode(part)) > name_max:
            return (f"the name {part[:40]}... is longer than the filesystem allows ({name_max} bytes); choose a "
                    f"shorter {option}")
    if len(os.fsencode(str(path))) + OUTPUT_DEPTH_BYTES > path_max:
        return (f"the path is longer than the filesystem allows ({path_max} bytes with the files under it); "
                f"choose a shorter {option}")
    return None
