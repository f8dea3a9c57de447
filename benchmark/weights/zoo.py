"""The model zoo: released ResNet-50 checkpoints by short name, and their cache.

`configs/zoo.yaml` lists the released checkpoints of Zhao et al. (ICLR 2021) (file, method,
pretraining data, augmentations, the paper table and row it belongs to) and, under `public`, the
field's public ResNet-50s (MoCo v1/v2/v3, SwAV, DINO, Barlow Twins, VICReg, DenseCL, torchvision),
each with its URL as the project's README publishes it, the converter's format for the file and
the README cited. `fetch(name)` downloads one into `$BENCHMARK_CACHE/zoo/` with a progress bar and
returns its path (`fetch_file`: with its sha256); `zoo:NAME` wherever weights are accepted goes
through it (benchmark.weights.spec).

No checksums are published, so trust is on first use: the sha256 of the first complete download
is recorded in `$BENCHMARK_CACHE/zoo/sha256.json` (written atomically) and every later use of
the cached file, and every re-download, must match it. A mismatch (a corrupted or replaced file)
or a download cut short is refused with one line naming the file; it is never handed on.

`$BENCHMARK_ZOO_MIRROR`, when set, replaces every URL by MIRROR/FILE, FILE being the entry's cache
name (a local mirror; the tests' server); a fallback URL by MIRROR/its last path component.

RULE (fallbacks): an entry may carry a second URL of the *same* file (`fallback_file` under base_url,
or `fallback_url`), e.g. the spelling a README used before the authors corrected it. It is tried only
when the primary URL answers that the file is not there (HTTP 404 or 410); any other failure (a 5xx,
a timeout, a transfer cut short, a sha256 mismatch) is reported as it is, and both URLs missing is
one error naming both. A fallback is never a different checkpoint. Whichever URL delivered the bytes
is recorded beside the pin (`$BENCHMARK_CACHE/zoo/urls.json`) and handed on (`LocalFile.url`): the
converted file's provenance says which URL was fetched.
"""
import contextlib
import dataclasses
import fcntl
import functools
import json
import os
import stat
from pathlib import Path

import yaml

from benchmark import CONFIG_DIR
from benchmark.fileio import write_json_atomic
from benchmark.weights import download
from benchmark.weights.errors import ConversionError

ZOO_FILE = CONFIG_DIR / "zoo.yaml"
CACHE_SUBDIR = "zoo"
RECORD_NAME = "sha256.json"
URLS_NAME = "urls.json"  # {file: the (redacted) URL its cached bytes were downloaded from}


class ZooError(ValueError):
    """A zoo name or cached file that cannot be used; str() is one line naming it."""


class UnknownCheckpointError(KeyError):
    def __str__(self):
        return self.args[0]


@dataclasses.dataclass(frozen=True)
class ZooEntry:
    name: str
    file: str
    url: str
    method: str
    supervision: str
    data: str
    augmentations: str | None  # Table 1's letters (f, fr, frc, frcg, frcgb); None where not listed
    paper: tuple  # ((table, row), ...); () for the public checkpoints beyond the paper
    note: str | None = None
    format: str | None = None  # the converter's format for the file, where zoo.yaml names it (public entries)
    source: str | None = None  # where the URL is published (repo:README.md)
    fallback_url: str | None = None  # the same file's older URL, tried only when `url` is absent (404/410)

    @property
    def source_format(self) -> str | None:
        """The converter's format name for this file, as a hint (None: detect).

        Exemplar and supervised files carry plain torchvision keys, so detection reports them as
        "torchvision"; the zoo knows better and says so in the converted file's provenance. The
        public entries name their format (Barlow Twins and VICReg files are torchvision-keyed too).
        """
        if self.format:
            return self.format
        method = self.method.lower()
        if method.startswith("exemplar"):
            return "exemplar"
        return "supervised" if method == "supervised" else None

    @property
    def shown_format(self) -> str:
        """The format --list-zoo shows: the hint, else what detection finds in these files (MoCo's)."""
        return self.source_format or "moco"


def _check_name(name: str, what: str) -> str:
    """Names end up in cache paths: refuse anything that is not one plain file-name component."""
    name = str(name)
    if not name or name in (".", "..") or "/" in name or "\\" in name or name.startswith("~") or Path(name).is_absolute():
        raise ZooError(f"unsafe zoo {what} {name!r}: must be a plain name, without '/', '..' or an absolute path")
    return name


@functools.lru_cache(maxsize=None)
def _load(path: str) -> dict:
    data = yaml.safe_load(Path(path).read_text())
    if not isinstance(data, dict) or not isinstance(data.get("checkpoints"), dict) or not data.get("base_url"):
        raise ZooError(f"{path}: expected a mapping with base_url and checkpoints")
    base = data["base_url"].rstrip("/") + "/"
    entries = {}
    for name, spec in data["checkpoints"].items():
        _check_name(name, "name")
        file = _check_name(spec.get("file") or f"{name}.pth", "file")
        try:
            entries[name] = ZooEntry(
                name=name, file=file, url=base + file, method=spec["method"], supervision=spec["supervision"],
                data=spec["data"], augmentations=spec.get("augmentations"),
                paper=tuple((p["table"], p["row"]) for p in spec["paper"]), note=spec.get("note"),
                fallback_url=_fallback(path, name, spec, base, base + file))
        except (KeyError, TypeError) as e:
            raise ZooError(f"{path}: checkpoint {name!r} lacks {e}") from None
    default_source = data.get("source")
    entries = {name: dataclasses.replace(e, source=default_source) for name, e in entries.items()}
    for name, spec in (data.get("public") or {}).items():
        _check_name(name, "name")
        if name in entries:
            raise ZooError(f"{path}: checkpoint {name!r} is listed twice")
        try:
            url, method = str(spec["url"]), str(spec["method"])
            if not url.startswith(("https://", "http://")):
                raise ZooError(f"{path}: checkpoint {name!r}: url must be http(s), got {url!r}")
            file = _check_name(spec.get("file") or name + (".pth.tar" if url.endswith(".pth.tar") else ".pth"), "file")
            entries[name] = ZooEntry(
                name=name, file=file, url=url, method=method,
                supervision=spec.get("supervision") or ("supervised" if method.lower().startswith("supervised") else "unsupervised"),
                data=spec["data"], augmentations=None, paper=(), note=spec.get("note"), format=str(spec["format"]),
                source=str(spec["source"]), fallback_url=_fallback(path, name, spec, None, url))
        except (KeyError, TypeError) as e:
            raise ZooError(f"{path}: checkpoint {name!r} lacks {e}") from None
    files = [e.file for e in entries.values()]
    if len(set(files)) != len(files):
        twice = sorted({f for f in files if files.count(f) > 1})
        raise ZooError(f"{path}: cache file names must be unique; listed twice: {', '.join(twice)}")
    return entries


def _fallback(path, name, spec, base, url) -> str | None:
    """The entry's fallback URL: `fallback_url`, or `fallback_file` under base_url (the paper's entries)."""
    fallback_file, fallback_url = spec.get("fallback_file"), spec.get("fallback_url")
    if fallback_file is not None and fallback_url is not None:
        raise ZooError(f"{path}: checkpoint {name!r} gives both fallback_file and fallback_url; keep one")
    if fallback_file is not None:
        if base is None:
            raise ZooError(f"{path}: checkpoint {name!r}: fallback_file needs base_url (the paper's entries); "
                           "give a public entry's older URL as fallback_url")
        fallback_url = base + _check_name(fallback_file, "fallback file")
    if fallback_url is None:
        return None
    fallback_url = str(fallback_url)
    if not fallback_url.startswith(("https://", "http://")):
        raise ZooError(f"{path}: checkpoint {name!r}: fallback_url must be http(s), got {fallback_url!r}")
    if fallback_url == url:
        raise ZooError(f"{path}: checkpoint {name!r}: its fallback is its own URL {url}")
    return fallback_url


def _entries() -> dict:
    return _load(str(ZOO_FILE))


def list_zoo() -> list[ZooEntry]:
    """Every checkpoint, in the order of configs/zoo.yaml (Table 1, Table 2, Table 3)."""
    return list(_entries().values())


def get(name: str) -> ZooEntry:
    _check_name(name, "name")
    try:
        return _entries()[name]
    except KeyError:
        raise UnknownCheckpointError(
            f"unknown zoo checkpoint {name!r}; known: {', '.join(_entries())} (see --list-zoo)") from None


def url_of(entry: ZooEntry) -> str:
    mirror = os.environ.get("BENCHMARK_ZOO_MIRROR")
    return mirror.rstrip("/") + "/" + entry.file if mirror else entry.url


def fallback_url_of(entry: ZooEntry) -> str | None:
    """The entry's fallback URL (under $BENCHMARK_ZOO_MIRROR as MIRROR/its file name), None without one."""
    if entry.fallback_url is None:
        return None
    mirror = os.environ.get("BENCHMARK_ZOO_MIRROR")
    return mirror.rstrip("/") + "/" + download.url_filename(entry.fallback_url) if mirror else entry.fallback_url


def format_zoo_table() -> str:
    """The zoo as an aligned text table (for --list-zoo): every entry with its format and source,
    then where the files are downloaded from, then the notes."""
    head = ("name", "method", "format", "data", "paper", "source")
    rows, notes = [], []
    for e in list_zoo():
        paper = "; ".join(f"{t} {r}" for t, r in e.paper) or "-"
        note = " ".join(filter(None, (e.note, f"Fallback (tried second, only on HTTP 404/410): {fallback_url_of(e)}"
                                      if e.fallback_url else None)))
        mark = f" [{len(notes) + 1}]" if note else ""
        if note:
            notes.append(f"[{len(notes) + 1}] {e.name}: {note}")
        rows.append((e.name + mark, e.method.split(" (")[0] if e.paper else e.method, e.shown_format, e.data.split(" (")[0],
                     paper, e.source or "-"))
    from tabulate import tabulate

    table = tabulate(rows, headers=head, tablefmt="plain", disable_numparse=True)
    paper_entries = [e for e in list_zoo() if e.paper]
    base = url_of(paper_entries[0])[: -len(paper_entries[0].file)]
    urls = [f"  {e.name}: {url_of(e)}" for e in list_zoo() if not e.paper]
    lines = [f"{len(rows)} checkpoints (ResNet-50); zoo:NAME downloads it once and pins its sha256", "", table, "",
             f"URLs: the paper's ({len(paper_entries)}): {base}FILE; the others:", *urls]
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


# --------------------------------------------------------------------------- the cache

def _zoo_dir() -> Path:
    return download.safe_cache_path(CACHE_SUBDIR)


def _records_path() -> Path:
    return _zoo_dir() / RECORD_NAME


def _urls_path() -> Path:
    return _zoo_dir() / URLS_NAME


def _read_regular(path: Path, what: str) -> str | None:
    """The text of `path`, None where it does not exist; a ZooError where it is not a regular file.

    Opened without blocking and checked on the open descriptor: a FIFO in its place (made by
    mistake or on purpose) would otherwise hold every zoo download forever on open() or read().
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise ZooError(f"{path}: cannot be read ({e.strerror or e}); {what}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ZooError(f"{path}: not a regular file; {what}")
    with os.fdopen(fd, "rb") as f:
        return f.read().decode("utf-8", errors="strict")


def recorded_urls() -> dict:
    """{file: the URL its cached bytes came from}; {} where not recorded (a cache older than the record)."""
    try:
        text = _read_regular(_urls_path(), "delete it (it only says where files came from)")
        if text is None:
            return {}
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ZooError(f"{_urls_path()}: not valid JSON ({e}); delete it (it only says where files came from)") from None
    return data if isinstance(data, dict) else {}


def recorded_sha256() -> dict:
    """{file: sha256} of first downloads; an unreadable record is an error, not a fresh start."""
    path = _records_path()
    try:
        text = _read_regular(path, "delete it and the cached files to start afresh")
        if text is None:
            return {}
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ZooError(f"{path}: not valid JSON ({e}); delete it and the cached files to start afresh") from None
    if not isinstance(data, dict):
        raise ZooError(f"{path}: expected a JSON object of file -> sha256")
    return data


@contextlib.contextmanager
def _locked():
    """One process at a time downloads and records (parallel SLURM jobs share one cache)."""
    folder = _zoo_dir()
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / ".lock"
    try:  # non-blocking: a FIFO there would block open() until a reader came (ENXIO instead)
        fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_NONBLOCK, 0o666)
    except OSError as e:
        raise ZooError(f"{lock}: cannot be opened as the zoo's lock file ({e.strerror or e}); delete it") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ZooError(f"{lock}: not a regular file; delete it (the zoo's lock file)")
    with os.fdopen(fd, "wb") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def fetch(name: str, progress: bool = True) -> Path:
    """The local path of zoo checkpoint `name`, downloaded (and its sha256 recorded) on first use.

    See `fetch_file`, which also returns the file's sha256.
    """
    return fetch_file(name, progress=progress).path


def fetch_file(name: str, progress: bool = True) -> download.LocalFile:
    """Zoo checkpoint `name` as a local file with its sha256, downloaded and recorded on first use.

    The file is hashed exactly once: while it downloads, or when its cached copy is checked
    against the record. Raises UnknownCheckpointError for an unknown name, ZooError for an unsafe
    name or a cached file whose sha256 differs from the recorded one, download.DownloadError for
    a download that failed, was cut short or did not match the recorded sha256. Nothing refused
    is left in place.
    """
    entry = get(name)
    dest = download.safe_cache_path(f"{CACHE_SUBDIR}/{entry.file}")
    with _locked():
        known = recorded_sha256().get(entry.file)
        if dest.is_file() and known is None and not _loads(dest):
            # a cached file no pin vouches for (an older version cached it unchecked, or it was copied in) is
            # pinned only once it loads as a checkpoint; one that does not is replaced by a fresh download
            dest.unlink()
        if dest.is_file():
            actual = download.sha256_file(dest)
            if known is not None and actual != known:
                raise ZooError(
                    f"{dest}: sha256 {actual} differs from the one recorded at first download ({known}, in "
                    f"{_records_path()}); the cached file is corrupt or was replaced and is not used. Delete it to "
                    f"download again (and its entry in {RECORD_NAME} if the pin itself is wrong)")
        else:
            # Under the lock no other process is downloading this file: a temporary of it is what a
            # killed download left (hundreds of MB each); remove it before starting afresh.
            for stale in dest.parent.glob(f".{entry.file}.*.tmp"):
                stale.unlink(missing_ok=True)
            # fetch_file renames the file in only once it loads as a checkpoint: the pin below is never an HTML page's
            fetched = _download(entry, dest, known, progress)
            actual = fetched.sha256
            urls = recorded_urls()
            urls[entry.file] = fetched.url
            write_json_atomic(_urls_path(), urls)
        if known is None:
            records = recorded_sha256()
            records[entry.file] = actual
            write_json_atomic(_records_path(), records)
        url = recorded_urls().get(entry.file)
    return download.LocalFile(dest, actual, url if isinstance(url, str) else None)


def _loads(path: Path) -> bool:
    """True when `path` loads as a checkpoint (the check every download passes before it enters the cache)."""
    try:
        download.verify_checkpoint(path)
    except ConversionError:
        return False
    return True


def _download(entry: ZooEntry, dest: Path, known, progress) -> download.LocalFile:
    """Download `entry` to `dest` from its URL, or from its fallback URL when the first is absent (404/410)."""
    primary, fallback = url_of(entry), fallback_url_of(entry)
    try:
        return download.fetch_file(primary, dest, sha256=known, progress=progress, pinned_in=_records_path())
    except download.DownloadError as e:
        if fallback is None or not e.absent:
            raise
        first = e
    try:
        return download.fetch_file(fallback, dest, sha256=known, progress=progress, pinned_in=_records_path())
    except download.DownloadError as e:
        if e.absent:
            raise download.DownloadError(
                None, f"zoo checkpoint {entry.name!r} is at neither of its URLs: {first.url} ({first.problem}), then the "
                      f"fallback {e.url} ({e.problem}); nothing was stored", status=e.status) from None
        raise download.DownloadError(None, f"zoo checkpoint {entry.name!r}: {first.url} ({first.problem}); the fallback "
                                           f"{e}", status=e.status) from None
