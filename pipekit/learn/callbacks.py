"""The callback system: events of the training loop, cancel exceptions, and the base ``Callback``.

The Learner calls, in order::

    before_fit
      before_epoch
        before_train
          before_batch  after_pred  after_loss  before_backward  after_backward
          before_step  after_step  after_batch            (per training batch)
        after_train
        before_validate
          before_batch  after_pred  after_loss  after_batch   (per validation batch)
        after_validate
      after_epoch
    after_fit

A callback overrides the methods for the events it cares about and reads or changes the Learner's
state through ``self.learn`` (``xb``, ``yb``, ``pred``, ``loss``, ``epoch``, ``iter``, ``pct_train``,
``training``, ``opt``, ``model``...). Raising a ``Cancel*Exception`` skips the rest of that stage;
the matching ``after_cancel_*`` event runs, then the stage's ``after_*`` event.

Callbacks run in increasing ``order`` for every event, whatever order they were added in. The
built-in ones have distinct orders, so a list like ``[EarlyStoppingCallback(), SaveModelCallback()]``
behaves exactly like its reverse:

=====  ===========================  =====================================================================
order  callback                     why there
=====  ===========================  =====================================================================
 -20   TrainEvalCallback            train/eval mode and ``pct_train`` are set before anything reads them
 -10   ModelResetter                (pipekit.text) clears the recurrent state after the mode switch
  -7   ActivationStats              its hooks are armed before the forward pass
  -5   RNNRegularizer               (pipekit.text) adds AR/TAR to the loss before anyone reads it
   0   (default for user callbacks)
   5   FiniteInputsCheck            refuses NaN/inf inputs before the forward pass (get_preds only)
  10   MixedPrecision               autocast is closed and the loss unscaled before anyone reads them
  15   TerminateOnNaNCallback       checks the unscaled loss before backward and the weights after step
  20   GradientClip                 clips the gradients MixedPrecision has unscaled
  30   MixUp                        mixes the batch after the mode switches, before the forward pass
  50   Recorder                     writes the epoch's losses and metrics
  55   LRFinder                     reads the loss the Recorder saw
  60   ProgressCallback             prints the row the Recorder wrote
  62   ParamScheduler               sets lr/mom before each training batch
  63   TrackerCallback              (base of the two below, for user subclasses)
  64   EarlyStoppingCallback        asks to stop; the stop only takes effect once the epoch is over
  65   SaveModelCallback            saves the epoch's model (and checkpoints with the trackers' state)
  70   GatherPreds                  collects predictions (get_preds only)
=====  ===========================  =====================================================================

A callback that keeps state across epochs returns it from ``state_dict()`` (plain numbers, lists,
tensors): ``learn.save`` stores it and a fit resumed from that checkpoint (``start_epoch``) hands it
back through ``load_state_dict`` once ``before_fit`` has run. ``learn.save`` takes each state as it is
when called: a checkpoint written in ``after_epoch`` should come from a callback ordered after those
whose state matters (``SaveModelCallback(every_epoch=True)``, at 65, is).

>>> class CountBatches(Callback):
...     def before_fit(self): self.n = 0
...     def after_batch(self): self.n += 1
"""
from __future__ import annotations

import re
from typing import Any

__all__ = [
    "Callback", "EVENTS", "CancelFitException", "CancelEpochException", "CancelTrainException",
    "CancelValidException", "CancelBatchException", "CancelBackwardException", "CancelStepException",
]

EVENTS: tuple[str, ...] = (
    "before_fit", "before_epoch", "before_train", "before_batch", "after_pred", "after_loss",
    "before_backward", "after_backward", "before_step", "after_step", "after_cancel_batch", "after_batch",
    "after_cancel_train", "after_train", "before_validate", "after_cancel_validate", "after_validate",
    "after_cancel_epoch", "after_epoch", "after_cancel_fit", "after_fit",
)


class CancelFitException(Exception):
    """Stop training now (``after_cancel_fit`` then ``after_fit`` still run).

    With ``error``, ``fit`` raises that error once those events have run: the callbacks clean up (the
    progress bar, MixUp's loss, the best checkpoint) and the caller still sees why training stopped.
    """

    def __init__(self, *args: Any, error: BaseException | None = None):
        super().__init__(*args)
        self.error = error


class CancelEpochException(Exception):
    """Skip the rest of this epoch."""


class CancelTrainException(Exception):
    """Skip the rest of this epoch's training phase."""


class CancelValidException(Exception):
    """Skip this epoch's validation phase."""


class CancelBatchException(Exception):
    """Skip the rest of this batch (e.g. no loss/backward/step)."""


class CancelBackwardException(Exception):
    """Skip the backward pass for this batch."""


class CancelStepException(Exception):
    """Skip the optimiser step for this batch."""


def _snake(name: str) -> str:
    name = re.sub(r"Callback$", "", name) or name
    s1 = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", s1).lower()


class Callback:
    """Base class for callbacks.

    ``order`` sorts callbacks (lower runs first); ``run_train``/``run_valid`` say in which phases the
    per-batch and phase events run. After ``learn.add_cb(cb)``, the callback is reachable as
    ``learn.<name>`` where ``name`` is the snake-case class name without "Callback"
    (``SaveModelCallback`` -> ``learn.save_model``).
    """

    order: int = 0
    run_train: bool = True
    run_valid: bool = True
    learn: Any = None

    @property
    def name(self) -> str:
        return _snake(type(self).__name__)

    def state_dict(self) -> dict[str, Any]:
        """What this callback must carry over when a checkpointed fit is resumed (default: nothing)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Take back ``state_dict()``'s values (called after ``before_fit`` of a resumed fit)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
