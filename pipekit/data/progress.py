"""Progress bars for long work: rich on a terminal (standard error, leaving standard output to results), an HTML
bar updated in place in a Jupyter notebook, silent when output is neither or PIPEKIT_QUIET=1. Bars forced on with
PIPEKIT_PROGRESS=1 where standard error is no terminal (a log file) are plain lines instead, no animation."""
from __future__ import annotations

import html
import math
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from pipekit.core.validate import env_flag

T = TypeVar("T")

# Work running now under a bar that already counts it (a bagged model's fold models, fitted in worker threads
# too), in every thread. A bar started meanwhile keeps quiet rather than draw a bar inside the bar. The count is
# held by ``under_bar`` blocks, each entered and left within one call, never by a bar's lifetime: a
# ``progress_bar`` generator abandoned mid-loop and still referenced (a ``break``, or an exception whose traceback
# a notebook keeps) never runs its ``finally``, so a count it held would silence every later bar.
_under_bar = [0]
_under_bar_lock = threading.Lock()


@contextmanager
def under_bar() -> Iterator[None]:
    """Run the block as work a bar already counts (a bagged model fitting one fold model under its bar of folds):
    every bar started meanwhile, in any thread, keeps quiet. Enter it around the work itself, not around a
    ``yield``.

    >>> with under_bar():
    ...     bar_drawing(), ProgressMeter(10, "inside").shows
    (True, False)
    >>> bar_drawing()
    False
    """
    with _under_bar_lock:
        _under_bar[0] += 1
    try:
        yield
    finally:
        with _under_bar_lock:
            _under_bar[0] -= 1


def bar_drawing() -> bool:
    """Whether work a bar counts runs now, in any thread (see :func:`under_bar`): work done inside it (a fold
    model fitted under a bagged model's bar of folds) keeps its own bar quiet rather than draw a bar inside the
    bar."""
    return _under_bar[0] > 0


def in_notebook() -> bool:
    """Whether this code runs in a Jupyter kernel (IPython with a kernel attached), which shows HTML outputs."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    return shell is not None and getattr(shell, "kernel", None) is not None


def check_progress_settings() -> None:
    """Refuse a PIPEKIT_QUIET or PIPEKIT_PROGRESS that is neither on nor off (:func:`~pipekit.core.validate.env_flag`'s
    ParameterError, naming the variable): a fit calls it as it starts, so such a value stops it before any batch,
    not at the first bar or line it prints."""
    env_flag("PIPEKIT_QUIET")
    env_flag("PIPEKIT_PROGRESS")


def progress_enabled() -> bool:
    """Bars show on an interactive terminal and in a notebook unless PIPEKIT_QUIET=1; PIPEKIT_PROGRESS=1 forces
    them on (either also true, yes or on: :func:`~pipekit.core.validate.env_flag`)."""
    if env_flag("PIPEKIT_QUIET"):
        return False
    if env_flag("PIPEKIT_PROGRESS"):
        return True
    return sys.stderr.isatty() or in_notebook()


def format_time(seconds: float) -> str:
    """A duration as a clock shows it, whole seconds: ``mm:ss`` under an hour, ``h:mm:ss`` from an hour on (the
    hours are never dropped). Bars, the training table and CSVLogger's file write durations with it. A negative
    duration shows as ``00:00``, one that is not a number (NaN, infinite: no estimate yet) as ``--:--``.

    >>> format_time(65.4), format_time(3725), format_time(90000)
    ('01:05', '1:02:05', '25:00:00')
    >>> format_time(-3.2), format_time(float("nan"))
    ('00:00', '--:--')
    """
    if not math.isfinite(seconds):
        return "--:--"
    t = max(int(seconds), 0)
    h, m, s = t // 3600, t // 60 % 60, t % 60
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def _done(count: int, total: int | None, unit: str) -> str:
    """The count done, of the total where known, as a bar shows it ('3/11', or '1.5/9.8 MB' for bytes)."""
    if unit == "bytes":
        return f"{count / 1e6:.1f}" + (f"/{total / 1e6:.1f}" if total else "") + " MB"
    return f"{count:,}" + (f"/{total:,}" if total else "")


def _bar_console() -> Any:
    """The rich console a bar draws on: rich's own where the program pointed it at a stream of its choosing
    (``rich.reconfigure(file=...)``, ``stderr=True``), else one on standard error, so that a bar never mixes into
    the results a program prints (``python job.py > results.txt`` keeps its bars on the terminal)."""
    import rich
    from rich.console import Console

    console = rich.get_console()
    return console if console.file is not sys.stdout else Console(stderr=True)


class Shown:
    """An output for a notebook: HTML for Jupyter, plain text (no terminal colour codes) for anything else."""

    def __init__(self, html_text: str, text: str):
        self.html_text, self.text = html_text, text

    def _repr_html_(self) -> str:
        return self.html_text

    def __repr__(self) -> str:
        return self.text


def html_table(names: list[str], rows: list[list[str]], cell_style: str = "") -> str:
    """Rows under a header as the HTML table a notebook shows (the fit's losses, a batch of texts), every cell
    escaped."""
    td = f"<td style='{cell_style}'>" if cell_style else "<td>"
    head = "".join(f"<th>{html.escape(n)}</th>" for n in names)
    body = "".join("<tr>" + "".join(f"{td}{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return (f"<table class='dataframe' border='1'><thead><tr style='text-align: left;'>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table>")


class Slot:
    """One output area of a notebook cell, replaced in place (an IPython display handle)."""

    def __init__(self, shown: Shown | None = None):
        from IPython.display import display

        self.handle: Any = display(shown or Shown("", ""), display_id=True)

    def show(self, shown: Shown) -> None:
        self.handle.update(shown)


class NotebookBar:
    """A progress bar in a notebook: an HTML ``<progress>`` with the count, elapsed and remaining time, redrawn at
    most ten times a second in its ``slot`` (its own, or one a caller reuses), and emptied at the end unless
    ``leave``."""

    def __init__(self, total: int | None, description: str = "", leave: bool = False, unit: str = "items",
                 slot: Slot | None = None):
        self.total, self.description, self.leave, self.unit = total, description, leave, unit
        self.count, self.start, self.drawn = 0, time.perf_counter(), 0.0
        self.slot = slot or Slot()
        self.draw()

    def shown(self) -> Shown:
        elapsed = time.perf_counter() - self.start
        done = _done(self.count, self.total, self.unit)
        # a loader may yield more batches than its length says: nothing is left then, not a negative time
        left = (f" < {format_time(elapsed / self.count * max(self.total - self.count, 0))}"
                if self.total and self.count else "")
        info = f"{self.description} {done} [{format_time(elapsed)}{left}]".strip()
        bar = (f"<progress value='{self.count}' max='{self.total}' style='width:300px; height:12px'></progress>"
               if self.total else "")
        return Shown(f"<div>{bar} <span>{html.escape(info)}</span></div>", info)

    def draw(self, force: bool = False) -> None:
        now = time.perf_counter()
        if force or now - self.drawn >= 0.1:
            self.slot.show(self.shown())
            self.drawn = now

    def close(self) -> None:
        self.slot.show(self.shown() if self.leave else Shown("", ""))


def progress_bar(iterable: Iterable[T], total: int | None = None, description: str = "",
                 leave: bool = False, unit: str = "items", slot: Slot | None = None) -> Iterator[T]:
    """Iterate over ``iterable`` while drawing a progress bar (rich on a terminal; in a notebook an HTML bar in
    ``slot``, or an output of its own); ``unit="bytes"`` counts the length of each chunk and shows the transfer
    speed (downloads). Work in the loop that draws bars of its own (a GBM's rounds) draws them beside this one;
    run it under :func:`under_bar` to keep them quiet, as a bagged model does for its fold models.

    >>> sum(progress_bar(range(3), description="demo"))
    3
    """
    if total is None:
        try:
            total = len(iterable)  # type: ignore[arg-type]
        except TypeError:
            total = None
    if not progress_enabled():
        yield from iterable
        return
    yield from _drawn(iterable, total, description, leave, unit, slot)


def _drawn(iterable: Iterable[T], total: int | None, description: str, leave: bool, unit: str,
           slot: Slot | None) -> Iterator[T]:
    meter = ProgressMeter(total, description, leave, unit, slot, notes=False)
    try:
        for x in iterable:
            yield x
            meter.update(meter.count + (len(x) if unit == "bytes" else 1))  # type: ignore[arg-type]
    finally:
        meter.close()


class ProgressMeter:
    """pipekit's one progress bar, which its owner moves (``progress_bar`` moves one over a loop; a library's
    callback moves one where there is no loop to wrap): ``update(count, note)`` sets the count done and a note
    shown after it (a booster's round and latest validation score), ``close()`` takes the bar away. It draws
    rich on a terminal (see :func:`_bar_console`) and HTML in a notebook (in ``slot``, or an output of its own), and
    is silent, every call doing nothing, with PIPEKIT_QUIET=1, where output is neither, or under another bar's work
    (``bar_drawing``). Forced on (PIPEKIT_PROGRESS=1) where its console is no terminal (output sent to a file), it
    writes plain lines there instead of drawing: ``<description>: <done>/<total> ...`` every
    ``PLAIN_EVERY`` seconds while it runs, and ``<description>: <done>/<total> in <seconds> s`` when it closes.
    ``unit="bytes"``: the count is bytes, shown in MB with the transfer speed. ``notes=False``: no column for
    notes (a bar that is given none).

    >>> meter = ProgressMeter(10, "demo")
    >>> meter.update(3, "loss 0.5"); meter.close()
    >>> meter.count, meter.closed
    (3, True)
    """

    #: seconds between two lines of a plain record (a bar forced on where output is no terminal)
    PLAIN_EVERY = 10.0

    def __init__(self, total: int | None, description: str = "", leave: bool = False, unit: str = "items",
                 slot: Slot | None = None, notes: bool = True):
        self.total, self.description, self.leave, self.unit = total, description, leave, unit
        self.count, self.note, self.closed = 0, "", False
        self.shows = progress_enabled() and not bar_drawing()
        self._notebook: NotebookBar | None = None
        self._rich: Any = None
        self._plain: Any = None  # the stream of a plain record
        if not self.shows:
            return
        if in_notebook():
            self._notebook = NotebookBar(total, description, leave, unit, slot)
            return
        console = _bar_console()
        if not console.is_terminal:  # a file: lines it can keep, never a redrawn bar's control codes
            self._plain = console.file
            self._start = self._said = time.perf_counter()
            return
        from rich.progress import (BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn, TransferSpeedColumn)

        columns = [TextColumn("[bold]{task.description}"), BarColumn()] + (
            [DownloadColumn(), TransferSpeedColumn()] if unit == "bytes"
            else [MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn()])
        if notes:  # an empty column would still pad the line
            columns.append(TextColumn("{task.fields[note]}"))
        self._rich = Progress(*columns, transient=not leave, console=console)
        self._rich.start()
        self._task = self._rich.add_task(description, total=total, note="")

    def update(self, count: int, note: str = "") -> None:
        """Set the count done (not an increment) and the note after it."""
        self.count, self.note = count, note
        if self._rich is not None:
            self._rich.update(self._task, completed=count, note=note)
        elif self._notebook is not None:
            self._notebook.count = count
            self._notebook.description = f"{self.description} {note}" if note else self.description
            self._notebook.draw(force=self.total is not None and count >= self.total)
        elif self._plain is not None and time.perf_counter() - self._said >= self.PLAIN_EVERY:
            self._said = time.perf_counter()
            self._say(f"{_done(count, self.total, self.unit)} [{format_time(self._said - self._start)}]")

    def _say(self, text: str) -> None:
        line = f"{self.description}: {text}" if self.description else text
        print(f"{line} {self.note}".rstrip(), file=self._plain, flush=True)

    def close(self) -> None:
        """Take the bar away (kept, at its last count, with ``leave``); closing twice does nothing."""
        if self.closed:
            return
        self.closed = True
        if self._rich is not None:
            self._rich.update(self._task, completed=self.count, note=self.note)
            self._rich.stop()
        elif self._notebook is not None:
            self._notebook.close()  # its last count with leave, else nothing
        elif self._plain is not None:
            self._say(f"{_done(self.count, self.total, self.unit)} in {time.perf_counter() - self._start:.1f} s")
