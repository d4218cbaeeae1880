"""The training tools a fastai user reaches for beyond the basics: gradient accumulation, lr reduction on a
plateau, SGDR, focal loss, precision and recall, and the live loss graph, on adult and Fashion-MNIST."""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch
from sklearn.metrics import precision_score, recall_score

import pipekit
import pipekit.datasets as D
from pipekit.core.errors import DataError, ParameterError
from pipekit.data import DataLoaders, TensorStore
from pipekit.data.external import read_idx
from pipekit.learn import (
    SGD, Callback, CancelValidException, MSELossFlat, Recorder, SaveModelCallback, CrossEntropyLossFlat, EarlyStoppingCallback, FocalLossFlat, GradientAccumulation, Learner, MLP, Precision,
    PrecisionMulti, Recall, RecallMulti, ReduceLROnPlateau, ShowGraphCallback, accuracy, load_learner, simple_cnn,
)
from pipekit.metrics import get_metric


@pytest.fixture(scope="module")
def adult_xy():
    df = pl.read_csv(D.path("adult_sample") / "adult.csv").head(320)
    x = df.select(["age", "education-num", "hours-per-week"]).fill_null(0).to_numpy().astype("float32")
    x = (x - x.mean(0)) / x.std(0)
    y = (df["salary"] == ">=50k").to_numpy().astype("int64")
    return x, y


def adult_learner(adult_xy, bs, cbs=(), **kw):
    x, y = adult_xy
    dls = DataLoaders.from_stores([TensorStore(x[:256]), TensorStore(y[:256])],
                                  [TensorStore(x[256:]), TensorStore(y[256:])], bs=bs, seed=0, device="cpu")
    pipekit.set_seed(0)
    return Learner(dls, MLP(3, 2, layers=[8]), loss_func=CrossEntropyLossFlat(), opt_func=SGD,
                   cbs=list(cbs), **{"metrics": accuracy, **kw})


# -- gradient accumulation ---------------------------------------------------------------------------------
def test_accumulating_four_batches_of_8_trains_as_batches_of_32(adult_xy):
    big = adult_learner(adult_xy, 32)
    big.fit(2, 0.1)
    ga = GradientAccumulation(n_acc=32)
    small = adult_learner(adult_xy, 8, [ga])
    small.fit(2, 0.1)
    assert ga.steps_ == 2 * 256 // 32
    for p, q in zip(big.model.parameters(), small.model.parameters()):
        torch.testing.assert_close(p.detach(), q.detach(), rtol=0, atol=1e-6)
    # the losses recorded are the batches' own, not the scaled ones: validation is unaffected by accumulation
    np.testing.assert_allclose([r[1] for r in big.recorder.values], [r[1] for r in small.recorder.values], rtol=1e-5)


def test_accumulation_actually_skips_steps(adult_xy):
    plain = adult_learner(adult_xy, 8)
    plain.fit(1, 0.1)
    acc = adult_learner(adult_xy, 8, [GradientAccumulation(n_acc=32)])
    acc.fit(1, 0.1)
    diff = max(float((p - q).abs().max()) for p, q in zip(plain.model.parameters(), acc.model.parameters()))
    assert diff > 1e-3
    assert all(p.grad is None for p in acc.model.parameters())  # nothing left over after the fit


def test_accumulation_refuses_a_bad_count():
    with pytest.raises(ParameterError, match="n_acc"):
        GradientAccumulation(n_acc=0)


# -- lr reduction on a plateau -----------------------------------------------------------------------------
def test_plateau_divides_the_lr_after_patience_epochs(adult_xy):
    never = ReduceLROnPlateau(comp=lambda a, b: False, patience=2, factor=4, min_lr=0.01)
    learn = adult_learner(adult_xy, 32, [never])
    learn.fit(6, 0.4)
    # the first epoch sets the best; then 2 epochs without improvement per reduction: after epochs 2 and 4
    assert [e for e, _ in never.reductions_] == [2, 4]
    np.testing.assert_allclose(never.reductions_[0][1], [0.1])
    np.testing.assert_allclose(never.reductions_[1][1], [0.025])
    lrs = list(learn.recorder.lrs)  # per training batch
    per_epoch = [lrs[i * 8] for i in range(6)]
    np.testing.assert_allclose(per_epoch, [0.4, 0.4, 0.4, 0.1, 0.1, 0.025])


def test_plateau_keeps_the_lr_while_the_loss_improves_and_never_goes_below_min_lr(adult_xy):
    cb = ReduceLROnPlateau(monitor="valid_loss", patience=1, factor=10, min_lr=0.05)
    learn = adult_learner(adult_xy, 32, [cb])
    learn.fit(5, 0.1)
    losses = [r[1] for r in learn.recorder.values]
    worse = [e for e in range(1, 5) if losses[e] >= min(losses[:e])]
    reduced_at = [e for e, _ in cb.reductions_]
    assert reduced_at == worse[:1]  # once at 0.05 it cannot go lower, so at most one reduction
    assert all(lr >= 0.05 for lr in learn.recorder.lrs)


def test_plateau_names_an_unknown_monitor(adult_xy):
    learn = adult_learner(adult_xy, 32, [ReduceLROnPlateau(monitor="f1")])
    with pytest.raises(ParameterError, match="cannot monitor 'f1'"):
        learn.fit(1, 0.1)


# -- SGDR --------------------------------------------------------------------------------------------------
def test_fit_sgdr_restarts_the_lr_at_each_cycle(adult_xy):
    learn = adult_learner(adult_xy, 32)
    learn.fit_sgdr(3, 1, lr_max=0.2)  # cycles of 1, 2 and 4 epochs
    assert len(learn.recorder.values) == 7
    lrs = np.array(learn.recorder.lrs)
    assert len(lrs) == 7 * 8
    starts = [0, 8, 24]  # batch index where each cycle begins
    np.testing.assert_allclose(lrs[starts], 0.2, rtol=1e-6)
    for a, b in zip(starts, [8, 24, 56]):
        assert np.all(np.diff(lrs[a:b]) < 0)  # annealing within a cycle
        assert lrs[b - 1] < 0.2 * 0.05  # close to 0 at its end


def test_fit_sgdr_with_cycle_mult_1_and_bad_counts(adult_xy):
    learn = adult_learner(adult_xy, 32)
    learn.fit_sgdr(2, 2, lr_max=0.1, cycle_mult=1)
    assert len(learn.recorder.values) == 4
    with pytest.raises(ParameterError, match="n_cycles"):
        learn.fit_sgdr(0, 1)


# -- focal loss --------------------------------------------------------------------------------------------
def test_focal_loss_against_its_formula():
    g = torch.Generator().manual_seed(0)
    inp, targ = torch.randn(20, 4, generator=g), torch.randint(0, 4, (20,), generator=g)
    targ[3] = -100
    w = [1.0, 2.0, 0.5, 1.5]
    p = inp.softmax(-1)[torch.arange(20), targ.clamp(min=0)]
    keep = targ != -100
    wt = torch.tensor(w)[targ.clamp(min=0)] * keep
    per = -(1 - p) ** 2 * p.log() * wt
    torch.testing.assert_close(FocalLossFlat(weight=w)(inp, targ), per.sum() / wt.sum())
    torch.testing.assert_close(FocalLossFlat(weight=w, reduction="sum")(inp, targ), per.sum())
    # gamma=0 is torch's weighted cross-entropy with ignore_index
    torch.testing.assert_close(FocalLossFlat(gamma=0, weight=w)(inp, targ),
                               torch.nn.functional.cross_entropy(inp, targ, weight=torch.tensor(w)))


def test_focal_loss_on_a_mask_axis_1():
    g = torch.Generator().manual_seed(1)
    inp, targ = torch.randn(2, 3, 4, 5, generator=g), torch.randint(0, 3, (2, 4, 5), generator=g)
    flat = FocalLossFlat(axis=1)(inp, targ)
    ref = FocalLossFlat()(inp.permute(0, 2, 3, 1).reshape(-1, 3), targ.reshape(-1))
    torch.testing.assert_close(flat, ref)


def test_focal_loss_trains_and_exports(tmp_path):
    torch.set_num_threads(1)
    root = D.path("fashion_mnist")
    x = read_idx(root / "train-images-idx3-ubyte.gz")[:1280, None].astype(np.float32) / 255.0
    y = read_idx(root / "train-labels-idx1-ubyte.gz")[:1280].astype(np.int64)
    dls = DataLoaders.from_stores([TensorStore(x[:1024]), TensorStore(y[:1024])],
                                  [TensorStore(x[1024:]), TensorStore(y[1024:])], bs=64, seed=0, device="cpu")
    pipekit.set_seed(0)
    learn = Learner(dls, simple_cnn(1, 10, (8, 16)), loss_func=FocalLossFlat(gamma=1.5),
                    metrics=[accuracy, Precision(average="macro"), Recall(average="macro")])
    learn.fit_one_cycle(5, 3e-2)
    acc = learn.recorder.values[-1][2]  # the book's values[-1][2]: the first metric
    assert acc > 0.5  # ten classes: chance is 0.1
    learn.export(tmp_path / "focal.pipekit")
    back = load_learner(tmp_path / "focal.pipekit")
    assert isinstance(back.loss_func, FocalLossFlat) and back.loss_func.gamma == 1.5
    preds, targs = learn.get_preds()
    torch.testing.assert_close(back.get_preds(dl=back.dls.test_dl(x[1024:]))[0], preds)
    # the metrics the recorder shows are scikit-learn's on the same predictions
    lab = preds.argmax(1).numpy()
    np.testing.assert_allclose(learn.recorder.values[-1][3], precision_score(targs, lab, average="macro",
                                                                          zero_division=0), rtol=1e-6)
    np.testing.assert_allclose(learn.recorder.values[-1][4], recall_score(targs, lab, average="macro"), rtol=1e-6)


def test_focal_loss_refuses_a_negative_gamma():
    with pytest.raises(ParameterError, match="gamma"):
        FocalLossFlat(gamma=-1)


# -- precision and recall ----------------------------------------------------------------------------------
def test_precision_recall_match_sklearn_on_adult(adult_xy):
    learn = adult_learner(adult_xy, 32, metrics=[Precision(), Recall()])
    learn.fit(10, 0.5)
    preds, targs = learn.get_preds()
    lab = preds.argmax(1).numpy()
    row = learn.recorder.values[-1]
    assert learn.recorder.metric_names[3:5] == ["precision_score", "recall_score"]  # fastai's names
    assert 0 < row[2] < 1 and 0 < row[3] < 1
    np.testing.assert_allclose(row[2], precision_score(targs, lab, zero_division=0), rtol=1e-6)
    np.testing.assert_allclose(row[3], recall_score(targs, lab), rtol=1e-6)
    assert get_metric("precision", "classification").name == "precision_score"


def test_binary_precision_on_three_classes_says_what_to_pass():
    pred, targ = torch.eye(3), torch.tensor([0, 1, 2])
    with pytest.raises(ParameterError, match="average='macro'"):
        Precision()(pred, targ)
    assert float(Precision(average="macro")(pred, targ)) == 1.0


def test_multi_label_precision_recall_match_sklearn():
    g = torch.Generator().manual_seed(2)
    logits, targs = torch.randn(50, 4, generator=g), (torch.rand(50, 4, generator=g) > 0.6).float()
    labels = (logits.sigmoid() > 0.3).numpy()
    for cls, fn in ((PrecisionMulti, precision_score), (RecallMulti, recall_score)):
        for avg in ("micro", "macro"):
            np.testing.assert_allclose(float(cls(thresh=0.3, average=avg)(logits, targs)),
                                       fn(targs.numpy(), labels, average=avg, zero_division=0))
    with pytest.raises(ParameterError, match="PrecisionMulti"):
        Precision()(logits, targs)


# -- the live loss graph -----------------------------------------------------------------------------------
def test_show_graph_rewrites_one_png_each_epoch(adult_xy, tmp_path, monkeypatch):
    written = []
    import matplotlib.figure

    real = matplotlib.figure.Figure.savefig

    def spy(fig, path, *a, **k):
        written.append((str(path), fig.axes[0].get_title(), fig.axes[0].get_xlim()))
        return real(fig, path, *a, **k)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", spy)
    cb = ShowGraphCallback(path=tmp_path / "graph.png")
    learn = adult_learner(adult_xy, 32, [cb])
    learn.fit(3, 0.1)
    assert [w[0] for w in written] == [str(tmp_path / "graph.png")] * 3
    assert [w[1] for w in written] == ["epoch 1 of 3", "epoch 2 of 3", "epoch 3 of 3"]
    assert all(w[2] == (0.0, 24.0) for w in written)  # the whole fit's batches from the start
    assert (tmp_path / "graph.png").stat().st_size > 1000


def test_show_graph_headless_default_file_and_lr_find_draws_nothing(adult_xy, tmp_path, monkeypatch):
    monkeypatch.setenv("PIPEKIT_PLOTS", str(tmp_path))
    cb = ShowGraphCallback()
    learn = adult_learner(adult_xy, 32, [cb, EarlyStoppingCallback(patience=5)])
    learn.lr_find(num_it=20)
    assert getattr(cb, "file_", None) is None and not list(tmp_path.glob("loss_graph*.png"))  # no fit of training yet
    learn.fit(1, 0.1)
    assert cb.file_ is not None and cb.file_.parent == tmp_path and cb.file_.exists()


# -- resuming, edges and the book's expectations ---------------------------------------------------------------
def _small(tmp_path):
    x, y = _linear_data()
    pipekit.set_seed(0)
    dls = DataLoaders.from_dsets(list(zip(x[:48], y[:48])), list(zip(x[48:], y[48:])), bs=16, seed=0, device="cpu")
    return Learner(dls, torch.nn.Linear(3, 1), loss_func=MSELossFlat(), opt_func=SGD, lr=0.05, path=tmp_path)


def _linear_data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 3, generator=g)
    return x, x @ torch.tensor([1.0, -2.0, 0.5])


@pytest.mark.parametrize("make_cb", [lambda: GradientAccumulation(32),
                                     lambda: ReduceLROnPlateau(comp=lambda a, b: False, patience=1, factor=10)])
def test_a_fit_resumed_from_a_checkpoint_ends_where_the_whole_fit_does(tmp_path, make_cb):
    whole = _small(tmp_path)
    whole.fit(4, cbs=[make_cb(), SaveModelCallback(every_epoch=True, with_opt=True)])
    resumed = _small(tmp_path)
    resumed.load("model_1")
    resumed.fit(4, start_epoch=resumed.resume_epoch, cbs=[make_cb(), SaveModelCallback(every_epoch=True,
                                                                                       with_opt=True)])
    torch.testing.assert_close(resumed.model.weight, whole.model.weight)
    assert [lr[0] for lr in resumed.recorder.group_lrs] == [lr[0] for lr in whole.recorder.group_lrs][-len(resumed.recorder.lrs):]


def test_accumulation_steps_at_the_end_of_every_epoch(tmp_path):
    ga = GradientAccumulation(32)  # 3 batches of 16: a step after 32 items, and the epoch's last 16 on their own
    learn = _small(tmp_path)
    learn.fit(2, cbs=ga)
    assert ga.steps_ == 4 and ga.count_ == 0


def test_trackers_do_not_judge_epochs_without_validation(tmp_path):
    class SkipValid(Callback):
        def before_validate(self):
            raise CancelValidException

    plateau = ReduceLROnPlateau(patience=1)
    stop = EarlyStoppingCallback(patience=1)
    learn = _small(tmp_path)
    learn.fit(4, 0.1, cbs=[SkipValid(), plateau, stop])
    assert len(learn.recorder.values) == 4 and all(r[1] is None for r in learn.recorder.values)
    assert plateau.reductions_ == [] and learn.optimizer.lrs == [0.1] and stop.stopped_epoch_ is None


def test_label_scores_refuse_one_output_per_item():
    pred, targ = torch.tensor([[2.0], [-1.0], [3.0]]), torch.tensor([1, 0, 1])
    for metric in (Precision(), Recall()):
        with pytest.raises(ParameterError, match="one score per item"):
            metric(pred, targ)


def test_a_recorder_of_your_own_replaces_the_learners(tmp_path):
    class MyRecorder(Recorder):
        pass

    learn = _small(tmp_path)
    mine = MyRecorder()
    learn.add_cb(mine)
    assert learn.recorder is mine and sum(isinstance(c, Recorder) for c in learn.cbs) == 1
    learn.fit(2)
    assert len(mine.values) == 2


def test_setting_loop_state_on_a_callback_warns(tmp_path):
    class ZeroLoss(Callback):
        def after_loss(self):
            self.loss_grad = self.loss_grad * 0

    learn = _small(tmp_path)
    with pytest.warns(UserWarning, match="set self.learn.loss_grad"):
        learn.fit(1, cbs=ZeroLoss())


def test_recorder_value_by_epoch_number_after_a_resume(tmp_path):
    learn = _small(tmp_path)
    learn.fit(5, start_epoch=3)
    assert [r[0] for r in learn.recorder.history] == [3, 4]
    assert learn.recorder.value("valid_loss", 3) == learn.recorder.values[0][1]
    assert learn.recorder.value("valid_loss", -1) == learn.recorder.values[1][1]
    with pytest.raises(ParameterError, match="recorded epochs: \\[3, 4\\]"):
        learn.recorder.value("valid_loss", 1)


def test_from_dsets_refuses_train_and_valid_of_different_shapes():
    x, y = _linear_data()
    with pytest.raises(DataError, match="part 0 of the items is \\(3,\\)"):
        DataLoaders.from_dsets(list(zip(x[:48], y[:48])), list(zip(torch.randn(16, 5), y[48:])), bs=16)


def test_conv_layer_pads_as_fastai():
    from pipekit.learn import ConvLayer

    x = torch.randn(1, 3, 8, 8)
    assert ConvLayer(3, 4, ks=2, stride=2)(x).shape[-2:] == (4, 4)
    assert ConvLayer(3, 4, ks=4, stride=2)(x).shape[-2:] == (4, 4)
    assert ConvLayer(3, 4, ks=3)(x).shape[-2:] == (8, 8)


def test_sgdr_restarts_at_the_top_with_equal_cycles(tmp_path):
    learn = _small(tmp_path)
    learn.fit_sgdr(5, 1, lr_max=0.1, cycle_mult=1)
    lrs = [lr[0] for lr in learn.recorder.group_lrs]
    assert [lrs[3 * i] for i in range(5)] == pytest.approx([0.1] * 5)
