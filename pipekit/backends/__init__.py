"""Non-torch tabular backends with one interface: ``fit(train, valid=None)``, ``predict``, ``predict_proba``,
``score``, ``feature_importance``, ``export``/``load_model`` (no pickle).

Example:
    >>> from pipekit.backends import RandomForest, GBM, load_model
"""

from pipekit.backends.base import (METRICS, Backend, Contributions, Metric, TabularData, as_data, get_metric,
                                 load_model)
from pipekit.backends.forest import RandomForest
from pipekit.backends.gbm import GBM
from pipekit.backends.sklearn_adapter import SklearnModel

__all__ = ["Backend", "Contributions", "GBM", "METRICS", "Metric", "RandomForest", "SklearnModel", "TabularData",
           "as_data", "get_metric", "load_model"]
