"""A net trained with another loss than the default one joins through TorchTabular.from_learner and predicts what
the Learner gives, alone and in MeanEnsemble and WeightedEnsemble, also from a file; only a refit (clone().fit,
fit, stacking's or bagging's folds), which would train with the default loss, is refused, naming the loss."""

import numpy as np
import polars as pl
import pytest

import pipekit
import pipekit.datasets as D
from pipekit.backends import GBM
from pipekit.core.errors import ParameterError
from pipekit.data import RandomSplitter
from pipekit.ensemble import BaggedModel, MeanEnsemble, StackingEnsemble, TorchTabular, WeightedEnsemble
from pipekit.learn import CrossEntropyLossFlat, FocalLossFlat
from pipekit.tabular import Categorify, Normalize, Tabular, tabular_learner


@pytest.fixture(scope="module")
def tab():
    df = pl.read_csv(D.path("adult_sample") / "adult.csv").head(1500)
    return Tabular(df, procs=[Categorify, Normalize], cat_names=["workclass", "sex"], cont_names=["age"],
                   y_names="race", splits=RandomSplitter(0.2, seed=0))


@pytest.mark.parametrize("loss", [CrossEntropyLossFlat(weight=[5.0, 2.0, 2.0, 5.0, 0.25]), FocalLossFlat()],
                         ids=["weighted", "focal"])
def test_a_learner_trained_with_another_loss_predicts_and_only_its_refit_is_refused(tab, loss, tmp_path):
    learn = tabular_learner(tab.dataloaders(bs=128, seed=0), layers=[8], loss_func=loss)
    learn.fit_one_cycle(1, 1e-2)
    net = TorchTabular.from_learner(learn, epochs=1)
    assert net.learner_loss == repr(loss)
    expected = learn.get_preds()[0].numpy()
    np.testing.assert_allclose(net.predict(tab.valid), expected, atol=1e-5)
    np.testing.assert_allclose(MeanEnsemble({"net": net}).predict(tab.valid), expected, atol=1e-5)
    gbm = GBM("classification", n_estimators=10, n_jobs=1, seed=0).fit(tab.train)
    assert WeightedEnsemble({"net": net, "gbm": gbm}, n_iter=3).fit(tab.valid).predict(tab.valid).shape == \
        expected.shape
    loaded = pipekit.load(pipekit.save(net, tmp_path / "net.pipekit"))
    np.testing.assert_allclose(loaded.predict(tab.valid), expected, atol=1e-5)
    refused = rf"loss_func={type(loss).__name__}\(.*this refit .*would train another net"
    for again in (net.clone(), loaded.clone(), net):
        with pytest.raises(ParameterError, match=refused):
            again.fit(tab.train)
    with pytest.raises(ParameterError, match=refused):
        BaggedModel(net.clone(), n_folds=2).fit(tab.train)
    with pytest.raises(ParameterError, match=refused):
        StackingEnsemble({"net": net.clone(), "gbm": gbm.clone()}, n_folds=2).fit(tab.train)


def test_the_default_loss_given_as_such_still_refits(tab, tmp_path):
    learn = tabular_learner(tab.dataloaders(bs=128, seed=0), layers=[8], loss_func=CrossEntropyLossFlat())
    learn.fit_one_cycle(1, 1e-2)
    net = TorchTabular.from_learner(learn, epochs=1)
    assert net.learner_loss is None
    assert net.clone().fit(tab.train).predict(tab.valid).shape == (len(tab.valid), 5)
    record = pipekit.load(pipekit.save(net, tmp_path / "net.pipekit")).to_record({})
    assert "learner_loss" not in record["params"]  # the record an older pipekit wrote for this net
