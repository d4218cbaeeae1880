"""Metrics of values: errors, correlations and the coefficient of determination of a regression (one or several
outputs per item), and the language model's perplexity, the exponential of its mean loss. Of several outputs per
item, the errors (``mae``, ``mse``, ``msle``) and correlations pool every value, as fastai's do; ``rmse`` is the mean
of each output's, and ``R2Score`` and ``ExplainedVariance`` the mean of each output's by default
(``multioutput='pooled'`` pools them, as fastai's)."""
from __future__ import annotations

from typing import Any

import numpy as np

from pipekit.core.errors import DataError, ParameterError
from pipekit.core.validate import Options
from pipekit.metrics.base import ArrayMetric, MeanMetric, _torch


def _diff(pred: Any, targ: Any) -> Any:
    return pred.reshape(-1).double() - targ.reshape(-1).double()


class MAE(MeanMetric):
    """Mean absolute error.

    >>> import torch
    >>> from pipekit.metrics import MAE
    >>> float(MAE()(torch.tensor([1.0, 2.0, 4.0]), torch.tensor([1.0, 3.0, 2.0])))
    1.0
    """

    greater_is_better, task, metric_name = False, "regression", "mae"
    aliases = ("mean_absolute_error",)  # scikit-learn's function
    target_kinds = ("mse",)

    def per_item(self, pred: Any, targ: Any) -> Any:
        return _diff(pred, targ).abs()


class MSE(MeanMetric):
    """Mean squared error.

    >>> import numpy as np
    >>> from pipekit.metrics import MSE
    >>> MSE().score(np.array([1.0, 3.0, 2.0]), np.array([1.0, 2.0, 4.0]))  # (0 + 1 + 4) / 3
    1.6666666666666667
    """

    greater_is_better, task, metric_name = False, "regression", "mse"
    aliases = ("mean_squared_error",)  # scikit-learn's function
    target_kinds = ("mse",)

    def per_item(self, pred: Any, targ: Any) -> Any:
        return _diff(pred, targ) ** 2


class RMSE(MSE):
    """Root mean squared error over the whole set. With several outputs per item (keypoints, multi-target
    regression) it is the mean of each output's RMSE, as scikit-learn's ``root_mean_squared_error`` gives;
    one output is the square root of the pooled MSE.

    >>> import numpy as np
    >>> from pipekit.metrics import RMSE
    >>> RMSE().score(np.array([0.0, 0.0]), np.array([3.0, 4.0]))  # sqrt((9 + 16) / 2)
    3.5355339059327378
    >>> RMSE().score(np.array([[0.0, 0.0], [0.0, 0.0]]), np.array([[3.0, 1.0], [3.0, 1.0]]))  # two outputs: (3 + 1) / 2
    2.0
    """

    metric_name, aliases = "rmse", ("root_mean_squared_error",)

    def batch_stats(self, pred: Any, targ: Any, loss: Any) -> tuple[Any, Any]:
        n = len(pred)
        d = pred.reshape(n, -1).double() - targ.reshape(n, -1).double()
        return (d ** 2).sum(0), n  # per-output sums, pooled over batches

    @property
    def value(self) -> float | None:
        count = float(getattr(self, "_count", 0))
        if not count:
            return None
        per_output = np.asarray(_torch().as_tensor(self._total).detach().cpu(), dtype=np.float64).reshape(-1) / count
        return float(np.mean([self.finalize(m) for m in per_output]))

    def _batch_value(self) -> Any:
        return _torch().as_tensor(self.value)

    def finalize(self, mean: float) -> float:
        return float(np.sqrt(mean))


class RMSPE(RMSE):
    """Root mean squared percentage error; rows with a zero target are skipped (Kaggle's definition). Every
    value is pooled (the competition scores one output).

    >>> import numpy as np
    >>> from pipekit.metrics import RMSPE
    >>> round(RMSPE().score(np.array([100.0, 200.0, 0.0]), np.array([110.0, 180.0, 5.0])), 4)  # the zero target is skipped
    0.1
    """

    metric_name = "rmspe"

    def batch_stats(self, pred: Any, targ: Any, loss: Any) -> tuple[Any, Any]:
        t = targ.reshape(-1).double()
        keep = t != 0
        return (((pred.reshape(-1).double() - t) / t.where(keep, t.new_ones(())))[keep] ** 2).sum(), keep.sum()


class ExpRMSPE(RMSPE):
    """RMSPE of ``exp(pred)`` against ``exp(target)``: the score of a model trained on the log of a target (the
    Rossmann sales), in the target's own units, as fastai's ``exp_rmspe``.

    >>> from pipekit.metrics import ExpRMSPE
    >>> import torch
    >>> m = ExpRMSPE()
    >>> round(float(m(torch.log(torch.tensor([110.0, 90.0])), torch.log(torch.tensor([100.0, 100.0])))), 4)
    0.1
    """

    metric_name = "exp_rmspe"

    def batch_stats(self, pred: Any, targ: Any, loss: Any) -> tuple[Any, Any]:
        return super().batch_stats(pred.double().exp(), targ.double().exp(), loss)


class Perplexity(MeanMetric):
    """exp(mean loss): the language model's metric, pooled over the whole set.

    >>> import torch
    >>> from pipekit.metrics import Perplexity
    >>> m = Perplexity()
    >>> m.reset()
    >>> m.accumulate(torch.zeros(4, 10), torch.zeros(4), loss=torch.tensor(2.0))  # a batch of 4 of mean loss 2
    >>> m.accumulate(torch.zeros(4, 10), torch.zeros(4), loss=torch.tensor(0.0))
    >>> round(m.value, 4)  # exp(1.0)
    2.7183
    """

    greater_is_better = False

    def batch_stats(self, pred: Any, targ: Any, loss: Any) -> tuple[Any, Any]:
        if loss is None:
            raise ParameterError("perplexity needs the loss; use it as a Learner metric")
        n = len(pred)
        return loss.detach().float() * n, n

    def finalize(self, mean: float) -> float:
        return float(np.exp(mean))


#: how a score of several outputs per item (multi-target regression) is combined: scikit-learn's 'uniform_average'
#: (each output scored alone, then the mean) and 'variance_weighted' (weighted by each output's variance), or
#: 'pooled' (every value of every output scored as one set of numbers, as fastai's flattened metrics score them)
MULTIOUTPUT = Options("uniform_average", "variance_weighted", "pooled")


class _OutputsScore(ArrayMetric):
    """A scikit-learn score of values (``sk_name`` in ``sklearn.metrics``) that scores several outputs per item as
    ``multioutput`` says (see :data:`MULTIOUTPUT`); of one output, every choice gives the same value."""

    abstract = True
    task, target_kinds = "regression", ("mse",)
    sk_name = ""
    param_constraints = {"multioutput": MULTIOUTPUT}

    def __init__(self, multioutput: str = "uniform_average"):
        self.multioutput = multioutput
        self.check_params()

    def compute(self, y_true: np.ndarray, y_pred: np.ndarray) -> float:
        import sklearn.metrics

        fn = getattr(sklearn.metrics, self.sk_name)
        if self.multioutput != "pooled":
            return float(fn(y_true, y_pred, multioutput=self.multioutput))
        if np.shape(y_true) != np.shape(y_pred):
            raise DataError(f"{self.name}: the targets of shape {np.shape(y_true)} and the predictions of shape "
                            f"{np.shape(y_pred)} do not pair value by value; give one prediction per target value")
        return float(fn(np.ravel(y_true), np.ravel(y_pred)))


class R2Score(_OutputsScore):
    """Coefficient of determination; 0.0 on a constant target, as scikit-learn's ``r2_score`` gives. With several
    outputs per item (multi-target regression) it is by default the mean of each output's R2
    (``multioutput='uniform_average'``, scikit-learn's default), so an output of large values weighs no more than
    one of small values; fastai's ``R2Score`` pools every value of every output into one R2,
    ``multioutput='pooled'`` here. Of one output both are the same.

    >>> import numpy as np
    >>> from pipekit.metrics import R2Score
    >>> R2Score().score(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 2.0]))  # 1 - 1 / 2
    0.5
    >>> y, p = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]]), np.array([[1.0, 10.0], [2.0, 20.0], [2.0, 30.0]])
    >>> R2Score().score(y, p), round(R2Score(multioutput="pooled").score(y, p), 4)  # (0.5 + 1) / 2; pooled
    (0.75, 0.9985)
    >>> R2Score().name
    'r2_score'
    """

    metric_name, aliases, sk_name = "r2_score", ("r2",), "r2_score"


class MSLE(MeanMetric):
    """Mean squared logarithmic error: the mean of ``(log(1 + pred) - log(1 + targ)) ** 2`` (fastai's ``msle``;
    scikit-learn's ``mean_squared_log_error``), for positive targets whose relative error matters.

    >>> import torch
    >>> round(float(msle(torch.tensor([1.0, 3.0]), torch.tensor([1.0, 1.0]))), 4)
    0.2402
    """

    greater_is_better, task, metric_name = False, "regression", "msle"
    target_kinds = ("mse",)

    def per_item(self, pred: Any, targ: Any) -> Any:
        return (pred.reshape(-1).double().log1p() - targ.reshape(-1).double().log1p()) ** 2


class ExplainedVariance(_OutputsScore):
    """Explained variance (scikit-learn's ``explained_variance_score``): ``1 - var(targ - pred) / var(targ)``, like
    R2 but blind to a constant offset of the predictions. With several outputs per item it is by default the mean
    of each output's (``multioutput='uniform_average'``, scikit-learn's default); fastai's ``ExplainedVariance``
    pools every value of every output, ``multioutput='pooled'`` here.

    >>> import torch
    >>> float(ExplainedVariance()(torch.tensor([2.0, 3.0, 4.0]), torch.tensor([1.0, 2.0, 3.0])))
    1.0
    """

    metric_name, aliases = "explained_variance_score", ("explained_variance",)
    sk_name = "explained_variance_score"


class PearsonCorrCoef(ArrayMetric):
    """Pearson correlation of the predictions with the targets, every value pooled (scipy's ``pearsonr``); NaN
    with scipy's warning when either is constant.

    >>> import torch
    >>> round(float(PearsonCorrCoef()(torch.tensor([1.0, 2.0, 4.0]), torch.tensor([1.0, 2.0, 3.0]))), 4)
    0.982
    """

    task, metric_name, aliases = "regression", "pearsonr", ("pearson",)
    target_kinds = ("mse",)

    def compute(self, y_true: np.ndarray, y_pred: np.ndarray) -> float:
        from scipy.stats import pearsonr

        return float(pearsonr(np.ravel(y_pred).astype(np.float64), np.ravel(y_true).astype(np.float64))[0])


class SpearmanCorrCoef(ArrayMetric):
    """Spearman rank correlation of the predictions with the targets, every value pooled (scipy's ``spearmanr``);
    ``nan_policy`` as in scipy ('propagate', 'raise' or 'omit').

    >>> import torch
    >>> float(SpearmanCorrCoef()(torch.tensor([1.0, 2.0, 4.0]), torch.tensor([1.0, 2.0, 3.0])))
    1.0
    """

    task, metric_name, aliases = "regression", "spearmanr", ("spearman",)
    target_kinds = ("mse",)
    param_constraints = {"nan_policy": Options("propagate", "raise", "omit")}

    def __init__(self, nan_policy: str = "propagate"):
        self.nan_policy = nan_policy
        self.check_params()

    def compute(self, y_true: np.ndarray, y_pred: np.ndarray) -> float:
        from scipy.stats import spearmanr

        return float(spearmanr(np.ravel(y_pred).astype(np.float64), np.ravel(y_true).astype(np.float64),
                               nan_policy=self.nan_policy)[0])


mae, mse, rmse, rmspe, exp_rmspe, perplexity, msle = MAE(), MSE(), RMSE(), RMSPE(), ExpRMSPE(), Perplexity(), MSLE()
r2_score = R2Score()
