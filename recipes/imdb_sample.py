"""ULMFiT on imdb_sample: language model on the reviews -> encoder -> classifier with gradual unfreezing.

No pretrained weights are available offline, so the language model learns from the sample's own 1000
reviews (labels unused). The classifier is compared with a TF-IDF + logistic-regression baseline fitted
on the same training split in the same run, and with the average of both models' probabilities.

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
from pipekit.text import TextBlock
from pipekit.text.learner import language_model_learner, text_classifier_learner
from pipekit.text.models import AWD_LSTM


def baseline(df: pl.DataFrame) -> tuple[float, np.ndarray]:
    """TF-IDF (words and bigrams) + logistic regression: validation accuracy and P(positive)."""
    train, valid = df.filter(~pl.col("is_valid")), df.filter(pl.col("is_valid"))
    vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    xtr, xva = vec.fit_transform(train["text"].to_list()), vec.transform(valid["text"].to_list())
    clf = LogisticRegression(C=10.0, max_iter=2000).fit(xtr, train["label"].to_list())
    proba = clf.predict_proba(xva)[:, list(clf.classes_).index("positive")]
    acc = float(np.mean(np.where(proba > 0.5, "positive", "negative") == valid["label"].to_numpy()))
    return acc, proba


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny model, one epoch per stage (for tests)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads (1 is fastest on a busy shared machine)")
    ap.add_argument("--lm-epochs", type=int, default=None)
    ap.add_argument("--clf-epochs", type=int, default=None, help="epochs of the last, fully unfrozen stage")
    ap.add_argument("--final-lr", type=float, default=4e-3, help="peak lr of the last, fully unfrozen stage")
    ap.add_argument("--emb", type=int, default=64)
    ap.add_argument("--hid", type=int, default=128)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--max-vocab", type=int, default=3000,
                    help="a small vocab keeps the LM softmax cheap on a CPU")
    ap.add_argument("--out", type=str, default=None, help="write the figures as JSON here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    set_seed(args.seed)
    t0 = time.time()
    df = pl.read_csv(D.path("imdb_sample") / "texts.csv")
    if args.quick:  # a subset keeps the smoke run within seconds
        df = pl.concat([df.filter(~pl.col("is_valid")).head(120), df.filter(pl.col("is_valid")).head(40)])

    base_acc, base_proba = baseline(df)
    print(f"TF-IDF + logistic regression: accuracy {base_acc:.4f}")

    cfg = dict(emb_sz=24, n_hid=48, n_layers=2) if args.quick else \
        dict(emb_sz=args.emb, n_hid=args.hid, n_layers=args.layers)
    lm_epochs = args.lm_epochs or (1 if args.quick else 6)
    clf_epochs = args.clf_epochs or (1 if args.quick else 10)
    with tempfile.TemporaryDirectory(prefix="pk_imdb_") as work:
        return run(args, df, cfg, lm_epochs, clf_epochs, Path(work), base_acc, base_proba, t0)


def run(args: argparse.Namespace, df: pl.DataFrame, cfg: dict, lm_epochs: int, clf_epochs: int, work: Path,
        base_acc: float, base_proba: np.ndarray, t0: float) -> dict:
    """Language model -> encoder -> classifier; the models are written under ``work``."""

    # 1. language model on all 1000 reviews (their labels unused)
    dls_lm = DataBlock(blocks=TextBlock.from_df("text", is_lm=True, max_vocab=args.max_vocab), get_x=ColReader("text"),
                       splitter=RandomSplitter(0.1, seed=args.seed)).dataloaders(df, bs=32, seed=args.seed)
    lm = language_model_learner(dls_lm, AWD_LSTM, config=cfg, drop_mult=0.3, metrics=[accuracy, perplexity],
                                path=work)
    lm.fit_one_cycle(lm_epochs, 1e-2 if not args.quick else 3e-2)
    lm_loss, lm_acc, lm_ppl = lm.validate()
    lm.save_encoder("imdb_enc")
    print("LM sample:", lm.predict("I liked this movie because", n_words=15, temperature=0.75, seed=args.seed))

    # 2. classifier on the is_valid split, encoder from the language model, gradual unfreezing
    dls = DataBlock(blocks=(TextBlock.from_df("text", vocab=dls_lm.blocks[0].vocab), CategoryBlock),
                    get_x=ColReader("text"), get_y=ColReader("label"),
                    splitter=ColSplitter("is_valid")).dataloaders(df, bs=32, seed=args.seed)
    clf = text_classifier_learner(dls, AWD_LSTM, config=cfg, drop_mult=0.5, metrics=accuracy, path=work)
    clf.load_encoder("imdb_enc")
    lr = 2e-2
    clf.fit_one_cycle(1, lr)
    clf.freeze_to(-2)
    clf.fit_one_cycle(1, slice(lr / 2 / (2.6**4), lr / 2))
    clf.freeze_to(-3)
    clf.fit_one_cycle(1, slice(lr / 4 / (2.6**4), lr / 4))
    clf.unfreeze()
    clf.fit_one_cycle(clf_epochs, slice(args.final_lr / (2.6**4), args.final_lr))

    probs, targs = clf.get_preds()
    valid = df.filter(pl.col("is_valid"))
    labels = np.array(dls.vocab)[targs.numpy()]
    assert (labels == valid["label"].to_numpy()).all(), "validation order differs from the table's"
    p_pos = probs[:, dls.vocab.index("positive")].numpy()
    nn_acc = float(np.mean((p_pos > 0.5) == (labels == "positive")))
    ens_acc = float(np.mean(((p_pos + base_proba) / 2 > 0.5) == (labels == "positive")))
    minutes = (time.time() - t0) / 60
    res = {"lm_accuracy": float(lm_acc), "lm_perplexity": float(lm_ppl), "classifier_accuracy": nn_acc,
           "ensemble_accuracy": ens_acc, "tfidf_logreg_accuracy": base_acc, "minutes": minutes,
           "quick": args.quick, "config": cfg, "lm_epochs": lm_epochs, "clf_epochs": clf_epochs}
    if args.out:  # the per-review probabilities go with the figures, for later analysis
        Path(args.out).write_text(json.dumps({**res, "classifier_p_positive": p_pos.round(4).tolist(),
                                              "baseline_p_positive": base_proba.round(4).tolist()}, indent=1))
    print(f"result: classifier accuracy {nn_acc:.4f}, ensemble with TF-IDF+LR {ens_acc:.4f}, "
          f"TF-IDF+LR baseline {base_acc:.4f} (LM accuracy {lm_acc:.3f}, perplexity {lm_ppl:.1f}; "
          f"{minutes:.1f} min)")
    return res


if __name__ == "__main__":
    main()
