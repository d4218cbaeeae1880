"""``TorchTabular``: the tabular net (``tabular_learner``) behind the backend interface, so it can join
ensembles and stacking next to forests and GBMs; ``embeddings_as_features`` hands its learned category
embeddings to a forest or GBM (the book's trick).

Example:
    >>> # net = TorchTabular("classification", layers=[200, 100], epochs=5).fit(tab.train, tab.valid)
    >>> # WeightedEnsemble([rf, gbm, net]).fit(tab.valid)
    >>> # rf_emb = RandomForest("classification").fit(embeddings_as_features(net, tab.train))
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import polars as pl

from pipekit.backends.base import Backend, TabularData, as_data, check_task, register, to_jsonable


class _TabView:
    """The slice of the ``Tabular`` interface ``tabular_dataloaders`` reads, built from model-facing data
    (so folds and subsets of a split can train a net too)."""

    def __init__(self, processor: Any, frame: pl.DataFrame, train_idx: np.ndarray, valid_idx: np.ndarray):
        self.processor, self.frame = processor, frame
        self.train_idx, self.valid_idx = train_idx, valid_idx
        self.y_names = processor.y_names
        self.valid = valid_idx  # only its length is read


@register
class TorchTabular(Backend):
    """A ``TabularModel`` trained with one-cycle for ``epochs`` at ``lr`` (batch size ``bs``). Needs splits of
    a ``Tabular`` (their fitted procs size the embeddings). ``config`` goes to ``TabularModel`` (``ps``,
    ``embed_p``, ...); ``y_range`` squashes regression outputs. Without ``valid``, a seeded 10% of the
    training rows is only monitored, never held out.

    Fitted: ``model_`` (the torch module, eval mode), ``valid_score_`` when ``valid`` is given.
    """

    _param_names = ("task", "layers", "epochs", "lr", "bs", "wd", "config", "y_range", "seed")

    def __init__(self, task: str, layers: Sequence[int] = (200, 100), epochs: int = 5, lr: float = 1e-2,
                 bs: int = 256, wd: float | None = None, config: dict | None = None,
                 y_range: Sequence[float] | None = None, seed: int = 0):
        self.task = check_task(task)
        if not isinstance(epochs, (int, np.integer)) or epochs < 1:
            raise ValueError(f"epochs must be an int >= 1, got {epochs!r}")
        if not isinstance(bs, (int, np.integer)) or bs < 1:
            raise ValueError(f"bs must be an int >= 1, got {bs!r}")
        if not (isinstance(lr, (int, float)) and lr > 0):
            raise ValueError(f"lr must be a positive number, got {lr!r}")
        self.layers = [int(x) for x in layers]
        self.epochs, self.lr, self.bs, self.wd = int(epochs), float(lr), int(bs), wd
        self.config = dict(config) if config else None
        self.y_range = None if y_range is None else [float(y_range[0]), float(y_range[1])]
        self.seed = int(seed)

    def _frame(self, d: TabularData) -> pl.DataFrame:
        p = self.processor_
        frame = d.xs.select(p.cat_names_ + p.cont_names_)
        if self.task == "classification":
            codes = {v: i for i, v in enumerate(p.y_vocab_)}
            y = np.asarray([codes[v] for v in d.y.tolist()], dtype=np.int64)
        else:
            y = np.asarray(d.y, dtype=np.float32)
        return frame.with_columns(pl.Series(p.y_names[0], y))

    def fit(self, train: Any, valid: Any = None) -> "TorchTabular":

        from pipekit.data.seed import set_seed
        from pipekit.tabular.loaders import tabular_dataloaders
        from pipekit.tabular.model import tabular_learner

        d = as_data(train)
        if d.processor is None:
            raise TypeError("TorchTabular needs splits of a Tabular (tab.train / tab.valid): the fitted procs size "
                            "its embeddings")
        self.processor_ = d.processor
        if (self.task == "classification") != (d.processor.y_kind_ == "category"):
            raise ValueError(f"task={self.task!r} but the Tabular's target kind is {d.processor.y_kind_!r}")
        self._setup(d)
        p = d.processor
        self.feature_names_ = list(p.cat_names_) + list(p.cont_names_)
        self.cat_features_ = list(p.cat_names_)
        if self.task == "classification":
            self.classes_ = np.sort(np.asarray(p.y_vocab_))
            self._order = np.argsort(np.asarray(p.y_vocab_))
        v = as_data(valid) if valid is not None else None
        parts = [self._frame(d)] + ([self._frame(v)] if v is not None else [])
        frame = pl.concat(parts, how="vertical_relaxed")
        n = len(d)
        train_idx = np.arange(n, dtype=np.int64)
        if v is not None:
            valid_idx = np.arange(n, n + len(v), dtype=np.int64)
        else:
            valid_idx = np.sort(np.random.default_rng(self.seed).choice(n, max(1, n // 10), replace=False))
        set_seed(self.seed)
        dls = tabular_dataloaders(_TabView(p, frame, train_idx, valid_idx), bs=self.bs, seed=self.seed)
        kwargs = {"wd": self.wd} if self.wd is not None else {}
        learn = tabular_learner(dls, layers=self.layers, config=self.config, y_range=self.y_range, **kwargs)
        learn.fit_one_cycle(self.epochs, self.lr)
        self.model_ = learn.model.cpu().eval()
        self._emb_szs = [(e.num_embeddings, e.embedding_dim) for e in self.model_.embeds]
        self.valid_score_ = self.score(v) if v is not None else None
        return self

    def _tensors(self, d: TabularData):
        import torch

        p = self.processor_
        n = len(d)
        cats = (d.xs.select(p.cat_names_).to_numpy(order="c").astype(np.int64, copy=False) if p.cat_names_
                else np.zeros((n, 0), dtype=np.int64))
        conts = (d.xs.select(p.cont_names_).to_numpy(order="c").astype(np.float32, copy=False) if p.cont_names_
                 else np.zeros((n, 0), dtype=np.float32))
        return torch.from_numpy(cats), torch.from_numpy(conts)

    def _predict_raw(self, d: TabularData) -> np.ndarray:
        import torch

        cats, conts = self._tensors(d)
        outs = []
        self.model_.eval()
        with torch.no_grad():
            for i in range(0, len(d), 8192):
                outs.append(self.model_(cats[i:i + 8192], conts[i:i + 8192]).float())
        out = torch.cat(outs) if outs else torch.zeros((0, len(getattr(self, "classes_", [0]))))
        if self.task == "classification":
            return torch.softmax(out, 1).numpy().astype(np.float64)[:, self._order]
        return out[:, 0].numpy().astype(np.float64)

    def embeddings(self) -> dict[str, np.ndarray]:
        """The learned embedding matrix per categorical input (row = category code)."""
        self._check_fitted()
        return {c: e.weight.detach().cpu().numpy().copy() for c, e in zip(self.processor_.cat_names_,
                                                                          self.model_.embeds)}

    # -- export ---------------------------------------------------------------------------------------
    def to_state(self) -> tuple[dict, dict[str, np.ndarray]]:
        meta = self._base_state()
        meta["processor"] = to_jsonable(self.processor_.state())
        meta["emb_szs"] = [list(map(int, e)) for e in self._emb_szs]
        meta["valid_score"] = self.valid_score_
        arrays = {f"w/{k}": v.detach().cpu().numpy() for k, v in self.model_.state_dict().items()}
        return meta, arrays

    @classmethod
    def from_state(cls, meta: dict, arrays: dict[str, np.ndarray]) -> "TorchTabular":
        import torch

        from pipekit.tabular.model import TabularModel
        from pipekit.tabular.processor import TabularProcessor

        obj = cls(**meta["params"])
        obj._restore_base(meta)
        obj.processor_ = TabularProcessor.from_state(meta["processor"])
        obj._emb_szs = [tuple(e) for e in meta["emb_szs"]]
        if obj.task == "classification":
            obj._order = np.argsort(np.asarray(obj.processor_.y_vocab_))
        out_sz = len(obj.processor_.y_vocab_) if obj.task == "classification" else len(obj.processor_.y_names)
        model = TabularModel(obj._emb_szs, len(obj.processor_.cont_names_), out_sz, layers=obj.layers,
                             y_range=obj.y_range, **(obj.config or {}))
        state = {k[2:]: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items() if k.startswith("w/")}
        model.load_state_dict(state)
        obj.model_ = model.eval()
        obj.valid_score_ = meta.get("valid_score")
        return obj


def embeddings_as_features(net: TorchTabular, data: Any, columns: Sequence[str] | None = None,
                           keep_codes: bool = False) -> TabularData:
    """Replace each categorical input in ``columns`` (default: every one with an embedding wider than 1) by
    its learned embedding vector, as continuous columns ``<col>_emb<j>``, so a forest or GBM can use
    what the net learned about the categories. ``keep_codes`` keeps the original code columns as well.

    Example:
        >>> # GBM("classification").fit(embeddings_as_features(net, tab.train), embeddings_as_features(net, tab.valid))
    """
    d = as_data(data)
    embs = net.embeddings()
    cols = list(columns) if columns is not None else [c for c, w in embs.items() if w.shape[1] > 1]
    unknown = [c for c in cols if c not in embs]
    if unknown:
        raise KeyError(f"{unknown} have no embedding in this net; embedded columns: {list(embs)}")
    new_cols = []
    for c in cols:
        codes = d.xs.get_column(c).to_numpy().astype(np.int64)
        w = embs[c]
        if len(codes) and (codes.min() < 0 or codes.max() >= len(w)):
            raise ValueError(f"column {c!r} has code {int(codes.max())} outside the net's vocabulary of {len(w)}")
        vecs = w[codes]
        new_cols += [pl.Series(f"{c}_emb{j}", vecs[:, j]) for j in range(w.shape[1])]
    xs = d.xs if keep_codes else d.xs.drop(cols)
    xs = xs.with_columns(new_cols)
    cats = tuple(c for c in d.cat_names if keep_codes or c not in cols)
    return TabularData(xs=xs, y=d.y, cat_names=cats, y_name=d.y_name, procs_signature=d.procs_signature,
                       source=None, processor=d.processor)
