"""What every notebook of the book starts with, in one import, as fastai's star imports give it: the data and training
layers of pipekit, with the names the book's code uses unqualified (``torch``, ``nn``, ``F``, ``np``, ``pd``, ``plt``,
``partial``, ``attrgetter``, ``itemgetter``, ``Path``, ``Image``, ``math``, ``random``, ``Tensor``,
``ProcessPoolExecutor``, ``to_device``). As fastai's star imports do, they give pathlib's ``Path`` the book's ``ls()``
(:meth:`pipekit.data.DataPath.ls`), so ``Path('bears').ls()`` lists a folder of one's own as it lists the data sets'
folders, and a tensor chapter 8's ``pca(k)`` (``movie_w.pca(3)``: the rows projected on their first ``k``
principal axes).

``from pipekit.vision.all import *``, ``from pipekit.text.all import *`` and ``from pipekit.tabular.all import *``
add each application's names to these, as the book's ``from fastai.vision.all import *`` does; in a module of one's
own, import names explicitly.

>>> from pipekit.basics import *
>>> L(range(3)).map(partial(pow, 2)), F.relu(tensor([-1.0, 2.0])).tolist(), Path is type(Path()).__mro__[1]
([1, 2, 4], [0.0, 2.0], True)
>>> xb, yb = to_device((tensor([1.0]), tensor([0])), "cpu"); isinstance(xb, Tensor)
True
>>> import tempfile; folder = Path(tempfile.mkdtemp()); (folder / "b.txt").touch(); (folder / "a.txt").touch()
>>> folder.ls().attrgot("name")
['a.txt', 'b.txt']
>>> torch.tensor([[1.0, 0.0], [3.0, 0.0], [5.0, 0.0]]).pca(1).abs().flatten().tolist()
[2.0, 0.0, 2.0]
"""
import math
import os
import random
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from operator import attrgetter, itemgetter
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from pipekit.data import *  # noqa: F403
from pipekit.data import __all__ as _data_names
from pipekit.data.getters import DataPath
from pipekit.data.loader import to_device
from pipekit.learn import *  # noqa: F403
from pipekit.learn import __all__ as _learn_names

def _pca(x: Tensor, k: int = 2) -> Tensor:
    """The rows of ``x`` (centred) projected on their first ``k`` principal axes (chapter 8's ``movie_w.pca(3)``)."""
    x = x - x.mean(0)
    _, _, vh = torch.linalg.svd(x, full_matrices=False)
    return x @ vh[:k].T


if not hasattr(Tensor, "pca"):  # as fastai's star imports give it
    Tensor.pca = _pca  # type: ignore[attr-defined]
if not hasattr(Path, "ls"):  # the book's path.ls() on any path, as fastai's star imports give it
    Path.ls = DataPath.ls  # type: ignore[attr-defined]


def _to_thumb(self: Image.Image, h: int, w: int | None = None) -> Image.Image:
    """A copy of this PIL image shrunk (never enlarged) to fit in ``h`` x ``w`` (``w`` defaults to ``h``), its aspect
    kept: the course's ``Image.open('bird.jpg').to_thumb(256, 256)``."""
    im = self.copy()
    im.thumbnail((w or h, h))
    return im


if not hasattr(Image.Image, "to_thumb"):  # as fastai's star imports give it to every PIL image
    Image.Image.to_thumb = _to_thumb  # type: ignore[attr-defined]

__all__ = ["math", "os", "random", "partial", "attrgetter", "itemgetter", "Path", "plt", "np", "pd", "torch", "F", "Image", "nn", "Tensor",
           "ProcessPoolExecutor", "to_device", *_data_names, *_learn_names]
