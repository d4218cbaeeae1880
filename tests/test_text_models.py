"""AWD_LSTM, the ULMFiT learners, encoder transfer with vocab alignment, generation (small and fast)."""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch

import pipekit
import pipekit.datasets as D
from pipekit.core.errors import ExportError, ParameterError
from pipekit.data import CategoryBlock, ColReader, ColSplitter, DataBlock, RandomSplitter, set_seed
from pipekit.learn import accuracy, load_learner, perplexity
from pipekit.text import TextBlock
from pipekit.text.learner import language_model_learner, match_embeddings, text_classifier_learner
from pipekit.text.models import AWD_LSTM, get_language_model, get_text_classifier

SMALL = dict(emb_sz=24, n_hid=48, n_layers=2)


@pytest.fixture(autouse=True)
def one_thread():
    # the test machine is shared: one thread avoids oversubscription stalls
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def imdb() -> pl.DataFrame:
    df = pl.read_csv(D.path("imdb_sample") / "texts.csv")
    return pl.concat([df.filter(~pl.col("is_valid")).head(160), df.filter(pl.col("is_valid")).head(40)])


@pytest.fixture(scope="module")
def dls_lm(imdb, tmp_path_factory):
    db = DataBlock(blocks=TextBlock.from_df("text", is_lm=True, seq_len=36,
                                            cache_dir=tmp_path_factory.mktemp("cache")),
                   get_x=ColReader("text"), splitter=RandomSplitter(0.1, seed=0))
    return db.dataloaders(imdb, bs=16, seed=0, num_workers=0)


def clas_dls(imdb, vocab=None, min_freq=3):
    db = DataBlock(blocks=(TextBlock.from_df("text", vocab=vocab, min_freq=min_freq, cache_dir=False), CategoryBlock),
                   get_x=ColReader("text"), get_y=ColReader("label"), splitter=ColSplitter("is_valid"))
    return db.dataloaders(imdb, bs=32, seed=0, num_workers=0)


def test_awd_lstm_state_dropout_and_tying():
    torch.manual_seed(0)
    enc = AWD_LSTM(50, 8, 16, 2)
    lm = get_language_model(enc)
    assert lm[1].decoder.weight is enc.encoder.weight
    x = torch.randint(2, 50, (3, 12))
    lm.eval()
    full = lm(x)[0]
    lm.reset()
    first, second = lm(x[:, :5])[0], lm(x[:, 5:])[0]  # the hidden state carries over between calls
    assert torch.allclose(torch.cat([first, second], 1), full, atol=1e-5)
    lm.reset()
    assert torch.allclose(lm(x)[0], full, atol=1e-6)
    lm.train()
    lm.reset()
    a = lm(x)[0]
    lm.reset()
    assert not torch.allclose(a, lm(x)[0])  # dropouts (incl. the dropped hidden weights) act in training
    a.sum().backward()
    assert enc.rnns[0].lstm.weight_hh_l0.grad.abs().sum() > 0
    with pytest.raises(ParameterError, match="emb_sz"):
        AWD_LSTM(50, emb_sz=0)
    with pytest.raises(ParameterError, match="weight_p"):
        AWD_LSTM(50, weight_p=1.0)


def test_classifier_ignores_batch_order_and_padding():
    torch.manual_seed(0)
    clf = get_text_classifier(AWD_LSTM(60, 8, 16, 2), n_class=3, seq_len=4).eval()
    x = torch.tensor([[1, 1, 1, 1, 1, 1, 2, 7, 9], [2, 3, 4, 5, 6, 7, 8, 9, 10], [1, 1, 1, 2, 5, 6, 7, 8, 9]])
    out = clf(x)
    assert torch.allclose(clf(x[[2, 0, 1]]), out[[2, 0, 1]], atol=1e-6)
    # a text alone gives what it gives inside a padded batch, wherever its start falls in the windows
    for r in range(3):
        alone = x[r:r + 1, int((x[r] == 1).sum()):]  # its own tokens, without the batch's padding
        assert torch.allclose(clf(alone), out[r:r + 1], atol=1e-5)
    # keeping only the last max_len outputs: the same for a row alone and in a batch too
    clf[0].max_len = 6
    short = clf(x)
    assert all(torch.allclose(clf(x[r:r + 1, int((x[r] == 1).sum()):]), short[r:r + 1], atol=1e-5) for r in range(3))
    assert torch.isfinite(clf(torch.ones(2, 5, dtype=torch.long))).all()  # all-padding rows do not give NaN


def test_windows_before_the_kept_outputs_train_without_a_graph(imdb):
    # a review longer than max_len: the windows before its last max_len tokens give no kept output and pass on a
    # detached state, so they ran with a graph for nothing (memory and backward time growing with the text's
    # length where fastai's stay at max_len's); their outputs and the gradients are as before
    from pipekit.text.models import SentenceEncoder

    dls = clas_dls(imdb)
    x = dls.one_batch()[0][:4]  # four of the longest training reviews (hundreds of tokens)
    assert int((x != 1).sum(1).min()) > 40

    def run(max_len):
        torch.manual_seed(0)
        enc = SentenceEncoder(AWD_LSTM(len(dls.vocab[0]), 8, 16, 2), seq_len=8, max_len=max_len).train()
        graphs = []
        enc.module.register_forward_hook(lambda *_: graphs.append(torch.is_grad_enabled()))
        out, mask = enc(x)
        kept = out[:, -16:]  # the loss reads the last 16 positions only
        kept.sum().backward()
        return kept, {k: p.grad for k, p in enc.named_parameters()}, graphs

    full, grads_full, graphs_full = run(None)  # every output kept: every window has its graph
    short, grads_short, graphs_short = run(16)
    assert all(graphs_full) and not all(graphs_short) and graphs_short[-2:] == [True, True]
    assert torch.allclose(short, full, atol=1e-6)
    assert all(torch.allclose(grads_short[k], g, atol=1e-6) for k, g in grads_full.items() if g is not None)


def test_match_embeddings_alignment():
    w = torch.arange(6.0).reshape(3, 2)
    new = match_embeddings(w, ["a", "b", "c"], ["c", "z", "a"])
    assert new[0].tolist() == [4.0, 5.0] and new[2].tolist() == [0.0, 1.0]
    assert new[1].tolist() == w.mean(0).tolist()
    with pytest.raises(ParameterError, match="rows"):
        match_embeddings(w, ["a"], ["a"])


def test_language_model_learner_fit_predict_and_encoder_transfer(dls_lm, imdb, tmp_path):
    set_seed(0)
    learn = language_model_learner(dls_lm, AWD_LSTM, config=SMALL, drop_mult=0.3,
                                   metrics=[accuracy, perplexity], path=tmp_path)
    before = learn.validate()[0]
    learn.fit_one_cycle(1, 3e-2)
    after = learn.validate()[0]
    assert after < before  # the LM learned something in one epoch
    names = [m.name for m in learn.metrics]
    assert names == ["accuracy", "perplexity"]
    gen = learn.predict("This movie was", n_words=8, temperature=0.7, seed=1)
    assert gen.startswith("This movie was") and len(gen.split()) > 3
    assert gen == learn.predict("This movie was", n_words=8, temperature=0.7, seed=1)
    f = learn.save_encoder("enc")
    assert f.exists() and f.suffix == ".pipekit"
    # the encoder file is a pipekit file: pipekit.load gives the AWD_LSTM with its vocabulary
    enc = pipekit.load(f)
    assert isinstance(enc, AWD_LSTM) and enc.vocab == dls_lm.blocks[0].vocab
    assert enc.n_layers == SMALL["n_layers"] and enc.rnns[0].weight_p == learn.encoder.rnns[0].weight_p
    assert all(torch.equal(a, b.cpu()) for a, b in zip(enc.state_dict().values(), learn.encoder.state_dict().values()))
    # a file whose config asks for more than its weights hold is refused before the network is built: 100,000
    # layers or a 10**8-wide embedding took minutes and gigabytes when the config was built first
    from pipekit.core.archive import read_pipekit, write_archive

    genuine = read_pipekit(f)
    for change, match in [({"n_layers": 100_000}, "n_layers=100000 where its weights hold 2 LSTM layers"),
                          ({"emb_sz": 10**8, "n_hid": 10**8}, "do not have the shapes its config gives")]:
        crafted = write_archive(tmp_path / "crafted.pipekit", "encoder", weights=genuine.tensors(),
                                record={**genuine.record, "config": {**genuine.record["config"], **change}})
        with pytest.raises(ExportError, match=match):
            pipekit.load(crafted)

    # a classifier with its own (different) vocab: shared tokens keep their trained rows
    dls = clas_dls(imdb, min_freq=2)
    assert dls.blocks[0].vocab != dls_lm.blocks[0].vocab
    clf = text_classifier_learner(dls, AWD_LSTM, config=SMALL, drop_mult=0.5, metrics=accuracy, path=tmp_path)
    clf.load_encoder("enc")
    lm_w, clf_w = learn.encoder.encoder.weight, clf.encoder.encoder.weight
    lm_v, clf_v = dls_lm.blocks[0].vocab, dls.blocks[0].vocab
    tok = next(t for t in clf_v[20:] if t in lm_v)
    assert torch.equal(clf_w[clf_v.index(tok)], lm_w[lm_v.index(tok)])
    assert torch.equal(clf.encoder.rnns[1].lstm.weight_ih_l0, learn.encoder.rnns[1].lstm.weight_ih_l0)
    # load_encoder froze all but the head; gradual unfreezing opens one more group at a time
    groups = clf.splitter(clf.model)
    assert len(groups) == SMALL["n_layers"] + 2

    def trainable():
        return [all(p.requires_grad for p in g) for g in groups]

    assert trainable() == [False, False, False, True]
    clf.fit_one_cycle(1, 2e-2)
    clf.freeze_to(-2)
    assert trainable() == [False, False, True, True]
    clf.fit_one_cycle(1, slice(1e-2 / (2.6**4), 1e-2))
    clf.unfreeze()
    assert trainable() == [True, True, True, True]
    label, idx, probs = clf.predict("An awful, boring movie. I hated it.")
    assert label in ("negative", "positive") and probs.shape == (2,) and abs(float(probs.sum()) - 1) < 1e-5
    preds, targs = clf.get_preds()
    assert preds.shape == (40, 2) and targs.shape == (40,)
    # export -> load_learner (no pickle) predicts the same on new texts
    loaded = load_learner(clf.export(tmp_path / "clf.pipekit"))
    new = pl.DataFrame({"text": ["An awful, boring movie.", "A wonderful film, I loved it. Zzqx!"]})
    a = clf.get_preds(dl=clf.dls.test_dl(new))[0]
    b = loaded.get_preds(dl=loaded.dls.test_dl(new))[0]
    assert a.shape == (2, 2) and torch.allclose(a, b, atol=1e-5)
    # the loaded learner is a text learner again and predicts from a raw string
    assert type(loaded).__name__ == type(clf).__name__
    text = "An awful, boring movie. I hated it."
    assert loaded.predict(text)[0] == label and torch.allclose(loaded.predict(text)[2], probs, atol=1e-5)
    # an encoder of another size is refused with the saved config in the message
    other = text_classifier_learner(dls, AWD_LSTM, config=dict(emb_sz=24, n_hid=32, n_layers=2), path=tmp_path)
    with pytest.raises(ExportError, match="do not match"):
        other.load_encoder("enc")
    with pytest.raises(ExportError, match="not an AWD_LSTM encoder"):
        other.load_encoder(pipekit.save(dls.recipe.blocks_[1], tmp_path / "block.pipekit"))
    with pytest.raises(FileNotFoundError, match="save_encoder"):
        other.load_encoder("missing")


def test_learner_bad_input(dls_lm, imdb):
    dls = clas_dls(imdb)
    with pytest.raises(ParameterError, match="language-model data"):
        language_model_learner(dls, AWD_LSTM)
    with pytest.raises(ParameterError, match="classification data"):
        text_classifier_learner(dls_lm, AWD_LSTM)
    with pytest.raises(ParameterError, match="arch="):
        language_model_learner(dls_lm, "GPT2")
    with pytest.raises(ParameterError, match="unknown keys"):
        text_classifier_learner(dls, AWD_LSTM, config=dict(emb=10))
    with pytest.raises(ParameterError, match="drop_mult"):
        text_classifier_learner(dls, AWD_LSTM, drop_mult=-1)
    learn = language_model_learner(dls_lm, AWD_LSTM, config=SMALL)
    # a callback of a default's class replaces the default: one regulariser, the user's, not two
    from pipekit.text.learner import ModelResetter, RNNRegularizer

    mine = RNNRegularizer(alpha=3.0, beta=0.0)
    lm = language_model_learner(dls_lm, AWD_LSTM, config=SMALL, cbs=mine)
    assert [c for c in lm.cbs if isinstance(c, RNNRegularizer)] == [mine]
    assert sum(isinstance(c, ModelResetter) for c in lm.cbs) == 1
    with pytest.raises(ParameterError, match="temperature"):
        learn.predict("a", temperature=0)
    assert np.isfinite(learn.validate()[0])


def test_learners_take_the_books_pretrained_backwards_and_y_range(dls_lm, imdb, tmp_path):
    """fastai's arguments: pretrained=False trains from random weights, pretrained=True and backwards=True are
    refused saying why, y_range squashes a text regression's outputs; other keywords are refused naming both."""
    learn = language_model_learner(dls_lm, AWD_LSTM, config=SMALL, pretrained=False, backwards=False)
    assert learn.model is not None
    with pytest.raises(ParameterError, match=r"language_model_learner: pretrained=True .* pipekit does not ship; "
                                             r"pass pretrained=False"):
        language_model_learner(dls_lm, AWD_LSTM, config=SMALL, pretrained=True)
    with pytest.raises(ParameterError, match=r"text_classifier_learner: backwards=True .* not supported"):
        text_classifier_learner(clas_dls(imdb), AWD_LSTM, config=SMALL, backwards=True)
    with pytest.raises(ParameterError, match=r"language_model_learner: unknown argument\(s\) \['pretrained_fnames'\]; "
                                             r"it takes \['dls', 'arch', 'config'.*and the Learner's \['loss_func'"):
        language_model_learner(dls_lm, AWD_LSTM, config=SMALL, pretrained_fnames=["a", "b"])
    with pytest.raises(ParameterError, match=r"text_classifier_learner: unknown argument\(s\) \['n_ouT'\]; it takes "
                                             r"\[.*'y_range'"):
        text_classifier_learner(clas_dls(imdb), AWD_LSTM, config=SMALL, n_ouT=2)
    # a regression on the texts: the log of each review's length, in (4, 9)
    reg = imdb.with_columns(pl.col("text").str.len_chars().log().alias("log_len"))
    from pipekit.data import RegressionBlock

    db = DataBlock(blocks=(TextBlock.from_df("text", cache_dir=False), RegressionBlock),
                   get_x=ColReader("text"), get_y=ColReader("log_len"), splitter=ColSplitter("is_valid"))
    dls = db.dataloaders(reg, bs=32, seed=0, num_workers=0)
    for bad in [(5, 0), (3, 3), (1,), ("a", "b")]:
        with pytest.raises(ParameterError, match=r"y_range=.* a \(low, high\) pair of finite numbers with low < high"):
            text_classifier_learner(dls, AWD_LSTM, config=SMALL, y_range=bad)
    set_seed(0)
    learn = text_classifier_learner(dls, AWD_LSTM, config=SMALL, pretrained=False, y_range=(4, 9))
    learn.fit_one_cycle(1, 1e-2)
    preds, targs = learn.get_preds()
    assert preds.shape == (40, 1) and bool(((preds > 4) & (preds < 9)).all())
    text = imdb["text"][0]
    loaded = load_learner(learn.export(tmp_path / "reg.pipekit"))
    pred = float(learn.predict(text)[0])
    assert 4 < pred < 9 and float(loaded.predict(text)[0]) == pytest.approx(pred, abs=1e-5)
    # without y_range the outputs are not bounded: the same head without the sigmoid
    set_seed(0)
    plain = text_classifier_learner(dls, AWD_LSTM, config=SMALL)
    # the sigmoid is the head's last layer (the head gives (logits, outputs, outputs) in training, for AR/TAR)
    assert type(learn.model[1].layers[-1]).__name__ == "SigmoidRange"
    assert len(plain.model) == len(learn.model) == 2 and type(plain.model[1].layers[-1]).__name__ == "Linear"


def test_textblock_doc_reuses_the_vocab_the_way_that_runs(dls_lm):
    """The docstring's ``vocab=dls_lm.vocab`` is what DataLoaders have (a learner's is ``learn.text_vocab``)."""
    from pipekit.text.learner import TextLearner

    doc = TextBlock.__doc__ or ""
    assert "vocab=dls_lm.vocab" in doc and "dls_lm.text_vocab" not in doc
    assert dls_lm.vocab[:2] == ["xxunk", "xxpad"] and not hasattr(dls_lm, "text_vocab")
    assert isinstance(TextLearner.text_vocab, property)
    block = TextBlock.from_df("text", vocab=dls_lm.vocab)
    assert block.vocab_arg == dls_lm.vocab


def test_top_losses_of_a_text_classifier_show_each_review(imdb):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pipekit.learn import ClassificationInterpretation

    dls = clas_dls(imdb)  # 40 reviews in two batches of different padded widths
    learn = text_classifier_learner(dls, AWD_LSTM, config=SMALL)
    interp = ClassificationInterpretation.from_learner(learn)
    assert isinstance(interp.inputs, list)  # one row per review: batches differ in length
    i = int(interp.top_losses(3)[1][0])
    fig, ax = plt.subplots()
    interp._show_input(ax, i, "title")
    drawn = " ".join(t.get_text() for t in ax.texts).split()
    # the review's own words (it drew one token of the first review, as if that were review i)
    review = dls.blocks[0].decode(interp.inputs[i]).split()
    assert len(drawn) > 20 and drawn[:20] == review[:20]
    plt.close(fig)
