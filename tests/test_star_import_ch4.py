"""Chapter 4's cells after ``from pipekit.vision.all import *``, as after fastai's: NumPy's ``array``, the ``string``
and ``operator`` modules, ``re``, ``trainable_params``, and the plotting helpers ``subplots`` and
``show_titled_image``; and what ``load_learner`` says of a missing ``.pkl`` file."""
from __future__ import annotations

import os
import re

import numpy as np
import pytest
import torch

import pipekit.datasets as D

pytestmark = pytest.mark.skipif(not os.environ.get("PIPEKIT_DATA"), reason="needs $PIPEKIT_DATA")


@pytest.fixture(scope="module")
def star() -> dict:
    """The names a notebook has after the book's first cell."""
    globs: dict = {}
    exec("from pipekit.vision.all import *", globs)
    return globs


@pytest.fixture(scope="module")
def digits(star) -> tuple:
    """The book's ``im3`` and ``im7``: a 3 and a 7 of mnist_tiny, opened with PIL."""
    path = D.path("mnist_tiny")
    return tuple(star["Image"].open(sorted((path / "train" / d).iterdir())[1]) for d in ("3", "7"))


def test_array_of_a_real_digit_is_numpys_and_slices_as_chapter_4(star, digits):
    im3 = digits[0]
    got = eval("array(im3)[4:10,4:10]", star, {"im3": im3})
    assert star["array"] is np.array
    assert isinstance(got, np.ndarray) and got.shape == (6, 6) and got.dtype == np.uint8
    assert np.array_equal(got, np.asarray(im3)[4:10, 4:10]) and got.max() > 0  # some ink in that corner of the 3
    assert torch.equal(star["tensor"](got), torch.as_tensor(np.array(im3)[4:10, 4:10]))


def test_string_operator_and_re_are_the_modules_the_book_uses(star):
    import operator
    import string

    assert star["string"] is string and star["operator"] is operator and star["re"] is re
    ds = eval("L(enumerate(string.ascii_lowercase))", star)
    assert len(ds) == 26 and ds[0] == (0, "a") and ds[25] == (25, "z")
    dl = star["DataLoader"](ds, batch_size=6, shuffle=True, seed=0)  # the chapter's next cell
    idx, letters = zip(*[b for b in dl])
    assert sorted(torch.cat(idx).tolist()) == list(range(26))
    assert eval("L(range(1, 5)).map(partial(operator.mul, 3))", star) == [3, 6, 9, 12]
    assert eval(r"re.findall(r'(.+)_\d+.jpg$', 'great_pyrenees_173.jpg')", star) == ["great_pyrenees"]


def test_text_and_tabular_star_imports_give_the_same_names():
    for module in ("pipekit.text.all", "pipekit.tabular.all", "pipekit.basics"):
        globs: dict = {}
        exec(f"from {module} import *", globs)
        missing = [n for n in ("array", "string", "operator", "re", "trainable_params", "subplots",
                               "show_titled_image") if n not in globs]
        assert not missing, f"{module} lacks {missing}"


def test_trainable_params_leaves_out_a_frozen_layer(star):
    nn = star["nn"]
    model = nn.Sequential(nn.Linear(28 * 28, 30), nn.ReLU(), nn.Linear(30, 1))
    assert [p.shape for p in star["trainable_params"](model)] == [p.shape for p in model.parameters()]
    model[0].requires_grad_(False)
    got = star["trainable_params"](model)
    assert [tuple(p.shape) for p in got] == [(1, 30), (1,)]
    assert all(a is b for a, b in zip(got, model[2].parameters()))
    # what an optimizer built on them changes: only the layer left trainable
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.SGD(got, lr=0.1)
    model(torch.rand(4, 28 * 28)).sum().backward()
    opt.step()
    after = list(model.parameters())
    assert torch.equal(before[0], after[0]) and not torch.equal(before[2], after[2])


def test_subplots_and_show_titled_image_headless_write_the_grid_to_the_plots_folder(star, digits, tmp_path,
                                                                                      monkeypatch):
    plt = star["plt"]
    plt.close("all")  # figures another test in this process left open are not this test's
    work, plots = tmp_path / "work", tmp_path / "plots"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("PIPEKIT_PLOTS", str(plots))
    im3, im7 = digits
    fig, axs = star["subplots"](1, 2, name="ch4_digits")
    assert isinstance(axs, np.ndarray) and axs.shape == (2,) and tuple(fig.get_size_inches()) == (6.0, 3.0)
    assert plt.gcf() is fig  # open and current, for the user's plt.savefig
    star["show_titled_image"]((im3, 3), ax=axs[0])
    png = plots / "ch4_digits.png"
    first = png.read_bytes()
    assert star["show_titled_image"]((star["tensor"](np.asarray(im7)), "a seven"), ax=axs[1]) is axs[1]
    assert [ax.get_title() for ax in axs] == ["3", "a seven"]
    assert axs[0].images[0].get_array().shape == (28, 28)
    # the same file again, now holding both digits; nothing in the working folder
    assert sorted(p.name for p in plots.iterdir()) == ["ch4_digits.png"] and png.read_bytes() != first
    assert list(work.iterdir()) == []
    # one axes is still indexed as axs[0]; a 2 x 2 grid is 2-d; the next grid gets its own file
    _, one = star["subplots"](name="ch4_digits")
    assert one.shape == (1,)
    star["show_titled_image"]((im7, "7"), ax=one[0])
    assert (plots / "ch4_digits_2.png").exists() and png.exists()
    assert star["subplots"](2, 2, imsize=2)[1].shape == (2, 2)
    # without ax=, a figure of its own, written where show_image writes
    ax = star["show_titled_image"]((im3, "three"), name="ch4_three")
    assert ax.get_title() == "three" and (plots / "ch4_three.png").exists() and list(work.iterdir()) == []
    assert len(plt.get_fignums()) == 1  # only the last figure is left open
    plt.close("all")


def test_subplots_and_show_titled_image_refuse_what_they_cannot_draw(star, digits):
    from pipekit.core.errors import ParameterError

    with pytest.raises(ParameterError, match=r"show_titled_image: o is a PngImageFile; give one \(image, title\) pair"):
        star["show_titled_image"](digits[0])
    with pytest.raises(ParameterError, match=r"show_titled_image: o is a tuple of 3"):
        star["show_titled_image"]((digits[0], "3", "extra"))
    with pytest.raises(ParameterError, match=r"subplots: nrows=0; give a whole number of at least 1"):
        star["subplots"](0, 2)


def test_load_learner_of_a_missing_pkl_says_export_keeps_the_name_it_is_given(tmp_path, monkeypatch):
    import pandas as pd

    from pipekit.collab import CollabDataLoaders, collab_learner, load_learner

    monkeypatch.chdir(tmp_path)
    ratings = pd.read_csv(D.path("movie_lens_sample") / "ratings.csv")
    learn = collab_learner(CollabDataLoaders.from_df(ratings, bs=64, seed=42), n_factors=8, y_range=(0, 5.5))
    with pytest.raises(FileNotFoundError) as missing:
        load_learner("mine.pkl")
    message = str(missing.value)
    assert message.startswith("no such file: mine.pkl; ")
    assert "writes export.pipekit (under learn.path), or the name given to it whatever its suffix" in message
    assert "fastai's pickled exports are never read" in message and "check the path" in message
    assert "not a .pkl" not in message
    # what the message says is so: learn.export('mine.pkl') writes a pipekit file of that name, which loads
    learn.export("mine.pkl")
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix in (".pkl", ".pipekit")) == ["mine.pkl"]
    assert type(load_learner("mine.pkl").model) is type(learn.model)
