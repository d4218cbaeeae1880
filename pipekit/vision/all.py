"""``from pipekit.vision.all import *``: the book's ``from fastai.vision.all import *`` (:mod:`pipekit.basics` and
every name of :mod:`pipekit.vision`; its image ``Normalize``).

>>> from pipekit.vision.all import *
>>> vision_learner.__module__, Normalize.__module__
('pipekit.vision.learner', 'pipekit.vision.transforms')
"""
from pipekit.basics import *  # noqa: F403
from pipekit.basics import __all__ as _basic_names
from pipekit.vision import *  # noqa: F403
from pipekit.vision import __all__ as _vision_names

__all__ = [*_basic_names, *_vision_names]
