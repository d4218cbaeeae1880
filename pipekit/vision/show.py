"""Pictures of batches and of predictions (PNG files when there is no display).

>>> show_batch(dls, max_n=9)              # doctest: +SKIP
>>> show_results(learn, max_n=6)          # doctest: +SKIP
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from pipekit.data.plotting import get_pyplot, savefig_or_show


def show_batch(dls: Any, max_n: int = 9, nrows: int | None = None, path: str | os.PathLike | None = None) -> Any:
    """Decoded training items with their labels (or masks/points drawn over them)."""
    return dls.show_batch(max_n=max_n, nrows=nrows, path=None if path is None else str(path))


def show_results(learn: Any, max_n: int = 6, nrows: int | None = None, ds_idx: int = 1,
                 path: str | os.PathLike | None = None) -> Any:
    """Validation images with target and prediction: titles for labels, side-by-side masks for segmentation.

    Returns the PNG path when headless (or the figure path given), else None after showing.
    """
    if max_n < 1:
        raise ValueError(f"max_n={max_n} must be >= 1")
    dl = learn.dls.valid if ds_idx == 1 else learn.dls.train.new(shuffle=False, augment=False)
    batch = next(iter(dl))
    n_inp = dl.n_inp
    xb = batch[:n_inp]
    learn.model.eval()
    with torch.no_grad():
        pred = learn.model(*[x.to(learn.device) for x in xb]).cpu()
    decodes = getattr(learn.loss_func, "decodes", None)
    dec_pred = decodes(pred) if decodes is not None else pred
    rows = dl.decode_batch(tuple(batch), max_n=max_n)
    blocks = dl.blocks
    y_block = blocks[n_inp] if len(blocks) > n_inp else None
    seg = getattr(y_block, "kind", None) == "mask"
    n = len(rows)
    plt = get_pyplot()
    if seg:
        fig, axs = plt.subplots(n, 2, figsize=(6, 3 * n), squeeze=False)
        for i, row in enumerate(rows):
            for j, (mask, title) in enumerate(((row[n_inp], "target"), (dec_pred[i], "prediction"))):
                blocks[0].show(axs[i, j], row[0], title=title if i == 0 else None)
                y_block.show(axs[i, j], mask)
    else:
        nrows = nrows or int(np.ceil(np.sqrt(n)))
        ncols = int(np.ceil(n / nrows))
        fig, axs = plt.subplots(nrows, ncols, figsize=(3 * ncols, 3.3 * nrows), squeeze=False)
        for ax in axs.flat[n:]:
            ax.axis("off")
        for i, (ax, row) in enumerate(zip(axs.flat, rows)):
            target = row[n_inp] if len(row) > n_inp else None
            guess = y_block.decode(dec_pred[i]) if y_block is not None else dec_pred[i]
            ok = target is not None and str(guess) == str(target)
            blocks[0].show(ax, row[0])
            ax.set_title(f"{target} / {guess}", color="green" if ok else "red")
            if getattr(y_block, "kind", None) == "points":
                y_block.show(ax, pred[i])
    return savefig_or_show(fig, path, name="show_results")
