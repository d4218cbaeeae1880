"""A fit resumed from a checkpoint (learn.save / learn.load, fit(..., start_epoch=)) is the uninterrupted
fit: same weights bit for bit and same recorded losses for every resumed epoch, on the CPU.

The resumed learner is built as a fresh process would build it: other global seeds, loaders whose seed
is drawn at random. Real data: adult_sample (tabular net with dropout and MixUp) and mnist_tiny
(augmentation and dropout)."""
from __future__ import annotations

import warnings

import numpy as np
import polars as pl
import pytest
import torch
from torch import nn

import pipekit
import pipekit.datasets as D
from pipekit.data import CategoryBlock, DataBlock, GrandparentSplitter, get_image_files, parent_label
from pipekit.data.seed import set_seed
from pipekit.data.splitters import RandomSplitter
from pipekit.learn import (Callback, CancelFitException, EarlyStoppingCallback, Learner, MixUp,
                           SaveModelCallback, accuracy, simple_cnn)
from pipekit.tabular import Tabular, tabular_learner
from pipekit.vision import ImageBlock, aug_transforms

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CAT = ["workclass", "education", "marital-status", "occupation", "relationship", "race"]
CONT = ["age", "fnlwgt", "education-num"]
N, K = 4, 2  # epochs in all; epochs done before the interruption


@pytest.fixture(scope="module")
def tab() -> Tabular:
    df = pl.read_csv(path_adult()).head(3000)
    return Tabular(df, cat_names=CAT, cont_names=CONT, y_names="salary", splits=RandomSplitter(0.2, seed=42))


def path_adult():
    return D.path("adult_sample") / "adult.csv"


def _tab_learner(tab, tmp_path, cbs=()):
    # dataloaders(seed=None): the shuffling seed is drawn from NumPy's global generator
    return tabular_learner(tab.dataloaders(bs=128), layers=[50, 20], config={"ps": 0.3, "embed_p": 0.1},
                           metrics=accuracy, path=tmp_path, cbs=[MixUp(0.4), *cbs])


def _fit(learn, one_cycle, **kw):
    if one_cycle:
        learn.fit_one_cycle(N, 1e-2, **kw)
    else:
        learn.fit(N, 1e-2, **kw)


def _assert_same_run(full, resumed):
    for (k, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), k
    for o, r in zip(full.opt.opt.state.values(), resumed.opt.opt.state.values()):
        assert all(torch.equal(o[k], r[k]) for k in o)
    rows = [row[:-1] for row in full.recorder.history[K:]]  # all but the time column
    assert [row[:-1] for row in resumed.recorder.history] == rows and [r[0] for r in rows] == list(range(K, N))
    n = len(resumed.recorder.losses)
    assert n == len(full.recorder.losses) * (N - K) // N
    assert resumed.recorder.losses == full.recorder.losses[-n:]  # smoothed losses continue too
    assert resumed.recorder.lrs == full.recorder.lrs[-n:]


@pytest.mark.parametrize("one_cycle", [False, True], ids=["fit", "fit_one_cycle"])
def test_resumed_tabular_fit_equals_uninterrupted(tab, tmp_path, one_cycle):
    set_seed(0)
    full = _tab_learner(tab, tmp_path, [SaveModelCallback(every_epoch=True, with_opt=True, fname="ck")])
    _fit(full, one_cycle)
    set_seed(1234)  # a new process: other global random states, another loader seed
    resumed = _tab_learner(tab, tmp_path)
    resumed.load(f"ck_{K - 1}")
    assert resumed.resume_epoch == K
    _fit(resumed, one_cycle, start_epoch=resumed.resume_epoch)
    _assert_same_run(full, resumed)


def test_resumed_fit_keeps_tracker_state(tab, tmp_path):
    """Early stopping counts patience, and the best-model checkpoint keeps its best value, across the break."""
    def trackers():
        return [SaveModelCallback(monitor="accuracy", fname="best"),
                EarlyStoppingCallback(monitor="valid_loss", patience=N)]

    class Interrupt(Callback):
        order = 90  # after every tracker has seen the epoch

        def __init__(self, stop):
            self.stop = stop

        def after_epoch(self):
            if self.learn.epoch == K - 1:
                self.learn.save("ck")
                if self.stop:
                    raise CancelFitException()

    set_seed(0)
    full = _tab_learner(tab, tmp_path)
    cbs = trackers()
    full.fit(N, 1e-2, cbs=[*cbs, Interrupt(stop=False)])
    set_seed(0)
    part = _tab_learner(tab, tmp_path / "part")
    part.fit(N, 1e-2, cbs=[*trackers(), Interrupt(stop=True)])
    set_seed(1234)
    resumed = _tab_learner(tab, tmp_path / "part")
    resumed.load("ck")
    cbs2 = trackers()
    resumed.fit(N, 1e-2, cbs=cbs2, start_epoch=resumed.resume_epoch)
    assert cbs2[0].best_ == cbs[0].best_ and cbs2[1].best_ == cbs[1].best_ and cbs2[1].wait_ == cbs[1].wait_
    assert cbs2[0].best_epoch_ == cbs[0].best_epoch_
    _assert_same_run(full, resumed)  # both reloaded the same best model at the end


def _mnist_learner(tmp_path):
    dblock = DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock), get_items=get_image_files, get_y=parent_label,
                       splitter=GrandparentSplitter(), batch_tfms=aug_transforms(max_rotate=20.0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dls = dblock.dataloaders(D.path("mnist_tiny"), bs=64, device="cpu")
    model = simple_cnn(1, 2, (8, 16))
    model[1].insert(1, nn.Dropout(0.3))
    return Learner(dls, model, metrics=accuracy, path=tmp_path)


def test_resumed_image_fit_with_augmentation_and_dropout_equals_uninterrupted(tmp_path):
    set_seed(0)
    full = _mnist_learner(tmp_path)
    full.fit_one_cycle(N, 5e-3, cbs=[SaveModelCallback(every_epoch=True, with_opt=True, fname="ck")])
    full_seed = full.dls.train.seed  # the seed its run read by (a set_seed after it restarts its loaders)
    set_seed(99)
    resumed = _mnist_learner(tmp_path)
    assert resumed.dls.train.seed != full_seed
    resumed.load(f"ck_{K - 1}")
    assert resumed.dls.train.seed == full_seed and resumed.dls.train.epoch == K
    resumed.fit_one_cycle(N, 5e-3, start_epoch=resumed.resume_epoch)
    _assert_same_run(full, resumed)
    assert np.isfinite(resumed.recorder.values[-1][1])


def test_checkpoint_without_optimizer_state_warns_on_resume(tab, tmp_path):
    set_seed(0)
    learn = _tab_learner(tab, tmp_path)
    learn.fit(1, 1e-2)
    learn.save("noopt", with_opt=False)
    with pytest.warns(RuntimeWarning, match="no optimiser state"):
        _tab_learner(tab, tmp_path).load("noopt")


def test_resume_from_the_best_model_checkpoint(tmp_path):
    """The checkpoint SaveModelCallback writes for the best epoch resumes too, and the resumed fit ends by
    reloading that best model, as the uninterrupted one does."""
    df = pl.read_csv(path_adult()).head(4000)
    tab4 = Tabular(df, cat_names=CAT, cont_names=["age", "fnlwgt", "hours-per-week"], y_names="salary",
                   splits=RandomSplitter(0.2, seed=42))

    def learner():
        return tabular_learner(tab4.dataloaders(bs=128), layers=[50, 20], metrics=accuracy, path=tmp_path)

    n = 5  # accuracy peaks before the last epoch here, so the resumed fit has epochs left after the best
    set_seed(0)
    full = learner()
    best = SaveModelCallback(monitor="accuracy", fname="best", with_opt=True)
    full.fit(n, 3e-2, cbs=[best])
    accs = [row[2] for row in full.recorder.values]
    assert best.best_epoch_ < n - 1 and accs[best.best_epoch_] == max(accs)
    set_seed(1234)
    resumed = learner()
    resumed.load("best")
    assert resumed.resume_epoch == best.best_epoch_ + 1
    best2 = SaveModelCallback(monitor="accuracy", fname="best", with_opt=True)
    resumed.fit(n, 3e-2, cbs=[best2], start_epoch=resumed.resume_epoch)
    assert [row[:-1] for row in resumed.recorder.history] == [row[:-1] for row in full.recorder.history[best.best_epoch_ + 1:]]
    assert best2.best_ == best.best_ and best2.best_epoch_ == best.best_epoch_
    for (k, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), k
    assert resumed.validate()[1] == max(accs)


def test_checkpoint_states_are_read_as_data(tab, tmp_path):
    """A checkpoint is a pipekit file: only the loader counters pipekit writes are read back, callbacks get
    back only learned (``*_``) attributes, and a malformed random state is a clear error."""
    from pipekit.core.archive import read_pipekit, write_archive
    from pipekit.learn import ExportError

    set_seed(0)
    learn = _tab_learner(tab, tmp_path)
    learn.fit(1, 1e-2)
    ck = learn.save("ck")
    assert ck.suffix == ".pipekit" and read_pipekit(ck).kind == "checkpoint"
    with pytest.raises(ExportError, match=r"is a training checkpoint .*learn.load\(path\)"):
        pipekit.load(ck)
    archive = read_pipekit(ck)
    state, weights = archive.record, archive.tensors()
    assert any(k.startswith("opt.") for k in weights) and any(k.startswith("model.") for k in weights)

    def write(name):
        return write_archive(tmp_path / name, "checkpoint", state, archive.arrays, weights=weights)

    state["loaders"][0] = {"seed": 7, "epoch": 3, "bs": 1, "device": 0}
    other = _tab_learner(tab, tmp_path)
    bs = other.dls.train.bs
    other.load(write("edited.pipekit"))
    assert (other.dls.train.seed, other.dls.train.epoch, other.dls.train.bs) == (7, 3, bs)
    # callback states are checked at load, before anything is set: an entry that is no learned attribute, and a
    # Recorder's running average that is not a number (each failed only once the resumed fit began, after the
    # weights and the optimiser had been replaced)
    before = {k: v.clone() for k, v in other.model.state_dict().items()}
    for items, said in (([["metrics", []]], r"'callbacks.recorder' holds \['metrics'\], which are not learned "
                                             r"attributes"),
                        ([["ema_", "abc"], ["n_smoothed_", 3]], r"'callbacks.recorder' cannot be taken by its "
                                                                r"Recorder \(field 'state.ema_' must be a number")):
        state["callbacks"] = {"__items__": [["recorder", {"__items__": items}]]}
        with pytest.raises(ExportError, match=said):
            other.load(write("cb.pipekit"))
        assert all(torch.equal(v, before[k]) for k, v in other.model.state_dict().items())
    state.pop("callbacks")
    state["rng"]["numpy"]["kind"] = "not-a-generator"
    with pytest.raises(ExportError, match="random states in .*bad.pipekit are malformed"):
        other.load(write("bad.pipekit"))
    write_archive(tmp_path / "export_like.pipekit", "learner", state, archive.arrays, weights=weights)
    with pytest.raises(ExportError, match="holds a learner, not a checkpoint"):
        other.load(tmp_path / "export_like.pipekit")


# ----------------------------------------------- the optimiser state of step-function Optimizers and Lookahead
def _opt_items(record, j):
    """The stored [name, value] pairs of parameter ``j``'s state in a checkpoint record's optimiser state."""
    opt = dict(record["opt"]["__items__"])["opt"]
    return dict(dict(opt["__items__"])["state"]["__items__"])[j]["__items__"]


def _small_learner(tab, tmp_path, opt_func):
    return tabular_learner(tab.dataloaders(bs=256, seed=0), layers=[8], path=tmp_path, opt_func=opt_func)


def _without(items, name):
    items[:] = [kv for kv in items if kv[0] != name]


TAMPERED_OPT = {
    # a moving average of another shape: a step would fail (or broadcast) only at the next fit
    "grad_avg shape": (lambda rec, t: t.update({"opt.opt.state.0.grad_avg": torch.zeros(3)}),
                       r"'opt.opt.state\[0\].grad_avg' has shape \(3,\), but parameter '[\w.]+' has shape"),
    "grad_avg integer": (lambda rec, t: t.update({"opt.opt.state.0.grad_avg": t["opt.opt.state.0.grad_avg"].long()}),
                         r"'opt.opt.state\[0\].grad_avg' holds torch.int64 values; optimiser state is real numbers"),
    "missing grad_avg": (lambda rec, t: _without(_opt_items(rec, 0), "grad_avg"),
                         r"'opt.opt.state\[0\]' \(parameter '[\w.]+'\) lacks \['grad_avg'\], which Optimizer reads"),
    # null in the record: named with the parameter whose moving average it is, and the shape that one must have
    "a null grad_avg": (lambda rec, t: [kv.__setitem__(1, None) for kv in _opt_items(rec, 0) if kv[0] == "grad_avg"],
                        r"'opt.opt.state\[0\].grad_avg' \(parameter 'embeds.weight'\) must be a tensor of the "
                        r"parameter's shape \(\d+,\), got 'None'"),
    "a step count as text": (lambda rec, t: _opt_items(rec, 0).append(["step", "1"]) or _without_first(rec, "step"),
                             r"'opt.opt.state\[0\].step' must be a count \(an integer >= 0\), got '1'"),
    "an extra name": (lambda rec, t: _opt_items(rec, 0).append(["lr", 100.0]),
                      r"'opt.opt.state\[0\]' \(parameter '[\w.]+'\) holds \['lr'\], which Optimizer's step functions "
                      r"do not keep"),
    "slow weights shape": (lambda rec, t: t.update({"opt.opt.state.0.lookahead_slow": torch.zeros(3)}),
                           r"'opt.opt.state\[0\].lookahead_slow' \(parameter '[\w.]+', shape \([\d, ]+\)\) must be the "
                           r"slow weights, a floating-point tensor of the parameter's shape, got torch.float32 of "
                           r"shape \(3,\)"),
    "missing slow weights": (lambda rec, t: _without(_opt_items(rec, 0), "lookahead_slow"),
                             r"'opt.opt.state\[0\].lookahead_slow' .* must be the slow weights"),
    "a moving average of NaN": (lambda rec, t: t.update({"opt.opt.state.0.grad_avg": torch.full_like(
        t["opt.opt.state.0.grad_avg"], float("nan"))}),
                                r"'opt.opt.state\[0\].grad_avg' \(parameter '[\w.]+'\) holds numbers that are not "
                                r"finite"),
    "a mean of squares below zero": (lambda rec, t: t.update({"opt.opt.state.0.sqr_avg": -torch.ones_like(
        t["opt.opt.state.0.sqr_avg"])}),
                                     r"'opt.opt.state\[0\].sqr_avg' \(parameter '[\w.]+'\) holds a number below zero"),
    "a negative Lookahead count": (lambda rec, t: [kv.__setitem__(1, -1) for kv in _opt_items(rec, 0)
                                                   if kv[0] == "lookahead_step"],
                                   r"'opt.opt.state\[0\].lookahead_step' .* must be the step count"),
}


def _without_first(rec, name):
    items = _opt_items(rec, 0)
    first = next(i for i, kv in enumerate(items) if kv[0] == name)
    del items[first]


@pytest.fixture(scope="module")
def ranger_ckpt(tab, tmp_path_factory):
    """A checkpoint of a tabular learner trained for an epoch with ranger (Lookahead around the step-function
    RAdam): (folder, record, arrays, tensors)."""
    from pipekit.core.archive import read_pipekit
    from pipekit.learn.optim import ranger

    folder = tmp_path_factory.mktemp("ranger")
    set_seed(0)
    learn = _small_learner(tab, folder, ranger)
    learn.fit(1, 1e-2)
    archive = read_pipekit(learn.save("ck"))
    return folder, archive.record, archive.arrays, archive.tensors()


def test_a_ranger_checkpoint_loads_its_optimiser_state(tab, ranger_ckpt):
    from pipekit.learn.optim import Lookahead, ranger

    folder = ranger_ckpt[0]
    learn = _small_learner(tab, folder, ranger)
    learn.load("ck")
    assert isinstance(learn.opt.opt, Lookahead)
    saved = dict(_opt_items(ranger_ckpt[1], 0))
    state = learn.opt.state_dict()["opt"]["state"][0]
    assert set(state) == set(saved) and state["lookahead_step"] == saved["lookahead_step"] > 0
    assert torch.equal(state["grad_avg"], ranger_ckpt[3]["opt.opt.state.0.grad_avg"])


@pytest.mark.parametrize("case", list(TAMPERED_OPT))
def test_a_tampered_optimiser_state_is_refused_before_anything_is_loaded(tab, ranger_ckpt, case):
    """Every field of a step-function Optimizer's and Lookahead's state is checked before the model's weights
    are set: a refused checkpoint leaves the learner as it was."""
    import copy

    from pipekit.core.archive import write_archive
    from pipekit.core.errors import ExportError
    from pipekit.learn.optim import ranger

    folder, record, arrays, tensors = ranger_ckpt
    record, tensors = copy.deepcopy(record), dict(tensors)
    edit, message = TAMPERED_OPT[case]
    edit(record, tensors)
    path = write_archive(folder / "tampered.pipekit", "checkpoint", record, arrays, weights=tensors)
    set_seed(1)
    learn = _small_learner(tab, folder, ranger)
    before = {k: v.clone() for k, v in learn.model.state_dict().items()}
    assert not all(torch.equal(before[k[6:]], v) for k, v in tensors.items() if k.startswith("model."))
    with pytest.raises(ExportError, match=message):
        learn.load(path)
    after = learn.model.state_dict()
    assert set(after) == set(before) and all(torch.equal(before[k], after[k]) for k in before)
