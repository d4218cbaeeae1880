"""The tabular net: an embedding per categorical column, continuous columns, then an MLP.

Example:
    >>> import torch
    >>> model = TabularModel([(10, 6), (3, 3)], n_cont=2, out_sz=2, layers=[16, 8])
    >>> model(torch.tensor([[1, 2], [0, 1]]), torch.randn(2, 2)).shape
    torch.Size([2, 2])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from pipekit.learn.registry import register_arch


def emb_sz_rule(n_cat: int) -> int:
    """Embedding width for a column with ``n_cat`` classes (including ``#na#``): min(600, round(1.6 n^0.56)).

    >>> emb_sz_rule(10), emb_sz_rule(3)
    (6, 3)
    """
    if n_cat < 1:
        raise ValueError(f"emb_sz_rule: n_cat must be >= 1, got {n_cat}.")
    return min(600, round(1.6 * n_cat**0.56))


def get_emb_sz(cat_names: Sequence[str], classes: Mapping[str, Sequence[Any]],
               sz_dict: Mapping[str, int] | None = None) -> list[tuple[int, int]]:
    """(vocab size, width) per categorical column; ``sz_dict`` overrides the width of named columns."""
    sz_dict = dict(sz_dict or {})
    unknown = set(sz_dict) - set(cat_names)
    if unknown:
        raise ValueError(f"emb_szs: {sorted(unknown)} are not categorical columns; they are {list(cat_names)}.")
    return [(len(classes[c]), int(sz_dict.get(c, emb_sz_rule(len(classes[c]))))) for c in cat_names]


def sigmoid_range(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Squash ``x`` into ``(low, high)``."""
    return torch.sigmoid(x) * (high - low) + low


@register_arch("TabularModel")
class TabularModel(nn.Module):
    """Embeddings for categorical columns + batch-normalised continuous columns, then Linear/ReLU/BN/Dropout blocks.

    Args:
        emb_szs: ``(n_classes, width)`` per categorical column.
        n_cont: number of continuous columns.
        out_sz: outputs (classes for classification, targets for regression).
        layers: hidden sizes.  ps: dropout per hidden layer (a float for all).  embed_p: dropout on embeddings.
        y_range: ``(low, high)`` squashes outputs with a scaled sigmoid (regression).
        use_bn: batch norm after each hidden layer.  bn_final: batch norm on the output.  bn_cont: on the inputs.
    """

    def __init__(self, emb_szs: Sequence[Sequence[int]], n_cont: int, out_sz: int,
                 layers: Sequence[int] = (200, 100), ps: float | Sequence[float] | None = None, embed_p: float = 0.0,
                 y_range: Sequence[float] | None = None, use_bn: bool = True, bn_final: bool = False,
                 bn_cont: bool = True) -> None:
        super().__init__()
        if out_sz < 1:
            raise ValueError(f"TabularModel: out_sz must be >= 1, got {out_sz}.")
        layers = list(layers)
        if ps is None:
            ps = [0.0] * len(layers)
        elif isinstance(ps, (int, float)):
            ps = [float(ps)] * len(layers)
        if len(ps) != len(layers):
            raise ValueError(f"TabularModel: ps has {len(ps)} values for {len(layers)} layers; give one per layer.")
        if y_range is not None and len(y_range) != 2:
            raise ValueError(f"TabularModel: y_range must be (low, high), got {y_range!r}.")
        self.y_range = None if y_range is None else (float(y_range[0]), float(y_range[1]))
        self.embeds = nn.ModuleList([nn.Embedding(int(ni), int(nf)) for ni, nf in emb_szs])
        self.emb_drop = nn.Dropout(embed_p)
        self.bn_cont = nn.BatchNorm1d(n_cont) if (bn_cont and n_cont) else None
        self.n_emb = sum(int(nf) for _, nf in emb_szs)
        self.n_cont = n_cont
        sizes = [self.n_emb + n_cont] + layers
        blocks: list[nn.Module] = []
        for n_in, n_out, p in zip(sizes[:-1], sizes[1:], ps):
            # Linear (no bias under BN) -> ReLU -> BN -> Dropout, the order that trains best on tables.
            blocks += [nn.Linear(n_in, n_out, bias=not use_bn), nn.ReLU(inplace=True)]
            if use_bn:
                blocks.append(nn.BatchNorm1d(n_out))
            if p:
                blocks.append(nn.Dropout(p))
        blocks.append(nn.Linear(sizes[-1], out_sz))
        if bn_final:
            blocks.append(nn.BatchNorm1d(out_sz))
        self.layers = nn.Sequential(*blocks)

    def forward(self, x_cat: torch.Tensor, x_cont: torch.Tensor) -> torch.Tensor:
        parts = []
        if self.embeds:
            x = torch.cat([e(x_cat[:, i]) for i, e in enumerate(self.embeds)], 1)
            parts.append(self.emb_drop(x))
        if self.n_cont:
            parts.append(self.bn_cont(x_cont) if self.bn_cont is not None else x_cont)
        out = self.layers(torch.cat(parts, 1) if len(parts) > 1 else parts[0])
        return out if self.y_range is None else sigmoid_range(out, *self.y_range)


def tabular_learner(dls: Any, layers: Sequence[int] | None = None, emb_szs: Mapping[str, int] | None = None,
                    config: Mapping[str, Any] | None = None, n_out: int | None = None,
                    y_range: Sequence[float] | None = None, **kwargs: Any) -> Any:
    """A ``Learner`` with a ``TabularModel`` sized from the data: embeddings from the vocabularies.

    ``emb_szs`` overrides widths per column; ``config`` passes ``ps``, ``embed_p``, ``use_bn``, ...;
    other keyword arguments (``metrics``, ``loss_func``, ``wd``, ...) go to ``Learner``.

    Example:
        >>> from pipekit.learn.metrics import accuracy
        >>> learn = tabular_learner(tab.dataloaders(bs=256), layers=[200, 100], metrics=accuracy)  # doctest: +SKIP
        >>> learn.fit_one_cycle(3, 1e-2)                                                           # doctest: +SKIP
    """
    from pipekit.learn.learner import Learner

    recipe = getattr(dls, "recipe", None)
    processor = getattr(recipe, "processor", None)
    if processor is None:
        raise TypeError("tabular_learner: dls must come from Tabular.dataloaders(...) (their recipe carries the "
                        f"vocabularies), got recipe={type(recipe).__name__}.")
    if n_out is None:
        n_out = dls.c
    if not n_out:
        raise ValueError("tabular_learner: could not tell the number of outputs from the data; pass n_out=.")
    cfg = dict(config or {})
    model = TabularModel(get_emb_sz(processor.cat_names_, processor.classes_, emb_szs),
                         len(processor.cont_names_), int(n_out), layers=list(layers or [200, 100]),
                         y_range=None if y_range is None else list(y_range), **cfg)
    return Learner(dls, model, **kwargs)
