"""Non-torch backends with one interface: ``fit(train, valid=None)``, ``predict``, ``predict_proba``,
``score``, ``feature_importance``, ``export`` / ``load_model`` (the one pipekit file format, no pickle).

Example:
    >>> from pipekit.backends import RandomForest, GBM, SklearnModel, load_model
"""

from pipekit.backends.base import Backend, Contributions, Model, load_model
from pipekit.backends.boosters import CatBoost, XGBoost, installed
from pipekit.backends.data import TabularData, as_data, encode_y
from pipekit.backends.forest import ExtraTrees, RandomForest
from pipekit.backends.gbm import GBM
from pipekit.backends.sklearn_adapter import SklearnModel, loadable_estimators

__all__ = ["Backend", "CatBoost", "Contributions", "ExtraTrees", "GBM", "Model", "RandomForest", "SklearnModel",
           "TabularData", "XGBoost", "as_data", "encode_y", "installed", "load_model", "loadable_estimators"]
