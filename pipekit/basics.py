"""What every notebook of the book starts with, in one import, as fastai's star imports give it: the data and training
layers of pipekit, with the names the book's code uses unqualified (``torch``, ``nn``, ``F``, ``np``, ``pd``, ``plt``,
``partial``, ``Path``, ``Image``, ``math``, ``random``, ``Tensor``, ``ProcessPoolExecutor``, ``to_device``).
As fastai's star imports do, they give pathlib's ``Path`` the book's ``ls()`` (:meth:`pipekit.data.DataPath.ls`), so
``Path('bears').ls()`` lists a folder of one's own as it lists the data sets' folders.

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
"""
import math
import os
import random
from concurrent.futures import ProcessPoolExecutor
from functools import partial
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

if not hasattr(Path, "ls"):  # the book's path.ls() on any path, as fastai's star imports give it
    Path.ls = DataPath.ls  # type: ignore[attr-defined]

__all__ = ["math", "os", "random", "partial", "Path", "plt", "np", "pd", "torch", "F", "Image", "nn", "Tensor",
           "ProcessPoolExecutor", "to_device", *_data_names, *_learn_names]
