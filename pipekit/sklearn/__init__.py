"""pipekit models in scikit-learn's tools: ``TabularClassifier`` and ``TabularRegressor`` put the table procs
and any pipekit backend (GBM, random forest, tabular net, ensembles) behind scikit-learn's estimator contract.

>>> from pipekit.sklearn import TabularClassifier, TabularRegressor
"""
from pipekit.sklearn.estimators import TabularClassifier, TabularRegressor

__all__ = ["TabularClassifier", "TabularRegressor"]
