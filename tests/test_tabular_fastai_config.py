"""fastai's tabular tutorial and Rossmann example as written: ``tabular_config``, a ``y_range`` inside ``config``,
``dls.c = 1``, and fastai's spellings of TabularPandas, FillMissing and ``to.dataloaders`` arguments."""
from __future__ import annotations

import re
from collections import defaultdict

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from pipekit.core.errors import ParameterError
from pipekit.datasets import path
from pipekit.learn import MSELossFlat, exp_rmspe
from pipekit.tabular import Categorify, FillMissing, Normalize, TabularPandas, add_datepart, tabular_learner

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CAT = ["workclass", "education", "occupation"]
CONT = ["age", "fnlwgt", "education-num"]  # education-num has blanks: FillMissing fills and flags them


@pytest.fixture(scope="module")
def adult() -> pd.DataFrame:
    return pd.read_csv(path("adult_sample") / "adult.csv", skipinitialspace=True).head(3000)


@pytest.fixture(scope="module")
def ross() -> pd.DataFrame:
    """The Rossmann example's frame: log sales of open days, the date's parts added."""
    df = pd.read_csv(path("rossmann_sample") / "train.csv", low_memory=False, nrows=4000)
    df = df[df.Sales > 0].head(1500).reset_index(drop=True)
    df["Sales"] = np.log(df["Sales"].astype(float))
    return add_datepart(df, "Date", drop=False)


def adult_table(df: pd.DataFrame, procs=(Categorify, FillMissing, Normalize), **kwargs):
    return TabularPandas(df, list(procs), CAT, CONT, y_names="salary",
                         splits=(list(range(2500)), list(range(2500, 3000))), **kwargs)


def ross_table(ross: pd.DataFrame):
    return TabularPandas(ross, [Categorify, FillMissing, Normalize], ["Store", "DayOfWeek", "Promo", "StateHoliday"],
                         ["Customers", "Day"], y_names="Sales", splits=(list(range(1200)), list(range(1200, 1500))))


def ross_dls(ross: pd.DataFrame):
    return ross_table(ross).dataloaders(bs=512)


def test_the_rossmann_example_with_tabular_config_trains_and_stays_in_y_range(ross, tmp_path):
    from pipekit.tabular import tabular_config

    to = TabularPandas(ross, [Categorify, FillMissing, Normalize], ["Store", "DayOfWeek", "Promo", "StateHoliday"],
                       ["Customers", "Day"], y_names="Sales", splits=(list(range(1200)), list(range(1200, 1500))))
    dls = to.dataloaders(bs=512, path=tmp_path)
    dls.c = 1
    y_range = (0.0, float(np.log(1.2) + ross.Sales.max()))
    torch.manual_seed(0)
    learn = tabular_learner(dls, layers=[1000, 500], loss_func=MSELossFlat(),
                            config=tabular_config(ps=[0.001, 0.01], embed_p=0.04, y_range=y_range), metrics=exp_rmspe)
    model = learn.model
    assert model.y_range == y_range and model.emb_drop.p == 0.04
    assert [m.p for m in model.layers if isinstance(m, nn.Dropout)] == [0.001, 0.01]
    assert model.layers[-1].out_features == 1
    learn.fit(1, 1e-3)  # three training batches
    preds, targs = learn.get_preds()
    assert preds.shape == (300, 1) and np.isfinite(learn.recorder.values[-1]).all()
    assert bool(((preds > y_range[0]) & (preds < y_range[1])).all())
    # the net is the one fastai's tabular_config asks for: ReLU hidden blocks, linear layer first
    assert [type(m).__name__ for m in model.layers][:5] == ["Linear", "ReLU", "BatchNorm1d", "Dropout", "Linear"]


def test_a_y_range_in_a_plain_config_dict_is_used_and_the_dict_is_left_as_it_is(ross):
    dls = ross_dls(ross)
    config = {"y_range": (6.0, 11.0), "ps": 0.1}
    learn = tabular_learner(dls, layers=[20, 10], config=config)
    assert learn.model.y_range == (6.0, 11.0)
    assert config == {"y_range": (6.0, 11.0), "ps": 0.1}
    assert [m.p for m in learn.model.layers if isinstance(m, nn.Dropout)] == [0.1, 0.1]
    # given twice: the same range is fine, two ranges are refused by name
    assert tabular_learner(dls, layers=[20], config=config, y_range=[6, 11]).model.y_range == (6.0, 11.0)
    with pytest.raises(ParameterError, match=r"y_range=\(0, 12\) and config's y_range=\(6.0, 11.0\) are one argument"):
        tabular_learner(dls, layers=[20], config=config, y_range=(0, 12))


def test_unknown_and_unsupported_config_keys_are_refused_by_name(ross):
    from pipekit.tabular import tabular_config

    dls = ross_dls(ross)
    with pytest.raises(ParameterError, match=r"tabular_learner: config has unknown key\(s\) \['p'\]; did you mean "
                                             r"'ps'\? The accepted keys are \['ps', 'embed_p', 'y_range', 'use_bn', "
                                             r"'bn_final', 'bn_cont', 'body', 'act_cls', 'lin_first'\]"):
        tabular_learner(dls, layers=[20], config=dict(p=0.1))
    with pytest.raises(ParameterError, match=r"tabular_config: config has unknown key\(s\) \['drop'\]"):
        tabular_config(drop=0.1)
    with pytest.raises(ParameterError, match=r"tabular_config: config.embed_p=1.5 is not accepted"):
        tabular_config(embed_p=1.5)
    # fastai's default activation and order are pipekit's net: accepted, the same modules
    torch.manual_seed(0)
    plain = tabular_learner(dls, layers=[20, 10]).model
    for relu in (nn.ReLU(inplace=True), nn.ReLU(), nn.ReLU):
        same = tabular_learner(dls, layers=[20, 10], config=tabular_config(act_cls=relu, lin_first=True)).model
        assert repr(same) == repr(plain)
    # another activation, or fastai's other order, is not built: refused with the reason and what to do
    with pytest.raises(ParameterError, match=r"config.act_cls=Mish\(\) is not built by pipekit's TabularModel, "
                                             r"whose hidden blocks use a ReLU.*body="):
        tabular_learner(dls, layers=[20], config=dict(act_cls=nn.Mish()))
    with pytest.raises(ParameterError, match=r"tabular_config: config.act_cls=<class 'torch.nn.modules.activation"
                                             r".GELU'> is not built"):
        tabular_config(act_cls=nn.GELU)
    with pytest.raises(ParameterError, match=r"config.lin_first=False is not built by pipekit's TabularModel, whose "
                                             r"hidden blocks are Linear, ReLU, BatchNorm1d, Dropout"):
        tabular_learner(dls, layers=[20], config=dict(lin_first=False))
    with pytest.raises(ParameterError, match=r"config must be a dict of TabularModel options"):
        tabular_learner(dls, layers=[20], config=[("ps", 0.1)])


def test_dls_c_takes_the_size_it_has_and_refuses_another(ross, adult):
    dls = ross_dls(ross)
    dls.c = 1  # the Rossmann notebook's line: a regression target has size 1
    assert dls.c == 1 and tabular_learner(dls, layers=[8]).model.layers[-1].out_features == 1
    dls.c = np.int64(1)
    with pytest.raises(ParameterError, match=r"dls.c = 2: these loaders have a target \(RegressionBlock\) of size "
                                             r"1, .* pass n_out=2 to the learner"):
        dls.c = 2
    with pytest.raises(ParameterError, match=r"dls.c = True"):
        dls.c = True
    cls_dls = adult_table(adult).dataloaders(bs=64)
    cls_dls.c = 2
    with pytest.raises(ParameterError, match=r"of size 2, .*n_out=3"):
        cls_dls.c = 3
    assert cls_dls.c == 2 and tabular_learner(cls_dls, layers=[8]).model.layers[-1].out_features == 2


def test_tabular_pandas_takes_fastais_inplace_reduce_memory_and_do_setup(adult):
    before = adult.copy()
    plain = adult_table(adult)
    for kwargs in ({"inplace": True}, {"inplace": False}, {"reduce_memory": True}, {"reduce_memory": False},
                   {"do_setup": True}, {"inplace": True, "reduce_memory": True, "do_setup": True}):
        to = adult_table(adult, **kwargs)
        assert to.items.equals(plain.items), kwargs
        assert to.train_idx.tolist() == plain.train_idx.tolist()
    pd.testing.assert_frame_equal(adult, before)  # the user's frame is never changed
    # what reduce_memory asks for is what the processed table holds: codes in small integers, numbers as Float32
    assert plain.items.dtypes["workclass"] == np.int8 and plain.items.dtypes["age"] == np.float32
    with pytest.raises(ParameterError, match=r"do_setup=False .* to.new\(df\)"):
        adult_table(adult, do_setup=False)
    with pytest.raises(ParameterError, match=r"Tabular: inplace='yes' is not accepted; expected True or False"):
        adult_table(adult, inplace="yes")


def test_fillmissing_takes_fastais_fill_strategy_and_fill_vals(adult):
    from pipekit.tabular import FillStrategy

    def processed(fill):
        return adult_table(adult, procs=(Categorify, fill, Normalize)).items

    def median(c, fill):  # fastai's FillStrategy.median, a function of the column
        return c.median()

    assert processed(FillMissing(fill_strategy=FillStrategy.median)).equals(processed(FillMissing(strategy="median")))
    assert processed(FillMissing(fill_strategy=FillStrategy.mode)).equals(processed(FillMissing(strategy="mode")))
    assert not processed(FillMissing(strategy="mode")).equals(processed(FillMissing(strategy="median")))
    assert processed(FillMissing(FillStrategy.constant, fill_vals={"education-num": -3.0}, add_col=False)).equals(
        processed(FillMissing(strategy="constant", fill_value=-3.0, add_col=False)))
    # fastai's default fill_vals (a defaultdict of int) fills every column with 0, as pipekit's fill_value=0
    assert processed(FillMissing(fill_strategy=FillStrategy.constant, fill_vals=defaultdict(int))).equals(
        processed(FillMissing(strategy="constant")))
    to = adult_table(adult, procs=(Categorify, FillMissing(FillStrategy.constant, fill_vals={"education-num": -3.0}),
                                   Normalize))
    assert to.fill_missing.na_dict == {"education-num": -3.0} and to.fill_missing.fill_strategy == "constant"
    fm = FillMissing(fill_strategy=FillStrategy.constant, fill_vals={"age": 1.0})
    assert fm.clone().fill_value == {"age": 1.0} and repr(fm) == "FillMissing(strategy='constant', fill_value={'age': 1.0})"
    with pytest.raises(ParameterError, match=r"fill_value names \['agee'\], which are not continuous columns; did "
                                             r"you mean 'age'"):
        processed(FillMissing(FillStrategy.constant, fill_vals={"agee": 1.0}))
    with pytest.raises(ParameterError, match=r"fill_strategy=median is not accepted; .*this one is fastai's "
                                             r"FillStrategy.median: pass pipekit's, or strategy='median'"):
        FillMissing(fill_strategy=median)
    with pytest.raises(ParameterError, match=r"strategy='mode' and fill_strategy='constant' are one argument"):
        FillMissing(strategy="mode", fill_strategy=FillStrategy.constant)
    with pytest.raises(ParameterError, match=r"FillMissing: unknown argument\(s\) \['fill_val'\]; did you mean "
                                             r"'fill_vals'"):
        FillMissing(fill_val={"age": 1.0})
    with pytest.raises(ParameterError, match=r"defaultdict of default 5"):
        FillMissing(fill_vals=defaultdict(lambda: 5))


def test_fillstrategy_mode_fills_with_the_most_frequent_training_value(adult):
    from pipekit.tabular import FillStrategy

    to = adult_table(adult, procs=(Categorify, FillMissing(fill_strategy=FillStrategy.mode), Normalize))
    train = adult.iloc[:2500]["education-num"]
    mode = train.dropna().value_counts().idxmax()  # fastai's FillStrategy.mode
    assert mode != train.median()  # 9 against 10: the two strategies differ here
    assert to.fill_missing.na_dict == {"education-num": mode}
    # every blank, Normalize undone, holds the mode
    blank = adult["education-num"].isna().to_numpy()
    norm = to.normalize
    raw = to.items["education-num"].to_numpy()[blank] * norm.stds_["education-num"] + norm.means_["education-num"]
    assert blank.sum() > 20 and np.allclose(raw, mode, atol=1e-4)


def test_to_dataloaders_takes_shuffle_train(adult):
    to = adult_table(adult)
    fixed = to.dataloaders(bs=64, shuffle_train=False, seed=0)
    assert fixed.train.shuffle is False
    first = [b[0] for b in fixed.train][:2]
    again = [b[0] for b in fixed.train][:2]
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    plain = to.dataloaders(bs=64, shuffle=False, seed=0)
    assert torch.equal(next(iter(plain.train))[0], first[0])
    assert to.dataloaders(bs=64, shuffle_train=True).train.shuffle is True
    with pytest.raises(ParameterError, match=r"shuffle=False and shuffle_train=True are one argument"):
        to.dataloaders(bs=64, shuffle=False, shuffle_train=True)
    # TabularDataLoaders.from_df takes it too (fastai's tabular tutorial passes DataLoaders' keywords through)
    import pandas as pd

    from pipekit.tabular import TabularDataLoaders

    df = pd.read_csv(path("adult_sample") / "adult.csv", nrows=300)
    dls = TabularDataLoaders.from_df(df, cat_names=["workclass"], cont_names=["age"], y_names="salary",
                                     shuffle_train=False, seed=0)
    assert dls.train.shuffle is False
    with pytest.raises(ParameterError, match=r"TabularDataLoaders.from_df: shuffle=False and shuffle_train=True"):
        TabularDataLoaders.from_df(df, y_names="salary", shuffle=False, shuffle_train=True)


def test_torchtabular_takes_tabular_config_as_tabular_learner_does(ross, tmp_path):
    import pipekit
    from pipekit.ensemble import TorchTabular
    from pipekit.tabular import tabular_config

    to = ross_table(ross)
    y_range = (0.0, float(np.log(1.2) + ross.Sales.max()))
    config = tabular_config(ps=[0.1, 0.1], y_range=y_range, act_cls=nn.ReLU())
    net = TorchTabular("regression", layers=[20, 10], epochs=1, config=config, seed=0).fit(to.train, to.valid)
    assert net.model_.y_range == y_range and net.y_range_ == list(y_range)  # the config's range, not the targets'
    assert [m.p for m in net.model_.layers if isinstance(m, nn.Dropout)] == [0.1, 0.1]
    torch.manual_seed(0)
    assert repr(tabular_learner(to.dataloaders(bs=256), layers=[20, 10], config=config).model) == repr(net.model_)
    preds = net.predict(to.valid)
    assert bool(((preds > y_range[0]) & (preds < y_range[1])).all())
    assert net.clone().config is not None and net.get_params()["config"] == config  # parameters as given
    # a file keeps the options (fastai's ReLU is the net's own, and no data) and predicts the same
    pipekit.save(net, tmp_path / "net.pipekit")
    back = pipekit.load(tmp_path / "net.pipekit")
    assert back.config == {"ps": [0.1, 0.1], "y_range": list(y_range)}
    assert np.allclose(back.predict(to.valid), preds)
    # one range given twice: the same is fine, two are refused by name, as tabular_learner refuses them
    assert TorchTabular("regression", config=config, y_range=np.array(y_range)).config == config
    with pytest.raises(ParameterError, match=r"TorchTabular: y_range=\(0, 5\) and config's y_range=\(0.0, [\d.]+\) "
                                             r"are one argument \(.*\); give one of them"):
        TorchTabular("regression", config=config, y_range=(0, 5))
    with pytest.raises(ParameterError, match=r"TorchTabular: config.act_cls=GELU\(.*\) is not built by"):
        TorchTabular("regression", config={"act_cls": nn.GELU()})
    with pytest.raises(ParameterError, match=r"TorchTabular: config.body is not taken: .*tabular_learner\(dls, body="):
        TorchTabular("regression", config={"body": nn.Identity()})


def test_one_argument_under_two_names_is_refused_alike_everywhere(adult, ross):
    from pipekit.tabular import TabularDataLoaders

    def refused(who, name, alias, why, fn, *args, **kwargs):
        with pytest.raises(ParameterError) as e:
            fn(*args, **kwargs)
        assert re.fullmatch(rf"{re.escape(who)}: {name}=.+ and {re.escape(alias)}=.+ are one argument "
                            rf"\({re.escape(why)}\); give one of them", str(e.value)), str(e.value)

    refused("TabularDataLoaders.from_df", "bs", "batch_size", "batch_size is PyTorch's name of bs",
            TabularDataLoaders.from_df, adult.head(300), cat_names=CAT, y_names="salary", bs=16, batch_size=32)
    to = adult_table(adult)
    refused("Tabular.dataloaders", "shuffle", "shuffle_train", "shuffle_train is fastai's older name of shuffle",
            to.dataloaders, bs=64, shuffle=False, shuffle_train=True)
    refused("FillMissing", "strategy", "fill_strategy", "fill_strategy is fastai's name of strategy",
            FillMissing, strategy="mode", fill_strategy="constant")
    refused("FillMissing", "fill_value", "fill_vals", "fill_vals is fastai's name of fill_value",
            FillMissing, fill_value=1.0, fill_vals={"age": 2.0})
    assert FillMissing("constant", fill_value={"age": 2.0}, fill_vals={"age": 2.0}).fill_value == {"age": 2.0}
    dls = ross_dls(ross)
    refused("tabular_learner", "y_range", "config's y_range", "fastai's tabular_config gives y_range in the config",
            tabular_learner, dls, layers=[20], config={"y_range": (6.0, 11.0)}, y_range=(0, 12))
    # an array for a range is compared by its values
    assert tabular_learner(dls, layers=[20], config={"y_range": (6.0, 11.0)},
                           y_range=np.array([6.0, 11.0])).model.y_range == (6.0, 11.0)

    def body(n_in):
        return nn.Sequential(nn.Linear(n_in, 16), nn.Mish())

    def other(n_in):
        return nn.Sequential(nn.Linear(n_in, 8), nn.Mish())

    # a body given as body= and in the config: one argument too (body= used to win silently over the config's)
    refused("tabular_learner", "body", "config's body", "the config gives TabularModel's arguments, body among them",
            tabular_learner, dls, config={"body": other}, body=body)
    learn = tabular_learner(dls, config={"body": body}, body=body)
    assert [m.out_features for m in learn.model.layers.modules() if isinstance(m, nn.Linear)] == [16, 1]

