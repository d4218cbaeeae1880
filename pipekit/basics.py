"""What every notebook of the book starts with, in one import, as fastai's star imports give it: the data and training
layers of pipekit, with the names the book's code uses unqualified (``torch``, ``nn``, ``F``, ``np``, ``pd``, ``plt``,
``partial``, ``Path``, ``Image``, ``math``, ``random``, ``Tensor``, ``ProcessPoolExecutor``, ``to_device``).

``from pipekit.vision.all import *``, ``from pipekit.text.all import *`` and ``from pipekit.tabular.all import *``
add each application's names to these, as the book's ``from fastai.vision.all import *`` does; in a module of one's
own, import names explicitly.

>>> from pipekit.basics import *
>>> L(range(3)).map(partial(pow, 2)), F.relu(tensor([-1.0, 2.0])).tolist(), Path is type(Path()).__mro__[1]
([1, 2, 4], [0.0, 2.0], True)
>>> xb, yb = to_device((tensor([1.0]), tensor([0])), "cpu"); isinstance(xb, Tensor)
True
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
from pipekit.data.loader import to_device
from pipekit.learn import *  # noqa: F403
from pipekit.learn import __all__ as _learn_names

__all__ = ["math", "os", "random", "partial", "Path", "plt", "np", "pd", "torch", "F", "Image", "nn", "Tensor",
           "ProcessPoolExecutor", "to_device", *_data_names, *_learn_names]
