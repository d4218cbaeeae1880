"""Non-torch tabular backends with one interface: ``fit(train, valid=None)``, ``predict``, ``predict_proba``,
``score``, ``feature_importance``, ``export``/``load_model`` (no pickle).

Example:
    >>> from pipekit.models import RandomForest, GBM, load_model
"""

from pipekit.models.base import (METRICS, Backend, Contributions, Metric, TabularData, as_data, get_metric,
                                 load_model)
from pipekit.models.forest import RandomForest
from pipekit.models.gbm import GBM
from pipekit.models.sklearn_adapter import SklearnModel

__all__ = ["Backend", "Contributions", "GBM", "METRICS", "Metric", "RandomForest", "SklearnModel", "TabularData",
           "as_data", "get_metric", "load_model"]
