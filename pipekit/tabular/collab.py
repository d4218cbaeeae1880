"""Collaborative filtering: users x items ratings, dot-product and neural models, and their inspection.

Example:
    >>> import polars as pl
    >>> from pipekit.datasets import path
    >>> from pipekit.learn import rmse
    >>> ratings = pl.read_csv(path("movie_lens_sample") / "ratings.csv")
    >>> dls = CollabDataLoaders.from_df(ratings, valid_pct=0.2, seed=42, bs=64)
    >>> learn = collab_learner(dls, n_factors=50, y_range=(0, 5.5), metrics=rmse())
    >>> learn.fit_one_cycle(5, 5e-3, wd=0.1)                                    # doctest: +SKIP
    >>> learn.model.most_similar("1097", n=3)                                   # doctest: +SKIP
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl
import torch
from torch import nn

from pipekit.core.errors import DataError, NotFittedError, ParameterError, warn
from pipekit.core.validate import (Y_RANGE, Interval, argument_names, bs_or_batch_size, check, check_arguments,
                                   is_pandas, names_shown, unknown_names)
from pipekit.data.dataloaders import DataLoaders
from pipekit.data.vocab import CategoryMap
from pipekit.data.splitters import VALID_PCT, RandomSplitter
from pipekit.learn.registry import register_arch
from pipekit.tabular.core import Tabular, naming_file, read_frame, read_new
from pipekit.tabular.loaders import TabularRecipe, tabular_dataloaders
from pipekit.learn.nets import sigmoid_range
from pipekit.tabular.model import (TabularModel, check_config, config_y_range, get_emb_sz, model_options,
                                   warn_y_range)
from pipekit.tabular.processor import text_not_numbers
from pipekit.tabular.procs import Categorify, column_code

if TYPE_CHECKING:  # imported where the learner is built: pipekit.learn.learner imports this package's modules
    from pipekit.learn.learner import Learner


#: a column named like the ratings (case aside): ``rating``, ``ratings``, ``score``, ``scores``, ``star``, ``stars``
_RATING_NAME = re.compile(r"ratings?|scores?|stars?", re.IGNORECASE)


def _check_third_is_rating(cols: Sequence[str], user_name: str, item_name: str) -> None:
    """Refuse to take the third column as the ratings (the default) when it is not named like them and another
    column is: a table of ``userId, movieId, timestamp, rating`` would train on the timestamps."""
    if _RATING_NAME.fullmatch(cols[2].strip()):
        return
    named = [c for c in cols if c not in (user_name, item_name) and _RATING_NAME.fullmatch(c.strip())]
    if named:
        raise DataError(f"CollabDataLoaders.from_df: without rating_name= the ratings are the third column, "
                        f"{cols[2]!r}, but the table has a column named like ratings, {named[0]!r} (columns: "
                        f"{names_shown(cols)}); pass rating_name={named[0]!r} (or rating_name={cols[2]!r} to rate "
                        "by the third column)")


def _refuse_text_ratings(df: pl.DataFrame, rating_name: str, ratings: Any, file: Path | None) -> None:
    """Refuse ratings read as text, with the fix that works: a cast when every rating is a number written as
    text; otherwise the first value that is no number, its row and how many rows are alike (as the continuous
    columns of a table are checked), and a cast that turns those values to nulls, which are then dropped."""
    c, dtype = rating_name, df.schema[rating_name]
    # numbers written with spaces around them ("  4.0") read as numbers only once the spaces are stripped
    padded = dtype == pl.String and bool((df[c] != df[c].str.strip_chars()).any())
    stripped = ".str.strip_chars()" if padded else ""
    for value, row, n in text_not_numbers(df, [c]).values():
        fix = (f"df[{c!r}] = pd.to_numeric(df[{c!r}], errors='coerce'); df = df.dropna(subset=[{c!r}])"
               if is_pandas(ratings) else
               f"df.with_columns(pl.col({c!r}){stripped}.cast(pl.Float32, strict=False)).drop_nulls({c!r})")
        raise DataError(f"CollabDataLoaders.from_df: the ratings {c!r} are {dtype}, and not all numbers: {value!r} at "
                        f"row {row} ({n} such rows); "
                        + (f"fix those rows in {file}, or " if file is not None else "") + "read them as numbers "
                        f"and drop the rows that are not: {fix}") from None
    first = df[c].drop_nulls().head(1).to_list()
    raise DataError(f"CollabDataLoaders.from_df: the ratings {c!r} are {dtype} (e.g. "
                    f"{first[0] if first else None!r}), not numbers; cast them first: "
                    + (f"df[{c!r}] = df[{c!r}].astype(float)" if is_pandas(ratings)
                       else f"df.with_columns(pl.col({c!r}){stripped}.cast(pl.Float32))"))


class CollabDataLoaders:
    """Build DataLoaders for ratings: a batch is ``(x, y)``, one input ``x`` of (user, item) codes (a
    ``(bs, 2)`` long tensor, users in column 0) and the ratings ``y``, so the book's models written
    ``forward(self, x)`` train on it.

    >>> import polars as pl
    >>> from pipekit.datasets import path
    >>> dls = CollabDataLoaders.from_df(pl.read_csv(path("movie_lens_sample") / "ratings.csv"), bs=64, seed=0)
    >>> x, y = dls.one_batch()
    >>> dls.n_inp, tuple(x.shape), x.dtype, y.dtype
    (1, (64, 2), torch.int64, torch.float32)
    >>> movies = dls.classes["movieId"]  # '#na#', then the ids as text; .o2i gives an id's embedding row
    >>> movies.o2i[1097], movies.o2i["1097"], movies[52]
    (52, 52, '1097')
    """

    @staticmethod
    def from_df(ratings: Any, user_name: str | None = None, item_name: str | None = None,
                rating_name: str | None = None, valid_pct: float = 0.2, seed: int | None = None, bs: int = 64,
                val_bs: int | None = None, device: Any = None, num_workers: int | None = None,
                path: str | os.PathLike = ".", batch_size: int | None = None, **kwargs: Any) -> DataLoaders:
        """Ratings (DataFrame or path) -> DataLoaders; columns default to the first three (user, item, rating), and
        a third column not named like ratings is refused as them when another column is (``rating``, ``score``,
        ``stars``): pass ``rating_name=``.
        ``batch_size`` is PyTorch's and fastai's name of ``bs``; any other keyword is refused, naming the close ones.

        ``path``: the folder a learner on these loaders saves to (``dls.path``, then ``learn.path``); the ratings
        are in the table. Users and items get a
        vocabulary from the training rows; index 0 (``#na#``) stands for a user or
        item never seen in training, so predictions for them fall back to the learned biases.

        >>> import polars as pl
        >>> from pipekit.datasets import path
        >>> ratings = pl.read_csv(path("movie_lens_sample") / "ratings.csv")
        >>> ratings.columns                          # user, item, rating: the first three are taken
        ['userId', 'movieId', 'rating', 'timestamp']
        >>> dls = CollabDataLoaders.from_df(ratings, valid_pct=0.2, seed=42, bs=64)
        >>> len(dls.train_ds), len(dls.valid_ds), list(dls.classes), dls.classes["userId"][0]
        (4825, 1206, ['userId', 'movieId'], '#na#')
        >>> x, y = dls.one_batch()
        >>> tuple(x.shape), tuple(y.shape)      # ratings (bs, 1), as the models predict them
        ((64, 2), (64, 1))
        """
        check_arguments("CollabDataLoaders.from_df", kwargs, argument_names(CollabDataLoaders.from_df))
        bs = bs_or_batch_size("CollabDataLoaders.from_df", bs, batch_size)
        check("CollabDataLoaders.from_df", valid_pct=(valid_pct, VALID_PCT))
        df = read_frame(ratings)
        cols = df.columns
        if len(cols) < 3 and (user_name is None or item_name is None or rating_name is None):
            with naming_file(ratings):
                raise DataError(f"CollabDataLoaders.from_df: expected user, item and rating columns, got {cols}.")
        if rating_name is None and len(cols) >= 3:
            with naming_file(ratings):
                _check_third_is_rating(cols, user_name or cols[0], item_name or cols[1])
        user_name, item_name, rating_name = user_name or cols[0], item_name or cols[1], rating_name or cols[2]
        for param, c in (("user_name", user_name), ("item_name", item_name), ("rating_name", rating_name)):
            if c not in cols:
                raise ParameterError(f"CollabDataLoaders.from_df: {param}={c!r} is not a column; "
                                     f"{unknown_names([c], cols)}.")
        if len({user_name, item_name, rating_name}) < 3:
            raise ParameterError(f"CollabDataLoaders.from_df: user_name={user_name!r}, item_name={item_name!r} and "
                                 f"rating_name={rating_name!r} must name three different columns")
        dtype = df.schema[rating_name]
        file = Path(ratings) if isinstance(ratings, (str, os.PathLike)) else None
        with naming_file(ratings):  # a file's rows are at fault from here on
            # no rows (a header only), or no rating in any row, before the ratings' type, which they leave unknown
            if len(df) == 0:
                raise DataError(f"{file} has a header but no rows; there is nothing to train on: check the file"
                                if file is not None else "CollabDataLoaders.from_df: the ratings table has no rows; "
                                "there is nothing to train on")
            if df[rating_name].null_count() == len(df):
                raise DataError(f"CollabDataLoaders.from_df: {rating_name!r} is empty in all {len(df)} rows of "
                                f"{file if file is not None else 'the ratings table'}; every row needs a rating: fill "
                                "that column, or name the ratings' column with rating_name=")
            if not (dtype.is_numeric() or dtype == pl.Boolean):
                _refuse_text_ratings(df, rating_name, ratings, file)
            for c in (user_name, item_name):  # a missing id would train the #na# slot that unseen ids predict from
                missing = df[c].is_null() | (df[c].is_nan() if df.schema[c].is_float() else False)
                if missing.any():
                    rows = missing.arg_true().to_list()
                    raise DataError(f"CollabDataLoaders.from_df: {c!r} is missing in {len(rows)} of {len(df)} rows "
                                    f"(first rows {rows[:5]}); a rating needs its user and its item: drop those rows "
                                    f"(pandas: df.dropna(subset=[{c!r}]); Polars: df.drop_nulls({c!r}))")
            n_valid = int(valid_pct * len(df))  # as RandomSplitter counts them (fastai's count)
            # valid_pct=0 trains on every rating (no validation set); another share must leave ratings on both sides
            if valid_pct and len(df) == 1:
                raise DataError("CollabDataLoaders.from_df: 1 rating cannot be split into training and validation "
                                "ratings; give at least 2, or valid_pct=0 to train on it with no validation set")
            if (valid_pct and n_valid == 0) or n_valid == len(df):
                raise DataError(f"CollabDataLoaders.from_df: valid_pct={valid_pct} of {len(df)} ratings leaves "
                                f"{'no' if n_valid == 0 else 'every'} rating for validation; pass a valid_pct "
                                f"between {1 / len(df):.3g} and {1 - 1 / len(df):.3g}, or 0 for no validation set"
                                if len(df) else "CollabDataLoaders.from_df: the ratings are empty")
            repeated = df.select(pl.struct(user_name, item_name).is_duplicated().sum()).item()
            if repeated:  # two ratings of one pair: conflicting targets, and one may be validated on the other
                pairs = df.group_by(user_name, item_name).len().filter(pl.col("len") > 1).height
                mean = (f"df.groupby([{user_name!r}, {item_name!r}], as_index=False)[{rating_name!r}].mean()"
                        if is_pandas(ratings) else
                        f"df.group_by({user_name!r}, {item_name!r}).agg(pl.col({rating_name!r}).mean())")
                warn(f"CollabDataLoaders.from_df: {pairs} ({user_name}, {item_name}) pair(s) are rated more than once "
                     f"({repeated} of {len(df)} rows); the random split can put one rating of a pair in training and "
                     f"another in validation, which then scores a pair the model has seen. Keep one rating per pair, "
                     f"e.g. their mean: {mean}")
            # a pandas frame stays the table's source: dls.train.xs and .y come back as pandas, as for tables
            tab = Tabular(ratings if is_pandas(ratings) else df, procs=[Categorify], cat_names=[user_name, item_name],
                          cont_names=[],
                          y_names=rating_name, y_block="regression", splits=RandomSplitter(valid_pct, seed=seed))
        dls: Any = tabular_dataloaders(tab, bs=bs, val_bs=val_bs, seed=seed, device=device, num_workers=num_workers,
                                       with_cont=False)
        dls.path = Path(path)
        return dls

    @staticmethod
    def from_csv(csv: str | os.PathLike, **kwargs: Any) -> DataLoaders:
        """:meth:`from_df` on a CSV file of ratings (``user_name``, ``item_name``, ``rating_name``, ``valid_pct``,
        ``seed``, ``bs``... as there)."""
        check_arguments("CollabDataLoaders.from_csv", kwargs, argument_names(
            CollabDataLoaders.from_csv, CollabDataLoaders.from_df, but=("ratings",)))
        return CollabDataLoaders.from_df(csv, **kwargs)


def _is_one(values: Any) -> bool:
    """Whether ``values`` is one id (a str, a number, a 0-d array or tensor) rather than a list of them."""
    return isinstance(values, (str, bytes)) or not isinstance(values, Iterable) or getattr(values, "ndim", 1) == 0


def _as_values(values: Any) -> list[Any]:
    if _is_one(values):
        return [values.item() if hasattr(values, "item") else values]
    return [v.item() if getattr(v, "ndim", 1) == 0 and hasattr(v, "item") else v for v in values]


def _check_classes(owner: str, classes: Any, user_name: Any, item_name: Any, n_users: int, n_items: int) -> None:
    """The vocabularies a collab model looks ids up in (they ride along in its stored arguments): None, or the
    user and item vocabularies, ``#na#`` then distinct text ids, one per embedding row, so a lookup can never
    land outside the embeddings or on another id."""
    if classes is None:
        return
    if not (isinstance(classes, dict) and isinstance(user_name, str) and isinstance(item_name, str)
            and user_name in classes and item_name in classes):
        raise ParameterError(f"{owner}: classes must map user_name and item_name to their vocabularies, got "
                             f"user_name={user_name!r:.40}, item_name={item_name!r:.40}, classes of "
                             f"{type(classes).__name__}")
    for name, n in ((user_name, n_users), (item_name, n_items)):
        vocab = classes[name]
        if not (isinstance(vocab, list) and vocab[:1] == ["#na#"] and all(isinstance(v, str) for v in vocab)
                and len(set(vocab)) == len(vocab)):
            raise ParameterError(f"{owner}: classes[{name!r}] must be '#na#' then distinct ids as text")
        if len(vocab) != n:
            raise ParameterError(f"{owner}: classes[{name!r}] holds {len(vocab)} values for {n} embedding rows")


def _vocabs(classes: dict[str, Any] | None, user_name: Any, item_name: Any) -> dict[str, Any] | None:
    """The model's own copy of the user and item vocabularies as the loaders' ``dls.classes`` holds them: each a
    :class:`CategoryMap` (equal to, and stored as, the plain list) whose ``o2i`` gives an id's embedding row."""
    if classes is None:
        return None
    return {k: CategoryMap(v, name=k, code_of=column_code) if k in (user_name, item_name) else v
            for k, v in classes.items()}


class _CollabInspect:
    """Inspection shared by the collab models: look items/users up by value (one id, or a list of ids)."""

    classes: dict[str, CategoryMap] | None
    user_name: str | None
    item_name: str | None

    def _codes(self, values: Any, is_item: bool) -> torch.Tensor:
        name = self.item_name if is_item else self.user_name
        if not self.classes or name is None:
            raise NotFittedError("this model has no vocabularies; build it with collab_learner(dls) to look items up.")
        vocab = self.classes[name]
        values = list(_as_values(values))
        codes = [c or 0 for c in Categorify.lookup(name, vocab, values)]  # as dls.classes[name].o2i looks up
        unknown = [v for v, c in zip(values, codes) if c == 0]
        if unknown:
            raise DataError(f"{name!r}: {unknown[:5]} never seen in training ({len(unknown)} unknown); "
                            f"known values look like {vocab[1:4]}.")
        return torch.tensor(codes, dtype=torch.long)

    def _tables(self, is_item: bool) -> tuple[Any, nn.Embedding | None]:
        raise NotImplementedError

    def weight(self, values: Any, is_item: bool = True) -> torch.Tensor:
        """The embedding vectors of some items (or users, ``is_item=False``), looked up by value: one id gives
        its vector ``(n_factors,)``, a list of ids one row per id."""
        emb, _ = self._tables(is_item)
        with torch.no_grad():
            out = emb.weight[self._codes(values, is_item).to(emb.weight.device)].detach().cpu()
        return out[0] if _is_one(values) else out

    def bias(self, values: Any, is_item: bool = True) -> torch.Tensor:
        """The learned bias of some items (or users): how much better or worse they are rated overall. One id
        gives a 0-d tensor, a list of ids one value per id."""
        _, b = self._tables(is_item)
        if b is None:
            raise AttributeError(f"{type(self).__name__} has no bias terms; use EmbeddingDotBias.")
        with torch.no_grad():
            out = b.weight[self._codes(values, is_item).to(b.weight.device), 0].detach().cpu()
        return out[0] if _is_one(values) else out

    def all_values(self, is_item: bool = True) -> list[str]:
        """Every known item (or user) value, in code order (without ``#na#``)."""
        name = self.item_name if is_item else self.user_name
        self._codes([], is_item)
        return list(self.classes[name][1:]) if self.classes and name else []

    def most_similar(self, value: Any, n: int = 5, is_item: bool = True) -> list[tuple[str, float]]:
        """The ``n`` items closest to ``value`` (one id) by cosine similarity of their embeddings."""
        check("most_similar", n=(n, Interval(1, None, integer=True)))
        if not _is_one(value):
            raise ParameterError(f"most_similar takes one id, got {type(value).__name__} {value!r:.60}; for several, "
                                 "call it once per id")
        emb, _ = self._tables(is_item)
        code = int(self._codes(value, is_item)[0])
        w = emb.weight.detach().cpu()[1:]  # row 0 is #na#
        sims = nn.functional.cosine_similarity(w, w[code - 1][None], dim=1)
        sims[code - 1] = -2.0  # never itself
        top = torch.topk(sims, min(n, len(sims) - 1)).indices.tolist()
        names = self.all_values(is_item)
        return [(names[i], float(sims[i])) for i in top]

    def pca(self, n_components: int = 3, is_item: bool = True, values: Sequence[Any] | None = None) -> np.ndarray:
        """Principal components of the item (or user) embeddings, one row per known value, or fitted on the
        embeddings of ``values`` only, one row each in their order (the book's PCA of the most-rated movies:
        ``pca(3, values=top_movies)``); at most as many components as the embeddings have factors (a larger
        ``n_components`` is refused)."""
        emb, _ = self._tables(is_item)
        n_factors = emb.weight.shape[1]
        check("pca", n_components=(n_components, Interval(1, None, integer=True)))
        if n_components > n_factors:
            raise ParameterError(f"pca: n_components={n_components} is more than the {n_factors} factors of the "
                                 f"embeddings; ask for at most {n_factors}")
        w = emb.weight.detach().cpu().double().numpy()
        w = w[1:] if values is None else w[self._codes(values, is_item).numpy()]
        if len(w) < n_components:
            raise ParameterError(f"pca: {len(w)} value(s) give at most {len(w)} components; ask for n_components <= "
                                 f"{len(w)} or pass more values")
        w = w - w.mean(0)
        _, _, vt = np.linalg.svd(w, full_matrices=False)
        return w @ vt[:n_components].T

    def plot_pca(self, values: Sequence[Any] | None = None, n: int = 50, is_item: bool = True,
                 path: str | Path | None = None) -> Path | None:
        """Scatter the first two principal components of the item factors, labelled (PNG when headless): of the
        first ``n`` items, or fitted on and drawn for ``values`` (e.g. the most-rated movies)."""
        from pipekit.data.plotting import get_pyplot, savefig_or_show

        names = self.all_values(is_item)
        if values is None:
            comps, idx = self.pca(2, is_item), list(range(min(n, len(names))))
        else:  # fitted on the chosen values only, as pca(values=) is
            comps, idx = self.pca(2, is_item, values=values), list(range(len(_as_values(values))))
            names = [names[int(c) - 1] for c in self._codes(values, is_item)]
        plt = get_pyplot()
        fig, ax = plt.subplots(figsize=(8, 8))
        ax.scatter(comps[idx, 0], comps[idx, 1], s=8)
        for i in idx:
            ax.annotate(str(names[i]), (comps[i, 0], comps[i, 1]), fontsize=7)
        ax.set_xlabel("component 1")
        ax.set_ylabel("component 2")
        ax.set_title(f"PCA of {'item' if is_item else 'user'} factors")
        return savefig_or_show(fig, path, name="collab_pca")


@register_arch("EmbeddingDotBias")
class EmbeddingDotBias(_CollabInspect, nn.Module):
    """rating = user . item + user_bias + item_bias, squashed into ``y_range`` when given: one column, ``(bs, 1)``,
    as the ratings' batches are, so any loss (``MSELossFlat``, ``F.mse_loss``, ``nn.MSELoss``) compares like shapes.

    Example:
        >>> m = EmbeddingDotBias(4, n_users=3, n_items=5, y_range=(0, 5.5))
        >>> m(torch.tensor([[1, 2], [2, 4]])).shape
        torch.Size([2, 1])
    """

    def __init__(self, n_factors: int, n_users: int, n_items: int, y_range: Sequence[float] | None = None,
                 classes: dict[str, list[str]] | None = None, user_name: str | None = None,
                 item_name: str | None = None) -> None:
        nn.Module.__init__(self)
        positive = Interval(1, None, integer=True)
        check("EmbeddingDotBias", n_factors=(n_factors, positive), n_users=(n_users, positive),
              n_items=(n_items, positive), y_range=(y_range, Y_RANGE))
        _check_classes("EmbeddingDotBias", classes, user_name, item_name, n_users, n_items)
        self.y_range = None if y_range is None else (float(y_range[0]), float(y_range[1]))
        self.u_weight, self.i_weight = nn.Embedding(n_users, n_factors), nn.Embedding(n_items, n_factors)
        self.u_bias, self.i_bias = nn.Embedding(n_users, 1), nn.Embedding(n_items, 1)
        with torch.no_grad():
            for e in (self.u_weight, self.i_weight):
                nn.init.trunc_normal_(e.weight, std=0.01)
                e.weight[0].zero_()  # #na#: an unseen user/item contributes nothing but the other side's bias
            for e in (self.u_bias, self.i_bias):
                e.weight.zero_()
        # The vocabularies ride along as constructor arguments (plain lists) so an exported model can still look
        # items up by value after load_learner; the model keeps them as CategoryMaps, as dls.classes are.
        self.classes, self.user_name, self.item_name = _vocabs(classes, user_name, item_name), user_name, item_name

    def _tables(self, is_item: bool) -> tuple[Any, nn.Embedding | None]:
        return (self.i_weight, self.i_bias) if is_item else (self.u_weight, self.u_bias)

    def forward(self, x_cat: torch.Tensor, x_cont: torch.Tensor | None = None) -> torch.Tensor:
        users, items = x_cat[:, 0], x_cat[:, 1]
        dot = (self.u_weight(users) * self.i_weight(items)).sum(1, keepdim=True)
        res = dot + self.u_bias(users) + self.i_bias(items)
        return res if self.y_range is None else sigmoid_range(res, *self.y_range)


@register_arch("EmbeddingNN")
class EmbeddingNN(_CollabInspect, TabularModel):
    """A neural collaborative filter: user and item embeddings concatenated, then an MLP with one output column,
    ``(bs, 1)``, as the ratings' batches are. ``ps``, ``embed_p``, ``y_range``, ``use_bn``, ``bn_final`` and
    ``bn_cont`` are :class:`~pipekit.tabular.TabularModel`'s (``bn_cont`` does nothing: there are no continuous
    inputs).

    >>> import torch
    >>> from pipekit.tabular import EmbeddingNN
    >>> _ = torch.manual_seed(0)
    >>> m = EmbeddingNN([(4, 3), (6, 5)], layers=[8], y_range=(0, 5.5))   # 3 users + #na#, 5 items + #na#
    >>> out = m(torch.tensor([[1, 2], [3, 5]]))                            # (user, item) codes
    >>> tuple(out.shape), bool(((out > 0) & (out < 5.5)).all()), m.n_emb
    ((2, 1), True, 8)
    """

    def __init__(self, emb_szs: Sequence[Sequence[int]], layers: Sequence[int] = (100,),
                 ps: float | Sequence[float] | None = None, embed_p: float = 0.0,
                 y_range: Sequence[float] | None = None, use_bn: bool = True,
                 classes: dict[str, list[str]] | None = None, user_name: str | None = None,
                 item_name: str | None = None, bn_final: bool = False, bn_cont: bool = True) -> None:
        TabularModel.__init__(self, emb_szs, n_cont=0, out_sz=1, layers=layers, ps=ps, embed_p=embed_p,
                              y_range=y_range, use_bn=use_bn, bn_final=bn_final, bn_cont=bn_cont)
        if len(emb_szs) != 2:
            raise ParameterError(f"EmbeddingNN: emb_szs must size 2 embeddings (users, items), got {len(emb_szs)}")
        _check_classes("EmbeddingNN", classes, user_name, item_name, int(emb_szs[0][0]), int(emb_szs[1][0]))
        self.classes, self.user_name, self.item_name = _vocabs(classes, user_name, item_name), user_name, item_name

    def _tables(self, is_item: bool) -> tuple[Any, nn.Embedding | None]:
        return (self.embeds[1] if is_item else self.embeds[0]), None

    def forward(self, x_cat: torch.Tensor, x_cont: torch.Tensor | None = None) -> torch.Tensor:
        return TabularModel.forward(self, x_cat, x_cat.new_zeros(len(x_cat), 0, dtype=torch.float32)
                                    if x_cont is None else x_cont)


def collab_learner(dls: Any, n_factors: int = 50, use_nn: bool = False, emb_szs: dict[str, int] | None = None,
                   layers: Sequence[int] | None = None, config: dict[str, Any] | None = None,
                   y_range: Sequence[float] | None = None, **kwargs: Any) -> Learner:
    """A Learner with ``EmbeddingDotBias`` (or ``EmbeddingNN`` when ``use_nn``) sized from the data.

    ``use_nn``: the embeddings go through one hidden layer of ``n_factors`` units unless ``layers`` gives them
    (``layers=[100, 50]``), as fastai builds it. ``config`` gives that network's options as ``tabular_learner``
    takes them (a dict, or :func:`~pipekit.tabular.tabular_config`: ``ps``, ``embed_p``, ``use_bn``, ``bn_final``,
    ``y_range`` when ``y_range=`` is not given, ...; its keys are checked, see
    :func:`~pipekit.tabular.model.check_config`). ``emb_szs``, ``layers`` and ``config`` set up that network only:
    given without ``use_nn=True`` they are refused (fastai ignores them there, a ``y_range`` in the config too).
    ``y_range`` (e.g. ``(0, 5.5)`` for 5-star ratings) squashes predictions; other keyword arguments
    (``metrics``, ``wd``, ...) go to ``Learner``, and one it does not take either is refused, naming the close ones.

    >>> import pipekit.datasets as D
    >>> from pipekit.tabular import CollabDataLoaders, collab_learner
    >>> dls = CollabDataLoaders.from_csv(D.path("movie_lens_sample") / "ratings.csv", bs=64, seed=0)
    >>> learn = collab_learner(dls, n_factors=20, y_range=(0.5, 5.5))
    >>> type(learn.model).__name__, learn.model.u_weight.weight.shape[1]
    ('EmbeddingDotBias', 20)
    """
    from pipekit.learn.learner import Learner, check_learner_kwargs

    check_learner_kwargs("collab_learner", kwargs, collab_learner)
    nn_only = {"emb_szs": emb_szs, "layers": layers, "config": config}
    given = [k for k, v in nn_only.items() if v is not None]
    if given and not use_nn:
        raise ParameterError(f"collab_learner: {', '.join(f'{k}=' for k in given)} set{'s' * (len(given) == 1)} up the "
                             "neural network model (EmbeddingNN), which use_nn=True builds; without it the model is "
                             f"EmbeddingDotBias, which takes only n_factors and y_range. Add use_nn=True, or leave "
                             f"{' and '.join(given)} out")
    if config is not None:  # EmbeddingNN takes TabularModel's options but a custom body
        check_config("collab_learner", config, body=False)
    y_range = config_y_range("collab_learner", y_range, config)  # fastai's tabular_config(y_range=...)
    recipe = dls.recipe if isinstance(dls, DataLoaders) else None
    if not isinstance(recipe, TabularRecipe) or len(recipe.processor.cat_names_) < 2:
        raise ParameterError("collab_learner: dls must come from CollabDataLoaders.from_df(...).")
    processor = recipe.processor
    # the model reads a user and an item and predicts a number: other inputs would be ignored, a class target fail
    cats, conts = processor.cat_names_, processor.cont_names_
    wrong = ([f"{len(cats)} categorical columns ({cats[:5]})"] if len(cats) != 2 else []) + \
        ([f"continuous columns {conts[:5]}"] if conts else []) + \
        ([f"a {processor.y_kind_} target"] if processor.y_kind_ != "regression" else [])
    if wrong:
        raise ParameterError(f"collab_learner: dls must hold a user column, an item column and a numeric rating (as "
                             f"CollabDataLoaders.from_df(ratings) makes them); these have {', '.join(wrong)}. For "
                             "other columns or a class target use tabular_learner(dls).")
    n_factors = check("collab_learner", n_factors=(n_factors, Interval(1, None, integer=True)),
                      y_range=(y_range, Y_RANGE))["n_factors"]  # a plain int, for the model's stored arguments
    user, item = processor.cat_names_[:2]
    classes = processor.classes_
    yr = None if y_range is None else [float(y_range[0]), float(y_range[1])]
    warn_y_range("collab_learner", dls, yr)
    names: dict[str, Any] = dict(classes={user: list(classes[user]), item: list(classes[item])}, user_name=user,
                                 item_name=item)
    if use_nn:
        model: Any = EmbeddingNN(get_emb_sz([user, item], classes, emb_szs), layers=list(layers or [n_factors]),
                                 y_range=yr, **model_options(config), **names)
    else:
        model = EmbeddingDotBias(n_factors, len(classes[user]), len(classes[item]), y_range=yr, **names)
    return Learner(dls, model, **kwargs)


def unseen_report(dls: Any, ratings: Any) -> dict[str, int]:
    """How many rows of ``ratings`` have a user or item never seen in training (they predict from biases).

    >>> import polars as pl
    >>> from pipekit.tabular import CollabDataLoaders, unseen_report
    >>> ratings = pl.DataFrame({"user": [1, 1, 2, 2, 3, 3], "item": [10, 20, 10, 30, 20, 30],
    ...                         "rating": [4.0, 3.0, 5.0, 2.0, 4.0, 1.0]})
    >>> dls = CollabDataLoaders.from_df(ratings, valid_pct=0, bs=2, seed=0)
    >>> new = pl.DataFrame({"user": [1, 4, 5], "item": [10, 10, 40], "rating": [3.0, 3.0, 3.0]})
    >>> unseen_report(dls, new)
    {'user': 2, 'item': 1}
    """
    processor = dls.recipe.processor
    counts = next(p for p in processor.procs if isinstance(p, Categorify)).unseen(read_new(processor, ratings))
    return {c: counts[c] for c in processor.cat_names_[:2]}


__all__ = ["CollabDataLoaders", "EmbeddingDotBias", "EmbeddingNN", "collab_learner", "unseen_report"]
