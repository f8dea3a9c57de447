"""Downloads into the suite's cache: http(s) only, streamed, verified, never used half-written.

A checkpoint is a few hundred MB fetched over a network that may drop. `fetch` streams into a
temporary file beside the destination and renames it into place only once every byte announced
by the server has arrived (and, when given, the sha256 matches), so a file present in the cache
is always complete. The zoo builds on it: it records the sha256 of a first download and passes
it on later ones.

A `LocalFile` is a complete local file with the sha256 of its bytes, hashed at most once: a
download hashes while it streams, any other file when its sha256 is first asked for. It is
what each step of the --weights chain (benchmark.weights.spec -> convert) hands the next one.
"""
import dataclasses
import hashlib
import http.client
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from benchmark.fileio import atomic_write, remove_stale_temporaries

CHUNK = 1 << 20
TIMEOUT_S = 60


class DownloadError(Exception):
    """A download that was refused or did not complete; str() is '<url>: <problem>'."""

    def __init__(self, url, problem):
        super().__init__(f"{url}: {problem}")
        self.url, self.problem = url, problem


def cache_dir() -> Path:
    """The cache root: $BENCHMARK_CACHE, else ~/.cache/benchmark."""
    return Path(os.environ.get("BENCHMARK_CACHE") or Path.home() / ".cache" / "benchmark").expanduser()


def safe_cache_path(name, root=None) -> Path:
    """`root / name`, refusing names that would land outside `root`.

    Names come from URLs and zoo entries, i.e. from outside: an absolute path, a `..` component
    or a symlink pointing elsewhere must not let them write anywhere else on disk.
    """
    root = Path(root) if root is not None else cache_dir()
    name = str(name)
    parts = Path(name).parts
    if not name or Path(name).is_absolute() or ".." in parts or "\\" in name:
        raise ValueError(f"unsafe cache name {name!r}: must be a relative path inside {root}")
    path = root / name
    resolved_root = root.resolve()
    if not path.resolve().is_relative_to(resolved_root) or path.resolve() == resolved_root:
        raise ValueError(f"unsafe cache name {name!r}: resolves outside {root}")
    return path


def url_filename(url) -> str:
    """The last path component of a URL ('moco_v2_imagenet.pth'), for naming cache entries."""
    name = Path(urllib.parse.unquote(urllib.parse.urlparse(url).path)).name
    return name or "download"


def sha256_file(path) -> str:
    """The sha256 (hex) of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclasses.dataclass
class LocalFile:
    """A complete file on local disk and the sha256 of its bytes, computed at most once.

    `known_sha256`: the digest where the bytes were already hashed (while downloading them, or
    when the zoo verified its cached copy); otherwise the file is read the first time `sha256`
    is asked for, and never again.
    """

    path: Path
    known_sha256: str | None = None

    @property
    def sha256(self) -> str:
        if self.known_sha256 is None:
            self.known_sha256 = sha256_file(self.path)
        return self.known_sha256


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """urllib follows redirects to ftp:// too; a server must not be able to move us off http(s)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        scheme = urllib.parse.urlparse(newurl).scheme.lower()
        if scheme not in ("http", "https"):
            raise DownloadError(req.full_url, f"refused redirect to {scheme or '(none)'!r} URL {newurl}: only http and https")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_OPENER = urllib.request.build_opener(_HttpOnlyRedirects)


def fetch(url, dest, sha256=None, progress=True) -> Path:
    """Download `url` to `dest` atomically and return `dest` (see `fetch_file`)."""
    return fetch_file(url, dest, sha256=sha256, progress=progress).path


def fetch_file(url, dest, sha256=None, progress=True) -> LocalFile:
    """Download `url` to `dest` atomically; return it with the sha256 hashed while streaming.

    Shows a tqdm progress bar when stderr is a terminal (`progress=False`: never).
    Refuses non-http(s) schemes (no file://, ftp:// ...). A transfer cut short (fewer bytes than
    the server's Content-Length, or a connection error) or a sha256 mismatch raises
    DownloadError and leaves neither `dest` nor a temporary file behind.
    """
    scheme = urllib.parse.urlparse(url).scheme.lower()
    if scheme not in ("http", "https"):
        raise DownloadError(url, f"refused scheme {scheme or '(none)'!r}: only http and https URLs are downloaded")
    dest = Path(dest)
    if dest.parent.is_dir():
        remove_stale_temporaries(dest.parent)  # what downloads killed earlier left
    try:
        with _OPENER.open(url, timeout=TIMEOUT_S) as response:
            length = response.headers.get("Content-Length")
            expected = int(length) if length is not None and length.isdigit() else None
            digest = hashlib.sha256()
            received = 0
            with atomic_write(dest, "wb") as out, _progress_bar(expected, dest.name, progress) as bar:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
                # http.client returns b"" rather than raising when the peer closes early with a
                # Content-Length announced, so the byte count is the only reliable check.
                if expected is not None and received != expected:
                    raise DownloadError(url, f"download cut short: received {received} of {expected} bytes")
                if sha256 is not None and digest.hexdigest() != sha256.lower():
                    raise DownloadError(url, f"sha256 mismatch: expected {sha256}, got {digest.hexdigest()}")
    except urllib.error.HTTPError as e:
        raise DownloadError(url, f"HTTP {e.code} {e.reason}") from None
    except DownloadError:
        raise
    except (OSError, ValueError, http.client.HTTPException) as e:  # URLError, IncompleteRead, resets, timeouts
        raise DownloadError(url, f"download failed: {e}") from None
    return LocalFile(dest, digest.hexdigest())


def cached_download(url, progress=True, root=None) -> LocalFile:
    """`url` downloaded once into `root` (default: the cache) as downloads/<url digest>/<file name>.

    A file already there is complete (`fetch` renames it in only at the end) and is used as it
    is. The folder is named by the URL's sha256 so that equal file names from different URLs do
    not meet; the file name is the URL's, refused (ValueError) where it would leave the cache.
    """
    folder = f"downloads/{hashlib.sha256(url.encode()).hexdigest()[:16]}"
    dest = safe_cache_path(f"{folder}/{url_filename(url)}", root=root)
    if dest.is_file():
        return LocalFile(dest)
    return fetch_file(url, dest, progress=progress)


def _progress_bar(total, name, enabled):
    from tqdm import tqdm

    # disable=None: tqdm draws only on a terminal, so logs and captured stderr stay one clean line per error
    return tqdm(total=total, desc=name, unit="B", unit_scale=True, unit_divisor=1024, disable=None if enabled else True, leave=False)
