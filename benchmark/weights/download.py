"""Downloads into the suite's cache: http(s) only, streamed, verified, never used half-written.

A checkpoint is a few hundred MB fetched over a network that may drop. `fetch` streams into a
temporary file beside the destination and renames it into place only once every byte announced
by the server has arrived (and, when given, the sha256 matches), so a file present in the cache
is always complete. The zoo builds on it: it records the sha256 of a first download and passes
it on later ones.

A `LocalFile` is a complete local file with the sha256 of its bytes, hashed at most once: a
download hashes while it streams, any other file when its sha256 is first asked for. It is
what each step of the --weights chain (benchmark.weights.spec -> convert) hands the next one.

RULES (the cache holds only complete, verified checkpoints; a download neither hangs nor leaks a URL's secrets):
- A file enters the cache only once it is complete and known to be a loadable checkpoint: the
  body is streamed into a temporary beside the destination, checked (byte count against a valid
  Content-Length, not an HTML page, the pinned sha256 when given, loadable by the safe loader)
  and only then renamed into place. A failed check removes the temporary and says how to retry.
- A whole-transfer deadline ($BENCHMARK_DOWNLOAD_DEADLINE seconds, default DEADLINE_S) besides
  the per-read timeout: a server trickling bytes cannot hold a run forever.
- A URL's secrets (user:password@, the query string's values) are never shown or stored:
  `redact_url` is what every message, record and provenance gets; the full URL is used only for
  the request itself (cache folders are named by its sha256, files by its path's last part).
"""
import base64
import contextlib
import dataclasses
import hashlib
import http.client
import os
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from benchmark.fileio import _umask, remove_stale_temporaries

CHUNK = 1 << 20
TIMEOUT_S = 60  # per read (and to connect)
DEADLINE_S = 4 * 3600  # a whole transfer: a 250 MB checkpoint at 20 kB/s; override with $BENCHMARK_DOWNLOAD_DEADLINE
DEADLINE_ENV = "BENCHMARK_DOWNLOAD_DEADLINE"
RETRY = "nothing was stored; run the same command again to download afresh"


def redact_url(url) -> str:
    """`url` without its secrets: user:password@ becomes ***@, every query value ***, no fragment.

    'https://u:pw@h/x.pth?token=abc&v=2' -> 'https://***@h/x.pth?token=***&v=***'. What is left
    (scheme, host, port, path, query keys) says which file it was without saying how to get it.
    Anything that is not a URL with a scheme comes back unchanged.
    """
    url = str(url)
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return url.split("?", 1)[0].split("#", 1)[0]
    if not parts.scheme or not parts.netloc or ("@" not in parts.netloc and not parts.query and not parts.fragment
                                                 and "?" not in url and "#" not in url):
        return url
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rpartition("@")[2]
    query = "&".join(f"{pair.partition('=')[0]}=***" if pair else "" for pair in parts.query.split("&")) if parts.query else ""
    return f"{url[:len(parts.scheme)]}://{netloc}{parts.path}" + (f"?{query}" if query else "")


def one_line(text) -> str:
    """`text` as one line: its lines stripped and joined by spaces.

    Some reasons carry newlines of their own (urllib's redirect-loop error is three lines:
    '...infinite loop.\nThe last 30x error message was:\nFound'); a refusal is one `error:` line.
    """
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


# HTTP statuses that say the file is definitively not at that URL: the only failures after which a
# zoo entry's fallback URL is tried (a 5xx, a timeout or a cut transfer say nothing about the file)
ABSENT_STATUSES = (404, 410)


class DownloadError(Exception):
    """A download that was refused or did not complete; str() is '<url>: <problem>', URL redacted.
    `status`: the HTTP status where the server answered with an error, else None."""

    def __init__(self, url, problem, status=None):
        shown = redact_url(url)
        problem = one_line(str(problem).replace(str(url), shown) if url else str(problem))
        super().__init__(f"{shown}: {problem}" if url else problem)  # no URL (a setting, several URLs): the problem alone
        self.url, self.problem, self.status = (shown if url else None), problem, status

    @property
    def absent(self) -> bool:
        """True when the server said the file is not there (HTTP 404 or 410)."""
        return self.status in ABSENT_STATUSES


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
    """The last path component of a URL ('moco_v2_imagenet.pth'), for naming cache entries
    (never its query string or credentials)."""
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
    url: str | None = None  # the URL (redacted) the bytes were downloaded from; None for a local file

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
            raise DownloadError(req.full_url, f"refused redirect to {scheme or '(none)'!r} URL {redact_url(newurl)}: "
                                              "only http and https")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_OPENER = urllib.request.build_opener(_HttpOnlyRedirects)


def fetch(url, dest, sha256=None, progress=True, verify=None) -> Path:
    """Download `url` to `dest` atomically and return `dest` (see `fetch_file`)."""
    return fetch_file(url, dest, sha256=sha256, progress=progress, verify=verify).path


def deadline_s() -> float:
    """The whole-transfer deadline: $BENCHMARK_DOWNLOAD_DEADLINE seconds, else DEADLINE_S."""
    text = os.environ.get(DEADLINE_ENV)
    if text is None or not text.strip():
        return float(DEADLINE_S)
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise DownloadError(None, f"${DEADLINE_ENV} must be a positive number of seconds, got {text!r}")
    return value


def verify_checkpoint(path) -> None:
    """The default check before a download enters the cache: the safe loader can read it.

    Raises ConversionError (the loader's one line) for anything torch.load(weights_only=True)
    or the restricted unpickler refuses: an HTML page, a body cut short, a code-running pickle.
    """
    from benchmark.weights.loading import load_checkpoint

    load_checkpoint(path)


_HTML_STARTS = (b"<!doctype html", b"<html", b"<head", b"<?xml", b"<body")


def _looks_like_html(head: bytes) -> bool:
    return head.lstrip()[:14].lower().startswith(_HTML_STARTS)


def fetch_file(url, dest, sha256=None, progress=True, verify=verify_checkpoint, pinned_in=None) -> LocalFile:
    """Download `url` to `dest` atomically; return it with the sha256 hashed while streaming.

    Shows a tqdm progress bar when stderr is a terminal (`progress=False`: never). Refuses
    non-http(s) schemes (no file://, ftp:// ...). `dest` appears only when every check passed
    (see the module's RULES): a transfer cut short (fewer bytes than the server's valid
    Content-Length, a connection error), an invalid Content-Length, an HTML page, a sha256
    mismatch (`pinned_in`: the file that holds the pin, named in the message), the deadline, or
    `verify(temporary path)` raising (default: `verify_checkpoint`; None: no check) each raise
    DownloadError and leave neither `dest` nor a temporary file behind.
    """
    scheme = urllib.parse.urlparse(url).scheme.lower()
    if scheme not in ("http", "https"):
        raise DownloadError(url, f"refused scheme {scheme or '(none)'!r}: only http and https URLs are downloaded")
    try:
        deadline = deadline_s()
    except DownloadError as e:
        raise DownloadError(url, e.problem) from None
    dest = Path(dest)
    if dest.parent.is_dir():
        remove_stale_temporaries(dest.parent)  # what downloads killed earlier left
    start = time.monotonic()
    try:
        with _OPENER.open(_request(url), timeout=min(TIMEOUT_S, deadline)) as response, _temporary(dest) as (out, tmp):
            expected = _content_length(url, response.headers.get("Content-Length"))
            content_type = (response.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if content_type in ("text/html", "application/xhtml+xml"):
                raise DownloadError(url, f"the server sent an HTML page (Content-Type {content_type}), not a checkpoint: "
                                         f"is it a download link? {RETRY}")
            received, sha = _stream(url, response, out, _progress_bar(expected, dest.name, progress), start, deadline)
            # http.client returns b"" rather than raising when the peer closes early with a
            # Content-Length announced, so the byte count is the only reliable check.
            if expected is not None and received != expected:
                raise DownloadError(url, f"download cut short: received {received} of {expected} bytes; {RETRY}")
            if received == 0:
                raise DownloadError(url, f"the server sent an empty body; {RETRY}")
            if sha256 is not None and sha != sha256.lower():
                where = f" (pinned in {pinned_in}: if the file was re-released, delete its entry there to accept the new one)" \
                    if pinned_in else ""
                raise DownloadError(url, f"sha256 mismatch: expected {sha256}, got {sha}{where}; nothing was stored")
            out.flush()
            os.fsync(out.fileno())
            if verify is not None:
                _verified(url, verify, tmp)
    except urllib.error.HTTPError as e:
        raise DownloadError(url, f"HTTP {e.code} {e.reason}", status=e.code) from None
    except DownloadError:
        raise
    except TimeoutError as e:
        raise DownloadError(url, f"download failed: {e or 'timed out'}; {RETRY}") from None
    except (OSError, ValueError, http.client.HTTPException) as e:  # URLError, IncompleteRead, resets, timeouts
        raise DownloadError(url, f"download failed: {e}") from None
    return LocalFile(dest, sha, redact_url(url))


def _stream(url, response, out, bar, start: float, deadline: float) -> tuple:
    """Copy the body into `out`, hashing it; (bytes received, sha256). Refuses an HTML body and the deadline."""
    digest = hashlib.sha256()
    received = 0
    with bar:
        # read1: whatever has arrived (<= CHUNK), so that the deadline is checked between
        # reads while a server trickles bytes (one read still waits up to TIMEOUT_S)
        while chunk := response.read1(CHUNK):
            if received == 0 and _looks_like_html(chunk[:64]):
                raise DownloadError(url, f"the server sent an HTML page, not a checkpoint: is it a download link? {RETRY}")
            out.write(chunk)
            digest.update(chunk)
            received += len(chunk)
            bar.update(len(chunk))
            elapsed = time.monotonic() - start
            if elapsed > deadline:
                raise DownloadError(url, f"download not finished after {elapsed:.0f} s ({received} bytes), over the "
                                         f"deadline of {deadline:g} s (${DEADLINE_ENV}); {RETRY}, or raise "
                                         f"${DEADLINE_ENV} for a slow link")
    return received, digest.hexdigest()


def _request(url) -> urllib.request.Request:
    """The request for `url`; user:password@ in it becomes HTTP basic auth (urllib would take it
    for part of the host name), sent to that host only (an unredirected header: not to a redirect's)."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return urllib.request.Request(url)
    userinfo, _, host = parts.netloc.rpartition("@")
    request = urllib.request.Request(urllib.parse.urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment)))
    user, _, password = userinfo.partition(":")
    token = base64.b64encode(f"{urllib.parse.unquote(user)}:{urllib.parse.unquote(password)}".encode()).decode()
    request.add_unredirected_header("Authorization", f"Basic {token}")
    return request


def _content_length(url, header):
    """The announced length, None when absent; an invalid one (negative, not a number) is refused."""
    if header is None:
        return None
    text = header.strip()
    if not text.isdigit():  # also refuses '-1', '1e9', '12, 12'
        raise DownloadError(url, f"the server sent an invalid Content-Length {header!r}; {RETRY}")
    return int(text)


def _verified(url, verify, tmp):
    from benchmark.weights.errors import ConversionError

    try:
        verify(tmp)
    except ConversionError as e:
        raise DownloadError(url, f"not a loadable checkpoint ({e.problem}); {RETRY}") from None


@contextlib.contextmanager
def _temporary(dest: Path):
    """(file, path) of a temporary beside `dest` (named as fileio.atomic_write names them, so that
    remove_stale_temporaries knows it); renamed over `dest` on success, removed on any error."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            yield f, Path(tmp)
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def cached_download(url, progress=True, root=None, verify=verify_checkpoint) -> LocalFile:
    """`url` downloaded once into `root` (default: the cache) as downloads/<url digest>/<file name>.

    A file already there was checked before it was renamed in (`fetch_file`); one an older
    version stored unchecked and that `verify` now refuses is removed and downloaded again. The
    folder is named by the URL's sha256 so that equal file names from different URLs do not meet
    (and no secret of the URL appears in it); the file name is the URL's path's last component,
    refused (ValueError) where it would leave the cache.
    """
    folder = f"downloads/{hashlib.sha256(url.encode()).hexdigest()[:16]}"
    dest = safe_cache_path(f"{folder}/{url_filename(url)}", root=root)
    if dest.is_file():
        try:
            if verify is not None:
                verify(dest)
            return LocalFile(dest, url=redact_url(url))
        except Exception:  # noqa: BLE001  (a poisoned entry: replace it)
            dest.unlink(missing_ok=True)
    return fetch_file(url, dest, progress=progress, verify=verify)


def _progress_bar(total, name, enabled):
    from tqdm import tqdm

    # disable=None: tqdm draws only on a terminal, so logs and captured stderr stay one clean line per error
    return tqdm(total=total, desc=name, unit="B", unit_scale=True, unit_divisor=1024, disable=None if enabled else True, leave=False)
