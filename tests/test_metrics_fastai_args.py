"""fastai's arguments of its metrics, with fastai's (and scikit-learn's) meaning: ``labels=`` of Precision, Recall,
F1Score, FBeta and CohenKappa, ``adjusted=`` of BalancedAccuracy, ``ActivationType`` for AccumMetric and
skm_to_fastai, ``axis=`` of Dice and JaccardCoeff; and DiceMulti(ignore_index=void), which scores no void class.
Values are checked on saved-style random tensors (a seeded generator) against scikit-learn and by hand."""

from __future__ import annotations

import numpy as np
import pytest
import sklearn.metrics as skm
import torch
from PIL import Image

import pipekit.learn as L
import pipekit.metrics as M
from pipekit.core.errors import ParameterError
from pipekit.vision import Dice, DiceMulti, JaccardCoeff


@pytest.fixture(scope="module")
def data() -> dict[str, torch.Tensor]:
    """The tensors /tmp/p22's gen.py saves: class scores of 63 items over 4 classes, and 3-class and 2-class masks."""
    g = torch.Generator().manual_seed(0)
    n = 17 + 32 + 5 + 9
    d = {"clf_p": torch.randn(n, 4, generator=g), "clf_t": torch.randint(0, 4, (n,), generator=g)}
    d["seg_p"] = torch.randn(n, 3, 6, 6, generator=g)
    d["seg_t"] = torch.randint(0, 3, (n, 6, 6), generator=g)
    d["seg2_p"] = torch.randn(n, 2, 6, 6, generator=g)
    d["seg2_t"] = torch.randint(0, 2, (n, 6, 6), generator=g)
    return d


def _one_hot(labels: torch.Tensor, k: int) -> torch.Tensor:
    """Scores (bs, k, h, w) whose arg-max is ``labels`` (bs, h, w)."""
    return torch.nn.functional.one_hot(labels.long(), k).permute(0, 3, 1, 2).float()


# ------------------------------------------------------------------ DiceMulti(ignore_index=void)
def test_dicemulti_void_is_no_class_hand_computed():
    targ = torch.tensor([[[0, 1, 2, 2]], [[1, 0, 2, 1]]])
    perfect = _one_hot(torch.tensor([[[0, 1, 1, 2]], [[1, 0, 2, 1]]]), 3)
    assert float(DiceMulti(ignore_index=2)(perfect, targ)) == pytest.approx(1.0)
    # one pixel of class 1 predicted void: class 0 keeps Dice 1, class 1 gets 2 * 2 / (3 + 2) = 0.8; void is not scored
    one_void = _one_hot(torch.tensor([[[0, 2, 2, 2]], [[1, 0, 2, 1]]]), 3)
    assert float(DiceMulti(ignore_index=2)(one_void, targ)) == pytest.approx(0.9)
    # a void label beyond the model's classes (255) leaves every class scored
    targ255 = torch.where(targ == 2, 255, targ)
    assert float(
        DiceMulti(ignore_index=255)(_one_hot(torch.tensor([[[0, 1, 0, 1]], [[1, 0, 1, 1]]]), 2), targ255)
    ) == pytest.approx(1.0)


def test_dicemulti_void_matches_sklearn_per_class_f1(data):
    p, t = data["seg_p"], data["seg_t"]
    lab = p.argmax(1).numpy().ravel()
    tn = t.numpy().ravel()
    keep = tn != 2
    # scikit-learn's per-class F1 (a class's Dice) of classes 0 and 1 on the non-void pixels: a void prediction
    # there is a miss of the pixel's class
    want = skm.f1_score(tn[keep], lab[keep], labels=[0, 1], average=None).mean()
    assert (lab[keep] == 2).any()  # the random model predicts void on some non-void pixels
    m = DiceMulti(ignore_index=2)
    assert float(m(p, t)) == pytest.approx(want, abs=1e-12)
    # accumulated over batches of the sizes gen.py uses, as a Learner's validation pass does
    m.reset()
    start = 0
    for size in (17, 32, 5, 9):
        m.accumulate(p[start : start + size], t[start : start + size])
        start += size
    assert m.value == pytest.approx(want, abs=1e-12)
    # without ignore_index nothing changes: every class's F1 on every pixel
    assert float(DiceMulti()(p, t)) == pytest.approx(skm.f1_score(tn, lab, average="macro"), abs=1e-12)


@pytest.mark.data
def test_dicemulti_void_on_camvid_tiny():
    import pipekit.datasets as D

    root = D.path("camvid_tiny")
    codes = list(np.loadtxt(root / "codes.txt", dtype=str))
    void = codes.index("Void")
    masks = np.stack([np.array(Image.open(f)) for f in sorted((root / "labels").glob("*.png"))[:4]]).astype(
        np.int64
    )
    targ = torch.from_numpy(masks)
    # a model right everywhere but on every 7th pixel of the first rows, which it calls void
    pred_lbl = targ.clone()
    pred_lbl[:, :20, ::7] = void
    tn, lab = masks.ravel(), pred_lbl.numpy().ravel()
    keep = tn != void
    present = [
        c for c in range(len(codes)) if c != void and ((tn[keep] == c).any() or (lab[keep] == c).any())
    ]
    want = skm.f1_score(tn[keep], lab[keep], labels=present, average=None).mean()
    got = float(DiceMulti(ignore_index=void)(_one_hot(pred_lbl, len(codes)), targ))
    assert got == pytest.approx(want, abs=1e-12)
    assert got < 1.0  # the void predictions on non-void pixels cost their classes


# ------------------------------------------------------------------ labels= and adjusted=
LABEL_CASES = [
    (
        lambda: L.Precision(labels=[0, 2], average="macro"),
        lambda t, p: skm.precision_score(t, p, labels=[0, 2], average="macro"),
    ),
    (
        lambda: L.Recall(labels=[1, 3], average="weighted"),
        lambda t, p: skm.recall_score(t, p, labels=[1, 3], average="weighted"),
    ),
    (
        lambda: L.F1Score(labels=[0, 1], average="macro"),
        lambda t, p: skm.f1_score(t, p, labels=[0, 1], average="macro"),
    ),
    (
        lambda: L.FBeta(beta=2, labels=[0, 1], average="macro"),
        lambda t, p: skm.fbeta_score(t, p, beta=2, labels=[0, 1], average="macro"),
    ),
    (
        lambda: M.Jaccard(labels=[3], average="micro"),
        lambda t, p: skm.jaccard_score(t, p, labels=[3], average="micro"),
    ),
    (lambda: L.CohenKappa(labels=[0, 1, 2]), lambda t, p: skm.cohen_kappa_score(t, p, labels=[0, 1, 2])),
    (
        lambda: L.CohenKappa(weights="linear", labels=(3, 1)),
        lambda t, p: skm.cohen_kappa_score(t, p, labels=[3, 1], weights="linear"),
    ),
    (
        lambda: L.BalancedAccuracy(adjusted=True),
        lambda t, p: skm.balanced_accuracy_score(t, p, adjusted=True),
    ),
]


@pytest.mark.parametrize("make,sk", LABEL_CASES)
def test_fastai_class_arguments_match_sklearn(data, make, sk):
    p, t = data["clf_p"], data["clf_t"]
    want = sk(t.numpy(), p.argmax(-1).numpy())
    metric = make()
    assert float(metric(p, t)) == pytest.approx(want, abs=1e-12)
    assert metric.score(t.numpy(), p.numpy()) == pytest.approx(want, abs=1e-12)
    assert metric.clone().get_params() == metric.get_params()


def test_fastai_figures_of_the_repro(data):
    """fastai 2.8.12's values on these tensors (equal to scikit-learn's)."""
    p, t = data["clf_p"], data["clf_t"]
    got = [
        float(L.Precision(labels=[0, 2], average="macro")(p, t)),
        float(L.Recall(labels=[1, 3], average="weighted")(p, t)),
        float(L.F1Score(labels=[0, 1], average="macro")(p, t)),
        float(L.FBeta(beta=2, labels=[0, 1], average="macro")(p, t)),
        float(L.CohenKappa(labels=[0, 1, 2])(p, t)),
        float(L.BalancedAccuracy(adjusted=True)(p, t)),
    ]
    assert got == pytest.approx([0.1786, 0.2105, 0.1825, 0.1918, -0.1179, -0.0622], abs=5e-5)


def test_labels_hand_computed():
    # predictions 0, 1, 1, 2, 2 of targets 0, 1, 0, 2, 1: class 0 precision 1/1, class 2 precision 1/2
    pred = torch.nn.functional.one_hot(torch.tensor([0, 1, 1, 2, 2]), 3).float()
    targ = torch.tensor([0, 1, 0, 2, 1])
    assert float(M.Precision(average="macro", labels=[0, 2])(pred, targ)) == pytest.approx((1 + 0.5) / 2)
    # recall of class 1: 1 of its 2 items
    assert float(M.Recall(average="macro", labels=[1])(pred, targ)) == pytest.approx(0.5)
    # recalls 1/2, 1/2, 1/1: balanced accuracy 2/3; adjusted (chance 1/3 to 0): (2/3 - 1/3) / (1 - 1/3) = 1/2
    assert float(M.BalancedAccuracy()(pred, targ)) == pytest.approx(2 / 3)
    assert float(M.BalancedAccuracy(adjusted=True)(pred, targ)) == pytest.approx(0.5)


def test_defaults_unchanged(data):
    p, t = data["clf_p"], data["clf_t"]
    lab, tn = p.argmax(-1).numpy(), t.numpy()
    assert float(M.BalancedAccuracy()(p, t)) == skm.balanced_accuracy_score(tn, lab)
    assert float(M.F1Score(average="macro")(p, t)) == skm.f1_score(tn, lab, average="macro")
    assert float(M.CohenKappa()(p, t)) == skm.cohen_kappa_score(tn, lab)
    assert repr(M.F1Score(average="macro")) == "F1Score(average='macro')"
    assert M.F1Score(average="macro").scoring_name == "f1_macro"
    # a subset of the classes is not what get_metric's 'f1_macro' scores
    assert M.F1Score(average="macro", labels=[0, 1]).scoring_name == "f1_score"


@pytest.mark.parametrize("bad", ["0,1", [], [0, 0], [-1], [1.5], [True], 2, np.array([0, 1])])
def test_labels_refused(bad):
    for make in (lambda: M.Precision(average="macro", labels=bad), lambda: M.CohenKappa(labels=bad)):
        with pytest.raises(ParameterError, match="labels"):
            make()


def test_labels_with_binary_average_or_beyond_the_classes_refused(data):
    with pytest.raises(ParameterError, match="average='binary'.*pass average='macro'"):
        M.F1Score(labels=[0, 1])
    with pytest.raises(ParameterError, match=r"labels=\[0, 4\] names \[4\].*0 to 3"):
        M.Recall(average="macro", labels=[0, 4])(data["clf_p"], data["clf_t"])
    with pytest.raises(ParameterError, match=r"names \[7\]"):
        M.CohenKappa(labels=[7])(data["clf_p"], data["clf_t"])


@pytest.mark.parametrize("bad", [1, None, "yes", np.bool_(True)])
def test_adjusted_refused(bad):
    with pytest.raises(ParameterError, match="adjusted"):
        M.BalancedAccuracy(adjusted=bad)


# ------------------------------------------------------------------ ActivationType
def test_activation_type_exported_and_accepted(data):
    assert L.ActivationType is M.ActivationType
    A = M.ActivationType
    assert [a.name for a in A] == ["No", "Sigmoid", "Softmax", "BinarySoftmax"]
    bp = data["clf_p"][:, :2]
    bt = data["clf_t"] % 2
    want = skm.roc_auc_score(bt.numpy(), bp.softmax(-1)[:, 1].numpy())
    m = M.skm_to_fastai(skm.roc_auc_score, activation=A.BinarySoftmax, flatten=False)
    assert float(m(bp, bt)) == pytest.approx(want, abs=1e-7)
    assert m.activation == "binarysoftmax" and type(m.activation) is str
    assert float(m(bp, bt)) == float(
        M.skm_to_fastai(skm.roc_auc_score, activation="binarysoftmax", flatten=False)(bp, bt)
    )
    # each member is its string
    for member, name in zip(A, ("no", "sigmoid", "softmax", "binarysoftmax")):
        acc = M.AccumMetric(lambda p, t: float(p.sum()), activation=member, dim_argmax=-1, flatten=False)
        assert acc.activation == name
        assert float(acc(bp, bt)) == float(
            M.AccumMetric(lambda p, t: float(p.sum()), activation=name, dim_argmax=-1, flatten=False)(bp, bt)
        )
    # a sigmoid with a threshold, as fastai's multi-label use
    thr = M.AccumMetric(lambda p, t: float(p.float().mean()), activation=A.Sigmoid, thresh=0.5, flatten=False)
    assert float(thr(bp, bt)) == pytest.approx(float((bp.sigmoid() >= 0.5).float().mean()))
    with pytest.raises(ParameterError, match="activation"):
        M.AccumMetric(lambda p, t: 0.0, activation="relu")


# ------------------------------------------------------------------ Dice(axis=), JaccardCoeff(axis=)
def test_dice_jaccard_axis(data):
    p, t = data["seg2_p"], data["seg2_t"]
    lab, tn = p.argmax(1).numpy().ravel(), t.numpy().ravel()
    for cls, sk in ((Dice, skm.f1_score), (JaccardCoeff, skm.jaccard_score)):
        want = sk(tn, lab)
        # pooled in float64 (the metric's value; a call gives a float32 tensor)
        assert cls(axis=1).score(t.numpy(), p.numpy()) == pytest.approx(want, abs=1e-12)
        assert float(cls(axis=1)(p, t)) == pytest.approx(want, abs=1e-7)
        assert float(cls()(p, t)) == pytest.approx(want, abs=1e-7)
        # channels-last scores, class axis -1
        assert cls(axis=-1).score(t.numpy(), p.permute(0, 2, 3, 1).numpy()) == pytest.approx(want, abs=1e-12)
        for bad in (0, 5, 1.0, "1", None):
            with pytest.raises(ParameterError, match="axis"):
                cls(axis=bad)
        with pytest.raises(
            ParameterError, match=r"axis=3 is no axis of the predictions of shape \(4, 2, 6\)"
        ):
            cls(axis=3)(p[:4, :, 0], t[:4, 0])
        with pytest.raises(ParameterError, match="axis=2 of predictions"):
            cls(axis=2)(p, t)
    # hand computed: predicted foreground on pixels 1, 2; true on 1, 3: Dice 2 * 1 / 4, Jaccard 1 / 3
    pred = _one_hot(torch.tensor([[[0, 1, 1, 0]]]), 2)
    targ = torch.tensor([[[0, 1, 0, 1]]])
    assert float(Dice(axis=1)(pred, targ)) == pytest.approx(0.5)
    assert float(JaccardCoeff(axis=1)(pred, targ)) == pytest.approx(1 / 3)


def test_the_new_arguments_at_their_defaults_leave_the_records_older_pipekit_reads():
    # an export's metrics are records: a parameter added later is left out at its default, so a file written now
    # with F1Score(average='macro') or Dice() still loads in a pipekit that does not know labels= or axis=
    from pipekit.metrics import BalancedAccuracy, CohenKappa, F1Score, FBeta
    from pipekit.vision import Dice, JaccardCoeff

    assert F1Score(average="macro").to_record()["params"] == {"average": "macro", "pos_label": 1}
    assert FBeta(2.0).to_record()["params"] == {"beta": 2.0, "average": "binary", "pos_label": 1}
    assert CohenKappa().to_record()["params"] == {"weights": None}
    assert BalancedAccuracy().to_record()["params"] == Dice().to_record()["params"] == {}
    assert JaccardCoeff().to_record()["params"] == {}
    given = F1Score(average="macro", labels=[0, 2]).to_record()["params"]
    assert given["labels"] == [0, 2] and type(F1Score.from_record(F1Score(average="macro").to_record())) is F1Score
    assert Dice(axis=-1).to_record()["params"] == {"axis": -1}
