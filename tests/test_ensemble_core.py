"""Mean / weighted (Caruana) / stacking ensembles on adult: selection guarantees, export, and bad input."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from test_models_helpers import adult, adult_tab

from pipekit.backends import GBM, RandomForest, SklearnModel, as_data, load_model
from pipekit.core import DataError, NotFittedError, ParameterError
from pipekit.datasets import path
from pipekit.ensemble import MeanEnsemble, StackingEnsemble, WeightedEnsemble
from pipekit.tabular import Categorify, FillMissing


@pytest.fixture(scope="module")
def splits():
    return adult()


@pytest.fixture(scope="module")
def members(splits):
    from sklearn.linear_model import LogisticRegression

    tr, va = splits
    rf = RandomForest("classification", n_estimators=30, n_jobs=1).fit(tr, va)
    gbm = GBM("classification", learning_rate=0.1, n_jobs=1).fit(tr, va)
    lr = SklearnModel(LogisticRegression(max_iter=500), "classification").fit(tr)
    return [rf, gbm, lr]


class Wrapped:
    """A member that changes what another member returns (label order, rows, NaNs), as a foreign model might."""

    task = "classification"

    def __init__(self, inner, name, reverse=False, drop_rows=0, nan_row=None):
        self.inner, self.name, self.reverse, self.drop_rows, self.nan_row = inner, name, reverse, drop_rows, nan_row
        self.classes_ = inner.classes_[::-1] if reverse else inner.classes_

    def predict(self, data):
        p = self.inner.predict(data)
        p = p[:, ::-1] if self.reverse else p.copy()
        if self.nan_row is not None:
            p[self.nan_row] = np.nan
        return p[: len(p) - self.drop_rows]


def test_weighted_never_below_best_member_on_selection_set(members, splits):
    _, va = splits
    ens = WeightedEnsemble(members, n_iter=30).fit(va)
    assert ens.weights_.shape == (3,) and ens.weights_.sum() == pytest.approx(1.0)
    scores = [m.score(va) for m in members]
    assert ens.score(va) >= max(scores)
    assert ens.best_member_ == int(np.argmax(scores))
    assert ens.selection_[0] == ens.best_member_  # the greedy walk starts from the best member
    rep = ens.report_
    assert rep["model"].to_list()[-1] == "WeightedEnsemble"
    assert rep["accuracy"][-1] == pytest.approx(ens.score(va))
    again = WeightedEnsemble(members, n_iter=30).fit(va)
    assert np.array_equal(again.weights_, ens.weights_)


def test_weighted_with_log_loss_and_fit_predictions(members, splits):
    _, va = splits
    preds = [m.predict(va) for m in members]
    ens = WeightedEnsemble(members, metric="log_loss", n_iter=20).fit_predictions(preds, as_data(va).y)
    losses = [m.score(va, "log_loss") for m in members]
    assert ens.score(va) <= min(losses) + 1e-12
    assert ens.scores_[0] == pytest.approx(min(losses))
    with pytest.raises(ValueError, match="member 2:SklearnModel returned 5 predictions for"):
        ens.fit_predictions([preds[0], preds[1], preds[2][:5]], as_data(va).y)
    with pytest.raises(ValueError, match="predictions for 2 members"):
        ens.fit_predictions(preds[:2], as_data(va).y)


def test_mean_ensemble_and_report(members, splits, capsys):
    _, va = splits
    ens = MeanEnsemble(members).fit(va)
    expected = np.mean([m.predict(va) for m in members], axis=0)
    assert np.allclose(ens.predict(va), expected)
    frame = ens.report(va)
    # returned, not printed: print(ens.report()) and a notebook cell show it once
    assert frame.height == 4 and frame["model"][-1] == "MeanEnsemble" and capsys.readouterr().out == ""
    assert ens.print_report(va) is None
    out = capsys.readouterr().out
    assert out.count("MeanEnsemble") == 1 and all(str(m) in out for m in frame["model"].to_list())
    with pytest.raises(ValueError, match="weights must be 3"):
        MeanEnsemble(members, weights=[1, 2])


def test_class_order_aligned_by_label(members, splits):
    _, va = splits
    rf = members[0]
    flipped = Wrapped(rf, "flipped", reverse=True)
    assert list(flipped.classes_) != list(rf.classes_)
    ens = MeanEnsemble([rf, flipped])
    assert np.allclose(ens.predict(va), rf.predict(va))


def test_nan_and_row_mismatch_name_the_member(members, splits):
    _, va = splits
    with pytest.raises(ValueError, match=r"member nanny predicted 2 NaN/inf values \(first at row 7\)"):
        MeanEnsemble([members[0], Wrapped(members[1], "nanny", nan_row=7)]).predict(va)
    with pytest.raises(ValueError, match="member short returned"):
        WeightedEnsemble([members[0], Wrapped(members[1], "short", drop_rows=3)]).fit(va)


def test_members_on_different_columns_or_procs(members, splits):
    tr, va = splits
    no_age = RandomForest("classification", n_estimators=5, n_jobs=1).fit(
        as_data(tr.xs.drop("age"), y=as_data(tr).y, cat_names=tr.cat_names))
    with pytest.raises(ValueError, match=r"different columns: 0:RandomForest has \['age'\]"):
        WeightedEnsemble([members[0], no_age])
    # same columns, but processed by another Tabular (no Normalize): the procs signature differs
    unnormalised = adult_tab(12000, (Categorify, FillMissing))
    assert unnormalised.train.xs.columns == tr.xs.columns
    other = RandomForest("classification", n_estimators=5, n_jobs=1).fit(unnormalised.train)
    with pytest.raises(ValueError, match="different procs"):
        MeanEnsemble([members[0], other])
    with pytest.raises(ValueError, match="different procs"):
        MeanEnsemble(members).predict(unnormalised.valid)
    with pytest.raises(DataError, match=r"the model's input column\(s\) \['age'\] missing from the data"):
        MeanEnsemble(members).predict(va.xs.drop("age"))
    reg = RandomForest("regression", n_estimators=5, n_jobs=1).fit(as_data(tr.xs, y=np.arange(len(tr.xs)) * 1.0))
    with pytest.raises(ValueError, match="members mix tasks"):
        MeanEnsemble([members[0], reg])
    with pytest.raises(NotFittedError, match="not fitted"):
        WeightedEnsemble([members[0], RandomForest("classification")])
    with pytest.raises(ValueError, match="n_iter"):
        WeightedEnsemble(members, n_iter=0)
    with pytest.raises(ValueError, match="metric='rmse' is a regression metric"):
        WeightedEnsemble(members, metric="rmse")


def test_export_load_whole_ensemble(members, splits, tmp_path):
    _, va = splits
    ens = WeightedEnsemble(members, n_iter=10).fit(va)
    back = load_model(ens.export(tmp_path / "ens.pipekit"))
    assert isinstance(back, WeightedEnsemble)
    # the procs travel with the ensemble: raw rows -> processed inputs -> same predictions
    raw = pl.read_csv(path("adult_sample") / "adult.csv").head(12000)[va.idxs[:50]]
    processed = back.processor().transform(raw)
    assert np.allclose(back.predict(processed), ens.predict(va.xs[:50]))
    assert np.array_equal(back.weights_, ens.weights_)
    assert np.allclose(back.predict(va), ens.predict(va))
    mean = MeanEnsemble(members[:2])
    assert np.allclose(load_model(mean.export(tmp_path / "m.pipekit")).predict(va), mean.predict(va))


def test_regression_weighted_ensemble(splits):
    tr, va = splits
    target = "education-num"
    mk = lambda s: as_data(s.xs.drop(target), y=s.xs[target].to_numpy(), cat_names=s.cat_names)  # noqa: E731
    dtr, dva = mk(tr), mk(va)
    rf = RandomForest("regression", n_estimators=10, max_samples=4000, n_jobs=1).fit(dtr)
    gbm = GBM("regression", learning_rate=0.2, n_estimators=150, n_jobs=1).fit(dtr, dva)
    ens = WeightedEnsemble([rf, gbm], n_iter=20).fit(dva)
    assert ens.score(dva) <= min(rf.score(dva), gbm.score(dva))
    assert ens.report_.columns == ["model", "rmse", "weight"]


def test_stacking_fits_members_and_is_reproducible(splits, tmp_path):
    tr, va = splits
    tr_small = as_data(tr).take(np.arange(3000))

    def make():
        return StackingEnsemble([RandomForest("classification", n_estimators=8, n_jobs=1, oob_score=False),
                                 GBM("classification", learning_rate=0.2, n_estimators=60, n_jobs=1)],
                                n_folds=3, seed=1)

    ens = make().fit(tr_small, va)
    assert ens.oob_predictions_.shape == (2, 3000, 2)
    assert np.allclose(ens.oob_predictions_.sum(2), 1)  # every training row got an out-of-fold prediction
    acc = ens.score(va)
    assert acc > 0.8 and ens.report_["model"][-1] == "StackingEnsemble"
    assert np.array_equal(make().fit(tr_small, va).predict(va), ens.predict(va))
    # Caruana selection over the out-of-fold predictions instead of a validation split
    oof_selected = WeightedEnsemble(ens.members_, n_iter=10).fit_predictions(list(ens.oob_predictions_), tr_small.y)
    assert oof_selected.weights_.sum() == pytest.approx(1.0) and oof_selected.score(va) > 0.8
    back = load_model(ens.export(tmp_path / "stack.pipekit"))
    assert np.allclose(back.predict(va), ens.predict(va))
    passthrough = StackingEnsemble([GBM("classification", learning_rate=0.2, n_estimators=40, n_jobs=1)],
                                   n_folds=2, passthrough=True).fit(tr_small)
    assert passthrough.meta_model_.feature_names_ == [f"m{j}" for j in range(1 + len(tr.xs.columns))]
    with pytest.raises(ParameterError, match="n_folds=1 is not accepted"):
        StackingEnsemble([RandomForest("classification")], n_folds=1)


def test_members_named_by_dict(splits, tmp_path):
    tr, va = splits
    forest = RandomForest("classification", n_estimators=5, n_jobs=1, oob_score=False).fit(tr)
    boost = GBM("classification", n_estimators=30, learning_rate=0.2, n_jobs=1).fit(tr)
    ens = WeightedEnsemble({"forest": forest, "boost": boost}, n_iter=5).fit(va)
    assert ens.report_["model"].to_list()[:2] == ["forest", "boost"]  # by key, as every message names them
    back = load_model(ens.export(tmp_path / "named.pipekit"))
    assert [m.name for m in back.members] == ["forest", "boost"]
    with pytest.raises(ValueError, match="non-empty list of models or a dict"):
        MeanEnsemble(forest)


def test_weighted_selection_stops_at_its_time_limit_with_the_best_mix_so_far(members, splits):
    _, va = splits
    free = WeightedEnsemble(members, n_iter=40).fit(va)
    assert not free.stopped_on_time_ and len(free.selection_) == 40
    # no time at all: the first step (the best single member) is still taken
    cut = WeightedEnsemble(members, n_iter=40, time_limit=1e-9).fit(va)
    assert cut.stopped_on_time_ and cut.selection_ == free.selection_[:1]
    assert cut.weights_.tolist() == [1.0 if i == free.selection_[0] else 0.0 for i in range(3)]
    roomy = WeightedEnsemble(members, n_iter=40, time_limit=600).fit(va)
    assert not roomy.stopped_on_time_ and roomy.weights_.tolist() == free.weights_.tolist()


def test_an_ensemble_refuses_raw_rows_and_takes_processed_ones(tmp_path):
    from sklearn.datasets import load_diabetes

    from pipekit.data.splitters import RandomSplitter
    from pipekit.tabular import Normalize, Tabular

    # an all-numeric table: raw rows have every column a processed split has, only not normalised
    df = pl.from_pandas(load_diabetes(as_frame=True, scaled=False).frame)
    tab = Tabular(df, procs=[FillMissing, Normalize], cont_names=[c for c in df.columns if c != "target"],
                  y_names="target", splits=RandomSplitter(0.2, seed=0))
    gbm = GBM("regression", n_estimators=50, n_jobs=1).fit(tab.train)
    rf = RandomForest("regression", n_estimators=20, n_jobs=1).fit(tab.train)
    ens = MeanEnsemble([gbm, rf]).fit(tab.train)
    good = ens.predict(ens.process(df.head(100)))
    np.testing.assert_allclose(ens.predict(tab.valid.xs), ens.predict(tab.valid))  # processed rows as a frame
    np.testing.assert_allclose(ens.predict(ens.process(df.head(1))), good[:1])   # one row, an extreme one too
    first = df.to_pandas().iloc[0]                                               # a pandas row, as tab.new takes it
    np.testing.assert_allclose(ens.predict(ens.process(first)), good[:1])
    np.testing.assert_allclose(ens.predict(ens.process(df.row(0, named=True))), good[:1])  # a dict row
    extreme = tab.valid.xs.with_columns(pl.col("s1") * 0 + 11.0)                 # 11 standard units on one column
    assert ens.predict(extreme).shape == (len(extreme),)
    for raw in (df.head(100), df.head(1).drop("target")):
        with pytest.raises(DataError, match=r"these rows look unprocessed: column 'age' has a median of .*raw mean "
                                            r"48.* ens.predict\(ens.process\(df\)\)"):
            ens.predict(raw)
    back = load_model(ens.export(tmp_path / "ens.pipekit"))  # the check needs only what the file holds
    with pytest.raises(DataError, match="look unprocessed"):
        back.predict(df.head(5))
    np.testing.assert_allclose(back.predict(back.process(df.head(100))), good)


def test_raw_rows_whose_ids_fall_among_the_category_codes_are_refused(tmp_path):
    """Rossmann rows with only category inputs (day of week 1..7, promo and school holiday 0/1) and no normalised
    column: every raw value is also a valid code (8 and 3 of them), so a code range check passes, yet a raw promo
    of 0 read as a code is the missing-value category. A backend and its ensemble refuse such a frame by the type
    the procs write codes in (the backend predicted from it), and take processed rows, as a split or a bare frame."""
    from pipekit.data.splitters import RandomSplitter
    from pipekit.ensemble import BaggedModel
    from pipekit.tabular import Tabular

    df = pl.read_csv(path("rossmann_sample") / "train.csv", schema_overrides={"StateHoliday": pl.String})
    df = df.filter(pl.col("Open") == 1).sample(3000, seed=0).select("DayOfWeek", "Promo", "SchoolHoliday", "Sales")
    cats = ["DayOfWeek", "Promo", "SchoolHoliday"]
    tab = Tabular(df, procs=[Categorify, FillMissing], cat_names=cats, cont_names=[], y_names="Sales",
                  splits=RandomSplitter(0.2, seed=0))
    gbm = GBM("regression", n_estimators=50, n_jobs=1).fit(tab.train)
    rf = RandomForest("regression", n_estimators=20, n_jobs=1).fit(tab.train)
    raw = df[tab.valid_idx[:50]]
    assert raw["Promo"].min() == 0 and raw["DayOfWeek"].max() == 7  # inside the 3 and 8 codes
    ens = MeanEnsemble([gbm, rf]).fit(tab.train)
    bag = BaggedModel(GBM("regression", n_estimators=30, n_jobs=1), n_folds=3).fit(tab.train)
    unfitted = MeanEnsemble([bag])  # never fitted on a split: the bagged member's procs tell
    for e in (gbm, bag, ens, unfitted, load_model(ens.export(tmp_path / "ens.pipekit"))):
        good = e.predict(tab.valid)[:50]
        np.testing.assert_allclose(e.predict(tab.new(raw)), good)
        if not isinstance(e, (GBM, BaggedModel)):
            np.testing.assert_allclose(e.predict(e.process(raw)), good)
        np.testing.assert_allclose(e.predict(tab.valid.xs)[:50], good)           # processed rows as a frame
        np.testing.assert_allclose(e.predict(pl.from_pandas(tab.valid.xs.to_pandas()))[:50], good)
        for rows in (raw, raw.drop("Sales")):
            with pytest.raises(DataError, match=r"these rows look unprocessed: category column 'DayOfWeek' is Int64, "
                                                r"where .* its 8 category codes as Int8; pass the rows processed by "
                                                r"the same Tabular \(tab.new\(df\), in the session that built it\), or "
                                                r"for an ensemble.*ens.predict\(ens.process\(df\)\)"):
                e.predict(rows)


def test_weights_are_never_chosen_on_the_rows_a_member_was_fitted_on():
    """Members a stack refitted on adult's training rows (and the stack itself) record those rows: selecting
    weights on them is refused, naming the members and the fix, for the members alone, the stack, and a
    backend fitted on them; the valid split is taken."""
    from sklearn.linear_model import LogisticRegression

    from pipekit.backends.data import rows_signature

    tab = adult_tab(3000)
    stack = StackingEnsemble({"gbm": GBM("classification", n_estimators=30, n_jobs=1),
                              "rf": RandomForest("classification", n_estimators=10, n_jobs=1)}, n_folds=3).fit(tab.train)
    sig = rows_signature(as_data(tab.train))
    assert stack.train_rows_signature_ == sig and [m.train_rows_signature_ for m in stack.members_] == [sig, sig]
    fix = (r"select on rows none of them was fitted on \(rows held out of their training, such as tab.valid for members "
           r"fitted on tab.train\), or on out-of-fold predictions of these rows: bag the members \(BaggedModel\) on them "
           r"and call ens.fit\(\), or give ens.fit_predictions\(preds, y\)")
    with pytest.raises(DataError, match=r"member\(s\) \['gbm', 'rf'\] were fitted on these rows .*" + fix):
        WeightedEnsemble(stack.members_, n_iter=5).fit(tab.train)
    lr = SklearnModel(LogisticRegression(max_iter=300), "classification").fit(tab.valid)
    with pytest.raises(DataError, match=r"member\(s\) \['stack'\] were fitted on these rows"):
        WeightedEnsemble({"stack": stack, "lr": lr}, n_iter=5).fit(tab.train)
    gbm = GBM("classification", n_estimators=30, n_jobs=1).fit(tab.train)
    assert gbm.train_rows_signature_ == sig  # every backend records its training rows
    with pytest.raises(DataError, match=r"member\(s\) \['0:GBM'\] were fitted on these rows"):
        WeightedEnsemble([gbm, lr], n_iter=5).fit(tab.train)
    with pytest.raises(DataError, match="were fitted on these rows"):  # a bare frame of the same rows too
        WeightedEnsemble([gbm, lr], n_iter=5).fit(as_data(tab.train.xs, y=as_data(tab.train).y))
    # the same rows in another order, or a part of them, are the rows the member memorised too (in this session:
    # a loaded member keeps only the signature of its rows in order)
    raw = pl.read_csv(path("adult_sample") / "adult.csv").head(3000)
    train_idx, valid_idx = np.asarray(tab.train_idx), np.asarray(tab.valid_idx)
    for rows in (train_idx[::-1], train_idx[: int(len(train_idx) * 0.8)]):
        with pytest.raises(DataError, match=r"\['0:GBM'\] were fitted on these rows \(all of them are training "
                                            r"rows of '0:GBM'\)"):
            WeightedEnsemble([gbm, lr], n_iter=5).fit(tab.new(raw[rows]))
    # rows of which a member saw a part are refused too, naming the share: a third seen (weights chosen on them
    # favour what the members memorised)
    mixed = tab.new(raw[np.r_[valid_idx, train_idx[: len(valid_idx) // 2]]])
    with pytest.raises(DataError, match=r"\['gbm', 'rf'\] were fitted on these rows \(about 3\d% of them are training "
                                        r"rows of 'gbm' and 'rf'; rows a table repeats are taken for up to 5%\)"):
        WeightedEnsemble(stack.members_, n_iter=5).fit(mixed)
    ens = WeightedEnsemble({"stack": stack, "gbm": gbm}, n_iter=5).fit(tab.valid)
    assert ens.selected_on_ == "data" and ens.weights_.sum() == pytest.approx(1.0)


def test_processed_rows_in_any_form_a_backend_takes_are_taken_by_an_ensemble_too():
    """With normalised columns to speak for the rows, a processed row as a dict, a pandas row (codes as floats)
    or codes widened to Int64 are what they look like: the members take them, and so does their ensemble."""
    tab = adult_tab(3000)
    rf = RandomForest("classification", n_estimators=10, n_jobs=1).fit(tab.train)
    gbm = GBM("classification", n_estimators=20, n_jobs=1).fit(tab.train)
    ens = WeightedEnsemble({"rf": rf, "gbm": gbm}, n_iter=5).fit(tab.valid)
    xs = tab.valid.xs
    expected = ens.predict(tab.valid)[:1]
    widened = xs.head(1).with_columns(pl.col(c).cast(pl.Int64) for c in tab.cat_names)
    for row in (xs.row(0, named=True), xs.to_pandas().iloc[0], widened):
        np.testing.assert_allclose(ens.predict(row), expected, rtol=1e-6)
    # numbers in the data's own units are still refused, whatever the type of the codes
    norm = next(p for p in ens.known_processor().procs if vars(p).get("means_"))
    raw_units = xs.head(5).with_columns(pl.col(c) * norm.stds_[c] + norm.means_[c] for c in norm.means_)
    with pytest.raises(DataError, match="these rows look unprocessed: column '.*' has a median of"):
        ens.predict(raw_units)


def test_a_learner_member_is_refused_by_its_key_pointing_to_torch_tabular(members):
    from pipekit.tabular.model import tabular_learner

    learn = tabular_learner(adult_tab(600).dataloaders(bs=64), layers=[10])
    with pytest.raises(ParameterError, match=r"member 'net' \(Learner\).*TorchTabular\(task"):
        MeanEnsemble({"rf": members[0], "net": learn})
    assert not hasattr(learn, "name")  # the refused object is left as it was
    with pytest.raises(ParameterError, match=r"member 1 \(Learner\).*TorchTabular\(task"):
        WeightedEnsemble([members[0], learn])
    with pytest.raises(ParameterError, match=r"member 'lr' \(LogisticRegression\)"):
        from sklearn.linear_model import LogisticRegression

        StackingEnsemble({"rf": members[0], "lr": LogisticRegression()})


def test_members_of_different_targets_are_named_as_such():
    from pipekit.data import RandomSplitter
    from pipekit.tabular import Tabular

    raw = pl.read_csv(path("adult_sample") / "adult.csv").head(1000)
    conts = ["age", "education-num", "hours-per-week"]
    by = {y: Tabular(raw, procs=[Categorify, FillMissing], cat_names=["workclass"], cont_names=conts, y_names=y,
                     splits=RandomSplitter(0.2, seed=1)) for y in ("salary", "sex")}
    salary, sex = (GBM("classification", n_estimators=5, n_jobs=1).fit(by[y].train) for y in ("salary", "sex"))
    with pytest.raises(ParameterError, match=r"members predict different targets: 0:GBM predicts \['salary'\], "
                                             r"1:GBM predicts \['sex'\]; an ensemble combines predictions of one"):
        WeightedEnsemble([salary, sex])


def test_a_member_keeps_a_sample_of_its_rows_and_still_tells_them_apart_in_a_large_table():
    """A backend keeps the hashes of 4096 of its training rows, whatever the table's size; from them an ensemble
    still tells the training rows in another order or in part (9,600 rows here), or mixed with new rows, from
    rows all new."""
    from pipekit.backends.data import ROW_SAMPLE

    tab = adult_tab(12_000)
    train, valid = as_data(tab.train), as_data(tab.valid)
    gbm = GBM("classification", n_estimators=5, n_jobs=1).fit(train)
    other = GBM("classification", n_estimators=5, n_jobs=1).fit(valid)
    assert len(train) > ROW_SAMPLE and len(gbm._train_row_hashes) == ROW_SAMPLE and gbm._train_rows == len(train)
    n = len(train)
    for rows in (np.arange(n)[::-1], np.arange(int(n * 0.7))):
        with pytest.raises(DataError, match=r"\['0:GBM'\] were fitted on these rows \(all of them"):
            WeightedEnsemble([gbm, other], n_iter=5).fit(train.take(rows))
    fresh = GBM("classification", n_estimators=5, n_jobs=1).fit(train.take(np.arange(n // 2)))
    # the second half of the training rows, with a third as many of the first: a quarter seen by `fresh`, refused
    mixed = train.take(np.r_[np.arange(n // 2, n), np.arange(n // 6)])
    with pytest.raises(DataError, match=r"\['0:GBM'\] were fitted on these rows \(about 2\d% of them"):
        WeightedEnsemble([fresh, other], n_iter=5).fit(mixed)
    # the second half alone: rows `fresh` never saw
    assert WeightedEnsemble([fresh, other], n_iter=5).fit(train.take(np.arange(n // 2, n))).selected_on_ == "data"
