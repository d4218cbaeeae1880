"""``from pipekit.tabular.all import *``: the book's ``from fastai.tabular.all import *`` and
``from fastai.collab import *`` (:mod:`pipekit.basics` and every name of :mod:`pipekit.tabular`, collaborative filtering
included, with its table ``Normalize``). Chapter 9's model inspection (``cluster_columns``, ``plot_partial_dependence``,
``contributions``, ...) works on any model and has an import of its own: ``from pipekit.inspection import *``.

>>> from pipekit.tabular.all import *
>>> tabular_learner.__module__, collab_learner.__module__, Normalize.__module__
('pipekit.tabular.model', 'pipekit.tabular.collab', 'pipekit.tabular.procs')
"""
# no __all__: the names a star import gives are the module's public ones, all star-imported here, which type
# checkers read too
from pipekit.basics import *  # noqa: F403
from pipekit.tabular import *  # noqa: F403
