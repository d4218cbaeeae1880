"""The book's chapter 9 and 13 code that fastai runs and pipekit refused, on the real data: tree-interpreter
contributions of a scikit-learn forest or tree fitted on ``to.train.xs`` (Rossmann, adult), ``ActivationStats``'
``stats`` / ``modules`` in fastai's layout (mnist_tiny, the book's conv stack), and ``TabularPandas``'s ``vocab``,
``fill_missing``, ``categorify``, ``normalize`` and ``all_col_names`` (adult; the expected values are those fastai
2.8.12 gives on the same rows)."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from sklearn.ensemble import (ExtraTreesClassifier, ExtraTreesRegressor, GradientBoostingRegressor,
                              RandomForestClassifier, RandomForestRegressor)
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor, ExtraTreeRegressor
from torch import nn

import pipekit.datasets as D
from pipekit.core import DataError, NotFittedError, ParameterError
from pipekit.inspection import contributions, waterfall_plot
from pipekit.tabular import Categorify, FillMissing, Normalize, TabularPandas, add_datepart, cont_cat_split

pytestmark = pytest.mark.data


# -- chapter 9: treeinterpreter on a scikit-learn forest --------------------------------------------------------
@pytest.fixture(scope="module")
def ross():
    """The book's Rossmann table (10 stores, log sales, date parts) split in time, as pandas."""
    path = D.path("rossmann_sample")
    df = pd.read_csv(path / "train.csv", low_memory=False).merge(pd.read_csv(path / "store.csv"), on="Store")
    df = df[df.Store.isin(sorted(df.Store.unique())[:10])].reset_index(drop=True)
    df = df[(df.Open == 1) & (df.Sales > 0)].drop(columns=["Customers"])
    df["Sales"] = np.log(df["Sales"])
    df = add_datepart(df, "Date")
    cond = (df.Year < 2015) | (df.Month < 6)
    cont, cat = cont_cat_split(df, 1, dep_var="Sales")
    return TabularPandas(df, [Categorify, FillMissing], cat, cont, y_names="Sales",
                         splits=(list(np.where(cond)[0]), list(np.where(~cond)[0])))


def treeinterpreter(m, X):
    """``treeinterpreter.predict(m, X)`` written out: per tree, each step down a row's path credits the change of
    the node value to the feature split on; averaged over the trees. Values of a regressor, class fractions of a
    classifier (the last axis)."""
    X = np.asarray(X, dtype=np.float32)
    trees = getattr(m, "estimators_", [m])
    bias, contrib = 0.0, 0.0
    for est in trees:
        with warnings.catch_warnings():  # a single tree fitted on a frame warns of the bare array
            warnings.simplefilter("ignore", UserWarning)
            paths = est.decision_path(X)
        t = est.tree_
        vals = t.value[:, 0, :]
        c = np.zeros((X.shape[0], X.shape[1], vals.shape[1]))
        for r in range(X.shape[0]):
            nodes = paths.indices[paths.indptr[r]:paths.indptr[r + 1]]
            for a, b in zip(nodes[:-1], nodes[1:]):
                c[r, t.feature[a]] += vals[b] - vals[a]
        bias, contrib = bias + vals[0], contrib + c
    return bias / len(trees), contrib / len(trees)


def test_contributions_of_the_books_sklearn_forest_are_treeinterpreters_and_sum_to_predict(ross, tmp_path):
    xs, y, valid_xs = ross.train.xs, ross.train.y, ross.valid.xs
    m = RandomForestRegressor(n_estimators=10, min_samples_leaf=5, max_features=0.5, random_state=0,
                              n_jobs=1).fit(xs, y)
    row = valid_xs.iloc[:5]
    c = contributions(m, row)
    assert c.space == "value" and c.feature_names == list(valid_xs.columns)
    assert c.values.shape == (5, valid_xs.shape[1]) and c.bias.shape == (5,)
    assert np.abs(c.bias + c.values.sum(1) - m.predict(row)).max() < 1e-9
    assert np.abs(c.prediction - m.predict(row)).max() < 1e-9
    bias, ti = treeinterpreter(m, row.values)
    assert np.abs(c.values - ti[:, :, 0]).max() < 1e-12 and np.allclose(c.bias, bias[0], rtol=0, atol=1e-12)
    # the book passes row.values; a processed split and a model fitted on an array read the same
    assert np.array_equal(contributions(m, row.values).values, c.values)
    assert contributions(m, row.values).feature_names == c.feature_names
    assert np.array_equal(contributions(m, ross.valid).values[:5], c.values)
    on_array = RandomForestRegressor(n_estimators=3, random_state=0, n_jobs=1).fit(xs.values, y.values)
    c2 = contributions(on_array, row)
    assert c2.feature_names == list(valid_xs.columns)
    assert np.abs(c2.bias + c2.values.sum(1) - on_array.predict(row.values)).max() < 1e-9
    assert contributions(on_array, row.values).feature_names[:2] == ["x0", "x1"]
    assert waterfall_plot(c, row=0, path=tmp_path / "w.png").exists()


@pytest.mark.parametrize("make", [lambda: ExtraTreesRegressor(n_estimators=5, min_samples_leaf=3, random_state=0),
                                  lambda: DecisionTreeRegressor(min_samples_leaf=25),
                                  lambda: ExtraTreeRegressor(random_state=0)])
def test_contributions_of_sklearn_extra_trees_and_single_trees_are_exact(ross, make):
    m = make().fit(ross.train.xs, ross.train.y)
    rows = ross.valid.xs.iloc[:40]
    c = contributions(m, rows)
    assert np.abs(c.bias + c.values.sum(1) - m.predict(rows)).max() < 1e-9
    bias, ti = treeinterpreter(m, rows.values)
    assert np.abs(c.values - ti[:, :, 0]).max() < 1e-12 and np.allclose(c.bias, bias[0], rtol=0, atol=1e-12)


@pytest.fixture(scope="module")
def adult():
    df = pd.read_csv(D.path("adult_sample") / "adult.csv").head(3000)
    return TabularPandas(df, [Categorify, FillMissing, Normalize], cat_names=["workclass", "education", "marital-status"],
                         cont_names=["age", "fnlwgt", "education-num"], y_names="salary",
                         splits=(list(range(2400)), list(range(2400, 3000))))


@pytest.mark.parametrize("make", [lambda: RandomForestClassifier(n_estimators=10, min_samples_leaf=5, random_state=0),
                                  lambda: ExtraTreesClassifier(n_estimators=5, random_state=0),
                                  lambda: DecisionTreeClassifier(min_samples_leaf=10)])
def test_contributions_of_sklearn_classifiers_sum_to_predict_proba_per_class(adult, make, tmp_path):
    labels = np.asarray(adult.vocab)[adult.train.y.values]  # the classes by name: '<50k', '>=50k'
    m = make().fit(adult.train.xs, labels)
    rows = adult.valid.xs.iloc[:60]
    c = contributions(m, rows)
    assert c.space == "probability" and c.classes.tolist() == ["<50k", ">=50k"] == m.classes_.tolist()
    assert c.values.shape == (60, rows.shape[1], 2) and c.bias.shape == (60, 2)
    assert np.abs(c.bias + c.values.sum(1) - m.predict_proba(rows)).max() < 1e-9
    bias, ti = treeinterpreter(m, rows.values)
    assert np.abs(c.values - ti).max() < 1e-12 and np.allclose(c.bias, bias, rtol=0, atol=1e-12)
    assert c.frame(0, cls=">=50k")["feature"].to_list()[0] in rows.columns
    assert waterfall_plot(c, row=0, cls=">=50k", path=tmp_path / "c.png").exists()


def test_contributions_refuse_what_has_no_tree_paths_or_the_wrong_columns(ross):
    xs, y = ross.train.xs, ross.train.y
    rows = ross.valid.xs.iloc[:3]
    with pytest.raises(NotFittedError, match="not fitted"):
        contributions(RandomForestRegressor(), rows)
    with pytest.raises(NotFittedError, match="not fitted"):
        contributions(DecisionTreeRegressor(), rows)
    gb = GradientBoostingRegressor(n_estimators=5).fit(xs, y)
    with pytest.raises(ParameterError, match="no exact per-row contributions.*permutation_importance"):
        contributions(gb, rows)
    two = RandomForestRegressor(n_estimators=2, random_state=0).fit(xs, np.c_[y, y])
    with pytest.raises(ParameterError, match="2 targets"):
        contributions(two, rows)
    m = RandomForestRegressor(n_estimators=2, random_state=0, n_jobs=1).fit(xs, y)
    with pytest.raises(DataError, match="missing"):
        contributions(m, rows.drop(columns=["Promo"]))
    with pytest.raises(DataError, match="shape"):
        contributions(m, rows.values[:, :5])
    on_array = RandomForestRegressor(n_estimators=2, random_state=0).fit(xs.values, y.values)
    with pytest.raises(DataError, match="without names"):
        contributions(on_array, rows.iloc[:, :5])


# -- chapter 13: ActivationStats in fastai's layout --------------------------------------------------------------
def book_cnn():
    """Chapter 13's conv stack (``simple_cnn`` of stride-2 convs with ReLU, then Flatten)."""
    def conv(ni, nf, ks=3, act=True):
        res = nn.Conv2d(ni, nf, stride=2, kernel_size=ks, padding=ks // 2)
        return nn.Sequential(res, nn.ReLU()) if act else res
    return nn.Sequential(conv(1, 8, ks=5), conv(8, 16), conv(16, 32), conv(32, 64), conv(64, 10, act=False), nn.Flatten())


def test_activation_stats_stats_and_modules_in_fastais_layout_agree_with_stats_(mnist_dls):
    import pipekit
    from pipekit.learn import ActivationStats, Callback, Learner

    class FirstBatch(Callback):  # the first training batch, as the model sees it
        def before_batch(self):
            if self.learn.training and not hasattr(self, "xb_"):
                self.xb_ = self.learn.xb[0].detach().clone()

    pipekit.set_seed(0)
    model = book_cnn()
    start = copy.deepcopy(model)
    first, cb = FirstBatch(), ActivationStats(with_hist=True)
    assert cb.modules is None and not hasattr(cb, "stats")  # as fastai's, before a fit
    learn = Learner(mnist_dls, model, loss_func=F.cross_entropy, cbs=[cb, first])
    learn.fit(1, 0.06)
    st = learn.activation_stats
    assert st is cb
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(st.modules) == 5 and all(a is b for a, b in zip(st.modules, convs))  # fastai: the hooked modules
    n = len(mnist_dls.train)
    assert len(st.stats) == n and all(len(b) == 5 for b in st.stats)  # one entry per batch, one dict per layer
    assert list(st.stats[0][0]) == ["mean", "std", "near_zero", "hist"]  # fastai's keys
    d = st.stats[-1][0]
    assert all(type(d[k]) is float for k in ("mean", "std", "near_zero"))
    assert isinstance(d["hist"], torch.Tensor) and tuple(d["hist"].shape) == (40,)
    # the same numbers as stats_ / hist_, layer by layer in the order of modules
    for j, name in enumerate(st.stats_):
        rows = st.stats.itemgot(j)
        got = np.array([[r["mean"], r["std"], r["near_zero"]] for r in rows])
        assert np.array_equal(got, st.stats_[name].astype(np.float64))
        assert np.array_equal(torch.stack(list(rows.itemgot("hist"))).numpy(), st.hist_[name])
        assert np.array_equal(np.array(st.layer_stats(j)), got.T)
    # fastai's hist(idx): the stacked 'hist' entries, transposed, log1p
    h = torch.stack(list(st.stats.itemgot(-2).itemgot("hist"))).t().float().log1p()
    assert np.allclose(st.hist(-2), h.numpy())
    # batch 0, layer 0 recomputed from the weights before the first step and the first batch
    with torch.no_grad():
        o = start[0][0](first.xb_.cpu()).float()
    want = st.stats[0][0]
    assert want["mean"] == pytest.approx(float(o.mean()), rel=1e-5)
    assert want["std"] == pytest.approx(float(o.std()), rel=1e-5)
    assert want["near_zero"] == pytest.approx(float((o <= 0.05).float().mean()), abs=1e-6)
    assert torch.equal(want["hist"], torch.histc(o, 40, 0, 10))
    # the parameter is unchanged: a clone hooks the model it is given
    assert cb.get_params()["modules"] is None and cb.clone().modules is None


def test_activation_stats_layout_without_hist_with_every_and_given_modules(mnist_dls):
    from pipekit.learn import ActivationStats, Callback, Learner

    model = book_cnn()
    cb = ActivationStats(every=2)
    Learner(mnist_dls, model, loss_func=F.cross_entropy, cbs=cb).fit(1, 0.01)
    n = len(mnist_dls.train)
    assert len(cb.stats) == (n + 1) // 2 == len(next(iter(cb.stats_.values())))
    assert list(cb.stats[0][0]) == ["mean", "std", "near_zero"]
    # given modules: those, in that order; a second learner: its own modules, not the first fit's
    picked = [model[4], model[0][0]]
    given = ActivationStats(modules=picked)
    Learner(mnist_dls, model, loss_func=F.cross_entropy, cbs=given).fit(1, 0.01)
    assert given.modules == picked and len(given.stats[0]) == 2
    assert given.stats[-1][0]["mean"] == float(given.stats_["4"][-1, 0])
    other = book_cnn()
    Learner(mnist_dls, other, loss_func=F.cross_entropy, cbs=cb).fit(1, 0.01)
    assert all(any(m is o for o in other.modules()) for m in cb.modules) and len(cb.modules) == 5
    # a fit stopped by an error keeps the last finished fit's stats_ and, with them, its stats
    kept = [[d["mean"] for d in b] for b in given.stats]

    class Stop(Callback):
        def after_batch(self):
            if self.learn.training and self.learn.iter == 1:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Learner(mnist_dls, book_cnn(), loss_func=F.cross_entropy, cbs=[given, Stop()]).fit(1, 0.01)
    assert [[d["mean"] for d in b] for b in given.stats] == kept and len(given.stats_["4"]) == len(kept)


# -- chapter 9: TabularPandas' fastai attributes -----------------------------------------------------------------
def test_tabular_vocab_procs_and_all_col_names_as_fastai_gives_them(adult, tmp_path):
    from pipekit.tabular import Tabular

    # fastai 2.8.12 on the same rows and split gives exactly these
    workclass = ["#na#", " ?", " Federal-gov", " Local-gov", " Private", " Self-emp-inc", " Self-emp-not-inc",
                 " State-gov", " Without-pay"]
    all_cols = ["workclass", "education", "marital-status", "education-num_na", "age", "fnlwgt", "education-num",
                "salary"]
    train = pd.read_csv(D.path("adult_sample") / "adult.csv").head(2400)
    loaded = Tabular.load(adult.save(tmp_path / "to.parquet"))
    for to in (adult, adult.train, adult.valid, loaded):
        assert to.vocab == ["<50k", ">=50k"] and to.vocab.o2i[">=50k"] == 1
        assert to.fill_missing.na_dict == {"education-num": 10.0}
        assert to.fill_missing.na_dict == {"education-num": float(train["education-num"].median())}
        assert to.categorify["workclass"] == workclass and to.categorify["workclass"].o2i[" Private"] == 4
        assert list(to.categorify.classes) == ["workclass", "education", "marital-status", "education-num_na"]
        assert to.all_col_names == all_cols
        assert to.normalize.means["age"] == pytest.approx(train["age"].mean(), rel=1e-6)
        assert to.fill_missing.fill_strategy == "median" and to.fill_missing.fill_values_["age"] == train["age"].median()
    # views of the table's own procs, not copies
    assert adult.categorify.proc is next(p for p in adult.procs if isinstance(p, Categorify))
    assert adult.categorify.classes is adult.categorify.proc.classes_
    # a regression target has no vocab, a table without Normalize no normalize: AttributeError, as fastai's
    df = pd.read_csv(D.path("adult_sample") / "adult.csv").head(500)
    reg = TabularPandas(df, [Categorify, FillMissing], cat_names=["workclass"], cont_names=["fnlwgt"], y_names="age",
                        splits=(list(range(400)), list(range(400, 500))))
    assert not hasattr(reg, "vocab") and not hasattr(reg.train, "normalize")
    with pytest.raises(AttributeError, match="regression"):
        _ = reg.vocab
    with pytest.raises(AttributeError, match="without Normalize"):
        _ = reg.normalize
    assert reg.all_col_names == ["workclass", "fnlwgt", "age"]
