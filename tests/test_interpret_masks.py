"""Interpretation pictures and the tracker's best: a segmentation model's top losses drawn as input, target mask and
predicted mask (camvid_tiny), ``interp.show_results(idxs)``, a 0-d tensor as ``plot_top_losses``' k, and
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


def test_segmentation_top_losses_refuse_another_grid(seg_interp, tmp_path):
    with pytest.raises(ParameterError, match=r"a row per item, in 3 columns .* ncols=2"):
        seg_interp.plot_top_losses(2, ncols=2, path=tmp_path / "x.png")


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
