"""Interpretation tools on processed adult: permutation importance, partial dependence, waterfalls,
column clusters, drop_redundant, adversarial validation and pruning."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from test_models_helpers import adult

from pipekit.backends import GBM, RandomForest, as_data
from pipekit.core import DataError, ParameterError
from pipekit.ensemble import MeanEnsemble
from pipekit.inspection import (cluster_columns, drop_redundant, out_of_domain, partial_dependence,
                                permutation_importance, plot_importance, plot_partial_dependence,
                                prune_features, waterfall_plot)

SIGNAL = {"relationship", "marital-status", "education-num", "age", "education", "occupation"}


def with_noise(split, seed):
    d = as_data(split)
    rng = np.random.default_rng(seed)
    xs = d.xs.with_columns(pl.Series("noise", rng.normal(size=len(d)).astype(np.float32)),
                           (pl.col("age") * 2 + 1).alias("age_copy"))
    return as_data(xs, y=d.y, cat_names=d.cat_names)


@pytest.fixture(scope="module")
def data():
    tr, va = adult()
    return tr, va, with_noise(tr, 0), with_noise(va, 1)


@pytest.fixture(scope="module")
def rf(data):
    _, _, ntr, _ = data
    return RandomForest("classification", n_estimators=20, n_jobs=1).fit(ntr)


def test_permutation_importance_ranks_signal_over_noise(rf, data, tmp_path):
    _, _, _, nva = data
    imp = permutation_importance(rf, nva, n_repeats=2, seed=0)
    assert imp.columns == ["feature", "importance", "std", "ci_low", "ci_high"]
    assert imp["importance"].is_sorted(descending=True)
    assert imp["feature"][0] in SIGNAL
    noise = imp.filter(pl.col("feature") == "noise").row(0, named=True)
    assert abs(noise["importance"]) < 0.01 < imp["importance"][0]
    assert (imp["ci_low"] <= imp["importance"]).all() and (imp["importance"] <= imp["ci_high"]).all()
    again = permutation_importance(rf, nva, n_repeats=2, seed=0, features=imp["feature"][:3].to_list())
    assert again.equals(imp.head(3))  # seeded -> reproducible
    out = plot_importance(imp, path=tmp_path / "imp.png")
    assert out.exists() and out.stat().st_size > 1000
    assert plot_importance(rf, path=tmp_path / "mdi.png").exists()
    with pytest.raises(ValueError, match="n_repeats"):
        permutation_importance(rf, nva, n_repeats=0)
    with pytest.raises(DataError, match="'nope'"):
        permutation_importance(rf, nva, features=["nope"])


def test_permutation_importance_for_ensemble_and_regression(data):
    tr, va, _, _ = data
    rf = RandomForest("classification", n_estimators=10, n_jobs=1).fit(tr)
    gbm = GBM("classification", n_estimators=60, learning_rate=0.1, n_jobs=1).fit(tr)
    imp = permutation_importance(MeanEnsemble([rf, gbm]), va, n_repeats=1, seed=0, features=["relationship", "fnlwgt"])
    assert imp["feature"].to_list() == ["relationship", "fnlwgt"]
    target = "education-num"
    d = lambda s: as_data(s.xs.drop(target), y=s.xs[target].to_numpy(), cat_names=s.cat_names)  # noqa: E731
    reg = GBM("regression", n_estimators=60, learning_rate=0.1, n_jobs=1).fit(d(tr))
    rimp = permutation_importance(reg, d(va), metric="rmse", n_repeats=2, seed=0)
    # rmse is lower-is-better: a helpful column still gets a positive importance
    assert rimp["feature"][0] == "education" and rimp["importance"][0] > 0.5


def test_partial_dependence_1d_matches_manual_and_plots(rf, data, tmp_path):
    tr, va, _, nva = data
    pd = partial_dependence(rf, nva, "age", kind="both", grid=8, n_rows=400)
    g = len(pd.grid[0])
    assert pd.average.shape == (g,) and pd.individual.shape == (400, g)
    assert np.allclose(pd.individual.mean(0), pd.average)
    labels = np.asarray(pd.grid_labels[0])
    assert pd.output == "P(>=50k)"
    # the manual computation on the same sampled rows for the first grid value
    rows = np.sort(np.random.default_rng(0).choice(len(nva), 400, replace=False))
    xs = nva.xs[rows].with_columns(pl.lit(pd.grid[0][0]).cast(pl.Float32).alias("age"))
    assert rf.predict(xs)[:, 1].mean() == pytest.approx(pd.average[0])
    assert plot_partial_dependence(pd, tmp_path / "age.png").exists()
    # grid labels are real ages when the split knows its Normalize state
    pd_real = partial_dependence(rf, _with_processor(nva, va), "age", grid=8, n_rows=400)
    ages = np.asarray(pd_real.grid_labels[0])
    assert 17 <= ages.min() < ages.max() <= 90
    assert pd_real.average[np.argmin(np.abs(ages - 45))] > pd_real.average[0]  # 45-year-olds earn more than 20s
    assert labels.shape == ages.shape


def _with_processor(d, split):
    from dataclasses import replace

    return replace(d, processor=split.processor)


def test_partial_dependence_categorical_and_2d(data, tmp_path):
    tr, va, _, _ = data
    gbm = GBM("classification", n_estimators=80, learning_rate=0.1, n_jobs=1).fit(tr)
    pd = partial_dependence(gbm, va, "education", n_rows=300)
    labels = [str(v).strip() for v in pd.grid_labels[0]]  # adult.csv values carry a leading space
    assert pd.categorical == (True,) and "Doctorate" in labels and "HS-grad" in labels
    assert pd.average[labels.index("Doctorate")] > pd.average[labels.index("HS-grad")]
    assert plot_partial_dependence(pd, tmp_path / "edu.png").exists()
    pd2 = partial_dependence(gbm, va, ("age", "education-num"), grid=5, n_rows=200)
    assert pd2.average.shape == (len(pd2.grid[0]), len(pd2.grid[1]))
    assert plot_partial_dependence(pd2, tmp_path / "two.png").exists()
    with pytest.raises(ParameterError, match="kind='mean' is not accepted"):
        partial_dependence(gbm, va, "age", kind="mean")
    with pytest.raises(ValueError, match="2-D partial dependence"):
        partial_dependence(gbm, va, ("age", "fnlwgt"), kind="both")
    with pytest.raises(DataError, match="'salary'"):
        partial_dependence(gbm, va, "salary")
    with pytest.raises(ValueError, match="target_class"):
        partial_dependence(gbm, va, "age", target_class="rich")


def test_waterfall_plots(rf, data, tmp_path):
    tr, _, _, nva = data
    c = rf.contributions(nva.xs[:3])
    assert waterfall_plot(c, row=1, top=5, path=tmp_path / "rf.png").stat().st_size > 1000
    gbm = GBM("classification", n_estimators=40, learning_rate=0.1, n_jobs=1).fit(tr)
    assert waterfall_plot(gbm.contributions(nva.xs[:3]), row=0, path=tmp_path / "gbm.png").exists()
    with pytest.raises(ParameterError, match="row=5"):
        waterfall_plot(c, row=5)


def test_cluster_columns_finds_the_duplicate(data, tmp_path):
    _, _, ntr, _ = data
    xs = ntr.xs.with_columns(pl.lit(1.0).alias("constant"))
    with pytest.warns(UserWarning, match=r"left out 1 column.*\['constant'\]"):
        cl = cluster_columns(as_data(xs, cat_names=ntr.cat_names), path=tmp_path / "dendro.png")
    assert (tmp_path / "dendro.png").exists()
    pairs = cl.pairs(0.95)
    assert pairs.row(0)[:2] in (("age", "age_copy"), ("age_copy", "age"))
    assert pairs["spearman"][0] == pytest.approx(1.0)
    assert cl.constant == ["constant"] and "constant" not in cl.columns
    assert cl.linkage.shape == (xs.width - 2, 4)


def test_drop_redundant_reports_changes(data):
    _, _, ntr, nva = data
    template = RandomForest("classification", n_estimators=10, max_samples=4000, n_jobs=1)
    rep = drop_redundant(template, ntr, nva, ["age_copy", "relationship"])
    assert rep["dropped"].to_list() == ["(none)", "age_copy", "relationship", "age_copy+relationship"]
    assert rep["change"][0] == 0
    assert abs(rep["change"][1]) < 0.015  # its twin 'age' carries the same information
    oob = drop_redundant(template, ntr, None, ["age_copy"])
    assert 0.75 < oob["score"][0] < 0.9
    with pytest.raises(DataError, match="'ghost'"):
        drop_redundant(template, ntr, nva, ["ghost"])


def test_out_of_domain(data):
    tr, va, _, _ = data
    same = out_of_domain(tr, va, n_estimators=20, n_jobs=1)
    assert 0.35 < same.auc < 0.6  # a random split: the forest cannot tell the sets apart
    d = as_data(tr)
    order = np.argsort(d.xs["age"].to_numpy(), kind="stable")
    young, old = d.take(order[:4000]), d.take(order[-2000:])
    shifted = out_of_domain(young, old, n_estimators=20, n_jobs=1)
    assert shifted.auc > 0.95 and shifted.separating(1) == ["age"]
    with pytest.raises(ValueError, match="rows in both sets"):
        out_of_domain(tr, d.take(np.arange(0)))


def test_prune_features(rf, data):
    _, _, ntr, nva = data
    res = prune_features(rf, ntr, nva, threshold=0.05)
    assert set(res.kept) | set(res.dropped) == set(rf.feature_names_)
    assert res.dropped and set(res.model.feature_names_) == set(res.kept)
    assert abs(res.score_after - res.score_before) < 0.03
    assert "dropped" in str(res)
    with pytest.raises(ValueError, match="threshold"):
        prune_features(rf, ntr, nva, threshold=1.5)


def test_partial_dependence_plot_of_many_stores_labels_a_few(monkeypatch, tmp_path):
    import pipekit.inspection.explain as explain
    from pipekit.datasets import path
    from pipekit.tabular import Categorify, Tabular

    df = pl.read_csv(path("rossmann_sample") / "train.csv", schema_overrides={"StateHoliday": pl.String})
    df = df.filter(pl.col("Open") == 1).head(6000)
    tab = Tabular(df, procs=[Categorify], cat_names=["Store"], cont_names=["Promo"], y_names="Sales",
                  splits=(np.arange(5000), np.arange(5000, 6000)))
    forest = RandomForest("regression", n_estimators=5, n_jobs=1).fit(tab.train)
    pd = partial_dependence(forest, tab.valid, "Store", n_rows=None)
    assert len(pd.grid[0]) > 80  # many stores: a label per store would overlap
    drawn = []
    real = explain.savefig_or_show
    monkeypatch.setattr(explain, "savefig_or_show", lambda fig, path, name: (drawn.append(
        [t.get_text() for t in fig.axes[0].get_xticklabels()]), real(fig, path, name))[1])
    assert plot_partial_dependence(pd, tmp_path / "stores.png").exists()
    pd2 = partial_dependence(forest, tab.valid, ("Store", "Promo"), n_rows=None)
    plot_partial_dependence(pd2, tmp_path / "stores2.png")
    for labels in drawn:  # 1-D and 2-D thin their labels alike, starting from the first level
        assert 10 <= len(labels) <= 20 and labels[0] == str(pd.grid_labels[0][0])
    assert drawn[0] == drawn[1]


def test_waterfall_names_the_class_plainly_and_refuses_an_unknown_one(rf, data, monkeypatch, tmp_path):
    import pipekit.inspection.explain as explain

    tr, _, _, nva = data
    titles = []
    real = explain.savefig_or_show
    monkeypatch.setattr(explain, "savefig_or_show", lambda fig, path, name: (titles.append(
        fig.axes[0].get_title()), real(fig, path, name))[1])
    gbm = GBM("classification", n_estimators=40, learning_rate=0.1, n_jobs=1).fit(tr)
    g = gbm.contributions(nva.xs[:3])
    waterfall_plot(g, row=0, path=tmp_path / "pos.png")
    waterfall_plot(g, row=0, cls="<50k", path=tmp_path / "neg.png")
    waterfall_plot(rf.contributions(nva.xs[:3]), row=0, cls="<50k", path=tmp_path / "rf.png")
    assert titles == ["raw score (log-odds) of class >=50k", "raw score (log-odds) of class <50k",
                      "probability of class <50k"]
    for c in (g, rf.contributions(nva.xs[:3])):
        with pytest.raises(ParameterError, match=r"cls='yes' is not one of the model's classes \['<50k', '>=50k'\]"):
            waterfall_plot(c, row=0, cls="yes")


def test_prune_and_drop_redundant_refit_ensembles_member_by_member(data):
    from pipekit.ensemble import BaggedModel, WeightedEnsemble

    _, _, ntr, nva = data
    rf = RandomForest("classification", n_estimators=10, n_jobs=1).fit(ntr)
    gbm = GBM("classification", n_estimators=40, learning_rate=0.1, n_jobs=1).fit(ntr)
    columns = list(rf.feature_names_)
    chosen = WeightedEnsemble({"rf": rf, "gbm": gbm}).fit(nva)
    imp = permutation_importance(chosen, nva, n_repeats=1, seed=0)
    res = prune_features(chosen, ntr, nva, threshold=0.02, importance=imp)
    assert "noise" in res.dropped and res.kept
    assert isinstance(res.model, WeightedEnsemble) and res.model.selected_on_ == "data"
    assert [m.name for m in res.model.members] == ["rf", "gbm"]
    assert all(m not in (rf, gbm) and sorted(m.feature_names_) == sorted(res.kept) for m in res.model.members)
    assert res.model.weights_.sum() == pytest.approx(1.0)
    assert abs(res.score_after - res.score_before) < 0.02
    assert rf.feature_names_ == columns  # the ensemble given is left as it was
    mean = MeanEnsemble([rf, gbm])
    rep = drop_redundant(mean, ntr, nva, ["age_copy"])
    assert rep["dropped"].to_list() == ["(none)", "age_copy"] and abs(rep["change"][1]) < 0.015
    with pytest.raises(ParameterError, match="pass valid="):
        drop_redundant(chosen, ntr, None, ["age_copy"])
    given = WeightedEnsemble([rf, gbm]).fit_predictions([rf.predict(nva), gbm.predict(nva)], nva.y)
    with pytest.raises(ParameterError, match="fit_predictions"):
        prune_features(given, ntr, nva, importance=imp)
    rows = ntr.take(np.arange(3000))
    bags = [BaggedModel(GBM("classification", n_estimators=20, n_jobs=1), n_folds=2).fit(rows),
            BaggedModel(RandomForest("classification", n_estimators=5, n_jobs=1), n_folds=2).fit(rows)]
    oof = WeightedEnsemble(bags).fit()
    small = prune_features(oof, rows, nva, threshold=0.02, importance=imp).model
    assert small.selected_on_ == "out_of_fold"  # chosen again on the new fold models' out-of-fold predictions
    assert all(len(b.oof_predictions_) == 3000 and "noise" not in b.feature_names_ for b in small.members)


def test_contributions_of_averaged_tree_models_add_up_to_their_prediction(rf, data, tmp_path):
    from pipekit.ensemble import BaggedModel, StackingEnsemble, TorchTabular, WeightedEnsemble
    from pipekit.inspection import contributions

    tr, va, ntr, nva = data
    rows = nva.take(np.arange(200))
    bag = BaggedModel(RandomForest("classification", n_estimators=5, n_jobs=1), n_folds=2).fit(ntr)
    assert contributions(rf, rows).values.shape == rf.contributions(rows).values.shape  # a tree model's own
    for ens in (bag, MeanEnsemble({"rf": rf, "bag": bag}, weights=[3, 1]), WeightedEnsemble([rf, bag]).fit(nva)):
        c = contributions(ens, rows)
        assert c.space == "probability" and c.classes.tolist() == ["<50k", ">=50k"]
        assert c.values.shape == (200, len(rf.feature_names_), 2)
        assert np.allclose(c.bias + c.values.sum(1), ens.predict(rows)) and np.allclose(c.prediction, ens.predict(rows))
        assert waterfall_plot(c, row=0, path=tmp_path / "ens.png").exists()
        assert np.array_equal(ens.contributions(rows).values, c.values)  # the method is the function
    target = "education-num"
    d = lambda s: as_data(s.xs.drop(target), y=s.xs[target].to_numpy(), cat_names=s.cat_names)  # noqa: E731
    reg = MeanEnsemble([GBM("regression", n_estimators=30, n_jobs=1).fit(d(tr)),
                        RandomForest("regression", n_estimators=5, n_jobs=1).fit(d(tr))])
    c = contributions(reg, d(va))  # a booster's and a forest's values add alike
    assert c.space == "value" and np.allclose(c.bias + c.values.sum(1), reg.predict(d(va)))
    gbm = GBM("classification", n_estimators=20, n_jobs=1).fit(ntr)
    with pytest.raises(ParameterError, match=r"member 1:GBM gives contributions in raw scores \(log-odds"):
        contributions(MeanEnsemble([rf, gbm]), rows)
    with pytest.raises(ParameterError, match=r"fold model 0 \(models_\[0\]\) gives contributions in raw scores"):
        contributions(BaggedModel(GBM("classification", n_estimators=10, n_jobs=1), n_folds=2).fit(ntr), rows)
    for model in (TorchTabular("classification"), StackingEnsemble([RandomForest("classification")])):
        with pytest.raises(ParameterError, match="no exact per-row contributions.*permutation_importance"):
            contributions(model, rows)
    with pytest.raises(ParameterError, match="no exact per-row contributions"):
        StackingEnsemble([RandomForest("classification")]).contributions(rows)
