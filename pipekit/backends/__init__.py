"""Non-torch backends with one interface: ``fit(train, valid=None)``, ``predict``, ``predict_proba``,
``score``, ``feature_importance``, ``export`` / ``load_model`` (the one pipekit file format, no pickle).

Example:
    >>> from pipekit.backends import RandomForest, GBM, SklearnModel, load_model
"""

from pipekit.backends.base import Backend, Contributions, Model, load_model
from pipekit.backends.data import TabularData, as_data, encode_y
from pipekit.backends.forest import RandomForest
from pipekit.backends.gbm import GBM
from pipekit.backends.sklearn_adapter import SklearnModel, loadable_estimators

__all__ = ["Backend", "Contributions", "GBM", "Model", "RandomForest", "SklearnModel", "TabularData", "as_data",
           "encode_y", "load_model", "loadable_estimators"]
