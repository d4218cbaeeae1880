"""Export archives, model files and export folders are read with limits, and every malformed member is an
ExportError naming it.

A learner export is a pipekit file: manifest.json, record.json, arrays.npz and weights.safetensors. Each
attack is built here: a zip bomb record.json (1 GiB of spaces in ~1 MiB), a directory entry that lies
about its size, an .npz bomb and a lying .npy header for load_model, deep JSON, a manifest and a record of
the wrong shape field by field (including records naming registered classes of the wrong kind), truncated
weights and weights of another model, bad arrays.npz, unsafe member names, a directory claiming too many
members, an export in pipekit 0.1's layout, and the same caps on the folder form. Peak memory is measured
with tracemalloc while each bomb is refused. A tabular learner trained on adult still exports and loads with
identical predictions.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import struct
import tracemalloc
import zipfile
import zlib
from functools import lru_cache
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

import pipekit
from pipekit.backends import load_model
from pipekit.core.archive import MAX_JSON_BYTES, MAX_JSON_DEPTH, VERSION, read_npz
from pipekit.data.splitters import RandomSplitter
from pipekit.datasets import path as dataset_path
from pipekit.learn import ExportError, load_learner

pytestmark = pytest.mark.usefixtures("one_torch_thread")

MiB = 1 << 20
GiB = 1 << 30
# a refused bomb may cost the small buffers of reading the directory, never its inflated size
PEAK_LIMIT = 8 * MiB


# ------------------------------------------------------------------------------------------- zip builder
@lru_cache(maxsize=None)
def space_bomb(n_mib: int) -> tuple[bytes, int]:
    """A raw deflate stream that inflates to ``n_mib`` MiB of spaces (about 1 KB per MiB) and its CRC.
    One MiB is compressed once and repeated: a full flush ends each copy on a byte boundary with an empty
    history, so the copies chain into one valid stream."""
    chunk = b" " * MiB
    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = co.compress(chunk) + co.flush(zlib.Z_FULL_FLUSH)
    end = co.flush(zlib.Z_FINISH)
    crc = 0
    for _ in range(n_mib):
        crc = zlib.crc32(chunk, crc)
    return block * n_mib + end, crc


def entry(name: str, data: bytes, *, deflate: bool = False, size: int | None = None, crc: int | None = None,
          flags: int = 0, method: int | None = None, packed: int | None = None) -> tuple:
    """One member for :func:`raw_zip`: ``data`` is what is stored (already compressed when ``deflate`` and a
    ``size`` is given); ``size``/``crc``/``packed`` (the compressed size) are what the directory states
    (default: the truth)."""
    if deflate and size is None:
        co = zlib.compressobj(6, zlib.DEFLATED, -15)
        size, crc, data = len(data), zlib.crc32(data), co.compress(data) + co.flush()
    size = len(data) if size is None else size
    crc = zlib.crc32(data) if crc is None else crc
    return name, data, (8 if deflate else 0) if method is None else method, size, crc, flags, packed


def raw_zip(entries: list[tuple]) -> bytes:
    """A zip packed by hand, so that names, sizes, flags and methods can say anything."""
    out, central = bytearray(), bytearray()
    for name, data, method, size, crc, flags, packed in entries:
        nm, off = name.encode(), len(out)
        packed = len(data) if packed is None else packed
        out += struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, flags, method, 0, 0x21, crc, packed, size, len(nm), 0)
        out += nm + data
        central += struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, flags, method, 0, 0x21, crc, packed, size,
                               len(nm), 0, 0, 0, 0, 0, off) + nm
    n = len(entries)
    return bytes(out + central + struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, n, n, len(central), len(out), 0))


def refused(fn, *args, match: str) -> int:
    """Assert ``fn(*args)`` raises ExportError matching ``match``; return the peak bytes traced meanwhile."""
    tracemalloc.start()
    try:
        with pytest.raises(ExportError, match=match):
            fn(*args)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def npy(arr: np.ndarray, allow_pickle: bool = False) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr, allow_pickle=allow_pickle)
    return buf.getvalue()


# --------------------------------------------------------------------------------------- a real learner
@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from pipekit.data.seed import set_seed
    from pipekit.learn import accuracy
    from pipekit.tabular import Tabular, tabular_learner

    df = pl.read_csv(dataset_path("adult_sample") / "adult.csv").head(4000)
    tab = Tabular(df, cat_names=["workclass", "education", "marital-status", "occupation", "relationship", "race"],
                  cont_names=["age", "fnlwgt", "education-num"], y_names="salary",
                  splits=RandomSplitter(0.2, seed=42))
    set_seed(0)
    learn = tabular_learner(tab.dataloaders(bs=256, seed=0), layers=[32], metrics=accuracy)
    learn.fit_one_cycle(1, 1e-2)
    out = tmp_path_factory.mktemp("export")
    archive = learn.export(out / "adult.pipekit")
    folder = learn.export(out / "adult_folder")
    rows = df.tail(200).drop("salary")
    trained = learn.get_preds(dl=learn.dls.test_dl(rows))[0]
    loaded = load_learner(archive)
    # the reference every variant must reproduce exactly (batches of another size round differently, so the
    # trained learner itself agrees to 1e-6)
    preds = loaded.get_preds(dl=loaded.dls.test_dl(rows))[0]
    assert torch.allclose(preds, trained, atol=1e-6)
    with zipfile.ZipFile(archive) as z:
        members = {n: z.read(n) for n in z.namelist()}
    assert set(members) <= {"manifest.json", "record.json", "arrays.npz", "weights.safetensors"}
    return {"learn": learn, "archive": archive, "folder": folder, "rows": rows, "preds": preds, "members": members,
            "record": json.loads(members["record.json"]), "manifest": json.loads(members["manifest.json"])}


def predictions(learn, rows):
    return learn.get_preds(dl=learn.dls.test_dl(rows))[0]


def with_members(exported, tmp_path, name: str = "x.pipekit", **replace) -> Path:
    """The real export with some members replaced (bytes, or an ``entry`` tuple), packed by hand."""
    entries = []
    for k, v in {**exported["members"], **replace}.items():
        if v is not None:
            entries.append(v if isinstance(v, tuple) else entry(k, v, deflate=k.endswith(".json")))
    p = tmp_path / name
    p.write_bytes(raw_zip(entries))
    return p


def json_bytes(obj) -> bytes:
    return json.dumps(obj).encode()


def test_sec_real_exports_still_load_and_predict_identically(exported, tmp_path):
    rows, preds = exported["rows"], exported["preds"]
    assert float((preds.argmax(1) == 0).float().mean()) < 1.0  # a trained model, not a constant
    for source in (exported["archive"], exported["folder"], with_members(exported, tmp_path)):
        loaded = load_learner(source)
        assert torch.equal(predictions(loaded, rows), preds), source
        assert [m.name for m in loaded.metrics] == ["accuracy"]


# ------------------------------------------------------------------------------------------- zip bombs
def test_sec_zip_bomb_record_is_refused_from_the_directory(exported, tmp_path):
    bomb, crc = space_bomb(1024)
    for name in ("record.json", "manifest.json"):
        path = with_members(exported, tmp_path, **{name: entry(name, bomb, deflate=True, size=GiB, crc=crc)})
        assert path.stat().st_size < 2 * MiB
        with zipfile.ZipFile(path) as z, z.open(name) as f:  # a real bomb: it does inflate
            assert f.read(MiB) == b" " * MiB
        for load in (load_learner, pipekit.load):
            peak = refused(load, path, match=rf"member '{name}' inflates to 1,073,741,824 bytes, over the "
                                             r"16,777,216 bytes limit")
            assert peak < PEAK_LIMIT, peak


def test_sec_a_directory_that_lies_cannot_make_a_member_inflate_past_it(exported, tmp_path):
    bomb, crc = space_bomb(1024)
    # the directory says 4,000 bytes; the data inflates to 1 GiB
    path = with_members(exported, tmp_path, **{"record.json": entry("record.json", bomb, deflate=True, size=4000,
                                                                    crc=crc)})
    peak = refused(load_learner, path, match=r"member 'record.json' is damaged or does not match its directory entry")
    assert peak < PEAK_LIMIT, peak
    # and a member shorter than its entry says
    short = bytes(exported["members"]["record.json"])
    path = with_members(exported, tmp_path, "short.pipekit", **{"record.json": entry(
        "record.json", short, size=len(short) + 1000, crc=zlib.crc32(short))})
    refused(load_learner, path, match=r"member 'record.json' (is (damaged|truncated)|states 3,\d{3} bytes .* that the "
                                      r"[\d,]+ bytes file does not hold)")


def test_sec_a_directory_cannot_claim_more_than_the_file_holds(exported, tmp_path):
    # sizes are the directory's word until the bytes are read, and a member's buffer is made before that: a
    # file of a few KB claiming GBs made pipekit allocate them. The claims are now held to the file's length.
    weights = bytes(exported["members"]["weights.safetensors"])
    lies = {
        # a stored member claiming 3 GiB, its compressed size claiming as much
        "both sizes": entry("weights.safetensors", weights[:64], size=3 * 2**30, packed=3 * 2**30),
        # a stored member whose sizes disagree (a stored member's bytes are its contents)
        "stored sizes": entry("weights.safetensors", weights[:64], size=2**30),
    }
    for what, lie in lies.items():
        path = with_members(exported, tmp_path, f"{what.replace(' ', '_')}.pipekit", **{"weights.safetensors": lie})
        assert path.stat().st_size < sum(len(v) for v in exported["members"].values()), what
        peak = refused(load_learner, path, match=r"directory states .* of compressed members in a|"
                                                 r"member 'weights.safetensors' states .* file does not hold")
        assert peak < PEAK_LIMIT, (what, peak)
    # deflated members inflating together past MAX_RATIO times the file, each under the per-member floor
    bomb, crc = space_bomb(1)
    path = tmp_path / "many.zip"
    path.write_bytes(raw_zip([entry(f"pad{i}.bin", bomb, deflate=True, size=2**20, crc=crc) for i in range(3)]))
    from pipekit.core.archive import read_archive

    with pytest.raises(ExportError, match=r"compression ratio over 100:1"):
        read_archive(path, lambda name: 2**30, str(path))


MODEL_MANIFEST = json.dumps({"format": "pipekit", "version": 2, "kind": "component", "pipekit": "0.1.0"}).encode()
LR_RECORD = {"class": "pipekit.backends.SklearnModel",
             "params": {"estimator": {"sklearn_estimator": "sklearn.linear_model.LogisticRegression", "params": {}},
                        "task": "classification"},
             "state": {"feature_names_": ["a"], "cat_features_": [], "classes_": {"__array__": "classes"},
                       "procs_signature_": None,
                       "model_": {"attributes": {"coef_": {"__array__": "coef"}, "intercept_": {"__array__": "intercept"},
                                                 "classes_": {"__array__": "classes"}}}}}


def write_model(path: Path, arrays: list[tuple] | None, record: tuple | None = None) -> Path:
    """A model file as model.export writes it (manifest, record.json, arrays.npz), with ``arrays`` the members
    of arrays.npz and ``record`` the record.json entry (default: a LogisticRegression's record)."""
    entries = [entry("manifest.json", MODEL_MANIFEST), record or entry("record.json", json.dumps(LR_RECORD).encode())]
    if arrays is not None:
        entries.append(entry("arrays.npz", raw_zip([entry("classes.npy", npy(np.arange(2))),
                                                    entry("intercept.npy", npy(np.zeros(1)))] + arrays)))
    path.write_bytes(raw_zip(entries))
    return path


def test_sec_npz_bombs_and_lying_array_headers_for_load_model(tmp_path):
    bomb, crc = space_bomb(1024)
    path = write_model(tmp_path / "bomb.pipekit", [entry("coef.npy", bomb, deflate=True, size=GiB, crc=crc)])
    peak = refused(load_model, path, match=r"arrays.npz: member 'coef.npy' inflates .* compression ratio over 100:1")
    assert peak < PEAK_LIMIT, peak
    path = write_model(tmp_path / "record_bomb.pipekit", None, entry("record.json", bomb, deflate=True, size=GiB,
                                                                     crc=crc))
    peak = refused(load_model, path, match=r"member 'record.json' inflates to 1,073,741,824 bytes")
    assert peak < PEAK_LIMIT, peak
    # an .npy header claiming 8 TB over 16 bytes of data: refused before anything is allocated
    hdr = "{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000000,), }"
    hdr += " " * (63 - (10 + len(hdr)) % 64) + "\n"
    lying = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hdr)) + hdr.encode() + bytes(16)
    path = write_model(tmp_path / "lying.pipekit", [entry("coef.npy", lying)])
    peak = refused(load_model, path, match=r"'coef.npy': its header says shape \(1000000000000,\) of float64 "
                                            r"\(8,000,000,000,000 bytes\) but 16 bytes follow")
    assert peak < PEAK_LIMIT, peak
    # strings of 0 bytes each: 0 bytes of data match the header, and NumPy would widen them to one character,
    # 4e9 of them here
    for descr in ("<U0", "|S0"):
        hdr = "{'descr': '%s', 'fortran_order': False, 'shape': (4000000000,), }" % descr
        hdr += " " * (63 - (10 + len(hdr)) % 64) + "\n"
        empty = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hdr)) + hdr.encode()
        path = write_model(tmp_path / "zero_width.pipekit", [entry("coef.npy", empty)])
        peak = refused(load_model, path, match=r"'coef.npy' holds .*0 values of 0 bytes each")
        assert peak < PEAK_LIMIT, peak
    # members that are not arrays, a record dtype, a malformed header
    for k, (name, data, pattern) in enumerate([
            ("notes.txt", b"hello", r"member 'notes.txt' is not a NumPy array \(.npy\)"),
            ("coef.npy", npy(np.zeros(2, dtype=[("a", "<f8")])), r"holds \[\('a', '<f8'\)\] values"),
            ("coef.npy", b"\x93NUMPY\x01\x00\x08\x00{'descr'", r"'coef.npy' is not a NumPy array")]):
        refused(load_model, write_model(tmp_path / f"odd{k}.pipekit", [entry(name, data)]), match=pattern)
    # the control: the same file with a real coefficient array loads
    ok = write_model(tmp_path / "ok.pipekit", [entry("coef.npy", npy(np.zeros((1, 1))))])
    assert load_model(ok).model_.coef_.shape == (1, 1)


def test_sec_model_file_record_is_bounded_json(tmp_path):
    for k, (text, pattern) in enumerate([
            ("[" * 100_000 + "]" * 100_000, f"nests JSON deeper than {MAX_JSON_DEPTH} levels"),
            ('{"a":' * 200 + "1" + "}" * 200, f"nests JSON deeper than {MAX_JSON_DEPTH} levels"),
            ("[1, 2]", r"expected the record of a Component .*got list"),
            ('{"class": "pipekit.backends.SklearnModel"', "is not valid JSON"),
            ("\udcff", "is not UTF-8 JSON")]):
        blob = text.encode("utf-8", "surrogateescape")
        path = write_model(tmp_path / f"m{k}.pipekit", None, entry("record.json", blob))
        refused(load_model, path, match=r"record.json.*" + pattern)
    # a zip of arrays without a manifest is pipekit 0.1's model format; anything else is not a pipekit file
    path = tmp_path / "old.npz"
    path.write_bytes(raw_zip([entry("w.npy", npy(np.zeros(3)))]))
    refused(load_model, path, match=r"written by pipekit 0.1 \(file format 1\)")
    path = tmp_path / "nomanifest.pipekit"
    path.write_bytes(raw_zip([entry("record.json", json.dumps(LR_RECORD).encode())]))
    refused(load_model, path, match="has no manifest.json; it is not a pipekit file")


# ------------------------------------------------------------------------ malformed manifest and record
def _set(path: tuple, value):
    def edit(obj):
        node = obj
        for k in path[:-1]:
            node = node[k]
        if value is KeyError:
            del node[path[-1]]
        else:
            node[path[-1]] = value
        return obj
    return edit


MANIFEST_ATTACKS = {
    "list": (lambda m: [1, 2], r"manifest.json does not describe a pipekit file"),
    "format": (_set(("format",), "pickle"), r"manifest.json does not describe a pipekit file"),
    "version_str": (_set(("version",), "abc"), r"manifest.json needs an integer 'version'"),
    "version_list": (_set(("version",), [2]), r"manifest.json needs an integer 'version'"),
    "version_bool": (_set(("version",), True), r"manifest.json needs an integer 'version'"),
    "version_zero": (_set(("version",), 0), r"manifest.json says format 0; this pipekit reads formats 2 to"),
    # format 1 had no manifest: one that says 1 is not pipekit's (and is not run through the format-2 upgrade)
    "version_one": (_set(("version",), 1), r"manifest.json says format 1; .*format 1 files have no manifest"),
    "version_missing": (_set(("version",), KeyError), r"manifest.json needs an integer 'version'"),
    "version_newer": (_set(("version",), 99), rf"was written by a newer pipekit \(format 99 > {VERSION}\)"),
    "kind_int": (_set(("kind",), 5), r"manifest.json needs an integer 'version' and a text 'kind'"),
    "kind_other": (_set(("kind",), "component"), r"holds a component, not a learner export"),
    "kind_unknown": (_set(("kind",), "os.system"), r"holds a os.system, not a learner export"),
}


@pytest.mark.parametrize("attack", sorted(MANIFEST_ATTACKS))
def test_sec_malformed_manifest_fields_are_export_errors(attack, exported, tmp_path):
    edit, pattern = MANIFEST_ATTACKS[attack]
    manifest = edit(json.loads(json.dumps(exported["manifest"])))
    path = with_members(exported, tmp_path, **{"manifest.json": json_bytes(manifest)})
    refused(load_learner, path, match=pattern)
    if attack == "kind_unknown":  # pipekit.load looks loaders up by kind, in its registry only
        refused(pipekit.load, path, match=r"a file of kind 'os.system' cannot be loaded by this pipekit")


RECORD_ATTACKS = {
    "list": (lambda r: [1, 2], r"record.json must hold a JSON object, got list"),
    "arch_str": (_set(("arch",), "TabularModel"), r"field 'arch' must be an object"),
    "arch_missing": (_set(("arch",), KeyError), r"field 'arch' must be an object with 'name' and 'config', got NoneType"),
    "arch_name": (_set(("arch", "name"), 5), r"field 'arch.name' must be a registered architecture name"),
    "arch_config_list": (_set(("arch", "config"), [1]), r"field 'arch.config' must be an object"),
    "arch_config_type": (_set(("arch", "config", "n_cont"), "three"),
                         r"record.json field 'arch.config.n_cont' must be an integer in \[0, inf\], got 'three'"),
    "arch_config_unknown": (_set(("arch", "config", "evil"), 1),
                            r"field 'arch.config' has unknown key\(s\) \['evil'\]; TabularModel takes \['bn_cont'"),
    "arch_config_shape": (_set(("arch", "config", "emb_szs"), [[1, 2, 3]]),
                          r"record.json field 'arch.config.emb_szs' must be a list of \[n_classes, width\] pairs"),
    "arch_config_ref": (_set(("arch", "config", "n_cont"), {"__ref__": "os.system"}),
                        r"field 'arch.config.n_cont' must be an integer in \[0, inf\], got \"{'__ref__'"),
    "arch_config_body_ref": (_set(("arch", "config", "body"), {"__ref__": "os.system"}),
                             r"architecture 'TabularModel': object 'os.system' is not registered"),
    "arch_unknown": (_set(("arch", "name"), "no_such_net"), r"record.json: architecture 'no_such_net' is not registered"),
    "arch_other_kind": (_set(("arch", "name"), "pipekit.data.Categorize"),
                        r"record.json: architecture 'pipekit.data.Categorize' is not registered"),
    "loss_unknown": (_set(("loss", "class"), "pipekit.learn.NoSuchLoss"),
                     r"record.json field 'loss': BaseLoss 'pipekit.learn.NoSuchLoss' is not registered"),
    "loss_str": (_set(("loss",), "CrossEntropyLossFlat"), r"field 'loss' must be a loss record"),
    "loss_config": (_set(("loss", "params"), {"evil": 1}),
                    r"field 'loss': the record of pipekit.learn.CrossEntropyLossFlat has parameters \['evil'\]"),
    "loss_value": (_set(("loss", "params", "reduction"), "avg"), r"field 'loss': .*reduction='avg' is not accepted"),
    "loss_other_kind": (_set(("loss", "class"), "pipekit.data.Categorize"),
                        r"field 'loss': 'pipekit.data.Categorize' is registered but is not a BaseLoss"),
    "metric_unknown": (_set(("metrics",), [{"class": "no_such_metric", "params": {}}]),
                       r"record.json field 'metrics\[0\]': Metric 'no_such_metric' is not registered"),
    "metrics_str": (_set(("metrics",), "accuracy"), r"field 'metrics' must be a list"),
    "metric_int": (_set(("metrics",), [5]), r"field 'metrics\[0\]' must be a metric record"),
    "metric_name": (_set(("metrics",), [{"class": ["accuracy"], "params": {}}]),
                    r"field 'metrics\[0\]': a registered name must be text"),
    "metric_other_kind": (_set(("metrics",), [{"class": "pipekit.learn.CrossEntropyLossFlat", "params": {}}]),
                          r"field 'metrics\[0\]': .*is registered but is not a Metric"),
    "dls_list": (_set(("dls",), []), r"field 'dls' must be the DataLoaders state"),
    "dls_empty": (_set(("dls",), {}), r"record.json field 'dls': the data state of this export has no recipe"),
    "dls_unknown_recipe": (_set(("dls", "recipe", "class"), "system"), r"field 'dls': .*'system' is not registered"),
    "dls_missing_array": (_set(("dls", "recipe", "params", "processor"), {"__array__": "zz"}),
                          r"field 'dls': a record refers to array 'zz', which the file does not hold"),
    "learner": (_set(("learner",), 5), r"field 'learner' must be the registered name of a Learner class"),
    "learner_other_kind": (_set(("learner",), "pipekit.learn.CrossEntropyLossFlat"),
                           r"field 'learner': 'pipekit.learn.CrossEntropyLossFlat' is a registered loss, not a learner"),
    "learner_unknown": (_set(("learner",), "os.system"), r"field 'learner': learner 'os.system' is not registered"),
    # embedding tables swapped between two columns: the weights still fill them, and predict read one column's
    # codes in the other's table (an IndexError past its rows)
    "emb_szs_swapped": (lambda r: _set(("arch", "config", "emb_szs"),
                                       [r["arch"]["config"]["emb_szs"][1], r["arch"]["config"]["emb_szs"][0],
                                        *r["arch"]["config"]["emb_szs"][2:]])(r),
                        r"field 'arch.config.emb_szs\[0\]' has \d+ rows, but column 'workclass' is coded into \d+ "
                        r"categories"),
    # a value naming what reads a file, builds a learner or builds a network: a getter that named one would call
    # it on every item the learner predicts
    "value_a_loader": (_set(("dls", "recipe", "params", "processor"), {"__ref__": "learner"}),
                       r"field 'dls': 'learner' is a registered loader, which cannot stand here"),
    "value_a_learner": (_set(("dls", "recipe", "params", "processor"), {"__ref__": "pipekit.learn.Learner"}),
                        r"field 'dls': 'pipekit.learn.Learner' is a registered learner, which cannot stand here"),
    "value_an_arch": (_set(("dls", "recipe", "params", "processor"), {"__ref__": "xresnet50"}),
                      r"field 'dls': 'xresnet50' is a registered arch, which cannot stand here"),
}


@pytest.mark.parametrize("attack", sorted(RECORD_ATTACKS))
def test_sec_malformed_record_fields_are_export_errors(attack, exported, tmp_path):
    edit, pattern = RECORD_ATTACKS[attack]
    record = edit(json.loads(json.dumps(exported["record"])))
    path = with_members(exported, tmp_path, **{"record.json": json_bytes(record)})
    refused(load_learner, path, match=pattern)


def test_sec_deep_json_records_are_export_errors(exported, tmp_path):
    for name in ("record.json", "manifest.json"):
        for text in ("[" * 100_000 + "]" * 100_000,
                     '{"a":' * (MAX_JSON_DEPTH + 1) + "1" + "}" * (MAX_JSON_DEPTH + 1)):
            path = with_members(exported, tmp_path, **{name: text.encode()})
            refused(load_learner, path, match=f"{name} nests JSON deeper than {MAX_JSON_DEPTH} levels")
    # deep but within the cap: parsed, then refused for its content
    ok_depth = '{"a":' * (MAX_JSON_DEPTH - 1) + "1" + "}" * (MAX_JSON_DEPTH - 1)
    path = with_members(exported, tmp_path, **{"record.json": ok_depth.encode()})
    refused(load_learner, path, match="record.json field 'arch' must be an object")
    path = with_members(exported, tmp_path, **{"record.json": b"\xff\xfe{}"})
    refused(load_learner, path, match="record.json is not UTF-8 JSON")


def test_sec_exports_in_the_old_layout_say_how_to_re_export(exported, tmp_path):
    old = tmp_path / "old.pipekit"
    old.write_bytes(raw_zip([entry("recipe.json", json_bytes({"format": "pipekit-learner", "version": 1}),
                                   deflate=True), entry("model.safetensors", exported["members"]["weights.safetensors"])]))
    refused(load_learner, old, match=r"written by pipekit 0.1 \(file format 1\).*learn.export\(path\)")
    no_manifest = with_members(exported, tmp_path, **{"manifest.json": None})
    refused(load_learner, no_manifest, match=r"has no manifest.json; it is not a pipekit file")
    no_record = with_members(exported, tmp_path, "norecord.pipekit", **{"record.json": None})
    refused(load_learner, no_record, match=r"has no record.json")


# ------------------------------------------------------------------------------------- weights and arrays
def test_sec_bad_weights_are_export_errors(exported, tmp_path):
    weights = exported["members"]["weights.safetensors"]
    header_len = struct.unpack("<Q", weights[:8])[0]
    for name, data in [("truncated", weights[: len(weights) // 2]), ("header only", weights[: 8 + header_len]),
                       ("garbage", b"\x00" * 64), ("huge header", struct.pack("<Q", 1 << 40) + weights[8:]),
                       ("pickle", b"\x80\x04\x95" + weights[3:])]:
        path = with_members(exported, tmp_path, f"{name}.pipekit", **{"weights.safetensors": data})
        refused(load_learner, path, match=r"the weights \(weights.safetensors\) do not load into architecture "
                                          r"'TabularModel' \(.*weights.safetensors could not be read")
    # well-formed safetensors of another model
    from safetensors.torch import save

    other = save({"layers.0.weight": torch.zeros(3, 3)})
    path = with_members(exported, tmp_path, "other.pipekit", **{"weights.safetensors": other})
    refused(load_learner, path, match=r"field 'arch.config.layers' has 1 hidden layer size\(s\) \[32\], but the stored "
                                      r"weights hold 0 hidden linear layer\(s\)")
    path = with_members(exported, tmp_path, "none.pipekit", **{"weights.safetensors": None})
    refused(load_learner, path, match=r"holds no weights.safetensors")


def test_sec_a_config_asking_for_a_huge_model_is_refused_before_it_is_built(exported, tmp_path):
    import resource

    record = json.loads(json.dumps(exported["record"]))
    record["arch"]["config"]["layers"] = [20000, 20000]  # 4e8 weights, 1.6 GB, that the file does not hold
    path = with_members(exported, tmp_path, "huge.pipekit", **{"record.json": json_bytes(record)})
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    refused(load_learner, path, match=r"field 'arch.config.layers' has 2 hidden layer size\(s\) \[20000, 20000\], but "
                                      r"the stored weights hold 1 hidden linear layer\(s\) of sizes \[32\]")
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 300, f"loading grew the process by {grown_mb:.0f} MB"


class _Evil:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_sec_bad_arrays_npz_are_export_errors(exported, tmp_path):
    marker = tmp_path / "marker"
    pickled = raw_zip([entry("a_0.npy", npy(np.array([_Evil(marker)], dtype=object), allow_pickle=True))])
    cases = [(b"not a zip", r"arrays.npz is not a zip archive"),
             (pickled, r"arrays.npz: member 'a_0.npy' holds object values"),
             (raw_zip([entry("../a_0.npy", npy(np.zeros(2)))]), r"arrays.npz: member '../a_0.npy' is not a plain"),
             (raw_zip([entry("a_0.txt", b"1")]), r"arrays.npz: member 'a_0.txt' is not a NumPy array")]
    for data, pattern in cases:
        path = with_members(exported, tmp_path, **{"arrays.npz": data})
        refused(load_learner, path, match=pattern)
    assert not marker.exists()
    # a legitimate arrays.npz is read: an array beside the record (this export's record refers to none: a
    # learner's data takes no array field, its batch size included) changes nothing
    buf = io.BytesIO()
    np.savez(buf, extra=np.array(64))
    path = with_members(exported, tmp_path, **{"arrays.npz": buf.getvalue()})
    assert torch.equal(predictions(load_learner(path), exported["rows"]), exported["preds"])


def test_sec_arrays_inside_arrays_npz_share_the_files_budget(tmp_path, monkeypatch):
    """arrays.npz is read in place, and the arrays inside it count against what is left of the one budget of the
    file: a 16 MiB array costs about twice that while it is read (it cost three times: the member, a copy of it,
    the array), and a file whose arrays would take the total past the budget is refused before they are read."""
    from pipekit.core import archive

    path = write_model(tmp_path / "big.pipekit", [entry("coef.npy", npy(np.zeros(16 * MiB // 8)))])
    tracemalloc.start()
    try:
        read = archive.read_pipekit(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert read.arrays["coef"].nbytes == 16 * MiB and peak < 2.4 * 16 * MiB, peak / MiB
    monkeypatch.setattr(archive, "MAX_TOTAL_BYTES", 24 * MiB)  # 16 MiB of arrays.npz leaves 8 for its arrays
    refused(archive.read_pipekit, path, match=r"arrays.npz: members inflate to 16.* together, over the .* limit "
                                              r"left for them")


# ------------------------------------------------------------------------------------ names and directory
def test_sec_a_directory_holding_more_members_than_its_end_record_counts_is_refused(exported, tmp_path):
    """zipfile reads the whole directory, whatever the end record says: a count of 3 over 60,003 members passed
    the member limit, which read the count. The directory must hold what the record counts."""
    entries = [entry(k, v) for k, v in exported["members"].items()]
    entries += [entry(f"pad{i}.txt", b"") for i in range(20)]
    data = bytearray(raw_zip(entries))
    end = data.rfind(b"PK\x05\x06")
    struct.pack_into("<2H", data, end + 8, 3, 3)
    path = tmp_path / "count.pipekit"
    path.write_bytes(bytes(data))
    refused(load_learner, path, match=r"its directory holds 23 members where its end record counts 3")


def test_sec_loose_arrays_are_no_member_of_a_current_file(exported, tmp_path):
    """Loose .npy members belong to pipekit 0.1's layout: a file with a manifest holding them is refused rather than
    having each read (up to 2 GiB apiece) and never used."""
    path = with_members(exported, tmp_path, **{"w0.npy": npy(np.zeros(4))})
    refused(load_learner, path, match=r"member\(s\) \['w0.npy'\] are not part of a pipekit file of format")


def test_sec_unsafe_member_names_and_flags_are_refused(exported, tmp_path):
    record = exported["members"]["record.json"]
    for extra, pattern in [
            (entry("../record.json", record), r"member '../record.json' is not a plain relative name"),
            (entry("/etc/passwd", b"x"), r"member '/etc/passwd' is not a plain relative name"),
            (entry("a/../../b", b"x"), r"member 'a/../../b' is not a plain relative name"),
            (entry("c:\\evil", b"x"), r"member 'c:\\\\evil' is not a plain relative name"),
            (entry("record.json", record), r"member 'record.json' appears twice"),
            (entry("learner.pkl", b"x"), r"member 'learner.pkl' is not part of a pipekit file"),
            (entry("notes.txt", b"x", flags=1), r"member 'notes.txt' is encrypted"),
            (entry("notes.txt", b"x", method=12), r"member 'notes.txt' uses compression method 12")]:
        entries = [entry(k, v) for k, v in exported["members"].items()] + [extra]
        path = tmp_path / "names.pipekit"
        path.write_bytes(raw_zip(entries))
        refused(load_learner, path, match=pattern)
        path.unlink()


def test_sec_a_directory_claiming_too_many_members_is_refused_before_parsing(exported, tmp_path):
    data = bytearray(exported["archive"].read_bytes())
    end = data.rfind(b"PK\x05\x06")
    struct.pack_into("<HH", data, end + 8, 60_000, 60_000)  # entries on this disk, entries in total
    path = tmp_path / "many.pipekit"
    path.write_bytes(bytes(data))
    refused(load_learner, path, match=r"lists 60,000 members .*at most 10,000 members")
    struct.pack_into("<HHL", data, end + 8, 3, 3, 64 * MiB)  # a 64 MiB central directory
    path.write_bytes(bytes(data))
    refused(load_learner, path, match=r"in a 67,108,864 bytes directory")
    path.write_bytes(b"PK\x03\x04" + bytes(100))
    refused(load_learner, path, match="not a pipekit file|not a zip archive|is a zip cut short")


# ------------------------------------------------------------------------------------------ folder form
def test_sec_export_folders_get_the_same_caps(exported, tmp_path):
    folder = tmp_path / "folder"
    shutil.copytree(exported["folder"], folder)
    assert torch.equal(predictions(load_learner(folder), exported["rows"]), exported["preds"])
    assert type(pipekit.load(folder)).__name__ == "Learner"
    record = folder / "record.json"
    good = record.read_bytes()
    # a 1 GiB record.json (sparse: no disk used) is refused from its size, without being read
    record.unlink()
    with open(record, "wb") as f:
        f.truncate(GiB)
    peak = refused(load_learner, folder, match=r"'record.json' is 1,073,741,824 bytes, over the 16,777,216 bytes limit")
    assert peak < PEAK_LIMIT, peak
    record.write_bytes(("[" * 100_000 + "]" * 100_000).encode())
    refused(load_learner, folder, match=f"record.json nests JSON deeper than {MAX_JSON_DEPTH} levels")
    record.write_bytes(json_bytes(_set(("learner",), 5)(json.loads(good))))
    refused(load_learner, folder, match=r"field 'learner' must be the registered name of a Learner class")
    record.write_bytes(good)
    manifest = folder / "manifest.json"
    good_manifest = manifest.read_bytes()
    manifest.write_bytes(json_bytes(_set(("version",), "abc")(json.loads(good_manifest))))
    refused(load_learner, folder, match=r"manifest.json needs an integer 'version'")
    manifest.write_bytes(good_manifest)
    # a device or a pipe in place of the weights is refused (reading it could block or never end)
    weights = folder / "weights.safetensors"
    good_weights = weights.read_bytes()
    weights.unlink()
    os.symlink("/dev/zero", weights)
    refused(load_learner, folder, match=r"'weights.safetensors' is a symbolic link; an export folder holds")
    # a link to a real file elsewhere on the disk is refused before that file is opened, even to a copy of
    # the folder's own weights
    weights.unlink()
    (tmp_path / "elsewhere.safetensors").write_bytes(good_weights)
    os.symlink(tmp_path / "elsewhere.safetensors", weights)
    refused(load_learner, folder, match=r"'weights.safetensors' is a symbolic link")
    record.unlink()
    os.symlink("/etc/passwd", record)
    refused(load_learner, folder, match=r"'record.json' is a symbolic link")
    record.unlink()
    record.write_bytes(good)
    weights.unlink()
    weights.mkdir()
    refused(load_learner, folder, match=r"'weights.safetensors' is not a regular file")
    weights.rmdir()
    os.mkfifo(weights)
    refused(load_learner, folder, match=r"'weights.safetensors' is not a regular file")


def test_sec_json_cap_is_checked_on_size_before_parsing(tmp_path):
    from pipekit.core.archive import parse_json

    refused(parse_json, b" " * (MAX_JSON_BYTES + 1), "x.json", match=r"x.json holds 16,777,217 bytes of JSON")
    assert parse_json(b" " * 1000 + b"[1]", "x.json") == [1]


# ---------------------------------------------------------------------------- the one reader, elsewhere
def test_sec_npz_reader_matches_numpy_on_real_arrays(tmp_path):
    arrays = {"f32_fortran": np.asfortranarray(np.arange(12, dtype=np.float32).reshape(3, 4)),
              "i8_big_endian": np.arange(5, dtype=">i8"), "bool": np.array([True, False]),
              "str": np.array(["<50k", ">=50k"]), "bytes": np.array([b"a", b"bc"]), "scalar": np.array(3.5),
              "empty": np.zeros((0, 3)), "complex": np.array([1 + 2j]), "u8": np.frombuffer(b"json", np.uint8)}
    path = tmp_path / "a.npz"
    np.savez(path, **arrays)
    back = read_npz(path, where=str(path))
    with np.load(path, allow_pickle=False) as ref:
        assert sorted(back) == sorted(ref.files)
        for k in ref.files:
            assert back[k].dtype == ref[k].dtype and back[k].shape == ref[k].shape, k
            np.testing.assert_array_equal(back[k], ref[k])
    assert back["f32_fortran"].flags.f_contiguous and back["f32_fortran"].flags.writeable


def test_sec_saved_component_files_use_the_same_limits(tmp_path):
    from pipekit.data import Categorize

    cat = Categorize()
    cat.setup(pl.Series(["b", "a"]))
    assert pipekit.load(pipekit.save(cat, tmp_path / "cat.pipekit")).vocab_ == ["a", "b"]
    cat.weights_ = {"x": np.arange(3.0)}  # learned state holding an array goes to arrays.npz
    folder = pipekit.save(cat, tmp_path / "cat")  # no extension: a folder of the same files
    assert pipekit.load(folder).weights_["x"].tolist() == [0.0, 1.0, 2.0]
    (folder / "record.json").write_text("[" * 100_000 + "]" * 100_000)
    refused(pipekit.load, folder, match=f"record.json nests JSON deeper than {MAX_JSON_DEPTH} levels")
    bomb, crc = space_bomb(1024)
    (folder / "arrays.npz").write_bytes(raw_zip([entry("a0.npy", bomb, deflate=True, size=GiB, crc=crc)]))
    (folder / "record.json").write_text(json.dumps({"class": "pipekit.data.Categorize", "params": {},
                                                    "state": {"vocab_": {"__array__": "a0"}}}))
    peak = refused(pipekit.load, folder, match=r"arrays.npz: member 'a0.npy' inflates .* compression ratio over 100:1")
    assert peak < PEAK_LIMIT, peak
    (folder / "record.json").write_text(json.dumps({"class": "pipekit.data.Categorize", "params": {"nope": 1}}))
    (folder / "arrays.npz").unlink()
    refused(pipekit.load, folder, match=r"parameters \['nope'\] that Categorize does not take")
    (folder / "record.json").write_text(json.dumps({"class": "os.system", "params": {"command": "touch x"}}))
    refused(pipekit.load, folder, match=r"'os.system' is not registered")


def test_sec_archive_docstring_examples_run():
    import doctest

    import pipekit.core.archive

    result = doctest.testmod(pipekit.core.archive, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 5 and result.failed == 0


def test_sec_a_pipe_swapped_in_after_the_check_does_not_hang_the_load(tmp_path, monkeypatch):
    """A member replaced by a named pipe between the size check and the open was opened for reading, which waits
    for a writer forever; it is now opened without waiting and refused."""
    import threading

    import pipekit.core.archive as archive

    fifo = tmp_path / "record.json"
    os.mkfifo(fifo)
    monkeypatch.setattr(archive, "_regular_size", lambda path, where, max_bytes: 2)  # the check saw a file
    found: list = []

    def read() -> None:
        try:
            archive.read_file(fifo, "record.json")
        except ExportError as e:
            found.append(str(e))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(10)
    assert not reader.is_alive(), "read_file waited on the pipe"
    assert found == ["record.json is not a regular file"]
