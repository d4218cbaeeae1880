"""Chapter 1, "is it a cat?", as a reader writes it: the label comes from the file name (dogscats' files are
``cat.123.jpg`` / ``dog.456.jpg``), a model is trained, asked about one photo in every form a user holds
it in, exported, and the export answers the same in a fresh Python process.

CPU-sized: dogscats' 3,000 training photos at 32 px and ``simple_cnn`` (the book's pretrained resnet34 at
224 px takes many minutes on a CPU).
"""
from __future__ import annotations

import io
import numpy as np
import PIL.Image
import pytest
import torch
from book_helpers import fresh_predictions, probs_of

import pipekit
import pipekit.datasets as D
from pipekit.core.errors import DataError, ParameterError
from pipekit.data import get_image_files
from pipekit.learn import error_rate
from pipekit.vision import ImageDataLoaders, PILImage, PILImageBW, Resize, aug_transforms, decode_image, vision_learner
from pipekit.vision.decode import ImageDecodeError

path = D.path("dogscats")


def is_cat(x):
    return x.startswith("cat")


@pytest.fixture(scope="module")
def learn(one_torch_thread):
    files = get_image_files(path / "train")
    dls = ImageDataLoaders.from_name_func(path, files, valid_pct=0.2, seed=42, label_func=is_cat,
                                          item_tfms=Resize(40), batch_tfms=aug_transforms(size=32), bs=64)
    pipekit.set_seed(42)
    learn = vision_learner(dls, "simple_cnn", metrics=error_rate)
    learn.fit_one_cycle(4, 5e-3)
    return learn


def test_trained_from_file_names_beats_the_majority(learn):
    dls = learn.dls
    assert dls.vocab == [False, True] and len(dls.train_ds) == 2400 and len(dls.valid_ds) == 600
    _, targs = learn.get_preds()
    majority = max(float(targs.float().mean()), 1 - float(targs.float().mean()))
    err = learn.recorder.value("error_rate")
    assert 1 - err > majority + 0.05, (err, majority)


def test_predict_takes_the_photo_in_every_form(learn, tmp_path):
    photo = path / "valid" / "cats" / "cat.1507.jpg"
    pixels = decode_image(photo)  # (H, W, 3) uint8, as pipekit decodes the file
    forms = {
        "Path": photo, "str": str(photo), "bytes": photo.read_bytes(), "ndarray HWC": pixels,
        "PIL image": PIL.Image.fromarray(pixels), "tensor CHW uint8": torch.from_numpy(pixels).permute(2, 0, 1),
        "tensor CHW float": torch.from_numpy(pixels).permute(2, 0, 1).float() / 255,
        "PILImage.create": PILImage.create(photo),
    }
    preds = {name: learn.predict(v) for name, v in forms.items()}
    ref = preds["Path"]
    assert isinstance(ref[0], bool) and float(probs_of(ref).sum()) == pytest.approx(1.0, abs=1e-5)
    assert int(ref[1]) == learn.dls.vocab.index(ref[0])
    for name, p in preds.items():
        assert p[0] == ref[0] and np.allclose(probs_of(p), probs_of(ref), atol=1e-6), name
    # PIL's own JPEG decoder gives nearly the same pixels
    opened = learn.predict(PIL.Image.open(photo))
    assert opened[0] == ref[0] and np.allclose(probs_of(opened), probs_of(ref), atol=0.05)
    # a grey 2-D array goes to this colour model as three equal channels
    grey = learn.predict(pixels.mean(2).astype(np.uint8))
    assert float(probs_of(grey).sum()) == pytest.approx(1.0, abs=1e-5)
    # what is not an image is refused, saying what is accepted
    with pytest.raises(DataError, match="file paths.*PIL images"):
        learn.predict(42)
    with pytest.raises(ImageDecodeError, match="no channel axis"):
        learn.predict(np.zeros((10, 12, 7), np.uint8))
    with pytest.raises(ImageDecodeError, match="0..1"):
        learn.predict(np.full((3, 10, 10), 7.0, np.float32))
    with pytest.raises(ParameterError, match="one item; this DataFrame has 2 rows"):
        import polars as pl
        learn.predict(pl.DataFrame({"path": [str(photo)] * 2}))


def test_an_opened_photo_shows_itself_as_the_book_shows_it():
    """``img = PILImage.create(fn); img`` in a notebook is the picture (its PNG), ``img.to_thumb(192)`` a smaller
    one, and its text a line, not 200x200x3 numbers; it stays the pixels everything else takes."""
    photo = path / "valid" / "cats" / "cat.1507.jpg"
    img = PILImage.create(photo)
    h, w = img.shape[:2]
    assert repr(img) == f"PILImage mode=RGB size={w}x{h}"
    png = PIL.Image.open(io.BytesIO(img._repr_png_()))
    assert png.size == (w, h) and np.array_equal(np.asarray(png), decode_image(photo))
    thumb = img.to_thumb(64)
    assert max(thumb.shape[:2]) == 64 and abs(thumb.shape[1] / thumb.shape[0] - w / h) < 0.05
    assert repr(thumb).startswith("PILImage mode=RGB size=")
    # arithmetic gives plain arrays (a mean image is no photo), crops stay pictures
    assert type(img / 255) is np.ndarray and type(img.mean()) is np.float64
    assert repr(img[:10, :20]) == "PILImage mode=RGB size=20x10"
    grey = PILImageBW.create(photo)
    assert repr(grey).startswith("PILImageBW mode=L") and grey._repr_png_()[:4] == b"\x89PNG"


def test_export_answers_the_same_in_a_fresh_process(learn, tmp_path):
    export = learn.export(tmp_path / "cats.pipekit")
    photos = [path / "valid" / "cats" / "cat.1507.jpg", path / "valid" / "dogs" / "dog.1600.jpg"]
    pixels = decode_image(photos[1])
    items = [("path", photos[0]), ("str", str(photos[1])), ("bytes", photos[0]), ("array", pixels),
             ("tensor", pixels.transpose(2, 0, 1).copy()), ("pil", pixels)]
    here = [learn.predict(photos[0]), learn.predict(photos[1]), learn.predict(photos[0]), learn.predict(pixels),
            learn.predict(torch.from_numpy(pixels.transpose(2, 0, 1).copy())), learn.predict(PIL.Image.fromarray(pixels))]
    there = fresh_predictions(export, items, tmp_path)
    for (kind, _), mine, (decoded, probs) in zip(items, here, there):
        assert decoded == mine[0] and np.allclose(probs, probs_of(mine), atol=1e-6), kind


def test_what_a_notebook_cell_shows_of_the_learners_parts(learn, tmp_path):
    """The last line of a cell shows an object's repr: the recorder's epochs and last row, an interpretation's
    size, and a loaded learner's loaders (which hold no data) say what they are."""
    from pipekit.learn import ClassificationInterpretation, load_learner

    rec = repr(learn.recorder)
    last = learn.recorder.values[-1]
    assert rec.startswith(f"Recorder(4 epochs, {len(learn.recorder.losses)} batches; last epoch: "), rec
    assert f"train_loss={last[0]:.6f}, valid_loss={last[1]:.6f}, error_rate={last[2]:.6f})" in rec, rec
    interp = ClassificationInterpretation.from_learner(learn)
    assert repr(interp) == (f"ClassificationInterpretation({len(learn.dls.valid.dataset)} items, 2 classes, "
                            f"mean loss {float(interp.losses.mean()):.4f})")
    loaded = load_learner(learn.export(tmp_path / "cats.pipekit"))
    assert repr(loaded.dls) == ("DataLoaders(no data: encodes new items as at training, vocab=[False, True], "
                                "device=cpu, recipe=DataBlock)")
