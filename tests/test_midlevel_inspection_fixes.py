"""The book's mid-level spellings and the inspection tools on what a reader has, on real data (adult, imdb,
rossmann): fastai's ``encodes``/``setups`` names, ``Transform(f)``, ``TfmdLists``, fastai's ``Datasets`` call,
Numericalize round trips and ``vocab``, ``LMDataLoader`` of ids, importance of scikit-learn-style models,
``drop_redundant``'s default candidates and the once-per-model "unseen values" warning."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import polars as pl
import pytest
import torch

import pipekit
from pipekit.backends import RandomForest
from pipekit.core import ExportError, ParameterError
from pipekit.core.errors import DataError
from pipekit.data import (BatchTransform, DataBlock, Datasets, FuncTransform, IndexSplitter, Pipeline, TfmdLists,
                          Transform, TransformBlock)
from pipekit.datasets import path
from pipekit.inspection import cluster_columns, drop_redundant, permutation_importance, plot_importance
from pipekit.sklearn import TabularClassifier
from pipekit.text import LMDataLoader, Numericalize, Tokenizer

NUMS = ["age", "fnlwgt", "education-num", "capital-gain", "capital-loss", "hours-per-week"]


@pytest.fixture(scope="module")
def adult() -> pl.DataFrame:
    return pl.read_csv(path("adult_sample") / "adult.csv")


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return pl.read_csv(path("imdb_sample") / "texts.csv")["text"].to_list()[:80]


# ------------------------------------------------------------------------------------ fastai's Transform names
def test_encodes_decodes_setups_are_the_transform_methods(adult, texts):
    class LowerCase(Transform):
        def encodes(self, x):
            return x.lower() if isinstance(x, str) else x.str.to_lowercase()

    assert LowerCase()("HeLLo") == "hello"
    lowered = LowerCase()(pl.Series(texts))
    assert lowered.to_list() == [t.lower() for t in texts]

    class NormalizeMean(Transform):
        def setups(self, items):
            self.mean_ = float(np.mean(items))

        def encodes(self, x):
            return x - self.mean_

        def decodes(self, x):
            return x + self.mean_

    ages = adult["age"].to_numpy().astype(np.float64)
    t = NormalizeMean()
    t.setup(ages[:1000])  # fastai's setups is what setup runs
    assert t.mean_ == pytest.approx(ages[:1000].mean())
    assert np.allclose(t(ages), ages - ages[:1000].mean())
    assert np.allclose(t.decode(t(ages)), ages)
    p = Pipeline([NormalizeMean()])
    p.setup(ages[:1000])
    assert np.allclose(p.decode(p(ages)), ages)


def test_transform_names_that_cannot_be_honoured_are_refused_at_definition():
    with pytest.raises(ParameterError, match="defines both encodes .* and encode"):
        class Both(Transform):
            def encodes(self, x):
                return x

            def encode(self, x):
                return x
    with pytest.raises(ParameterError, match=r"annotates its value as .*names no class"):
        class Typed(Transform):
            def encodes(self, x: "Sequence[int]"):  # noqa: F821
                return x
    with pytest.raises(ParameterError, match=r"encode\(self, batch, ctx\)"):
        class Batchy(BatchTransform):
            def encodes(self, x):
                return x


def test_a_transform_annotated_with_a_type_applies_to_that_type_only_as_in_chapter_11(adult):
    # the book's def f(x:int): return x+1; tfm = Transform(f); tfm(2), tfm(2.0) gives (3, 2.0)
    def f(x: int):
        return x + 1

    tfm = Transform(f)
    assert (tfm(2), tfm(2.0)) == (3, 2.0) and isinstance(tfm(2.0), float)

    @Transform
    def g(x: int):
        return x + 1
    assert (g(2), g(2.0)) == (3, 2.0)

    class Upper(Transform):
        def encodes(self, x: str):
            return x.upper()

        def decodes(self, x: str):
            return x.lower()
    up = Upper()
    workclass = adult["workclass"].head(6)  # a column is gone through value by value: its nulls stay null
    assert up(workclass).to_list() == [None if v is None else v.upper() for v in workclass.to_list()]
    assert up(("a", 1, ["b", 2.5])) == ("A", 1, ["B", 2.5]) and up.decode(up("Private")) == "private"
    ages = adult["age"].head(5).to_numpy()
    assert np.array_equal(Transform(lambda x: x + 1)(ages), ages + 1)  # untyped: the whole column at once
    assert Transform(f)(ages.tolist()) == [int(a) + 1 for a in ages]


def test_transform_of_a_function(adult):
    ages = adult["age"].to_numpy()
    t = Transform(lambda x: x + 1)
    assert isinstance(t, FuncTransform)
    assert np.array_equal(t(ages), ages + 1)
    both = Transform(lambda x: x * 2, lambda x: x // 2)
    assert np.array_equal(both.decode(both(ages)), ages)
    assert Pipeline([str.lower]).encode("AbC") == "abc"
    assert Transform().encode(ages) is ages  # the base class still constructs bare
    assert isinstance(t.clone(), FuncTransform) and t.clone().enc is t.enc
    with pytest.raises(ExportError, match="cannot be stored"):
        t.to_record()
    with pytest.raises(ParameterError, match="enc="):
        Transform(3)


def test_tfmdlists_sets_up_on_the_training_split(adult):
    class Centre(Transform):
        def setups(self, items):
            self.mean_ = float(np.mean(items))

        def encodes(self, x):
            return np.asarray(x, dtype=np.float64) - self.mean_

        def decodes(self, x):
            return x + self.mean_

    ages = adult["age"].to_numpy()[:500]
    tl = TfmdLists(ages, [Centre], splits=[range(400), range(400, 500)])
    mean = ages[:400].mean()
    assert tl.pipeline.tfms[0].mean_ == pytest.approx(mean)  # learned on train only
    assert len(tl) == 500 and len(tl.train) == 400 and len(tl.valid) == 100
    assert tl.valid[0] == pytest.approx(ages[400] - mean)
    assert tl.decode(tl.valid[3]) == pytest.approx(ages[403])
    assert list(tl.train)[:3] == pytest.approx(list(ages[:3] - mean))
    with pytest.raises(DataError, match=r"valid split has 1 row position\(s\) outside 0..499.*\[900\]"):
        TfmdLists(ages, [Centre], splits=[range(400), [900]])
    # a boolean mask picks the items where it is True (it was read as positions 0 and 1)
    mask = ages < 30
    by_mask = TfmdLists(ages, [Centre], splits=[mask, ~mask])
    assert by_mask.pipeline.tfms[0].mean_ == pytest.approx(ages[mask].mean())
    assert len(by_mask.train) == int(mask.sum()) and len(by_mask.valid) == int((~mask).sum())
    assert by_mask.valid[0] == pytest.approx(ages[~mask][0] - ages[mask].mean())
    assert TfmdLists(ages[:4], [Centre], splits=[[True, False, True, False], [1]]).train[:] == \
        pytest.approx([ages[0] - ages[[0, 2]].mean(), ages[2] - ages[[0, 2]].mean()])
    with pytest.raises(DataError, match="mask has 3 values for 500 rows"):
        TfmdLists(ages, [Centre], splits=[[True, False, True], [1]])
    with pytest.raises(DataError, match="float64 values"):  # 0.5 was truncated to position 0
        TfmdLists(ages, [Centre], splits=[[0.5, 1], [2]])
    # slices give lists of encoded items; a float or a bool position is refused
    assert tl[:3] == pytest.approx(list(ages[:3] - mean)) and tl.valid[-2:] == pytest.approx(list(ages[498:] - mean))
    assert tl.train[:] == pytest.approx(list(ages[:400] - mean)) and tl[np.int64(2)] == tl[torch.tensor(2)] == tl[2]
    for bad in (1.0, True, torch.tensor(1.5), "1"):
        with pytest.raises(ParameterError, match="integer position or a slice"):
            tl[bad]
    # a function written for one value (fastai's Transform(f)) that fails on the list runs value by value
    assert TfmdLists(["A", "B"], [str.lower])[:] == ["a", "b"]


def test_fastai_datasets_call_names_the_datablock_that_builds_it(adult):
    ages = adult["age"].to_list()[:40]
    # fastai's spelling builds one TfmdLists per part, each function run on one value (x * 2 does not repeat the list)
    fa = Datasets(ages, [[lambda x: x * 2], [lambda x: x + 1]], splits=[list(range(30)), list(range(30, 40))])
    assert len(fa.train) == 30 and fa.valid[0] == (ages[30] * 2, ages[30] + 1)
    with pytest.raises(ParameterError, match=r"does not take these arguments.*DataBlock\(blocks=.*"
                                             r"IndexSplitter\(valid_idx\)\)\.datasets\(items\).*TfmdLists"):
        Datasets(ages, [[lambda x: x * 2]], splits=[list(range(30)), list(range(30, 40))], blocks=[])
    # the call the message shows builds the same thing
    ds = DataBlock(blocks=(TransformBlock, TransformBlock), get_x=lambda x: x * 2, get_y=lambda x: x + 1,
                   splitter=IndexSplitter(list(range(30, 40)))).datasets(ages)
    assert len(ds.train) == 30 and [int(v) for v in ds.valid[0]] == [ages[30] * 2, ages[30] + 1]


# ------------------------------------------------------------------------------------ Numericalize
def test_tfmdlists_tokenize_numericalize_decode(texts):
    tl = TfmdLists(texts, [Tokenizer(), Numericalize(min_freq=1)], splits=[range(60), range(60, 80)])
    num = tl.pipeline.tfms[1]
    assert len(tl.valid) == 20
    words = tl.decode(tl[5])  # ids -> tokens -> text
    assert isinstance(words, str) and words.split()[:5] == texts[5].split()[:5]
    assert num.vocab == num.vocab_ and len(num.vocab) > 1000


def test_numericalize_round_trip_one_text_and_many(texts):
    toks = Tokenizer().encode(texts)
    num = Numericalize(min_freq=1)  # every token in the vocabulary: decoding gives the tokens back exactly
    num.setup(toks)
    many = num.encode(toks)
    assert num.decode(many) == [toks[i] for i in range(len(toks))]
    one = num(toks[0])  # one text's tokens: its ids as a tensor
    assert num.decode(one) == toks[0]
    assert num.decode(num.encode([toks[0]])) == [toks[0]]  # a column of one text
    assert num.decode(many.to_pylist()[:2]) == [toks[0], toks[1]]
    assert num.decode(torch.tensor(many[3].as_py())) == toks[3]
    sliced = many.slice(10, 3)  # an Arrow slice keeps its offset into the parent buffer
    assert num.decode(sliced) == [toks[10], toks[11], toks[12]]
    small = Numericalize(min_freq=3)
    small.setup(toks)
    back = small.decode(small.encode(toks))[0]
    assert back == [t if t in small.vocab else "xxunk" for t in toks[0]]
    with pytest.raises(ParameterError, match="takes ids"):
        small.decode(["the", "film"])


def test_numericalize_decode_takes_integer_ids_and_a_batch_row_by_row(texts):
    toks = Tokenizer().encode(texts)
    num = Numericalize(min_freq=1)
    num.setup(toks)
    ids = num.encode(toks)
    rows = [ids[i].as_py()[:6] for i in range(3)]
    xb = torch.tensor(rows)  # a batch as a language model's dataloader gives it
    assert num.decode(xb) == num.decode(xb.numpy()) == num.decode(rows) == [toks[i][:6] for i in range(3)]
    for dtype in (torch.int16, torch.int32, torch.int64, torch.uint8):
        small = torch.tensor(rows[0][:1], dtype=dtype)
        if int(small.max()) == rows[0][0]:
            assert num.decode(small) == toks[0][:1]
    assert num.decode(np.array(rows[1], dtype=np.uint32)) == toks[1][:6]
    # a float or a bool is not an id: it used to be truncated (9.7 gave token 9) or read as 0/1
    for bad in ([9.7], torch.tensor([9.7]), np.array([9.0]), [float("nan")], [True, False], ["9"],
                torch.tensor([[[2]]])):
        with pytest.raises(ParameterError, match="ids that are integers"):
            num.decode(bad)


def test_numericalize_vocab_is_the_learned_vocabulary(texts):
    toks = Tokenizer().encode(texts)
    num = Numericalize()
    assert num.vocab is None
    num.setup(toks)
    assert num.vocab == num.vocab_ and len(num.vocab) > 100
    assert num.get_params()["vocab"] is None  # the parameter is unchanged by setup
    assert num.clone().vocab is None and not num.clone().is_fitted
    given = Numericalize(vocab=num.vocab_)
    assert given.vocab == num.vocab_ and given.get_params()["vocab"] == num.vocab_
    again = pipekit.core.Component.from_record(num.to_record())
    assert again.vocab == num.vocab_ and again.get_params()["vocab"] is None


def test_lm_dataloader_of_numericalized_ids(texts):
    toks = Tokenizer().encode(texts)
    num = Numericalize()
    num.setup(toks)
    nums = num.encode(toks)
    dl = LMDataLoader(nums, bs=4, seq_len=20, device="cpu")
    x, y = dl.one_batch()
    assert x.shape == y.shape == (4, 20)
    assert torch.equal(x[:, 1:], y[:, :-1])
    flat = np.concatenate([np.asarray(v, dtype=np.int64) for v in nums.to_pylist()])
    stream = (len(flat) - 1) // 4
    assert x[1].tolist() == flat[stream:stream + 20].tolist()  # row 1 is the second of 4 contiguous streams
    same = LMDataLoader([torch.tensor(v) for v in nums.to_pylist()], bs=4, seq_len=20, device="cpu").one_batch()
    assert torch.equal(same[0], x)
    with pytest.raises(ParameterError, match=r"TextDataLoaders\.from_df\(df, text_col='text', is_lm=True\)"):
        LMDataLoader(texts)
    with pytest.raises(ParameterError, match="numericalize the tokens first"):
        LMDataLoader([toks[0], toks[1]])


# ------------------------------------------------------------------------------------ importance of estimators
@pytest.fixture(scope="module")
def adult_clf(adult):
    df = adult.head(2500)
    clf = TabularClassifier(RandomForest("classification", n_estimators=30, n_jobs=1), random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(df.drop("salary"), df["salary"].to_numpy())
    return clf


def test_feature_importances_match_scikit_learns_forest(adult):
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.feature_selection import SelectFromModel

    df = adult.head(3000).drop_nulls(NUMS)
    X, y = df.select(NUMS), df["salary"].to_numpy()
    clf = TabularClassifier(RandomForest("classification", n_estimators=30, n_jobs=1), random_state=0).fit(X, y)
    forest = dict(n_estimators=30, max_features=0.5, min_samples_leaf=5, random_state=0, n_jobs=1)
    sk = RandomForestClassifier(**forest).fit(X.to_numpy().astype(np.float32), y)
    assert np.allclose(clf.feature_importances_, sk.feature_importances_)
    chosen = SelectFromModel(TabularClassifier(RandomForest("classification", n_estimators=30, n_jobs=1),
                                               random_state=0)).fit(X, y).get_support()
    assert chosen.tolist() == SelectFromModel(RandomForestClassifier(**forest)).fit(
        X.to_numpy().astype(np.float32), y).get_support().tolist()
    assert not hasattr(TabularClassifier("rf"), "feature_importances_")  # not fitted
    net = TabularClassifier("net")
    net.model_, net.n_features_in_ = object(), 6  # a backend without importances: the attribute is missing
    assert not hasattr(net, "feature_importances_")


def test_feature_importances_credit_processed_columns_to_their_inputs(adult_clf):
    imp = adult_clf.model_.feature_importance()
    assert "education-num_na" in imp["feature"].to_list()  # FillMissing's flag is a column of the backend
    by_name = dict(zip(imp["feature"].to_list(), imp["importance"].to_list()))
    fi = adult_clf.feature_importances_
    names = list(adult_clf.feature_names_in_)
    assert len(fi) == len(names) and fi.sum() == pytest.approx(1.0)
    total = sum(by_name.values())
    assert fi[names.index("education-num")] == pytest.approx(
        (by_name["education-num"] + by_name["education-num_na"]) / total)
    assert fi[names.index("workclass")] == pytest.approx(by_name["workclass"] / total)


# ------------------------------------------------------------------------------------ warnings
def with_martians(adult: pl.DataFrame) -> pl.DataFrame:
    """300 rows of adult after the first 2000, the first 4 with a workclass never seen in training."""
    return adult.slice(2000, 300).with_columns(
        pl.when(pl.int_range(pl.len()) < 4).then(pl.lit("Martian")).otherwise(pl.col("workclass")).alias("workclass"))


def test_unseen_values_warning_once_per_fitted_model(adult):
    train = adult.head(2000)
    clf = TabularClassifier(RandomForest("classification", n_estimators=10, n_jobs=1), random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(train.drop("salary"), train["salary"].to_numpy())
    X = with_martians(adult).drop("salary")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        for _ in range(3):
            clf.predict(X)
        clf.predict_proba(X.head(2))  # other rows: another count, another message
    unseen = [str(w.message) for w in caught if "never seen in training" in str(w.message)]
    assert len(unseen) == 2 and "'workclass': 4" in unseen[0] and "'workclass': 2" in unseen[1]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        clf.fit(train.drop("salary"), train["salary"].to_numpy())
        clf.predict(X)  # a new fit is a new model: its first warning is shown
    assert sum("never seen in training" in str(w.message) for w in caught) == 1
    other = clf.clone()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        other.fit(train.drop("salary"), train["salary"].to_numpy())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a user's filters still apply to the warning shown
        with pytest.raises(UserWarning, match="never seen"):
            other.predict(X)


# ------------------------------------------------------------------------------------ inspection
def test_plot_importance_takes_what_a_user_has(adult_clf, adult, tmp_path):
    from sklearn.ensemble import RandomForestRegressor

    assert plot_importance(adult_clf, path=tmp_path / "clf.png").stat().st_size > 1000
    frame = pd.DataFrame({"feature": ["age", "fnlwgt"], "importance": [0.3, 0.7]})
    assert plot_importance(frame, path=tmp_path / "pandas.png").exists()
    book = pd.DataFrame({"cols": ["age", "fnlwgt"], "imp": [0.3, 0.7]})  # the book's rf_feat_importance names
    assert plot_importance(book, path=tmp_path / "book.png").exists()
    df = adult.head(1000).drop_nulls(NUMS)
    rf = RandomForestRegressor(n_estimators=10, random_state=0).fit(df.select(NUMS[1:]).to_pandas(), df["age"])
    assert plot_importance(rf, path=tmp_path / "sk.png").exists()
    with pytest.raises(ParameterError, match="'feature' and 'importance'"):
        plot_importance(pd.DataFrame({"name": ["a"], "score": [1.0]}))
    with pytest.raises(ParameterError, match="no feature importances.*permutation_importance"):
        plot_importance(TabularClassifier("rf"))


def test_permutation_importance_of_a_tabular_classifier(adult_clf, adult):
    rows = adult.slice(2500, 300)
    imp = permutation_importance(adult_clf, rows, y="salary", n_repeats=2, seed=0)
    assert sorted(imp["feature"].to_list()) == sorted(adult_clf.feature_names_in_)
    assert imp["importance"].is_sorted(descending=True) and imp["importance"][0] > 0.01
    X, y = rows.drop("salary"), rows["salary"].to_numpy()
    # pandas rows, targets given as values: the same shuffles, the same numbers
    same = permutation_importance(adult_clf, X.to_pandas(), y=y, n_repeats=2, seed=0)
    assert same.equals(imp)
    # by hand: accuracy drop with 'age' shuffled by the stream of (seed, its column position)
    one = permutation_importance(adult_clf, X, y=y, n_repeats=1, seed=3, features=["age"])
    names = X.columns
    perm = np.random.default_rng([3, names.index("age")]).permutation(len(X))
    shuffled = X.with_columns(X["age"].gather(perm))
    drop = (adult_clf.predict(X) == y).mean() - (adult_clf.predict(shuffled) == y).mean()
    assert one["importance"][0] == pytest.approx(drop)
    with pytest.raises(ParameterError, match="y='salary'"):
        permutation_importance(adult_clf, rows)


def test_permutation_importance_refuses_a_missing_target_column_an_unfitted_estimator_and_no_rows(adult_clf, adult):
    from sklearn.ensemble import RandomForestClassifier

    from pipekit.core import DataError, NotFittedError

    rows = adult.slice(2500, 300)
    X, y = rows.drop("salary"), rows["salary"].to_numpy()
    # a name that is no column is said to be one, not taken as one target value for 300 rows
    with pytest.raises(ParameterError, match=r"y='zzz' names no column of the data.*'age'"):
        permutation_importance(adult_clf, X, y="zzz")
    with pytest.raises(NotFittedError, match="RandomForestClassifier is not fitted; fit it first"):
        permutation_importance(RandomForestClassifier(), X.select(["age", "fnlwgt"]), y=y)
    with pytest.raises(DataError, match="rows passed to TabularClassifier are empty"):
        permutation_importance(adult_clf, X.head(0), y=y[:0])
    with pytest.raises(DataError, match="rows passed to TabularClassifier are empty"):
        permutation_importance(adult_clf, rows.head(0), y="salary")


# ------------------------------------------------------------------------------------ redundant columns
@pytest.fixture(scope="module")
def rossmann():
    from pipekit.tabular import add_datepart

    df = pl.read_csv(path("rossmann_sample") / "train.csv", infer_schema_length=10000)
    df = df.filter(pl.col("Open") == 1).gather_every(25).with_columns(pl.col("Sales").log())  # days of 2.5 years
    df = add_datepart(df, "Date").select("Store", "DayOfWeek", "Promo", "Year", "Month", "Week", "Dayofyear",
                                         "Elapsed", "Sales")
    from pipekit.backends import as_data

    data = as_data(df.drop("Sales"), y=df["Sales"].to_numpy(), cat_names=[])
    rows = np.random.default_rng(0).permutation(len(data))
    return data.take(rows[:2400]), data.take(rows[2400:3000])


def test_drop_redundant_tries_the_redundant_pairs_by_default(rossmann):
    train, valid = rossmann
    clusters = cluster_columns(train, plot=False)
    text = repr(clusters)
    assert len(text) < 400 and "array" not in text and f"{len(clusters.columns)} columns" in text
    candidates = clusters.candidates()
    assert {"Year", "Elapsed", "Week", "Dayofyear"} <= set(candidates) and "Store" not in candidates
    rf = RandomForest("regression", n_estimators=10, n_jobs=1)
    rep = drop_redundant(rf, train, valid)
    assert rep["dropped"].to_list() == ["(none)", *candidates]  # no row dropping both of a pair
    assert rep["change"][0] == 0
    with pytest.warns(UserWarning, match="nothing to try dropping"):
        only = drop_redundant(rf, train.drop(candidates), valid.drop(candidates))
    assert only["dropped"].to_list() == ["(none)"]
    with pytest.raises(ParameterError, match="at least one column"):
        drop_redundant(rf, train, valid, [])


def test_permutation_importance_shows_unseen_values_once(adult):
    train = adult.head(2000)
    clf = TabularClassifier(RandomForest("classification", n_estimators=10, n_jobs=1), random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(train.drop("salary"), train["salary"].to_numpy())
    rows = with_martians(adult)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        permutation_importance(clf, rows, y="salary", n_repeats=3, seed=0, features=["age", "sex", "workclass"])
    assert sum("never seen in training" in str(w.message) for w in caught) == 1  # not one per shuffle


def test_permutation_importance_of_one_named_column_and_a_mistyped_name(adult):
    """features="age" is the column age (it was read as the columns 'a', 'g', 'e'), for a backend and for a fitted
    estimator alike; a mistyped name says to name columns of the data, not to process the data again."""
    from pipekit.inspection import partial_dependence
    from pipekit.tabular import Tabular

    df = adult.head(3000)
    tab = Tabular(df, cat_names=["workclass", "education"], cont_names=NUMS, y_names="salary",
                  splits=(np.arange(2400), np.arange(2400, 3000)))
    rf = RandomForest("classification", n_estimators=20, n_jobs=1, seed=0).fit(tab.train)
    one = permutation_importance(rf, tab.valid, features="age", n_repeats=2, seed=0)
    listed = permutation_importance(rf, tab.valid, features=["age"], n_repeats=2, seed=0)
    assert one["feature"].to_list() == ["age"] and one.equals(listed)
    clf = TabularClassifier("rf", random_state=0).fit(df.head(2400).drop("salary"), df.head(2400)["salary"])
    raw = permutation_importance(clf, df.slice(2400, 600), features="age", y="salary", n_repeats=2, seed=0)
    assert raw["feature"].to_list() == ["age"]
    for call in (lambda: permutation_importance(rf, tab.valid, features=["agee"]),
                 lambda: partial_dependence(rf, tab.valid, "agee")):
        with pytest.raises(DataError, match=r"features \['agee'\] missing from the data .*; name columns of the data$"):
            call()
