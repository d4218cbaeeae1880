"""ULMFiT on imdb_sample: language model on the reviews -> encoder -> classifiers with gradual unfreezing.

No pretrained weights are available offline, so the language model learns from the sample's own 1000
reviews (labels unused). Two consequences shape the classifier stage:

* its word vectors have seen only ~230k tokens and know little about sentiment, so after gradual
  unfreezing the last stage trains every layer at the same learning rate (``--lr-div 1``; ULMFiT's
  2.6**4 suits a language model pretrained on a large corpus), and the classifier keeps its own
  vocabulary of the training reviews (words the language model did not keep start at the mean vector);
* one classifier on 800 reviews is noisy, so the training reviews are split into ``--folds`` folds
  and a classifier is trained on each k-1 folds: the neural classifier's validation prediction is the
  mean of those ``k`` classifiers, and each predicts its held-out fold ("out of fold").

A TF-IDF + logistic-regression baseline, fitted on the whole training split, is the anchor. The
ensembles with it:

* ``mean``: the average of both models' probabilities (no tuning at all);
* ``stacked``: a logistic regression over the two models' logits, fitted on the out-of-fold predictions
  of the 800 training reviews (the baseline's from its own k-fold fits). The neural net's logits are
  several times larger than the baseline's, which a plain mean cannot correct. The same stacking with
  the baseline alone is reported too, so the net's share of the gain is visible. The validation
  reviews are never used to choose anything.

    pipekit run imdb_sample            # full run (about 7 minutes on one CPU core)
    pipekit run imdb_sample --quick    # a smoke run for tests
    pipekit run imdb_sample --out DIR  # also keep the figures and per-review probabilities in DIR/result.json
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

from pipekit.cli import (non_negative_number, number_option, out_folder, positive_int, positive_number, recipe_parser,
                         seed_int)
import pipekit.datasets as D
from pipekit.core.archive import atomic_write_bytes
from pipekit.core.errors import ParameterError
from pipekit.core.validate import Interval, check
from pipekit.data import CategoryBlock, ColReader, ColSplitter, DataBlock, RandomSplitter, set_seed
from pipekit.learn import accuracy, perplexity
from pipekit.text import AWD_LSTM, TextBlock, language_model_learner, text_classifier_learner
from pipekit.text.tokenize import SPECIAL_TOKENS


def tfidf_logreg(train: pl.DataFrame, test: pl.DataFrame) -> np.ndarray:
    """TF-IDF (words and bigrams) + logistic regression fitted on ``train``: P(positive) for ``test``."""
    vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    clf = LogisticRegression(C=10.0, max_iter=2000).fit(vec.fit_transform(train["text"].to_list()),
                                                        train["label"].to_list())
    return clf.predict_proba(vec.transform(test["text"].to_list()))[:, list(clf.classes_).index("positive")]


def accuracy_of(p_pos: np.ndarray, labels: pl.Series) -> float:
    return float(np.mean((p_pos > 0.5) == (labels.to_numpy() == "positive")))


def train_classifier(train: pl.DataFrame, test: pl.DataFrame, args: argparse.Namespace, cfg: dict, work: Path,
                     seed: int) -> np.ndarray:
    """A classifier from the saved encoder, fitted on ``train`` with gradual unfreezing; P(positive) for
    the rows of ``test``, in order."""
    set_seed(seed)
    df = pl.concat([train.with_columns(_held=pl.lit(False)), test.with_columns(_held=pl.lit(True))], how="diagonal")
    dls = DataBlock(blocks=(TextBlock.from_df("text", max_vocab=args.clf_max_vocab), CategoryBlock),
                    get_x=ColReader("text"), get_y=ColReader("label"), splitter=ColSplitter("_held")
                    ).dataloaders(df, bs=32, seed=seed)
    clf = text_classifier_learner(dls, AWD_LSTM, config=cfg, drop_mult=args.drop_mult, metrics=accuracy,
                                  path=work)
    clf.load_encoder("imdb_enc")  # aligns the vocabularies; freezes everything but the head
    lr = 2e-2
    clf.fit_one_cycle(1, lr)
    clf.freeze_to(-2)
    clf.fit_one_cycle(1, slice(lr / 2 / (2.6**4), lr / 2))
    clf.freeze_to(-3)
    clf.fit_one_cycle(1, slice(lr / 4 / (2.6**4), lr / 4))
    clf.unfreeze()
    clf.fit_one_cycle(args.clf_epochs, slice(args.final_lr / args.lr_div, args.final_lr))
    probs, targs = clf.get_preds()
    classes = list(dls.vocab[1])  # a text classifier's dls.vocab: the tokens, then the classes
    labels = np.array(classes)[targs.numpy()]
    if not (labels == test["label"].to_numpy()).all():
        raise SystemExit("predictions are not in table order")
    return probs[:, classes.index("positive")].numpy()


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-4, 1 - 1e-4)
    return np.log(p / (1 - p))


def stack(oof: list[np.ndarray], labels: pl.Series) -> LogisticRegression:
    """The stacking model: a logistic regression over the members' logits, fitted on out-of-fold predictions."""
    return LogisticRegression(C=1.0).fit(np.stack([logit(p) for p in oof], 1), labels.to_numpy() == "positive")


def datablock(quick: bool = False, max_vocab: int = 3000, seed: int = 42):
    """The language model's DataBlock and the reviews it reads (``pipekit summary imdb_sample`` walks them)."""
    df = pl.read_csv(D.path("imdb_sample") / "texts.csv")
    if quick:  # a subset keeps the smoke run within seconds
        df = pl.concat([df.filter(~pl.col("is_valid")).head(120), df.filter(pl.col("is_valid")).head(40)])
    dblock = DataBlock(blocks=TextBlock.from_df("text", is_lm=True, max_vocab=max_vocab), get_x=ColReader("text"),
                       splitter=RandomSplitter(0.1, seed=seed))
    return dblock, df


#: what --quick sets of the options not given: (value without --quick, value with it)
QUICK = {"lm_epochs": (6, 1), "clf_epochs": (10, 1), "emb": (64, 24), "hid": (128, 48), "folds": (5, 2)}
#: the stacked ensemble's folds: out-of-fold predictions need two at least
FOLDS = Interval(2, None, integer=True, why="the stacked ensemble needs out-of-fold predictions")
#: a vocabulary's size: the special tokens, and at least one word
VOCAB_SIZE = Interval(len(SPECIAL_TOKENS) + 1, None, integer=True,
                      why=f"the {len(SPECIAL_TOKENS)} special tokens and at least one word")


def main(quick: bool = False, seed: int = 42, threads: int = 1, lm_epochs: int | None = None,
         clf_epochs: int | None = None, final_lr: float = 1e-2, lr_div: float = 1.0, drop_mult: float = 0.5,
         emb: int | None = None, hid: int | None = None, layers: int = 2, max_vocab: int = 3000,
         clf_max_vocab: int = 60000, folds: int | None = None, out: str | Path | None = None) -> dict:
    """Run every stage and report; the options are the command line's (``pipekit run imdb_sample --quick --out
    DIR`` is ``main(quick=True, out="DIR")``); lm_epochs, clf_epochs, emb, hid and folds left None are 6,
    10, 64, 128 and 5, or with ``quick`` 1, 1, 24, 48 and 2 (an option given wins). ``threads``: torch's CPU
    threads; ``out``: the folder (made when missing) to keep result.json in, the figures and the per-review
    probabilities, written last, so a folder without it holds a run that did not finish. The figures are returned."""
    folder = None if out is None else _out_folder(out)
    given = {"lm_epochs": lm_epochs, "clf_epochs": clf_epochs, "emb": emb, "hid": hid, "folds": folds}
    chosen = {k: v if v is not None else QUICK[k][1 if quick else 0] for k, v in given.items()}
    check("imdb_sample", folds=(chosen["folds"], FOLDS))
    args = argparse.Namespace(quick=quick, seed=seed, threads=threads, final_lr=final_lr, lr_div=lr_div,
                              drop_mult=drop_mult, layers=layers, max_vocab=max_vocab, clf_max_vocab=clf_max_vocab,
                              out=out, **chosen)
    torch.set_num_threads(args.threads)
    set_seed(args.seed)
    t0 = time.time()
    lm_block, df = datablock(args.quick, args.max_vocab, args.seed)
    train, valid = df.filter(~pl.col("is_valid")), df.filter(pl.col("is_valid"))
    base_proba = tfidf_logreg(train, valid)
    base_acc = accuracy_of(base_proba, valid["label"])
    print(f"TF-IDF + logistic regression: accuracy {base_acc:.4f}")
    cfg = dict(emb_sz=args.emb, n_hid=args.hid, n_layers=args.layers)

    with tempfile.TemporaryDirectory(prefix="pk_imdb_") as tmp:
        work = Path(tmp)
        # 1. language model on all the reviews (their labels unused), its encoder saved
        dls_lm = lm_block.dataloaders(df, bs=32, seed=args.seed)
        lm = language_model_learner(dls_lm, AWD_LSTM, config=cfg, drop_mult=0.3, metrics=[accuracy, perplexity],
                                    path=work)
        lm.fit_one_cycle(args.lm_epochs, 3e-2 if args.quick else 1e-2)
        _, lm_acc, lm_ppl = lm.validate()
        lm.save_encoder("imdb_enc")
        print("LM sample:", lm.predict("I liked this movie because", n_words=15, temperature=0.75, seed=args.seed))

        # 2. k classifiers, each on k-1 folds of the training reviews: out-of-fold and validation predictions,
        #    and the baseline fitted the same way for its out-of-fold predictions
        fold = np.random.default_rng(args.seed).permutation(len(train)) % args.folds
        oof_nn, oof_lin, valid_nn = np.zeros(len(train)), np.zeros(len(train)), []
        for k in range(args.folds):
            fit_rows, held = train.filter(pl.Series(fold != k)), train.filter(pl.Series(fold == k))
            p = train_classifier(fit_rows, pl.concat([held, valid]), args, cfg, work, seed=args.seed + k)
            oof_nn[fold == k], oof_lin[fold == k] = p[:len(held)], tfidf_logreg(fit_rows, held)
            valid_nn.append(p[len(held):])
            print(f"fold {k + 1}/{args.folds}: classifier {accuracy_of(p[:len(held)], held['label']):.4f}, "
                  f"TF-IDF+LR {accuracy_of(oof_lin[fold == k], held['label']):.4f} on its {len(held)} held-out "
                  "training reviews")
    p_nn = np.mean(valid_nn, 0)
    meta = stack([oof_lin, oof_nn], train["label"])
    p_stack = meta.predict_proba(np.stack([logit(base_proba), logit(p_nn)], 1))[:, 1]
    w_lin, w_nn = (float(c) for c in meta.coef_[0])
    # the same stacking with the baseline alone: what recalibrating the baseline is worth without the net
    solo = stack([oof_lin], train["label"])
    p_solo = solo.predict_proba(logit(base_proba)[:, None])[:, 1]
    print(f"stacking model, fitted on the out-of-fold predictions of {len(train)} training reviews: "
          f"{w_lin:.2f} x baseline logit + {w_nn:.2f} x classifier logit + {float(meta.intercept_[0]):.2f}")

    nn_acc = accuracy_of(p_nn, valid["label"])
    single = [accuracy_of(p, valid["label"]) for p in valid_nn]
    mean_acc = accuracy_of((p_nn + base_proba) / 2, valid["label"])
    stack_acc = accuracy_of(p_stack, valid["label"])
    solo_acc = accuracy_of(p_solo, valid["label"])
    minutes = (time.time() - t0) / 60
    res = {"lm_accuracy": float(lm_acc), "lm_perplexity": float(lm_ppl), "classifier_accuracy": nn_acc,
           "single_classifier_accuracies": single, "oof_classifier_accuracy": accuracy_of(oof_nn, train["label"]),
           "oof_tfidf_logreg_accuracy": accuracy_of(oof_lin, train["label"]),
           "ensemble_mean_accuracy": mean_acc, "ensemble_stacked_accuracy": stack_acc,
           "tfidf_logreg_recalibrated_accuracy": solo_acc,
           "stacking_coefs": {"baseline": w_lin, "classifier": w_nn, "intercept": float(meta.intercept_[0])},
           "tfidf_logreg_accuracy": base_acc, "minutes": minutes, "quick": args.quick, "config": cfg,
           "lm_epochs": args.lm_epochs, "clf_epochs": args.clf_epochs, "folds": args.folds}
    if folder is not None:  # the per-review probabilities go with the figures, for later analysis
        atomic_write_bytes(folder / "result.json", json.dumps({**res, "classifier_p_positive": p_nn.round(4).tolist(),
                                              "baseline_p_positive": base_proba.round(4).tolist(),
                                              "stacked_p_positive": p_stack.tolist(), "fold": fold.tolist(),
                                              "oof_classifier_p_positive": oof_nn.tolist(),
                                              "oof_baseline_p_positive": oof_lin.tolist(),
                                              "baseline_p_positive_full": base_proba.tolist(),
                                              "classifier_p_positive_full": p_nn.tolist()}, indent=1).encode())
    print(f"result: classifier accuracy {nn_acc:.4f} (mean of {args.folds} fold classifiers; single ones "
          f"{min(single):.3f}-{max(single):.3f}); ensembles with TF-IDF+LR: mean {mean_acc:.4f}, stacked (fitted on "
          f"out-of-fold predictions of training reviews) {stack_acc:.4f}; TF-IDF+LR baseline {base_acc:.4f}, "
          f"stacked alone {solo_acc:.4f} (LM accuracy {lm_acc:.3f}, perplexity {lm_ppl:.1f}; {minutes:.1f} min)")
    if folder is not None:
        print(f"figures written to {folder / 'result.json'}")
    return res


def _out_folder(out: str | Path) -> Path:
    """``out`` as the folder to write result.json in, checked and made before anything runs (a file of that name is
    refused), with a previous run's result.json removed: until this run writes its own, the folder does not look
    complete."""
    try:
        folder = out_folder(str(out))
    except argparse.ArgumentTypeError as e:
        raise ParameterError(f"imdb_sample: out={e}") from None
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "result.json").unlink(missing_ok=True)
    return folder


if __name__ == "__main__":
    ap = recipe_parser(__file__, __doc__ and __doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a subset, tiny model, one epoch per stage (for tests): "
                    "--lm-epochs 1 --clf-epochs 1 --emb 24 --hid 48 --folds 2 unless given")
    ap.add_argument("--seed", type=seed_int, default=42)
    ap.add_argument("--threads", type=positive_int, default=1, help="torch CPU threads (1 is fastest on a busy machine)")
    ap.add_argument("--lm-epochs", type=positive_int, default=None, help="default 6")
    ap.add_argument("--clf-epochs", type=positive_int, default=None,
                    help="epochs of the last, fully unfrozen stage (default 10)")
    ap.add_argument("--final-lr", type=positive_number, default=1e-2, help="peak lr of the last, fully unfrozen stage")
    ap.add_argument("--lr-div", type=positive_number, default=1.0,
                    help="head lr / embedding lr in the last stage (ULMFiT: 2.6**4 after a large-corpus LM)")
    ap.add_argument("--drop-mult", type=non_negative_number, default=0.5,
                    help="scales the classifier's dropouts (0: none)")
    ap.add_argument("--emb", type=positive_int, default=None, help="default 64")
    ap.add_argument("--hid", type=positive_int, default=None, help="default 128")
    ap.add_argument("--layers", type=positive_int, default=2, help="LSTM layers")
    ap.add_argument("--max-vocab", type=number_option(VOCAB_SIZE), default=3000,
                    help="a small vocab keeps the LM softmax cheap on a CPU")
    ap.add_argument("--clf-max-vocab", type=number_option(VOCAB_SIZE), default=60000,
                    help="the classifier's own vocab (training reviews)")
    ap.add_argument("--folds", type=number_option(FOLDS), default=None, help="classifiers, each fitted on k-1 folds of "
                    "the training reviews; also gives the out-of-fold predictions (default 5, at least 2)")
    ap.add_argument("--out", type=out_folder, default=None,
                    help="folder to keep result.json in (the figures and per-review probabilities), made when missing; "
                         "written last, when the run finished")
    a = ap.parse_args()
    main(**vars(a))
