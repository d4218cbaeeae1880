"""Built-in callbacks and interpretation on a Fashion-MNIST subset."""
from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import pytest
import torch

import pipekit
import pipekit.datasets as D
from pipekit.core.errors import ParameterError
from pipekit.data import CategoryBlock, DataLoaders, TensorStore
from pipekit.data.external import read_idx
from pipekit.learn import (
    ActivationStats, ClassificationInterpretation, CrossEntropyLossFlat, EarlyStoppingCallback, FuncMetric,
    GradientClip, Learner, MixedPrecision, MixUp, SaveModelCallback, TimeLimit, accuracy, body_head_splitter, simple_cnn,
)

CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


@pytest.fixture(scope="module")
def dls():
    torch.set_num_threads(1)
    root = D.path("fashion_mnist")
    x = read_idx(root / "train-images-idx3-ubyte.gz")[:1400, None].astype(np.float32) / 255.0
    y = read_idx(root / "train-labels-idx1-ubyte.gz")[:1400].astype(np.int64)
    return DataLoaders.from_stores([TensorStore(x[:1024]), TensorStore(y[:1024])],
                                   [TensorStore(x[1024:]), TensorStore(y[1024:])],
                                   blocks=(CategoryBlock(), CategoryBlock(vocab=CLASSES)), bs=64, seed=0,
                                   device="cpu", num_workers=0)


@pytest.fixture(scope="module")
def module_folders():
    """PIPEKIT_CACHE and PIPEKIT_PLOTS as a module fixture (``dls``) sees them."""
    return os.environ.get("PIPEKIT_CACHE"), os.environ.get("PIPEKIT_PLOTS")


def test_module_fixtures_write_caches_and_plots_in_the_run_s_temporary_folder(module_folders, tmp_path_factory):
    # not in the caller's folders (make test's .pipekit_cache in the checkout), which xdist's workers would share
    base = tmp_path_factory.getbasetemp()
    assert all(folder and Path(folder).is_relative_to(base) for folder in module_folders), module_folders


def learner(dls, **kw):
    pipekit.set_seed(0)
    return Learner(dls, simple_cnn(1, 10, (8, 16)), splitter=body_head_splitter, metrics=accuracy, **kw)


def test_save_model_keeps_best_and_reloads_it(dls, tmp_path, monkeypatch, capsys):
    learn = learner(dls, path=tmp_path)
    cb = SaveModelCallback(monitor="accuracy", fname="best")
    monkeypatch.setenv("PIPEKIT_QUIET", "0")
    with learn.no_logging():
        learn.fit(3, 1e-2, cbs=[cb])
    accs = [r[learn.recorder.metric_names.index("accuracy")] for r in learn.recorder.history]
    assert cb.best_ == cb.best == pytest.approx(max(accs)) and (tmp_path / "models" / "best.pipekit").exists()
    # each new best is told as fastai tells it, with the epoch and the value
    told = [line for line in capsys.readouterr().out.splitlines() if line.startswith("Better model found")]
    best_epochs = [i for i, a in enumerate(accs) if a == max(accs[:i + 1]) and (i == 0 or a > max(accs[:i]))]
    assert told == [f"Better model found at epoch {i} with accuracy value: {accs[i]:.6g}." for i in best_epochs]
    monkeypatch.setenv("PIPEKIT_QUIET", "1")
    # the best epoch's weights are back in the model
    assert learn.validate()[1] == pytest.approx(max(accs))
    every = SaveModelCallback(every_epoch=True, fname="ep")
    learn.fit(2, 1e-3, cbs=[every])
    assert [p.name for p in every.saved_] == ["ep_0.pipekit", "ep_1.pipekit"]
    with pytest.raises(ValueError, match="cannot monitor 'f1'"):
        learn.fit(1, cbs=[SaveModelCallback(monitor="f1")])


def test_trackers_take_the_direction_from_the_metric(dls, tmp_path):
    def wrong(pred, targ):  # a share of errors: lower is better, which its name does not say
        return (pred.argmax(1) != targ).float().mean()

    pipekit.set_seed(0)
    learn = Learner(dls, simple_cnn(1, 10, (8, 16)), splitter=body_head_splitter, path=tmp_path,
                    metrics=[accuracy, FuncMetric(wrong, greater_is_better=False)])
    save = SaveModelCallback(monitor="wrong", fname="least_wrong")
    most = EarlyStoppingCallback(monitor="wrong", comp=np.greater, patience=10)  # comp= overrides the direction
    learn.fit(3, 1e-2, cbs=[save, most])
    wrongs = [r[learn.recorder.metric_names.index("wrong")] for r in learn.recorder.history]
    assert len(set(wrongs)) == 3 and save.best_ == pytest.approx(min(wrongs)) and most.best_ == pytest.approx(max(wrongs))
    assert learn.validate()[2] == pytest.approx(min(wrongs))  # the least wrong epoch's model was reloaded


def test_early_stopping_stops_when_no_improvement(dls, monkeypatch, capsys):
    learn = learner(dls)
    # a huge min_delta means no epoch counts as an improvement after the first
    cb = EarlyStoppingCallback(monitor="valid_loss", min_delta=100.0, patience=2)
    monkeypatch.setenv("PIPEKIT_QUIET", "0")
    with learn.no_logging():
        learn.fit(10, 1e-3, cbs=[cb])
    assert len(learn.recorder.values) == 3 and cb.stopped_epoch_ == 2  # epoch 0 sets the best, 2 more fail
    assert capsys.readouterr().out.splitlines()[-1] == "No improvement since epoch 0: early stopping"
    # patience=0 stops at the first epoch without improvement, as patience=1 does (fastai's reading), never at a best
    stops = []
    for patience in (0, 1):
        cb = EarlyStoppingCallback(monitor="valid_loss", min_delta=100.0, patience=patience)
        with learn.no_logging():
            learner(dls).fit(10, 1e-3, cbs=[cb])
        stops.append(cb.stopped_epoch_)
    assert stops == [1, 1]
    with pytest.raises(ValueError, match="patience"):
        EarlyStoppingCallback(patience=-1)


def test_a_time_limit_shortens_the_one_cycle_and_it_still_anneals(dls):
    import time

    learn = learner(dls)
    limit = TimeLimit(3.0)
    t = time.perf_counter()
    learn.fit_one_cycle(200, 1e-2, cbs=limit)  # 3,200 batches: minutes of training, cut to what 3 s hold
    took = time.perf_counter() - t
    assert took < 6.0 and limit.stopped_on_time_ and 20 < limit.kept_ < limit.planned_ == 200 * len(dls.train)
    lrs = [g[0] for g in learn.recorder.group_lrs]
    # the schedule ran to its end over the batches kept: warmed up to lr_max, annealed to almost nothing,
    # and the last epoch, stopped part-way, was validated, unless a batch ran past the limit (a loaded machine):
    # then the fit stopped without validating it
    assert len(lrs) == limit.kept_ and max(lrs) == pytest.approx(1e-2, rel=0.1) and lrs[-1] < 1e-4
    n = len(dls.train)
    assert len(learn.recorder.values) == (limit.kept_ // n if limit.cut_off_ else -(-limit.kept_ // n))
    assert learn.recorder.values[-1][0] is not None  # no epoch recorded without a training batch
    # a limit that does not bind changes nothing, batch for batch
    free, timed, epoch = learner(dls), learner(dls), dls.train.epoch
    free.fit_one_cycle(1, 1e-2)
    roomy = TimeLimit(600)
    dls.train.epoch = epoch  # the same shuffle
    timed.fit_one_cycle(1, 1e-2, cbs=roomy)
    assert not roomy.stopped_on_time_ and roomy.kept_ == roomy.planned_ == len(dls.train)
    for a, b in zip(free.model.parameters(), timed.model.parameters()):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="seconds"):
        TimeLimit(0)


def test_gradient_clip_bounds_the_norm(dls):
    learn = learner(dls)
    norms = []

    class After(GradientClip):
        order = 21

        def before_step(self):
            norms.append(float(torch.nn.utils.clip_grad_norm_(self.learn.model.parameters(), 1e9)))

    clip = GradientClip(max_norm=0.05)
    learn.fit(1, 1e-2, cbs=[clip, After(1e9)])
    assert max(norms) <= 0.05 + 1e-4 and float(clip.last_norm) > 0.05  # it really had to clip


def test_mixed_precision_noop_on_cpu_and_bf16_when_asked(dls):
    dtypes = []
    learn = learner(dls)
    mp = MixedPrecision()
    learn.fit(1, 1e-3, cbs=[mp])
    assert mp.active is False and mp.scaler is None  # a no-op on the CPU unless asked
    learn = learner(dls)

    def hook(m, i, o):
        dtypes.append(o.dtype)

    h = learn.model[0][0][0].register_forward_hook(hook)
    learn.fit(1, 1e-3, cbs=[MixedPrecision(cpu=True)])
    h.remove()
    assert torch.bfloat16 in dtypes
    assert np.isfinite(learn.recorder.values[-1][0])
    preds, _ = learn.get_preds()
    assert preds.dtype == torch.float32
    with pytest.raises(ValueError, match="bf16"):
        learner(dls).fit(1, cbs=[MixedPrecision(dtype="fp16", cpu=True)])


def test_mixup_mixes_inputs_and_keeps_validation_clean(dls):
    learn = learner(dls)
    seen = {}

    class Spy(MixUp):
        def before_batch(self):
            x0 = self.learn.xb[0].clone()
            super().before_batch()
            seen.setdefault("changed", not torch.equal(x0, self.learn.xb[0]))
            seen.setdefault("lam_min", float(self.lam.min()))

    learn.fit_one_cycle(2, 1e-2, cbs=[Spy(alpha=0.4)])
    assert seen["changed"] and seen["lam_min"] >= 0.5
    assert isinstance(learn.loss_func, CrossEntropyLossFlat)  # restored after training
    assert learn.recorder.value("accuracy") > 0.2  # clearly above chance (0.1) after 32 mixed batches


def test_activation_stats_records_each_layer(dls, tmp_path):
    learn = learner(dls)
    stats = ActivationStats()
    learn.fit(1, 1e-2, cbs=[stats])
    assert len(stats.stats_) >= 5  # convs, batch-norms and the linear head
    for name, arr in stats.stats_.items():
        assert arr.shape == (len(dls.train), 3), name
        assert np.all((arr[:, 2] >= 0) & (arr[:, 2] <= 1))
    bn = [n for n in stats.stats_ if n.endswith(".1")][0]
    assert abs(stats.stats_[bn][:, 0].mean()) < 0.5  # batch-norm output is roughly centred
    assert stats.plot_layer_stats(0, tmp_path / "act.png").exists()


def test_classification_interpretation(dls, tmp_path):
    learn = learner(dls)
    learn.fit_one_cycle(2, 1e-2)
    interp = ClassificationInterpretation.from_learner(learn)
    cm = interp.confusion_matrix()
    n_valid = len(dls.valid.dataset)
    assert cm.shape == (10, 10) and cm.sum() == n_valid
    acc = learn.recorder.value("accuracy")
    assert np.trace(cm) / n_valid == pytest.approx(acc)
    mc = interp.most_confused(min_val=2)
    assert mc and all(a != p and c >= 2 for a, p, c in mc) and mc[0][2] == max(c for _, _, c in mc)
    assert mc[0][2] == cm[CLASSES.index(mc[0][0]), CLASSES.index(mc[0][1])]
    losses, idxs = interp.top_losses(5)
    assert torch.all(losses[:-1] >= losses[1:]) and float(losses[0]) == pytest.approx(float(interp.losses.max()))
    # the per-item losses are the real cross-entropies of those items
    i = int(idxs[0])
    assert float(losses[0]) == pytest.approx(-float(interp.preds[i, int(interp.targs[i])].log()), rel=1e-4)
    assert interp.plot_confusion_matrix(path=tmp_path / "cm.png").stat().st_size > 1000
    from matplotlib.figure import Figure

    figs: list = []
    save = Figure.savefig
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Figure, "savefig", lambda fig, *a, **k: (figs.append(fig), save(fig, *a, **k))[1])
        assert interp.plot_top_losses(4, path=tmp_path / "tl.png").stat().st_size > 1000
        # the confusion matrix writes each cell's count, unless plot_txt=False (fastai's keyword)
        interp.plot_confusion_matrix(path=tmp_path / "cm_txt.png")
        interp.plot_confusion_matrix(path=tmp_path / "cm_bare.png", plot_txt=False)
    assert len(figs[-2].axes[0].texts) == 100 and len(figs[-1].axes[0].texts) == 0
    assert sorted(int(t.get_text()) for t in figs[-2].axes[0].texts) == sorted(cm.ravel().tolist())
    # each title: predicted / actual / loss / the model's confidence in its prediction, as the book reads it
    title = figs[0].axes[0].get_title().replace("\n", " ")
    pred = int(interp.decoded[i])
    assert title.split(" / ")[-1] == f"{float(interp.preds[i, pred]):.2f}" and title.startswith(CLASSES[pred])
    report = interp.classification_report()
    assert "Ankle boot" in report and "precision" in report
    with pytest.raises(ParameterError, match=rf"top_losses: k=0 is not accepted; expected an integer in \[1, {n_valid}\]"):
        interp.top_losses(0)


@pytest.mark.parametrize("flags, fast", [("fpu sse2 avx512f avx512_bf16 amx_tile", True),
                                         ("fpu sse2 avx2 amx_bf16 amx_tile", True),
                                         ("fpu sse2 avx2 avx512f avx512bw", False)])
def test_cpu_bf16_is_fast_reads_the_cpu_flags(monkeypatch, tmp_path, flags, fast):
    import builtins

    import pipekit.learn.callbacks.builtin as builtin

    info = tmp_path / "cpuinfo"
    info.write_text(f"processor\t: 0\nmodel name\t: a CPU\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: fpu\n")
    real_open = builtins.open
    monkeypatch.setattr(builtin, "open", lambda p, *a, **k: real_open(info if p == "/proc/cpuinfo" else p, *a, **k),
                        raising=False)
    assert builtin.cpu_bf16_is_fast() is fast
    monkeypatch.setattr(builtin, "open", lambda *a, **k: (_ for _ in ()).throw(FileNotFoundError(a[0])), raising=False)
    assert builtin.cpu_bf16_is_fast() is False  # no /proc/cpuinfo (not Linux): never assumed


# ---------------------------------------------------------------- what the book's training-loop chapters type
def _tiny(n: int = 320, bs: int = 32):
    from torch import nn

    rng = np.random.default_rng(0)
    x = rng.normal(size=(n + 80, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int64")
    dls = DataLoaders.from_stores([TensorStore(x[:n]), TensorStore(y[:n])], [TensorStore(x[n:]), TensorStore(y[n:])],
                                  bs=bs, seed=0, device="cpu")
    return dls, nn


def test_plain_functions_as_metrics_and_losses_say_what_they_must_return():
    from pipekit.learn import CrossEntropyLossFlat

    dls, nn = _tiny()

    def as_float(pred, targ):  # ends in .item(), as the book's functions often do
        return (pred.argmax(1) == targ).float().mean().item()

    learn = Learner(dls, nn.Linear(4, 2), loss_func=CrossEntropyLossFlat(), metrics=as_float)
    learn.fit(3, 0.1)
    assert 0.8 < learn.recorder.values[-1][-1] <= 1

    def hits(pred, targ):  # one value per item: not a batch mean
        return (pred.argmax(1) == targ).float()

    with pytest.raises(ParameterError, match=r"metric 'hits' returned \(\d+,\) values .*returns the batch's mean"):
        Learner(dls, nn.Linear(4, 2), loss_func=CrossEntropyLossFlat(), metrics=hits).fit(1, 1e-2)

    def per_item_loss(pred, targ):
        return torch.nn.functional.cross_entropy(pred, targ, reduction="none")

    with pytest.raises(ParameterError, match=r"loss_func 'per_item_loss' returned \(32,\) values .*\.mean\(\)"):
        Learner(dls, nn.Linear(4, 2), loss_func=per_item_loss).fit(1, 1e-2)
    with pytest.raises(ParameterError, match=r"loss_func 'per_item_loss' returned \(32,\) values"):
        Learner(dls, nn.Linear(4, 2), loss_func=per_item_loss).validate()
    # a pipekit loss gives per-item losses where they are asked for
    flat = Learner(dls, nn.Linear(4, 2), loss_func=CrossEntropyLossFlat())
    assert flat.get_preds(with_loss=True)[2].shape == (80,)
    from pipekit.data import DataLoader

    dl = DataLoader(list(zip(range(4), range(10, 14))), bs=2)  # the book's list of (x, y) items
    assert [[t.tolist() for t in b] for b in dl] == [[[0, 1], [10, 11]], [[2, 3], [12, 13]]]
    with pytest.raises(ParameterError, match=r"DataLoader takes a pipekit dataset .*got a dict.*list\(zip"):
        DataLoader({"x": [1, 2]}, bs=2)


def test_an_interrupted_fit_leaves_nothing_of_its_callbacks_behind():
    from pipekit.learn import Callback, CrossEntropyLossFlat

    dls, nn = _tiny()
    bad = Learner(dls, nn.Linear(5, 2), loss_func=CrossEntropyLossFlat()).to_bf16()
    with pytest.raises(RuntimeError, match="cannot be multiplied"):
        bad.fit(1, 1e-2)
    assert not torch.is_autocast_enabled("cpu")
    a = torch.randn(4, 4)
    assert (a @ a).dtype == torch.float32

    class CtrlC(Callback):
        def after_batch(self):
            if self.learn.training and self.learn.iter == 2:
                raise KeyboardInterrupt

    loss = CrossEntropyLossFlat()
    learn = Learner(dls, nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)), loss_func=loss)
    with pytest.raises(KeyboardInterrupt):
        learn.fit(1, 1e-2, cbs=[MixUp(), ActivationStats(), CtrlC()])
    assert learn.loss_func is loss
    assert not any(m._forward_hooks for m in learn.model.modules())
    assert len(learn.validate()) == 1  # the learner works as before


def test_time_limit_shortens_a_slow_fit_resumes_and_covers_fine_tune(dls, tmp_path):
    import time

    from pipekit.learn import Callback, CrossEntropyLossFlat, TimeLimit

    small, nn = _tiny()

    class Slow(Callback):  # a model at 0.2 s a batch: 3 s hold about 15 of the 50 asked for
        def before_batch(self):
            if self.learn.training:
                time.sleep(0.2)

    learn = Learner(small, nn.Linear(4, 2), loss_func=CrossEntropyLossFlat(), cbs=Slow())
    _ = learn.optimizer
    limit = TimeLimit(3)
    learn.fit_one_cycle(5, 1e-2, cbs=limit)
    lrs = [g[0] for g in learn.recorder.group_lrs]
    assert limit.stopped_on_time_ and 5 <= limit.kept_ == len(lrs) < 20 and lrs[-1] < 1e-3  # shortened, annealed
    # the limit is not part of a checkpoint: a fit resumed at start_epoch follows the same schedule
    plain = learner(dls, path=tmp_path)
    plain.fit_one_cycle(3, 1e-2, cbs=[TimeLimit(600), SaveModelCallback(every_epoch=True, fname="ep")])
    resumed = learner(dls, path=tmp_path)
    resumed.load("ep_0")
    resumed.fit_one_cycle(3, 1e-2, cbs=TimeLimit(600), start_epoch=1)
    assert resumed.total_iters == plain.total_iters and resumed.recorder.lrs[-1] == pytest.approx(plain.recorder.lrs[-1])
    # fine_tune's two fits share one limit
    tune = learner(dls)
    shared = TimeLimit(2.0)
    t = time.perf_counter()
    tune.fine_tune(100, 1e-3, cbs=shared)
    assert time.perf_counter() - t < 3.5 and shared.stopped_on_time_ and shared.kept_ < shared.planned_


def _limit_clock(monkeypatch):
    """The clock TimeLimit reads, as a list of one number the test moves (seconds): a fit's timing exactly as
    the test sets it, whatever the machine's load."""
    from types import SimpleNamespace

    from pipekit.learn.callbacks import builtin

    clock = [0.0]
    monkeypatch.setattr(builtin, "time", SimpleNamespace(perf_counter=lambda: clock[0]))
    return clock


def test_a_time_limit_ends_the_fit_when_an_epoch_has_no_time_for_its_first_batch(monkeypatch, tmp_path, capsys):
    from pipekit.learn import Callback, CrossEntropyLossFlat

    small, nn = _tiny()  # 10 training batches an epoch
    clock = _limit_clock(monkeypatch)

    class Clock(Callback):  # 0.1 s a training batch; the third epoch's first batch comes at 9.9 s of the 10
        def before_train(self):
            if self.learn.epoch == 2:
                clock[0] = 9.9

        def after_batch(self):
            if self.learn.training:
                clock[0] += 0.1

    learn = Learner(small, nn.Linear(4, 2), loss_func=CrossEntropyLossFlat(), path=tmp_path, cbs=Clock())
    limit = TimeLimit(10)
    monkeypatch.setenv("PIPEKIT_QUIET", "0")
    learn.fit_one_cycle(5, 1e-2, cbs=limit)
    monkeypatch.setenv("PIPEKIT_QUIET", "1")
    # the end of the second epoch planned more batches; at the third's first, none fits in the 0.1 s left: the
    # fit ends there, as the epochs the kept batches fill, not with a third epoch validated and recorded empty
    rows = learn.recorder.values
    assert len(rows) == 2 and all(r[0] is not None for r in rows)
    assert (limit.planned_, limit.kept_, limit.stopped_on_time_, limit.cut_off_) == (50, 20, True, False)
    assert len(learn.recorder.lrs) == limit.kept_ and learn.pct_train == 1.0
    table = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in table] == ["epoch", "0", "1"]
    # a checkpoint of the learner as the fit left it resumes at the epoch that trained nothing
    learn.save("end")
    fresh = Learner(small, nn.Linear(4, 2), loss_func=CrossEntropyLossFlat(), path=tmp_path)
    assert fresh.load("end").resume_epoch == 2
    fresh.fit_one_cycle(5, 1e-2, cbs=TimeLimit(600), start_epoch=fresh.resume_epoch)
    assert [r[0] for r in fresh.recorder.history] == [2, 3, 4]


def test_fine_tune_tells_on_its_time_limit_whether_the_time_ran_out(monkeypatch, dls):
    from pipekit.learn import Callback

    clock = _limit_clock(monkeypatch)

    class Stall(Callback):  # each training batch takes 1 s of the limit's clock: longer than each fit's share
        def after_batch(self):
            if self.learn.training:
                clock[0] += 1.0

    cut = TimeLimit(0.5, quiet=True)
    learner(dls, cbs=Stall()).fine_tune(2, 1e-3, cbs=cut)
    # each of the two fits ran one batch and was cut off at its second
    assert (cut.planned_, cut.kept_, cut.stopped_on_time_, cut.cut_off_) == (3 * len(dls.train), 2, True, True)
    roomy = TimeLimit(600)
    learner(dls).fine_tune(1, 1e-3, cbs=roomy)
    assert (roomy.kept_, roomy.stopped_on_time_, roomy.cut_off_) == (roomy.planned_, False, False)
    # one the learner holds is shared the same way (each fit took the whole limit, and it told of the second alone),
    # and is the learner's again after
    held = TimeLimit(0.5, quiet=True)
    learn = learner(dls, cbs=[Stall(), held])
    learn.fine_tune(2, 1e-3)
    assert (held.planned_, held.kept_, held.stopped_on_time_, held.cut_off_) == (3 * len(dls.train), 2, True, True)
    assert sum(isinstance(c, TimeLimit) for c in learn.cbs) == 1 and held in learn.cbs


def test_plain_sgd_keeps_no_momentum_and_an_unloadable_export_is_refused(tmp_path):
    import functools

    from pipekit.core.errors import ExportError
    from pipekit.learn import MLP, SGD

    dls, nn = _tiny()
    learn = Learner(dls, MLP(4, 2, layers=[8]), opt_func=SGD, loss_func=torch.nn.functional.cross_entropy)
    learn.fit_one_cycle(1, 1e-2)
    assert set(learn.recorder.group_moms[-1]) == {0.0} and learn.optimizer.moms == [0.0]
    with_mom = Learner(dls, MLP(4, 2, layers=[8]), opt_func=functools.partial(SGD, mom=0.9),
                       loss_func=torch.nn.functional.cross_entropy)
    with_mom.fit_one_cycle(1, 1e-2)
    assert max(m[0] for m in with_mom.recorder.group_moms) == pytest.approx(0.95)
    with pytest.raises(ExportError, match=r"the loss 'cross_entropy' is a plain function.*CrossEntropyLossFlat"):
        learn.export(tmp_path / "ch4.pipekit")


def test_a_classifier_with_another_number_of_outputs_than_classes_is_named(dls):
    few = Learner(dls, simple_cnn(1, 3, (8, 16)))
    with pytest.raises(ParameterError, match=r"the model gives 3 scores per item but the data has 10 classes "
                                             r"\['T-shirt/top', .*n_out=10"):
        few.fit(1, 1e-3)
    many = Learner(dls, simple_cnn(1, 12, (8, 16)))
    image = dls.valid.dataset.stores[0].gather(np.arange(1))[0].numpy()
    with pytest.raises(ParameterError, match=r"gives 12 scores per item but the data has 10 classes"):
        many.predict(image)


def test_callbacks_of_one_name_all_run_and_the_learners_own_outlive_a_fit(tmp_path):
    from pipekit.learn import MLP, CrossEntropyLossFlat, CSVLogger, ParamScheduler, sched_lin

    dls, nn = _tiny()
    pipekit.set_seed(0)
    learn = Learner(dls, MLP(4, 2, layers=[8]), loss_func=CrossEntropyLossFlat(), metrics=accuracy, path=tmp_path,
                    cbs=CSVLogger("own.csv"))
    own = learn.csv_logger
    best, every = SaveModelCallback(fname="best"), SaveModelCallback(every_epoch=True, fname="ep")
    learn.fit(2, 1e-2, cbs=[best, every, CSVLogger("fit.csv")])
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["best.pipekit", "ep_0.pipekit", "ep_1.pipekit"]
    assert [len((tmp_path / f).read_text().splitlines()) for f in ("own.csv", "fit.csv")] == [3, 3]
    # the fit's callbacks are gone, the learner's own is back under its name
    assert [c for c in learn.cbs if isinstance(c, (SaveModelCallback, CSVLogger))] == [own] and learn.csv_logger is own
    # two trackers on different values both act; the name is the latest, then the previous one again
    on_loss = EarlyStoppingCallback(monitor="valid_loss", min_delta=100.0, patience=1)
    on_acc = EarlyStoppingCallback(monitor="accuracy", patience=5)
    learn2 = Learner(dls, MLP(4, 2, layers=[8]), loss_func=CrossEntropyLossFlat(), metrics=accuracy,
                     cbs=[on_loss, on_acc])
    assert learn2.early_stopping is on_acc
    learn2.fit(5, 1e-2)
    assert len(learn2.recorder.values) == 2 and on_loss.stopped_epoch_ == 1 and on_acc.best_ is not None
    # each keeps its own state in a checkpoint
    learn2.path = tmp_path
    learn2.save("two")
    learn2.load("two")
    assert learn2.resume_cb_states["early_stopping"]["wait_"] == 1
    assert learn2.resume_cb_states["early_stopping#2"]["best_"] == pytest.approx(on_acc.best_)
    learn2.remove_cb(on_acc)
    assert learn2.early_stopping is on_loss
    # a schedule of wd given to fit_one_cycle runs beside the one-cycle schedule of lr and mom
    learn3 = Learner(dls, MLP(4, 2, layers=[8]), loss_func=CrossEntropyLossFlat())
    learn3.fit_one_cycle(2, 1e-2, cbs=ParamScheduler({"wd": sched_lin(0.1, 0.0)}))
    lrs, moms = [g[0] for g in learn3.recorder.group_lrs], [g[0] for g in learn3.recorder.group_moms]
    assert lrs[0] == pytest.approx(1e-2 / 25) and max(lrs) > 9e-3 and lrs[-1] < 1e-3 and moms[0] == pytest.approx(0.95)
    assert learn3.opt.param_groups[0]["weight_decay"] < 0.01  # the end of sched_lin(0.1, 0.0)
    # one per learner: a NaN guard given to a fit replaces the learner's for that fit, which then comes back
    from pipekit.learn import TerminateOnNaNCallback

    guards = lambda: [c for c in learn3.cbs if isinstance(c, TerminateOnNaNCallback)]  # noqa: E731
    own_guard, mine = guards(), TerminateOnNaNCallback(check_every=4)
    assert len(own_guard) == 1
    with learn3.added_cbs(mine):
        assert guards() == [mine]
    assert guards() == own_guard


def test_a_callback_named_like_a_learner_attribute_is_refused():
    from pipekit.core.registry import registered
    from pipekit.learn import MLP, Callback, CrossEntropyLossFlat

    dls, nn = _tiny()

    class Summary(Callback):
        pass

    class Opt(Callback):
        pass

    class Named(Callback):
        name = "my_summary"

    make = functools.partial(Learner, dls, MLP(4, 2, layers=[8]), loss_func=CrossEntropyLossFlat())
    with pytest.raises(ParameterError, match=r"Summary would be reached as learn.summary, which is the Learner's "
                                             r"method 'summary'; rename the callback class, or give it a name"):
        make(cbs=Summary())
    learn = make()
    with pytest.raises(ParameterError, match=r"learn.opt, which is the Learner's attribute 'opt'"):
        learn.fit(1, 1e-2, cbs=Opt())
    assert learn.summary(show=False).count("Linear") >= 2 and len(learn.recorder.values) == 0  # nothing was replaced
    learn.add_cb(Named())
    learn.fit(1, 1e-2)
    assert isinstance(learn.my_summary, Named) and len(learn.recorder.values) == 1
    # no callback pipekit defines takes a Learner attribute's name
    import pipekit.text  # noqa: F401 - its callbacks are registered on import

    names = {cls.__new__(cls).name for cls in registered("callback").values()
             if isinstance(cls, type) and issubclass(cls, Callback)}
    assert {"recorder", "save_model", "model_resetter"} <= names
    assert not [n for n in names if hasattr(Learner, n) or not isinstance(learn.__dict__.get(n, Named()), Callback)]


def test_an_interrupted_fit_leaves_no_progress_bar_behind(dls):
    """Ctrl-C (or an error) mid-fit: later validations and predictions draw no bar of the dead fit."""
    from pipekit.learn import Callback

    class Interrupt(Callback):
        def after_batch(self):
            if self.learn.iter == 2:
                raise KeyboardInterrupt

    learn = learner(dls)
    assert learn.progress.show_bar  # the bar is on: the fit sets its wrapper over the loaders
    with pytest.raises(KeyboardInterrupt):
        learn.fit(2, 1e-3, cbs=[Interrupt()])
    assert learn.batch_wrapper is None  # was the dead fit's 'epoch 1/2' bar, drawn by every later pass
    assert len(learn.validate()) == 2
    learn.fit(1, 1e-3)  # and a fit after it has its bar again, taken away at its end
    assert learn.batch_wrapper is None and len(learn.recorder.values) == 1


@pytest.fixture(scope="module")
def adult_dls(tmp_path_factory):
    import pandas as pd

    from pipekit.tabular import TabularDataLoaders

    df = pd.read_csv(D.path("adult_sample") / "adult.csv").iloc[:1500]
    return TabularDataLoaders.from_df(df, y_names="salary", cat_names=["workclass", "education", "marital-status"],
                                      cont_names=["age", "hours-per-week"], valid_idx=list(range(1200, 1500)), bs=128,
                                      seed=0, path=tmp_path_factory.mktemp("adult"))


def _adult_learner(adult_dls, nan_epochs):
    """A tabular learner on adult whose metric 'loss_or_nan' is the validation loss, NaN in ``nan_epochs`` (as a
    metric undefined on a validation set is), and a snapshot of the weights after each epoch."""
    import copy

    import torch.nn.functional as F

    from pipekit.learn import Callback
    from pipekit.tabular import tabular_learner

    epoch = {"now": 0}

    class Track(Callback):
        order = 99

        def before_epoch(self):
            epoch["now"] = self.learn.epoch

        def after_epoch(self):
            snaps.append(copy.deepcopy(self.learn.model.state_dict()))

    def loss_or_nan(pred, targ):
        v = F.cross_entropy(pred, targ)
        return v * float("nan") if epoch["now"] in nan_epochs else v

    snaps: list = []
    pipekit.set_seed(0)
    learn = tabular_learner(adult_dls, layers=[16], metrics=FuncMetric(loss_or_nan, greater_is_better=False),
                            cbs=Track())
    return learn, snaps


def _finite_values(learn, name):
    col = learn.recorder.metric_names.index(name)
    return [r[col] for r in learn.recorder.history if np.isfinite(r[col])]


@pytest.mark.parametrize("tracker", ["save", "early", "plateau"])
def test_a_value_that_is_not_finite_never_becomes_the_best(adult_dls, tracker):
    from pipekit.core.errors import PipekitWarning
    from pipekit.learn import ReduceLROnPlateau

    learn, snaps = _adult_learner(adult_dls, nan_epochs={0})
    cb = {"save": SaveModelCallback(monitor="loss_or_nan", fname="best"),
          "early": EarlyStoppingCallback(monitor="loss_or_nan", patience=2),
          "plateau": ReduceLROnPlateau(monitor="loss_or_nan", patience=2)}[tracker]
    with pytest.warns(PipekitWarning, match=r"loss_or_nan=nan at epoch 0 is not a finite number") as told:
        learn.fit(4, 1e-2, cbs=cb)
    assert len(told) == 1  # once, for the one epoch
    finite = _finite_values(learn, "loss_or_nan")
    assert len(finite) == len(learn.recorder.history) - 1 == 3  # the later epochs were judged (no early stop on NaN)
    assert cb.best_ == pytest.approx(min(finite))
    if tracker == "save":  # the best finite epoch's weights are back in the model, not epoch 0's
        assert cb.best_epoch_ == 1 + finite.index(min(finite))
        final = learn.model.state_dict()
        assert all(torch.equal(snaps[cb.best_epoch_][k], final[k]) for k in final)
        assert not all(torch.equal(snaps[0][k], final[k]) for k in final)


def test_save_model_with_no_finite_value_keeps_the_last_weights_and_says_so(adult_dls):
    from pipekit.core.errors import PipekitWarning

    learn, snaps = _adult_learner(adult_dls, nan_epochs={0, 1, 2})
    cb = SaveModelCallback(monitor="loss_or_nan", fname="never")
    with pytest.warns(PipekitWarning) as told:
        learn.fit(3, 1e-2, cbs=cb)
    said = [str(w.message) for w in told]
    assert [s for s in said if "is not a finite number" in s and "at epoch" in s] and said[-1].startswith(
        "SaveModelCallback: the monitored value loss_or_nan was not a finite number in any epoch of this fit "
        "(epoch(s) 0, 1, 2), so no best model was saved and none is loaded back: the model keeps the weights of its "
        "last epoch")
    assert cb.best_ is None and cb.best_epoch_ is None and cb.saved_ == ()
    final = learn.model.state_dict()
    assert all(torch.equal(snaps[-1][k], final[k]) for k in final)
    assert not all(torch.equal(snaps[0][k], final[k]) for k in final)


def test_a_recorder_given_to_one_fit_is_learn_recorder_after_it(dls):
    """``learn.fit(1, cbs=Recorder(train_metrics=True))``: the record read from ``learn.recorder`` afterwards is that
    fit's (with its training metrics), not the previous fit's, and agrees with ``final_record``; a Recorder given to
    validate scores that pass (it raised "no targets") and the fit's record stays."""
    from pipekit.learn import Recorder

    learn = learner(dls)
    learn.fit(1, 1e-3)
    first = learn.recorder
    given = Recorder(train_metrics=True)
    learn.fit(1, 1e-3, cbs=given)
    assert learn.recorder is given and first not in learn.cbs
    assert sum(isinstance(c, Recorder) for c in learn.cbs) == 1
    assert learn.recorder.metric_names == ["epoch", "train_loss", "train_accuracy", "valid_loss", "valid_accuracy",
                                           "time"]
    assert learn.recorder.values[-1] == pytest.approx(list(learn.final_record))
    learn.fine_tune(1, 1e-3, freeze_epochs=1, cbs=given)  # one Recorder over both fits
    assert learn.recorder is given and len(given.values) == 1
    assert learn.validate(cbs=Recorder()) == pytest.approx(learn.validate())  # the given one's row, same numbers
    assert learn.recorder is given


def test_one_recorder_given_to_fits_of_two_learners_stays_with_the_first(dls):
    """A Recorder kept by one learner after a fit and then given to another learner's fit records that fit (with a
    warning that it is the first learner's), is not kept by the second, and goes back to the first, whose next fit
    records as before; a validation pass a callback cancels returns no scores rather than failing."""
    from pipekit.core.errors import PipekitWarning
    from pipekit.learn import CancelFitException, Callback, Recorder

    rec = Recorder(train_metrics=True)
    l1, l2 = learner(dls), learner(dls)
    l1.fit(1, 1e-3, cbs=rec)
    own2 = l2.recorder
    with pytest.warns(PipekitWarning, match="of another Learner"):
        l2.fit(1, 1e-3, cbs=rec)
    assert l1.recorder is rec and l2.recorder is own2 and rec not in l2.cbs and rec.learn is l1
    assert rec.values[-1] == pytest.approx(list(l2.final_record))
    l1.fit(1, 1e-3)
    assert len(rec.values) == 1 and rec.values[-1] == pytest.approx(list(l1.final_record))

    class Skip(Callback):
        def before_fit(self):
            raise CancelFitException

    assert l1.validate(cbs=Skip()) == [None, None]


def test_a_checkpoint_whose_optimiser_groups_the_parameters_otherwise_loads_its_weights(dls, tmp_path):
    """A checkpoint saved by a learner whose splitter cut the same model into groups of other sizes (an older
    pipekit's layer groups of an architecture) loads its weights, with a warning that the optimiser starts afresh,
    as fastai's load does, where it was refused; a checkpoint of the same grouping keeps its optimiser state."""
    def three(m):
        ps = list(m.parameters())
        return [ps[:2], ps[2:-2], ps[-2:]]

    def three_other(m):
        ps = list(m.parameters())
        return [ps[:4], ps[4:-2], ps[-2:]]

    def made(splitter):
        pipekit.set_seed(0)
        return Learner(dls, simple_cnn(1, 10, (8, 16)), splitter=splitter, metrics=accuracy, path=tmp_path)

    saver = made(three)
    saver.fit(1, 1e-3)
    saver.save("ck")
    loader = made(three_other)
    with pytest.warns(RuntimeWarning, match="groups the model's parameters otherwise"):
        loader.load("ck")
    for a, b in zip(saver.model.state_dict().values(), loader.model.state_dict().values()):
        assert torch.equal(a, b)
    loader.fit(1, 1e-3)  # and trains on
    same = made(three)
    same.load("ck")
    assert same.opt.opt.state_dict()["state"].keys() == saver.opt.opt.state_dict()["state"].keys() != set()
