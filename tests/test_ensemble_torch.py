"""TorchTabular (the tabular net behind the backend interface) and embeddings_as_features on adult."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from test_models_helpers import adult

from pipekit.backends import GBM, RandomForest, as_data, load_model
from pipekit.core import ParameterError
from pipekit.ensemble import TorchTabular, WeightedEnsemble, embeddings_as_features


@pytest.fixture(scope="module")
def splits():
    torch.set_num_threads(1)
    return adult()


@pytest.fixture(scope="module")
def net(splits):
    tr, va = splits
    return TorchTabular("classification", epochs=2, bs=256, seed=0).fit(tr, va)


def test_net_is_a_backend(net, splits, tmp_path):
    tr, va = splits
    p = net.predict(va)
    assert p.shape == (len(va), 2) and np.allclose(p.sum(1), 1)
    assert net.valid_score_ > 0.8 and net.valid_score_ == pytest.approx(net.score(va))
    assert list(net.classes_) == ["<50k", ">=50k"]
    back = load_model(net.export(tmp_path / "net.pipekit"))
    assert isinstance(back, TorchTabular)
    assert np.allclose(back.predict(va), p, atol=1e-6)
    # a net and a forest ensemble together, classes aligned by label
    rf = RandomForest("classification", n_estimators=20, n_jobs=1).fit(tr)
    ens = WeightedEnsemble([net, rf], n_iter=10).fit(va)
    assert ens.score(va) >= max(net.score(va), rf.score(va))
    assert np.allclose(load_model(ens.export(tmp_path / "ens.pipekit")).predict(va), ens.predict(va), atol=1e-6)


def test_same_seed_same_net(splits):
    tr, va = splits
    small = as_data(tr).take(np.arange(2000))
    a = TorchTabular("classification", epochs=1, seed=3).fit(small).predict(va.xs[:50])
    b = TorchTabular("classification", epochs=1, seed=3).fit(small).predict(va.xs[:50])
    assert np.allclose(a, b)


def test_a_nets_fit_gives_back_torchs_settings_and_the_environment(splits, monkeypatch):
    # set_seed inside the fit writes CUBLAS_WORKSPACE_CONFIG and turns torch's NaN filling of new tensors off:
    # both stayed changed after a TabularClassifier('net') fit, so a later torch.use_deterministic_algorithms(True)
    # filled torch.empty with zeros instead of NaN
    import os

    tr, _ = splits
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    monkeypatch.setattr(torch.utils.deterministic, "fill_uninitialized_memory", True)
    TorchTabular("classification", epochs=1, layers=[8], seed=3).fit(as_data(tr).take(np.arange(512)))
    assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ
    assert torch.utils.deterministic.fill_uninitialized_memory is True


def test_a_time_limit_fits_the_nets_schedule_into_it(net, splits):
    import time

    tr, va = splits
    t = time.perf_counter()
    timed = TorchTabular("classification", epochs=200, bs=256, seed=0, time_limit=1.5).fit(tr, va)
    took = time.perf_counter() - t  # predicting the valid rows for valid_score_ comes on top of the limit
    # 200 epochs would take a minute: the one-cycle is shortened to what 1.5 s hold (tens of epochs: more than this
    # unregularised net needs, so it fits its rows closer than the 2-epoch one), and it still learns
    majority = max(np.mean(np.asarray(as_data(va).y) == c) for c in np.unique(np.asarray(as_data(va).y)))
    assert timed.stopped_on_time_ and took < 4.5 and timed.valid_score_ > majority + 0.02
    roomy = TorchTabular("classification", epochs=2, bs=256, seed=0, time_limit=600).fit(tr, va)
    assert not roomy.stopped_on_time_
    np.testing.assert_array_equal(roomy.predict(va), net.predict(va))


def test_embeddings_as_features(net, splits):
    tr, va = splits
    embs = net.embeddings()
    assert embs["education"].shape[0] == len(tr.classes["education"])
    e_tr = embeddings_as_features(net, tr)
    width = embs["workclass"].shape[1]
    assert [f"workclass_emb{j}" for j in range(width)] == [c for c in e_tr.xs.columns if c.startswith("workclass_")]
    assert "workclass" not in e_tr.xs.columns and "workclass" not in e_tr.cat_names
    row_code = int(tr.xs["workclass"][0])
    assert np.allclose([e_tr.xs[f"workclass_emb{j}"][0] for j in range(width)], embs["workclass"][row_code])
    gbm = GBM("classification", learning_rate=0.1, n_jobs=1).fit(e_tr, embeddings_as_features(net, va))
    assert gbm.score(embeddings_as_features(net, va)) > 0.8
    kept = embeddings_as_features(net, va, columns=["education"], keep_codes=True)
    assert "education" in kept.xs.columns and "education_emb0" in kept.xs.columns
    with pytest.raises(ParameterError, match="'age'"):
        embeddings_as_features(net, va, columns=["age"])


def test_embeddings_of_a_tabular_learner_and_its_model():
    """The book's chapter 9: the embeddings of a tabular_learner's net (the Learner or learn.model) as a forest's
    inputs; each row's features are the table rows of its codes, named by the learner's procs."""
    from pipekit.tabular import tabular_learner
    from test_models_helpers import adult_tab

    tab = adult_tab(3000)
    tr, va = tab.train, tab.valid
    learn = tabular_learner(tab.dataloaders(bs=128, seed=0), layers=[50, 20])
    learn.fit_one_cycle(1, 1e-2)
    names = tab.processor.cat_names_
    for src in (learn, learn.model):
        e_tr = embeddings_as_features(src, tr)
        for i, c in enumerate(names):
            table = learn.model.embeds[i].weight.detach().cpu().numpy()
            if table.shape[1] < 2:
                continue  # one-wide tables are left as codes by default
            got = e_tr.xs.select([f"{c}_emb{j}" for j in range(table.shape[1])]).to_numpy()
            np.testing.assert_allclose(got, table[tr.xs[c].to_numpy()], rtol=1e-6)
    rf = RandomForest("classification", n_estimators=20, n_jobs=1).fit(e_tr, embeddings_as_features(learn, va))
    assert "workclass" not in rf.feature_names_ and "workclass_emb0" in rf.feature_names_
    assert rf.score(embeddings_as_features(learn.model, va)) > 0.75
    with pytest.raises(ParameterError, match="TorchTabular, a tabular_learner Learner"):
        embeddings_as_features(rf, tr)
    # learn.model knows no column names: the data's procs name its tables, and must name as many
    import polars as pl

    from pipekit.datasets import path
    from pipekit.tabular import Tabular

    other = Tabular(pl.read_csv(path("adult_sample") / "adult.csv").head(500), cat_names=["workclass"],
                    cont_names=["age"], y_names="salary").processor
    with pytest.raises(ParameterError, match=f"{len(names)} embedding tables but the procs of the data name 1 "):
        embeddings_as_features(learn.model, replace(as_data(tr), processor=other))


def test_embeddings_refuse_rows_of_other_procs_and_unprocessed_rows(net):
    """The same adult rows without 'Bachelors' are coded by a vocabulary one shorter: every later education code
    would pick the next embedding row. Where the net's procs are known (a Learner, a TorchTabular) such splits are
    refused as models refuse them; raw rows are refused with how to process them."""
    import polars as pl

    from pipekit.core import DataError
    from pipekit.data import RandomSplitter
    from pipekit.datasets import path
    from pipekit.tabular import Categorify, FillMissing, Normalize, Tabular, tabular_learner
    from test_models_helpers import ADULT_CATS, ADULT_CONTS

    df = pl.read_csv(path("adult_sample") / "adult.csv").head(2000)
    kw = dict(procs=[Categorify, FillMissing, Normalize], cat_names=ADULT_CATS, cont_names=ADULT_CONTS,
              y_names="salary", splits=RandomSplitter(valid_pct=0.2, seed=42))
    tab = Tabular(df, **kw)
    other = Tabular(df.filter(pl.col("education") != " Bachelors"), **kw)
    assert other.processor.classes_["education"] != tab.processor.classes_["education"]  # codes shifted
    learn = tabular_learner(tab.dataloaders(bs=256, seed=0), layers=[10])
    for src, rows in ((learn, other.train), (net, other.train), (net, other.valid)):
        with pytest.raises(DataError, match="processed by different procs"):
            embeddings_as_features(src, rows)
    e = embeddings_as_features(learn, tab.new(df.head(20)))  # the learner's own procs: taken
    assert e.xs.height == 20 and "education_emb0" in e.xs.columns
    with pytest.raises(ParameterError, match=r"'workclass' is String.*unprocessed.*tab.new\(rows\)"):
        embeddings_as_features(learn, df)
    # one name is one column, not its letters
    one = embeddings_as_features(learn, tab.train, columns="workclass")
    assert "workclass_emb0" in one.xs.columns and "workclass" not in one.xs.columns
    assert "education" in one.xs.columns


def test_net_bad_input(splits):
    tr, va = splits
    with pytest.raises(TypeError, match="splits of a Tabular"):
        TorchTabular("classification", epochs=1).fit(as_data(tr.xs, y=as_data(tr).y))
    with pytest.raises(ValueError, match="target kind is 'category'"):
        TorchTabular("regression", epochs=1).fit(tr)
    with pytest.raises(ValueError, match="epochs"):
        TorchTabular("classification", epochs=0)


def test_stacking_with_a_net(splits):
    from pipekit.ensemble import StackingEnsemble

    tr, va = splits
    small = as_data(tr).take(np.arange(1500))
    st = StackingEnsemble({"net": TorchTabular("classification", epochs=1, seed=0),
                           "gbm": GBM("classification", n_estimators=40, learning_rate=0.2, n_jobs=1)},
                          n_folds=2).fit(small, va)
    assert st.oob_predictions_.shape == (2, 1500, 2)
    assert st.report_["model"].to_list() == ["net", "gbm", "StackingEnsemble"]
    assert st.score(va) > 0.75


def test_a_regression_net_starts_in_the_targets_range(tmp_path):
    import polars as pl
    from sklearn.datasets import load_diabetes

    from pipekit.data.splitters import RandomSplitter
    from pipekit.tabular import Normalize, Tabular

    df = pl.from_pandas(load_diabetes(as_frame=True).frame)  # disease progression, 25 to 346
    tab = Tabular(df, procs=[Normalize], cont_names=[c for c in df.columns if c != "target"], y_names="target",
                  splits=RandomSplitter(0.2, seed=0))
    net = TorchTabular("regression", epochs=5, bs=64).fit(tab.train)
    y = as_data(tab.train).y
    span = y.max() - y.min()
    assert net.y_range_ == pytest.approx([y.min() - 0.05 * span, y.max() + 0.05 * span])
    # the raw output started near 0 and five epochs left it there: R2 was about -4
    assert net.score(tab.valid, "r2") > 0.2
    pred = net.predict(tab.valid)
    assert (pred > net.y_range_[0]).all() and (pred < net.y_range_[1]).all()
    net.export(tmp_path / "net.pipekit")
    np.testing.assert_array_equal(load_model(tmp_path / "net.pipekit").predict(tab.valid), pred)
    # a range given is kept
    assert TorchTabular("regression", epochs=1, y_range=(0, 400)).fit(tab.train).y_range_ == [0.0, 400.0]


@pytest.fixture
def two_threads_nondeterministic_torch():
    """Two torch threads and torch's default (non-deterministic) kernels, as a fresh process has them: only
    ``set_seed`` may make training repeatable; the previous settings come back afterwards."""
    threads, det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(False)
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(det, warn_only=warn_only)


def _many_small_categories(n=2048, seed=0):
    """Rows shaped like rossmann's: many categorical columns of 2 to 5 levels (a wide embedding input, each
    table a few rows long, so a batch of 1024 adds into every row of every table hundreds of times)."""
    import polars as pl

    from pipekit.tabular import Categorify, Normalize, Tabular

    rng = np.random.default_rng(seed)
    cats = {f"c{i}": rng.integers(0, 2 + i % 4, n).astype(str) for i in range(16)}
    conts = {f"x{i}": rng.normal(size=n) for i in range(3)}
    y = sum((v == "1").astype(float) for v in cats.values()) + conts["x0"] + rng.normal(0, 0.1, n)
    df = pl.DataFrame({**cats, **conts, "y": y.astype(np.float32)})
    return Tabular(df, procs=[Categorify, Normalize], cat_names=list(cats), cont_names=list(conts), y_names="y",
                   splits=(np.arange(n - 256), np.arange(n - 256, n)))


def test_same_seed_same_net_with_two_threads(two_threads_nondeterministic_torch):
    # with two threads the embedding gradient was summed by both threads at once, in the order they happened
    # to run: the same seed gave weights differing in the last bits (rossmann: valid rmse 0.957938 vs 0.957898)
    tab = _many_small_categories()
    nets = [TorchTabular("regression", layers=[64, 32], epochs=2, bs=1024, seed=1).fit(tab.train, tab.valid)
            for _ in range(2)]
    a, b = (n.model_.state_dict() for n in nets)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert nets[0].valid_score_ == nets[1].valid_score_


def test_same_seed_same_tabular_learner_with_two_threads(two_threads_nondeterministic_torch):
    # the Learner path trains the same net: pipekit.set_seed before the loaders and the learner repeats it
    import pipekit
    from pipekit.tabular import tabular_learner

    tab = _many_small_categories()
    weights = []
    for _ in range(2):
        pipekit.set_seed(5)
        learn = tabular_learner(tab.dataloaders(bs=1024, seed=5), layers=[64, 32])
        learn.fit_one_cycle(2, 1e-2)
        weights.append({k: v.clone() for k, v in learn.model.state_dict().items()})
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


# -- a net trained with tabular_learner, as a model: TorchTabular.from_learner ---------------------------------
@pytest.fixture(scope="module")
def learned():
    """The book's chapter 9 net on 3000 adult rows: a tabular_learner Learner trained one epoch, with dropout (so
    its config is not the default one)."""
    from pipekit.tabular import tabular_learner
    from test_models_helpers import adult_tab

    torch.set_num_threads(1)
    tab = adult_tab(3000)
    learn = tabular_learner(tab.dataloaders(bs=128, seed=0), layers=[40, 20], config={"ps": [0.1, 0.05], "embed_p": 0.02})
    learn.fit_one_cycle(1, 1e-2)
    return tab, learn


def test_from_learner_predicts_what_the_learner_predicts(learned):
    tab, learn = learned
    before = {k: v.clone() for k, v in learn.model.state_dict().items()}
    learn.model.train()
    net = TorchTabular.from_learner(learn, name="net")
    # the Learner and its net are left as they were: mode, weights, the module itself
    assert learn.model.training and net.model_ is not learn.model and not net.model_.training
    assert all(torch.equal(before[k], v) for k, v in learn.model.state_dict().items())
    assert net.task == "classification" and net.name == "net" and list(net.classes_) == ["<50k", ">=50k"]
    assert net.layers == [40, 20] and net.config == {"ps": [0.1, 0.05], "embed_p": 0.02}
    assert net.emb_szs_ == [list(s) for s in learn.model.embeds.emb_szs] and net.y_range_ is None
    probs, targs = learn.get_preds()  # softmax already applied
    np.testing.assert_allclose(net.predict_proba(tab.valid), probs.numpy(), atol=1e-6)
    assert net.valid_score_ == pytest.approx(float((probs.argmax(1) == targs).float().mean()))
    # fitted as fit fits on tab.train: the same signatures a forest on tab.train records
    rf = RandomForest("classification", n_estimators=20, n_jobs=1, seed=0).fit(tab.train)
    for attr in ("feature_names_", "cat_features_", "procs_signature_", "train_rows_signature_", "cat_levels_",
                 "norm_stats_"):
        assert getattr(net, attr) == getattr(rf, attr), attr
    # its embeddings are the Learner's
    np.testing.assert_array_equal(embeddings_as_features(net, tab.valid).xs.to_numpy(),
                                  embeddings_as_features(learn, tab.valid).xs.to_numpy())


def test_a_learners_net_joins_an_ensemble_and_files(learned, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    from pipekit.ensemble import MeanEnsemble

    tab, learn = learned
    net = TorchTabular.from_learner(learn)
    rf = RandomForest("classification", n_estimators=20, n_jobs=1, seed=0).fit(tab.train)
    ens = MeanEnsemble({"rf": rf, "net": net})
    p = ens.predict(tab.valid)
    np.testing.assert_allclose(p, (rf.predict(tab.valid) + net.predict(tab.valid)) / 2, atol=1e-12)
    assert ens.score(tab.valid) > 0.75
    back = load_model(net.export(tmp_path / "net.pipekit"))
    assert isinstance(back, TorchTabular) and back.layers == net.layers and back.config == net.config
    np.testing.assert_array_equal(back.predict(tab.valid), net.predict(tab.valid))
    path = ens.export(tmp_path / "ens.pipekit")
    np.testing.assert_array_equal(load_model(path).predict(tab.valid), p)
    # a fresh process rebuilds the net from the file alone
    tab.valid.xs.write_parquet(tmp_path / "xs.parquet")
    code = ("import sys, numpy as np, polars as pl; from pipekit.backends import load_model; "
            "np.save(sys.argv[3], load_model(sys.argv[1]).predict(pl.read_parquet(sys.argv[2])))")
    subprocess.run([sys.executable, "-c", code, str(path), str(tmp_path / "xs.parquet"), str(tmp_path / "p.npy")],
                   check=True, cwd=Path(__file__).parent.parent)
    np.testing.assert_allclose(np.load(tmp_path / "p.npy"), p, atol=1e-6)


def test_from_learner_regression_on_adults_age(tmp_path):
    import polars as pl

    from pipekit.data.splitters import RandomSplitter
    from pipekit.datasets import path
    from pipekit.tabular import Tabular, tabular_learner

    df = pl.read_csv(path("adult_sample") / "adult.csv").head(3000)
    tab = Tabular(df, cat_names=["workclass", "education", "marital-status", "occupation", "sex"],
                  cont_names=["fnlwgt", "education-num", "hours-per-week"], y_names="age",
                  splits=RandomSplitter(valid_pct=0.2, seed=42))
    learn = tabular_learner(tab.dataloaders(bs=128, seed=0), layers=[30], y_range=(15.0, 95.0),
                            config={"use_bn": False, "bn_final": True})
    learn.fit_one_cycle(1, 1e-2)
    net = TorchTabular.from_learner(learn, epochs=3)
    assert net.task == "regression" and net.y_range == (15.0, 95.0) and net.y_range_ == [15.0, 95.0]
    assert net.config == {"use_bn": False, "bn_final": True} and net.epochs == 3
    preds = learn.get_preds()[0][:, 0].numpy()
    np.testing.assert_allclose(net.predict(tab.valid), preds, rtol=1e-6)
    rf = RandomForest("regression", n_estimators=20, n_jobs=1, seed=0).fit(tab.train)
    from pipekit.ensemble import MeanEnsemble

    ens = MeanEnsemble({"rf": rf, "net": net})
    np.testing.assert_allclose(ens.predict(tab.valid), (rf.predict(tab.valid) + preds) / 2, rtol=1e-6)
    np.testing.assert_array_equal(load_model(ens.export(tmp_path / "ens.pipekit")).predict(tab.valid),
                                  ens.predict(tab.valid))
    # a refit (what clone() and stacking's folds do) trains the same architecture with the given settings
    fresh = net.clone().fit(tab.train)
    assert fresh.model_.state_dict().keys() == net.model_.state_dict().keys() and repr(fresh.model_) == repr(net.model_)
    # two targets: TorchTabular predicts one
    two = Tabular(df, cat_names=["workclass"], cont_names=["fnlwgt"], y_names=["age", "hours-per-week"],
                  splits=RandomSplitter(valid_pct=0.2, seed=42))
    with pytest.raises(ParameterError, match=r"2 output\(s\) for the target\(s\) \['age', 'hours-per-week'\]"):
        TorchTabular.from_learner(tabular_learner(two.dataloaders(bs=128, seed=0), layers=[8]))


def test_from_learner_refuses_what_it_cannot_rebuild(learned):
    from torch import nn

    from pipekit.ensemble import MeanEnsemble
    from pipekit.learn import Learner
    from pipekit.tabular import tabular_learner

    tab, learn = learned
    dls = learn.dls
    with pytest.raises(ParameterError, match="custom body"):
        TorchTabular.from_learner(tabular_learner(dls, body=lambda n_in: nn.Sequential(nn.Linear(n_in, 8), nn.ReLU())))
    with pytest.raises(ParameterError, match=r"1 output\(s\) but the target has 2 classes"):
        TorchTabular.from_learner(tabular_learner(dls, layers=[8], n_out=1))
    changed = tabular_learner(dls, layers=[8])
    for swapped in (nn.Tanh(), nn.ReLU(inplace=False)):  # no longer what layers=[8] builds
        changed.model.layers[1] = swapped
        with pytest.raises(ParameterError, match="modules differ from those TabularModel builds"):
            TorchTabular.from_learner(changed)
    with pytest.raises(ParameterError, match="not the TabularModel"):
        TorchTabular.from_learner(Learner(dls, nn.Linear(3, 2)))
    with pytest.raises(ParameterError, match=r"\['layers'\] cannot be given"):
        TorchTabular.from_learner(learn, layers=[5])
    with pytest.raises(ParameterError, match="takes a tabular_learner Learner"):
        TorchTabular.from_learner(RandomForest("classification"))
    # an ensemble refuses the Learner itself, pointing to from_learner
    with pytest.raises(ParameterError, match=r"member 'net' \(Learner\).*TorchTabular.from_learner\(learn\)"):
        MeanEnsemble({"net": learn})


def test_a_learners_net_joins_stacking_as_a_clone_and_a_fitted_one_is_refused_saying_so(learned):
    from pipekit.ensemble import StackingEnsemble

    tab, learn = learned
    net = TorchTabular.from_learner(learn, epochs=1, lr=1e-2, bs=128, seed=0)
    fix = r"pass unfitted members, e.g. member.clone\(\).*TorchTabular.from_learner net is retrained"
    rf = RandomForest("classification", n_estimators=10, n_jobs=1, seed=0)
    with pytest.raises(ParameterError, match=r"some members are fitted and some are not \(fitted: \['net'\]\); " + fix):
        StackingEnsemble({"net": net, "rf": rf}, n_folds=2).fit(tab.train)
    for rows in (tab.train, tab.valid):  # on the rows they were fitted on, or others: no out-of-fold predictions
        with pytest.raises(ParameterError, match=r"not bagged on these training rows: \['net', 'rf'\]; " + fix):
            StackingEnsemble({"net": net, "rf": rf.clone().fit(tab.train)}, n_folds=2).fit(rows)
    # the way the message gives: the clone, retrained in each fold with the settings given to from_learner
    small = as_data(tab.train).take(np.arange(800))
    stack = StackingEnsemble({"net": net.clone(), "rf": rf}, n_folds=2).fit(small, tab.valid)
    assert stack.report_["model"].to_list() == ["net", "rf", "StackingEnsemble"]
    refit = stack.members_[0]
    assert refit.layers == [40, 20] and refit.config == net.config and refit.epochs == 1 and refit.is_fitted
    assert stack.score(tab.valid) > 0.7


def test_from_learner_of_a_loaded_learner_says_it_has_no_rows_and_the_way_that_works(learned, tmp_path):
    import pipekit
    from pipekit.learn import model_weights
    from pipekit.tabular import tabular_learner

    tab, learn = learned
    path = learn.export(tmp_path / "learn.pipekit")
    with pytest.raises(ParameterError, match=r"holds no training rows \(a Learner from load_learner keeps the procs "
                                             r"and the net, not the data\).*model_weights\(path\)"):
        TorchTabular.from_learner(pipekit.load_learner(path))
    # the way the message gives: the Learner rebuilt on the same Tabular, with the exported weights
    again = tabular_learner(tab.dataloaders(bs=128, seed=0), layers=[40, 20],
                            config={"ps": [0.1, 0.05], "embed_p": 0.02})
    again.model.load_state_dict(model_weights(path))
    np.testing.assert_allclose(TorchTabular.from_learner(again).predict_proba(tab.valid),
                               TorchTabular.from_learner(learn).predict_proba(tab.valid), atol=1e-6)


@pytest.mark.parametrize("layers, config, read", [
    ([20, 10], {}, None), ([], {}, None), ([16], {"ps": 0.3, "bn_final": True}, {"ps": [0.3], "bn_final": True}),
    ([12, 6], {"use_bn": False, "bn_cont": False}, {"use_bn": False, "bn_cont": False}),
    ([8, 8, 4], {"ps": [0.0, 0.2, 0.0], "embed_p": 0.1, "use_bn": False, "bn_final": True},
     {"ps": [0.0, 0.2, 0.0], "embed_p": 0.1, "use_bn": False, "bn_final": True}),
    ([5], {"y_range": (0.0, 3.0), "ps": 0.0}, None)])
def test_net_structure_rebuilds_every_tabular_model(layers, config, read):
    """layers and config (those that differ from the defaults) read from a TabularModel's modules build the same
    modules again, whatever the options."""
    from pipekit.ensemble.torch_tabular import net_structure
    from pipekit.tabular.model import TabularModel

    model = TabularModel([(6, 4), (3, 2)], 3, 2, layers=layers, **config)
    assert net_structure(model) == (layers, read, 2)
    rebuilt = TabularModel([(6, 4), (3, 2)], 3, 2, layers=layers, y_range=model.y_range, **(read or {}))
    assert repr(rebuilt) == repr(model)


def test_nets_bagged_in_threads_are_the_nets_fitted_one_at_a_time_and_leave_the_callers_draws(
        two_threads_nondeterministic_torch):
    # each net seeds its own training: two fold nets in threads drew from one generator in whatever order the
    # threads ran (out-of-fold probabilities differed by up to 0.5), and a fit left the caller's seed replaced
    from pipekit.ensemble import BaggedModel

    tab = _many_small_categories(n=1536)
    np.random.seed(123)
    torch.manual_seed(5)
    expected = (np.random.rand(), torch.rand(1))
    np.random.seed(123)
    torch.manual_seed(5)
    one = BaggedModel(TorchTabular("regression", layers=[32], epochs=1, bs=256, seed=1), n_folds=3,
                      n_jobs=1).fit(tab.train)
    assert np.random.rand() == expected[0] and torch.equal(torch.rand(1), expected[1])  # the caller's draws
    assert not torch.are_deterministic_algorithms_enabled()  # and torch's settings, as they were
    for _ in range(2):
        par = BaggedModel(TorchTabular("regression", layers=[32], epochs=1, bs=256, seed=1), n_folds=3, n_jobs=2)
        assert par.workers() == (1, None)  # nets fit one at a time whatever n_jobs says: one seeded generator
        par.fit(tab.train)
        np.testing.assert_array_equal(par.oof_predictions_, one.oof_predictions_)


def test_a_forest_predicts_the_same_bits_on_every_run():
    # scikit-learn's threads add the trees up in the order they finish: the last bits of a probability changed
    from test_models_helpers import adult_tab

    from pipekit.tabular import Categorify, FillMissing

    tab = adult_tab(5000, procs=(Categorify, FillMissing))
    rf = RandomForest("classification", n_estimators=40, seed=0, n_jobs=2).fit(tab.train)
    ordered = rf.model_.set_params(n_jobs=1).predict_proba(rf.matrix(rf._prepare(tab.valid), order="C"))
    rf.model_.set_params(n_jobs=2)
    for _ in range(3):
        np.testing.assert_array_equal(rf.predict_proba(tab.valid), ordered)
    assert rf.model_.n_jobs == 2
