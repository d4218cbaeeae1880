"""Pictures of batches and of predictions: ``dls.show_batch()`` and ``learn.show_results()``.

Both draw through one function (:func:`pipekit.data.show_items`); these are the book's spellings.

>>> show_batch(dls, max_n=9)              # doctest: +SKIP
>>> show_results(learn, max_n=6)          # doctest: +SKIP
"""
from __future__ import annotations

import os
from typing import Any


def show_batch(dls: Any, max_n: int = 9, path: str | os.PathLike | None = None, **kwargs: Any) -> Any:
    """Decoded training items with their labels (or masks/points drawn over them); ``nrows``, ``ncols``,
    ``figsize``, ``unique`` as ``DataLoader.show_batch``.

    >>> import tempfile
    >>> from pathlib import Path
    >>> import pipekit.datasets as D
    >>> from pipekit.vision import ImageDataLoaders
    >>> from pipekit.vision import show_batch
    >>> dls = ImageDataLoaders.from_folder(D.path("mnist_tiny"), img_cls="L", bs=16, seed=0)
    >>> png = show_batch(dls, max_n=4, path=Path(tempfile.mkdtemp()) / "batch.png")  # headless: a PNG
    >>> png.name, png.exists()
    ('batch.png', True)
    """
    return dls.show_batch(max_n=max_n, path=path, **kwargs)


def show_results(learn: Any, max_n: int = 6, ds_idx: int = 1, path: str | os.PathLike | None = None,
                 **kwargs: Any) -> Any:
    """Validation items with target and prediction (masks side by side, labels as "actual / predicted");
    ``nrows``, ``ncols``, ``figsize`` as ``show_batch``.

    >>> import tempfile
    >>> from pathlib import Path
    >>> import pipekit.datasets as D
    >>> from torch import nn
    >>> from pipekit.learn import Learner
    >>> from pipekit.vision import ImageDataLoaders
    >>> from pipekit.vision import show_results
    >>> dls = ImageDataLoaders.from_folder(D.path("mnist_tiny"), img_cls="L", bs=16, seed=0)
    >>> learn = Learner(dls, nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 2)))
    >>> png = show_results(learn, max_n=4, path=Path(tempfile.mkdtemp()) / "results.png")  # headless: a PNG
    >>> png.name, png.exists()
    ('results.png', True)
    """
    return learn.show_results(ds_idx=ds_idx, max_n=max_n, path=path, **kwargs)
