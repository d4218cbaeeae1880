"""GBM refuses, when it is built (and in ``set_params``), what it could only fail on when fitted or loaded: an
objective that does not fit its task, ``categorical_feature`` (pipekit sets it from the split's ``cat_names``) and
bad values of LightGBM's common parameters, each named as the user wrote it; a multiclass objective trains on two
classes. On adult_sample and rossmann_sample, few rows and trees."""
from __future__ import annotations

import numpy as np
import pytest

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
