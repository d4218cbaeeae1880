"""pipekit.learn: one Learner for every torch model, with callbacks, schedules, metrics, losses and safe export.

>>> from pipekit.learn import Learner, simple_cnn, body_head_splitter, accuracy, register_arch, load_learner
"""
from pipekit.core.errors import ExportError
from pipekit.learn.callbacks import (
    EVENTS, ActivationStats, Callback, BnFreeze, CSVLogger, CancelBackwardException, CancelBatchException, CancelEpochException,
    CancelFitException, CancelStepException, CancelTrainException, CancelValidException, EarlyStoppingCallback,
    GatherPreds, GradientAccumulation, GradientClip, LRFinder, MixedPrecision, MixUp, NonFiniteError, NonFiniteInputError,
    ParamScheduler, ProgressCallback, Recorder, ReduceLROnPlateau, SaveModelCallback, ShowGraphCallback,
    ShortEpochCallback, TerminateOnNaNCallback, TimeLimit, TrackerCallback,
    TensorBoardCallback, TrainEvalCallback, CutMix, cpu_bf16_is_fast,
)
from pipekit.learn.export import load_learner, model_weights
from pipekit.learn.hooks import (Hook, HookCallback, Hooks, dummy_eval, hook_output, hook_outputs, in_channels, model_sizes,
                                  num_features_model)
from pipekit.learn.interpret import ClassificationInterpretation, Interpretation, SegmentationInterpretation
from pipekit.learn.learner import Learner
from pipekit.learn.losses import (
    BaseLoss, BCEWithLogitsLossFlat, CrossEntropyLossFlat, DiceLoss, FocalLoss, FocalLossFlat, L1LossFlat,
    LabelSmoothingCrossEntropy, LabelSmoothingCrossEntropyFlat, MSELossFlat, loss_from_kind,
)
from pipekit.learn.nets import (
    MLP, BatchNorm, ConvBlock, ConvLayer, Embedding, Flatten, InstanceNorm, Lambda, LinBnDrop, Module, NormType,
    SigmoidRange, body_head_splitter, noop,
    create_params, one_hot, params, sequential, sigmoid_range, simple_cnn, tensor, to_cpu, to_np, trainable_params,
)
from pipekit.learn.optim import (
    LAMB, SGD, Adam, Lamb, Lookahead, Optimizer, OptimWrapper, QHAdam, RAdam, RMSProp, adam_step, average_grad,
    average_sqr_grad, debias, l2_reg, lamb_step, momentum_step, qhadam_step, radam_step, ranger, rms_prop_step, sgd_step,
    step_stat, weight_decay,
)
from pipekit.learn.registry import (
    UnknownArchError, arch_spec, build_arch, register_arch, registered_archs, set_arch_spec,
)
from pipekit.learn.schedule import (
    SchedCos, SchedExp, SchedLin, SchedNo, SchedPoly, SuggestedLRs, combine_scheds, combined_cos, minimum, sched_cos,
    sched_exp, sched_lin, sched_no, slide, steep, valley,
)
# the metrics users import from here are pipekit's one set (pipekit.metrics)
from pipekit.metrics import (
    MAE, MSE, RMSE, Accuracy, ErrorRate, F1Score, F1ScoreMulti, FuncMetric, Metric, Perplexity, Precision,
    PrecisionMulti, R2Score, Recall, RecallMulti, RocAuc, RocAucBinary, RocAucMulti, accuracy, accuracy_multi, as_metric, error_rate, exp_rmspe, mae, mse, perplexity, rmse,
    rmspe, BalancedAccuracy, CohenKappa, MatthewsCorrCoef, top_k_accuracy, AccumMetric, ActivationType, skm_to_fastai, FBeta, Jaccard,
    HammingLoss, APScoreBinary, BrierScore, FBetaMulti, JaccardMulti, HammingLossMulti, APScoreMulti, BrierScoreMulti,
    MSLE, msle, ExplainedVariance, PearsonCorrCoef, SpearmanCorrCoef,
)

__all__ = [
    "Hook", "HookCallback", "Hooks", "hook_output", "hook_outputs", "dummy_eval", "model_sizes", "num_features_model",
    "in_channels", "GradientAccumulation", "ReduceLROnPlateau", "ShowGraphCallback", "FocalLossFlat", "Precision", "Recall",
    "PrecisionMulti", "RecallMulti", "ActivationStats", "BnFreeze", "CSVLogger", "TensorBoardCallback", "EarlyStoppingCallback", "GradientClip", "MixedPrecision", "MixUp", "CutMix", "SaveModelCallback",
    "TrackerCallback", "EVENTS", "Callback", "CancelBackwardException", "CancelBatchException",
    "CancelEpochException", "CancelFitException", "CancelStepException", "CancelTrainException",
    "CancelValidException", "GatherPreds", "LRFinder", "ParamScheduler", "TimeLimit", "ProgressCallback", "Recorder",
    "ShortEpochCallback",
    "TrainEvalCallback", "cpu_bf16_is_fast", "NonFiniteError", "NonFiniteInputError", "TerminateOnNaNCallback",
    "ExportError", "load_learner", "model_weights", "Learner", "ClassificationInterpretation", "Interpretation",
    "SegmentationInterpretation",
    "BaseLoss", "BCEWithLogitsLossFlat", "CrossEntropyLossFlat", "L1LossFlat", "LabelSmoothingCrossEntropy",
    "LabelSmoothingCrossEntropyFlat", "MSELossFlat", "loss_from_kind", "FocalLoss", "DiceLoss",
    "MAE", "MSE", "RMSE", "Accuracy", "ErrorRate", "F1Score", "FuncMetric", "Metric", "Perplexity", "R2Score",
    "RocAuc", "RocAucBinary", "RocAucMulti", "F1ScoreMulti", "accuracy", "accuracy_multi", "as_metric", "error_rate", "mae", "mse", "perplexity",
    "rmse", "rmspe", "exp_rmspe", "BalancedAccuracy", "CohenKappa", "MatthewsCorrCoef", "top_k_accuracy",
    "AccumMetric", "ActivationType", "skm_to_fastai", "FBeta", "Jaccard", "HammingLoss", "APScoreBinary", "BrierScore", "FBetaMulti",
    "JaccardMulti", "HammingLossMulti", "APScoreMulti", "BrierScoreMulti", "MSLE", "msle", "ExplainedVariance",
    "PearsonCorrCoef", "SpearmanCorrCoef", "MLP", "Module", "Embedding", "create_params", "sigmoid_range", "SigmoidRange", "to_np", "to_cpu", "tensor", "one_hot", "ConvBlock", "ConvLayer", "Flatten", "Lambda", "NormType", "BatchNorm", "InstanceNorm", "LinBnDrop", "noop", "sequential", "body_head_splitter", "params", "trainable_params", "simple_cnn",
    "SGD", "Adam", "OptimWrapper", "RMSProp", "Optimizer", "adam_step", "average_grad", "average_sqr_grad", "l2_reg",
    "momentum_step", "rms_prop_step", "sgd_step", "step_stat", "weight_decay", "debias", "RAdam", "QHAdam", "Lamb", "LAMB",
    "Lookahead", "ranger", "radam_step", "qhadam_step", "lamb_step",
    "UnknownArchError", "arch_spec", "build_arch", "register_arch", "registered_archs", "set_arch_spec",
    "SuggestedLRs", "combine_scheds", "minimum", "sched_cos", "sched_exp", "sched_lin", "sched_no", "slide", "steep", "valley",
    "SchedCos", "SchedExp", "SchedLin", "SchedNo", "SchedPoly", "combined_cos",
]
