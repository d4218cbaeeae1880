"""Ensembles of tabular backends (and torch nets) plus tools that explain what they learned.

Example:
    >>> from pipekit.ensemble import WeightedEnsemble, permutation_importance, partial_dependence
"""

from pipekit.ensemble.features import (ColumnClusters, OutOfDomain, PrunedFeatures, cluster_columns,
                                       drop_redundant, out_of_domain, prune_features)
from pipekit.ensemble.interpret import (PartialDependence, partial_dependence, permutation_importance,
                                        plot_importance, plot_partial_dependence, waterfall_plot)
from pipekit.ensemble.mean import MeanEnsemble
from pipekit.ensemble.stacking import StackingEnsemble
from pipekit.ensemble.torch_tabular import TorchTabular, embeddings_as_features
from pipekit.ensemble.weighted import WeightedEnsemble

__all__ = ["ColumnClusters", "MeanEnsemble", "OutOfDomain", "PartialDependence", "PrunedFeatures",
           "StackingEnsemble", "TorchTabular", "WeightedEnsemble", "cluster_columns", "drop_redundant", "embeddings_as_features", "out_of_domain",
           "partial_dependence", "permutation_importance", "plot_importance", "plot_partial_dependence",
           "prune_features", "waterfall_plot"]
