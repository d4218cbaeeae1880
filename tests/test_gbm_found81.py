"""LightGBM models in files: the model text of a GBM is checked field by field in one pass (a large model loads about
as fast as LightGBM reads it) with the same refusals, and a LightGBM estimator wrapped as a scikit-learn one is
refused at save, with the reason and pipekit's GBM to use instead, rather than written to a file that cannot load."""
from __future__ import annotations

import io
import json
import re
import zipfile

import lightgbm as lgb
import numpy as np
import polars as pl
import pytest

import pipekit
import pipekit.core.registry as registry
import pipekit.datasets as D
from pipekit.backends import GBM, SklearnModel
from pipekit.backends.gbm import checked_lightgbm_text
from pipekit.core import ExportError
from pipekit.data import RandomSplitter
from pipekit.tabular import Categorify, FillMissing, Tabular


@pytest.fixture(scope="module")
def tab():
    adult = pl.read_csv(D.path("adult_sample") / "adult.csv").head(1500)
    return Tabular(adult, procs=[Categorify, FillMissing], cat_names=["workclass", "education"],
                   cont_names=["age", "hours-per-week"], y_names="salary", splits=RandomSplitter(valid_pct=0.2, seed=42))


@pytest.fixture(scope="module")
def gbm_text(tab):
    model = GBM("classification", n_estimators=8, num_leaves=15, n_jobs=1).fit(tab.train)
    text = re.sub(r"tree_sizes=[^\n]*\n", "", model.booster_.model_to_string())
    assert "num_cat=" in text and "split_gain=" in text
    return model, text


@pytest.fixture
def own_registry(monkeypatch):
    """Registrations made in the test are dropped after it (pipekit's own list is registered first, once)."""
    from pipekit.backends.sklearn_adapter import loadable_estimators

    loadable_estimators()
    monkeypatch.setattr(registry, "_ENTRIES", dict(registry._ENTRIES))
    monkeypatch.setattr(registry, "_NAMES", dict(registry._NAMES))


def check(text: str, model: GBM) -> str:
    return checked_lightgbm_text(text, len(model.feature_names_), "classification", 2)


def test_checked_text_of_a_real_model_reads_as_lightgbm_wrote_it(gbm_text):
    model, text = gbm_text
    checked = check(text, model)
    assert lgb.Booster(model_str=checked).model_to_string() == lgb.Booster(model_str=text).model_to_string()


@pytest.mark.parametrize("field,edit,said", [
    # a whole number past 64 bits is named as written
    ("left_child", lambda v: "99999999999999999999 " + v.split(" ", 1)[1],
     r"node 0 has child node 99999999999999999999 \(must be in 1\.\."),
    ("right_child", lambda v: "-99999999999999999999 " + v.split(" ", 1)[1], r"node 0 has leaf 99999999999999999998 "),
    ("split_feature", lambda v: "99999999999999999999 " + v.split(" ", 1)[1], r"a split on a feature outside 0\.\.3"),
    # the fields only LightGBM reads (importance, SHAP) must still be plain numbers, as many as the tree needs
    ("split_gain", lambda v: "1.5.5 " + v.split(" ", 1)[1], r"split_gain holds a value that is not a number"),
    ("internal_count", lambda v: "1_000 " + v.split(" ", 1)[1], r"internal_count holds a value that is not a number"),
    ("leaf_weight", lambda v: v + " 1", r"leaf_weight has 16 values, the tree needs 15"),
    ("threshold", lambda v: "infinity " + v.split(" ", 1)[1], r"threshold holds a value that is not a number"),
    ("threshold", lambda v: "1-2 " + v.split(" ", 1)[1], r"threshold holds a value that is not a number"),
    ("decision_type", lambda v: "+-2 " + v.split(" ", 1)[1], r"decision_type holds a value that is not a number"),
    ("decision_type", lambda v: "   ", r"decision_type has 0 values, the tree needs 14"),
    ("leaf_value", lambda v: "nan " + v.split(" ", 1)[1], r"a split threshold is NaN or a leaf value is not a finite number"),
])
def test_tree_field_edits_are_refused_with_the_field(gbm_text, field, edit, said):
    model, text = gbm_text
    start = text.index("\nTree=0\n")
    line = re.compile(rf"\n{field}=([^\n]*)\n").search(text, start)
    edited = text[:line.start(1)] + edit(line.group(1)) + text[line.end(1):]
    with pytest.raises(ExportError, match=rf"booster_: LightGBM tree 0: {said}"):
        check(edited, model)


def test_spaces_between_values_read_as_lightgbm_reads_them(gbm_text):
    model, text = gbm_text
    spaced = re.sub(r"\n(threshold|left_child|leaf_value|split_gain)=([^\n]*)",
                    lambda m: f"\n{m.group(1)}= {m.group(2).replace(' ', '   ')} ", text)
    X = np.random.default_rng(0).integers(0, 8, (200, len(model.feature_names_))).astype(float)
    X[:, -2:] = np.random.default_rng(1).normal(0, 2, (200, 2))
    np.testing.assert_array_equal(lgb.Booster(model_str=check(spaced, model)).predict(X),
                                  model.booster_.predict(X))


# ------------------------------------------------------------------- LightGBM's estimators as scikit-learn ones
def test_a_registered_lgbm_classifier_is_refused_at_save_with_the_reason_and_gbm(tab, tmp_path, own_registry):
    pipekit.register(lgb.LGBMClassifier, kind="sklearn_estimator")
    fitted = SklearnModel(lgb.LGBMClassifier(n_estimators=5, verbose=-1), "classification")
    with pytest.raises(ExportError, match=r"LGBMClassifier cannot be exported: a file of it would not load "
                                          r"\(LGBMClassifier: parameters \['verbose'\] are not arguments of "
                                          r"LGBMClassifier.*GBM\('classification', \.\.\.\).*"
                                          r"TabularClassifier\(GBM\('classification', \.\.\.\)\)") as e:
        pipekit.save(fitted, tmp_path / "verbose.pipekit")
    assert "pipekit.register(" not in str(e.value)
    model = SklearnModel(lgb.LGBMClassifier(n_estimators=5), "classification").fit(tab.train)
    with pytest.raises(ExportError, match=r"LGBMClassifier cannot be exported: a file of it would not load "
                                          r"\(LGBMClassifier: the fitted attribute 'classes_' .*got None\)\. "
                                          r"pipekit's GBM\('classification', \.\.\.\)"):
        pipekit.save(model, tmp_path / "lgbm.pipekit")
    assert not (tmp_path / "lgbm.pipekit").exists() and not (tmp_path / "verbose.pipekit").exists()
    # what it points to saves and loads
    gbm = GBM("classification", n_estimators=5, n_jobs=1).fit(tab.train)
    back = pipekit.load(pipekit.save(gbm, tmp_path / "gbm.pipekit"))
    np.testing.assert_array_equal(back.predict_proba(tab.valid), gbm.predict_proba(tab.valid))


def test_an_unregistered_lgbm_estimator_points_to_gbm_and_others_to_register(tab, tmp_path):
    from sklearn.ensemble import GradientBoostingClassifier

    model = SklearnModel(lgb.LGBMRegressor(n_estimators=5, verbose=-1), "regression")
    with pytest.raises(ExportError, match=r"lightgbm\.sklearn\.LGBMRegressor cannot be exported.*pipekit's "
                                          r"GBM\('regression', \.\.\.\).*TabularRegressor\(GBM\('regression'") as e:
        pipekit.save(model, tmp_path / "reg.pipekit")
    assert "pipekit.register(" not in str(e.value)
    other = SklearnModel(GradientBoostingClassifier(n_estimators=3), "classification")
    with pytest.raises(ExportError, match=r"Register it, pipekit\.register\(GradientBoostingClassifier, "
                                          r"kind='sklearn_estimator'\), before saving"):
        pipekit.save(other, tmp_path / "gb.pipekit")


def test_a_registered_estimator_whose_state_restores_saves_and_loads(tab, tmp_path, own_registry):
    from sklearn.linear_model import OrthogonalMatchingPursuit, LogisticRegression

    pipekit.register(OrthogonalMatchingPursuit, kind="sklearn_estimator")
    for est, task in ((OrthogonalMatchingPursuit(), "regression"), (LogisticRegression(C=0.5), "classification")):
        if task == "regression":
            data = Tabular(pl.read_csv(D.path("adult_sample") / "adult.csv").head(600), procs=[Categorify, FillMissing], cat_names=["workclass"],
                           cont_names=["age"], y_names="hours-per-week",
                           splits=RandomSplitter(valid_pct=0.2, seed=0))
        else:
            data = tab
        model = SklearnModel(est, task).fit(data.train)
        path = pipekit.save(model, tmp_path / f"{type(est).__name__}.pipekit")
        state = json.loads(zipfile.ZipFile(path).read("record.json"))["state"]["model_"]
        assert "attributes" in state and "coef_" in state["attributes"]
        back = pipekit.load(path)
        np.testing.assert_array_equal(back.predict(data.valid), model.predict(data.valid))


# ------------------------------------------------------------------- numbers no checker should read as numbers
@pytest.fixture(scope="module")
def linear_text():
    adult = pl.read_csv(D.path("adult_sample") / "adult.csv").head(1500)
    data = Tabular(adult, procs=[Categorify, FillMissing], cat_names=["workclass"], cont_names=["age", "fnlwgt"],
                   y_names="hours-per-week", splits=RandomSplitter(valid_pct=0.2, seed=42))
    model = GBM("regression", n_estimators=4, num_leaves=7, n_jobs=1, params={"linear_tree": True}).fit(data.train)
    text = re.sub(r"tree_sizes=[^\n]*\n", "", model.booster_.model_to_string())
    assert "is_linear=1" in text and re.search(r"\nnum_features=[^\n]*[1-9]", text)
    return model, text


def edit_field(text: str, field: str, edit, tree: int = 0) -> str:
    """``text`` with the ``field`` line of tree ``tree`` changed by ``edit``."""
    line = re.compile(rf"\n{field}=([^\n]*)\n").search(text, text.index(f"\nTree={tree}\n"))
    return text[:line.start(1)] + edit(line.group(1)) + text[line.end(1):]


def linear_tree_index(text: str) -> int:
    """The first tree of ``text`` whose leaves have features."""
    blocks = text.split("\nTree=")[1:]
    return next(i for i, b in enumerate(blocks) if re.search(r"\nnum_features=[^\n]*[1-9]", b))


@pytest.mark.parametrize("field", ["left_child", "right_child", "split_feature", "decision_type"])
def test_a_whole_number_of_5000_digits_in_a_tree_field_is_not_a_number(gbm_text, field):
    model, text = gbm_text
    edited = edit_field(text, field, lambda v: "1" * 5000 + " " + v.split(" ", 1)[1])
    with pytest.raises(ExportError, match=rf"^booster_: LightGBM tree 0: {field} holds a value that is not a number$"):
        check(edited, model)
    # as many digits as Python reads is a number, named as written where it is out of range
    edited = edit_field(text, "left_child", lambda v: "1" * 4300 + " " + v.split(" ", 1)[1])
    with pytest.raises(ExportError, match=r"node 0 has child node 1{4300} \(must be in 1\.\."):
        check(edited, model)


@pytest.mark.parametrize("field,value", [("num_features", "1" * 5000), ("leaf_features", "1" * 5000),
                                         ("num_features", "-" + "1" * 5000)])
def test_a_whole_number_of_5000_digits_in_a_linear_leaf_is_not_a_number(linear_text, field, value):
    model, text = linear_text
    tree = linear_tree_index(text)
    edited = edit_field(text, field, lambda v: value + " " + v.split(" ", 1)[1], tree)
    with pytest.raises(ExportError, match=rf"^booster_: LightGBM tree {tree}: {field} holds a value that is not a "
                                          r"number$"):
        checked_lightgbm_text(edited, len(model.feature_names_), "regression", 0)


def test_a_linear_leaf_count_past_64_bits_is_named_exactly(linear_text):
    model, text = linear_text
    tree = linear_tree_index(text)
    # the sum, 2 * (10**4300 - 1), has 4301 digits: more than Python writes of a whole number
    edited = edit_field(text, "num_features", lambda v: " ".join(["9" * 4300] * 2 + ["0"] * (len(v.split()) - 2)),
                        tree)
    with pytest.raises(ExportError, match=rf"^booster_: LightGBM tree {tree}: leaf_features has \d+ values, the tree "
                                          rf"needs 1{'9' * 4299}8$"):
        checked_lightgbm_text(edited, len(model.feature_names_), "regression", 0)


def test_a_5000_digit_child_in_a_saved_gbm_is_refused_naming_tree_and_field(tab, tmp_path):
    model = GBM("classification", n_estimators=4, num_leaves=7, n_jobs=1).fit(tab.train)
    path = pipekit.save(model, tmp_path / "gbm.pipekit")
    with zipfile.ZipFile(path) as z:
        files = {name: z.read(name) for name in z.namelist()}
    arrays = dict(np.load(io.BytesIO(files["arrays.npz"])))
    key = next(k for k, a in arrays.items() if a.dtype == np.uint8 and b"Tree=0" in a.tobytes())
    text = edit_field(arrays[key].tobytes().decode(), "left_child", lambda v: "1" * 5000 + " " + v.split(" ", 1)[1])
    arrays[key] = np.frombuffer(text.encode(), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    files["arrays.npz"] = buffer.getvalue()
    with zipfile.ZipFile(tmp_path / "edited.pipekit", "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    with pytest.raises(ExportError, match=r"LightGBM tree 0: left_child holds a value that is not a number"):
        pipekit.load(tmp_path / "edited.pipekit")


@pytest.mark.parametrize("field", ["leaf_const", "leaf_coeff"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e400"])
def test_a_linear_leaf_constant_or_coefficient_must_be_finite(linear_text, field, value):
    model, text = linear_text
    tree = linear_tree_index(text)
    edited = edit_field(text, field, lambda v: value + v[len(v.split(" ", 1)[0]):], tree)
    with pytest.raises(ExportError, match=rf"^booster_: LightGBM tree {tree}: a linear leaf's leaf_const or "
                                          r"leaf_coeff is not a finite number"):
        checked_lightgbm_text(edited, len(model.feature_names_), "regression", 0)
    checked_lightgbm_text(text, len(model.feature_names_), "regression", 0)


@pytest.mark.parametrize("few", [False, True])
def test_many_trees_and_few_are_refused_alike(gbm_text, monkeypatch, few):
    """A large model's fields are checked in one polars pass, a small one's one by one: the same refusals."""
    import pipekit.backends.gbm as gbm

    model, text = gbm_text
    monkeypatch.setattr(gbm, "_FEW", 1 << 30 if few else -1)
    cat = max(i for i, block in enumerate(text.split("\nTree=")[1:]) if "\ncat_threshold=" in block)
    for tree, field, edit, said in [
            (7, "threshold", lambda v: "1-2 " + v.split(" ", 1)[1], "threshold holds a value that is not a number"),
            (7, "leaf_count", lambda v: "1e5e5 " + v.split(" ", 1)[1], "leaf_count holds a value that is not a"),
            (7, "right_child", lambda v: "-" + "9" * 30 + " " + v.split(" ", 1)[1], f"node 0 has leaf {'9' * 29}8 "),
            (cat, "cat_threshold", lambda v: "1" * 5000 + " " + v.split(" ", 1)[1],
             "cat_threshold holds a value that is not a number")]:
        with pytest.raises(ExportError, match=rf"^booster_: LightGBM tree {tree}: {said}"):
            check(edit_field(text, field, edit, tree), model)
    assert lgb.Booster(model_str=check(text, model)).model_to_string() == lgb.Booster(model_str=text).model_to_string()


# ------------------------------------------------------------------- a listed estimator whose configuration fails
def test_a_listed_classifier_without_predict_proba_is_refused_for_that_not_as_unlisted(tab, tmp_path):
    from sklearn.linear_model import SGDClassifier

    model = SklearnModel(SGDClassifier(random_state=0), "classification").fit(tab.train)
    with pytest.raises(ExportError, match=r"SGDClassifier cannot be exported: a file of it would not load \(.*"
                                          r"predict_proba.*\)\. SGDClassifier is an estimator pipekit saves, but this "
                                          r"one, SGDClassifier\(random_state=0\), has no predict_proba, which "
                                          r"pipekit's classifiers need .*SGDClassifier\(loss='log_loss'\) has one$") \
            as e:
        pipekit.save(model, tmp_path / "hinge.pipekit")
    assert "sklearn.linear_model.SGDClassifier" not in str(e.value) and "RandomForest/GBM" not in str(e.value)
    # a long repr is shown on one line, cut after a whole parameter
    many = SklearnModel(SGDClassifier(alpha=0.001, eta0=0.1, l1_ratio=0.3, learning_rate="constant",
                                      loss="perceptron", max_iter=50, penalty="elasticnet", random_state=0),
                        "classification").fit(tab.train)
    with pytest.raises(ExportError, match=r"this one, SGDClassifier\(alpha=0\.001, [^\n]*max_iter=50, \.\.\.\), has no"):
        pipekit.save(many, tmp_path / "perceptron.pipekit")
    # what it points to saves and loads
    model = SklearnModel(SGDClassifier(loss="log_loss", random_state=0), "classification").fit(tab.train)
    back = pipekit.load(pipekit.save(model, tmp_path / "log_loss.pipekit"))
    np.testing.assert_array_equal(back.predict_proba(tab.valid), model.predict_proba(tab.valid))


class PrivateState:
    """A regressor keeping its fitted weights in a private attribute, which a file does not hold."""

    def __init__(self, alpha: float = 1.0):
        self.alpha = alpha

    def get_params(self, deep: bool = True) -> dict:
        return {"alpha": self.alpha}

    def set_params(self, **params):
        self.__dict__.update(params)
        return self

    def fit(self, X, y):
        X = np.asarray(X, float)
        self._w, self.n_features_in_ = np.linalg.lstsq(X, np.asarray(y, float), rcond=None)[0], X.shape[1]
        return self

    def predict(self, X):
        return np.asarray(X, float) @ self._w


def test_a_registered_estimator_whose_state_does_not_restore_names_its_configuration(tmp_path, own_registry):
    pipekit.register(PrivateState, kind="sklearn_estimator")
    adult = pl.read_csv(D.path("adult_sample") / "adult.csv").head(600)
    data = Tabular(adult, procs=[Categorify, FillMissing], cat_names=["workclass"], cont_names=["age"],
                   y_names="hours-per-week", splits=RandomSplitter(valid_pct=0.2, seed=0))
    model = SklearnModel(PrivateState(alpha=0.5), "regression").fit(data.train)
    with pytest.raises(ExportError, match=r"PrivateState cannot be exported: a file of it would not load \(.*\)\. "
                                          r"PrivateState is an estimator pipekit saves \(listed or registered\); it is "
                                          r"this one's configuration, .*PrivateState.*, that a file cannot restore$") \
            as e:
        pipekit.save(model, tmp_path / "private.pipekit")
    assert "sklearn.linear_model" not in str(e.value)


def test_more_category_sets_than_splits_is_refused_whatever_its_digits(gbm_text):
    """A tree's num_cat counts its categorical splits, at most its num_leaves - 1 nodes: more (4,300 nines too,
    whose message once failed to print) is out of range."""
    model, text = gbm_text
    leaves = int(re.search(r"num_leaves=(\d+)", text).group(1))
    for value in (str(leaves), "9" * 4300):
        edited = re.sub(r"num_cat=\d+", f"num_cat={value}", text, count=1)
        with pytest.raises(ExportError, match=r"LightGBM tree 0: num_leaves=\d+, num_cat=\d+ out of range"):
            check(edited, model)
