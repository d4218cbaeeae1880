"""A learner export's training settings, metrics and learner class are checked as they are read, by the same rules
that checked them as they were written: what ``learn.export`` writes loads, and a crafted field is refused by
``load_learner`` naming the file and the field, rather than failing at the first fit, validate or predict.

Real learners are exported on mnist_tiny (a small CNN with ``partial(SGD, mom=0.9)``) and on imdb_sample (a text
classifier and a language model); copies with one field of record.json edited are loaded:

- every keyword argument of each of pipekit's optimisers, at a value other than its default (Adam's ``fused=True`` and
  ``fused=False`` among them), and a user's optimiser's argument whose default is None given True or a number, export
  and load as they were (Adam's ``fused`` used to export and then be refused by load_learner);
- ``learner.opt_kwargs`` out of the optimiser's range (SGD ``mom=2.0``, Adam ``sqr_mom=7`` or ``eps=-1``, ranger
  ``k=2.5``, QHAdam ``nu_1=5``) are refused with the range, as the optimiser refuses them when built (they used to
  load and fail at the first fit, in torch's words for Adam);
- a FuncMetric whose function is a pipekit metric scores what that metric scores: rmse wrapped in it is refused by a
  Learner of classes, and a file's is left out with a warning naming it (it used to score class indices);
- FBeta's and FBetaMulti's ``beta`` of infinity or 1e308 is refused (it used to score a meaningless 1.0, or raise a
  bare OverflowError at validate);
- ``learner.class`` naming the language model's learner for an image or a text classifier's export is refused (it
  used to load and fail at predict).
"""
from __future__ import annotations

import inspect
import math
import warnings
from functools import partial
from pathlib import Path

import polars as pl
import pytest
import torch
from file_edits import edited_copy, refused_quickly

import pipekit
import pipekit.datasets as D
from pipekit.core import ParameterError
from pipekit.core.registry import import_builtin_packages, registered
from pipekit.data import CategoryBlock, ColReader, ColSplitter, DataBlock
from pipekit.learn import SGD, Adam, Learner, load_learner, simple_cnn
from pipekit.metrics import FBeta, FBetaMulti, FuncMetric, accuracy, rmse
from pipekit.text import AWD_LSTM, LMLearner, TextBlock, language_model_learner, text_classifier_learner

pytestmark = pytest.mark.usefixtures("one_torch_thread")

DIGIT = D.path("mnist_tiny") / "valid" / "3" / "7006.png"
TINY_AWD = dict(emb_sz=16, n_hid=16, n_layers=1)


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("learner_fields")


@pytest.fixture(scope="module")
def small_export(mnist_dls, out) -> Path:
    """A small CNN on mnist_tiny trained with SGD and momentum, and accuracy: the file crafted below."""
    learn = Learner(mnist_dls, simple_cnn(1, 2, (4, 8)), opt_func=partial(SGD, mom=0.9), wd=0.05, metrics=[accuracy])
    return learn.export(out / "small.pipekit")


# ------------------------------------------------------------------------------- optimiser keyword arguments
#: a value other than the default of every keyword argument of pipekit's optimisers, each one the optimiser takes
OTHER_VALUES = {"lr": 0.05, "mom": 0.8, "sqr_mom": 0.9, "eps": 1e-7, "wd": 0.1, "decouple_wd": False, "fused": True,
                "beta": 0.5, "nu_1": 0.5, "nu_2": 0.8, "k": 3, "alpha": 0.25}
PIPEKITS = sorted(n for n in registered("optimizer") if n.startswith("pipekit."))


def _every_argument(func) -> dict:
    """Every keyword argument of optimiser ``func`` (not its parameters) at a value of :data:`OTHER_VALUES`."""
    params = {k: p for k, p in inspect.signature(func).parameters.items() if k != "params"}
    missing = sorted(set(params) - set(OTHER_VALUES))
    assert not missing, f"give OTHER_VALUES a value of {missing} ({func.__name__}'s arguments)"
    kwargs = {k: OTHER_VALUES[k] for k in params}
    assert all(kwargs[k] != p.default for k, p in params.items()), "each value must differ from the default"
    return kwargs


def _round_trip(dls, opt_func, path: Path):
    """The loaded learner of an export of a learner trained with ``opt_func``, no warning allowed at export."""
    learn = Learner(dls, simple_cnn(1, 2, (4, 8)), opt_func=opt_func, path=path.parent)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an optimiser a file cannot hold would be warned about, and left out
        fname = learn.export(path.name)
    return load_learner(fname)


@pytest.mark.parametrize("name, change", [(n, {}) for n in PIPEKITS] + [("pipekit.learn.Adam", {"fused": False})],
                         ids=[n.rsplit(".", 1)[1] for n in PIPEKITS] + ["Adam_unfused"])
def test_every_argument_of_each_of_pipekits_optimisers_round_trips(mnist_dls, out, name, change):
    func = registered("optimizer")[name]
    kwargs = {**_every_argument(func), **change}
    loaded = _round_trip(mnist_dls, partial(func, **kwargs), out / f"{name}_{len(change)}.pipekit")
    assert isinstance(loaded.opt_func, partial) and loaded.opt_func.func is func
    assert loaded.opt_func.keywords == kwargs
    assert [type(v) for v in loaded.opt_func.keywords.values()] == [type(v) for v in kwargs.values()]  # False, not 0
    w = torch.nn.Parameter(torch.ones(3))
    loaded.opt_func([{"params": [w]}], lr=0.01)  # values the optimiser takes: it builds with them


def clipped_sgd(params, lr, mom=0.0, clip=None):
    """A user's optimiser: ``clip`` (default None) takes True, False or a number, as Adam's ``fused`` takes them."""
    return SGD(params, lr, mom=mom)


pipekit.register(clipped_sgd, name="tests.security.crafted_learner_fields.clipped_sgd", kind="optimizer")


def test_a_users_optimiser_argument_of_default_none_round_trips(mnist_dls, out):
    for clip in (True, 2.5):
        loaded = _round_trip(mnist_dls, partial(clipped_sgd, clip=clip, mom=0.5), out / f"clip_{clip}.pipekit")
        assert loaded.opt_func.func is clipped_sgd and loaded.opt_func.keywords == {"clip": clip, "mom": 0.5}
    # a number's argument given True cannot be read back as the optimiser takes it: said at export, and left out
    learn = Learner(mnist_dls, simple_cnn(1, 2, (4, 8)), opt_func=partial(clipped_sgd, mom=True), path=out)
    with pytest.warns(UserWarning, match=r"keyword argument 'mom' must be a finite number.*trains with Adam"):
        fname = learn.export("mom_true.pipekit")
    assert load_learner(fname).opt_func is Adam


def _opt(opt_func: str | None, **kwargs):
    def edit(rec):
        if opt_func is not None:
            rec["learner"]["opt_func"] = {"__ref__": opt_func}
        rec["learner"]["opt_kwargs"] = kwargs
    return edit


@pytest.mark.parametrize("edit, field, said", [
    (_opt(None, mom=2.0), "mom", "SGD: mom=2.0 is not accepted; expected a number in [0, 1)"),
    (_opt(None, wd=-5.0), "wd", "SGD: wd=-5.0 is not accepted; expected a number in [0, 100]"),
    (_opt("pipekit.learn.Adam", sqr_mom=7.0), "sqr_mom",
     "Adam: sqr_mom=7.0 is not accepted; expected a number in [0, 1)"),
    (_opt("pipekit.learn.Adam", eps=-1.0), "eps", "Adam: eps=-1.0 is not accepted"),
    (_opt("pipekit.learn.Adam", fused=1), "fused", "Adam: fused=1 is not accepted; expected True, False or None"),
    (_opt("pipekit.learn.ranger", k=2.5), "k", "ranger: k=2.5 is not accepted; expected an integer"),
    (_opt("pipekit.learn.QHAdam", nu_1=5.0), "nu_1", "QHAdam: nu_1=5.0 is not accepted; expected a number in [0, 1]"),
], ids=["sgd_mom", "sgd_wd", "adam_sqr_mom", "adam_eps", "adam_fused_int", "ranger_k", "qhadam_nu_1"])
def test_an_optimiser_argument_out_of_its_range_is_refused_at_load(small_export, tmp_path, edit, field, said):
    import_builtin_packages()  # not what is timed here
    bad = edited_copy(small_export, edit, tmp_path / "bad.pipekit")
    refused_quickly(load_learner, bad, named=(f"record.json field 'learner.opt_kwargs.{field}'", said))


def test_an_optimiser_argument_in_its_range_still_loads(small_export, tmp_path):
    ok = edited_copy(small_export, _opt("pipekit.learn.ranger", k=2, mom=0.5), tmp_path / "ok.pipekit")
    assert load_learner(ok).opt_func.keywords == {"k": 2, "mom": 0.5}


def test_an_optimiser_built_in_code_names_the_argument_as_a_file_is_refused():
    w = torch.nn.Parameter(torch.ones(2))
    with pytest.raises(ParameterError, match=r"Adam: sqr_mom=7.0 is not accepted; expected a number in \[0, 1\)"):
        Adam([{"params": [w]}], lr=0.1, sqr_mom=7.0)  # torch said 'Invalid beta parameter at index 1'
    with pytest.raises(ParameterError, match=r"SGD: wd=inf is not accepted"):
        SGD([{"params": [w]}], lr=0.1, wd=math.inf)


# ------------------------------------------------------------------------------------------------- metrics
def _metrics(*records):
    def edit(rec):
        rec["metrics"] = list(records)
    return edit


def _record(cls: str, **params) -> dict:
    return {"class": f"pipekit.metrics.{cls}", "params": params, "state": {}}


def test_a_pipekit_metric_as_funcmetrics_function_scores_what_it_scores(mnist_dls):
    with pytest.raises(ParameterError, match=r"the metric RMSE \(FuncMetric\) scores numbers.*classes"):
        Learner(mnist_dls, simple_cnn(1, 2, (4, 8)), metrics=[FuncMetric(rmse)])
    learn = Learner(mnist_dls, simple_cnn(1, 2, (4, 8)), metrics=[FuncMetric(accuracy), accuracy])
    wrapped, itself = learn.validate()[1:]
    assert wrapped == pytest.approx(itself)


@pytest.mark.parametrize("wrapped, says", [("RMSE", "scores numbers"),
                                           ("AccuracyMulti", "scores several 0/1 labels per item")])
def test_a_files_funcmetric_of_a_metric_of_other_targets_is_left_out(small_export, mnist_dls, tmp_path, wrapped, says):
    path = edited_copy(small_export, _metrics(_record("FuncMetric", fn=_record(wrapped)), _record("Accuracy")),
                       tmp_path / "wrapped.pipekit")
    with pytest.warns(UserWarning, match=says) as caught:
        learn = load_learner(path)
    assert str(path) in str(caught[0].message) and wrapped in str(caught[0].message)
    assert [m.name for m in learn.metrics] == ["accuracy"]
    learn.dls = mnist_dls
    assert len(learn.validate()) == 2  # the loss and accuracy


@pytest.mark.parametrize("cls", ["FBeta", "FBetaMulti"])
@pytest.mark.parametrize("beta", [math.inf, 1e308])
def test_an_fbeta_of_an_absurd_beta_is_refused(small_export, tmp_path, cls, beta):
    bad = edited_copy(small_export, _metrics(_record(cls, beta=beta)), tmp_path / "beta.pipekit")
    refused_quickly(load_learner, bad, named=("field 'metrics[0]'", f"{cls}: beta={beta!r}", "(0, 1e+06]"))
    with pytest.raises(ParameterError, match=r"beta=.* is not accepted; expected a number in \(0, 1e\+06\]"):
        (FBeta if cls == "FBeta" else FBetaMulti)(beta)


# --------------------------------------------------------------------------------------------- learner class
def _learner_class(name: str):
    def edit(rec):
        if isinstance(rec["learner"], dict):
            rec["learner"]["class"] = name
        else:
            rec["learner"] = name
    return edit


@pytest.fixture(scope="module")
def text_exports(out) -> dict[str, Path]:
    texts = pl.read_csv(D.path("imdb_sample") / "texts.csv")
    texts = pl.concat([texts.filter(~pl.col("is_valid")).head(30), texts.filter(pl.col("is_valid")).head(10)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clas = DataBlock(blocks=(TextBlock.from_df("text", cache_dir=False), CategoryBlock), get_x=ColReader("text"),
                         get_y=ColReader("label"), splitter=ColSplitter("is_valid")).dataloaders(texts, bs=8, seed=0)
        lm = DataBlock(blocks=TextBlock.from_df("text", is_lm=True, cache_dir=False), get_x=ColReader("text"),
                       splitter=ColSplitter("is_valid")).dataloaders(texts, bs=4, seq_len=16, seed=0)
    return {"clas": text_classifier_learner(clas, AWD_LSTM, config=TINY_AWD, lin_ftrs=[8]).export(out / "clas.pipekit"),
            "lm": language_model_learner(lm, AWD_LSTM, config=TINY_AWD).export(out / "lm.pipekit")}


def test_the_language_models_learner_is_refused_for_other_data(small_export, text_exports, tmp_path):
    for path, blocks in ((small_export, "ImageBlock, CategoryBlock"),
                         (text_exports["clas"], "TextBlock, CategoryBlock")):
        bad = edited_copy(path, _learner_class("pipekit.text.LMLearner"), tmp_path / f"lm_{path.stem}.pipekit")
        refused_quickly(load_learner, bad, named=("names pipekit.text.LMLearner", "is_lm=True", blocks))
    # the language model's own file loads as it, and continues a text
    lm = load_learner(text_exports["lm"])
    assert type(lm) is LMLearner and lm.predict("this movie", n_words=3, seed=0).startswith("this movie")
    # another learner class for an image classifier's file loads (a text learner trains any recurrent model)
    ok = edited_copy(small_export, _learner_class("pipekit.text.TextLearner"), tmp_path / "text_learner.pipekit")
    assert load_learner(ok).predict(DIGIT)[0] in ("3", "7")
