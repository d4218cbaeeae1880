"""Metrics on the shapes and parameters users give them: a segmentation model's accuracy, several regression targets
in R2Score / ExplainedVariance, a language model's top-k accuracy, thresholds of logits in the multi-label metrics,
and NumPy arrays given to a metric called as a function."""
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import explained_variance_score, r2_score

from pipekit.core.errors import DataError, ParameterError
from pipekit.metrics import (
    Accuracy, ExplainedVariance, F1ScoreMulti, HammingLossMulti, R2Score, accuracy, accuracy_multi, error_rate,
    top_k_accuracy,
)

DATA = Path(os.environ.get("PIPEKIT_DATA", "/work/shared/data"))


def _pixel_accuracy(pred, targ):
    """The book's ``acc_camvid`` without a void code: each pixel's arg-max over the class axis against its class."""
    return float((pred.argmax(dim=1) == targ).float().mean())


# ------------------------------------------------------------------ accuracy of a segmentation model


def test_accuracy_of_masks_scores_pixels_when_classes_equal_width():
    torch.manual_seed(0)
    p, t = torch.randn(2, 4, 4, 4), torch.randint(0, 4, (2, 4, 4))  # 4 classes of 4x4 masks: C == w
    assert float(accuracy(p, t)) == pytest.approx(_pixel_accuracy(p, t))
    assert float(error_rate(p, t)) == pytest.approx(1 - _pixel_accuracy(p, t))


def test_accuracy_of_masks_of_other_shapes_scores_pixels():
    torch.manual_seed(1)
    p, t = torch.randn(2, 3, 5, 6), torch.randint(0, 3, (2, 5, 6))
    assert float(accuracy(p, t)) == pytest.approx(_pixel_accuracy(p, t))
    assert float(Accuracy(axis=1)(p, t)) == pytest.approx(_pixel_accuracy(p, t))


def test_accuracy_of_a_language_model_keeps_the_last_axis():
    torch.manual_seed(2)
    p, t = torch.randn(2, 3, 3), torch.randint(0, 3, (2, 3))  # (bs, seq_len, vocab), shaped both ways
    assert float(accuracy(p, t)) == pytest.approx(float((p.argmax(-1) == t).float().mean()))


def test_accuracy_refuses_targets_it_would_pair_with_other_items():
    torch.manual_seed(3)
    p, t = torch.randn(2, 3, 4, 5), torch.randint(0, 3, (2, 5, 4))  # masks transposed: as many pixels, other places
    with pytest.raises(DataError, match=r"shape \(2, 4, 5\).*\(2, 5, 4\).*Accuracy\(axis=1\)"):
        Accuracy(axis=1)(p, t)


def test_accuracy_on_a_segmentation_learner_records_pixel_accuracy():
    from pipekit.vision import Resize, SegmentationDataLoaders, unet_learner

    path = DATA / "camvid_tiny"
    codes = np.loadtxt(path / "codes.txt", dtype=str)
    assert len(codes) == 32  # Resize(32): as many classes as the masks' width, where the wrong axis went unseen
    fnames = sorted((path / "images").glob("*.png"))[:8]
    torch.manual_seed(0)
    dls = SegmentationDataLoaders.from_label_func(path, fnames, lambda o: path / "labels" / f"{o.stem}_P{o.suffix}",
                                                  codes=codes, item_tfms=Resize(32), bs=4, seed=42)
    learn = unet_learner(dls, "xresnet18", pretrained=False, metrics=accuracy)
    learn.fit(1, 1e-3)
    p, t = learn.get_preds()
    assert p.shape[1:] == (32, 32, 32) and t.shape[1:] == (32, 32)
    assert learn.recorder.values[-1][-1] == pytest.approx(_pixel_accuracy(p, t), abs=1e-6)


# ------------------------------------------------------------------ R2Score / ExplainedVariance of several targets


def _three_targets():
    rng = np.random.default_rng(0)
    p = torch.tensor(rng.normal(size=(37, 3)) * [1, 10, 100], dtype=torch.float32)
    t = torch.tensor(rng.normal(size=(37, 3)) * [1, 10, 100], dtype=torch.float32)
    return p, t


def _accumulated(metric, p, t):
    metric.reset()
    for s in (slice(0, 16), slice(16, 32), slice(32, 37)):
        metric.accumulate(p[s], t[s])
    return metric.value


@pytest.mark.parametrize("cls, sk, fastai_value", [
    # fastai 2.8.12's R2Score() / ExplainedVariance() accumulated on the same three batches of these tensors
    (R2Score, r2_score, -1.0894663333892822),
    (ExplainedVariance, explained_variance_score, -1.0309534072875977),
])
def test_several_targets_per_target_mean_by_default_pooled_as_fastai(cls, sk, fastai_value):
    p, t = _three_targets()
    assert _accumulated(cls(), p, t) == pytest.approx(sk(t.numpy(), p.numpy()), abs=1e-6)  # the mean of each target's
    assert _accumulated(cls(multioutput="pooled"), p, t) == pytest.approx(fastai_value, abs=1e-5)
    weighted = sk(t.numpy(), p.numpy(), multioutput="variance_weighted")
    assert _accumulated(cls(multioutput="variance_weighted"), p, t) == pytest.approx(weighted, abs=1e-6)


def test_one_target_scores_the_same_whatever_multioutput():
    p, t = _three_targets()
    assert R2Score(multioutput="pooled")(p[:, 1], t[:, 1]) == pytest.approx(R2Score()(p[:, 1], t[:, 1]))


@pytest.mark.parametrize("bad", ["flatten", "raw_values", None, 1])
def test_multioutput_is_checked(bad):
    with pytest.raises(ParameterError, match="multioutput.*'uniform_average', 'variance_weighted', 'pooled'"):
        R2Score(multioutput=bad)


def test_pooled_refuses_shapes_that_do_not_pair():
    with pytest.raises(DataError, match=r"\(4, 2\).*\(2, 4\)"):
        R2Score(multioutput="pooled").score(np.zeros((4, 2)) + np.arange(2), np.zeros((2, 4)))


def test_several_targets_of_a_tabular_learner():
    import pandas as pd

    from pipekit.data import RandomSplitter
    from pipekit.tabular import Categorify, FillMissing, Normalize, Tabular, tabular_learner

    df = pd.read_csv(DATA / "adult_sample" / "adult.csv").iloc[:1000]
    tab = Tabular(df, procs=[Categorify, FillMissing, Normalize], cat_names=["workclass", "education"],
                  cont_names=["fnlwgt"], y_names=["age", "hours-per-week"],
                  splits=RandomSplitter(valid_pct=0.2, seed=42))
    torch.manual_seed(0)
    learn = tabular_learner(tab.dataloaders(bs=64, seed=42), layers=[20],
                            metrics=[R2Score(), ExplainedVariance(multioutput="pooled")])
    learn.fit(1, 1e-2)
    p, t = (a.double().numpy() for a in learn.get_preds())
    assert p.shape[1] == t.shape[1] == 2
    r2, ev = learn.recorder.values[-1][-2:]
    assert r2 == pytest.approx(r2_score(t, p), abs=1e-5)
    assert ev == pytest.approx(explained_variance_score(t.ravel(), p.ravel()), abs=1e-5)
    assert r2_score(t, p) != pytest.approx(r2_score(t.ravel(), p.ravel()), abs=1e-3)  # the two do differ here


# ------------------------------------------------------------------ top_k_accuracy of a language model


def test_top_k_accuracy_of_a_language_model():
    torch.manual_seed(0)
    p, t = torch.randn(2, 3, 10), torch.randint(0, 10, (2, 3))
    # fastai 2.8.12's top_k_accuracy(p, t, k=3) on these tensors: 0.1666666716337204
    assert float(top_k_accuracy(p, t, k=3)) == pytest.approx(0.1666666716337204)
    assert float(top_k_accuracy(p, t, k=3)) == pytest.approx(float(top_k_accuracy(p.reshape(-1, 10), t.reshape(-1), k=3)))


def test_top_k_accuracy_refuses_targets_of_other_items():
    with pytest.raises(DataError, match=r"\(5, 4\).*5 items.*\(6,\)"):
        top_k_accuracy(torch.randn(5, 4), torch.zeros(6, dtype=torch.long), k=2)


# ------------------------------------------------------------------ thresholds of logits (sigmoid=False)


def _logits():
    torch.manual_seed(0)
    return torch.randn(20, 5), (torch.rand(20, 5) < 0.3).float()


def test_accuracy_multi_takes_a_threshold_of_logits():
    logits, t = _logits()
    # fastai 2.8.12's accuracy_multi(logits, t, thresh=0.0, sigmoid=False) and thresh=-0.5: 0.45 and 0.38
    assert float(accuracy_multi(logits, t, thresh=0.0, sigmoid=False)) == pytest.approx(0.45)
    assert float(accuracy_multi(logits, t, thresh=-0.5, sigmoid=False)) == pytest.approx(0.38)
    assert float(accuracy_multi(logits, t, thresh=0.0, sigmoid=False)) == pytest.approx(float(accuracy_multi(logits, t)))


def test_label_scores_multi_take_a_threshold_of_logits():
    logits, t = _logits()
    # fastai 2.8.12's F1ScoreMulti / HammingLossMulti(thresh=-0.5, sigmoid=False) accumulated on these tensors
    assert float(F1ScoreMulti(thresh=-0.5, sigmoid=False)(logits, t)) == pytest.approx(0.40646160856687175)
    assert float(HammingLossMulti(thresh=-0.5, sigmoid=False)(logits, t)) == pytest.approx(0.62)
    # a logit of 0 is a probability of 0.5
    assert float(F1ScoreMulti(thresh=0.0, sigmoid=False)(logits, t)) == pytest.approx(float(F1ScoreMulti()(logits, t)))


@pytest.mark.parametrize("make", [lambda **k: accuracy_multi(**k), F1ScoreMulti, HammingLossMulti])
def test_threshold_of_probabilities_still_checked(make):
    # probabilities (the sigmoid of each output) are thresholded between 0 and 1
    with pytest.raises(ParameterError, match=r"thresh=0\.0 is not accepted; expected a number in \(0, 1\)"):
        make(thresh=0.0)
    with pytest.raises(ParameterError, match=r"thresh=1\.5 is not accepted; expected a number in \(0, 1\)"):
        make(thresh=1.5, sigmoid=True)
    for bad in (float("inf"), float("nan"), "0.2", True):
        with pytest.raises(ParameterError, match=r"thresh=.* is not accepted; expected a finite number.*sigmoid=False"):
            make(thresh=bad, sigmoid=False)
    with pytest.raises(ParameterError, match=r"sigmoid=1 is not accepted; expected True or False"):
        make(thresh=-1.0, sigmoid=1)


# ------------------------------------------------------------------ NumPy arrays


def test_metrics_called_on_numpy_arrays():
    rng = np.random.default_rng(4)
    y, p = rng.normal(size=20), rng.normal(size=20)
    assert float(R2Score()(p, y)) == pytest.approx(r2_score(y, p))
    assert float(ExplainedVariance(multioutput="pooled")(p, y)) == pytest.approx(explained_variance_score(y, p))
    probs = rng.random((20, 3))
    labels = rng.integers(0, 3, 20)
    assert float(accuracy(probs, labels)) == pytest.approx(float((probs.argmax(1) == labels).mean()))
