"""Hostile files, second set: tar archives with giant extended headers, exported weights whose entries or numbers
buy more than their bytes, the cache key file's variable, and cache packs swapped after they were verified."""
from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
import time
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from safetensors.torch import load, save

import pipekit
import pipekit.data.cache as cache_mod
import pipekit.datasets as D
from pipekit.core.errors import DataError, ExportError, ParameterError
from pipekit.data.extract import MAX_LINK_BYTES, MAX_TAR_HEADER_BYTES, extract_archive
from pipekit.learn.export import unusable_weights
from pipekit.vision import Resize, build_image_store

MNIST = D.path("mnist_tiny")
PNGS = sorted((MNIST / "train" / "3").glob("*.png"))[:6]


# ------------------------------------------------------------------------------------------ tar extended headers
def _header(name: str, size: int, kind: bytes) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.type = size, kind
    return info.tobuf(format=tarfile.USTAR_FORMAT)


def _giant_extended_header(path: Path, kind: bytes, megabytes: int) -> Path:
    """A .tar.gz whose first header (GNU long link 'K', long name 'L' or pax 'x') declares ``megabytes`` MB of
    content, followed by a real mnist_tiny image: gzip shrinks the content about 1000 times."""
    n = megabytes << 20
    png = PNGS[0].read_bytes()
    with gzip.open(path, "wb", compresslevel=9) as g:
        g.write(_header("././@LongLink", n, kind))
        for _ in range(megabytes):
            g.write(b"a" * (1 << 20))
        g.write(b"\0" * (-n % 512))
        g.write(_header("x.png", len(png), tarfile.REGTYPE) + png + b"\0" * (-len(png) % 512) + b"\0" * 1024)
    return path


@pytest.mark.parametrize("kind,said", [(tarfile.GNUTYPE_LONGLINK, "GNU long link"),
                                       (tarfile.GNUTYPE_LONGNAME, "GNU long name"), (tarfile.XHDTYPE, "pax")])
def test_tar_extended_header_over_its_bound_is_refused_before_it_is_read(tmp_path, kind, said):
    # a 16 MB link target took 16 MB (and a 100 MB one 1 GB) before anything checked it
    arc = _giant_extended_header(tmp_path / "longlink.tar.gz", kind, 16)
    assert arc.stat().st_size < 100_000
    dest = tmp_path / "out"
    tracemalloc.start()
    try:
        with pytest.raises(DataError) as e:
            extract_archive(arc, dest)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, f"traced {peak / 2**20:.0f} MB"
    msg = str(e.value)
    assert str(arc) in msg and said in msg and f"{16 << 20:,}" in msg and "get the archive again" in msg
    assert len(msg) < 500 and not any(dest.iterdir())


def test_tar_member_name_or_link_over_max_link_bytes_is_refused_and_named_short(tmp_path):
    png = PNGS[0].read_bytes()
    long_name = "/".join(["d" * 200] * 30) + "/x.png"  # 6 KB, each folder under NAME_MAX
    long_link = "t" * (MAX_LINK_BYTES + 10)
    for i, (name, link) in enumerate([(long_name, ""), ("mnist/link.png", long_link)]):
        arc = tmp_path / f"long{i}.tar"
        with tarfile.open(arc, "w", format=tarfile.PAX_FORMAT) as t:  # names in a pax header, under its bound
            info = tarfile.TarInfo(name)
            if link:
                info.type, info.linkname = tarfile.SYMTYPE, link
                t.addfile(info)
            else:
                info.size = len(png)
                t.addfile(info, io.BytesIO(png))
        dest = tmp_path / f"out{i}"
        with pytest.raises(DataError, match=f"over {MAX_LINK_BYTES} bytes long") as e:
            extract_archive(arc, dest)
        assert str(arc) in str(e.value) and len(str(e.value)) < 800  # the name is shown cut short
        assert not any(dest.iterdir())


def test_tar_genuine_archive_with_long_names_and_pax_headers_extracts(tmp_path):
    arc = tmp_path / "mnist.tar.gz"
    deep = "/".join(["level" + "x" * 90] * 10)  # a 960-character folder: a GNU/pax long name, well under the bounds
    with tarfile.open(arc, "w:gz", format=tarfile.PAX_FORMAT) as t:
        for p in PNGS:
            t.add(p, arcname=f"mnist/{deep}/{p.name}")
    out = extract_archive(arc, tmp_path / "out")
    for p in PNGS:
        assert (out / "mnist" / deep / p.name).read_bytes() == p.read_bytes()
    assert MAX_TAR_HEADER_BYTES >= 2 * MAX_LINK_BYTES


def test_tar_skipped_members_are_named_cut_short_in_the_warning(tmp_path):
    arc = tmp_path / "links.tar"
    name, link = "/".join(["n" * 200] * 10), "/".join(["t" * 200] * 10)  # 2 KB each: allowed, but not all shown
    with tarfile.open(arc, "w", format=tarfile.GNU_FORMAT) as t:
        t.add(PNGS[0], arcname="mnist/3.png")
        info = tarfile.TarInfo(name)
        info.type, info.linkname = tarfile.SYMTYPE, link
        t.addfile(info)
    with pytest.warns(UserWarning, match="skipped 1 member") as w:
        out = extract_archive(arc, tmp_path / "out")
    msg = str(w[0].message)
    assert len(msg) < 1000 and "2,009 characters" in msg, msg
    assert (out / "mnist" / "3.png").read_bytes() == PNGS[0].read_bytes()


# ------------------------------------------------------------------------------------------------ exported weights
@pytest.fixture(scope="module")
def mnist_export(mnist_learner, tmp_path_factory):
    path = tmp_path_factory.mktemp("export") / "mnist.pipekit"
    mnist_learner.export(path)
    return path


def _rewrite(base: Path, out: Path, weights=None, record=None) -> Path:
    with zipfile.ZipFile(base) as z:
        files = {n: z.read(n) for n in z.namelist()}
    if weights is not None:
        files["weights.safetensors"] = save(weights(dict(load(files["weights.safetensors"]))))
    if record is not None:
        rec = json.loads(files["record.json"])
        record(rec)
        files["record.json"] = json.dumps(rec).encode()
    with zipfile.ZipFile(out, "w") as z:
        for k, v in files.items():
            z.writestr(k, v)
    return out


def test_empty_weight_entries_buy_no_build_budget(mnist_export, tmp_path):
    # 20,000 entries of shape (1, 0, 1, 1) (0 bytes each) raised the budget to 41,000 tensors and 81,000 modules: the
    # meta build ran for seconds (100,000 entries, a 7 MB file: 20 s) before it was refused
    n = 20_000
    path = _rewrite(mnist_export, tmp_path / "zero.pipekit",
                    weights=lambda w: {f"0.{i}.0.weight": torch.zeros(1, 0, 1, 1) for i in range(n)},
                    record=lambda r: r.update(arch={"name": "simple_cnn",
                                                    "config": {"n_in": 1, "n_out": 2, "channels": [1] * n}}))
    start = time.process_time()  # CPU time: a busy machine does not count
    with pytest.raises(ExportError) as e:
        pipekit.load_learner(path)
    took = time.process_time() - start
    msg = str(e.value)
    assert str(path) in msg and "'arch.config'" in msg and "over 1,000 parameters and buffers" in msg, msg
    assert "holding 0 bytes" in msg and took < 5, took


def test_genuine_export_still_loads_and_predicts_the_same(mnist_export, mnist_learner):
    loaded = pipekit.load_learner(mnist_export)
    x = torch.rand(3, 1, 28, 28)
    mnist_learner.model.eval()
    assert torch.equal(loaded.model(x), mnist_learner.model(x))


def _first(w: dict, suffix: str) -> str:
    return next(k for k in sorted(w) if k.endswith(suffix) and w[k].is_floating_point())


@pytest.mark.parametrize("suffix", ["weight", "running_var"])
def test_float64_weights_too_large_for_float32_are_refused_naming_the_weight(mnist_export, tmp_path, suffix):
    # a float64 1e300 passed the check (finite in float64), became inf in the float32 model, and predict blamed
    # training ("Training diverged")
    named = {}

    def edit(w):
        k = named["k"] = _first(w, suffix)
        w[k] = w[k].double()
        w[k].view(-1)[0] = 1e300
        return w

    path = _rewrite(mnist_export, tmp_path / "big.pipekit", weights=edit)
    with pytest.raises(ExportError) as e:
        pipekit.load_learner(path)
    assert str(path) in str(e.value) and f"{named['k']!r} holds numbers too large for the model's float32" in str(
        e.value), str(e.value)


def test_float8_weights_are_checked_in_the_model_dtype(mnist_export, mnist_learner, tmp_path):
    # torch has no isfinite for float8: the check failed with a message naming no weight, whatever the numbers
    def f8(w, nan):
        k = _first(w, "weight")
        w[k] = w[k].to(torch.float8_e4m3fn)
        if nan:
            w[k].view(torch.uint8).view(-1)[0] = 0x7F  # e4m3fn's NaN
        return w

    bad = _rewrite(mnist_export, tmp_path / "f8nan.pipekit", weights=lambda w: f8(w, True))
    with pytest.raises(ExportError, match="holds numbers that are not finite") as e:
        pipekit.load_learner(bad)
    assert repr(_first(load(zipfile.ZipFile(mnist_export).read("weights.safetensors")), "weight")) in str(e.value)
    ok = _rewrite(mnist_export, tmp_path / "f8.pipekit", weights=lambda w: f8(w, False))
    loaded = pipekit.load_learner(ok)
    assert all(torch.isfinite(v).all() for v in loaded.model.state_dict().values() if v.is_floating_point())


def test_unusable_weights_converts_before_testing():
    own = {"bn.running_var": torch.ones(2), "w": torch.zeros(2, dtype=torch.float16)}
    said = unusable_weights(own, {"bn.running_var": torch.tensor([1.0, 1e300], dtype=torch.float64),
                                  "w": torch.tensor([1.0, 1e5])})
    assert said == ["'bn.running_var' holds numbers too large for the model's float32",
                    "'w' holds numbers too large for the model's float16"]
    assert unusable_weights(own, {"bn.running_var": torch.tensor([1.0, 2.0], dtype=torch.float64)}) == []


# ------------------------------------------------------------------------------------------------- cache key file
@pytest.mark.parametrize("value,said", [("~pipekit_no_such_user_x/cache.key", "the home folder of no user"),
                                        ("rel/cache.key", "is a relative path")])
def test_cache_key_file_variable_must_be_absolute(monkeypatch, value, said):
    monkeypatch.setenv("PIPEKIT_CACHE_KEY_FILE", value)
    with pytest.raises(ParameterError) as e:
        cache_mod.cache_key_file()
    msg = str(e.value)
    assert f"PIPEKIT_CACHE_KEY_FILE={value!r}" in msg and said in msg and "absolute path" in msg
    # the first cache use says so too, naming the variable
    with pytest.raises(ParameterError, match="PIPEKIT_CACHE_KEY_FILE"):
        build_image_store(PNGS, Resize(16), mode="L")


def test_cache_key_file_variable_expands_home(monkeypatch):
    monkeypatch.setenv("PIPEKIT_CACHE_KEY_FILE", "~/keys/cache.key")
    assert cache_mod.cache_key_file() == Path(os.path.expanduser("~/keys/cache.key"))


# ------------------------------------------------------------------------------------- packs swapped once verified
@pytest.fixture
def key_file(tmp_path, monkeypatch):
    monkeypatch.setenv("PIPEKIT_CACHE_KEY_FILE", str(tmp_path / "key" / "cache.key"))
    monkeypatch.setattr(cache_mod, "_KEYS", {})


def _swap_after_verify(monkeypatch, module: str, forged: bytes) -> list[Path]:
    """Make every pack verify and then be replaced by ``forged`` (same size) under its name, as someone who can
    write the cache folder could do between the check and the mapping."""
    real = cache_mod.verify_pack
    swapped: list[Path] = []

    def verify_then_swap(path, *args, **kwargs):
        reason = real(path, *args, **kwargs)
        if reason is None:
            tmp = path.with_name("forged.tmp")
            tmp.write_bytes(forged[:path.stat().st_size])
            os.replace(tmp, path)
            swapped.append(path)
        return reason

    monkeypatch.setattr(cache_mod, "verify_pack", verify_then_swap)
    monkeypatch.setattr(module, verify_then_swap, raising=False)  # where a cache called it by its own name
    return swapped


def test_image_pack_mapped_is_the_pack_verified(tmp_path, monkeypatch, key_file):
    first = build_image_store(PNGS, Resize(16), mode="L", cache_dir=tmp_path / "c")
    pixels = np.array(first.pixels)
    pack = first.path_
    forged = bytearray(pack.read_bytes())
    header = len(forged) - pixels.size
    forged[header:] = bytes(255 - b for b in forged[header:])
    swapped = _swap_after_verify(monkeypatch, "pipekit.vision.cache.verify_pack", bytes(forged))
    again = build_image_store(PNGS, Resize(16), mode="L", cache_dir=tmp_path / "c")
    assert swapped == [pack] and again.n_reused_ == len(PNGS)
    assert np.array_equal(np.asarray(again.pixels), pixels)  # the forged file was renamed in, not mapped


def test_token_ids_mapped_are_the_ids_verified(tmp_path, monkeypatch, key_file):
    from pipekit.text.store import load_cached, save_cached
    from pipekit.text.tokenize import TokenizedTexts

    texts = pl.read_csv(D.path("imdb_sample") / "texts.csv")["text"].head(20).to_list()
    words = [t.split() for t in texts]
    vocab = sorted({w for ws in words for w in ws})
    index = {w: i for i, w in enumerate(vocab)}
    ids = np.array([index[w] for ws in words for w in ws], dtype=np.int32)
    offsets = np.cumsum([0] + [len(ws) for ws in words]).astype(np.int64)
    folder = tmp_path / "text" / "entry"
    assert save_cached(folder, TokenizedTexts(vocab, ids, offsets), {"tok_state": {}, "settings": {"split": "words"}})
    ids_path = folder / "ids.arrow"
    raw = ids_path.read_bytes()
    body = np.frombuffer(raw, dtype=np.uint8).copy()
    at = raw.index(ids[:8].tobytes())  # the first review's ids, rewritten to another word of the vocabulary
    body[at:at + 32] = np.frombuffer(np.full(8, len(vocab) - 1, dtype=np.int32).tobytes(), dtype=np.uint8)
    swapped = _swap_after_verify(monkeypatch, "pipekit.text.store.verify_pack", body.tobytes())
    hit = load_cached(folder, len(texts))
    assert swapped == [ids_path] and hit is not None
    tokens, _ = hit
    assert np.array_equal(np.asarray(tokens.ids), ids) and np.array_equal(np.asarray(tokens.offsets), offsets)
