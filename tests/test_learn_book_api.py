"""The book's training calls: lr_find(suggest_funcs=...) and recorder.plot_lr_find(), to_cpu, to_fp16/to_fp32, metrics bare or configured,
CSVLogger, TensorBoardCallback and the plain-text progress lines, on mnist_tiny."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from functools import partial

import numpy as np
import pytest
import torch

import pipekit
import pipekit.datasets as D
from pipekit.core.errors import DataError, ParameterError
from pipekit.data import (CategoryBlock, DataBlock, DataLoaders, GrandparentSplitter, MultiCategoryBlock, TensorStore,
                          get_image_files, parent_label)
from pipekit.learn import (MLP, Callback, CrossEntropyLossFlat, CSVLogger, Learner, MixedPrecision, SuggestedLRs,
                           TensorBoardCallback, accuracy, accuracy_multi, minimum, slide, steep, valley)
from pipekit.vision import ImageBlock, Resize, vision_learner


def _mnist(get_y=parent_label, y_block=CategoryBlock, bs=64):
    items = lambda p: get_image_files(p, folders=["train", "valid"])  # noqa: E731
    return DataBlock(blocks=(ImageBlock(cls="L"), y_block), get_items=items, get_y=get_y,
                     splitter=GrandparentSplitter(), item_tfms=Resize(16)).dataloaders(
        D.path("mnist_tiny"), bs=bs, seed=0, device="cpu", num_workers=0)


@pytest.fixture(scope="module")
def dls(one_torch_thread):
    return _mnist()


@pytest.fixture(scope="module")
def tiny(one_torch_thread):
    """A small two-class table: what the loggers and lr_find need, in milliseconds per epoch."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(512, 8)).astype("float32")
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype("int64")
    return DataLoaders.from_stores([TensorStore(x[:384]), TensorStore(y[:384])], [TensorStore(x[384:]), TensorStore(y[384:])],
                                   blocks=(CategoryBlock(), CategoryBlock(vocab=["no", "yes"])), bs=32, seed=0,
                                   device="cpu", num_workers=0)


def _learner(dls, **kw):
    pipekit.set_seed(0)
    return vision_learner(dls, "simple_cnn", **kw)


def _mlp(dls, **kw):
    pipekit.set_seed(0)
    return Learner(dls, MLP(8, 2, layers=[16]), loss_func=CrossEntropyLossFlat(), **kw)


def test_lr_find_suggest_funcs_one_or_several(tiny):
    learn = _mlp(tiny, metrics=accuracy)
    before = {k: v.clone() for k, v in learn.model.state_dict().items()}
    res = learn.lr_find(num_it=30, suggest_funcs=(minimum, steep), show_plot=False)
    lr_min, lr_steep = res  # unpacked as the book does
    assert res._fields == ("minimum", "steep") and len(res) == 2 and (res[0], res[1]) == (lr_min, lr_steep)
    assert res.minimum == res["minimum"] == lr_min and 1e-7 <= lr_min <= 10 and 1e-7 <= lr_steep <= 10
    # the suggestions read the curve as fastai's lr_find gives it to them: without its first tenth and last five points
    lrs, losses = res.lrs[3:-5], res.losses[3:-5]
    assert res.minimum == pytest.approx(lrs[int(np.argmin(losses))] / 10)
    one = learn.lr_find(num_it=30, suggest_funcs=valley, show_plot=False)
    assert one._fields == ("valley",) and isinstance(one, SuggestedLRs)
    with pytest.raises(AttributeError, match="made no 'steep' suggestion"):
        _ = one.steep
    assert one.valley == valley(one.lrs[3:-5], one.losses[3:-5])
    # a suggestion function written to fastai's signature fn(lrs, losses, num_it) -> (lr, (lr, loss))
    seen = []

    def first_point(lrs, losses, num_it):
        seen.append((len(lrs), num_it))
        return float(lrs[0]), (float(lrs[0]), float(losses[0]))

    assert learn.lr_find(num_it=30, suggest_funcs=first_point, show_plot=False).first_point == one.lrs[3]
    assert seen == [(len(one.lrs) - 8, 30)]
    assert learn.lr_find(num_it=30, show_plot=False)._fields == ("valley", "steep", "minimum")
    for k, v in learn.model.state_dict().items():  # the model is put back after every run
        assert torch.equal(v, before[k])
    with pytest.raises(ParameterError, match="suggest_funcs"):
        learn.lr_find(num_it=30, suggest_funcs="valley", show_plot=False)
    with pytest.raises(ParameterError, match="not a learning rate"):
        learn.lr_find(num_it=10, suggest_funcs=lambda lrs, losses: "fast", show_plot=False)


def test_metrics_bare_or_configured_checked_when_the_learner_is_built():
    def two_labels(p):  # a multi-label target from the digit: its class and "odd"
        return ["three", "odd"] if p.parent.name == "3" else ["seven", "odd"]

    mdls = _mnist(get_y=two_labels, y_block=MultiCategoryBlock)
    for m in (accuracy_multi(thresh=0.2), partial(accuracy_multi, thresh=0.2)):
        learn = _learner(mdls, metrics=m)
        assert learn.metrics[0].thresh == 0.2
    learn.fit(1, 1e-2)
    value = learn.recorder.value("accuracy_multi")
    # by hand over the validation set
    preds, targs = learn.get_preds()
    assert value == pytest.approx(((preds > 0.2) == targs.bool()).float().mean().item(), abs=1e-6)
    with pytest.raises(ParameterError, match="thresh"):
        _learner(mdls, metrics=partial(accuracy_multi, thresh=2.0))
    with pytest.raises(ParameterError, match="metric"):
        _learner(mdls, metrics="accuracy_multi")
    with pytest.raises(ParameterError, match=r"fn\(pred, targ\)"):
        _learner(mdls, metrics=lambda x: x)


class PredDtypes(Callback):
    """The dtype of the model's output of each training batch, as the loss sees it."""

    def before_fit(self):
        self.seen_ = []

    def after_pred(self):
        if self.learn.training:
            self.seen_.append(self.learn.pred.dtype)


def test_to_fp16_and_to_fp32(tiny):
    learn = _mlp(tiny)
    with pytest.warns(UserWarning, match="needs a CUDA device"):
        assert learn.to_fp16() is learn
    assert not any(isinstance(c, MixedPrecision) for c in learn.cbs)
    learn.to_bf16()
    assert isinstance(learn.mixed_precision, MixedPrecision) and learn.mixed_precision.dtype == "bf16"
    seen = PredDtypes()
    learn.fit(1, 1e-2, cbs=seen)
    assert set(seen.seen_) == {torch.bfloat16} and np.isfinite(learn.recorder.values[-1][0])
    learn.to_fp32()
    assert not any(isinstance(c, MixedPrecision) for c in learn.cbs)
    learn.fit(1, 1e-2, cbs=seen)
    assert set(seen.seen_) == {torch.float32}


def test_csv_logger_writes_each_epoch_and_appends(tiny, tmp_path):
    learn = _mlp(tiny, metrics=accuracy, path=tmp_path)
    learn.fit(2, 1e-2, cbs=CSVLogger())
    cb = CSVLogger("history.csv", append=True)
    learn.fit(1, 1e-2, cbs=cb)
    df = cb.read_log()
    assert list(df.columns) == ["epoch", "train_loss", "valid_loss", "accuracy", "time"]
    assert df["epoch"].tolist() == [0, 1, 0] and len(df) == 3
    row = learn.recorder.values[-1]
    assert df["valid_loss"].iloc[-1] == pytest.approx(row[1]) and df["accuracy"].iloc[-1] == pytest.approx(row[2])
    assert all(len(t) == 5 and t[2] == ":" for t in df["time"])
    learn.fit(1, 1e-2, cbs=CSVLogger())  # append=False starts anew
    fresh = (tmp_path / "history.csv").read_text().splitlines()
    assert len(fresh) == 2 and fresh[0] == "epoch,train_loss,valid_loss,accuracy,time"
    # lr_find is no epoch of training: nothing is logged
    learn.add_cb(CSVLogger("lr.csv"))
    learn.lr_find(num_it=10, show_plot=False)
    assert not (tmp_path / "lr.csv").exists()
    learn.remove_cb(CSVLogger)
    other = _mlp(tiny, path=tmp_path)  # no metric: other columns
    with pytest.raises(DataError, match="already logs the columns"):
        other.fit(1, cbs=CSVLogger("history.csv", append=True))


def test_tensorboard_logs_losses_metrics_lrs_and_a_batch(dls, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    learn = _learner(dls, metrics=accuracy)
    learn.fit(2, 1e-2, cbs=TensorBoardCallback(log_dir=tmp_path / "tb", n_images=4))
    ev = EventAccumulator(str(tmp_path / "tb"), size_guidance={"images": 4})
    ev.Reload()
    tags = ev.Tags()
    assert {"train_loss", "valid_loss", "accuracy", "lr/0", "lr/1"} <= set(tags["scalars"]) and "batch" in tags["images"]
    n_batches = len(dls.train)
    assert [e.step for e in ev.Scalars("train_loss")] == list(range(1, 2 * n_batches + 1))
    accs = [e.value for e in ev.Scalars("accuracy")]
    assert accs == pytest.approx([r[2] for r in learn.recorder.values], abs=1e-6)
    img = ev.Images("batch")[0]
    assert img.width * img.height >= 4 * 16 * 16  # the four 16x16 images, tiled


def test_tensorboard_missing_names_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    with pytest.raises(ModuleNotFoundError, match="pip install tensorboard"):
        TensorBoardCallback()


def _run(script: str, **env: str) -> str:
    full = {k: v for k, v in os.environ.items() if k not in ("PIPEKIT_QUIET", "PIPEKIT_PROGRESS")}
    full.update(env)
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, env=full,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout


_FIT = """
    import numpy as np, pipekit
    from pipekit.data import DataLoaders, TensorStore, CategoryBlock
    from pipekit.learn import Learner, MLP, accuracy
    x = np.random.default_rng(0).normal(size=(96, 4)).astype("float32"); y = (x[:, 0] > 0).astype("int64")
    dls = DataLoaders.from_stores([TensorStore(x[:64]), TensorStore(y[:64])], [TensorStore(x[64:]), TensorStore(y[64:])],
                                  blocks=(CategoryBlock(), CategoryBlock(vocab=["no", "yes"])), bs=16, seed=0,
                                  device="cpu", num_workers=0)
    pipekit.set_seed(0)
    learn = Learner(dls, MLP(4, 2, layers=[8]), metrics=accuracy)
    learn.fit(3, 1e-2)
    print("rows", len(learn.recorder.values))
"""


def test_plain_progress_lines_when_output_is_not_a_terminal():
    lines = _run(_FIT).splitlines()
    assert lines[0].split() == ["epoch", "train_loss", "valid_loss", "accuracy", "time"]
    body = lines[1:4]
    assert [ln.split()[0] for ln in body] == ["0", "1", "2"] and lines[4] == "rows 3"
    for ln in body:  # the recorder's values, as text: no colour codes, no carriage returns
        cells = ln.split()
        assert len(cells) == 5 and 0 <= float(cells[3]) <= 1 and ":" in cells[4]
        assert "\x1b" not in ln and "\r" not in ln
    assert _run(_FIT, PIPEKIT_QUIET="1").splitlines() == ["rows 3"]


def test_roc_auc_binary_on_a_two_class_cnn_and_metrics_of_one_name_recorded_apart(dls):
    from sklearn.metrics import roc_auc_score

    from pipekit.learn import EarlyStoppingCallback, RocAuc, RocAucBinary

    learn = _learner(dls, metrics=[RocAucBinary(), RocAuc()])
    learn.fit(1, 1e-4)  # barely trained: the scores of one column alone would rank the items otherwise
    probs, targs = learn.get_preds()
    sk = roc_auc_score(targs.numpy(), probs[:, 1].numpy())
    logits = learn.get_preds(act=lambda x: x)[0]
    assert abs(sk - roc_auc_score(targs.numpy(), logits[:, 1].numpy())) > 0.01
    assert learn.recorder.metric_names[3:5] == ["roc_auc_score", "roc_auc_score_2"]  # fastai's name, twice
    assert learn.recorder.value("roc_auc_score") == pytest.approx(sk) == learn.recorder.value("roc_auc_score_2")

    def two_labels(p):
        return ["three", "odd"] if p.parent.name == "3" else ["seven", "odd"]

    learn = _learner(_mnist(get_y=two_labels, y_block=MultiCategoryBlock),
                     metrics=[accuracy_multi(thresh=0.9), accuracy_multi(thresh=0.1)])
    stop = EarlyStoppingCallback(monitor="accuracy_multi_2", patience=1)
    learn.fit(1, 1e-2, cbs=stop)
    preds, targs = learn.get_preds()
    names = learn.recorder.metric_names
    assert names[3:5] == ["accuracy_multi", "accuracy_multi_2"]
    for name, thresh in (("accuracy_multi", 0.9), ("accuracy_multi_2", 0.1)):
        assert learn.recorder.value(name) == pytest.approx(((preds > thresh) == targs.bool()).float().mean().item())
    assert stop.best_ == pytest.approx(learn.recorder.value("accuracy_multi_2"))


def test_lr_find_sweeps_fastais_rates_and_cuts_a_nan_curve_as_fastai(tiny):
    learn = _mlp(tiny)
    res = learn.lr_find(start_lr=1e-5, end_lr=1.0, num_it=20, stop_div=False, suggest_funcs=minimum, show_plot=False)
    # batch i at start * (end / start) ** (i / num_it), fastai's rates: the last one a step short of end_lr
    assert np.allclose(res.lrs, [1e-5 * (1e5) ** (i / 20) for i in range(20)], rtol=1e-9)
    assert res.lrs[-1] == pytest.approx(10 ** -0.25)
    # a curve whose loss turns NaN at point 60 of 100 (stop_div=False): fastai cuts its first tenth and last five
    # points, then stops at the NaN, so the suggestions read points 10 to 59
    lrs = np.geomspace(1e-7, 10, 100)
    losses = 2.0 - np.sin(np.linspace(0, 3, 100))
    losses[60:] = np.nan
    from pipekit.learn.schedule import _suggestion_curve

    cut_lrs, cut_losses = _suggestion_curve(lrs, losses, 100)
    assert np.array_equal(cut_lrs, lrs[10:60]) and np.isfinite(cut_losses).all()
    assert minimum(cut_lrs, cut_losses) == pytest.approx(lrs[int(np.argmin(losses[10:60])) + 10] / 10)


def test_lr_find_sweeps_without_the_learners_trackers_and_leaves_its_history(tiny, tmp_path):
    from pipekit.learn import EarlyStoppingCallback, SaveModelCallback

    plain = _mlp(tiny).lr_find(num_it=40, stop_div=False, show_plot=False)  # 4 epochs of the 12-batch loader
    learn = _mlp(tiny, metrics=accuracy, path=tmp_path,
                 cbs=[EarlyStoppingCallback(patience=1), SaveModelCallback(every_epoch=True)])
    learn.fit(1, 1e-2)
    saved = (tmp_path / "models" / "model_0.pipekit").read_bytes()
    values, losses = [list(r) for r in learn.recorder.values], list(learn.recorder.losses)
    res = learn.lr_find(num_it=40, stop_div=False, show_plot=False)
    assert len(res.lrs) == len(plain.lrs) == 40  # not stopped after an epoch by early stopping
    assert [p.name for p in (tmp_path / "models").iterdir()] == ["model_0.pipekit"]  # no checkpoint of the sweep
    assert (tmp_path / "models" / "model_0.pipekit").read_bytes() == saved
    assert learn.recorder.values == values and learn.epoch == 0  # the per-batch record is the sweep's, as fastai's
    assert learn.recorder.losses == res.losses.tolist() != losses
    assert learn.early_stopping in learn.cbs and learn.save_model in learn.cbs


def test_metrics_set_after_the_learner_is_built_as_the_constructor_takes_them(tiny):
    def my_acc(pred, targ):
        return (pred.argmax(-1) == targ).float().mean()

    learn = _mlp(tiny)
    learn.metrics = accuracy
    assert len(learn.metrics) == 1 and learn.metrics[0] is not accuracy  # a copy: no accumulator is shared
    learn.fit(1, 1e-2)
    assert learn.recorder.metric_names[3:-1] == ["accuracy"]
    learn.metrics = [my_acc, accuracy]
    learn.fit(1, 1e-2)
    assert learn.recorder.metric_names[3:-1] == ["my_acc", "accuracy"]
    assert learn.recorder.value("my_acc") == pytest.approx(learn.recorder.value("accuracy"))  # whole-set means
    learn.metrics = None
    assert learn.metrics == [] and "metrics=[]" in repr(learn)
    with pytest.raises(ParameterError, match="a metric must be a pipekit Metric or a function"):
        learn.metrics = [3]


def test_to_cpu_moves_a_batch_of_mnist_tiny_as_the_book_calls_it(dls):
    from pipekit.learn import to_cpu

    x, y = to_cpu(dls.train.one_batch())
    assert isinstance(x, torch.Tensor) and x.device.type == "cpu" and x.shape[0] == y.shape[0] == 64
    assert y.dtype == torch.int64 and set(y.tolist()) == {0, 1}
    moved = []

    class Elsewhere(torch.Tensor):  # a tensor that records being moved, as one on an accelerator would be
        def cpu(self, *args, **kwargs):
            moved.append(self.shape)
            return super().cpu(*args, **kwargs).as_subclass(torch.Tensor)

    on = torch.device("cuda") if torch.cuda.is_available() else None
    nested = {"xb": (torch.ones(2, device=on).as_subclass(Elsewhere),),
              "yb": [torch.zeros(3, device=on).as_subclass(Elsewhere)], "n": 2, "name": "a"}
    out = to_cpu(nested)
    assert moved == [torch.Size([2]), torch.Size([3])]
    assert type(out["xb"][0]) is torch.Tensor and out["xb"][0].device.type == out["yb"][0].device.type == "cpu"
    assert isinstance(out["xb"], tuple) and isinstance(out["yb"], list) and out["n"] == 2 and out["name"] == "a"


def test_plot_lr_find_draws_the_last_sweep_kept_apart_from_the_training_history(tiny, tmp_path):
    learn = _mlp(tiny, metrics=accuracy)
    with pytest.raises(ValueError, match=r"plot_lr_find .* has not run it: call learn.lr_find\(\) first"):
        learn.recorder.plot_lr_find(path=tmp_path / "none.png")
    learn.fit(1, 1e-2)
    losses, values = list(learn.recorder.losses), [list(r) for r in learn.recorder.values]
    res = learn.lr_find(num_it=40, stop_div=False, show_plot=False, suggest_funcs=(minimum, steep))
    rec = learn.recorder
    assert rec.lr_find_lrs == res.lrs.tolist() and rec.lr_find_losses == res.losses.tolist() and len(rec.lr_find_lrs) == 40
    assert rec.lr_find_suggestions == {"minimum": res.minimum, "steep": res.steep}
    assert rec.values == values  # the training history is left as it was; lrs and losses are the sweep's, as fastai's
    assert rec.lrs == rec.lr_find_lrs and rec.losses == rec.lr_find_losses != losses
    png = rec.plot_lr_find(path=tmp_path / "lr.png")
    assert png == tmp_path / "lr.png" and png.stat().st_size > 5000
    import matplotlib.image

    img = matplotlib.image.imread(str(png))
    assert img.shape[0] > 200 and img[..., :3].std() > 0.05  # a drawn curve, not a blank canvas
    learn.fit(1, 1e-2)  # a later fit keeps the last sweep
    assert rec.lr_find_lrs == res.lrs.tolist()


def _lr_find_like_curve():
    # a flat start, a fall, a climb to divergence, and a little noise: the shape of an lr_find sweep
    rng = np.random.default_rng(0)
    lrs = np.logspace(-7, 1, 100)
    x = np.log10(lrs)
    return lrs, 2.3 - 1.6 / (1 + np.exp(-(x + 3) * 2.5)) + np.exp((x - 0.2) * 4) + rng.normal(0, 0.01, 100)


def test_suggestions_are_fastais_on_the_same_curve():
    # values from fastai 2.8.12's valley, steep, minimum and slide on the same points (its lr_find drops the
    # first num_it // 10 and the last 5): a reader following the book gets the rates the book's code gives
    lrs, losses = _lr_find_like_curve()
    lrs, losses = lrs[10:-5], losses[10:-5]
    assert valley(lrs, losses) == pytest.approx(0.0015922827933410938, rel=1e-12)
    assert steep(lrs, losses) == pytest.approx(0.0010974987654930567, rel=1e-12)
    assert minimum(lrs, losses) == pytest.approx(0.011497569953977379, rel=1e-12)
    assert slide(lrs, losses) == pytest.approx(0.00029836472402833405, rel=1e-12)
    # the loss falls fastest where steep points, and valley lies inside the falling stretch before the minimum
    assert valley(lrs, losses) < minimum(lrs, losses) * 10
    # a strictly rising curve has no valley: its first point (fastai's answer too)
    assert valley(lrs[:5], np.arange(5.0)) == lrs[0]
    # a curve no longer than slide's window falls back to valley
    assert slide(lrs[:10], losses[:10]) == valley(lrs[:10], losses[:10])


def test_fastais_schedule_names_drive_a_fit(tiny):
    from pipekit.learn import ParamScheduler, SchedCos, SchedLin, SchedNo, SchedPoly, combine_scheds, combined_cos, sched_cos

    # chapter 16's spellings: sched_cos(start, end, pos) is a value, SchedCos(start, end) the function of pos
    assert float(sched_cos(1e-3, 1e-5, 0.5)) == pytest.approx(5.05e-4)
    assert float(SchedPoly(1.0, 0.0, 2)(0.5)) == pytest.approx(0.75) and float(SchedNo(3.0, 9.0)(0.7)) == 3.0
    one_cycle = combined_cos(0.25, 1e-4, 1e-2, 1e-7)
    assert [float(one_cycle(p)) for p in (0.0, 0.25, 1.0)] == pytest.approx([1e-4, 1e-2, 1e-7])
    # a fit driven by them: the lr set before each batch follows the combined schedule
    learn = _mlp(tiny)
    sched = combine_scheds([0.5, 0.5], [SchedLin(1e-3, 1e-2), SchedCos(1e-2, 1e-4)])
    learn.fit(2, cbs=ParamScheduler({"lr": sched}))
    lrs = np.array(learn.recorder.lrs)
    n = len(lrs)
    assert n == 2 * len(tiny.train)
    assert lrs == pytest.approx([float(sched(i / n)) for i in range(n)])
    assert lrs[0] == pytest.approx(1e-3) and lrs.max() == pytest.approx(1e-2, rel=0.05) and lrs[-1] < 1e-3


def test_a_callback_reads_the_learner_and_its_errors_name_it(tiny, tmp_path):
    from pipekit.learn import Callback

    class SaveAtEnd(Callback):  # fastai's callbacks call the learner's methods as their own
        def after_fit(self):
            self.saved = self.save("at_end")
            self.frozen_groups = (self.opt_func, self.splitter, self.recorder is self.learn.recorder)

    learn = _mlp(tiny, path=tmp_path)
    cb = SaveAtEnd()
    learn.fit(1, 1e-3, cbs=cb)
    assert (tmp_path / "models" / "at_end.pipekit").exists() and cb.frozen_groups[2]
    assert cb.frozen_groups[:2] == (learn.opt_func, learn.splitter)
    with pytest.raises(AttributeError, match="has no attribute 'nothing_here'"):
        _ = cb.nothing_here

    class Boom(Callback):
        def after_pred(self):
            raise ValueError("boom")

    with pytest.raises(ValueError, match="^boom") as err:
        learn.fit(1, 1e-3, cbs=Boom())
    assert err.value.__notes__ == ["(raised in the callback Boom at after_pred)"]


def test_the_loop_shown_and_the_recorder_read_as_fastais(tiny, capsys):
    from pipekit.learn import Callback

    class Watch(Callback):
        def before_batch(self):
            pass

    learn = _mlp(tiny, metrics=accuracy, cbs=Watch())
    learn.show_training_loop()
    shown = capsys.readouterr().out.splitlines()
    assert shown[0] == "Start Fit" and shown[-1] == "End Fit"
    at = {line.strip().split(":")[0].strip("- ").strip(): line for line in shown if ":" in line}
    assert at["before_batch"].strip() == "- before_batch   : [Watch]"
    assert "Recorder" in at["after_batch"] and shown.index("         Start Batch") < shown.index(at["before_batch"])
    with learn.no_mbar(), learn.no_logging():
        learn.fit(2, 1e-2)
    log = learn.recorder.log
    assert log[0] == 1 and log[1:-1] == learn.recorder.values[-1] and len(log) == 5
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axs = plt.subplots(1, 2)
    assert learn.recorder.plot_loss(ax=axs[1], log=True, show_epochs=True) is axs[1]
    assert axs[1].get_yscale() == "log" and len(axs[1].lines) == 2 + 2  # train, valid, a line per epoch
    plt.close(fig)


def test_get_preds_on_the_training_loader_gives_every_item_in_order(dls):
    # dls.train shuffles and drops its last partial batch; predictions line up with dls.train_ds.items
    pipekit.set_seed(0)
    learn = Learner(dls, torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16 * 16, 2)))
    n = len(dls.train_ds)
    assert n % dls.train.bs and dls.train.drop_last and dls.train.shuffle  # a batch would be left out
    preds, targs = learn.get_preds(dl=dls.train)
    plain, plain_targs = learn.get_preds(ds_idx=0)
    assert len(preds) == n and torch.equal(preds, plain) and torch.equal(targs, plain_targs)
    assert dls.train.drop_last and dls.train.shuffle  # the learner's loader is left as it was
    assert learn.validate(dl=dls.train)[0] == pytest.approx(learn.validate(ds_idx=0)[0])


def test_loaders_answer_their_items(dls):
    # fastai's dls.valid.items and tst_dl.items: the files a loader reads, in its dataset's order
    assert list(dls.valid.items) == list(dls.valid_ds.items) and len(dls.valid.items) == len(dls.valid_ds)
    files = get_image_files(D.path("mnist_tiny") / "test")
    tst = dls.test_dl(files)
    assert tst.items is files and tst.dataset.items is files and tst.n == len(files) == 20
    bare = DataLoaders.from_stores([TensorStore(np.zeros((4, 2), "float32"))], [TensorStore(np.zeros((2, 2), "float32"))],
                                   blocks=(CategoryBlock(),), bs=2)
    with pytest.raises(AttributeError, match="built from arrays, not from items"):
        _ = bare.train.items


def test_fastais_other_classification_metrics_match_scikit_learn(dls):
    from functools import partial as bind

    from sklearn.metrics import balanced_accuracy_score, cohen_kappa_score, matthews_corrcoef, precision_score

    from pipekit.learn import BalancedAccuracy, CohenKappa, MatthewsCorrCoef, Precision, top_k_accuracy

    pipekit.set_seed(0)
    metrics = [BalancedAccuracy(), MatthewsCorrCoef(), CohenKappa(), Precision(pos_label=0), top_k_accuracy,
               bind(top_k_accuracy, k=1)]
    learn = Learner(dls, torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16 * 16, 2)), metrics=metrics)
    learn.fit(1, 1e-3)
    preds, targs = learn.get_preds()
    labels, y = preds.argmax(1).numpy(), targs.numpy()
    values = learn.validate()[1:]
    assert values[:4] == pytest.approx([balanced_accuracy_score(y, labels), matthews_corrcoef(y, labels),
                                        cohen_kappa_score(y, labels), precision_score(y, labels, pos_label=0)])
    assert values[4] == 1.0  # two classes: the target is always among the top 5
    assert values[5] == pytest.approx((labels == y).mean())  # top-1 is accuracy
    with pytest.raises(ValueError, match="pos_label=2 is not a class"):
        Precision(pos_label=2)(preds, targs)


def test_interpretation_from_learner_serves_classifiers_and_regressions(dls, tmp_path):
    from pipekit.data import RegressionBlock
    from pipekit.learn import ClassificationInterpretation, Interpretation, MSELossFlat

    pipekit.set_seed(0)
    learn = Learner(dls, torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16 * 16, 2)))
    interp = Interpretation.from_learner(learn)  # fastai's base class, on a classifier: the classifier's tools
    assert isinstance(interp, ClassificationInterpretation) and interp.confusion_matrix().sum() == len(dls.valid_ds)
    assert interp.plot_top_losses(3, path=tmp_path / "clf.png").stat().st_size > 1000
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 4)).astype("float32")
    y = (x @ np.array([1.0, -2.0, 0.5, 0.0], "float32"))[:, None]
    reg = DataLoaders.from_stores([TensorStore(x[:64]), TensorStore(y[:64])], [TensorStore(x[64:]), TensorStore(y[64:])],
                                  blocks=(RegressionBlock(), RegressionBlock()), bs=16, seed=0)
    rlearn = Learner(reg, torch.nn.Linear(4, 1), loss_func=MSELossFlat())
    rinterp = Interpretation.from_learner(rlearn)
    assert type(rinterp) is Interpretation
    losses, idxs = rinterp.top_losses(2)
    i = int(idxs[0])
    assert rinterp._title(i, float(losses[0])) == \
        f"{float(rinterp.decoded[i]):.3g}/{float(y[64 + i, 0]):.3g} / {float(losses[0]):.2f}"
    assert rinterp.plot_top_losses(4, path=tmp_path / "reg.png").stat().st_size > 1000


def test_after_create_runs_once_the_learner_is_built(tiny):
    import warnings

    from pipekit.learn import Callback

    class Created(Callback):
        def after_create(self):
            self.seen = (self.learn.model is not None, len(self.learn.cbs))

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not reported as an unknown event
        cb = Created()
        learn = _mlp(tiny, cbs=cb)
    assert cb.seen == (True, len(learn.cbs))


def test_show_images_draws_the_books_pairs(tmp_path, monkeypatch):
    from PIL import Image

    from pipekit.data.plotting import plot_dir
    from pipekit.vision import show_images

    monkeypatch.setenv("PIPEKIT_PLOTS", str(tmp_path))
    root = D.path("mnist_tiny") / "train"
    im3, im7 = Image.open(sorted((root / "3").iterdir())[0]), Image.open(sorted((root / "7").iterdir())[0])
    axs = show_images((im3, im7), titles=("3", "7"))
    assert [ax.get_title() for ax in axs] == ["3", "7"] and axs[0].images[0].get_array().shape[:2] == (28, 28)
    assert any(p.suffix == ".png" for p in plot_dir().iterdir())
    with pytest.raises(ValueError, match="2 titles for 1 images"):
        show_images([im3], titles=["3", "7"])


def test_recorder_iters_hps_and_plot_sched_keys(dls, tmp_path):
    # chapter 16's look at a schedule: learn.recorder.plot_sched() after fit_one_cycle, recorder.hps, recorder.iters
    from PIL import Image

    from pipekit.learn import ParamScheduler, SchedLin

    learn = _learner(dls)
    n = len(dls.train)
    learn.fit_one_cycle(2, 1e-2)
    rec = learn.recorder
    assert rec.iters == [n, 2 * n] and len(rec.losses) == 2 * n
    lrs, moms = np.array(rec.hps["lr"]), np.array(rec.hps["mom"])
    assert len(lrs) == len(moms) == 2 * n
    assert lrs[0] == pytest.approx(1e-2 / 25) and lrs.max() == pytest.approx(1e-2, rel=0.05)
    assert moms[0] == pytest.approx(0.95) and moms.min() == pytest.approx(0.85, abs=0.01)
    assert np.argmax(lrs) == np.argmin(moms)  # the peak rate at the lowest momentum, a quarter of the way
    one = Image.open(rec.plot_sched(keys="lr", path=tmp_path / "lr.png")).size
    both = Image.open(rec.plot_sched(path=tmp_path / "both.png")).size
    assert both[0] > 1.7 * one[0] and both[1] == pytest.approx(one[1], abs=5)  # two panels side by side
    with pytest.raises(ParameterError, match=r"no recorded hyper-parameter \['wd'\]; recorded: \['lr', 'mom'\]"):
        rec.plot_sched(keys=["lr", "wd"])
    # a schedule of one's own is recorded under its name, as fastai's ParamScheduler records it
    learn.fit(1, 1e-3, cbs=ParamScheduler({"wd": SchedLin(0.0, 0.1)}))
    wd = np.array(rec.hps["wd"])
    assert len(wd) == n and wd[0] == 0.0 and np.allclose(np.diff(wd), 0.1 / n)
    assert rec.iters == [n] and np.allclose(rec.hps["lr"], 1e-3)


def test_validate_with_callbacks_of_its_own_and_ordered_cbs(dls):
    seen = []

    class CountValid(Callback):
        def after_batch(self):
            seen.append(len(self.learn.yb[0]))

    learn = _learner(dls, metrics=accuracy)
    loss, acc = learn.validate(cbs=CountValid())
    assert sum(seen) == len(dls.valid_ds) and 0 <= acc <= 1 and loss > 0
    assert not any(isinstance(c, CountValid) for c in learn.cbs)  # only for that pass
    assert learn.validate() == [loss, acc] and sum(seen) == len(dls.valid_ds)
    names = [type(c).__name__ for c in learn.ordered_cbs("after_batch")]
    # by order: -20, 15 (stops a fit whose loss was NaN, after the user's callbacks saw the batch), then 50
    assert names == ["TrainEvalCallback", "TerminateOnNaNCallback", "Recorder"]
    with learn.added_cbs(CountValid()):
        assert [type(c).__name__ for c in learn.ordered_cbs("after_batch")] == [
            "TrainEvalCallback", "CountValid", "TerminateOnNaNCallback", "Recorder"]  # order 0
    assert [type(c).__name__ for c in learn.ordered_cbs("after_loss")] == ["TerminateOnNaNCallback"]
    with pytest.raises(ParameterError, match="'after_bach' is not an event"):
        learn.ordered_cbs("after_bach")


def test_metrics_of_data_with_two_targets_take_each_target_as_an_argument():
    """The course's multi-target notebook: ``disease_err(inp, disease, variety)`` as a metric (fastai calls a metric
    ``fn(pred, *yb)``); what it records is the function on the whole validation set's predictions."""
    import torch.nn.functional as F
    from torch import nn

    from pipekit.learn import error_rate

    def parity(p):
        return "even" if int(p.stem) % 2 == 0 else "odd"

    items = lambda p: get_image_files(p, folders=["train", "valid"])  # noqa: E731
    dls = DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock, CategoryBlock), n_inp=1, get_items=items,
                    get_y=[parent_label, parity], splitter=GrandparentSplitter(), item_tfms=Resize(16)
                    ).dataloaders(D.path("mnist_tiny"), bs=64, seed=0, device="cpu", num_workers=0)

    def digit_loss(inp, digit, par): return F.cross_entropy(inp[:, :2], digit)
    def parity_loss(inp, digit, par): return F.cross_entropy(inp[:, 2:], par)
    def combine_loss(inp, digit, par): return digit_loss(inp, digit, par) + parity_loss(inp, digit, par)
    def digit_err(inp, digit, par): return error_rate(inp[:, :2], digit)
    def parity_err(inp, digit, par): return error_rate(inp[:, 2:], par)
    def both_err(inp, targs): return (error_rate(inp[:, :2], targs[0]) + error_rate(inp[:, 2:], targs[1])) / 2

    pipekit.set_seed(0)
    learn = Learner(dls, nn.Sequential(nn.Flatten(), nn.Linear(16 * 16, 4)), loss_func=combine_loss,
                    metrics=[digit_err, parity_err, digit_loss, both_err])
    learn.fit(1, 1e-2)
    assert learn.recorder.metric_names == ["epoch", "train_loss", "valid_loss", "digit_err", "parity_err",
                                           "digit_loss", "both_err", "time"]
    preds, targs = learn.get_preds()
    assert isinstance(targs, tuple) and len(targs) == 2
    _, valid_loss, d_err, p_err, d_loss, b_err = learn.recorder.values[-1]
    assert d_err == pytest.approx(float(digit_err(preds, *targs)), abs=1e-6) and d_err < 0.3
    assert p_err == pytest.approx(float(parity_err(preds, *targs)), abs=1e-6)
    assert b_err == pytest.approx((d_err + p_err) / 2, abs=1e-6)  # a function of two gets the targets as a tuple
    assert d_loss == pytest.approx(float(digit_loss(preds, *targs)), rel=1e-4)
    with pytest.raises(ParameterError, match=r"fn\(pred, targ\) \(or fn\(pred, \*targs\)"):
        Learner(dls, nn.Linear(1, 1), loss_func=combine_loss, metrics=lambda inp: inp.mean())


def test_weight_decay_is_the_learners_at_each_fit_not_given_its_own(tiny):
    # as fastai's: fit(wd=...) holds for that fit, a later fit goes back to the learner's wd, and learn.wd set after
    # the optimiser was made (vision_learner makes it when it freezes) takes effect at the next fit
    learn = _mlp(tiny, wd=0.1)
    learn.fit(1, 1e-3)
    assert learn.opt.hypers[-1]["wd"] == 0.1
    learn.fit(1, 1e-3, wd=0.5)
    assert learn.opt.hypers[-1]["wd"] == 0.5
    learn.fit_one_cycle(1, 1e-3)
    assert learn.opt.hypers[-1]["wd"] == 0.1
    learn.wd = 0.3
    learn.fit(1, 1e-3)
    assert all(h["wd"] == 0.3 for h in learn.opt.hypers)
