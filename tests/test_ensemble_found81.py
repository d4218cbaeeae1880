"""Bagged and stacked models on real data: nets bagged with n_jobs and a time limit, an unfitted bag stacked, time
folds through the scikit-learn estimators, random_state reaching a bag's model, shuffled folds given a time column."""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from pipekit.backends import GBM, RandomForest, as_data
from pipekit.core import DataError, ParameterError
from pipekit.datasets import path
from pipekit.ensemble import BaggedModel, StackingEnsemble, TorchTabular
from pipekit.ensemble.bagged import time_values
from pipekit.sklearn import TabularClassifier, TabularRegressor
from pipekit.tabular import Categorify, FillMissing, Normalize, Tabular


def adult(n: int) -> pl.DataFrame:
    return pl.read_csv(path("adult_sample") / "adult.csv").sample(n, seed=0)


def adult_tab(n: int, procs: tuple = (Categorify, FillMissing, Normalize)) -> Tabular:
    cut = int(n * 0.8)
    return Tabular(adult(n), procs=list(procs), cat_names=["workclass", "education", "marital-status", "race"],
                   cont_names=["age", "fnlwgt", "education-num"], y_names="salary",
                   splits=(np.arange(cut), np.arange(cut, n)))


def gbm(task: str = "classification", **kw) -> GBM:
    return GBM(task, n_estimators=15, n_jobs=1, **kw)


def rossmann_xy() -> tuple[pl.DataFrame, np.ndarray]:
    df = pl.read_csv(path("rossmann_sample") / "train.csv", infer_schema_length=100000)
    df = df.filter((pl.col("Store") < 12) & (pl.col("Open") == 1)).sort("Date")
    return df.select("Store", "DayOfWeek", "Promo", "SchoolHoliday", "Date"), df["Sales"].to_numpy()


# --------------------------------------------------------------------------- nets bagged with n_jobs and a limit
def test_a_bag_of_nets_fits_them_one_at_a_time_whatever_n_jobs_says():
    """Nets train one at a time in a process (their training holds its random generators), so a bag fits its fold
    nets one after another, and its time shares are those of one at a time; other models keep their threads."""
    assert TorchTabular.fits_alone
    for n_jobs in (None, 1, 2, 4):
        assert BaggedModel(TorchTabular("classification"), n_folds=4, n_jobs=n_jobs).workers() == (1, None)
    assert BaggedModel(gbm(), n_folds=4, n_jobs=2).workers() == (2, 1)


def test_a_net_starts_its_clock_once_its_turn_has_come(monkeypatch):
    """The time a net may train counts from when it holds the process's seeded lock: a net waiting for another
    net's training has not spent its time_limit waiting."""
    from pipekit.data import seed

    tab = adult_tab(400)
    held = []
    deadline = TorchTabular._deadline

    def spy(self):
        held.append(seed._SEEDED._is_owned())
        return deadline(self)

    monkeypatch.setattr(TorchTabular, "_deadline", spy)
    TorchTabular("classification", layers=[8], epochs=1, bs=64, time_limit=30).fit(tab.train)
    assert held == [True]


def test_no_fold_net_of_a_bag_with_n_jobs_and_a_time_limit_is_starved(monkeypatch):
    """adult, a bag of 2 nets with n_jobs=2 and 6 s, nets that 400 epochs would keep busy far longer: each net gets
    its share of the time to train in (the second one got 1 ms, the floor of a share, having waited the first one's
    whole share for its turn)."""
    import pipekit.learn as L

    tab = adult_tab(1500)
    TorchTabular("classification", layers=[8], epochs=1).fit(tab.train)  # a process's first net: torch warmed up
    limits = []
    init = L.TimeLimit.__init__

    def spy(self, seconds, *a, **k):
        limits.append(self)
        init(self, seconds, *a, **k)

    monkeypatch.setattr(L.TimeLimit, "__init__", spy)
    bag = BaggedModel(TorchTabular("classification", layers=[64, 32], epochs=400, bs=64), n_folds=2, n_jobs=2,
                      time_limit=6).fit(tab.train)
    assert bag.stopped_on_time_ == 2  # 400 epochs never fit: each schedule was cut to its share
    # about 3 s each (the second's share less what the first overran); the floor of a share, 1 ms, is starving
    assert len(limits) == 2 and min(t.seconds for t in limits) > 0.1


# --------------------------------------------------------------------------- an unfitted bag stacked
def test_a_stack_bags_an_unfitted_bag_member_once_and_stacks_its_out_of_fold_predictions():
    """adult: StackingEnsemble([BaggedModel(GBM), RandomForest]) fits (it raised 'model is already bagged'): the bag
    is fitted once on train and its own out-of-fold predictions feed the meta-model; the forest is fitted fold by
    fold as before."""
    tab = adult_tab(900, procs=(Categorify, FillMissing))
    bag = BaggedModel(gbm(), n_folds=2)
    rf = RandomForest("classification", n_estimators=10, n_jobs=1)
    ens = StackingEnsemble([bag, rf], n_folds=3).fit(tab.train, tab.valid)
    alone = BaggedModel(gbm(), n_folds=2).fit(tab.train)
    fitted_bag, fitted_rf = ens.members_
    assert isinstance(fitted_bag, BaggedModel) and fitted_bag.is_fitted and not bag.is_fitted
    np.testing.assert_array_equal(fitted_bag.oof_predictions_, alone.oof_predictions_)
    np.testing.assert_array_equal(ens.oob_predictions_[0], alone.oof_predictions_)
    plain = StackingEnsemble([gbm(), rf], n_folds=3).fit(tab.train)  # the forest's folds are those it always had
    np.testing.assert_array_equal(ens.oob_predictions_[1], plain.oob_predictions_[1])
    assert ens.predict(tab.valid).shape == (180, 2) and ens.report_ is not None


def test_a_stack_of_unfitted_bags_is_the_stack_of_those_bags_fitted():
    tab = adult_tab(900, procs=(Categorify, FillMissing))
    members = [BaggedModel(gbm(), n_folds=3), BaggedModel(RandomForest("classification", n_estimators=10, n_jobs=1),
                                                           n_folds=3)]
    unfitted = StackingEnsemble([m.clone() for m in members]).fit(tab.train)
    given = StackingEnsemble([m.clone().fit(tab.train) for m in members]).fit(tab.train)
    np.testing.assert_array_equal(unfitted.oob_predictions_, given.oob_predictions_)
    np.testing.assert_allclose(unfitted.predict(tab.valid), given.predict(tab.valid))


def test_a_classifier_stacking_an_unfitted_bag_fits():
    df = adult(900)
    X, y = df.drop("salary"), df["salary"].to_numpy()
    clf = TabularClassifier(StackingEnsemble([BaggedModel(gbm(), n_folds=2),
                                              RandomForest("classification", n_estimators=10, n_jobs=1)], n_folds=3))
    clf.fit(X, y)
    assert isinstance(clf.model_.members_[0], BaggedModel) and clf.predict_proba(X.head(5)).shape == (5, 2)


def test_a_stack_gives_its_order_to_a_bag_member_for_time_folds():
    """rossmann in time order, the stack's meta-model bagged on time folds: the bag member's folds are the same
    periods (it is fitted with the stack's order), not shuffled ones."""
    X, y = rossmann_xy()
    cut = int(len(X) * 0.8)
    days = X["Date"].str.to_date()[:cut]
    tab = Tabular(X.with_columns(Sales=y.astype(np.float64)), procs=[Categorify, FillMissing],
                  cat_names=["Store", "DayOfWeek", "Promo", "SchoolHoliday"], y_names="Sales", y_block="regression",
                  splits=(np.arange(cut), np.arange(cut, len(X))))
    ens = StackingEnsemble([BaggedModel(gbm("regression"), n_folds=3), RandomForest("regression", n_estimators=5,
                                                                                    n_jobs=1)],
                           meta=BaggedModel(gbm("regression"), n_folds=3, folds="time"), n_folds=3)
    ens.fit(tab.train, order=days)
    bag = ens.members_[0]
    assert bag.fold_kind_ == "time"
    firsts = [days.to_numpy()[bag.fold_rows(f)[2]].min() for f in range(3)]
    assert firsts == sorted(firsts) and len(set(firsts)) == 3


def test_row_splitting_needs_no_bag_and_matches_a_bags():
    from pipekit.ensemble.bagged import fold_fit_rows

    rng = np.random.default_rng(0)
    folds, strata = rng.integers(0, 3, 200), rng.integers(0, 2, 200)
    bag = BaggedModel(gbm(), n_folds=3, seed=4, stop_fraction=0.2)
    for f in range(4):  # fold 3 holds no row: the split of a model fitted on all of them
        ours = fold_fit_rows(folds, f, True, seed=4, stop_fraction=0.2, repeat=1, strata=strata)
        theirs = bag.split_rows(folds, f, 1, strata)
        assert all(np.array_equal(a, b) for a, b in zip(ours, theirs))
    fit_idx, stop_idx, held = fold_fit_rows(folds, 0, False, seed=4)
    assert len(stop_idx) == 0 and len(fit_idx) + len(held) == 200


# --------------------------------------------------------------------------- time folds through TabularRegressor
def test_time_col_of_a_date_column_reads_its_elapsed_part_through_the_regressor():
    """rossmann through TabularRegressor: Date becomes its parts, and time_col='Date' reads 'Date_Elapsed' (it was
    refused, 'Date_Elapsed' cut off the list of columns the message gave, with order= suggested, which fit refuses)."""
    X, y = rossmann_xy()
    bag = lambda col: BaggedModel(gbm("regression"), n_folds=4, folds="time", time_col=col)  # noqa: E731
    by_date = TabularRegressor(bag("Date"), cat_names=["Store"]).fit(X, y).model_
    by_part = TabularRegressor(bag("Date_Elapsed"), cat_names=["Store"]).fit(X, y).model_
    assert by_date.fold_kind_ == "time" and np.array_equal(by_date.folds_, by_part.folds_)
    days = X["Date"].str.to_date().to_numpy()
    assert [days[by_date.fold_rows(f)[2]].min() for f in range(4)] == sorted(
        days[by_date.fold_rows(f)[2]].min() for f in range(4))
    with pytest.raises(DataError) as e:
        TabularRegressor(bag("Day"), cat_names=["Store"]).fit(X, y)
    said = str(e.value)
    assert "time_col='Day' is not a column" in said and "'Date_Elapsed'" in said and "order=" not in said
    assert said.index("'Date_Elapsed'") < said.index("'Store'")  # the column that orders them is named first


def test_time_values_reads_a_dates_elapsed_part_and_its_missing_dates():
    frame = pl.DataFrame({"Store": [1, 2, 3], "Date_Elapsed": [2.0, 0.0, 1.0], "Date_Elapsed_na": [False, False, True]})
    with pytest.raises(DataError, match="missing time"):  # FillMissing filled a missing date: that row has no time
        BaggedModel(gbm("regression"), n_folds=2, time_col="Date").fit(as_data(frame, y=np.arange(3.0)))
    assert time_values(frame.drop("Date_Elapsed_na"), "Date").to_list() == [2.0, 0.0, 1.0]
    with pytest.raises(DataError, match=r"columns: \['Date_Elapsed', 'Store'\].*order=tab.train_times"):
        time_values(frame.drop("Date_Elapsed_na"), "Day")
    # add_datepart's 'Elapsed' (no prefix) may be any date's: a Tabular's rows are not read by a guess
    with pytest.raises(DataError, match=r"'Date' is not a column .*columns: \['Elapsed', 'Store'\]"):
        time_values(pl.DataFrame({"Store": [1, 2], "Elapsed": [1.0, 0.0]}), "Date")


# --------------------------------------------------------------------------- random_state into a bag
def test_random_state_reaches_the_model_a_bag_bags_and_a_stacks_meta_model():
    df = adult(600)
    X, y = df.drop("salary"), df["salary"].to_numpy()
    bag = TabularClassifier(BaggedModel(gbm(subsample=0.7), n_folds=3), random_state=7).fit(X, y).model_
    assert bag.model.seed == 7 and [m.seed for m in bag.models_] == [7, 8, 9]
    other = TabularClassifier(BaggedModel(gbm(subsample=0.7), n_folds=3), random_state=0).fit(X, y).model_
    assert not np.array_equal(bag.oof_predictions_, other.oof_predictions_)
    stack = TabularClassifier(StackingEnsemble([gbm(), RandomForest("classification", n_estimators=5, n_jobs=1)],
                                               meta=BaggedModel(gbm(), n_folds=2), n_folds=2),
                              random_state=5).fit(X, y).model_
    assert stack.meta.seed == 5 and stack.meta.model.seed == 5 and stack.meta_model_.model.seed == 5
    assert [m.seed for m in stack.meta_model_.models_] == [5, 6]


# --------------------------------------------------------------------------- shuffled folds and a time column
def test_shuffled_folds_given_a_time_column_are_refused():
    with pytest.raises(ParameterError, match=r"time_col='Elapsed' orders time folds, and folds='shuffled'"):
        BaggedModel(gbm("regression"), folds="shuffled", time_col="Elapsed")
    bag = BaggedModel(gbm("regression"), time_col="Elapsed")
    with pytest.raises(ParameterError, match="folds='shuffled'"):
        bag.set_params(folds="shuffled")
    assert bag.folds == "auto" and bag.set_params(folds="shuffled", time_col=None).folds == "shuffled"


# --------------------------------------------------------------------------- a date's missing flag on processed rows
def rossmann_dated_tab(missing: int, n: int = 300) -> tuple[Tabular, pl.Series]:
    """rossmann rows in time order, Date split by add_datepart (row ``missing`` without a date), processed by a Tabular
    whose FillMissing flags the missing date and whose Categorify codes that flag (#na#, False, True as 0, 1, 2)."""
    from pipekit.tabular import add_datepart

    df = pl.read_csv(path("rossmann_sample") / "train.csv", infer_schema_length=100000)
    df = df.filter((pl.col("Store") < 12) & (pl.col("Open") == 1)).sort("Date").head(n)
    date = pl.when(pl.int_range(pl.len()) == missing).then(None).otherwise(pl.col("Date").str.to_date())
    df = add_datepart(df.with_columns(date.alias("Date")), "Date", prefix="Date_")
    cut = int(n * 0.8)
    tab = Tabular(df.select("Store", "Promo", "Date_Elapsed", "Sales"), procs=[Categorify, FillMissing],
                  cat_names=["Store", "Promo"], cont_names=["Date_Elapsed"], y_names="Sales", y_block="regression",
                  splits=(np.arange(cut), np.arange(cut, n)))
    return tab, df["Date_Elapsed"][:cut].cast(pl.Float64)


def test_time_values_of_processed_rows_read_the_true_class_of_a_categorified_missing_flag():
    """The flag of a missing date is a Categorify code on processed rows: only True's code (2) marks a row with no
    time; False's code (1) is a row with its date (every row lost its time, 1 and 2 both read as True)."""
    tab, elapsed = rossmann_dated_tab(missing=5)
    assert "Date_Elapsed_na" in tab.cat_names and tab.train.xs["Date_Elapsed_na"].unique().sort().to_list() == [1, 2]
    for rows in (tab.train, as_data(tab.train)):
        got = time_values(rows, "Date")
        assert got.null_count() == 1 and got[5] is None
        assert got.drop_nulls().to_list() == elapsed.drop_nulls().to_list()
    with pytest.raises(DataError, match=r"missing time \(first at training row 5\)"):
        BaggedModel(gbm("regression"), n_folds=3, folds="time", time_col="Date").fit(tab.train)


def test_time_values_of_processed_rows_with_their_dates_are_all_there():
    """The validation rows of the same Tabular all have their dates: each flag holds False's code, and every row
    keeps its time (each was null, the code 1 read as True)."""
    tab, _ = rossmann_dated_tab(missing=5)
    assert tab.valid.xs["Date_Elapsed_na"].unique().to_list() == [1]
    want = pl.read_csv(path("rossmann_sample") / "train.csv", infer_schema_length=100000).filter(
        (pl.col("Store") < 12) & (pl.col("Open") == 1)).sort("Date").head(300)["Date"][240:].str.to_date()
    got = time_values(tab.valid, "Date")
    assert got.null_count() == 0
    assert got.to_list() == (want.cast(pl.Datetime("ms")).dt.epoch("s").cast(pl.Float64)).to_list()


def test_time_folds_through_the_regressor_read_a_categorified_missing_date_flag():
    """rossmann through TabularRegressor with one missing date: the rows it builds code the Date_Elapsed_na flag, and
    only the row without a date lacks a time (every row did, 'first at training row 0'); the rows with dates fit."""
    X, y = rossmann_xy()
    X = X.with_columns(pl.when(pl.int_range(pl.len()) == 7).then(None).otherwise(pl.col("Date")).alias("Date"))
    bag = BaggedModel(gbm("regression"), n_folds=4, folds="time", time_col="Date")
    with pytest.raises(DataError, match=r"column 'Date' has a missing time \(first at training row 7\)"):
        TabularRegressor(bag, cat_names=["Store"]).fit(X, y)
    seen = []

    def spy(data, col):
        seen.append(time_values(data, col))
        return seen[-1].fill_null(seen[-1].min())  # the row without a date taken as the first day

    import pipekit.ensemble.bagged as bagged

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(bagged, "time_values", spy)
        model = TabularRegressor(bag, cat_names=["Store"]).fit(X, y).model_
    assert seen[0].null_count() == 1 and seen[0][7] is None
    assert model.fold_kind_ == "time"
    days = X["Date"].str.to_date().to_numpy()
    firsts = [days[np.setdiff1d(model.fold_rows(f)[2], [7])].min() for f in range(4)]
    assert firsts == sorted(firsts) and len(set(firsts)) == 4
