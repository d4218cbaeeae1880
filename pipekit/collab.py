"""``from pipekit.collab import *``: the book's ``from fastai.collab import *`` (chapter 8). It gives the collaborative
filtering names, ``CollabDataLoaders``, ``collab_learner``, ``EmbeddingDotBias``, ``EmbeddingNN`` and
``unseen_report`` (how many users and items of new ratings the model never saw), with :mod:`pipekit.basics`
(``untar_data``, ``URLs``, ``pd``, ``torch``, ``Learner``, ...), so chapter 8's code runs after this import alone.
They are also in ``from pipekit.tabular.all import *``, which the book adds next; in a module of one's own, import
them from :mod:`pipekit.tabular`.

>>> from pipekit.collab import *
>>> collab_learner.__module__, CollabDataLoaders.__module__, EmbeddingDotBias.__name__, EmbeddingNN.__name__
('pipekit.tabular.collab', 'pipekit.tabular.collab', 'EmbeddingDotBias', 'EmbeddingNN')
"""
# ruff: noqa: F405  (__all__ names what the star imports give, written out for type checkers)
from pipekit.basics import *  # noqa: F403
from pipekit.tabular.collab import CollabDataLoaders, EmbeddingDotBias, EmbeddingNN, collab_learner, unseen_report

#: written out, not built from the imported modules' lists, so that type checkers read it; a test keeps it equal
#: to those lists
__all__ = ["math", "os", "random", "partial", "attrgetter", "itemgetter", "Path", "plt", "np", "pd", "torch",
           "F", "Image", "nn", "Tensor", "array", "string", "operator", "re", "subplots",
           "show_titled_image", "ProcessPoolExecutor", "GetAttr", "defaults", "progress_bar", "to_device",
           "ArrayDataset", "ArrayRecipe", "BatchContext", "BatchPipeline", "BatchTransform", "CategoryMap",
           "Categorize", "CategoryBlock", "ColReader", "ColSplitter", "DataBlock", "DataPath", "DataLoader",
           "DataLoaders", "Datasets", "FileName", "FuncSplitter", "ItemsDataset", "TfmdDatasets",
           "pad_input", "show_at", "FuncTransform", "Getter", "GrandparentSplitter", "IndexSplitter", "L",
           "MaskSplitter", "MultiCategorize", "MultiCategoryBlock", "PathFormat", "Pipe", "Pipeline",
           "PipelineStepError", "RandTransform", "RandomSplitter", "RegexLabeller", "RegressionBlock",
           "Splitter", "ListStore", "Store", "TensorStore", "TfmdLists", "TimeSplitter", "ToFloat",
           "TrainTestSplitter", "Transform", "TransformBlock", "default_device", "delegates", "fastuple",
           "first", "store_attr", "get_files", "get_image_files", "get_text_files", "parent_label",
           "range_of", "read_table", "set_seed", "show_items", "to_items", "untar_data", "URLs", "UsingAttr",
           "using_attr", "Hook", "HookCallback", "Hooks", "hook_output", "hook_outputs",
           "GradientAccumulation", "ReduceLROnPlateau", "ShowGraphCallback", "FocalLossFlat", "Precision",
           "Recall", "PrecisionMulti", "RecallMulti", "ActivationStats", "BnFreeze", "CSVLogger",
           "TensorBoardCallback", "EarlyStoppingCallback", "GradientClip", "MixedPrecision", "MixUp",
           "CutMix", "SaveModelCallback", "TrackerCallback", "EVENTS", "Callback", "CancelBackwardException",
           "CancelBatchException", "CancelEpochException", "CancelFitException", "CancelStepException",
           "CancelTrainException", "CancelValidException", "GatherPreds", "LRFinder", "ParamScheduler",
           "TimeLimit", "ProgressCallback", "Recorder", "TrainEvalCallback", "cpu_bf16_is_fast",
           "NonFiniteError", "NonFiniteInputError", "TerminateOnNaNCallback", "ExportError", "load_learner",
           "model_weights", "Learner", "ClassificationInterpretation", "Interpretation",
           "SegmentationInterpretation", "BaseLoss", "BCEWithLogitsLossFlat", "CrossEntropyLossFlat",
           "L1LossFlat", "LabelSmoothingCrossEntropy", "LabelSmoothingCrossEntropyFlat", "MSELossFlat",
           "loss_from_kind", "MAE", "MSE", "RMSE", "Accuracy", "ErrorRate", "F1Score", "FuncMetric",
           "Metric", "Perplexity", "R2Score", "RocAuc", "RocAucBinary", "RocAucMulti", "F1ScoreMulti",
           "accuracy", "accuracy_multi", "as_metric", "error_rate", "mae", "mse", "perplexity", "rmse",
           "rmspe", "exp_rmspe", "BalancedAccuracy", "CohenKappa", "MatthewsCorrCoef", "top_k_accuracy",
           "AccumMetric", "ActivationType", "skm_to_fastai", "FBeta", "Jaccard", "HammingLoss",
           "APScoreBinary", "BrierScore", "FBetaMulti", "JaccardMulti", "HammingLossMulti", "APScoreMulti",
           "BrierScoreMulti", "MSLE", "msle", "ExplainedVariance", "PearsonCorrCoef", "SpearmanCorrCoef",
           "MLP", "Module", "Embedding", "create_params", "sigmoid_range", "SigmoidRange", "to_np", "to_cpu",
           "tensor", "one_hot", "ConvBlock", "ConvLayer", "Flatten", "Lambda", "NormType", "noop",
           "sequential", "body_head_splitter", "params", "trainable_params", "simple_cnn", "SGD", "Adam",
           "OptimWrapper", "RMSProp", "Optimizer", "adam_step", "average_grad", "average_sqr_grad", "l2_reg",
           "momentum_step", "rms_prop_step", "sgd_step", "step_stat", "weight_decay", "debias", "RAdam",
           "QHAdam", "Lamb", "LAMB", "Lookahead", "ranger", "radam_step", "qhadam_step", "lamb_step",
           "UnknownArchError", "arch_spec", "build_arch", "register_arch", "registered_archs",
           "set_arch_spec", "SuggestedLRs", "combine_scheds", "minimum", "sched_cos", "sched_exp",
           "sched_lin", "sched_no", "slide", "steep", "valley", "SchedCos", "SchedExp", "SchedLin",
           "SchedNo", "SchedPoly", "combined_cos", "CollabDataLoaders", "EmbeddingDotBias", "EmbeddingNN",
           "collab_learner", "unseen_report"]
