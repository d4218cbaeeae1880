"""Figures go where the user looks: inline in Jupyter and IPython, a window where there is a screen, a PNG
file where there is neither. pipekit never switches matplotlib's backend: it uses the one matplotlib (or
the user, or the notebook) chose, and only decides whether to show the figure, save it, or both. Outside a
window, a figure pipekit draws stays open and current after the call, as matplotlib's own plots do, so the
user's next ``plt.title(...)``, ``plt.savefig(...)`` or drawing on the returned axes acts on it.
"""
from __future__ import annotations

import os
import sys
import weakref
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipekit.core.archive import unwritable_error, why_unwritable
from pipekit.core.errors import ParameterError, PipekitWarning
from pipekit.data.cache import warn_unwritable_once

#: matplotlib's non-interactive backends: they can only write files
_FILE_BACKENDS = {"agg", "cairo", "pdf", "pgf", "ps", "svg", "template"}


def get_pyplot() -> Any:
    """``matplotlib.pyplot`` with whatever backend is in effect (matplotlib falls back to Agg by itself
    where there is no screen, and a notebook sets its inline backend)."""
    import matplotlib.pyplot as plt

    return plt


def plot_mode() -> str:
    """How a figure is seen here: ``"inline"`` (a notebook or IPython display), ``"window"`` (an
    interactive backend with a screen) or ``"file"`` (a non-interactive backend such as Agg)."""
    import matplotlib

    backend = matplotlib.get_backend().lower()
    if "inline" in backend or "ipympl" in backend or "widget" in backend or "nbagg" in backend:
        return "inline"
    return "file" if backend in _FILE_BACKENDS else "window"


#: the environment variable naming the folder figures are written to when they cannot be shown
PLOTS_ENV = "PIPEKIT_PLOTS"


def plot_folder() -> Path:
    """Folder where figures are written when they cannot be shown: $PIPEKIT_PLOTS or ./pipekit_plots (not made
    here; :func:`plot_dir` makes it)."""
    return Path(os.environ.get(PLOTS_ENV, "pipekit_plots"))


def plot_dir() -> Path:
    """:func:`plot_folder`, made if missing (the file system's OSError when it cannot be)."""
    d = plot_folder()
    d.mkdir(parents=True, exist_ok=True)
    return d


class PlotWriteWarning(PipekitWarning):
    """The plot folder (``$PIPEKIT_PLOTS``, default ``./pipekit_plots``) could not be written: a figure that could not be
    shown was not saved, and the call went on (a :class:`PipekitWarning`)."""


def _warn_unwritable(folder: Path, error: OSError) -> None:
    """Say once per folder and process (:func:`~pipekit.data.cache.warn_unwritable_once`) that figures cannot be
    written to the plot ``folder``, and how to fix it."""
    def message(key: str) -> str:
        now = os.environ.get(PLOTS_ENV)
        return (f"the plot folder {key} cannot be written ({why_unwritable(folder, error)}): figures that cannot be "
                f"shown are not saved in this run. Set PIPEKIT_PLOTS=<a writable folder>"
                f"{f' (it is {now})' if now else ''}, or give the call path=<a .png file in a writable folder> to "
                "save one figure")

    warn_unwritable_once(folder, PlotWriteWarning, message)


def figure_path(path: str | os.PathLike) -> Path:
    """The file a figure given ``path=`` is written to (and the path returned and printed): ``path`` when it ends
    with an image suffix matplotlib writes (``.png``, ``.svg``, ``.pdf``, ``.jpg``...), else ``path`` with ``.png``
    added. An existing folder is refused with a :class:`~pipekit.core.errors.ParameterError` saying to give a file.

    >>> figure_path("fig").as_posix(), figure_path("loss.v2").as_posix(), figure_path("report/run1.svg").as_posix()
    ('fig.png', 'loss.v2.png', 'report/run1.svg')
    """
    from matplotlib.backend_bases import FigureCanvasBase

    given = Path(path)
    suffix = given.suffix.lower().removeprefix(".")
    out = given if suffix in FigureCanvasBase.get_supported_filetypes() else given.with_name(f"{given.name}.png")
    for p in dict.fromkeys((given, out)):
        if p.is_dir():
            raise ParameterError(f"the figure path {os.fspath(path)!r} {'is' if p == given else f'would be {p}, which is'} "
                                 f"a folder; give a file name for the figure, e.g. {given / 'figure.png'}")
    return out


def _write_png(fig: Any, path: str | os.PathLike | None, name: str) -> Path | None:
    """Write ``fig`` to ``path`` (:func:`figure_path`: ``.png`` added to a name without an image suffix) or, with
    none, to the next ``plot_dir()/name.png``; the file written is returned. A ``path`` the user gave that
    cannot be written raises the file system's OSError (of the same kind, the original as its cause) naming the file,
    its folder and the reason; a plot folder that cannot be written is warned about once (:class:`PlotWriteWarning`)
    and nothing is written (None)."""
    if path is not None:
        out = figure_path(path)
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            fig.savefig(out, dpi=100, bbox_inches="tight")
        except OSError as e:
            msg = (f"cannot write the figure to {out}: the folder {out.parent} cannot be written "
                   f"({why_unwritable(out.parent, e)}); give path= a file in a writable folder")
            raise unwritable_error(e, msg) from e
        return out
    folder = plot_folder()
    try:
        out = _next_png(name)
        fig.savefig(out, dpi=100, bbox_inches="tight")
    except OSError as e:
        _warn_unwritable(folder, e)
        return None
    return out


_DRAWN: dict[str, int] = {}  # figures of each name this process wrote to plot_dir()


def _next_png(name: str) -> Path:
    """``plot_dir()/name.png`` for the first figure of that name in this process, then ``name_2.png``, ... so a
    second ``show_batch`` never replaces the first one's file (a new run starts again at ``name.png``)."""
    k = _DRAWN[name] = _DRAWN.get(name, 0) + 1
    return plot_dir() / (f"{name}.png" if k == 1 else f"{name}_{k}.png")


_KEPT: list[weakref.ref[Any]] = []  # the figure the last headless call left open for the user (at most one)


def savefig_or_show(fig: Any, path: str | os.PathLike | None = None, name: str = "figure") -> Path | None:
    """Show ``fig`` (inline in a notebook, in a window with a screen) and write it to ``path`` when one is
    given; with no way to show it, write it to ``path`` or ``plot_dir()/name.png`` (``name_2.png``, ... for the
    next figures of that name, so each call keeps its own file). Returns the PNG written, if any.

    In a notebook the figure is left open and current: the notebook's backend shows it once, when the cell
    ends, with whatever the user's next lines added (``plt.title``, ``ax.imshow`` on the returned axes), as
    matplotlib's own plots. Headless, the PNG is written now and the figure too is left open and current, so
    ``plt.savefig('mine.png')`` right after saves it again with the user's changes; only the last one stays
    open (the next pipekit figure closes it), so a loop of plots does not pile figures up. In a window it is
    shown (``plt.show()``) and closed.

    >>> plt = get_pyplot(); fig, ax = plt.subplots(); _ = ax.plot([0, 1])
    >>> savefig_or_show(fig, "/tmp/pipekit_doctest.png").name
    'pipekit_doctest.png'
    """
    plt = get_pyplot()
    mode = plot_mode()
    out = None
    if path is not None or mode == "file":
        out = _write_png(fig, path, name)
    manager = fig.canvas.manager
    managed = manager is not None and plt.fignum_exists(manager.num)
    if mode == "window":
        plt.show()
        plt.close(fig)
    elif not managed:  # a figure pyplot does not hold: no backend will show it later
        if mode == "inline":
            from IPython.display import display

            display(fig)
    elif mode == "file":
        _keep_open(fig)
    else:
        plt.figure(fig)
    return out


def _keep_open(fig: Any) -> None:
    """Leave ``fig`` open and current, headless, closing the figure pipekit left open before (one at a time)."""
    plt = get_pyplot()
    previous = _KEPT[0]() if _KEPT else None
    if previous is not None and previous is not fig:
        plt.close(previous)
    _KEPT[:] = [weakref.ref(fig)]
    plt.figure(fig)


#: the figures :func:`subplots` made: [the name of their PNG, the PNG once written (headless)]
_GRIDS: weakref.WeakKeyDictionary[Any, list[Any]] = weakref.WeakKeyDictionary()


def subplots(nrows: int = 1, ncols: int = 1, figsize: tuple[float, float] | None = None, imsize: float = 3,
             suptitle: str | None = None, name: str = "subplots", **kwargs: Any) -> tuple[Any, np.ndarray]:
    """A figure and a grid of axes to draw images on, ``imsize`` inches each, as the book's ``subplots`` (fastai's):
    ``fig, axs = subplots(1, 2)`` then ``show_image(im3, ax=axs[0])`` or ``show_titled_image((im7, '7'),
    ax=axs[1])``. ``axs`` is a NumPy array of axes (one axes too: ``axs[0]``); ``figsize`` overrides ``imsize``,
    ``suptitle`` is written above the grid, ``kwargs`` go to matplotlib's ``plt.subplots`` (``sharey=True``).

    The figure goes where pipekit's figures go: a notebook shows it when the cell ends; headless, each
    :func:`show_image` on one of its axes writes it again to ``plot_dir()/name.png`` (``name_2.png``, ... for the next
    grid), so the file holds every image drawn so far, and it stays open and current for ``plt.savefig``; with a
    window, ``plt.show()`` shows it, as any matplotlib figure.

    >>> fig, axs = subplots(1, 2, imsize=2, name="doctest_subplots")
    >>> axs.shape, fig.get_size_inches().tolist()
    ((2,), [4.0, 2.0])
    >>> show_titled_image((torch.rand(28, 28), 3), ax=axs[1]).get_title()
    '3'
    """
    for arg, value in (("nrows", nrows), ("ncols", ncols)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ParameterError(f"subplots: {arg}={value!r}; give a whole number of at least 1")
    if figsize is None:  # a title above short images needs room of its own
        figsize = (ncols * imsize, nrows * imsize + (0.6 if suptitle is not None and imsize <= 2 else 0))
    fig, axs = get_pyplot().subplots(nrows, ncols, figsize=figsize, **kwargs)
    if suptitle is not None:
        fig.suptitle(suptitle)
    if not isinstance(axs, np.ndarray):  # one axes: still indexed as axs[0]
        axs = np.array([axs])
    _GRIDS[fig] = [name, None]
    if plot_mode() == "file":
        _keep_open(fig)
    return fig, axs


def _drawn_on(ax: Any) -> Path | None:
    """After drawing on ``ax``: headless, write the :func:`subplots` figure it belongs to (to the same PNG each time);
    other figures are shown by whoever made them. Returns the PNG written, if any."""
    fig = ax.get_figure()
    grid = _GRIDS.get(fig)
    if grid is None or plot_mode() != "file":
        return None
    if grid[1] is None:
        grid[1] = _write_png(fig, None, grid[0])
        return grid[1]
    try:
        fig.savefig(grid[1], dpi=100, bbox_inches="tight")
    except OSError as e:
        _warn_unwritable(grid[1].parent, e)
        return None
    return grid[1]


def image_array(value: Any) -> np.ndarray:
    """A decoded image as the (H, W, C) array :func:`draw_image` draws: uint8 pictures are (H, W, C) or (H, W) as
    decoded, float ones (C, H, W) or (H, W) with values in 0..1 (clipped).

    >>> image_array(torch.ones(3, 4, 5)).shape, image_array(np.zeros((4, 5), dtype=np.uint8)).shape
    ((4, 5, 3), (4, 5, 1))
    """
    v = value.detach().cpu() if isinstance(value, torch.Tensor) else torch.as_tensor(np.asarray(value))
    if v.dtype == torch.uint8:
        arr = v.numpy()
        return arr if arr.ndim == 3 else arr[:, :, None]
    arr = v.float().clamp(0, 1).numpy()
    return np.transpose(arr, (1, 2, 0)) if arr.ndim == 3 else arr[:, :, None]


#: the channels an image may have: grey, RGB, RGBA
_CHANNELS = (1, 3, 4)

#: how far outside 0..1 a float picture's values may be and still be read as 0..1 (a quarter of a grey level)
_ROUNDING = 1e-3


def tensor_image(value: Any) -> np.ndarray | None:
    """A tensor known only by its shape (a loader without blocks) as an image :func:`draw_image` draws: (C, H, W)
    with C = 1 (grey), 3 (RGB) or 4 (RGBA), or (H, W), any dtype (uint8 read as 0..255; other values outside 0..1,
    such as normalised pixels or a 16-bit picture's, stretched to 0..1 per image, but for a float rounding). None when
    the shape is not an image's, or the values are not numbers.

    >>> tensor_image(torch.zeros(1, 28, 28)).shape, tensor_image(torch.zeros(5)) is None, tensor_image("a text") is None
    ((28, 28, 1), True, True)
    """
    if isinstance(value, torch.Tensor):
        v = value.detach().cpu()
    else:
        try:
            arr = np.asarray(value)
        except (TypeError, ValueError):  # a ragged list: no picture
            return None
        if arr.dtype.kind not in "biuf":  # texts, objects: no pixels
            return None
        v = torch.as_tensor(arr.astype(arr.dtype.newbyteorder("="), copy=False))  # big-endian 16-bit pixels too
    if not (v.ndim == 2 or (v.ndim == 3 and v.shape[0] in _CHANNELS)) or 0 in v.shape:
        return None
    x = v.float() / 255 if v.dtype == torch.uint8 else v.float()
    lo, hi = float(x.min()), float(x.max())
    # pixels decoded from a normalised batch come back a float rounding outside 0..1 (-3e-8 after
    # Normalize.from_stats(*imagenet_stats)): image_array clamps them; stretching would brighten a dim picture
    if lo < -_ROUNDING or hi > 1 + _ROUNDING:
        x = (x - lo) / max(hi - lo, 1e-8)
    return image_array(x)


def draw_image(ax: Any, value: Any, title: Any = None, cmap: str | None = None, **imshow: Any) -> None:
    """Draw one image (anything :func:`image_array` reads) on ``ax``: grey when it has one channel (or in
    ``cmap``); ``imshow``: more of matplotlib's ``imshow`` settings (``alpha``, ``interpolation``...)."""
    img = value if isinstance(value, np.ndarray) and value.ndim == 3 else image_array(value)
    grey = img.shape[2] == 1
    ax.imshow(img[:, :, 0] if grey else img, cmap=cmap or ("gray" if grey else None), **imshow)
    ax.axis("off")
    set_title(ax, title)


def set_title(ax: Any, title: Any, **kwargs: Any) -> None:
    """Write ``title`` above ``ax`` unless it is None: a title of ``False`` or ``0`` is written as any other (chapter
    11's ``SiameseImage(img1, img2, False).show()`` is titled ``False``). ``kwargs`` go to matplotlib's
    ``set_title`` (``color=``).

    >>> ax = get_pyplot().subplots()[1]; set_title(ax, False); ax.get_title()
    'False'
    """
    if title is not None:
        ax.set_title(str(title), **kwargs)


def draw_text(ax: Any, text: Any, title: Any = None, max_chars: int = 600) -> None:
    """Write a decoded text on ``ax`` (its first ``max_chars`` characters, wrapped to the axes' width, small), with
    ``title`` above it (see :func:`set_title`): how ``show_batch`` draws a text outside a notebook."""
    import textwrap

    ax.axis("off")
    fig = ax.get_figure()  # wrapped to the cell's width (a glyph is about 0.6 of the font size wide)
    inches = fig.get_size_inches()[0] * ax.get_position().width if fig is not None else 4.0
    chars = max(20, int(inches * 72 / (0.6 * 7)))
    ax.text(0, 1, textwrap.fill(str(text)[:max_chars], chars), ha="left", va="top", fontsize=7)
    set_title(ax, title)


#: PIL modes whose array is drawn as it is: grey, colour, and the 16-bit and float numbers of one channel
_DRAWN_MODES = ("L", "RGB", "RGBA", "I;16", "I;16B", "I;16L", "I", "F")


def _drawable_mode(im: Any) -> Any:
    """A PIL image in a mode whose array is its picture: a palette one as its colours (RGBA when it has transparency),
    grey with alpha as RGBA, black-and-white as grey, CMYK / YCbCr / LAB / HSV as RGB; the others as they are.

    >>> from PIL import Image
    >>> [_drawable_mode(Image.new(m, (2, 2))).mode for m in ("P", "LA", "1", "CMYK", "I;16")]
    ['RGB', 'RGBA', 'L', 'RGB', 'I;16']
    """
    if im.mode in _DRAWN_MODES:
        return im
    if im.mode == "1":
        return im.convert("L")
    if im.mode in ("LA", "La", "RGBa", "PA") or (im.mode == "P" and "transparency" in im.info):
        return im.convert("RGBA")
    return im.convert("RGB")


def show_image(im: Any, ax: Any = None, figsize: tuple[float, float] | None = None, title: Any = None,
               cmap: str | None = None, name: str = "image", ctx: Any = None, **imshow: Any) -> Any:
    """Show one image as the book does (``show_image(three_tensors[1])``, ``show_image(mean3)``): a tensor or
    array of (H, W), (C, H, W) or (H, W, C) pixels with 1, 3 or 4 channels (grey, RGB, RGBA; floats in 0..1, others
    stretched to it; uint8 as 0..255), or a PIL image (an 8-bit one as decoded, a 16-bit or float one as its array
    is). On ``ax`` (fastai's ``ctx=``) when given (the caller shows the figure); else in a figure of its own
    that goes where figures go (inline in a notebook, a window, or ``plot_dir()/name.png``). ``imshow``: more of
    matplotlib's ``imshow`` settings, as chapter 18's ``alpha=0.6, extent=..., interpolation='bilinear'``.
    ``title``: any value but None is written above it, ``False`` too (see :func:`set_title`). Returns the axes drawn
    on.

    >>> ax = show_image(torch.rand(28, 28), title="noise", name="doctest_image")
    >>> ax.get_title()
    'noise'
    """
    from PIL import Image

    pil = isinstance(im, Image.Image)
    if pil:  # 8-bit modes (L, RGB, RGBA...) are uint8, drawn as decoded; I;16, I and F as arrays of their numbers
        im = np.array(_drawable_mode(im))
    if pil and im.dtype == np.uint8:
        img = image_array(im)
    else:
        v = im.detach().cpu() if isinstance(im, torch.Tensor) else np.ascontiguousarray(im)  # np.flip's views too
        shape = tuple(v.shape)
        if v.ndim == 3 and v.shape[-1] in _CHANNELS and v.shape[0] not in _CHANNELS:  # (H, W, C)
            v = v.permute(2, 0, 1) if isinstance(v, torch.Tensor) else np.transpose(v, (2, 0, 1))
        found = tensor_image(v)
        if found is None:
            what = "a tensor" if isinstance(im, torch.Tensor) else "an array"
            raise ParameterError(f"show_image: {what} of shape {shape} is not an image; give (H, W), "
                                 "(C, H, W) or (H, W, C) pixels with 1, 3 or 4 channels (grey, RGB or RGBA)")
        img = found
    if ctx is not None and ax is not None and ctx is not ax:
        raise ParameterError("show_image: ax= and ctx= name the axes to draw on; give one")
    ax = ctx if ax is None else ax
    own = ax is None
    if own:
        fig, ax = get_pyplot().subplots(figsize=figsize or (3, 3))
    draw_image(ax, img, title, cmap, **imshow)
    if own:
        savefig_or_show(fig, name=name)
    else:
        _drawn_on(ax)
    return ax


def show_titled_image(o: Any, **kwargs: Any) -> Any:
    """Show an ``(image, title)`` pair as the book's ``show_titled_image`` (fastai's) does: the image as
    :func:`show_image` shows it, with ``str(title)`` above it; ``kwargs`` go to :func:`show_image` (``ax=`` an axes
    of :func:`subplots`, ``figsize=``, ``cmap=``). Returns the axes drawn on.

    >>> show_titled_image((torch.rand(28, 28), "noise"), name="doctest_titled").get_title()
    'noise'
    """
    if not isinstance(o, (tuple, list)) or len(o) != 2:
        got = f"a {type(o).__name__} of {len(o)}" if isinstance(o, (tuple, list)) else f"a {type(o).__name__}"
        raise ParameterError(f"show_titled_image: o is {got}; give one (image, title) pair, e.g. "
                             "show_titled_image((img, 'a three'))")
    return show_image(o[0], title=str(o[1]), **kwargs)


def grid_shape(n: int, nrows: int | None, ncols: int | None) -> tuple[int, int]:
    """(rows, columns) of a grid holding ``n`` figures: ``ncols`` or ``nrows`` as given (the other to fit them),
    else a square.

    >>> grid_shape(5, None, None), grid_shape(5, 1, None), grid_shape(5, None, 2)
    ((2, 3), (1, 5), (3, 2))
    """
    if nrows is None and ncols is None:
        ncols = int(np.ceil(np.sqrt(n)))
    if ncols is None:
        ncols = int(np.ceil(n / max(1, int(nrows))))  # type: ignore[arg-type]
    ncols = max(1, int(ncols))
    return int(np.ceil(n / ncols)), ncols


def show_images(ims: Any, nrows: int = 1, ncols: int | None = None, titles: Any = None,
                figsize: tuple[float, float] | None = None, name: str = "images", **imshow: Any) -> Any:
    """Show several images side by side, as the book does (``show_images((im3, im7), titles=('3', '7'))``): each
    as :func:`show_image` reads it, on ``nrows`` rows; ``titles``, one per image. Returns the axes.

    >>> axs = show_images([torch.rand(28, 28), torch.rand(3, 16, 16)], titles=["a", "b"], name="doctest_images")
    >>> [ax.get_title() for ax in axs]
    ['a', 'b']
    """
    ims = list(ims)
    if not ims:
        raise ParameterError("show_images: no images given")
    titles = [None] * len(ims) if titles is None else list(titles)
    if len(titles) != len(ims):
        raise ParameterError(f"show_images: {len(titles)} titles for {len(ims)} images; give one title per image")
    nrows, ncols = grid_shape(len(ims), nrows, ncols)
    fig, axs = get_pyplot().subplots(nrows, ncols, figsize=figsize or (3 * ncols, 3 * nrows), squeeze=False)
    flat = list(axs.flat)
    for ax, im, title in zip(flat, ims, titles):
        show_image(im, ax=ax, title=title, **imshow)
    for ax in flat[len(ims):]:
        ax.axis("off")
    savefig_or_show(fig, name=name)
    return flat[:len(ims)]


def _table_figure(frame: Any) -> Any:
    """A matplotlib figure holding ``frame`` (a Polars DataFrame) as a table, each column as wide as its text."""
    plt = get_pyplot()
    cells = [[_cell(v) for v in row] for row in frame.iter_rows()]
    widths = [max([len(str(c))] + [len(r[j]) for r in cells]) for j, c in enumerate(frame.columns)]
    fig, ax = plt.subplots(figsize=(max(3.0, 0.09 * (sum(widths) + 2 * len(widths))), 0.3 * (len(cells) + 1) + 0.2))
    ax.axis("off")
    table = ax.table(cellText=cells or None, colLabels=list(frame.columns), loc="center", cellLoc="left")
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    table.auto_set_column_width(list(range(len(frame.columns))))
    return fig


def _cell(v: Any) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def show_text_table(columns: dict[str, list[str]], max_chars: int = 1000) -> None:
    """Show texts in a notebook as a table, a column per key (``text``, ``category``), as fastai shows a text
    batch: readable and selectable, each text cut at ``max_chars``; its plain form lists the rows."""
    from IPython.display import display

    from pipekit.data.progress import Shown, html_table

    def cut(v: Any) -> str:
        return str(v) if len(str(v)) <= max_chars else str(v)[:max_chars] + " ..."

    names = list(columns)
    rows = [[cut(v) for v in r] for r in zip(*(columns[n] for n in names))]
    text = "\n".join(" | ".join(c[:200] for c in r) for r in [names, *rows])
    display(Shown(html_table(names, rows, cell_style="text-align: left;"), text))


def show_table(frame: Any, path: str | os.PathLike | None = None, name: str = "table") -> Path | None:
    """Show a table (a Polars DataFrame) where the user looks: in a notebook as a table (HTML, and the printed
    table as its plain text), in a script printed, and drawn as a figure that goes where :func:`savefig_or_show`
    sends figures (a PNG when nothing can show it). ``path`` writes the PNG in any case. Returns the PNG written,
    if any.

    As a pandas DataFrame shows, text is shown without quotes and with no row of column types, and a text column
    holding only numbers written out (a rating decoded as "4.5") is shown as numbers.

    >>> import polars as pl
    >>> show_table(pl.DataFrame({"age": [49.0], "salary": [">=50k"]}), "/tmp/pipekit_table.png").name  # doctest: +ELLIPSIS
    ┌──────┬────────┐
    ...
    'pipekit_table.png'
    """
    frame = _as_numbers(frame)
    if plot_mode() == "inline":
        from IPython.display import display

        from pipekit.data.progress import Shown, html_table

        rows = [["" if v is None else str(v) for v in row] for row in frame.iter_rows()]
        display(Shown(html_table(list(frame.columns), rows), _table_text(frame, sys.stdout)))
        if path is None:
            return None
        fig = _table_figure(frame)
        try:
            return _write_png(fig, path, name)
        finally:
            get_pyplot().close(fig)
    print(_table_text(frame, sys.stdout))
    return savefig_or_show(_table_figure(frame), path, name=name)


#: numbers as a value written as text reads (no leading zeros, which an identifier such as "007" keeps)
_INT_TEXT = r"^-?(0|[1-9][0-9]{0,17})$"
_FLOAT_TEXT = r"^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?$|^(nan|-?inf)$"


def _as_numbers(frame: Any) -> Any:
    """``frame`` with each text column that holds only numbers written out (a target or prediction decoded as
    text: "4", "4.5") as integers, or floats when any of them is not whole; other columns as they are."""
    import polars as pl

    cast = []
    for name, dtype in frame.schema.items():
        values = frame[name].drop_nulls() if dtype == pl.String else None
        if values is None or not len(values):
            continue
        if values.str.contains(_INT_TEXT).all():
            cast.append(pl.col(name).cast(pl.Int64))
        elif values.str.contains(_FLOAT_TEXT).all() and not values.str.contains(r"^(nan|-?inf)$").all():
            cast.append(pl.col(name).cast(pl.Float64))
    return frame.with_columns(cast) if cast else frame


#: the characters of a text value a printed table shows; a longer one is cut, ending in an ellipsis
_STR_LENGTH = 40


def _table_text(frame: Any, stream: Any = None, width: int = 250) -> str:
    r"""``frame`` printed whole (at most ``width`` characters wide), without its shape or column types, as text
    stream ``stream`` (None: one writing UTF-8) can write it: where its encoding cannot write the table (a Windows
    console's cp1252, the C locale's ASCII cannot write Polars' box-drawing borders), with ASCII borders, and each
    character of a value or column name it cannot write as its Python escape (``\xe9``).

    >>> import io, polars as pl
    >>> print(_table_text(pl.DataFrame({"city": ["Zürich"]}), io.TextIOWrapper(io.BytesIO(), encoding="ascii")))
    +-----------+
    | city      |
    +===========+
    | Z\xfcrich |
    +-----------+
    """
    import polars as pl

    options: dict[str, Any] = dict(tbl_cols=-1, tbl_rows=-1, tbl_width_chars=width, fmt_str_lengths=_STR_LENGTH,
                                   tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True,
                                   tbl_hide_dtype_separator=True)
    with pl.Config(**options):
        text = str(frame)
    encoding = getattr(stream, "encoding", None) or "utf-8"
    try:
        text.encode(encoding)
        return text
    except LookupError:  # an encoding Python does not know: the stream says what it does with the text
        return text
    except UnicodeEncodeError:
        pass

    def escaped(value: str | None) -> str | None:
        if value is None:
            return None
        cut = value if len(value) <= _STR_LENGTH else value[:_STR_LENGTH] + "..."
        return cut.encode(encoding, "backslashreplace").decode(encoding)

    texts = [name for name, dtype in frame.schema.items() if dtype in (pl.String, pl.Categorical) or
             isinstance(dtype, pl.Enum)]
    frame = frame.with_columns(pl.col(n).cast(pl.String).map_elements(escaped, return_dtype=pl.String) for n in texts)
    frame = frame.rename({n: escaped(n) or n for n in frame.columns})
    # a value is cut above; its escapes make it at most ten times as long (``\U0001f600``)
    with pl.Config(**{**options, "fmt_str_lengths": 10 * _STR_LENGTH + 3}, tbl_formatting="ASCII_FULL_CONDENSED"):
        text = str(frame)
    return text.encode(encoding, "backslashreplace").decode(encoding)  # what no escape above reached (nested values)


