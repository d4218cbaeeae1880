"""What pipekit does in one thread leaves the process's state as it found it: the warnings machinery (a server's
thread pool predicting with a TabularClassifier, two threads reading compressed CSVs) and the global random
generators (``load_learner`` of a tabular, vision or text export). A warning recorder swapped in by one thread and put
back by another left every later warning of the process in a list nobody read; a load that drew from torch's
generator gave a seeded script other numbers whenever a model was loaded first."""
from __future__ import annotations

import gzip
import random
import threading
import warnings

import numpy as np
import polars as pl
import pytest
import torch

import pipekit
import pipekit.datasets as D
from pipekit.core.errors import PipekitWarning, collecting, warn

pytestmark = pytest.mark.data


def run_threads(*targets, timeout=300):
    """Run each target in its own thread; an exception in one fails the test here, as does a thread still running
    after ``timeout`` seconds."""
    errors: list[BaseException] = []

    def guarded(target):
        try:
            target()
        except BaseException as e:  # noqa: BLE001  (re-raised in the main thread)
            errors.append(e)

    threads = [threading.Thread(target=guarded, args=(t,)) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    assert not any(t.is_alive() for t in threads), "a thread did not finish"
    if errors:
        raise errors[0]


def warnings_state():
    return warnings._showwarnmsg_impl, warnings.showwarning, list(warnings.filters)  # type: ignore[attr-defined]


def test_collecting_keeps_this_threads_warnings_and_shows_the_others():
    """A block open in one thread keeps that thread's pipekit warnings only; another thread's are shown meanwhile,
    and the process's warning functions and filters are never touched."""
    inside, done = threading.Event(), threading.Event()
    kept: list = []

    def collector():
        with collecting() as said:
            warn("kept by the block")
            inside.set()
            assert done.wait(60)
        kept.extend(said)

    def other():
        assert inside.wait(60)
        with warnings.catch_warnings(record=True) as shown:
            warnings.simplefilter("always")
            warn("shown from the other thread")
        done.set()
        assert [str(w.message) for w in shown] == ["shown from the other thread"]

    before = warnings_state()
    run_threads(collector, other)
    assert warnings_state() == before
    assert [str(w.message) for w in kept] == ["kept by the block"] and kept[0].category is PipekitWarning
    assert kept[0].filename == __file__  # the user's line, as warn() shows it


def test_predict_in_two_threads_leaves_the_users_warnings_shown(recwarn, adult_1500):
    """Two threads of a server predicting 200 times each (rows with a category never seen in training, so each call
    warns): afterwards the process shows warnings as before, so the user's own warning reaches the recorder in place
    (pytest's), and the estimator's own warnings were shown there too."""
    from pipekit.backends import GBM
    from pipekit.sklearn import TabularClassifier

    X, y = adult_1500.drop("salary"), adult_1500["salary"].to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = TabularClassifier(GBM("classification", n_estimators=5), random_state=0).fit(X, y)
    rows = X.head(5).with_columns(pl.lit("Martian").alias("workclass"))
    before = warnings_state()
    recwarn.clear()

    def serve():
        for _ in range(200):
            clf.predict(rows)

    run_threads(serve, serve)
    assert warnings_state() == before
    warnings.warn("a warning of the user's own code after serving", stacklevel=1)
    said = [str(w.message) for w in recwarn]
    assert "a warning of the user's own code after serving" in said
    assert any("never seen in training" in s for s in said)


def test_predict_still_warns_once_per_line_under_the_default_filter(adult_1500):
    """The estimator's own registry of what it showed: under 'default', one warning for a line called three times;
    under 'error', the warning raised from predict."""
    from pipekit.backends import GBM
    from pipekit.sklearn import TabularClassifier

    X, y = adult_1500.drop("salary"), adult_1500["salary"].to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = TabularClassifier(GBM("classification", n_estimators=5), random_state=0).fit(X, y)
    rows = X.head(5).with_columns(pl.lit("Martian").alias("workclass"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        for _ in range(3):
            clf.predict(rows)
    said = [w for w in caught if "never seen in training" in str(w.message)]
    assert len(said) == 1 and said[0].filename == __file__
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(PipekitWarning, match="never seen in training"):
            clf.predict(rows)


def test_reading_compressed_csvs_in_two_threads_leaves_the_warnings_machinery(tmp_path, recwarn):
    """``read_table`` of a .csv.gz with a blank line (a warning naming the file the user gave, not the temporary copy
    it is read from) in two threads at once, 100 times each: the process's warning functions and filters are as
    before, and every warning names the .gz file."""
    from pipekit.data import read_table

    files = []
    for i in range(2):
        f = tmp_path / f"t{i}.csv.gz"
        f.write_bytes(gzip.compress(b"a,b\n1,x\n\n2,y\n"))
        files.append(f)
    before = warnings_state()
    recwarn.clear()

    def reader(f):
        return lambda: [read_table(f) for _ in range(100)]

    run_threads(reader(files[0]), reader(files[1]))
    assert warnings_state() == before
    warnings.warn("the user's own warning after reading", stacklevel=1)
    said = [str(w.message) for w in recwarn]
    assert "the user's own warning after reading" in said
    blank = [s for s in said if "blank line" in s]
    assert blank and all(s.startswith((str(files[0]), str(files[1]))) for s in blank)


def random_states():
    return torch.random.get_rng_state().clone(), np.random.get_state(), random.getstate()


def assert_same_states(before, after):
    assert torch.equal(before[0], after[0]), "torch's generator moved"
    assert all(np.array_equal(a, b) for a, b in zip(before[1], after[1])), "NumPy's generator moved"
    assert before[2] == after[2], "Python's generator moved"


@pytest.fixture(scope="module")
def tabular_export(tmp_path_factory):
    import pandas as pd

    from pipekit.tabular import TabularDataLoaders, tabular_learner

    df = pd.read_csv(D.path("adult_sample") / "adult.csv").head(500)
    dls = TabularDataLoaders.from_df(df, y_names="salary", cat_names=["workclass", "education"],
                                     cont_names=["age"], valid_idx=list(range(400, 500)), bs=64)
    return tabular_learner(dls, layers=[20]).export(tmp_path_factory.mktemp("tab") / "adult.pipekit")


@pytest.fixture(scope="module")
def vision_export(mnist_dls, tmp_path_factory):
    from pipekit.learn import Learner, simple_cnn

    learn = Learner(mnist_dls, simple_cnn(n_in=1, n_out=mnist_dls.c))
    return learn.export(tmp_path_factory.mktemp("vision") / "mnist.pipekit")


@pytest.fixture(scope="module")
def text_export(tmp_path_factory):
    from pipekit.text import AWD_LSTM, TextDataLoaders, text_classifier_learner

    df = pl.read_csv(D.path("imdb_sample") / "texts.csv")
    df = pl.concat([df.filter(~pl.col("is_valid")).head(40), df.filter(pl.col("is_valid")).head(10)])
    dls = TextDataLoaders.from_df(df, text_col="text", label_col="label", valid_col="is_valid", bs=16, seed=0,
                                  cache_dir=False)
    learn = text_classifier_learner(dls, AWD_LSTM, pretrained=False, config=dict(emb_sz=16, n_hid=32, n_layers=1))
    return learn.export(tmp_path_factory.mktemp("text") / "text.pipekit")


@pytest.mark.parametrize("export", ["tabular_export", "vision_export", "text_export"])
def test_load_learner_draws_nothing_from_the_global_generators(export, request):
    """A seeded script draws the same numbers whether or not it loaded a model first, as with fastai's
    ``load_learner``: the load of a tabular export (built for real, not on the meta device) drew torch numbers for
    its embedding table and linear layers, which the stored weights then overwrote."""
    file = request.getfixturevalue(export)
    pipekit.set_seed(42)
    before = random_states()
    learn = pipekit.load_learner(file)
    assert_same_states(before, random_states())
    assert all(p.isfinite().all() for p in learn.model.parameters())


def test_a_loaded_tabular_model_has_the_exported_weights(tabular_export):
    """Every tensor of the model's state is the file's (the build's own fills, drawn from a generator of the load's
    own, are all overwritten)."""
    from pipekit.core.archive import read_pipekit
    from pipekit.learn.export import plain_weight_names

    learn = pipekit.load_learner(tabular_export)
    stored = plain_weight_names(read_pipekit(tabular_export).tensors())
    own = learn.model.state_dict()
    assert sorted(own) == sorted(stored)
    assert all(torch.equal(own[k], stored[k].to(own[k].dtype)) for k in own)


@pytest.fixture
def filter_swaps(monkeypatch):
    """The pipekit source files that entered ``warnings.catch_warnings`` (which swaps the process's filter list,
    shared by every thread: a thread of scikit-learn's saving it meanwhile puts the block's filter back for good)."""
    import os
    import sys

    entered: list[str] = []
    package = os.path.dirname(pipekit.__file__)
    enter = warnings.catch_warnings.__enter__

    def spy(self):
        caller = sys._getframe(1).f_code.co_filename
        if caller.startswith(package):
            entered.append(os.path.relpath(caller, package))
        return enter(self)

    monkeypatch.setattr(warnings.catch_warnings, "__enter__", spy)
    return entered


def test_metrics_and_forest_contributions_leave_the_warning_filters_alone(filter_swaps, adult_1500):
    """Scores that scikit-learn warns of on the way (the weighted one-vs-rest ROC-AUC of targets missing a class, the
    log loss of a float32 softmax, a forest fitted on named columns read from arrays) are scikit-learn's numbers,
    with no warning shown and no filter swapped in: these run per epoch and in a bag's fold threads."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.metrics import log_loss, roc_auc_score

    from pipekit.inspection import contributions
    from pipekit.metrics import LogLoss, RocAuc

    rng = np.random.default_rng(0)
    p = rng.random((80, 4))
    p /= p.sum(1, keepdims=True)
    y, w = rng.integers(0, 3, 80), rng.random(80)  # class 3 has no item
    probs = torch.softmax(torch.randn(80, 4, generator=torch.Generator().manual_seed(0)), 1).numpy().astype(float)
    pdf = adult_1500.select("age", "fnlwgt", "education-num", "hours-per-week").to_pandas().astype(float)
    forest = RandomForestClassifier(10, random_state=0, n_jobs=2).fit(pdf, adult_1500["salary"].to_numpy())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = [roc_auc_score(y, p, average="weighted", multi_class="ovr", labels=np.arange(4)),
                    roc_auc_score(y, p, average="weighted", multi_class="ovr", labels=np.arange(4), sample_weight=w),
                    log_loss(y, probs, labels=np.arange(4))]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = [RocAuc(average="weighted").compute(y, p), RocAuc(average="weighted", sample_weight=w).compute(y, p),
               LogLoss().compute(y, probs)]
        c = contributions(forest, pdf.head(200))
    assert got[:2] == pytest.approx(expected[:2], rel=1e-12) and got[2] == pytest.approx(expected[2], rel=1e-6)
    assert np.abs(c.bias + c.values.sum(1) - forest.predict_proba(pdf.head(200))).max() < 1e-12
    assert forest.n_jobs == 2
    assert filter_swaps == []
