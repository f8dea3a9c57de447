"""The model zoo: the 24 released checkpoints, safe names, and the checksum-on-first-use cache."""
import hashlib
import json
import pickle

import pytest

from benchmark.weights import download, zoo
from benchmark.weights.convert import prepare_weights
from benchmark.weights.download import DownloadError
from benchmark.weights.loading import load_converted

BASE = "https://frontiers.blob.core.windows.net/pretraining/checkpoints/pil_pretrained_models/good_transfer/"


def test_the_24_released_checkpoints():
    entries = zoo.list_zoo()
    assert len(entries) == 24 and len({e.name for e in entries}) == 24
    assert all(e.url == BASE + e.file for e in entries)
    by_table = {}
    for e in entries:
        for table, _ in e.paper:
            by_table.setdefault(table, []).append(e.name)
    assert {t: len(n) for t, n in by_table.items()} == {"table1": 10, "table2": 14, "table3": 2}
    assert by_table["table3"] == ["exemplar_v1", "exemplar_v2"]
    assert [e.augmentations for e in entries[:5]] == ["f", "fr", "frc", "frcg", "frcgb"]
    places = zoo.get("moco_v2_places")
    assert places.file == "moco_v2_palces.pth" and places.url == BASE + "moco_v2_palces.pth"
    sup = zoo.get("supervised_imagenet")
    assert sup.file == "supervised_imagenet.pth" and "supervised_synthia.pth" in sup.note
    assert sup.paper == (("table1", "frcgb (supervised)"), ("table2", "ImageNet (supervised)"))
    assert zoo.get("moco_v2_imagenet").paper == (("table1", "frcgb (MoCo v2)"), ("table2", "ImageNet (MoCo v2)"))


def test_format_zoo_table_lists_every_checkpoint_and_the_notes():
    text = zoo.format_zoo_table()
    lines = text.splitlines()
    assert lines[0] == f"24 checkpoints (ResNet-50), URL = {BASE}FILE"
    assert sum(1 for ln in lines if ln.split(" ")[0] in {e.name for e in zoo.list_zoo()}) == 24
    assert any(ln.startswith("supervised_imagenet [1]") for ln in lines)
    assert lines[-2].startswith("[1] supervised_imagenet: Table 2's published link for this row is supervised_synthia.pth")
    assert lines[-1] == "[2] moco_v2_places: The released file name is spelled moco_v2_palces.pth (sic) in the listing."


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
    assert sorted(p.name for p in (isolated_cache / "zoo").iterdir()) == [".lock", "sha256.json"]


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
    (folder / "moco_v2_palces.pth").write_bytes(raw.read_bytes())
    monkeypatch.setenv("BENCHMARK_ZOO_MIRROR", base)
    prepared = prepare_weights("zoo:moco_v2_places")
    assert (prepared.name, prepared.source) == ("moco_v2_places", "zoo:moco_v2_places")
    assert prepared.source_sha256 == hashlib.sha256(raw.read_bytes()).hexdigest()  # .sha256: of the converted .pkl
    assert json.loads((isolated_cache / "zoo" / "sha256.json").read_text()) == {"moco_v2_palces.pth": prepared.source_sha256}
    assert load_converted(prepared.path)["__provenance__"]["input"] == "zoo:moco_v2_places"


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
