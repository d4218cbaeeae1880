"""pipekit: the fastai book's workflows on a fast columnar data pipeline.

>>> import pipekit
>>> pipekit.set_seed(0)
"""
from pipekit.data.seed import set_seed

__version__ = "0.1.0"


#: the module each name of the top level comes from
_FROM = {"load_learner": "pipekit.learn", "Learner": "pipekit.learn", "load_model": "pipekit.backends",
         "load": "pipekit.core.archive", "save": "pipekit.core.archive",
         "register": "pipekit.core.registry", "registered": "pipekit.core.registry"}


def __getattr__(name: str):
    # heavy sub-packages load on first use, so `import pipekit` stays quick
    import importlib

    if name in _FROM:
        return getattr(importlib.import_module(_FROM[name]), name)
    if name in ("data", "datasets", "vision", "text", "tabular", "learn", "backends", "ensemble", "inspection",
                "sklearn"):
        return importlib.import_module(f"pipekit.{name}")
    raise AttributeError(f"module 'pipekit' has no attribute {name!r}")


__all__ = ["set_seed", "load", "save", "register", "registered", "load_learner", "load_model", "Learner",
           "__version__"]
