"""Chapters 4, 12 and 13 as a reader writes them from scratch: (x, y) lists into DataLoaders, a linear model with
the book's own loss and metric, stateful RNNs with a reset() of their own, a model returning (logits, raw, out),
and plain loss functions in get_preds, on mnist_tiny and imdb_sample."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from book_helpers import threes_and_sevens
from torch import nn

import pipekit
import pipekit.datasets as D
from pipekit.core.errors import DataError, ParameterError
from pipekit.data import DataLoaders
from pipekit.learn import SGD, ClassificationInterpretation, CrossEntropyLossFlat, Learner, accuracy
from pipekit.text import ModelResetter, RNNRegularizer, TextLearner


@pytest.fixture(scope="module")
def threes_sevens():
    torch.set_num_threads(1)
    return threes_and_sevens("train"), threes_and_sevens("valid")


def mnist_loss(predictions, targets):
    predictions = predictions.sigmoid()
    return torch.where(targets == 1, 1 - predictions, predictions).mean()


def batch_accuracy(xb, yb):
    preds = xb.sigmoid()
    return ((preds > 0.5) == yb).float().mean()


def test_ch04_lists_of_pairs_train_a_linear_model(threes_sevens):
    (tx, ty), (vx, vy) = threes_sevens
    dls = DataLoaders.from_dsets(list(zip(tx, ty)), list(zip(vx, vy)), bs=64, seed=0, device="cpu")
    assert dls.n_inp == 1 and len(dls.train.dataset) == len(tx)
    pipekit.set_seed(0)
    learn = Learner(dls, nn.Linear(28 * 28, 1), opt_func=SGD, loss_func=mnist_loss, metrics=batch_accuracy)
    learn.fit(10, lr=1.0)
    # the book reads the accuracy as values[-1][2] (train_loss, valid_loss, then the metrics)
    acc = learn.recorder.values[-1][2]
    assert acc == learn.recorder.value("batch_accuracy")
    with torch.no_grad():
        hand = float((((learn.model(vx).sigmoid() > 0.5).float()) == vy).float().mean())
    assert acc == pytest.approx(hand, abs=1e-6) and acc > 0.9


def test_ch04_torch_dataloaders_are_taken_and_from_dsets_names_what_it_needs(threes_sevens):
    (tx, ty), _ = threes_sevens
    dl = torch.utils.data.DataLoader(list(zip(tx, ty)), batch_size=64)
    assert DataLoaders(dl, dl, device="cpu").n_inp == 1  # as fastai takes them (tests/test_foreign_loaders.py)
    with pytest.raises(DataError, match="list of \\(x, y\\) tuples"):
        DataLoaders.from_dsets(dl, list(zip(tx, ty)))
    with pytest.raises(DataError, match="item 3 is not a tuple of 2"):
        DataLoaders.from_dsets([(x, y) for x, y in zip(tx[:3], ty[:3])] + [(tx[3],)], list(zip(tx, ty)))


def test_from_dsets_in_order_and_dropping_the_last_batch(threes_sevens):
    (tx, ty), (vx, vy) = threes_sevens
    dls = DataLoaders.from_dsets(list(zip(tx, ty)), list(zip(vx, vy)), bs=64, shuffle=False, drop_last=True,
                                 device="cpu")
    xb, yb = next(iter(dls.train))
    torch.testing.assert_close(xb, tx[:64])
    assert len(dls.train) == len(tx) // 64 and len(dls.valid) == len(vx) // 64
    assert all(b[0].shape[0] == 64 for b in dls.valid)


@pytest.fixture(scope="module")
def imdb_tokens():
    texts = pd.read_csv(D.path("imdb_sample") / "texts.csv")["text"].head(120)
    words = " . ".join(texts.str.lower()).split()
    vocab = {w: i for i, w in enumerate(sorted(set(words)))}
    return torch.tensor([vocab[w] for w in words]), len(vocab)


def group_chunks(ds, bs):
    m = len(ds) // bs
    return [ds[i + m * j] for i in range(m) for j in range(bs)]


def lm_dls(imdb_tokens, sl=16, bs=32):
    nums, _ = imdb_tokens
    n = (len(nums) - 1) // sl
    seqs = [(nums[i * sl:(i + 1) * sl], nums[i * sl + 1:(i + 1) * sl + 1]) for i in range(n)]
    cut = int(len(seqs) * 0.8)
    return DataLoaders.from_dsets(group_chunks(seqs[:cut], bs), group_chunks(seqs[cut:], bs), bs=bs, shuffle=False,
                                  drop_last=True, device="cpu")


class LMModel5(nn.Module):
    """The book's stateful multi-layer RNN: its hidden state lives in the model and reset() clears it."""

    def __init__(self, vocab_sz, n_hidden, n_layers):
        super().__init__()
        self.i_h = nn.Embedding(vocab_sz, n_hidden)
        self.rnn = nn.RNN(n_hidden, n_hidden, n_layers, batch_first=True)
        self.h_o = nn.Linear(n_hidden, vocab_sz)
        self.h = torch.zeros(n_layers, 32, n_hidden)
        self.resets = 0

    def forward(self, x):
        res, h = self.rnn(self.i_h(x), self.h)
        self.h = h.detach()
        return self.h_o(res)

    def reset(self):
        self.h.zero_()
        self.resets += 1


def test_ch12_model_resetter_calls_the_models_own_reset(imdb_tokens):
    dls = lm_dls(imdb_tokens)
    pipekit.set_seed(0)
    model = LMModel5(imdb_tokens[1], 16, 2)
    learn = Learner(dls, model, loss_func=CrossEntropyLossFlat(), metrics=accuracy, cbs=ModelResetter())
    learn.fit(2, 3e-3)
    assert model.resets == 5  # before training and validation of each epoch, and after the fit
    assert float(model.h.abs().sum()) == 0.0


class LMModel7(nn.Module):
    """The book's LSTM with dropout, returning (logits, raw, out) for AR/TAR."""

    def __init__(self, vocab_sz, n_hidden, p):
        super().__init__()
        self.i_h = nn.Embedding(vocab_sz, n_hidden)
        self.rnn = nn.LSTM(n_hidden, n_hidden, 1, batch_first=True)
        self.drop = nn.Dropout(p)
        self.h_o = nn.Linear(n_hidden, vocab_sz)
        self.h_o.weight = self.i_h.weight
        self.h = [torch.zeros(1, 32, n_hidden) for _ in range(2)]

    def forward(self, x):
        raw, h = self.rnn(self.i_h(x), self.h)
        out = self.drop(raw)
        self.h = [h_.detach() for h_ in h]
        return self.h_o(out), raw, out

    def reset(self):
        for h in self.h:
            h.zero_()


def test_ch12_text_learner_trains_a_model_returning_three_outputs(imdb_tokens):
    dls = lm_dls(imdb_tokens)
    seen = []

    class Spy(RNNRegularizer):
        def after_loss(self):
            before = None if self.learn.loss_grad is None else float(self.learn.loss_grad)
            super().after_loss()
            if self.learn.training and before is not None:
                seen.append(float(self.learn.loss_grad) - before)

    pipekit.set_seed(0)
    learn = TextLearner(dls, LMModel7(imdb_tokens[1], 16, 0.5), loss_func=CrossEntropyLossFlat(), metrics=accuracy,
                        cbs=Spy(alpha=2, beta=1))
    assert sum(isinstance(c, RNNRegularizer) for c in learn.cbs) == 1  # the user's replaced the default
    learn.fit(1, 3e-3)
    assert seen and all(d > 0 for d in seen)  # AR/TAR were added to every training loss
    preds, targs = learn.get_preds()
    assert preds.shape[:2] == targs.shape and preds.shape[-1] == imdb_tokens[1]
    # a plain Learner cannot give a tuple to a loss: it says what to do
    plain = Learner(dls, LMModel7(imdb_tokens[1], 16, 0.5), loss_func=CrossEntropyLossFlat())
    with pytest.raises(ParameterError, match="RNNRegularizer"):
        plain.fit(1, 3e-3)


def test_ch13_get_preds_with_a_plain_loss_function_gives_per_item_losses(threes_sevens):
    (tx, ty), (vx, vy) = threes_sevens
    dls = DataLoaders.from_dsets(list(zip(tx, ty[:, 0])), list(zip(vx, vy[:, 0])), bs=64, seed=0, device="cpu")
    pipekit.set_seed(0)
    learn = Learner(dls, nn.Sequential(nn.Linear(784, 16), nn.ReLU(), nn.Linear(16, 2)), loss_func=F.cross_entropy,
                    metrics=accuracy)
    learn.fit(1, 1e-2)
    preds, targs, losses = learn.get_preds(with_loss=True)
    with torch.no_grad():
        hand = F.cross_entropy(learn.model(vx), vy[:, 0], reduction="none")
    torch.testing.assert_close(losses, hand, rtol=1e-5, atol=1e-6)
    interp = ClassificationInterpretation.from_learner(learn)
    assert interp.top_losses(5)[1].tolist() == hand.topk(5).indices.tolist()
    assert learn.loss_func is F.cross_entropy  # put back

    def mean_only(pred, targ):
        return F.cross_entropy(pred, targ)

    learn.loss_func = mean_only
    with pytest.raises(ParameterError, match="takes no reduction="):
        learn.get_preds(with_loss=True)


def test_ch13_normalize_without_statistics_takes_them_from_the_training_images(tmp_path):
    from pipekit.data import CategoryBlock, DataBlock, GrandparentSplitter, get_image_files, parent_label
    from pipekit.learn import load_learner, simple_cnn
    from pipekit.vision import ImageBlock, Normalize

    path = D.path("mnist_tiny")
    norm = Normalize()
    db = DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock), get_items=get_image_files,
                   splitter=GrandparentSplitter(), get_y=parent_label, batch_tfms=norm)
    with pytest.warns(UserWarning, match="neither the training nor the validation"):
        dls = db.dataloaders(path, bs=64, seed=0)
    used = [t for t in dls.train.batch_tfms if isinstance(t, Normalize)][0]
    # measured on the training images as stored: 256 of them, drawn with the training loader's seed
    ds = dls.train.dataset
    rows = np.sort(np.random.default_rng(dls.train.seed).permutation(len(ds))[:256])
    pixels = ds.gather(rows)[0].float() / 255
    assert used.mean == pytest.approx([float(pixels.mean())], rel=1e-4)
    assert used.std == pytest.approx([float(pixels.std())], rel=1e-3)
    xb, _ = dls.valid.one_batch()
    assert abs(float(xb.mean())) < 0.3 and 0.7 < float(xb.std()) < 1.3
    pipekit.set_seed(0)
    learn = Learner(dls, simple_cnn(1, 2, (8, 16)), metrics=accuracy)
    learn.fit(1, 1e-2)
    learn.export(tmp_path / "norm.pipekit")
    back = load_learner(tmp_path / "norm.pipekit")
    f = get_image_files(path / "valid")[0]
    torch.testing.assert_close(back.predict(f)[2], learn.predict(f)[2])
    with pytest.raises(ParameterError, match="both mean and std"):
        Normalize(mean=[0.5])


def test_ch13_conv_layers_start_as_fastais_so_a_deep_stack_without_batchnorm_keeps_its_scale(threes_sevens):
    from pipekit.learn import ConvLayer

    (x, _), _ = threes_sevens
    imgs = x[:64].reshape(-1, 1, 28, 28)
    torch.manual_seed(0)
    stack = nn.Sequential(ConvLayer(1, 32, norm_type=None), *[ConvLayer(32, 32, norm_type=None) for _ in range(7)])
    conv = stack[1][0]
    assert float(conv.weight.detach().std()) == pytest.approx((2 / (32 * 9)) ** 0.5, rel=0.1)  # Kaiming before the ReLU
    assert float(conv.bias.detach().std()) == pytest.approx(0.01, rel=0.5)
    stds = []
    with torch.no_grad():
        h = imgs
        for layer in stack:
            h = layer(h)
            stds.append(float(h.std()))
    # torch's own start shrank them to about a tenth of the first layer's by the eighth
    assert stds[-1] > 0.3 * stds[0], stds
    sig = ConvLayer(32, 32, act_cls=nn.Sigmoid, norm_type=None)[0]
    assert float(sig.weight.detach().std()) == pytest.approx((2 / (32 * 9 + 32 * 9)) ** 0.5, rel=0.1)  # Xavier


def test_ch04_and_ch13_tensor_and_image2tensor_read_the_pixels_as_the_book_shows():
    # chapter 4: im3 = Image.open(path); tensor(im3)[4:10, 4:10]; stacked = torch.stack([tensor(Image.open(o)) ...])
    # chapter 13: im = image2tensor(Image.open(path)); top_edge = tensor([[-1,-1,-1],[0,0,0],[1,1,1]]).float()
    from PIL import Image

    from pipekit.learn import tensor
    from pipekit.vision import PILImage, image2tensor

    threes = sorted((D.path("mnist_tiny") / "train" / "3").iterdir())
    im3 = Image.open(threes[1])
    t = tensor(im3)
    assert t.shape == (28, 28) and t.dtype == torch.uint8 and np.array_equal(t.numpy(), np.array(im3))
    stacked = torch.stack([tensor(Image.open(o)) for o in threes[:10]]).float() / 255
    assert stacked.shape == (10, 28, 28) and 0 <= float(stacked.min()) and float(stacked.max()) <= 1
    top_edge = tensor([[-1, -1, -1], [0, 0, 0], [1, 1, 1]]).float()
    assert top_edge.dtype == torch.float32 and tensor(1, 2, 3).tolist() == [1, 2, 3]
    photo = sorted((D.path("dogscats") / "valid" / "dogs").iterdir())[0]
    im = image2tensor(Image.open(photo))
    assert im.shape == (3, 200, 200) and im.dtype == torch.uint8
    assert torch.equal(im, image2tensor(photo)) and torch.equal(im, image2tensor(PILImage.create(photo)))
    assert image2tensor(im3).shape == (1, 28, 28)
    # the book's edge detector on it: a 3x3 kernel over a channel, as chapter 13 applies it
    edges = F.conv2d(im[:1].float()[None] / 255, top_edge[None, None])
    assert edges.shape == (1, 1, 198, 198) and float(edges.abs().max()) > 0.1
