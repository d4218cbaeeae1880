"""The base ``Callback``, the events of the training loop and the cancel exceptions (see the package
docstring for the order of events and of the built-in callbacks)."""
from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Union

from pipekit.core.component import Component
from pipekit.core.errors import ParameterError, warn
from pipekit.core.validate import close_names

if TYPE_CHECKING:
    from pipekit.learn.learner import Learner

__all__ = [
    "Callback", "EVENTS", "CancelFitException", "CancelEpochException", "CancelTrainException",
    "CancelValidException", "CancelBatchException", "CancelBackwardException", "CancelStepException", "Cbs",
    "state_keys", "sort_callbacks", "LEARNER_STATE", "unknown_events",
]

EVENTS: tuple[str, ...] = (
    "before_fit", "before_epoch", "before_train", "before_batch", "after_pred", "after_loss",
    "before_backward", "after_cancel_backward", "after_backward", "before_step", "after_cancel_step", "after_step",
    "after_cancel_batch", "after_batch",
    "after_cancel_train", "after_train", "before_validate", "after_cancel_validate", "after_validate",
    "after_cancel_epoch", "after_epoch", "after_cancel_fit", "after_fit",
)


def unknown_events(cb: Any) -> list[str]:
    """The methods of ``cb``'s class named like an event (``before_*``, ``after_*``, ``begin_*``) that are not one of
    :data:`EVENTS`, which the training loop never calls, each with the event it is nearest to: ``begin_batch``
    (an older spelling) is ``before_batch``, ``after_batchs`` is ``after_batch``.

    >>> from pipekit.learn.callbacks.core import Callback, unknown_events
    >>> class Old(Callback):
    ...     def begin_fit(self): pass
    >>> unknown_events(Old())
    ['begin_fit (before_fit?)']
    """
    said = []
    for name in sorted({n for k in type(cb).__mro__ for n in vars(k)}):
        if name in EVENTS or name == "after_create" or not re.match(r"(before|after|begin)_", name) \
                or not callable(getattr(cb, name, None)):
            continue
        guess = "before_" + name[len("begin_"):] if name.startswith("begin_") else None
        if guess not in EVENTS:
            near = close_names(name, EVENTS, n=1, cutoff=0.75)
            guess = near[0] if near else None
        said.append(f"{name} ({guess}?)" if guess else name)
    return said


#: what a callback reads from its Learner as its own attributes (``self.model`` is ``self.learn.model``); to
#: change one, set it on ``self.learn``
LEARNER_STATE = frozenset({
    "model", "opt", "optimizer", "dls", "dl", "xb", "yb", "x", "y", "pred", "loss", "loss_grad", "loss_func",
    "training", "epoch", "n_epoch", "start_epoch", "iter", "n_iter", "train_iter", "total_iters", "pct_train", "recorder",
    "metrics", "cbs", "lr", "wd", "moms", "path", "model_dir", "device", "final_record", "validation_only",
    "smooth_loss",
})
#: the Learner's state a callback reads but cannot set on the Learner under that name, and how to change it
_READ_ONLY_VIA = {"x": "self.learn.xb = (...,) (x is xb[0])", "y": "self.learn.yb = (...,) (y is yb[0])",
                  "smooth_loss": "self.learn.loss (smooth_loss is the Recorder's average of it)"}
#: the Learner's methods and settings a callback reads as its own too, as fastai's forward them
#: (``self.save('best')``, ``self.freeze()``, ``self.opt_func``); other callbacks read by their names
#: (``self.recorder``, ``self.activation_stats``)
LEARNER_METHODS = frozenset({
    "save", "load", "export", "freeze", "freeze_to", "unfreeze", "create_opt", "opt_func", "splitter", "get_preds",
    "predict", "validate", "show_results", "add_cb", "add_cbs", "remove_cb", "remove_cbs", "wd_bn_bias", "train_bn",
})


class CancelFitException(Exception):
    """Stop training now (``after_cancel_fit`` then ``after_fit`` still run).

    With ``error``, ``fit`` raises that error once those events have run: the callbacks clean up (the
    progress bar, MixUp's loss, the best checkpoint) and the caller still sees why training stopped.

    >>> import torch, torch.nn.functional as F
    >>> from pipekit.data import DataLoaders
    >>> from pipekit.learn import Learner, Callback, CancelFitException
    >>> ds = list(zip(torch.randn(32, 4), torch.randint(0, 2, (32,))))
    >>> class StopAfterOneBatch(Callback):
    ...     def after_batch(self):
    ...         if self.training: raise CancelFitException()
    >>> learn = Learner(DataLoaders.from_dsets(ds, ds, bs=16, device="cpu"), torch.nn.Linear(4, 2),
    ...                 loss_func=F.cross_entropy, cbs=StopAfterOneBatch())
    >>> learn.fit(3)
    >>> learn.train_iter, learn.recorder.values     # one batch trained, no epoch finished
    (1, [])
    """

    def __init__(self, *args: Any, error: BaseException | None = None):
        super().__init__(*args)
        self.error = error


class CancelEpochException(Exception):
    """Skip the rest of this epoch.

    >>> import torch, torch.nn.functional as F
    >>> from pipekit.data import DataLoaders
    >>> from pipekit.learn import Learner, Callback, CancelEpochException
    >>> ds = list(zip(torch.randn(32, 4), torch.randint(0, 2, (32,))))
    >>> class TrainOnly(Callback):
    ...     def after_train(self): raise CancelEpochException()     # every epoch ends before its validation
    >>> learn = Learner(DataLoaders.from_dsets(ds, ds, bs=16, device="cpu"), torch.nn.Linear(4, 2),
    ...                 loss_func=F.cross_entropy, cbs=TrainOnly())
    >>> learn.fit(2)
    >>> [valid_loss for train_loss, valid_loss in learn.recorder.values]
    [None, None]
    """


class CancelTrainException(Exception):
    """Skip the rest of this epoch's training phase.

    >>> import torch, torch.nn.functional as F
    >>> from pipekit.data import DataLoaders
    >>> from pipekit.learn import Learner, Callback, CancelTrainException
    >>> ds = list(zip(torch.randn(32, 4), torch.randint(0, 2, (32,))))
    >>> class OneBatchPerEpoch(Callback):
    ...     def before_batch(self):
    ...         if self.training and self.iter == 1: raise CancelTrainException()
    >>> learn = Learner(DataLoaders.from_dsets(ds, ds, bs=16, device="cpu"), torch.nn.Linear(4, 2),
    ...                 loss_func=F.cross_entropy, cbs=OneBatchPerEpoch())
    >>> learn.fit(3)
    >>> len(learn.recorder.losses), len(learn.recorder.values)   # 1 of 2 batches trained per epoch, all validated
    (3, 3)
    """


class CancelValidException(Exception):
    """Skip this epoch's validation phase.

    >>> import torch, torch.nn.functional as F
    >>> from pipekit.data import DataLoaders
    >>> from pipekit.learn import Learner, Callback, CancelValidException
    >>> ds = list(zip(torch.randn(32, 4), torch.randint(0, 2, (32,))))
    >>> class ValidateLastEpoch(Callback):
    ...     def before_validate(self):
    ...         if self.epoch < self.n_epoch - 1: raise CancelValidException()
    >>> learn = Learner(DataLoaders.from_dsets(ds, ds, bs=16, device="cpu"), torch.nn.Linear(4, 2),
    ...                 loss_func=F.cross_entropy, cbs=ValidateLastEpoch())
    >>> learn.fit(3)
    >>> [valid_loss is None for train_loss, valid_loss in learn.recorder.values]
    [True, True, False]
    """


class CancelBatchException(Exception):
    """Skip the rest of this batch (e.g. no loss/backward/step).

    >>> import torch, torch.nn.functional as F
    >>> from pipekit.data import DataLoaders
    >>> from pipekit.learn import Learner, Callback, CancelBatchException
    >>> ds = list(zip(torch.randn(32, 4), torch.randint(0, 2, (32,))))
    >>> class SkipTraining(Callback):
    ...     def before_batch(self):
    ...         if self.training: raise CancelBatchException()
    >>> learn = Learner(DataLoaders.from_dsets(ds, ds, bs=16, device="cpu"), torch.nn.Linear(4, 2),
    ...                 loss_func=F.cross_entropy, cbs=SkipTraining())
    >>> before = learn.model.weight.clone()
    >>> learn.fit(1)
    >>> torch.equal(before, learn.model.weight), learn.recorder.values[0][0]   # no step, no training loss
    (True, None)
    """


class CancelBackwardException(Exception):
    """Skip the backward pass for this batch.

    >>> import torch, torch.nn.functional as F
    >>> from pipekit.data import DataLoaders
    >>> from pipekit.learn import Learner, Callback, CancelBackwardException
    >>> ds = list(zip(torch.randn(32, 4), torch.randint(0, 2, (32,))))
    >>> class NoBackward(Callback):
    ...     def before_backward(self): raise CancelBackwardException()
    >>> learn = Learner(DataLoaders.from_dsets(ds, ds, bs=16, device="cpu"), torch.nn.Linear(4, 2),
    ...                 loss_func=F.cross_entropy, cbs=NoBackward())
    >>> before = learn.model.weight.clone()
    >>> learn.fit(1)
    >>> torch.equal(before, learn.model.weight), len(learn.recorder.losses)   # losses recorded, no gradient
    (True, 2)
    """


class CancelStepException(Exception):
    """Skip the optimiser step for this batch.

    >>> import torch, torch.nn.functional as F
    >>> from pipekit.data import DataLoaders
    >>> from pipekit.learn import Learner, Callback, CancelStepException
    >>> ds = list(zip(torch.randn(32, 4), torch.randint(0, 2, (32,))))
    >>> class NoStep(Callback):
    ...     def before_step(self): raise CancelStepException()
    >>> learn = Learner(DataLoaders.from_dsets(ds, ds, bs=16, device="cpu"), torch.nn.Linear(4, 2),
    ...                 loss_func=F.cross_entropy, cbs=NoStep())
    >>> before = learn.model.weight.clone()
    >>> learn.fit(1)
    >>> torch.equal(before, learn.model.weight), len(learn.recorder.losses)   # gradients computed, not applied
    (True, 2)
    """


class Callback(Component):
    """Base class for callbacks.

    ``order`` sorts callbacks (lower runs first); ``run_train``/``run_valid`` say in which phases the
    per-batch events run. After ``learn.add_cb(cb)``, the callback is reachable as ``learn.<name>``
    where ``name`` is the snake-case class name without "Callback" (``SaveModelCallback`` ->
    ``learn.save_model``); of several callbacks of one name, all run and ``learn.<name>`` is the one added
    last, except for a callback class marked ``unique`` (one per learner: the training loop's own, the NaN
    guard, mixed precision, a text model's resetter and regulariser), where the one added replaces the one the
    learner had. What it learns while training is kept in attributes ending in ``_``; that is
    its ``state_dict()``, carried over by checkpoints. The loop's state reads as the callback's own, as in
    fastai (``self.model``, ``self.pred``, ``self.loss``, ``self.epoch``...: see ``LEARNER_STATE``); changes go
    through ``self.learn`` (``self.learn.loss_grad = self.learn.loss_grad + penalty`` changes what is
    back-propagated, ``self.learn.loss`` what is recorded).

    ``validate``, ``get_preds`` and what is built on them (``predict``, ``tta``, ``show_results``,
    ``ClassificationInterpretation.from_learner``) run a validation-only pass with the events of a fit of one
    epoch that does not train, as fastai does: ``before_fit``, ``before_epoch``, ``before_validate``, the
    validation batches, ``after_validate``, ``after_epoch``, ``after_fit`` (see ``Learner.validation_pass``). So
    a callback that starts its state in ``before_fit`` or ``before_epoch`` and reports it in ``after_epoch``
    works there as in a fit. A callback whose fit and epoch events belong to training (a schedule, a tracker, a
    logger, what the Recorder keeps of the last fit) sets ``fit_only = True``: those events then reach it in fits
    only, as the built-in ones do, so a ``learn.validate()`` after a fit leaves what that fit recorded as it was
    (a subclass inherits the setting). ``self.validation_only`` (the learner's flag) is True during such a pass,
    for a callback that would rather tell the two apart in its own code.

    >>> import torch, torch.nn.functional as F
    >>> from pipekit.data import DataLoaders
    >>> from pipekit.learn import Learner, Callback
    >>> ds = list(zip(torch.randn(32, 4), torch.randint(0, 2, (32,))))
    >>> class CountBatches(Callback):
    ...     def before_fit(self): self.n = 0
    ...     def after_batch(self):
    ...         if self.training: self.n += 1                       # self.training reads learn.training
    >>> learn = Learner(DataLoaders.from_dsets(ds, ds, bs=16, device="cpu"), torch.nn.Linear(4, 2),
    ...                 loss_func=F.cross_entropy, cbs=CountBatches())
    >>> learn.fit(2)
    >>> learn.count_batches.n, learn.count_batches.name             # 2 epochs of 2 batches
    (4, 'count_batches')
    """

    registry_kind = "callback"
    order: ClassVar[int] = 0
    run_train: ClassVar[bool] = True
    run_valid: ClassVar[bool] = True
    #: True: the fit and epoch events (before_fit, before_epoch, after_epoch, after_fit and their cancels) reach this
    #: callback in fits only, not in the validation-only passes of validate and get_preds
    fit_only: ClassVar[bool] = False
    #: one per learner: adding another replaces it (a fit's ``cbs=`` replaces it for that fit only, unless
    #: ``kept_after_fit``)
    unique: ClassVar[bool] = False
    #: a unique callback given to one fit (``fit(cbs=...)``) stays after it in the place of the one it replaced: what
    #: it holds is that fit's (the Recorder, read as ``learn.recorder``)
    kept_after_fit: ClassVar[bool] = False
    #: callbacks (a class, a callback name, or a list of them) this one runs before / after, whatever the orders
    run_before: ClassVar[Any] = None
    run_after: ClassVar[Any] = None
    #: the Learner this callback was added to (set by ``Learner.add_cb``)
    learn: Learner

    def __getattr__(self, name: str) -> Any:
        # the loop's state reads as the callback's own, as in the book's callbacks (self.model, self.pred...), and
        # so do the learner's methods and its other callbacks
        learn = self.__dict__.get("learn")
        if name in LEARNER_STATE or name in LEARNER_METHODS:
            if learn is not None:
                return getattr(learn, name)
            raise AttributeError(f"{type(self).__name__}.{name}: this callback is not added to a Learner yet "
                                 "(learn.add_cb(cb), or cbs= of the Learner or of fit)")
        if learn is not None and not name.startswith("_") and isinstance(learn.__dict__.get(name), Callback):
            return learn.__dict__[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def unique_kind(self) -> type | None:
        """The class this callback is the one of, for a ``unique`` one: the nearest class declaring
        ``unique = True``, so a subclass of ``RNNRegularizer`` replaces the learner's ``RNNRegularizer``; None
        otherwise."""
        if not self.unique:
            return None
        return next((k for k in type(self).__mro__ if k.__dict__.get("unique") is True), type(self))

    def __setattr__(self, name: str, value: Any) -> None:
        if name in LEARNER_STATE and "learn" in self.__dict__ and name not in self.__dict__ \
                and not hasattr(type(self), name):
            via = _READ_ONLY_VIA.get(name, f"self.learn.{name}")
            warn(f"{type(self).__name__} sets self.{name}, which only hides the Learner's {name}: the "
                 f"training loop never sees it. To change it, set {via}")
        super().__setattr__(name, value)

    @property
    def name(self) -> str:
        # a subclass of a unique callback stands in for it, under its name (a Recorder of your own is learn.recorder)
        kind = self.unique_kind or type(self)
        name = re.sub(r"Callback$", "", kind.__name__) or kind.__name__
        return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)).lower()

    def release(self) -> None:
        """Undo what this callback changed outside itself (autocast entered, a loss swapped, hooks on the model)
        when a fit ends in an exception that is not one of the ``Cancel*`` ones (an error, Ctrl-C): the learner is
        then left as it was before the fit. Default: nothing."""

    def state_dict(self) -> dict[str, Any]:
        """What this callback carries over when a checkpointed fit is resumed: its ``*_`` attributes."""
        return self.state_to_data()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Take back ``state_dict()``'s values (called after ``before_fit`` of a resumed fit); only
        attributes ending in ``_`` are ever set."""
        self.state_from_data(state)


def state_keys(cbs: Sequence[Callback]) -> list[tuple[str, Callback]]:
    """The key each callback's state is checkpointed under: its ``name``, then ``name#2``, ``name#3``... for
    further callbacks of that name, in the order they were added (a resumed fit given the same callbacks
    hands each its own state back).

    >>> from pipekit.learn import SaveModelCallback
    >>> from pipekit.learn.callbacks.core import state_keys
    >>> [key for key, cb in state_keys([SaveModelCallback(), SaveModelCallback(fname="last", every_epoch=True)])]
    ['save_model', 'save_model#2']
    """
    seen: dict[str, int] = {}
    keys = []
    for cb in cbs:
        n = seen[cb.name] = seen.get(cb.name, 0) + 1
        keys.append((cb.name if n == 1 else f"{cb.name}#{n}", cb))
    return keys


#: what ``cbs=`` arguments accept: one callback (or callback class), several, or None (read with
#: ``pipekit.data.transform.as_list``, the one reader of "one object or a list")
Cbs = Union[Callback, type[Callback], Sequence[Union[Callback, type[Callback]]], None]


def _named_by(spec: Any, cb: Callback) -> bool:
    """Whether ``spec`` (a Callback class, a callback's name or class name, or a list of them) names ``cb``."""
    if spec is None:
        return False
    if isinstance(spec, (list, tuple, set, frozenset)):
        return any(_named_by(s, cb) for s in spec)
    if isinstance(spec, type):
        return isinstance(cb, spec)
    return spec in (cb.name, type(cb).__name__)


def sort_callbacks(cbs: Sequence[Callback]) -> list[Callback]:
    """``cbs`` in increasing ``order`` (ties in the order given), moved where ``run_before``/``run_after`` ask: a
    callback with ``run_after=Recorder`` runs after the Recorder in every event, even at a lower order.

    >>> from pipekit.learn import Callback, Recorder
    >>> from pipekit.learn.callbacks.core import sort_callbacks
    >>> class Reads(Callback):
    ...     run_after = Recorder
    >>> [type(c).__name__ for c in sort_callbacks([Recorder(), Reads()])]
    ['Recorder', 'Reads']
    """
    rest = sorted(cbs, key=lambda c: c.order)
    out: list[Callback] = []

    def before(a: Callback, b: Callback) -> bool:  # a must run before b
        return a is not b and (_named_by(b.run_after, a) or _named_by(a.run_before, b))

    while rest:
        ready = next((c for c in rest if not any(before(o, c) for o in rest)), None)
        if ready is None:
            names = [type(c).__name__ for c in rest if c.run_before is not None or c.run_after is not None]
            raise ParameterError(f"callbacks {names} ask to run before and after one another (run_before / "
                                 "run_after form a cycle); remove one of the requests")
        out.append(ready)
        rest.remove(ready)
    return out
