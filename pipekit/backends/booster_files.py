"""XGBoost and CatBoost model files checked before their libraries read them.

Both libraries trust a model's tables when they load and predict: a child index past the tree, a node that is
its own child, a split feature past the inputs, a tree assigned to an output the model lacks (XGBoost), a split
index past the model's binary features, a target-statistics table whose length is no multiple of its stride, a
tree with too few leaf values (CatBoost) read or write outside their buffers. A model in a pipekit file is
therefore parsed here first (the library's JSON; XGBoost's UBJSON in files of earlier versions), checked field by
field against the model the backend's state describes, and handed to the library as JSON written from the
checked values, so it reads exactly what was checked. (CatBoost's binary CBM format, which files of earlier
versions hold, is not read: it cannot be checked before CatBoost reads it.)

A GBM's ``params`` read from a file are held to :data:`LIGHTGBM_FILE_PARAMS`, LightGBM's training parameters with
what each accepts (:func:`check_lightgbm_file_params`): LightGBM opens the paths and network connections that
some of its parameters name, which a file must not choose. An XGBoost or CatBoost model's are held the same way
(:func:`check_file_params`) to :data:`XGBOOST_FILE_PARAMS` and :data:`CATBOOST_FILE_PARAMS`: their folders, snapshots,
threads and devices (CatBoost writes its training logs into ``train_dir``) are given in code, never by a file. The
threads of all three come from the model's ``n_jobs=`` argument: no file sets them.

    >>> model_from_ubjson(b"{U\\x01a[$U#U\\x02\\x01\\x02}")
    {'a': [1, 2]}
"""
from __future__ import annotations

import functools
import json
import math
import numbers
import re
import struct
from typing import Any

import numpy as np

from pipekit.core.errors import ExportError, FieldError, ParameterError
from pipekit.core.validate import Interval, Is, Options, finite_number, shown

# ------------------------------------------------------------------------------------------- LightGBM's limits
#: LightGBM's own ceiling on ``num_leaves`` (its parameter check refuses more): no model it trains is larger
MAX_LEAVES = 131072
#: deepest tree accepted: LightGBM's TreeSHAP (``contributions``) recurses once per level and allocates a path table
#: of depth^2/2 entries for each tree and row (2048 levels: 67 MB), so a file's chain of leaves cannot exhaust the
#: stack or memory. Trees LightGBM grows leaf-wise reach tens of levels (31 leaves: at most 30).
MAX_DEPTH = 2048


@functools.cache
def lightgbm_names() -> dict[str, str]:
    """Every name of a LightGBM parameter (its aliases too) -> the parameter's own name, from LightGBM's table of
    them, read once; ``{}`` where LightGBM (or its table) is missing, so ``names.get(key, key)`` reads each name as
    itself then."""
    try:
        from lightgbm.basic import _ConfigAliases

        table = _ConfigAliases._get_all_param_aliases()
    except (ImportError, AttributeError):
        return {}
    return {alias: name for name, aliases in table.items() for alias in (name, *aliases)}


_MONOTONE_TEXT = re.compile(r"\s*[-+]?[0-9]+\s*")


def monotone_values(key: str, value: Any) -> list[int]:
    """``monotone_constraints`` (given as ``key``) as the whole numbers LightGBM reads from it: a list, tuple or
    1-D array of -1, 0 or 1, or LightGBM's comma-separated text of them (``"0,1,-1"``); anything else is refused
    with the reason, as LightGBM would end the process or read it as other numbers. ``fit`` reads a GBM's constraints
    with it, and a file's ``params`` are held to it (:data:`pipekit.backends.booster_files.LIGHTGBM_FILE_PARAMS`), so
    every form a GBM trains with is one its file holds.

    >>> monotone_values("mc", "0,1,-1"), monotone_values("mc", np.array([1, 0]))
    ([0, 1, -1], [1, 0])
    """
    what = ("give -1, 0 or 1 per input, as a list ([0, 1, -1]), a 1-D array or LightGBM's comma-separated text "
            "('0,1,-1')")
    if isinstance(value, str):
        parts = value.split(",") if value.strip() else []
        if not all(_MONOTONE_TEXT.fullmatch(p) for p in parts):
            raise ParameterError(f"GBM: params {key}={value[:60]!r} is not LightGBM's comma-separated text of whole "
                                 f"numbers; {what}")
        items: list[Any] = [int(p) for p in parts]
    elif isinstance(value, np.ndarray):
        if value.ndim != 1:
            raise ParameterError(f"GBM: params {key}= is an array of shape {value.shape}; {what}")
        items = value.tolist()
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise ParameterError(f"GBM: params {key}= is a {type(value).__name__}, which LightGBM does not read as one "
                             f"value per input; {what}")
    out = []
    for i, v in enumerate(items):
        whole = isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))
        if not whole or int(v) not in (-1, 0, 1):
            raise ParameterError(f"GBM: params {key}= has {v!r} at position {i}; {what}")
        out.append(int(v))
    return out


#: XGBoost writes a root's parent as this (its invalid node id with the left-child bit)
ROOT_PARENT = 2147483647
#: deepest nesting of a model's objects and arrays (XGBoost's own is 6 levels)
MAX_NESTING = 16
#: a category code above this in a categorical split would make XGBoost allocate a bitset of that many bits
MAX_CATEGORY = 1 << 24
#: nodes in one tree (XGBoost grows depth-wise: depth 16 is 131,071 nodes; leaf-wise growth is capped the same)
MAX_NODES = 2 * MAX_LEAVES - 1

_NUMBER = re.compile(r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_WORD = re.compile(r"[A-Za-z0-9_:.+\-]{0,64}")
_TREE_KEYS = {"base_weights", "categories", "categories_nodes", "categories_segments", "categories_sizes",
              "default_left", "id", "left_children", "loss_changes", "parents", "right_children", "split_conditions",
              "split_indices", "split_type", "sum_hessian", "tree_param"}
_PER_NODE = ("base_weights", "default_left", "left_children", "loss_changes", "parents", "right_children",
             "split_conditions", "split_indices", "split_type", "sum_hessian")
#: objectives by the kind of model they make (one output, or one per class); a file naming another is refused
OBJECTIVES = {"regression": {"reg:squarederror", "reg:squaredlogerror", "reg:pseudohubererror", "reg:absoluteerror",
                             "reg:quantileerror", "reg:gamma", "reg:tweedie", "count:poisson"},
              "binary": {"binary:logistic", "reg:logistic"},  # a classifier's outputs are probabilities
              "multiclass": {"multi:softprob"}}


# ------------------------------------------------------------------------------------------------ UBJSON
_UBJ_INTS = {ord("i"): ">b", ord("U"): ">B", ord("I"): ">h", ord("l"): ">i", ord("L"): ">q"}
_UBJ_FLOATS = {ord("d"): ">f4", ord("D"): ">f8"}
_UBJ_EMPTY = {ord("Z"), ord("T"), ord("F"), ord("N")}
_UBJ_NUMPY = {ord("i"): ">i1", ord("U"): ">u1", ord("I"): ">i2", ord("l"): ">i4", ord("L"): ">i8", **_UBJ_FLOATS}


class _UBJReader:
    """A strict UBJSON reader over bytes: every length is checked against the bytes left before anything is
    read or allocated, and nesting is bounded."""

    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ExportError(f"the UBJSON model ends early (at byte {self.pos}, {n} more bytes wanted)")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def marker(self) -> int:
        return self.take(1)[0]

    def int_of(self, m: int) -> int:
        if m not in _UBJ_INTS:
            raise ExportError(f"the UBJSON model has a length of type {chr(m)!r} at byte {self.pos - 1}")
        fmt = _UBJ_INTS[m]
        return int(struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0])

    def count(self) -> int:
        n = self.int_of(self.marker())
        if n < 0 or n > len(self.data) - self.pos:
            raise ExportError(f"the UBJSON model declares {n} entries at byte {self.pos} with "
                              f"{len(self.data) - self.pos} bytes left")
        return n

    def text(self) -> str:
        raw = self.take(self.count())
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ExportError(f"the UBJSON model has text that is not UTF-8 before byte {self.pos}") from None

    def value(self, m: int, depth: int) -> Any:
        if m in _UBJ_INTS:
            return self.int_of(m)
        if m in _UBJ_FLOATS:
            fmt = _UBJ_FLOATS[m]
            return float(np.frombuffer(self.take(int(fmt[-1])), dtype=fmt)[0])
        if m == ord("S"):
            return self.text()
        if m == ord("C"):
            return self.take(1).decode("latin-1")
        if m in (ord("T"), ord("F")):
            return m == ord("T")
        if m == ord("Z"):
            return None
        if m in (ord("["), ord("{")):
            if depth >= MAX_NESTING:
                raise ExportError(f"the UBJSON model nests more than {MAX_NESTING} levels")
            return self.container(m == ord("{"), depth + 1)
        raise ExportError(f"the UBJSON model has an unknown value type {chr(m)!r} at byte {self.pos - 1}")

    def container(self, is_object: bool, depth: int) -> Any:
        kind, n = None, None
        m = self.marker()
        if m == ord("$"):
            kind, m = self.marker(), self.marker()
            if m != ord("#"):
                raise ExportError(f"the UBJSON model gives a type without a count at byte {self.pos - 1}")
        if kind in _UBJ_EMPTY:  # values of no bytes: a count of them would cost nothing in the file
            raise ExportError(f"the UBJSON model has a container typed {chr(kind)!r} at byte {self.pos - 2}, whose "
                              "values take no bytes")
        if m == ord("#"):
            n = self.count()
            m = -1
        if n is not None and kind is not None and not is_object and kind in _UBJ_NUMPY:  # typed numbers: one read
            dtype = np.dtype(_UBJ_NUMPY[kind])
            values = np.frombuffer(self.take(n * dtype.itemsize), dtype=dtype)
            return values.astype(np.float64 if dtype.kind == "f" else np.int64).tolist()
        out: Any = {} if is_object else []
        i = 0
        while n is None or i < n:
            if m == -1:
                m = self.marker() if kind is None or is_object else kind
            if n is None and m == ord("}" if is_object else "]"):
                return out
            if is_object:
                key = self.text_after(m)
                if key in out:
                    raise ExportError(f"the UBJSON model names {key!r} twice in one object")
                out[key] = self.value(self.marker() if kind is None else kind, depth)
            else:
                out.append(self.value(m, depth))
            i, m = i + 1, -1
        return out

    def text_after(self, m: int) -> str:
        """An object's key: its length (of the integer type ``m``) and its bytes."""
        n = self.int_of(m)
        if n < 0 or n > len(self.data) - self.pos:
            raise ExportError(f"the UBJSON model has a key of {n} bytes at byte {self.pos}")
        try:
            return self.take(n).decode("utf-8")
        except UnicodeDecodeError:
            raise ExportError(f"the UBJSON model has a key that is not UTF-8 before byte {self.pos}") from None


def model_from_ubjson(data: bytes) -> Any:
    """A UBJSON document (XGBoost's binary model format) as Python values, read strictly."""
    reader = _UBJReader(data)
    value = reader.value(reader.marker(), 0)
    if reader.pos != len(data):
        raise ExportError(f"the UBJSON model has {len(data) - reader.pos} bytes after its end")
    return value


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ExportError(f"the JSON model names {k!r} twice in one object")
        out[k] = v
    return out


def _reject_constant(name: str) -> Any:
    raise ExportError(f"the JSON model holds {name}, which JSON does not have")


def _nan_only(name: str) -> Any:
    """NaN read as a number (XGBoost 2 writes it as a categorical split's threshold); Infinity refused."""
    return math.nan if name == "NaN" else _reject_constant(name)


def looks_like_json(data: bytes) -> bool:
    """Whether ``data`` opens as a JSON object (a UBJSON object's ``{`` is followed by a length's type)."""
    return data[:1] == b"{" and data[1:2] in (b"\"", b" ", b"\n", b"\r", b"\t", b"}")


def parse_json_model(data: bytes, library: str, nan: bool = False) -> dict[str, Any]:
    """A JSON model read strictly: UTF-8, no key twice in one object, no Infinity, an object; no NaN either, unless
    ``nan`` (XGBoost's models, whose checks accept NaN only as a categorical split's threshold and refuse it
    everywhere else)."""
    try:
        model = json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicate_keys,
                           parse_constant=_nan_only if nan else _reject_constant)
    except json.JSONDecodeError as e:
        raise ExportError(f"the {library} model is not valid JSON ({type(e).__name__}: {str(e)[:120]}, after "
                          f"{e.doc[max(e.pos - 40, 0):e.pos]!r})") from None
    except (UnicodeDecodeError, RecursionError) as e:
        raise ExportError(f"the {library} model is not valid JSON ({type(e).__name__}: {str(e)[:120]})") from None
    if not isinstance(model, dict):
        raise ExportError(f"the {library} model must be an object")
    return model


def parse_xgboost_model(data: bytes) -> dict[str, Any]:
    """The model in ``data``: XGBoost's JSON (what pipekit writes), or its UBJSON (files of earlier versions)."""
    if looks_like_json(data):
        return parse_json_model(data, "XGBoost", nan=True)
    model = model_from_ubjson(data)
    if not isinstance(model, dict):
        raise ExportError("the XGBoost model must be an object")
    return model


# ------------------------------------------------------------------------------------------------ checks
def _obj(value: Any, where: str, keys: set[str], optional: frozenset[str] = frozenset()) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ExportError(f"{where} must be an object, got {type(value).__name__}")
    missing, extra = keys - set(value) - optional, set(value) - keys
    if missing or extra:
        raise ExportError(f"{where} must have the keys {sorted(keys)}: "
                          + ", ".join(p for p in (f"missing {sorted(missing)}" if missing else "",
                                                  f"unknown {sorted(extra)[:5]}" if extra else "") if p))
    return value


def _one_of(value: Any, options: set[str]) -> bool:
    """Whether ``value`` is one of the texts ``options`` (a list or an object from a file is not, and is no error)."""
    return isinstance(value, str) and value in options


def _int_text(value: Any, where: str, low: int, high: int) -> int:
    """A whole number XGBoost writes as text (``"5"``) or as a number, in [low, high]."""
    if isinstance(value, str) and re.fullmatch(r"[0-9]{1,12}", value):
        value = int(value)
    if type(value) is not int or not low <= value <= high:
        raise ExportError(f"{where} must be a whole number in [{low}, {high}], got {value!r:.40}")
    return value


def _ints(value: Any, where: str, n: int | None, low: int, high: int) -> np.ndarray:
    if not isinstance(value, list) or (n is not None and len(value) != n) or not all(type(v) is int for v in value):
        raise ExportError(f"{where} must be a list of {'' if n is None else f'{n} '}whole numbers")
    arr = np.asarray(value, dtype=np.int64)
    if arr.size and (arr.min() < low or arr.max() > high):
        raise ExportError(f"{where} must hold whole numbers in [{low}, {high}], got one of {int(arr.min())} .. "
                          f"{int(arr.max())}")
    return arr


def _floats(value: Any, where: str, n: int) -> list[float]:
    if not (isinstance(value, list) and len(value) == n and all(
            type(v) in (int, float) and math.isfinite(v) for v in value)):
        bad = next((i for i, v in enumerate(value) if type(v) is float and not math.isfinite(v)), None) \
            if isinstance(value, list) else None
        raise ExportError(f"{where} must be a list of {n} finite numbers"
                          + ("" if bad is None else f", got {'NaN' if math.isnan(value[bad]) else 'an infinite number'}"
                                                    f" at position {bad}"))
    return value


def xgboost_json(model: dict[str, Any]) -> bytes:
    """A checked XGBoost model as the compact JSON XGBoost is given (and a file holds)."""
    return json.dumps(model, separators=(",", ":"), allow_nan=False).encode()


def _base_score(value: Any, where: str, n_outputs: int) -> None:
    """``"[5.62E-1]"`` (one number per output) or ``"5.62E-1"``, finite."""
    if not isinstance(value, str) or len(value) > 64 * n_outputs + 2:
        raise ExportError(f"{where} must be text holding {n_outputs} number(s)")
    inner = value[1:-1] if value.startswith("[") and value.endswith("]") else value
    parts = inner.split(",")
    if not (len(parts) in (1, n_outputs) and all(_NUMBER.fullmatch(p) and math.isfinite(float(p)) for p in parts)):
        raise ExportError(f"{where} must hold {n_outputs} finite number(s), got {value!r:.60}")


def _params(value: Any, where: str) -> None:
    """An object of parameter objects whose values are short words or numbers (XGBoost reads them as settings)."""
    if not isinstance(value, dict):
        raise ExportError(f"{where} must be an object")
    for k, v in value.items():
        if isinstance(v, dict):
            if k == "name" or not _WORD.fullmatch(k):
                raise ExportError(f"{where}.{k:.40} is not a parameter group")
            for p, x in v.items():
                if not (_WORD.fullmatch(p) and isinstance(x, str) and _WORD.fullmatch(x)):
                    raise ExportError(f"{where}.{k}.{p:.40} must be a setting of a few letters or digits")
        elif k != "name":
            raise ExportError(f"{where}.{k:.40} must be a parameter group (an object)")


def _check_tree(tree: Any, where: str, index: int, n_features: int, categorical: np.ndarray) -> None:
    tree = _obj(tree, where, _TREE_KEYS)
    if _int_text(tree["id"], f"{where}.id", 0, 1 << 31) != index:
        raise ExportError(f"{where}.id must be {index}, its place among the trees")
    param = _obj(tree["tree_param"], f"{where}.tree_param",
                 {"num_deleted", "num_feature", "num_nodes", "size_leaf_vector"})
    n = _int_text(param["num_nodes"], f"{where}.tree_param.num_nodes", 1, MAX_NODES)
    if _int_text(param["num_feature"], f"{where}.tree_param.num_feature", 0, 1 << 31) != n_features:
        raise ExportError(f"{where}.tree_param.num_feature must be the model's {n_features} inputs")
    _int_text(param["num_deleted"], f"{where}.tree_param.num_deleted", 0, 0)
    _int_text(param["size_leaf_vector"], f"{where}.tree_param.size_leaf_vector", 0, 1)  # one output per leaf
    left = _ints(tree["left_children"], f"{where}.left_children", n, -1, n - 1)
    right = _ints(tree["right_children"], f"{where}.right_children", n, -1, n - 1)
    parents = _ints(tree["parents"], f"{where}.parents", n, 0, ROOT_PARENT)
    feature = _ints(tree["split_indices"], f"{where}.split_indices", n, 0, max(n_features - 1, 0))
    kind = _ints(tree["split_type"], f"{where}.split_type", n, 0, 1)
    _ints(tree["default_left"], f"{where}.default_left", n, 0, 1)
    conditions = tree["split_conditions"]
    if isinstance(conditions, list) and len(conditions) == n:
        # XGBoost 2 writes a categorical split's threshold as NaN, which it never reads (the split's categories
        # decide): it is written as 0, so the model is JSON and XGBoost is handed finite numbers only
        tree["split_conditions"] = [0.0 if k == 1 and type(v) is float and math.isnan(v) else v
                                    for k, v in zip(kind.tolist(), conditions)]
    for key in ("base_weights", "loss_changes", "split_conditions", "sum_hessian"):
        _floats(tree[key], f"{where}.{key}", n)
    # each internal node's children come after it, every node but the root is a child once, and its parent says so
    leaf = left == -1
    if not np.array_equal(leaf, right == -1):
        raise ExportError(f"{where}: a node has one child; XGBoost's nodes have two or none")
    inner = np.flatnonzero(~leaf)
    kids = np.concatenate([left[inner], right[inner]])
    if (left[inner] <= inner).any() or (right[inner] <= inner).any():
        raise ExportError(f"{where}: a node's child comes before it (or is itself), so the tree could loop")
    if len(kids) != n - 1 or len(np.unique(kids)) != n - 1 or 0 in kids:
        raise ExportError(f"{where}: its nodes are not one tree (a node is reached twice, or not at all)")
    if parents[0] != ROOT_PARENT or not (np.array_equal(parents[left[inner]], inner)
                                         and np.array_equal(parents[right[inner]], inner)):
        raise ExportError(f"{where}.parents must name each node's parent")
    depth = np.zeros(n, dtype=np.int64)
    for i in inner:  # parents come first, so each depth is known when its node is reached
        depth[left[i]] = depth[right[i]] = depth[i] + 1
    if depth.max() > MAX_DEPTH:
        raise ExportError(f"{where}: its leaves are {int(depth.max())} levels deep, over the {MAX_DEPTH} accepted")
    # categorical splits: on categorical inputs, each with its own stretch of the category list
    split_cat = np.flatnonzero(kind == 1)
    if (leaf[split_cat]).any() or not categorical[feature[split_cat]].all():
        raise ExportError(f"{where}: a categorical split is on a leaf or on an input that is not categorical")
    cats = _ints(tree["categories"], f"{where}.categories", None, 0, MAX_CATEGORY)
    nodes = _ints(tree["categories_nodes"], f"{where}.categories_nodes", len(split_cat), 0, n - 1)
    segments = _ints(tree["categories_segments"], f"{where}.categories_segments", len(split_cat), 0, len(cats))
    sizes = _ints(tree["categories_sizes"], f"{where}.categories_sizes", len(split_cat), 0, len(cats))
    if not np.array_equal(nodes, split_cat):
        raise ExportError(f"{where}.categories_nodes must list the tree's categorical splits, in order")
    if (segments + sizes > len(cats)).any():
        raise ExportError(f"{where}: a categorical split's categories run past the category list")


def checked_xgboost_model(model: dict[str, Any], n_features: int, categorical: list[bool], task: str,
                          n_classes: int) -> dict[str, Any]:
    """``model`` (XGBoost's JSON model as Python values) checked to be a tree model over ``n_features`` inputs
    (``categorical`` says which are categories) for ``task`` with ``n_classes`` classes (0 for regression); returns
    it. Everything XGBoost indexes with is checked: tree shapes, split inputs, categories, each tree's output."""
    top = _obj(model, "the XGBoost model", {"learner", "version"})
    version = top["version"]
    if not (isinstance(version, list) and len(version) == 3 and all(type(v) is int and 0 <= v < 1000 for v in version)
            and version[0] >= 1):
        raise ExportError("the XGBoost model's version must be three whole numbers")
    learner = _obj(top["learner"], "learner", {"attributes", "feature_names", "feature_types", "gradient_booster",
                                               "learner_model_param", "objective"})
    attrs = learner["attributes"]
    if not (isinstance(attrs, dict) and all(_WORD.fullmatch(k) and isinstance(v, str) and len(v) <= 64
                                            for k, v in attrs.items())):
        raise ExportError("learner.attributes must map short names to short texts")
    names, types = learner["feature_names"], learner["feature_types"]
    if names != [f"f{i}" for i in range(n_features)]:
        raise ExportError(f"learner.feature_names must be pipekit's names of its {n_features} inputs (f0, f1, ...)")
    if types != ["c" if c else "q" for c in categorical]:
        raise ExportError("learner.feature_types must mark the model's categorical inputs 'c' and the others 'q'")
    param = _obj(learner["learner_model_param"], "learner.learner_model_param",
                 {"base_score", "boost_from_average", "num_class", "num_feature", "num_target"})
    n_class = _int_text(param["num_class"], "learner_model_param.num_class", 0, 1 << 20)
    kind = "regression" if task == "regression" else "binary" if n_classes == 2 else "multiclass"
    want = n_classes if kind == "multiclass" else 0
    if n_class != want:
        raise ExportError(f"learner_model_param.num_class is {n_class}, where a {kind} model over the state's "
                          f"{n_classes or 'no'} classes has {want}")
    if _int_text(param["num_feature"], "learner_model_param.num_feature", 0, 1 << 31) != n_features:
        raise ExportError(f"learner_model_param.num_feature must be the model's {n_features} inputs")
    _int_text(param["num_target"], "learner_model_param.num_target", 1, 1)
    _int_text(param["boost_from_average"], "learner_model_param.boost_from_average", 0, 1)
    n_outputs = max(n_class, 1)
    _base_score(param["base_score"], "learner_model_param.base_score", n_outputs)
    objective = learner["objective"]
    if not (isinstance(objective, dict) and _one_of(objective.get("name"), OBJECTIVES[kind])):
        raise ExportError(f"learner.objective must name a {kind} objective ({', '.join(sorted(OBJECTIVES[kind]))})")
    _params(objective, "learner.objective")
    if kind == "multiclass" and _int_text(objective.get("softmax_multiclass_param", {}).get("num_class"),
                                          "objective.softmax_multiclass_param.num_class", 0, 1 << 20) != n_class:
        raise ExportError("objective.softmax_multiclass_param.num_class must be the model's num_class")
    booster = learner["gradient_booster"]
    if isinstance(booster, dict) and booster.get("name") == "dart":
        booster = _obj(booster, "gradient_booster", {"gbtree", "name", "weight_drop"})
        drop, booster = booster["weight_drop"], booster["gbtree"]
    else:
        drop = None
    booster = _obj(booster, "gradient_booster", {"model", "name"})
    if booster["name"] != "gbtree":
        raise ExportError(f"gradient_booster.name must be 'gbtree' or 'dart' (tree models), got {booster['name']!r:.40}")
    gbm = _obj(booster["model"], "gradient_booster.model",
               {"cats", "gbtree_model_param", "iteration_indptr", "tree_info", "trees"}, optional=frozenset({"cats"}))
    if "cats" in gbm:  # XGBoost's own re-coding of category names; pipekit gives it codes, so it is empty
        cats = _obj(gbm["cats"], "gradient_booster.model.cats", {"enc", "feature_segments", "sorted_idx"})
        if any(v != [] for v in cats.values()):
            raise ExportError("gradient_booster.model.cats must be empty: pipekit gives XGBoost category codes")
    trees = gbm["trees"]
    if not isinstance(trees, list):
        raise ExportError("gradient_booster.model.trees must be a list")
    counts = _obj(gbm["gbtree_model_param"], "gbtree_model_param", {"num_parallel_tree", "num_trees"})
    if _int_text(counts["num_trees"], "gbtree_model_param.num_trees", 0, 1 << 31) != len(trees):
        raise ExportError(f"gbtree_model_param.num_trees must be the {len(trees)} trees the model holds")
    _int_text(counts["num_parallel_tree"], "gbtree_model_param.num_parallel_tree", 1, 1 << 16)
    _ints(gbm["tree_info"], "gradient_booster.model.tree_info", len(trees), 0, n_outputs - 1)
    indptr = _ints(gbm["iteration_indptr"], "gradient_booster.model.iteration_indptr", None, 0, len(trees))
    if len(indptr) < 1 or indptr[0] != 0 or indptr[-1] != len(trees) or (np.diff(indptr) < 0).any():
        raise ExportError("gradient_booster.model.iteration_indptr must rise from 0 to the number of trees")
    if drop is not None:
        _floats(drop, "gradient_booster.weight_drop", len(trees))
    is_cat = np.asarray(categorical, dtype=bool)
    for i, tree in enumerate(trees):
        _check_tree(tree, f"tree {i}", i, n_features, is_cat)
    return model



# ------------------------------------------------------------------------------------------------ CatBoost
#: the deepest symmetric tree CatBoost grows (its own limit for ``depth``)
CATBOOST_MAX_DEPTH = 16
CTR_TYPES = {"Borders", "Buckets", "Counter", "FeatureFreq", "BinarizedTargetMeanValue", "FloatTargetMeanValue"}
#: a target statistic's table: per category hash, the counts that follow it (by kind; ``None``: one per class)
_CTR_STRIDE = {"Counter": 2, "FeatureFreq": 2, "BinarizedTargetMeanValue": 3, "FloatTargetMeanValue": 3,
               "Borders": None, "Buckets": None}
_INT32 = (-(1 << 31), (1 << 31) - 1)
#: CatBoost losses by the kind of model they make (how raw scores become predictions)
LOSSES = {"regression": {"RMSE", "MAE", "Quantile", "MAPE", "Poisson", "Huber", "Expectile", "LogLinQuantile",
                         "Tweedie", "Lq", "LogCosh"},
          "binary": {"Logloss", "CrossEntropy"}, "multiclass": {"MultiClass", "MultiClassOneVsAll"}}
#: regression losses whose raw score is the log of the prediction (a regressor predicts its exponent)
LOG_LINK_LOSSES = frozenset({"Poisson", "Tweedie", "LogLinQuantile"})
#: CatBoost regression losses that predict no single estimate of the target per row, and what they predict instead
NOT_ONE_ESTIMATE = {
    "RMSEWithUncertainty": "predicts two values per row (the mean and the log of the variance)",
    "SurvivalAft": "needs a target of two columns (the lower and upper bound of each time)",
    "Cox": "predicts a log relative risk per row, not an estimate of the target"}


def catboost_loss(params: Any) -> str | None:
    """The name of the CatBoost loss ``params`` give (``loss_function``, or its other name ``objective``), without
    its settings; None where they give no name (CatBoost's default for the task, or a loss object).

    >>> catboost_loss({"loss_function": "Quantile:alpha=0.9"}), catboost_loss(None)
    ('Quantile', None)
    """
    loss = (params.get("loss_function", params.get("objective")) if isinstance(params, dict) else None)
    return loss.partition(":")[0] if isinstance(loss, str) else None


def check_catboost_loss(params: Any, task: str) -> None:
    """Refuse, as a :class:`ParameterError`, a CatBoost loss in ``params`` that makes a regression model predict no
    single estimate of the target per row (:data:`NOT_ONE_ESTIMATE`).

    >>> check_catboost_loss({"loss_function": "Tweedie:variance_power=1.5"}, "regression")
    >>> check_catboost_loss({"loss_function": "RMSEWithUncertainty"}, "regression")
    Traceback (most recent call last):
    ...
    pipekit.core.errors.ParameterError: CatBoost: params loss_function='RMSEWithUncertainty' predicts two values per row (the mean and the log of the variance), and a regression model predicts one estimate of the target per row; give one of 'Expectile', 'Huber', 'LogCosh', 'LogLinQuantile', 'Lq', 'MAE', 'MAPE', 'Poisson', 'Quantile', 'RMSE', 'Tweedie' (with settings where CatBoost takes them: 'Quantile:alpha=0.9')
    """
    name = catboost_loss(params)
    if task == "regression" and name in NOT_ONE_ESTIMATE:
        key = "loss_function" if "loss_function" in params else "objective"
        raise ParameterError(f"CatBoost: params {key}={params[key]!r:.80} {NOT_ONE_ESTIMATE[name]}, and a regression "
                             f"model predicts one estimate of the target per row; give one of "
                             f"{', '.join(map(repr, sorted(LOSSES['regression'])))} (with settings where CatBoost "
                             "takes them: 'Quantile:alpha=0.9')")


def _num(value: Any, where: str) -> float:
    if type(value) not in (int, float) or not math.isfinite(value):
        raise ExportError(f"{where} must be a finite number, got {value!r:.40}")
    return float(value)


def _borders(value: Any, where: str) -> list[float]:
    if not isinstance(value, list) or len(value) > 1 << 16:
        raise ExportError(f"{where} must be a list of at most 65536 borders")
    out = [_num(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if any(b <= a for a, b in zip(out, out[1:])):
        raise ExportError(f"{where} must rise")
    return out


def _element(value: Any, where: str, borders: list[list[float]], one_hot: list[list[int]]) -> dict[str, Any]:
    """One input of a target statistic's combination: a category, one of a float input's ``borders``, one of a
    category's ``one_hot`` values (CatBoost looks the split up among the model's own when it predicts)."""
    if not isinstance(value, dict):
        raise ExportError(f"{where} must be an object")
    kind = value.get("combination_element")
    if kind == "cat_feature_value":
        _obj(value, where, {"cat_feature_index", "combination_element"})
        _int_text(value["cat_feature_index"], f"{where}.cat_feature_index", 0, len(one_hot) - 1)
    elif kind == "float_feature":
        _obj(value, where, {"border", "combination_element", "float_feature_index"})
        f = _int_text(value["float_feature_index"], f"{where}.float_feature_index", 0, len(borders) - 1)
        if _num(value["border"], f"{where}.border") not in borders[f]:
            raise ExportError(f"{where}.border is not one of float input {f}'s borders")
    elif kind == "cat_feature_exact_value":
        _obj(value, where, {"cat_feature_index", "combination_element", "value"})
        c = _int_text(value["cat_feature_index"], f"{where}.cat_feature_index", 0, len(one_hot) - 1)
        if type(value["value"]) is not int or value["value"] not in one_hot[c]:
            raise ExportError(f"{where}.value is not one of category {c}'s one-hot values")
    else:
        raise ExportError(f"{where}.combination_element must be cat_feature_value, float_feature or "
                          f"cat_feature_exact_value, got {kind!r:.40}")
    # the keys in the order CatBoost writes them, so a statistic's name is written the same way everywhere
    return {k: value[k] for k in sorted(value)}


def _ctr_name(elements: list[dict[str, Any]], kind: str) -> str:
    """The name CatBoost gives a target statistic (its table's key): its inputs and its kind, as compact JSON."""
    return catboost_json({"identifier": elements, "type": kind})


def catboost_json(model: Any) -> str:
    """A checked CatBoost model (or part of one) as the compact JSON CatBoost is given."""
    return json.dumps(model, separators=(",", ":"), allow_nan=False, ensure_ascii=False)


def exact_for_catboost(x: float) -> float:
    """``x`` rounded to a number CatBoost's JSON reader reads back exactly, so a model saved and loaded predicts
    bit for bit as before. Its reader is exact for decimals of at most 15 digits whose exponent is within 22 of
    the decimal point, and a bit off for others: 15 significant digits, or 22 decimals below 1e-8 (an absolute
    change below 5e-23).

    >>> exact_for_catboost(-0.9480233369557209), exact_for_catboost(1.2345678901234567e-12)
    (-0.948023336955721, 1.2345678901e-12)
    """
    if x == 0 or not math.isfinite(x):
        return x
    return float(f"{x:.15g}") if abs(x) >= 1e-8 else round(x, 22)


def _check_ctr_table(value: Any, where: str, kind: str, border_idx: list[int]) -> None:
    table = _obj(value, where, {"counter_denominator", "hash_map", "hash_stride"})
    stride = _int_text(table["hash_stride"], f"{where}.hash_stride", 2, 1 << 12)
    want = _CTR_STRIDE[kind]
    if want is not None and stride != want:
        raise ExportError(f"{where}.hash_stride must be {want} for a {kind} statistic, got {stride}")
    n_classes = stride - 1  # Borders and Buckets: the hash, then one count per class of the target
    limit = n_classes - 1 if kind == "Borders" else n_classes if kind == "Buckets" else 1
    if any(not 0 <= b < limit for b in border_idx):
        raise ExportError(f"{where}: a split reads target border {max(border_idx)} of a {kind} statistic with "
                          f"{limit} of them")
    _int_text(table["counter_denominator"], f"{where}.counter_denominator", 0, _INT32[1])
    entries = table["hash_map"]
    if not (isinstance(entries, list) and entries and len(entries) % stride == 0):
        raise ExportError(f"{where}.hash_map must hold one or more rows of {stride} entries")
    hashes = entries[::stride]
    if not all(isinstance(h, str) and re.fullmatch(r"[0-9]{1,20}", h) and int(h) < 1 << 64 for h in hashes):
        raise ExportError(f"{where}.hash_map: every row must start with a category hash (an unsigned 64-bit "
                          "number written as text)")
    if len(set(hashes)) != len(hashes):
        raise ExportError(f"{where}.hash_map names a category hash twice")
    counts = [v for i, v in enumerate(entries) if i % stride]
    _ints(counts, f"{where}.hash_map's counts", None, *_INT32)
    # the rows in the order of their hashes: CatBoost writes them in its table's order, which depends on the order
    # they were read in, so the same model would be saved as other bytes each time
    rows = sorted((entries[i:i + stride] for i in range(0, len(entries), stride)), key=lambda r: int(r[0]))
    table["hash_map"] = [v for row in rows for v in row]


def checked_catboost_model(model: dict[str, Any], feature_names: list[str], cat_features: list[str], task: str,
                           n_classes: int) -> dict[str, Any]:
    """``model`` (CatBoost's JSON model as Python values) checked to be a symmetric-tree model over
    ``feature_names`` (``cat_features`` among them) for ``task`` with ``n_classes`` classes (0 for regression);
    returns the model CatBoost is given: the checked values, statistics' names written by pipekit, and of the
    model's information only the training parameters and the classes (numbers and short texts)."""
    _obj(model, "the CatBoost model", {"ctr_data", "features_info", "model_info", "oblivious_trees", "scale_and_bias"},
         optional=frozenset({"ctr_data"}))
    dim = n_classes if task == "classification" and n_classes > 2 else 1
    # inputs: the float ones, then the categories, each at its place among pipekit's columns
    info = _obj(model["features_info"], "features_info", {"categorical_features", "ctrs", "float_features"},
                optional=frozenset({"categorical_features", "ctrs", "float_features"}))
    flat_float = [i for i, c in enumerate(feature_names) if c not in cat_features]
    flat_cat = [i for i, c in enumerate(feature_names) if c in cat_features]
    floats = info.get("float_features", [])
    if not (isinstance(floats, list) and len(floats) == len(flat_float)):
        raise ExportError(f"features_info.float_features must list the model's {len(flat_float)} number inputs")
    bins: list[tuple[str, int, Any]] = []
    float_borders: list[list[float]] = []
    for i, f in enumerate(floats):
        where = f"features_info.float_features[{i}]"
        f = _input(f, where, {"borders", "has_nans", "nan_value_treatment"}, frozenset(), i, flat_float[i],
                   feature_names, "number input")
        if not (type(f["has_nans"]) is bool and f["nan_value_treatment"] in ("AsIs", "AsFalse", "AsTrue")):
            raise ExportError(f"{where}: has_nans or nan_value_treatment is malformed")
        float_borders.append(_borders(f["borders"], f"{where}.borders"))
        bins += [("FloatFeature", i, b) for b in float_borders[-1]]
    cats = info.get("categorical_features", [])
    if not (isinstance(cats, list) and len(cats) == len(flat_cat)):
        raise ExportError(f"features_info.categorical_features must list the model's {len(flat_cat)} categories")
    one_hot: list[tuple[str, int, Any]] = []
    one_hot_values: list[list[int]] = []
    for j, c in enumerate(cats):
        where = f"features_info.categorical_features[{j}]"
        c = _input(c, where, {"string_values", "values"}, frozenset({"string_values", "values"}), j, flat_cat[j],
                   feature_names, "category")
        if "string_values" in c:
            raise ExportError(f"{where}.string_values: pipekit gives CatBoost category codes, not texts")
        if "values" in c:
            values = _ints(c["values"], f"{where}.values", None, *_INT32).tolist()
            if len(values) > 1 << 16 or len(set(values)) != len(values):
                raise ExportError(f"{where}.values must be distinct category hashes")
            one_hot += [("OneHotFeature", j, v) for v in values]
        one_hot_values.append(values if "values" in c else [])
    bins += one_hot
    ctrs = info.get("ctrs", [])
    if not isinstance(ctrs, list):
        raise ExportError("features_info.ctrs must be a list")
    names: list[str] = []
    for k, ctr in enumerate(ctrs):
        where = f"features_info.ctrs[{k}]"
        ctr = _obj(ctr, where, {"borders", "ctr_type", "elements", "identifier", "prior_denomerator",
                                "prior_numerator", "scale", "shift", "target_border_idx"})
        if not _one_of(ctr["ctr_type"], CTR_TYPES):
            raise ExportError(f"{where}.ctr_type must be one of {sorted(CTR_TYPES)}")
        elements = ctr["elements"]
        if not (isinstance(elements, list) and 1 <= len(elements) <= 16):
            raise ExportError(f"{where}.elements must list 1 to 16 inputs")
        ctr["elements"] = [_element(e, f"{where}.elements[{i}]", float_borders, one_hot_values)
                           for i, e in enumerate(elements)]
        for key in ("prior_denomerator", "prior_numerator", "scale", "shift"):
            _num(ctr[key], f"{where}.{key}")
        _int_text(ctr["target_border_idx"], f"{where}.target_border_idx", 0, 1 << 12)
        ctr["identifier"] = _ctr_name(ctr["elements"], ctr["ctr_type"])
        names.append(ctr["identifier"])
        bins += [("OnlineCtr", k, b) for b in _borders(ctr["borders"], f"{where}.borders")]
    # the target statistics' tables: one per statistic the model uses, its key written by pipekit
    tables = model.get("ctr_data", {})
    if not isinstance(tables, dict):
        raise ExportError("ctr_data must be an object")
    by_name = {}
    for key, table in tables.items():
        try:
            parsed = json.loads(key, object_pairs_hook=_no_duplicate_keys, parse_constant=_reject_constant)
        except (json.JSONDecodeError, RecursionError):
            raise ExportError(f"ctr_data: the key {key[:60]!r} is not a statistic's name") from None
        parsed = _obj(parsed, f"ctr_data key {key[:60]!r}", {"identifier", "type"})
        if not _one_of(parsed["type"], CTR_TYPES) or not isinstance(parsed["identifier"], list):
            raise ExportError(f"ctr_data key {key[:60]!r} must name a statistic's kind and inputs")
        elements = [_element(e, f"ctr_data key {key[:60]!r}", float_borders, one_hot_values)
                    for e in parsed["identifier"]]
        by_name[_ctr_name(elements, parsed["type"])] = (parsed["type"], table)
    if set(by_name) != set(names) or len(by_name) != len(tables):
        raise ExportError("ctr_data must hold one table for each statistic features_info.ctrs lists, and no other")
    for name, (kind, table) in by_name.items():
        _check_ctr_table(table, f"ctr_data[{name[:60]!r}]", kind,
                         [c["target_border_idx"] for c in ctrs if c["identifier"] == name])
    # trees: symmetric, each split one of the binary features above (by its index, which CatBoost reads), and
    # as many leaf values as its depth and the outputs make
    trees = model["oblivious_trees"]
    if not isinstance(trees, list):
        raise ExportError("oblivious_trees must be a list (pipekit reads symmetric trees only)")
    for t, tree in enumerate(trees):
        where = f"tree {t}"
        tree = _obj(tree, where, {"leaf_values", "leaf_weights", "splits"}, optional=frozenset({"leaf_weights"}))
        splits = tree["splits"]
        if splits is None:  # CatBoost writes "splits": null for a tree of one leaf (depth 0, no split)
            splits = tree["splits"] = []
        if not (isinstance(splits, list) and len(splits) <= CATBOOST_MAX_DEPTH):
            raise ExportError(f"{where}.splits must list at most {CATBOOST_MAX_DEPTH} splits")
        for s, split in enumerate(splits):
            _check_split(split, f"{where}.splits[{s}]", bins, ctrs)
        leaves = 1 << len(splits)
        for key, n in (("leaf_values", leaves * dim), ("leaf_weights", leaves)):
            if key in tree:
                tree[key] = [exact_for_catboost(float(v)) for v in _floats(tree[key], f"{where}.{key}", n)]
    scale_bias = model["scale_and_bias"]
    if not (isinstance(scale_bias, list) and len(scale_bias) == 2 and isinstance(scale_bias[1], list)):
        raise ExportError("scale_and_bias must be [scale, [bias per output]]")
    model["scale_and_bias"] = [exact_for_catboost(_num(scale_bias[0], "scale_and_bias's scale")),
                               [exact_for_catboost(float(b)) for b in _floats(scale_bias[1], "scale_and_bias's bias",
                                                                              dim)]]
    out = {"model_info": _checked_info(model["model_info"], task, n_classes), "features_info": info,
           "ctr_data": {name: table for name, (_, table) in by_name.items()}, "scale_and_bias": model["scale_and_bias"],
           "oblivious_trees": trees}  # the trees last: a reader stopping early would load fewer of them
    if not out["ctr_data"]:
        del out["ctr_data"]
    return out


def _input(entry: Any, where: str, keys: set[str], optional: frozenset[str], index: int, column: int,
           names: list[str], kind: str) -> dict[str, Any]:
    """An input's entry in ``features_info``: its own ``keys``, and input ``index`` of its ``kind`` at ``column``
    among the model's columns, under that column's name."""
    entry = _obj(entry, where, keys | {"feature_id", "feature_index", "flat_feature_index"}, optional=optional)
    if not (type(entry["feature_index"]) is int and entry["feature_index"] == index
            and type(entry["flat_feature_index"]) is int and entry["flat_feature_index"] == column):
        raise ExportError(f"{where} must be {kind} {index}, column {column}")
    if entry["feature_id"] != names[column]:
        raise ExportError(f"{where}.feature_id must be {names[column]!r}, the column's name")
    return entry


def _check_split(split: Any, where: str, bins: list[tuple[str, int, Any]], ctrs: list[dict[str, Any]]) -> None:
    """A split names its binary feature by index (what CatBoost reads) and describes it: both must agree."""
    if not isinstance(split, dict):
        raise ExportError(f"{where} must be an object")
    kind = split.get("split_type")
    keys = {"FloatFeature": {"border", "float_feature_index"}, "OneHotFeature": {"cat_feature_index", "value"},
            "OnlineCtr": {"border", "ctr_target_border_idx"}}.get(kind) if isinstance(kind, str) else None
    if keys is None:
        raise ExportError(f"{where}.split_type must be FloatFeature, OneHotFeature or OnlineCtr, got {kind!r:.40}")
    _obj(split, where, keys | {"split_index", "split_type"})
    index = _int_text(split["split_index"], f"{where}.split_index", 0, max(len(bins) - 1, 0))
    if not bins:
        raise ExportError(f"{where}: the model has no binary features to split on")
    bin_kind, feature, value = bins[index]
    if kind == "FloatFeature":
        same = bin_kind == kind and split["float_feature_index"] == feature and split["border"] == value
    elif kind == "OneHotFeature":
        same = bin_kind == kind and split["cat_feature_index"] == feature and split["value"] == value
    else:
        same = (bin_kind == kind and split["border"] == value
                and split["ctr_target_border_idx"] == ctrs[feature]["target_border_idx"])
    if not same:
        raise ExportError(f"{where}: split_index {index} is not the split it describes")


def _checked_info(info: Any, task: str, n_classes: int) -> dict[str, Any]:
    """The model information CatBoost is given: its training parameters (how it turns raw scores into
    probabilities) as data of numbers and short texts, and the classes, which must be pipekit's codes 0..k-1."""
    if not isinstance(info, dict):
        raise ExportError("model_info must be an object")
    params = info.get("params")
    _bounded_data(params, "model_info.params", 0)
    if not isinstance(params, dict):
        raise ExportError("model_info.params must be an object")
    loss = params.get("loss_function")
    kind = "regression" if task == "regression" else "binary" if n_classes == 2 else "multiclass"
    if not (isinstance(loss, dict) and _one_of(loss.get("type"), LOSSES[kind])):
        raise ExportError(f"model_info.params.loss_function must name a {kind} loss "
                          f"({', '.join(sorted(LOSSES[kind]))})")
    out: dict[str, Any] = {"params": params}
    if task == "classification":
        want = {"class_label_type": "Integer", "class_names": list(range(n_classes)),
                "class_to_label": list(range(n_classes)), "classes_count": 0}
        if info.get("class_params") != want:
            raise ExportError(f"model_info.class_params must be those of pipekit's {n_classes} class codes")
        out["class_params"] = want
    elif "class_params" in info:
        raise ExportError("model_info.class_params: a regression model has no classes")
    return out


#: where CatBoost keeps the order of a loss's or metric's settings: the JSON text of a list of their names
_KEY_ORDER = "__params_key_order"


def _key_order(value: Any, where: str, names: set[str]) -> str:
    """A ``__params_key_order`` (``'["alpha"]'``), checked to list some of the settings ``names`` beside it, each
    once, and written again by pipekit from the checked names (its quotes are the only escapes in the model's
    settings, and CatBoost wrote them itself)."""
    try:
        order = json.loads(value, parse_constant=_reject_constant) if isinstance(value, str) and len(value) <= 4096 \
            else None
    except (json.JSONDecodeError, RecursionError):
        order = None
    if not (isinstance(order, list) and all(isinstance(k, str) and k in names for k in order)
            and len(set(order)) == len(order)):
        raise ExportError(f"{where} must be the JSON text of a list of the names of the settings beside it, got "
                          f"{value!r:.60}")
    return catboost_json(order)


def _bounded_data(value: Any, where: str, depth: int) -> None:
    if depth > 8:
        raise ExportError(f"{where} nests more than 8 levels")
    if isinstance(value, dict):
        for k, v in value.items():
            if not _WORD.fullmatch(k):
                raise ExportError(f"{where}: the key {k[:40]!r} is not a parameter's name")
            if k == _KEY_ORDER:
                value[k] = _key_order(v, f"{where}.{k}", {n for n in value if n != _KEY_ORDER and _WORD.fullmatch(n)})
                continue
            _bounded_data(v, f"{where}.{k}", depth + 1)
    elif isinstance(value, list):
        if len(value) > 4096:
            raise ExportError(f"{where} lists more than 4096 values")
        for v in value:
            _bounded_data(v, where, depth + 1)
    elif isinstance(value, str):
        if len(value) > 256:
            raise ExportError(f"{where} holds a text of more than 256 characters")
        if not value.isprintable() or any(0xD800 <= ord(c) <= 0xDFFF for c in value) or '"' in value \
                or "\\" in value:
            # CatBoost's JSON reader stops, without an error, at an escape it does not read (a lone surrogate), and
            # loads the part of the model before it: its settings are written without escapes, as UTF-8
            raise ExportError(f"{where} holds a text that is not printable as it stands ({value[:40]!r})")
    elif not (value is None or type(value) in (bool, int, float)):
        raise ExportError(f"{where} holds a {type(value).__name__}")


# ------------------------------------------------------------------------------------------------ LightGBM params
#: the LightGBM parameters a GBM read from a file may hold in ``params``, by LightGBM's own name for each, with what
#: each accepts. They are what the model learns with (learning, trees, regularisation, sampling, categories, bins,
#: objective, metric): data. Settings that name a file LightGBM reads or writes (``forcedsplits_filename``,
#: ``output_model``, ``config``), that train across machines (``machines``, ``num_machines``, ``local_listen_port``,
#: a ``tree_learner`` other than serial), that choose a device, and names LightGBM does not know are refused: a file
#: holding them makes LightGBM open paths or connections its user never chose. The threads (``num_threads``) are
#: refused too: a GBM's ``n_jobs=`` argument sets them. Aliases (``num_leaf``, ``workers``, ``nthread``) are read as
#: the parameter they name (LightGBM's table of them), so none slips past under another name.
_WHOLE = Interval(*_INT32, integer=True)  # seeds, verbosity, limits where 0 or less means none
_COUNT = Interval(0, _INT32[1], integer=True)
_POSITIVE_COUNT = Interval(1, _INT32[1], integer=True)


def _finite(low: float | None = None, high: float | None = None, closed: str = "both") -> Is:
    """A finite number between ``low`` and ``high`` (an infinite one is no setting a booster learns with)."""
    bounds = Interval(low, high, closed)
    return Is(lambda v: finite_number(v) is not None and bounds.accepts(v),
              str(bounds).replace("a number", "a finite number"))


def _list_of(item: Any, what: str) -> Is:
    """A list (or tuple) of values each ``item`` accepts."""
    return Is(lambda v: isinstance(v, (list, tuple)) and all(item.accepts(x) for x in v), f"a list of {what}")


def _monotone(value: Any) -> bool:
    """Whether ``value`` is monotone constraints as a GBM reads them (:func:`pipekit.backends.gbm.monotone_values`)."""
    try:
        monotone_values("monotone_constraints", value)
    except ParameterError:
        return False
    return True


#: monotone constraints, in every form GBM's ``fit`` reads them (a list, a 1-D array, comma-separated text): one rule
#: for LightGBM's and XGBoost's tables
_MONOTONE = Is(_monotone, "-1, 0 or 1 per input, as a list ([0, 1, -1]), a 1-D array or comma-separated text "
                          "('0,1,-1')")
#: interaction constraints: lists of input indices, for LightGBM's and XGBoost's tables
_INTERACTIONS = _list_of(_list_of(_COUNT, "input indices"), "lists of input indices")


def _words(options: frozenset[str], what: str, several: bool = False) -> Is:
    """One of ``options`` (LightGBM's names of them, aliases included); with ``several``, a list of them or their
    comma-separated text, as LightGBM's ``metric`` takes them."""
    def ok(v: Any) -> bool:
        if isinstance(v, str):
            return all(w in options for w in (v.split(",") if several else [v]))
        return several and isinstance(v, (list, tuple)) and all(isinstance(w, str) and w in options for w in v)
    return Is(ok, f"{what}: one of {sorted(w for w in options if w)}" + (", or a list of them" if several else ""))


_OBJECTIVES = frozenset({
    "regression", "regression_l2", "l2", "mean_squared_error", "mse", "l2_root", "root_mean_squared_error", "rmse",
    "regression_l1", "l1", "mean_absolute_error", "mae", "huber", "fair", "poisson", "quantile", "mape",
    "mean_absolute_percentage_error", "gamma", "tweedie", "binary", "multiclass", "softmax", "multiclassova",
    "multiclass_ova", "ova", "ovr", "cross_entropy", "xentropy", "cross_entropy_lambda", "xentlambda", "lambdarank",
    "rank_xendcg", "xendcg", "xe_ndcg", "xe_ndcg_mart", "xendcg_mart"})
_METRICS = _OBJECTIVES | frozenset({
    "", "None", "na", "null", "custom", "gamma_deviance", "ndcg", "map", "mean_average_precision", "auc",
    "average_precision", "binary_logloss", "binary_error", "auc_mu", "multi_logloss", "multi_error",
    "kullback_leibler", "kldiv"})
_FLAG = Options(True, False)
_SHARE = _finite(0, 1)
_FRACTION = _finite(0, 1, closed="right")
_NON_NEGATIVE = _finite(0, None)
_POSITIVE = _finite(0, None, closed="neither")
LIGHTGBM_FILE_PARAMS: dict[str, Any] = {
    # core
    "objective": _words(_OBJECTIVES, "a LightGBM objective"),
    "boosting": _words(frozenset({"gbdt", "gbrt", "rf", "random_forest", "dart", "goss"}), "a boosting type"),
    "data_sample_strategy": _words(frozenset({"bagging", "goss"}), "a sampling strategy"),
    "num_iterations": _COUNT, "learning_rate": _POSITIVE, "num_leaves": Interval(2, MAX_LEAVES, integer=True),
    "tree_learner": _words(frozenset({"serial"}), "the one-machine learner"),
    "seed": _WHOLE, "deterministic": _FLAG,
    # learning control
    "force_col_wise": _FLAG, "force_row_wise": _FLAG, "histogram_pool_size": _finite(),
    "max_depth": _WHOLE, "min_data_in_leaf": _COUNT, "min_sum_hessian_in_leaf": _NON_NEGATIVE,
    "bagging_fraction": _FRACTION, "pos_bagging_fraction": _FRACTION, "neg_bagging_fraction": _FRACTION,
    "bagging_freq": _COUNT, "bagging_seed": _WHOLE, "bagging_by_query": _FLAG,
    "feature_fraction": _FRACTION, "feature_fraction_bynode": _FRACTION, "feature_fraction_seed": _WHOLE,
    "extra_trees": _FLAG, "extra_seed": _WHOLE, "early_stopping_round": _WHOLE,
    "early_stopping_min_delta": _NON_NEGATIVE, "first_metric_only": _FLAG, "max_delta_step": _finite(),
    "lambda_l1": _NON_NEGATIVE, "lambda_l2": _NON_NEGATIVE, "linear_lambda": _NON_NEGATIVE,
    "min_gain_to_split": _NON_NEGATIVE, "drop_rate": _SHARE, "max_drop": _WHOLE, "skip_drop": _SHARE,
    "xgboost_dart_mode": _FLAG, "uniform_drop": _FLAG, "drop_seed": _WHOLE, "top_rate": _SHARE, "other_rate": _SHARE,
    "min_data_per_group": _POSITIVE_COUNT, "max_cat_threshold": _POSITIVE_COUNT, "cat_l2": _NON_NEGATIVE,
    "cat_smooth": _NON_NEGATIVE, "max_cat_to_onehot": _POSITIVE_COUNT, "top_k": _POSITIVE_COUNT,
    "monotone_constraints": _MONOTONE,
    "monotone_constraints_method": _words(frozenset({"basic", "intermediate", "advanced"}), "a method"),
    "monotone_penalty": _NON_NEGATIVE, "feature_contri": _list_of(_finite(), "finite numbers"),
    "refit_decay_rate": _SHARE, "cegb_tradeoff": _NON_NEGATIVE, "cegb_penalty_split": _NON_NEGATIVE,
    "cegb_penalty_feature_lazy": _list_of(_NON_NEGATIVE, "finite numbers >= 0"),
    "cegb_penalty_feature_coupled": _list_of(_NON_NEGATIVE, "finite numbers >= 0"), "path_smooth": _NON_NEGATIVE,
    "interaction_constraints": _INTERACTIONS,
    "verbosity": _WHOLE, "use_quantized_grad": _FLAG, "num_grad_quant_bins": _POSITIVE_COUNT,
    "quant_train_renew_leaf": _FLAG, "stochastic_rounding": _FLAG,
    # dataset
    "linear_tree": _FLAG, "max_bin": Interval(2, _INT32[1], integer=True),
    "max_bin_by_feature": _list_of(Interval(2, _INT32[1], integer=True), "whole numbers >= 2"),
    "min_data_in_bin": _POSITIVE_COUNT, "bin_construct_sample_cnt": _POSITIVE_COUNT, "data_random_seed": _WHOLE,
    "is_enable_sparse": _FLAG, "enable_bundle": _FLAG, "use_missing": _FLAG, "zero_as_missing": _FLAG,
    "feature_pre_filter": _FLAG,
    # objective
    "objective_seed": _WHOLE, "num_class": _POSITIVE_COUNT, "is_unbalance": _FLAG, "scale_pos_weight": _POSITIVE,
    "sigmoid": _POSITIVE, "boost_from_average": _FLAG, "reg_sqrt": _FLAG, "alpha": _POSITIVE, "fair_c": _POSITIVE,
    "poisson_max_delta_step": _POSITIVE, "tweedie_variance_power": _finite(1, 2, closed="left"),
    "lambdarank_truncation_level": _POSITIVE_COUNT, "lambdarank_norm": _FLAG,
    "label_gain": _list_of(_finite(), "finite numbers"), "lambdarank_position_bias_regularization": _NON_NEGATIVE,
    # metric
    "metric": _words(_METRICS, "a LightGBM metric", several=True), "metric_freq": _POSITIVE_COUNT,
    "is_provide_training_metric": _FLAG, "eval_at": _list_of(_POSITIVE_COUNT, "positive whole numbers"),
    "multi_error_top_k": _POSITIVE_COUNT, "auc_mu_weights": _list_of(_finite(), "finite numbers"),
    # how LightGBM reads data files, its numerical precision, what its model text records and what its prediction
    # checks: none chooses a path, a machine or hardware (the device only as "cpu", the value that chooses none)
    "device_type": Options("cpu"), "gpu_use_dp": _FLAG, "precise_float_parser": _FLAG, "two_round": _FLAG,
    "header": _FLAG, "saved_feature_importance_type": Options(0, 1), "predict_disable_shape_check": _FLAG}
#: what a refused LightGBM parameter would make LightGBM do, by its own name
_NETWORK = frozenset({"machines", "machine_list_filename", "num_machines", "local_listen_port", "time_out",
                      "pre_partition"})
_DEVICE = frozenset({"device_type", "gpu_platform_id", "gpu_device_id", "gpu_device_id_list", "num_gpu"})
_PATHS = frozenset({"config", "data", "valid", "input_model", "output_model", "output_result", "convert_model",
                    "save_binary", "snapshot_freq", "forcedbins_filename", "forcedsplits_filename",
                    "parser_config_file"})


def _lightgbm_aliases() -> dict[str, str]:
    """Every name LightGBM reads for a parameter -> its own name; without LightGBM's table of them, only the own
    names of the parameters a file may hold (an alias is then refused, never read as something else)."""
    return lightgbm_names() or {name: name for name in LIGHTGBM_FILE_PARAMS}


#: the names the libraries read for the threads they train with, which a model's ``n_jobs=`` argument sets
_THREADS = frozenset({"num_threads", "nthread", "n_jobs", "thread_count"})


def _threads(library: str) -> str:
    """Why a file may not set the threads ``library`` trains with."""
    return f"sets the threads {library} trains with (pipekit's n_jobs= argument sets them)"


def _refused_because(name: str) -> str:
    if name in _THREADS:
        return _threads("LightGBM")
    if name in _NETWORK:
        return "trains across machines, making LightGBM listen on a port and connect to the hosts named"
    if name in _DEVICE:
        return "chooses the device (GPU) LightGBM trains on"
    if name in _PATHS or name.endswith(("_filename", "_file")):
        return "names a file LightGBM reads or writes"
    return "is not one of the LightGBM training parameters pipekit reads from a file"


class FileParams:
    """What a boosting library's ``params`` read from a file may hold: ``allowed``, each parameter a file may set
    with what it accepts; ``why(name)``, what a refused parameter would make the library do; ``names()``, every name
    the library reads for a parameter -> its own name (None: it reads each name as itself, so every spelling is in
    ``allowed``); ``refused_values``, for an allowed parameter whose other values choose what a file must not (a
    device, other machines), what they would do."""

    def __init__(self, library: str, allowed: dict[str, Any], why: Any, names: Any = None,
                 refused_values: dict[str, str] | None = None):
        self.library, self.allowed, self.why, self.names = library, allowed, why, names
        self.refused_values = refused_values or {}


#: where a setting a file may not hold is given instead (the end of a refusal at load)
_IN_CODE = "Such settings are given in code, after loading: model.set_params(params={...})"


def check_file_params(params: Any, rules: FileParams, field: str = "params.params", instead: str = _IN_CODE) -> None:
    """Refuse, as a :class:`FieldError` naming ``<field>.<key>``, a parameter in a booster's ``params`` read from a
    file that ``rules`` does not allow (under any of its names), or a value its entry does not accept. A file's
    parameters are data; a setting that names a path, a machine, a device or the threads is given in code
    (``instead``: how the refusal says so). XGBoost's and CatBoost's check needs neither library (each reads a name as
    it stands): their files are refused before the library is imported. LightGBM's reads its names from LightGBM's
    table of aliases (``rules.names()``), which imports LightGBM; without that table only the own names of the
    parameters a file may hold are read."""
    if not params:
        return
    if not isinstance(params, dict):
        raise FieldError(field, f"must be a dict of {rules.library} parameters, got {shown(params)}")
    names = rules.names() if rules.names is not None else None
    tail = f" {instead}" if instead else ""
    for key, value in params.items():
        where = f"{field}.{str(key)[:60]}"
        if names is not None:
            name = names.get(key) if isinstance(key, str) else None
            what = (f"is {rules.library}'s {name}" + (f" (named {key!r})" if key != name else "") if name is not None
                    else f"is no name of a {rules.library} parameter")
        else:  # the library reads each name as itself: one it documents is named as its own
            name = key if isinstance(key, str) else None
            known = name is not None and (name in rules.allowed or rules.why(name) != rules.why(""))
            what = f"is {rules.library}'s {name}" if known else f"is {str(key)[:60]!r}"
        if name is None or name not in rules.allowed:
            raise FieldError(where, f"{what}, which {rules.why(name or '')}: pipekit does not read it from a file, "
                                    f"where a model's parameters are data.{tail}")
        accepted = rules.allowed[name]
        if not accepted.accepts(value):
            if name in rules.refused_values:
                raise FieldError(where, f"is {shown(value)}: {rules.refused_values[name]}, which pipekit does not set "
                                        f"from a file.{tail}")
            raise FieldError(where, f"must be {accepted}, got {shown(value)}")


def check_params_to_save(model: str, params: Any, rules: FileParams) -> None:
    """Refuse, as an :class:`ExportError` naming ``params.<key>``, writing a ``model`` (its class name) whose
    ``params`` its file could not be read back with: the check of :func:`check_file_params` that loading runs, run
    when the record is written, so a model that saves also loads. The refusal says to drop or change the setting
    before saving (the threads: to give them with ``n_jobs=``).

    >>> check_params_to_save("GBM", {"extra_trees": True, "device": "cpu"}, LIGHTGBM_RULES)
    >>> check_params_to_save("XGBoost", {"nthread": 8}, XGBOOST_RULES)
    Traceback (most recent call last):
    ...
    pipekit.core.errors.ExportError: XGBoost cannot be saved: field 'params.nthread' is XGBoost's nthread, which sets the threads XGBoost trains with (pipekit's n_jobs= argument sets them): pipekit does not read it from a file, where a model's parameters are data, so pipekit.load would refuse the file. Give the threads with n_jobs= instead (XGBoost(..., n_jobs=8)) and drop 'nthread' from params before saving
    """
    try:
        check_file_params(params, rules, "params", instead="")
    except FieldError as e:
        key = e.field.partition(".")[2]
        names = rules.names() if rules.names is not None else {}
        value = params.get(key) if isinstance(params, dict) else None
        if names.get(key, key) in _THREADS:
            n = value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 4
            fix = f"Give the threads with n_jobs= instead ({model}(..., n_jobs={n})) and drop {key!r} from params"
        elif isinstance(params, dict):
            fix = (f"Drop that setting or change it (model.set_params(params={{...}}) without {key!r}, or with a value "
                   "a file may hold)")
        else:
            fix = "Give params as a dict (or None)"
        raise ExportError(f"{model} cannot be saved: {str(e).rstrip('.')}, so pipekit.load would refuse the file. "
                          f"{fix} before saving") from None


LIGHTGBM_RULES = FileParams("LightGBM", LIGHTGBM_FILE_PARAMS, _refused_because, _lightgbm_aliases,
                            {"tree_learner": "a tree_learner other than 'serial' trains across machines",
                             "device_type": "a device_type other than 'cpu' chooses the device (GPU) LightGBM trains on"})


def check_lightgbm_file_params(params: Any, field: str = "params.params") -> None:
    """Refuse, as a :class:`FieldError` naming ``<field>.<key>``, a LightGBM parameter in a GBM's ``params`` read
    from a file that is not in :data:`LIGHTGBM_FILE_PARAMS` (under any of its names) or whose value that table does
    not accept (:func:`check_file_params`). A file's parameters are data; a setting that names a path, a machine or a
    device is given in code.

    >>> check_lightgbm_file_params({"num_leaf": 63, "extra_trees": True})
    >>> check_lightgbm_file_params({"workers": "10.0.0.1:12400"})
    Traceback (most recent call last):
    ...
    pipekit.core.errors.FieldError: field 'params.params.workers' is LightGBM's machines (named 'workers'), which trains across machines, making LightGBM listen on a port and connect to the hosts named: pipekit does not read it from a file, where a model's parameters are data. Such settings are given in code, after loading: model.set_params(params={...})
    """
    check_file_params(params, LIGHTGBM_RULES, field)


# ------------------------------------------------------------------------------------------------ XGBoost, CatBoost params
# XGBoost and CatBoost read each of their names for a parameter as it stands (``eta`` and ``learning_rate`` are
# both listed), and are handed a file's values as they are: a value is held to the kind and range it takes, a name
# to one of the documented options, so none can name a path.
_SEED = Interval(0, 2**63 - 1, integer=True)
_LIMITED_TEXT = re.compile(r"[A-Za-z0-9_.+\-~]{1,40}")


def _one_or_list(item: Is, what: str) -> Is:
    """A value ``item`` accepts, or a non-empty list of them."""
    return Is(lambda v: item.accepts(v) or (isinstance(v, (list, tuple)) and 0 < len(v) <= 64
                                           and all(item.accepts(x) for x in v)), f"{what}, or a list of them")


def _xgboost_metric(options: frozenset[str]) -> Is:
    """An XGBoost evaluation metric: one of ``options``, with the cut-off (``error@0.6``, ``ndcg@5``) and the
    trailing ``-`` (``ndcg-``) it documents."""
    pattern = re.compile(r"(?P<name>[a-z\-]{1,40}?)(@[0-9]{1,9}(\.[0-9]{1,9})?)?-?")

    def ok(v: Any) -> bool:
        m = pattern.fullmatch(v) if isinstance(v, str) else None
        return m is not None and m.group("name") in options
    return Is(ok, f"an XGBoost metric: one of {sorted(options)} (with @cut-off where XGBoost takes one)")


def _catboost_metric(options: frozenset[str], what: str) -> Is:
    """A CatBoost loss or metric: one of ``options``, with the settings CatBoost documents after a colon
    (``Quantile:alpha=0.9``, ``RMSE:use_weights=false``), each a name and a short word or number."""
    def ok(v: Any) -> bool:
        if not isinstance(v, str) or len(v) > 256:
            return False
        name, _, rest = v.partition(":")
        if name not in options:
            return False
        for setting in rest.split(";") if rest else []:
            key, eq, val = setting.partition("=")
            if not (eq and re.fullmatch(r"[A-Za-z_]{1,40}", key) and _LIMITED_TEXT.fullmatch(val)):
                return False
        return True
    return Is(ok, f"{what}: one of {sorted(options)}, optionally with settings (Quantile:alpha=0.9)")


_XGB_OBJECTIVES = frozenset({
    "reg:squarederror", "reg:squaredlogerror", "reg:logistic", "reg:pseudohubererror", "reg:absoluteerror",
    "reg:quantileerror", "binary:logistic", "binary:logitraw", "binary:hinge", "count:poisson", "survival:cox",
    "survival:aft", "multi:softmax", "multi:softprob", "rank:ndcg", "rank:map", "rank:pairwise", "reg:gamma",
    "reg:tweedie"})
_XGB_METRICS = frozenset({
    "rmse", "rmsle", "mae", "mape", "mphe", "logloss", "error", "merror", "mlogloss", "auc", "aucpr", "pre", "ndcg",
    "map", "poisson-nloglik", "gamma-nloglik", "cox-nloglik", "gamma-deviance", "tweedie-nloglik", "aft-nloglik",
    "interval-regression-accuracy"})
_XGB_TREE_METHODS = frozenset({"auto", "exact", "approx", "hist"})
#: the XGBoost parameters an XGBoost model read from a file may hold in ``params``, with what each accepts: its
#: training parameters (learning, trees, regularisation, sampling, objective, metric, seeds). The threads
#: (``nthread``), the device (``device``, ``gpu_id``, a GPU ``tree_method``), updaters, callbacks, paths and names
#: XGBoost does not document are refused.
XGBOOST_FILE_PARAMS: dict[str, Any] = {
    # general
    "booster": _words(frozenset({"gbtree", "dart"}), "a tree booster"), "verbosity": Interval(0, 3, integer=True),
    "validate_parameters": _FLAG, "disable_default_eval_metric": _FLAG,
    # trees
    "eta": _POSITIVE, "learning_rate": _POSITIVE, "gamma": _NON_NEGATIVE, "min_split_loss": _NON_NEGATIVE,
    "max_depth": Interval(0, MAX_DEPTH, integer=True), "min_child_weight": _NON_NEGATIVE,
    "max_delta_step": _NON_NEGATIVE, "subsample": _FRACTION, "sampling_method": _words(frozenset({"uniform"}),
                                                                                      "a sampling method"),
    "colsample_bytree": _FRACTION, "colsample_bylevel": _FRACTION, "colsample_bynode": _FRACTION,
    "lambda": _NON_NEGATIVE, "reg_lambda": _NON_NEGATIVE, "alpha": _NON_NEGATIVE, "reg_alpha": _NON_NEGATIVE,
    "tree_method": _words(_XGB_TREE_METHODS, "a tree method on the CPU"), "scale_pos_weight": _POSITIVE,
    "refresh_leaf": _FLAG, "grow_policy": _words(frozenset({"depthwise", "lossguide"}), "a growth policy"),
    "max_leaves": Interval(0, MAX_LEAVES, integer=True), "max_bin": Interval(2, _INT32[1], integer=True),
    "num_parallel_tree": _POSITIVE_COUNT, "monotone_constraints": _MONOTONE,
    "interaction_constraints": _INTERACTIONS,
    "multi_strategy": _words(frozenset({"one_output_per_tree", "multi_output_tree"}), "a multi-output strategy"),
    "max_cat_to_onehot": _POSITIVE_COUNT, "max_cat_threshold": _POSITIVE_COUNT,
    # dart
    "sample_type": _words(frozenset({"uniform", "weighted"}), "a dropout sampling"),
    "normalize_type": _words(frozenset({"tree", "forest"}), "a normalisation"), "rate_drop": _SHARE,
    "one_drop": _FLAG, "skip_drop": _SHARE,
    # learning task
    "objective": _words(_XGB_OBJECTIVES, "an XGBoost objective"), "num_class": _POSITIVE_COUNT,
    "base_score": _finite(), "eval_metric": _one_or_list(_xgboost_metric(_XGB_METRICS), "an XGBoost metric"),
    "seed": _SEED, "random_state": _SEED, "seed_per_iteration": _FLAG, "huber_slope": _POSITIVE,
    "quantile_alpha": _one_or_list(_finite(0, 1, closed="neither"), "a number in (0, 1)"),
    "aft_loss_distribution": _words(frozenset({"normal", "logistic", "extreme"}), "a distribution"),
    "aft_loss_distribution_scale": _POSITIVE, "tweedie_variance_power": _finite(1, 2, closed="neither")}


def _xgboost_refused_because(name: str) -> str:
    if name in ("nthread", "n_jobs"):
        return _threads("XGBoost")
    if name in ("device", "gpu_id", "predictor", "use_rmm"):
        return "chooses the device (GPU) XGBoost trains or predicts on"
    if name == "updater":
        return "chooses XGBoost's tree updaters by name (on a GPU, or syncing with other machines)"
    if name in ("callbacks", "callback"):
        return "is code XGBoost calls while it trains"
    if name == "process_type":
        return "makes XGBoost update the trees of a model instead of training new ones"
    if name.endswith(("_file", "_filename", "_fname", "_path", "_dir")):
        return "names a file XGBoost reads or writes"
    return "is not one of the XGBoost training parameters pipekit reads from a file"


XGBOOST_RULES = FileParams("XGBoost", XGBOOST_FILE_PARAMS, _xgboost_refused_because, refused_values={
    "tree_method": "a tree_method other than 'auto', 'exact', 'approx' or 'hist' (gpu_hist) trains on a GPU"})


def check_xgboost_file_params(params: Any, field: str = "params.params") -> None:
    """Refuse, as a :class:`FieldError` naming ``<field>.<key>``, an XGBoost parameter in an XGBoost model's
    ``params`` read from a file that is not in :data:`XGBOOST_FILE_PARAMS` or whose value that table does not
    accept (:func:`check_file_params`).

    >>> check_xgboost_file_params({"eta": 0.1, "max_depth": 4, "eval_metric": ["auc", "error@0.6"]})
    >>> check_xgboost_file_params({"device": "cuda:0"})
    Traceback (most recent call last):
    ...
    pipekit.core.errors.FieldError: field 'params.params.device' is XGBoost's device, which chooses the device (GPU) XGBoost trains or predicts on: pipekit does not read it from a file, where a model's parameters are data. Such settings are given in code, after loading: model.set_params(params={...})
    """
    check_file_params(params, XGBOOST_RULES, field)


_CB_LOSSES = frozenset(set().union(*LOSSES.values()))
_CB_METRICS = _CB_LOSSES | frozenset({
    "R2", "MSLE", "MedianAbsoluteError", "SMAPE", "FairLoss", "NumErrors", "Precision", "Recall", "F1", "F",
    "BalancedAccuracy", "BalancedErrorRate", "MCC", "Accuracy", "CtrFactor", "AUC", "PRAUC", "NormalizedGini",
    "BrierScore", "HingeLoss", "HammingLoss", "ZeroOneLoss", "Kappa", "WKappa", "LogLikelihoodOfPrediction",
    "TotalF1"})
_CB_ROUNDS, _CB_DEPTH = _POSITIVE_COUNT, Interval(1, CATBOOST_MAX_DEPTH, integer=True)
#: the CatBoost parameters a CatBoost model read from a file may hold in ``params``, with what each accepts: its
#: training parameters (learning, trees, regularisation, sampling, borders, loss and metrics, seeds), each under
#: every name CatBoost reads for it. ``allow_writing_files`` is accepted as False only (pipekit's own setting:
#: CatBoost writes no files). Its folders and snapshots (``train_dir``, ``snapshot_file``, ``save_snapshot``), the
#: threads, memory and device (``thread_count``, ``used_ram_limit``, ``task_type``, ``devices``), model shrinkage,
#: callbacks and names CatBoost does not document are refused.
CATBOOST_FILE_PARAMS: dict[str, Any] = {
    # learning
    **dict.fromkeys(("iterations", "num_boost_round", "n_estimators", "num_trees"), _CB_ROUNDS),
    "learning_rate": _POSITIVE, "eta": _POSITIVE, "depth": _CB_DEPTH, "max_depth": _CB_DEPTH,
    "l2_leaf_reg": _NON_NEGATIVE, "reg_lambda": _NON_NEGATIVE, "random_seed": _SEED, "random_state": _SEED,
    "random_strength": _NON_NEGATIVE, "model_size_reg": _NON_NEGATIVE, "boost_from_average": _FLAG,
    "boosting_type": _words(frozenset({"Ordered", "Plain"}), "a boosting type"), "langevin": _FLAG,
    "diffusion_temperature": _NON_NEGATIVE, "posterior_sampling": _FLAG, "penalties_coefficient": _NON_NEGATIVE,
    # sampling
    "bootstrap_type": _words(frozenset({"Bayesian", "Bernoulli", "MVS", "No"}), "a bootstrap type"),
    "bagging_temperature": _NON_NEGATIVE, "subsample": _FRACTION, "mvs_reg": _NON_NEGATIVE,
    "sampling_frequency": _words(frozenset({"PerTree", "PerTreeLevel"}), "a sampling frequency"),
    "rsm": _FRACTION, "colsample_bylevel": _FRACTION,
    # trees and borders
    "grow_policy": _words(frozenset({"SymmetricTree", "Depthwise", "Lossguide"}), "a growth policy"),
    "min_data_in_leaf": _COUNT, "min_child_samples": _COUNT, "max_leaves": Interval(1, 64, integer=True),
    "num_leaves": Interval(1, 64, integer=True),
    "score_function": _words(frozenset({"Cosine", "L2", "NewtonCosine", "NewtonL2"}), "a score function"),
    "border_count": Interval(1, 65535, integer=True), "max_bin": Interval(1, 65535, integer=True),
    "feature_border_type": _words(frozenset({"Median", "Uniform", "UniformAndQuantiles", "MaxLogSum", "MinEntropy",
                                             "GreedyLogSum"}), "a border type"),
    "nan_mode": _words(frozenset({"Min", "Max", "Forbidden"}), "a missing-value mode"),
    "one_hot_max_size": Interval(0, 255, integer=True), "max_ctr_complexity": Interval(0, 16, integer=True),
    "counter_calc_method": _words(frozenset({"SkipTest", "Full"}), "a counter method"),
    "leaf_estimation_method": _words(frozenset({"Newton", "Gradient", "Exact"}), "a leaf estimation method"),
    "leaf_estimation_iterations": _POSITIVE_COUNT,
    "leaf_estimation_backtracking": _words(frozenset({"No", "AnyImprovement", "Armijo"}), "a backtracking"),
    "fold_permutation_block": Interval(1, 256, integer=True), "fold_len_multiplier": _finite(1, None, "neither"),
    "has_time": _FLAG, "approx_on_full_history": _FLAG,
    # objective, metrics, classes
    "loss_function": _catboost_metric(_CB_LOSSES, "a CatBoost loss"),
    "objective": _catboost_metric(_CB_LOSSES, "a CatBoost loss"),
    "eval_metric": _catboost_metric(_CB_METRICS, "a CatBoost metric"),
    "custom_metric": _one_or_list(_catboost_metric(_CB_METRICS, "a CatBoost metric"), "a CatBoost metric"),
    "class_names": _list_of(_COUNT, "class codes"), "class_weights": _list_of(_POSITIVE, "positive numbers"),
    "auto_class_weights": _words(frozenset({"None", "Balanced", "SqrtBalanced"}), "a class weighting"),
    "scale_pos_weight": _POSITIVE, "allow_const_label": _FLAG,
    # early stopping and output
    "od_type": _words(frozenset({"IncToDec", "Iter"}), "an overfitting detector"), "od_pval": _SHARE,
    "od_wait": _COUNT, "use_best_model": _FLAG,
    "verbose": Is(lambda v: _FLAG.accepts(v) or _COUNT.accepts(v), "True, False or a whole number >= 0"),
    "silent": _FLAG, "logging_level": _words(frozenset({"Silent", "Verbose", "Info", "Debug"}), "a logging level"),
    "metric_period": _POSITIVE_COUNT, "allow_writing_files": Options(False)}


def _catboost_refused_because(name: str) -> str:
    if name in ("train_dir", "snapshot_file", "save_snapshot", "snapshot_interval", "input_borders",
                "output_borders") or name.endswith(("_file", "_filename", "_path", "_dir")):
        return "names a file or folder CatBoost reads or writes (its training logs, snapshots, borders)"
    if name in ("thread_count", "n_jobs", "nthread"):
        return _threads("CatBoost")
    if name in ("task_type", "devices", "gpu_ram_part", "pinned_memory_size", "gpu_cat_features_storage",
                "data_partition"):
        return "chooses the device (GPU) CatBoost trains on"
    if name == "used_ram_limit":
        return "sets the memory CatBoost may take"
    if name in ("callbacks", "callback"):
        return "is code CatBoost calls while it trains"
    return "is not one of the CatBoost training parameters pipekit reads from a file"


CATBOOST_RULES = FileParams("CatBoost", CATBOOST_FILE_PARAMS, _catboost_refused_because, refused_values={
    "allow_writing_files": "CatBoost then writes its training logs and snapshots into its train_dir (the working "
                           "folder unless given)"})


def check_catboost_file_params(params: Any, field: str = "params.params") -> None:
    """Refuse, as a :class:`FieldError` naming ``<field>.<key>``, a CatBoost parameter in a CatBoost model's
    ``params`` read from a file that is not in :data:`CATBOOST_FILE_PARAMS` or whose value that table does not
    accept (:func:`check_file_params`).

    >>> check_catboost_file_params({"depth": 4, "loss_function": "Quantile:alpha=0.9", "allow_writing_files": False})
    >>> check_catboost_file_params({"train_dir": "/tmp/logs"})
    Traceback (most recent call last):
    ...
    pipekit.core.errors.FieldError: field 'params.params.train_dir' is CatBoost's train_dir, which names a file or folder CatBoost reads or writes (its training logs, snapshots, borders): pipekit does not read it from a file, where a model's parameters are data. Such settings are given in code, after loading: model.set_params(params={...})
    """
    check_file_params(params, CATBOOST_RULES, field)
