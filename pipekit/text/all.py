"""``from pipekit.text.all import *``: the book's ``from fastai.text.all import *`` (:mod:`pipekit.basics` and every
name of :mod:`pipekit.text`).

>>> from pipekit.text.all import *
>>> text_classifier_learner.__module__, Tokenizer.__module__
('pipekit.text.learner', 'pipekit.text.tokenize')
"""
from pipekit.basics import *  # noqa: F403
from pipekit.basics import __all__ as _basic_names
from pipekit.text import *  # noqa: F403
from pipekit.text import __all__ as _text_names

__all__ = [*_basic_names, *_text_names]
