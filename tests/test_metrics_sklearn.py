"""pipekit's metrics against scikit-learn's on the edge cases where definitions part ways: empty input,
log-loss clipping and a single class, ROC-AUC with one class, RMSE with several outputs, R2 on a constant
target, accuracy on predicted labels, multi-label scores (and the book's threshold sweep) on coco_tiny. Both faces are checked: ``score`` on arrays and the Learner's
accumulation over batches."""
from __future__ import annotations

import functools
import re
import warnings

import numpy as np
import pytest
import sklearn.metrics as skm
import torch
from sklearn.exceptions import UndefinedMetricWarning

from pipekit.core import DataError, PipekitWarning
from pipekit.metrics import F1Score, accuracy, accuracy_multi, as_metric, log_loss, mae, mse, r2_score, rmse, roc_auc


def accumulate(metric, batches):
    m = as_metric(metric)
    m.reset()
    for p, t in batches:
        m.accumulate(torch.as_tensor(p), torch.as_tensor(t), None, len(t))
    return m.value


@pytest.mark.parametrize("metric", [accuracy, mae, mse, rmse, log_loss, r2_score, roc_auc])
def test_empty_input_is_an_error_as_in_scikit_learn(metric):
    pred = np.zeros((0, 2)) if metric.task == "classification" else np.zeros(0)
    with pytest.raises(DataError, match=f"{metric.name}: found empty input"):
        metric.score(np.zeros(0, dtype=np.int64), pred)
    with pytest.raises(ValueError):  # scikit-learn refuses it too (DataError is a ValueError)
        {"accuracy": lambda: skm.accuracy_score([], []), "mae": lambda: skm.mean_absolute_error([], []),
         "mse": lambda: skm.mean_squared_error([], []), "rmse": lambda: skm.root_mean_squared_error([], []),
         "log_loss": lambda: skm.log_loss([], np.zeros((0, 2))), "r2_score": lambda: skm.r2_score([], []),
         "roc_auc_score": lambda: skm.roc_auc_score([], [])}[metric.name]()


def test_log_loss_clips_as_scikit_learn_does():
    y = np.array([0, 1, 1, 0])
    hard = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.3, 0.7]])  # two confident mistakes... one of them
    assert log_loss.score(y, hard) == pytest.approx(skm.log_loss(y, hard), rel=1e-12)
    # float32 probabilities are clipped at float32's epsilon, as scikit-learn does
    assert log_loss.score(y, hard.astype(np.float32)) == pytest.approx(skm.log_loss(y, hard.astype(np.float32)),
                                                                       rel=1e-6)
    assert log_loss.score(y, hard) != log_loss.score(y, hard.astype(np.float32))
    # a split holding one class: the classes are the prediction's columns (scikit-learn needs labels=)
    one = np.array([[0.2, 0.8], [0.4, 0.6]])
    assert log_loss.score(np.array([1, 1]), one) == pytest.approx(skm.log_loss([1, 1], one, labels=[0, 1]))
    with pytest.raises(ValueError, match="only one label"):
        skm.log_loss([1, 1], one)
    # the Learner's face: a net's raw outputs go through softmax, pooled over batches
    logits = np.random.default_rng(0).normal(size=(10, 3)).astype(np.float32)
    targets = np.arange(10) % 3
    probs = torch.softmax(torch.as_tensor(logits), 1).numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # float32 softmax rows sum to 1 within float32: no warning
        pooled = accumulate(log_loss, [(logits[:6], targets[:6]), (logits[6:], targets[6:])])
    assert pooled == pytest.approx(skm.log_loss(targets, probs, labels=[0, 1, 2]), rel=1e-6)


def test_roc_auc_with_one_class_is_nan_as_scikit_learns_with_a_warning_naming_the_class():
    p = np.array([[0.8, 0.2], [0.5, 0.5], [0.1, 0.9]])
    with pytest.warns(PipekitWarning, match="hold only class 1 of the two.*stratify_col="):
        ours = roc_auc.score(np.array([1, 1, 1]), p)
    with pytest.warns(UndefinedMetricWarning):
        theirs = skm.roc_auc_score([1, 1, 1], p[:, 1])
    assert np.isnan(ours) and np.isnan(theirs)


def test_rmse_mae_mse_match_scikit_learn_for_one_and_several_outputs():
    rng = np.random.default_rng(0)
    y1, p1 = rng.normal(size=20), rng.normal(size=20)
    y2, p2 = rng.normal(size=(20, 3)), rng.normal(size=(20, 3)) * [1, 5, 10]
    for ours, theirs in [(rmse, skm.root_mean_squared_error), (mae, skm.mean_absolute_error),
                         (mse, skm.mean_squared_error)]:
        assert ours.score(y1, p1) == pytest.approx(theirs(y1, p1), rel=1e-12), ours.name
        # several outputs: each output's error, averaged (multioutput="uniform_average")
        assert ours.score(y2, p2) == pytest.approx(theirs(y2, p2), rel=1e-12), ours.name
        batches = [(p2[:7], y2[:7]), (p2[7:], y2[7:])]
        assert accumulate(ours, batches) == pytest.approx(theirs(y2, p2), rel=1e-9), ours.name
    # which is not the square root of the pooled MSE when the outputs differ in scale
    assert rmse.score(y2, p2) < np.sqrt(mse.score(y2, p2)) - 0.5
    # a regression net's (n, 1) output against (n,) targets is one output
    assert rmse.score(y1, p1[:, None]) == pytest.approx(skm.root_mean_squared_error(y1, p1))
    assert float(rmse(torch.as_tensor(p2), torch.as_tensor(y2))) == pytest.approx(skm.root_mean_squared_error(y2, p2))


def test_r2_on_a_constant_target_and_one_sample_follow_scikit_learn():
    assert r2_score.score(np.array([1.0, 1.0, 1.0]), np.array([1.0, 2.0, 3.0])) == 0.0
    assert r2_score.score(np.array([1.0, 1.0, 1.0]), np.array([1.0, 1.0, 1.0])) == 1.0
    with pytest.warns(UndefinedMetricWarning):
        assert np.isnan(r2_score.score(np.array([1.0]), np.array([2.0])))


def test_accuracy_takes_probabilities_or_labels_and_f1_zero_division():
    y = np.array([0, 1, 2, 1, 0])
    labels = np.array([0, 2, 2, 1, 1])
    probs = np.eye(3)[labels] * 0.8 + 0.1
    assert accuracy.score(y, probs) == accuracy.score(y, labels) == pytest.approx(skm.accuracy_score(y, labels))
    # nothing predicted positive: 0.0 (well defined: 2tp / (2tp + fp + fn))
    assert F1Score().score(np.array([1, 0, 1]), np.array([[0.9, 0.1]] * 3)) == skm.f1_score([1, 0, 1], [0, 0, 0]) == 0
    # no positive anywhere: scikit-learn's zero_division warning and 0.0, through pipekit too
    with pytest.warns(UndefinedMetricWarning):
        ours = F1Score().score(np.array([0, 0, 0]), np.array([[0.9, 0.1]] * 3))
    with pytest.warns(UndefinedMetricWarning):
        theirs = skm.f1_score([0, 0, 0], [0, 0, 0])
    assert ours == theirs == 0.0


def test_scikit_learn_functions_as_metrics_get_their_direction_and_their_input():
    from pipekit.core.errors import ParameterError
    from pipekit.metrics import FuncMetric, check_metric, get_metric

    # the direction is read from the name: losses and errors are better smaller
    assert [get_metric(f, "regression").greater_is_better for f in
            (skm.mean_squared_error, skm.mean_absolute_error, skm.max_error, skm.r2_score)] == [False, False, False, True]
    assert [get_metric(f, "classification").greater_is_better for f in
            (skm.log_loss, skm.hinge_loss, skm.accuracy_score, skm.roc_auc_score, skm.f1_score)] == [
        False, False, True, True, True]
    # a score is better larger though it scores an error or a loss
    assert [get_metric(f, "regression").greater_is_better for f in
            (skm.d2_absolute_error_score, skm.d2_pinball_score, skm.explained_variance_score)] == [True, True, True]
    assert get_metric(skm.d2_log_loss_score, "classification").greater_is_better
    assert not get_metric(skm.brier_score_loss, "classification").greater_is_better
    assert FuncMetric(skm.mean_squared_error, greater_is_better=True).greater_is_better  # said outright, kept
    # a lambda has no name to read: where it chooses between models, the guess is said out loud
    with pytest.warns(UserWarning, match="a lambda metric has no name to read its direction from"):
        assert get_metric(lambda y, p: skm.mean_squared_error(y, p), "regression").greater_is_better
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not FuncMetric(lambda y, p: 0.0, greater_is_better=False, y_first=True).greater_is_better
    # each function gets what it takes from a classifier's probabilities
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    p1 = np.clip(y * 0.6 + rng.uniform(0, 0.4, 200), 0, 1)
    proba = np.stack([1 - p1, p1], 1)
    for fn, expected in [(skm.accuracy_score, skm.accuracy_score(y, proba.argmax(1))),
                         (skm.f1_score, skm.f1_score(y, proba.argmax(1))),
                         (skm.roc_auc_score, skm.roc_auc_score(y, p1)),
                         (skm.brier_score_loss, skm.brier_score_loss(y, p1)),
                         (skm.log_loss, skm.log_loss(y, proba))]:
        assert get_metric(fn, "classification").score(y, proba) == pytest.approx(expected)
    # three classes, one absent from the rows scored: log_loss is told every class
    y3, p3 = np.array([0, 1, 1]), np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.6, 0.2]])
    assert get_metric(skm.log_loss, "classification").score(y3, p3) == pytest.approx(
        skm.log_loss(y3, p3, labels=[0, 1, 2]))
    # a function that cannot take what it gets fails before any fit, saying what it gets
    def wants_labels(y_true, y_pred):
        return float(np.mean(np.asarray(y_true) == np.asarray(y_pred)))  # compares labels with a matrix

    def broken(y_true, y_pred):
        return float(np.asarray(y_pred)[:, 5].mean())

    with pytest.raises(ParameterError, match=r"metric 'wants_labels' fails .*ValueError: operands could not be"):
        check_metric(get_metric(wants_labels, "classification"), "classification", 2)
    with pytest.raises(ParameterError, match=r"metric 'broken' fails on a classification's predictions \(it gets "
                                             r"class indices and \(n, 2\) probabilities\): IndexError"):
        check_metric(get_metric(broken, "classification"), "classification", 2)


def test_accuracy_refuses_one_score_per_item():
    from pipekit.core.errors import ParameterError

    logits = torch.tensor([[2.0], [-1.0], [0.5]])
    with pytest.raises(ParameterError, match=r"one score per item .*accuracy_multi"):
        accuracy(logits, torch.tensor([[1], [0], [1]]))
    assert float(accuracy_multi(logits, torch.tensor([[1], [0], [1]]))) == 1.0


def _batches(pred, targ, bs=16):
    return [(pred[i:i + bs], targ[i:i + bs]) for i in range(0, len(targ), bs)]


def test_roc_auc_binary_scores_the_positive_class_of_two_scores_or_of_one_logit():
    from pipekit.metrics import RocAucBinary

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 64)
    logits = (rng.normal(size=(64, 2)) + np.eye(2)[y]).astype(np.float32)
    positive = torch.softmax(torch.from_numpy(logits), 1)[:, 1].numpy()
    # two scores per item (cross-entropy): a softmax, then the second column, as RocAuc() gives for two classes
    assert accumulate(RocAucBinary(), _batches(logits, y)) == pytest.approx(skm.roc_auc_score(y, positive))
    assert accumulate(RocAucBinary(), _batches(logits, y)) == pytest.approx(accumulate(roc_auc, _batches(logits, y)))
    # one logit per item: a sigmoid (the order, hence the AUC, is the logit's)
    one = logits[:, 1:] - logits[:, :1]
    assert accumulate(RocAucBinary(), _batches(one, y)) == pytest.approx(skm.roc_auc_score(y, one[:, 0]))
    assert RocAucBinary().name == "roc_auc_score" == roc_auc.name  # fastai's name for both
    with pytest.raises(ValueError, match=r"roc_auc_score scores a two-class model .* 3 scores .*RocAuc\(\)"):
        accumulate(RocAucBinary(), _batches(rng.normal(size=(20, 3)).astype(np.float32), rng.integers(0, 3, 20)))


def test_multi_label_targets_get_the_multi_label_metrics_or_a_refusal_naming_them():
    from pipekit.metrics import F1ScoreMulti, RocAucBinary, RocAucMulti

    rng = np.random.default_rng(1)
    targs = (rng.random((96, 3)) < 0.4).astype(np.float32)
    logits = (rng.normal(size=(96, 3)) + 1.5 * (targs - 0.5)).astype(np.float32)
    probs = torch.sigmoid(torch.from_numpy(logits)).numpy()
    batches = _batches(logits, targs)
    for average in ("macro", "micro", "weighted"):
        assert accumulate(RocAucMulti(average=average), batches) == pytest.approx(
            skm.roc_auc_score(targs, probs, average=average))
    assert accumulate(F1ScoreMulti(), batches) == pytest.approx(skm.f1_score(targs, probs > 0.5, average="macro"))
    assert accumulate(F1ScoreMulti(average="micro"), batches) == pytest.approx(
        skm.f1_score(targs, probs > 0.5, average="micro"))
    assert accumulate(F1ScoreMulti(thresh=0.3, average="macro"), batches) == pytest.approx(
        skm.f1_score(targs, probs > 0.3, average="macro"))
    # the array face takes probabilities, as a backend gives them
    assert F1ScoreMulti().score(targs, probs) == pytest.approx(skm.f1_score(targs, probs > 0.5, average="macro"))
    for metric, instead in [(roc_auc, r"RocAucMulti\(\)"), (RocAucBinary(), r"RocAucMulti\(\)"),
                            (F1Score(average="macro"), r"F1ScoreMulti\(\)"), (accuracy, "accuracy_multi"),
                            (log_loss, r"the loss itself \(BCEWithLogitsLossFlat\)")]:
        with pytest.raises(ValueError, match=rf"{metric.name} scores one class per item.*\(16, 3\).*use {instead}"):
            accumulate(metric, batches)
    # two labels look like two class scores: still refused, not scored as one class's column
    with pytest.raises(ValueError, match=r"roc_auc_score scores one class per item.*RocAucMulti"):
        accumulate(RocAucBinary(), _batches(logits[:, :2], targs[:, :2]))


@pytest.fixture(scope="module")
def coco_preds(one_torch_thread):
    """Probabilities and 0/1 targets of a small CNN trained one epoch on coco_tiny's multi-label images (6 labels)."""
    import json

    import polars as pl

    import pipekit
    import pipekit.datasets as D
    from pipekit.data import ColReader, DataBlock, MultiCategoryBlock, RandomSplitter
    from pipekit.learn import Learner, simple_cnn
    from pipekit.vision import ImageBlock, Resize

    path = D.path("coco_tiny")
    meta = json.loads((path / "train.json").read_text())
    names, labels = {c["id"]: c["name"] for c in meta["categories"]}, {}
    for a in meta["annotations"]:
        labels.setdefault(a["image_id"], set()).add(names[a["category_id"]])
    items = pl.DataFrame([{"fname": im["file_name"], "labels": " ".join(sorted(labels[im["id"]]))}
                          for im in meta["images"]])
    dls = DataBlock(blocks=(ImageBlock, MultiCategoryBlock(label_delim=" ")), get_x=ColReader("fname", pref=path / "train"),
                    get_y=ColReader("labels"), splitter=RandomSplitter(0.4, seed=0),
                    item_tfms=Resize(32)).dataloaders(items, bs=16, seed=0, device="cpu", num_workers=0)
    pipekit.set_seed(0)
    learn = Learner(dls, simple_cnn(n_in=3, n_out=dls.c, channels=(8, 16)))
    learn.fit(1, 3e-3)
    preds, targs = learn.get_preds()
    return learn, preds, targs


def test_threshold_sweep_of_the_book_takes_linspace_steps_on_coco_tiny(coco_preds):
    from pipekit.core import ParameterError
    from pipekit.metrics import AccuracyMulti

    _, preds, targs = coco_preds
    xs = torch.linspace(0.05, 0.95, 29)
    accs = [accuracy_multi(preds, targs, thresh=i, sigmoid=False) for i in xs]
    by_hand = [((preds > float(i)) == targs.bool()).float().mean().item() for i in xs]
    assert [float(a) for a in accs] == pytest.approx(by_hand)
    assert len(set(by_hand)) > 5  # the sweep moves the score: each threshold was used, not one of them
    # a 0-d NumPy array or NumPy number is one number too, and is kept as a float
    assert [AccuracyMulti(thresh=t).thresh for t in (np.array(0.3), np.float32(0.3))] == pytest.approx([0.3, 0.3])
    assert type(AccuracyMulti(thresh=xs[3]).thresh) is float
    # what is still refused says why, rather than calling 0.05 no number in (0, 1)
    for bad, why in [(True, "a bool, not a number"), (torch.tensor(True), "a Tensor of torch.bool, not a number"),
                     (xs[:2], r"a Tensor of shape \(2,\), not one number"), ("0.5", "a str, not a number")]:
        with pytest.raises(ParameterError, match=rf"AccuracyMulti: thresh=.* is not accepted; expected a number in "
                                                 rf"\(0, 1\) \(it is {why}\)$"):
            AccuracyMulti(thresh=bad)
    with pytest.raises(ParameterError, match=r"thresh=tensor\(1.5000\) is not accepted; expected a number in \(0, 1\)$"):
        AccuracyMulti(thresh=torch.tensor(1.5))


def test_multi_label_f1_precision_recall_average_per_label_by_default_as_fastai_on_coco_tiny(coco_preds):
    from pipekit.metrics import F1ScoreMulti, PrecisionMulti, RecallMulti

    learn, preds, targs = coco_preds
    y, yhat = targs.numpy() > 0.5, (preds > 0.5).numpy()
    learn.metrics = [F1ScoreMulti(), PrecisionMulti(), RecallMulti(), F1ScoreMulti(average="micro")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)  # a label never predicted scores 0, as in scikit-learn
        values = learn.validate()[1:]
        want = [skm.f1_score(y, yhat, average="macro"), skm.precision_score(y, yhat, average="macro"),
                skm.recall_score(y, yhat, average="macro"), skm.f1_score(y, yhat, average="micro")]
    assert values == pytest.approx(want)
    assert abs(want[0] - want[3]) > 0.01  # the two averages part on these predictions
    assert F1ScoreMulti().average == PrecisionMulti().average == RecallMulti().average == "macro"


def test_scikit_learns_scoring_names_reach_the_metric_they_name():
    from pipekit.core import ParameterError
    from pipekit.metrics import BalancedAccuracy, Precision, Recall, get_metric

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 200)
    p = rng.dirichlet(np.ones(3), 200)
    p[np.arange(150), y[:150]] += 1.0  # right on three quarters of the rows
    labels = p.argmax(1)
    for name, cls, average in (("f1_macro", F1Score, "macro"), ("precision_weighted", Precision, "weighted"),
                               ("recall_micro", Recall, "micro")):
        m = get_metric(name, "classification")
        assert type(m) is cls and m.average == average
        sk = {"F1Score": skm.f1_score, "Precision": skm.precision_score, "Recall": skm.recall_score}[cls.__name__]
        assert m.score(y, p) == pytest.approx(sk(y, labels, average=average))
    assert type(get_metric("f1", "classification")) is F1Score
    bal = get_metric("balanced_accuracy", "classification")
    assert type(bal) is BalancedAccuracy and bal.score(y, p) == pytest.approx(skm.balanced_accuracy_score(y, labels))
    # several classes with the binary default: the error names the scoring name to use
    with pytest.raises(ParameterError, match=r"pass average='macro'.*\(by name: 'f1_macro'"):
        get_metric("f1", "classification").score(y, p)
    with pytest.raises(ParameterError, match=r"metric='f1_macro' is a classification metric but the task is "):
        get_metric("f1_macro", "regression")
    with pytest.raises(ParameterError, match=r"metric='f1_banana' is not known"):
        get_metric("f1_banana", "classification")


@pytest.fixture(scope="module")
def adult_rows():
    import pandas as pd

    import pipekit.datasets as D

    return pd.read_csv(D.path("adult_sample") / "adult.csv").iloc[:2000]


def test_roc_auc_of_several_classes_refuses_a_class_missing_from_the_targets_on_adult(adult_rows):
    from pipekit.metrics import RocAuc

    # 'race' of adult (5 classes) scored on rows holding no 'Other': its one-vs-rest AUC has no positive
    race = adult_rows["race"].str.strip()
    races = sorted(race.unique())
    y = np.array([races.index(r) for r in race[race != "Other"]])
    other = races.index("Other")
    assert other not in y and len(races) == 5
    logits = np.random.default_rng(0).normal(size=(len(y), 5)).astype(np.float32)
    probs = torch.softmax(torch.as_tensor(logits), 1).numpy()
    fix = r"a stratified one.*RocAuc\(average='weighted'\) or RocAuc\(multi_class='ovo'\)"
    with pytest.raises(DataError, match=rf"roc_auc_score: the targets scored hold no item of class {other} of this "
                                        rf"5-class model.*{fix}"):
        RocAuc().score(y, probs)
    with pytest.raises(DataError, match=f"no item of class {other} "):  # the Learner's face, over batches
        accumulate(RocAuc(), [(logits[:500], y[:500]), (logits[500:], y[500:])])
    # the averages over the classes present are scikit-learn's (the weighted one without its warning of a class
    # with no item, which weighs 0)
    labels = np.arange(5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        weighted = RocAuc(average="weighted").score(y, probs)
    with pytest.warns(UndefinedMetricWarning, match="Only one class"):
        assert weighted == pytest.approx(skm.roc_auc_score(y, probs, multi_class="ovr", average="weighted",
                                                           labels=labels))
    assert RocAuc(multi_class="ovo").score(y, probs) == pytest.approx(
        skm.roc_auc_score(y, probs, multi_class="ovo", labels=labels))
    # every class present: as before
    y_all = np.array([races.index(r) for r in race])
    p_all = np.random.default_rng(1).dirichlet(np.ones(5), size=len(y_all))
    assert RocAuc().score(y_all, p_all) == pytest.approx(skm.roc_auc_score(y_all, p_all, multi_class="ovr"))
    # targets of one class alone: refused for the averages that need two
    with pytest.raises(DataError, match=r"hold class 0 alone of this 5-class model.*RocAuc\(average='micro'\)"):
        RocAuc(multi_class="ovo").score(np.zeros(10, dtype=np.int64), p_all[:10])


def test_binary_label_scores_of_a_two_class_model_on_targets_of_class_0_alone_are_scikit_learns_on_adult(adult_rows):
    from pipekit.metrics import FBeta, Jaccard, Precision, Recall

    # the adult rows earning under 50k, scored by a model that predicts that class for every row
    low = (adult_rows["salary"] == "<50k").to_numpy()
    y = np.zeros(int(low.sum()), dtype=np.int64)
    logits = torch.tensor([[2.0, -1.0]]).repeat(len(y), 1)
    for metric, sk in [(F1Score(), skm.f1_score), (Precision(), skm.precision_score), (Recall(), skm.recall_score),
                       (FBeta(2), functools.partial(skm.fbeta_score, beta=2)), (Jaccard(), skm.jaccard_score)]:
        with pytest.warns(UndefinedMetricWarning):
            ours = accumulate(metric, [(logits[:100], y[:100]), (logits[100:], y[100:])])
        with pytest.warns(UndefinedMetricWarning):
            theirs = sk(y, np.zeros_like(y))
        assert ours == theirs == 0.0, metric.name
        with pytest.warns(UndefinedMetricWarning):
            assert float(metric(logits, torch.as_tensor(y))) == 0.0  # called on the tensors
    # a class beyond the model's two is still refused, naming the model's classes
    with pytest.raises(ValueError, match=r"pos_label=2 is not a class of this 2-class model"):
        accumulate(F1Score(pos_label=2), [(logits, y)])


def test_a_tracker_given_a_nan_roc_auc_says_the_metric_is_undefined_on_the_validation_set(adult_rows):
    from pipekit.data.seed import set_seed
    from pipekit.learn import EarlyStoppingCallback
    from pipekit.metrics import RocAucBinary
    from pipekit.tabular import Categorify, FillMissing, Normalize, TabularDataLoaders, tabular_learner

    # a validation set of adult's '<50k' rows alone: ROC-AUC ranks one class against the other, so it is NaN
    low = np.flatnonzero((adult_rows["salary"] == "<50k").to_numpy())[-300:]
    set_seed(0)
    dls = TabularDataLoaders.from_df(adult_rows, procs=[Categorify, FillMissing, Normalize],
                                     cat_names=["workclass", "education"], cont_names=["age", "education-num"],
                                     y_names="salary", valid_idx=low.tolist(), bs=64)
    learn = tabular_learner(dls, layers=[8], metrics=[RocAucBinary()])
    with pytest.warns(PipekitWarning) as seen:
        learn.fit(1, 1e-2, cbs=[EarlyStoppingCallback(monitor="roc_auc_score")])
    said = " ".join(str(w.message) for w in seen)
    assert "roc_auc_score: the targets scored (in a fit, the validation set's) hold only class 0" in said
    assert re.search(r"EarlyStoppingCallback: the monitored value roc_auc_score=nan at epoch 0 is not a finite number.*"
                     r"a metric undefined on that validation set, such as ROC-AUC of a set holding one class alone "
                     r"\(that metric's own warning names the class and the fix\)", said)
