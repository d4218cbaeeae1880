"""TabularClassifier / TabularRegressor where scikit-learn's contract and its users' habits meet pipekit, on real
data (adult, breast_cancer): set_params on a fitted estimator, a wrapped scikit-learn estimator's parameters in a
search grid, sparse output of a Pipeline step, and the ensembles' rare-class errors said on X and y."""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from pipekit.backends import GBM, RandomForest, SklearnModel
from pipekit.core import DataError, ParameterError
from pipekit.datasets import path
from pipekit.ensemble import MeanEnsemble, StackingEnsemble, WeightedEnsemble
from pipekit.sklearn import TabularClassifier, TabularRegressor

pytestmark = pytest.mark.filterwarnings("ignore:(FillMissing|Categorify):UserWarning")

C = "classification"
CATS = ["workclass", "education", "marital-status", "occupation", "relationship", "race", "sex", "native-country"]
NUMS = ["age", "fnlwgt", "education-num", "capital-gain", "capital-loss", "hours-per-week"]


@pytest.fixture(scope="module")
def adult() -> pl.DataFrame:
    return pl.read_csv(path("adult_sample") / "adult.csv").sample(fraction=1.0, shuffle=True, seed=0).head(2000)


def small_gbm(task: str = C, **kw) -> GBM:
    return GBM(task, n_estimators=kw.pop("n_estimators", 20), n_jobs=1, **kw)


def members() -> list:
    return [small_gbm(n_estimators=10), RandomForest(C, n_estimators=5, n_jobs=1)]


# ---------------------------------------------------------------------------------------- set_params
def test_set_params_leaves_a_fitted_estimator_fitted_until_the_next_fit(adult):
    """scikit-learn's set_params changes parameters only; the fit stays until the next fit. A fitted Pipeline given
    backend__n_jobs=1 (the serving habit) raised 'This Pipeline instance is not fitted yet'."""
    X, y = adult.drop("salary"), adult["salary"].to_numpy()
    pipe = make_pipeline(TabularClassifier(small_gbm())).fit(X, y)
    before = pipe.predict_proba(X[:50])
    pipe.set_params(tabularclassifier__backend__n_jobs=2)
    assert np.array_equal(pipe.predict_proba(X[:50]), before)
    # a parameter that changes the model takes effect at the next fit, not before
    est = TabularClassifier(RandomForest(C, n_estimators=10, n_jobs=1), random_state=1).fit(X, y)
    before = est.predict_proba(X[:50])
    est.set_params(random_state=0, backend__n_estimators=3)
    assert np.array_equal(est.predict_proba(X[:50]), before) and est.model_.n_estimators == 10
    assert est.fit(X, y).model_.n_estimators == 3
    # a name refused mid-way leaves it fitted too
    with pytest.raises(ParameterError, match="RandomForest has no parameter 'n_estimatorz'"):
        est.set_params(random_state=5, backend__n_estimatorz=3)
    assert est.predict(X[:5]).shape == (5,)
    # a regressor, and a search's best_estimator_
    Xr, yr = adult.select(NUMS[1:]), adult["age"].to_numpy().astype(np.float64)
    search = GridSearchCV(TabularRegressor(small_gbm("regression")), {"backend__num_leaves": [7, 15]}, cv=2).fit(Xr, yr)
    before = search.predict(Xr[:50])
    search.best_estimator_.set_params(backend__n_jobs=1, backend__learning_rate=0.5)
    assert np.array_equal(search.best_estimator_.predict(Xr[:50]), before)


# ---------------------------------------------------------------------------------------- a wrapped estimator
def test_a_wrapped_scikit_learn_estimators_parameters_are_searched_as_backend__estimator__name():
    """As scikit-learn's meta-estimators list an inner estimator's parameters: SklearnModel's estimator__C (it was
    'estimator__C reaches into estimator, which is a LogisticRegression'). The search over a TabularClassifier
    (whose procs normalise) picks the C, and the scores, of scikit-learn's scaled logistic regression."""
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    clf = TabularClassifier(SklearnModel(LogisticRegression(max_iter=1000), C))
    assert clf.get_params()["backend__estimator__C"] == 1.0
    grid, cv = [0.001, 1.0, 10.0], StratifiedKFold(3, shuffle=True, random_state=0)
    search = GridSearchCV(clf, {"backend__estimator__C": grid}, cv=cv).fit(X, y)
    ref = GridSearchCV(make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
                       {"logisticregression__C": grid}, cv=cv).fit(X, y)
    assert search.best_params_["backend__estimator__C"] == ref.best_params_["logisticregression__C"] == 1.0
    np.testing.assert_allclose(search.cv_results_["mean_test_score"], ref.cv_results_["mean_test_score"], atol=0.01)
    assert search.cv_results_["mean_test_score"][0] < 0.95 < search.best_score_  # C reached the fits
    assert search.best_estimator_.model_.model_.C == 1.0
    # the estimator given is never changed; an unknown name is refused with the estimator's parameters
    lr = LogisticRegression()
    model = SklearnModel(lr, C).set_params(estimator__C=0.5, estimator__max_iter=300)
    assert (model.estimator.C, model.estimator.max_iter, lr.C, lr.max_iter) == (0.5, 300, 1.0, 100)
    with pytest.raises(ParameterError, match=r"SklearnModel: LogisticRegression has no parameter 'c' "
                                             r"\(estimator__c\); its parameters are \['C', "):
        model.set_params(estimator__c=0.5)
    # every deep parameter sets back, and a StackingEnsemble's meta-model is reached the same way
    again = model.clone().set_params(**model.get_params())
    assert repr(again) == repr(model)
    stack = StackingEnsemble(members(), meta=SklearnModel(LogisticRegression(), C))
    assert stack.set_params(meta__estimator__C=0.2).meta.estimator.C == 0.2


# ---------------------------------------------------------------------------------------- sparse input
def test_sparse_output_of_a_pipeline_step_is_refused_naming_fixes_that_work(adult):
    """A OneHotEncoder in a ColumnTransformer hands on a sparse matrix, and there is no X.toarray() inside a
    Pipeline: the refusal names the Pipeline's fixes, and each of them fits."""
    X, y = adult.drop("salary").to_pandas(), adult["salary"].to_numpy()

    def pipe(cats, **kw):
        return make_pipeline(ColumnTransformer([("num", SimpleImputer(), NUMS), ("cat", cats, CATS)], **kw),
                             TabularClassifier(small_gbm()))

    def onehot(**kw):
        return make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore", **kw))

    with pytest.raises(TypeError, match=r"TabularClassifier does not take sparse input .*In a Pipeline, leave out "
                                        r"the one-hot step and pass the text columns as they are \(TabularClassifier "
                                        r"encodes them itself\), or make the step's output dense: OneHotEncoder\("
                                        r"sparse_output=False\), ColumnTransformer\(\.\.\., sparse_threshold=0\)"):
        pipe(onehot()).fit(X, y)
    for fixed in (pipe("passthrough"), pipe(onehot(sparse_output=False)), pipe(onehot(), sparse_threshold=0)):
        assert fixed.fit(X, y).score(X, y) > 0.8


# ---------------------------------------------------------------------------------------- rare classes
def test_rare_class_errors_through_tabular_classifier_name_the_label_and_a_fix_on_x_and_y(adult):
    """A TabularClassifier user builds no Tabular and has no 'target' column: a class of one row is dropped from X
    and y; a WeightedEnsemble's error names the class and fixes that fit on that very y (it said 'the rarest class
    has 2 rows ...; use MeanEnsemble or StackingEnsemble', and StackingEnsemble then failed on its 5 folds)."""
    X, y = adult.drop("salary").head(1500), adult["salary"].to_numpy()[:1500]
    y1, y2 = y.copy(), y.copy()
    y1[0], y2[:2] = "rare", "rare"
    with pytest.raises(DataError, match=r"the class 'rare' has 1 training row: .*drop that row from X and y \(the row "
                                        r"whose label in y is 'rare'\) or merge the class with another in y") as e:
        TabularClassifier(StackingEnsemble(members(), n_folds=2)).fit(X, y1)
    assert "Tabular" not in str(e.value) and "pl.col" not in str(e.value)
    with pytest.raises(DataError, match=r"the class 'rare' has 2 rows in y, fewer than the 5 folds a WeightedEnsemble "
                                        r"selects its weights on .*use StackingEnsemble\(<the same members>, "
                                        r"n_folds=2\) or MeanEnsemble\(<the same members>\)"):
        TabularClassifier(WeightedEnsemble(members())).fit(X, y2)
    with pytest.raises(DataError, match=r"the class 'rare' has 1 row in y, .*; use MeanEnsemble\(<the same "
                                        r"members>\), which fits each member on every row, or drop the rows"):
        TabularClassifier(WeightedEnsemble(members())).fit(X, y1)
    # the fixes named fit on those very labels
    for fixed, labels in ((StackingEnsemble(members(), n_folds=2), y2), (MeanEnsemble(members()), y2),
                          (MeanEnsemble(members()), y1)):
        clf = TabularClassifier(fixed).fit(X, labels)
        assert "rare" in clf.classes_.tolist() and clf.score(X, labels) > 0.8
    # a label is named as y holds it (an int, not its text)
    yi = (y == y[0]).astype(np.int64)
    yi[:2] = 7
    with pytest.raises(DataError, match=r"the class 7 has 2 rows in y.*drop the rows labelled 7 from X and y"):
        TabularClassifier(WeightedEnsemble(members())).fit(X, yi)
