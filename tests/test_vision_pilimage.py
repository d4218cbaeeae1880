"""``PILImage.create`` answers PIL's (and fastai's ``PILImage``'s) names as PIL does, on real files, and stays the
array every NumPy, torch, OpenCV and pipekit path takes."""
from __future__ import annotations


import numpy as np
import PIL.Image
import pytest
import torch

import pipekit.datasets as D
from pipekit.core.errors import ParameterError
from pipekit.vision import PILImage, PILImageBW

CAMVID = "camvid_tiny/images/0001TP_006750.png"  # 128 x 96: width and height differ
FILES = [CAMVID, "dogscats/valid/cats/cat.1507.jpg", "coco_tiny/train/000000005906.jpg", "mnist_tiny/train/3/7463.png"]


def _file(rel: str):
    name, rest = rel.split("/", 1)
    return D.path(name) / rest


@pytest.mark.parametrize("rel", FILES)
def test_size_width_height_are_pils_and_shape_stays_numpys(rel):
    f = _file(rel)
    pil = PIL.Image.open(f)
    w, h = pil.size
    for img, mode in ((PILImage.create(f), "RGB"), (PILImageBW.create(f), "L")):
        assert img.size == pil.size and (img.width, img.height) == (pil.width, pil.height) == (w, h)
        assert img.mode == mode and img.n_px == w * h and img.aspect == pytest.approx(w / h)
        assert img.shape == (h, w, 3 if mode == "RGB" else 1)  # fastai's (h, w) is img.shape[:2]
        assert repr(img) == str(img) == f"PILImage{'BW' if mode == 'L' else ''} mode={mode} size={w}x{h}"
    # the pixels as an array: a plain ndarray whose size is the number of values
    img = PILImage.create(f)
    arr = np.array(img)
    assert type(arr) is np.ndarray and arr.shape == (h, w, 3) and arr.size == h * w * 3
    assert torch.as_tensor(np.array(img)).shape == (h, w, 3) and torch.equal(torch.as_tensor(img), torch.from_numpy(arr))
    if f.suffix == ".png":  # lossless: PIL reads the very same pixels
        assert np.array_equal(arr, np.asarray(pil.convert("RGB")))


@pytest.mark.parametrize("rel", FILES[:2])
def test_resize_convert_and_to_thumb_give_what_pil_gives(rel):
    img = PILImage.create(_file(rel))
    pil = PIL.Image.fromarray(np.array(img))  # PIL on the same pixels (JPEG decoders differ by a level or two)
    w, h = img.size
    small = img.resize((w // 2, h // 3))
    assert small.size == (w // 2, h // 3) and small.shape == (h // 3, w // 2, 3)
    assert np.array_equal(np.array(small), np.asarray(pil.resize((w // 2, h // 3))))
    nearest = img.resize((w // 2, h // 3), resample=PIL.Image.Resampling.NEAREST)
    assert np.array_equal(np.array(nearest), np.asarray(pil.resize((w // 2, h // 3), PIL.Image.Resampling.NEAREST)))
    assert not np.array_equal(np.array(nearest), np.array(small))
    grey = img.convert("L")
    assert grey.mode == "L" and grey.size == img.size and repr(grey).startswith("PILImageBW mode=L")
    assert np.array_equal(np.array(grey)[:, :, 0], np.asarray(pil.convert("L")))
    assert np.array_equal(np.array(grey.convert("RGB")), np.asarray(pil.convert("L").convert("RGB")))
    thumb, want = img.to_thumb(64), pil.copy()
    want.thumbnail((64, 64))
    assert thumb.size == want.size and np.array_equal(np.array(thumb), np.asarray(want))
    assert img.to_thumb(500).size == img.size  # never enlarged
    if rel == CAMVID:
        assert small.size == (64, 32) and thumb.size == (64, 48)
    # the original is untouched: these are new images
    assert img.size == pil.size and np.array_equal(np.array(img), np.asarray(pil))


def test_what_is_not_pils_says_what_to_use():
    img = PILImage.create(_file(CAMVID))
    with pytest.raises(ParameterError, match=r"\(width, height\).*np.resize"):
        img.resize((96, 128, 3))  # NumPy's in-place resize(new_shape) is not an image's
    with pytest.raises(ParameterError, match=r"img.to_pil\(\).convert\('RGBA'\)"):
        img.convert("RGBA")
    # what is no longer a picture is an array: NumPy's size, no width
    floats = img.astype(np.float32)
    assert floats.size == 128 * 96 * 3 and img[:, :, 0].size == 128 * 96 and img[:10, :20].size == (20, 10)
    assert not hasattr(floats, "width")
    with pytest.raises(AttributeError, match="not a picture.*PILImage.create"):
        floats.convert("L")


def test_numpy_functions_and_libraries_see_the_pixels_as_they_see_an_array():
    cv2 = pytest.importorskip("cv2")
    img = PILImage.create(_file(CAMVID))
    arr = np.array(img)
    # NumPy's Python-level functions read .size as the number of values (np.median failed on a (w, h) size)
    for fn in (np.median, np.nanmedian, np.unique, lambda a: np.average(a, returned=True), lambda a: np.pad(a, 1),
               lambda a: np.percentile(a, 30), lambda a: np.stack([a, a]), lambda a: np.histogram(a, bins=5)):
        got, want = fn(img), fn(arr)
        for g, v in zip(got if isinstance(got, tuple) else [got], want if isinstance(want, tuple) else [want]):
            assert np.array_equal(g, v) and type(g) is type(v)
    np.testing.assert_array_equal(img, arr)
    assert img.mean() == arr.mean() and img.std() == arr.std() and type(img / 255) is np.ndarray
    assert np.array_equal(cv2.resize(img, (64, 48)), cv2.resize(arr, (64, 48)))
    assert PIL.Image.fromarray(img).tobytes() == PIL.Image.fromarray(arr).tobytes()
    assert torch.tensor(img).equal(torch.tensor(arr))


def test_matplotlib_and_albumentations_draw_and_move_it_as_an_array():
    import matplotlib.pyplot as plt

    img = PILImage.create(_file(CAMVID))

    def drawn(x):
        fig, ax = plt.subplots()
        ax.imshow(x)
        fig.canvas.draw()
        out = np.asarray(fig.canvas.buffer_rgba()).copy()
        plt.close(fig)
        return out

    assert np.array_equal(drawn(img), drawn(np.array(img)))
    assert img.show() is not None and img.to_thumb(64).show(title="thumb").get_title() == "thumb"
    A = pytest.importorskip("albumentations")
    tfm = A.Compose([A.Resize(48, 64), A.HorizontalFlip(p=1.0)])
    assert np.array_equal(tfm(image=img)["image"], tfm(image=np.array(img))["image"])


def test_predict_and_test_dl_take_the_image_as_they_take_its_file(mnist_learner):
    learn = mnist_learner
    f = learn.dls.valid_ds.items[0]
    by_path = learn.predict(f)
    for img in (PILImageBW.create(f), PILImage.create(f), PILImage.create(f).resize((28, 28)).convert("L")):
        got = learn.predict(img)
        assert got[0] == by_path[0] and torch.allclose(got[2], by_path[2], atol=1e-6)
    dl = learn.dls.test_dl([PILImageBW.create(f), f, PILImage.create(f)])
    preds, _ = learn.get_preds(dl=dl)
    assert torch.allclose(preds, by_path[2].expand(3, -1), atol=1e-6)


def test_resize_called_on_a_pil_image_gives_the_resized_pil_image():
    """``Resize(64)(Image.open(f))``: a PIL image back, resized as the same pixels as an array are (it was given back
    unchanged, 200x200); grey stays grey, a palette image comes back RGB."""
    from pipekit.vision import Resize

    photo = PIL.Image.open(sorted((D.path("dogscats") / "valid" / "dogs").iterdir())[0])
    out = Resize(64)(photo)
    assert isinstance(out, PIL.Image.Image) and out.size == (64, 64) and out.mode == "RGB" and photo.size == (200, 200)
    assert np.array_equal(np.asarray(out), Resize(64)(np.asarray(photo)))
    digit = PIL.Image.open(sorted((D.path("mnist_tiny") / "valid" / "3").iterdir())[0])
    small = Resize(14)(digit)
    assert (small.size, small.mode) == ((14, 14), "L")
    assert np.array_equal(np.asarray(small), Resize(14)(np.asarray(digit))[:, :, 0])
    assert Resize(10)(digit.convert("P")).mode == "RGB"


def test_a_colour_photo_read_grey_has_pils_levels_from_a_file_and_from_memory(tmp_path):
    """``ImageBlock(cls=PILImageBW)`` on colour JPEGs: fastai opens them with PIL's ``convert('L')``; a JPEG decoder's
    own grey output differs from it by up to a dozen levels."""
    from pipekit.vision import ImageBlock
    from pipekit.vision.decode import decode_image

    files = [*sorted((D.path("dogscats") / "valid" / "cats").iterdir())[:3],
             *sorted((D.path("dogscats") / "valid" / "dogs").iterdir())[:2]]
    for f in files:
        ref = np.asarray(PIL.Image.open(f).convert("L"))
        assert np.array_equal(decode_image(f, mode="L")[:, :, 0], ref), f
        assert np.array_equal(np.asarray(PILImageBW.create(f))[:, :, 0], ref), f
        # a PIL image given in memory (predict of an opened photo) is made grey the same way
        assert np.array_equal(np.asarray(PILImageBW.create(PIL.Image.open(f)))[:, :, 0], ref), f
    # a colour PNG with alpha and a palette PNG too
    rgb = np.asarray(PIL.Image.open(files[0]))
    for mode in ("RGBA", "P"):
        p = tmp_path / f"{mode}.png"
        PIL.Image.fromarray(rgb).convert(mode).save(p)
        assert np.array_equal(decode_image(p, mode="L")[:, :, 0], np.asarray(PIL.Image.open(p).convert("L"))), mode
    # through a DataBlock's cache: each image of a batch holds one file's levels
    from pipekit.data import CategoryBlock, DataBlock, RandomSplitter, parent_label

    dls = DataBlock(blocks=(ImageBlock(cls=PILImageBW, cache_dir=tmp_path / "cache"), CategoryBlock),
                    get_y=parent_label, splitter=RandomSplitter(0.4, seed=0)).dataloaders(files, bs=3, device="cpu")
    refs = [np.asarray(PIL.Image.open(f).convert("L")) for f in files]
    x = dls.train.one_batch()[0]
    levels = (x * 255).round().to(torch.uint8) if x.is_floating_point() else x
    assert len(levels) == 3 and all(any(np.array_equal(v[0].numpy(), r) for r in refs) for v in levels)
