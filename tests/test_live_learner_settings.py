"""A live learner's settings and parts changed after it is built: ``learn.lr``, ``learn.wd`` and ``learn.moms``
checked when assigned, as ``Learner(...)`` checks them (a value an export could not load back is refused); a new
``learn.model`` or ``learn.opt_func`` gets an optimiser of its own at the next fit, while the optimiser's state is
kept otherwise (and after ``learn.load(with_opt=True)``); a metric of one target refused on data of several before any
batch; and ``predict`` refusing, as ``show_results`` does, outputs that are not the targets' side by side."""
from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import pipekit
import pipekit.datasets as D
from pipekit.core.errors import ParameterError
from pipekit.data import CategoryBlock, DataBlock, GrandparentSplitter, get_image_files, parent_label
from pipekit.learn import SGD, Learner, accuracy, error_rate, load_learner
from pipekit.vision import ImageBlock, Resize, vision_learner

pytestmark = pytest.mark.data


def linear():
    return nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 2))


@pytest.fixture
def learn(mnist_dls, tmp_path):
    pipekit.set_seed(0)
    return Learner(mnist_dls, linear(), metrics=accuracy, path=tmp_path)


# ------------------------------------------------------------------ settings checked when assigned
@pytest.mark.parametrize("name,value", [("lr", 0.0), ("lr", -1e-3), ("lr", float("nan")), ("lr", None),
                                        ("wd", -0.1), ("wd", float("nan")), ("moms", (0.95, 0.85, 1.5)),
                                        ("moms", (0.9, 0.8)), ("moms", None)])
def test_a_setting_a_file_cannot_hold_is_refused_when_assigned(learn, name, value):
    before = getattr(learn, name)
    with pytest.raises(ParameterError, match=rf"^Learner: learn\.{name}=.* is not accepted; expected "):
        setattr(learn, name, value)
    assert getattr(learn, name) == before  # left as it was


def test_the_messages_are_those_of_the_learners_arguments(mnist_dls, learn):
    for name, value in (("lr", 0.0), ("wd", -0.1), ("moms", (0.9, 0.8, 2.0))):
        with pytest.raises(ParameterError) as given:
            Learner(mnist_dls, linear(), **{name: value})
        with pytest.raises(ParameterError) as assigned:
            setattr(learn, name, value)
        assert str(assigned.value).replace(f"learn.{name}=", f"{name}=") == str(given.value)


def test_valid_assignments_train_export_and_load_back(mnist_dls, tmp_path):
    pipekit.set_seed(0)
    learn = vision_learner(mnist_dls, "simple_cnn", pretrained=False, path=tmp_path)  # a model a file rebuilds
    learn.lr, learn.wd, learn.moms = np.float32(2e-3), 0.0, [0.9, 0.8, 0.9]
    assert learn.moms == (0.9, 0.8, 0.9)
    learn.wd = None  # the optimiser's own weight decay
    learn.lr = slice(1e-4, 1e-2)
    learn.lr = 1e-2
    learn.wd = 0.01
    learn.fit(1)
    learn.fit_one_cycle(1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every setting is one a file holds: nothing is left out
        loaded = load_learner(learn.export(tmp_path / "live.pipekit"))
    assert (loaded.lr, loaded.wd, loaded.moms) == (1e-2, 0.01, (0.9, 0.8, 0.9))


def test_lr_find_leaves_the_settings_as_they_were(learn):
    learn.lr, learn.wd = 3e-3, 0.02
    learn.lr_find(num_it=20, show_plot=False)
    assert (learn.lr, learn.wd) == (3e-3, 0.02)


# ------------------------------------------------------------------ a new model or optimiser function
def first_state(opt):
    """A copy of the optimiser's state of its first parameter (its tensors: a step count, running averages)."""
    return {k: v.clone() for k, v in opt.state_dict()["opt"]["state"][0].items() if isinstance(v, torch.Tensor)}


def test_a_new_model_is_trained_by_the_next_fit(learn):
    learn.fit(1, 1e-2)
    new = linear()
    nn.init.zeros_(new[1].weight)  # outputs all 0: one class for every item until it trains
    nn.init.zeros_(new[1].bias)
    learn.model = new
    chance = learn.validate()[1]  # one class for every item: that class's share of the validation set
    learn.fit(2, 1e-2)
    assert learn.model is new and bool(new[1].weight.abs().sum() > 0)
    assert learn.opt.layer_groups[0][0] is new[1].weight
    assert learn.recorder.values[-1][2] > max(0.9, chance + 0.1)


def test_a_new_opt_func_builds_its_optimiser_and_the_state_is_kept_otherwise(learn):
    learn.fit(1, 1e-2)
    opt = learn.opt
    state = first_state(opt)
    assert state
    learn.fit(1, 1e-2)  # nothing changed: the same optimiser, its state carried on
    assert learn.opt is opt
    assert any(not torch.equal(v, first_state(opt)[k]) for k, v in state.items())
    learn.opt_func = SGD
    learn.fit(1, 1e-2)
    assert learn.opt is not opt and "sgd_step" in repr(learn.opt)  # pipekit's SGD, built for this fit


def test_load_with_opt_resumes_the_saved_state(learn, mnist_dls, tmp_path):
    learn.fit(1, 1e-2)
    learn.save("stage1")
    saved = first_state(learn.opt)
    fresh = Learner(mnist_dls, linear(), metrics=accuracy, path=tmp_path)
    fresh.load("stage1", with_opt=True)
    opt = fresh.opt
    assert opt is not None and saved
    loaded = first_state(opt)
    assert all(torch.equal(loaded[k], v) for k, v in saved.items())
    fresh.fit(2, 1e-2, start_epoch=fresh.resume_epoch)
    assert fresh.opt is opt  # the loaded state trained on, not an optimiser built afresh
    # a model replaced before loading: the state is loaded into an optimiser of the new model
    other = Learner(mnist_dls, linear(), path=tmp_path)
    other.fit(1, 1e-2)
    other.model = linear()
    other.load("stage1", with_opt=True)
    assert other.opt.layer_groups[0][0] is other.model[1].weight
    other.fit(1, 1e-2)
    assert other.opt.layer_groups[0][0] is other.model[1].weight


# ------------------------------------------------------------------ data of two targets
def size(f):
    """A second label of each digit, from its file: 'big' over 300 bytes, else 'small'."""
    return "big" if f.stat().st_size > 300 else "small"


def every_fourth(path):
    return get_image_files(path)[::4]


@pytest.fixture(scope="module")
def two_dls():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the test/ folder is in neither subset
        return DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock, CategoryBlock), n_inp=1, get_items=every_fourth,
                         get_y=[parent_label, size], splitter=GrandparentSplitter(),
                         item_tfms=Resize(28)).dataloaders(D.path("mnist_tiny"), bs=32, seed=0)


def combine_loss(inp, digit, big):
    return F.cross_entropy(inp[:, :2], digit) + F.cross_entropy(inp[:, 2:4], big)


def digit_err(inp, digit, big):
    return error_rate(inp[:, :2], digit)


def test_a_metric_of_one_target_is_refused_on_two_before_any_batch(two_dls):
    msg = r"the metric accuracy scores one target, and the data has 2 targets .*fn\(pred, t1, t2\)"
    with pytest.raises(ParameterError, match=msg):
        Learner(two_dls, nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 4)), loss_func=combine_loss, metrics=accuracy)
    with pytest.raises(ParameterError, match=msg):  # the course's spelling
        vision_learner(two_dls, "simple_cnn", pretrained=False, n_out=4, loss_func=combine_loss, metrics=accuracy)
    learn = Learner(two_dls, nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 4)), loss_func=combine_loss)
    with pytest.raises(ParameterError, match=msg):
        learn.metrics = [digit_err, accuracy]
    assert learn.metrics == []


def test_functions_of_every_target_still_score(two_dls):
    pipekit.set_seed(0)

    def two_args(pred, targs):  # a function of two gets the targets as one tuple
        return error_rate(pred[:, 2:4], targs[1])

    learn = Learner(two_dls, nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 4)), loss_func=combine_loss,
                    metrics=[digit_err, two_args])
    learn.fit(1, 1e-2)
    assert learn.recorder.metric_names[3:5] == ["digit_err", "two_args"]
    assert all(0 <= v <= 1 for v in learn.recorder.values[-1][2:4])


def test_predict_refuses_outputs_that_are_not_the_targets_side_by_side(two_dls):
    def loss6(inp, digit, big):  # 6 outputs, the size's in 4:6
        return F.cross_entropy(inp[:, :2], digit) + F.cross_entropy(inp[:, 4:6], big)

    learn = Learner(two_dls, nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 6)), loss_func=loss6)
    item = get_image_files(D.path("mnist_tiny") / "valid")[0]
    with pytest.raises(ParameterError, match=r"predict cannot read this learner's predictions: the data has 2 "
                                             r"targets \(CategoryBlock, CategoryBlock\) of sizes \[2, 2\].*"
                                             r"n_out=sum\(dls\.c\).*learn\.get_preds\(dl=learn\.dls\.test_dl"):
        learn.predict(item)
    with pytest.raises(ParameterError, match=r"show_results cannot show .* n_out=sum\(dls\.c\)"):
        learn.show_results(max_n=2)
    # the targets' outputs side by side: each target's label, as before
    learn4 = Learner(two_dls, nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 4)), loss_func=combine_loss)
    labels, idxs, outputs = learn4.predict(item)
    assert labels[0] in ("3", "7") and labels[1] in ("big", "small") and tuple(outputs.shape) == (4,)


# ------------------------------------------------------------------ callbacks switched off come back in their places
def test_predicting_leaves_the_callbacks_in_their_order(mnist_dls, tmp_path):
    from pipekit.learn import Callback

    class Peek(Callback):
        order = 50  # the Recorder's: between the two, their place in learn.cbs decides which runs first

        def __init__(self):
            self.rows = []

        def after_epoch(self):
            if any(c is self.learn.recorder for c in self.learn.cbs):  # a fit's epoch, not a prediction's pass
                self.rows.append(len(self.learn.recorder.values))  # the rows of this fit the Recorder wrote by now

    pipekit.set_seed(0)
    peek = Peek()
    learn = Learner(mnist_dls, linear(), metrics=accuracy, cbs=peek, path=tmp_path)
    names = [type(c).__name__ for c in learn.cbs]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        learn.fit(1, 1e-2)
        learn.get_preds()
        learn.predict(mnist_dls.valid_ds.items[0] if hasattr(mnist_dls.valid_ds, "items") else
                      get_image_files(D.path("mnist_tiny") / "valid")[0])
        assert [type(c).__name__ for c in learn.cbs] == names
        learn.fit(1, 1e-2)
    assert peek.rows == [1, 1]  # each fit's epoch row is there when the callback after the Recorder looks


# ------------------------------------------------------------------ a model wrapped during a fit keeps its optimiser
class _Wrap(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x)


def test_a_callback_wrapping_the_model_during_a_fit_keeps_the_optimiser(mnist_dls, tmp_path):
    from pipekit.learn import Callback

    seen = []

    class WrapDuringFit(Callback):
        def before_fit(self):
            self.orig, self.learn.model = self.learn.model, _Wrap(self.learn.model)

        def after_fit(self):
            self.learn.model = self.orig

        def after_batch(self):
            if self.learn.training:
                seen.append((self.learn.optimizer, self.learn.opt.opt.param_groups[0]["lr"]))

    pipekit.set_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 8), nn.ReLU(), nn.Linear(8, 2))
    learn = Learner(mnist_dls, model, splitter=lambda m: [list(m[1].parameters()), list(m[3].parameters())],
                    path=tmp_path)
    learn.fit(1, 1e-3)
    opt = learn.opt
    learn.freeze()  # the splitter cuts learn.model as it was built: the wrapper cannot be cut so
    learn.fit(1, 0.5, cbs=WrapDuringFit())
    assert seen and all(o is opt for o, _ in seen) and all(lr == pytest.approx(0.5) for _, lr in seen)
    assert learn.model is model and learn.optimizer is opt  # the model back: the same optimiser still


def test_a_learner_pickled_with_its_settings_as_plain_attributes_trains_and_exports(mnist_dls, tmp_path):
    pipekit.set_seed(0)
    learn = vision_learner(mnist_dls, "simple_cnn", pretrained=False, path=tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        learn.fit(1, 1e-3)  # an optimiser in the pickle
    as_before = pickle.loads(pickle.dumps(learn))
    for name in ("lr", "wd", "moms"):  # the layout of a learner pickled before the settings were properties
        value = as_before.__dict__.pop(f"_{name}")
        as_before.__dict__[name] = list(value) if name == "moms" else value
    del as_before.__dict__["_opt_built_for"]  # nor did it say which model its optimiser was built for
    old = pickle.loads(pickle.dumps(as_before))
    assert (old.lr, old.wd, old.moms) == (learn.lr, learn.wd, learn.moms)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        old.fit(1, 1e-3)
        assert load_learner(old.export(tmp_path / "old.pipekit")).lr == learn.lr
        # a new model given to it gets an optimiser of its own, as a learner pickled now does
        new = vision_learner(mnist_dls, "simple_cnn", pretrained=False).model
        before = [p.detach().clone() for p in new.parameters()]
        old.model = new
        old.fit(1, 1e-3)
    assert any(not torch.equal(a, b.detach()) for a, b in zip(before, new.parameters()))


def test_the_optimisers_memory_of_a_wrapper_keeps_no_model_alive_and_pickles(mnist_dls, tmp_path):
    import gc
    import weakref

    from pipekit.learn import Callback

    class LocalWrap(nn.Module):  # a class pickle cannot name
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(x)

    class WrapDuringFit(Callback):
        def before_fit(self):
            self.orig, self.learn.model = self.learn.model, LocalWrap(self.learn.model)

        def after_fit(self):
            self.learn.model = self.orig

    pipekit.set_seed(0)
    learn = Learner(mnist_dls, linear(), path=tmp_path)
    learn.fit(1, 1e-3, cbs=WrapDuringFit())
    pickle.dumps(learn)  # the wrapper is gone with its fit
    first = weakref.ref(learn.model)
    learn.model = linear()
    learn.fit(1, 1e-3)
    gc.collect()
    assert first() is None  # the replaced model, and its optimiser's state, are freed
