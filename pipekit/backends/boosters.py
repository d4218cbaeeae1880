"""Two more gradient-boosting backends, used only where their libraries are installed (pipekit never
requires them): ``XGBoost`` (xgboost, histogram trees with native categorical splits) and ``CatBoost``
(catboost, ordered boosting with its own target statistics for categories). Both stop early on the
valid split and export as their library's own model format (XGBoost's JSON, checked field by field before
XGBoost reads it, and CatBoost's JSON, checked the same way), never pickle.

``installed("xgboost")`` says whether one can be used.

Example:
    >>> import polars as pl, numpy as np
    >>> from pipekit.backends import XGBoost, as_data, installed
    >>> rng = np.random.default_rng(0)
    >>> xs = pl.DataFrame({"a": rng.normal(size=400), "c": rng.integers(0, 4, 400)})
    >>> data = as_data(xs, y=xs["a"].to_numpy() * 2 + xs["c"].to_numpy(), cat_names=["c"])
    >>> if installed("xgboost"):
    ...     m = XGBoost("regression", n_estimators=200, learning_rate=0.2, n_jobs=1)
    ...     ok = m.fit(data.take(np.arange(300)), data.take(np.arange(300, 400))).score(data) < 0.5
    ... else:
    ...     ok = True
    >>> ok
    True
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
import time
from typing import Any

import numpy as np
import polars as pl

from pipekit.backends.base import (N_JOBS, NAME, POSITIVE_INT, TASK, TIME_LIMIT, Booster, feature_frame, kept_rounds,
                                   threads)
from pipekit.backends.booster_files import (CATBOOST_RULES, LOG_LINK_LOSSES, XGBOOST_RULES, catboost_json, catboost_loss,
                                            check_catboost_file_params, check_catboost_loss, check_params_to_save,
                                            check_xgboost_file_params, checked_catboost_model,
                                            checked_xgboost_model, looks_like_json, parse_json_model,
                                            parse_xgboost_model, xgboost_json)
from pipekit.backends.data import TabularData
from pipekit.core.errors import ExportError
from pipekit.core.validate import POSITIVE, Interval, Is, check_state

FRACTION = Interval(0, 1, closed="right")
PARAMS = Is(lambda v: v is None or isinstance(v, dict), "None or a dict of the library's parameters")


def installed(package: str) -> bool:
    """Whether ``package`` ("xgboost", "catboost") can be imported, without importing it.

    >>> from pipekit.backends import installed
    >>> installed("numpy"), installed("no_such_package")
    (True, False)
    """
    return importlib.util.find_spec(package) is not None


def _require(package: str, cls: str) -> Any:
    if not installed(package):
        raise ImportError(f"{cls} needs the {package} package, which is not installed: pip install {package} "
                          "(pipekit's other backends work without it)")
    return importlib.import_module(package)


def _threads(n_jobs: int | None) -> int:
    return -1 if n_jobs in (None, -1) else threads(n_jobs)  # never more threads than cores


class XGBoost(Booster):
    """XGBoost model for ``task`` "classification" or "regression" (``tree_method="hist"``); category-code
    columns are native categorical features. With a ``valid`` split, training stops after
    ``early_stopping_rounds`` rounds without improvement and the best iteration predicts. ``time_limit``:
    seconds of fitting, after which boosting stops (the rounds done by then are kept). ``params`` adds or overrides raw XGBoost
    parameters. Fitted: ``booster_``, ``best_iteration_``, ``stopped_on_time_``, ``valid_score_``.

    >>> import numpy as np, polars as pl
    >>> from pipekit.backends import XGBoost, as_data, installed
    >>> xs = pl.DataFrame({"a": np.arange(60.0), "c": np.arange(60) % 3})
    >>> data = as_data(xs, y=np.where(xs["a"].to_numpy() > 29, "yes", "no"), cat_names=["c"])
    >>> m = XGBoost("classification", n_estimators=20, early_stopping_rounds=None, n_jobs=1)
    >>> try:
    ...     ok = m.fit(data).predict(data).shape == (60, 2)
    ... except ImportError as e:  # xgboost not installed: the message says how to get it
    ...     ok = not installed("xgboost") and "pip install xgboost" in str(e)
    >>> ok
    True
    """

    model_attr = "booster_"
    imports = ("xgboost",)
    param_constraints = {
        "task": TASK, "n_estimators": POSITIVE_INT, "learning_rate": POSITIVE,
        "max_depth": Interval(0, None, integer=True), "min_child_weight": Interval(0, None),
        "subsample": FRACTION, "colsample": FRACTION, "reg_lambda": Interval(0, None),
        "early_stopping_rounds": Interval(1, None, integer=True, none_ok=True), "time_limit": TIME_LIMIT,
        "n_jobs": N_JOBS, "seed": Interval(0, 2**31 - 1, integer=True), "params": PARAMS, "name": NAME}

    def __init__(self, task: str, n_estimators: int = 1000, learning_rate: float = 0.05, max_depth: int = 6,
                 min_child_weight: float = 1.0, subsample: float = 1.0, colsample: float = 1.0,
                 reg_lambda: float = 1.0, early_stopping_rounds: int | None = 50, time_limit: float | None = None,
                 n_jobs: int | None = -1, seed: int = 0, params: dict | None = None, name: str | None = None):
        self.task, self.n_estimators, self.learning_rate, self.max_depth = task, n_estimators, learning_rate, max_depth
        self.min_child_weight, self.subsample, self.colsample, self.reg_lambda = (min_child_weight, subsample,
                                                                                  colsample, reg_lambda)
        self.early_stopping_rounds, self.time_limit, self.n_jobs = early_stopping_rounds, time_limit, n_jobs
        self.seed, self.params, self.name = seed, params, name
        self.check_params()

    @property
    def learns_trees(self) -> bool:
        """False for XGBoost's linear booster (``params={"booster": "gblinear"}``), which reads the values; True for
        its trees (``gbtree``, ``dart``)."""
        return (self.params or {}).get("booster") in (None, "gbtree", "dart")

    def xgb_params(self) -> dict[str, Any]:
        """The XGBoost parameter dict this model trains with."""
        if self.task == "regression":
            obj: dict[str, Any] = {"objective": "reg:squarederror", "eval_metric": "rmse"}
        elif len(self.classes_) == 2:
            obj = {"objective": "binary:logistic", "eval_metric": "logloss"}
        else:
            obj = {"objective": "multi:softprob", "num_class": len(self.classes_), "eval_metric": "mlogloss"}
        p = {**obj, "tree_method": "hist", "eta": self.learning_rate, "max_depth": self.max_depth,
             "min_child_weight": self.min_child_weight, "subsample": self.subsample,
             "colsample_bytree": self.colsample, "lambda": self.reg_lambda, "seed": self.seed,
             "nthread": _threads(self.n_jobs), "max_cat_to_onehot": 1, "verbosity": 0}
        p.update(self.params or {})
        return p

    def _dmatrix(self, d: TabularData, label: bool = True) -> Any:
        xgb = _require("xgboost", "XGBoost")
        types = ["c" if c in self.cat_features_ else "q" for c in self.feature_names_]
        return xgb.DMatrix(self.matrix(d), label=self.encode_y(d.y) if label else None,
                           weight=d.weight if label else None, feature_types=types,
                           feature_names=[f"f{i}" for i in range(len(types))], enable_categorical=True,
                           nthread=_threads(self.n_jobs))

    def _fit(self, d: TabularData, valid: TabularData | None) -> None:
        deadline = self._deadline()
        xgb = _require("xgboost", "XGBoost")
        evals = [] if valid is None else [(self._dmatrix(valid), "valid")]
        model, base = self, xgb.callback.TrainingCallback

        class StopAt(base):  # type: ignore[valid-type,misc]  # ends boosting at the deadline, keeping the rounds done
            def after_iteration(self, booster: Any, epoch: int, evals_log: Any) -> bool:
                if deadline is not None and time.perf_counter() >= deadline and epoch < model.n_estimators - 1:
                    model.stopped_on_time_ = True
                    return True
                return False

        self.booster_ = xgb.train(self.xgb_params(), self._dmatrix(d), num_boost_round=self.n_estimators,
                                  evals=evals, verbose_eval=False, callbacks=[StopAt()] if deadline else None,
                                  early_stopping_rounds=self.early_stopping_rounds if evals else None)
        best = getattr(self.booster_, "best_iteration", None) if evals and self.early_stopping_rounds else None
        self.best_iteration_ = kept_rounds(None if best is None else int(best) + 1,
                                           int(self.booster_.num_boosted_rounds()))

    def _predict(self, d: TabularData) -> np.ndarray:
        p = np.asarray(self.booster_.predict(self._dmatrix(d, label=False), iteration_range=(0, self.best_iteration_)),
                       dtype=np.float64)
        return np.column_stack([1.0 - p, p]) if self.task == "classification" and p.ndim == 1 else p

    def feature_importance(self) -> pl.DataFrame:
        """Total gain per input, descending (0 for inputs never split on)."""
        self.check_is_fitted()
        gain = self.booster_.get_score(importance_type="total_gain")
        return feature_frame(self.feature_names_,
                             np.array([gain.get(f"f{i}", 0.0) for i in range(len(self.feature_names_))]))

    # -- files: the booster as XGBoost's own JSON model, checked before XGBoost reads it ------------------
    def _checked(self, model: dict[str, Any]) -> dict[str, Any]:
        n_classes = len(self.classes_) if self.task == "classification" else 0
        return checked_xgboost_model(model, len(self.feature_names_),
                                     [c in self.cat_features_ for c in self.feature_names_], self.task, n_classes)

    def model_to_data(self) -> np.ndarray:
        """The booster as the JSON loading hands XGBoost: XGBoost's own, held to the checks loading runs, so a
        model whose file could not be loaded (an objective whose outputs are no predictions of the task) is refused
        when it is saved."""
        try:
            model = self._checked(parse_xgboost_model(bytes(self.booster_.save_raw(raw_format="json"))))
        except ExportError as e:
            raise ExportError(f"{type(self).__name__} cannot be saved: pipekit.load would refuse its model ({e})") \
                from None
        return np.frombuffer(xgboost_json(model), dtype=np.uint8).copy()

    def params_to_data(self) -> dict[str, Any]:
        """The parameters a record keeps, its ``params`` first held to what a file may hold (the check loading runs):
        a model whose file could not be loaded is refused when it is saved, naming the setting."""
        check_params_to_save(type(self).__name__, self.params, XGBOOST_RULES)
        return super().params_to_data()

    def state_from_data(self, state: dict[str, Any]) -> None:
        """The fitted state of a file; ``best_iteration_`` (the rounds prediction uses) must be a whole number of
        rounds the stored booster holds.

        A model rebuilt from a file comes here right after ``__init__``, fitted or not, so its ``params`` (XGBoost
        parameters, passed to ``xgb.train`` by ``fit``) are checked first, before XGBoost is imported: a file's must
        be XGBoost training parameters that are data, never the threads, a device, an updater or a path (see
        :func:`pipekit.backends.booster_files.check_xgboost_file_params`). A model built in code takes any."""
        check_xgboost_file_params(self.params)
        super().state_from_data(state)
        if "booster_" in vars(self):
            check_state(state, "prediction",
                        best_iteration_=Interval(1, int(self.booster_.num_boosted_rounds()), integer=True))

    def model_from_data(self, data: Any) -> Any:
        xgb = _require("xgboost", "XGBoost")
        if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 1):
            raise ExportError("booster_ must be an XGBoost model (JSON or UBJSON) stored as a 1-D uint8 array")
        model = self._checked(parse_xgboost_model(data.tobytes()))
        booster = xgb.Booster()
        try:  # XGBoost reads the JSON written from the checked values, so it reads what was checked
            booster.load_model(bytearray(xgboost_json(model)))
        except xgb.core.XGBoostError as e:
            raise ExportError(f"XGBoost refuses the stored model: {str(e)[:200]}") from None
        booster.set_param({"nthread": _threads(self.n_jobs)})
        return booster


class CatBoost(Booster):
    """CatBoost model for ``task`` "classification" or "regression": category-code columns are its
    categorical features (ordered target statistics). With a ``valid`` split, training stops after
    ``early_stopping_rounds`` rounds without improvement and the best iteration is kept. ``time_limit``:
    seconds of fitting, after which boosting stops (the rounds done are kept, the best of them when it stops
    early).
    ``params`` adds or overrides raw CatBoost parameters. Fitted: ``model_``, ``best_iteration_``,
    ``stopped_on_time_``, ``valid_score_``.

    >>> import numpy as np, polars as pl
    >>> from pipekit.backends import CatBoost, as_data, installed
    >>> xs = pl.DataFrame({"a": np.arange(60.0), "c": np.arange(60) % 3})
    >>> data = as_data(xs, y=xs["a"].to_numpy() * 2, cat_names=["c"])
    >>> m = CatBoost("regression", n_estimators=20, depth=4, early_stopping_rounds=None, n_jobs=1)
    >>> p = m.cb_params()
    >>> p["loss_function"], p["iterations"], p["depth"]
    ('RMSE', 20, 4)
    >>> try:
    ...     ok = m.fit(data).predict(data).shape == (60,)
    ... except ImportError as e:  # catboost not installed: the message says how to get it
    ...     ok = not installed("catboost") and "pip install catboost" in str(e)
    >>> ok
    True
    """

    imports = ("catboost",)
    param_constraints = {
        "task": TASK, "n_estimators": POSITIVE_INT, "learning_rate": POSITIVE,
        "depth": Interval(1, 16, integer=True), "l2_leaf_reg": Interval(0, None),
        "early_stopping_rounds": Interval(1, None, integer=True, none_ok=True), "time_limit": TIME_LIMIT,
        "n_jobs": N_JOBS, "seed": Interval(0, 2**31 - 1, integer=True), "params": PARAMS, "name": NAME}

    def __init__(self, task: str, n_estimators: int = 1000, learning_rate: float = 0.05, depth: int = 6,
                 l2_leaf_reg: float = 3.0, early_stopping_rounds: int | None = 50, time_limit: float | None = None,
                 n_jobs: int | None = -1, seed: int = 0, params: dict | None = None, name: str | None = None):
        self.task, self.n_estimators, self.learning_rate, self.depth = task, n_estimators, learning_rate, depth
        self.l2_leaf_reg, self.early_stopping_rounds, self.n_jobs = l2_leaf_reg, early_stopping_rounds, n_jobs
        self.time_limit, self.seed, self.params, self.name = time_limit, seed, params, name
        self.check_params()

    def check_params(self) -> None:
        """As every component's, and the loss in ``params`` (``loss_function``, or ``objective``): one of the task
        (:func:`pipekit.backends.booster_files.check_catboost_loss`), which for regression predicts one estimate of
        the target per row."""
        super().check_params()
        check_catboost_loss(self.params, self.task)

    def cb_params(self) -> dict[str, Any]:
        """The CatBoost parameter dict this model trains with."""
        if self.task == "regression":
            obj: dict[str, Any] = {"loss_function": "RMSE"}
        else:
            obj = {"loss_function": "Logloss" if len(self.classes_) == 2 else "MultiClass",
                   "class_names": list(range(len(self.classes_)))}  # every class, even one a fold lacks
        p = {**obj, "iterations": self.n_estimators, "learning_rate": self.learning_rate, "depth": self.depth,
             "l2_leaf_reg": self.l2_leaf_reg, "random_seed": self.seed, "thread_count": _threads(self.n_jobs),
             "verbose": False, "allow_writing_files": False}
        p.update(self.params or {})
        return p

    def _pool(self, d: TabularData, label: bool = True) -> Any:
        cb = _require("catboost", "CatBoost")
        cats = [c for c in self.feature_names_ if c in self.cat_features_]
        # CatBoost takes category codes as integers (it hashes them), everything else as float32
        frame = d.xs.select([pl.col(c).cast(pl.Int64) if c in cats else pl.col(c).cast(pl.Float32)
                             for c in self.feature_names_]).to_pandas()
        return cb.Pool(frame, label=self.encode_y(d.y) if label else None, weight=d.weight if label else None,
                       cat_features=[self.feature_names_.index(c) for c in cats])

    def _fit(self, d: TabularData, valid: TabularData | None) -> None:
        deadline = self._deadline()
        cb = _require("catboost", "CatBoost")
        model = cb.CatBoost(self.cb_params())
        owner = self

        class StopAt:  # ends boosting at the deadline, keeping the rounds done (CatBoost stops on False)
            def after_iteration(self, info: Any) -> bool:
                if deadline is not None and time.perf_counter() >= deadline and info.iteration < owner.n_estimators:
                    owner.stopped_on_time_ = True
                    return False
                return True

        stop = {"callbacks": [StopAt()]} if deadline is not None else {}
        if valid is None:
            model.fit(self._pool(d), **stop)
        else:
            model.fit(self._pool(d), eval_set=self._pool(valid), use_best_model=self.stops_early(),
                      early_stopping_rounds=self.early_stopping_rounds, **stop)
        meta = model.get_metadata()
        for key in ("model_guid", "train_finish_time"):  # per run: two identical fits would store different bytes
            if key in meta:
                del meta[key]
        self.model_ = model
        # the model as its file holds it (its leaf values to 15 digits, which CatBoost's JSON reader reads back
        # exactly), so predictions made now match those of the saved model, bit for bit
        self.model_ = self.model_from_data(self.model_to_data())
        best = model.get_best_iteration() if valid is not None and self.stops_early() else None
        self.best_iteration_ = kept_rounds(None if best is None else int(best) + 1, int(model.tree_count_))

    def _predict(self, d: TabularData) -> np.ndarray:
        # a regressor predicts the target: the exponent of the raw score where the loss's is its log (Poisson, Tweedie)
        if self.task == "classification":
            kind = "Probability"
        else:
            kind = "Exponent" if catboost_loss(self.model_.get_params()) in LOG_LINK_LOSSES else "RawFormulaVal"
        p = np.asarray(self.model_.predict(self._pool(d, label=False), prediction_type=kind,
                                           thread_count=_threads(self.n_jobs)), dtype=np.float64)
        return np.column_stack([1.0 - p, p]) if self.task == "classification" and p.ndim == 1 else p

    def feature_importance(self) -> pl.DataFrame:
        """CatBoost's prediction-value change per input, descending."""
        self.check_is_fitted()
        return feature_frame(self.feature_names_, self.model_.get_feature_importance())

    # -- files: the model as CatBoost's JSON, checked before CatBoost reads it -----------------------------
    def _checked(self, model: dict[str, Any]) -> dict[str, Any]:
        n_classes = len(self.classes_) if self.task == "classification" else 0
        return checked_catboost_model(model, list(self.feature_names_), list(self.cat_features_), self.task,
                                      n_classes)

    def model_to_data(self) -> np.ndarray:
        with tempfile.TemporaryDirectory() as tmp:  # CatBoost writes its models to files only
            where = os.path.join(tmp, "model.json")
            self.model_.save_model(where, format="json")
            with open(where, "rb") as f:
                model = parse_json_model(f.read(), "CatBoost")
        return np.frombuffer(catboost_json(self._checked(model)).encode(), dtype=np.uint8).copy()

    def params_to_data(self) -> dict[str, Any]:
        """The parameters a record keeps, its ``params`` first held to what a file may hold (see
        :meth:`XGBoost.params_to_data`)."""
        check_params_to_save(type(self).__name__, self.params, CATBOOST_RULES)
        return super().params_to_data()

    def state_from_data(self, state: dict[str, Any]) -> None:
        """The fitted state of a file; ``best_iteration_`` must be a whole number of the trees the model holds.

        A model rebuilt from a file comes here right after ``__init__``, fitted or not, so its ``params`` (CatBoost
        parameters, passed to ``catboost.CatBoost`` by ``fit``) are checked first, before CatBoost is imported: a
        file's must be CatBoost training parameters that are data, never a folder it writes (``train_dir``), a
        snapshot, the threads, memory or a device (see
        :func:`pipekit.backends.booster_files.check_catboost_file_params`). A model built in code takes any."""
        check_catboost_file_params(self.params)
        super().state_from_data(state)
        if "model_" in vars(self):
            check_state(state, "prediction", best_iteration_=Interval(1, int(self.model_.tree_count_), integer=True))

    def model_from_data(self, data: Any) -> Any:
        cb = _require("catboost", "CatBoost")
        if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 1):
            raise ExportError("model_ must be a CatBoost JSON model stored as a 1-D uint8 array")
        raw = data.tobytes()
        if not looks_like_json(raw):
            raise ExportError("the CatBoost model is in CatBoost's binary format, which earlier pipekit versions "
                              "wrote and CatBoost reads without checking it: a file from someone else could corrupt "
                              "memory, so it is not loaded. Fit the model again and save it with this version, "
                              "which writes CatBoost's JSON and checks it before CatBoost reads it")
        checked = self._checked(parse_json_model(raw, "CatBoost"))
        with tempfile.TemporaryDirectory() as tmp:  # CatBoost reads the JSON written from the checked values
            where = os.path.join(tmp, "model.json")
            with open(where, "w", encoding="utf-8") as f:
                f.write(catboost_json(checked))
            try:
                model = cb.CatBoost().load_model(where, format="json")
            except cb.CatBoostError as e:
                raise ExportError(f"CatBoost refuses the stored model: {str(e)[:200]}") from None
        if int(model.tree_count_) != len(checked["oblivious_trees"]):  # it read the whole of what was checked
            raise ExportError(f"CatBoost read {model.tree_count_} of the {len(checked['oblivious_trees'])} trees "
                              "of the stored model")
        return model
