"""Cleaning an image data set by hand: the images a classifier finds hardest, each with a choice to keep, delete or
relabel it (``from pipekit.vision.widgets import *``, as the book's chapter 2 writes it).

In Jupyter with ``ipywidgets`` installed (``pip install 'pipekit[widgets]'``) the cleaner is two drop-downs (the
label and the split) over a strip of thumbnails, each with its own drop-down; without it, the cleaner shows the
thumbnails with their numbers and ``cleaner.mark(i, choice)`` sets a choice. Either way, ``cleaner.delete()`` and
``cleaner.change()`` say what was chosen, and acting on the files is the user's step::

    cleaner = ImageClassifierCleaner(learn)
    cleaner                                    # choose in the notebook (or cleaner.mark(0, '<Delete>'))
    for idx in cleaner.delete(): cleaner.fns[idx].unlink()
    for idx, cat in cleaner.change(): shutil.move(str(cleaner.fns[idx]), path/cat)

The ``ipywidgets`` names the book uses beside the cleaner (``widgets``, ``VBox``, ``Button``, ``FileUpload``,
``Output``, ``Label``...) come with the star import when the package is installed.
"""
from __future__ import annotations

import base64
import html
import importlib.util
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from pipekit.core.errors import ParameterError
from pipekit.core.validate import Interval, Is, check
from pipekit.data.dataloaders import classes_vocab

if TYPE_CHECKING:
    from pipekit.learn.learner import Learner

__all__ = ["ImagesCleaner", "ImageClassifierCleaner", "has_ipywidgets"]

KEEP, DELETE = "<Keep>", "<Delete>"
SPLITS = ("Train", "Valid")
_WIDGET_NAMES = ("HBox", "VBox", "widgets", "Button", "Checkbox", "Dropdown", "Layout", "Box", "Output", "Label",
                 "FileUpload")


def has_ipywidgets() -> bool:
    """Whether ``ipywidgets`` is installed (the cleaners are then drop-downs in a notebook).

    >>> from pipekit.vision.widgets import __all__ as names, has_ipywidgets
    >>> has_ipywidgets() == ("VBox" in names)  # the star import then gives the ipywidgets names too
    True
    """
    return importlib.util.find_spec("ipywidgets") is not None


if has_ipywidgets():  # the book's star import gives these names beside the cleaner
    from ipywidgets import (Box, Button, Checkbox, Dropdown, FileUpload, HBox, Label, Layout, Output,  # noqa: F401
                            VBox, widgets)

    __all__ += list(_WIDGET_NAMES)


def _thumbnail_png(fn: str | os.PathLike, height: int, width: int) -> bytes:
    """The image file ``fn`` as pipekit decodes it to train and predict (:func:`~pipekit.vision.decode.decode_image`:
    the stored frame, EXIF orientation ignored, 16-bit pixels at their top 8 bits, alpha dropped) shrunk to fit
    ``height`` x ``width``, as PNG: the cleaner shows what the model sees."""
    from PIL import Image

    from pipekit.vision.decode import decode_image

    im = Image.fromarray(decode_image(fn))
    im.thumbnail((width, height))
    out = io.BytesIO()
    im.save(out, format="PNG")
    return out.getvalue()


class ImagesCleaner:
    """Image files as thumbnails, each with a choice: ``'<Keep>'`` (the default), ``'<Delete>'`` or one of ``opts``
    (a new label). ``set_fns(files)`` shows the first ``max_n`` of ``files``; ``values()`` are the choices,
    ``delete()`` the positions marked for deletion, ``change()`` (position, new label) pairs.

    >>> import pipekit.datasets as D
    >>> from pipekit.data import get_image_files
    >>> iw = ImagesCleaner(opts=("3", "7"), max_n=4)
    >>> iw.set_fns(sorted(get_image_files(D.path("mnist_tiny") / "valid" / "3")))
    >>> iw.mark(1, "<Delete>"); iw.mark(2, "7")
    >>> iw.delete(), iw.change()
    ([1], [(2, '7')])
    """

    def __init__(self, opts: Sequence[str] = (), height: int = 128, width: int = 256, max_n: int = 30):
        check("ImagesCleaner", height=(height, Interval(1, 4096, integer=True)),
              width=(width, Interval(1, 4096, integer=True)), max_n=(max_n, Interval(1, 10_000, integer=True)),
              opts=(opts, Is(lambda o: not isinstance(o, str) and all(isinstance(v, str) for v in o),
                             "a sequence of labels (strings), e.g. list(dls.y_block.vocab)")))
        self.opts = (KEEP, DELETE, *[o for o in opts if o not in (KEEP, DELETE)])
        self.height, self.width, self.max_n = height, width, max_n
        self.fns: list[Path] = []
        self.captions: list[str] = []
        self._values: list[str] = []
        self._dropdowns: list[Any] = []
        self.widget: Any = None
        if has_ipywidgets():
            from ipywidgets import Box

            self.widget = Box([], layout={"overflow": "scroll hidden", "flex_flow": "row", "display": "flex",
                                          "width": "100%"})

    def __repr__(self) -> str:
        marked = sum(v != KEEP for v in self.values())
        return f"{type(self).__name__}({len(self.fns)} images, {marked} marked, choices {list(self.opts)})"

    def set_fns(self, fns: Sequence[str | os.PathLike], captions: Sequence[str] | None = None) -> None:
        """Show the first ``max_n`` files of ``fns`` (each choice back to ``'<Keep>'``), each with its caption."""
        self.fns = [Path(f) for f in list(fns)[:self.max_n]]
        self.captions = [str(c) for c in captions][:len(self.fns)] if captions is not None else [""] * len(self.fns)
        self._values = [KEEP] * len(self.fns)
        self._dropdowns = []
        if self.widget is None:
            return
        from ipywidgets import VBox, widgets

        children = []
        for fn, caption in zip(self.fns, self.captions):
            dd = widgets.Dropdown(options=self.opts, value=KEEP, layout={"width": "max-content"})
            parts = [widgets.Image(value=_thumbnail_png(fn, self.height, self.width), format="png",
                                   layout={"height": f"{self.height}px", "width": "auto"})]
            parts += [widgets.Label(caption)] if caption else []
            children.append(VBox([*parts, dd], layout={"flex": "0 0 auto"}))
            self._dropdowns.append(dd)
        self.widget.children = children

    def values(self) -> list[str]:
        """Each shown image's choice, in the order of :attr:`fns`."""
        return [dd.value for dd in self._dropdowns] if self._dropdowns else list(self._values)

    def mark(self, i: int, choice: str) -> None:
        """Set image ``i``'s choice (``'<Keep>'``, ``'<Delete>'`` or a label), as its drop-down does."""
        if not self.fns:
            raise ParameterError("ImagesCleaner.mark: no images are shown; set_fns(files) first")
        check("ImagesCleaner.mark", i=(i, Interval(0, len(self.fns) - 1, integer=True)))
        if choice not in self.opts:
            raise ParameterError(f"ImagesCleaner.mark: choice {choice!r} is not one of {list(self.opts)}")
        if self._dropdowns:
            self._dropdowns[i].value = choice
        else:
            self._values[i] = choice

    def delete(self) -> list[int]:
        """The positions in :attr:`fns` marked ``'<Delete>'``."""
        return [i for i, v in enumerate(self.values()) if v == DELETE]

    def change(self) -> list[tuple[int, str]]:
        """(position in :attr:`fns`, new label) for each image given another label."""
        return [(i, v) for i, v in enumerate(self.values()) if v not in (KEEP, DELETE)]

    def _repr_html_(self) -> str:
        cells = []
        for i, (fn, caption, value) in enumerate(zip(self.fns, self.captions, self.values())):
            src = base64.b64encode(_thumbnail_png(fn, self.height, self.width)).decode()
            cells.append(f'<figure style="display:inline-block;margin:4px;text-align:center">'
                         f'<img src="data:image/png;base64,{src}" style="height:{self.height}px"/>'
                         f"<figcaption>{i}: {html.escape(fn.name)}<br/>{html.escape(caption)} "
                         f"<b>{html.escape(value)}</b></figcaption></figure>")
        hint = ("<p>Set a choice with <code>.mark(i, choice)</code>, one of "
                f"{html.escape(', '.join(self.opts))}; <code>pip install ipywidgets</code> gives drop-downs.</p>")
        return f'<div style="overflow-x:auto;white-space:nowrap">{"".join(cells)}</div>{hint}'

    def _ipython_display_(self) -> None:
        from IPython.display import HTML, display

        display(self.widget if self.widget is not None else HTML(self._repr_html_()))


def _items_labels_losses(learn: Learner, ds_idx: int) -> tuple[list[Path], list[str], np.ndarray]:
    """Every image of split ``ds_idx`` (0 training, 1 validation): its file, its label and its loss, in the split's
    order, read without augmentation. A label is text, as the cleaner's categories are (``str`` of the vocab's:
    a label 3 is ``'3'``, ``True`` is ``'True'``), whatever the labels' type."""
    dls: Any = learn.dls
    dl = dls[ds_idx].new(shuffle=False, drop_last=False)
    _, targs, losses = learn.get_preds(dl=dl, with_loss=True)
    vocab = list(classes_vocab(dls))
    labels = [str(vocab[int(t)]) for t in torch.as_tensor(targs).reshape(-1).tolist()]
    return [Path(f) for f in dl.items], labels, torch.as_tensor(losses).float().numpy()


def _check_image_classifier(learn: Learner) -> None:
    """Refuse a learner whose data is not image files with one label each, naming what it is."""
    from pipekit.vision.blocks import ImageBlock

    dls = learn.dls
    blocks, n_inp = list(getattr(dls, "blocks", None) or ()), getattr(dls, "n_inp", 1)
    vocab = classes_vocab(dls)
    y_block = getattr(dls, "y_block", None)
    single = (len(blocks) == n_inp + 1 and isinstance(vocab, (list, tuple)) and vocab
              and getattr(y_block, "loss_kind", None) == "cross_entropy")
    if not (blocks and isinstance(blocks[0], ImageBlock) and single):
        shown = ", ".join(type(b).__name__ for b in blocks) or type(dls).__name__
        raise ParameterError(f"ImageClassifierCleaner takes a learner of images with one label each (ImageBlock, "
                             f"CategoryBlock); this learner's data is {shown}")
    try:
        items = dls.train.items
        first = items[0] if len(items) else None
    except (AttributeError, TypeError):
        first = None
    if first is not None and not isinstance(first, (str, os.PathLike)):
        raise ParameterError("ImageClassifierCleaner shows image files, and this learner's items are "
                             f"{type(first).__name__} values: build the data from files (get_image_files) to clean it")


class ImageClassifierCleaner:
    """The book's cleaner: for one label and one split at a time, the images with the highest loss first, each with
    a choice to keep, delete or relabel it. ``category`` and ``split`` (``'Train'``/``'Valid'``) choose the view (the
    drop-downs do in a notebook; ``select(category, split)`` without one); :attr:`fns` are the view's files and
    ``delete()``/``change()`` refer to their positions, as in fastai. Switching the view resets the choices, so act
    on them before. ``**kwargs`` go to :class:`ImagesCleaner` (``max_n``, ``height``, ``width``). The categories are
    text whatever the labels' type (``get_y=lambda f: int(f.parent.name)`` gives ``'3'`` and ``'7'``), and so are the
    new labels ``change()`` gives, a folder's name.

    >>> import shutil, tempfile
    >>> from pathlib import Path
    >>> from torch import nn
    >>> import pipekit.datasets as D
    >>> from pipekit.learn import Learner
    >>> from pipekit.vision import ImageDataLoaders
    >>> from pipekit.vision.widgets import ImageClassifierCleaner
    >>> path = Path(tempfile.mkdtemp())   # a copy: the loop below deletes and moves files
    >>> for split in ("train", "valid"):
    ...     _ = shutil.copytree(D.path("mnist_tiny") / split, path / split)
    >>> dls = ImageDataLoaders.from_folder(path, img_cls="L", bs=64, seed=0)
    >>> learn = Learner(dls, nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 2)))
    >>> cleaner = ImageClassifierCleaner(learn, max_n=4)
    >>> cleaner.select("7", "Valid")      # in a notebook, the drop-downs
    >>> cleaner.mark(0, "<Delete>"); cleaner.mark(2, "3")
    >>> cleaner.delete(), cleaner.change()
    ([0], [(2, '3')])
    >>> gone, moved = cleaner.fns[0], cleaner.fns[2]
    >>> for idx in cleaner.delete(): cleaner.fns[idx].unlink()
    >>> for idx, cat in cleaner.change(): _ = shutil.move(str(cleaner.fns[idx]), path / "valid" / cat)
    >>> gone.exists(), (path / "valid" / "3" / moved.name).exists()
    (False, True)
    """

    def __init__(self, learn: Learner, **kwargs: Any):
        _check_image_classifier(learn)
        dls: Any = learn.dls
        # text whatever the labels' type (a label 3 is '3'), as _items_labels_losses reads each image's, and as a
        # relabelled file's new folder is named
        self.vocab = [str(v) for v in classes_vocab(dls)]
        self.iw = ImagesCleaner(self.vocab, **kwargs)
        self.info = (_items_labels_losses(learn, 0), _items_labels_losses(learn, 1))
        self.category, self.split = self.vocab[0], SPLITS[0]
        self.widget: Any = None
        self.dd_cats: Any = None
        self.dd_ds: Any = None
        self._muted = False
        if self.iw.widget is not None:
            from ipywidgets import Dropdown, VBox

            self.dd_cats = Dropdown(options=self.vocab, value=self.category)
            self.dd_ds = Dropdown(options=SPLITS, value=self.split)
            self.dd_cats.observe(self._on_change, "value")
            self.dd_ds.observe(self._on_change, "value")
            self.widget = VBox([self.dd_cats, self.dd_ds, self.iw.widget])
        self._show()

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.category!r}, {self.split!r}: {len(self.fns)} images shown, "
                f"{len(self.delete())} to delete, {len(self.change())} to relabel)")

    def _on_change(self, change: Any = None) -> None:
        if self._muted:
            return
        self.category, self.split = self.dd_cats.value, self.dd_ds.value
        self._show()

    def _show(self) -> None:
        fns, labels, losses = self.info[SPLITS.index(self.split)]
        # files deleted or moved since the learner read them are not shown (the book's loop acts between views)
        pos = [i for i, lbl in enumerate(labels) if lbl == self.category and fns[i].exists()]
        pos.sort(key=lambda i: -losses[i])
        self.iw.set_fns([fns[i] for i in pos], captions=[f"loss {losses[i]:.2f}" for i in pos])
        self.losses = [float(losses[i]) for i in pos[:len(self.iw.fns)]]

    def select(self, category: str | None = None, split: str | None = None) -> None:
        """Show the images labelled ``category`` in ``split`` (``'Train'`` or ``'Valid'``); the one not given stays.
        Choices made in the view shown are reset."""
        category = self.category if category is None else str(category)
        split = self.split if split is None else split
        if category not in self.vocab:
            raise ParameterError(f"ImageClassifierCleaner.select: category {category!r} is not one of {self.vocab}")
        if split not in SPLITS:
            raise ParameterError(f"ImageClassifierCleaner.select: split {split!r} is not one of {list(SPLITS)}")
        if self.widget is not None:  # the drop-downs follow, without each showing a view of its own
            self._muted = True
            try:
                self.dd_cats.value, self.dd_ds.value = category, split
            finally:
                self._muted = False
        self.category, self.split = category, split
        self._show()

    @property
    def fns(self) -> list[Path]:
        """The files shown, highest loss first."""
        return self.iw.fns

    def values(self) -> list[str]:
        return self.iw.values()

    def mark(self, i: int, choice: str) -> None:
        self.iw.mark(i, choice)

    def delete(self) -> list[int]:
        return self.iw.delete()

    def change(self) -> list[tuple[int, str]]:
        return self.iw.change()

    def _repr_html_(self) -> str:
        return (f"<p><b>{html.escape(self.category)}</b>, {self.split} (<code>.select(category, split)</code>; "
                f"categories {html.escape(', '.join(self.vocab))})</p>{self.iw._repr_html_()}")

    def _ipython_display_(self) -> None:
        from IPython.display import HTML, display

        display(self.widget if self.widget is not None else HTML(self._repr_html_()))
