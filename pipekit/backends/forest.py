"""Random forest backend on scikit-learn: OOB score, per-tree predictions, tree-interpreter contributions,
and an export that stores the trees as arrays (no pickle).

Example:
    >>> import polars as pl, numpy as np
    >>> from pipekit.backends import RandomForest, as_data
    >>> rng = np.random.default_rng(0)
    >>> xs = pl.DataFrame({"a": rng.normal(size=200), "b": rng.integers(0, 3, 200)})
    >>> data = as_data(xs, y=(xs["a"] > 0).to_numpy())
    >>> rf = RandomForest("classification", n_estimators=20, n_jobs=1).fit(data)
    >>> mean, std = rf.tree_predictions(data)
    >>> c = rf.contributions(data)
    >>> bool(np.allclose(c.bias + c.values.sum(1), rf.predict(data)))
    True
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import polars as pl

from pipekit.backends.base import (Backend, Contributions, ExportError, TabularData, as_data, check_task,
                                 feature_frame, get_metric, register)

_NODE_FIELDS = ("left_child", "right_child", "feature", "threshold", "impurity", "n_node_samples",
                "weighted_n_node_samples", "missing_go_to_left")


def _validate_common(n_estimators: int, min_samples_leaf: int, n_jobs: int | None) -> None:
    if not isinstance(n_estimators, (int, np.integer)) or n_estimators < 1:
        raise ValueError(f"n_estimators must be an int >= 1, got {n_estimators!r}")
    if not isinstance(min_samples_leaf, (int, np.integer)) or min_samples_leaf < 1:
        raise ValueError(f"min_samples_leaf must be an int >= 1, got {min_samples_leaf!r}")
    if n_jobs is not None and (not isinstance(n_jobs, (int, np.integer)) or n_jobs == 0):
        raise ValueError(f"n_jobs must be None, -1 or a positive int, got {n_jobs!r}")


@register
class RandomForest(Backend):
    """Random forest for ``task`` "classification" or "regression".

    ``max_samples``: rows per tree (int, capped at the training size, or a fraction; None = all), the
    book's trick for big tables. ``max_features``: fraction / int / "sqrt" of features per split.
    Fitted: ``model_`` (the sklearn forest), ``oob_score_`` (default metric, accuracy / rmse, on OOB
    predictions), ``oob_predictions_``, ``valid_score_`` when ``valid`` is given.
    """

    _param_names = ("task", "n_estimators", "max_samples", "max_features", "min_samples_leaf", "oob_score",
                    "n_jobs", "seed")

    def __init__(self, task: str, n_estimators: int = 100, max_samples: int | float | None = None,
                 max_features: float | int | str | None = 0.5, min_samples_leaf: int = 5, oob_score: bool = True,
                 n_jobs: int | None = -1, seed: int | None = 0):
        self.task = check_task(task)
        _validate_common(n_estimators, min_samples_leaf, n_jobs)
        if max_samples is not None and not (
                (isinstance(max_samples, (int, np.integer)) and max_samples >= 1)
                or (isinstance(max_samples, float) and 0 < max_samples <= 1)):
            raise ValueError(f"max_samples must be None, an int >= 1 or a float in (0, 1], got {max_samples!r}")
        if not (max_features is None or max_features in ("sqrt", "log2")
                or (isinstance(max_features, float) and 0 < max_features <= 1)
                or (isinstance(max_features, (int, np.integer)) and max_features >= 1)):
            raise ValueError(f"max_features must be None, 'sqrt', 'log2', a float in (0, 1] or an int >= 1, "
                             f"got {max_features!r}")
        self.n_estimators = int(n_estimators)
        self.max_samples = max_samples
        self.max_features = max_features
        self.min_samples_leaf = int(min_samples_leaf)
        self.oob_score = bool(oob_score)
        self.n_jobs = n_jobs
        self.seed = seed

    def _make_sklearn(self, n_rows: int):
        from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

        max_samples = self.max_samples
        if isinstance(max_samples, (int, np.integer)):
            max_samples = min(int(max_samples), n_rows)
            max_samples = None if max_samples == n_rows else max_samples
        cls = RandomForestClassifier if self.task == "classification" else RandomForestRegressor
        return cls(n_estimators=self.n_estimators, max_samples=max_samples, max_features=self.max_features,
                   min_samples_leaf=self.min_samples_leaf, oob_score=self.oob_score, n_jobs=self.n_jobs,
                   random_state=self.seed)

    def fit(self, train: Any, valid: Any = None) -> "RandomForest":
        """Fit on ``train``; ``valid`` (optional) is only scored into ``valid_score_``."""
        d = as_data(train)
        self._setup(d)
        X = self.matrix(d, order="C")  # float32 C-contiguous: exactly what sklearn trees consume, no 2nd copy
        y = self.encode_y(d.y)
        with warnings.catch_warnings():
            # rows that no tree left out get NaN OOB predictions; they are excluded from oob_score_ below
            warnings.filterwarnings("ignore", message="Some inputs do not have OOB scores")
            self.model_ = self._make_sklearn(len(d)).fit(X, y)
        self.oob_score_ = None
        self.oob_predictions_ = None
        if self.oob_score:
            metric = get_metric(None, self.task)
            if self.task == "classification":
                oob = self.model_.oob_decision_function_
                keep = ~np.isnan(oob).any(1)
            else:
                oob = self.model_.oob_prediction_
                oob = oob[:, 0] if oob.ndim == 2 else oob
                keep = ~np.isnan(oob)
            self.oob_predictions_ = oob
            self.oob_score_ = metric(y[keep], oob[keep]) if keep.any() else float("nan")
        self.valid_score_ = self.score(valid) if valid is not None else None
        return self

    def _predict_raw(self, d: TabularData) -> np.ndarray:
        X = self.matrix(d, order="C")
        if self.task == "classification":
            return self.model_.predict_proba(X)
        return self.model_.predict(X)

    def tree_predictions(self, data: Any) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation over the trees of each row's prediction (the book's
        "how confident is the forest about this row" analysis). Shapes (n,) or (n, n_classes)."""
        X = self.matrix(self._data(data), order="C")
        if self.task == "classification":
            preds = np.stack([t.predict_proba(X, check_input=False) for t in self.model_.estimators_])
        else:
            preds = np.stack([t.predict(X, check_input=False) for t in self.model_.estimators_])
        return preds.mean(0), preds.std(0)

    def feature_importance(self) -> pl.DataFrame:
        """Mean decrease in impurity per input column (sums to 1), sorted descending."""
        self._check_fitted()
        return feature_frame(self.feature_names_, self.model_.feature_importances_)

    def contributions(self, data: Any) -> Contributions:
        """Tree-interpreter decomposition: for every tree, each split on the path of a row moves the node
        value; the move is credited to the split feature. Averaged over trees,
        ``bias + values.sum(axis=1) == predict(data)`` exactly (up to float rounding)."""
        d = self._data(data)
        X = self.matrix(d, order="C")
        n, F = X.shape
        K = len(self.classes_) if self.task == "classification" else 1
        contrib = np.zeros((n, F * K))
        bias = np.zeros(K)
        for est in self.model_.estimators_:
            t = est.tree_
            values = t.value[:, 0, :]  # classifier: class fractions per node; regressor: the mean
            internal = np.flatnonzero(t.children_left >= 0)
            parent = np.full(t.node_count, -1, dtype=np.int64)
            parent[t.children_left[internal]] = internal
            parent[t.children_right[internal]] = internal
            child = np.flatnonzero(parent >= 0)
            delta = values[child] - values[parent[child]]
            cols = t.feature[parent[child]][:, None] * K + np.arange(K)[None, :]
            D = np.zeros((t.node_count, F * K))
            D[child[:, None], cols] = delta
            contrib += est.decision_path(X, check_input=False) @ D
            bias += values[0]
        T = len(self.model_.estimators_)
        contrib /= T
        bias /= T
        if self.task == "classification":
            values_out = contrib.reshape(n, F, K)
            bias_out = np.broadcast_to(bias, (n, K)).copy()
            space = "probability"
        else:
            values_out = contrib
            bias_out = np.full(n, bias[0])
            space = "value"
        return Contributions(bias=bias_out, values=values_out, feature_names=list(self.feature_names_),
                             prediction=self._predict_raw(d), space=space,
                             classes=getattr(self, "classes_", None))

    # -- export ---------------------------------------------------------------------------------------
    def to_state(self) -> tuple[dict, dict[str, np.ndarray]]:
        meta = self._base_state()
        meta["oob_score"] = self.oob_score_
        meta["valid_score"] = self.valid_score_
        meta["n_features"] = len(self.feature_names_)
        arrays = trees_to_arrays(self.model_.estimators_)
        arrays["feature_importances"] = self.model_.feature_importances_
        return meta, arrays

    @classmethod
    def from_state(cls, meta: dict, arrays: dict[str, np.ndarray]) -> "RandomForest":
        obj = cls(**meta["params"])
        obj._restore_base(meta)
        obj.oob_score_ = meta.get("oob_score")
        obj.oob_predictions_ = None
        obj.valid_score_ = meta.get("valid_score")
        n_features = meta["n_features"]
        if n_features != len(obj.feature_names_):
            raise ExportError(f"the forest's n_features ({n_features!r}) differs from its {len(obj.feature_names_)} "
                              "feature names")
        sk = obj._make_sklearn(1)
        n_classes = len(obj.classes_) if obj.task == "classification" else None
        trees = trees_from_arrays(arrays, obj.task, n_features, n_classes, sk)
        sk.estimators_ = trees
        sk.estimator_ = trees[0]
        sk.n_features_in_ = n_features
        sk.n_outputs_ = 1
        if obj.task == "classification":
            sk.classes_ = np.arange(n_classes)
            sk.n_classes_ = n_classes
        obj.model_ = sk
        return obj


def trees_to_arrays(estimators: list) -> dict[str, np.ndarray]:
    """Concatenate the node tables of sklearn trees into plain arrays (one offset table)."""
    states = [e.tree_.__getstate__() for e in estimators]
    offsets = np.cumsum([0] + [s["node_count"] for s in states]).astype(np.int64)
    arrays: dict[str, np.ndarray] = {"tree_offsets": offsets,
                                     "tree_max_depth": np.array([s["max_depth"] for s in states], np.int64),
                                     "tree_values": np.concatenate([s["values"] for s in states])}
    for f in _NODE_FIELDS:
        arrays[f"tree_{f}"] = np.concatenate([s["nodes"][f] for s in states])
    return arrays


def tree_structures_from_arrays(arrays: dict[str, np.ndarray], task: str, n_features: int,
                                n_classes: int | None) -> list:
    """sklearn ``Tree`` objects from :func:`trees_to_arrays` output, after checking that every node table
    is a well-formed tree over ``n_features`` inputs.

    sklearn's compiled traversal trusts the node table (no bounds checks), so a file's child and feature
    indices are checked here: each internal node's children are later nodes of the same tree (so every
    path ends at a leaf) and its feature is an input column; leaves have no children.
    """
    from sklearn.tree._tree import Tree

    if not isinstance(n_features, int) or isinstance(n_features, bool) or n_features < 1:
        raise ExportError(f"the tree tables need a positive int n_features, got {n_features!r}")
    if task == "classification" and (not isinstance(n_classes, int) or n_classes < 1):
        raise ExportError(f"the tree tables need a positive int n_classes, got {n_classes!r}")
    k = np.array([n_classes if task == "classification" else 1], dtype=np.intp)
    template = Tree(n_features, k, 1).__getstate__()["nodes"].dtype
    missing = [f for f in template.names if f"tree_{f}" not in arrays]
    if missing:
        raise ExportError(f"the exported trees lack node fields {missing}: they were written by an incompatible "
                          "scikit-learn version; refit and export again")
    offsets = arrays.get("tree_offsets")
    if (not isinstance(offsets, np.ndarray) or offsets.ndim != 1 or offsets.dtype.kind not in "iu"
            or len(offsets) < 2 or offsets[0] != 0 or (np.diff(offsets) < 1).any()):
        raise ExportError("tree_offsets must be increasing integers from 0, one more than the number of trees")
    offsets = offsets.astype(np.int64)
    n_nodes, n_trees = int(offsets[-1]), len(offsets) - 1
    depth = arrays.get("tree_max_depth")
    values = arrays.get("tree_values")
    for name, a, n in [(f"tree_{f}", arrays[f"tree_{f}"], n_nodes) for f in template.names] + [
            ("tree_max_depth", depth, n_trees), ("tree_values", values, n_nodes)]:
        if not isinstance(a, np.ndarray) or a.dtype.kind not in "biuf" or len(a) != n:
            raise ExportError(f"{name} must be a numeric array of length {n} (from tree_offsets)")
    counts = np.diff(offsets)
    local = np.arange(n_nodes) - np.repeat(offsets[:-1], counts)
    size = np.repeat(counts, counts)
    left, right = arrays["tree_left_child"].astype(np.int64), arrays["tree_right_child"].astype(np.int64)
    feature = arrays["tree_feature"].astype(np.int64)
    leaf = left == -1
    ok = np.where(leaf, right == -1, (left > local) & (left < size) & (right > local) & (right < size)
                  & (feature >= 0) & (feature < n_features))
    if not ok.all():
        i = int(np.flatnonzero(~ok)[0])
        t = int(np.searchsorted(offsets, i, side="right") - 1)
        raise ExportError(f"tree {t} node {int(local[i])} is malformed: children ({int(left[i])}, {int(right[i])}) "
                          f"and feature {int(feature[i])} must be later nodes of the same tree (or -1 for a leaf) "
                          f"and an input column below {n_features}")
    if (depth < 0).any() or (depth >= counts).any():
        raise ExportError("tree_max_depth must be between 0 and each tree's node count")
    trees = []
    for i in range(n_trees):
        a, b = int(offsets[i]), int(offsets[i + 1])
        nodes = np.zeros(b - a, dtype=template)
        for f in template.names:
            nodes[f] = arrays[f"tree_{f}"][a:b]
        tree = Tree(n_features, k, 1)
        tree.__setstate__({"max_depth": int(depth[i]), "node_count": b - a, "nodes": nodes,
                           "values": np.ascontiguousarray(values[a:b], dtype=np.float64)})
        trees.append(tree)
    return trees


def trees_from_arrays(arrays: dict[str, np.ndarray], task: str, n_features: int, n_classes: int | None,
                      forest: Any, tree_cls: type | None = None) -> list:
    """The fitted trees of ``forest`` (sklearn estimators of ``tree_cls``, by default decision trees) from
    :func:`trees_to_arrays` output, checked by :func:`tree_structures_from_arrays`."""
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    structures = tree_structures_from_arrays(arrays, task, n_features, n_classes)
    cls = tree_cls or (DecisionTreeClassifier if task == "classification" else DecisionTreeRegressor)
    params = {p: getattr(forest, p) for p in forest.estimator_params}
    trees = []
    for tree in structures:
        est = cls(**params)
        est.tree_ = tree
        est.n_features_in_ = n_features
        est.n_outputs_ = 1
        est.max_features_ = n_features
        if task == "classification":
            est.classes_ = np.arange(n_classes)
            est.n_classes_ = n_classes
        trees.append(est)
    return trees
