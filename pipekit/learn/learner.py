"""The Learner: one training loop with callbacks for every torch model pipekit trains.

>>> import numpy as np, torch
>>> from pipekit.data import DataLoaders, TensorStore
>>> from pipekit.learn import CrossEntropyLossFlat, Learner, MLP, accuracy
>>> x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32"); y = (x[:, 0] > 0).astype("int64")
>>> dls = DataLoaders.from_stores([TensorStore(x[:48]), TensorStore(y[:48])], [TensorStore(x[48:]), TensorStore(y[48:])],
...                               bs=16, seed=0, device="cpu")
>>> learn = Learner(dls, MLP(4, 2, layers=[8]), loss_func=CrossEntropyLossFlat(), metrics=accuracy)
>>> learn.fit(1, 1e-2)
>>> len(learn.recorder.values)
1
"""
from __future__ import annotations

import contextlib
import functools
import inspect
import os
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar, Union

import numpy as np
import torch
from torch import nn

from pipekit.core.errors import DataError, ParameterError, warn
from pipekit.core.forks import check_fork_safe, fork_checked
from pipekit.core.protocols import Loader, Loaders, conforms
from pipekit.core.registry import register
from pipekit.core.validate import (FastaiKeyword, Interval, Is, argument_names, check, check_arguments,
                                   check_positive_int)
from pipekit.learn.callbacks import (
    EVENTS, Callback, CancelBackwardException, CancelBatchException, CancelEpochException, CancelFitException,
    CancelStepException, CancelTrainException, CancelValidException, MixedPrecision, ProgressCallback, Recorder,
    TerminateOnNaNCallback, TrainEvalCallback,
)
from pipekit.learn import distributed, export, inference, schedule, summary
from pipekit.data.dataloaders import classes_vocab
from pipekit.data.loader import DataLoader, ForeignLoader
from pipekit.data.transform import as_list
from pipekit.learn.callbacks.core import Cbs, sort_callbacks, state_keys, unknown_events
from pipekit.learn.losses import BaseLoss, CrossEntropyLossFlat, check_loss_targets, loss_from_kind
from pipekit.learn.optim import LR_OR_NONE as _LR_OR_NONE
from pipekit.learn.optim import LR_VALUE as _LR
from pipekit.learn.optim import Adam, OptimWrapper, torch_opt_func
from pipekit.learn.registry import unwrapped
from pipekit.metrics import Metric, as_metric, check_metric_targets

__all__ = ["Learner", "check_learner_kwargs", "check_targets_fit", "several_targets"]

_EXC: dict[str, type[Exception]] = {
    "fit": CancelFitException, "epoch": CancelEpochException, "train": CancelTrainException,
    "validate": CancelValidException, "batch": CancelBatchException, "backward": CancelBackwardException,
    "step": CancelStepException}

# event names per stage, built once: the loop runs them for every batch
_STAGE = {k: (f"before_{k}", f"after_cancel_{k}", f"after_{k}", e) for k, e in _EXC.items()}
#: the events of a fit and of its epochs, which a ``fit_only`` callback sits out in a validation-only pass
_FIT_EPOCH = frozenset({"before_fit", "before_epoch", "after_epoch", "after_fit", "after_cancel_epoch",
                        "after_cancel_fit"})
_INNER = frozenset({"before_batch", "after_pred", "after_loss", "before_backward", "after_cancel_backward",
                    "after_backward", "before_step", "after_cancel_step", "after_step", "after_cancel_batch",
                    "after_batch"})

#: a metric: a pipekit Metric (or its class), or a function fn(pred, targ) giving a batch mean
MetricLike = Union[Metric, type[Metric], Callable[..., Any]]
#: a learning rate: one value, a slice (discriminative rates over the layer groups) or one value per group
LR = Union[float, slice, Sequence[float], np.ndarray]


_MISSING = object()

#: the training settings a learner file keeps and checks as it is read (``learner.lr``, ``learner.wd``,
#: ``learner.moms``), checked the same when given to a Learner and when assigned (``learn.lr = 1e-3``), so a learner
#: trains with, and exports, only settings its file can hold
_SETTINGS = {"lr": _LR, "wd": Interval(0, None, none_ok=True),
             "moms": Is(lambda m: len(m) == 3 and all(Interval(0, 1).accepts(v) for v in m),
                        "3 momentums (start, middle, end), each a number from 0 to 1")}
_SAID_EVENTS: set[type] = set()  # callback classes whose unknown event names were said (once per class)


#: the stages of a fit that show_training_loop opens and closes, by their events' names
_LOOP_STAGES = {"fit": "Fit", "epoch": "Epoch Loop", "train": "Train", "batch": "Batch", "validate": "Valid"}
_CANCELS = (CancelFitException, CancelEpochException, CancelTrainException, CancelValidException, CancelBatchException,
            CancelBackwardException, CancelStepException)


def _may_use_polars(learn: Learner, dl: Any = None) -> bool:
    """Whether a call of ``learn`` over ``dl`` (None: its own loaders) may do Polars work, which would hang in a process
    forked from one whose Polars threads ran (:func:`~pipekit.core.forks.check_fork_safe`): loaders pipekit built (from
    a DataBlock, a table or arrays) and a recipe (what ``load_learner`` rebuilds, and ``predict``, ``tta`` and
    ``test_dl`` read new items with) may; loaders pipekit did not build (``DataLoaders(train_loader, valid_loader)``
    of torch DataLoaders) and batches given as they are do none."""
    def foreign(d: Any) -> bool:
        return isinstance(d, (ForeignLoader, list, tuple)) or not isinstance(d, Loader)

    dls = learn.dls
    own = getattr(dls, "loaders", None)
    loaders = own if own is not None else (dls.train, dls.valid)
    return getattr(dls, "recipe", None) is not None or not all(map(foreign, loaders)) or not foreign(dl)


_F = TypeVar("_F", bound=Callable[..., Any])

#: fastai's Learner keywords that pipekit's has no parameter for: taken at their default, which is what a pipekit
#: Learner does (``default_cbs=True``: the default callbacks, which it always has), refused otherwise saying what does
#: it in pipekit (see :func:`check_learner_kwargs`)
_FASTAI_LEARNER = {"default_cbs": FastaiKeyword(
    "{given} (fastai's: no TrainEvalCallback, Recorder or progress bar) is not taken: a pipekit Learner always has its "
    "TrainEvalCallback and Recorder, which its loop and learn.recorder read. To show no progress bar use "
    "learn.remove_cb(ProgressCallback) (or, for a block of calls, with learn.no_bar(): / with learn.no_logging():); "
    "terminate_on_nan=False leaves out TerminateOnNaNCallback; leave default_cbs out", taken=True)}

def _outside_a_fit(call: str) -> Callable[[_F], _F]:
    """A decorator: the learner method ``f(learn, ...)``, refused first when a callback calls it during a fit or a
    validation-only pass (:meth:`Learner.check_not_running`; ``call`` names it)."""
    def wrap(f: _F) -> _F:
        @functools.wraps(f)
        def checked(learn: Learner, /, *args: Any, **kwargs: Any) -> Any:
            learn.check_not_running(call)
            return f(learn, *args, **kwargs)

        return checked  # type: ignore[return-value]

    return wrap


def _sweep_anywhere(f: _F) -> _F:
    """``lr_find`` as a learner method: its sweep is a fit of its own, which puts the model, the optimiser, the
    record and the epoch counters back after it, so a callback may run it during a fit (not during a validation-only
    pass, see :meth:`Learner.check_not_running`)."""
    @functools.wraps(f)
    def run(learn: Learner, *args: Any, **kwargs: Any) -> Any:
        learn.check_not_running("lr_find")  # a validation-only pass does not train: refused, naming lr_find
        with learn._lock:  # the outer fit's flag is this thread's to lift
            outer = learn.__dict__.pop("_in_fit", None)
            try:
                return f(learn, *args, **kwargs)
            finally:
                if outer is not None:
                    learn._in_fit = outer

    return run  # type: ignore[return-value]


class Learner:
    """Trains ``model`` on ``dls`` with ``loss_func``, an optimiser built by ``opt_func`` and callbacks.

    Parameters
    ----------
    dls: DataLoaders with ``.train`` and ``.valid`` (their target block's ``loss_kind`` picks the default loss).
    model: any ``nn.Module`` taking the ``n_inp`` input tensors of a batch.
    loss_func: defaults from ``dls.y_block.loss_kind``: CrossEntropyLossFlat (over the class axis: ``axis=1`` for
        a mask's scores per pixel), BCEWithLogitsLossFlat or MSELossFlat. Data of several targets has no default:
        give ``loss_func(pred, *targets)`` (see :func:`check_targets_fit`).
    opt_func: ``opt_func(param_groups, lr) -> torch.optim.Optimizer`` (``Adam`` = AdamW, ``SGD``, ``RMSProp``).
    lr: default learning rate for ``fit``.  splitter: ``model -> list of parameter lists`` (layer groups;
    the last is the head) used by ``freeze``/``freeze_to`` and ``slice`` learning rates.
    metrics: ``pipekit.metrics`` metrics or functions ``fn(pred, targ)``, computed over the whole validation set.
    wd: weight decay (None: the optimiser's default), applied at every ``fit`` that is not given its own ``wd``
    (``learn.wd = 0.1`` takes effect at the next fit; ``fit(wd=...)`` holds for that fit).  cbs: extra callbacks.
    terminate_on_nan: stop ``fit`` with ``NonFiniteError`` at the first NaN/inf loss or weights, the last
    finite weights put back (``TerminateOnNaNCallback``); False trains on (the Recorder only warns).

    Threads: one learner serves one call at a time. ``predict``, ``get_preds``, ``tta``, ``validate`` and ``fit``
    each hold the learner's lock for the whole call (the batch being run and the callbacks gathering its outputs
    live on the learner), so the threads of a web server sharing one learner each get their own answer, one after
    another, and a ``predict`` made while another thread fits waits for the fit to end. To predict in parallel, give
    each thread a learner of its own (``load_learner`` once per thread).

    Example (a model of one's own on the digits 3 and 7; each epoch's row is train loss, valid loss, metrics):
    >>> import pipekit.datasets as D
    >>> from torch import nn
    >>> from pipekit.learn import Learner, accuracy
    >>> from pipekit.vision import ImageDataLoaders, Resize
    >>> dls = ImageDataLoaders.from_folder(D.path("mnist_tiny"), item_tfms=Resize(28), bs=64, seed=0)
    >>> learn = Learner(dls, nn.Sequential(nn.Flatten(), nn.Linear(3 * 28 * 28, 2)), metrics=accuracy)
    >>> learn.fit_one_cycle(1, 1e-3)
    >>> learn.recorder.metric_names, learn.recorder.values[-1][2] > 0.9
    (['epoch', 'train_loss', 'valid_loss', 'accuracy', 'time'], True)
    """

    recorder: Recorder
    dl: Loader  # the loader of the current phase
    #: what new loaders go through when assigned to ``learn.dls`` (a learner that normalises its inputs, such as
    #: ``vision_learner``'s, sets it so larger images for progressive resizing are normalised the same way)
    dls_hook: Callable[[Loaders], Loaders] | None = None
    #: True while ``validate``/``get_preds`` (and ``predict``, ``tta``, ``show_results``, interpretation) run their
    #: pass (see :meth:`validation_pass`): the fit and epoch events run around it, and a callback reads this flag
    #: (``self.validation_only``) to tell such a pass from a fit
    validation_only: bool = False
    #: the description of the progress bar over a validation-only pass's batches ('get_preds', 'validate', 'tta
    #: pass 1/4'; see :meth:`validation_pass`), which ``ProgressCallback`` draws; None outside a pass
    pass_bar: str | None = None
    #: True while ``fit`` runs its epochs (see :meth:`check_not_running`)
    _in_fit: bool = False
    #: inside ``learn.distributed()``: the whole training loader, which ``get_preds``/``validate`` with ``ds_idx=0``
    #: read while ``dls.train`` is this process's shard; None elsewhere
    unsharded_train: Loader | None = None

    def __init__(self, dls: Loaders, model: nn.Module, loss_func: Callable[..., torch.Tensor] | None = None,
                 opt_func: Callable[..., torch.optim.Optimizer | OptimWrapper] = Adam, lr: LR = 1e-3,
                 splitter: Callable[[nn.Module], list[list[nn.Parameter]]] | None = None, cbs: Cbs = None,
                 metrics: MetricLike | Sequence[MetricLike] | None = None, path: str | os.PathLike | None = None,
                 model_dir: str = "models", wd: float | None = None, wd_bn_bias: bool = False, train_bn: bool = True,
                 moms: tuple[float, float, float] = (0.95, 0.85, 0.95), device: str | torch.device | None = None,
                 terminate_on_nan: bool = True, **fastai: Any):
        check_arguments("Learner", fastai, [*argument_names(Learner.__init__), *_FASTAI_LEARNER],
                        fastai=_FASTAI_LEARNER)
        check("Learner", model=(model, Is(lambda m: isinstance(m, nn.Module), "a torch nn.Module")),
              dls=(dls, Is(lambda d: conforms(d, Loaders), "DataLoaders with .train and .valid; build them with "
                                                            "DataBlock.dataloaders(...)")),
              loss_func=(loss_func, Is(lambda f: f is None or callable(f), "a function loss(pred, target)")),
              lr=(lr, _SETTINGS["lr"]), wd=(wd, _SETTINGS["wd"]), moms=(moms, _SETTINGS["moms"]))
        # held by every call that runs batches through the learner (fit, validate, get_preds, predict, tta): they
        # keep the batch, the predictions and their gathering callbacks on the learner, so calls from several
        # threads run one at a time. Reentrant: tta and predict call get_preds, lr_find and fine_tune call fit.
        self._lock = threading.RLock()
        self.dls, self.model = dls, model
        self.opt_func, self.lr, self.splitter, self.wd = opt_func, lr, splitter, wd
        self.wd_bn_bias, self.train_bn, self.moms = wd_bn_bias, train_bn, moms
        self.path = Path(path) if path is not None else Path(getattr(dls, "path", None) or ".")  # fastai's dls.path
        self.model_dir = model_dir
        self.device = torch.device(device if device is not None else dls.device)
        self.model.to(self.device)
        if loss_func is None:
            check_targets_fit("Learner", dls, loss_func)
            kind = dls.y_block.loss_kind if dls.y_block is not None else None
            if kind is None:
                raise ParameterError("Learner: loss_func was not given and the target block has no loss_kind "
                                     "('cross_entropy', 'pixel_cross_entropy', 'bce' or 'mse'); pass loss_func=, e.g. "
                                     "CrossEntropyLossFlat()")
            loss_func = loss_from_kind(kind)
        else:  # a loss that cannot read the targets is refused now, not inside torch at the first batch
            check_loss_targets("Learner", loss_func, dls, model, self.device)
            _check_bce_targets("Learner", dls, loss_func)
        self.loss_func = loss_func
        if isinstance(loss_func, nn.Module):
            loss_func.to(self.device)
        self.metrics = metrics  # the setter normalises it
        self.opt: OptimWrapper | None = None
        self.cbs: list[Callback] = []
        self._events: dict[str, list[tuple[Callable[[], None], bool, bool]]] = {}
        self._pass_events: dict[str, list[tuple[Callable[[], None], bool, bool]]] = {}
        self.training = False
        self.epoch, self.n_epoch, self.start_epoch, self.iter, self.n_iter = 0, 1, 0, 0, 0
        self.train_iter, self.total_iters, self.pct_train = 0, 1, 0.0
        self.xb: tuple = ()
        self.yb: tuple = ()
        self.pred: Any = None  # the model's output: a tensor, or whatever the model returns
        self.loss: torch.Tensor | None = None
        self.loss_grad: torch.Tensor | None = None
        self._warned_loss = False  # a callback changed learn.loss alone (warned once per Learner)
        self._cancelled_by: object = None  # the callback that raised the last cancel exception
        self.final_record: list[Any] = []
        self.batch_wrapper: Callable[[Loader], Any] | None = None
        self.resume_epoch, self.epoch_done, self.stop_requested = 0, False, False
        # callback states read from a checkpoint, handed back when the resumed fit starts (see load)
        self.resume_cb_states: dict[str, dict[str, Any]] = {}
        self.add_cbs([TrainEvalCallback(), Recorder(), ProgressCallback()]
                     + ([TerminateOnNaNCallback()] if terminate_on_nan else []))
        self.add_cbs(as_list(cbs))
        for cb in self.cbs:  # fastai's after_create: a callback's look at the learner it was built with
            after_create = getattr(cb, "after_create", None)
            if callable(after_create):
                after_create()

    @classmethod
    def data_problem(cls, dls: Loaders) -> str | None:
        """What keeps this learner class from working on ``dls``, as words that follow its name ("needs ..."), or
        None where it can. A Learner trains any data; a subclass that reads one kind only says which (a language
        model's ``LMLearner``), and a learner file naming it for other data is refused as it is read."""
        return None

    @property
    def dls(self) -> Loaders:
        """The loaders ``fit`` trains and validates on. Assigning new ones (``learn.dls = get_dls(bs, 128)``, the
        book's progressive resizing) passes them through ``dls_hook`` when the learner has one."""
        return self._dls

    @dls.setter
    def dls(self, dls: Loaders) -> None:
        hook = self.dls_hook
        dls = hook(dls) if hook is not None else dls
        if "_metrics" in self.__dict__:  # new loaders of another kind of target than the metrics score are refused
            check_metric_targets("Learner", self._metrics, dls, self.loss_func)
        self._dls = dls

    @property
    def lr(self) -> LR:
        """The learning rate ``fit`` (and ``create_opt``) use when given none: a positive finite number, a slice of
        them or one per layer group, as ``lr=`` takes it; an assignment (``learn.lr = 1e-3``) is checked the same."""
        return self._lr

    @lr.setter
    def lr(self, lr: LR) -> None:
        self._lr = _checked_setting("lr", lr)

    @property
    def wd(self) -> float | None:
        """The weight decay of every ``fit`` not given its own: a number of at least 0, or None for the optimiser's
        own, as ``wd=`` takes it; an assignment (``learn.wd = 0.1``) is checked the same."""
        return self._wd

    @wd.setter
    def wd(self, wd: float | None) -> None:
        self._wd = _checked_setting("wd", wd)

    @property
    def moms(self) -> tuple[float, float, float]:
        """The momentums (start, middle, end) of ``fit_one_cycle`` when given none, each from 0 to 1, as ``moms=``
        takes them; an assignment (``learn.moms = (0.9, 0.8, 0.9)``) is checked the same."""
        return self._moms

    @moms.setter
    def moms(self, moms: Sequence[float]) -> None:
        self._moms = tuple(_checked_setting("moms", moms))

    @property
    def x(self) -> Any:
        """The current batch's input, as the book's callbacks read it (``self.x``, fastai's detuplified ``xb``):
        ``xb[0]`` for a model of one input, the tuple ``xb`` for one of several, None when there is no batch. Read
        only, as fastai's: a callback changes the input with ``self.learn.xb = (new_x,)``."""
        return None if not self.xb else self.xb[0] if len(self.xb) == 1 else self.xb

    @property
    def y(self) -> Any:
        """The current batch's target (``self.y``, fastai's detuplified ``yb``): ``yb[0]`` for one target, the tuple
        ``yb`` for several, None when there is none (no batch, or a loader of inputs only). Read only, as fastai's:
        change it with ``self.learn.yb = (new_y,)``."""
        return None if not self.yb else self.yb[0] if len(self.yb) == 1 else self.yb

    @property
    def classes(self) -> Any:
        """The model's ``classes``, as fastai's learner answers names its model has: a collaborative-filtering
        model's users and items (the course's ``learn.classes['title']``). Other models have none: their classes
        are ``learn.dls.vocab`` (a text classifier's ``learn.dls.vocab[1]``)."""
        if hasattr(self.model, "classes"):
            return self.model.classes
        raise AttributeError(f"'Learner' object has no attribute 'classes': its model ({type(self.model).__name__}) "
                             "has none; a classifier's classes are learn.dls.vocab (a text classifier's learn.dls.vocab[1])")

    @property
    def metrics(self) -> list[Metric]:
        """The metrics computed over the validation set at each epoch. Set them as ``metrics=`` is given: one
        or a list of metrics, metric classes or functions ``fn(pred, targ)`` (``learn.metrics = accuracy``)."""
        return self._metrics

    @metrics.setter
    def metrics(self, metrics: MetricLike | Sequence[MetricLike] | None) -> None:
        # fresh metric objects (learners never share accumulators), checked now rather than after an epoch: each
        # against the data's kind of target (rmse of classes is refused, not a number that means nothing)
        fresh = [as_metric(m) for m in as_list(metrics)]
        check_metric_targets("Learner", fresh, self.dls, self.loss_func)
        self._metrics = fresh

    # ------------------------------------------------------------------ callbacks
    def _rebuild_events(self) -> None:
        cbs = sort_callbacks(self.cbs)
        # run_train/run_valid only filter the per-batch events; fit/epoch/phase events always run
        self._events, self._pass_events = {}, {}
        for e in EVENTS:
            found = [(cb, (getattr(cb, e), cb.run_train or e not in _INNER, cb.run_valid or e not in _INNER))
                     for cb in cbs if callable(getattr(cb, e, None))]
            self._events[e] = [ev for _, ev in found]
            # a validation-only pass (validate, get_preds): a fit_only callback's fit and epoch events do not run
            self._pass_events[e] = [ev for cb, ev in found if not (cb.fit_only and e in _FIT_EPOCH)]

    def add_cb(self, cb: Callback | type[Callback]) -> Learner:
        """Add a callback (an instance, or a class to instantiate); reachable as ``learn.<cb.name>``.

        Callbacks of the same name all run (two ``SaveModelCallback``, a fit's ``CSVLogger`` beside the
        learner's own); ``learn.<name>`` is the one added last, and removing it makes it the previous one
        again. A callback of a ``unique`` class (``TerminateOnNaNCallback``, ``Recorder``, ...) replaces the one
        of its class the learner had (a subclass of it too: a ``Recorder`` of your own replaces the learner's,
        as ``learn.recorder``). A callback already added is not added twice; one whose name is taken by the
        Learner itself (``learn.summary``, ``learn.opt``) is refused."""
        cb = cb() if isinstance(cb, type) else cb
        check("add_cb", cb=(cb, Is(lambda c: isinstance(c, Callback), "a Callback")))
        if any(c is cb for c in self.cbs):
            return self
        name = cb.name
        taken = self.__dict__.get(name, getattr(type(self), name, _MISSING))
        if taken is not _MISSING and not isinstance(taken, Callback):
            what = "method" if callable(taken) else "attribute"
            raise ParameterError(f"add_cb: the callback {type(cb).__name__} would be reached as learn.{name}, which "
                                 f"is the Learner's {what} {name!r}; rename the callback class, or give it a name of "
                                 f"its own (a class attribute, e.g. name = 'my_{name}')")
        if cb.unique:  # the learner's one of its kind (its class or a subclass of the same unique class) goes
            self.remove_cbs([o for o in self.cbs if o.unique_kind is cb.unique_kind])
        odd = unknown_events(cb)
        if odd and type(cb) not in _SAID_EVENTS:
            _SAID_EVENTS.add(type(cb))
            warn(f"{type(cb).__name__}: {', '.join(odd)} {'is not an event' if len(odd) == 1 else 'are not events'} "
                 f"of the training loop and will not be called; the events are {', '.join(EVENTS)}")
        cb.learn = self
        setattr(self, cb.name, cb)
        self.cbs.append(cb)
        self._rebuild_events()
        return self

    def add_cbs(self, cbs: Cbs) -> Learner:
        """Add one callback or several (instances or classes)."""
        for cb in as_list(cbs):
            self.add_cb(cb)
        return self

    def ordered_cbs(self, event: str) -> list[Callback]:
        """The callbacks that act on ``event`` (e.g. ``'after_batch'``), in the order they run (fastai's
        ``learn.ordered_cbs``); every event's list is in :meth:`show_training_loop`.

        >>> import pipekit.datasets as D
        >>> from torch import nn
        >>> from pipekit.vision import ImageDataLoaders
        >>> dls = ImageDataLoaders.from_folder(D.path("mnist_tiny"), bs=64, seed=0)
        >>> learn = Learner(dls, nn.Sequential(nn.Flatten(), nn.Linear(3 * 28 * 28, 2)))
        >>> [type(cb).__name__ for cb in learn.ordered_cbs("after_loss")], len(learn.ordered_cbs("before_fit"))
        (['TerminateOnNaNCallback'], 4)
        """
        if event not in EVENTS:
            raise ParameterError(f"ordered_cbs: {event!r} is not an event of the training loop; the events are "
                                 f"{', '.join(EVENTS)}")
        return [cb for cb in sort_callbacks(self.cbs) if callable(getattr(cb, event, None))]

    def remove_cb(self, cb: Callback | type[Callback]) -> Learner:
        """Remove a callback instance (or every callback of a class)."""
        for c in [c for c in self.cbs if c is cb or (isinstance(cb, type) and isinstance(c, cb))]:
            self.cbs.remove(c)
            if self.__dict__.get(c.name) is c:
                # the name goes back to the latest callback still holding it
                same = [o for o in self.cbs if o.name == c.name]
                if same:
                    setattr(self, c.name, same[-1])
                else:
                    delattr(self, c.name)
        self._rebuild_events()
        return self

    def remove_cbs(self, cbs: Cbs) -> Learner:
        """Remove one callback or several (instances, or classes to remove every callback of)."""
        for cb in as_list(cbs):
            self.remove_cb(cb)
        return self

    @contextlib.contextmanager
    def added_cbs(self, cbs: Cbs, fit: bool = False) -> Iterator[Learner]:
        """Callbacks present only inside the ``with`` block; those the learner already has stay after it, and so
        does, around a fit (``fit=True``), a unique one that is ``kept_after_fit`` (a Recorder given to a fit holds
        that fit's record), in place of the learner's of its kind."""
        given = [c() if isinstance(c, type) else c for c in as_list(cbs)]
        added = [c for c in given if not any(c is o for o in self.cbs)]
        # a callback another learner holds (a Recorder kept there after a fit it was given to) is lent to this
        # block and given back: its events read that learner again after it, and this learner keeps its own
        holders = {id(c): h for c in added if (h := c.__dict__.get("learn")) is not None and h is not self
                   and any(o is c for o in h.cbs)}
        kept = [c for c in added if fit and c.unique and c.kept_after_fit and id(c) not in holders]
        for c in added:
            if id(c) in holders and c.unique and c.kept_after_fit:
                warn(f"{type(c).__name__} given to this fit is the {c.name} of another Learner, kept there after a "
                     f"fit it was given to: it records this fit, over that learner's record, and stays with that "
                     f"learner; give each learner its own ({type(c).__name__}(...) in each fit's cbs)")
        replaced = [o for o in self.cbs if any(c.unique and o.unique_kind is c.unique_kind for c in added)
                    and not any(o.unique_kind is k.unique_kind for k in kept)]
        self.add_cbs(added)
        try:
            yield self
        finally:
            self.remove_cbs([c for c in added if not any(c is k for k in kept)])
            self.add_cbs([o for o in replaced if not any(o is c for c in self.cbs)])
            for c in added:
                if id(c) in holders:
                    c.learn = holders[id(c)]

    @contextlib.contextmanager
    def removed_cbs(self, cbs: Cbs) -> Iterator[Learner]:
        """Callbacks switched off inside the ``with`` block (e.g. the Recorder while predicting): one callback or
        several, as :meth:`remove_cbs` takes them (a class switches off every callback of that class). They come
        back where they were in ``learn.cbs``, so callbacks of the same ``order`` run in the same order after it."""
        given = as_list(cbs)
        before = list(self.cbs)
        removed = [c for c in self.cbs
                   if any(c is g or (isinstance(g, type) and isinstance(c, g)) for g in given)]
        for c in removed:
            self.cbs.remove(c)
        self._rebuild_events()
        try:
            yield self
        finally:
            back, now = {id(c) for c in removed}, {id(c) for c in self.cbs}
            # those still held and those switched off in their places; any added inside the block after them
            self.cbs[:] = ([c for c in before if id(c) in back or id(c) in now]
                           + [c for c in self.cbs if not any(c is b for b in before)])
            self._rebuild_events()

    @contextlib.contextmanager
    def no_bar(self) -> Iterator[Learner]:
        """Fits inside the ``with`` block show no progress bar; the table of losses and metrics still prints, as
        with fastai's ``learn.no_bar()``. The block holds for this thread's calls: other threads sharing the
        learner keep their bars."""
        with self._progress_set(show_bar=False):
            yield self

    #: fastai's ``with learn.no_mbar():`` (its master bar over epochs): pipekit's one bar
    no_mbar = no_bar

    def show_training_loop(self) -> None:
        """Print the events of a fit in the order they run, each with the callbacks that act on it in their order
        (fastai's ``learn.show_training_loop()``): which callback sees the batch before which.

        >>> import pipekit.datasets as D
        >>> from torch import nn
        >>> from pipekit.vision import ImageDataLoaders
        >>> dls = ImageDataLoaders.from_folder(D.path("mnist_tiny"), bs=64, seed=0)
        >>> Learner(dls, nn.Sequential(nn.Flatten(), nn.Linear(3 * 28 * 28, 2))).show_training_loop()
        Start Fit
           - before_fit     : [TrainEvalCallback, TerminateOnNaNCallback, Recorder, ProgressCallback]
        ...
        """
        lines, depth = [], 0
        for event in EVENTS:
            if event.startswith("after_cancel"):
                continue
            stage = event.split("_", 1)[1]
            if event.startswith("before") and stage in _LOOP_STAGES:
                lines.append("   " * depth + f"Start {_LOOP_STAGES[stage]}")
                depth += 1
            names = [type(getattr(fn, "__self__", fn)).__name__ for fn, *_ in self._events.get(event, ())]
            if names:
                lines.append("   " * depth + f"- {event:15}: [{', '.join(names)}]")
            if event.startswith("after") and stage in _LOOP_STAGES:
                depth -= 1
                lines.append("   " * depth + f"End {_LOOP_STAGES[stage]}")
        print("\n".join(lines))

    @contextlib.contextmanager
    def loss_not_reduced(self) -> Iterator[Learner]:
        """Inside the ``with`` block ``learn.loss_func(pred, *yb)`` gives the loss of each item rather than their
        mean (fastai's ``learn.loss_not_reduced()``), as ``get_preds(with_loss=True)`` gets them: a loss with a
        ``reduction`` (pipekit's ``CrossEntropyLossFlat``, ``MSELossFlat``..., torch's ``nn.CrossEntropyLoss()``)
        is switched to ``reduction='none'``, a plain function (``F.cross_entropy``) is called with
        ``reduction='none'``. A loss per position (a mask's pixels, a text's tokens) gives one per position, which
        ``get_preds`` averages per item as the loss's own mean does (``pipekit.learn.losses.item_losses``): a loss
        over class indices (pipekit's ``CrossEntropyLossFlat`` and its kin, torch's cross-entropy and NLL losses)
        with an ``ignore_index`` or a class ``weight`` (``CrossEntropyLossFlat(axis=1, ignore_index=255)``) takes
        the mean over the item's kept positions, weighted by their classes' weights, and an item whose positions
        are all ignored gets 0 (torch's mean over them is NaN, which would put it first in ``plot_top_losses``);
        any other loss, the plain mean of the item's positions. The loss is put back on leaving the block, after
        an error too; the learner's other calls (``fit``, ``get_preds`` in another thread) wait until then.

        >>> import pipekit.datasets as D
        >>> from torch import nn
        >>> from pipekit.vision import ImageDataLoaders
        >>> dls = ImageDataLoaders.from_folder(D.path("mnist_tiny"), img_cls="L", bs=64, seed=0)
        >>> learn = Learner(dls, nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 2)))
        >>> xb, yb = dls.one_batch()
        >>> with learn.loss_not_reduced():
        ...     tuple(learn.loss_func(learn.model(xb), yb).shape)
        (64,)
        >>> tuple(learn.loss_func(learn.model(xb), yb).shape)
        ()
        """
        with inference.loss_not_reduced(self):
            yield self

    @property
    def smooth_loss(self) -> float | None:
        """The smoothed training loss the Recorder keeps (``learn.recorder.smooth_loss``; fastai's
        ``learn.smooth_loss``, a callback's ``self.smooth_loss``): at a callback's ``after_batch`` that runs after
        the Recorder (``order`` > 50) it counts the batch just run. None before any training batch, or without a
        Recorder."""
        recorder = self.__dict__.get("recorder")
        return recorder.smooth_loss if isinstance(recorder, Recorder) else None

    @contextlib.contextmanager
    def no_logging(self) -> Iterator[Learner]:
        """Fits inside the ``with`` block print no table of losses and metrics (``learn.recorder`` still records
        them), as with fastai's ``learn.no_logging()``. The block holds for this thread's calls: other threads
        sharing the learner keep their tables."""
        with self._progress_set(show_table=False):
            yield self

    def _progress_layers(self) -> list[dict[str, bool]]:
        """This thread's ``no_bar()``/``no_logging()`` blocks now open on this learner, outermost first."""
        local = self.__dict__.setdefault("_progress_local", threading.local())
        if not hasattr(local, "layers"):
            local.layers = []
        return local.layers

    @contextlib.contextmanager
    def _progress_set(self, **settings: bool) -> Iterator[None]:
        # kept per thread, and put on the ProgressCallback only for the calls this thread makes inside the block
        # (see _progress_applied): a block in one thread of a server leaves the bars and tables of the others alone
        layers = self._progress_layers()
        layer = dict(settings)
        layers.append(layer)
        try:
            yield
        finally:
            for i in range(len(layers) - 1, -1, -1):
                if layers[i] is layer:
                    del layers[i]
                    break

    @contextlib.contextmanager
    def _progress_applied(self) -> Iterator[None]:
        """The calling thread's open ``no_bar()``/``no_logging()`` settings on the progress callbacks for one call
        (a fit or a validation-only pass, made holding the learner's lock), put back after it."""
        settings: dict[str, bool] = {}
        for layer in self._progress_layers():
            settings.update(layer)
        shown = [c for c in self.cbs if isinstance(c, ProgressCallback)] if settings else []
        before = [{k: getattr(c, k) for k in settings} for c in shown]
        for c in shown:
            for k, v in settings.items():
                setattr(c, k, v)
        try:
            yield
        finally:
            for c, old in zip(shown, before):
                for k, v in old.items():
                    setattr(c, k, v)

    def __call__(self, event: str, reached: set[int] | None = None) -> None:
        training = self.training
        for fn, run_train, run_valid in (self._pass_events if self.validation_only else self._events).get(event, ()):
            if (run_train if training else run_valid) and (
                    reached is None or id(getattr(fn, "__self__", fn)) in reached):
                try:
                    fn()
                except _CANCELS:
                    self._cancelled_by = getattr(fn, "__self__", fn)
                    raise
                except Exception as e:
                    # which callback failed, at which event: the traceback alone shows only the loop's frames
                    # above the callback's own
                    note = f"(raised in the callback {type(getattr(fn, '__self__', fn)).__name__} at {event})"
                    notes = getattr(e, "__notes__", None)
                    if notes is None or note not in notes:
                        # BaseException.add_note is Python 3.11's; on 3.10 the note is the same list, set by hand
                        e.__notes__ = [*(notes or ()), note]
                    raise

    def _with_events(self, f: Callable[[], None], name: str) -> None:
        before, cancel, after, exc = _STAGE[name]
        error, began, reached = None, False, None
        try:
            self(before)
            began = True
            f()
        except exc as e:
            if not began:  # cancelled in before_<stage>: the callbacks that event never reached did not begin it
                reached = self._reached_by_cancel()
            self(cancel, reached)
            error = e.error if isinstance(e, CancelFitException) else None
        self(after, reached)
        if error is not None:  # a callback stopped the fit for a reason the caller must see
            raise error

    def _reached_by_cancel(self) -> set[int]:
        """The callbacks (by id) that an event cancelled by one of them had reached: those up to and including it in
        the order events run them. Only these see the stage's ``after_cancel_*`` and ``after_*`` events, so a
        callback whose ``before_fit`` (``before_epoch``, ...) never ran is not asked to end what it never began
        (a ``before_fit`` that raises ``CancelFitException`` leaves the fit a no-op, as in fastai)."""
        cbs = sort_callbacks(self.cbs)
        by = self._cancelled_by
        last = next((i for i, c in enumerate(cbs) if c is by), len(cbs) - 1)
        return {id(c) for c in cbs[:last + 1]}

    def request_stop(self) -> None:
        """Stop the fit once the current epoch is over (every callback still sees its ``after_epoch``).

        Early stopping uses this rather than raising in the middle of ``after_epoch``, so a callback that
        runs later in that event (a checkpoint of the epoch's model) is never skipped."""
        self.stop_requested = True

    # ------------------------------------------------------------------ optimiser and groups
    @property
    def opt_func(self) -> Callable[..., torch.optim.Optimizer]:
        """What builds the optimiser; ``partial(OptimWrapper, opt=...)`` is read once, when it is given (here
        or assigned later), as the torch optimiser it names."""
        return self._opt_func

    @opt_func.setter
    def opt_func(self, opt_func: Callable[..., Any]) -> None:
        self._opt_func = torch_opt_func(opt_func)

    def create_opt(self) -> OptimWrapper:
        """Build the optimiser over the splitter's layer groups (called by ``fit`` when needed)."""
        top = self.lr.stop if isinstance(self.lr, slice) else self.lr
        # the splitter cuts the model a compiled or DDP wrapper runs (model[0], model.encoder), whose parameters
        # are the wrapper's
        model = unwrapped(self.model)
        self.opt = OptimWrapper(model, self.opt_func, lr=float(np.max(np.atleast_1d(top))),
                                splitter=self.splitter, wd_bn_bias=self.wd_bn_bias, train_bn=self.train_bn)
        self._opt_built_for = (self.opt, model, self._opt_func)
        self.__dict__.pop("_opt_model_seen", None)
        if self.wd is not None:
            self.opt.set_hyper("wd", self.wd)
        self.opt.set_hyper("lr", self.lr)
        return self.opt

    @property
    def optimizer(self) -> OptimWrapper:
        """The optimiser (built on first use; ``fit`` builds it too). It is built again, its state starting afresh,
        when the model it was built for is no longer ``learn.model`` (``learn.model = new_model``: the old one's
        optimiser would step the old model's parameters, and the new model would never train) or ``learn.opt_func``
        was assigned since; otherwise its state is kept from fit to fit (and as ``learn.load(with_opt=True)`` set
        it). A model holding the same parameters (a wrapper: ``torch.compile``, DDP, a callback's own around the
        model during a fit) is the same model."""
        if self.opt is None or self._opt_outdated():
            return self.create_opt()
        return self.opt

    def _opt_outdated(self) -> bool:
        """Whether ``learn.opt``, built by :meth:`create_opt`, was built for another model than ``learn.model`` or
        with another ``opt_func`` than the learner's now. An optimiser assigned to ``learn.opt`` otherwise is the
        caller's, and kept."""
        built = self.__dict__.get("_opt_built_for")
        if built is None or built[0] is not self.opt:
            return False
        if built[2] is not self._opt_func:
            return True
        model = unwrapped(self.model)
        if model is built[1]:
            return False
        # another module: outdated only where it holds other parameters than the optimiser steps (read on every
        # batch, so a wrapper's answer is kept while it is learn.model: by a weak reference, never keeping it alive)
        seen = self.__dict__.get("_opt_model_seen")
        if seen is None or seen[0]() is not model:
            seen = (weakref.ref(model), {id(p) for p in model.parameters()} != {id(p) for p in built[1].parameters()})
            self._opt_model_seen = seen
        return seen[1]

    def freeze_to(self, n: int) -> None:
        """Freeze the first ``n`` layer groups (negative counts from the end); normalisation layers stay trainable.
        The optimiser's state is cleared (``opt.clear_state()``, as fastai): the next fit's steps start afresh."""
        self.optimizer.freeze_to(n)
        self.optimizer.clear_state()

    def freeze(self) -> None:
        """Train only the last layer group (the head) and the normalisation layers.

        >>> import pipekit.datasets as D
        >>> from torch import nn
        >>> from pipekit.learn import Learner
        >>> from pipekit.vision import ImageDataLoaders
        >>> dls = ImageDataLoaders.from_folder(D.path("mnist_tiny"), img_cls="L", bs=64, seed=0)
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 16), nn.ReLU(), nn.Linear(16, 2))
        >>> learn = Learner(dls, model, splitter=lambda m: [list(m[1].parameters()), list(m[3].parameters())])
        >>> learn.freeze()                                   # two layer groups: the body is frozen, the head trains
        >>> [p.requires_grad for p in learn.model.parameters()]
        [False, False, True, True]
        """
        self.freeze_to(-1)

    def unfreeze(self) -> None:
        """Train every layer group.

        >>> import pipekit.datasets as D
        >>> from torch import nn
        >>> from pipekit.learn import Learner
        >>> from pipekit.vision import ImageDataLoaders
        >>> dls = ImageDataLoaders.from_folder(D.path("mnist_tiny"), img_cls="L", bs=64, seed=0)
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 16), nn.ReLU(), nn.Linear(16, 2))
        >>> learn = Learner(dls, model, splitter=lambda m: [list(m[1].parameters()), list(m[3].parameters())])
        >>> learn.freeze(); learn.fit(1, 1e-2)              # the head first
        >>> learn.unfreeze()                                 # then every layer
        >>> [p.requires_grad for p in learn.model.parameters()]
        [True, True, True, True]
        """
        self.freeze_to(0)

    # ------------------------------------------------------------------ the loop
    def fit(self, n_epoch: int, lr: LR | None = None, wd: float | None = None, cbs: Cbs = None,
            reset_opt: bool = False, start_epoch: int = 0) -> None:
        """Train for ``n_epoch`` epochs at a constant ``lr`` (a slice gives discriminative rates per group).

        ``start_epoch`` skips the first epochs (to resume a run from a checkpoint, see ``load``); such a fit freezes
        the layer groups the checkpoint's fit had frozen, unless ``freeze_to`` was called after ``load``.

        >>> import pipekit.datasets as D
        >>> from torch import nn
        >>> from pipekit.learn import Learner, accuracy
        >>> from pipekit.vision import ImageDataLoaders
        >>> dls = ImageDataLoaders.from_folder(D.path("mnist_tiny"), img_cls="L", bs=64, seed=0)
        >>> learn = Learner(dls, nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 2)), metrics=accuracy)
        >>> learn.fit(2, 1e-2)                               # two epochs at lr=0.01: a row of the recorder each
        >>> learn.recorder.metric_names, len(learn.recorder.values)
        (['epoch', 'train_loss', 'valid_loss', 'accuracy', 'time'], 2)
        """
        self.check_not_running("fit")
        if _may_use_polars(self):
            check_fork_safe("Learner.fit")
        n_epoch = check_positive_int("fit", "n_epoch", n_epoch)
        if not torch.is_grad_enabled():  # every schedule (fit_one_cycle, fine_tune, lr_find, ...) comes through here
            raise ParameterError("fit: gradients are off here (inside torch.no_grad(), torch.inference_mode() or "
                                 "torch.set_grad_enabled(False)), so the model cannot learn; call fit outside that "
                                 "block (get_preds, validate and predict work inside it)")
        check("fit", start_epoch=(start_epoch, Interval(0, n_epoch, closed="left", integer=True)), lr=(lr, _LR_OR_NONE))
        if len(self.dls.train) == 0:
            raise DataError(f"fit: the training loader gives no batch ({len(self.dls.train.dataset)} items"
                            f"{'' if not getattr(self.dls.train, 'drop_last', False) else ', drop_last=True'}, "
                            f"bs={getattr(self.dls.train, 'bs', '?')}); lower bs or pass drop_last=False")
        with self._lock, self.added_cbs(cbs, fit=True):  # a call from another thread waits for the fit to end
            opt = self.create_opt() if reset_opt else self.optimizer
            resume_frozen, opt.resume_frozen_to = opt.resume_frozen_to, None
            if start_epoch > 0 and resume_frozen is not None:  # resuming learn.load's checkpoint: train what it trained
                opt.freeze_to(resume_frozen)
            wd = self.wd if wd is None else wd  # fastai's: this fit's wd, else the learner's (learn.wd), if set
            if wd is not None:
                opt.set_hyper("wd", wd)
            opt.set_hyper("lr", self.lr if lr is None else lr)
            self.n_epoch, self.start_epoch = n_epoch, int(start_epoch)
            self.epoch = self.start_epoch
            self.stop_requested = False
            self._in_fit = True
            try:
                with self._progress_applied():
                    self._with_events(self._do_fit, "fit")
            except BaseException:  # an error or Ctrl-C: no callback leaves its changes behind
                for cb in self.cbs:
                    cb.release()
                raise
            finally:
                del self._in_fit  # the class's False again

    def check_not_running(self, call: str) -> None:
        """Refuse ``call`` (``fit`` or a schedule that runs it: ``fit_one_cycle``, ``fine_tune``, ...) made by a
        callback while this thread runs a fit or a validation-only pass of this learner: a fit inside it would run
        every callback's events again and leave the outer fit's epochs, optimiser and record mixed with its own.
        ``lr_find`` (``call="lr_find"``) runs its sweep inside a fit, and puts everything back after it, but not
        inside a validation-only pass (``get_preds``, ``validate``, ``predict``, ``tta``), which does not train;
        ``get_preds`` and ``predict`` run a pass of their own in either. Another thread's call waits for the fit to end
        instead (the learner's lock)."""
        if not self._lock._is_owned():  # type: ignore[attr-defined]  # no fit or pass of this thread's
            return
        if not (self.validation_only or (self._in_fit and call != "lr_find")):
            return
        if self.validation_only:
            bar = (self.pass_bar or "get_preds").split()
            outer = bar[0] if bar else "get_preds"
            running = f"a validation-only pass ({outer})"
            works = ("Inside a callback of that pass, learn.get_preds() and learn.predict() work as they are; "
                     "learn.lr_find() and learn.fit() do not (the pass does not train). In a callback of a fit "
                     "(learn.fit, fit_one_cycle, ...), learn.lr_find() works as it is")
        else:
            outer, running = "fit", "a fit"
            works = "Inside a callback of a fit, learn.lr_find() and learn.get_preds() work as they are"
        if call == "lr_find":  # only a validation-only pass refuses it
            raise ParameterError(
                f"lr_find: called from a callback while the learner is running {running}; lr_find cannot run inside "
                f"it (its sweep trains the model, which a validation-only pass does not). Call learn.lr_find() before "
                f"or after learn.{outer} returns, or from a callback of a fit (learn.fit, fit_one_cycle, ...), where "
                f"it works as it is; inside this pass's callbacks, learn.get_preds() and learn.predict() work")
        raise ParameterError(
            f"{call}: called from a callback while the learner is running {running}; {call} cannot run inside it "
            "(it would run every callback's events again, this one's included, and mix its epochs, optimiser and "
            f"record with the running one's). Call learn.{call}(...) after learn.{outer} returns; to decide in a "
            f"callback that more training is needed, set a flag there (self.more = True, in after_epoch or after_fit) "
            f"and call learn.{call} when the {outer} has returned. {works}")

    def _do_fit(self) -> None:
        states, self.resume_cb_states = self.resume_cb_states, {}
        if self.start_epoch > 0:  # resuming a checkpoint: callbacks continue where it left them
            for key, cb in state_keys(self.cbs):
                if key in states:
                    cb.load_state_dict(states[key])
        for epoch in range(self.start_epoch, self.n_epoch):
            self.epoch = epoch
            self._with_events(self._do_epoch, "epoch")
            if self.stop_requested:
                raise CancelFitException()

    def _do_epoch(self) -> None:
        self.epoch_done = False
        self.dl = self.dls.train
        self._with_events(self._all_batches, "train")
        self._do_validate()
        self.epoch_done = True  # checkpoints saved from now on resume at the next epoch

    def _do_validate(self, dl: Loader | None = None) -> None:
        self.dl = self.dls.valid if dl is None else dl
        with torch.no_grad():
            self._with_events(self._all_batches, "validate")

    def validation_pass(self, f: Callable[[], None], cbs: Cbs = None, bar: str = "valid") -> None:
        """Run ``f``, which runs one or more validation phases (``before_validate``, the batches,
        ``after_validate``), as a validation-only pass, as ``validate`` and ``get_preds`` do (fastai's
        ``validation_context``): ``cbs`` are present for the pass only, and the events are those of a fit of one
        epoch that does not train: ``before_fit``, ``before_epoch``, ``f``'s phases, ``after_epoch``, ``after_fit``.
        A callback that keeps state over an epoch (the book's ``self.accs = []`` in ``before_epoch``) works as in a
        fit; ``validation_only`` is True meanwhile, so the learner's own callbacks (the Recorder, schedulers,
        trackers, loggers) leave what the last fit recorded as it was. A cancel exception ends the pass as it ends
        a fit's stage; an error skips the ``after_`` events. Inside another validation-only pass (``tta``'s passes)
        ``f`` runs within that pass's events, which are not repeated (``cbs`` given there see only ``f``'s).

        ``bar`` describes the progress bar ``ProgressCallback`` draws over each phase's batches (``learn.pass_bar``,
        which ``f`` may change between its phases: ``tta`` numbers its passes); inside another pass the outer one's
        stays. The pass leaves ``batch_wrapper`` as it found it, after an error too."""
        with self.added_cbs(cbs):
            if self.validation_only:
                f()
                return
            self.validation_only = True
            wrapper, self.pass_bar = self.batch_wrapper, bar
            try:
                with self._progress_applied():
                    self._with_events(lambda: self._with_events(f, "epoch"), "fit")
            finally:
                self.validation_only = False
                self.batch_wrapper = wrapper
                del self.pass_bar  # the class's None again

    def _all_batches(self) -> None:
        dl = self.dl
        self.n_iter, self._n_inp = len(dl), dl.n_inp
        for i, b in enumerate(dl if self.batch_wrapper is None else self.batch_wrapper(dl)):
            self.iter = i
            b = (b,) if isinstance(b, torch.Tensor) else b  # a loader of bare items (DataLoader(x)): inputs only
            self._one_batch(b)

    def _one_batch(self, b: Sequence[torch.Tensor]) -> None:
        n = self._n_inp
        dev = self.device
        if isinstance(b[0], torch.Tensor) and b[0].device != dev:
            b = tuple(t.to(dev, non_blocking=True) if isinstance(t, torch.Tensor) else t for t in b)
        self.xb, self.yb = tuple(b[:n]), tuple(b[n:])
        self.pred = self.loss = self.loss_grad = None  # a batch a callback cancels leaves none of the last one's
        self._with_events(self._do_one_batch, "batch")

    def _do_one_batch(self) -> None:
        try:
            self.pred = self.model(*self.xb)
        except ValueError as e:  # torch's words for a BatchNorm layer given one row in training
            if self.training and "Expected more than 1 value per channel when training" in str(e):
                raise _one_row_batch_error(self.model, self.dls.train) from e
            raise
        if self.training and self.iter == 0 and self.epoch == self.start_epoch:
            self._check_scores(self.pred)
        self("after_pred")
        if isinstance(self.pred, tuple) and isinstance(self.loss_func, BaseLoss):
            raise ParameterError(f"the model returned a tuple of {len(self.pred)} and {type(self.loss_func).__name__} "
                                 "takes one tensor of scores: return only the scores, or, for a recurrent model "
                                 "returning (logits, raw_outputs, outputs), train it with TextLearner (or add "
                                 "RNNRegularizer(), which passes the logits to the loss and adds AR/TAR)")
        # a batch without targets has no loss where nothing trains (predictions of new items); a training batch of
        # inputs only trains on loss_func(pred) where the loss takes the predictions alone (an autoencoder's
        # reconstruction, a penalty), and is refused otherwise (fastai skips its step, training nothing, silently)
        if not self.yb and self.training:
            self._check_loss_without_targets()
        self.loss_grad = self.loss_func(self.pred, *self.yb) if self.yb or self.training else None
        # a tensor of its own (as fastai's), not a view of loss_grad: the book's ``self.learn.loss += penalty`` in
        # after_loss would otherwise change, in place, a value backward still needs (sqrt's output, say)
        self.loss = self.loss_grad.detach().clone() if self.loss_grad is not None else None
        if self.loss_grad is not None and self.loss_grad.numel() != 1 and getattr(self.loss_func, "reduction", None) \
                != "none":  # per-item losses only where asked for (get_preds(with_loss=True) switches the reduction)
            name = getattr(self.loss_func, "__name__", type(self.loss_func).__name__)
            raise ParameterError(f"loss_func {name!r} returned {tuple(self.loss_grad.shape)} values for a batch: "
                                 "training needs one number per batch (reduce it, e.g. end with .mean())")
        loss, loss_grad = self.loss, self.loss_grad
        # an in-place change of loss (``self.learn.loss += penalty``, the book's spelling) bumps its version counter;
        # one of loss_grad changes loss_grad's grad_fn, so a callback that changed both in place is not warned of.
        # Reading both costs no device sync. Only a training batch is warned of, and only it reads the counter: an
        # inference tensor (a validation pass the caller runs inside torch.inference_mode()) keeps none.
        version = loss._version if self.training and loss is not None and not loss.is_inference() else None
        grad_fn = loss_grad.grad_fn if loss_grad is not None else None
        self("after_loss")
        if self.training and not self._warned_loss and self.loss_grad is loss_grad and (
                self.loss is not loss or (loss is not None and version is not None and loss._version != version
                                          and (loss_grad is None or loss_grad.grad_fn is grad_fn))):
            # the book's callbacks (written for an older fastai) add penalties to learn.loss, which only the
            # record reads: say so once, as a changed loss that does not change training is hard to see
            self._warned_loss = True
            warn("a callback changed learn.loss in after_loss but not learn.loss_grad: the recorded loss "
                 "changes, training does not (backward uses learn.loss_grad, as in fastai). To change "
                 "training assign self.learn.loss_grad (e.g. self.learn.loss_grad = self.learn.loss_grad + "
                 "penalty); to change only the record, set both or ignore this warning")
        if not self.training or self.loss_grad is None:
            return
        self._with_events(self._backward, "backward")
        self._with_events(self._step, "step")
        self.optimizer.zero_grad()

    def _check_loss_without_targets(self) -> None:
        """Training batches of inputs only: ``loss_func`` must take the predictions alone, else no step could be
        taken (said once, before the first one)."""
        fn = self.loss_func.forward if isinstance(self.loss_func, nn.Module) else self.loss_func
        try:
            inspect.signature(fn).bind(self.pred)
            return
        except TypeError:
            pass
        except ValueError:  # a callable without a signature (some builtins): let its call say what it needs
            return
        name = getattr(self.loss_func, "__name__", type(self.loss_func).__name__)
        raise ParameterError(f"the training batches hold inputs only ({self._n_inp} part(s), no target), and "
                             f"loss_func {name!r} needs a target: give the data targets (a second block, or "
                             "(x, y) items; n_inp= says how many parts are inputs), or a loss_func taking the "
                             "predictions alone (e.g. lambda pred: pred.pow(2).mean())")

    def _check_scores(self, pred: Any) -> None:
        """Before the first step of a fit, and in ``predict``: a classifier's scores per item must be the data's
        classes (torch would say 'Target 1 is out of bounds', or decoding would fail on a class with no name)."""
        c = getattr(self.dls, "c", None)
        if isinstance(pred, tuple) and pred and isinstance(pred[0], torch.Tensor):
            pred = pred[0]  # a text classifier in training: (scores, outputs, outputs), read by RNNRegularizer
        if not (isinstance(self.loss_func, CrossEntropyLossFlat) and isinstance(c, int) and c > 1
                and isinstance(pred, torch.Tensor) and pred.ndim == 2) or pred.shape[1] == c:
            return
        vocab = classes_vocab(self.dls)
        shown = f" {list(vocab)[:10]}" if vocab is not None else ""
        raise ParameterError(f"the model gives {pred.shape[1]} scores per item but the data has {c} classes{shown}: "
                             f"build its last layer with {c} outputs (n_out={c}), or give loss_func= for another use "
                             "of the outputs")

    def _backward(self) -> None:
        if self.loss_grad is not None:
            self.loss_grad.backward()

    def _step(self) -> None:
        self.optimizer.step()

    def validate(self, ds_idx: int = 1, dl: Loader | None = None, cbs: Cbs = None) -> list[float | None]:
        """Loss and metrics over a whole set (default: validation) as ``[loss, *metrics]``; ``cbs``: callbacks
        present only for this pass (fastai's ``learn.validate(cbs=...)``). A callback cannot call it during a fit
        or another pass: its pass would run every callback's events again, the caller's own included.

        >>> import pipekit.datasets as D
        >>> from torch import nn
        >>> from pipekit.learn import Learner, accuracy
        >>> from pipekit.vision import ImageDataLoaders
        >>> dls = ImageDataLoaders.from_folder(D.path("mnist_tiny"), img_cls="L", bs=64, seed=0)
        >>> learn = Learner(dls, nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 2)), metrics=accuracy)
        >>> learn.fit(1, 1e-2)
        >>> train_loss, valid_loss, _ = learn.recorder.values[-1]     # the fit's last epoch
        >>> loss, acc = learn.validate()                     # the validation set again: [loss, accuracy]
        >>> loss == valid_loss, acc > 0.9
        (True, True)
        >>> len(learn.validate(ds_idx=0))                    # the training set
        2
        """
        if _may_use_polars(self, dl):
            check_fork_safe("Learner.validate")
        # this thread is inside a fit or a pass (threading.Condition asks an RLock the same)
        if self._lock._is_owned():  # type: ignore[attr-defined]
            raise ParameterError(
                "validate: called from a callback while the learner is running a fit (or another pass); its pass "
                "would run every callback's events again, this one's included. In a callback, read the epoch's "
                "[train_loss, valid_loss, *metrics] from self.learn.recorder.values[-1] (in after_epoch, with "
                "order > Recorder.order), or score predictions from self.learn.get_preds(); call learn.validate() "
                "after the fit")
        with self._lock:  # the pass and the row it records, whole, before another thread's call
            dl = self._get_dl(ds_idx, dl)
            self.training = False
            held: list[Any] = []

            def run() -> None:  # the Recorder of the pass (one given in cbs holds its row)
                held.append(self.recorder)
                self.recorder.metrics = list(self.metrics)
                self._do_validate(dl)

            self.validation_pass(run, cbs, bar="validate")
            if not held:  # a callback cancelled the pass before its batches: nothing was scored
                return [None] * (1 + len(self.metrics))
            row = held[0].valid_row()
        if row and row[0] is None and len(dl):  # batches, and no loss: they carried no targets
            raise DataError("validate: this loader carries no targets to score the predictions against; read "
                            "labelled items with dls.test_dl(items, with_labels=True), or get predictions only with "
                            "learn.get_preds(dl=dl)")
        return row

    def _get_dl(self, ds_idx: int, dl: Loader | None) -> Loader:
        if isinstance(dl, (list, tuple)):  # the book's learn.get_preds(dl=[(x, y)]): batches as they are
            return inference.GivenBatches(dl, self.dls.n_inp)
        if dl is not None and not isinstance(dl, Loader):  # a torch DataLoader: its batches, on the learner's device
            return ForeignLoader(dl, n_inp=self.dls.n_inp, device=self.device, where="dl")
        picked = dl is None
        if dl is None:
            n = max(2, len(self.dls.loaders))  # a loaded learner's loaders hold none: reading one says what to do
            check("Learner", ds_idx=(ds_idx, Is(lambda i: isinstance(i, int) and not isinstance(i, bool) and 0 <= i < n,
                                                f"0 (train), 1 (valid){f' to {n - 1}' if n > 2 else ''}: an index of "
                                                "the learner's loaders")))
            dl = self.dls.loaders[ds_idx] if self.dls.loaders else self.dls.train if ds_idx == 0 else self.dls.valid
            if ds_idx == 0 and self.unsharded_train is not None:  # in learn.distributed(): all of it, not the shard
                dl = self.unsharded_train
        # a loader that drops its last partial batch or shuffles (a training loader, a validation loader built with
        # drop_last=True) is read in the dataset's order and whole: predictions are for every item, in order, as
        # fastai's get_preds reads dls[ds_idx].new(shuffle=False, drop_last=False)
        if isinstance(dl, (DataLoader, ForeignLoader)) and (dl.drop_last or dl.shuffle):
            try:
                return dl.new(shuffle=False, drop_last=False)
            except ParameterError:
                if ds_idx == 0 and (picked or dl is self.dls.loaders[0]):  # the training items cannot be read in order
                    raise
                if dl.drop_last:
                    warn(f"{getattr(dl, 'where', 'this loader')} drops its last partial batch and cannot be remade "
                         "without: its last items get no prediction; give DataLoaders a loader with drop_last=False")
        return dl

    # ------------------------------------------------------------------ precision
    def to_fp16(self) -> Learner:
        """Train in fp16 mixed precision (autocast and a gradient scaler: ``MixedPrecision(dtype='fp16')``, in
        place of any ``MixedPrecision`` the learner had).

        fp16 autocast needs CUDA: on any other device this changes nothing and warns (on a CPU,
        ``to_bf16()`` gives bf16 autocast). Returns the learner, so ``learn = learner(...).to_fp16()`` reads
        as in the book.
        """
        if self.device.type != "cuda":
            warn(f"to_fp16: fp16 mixed precision needs a CUDA device and this learner is on {self.device}; "
                 "training stays in fp32 (use to_bf16() for bf16 autocast on a CPU)")
            return self
        return self.add_cb(MixedPrecision(dtype="fp16"))  # unique: it replaces the one the learner had

    def to_bf16(self) -> Learner:
        """Train in bf16 mixed precision (autocast, no scaler needed), on CUDA or on a CPU, in place of any
        ``MixedPrecision`` the learner had.

        On a CPU it is faster than float32 only where the CPU computes bfloat16 in hardware
        (:func:`~pipekit.learn.cpu_bf16_is_fast`); elsewhere it is emulated and slower."""
        return self.add_cb(MixedPrecision(dtype="bf16", cpu=True))  # unique: it replaces any other

    def to_fp32(self) -> Learner:
        """Back to full precision: removes ``MixedPrecision``."""
        return self.remove_cb(MixedPrecision)

    # ------------------------------------------------------------------ each in its own module
    # refused from a callback during a fit or pass before they change anything (fine_tune freezes first)
    fit_one_cycle = _outside_a_fit("fit_one_cycle")(schedule.fit_one_cycle)
    fit_flat_cos = _outside_a_fit("fit_flat_cos")(schedule.fit_flat_cos)
    fit_sgdr = _outside_a_fit("fit_sgdr")(schedule.fit_sgdr)
    fine_tune = _outside_a_fit("fine_tune")(schedule.fine_tune)
    lr_find = _sweep_anywhere(schedule.lr_find)
    # a worker process forked after the parent's Polars threads started would hang in them: said instead, where the
    # call would do Polars work (_may_use_polars)
    get_preds = fork_checked("Learner.get_preds", when=lambda learn, /, ds_idx=1, dl=None, *_, **__: _may_use_polars(
        learn, dl))(inference.get_preds)
    predict = fork_checked("Learner.predict", when=lambda learn, *_, **__: _may_use_polars(learn))(inference.predict)
    tta = fork_checked("Learner.tta", when=lambda learn, /, ds_idx=1, dl=None, *_, **__: _may_use_polars(learn, dl))(
        inference.tta)
    show_results = inference.show_results
    summary = summary.summary
    distributed = distrib_ctx = distributed.distributed_context
    save = export.save_checkpoint
    load = export.load_checkpoint
    export = export.export_learner

    # a lock cannot be pickled or deep-copied: a pickled or deep-copied learner gets a lock of its own, and a shallow
    # copy, which shares the callbacks and the model, shares the lock too
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_lock", None)
        state.pop("_progress_local", None)  # this process's threads' open blocks: not the copy's
        state.pop("_opt_model_seen", None)  # a weak reference: worked out again when needed
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        # a learner pickled before its settings were checked on assignment holds them as plain attributes, and
        # does not say which model its optimiser was built for: the one it steps, where that is its model
        for name in ("lr", "wd", "moms"):
            if name in state and f"_{name}" not in state:
                state[f"_{name}"] = tuple(state.pop(name)) if name == "moms" else state.pop(name)
        self.__dict__.update(state)
        self._lock = threading.RLock()
        opt, model = state.get("opt"), state.get("model")
        if ("_opt_built_for" not in state and "_opt_func" in state and isinstance(opt, OptimWrapper)
                and isinstance(model, nn.Module)):
            stepped = {id(p) for group in opt.param_groups for p in group["params"]}
            if stepped and stepped <= {id(p) for p in unwrapped(model).parameters()}:
                self._opt_built_for = (opt, unwrapped(model), state["_opt_func"])

    def __copy__(self) -> Learner:
        out = type(self).__new__(type(self))
        out.__dict__.update(self.__dict__)
        return out

    def __repr__(self) -> str:
        return (f"Learner(model={type(self.model).__name__}, loss_func={type(self.loss_func).__name__}, "
                f"metrics={[m.name for m in self.metrics]}, device={self.device})")


register(Learner, kind="learner")


def _one_row_batch(dl: Any) -> tuple[str, str] | None:
    """How the training loader ``dl`` gives a batch of a single row, and the fix, read from its settings (no batch
    is made); None when it gives none, or when its batches' sizes are its own (a torch loader with a batch sampler
    of its own). A loader that keeps a last partial batch (``drop_last=False``) of ``n % bs == 1`` rows gives one."""
    n: int | None
    if isinstance(dl, DataLoader):
        bs, n = dl.bs, dl._n_drawn()
        partial = type(dl).__len__ is DataLoader.__len__  # a language model's batches all hold bs streams
    elif isinstance(dl, ForeignLoader) and isinstance(dl.loader, torch.utils.data.DataLoader) and dl.loader.batch_size:
        sampler = dl.loader.sampler  # the rows it draws: a sampler of a subset, or of a number of its own
        n = len(sampler) if hasattr(sampler, "__len__") else None  # type: ignore[arg-type]
        bs, partial = int(dl.loader.batch_size), True
    else:
        return None
    if partial and n == 1:
        return "the training set has one row", "give more rows, or a lower valid_pct to train on more of them"
    if bs == 1:
        return "bs=1" + (f", {n} training rows one per batch" if n else ""), "pass bs=2 or more"
    if partial and n and not dl.drop_last and n % bs == 1:
        return (f"the last of the {len(dl)} batches of bs={bs} holds the one row left of the {n} training rows, "
                "kept as drop_last=False", "drop it (drop_last=True; a shuffled training loader drops it by default), or "
                "pick a bs that leaves more than one row")
    return None


def _one_row_batch_error(model: nn.Module, dl: Any) -> DataError:
    """The error for a training batch of one row that a ``BatchNorm1d`` layer of ``model`` refused: in training it
    normalises each feature by the batch's own mean and variance, which one row does not have. Where the training
    loader ``dl``'s settings say how it gave such a batch (one training row, ``bs=1``, a last batch of one row kept),
    the fix for that is named."""
    found = _one_row_batch(dl)
    how, fix = found if found is not None else ("", "pass a bs that gives every batch 2 rows or more")
    name = next((k for k, m in model.named_modules() if isinstance(m, (nn.BatchNorm1d, nn.LazyBatchNorm1d))), None)
    layer = f"layer {name!r}" if name else "layer"
    plain = ("tabular_learner(dls, config=dict(use_bn=False, bn_cont=False))" if type(model).__name__ == "TabularModel"
             else "a model without BatchNorm")
    return DataError(f"fit: a training batch holds one row{f' ({how})' if how else ''}, and the model's BatchNorm "
                     f"{layer} needs at least 2 rows per batch in training (it normalises by the batch's mean and "
                     f"variance); {fix}, or train {plain}")


def _checked_setting(name: str, value: Any) -> Any:
    """``value`` for the learner setting ``name`` (:data:`_SETTINGS`), refused as ``Learner(...)`` refuses it, naming
    ``learn.<name>``: an assigned value a file could not hold would be trained with, and exported to a file that
    ``load_learner`` refuses."""
    check("Learner", **{f"learn.{name}": (value, _SETTINGS[name])})
    return value


def check_learner_kwargs(who: str, kwargs: dict[str, Any], factory: Callable[..., Any],
                         given: Sequence[str] = ("dls", "model")) -> None:
    """Refuse a keyword that neither the learner factory ``factory`` nor :class:`Learner` takes, in the name of
    ``who`` (the function called), listing both's arguments and the close ones; ``given``: the Learner's arguments
    the factory passes itself.

    >>> from pipekit.core import ParameterError
    >>> from pipekit.learn.learner import check_learner_kwargs
    >>> from pipekit.tabular import tabular_learner
    >>> try:
    ...     check_learner_kwargs("tabular_learner", {"layer": [200, 100]}, tabular_learner)
    ... except ParameterError as e:
    ...     print(e)
    tabular_learner: unknown argument(s) ['layer']; it takes ['dls', 'layers', ...]; did you mean 'layers'?
    """
    check_arguments(who, kwargs, argument_names(factory), ("the Learner's", [*argument_names(
        Learner.__init__, but=tuple(given)), *_FASTAI_LEARNER]), fastai=_FASTAI_LEARNER)


def several_targets(dls: Any) -> list[Any]:
    """The target blocks of ``dls`` (after its ``n_inp`` inputs), in order, when it has several and its own
    defaults (``dls.loss_kind``, the size of a model for it) would be the first target's alone: data whose
    ``dls.c`` is a list, one size per target (``blocks=(ImageBlock, CategoryBlock, CategoryBlock), n_inp=1``, a
    category and a number, a category and a ``MultiCategoryBlock``), or a first target that names a default loss.
    Otherwise [] (one target; boxes then their labels, which have their own defaults).

    >>> import pipekit.datasets as D
    >>> from pipekit.data import CategoryBlock, DataBlock, get_image_files, parent_label
    >>> from pipekit.vision import ImageBlock, Resize
    >>> from pipekit.learn.learner import several_targets
    >>> parity = lambda p: "even" if int(p.stem) % 2 == 0 else "odd"
    >>> block = DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock, CategoryBlock), n_inp=1, get_y=[parent_label, parity],
    ...                   get_items=lambda p: get_image_files(p, folders=["train"])[::40], item_tfms=Resize(16))
    >>> dls = block.dataloaders(D.path("mnist_tiny"), bs=4, seed=0, device="cpu")   # a digit and its parity
    >>> [type(b).__name__ for b in several_targets(dls)], dls.c
    (['CategoryBlock', 'CategoryBlock'], [2, 2])
    """
    targets = list(tuple(getattr(dls, "blocks", ()) or ())[getattr(dls, "n_inp", 1):])
    if len(targets) > 1 and (isinstance(getattr(dls, "c", None), list)
                             or getattr(targets[0], "loss_kind", None) is not None):
        return targets
    return []


def check_targets_fit(who: str, dls: Any, loss_func: Any, n_out: Any = None, builds_model: bool = False) -> None:
    """Refuse, saying what to pass, a learner on data of several targets (``blocks=(ImageBlock, CategoryBlock,
    CategoryBlock), n_inp=1``; see :func:`several_targets`) that would take its loss (no ``loss_func``) or, for a
    factory that ``builds_model``, its number of outputs (no ``n_out``) from the data: those would be the first
    target's alone. Such a model gives the targets' outputs side by side (``n_out=sum(dls.c)``) and its loss, a
    function of the user's, splits them.

    On a table's targets it also refuses a binary cross-entropy of numbers that are no 0/1 labels
    (:func:`_check_bce_targets`) and, with no ``loss_func``, an ``n_out`` other than the number of regression targets
    (:func:`_check_regression_outputs`).

    >>> import pipekit.datasets as D
    >>> from pipekit.data import CategoryBlock, DataBlock, get_image_files, parent_label
    >>> from pipekit.vision import ImageBlock, Resize
    >>> from pipekit.core import ParameterError
    >>> from pipekit.learn.learner import check_targets_fit
    >>> parity = lambda p: "even" if int(p.stem) % 2 == 0 else "odd"
    >>> block = DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock, CategoryBlock), n_inp=1, get_y=[parent_label, parity],
    ...                   get_items=lambda p: get_image_files(p, folders=["train"])[::40], item_tfms=Resize(16))
    >>> dls = block.dataloaders(D.path("mnist_tiny"), bs=4, seed=0, device="cpu")   # a digit and its parity
    >>> try:
    ...     check_targets_fit("Learner", dls, loss_func=None)
    ... except ParameterError as e:
    ...     print(e)
    Learner: loss_func was not given and the data has 2 targets (CategoryBlock ['3', '7'], CategoryBlock ['even', 'odd'])...
    >>> check_targets_fit("Learner", dls, loss_func=lambda pred, digit, parity: pred.sum()) is None   # a loss given: fine
    True
    """
    _check_bce_targets(who, dls, loss_func)
    _check_regression_outputs(who, dls, loss_func, n_out)
    targets = several_targets(dls)
    if not targets:
        return
    missing = [name for name, absent in (("n_out", builds_model and n_out is None), ("loss_func", loss_func is None))
               if absent]
    if not missing:
        return
    sizes = [getattr(b, "c", None) for b in targets]
    known = all(isinstance(s, int) and not isinstance(s, bool) for s in sizes)
    shown = ", ".join(type(b).__name__ + (f" {list(b.vocab)[:5]}" if getattr(b, "vocab", None) is not None else "")
                      for b in targets)
    args = ", ".join(f"y{i}" for i in range(len(targets)))
    total = f"n_out={sum(int(s or 0) for s in sizes)}" if known else "n_out"
    example = ""
    if known and all(getattr(b, "loss_kind", None) == "cross_entropy" for b in targets):
        ends = np.cumsum([0, *sizes]).tolist()
        terms = " + ".join(f"F.cross_entropy(pred[:, {a}:{b}], y{i})" for i, (a, b) in enumerate(zip(ends, ends[1:])))
        example = f", e.g. def loss(pred, {args}): return {terms} (F is torch.nn.functional)"
    size = f"{total} (the sum of the targets' sizes {sizes})"
    loss = (f"loss_func=, a function loss(pred, {args}) that splits the model's outputs between the targets{example}; "
            f"metrics take the same arguments (pred, {args})")
    fix = (f"Pass {size} and {loss}" if len(missing) > 1 else f"Pass {size}: the model gives the targets' outputs "
           "side by side and the loss_func splits them" if missing == ["n_out"] else
           f"Pass {loss}. The model gives the targets' outputs side by side: {size}")
    raise ParameterError(f"{who}: {' and '.join(missing)} {'were' if len(missing) > 1 else 'was'} not given and the "
                         f"data has {len(targets)} targets ({shown}); the data's own {' and '.join(missing)} would "
                         f"be for the first target alone. {fix}")


#: PyTorch's binary cross-entropies, as classes and functions, that read 0/1 labels (or probabilities)
_TORCH_BCE = (nn.BCEWithLogitsLoss, nn.BCELoss)
_TORCH_BCE_FUNCTIONS = (torch.nn.functional.binary_cross_entropy_with_logits,
                        torch.nn.functional.binary_cross_entropy)


def _check_bce_targets(who: str, dls: Any, loss_func: Any) -> None:
    """Refuse a binary cross-entropy (``BCEWithLogitsLossFlat``, PyTorch's ``BCEWithLogitsLoss``/``BCELoss`` and
    their functions) on a table's regression targets that lie outside 0..1: it reads 0/1 labels (or probabilities),
    and on such numbers (ages, hours) its loss goes negative and the model learns nothing of them. Names each column
    and the values in it, and the fix: ``MSELossFlat()`` for numbers, a ``MultiCategoryBlock`` for labels."""
    from pipekit.learn.losses import BCEWithLogitsLossFlat, MSELossFlat

    bce = isinstance(loss_func, (BCEWithLogitsLossFlat, *_TORCH_BCE)) or any(loss_func is f for f in
                                                                             _TORCH_BCE_FUNCTIONS)
    tab = getattr(dls, "tabular", None)
    if not bce or tab is None or getattr(tab, "y_kind", None) != "regression" or not len(tab.train):
        return
    names = list(tab.y_names)
    frame = tab.train.targets.cast({c: float for c in names})
    bad = []
    for name in names:
        y = frame[name].to_numpy()
        y = y[np.isfinite(y)]
        if len(y) and (float(y.min()) < 0 or float(y.max()) > 1):
            bad.append(f"{name!r} (from {float(y.min()):g} to {float(y.max()):g})")
    if not bad:
        return
    lname = getattr(loss_func, "__name__", type(loss_func).__name__)
    raise ParameterError(f"{who}: loss_func={lname} reads 0/1 labels (or probabilities from 0 to 1), and the "
                         f"target column(s) {', '.join(bad)} hold numbers outside 0..1, on which its loss goes "
                         f"negative and nothing is learned. To predict these numbers use loss_func={MSELossFlat()!r} "
                         "(or leave loss_func out); for labels, give 0/1 columns with "
                         "y_block=MultiCategoryBlock(encoded=True, vocab=[...their names...])")


def _check_regression_outputs(who: str, dls: Any, loss_func: Any, n_out: Any) -> None:
    """Refuse, before a model is built, an ``n_out`` that is not a table's number of regression targets when the
    learner takes the data's default loss (``MSELossFlat``, which compares each output with its target): it would
    fail at the first batch of ``fit`` on the shapes, or broadcast one output over several targets. A ``loss_func``
    of the user's may read outputs of another number (a mean and a spread per target), and is not refused."""
    tab = getattr(dls, "tabular", None)
    if (loss_func is not None or n_out is None or tab is None or getattr(tab, "y_kind", None) != "regression"
            or isinstance(n_out, bool) or not isinstance(n_out, (int, np.integer))):
        return
    names = list(tab.y_names)
    if int(n_out) == len(names):
        return
    raise ParameterError(f"{who}: the model gives {int(n_out)} scores per item but the data has {len(names)} "
                         f"regression target(s) {names}; pass n_out={len(names)} (or leave n_out out), or give "
                         "loss_func= for another use of the outputs")
