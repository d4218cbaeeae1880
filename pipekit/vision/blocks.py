"""Image, mask and keypoint blocks for DataBlock.

A block turns a column of file paths (or point lists) into a Store once: images are decoded and
presized into the memory-mapped cache, masks likewise with nearest-neighbour resizing, keypoints are
moved through the same item transform and kept in -1..1 coordinates. Batch augmentation then moves
masks and points together with their image.

Example:
    >>> from functools import partial
    >>> import pipekit.datasets as D
    >>> from pipekit.data import CategoryBlock, DataBlock, GrandparentSplitter, get_image_files, parent_label
    >>> from pipekit.vision import ImageBlock
    >>> dblock = DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock),
    ...                    get_items=partial(get_image_files, folders=["train", "valid"]),
    ...                    get_y=parent_label, splitter=GrandparentSplitter())
    >>> dls = dblock.dataloaders(D.path("mnist_tiny"), bs=64)
    >>> x, y = dls.one_batch()
    >>> dls.vocab, tuple(x.shape), len(dls.train_ds), len(dls.valid_ds)
    (['3', '7'], (64, 1, 28, 28), 709, 699)
"""
from __future__ import annotations

import inspect
import io
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import polars as pl
import torch

from pipekit.core.errors import DataError, ParameterError, PipekitError, PipelineStepError, UnavailableAttributeError
from pipekit.core.validate import Is, Options, check
from pipekit.data.arrays import to_numpy
from pipekit.data.blocks import _LABELS, TransformBlock
from pipekit.data.plotting import draw_image, image_array, set_title
from pipekit.data.store import Store, TensorStore
from pipekit.data.transform import (FuncTransform, Transform, as_list, call_item_tfm, value_types,
                                    written_for_items)
from pipekit.data.vocab import CategoryMap
from pipekit.vision.augment import AugmentSettings
from pipekit.vision.cache import ImageStore, ImagesAsRead, LiveImageStore, build_image_store
from pipekit.vision.decode import decode_image, image_from_value
from pipekit.vision.geometry import size2, size_param
from pipekit.vision.presize import ItemTransform as PresizeTransform, RandomResizedCrop, find_item_transform
from pipekit.vision.sources import image_sources
from pipekit.vision.transforms import BatchAugment, IntToFloat, ResizedCropAugment

if TYPE_CHECKING:  # at run time imported where the loaders are built
    from pipekit.data.dataloaders import DataLoaders

IMAGE_CLASSES = ("RGB", "L")


def _plain(value: Any) -> Any:
    """``value`` with every ImageArray in it (also inside lists, tuples and dicts) as a plain ndarray view."""
    if isinstance(value, ImageArray):
        return value.view(np.ndarray)
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _from_pil(pil: Any) -> ImageArray:
    """A PIL image of mode ``'RGB'`` or ``'L'`` as an ImageArray (H, W, C), writable (np.asarray's is not)."""
    pixels = np.array(pil)
    return (pixels[:, :, None] if pixels.ndim == 2 else pixels).view(ImageArray)


class ImageArray(np.ndarray):
    """Decoded pixels, uint8 (H, W, C), that show themselves: a picture in a notebook, ``PILImage mode=RGB
    size=200x150`` as text. Everything that takes an array takes one (``learn.predict``, NumPy, torch, OpenCV,
    ``PIL.Image.fromarray``); arithmetic and NumPy functions on it give plain arrays. ``to_thumb(h, w)`` shrinks
    it to fit in h x w, ``show()`` draws it.

    It answers PIL's (and fastai's ``PILImage``'s) names as they do: ``size`` is ``(width, height)``, ``width``,
    ``height``, ``mode``, ``n_px``, ``aspect``, and ``resize((w, h))``, ``convert(mode)`` and ``transpose(method)``
    (one of PIL's, ``Image.FLIP_LEFT_RIGHT``) return new images. Every other method of ``PIL.Image.Image`` (``crop``,
    ``rotate``, ``filter``, ``point``, ``getpixel``, ``split``, ``save``, ...) is PIL's, run on :meth:`to_pil`: an
    image it gives back is an ImageArray (an ``'L'`` one a ``PILImageBW``), so the pixels are what PIL gives on the
    same image, and ``ImageOps`` functions made of these methods (``autocontrast``, ``equalize``, ``fit``,
    ``mirror``) take an ImageArray (those that need a ``PIL.Image.Image``, as ``ImageEnhance`` does, take
    ``img.to_pil()``). PIL's
    methods that change their image (``paste``, ``putpixel``, ``thumbnail``) write the new pixels back into the
    array, which keeps its size and mode (``to_thumb`` is the shrunk copy). An image in another mode than RGB or L
    (``quantize()``, ``convert('RGBA')``) is PIL's: ``img.to_pil()`` first.

    Of the names NumPy's arrays have too, ``resize``, ``size`` and ``transpose(method)`` are PIL's, as above;
    ``copy()`` and ``tobytes()`` give what both give (a copy of the image, its pixel bytes). NumPy's other names keep
    their NumPy meaning: ``shape`` is ``(H, W, C)`` (fastai's ``(H, W)`` is ``img.shape[:2]``), ``reshape`` and
    ``transpose(axes)`` move axes; ``np.array(img).size`` is the number of values.

    >>> import numpy as np
    >>> from pipekit.vision import PILImage
    >>> img = PILImage.create(np.zeros((40, 60), np.uint8))
    >>> img, img.size, img.shape, img.to_thumb(20).size, type(img / 255).__name__
    (PILImage mode=RGB size=60x40, (60, 40), (40, 60, 3), (20, 13), 'ndarray')
    >>> img.resize((30, 10)), img.convert("L")
    (PILImage mode=RGB size=30x10, PILImageBW mode=L size=60x40)
    >>> img.crop((0, 0, 20, 10)), img.convert("L").rotate(90, expand=True), img.getpixel((0, 0))
    (PILImage mode=RGB size=20x10, PILImageBW mode=L size=40x60, (0, 0, 0))
    """

    # PIL's methods that change the image they are called on rather than return a new one
    _PIL_IN_PLACE: ClassVar[frozenset[str]] = frozenset({
        "alpha_composite", "apply_transparency", "frombytes", "paste", "putalpha", "putdata", "putpalette",
        "putpixel", "thumbnail"})

    def __array_wrap__(self, array: Any, context: Any = None, return_scalar: bool = False) -> Any:
        out = np.asarray(array).view(np.ndarray)
        return out[()] if return_scalar else out

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        # NumPy's Python-level functions read ``a.size`` as the number of values (np.median, np.average and
        # np.unique failed on a PIL-style (width, height) size): they get the plain pixels, as arithmetic does.
        return func(*_plain(args), **_plain(kwargs))

    def _is_picture(self) -> bool:
        return self.dtype == np.uint8 and self.ndim == 3 and self.shape[2] in (1, 3) and min(self.shape[:2]) > 0

    def _picture(self, what: str) -> np.ndarray:
        """The pixels as a plain array; an ImageArray that is no longer a picture says what it is instead."""
        if not self._is_picture():
            raise AttributeError(f"ImageArray.{what}: this array of shape {self.shape} and dtype {self.dtype} is not a "
                                 "picture (uint8 (H, W, 1) or (H, W, 3)); PILImage.create(arr) makes one")
        return self.view(np.ndarray)

    @property
    def mode(self) -> str:
        """``'RGB'`` or ``'L'``, by the number of channels."""
        return "L" if self.ndim == 3 and self.shape[2] == 1 else "RGB"

    @property
    def size(self) -> tuple[int, int] | int:  # type: ignore[override]
        """``(width, height)`` in pixels, as PIL's ``Image.size`` (fastai's ``PILImage.size``); for an array that
        is not a picture (a channel ``img[:, :, 0]``, floats) NumPy's number of values."""
        if self._is_picture():
            return int(self.shape[1]), int(self.shape[0])
        return np.ndarray.size.__get__(self)  # type: ignore[attr-defined]

    @property
    def width(self) -> int:
        """Width in pixels (``shape[1]``)."""
        return int(self._picture("width").shape[1])

    @property
    def height(self) -> int:
        """Height in pixels (``shape[0]``)."""
        return int(self._picture("height").shape[0])

    @property
    def n_px(self) -> int:
        """Number of pixels, ``width * height`` (fastai's ``n_px``)."""
        return self.width * self.height

    @property
    def aspect(self) -> float:
        """``width / height`` (fastai's ``aspect``)."""
        return self.width / self.height

    def __repr__(self) -> str:
        if not self._is_picture():
            return repr(self.view(np.ndarray))
        return f"PILImage{'BW' if self.mode == 'L' else ''} mode={self.mode} size={self.shape[1]}x{self.shape[0]}"

    def __str__(self) -> str:  # NumPy's str reads .size as the number of values; print(img) is the repr, as PIL's
        return repr(self) if self._is_picture() else str(self.view(np.ndarray))

    def to_pil(self) -> Any:
        """The pixels as a PIL image."""
        from PIL import Image

        pixels = np.ascontiguousarray(self.view(np.ndarray))
        return Image.fromarray(pixels[:, :, 0] if self.mode == "L" else pixels)

    def _repr_png_(self) -> bytes | None:
        if not self._is_picture():
            return None
        buf = io.BytesIO()
        self.to_pil().save(buf, format="PNG")
        return buf.getvalue()

    def to_thumb(self, h: int, w: int | None = None) -> ImageArray:
        """The image shrunk (never enlarged) to fit in ``h`` x ``w`` (``w`` defaults to ``h``), its aspect kept."""
        self._picture("to_thumb")
        pil = self.to_pil()
        pil.thumbnail((w or h, h))
        return _from_pil(pil)

    def resize(self, size: Any, resample: int | None = None, box: Any = None,  # type: ignore[override]
               reducing_gap: float | None = None) -> ImageArray:
        """A new image of ``size`` = ``(width, height)``, resized by PIL as ``PIL.Image.resize`` (fastai's
        ``PILImage.resize``) does, with the same ``resample`` (bicubic by default), ``box`` and ``reducing_gap``.
        NumPy's in-place ``ndarray.resize`` is not available on an image: ``np.resize(np.array(img), shape)``."""
        self._picture("resize")
        if not (isinstance(size, (tuple, list)) and len(size) == 2):
            raise ParameterError(f"ImageArray.resize takes PIL's size (width, height), got {size!r}: "
                                 f"img.resize(({self.width}, {self.height})) keeps this one's size; NumPy's "
                                 "ndarray.resize is np.resize(np.array(img), new_shape)")
        return _from_pil(self.to_pil().resize(tuple(size), resample, box, reducing_gap))

    def convert(self, mode: str) -> ImageArray:
        """This image in ``mode`` (``'RGB'`` or ``'L'``), converted by PIL as ``PIL.Image.convert`` does (grey is
        PIL's ITU-R 601-2 luma, as fastai's ``img.convert('L')`` gives)."""
        self._picture("convert")
        if mode not in IMAGE_CLASSES:
            raise ParameterError(f"ImageArray.convert({mode!r}): an ImageArray holds {' or '.join(IMAGE_CLASSES)} "
                                 f"pixels; for PIL's other modes use img.to_pil().convert({mode!r})")
        return _from_pil(self.to_pil().convert(mode))

    def transpose(self, *axes: Any) -> Any:  # type: ignore[override]
        """Given one of PIL's methods (``Image.FLIP_LEFT_RIGHT``, ``Image.ROTATE_90``, ...), a new image transposed
        by PIL as ``PIL.Image.transpose`` (fastai's ``PILImage.transpose``) does: one whole number cannot be NumPy's
        axes of a picture, which has three. Otherwise NumPy's ``transpose``, moving axes.

        >>> import numpy as np
        >>> from pipekit.vision import PILImage
        >>> img = PILImage.create(np.arange(6, dtype=np.uint8).reshape(2, 3))
        >>> img.transpose(0)[:, :, 0].tolist(), img.transpose(2, 0, 1).shape
        ([[2, 1, 0], [5, 4, 3]], (3, 2, 3))
        """
        if len(axes) == 1 and isinstance(axes[0], int) and not isinstance(axes[0], bool) and self._is_picture():
            return _from_pil(self.to_pil().transpose(axes[0]))
        return np.ndarray.transpose(self, *axes)

    @staticmethod
    def _to_pil_values(value: Any) -> Any:
        """``value`` with an ImageArray (also in a tuple or list) as its PIL image, for PIL's methods
        (``paste(patch)``)."""
        if isinstance(value, ImageArray) and value._is_picture():
            return value.to_pil()
        if isinstance(value, (list, tuple)):
            return type(value)(ImageArray._to_pil_values(v) for v in value)
        return value

    @staticmethod
    def _pil_result(name: str, value: Any) -> Any:
        """What PIL's method ``name`` gave, its images (also in a tuple, as ``split()`` gives) as ImageArrays; an image
        in a mode an ImageArray does not hold is refused, saying to call the method on ``img.to_pil()``."""
        if isinstance(value, tuple):
            return tuple(ImageArray._pil_result(name, v) for v in value)
        if type(value).__module__.startswith("PIL.") and hasattr(value, "getbands"):  # a PIL image
            if value.mode not in IMAGE_CLASSES:
                raise ParameterError(f"ImageArray.{name} gave a {value.mode} image, but an ImageArray holds "
                                     f"{' or '.join(IMAGE_CLASSES)} pixels: img.to_pil().{name}(...) gives PIL's image")
            return _from_pil(value)
        return value

    def __getattr__(self, name: str) -> Any:
        # Reached only for names an ndarray does not have: those of PIL's Image (crop, rotate, filter, point, ...),
        # run on this image's PIL copy when called. Private names never are, so NumPy, pickle and IPython (which
        # asks for _repr_png_ and the like) see an array.
        from PIL import Image

        if name == "_ensure_mutable":  # what PIL's ImageDraw.Draw(img) asks a PIL image for
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}: ImageDraw draws on a PIL "
                                 "image; draw on pil = img.to_pil(), then PILImage.create(pil)")
        if name.startswith("_") or not (hasattr(Image.Image, name) or name in ("info", "palette")):
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        if name == "load":  # PIL's pixel access, of a PIL copy: writes through it would be lost
            raise UnavailableAttributeError(  # an AttributeError too: hasattr(img, "load") is False
                "ImageArray.load would give the pixel access of a PIL copy of the pixels, which writes through it "
                "would not reach: read and write the array itself (img[y, x] = (r, g, b), img.putpixel((x, y), "
                "value)), or call img.to_pil().load() on a PIL image")
        self._picture(name)
        member = getattr(Image.Image, name, None)
        if not callable(member):  # a property (im, readonly, format) or the instance's info and palette
            return getattr(self.to_pil(), name)

        def pil_method(*args: Any, **kwargs: Any) -> Any:
            pil = self.to_pil()  # made at the call: the pixels as they are then
            out = member(pil, *self._to_pil_values(args), **{k: self._to_pil_values(v) for k, v in kwargs.items()})
            if name in self._PIL_IN_PLACE:
                self._write_back(name, pil)
            return self._pil_result(name, out)

        pil_method.__name__, pil_method.__doc__ = name, member.__doc__
        return pil_method

    def _write_back(self, name: str, pil: Any) -> None:
        """The pixels of ``pil``, which PIL's method ``name`` changed in place, written into this array."""
        if pil.mode != self.mode or pil.size != (self.shape[1], self.shape[0]):
            fix = ("img.to_thumb(h, w) gives the shrunk image" if name == "thumbnail" else
                   f"img.to_pil().{name}(...) changes a PIL image instead")
            raise ParameterError(f"ImageArray.{name} would make this {self.mode} image of size "
                                 f"{self.shape[1]}x{self.shape[0]} a {pil.mode} image of size {pil.size[0]}x"
                                 f"{pil.size[1]}, but an array keeps its size and mode (RGB or L) in place: {fix}")
        if not self.flags.writeable:
            raise ParameterError(f"ImageArray.{name} changes the image in place, but these pixels are read-only: "
                                 f"img = img.copy() first, then img.{name}(...)")
        self[...] = np.asarray(pil).reshape(self.shape)

    def show(self, ax: Any = None, figsize: tuple[float, float] | None = None, title: str | None = None) -> Any:
        """Draw the image (see :func:`pipekit.vision.show_image`); returns the axes."""
        from pipekit.data.plotting import show_image

        return show_image(self.view(np.ndarray), ax=ax, figsize=figsize, title=title)


class _ImageKind(type):
    """The class of :class:`PILImage` and :class:`PILImageBW`: each stands for an image mode (``PILImage.mode`` is
    ``'RGB'``, ``PILImageBW.mode`` is ``'L'``) and equals that mode's name, so ``ImageBlock(cls=PILImageBW)`` and
    ``img_cls=PILImageBW`` read as ``'L'``. ``isinstance`` asks the image: the pixels ``PILImage.create`` gives (an
    :class:`ImageArray`) are a ``PILImage``, grey ones a ``PILImageBW`` too (as in fastai, where ``PILImageBW`` is a
    ``PILImage``)."""

    mode: str

    def __instancecheck__(cls, obj: Any) -> bool:
        if not (isinstance(obj, ImageArray) and obj._is_picture()):
            return False
        return cls.mode == "RGB" or obj.mode == cls.mode  # a grey image is a PILImage too

    def __eq__(cls, other: object) -> bool:
        if isinstance(other, str):
            return other == cls.mode
        return cls is other

    def __hash__(cls) -> int:
        return hash(cls.mode)


class PILImage(metaclass=_ImageKind):
    """A colour image under the name fastai users know. ``PILImage.create(item)`` opens an image (a file path, its
    bytes or a file object, a PIL image or an array) as the uint8 (H, W, 3) pixels ``learn.predict`` takes, an
    :class:`ImageArray` that shows itself in a notebook and answers PIL's names (``size``, ``resize``, ``convert``).
    ``ImageBlock(cls=PILImage)`` is ``ImageBlock(cls="RGB")``.

    What ``create`` gives is a ``PILImage``: ``isinstance`` works on it, and a Transform whose ``encodes`` annotates
    its value ``x: PILImage`` applies to the images of an item and leaves its other values (a label) as they are.

    >>> import numpy as np
    >>> from pipekit.vision import PILImage, PILImageBW
    >>> img = PILImage.create(np.zeros((4, 6), np.uint8))
    >>> img.shape, isinstance(img, PILImage), isinstance(img, PILImageBW), PILImage.mode
    ((4, 6, 3), True, False, 'RGB')
    """

    mode = "RGB"

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        """Refused, saying what to call: ``PILImage.create(item)`` opens an image."""
        raise ParameterError(f"{cls.__name__} is not built directly: {cls.__name__}.create(path) opens an image "
                             "(a path, bytes, a file object, a PIL image or an array)")

    @classmethod
    def create(cls, item: Any) -> ImageArray:
        """The image ``item`` (a file path, its bytes or a binary file object, a PIL image or an array) decoded in
        this class's mode (``'RGB'``, or ``'L'`` for :class:`PILImageBW`) as uint8 (H, W, C) pixels."""
        if isinstance(item, (str, os.PathLike)):
            return decode_image(item, mode=cls.mode).view(ImageArray)
        return np.asarray(image_from_value(item, mode=cls.mode)).view(ImageArray)


class PILImageBW(PILImage):
    """A grey image under the name fastai users know: ``PILImageBW.create(item)`` opens an image as uint8
    (H, W, 1) pixels (PIL's ITU-R 601-2 luma of a colour file), ``ImageBlock(cls=PILImageBW)`` is
    ``ImageBlock(cls="L")``. What ``create`` gives is a ``PILImageBW`` (and a :class:`PILImage`, as in fastai).

    >>> import numpy as np
    >>> from pipekit.vision import PILImage, PILImageBW
    >>> img = PILImageBW.create(np.zeros((4, 6), np.uint8))
    >>> img.shape, isinstance(img, PILImageBW), isinstance(img, PILImage), PILImageBW == "L"
    ((4, 6, 1), True, True, True)
    """

    mode = "L"


class MaskArray(np.ndarray):
    """A segmentation mask as :class:`PILMask` opens it: one class index per pixel, uint8 (H, W) (what fastai's
    ``np.array(PILMask.create(fn))`` gives). ``show()`` draws it as ``MaskBlock`` draws a mask; arithmetic and
    NumPy functions on it give plain arrays."""

    def __array_wrap__(self, array: Any, context: Any = None, return_scalar: bool = False) -> Any:
        out = np.asarray(array).view(np.ndarray)
        return out[()] if return_scalar else out

    def __repr__(self) -> str:
        if self.ndim != 2:
            return repr(self.view(np.ndarray))
        return f"PILMask size={self.shape[1]}x{self.shape[0]}"

    def __str__(self) -> str:
        """What ``print(mask)`` shows: the repr (its size), as for an image; ``np.asarray(mask)`` prints the codes."""
        return repr(self)

    def _repr_png_(self) -> bytes | None:
        """The mask as a notebook shows it: a PNG of the same size with each class in the colour :meth:`show` draws it
        (matplotlib's ``tab20`` palette spread over the codes ``0..max``, opaque); None (the repr is shown instead)
        for a value that is not one (H, W) mask.

        >>> import numpy as np
        >>> png = PILMask.create(np.array([[0, 1], [2, 1]], np.uint8))._repr_png_()
        >>> png[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
        True
        """
        if self.ndim != 2 or self.size == 0 or self.dtype.kind not in "iub":
            return None
        from matplotlib import colormaps
        from PIL import Image

        codes = np.asarray(self).astype(np.int64)
        top = int(codes.max())
        if codes.min() < 0 or top > 255:
            return None
        palette = (colormaps["tab20"](np.arange(256) / max(1, top))[:, :3] * 255).round().astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(palette[codes]).save(buf, format="PNG")
        return buf.getvalue()

    def show(self, ax: Any = None, figsize: tuple[float, float] | None = None, title: str | None = None,
             ctx: Any = None) -> Any:
        """Draw the mask, a colour per class (on ``ax``, fastai's ``ctx``, when given); returns the axes."""
        from pipekit.data.plotting import get_pyplot, savefig_or_show

        ax = ctx if ax is None else ax
        own = ax is None
        if own:
            fig, ax = get_pyplot().subplots(figsize=figsize or (3, 3))
        MaskBlock().show(ax, self.view(np.ndarray), title)
        if own:
            savefig_or_show(fig, name="mask")
        return ax


class _ArrayKind(type):
    """The class of fastai's names for values pipekit holds as NumPy arrays (:class:`PILMask`,
    :class:`TensorPoint`, ``TensorBBox``): ``isinstance`` asks whether a value is such an array (``array_type``),
    so a mask ``PILMask.create`` opened is a ``PILMask`` and the points ``PointBlock`` decodes are ``TensorPoint``."""

    array_type: type

    def __instancecheck__(cls, obj: Any) -> bool:
        return isinstance(obj, cls.array_type)


class PILMask(metaclass=_ArrayKind):
    """A segmentation mask under the name fastai users know: ``PILMask.create(item)`` opens a mask as ``MaskBlock``
    reads one (a file path, its bytes or a file object, a PIL image or an array; a grey or palette PNG gives its
    class indices) as a uint8 (H, W) :class:`MaskArray`, which ``isinstance(m, PILMask)`` recognises.

    >>> import numpy as np
    >>> from pipekit.vision import PILMask
    >>> m = PILMask.create(np.array([[0, 1], [2, 1]], np.uint8))
    >>> m, m.shape, isinstance(m, PILMask), np.unique(m).tolist()
    (PILMask size=2x2, (2, 2), True, [0, 1, 2])
    """

    array_type = MaskArray

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        """Refused, saying what to call: ``PILMask.create(item)`` opens a mask."""
        raise ParameterError("PILMask is not built directly: PILMask.create(path) opens a mask (a path, bytes, a file "
                             "object, a PIL image or an array)")

    @classmethod
    def create(cls, item: Any) -> MaskArray:
        """The mask ``item`` (a file path, its bytes or a binary file object, a PIL image or an array) as its class
        indices, uint8 (H, W)."""
        if isinstance(item, (str, os.PathLike)):
            pixels = decode_image(item, mode="mask")
        else:
            pixels = image_from_value(item, mode="mask")
        return np.ascontiguousarray(np.asarray(pixels)[:, :, 0]).view(MaskArray)


class TensorImage(torch.Tensor):
    """An image as a (C, H, W) tensor that shows itself, as fastai's ``TensorImage`` (chapter 18's
    ``x_dec = TensorImage(dls.train.decode((x,))[0][0]); x_dec.show(ctx=ax)``): a tensor is taken as it is, pixels
    as an array (what ``decode`` gives, ``(H, W, C)``) are moved to (C, H, W). ``show(ctx=ax, **imshow)`` draws it
    as :func:`~pipekit.vision.show_image` does (on ``ctx``, matplotlib axes, when given). Arithmetic on it gives
    tensors of the same class.

    >>> import numpy as np
    >>> from pipekit.vision import TensorImage
    >>> x = TensorImage(np.zeros((4, 6, 3), np.float32)); x.shape, type(x * 2).__name__
    (torch.Size([3, 4, 6]), 'TensorImage')
    """

    @staticmethod
    def __new__(cls, x: Any) -> TensorImage:  # type: ignore[misc]
        if isinstance(x, torch.Tensor):
            t = x
        else:  # pixels as arrays come (H, W, C), as pipekit decodes them: fastai's images are (C, H, W) tensors
            arr = np.asarray(x)
            t = torch.as_tensor(arr.view(np.ndarray))
            if t.ndim == 3 and t.shape[-1] in (1, 3, 4):
                t = t.permute(2, 0, 1)
        return t.as_subclass(cls)

    def show(self, ctx: Any = None, **kwargs: Any) -> Any:
        """Draw the image (on ``ctx`` when given); returns the axes."""
        from pipekit.data.plotting import show_image

        return show_image(self.as_subclass(torch.Tensor), ctx=ctx, **kwargs)


def image2tensor(img: Any) -> Any:
    """An image's pixels as a ``(C, H, W)`` uint8 tensor, as fastai's ``image2tensor`` (chapter 13's
    ``im = image2tensor(Image.open(path))``): a PIL image keeps its mode, a file is read as it is stored
    (grey stays one channel), an array ``(H, W)`` or ``(H, W, C)`` is taken as it is.

    >>> import numpy as np
    >>> from pipekit.vision import PILImage, image2tensor
    >>> image2tensor(np.zeros((4, 6), np.uint8)).shape, image2tensor(PILImage.create(np.zeros((4, 6), np.uint8))).shape
    (torch.Size([1, 4, 6]), torch.Size([3, 4, 6]))
    """
    import torch

    if isinstance(img, (str, os.PathLike)):
        from PIL import Image

        with Image.open(img) as opened:
            pixels = np.array(opened)
    elif isinstance(img, torch.Tensor):
        pixels = img.detach().cpu().numpy()
    else:
        pixels = np.array(img)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if pixels.ndim != 3:
        raise ParameterError(f"image2tensor: an image is (H, W) or (H, W, C) pixels, got an array of shape "
                             f"{pixels.shape}")
    return torch.from_numpy(np.ascontiguousarray(pixels.view(np.ndarray))).permute(2, 0, 1)


def _typed_types(t: Transform) -> tuple[type, ...] | None:
    """The classes a user's item transform annotates its value with (``encodes(self, x: PILImage)``, a function
    ``Transform(f)`` with ``x: PILImage``), None when it is not typed or is one of pipekit's own."""
    if not written_for_items(t):
        return None
    if isinstance(t, FuncTransform):
        return t._types[0]
    enc = type(t).encode
    fn = inspect.unwrap(enc)  # an annotated ``encodes`` is wrapped to dispatch on its value's type
    return value_types(fn, f"{type(t).__name__}.encodes", skip_self=True) if fn is not enc else None


_KINDS = {"RGB": "colour image", "L": "grey image", "mask": "mask"}


def _reaches_pixels(types: tuple[type, ...], sample: np.ndarray) -> str | None:
    """How a user's item transform typed for ``types`` gets a decoded image like ``sample``: ``"pil"`` for one typed
    ``PIL.Image.Image`` (fastai's images and masks are PIL images: it gets one), ``"array"`` for one typed for
    pipekit's kinds (``PILImage``, ``PILImageBW``, ``PILMask``) or ``object``, None for the others. A transform typed
    ``np.ndarray`` or ``Tensor`` never reaches an image, as in fastai, whose item transforms see PIL images."""
    from PIL import Image

    found = None
    for ty in types:
        if ty is object or isinstance(ty, (_ImageKind, _ArrayKind)):
            found = found or ("array" if isinstance(sample, ty) else None)
        elif isinstance(ty, type) and issubclass(ty, Image.Image):
            found = found or "pil"
    return found


class _UserThenPresize(PresizeTransform):
    """The user's item transforms that reach images (see :meth:`_PixelBlock.user_item_tfms`) on each decoded image,
    with the presize transform (if any) among them where fastai's item pipeline has its ``Resize``: ``before`` (the
    user's of a lower ``order``) on the decoded image, then the presize transform, then ``after`` (those of a higher
    ``order``) on the image it makes. What each returns (pixels, a PIL image) is the image the next one gets. A
    :class:`~pipekit.vision.cache.LiveImageStore` runs them each time an image is fetched (:meth:`apply_user` of
    ``before``, :attr:`presize`, :meth:`apply_user` of ``after``), those of the loader's split only."""

    def __init__(self, before: Sequence[Transform], presize: PresizeTransform | None, mode: str,
                 after: Sequence[Transform] = ()):
        from PIL import Image

        self.before, self.after, self.presize, self.mode = list(before), list(after), presize, mode
        self.user = self.before + self.after
        # per transform, worked out once rather than per image (6x the time of applying a small one): whether it
        # gets a PIL image (typed PIL.Image.Image) rather than pixels, and the name an error gives it
        plain = np.zeros((1, 1, 1), np.uint8)  # the decoded pixels apply gets: no pipekit kind
        steps = {id(t): (t, (types := _typed_types(t)) is not None and _reaches_pixels(types, plain) == "pil",
                         t.enc.__name__ if isinstance(t, FuncTransform) and hasattr(t.enc, "__name__")
                         else type(t).__name__) for t in self.user}
        self._before, self._after = ([steps[id(t)] for t in ts] for ts in (self.before, self.after))
        self._fromarray = Image.fromarray

    def apply(self, img: np.ndarray, nearest: bool = False) -> np.ndarray:
        """The transforms of validation and new items (split 1), the presize transform among them."""
        img = self.apply_user(img, 1)
        if self.presize is not None:
            img = self.presize.apply(img, nearest=nearest)
        return self.apply_user(img, 1, after=True)

    def apply_user(self, img: np.ndarray, split_idx: int, after: bool = False) -> np.ndarray:
        """The user's transforms that run on split ``split_idx`` (0 training, 1 validation and new items; see
        :func:`~pipekit.data.transform.runs_on_split`) on one image, each after its ``before_call(image,
        split_idx=...)`` when it has one (a RandTransform whose ``do`` is then False is skipped), as fastai calls
        them (see :func:`~pipekit.data.transform.call_item_tfm`): those of a lower ``order`` than the presize
        transform on the decoded image, or, ``after=True``, those of a higher ``order`` on the image it makes."""
        return self._run(self._after if after else self._before, img, split_idx)

    def _run(self, steps: list[tuple[Transform, bool, str]], img: np.ndarray, split_idx: int) -> np.ndarray:
        for t, wants_pil, name in steps:
            if wants_pil:
                value: Any = self._fromarray(np.ascontiguousarray(img[:, :, 0] if img.shape[2] == 1 else img))
            else:
                value = (np.ascontiguousarray(img[:, :, 0]).view(MaskArray) if self.mode == "mask"
                         else np.ascontiguousarray(img).view(ImageArray))
            try:
                out = call_item_tfm(t, value, split_idx)  # ``value`` itself when skipped
            except PipekitError:
                raise
            except Exception as e:  # most often a transform written for the labels, typed for nothing
                hint = ("; an item transform whose value is typed for nothing runs on every value of an item, its "
                        "images too, as in fastai: annotate the value with the type it is for (encodes(self, x: str)) "
                        "or give other values back as they are (return x if not isinstance(x, str))"
                        if _typed_types(t) is None else "")
                raise PipelineStepError(f"item transform {name} failed on a {_KINDS.get(self.mode, self.mode)} of "
                                        f"shape {img.shape} ({type(e).__name__}: {e}){hint}") from e
            if hasattr(out, "getbands"):  # a PIL image
                out = np.asarray(out)
            arr = np.asarray(out)
            arr = arr[:, :, None] if arr.ndim == 2 else arr
            if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != img.shape[2]:
                make = {"RGB": "PILImage.create(arr)", "L": "PILImageBW.create(arr)"}.get(self.mode,
                                                                                      "PILMask.create(arr)")
                other = ("; the block's images are grey or colour as its ImageBlock(cls=...) says: give it "
                         "cls=PILImage for colour, cls=PILImageBW for grey, or return x.convert('"
                         f"{'L' if self.mode == 'L' else 'RGB'}')" if self.mode != "mask" and arr.dtype == np.uint8
                         and arr.ndim == 3 and arr.shape[2] != img.shape[2] else "")
                raise DataError(f"item transform {name} gave {arr.dtype} pixels of shape {arr.shape} for "
                                f"a {self.mode} image of shape {img.shape}; an item transform on images returns "
                                f"uint8 pixels with {img.shape[2]} channel(s) ({make} makes one){other}")
            img = np.ascontiguousarray(arr.view(np.ndarray))
        return img

    def cache_key(self) -> str:
        # never a disk-cache key: a repr cannot tell the user's code apart from an edited version of it, so these
        # images are never cached (see _PixelBlock._store); this process's objects key them
        return f"user@{id(self)}:" + ",".join(f"{type(t).__qualname__}@{id(t)}" for t in self.user) + "|" + (
            self.presize.cache_key() if self.presize is not None else "none") + f"|{len(self.before)} before it"


class _PixelBlock(TransformBlock):
    mode = "RGB"
    local_params = ("cache_dir",)  # where this machine caches decoded images

    def __init__(self, cache_dir: str | os.PathLike | bool | None = None):
        self.cache_dir = cache_dir

    def block_batch_tfms(self) -> list[Any]:
        return [IntToFloat()]

    def user_item_tfms(self) -> list[Transform]:
        """The user's item transforms that reach this block's values: those typed for them (``encodes(self,
        x: PILImage)`` on an image block, ``x: PILMask`` on a mask block) and those typed for nothing (a plain
        ``encodes(self, x)``, ``Transform(f)`` or a function in ``item_tfms``), which fastai runs on every value of
        an item, its image included. They run on each decoded image (a :class:`PILImage`, or a :class:`PILMask`)
        each time the image is fetched (as fastai runs item transforms), those of the loader's split only (a
        :class:`~pipekit.data.RandTransform` on training images only), by their ``order`` as fastai sorts item
        transforms, the presize transform among them with fastai's (``Resize`` and ``RandomResizedCrop`` 1,
        ``CropPad`` 0): one of a lower ``order`` (a Transform's is 0) on the decoded image before the presize
        transform, one of a higher ``order`` on the image it makes, and one of the same where ``item_tfms`` lists
        it (see :meth:`user_item_steps`)."""
        sample: np.ndarray = (np.zeros((1, 1), np.uint8).view(MaskArray) if self.mode == "mask" else
                              np.zeros((1, 1, 3 if self.mode == "RGB" else 1), np.uint8).view(ImageArray))
        out = []
        for t in getattr(self, "tfms_", []):
            if isinstance(t, PresizeTransform) or not written_for_items(t):
                continue  # pipekit's own transforms (the presize one, a block's column transforms)
            types = _typed_types(t)
            if types is None or _reaches_pixels(types, sample) is not None:
                out.append(t)
        return out

    def user_item_steps(self, user: list[Transform] | None = None) -> tuple[list[Transform], list[Transform]]:
        """:meth:`user_item_tfms` (``user``, when already known) as the two groups they run in: those before the
        presize transform (all of them when there is none) and those after it, each in ``order`` (the transforms
        are sorted by it, as fastai's item pipeline is).

        >>> from pipekit.data import Transform
        >>> from pipekit.vision import ImageBlock, Resize
        >>> def first(x): return x
        >>> block = ImageBlock()
        >>> _ = block.fit_tfms([Transform(first, order=2), Resize(8), Transform(first)])
        >>> [[t.order for t in group] for group in block.user_item_steps()]
        [[0], [2]]
        """
        user = self.user_item_tfms() if user is None else user
        tfms = getattr(self, "tfms_", [])
        at = next((i for i, t in enumerate(tfms) if isinstance(t, PresizeTransform)), len(tfms))
        after = {id(t) for t in tfms[at + 1:]}
        return [t for t in user if id(t) not in after], [t for t in user if id(t) in after]

    def _store(self, raw: pl.Series, what: str, small_in_memory: bool = False,
               user: list[Transform] | None = None) -> ImageStore | LiveImageStore:
        """The decoded (and presized) images of ``raw``; ``user``: :meth:`user_item_tfms`, when already known.
        Images through a user's transforms are a :class:`~pipekit.vision.cache.LiveImageStore`, which runs them each
        time an image is fetched, the presize transform where their ``order`` puts it (see :meth:`user_item_steps`),
        and is never cached: the cache cannot key a user's code. Those following a ``RandomResizedCrop`` get its
        presized image, whose training crop is drawn per batch after the item transforms: one changing the size is
        refused there, naming the fix (see :class:`~pipekit.vision.cache.LiveImageStore`)."""
        tfm: PresizeTransform | None = find_item_transform(self.tfms_)
        user = self.user_item_tfms() if user is None else user
        sources = image_sources(raw, type(self).__name__)
        if user:
            before, after = self.user_item_steps(user)
            return LiveImageStore(sources, _UserThenPresize(before, tfm, self.mode, after), mode=self.mode,
                                  check=self.pixel_check(), description=what.replace("presizing", "reading"))
        # a handful of new files (predict, a small test set) is decoded in memory rather than cached (and so are
        # images through an item transform of the user's class: see build_image_store)
        in_memory = self.cache_dir is False or (small_in_memory and len(raw) <= 256)
        return build_image_store(sources, tfm, mode=self.mode, cache_dir=False if in_memory else self.cache_dir,
                                 description=what)

    def setup(self, raw: pl.Series, train_idx: np.ndarray, item_tfms: Sequence[Transform] = (),
              trace: Any = None) -> Store:
        self.fit_tfms(item_tfms)
        tfm = find_item_transform(self.tfms_)
        user = self.user_item_tfms()
        store = self._store(raw, f"presizing {len(raw)} {type(self).__name__[:-5].lower()}s", user=user)
        if trace is not None:
            before, after = self.user_item_steps(user)
            steps = [repr(t) for t in before] + ([repr(tfm)] if tfm is not None else []) + [repr(t) for t in after]
            trace(" + ".join(["decode", *steps]), store)
        self.check_store(store, raw)
        self.batch_tfms_ = self.block_batch_tfms()
        return store

    def encode_new(self, raw: pl.Series) -> Store:
        self.check_is_fitted("setup (build the data)")
        store = self._store(raw, f"presizing {len(raw)} new files", small_in_memory=True)
        self.check_store(store, raw)
        return store

    def check_store(self, store: ImageStore | ImagesAsRead | LiveImageStore, raw: pl.Series) -> None:
        """Hook for blocks that validate pixel values (masks)."""

    def pixel_check(self) -> Callable[[Any, np.ndarray], None] | None:
        """For images made each time they are fetched (a :class:`~pipekit.vision.cache.LiveImageStore`): a function
        ``check(source, pixels)`` raising for an image this block cannot take, or None (the default). A mask block
        checks its values against its codes."""
        return None


class ImageBlock(_PixelBlock):
    """Images from files, decoded once into the presize cache; ``cls`` is ``'RGB'`` or ``'L'`` (grey), also
    named ``PILImage`` and ``PILImageBW``.

    The item transform (``Resize``, ``CropPad`` or ``RandomResizedCrop``; needed when the files differ
    in size) sets the cached size. ``RandomResizedCrop`` caches the whole image and adds the per-epoch random
    crop (and the validation centre crop) as a batch plan.

    >>> from pipekit.vision import ImageBlock
    >>> ImageBlock(cls="L").geometry
    'image'
    """

    geometry = "image"

    def __init__(self, cls: str | type = "RGB", cache_dir: str | os.PathLike | bool | None = None):
        check("ImageBlock", cls=(cls, Options(*IMAGE_CLASSES)))
        super().__init__(cache_dir)
        self.cls = cls.mode if isinstance(cls, _ImageKind) else str(cls)  # kept (and exported) as the mode's name

    @property
    def mode(self) -> str:  # type: ignore[override]
        return self.cls

    def block_batch_tfms(self) -> list[Any]:
        tfm = find_item_transform(self.tfms_)
        if isinstance(tfm, RandomResizedCrop) and tfm.whole_image:
            # the crop is drawn per batch from the whole image, which the cache holds
            return [ResizedCropAugment(tfm.size, tfm.min_scale, tfm.max_scale, tfm.ratio), IntToFloat()]
        if isinstance(tfm, RandomResizedCrop):  # whole_image=False: drawn within the cached centred crop
            return [BatchAugment(AugmentSettings(size=tfm.size, min_scale=tfm.min_scale, ratio=(tfm.ratio[0], tfm.ratio[1]),
                                                 do_flip=False,
                                                 max_rotate=0.0, max_zoom=1.0, max_warp=0.0, max_lighting=0.0)),
                    IntToFloat()]
        return [IntToFloat()]

    def decode(self, value: Any, split_idx: int | None = 1) -> np.ndarray:
        return image_array(value)

    def show(self, ax: Any, value: Any, title: str | None = None) -> None:
        draw_image(ax, value, title)


class MaskBlock(_PixelBlock):
    """Segmentation masks (one class index per pixel, grey or palette PNG) for ``codes`` classes. As a target, its
    default loss is cross-entropy per pixel over the model's channel axis (``CrossEntropyLossFlat(axis=1)`` on
    ``(bs, n_classes, h, w)`` outputs), as ``unet_learner`` uses.

    >>> from pipekit.vision import MaskBlock
    >>> MaskBlock(codes=["road", "sky"]).c, MaskBlock().loss_kind
    (2, 'pixel_cross_entropy')
    """

    geometry, loss_kind, draws_on_input = "mask", "pixel_cross_entropy", True
    mode = "mask"

    def __init__(self, codes: Sequence[str] | None = None, cache_dir: str | os.PathLike | bool | None = None):
        super().__init__(cache_dir)
        if codes is not None and not isinstance(codes, (str, bytes)) and hasattr(codes, "__iter__"):
            # names read with np.loadtxt are NumPy text; a mask value's name is then checked as a learned vocab_ is
            # (a name twice would make o2i give one index for both, a mix of types names no class reliably)
            codes = [str(c) if isinstance(c, str) else c for c in codes]
            check("MaskBlock", codes=(codes, _LABELS))
        check("MaskBlock", codes=(codes, Is(lambda c: c is None or len(c) > 0, "None or the class names, one per "
                                                                          "mask value")))
        self.codes = [str(c) for c in codes] if codes is not None else None

    @property
    def vocab(self) -> list | None:
        """The codes as a :class:`~pipekit.data.vocab.CategoryMap`: ``dls.vocab[mask_pred]`` names a pixel's class
        (``dls.vocab[pred[0, y, x]]``), ``dls.vocab.o2i['Road']`` is a class's index."""
        return CategoryMap(self.codes) if self.codes is not None else None

    @property
    def c(self) -> int | None:
        return len(self.codes) if self.codes is not None else None

    def pixel_check(self) -> Callable[[Any, np.ndarray], None] | None:
        if self.codes is None:
            return None
        n_codes = len(self.codes)

        def check(source: Any, pixels: np.ndarray) -> None:
            top = int(pixels.max()) if pixels.size else 0
            if top >= n_codes:
                raise DataError(f"{source}: mask value {top} but only {n_codes} codes were given; give all class "
                                "names in codes")
        return check

    def check_store(self, store: ImageStore | ImagesAsRead | LiveImageStore, raw: pl.Series) -> None:
        if self.codes is None or not isinstance(store, (ImageStore, ImagesAsRead)):
            return  # a LiveImageStore checks each mask it makes, at build and as fetched (pixel_check)
        # each mask's largest value as decoded, before the item transform: a resize or crop may drop a patch
        # of an out-of-range value from the stored pixels (those are read only where the store did not record it;
        # DataBlock.summary's store decodes every mask for it)
        maxes = store.value_max
        if maxes is None and isinstance(store, ImageStore):
            maxes = store.pixels.reshape(len(store), -1).max(axis=1)
        if maxes is None:
            return
        bad = np.flatnonzero(maxes >= len(self.codes))
        if bad.size:
            i = int(bad[0])
            raise DataError(f"{image_sources(raw, 'MaskBlock')[i]}: mask value {int(maxes[i])} but only "
                             f"{len(self.codes)} codes were given ({bad.size} mask(s) affected); "
                             "give all class names in codes")

    def decode(self, value: Any, split_idx: int | None = 1) -> np.ndarray:
        return to_numpy(value).astype(np.int64)

    def show(self, ax: Any, value: Any, title: str | None = None) -> None:
        m = self.decode(value)
        n = self.c or int(m.max()) + 1
        ax.imshow(m, cmap="tab20", alpha=0.5, vmin=0, vmax=max(1, n - 1), interpolation="nearest")
        ax.axis("off")
        set_title(ax, title)


def coord_rows_problem(arr: np.ndarray, width: int, rows: str) -> str | None:
    """What is wrong with ``arr`` as rows of ``width`` coordinates (``rows``: how they are written, ``[[x, y], ...]``),
    or None when nothing is: the one rule of :class:`TensorPoint`, ``TensorBBox`` and the blocks' getter values.

    >>> import numpy as np
    >>> from pipekit.vision.blocks import coord_rows_problem
    >>> coord_rows_problem(np.array([41.9, 55.3, 1.0]), 2, "[[x, y], ...]")
    '3 value(s) of shape (3,) ([41.9, 55.3, 1.0]), which are not rows of 2 numbers (2 per point): give [[x, y], ...], or [x, y] for one'
    """
    if arr.size % width == 0:
        return None
    shown = str(np.round(arr.reshape(-1)[:8], 4).tolist())[:-1] + (", ...]" if arr.size > 8 else "]")
    one = rows[1:rows.index("]") + 1]
    return (f"{arr.size} value(s) of shape {arr.shape} ({shown}), which are not rows of {width} numbers ({width} per "
            f"{'point' if width == 2 else 'box'}): give {rows}, or {one} for one")


class CoordStore(TensorStore):
    """Coordinates as a coordinate block stores them: ``data``, in -1..1 of the item-transformed image, which batches
    are gathered from (the model trains on those), and ``pixels``, the getter's values in pixels of the source image
    (padded as ``data`` is), which an item of the data set is (``dls.valid_ds[0][1]``), as fastai's items hold what
    the getter gave.

    >>> import numpy as np
    >>> from pipekit.vision.blocks import CoordStore
    >>> CoordStore(np.zeros((1, 1, 2), np.float32), np.array([[[64.0, 32.0]]])).item(0).tolist()
    [[64.0, 32.0]]
    """

    def __init__(self, data: np.ndarray | torch.Tensor, pixels: np.ndarray):
        super().__init__(data)
        self.pixels = torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.float32))

    def item(self, i: int) -> torch.Tensor:
        return self.pixels[i]


class CoordBlock(TransformBlock):
    """Base of the blocks of coordinates in source-image pixels (points, boxes): they go through the image's
    item transform and are stored in -1..1, the frame augmentation moves them in, beside the getter's pixels
    (:class:`CoordStore`). A batch holds them in -1..1 (what the model trains on), a data set's item in the getter's
    pixels, and ``decode_batch`` gives them in pixels of the decoded image of their item (:meth:`decode_on_image`),
    as fastai's.

    The source size of each item comes with its value as ``{key: coords, "size": [h, w]}``, or else from the
    item's decoded image (``source_sizes``, which a DataBlock with an image block gives, as fastai reads it off
    the image), or else from ``img_size`` (h, w) when all images share one. What ``setup`` learns: ``tfms_``,
    ``batch_tfms_`` (none).
    """

    key: ClassVar[str] = "points"
    example: ClassVar[str] = "[[x, y], ...]"
    #: its coordinates are measured in the source image: a DataBlock passes the decoded images' sizes to setup
    needs_source_sizes: ClassVar[bool] = True

    def __init__(self, img_size: Sequence[int] | None = None):
        name = type(self).__name__
        # the source images' size, which coordinates are measured in: it sizes no buffer, and photos may be larger
        # than any size pipekit makes
        self.img_size = None if img_size is None else size2(size_param(name, img_size, name="img_size", limit=None))

    def coords(self, raw: pl.Series, width: int,
               source_sizes: np.ndarray | None = None) -> list[tuple[np.ndarray, tuple[int, int]]]:
        """Each value as a (n, ``width``) float array with its source image size (h, w): the value's own
        ``size``, else its decoded image's (``source_sizes``, (N, 2) heights and widths), else ``img_size``."""
        out, name = [], type(self).__name__
        if source_sizes is not None and len(source_sizes) != len(raw):
            raise DataError(f"{name}: {len(raw)} values but {len(source_sizes)} image sizes; give one image per item")
        values = raw.to_list()
        arrays = [self._as_array(v.get(self.key) if isinstance(v, dict) else v) for v in values]
        self._check_rows(arrays, width)
        for i, (v, arr) in enumerate(zip(values, arrays)):
            if isinstance(v, dict):
                if self.key not in v or "size" not in v:
                    raise DataError(f"{name} item {i}: a dict value needs '{self.key}' and 'size' keys, got {list(v)}")
                v, size = v[self.key], v["size"]
            elif source_sizes is not None:
                size = (int(source_sizes[i][0]), int(source_sizes[i][1]))
                if self.img_size is not None and tuple(self.img_size) != size:
                    raise DataError(f"{name} item {i}: its image is {size[1]}x{size[0]} (w x h) but img_size="
                                    f"{tuple(self.img_size)} (h, w) says otherwise; leave img_size out, the size "
                                    "is read from each image")
            elif self.img_size is None:
                raise DataError(f"{name} item {i} has no source image size: put an ImageBlock before it in the "
                                "DataBlock's blocks (each image's size is read as it is decoded), give img_size=(h, w), "
                                f"or a getter returning {{'{self.key}': {self.example}, 'size': [h, w]}}")
            else:
                size = self.img_size
            if arr is None:  # ragged, or not numbers: reading it again says why
                arr = np.asarray(v if v is not None else [], dtype=np.float64)
            out.append((arr.reshape(-1, width), (int(size[0]), int(size[1]))))
        return out

    @staticmethod
    def _as_array(v: Any) -> np.ndarray | None:
        """A getter's value as a float64 array (None as no rows); None when it is ragged or not numbers."""
        try:
            return np.asarray(v if v is not None else [], dtype=np.float64)
        except (TypeError, ValueError):
            return None

    def _check_rows(self, arrays: list[np.ndarray | None], width: int) -> None:
        """Refuse getter values (as :meth:`_as_array` reads them) that are not rows of ``width`` numbers
        (``tensor([x, y, 1.0])`` for a point), naming the first such item and the positions of all (``rows``, so a
        DataBlock names their files too); a value that is not numbers is left to its reading in :meth:`coords`."""
        found = [(i, p) for i, a in enumerate(arrays)
                 if a is not None and (p := coord_rows_problem(a, width, self.example)) is not None]
        if found:
            i, p = found[0]
            more = f" ({len(found)} of {len(arrays)} items are so)" if len(found) > 1 else ""
            error = DataError(f"{type(self).__name__} item {i}: the getter gave {p}{more}")
            error.rows = [j for j, _ in found]  # type: ignore[attr-defined]
            raise error

    def to_unit(self, arr: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
        """Pixel (x, y) pairs (any shape ending in pairs) of a source image of size ``hw``, moved through the
        item transform, in -1..1 coordinates."""
        (h, w), pts, tfm = hw, arr.reshape(-1, 2), find_item_transform(self.tfms_)
        if tfm is not None:
            m = tfm.point_matrix(h, w)
            pts, (h, w) = pts @ m[:2, :2].T + m[:2, 2], tfm.cached_size()
        return (pts / np.array([w, h]) * 2 - 1).reshape(arr.shape)

    def to_pixels(self, arr: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
        """The inverse of :meth:`to_unit`: -1..1 (x, y) pairs back to pixels of a source image of size ``hw``."""
        pts = np.asarray(arr, dtype=np.float64).reshape(-1, 2)
        tfm = find_item_transform(self.tfms_)
        out_h, out_w = tfm.cached_size() if tfm is not None else hw
        pts = (pts + 1) / 2 * np.array([out_w, out_h])
        if tfm is not None:
            inv = np.linalg.inv(tfm.point_matrix(*hw))
            pts = pts @ inv[:2, :2].T + inv[:2, 2]
        return pts.reshape(np.shape(arr))

    def decode_on_image(self, value: Any, size: tuple[int, int]) -> np.ndarray:
        """A decoded value in -1..1 (a batch's, a model's prediction) in pixels of the image it belongs to, of
        ``size`` (h, w): the decoded image of its item (:meth:`~pipekit.data.loader.DataLoader.decode_batch`), as
        fastai's decodes give them; pixel edges at 0, so ``[[0, 0]]`` is the top-left corner."""
        decoded = self.decode(value)  # a Points or Boxes array (boxes without their padding)
        unit = np.asarray(decoded, dtype=np.float32)
        h, w = int(size[0]), int(size[1])
        pixels = ((unit.reshape(-1, 2) + 1) / 2 * np.array([w, h], dtype=np.float32)).reshape(unit.shape)
        return np.ascontiguousarray(pixels).view(type(decoded))

    def decode_prediction(self, value: Any, source_size: tuple[int, int] | None = None, geometry: Any = None) -> Any:
        """A predicted value in pixels of the image it was predicted on (``source_size`` (h, w)); in -1..1
        when that size is not known. ``geometry``: see :meth:`unit_before_batch`."""
        unit = self.decode(value)
        if source_size is None:
            return unit
        pixels = self.to_pixels(self.unit_before_batch(np.asarray(unit), geometry),
                                (int(source_size[0]), int(source_size[1])))
        return pixels.view(type(unit)) if isinstance(unit, np.ndarray) else pixels  # points stay a TensorPoint

    @staticmethod
    def unit_before_batch(unit: np.ndarray, geometry: Any) -> np.ndarray:
        """-1..1 (x, y) pairs of the model's input moved back through the batch transforms' validation geometry
        (``geometry``: (3, 3), the model input's coordinates to the item-transformed image's; a centred crop to
        another size or aspect), so they are coordinates of the image the item transform made."""
        if geometry is None:
            return unit
        m = np.asarray(geometry, dtype=np.float64)
        pts = unit.reshape(-1, 2)
        homo = pts @ m[:2, :2].T + m[:2, 2]
        w = pts @ m[2, :2] + m[2, 2]
        return (homo / w[:, None]).reshape(unit.shape)

    def _encode(self, raw: pl.Series, source_sizes: np.ndarray | None = None) -> TensorStore:
        raise NotImplementedError

    def setup(self, raw: pl.Series, train_idx: np.ndarray, item_tfms: Sequence[Transform] = (),
              trace: Any = None, source_sizes: np.ndarray | None = None) -> Store:
        """Encode the values (``source_sizes``: each item's decoded image (h, w), see :meth:`coords`)."""
        self.reset_state()
        self.fit_tfms(item_tfms)
        self.batch_tfms_ = []
        return self._encode(raw, source_sizes)

    def encode_new(self, raw: pl.Series, source_sizes: np.ndarray | None = None) -> Store:
        self.check_is_fitted("setup (build the data)")
        return self._encode(raw, source_sizes)


class PointBlock(CoordBlock):
    """Keypoints: each item is a list of (x, y) pixel coordinates in its source image, the same number for every
    item. They go through the image's item transform and are stored in -1..1, the frame augmentation moves them in.
    The source size of each item comes with its value as ``{"points": [[x, y], ...], "size": [h, w]}``, or else
    from the item's decoded image (a DataBlock with an ``ImageBlock`` gives it), or else from ``img_size`` (h, w)
    when all images share one; boxes (:class:`BBoxBlock`) take their sizes the same way.

    >>> from pipekit.vision import PointBlock
    >>> PointBlock(img_size=(480, 640)).loss_kind
    'mse'
    """

    geometry, loss_kind, draws_on_input = "points", "mse", True

    def _encode(self, raw: pl.Series, source_sizes: np.ndarray | None = None) -> TensorStore:
        n_points = getattr(self, "n_points_", None)
        values = self.coords(raw, 2, source_sizes)
        for i, (arr, _) in enumerate(values):
            if n_points is not None and len(arr) != n_points:
                raise DataError(f"PointBlock item {i} has {len(arr)} points, others have {n_points}; "
                                "every item needs the same number of points")
            n_points = len(arr)
            if not np.isfinite(arr).all():
                raise DataError(f"PointBlock item {i}: points contain NaN or inf: {arr.tolist()[:4]}")
        self.n_points_ = n_points
        out = np.empty((len(values), n_points or 0, 2), dtype=np.float32)
        for i, (arr, hw) in enumerate(values):
            out[i] = self.to_unit(arr, hw)
        return CoordStore(out, np.stack([arr for arr, _ in values]) if values else out)

    @property
    def c(self) -> int | None:
        n = getattr(self, "n_points_", None)
        return 2 * n if n is not None else None

    def decode(self, value: Any, split_idx: int | None = 1) -> np.ndarray:
        """Points as an (N, 2) array (a :class:`TensorPoint`), in the units they come in, whatever the item's split:
        a batch's and a model's in -1..1, a data set's item in the getter's pixels. A loader's ``decode_batch`` gives
        a batch's in pixels of each item's image (:meth:`decode_on_image`)."""
        return to_numpy(value).reshape(-1, 2).view(Points)

    def show(self, ax: Any, value: Any, title: str | None = None) -> None:
        """Draw points given in pixels of the image on ``ax`` (as ``decode_batch`` gives them)."""
        p = self.decode(value)
        if ax.images:  # pixel edges at 0; matplotlib puts pixel centres at whole numbers
            ax.scatter(p[:, 0] - 0.5, p[:, 1] - 0.5, s=20, c="red", marker="x")
        else:
            ax.scatter(p[:, 0], -p[:, 1], s=20, c="red", marker="x")
        set_title(ax, title)


class Points(np.ndarray):
    """An (n, 2) array of (x, y) points, as :class:`PointBlock` decodes them (a :class:`TensorPoint`)."""


class _Coords(metaclass=_ArrayKind):
    """What :class:`TensorPoint` and ``TensorBBox`` share: ``create`` makes float32 (n, ``width``) rows of
    ``array_type`` from a list, an array or a tensor; ``rows`` is how they are written, ``value_form`` the getter's
    value that carries a size."""

    width: int
    rows: str
    value_form: str

    def __new__(cls, x: Any) -> Any:  # type: ignore[misc]
        return cls.create(x)

    @classmethod
    def create(cls, x: Any, img_size: Any = None) -> Any:
        """``x`` as float32 (n, ``width``) rows (``x`` holds a multiple of ``width`` values)."""
        name = cls.__name__
        if img_size is not None:  # pipekit reads each image's size as it decodes it
            raise ParameterError(f"{name}.create: img_size is not kept with the values; the block reads each "
                                 f"image's size as it decodes it (or give the getter's value as {cls.value_form})")
        arr = np.asarray(to_numpy(x), dtype=np.float32)
        problem = coord_rows_problem(arr, cls.width, cls.rows)
        if problem is not None:
            raise ParameterError(f"{name}.create: {problem}")
        return np.ascontiguousarray(arr.reshape(-1, cls.width)).view(cls.array_type)


class TensorPoint(_Coords):
    """Points under the name fastai users know: ``TensorPoint.create(pts)`` (or ``TensorPoint(pts)``) makes float32
    (n, 2) (x, y) points, a :class:`Points` array, from a list, an array or a tensor. What ``PointBlock`` decodes
    and ``learn.predict`` gives for points is one:
    ``isinstance(p, TensorPoint)``. fastai's are tensors; ``torch.as_tensor(p)`` makes one.

    >>> from pipekit.vision import TensorPoint
    >>> p = TensorPoint.create([12.5, 6.5]); p.tolist(), isinstance(p, TensorPoint)
    ([[12.5, 6.5]], True)
    """

    array_type, width, rows = Points, 2, "[[x, y], ...]"
    value_form = f"{{'points': {rows}, 'size': [h, w]}}"


def image_paths_with(path: str | os.PathLike, name_fn: Any) -> Any:
    """A getter mapping an image path to another file under ``path`` (e.g. its mask).

    ``name_fn`` is the file's name as a format string of the image path's parts ``{name}``, ``{stem}``, ``{suffix}``
    and ``{parent}`` (the name of the image's folder): a :class:`~pipekit.data.getters.PathFormat`, checked now and
    stored with an exported model, so ``learn.dls.test_dl(files, with_labels=True)`` reads the masks after
    ``load_learner``. It may instead be a function of the image's ``Path`` returning the name, which works the
    same but, not being data, is left out of an export.

    >>> from pipekit.vision import image_paths_with
    >>> get_mask = image_paths_with("/data/camvid/labels", "{stem}_P{suffix}")
    >>> get_mask("/data/camvid/images/0001TP_006690.png")
    '/data/camvid/labels/0001TP_006690_P.png'
    >>> get_mask = image_paths_with("/data/camvid/labels", lambda p: f"{p.stem}_P{p.suffix}")
    """
    from pipekit.data.getters import PathFormat

    if isinstance(name_fn, str):
        return PathFormat(path, name_fn)
    if not callable(name_fn):
        raise ParameterError(f"image_paths_with: name_fn={name_fn!r:.60} is neither a format string of the image "
                             "path's parts (e.g. '{stem}_P{suffix}') nor a function of the image's Path")
    root = Path(path)

    def getter(item: Any) -> str:
        p = Path(item["path"]) if isinstance(item, dict) else Path(item)
        return str(root / name_fn(p))

    getter.__name__ = f"image_paths_with({root.name})"
    return getter


def _label_indices(y: np.ndarray, vocab: Sequence[Any], name: str) -> np.ndarray:
    """Labels as indices into ``vocab``: integers (whole-number floats too) in range, or the vocab's own values."""
    if y.dtype.kind in "iub":
        idx = y.astype(np.int64)
    elif y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
            bad = float(y[~(np.isfinite(y) & (y == np.round(y)))][0])
            raise DataError(f"{name} holds {bad!r}, not a class index: labels are integers 0..{len(vocab) - 1} "
                            "(indices into vocab) or vocab's own values")
        idx = y.astype(np.int64)
    else:  # the classes themselves (text, objects): looked up in vocab
        where = {v: i for i, v in enumerate(vocab)}
        missing = [v for v in dict.fromkeys(y.tolist()) if v not in where]
        if missing:
            raise DataError(f"{name} holds {missing[:3]}, which are not in vocab {list(vocab)[:10]}: give labels as "
                            "indices into vocab or as its values")
        idx = np.array([where[v] for v in y.tolist()], dtype=np.int64)
    if len(idx) and (idx.min() < 0 or idx.max() >= len(vocab)):
        raise DataError(f"{name} holds labels outside 0..{len(vocab) - 1} (vocab has {len(vocab)} entries)")
    return idx


def dataloaders_from_arrays(x_train: np.ndarray, y_train: np.ndarray, x_valid: np.ndarray, y_valid: np.ndarray,
                            vocab: Sequence[Any], bs: int = 64, batch_tfms: Sequence[Any] | Any = (),
                            seed: int | None = None, device: Any = None, num_workers: int | None = None) -> DataLoaders:
    """DataLoaders over images already in memory as uint8 arrays (N, H, W) or (N, H, W, C) and labels (indices
    into ``vocab``, or its values).

    For data sets shipped as arrays (e.g. Fashion-MNIST's IDX files, read with ``pipekit.datasets.read_idx``):
    no decoding or caching is needed, and augmentation works as for files.

    >>> import pipekit.datasets as D
    >>> from pipekit.vision import dataloaders_from_arrays
    >>> xs = D.read_idx(D.path("fashion_mnist") / "t10k-images-idx3-ubyte.gz")[:16]   # uint8 (16, 28, 28)
    >>> ys = D.read_idx(D.path("fashion_mnist") / "t10k-labels-idx1-ubyte.gz")[:16]   # class indices
    >>> vocab = ["T-shirt", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
    ...          "Ankle boot"]
    >>> dls = dataloaders_from_arrays(xs[:8], ys[:8], xs[8:], ys[8:], vocab=vocab, bs=4, seed=0)
    >>> x, y = next(iter(dls.valid))
    >>> tuple(x.shape), x.dtype, [vocab[i] for i in y.tolist()]
    ((4, 1, 28, 28), torch.float32, ['Sandal', 'Sneaker', 'Coat', 'Sandal'])
    """
    from pipekit.data import CategoryBlock, DataLoaders

    stores = []
    shapes = []
    for name, x, y in (("train", x_train, y_train), ("valid", x_valid, y_valid)):
        x = np.asarray(x)
        if x.dtype != np.uint8 or x.ndim not in (3, 4):
            raise DataError(f"x_{name} must be uint8 images (N, H, W) or (N, H, W, C), got {x.dtype} {x.shape}")
        if x.ndim == 4 and x.shape[-1] not in (1, 3):
            hint = (f"; it looks channel-first (N, C, H, W): give x_{name}.transpose(0, 2, 3, 1)"
                    if x.shape[1] in (1, 3) else "")
            raise DataError(f"x_{name} has shape {x.shape}: images (N, H, W, C) need 1 or 3 channels last{hint}")
        x = x[..., None] if x.ndim == 3 else x
        shapes.append(x.shape[1:])
        y = _label_indices(np.asarray(y).reshape(-1), vocab, f"y_{name}")
        if len(y) != len(x):
            raise DataError(f"x_{name} has {len(x)} images but y_{name} has {len(y)} labels")
        sizes = np.tile(np.array(x.shape[1:3]), (len(x), 1))
        stores.append([ImageStore(np.ascontiguousarray(x), sizes), TensorStore(y)])
    if shapes[0] != shapes[1]:
        raise DataError(f"the training images are {'x'.join(map(str, shapes[0]))} (H x W x channels) and the validation "
                        f"images {'x'.join(map(str, shapes[1]))}: give both sets the same size and channels")
    img_block = ImageBlock(cls="L" if stores[0][0].pixels.shape[3] == 1 else "RGB", cache_dir=False)  # type: ignore[attr-defined]
    img_block.fit_tfms()
    y_block = CategoryBlock(vocab=list(vocab))
    y_block.fit_tfms()
    y_block.tfms_[0].setup(pl.Series(list(vocab)))
    return DataLoaders.from_stores(stores[0], stores[1], blocks=[img_block, y_block], n_inp=1,
                                   bs=bs, seed=seed, device=device,
                                   batch_tfms=[*img_block.block_batch_tfms(), *as_list(batch_tfms)], num_workers=num_workers)
