"""GBM refuses, when it is built (and in ``set_params``), what it could only fail on when fitted or loaded: an
objective that does not fit its task, ``categorical_feature`` (pipekit sets it from the split's ``cat_names``) and
bad values of LightGBM's common parameters, each named as the user wrote it; a multiclass objective trains on two
classes. On adult_sample and rossmann_sample, few rows and trees."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone

import pipekit
from pipekit.backends import GBM
from pipekit.core import ParameterError
from pipekit.tabular import Categorify, FillMissing

pytest.importorskip("lightgbm")

from test_models_helpers import adult_tab, rossmann_open_tab  # noqa: E402


@pytest.fixture(scope="module")
def adult():
    return adult_tab(3000, procs=(Categorify, FillMissing))


@pytest.fixture(scope="module")
def rossmann():
    return rossmann_open_tab(3000)


@pytest.mark.parametrize(("task", "kw", "fits"), [
    ("classification", {"objective": "regression"}, "binary"),
    ("classification", {"objective": "poisson"}, "binary"),
    ("classification", {"params": {"application": "mse"}}, "multiclass"),
    ("regression", {"objective": "binary"}, "regression_l1"),
    ("regression", {"objective": "multiclass", "num_class": 3}, "poisson"),
])
def test_objective_of_the_other_task_is_refused_when_built(task, kw, fits):
    with pytest.raises(ParameterError, match="does not fit the task") as e:
        GBM(task, n_estimators=5, **kw)
    assert fits in str(e.value), str(e.value)
    written = next(iter(kw)) if "params" not in kw else "application"
    assert written in str(e.value), str(e.value)
    # and in set_params, leaving the model as it was
    model = GBM(task, n_estimators=5)
    with pytest.raises(ParameterError, match="does not fit the task"):
        model.set_params(**kw)
    assert model.params is None


def test_fitting_objectives_and_aliases_are_taken(adult, rossmann):
    assert GBM("classification", objective="xentropy").params == {"objective": "xentropy"}
    model = GBM("regression", n_estimators=5, n_jobs=1, objective="mae").fit(rossmann.train, rossmann.valid)
    assert model.booster_.params["objective"] == "mae" and model.predict(rossmann.valid).shape == (len(rossmann.valid),)


def test_multiclass_objective_on_two_classes_trains_and_loads(adult, tmp_path):
    for kw in ({"objective": "multiclass"}, {"objective": "softmax", "num_class": 2}):
        model = GBM("classification", n_estimators=10, n_jobs=1, **kw).fit(adult.train, adult.valid)
        p = model.predict(adult.valid)
        assert p.shape == (len(adult.valid), 2)
        np.testing.assert_allclose(p.sum(1), 1.0, rtol=1e-6)
        back = pipekit.load(pipekit.save(model, tmp_path / "multi.pipekit"))
        np.testing.assert_array_equal(back.predict(adult.valid), p)
    with pytest.raises(ParameterError, match="num_class=3.*2 classes"):
        GBM("classification", n_estimators=5, n_jobs=1, objective="multiclass", num_class=3).fit(adult.train)


@pytest.mark.parametrize("kw", [{"categorical_feature": ["workclass"]}, {"categorical_feature": "name:workclass"},
                                {"cat_feature": [0]}, {"params": {"categorical_feature": [0]}}])
def test_categorical_feature_is_refused_pointing_to_cat_names(kw):
    with pytest.raises(ParameterError, match=r"cat_names.*native_categorical") as e:
        GBM("classification", n_estimators=5, **kw)
    assert ("params={'categorical_feature'" if "params" in kw else f"{next(iter(kw))}=") in str(e.value)


@pytest.mark.parametrize(("kw", "named"), [
    ({"max_depth": "deep"}, "max_depth='deep'"),
    ({"reg_alpha": -1.0}, "reg_alpha=-1.0: LightGBM's lambda_l1"),
    ({"objective": "binnary"}, "objective='binnary'"),
    ({"min_split_gain": -5}, "min_split_gain=-5: LightGBM's min_gain_to_split"),
    ({"max_bin": 1}, "max_bin=1"),
    ({"params": {"bagging_fraction": 2.0}}, "params={'bagging_fraction': 2.0}"),
    ({"colsample_bytree": 1.5}, "colsample_bytree=1.5 (GBM's colsample)"),
])
def test_bad_lightgbm_values_are_refused_when_built_by_the_name_written(kw, named):
    with pytest.raises(ParameterError) as e:
        GBM("classification", n_estimators=5, **kw)
    assert named in str(e.value), str(e.value)
    model = GBM("classification", n_estimators=5)
    with pytest.raises(ParameterError) as e:
        model.set_params(**kw)
    assert named in str(e.value), str(e.value)


def test_set_params_max_depth_text_is_refused():
    with pytest.raises(ParameterError, match=r"max_depth='x': LightGBM's max_depth must be an integer"):
        GBM("regression").set_params(max_depth="x")


def test_objective_none_is_the_tasks_own_as_lgbmclassifier_reads_it():
    # LGBMClassifier(objective=None) is its default: a GBM given it is one not given it
    assert GBM("classification", objective=None).get_params() == GBM("classification").get_params()
    assert GBM("regression", objective=None).params is None


def test_seed_and_random_state_must_agree_even_when_seed_is_the_default_value():
    # seed=0 written out is a seed given: random_state (LightGBM's name for it) must not say another
    for kw in ({"seed": 0, "random_state": 5}, {"seed": 1, "random_state": 5}, {"seed": 5, "random_state": 0}):
        with pytest.raises(ParameterError, match=rf"seed={kw['seed']} and random_state={kw['random_state']} "
                                                 r"\(LightGBM's name for seed\) set the same thing"):
            GBM("classification", **kw)
    with pytest.raises(ParameterError, match=r"seed=0 and random_state=5"):
        GBM("classification").set_params(seed=0, random_state=5)
    # the same value under both names, or either alone, is taken; the default reads as 0 everywhere
    assert GBM("classification", seed=5, random_state=5).seed == GBM("classification", random_state=5).seed == 5
    assert GBM("classification", seed=0, random_state=0).get_params() == GBM("classification").get_params()
    assert type(GBM("classification").seed) is int and repr(GBM("classification", seed=0)) == "GBM(task='classification')"


@pytest.mark.parametrize(("kw", "both"), [
    ({"seed": 1, "params": {"random_state": 5}}, ("params={'random_state': ...}", "seed=1", "'random_state': 5")),
    ({"seed": 0, "params": {"seed": 5}}, ("params={'seed': ...}", "seed=0", "'seed': 5")),
    ({"n_estimators": 1000, "num_boost_round": 5}, ("n_estimators=1000", "num_boost_round=5")),
    ({"learning_rate": 0.05, "eta": 0.1}, ("learning_rate=0.05", "eta=0.1")),
    ({"n_estimators": 1000, "params": {"num_iterations": 5}}, ("n_estimators=1000", "'num_iterations': 5")),
    ({"params": {"seed": 1, "random_state": 2}}, ("params={'seed': ...}", "params={'random_state': ...}")),
    ({"params": {"lambda_l1": 0.1, "reg_alpha": 0.2}}, ("'lambda_l1': 0.1", "'reg_alpha': 0.2")),
    ({"params": {"max_depth": 2}, "max_depth": 3}, ("params={'max_depth': ...}", "max_depth=3", "'max_depth': 2")),
    ({"random_state": 1, "params": {"seed": 2}}, ("random_state=1", "'seed': 2")),
])
def test_two_names_of_one_setting_with_different_values_are_refused_naming_both(kw, both):
    # what was written counts, a value equal to the default too: neither name silently wins
    with pytest.raises(ParameterError, match="set the same thing") as e:
        GBM("classification", **kw)
    for words in both:
        assert words in str(e.value), str(e.value)


@pytest.mark.parametrize("kw", [
    {"seed": 5, "params": {"random_state": 5}}, {"n_estimators": 1000, "num_boost_round": 1000},
    {"params": {"lambda_l1": 0.1, "reg_alpha": 0.1}}, {"params": {"max_depth": 3}, "max_depth": 3},
    {"params": {"seed": 4, "random_state": 4}}, {"random_state": 4, "params": {"seed": 4}}])
def test_two_names_of_one_setting_with_the_same_value_are_taken(kw):
    model = GBM("classification", **kw)
    assert clone(model).get_params() == model.get_params()


def test_a_name_in_params_sets_its_argument_and_survives_clone_set_params_and_a_file(adult, tmp_path):
    model = GBM("classification", n_jobs=1, params={"random_state": 5, "num_iterations": 4, "max_depth": 3})
    assert (model.seed, model.n_estimators) == (5, 4)
    for copy in (clone(model), model.clone(), GBM(**model.get_params())):
        assert copy.get_params() == model.get_params()
    model.fit(adult.train, adult.valid)
    assert model.booster_.params["seed"] == 5 and model.booster_.current_iteration() <= 4
    back = pipekit.load(pipekit.save(model, tmp_path / "m.pipekit"))
    assert back.get_params() == model.get_params()
    np.testing.assert_array_equal(back.predict(adult.valid), model.predict(adult.valid))
    # a search grid's set_params on a clone: the setting given replaces what params held of it
    searched = clone(model).set_params(seed=7)
    assert searched.seed == 7 and searched.params == {"num_iterations": 4, "max_depth": 3}
    assert clone(model).set_params(random_state=9).seed == 9
    with pytest.raises(ParameterError, match=r"params=\{'seed': \.\.\.\} and seed=0 set the same thing"):
        clone(model).set_params(seed=0, params={"seed": 3})
    assert clone(model).set_params(params={"seed": 3}).seed == 3


def test_a_name_in_params_of_an_argument_saves_loads_and_refits_the_same(adult, tmp_path):
    model = GBM("classification", n_estimators=6, n_jobs=1, params={"bagging_fraction": 0.8}).fit(adult.train,
                                                                                                   adult.valid)
    assert model.subsample == 0.8 and model.booster_.params["bagging_freq"] == 1
    back = pipekit.load(pipekit.save(model, tmp_path / "bagged.pipekit"))
    assert back.get_params() == model.get_params()
    np.testing.assert_array_equal(back.predict(adult.valid), model.predict(adult.valid))
    np.testing.assert_array_equal(back.clone().fit(adult.train, adult.valid).predict(adult.valid),
                                  model.predict(adult.valid))
