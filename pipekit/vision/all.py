"""``from pipekit.vision.all import *``: the book's ``from fastai.vision.all import *`` (:mod:`pipekit.basics` and
every name of :mod:`pipekit.vision`; its image ``Normalize``).

>>> from pipekit.vision.all import *
>>> vision_learner.__module__, Normalize.__module__
('pipekit.vision.learner', 'pipekit.vision.transforms')
"""
# no __all__: the names a star import gives are the module's public ones, all star-imported here, which type
# checkers read too
from pipekit.basics import *  # noqa: F403
from pipekit.vision import *  # noqa: F403
