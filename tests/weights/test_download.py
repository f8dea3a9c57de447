"""benchmark.weights.download: cache paths that cannot escape, downloads that are complete or absent."""
import hashlib
import os
import socket
from pathlib import Path

import pytest

from benchmark.fileio import STALE_TEMPORARY_AGE_S
from benchmark.weights import download
from benchmark.weights.download import DownloadError


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("BENCHMARK_CACHE", str(tmp_path / "c"))
    assert download.cache_dir() == tmp_path / "c"
    monkeypatch.delenv("BENCHMARK_CACHE")
    assert download.cache_dir() == Path.home() / ".cache" / "benchmark"


def test_safe_cache_path_accepts_names_inside(tmp_path):
    assert download.safe_cache_path("zoo/moco_v2.pth", root=tmp_path) == tmp_path / "zoo" / "moco_v2.pth"
    assert download.safe_cache_path("a..b.pth", root=tmp_path) == tmp_path / "a..b.pth"


@pytest.mark.parametrize("name", ["/etc/passwd", "../x.pth", "zoo/../../x.pth", "..", "", ".", "a\\..\\..\\x"])
def test_safe_cache_path_refuses_escapes(tmp_path, name):
    with pytest.raises(ValueError, match="unsafe cache name"):
        download.safe_cache_path(name, root=tmp_path)


def test_safe_cache_path_refuses_a_symlink_out(tmp_path):
    (tmp_path / "root").mkdir()
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", tmp_path / "root" / "link")
    with pytest.raises(ValueError, match="resolves outside"):
        download.safe_cache_path("link/x.pth", root=tmp_path / "root")


def test_safe_cache_path_defaults_to_the_cache(isolated_cache):
    assert download.safe_cache_path("x.pth") == isolated_cache / "x.pth"


def test_fetch_downloads_and_verifies(http_server, tmp_path):
    base, folder = http_server
    payload = os.urandom(3 * download.CHUNK + 123)  # several chunks
    (folder / "w.pth").write_bytes(payload)
    dest = tmp_path / "out" / "w.pth"
    assert download.fetch(f"{base}/w.pth", dest, sha256=hashlib.sha256(payload).hexdigest().upper(), verify=None) == dest
    assert dest.read_bytes() == payload
    assert sorted(p.name for p in dest.parent.iterdir()) == ["w.pth"]
    assert download.sha256_file(dest) == hashlib.sha256(payload).hexdigest()


def test_fetch_sha256_mismatch_leaves_nothing(http_server, tmp_path):
    base, folder = http_server
    (folder / "w.pth").write_bytes(b"abc")
    dest = tmp_path / "w.pth"
    with pytest.raises(DownloadError, match=f"^{base}/w.pth: sha256 mismatch: expected 00, got {hashlib.sha256(b'abc').hexdigest()}; "
                                            "nothing was stored$"):
        download.fetch(f"{base}/w.pth", dest, sha256="00")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["served"]  # neither w.pth nor a temp file


def test_fetch_cut_short_keeps_the_previous_file(http_server, tmp_path):
    base, folder = http_server
    (folder / "w.pth").write_bytes(b"x" * 10_000)
    dest = tmp_path / "dl" / "w.pth"
    dest.parent.mkdir()
    dest.write_bytes(b"old")
    with pytest.raises(DownloadError, match=r"download cut short: received 5000 of 10000 bytes"):
        download.fetch(f"{base}/cut/w.pth", dest)
    assert dest.read_bytes() == b"old" and sorted(p.name for p in dest.parent.iterdir()) == ["w.pth"]


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.org/w.pth", "w.pth"])
def test_fetch_refuses_other_schemes(tmp_path, url):
    with pytest.raises(DownloadError, match="refused scheme .*: only http and https URLs are downloaded"):
        download.fetch(url, tmp_path / "w.pth")
    assert list(tmp_path.iterdir()) == []


def test_fetch_http_error(http_server, tmp_path):
    base, _ = http_server
    with pytest.raises(DownloadError, match=f"^{base}/missing.pth: HTTP 404 File not found$"):
        download.fetch(f"{base}/missing.pth", tmp_path / "m.pth")
    assert list(tmp_path.iterdir()) == [tmp_path / "served"]


def test_fetch_connection_refused(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DownloadError, match="download failed: .*refused"):
        download.fetch(f"http://127.0.0.1:{port}/w.pth", tmp_path / "w.pth")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("url, name", [("https://h/a/b/moco_v2_imagenet.pth?x=1", "moco_v2_imagenet.pth"),
                                       ("https://h/", "download"), ("http://h/a%20b.pth", "a b.pth")])
def test_url_filename(url, name):
    assert download.url_filename(url) == name


def test_fetch_file_returns_the_digest_it_hashed_while_streaming(http_server, tmp_path, monkeypatch):
    base, folder = http_server
    payload = os.urandom(2 * download.CHUNK + 7)
    (folder / "w.pth").write_bytes(payload)
    monkeypatch.setattr(download, "sha256_file", lambda path: pytest.fail(f"{path} was read again to hash it"))
    local = download.fetch_file(f"{base}/w.pth", tmp_path / "w.pth", verify=None)
    assert (local.path, local.sha256) == (tmp_path / "w.pth", hashlib.sha256(payload).hexdigest())


def test_a_local_file_is_hashed_on_first_use_and_only_once(tmp_path, monkeypatch):
    (tmp_path / "w.pth").write_bytes(b"weights")
    calls = []
    real = download.sha256_file
    monkeypatch.setattr(download, "sha256_file", lambda path: calls.append(path) or real(path))
    local = download.LocalFile(tmp_path / "w.pth")
    assert calls == []
    assert [local.sha256, local.sha256] == [hashlib.sha256(b"weights").hexdigest()] * 2
    assert calls == [tmp_path / "w.pth"]


def test_cached_download_downloads_once_per_url(http_server, isolated_cache):
    base, folder = http_server
    (folder / "w.pth").write_bytes(b"first")
    first = download.cached_download(f"{base}/w.pth", progress=False, verify=None)
    assert first.path.is_relative_to(isolated_cache / "downloads") and first.path.name == "w.pth"
    (folder / "w.pth").write_bytes(b"second")  # the server changes; the cached copy is used
    again = download.cached_download(f"{base}/w.pth", progress=False, verify=None)
    assert (again.path, again.path.read_bytes()) == (first.path, b"first")
    other = download.cached_download(f"{base}/w.pth?v=2", progress=False, verify=None)  # another URL, another folder
    assert other.path.parent != first.path.parent and other.path.read_bytes() == b"second"


def test_cached_download_refuses_a_url_file_name_outside_the_cache(isolated_cache):
    with pytest.raises(ValueError, match="unsafe cache name"):
        download.cached_download("http://127.0.0.1:9/a/%2E%2E", progress=False)


def _temporary(folder, name, age_s):
    path = folder / name
    path.write_bytes(b"partial")
    stamp = path.stat().st_mtime - age_s
    os.utime(path, (stamp, stamp))
    return path


def test_fetch_removes_temporaries_that_killed_downloads_left(http_server, tmp_path):
    base, folder = http_server
    (folder / "w.pth").write_bytes(b"weights")
    dest = tmp_path / "downloads" / "w.pth"
    dest.parent.mkdir()
    dead = _temporary(dest.parent, ".w.pth.k1ll3d.tmp", STALE_TEMPORARY_AGE_S + 60)
    live = _temporary(dest.parent, ".other.pth.gr0w1n.tmp", 5)  # another process, still writing
    download.fetch(f"{base}/w.pth", dest, verify=None)
    assert not dead.exists() and live.exists() and dest.read_bytes() == b"weights"
