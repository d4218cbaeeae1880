"""Stage timers the data pipeline reports to while :mod:`pipekit.bench` profiles it, and to nothing otherwise.

The loader, the batch pipeline and the image cache wrap each piece of their work in ``stage(name)``.
With no :class:`StageTimes` recording (the normal case) ``stage`` returns one shared do-nothing context:
about 0.2 us per stage, a few stages per batch of tens of milliseconds. While ``recording(times)`` is
active, every stage adds its wall time to ``times`` under its name and the kind of thread it ran in
(``main``, ``prefetch``, ``build``, ...), so the profile can say where an epoch's time goes without a
second, instrumented copy of the pipeline. Stages may nest (a loader's ``collate`` calls each store's
gather): a stage is charged its own time only, what its inner stages took is theirs, so the stages of
one thread never count a second twice and add up to the time that thread spent in them.

>>> times = StageTimes()
>>> with recording(times):
...     with stage("gather"):
...         pass
>>> times.calls("gather")
1
"""
from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

_active: StageTimes | None = None


def thread_kind() -> str:
    """What kind of thread this is, from the name pipekit gives its pools (``pipekit-prefetch_0`` ->
    ``prefetch``); ``main`` for the thread that iterates, ``other`` for threads pipekit did not start."""
    t = threading.current_thread()
    if t is threading.main_thread():
        return "main"
    name = t.name
    return name[len("pipekit-"):].split("_")[0] if name.startswith("pipekit-") else "other"


class StageTimes:
    """Wall seconds and calls per (stage, thread kind), added to from any thread.

    ``sync`` is called at the end of every stage: on an accelerator, ``torch.cuda.synchronize`` makes a
    stage's time that of its work rather than of its launch.
    """

    def __init__(self, sync: Callable[[], Any] | None = None):
        self._lock = threading.Lock()
        self._totals: dict[tuple[str, str], list[float]] = {}
        self._threads: dict[str, set[int]] = {}
        self._local, self.sync = threading.local(), sync

    def add(self, name: str, seconds: float, where: str | None = None) -> None:
        key = (name, where or thread_kind())
        with self._lock:
            self._threads.setdefault(key[1], set()).add(threading.get_ident())
            entry = self._totals.setdefault(key, [0.0, 0.0])
            entry[0] += seconds
            entry[1] += 1

    @contextlib.contextmanager
    def timer(self, name: str) -> Iterator[None]:
        stack = self._local.__dict__.setdefault("stack", [])
        stack.append(0.0)  # seconds spent in stages nested inside this one
        t0 = time.perf_counter()
        try:
            yield
        finally:
            if self.sync is not None:
                self.sync()
            elapsed = time.perf_counter() - t0
            inner = stack.pop()
            if stack:
                stack[-1] += elapsed
            self.add(name, elapsed - inner)

    def snapshot(self) -> dict[tuple[str, str], tuple[float, int]]:
        """(stage, thread kind) -> (seconds, calls), as they stand now."""
        with self._lock:
            return {k: (v[0], int(v[1])) for k, v in self._totals.items()}

    def thread_counts(self) -> dict[str, int]:
        """How many distinct threads of each kind reported a stage."""
        with self._lock:
            return {k: len(v) for k, v in self._threads.items()}

    def seconds(self, name: str) -> float:
        return sum(s for (n, _), (s, _c) in self.snapshot().items() if n == name)

    def calls(self, name: str) -> int:
        return sum(c for (n, _), (_s, c) in self.snapshot().items() if n == name)

    def clear(self) -> None:
        with self._lock:
            self._totals.clear()
            self._threads.clear()


_NOTHING = contextlib.nullcontext()


def stage(name: str) -> Any:
    """A context timing ``name`` into the active :class:`StageTimes`, or a shared no-op when none is."""
    times = _active
    return _NOTHING if times is None else times.timer(name)


@contextlib.contextmanager
def recording(times: StageTimes | None) -> Iterator[StageTimes | None]:
    """Make ``times`` the active recorder inside the block (None: record nothing), then restore the last one."""
    global _active
    old, _active = _active, times
    try:
        yield times
    finally:
        _active = old
