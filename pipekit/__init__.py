"""pipekit: the fastai book's workflows on a fast columnar data pipeline.

>>> import pipekit
>>> pipekit.set_seed(0)
"""
import os
import re
from typing import TYPE_CHECKING

__version__ = "0.1.0"

#: the oldest release of a dependency that pipekit works with, where older ones are widely installed and would fail
#: far from the cause (polars 1.x has no ``Categories.to_series``; LightGBM before 4.6 refuses the categorical columns
#: of the dataset a GBM builds, telling the user to set ``free_raw_data=False``); pyproject.toml's requirements say
#: the same
DEPENDENCY_FLOORS = {"polars": (2, 0), "lightgbm": (4, 6)}
#: those checked on ``import pipekit`` (imported next anyway); the others where pipekit first uses them
#: (LightGBM: a GBM's fit), as importing them costs seconds
CHECKED_ON_IMPORT = ("polars",)


def _module_version(name: str) -> str:
    import importlib

    return str(importlib.import_module(name).__version__)


def check_dependencies(version=None, names=CHECKED_ON_IMPORT) -> None:
    """Raise an ImportError naming the package and the fix when an installed dependency of ``names`` is older than
    pipekit needs (:data:`DEPENDENCY_FLOORS`; ``version``: a function from a module name to its version; by default
    the module's own ``__version__``, so every distribution of it counts: ``polars``, ``polars-lts-cpu``, ...). Runs
    on ``import pipekit`` for :data:`CHECKED_ON_IMPORT`, and where pipekit first uses each other one.

    >>> check_dependencies(lambda name: "2.1.0")
    >>> check_dependencies(lambda name: "1.35.2")
    Traceback (most recent call last):
    ...
    ImportError: pipekit needs polars>=2.0 and this environment has polars 1.35.2: pip install -U "polars>=2.0"
    >>> check_dependencies(lambda name: "4.5.0", names=["lightgbm"])
    Traceback (most recent call last):
    ...
    ImportError: pipekit needs lightgbm>=4.6 and this environment has lightgbm 4.5.0: pip install -U "lightgbm>=4.6"
    """
    version = version or _module_version
    for name in names:
        floor = DEPENDENCY_FLOORS[name]
        try:
            have = version(name)
        except ImportError:  # not installed, or broken: importing it says so
            continue
        numbers = tuple(int(n) for n in re.findall(r"\d+", have)[:len(floor)])
        if numbers < floor:
            want = ".".join(map(str, floor))
            raise ImportError(f"pipekit needs {name}>={want} and this environment has {name} {have}: "
                              f'pip install -U "{name}>={want}"')


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
