"""The book's text models and loaders called as fastai's (chapters 12, 15, 19): AWD_LSTM(vocab_sz, **config),
get_language_model / get_text_classifier in fastai's form, one ``defaults`` with ``cpus``, and LMDataLoader given
one stream of ids."""
from __future__ import annotations

import polars as pl
import pytest
import torch

import pipekit.datasets as D
from pipekit.core.errors import ParameterError
from pipekit.data.lists import L
from pipekit.text import TextDataLoaders
from pipekit.text.models import awd_lstm_classifier, awd_lstm_lm
from pipekit.text.loaders import LMDataLoader
from pipekit.text.models import (AWD_LSTM, awd_lstm_clas_config, awd_lstm_lm_config, get_language_model,
                                 get_text_classifier)

SMALL = dict(emb_sz=40, n_hid=60, n_layers=2)


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # a shared machine: no oversubscription stalls


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@pytest.fixture(scope="module")
def imdb() -> pl.DataFrame:
    df = pl.read_csv(D.path("imdb_sample") / "texts.csv")
    return pl.concat([df.filter(~pl.col("is_valid")).head(60), df.filter(pl.col("is_valid")).head(20)])


# ------------------------------------------------------------------ AWD_LSTM(vocab_sz, **config)
@pytest.mark.parametrize("config", [awd_lstm_lm_config, awd_lstm_clas_config], ids=["lm", "clas"])
def test_awd_lstm_takes_fastais_configs_with_bidir_false(config):
    cfg = {k: v for k, v in config.items() if k not in ("output_p", "out_bias", "tie_weights")}  # as chapter 15
    assert cfg["bidir"] is False
    enc = AWD_LSTM(100, **{**cfg, **SMALL})
    assert enc.emb_sz == 40 and enc.n_layers == 2 and enc.input_dp.p == config["input_p"]
    with pytest.raises(ParameterError, match=r"AWD_LSTM: bidir=True is not supported: .*one direction.*bidir=False"):
        AWD_LSTM(100, **{**cfg, "bidir": True})


# ------------------------------------------------------------------ fastai's get_language_model / get_text_classifier
# fastai 2.8.12's numbers, computed once with get_language_model(AWD_LSTM, 100, config=...) and
# get_text_classifier(AWD_LSTM, 100, n_class, config=...): (parameters, output shapes for a (4, 20) / (4, 30) batch)
FASTAI_LM = {"default": 20313380, "small": 44900}
FASTAI_ENCODER = {"default": 20313280, "small": 44800}  # its classifier's SentenceEncoder
FASTAI_CLAS = {("default", 2): 20375880, ("default", 5): 20376030, ("small", 2): 51240, ("small", 5): 51390}
CONFIGS = {"default": (None, None), "small": (dict(awd_lstm_lm_config, **SMALL), dict(awd_lstm_clas_config, **SMALL))}


@pytest.mark.parametrize("name", ["default", "small"])
def test_language_model_in_fastais_form_matches_fastai(name):
    config = CONFIGS[name][0]
    for arch in (AWD_LSTM, awd_lstm_lm):  # the class, or the builder language_model_learner uses
        lm = get_language_model(arch, 100, config=config).eval()
        assert n_params(lm) == FASTAI_LM[name]
        emb = 400 if config is None else 40
        logits, raw, out = lm(torch.randint(0, 100, (4, 20)))
        assert (tuple(logits.shape), tuple(raw.shape), tuple(out.shape)) == ((4, 20, 100), (4, 20, emb), (4, 20, emb))
        assert lm[1].decoder.weight is lm[0].encoder.weight  # tied, as fastai's


@pytest.mark.parametrize("name", ["default", "small"])
def test_text_classifier_in_fastais_form_matches_fastai(name):
    config = CONFIGS[name][1]
    for n_class in (2, 5):
        for arch in (AWD_LSTM, awd_lstm_classifier):
            clf = get_text_classifier(arch, 100, n_class, config=config).eval()
            assert n_params(clf[0]) == FASTAI_ENCODER[name]
            # the head's linear layers keep their bias where fastai's LinBnDrop drops it (bias=not bn): 50 + n_class
            linears = [m for m in clf[1].modules() if isinstance(m, torch.nn.Linear)]
            assert [m.out_features for m in linears] == [50, n_class]
            assert n_params(clf) - sum(m.bias.numel() for m in linears) == FASTAI_CLAS[(name, n_class)]
            assert tuple(clf(torch.randint(2, 100, (4, 30))).shape) == (4, n_class)


def test_fastais_form_scales_dropouts_as_the_learners_do():
    clf = get_text_classifier(AWD_LSTM, 100, 2, config=dict(awd_lstm_clas_config, **SMALL), drop_mult=0.5)
    head = [m.p for m in clf[1].modules() if isinstance(m, torch.nn.Dropout)]
    assert head == pytest.approx([0.2, 0.1])  # fastai's: [output_p * drop_mult] + ps
    assert clf[0].module.input_dp.p == pytest.approx(0.2) and clf[0].module.rnns[0].weight_p == pytest.approx(0.25)
    lm = get_language_model(AWD_LSTM, 100, dict(awd_lstm_lm_config, **SMALL), 0.3)
    assert lm[1].output_dp.p == pytest.approx(0.03) and lm[0].hidden_dps[0].p == pytest.approx(0.045)
    with pytest.raises(ParameterError, match=r"config: bidir=True is not supported"):
        get_text_classifier(AWD_LSTM, 100, 2, config=dict(awd_lstm_clas_config, bidir=True))
    with pytest.raises(ParameterError, match=r"y_range=\(0, 1e\+39\) is not accepted"):
        get_text_classifier(AWD_LSTM, 100, 2, y_range=(0, 1e39))


def test_both_forms_on_real_imdb_tokens(imdb):
    dls = TextDataLoaders.from_df(imdb, text_col="text", label_col="label", valid_col="is_valid", bs=8, seed=0,
                                  cache_dir=False)
    xb, _ = dls.one_batch()
    v = len(dls.vocab[0])  # the texts' vocabulary (dls.vocab[1] is the labels')
    assert v > 100 and xb.max() < v and (xb == 1).any()  # real ids, padded with xxpad
    clf = get_text_classifier(AWD_LSTM, v, 2, config=dict(awd_lstm_clas_config, **SMALL)).eval()
    built = get_text_classifier(AWD_LSTM(v, **SMALL), 2).eval()  # the form with an encoder already built
    assert n_params(clf) == n_params(built)
    for model in (clf, built):
        out = model(xb.cpu())
        assert tuple(out.shape) == (xb.shape[0], 2) and torch.isfinite(out).all()
    lm = get_language_model(AWD_LSTM, v, dict(awd_lstm_lm_config, **SMALL)).eval()
    logits = lm(xb.cpu()[:, :20])[0]
    assert tuple(logits.shape) == (xb.shape[0], 20, v) and torch.isfinite(logits).all()


def test_a_wrong_first_argument_names_both_forms():
    for call in (lambda: get_text_classifier(torch.nn.LSTM, 100, 2), lambda: get_language_model("lstm", 100),
                 lambda: get_language_model(awd_lstm_classifier, 100)):
        with pytest.raises(ParameterError, match=r"neither an AWD_LSTM encoder already built nor the AWD_LSTM class.*"
                                                 r"fastai's form.*an encoder already built"):
            call()
    with pytest.raises(ParameterError, match=r"get_language_model: .*'config'.*get_language_model\(AWD_LSTM, vocab_sz"):
        get_language_model(AWD_LSTM(100, **SMALL), config=awd_lstm_lm_config)
    with pytest.raises(ParameterError, match=r"get_text_classifier: .*n_class.*fastai's form"):
        get_text_classifier(AWD_LSTM, 100)


# ------------------------------------------------------------------ one defaults, with cpus
def test_one_defaults_with_cpus_from_the_star_import():
    import pipekit.basics
    import pipekit.text

    names: dict = {}
    exec("from pipekit.basics import *\nn_workers = min(16, defaults.cpus)", names)
    assert isinstance(names["n_workers"], int) and names["n_workers"] >= 1
    assert pipekit.text.defaults is pipekit.basics.defaults
    assert [f.__name__ for f in pipekit.text.defaults.text_proc_rules][:2] == ["fix_html", "replace_wrep"]
    assert pipekit.basics.defaults.text_spec_tok[0] == "xxunk"
    text_all: dict = {}
    exec("from pipekit.text.all import *", text_all)
    assert text_all["defaults"] is pipekit.basics.defaults


# ------------------------------------------------------------------ LMDataLoader given one stream
def test_lm_loader_given_one_stream_says_wrap_it_in_a_list():
    nums = L(range(30)) * 10
    for stream in (nums, list(nums), torch.tensor(list(nums)), torch.tensor(list(nums)).numpy()):
        with pytest.raises(ParameterError, match=r"LMDataLoader: got one stream of 300 token ids \(a \w+ of ints\); "
                                                 r".*wrap the stream in a list: LMDataLoader\(\[tensor\(nums\)\], "):
            LMDataLoader(stream, bs=4, seq_len=8)
    x, y = LMDataLoader([torch.tensor(list(nums))], bs=4, seq_len=8, device="cpu").one_batch()
    assert tuple(x.shape) == (4, 8) and (y[:, :-1] == x[:, 1:]).all()
