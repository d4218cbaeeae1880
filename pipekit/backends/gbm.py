"""Gradient boosting backend on LightGBM: native categorical splits on the Categorify codes, early
stopping on the valid split, gain/split importance, TreeSHAP contributions, export as LightGBM's own
model text (no pickle).

Example:
    >>> import polars as pl, numpy as np
    >>> from pipekit.backends import GBM, as_data
    >>> rng = np.random.default_rng(0)
    >>> xs = pl.DataFrame({"a": rng.normal(size=400), "c": rng.integers(0, 4, 400)})
    >>> data = as_data(xs, y=xs["a"].to_numpy() * 2 + xs["c"].to_numpy(), cat_names=["c"])
    >>> gbm = GBM("regression", n_estimators=300, learning_rate=0.2, min_child_samples=5, n_jobs=1)
    >>> gbm = gbm.fit(data.take(np.arange(300)), data.take(np.arange(300, 400)))
    >>> gbm.score(data) < 0.5
    True
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import polars as pl

from pipekit.backends.base import (N_JOBS, NAME, POSITIVE_INT, TASK, TIME_LIMIT, Booster, Contributions,
                                   feature_frame)
from pipekit.backends.data import TabularData
from pipekit.core.errors import ExportError
from pipekit.core.validate import Interval, Is, Options, check

FRACTION = Interval(0, 1, closed="right")


class GBM(Booster):
    """LightGBM model for ``task`` "classification" or "regression".

    Category-code columns (the split's ``cat_names`` and their ``_na`` flags) are passed as LightGBM
    categorical features when ``native_categorical`` is True. With a ``valid`` split, training stops after
    ``early_stopping_rounds`` rounds without improvement and ``best_iteration_`` is used for prediction.
    ``time_limit``: seconds of fitting, after which boosting stops (the rounds done are kept, the best of them
    when it stops early). ``params`` adds or overrides raw LightGBM parameters.
    Fitted: ``booster_``, ``best_iteration_``, ``evals_result_``, ``stopped_on_time_``, ``valid_score_``.
    """

    model_attr = "booster_"
    imports = ("lightgbm",)
    param_constraints = {
        "task": TASK, "n_estimators": POSITIVE_INT, "learning_rate": Interval(0, None, closed="neither"),
        "num_leaves": Interval(2, None, integer=True), "min_child_samples": Interval(0, None, integer=True),
        "subsample": FRACTION, "colsample": FRACTION, "reg_lambda": Interval(0, None),
        "early_stopping_rounds": Interval(1, None, integer=True, none_ok=True), "native_categorical": Options(True, False),
        "time_limit": TIME_LIMIT, "n_jobs": N_JOBS, "seed": Interval(None, None, integer=True),
        "params": Is(lambda v: v is None or isinstance(v, dict), "None or a dict of LightGBM parameters"), "name": NAME}

    def __init__(self, task: str, n_estimators: int = 1000, learning_rate: float = 0.05, num_leaves: int = 31,
                 min_child_samples: int = 20, subsample: float = 1.0, colsample: float = 1.0,
                 reg_lambda: float = 0.0, early_stopping_rounds: int | None = 50, native_categorical: bool = True,
                 time_limit: float | None = None, n_jobs: int | None = -1, seed: int = 0, params: dict | None = None,
                 name: str | None = None):
        self.task, self.n_estimators, self.learning_rate, self.num_leaves = task, n_estimators, learning_rate, num_leaves
        self.min_child_samples, self.subsample, self.colsample, self.reg_lambda = (min_child_samples, subsample,
                                                                                   colsample, reg_lambda)
        self.early_stopping_rounds, self.native_categorical = early_stopping_rounds, native_categorical
        self.time_limit = time_limit
        self.n_jobs, self.seed, self.params, self.name = n_jobs, seed, params, name
        self.check_params()

    def lgb_params(self) -> dict[str, Any]:
        """The LightGBM parameter dict this model trains with."""
        if self.task == "regression":
            obj: dict[str, Any] = {"objective": "regression"}
        elif len(self.classes_) == 2:
            obj = {"objective": "binary"}
        else:
            obj = {"objective": "multiclass", "num_class": len(self.classes_)}
        p = {**obj, "learning_rate": self.learning_rate, "num_leaves": self.num_leaves,
             "min_child_samples": self.min_child_samples, "lambda_l2": self.reg_lambda,
             "feature_fraction": self.colsample, "seed": self.seed, "deterministic": True,
             "num_threads": 0 if self.n_jobs in (None, -1) else int(self.n_jobs), "verbosity": -1,
             "force_col_wise": True}
        if self.subsample < 1:
            p.update(bagging_fraction=self.subsample, bagging_freq=1)
        p.update(self.params or {})
        return p

    def _fit(self, d: TabularData, valid: TabularData | None) -> None:
        deadline = self._deadline()  # the time counts from here, LightGBM's first import included
        import lightgbm as lgb

        cats = [i for i, c in enumerate(self.feature_names_) if c in self.cat_features_] \
            if self.native_categorical else []
        names = [f"f{i}" for i in range(len(self.feature_names_))]  # LightGBM refuses some characters in names
        # Fortran order: LightGBM reads column-major float32 without converting it again
        ds = lgb.Dataset(self.matrix(d, order="F"), label=self.encode_y(d.y), categorical_feature=cats,
                         feature_name=names, free_raw_data=True)
        valid_sets, callbacks = [], []
        self.evals_result_: dict[str, Any] = {}
        if valid is not None:
            valid_sets = [lgb.Dataset(self.matrix(valid, order="F"), label=self.encode_y(valid.y), reference=ds,
                                      categorical_feature=cats, feature_name=names)]
            callbacks.append(lgb.record_evaluation(self.evals_result_))
            if self.early_stopping_rounds:
                callbacks.append(lgb.early_stopping(self.early_stopping_rounds, verbose=False))
        if deadline is not None:
            callbacks.append(_StopAt(deadline, self, best=valid is not None and bool(self.early_stopping_rounds)))
        self.booster_ = lgb.train(self.lgb_params(), ds, num_boost_round=self.n_estimators, valid_sets=valid_sets,
                                  valid_names=["valid"] if valid_sets else None, callbacks=callbacks)
        best = self.booster_.best_iteration
        self.best_iteration_ = int(best) if best and best > 0 else self.booster_.current_iteration()

    def _raw(self, X: np.ndarray, **kw: Any) -> np.ndarray:
        return np.asarray(self.booster_.predict(X, num_iteration=self.best_iteration_, **kw))

    def _predict(self, d: TabularData) -> np.ndarray:
        p = self._raw(self.matrix(d, order="F"))
        return np.column_stack([1.0 - p, p]) if self.task == "classification" and p.ndim == 1 else p

    def feature_importance(self, kind: str = "gain") -> pl.DataFrame:
        """Total gain (``kind="gain"``) or number of splits (``kind="split"``) per input, descending."""
        self.check_is_fitted()
        check("GBM.feature_importance", kind=(kind, Options("gain", "split")))
        imp = self.booster_.feature_importance(importance_type=kind, iteration=self.best_iteration_)
        return feature_frame(self.feature_names_, imp)

    def contributions(self, data: Any) -> Contributions:
        """TreeSHAP values from LightGBM (``pred_contrib=True``) in raw-score space: log-odds for binary,
        per-class raw scores for multiclass, the value for regression."""
        d = self._prepare(data)
        X = self.matrix(d, order="F")
        c = self._raw(X, pred_contrib=True)
        F = len(self.feature_names_)
        raw = self._raw(X, raw_score=True)
        if self.task == "classification" and len(self.classes_) > 2:
            K = len(self.classes_)
            c = c.reshape(len(d), K, F + 1).transpose(0, 2, 1)  # (n, F+1, K)
            return Contributions(bias=c[:, F, :], values=c[:, :F, :], feature_names=list(self.feature_names_),
                                 prediction=raw, space="raw_score", classes=self.classes_)
        space = "raw_score" if self.task == "classification" else "value"
        return Contributions(bias=c[:, F], values=c[:, :F], feature_names=list(self.feature_names_),
                             prediction=raw, space=space, classes=self.classes_ if self.task == "classification" else None)

    # -- files: the booster as LightGBM's own model text --------------------------------------------------
    def model_to_data(self) -> np.ndarray:
        return np.frombuffer(self.booster_.model_to_string().encode("utf-8"), dtype=np.uint8).copy()

    def model_from_data(self, data: Any) -> Any:
        import lightgbm as lgb

        if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 1):
            raise ExportError("booster_ must be LightGBM model text stored as a 1-D uint8 array")
        try:
            text = data.tobytes().decode("utf-8")
        except UnicodeDecodeError:
            raise ExportError("booster_ is not LightGBM model text (not UTF-8)") from None
        text = checked_lightgbm_text(text, len(self.feature_names_))
        try:
            return lgb.Booster(model_str=text)
        except lgb.basic.LightGBMError as e:
            raise ExportError(f"LightGBM refuses the stored model text: {str(e)[:200]}") from None


def _numbers(tree: dict[str, str], key: str, n: int, kind: type, where: str, required: bool = True) -> list:
    """Tree field ``key`` as ``n`` numbers of ``kind`` (an absent field is empty: only allowed when ``n`` is 0 or
    the field is optional)."""
    raw = tree.get(key)
    if raw is None:
        if required and n:
            raise ExportError(f"{where}: the field {key!r} is missing")
        return []
    try:
        vals = [kind(v) for v in raw.split()]
    except ValueError:
        raise ExportError(f"{where}: {key} holds a value that is not a number") from None
    if len(vals) != n and (required or vals):  # an optional field may be left empty (a one-leaf tree's weights)
        raise ExportError(f"{where}: {key} has {len(vals)} values, the tree needs {n}")
    return vals


def checked_lightgbm_text(text: str, n_features: int) -> str:
    """LightGBM model text checked before LightGBM reads it, as the forests' node tables are: LightGBM trusts the
    child, leaf, feature and category indices of its trees when predicting, so a tampered file would read stray
    memory or loop forever. Every tree must be a tree over ``n_features`` inputs: each internal node's children
    come after it (so traversal ends), each node and leaf has one parent, split features exist, categorical
    splits point into the tree's category table. The ``tree_sizes`` line is dropped (LightGBM then reads the
    trees one after the other, where a bad one is an error rather than an abort). Returns the text to load."""
    head, sep, rest = text.partition("\nTree=")
    if not sep and "end of trees" not in text:
        raise ExportError("booster_ is not LightGBM model text (no trees)")
    header = dict(line.split("=", 1) for line in head.splitlines() if "=" in line)
    try:
        max_feature = int(header["max_feature_idx"])
        per_iter = int(header.get("num_tree_per_iteration", "1"))
        int(header.get("num_class", "1"))
    except (KeyError, ValueError):
        raise ExportError("the LightGBM model text lacks a valid max_feature_idx / num_class header") from None
    if max_feature != n_features - 1 or per_iter < 1:
        raise ExportError(f"the LightGBM model is for {max_feature + 1} inputs, this GBM has {n_features}")
    if not sep:  # no tree at all: nothing LightGBM would walk
        return "\n".join(line for line in text.splitlines() if not line.startswith("tree_sizes="))
    body, end, tail = ("Tree=" + rest).partition("end of trees")
    if not end:
        raise ExportError("the LightGBM model text is cut short (no 'end of trees')")
    blocks = [b for b in body.split("\n\n") if b.strip()]
    for i, block in enumerate(blocks):
        lines = block.strip().splitlines()
        where = f"LightGBM tree {i}"
        if lines[0] != f"Tree={i}":
            raise ExportError(f"{where}: expected 'Tree={i}', found {lines[0][:40]!r}")
        tree = dict(line.split("=", 1) for line in lines[1:] if "=" in line)
        _check_tree(tree, max_feature, where)
    if len(blocks) % per_iter:
        raise ExportError(f"the LightGBM model has {len(blocks)} trees, not a multiple of the {per_iter} per round")
    return "\n".join(line for line in head.splitlines() if not line.startswith("tree_sizes=")) + "\n\n" + body + \
        end + tail


def _check_tree(tree: dict[str, str], max_feature: int, where: str) -> None:
    try:
        n, n_cat = int(tree.get("num_leaves", "")), int(tree.get("num_cat", "0"))
    except ValueError:
        raise ExportError(f"{where}: num_leaves / num_cat are not whole numbers") from None
    if not (1 <= n <= 1 << 24) or n_cat < 0:
        raise ExportError(f"{where}: num_leaves={n}, num_cat={n_cat} out of range")
    m = n - 1  # internal nodes
    feats = _numbers(tree, "split_feature", m, int, where)
    left, right = _numbers(tree, "left_child", m, int, where), _numbers(tree, "right_child", m, int, where)
    thresholds = _numbers(tree, "threshold", m, float, where)
    kinds = _numbers(tree, "decision_type", m, int, where)
    _numbers(tree, "leaf_value", n, float, where)
    for key in ("split_gain", "internal_value", "internal_weight", "internal_count"):
        _numbers(tree, key, m, float, where, required=False)
    for key in ("leaf_weight", "leaf_count"):
        _numbers(tree, key, n, float, where, required=False)
    if any(not 0 <= f <= max_feature for f in feats):
        raise ExportError(f"{where}: a split on a feature outside 0..{max_feature}")
    seen_nodes, seen_leaves = [0] * max(m, 1), [0] * n
    for parent, kids in enumerate(zip(left, right)):
        for c in kids:
            if c >= 0:
                if not parent < c < m:  # children come after their parent: traversal always ends
                    raise ExportError(f"{where}: node {parent} has child node {c} (must be in {parent + 1}..{m - 1})")
                seen_nodes[c] += 1
            else:
                if not 0 <= ~c < n:
                    raise ExportError(f"{where}: node {parent} has leaf {~c} (the tree has {n} leaves)")
                seen_leaves[~c] += 1
    if m and (any(k != 1 for k in seen_nodes[1:]) or any(k != 1 for k in seen_leaves)):
        raise ExportError(f"{where}: its nodes and leaves do not form a tree (each must have one parent)")
    if any(not 0 <= k <= 15 for k in kinds):
        raise ExportError(f"{where}: a decision_type outside 0..15")
    bounds = _numbers(tree, "cat_boundaries", n_cat + 1 if n_cat else 0, int, where)
    cats = _numbers(tree, "cat_threshold", len(tree.get("cat_threshold", "").split()), int, where, required=False)
    if n_cat and (bounds[0] != 0 or bounds[-1] != len(cats) or any(b > a for b, a in zip(bounds, bounds[1:]))
                  or any(not 0 <= c < 1 << 32 for c in cats)):
        raise ExportError(f"{where}: its category table (cat_boundaries, cat_threshold) is inconsistent")
    for k, t in zip(kinds, thresholds):
        if k & 1 and not (t == int(t) and 0 <= int(t) < n_cat):
            raise ExportError(f"{where}: a categorical split points outside its {n_cat} category sets")
    if tree.get("is_linear", "0") not in ("0", "1"):
        raise ExportError(f"{where}: is_linear must be 0 or 1")
    if tree.get("is_linear") == "1":
        counts = _numbers(tree, "num_features", n, int, where)
        _numbers(tree, "leaf_const", n, float, where)
        if any(c < 0 for c in counts):
            raise ExportError(f"{where}: a negative num_features")
        if any(not 0 <= f <= max_feature for f in _numbers(tree, "leaf_features", sum(counts), int, where)):
            raise ExportError(f"{where}: a linear leaf on a feature outside 0..{max_feature}")
        _numbers(tree, "leaf_coeff", sum(counts), float, where)


class _StopAt:
    """A LightGBM callback that ends boosting at ``deadline`` (``time.perf_counter()``), keeping the rounds done,
    or with ``best`` the best of them on the first validation metric (as early stopping would keep them)."""

    def __init__(self, deadline: float, model: GBM, best: bool):
        # after LightGBM's recording (20) and early stopping (30), which ends first when both would; set on the
        # instance, as LightGBM numbers callbacks without one of their own first
        self.order = 40
        self.deadline, self.model, self.best = deadline, model, best
        self.best_iter, self.best_score, self.best_list = 0, None, []  # type: tuple[int, float | None, list]

    def __call__(self, env: Any) -> None:
        import lightgbm as lgb

        results = env.evaluation_result_list or []
        if self.best and results:
            first = results[0]
            value, maximize = first[2], first[3]
            if self.best_score is None or (value > self.best_score if maximize else value < self.best_score):
                self.best_iter, self.best_score, self.best_list = env.iteration, value, list(results)
        if time.perf_counter() >= self.deadline and env.iteration < env.end_iteration - 1:
            self.model.stopped_on_time_ = True
            if self.best and results:
                raise lgb.callback.EarlyStopException(self.best_iter, self.best_list)
            raise lgb.callback.EarlyStopException(env.iteration, list(results))
