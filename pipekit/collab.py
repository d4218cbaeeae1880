"""``from pipekit.collab import *``: the book's ``from fastai.collab import *`` (chapter 8). It gives the collaborative
filtering names, ``CollabDataLoaders``, ``collab_learner``, ``EmbeddingDotBias``, ``EmbeddingNN`` and
``unseen_report`` (how many users and items of new ratings the model never saw), with :mod:`pipekit.basics`
(``untar_data``, ``URLs``, ``pd``, ``torch``, ``Learner``, ...), so chapter 8's code runs after this import alone.
They are also in ``from pipekit.tabular.all import *``, which the book adds next; in a module of one's own, import
them from :mod:`pipekit.tabular`.

>>> from pipekit.collab import *
>>> collab_learner.__module__, CollabDataLoaders.__module__, EmbeddingDotBias.__name__, EmbeddingNN.__name__
('pipekit.tabular.collab', 'pipekit.tabular.collab', 'EmbeddingDotBias', 'EmbeddingNN')
"""
from pipekit.basics import *  # noqa: F403
from pipekit.basics import __all__ as _basic_names
from pipekit.tabular.collab import CollabDataLoaders, EmbeddingDotBias, EmbeddingNN, collab_learner, unseen_report

__all__ = [*_basic_names, "CollabDataLoaders", "EmbeddingDotBias", "EmbeddingNN", "collab_learner", "unseen_report"]
