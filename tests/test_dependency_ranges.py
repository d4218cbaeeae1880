"""pipekit across the versions of its dependencies that pyproject.toml allows: the oldest behaviour of scikit-learn
(1.6-1.8 read a frame's column names from pandas only, not from Polars 2) and of tokenizers (before 0.20: no
``encode_batch_fast``), stand-ins here for the installed newest; scikit-learn model files written by one release and
read by another; ensembles selecting on rows whose values repeat training rows'; and the messages for optional
packages that are not installed."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from test_models_helpers import adult_tab

import pipekit
from pipekit.backends import GBM, RandomForest, SklearnModel, as_data
from pipekit.core import DataError, ExportError, ParameterError
from pipekit.data import RandomSplitter
from pipekit.datasets import path
from pipekit.ensemble import WeightedEnsemble
from pipekit.sklearn import TabularClassifier
from pipekit.tabular import Categorify, FillMissing, Tabular

pytestmark = [pytest.mark.data, pytest.mark.filterwarnings("ignore:(FillMissing|Categorify):UserWarning")]


def rewrite_record(file: Path, change) -> None:
    """Rewrite the record.json of a model file in place with ``change(record)``."""
    with zipfile.ZipFile(file) as z:
        parts = {n: z.read(n) for n in z.namelist()}
    record = json.loads(parts["record.json"])
    change(record)
    parts["record.json"] = json.dumps(record).encode()
    with zipfile.ZipFile(file, "w") as z:
        for n, data in parts.items():
            z.writestr(n, data)


# ---------------------------------------------------------------------------------------- scikit-learn names
@pytest.fixture(params=["installed", "before 1.9"])
def sklearn_names(request, monkeypatch):
    """The installed scikit-learn, and one reading column names as 1.6-1.8 do: from pandas frames only (Polars 2
    frames have no ``__dataframe__``)."""
    if request.param == "before 1.9":
        import sklearn.utils.validation as validation

        read = validation._get_feature_names
        monkeypatch.setattr(validation, "_get_feature_names",
                            lambda X: read(X) if type(X).__module__.startswith("pandas") else None)
    return request.param


def test_a_polars_frame_fits_on_its_own_column_names_with_any_scikit_learn(sklearn_names, tmp_path):
    """adult as Polars: the estimator keeps the 14 names (not x0..x13), refuses two columns swapped instead of
    predicting from them by position, and a saved model predicts on rows read back from a CSV (pipekit predict)."""
    from pipekit.cli import main

    adult = pl.read_csv(path("adult_sample") / "adult.csv").head(2000)
    X, y = adult.drop("salary"), adult["salary"].to_numpy()
    clf = TabularClassifier(GBM("classification", n_estimators=20, n_jobs=1), random_state=0).fit(X, y)
    assert clf.feature_names_in_.tolist() == X.columns
    assert clf.processor_.cont_names[0] == "age"
    cols = X.columns
    i, j = cols.index("age"), cols.index("hours-per-week")
    cols[i], cols[j] = cols[j], cols[i]
    with pytest.raises(ValueError, match="The feature names should match those that were passed during fit"):
        clf.predict(X.select(cols))
    expected = clf.predict_proba(X)
    for same in (X.lazy(), X.to_arrow(), pa.RecordBatch.from_pandas(X.to_pandas()), X.to_pandas()):
        np.testing.assert_array_equal(clf.predict_proba(same), expected)
    with pytest.raises(ValueError, match="Feature names unseen at fit time:\n- AGE"):
        clf.predict(X.to_arrow().rename_columns(["AGE", *X.columns[1:]]))
    # fitted on an arrow table, the names are the table's too
    assert TabularClassifier(GBM("classification", n_estimators=5, n_jobs=1)).fit(
        X.to_arrow(), y).feature_names_in_.tolist() == X.columns
    pipekit.save(clf, tmp_path / "clf.pipekit")
    X.head(5).write_csv(tmp_path / "rows.csv")
    assert main(["predict", str(tmp_path / "clf.pipekit"), str(tmp_path / "rows.csv")]) == 0
    back = pipekit.load(tmp_path / "clf.pipekit")
    np.testing.assert_array_equal(back.predict_proba(X), expected)
    with pytest.raises(ValueError, match="The feature names should match"):
        back.predict(X.select(cols))


def test_a_numpy_array_still_fits_on_columns_by_position(sklearn_names):
    adult = pl.read_csv(path("adult_sample") / "adult.csv").head(1000)
    X, y = adult.select("age", "education-num", "hours-per-week").to_numpy(), adult["salary"].to_numpy()
    clf = TabularClassifier(GBM("classification", n_estimators=5, n_jobs=1)).fit(X, y)
    assert not hasattr(clf, "feature_names_in_") and clf.n_features_in_ == 3
    assert clf.processor_.cont_names == ["x0", "x1", "x2"]


# ---------------------------------------------------------------------------------------- tokenizers
class _TokenizerBefore020:
    """A tokenizers.Tokenizer as releases before 0.20 have it: without encode_batch_fast."""

    def __init__(self, tk):
        self._tk = tk

    def __getattr__(self, name):
        if name == "encode_batch_fast":
            raise AttributeError(f"'tokenizers.Tokenizer' object has no attribute {name!r}")
        return getattr(self._tk, name)


def test_hf_tokenizer_encodes_with_tokenizers_before_0_20():
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    from pipekit.text import HFTokenizer

    texts = pl.read_csv(path("imdb_sample") / "texts.csv")["text"].head(60)
    tk = Tokenizer(models.BPE(unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel()
    tk.train_from_iterator(texts.to_list(), trainers.BpeTrainer(vocab_size=300, special_tokens=["[UNK]", "[PAD]"]))
    new = HFTokenizer(tk).encode_texts(texts)
    old = HFTokenizer(tk)
    old._library()
    old._tk = _TokenizerBefore020(old._tk)
    assert not hasattr(old._library(), "encode_batch_fast")
    before = old.encode_texts(texts)
    assert before.vocab == new.vocab
    np.testing.assert_array_equal(before.offsets, new.offsets)
    np.testing.assert_array_equal(before.ids, new.ids)
    assert len(before.ids) > 10 * len(texts)


# ---------------------------------------------------------------------------------------- scikit-learn files
@pytest.fixture(scope="module")
def small_tab():
    return adult_tab(1500)


def test_a_scikit_learn_model_file_keeps_only_the_parameters_set(small_tab, tmp_path):
    """Only the parameters that differ from the estimator's defaults are stored (LogisticRegression's
    multi_class="deprecated", a default of scikit-learn 1.5-1.7 removed in 1.8, is not), so the file loads with
    releases whose parameters differ."""
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.linear_model import LogisticRegression

    lr = SklearnModel(LogisticRegression(max_iter=300, C=0.5), "classification").fit(small_tab.train)
    pipekit.save(lr, tmp_path / "lr.pipekit")
    with zipfile.ZipFile(tmp_path / "lr.pipekit") as z:
        stored = json.loads(z.read("record.json"))["params"]["estimator"]["params"]
    assert stored == {"C": 0.5, "max_iter": 300}
    back = pipekit.load(tmp_path / "lr.pipekit")
    assert back.estimator.get_params() == lr.estimator.get_params()
    np.testing.assert_array_equal(back.predict(small_tab.valid), lr.predict(small_tab.valid))
    # a parameter set to a value of another type than its default's is kept (max_features=1 is one feature, 1.0
    # all of them)
    rf = SklearnModel(RandomForestRegressor(max_features=1), "regression")
    assert rf.params_to_data()["estimator"]["params"] == {"max_features": 1}


def test_a_file_with_a_parameter_scikit_learn_removed_loads_with_a_warning(small_tab, tmp_path):
    """A file written by scikit-learn 1.6 stores multi_class="deprecated", which 1.8 removed: it loads, saying what it
    left out; an unknown parameter with any other value is still refused."""
    from sklearn.linear_model import LogisticRegression

    lr = SklearnModel(LogisticRegression(max_iter=300), "classification").fit(small_tab.train)
    file = tmp_path / "lr.pipekit"
    pipekit.save(lr, file)
    rewrite_record(file, lambda r: r["params"]["estimator"]["params"].update(multi_class="deprecated", C=1.0))
    with pytest.warns(UserWarning, match=r"LogisticRegression: the stored parameter\(s\) multi_class='deprecated' are "
                                         r"not arguments of LogisticRegression in the installed scikit-learn"):
        back = pipekit.load(file)
    np.testing.assert_array_equal(back.predict(small_tab.valid), lr.predict(small_tab.valid))
    rewrite_record(file, lambda r: r["params"]["estimator"]["params"].update(multi_class="ovr"))
    with pytest.raises(ExportError, match=r"parameters \['multi_class'\] are not arguments of LogisticRegression"):
        pipekit.load(file)


# ---------------------------------------------------------------------------------------- ensembles
def few_columns(cats, conts):
    return Tabular(path("adult_sample") / "adult.csv", procs=[Categorify, FillMissing], cat_names=cats,
                   cont_names=conts, y_names="salary", splits=RandomSplitter(valid_pct=0.2, seed=42))


def test_weights_are_chosen_on_the_valid_split_of_a_table_of_few_columns():
    """adult on 4 columns: 90% of the valid rows have the values of some training row, yet they are other rows, so
    the weights are chosen on them; the members' own training rows, in order, reversed or 70% of them, are still
    refused."""
    tab = few_columns(["workclass", "education"], ["age", "education-num"])
    members = {"rf": RandomForest("classification", n_estimators=5, n_jobs=1).fit(tab.train),
               "gbm": GBM("classification", n_estimators=10, n_jobs=1).fit(tab.train)}
    ens = WeightedEnsemble(members, n_iter=5).fit(tab.valid)
    assert ens.selected_on_ == "data" and ens.weights_.sum() == pytest.approx(1.0)
    train = as_data(tab.train)
    n = len(train)
    for rows in (tab.train, train.take(np.arange(n)[::-1]), train.take(np.arange(int(n * 0.7)))):
        with pytest.raises(DataError, match=r"member\(s\) \['rf', 'gbm'\] were fitted on these rows"):
            WeightedEnsemble(members, n_iter=5).fit(rows)
    # two columns, whose every combination recurs among the training rows: values cannot tell training rows from
    # others, so rows are not refused for holding training rows' values: the valid rows are taken (as are 70% of the
    # training rows, which no value tells from them); the training rows themselves, in order or reversed (as many of
    # every row), are refused
    tab2 = few_columns(["workclass"], ["education-num"])
    gbm = GBM("classification", n_estimators=5, n_jobs=1).fit(tab2.train)
    rf = RandomForest("classification", n_estimators=5, n_jobs=1).fit(tab2.train)
    train2 = as_data(tab2.train)
    n2 = len(train2)
    for rows in (tab2.train, train2.take(np.arange(n2)[::-1])):
        with pytest.raises(DataError, match="were fitted on these rows"):
            WeightedEnsemble([gbm, rf], n_iter=5).fit(rows)
    for rows in (tab2.valid, train2.take(np.arange(int(n2 * 0.7)))):
        assert WeightedEnsemble([gbm, rf], n_iter=5).fit(rows).selected_on_ == "data"


# ---------------------------------------------------------------------------------------- optional packages
def test_a_model_file_needing_a_package_not_installed_says_to_install_it(small_tab, tmp_path, monkeypatch):
    """An XGBoost model file where xgboost is not installed: the message says pip install xgboost and does not blame
    the file."""
    from pipekit.backends import XGBoost, boosters

    file = tmp_path / "xgb.pipekit"
    pipekit.save(GBM("classification", n_estimators=5, n_jobs=1).fit(small_tab.train), file)

    def as_xgboost(record):
        record["class"] = "pipekit.backends.XGBoost"
        record["params"] = XGBoost("classification", n_estimators=5).params_to_data()
        record["state"].pop("evals_result_", None)

    rewrite_record(file, as_xgboost)
    monkeypatch.setattr(boosters, "installed", lambda name: False)
    with pytest.raises(ExportError, match=r"xgb.pipekit could not be loaded: ImportError: XGBoost needs the xgboost "
                                          r"package, which is not installed: pip install xgboost") as e:
        pipekit.load(file)
    assert "damaged" not in str(e.value)


def test_fit_ensemble_names_the_package_of_a_default_candidate_not_installed(small_tab, monkeypatch):
    import pipekit.ensemble.auto as auto

    monkeypatch.setattr(auto, "installed", lambda name: False)
    with pytest.raises(ParameterError, match=r"candidates: xgboost is a default candidate only where its package is "
                                             r"installed, and it is not: pip install xgboost"):
        auto.fit_ensemble(small_tab, candidates=["xgboost", "gbm"], verbose=False)
    with pytest.raises(ParameterError, match="pip install xgboost catboost, or leave them out of candidates"):
        auto.fit_ensemble(small_tab, candidates=["xgboost", "catboost"], verbose=False)
    with pytest.raises(ParameterError, match=r"\['gmb', 'xgboost'\] are not names of the default candidates"):
        auto.fit_ensemble(small_tab, candidates=["gmb", "xgboost"], verbose=False)
