"""TorchTabular.from_learner refuses a Learner trained with another loss than the default one, which a refit
(clone().fit, stacking's folds) would not train with."""

import polars as pl
import pytest

import pipekit.datasets as D
from pipekit.core.errors import ParameterError
from pipekit.data import RandomSplitter
from pipekit.ensemble import TorchTabular
from pipekit.learn import CrossEntropyLossFlat, FocalLossFlat
from pipekit.tabular import Categorify, Normalize, Tabular, tabular_learner


@pytest.fixture(scope="module")
def tab():
    df = pl.read_csv(D.path("adult_sample") / "adult.csv").head(600)
    return Tabular(df, procs=[Categorify, Normalize], cat_names=["workclass", "sex"], cont_names=["age"],
                   y_names="race", splits=RandomSplitter(0.2, seed=0))


@pytest.mark.parametrize("loss", [CrossEntropyLossFlat(weight=[5.0, 2.0, 2.0, 5.0, 0.25]), FocalLossFlat()],
                         ids=["weighted", "focal"])
def test_a_learner_trained_with_another_loss_is_refused(tab, loss):
    learn = tabular_learner(tab.dataloaders(bs=128, seed=0), layers=[8], loss_func=loss)
    learn.fit_one_cycle(1, 1e-2)
    with pytest.raises(ParameterError, match=rf"loss_func={type(loss).__name__}\(.*a TorchTabular trains with "
                                             r"CrossEntropyLossFlat\(\)"):
        TorchTabular.from_learner(learn)


def test_the_default_loss_given_as_such_still_joins(tab):
    learn = tabular_learner(tab.dataloaders(bs=128, seed=0), layers=[8], loss_func=CrossEntropyLossFlat())
    learn.fit_one_cycle(1, 1e-2)
    net = TorchTabular.from_learner(learn, epochs=1)
    assert net.clone().fit(tab.train).predict(tab.valid).shape == (len(tab.valid), 5)
