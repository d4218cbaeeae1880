"""Losses, metrics, schedules, optimiser groups, get_preds options and TTA."""
from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import pipekit
import pipekit.datasets as D
from pipekit.data import BatchTransform, CategoryBlock, DataLoaders, TensorStore
from pipekit.data.external import read_idx
from pipekit.learn import (
    MLP, BCEWithLogitsLossFlat, CrossEntropyLossFlat, F1Score, LabelSmoothingCrossEntropy, Learner, MSELossFlat,
    OptimWrapper, Perplexity, R2Score, RocAuc, SGD, accuracy, accuracy_multi, combine_scheds, mae, rmse, sched_cos,
    sched_lin,
)
from pipekit.core.errors import ParameterError
from pipekit.metrics import as_metric


# ---------------------------------------------------------------- losses
def test_flat_losses_accept_sequence_outputs():
    torch.manual_seed(0)
    pred3, targ3 = torch.randn(4, 7, 5), torch.randint(0, 5, (4, 7))
    ce = CrossEntropyLossFlat()
    assert float(ce(pred3, targ3)) == pytest.approx(float(F.cross_entropy(pred3.reshape(-1, 5), targ3.reshape(-1))))
    # class axis 1 (segmentation-style [bs, n, h, w])
    seg, segt = torch.randn(2, 3, 4, 4), torch.randint(0, 3, (2, 4, 4))
    assert float(CrossEntropyLossFlat(axis=1)(seg, segt)) == pytest.approx(float(F.cross_entropy(seg, segt)), rel=1e-5)
    assert CrossEntropyLossFlat(axis=1).decodes(seg).shape == (2, 4, 4)
    bce = BCEWithLogitsLossFlat(thresh=0.3)
    p, t = torch.randn(6, 4), torch.randint(0, 2, (6, 4))
    assert float(bce(p, t)) == pytest.approx(float(F.binary_cross_entropy_with_logits(p, t.float())))
    assert torch.equal(bce.decodes(bce.activation(p)), torch.sigmoid(p) > 0.3)
    mse = MSELossFlat()
    assert float(mse(torch.ones(5, 1), torch.zeros(5))) == pytest.approx(1.0)
    ls = LabelSmoothingCrossEntropy(eps=0.1)
    x, y = torch.randn(8, 5), torch.randint(0, 5, (8,))
    assert float(ls(x, y)) == pytest.approx(float(F.cross_entropy(x, y, label_smoothing=0.1 * 5 / 5)), rel=1e-5)
    with pytest.raises(ValueError, match="eps"):
        LabelSmoothingCrossEntropy(eps=1.5)
    with pytest.raises(ValueError, match="reduction"):
        CrossEntropyLossFlat(reduction="avg")


# ---------------------------------------------------------------- metrics
def _accumulate(metric, batches):
    m = as_metric(metric)
    m.reset()
    for p, t, loss in batches:
        m.accumulate(p, t, loss, len(t))
    return m.value


def test_metrics_pool_the_whole_set_not_batch_means():
    rng = torch.Generator().manual_seed(0)
    p1, t1 = torch.randn(10, 1, generator=rng), torch.randn(10, generator=rng)
    p2, t2 = torch.randn(3, 1, generator=rng) * 5, torch.randn(3, generator=rng)
    allp, allt = torch.cat([p1, p2]).reshape(-1), torch.cat([t1, t2])
    batches = [(p1, t1, None), (p2, t2, None)]
    assert _accumulate(rmse, batches) == pytest.approx(float(((allp - allt) ** 2).mean().sqrt()), rel=1e-6)
    assert _accumulate(mae, batches) == pytest.approx(float((allp - allt).abs().mean()), rel=1e-6)
    from sklearn.metrics import f1_score, r2_score, roc_auc_score

    assert _accumulate(R2Score(), batches) == pytest.approx(r2_score(allt.numpy(), allp.numpy()), rel=1e-6)
    c1, y1 = torch.randn(9, 3, generator=rng), torch.randint(0, 3, (9,), generator=rng)
    c2, y2 = torch.randn(4, 3, generator=rng), torch.randint(0, 3, (4,), generator=rng)
    cb = [(c1, y1, None), (c2, y2, None)]
    allc, ally = torch.cat([c1, c2]), torch.cat([y1, y2])
    assert _accumulate(accuracy, cb) == pytest.approx(float((allc.argmax(1) == ally).float().mean()))
    assert _accumulate(F1Score("macro"), cb) == pytest.approx(f1_score(ally, allc.argmax(1), average="macro"))
    assert _accumulate(RocAuc(), cb) == pytest.approx(roc_auc_score(ally, allc.softmax(1).numpy(), multi_class="ovr"))
    # perplexity: exp of the item-weighted mean loss
    pp = _accumulate(Perplexity, [(c1, y1, torch.tensor(1.0)), (c2, y2, torch.tensor(2.0))])
    assert pp == pytest.approx(float(np.exp((9 * 1.0 + 4 * 2.0) / 13)))
    ml = [(torch.tensor([[3.0, -3.0]]), torch.tensor([[1, 1]]), None)]
    assert _accumulate(accuracy_multi(thresh=0.5), ml) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="thresh"):
        accuracy_multi(thresh=2)
    with pytest.raises(ParameterError, match="a metric must be a pipekit Metric or a function"):
        as_metric(3)


# ---------------------------------------------------------------- schedules and groups
def test_schedules_and_param_groups():
    f = combine_scheds([0.3, 0.7], [sched_lin(1.0, 2.0), sched_cos(2.0, 0.0)])
    assert float(f(0.0)) == pytest.approx(1.0) and float(f(0.3)) == pytest.approx(2.0)
    assert float(f(0.65)) == pytest.approx(1.0) and float(f(1.0)) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="sum to 1"):
        combine_scheds([0.5, 0.6], [sched_lin(0, 1), sched_lin(0, 1)])
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))
    split = lambda m: [list(m[:2].parameters()), list(m[2].parameters())]  # noqa: E731
    opt = OptimWrapper(model, functools.partial(SGD, mom=0.9), lr=0.1, splitter=split)
    opt.set_hyper("lr", slice(1e-3, 1e-1))
    opt.set_hyper("wd", 0.5)
    opt.set_hyper("mom", 0.8)
    assert opt.lrs == pytest.approx([1e-3, 1e-1]) and opt.moms == [0.8, 0.8]
    # plain SGD (the book's default) keeps no momentum, whatever a schedule sets
    plain = OptimWrapper(model, SGD, lr=0.1, splitter=split)
    plain.set_hyper("mom", 0.95)
    assert plain.moms == [0.0, 0.0]
    # biases and batch-norm get no weight decay
    for g in opt.param_groups:
        names = {id(p) for p in g["params"]}
        no_decay = {id(model[0].bias), id(model[1].weight), id(model[1].bias), id(model[2].bias)}
        assert g["weight_decay"] == (0.0 if names <= no_decay else 0.5)
    opt.freeze_to(1)
    assert not model[0].weight.requires_grad and model[1].weight.requires_grad and model[2].weight.requires_grad
    opt.freeze_to(0)
    assert model[0].weight.requires_grad


# ---------------------------------------------------------------- get_preds options and TTA on real data
class Jitter(BatchTransform):
    """Adds noise to the images when augmenting (training and TTA only)."""

    def __init__(self, scale: float = 0.5):
        self.scale = scale

    def encode(self, batch, ctx):
        if not ctx.train:
            return batch
        x = batch[0]
        noise = torch.from_numpy(ctx.rng("noise").normal(0, self.scale, size=tuple(x.shape)).astype(np.float32))
        return (x + noise, *batch[1:])


@pytest.fixture(scope="module")
def learn():
    torch.set_num_threads(1)
    root = D.path("fashion_mnist")
    x = read_idx(root / "train-images-idx3-ubyte.gz")[:1300].reshape(1300, -1).astype(np.float32) / 255.0
    y = read_idx(root / "train-labels-idx1-ubyte.gz")[:1300].astype(np.int64)
    dls = DataLoaders.from_stores([TensorStore(x[:1024]), TensorStore(y[:1024])],
                                  [TensorStore(x[1024:]), TensorStore(y[1024:])],
                                  blocks=(CategoryBlock(), CategoryBlock()), bs=64, seed=0, device="cpu",
                                  num_workers=0, batch_tfms=[Jitter(0.5)])
    pipekit.set_seed(0)
    learn = Learner(dls, MLP(784, 10, layers=[32]), metrics=accuracy)
    learn.fit_one_cycle(2, 1e-2)
    return learn


def test_get_preds_options(learn):
    inp, preds, targs, dec, losses = learn.get_preds(with_input=True, with_decoded=True, with_loss=True)
    n = len(learn.dls.valid.dataset)
    assert inp.shape == (n, 784) and preds.shape == (n, 10) and targs.shape == (n,)
    assert torch.equal(dec, preds.argmax(1))
    torch.testing.assert_close(losses, F.nll_loss(preds.log(), targs, reduction="none"), rtol=1e-4, atol=1e-5)
    raw = learn.get_preds(act=lambda t: t)[0]  # raw logits when the activation is overridden
    torch.testing.assert_close(raw.softmax(1), preds)
    assert learn.loss_func.reduction == "mean"  # restored after with_loss
    train_preds, train_targs = learn.get_preds(ds_idx=0)
    assert len(train_preds) == 1024 and torch.equal(train_targs, torch.arange(1024).new_tensor(
        learn.dls.train.dataset.stores[1].data.numpy()))
    with pytest.raises(ValueError, match="ds_idx"):
        learn.get_preds(ds_idx=2)


def test_tta_uses_training_augmentation(learn):
    plain, targs = learn.get_preds()
    (aug_only, plain2), t2 = learn.tta(n=3, beta=None)  # fastai's ((aug, plain), targs)
    assert torch.equal(targs, t2) and aug_only.shape == plain.shape and torch.equal(plain2, plain)
    assert not torch.allclose(aug_only, plain, atol=1e-3)  # the jitter was applied
    mixed, _ = learn.tta(n=3, beta=0.25)
    torch.testing.assert_close(mixed, 0.25 * plain + 0.75 * aug_only, rtol=1e-5, atol=1e-6)
    same, _ = learn.tta(n=3, beta=1.0)
    torch.testing.assert_close(same, plain)
    with pytest.raises(ValueError, match="beta"):
        learn.tta(beta=2)


def test_fit_flat_cos_holds_then_anneals(learn):
    learn.fit_flat_cos(1, lr=3e-3, pct_start=0.5)
    lrs = np.array(learn.recorder.lrs)
    half = len(lrs) // 2
    assert np.allclose(lrs[:half], 3e-3) and lrs[-1] < 3e-3 / 10  # the last batch is at pct 15/16
    assert np.all(np.diff(lrs[half:]) <= 1e-12)  # non-increasing after the flat part
    with pytest.raises(ValueError, match="pct_start"):
        learn.fit_flat_cos(1, pct_start=1.5)


def test_get_preds_restores_item_order_of_a_reordering_loader(learn):
    from pipekit.data import DataLoader

    class Reversed(DataLoader):  # like a length-sorted text loader: batches not in item order
        def batch_plan(self, epoch):
            order = np.arange(self.n)[::-1].copy()
            return [order[i:i + self.bs] for i in range(0, self.n, self.bs)]

    plain, targs = learn.get_preds()
    v = learn.dls.valid
    rev = Reversed(v.dataset, bs=v.bs, shuffle=False, device="cpu", num_workers=0)
    p2, t2 = learn.get_preds(dl=rev)
    assert torch.equal(t2, targs)
    torch.testing.assert_close(p2, plain)
    p3, t3 = learn.get_preds(dl=rev, reorder=False)
    assert torch.equal(t3, targs.flip(0))


def test_adam_uses_the_fused_kernel_and_matches_the_loop():
    from pipekit.learn.optim import Adam

    torch.manual_seed(0)
    nets = [torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.BatchNorm1d(7), torch.nn.Linear(7, 2))
            for _ in range(2)]
    nets[1].load_state_dict(nets[0].state_dict())
    opts = [OptimWrapper(n, lambda ps, lr, f=f: Adam(ps, lr, fused=f), lr=1e-2) for n, f in zip(nets, (True, False))]
    assert opts[0].opt.defaults["fused"] is True and not opts[1].opt.defaults["fused"]
    gen = torch.Generator().manual_seed(1)
    for _ in range(20):
        x, y = torch.randn(16, 5, generator=gen), torch.randint(0, 2, (16,), generator=gen)
        for net, opt in zip(nets, opts):
            F.cross_entropy(net(x), y).backward()
            opt.step()
            opt.zero_grad()
    for a, b in zip(nets[0].parameters(), nets[1].parameters()):  # the same update, up to float rounding
        assert torch.allclose(a, b, atol=5e-4) and not torch.equal(a, torch.zeros_like(a))
    # what the fused kernel cannot take (non-float or sparse tensors, nothing at all) gets the loop
    from pipekit.learn.optim import _fusable

    old_threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert _fusable([{"params": [torch.zeros(3, dtype=torch.float64)]}])
        torch.set_num_threads(2)  # on CPU with several threads the loop is kept
        assert not _fusable([{"params": [torch.zeros(3, dtype=torch.float64)]}])
    finally:
        torch.set_num_threads(old_threads)
    assert not _fusable([{"params": [torch.zeros(3), torch.zeros(3, dtype=torch.long)]}])
    assert not _fusable([{"params": [torch.zeros(3, 3).to_sparse()]}]) and not _fusable([])


def test_get_preds_of_a_language_model_activates_and_decodes_batches_of_different_lengths(tmp_path, monkeypatch):
    import polars as pl

    from pipekit.data import ColReader, DataBlock, RandomSplitter
    from pipekit.text import AWD_LSTM, TextBlock, language_model_learner

    monkeypatch.setenv("PIPEKIT_CACHE", str(tmp_path))
    df = pl.read_csv(D.path("imdb_sample") / "texts.csv").head(120)
    dls = DataBlock(blocks=TextBlock.from_df("text", is_lm=True), get_x=ColReader("text"),
                    splitter=RandomSplitter(0.2, seed=42)).dataloaders(df, bs=16, seed=42)
    pipekit.set_seed(0)
    lm = language_model_learner(dls, AWD_LSTM, config=dict(emb_sz=32, n_hid=64, n_layers=2))
    preds, targs, dec = lm.get_preds(with_decoded=True)
    raw = lm.get_preds(act=lambda t: t)[0]
    assert len({b[0].shape[1] for b in dls.valid}) > 1  # the last batch's sequences are shorter
    # one tensor each, the batches joined along the sequence (fastai's LMLearner.get_preds, concat_dim=1)
    n = dls.valid.stream_len
    assert preds.shape == raw.shape == (16, n, len(dls.blocks[0].vocab)) and targs.shape == dec.shape == (16, n)
    torch.testing.assert_close(preds, raw.softmax(-1))
    assert torch.equal(dec, preds.argmax(-1))
