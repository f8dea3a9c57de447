"""What the user passed as --weights (or to tools/convert.py), parsed once into a `WeightsSpec`.

    WeightsSpec.parse("moco_v2.pth")        kind "file":      a raw checkpoint on disk
    WeightsSpec.parse("weights.pkl")        kind "converted": converted weights, used as they are
    WeightsSpec.parse("https://h/x.pth")    kind "url":       downloaded once into the cache
    WeightsSpec.parse("zoo:exemplar_v1")    kind "zoo":       a released checkpoint (benchmark.weights.zoo)

Parsing refuses what can be refused without touching the disk or the network (a scheme other
than http(s), an unknown or unsafe zoo name). `fetch()` then resolves the spec to a local file
with its sha256 (`download.LocalFile`, hashed at most once), which is all the converter needs.

RULE: a URL's secrets (user:password@, query values) stay in `target`, which only the download
reads; `text`, `label` and every error show `download.redact_url` of it.
"""
import dataclasses
import re
from pathlib import Path

from benchmark.weights import download, zoo
from benchmark.weights.errors import ConversionError
from benchmark.weights.loading import require_file

KINDS = ("converted", "file", "url", "zoo")
ZOO_PREFIX = "zoo:"
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")


@dataclasses.dataclass(frozen=True)
class WeightsSpec:
    """One --weights value: its `kind` (one of KINDS), what it points at, and the run's name for it.

    `text`: as given, a URL's secrets redacted (recorded as the run's weights source).
    `target`: the path (with ~ expanded), the full URL (for the download only: never shown, not
    in repr) or the zoo name. `name`: what leaderboard rows are keyed by: the zoo name, or the
    stem of the file or of the URL's file name.
    """

    text: str
    kind: str
    target: str = dataclasses.field(repr=False)
    name: str = ""

    @classmethod
    def parse(cls, text) -> "WeightsSpec":
        """Parse a path, an http(s) URL or zoo:NAME; a ConversionError naming `text` if refused."""
        if isinstance(text, WeightsSpec):
            return text
        text = str(text)
        if text.startswith(ZOO_PREFIX):
            name = text[len(ZOO_PREFIX):]
            try:
                zoo.get(name)
            except (zoo.UnknownCheckpointError, zoo.ZooError) as e:
                raise ConversionError(text, str(e)) from None
            return cls(text, "zoo", name, name)
        scheme = _SCHEME.match(text)
        if scheme:
            shown = download.redact_url(text)
            if scheme.group(1).lower() not in ("http", "https"):
                raise ConversionError(shown, f"refused scheme {scheme.group(1).lower()!r}: only http and https URLs "
                                             "are downloaded")
            return cls(shown, "url", text, Path(download.url_filename(text)).stem)
        path = Path(text).expanduser()
        return cls(text, "converted" if path.suffix == ".pkl" else "file", str(path), path.stem)

    @property
    def label(self) -> str:
        """What the converted file's provenance calls its input: a local file's absolute path, else the
        text (a URL redacted)."""
        return str(Path(self.target).resolve()) if self.kind in ("file", "converted") else self.text

    @property
    def format_hint(self):
        """The format the zoo knows a torchvision-keyed file to be ("exemplar", "supervised"), else None."""
        return zoo.get(self.target).source_format if self.kind == "zoo" else None

    def fetch(self, progress=True) -> download.LocalFile:
        """The local file this spec names, downloaded into the cache first for a URL or zoo name.

        A local path must be a regular file; nothing is hashed here unless a download or the
        zoo's check of its cached copy reads the bytes anyway. Every failure is one
        ConversionError naming the spec as the user wrote it (or the missing file).
        """
        if self.kind in ("file", "converted"):
            return download.LocalFile(require_file(self.target))
        try:
            if self.kind == "zoo":
                return _loadable_zoo_file(zoo.fetch_file(self.target, progress=progress))
            return download.cached_download(self.target, progress=progress)
        except download.DownloadError as e:
            raise ConversionError(self.text, e.problem) from None
        except (zoo.UnknownCheckpointError, ValueError, OSError) as e:  # ZooError, unsafe cache names, disk
            raise ConversionError(self.text, str(e)) from None


def _loadable_zoo_file(local: download.LocalFile) -> download.LocalFile:
    """`local` if it loads as a checkpoint; else a ConversionError saying how to get rid of it.

    New downloads are checked before they enter the cache (and before their sha256 is pinned);
    a file an older version cached and pinned unchecked (an HTML page, say) matches its pin and
    would be refused forever with no hint: the pin is a trust decision, so the user removes both.
    """
    try:
        download.verify_checkpoint(local.path)
    except ConversionError as e:
        raise ConversionError(local.path, f"the cached zoo file is not a loadable checkpoint ({e.problem}); delete it and "
                                          f"its entry in {local.path.parent / zoo.RECORD_NAME}, then run again to download "
                                          "afresh") from None
    return local
