"""The model zoo: the 24 released checkpoints of the paper, the public ones beyond it, safe names, and
the checksum-on-first-use cache."""
import contextlib
import hashlib
import http.server
import json
import pickle
import re

import pytest

from benchmark.weights import download, zoo
from benchmark.weights.convert import prepare_weights
from benchmark.weights.download import DownloadError
from benchmark.weights.loading import load_converted

BASE = "https://frontiers.blob.core.windows.net/pretraining/checkpoints/pil_pretrained_models/good_transfer/"


def test_the_24_released_checkpoints():
    entries = [e for e in zoo.list_zoo() if e.paper]
    assert len(entries) == 24 and len({e.name for e in entries}) == 24
    assert all(e.url == BASE + e.file for e in entries)
    by_table = {}
    for e in entries:
        for table, _ in e.paper:
            by_table.setdefault(table, []).append(e.name)
    assert {t: len(n) for t, n in by_table.items()} == {"table1": 10, "table2": 14, "table3": 2}
    assert by_table["table3"] == ["exemplar_v1", "exemplar_v2"]
    assert [e.augmentations for e in entries[:5]] == ["f", "fr", "frc", "frcg", "frcgb"]
    # the authors' corrected README (shared/REFERENCES.md): the old spelling is a fallback of the same file
    places = zoo.get("moco_v2_places")
    assert (places.file, places.url, places.fallback_url) == (
        "moco_v2_places.pth", BASE + "moco_v2_places.pth", BASE + "moco_v2_palces.pth")
    assert "c182505" in places.note
    sup = zoo.get("supervised_imagenet")
    assert (sup.file, sup.url, sup.fallback_url) == ("supervised_imagenet.pth", BASE + "supervised_imagenet.pth", None)
    assert "supervised_synthia.pth" in sup.note and "601d566" in sup.note
    # the old links that were other checkpoints are no fallback of anything
    assert [e.name for e in zoo.list_zoo() if e.fallback_url] == ["moco_v2_places"]
    assert sup.paper == (("table1", "frcgb (supervised)"), ("table2", "ImageNet (supervised)"))
    assert zoo.get("moco_v2_imagenet").paper == (("table1", "frcgb (MoCo v2)"), ("table2", "ImageNet (MoCo v2)"))


# The public ResNet-50s beyond the paper: (name, format, URL exactly as the project's README publishes it)
PUBLIC = [
    ("moco_v1_200ep", "moco", "https://dl.fbaipublicfiles.com/moco/moco_checkpoints/moco_v1_200ep/moco_v1_200ep_pretrain.pth.tar"),
    ("moco_v2_200ep", "moco", "https://dl.fbaipublicfiles.com/moco/moco_checkpoints/moco_v2_200ep/moco_v2_200ep_pretrain.pth.tar"),
    ("moco_v2_800ep", "moco", "https://dl.fbaipublicfiles.com/moco/moco_checkpoints/moco_v2_800ep/moco_v2_800ep_pretrain.pth.tar"),
    ("mocov3_100ep", "mocov3", "https://dl.fbaipublicfiles.com/moco-v3/r-50-100ep/r-50-100ep.pth.tar"),
    ("mocov3_300ep", "mocov3", "https://dl.fbaipublicfiles.com/moco-v3/r-50-300ep/r-50-300ep.pth.tar"),
    ("mocov3_1000ep", "mocov3", "https://dl.fbaipublicfiles.com/moco-v3/r-50-1000ep/r-50-1000ep.pth.tar"),
    ("swav_800ep", "swav", "https://dl.fbaipublicfiles.com/deepcluster/swav_800ep_pretrain.pth.tar"),
    ("swav_400ep", "swav", "https://dl.fbaipublicfiles.com/deepcluster/swav_400ep_pretrain.pth.tar"),
    ("swav_200ep", "swav", "https://dl.fbaipublicfiles.com/deepcluster/swav_200ep_pretrain.pth.tar"),
    ("swav_100ep", "swav", "https://dl.fbaipublicfiles.com/deepcluster/swav_100ep_pretrain.pth.tar"),
    ("dino_resnet50", "dino_backbone", "https://dl.fbaipublicfiles.com/dino/dino_resnet50_pretrain/dino_resnet50_pretrain.pth"),
    ("dino_resnet50_full", "dino",
     "https://dl.fbaipublicfiles.com/dino/dino_resnet50_pretrain/dino_resnet50_pretrain_full_checkpoint.pth"),
    ("barlowtwins_1000ep", "barlowtwins", "https://dl.fbaipublicfiles.com/barlowtwins/"
     "epochs1000_bs2048_lr0.2_lambd0.0051_proj_8192_8192_8192_scale0.024/resnet50.pth"),
    ("vicreg_resnet50", "vicreg", "https://dl.fbaipublicfiles.com/vicreg/resnet50.pth"),
    ("densecl_imagenet_200ep", "densecl", "https://cloudstor.aarnet.edu.au/plus/s/hdAg5RYm8NNM2QP/download"),
    ("densecl_coco_800ep", "densecl", "https://cloudstor.aarnet.edu.au/plus/s/W5oDyYB218xz625/download"),
    ("torchvision_resnet50", "torchvision", "https://download.pytorch.org/models/resnet50-0676ba61.pth"),
]


def test_the_public_checkpoints_beyond_the_paper():
    public = [e for e in zoo.list_zoo() if not e.paper]
    assert [(e.name, e.format, e.url) for e in public] == PUBLIC
    assert all(e.source.split(":")[1].startswith(("README.md", "CONFIG.md", "torchvision/")) for e in public)
    assert len({e.file for e in zoo.list_zoo()}) == len(zoo.list_zoo())  # barlowtwins and vicreg: both resnet50.pth
    assert {e.supervision for e in public} == {"unsupervised", "supervised"}
    assert zoo.get("torchvision_resnet50").supervision == "supervised"


def test_every_zoo_format_is_a_converter_format():
    from benchmark.weights.formats import SOURCES

    assert {e.shown_format for e in zoo.list_zoo()} <= set(SOURCES)


def test_format_zoo_table_lists_every_checkpoint_and_the_notes():
    text = zoo.format_zoo_table()
    lines = text.splitlines()
    n = len(zoo.list_zoo())
    assert lines[0] == f"{n} checkpoints (ResNet-50); zoo:NAME downloads it once and pins its sha256"
    assert lines[2].split() == ["name", "method", "format", "data", "paper", "source"]
    rows = lines[3:3 + n]
    assert [r.split(" ")[0] for r in rows] == [e.name for e in zoo.list_zoo()]
    assert lines[3 + n] == "" and lines[4 + n] == f"URLs: the paper's (24): {BASE}FILE; the others:"
    assert lines[5 + n:5 + n + len(PUBLIC)] == [f"  {name}: {url}" for name, _, url in PUBLIC]
    swav = next(r for r in rows if r.startswith("swav_800ep "))
    assert "  swav  " in swav and swav.rstrip().endswith("facebookresearch/swav:README.md (Model Zoo)")
    assert any(ln.startswith("supervised_imagenet [1]") for ln in lines)
    assert any(ln.startswith("[1] supervised_imagenet: Table 2's first published link for this row was "
                             "supervised_synthia.pth") and "601d566" in ln for ln in lines)
    assert any(ln.startswith("[2] moco_v2_places: The README first spelled the file moco_v2_palces.pth (sic)")
               and ln.endswith(f"Fallback (tried second, only on HTTP 404/410): {BASE}moco_v2_palces.pth") for ln in lines)


def test_an_unknown_name_is_refused_with_the_known_ones():
    with pytest.raises(zoo.UnknownCheckpointError, match="unknown zoo checkpoint 'moco_v3'; known: moco_v2_imagenet_aug_f, "):
        zoo.get("moco_v3")


@pytest.mark.parametrize("bad", ["../exemplar_v1", "/etc/passwd", "zoo/exemplar_v1", "..", ""])
def test_an_unsafe_name_is_refused_before_any_download(bad, isolated_cache):
    with pytest.raises(zoo.ZooError, match="unsafe zoo name"):
        zoo.fetch(bad)
    assert not isolated_cache.exists()


@pytest.fixture
def served(http_server, monkeypatch):
    """(payload, folder, base): exemplar_v1.pth served from a local mirror."""
    base, folder = http_server
    # several download chunks, and loadable (a pickled dict): downloads are loaded before they enter the cache
    blob = bytes(range(256)) * 4099
    payload = pickle.dumps({"blob": blob[: 2 * len(blob) - len(pickle.dumps({"blob": blob}, protocol=4))]}, protocol=4)
    (folder / "exemplar_v1.pth").write_bytes(payload)
    monkeypatch.setenv("BENCHMARK_ZOO_MIRROR", base)
    return payload, folder, base


def test_a_first_fetch_records_the_checksum(served, isolated_cache):
    payload, _, _ = served
    path = zoo.fetch("exemplar_v1", progress=False)
    assert path == isolated_cache / "zoo" / "exemplar_v1.pth" and path.read_bytes() == payload
    record = json.loads((isolated_cache / "zoo" / "sha256.json").read_text())
    assert record == {"exemplar_v1.pth": hashlib.sha256(payload).hexdigest()}


def test_a_fetch_hashes_the_file_once_and_returns_the_digest(served, monkeypatch):
    payload, _, _ = served
    calls = []
    real = download.sha256_file
    monkeypatch.setattr(download, "sha256_file", lambda path: calls.append(path) or real(path))
    first = zoo.fetch_file("exemplar_v1", progress=False)
    assert (first.sha256, calls) == (hashlib.sha256(payload).hexdigest(), [])  # hashed while downloading
    again = zoo.fetch_file("exemplar_v1", progress=False)
    assert (again.sha256, calls) == (first.sha256, [first.path])  # the cached copy, checked once


def test_a_second_use_is_served_from_the_cache(served):
    payload, folder, _ = served
    path = zoo.fetch("exemplar_v1", progress=False)
    (folder / "exemplar_v1.pth").unlink()
    assert zoo.fetch("exemplar_v1", progress=False) == path and path.read_bytes() == payload


def test_a_corrupted_cached_file_is_refused(served):
    payload, _, _ = served
    path = zoo.fetch("exemplar_v1", progress=False)
    path.write_bytes(payload[:-1] + b"\x00")
    with pytest.raises(zoo.ZooError, match=r"exemplar_v1.pth: sha256 [0-9a-f]{64} differs from the one recorded at "
                                           r"first download .*is not used. Delete it to download again"):
        zoo.fetch("exemplar_v1", progress=False)


def test_a_redownload_with_other_bytes_is_refused_and_not_kept(served, isolated_cache):
    payload, folder, _ = served
    zoo.fetch("exemplar_v1", progress=False).unlink()
    (folder / "exemplar_v1.pth").write_bytes(b"other bytes")
    with pytest.raises(DownloadError, match=f"sha256 mismatch: expected {hashlib.sha256(payload).hexdigest()}"):
        zoo.fetch("exemplar_v1", progress=False)
    assert sorted(p.name for p in (isolated_cache / "zoo").iterdir()) == [".lock", "sha256.json", "urls.json"]  # from the first download


def test_a_download_cut_short_is_refused_and_not_recorded(served, isolated_cache, monkeypatch):
    _, _, base = served
    monkeypatch.setenv("BENCHMARK_ZOO_MIRROR", f"{base}/cut")  # sends half the announced bytes
    with pytest.raises(DownloadError, match=r"download cut short: received 524672 of 1049344 bytes"):
        zoo.fetch("exemplar_v1", progress=False)
    assert sorted(p.name for p in (isolated_cache / "zoo").iterdir()) == [".lock"]


def test_zoo_name_as_weights_goes_through_the_converter(http_server, monkeypatch, synthetic_checkpoint, isolated_cache):
    """`zoo:NAME` in prepare_weights (what --weights and tools/convert.py call) downloads, records, converts."""
    base, folder = http_server
    raw = synthetic_checkpoint("moco", seed=3, width=8)
    (folder / "moco_v2_places.pth").write_bytes(raw.read_bytes())
    monkeypatch.setenv("BENCHMARK_ZOO_MIRROR", base)
    prepared = prepare_weights("zoo:moco_v2_places")
    assert (prepared.name, prepared.source, prepared.url) == ("moco_v2_places", "zoo:moco_v2_places",
                                                              f"{base}/moco_v2_places.pth")
    assert prepared.source_sha256 == hashlib.sha256(raw.read_bytes()).hexdigest()  # .sha256: of the converted .pkl
    assert json.loads((isolated_cache / "zoo" / "sha256.json").read_text()) == {"moco_v2_places.pth": prepared.source_sha256}
    provenance = load_converted(prepared.path)["__provenance__"]
    assert (provenance["input"], provenance["url"]) == ("zoo:moco_v2_places", f"{base}/moco_v2_places.pth")


@pytest.mark.parametrize("name, layout, recorded", [("exemplar_v2", "exemplar", "exemplar"),
                                                    ("supervised_imagenet", "exemplar", "supervised"),
                                                    ("moco_v2_imagenet", "moco", "moco")])
def test_zoo_exemplar_and_supervised_files_are_recorded_as_such(name, layout, recorded, http_server, monkeypatch,
                                                                synthetic_checkpoint):
    """Their keys are plain torchvision ones; the zoo names the format the provenance records."""
    base, folder = http_server
    (folder / zoo.get(name).file).write_bytes(synthetic_checkpoint(layout, width=8).read_bytes())
    monkeypatch.setenv("BENCHMARK_ZOO_MIRROR", base)
    assert load_converted(prepare_weights(f"zoo:{name}").path)["__author__"] == recorded


@pytest.mark.parametrize("name, layout, fmt", [("swav_800ep", "swav", "swav"), ("barlowtwins_1000ep", "barlowtwins", "barlowtwins"),
                                              ("dino_resnet50_full", "dino", "dino")])
def test_a_public_zoo_checkpoint_downloads_and_converts(name, layout, fmt, http_server, monkeypatch, synthetic_checkpoint,
                                                        isolated_cache, capsys):
    """`--weights zoo:NAME` for a checkpoint beyond the paper: served by a local mirror under its zoo
    file name, downloaded once, its sha256 pinned, converted with the zoo's format."""
    from benchmark.weights.synthetic import torchvision_weights
    from tests.helpers.tools import tool

    base, folder = http_server
    raw = synthetic_checkpoint(layout, seed=2, width=8)
    entry = zoo.get(name)
    (folder / entry.file).write_bytes(raw.read_bytes())
    monkeypatch.setenv("BENCHMARK_ZOO_MIRROR", base)
    out = isolated_cache.parent / f"{name}.pkl"
    assert tool("convert")([f"zoo:{name}", "-o", str(out)]) == 0, capsys.readouterr().err
    assert capsys.readouterr().out.startswith(f"format:  {fmt}")
    data = load_converted(out)
    assert data["__provenance__"]["format"] == fmt and data["__provenance__"]["input"] == f"zoo:{name}"
    assert data["__provenance__"]["sha256"] == hashlib.sha256(raw.read_bytes()).hexdigest()
    assert json.loads((isolated_cache / "zoo" / "sha256.json").read_text()) == {entry.file: data["__provenance__"]["sha256"]}
    tv = torchvision_weights(2, 50, 8)
    assert (data["model"]["res4.5.conv3.weight"] == tv["layer3.5.conv3.weight"].numpy()).all()
    prepared = prepare_weights(f"zoo:{name}")  # what --weights does: the pinned copy, not a second download
    assert (prepared.name, prepared.format, prepared.source_sha256) == (name, fmt, data["__provenance__"]["sha256"])


@pytest.mark.parametrize("public, problem", [
    ({"x": {"url": "ftp://h/x.pth", "format": "moco", "method": "m", "data": "d", "source": "s"}}, "url must be http(s)"),
    ({"x": {"url": "https://h/x.pth", "method": "m", "data": "d", "source": "s"}}, "checkpoint 'x' lacks 'format'"),
    ({"exemplar_v1": {"url": "https://h/x.pth", "format": "moco", "method": "m", "data": "d", "source": "s"}},
     "checkpoint 'exemplar_v1' is listed twice"),
    ({"x": {"url": "https://h/x.pth", "file": "exemplar_v1.pth", "format": "moco", "method": "m", "data": "d", "source": "s"}},
     "cache file names must be unique; listed twice: exemplar_v1.pth"),
    ({"x": {"url": "https://h/x.pth", "file": "../x.pth", "format": "moco", "method": "m", "data": "d", "source": "s"}},
     "unsafe zoo file '../x.pth'"),
])
def test_a_bad_public_zoo_entry_is_one_line(public, problem, tmp_path):
    import yaml

    data = yaml.safe_load(zoo.ZOO_FILE.read_text())
    data["public"] = public
    path = tmp_path / "zoo.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(zoo.ZooError, match=re.escape(problem)) as info:
        zoo._load(str(path))
    assert "\n" not in str(info.value)


# --------------------------------------------------------------------------- fallback URLs (same file, older URL)

class _Statuses(http.server.BaseHTTPRequestHandler):
    """Serves FILES ({name: bytes}); a name in STATUS answers that HTTP status instead; every path asked is logged."""

    FILES, STATUS, ASKED = {}, {}, []

    def do_GET(self):
        name = self.path.lstrip("/")
        self.ASKED.append(name)
        code = self.STATUS.get(name, 200 if name in self.FILES else 404)
        if code != 200:
            self.send_error(code)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.FILES[name])))
        self.end_headers()
        self.wfile.write(self.FILES[name])

    def log_message(self, *args):
        pass


@pytest.fixture
def places_mirror(monkeypatch):
    """(serve(files, status) -> base URL, the paths asked): a mirror for moco_v2_places.pth and its fallback
    moco_v2_palces.pth, each present, absent or failing with the status given."""
    from tests.helpers.server import serve

    with contextlib.ExitStack() as stack:
        def start(files, status=None):
            handler = type("Handler", (_Statuses,), {"FILES": files, "STATUS": status or {}, "ASKED": []})
            base = stack.enter_context(serve(handler))
            monkeypatch.setenv("BENCHMARK_ZOO_MIRROR", base)
            start.asked = handler.ASKED
            return base
        yield start


PAYLOAD = pickle.dumps({"places": b"moco v2 on Places" * 100}, protocol=4)  # loadable: checked before the cache takes it


def test_the_primary_url_is_used_when_present(places_mirror, isolated_cache):
    base = places_mirror({"moco_v2_places.pth": PAYLOAD, "moco_v2_palces.pth": b"never asked"})
    local = zoo.fetch_file("moco_v2_places", progress=False)
    assert (local.path.read_bytes(), local.url, places_mirror.asked) == (PAYLOAD, f"{base}/moco_v2_places.pth",
                                                                         ["moco_v2_places.pth"])
    assert json.loads((isolated_cache / "zoo" / "urls.json").read_text()) == {"moco_v2_places.pth": f"{base}/moco_v2_places.pth"}


def test_a_404_primary_falls_back_and_the_fallback_url_is_recorded(places_mirror, isolated_cache, tmp_path):
    base = places_mirror({"moco_v2_palces.pth": PAYLOAD})
    local = zoo.fetch_file("moco_v2_places", progress=False)
    assert places_mirror.asked == ["moco_v2_places.pth", "moco_v2_palces.pth"]
    # stored under the entry's (corrected) name, pinned, and said to come from the fallback
    assert local.path == isolated_cache / "zoo" / "moco_v2_places.pth" and local.path.read_bytes() == PAYLOAD
    assert local.url == f"{base}/moco_v2_palces.pth"
    assert json.loads((isolated_cache / "zoo" / "sha256.json").read_text()) == {
        "moco_v2_places.pth": hashlib.sha256(PAYLOAD).hexdigest()}
    assert json.loads((isolated_cache / "zoo" / "urls.json").read_text()) == {"moco_v2_places.pth": f"{base}/moco_v2_palces.pth"}
    again = zoo.fetch_file("moco_v2_places", progress=False)  # from the cache: no request, the same URL said
    assert (again.url, len(places_mirror.asked)) == (f"{base}/moco_v2_palces.pth", 2)


def test_a_fallback_download_is_recorded_in_the_converted_provenance(places_mirror, synthetic_checkpoint):
    base = places_mirror({"moco_v2_palces.pth": synthetic_checkpoint("moco", seed=4, width=8).read_bytes()})
    prepared = prepare_weights("zoo:moco_v2_places")
    assert prepared.url == f"{base}/moco_v2_palces.pth"
    assert load_converted(prepared.path)["__provenance__"]["url"] == f"{base}/moco_v2_palces.pth"


@pytest.mark.parametrize("status", [404, 410])
def test_both_urls_absent_is_one_error_naming_both(status, places_mirror, isolated_cache):
    base = places_mirror({}, {"moco_v2_palces.pth": status})
    reason = {404: "Not Found", 410: "Gone"}[status]
    with pytest.raises(DownloadError) as refused:
        zoo.fetch_file("moco_v2_places", progress=False)
    assert str(refused.value) == (f"zoo checkpoint 'moco_v2_places' is at neither of its URLs: {base}/moco_v2_places.pth "
                                  f"(HTTP 404 Not Found), then the fallback {base}/moco_v2_palces.pth (HTTP {status} "
                                  f"{reason}); nothing was stored")
    assert sorted(p.name for p in (isolated_cache / "zoo").iterdir()) == [".lock"]


@pytest.mark.parametrize("status", [500, 503, 403])
def test_a_primary_that_fails_otherwise_is_reported_without_fallback(status, places_mirror, isolated_cache):
    base = places_mirror({"moco_v2_palces.pth": PAYLOAD}, {"moco_v2_places.pth": status})
    with pytest.raises(DownloadError) as refused:
        zoo.fetch_file("moco_v2_places", progress=False)
    assert str(refused.value).startswith(f"{base}/moco_v2_places.pth: HTTP {status} ")
    assert places_mirror.asked == ["moco_v2_places.pth"]  # the fallback is not tried
    assert sorted(p.name for p in (isolated_cache / "zoo").iterdir()) == [".lock"]


def test_an_entry_without_fallback_reports_its_404_as_before(places_mirror, isolated_cache):
    base = places_mirror({})
    with pytest.raises(DownloadError) as refused:
        zoo.fetch_file("supervised_imagenet", progress=False)
    assert str(refused.value) == f"{base}/supervised_imagenet.pth: HTTP 404 Not Found"
    assert places_mirror.asked == ["supervised_imagenet.pth"]


@pytest.mark.parametrize("entry, problem", [
    ({"fallback_file": "a.pth", "fallback_url": "https://h/a.pth"}, "gives both fallback_file and fallback_url; keep one"),
    ({"fallback_url": "ftp://h/a.pth"}, "fallback_url must be http(s), got 'ftp://h/a.pth'"),
    ({"fallback_file": "../a.pth"}, "unsafe zoo fallback file '../a.pth'"),
    ({"fallback_file": "exemplar_v1.pth"}, "its fallback is its own URL"),
])
def test_a_bad_fallback_is_one_line(entry, problem, tmp_path):
    import yaml

    data = yaml.safe_load(zoo.ZOO_FILE.read_text())
    data["checkpoints"]["exemplar_v1"].update(entry)
    path = tmp_path / "zoo.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(zoo.ZooError, match=re.escape(problem)) as info:
        zoo._load(str(path))
    assert "\n" not in str(info.value)


def test_a_public_entry_takes_a_fallback_url(tmp_path):
    import yaml

    data = yaml.safe_load(zoo.ZOO_FILE.read_text())
    data["public"]["vicreg_resnet50"]["fallback_url"] = "https://h/old/resnet50.pth"
    path = tmp_path / "zoo.yaml"
    path.write_text(yaml.safe_dump(data))
    assert zoo._load(str(path))["vicreg_resnet50"].fallback_url == "https://h/old/resnet50.pth"
    data["public"]["vicreg_resnet50"] = {**data["public"]["vicreg_resnet50"], "fallback_file": "x.pth"}
    del data["public"]["vicreg_resnet50"]["fallback_url"]
    other = tmp_path / "zoo2.yaml"  # zoo._load caches by path
    other.write_text(yaml.safe_dump(data))
    with pytest.raises(zoo.ZooError, match="fallback_file needs base_url"):
        zoo._load(str(other))
