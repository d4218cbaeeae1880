"""Drawing decoded items (``show_batch``, ``show_results``): one cell per item, every input drawn in it.

Targets a block draws on its input (masks, points, boxes and their labels) are drawn there; the others are
written in the cell's title ("actual / predicted" with predictions), multi-label values joined with ``;`` and
wrapped to the cell's width so neighbouring titles never run into each other.

>>> from pipekit.data.show import title_text
>>> title_text([["chair", "vase"], "tv"], width=12)
'chair;vase /\\ntv'
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from pipekit.core.errors import ParameterError
from pipekit.data.plotting import (draw_image, draw_text, grid_shape, get_pyplot, plot_mode, savefig_or_show, show_table,
                                   show_text_table, tensor_image)

#: inches per picture; a title line holds about as many characters as fit that width
CELL_INCHES, TITLE_LINES = 3.0, 4


def label_text(v: Any) -> str:
    """One value as a title writes it: floats to 3 significant digits, a whole one keeping its ``.0`` (a rating of
    ``4.0`` reads ``4.0``, as the data holds it), a list of labels joined with ``;`` (no label: ``(none)``)."""
    if isinstance(v, (float, np.floating)):
        text = f"{v:.3g}"
        return f"{text}.0" if re.fullmatch(r"-?\d+", text) else text
    if isinstance(v, (list, tuple)) and all(isinstance(x, (str, int, np.integer)) for x in v):
        return ";".join(str(x) for x in v) if len(v) else "(none)"
    return str(v)


def title_text(values: Sequence[Any], width: int) -> str:
    """``values`` joined with `` / ``, wrapped at ``width`` characters (after a ``;`` or a space, never inside a
    label), at most ``TITLE_LINES`` lines."""
    text = " / ".join(label_text(v) for v in values)
    # not textwrap: it breaks only at spaces and hyphens, and multi-label titles ("a;b;c") need a break after ';'
    # lines are filled word by word, a word ending at a space or after a ';' (a label is never cut), and measured
    # as drawn: a break after ';' adds no space
    width = max(8, width)
    lines: list[str] = []
    line = ""
    words = re.findall(r"[^ ;]*;|[^ ;]+ *| +", text)
    # a label wider than a whole line is the one thing cut, in line-wide pieces, so it cannot cover its neighbours
    words = [w[k:k + width] for w in words for k in range(0, max(1, len(w.rstrip())), width)]
    for word in words:
        if line and len((line + word).rstrip()) > width:
            lines.append(line.rstrip())
            line = word.lstrip()
        else:
            line += word
    if line.strip():
        lines.append(line.rstrip())
    if len(lines) > TITLE_LINES:
        lines = lines[:TITLE_LINES - 1] + [lines[TITLE_LINES - 1][: max(1, width - 3)] + "..."]
    return "\n".join(lines)


def title_chars(cell_inches: float) -> int:
    """How many title characters fit across a cell (an average glyph is about 0.6 of the font size wide)."""
    import matplotlib
    from matplotlib.font_manager import FontProperties

    points = FontProperties(size=matplotlib.rcParams["axes.titlesize"]).get_size_in_points()
    return int(cell_inches * 72 / (0.62 * points))


def are_table_rows(blocks: Sequence[Any], n_inp: int) -> bool:
    """Whether the items of ``blocks`` (``n_inp`` of them inputs) are rows of a table: every input's block decodes to
    columns (``table_columns``), so they are shown as a table (:func:`rows_table`) and predicted on from a row."""
    inputs = blocks[:n_inp]
    return bool(inputs) and all(getattr(b, "table_columns", False) for b in inputs)


def rows_table(rows: Sequence[tuple], blocks: Sequence[Any], n_inp: int, preds: Sequence[Any] | None,
               per_target: bool = False) -> Any:
    """Decoded rows of table data as one frame: the input columns, then the target under its column's name
    (``column_name`` of its block; ``target`` when unknown) and, with ``preds``, the prediction (``<name>_pred``;
    ``per_target``: each item's prediction is one per target, each in its own ``<name>_pred`` column). A target of
    several columns (``column_names`` of its block: a table's several regression targets, decoded to one value per
    column) is shown as one column per target column, and its prediction as one ``<column>_pred`` per column."""
    import polars as pl

    targets = list(blocks[n_inp:])
    names = [getattr(b, "column_name", None) or ("target" if j == 0 else f"target_{j}") for j, b in enumerate(targets)]
    columns = [list(getattr(b, "column_names", None) or ()) for b in targets]

    def put(rec: dict[str, Any], j: int, value: Any, name: str, suffix: str = "") -> None:
        cols = columns[j] if j < len(columns) else []
        if len(cols) > 1 and isinstance(value, (list, tuple)) and len(value) == len(cols):
            rec.update({f"{c}{suffix}": label_text(v) for c, v in zip(cols, value)})
        else:
            rec[name] = label_text(value)

    records = []
    for i, row in enumerate(rows):
        rec: dict[str, Any] = {}
        for value in row[:n_inp]:
            rec.update(value)
        for j, value in enumerate(row[n_inp:]):
            put(rec, j, value, names[j] if j < len(names) else f"target_{j}")
        if preds is not None and per_target:
            for j, (n, p) in enumerate(zip(names, preds[i])):
                put(rec, j, p, f"{n}_pred", "_pred")
        elif preds is not None:
            put(rec, 0, preds[i], f"{names[0]}_pred" if names and names[0] != "target" else "prediction", "_pred")
        records.append(rec)
    # float32 values decoded to float64 carry noise in their last digits (52.000001): six digits are the data's
    return pl.DataFrame(records).with_columns(pl.col(pl.Float64).round_sig_figs(6))


class _TensorPicture:
    """How an input of a loader without blocks (``DataLoaders.from_dsets``, ``from_stores``) is drawn: an image
    tensor (already made drawable by :func:`blockless_rows`)."""
    draws_on_input = False
    table_columns = False

    def show(self, ax: Any, value: Any, title: str | None = None) -> None:
        draw_image(ax, value, title)


class _TextPart:
    """An input of a loader without blocks that decodes to a text (chapter 11's ``Datasets`` of ``Tokenizer`` and
    ``Numericalize``): written in its cell, and in a notebook listed in a table of texts, as a ``TextBlock``'s."""
    draws_on_input = False
    table_columns = False
    shows_text = True

    def show(self, ax: Any, value: Any, title: Any = None) -> None:
        draw_text(ax, value, title)


class _TensorLabel:
    """A target of a loader without blocks: written in the title."""
    draws_on_input = False
    table_columns = False


def _plain(value: Any) -> Any:
    """A target or prediction tensor as a title writes it: one number, or a short list of numbers; None when
    it is bigger than a title can say."""
    arr = value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
    if arr.ndim == 0:
        return arr.item()
    if arr.ndim == 1 and arr.size <= 10:
        return [round(x, 3) if isinstance(x, float) else x for x in arr.tolist()]
    return None


def blockless_rows(rows: Sequence[tuple], n_inp: int, preds: Sequence[Any] | None,
                   name: str = "show_batch") -> tuple[list[tuple], tuple[Any, ...], list[Any] | None]:
    """Rows of a loader without blocks made drawable: each input an image (see :func:`tensor_image`) or, decoded to
    a text (a ``Datasets``' of ``Tokenizer`` and ``Numericalize``), that text; each target and prediction a number
    (or a short list of them) or a label for the title, with the blocks that show them that way. Anything else is
    refused, saying what can be drawn.

    >>> import torch
    >>> rows, blocks, _ = blockless_rows([(torch.zeros(1, 28, 28), torch.tensor(7))], 1, None)
    >>> rows[0][0].shape, rows[0][1], [type(b).__name__ for b in blocks]
    ((28, 28, 1), 7, ['_TensorPicture', '_TensorLabel'])
    >>> rows, blocks, _ = blockless_rows([("xxbos a fine film", "positive")], 1, None)
    >>> rows, [type(b).__name__ for b in blocks]
    ([('xxbos a fine film', 'positive')], ['_TextPart', '_TensorLabel'])
    """
    # an input is a text when the first item's is (its tokens joined, see _as_text), and then in every item
    texts = [bool(rows) and j < len(rows[0]) and isinstance(_as_text(rows[0][j]), str) for j in range(n_inp)]
    out = []
    for i, row in enumerate(rows):
        new: list[Any] = []
        for j, value in enumerate(row):
            shape = tuple(getattr(value, "shape", np.shape(value)))
            if j < n_inp and texts[j]:
                new.append(str(_as_text(value)))
            elif j < n_inp:
                img = tensor_image(value)
                if img is None:
                    raise ParameterError(
                        f"{name}: input {j} of item {i} is a tensor of shape {shape}; without blocks {name} draws "
                        "inputs shaped like images: (C, H, W) with C = 1, 3 or 4, or (H, W) (and writes inputs decoded to "
                        "texts). Build the loaders with a "
                        "DataBlock (its blocks say how to show the data), or look at the values with dls.one_batch()")
                new.append(img)
            else:
                plain = _plain(value)
                if plain is None:
                    raise ParameterError(
                        f"{name}: target {j - n_inp} of item {i} has shape {shape}; without blocks {name} writes "
                        "targets of one number (or up to 10) in the title. Build the loaders with a DataBlock whose "
                        "target block says how to show it")
                new.append(plain)
        out.append(tuple(new))
    plain_preds = None
    if preds is not None:
        plain_preds = [_plain(p) for p in preds]
        plain_preds = [p if p is not None else "(prediction too big to write)" for p in plain_preds]
    n = len(rows[0]) if rows else n_inp
    blocks = tuple(_TextPart() if texts[j] else _TensorPicture() for j in range(n_inp)) \
        + tuple(_TensorLabel() for _ in range(n - n_inp))
    return out, blocks, plain_preds


def show_items(rows: Sequence[tuple], blocks: Sequence[Any], n_inp: int, preds: Sequence[Any] | None = None,
               path: Any = None, name: str = "show_batch", nrows: int | None = None, ncols: int | None = None,
               figsize: tuple[float, float] | None = None, per_target: bool = False) -> Any:
    """Draw decoded items, one cell each with every input in it (side by side: a Siamese pair is two pictures),
    targets a block draws on its input (masks, points, boxes) drawn on the first, the others written in the
    cell's title. With ``preds`` a drawn target gets a second cell with the prediction beside it, and a written
    one reads "actual / predicted" (green when right, red when not). ``nrows``/``ncols`` shape the grid (either
    one sets the other; default about square) and ``figsize`` the figure, as in the book's
    ``show_batch(max_n=4, nrows=1)``. Returns the PNG path when one was written (see :func:`savefig_or_show`).

    ``per_target``: each item's prediction is a tuple of one per target (data of several targets); the title has
    a line "actual / predicted" per written target (green when every target is right), and a prediction of a
    target drawn on its input gets the second cell.

    ``rows`` are as a loader's ``decode_batch`` gives them (points and boxes in pixels of the item's image), ``preds``
    as the target blocks decode a model's outputs (points and boxes in -1..1 of the model input): those are drawn in
    pixels of their row's image too.

    >>> import tempfile
    >>> from functools import partial
    >>> from pathlib import Path
    >>> import pipekit.datasets as D
    >>> from pipekit.data import CategoryBlock, DataBlock, GrandparentSplitter, get_image_files, parent_label, show_items
    >>> from pipekit.vision import ImageBlock
    >>> dls = DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock), splitter=GrandparentSplitter(), get_y=parent_label,
    ...                 get_items=partial(get_image_files, folders=["train", "valid"])).dataloaders(
    ...     D.path("mnist_tiny"), bs=4, seed=0)
    >>> rows = dls.valid.decode_batch(dls.valid.one_batch())
    >>> rows[0][0].shape, rows[0][1]
    ((28, 28, 1), '3')
    >>> png = show_items(rows, dls.blocks, dls.n_inp, preds=["3", "7", "3", "3"], path=Path(tempfile.mkdtemp()) / "b.png")
    >>> png.name, png.stat().st_size > 0
    ('b.png', True)
    """
    if not blocks:
        rows, blocks, preds = blockless_rows(rows, n_inp, preds, name)
    elif preds is not None:
        preds = _preds_on_images(rows, blocks, n_inp, preds, per_target)
    if are_table_rows(blocks, n_inp):
        return show_table(rows_table(rows, blocks, n_inp, preds, per_target), path, name=name)
    if path is None and blocks[:n_inp] and all(getattr(b, "shows_text", False) for b in blocks[:n_inp]) \
            and plot_mode() == "inline":  # texts in a notebook: a table, as fastai shows them, not a picture
        names = [getattr(b, "column_name", None) or ("category" if j == 0 else f"target_{j}")
                 for j, b in enumerate(blocks[n_inp:])]
        columns = {"text" if j == 0 else f"text_{j}": [str(r[j]) for r in rows] for j in range(n_inp)}
        columns.update({n: [label_text(r[n_inp + j]) for r in rows] for j, n in enumerate(names)})
        if preds is not None and per_target:
            columns.update({f"{n}_pred": [label_text(p[j]) for p in preds] for j, n in enumerate(names)})
        elif preds is not None:
            columns[f"{names[0]}_pred" if names else "prediction"] = [label_text(p) for p in preds]
        show_text_table(columns)
        return None
    targets = list(blocks[n_inp:])
    k = max(1, min(n_inp, len(blocks)))  # pictures per cell: one per input
    side_by_side = preds is not None and bool(targets) and (any(b.draws_on_input for b in targets) if per_target
                                                            else targets[0].draws_on_input)
    # a grid given whole holds that many items (show_batch(nrows=1, ncols=3) shows 3); side by side, a row is one
    room = nrows if side_by_side else nrows * ncols if nrows is not None and ncols is not None else None
    if room is not None:
        rows, preds = rows[:max(1, int(room))], None if preds is None else preds[:max(1, int(room))]
    n = len(rows)
    nrows, ncols = (n, 2) if side_by_side else grid_shape(n, nrows, ncols)
    plt = get_pyplot()
    size = figsize or (CELL_INCHES * k * ncols, (CELL_INCHES + 0.2) * nrows)
    # constrained layout keeps room for each row's titles, so a wrapped title never covers the row above
    fig = plt.figure(figsize=size, layout="constrained")
    ratios = ([1.0] * k + [0.15]) * ncols
    grid = fig.add_gridspec(nrows, ncols) if k == 1 else fig.add_gridspec(nrows, len(ratios) - 1,
                                                                          width_ratios=ratios[:-1])
    width = title_chars(size[0] / ncols)

    def cell(pos: int) -> tuple[Any, list[Any]]:
        r, c = divmod(pos, ncols)
        if k == 1:
            head = fig.add_subplot(grid[r, c])
            return head, [head]
        # a cell of several pictures is titled once, centred over all of them, by an empty axes spanning them
        c0 = c * (k + 1)  # k pictures, then a narrow empty column setting the cell apart from the next
        axes = [fig.add_subplot(grid[r, c0 + j]) for j in range(k)]
        head = fig.add_subplot(grid[r, c0:c0 + k])
        for ax in {id(a): a for a in [*axes, head]}.values():
            ax.axis("off")
        return head, axes

    for i, row in enumerate(rows):
        if side_by_side:
            shown = [(2 * i, row[n_inp:], "target" if i == 0 else None),
                     (2 * i + 1, list(preds[i]) if per_target else [preds[i]],  # type: ignore[index]
                      "prediction" if i == 0 else None)]
        else:
            shown = [(i, row[n_inp:], None)]
        for pos, values, title in shown:
            head, axes = cell(pos)
            words = [v for b, v in zip(targets, values) if not b.draws_on_input]
            color, text = None, title
            if preds is not None and not side_by_side and per_target:
                said = [p for b, p in zip(targets, preds[i]) if not b.draws_on_input]  # type: ignore[index]
                right = len(words) == len(said) and all(label_text(a) == label_text(p) for a, p in zip(words, said))
                color = "green" if right else "red"
                text = "\n".join(title_text([*words[j:j + 1], p], width) for j, p in enumerate(said))
            elif preds is not None and not side_by_side:
                right = bool(words) and label_text(words[0]) == label_text(preds[i])
                color, words = ("green" if right else "red"), words[:1] + [preds[i]]
            for j, ax in enumerate(axes):
                blocks[j].show(ax, row[j])
            text = text or title_text(words, width)
            if text:
                head.set_title(text, **({"color": color} if color else {}))
            for b, v in zip(targets, values):
                if b.draws_on_input:
                    b.show(axes[0], v)
    return savefig_or_show(fig, path, name=name)


def decoded_image_size(row: Sequence[Any], blocks: Sequence[Any], n_inp: int) -> tuple[int, int] | None:
    """The (h, w) of the first input image of a decoded item (as an image block decodes it, (H, W, C)); None when
    the item has none."""
    for j, b in enumerate(blocks[:n_inp]):
        if getattr(b, "geometry", None) == "image" and j < len(row) and len(np.shape(row[j])) >= 2:
            return int(np.shape(row[j])[0]), int(np.shape(row[j])[1])
    return None


def on_item_image(row: tuple, blocks: Sequence[Any], n_inp: int) -> tuple:
    """A decoded item with its points and boxes (-1..1, as a batch holds them) in pixels of the item's image (see
    :func:`decoded_image_size`), by their blocks' ``decode_on_image``; as it is when it has no image."""
    size = decoded_image_size(row, blocks, n_inp)
    if size is None:
        return tuple(row)
    return tuple(blocks[j].decode_on_image(v, size) if j < len(blocks) and callable(
        getattr(blocks[j], "decode_on_image", None)) else v for j, v in enumerate(row))


def _preds_on_images(rows: Sequence[tuple], blocks: Sequence[Any], n_inp: int, preds: Sequence[Any],
                     per_target: bool) -> list[Any]:
    """Each prediction of points or boxes (-1..1 of the model input) in pixels of its row's input image, by the
    target block's ``decode_on_image``, as ``decode_batch`` gives the row's own; other predictions as they are."""
    if not any(callable(getattr(b, "decode_on_image", None)) for b in blocks[n_inp:]):
        return list(preds)
    out = []
    for i, pred in enumerate(preds):
        if i >= len(rows):
            out.append(pred)
            continue
        ins = tuple(rows[i][:n_inp])
        if per_target:
            out.append(on_item_image(ins + tuple(pred), blocks, n_inp)[n_inp:])
        else:
            out.append(on_item_image(ins + (pred,), blocks[:n_inp + 1], n_inp)[n_inp])
    return out


def _is_picture(value: Any) -> bool:
    """Pixels to draw: a PIL image, an ``ImageArray``, an (H, W[, C]) uint8 array or an image tensor."""
    if type(value).__module__.startswith("PIL"):
        return True
    return (hasattr(value, "shape") and hasattr(value, "dtype") and len(value.shape) in (2, 3)
            and (len(value.shape) == 2 or min(value.shape[0], value.shape[-1]) in (1, 3, 4)))


def _as_text(value: Any) -> Any:
    """A decoded value as printed: tokens joined by spaces, a 0-d tensor or NumPy scalar as its number."""
    if hasattr(value, "ndim") and value.ndim == 0 and hasattr(value, "item"):
        value = value.item()
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        value = " ".join(value)
    return value


def show_value(value: Any, ctx: Any = None, title: Any = None, **kwargs: Any) -> Any:
    """Show one decoded value as fastai's ``show`` does: a value with its own ``show(ctx=...)`` (chapter 11's
    ``SiameseImage``, any ``fastuple`` subclass defining one) draws itself; an image is drawn (on ``ctx``, matplotlib
    axes, when given; ``title`` above it; ``kwargs`` go to ``show_image``); a text, its tokens joined by spaces, or a
    label is printed. Returns what fastai's returns: the axes drawn on, or ``ctx`` (None when not given) when it
    printed, so a notebook does not show a printed text a second time as the cell's value.

    >>> show_value(["xxbos", "xxmaj", "hello"])
    xxbos xxmaj hello
    """
    from pipekit.data.plotting import show_image

    own = getattr(value, "show", None)
    if isinstance(value, tuple) and callable(own):
        return own(ctx=ctx, **kwargs)
    value = _as_text(value)
    if not isinstance(value, (str, int, float, bool, np.generic)) and value is not None and _is_picture(value):
        return show_image(value, ctx=ctx, title=None if title is None else label_text(title), **kwargs)
    print(value if title is None else f"{value} ({label_text(title)})")
    return ctx


def show_parts(parts: Sequence[Any], n_inp: int = 1, ctx: Any = None, **kwargs: Any) -> Any:
    """Show a decoded item of several parts (a ``Datasets`` item): an input image drawn with the other parts (its
    labels) as its title; otherwise each part printed, input first, as fastai prints a text and its label. Returns
    the axes drawn on, or ``ctx`` when it printed (see :func:`show_value`).

    >>> show_parts(("xxbos a fine film", "positive"))
    xxbos a fine film
    positive
    """
    parts = list(parts)
    pictures = [j for j, v in enumerate(parts[:n_inp]) if _is_picture(v) and not isinstance(v, str)]
    if pictures:
        labels = [_as_text(v) for j, v in enumerate(parts) if j not in pictures]
        title = labels[0] if len(labels) == 1 else (labels or None)
        return show_value(parts[pictures[0]], ctx=ctx, title=title, **kwargs)
    for v in parts:
        ctx = show_value(v, ctx=ctx, **kwargs)
    return ctx


def show_at(o: Any, idx: int, **kwargs: Any) -> Any:
    """fastai's ``show_at(tls.valid, 0)``: ``o.show(o[idx])``, item ``idx`` of a ``TfmdLists`` or ``Datasets``
    (or a subset of one) decoded and shown (see their ``show``).

    >>> from pipekit.data import Categorize, TfmdLists
    >>> _ = show_at(TfmdLists(["cat", "dog"], [Categorize()]), 1)
    dog
    """
    return o.show(o[idx], **kwargs)
