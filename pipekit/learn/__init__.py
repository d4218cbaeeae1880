"""pipekit.learn: one Learner for every torch model, with callbacks, schedules, metrics, losses and safe export.

>>> from pipekit.learn import Learner, simple_cnn, body_head_splitter, accuracy, register_arch, load_learner
"""
from pipekit.learn.builtin_callbacks import (
    ActivationStats, EarlyStoppingCallback, GradientClip, MixedPrecision, MixUp, SaveModelCallback, TrackerCallback,
)
from pipekit.learn.callbacks import (
    EVENTS, Callback, CancelBackwardException, CancelBatchException, CancelEpochException, CancelFitException,
    CancelStepException, CancelTrainException, CancelValidException,
)
from pipekit.learn.export import ExportError, load_learner
from pipekit.learn.inference import GatherPreds
from pipekit.learn.interpret import ClassificationInterpretation, Interpretation
from pipekit.learn.learner import Learner
from pipekit.learn.losses import (
    LOSSES, BaseLoss, BCEWithLogitsLossFlat, CrossEntropyLossFlat, L1LossFlat, LabelSmoothingCrossEntropy,
    LabelSmoothingCrossEntropyFlat, MSELossFlat, loss_from_kind, register_loss,
)
from pipekit.learn.metrics import (
    AccumMetric, AvgMetric, F1Score, Metric, Perplexity, R2Score, RocAuc, RocAucBinary, ValueMetric, accuracy,
    accuracy_multi, error_rate, mae, mse, perplexity, rmse,
)
from pipekit.learn.nets import MLP, ConvBlock, body_head_splitter, params, simple_cnn
from pipekit.learn.nonfinite import NonFiniteError, NonFiniteInputError, TerminateOnNaNCallback
from pipekit.learn.optim import SGD, Adam, OptimWrapper, RMSProp
from pipekit.learn.recorder import ProgressCallback, Recorder, TrainEvalCallback
from pipekit.learn.registry import (
    UnknownArchError, arch_spec, build_arch, register_arch, registered_archs, set_arch_spec,
)
from pipekit.learn.schedule import (
    LRFinder, ParamScheduler, SuggestedLRs, combine_scheds, minimum, sched_cos, sched_exp, sched_lin, sched_no,
    steep, valley,
)

__all__ = [
    "ActivationStats", "EarlyStoppingCallback", "GradientClip", "MixedPrecision", "MixUp", "SaveModelCallback",
    "TrackerCallback",
    "EVENTS", "Callback", "CancelBackwardException", "CancelBatchException", "CancelEpochException",
    "CancelFitException", "CancelStepException", "CancelTrainException", "CancelValidException",
    "ExportError", "load_learner", "GatherPreds", "Learner", "ClassificationInterpretation", "Interpretation",
    "LOSSES", "BaseLoss", "BCEWithLogitsLossFlat", "CrossEntropyLossFlat", "L1LossFlat", "LabelSmoothingCrossEntropy",
    "LabelSmoothingCrossEntropyFlat", "MSELossFlat", "loss_from_kind", "register_loss",
    "AccumMetric", "AvgMetric", "F1Score", "Metric", "Perplexity", "R2Score", "RocAuc", "RocAucBinary", "ValueMetric",
    "accuracy", "accuracy_multi", "error_rate", "mae", "mse", "perplexity", "rmse",
    "NonFiniteError", "NonFiniteInputError", "TerminateOnNaNCallback",
    "MLP", "ConvBlock", "body_head_splitter", "params", "simple_cnn",
    "SGD", "Adam", "OptimWrapper", "RMSProp",
    "ProgressCallback", "Recorder", "TrainEvalCallback",
    "UnknownArchError", "arch_spec", "build_arch", "register_arch", "registered_archs", "set_arch_spec",
    "LRFinder", "ParamScheduler", "SuggestedLRs", "combine_scheds", "minimum", "sched_cos", "sched_exp",
    "sched_lin", "sched_no", "steep", "valley",
]
