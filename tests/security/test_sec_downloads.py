"""Downloads are verified against pinned sizes and checksums before anything is extracted.

Files are served from this machine by a local ``http.server`` in a thread; nothing here reaches the internet.
"""
import functools
import gzip
import hashlib
import http.server
import io
import os
import struct
import tarfile
import threading
from pathlib import Path

import pytest

import pipekit.datasets as D
from pipekit.data.external import Checksum, DatasetInfo, download_url, fetch, file_digests

BUILTIN = dict(D.REGISTRY)  # captured at collection, before any test registers a toy set


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def serve(tmp_path):
    """Serve tmp_path/www over http on 127.0.0.1; yields the base URL."""
    www = tmp_path / "www"
    www.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(www)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield www, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def _toy_archive(www: Path, marker: str = "MARKER") -> Path:
    arc = www / "toy.tgz"
    with tarfile.open(arc, "w:gz") as t:
        data = f"name,label\n{marker},1\n".encode()
        info = tarfile.TarInfo(f"toy/{marker}.csv")
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    return arc


def _pinned(arc: Path, **change) -> Checksum:
    size, md5, sha = file_digests(arc)
    return Checksum(**{"size": size, "md5": md5, "sha256": sha, **change})


def _everything_under(root: Path) -> list[str]:
    return [os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs] if root.exists() else []


def test_wrong_checksum_deletes_the_download_and_names_url_and_both_checksums(serve, tmp_path):
    www, base = serve
    arc = _toy_archive(www)
    good = _pinned(arc)
    bad_sha, bad_md5 = "ab" * 32, "cd" * 16
    dest = tmp_path / "dl" / "toy.tgz"
    with pytest.raises(ValueError, match="checksum mismatch") as e:
        download_url(base + "toy.tgz", dest, checksum=Checksum(good.size, md5=bad_md5, sha256=bad_sha))
    msg = str(e.value)
    assert base + "toy.tgz" in msg
    assert f"md5: expected {bad_md5}, got {good.md5}" in msg and f"sha256: expected {bad_sha}, got {good.sha256}" in msg
    assert "deleted" in msg and list(dest.parent.iterdir()) == []  # neither the file nor a .part is left


def test_wrong_size_is_refused_both_ways(serve, tmp_path):
    www, base = serve
    arc = _toy_archive(www)
    good = _pinned(arc)
    dest = tmp_path / "dl" / "toy.tgz"
    with pytest.raises(ValueError, match=r"size: expected \d+ bytes, got more than") as e:
        download_url(base + "toy.tgz", dest, checksum=_pinned(arc, size=good.size - 10))
    assert base + "toy.tgz" in str(e.value) and not dest.exists()
    with pytest.raises(ValueError, match=f"size: expected {good.size + 10} bytes, got {good.size}") as e:
        download_url(base + "toy.tgz", dest, checksum=_pinned(arc, size=good.size + 10))
    assert f"sha256: expected {good.sha256}" not in str(e.value)  # the digests are right; only the size is wrong
    assert list(dest.parent.iterdir()) == []


def test_fetch_verifies_before_extracting(serve, tmp_path):
    www, base = serve
    arc = _toy_archive(www, marker="NEVER_EXTRACTED")
    url = base + "toy.tgz"
    info = DatasetInfo("toy_verify", (url,), ("NEVER_EXTRACTED.csv",),
                       checksums={url: _pinned(arc, sha256="0" * 64)})
    root = tmp_path / "cache"
    with pytest.raises(ValueError, match="checksum mismatch") as e:
        fetch(info, root)
    assert url in str(e.value)
    assert not any("NEVER_EXTRACTED" in p or p.endswith(".tgz") for p in _everything_under(root))
    # the same archive with its true checksum installs
    ok = DatasetInfo("toy_verify", (url,), ("NEVER_EXTRACTED.csv",), checksums={url: _pinned(arc)})
    assert (fetch(ok, root) / "NEVER_EXTRACTED.csv").read_text().startswith("name,label")


def test_md5_of_the_first_bytes_as_fastai_publishes_it(serve, tmp_path):
    www, base = serve
    blob = bytes(range(256)) * 64  # 16 KiB
    (www / "blob.bin").write_bytes(blob)
    head = hashlib.md5(blob[:4096]).hexdigest()
    got = download_url(base + "blob.bin", tmp_path / "a.bin", checksum=Checksum(len(blob), md5=head, md5_bytes=4096))
    assert got.read_bytes() == blob
    (www / "blob.bin").write_bytes(b"X" + blob[1:])  # same size, first byte changed
    with pytest.raises(ValueError, match=f"md5 of the first 4096 bytes: expected {head}"):
        download_url(base + "blob.bin", tmp_path / "b.bin", checksum=Checksum(len(blob), md5=head, md5_bytes=4096))
    assert not (tmp_path / "b.bin").exists()


def test_plain_http_needs_a_pin_and_unpinned_downloads_are_reported(serve, tmp_path):
    www, base = serve
    arc = _toy_archive(www)
    with pytest.raises(ValueError, match="neither https nor pinned"):
        fetch(DatasetInfo("toy_http", (base + "toy.tgz",), ("MARKER.csv",)), tmp_path / "c1")
    sha = file_digests(arc)[2]
    with pytest.warns(UserWarning, match=f"not verified.*sha256 {sha}"):
        fetch(DatasetInfo("toy_file", (arc.as_uri(),), ("MARKER.csv",)), tmp_path / "c2")


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_every_registered_download_is_https_and_pinned(name):
    info = BUILTIN[name]
    assert set(info.checksums) == set(info.urls)
    for url in info.urls:
        assert url.startswith("https://"), url
        c = info.checksums[url]
        assert c.size > 0 and (c.md5 or c.sha256)


def test_rossmann_has_no_unverified_download(monkeypatch, tmp_path):
    monkeypatch.setenv("PIPEKIT_DATA", str(tmp_path / "none"))
    with pytest.raises(FileNotFoundError, match="no download with a published checksum"):
        D.path("rossmann_sample")


# gzip header times of the publisher's files; the local copies come from a package that strips them
_FMNIST_MTIME = {"train-images-idx3-ubyte": 1504176606, "train-labels-idx1-ubyte": 1504176606,
                 "t10k-images-idx3-ubyte": 1504176627, "t10k-labels-idx1-ubyte": 1504176627}


def test_fashion_mnist_pins_match_the_local_copies():
    """The local copies hold the publisher's compressed bytes: restoring the gzip header's file name and
    time gives files of exactly the pinned size, md5 and sha256; and they decompress to IDX data."""
    folder = D.path("fashion_mnist")
    for url in BUILTIN["fashion_mnist"].urls:
        fname = url.rsplit("/", 1)[-1]
        stem = fname[:-3]
        local = (folder / fname).read_bytes()
        assert local[:4] == b"\x1f\x8b\x08\x00"  # gzip, deflate, no file name stored
        original = b"\x1f\x8b\x08\x08" + struct.pack("<I", _FMNIST_MTIME[stem]) + local[8:10] + stem.encode() \
            + b"\x00" + local[10:]
        pin = BUILTIN["fashion_mnist"].checksums[url]
        assert (len(original), hashlib.md5(original).hexdigest(), hashlib.sha256(original).hexdigest()) == \
            (pin.size, pin.md5, pin.sha256)
        assert gzip.decompress(original) == gzip.decompress(local)


def test_checksum_rejects_malformed_pins():
    with pytest.raises(ValueError, match="give md5 or sha256"):
        Checksum(10)
    with pytest.raises(ValueError, match="sha256 must be 64 lower-case hex digits"):
        Checksum(10, sha256="ABC")
