"""A number given as a 0-d tensor or array or a NumPy number is checked, by every constraint, as the plain Python
number it holds (``check`` converts it once), and a component keeps that plain number; bools and arrays of several
values are still refused where a number is meant. Forests are fitted on a real adult subset."""

import numpy as np
import polars as pl
import pytest
import torch

from pipekit.backends import RandomForest, as_data
from pipekit.core.errors import ParameterError
from pipekit.core.validate import Interval, Is, Options, check, plain_number
from pipekit.datasets import path
from pipekit.learn.registry import arch_spec
from pipekit.tabular import CollabDataLoaders, EmbeddingDotBias, collab_learner

NUMS = ["age", "fnlwgt", "education-num", "capital-gain", "capital-loss", "hours-per-week"]


@pytest.fixture(scope="module")
def adult():
    df = pl.read_csv(path("adult_sample") / "adult.csv", n_rows=1500)
    return as_data(df.select(NUMS), y=(df["salary"] == ">=50k").to_numpy())


@pytest.mark.parametrize("given, plain", [(torch.tensor(0.5), 0.5), (np.float32(0.5), 0.5), (np.array(0.5), 0.5),
                                          (np.float64(0.5), 0.5), (torch.tensor(3), 3), (np.int64(3), 3)])
def test_forest_max_features_as_tensor_or_numpy_number_is_kept_as_the_plain_number(adult, given, plain):
    rf = RandomForest("classification", n_estimators=8, max_features=given, max_samples=given if plain == 0.5 else 400,
                      n_jobs=np.int64(1), seed=0)
    params = rf.get_params()
    assert params["max_features"] == plain and type(params["max_features"]) is type(plain)
    assert type(params["n_jobs"]) is int and type(params["max_samples"]) in (int, float)
    rf.fit(adult)
    same = RandomForest("classification", n_estimators=8, max_features=plain,
                        max_samples=plain if plain == 0.5 else 400, n_jobs=1, seed=0).fit(adult)
    assert type(rf.model_.max_features) is type(plain) and rf.model_.max_features == plain
    np.testing.assert_array_equal(rf.predict(adult), same.predict(adult))
    assert 0.5 < rf.oob_score_ == same.oob_score_ <= 1.0


@pytest.mark.parametrize("bad", [torch.tensor(True), np.bool_(True), True, torch.tensor([0.5, 0.5]), np.array([3]),
                                 np.array(["0.5"])[0], torch.tensor(1.5), np.int64(0)])
def test_forest_still_refuses_bools_several_values_and_out_of_range(bad):
    with pytest.raises(ParameterError, match=r"RandomForest: max_features=.* is not accepted; expected None, 'sqrt'"):
        RandomForest("classification", max_features=bad)


def test_check_hands_every_constraint_the_plain_number_and_returns_it():
    is_float = Is(lambda v: type(v) is float, "a float")
    out = check("owner", a=(torch.tensor(0.25), is_float), b=(np.int64(2), Options(1, 2)),
                c=(np.array(7), Interval(1, None, integer=True)), d=("sqrt", Options("sqrt")), e=(None, Y_OK))
    assert out == {"a": 0.25, "b": 2, "c": 7, "d": "sqrt", "e": None}
    assert [type(v) for v in out.values()] == [float, int, int, str, type(None)]
    # the error names the value as the user gave it
    with pytest.raises(ParameterError, match=r"owner: a=tensor\(2\.5000\) is not accepted; expected a number in"):
        check("owner", a=(torch.tensor(2.5), Interval(0, 1)))
    with pytest.raises(ParameterError, match=r"owner: a=tensor\(\[1, 2\]\) is not accepted; expected a float"):
        check("owner", a=(torch.tensor([1, 2]), is_float))
    with pytest.raises(ParameterError, match=r"owner: flag=np\.True_ is not accepted; expected a float"):
        check("owner", flag=(np.bool_(True), is_float))
    big = torch.tensor([0.5])
    assert plain_number(big) is big and plain_number(np.str_("a")) == "a"


Y_OK = Is(lambda v: v is None, "None")


def test_collab_y_range_of_tensors_and_n_factors_as_a_tensor():
    ratings = pl.read_csv(path("movie_lens_sample") / "ratings.csv")
    dls = CollabDataLoaders.from_df(ratings, valid_pct=0.2, seed=42, bs=64)
    learn = collab_learner(dls, n_factors=torch.tensor(6), y_range=(torch.tensor(0.0), np.float32(5.5)))
    assert learn.model.u_weight.embedding_dim == 6 and learn.model.y_range == (0.0, 5.5)
    assert type(arch_spec(learn.model)[1]["n_factors"]) is int
    m = EmbeddingDotBias(4, 3, 5, y_range=(torch.tensor(1.0), 5))
    assert m.y_range == (1.0, 5.0)
    with pytest.raises(ParameterError, match=r"EmbeddingDotBias: y_range=.*low < high"):
        EmbeddingDotBias(4, 3, 5, y_range=(torch.tensor(5.0), 1))
    with pytest.raises(ParameterError, match=r"collab_learner: y_range="):
        collab_learner(dls, y_range=(torch.tensor([0.0, 1.0]), 5.5))


def test_set_params_checks_and_converts_as_init_does_and_a_bad_grid_value_is_named_before_fitting(adult):
    from sklearn.model_selection import GridSearchCV

    rf = RandomForest("classification", n_estimators=8, n_jobs=1, seed=0)
    rf.set_params(max_features=torch.tensor(0.5))
    assert type(rf.max_features) is float and rf.max_features == 0.5
    with pytest.raises(ParameterError, match=r"RandomForest: n_estimators=-3 is not accepted"):
        rf.set_params(n_estimators=-3, max_features=0.7)
    assert (rf.n_estimators, rf.max_features) == (8, 0.5)  # a refused call changes nothing
    from pipekit.sklearn import TabularClassifier

    clf = TabularClassifier(RandomForest("classification", n_estimators=8, n_jobs=1, seed=0), random_state=0)
    search = GridSearchCV(clf, {"backend__min_samples_leaf": [1, 0]}, cv=2, error_score="raise")
    with pytest.raises(ParameterError, match=r"min_samples_leaf=0 is not accepted"):
        search.fit(adult.xs.to_pandas(), adult.y)


def test_set_params_tries_every_value_before_setting_any():
    """A refused nested value leaves the outer component's new values unset too, and checks only __init__ makes
    (across parameters, such as bagging a bagged model) apply to set_params as well."""
    from pipekit.backends import GBM
    from pipekit.ensemble import BaggedModel

    bag = BaggedModel(GBM("classification", n_jobs=1), n_folds=5)
    with pytest.raises(ParameterError, match=r"GBM: num_leaves=-1 is not accepted"):
        bag.set_params(n_folds=3, model__num_leaves=-1)
    assert (bag.n_folds, bag.model.num_leaves) == (5, 31)
    with pytest.raises(ParameterError, match=r"model is already bagged"):
        bag.set_params(model=BaggedModel(GBM("classification")))
    assert type(bag.model) is GBM
    with pytest.raises(ParameterError, match=r"n_folds__x reaches into n_folds, which is a int"):
        bag.set_params(n_folds__x=1)
    # the new backend and its nested value both land, in either order
    bag.set_params(model__num_leaves=7, model=GBM("classification", learning_rate=0.2))
    assert (bag.model.learning_rate, bag.model.num_leaves) == (0.2, 7)
