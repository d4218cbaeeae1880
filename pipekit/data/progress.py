"""Progress bars for long work (rich), silent when output is not a terminal or PIPEKIT_QUIET=1."""
from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def progress_enabled() -> bool:
    """Bars show on an interactive terminal unless PIPEKIT_QUIET=1; PIPEKIT_PROGRESS=1 forces them on."""
    if os.environ.get("PIPEKIT_QUIET") == "1":
        return False
    if os.environ.get("PIPEKIT_PROGRESS") == "1":
        return True
    return sys.stderr.isatty()


def progress_bar(iterable: Iterable[T], total: int | None = None, description: str = "",
                 leave: bool = False, unit: str = "items") -> Iterator[T]:
    """Iterate over ``iterable`` while drawing a rich progress bar; ``unit="bytes"`` counts the length of
    each chunk and shows the transfer speed (downloads).

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
