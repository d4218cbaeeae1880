"""The tabular chapter's habits with pipekit's objects: the target of a split as a 1-D Series (``to.train.y``),
``add_datepart`` on the reader's own frame type, searching a backend named by a string."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest

from pipekit.core.errors import DataError, ParameterError
from pipekit.data.splitters import RandomSplitter
from pipekit.datasets import path
from pipekit.tabular import Categorify, FillMissing, Tabular


def _r_mse(pred, y):
    return float(np.sqrt(((pred - y) ** 2).mean()))


def test_a_splits_y_is_its_one_target_and_scores_a_1d_prediction():
    from sklearn.tree import DecisionTreeRegressor

    df = pd.read_csv(path("adult_sample") / "adult.csv")
    to = Tabular(df, procs=[Categorify, FillMissing], cat_names=["workclass", "education"],
                 cont_names=["fnlwgt", "education-num"], y_names="age", splits=RandomSplitter(0.1, seed=42))
    xs, y, valid_xs, valid_y = to.train.xs, to.train.y, to.valid.xs, to.valid.y
    # a pandas table gives pandas back, labelled as its rows (fastai's to.train.xs and to.train.y)
    assert isinstance(y, pd.Series) and y.name == "age" and y.shape == (len(to.train),)
    assert isinstance(xs, pd.DataFrame) and list(xs.columns) == to.cat_names + to.cont_names
    assert xs.index.equals(df.index[to.train_idx]) and valid_y.index.equals(valid_xs.index)
    assert np.asarray(valid_y).shape == (len(to.valid),)
    np.testing.assert_array_equal(np.asarray(valid_y), to.valid.y_array())
    assert valid_y.to_list() == to.valid.ys["age"].to_list()  # the same values, one dimension
    # the tabular tutorials' y_train = to.train.ys.values.ravel() for another library
    np.testing.assert_array_equal(to.train.ys.values.ravel(), to.train.y_array())
    m = DecisionTreeRegressor(min_samples_leaf=25, random_state=0).fit(xs, y)
    pred = m.predict(valid_xs)
    assert (pred - valid_y).shape == (len(to.valid),)
    score = _r_mse(pred, valid_y)
    assert score == pytest.approx(float(np.sqrt(np.mean((pred - df["age"].to_numpy()[to.valid_idx]) ** 2))), rel=1e-6)
    # the (n, 1) frame broadcasts to (n, n) and gives another, plausible number: why .y exists
    assert abs(_r_mse(pred, to.valid.ys.to_numpy()) - score) > 0.5
    # a classification target is its codes into y_vocab
    to = Tabular(df.head(3000), procs=[Categorify], cat_names=["workclass"], y_names="salary",
                 splits=RandomSplitter(0.2, seed=1))
    assert to.valid.y.dtype == np.int64 and set(to.valid.y.unique()) <= {0, 1}
    assert [to.y_vocab[c] for c in to.valid.y.head(5)] == df["salary"].to_numpy()[to.valid_idx[:5]].tolist()
    # new rows without the target column: no y, as no ys
    assert to.new(df.head(5).drop(columns="salary")).y is None
    # a Polars table gives Polars back, the same values
    top = Tabular(pl.from_pandas(df.head(3000)), procs=[Categorify], cat_names=["workclass"], y_names="salary",
                  splits=RandomSplitter(0.2, seed=1))
    assert isinstance(top.valid.y, pl.Series) and isinstance(top.valid.xs, pl.DataFrame)
    assert top.valid.y.to_list() == to.valid.y.to_list() and top.valid.xs["workclass"].to_list() == \
        to.valid.xs["workclass"].to_list()


def test_y_with_several_targets_points_to_ys():
    df = pd.read_csv(path("adult_sample") / "adult.csv", nrows=500)
    to = Tabular(df, procs=[Categorify], cat_names=["workclass"], y_names=["age", "fnlwgt"],
                 splits=RandomSplitter(0.2, seed=1))
    with pytest.raises(ParameterError, match=r"valid.y is the one target .* 2 \(\['age', 'fnlwgt'\]\): use .ys"):
        _ = to.valid.y
    assert to.valid.ys.shape == (len(to.valid), 2)


def test_add_datepart_gives_a_pandas_frame_for_a_pandas_frame_on_rossmann():
    from pipekit.tabular import add_datepart

    df = pd.read_csv(path("rossmann_sample") / "train.csv", dtype={"StateHoliday": str})
    df = df[df["Store"] % 2 == 1]  # a filtered frame: its index has gaps, which the result keeps
    sizes = ["Mini", "Small", "Medium", "Large"]
    df["Size"] = pd.Categorical(np.array(sizes)[df["Store"].to_numpy() % 4], categories=sizes, ordered=True)
    before = df.copy()
    out = add_datepart(df, "Date")
    assert isinstance(out, pd.DataFrame)
    pd.testing.assert_frame_equal(df, before)  # the caller's frame is not changed
    assert out.index.equals(df.index) and "Date" not in out.columns
    assert out["Size"].dtype == df["Size"].dtype and out["Size"].cat.ordered  # other columns keep their types
    pd.testing.assert_frame_equal(out[list(before.columns.drop("Date"))], before.drop(columns="Date"))
    # the book's next line: pandas attribute access and comparison on the parts
    assert int((out.Year < 2015).sum()) == int((pd.to_datetime(df["Date"]).dt.year < 2015).sum()) > 0
    # the parts are those of a Polars frame, value for value
    polars_out = add_datepart(pl.from_pandas(df[["Date"]]), "Date")
    for c in polars_out.columns:
        assert out[c].tolist() == polars_out[c].to_list(), c
    # a pandas datetime column, kept with drop=False; a Polars LazyFrame stays lazy
    kept = add_datepart(df.assign(Date=pd.to_datetime(df["Date"])).head(50), "Date", drop=False)
    assert isinstance(kept, pd.DataFrame) and kept["Date"].dtype.kind == "M" and kept["Dayofweek"].iloc[0] == \
        pd.to_datetime(df["Date"]).iloc[0].day_of_week
    assert isinstance(add_datepart(pl.from_pandas(df[["Date"]]).lazy(), "Date"), pl.LazyFrame)
    with pytest.raises(DataError, match=r"column 'saledate' is not in the data"):
        add_datepart(df, "saledate")


def test_a_backend_named_by_a_string_is_searchable_as_backend_params_on_adult():
    from sklearn.base import clone
    from sklearn.model_selection import GridSearchCV

    from pipekit.backends import RandomForest
    from pipekit.sklearn import TabularClassifier, TabularRegressor

    adult = pd.read_csv(path("adult_sample") / "adult.csv", nrows=3000)
    X, y = adult.drop(columns="salary"), adult["salary"]
    est = TabularClassifier("rf", random_state=0)
    params = est.get_params()
    assert params["backend__n_estimators"] == RandomForest("classification").n_estimators  # what fit would use
    assert clone(est).get_params() == params and clone(est).backend == "rf"
    grid = GridSearchCV(est, {"backend__n_estimators": [5, 40]}, cv=2).fit(X, y)
    assert est.backend == "rf" and not est.is_fitted  # the search worked on clones
    assert [p["backend__n_estimators"] for p in grid.cv_results_["params"]] == [5, 40]
    best = grid.best_estimator_
    assert isinstance(best.model_, RandomForest) and best.model_.n_estimators == grid.best_params_["backend__n_estimators"]
    assert grid.cv_results_["mean_test_score"].min() > 0.7
    # set_params resolves the name as fit does; clone keeps scikit-learn's contract on the result
    est = TabularRegressor("rf").set_params(backend__n_estimators=10)
    assert isinstance(est.backend, RandomForest) and est.backend.task == "regression"
    expected = {**RandomForest("regression").get_params(), "n_estimators": 10}
    assert est.backend.get_params() == expected
    twin = clone(est)
    assert twin.backend is not est.backend and repr(twin.backend) == repr(est.backend)
    assert {k: v for k, v in twin.get_params().items() if k != "backend"} == \
        {k: v for k, v in est.get_params().items() if k != "backend"}
    # a name given with its parameters in one call, in either order; an unknown name is refused by name
    both = TabularClassifier().set_params(backend__min_samples_leaf=3, backend="rf")
    assert isinstance(both.backend, RandomForest) and both.backend.min_samples_leaf == 3
    with pytest.raises(ParameterError, match=r"backend='forest' is not known; use one of \['gbm', 'rf', 'net'\]"):
        TabularClassifier().set_params(backend="forest", backend__n_estimators=3)


def test_classes_look_codes_up_by_value_as_chapter_9_reads_them_on_rossmann_and_adult():
    import json
    import warnings

    from pipekit.tabular import TabularDataLoaders

    df = pd.read_csv(path("rossmann_sample") / "train.csv", dtype={"StateHoliday": str}, nrows=3000)
    sizes = ["Mini", "Small", "Medium", "Large"]
    df["Size"] = np.array(sizes)[df["Store"].to_numpy() % 4]
    to = Tabular(df, procs=[Categorify(ordered={"Size": sizes})], cat_names=["Size", "Store", "StateHoliday"],
                 cont_names=["Customers"], y_names="Sales", splits=RandomSplitter(0.2, seed=0))
    size = to.classes["Size"]
    assert size == ["#na#", *sizes] and repr(size) == repr(["#na#", *sizes]) and size.o2i["Medium"] == 3
    # o2i gives the code Categorify wrote for each training value, given as the user's own (int) value
    xs, raw = to.train.xs, df.iloc[to.train_idx[:50]]
    for c in ("Size", "Store", "StateHoliday"):
        assert [to.classes[c].o2i[v] for v in raw[c]] == xs[c].head(50).to_list(), c
    store = int(raw["Store"].iloc[0])
    assert to.classes["Store"].o2i[store] == to.classes["Store"].o2i[str(store)] == to.classes["Store"].index(str(store))
    with pytest.raises(KeyError, match=r"'Store': 100000 was never seen in training; \d+ known values"):
        to.classes["Store"].o2i[100000]
    assert json.loads(json.dumps(to.classes)) == {c: list(v) for c, v in to.classes.items()}
    # the loaders of adult.csv (spaces after the commas dropped): the same vocabularies, the same lookups
    dls = TabularDataLoaders.from_csv(path("adult_sample") / "adult.csv", y_names="salary", bs=64, seed=42,
                                      cat_names=["workclass", "education", "occupation"], cont_names=["age"])
    edu = dls.classes["education"]
    assert edu is dls.tabular.classes["education"] and edu[edu.o2i["Masters"]] == "Masters"
    with pytest.raises(KeyError, match=r"'education': ' Masters' was never seen in training"):
        edu.o2i[" Masters"]
    # a blank category of a table stays a category of its own at predict: nothing to warn about
    rows = pd.read_csv(path("adult_sample") / "adult.csv", skipinitialspace=True, nrows=10)
    assert rows["occupation"].isna().any()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dls.test_dl(rows)


def test_the_path_given_to_the_loaders_is_where_the_learner_saves(tmp_path, monkeypatch):
    """fastai's ``learn.path = dls.path``: ``from_df(..., path=p)`` then ``learn.export()`` writes ``p/export...``,
    where ``load_learner`` finds it; loaders given no path keep the working directory."""
    from pipekit.data import DataBlock, RandomSplitter as Split
    from pipekit.learn import load_learner
    from pipekit.tabular import CollabDataLoaders, TabularDataLoaders, collab_learner, tabular_learner
    from pipekit.text import TextDataLoaders

    monkeypatch.chdir(tmp_path)
    ratings = pd.read_csv(path("movie_lens_sample") / "ratings.csv")
    out = tmp_path / "outp"
    dls = CollabDataLoaders.from_df(ratings, bs=64, seed=0, path=out)
    learn = collab_learner(dls, n_factors=5, y_range=(0, 5.5))
    assert dls.path == out and learn.path == out
    learn.fit(1, 1e-2)
    written = learn.export()
    assert written == out / "export.pipekit"
    assert load_learner(out / "export.pipekit").predict(ratings.iloc[0])[0] == pytest.approx(learn.predict(ratings.iloc[0])[0])
    assert collab_learner(dls, path=tmp_path / "other").path == tmp_path / "other"  # the learner's own wins
    adult = path("adult_sample") / "adult.csv"
    tab = TabularDataLoaders.from_csv(adult, path=out, y_names="salary", cat_names=["workclass"], cont_names=["age"])
    assert tabular_learner(tab).path == out
    # the course's TabularPandas(...).dataloaders(path='.')
    from pipekit.tabular import TabularPandas

    to = TabularPandas(pd.read_csv(adult).head(500), cat_names=["workclass"], cont_names=["age"], y_names="salary",
                       splits=Split(seed=0)(range(500)))
    assert to.dataloaders(path=out).path == out and tabular_learner(to.dataloaders(path=".")).path == Path(".")
    assert to.dataloaders(bs=32).path == Path(".")
    texts = pl.read_csv(path("imdb_sample") / "texts.csv").head(60)
    assert TextDataLoaders.from_df(texts, text_col="text", label_col="label", path=out, bs=8).path == out
    block = DataBlock(get_items=lambda df: df, splitter=Split(seed=0))
    assert block.dataloaders(pl.DataFrame({"x": list(range(20))}), path=out, bs=4).path == out
    plain = CollabDataLoaders.from_df(ratings, bs=64, seed=0)
    assert plain.path == collab_learner(plain).path == Path(".")
    # the folder factories read one folder and save to another: from_folder(path, path=path) as fastai's
    from pipekit.vision import ImageDataLoaders

    mnist = path("mnist_tiny")
    images = ImageDataLoaders.from_folder(mnist, path=out, bs=64, num_workers=0)
    assert images.path == out and len(images.train_ds) == 709
    assert ImageDataLoaders.from_folder(path=mnist, bs=64, num_workers=0).path == Path(".")


def test_the_chapter_9_table_as_written_shows_its_rows_and_items_on_adult(capsys):
    from pipekit.tabular import Normalize, TabularPandas

    df = pd.read_csv(path("adult_sample") / "adult.csv")
    procs, dep_var = [Categorify, FillMissing, Normalize], "salary"
    cat, cont = ["workclass", "education", "occupation"], ["age", "fnlwgt", "education-num"]
    cond = df["age"] < 50
    splits = (list(np.where(cond)[0]), list(np.where(~cond)[0]))
    to = TabularPandas(df, procs, cat, cont, y_names=dep_var, splits=splits)  # the book's call, positional
    assert isinstance(to, Tabular) and (len(to.train), len(to.valid)) == (int(cond.sum()), int((~cond).sum()))
    # items: the processed rows, codes and normalised numbers, every row in the table's order
    # as a pandas frame labelled as df's rows, as fastai's (.iloc, .loc, .head work)
    assert isinstance(to.items, pd.DataFrame) and len(to.items) == len(df)
    assert to.items["workclass"].dtype.kind in "iu" and list(to.valid.items.index) == list(np.where(~cond)[0])
    assert abs(float(to.train.items["age"].mean())) < 1e-4 and len(to.valid.items) == len(to.valid)
    assert to.items["workclass"].iloc[0] == to.classes["workclass"].o2i[df["workclass"][0]]
    assert to.items.loc[splits[1][0], "age"] == to.valid.items.iloc[0]["age"]
    shown = to.processor.decode(to.items.head(3), units=True)  # pandas in, pandas out, the rows' labels kept
    assert isinstance(shown, pd.DataFrame) and list(shown.index) == list(to.items.index[:3])
    assert shown["workclass"].tolist() == df["workclass"].head(3).tolist()
    assert shown["age"].tolist() == pytest.approx(df["age"].head(3).tolist(), abs=1e-3)
    capsys.readouterr()
    to.show(3)
    rows = _table_rows(capsys.readouterr().out)
    assert rows[0] == [*cat, "education-num_na", *cont, dep_var]  # inputs (the fill flag too), then the target
    # as read: categories as their values (a missing one as #na#), numbers in the data's own units, not normalised
    for shown, (_, raw) in zip(rows[1:], df.head(3).iterrows(), strict=True):
        assert shown[:3] == [str(v).strip() if isinstance(v, str) else "#na#" for v in raw[cat]]
        assert [float(v) for v in shown[4:7]] == [float(raw["age"]), float(raw["fnlwgt"]),
                                                  float(raw["education-num"]) if raw["education-num"] == raw["education-num"]
                                                  else float(df["education-num"][cond].median())]
        assert shown[7] == raw["salary"].strip()
    assert [r[3] for r in rows[1:]] == ["false", "false", "true"]  # row 2's education-num was missing, and filled
    # the valid split's own first rows (ages of 50 and over)
    to.valid.show(2)
    rows = _table_rows(capsys.readouterr().out)
    assert [float(r[4]) for r in rows[1:]] == df["age"][~cond].head(2).astype(float).tolist()
    with pytest.raises(ParameterError, match="max_n must be a positive integer"):
        to.show(0)


def _table_rows(printed: str) -> list[list[str]]:
    """The cells of a printed Polars table, header first."""
    return [[c.strip() for c in line.strip("│").split("┆")] for line in printed.splitlines() if line.startswith("│")]


def test_the_tutorials_splits_of_range_of_df_split_as_the_frame_does_on_adult():
    from pipekit.data import range_of
    from pipekit.tabular import Normalize, TabularPandas

    df = pd.read_csv(path("adult_sample") / "adult.csv")
    splits = RandomSplitter(valid_pct=0.2, seed=7)(range_of(df))
    assert sorted([*splits[0], *splits[1]]) == list(range(len(df))) and len(splits[1]) == round(0.2 * len(df))
    np.testing.assert_array_equal(splits[1], RandomSplitter(valid_pct=0.2, seed=7)(df)[1])  # the same rows either way
    to = TabularPandas(df, procs=[Categorify, FillMissing, Normalize], cat_names=["workclass", "education"],
                       cont_names=["age", "fnlwgt"], y_names="salary", splits=splits)
    np.testing.assert_array_equal(to.valid_idx, splits[1])
    assert to.valid.y.to_list() == [to.y_vocab.index(v) for v in df["salary"].to_numpy()[splits[1]]]
    cats, conts, y = to.dataloaders(bs=64).one_batch()  # (codes, normalised numbers, class indices)
    assert (cats.shape, conts.shape, y.shape) == ((64, 2), (64, 2), (64,)) and not cats.is_floating_point()


def test_a_tables_loaders_name_their_columns_and_procs_as_fastais_do_on_adult():
    import torch

    from pipekit.data import DataLoaders
    from pipekit.tabular import Normalize, TabularDataLoaders, get_emb_sz

    df = pd.read_csv(path("adult_sample") / "adult.csv", nrows=3000)
    dls = TabularDataLoaders.from_df(df, y_names="salary", cat_names=["workclass", "education"],
                                     cont_names=["age", "education-num"], procs=[Categorify, FillMissing, Normalize],
                                     valid_idx=list(range(2500, 3000)), bs=64)
    # education-num has blanks: FillMissing adds its flag, a categorical input the model reads
    assert dls.cat_names == ["workclass", "education", "education-num_na"] and dls.cont_names == ["age", "education-num"]
    assert dls.y_names == ["salary"] and [type(p) for p in dls.procs] == [FillMissing, Categorify, Normalize]
    assert dls.procs[2].means_["age"] == pytest.approx(df["age"].head(2500).mean(), rel=1e-6)  # fitted on training rows
    # the book's get_emb_sz(dls): one embedding per categorical input, the flag's too, sized by its classes
    assert [n for n, _ in get_emb_sz(dls)] == [len(dls.classes[c]) for c in dls.cat_names] and len(dls.cat_names) == 3
    items = list(zip(torch.arange(8.0), torch.arange(8)))
    plain = DataLoaders.from_dsets(items[:6], items[6:], bs=4)
    with pytest.raises(AttributeError, match="no cat_names: cat_names belong to a table's or ratings' loaders"):
        _ = plain.cat_names
    assert not hasattr(plain, "procs")


def test_the_tutorials_row_clas_probs_predict_shows_the_row_with_its_prediction_on_adult(tmp_path, capsys):
    """``row, clas, probs = learn.predict(df.iloc[0])`` then ``row.show()``: the first value is the label itself
    (compared, hashed and saved as a str) and shows the row as the model read it, with the prediction as its
    target; after load_learner too. A number predicted (regression, ratings) shows its row the same way."""
    import json

    import pipekit
    from pipekit.tabular import CollabDataLoaders, Normalize, TabularDataLoaders, collab_learner, tabular_learner

    df = pd.read_csv(path("adult_sample") / "adult.csv")
    cats, conts = ["workclass", "education", "occupation"], ["age", "fnlwgt", "education-num"]
    dls = TabularDataLoaders.from_df(df, path=tmp_path, y_names="salary", cat_names=cats, cont_names=conts,
                                     procs=[Categorify, FillMissing, Normalize], valid_pct=0.2, seed=42, bs=256)
    learn = tabular_learner(dls, layers=[20])
    learn.fit(1, 1e-2)
    row_i = int(np.flatnonzero(df["occupation"].isna())[0])  # a row with a missing category
    row, clas, probs = learn.predict(df.iloc[row_i])
    assert isinstance(row, str) and row in ("<50k", ">=50k") and row == dls.vocab[int(clas)]
    assert json.loads(json.dumps({"y": row})) == {"y": str(row)} and {row: 1}[str(row)] == 1
    assert int(probs.argmax()) == int(clas)
    capsys.readouterr()
    row.show()
    shown = capsys.readouterr().out
    header, values = (ln for ln in shown.splitlines() if "┆" in ln)
    cells = dict(zip((c.strip() for c in header.strip("│ ").split("┆")), (v.strip() for v in values.strip("│ ").split("┆"))))
    assert cells["workclass"] == df["workclass"][row_i].strip() and cells["occupation"] == "#na#"
    assert float(cells["age"]) == df["age"][row_i] and float(cells["fnlwgt"]) == df["fnlwgt"][row_i]
    assert cells["salary"] == row  # the prediction, not the row's own target
    loaded = pipekit.load_learner(learn.export(tmp_path / "adult.pipekit"))
    again, _, _ = loaded.predict(df.iloc[row_i])
    assert again == row
    again.show()
    assert capsys.readouterr().out == shown
    # a number predicted shows its row too; a rating's row is its user and item
    reg = tabular_learner(TabularDataLoaders.from_df(df, y_names="age", cat_names=["education"], cont_names=["fnlwgt"],
                                                     valid_pct=0.2, seed=42, bs=256), layers=[8], y_range=(0, 100))
    reg.fit(1, 1e-2)
    age, _, _ = reg.predict(df.iloc[3])
    assert isinstance(age, float) and 0 < age < 200
    age.show()
    assert "education" in capsys.readouterr().out
    ratings = pd.read_csv(path("movie_lens_sample") / "ratings.csv")
    rating, _, _ = collab_learner(CollabDataLoaders.from_df(ratings, seed=42, bs=64), n_factors=4,
                                  y_range=(0, 5.5)).predict(ratings.iloc[0])
    rating.show()
    out = capsys.readouterr().out
    assert str(ratings["userId"][0]) in out and str(ratings["movieId"][0]) in out and 0 <= float(rating) <= 5.5


def test_loaders_from_a_pandas_frame_keep_its_kind_and_labels():
    from pipekit.tabular import TabularDataLoaders

    df = pd.read_csv(path("adult_sample") / "adult.csv", skipinitialspace=True).iloc[::-1].head(3000)
    kw = dict(y_names="salary", cat_names=["workclass", "education"], cont_names=["age"], bs=64, seed=0)
    tab = TabularDataLoaders.from_df(df, **kw).tabular
    xs, y = tab.train.xs, tab.train.y
    assert isinstance(xs, pd.DataFrame) and isinstance(y, pd.Series)
    assert xs.index.equals(df.index[tab.train_idx]) and xs.index[0] > xs.index[-1]  # the frame's own labels
    assert [tab.classes["education"][c] for c in xs["education"].head(20)] == df.education.iloc[tab.train_idx[:20]].tolist()
    ptab = TabularDataLoaders.from_df(pl.from_pandas(df), **kw).tabular
    assert isinstance(ptab.train.xs, pl.DataFrame) and np.array_equal(ptab.train.xs.to_numpy(), xs.to_numpy())
    with pytest.raises(DataError, match="2 row labels for a table of 3000 rows"):
        tab.label_rows(df.index[:2])
    # new rows with a column the model does not read, labelled by a number, as pandas allows
    rows = df.head(5).copy()
    rows[0] = 1
    new = tab.new(rows)
    assert list(new.xs.index) == list(rows.index) and new.xs.equals(tab.new(df.head(5)).xs)


def test_the_loaders_answer_xs_and_y_as_fastais_do_for_a_forest_on_adult():
    from sklearn.ensemble import RandomForestClassifier

    from pipekit.data import DataBlock, RandomSplitter, RegressionBlock, CategoryBlock, ColReader
    from pipekit.tabular import TabularDataLoaders

    df = pd.read_csv(path("adult_sample") / "adult.csv", skipinitialspace=True).head(4000)
    dls = TabularDataLoaders.from_df(df, y_names="salary", cat_names=["workclass", "education"],
                                     cont_names=["age", "hours-per-week"], procs=[Categorify, FillMissing], bs=64,
                                     seed=0)
    # the tabular tutorial's X_train, y_train = dls.train.xs, dls.train.ys.values.ravel()
    X_train, y_train = dls.train.xs, dls.train.ys.values.ravel()
    assert X_train.equals(dls.tabular.train.xs) and dls.valid_ds.y.equals(dls.tabular.valid.y)
    assert list(X_train.columns) == ["workclass", "education", "age", "hours-per-week"]
    m = RandomForestClassifier(n_estimators=40, min_samples_leaf=5, random_state=0).fit(X_train, y_train)
    acc = (m.predict(dls.valid.xs) == dls.valid.y.values).mean()
    assert acc > dls.valid.y.value_counts(normalize=True).max() + 0.01  # learns more than the commoner class
    assert dls.train.new(bs=8).xs.equals(X_train)
    # a test loader's xs are its rows processed, as fastai's dls.test_dl(df).xs
    assert dls.test_dl(df.head(5)).xs.equals(dls.tabular.new(df.head(5)).xs)
    img = DataBlock(blocks=(RegressionBlock, CategoryBlock), get_x=ColReader("age"), get_y=ColReader("salary"),
                    splitter=RandomSplitter(seed=0)).dataloaders(df, bs=64)
    assert not hasattr(img.train, "xs") and not hasattr(img.train_ds, "y")
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        _ = dls.train.nothing


def test_y_block_given_as_the_block_class_as_fastai_takes_it_on_adult():
    from pipekit.data import CategoryBlock, RegressionBlock
    from pipekit.tabular import TabularDataLoaders

    df = pd.read_csv(path("adult_sample") / "adult.csv", skipinitialspace=True).dropna(subset="education-num")[:2000]
    kw = dict(procs=[Categorify, FillMissing], cat_names=["workclass"], cont_names=["age"], y_names="education-num",
              splits=(np.arange(1600), np.arange(1600, 2000)))
    by_class, by_name = Tabular(df, y_block=CategoryBlock, **kw), Tabular(df, y_block="category", **kw)
    assert by_class.processor.y_kind_ == by_name.processor.y_kind_ == "category"
    assert by_class.processor.y_vocab_ == by_name.processor.y_vocab_ and len(by_class.processor.y_vocab_) > 10
    assert by_class.train.y.equals(by_name.train.y) and Tabular(df, **kw).processor.y_kind_ == "regression"
    assert Tabular(df, y_block=RegressionBlock, **{**kw, "y_names": "hours-per-week"}).processor.y_kind_ == "regression"
    dls = TabularDataLoaders.from_df(df, y_block=CategoryBlock, bs=64, seed=0,
                                     **{k: v for k, v in kw.items() if k != "splits"})
    assert dls.c == df["education-num"].nunique() == len(by_class.processor.y_vocab_)
    assert sorted(float(v) for v in dls.vocab) == sorted(df["education-num"].unique())


def test_a_batch_size_or_layers_as_text_are_named_and_no_hidden_layers_is_taken_on_adult():
    # a recipe reading its options from a command line passes text: named, not a bare TypeError from inside
    from torch import nn

    from pipekit.tabular import tabular_learner

    df = pl.read_csv(path("adult_sample") / "adult.csv").head(600)
    to = Tabular(df, procs=[Categorify, FillMissing], cat_names=["workclass"], cont_names=["age"], y_names="salary",
                 splits=RandomSplitter(0.2, seed=42))
    with pytest.raises(ParameterError, match="bs must be a positive integer, got '64'"):
        to.dataloaders(bs="64")
    dls = to.dataloaders(bs=64)
    for layers in ("50,20", [50, "20"], 50):
        with pytest.raises(ParameterError, match="layers=.*a list of positive sizes"):
            tabular_learner(dls, layers=layers)
    # fastai's layers=[] is no hidden layer (None the default [200, 100])
    bare = tabular_learner(dls, layers=[]).model
    assert not any(isinstance(m, nn.Linear) and m.out_features in (200, 100) for m in bare.modules())
    assert sum(isinstance(m, nn.Linear) for m in bare.modules()) == 1
    assert [m.out_features for m in tabular_learner(dls, layers=(8,)).model.modules() if isinstance(m, nn.Linear)] \
        == [8, 2]


def test_two_tables_given_one_list_of_proc_instances_fit_their_own_on_adult():
    # fitting the user's instances in place made the first table process new rows with the second's statistics
    from pipekit.tabular import Normalize

    df = pl.read_csv(path("adult_sample") / "adult.csv").head(1000)
    scaled = df.with_columns(pl.col("age") * 10)
    procs = [Categorify(), FillMissing(), Normalize()]
    kw = dict(cat_names=["workclass"], cont_names=["age"], y_names="salary", splits=RandomSplitter(0.2, seed=42))
    first = Tabular(df, procs=procs, **kw)
    before = first.normalize.means["age"]
    Tabular(scaled, procs=procs, **kw)
    fresh = Tabular(df, procs=[Categorify, FillMissing, Normalize], **kw)
    assert first.normalize.means["age"] == before == fresh.normalize.means["age"]
    got = first.dataloaders(bs=64).test_dl(df.head(3)).dataset.stores[1].data
    want = fresh.dataloaders(bs=64).test_dl(df.head(3)).dataset.stores[1].data
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
