"""An image (``PILImage.create``, and what an item transform typed ``x: PILImage`` gets) answers every method of
``PIL.Image.Image`` with PIL's own result on the same file, an image given back as an image of the same kind, as
fastai's ``PILImage`` does in an item transform."""
from __future__ import annotations

import os
import pickle
import warnings
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from PIL import ImageFilter, ImageOps

import pipekit.datasets as D
from pipekit.core.errors import ParameterError
from pipekit.data import CategoryBlock, DataBlock, GrandparentSplitter, get_image_files, parent_label
from pipekit.data.transform import Transform
from pipekit.vision import ImageBlock, PILImage, PILImageBW
from pipekit.vision.blocks import ImageArray

pytestmark = pytest.mark.data

DIGIT = "mnist_tiny/train/3/7463.png"  # a grey PNG, 28 x 28
CAT = "dogscats/valid/cats/cat.1507.jpg"  # a colour JPEG: pipekit's RGB decoding gives PIL's very pixels

# what fastai's users call on a PILImage in an item transform; each gives a new image
OPS = {
    "crop": lambda x: x.crop((3, 5, 23, 20)),
    "rotate(90)": lambda x: x.rotate(90),
    "rotate(30, bilinear)": lambda x: x.rotate(30, resample=PIL.Image.Resampling.BILINEAR),
    "rotate(45, expand)": lambda x: x.rotate(45, expand=True),
    "filter(BLUR)": lambda x: x.filter(ImageFilter.BLUR),
    "filter(FIND_EDGES)": lambda x: x.filter(ImageFilter.FIND_EDGES),
    "point": lambda x: x.point(lambda v: 255 - v),
    "reduce": lambda x: x.reduce(2),
    "ImageOps.autocontrast": ImageOps.autocontrast,
    "ImageOps.equalize": ImageOps.equalize,
}


def _file(rel: str) -> Path:
    name, rest = rel.split("/", 1)
    return D.path(name) / rest


def _pixels(img) -> np.ndarray:
    """PIL's (H, W) for a grey image, (H, W, 3) for a colour one."""
    arr = np.asarray(img)
    return arr[:, :, 0] if arr.ndim == 3 and arr.shape[2] == 1 else arr


CASES = [(DIGIT, PILImageBW, "L"), (DIGIT, PILImage, "RGB"), (CAT, PILImage, "RGB")]


@pytest.mark.parametrize("rel,cls,mode", CASES)
@pytest.mark.parametrize("op", list(OPS))
def test_each_pil_method_gives_pils_pixels_on_the_same_file_and_keeps_the_kind(rel, cls, mode, op):
    f = _file(rel)
    got, want = OPS[op](cls.create(f)), OPS[op](PIL.Image.open(f).convert(mode))
    assert type(got) is ImageArray and got.mode == mode and got.size == want.size
    assert isinstance(got, PILImage) and isinstance(got, PILImageBW) == (mode == "L")
    assert np.array_equal(_pixels(got), np.asarray(want))


@pytest.mark.parametrize("rel,cls,mode", CASES)
def test_pils_values_and_attributes_are_pils_on_the_same_file(rel, cls, mode):
    f = _file(rel)
    img, pil = cls.create(f), PIL.Image.open(f).convert(mode)
    assert (img.size, img.mode, img.width, img.height) == (pil.size, pil.mode, pil.width, pil.height)
    for name in ("getbands", "getextrema", "histogram", "getbbox", "entropy"):
        assert getattr(img, name)() == getattr(pil, name)(), name
    assert img.getpixel((5, 7)) == pil.getpixel((5, 7))  # an int for a grey image, a tuple for a colour one
    assert img.format is None and img.info == {} and img.tobytes() == pil.tobytes()  # tobytes: NumPy's and PIL's agree
    assert img.rotate.__name__ == "rotate" and img.rotate.__doc__ == PIL.Image.Image.rotate.__doc__
    bands = img.split()  # one grey image per band
    assert len(bands) == len(pil.getbands()) and all(isinstance(b, PILImageBW) for b in bands)
    assert all(np.array_equal(_pixels(b), np.asarray(p)) for b, p in zip(bands, pil.split()))
    # the copy NumPy's copy() gives is an image of the same kind, as PIL's copy() is
    assert type(img.copy()) is ImageArray and img.copy().crop((0, 0, 4, 4)).size == (4, 4)


def test_a_pil_method_on_an_image_made_from_another_image_and_in_a_chain():
    img, pil = PILImage.create(_file(CAT)), PIL.Image.open(_file(CAT)).convert("RGB")
    got = img.crop((10, 20, 110, 90)).rotate(90, expand=True).convert("L").filter(ImageFilter.SMOOTH)
    want = pil.crop((10, 20, 110, 90)).rotate(90, expand=True).convert("L").filter(ImageFilter.SMOOTH)
    assert isinstance(got, PILImageBW) and got.size == (70, 100) and np.array_equal(_pixels(got), np.asarray(want))
    assert np.array_equal(_pixels(img.getchannel("G")), np.asarray(pil.getchannel("G")))
    assert np.array_equal(np.asarray(ImageOps.fit(img, (64, 48))), np.asarray(ImageOps.fit(pil, (64, 48))))
    # the method runs on the pixels as they are when it is called
    rotate = img.rotate
    img[:10] = 0
    assert np.array_equal(rotate(180), np.asarray(pil.rotate(180)) * (np.arange(200) < 190)[:, None, None])


def test_pils_in_place_methods_write_back_into_the_image_or_say_what_to_call():
    pil = PIL.Image.open(_file(CAT)).convert("RGB")
    img = PILImage.create(_file(CAT))
    patch = img.crop((100, 100, 120, 130))
    assert img.paste(patch, (0, 0)) is None and img.paste((255, 0, 0), (50, 50, 60, 55)) is None
    assert img.putpixel((199, 199), (1, 2, 3)) is None
    pil.paste(pil.crop((100, 100, 120, 130)), (0, 0))
    pil.paste((255, 0, 0), (50, 50, 60, 55))
    pil.putpixel((199, 199), (1, 2, 3))
    assert np.array_equal(img, np.asarray(pil))
    grey = PILImageBW.create(_file(DIGIT))
    grey.paste(0, (0, 0, 28, 14))
    assert grey[:14].max() == 0 and grey[14:].max() > 0 and grey.shape == (28, 28, 1)
    with pytest.raises(ParameterError, match=r"thumbnail .* size 200x200 .* 50x50.*img.to_thumb\(h, w\)"):
        img.thumbnail((50, 50))
    with pytest.raises(ParameterError, match=r"putalpha .* RGBA .*img.to_pil\(\).putalpha"):
        img.putalpha(128)
    with pytest.raises(ParameterError, match=r"quantize gave a P image.*img.to_pil\(\).quantize"):
        img.quantize(16)
    frozen = PILImage.create(_file(CAT))
    frozen.flags.writeable = False
    with pytest.raises(ParameterError, match=r"read-only: img = img.copy\(\) first"):
        frozen.putpixel((0, 0), (0, 0, 0))
    assert frozen[0, 0].tolist() != [0, 0, 0]


def test_numpys_names_and_private_names_stay_numpys_and_an_array_that_is_no_picture_has_no_pil_methods():
    img = PILImage.create(_file(DIGIT))
    assert img.crop((0, 0, 5, 5)).shape == (5, 5, 3)
    assert img.reshape(-1).shape == (28 * 28 * 3,) and img.transpose(2, 0, 1).shape == (3, 28, 28)
    assert not hasattr(img, "_repr_jpeg_") and not hasattr(img, "_new")  # PIL has both: IPython asks for the first
    with pytest.raises(AttributeError, match=r"'ImageArray' object has no attribute 'no_such_name'"):
        _ = img.no_such_name
    channel = img[:, :, 0]  # an (H, W) array is no picture
    assert not hasattr(channel, "crop") and not hasattr(img.astype(np.float32), "rotate")
    with pytest.raises(AttributeError, match=r"ImageArray.crop: .* shape \(28, 28\) .* PILImage.create\(arr\)"):
        channel.crop((0, 0, 1, 1))
    back = pickle.loads(pickle.dumps(img.rotate(90)))
    assert type(back) is ImageArray and np.array_equal(back, np.rot90(np.asarray(img)))


# ------------------------------------------------------------------------------------- in a DataBlock's item_tfms
def _every_8th(p: Path) -> list[Path]:
    return sorted(get_image_files(p), key=os.fspath)[::8]


def _mnist(item_tfms, cls=PILImageBW):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the test/ folder is in neither subset
        return DataBlock(blocks=(ImageBlock(cls=cls), CategoryBlock), get_items=_every_8th,
                         splitter=GrandparentSplitter(), get_y=parent_label,
                         item_tfms=list(item_tfms)).dataloaders(D.path("mnist_tiny"), bs=8, shuffle=False, device="cpu")


def _expected(op, mode: str) -> torch.Tensor:
    """The first validation batch as PIL makes it from the files, op applied, as uint8 (B, C, H, W)."""
    files = [f for f in _every_8th(D.path("mnist_tiny")) if f.parent.parent.name == "valid"][:8]
    arrs = [np.asarray(op(PIL.Image.open(f).convert(mode))) for f in files]
    return torch.from_numpy(np.stack([a[:, :, None] if a.ndim == 2 else a for a in arrs])).permute(0, 3, 1, 2)


def _as_uint8(batch: torch.Tensor) -> torch.Tensor:
    return (batch * 255).round().to(torch.uint8)


class Rotate90(Transform):
    def encodes(self, x: PILImage):
        return x.rotate(90)


class CropTopLeft(Transform):
    def encodes(self, x: PILImage):
        return x.crop((4, 2, 24, 22))


def blur(x):  # untyped, as in fastai: the images blurred, the labels given back
    return x.filter(ImageFilter.BLUR) if isinstance(x, PILImage) else x


@pytest.mark.parametrize("cls,mode", [(PILImageBW, "L"), (PILImage, "RGB")])
def test_item_transforms_typed_pil_image_rotate_and_crop_give_pils_batch(cls, mode):
    x, y = _mnist([Rotate90(), CropTopLeft()], cls=cls).valid.one_batch()
    want = _expected(lambda im: im.rotate(90).crop((4, 2, 24, 22)), mode)
    assert x.shape == (8, 1 if mode == "L" else 3, 20, 20)
    assert torch.equal(_as_uint8(x), want)
    assert y.tolist() == [0] * 8  # the labels untouched: the first 8 validation digits are 3s


def test_an_untyped_item_transform_filtering_the_image_gives_pils_batch():
    x, _ = _mnist([blur]).valid.one_batch()
    assert torch.equal(_as_uint8(x), _expected(lambda im: im.filter(ImageFilter.BLUR), "L"))


def test_pixel_access_and_imagedraw_name_what_to_use_instead():
    """``img.load()`` and ``ImageDraw.Draw(img)`` would work on a PIL copy of the pixels, and lose what they write."""
    from PIL import ImageDraw

    from pipekit.core.errors import ParameterError

    img = PILImage.create(np.zeros((4, 5, 3), np.uint8))
    with pytest.raises(ParameterError, match=r"ImageArray.load .*img.putpixel\(\(x, y\), value\)"):
        img.load()
    with pytest.raises(AttributeError, match=r"ImageDraw draws on a PIL image; draw on pil = img.to_pil\(\)"):
        ImageDraw.Draw(img)
    assert list(img.getdata())[:2] == [(0, 0, 0), (0, 0, 0)]  # reading through PIL's names still works
    img.putpixel((1, 0), (255, 0, 0))
    assert img[0, 1].tolist() == [255, 0, 0]
