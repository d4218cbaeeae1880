"""Names the book's and fastai's tutorials use unqualified after a star import: chapter 8's ``movie_w.pca(3)``,
``attrgetter``/``itemgetter`` in getters, ``store_attr()`` in a transform's ``__init__``."""
from __future__ import annotations

import os

import numpy as np
import pytest

from pipekit.tabular.all import *  # noqa: F403  (as the book's notebooks import)
from pipekit.vision.all import *  # noqa: F403

pytestmark = pytest.mark.skipif(not os.environ.get("PIPEKIT_DATA"), reason="needs $PIPEKIT_DATA")


def test_chapter_8_pca_of_movie_factors():
    import pipekit.datasets as D

    ratings = pd.read_csv(D.path("movie_lens_sample") / "ratings.csv")  # noqa: F405
    dls = CollabDataLoaders.from_df(ratings, bs=64, seed=0)  # noqa: F405
    learn = collab_learner(dls, n_factors=8, y_range=(0, 5.5))  # noqa: F405
    top_movies = ratings.groupby("movieId")["rating"].count().sort_values(ascending=False).index.values[:30]
    movie_w = learn.model.weight(top_movies, is_item=True)
    movie_pca = movie_w.pca(3)
    fac0, fac1, fac2 = movie_pca.t()
    assert movie_pca.shape == (30, 3) and fac0.shape == (30,)
    # the same axes as the model's own pca of those movies (each up to its sign)
    ref = learn.model.pca(3, values=top_movies)
    np.testing.assert_allclose(np.abs(movie_pca.double().numpy()), np.abs(ref), atol=1e-5)


def test_attrgetter_in_a_labelling_pipeline_and_store_attr_in_a_transform():
    import pipekit.datasets as D

    class Brighten(Transform):  # noqa: F405
        def __init__(self, by):
            store_attr()  # noqa: F405

        def encodes(self, x: PILImage):  # noqa: F405
            return np.minimum(np.asarray(x).astype(np.int16) + self.by, 255).astype(np.uint8)

    class Crop:
        def __init__(self, size, pad=0, mode="zeros"):
            store_attr(but="mode")  # noqa: F405

    c = Crop(64, pad=4)
    assert (c.size, c.pad, hasattr(c, "mode")) == (64, 4, False)
    t = Brighten(40)
    assert t.by == 40
    found = get_image_files(D.path("mnist_tiny") / "valid").sorted()  # noqa: F405
    files = found[:2] + found[-2:]  # two 3s, two 7s
    assert [attrgetter("name")(f) for f in files] == [f.name for f in files]  # noqa: F405
    assert itemgetter(0)(("a", "b")) == "a"  # noqa: F405
    dls = DataBlock(blocks=(ImageBlock(cls=PILImageBW), CategoryBlock), get_items=lambda p: files,  # noqa: F405
                    get_y=Pipeline([attrgetter("parent"), attrgetter("name")]),  # noqa: F405
                    splitter=IndexSplitter([0, 3]), item_tfms=[t]).dataloaders(D.path("mnist_tiny"), bs=2)  # noqa: F405
    plain = DataBlock(blocks=(ImageBlock(cls=PILImageBW), CategoryBlock), get_items=lambda p: files,  # noqa: F405
                      get_y=parent_label, splitter=IndexSplitter([0, 3])).dataloaders(D.path("mnist_tiny"), bs=2)  # noqa: F405
    (x, y), (x0, y0) = dls.valid.one_batch(), plain.valid.one_batch()
    assert dls.vocab == plain.vocab and torch.equal(y, y0)  # noqa: F405
    torch.testing.assert_close(x * 255, (x0 * 255 + 40).clamp(max=255))  # noqa: F405  (pixels scaled to 0..1)


def test_lesson_1_to_thumb_on_a_pil_image():
    import pipekit.datasets as D

    f = sorted((D.path("dogscats") / "valid" / "cats").iterdir())[0]
    im = Image.open(f)  # noqa: F405
    thumb = im.to_thumb(64, 64)
    assert isinstance(thumb, Image.Image) and max(thumb.size) == 64  # noqa: F405
    assert thumb.size[0] / thumb.size[1] == pytest.approx(im.size[0] / im.size[1], abs=0.05)
    assert im.size == Image.open(f).size  # noqa: F405  (a copy: the opened image is as it was)
    assert im.to_thumb(10_000).size == im.size  # never enlarged


def test_lessons_3_and_5_tensor_of_a_table_feeds_a_layer():
    """The course's from-scratch code: ``t_indep = tensor(df[indep_cols].values)`` is float32, as fastai's."""
    import pipekit.datasets as D

    df = pd.read_csv(D.path("adult_sample") / "adult.csv", nrows=100)  # noqa: F405
    df["log_wgt"] = np.log(df["fnlwgt"])
    t_indep = tensor(df[["age", "log_wgt"]].values)  # noqa: F405
    assert t_indep.dtype == torch.float32 and t_indep.shape == (100, 2)  # noqa: F405
    assert torch.allclose(t_indep[:, 1], torch.tensor(df["log_wgt"].to_numpy(), dtype=torch.float32))  # noqa: F405
    assert nn.Linear(2, 1)(t_indep).shape == (100, 1)  # noqa: F405
    assert tensor(df.age).tolist() == df.age.tolist() and tensor(df.log_wgt).dtype == torch.float32  # noqa: F405
    assert tensor(df[["age", "log_wgt"]]).shape == (100, 2)  # noqa: F405  (a frame as its values)
    assert tensor(np.array([0.5]), dtype=torch.float64).dtype == torch.float64  # noqa: F405  (asked for)


def test_lesson_8_learn_classes_is_the_models():
    import pipekit.datasets as D

    ratings = pd.read_csv(D.path("movie_lens_sample") / "ratings.csv")  # noqa: F405
    dls = CollabDataLoaders.from_df(ratings, bs=64, seed=0)  # noqa: F405
    learn = collab_learner(dls, n_factors=8, y_range=(0, 5.5))  # noqa: F405
    assert learn.classes is learn.model.classes and list(learn.classes["movieId"]) == list(dls.classes["movieId"])
    cnn = Learner(dls, nn.Linear(2, 1))  # noqa: F405  (a model without classes)
    with pytest.raises(AttributeError, match=r"has none; a classifier's classes are learn.dls.vocab"):
        _ = cnn.classes
