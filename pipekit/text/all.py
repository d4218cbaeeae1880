"""``from pipekit.text.all import *``: the book's ``from fastai.text.all import *`` (:mod:`pipekit.basics` and every
name of :mod:`pipekit.text`).

>>> from pipekit.text.all import *
>>> text_classifier_learner.__module__, Tokenizer.__module__
('pipekit.text.learner', 'pipekit.text.tokenize')
"""
# no __all__: the names a star import gives are the module's public ones, all star-imported here, which type
# checkers read too
from pipekit.basics import *  # noqa: F403
from pipekit.text import *  # noqa: F403
