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
# no __all__: the names a star import gives are the module's public ones, which type checkers read too; the
# names below are re-exported by their 'as'
from pipekit.tabular.collab import CollabDataLoaders as CollabDataLoaders
from pipekit.tabular.collab import EmbeddingDotBias as EmbeddingDotBias
from pipekit.tabular.collab import EmbeddingNN as EmbeddingNN
from pipekit.tabular.collab import collab_learner as collab_learner
from pipekit.tabular.collab import unseen_report as unseen_report
