"""Collaborative filtering on the real movie_lens_sample ratings."""

import warnings

import polars as pl
import pytest
import torch

from pipekit.core.errors import DataError, ParameterError
from pipekit.data.seed import set_seed
from pipekit.learn import rmse
from pipekit.tabular import CollabDataLoaders, EmbeddingDotBias, EmbeddingNN, collab_learner, unseen_report
from pipekit.tabular.model import sigmoid_range
from pipekit.datasets import path

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def ratings() -> pl.DataFrame:
    return pl.read_csv(path("movie_lens_sample") / "ratings.csv")


@pytest.fixture(scope="module")
def learn(ratings):
    set_seed(0)
    dls = CollabDataLoaders.from_df(ratings, valid_pct=0.2, seed=42, bs=64)
    learn = collab_learner(dls, n_factors=20, y_range=(0, 5.5), metrics=rmse())
    learn.fit_one_cycle(3, 5e-3, wd=0.1)
    return learn


def test_from_df_columns_and_split(ratings):
    dls = CollabDataLoaders.from_df(ratings, valid_pct=0.2, seed=42, bs=64)
    proc = dls.recipe.processor
    assert proc.cat_names_ == ["userId", "movieId"] and proc.y_names == ["rating"]
    assert len(dls.train_ds) + len(dls.valid_ds) == len(ratings) == 6031
    assert len(dls.valid_ds) == round(0.2 * 6031)
    assert dls.loss_kind == "mse"
    # one input of (user, item) codes, as the book's models written forward(self, x) take it
    assert dls.n_inp == 1 and dls.train.n_inp == 1
    x, y = dls.one_batch()
    assert x.shape == (64, 2) and x.dtype == torch.long and y.shape == (64, 1) and y.dtype == torch.float32  # a column, as fastai
    same = CollabDataLoaders.from_df(ratings, valid_pct=0.2, seed=42, bs=64)
    assert (same.valid_ds.idxs == dls.valid_ds.idxs).all()


def test_from_df_bad_input(ratings):
    with pytest.raises(ParameterError, match="item_name='movie'"):
        CollabDataLoaders.from_df(ratings, item_name="movie")
    with pytest.raises(ParameterError, match="valid_pct"):
        CollabDataLoaders.from_df(ratings, valid_pct=1.0)
    with pytest.raises(DataError, match="'rating'.*null"):
        CollabDataLoaders.from_df(ratings.with_columns(pl.when(pl.col("userId") == 73).then(None)
                                                       .otherwise(pl.col("rating")).alias("rating")))


def test_training_beats_the_mean(learn):
    loss, err = learn.validate()[:2]
    targs = learn.get_preds()[1]
    mean_rmse = float(((targs - targs.mean()) ** 2).mean().sqrt())
    assert err < mean_rmse - 0.05, (err, mean_rmse)


def test_inspection(learn, ratings, tmp_path):
    m = learn.model
    movies = ratings["movieId"].unique().sort().head(3).to_list()
    assert m.bias(movies).shape == (3,) and m.weight(movies).shape == (3, 20)
    assert m.weight([ratings["userId"][0]], is_item=False).shape == (1, 20)
    sim = m.most_similar(movies[0], n=4)
    assert len(sim) == 4 and str(movies[0]) not in [s for s, _ in sim]
    assert all(-1.0 <= s <= 1.0 for _, s in sim) and sim == sorted(sim, key=lambda t: -t[1])
    assert m.pca(3).shape == (100, 3)
    out = m.plot_pca(n=20, path=tmp_path / "pca.png")
    assert out.exists() and out.stat().st_size > 1000
    with pytest.raises(DataError, match="never seen in training"):
        m.bias([999999])
    # looked up by value: an id read as a float (a pandas row) or as text is the same movie
    assert torch.equal(m.bias([float(v) for v in movies]), m.bias(movies))
    assert torch.equal(m.bias([str(v) for v in movies]), m.bias(movies))
    with pytest.raises(DataError, match=r"\[999999.5\] never seen in training"):
        m.bias([999999.5])


def test_unseen_users_and_items_predict_from_biases(learn, ratings):
    new = pl.DataFrame({"userId": [999999, ratings["userId"][0]], "movieId": [ratings["movieId"][0], 888888],
                        "rating": [4.0, 3.0], "timestamp": [0, 0]})
    assert unseen_report(learn.dls, new) == {"userId": 1, "movieId": 1}
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        dl = learn.dls.test_dl(new)
    assert any("never seen in training" in str(x.message) for x in w)
    preds = learn.get_preds(dl=dl)[0]
    m = learn.model
    # an unknown user contributes nothing: the prediction is the movie's bias through the range
    expected = sigmoid_range(m.bias([ratings["movieId"][0]]), 0, 5.5)
    assert preds[0].item() == pytest.approx(expected.item(), abs=1e-5)
    expected_u = sigmoid_range(m.bias([ratings["userId"][0]], is_item=False), 0, 5.5)
    assert preds[1].item() == pytest.approx(expected_u.item(), abs=1e-5)


def test_embedding_nn_and_dot_bias_shapes(ratings):
    dls = CollabDataLoaders.from_df(ratings, valid_pct=0.2, seed=1, bs=64)
    learn = collab_learner(dls, use_nn=True, layers=[16], y_range=(0, 5.5))
    out = learn.model(dls.one_batch()[0])
    assert out.shape == (64, 1) and bool(((out > 0) & (out < 5.5)).all())
    assert learn.model.weight([ratings["movieId"][0]]).shape[1] == learn.model.embeds[1].embedding_dim
    with pytest.raises(ParameterError, match="n_factors"):
        EmbeddingDotBias(0, 3, 3)
    assert isinstance(learn.model, EmbeddingNN)
    with pytest.raises(ParameterError, match="CollabDataLoaders"):
        collab_learner(object())
    # without layers=, one hidden layer of n_factors units, as fastai's collab_learner builds it
    linears = [m for m in collab_learner(dls, use_nn=True, n_factors=24).model.modules()
               if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(sum(e.embedding_dim for e in learn.model.embeds), 24),
                                                                  (24, 1)]


def test_export_load_keeps_lookups(learn, ratings, tmp_path):
    from pipekit.learn.export import load_learner

    loaded = load_learner(learn.export(tmp_path / "collab.pipekit"))
    movies = ratings["movieId"].unique().sort().head(3).to_list()
    assert torch.allclose(loaded.model.bias(movies), learn.model.bias(movies))
    new = ratings.head(30)
    p1 = learn.get_preds(dl=learn.dls.test_dl(new))[0]
    p2 = loaded.get_preds(dl=loaded.dls.test_dl(new))[0]
    assert torch.allclose(p1, p2, atol=1e-6)


def test_one_id_or_a_list(learn, ratings):
    """bias / weight take one id (a 0-d value, a row) or a list (one per id); a str id is one id, not its characters."""
    m = learn.model
    movie = ratings["movieId"][0]
    assert str(movie) != "11" and 11 not in ratings["movieId"].to_list() and 1 in ratings["movieId"].to_list()
    one = m.bias(movie)
    assert one.shape == () and float(one) == float(m.bias([movie])[0])
    assert m.bias(str(movie)).shape == () and torch.equal(m.bias(str(movie)), one)
    assert torch.equal(m.bias(torch.tensor(movie)), one) and torch.equal(m.bias(float(movie)), one)
    assert m.weight(movie).shape == (20,) and torch.equal(m.weight(movie), m.weight([movie])[0])
    assert m.weight(ratings["userId"][0], is_item=False).shape == (20,)
    with pytest.raises(DataError, match=r"\['11'\] never seen in training"):
        m.bias("11")  # not movies '1' and '1'
    assert m.most_similar(movie, n=2) == m.most_similar(str(movie), n=2)
    for bad in (-1, 0, 2.5):
        with pytest.raises(ParameterError, match=rf"most_similar: n={bad} is not accepted"):
            m.most_similar(movie, n=bad)
    with pytest.raises(ParameterError, match="most_similar takes one id"):
        m.most_similar([movie, movie])
    with pytest.raises(ParameterError, match=r"pca: n_components=100 is more than the 20 factors"):
        m.pca(100)
    assert m.pca(20).shape == (100, 20)


def test_y_range_low_below_high(ratings):
    dls = CollabDataLoaders.from_df(ratings, valid_pct=0.2, seed=1, bs=64)
    for bad in [(5, 0), (3, 3), (1,), ("0", "5")]:
        with pytest.raises(ParameterError, match=r"collab_learner: y_range=.* low < high"):
            collab_learner(dls, y_range=bad)
        with pytest.raises(ParameterError, match=r"collab_learner: y_range="):
            collab_learner(dls, use_nn=True, y_range=bad)
    with pytest.raises(ParameterError, match=r"EmbeddingDotBias: y_range=\(5, 0\)"):
        EmbeddingDotBias(4, 3, 3, y_range=(5, 0))


def test_a_tabular_net_on_collab_loaders_trains(ratings):
    from pipekit.tabular import tabular_learner

    set_seed(0)
    dls = CollabDataLoaders.from_df(ratings, valid_pct=0.2, seed=42, bs=64)  # one input: the (user, item) codes
    learn = tabular_learner(dls, y_range=(0, 5.5), layers=[50], metrics=rmse())
    learn.fit_one_cycle(3, 5e-3)
    targs = learn.get_preds()[1]
    assert learn.validate()[1] < float(((targs - targs.mean()) ** 2).mean().sqrt())


def test_pca_of_chosen_items_as_the_book_fits_it(learn, ratings):
    """The book's PCA of the most-rated movies: fitted on their factors only, one row each in their order."""
    import numpy as np

    m = learn.model
    top = (ratings.group_by("movieId").len().sort(["len", "movieId"], descending=[True, False])["movieId"]
           .head(30).to_list())
    comps = m.pca(3, values=top)
    w = m.weight(top).double().numpy()
    w = w - w.mean(0)
    expected = w @ np.linalg.svd(w, full_matrices=False)[2][:3].T
    assert comps.shape == (30, 3) and np.allclose(comps, expected)
    assert not np.allclose(np.abs(comps), np.abs(m.pca(3)[[m.all_values().index(str(v)) for v in top]]))
    with pytest.raises(DataError, match="never seen in training"):
        m.pca(3, values=[999999])


def test_missing_ids_and_impossible_y_range_are_named(ratings):
    pdf = ratings.to_pandas()
    pdf.loc[[3, 10], "userId"] = None  # pandas makes the int column float with NaN
    with pytest.raises(DataError, match=r"'userId' is missing in 2 of 6031 rows \(first rows \[3, 10\]\).*"
                                        r"df.dropna\(subset=\['userId'\]\)"):
        CollabDataLoaders.from_df(pdf, seed=0)
    with pytest.raises(DataError, match=r"'movieId' is missing in 1 of"):
        CollabDataLoaders.from_df(ratings.with_columns(
            pl.when(pl.int_range(pl.len()) == 7).then(None).otherwise(pl.col("movieId")).alias("movieId")), seed=0)
    with pytest.raises(DataError, match=r"valid_pct=1e-05 of 6031 ratings leaves no rating for validation"):
        CollabDataLoaders.from_df(ratings, valid_pct=1e-5, seed=0)
    dls = CollabDataLoaders.from_df(ratings.with_columns(pl.col("rating") * 20), seed=0)  # ratings 10..100
    with pytest.warns(UserWarning, match=r"y_range=\(0, 5.5\), but \d+ of 4825 training targets lie outside it "
                                         r"\(they run from 10 to 100\)"):
        collab_learner(dls, n_factors=4, y_range=(0, 5.5))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        collab_learner(dls, n_factors=4, y_range=(0, 110))
        collab_learner(CollabDataLoaders.from_df(ratings, seed=0), n_factors=4, y_range=(0, 5.5))


def test_plot_pca_of_chosen_items_uses_their_own_components(learn, ratings, monkeypatch):
    import numpy as np

    import pipekit.data.plotting as plotting

    shown = []
    monkeypatch.setattr(plotting, "savefig_or_show", lambda fig, path=None, name="": shown.append(fig))
    top = ratings["movieId"].value_counts(sort=True)["movieId"].head(12).to_list()
    learn.model.plot_pca(top)
    ax = shown[0].axes[0]
    drawn = ax.collections[0].get_offsets()
    assert np.allclose(drawn, learn.model.pca(2, values=top)[:, :2])
    assert [t.get_text() for t in ax.texts] == [str(v) for v in top]
    with pytest.raises(ParameterError, match=r"pca: 2 value\(s\) give at most 2 components"):
        learn.model.pca(3, values=top[:2])


def _stored(record, key):
    """Every value stored under ``key`` anywhere in an export's record (plain JSON)."""
    if isinstance(record, dict):
        return ([record[key]] if key in record else []) + [v for x in record.values() for v in _stored(x, key)]
    return [v for x in record for v in _stored(x, key)] if isinstance(record, list) else []


def test_classes_o2i_is_the_embedding_row_as_the_book_looks_it_up(learn, ratings, tmp_path):
    import json
    import zipfile

    import numpy as np

    from pipekit.learn.export import load_learner

    classes = learn.dls.classes["movieId"]
    movie = ratings["movieId"].value_counts(sort=True)["movieId"][0]  # the most-rated movie, an int id
    idx = classes.o2i[movie]
    assert classes[idx] == str(movie) and idx == classes.index(str(movie))
    # the book's lookup: the row of the item embedding that learn.model.weight(id) reads
    assert torch.equal(learn.model.i_weight.weight[idx].detach().cpu(), learn.model.weight(movie))  # on the CPU
    assert classes.o2i[str(movie)] == classes.o2i[float(movie)] == classes.o2i[np.int64(movie)] == idx
    assert learn.dls.classes["userId"].o2i[ratings["userId"][0]] == learn.dls.classes["userId"].index(
        str(ratings["userId"][0]))
    assert classes.o2i["#na#"] == 0 and movie in classes.o2i and 888888 not in classes.o2i
    assert classes.o2i.get(888888, -1) == -1 and len(classes.o2i) == len(classes)
    with pytest.raises(KeyError, match=r"'movieId': 888888 was never seen in training; 100 known values, e\.g\. "
                                       r"\['1', '10', '32'\]"):
        classes.o2i[888888]
    # still the list it was: equal to plain lists, JSON, slicing, and a short repr naming the column
    plain = list(classes)
    assert classes == plain and plain == classes and json.loads(json.dumps(classes)) == plain
    assert type(classes[1:3]) is list and classes[0] == "#na#" and len(classes) == 101
    assert repr(classes).startswith("['#na#', '1', '10',") and "(101 classes of 'movieId'" in repr(classes)
    assert len(repr(classes)) < 200
    # the export stores plain lists, and the loaded loaders look up the same rows
    path_ = learn.export(tmp_path / "collab.pipekit")
    record = json.loads(zipfile.ZipFile(path_).read("record.json"))
    stored = [v["movieId"] for v in _stored(record, "classes_")]
    assert stored == [plain]
    loaded = load_learner(path_)
    assert loaded.dls.classes == learn.dls.classes and loaded.dls.classes["movieId"].o2i[movie] == idx


def test_a_missing_id_at_predict_is_warned_about_as_an_unseen_id(learn, ratings):
    movie = ratings["movieId"][0]
    with pytest.warns(UserWarning, match=r"'userId' is missing in 1 of 1 rows; they are scored as an unseen userId"):
        pred = learn.predict({"userId": None, "movieId": movie})[0]
    # scored as an unseen user is: the movie's bias through the range
    assert pred == pytest.approx(sigmoid_range(learn.model.bias([movie]), 0, 5.5).item(), abs=1e-5)
    new = ratings.head(10).to_pandas()
    new.loc[[0, 4, 5], "movieId"] = None  # pandas: a float column with NaN
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        learn.dls.test_dl(new)
    said = [str(x.message) for x in w if "missing" in str(x.message)]
    assert len(said) == 1 and "'movieId' is missing in 3 of 10 rows" in said[0] and "userId" not in said[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        learn.dls.test_dl(ratings.head(10))  # every id given: nothing to say


def test_o2i_of_every_id_is_the_whole_mapping_and_follows_changes_to_the_vocab():
    """``dict(classes.o2i)`` (every id's code, as a user builds an id -> row table) gives each class its position,
    and a vocab changed in place answers for what it holds now, not for what it held."""
    import pipekit.datasets as D
    from pipekit.tabular import CollabDataLoaders

    ratings = pl.read_csv(D.path("movie_lens_sample") / "ratings.csv")
    movies = CollabDataLoaders.from_df(ratings, bs=64, seed=42).classes["movieId"]
    assert dict(movies.o2i) == {m: i for i, m in enumerate(movies)} and list(movies.o2i.values()) == \
        list(range(len(movies)))
    some = int(movies[5])
    assert movies.o2i[some] == movies.o2i[str(some)] == 5 and (some in movies.o2i) and ((1, 2) not in movies.o2i)
    grown = type(movies)(list(movies), name="movieId", code_of=movies.code_of)
    assert grown.o2i["#na#"] == 0
    grown.append("999999")
    grown[1] = "424242"
    assert grown.o2i["999999"] == len(movies) and grown.o2i[424242] == 1
    with pytest.raises(KeyError):
        grown.o2i[str(movies[1])]


@pytest.mark.parametrize("kw", [dict(layers=[100, 50]), dict(emb_szs={"userId": 9}), dict(config={"ps": [0.5]})])
def test_collab_learner_refuses_network_options_without_use_nn(kw):
    dls = CollabDataLoaders.from_csv(path("movie_lens_sample") / "ratings.csv", bs=256, seed=0)
    with pytest.raises(ParameterError, match=rf"{next(iter(kw))}=.*use_nn=True"):
        collab_learner(dls, n_factors=4, **kw)
    assert isinstance(collab_learner(dls, n_factors=4, use_nn=True, **kw).model, EmbeddingNN)
