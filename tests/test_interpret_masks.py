"""Interpretation pictures and the tracker's best: a segmentation model's top losses drawn as input, target mask and
predicted mask (camvid_tiny), a row per item whatever ``nrows`` and ``ncols``, ``interp.show_results(idxs)`` (mnist_tiny,
camvid_tiny, imdb_sample), a 0-d tensor as ``plot_top_losses``' k, and
``TrackerCallback.best`` set by hand (fastai's ``self.best = ...``) on mnist_tiny."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import pipekit.datasets as D
from pipekit.core.errors import ParameterError
from pipekit.data import get_image_files
from pipekit.data.plotting import get_pyplot
from pipekit.data.seed import set_seed
from pipekit.learn import (
    ClassificationInterpretation, EarlyStoppingCallback, Learner, SaveModelCallback, SegmentationInterpretation,
    TrackerCallback,
)
from pipekit.vision import Resize, SegmentationDataLoaders

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def seg_interp() -> SegmentationInterpretation:
    """camvid_tiny's first 10 photos at 24x32, a 1x1 convolution trained one epoch: 2 validation items."""
    set_seed(0)
    path = D.path("camvid_tiny")
    dls = SegmentationDataLoaders.from_label_func(
        path, fnames=get_image_files(path / "images")[:10], label_func=lambda o: path / "labels" / f"{o.stem}_P{o.suffix}",
        codes=np.loadtxt(path / "codes.txt", dtype=str), item_tfms=Resize((24, 32)), bs=4, seed=0)
    learn = Learner(dls, nn.Conv2d(3, len(dls.vocab), 1))
    with learn.no_bar(), learn.no_logging():
        learn.fit(1, 1e-2)
    interp = SegmentationInterpretation.from_learner(learn)
    assert len(interp.losses) == 2
    return interp  # type: ignore[return-value]


@pytest.fixture(scope="module")
def mnist_interp(mnist_dls) -> ClassificationInterpretation:
    set_seed(0)
    learn = Learner(mnist_dls, nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 2)))
    with learn.no_bar(), learn.no_logging():
        learn.fit(1, 1e-2)
    return ClassificationInterpretation.from_learner(learn)  # type: ignore[return-value]


def _drawn(ax) -> list[np.ndarray]:
    """The pictures drawn on ``ax``, first drawn first."""
    return [np.asarray(im.get_array()) for im in ax.get_images()]


def test_segmentation_top_losses_draw_input_target_and_prediction(seg_interp, tmp_path):
    interp = seg_interp
    losses, idxs = interp.top_losses(2)
    png = interp.plot_top_losses(2, path=tmp_path / "top.png")
    assert png == tmp_path / "top.png" and png.stat().st_size > 0
    axes = get_pyplot().gcf().axes
    assert len(axes) == 6  # 2 rows of input, target, prediction
    for r, (i, loss) in enumerate(zip(idxs.tolist(), losses.tolist())):
        ax_in, ax_targ, ax_pred = axes[3 * r: 3 * r + 3]
        right = float((interp.decoded[i] == interp.targs[i]).float().mean())
        assert (ax_in.get_title(), ax_targ.get_title()) == ("input", "target")
        assert ax_pred.get_title() == f"{right:.0%} of pixels / {loss:.2f}"
        photo = _drawn(ax_in)
        assert len(photo) == 1 and photo[0].shape[:2] == (24, 32)
        # the target and the prediction: the photo, then the mask over it
        for ax, mask in ((ax_targ, interp.targs[i]), (ax_pred, interp.decoded[i])):
            drawn = _drawn(ax)
            assert len(drawn) == 2 and np.array_equal(drawn[0], photo[0])
            assert np.array_equal(drawn[1], mask.numpy())


def _mask_rows(axes) -> list[tuple[np.ndarray, np.ndarray]]:
    """The (target, prediction) masks drawn in each row of a segmentation model's top losses."""
    return [(_drawn(axes[3 * r + 1])[1], _drawn(axes[3 * r + 2])[1]) for r in range(len(axes) // 3)]


@pytest.mark.parametrize("grid", [dict(nrows=1), dict(ncols=2), dict(nrows=5, ncols=4)])
def test_segmentation_top_losses_are_a_row_per_item_whatever_the_grid(seg_interp, tmp_path, grid):
    # the book's plot_top_losses(k, nrows=1): nrows and ncols change nothing, k rows of 3 are drawn
    interp = seg_interp
    idxs = interp.top_losses(2)[1].tolist()
    interp.plot_top_losses(2, path=tmp_path / "grid.png", **grid)
    axes = get_pyplot().gcf().axes
    assert len(axes) == 6 and [ax.get_title() for ax in axes[::3]] == ["input", "input"]
    assert [tuple(ax.get_subplotspec().get_geometry()[:2]) for ax in axes] == [(2, 3)] * 6
    assert all(np.array_equal(t, interp.targs[i].numpy()) and np.array_equal(p, interp.decoded[i].numpy())
               for (t, p), i in zip(_mask_rows(axes), idxs))
    # more rows asked for than items: a row per item
    interp.plot_top_losses(50, nrows=50, path=tmp_path / "more.png")
    assert len(get_pyplot().gcf().axes) == 6


def test_segmentation_top_losses_smallest_first(seg_interp, tmp_path):
    interp = seg_interp
    losses, idxs = interp.top_losses(2, largest=False)
    assert losses[0] <= losses[1] and idxs.tolist() != interp.top_losses(2)[1].tolist()
    interp.plot_top_losses(2, largest=False, path=tmp_path / "small.png")
    axes = get_pyplot().gcf().axes
    rows = _mask_rows(axes)
    assert len(rows) == 2
    for (targ, pred), i, loss, ax in zip(rows, idxs.tolist(), losses.tolist(), axes[2::3]):
        assert np.array_equal(targ, interp.targs[i].numpy()) and np.array_equal(pred, interp.decoded[i].numpy())
        assert ax.get_title().endswith(f" / {loss:.2f}")


def test_show_results_of_chosen_items(mnist_interp, tmp_path):
    interp = mnist_interp
    idxs = interp.top_losses(3)[1]
    png = interp.show_results(idxs, path=tmp_path / "results.png")
    assert png == tmp_path / "results.png" and png.stat().st_size > 0
    titles = [ax.get_title() for ax in get_pyplot().gcf().axes]
    v = interp.vocab
    assert titles == [f"{v[int(interp.targs[i])]} / {v[int(interp.decoded[i])]}" for i in idxs.tolist()]
    # one index, as an int
    interp.show_results(int(idxs[0]), path=tmp_path / "one.png")
    assert [ax.get_title() for ax in get_pyplot().gcf().axes] == titles[:1]


def test_show_results_of_masks_side_by_side(seg_interp, tmp_path):
    interp = seg_interp
    interp.show_results([1], path=tmp_path / "seg.png")
    axes = get_pyplot().gcf().axes
    assert [ax.get_title() for ax in axes] == ["target", "prediction"]
    assert np.array_equal(_drawn(axes[0])[1], interp.targs[1].numpy())
    assert np.array_equal(_drawn(axes[1])[1], interp.decoded[1].numpy())


def test_show_results_of_a_text_classifier_shows_each_items_own_text(tmp_path):
    # 120 imdb_sample reviews, a small AWD_LSTM classifier trained one epoch: 24 validation reviews
    import re

    import polars as pl

    from pipekit.text import AWD_LSTM, TextDataLoaders, text_classifier_learner

    df = pl.read_csv(D.path("imdb_sample") / "texts.csv").head(120)
    set_seed(0)
    dls = TextDataLoaders.from_df(df, text_col="text", label_col="label", valid_pct=0.2, min_freq=3, cache_dir=False,
                                  bs=16, seed=0, seq_len=24)
    learn = text_classifier_learner(dls, AWD_LSTM, config=dict(emb_sz=16, n_hid=32, n_layers=1), pretrained=False,
                                    seq_len=24)
    with learn.no_bar(), learn.no_logging():
        learn.fit(1, 1e-2)
    interp = ClassificationInterpretation.from_learner(learn)
    _, order, items = interp.top_losses(None, items=True)
    raw = dict(zip(order.tolist(), items["text"].to_list()))  # each item's review as read from the table
    chosen = [3, 0, len(raw) - 1]
    interp.show_results(chosen, path=tmp_path / "texts.png")
    axes = get_pyplot().gcf().axes
    v = interp.vocab
    assert [ax.get_title() for ax in axes] == [f"{v[int(interp.targs[i])]} / {v[int(interp.decoded[i])]}"
                                               for i in chosen]
    shown = [" ".join(t.get_text() for t in ax.texts) for ax in axes]
    assert len(set(shown)) == len(chosen)
    for text, i in zip(shown, chosen):
        # the words shown (special xx tokens and the cut last word aside) are the item's own review's
        words = [w for w in re.findall(r"[a-z]+", text.lower()) if not w.startswith("xx")][:-1]
        review = raw[i].lower()
        assert len(words) >= 5 and all(w in review for w in words), (i, text)


def test_show_results_refuses_bad_arguments(mnist_interp):
    with pytest.raises(ParameterError, match="idxs is empty"):
        mnist_interp.show_results([])
    with pytest.raises(ParameterError, match="did you mean 'nrows'"):
        mnist_interp.show_results([0], nrow=1)
    with pytest.raises(ParameterError, match="out of range"):
        mnist_interp.show_results([len(mnist_interp.losses)])


def test_plot_top_losses_takes_a_0d_tensor_as_k(mnist_interp, tmp_path):
    interp = mnist_interp
    k = (interp.losses >= interp.losses.sort(descending=True).values[3]).sum()  # a 0-d tensor: at least 4
    assert k.ndim == 0 and int(k) >= 4
    interp.plot_top_losses(k, path=tmp_path / "k.png")
    assert sum(bool(ax.get_images()) for ax in get_pyplot().gcf().axes) == int(k)
    interp.plot_top_losses(np.array(2), path=tmp_path / "k2.png")
    assert sum(bool(ax.get_images()) for ax in get_pyplot().gcf().axes) == 2


@pytest.mark.parametrize("k, why", [(torch.tensor(0), r"k=tensor\(0\) is not accepted; expected an integer"),
                                    (torch.ones(2, 2), r"shape \(2, 2\), not one number"),
                                    (2.5, "k=2.5 is not accepted"), ("3", "a str, not a number")])
def test_plot_top_losses_refuses_other_k(mnist_interp, k, why):
    with pytest.raises(ParameterError, match=why):
        mnist_interp.plot_top_losses(k)


# ---------------------------------------------------------------- TrackerCallback.best set by hand


class _Seeded(TrackerCallback):
    """A tracker whose fits start from the best ``start`` (fastai's ``self.best = ...`` in ``before_fit``), noting
    which epochs improved on it."""

    def __init__(self, start, **kwargs):
        super().__init__(**kwargs)
        self.start, self.flags = start, []

    def before_fit(self):
        super().before_fit()
        if self.start is not None:
            self.best = self.start

    def after_epoch(self):
        super().after_epoch()
        self.flags.append(self.new_best)


def _fit(dls, cb, n=2):
    set_seed(0)
    learn = Learner(dls, nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 2)), path=tempfile.mkdtemp())
    with learn.no_bar(), learn.no_logging():
        learn.fit(n, 1e-2, cbs=cb)
    return learn, [v[1] for v in learn.recorder.values]


def _improvements(start, values):
    best, out = start, []
    for v in values:
        out.append(best is None or v < best)
        best = v if out[-1] else best
    return out


def test_best_set_in_before_fit_decides_the_improvements(mnist_dls):
    plain = _Seeded(None)
    _, values = _fit(mnist_dls, plain)
    assert plain.flags == _improvements(None, values) and plain.flags[0]
    # a best just under the first epoch's loss: that epoch no longer improves on it
    seeded = _Seeded(values[0] - 1e-4)
    _, seeded_values = _fit(mnist_dls, seeded)
    assert seeded.flags == _improvements(values[0] - 1e-4, seeded_values)
    assert not seeded.flags[0]
    # a best no loss beats: no epoch improves, and the best stays the one set
    floor = _Seeded(0.0)
    _fit(mnist_dls, floor)
    assert floor.flags == [False, False] and floor.best == 0.0


def test_best_seeded_before_a_fit_without_reset(mnist_dls):
    cb = SaveModelCallback(reset_on_fit=False)
    cb.best = 0.0  # no validation loss is below it: nothing is saved
    learn, _ = _fit(mnist_dls, cb, n=1)
    assert cb.best == 0.0 and cb.best_epoch_ is None
    assert not (Path(learn.path) / learn.model_dir / "model.pth").exists()
    stop = EarlyStoppingCallback(patience=1, reset_on_fit=False)
    stop.best = torch.tensor(0.0)  # a 0-d tensor as the number it holds
    assert stop.best == 0.0 and type(stop.best_) is float
    learn, values = _fit(mnist_dls, stop, n=4)
    # epoch 0 does not improve on the best set, so the fit stops there (unseeded, epoch 0 sets the best)
    assert len(values) == 1 and stop.stopped_epoch_ == 0


@pytest.mark.parametrize("value", [None, math.inf, -math.inf, np.float32("inf")])
def test_best_set_to_none_or_infinite_means_no_best_yet(value):
    cb = SaveModelCallback(reset_on_fit=False)
    cb.best = 0.3
    assert cb.best == 0.3 and cb.best_ == 0.3
    cb.best = value
    assert cb.best is None and cb.best_ is None
    # what a checkpoint of the tracker may hold
    assert TrackerCallback.STATE_FIELDS["best_"].accepts(cb.best_)
    assert cb.improved(5.0)


@pytest.mark.parametrize("value, shown", [(math.nan, "best=nan"), ("0.5", "best='0.5'"),
                                          (torch.ones(2), "best=tensor"), (True, "best=True")])
def test_best_refuses_nan_and_non_numbers(value, shown):
    cb = TrackerCallback()
    with pytest.raises(ParameterError, match=rf"TrackerCallback: {shown}.* is not accepted; expected a number"):
        cb.best = value
    assert cb.best is None


def test_indices_read_as_the_loaders_read_them(mnist_interp):
    """``interp[idxs]``, ``show_results`` and ``plot_top_losses``' ranks take an index as a loader takes one: a
    slice too, negative positions from the end; anything else is refused, naming the argument."""
    interp, n = mnist_interp, len(mnist_interp.losses)
    sliced, listed = interp[1:4], interp[[1, 2, 3]]
    assert all(torch.equal(a, b) for a, b in zip(sliced, listed))
    assert torch.equal(interp[-1][4], interp.losses[n - 1:]) and torch.equal(interp[np.int64(2)][0], interp.inputs[2:3])
    with pytest.raises(ParameterError, match=rf"show_results: the indices: item {n} is out of range: this "
                                             rf"interpretation has {n} items"):
        interp.show_results([0, n])
    with pytest.raises(ParameterError, match=rf"interp\[idxs\]: the indices: item -{n + 1} is out of range"):
        interp[torch.tensor([-n - 1])]
    for bad in (True, [True, False], 1.0, "0", [[0, 1]]):
        with pytest.raises(ParameterError, match=r"interp\[idxs\]: the indices: items are indexed by an integer"):
            interp[bad]
    with pytest.raises(ParameterError, match=r"plot_top_losses: the ranks k: .*got list of float64"):
        interp.plot_top_losses([0.5])


def test_table_top_losses_show_the_predictions_show_results_shows(monkeypatch):
    """A tabular regression's table of top losses (adult_sample) has the rows and predictions ``show_results``
    gives the same items, in loss order."""
    import polars as pl

    import pipekit.learn.interpret as interpret
    from pipekit.learn import Interpretation
    from pipekit.tabular import TabularDataLoaders, tabular_learner

    tables: list = []
    monkeypatch.setattr(interpret, "show_table", lambda frame, path=None, name="table": tables.append(frame))
    monkeypatch.setattr(interpret, "show_items", lambda rows, blocks, n_inp, preds, **kw: tables.append(preds))
    set_seed(0)
    adult = pl.read_csv(D.path("adult_sample") / "adult.csv").head(400)
    dls = TabularDataLoaders.from_df(adult, y_names="age", cat_names=["workclass", "salary"], cont_names=["fnlwgt"],
                                     bs=64, seed=0)
    learn = tabular_learner(dls, layers=[10])
    with learn.no_bar(), learn.no_logging():
        learn.fit(1, 1e-2)
    interp = Interpretation.from_learner(learn)
    losses, idxs = interp.top_losses(4)
    interp.plot_top_losses(4)
    interp.show_results(idxs)
    frame, shown = tables
    assert frame["loss"].to_list() == [round(v, 4) for v in losses.tolist()]
    assert len(shown) == 4 and shown == pytest.approx(interp.decoded[idxs].reshape(-1).tolist())
    assert [float(v) for v in frame["age_pred"]] == pytest.approx(shown, rel=1e-2)  # shown to 3 significant digits
    assert frame["age"].cast(pl.Float64).to_list() == pytest.approx(interp.targs[idxs].reshape(-1).tolist(), rel=1e-3)
