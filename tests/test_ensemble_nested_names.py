"""Ensembles as named members of other ensembles, on real data: a nested ensemble named by its dict key saves and
loads (its ``name`` is a parameter, as a backend's is), a dict member's copy says so when it is not fitted, and a
stack's ``order`` sets its members' time folds whatever its meta-model."""
from __future__ import annotations

import json
import numpy as np
import polars as pl
import pytest
from sklearn.base import clone as sk_clone

import pipekit
from pipekit.backends import GBM, RandomForest, as_data
from pipekit.core import NotFittedError, ParameterError
from pipekit.core.component import Component
from pipekit.data import RandomSplitter, TimeSplitter
from pipekit.datasets import path
from pipekit.ensemble import BaggedModel, MeanEnsemble, StackingEnsemble, WeightedEnsemble
from pipekit.ensemble.bagged import make_folds
from pipekit.tabular import Categorify, FillMissing, Normalize, Tabular


@pytest.fixture(scope="module")
def tab() -> Tabular:
    df = pl.read_csv(path("adult_sample") / "adult.csv").sample(1500, seed=0)
    return Tabular(df, procs=[Categorify, FillMissing, Normalize],
                   cat_names=["workclass", "education", "marital-status", "occupation", "relationship", "race"],
                   cont_names=["age", "fnlwgt", "education-num"], y_names="salary",
                   splits=RandomSplitter(valid_pct=0.2, seed=42))


def gbm() -> GBM:
    return GBM("classification", n_estimators=20, n_jobs=1)


def rf() -> RandomForest:
    return RandomForest("classification", n_estimators=10, n_jobs=1)


@pytest.fixture(scope="module")
def bags(tab):
    return (BaggedModel(gbm(), n_folds=3, n_jobs=1).fit(tab.train),
            BaggedModel(rf(), n_folds=3, n_jobs=1).fit(tab.train))


@pytest.fixture(scope="module")
def stack(tab, bags):
    gb, rb = bags
    return StackingEnsemble({"gbm": gb, "rf": rb}, meta=BaggedModel(gbm(), n_folds=3, n_jobs=1)).fit(tab.train)


# ------------------------------------------------------------------------------- nested ensembles named by a key
def test_a_stack_named_in_a_weighted_ensemble_saves_and_loads(tab, bags, stack, tmp_path):
    gb, _ = bags
    ens = WeightedEnsemble({"stack": stack, "gbm": gb}, n_iter=10).fit()
    assert [m.name for m in ens.members] == ["stack", "gbm"] and stack.name is None  # the user's stack keeps its own
    pipekit.save(ens, tmp_path / "w.pipekit")
    back = pipekit.load(tmp_path / "w.pipekit")
    assert type(back.members[0]) is StackingEnsemble and back.members[0].name == "stack"
    assert np.array_equal(back.predict(tab.valid), ens.predict(tab.valid))
    assert back.report(tab.valid)["model"].to_list() == ["stack", "gbm", "WeightedEnsemble"]


def test_a_mean_named_in_a_mean_saves_and_loads(tab, bags, tmp_path):
    gb, rb = bags
    inner = MeanEnsemble({"gbm": gb, "rf": rb})
    outer = MeanEnsemble({"mean": inner, "gbm": gb}, weights=[3, 1])
    pipekit.save(outer, tmp_path / "m.pipekit")
    back = pipekit.load(tmp_path / "m.pipekit")
    assert [m.name for m in back.members] == ["mean", "gbm"] and inner.name is None
    assert [m.name for m in back.members[0].members] == ["gbm", "rf"]
    assert np.array_equal(back.predict(tab.valid), outer.predict(tab.valid))


def test_name_is_a_checked_parameter_that_clone_get_params_and_repr_keep(bags, stack):
    gb, rb = bags
    for ens in (MeanEnsemble([gb, rb], name="avg"), WeightedEnsemble([gb, rb], name="avg"),
                StackingEnsemble([gbm(), rf()], name="avg")):
        cls = type(ens)
        assert ens.get_params(deep=False)["name"] == "avg"
        assert sk_clone(ens).name == "avg" and ens.clone().name == "avg"
        assert "name='avg'" in repr(ens) and "name=" not in repr(cls([gbm(), rf()]) if cls is StackingEnsemble
                                                                     else cls([gb, rb]))
        with pytest.raises(ParameterError, match=f"{cls.__name__}: name="):
            cls([gb, rb], name=3)
    # a nested ensemble's own name reaches its parameters, as a backend's does
    outer = MeanEnsemble([StackingEnsemble([gbm(), rf()], n_folds=4, name="st"), gbm()])
    assert outer.get_params()["st__n_folds"] == 4
    assert outer.set_params(st__n_folds=3).members[0].n_folds == 3


def test_a_record_written_before_ensembles_took_a_name_loads(tab, bags, stack):
    gb, rb = bags
    for ens in (MeanEnsemble([gb, rb]), WeightedEnsemble([gb, rb], n_iter=5).fit(tab.valid), stack):
        arrays: dict[str, np.ndarray] = {}
        rec = json.loads(json.dumps(ens.to_record(arrays)))  # as a file holds it
        assert "name" not in rec["params"]  # an unnamed ensemble's record is the one older files hold
        back = Component.from_record(rec, arrays)
        assert type(back) is type(ens) and back.name is None
        assert np.allclose(back.predict(tab.valid), ens.predict(tab.valid))


# ---------------------------------------------------------------------------------- a dict member joins as a copy
def test_a_dict_member_fitted_after_the_ensemble_was_built_is_named_as_a_copy(tab):
    forest, boost = rf(), gbm()
    as_dict = MeanEnsemble({"rf": forest, "gbm": boost})
    as_list = MeanEnsemble([forest, boost])
    forest.fit(tab.train)
    boost.fit(tab.train)
    with pytest.raises(NotFittedError) as e:
        as_dict.predict(tab.valid)
    msg = str(e.value)
    assert "member rf is not fitted" in msg and "holds a copy of the model given as 'rf'" in msg
    assert "Build the ensemble after fitting its members" in msg and "RandomForest(..., name='rf')" in msg
    assert np.allclose(as_list.predict(tab.valid), (forest.predict(tab.valid) + boost.predict(tab.valid)) / 2)
    # a model not joined by a dict is not called a copy
    with pytest.raises(NotFittedError, match="member 0:RandomForest is not fitted; fit it first") as e:
        MeanEnsemble([rf(), boost]).predict(tab.valid)
    assert "copy" not in str(e.value)


def test_a_dict_member_named_by_its_key_joins_as_it_is(tab):
    forest = RandomForest("classification", n_estimators=10, n_jobs=1, name="rf")
    boost = GBM("classification", n_estimators=20, n_jobs=1, name="gbm")
    ens = MeanEnsemble({"rf": forest, "gbm": boost})
    assert ens.members[0] is forest and ens.members[1] is boost
    forest.fit(tab.train)
    boost.fit(tab.train)
    assert np.allclose(ens.predict(tab.valid), (forest.predict(tab.valid) + boost.predict(tab.valid)) / 2)


# ------------------------------------------------------------------------------------ stacking's order= on members
@pytest.fixture(scope="module")
def rossmann() -> Tabular:
    df = pl.read_csv(path("rossmann_sample") / "train.csv", try_parse_dates=True,
                     schema_overrides={"StateHoliday": pl.String})
    df = df.filter((pl.col("Open") == 1) & (pl.col("Date") >= pl.date(2015, 5, 1)) & (pl.col("Store") <= 40))
    return Tabular(df, procs=[Categorify, FillMissing, Normalize], cat_names=["Store", "DayOfWeek", "Promo"],
                   cont_names=[], y_names="Sales", splits=TimeSplitter("Date", "2015-07-15"))


def test_order_gives_the_members_time_folds_with_the_default_meta(rossmann):
    tab = rossmann
    member = RandomForest("regression", n_estimators=10, n_jobs=1)
    st = StackingEnsemble({"rf": member}, n_folds=3).fit(tab.train, order=tab.train_times)
    d = as_data(tab.train)
    for _, held in make_folds(np.zeros(len(d)), "regression", 3, 0, order=tab.train_times):
        times = tab.train_times.to_numpy()
        rest = np.setdiff1d(np.arange(len(d)), held)
        assert not np.isin(times[held], times[rest]).any()  # a period of days no fold model saw
        alone = member.clone().fit(d.take(rest))
        assert np.allclose(st.oob_predictions_[0, held], alone.predict(d.take(held)))
    shuffled = StackingEnsemble({"rf": member}, n_folds=3).fit(tab.train)
    assert not np.allclose(shuffled.oob_predictions_, st.oob_predictions_)
    assert st.predict(tab.valid).shape == (tab.valid.xs.height,)


def test_order_with_fitted_members_and_an_unbagged_meta_is_refused_before_fitting(rossmann, monkeypatch):
    tab = rossmann
    bag = BaggedModel(RandomForest("regression", n_estimators=10, n_jobs=1), n_folds=3, n_jobs=1).fit(tab.train)
    from pipekit.backends import SklearnModel

    fits = []
    real_fit = SklearnModel.fit
    monkeypatch.setattr(SklearnModel, "fit", lambda self, *a, **kw: fits.append(1) or real_fit(self, *a, **kw))
    with pytest.raises(ParameterError, match=r"the members are fitted already .* the meta-model is the default"):
        StackingEnsemble({"rf": bag}, n_folds=3).fit(tab.train, order=tab.train_times)
    assert fits == []


@pytest.fixture
def fits(monkeypatch) -> list:
    """Each fit of a forest, a scikit-learn model or a bag, counted."""
    from pipekit.backends import SklearnModel

    seen: list = []
    for cls in (RandomForest, SklearnModel, BaggedModel):
        real = cls.fit
        monkeypatch.setattr(cls, "fit", lambda self, *a, _real=real, **kw: seen.append(type(self)) or _real(self, *a, **kw))
    return seen


def rf_reg() -> RandomForest:
    return RandomForest("regression", n_estimators=10, n_jobs=1)


@pytest.mark.parametrize("others", [{}, {"rf": rf_reg()}], ids=["alone", "beside_a_plain_member"])
def test_order_with_an_unfitted_shuffled_bag_member_is_refused_before_fitting(rossmann, fits, others):
    shuffled = BaggedModel(rf_reg(), n_folds=3, n_jobs=1, folds="shuffled")
    st = StackingEnsemble({"bag": shuffled, **others}, n_folds=3)
    with pytest.raises(ParameterError, match=r"member 'bag' is BaggedModel\(\.\.\., folds='shuffled'\); give it "
                                             r"folds='time'"):
        st.fit(rossmann.train, order=rossmann.train_times)
    assert fits == []
    st.fit(rossmann.train)  # no order: the shuffled bag is what was asked for
    assert st.members_[0].fold_kind_ == "shuffled"


def test_order_with_a_time_bag_member_bags_it_on_time_folds(rossmann):
    tab = rossmann
    st = StackingEnsemble({"bag": BaggedModel(rf_reg(), n_folds=3, n_jobs=1), "rf": rf_reg()},
                          n_folds=3).fit(tab.train, order=tab.train_times)
    bag, times = st.members_[0], tab.train_times.to_numpy()
    assert bag.fold_kind_ == "time"
    for f in range(3):
        assert not np.isin(times[bag.folds_[0] == f], times[bag.folds_[0] != f]).any()


def test_order_with_a_shuffled_bagged_meta_is_refused_before_fitting(rossmann, fits):
    st = StackingEnsemble({"rf": rf_reg()}, n_folds=3, meta=BaggedModel(rf_reg(), n_folds=3, n_jobs=1,
                                                                         folds="shuffled"))
    with pytest.raises(ParameterError, match=r"meta-model is BaggedModel\(\.\.\., folds='shuffled'\); give it "
                                             r"folds='time'"):
        st.fit(rossmann.train, order=rossmann.train_times)
    assert fits == []


@pytest.fixture(scope="module")
def fitted_forest_and_bag(rossmann) -> tuple[RandomForest, BaggedModel]:
    return rf_reg().fit(rossmann.train), BaggedModel(rf_reg(), n_folds=3, n_jobs=1).fit(rossmann.train)


def test_order_with_fitted_members_not_bagged_names_them_and_no_meta_fix(rossmann, fitted_forest_and_bag, fits):
    tab = rossmann
    forest, bag = fitted_forest_and_bag
    for members in ({"rf": forest}, {"bag": bag, "rf": forest}):
        with pytest.raises(ParameterError, match=r"fitted already, \['rf'\] not bagged") as err:
            StackingEnsemble(members, n_folds=3).fit(tab.train, order=tab.train_times)
        assert "meta=BaggedModel" not in str(err.value) and "own folds" not in str(err.value)
        assert "BaggedModel(member, folds='time').fit(train, order=...)" in str(err.value)
    assert fits == []
    # a bagged meta would not take them either: the stack learns from fitted members' out-of-fold predictions
    with pytest.raises(ParameterError, match="not bagged"):
        StackingEnsemble({"rf": forest}, n_folds=3, meta=BaggedModel(rf_reg(), n_folds=3, n_jobs=1,
                                                                     folds="time")).fit(tab.train, order=tab.train_times)
    assert fits == []
