"""The AWD-LSTM classifier on imdb_sample: a text gets its own outputs whether its batch pads first or last, text
learners train with ULMFiT's momentums, and the classifier's training loss carries the AR/TAR penalty while
everything that predicts gets plain logits."""
import polars as pl
import pytest
import torch

import pipekit.datasets as D
from pipekit.data import pad_input
from pipekit.learn import Callback, CrossEntropyLossFlat, load_learner
from pipekit.text import (AWD_LSTM, TextDataLoaders, TextLearner, awd_lstm_clas_config, get_text_classifier,
                          language_model_learner, text_classifier_learner)
from pipekit.text.models import masked_concat_pool

SMALL = dict(emb_sz=16, n_hid=16, n_layers=1)
PAD = 1


@pytest.fixture(scope="module")
def df():
    return pl.read_csv(D.path("imdb_sample") / "texts.csv").head(48)


@pytest.fixture(scope="module")
def dls(df):
    return TextDataLoaders.from_df(df, text_col="text", label_col="label", valid_pct=0.25, bs=16, seed=0,
                                   cache_dir=False)


def _texts(dls, n=6):
    """``n`` reviews' token ids, of different lengths, from a (pad-first) validation batch."""
    xb, _ = dls.valid.one_batch()
    rows = [r[r != PAD] for r in xb]
    step = max(1, len(rows) // n)
    return rows[::step][:n]


def _batch(texts, pad_first):
    return torch.stack([x for x, _ in pad_input([(t, 0) for t in texts], pad_idx=PAD, pad_first=pad_first)])


# ---------------------------------------------------------------- padded first or last, a text reads the same
def test_a_text_gets_its_own_outputs_in_a_batch_padded_first_or_last(dls):
    texts = _texts(dls)
    lens = [len(t) for t in texts]
    assert max(lens) > 40 and min(lens) < max(lens)  # texts longer than max_len, and padding in the batch
    torch.manual_seed(0)
    # windows of 8 tokens and the last 40 kept: several windows per text, long texts cut
    model = get_text_classifier(AWD_LSTM, len(dls.blocks[0].vocab), 2, seq_len=8, max_len=40,
                                config=dict(awd_lstm_clas_config, **SMALL)).eval()
    shuffled = texts[::-1]  # another order: the encoder sorts the rows itself
    with torch.no_grad():
        alone = torch.cat([model(t[None]) for t in texts])
        for pad_first in (True, False):
            assert torch.allclose(model(_batch(texts, pad_first)), alone, atol=1e-5), pad_first
            assert torch.allclose(model(_batch(shuffled, pad_first)), alone.flip(0), atol=1e-5), pad_first
        # the words of a short text padded last decide its output (they were read as padding)
        short = min(range(len(texts)), key=lambda i: lens[i])
        changed = [t.clone() for t in texts]
        changed[short] = torch.randint(2, len(dls.blocks[0].vocab), (lens[short],), generator=torch.Generator().manual_seed(1))
        assert not torch.allclose(model(_batch(changed, False))[short], alone[short], atol=1e-4)


def test_training_reads_a_pad_last_batch_as_the_same_batch_padded_first(dls):
    texts = _texts(dls)
    torch.manual_seed(0)
    model = get_text_classifier(AWD_LSTM, len(dls.blocks[0].vocab), 2, seq_len=8, max_len=40,
                                config=dict(awd_lstm_clas_config, **SMALL)).train()
    model[1].give_activations = True  # as RNNRegularizer sets it around a training batch
    outs = []
    for pad_first in (True, False):
        torch.manual_seed(5)  # the same dropout draws: the rows are read in the same order either way
        logits, raw, out = model(_batch(texts, pad_first))
        outs.append((logits, out))
    assert torch.allclose(outs[0][0], outs[1][0], atol=1e-5)
    assert torch.allclose(outs[0][1], outs[1][1], atol=1e-5)  # the encoder's outputs, in one layout


def test_concat_pool_takes_the_last_real_output_wherever_the_padding_is():
    out = torch.randn(3, 5, 4)
    first = torch.tensor([[True, True, False, False, False]] * 3)
    last = first.flip(1)
    # the same three tokens' outputs moved to the front of the rows (the padding's after them)
    pooled_first, pooled_last = masked_concat_pool(out, first), masked_concat_pool(out.roll(-2, 1), last)
    assert torch.equal(pooled_first[:, :4], out[:, -1])
    assert torch.equal(pooled_last[:, :4], out[:, -1])  # the same token, at position 2 of the pad-last rows
    assert torch.allclose(pooled_first, pooled_last)


# ---------------------------------------------------------------- ULMFiT's momentums
def test_text_learners_default_to_ulmfit_momentums(df, dls):
    dls_lm = TextDataLoaders.from_df(df, text_col="text", is_lm=True, valid_pct=0.1, bs=8, seq_len=24, seed=0,
                                     cache_dir=False)
    lm = language_model_learner(dls_lm, AWD_LSTM, config=SMALL)
    clf = text_classifier_learner(dls, AWD_LSTM, config=SMALL)
    assert lm.moms == (0.8, 0.7, 0.8) and clf.moms == (0.8, 0.7, 0.8)
    model = get_text_classifier(AWD_LSTM, len(dls.blocks[0].vocab), 2, config=dict(awd_lstm_clas_config, **SMALL))
    assert TextLearner(dls, model, loss_func=CrossEntropyLossFlat()).moms == (0.8, 0.7, 0.8)
    # a user's moms win
    assert text_classifier_learner(dls, AWD_LSTM, config=SMALL, moms=(0.9, 0.8, 0.9)).moms == (0.9, 0.8, 0.9)
    assert language_model_learner(dls_lm, AWD_LSTM, config=SMALL, moms=(0.95, 0.85, 0.95)).moms == (0.95, 0.85, 0.95)


def test_an_exported_text_learner_keeps_its_momentums(dls, tmp_path):
    """A TextLearner's record is read against its own class's defaults: the ULMFiT default and a Learner's
    (0.95, 0.85, 0.95) given by hand each come back as they were."""
    model = get_text_classifier(AWD_LSTM, len(dls.blocks[0].vocab), 2, config=dict(awd_lstm_clas_config, **SMALL))
    for moms in ((0.8, 0.7, 0.8), (0.95, 0.85, 0.95)):
        learn = TextLearner(dls, model, loss_func=CrossEntropyLossFlat(), moms=moms)
        learn.export(tmp_path / "clf.pkl")
        assert tuple(load_learner(tmp_path / "clf.pkl").moms) == moms


# ---------------------------------------------------------------- AR/TAR on the classifier
class _FirstLosses(Callback):
    """The first training batch's loss (as the loss function gave it) and the loss trained on."""
    order = 50

    def after_loss(self):
        if self.learn.training and not hasattr(self, "losses"):
            self.losses = (float(self.learn.loss), float(self.learn.loss_grad.detach()))


def _first_losses(dls, **kwargs):
    torch.manual_seed(0)
    learn = text_classifier_learner(dls, AWD_LSTM, config=SMALL, **kwargs)
    grab = _FirstLosses()
    learn.fit(1, 1e-3, cbs=grab)
    return learn, grab.losses


def test_the_classifier_trains_with_the_ar_tar_penalty(dls):
    learn, (loss, trained) = _first_losses(dls)
    reg = next(cb for cb in learn.cbs if type(cb).__name__ == "RNNRegularizer")
    assert (reg.alpha, reg.beta) == (2.0, 1.0) and reg.out is not None
    assert trained > loss  # the AR and TAR terms are added to what is trained on
    # alpha and beta are the classifier learner's arguments, as the language model's: 0 and 0 add nothing
    learn0, (loss0, trained0) = _first_losses(dls, alpha=0.0, beta=0.0)
    reg0 = next(cb for cb in learn0.cbs if type(cb).__name__ == "RNNRegularizer")
    assert (reg0.alpha, reg0.beta) == (0.0, 0.0) and trained0 == pytest.approx(loss0, abs=1e-7)


def test_everything_that_predicts_gets_plain_logits(dls, tmp_path):
    torch.manual_seed(0)
    learn = text_classifier_learner(dls, AWD_LSTM, config=SMALL, path=tmp_path)
    learn.fit(1, 1e-3)
    xb, _ = dls.valid.one_batch()
    learn.model.train()
    assert isinstance(learn.model(xb), torch.Tensor)  # a user's own training loop gets the logits
    assert not learn.model[1].give_activations  # the regularizer switched the head back after each batch
    learn.model[1].give_activations = True
    logits, raw, out = learn.model(xb)  # while the regularizer reads them: the encoder's outputs too
    assert tuple(logits.shape) == (len(xb), 2) and raw is out
    learn.model[1].give_activations = False
    learn.model.eval()
    with torch.no_grad():
        direct = learn.model(xb)
    assert isinstance(direct, torch.Tensor) and tuple(direct.shape) == (len(xb), 2)
    preds, targs = learn.get_preds()
    assert isinstance(preds, torch.Tensor) and tuple(preds.shape) == (len(dls.valid.dataset), 2)
    assert torch.allclose(preds.sum(1), torch.ones(len(preds)), atol=1e-5)
    loss, = learn.validate()
    assert loss == loss  # a number, not NaN
    tta_preds, _ = learn.tta(n=1)
    assert tuple(tta_preds.shape) == tuple(preds.shape)
    label, idx, probs = learn.predict("I loved this film")
    assert tuple(probs.shape) == (2,)
    learn.export(tmp_path / "clf.pipekit")
    loaded = load_learner(tmp_path / "clf.pipekit")
    assert loaded.moms == (0.8, 0.7, 0.8)
    label2, idx2, probs2 = loaded.predict("I loved this film")
    assert label2 == label and torch.allclose(probs2, probs, atol=1e-5)


def test_a_regression_head_squashes_its_logits_in_training_too(df):
    df = df.with_columns(pl.col("text").str.len_chars().log().alias("log_len"))
    from pipekit.data import RegressionBlock
    dls = TextDataLoaders.from_df(df, text_col="text", label_col="log_len", y_block=RegressionBlock, bs=8, seed=0,
                                  cache_dir=False)
    torch.manual_seed(0)
    learn = text_classifier_learner(dls, AWD_LSTM, config=SMALL, y_range=(4, 9))
    xb, _ = dls.train.one_batch()
    logits = learn.model.train()(xb)
    assert bool(((logits > 4) & (logits < 9)).all())
    learn.fit(1, 1e-3)
    preds = learn.get_preds()[0]
    assert bool(((preds > 4) & (preds < 9)).all())


def test_a_plain_learner_and_a_users_loop_train_the_classifier_on_its_logits(dls):
    """The classifier built by get_text_classifier, in a plain Learner (no regularizer) and in a loop of the user's,
    gives the logits in training as in evaluation."""
    torch.manual_seed(0)
    model = get_text_classifier(AWD_LSTM, len(dls.blocks[0].vocab), 2, config=dict(awd_lstm_clas_config, **SMALL))
    xb, yb = dls.train.one_batch()
    loss = torch.nn.functional.cross_entropy(model.train()(xb), yb)
    loss.backward()
    assert loss.item() > 0
    from pipekit.learn import Learner
    learn = Learner(dls, model, loss_func=CrossEntropyLossFlat())
    learn.fit(1, 1e-3)
    assert learn.recorder.values[-1][0] > 0
