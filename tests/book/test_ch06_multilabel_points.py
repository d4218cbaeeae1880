"""Chapter 6, as a reader writes it: a multi-label classifier from a table (get_x / get_y functions of a
row, ``MultiCategoryBlock``, ``partial(accuracy_multi, thresh=0.2)``) and a key-point regression
(``PointBlock``), on mnist_tiny's digits. Multi-label: pictures holding one digit or two side by side, each
labelled with the digits it shows ("3", "7" or "3 7"), as PASCAL's pictures are labelled with the objects
they show. Points: each digit placed somewhere on a larger canvas, its centre of mass (computed from the
pixels) the point to find. Predictions take rows in every form a user holds them, and points come back in
pixels of the image predicted on.
"""
from __future__ import annotations

from functools import partial

import cv2
import numpy as np
import polars as pl
import pytest
import torch
from book_helpers import fresh_predictions, probs_of

import pipekit
import pipekit.datasets as D
from pipekit.core.errors import DataError
from pipekit.data import ColSplitter, DataBlock, GrandparentSplitter, MultiCategoryBlock, get_image_files
from pipekit.learn import accuracy_multi, load_learner, mse, simple_cnn
from pipekit.vision import ImageBlock, PointBlock, Resize, aug_transforms, decode_image, vision_learner

path = D.path("mnist_tiny")


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    """The book's PASCAL folder and table, for digits: 28x56 pictures of one digit (on either side) or of two,
    and a table of file name, space-separated labels and is_valid. A validation picture holds only
    validation digits."""
    root = tmp_path_factory.mktemp("pairs")
    table = pl.read_csv(path / "labels.csv")
    rng = np.random.default_rng(0)
    rows = []
    for split in ("train", "valid"):
        part = table.filter(pl.col("name").str.starts_with(split + "/"))
        names, labels = part["name"].to_list(), [str(v) for v in part["label"].to_list()]
        for i, (name, label) in enumerate(zip(names, labels)):
            canvas, shown = np.zeros((28, 56), np.uint8), {label}
            side = int(rng.integers(2))
            canvas[:, 28 * side:28 * side + 28] = decode_image(path / name, mode="L")[:, :, 0]
            if rng.random() < 0.5:
                j = int(rng.integers(len(names)))
                canvas[:, 28 * (1 - side):28 * (1 - side) + 28] = decode_image(path / names[j], mode="L")[:, :, 0]
                shown.add(labels[j])
            fname = f"{split}_{i:04d}.png"
            cv2.imwrite(str(root / fname), canvas)
            rows.append({"fname": fname, "labels": " ".join(sorted(shown)), "is_valid": split == "valid"})
    return root, pl.DataFrame(rows)


def get_y(r):
    return r["labels"].split(" ")


@pytest.fixture(scope="module")
def multi(pictures, one_torch_thread):
    root, df = pictures

    def get_x(r):
        return root / r["fname"]

    dblock = DataBlock(blocks=(ImageBlock(cls="L"), MultiCategoryBlock), splitter=ColSplitter("is_valid"),
                       get_x=get_x, get_y=get_y, item_tfms=Resize((28, 56)))
    dls = dblock.dataloaders(df, bs=64, seed=0)
    pipekit.set_seed(0)
    learn = vision_learner(dls, "simple_cnn", metrics=partial(accuracy_multi, thresh=0.2))
    learn.fit_one_cycle(3, 1e-2)
    return learn


def test_multi_label_beats_the_best_constant(multi, pictures):
    _, df = pictures
    assert multi.dls.vocab == ["3", "7"]
    preds, targs = multi.get_preds()
    assert targs.sum(1).min() == 1 and targs.sum(1).max() == 2  # one or two labels per picture
    share = targs.float().mean(0)
    best_constant = float(torch.maximum(share, 1 - share).mean())
    acc = multi.recorder.value("accuracy_multi")
    assert acc == pytest.approx(float(((preds > 0.2) == targs.bool()).float().mean()), abs=1e-6)
    assert acc > best_constant + 0.2, (acc, best_constant)
    # every label of a picture right, pictures of two digits included
    exact = ((preds > 0.5) == targs.bool()).all(1)
    two = targs.sum(1) == 2
    assert float(exact.float().mean()) > 0.8 and float(exact[two].float().mean()) > 0.7, (exact.mean(), two.sum())


def test_multi_label_predicts_rows_in_every_form(multi, pictures, tmp_path):
    root, df = pictures
    valid = df.filter(pl.col("is_valid"))
    i = valid["labels"].to_list().index("3 7")  # the first validation picture of two digits
    row = valid.row(i, named=True)
    forms = {"dict": row, "pandas Series": valid.to_pandas().iloc[i], "pandas frame": valid.to_pandas().iloc[[i]],
             "polars frame": valid[i], "bare path": root / row["fname"]}
    preds = {k: multi.predict(v) for k, v in forms.items()}
    ref = preds["dict"]
    probs = probs_of(ref)
    assert ref[0] == [v for v, p in zip(multi.dls.vocab, probs) if p > 0.5]  # the labels above one half
    assert ref[1].shape == (2,) and ref[1].tolist() == [float(p > 0.5) for p in probs]
    for k, p in preds.items():
        assert p[0] == ref[0] and np.allclose(probs_of(p), probs, atol=1e-6), k
    with pytest.raises(KeyError, match="fname"):  # a row without the column get_x reads
        multi.predict({"file": row["fname"], "labels": row["labels"]})
    export = multi.export(tmp_path / "multi.pipekit")
    (decoded, there), = fresh_predictions(export, [("path", root / row["fname"])], tmp_path)
    assert decoded == ref[0] and np.allclose(there, probs, atol=1e-6)
    # get_x, a function of the reader's, is not stored in the export (no pickle): the loaded model reads
    # bare images, and says why it cannot read rows
    with pytest.raises(DataError, match="without its getter 'get_x'.*pipekit.register"):
        load_learner(export).predict(row)


def centre_of_mass(p):
    """The book's get_ctr, for digits: the ink's centre in pixels (x, y), computed from the image itself."""
    img = decode_image(p, mode="L")[:, :, 0].astype(np.float64)
    ys, xs = np.mgrid[: img.shape[0], : img.shape[1]]
    return [[float((xs * img).sum() / img.sum()) + 0.5, float((ys * img).sum() / img.sum()) + 0.5]]


@pytest.fixture(scope="module")
def canvases(tmp_path_factory):
    """Each digit at a random place on a 48x48 canvas (MNIST centres its digits, so on their own 28x28
    images the centres barely move), written as PNG files under train/ and valid/."""
    root = tmp_path_factory.mktemp("digits")
    rng = np.random.default_rng(0)
    for f in get_image_files(path, folders=["train", "valid"]):
        canvas = np.zeros((48, 48), np.uint8)
        y, x = rng.integers(0, 21, size=2)
        canvas[y:y + 28, x:x + 28] = decode_image(f, mode="L")[:, :, 0]
        out = root / f.parent.parent.name / f.parent.name / f.name
        out.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(out), canvas)
    return root


@pytest.fixture(scope="module")
def points(canvases, one_torch_thread):
    dblock = DataBlock(blocks=(ImageBlock(cls="L"), PointBlock(img_size=(48, 48))), get_items=get_image_files,
                       get_y=centre_of_mass, splitter=GrandparentSplitter(), item_tfms=Resize(32),
                       batch_tfms=aug_transforms(max_rotate=10, max_warp=0))
    dls = dblock.dataloaders(canvases, bs=64, seed=0)
    pipekit.set_seed(0)
    # five stride-2 blocks see the whole 32-px image (as the book's resnet does): a point is a place, and
    # three blocks' pooled 4x4 features barely know where they came from; no dropout in a regression head
    arch = partial(simple_cnn, channels=(16, 32, 64, 64, 64))
    learn = vision_learner(dls, arch, metrics=mse, ps=0)
    learn.fit_one_cycle(6, 1e-2)
    return learn


def test_points_are_learned_and_answered_in_pixels(points, canvases, tmp_path):
    _, targs = points.get_preds()
    baseline = float(((targs - targs.mean(0)) ** 2).mean())  # always predicting the average centre
    assert points.recorder.value("mse") < 0.3 * baseline, (points.recorder.value("mse"), baseline)
    files = sorted(get_image_files(canvases / "valid"))[::35]
    errs, base_errs = [], []
    mean_centre = (targs.reshape(-1, 2).mean(0).numpy() + 1) / 2 * 48
    for f in files:
        pts, unit, _ = points.predict(f)
        assert pts.shape == (1, 2) and (pts >= 0).all() and (pts <= 48).all()  # pixels of the 48x48 image
        # -1..1 of the 32-px resized image, back to the 48-px source: (u + 1) / 2 * 48
        assert np.allclose(pts, (unit.numpy().reshape(1, 2) + 1) / 2 * 48, atol=1e-4)
        truth = np.asarray(centre_of_mass(f))
        errs.append(np.abs(pts - truth).max())
        base_errs.append(np.abs(mean_centre - truth).max())
    assert np.mean(errs) < 0.5 * np.mean(base_errs), (np.mean(errs), np.mean(base_errs))
    # the same digit as a grey 2-D array, a (H, W, 1) array or a tensor: the same pixels, the same answer
    f = files[0]
    grey = decode_image(f, mode="L")
    ref = points.predict(f)[0]
    for item in (grey[:, :, 0], grey, torch.from_numpy(grey[:, :, 0])):
        assert np.allclose(points.predict(item)[0], ref, atol=1e-5)
    there = fresh_predictions(points.export(tmp_path / "points.pipekit"), [("path", f), ("array", grey[:, :, 0])],
                              tmp_path)
    for decoded, _ in there:
        assert np.allclose(np.asarray(decoded), ref, atol=1e-5)


def test_multi_label_interpretation(multi, tmp_path, monkeypatch):
    """ClassificationInterpretation on the multi-label model: per-label report, top losses titled with label
    sets, and no confusion matrix (there is no one actual class per picture), where the flattened 0/1 bits
    were counted as class indices."""
    from sklearn.metrics import precision_score

    import pipekit.data.plotting as plotting
    from pipekit.core.errors import ParameterError
    from pipekit.learn import ClassificationInterpretation

    interp = ClassificationInterpretation.from_learner(multi)
    assert interp.multi_label
    for call in (interp.confusion_matrix, interp.most_confused, interp.plot_confusion_matrix):
        with pytest.raises(ParameterError, match="multi-label.*print_classification_report"):
            call()
    report = interp.classification_report()
    t, d = (interp.targs > 0.5).int().numpy(), (interp.decoded > 0.5).int().numpy()
    p7 = precision_score(t[:, 1], d[:, 1], zero_division=0)
    line7 = next(ln.split() for ln in report.splitlines() if ln.strip().startswith("7 "))
    assert float(line7[1]) == pytest.approx(p7, abs=0.006) and int(line7[-1]) == int(t[:, 1].sum())
    shown = []
    monkeypatch.setattr(plotting, "savefig_or_show", lambda fig, path=None, name="": shown.append(fig))
    monkeypatch.setattr("pipekit.learn.interpret.savefig_or_show", lambda fig, path=None, name="": shown.append(fig))
    interp.plot_top_losses(3)
    titles = [ax.get_title() for ax in shown[0].axes if ax.get_title()]
    losses, idxs = interp.top_losses(3)
    want = [";".join(multi.dls.vocab[j] for j in range(2) if interp.targs[i, j] > 0.5) for i in idxs.tolist()]
    assert len(titles) == 3 and [t.split(" / ")[0].split("/")[1] for t in titles] == want


def test_column_positions_and_a_pandas_index_splitter_build_the_same_loaders(pictures, tmp_path):
    from pipekit.core.errors import ParameterError, PipelineStepError
    from pipekit.data import ColReader

    root, df = pictures
    frame = df.to_pandas()

    def splitter(d):  # the book's splitter without .tolist(): pandas Index objects
        return d.index[~d["is_valid"]], d.index[d["is_valid"]]

    by_name = DataBlock(blocks=(ImageBlock(cls="L"), MultiCategoryBlock), splitter=ColSplitter("is_valid"),
                        get_x=ColReader("fname", pref=f"{root}/"), get_y=ColReader("labels", label_delim=" "))
    by_position = DataBlock(blocks=(ImageBlock(cls="L"), MultiCategoryBlock), splitter=splitter,
                            get_x=ColReader(0, pref=f"{root}/"), get_y=ColReader(1, label_delim=" "))
    a, b = by_name.dataloaders(frame, bs=16, seed=0), by_position.dataloaders(frame, bs=16, seed=0)
    assert a.vocab == b.vocab == ["3", "7"]
    assert all(torch.equal(x, y) for x, y in zip(a.one_batch(), b.one_batch()))
    assert b.valid.dataset.items[0]["fname"] == frame.loc[frame["is_valid"], "fname"].iloc[0]
    with pytest.raises(ParameterError, match=r"a column's position \(0 is the first, as in ColReader\(0\)\)"):
        ColReader(-1)
    with pytest.raises(PipelineStepError, match=r"getter ColReader\(cols=5\)' failed: DataError: ColReader: column "
                                                r"position\(s\) \[5\] past the 3 columns of the items"):
        DataBlock(blocks=(ImageBlock(cls="L"), MultiCategoryBlock), splitter=splitter,
                  get_x=ColReader(5), get_y=ColReader(1, label_delim=" ")).datasets(frame)
    def halves(d):
        return [0], [1], [2]

    with pytest.raises(DataError, match=r"the splitter halves\(\) returned tuple"):
        DataBlock(blocks=(ImageBlock(cls="L"), MultiCategoryBlock), splitter=halves,
                  get_x=ColReader(0, pref=f"{root}/"), get_y=ColReader(1, label_delim=" ")).datasets(frame)


def test_show_batch_draws_the_grid_it_is_given(multi, monkeypatch):
    import matplotlib.pyplot as plt

    import pipekit.data.show as show

    drawn = []

    def record(fig, *a, **k):  # the pictures each figure holds
        drawn.append(sum(1 for ax in fig.axes if ax.get_images()))
        plt.close(fig)

    monkeypatch.setattr(show, "savefig_or_show", record)
    multi.dls.show_batch(nrows=1, ncols=3)  # the book's chapter 6 call: three pictures in a row
    multi.dls.show_batch(max_n=4, nrows=1)
    multi.dls.show_batch()
    assert drawn == [3, 4, 9]
