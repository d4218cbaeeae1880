"""Ensembles of tabular backends and torch nets: bagging, mean, weighted (greedy selection) and stacking,
and ``fit_ensemble``, which builds one within a time budget, choosing on training rows only.

Example:
    >>> from pipekit.ensemble import MeanEnsemble, StackingEnsemble, WeightedEnsemble
"""

from pipekit.ensemble.auto import Candidate, default_candidates, fit_ensemble
from pipekit.ensemble.bagged import BaggedModel
from pipekit.ensemble.mean import MeanEnsemble
from pipekit.ensemble.stacking import StackingEnsemble
from pipekit.ensemble.torch_tabular import TorchTabular, embeddings_as_features
from pipekit.ensemble.weighted import WeightedEnsemble

__all__ = ["BaggedModel", "Candidate", "MeanEnsemble", "StackingEnsemble", "TorchTabular", "WeightedEnsemble",
           "default_candidates", "embeddings_as_features", "fit_ensemble"]
