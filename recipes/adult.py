"""Adult census income: will a person earn >= 50k? A tabular net with embeddings (the book's chapter 1).

After training on the book's columns, the first row of the CSV is predicted as the tabular tutorial does it,
``row, clas, probs = learn.predict(df.iloc[0])``, and ``row.show()`` shows it as the model read it.

Run:  pipekit run adult [--quick] [--epochs N] [--seed S]
"""

from __future__ import annotations

import time
from typing import Any

import pandas as pd
import torch

from pipekit.cli import positive_int, positive_number, recipe_parser, seed_int
from pipekit.data.seed import set_seed
from pipekit.data.splitters import RandomSplitter
from pipekit.core.validate import Options, check
from pipekit.datasets import path
from pipekit.learn import accuracy
from pipekit.tabular import Categorify, FillMissing, Normalize, Tabular, tabular_learner

CAT_NAMES = ["workclass", "education", "marital-status", "occupation", "relationship", "race"]
CONT_NAMES = ["age", "fnlwgt", "education-num"]
# Every input column of the table: with capital gains, hours and country the net passes 0.85.
ALL_CAT_NAMES = CAT_NAMES + ["sex", "native-country"]
ALL_CONT_NAMES = CONT_NAMES + ["capital-gain", "capital-loss", "hours-per-week"]


def tabular(cat_names: list[str] = CAT_NAMES, cont_names: list[str] = CONT_NAMES) -> Tabular:
    """The table, processed on its training rows and split by RandomSplitter(valid_pct=0.2, seed=42)."""
    return Tabular(path("adult_sample") / "adult.csv", procs=[Categorify, FillMissing, Normalize],
                   cat_names=cat_names, cont_names=cont_names, y_names="salary",
                   splits=RandomSplitter(valid_pct=0.2, seed=42))


def dataloaders(bs: int = 256, seed: int = 42):
    """The book's columns as DataLoaders (``pipekit summary adult`` walks them)."""
    return tabular().dataloaders(bs=bs, seed=seed)


def train(cat_names: list[str], cont_names: list[str], epochs: int, bs: int, lr: float,
          seed: int) -> tuple[float, float, int, int, Any]:
    """Train on RandomSplitter(valid_pct=0.2, seed=42); return (valid accuracy, valid loss, n_train, n_valid,
    the learner)."""
    set_seed(seed)
    tab = tabular(cat_names, cont_names)
    dls = tab.dataloaders(bs=bs, seed=seed)
    learn = tabular_learner(dls, layers=[200, 100], metrics=accuracy)
    learn.fit_one_cycle(epochs, lr)
    loss, acc = learn.validate()[:2]
    return float(acc), float(loss), len(tab.train), len(tab.valid), learn


def main(quick: bool = False, epochs: int | None = None, bs: int = 256, lr: float = 1e-2, seed: int = 42,
         features: str = "both") -> float:
    """Train and report; the options are the command line's (``pipekit run adult --quick --features book`` is
    ``main(quick=True, features="book")``); ``epochs`` None: 5, or 1 with ``quick``. The valid accuracy of the last
    feature set trained is returned."""
    features = check("adult", features=(features, Options("book", "all", "both")))["features"]
    t0 = time.perf_counter()
    if epochs is None:
        epochs = 1 if quick else 5
    sets = {"book": (CAT_NAMES, CONT_NAMES), "all": (ALL_CAT_NAMES, ALL_CONT_NAMES)}
    chosen = ["book", "all"] if features == "both" else [features]
    parts, acc, learners = [], 0.0, {}
    for name in chosen:
        cats, conts = sets[name]
        acc, loss, n_train, n_valid, learners[name] = train(cats, conts, epochs, bs, lr, seed)
        parts.append(f"{acc:.4f} with the {name} columns ({len(cats)} cat + {len(conts)} cont, valid loss {loss:.4f})")
    # the tutorial's prediction of one row, and the row as the model read it
    df = pd.read_csv(path("adult_sample") / "adult.csv")
    row, clas, probs = learners[chosen[0]].predict(df.iloc[0])
    row.show()
    print(f"result: adult valid accuracy {' / '.join(parts)}; {epochs} epochs, {n_train} train / {n_valid} valid "
          f"rows (RandomSplitter 0.2, seed 42); predict(row 0)={row} (p={float(probs[int(clas)]):.3f}, "
          f"label {df['salary'][0]}), {time.perf_counter() - t0:.1f} s")
    return acc


if __name__ == "__main__":
    ap = recipe_parser(__file__, __doc__)
    ap.add_argument("--quick", action="store_true", help="a short run for tests: 1 epoch unless --epochs is given")
    ap.add_argument("--epochs", type=positive_int, default=None, help="epochs (default 5; 1 with --quick)")
    ap.add_argument("--bs", type=positive_int, default=256)
    ap.add_argument("--lr", type=positive_number, default=1e-2)
    ap.add_argument("--seed", type=seed_int, default=42)
    ap.add_argument("--features", choices=["book", "all", "both"], default="both",
                    help="book: the chapter-1 columns; all: every column; both (default)")
    a = ap.parse_args()
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    main(**vars(a))
