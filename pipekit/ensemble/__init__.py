"""Ensembles of tabular backends and torch nets: mean, weighted (greedy selection) and stacking.

Example:
    >>> from pipekit.ensemble import MeanEnsemble, StackingEnsemble, WeightedEnsemble
"""

from pipekit.ensemble.mean import MeanEnsemble
from pipekit.ensemble.stacking import StackingEnsemble
from pipekit.ensemble.torch_tabular import TorchTabular, embeddings_as_features
from pipekit.ensemble.weighted import WeightedEnsemble

__all__ = ["MeanEnsemble", "StackingEnsemble", "TorchTabular", "WeightedEnsemble", "embeddings_as_features"]
