"""XGBoost model files checked before XGBoost reads them.

XGBoost trusts a model's tree tables when it predicts: a child index past the tree, a node that is its own child,
a split feature past the inputs or a tree assigned to an output the model lacks reads or writes outside its
buffers. A model in a pipekit file is therefore parsed here first (XGBoost's JSON, or the UBJSON that files
written by earlier pipekit versions hold), checked field by field against the model the backend's state
describes, and handed to XGBoost as JSON written from the checked values, so XGBoost reads exactly what was
checked.

    >>> model_from_ubjson(b"{U\\x01a[$U#U\\x02\\x01\\x02}")
    {'a': [1, 2]}
"""
from __future__ import annotations

import json
import math
import re
import struct
from typing import Any

import numpy as np

from pipekit.backends.gbm import MAX_DEPTH, MAX_LEAVES
from pipekit.core.errors import ExportError

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
              "binary": {"binary:logistic", "binary:logitraw", "binary:hinge", "reg:logistic"},
              "multiclass": {"multi:softprob", "multi:softmax"}}


# ------------------------------------------------------------------------------------------------ UBJSON
_UBJ_INTS = {ord("i"): ">b", ord("U"): ">B", ord("I"): ">h", ord("l"): ">i", ord("L"): ">q"}
_UBJ_FLOATS = {ord("d"): ">f4", ord("D"): ">f8"}
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


def parse_xgboost_model(data: bytes) -> dict[str, Any]:
    """The model in ``data``: XGBoost's JSON (what pipekit writes), or its UBJSON (files of earlier versions)."""
    if data[:1] == b"{" and data[1:2] in (b"\"", b" ", b"\n", b"}"):
        try:
            model = json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicate_keys,
                               parse_constant=_reject_constant)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
            raise ExportError(f"the XGBoost model is not valid JSON ({type(e).__name__}: {str(e)[:120]})") from None
    else:
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
        raise ExportError(f"{where} must be a list of {n} finite numbers")
    return value


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
    if not (isinstance(objective, dict) and objective.get("name") in OBJECTIVES[kind]):
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

