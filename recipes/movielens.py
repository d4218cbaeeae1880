"""MovieLens sample: predict a user's rating of a movie with a dot-product collaborative filter.

Run:  pipekit run movielens [--quick] [--epochs N] [--nn]
"""

from __future__ import annotations

import time

import polars as pl
import torch

from pipekit.cli import non_negative_number, positive_int, positive_number, recipe_parser, seed_int
from pipekit.data.seed import set_seed
from pipekit.datasets import path
from pipekit.learn import rmse
from pipekit.tabular.collab import CollabDataLoaders, collab_learner


def dataloaders(ratings: pl.DataFrame | None = None):
    """Users and movies as codes, the rating as target, 20% held out (``pipekit summary movielens`` walks them)."""
    ratings = pl.read_csv(path("movie_lens_sample") / "ratings.csv") if ratings is None else ratings
    return CollabDataLoaders.from_df(ratings, user_name="userId", item_name="movieId", rating_name="rating",
                                     valid_pct=0.2, seed=42, bs=64)


def main(quick: bool = False, epochs: int | None = None, lr: float = 5e-3, wd: float = 0.1, factors: int = 50, nn: bool = False,
         seed: int = 0) -> float:
    """Train and report; the options are the command line's (``pipekit run movielens --quick --nn`` is
    ``main(quick=True, nn=True)``); ``epochs`` None: 5, or 3 with ``quick``. The valid RMSE is returned."""
    t0 = time.perf_counter()
    set_seed(seed)
    ratings = pl.read_csv(path("movie_lens_sample") / "ratings.csv")
    dls = dataloaders(ratings)
    learn = collab_learner(dls, n_factors=factors, use_nn=nn, y_range=(0, 5.5), metrics=rmse())
    if epochs is None:
        epochs = 3 if quick else 5  # 3 short epochs: a few seconds on 6k ratings
    learn.fit_one_cycle(epochs, lr, wd=wd)
    loss, err = learn.validate()[:2]
    top = ratings.group_by("movieId").len().sort("len", descending=True)["movieId"][0]
    similar = learn.model.most_similar(top, n=3)
    bias = "" if nn else f"; its bias {float(learn.model.bias([top])[0]):+.3f}"  # EmbeddingNN learns no bias
    print(f"movie {top} (most rated) is closest to {[m for m, _ in similar]}{bias}")
    print(f"result: movie_lens_sample valid RMSE {err:.4f} ({'EmbeddingNN' if nn else 'EmbeddingDotBias'}, "
          f"{factors} factors, {epochs} epochs, seeded 20% split, {time.perf_counter() - t0:.1f} s)")
    return float(err)


if __name__ == "__main__":
    ap = recipe_parser(__file__, __doc__)
    ap.add_argument("--quick", action="store_true", help="a short run for tests: 3 epochs unless --epochs is given")
    ap.add_argument("--epochs", type=positive_int, default=None, help="epochs (default 5; 3 with --quick)")
    ap.add_argument("--lr", type=positive_number, default=5e-3)
    ap.add_argument("--wd", type=non_negative_number, default=0.1)
    ap.add_argument("--factors", type=positive_int, default=50)
    ap.add_argument("--nn", action="store_true", help="EmbeddingNN instead of EmbeddingDotBias")
    ap.add_argument("--seed", type=seed_int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    main(**vars(a))
