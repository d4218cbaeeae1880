"""A scikit-learn scorer or function whose keyword arguments name classes (``pos_label="malignant"``,
``labels=[...]``) reads them as class labels, as scikit-learn does, wherever pipekit scores a classifier whose classes
it knows (``fit_ensemble``, ``model.score``); a label that is no class is refused, naming it and the classes."""
from __future__ import annotations

import functools

import numpy as np
import polars as pl
import pytest
import sklearn.metrics as skm
from sklearn.datasets import load_breast_cancer
from sklearn.metrics import make_scorer

from pipekit.backends import GBM, ExtraTrees
from pipekit.backends.data import as_data
from pipekit.core import ParameterError
from pipekit.data.splitters import RandomSplitter
from pipekit.datasets import path
from pipekit.ensemble import fit_ensemble
from pipekit.metrics import check_metric, get_metric
from pipekit.tabular import Categorify, FillMissing, Normalize, Tabular

pytestmark = pytest.mark.filterwarnings("ignore:(FillMissing|Categorify):UserWarning")

F2_MALIGNANT = make_scorer(skm.fbeta_score, beta=2, pos_label="malignant")


@pytest.fixture(scope="module")
def cancer_tab():
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    df = X.copy()
    df["target"] = y.map({0: "malignant", 1: "benign"})
    return Tabular(df, cont_names=list(X.columns), y_names="target", splits=RandomSplitter(0.2, seed=42))


@pytest.fixture(scope="module")
def adult():
    df = pl.read_csv(path("adult_sample") / "adult.csv").sample(fraction=1.0, shuffle=True, seed=0).head(2000)
    tab = Tabular(df, procs=[Categorify, FillMissing, Normalize], cat_names=["workclass", "education", "sex"],
                  cont_names=["age", "education-num", "hours-per-week"], y_names="salary",
                  splits=RandomSplitter(valid_pct=0.25, seed=0))
    gbm = GBM("classification", n_estimators=30, n_jobs=1).fit(tab.train)
    return tab, gbm, np.asarray(as_data(tab.valid).y), gbm.predict_labels(tab.valid), gbm.predict_proba(tab.valid)


def test_fit_ensemble_takes_a_scorer_whose_pos_label_is_a_class_label(cancer_tab):
    ens = fit_ensemble(cancer_tab, time_limit=60, metric=F2_MALIGNANT, n_folds=3, verbose=False,
                       candidates={"gbm": GBM("classification", n_estimators=30, n_jobs=1),
                                   "xt": ExtraTrees("classification", n_estimators=20, n_jobs=1)})
    y, labels = np.asarray(as_data(cancer_tab.valid).y), ens.predict_labels(cancer_tab.valid)
    want = skm.fbeta_score(y, labels, beta=2, pos_label="malignant")
    assert ens.score(cancer_tab.valid) == pytest.approx(want)
    returned = ens.report_.filter(pl.col("status") == "returned")
    assert returned["valid_fbeta_score"].item() == pytest.approx(want)
    # the other class scored is another number, scikit-learn's for that label
    benign = make_scorer(skm.fbeta_score, beta=2, pos_label="benign")
    assert ens.score(cancer_tab.valid, metric=benign) == pytest.approx(skm.fbeta_score(y, labels, beta=2,
                                                                                        pos_label="benign"))
    assert ens.score(cancer_tab.valid, metric=benign) != pytest.approx(want)


def test_a_partial_of_a_scikit_learn_function_reads_pos_label_as_a_label(cancer_tab):
    gbm = GBM("classification", n_estimators=30, n_jobs=1).fit(cancer_tab.train)
    y, labels = np.asarray(as_data(cancer_tab.valid).y), gbm.predict_labels(cancer_tab.valid)
    for label in ("malignant", "benign"):
        got = gbm.score(cancer_tab.valid, metric=functools.partial(skm.f1_score, pos_label=label))
        assert got == pytest.approx(skm.f1_score(y, labels, pos_label=label))


def test_scorers_on_salary_labels_score_as_scikit_learn(adult):
    tab, gbm, y, labels, proba = adult
    assert gbm.classes_.tolist() == ["<50k", ">=50k"]
    for label in gbm.classes_:
        precision = make_scorer(skm.precision_score, pos_label=label, zero_division=0)
        assert gbm.score(tab.valid, metric=precision) == pytest.approx(
            skm.precision_score(y, labels, pos_label=label, zero_division=0))
    # labels=[...]: the classes averaged over, by label
    only_rich = make_scorer(skm.f1_score, labels=[">=50k"], average="macro")
    assert gbm.score(tab.valid, metric=only_rich) == pytest.approx(
        skm.f1_score(y, labels, labels=[">=50k"], average="macro"))
    # a score of probabilities: labels of every class, and the column of pos_label as scikit-learn's scorer takes it
    loss = make_scorer(skm.log_loss, response_method="predict_proba", greater_is_better=False,
                       labels=["<50k", ">=50k"])
    assert gbm.score(tab.valid, metric=loss) == pytest.approx(skm.log_loss(y, proba, labels=["<50k", ">=50k"]))
    brier = make_scorer(skm.brier_score_loss, response_method="predict_proba", greater_is_better=False,
                        pos_label="<50k")
    assert gbm.score(tab.valid, metric=brier) == pytest.approx(skm.brier_score_loss(y, proba[:, 0], pos_label="<50k"))


def test_a_pos_label_that_is_no_class_is_refused_naming_it_and_the_classes(cancer_tab, adult):
    typo = make_scorer(skm.fbeta_score, beta=2, pos_label="malignent")
    with pytest.raises(ParameterError, match=r"pos_label='malignent' is not one of the classes "
                                             r"\['benign', 'malignant'\]"):
        fit_ensemble(cancer_tab, metric=typo, n_folds=3, verbose=False,
                     candidates={"xt": ExtraTrees("classification", n_estimators=5, n_jobs=1)})
    tab, gbm, *_ = adult
    with pytest.raises(ParameterError, match=r"labels=1 is not one of the classes \['<50k', '>=50k'\]"):
        gbm.score(tab.valid, metric=functools.partial(skm.f1_score, labels=[">=50k", 1], average="macro"))


def test_without_the_classes_the_message_says_to_pass_the_class_position():
    with pytest.raises(ParameterError, match=r"pos_label='malignant' names a class by its label.*position in the "
                                             r"classifier's classes_"):
        check_metric(get_metric(F2_MALIGNANT, "classification"), "classification", 2)
    # pipekit's own metrics and positions are unchanged where no classes are given
    m = get_metric(make_scorer(skm.f1_score, pos_label=0), "classification", np.array([0, 1]))
    assert m.score(np.array([0, 0, 1]), np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7]])) == pytest.approx(2 / 3)


def test_ensembles_fitted_directly_and_importances_read_pos_label_as_a_label(cancer_tab):
    from pipekit.ensemble import StackingEnsemble, WeightedEnsemble
    from pipekit.inspection import permutation_importance

    members = {"gbm": GBM("classification", n_estimators=30, n_jobs=1).fit(cancer_tab.train),
               "xt": ExtraTrees("classification", n_estimators=20, n_jobs=1).fit(cancer_tab.train)}
    y = np.asarray(as_data(cancer_tab.valid).y)
    for ens in (WeightedEnsemble(members, metric=F2_MALIGNANT, n_iter=5).fit(cancer_tab.valid),
                StackingEnsemble({k: m.clone() for k, m in members.items()}, metric=F2_MALIGNANT,
                                 n_folds=3).fit(cancer_tab.train, cancer_tab.valid)):
        labels = ens.predict_labels(cancer_tab.valid)
        want = skm.fbeta_score(y, labels, beta=2, pos_label="malignant")
        assert ens.score(cancer_tab.valid) == pytest.approx(want)
        assert ens.report(cancer_tab.valid)["fbeta_score"][-1] == pytest.approx(want)
    from pipekit.ensemble import BaggedModel

    bag = BaggedModel(GBM("classification", n_estimators=20, n_jobs=1), n_folds=3).fit(cancer_tab.train)
    oof = bag.oof_predictions_.argmax(1)
    assert bag.oof_score(F2_MALIGNANT) == pytest.approx(
        skm.fbeta_score(bag.classes_[bag.oof_targets_], bag.classes_[oof], beta=2, pos_label="malignant"))
    imp = permutation_importance(members["gbm"], cancer_tab.valid, metric=F2_MALIGNANT, n_repeats=1, seed=0)
    assert len(imp) == len(cancer_tab.cont_names)
