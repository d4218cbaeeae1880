"""Ensembles and the scikit-learn backend on real data: a class_weight keyed by labels, selection rows that do or do
not hold members' training rows, and stacking on time folds that miss a class."""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from pipekit.backends import GBM, RandomForest, SklearnModel, as_data
from pipekit.core import DataError, ParameterError
from pipekit.datasets import path
from pipekit.ensemble import BaggedModel, StackingEnsemble, WeightedEnsemble
from pipekit.tabular import Categorify, FillMissing, Normalize, Tabular


def adult_rows(n: int) -> pl.DataFrame:
    return pl.read_csv(path("adult_sample") / "adult.csv").head(n)


def adult_split(df: pl.DataFrame, cats: list[str], conts: list[str], procs: tuple = (Categorify, FillMissing)) -> Tabular:
    idx = np.random.default_rng(0).permutation(len(df))
    cut = int(len(df) * 0.8)
    return Tabular(df, procs=list(procs), cat_names=cats, cont_names=conts, y_names="salary",
                   splits=(np.sort(idx[:cut]), np.sort(idx[cut:])))


# ------------------------------------------------------------------------------------------- class_weight
def test_a_class_weight_keyed_by_number_labels_weighs_those_labels():
    """movielens ratings as half-stars 1..10: {8: 30.0} weighs label 8 as scikit-learn does on the labels
    themselves, not label 9 (class index 8), and the estimator given keeps its dict."""
    from sklearn.linear_model import LogisticRegression

    df = pl.read_csv(path("movie_lens_sample") / "ratings.csv").head(3000)
    y = (df["rating"] * 2).cast(pl.Int64).to_numpy()
    xs = df.select(pl.col(c).cast(pl.Float64) for c in ("userId", "movieId", "timestamp"))
    xs = xs.with_columns((pl.col(c) - pl.col(c).mean()) / pl.col(c).std() for c in xs.columns)
    est = LogisticRegression(max_iter=1000, class_weight={8: 30.0})
    ours = SklearnModel(est, "classification").fit(as_data(xs, y=y))
    theirs = LogisticRegression(max_iter=1000, class_weight={8: 30.0}).fit(xs.to_numpy().astype(np.float32), y)
    assert est.class_weight == {8: 30.0} and not hasattr(est, "coef_")
    labels = ours.predict_labels(as_data(xs))
    assert (labels == 8).mean() > 0.9 and (labels == 9).mean() < 0.05
    np.testing.assert_allclose(ours.predict(as_data(xs)), theirs.predict_proba(xs.to_numpy().astype(np.float32)), atol=1e-3)


def test_a_class_weight_keyed_by_text_labels_fits_and_unknown_labels_are_refused():
    """adult's '<50k' / '>=50k': a dict of the labels fits (it crashed on the class indices), weighing '>=50k' as
    scikit-learn does; 'balanced' passes as it is; a label that is no class is refused, naming it and the classes."""
    from sklearn.linear_model import LogisticRegression

    tab = adult_split(adult_rows(3000), ["workclass", "education", "sex"], ["age", "education-num", "hours-per-week"],
                      procs=(Categorify, FillMissing, Normalize))
    train = as_data(tab.train)
    X = train.matrix(train.feature_names, dtype=np.float32)
    for cw in ({"<50k": 1.0, ">=50k": 5.0}, "balanced"):
        m = SklearnModel(LogisticRegression(max_iter=500, class_weight=cw), "classification").fit(tab.train)
        ref = LogisticRegression(max_iter=500, class_weight=cw).fit(X, np.asarray(train.y))
        np.testing.assert_allclose(m.predict(tab.train), ref.predict_proba(X), atol=1e-3)
        assert m.model_.class_weight == ({0: 1.0, 1: 5.0} if isinstance(cw, dict) else cw)
    with pytest.raises(ParameterError, match=r"LogisticRegression: class_weight names \['>50K'\], which are not "
                                             r"classes of the training labels \['<50k', '>=50k'\]; key it by those"):
        SklearnModel(LogisticRegression(class_weight={">50K": 5.0}), "classification").fit(tab.train)



def test_a_class_weight_keyed_by_class_positions_still_fits_with_a_warning():
    """A dict of class positions (0 .. k-1, how an estimator's class_weight had to be keyed before labels were read)
    over text labels still weighs those classes, with a warning naming the labels to key it by."""
    from sklearn.linear_model import LogisticRegression

    from pipekit.core.errors import PipekitWarning

    tab = adult_split(adult_rows(3000), ["workclass", "sex"], ["age", "hours-per-week"],
                      procs=(Categorify, FillMissing, Normalize))
    by_label = SklearnModel(LogisticRegression(max_iter=500, class_weight={"<50k": 1.0, ">=50k": 3.0}),
                            "classification").fit(tab.train)
    with pytest.warns(PipekitWarning, match=r"names class positions, not labels.*'>=50k': 3.0"):
        by_position = SklearnModel(LogisticRegression(max_iter=500, class_weight={0: 1.0, 1: 3.0}),
                                   "classification").fit(tab.train)
    np.testing.assert_array_equal(by_position.predict(tab.valid), by_label.predict(tab.valid))

# ------------------------------------------------------------------------------ rows an ensemble selects on
def test_the_valid_split_of_a_table_of_few_distinct_rows_is_taken():
    """adult on 3 category columns (education, sex, race): every valid row has the values of training rows, yet
    no member saw one of them; the values cannot tell, so the weights are chosen on the valid split. The training
    rows themselves are still refused."""
    tab = adult_split(adult_rows(8000), ["education", "sex", "race"], [])
    members = {"gbm": GBM("classification", n_estimators=20, n_jobs=1).fit(tab.train),
               "rf": RandomForest("classification", n_estimators=10, n_jobs=1).fit(tab.train)}
    ens = WeightedEnsemble(members, n_iter=5).fit(tab.valid)
    assert ens.selected_on_ == "data" and ens.weights_.sum() == pytest.approx(1.0)
    with pytest.raises(DataError, match=r"\['gbm', 'rf'\] were fitted on these rows \(all of them"):
        WeightedEnsemble(members, n_iter=5).fit(tab.train)


def test_selection_rows_holding_a_share_of_the_members_training_rows_are_refused_naming_it():
    """adult's valid rows with 45% training rows added: a forest that memorised those would take most of the
    weight; refused, naming the share and the ways out (held-out rows, out-of-fold predictions). The valid rows
    alone are taken."""
    tab = adult_split(adult_rows(3000), ["workclass", "education", "marital-status", "occupation", "sex"],
                      ["age", "fnlwgt", "hours-per-week"])
    tr, va = as_data(tab.train), as_data(tab.valid)
    members = {"rf": RandomForest("classification", n_estimators=20, n_jobs=1).fit(tr),
               "gbm": GBM("classification", n_estimators=40, n_jobs=1).fit(tr)}
    k = int(len(va) * 0.45 / 0.55)
    mixed = as_data(pl.concat([va.xs, tr.xs[:k]]), y=np.concatenate([va.y, tr.y[:k]]))
    with pytest.raises(DataError, match=r"member\(s\) \['rf', 'gbm'\] were fitted on these rows \(about 4\d% of them "
                                        r"are training rows of 'rf' and 'gbm'.*such as tab.valid for members fitted on "
                                        r"tab.train.*ens.fit_predictions\(preds, y\)"):
        WeightedEnsemble(members, n_iter=5).fit(mixed)
    assert WeightedEnsemble(members, n_iter=5).fit(va).selected_on_ == "data"


# ------------------------------------------------------------------------------------ stacking, time folds
def test_stacking_on_time_folds_where_a_fold_misses_a_class():
    """Rossmann's StateHoliday from June 2014: Christmas ('c') falls in one period of the time folds, so the members
    fitted without it predict no 'c'; their column is 0 there, as in a bag, and the stack fits and predicts every
    class."""
    df = pl.read_csv(path("rossmann_sample") / "train.csv", infer_schema_length=100_000)
    df = df.filter((pl.col("Date") >= "2014-06-01") & (pl.col("Store") <= 50))
    df = df.sort("Date")
    cut = int(df.height * 0.85)
    tab = Tabular(df, procs=[Categorify, FillMissing], cat_names=["DayOfWeek", "Promo", "SchoolHoliday", "Open"],
                  cont_names=["Sales", "Customers"], y_names="StateHoliday",
                  splits=(np.arange(cut), np.arange(cut, df.height)))
    dates = df["Date"][:cut]
    stack = StackingEnsemble([GBM("classification", n_estimators=20, n_jobs=1),
                              RandomForest("classification", n_estimators=10, n_jobs=1)], n_folds=4,
                             meta=BaggedModel(GBM("classification", n_estimators=20, n_jobs=1), n_folds=4, folds="time"))
    stack.fit(tab.train, order=dates)
    classes = np.unique(np.asarray(as_data(tab.train).y)).tolist()
    assert "c" in classes and stack.classes_.tolist() == classes
    assert stack.oob_predictions_.shape[-1] == len(classes) and np.isfinite(stack.oob_predictions_).all()
    pred = stack.predict(tab.valid)
    assert pred.shape == (tab.valid.xs.height, len(classes)) and np.allclose(pred.sum(1), 1.0)


# ------------------------------------------------------------------------------ fit_ensemble's report and metric
def test_a_one_vs_rest_auc_is_accepted_for_many_classes():
    """roc_auc_ovr of 16 classes (adult's education) is scored as scikit-learn scores it: pipekit's check of the
    metric gave it 12 rows, so classes 12 to 15 had none and it was refused before any fit."""
    from pipekit.metrics import get_metric
    from pipekit.metrics.lookup import check_metric

    for k in (13, 16, 40):
        check_metric(get_metric("roc_auc_ovr", "classification"), "classification", n_classes=k)


def test_fit_ensemble_returns_its_fit_when_the_valid_rows_cannot_be_scored_and_names_what_time_left_out():
    """A class every validation row lacks makes the one-vs-rest AUC of the validation rows undefined: the ensemble
    chosen out of fold is returned, its report's valid column empty, with a warning (the whole fit was thrown
    away). A time limit that leaves candidates out names them, in the verbose lines and a warning."""
    from pipekit.core.errors import PipekitWarning
    from pipekit.ensemble import fit_ensemble

    df = adult_rows(4000).with_columns(pl.col("education").str.strip_chars())
    df = df.filter(pl.col("education").is_in(["HS-grad", "Some-college", "Bachelors", "Masters", "Doctorate"]))
    valid = (pl.int_range(pl.len()) % 5 == 0) & (pl.col("education") != "Doctorate")
    df = df.with_columns(valid.alias("is_valid"))
    tab = Tabular(df, cat_names=["workclass", "sex", "race"], cont_names=["age", "hours-per-week"],
                  y_names="education", splits=(np.flatnonzero(~df["is_valid"].to_numpy()).tolist(),
                                               np.flatnonzero(df["is_valid"].to_numpy()).tolist()))
    with pytest.warns(PipekitWarning, match="validation rows cannot be scored with roc_auc_score"):
        ens = fit_ensemble(tab, metric="roc_auc_ovr", n_folds=3, candidates=["gbm"], stack=False, verbose=False)
    report = ens.report_
    assert report.filter(pl.col("model") == "gbm")["valid_roc_auc_ovr"].to_list() == [None]
    assert report.filter(pl.col("model") == "gbm")["oof_roc_auc_ovr"].item() > 0.5
    with pytest.warns(PipekitWarning, match=r"time_limit=0.01 s left out extra_trees") as said:
        ens = fit_ensemble(tab, metric="accuracy", n_folds=3, candidates=["gbm", "extra_trees"], stack=False,
                           time_limit=0.01, verbose=False)
    assert ens.report_.filter(pl.col("model") == "extra_trees")["status"].item().endswith("over the time limit")
    assert len(said) >= 1
