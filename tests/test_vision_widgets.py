"""ImageClassifierCleaner (the book's chapter 2): the hardest images per label and split, choices to keep, delete or
relabel them, with ipywidgets' drop-downs and without them; on mnist_tiny."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

import pipekit.datasets as D

pytestmark = pytest.mark.data


@pytest.fixture(scope="module")
def learn(tmp_path_factory):
    from pipekit.vision.all import ImageDataLoaders, error_rate, resnet18, vision_learner

    src = D.path("mnist_tiny")
    path = tmp_path_factory.mktemp("mnist") / "mnist_tiny"
    for split in ("train", "valid"):  # a copy: the book's loop deletes and moves files
        shutil.copytree(src / split, path / split)
    dls = ImageDataLoaders.from_folder(path, bs=64, seed=0)
    lrn = vision_learner(dls, resnet18, pretrained=False, metrics=error_rate)
    lrn.fit_one_cycle(1)
    return lrn


def _expected(learn, ds_idx, label):
    """The split's files of ``label``, highest loss first, from get_preds over the unshuffled loader."""
    dl = learn.dls[ds_idx].new(shuffle=False, drop_last=False)
    _, targs, losses = learn.get_preds(dl=dl, with_loss=True)
    vocab = list(learn.dls.vocab)
    rows = [(float(loss), f) for f, t, loss in zip(dl.items, targs.tolist(), losses) if vocab[t] == label]
    rows.sort(key=lambda r: -r[0])
    return [f for _, f in rows], [loss for loss, _ in rows]


def test_views_sorted_by_loss_and_book_loop_acts_on_files(learn):
    from pipekit.vision.widgets import ImageClassifierCleaner, has_ipywidgets

    assert has_ipywidgets()  # the dev extra installs it: the drop-downs are what is tested here
    cleaner = ImageClassifierCleaner(learn, max_n=12)
    files, losses = _expected(learn, 0, "3")
    assert (cleaner.category, cleaner.split) == ("3", "Train")
    assert [str(f) for f in cleaner.fns] == [str(f) for f in files[:12]]
    np.testing.assert_allclose(cleaner.losses, losses[:12], rtol=1e-5)
    assert all(f.parent.name == "3" and f.parent.parent.name == "train" for f in cleaner.fns)

    # the notebook's drop-downs: the view follows the label and split chosen
    cleaner.dd_ds.value = "Valid"
    cleaner.dd_cats.value = "7"
    files, _ = _expected(learn, 1, "7")
    assert [str(f) for f in cleaner.fns] == [str(f) for f in files[:12]]
    thumbs = cleaner.iw.widget.children
    assert len(thumbs) == len(cleaner.fns) and thumbs[0].children[0].value[:8] == b"\x89PNG\r\n\x1a\n"

    # each thumbnail's drop-down is a choice; delete()/change() give positions in fns
    thumbs[1].children[-1].value = "<Delete>"
    cleaner.mark(3, "3")
    assert cleaner.delete() == [1] and cleaner.change() == [(3, "3")]
    gone, moved = cleaner.fns[1], cleaner.fns[3]
    path = gone.parent.parent.parent
    for idx in cleaner.delete():
        cleaner.fns[idx].unlink()
    for idx, cat in cleaner.change():
        shutil.move(str(cleaner.fns[idx]), path / "valid" / cat)
    assert not gone.exists() and not moved.exists() and (path / "valid" / "3" / moved.name).exists()

    # the view shown again leaves out the files the loop deleted or moved
    cleaner.select("3", "Train")
    cleaner.select("7", "Valid")
    assert gone not in cleaner.fns and moved not in cleaner.fns and cleaner.fns[0] == files[0]

    # a view switch starts with every image kept
    cleaner.select("3", "Train")
    assert cleaner.delete() == [] and cleaner.change() == [] and cleaner.fns[0].parent.name == "3"
    with pytest.raises(Exception, match="'8' is not one of"):
        cleaner.select("8")
    with pytest.raises(Exception, match="'Test' is not one of"):
        cleaner.select(split="Test")
    with pytest.raises(Exception, match="'<Remove>' is not one of"):
        cleaner.mark(0, "<Remove>")


def test_without_ipywidgets_marks_and_html(learn, monkeypatch):
    import pipekit.vision.widgets as W

    monkeypatch.setattr(W, "has_ipywidgets", lambda: False)
    cleaner = W.ImageClassifierCleaner(learn, max_n=5)
    assert cleaner.widget is None and len(cleaner.fns) == 5
    cleaner.select("7", "Train")
    assert all(f.parent.name == "7" and f.parent.parent.name == "train" for f in cleaner.fns)
    cleaner.mark(4, "<Delete>")
    cleaner.mark(0, "3")
    assert cleaner.delete() == [4] and cleaner.change() == [(0, "3")]
    page = cleaner._repr_html_()
    assert page.count("<img src=\"data:image/png;base64,") == 5 and cleaner.fns[4].name in page
    assert "&lt;Delete&gt;" in page and ".mark(i, choice)" in page
    assert repr(cleaner) == "ImageClassifierCleaner('7', 'Train': 5 images shown, 1 to delete, 1 to relabel)"
    with pytest.raises(Exception, match=r"i=5 .*\[0, 4\]"):
        cleaner.mark(5, "<Delete>")


def test_refuses_learners_that_are_not_image_classifiers():
    from pipekit.tabular.all import Categorify, TabularDataLoaders, tabular_learner
    from pipekit.vision.widgets import ImageClassifierCleaner

    dls = TabularDataLoaders.from_csv(D.path("adult_sample") / "adult.csv", y_names="salary",
                                      cat_names=["workclass"], cont_names=["age"], procs=[Categorify], bs=256)
    with pytest.raises(Exception, match="images with one label each.*TabularBlock|images with one label each"):
        ImageClassifierCleaner(tabular_learner(dls))
