"""The model zoo: the 24 released checkpoints, safe names, and the checksum-on-first-use cache."""
import hashlib
import json

import pytest

from benchmark.weights import download
from benchmark.weights import zoo
from benchmark.weights.download import DownloadError

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


def test_unknown_and_unsafe_names_are_refused():
    with pytest.raises(zoo.UnknownCheckpointError, match="unknown zoo checkpoint 'moco_v3'; known: moco_v2_imagenet_aug_f, "):
        zoo.get("moco_v3")
    for bad in ("../exemplar_v1", "/etc/passwd", "zoo/exemplar_v1", "..", ""):
        with pytest.raises(zoo.ZooError, match="unsafe zoo name"):
            zoo.fetch(bad)


@pytest.fixture
def served(http_server, monkeypatch):
    """(payload, folder, base): exemplar_v1.pth served from a local mirror."""
    base, folder = http_server
    payload = bytes(range(256)) * 4099  # several download chunks
    (folder / "exemplar_v1.pth").write_bytes(payload)
    monkeypatch.setenv("BENCHMARK_ZOO_MIRROR", base)
    return payload, folder, base


def test_fetch_records_the_checksum_then_verifies_it(served, isolated_cache):
    payload, folder, _ = served
    path = zoo.fetch("exemplar_v1", progress=False)
    assert path == isolated_cache / "zoo" / "exemplar_v1.pth" and path.read_bytes() == payload
    record = json.loads((isolated_cache / "zoo" / "sha256.json").read_text())
    assert record == {"exemplar_v1.pth": hashlib.sha256(payload).hexdigest()}
    (folder / "exemplar_v1.pth").unlink()  # a second use is served from the cache
    assert zoo.fetch("exemplar_v1", progress=False) == path

    path.write_bytes(payload[:-1] + b"\x00")  # corrupted in the cache
    with pytest.raises(zoo.ZooError, match=r"exemplar_v1.pth: sha256 [0-9a-f]{64} differs from the one recorded at "
                                           r"first download .*is not used. Delete it to download again"):
        zoo.fetch("exemplar_v1", progress=False)

    path.unlink()  # downloaded again, but the server now has other bytes: refused, nothing left
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
    from benchmark.weights.convert import load_converted, prepare_weights

    base, folder = http_server
    raw = synthetic_checkpoint("moco", seed=3)
    (folder / "moco_v2_palces.pth").write_bytes(raw.read_bytes())
    monkeypatch.setenv("BENCHMARK_ZOO_MIRROR", base)
    prepared = prepare_weights("zoo:moco_v2_places")
    assert prepared.name == "moco_v2_places" and prepared.sha256 == download.sha256_file(raw)
    assert json.loads((isolated_cache / "zoo" / "sha256.json").read_text()) == {"moco_v2_palces.pth": prepared.sha256}
    assert load_converted(prepared.path)["__provenance__"]["input"] == "zoo:moco_v2_places"


def test_zoo_exemplar_and_supervised_files_are_recorded_as_such(http_server, monkeypatch, synthetic_checkpoint):
    """Their keys are plain torchvision ones; the zoo names the format the provenance records."""
    from benchmark.weights.convert import load_converted, prepare_weights

    base, folder = http_server
    # Distinct seeds: converted files are cached by content, so equal bytes would share one label.
    for seed, file in enumerate(("exemplar_v2.pth", "supervised_imagenet.pth", "moco_v2_imagenet.pth"), 4):
        layout = "moco" if file.startswith("moco") else "exemplar"
        (folder / file).write_bytes(synthetic_checkpoint(layout, seed=seed).read_bytes())
    monkeypatch.setenv("BENCHMARK_ZOO_MIRROR", base)
    formats = {name: load_converted(prepare_weights(f"zoo:{name}").path)["__author__"]
               for name in ("exemplar_v2", "supervised_imagenet", "moco_v2_imagenet")}
    assert formats == {"exemplar_v2": "exemplar", "supervised_imagenet": "supervised", "moco_v2_imagenet": "moco"}
    assert zoo.get("exemplar_v1").source_format == "exemplar" and zoo.get("moco_v2_celeba").source_format is None
