"""Every callback of the training loop: the base ``Callback``, its events and cancel exceptions, the ones
every Learner has, the built-in ones and the prediction helpers.

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

``validate``, ``get_preds`` and what is built on them (``predict``, ``tta``, ``show_results``, interpretation) run
the same events without the training phase, as fastai does; the fit and epoch events of a ``fit_only`` callback
(the built-in ones that record, schedule, save or log a fit) run in fits only, so such a pass leaves what the last
fit recorded, scheduled or saved as it was (see ``Callback``).

A callback overrides the methods for the events it cares about and reads or changes the Learner's
state through ``self.learn`` (``xb``, ``yb``, ``pred``, ``loss_grad``, ``loss``, ``epoch``, ``iter``,
``pct_train``, ``training``, ``opt``, ``model``...). The loss is there twice, as in fastai: ``loss_grad`` is
what ``backward`` differentiates, ``loss`` (its detached copy) is what the Recorder and metrics read. To change
training, a callback assigns ``loss_grad`` in ``after_loss`` (``self.learn.loss_grad = self.learn.loss_grad +
penalty``, as RNNRegularizer adds AR/TAR, which the recorded loss then leaves out); assigning ``loss`` alone only
changes what is recorded, and the Learner warns once when a training batch does that. Raising a ``Cancel*Exception`` skips the rest of that stage;
the matching ``after_cancel_*`` event runs, then the stage's ``after_*`` event. The stages inside it
are left without theirs: an epoch cancelled while training runs ``after_cancel_epoch`` and ``after_epoch``
but no ``after_train``, so a callback that undoes in ``after_train`` what it did in ``before_train``
undoes it in ``after_cancel_epoch`` too (MixUp puts the loss back, the Recorder counts the batches done).

Callbacks run in increasing ``order`` for every event, whatever order they were added in, except where one
asks to run before or after another (``run_before``/``run_after``: a class, a callback name or a list of
them, as in fastai; see ``sort_callbacks``). The built-in ones have distinct orders, so a list like
``[EarlyStoppingCallback(), SaveModelCallback()]`` behaves exactly like its reverse:

=====  ===========================  =====================================================================
order  callback                     why there
=====  ===========================  =====================================================================
 -20   TrainEvalCallback            train/eval mode and ``pct_train`` are set before anything reads them
 -19   TimeLimit                    shortens the schedule to the time left before anything reads ``pct_train``
 -15   BnFreeze                     frozen batch-norm layers go back to eval mode after the switch
 -10   ModelResetter                (pipekit.text) clears the recurrent state after the mode switch
  -8   HookCallback                 (base of ActivationStats, for your own hooks) armed before the forward pass
  -7   ActivationStats              its hooks are armed before the forward pass
  -5   RNNRegularizer               (pipekit.text) adds AR/TAR to the loss before anyone reads it
   0   (default for user callbacks)
   5   FiniteInputsCheck            refuses NaN/inf inputs before the forward pass (get_preds only)
   8   GradientAccumulation         skips the step (and keeps the gradients) until enough items are seen
  10   MixedPrecision               autocast is closed and the loss unscaled before anyone reads them
  15   TerminateOnNaNCallback       checks the unscaled loss before backward and the weights after step; stops the
                                   fit in after_batch, after your own callbacks (order 0) had that batch
  20   GradientClip                 clips the gradients MixedPrecision has unscaled
  30   MixUp                        mixes the batch after the mode switches, before the forward pass
  31   CutMix                       pastes boxes between the batch's images, as MixUp mixes them
  50   Recorder                     writes the epoch's losses and metrics
  55   LRFinder                     reads the loss the Recorder saw
  57   CSVLogger                    writes the row the Recorder wrote to a CSV file
  58   TensorBoardCallback          writes losses, metrics, learning rates and a batch to TensorBoard
  60   ProgressCallback             prints the row the Recorder wrote
  61   ShowGraphCallback            draws the losses the Recorder wrote
  62   ParamScheduler               sets lr/mom before each training batch
  63   TrackerCallback              (base of the three below, for user subclasses)
  64   EarlyStoppingCallback        asks to stop; the stop only takes effect once the epoch is over
  65   ReduceLROnPlateau            lowers the lr before the checkpoint is written, so checkpoints hold it
  66   SaveModelCallback            saves the epoch's model (and checkpoints with the trackers' state)
  70   GatherPreds                  collects predictions (get_preds only)
  80   ShortEpochCallback           stops the phase once every other callback has had its last batch
=====  ===========================  =====================================================================

Callbacks are components: their parameters are their ``__init__`` arguments, and what they learn while
training lives in attributes ending in ``_`` (a tracker's ``best_``, early stopping's ``wait_``). That
state is what ``state_dict()`` returns: ``learn.save`` stores it and a fit resumed from that checkpoint
(``start_epoch``) hands it back through ``load_state_dict`` once ``before_fit`` has run. ``learn.save``
takes each state as it is when called: a checkpoint written in ``after_epoch`` should come from a
callback ordered after those whose state matters (``SaveModelCallback(every_epoch=True)``, at 66, is).

>>> class CountBatches(Callback):
...     def before_fit(self): self.n_ = 0
...     def after_batch(self): self.n_ += 1
"""
from pipekit.learn.callbacks.builtin import (
    ActivationStats, BnFreeze, EarlyStoppingCallback, GradientAccumulation, GradientClip, LRFinder, MixedPrecision,
    ParamScheduler, ReduceLROnPlateau, SaveModelCallback, TimeLimit, TrackerCallback, cpu_bf16_is_fast,
)
from pipekit.learn.callbacks.core import (
    EVENTS, LEARNER_STATE, Callback, CancelBackwardException, CancelBatchException, CancelEpochException,
    CancelFitException, CancelStepException, CancelTrainException, CancelValidException, sort_callbacks,
)
from pipekit.learn.callbacks.loggers import CSVLogger, ShowGraphCallback, TensorBoardCallback
from pipekit.learn.callbacks.mixing import CutMix, MixUp
from pipekit.learn.callbacks.nonfinite import (
    FiniteInputsCheck, NonFiniteError, NonFiniteInputError, TerminateOnNaNCallback, check_finite_weights,
)
from pipekit.learn.callbacks.training import (
    GatherPreds, ProgressCallback, Recorder, ShortEpochCallback, TrainEvalCallback,
)

__all__ = [
    "EVENTS", "LEARNER_STATE", "sort_callbacks", "Callback", "CancelBackwardException", "CancelBatchException", "CancelEpochException",
    "CancelFitException", "CancelStepException", "CancelTrainException", "CancelValidException",
    "ActivationStats", "BnFreeze", "CSVLogger", "TensorBoardCallback", "EarlyStoppingCallback", "GradientClip", "LRFinder", "TimeLimit", "MixedPrecision", "MixUp", "CutMix",
    "GradientAccumulation", "ReduceLROnPlateau", "ShowGraphCallback", "ParamScheduler", "SaveModelCallback", "TrackerCallback", "FiniteInputsCheck", "NonFiniteError",
    "NonFiniteInputError", "TerminateOnNaNCallback", "check_finite_weights", "GatherPreds", "ProgressCallback",
    "Recorder", "ShortEpochCallback", "TrainEvalCallback", "cpu_bf16_is_fast",
]
