"""A --weights value -> validated detectron2 weights, as one downward chain of steps:

    WeightsSpec.parse(text)            spec.py          what was passed (path, .pkl, URL, zoo:NAME)
      -> spec.fetch()                  spec.py          a local file and its sha256 (hashed once)
      -> load_checkpoint(local.path)   loading.py       the checkpoint, loaded without running code
      -> locate                        detect.py        its format and the state dict of its ResNet
      -> as_float32                    tensors.py       kept tensors as float32, refused dtypes
      -> convert_state_dict            formats.py       detectron2 names
      -> validate                      architecture.py  names and shapes checked; depth and width
      -> check_values                  tensors.py       values checked (NaN/Inf, BatchNorm variances)
      -> write                         here             the .pkl, atomically, with its provenance

`convert_file` (tools/convert.py) writes beside the input or where asked; `prepare_weights`
(the engine) writes into the cache under the input's sha256 and reuses that file when the
same bytes come again. Each failure is one `ConversionError` naming the file and the problem,
and never leaves a partial output.

The output is detectron2's own pickle (the design card's converted-weights contract):
    {"model": {name: np.ndarray}, "__author__": format, "matching_heuristics": True,
     "__provenance__": {"input", "sha256", "format", "entry", "converter", "depth", "width", "input_settings"[, "url"]}}
where input_settings are the config keys a model fine-tuned from it needs: the format's input
settings (RGB, mean/std, stride) and the architecture (MODEL.RESNETS.DEPTH, widths); `url`, for a
downloaded input (http(s) URL, zoo:NAME), is the (redacted) URL its bytes were fetched from.

RULES: converted weights are never converted again (read again they would pass as format 'backbone'
and lose their real format and input settings): they are refused, pointing at --weights FILE.pkl; the
input is never damaged (an output that is the input, by path, link or inode, is refused even with
--force); every kept tensor is float32 with real values (benchmark.weights.tensors);
`PreparedWeights.sha256` is the sha256 of the bytes of the converted file the run loads, hashed from
the very bytes written or parsed, never taken from a file's own provenance (which a tampered file
copies); the input checkpoint's hash is `source_sha256`, only where this process hashed that input (a
converted .pkl given as --weights has None: its provenance's sha256 is a claim nothing can verify).
"""
import dataclasses
import hashlib
import os
import pickle
from pathlib import Path

from benchmark import __version__
from benchmark.fileio import atomic_write, remove_stale_temporaries, unusable_output
from benchmark.weights import download
from benchmark.weights.architecture import TORCHVISION_WIDTH, architecture_settings, expected_shapes, settings_for, validate
from benchmark.weights.detect import format_that_reads, locate
from benchmark.weights.errors import ConversionError
from benchmark.weights.formats import SOURCES, convert_state_dict, dropped_keys
from benchmark.weights.loading import load_checkpoint, load_converted, load_converted_with_sha256
from benchmark.weights.spec import WeightsSpec
from benchmark.weights.tensors import as_float32, cast_summary, check_keys, check_values

# Names other modules import from here (the converter's public face), besides what it defines.
__all__ = ["ConversionError", "ConversionResult", "PreparedWeights", "SOURCES", "convert_file", "expected_shapes",
           "load_checkpoint", "load_converted", "prepare_weights"]


@dataclasses.dataclass
class ConversionResult:
    """What one conversion wrote, for tools/convert.py's summary."""

    output: Path
    format: str
    depth: int
    width: int
    tensors: int
    dropped: dict  # {kind: [keys]}
    provenance: dict
    casts: dict = dataclasses.field(default_factory=dict)  # {source dtype: tensors cast to float32}
    sha256: str | None = None  # of the written file's bytes
    note: str | None = None  # what the format says about the entry taken (detect.Located.note)

    def summary(self) -> str:
        dropped = ", ".join(f"{len(keys)} {kind}" for kind, keys in self.dropped.items()) or "none"
        width = "" if self.width == TORCHVISION_WIDTH else f" (width {self.width})"
        casts = cast_summary(self.casts)
        note = f" ({self.note})" if self.note else ""
        return (f"format:  {self.format}{note}\ndepth:   ResNet-{self.depth}{width}\ntensors: {self.tensors} written\n"
                + (f"dtype:   {casts}\n" if casts else "") + f"dropped: {dropped}\noutput:  {self.output}")


@dataclasses.dataclass
class PreparedWeights:
    """Weights ready for a run: cfg.MODEL.WEIGHTS, the record's weights fields, the config keys."""

    path: Path  # a converted .pkl, ready for cfg.MODEL.WEIGHTS
    name: str  # the leaderboard row (WeightsSpec.name)
    sha256: str  # of the bytes of `path` as read or written here: what the run must load (record weights.sha256)
    source: str  # the spec as given, a URL's secrets redacted
    input_settings: dict  # config keys: input format, mean/std, stride, architecture
    source_sha256: str | None = None  # of the original checkpoint, hashed here; None for a given .pkl (its claim is unverifiable)
    format: str | None = None  # the source format (provenance format, else __author__)
    url: str | None = None  # the (redacted) URL the original was downloaded from (provenance url); None for a local file

    def record_fields(self, name: str | None = None) -> dict:
        """The run record's `weights` (records.results.WEIGHTS_KEYS), all from here: the sha256 is the one
        taken when the converted file was read or written, which the checkpointer pins for the load."""
        return {"name": name or self.name, "sha256": self.sha256, "source": self.source,
                "source_sha256": self.source_sha256, "format": self.format}


def _refuse_unwritable(output):
    """Refuse an output that cannot be written (its folder unusable, a folder in its place), before anything
    is read or downloaded."""
    if output is None:
        return
    output = Path(output)
    problem = unusable_output(output.parent, "--output")
    if problem:
        raise ConversionError(output, f"cannot be written ({problem})")
    if output.is_dir():
        raise ConversionError(output, "is a folder; name the .pkl file to write")


def _refuse_existing(output, force):
    if output is not None and Path(output).exists() and not force:
        raise ConversionError(output, "already exists; pass --force to overwrite")


def convert_file(input, output=None, fmt="auto", force=False) -> ConversionResult:
    """Convert a checkpoint (path, http(s) URL or zoo:NAME) into detectron2 weights at `output`.

    `output` defaults to the input's name with .pkl beside it (in the cache for URLs and zoo
    names). An existing output is kept unless `force`; an explicit one is checked before any
    download. Validation happens before anything is written, and the write is atomic: on any
    error there is no output file.
    """
    if fmt != "auto" and fmt not in SOURCES:
        raise ConversionError(input, f"unknown format {fmt!r}; known: auto, {', '.join(SOURCES)}")
    spec = WeightsSpec.parse(input)
    _refuse_unwritable(output)
    local = spec.fetch() if spec.kind in ("file", "converted") else None  # no I/O beyond a stat
    if local is not None and output is not None:
        _refuse_input_as_output(local.path, Path(output), defaulted=False)
    _refuse_existing(output, force)
    local = local or spec.fetch()
    defaulted = output is None
    output = Path(output) if output is not None else local.path.with_suffix(".pkl")
    _refuse_unwritable(output)
    _refuse_input_as_output(local.path, output, defaulted)
    _refuse_existing(output, force)
    return _convert(spec, local, output, fmt)


def _converted_format(checkpoint) -> str | None:
    """The source format of detectron2's converted pickle ({"model": {name: array}, "__author__", ...},
    which this module writes), or None when `checkpoint` is not one (a raw training checkpoint)."""
    if not (isinstance(checkpoint, dict) and "__author__" in checkpoint and isinstance(checkpoint.get("model"), dict)):
        return None
    provenance = checkpoint.get("__provenance__")
    fmt = provenance.get("format") if isinstance(provenance, dict) else None
    return fmt if isinstance(fmt, str) else str(checkpoint["__author__"])


def _refuse_converted(checkpoint, path: Path) -> None:
    """Refuse to convert converted weights again. Read again, their names are already detectron2's, so
    they would pass as format 'backbone' with torchvision's input settings: SimCLR's RGB in [0, 1] and
    the real format would be lost. Copying them instead would only duplicate a file that is used as it
    is, so the one correct answer is to say so (nothing is written)."""
    fmt = _converted_format(checkpoint)
    if fmt is None:
        return
    rename = "" if path.suffix == ".pkl" else ", renamed to .pkl"
    raise ConversionError(path, f"already converted weights (detectron2's .pkl, format {fmt}): nothing to convert; "
                                f"use it as it is (--weights FILE.pkl{rename}); nothing was written")


def _refuse_input_as_output(input: Path, output: Path, defaulted: bool) -> None:
    """Refuse an output that is the input file (same path, a symbolic or hard link to it): writing
    it would destroy the checkpoint, whatever --force says."""
    same = output.exists() and os.path.samefile(output, input)
    # 'dir/x/../INPUT' with no dir/x: not there yet, but writing it creates dir/x and lands on INPUT
    lexical = Path(os.path.normpath(output.absolute())) == Path(os.path.normpath(input.absolute()))
    if not (same or lexical or output.resolve() == input.resolve()):
        return
    if defaulted:  # INPUT.pkl converted beside itself: say what the file is
        _refuse_converted(load_checkpoint(input), input)  # its own one line when it is no checkpoint at all
        raise ConversionError(input, "a raw checkpoint named .pkl: its default output (INPUT with .pkl) would replace "
                                     "it; pass -o OTHER.pkl to convert it; nothing was written")
    how = (" (through a symbolic link)" if output.is_symlink() else "" if output.resolve() == input.resolve()
           else " (a hard link to the same file)")
    raise ConversionError(output, f"is the input checkpoint {input} itself{how}: converting would overwrite it "
                                  "(--force never overwrites the input); choose another -o OUTPUT.pkl; nothing was written")


def _convert(spec: WeightsSpec, local: download.LocalFile, output: Path, fmt="auto") -> ConversionResult:
    """Load `local`, convert and validate it, write `output`: the chain's steps after fetching."""
    checkpoint = load_checkpoint(local.path)
    _refuse_converted(checkpoint, local.path)
    detected = fmt == "auto"
    try:
        # the zoo knows which released file it is where the keys cannot tell (Exemplar, Barlow Twins, ...)
        located = locate(checkpoint, fmt, hint=spec.format_hint)
        sd, fmt = located.state_dict, located.format
        source = SOURCES[fmt]
        check_keys(sd)
        sd, casts = as_float32(sd, source.rename)
        converted = convert_state_dict(sd, source)
        try:
            depth, width = validate(converted)  # names and shapes first, then the values
        except ConversionError as e:
            # a detected format whose names do not fit, where another reads the file (a solo-learn state dict
            # re-saved without Lightning's version key passes as 'backbone'): say which --format
            other = format_that_reads(checkpoint, exclude=(fmt,)) if detected else None
            raise ConversionError(None, e.problem + (f" (as format {fmt}; --format {other} reads it)" if other else "")
                                  ) from None
        check_values(converted)
    except ConversionError as e:
        suffix = "" if fmt == "auto" or "(as format " in e.problem else f" (as format {fmt})"
        raise ConversionError(local.path, e.problem + suffix) from None
    provenance = {
        "input": spec.label,
        "sha256": local.sha256,
        "format": fmt,
        "entry": located.entry,  # where in the file the weights were ('teacher', 'state_dict', '' = top level)
        "converter": __version__,
        "depth": depth,
        "width": width,
        "input_settings": settings_for(source, depth, width),
    }
    if local.url is not None:  # downloaded (a URL, a zoo name): the URL the bytes came from, a zoo fallback's if used
        provenance["url"] = local.url
    data = {"model": converted, "__author__": fmt, "matching_heuristics": True, "__provenance__": provenance}
    try:
        with atomic_write(output, "wb") as f:
            writer = _HashingWriter(f)
            pickle.dump(data, writer, protocol=5)
    except OSError as e:  # a full disk, a read-only or missing folder: atomic_write left nothing behind
        raise ConversionError(output, f"cannot write the converted weights ({e.strerror or e}); nothing was written") from None
    return ConversionResult(output, fmt, depth, width, len(converted), dropped_keys(sd, source), provenance, casts,
                            writer.digest.hexdigest(), located.note)


class _HashingWriter:
    """A file's write() that also hashes every byte written: the digest of the file as written."""

    def __init__(self, f):
        self.f, self.digest = f, hashlib.sha256()

    def write(self, data):
        self.digest.update(data)
        return self.f.write(data)


def prepare_weights(spec, cache_dir=None) -> PreparedWeights:
    """Turn whatever the user passed as --weights into a validated converted .pkl.

    `spec`: a converted .pkl (checked, used in place), a raw checkpoint path, an http(s) URL or
    zoo:NAME (text, Path or WeightsSpec). Raw checkpoints are converted into
    `cache_dir/converted/<sha256>.pkl` (default: download.cache_dir()) and that file is reused
    when the same content comes again. Raises ConversionError; ValueError where the cache folder
    resolves outside the cache.
    """
    spec = WeightsSpec.parse(spec)
    if spec.kind == "converted":
        return _use_converted(Path(spec.target), spec, source_sha256=None)
    local = spec.fetch()
    cache = Path(cache_dir) if cache_dir is not None else download.cache_dir()
    out = download.safe_cache_path(f"converted/{local.sha256}.pkl", root=cache)
    if out.is_file():
        try:
            prepared = _use_converted(out, spec, source_sha256=local.sha256)
            # the same bytes, fetched this time from where `local` says (a converted file keeps its first URL)
            return dataclasses.replace(prepared, url=local.url) if local.url is not None else prepared
        except ConversionError:
            pass  # a stale, torn or foreign cache entry: convert again over it
    if out.parent.is_dir():
        remove_stale_temporaries(out.parent)  # what conversions killed earlier left
    result = _convert(spec, local, out)
    return PreparedWeights(out, spec.name, result.sha256, spec.text, dict(result.provenance["input_settings"]),
                           source_sha256=local.sha256, format=result.format, url=result.provenance.get("url"))


def _use_converted(path: Path, spec: WeightsSpec, source_sha256) -> PreparedWeights:
    """Converted weights at `path`, validated, as PreparedWeights.

    The architecture settings are derived from the weights' shapes, not read from the file, so
    that a file written before they were recorded (or edited since) still builds its network.
    `sha256` is that of the bytes parsed here. `source_sha256`: of the original input where the
    caller knows it (it hashed the input), else None: the provenance's `sha256` of a given .pkl is
    the file's own claim, which nothing here can check (a tampered file copies a genuine one's), so
    it is not recorded as the original checkpoint's hash.
    """
    data, sha256 = load_converted_with_sha256(path)
    try:
        depth, width = validate(data["model"])  # names and shapes first, then the values
        check_values(data["model"])
    except ConversionError as e:
        raise ConversionError(path, e.problem) from None
    provenance = data.get("__provenance__") if isinstance(data.get("__provenance__"), dict) else {}
    settings = provenance.get("input_settings")
    if settings is None:
        author = str(data["__author__"]).lower()
        if author not in SOURCES:
            raise ConversionError(path, f"does not say which input settings it needs (no __provenance__, author "
                                        f"{data['__author__']!r}); convert the original checkpoint with tools/convert.py")
        settings = SOURCES[author].input_settings
    if not isinstance(settings, dict):
        raise ConversionError(path, f"__provenance__ input_settings is a {type(settings).__name__}, not a mapping of "
                                    "config keys; convert the original checkpoint with tools/convert.py")
    fmt = provenance.get("format") if isinstance(provenance.get("format"), str) else str(data["__author__"])
    url = provenance.get("url") if isinstance(provenance.get("url"), str) else None
    return PreparedWeights(path, spec.name, sha256, spec.text, {**settings, **architecture_settings(depth, width)},
                           source_sha256=source_sha256, format=fmt, url=url)
