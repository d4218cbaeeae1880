"""``collab_learner(use_nn=True, config=...)`` takes the config ``tabular_learner`` takes (fastai's
``tabular_config``): ``y_range`` from it, ``bn_final``, ``bn_cont``, fastai's ``act_cls`` at the ReLU the net has
built in, and refuses a wrong key by name. Under ``bn_final`` the output's batch norm starts as every batch norm
pipekit builds (shift 1e-3). Real movie_lens_sample ratings."""

from __future__ import annotations

import polars as pl
import pytest
import torch
from torch import nn

from pipekit.core.errors import ParameterError
from pipekit.datasets import path
from pipekit.learn import load_learner
from pipekit.tabular import (CollabDataLoaders, EmbeddingNN, TabularModel, collab_learner,
                             tabular_config)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def dls():
    ratings = pl.read_csv(path("movie_lens_sample") / "ratings.csv").head(1500)
    return CollabDataLoaders.from_df(ratings, bs=64, seed=42)


def _codes(dls) -> torch.Tensor:
    return next(iter(dls.valid))[0]


def test_y_range_from_config(dls):
    learn = collab_learner(dls, use_nn=True, layers=[100, 50], config=tabular_config(y_range=(0, 5.5)))
    assert isinstance(learn.model, EmbeddingNN) and learn.model.y_range == (0.0, 5.5)
    with torch.no_grad():
        out = learn.model.eval()(_codes(dls))
    assert ((out > 0) & (out < 5.5)).all()
    # the same range given twice is one range; two different ones are refused, naming both
    same = collab_learner(dls, use_nn=True, y_range=(0, 5.5), config=tabular_config(y_range=(0, 5.5), ps=0.1))
    assert same.model.y_range == (0.0, 5.5)
    with pytest.raises(ParameterError, match="y_range"):
        collab_learner(dls, use_nn=True, y_range=(0, 5), config=tabular_config(y_range=(0, 5.5)))


def test_bn_final_bn_cont_and_act_cls(dls):
    model = collab_learner(dls, use_nn=True, layers=[100, 50], config=tabular_config(bn_final=True)).model
    lin, bn = model.layers[-2], model.layers[-1]
    assert type(lin) is nn.Linear and lin.out_features == 1
    assert type(bn) is nn.BatchNorm1d and torch.allclose(bn.bias, torch.full((1,), 1e-3))
    assert model(_codes(dls)).shape == (64, 1)
    no_bn_cont = collab_learner(dls, use_nn=True, config=tabular_config(bn_cont=False)).model
    assert no_bn_cont.bn_cont is None
    relu = collab_learner(dls, use_nn=True, config={"act_cls": nn.ReLU(inplace=True), "lin_first": True}).model
    assert sum(type(m) is nn.ReLU for m in relu.layers) == 1


def test_bad_config_refused_by_name(dls):
    with pytest.raises(ParameterError, match=r"collab_learner: config has unknown key\(s\) \['p'\]; did you mean 'ps'"):
        collab_learner(dls, use_nn=True, config={"p": 0.1})
    with pytest.raises(ParameterError, match=r"collab_learner: config.act_cls=GELU"):
        collab_learner(dls, use_nn=True, config={"act_cls": nn.GELU()})
    with pytest.raises(ParameterError, match="config.body is not taken"):
        collab_learner(dls, use_nn=True, config={"body": nn.Identity()})
    with pytest.raises(ParameterError, match="config.use_bn='yes'"):
        collab_learner(dls, use_nn=True, config={"use_bn": "yes"})


def test_config_without_use_nn_refused(dls):
    # a config's y_range would be dropped by the dot-product model: refused rather than ignored
    with pytest.raises(ParameterError, match="use_nn=True"):
        collab_learner(dls, config=tabular_config(y_range=(0, 5.5)))


def test_bn_final_collab_exports_and_loads(dls, tmp_path):
    learn = collab_learner(dls, use_nn=True, layers=[16], config=tabular_config(bn_final=True, y_range=(0, 5.5)),
                           path=tmp_path)
    learn.fit(1, 1e-2)
    x = _codes(dls)
    with torch.no_grad():
        want = learn.model.eval()(x)
    back = load_learner(learn.export("nn.pipekit"))
    with torch.no_grad():
        assert torch.allclose(back.model.eval()(x), want)


def test_tabular_model_bn_final_starts_as_pipekit_batch_norms():
    torch.manual_seed(0)
    m = TabularModel([(10, 6), (3, 3)], 2, 1, layers=[16], bn_final=True)
    bn = m.layers[-1]
    assert type(bn) is nn.BatchNorm1d and bn.bias.tolist() == pytest.approx([1e-3])
    assert bn.weight.tolist() == [1.0]
