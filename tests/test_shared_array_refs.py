"""A model file refers to each stored array from one field only: a file edited to list one member (a forest, a GBM,
a bagged fold model) many times over the same arrays of arrays.npz is refused by name before anything is built,
while the files pipekit writes for ensembles whose members share a processor, or hold one model twice, load."""

from __future__ import annotations

import io
import json
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from test_models_helpers import adult_tab

import pipekit
import pipekit.core.component as component
from pipekit.backends import GBM, RandomForest
from pipekit.core import ExportError
from pipekit.core.archive import check_array_references
from pipekit.ensemble import BaggedModel, MeanEnsemble, StackingEnsemble, WeightedEnsemble


@pytest.fixture(scope="module")
def tab():
    return adult_tab(3000)


@pytest.fixture(scope="module")
def rf(tab):
    return RandomForest("classification", n_estimators=20, min_samples_leaf=1, n_jobs=1, seed=0).fit(tab.train)


@pytest.fixture(scope="module")
def gbm(tab):
    return GBM("classification", n_estimators=40, n_jobs=1).fit(tab.train, tab.valid)


def _read(path: Path) -> tuple[dict[str, bytes], dict]:
    with zipfile.ZipFile(path) as z:
        files = {n: z.read(n) for n in z.namelist()}
    return files, json.loads(files["record.json"])


def _write_stored(path: Path, files: dict[str, bytes], record: dict) -> Path:
    """The file with its record replaced, every member stored (compression ratio 1, as pipekit stores arrays)."""
    files = {**files, "record.json": json.dumps(record).encode()}
    with zipfile.ZipFile(path, "w") as z:
        for name, data in files.items():
            z.writestr(name, data, compress_type=zipfile.ZIP_STORED)
    return path


def _array_keys(data, path: str = "") -> list[tuple[str, str]]:
    """(array key, field) of every array reference, in document order."""
    if isinstance(data, dict):
        if "__array__" in data:
            return [(data["__array__"], path)]
        return [kv for k, v in data.items() for kv in _array_keys(v, f"{path}.{k}" if path else k)]
    if isinstance(data, list):
        return [kv for i, v in enumerate(data) for kv in _array_keys(v, f"{path}[{i}]")]
    return []


def _largest(files: dict[str, bytes], record: dict, prefix: str) -> tuple[str, str]:
    """(key, first field) of the largest array referenced under the field ``prefix`` (the first such, in order)."""
    arrays = np.load(io.BytesIO(files["arrays.npz"]))
    refs = [(k, f) for k, f in _array_keys(record) if f.startswith(prefix)]
    return max(refs, key=lambda kf: arrays[kf[0]].nbytes)


def _load_counting_builds(path: Path, monkeypatch) -> tuple[list[str], int, str]:
    """Load ``path`` expecting a refusal: (classes of the components built before it, peak bytes traced, the message)."""
    built: list[str] = []
    real = component._build

    def counting(record, *args, **kwargs):
        built.append(record["class"])
        return real(record, *args, **kwargs)

    monkeypatch.setattr(component, "_build", counting)
    tracemalloc.start()
    try:
        with pytest.raises(ExportError) as err:
            pipekit.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return built, peak, str(err.value)


@pytest.mark.parametrize("which", ["rf", "gbm"])
def test_one_member_listed_many_times_over_the_same_arrays_is_refused_by_name(which, request, tmp_path, monkeypatch):
    model = request.getfixturevalue(which)
    saved = pipekit.save(MeanEnsemble([model]), tmp_path / "one.pipekit")
    files, record = _read(saved)
    member = record["params"]["members"][0]
    key, field = _largest(files, record, "params.members[0].")
    record["params"]["members"] = [member] * 40
    crafted = _write_stored(tmp_path / "many.pipekit", files, record)
    built, peak, msg = _load_counting_builds(crafted, monkeypatch)
    assert str(crafted) in msg and f"array {key!r}" in msg and "is referenced 40 times" in msg
    assert f"from {field}, {field.replace('members[0]', 'members[1]')} and 38 more fields" in msg
    # refused while reading the file: no component built, nothing near one forest per listed member allocated
    assert built == []
    npz = len(files["arrays.npz"])
    assert peak < 3 * npz + 16_000_000, f"peak {peak:,} bytes for {npz:,} bytes of arrays"
    # the file as pipekit wrote it loads and predicts as the model does
    back = pipekit.load(saved)
    np.testing.assert_allclose(back.predict(request.getfixturevalue("tab").valid),
                               MeanEnsemble([model]).predict(request.getfixturevalue("tab").valid))


def test_bagged_fold_models_pointing_at_one_fold_models_arrays_are_refused(tab, tmp_path, monkeypatch):
    bag = BaggedModel(RandomForest("classification", n_estimators=5, n_jobs=1, seed=0), n_folds=3, seed=7)
    bag.fit(tab.train, tab.valid)
    saved = pipekit.save(bag, tmp_path / "bag.pipekit")
    files, record = _read(saved)
    models = record["state"]["models_"]
    assert len(models) == 3
    record["params"]["n_repeats"] = 20  # 60 fold models, all over fold 0's arrays
    record["state"]["models_"] = [models[0]] * 60
    crafted = _write_stored(tmp_path / "bag_same.pipekit", files, record)
    built, _, msg = _load_counting_builds(crafted, monkeypatch)
    key, field = _largest(files, record, "state.models_[0].")
    assert built == []
    assert str(crafted) in msg and f"array {key!r}" in msg and "is referenced 60 times" in msg
    assert f"from {field}, {field.replace('models_[0]', 'models_[1]')} and 58 more fields" in msg
    monkeypatch.undo()
    back = pipekit.load(saved)
    np.testing.assert_allclose(back.predict(tab.valid), bag.predict(tab.valid))


def test_files_pipekit_writes_refer_to_each_array_once_and_load(tab, rf, gbm, tmp_path):
    # members fitted on one table share its processor; a model held by two ensembles, and twice by one, is written
    # once for each place that holds it
    weighted = WeightedEnsemble({"rf": rf, "gbm": gbm}).fit(tab.valid)
    stacked = StackingEnsemble({"rf": RandomForest("classification", n_estimators=5, n_jobs=1, seed=0),
                                "gbm": GBM("classification", n_estimators=20, n_jobs=1)}).fit(tab.train, tab.valid)
    models = {"mean": MeanEnsemble([rf, gbm]), "nested": MeanEnsemble([weighted, rf, MeanEnsemble([rf, gbm])]),
              "twice": MeanEnsemble([rf, rf]), "stacked": stacked,
              "bagged": BaggedModel(GBM("classification", n_estimators=20, n_jobs=1), n_folds=2).fit(tab.train)}
    assert models["mean"].members[0].processor() is models["mean"].members[1].processor()
    for name, model in models.items():
        saved = pipekit.save(model, tmp_path / f"{name}.pipekit")
        _, record = _read(saved)
        keys = [k for k, _ in _array_keys(record)]
        assert keys and len(keys) == len(set(keys)), name
        back = pipekit.load(saved)
        np.testing.assert_allclose(back.predict(tab.valid), model.predict(tab.valid), err_msg=name)


def test_a_few_extra_references_pass_and_many_are_refused_in_document_order():
    arrays = {"a3": np.zeros(2**18), "a4": np.zeros(4)}  # 2 MiB and 32 bytes

    def record(n: int) -> dict:
        return {"class": "x", "params": {"members": [{"state": {"w_": {"__array__": "a4"}, "v_": {"__array__": "a3"}}}
                                                     for _ in range(n)]}}

    check_array_references(record(2), arrays, "m.pipekit")  # twice what is stored
    with pytest.raises(ExportError, match=r"m\.pipekit: record\.json refers to 6,291,552 bytes of arrays where "
                                          r"arrays\.npz holds 2,097,184 bytes .*array 'a3' \(2,097,152 bytes\) is "
                                          r"referenced 3 times, from params\.members\[0\]\.state\.v_, "
                                          r"params\.members\[1\]\.state\.v_ and 1 more field\. "):
        check_array_references(record(3), arrays, "m.pipekit")
