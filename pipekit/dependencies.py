"""The releases of pipekit's dependencies it works with: their floors, checked on ``import pipekit`` (polars) or
where pipekit first uses one (LightGBM, at a GBM's fit). Imports nothing of pipekit."""
import re

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
