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
from pipekit.core.errors import DataError, ParameterError
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


# ----------------------------------------------------------------- axis, sample_weight, zero_division, max_fpr
ADULT_CATS = ["workclass", "education", "marital-status", "occupation", "relationship", "race"]


@pytest.fixture(scope="module")
def adult_learner():
    """A tiny tabular learner of adult's salary (2 classes; 400 validation rows), fitted one epoch, with its
    validation predictions (probabilities), targets and a weight per validation row."""
    import pandas as pd

    from pipekit.data.seed import set_seed
    from pipekit.datasets import path
    from pipekit.tabular import Categorify, FillMissing, Normalize, TabularDataLoaders, tabular_learner

    adult = pd.read_csv(path("adult_sample") / "adult.csv", nrows=2000)
    set_seed(0)
    dls = TabularDataLoaders.from_df(adult, procs=[Categorify, FillMissing, Normalize], cat_names=ADULT_CATS,
                                     cont_names=["age", "fnlwgt", "education-num"], y_names="salary",
                                     valid_idx=list(range(1600, 2000)), bs=64)
    learn = tabular_learner(dls, layers=[20, 10])
    learn.fit(1, 1e-2)
    probs, targs = learn.get_preds()
    weights = np.random.default_rng(0).uniform(0.1, 3.0, size=len(targs))
    return learn, probs.numpy(), targs.numpy().reshape(-1), weights


def _adult_cases(w: np.ndarray) -> list[tuple[str, object, object]]:
    """(what, the pipekit metric with fastai's arguments, scikit-learn's value of (targets, probabilities))."""
    lab = lambda p: p.argmax(1)  # noqa: E731
    return [
        ("F1Score(sample_weight)", M.F1Score(sample_weight=w), lambda y, p: skm.f1_score(y, lab(p), sample_weight=w)),
        ("F1Score(axis=1, average=macro)", M.F1Score(axis=1, average="macro"),
         lambda y, p: skm.f1_score(y, lab(p), average="macro")),
        ("Precision(pos_label=0, sample_weight)", M.Precision(pos_label=0, sample_weight=w),
         lambda y, p: skm.precision_score(y, lab(p), pos_label=0, sample_weight=w)),
        ("Recall(average=weighted, sample_weight)", M.Recall(average="weighted", sample_weight=w),
         lambda y, p: skm.recall_score(y, lab(p), average="weighted", sample_weight=w)),
        ("FBeta(2, sample_weight)", M.FBeta(2.0, sample_weight=w),
         lambda y, p: skm.fbeta_score(y, lab(p), beta=2.0, sample_weight=w)),
        ("Jaccard(average=micro, sample_weight)", M.Jaccard(average="micro", sample_weight=w),
         lambda y, p: skm.jaccard_score(y, lab(p), average="micro", sample_weight=w)),
        ("BalancedAccuracy(adjusted, sample_weight)", M.BalancedAccuracy(adjusted=True, sample_weight=w),
         lambda y, p: skm.balanced_accuracy_score(y, lab(p), adjusted=True, sample_weight=w)),
        ("MatthewsCorrCoef(sample_weight)", M.MatthewsCorrCoef(sample_weight=w),
         lambda y, p: skm.matthews_corrcoef(y, lab(p), sample_weight=w)),
        ("CohenKappa(weights=linear, sample_weight)", M.CohenKappa(weights="linear", sample_weight=w),
         lambda y, p: skm.cohen_kappa_score(y, lab(p), weights="linear", sample_weight=w)),
        ("HammingLoss(sample_weight)", M.HammingLoss(sample_weight=w),
         lambda y, p: skm.hamming_loss(y, lab(p), sample_weight=w)),
        ("RocAucBinary(max_fpr, sample_weight)", M.RocAucBinary(max_fpr=0.2, sample_weight=w),
         lambda y, p: skm.roc_auc_score(y, p[:, 1], max_fpr=0.2, sample_weight=w)),
        ("RocAuc(max_fpr)", M.RocAuc(max_fpr=0.5), lambda y, p: skm.roc_auc_score(y, p[:, 1], max_fpr=0.5)),
        ("APScoreBinary(pos_label=0, sample_weight)", M.APScoreBinary(pos_label=0, sample_weight=w),
         lambda y, p: skm.average_precision_score(y, p[:, 0], pos_label=0, sample_weight=w)),
        ("BrierScore(pos_label=0, sample_weight)", M.BrierScore(pos_label=0, sample_weight=w),
         lambda y, p: skm.brier_score_loss(y, p[:, 0], pos_label=0, sample_weight=w)),
    ]


def test_fastai_arguments_score_as_scikit_learn_on_adult_predictions(adult_learner):
    learn, probs, targs, w = adult_learner
    assert len(np.unique(targs)) == 2 and len(np.unique(probs.argmax(1))) == 2  # both classes predicted
    for what, metric, sk in _adult_cases(w):
        theirs = sk(targs, probs)
        assert metric.score(targs, probs) == pytest.approx(theirs, rel=1e-9, abs=1e-12), what
        # the Learner's face: raw outputs over the validation batches, the weights aligned with its items
        learn.metrics = [metric]
        assert learn.validate()[1] == pytest.approx(theirs, rel=1e-5, abs=1e-7), what
    weighted = M.F1Score(sample_weight=w).score(targs, probs)
    assert weighted != pytest.approx(M.F1Score().score(targs, probs))  # the weights change the value


def test_sample_weight_of_another_length_names_the_metric_both_lengths_and_the_validation_set(adult_learner):
    learn, probs, targs, w = adult_learner
    for metric in (M.F1Score(sample_weight=w[:-1]), M.RocAucBinary(sample_weight=w[:-1]),
                   M.BalancedAccuracy(sample_weight=w[:-1])):
        with pytest.raises(DataError, match=rf"{type(metric).__name__} \(.*\): sample_weight holds 399 weights and "
                                            r"400 items were scored; .*align with .*validation set's items, in order"):
            metric.score(targs, probs)
        learn.metrics = [metric]
        with pytest.raises(DataError, match="sample_weight holds 399 weights and 400 items"):
            learn.validate()
    with pytest.raises(ParameterError, match=r"F1Score: sample_weight=.* one number per item"):
        M.F1Score(sample_weight=[[1.0, 2.0]])
    with pytest.raises(ParameterError, match=r"sample_weight\[1\] is nan"):
        M.MatthewsCorrCoef(sample_weight=[1.0, float("nan")])
    with pytest.raises(ParameterError, match="multi_class='ovo'.*sample_weight"):
        M.RocAuc(multi_class="ovo", sample_weight=w)


def test_sample_weight_is_kept_by_the_learner_file(adult_learner, tmp_path):
    import pipekit

    learn, probs, targs, w = adult_learner
    learn.metrics = [M.F1Score(sample_weight=w), M.RocAucBinary(max_fpr=0.2, sample_weight=w)]
    expected = learn.validate()[1:]
    loaded = pipekit.load(learn.export(tmp_path / "adult.pipekit"))
    f1, auc = loaded.metrics
    assert isinstance(f1.sample_weight, np.ndarray) and np.array_equal(f1.sample_weight, w)
    assert auc.max_fpr == 0.2 and np.array_equal(auc.sample_weight, w)
    assert f1.score(targs, probs) == pytest.approx(expected[0], rel=1e-5)
    assert auc.score(targs, probs) == pytest.approx(expected[1], rel=1e-5)
    # at their defaults the new arguments leave the record as older pipekit wrote it
    assert M.F1Score(axis=-1, sample_weight=None, zero_division="warn").to_record()["params"] == \
        {"average": "binary", "pos_label": 1}
    assert M.RocAuc(axis=-1, sample_weight=None, max_fpr=None).to_record()["params"] == \
        {"average": "macro", "multi_class": "ovr"}


def test_zero_division_and_axis_as_scikit_learn_and_fastai(data):
    y = np.array([0, 0, 1, 1])
    never_1 = torch.tensor([[2.0, 0.0]] * 4)  # class 1 never predicted: precision of class 1 is 0/0
    for zd in (0, 1, 0.0, 1.0):
        assert float(M.Precision(zero_division=zd)(never_1, torch.as_tensor(y))) == \
            skm.precision_score(y, np.zeros(4, dtype=int), zero_division=zd)
    assert np.isnan(float(M.F1Score(zero_division=float("nan"))(never_1, torch.zeros(4, dtype=torch.long))))
    with pytest.raises(ParameterError, match="zero_division"):
        M.Recall(zero_division="yes")
    # the class axis: (bs, classes, h, w) scores with axis=1 score every pixel, as fastai flattens them
    p, t = data["seg_p"], data["seg_t"]
    flat = p.argmax(1).reshape(-1).numpy()
    assert float(M.F1Score(axis=1, average="macro")(p, t)) == pytest.approx(
        skm.f1_score(t.reshape(-1).numpy(), flat, average="macro"))
    assert float(M.CohenKappa(axis=1)(p, t)) == pytest.approx(skm.cohen_kappa_score(t.reshape(-1).numpy(), flat))
    probs = p.softmax(1).movedim(1, -1).reshape(-1, 3).numpy()
    assert float(M.RocAuc(axis=1)(p, t)) == pytest.approx(skm.roc_auc_score(t.reshape(-1).numpy(), probs,
                                                                            multi_class="ovr"), rel=1e-5)
    with pytest.raises(ParameterError, match=r"axis=3 is not an axis of the model's outputs of shape \(63, 4\)"):
        M.F1Score(axis=3, average="macro")(data["clf_p"], data["clf_t"])
    with pytest.raises(ParameterError, match="axis"):
        M.HammingLoss(axis=0)
