"""What every notebook of the book starts with, in one import, as fastai's star imports give it: the data and training
layers of pipekit, with the names the book's code uses unqualified (``torch``, ``nn``, ``F``, ``np``, ``pd``, ``plt``,
``partial``, ``attrgetter``, ``itemgetter``, ``Path``, ``Image``, ``math``, ``random``, ``Tensor``, ``to_device``;
chapter 4's ``array`` (NumPy's: ``array(im3)[4:10,4:10]``), ``string`` (``string.ascii_lowercase``), ``operator``,
``trainable_params`` and the plotting helpers ``subplots`` and ``show_titled_image``
(:mod:`pipekit.data.plotting`); ``re``, as chapters 5 and 11 label files with ``re.findall`` and ``re.match``), and
chapter 19's helpers as fastcore and fastprogress give them: :class:`ProcessPoolExecutor` (whose ``map`` passes more
arguments on to the function), :class:`GetAttr` and ``progress_bar`` (pipekit's bar,
:func:`pipekit.data.progress.progress_bar`: ``for b in progress_bar(dl, leave=False)`` goes through a loader, with
a bar on a terminal or in a notebook). As fastai's star imports do, they give pathlib's ``Path`` the book's ``ls()``
(:meth:`pipekit.data.DataPath.ls`), so ``Path('bears').ls()`` lists a folder of one's own as it lists the data sets'
folders, and a tensor chapter 8's ``pca(k)`` (``movie_w.pca(3)``: the rows projected on their first ``k``
principal axes).

``from pipekit.vision.all import *``, ``from pipekit.text.all import *`` and ``from pipekit.tabular.all import *``
add each application's names to these, as the book's ``from fastai.vision.all import *`` does; in a module of one's
own, import names explicitly.

>>> from pipekit.basics import *
>>> L(range(3)).map(partial(pow, 2)), F.relu(tensor([-1.0, 2.0])).tolist(), Path is type(Path()).__mro__[1]
([1, 2, 4], [0.0, 2.0], True)
>>> xb, yb = to_device((tensor([1.0]), tensor([0])), "cpu"); isinstance(xb, Tensor)
True
>>> import tempfile; folder = Path(tempfile.mkdtemp()); (folder / "b.txt").touch(); (folder / "a.txt").touch()
>>> folder.ls().attrgot("name")
['a.txt', 'b.txt']
>>> [n for n in progress_bar(range(3), leave=False)]
[0, 1, 2]
>>> torch.tensor([[1.0, 0.0], [3.0, 0.0], [5.0, 0.0]]).pca(1).abs().flatten().tolist()
[2.0, 0.0, 2.0]
>>> array([[1, 2], [3, 4]])[1:, :1].tolist(), L(enumerate(string.ascii_lowercase))[2], operator.mul(3, 4)
([[3]], (2, 'c'), 12)
>>> re.findall(r"(.+)_\\d+.jpg$", "great_pyrenees_173.jpg")
['great_pyrenees']
"""
# ruff: noqa: F405  (__all__ names what the star imports give, written out for type checkers)
import concurrent.futures
import math
import multiprocessing
import operator
import os
import random
import re
import string
import sys
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures.process import BrokenProcessPool
from functools import partial
from operator import attrgetter, itemgetter
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from numpy import array
from PIL import Image
from torch import Tensor, nn

from pipekit.core import forks
from pipekit.data import *  # noqa: F403
from pipekit.data.getters import DataPath
from pipekit.data.loader import to_device
from pipekit.data.plotting import show_titled_image, subplots
from pipekit.data.progress import progress_bar
from pipekit.data.runtime import defaults
from pipekit.learn import *  # noqa: F403


def _interactive() -> bool:
    """Whether this is an interactive session (a notebook, IPython, the Python prompt), whose functions and classes
    live in a ``__main__`` that a spawned process cannot import."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    return shell is not None or hasattr(sys, "ps1") or bool(sys.flags.interactive)


class ProcessPoolExecutor(concurrent.futures.ProcessPoolExecutor):
    """Python's process pool as the book's chapter 19 uses it (fastcore's): ``map(f, items, *args, **kwargs)`` calls
    ``partial(f, *args, **kwargs)`` on each item of the one iterable ``items``, so ``f(*args, item, **kwargs)``
    (``ex.map(collate, chunks, ds=ds)``), in the worker processes, and ``max_workers=0`` runs them in this process,
    one after another. ``f`` and the arguments
    go to the workers pickled: a function defined at the top of a module, not a lambda. An error in ``f`` is raised
    where its result is read.

    The workers are started with Python's default start method (``fork`` on Linux) unless this process has done
    parallel Polars work (loaded or used a pipekit model, or read a table), or was forked from one that had: then
    they are started with ``spawn`` (fresh interpreters that import ``f``'s module), as a forked worker would hang
    in Polars (:mod:`pipekit.core.forks`) and a spawned one can load and use models. A spawned worker imports the
    script that started the pool, so a script that starts it after such work does so under
    ``if __name__ == "__main__":``; without that guard the workers stop while starting and the error says so. In a
    notebook or at the Python prompt, whose functions a spawned worker cannot import, the default start method is
    always kept (``f`` may do anything but pipekit or Polars work there once this process has done some; put such
    an ``f`` in a module of one's own). ``mp_context=`` chooses (``multiprocessing.get_context("spawn")``).

    >>> with ProcessPoolExecutor(max_workers=0) as ex: list(ex.map(int, ["11", "101"], base=2))
    [3, 5]
    """

    def __init__(self, max_workers: int | None = None, **kwargs: Any):
        self.serial = max_workers == 0
        if kwargs.get("mp_context") is None and not _interactive() \
                and (forks.polars_pool_running() or forks.forked_with_polars_pool()):
            kwargs["mp_context"] = multiprocessing.get_context("spawn")
        context = kwargs.get("mp_context") or multiprocessing.get_context()
        self.imports_main = not self.serial and context.get_start_method() != "fork"
        if self.imports_main and getattr(multiprocessing.process.current_process(), "_inheriting", False):
            raise RuntimeError(_NO_MAIN_GUARD.format(
                what="a worker process, importing the main script as it starts, got to a ProcessPoolExecutor started "
                     "at the script's top level"))
        super().__init__(1 if self.serial else max_workers, **kwargs)

    def map(self, f: Callable[..., Any], items: Iterable[Any], *args: Any,  # type: ignore[override]
            timeout: float | None = None, chunksize: int = 1, **kwargs: Any) -> Iterator[Any]:
        call = partial(f, *args, **kwargs) if args or kwargs else f
        if self.serial:
            return map(call, items)
        try:
            results = super().map(call, items, timeout=timeout, chunksize=chunksize)
        except BrokenProcessPool as e:
            raise self._why_broken(e) from e
        return self._read(results)

    def _read(self, results: Iterator[Any]) -> Iterator[Any]:
        try:
            yield from results
        except BrokenProcessPool as e:
            raise self._why_broken(e) from e

    def _why_broken(self, e: BrokenProcessPool) -> BrokenProcessPool:
        """``e`` saying the likely cause where the workers import the main script: a top level without the guard."""
        main = _main_file()
        if not self.imports_main or main is None:
            return e
        return BrokenProcessPool(_NO_MAIN_GUARD.format(
            what=f"a worker process ended abruptly ({e}); each worker imports {main} as it starts, and one whose top "
                 "level starts this pool again stops there")
            + ". (A worker killed, by running out of memory for instance, also breaks the pool.)")


#: what a pool whose workers import the main script says when that script starts it at its top level
_NO_MAIN_GUARD = ('{what}. pipekit.basics.ProcessPoolExecutor starts its workers with \'spawn\' once this process has '
                  'done Polars work (pipekit.core.forks), and a spawned worker runs the script\'s top level: start the '
                  'pool (and the work before it) under if __name__ == "__main__":, or define the function the '
                  'workers run in a module of its own')


def _main_file() -> str | None:
    """The script run as ``__main__`` (a file, or ``-m`` module's file), or None in an interactive session."""
    main = sys.modules.get("__main__")
    file = getattr(main, "__file__", None)
    return None if file is None else repr(str(file))


class GetAttr:
    """The book's base class that passes on what an object does not have (fastcore's): an attribute this object
    lacks is read from the object in its attribute named by ``_default`` (chapter 19's ``class Callback(GetAttr):
    _default = 'learner'`` reads ``self.model`` as ``self.learner.model``); ``_xtra``, when set, lists the only names
    passed on. Names starting with ``__`` never are.

    >>> class Box(GetAttr):
    ...     _default = "inner"
    ...     def __init__(self, inner): self.inner = inner
    >>> Box("text").upper(), Box([3, 1]).count(3)
    ('TEXT', 1)
    """

    _default: str = "default"
    _xtra: list[str] | None = None

    def _passes_on(self, name: str) -> bool:
        return not name.startswith("__") and name not in ("_xtra", self._default) \
            and (self._xtra is None or name in self._xtra)

    def __getattr__(self, name: str) -> Any:
        if self._passes_on(name):
            inner = getattr(self, self._default, None)
            if inner is not None:
                return getattr(inner, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __dir__(self) -> list[str]:
        inner = getattr(self, self._default, None)
        return sorted(set(super().__dir__()) | {k for k in dir(inner) if self._passes_on(k)})


def _pca(x: Tensor, k: int = 2) -> Tensor:
    """The rows of ``x`` (centred) projected on their first ``k`` principal axes (chapter 8's ``movie_w.pca(3)``)."""
    x = x - x.mean(0)
    _, _, vh = torch.linalg.svd(x, full_matrices=False)
    return x @ vh[:k].T


if not hasattr(Tensor, "pca"):  # as fastai's star imports give it
    Tensor.pca = _pca  # type: ignore[attr-defined]
if not hasattr(Path, "ls"):  # the book's path.ls() on any path, as fastai's star imports give it
    Path.ls = DataPath.ls  # type: ignore[attr-defined]


def _to_thumb(self: Image.Image, h: int, w: int | None = None) -> Image.Image:
    """A copy of this PIL image shrunk (never enlarged) to fit in ``h`` x ``w`` (``w`` defaults to ``h``), its aspect
    kept: the course's ``Image.open('bird.jpg').to_thumb(256, 256)``."""
    im = self.copy()
    im.thumbnail((w or h, h))
    return im


if not hasattr(Image.Image, "to_thumb"):  # as fastai's star imports give it to every PIL image
    Image.Image.to_thumb = _to_thumb  # type: ignore[attr-defined]

#: written out, not built from the imported modules' lists, so that type checkers read it; a test keeps it equal
#: to those lists
__all__ = ["math", "os", "random", "partial", "attrgetter", "itemgetter", "Path", "plt", "np", "pd", "torch",
           "F", "Image", "nn", "Tensor", "array", "string", "operator", "re", "subplots",
           "show_titled_image", "ProcessPoolExecutor", "GetAttr", "defaults", "progress_bar", "to_device",
           "ArrayDataset", "ArrayRecipe", "BatchContext", "BatchPipeline", "BatchTransform", "CategoryMap",
           "Categorize", "CategoryBlock", "ColReader", "ColSplitter", "DataBlock", "DataPath", "DataLoader",
           "DataLoaders", "Datasets", "EndSplitter", "FileSplitter", "FileName", "FuncSplitter", "ItemsDataset", "TfmdDatasets",
           "pad_input", "show_at", "FuncTransform", "Getter", "GrandparentSplitter", "IndexSplitter", "L",
           "MaskSplitter", "MultiCategorize", "MultiCategoryBlock", "PathFormat", "Pipe", "Pipeline",
           "PipelineStepError", "RandTransform", "RandomSplitter", "RegexLabeller", "RegressionBlock",
           "Splitter", "ListStore", "Store", "TensorStore", "TfmdLists", "TimeSplitter", "ToFloat",
           "TrainTestSplitter", "Transform", "TransformBlock", "default_device", "delegates", "fastuple",
           "first", "store_attr", "get_files", "get_image_files", "get_text_files", "parent_label",
           "range_of", "read_table", "set_seed", "show_items", "to_items", "untar_data", "URLs", "UsingAttr",
           "using_attr", "Hook", "HookCallback", "Hooks", "hook_output", "hook_outputs",
           "dummy_eval", "model_sizes", "num_features_model", "in_channels",
           "GradientAccumulation", "ReduceLROnPlateau", "ShowGraphCallback", "FocalLossFlat", "Precision",
           "Recall", "PrecisionMulti", "RecallMulti", "ActivationStats", "BnFreeze", "CSVLogger",
           "TensorBoardCallback", "EarlyStoppingCallback", "GradientClip", "MixedPrecision", "MixUp",
           "CutMix", "SaveModelCallback", "TrackerCallback", "EVENTS", "Callback", "CancelBackwardException",
           "CancelBatchException", "CancelEpochException", "CancelFitException", "CancelStepException",
           "CancelTrainException", "CancelValidException", "GatherPreds", "LRFinder", "ParamScheduler",
           "TimeLimit", "ProgressCallback", "Recorder", "ShortEpochCallback", "TrainEvalCallback",
           "cpu_bf16_is_fast", "NonFiniteError", "NonFiniteInputError", "TerminateOnNaNCallback", "ExportError",
           "load_learner", "model_weights", "Learner", "ClassificationInterpretation", "Interpretation",
           "SegmentationInterpretation", "BaseLoss", "BCEWithLogitsLossFlat", "CrossEntropyLossFlat",
           "L1LossFlat", "LabelSmoothingCrossEntropy", "LabelSmoothingCrossEntropyFlat", "MSELossFlat",
           "loss_from_kind", "FocalLoss", "DiceLoss", "MAE", "MSE", "RMSE", "Accuracy", "ErrorRate", "F1Score", "FuncMetric",
           "Metric", "Perplexity", "R2Score", "RocAuc", "RocAucBinary", "RocAucMulti", "F1ScoreMulti",
           "accuracy", "accuracy_multi", "as_metric", "error_rate", "mae", "mse", "perplexity", "rmse",
           "rmspe", "exp_rmspe", "BalancedAccuracy", "CohenKappa", "MatthewsCorrCoef", "top_k_accuracy",
           "AccumMetric", "ActivationType", "skm_to_fastai", "FBeta", "Jaccard", "HammingLoss",
           "APScoreBinary", "BrierScore", "FBetaMulti", "JaccardMulti", "HammingLossMulti", "APScoreMulti",
           "BrierScoreMulti", "MSLE", "msle", "ExplainedVariance", "PearsonCorrCoef", "SpearmanCorrCoef",
           "MLP", "Module", "Embedding", "create_params", "sigmoid_range", "SigmoidRange", "to_np", "to_cpu",
           "tensor", "one_hot", "ConvBlock", "ConvLayer", "Flatten", "Lambda", "NormType", "BatchNorm",
           "InstanceNorm", "LinBnDrop", "noop",
           "sequential", "body_head_splitter", "params", "trainable_params", "simple_cnn", "SGD", "Adam",
           "OptimWrapper", "RMSProp", "Optimizer", "adam_step", "average_grad", "average_sqr_grad", "l2_reg",
           "momentum_step", "rms_prop_step", "sgd_step", "step_stat", "weight_decay", "debias", "RAdam",
           "QHAdam", "Lamb", "LAMB", "Lookahead", "ranger", "radam_step", "qhadam_step", "lamb_step",
           "UnknownArchError", "arch_spec", "build_arch", "register_arch", "registered_archs",
           "set_arch_spec", "SuggestedLRs", "combine_scheds", "minimum", "sched_cos", "sched_exp",
           "sched_lin", "sched_no", "slide", "steep", "valley", "SchedCos", "SchedExp", "SchedLin",
           "SchedNo", "SchedPoly", "combined_cos"]
