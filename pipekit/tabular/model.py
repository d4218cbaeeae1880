"""The tabular net: an embedding per categorical column, continuous columns, then an MLP.

Example:
    >>> import torch
    >>> model = TabularModel([(10, 6), (3, 3)], n_cont=2, out_sz=2, layers=[16, 8])
    >>> model(torch.tensor([[1, 2], [0, 1]]), torch.randn(2, 2)).shape
    torch.Size([2, 2])
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules import module as _mod

from pipekit.core.errors import DataError, ExportError, FieldError, ParameterError, warn
from pipekit.core.validate import BOOL, POSITIVE_SIZES, Y_RANGE, Interval, Is, check, one_of_two_names, unknown_names
from pipekit.data.dataloaders import DataLoaders
from pipekit.learn.nets import Y_RANGES, BatchNorm, check_stored_layers, per_target, sigmoid_range, target_y_range
from pipekit.learn.registry import register_arch

if TYPE_CHECKING:
    from pipekit.learn.learner import Learner


def emb_sz_rule(n_cat: int) -> int:
    """Embedding width for a column with ``n_cat`` classes (including ``#na#``): min(600, round(1.6 n^0.56)).

    >>> emb_sz_rule(10), emb_sz_rule(3)
    (6, 3)
    """
    check("emb_sz_rule", n_cat=(n_cat, Interval(1, None, integer=True)))
    return min(600, round(1.6 * n_cat**0.56))


def check_embedding_rows(emb_szs: Any, cat_names: Sequence[str], classes: Mapping[str, Sequence[Any]],
                         field: str) -> None:
    """Refuse embedding sizes read from a file whose rows are not the categories the fitted processing codes each
    column into (one table per categorical column, in order, one row per class): a code past its table's rows
    failed at predict, and tables swapped between columns read one column's codes in another's table.

    >>> check_embedding_rows([[3, 2], [5, 3]], ["a", "b"], {"a": ["#na#", "x", "y"], "b": list("12345")}, "emb")
    >>> check_embedding_rows([[5, 3], [3, 2]], ["a", "b"], {"a": ["#na#", "x", "y"], "b": list("12345")}, "emb")
    Traceback (most recent call last):
    ...
    pipekit.core.errors.ExportError: field 'emb[0]' has 5 rows, but column 'a' is coded into 3 categories
    """
    if not isinstance(emb_szs, (list, tuple)) or len(emb_szs) != len(cat_names):
        raise ExportError(f"field {field!r} must size one embedding per categorical column ({len(cat_names)}: "
                          f"{list(cat_names)[:5]}), got {str(emb_szs)[:60]}")
    for i, (sz, name) in enumerate(zip(emb_szs, cat_names)):
        rows = sz[0] if isinstance(sz, (list, tuple)) and sz else None
        if rows != len(classes.get(name, ())):
            raise ExportError(f"field '{field}[{i}]' has {rows} rows, but column {name!r} is coded into "
                              f"{len(classes.get(name, ()))} categories")


def get_emb_sz(cat_names: Any, classes: Mapping[str, Sequence[Any]] | None = None,
               sz_dict: Mapping[str, int] | None = None) -> list[tuple[int, int]]:
    """(vocab size, width) per categorical column; ``sz_dict`` overrides the width of named columns. As in the
    book, ``get_emb_sz(dls)`` (or a ``Tabular``) reads the columns and vocabularies of the data, and
    ``get_emb_sz(to, {'education': 4})`` takes the widths second, as fastai's ``get_emb_sz(to, sz_dict)``.

    >>> from pipekit.tabular import get_emb_sz
    >>> classes = {"workclass": ["#na#"] + [f"w{i}" for i in range(9)], "sex": ["#na#", "F", "M"]}
    >>> get_emb_sz(["workclass", "sex"], classes)
    [(10, 6), (3, 3)]
    >>> get_emb_sz(["workclass", "sex"], classes, sz_dict={"sex": 2})
    [(10, 6), (3, 2)]
    """
    data_classes = getattr(cat_names, "classes", None)
    if (classes is not None and sz_dict is None and isinstance(data_classes, Mapping) and isinstance(classes, Mapping)
            and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in classes.values())):
        classes, sz_dict = None, classes  # fastai's get_emb_sz(to, sz_dict): the widths given second
    if classes is None:  # the book's get_emb_sz(dls) / get_emb_sz(to)
        classes = getattr(cat_names, "classes", None)
        if not isinstance(classes, Mapping):
            raise ParameterError("get_emb_sz takes (cat_names, classes), or DataLoaders / a Tabular with categorical "
                                 f"columns; got {type(cat_names).__name__}")
        cat_names = list(getattr(cat_names, "cat_names", None) or classes)
    lacking = [c for c in cat_names if c not in classes]
    if lacking:
        raise ParameterError(f"get_emb_sz: categorical column(s) {lacking[:5]} have no classes to size an embedding "
                             "from: Categorify learns them; add it to procs (procs=[Categorify, FillMissing, Normalize]), "
                             "or give the column(s) as cont_names")
    sz_dict = dict(sz_dict or {})
    unknown = set(sz_dict) - set(cat_names)
    if unknown:
        raise ParameterError(f"emb_szs: {sorted(unknown)} are not categorical columns; they are {list(cat_names)}.")
    return [(len(classes[c]), int(sz_dict.get(c, emb_sz_rule(len(classes[c]))))) for c in cat_names]


class ColumnEmbedding:
    """One categorical column's table inside ``TabularEmbeddings``, used like an ``nn.Embedding``.

    ``weight`` is a ``(num_embeddings, embedding_dim)`` view of the shared parameter: reading it, copying
    into it (``weight.data.copy_``) and gradients all go to that column's rows.
    """

    def __init__(self, parent: TabularEmbeddings, i: int) -> None:
        self._parent, self._i = parent, i
        self.num_embeddings, self.embedding_dim = parent.emb_szs[i]

    @property
    def weight(self) -> torch.Tensor:
        return self._parent.column_weight(self._i)

    def __call__(self, codes: torch.Tensor) -> torch.Tensor:
        return F.embedding(codes, self.weight)

    def __repr__(self) -> str:
        return f"ColumnEmbedding({self.num_embeddings}, {self.embedding_dim})"


class TabularEmbeddings(nn.Module):
    """The embedding tables of all categorical columns in one parameter, looked up with one gather.

    The output is the concatenation of each column's embedding of its code, exactly what one
    :class:`~pipekit.learn.nets.Embedding` per column gives (same widths, each table started as it starts one: a
    normal of standard deviation 0.01 truncated at two of them, drawn column by column, as fastai's tabular models),
    but a batch costs one index computation and one ``take`` instead of a lookup, a slice and a
    concatenation per column (and their backward passes), and the optimiser updates one tensor.
    ``embeds[i]`` is column ``i``'s table (``.weight``, ``.num_embeddings``, ``.embedding_dim``).

    Example:
        >>> embeds = TabularEmbeddings([(10, 6), (3, 3)])
        >>> embeds(torch.tensor([[1, 2], [9, 0]])).shape, embeds[1].weight.shape
        (torch.Size([2, 9]), torch.Size([3, 3]))
    """

    # index buffers, set in __init__ (declared so type checkers know them as tensors, not submodules)
    _cols: torch.Tensor
    _mult: torch.Tensor
    _add: torch.Tensor
    _lo: torch.Tensor
    _hi: torch.Tensor

    def check_rows(self, cat_names: Sequence[str], classes: Mapping[str, Sequence[Any]], field: str) -> None:
        """Refuse tables whose rows are not the categories ``classes`` codes each of ``cat_names`` into (see
        :func:`check_embedding_rows`); ``load_learner`` calls it on a tabular net read from a file."""
        check_embedding_rows([list(sz) for sz in self.emb_szs], cat_names, classes, field)

    def __init__(self, emb_szs: Sequence[Sequence[int]]) -> None:
        super().__init__()
        self.emb_szs = [(int(ni), int(nf)) for ni, nf in emb_szs]
        for i, (ni, nf) in enumerate(self.emb_szs):
            if ni < 1 or nf < 1:
                raise ParameterError(f"TabularModel: emb_szs[{i}] must be (n_classes >= 1, width >= 1), got {(ni, nf)}.")
        starts = np.cumsum([0] + [ni * nf for ni, nf in self.emb_szs]).tolist()
        self._starts = starts
        if self.emb_szs:
            # drawn table by table in column order, each into its own slice, with pipekit.learn.nets.Embedding's
            # truncated normal and no concatenation (on the meta device, where load_learner checks a file's
            # shapes, torch.cat imports torch's compiler stack: seconds in a new process)
            weight = torch.empty(starts[-1])
            with torch.no_grad():
                for i, (ni, nf) in enumerate(self.emb_szs):
                    nn.init.trunc_normal_(weight[starts[i]:starts[i + 1]].view(ni, nf), std=0.01, a=-0.02, b=0.02)
            self.weight = nn.Parameter(weight)
        else:
            self.register_parameter("weight", None)
        # output position k (column c, component j) reads weight[code_c * width_c + start_c + j]
        cols = [c for c, (_, nf) in enumerate(self.emb_szs) for _ in range(nf)]
        mult = [nf for _, nf in self.emb_szs for _ in range(nf)]
        add = [starts[c] + j for c, (_, nf) in enumerate(self.emb_szs) for j in range(nf)]
        self.register_buffer("_cols", torch.tensor(cols, dtype=torch.long), persistent=False)
        self.register_buffer("_mult", torch.tensor(mult, dtype=torch.long), persistent=False)
        self.register_buffer("_add", torch.tensor(add, dtype=torch.long), persistent=False)
        self.register_buffer("_lo", torch.zeros(len(self.emb_szs), dtype=torch.long), persistent=False)
        self.register_buffer("_hi", torch.tensor([ni - 1 for ni, _ in self.emb_szs], dtype=torch.long),
                             persistent=False)

    def __len__(self) -> int:
        return len(self.emb_szs)

    def __getitem__(self, i: int) -> ColumnEmbedding:
        if not -len(self) <= i < len(self):
            raise IndexError(f"embeds[{i}]: there are {len(self)} categorical columns.")
        return ColumnEmbedding(self, i % len(self))

    def __iter__(self):  # type: ignore[override]
        return (ColumnEmbedding(self, i) for i in range(len(self)))

    def column_weight(self, i: int) -> torch.Tensor:
        """Column ``i``'s table as a ``(num_embeddings, embedding_dim)`` view of the shared parameter."""
        ni, nf = self.emb_szs[i]
        return self.weight[self._starts[i]:self._starts[i + 1]].view(ni, nf)

    def forward(self, x_cat: torch.Tensor) -> torch.Tensor:
        if x_cat.ndim != 2 or x_cat.shape[1] != len(self):
            raise DataError(f"TabularModel: x_cat must be (batch, {len(self)}) category codes, "
                             f"got shape {tuple(x_cat.shape)}.")
        # a code outside its column's table would silently read a neighbouring table: refuse it
        if x_cat.dtype != torch.long:
            x_cat = x_cat.long()
        clamped = torch.clamp(x_cat, self._lo, self._hi)
        if x_cat.device.type != "cpu" or torch.compiler.is_compiling():
            # on an accelerator, checked on the device: no host sync per batch; under torch.compile and
            # torch.export, an assertion kept in the graph, which checks every batch the compiled or exported
            # program runs (a Python branch on the values can be neither compiled nor exported)
            torch._assert_async(torch.eq(clamped, x_cat).all(),
                                "TabularModel: a categorical code is outside its column's embedding table")
        elif not torch.equal(clamped, x_cat):  # the cheapest full range check on CPU
            bad = int(((x_cat < self._lo) | (x_cat > self._hi)).any(0).nonzero()[0, 0])
            col = x_cat[:, bad]
            raise IndexError(f"TabularModel: categorical input {bad} has codes in [{int(col.min())}, "
                             f"{int(col.max())}] but its embedding has {self.emb_szs[bad][0]} rows "
                             f"(codes 0..{self.emb_szs[bad][0] - 1}); encode new data with the fitted procs.")
        # gather along the columns (index_select on dim 1 is several times slower on CPU at large batches)
        idx = torch.gather(x_cat, 1, self._cols.expand(x_cat.shape[0], -1)).mul_(self._mult).add_(self._add)
        if idx.device.type == "cpu":
            return self.weight.take(idx)
        # take's gradient on a GPU adds into the table with atomics, in no fixed order (torch has no deterministic
        # kernel for it): an embedding lookup of the same rows has one, so a seed repeats its run there too
        return F.embedding(idx, self.weight.unsqueeze(1)).squeeze(-1)

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        # weights saved with one nn.Embedding per column (keys "<prefix>0.weight", ...) load into the
        # shared table column by column
        old = [f"{prefix}{i}.weight" for i in range(len(self))]
        if old and f"{prefix}weight" not in state_dict and all(k in state_dict for k in old):
            state_dict[f"{prefix}weight"] = torch.cat([state_dict.pop(k).reshape(-1) for k in old])
        super()._load_from_state_dict(state_dict, prefix, *args)

    def extra_repr(self) -> str:
        return ", ".join(f"{ni}x{nf}" for ni, nf in self.emb_szs)


_DROPOUT = Interval(0, 1, closed="left")

#: what each of the TabularModel options a config may set (``tabular_learner``'s and TorchTabular's ``config``) takes
TABULAR_OPTIONS: dict[str, Any] = {
    "ps": Is(lambda v: v is None or _DROPOUT.accepts(v) or (isinstance(v, (list, tuple))
                                                           and all(_DROPOUT.accepts(x) for x in v)),
             "None, a dropout probability in [0, 1), or one per layer"),
    "embed_p": _DROPOUT, "use_bn": BOOL, "bn_final": BOOL, "bn_cont": BOOL}


def _is_relu(v: Any) -> bool:
    return v is nn.ReLU or type(v) is nn.ReLU


#: what the fastai options of a ``TabularModel`` that pipekit's net has built in take: ``act_cls`` a ReLU
#: (fastai's default ``nn.ReLU(inplace=True)``; the class or any ``nn.ReLU``, in place or not: the same values) and
#: ``lin_first`` True (each hidden block's linear layer before its activation, batch norm and dropout)
_BUILT_IN = {
    "act_cls": (_is_relu, "is not built by pipekit's TabularModel, whose hidden blocks use a ReLU (fastai's default, "
                          "act_cls=nn.ReLU(inplace=True)), so that a file rebuilds an exported net from its stored "
                          "settings; leave act_cls out, or give tabular_learner a body= (an nn.Module, or a function "
                          "of n_in that builds one) with the activation you want, e.g. body=lambda n_in: "
                          "nn.Sequential(nn.Linear(n_in, 200), nn.Mish(), nn.Linear(200, 100), nn.Mish())"),
    "lin_first": (lambda v: v is True, "is not built by pipekit's TabularModel, whose hidden blocks are Linear, ReLU, "
                                       "BatchNorm1d, Dropout, in that order (fastai's default, lin_first=True); "
                                       "leave lin_first out")}


def config_keys() -> list[str]:
    """The keys a ``tabular_learner`` ``config`` (and :func:`tabular_config`) takes: ``TabularModel``'s options
    (the arguments ``tabular_learner`` does not fill from the data and ``layers``), then fastai's ``act_cls`` and
    ``lin_first``."""
    filled = ("self", "emb_szs", "n_cont", "out_sz", "layers")
    return [n for n in inspect.signature(TabularModel.__init__).parameters if n not in filled] + list(_BUILT_IN)


def check_config(owner: str, config: Any, body: bool = True) -> None:
    """Check a ``config`` of ``TabularModel`` options, as ``tabular_learner`` and ``TorchTabular`` take it: a mapping
    whose keys are :func:`config_keys` and whose values ``TabularModel`` takes; a ParameterError names an unknown key
    (and the accepted ones) or the first bad value, saying why. fastai's ``act_cls`` and ``lin_first`` are accepted
    at the values pipekit's net has built in (a ReLU; True), and refused otherwise with the reason. ``body``: whether
    ``owner`` takes a custom ``body`` (``TorchTabular`` does not: it rebuilds its net from its layers and config).

    >>> check_config("tabular_learner", {"ps": [0.1, 0.0], "act_cls": nn.ReLU(inplace=True), "y_range": (0, 5)})
    >>> check_config("tabular_learner", {"p": 0.1})
    Traceback (most recent call last):
    ...
    pipekit.core.errors.ParameterError: tabular_learner: config has unknown key(s) ['p']; did you mean 'ps'? The accepted keys are ['ps', 'embed_p', 'y_range', 'use_bn', 'bn_final', 'bn_cont', 'body', 'act_cls', 'lin_first']
    >>> check_config("TorchTabular", {"use_bn": "yes"}, body=False)
    Traceback (most recent call last):
    ...
    pipekit.core.errors.ParameterError: TorchTabular: config.use_bn='yes' is not accepted; expected True or False
    """
    if not isinstance(config, Mapping):
        raise ParameterError(f"{owner}: config must be a dict of TabularModel options (tabular_config(ps=..., "
                             f"embed_p=...) makes one), got {type(config).__name__}")
    accepted = [k for k in config_keys() if body or k != "body"]
    unknown = [str(k) for k in config if k not in accepted and k != "body"]
    if unknown:
        raise ParameterError(f"{owner}: config has unknown key(s) {unknown}; "
                             f"{unknown_names(unknown, accepted, 'accepted keys')}")
    if not body and "body" in config:
        raise ParameterError(f"{owner}: config.body is not taken: {owner} builds its net from its layers and config "
                             "alone, as its file stores them, so its hidden blocks are TabularModel's; leave body "
                             "out, or train a custom body with tabular_learner(dls, body=...)")
    for key, (test, why) in _BUILT_IN.items():
        if key in config and not test(config[key]):
            raise ParameterError(f"{owner}: config.{key}={config[key]!r} {why}")
    check(owner, **{f"config.{k}": (v, TABULAR_OPTIONS[k] if k in TABULAR_OPTIONS else Y_RANGE)
                    for k, v in config.items() if k in TABULAR_OPTIONS or k == "y_range" and not per_target(v)})
    if per_target(config.get("y_range")):  # one range per target
        target_y_range(f"{owner}: config", config["y_range"])


def _same_range(a: Any, b: Any) -> bool:
    return target_y_range("y_range", a) == target_y_range("y_range", b)


def config_y_range(owner: str, y_range: Any, config: Mapping[str, Any] | None) -> Any:
    """The output range given as ``y_range=`` or, as fastai's :func:`tabular_config` gives it, in a (checked)
    ``config``: one argument under two names (:func:`~pipekit.core.validate.one_of_two_names`), so two different
    ranges are refused.

    >>> config_y_range("tabular_learner", None, {"y_range": (0, 5)}), config_y_range("x", [0, 5], {"y_range": (0, 5)})
    ((0, 5), (0, 5))
    """
    in_config = None if config is None else config.get("y_range")
    if y_range is not None and in_config is not None:
        target_y_range(owner, y_range)
    return one_of_two_names(owner, "y_range", y_range, "config's y_range", in_config, None, same=_same_range,
                            why="fastai's tabular_config gives y_range in the config")


def model_options(config: Mapping[str, Any] | None) -> dict[str, Any]:
    """The ``TabularModel`` arguments a (checked) ``config`` gives, as a new dict: its keys but ``y_range`` (see
    :func:`config_y_range`) and fastai's ``act_cls`` and ``lin_first``, which the net has built in.

    >>> model_options({"ps": 0.1, "y_range": (0, 5), "act_cls": nn.ReLU(inplace=True)})
    {'ps': 0.1}
    """
    return {k: v for k, v in (config or {}).items() if k != "y_range" and k not in _BUILT_IN}


def tabular_config(**kwargs: Any) -> dict[str, Any]:
    """fastai's ``tabular_config``: the ``TabularModel`` options for ``tabular_learner(config=...)``, as a dict:
    ``ps``, ``embed_p``, ``y_range``, ``use_bn``, ``bn_final``, ``bn_cont`` (see :class:`TabularModel`), and fastai's
    ``act_cls`` and ``lin_first`` at the values pipekit's net has built in (a ReLU; True). Each key and value is
    checked here (:func:`check_config`), so a mistake is named where it is written.

    >>> tabular_config(ps=[0.001, 0.01], embed_p=0.04, y_range=(0, 12))
    {'ps': [0.001, 0.01], 'embed_p': 0.04, 'y_range': (0, 12)}
    """
    check_config("tabular_config", kwargs)
    return dict(kwargs)


#: a tabular net's ``emb_szs`` as a file gives them: ``[n_classes, width]`` pairs of positive whole numbers
EMB_SZS = Is(lambda v: isinstance(v, (list, tuple)) and all(
    isinstance(p, (list, tuple)) and len(p) == 2 and all(Interval(1, None, integer=True).accepts(x) for x in p)
    for p in v), "a list of [n_classes, width] pairs of positive integers")


def _check_stored_embeddings(config: Mapping[str, Any], shapes: Mapping[str, Sequence[int]], bad: Any) -> None:
    """The embedding sizes and continuous inputs a stored config asks for against the stored weights, before anything
    is built: the tables (one ``embeds.weight`` of every column's rows x width, or a table per column in files of
    one ``nn.Embedding`` per column) hold exactly the config's ``emb_szs``, the widths plus ``n_cont`` are the inputs
    of the first stored linear layer, and ``n_cont`` the size of the stored input batch norm. Building a table (or
    the index lists of its width) from a width the weights do not have took memory in proportion to it: gigabytes
    for a width of 2**25."""
    emb_szs = [(int(ni), int(nf)) for ni, nf in config["emb_szs"]]
    n_cont = config.get("n_cont", 0)
    table = shapes.get("embeds.weight")
    per_column = [s for i in range(len(emb_szs)) if (s := shapes.get(f"embeds.{i}.weight")) is not None]
    if table is None and emb_szs and len(per_column) == len(emb_szs):  # one nn.Embedding per column
        for i, ((ni, nf), s) in enumerate(zip(emb_szs, per_column)):
            if tuple(s) != (ni, nf):
                raise bad(f"emb_szs[{i}]", f"is [{ni}, {nf}], but the stored table of that column is {list(s)}")
    else:
        cells = sum(ni * nf for ni, nf in emb_szs)
        held = int(np.prod(table)) if table is not None else 0
        if cells != held or (table is not None and len(table) != 1):
            raise bad("emb_szs", f"asks for {len(emb_szs)} embedding table(s) of {cells:,} values in all, but the stored "
                                 f"embeddings (embeds.weight) hold {held:,}")
    norm = shapes.get("bn_cont.weight")
    if norm is not None and tuple(norm) != (n_cont,):
        raise bad("n_cont", f"is {n_cont}, but the stored batch norm of the continuous inputs has {list(norm)} values")
    if config.get("body") is None:  # the first stored linear layer takes the embeddings and the continuous inputs
        key = re.compile(r"layers\.(\d+)\.weight")
        first = min(((int(m.group(1)), s) for k, s in shapes.items() if (m := key.fullmatch(k)) is not None
                     and len(s) == 2), default=None)
        width = sum(nf for _, nf in emb_szs)
        if first is not None and width + n_cont != first[1][1]:
            raise bad("emb_szs", f"gives embeddings {width:,} wide, which with n_cont={n_cont} continuous input(s) "
                                 f"makes {width + n_cont:,} inputs, but the first stored linear layer takes "
                                 f"{first[1][1]:,}")


def check_stored_net(config: Mapping[str, Any], shapes: Mapping[str, Sequence[int]], field: str,
                     net: type | None = None) -> None:
    """Check the arguments of a ``TabularModel`` read from a file (``config``, as the file stores them) against the
    names and shapes of the weights stored with it, before any module is built: the number of hidden ``layers``
    and each size must be those of the stored linear layers, so a file cannot ask for a net larger than its own
    weights (building one module per layer, even on the meta device, takes time and memory per layer). An
    :class:`FieldError` (an ExportError) names the field (``field`` + ``.layers``, ...).

    >>> shapes = {"embeds.weight": (12,), "layers.0.weight": (8, 5), "layers.2.weight": (1, 8)}
    >>> check_stored_net({"emb_szs": [[4, 3]], "n_cont": 2, "out_sz": 1, "layers": [8],
    ...                   "use_bn": False}, shapes, "arch.config")
    >>> check_stored_net({"emb_szs": [[4, 3]], "n_cont": 2, "out_sz": 1, "layers": [1] * 1000,
    ...                   "use_bn": False}, shapes, "arch.config")
    Traceback (most recent call last):
    ...
    pipekit.core.errors.FieldError: field 'arch.config.layers' has 1000 hidden layer size(s), but the stored weights hold 1 hidden linear layer(s) of sizes [8]; the file is damaged or was not written by pipekit
    """
    def bad(name: str, what: str) -> FieldError:
        return FieldError(f"{field}.{name}", f"{what}; the file is damaged or was not written by pipekit")

    params = inspect.signature(net or TabularModel).parameters  # a subclass (EmbeddingNN) takes its own arguments
    known = set(params)
    unknown = sorted(str(k) for k in config if k not in known)
    if unknown:
        raise FieldError(field, f"has unknown key(s) {unknown}; TabularModel takes {sorted(known)}")
    fields: dict[str, Any] = {"y_range": Y_RANGES, "layers": POSITIVE_SIZES, "n_cont": Interval(0, None, integer=True),
                              "out_sz": Interval(1, None, integer=True), "emb_szs": EMB_SZS, **TABULAR_OPTIONS}
    for name, value in config.items():
        constraint = fields.get(name)
        if constraint is not None and not constraint.accepts(value):
            raise bad(name, f"must be {constraint}, got {str(value)[:60]!r}")
    if config.get("body") is not None:  # a registered body's own weights are compared once it is built
        if "emb_szs" in config:
            _check_stored_embeddings(config, shapes, bad)
        return
    layers = list(config.get("layers", params["layers"].default if "layers" in params else ()))
    stored = check_stored_layers(layers, shapes, field)
    if "out_sz" in config and config["out_sz"] != stored[-1]:
        raise bad("out_sz", f"is {config['out_sz']}, but the stored output layer has {stored[-1]} output(s)")
    ps = config.get("ps")
    if isinstance(ps, (list, tuple)) and len(ps) != len(layers):
        raise bad("ps", f"has {len(ps)} values for {len(layers)} layers")
    if "emb_szs" in config:  # the embeddings and the continuous inputs the first of those layers takes
        _check_stored_embeddings(config, shapes, bad)


@register_arch("TabularModel")
class TabularModel(nn.Module):
    """Embeddings for categorical columns + batch-normalised continuous columns, then Linear/ReLU/BN/Dropout blocks.

    Args:
        emb_szs: ``(n_classes, width)`` per categorical column.
        n_cont: number of continuous columns.
        out_sz: outputs (classes for classification, targets for regression).
        layers: hidden sizes.  ps: dropout per hidden layer (a float for all).  embed_p: dropout on embeddings.
        y_range: ``(low, high)`` squashes outputs with a scaled sigmoid (regression); for several targets, one
            bound per target on each side (``([17, 1], [91, 100])``, lists, arrays or tensors), each output in
            its own range (see :func:`~pipekit.learn.nets.target_y_range`).
        use_bn: batch norm after each hidden layer.  bn_final: batch norm on the output.  bn_cont: on the inputs.
        body: any ``nn.Module`` taking the ``(batch, n_emb + n_cont)`` embedded inputs, in place of the hidden
            layers; a final linear layer maps its output width to ``out_sz``. It exports once its class or
            factory is registered (``pipekit.learn.register_arch``).

    Example:
        >>> import torch
        >>> from pipekit.tabular import TabularModel
        >>> _ = torch.manual_seed(0)
        >>> model = TabularModel([(10, 6), (3, 3)], n_cont=2, out_sz=1, layers=[16, 8], ps=0.1, y_range=(0, 5))
        >>> out = model(torch.tensor([[1, 2], [9, 0]]), torch.randn(2, 2))
        >>> tuple(out.shape), model.n_emb, bool(((out > 0) & (out < 5)).all())
        ((2, 1), 9, True)
    """

    @classmethod
    def check_stored(cls, config: Mapping[str, Any], shapes: Mapping[str, Sequence[int]], field: str) -> None:
        """Read by ``load_learner`` before the net is built: its stored arguments against the stored weights'
        shapes (:func:`check_stored_net`)."""
        check_stored_net(config, shapes, field, cls)

    def __init__(self, emb_szs: Sequence[Sequence[int]], n_cont: int, out_sz: int,
                 layers: Sequence[int] = (200, 100), ps: float | Sequence[float] | None = None, embed_p: float = 0.0,
                 y_range: Sequence[float] | None = None, use_bn: bool = True, bn_final: bool = False,
                 bn_cont: bool = True, body: nn.Module | None = None) -> None:
        super().__init__()
        # a text ("50,20", a command line's) or a single number is no list of sizes: named, not torch's TypeError
        layers = list(layers) if isinstance(layers, Iterable) and not isinstance(layers, (str, bytes)) else layers
        check("TabularModel", out_sz=(out_sz, Interval(1, None, integer=True)), layers=(layers, POSITIVE_SIZES),
              **{k: (v, TABULAR_OPTIONS[k]) for k, v in (("ps", ps), ("embed_p", embed_p), ("use_bn", use_bn),
                                                          ("bn_final", bn_final), ("bn_cont", bn_cont))})
        layers = list(layers)
        if ps is None:
            ps = [0.0] * len(layers)
        elif isinstance(ps, (int, float)):
            ps = [float(ps)] * len(layers)
        if len(ps) != len(layers):
            raise ParameterError(f"TabularModel: ps has {len(ps)} values for {len(layers)} layers; give one per layer.")
        self.y_range = target_y_range("TabularModel", y_range, int(out_sz))
        if self.y_range is not None and isinstance(self.y_range[0], list):  # a range per output, broadcast over rows
            self.register_buffer("y_low", torch.tensor(self.y_range[0]), persistent=False)
            self.register_buffer("y_high", torch.tensor(self.y_range[1]), persistent=False)
        self.embeds = TabularEmbeddings(emb_szs)
        self.emb_drop = nn.Dropout(embed_p)
        self.bn_cont = nn.BatchNorm1d(n_cont) if (bn_cont and n_cont) else None
        self.n_emb = sum(int(nf) for _, nf in emb_szs)
        self.n_cont = n_cont
        if body is not None:
            self.layers = nn.Sequential(body, nn.Linear(_body_width(body, self.n_emb + n_cont), out_sz))
            return
        sizes = [self.n_emb + n_cont] + layers
        blocks: list[nn.Module] = []
        for n_in, n_out, p in zip(sizes[:-1], sizes[1:], ps):
            # Linear (no bias under BN) -> ReLU -> BN -> Dropout, the order that trains best on tables.
            blocks += [nn.Linear(n_in, n_out, bias=not use_bn), nn.ReLU(inplace=True)]
            if use_bn:  # started as fastai's: shift 1e-3
                blocks.append(BatchNorm(n_out, ndim=1))
            if p:
                blocks.append(nn.Dropout(p))
        blocks.append(nn.Linear(sizes[-1], out_sz))
        if bn_final:
            blocks.append(BatchNorm(out_sz, ndim=1))
        self.layers = nn.Sequential(*blocks)

    def forward(self, x_cat: torch.Tensor, x_cont: torch.Tensor | None = None) -> torch.Tensor:
        # x_cont None: no continuous inputs (collab loaders give codes only)
        # with hooks set (e.g. by learn.summary) a layer is called as a module so its hooks run
        call = nn.Module.__call__ if _global_hooks() else _call
        parts = []
        if len(self.embeds):
            x = self.embeds(x_cat)
            # dropout with p=0 is the identity: skip its call (it runs every batch)
            parts.append(call(self.emb_drop, x) if (self.emb_drop.p or self.emb_drop._forward_hooks
                                                    or call is not _call) else x)
        if self.n_cont:
            if x_cont is None:
                raise DataError(f"TabularModel was built for {self.n_cont} continuous input(s) but the batch has none")
            parts.append(call(self.bn_cont, x_cont) if self.bn_cont is not None else x_cont)
        x = torch.cat(parts, 1) if len(parts) > 1 else parts[0]
        for m in self.layers._modules.values():
            x = call(m, x)
        if self.y_range is None:
            return x
        per_target = isinstance(self.y_range[0], list)
        return sigmoid_range(x, self.y_low, self.y_high) if per_target else sigmoid_range(x, *self.y_range)


def _body_width(body: nn.Module, n_in: int) -> int:
    """The output width of a tabular body on ``(2, n_in)`` inputs; a ParameterError when it cannot take them."""
    if not isinstance(body, nn.Module):
        raise ParameterError(f"TabularModel: body must be an nn.Module (or, in tabular_learner, a function that "
                             f"builds one), got {type(body).__name__}")
    was_training = body.training
    try:
        with torch.no_grad():
            out = body.eval()(torch.zeros(2, n_in))
    except Exception as e:  # the user's module: any failure means it does not fit these inputs
        raise ParameterError(f"TabularModel: the body cannot take the embedded inputs, a (batch, {n_in}) float tensor "
                             f"(embedding widths + continuous columns): {type(e).__name__}: {e}") from None
    finally:
        body.train(was_training)
    if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != 2:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ParameterError(f"TabularModel: the body must return a (batch, features) tensor; on a (2, {n_in}) input "
                             f"it returned {shape}")
    return int(out.shape[1])


_GLOBAL_HOOKS = ("_global_forward_hooks", "_global_forward_pre_hooks", "_global_backward_hooks",
                 "_global_backward_pre_hooks")


def _global_hooks() -> bool:
    """Whether module hooks are registered globally: then every layer is called as a module."""
    return any(getattr(_mod, name, None) for name in _GLOBAL_HOOKS)



def _call(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``m(x)`` for the layers of a tabular net, calling the torch op directly for the plain cases.

    A batch of a small tabular net is dominated by per-call Python, and ``BatchNorm1d.forward`` is the
    heaviest; the direct calls compute exactly what the modules do (running statistics and
    ``num_batches_tracked`` included). Anything else (other momentum settings, batches of one row,
    subclasses, layers with hooks) goes through the module.
    """
    if m._forward_hooks or m._forward_pre_hooks or m._backward_hooks or m._backward_pre_hooks:
        return m(x)
    # exact types only (a parametrized or subclassed layer is another type): their tensors can be read
    # from _parameters/_buffers directly, skipping Module.__getattr__
    ps = cast("dict[str, torch.Tensor]", m._parameters)
    if type(m) is nn.Linear:
        return F.linear(x, ps["weight"], ps["bias"])
    if type(m) is nn.ReLU:
        return torch.relu_(x) if m.inplace else torch.relu(x)
    if type(m) is nn.BatchNorm1d and m.track_running_stats and m.momentum is not None and x.ndim == 2 \
            and (x.shape[0] > 1 or not m.training):
        bs = cast("dict[str, torch.Tensor]", m._buffers)
        if bs["running_mean"] is not None:
            if m.training:
                bs["num_batches_tracked"].add_(1)
            return torch.batch_norm(x, ps["weight"], ps["bias"], bs["running_mean"], bs["running_var"], m.training,
                                    m.momentum, m.eps, torch.backends.cudnn.enabled)
    if type(m) is nn.Dropout and not m.inplace:
        return torch.dropout(x, m.p, m.training) if m.p else x
    return m(x)


def warn_y_range(who: str, dls: Any, y_range: Any) -> None:
    """Warn when training targets lie outside ``y_range``: predictions never leave it, so those targets cannot be
    learned (a book's ``y_range=(0, 5.5)`` copied onto ratings of another scale), naming their range, the column
    read as the target (a wrong column shows here) and a fix. Many targets exactly at a bound are warned about too:
    ``sigmoid_range`` reaches its bounds only at infinite activations, so ``y_range=(0, 5)`` never predicts a 5 (the
    book's reason for 5.5). A reversed range is left to the model's own check, which refuses it.

    Each target column is held to its own range (one shared ``(low, high)``, or one per target, see
    :func:`~pipekit.learn.nets.target_y_range`), and a range suggested for several is one per target."""
    tab = getattr(dls, "tabular", None)
    if y_range is None or tab is None or tab.y_kind != "regression":
        return
    names = list(tab.y_names)
    try:  # a range the model refuses (reversed, of another number of targets) is refused when it is built
        yr = target_y_range(who, y_range, len(names) if len(names) > 1 else None)
    except ParameterError:
        return
    if yr is None:
        return
    lows: list[Any]
    highs: list[Any]
    lows, highs = ([yr[0]] * len(names), [yr[1]] * len(names)) if isinstance(yr[0], float) else yr
    frame = tab.train.targets.cast({c: float for c in names}) if len(tab.train) else None
    # the model sees float32 targets and outputs: y_range=(y.min(), ...) taken from float64 data holds them
    # although float32 rounding can put a target a hair below the float64 bound
    cols = []
    for name, lo, hi in zip(names, lows, highs):
        y = frame[name].to_numpy() if frame is not None else np.zeros(0)
        y = y[np.isfinite(y)]
        y32, lo32, hi32 = y.astype(np.float32), np.float32(lo), np.float32(hi)
        cols.append((name, lo, hi, y, int(((y32 < lo32) | (y32 > hi32)).sum()), int((y32 == lo32).sum()),
                     int((y32 == hi32).sum())))
    given = _shown_range(yr)
    one = len(names) == 1
    column = f"column {names[0]!r}" if one else f"columns {names}"
    outside = [c for c in cols if c[4]]
    if outside:
        suggested = []
        for _, lo, hi, y, out, _, _ in cols:
            ymin, ymax = (float(y.min()), float(y.max())) if len(y) else (lo, hi)
            suggested.append((_round_out(ymin, down=True), _round_out(ymax + 0.1 * (ymax - ymin), down=False))
                             if out else (lo, hi))
        fix = f"pass y_range={_shown_range(_together(suggested))} or about that"
        if one:
            name, lo, hi, y, out, _, _ = cols[0]
            said = (f"{out} of {len(y)} training targets lie outside it (they run from {float(y.min()):g} to "
                    f"{float(y.max()):g})")
        else:
            said = "training targets lie outside it: " + "; ".join(
                f"{out} of {len(y)} of column {name!r} (they run from {float(y.min()):g} to {float(y.max()):g}, "
                f"its range ({lo:g}, {hi:g}))" for name, lo, hi, y, out, _, _ in outside)
            fix += " (one range per target, each column's own)"
        warn(f"{who}: y_range={given}, but {said}; predictions stay inside y_range, so those cannot be learned: "
             f"{fix}. The targets are {column}: if that is not what to predict, name the right one (rating_name= in "
             "CollabDataLoaders.from_df, y_names= for a table)")
        return
    crowded = [c for c in cols if len(c[3]) and c[5] + c[6] >= 0.01 * len(c[3])]
    if not crowded:  # one target at each bound (y_range=(y.min(), y.max())) is quiet
        return
    suggested = []
    for _, lo, hi, y, _, at_lo, at_hi in cols:
        if not (len(y) and at_lo + at_hi >= 0.01 * len(y)):
            suggested.append((lo, hi))
            continue
        span = 0.1 * (hi - lo)
        suggested.append((_round_out(lo - span, down=True) if at_lo else lo,
                          _round_out(hi + span, down=False) if at_hi else hi))
    parts = []
    for name, lo, hi, y, _, at_lo, at_hi in crowded:
        at = " and ".join(f"{n} at {b:g}" for n, b in ((at_lo, lo), (at_hi, hi)) if n)
        where = f"column {name!r}" if one else f"column {name!r}, its range ({lo:g}, {hi:g})"
        parts.append(f"{at_lo + at_hi} of {len(y)} training targets ({where}) sit exactly at its bounds ({at})")
    warn(f"{who}: y_range={given}, and {'; '.join(parts)}; predictions reach a bound of y_range only at an infinite "
         f"activation, so those are never predicted: widen it a little, e.g. y_range="
         f"{_shown_range(_together(suggested))} (the book's y_range=(0, 5.5) for ratings up to 5)")


def _together(ranges: list[tuple[float, float]]) -> Any:
    """Each target's ``(low, high)`` as one ``y_range``: the pair itself when all are the same."""
    if len(set(ranges)) == 1:
        return ranges[0]
    return [lo for lo, _ in ranges], [hi for _, hi in ranges]


def _shown_range(yr: Any) -> str:
    """A checked ``y_range`` as a message writes it: ``(0, 5.5)``, or ``([17, 1], [91, 100])`` per target."""
    if isinstance(yr[0], list):
        return "(" + ", ".join("[" + ", ".join(f"{v:g}" for v in side) + "]" for side in yr) + ")"
    return f"({yr[0]:g}, {yr[1]:g})"


def _round_out(v: float, down: bool) -> float:
    """``v`` to six significant digits, rounded down (or up), so a suggested bound printed with ``:g`` still
    holds the value it bounds.

    >>> _round_out(6.447305862541213, down=True), _round_out(9.90349, down=False)
    (6.4473, 9.90349)
    """
    if v == 0 or not np.isfinite(v):
        return v
    scale = 10.0 ** (5 - int(np.floor(np.log10(abs(v)))))
    r = (np.floor if down else np.ceil)(v * scale) / scale
    # v * scale may itself round across a step: step once more so the bound is on the right side of v
    if (r > v) if down else (r < v):
        r = r + (-1 if down else 1) / scale
    return float(f"{r:.6g}")


def tabular_learner(dls: Any, layers: Sequence[int] | None = None, emb_szs: Mapping[str, int] | None = None,
                    config: Mapping[str, Any] | None = None, n_out: int | None = None,
                    y_range: Any = None, body: Any = None, **kwargs: Any) -> Learner:
    """A ``Learner`` with a ``TabularModel`` sized from the data: embeddings from the vocabularies.

    ``emb_szs`` overrides widths per column; ``config`` passes ``ps``, ``embed_p``, ``use_bn``, ... (a dict, or
    fastai's :func:`tabular_config`; its keys are checked, see :func:`check_config`); a ``y_range`` in it is taken
    as fastai takes it, when ``y_range=`` is not given. Other keyword arguments (``metrics``, ``loss_func``,
    ``wd``, ...) go to ``Learner``, and one it does not take either is refused, naming the close ones (``layer=``
    is ``layers=``). ``body``: an
    ``nn.Module``, or a function called with ``n_in`` (the embedded input width) that builds one, used in place
    of the hidden ``layers`` (see :class:`TabularModel`).

    Example (the book's chapter 1):
        >>> import pipekit.datasets as D
        >>> from pipekit.learn import accuracy
        >>> from pipekit.tabular import Categorify, FillMissing, Normalize, TabularDataLoaders, tabular_learner
        >>> dls = TabularDataLoaders.from_csv(D.path("adult_sample") / "adult.csv", y_names="salary",
        ...     cat_names=["workclass", "education", "marital-status", "occupation", "relationship", "race"],
        ...     cont_names=["age", "fnlwgt", "education-num"], procs=[Categorify, FillMissing, Normalize])
        >>> learn = tabular_learner(dls, layers=[200, 100], metrics=accuracy)
        >>> learn.dls.c, len(learn.model.embeds)  # six categories and education-num_na, which FillMissing adds
        (2, 7)
    """
    from pipekit.learn.learner import Learner, check_learner_kwargs, check_targets_fit
    from pipekit.tabular.loaders import TabularRecipe

    check_learner_kwargs("tabular_learner", kwargs, tabular_learner)
    check_config("tabular_learner", {} if config is None else config)
    y_range = config_y_range("tabular_learner", y_range, config)  # fastai's tabular_config(y_range=...)
    cfg = model_options(config)  # a new dict: the user's is left as it is
    body = one_of_two_names("tabular_learner", "body", body, "config's body", cfg.pop("body", None), None,
                            why="the config gives TabularModel's arguments, body among them")
    recipe = dls.recipe if isinstance(dls, DataLoaders) else None
    if not isinstance(recipe, TabularRecipe):
        raise ParameterError("tabular_learner: dls must come from Tabular.dataloaders(...) (their recipe carries "
                             f"the vocabularies), got recipe={type(recipe).__name__}.")
    processor = recipe.processor
    tab = getattr(dls, "tabular", None)
    from pipekit.tabular.procs import FillMissing

    if tab is not None and not any(isinstance(p, FillMissing) for p in processor.procs):
        from pipekit.tabular.processor import warn_missing_numbers

        warn_missing_numbers(tab.train.conts, processor.cont_names_)
    check_targets_fit("tabular_learner", dls, kwargs.get("loss_func"), n_out, builds_model=True)
    n_out = dls.c if n_out is None else n_out
    if not n_out:
        raise ParameterError("tabular_learner: could not tell the number of outputs from the data; pass n_out=.")
    if body is not None and not isinstance(body, nn.Module):
        if not callable(body):
            raise ParameterError(f"tabular_learner: body must be an nn.Module or a function that builds one, got "
                                 f"{type(body).__name__}")
        n_emb = sum(w for _, w in get_emb_sz(processor.cat_names_, processor.classes_, emb_szs))
        body = body(n_in=n_emb + len(processor.cont_names_))
    if body is not None:
        cfg["body"] = body
    # one range per target, as plain lists (a shared pair is the model's to check)
    checked = target_y_range("tabular_learner", y_range, int(n_out)) if per_target(y_range) else y_range
    warn_y_range("tabular_learner", dls, checked)
    model = TabularModel(get_emb_sz(processor.cat_names_, processor.classes_, emb_szs),
                         len(processor.cont_names_), int(n_out), layers=[200, 100] if layers is None else layers,
                         y_range=None if checked is None else [*checked], **cfg)
    return Learner(dls, model, **kwargs)
