"""Ensembles of tabular backends (and torch nets) plus tools that explain what they learned.

Example:
    >>> from pipekit.ensemble import WeightedEnsemble, MeanEnsemble, StackingEnsemble
"""

from pipekit.ensemble.mean import MeanEnsemble
from pipekit.ensemble.stacking import StackingEnsemble
from pipekit.ensemble.weighted import WeightedEnsemble

__all__ = ["MeanEnsemble", "StackingEnsemble", "WeightedEnsemble"]
