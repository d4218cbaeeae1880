"""Progress bars for long work: rich on a terminal, an HTML bar updated in place in a Jupyter notebook, silent
when output is neither or PIPEKIT_QUIET=1."""
from __future__ import annotations

import html
import os
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

_drawing = [0]  # bars drawing now, in every thread (a bagged model's fold models fit in worker threads)
_drawing_lock = threading.Lock()


def _count_drawing(n: int) -> None:
    with _drawing_lock:
        _drawing[0] += n


def bar_drawing() -> bool:
    """Whether a progress bar is drawing now, in any thread: work done inside it (a fold model fitted under a bagged
    model's bar of folds) keeps its own bar quiet rather than draw a bar inside the bar."""
    return _drawing[0] > 0


def in_notebook() -> bool:
    """Whether this code runs in a Jupyter kernel (IPython with a kernel attached), which shows HTML outputs."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    return shell is not None and getattr(shell, "kernel", None) is not None


def progress_enabled() -> bool:
    """Bars show on an interactive terminal and in a notebook unless PIPEKIT_QUIET=1; PIPEKIT_PROGRESS=1 forces
    them on."""
    if os.environ.get("PIPEKIT_QUIET") == "1":
        return False
    if os.environ.get("PIPEKIT_PROGRESS") == "1":
        return True
    return sys.stderr.isatty() or in_notebook()


def _clock(seconds: float) -> str:
    return time.strftime("%M:%S", time.gmtime(seconds)) if seconds < 3600 else f"{seconds / 3600:.1f} h"


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
        done = f"{self.count:,}" + (f"/{self.total:,}" if self.total else "")
        if self.unit == "bytes":
            done = f"{self.count / 1e6:.1f}" + (f"/{self.total / 1e6:.1f}" if self.total else "") + " MB"
        left = (f" < {_clock(elapsed / self.count * (self.total - self.count))}"
                if self.total and self.count else "")
        info = f"{self.description} {done} [{_clock(elapsed)}{left}]".strip()
        bar = (f"<progress value='{self.count}' max='{self.total}' style='width:300px; height:12px'></progress>"
               if self.total else "")
        return Shown(f"<div>{bar} <span>{html.escape(info)}</span></div>", info)

    def draw(self, force: bool = False) -> None:
        now = time.perf_counter()
        if force or now - self.drawn >= 0.1:
            self.slot.show(self.shown())
            self.drawn = now

    def advance(self, n: int = 1) -> None:
        self.count += n
        self.draw(force=self.total is not None and self.count >= self.total)

    def close(self) -> None:
        self.slot.show(self.shown() if self.leave else Shown("", ""))


def progress_bar(iterable: Iterable[T], total: int | None = None, description: str = "",
                 leave: bool = False, unit: str = "items", slot: Slot | None = None) -> Iterator[T]:
    """Iterate over ``iterable`` while drawing a progress bar (rich on a terminal; in a notebook an HTML bar in
    ``slot``, or an output of its own); ``unit="bytes"`` counts the length of each chunk and shows the transfer
    speed (downloads).

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
    _count_drawing(1)
    try:
        yield from _drawn(iterable, total, description, leave, unit, slot)
    finally:
        _count_drawing(-1)


def _drawn(iterable: Iterable[T], total: int | None, description: str, leave: bool, unit: str,
           slot: Slot | None) -> Iterator[T]:
    if in_notebook():
        shown = NotebookBar(total, description, leave, unit, slot)
        try:
            for x in iterable:
                yield x
                shown.advance(len(x) if unit == "bytes" else 1)  # type: ignore[arg-type]
        finally:
            shown.close()
        return
    from rich.progress import (BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn, TransferSpeedColumn)

    columns = [TextColumn("[bold]{task.description}"), BarColumn()] + (
        [DownloadColumn(), TransferSpeedColumn()] if unit == "bytes"
        else [MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn()])
    with Progress(*columns, transient=not leave) as bar:
        task = bar.add_task(description, total=total)
        for x in iterable:
            yield x
            bar.advance(task, len(x) if unit == "bytes" else 1)  # type: ignore[arg-type]


class ProgressMeter:
    """A progress bar its owner moves (a library's callback, where there is no loop to wrap in
    :func:`progress_bar`): ``update(count, note)`` sets the count done and a note shown after the description
    (a booster's round and latest validation score), ``close()`` takes the bar away. It draws where
    ``progress_bar`` draws (rich on a terminal, HTML in a notebook) and is silent, every call doing nothing, where
    that is silent or while another bar is drawing (``bar_drawing``).

    >>> meter = ProgressMeter(10, "demo")
    >>> meter.update(3, "loss 0.5"); meter.close()
    >>> meter.count, meter.closed
    (3, True)
    """

    def __init__(self, total: int | None, description: str = "", leave: bool = False):
        self.total, self.description, self.leave = total, description, leave
        self.count, self.note, self.closed = 0, "", False
        self.shows = progress_enabled() and not bar_drawing()
        self._notebook: NotebookBar | None = None
        self._rich: Any = None
        if not self.shows:
            return
        _count_drawing(1)
        if in_notebook():
            self._notebook = NotebookBar(total, description, leave)
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._rich = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                              TimeElapsedColumn(), TextColumn("{task.fields[note]}"), transient=not leave)
        self._task = self._rich.add_task(description, total=total, note="")
        self._rich.start()

    def update(self, count: int, note: str = "") -> None:
        """Set the count done (not an increment) and the note after it."""
        self.count, self.note = count, note
        if self._rich is not None:
            self._rich.update(self._task, completed=count, note=note)
        elif self._notebook is not None:
            self._notebook.count = count
            self._notebook.description = f"{self.description} {note}".strip()
            self._notebook.draw()

    def close(self) -> None:
        """Take the bar away (kept, at its last count, with ``leave``); closing twice does nothing."""
        if self.closed:
            return
        self.closed = True
        if not self.shows:
            return
        try:
            if self._rich is not None:
                self._rich.update(self._task, completed=self.count, note=self.note)
                self._rich.stop()
            elif self._notebook is not None:
                self._notebook.draw(force=True)
                self._notebook.close()
        finally:
            _count_drawing(-1)
