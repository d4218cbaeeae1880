"""Conformance checks every registered component passes, in the style of scikit-learn's ``check_estimator``.

``check_component(obj)`` runs the contract checks on one component. ``conformance_cases()`` gives an
example of every registered component class, whatever its registry, so a test suite can parametrise over
them and a new class is checked the day it is written. A class whose ``__init__`` needs arguments gets an
entry in ``examples()``; ``missing_examples()`` names those that have none. The checks:

- parameters are the ``__init__`` arguments, read back unchanged, and building again from them gives the
  same component (``get_params``, ``repr``);
- ``clone()`` is unfitted, of the same class, with equal parameters;
- a record survives JSON and a pipekit file (``pipekit.save``/``pipekit.load``) with the same class,
  parameters and learned state (a component holding something that cannot be data, such as a user's
  function, must refuse with an ``ExportError`` naming it instead);
- every declared parameter constraint refuses a value outside it with a ``ParameterError`` naming the
  class and the parameter;
- fitting twice on the same data learns the same state and leaves every parameter as it was;
- a class's ``record_defaults`` are its ``__init__`` defaults (or what fitting gives), left out of the record
  of a component holding them, and every other field of its record is one format 2 wrote.

>>> from pipekit.data import RandomSplitter
>>> check_component(RandomSplitter(0.25, seed=1))
"""
from __future__ import annotations

import functools
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from sklearn.base import BaseEstimator

from pipekit.core.archive import load, save
from pipekit.core.component import Component, construct, param_names
from pipekit.core.errors import ExportError, ParameterError
from pipekit.core.registry import import_builtin_packages, registered
from pipekit.core.validate import Interval, Is, Options

__all__ = ["check_component", "conformance_cases", "examples", "missing_examples", "same"]


def items() -> pl.DataFrame:
    """A small table of items with a path, a number, a label, a valid flag and a date."""
    return pl.DataFrame({"path": [f"data/{'valid' if i % 5 == 0 else 'train'}/{'ab'[i % 2]}/{i}.png" for i in range(40)],
                         "x": np.random.default_rng(0).normal(size=40), "label": ["ab"[i % 2] for i in range(40)],
                         "is_valid": [i % 5 == 0 for i in range(40)],
                         "when": pl.date_range(pl.date(2020, 1, 1), pl.date(2020, 2, 9), eager=True)})


def tabular_data() -> Any:
    """A processed training split (``Tabular.train``) for backends: a category with missing values, a number,
    a two-class target."""
    from pipekit.data import RandomSplitter
    from pipekit.tabular import Tabular

    rng = np.random.default_rng(0)
    x = rng.normal(size=200)
    frame = pl.DataFrame({"c": rng.choice(["u", "v", "w"], 200), "a": x,
                          "y": np.where(x + rng.normal(scale=0.5, size=200) > 0, "yes", "no")})
    return Tabular(frame, cat_names=["c"], cont_names=["a"], y_names="y", splits=RandomSplitter(0.2, seed=0)).train


def _table() -> pl.DataFrame:
    return pl.DataFrame({"c": ["u", "v", None, "w"] * 10, "a": [1.0, None, 3.0, 4.5] * 10, "y": ["n", "y"] * 20})


@functools.cache
def _valid_names_file() -> Path:
    """A file of validation file names, one per line, as FileSplitter reads it (made once per run)."""
    fd, name = tempfile.mkstemp(suffix=".txt", prefix="pipekit_valid_")
    with os.fdopen(fd, "w") as f:
        f.write("0.png\n5.png\n")
    return Path(name)


def examples() -> dict[str, Callable[[], Component]]:
    """An example of every registered class whose ``__init__`` needs arguments, by registered name."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import cohen_kappa_score

    from pipekit import backends as B
    from pipekit import data as D
    from pipekit import ensemble as E
    from pipekit import metrics as M
    from pipekit import tabular as T
    from pipekit import vision as V
    from pipekit.learn import ParamScheduler, TimeLimit, sched_cos
    from pipekit.learn.registry import ArchSpec

    def members() -> list[Component]:
        return [B.RandomForest("classification", n_estimators=5, n_jobs=1), B.GBM("classification", n_estimators=5)]

    def processor() -> Component:
        return T.TabularProcessor([T.Categorify(), T.FillMissing(), T.Normalize()], ["c"], ["a"], ["y"])

    def hf_tokenizer() -> Component:
        from tokenizers import Tokenizer, models, pre_tokenizers

        from pipekit.text import HFTokenizer

        tk = Tokenizer(models.WordLevel({"[UNK]": 0, "a": 1, "film": 2}, unk_token="[UNK]"))
        tk.pre_tokenizer = pre_tokenizers.Whitespace()
        return HFTokenizer(tk)

    def recipe() -> Component:
        p = processor()
        p.fit_transform(_table(), np.arange(40) < 30)  # type: ignore[attr-defined]
        return T.TabularRecipe(p)  # type: ignore[arg-type]

    return {
        "pipekit.backends.GBM": lambda: B.GBM("classification", n_estimators=5),
        "pipekit.backends.RandomForest": lambda: B.RandomForest("classification", n_estimators=5, n_jobs=1),
        "pipekit.backends.ExtraTrees": lambda: B.ExtraTrees("classification", n_estimators=5, n_jobs=1),
        "pipekit.backends.XGBoost": lambda: B.XGBoost("classification", n_estimators=5),
        "pipekit.backends.CatBoost": lambda: B.CatBoost("classification", n_estimators=5),
        "pipekit.ensemble.BaggedModel": lambda: E.BaggedModel(B.GBM("classification", n_estimators=5), n_folds=2),
        "pipekit.backends.SklearnModel": lambda: B.SklearnModel(LogisticRegression(), "classification"),
        "pipekit.ensemble.TorchTabular": lambda: E.TorchTabular("classification", epochs=1),
        "pipekit.ensemble.MeanEnsemble": lambda: E.MeanEnsemble(members()),
        "pipekit.ensemble.WeightedEnsemble": lambda: E.WeightedEnsemble(members()),
        "pipekit.ensemble.StackingEnsemble": lambda: E.StackingEnsemble(members(), n_folds=2),
        "pipekit.data.ColReader": lambda: D.ColReader("x"),
        "pipekit.data.RegexLabeller": lambda: D.RegexLabeller(r"/(\w)/\d+\.png$"),
        "pipekit.data.Pipe": lambda: D.Pipe(D.ColReader("path"), D.parent_label),
        "pipekit.data.UsingAttr": lambda: D.using_attr(D.RegexLabeller(r"^(\d+)\.png$"), "name"),
        "pipekit.data.FuncTransform": lambda: D.FuncTransform(np.negative),
        "pipekit.data.IndexSplitter": lambda: D.IndexSplitter([0, 3, 7]),
        "pipekit.data.FileSplitter": lambda: D.FileSplitter(_valid_names_file()),
        "pipekit.data.MaskSplitter": lambda: D.MaskSplitter([i % 4 == 0 for i in range(40)]),
        "pipekit.data.TimeSplitter": lambda: D.TimeSplitter("when", "2020-02-01"),
        "pipekit.data.FuncSplitter": lambda: D.FuncSplitter(lambda item: item["x"] > 1),
        "pipekit.data.DataBlock": lambda: D.DataBlock(blocks=(D.RegressionBlock, D.CategoryBlock),
                                                      get_x=D.ColReader("x"), get_y=D.ColReader("label"),
                                                      splitter=D.RandomSplitter(0.25, seed=0)),
        "pipekit.vision.Resize": lambda: V.Resize((32, 48)),
        "pipekit.vision.CropPad": lambda: V.CropPad(16),
        "pipekit.vision.RandomResizedCrop": lambda: V.RandomResizedCrop(24),
        "pipekit.vision.Normalize": lambda: V.Normalize([0.5], [0.25]),
        "pipekit.tabular.TabularProcessor": processor,
        "pipekit.tabular.TabularRecipe": recipe,
        "pipekit.learn.ArchSpec": lambda: ArchSpec("mlp", {"n_in": 3, "n_out": 2, "layers": [4]}),
        "pipekit.learn.ParamScheduler": lambda: ParamScheduler({"lr": sched_cos(1e-3, 1e-5)}),
        "pipekit.learn.TimeLimit": lambda: TimeLimit(30.0),
        "pipekit.learn.FiniteInputsCheck": lambda: registered()["pipekit.learn.FiniteInputsCheck"](None),
        "pipekit.metrics.FuncMetric": lambda: M.FuncMetric(M.accuracy),
        "pipekit.metrics.AccumMetric": lambda: M.AccumMetric(cohen_kappa_score, dim_argmax=-1, to_np=True,
                                                             invert_arg=True),
        "pipekit.metrics.FBeta": lambda: M.FBeta(2.0),
        "pipekit.metrics.FBetaMulti": lambda: M.FBetaMulti(2.0),
        "pipekit.text.HFTokenizer": hf_tokenizer,
    }


def _component_classes() -> dict[str, type[Component]]:
    import_builtin_packages()
    import pipekit.inspection  # noqa: F401  (the packages outside the built-in list)
    import pipekit.metrics  # noqa: F401

    return {k: c for k, c in registered().items() if isinstance(c, type) and issubclass(c, Component)
            and not c.__dict__.get("abstract", False)}


def conformance_cases() -> list[tuple[str, Callable[[], Component]]]:
    """``(registered name, factory)`` for every registered component class, sorted by name."""
    ex = examples()
    return [(k, ex.get(k, cls)) for k, cls in sorted(_component_classes().items())]


def missing_examples() -> list[str]:
    """Registered classes that need ``__init__`` arguments and have no example in :func:`examples`."""
    ex, out = examples(), []
    for k, cls in _component_classes().items():
        if k not in ex:
            try:
                cls()
            except Exception:
                out.append(k)
    return sorted(out)


# ---------------------------------------------------------------------------------------- the checks
def _learned(c: Component) -> dict[str, Any]:
    """What fitting learned, less the durations it measured (``*seconds_``), which differ from run to run."""
    return {k: v for k, v in c.state_to_data().items() if not k.endswith("seconds_")}


def same(a: Any, b: Any, state: bool = True) -> bool:
    """Equal as data: arrays and frames by value, components (and scikit-learn estimators) by class and
    parameters, and by learned state unless ``state=False``."""
    if isinstance(a, Component) or isinstance(b, Component):
        # compared as a file stores them (a parameter may be kept in another form, e.g. a tokenizer as its JSON)
        return type(a) is type(b) and same(a.params_to_data(), b.params_to_data(), state) and \
            (not state or same(_learned(a), _learned(b)))
    if hasattr(a, "get_params") and not isinstance(a, type) and type(a) is type(b):  # a scikit-learn estimator
        return same(a.get_params(deep=False), b.get_params(deep=False), state)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k], state) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y, state) for x, y in zip(a, b))
    if isinstance(a, pl.DataFrame) and isinstance(b, pl.DataFrame):
        return a.equals(b)
    if isinstance(a, pl.Series) and isinstance(b, pl.Series):
        return a.equals(b)
    if hasattr(a, "detach") and hasattr(b, "detach"):
        a, b = a.detach().cpu().numpy(), b.detach().cpu().numpy()
    if isinstance(a, (np.ndarray, np.generic)) or isinstance(b, (np.ndarray, np.generic)):
        a, b = np.asarray(a), np.asarray(b)
        return a.shape == b.shape and bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc" and b.dtype.kind in "fc"))
    try:
        return bool(a == b) or (a != a and b != b)
    except Exception:
        return a is b


def _bad_value(constraint: Any) -> Any:
    """A value the constraint refuses."""
    if isinstance(constraint, Interval):
        if constraint.low is not None:
            return constraint.low - 1
        return constraint.high + 1 if constraint.high is not None else "not a number"
    if isinstance(constraint, (Options, Is)):
        return object()
    raise TypeError(f"unknown constraint {constraint!r}")


def check_params(obj: Component) -> None:
    cls = type(obj)
    params = obj.get_params(deep=False)
    assert list(params) == param_names(cls), f"{cls.__name__}: get_params {list(params)} != __init__ {param_names(cls)}"
    again = obj.clone()
    assert type(again) is cls and not again.is_fitted, f"{cls.__name__}: clone() must be an unfitted {cls.__name__}"
    assert same(again.get_params(deep=False), params, state=False), f"{cls.__name__}: clone() changed the parameters"
    assert repr(again) == repr(obj.clone()), f"{cls.__name__}: repr is not stable"
    for name, constraint in cls.param_constraints.items():
        bad = _bad_value(constraint)
        try:
            made = construct(cls, {**params, name: bad})  # __init__ checks its parameters
            if isinstance(made, BaseEstimator):  # scikit-learn's estimators check them at fit, as scikit-learn's own
                made.check_params()
        except ParameterError as e:
            assert f"{cls.__name__}: {name}=" in str(e), f"{cls.__name__}: the error for {name} does not name it: {e}"
        else:
            raise AssertionError(f"{cls.__name__}: {name}={bad!r} was accepted though {constraint} was declared")


def check_record(obj: Component) -> None:
    """The record through JSON and through a pipekit file gives the same component (or a clean refusal)."""
    cls = type(obj)
    try:
        arrays: dict[str, np.ndarray] = {}
        record = json.loads(json.dumps(obj.to_record(arrays)))
    except ExportError as e:
        assert "cannot be stored" in str(e) or "not registered" in str(e), f"{cls.__name__}: unclear refusal: {e}"
        return
    back = Component.from_record(record, arrays)
    assert same(back, obj), f"{cls.__name__}: the record did not give back the same component"
    with tempfile.TemporaryDirectory() as tmp:
        again = load(save(obj, Path(tmp) / "c.pipekit"))
    assert same(again, obj), f"{cls.__name__}: a pipekit file did not give back the same component"


def _fit(obj: Component) -> Any:
    """Fit ``obj`` on the example data of its kind; returns what fitting produced (None: nothing to fit)."""
    kind = obj.registry_kind
    if kind == "splitter":
        return obj(items())  # type: ignore[operator]
    if kind == "getter":
        return obj.column(items())  # type: ignore[attr-defined]
    if kind == "recipe" and hasattr(obj, "dataloaders"):
        return obj.dataloaders(items(), bs=8, seed=0).recipe  # type: ignore[attr-defined]
    if kind == "model" and obj.is_fitted is False and "members" not in param_names(type(obj)):
        return obj.fit(tabular_data())  # type: ignore[attr-defined]
    task = getattr(obj, "task", None)
    if kind == "metric" and task is not None:  # a metric of backends' scores
        if task == "regression":
            return obj.score(np.array([1.0, 2.0, 3.0, 4.0, 5.5]), np.array([1.1, 2.0, 2.5, 4.2, 5.0]))  # type: ignore[attr-defined]
        return obj.score(np.array([0, 1, 1, 0, 1]),  # type: ignore[attr-defined]
                         np.array([[0.8, 0.2], [0.3, 0.7], [0.4, 0.6], [0.6, 0.4], [0.1, 0.9]]))
    if kind == "proc" and hasattr(obj, "fit_transform"):
        return obj.fit_transform(_table(), np.arange(40) < 30)  # type: ignore[attr-defined]
    return None


def check_fit_twice(obj: Component) -> None:
    """Fitting two clones on the same data learns the same state; fitting changes no parameter."""
    a, b = obj.clone(), obj.clone()
    # an unseeded component is random on purpose: fix its seed to compare two fits
    seeds = {k: 0 for k, v in a.get_params(deep=False).items() if k in ("seed", "random_state") and v is None}
    if seeds:
        a.set_params(**seeds), b.set_params(**seeds)
    before = a.get_params(deep=False)
    out_a, out_b = _fit(a), _fit(b)
    assert same(out_a, out_b), f"{type(obj).__name__}: fitting twice gave different results"
    assert same(_learned(a), _learned(b)), f"{type(obj).__name__}: fitting twice learned different states"
    assert same(a.get_params(deep=False), before, state=False), f"{type(obj).__name__}: fitting changed a parameter"
    if out_a is not None and a.is_fitted:
        check_record(a)


#: the record fields of each class that declares ``record_defaults``, as format 2 wrote them: a field a record gains
#: must be declared there (with what its absence means) so that records, and the fingerprints hashed from them
#: (``procs_signature``), stay those older files stored
FORMAT_2_FIELDS: dict[str, dict[str, set[str]]] = {
    "pipekit.tabular.TabularProcessor": {
        "params": {"procs", "cat_names", "cont_names", "y_names", "y_block"},
        "state": {"cat_names_", "cont_names_", "y_kind_", "y_vocab_", "c_"}},
    "pipekit.tabular.Categorify": {"params": {"ordered"}, "state": {"classes_"}},
    "pipekit.text.Tokenizer": {"params": {"mode", "vocab_sz", "rules", "add_bos", "add_eos"}, "state": {"subword_"}},
    "pipekit.text.SubwordTokenizer": {"params": {"vocab_sz", "model_type"}, "state": {"subword_"}},
    **{f"pipekit.metrics.{name}": {"params": {"average", "pos_label"}, "state": set()}
       for name in ("F1Score", "Precision", "Recall", "Jaccard")},
    "pipekit.metrics.FBeta": {"params": {"beta", "average", "pos_label"}, "state": set()},
    "pipekit.metrics.CohenKappa": {"params": {"weights"}, "state": set()},
    "pipekit.metrics.BalancedAccuracy": {"params": set(), "state": set()},
    **{f"pipekit.metrics.{name}": {"params": set(), "state": set()}
       for name in ("HammingLoss", "MatthewsCorrCoef", "APScoreBinary", "BrierScore")},
    **{f"pipekit.metrics.{name}": {"params": {"average", "multi_class"}, "state": set()}
       for name in ("RocAuc", "RocAucBinary")},
    "pipekit.learn.Recorder": {"params": {"beta"}, "state": set()},
    **{f"pipekit.vision.{name}": {"params": set(), "state": set()} for name in ("Dice", "JaccardCoeff")},
    **{f"pipekit.sklearn.{name}": {
        "params": {"backend", "cat_names", "cont_names", "date_names", "procs", "random_state"},
        "state": {"model_", "processor_", "cat_names_", "cont_names_", "date_names_", "n_features_in_",
                  "feature_names_in_", "classes_"}} for name in ("TabularClassifier", "TabularRegressor")},
    **{f"pipekit.backends.{name}": {
        "params": {"task", "n_estimators", "max_samples", "max_features", "min_samples_leaf", "oob_score", "n_jobs",
                   "seed", "time_limit", "name", "max_depth"},
        "state": {"model_", "oob_score_", "stopped_on_time_", "classes_", "feature_names_", "cat_features_",
                  "cat_levels_", "cat_dtypes_", "norm_stats_", "processor_", "procs_signature_",
                  "train_rows_signature_", "valid_score_"}} for name in ("RandomForest", "ExtraTrees")},
    **{f"pipekit.vision.{name}": {"params": params, "state": set()} for name, params in {
        "Zoom": {"min_zoom", "max_zoom", "p"}, "Rotate": {"max_deg", "p"}, "Warp": {"magnitude", "p"},
        "Flip": {"p"}, "Dihedral": {"p"}, "Contrast": {"max_lighting", "p"}, "Brightness": {"max_lighting", "p"},
        "Saturation": {"max_lighting", "p"}, "Hue": {"max_hue", "p"}}.items()},
    "pipekit.ensemble.MeanEnsemble": {"params": {"members", "weights", "metric", "check_columns"}, "state": set()},
    "pipekit.ensemble.WeightedEnsemble": {
        "params": {"members", "metric", "n_iter", "check_columns", "time_limit"},
        "state": {"best_member_", "processor_", "scores_", "selected_on_", "selection_", "stopped_on_time_",
                  "weights_"}},
    "pipekit.ensemble.StackingEnsemble": {
        "params": {"members", "meta", "metric", "n_folds", "passthrough", "seed"},
        "state": {"members_", "meta_model_", "passthrough_cats_", "passthrough_columns_", "processor_",
                  "train_rows_signature_"}},
    "pipekit.ensemble.TorchTabular": {
        "params": {"task", "layers", "epochs", "lr", "bs", "wd", "config", "y_range", "seed", "time_limit", "name"},
        "state": {"model_", "stopped_on_time_", "classes_", "feature_names_", "cat_features_", "cat_levels_",
                  "cat_dtypes_", "norm_stats_", "emb_szs_", "y_range_", "procs_signature_", "train_rows_signature_",
                  "valid_score_"}},
}


def check_record_defaults(obj: Component) -> None:
    """A class's ``record_defaults`` say what a record without a field means: a parameter's is its ``__init__``
    default, a learned field's is the value fitting gives the example (or absent, unfitted); a component with those
    values writes a record without them, and every other field of its record was written by format 2."""
    import inspect

    from pipekit.core.registry import name_of

    cls, declared = type(obj), type(obj).record_defaults
    if not declared:
        return
    name = name_of(cls)
    assert name in FORMAT_2_FIELDS, f"{name} declares record_defaults: list its format-2 fields in FORMAT_2_FIELDS"
    sig = inspect.signature(cls.__init__)  # type: ignore[misc]
    fitted = obj.clone()
    _fit(fitted)
    for field, value in declared.items():
        part, key = field.split(".", 1)
        assert part in ("params", "state"), f"{name}: record_defaults field {field!r} is not params.* or state.*"
        if part == "params":
            default = sig.parameters[key].default if key in sig.parameters else inspect.Parameter.empty
            assert type(default) is type(value) and default == value, \
                f"{name}: record_defaults[{field!r}] = {value!r}, but __init__'s default is {default!r}"
        elif key in fitted.fitted_state():
            got = fitted.fitted_state()[key]
            assert type(got) is type(value), f"{name}: record_defaults[{field!r}] = {value!r}, fitted {got!r}"
    for c in (obj.clone(), fitted):
        arrays: dict[str, np.ndarray] = {}  # a fitted backend's arrays stay arrays, as in its file
        rec = c.to_record(arrays)
        for field, value in declared.items():
            part, key = field.split(".", 1)
            held = c.get_params(deep=False) if part == "params" else c.fitted_state()
            if key in held and type(held[key]) is type(value) and held[key] == value:
                assert key not in rec[part], f"{name}: {field}={value!r} is what its absence means, yet it is written"
        for part in ("params", "state"):
            new = set(rec[part]) - FORMAT_2_FIELDS[name][part] - {f.split(".", 1)[1] for f in declared
                                                                   if f.startswith(part + ".")}
            assert not new, f"{name}: record {part} {sorted(new)} were not written by format 2 and are not declared " \
                            "in record_defaults (a record, and the fingerprint hashed from it, would change)"
        back = cls.from_record(json.loads(json.dumps(rec)), arrays)
        assert same(back, c), f"{name}: a record without its default fields does not rebuild the same component"


def check_component(obj: Component) -> None:
    """Run every conformance check on ``obj`` (an example instance of its class)."""
    check_params(obj)
    check_record(obj)
    check_fit_twice(obj)
    check_record_defaults(obj)
