"""``from pipekit.tabular.all import *``: the book's ``from fastai.tabular.all import *`` and
``from fastai.collab import *`` (:mod:`pipekit.basics` and every name of :mod:`pipekit.tabular`, collaborative filtering
included, with its table ``Normalize``). Chapter 9's model inspection (``cluster_columns``, ``plot_partial_dependence``,
``contributions``, ...) works on any model and has an import of its own: ``from pipekit.inspection import *``.

>>> from pipekit.tabular.all import *
>>> tabular_learner.__module__, collab_learner.__module__, Normalize.__module__
('pipekit.tabular.model', 'pipekit.tabular.collab', 'pipekit.tabular.procs')
"""
from pipekit.basics import *  # noqa: F403
from pipekit.basics import __all__ as _basic_names
from pipekit.tabular import *  # noqa: F403
from pipekit.tabular import __all__ as _tabular_names

__all__ = [*_basic_names, *_tabular_names]
