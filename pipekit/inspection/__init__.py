"""What did a model learn? Tools that work on any backend or ensemble, as ``sklearn.inspection`` does:
permutation importance, partial dependence, contribution waterfalls, column clusters, redundant columns,
adversarial validation and feature pruning. Per-row ``contributions`` are exact for tree models and averages
of them (see :func:`contributions`).

Example:
    >>> from pipekit.inspection import permutation_importance, partial_dependence, out_of_domain
"""

from pipekit.inspection.contributions import contributions
from pipekit.inspection.explain import (PartialDependence, partial_dependence, permutation_importance,
                                        plot_importance, plot_partial_dependence, waterfall_plot)
from pipekit.inspection.features import (ColumnClusters, OutOfDomain, PrunedFeatures, cluster_columns,
                                         drop_redundant, out_of_domain, prune_features, refit)

__all__ = ["ColumnClusters", "OutOfDomain", "PartialDependence", "PrunedFeatures", "cluster_columns", "contributions",
           "drop_redundant", "out_of_domain", "partial_dependence", "permutation_importance", "plot_importance",
           "plot_partial_dependence", "prune_features", "refit", "waterfall_plot"]
