"""Chapter 9's save_pickle/load_pickle: what is saved comes back equal, and no pickle is ever written or loaded."""
import os
import pickle

import numpy as np
import pandas as pd
import polars as pl
import pytest

from pipekit.core.errors import ExportError, ParameterError
from pipekit.tabular import Categorify, FillMissing, TabularPandas, load_pickle, save_pickle
from pipekit.data import RandomSplitter

pytestmark = pytest.mark.skipif(not os.environ.get("PIPEKIT_DATA"), reason="needs $PIPEKIT_DATA")


@pytest.fixture(scope="module")
def adult():
    import pipekit.datasets as D

    return pd.read_csv(D.path("adult_sample") / "adult.csv")


def test_processed_table_round_trip(adult, tmp_path):
    to = TabularPandas(adult, procs=[Categorify, FillMissing], cat_names=["workclass", "education"],
                       cont_names=["age", "fnlwgt"], y_names="salary", splits=RandomSplitter(seed=42)(range(len(adult))))
    written = save_pickle(tmp_path / "to.pkl", to)
    assert written == tmp_path / "to.pkl"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["to.pipekit", "to.pkl"]
    back = load_pickle(tmp_path / "to.pkl")
    pd.testing.assert_frame_equal(back.train.xs, to.train.xs)
    pd.testing.assert_frame_equal(back.valid.xs, to.valid.xs)
    assert back.train.y.to_list() == to.train.y.to_list()
    assert back.classes["workclass"] == to.classes["workclass"]


def test_frames_and_arrays_come_back_equal(adult, tmp_path):
    xs = adult[["age", "workclass", "education-num"]].iloc[::7].astype({"workclass": "category"})
    back = load_pickle(save_pickle(tmp_path / "xs_final.pkl", xs))
    pd.testing.assert_frame_equal(back, xs)  # the categories and the row labels (every 7th) kept
    for series in (adult["age"], adult["age"].rename(None)):
        pd.testing.assert_series_equal(load_pickle(save_pickle(tmp_path / "s.pkl", series)), series)
    frame = pl.from_pandas(adult.head(50))
    assert load_pickle(save_pickle(tmp_path / "p.pkl", frame)).equals(frame)
    column = pl.Series("age", adult["age"].to_numpy())
    assert load_pickle(save_pickle(tmp_path / "c.pkl", column)).equals(column)
    arr = adult[["age", "fnlwgt"]].to_numpy()
    np.testing.assert_array_equal(load_pickle(save_pickle(tmp_path / "a.pkl", arr)), arr)


def test_a_model_round_trips(adult, tmp_path):
    from pipekit.backends import RandomForest
    from pipekit.tabular import Tabular

    tab = Tabular(adult.head(600), cat_names=["workclass"], cont_names=["age", "fnlwgt"], y_names="salary",
                  splits=RandomSplitter(0.2, seed=1))
    model = RandomForest("classification", n_estimators=5, n_jobs=1, seed=0).fit(tab.train)
    back = load_pickle(save_pickle(tmp_path / "m.pkl", model))
    np.testing.assert_array_equal(back.predict(tab.valid), model.predict(tab.valid))


def test_a_pickle_is_refused_never_loaded(tmp_path):
    marker = tmp_path / "ran"

    class Runs:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (tmp_path / "evil.pkl").write_bytes(pickle.dumps(Runs()))
    with pytest.raises(ExportError, match="never loads pickles"):
        load_pickle(tmp_path / "evil.pkl")
    assert not marker.exists()


def test_what_cannot_be_written_without_pickle_is_named(tmp_path):
    with pytest.raises(ParameterError, match="a dict cannot be saved"):
        save_pickle(tmp_path / "d.pkl", {"a": 1})
    with pytest.raises(ParameterError, match="astype"):
        save_pickle(tmp_path / "o.pkl", np.array([{"a": 1}], dtype=object))
    assert not list(tmp_path.iterdir())
    pl.DataFrame({"a": [1]}).write_parquet(tmp_path / "foreign.pkl")
    with pytest.raises(ExportError, match="save_pickle did not write"):
        load_pickle(tmp_path / "foreign.pkl")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_pickle(tmp_path / "none.pkl")
