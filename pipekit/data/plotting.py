"""Figures go to the screen when there is one and to PNG files when there is not."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def _headless() -> bool:
    return not os.environ.get("DISPLAY") and os.name != "nt"


def get_pyplot() -> Any:
    """Import matplotlib.pyplot, choosing the Agg backend when no display is available."""
    import matplotlib

    if _headless():
        matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_dir() -> Path:
    """Folder where headless plots are written: $PIPEKIT_PLOTS or ./pipekit_plots."""
    d = Path(os.environ.get("PIPEKIT_PLOTS", "pipekit_plots"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def savefig_or_show(fig: Any, path: str | os.PathLike | None = None, name: str = "figure") -> Path | None:
    """Save ``fig`` to ``path`` (PNG) if given or if headless, else show it. Returns the file written.

    >>> plt = get_pyplot(); fig, ax = plt.subplots(); _ = ax.plot([0, 1])
    >>> savefig_or_show(fig, "/tmp/pipekit_doctest.png").name
    'pipekit_doctest.png'
    """
    plt = get_pyplot()
    if path is None and not _headless():
        plt.show()
        return None
    out = Path(path) if path is not None else plot_dir() / f"{name}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return out
