"""``TorchTabular``: the tabular net (``tabular_learner``) behind the backend interface, so it can join
ensembles and stacking next to forests and GBMs; ``embeddings_as_features`` hands its learned category
embeddings to a forest or GBM (the book's trick).

Example:
    >>> # net = TorchTabular("classification", layers=[200, 100], epochs=5).fit(tab.train, tab.valid)
    >>> # WeightedEnsemble([rf, gbm, net]).fit(tab.valid)
    >>> # rf_emb = RandomForest("classification").fit(embeddings_as_features(net, tab.train))
"""

from __future__ import annotations

import copy
import time
from dataclasses import replace
from typing import Any, Sequence

import numpy as np
import polars as pl

from pipekit.backends.base import NAME, POSITIVE_INT, TASK, TIME_LIMIT, Backend, FoldStop, check_valid_split
from pipekit.backends.data import TabularData, as_data, check_signature, encode_y, procs_signature
from pipekit.core.errors import DataError, ExportError, ParameterError
from pipekit.core.forks import check_fork_safe
from pipekit.core.validate import POSITIVE, POSITIVE_SIZES, Y_RANGE, Interval, Is


def _stopped_by(stop: FoldStop) -> Any:
    """A callback that ends a fold net's fit before its next batch once its bag's ``stop`` signal is set: the error
    (``FoldStopped``) leaves the fit by the Learner's own way for an error or Ctrl-C, every callback releasing what
    it changed. Built where the net fits, as pipekit.learn is imported there."""
    from pipekit.learn import Callback

    class _BagStopped(Callback):
        def before_batch(self) -> None:
            stop.check()

    return _BagStopped()


def _other_loss(learn: Any) -> str | None:
    """The Learner's loss, described, where it is not the one ``tabular_learner`` picks for its targets
    (``CrossEntropyLossFlat()`` for a category, ``MSELossFlat()`` for a number); None where it is that one."""
    from pipekit.core.component import Component
    from pipekit.learn.losses import loss_from_kind

    loss = getattr(learn, "loss_func", None)
    default = loss_from_kind(getattr(learn.dls, "loss_kind", None))
    if isinstance(loss, Component) and type(loss) is type(default) and repr(loss) == repr(default):
        return None
    return repr(loss) if isinstance(loss, Component) else getattr(loss, "__name__", type(loss).__name__)


class TorchTabular(Backend):
    """A ``TabularModel`` trained with one-cycle for ``epochs`` at ``lr`` (batch size ``bs``). Needs splits of
    a ``Tabular`` (their fitted procs size the embeddings). ``config``: the ``TabularModel`` options as
    ``tabular_learner`` takes them (``ps``, ``embed_p``, ..., a dict or fastai's ``tabular_config``; a ``y_range``
    in it is taken as ``y_range=``; a custom ``body`` is not, the net being rebuilt from layers and config);
    ``y_range`` squashes regression outputs into ``(low, high)``: by default the training
targets' range widened by 5% at each end (a net's raw output starts near 0, far from targets such as sales or
prices, and would need many epochs to get there). Without ``valid``, a seeded 10% of the
    training rows is only monitored, never held out. ``time_limit``: seconds of fitting, the schedule shortened to
    fit them (``pipekit.learn.TimeLimit``: fewer batches, still annealed to its end; ``stopped_on_time_``). Like
    every backend it fits quietly (no epoch table; ``tabular_learner`` shows one).

    Fitted: ``model_`` (the torch module, eval mode), ``processor_`` (the fitted procs), ``emb_szs_``,
    ``y_range_`` (the range used; None for classification), ``valid_score_`` when ``valid`` is given.

    A net already trained with ``tabular_learner`` joins the same way: ``TorchTabular.from_learner(learn)``; where
    its Learner's loss is not the default one, ``learner_loss`` describes it and a refit (``clone().fit``) is refused.

    >>> import numpy as np, polars as pl
    >>> import pipekit.datasets as D
    >>> from pipekit.ensemble import TorchTabular
    >>> from pipekit.tabular import Categorify, Normalize, Tabular
    >>> df = pl.read_csv(D.path("adult_sample") / "adult.csv", n_rows=200)
    >>> tab = Tabular(df, procs=[Categorify, Normalize], cat_names=["workclass"], cont_names=["age"],
    ...               y_names="salary", splits=(np.arange(150), np.arange(150, 200)))
    >>> net = TorchTabular("classification", layers=[8], epochs=1, bs=64).fit(tab.train)
    >>> net.predict(tab.valid).shape, net.classes_.tolist(), type(net.model_).__name__
    ((50, 2), ['<50k', '>=50k'], 'TabularModel')
    """

    param_constraints = {
        "task": TASK, "epochs": POSITIVE_INT, "bs": POSITIVE_INT, "lr": POSITIVE,
        "layers": POSITIVE_SIZES,
        "wd": Interval(0, None, none_ok=True),
        "config": Is(lambda v: v is None or isinstance(v, dict), "None or a dict of TabularModel options"),
        "y_range": Y_RANGE,
        "seed": Interval(0, 2**32 - 1, integer=True), "time_limit": TIME_LIMIT, "name": NAME,
        "learner_loss": Is(lambda v: v is None or isinstance(v, str), "None or the description of a Learner's loss")}
    #: ``learner_loss`` came after files were written without it: a record without it is a net trained with the
    #: default loss
    record_defaults = {"params.learner_loss": None}
    unsaved = ("processor_",)  # written inside model_, which is rebuilt from it
    #: True on the fold models of a ``BaggedModel``: a net its time limit cuts short says nothing, as the other
    #: backends, since the bag counts its fold models cut short and ``fit_ensemble`` warns once for them all;
    #: a net fitted on its own warns when the time ran out before its schedule could be fitted to it
    _quiet_time_limit: bool = False
    #: on the fold models a ``BaggedModel`` fits in threads: its stop signal (``pipekit.backends.base.FoldStop``),
    #: checked before each batch and when the net's turn to fit comes (nets fit one at a time), so a bag left by
    #: Ctrl-C has its fold nets end within a batch
    _fold_stop: FoldStop | None = None
    #: nets fit one at a time in a process (their training holds its random generators: ``pipekit.data.seed.seeded``),
    #: so a ``BaggedModel`` fits its fold nets one after another, each with its whole share of the time
    fits_alone = True
    imports = ("torch._dynamo",)  # torch's compiler, imported the first time a process builds an optimizer
    #: the settings ``from_learner`` takes besides the net (which gives the task, layers, config and y_range)
    learner_params = ("epochs", "lr", "bs", "wd", "seed", "time_limit", "name")
    _trained: Any = None  # while from_learner fits: the Learner's net, kept in place of training one

    def __init__(self, task: str, layers: Sequence[int] = (200, 100), epochs: int = 5, lr: float = 1e-2,
                 bs: int = 256, wd: float | None = None, config: dict | None = None,
                 y_range: Sequence[float] | None = None, seed: int = 0, time_limit: float | None = None,
                 name: str | None = None, learner_loss: str | None = None):
        self.task, self.layers, self.epochs, self.lr, self.bs, self.wd = task, layers, epochs, lr, bs, wd
        self.config, self.y_range, self.seed, self.time_limit, self.name = config, y_range, seed, time_limit, name
        self.learner_loss = learner_loss
        self.check_params()
        if config is not None:  # checked as tabular_learner checks it; a y_range in it is y_range's second name
            from pipekit.tabular.model import check_config, config_y_range

            check_config("TorchTabular", config, body=False)
            config_y_range("TorchTabular", y_range, config)
        self.layers = list(layers)

    @classmethod
    def from_learner(cls, learn: Any, **params: Any) -> TorchTabular:
        """A fitted TorchTabular holding the net of a trained ``tabular_learner`` Learner (the book's chapter 9 net),
        so it joins ensembles, ``embeddings_as_features`` and files like a net this class trained, and stacking as
        ``net.clone()`` (stacking fits its members fold by fold; a fitted member is refused there). Fitted
        on the Learner's training rows and procs as :meth:`fit` fits (``valid_score_`` on its validation rows);
        ``model_`` is a copy on the CPU (the Learner and its net are left as they are) that predicts what
        ``learn.get_preds`` gives. ``layers``, ``config`` and ``y_range`` are read from the net; ``params`` are the
        other settings (``epochs``, ``lr``, ``bs``, ``wd``, ``seed``, ``time_limit``, ``name``), which only a refit
        (``clone()``, stacking's folds) uses. A net that these parameters cannot rebuild is refused: a custom
        ``body``, a model other than a ``TabularModel``, outputs that are not one per class of the target's
        vocabulary, several regression targets. A Learner trained with a loss other than the one ``tabular_learner``
        picks for the targets (a weighted ``CrossEntropyLossFlat``, ``FocalLossFlat``) joins too, predicting what it
        gives, with that loss described in ``learner_loss`` (kept in its file); a refit, which trains with the default
        loss, refuses it.

        Example:
            >>> import numpy as np, polars as pl
            >>> from pipekit.backends import RandomForest
            >>> from pipekit.ensemble import MeanEnsemble, TorchTabular
            >>> from pipekit.tabular import Tabular, tabular_learner
            >>> df = pl.DataFrame({"job": ["cook", "nurse", "cook", "clerk"] * 25,
            ...                    "age": [20.0 + i % 37 for i in range(100)], "y": ["no", "yes", "no", "yes"] * 25})
            >>> tab = Tabular(df, cat_names=["job"], cont_names=["age"], y_names="y",
            ...               splits=(np.arange(80), np.arange(80, 100)))
            >>> learn = tabular_learner(tab.dataloaders(bs=16, seed=0), layers=[8])
            >>> learn.fit_one_cycle(1, 1e-2)
            >>> net = TorchTabular.from_learner(learn)
            >>> net, bool(np.allclose(net.predict_proba(tab.valid), learn.get_preds()[0].numpy(), atol=1e-6))
            (TorchTabular(task='classification', layers=[8]), True)
            >>> rf = RandomForest("classification", n_estimators=10, seed=0).fit(tab.train)
            >>> MeanEnsemble({"rf": rf, "net": net}).predict(tab.valid).shape     # a probability per class
            (20, 2)
        """
        from pipekit.tabular.core import TabularSplit
        from pipekit.tabular.loaders import TabularRecipe
        from pipekit.tabular.model import TabularModel

        bad = sorted(set(params) - set(cls.learner_params))
        if bad:
            raise ParameterError(f"TorchTabular.from_learner: {bad} cannot be given; the net gives the task, layers, "
                                 f"config and y_range, and the other settings are {list(cls.learner_params)}")
        model, dls = getattr(learn, "model", None), getattr(learn, "dls", None)
        recipe, dsets = getattr(dls, "recipe", None), getattr(dls, "datasets", None)
        items, splits = getattr(dsets, "items", None), getattr(dsets, "splits", None)
        if isinstance(recipe, TabularRecipe) and dsets is None:
            # an export keeps the procs and the net, not the rows; the fit needs the rows: their signature keeps
            # an ensemble from weighing the net on the rows it was trained on, and the valid ones give valid_score_
            raise ParameterError("TorchTabular.from_learner: this Learner holds no training rows (a Learner from "
                                 "load_learner keeps the procs and the net, not the data), and the wrapped net needs "
                                 "them: ensembles check new rows against them and score on the validation rows. Call "
                                 "from_learner on the Learner that trained the net and keep the result with "
                                 "pipekit.save(net, path) / pipekit.load(path); or rebuild the Learner on the same "
                                 "Tabular (tabular_learner(tab.dataloaders(...), layers=...) as it was built), "
                                 "load the exported weights with learn.model.load_state_dict(model_weights(path)) "
                                 "(pipekit.learn) and call from_learner on it")
        if not (isinstance(recipe, TabularRecipe) and recipe.with_cont
                and isinstance(items, pl.DataFrame) and splits is not None):
            raise ParameterError(f"TorchTabular.from_learner takes a tabular_learner Learner trained on a Tabular's "
                                 f"loaders (tab.dataloaders(...)), got {type(learn).__name__} with loaders of "
                                 f"{type(recipe).__name__}")
        if not isinstance(model, TabularModel):
            raise ParameterError(f"TorchTabular.from_learner: the Learner's model is a {type(model).__name__}, not the "
                                 "TabularModel tabular_learner builds; only that net can be rebuilt from a file")
        p = recipe.processor
        task = {"category": "classification", "regression": "regression"}.get(p.y_kind_)
        if task is None:
            raise ParameterError(f"TorchTabular.from_learner: the Tabular's target kind is {p.y_kind_!r}; TorchTabular "
                                 "predicts one category or one number")
        layers, config, out_sz = net_structure(model)
        if task == "classification" and out_sz != len(p.y_vocab_ or ()):
            raise ParameterError(f"TorchTabular.from_learner: the net has {out_sz} output(s) but the target has "
                                 f"{len(p.y_vocab_ or ())} classes {list(p.y_classes_ or ())}; TorchTabular gives one "
                                 "probability per class (the softmax of one output per class, as tabular_learner builds "
                                 "it by default), so train the Learner without n_out=")
        if task == "regression" and (out_sz != 1 or len(p.y_names) != 1):
            raise ParameterError(f"TorchTabular.from_learner: the net has {out_sz} output(s) for the target(s) "
                                 f"{list(p.y_names)}; TorchTabular predicts one regression target")
        rows = [len(p.classes_[c]) for c in p.cat_names_]
        if [ni for ni, _ in model.embeds.emb_szs] != rows or model.n_cont != len(p.cont_names_):
            raise ParameterError(f"TorchTabular.from_learner: the net's embeddings {model.embeds.emb_szs} and "
                                 f"{model.n_cont} continuous input(s) do not match the Learner's procs ({rows} codes, "
                                 f"{len(p.cont_names_)} continuous); it was built for other data")
        y_range: Sequence[float] | None = None
        if task == "regression" and model.y_range is not None:
            low, high = model.y_range  # a bound per target ([low], [high]) for its one target, or one pair
            y_range = (float(low[0] if isinstance(low, list) else low), float(high[0] if isinstance(high, list) else high))
        net = cls(task, layers=layers, config=config, y_range=y_range, learner_loss=_other_loss(learn), **params)
        train, valid = (TabularSplit(items, p, idx, name) for idx, name in zip(splits, ("train", "valid")))
        net._trained = model
        try:
            return net.fit(train, valid if len(valid) else None)
        finally:
            del net._trained

    def fit(self, train: Any, valid: Any = None, sample_weight: Any = None) -> TorchTabular:
        check_fork_safe("TorchTabular.fit")
        valid = check_valid_split(self, valid)  # fit(xs, y) would take y as validation rows; no rows: None
        d = as_data(train)
        if sample_weight is not None:
            self._checked_weights(sample_weight, len(d))  # refused: the net weighs every row alike
        if d.processor is None:
            raise ParameterError("TorchTabular needs splits of a Tabular (tab.train / tab.valid): the fitted procs "
                                 "size its embeddings")
        if (self.task == "classification") != (d.processor.y_kind_ == "category"):
            raise DataError(f"task={self.task!r} but the Tabular's target kind is {d.processor.y_kind_!r}")
        if len(d) < 2:  # batch norm cannot normalise a batch of one row
            raise DataError(f"TorchTabular needs at least 2 training rows, got {len(d)} sample(s)")
        if self.learner_loss is not None and self._trained is None:
            raise ParameterError(f"TorchTabular.fit: this net comes from a Learner trained with "
                                 f"loss_func={self.learner_loss} (TorchTabular.from_learner), and a TorchTabular "
                                 "trains with the loss tabular_learner picks for the targets, so this refit "
                                 "(net.clone().fit, a StackingEnsemble's or BaggedModel's folds) would train another "
                                 "net; predict with the fitted net as it is (MeanEnsemble, WeightedEnsemble take it), "
                                 "or stack a Learner trained with the default loss (tabular_learner without "
                                 "loss_func=)")
        return super().fit(d, valid)

    def _fit(self, d: TabularData, valid: TabularData | None) -> None:
        from pipekit.data.seed import seeded
        from pipekit.learn import ProgressCallback, TimeLimit
        from pipekit.tabular.model import model_options, tabular_learner

        p = self.processor_ = d.processor
        self.feature_names_, self.cat_features_ = list(p.cat_names_) + list(p.cont_names_), list(p.cat_names_)
        if self.task == "classification":  # the net has one output per class of the vocabulary
            self.classes_ = np.sort(self._net_classes())
        if self._trained is not None:  # from_learner: the Learner's net, rebuilt as a file rebuilds it
            self.stopped_on_time_ = False
            self.y_range_ = None if self._trained.y_range is None else [float(x) for x in self._trained.y_range]
            self.emb_szs_ = [[int(ni), int(nf)] for ni, nf in self._trained.embeds.emb_szs]
            self.model_ = self.model_from_data({"processor": p, "weights": {
                k: (v.detach().float() if v.is_floating_point() else v.detach()).cpu().numpy()
                for k, v in self._trained.state_dict().items()}})
            return
        y_range = self._y_range()
        self.y_range_ = None if self.task == "classification" else (
            [float(x) for x in y_range] if y_range is not None else target_range(d.y))
        stop = self._fold_stop
        # the net's own seed, the caller's random state left as it was (and nets fitted in threads one at a time)
        with seeded(self.seed):
            # the time counts once its turn has come, the rows, the loaders and the net built inside it: a net that
            # waited for another one to finish keeps its whole time_limit
            end = self._deadline()
            if stop is not None:  # its bag stopped while it waited its turn
                stop.check()
            n = len(d)
            if valid is not None:
                frame = pl.concat([self._frame(d), self._frame(valid)], how="vertical_relaxed")
                valid_idx = np.arange(n, n + len(valid), dtype=np.int64)
            else:
                frame = self._frame(d)
                valid_idx = np.sort(np.random.default_rng(self.seed).choice(n, max(1, n // 10), replace=False))
            kwargs: dict[str, Any] = {} if self.wd is None else {"wd": self.wd}  # else the Learner's default
            learn = tabular_learner(self._dataloaders(frame, np.arange(n, dtype=np.int64), valid_idx),
                                    layers=self.layers, config=model_options(self.config), y_range=self.y_range_,
                                    **kwargs)
            _ = learn.optimizer  # built now (a process's first one imports torch's compiler): inside the time counted
            limit = None if end is None else TimeLimit(max(end - time.perf_counter(), 1e-3),
                                                       quiet=self._quiet_time_limit)
            cbs = [cb for cb in (limit, None if stop is None else _stopped_by(stop)) if cb is not None]
            with learn.removed_cbs(ProgressCallback):  # quiet, as every backend
                learn.fit_one_cycle(self.epochs, self.lr, cbs=cbs)
        self.stopped_on_time_ = bool(limit is not None and limit.stopped_on_time_)
        self.model_ = learn.model.cpu().eval()
        self.emb_szs_ = [[int(e.num_embeddings), int(e.embedding_dim)] for e in self.model_.embeds]

    def _y_range(self) -> Any:
        """The ``y_range`` given, as ``y_range=`` or in ``config`` (fastai's ``tabular_config(y_range=...)``)."""
        from pipekit.tabular.model import config_y_range

        return config_y_range("TorchTabular", self.y_range, self.config)

    def params_to_data(self) -> dict[str, Any]:
        # fastai's act_cls and lin_first in a config are what the net has built in (an nn.ReLU() is no data): a
        # file keeps the options that shape the net, and its y_range
        params = super().params_to_data()
        if params.get("config") is not None:
            from pipekit.tabular.model import model_options

            y_range = params["config"].get("y_range")
            params["config"] = {**model_options(params["config"]), **({} if y_range is None else {"y_range": y_range})}
        return params

    def _frame(self, d: TabularData) -> pl.DataFrame:
        """The processed columns the net reads, with the target encoded as the processing encodes it."""
        p = self.processor_
        frame = d.xs.select(p.cat_names_ + p.cont_names_)
        if d.y is None:
            return frame
        if self.task == "classification":
            vocab = self._net_classes()
            order = np.argsort(vocab)
            y = order[encode_y(d.y, "classification", vocab[order])]
        else:
            y = encode_y(d.y, "regression").astype(np.float32)
        return frame.with_columns(pl.Series(p.y_names[0], y))

    def _dataloaders(self, frame: pl.DataFrame, train_idx: np.ndarray, valid_idx: np.ndarray) -> Any:
        """Loaders over a processed frame, built as ``Tabular.dataloaders`` builds them (one set of tensors
        both subsets index into), so folds and subsets of a split train a net too."""
        from pipekit.data.dataloaders import DataLoaders
        from pipekit.data.loader import ArrayDataset, DataLoader
        from pipekit.data.store import TensorStore
        from pipekit.tabular.core import TabularSplit
        from pipekit.tabular.loaders import TabularRecipe

        recipe = TabularRecipe(self.processor_)
        stores = [TensorStore(t) for t in TabularSplit(frame, self.processor_).to_torch()]
        train = DataLoader(ArrayDataset(stores, recipe.fitted_blocks, 2, train_idx, 0), bs=self.bs, shuffle=True,
                           drop_last=len(train_idx) > self.bs, seed=self.seed, num_workers=0, augment=False)
        valid = DataLoader(ArrayDataset(stores, recipe.fitted_blocks, 2, valid_idx, 1), bs=self.bs, shuffle=False,
                           seed=self.seed + 1, num_workers=0, augment=False)
        return DataLoaders(train, valid, recipe=recipe, device=train.device)

    def _predict(self, d: TabularData) -> np.ndarray:
        import torch

        from pipekit.tabular.core import TabularSplit

        cats, conts, _ = TabularSplit(self._frame(replace(d, y=None)), self.processor_).to_torch()
        # in float64, on a copy of the net: float32 matrix products round by the batch's shape, so a row's prediction
        # would move in its seventh digit with the rows predicted beside it (scikit-learn checks that it does not)
        model = copy.deepcopy(self.model_).double().eval()
        with torch.no_grad():
            out = torch.cat([model(cats[i:i + 8192], conts[i:i + 8192].double())
                             for i in range(0, len(d), 8192)])
        if self.task == "classification":
            return torch.softmax(out, 1).numpy().astype(np.float64)[:, np.argsort(self._net_classes())]
        return out[:, 0].numpy().astype(np.float64)

    def _net_classes(self) -> np.ndarray:
        """The classes of the net's outputs, in output order, decoded as the processing decodes them (a bool target's
        False/True; the text of processing saved before it recorded the target's type)."""
        return np.asarray(self.processor_.y_classes_)

    def embeddings(self) -> dict[str, np.ndarray]:
        """The learned embedding matrix per categorical input (row = category code)."""
        self.check_is_fitted()
        return {c: e.weight.detach().cpu().numpy().copy() for c, e in zip(self.processor_.cat_names_,
                                                                          self.model_.embeds)}

    # -- files: the procs as their plain state (the net is sized from them), the weights as arrays ---------
    def model_to_data(self) -> dict[str, Any]:
        return {"processor": self.processor_, "weights": dict(self.model_.state_dict())}

    def model_from_data(self, data: Any) -> Any:
        import torch

        from pipekit.learn.export import unusable_weights
        from pipekit.tabular.model import TabularModel, check_embedding_rows, check_stored_net, model_options
        from pipekit.tabular.processor import TabularProcessor

        if not (isinstance(data, dict) and set(data) == {"processor", "weights"}):
            raise ExportError("model_ must hold the fitted procs and the weights ({'processor', 'weights'})")
        if not isinstance(data["processor"], TabularProcessor):
            raise ExportError("model_.processor must be the record of a fitted TabularProcessor")
        p = self.processor_ = data["processor"]
        data = data["weights"]
        if not (isinstance(data, dict) and all(isinstance(v, np.ndarray) and v.dtype.kind in "biuf"
                                               for v in data.values())):
            raise ExportError("the weights must map each name to a numeric array")
        sizes, emb = self.emb_szs_, data.get("embeds.weight")
        if not (isinstance(sizes, list) and all(isinstance(e, list) and len(e) == 2 and all(
                isinstance(x, int) and x >= 1 for x in e) for e in sizes)
                and sum(ni * nf for ni, nf in sizes) == (0 if emb is None else emb.size)):
            raise ExportError("emb_szs_ must be (rows, width) pairs that the stored embedding table fills exactly")
        check_embedding_rows(sizes, p.cat_names_, p.classes_, "emb_szs_")

        # files written before y_range_ was recorded hold only the y_range given
        y_range = self.y_range_ if hasattr(self, "y_range_") else self._y_range()
        if not Y_RANGE.accepts(y_range):
            raise ExportError(f"y_range_ must be {Y_RANGE}")

        out_sz = len(p.y_vocab_ or ()) if self.task == "classification" else len(p.y_names)
        # the layer sizes against the stored weights before any module is built (even on the meta device, building
        # costs time and memory per layer: a file must not ask for a net larger than its own weights)
        options = model_options(self.config)
        check_stored_net({"layers": self.layers, **options},
                         {k: v.shape for k, v in data.items()}, "params")

        def build() -> Any:
            return TabularModel(sizes, len(p.cont_names_), out_sz, layers=self.layers, y_range=y_range, **options)

        with torch.device("meta"):  # sizes checked against the stored weights before anything is allocated
            shapes = {k: tuple(v.shape) for k, v in build().state_dict().items()}
        if shapes != {k: v.shape for k, v in data.items()}:
            raise ExportError("the stored weights do not match the net its parameters describe")
        model = build()
        unusable = unusable_weights(model.state_dict(), data)
        if unusable:
            raise ExportError(f"the weights cannot predict: {'; '.join(unusable[:3])}")
        model.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in data.items()})
        return model.eval()


def net_structure(model: Any) -> tuple[list[int], dict[str, Any] | None, int]:
    """The ``layers``, ``config`` (the ``TabularModel`` arguments that differ from their defaults) and number of
    outputs that rebuild the ``TabularModel`` ``model``, read from its modules; a ParameterError for a net they cannot
    rebuild (a custom ``body``, layers changed after it was built).

    >>> from pipekit.tabular import TabularModel
    >>> net_structure(TabularModel([(5, 3)], 2, 4, layers=[20, 10], ps=[0.1, 0.0], use_bn=False))
    ([20, 10], {'ps': [0.1, 0.0], 'use_bn': False}, 4)
    """
    import torch
    from torch import nn

    from pipekit.tabular.model import TabularModel

    mods, i = list(model.layers.children()), 0
    layers: list[int] = []
    ps: list[float] = []
    bns: set[bool] = set()
    # hidden blocks are Linear, ReLU, then BatchNorm1d (use_bn) and Dropout (a p above 0), as TabularModel builds them
    while i + 1 < len(mods) and type(mods[i]) is nn.Linear and type(mods[i + 1]) is nn.ReLU:
        layers.append(int(mods[i].out_features))
        i += 2
        bn = i < len(mods) and type(mods[i]) is nn.BatchNorm1d
        bns.add(bn)
        i += int(bn)
        dropout = i < len(mods) and type(mods[i]) is nn.Dropout
        ps.append(float(mods[i].p) if dropout else 0.0)
        i += int(dropout)
    if i >= len(mods) or type(mods[i]) is not nn.Linear:
        raise ParameterError("the net's layers are not the hidden blocks tabular_learner builds (a custom body= or "
                             "changed layers): TorchTabular rebuilds its net from layers and config, so it cannot hold "
                             "this one; train it with layers=[...] and config")
    out_sz = int(mods[i].out_features)
    bn_final = i + 1 < len(mods) and type(mods[i + 1]) is nn.BatchNorm1d
    config: dict[str, Any] = {"ps": ps if any(ps) else None, "embed_p": float(model.emb_drop.p), "use_bn": bns != {False},
              "bn_final": bn_final, "bn_cont": model.bn_cont is not None or not model.n_cont}
    defaults = {"ps": None, "embed_p": 0.0, "use_bn": True, "bn_final": False, "bn_cont": True}
    config = {k: v for k, v in config.items() if v != defaults[k]}
    with torch.device("meta"):  # the same modules, or the net cannot be rebuilt from these parameters
        rebuilt = TabularModel(model.embeds.emb_szs, model.n_cont, out_sz, layers=layers, y_range=model.y_range,
                               **config)
    if len(bns) > 1 or repr(rebuilt) != repr(model):
        raise ParameterError("the net's modules differ from those TabularModel builds from its layers and config "
                             f"(layers={layers}, config={config}), so a file could not rebuild it: train it with "
                             "tabular_learner's layers and config only")
    return layers, config or None, out_sz


def target_range(y: Any, margin: float = 0.05) -> list[float]:
    """The range of regression targets ``y`` widened by ``margin`` of their span at each end: the default
    ``y_range`` of a regression net.

    >>> target_range([10.0, 30.0])
    [9.0, 31.0]
    """
    y = encode_y(np.asarray(y), "regression")
    lo, hi = float(y.min()), float(y.max())
    span = (hi - lo) or max(abs(hi), 1.0)
    return [lo - margin * span, hi + margin * span]


def embedding_tables(source: Any, data: TabularData) -> dict[str, np.ndarray]:
    """The learned embedding matrix per categorical input (row = category code) of ``source``: a fitted
    :class:`TorchTabular`, a ``tabular_learner`` Learner or its ``TabularModel`` (``learn.model``), whose tables are
    named by the categorical inputs of the processing that built them (the Learner's loaders', else ``data``'s).
    Where that processing is known, ``data`` processed by other procs is refused as every model refuses it: its
    codes would index rows of another vocabulary.

    >>> from pipekit.tabular import Tabular
    >>> df = pl.DataFrame({"job": ["cook", "nurse", "cook", "clerk"] * 25, "y": [1.0, 2.0, 1.5, 3.0] * 25})
    >>> tab = Tabular(df, cat_names=["job"], y_names="y", splits=(np.arange(80), np.arange(80, 100)))
    >>> net = TorchTabular("regression", layers=[8], epochs=1, seed=0).fit(tab.train)
    >>> {name: table.shape for name, table in embedding_tables(net, as_data(tab.train)).items()}  # #na# + 3 jobs
    {'job': (4, 3)}
    """
    if isinstance(source, TorchTabular):
        source.check_is_fitted()
        check_signature(data, source.procs_signature_)
        return source.embeddings()
    model = getattr(source, "model", source)  # a Learner holds the net as .model
    embeds = getattr(model, "embeds", None)
    if embeds is None or not hasattr(embeds, "emb_szs"):
        raise ParameterError(f"embeddings_as_features takes a fitted TorchTabular, a tabular_learner Learner or its "
                             f"TabularModel (learn.model), got {type(source).__name__}")
    recipe = getattr(getattr(source, "dls", None), "recipe", None)
    processor = getattr(recipe, "processor", None)
    if processor is not None:
        check_signature(data, procs_signature(processor))
    processor = processor or data.processor
    if processor is None:
        raise ParameterError("embeddings_as_features: the data must be a split of the Tabular the net was trained on "
                             "(tab.train, tab.new(df)): its procs name the net's embedding tables")
    names = list(processor.cat_names_)
    if len(names) != len(embeds):
        raise ParameterError(f"the net has {len(embeds)} embedding tables but the procs of the data name "
                             f"{len(names)} categorical inputs ({names}); pass splits of the Tabular the net was "
                             "trained on")
    return {c: e.weight.detach().cpu().numpy().copy() for c, e in zip(names, embeds)}


def embeddings_as_features(net: Any, data: Any, columns: Sequence[str] | None = None,
                           keep_codes: bool = False) -> TabularData:
    """Replace each categorical input in ``columns`` (default: every one with an embedding wider than 1) by
    its learned embedding vector, as continuous columns ``<col>_emb<j>``, so a forest or GBM can use
    what the net learned about the categories. ``keep_codes`` keeps the original code columns as well.
    ``net``: a fitted :class:`TorchTabular`, or a ``tabular_learner`` Learner or its model (``learn.model``), as
    in the book's chapter 9. ``data`` holds processed rows (``tab.train``, ``tab.new(rows)``), of the same procs as
    the net's where they are known; ``columns`` may be one name.

    Example:
        >>> import numpy as np, polars as pl
        >>> from pipekit.backends import RandomForest
        >>> from pipekit.ensemble import TorchTabular, embeddings_as_features
        >>> from pipekit.tabular import Tabular
        >>> df = pl.DataFrame({"job": ["cook", "nurse", "cook", "clerk"] * 25,
        ...                    "age": [20.0 + i % 37 for i in range(100)], "y": [1.0, 2.0, 1.5, 3.0] * 25})
        >>> tab = Tabular(df, cat_names=["job"], cont_names=["age"], y_names="y",
        ...               splits=(np.arange(80), np.arange(80, 100)))
        >>> net = TorchTabular("regression", layers=[8], epochs=1, seed=0).fit(tab.train)
        >>> feats = embeddings_as_features(net, tab.train)     # 'job' (#na# + 3 jobs) becomes its 3 embedding columns
        >>> feats.xs.columns
        ['age', 'job_emb0', 'job_emb1', 'job_emb2']
        >>> rf = RandomForest("regression", n_estimators=10, seed=0).fit(feats)
        >>> rf.predict(embeddings_as_features(net, tab.valid)).shape
        (20,)
    """
    d = as_data(data)
    embs = embedding_tables(net, d)
    if isinstance(columns, str):
        columns = [columns]
    cols = list(columns) if columns is not None else [c for c, w in embs.items() if w.shape[1] > 1]
    unknown = [c for c in cols if c not in embs]
    if unknown:
        raise ParameterError(f"{unknown} have no embedding in this net; embedded columns: {list(embs)}")
    schema = d.xs.schema  # once: each read rebuilds it, a cost that grows with the columns
    for c in cols:  # raw rows first: they also lack the columns processing adds (FillMissing's '_na')
        if c in schema and not schema[c].is_integer():
            raise ParameterError(f"column {c!r} is {schema[c]}, not category codes: these rows look unprocessed; "
                                 f"process them with the Tabular the net was trained on first (tab.new(rows))")
    d.check_columns(cols, "the embedded column(s)")
    new_cols = []
    for c in cols:
        codes = d.xs.get_column(c).to_numpy().astype(np.int64)
        w = embs[c]
        if len(codes) and (codes.min() < 0 or codes.max() >= len(w)):
            raise DataError(f"column {c!r} has code {int(codes.max())} outside the net's vocabulary of {len(w)}")
        new_cols += [pl.Series(f"{c}_emb{j}", w[codes][:, j]) for j in range(w.shape[1])]
    out = d if keep_codes else d.drop(cols)
    return replace(out, xs=out.xs.with_columns(new_cols))
