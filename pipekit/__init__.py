"""pipekit: the fastai book's workflows on a fast columnar data pipeline.

>>> import pipekit
>>> pipekit.set_seed(0)
"""
from pipekit.data.seed import set_seed

__version__ = "0.1.0"


def __getattr__(name: str):
    # heavy sub-packages load on first use, so `import pipekit` stays quick
    if name in ("load_learner", "Learner"):
        import pipekit.learn

        return getattr(pipekit.learn, name)
    if name in ("load", "save"):
        import pipekit.core.archive

        return getattr(pipekit.core.archive, name)
    if name in ("register", "registered"):
        import pipekit.core.registry

        return getattr(pipekit.core.registry, name)
    if name == "load_model":
        from pipekit.backends import load_model

        return load_model
    if name in ("data", "datasets", "vision", "text", "tabular", "learn", "backends", "ensemble", "inspection",
                "sklearn"):
        import importlib

        return importlib.import_module(f"pipekit.{name}")
    raise AttributeError(f"module 'pipekit' has no attribute {name!r}")


__all__ = ["set_seed", "load", "save", "register", "registered", "load_learner", "load_model", "Learner",
           "__version__"]
