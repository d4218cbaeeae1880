"""A user's item transform typed for nothing reaches every value of an item, the images included, as fastai runs
it; a getter may give each item a 2-D (or N-D) NumPy array, taken as a list of lists or a tensor is."""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import pipekit.datasets as D
from pipekit.core.errors import PipelineStepError
from pipekit.data import (CategoryBlock, DataBlock, FuncSplitter, GrandparentSplitter, RegressionBlock,
                          get_image_files, parent_label)
from pipekit.data.transform import Transform
from pipekit.vision import (ImageBlock, MaskBlock, PILImage, PILImageBW, PILMask, PointBlock, Resize, TensorPoint)
from pipekit.vision.blocks import _PixelBlock

pytestmark = pytest.mark.data


def _every_8th(p: Path) -> list[Path]:
    return sorted(get_image_files(p), key=os.fspath)[::8]


def _mnist(item_tfms=(), **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the test/ folder is in neither subset
        return DataBlock(blocks=(ImageBlock(cls=PILImageBW), CategoryBlock), get_items=_every_8th,
                         splitter=GrandparentSplitter(), get_y=parent_label, item_tfms=list(item_tfms),
                         **kwargs).dataloaders(D.path("mnist_tiny"), bs=16, shuffle=False, device="cpu")


def flip(x):  # as fastai's users write it: the images flipped, anything else given back
    return x.transpose(Image.FLIP_LEFT_RIGHT) if isinstance(x, PILImage) else x


SEEN: list = []


class Record(Transform):
    def encodes(self, x):
        SEEN.append(x)
        return x


# ---------------------------------------------------------------------------------- 1. untyped item transforms
def test_an_untyped_item_transform_reaches_the_image_and_the_label_as_in_fastai():
    plain = _mnist()
    x, y = plain.valid.one_batch()
    SEEN.clear()
    for tfms in ([Transform(flip)], [flip], [Record(), flip]):
        dls = _mnist(tfms)
        xf, yf = dls.valid.one_batch()
        # fastai 2.8.12 gives these very pixels (the images flipped left to right) and labels on mnist_tiny
        assert torch.equal(xf, x.flip(-1)) and torch.equal(yf, y)
    # Record sees each image (a PILImageBW) as it is fetched, and each label, one value at a time, never a column
    n_valid = len(dls.valid.dataset)
    before = len([v for v in SEEN if isinstance(v, PILImageBW)])
    assert sum(len(b[0]) for b in dls.valid) == n_valid
    images = [v for v in SEEN if isinstance(v, PILImageBW)]
    assert len(images) - before == n_valid and all(v.shape == (28, 28, 1) for v in images)  # each fetch's image
    labels = [v for v in SEEN if isinstance(v, str)]
    assert len(labels) >= 176 and set(labels) == {"3", "7"}
    assert not any(type(v).__name__ == "Series" for v in SEEN)
    # before the resize, as fastai's item transforms run before its Resize; and on new items (test_dl, predict)
    resized = _mnist([flip, Resize(20, method="squish")])
    unflipped = _mnist([Resize(20, method="squish")])
    assert torch.allclose(resized.valid.one_batch()[0], unflipped.valid.one_batch()[0].flip(-1), atol=0.02)
    files = _every_8th(D.path("mnist_tiny") / "valid")[:4]
    assert torch.equal(_mnist([flip]).test_dl(files).one_batch()[0], plain.test_dl(files).one_batch()[0].flip(-1))


def test_an_untyped_item_transform_reaches_masks_as_pilmask_and_flips_what_it_flips():
    cam = D.path("camvid_tiny")
    codes = np.loadtxt(cam / "codes.txt", dtype=str)

    def dls(tfms):
        return DataBlock(blocks=(ImageBlock, MaskBlock(codes)),
                         get_items=lambda p: sorted(get_image_files(p / "images"), key=os.fspath)[:4],
                         get_y=lambda f: cam / "labels" / f"{f.stem}_P{f.suffix}",
                         splitter=FuncSplitter(lambda f: Path(f).name > "0001TP_0070"),
                         item_tfms=[*tfms, Resize((48, 64), method="squish")]).dataloaders(
            cam, bs=4, shuffle=False, device="cpu").train.one_batch()

    SEEN.clear()
    (x, m), (xf, mf) = dls([]), dls([Record(), Transform(flip)])
    assert any(isinstance(v, PILImage) for v in SEEN) and any(isinstance(v, PILMask) for v in SEEN)
    # as in fastai, where a PILMask is no PILImage: flip turns the photos and leaves the masks
    assert torch.equal(mf, m) and torch.allclose(xf, x.flip(-1), atol=0.02)


def test_images_through_an_untyped_item_transform_are_never_served_from_or_written_to_the_disk_cache(tmp_path):
    images = tmp_path / "cache" / "images"  # PIPEKIT_CACHE, see conftest
    plain = _mnist().valid.one_batch()[0]
    entries = sorted(p.relative_to(images) for p in images.rglob("*"))
    assert entries  # the plain build cached its images
    assert torch.equal(_mnist([Transform(flip)]).valid.one_batch()[0], plain.flip(-1))  # not the cached ones
    assert sorted(p.relative_to(images) for p in images.rglob("*")) == entries  # nothing written for them
    assert torch.equal(_mnist().valid.one_batch()[0], plain)


def test_an_untyped_item_transform_that_fails_on_an_image_is_named_with_the_fix():
    def lower(x):  # written for the labels only
        return x.lower()

    with pytest.raises(PipelineStepError, match=r"item transform lower failed on a grey image .*'ImageArray' "
                                                r"object has no attribute 'lower'.*typed for nothing.*x: str"):
        _mnist([lower])


def test_the_user_item_transforms_are_found_once_per_build(monkeypatch):
    calls = []
    found = _PixelBlock.user_item_tfms
    monkeypatch.setattr(_PixelBlock, "user_item_tfms", lambda self: calls.append(1) or found(self))
    dblock = DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock), get_items=_every_8th,
                       splitter=GrandparentSplitter(), get_y=parent_label, item_tfms=[Transform(flip)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        text = dblock.summary(D.path("mnist_tiny"), show=False)
    assert "flip" in text and len(calls) == 1


def test_an_image_answers_pil_transpose_with_a_method_and_numpy_transpose_with_axes():
    img = PILImage.create(D.path("mnist_tiny") / "train" / "3" / "7046.png")
    assert np.array_equal(img.transpose(Image.FLIP_LEFT_RIGHT), np.asarray(img)[:, ::-1])
    assert np.array_equal(img.transpose(Image.ROTATE_90), np.rot90(np.asarray(img)))
    assert img.transpose(2, 0, 1).shape == (3, 28, 28) and img.transpose().shape == (3, 28, 28)


# ---------------------------------------------------------------------------------- 2. N-D arrays from a getter
def _points(f) -> np.ndarray:  # a biwi-like (n_points, 2) target in pixels, made up from the file's name
    n = int(Path(f).stem) % 7
    return np.array([[n + 3.5, 5.25], [10.0, n + 12.0]], dtype=np.float32)


def _point_dls(get_y, item_tfms=()):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return DataBlock(blocks=(ImageBlock(cls="L"), PointBlock), get_items=_every_8th, splitter=GrandparentSplitter(),
                         get_y=get_y, item_tfms=list(item_tfms)).dataloaders(D.path("mnist_tiny"), bs=16,
                                                                             shuffle=False, device="cpu")


def test_a_getter_giving_each_item_a_2d_array_of_points_is_taken_as_a_list_of_lists_or_a_tensor():
    got = {name: _point_dls(g).valid.one_batch()[1] for name, g in [
        ("array", _points), ("array64", lambda f: _points(f).astype(np.float64)), ("TensorPoint", lambda f: TensorPoint(_points(f))),
        ("list", lambda f: _points(f).tolist()), ("tensor", lambda f: torch.tensor(_points(f)))]}
    files = _every_8th(D.path("mnist_tiny"))
    valid = [f for f in files if f.parent.parent.name == "valid"][:16]
    expected = torch.tensor(np.stack([_points(f) / 28 * 2 - 1 for f in valid]))  # fastai 2.8.12's, to 6e-8
    for name, y in got.items():
        assert torch.allclose(y, expected, atol=1e-6), name
    # through a resize, and for new items read with their labels
    dls = _point_dls(_points, [Resize(56, method="squish")])
    assert torch.allclose(dls.valid.one_batch()[1], expected, atol=1e-6)
    labelled = dls.test_dl(valid[:4], with_labels=True).one_batch()[1]
    assert torch.allclose(labelled, expected[:4], atol=1e-6)


def test_an_array_whose_rows_have_different_lengths_is_refused_naming_the_item():
    def ragged(f):
        if Path(f).name == "7600.png":
            return np.array([[1.0, 2.0], [3.0, 4.0, 5.0]], dtype=object)
        return _points(f)

    with pytest.raises(Exception, match=r"getter ragged failed on item 7 .*7600\.png.*rows of different lengths"):
        _point_dls(ragged)
    with pytest.raises(Exception, match=r"PointBlock item 7 has 3 points, others have 2"):
        _point_dls(lambda f: np.zeros((3 if Path(f).name == "7600.png" else 2, 2), np.float32))


def _regression_dls(get_y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return DataBlock(blocks=(ImageBlock(cls="L"), RegressionBlock), get_items=_every_8th,
                         splitter=GrandparentSplitter(), get_y=get_y).dataloaders(D.path("mnist_tiny"), bs=16,
                                                                                  shuffle=False, device="cpu")


def test_a_multi_column_float_target_from_arrays_lists_or_tensors_is_the_same_and_a_bad_one_is_named():
    def row(f):
        return _points(f).ravel()  # four float32 columns

    got = [_regression_dls(g) for g in (row, lambda f: row(f).tolist(), lambda f: torch.from_numpy(row(f)))]
    assert all(d.c == 4 for d in got)
    ys = [d.valid.one_batch()[1] for d in got]
    assert ys[0].shape == (16, 4) and all(torch.equal(y, ys[0]) for y in ys)
    # a table per item is refused alike, whether a 2-D array, a list of lists or a tensor, naming the item's file
    for g in (_points, lambda f: _points(f).tolist(), lambda f: torch.from_numpy(_points(f))):
        with pytest.raises(Exception, match=r"RegressionBlock item 0 holds numbers of shape \(2, 2\).*ravel.*"
                                            r"train/3/7046\.png"):
            _regression_dls(g)
    with pytest.raises(Exception, match=r"RegressionBlock item 7 has 3 value\(s\) where item 0 has 4.*7600\.png"):
        _regression_dls(lambda f: row(f)[:3] if Path(f).name == "7600.png" else row(f))


class FlipPIL(Transform):
    def encodes(self, x: Image.Image):  # fastai's images are PIL images: a transform typed so gets one
        assert isinstance(x, Image.Image)
        return x.transpose(Image.FLIP_LEFT_RIGHT)


class FlipArray(Transform):
    def encodes(self, x: np.ndarray):  # fastai's item transforms see PIL images: this one reaches none
        return np.ascontiguousarray(x[:, ::-1])


def test_an_item_transform_typed_pil_image_gets_a_pil_image_and_one_typed_ndarray_none():
    x, _ = _mnist().valid.one_batch()
    # as fastai 2.8.12 on mnist_tiny: FlipPIL flips the (grey) images, FlipArray leaves them as they are
    assert torch.equal(_mnist([FlipPIL()]).valid.one_batch()[0], x.flip(-1))
    assert torch.equal(_mnist([FlipArray()]).valid.one_batch()[0], x)


# ---------------------------------------------------------------------------------- 3. labels value by value
def upper(x):  # written for the labels: anything that is no text (the images) given back as it is
    return x.upper() if isinstance(x, str) else x


class Upper(Transform):
    def encodes(self, x):
        return x.upper() if isinstance(x, str) else x


class UpperTyped(Transform):
    def encodes(self, x: str):
        return x.upper()


def test_an_untyped_item_transform_gets_each_label_as_one_typed_for_text_does():
    typed = _mnist([UpperTyped()])
    assert typed.vocab == ["3", "7"]  # digits: upper() leaves them; the names below show it acting
    named = {"3": "three", "7": "seven"}

    def dls(tfm):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock), get_items=_every_8th,
                             get_y=lambda f: named[f.parent.name], splitter=GrandparentSplitter(),
                             item_tfms=[tfm]).dataloaders(D.path("mnist_tiny"), bs=16, shuffle=False, device="cpu")

    want = dls(UpperTyped())
    assert list(want.vocab) == ["SEVEN", "THREE"]
    files = _every_8th(D.path("mnist_tiny") / "valid")[:6]
    for tfm in (upper, Transform(upper), Upper()):
        got = dls(tfm)
        assert list(got.vocab) == ["SEVEN", "THREE"], tfm
        assert torch.equal(got.valid.one_batch()[1], want.valid.one_batch()[1])
        # new items read with their labels ('three', 'seven') go through it too
        labelled = got.test_dl(files, with_labels=True).one_batch()[1]
        assert [got.vocab[int(i)] for i in labelled] == [named[f.parent.name].upper() for f in files]


def test_an_untyped_item_transform_failing_on_a_label_is_named_with_the_label():
    def half(x):  # fails on a label, an image's pixels halve
        return x // 2

    with pytest.raises(PipelineStepError, match=r"failed on item \d+ \('[37]'\)"):
        _mnist([half])


def test_which_user_item_transforms_reach_a_pil_image_is_worked_out_once_per_transform(monkeypatch):
    import pipekit.vision.blocks as vb

    calls = []
    typed = vb._typed_types
    monkeypatch.setattr(vb, "_typed_types", lambda t: calls.append(t) or typed(t))
    files = sorted(get_image_files(D.path("mnist_tiny") / "train"), key=os.fspath)[:100]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dls = DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock), get_items=lambda p: files,
                        splitter=FuncSplitter(lambda f: int(Path(f).stem) % 5 == 0), get_y=parent_label,
                        item_tfms=[FlipPIL(), flip]).dataloaders(D.path("mnist_tiny"), bs=16, device="cpu")
    assert len(dls.train_ds) + len(dls.valid_ds) == 100
    # once per transform where the block picks its user transforms, once each where the 100 images are made
    assert 0 < len(calls) <= 2 * 2


# ---------------------------------------------------------------------------------- 4. mid-level loaders' first item
def test_a_mid_level_loader_makes_its_first_item_once_for_its_parts_and_its_class():
    from pipekit.data import TfmdLists, fastuple

    class Pair(fastuple):
        pass

    class MakePair(Transform):
        def encodes(self, i):
            return Pair(np.full((4, 4, 3), i, np.uint8), np.full((4, 4, 3), 255 - i, np.uint8), i % 2)

    made: list[int] = []

    def count(x):
        made.append(int(x[0][0, 0, 0]))
        return x

    tls = TfmdLists(list(range(12)), MakePair(), splits=[list(range(8)), list(range(8, 12))])
    dls = tls.dataloaders(bs=4, device="cpu", seed=0, shuffle=False, after_item=[count])
    b = dls.valid.one_batch()
    assert type(b) is Pair and [int(v) for v in b[2]] == [0, 1, 0, 1]
    # the first validation item (8) made once for the loader's parts and class, once in the batch; the others once
    assert sorted(v for v in made if v >= 8) == [8, 8, 9, 10, 11]
