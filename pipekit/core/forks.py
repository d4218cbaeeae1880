"""Forked worker processes and Polars' thread pool.

Polars runs its parallel work on a pool of native threads (named ``polars-0``, ``polars-1``, ...), started by the
first parallel operation. A ``fork`` copies only the thread that forks: a child forked from a process whose pool
was running inherits Polars' record of a pool whose threads do not exist there, and its first parallel operation
waits for them forever. Linux's default ``multiprocessing`` start method is ``fork`` (``multiprocessing.Pool()``,
``concurrent.futures.ProcessPoolExecutor()``), and gunicorn ``--preload`` forks its workers from a process that
loaded the app, so a model loaded (and used) before the fork hangs in the workers.

``import pipekit`` registers :func:`install`'s hooks: before each ``os.fork`` the parent notes whether Polars' pool
threads are running, and the child remembers it. :func:`check_fork_safe`, called where a worker's work enters
pipekit (``load_learner``, ``pipekit.load``, ``Learner.predict``/``get_preds``/``fit``/``validate``, the backends',
ensembles' and scikit-learn estimators' ``predict``/``fit``/``process``, ``fit_ensemble``, a table's new rows),
then raises :class:`~pipekit.core.errors.ForkedProcessError`, saying what to do, instead of
hanging. A Learner's calls check only where they would do Polars work: a learner over loaders pipekit did not build
(the user's torch DataLoaders) fits and predicts in such a child. A child forked from a process that did no parallel Polars work (one that only imported pipekit) is not
affected: Polars starts its pool there when first needed.

>>> check_fork_safe("predict")          # this process was not forked from one with Polars' pool running
"""
from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable
from typing import Any, TypeVar

from pipekit.core.errors import ForkedProcessError

__all__ = ["check_fork_safe", "fork_checked", "forked_with_polars_pool", "install", "polars_pool_running"]

_F = TypeVar("_F", bound=Callable[..., Any])

#: the names Linux gives the threads of Polars' pool (``/proc/self/task/*/comm``): ``polars-0``, ``polars-1``, ...
#: Polars' other threads (``polars-ooc-clea...``, started on import) are not the pool
_POOL_THREAD = re.compile(r"polars-\d+")

_state = {"installed": False, "pool_at_fork": False, "forked_with_pool": False}


def polars_pool_running() -> bool:
    """Whether Polars' thread pool has threads in this process: True once a parallel Polars operation ran here
    (read from the thread names in ``/proc/self/task``; False where that folder is missing, as outside Linux, where
    ``fork`` is not the default start method).

    >>> import polars as pl
    >>> _ = pl.DataFrame({"a": [2, 1]}).sort("a")
    >>> polars_pool_running() or not os.path.isdir("/proc/self/task")
    True
    """
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return False
    for task in tasks:
        try:
            with open(f"/proc/self/task/{task}/comm", encoding="utf-8", errors="replace") as f:
                name = f.read().strip()
        except OSError:  # the thread ended meanwhile
            continue
        if _POOL_THREAD.fullmatch(name):
            return True
    return False


def forked_with_polars_pool() -> bool:
    """Whether this process was forked from one whose Polars thread pool was running (or from such a child), so
    that Polars work here would hang.

    >>> forked_with_polars_pool()
    False
    """
    return _state["forked_with_pool"]


def _before_fork() -> None:
    # a child of such a child inherits the same broken pool, though no pool thread shows in it
    _state["pool_at_fork"] = _state["forked_with_pool"] or polars_pool_running()


def _after_fork_in_child() -> None:
    _state["forked_with_pool"] = _state["pool_at_fork"]


def install() -> None:
    """Register the fork hooks (once per process; ``import pipekit`` does it). Where ``os.register_at_fork`` is
    missing (Windows, which does not fork) there is nothing to watch.

    >>> install()  # registered already, by import pipekit: not twice
    """
    if _state["installed"] or not hasattr(os, "register_at_fork"):
        return
    os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)
    _state["installed"] = True


def check_fork_safe(what: str) -> None:
    """Raise :class:`~pipekit.core.errors.ForkedProcessError` when this process was forked from one whose Polars
    thread pool was running: ``what`` (the call, e.g. ``"Learner.predict"``) would wait forever inside Polars.
    The message says how to start workers that work.

    >>> check_fork_safe("Learner.predict")  # not such a process: nothing to say
    """
    if not _state["forked_with_pool"]:
        return
    raise ForkedProcessError(
        f"{what}: this process (pid {os.getpid()}) was forked from one whose Polars threads were running (it had "
        "loaded or used a pipekit model, or done other Polars work, before forking); Polars' threads do not survive "
        "a fork, so Polars work here would hang. Start the workers with 'spawn': "
        "multiprocessing.get_context(\"spawn\").Pool(...), or "
        "concurrent.futures.ProcessPoolExecutor(mp_context=multiprocessing.get_context(\"spawn\")) "
        "(pipekit.basics.ProcessPoolExecutor uses 'spawn' already); run gunicorn without --preload; or load the "
        "model inside each worker, after the fork, in a parent that has not loaded or used one")


def fork_checked(what: str, when: Callable[..., bool] | None = None) -> Callable[[_F], _F]:
    """A decorator: the function, calling :func:`check_fork_safe` (``what`` names the call) first; with ``when``, only
    for a call whose arguments ``when`` (given the same arguments) says would do Polars work.

    >>> @fork_checked("double")
    ... def double(x): return 2 * x
    >>> double(3), double.__name__
    (6, 'double')
    >>> @fork_checked("scale", when=lambda x, table=None: table is not None)   # checked only when a table is given
    ... def scale(x, table=None): return 2 * x
    >>> scale(3)
    6
    """
    def wrap(f: _F) -> _F:
        @functools.wraps(f)
        def checked(*args: Any, **kwargs: Any) -> Any:
            if when is None or when(*args, **kwargs):
                check_fork_safe(what)
            return f(*args, **kwargs)

        return checked  # type: ignore[return-value]

    return wrap
