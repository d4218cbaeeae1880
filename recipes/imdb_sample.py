"""ULMFiT on imdb_sample: language model on the reviews -> encoder -> classifier with gradual unfreezing.

No pretrained weights are available offline, so the language model learns from the sample's own 1000
reviews (labels unused). The classifier is compared with a TF-IDF + logistic-regression baseline fitted
on the same training split in the same run, and ensembled with it two ways:

* ``mean``: the average of both models' probabilities (no tuning at all);
* ``weighted``: a weight chosen on a holdout carved out of the *training* reviews (a classifier and a
  baseline are first fitted on the other 80% and the weight minimising the holdout log-loss is kept),
  then applied to the models fitted on the whole training split. The validation reviews are never
  used to choose anything.

    python recipes/imdb_sample.py            # full run (a few minutes on 2 CPU cores)
    python recipes/imdb_sample.py --quick    # a smoke run for tests
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
import torch
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

import pipekit.datasets as D
from pipekit.data import CategoryBlock, ColReader, ColSplitter, DataBlock, RandomSplitter, set_seed
from pipekit.learn import accuracy, perplexity
from pipekit.text import AWD_LSTM, TextBlock, language_model_learner, text_classifier_learner


def tfidf_logreg(train: pl.DataFrame, test: pl.DataFrame) -> np.ndarray:
    """TF-IDF (words and bigrams) + logistic regression fitted on ``train``: P(positive) for ``test``."""
    vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    clf = LogisticRegression(C=10.0, max_iter=2000).fit(vec.fit_transform(train["text"].to_list()),
                                                        train["label"].to_list())
    return clf.predict_proba(vec.transform(test["text"].to_list()))[:, list(clf.classes_).index("positive")]


def accuracy_of(p_pos: np.ndarray, labels: pl.Series) -> float:
    return float(np.mean((p_pos > 0.5) == (labels.to_numpy() == "positive")))


def train_classifier(df: pl.DataFrame, valid_col: str, vocab: list[str], args: argparse.Namespace,
                     cfg: dict, work: Path) -> np.ndarray:
    """Classifier from the saved encoder with gradual unfreezing; P(positive) of the ``valid_col`` rows,
    in table order."""
    set_seed(args.seed)
    dls = DataBlock(blocks=(TextBlock.from_df("text", vocab=vocab), CategoryBlock), get_x=ColReader("text"),
                    get_y=ColReader("label"), splitter=ColSplitter(valid_col)).dataloaders(df, bs=32, seed=args.seed)
    clf = text_classifier_learner(dls, AWD_LSTM, config=cfg, drop_mult=args.drop_mult, metrics=accuracy,
                                  path=work)
    clf.load_encoder("imdb_enc")  # also freezes everything but the head
    lr = 2e-2
    clf.fit_one_cycle(1, lr)
    clf.freeze_to(-2)
    clf.fit_one_cycle(1, slice(lr / 2 / (2.6**4), lr / 2))
    clf.freeze_to(-3)
    clf.fit_one_cycle(1, slice(lr / 4 / (2.6**4), lr / 4))
    clf.unfreeze()
    clf.fit_one_cycle(args.clf_epochs, slice(args.final_lr / (2.6**4), args.final_lr))
    probs, targs = clf.get_preds()
    labels = np.array(dls.vocab)[targs.numpy()]
    expected = df.filter(pl.col(valid_col))["label"].to_numpy()
    assert (labels == expected).all(), "predictions are not in table order"
    return probs[:, dls.vocab.index("positive")].numpy()


def choose_weight(p_nn: np.ndarray, p_lin: np.ndarray, labels: pl.Series) -> float:
    """Weight of the neural model in ``w*p_nn + (1-w)*p_lin`` with the lowest log-loss on ``labels``."""
    y = labels.to_numpy() == "positive"
    grid = np.linspace(0, 1, 21)
    losses = []
    for w in grid:
        p = np.clip(w * p_nn + (1 - w) * p_lin, 1e-6, 1 - 1e-6)
        losses.append(-np.mean(np.where(y, np.log(p), np.log(1 - p))))
    return float(grid[int(np.argmin(losses))])


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a subset, tiny model, one epoch per stage (for tests)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is fastest on a busy machine)")
    ap.add_argument("--lm-epochs", type=int, default=6)
    ap.add_argument("--clf-epochs", type=int, default=10, help="epochs of the last, fully unfrozen stage")
    ap.add_argument("--final-lr", type=float, default=4e-3, help="peak lr of the last, fully unfrozen stage")
    ap.add_argument("--drop-mult", type=float, default=0.5, help="scales the classifier's dropouts")
    ap.add_argument("--emb", type=int, default=64)
    ap.add_argument("--hid", type=int, default=128)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--max-vocab", type=int, default=3000, help="a small vocab keeps the LM softmax cheap on a CPU")
    ap.add_argument("--holdout", type=float, default=0.2, help="share of the training reviews used to weight "
                                                                "the ensemble")
    ap.add_argument("--out", type=str, default=None, help="write the figures as JSON here")
    args = ap.parse_args(argv)
    if args.quick:
        args.lm_epochs, args.clf_epochs, args.emb, args.hid = 1, 1, 24, 48
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse(argv)
    torch.set_num_threads(args.threads)
    set_seed(args.seed)
    t0 = time.time()
    df = pl.read_csv(D.path("imdb_sample") / "texts.csv")
    if args.quick:  # a subset keeps the smoke run within seconds
        df = pl.concat([df.filter(~pl.col("is_valid")).head(120), df.filter(pl.col("is_valid")).head(40)])
    train, valid = df.filter(~pl.col("is_valid")), df.filter(pl.col("is_valid"))
    base_proba = tfidf_logreg(train, valid)
    base_acc = accuracy_of(base_proba, valid["label"])
    print(f"TF-IDF + logistic regression: accuracy {base_acc:.4f}")
    cfg = dict(emb_sz=args.emb, n_hid=args.hid, n_layers=args.layers)

    with tempfile.TemporaryDirectory(prefix="pk_imdb_") as tmp:
        work = Path(tmp)
        # 1. language model on all the reviews (their labels unused), its encoder saved
        dls_lm = DataBlock(blocks=TextBlock.from_df("text", is_lm=True, max_vocab=args.max_vocab),
                           get_x=ColReader("text"), splitter=RandomSplitter(0.1, seed=args.seed)
                           ).dataloaders(df, bs=32, seed=args.seed)
        lm = language_model_learner(dls_lm, AWD_LSTM, config=cfg, drop_mult=0.3, metrics=[accuracy, perplexity],
                                    path=work)
        lm.fit_one_cycle(args.lm_epochs, 3e-2 if args.quick else 1e-2)
        _, lm_acc, lm_ppl = lm.validate()
        lm.save_encoder("imdb_enc")
        print("LM sample:", lm.predict("I liked this movie because", n_words=15, temperature=0.75, seed=args.seed))
        vocab = dls_lm.blocks[0].vocab

        # 2. ensemble weight from a holdout of the training reviews (validation reviews untouched)
        rng = np.random.default_rng(args.seed)
        tune = train.with_columns(is_tune=pl.Series(rng.random(len(train)) < args.holdout))
        p_nn_tune = train_classifier(tune, "is_tune", vocab, args, cfg, work)
        p_lin_tune = tfidf_logreg(tune.filter(~pl.col("is_tune")), tune.filter(pl.col("is_tune")))
        w = choose_weight(p_nn_tune, p_lin_tune, tune.filter(pl.col("is_tune"))["label"])
        print(f"ensemble weight of the classifier, chosen on {int(tune['is_tune'].sum())} training reviews: {w:.2f}")

        # 3. the classifier on the whole training split, scored on the validation reviews
        p_nn = train_classifier(df, "is_valid", vocab, args, cfg, work)

    nn_acc = accuracy_of(p_nn, valid["label"])
    mean_acc = accuracy_of((p_nn + base_proba) / 2, valid["label"])
    weighted_acc = accuracy_of(w * p_nn + (1 - w) * base_proba, valid["label"])
    minutes = (time.time() - t0) / 60
    res = {"lm_accuracy": float(lm_acc), "lm_perplexity": float(lm_ppl), "classifier_accuracy": nn_acc,
           "ensemble_mean_accuracy": mean_acc, "ensemble_weighted_accuracy": weighted_acc, "ensemble_weight": w,
           "tfidf_logreg_accuracy": base_acc, "minutes": minutes, "quick": args.quick, "config": cfg,
           "lm_epochs": args.lm_epochs, "clf_epochs": args.clf_epochs}
    if args.out:  # the per-review probabilities go with the figures, for later analysis
        Path(args.out).write_text(json.dumps({**res, "classifier_p_positive": p_nn.round(4).tolist(),
                                              "baseline_p_positive": base_proba.round(4).tolist()}, indent=1))
    print(f"result: classifier accuracy {nn_acc:.4f}; ensembles with TF-IDF+LR: mean {mean_acc:.4f}, "
          f"weighted (w={w:.2f}, chosen on training reviews) {weighted_acc:.4f}; TF-IDF+LR baseline {base_acc:.4f} "
          f"(LM accuracy {lm_acc:.3f}, perplexity {lm_ppl:.1f}; {minutes:.1f} min)")
    return res


if __name__ == "__main__":
    main()
