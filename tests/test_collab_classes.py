"""A collab model's own vocabularies (``learn.model.classes``) are what ``dls.classes`` are: CategoryMaps, on the
real movie_lens_sample ratings, before and after export."""

import json
import zipfile

import polars as pl
import pytest
import torch

from pipekit.data.seed import set_seed
from pipekit.data.vocab import CategoryMap
from pipekit.datasets import path
from pipekit.learn.export import load_learner
from pipekit.tabular import CollabDataLoaders, collab_learner

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def ratings() -> pl.DataFrame:
    return pl.read_csv(path("movie_lens_sample") / "ratings.csv")


@pytest.fixture(scope="module")
def dls(ratings):
    set_seed(0)
    return CollabDataLoaders.from_df(ratings, valid_pct=0.2, seed=42, bs=64)


def _stored(record, key):
    """Every value stored under ``key`` anywhere in an export's record."""
    if isinstance(record, dict):
        return ([record[key]] if key in record else []) + [v for x in record.values() for v in _stored(x, key)]
    return [v for x in record for v in _stored(x, key)] if isinstance(record, list) else []


def _check_model_classes(model, dls, movie):
    for col in ("userId", "movieId"):
        mine, theirs = model.classes[col], dls.classes[col]
        assert isinstance(mine, CategoryMap) and mine == theirs and mine == list(theirs)
        assert mine is not theirs  # the model's own copy
    movies = model.classes["movieId"]
    idx = dls.classes["movieId"].o2i[movie]
    # the book's lookups on the model's copy: an id's embedding row, and a row's id
    assert movies.o2i[movie] == movies.o2i[str(movie)] == idx > 0 and movies[idx] == str(movie)
    assert torch.equal(model.i_weight.weight[idx].detach().cpu(), model.weight(movie))
    assert movies[torch.tensor([idx, 0])] == [str(movie), "#na#"]
    assert 888888 not in movies.o2i and model.classes["userId"].o2i.get(10**9, -1) == -1


def test_model_classes_are_category_maps_and_stay_so_after_export(dls, ratings, tmp_path):
    learn = collab_learner(dls, n_factors=8, y_range=(0, 5.5))
    movie = ratings["movieId"].value_counts(sort=True)["movieId"][0]  # the most-rated movie, an int id
    _check_model_classes(learn.model, dls, movie)
    # the file stores the vocabularies as plain lists of ids, as before
    path_ = learn.export(tmp_path / "collab.pipekit")
    record = json.loads(zipfile.ZipFile(path_).read("record.json"))
    in_model = [v for v in _stored(record, "classes") if isinstance(v, dict) and "movieId" in v]
    assert in_model and all(v["movieId"] == list(dls.classes["movieId"]) for v in in_model)
    loaded = load_learner(path_)
    _check_model_classes(loaded.model, loaded.dls, movie)
    assert loaded.model.classes == learn.model.classes


def test_neural_model_classes_are_category_maps_too(dls, ratings):
    learn = collab_learner(dls, use_nn=True, layers=[10], y_range=(0, 5.5))
    movies = learn.model.classes["movieId"]
    movie = ratings["movieId"][0]
    assert isinstance(movies, CategoryMap) and movies == dls.classes["movieId"]
    assert movies.o2i[movie] == dls.classes["movieId"].o2i[movie]
    assert torch.equal(learn.model.embeds[1].weight[movies.o2i[movie]].detach().cpu(), learn.model.weight(movie))


def test_hashed_unsigned_64_bit_ids_predict_from_a_raw_row(ratings):
    # user ids hashed to UInt64 (half of them past Int64's range): a dict row reads its id as an Int64, which was
    # looked up by casting the training ids to Int64 (a Polars error); the same user's prediction on every path
    hashed = ratings.with_columns(pl.col("userId").hash(seed=0))
    assert hashed["userId"].max() >= 2**63 and hashed["userId"].min() < 2**63
    dls = CollabDataLoaders.from_df(hashed, valid_pct=0.2, seed=42, bs=64)
    set_seed(0)
    learn = collab_learner(dls, n_factors=8, y_range=(0, 5.5))
    learn.fit(1, 5e-3)
    frame = hashed.filter(pl.col("userId") < 2**63).head(1)
    big = hashed.filter(pl.col("userId") >= 2**63).head(1)
    both = pl.concat([frame, big])
    want = learn.get_preds(dl=dls.test_dl(both))[0].ravel()
    assert learn.predict(frame.row(0, named=True))[0] == pytest.approx(float(want[0]))
    assert learn.predict(big.row(0, named=True))[0] == pytest.approx(float(want[1]))
    # an id not in training, even negative (it fits no unsigned id), is unseen: the #na# row's prediction
    with pytest.warns(UserWarning, match="never seen in training"):
        unseen = learn.predict({**frame.row(0, named=True), "userId": -5})[0]
    assert unseen != pytest.approx(float(want[0]))


def test_ids_of_a_float_column_are_looked_up_as_numbers_and_text_alike(ratings):
    # a pandas merge makes movieId float: the vocabulary holds '1097.0'; 1097, 1097.0, '1097' and a list mixing
    # them are all that movie, as they are on an int column
    floats = ratings.with_columns(pl.col("movieId").cast(pl.Float64))
    dls = CollabDataLoaders.from_df(floats, valid_pct=0.2, seed=42, bs=64)
    set_seed(0)
    learn = collab_learner(dls, n_factors=8, y_range=(0, 5.5))
    want = learn.model.weight([1097])
    for ids in (["1097"], [1097.0], [1097, "1097"], ["1097", 1097.0]):
        got = learn.model.weight(ids)
        assert torch.equal(got, want.expand(len(ids), -1)), ids
