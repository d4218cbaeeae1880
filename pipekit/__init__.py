"""pipekit: the fastai book's workflows on a fast columnar data pipeline.

>>> import pipekit
>>> pipekit.set_seed(0)
"""
import os
from typing import TYPE_CHECKING

__version__ = "0.1.0"

from pipekit.dependencies import CHECKED_ON_IMPORT, DEPENDENCY_FLOORS, check_dependencies  # noqa: F401

check_dependencies()

from pipekit.data.seed import set_seed  # noqa: E402  (after the check: it imports polars)
from pipekit.core.forks import install as _install_fork_hooks  # noqa: E402

# a process forked after Polars' threads started (multiprocessing's 'fork', gunicorn --preload) would hang in its
# first Polars work: the hooks let pipekit's entry points say so instead (pipekit.core.forks)
_install_fork_hooks()

if TYPE_CHECKING:  # the names below that __getattr__ imports on first use, as type checkers see them
    from pipekit.backends import load_model
    from pipekit.core.archive import load, save
    from pipekit.core.errors import PipekitWarning
    from pipekit.core.registry import register, registered
    from pipekit.learn import Learner, load_learner


#: the module each name of the top level comes from
_FROM = {"load_learner": "pipekit.learn", "Learner": "pipekit.learn", "load_model": "pipekit.backends",
         "load": "pipekit.core.archive", "save": "pipekit.core.archive",
         "register": "pipekit.core.registry", "registered": "pipekit.core.registry",
         "PipekitWarning": "pipekit.core.errors"}


def clear_cache(kind: str | None = None, cache_dir: "str | os.PathLike[str] | None" = None) -> dict[str, int]:
    """Delete pipekit's on-disk caches of ``kind``: "images" (presized images), "tokens" (token ids) or None (both),
    under ``cache_dir`` (default ``$PIPEKIT_CACHE``, ``~/.cache/pipekit``); downloaded data sets are kept. Returns
    the bytes freed per kind (a file that could not be removed, in a read-only folder, is not counted). A cache is
    rebuilt from the source data when next needed. ``pipekit cache info`` shows the sizes, ``pipekit cache clear``
    does this from the command line.

    >>> import tempfile
    >>> clear_cache("tokens", cache_dir=tempfile.mkdtemp())
    {'tokens': 0}
    """
    from pipekit.core.validate import Options, check
    from pipekit.data.cache import CACHE_KINDS, cache_folder, remove_cache_folder

    check("clear_cache", kind=(kind, Options(None, *CACHE_KINDS)))
    freed = {}
    for name in CACHE_KINDS if kind is None else [kind]:  # each folder listed once, each file measured as removed
        freed[name] = remove_cache_folder(cache_folder(cache_dir, CACHE_KINDS[name]))
    return freed


def __getattr__(name: str):
    # heavy sub-packages load on first use, so `import pipekit` stays quick
    import importlib

    if name in _FROM:
        return getattr(importlib.import_module(_FROM[name]), name)
    if name in ("data", "datasets", "vision", "text", "tabular", "learn", "backends", "ensemble", "inspection",
                "sklearn"):
        return importlib.import_module(f"pipekit.{name}")
    raise AttributeError(f"module 'pipekit' has no attribute {name!r}")


__all__ = ["set_seed", "check_dependencies", "clear_cache", "load", "save", "register", "registered", "load_learner", "load_model", "Learner",
           "PipekitWarning", "__version__"]
