"""What a reader of the book hands pipekit by hand, on the real ratings, adult and imdb_sample data: columns as a dict,
a row as a tuple, categorical columns without Categorify, tabular loaders given to collab_learner, one rating,
nothing to predict, texts with NaN or numbers given to a tokenizer, a vocabulary given to Numericalize, a learner
given a path. Each works as the book expects or is refused saying what to do."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from pipekit.core.errors import DataError, ParameterError
from pipekit.data.seed import set_seed
from pipekit.datasets import path
from pipekit.tabular import (Categorify, CollabDataLoaders, FillMissing, Normalize, TabularDataLoaders, collab_learner,
                             tabular_learner)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CATS = ["workclass", "education", "marital-status", "occupation", "relationship", "race"]
CONTS = ["age", "fnlwgt", "education-num"]


@pytest.fixture(scope="module")
def ratings() -> pd.DataFrame:
    return pd.read_csv(path("movie_lens_sample") / "ratings.csv")


@pytest.fixture(scope="module")
def adult() -> pd.DataFrame:
    return pd.read_csv(path("adult_sample") / "adult.csv", nrows=2000)


@pytest.fixture(scope="module")
def collab(ratings):
    set_seed(0)
    dls = CollabDataLoaders.from_df(ratings, valid_pct=0.2, seed=42, bs=64)
    learn = collab_learner(dls, n_factors=8, y_range=(0, 5.5))
    learn.fit(1, 5e-3)
    return learn


@pytest.fixture(scope="module")
def tabular(adult):
    set_seed(0)
    dls = TabularDataLoaders.from_df(adult, procs=[Categorify, FillMissing, Normalize], cat_names=CATS,
                                     cont_names=CONTS, y_names="salary", valid_idx=list(range(1600, 2000)), bs=64)
    return tabular_learner(dls, layers=[20, 10])


def test_columns_as_a_dict_are_rows_to_predict(collab, tabular, ratings, adult):
    """{'userId': [73, 561], 'movieId': [1097, 924]} is two rows, as the same frame is (it was one row of lists, a
    Polars cast error); predict takes such a dict of one row, and refuses one of two rather than scoring the
    first; a dict mixing lists and single values is refused, naming the columns."""
    pairs = ratings.iloc[[0, 7, 40]][["userId", "movieId"]]
    as_frame = collab.get_preds(dl=collab.dls.test_dl(pairs))[0]
    as_dict = collab.get_preds(dl=collab.dls.test_dl(pairs.to_dict("list")))[0]
    assert torch.equal(as_frame, as_dict) and len(as_dict) == 3 and as_dict.std() > 0
    numpy_columns = {k: v.to_numpy() for k, v in pairs.items()}
    assert torch.equal(collab.get_preds(dl=collab.dls.test_dl(numpy_columns))[0], as_frame)
    one = {"userId": [int(pairs.userId.iloc[1])], "movieId": [int(pairs.movieId.iloc[1])]}
    assert collab.predict(one)[0] == pytest.approx(float(as_frame[1]), abs=1e-6)
    assert collab.predict({k: v[0] for k, v in one.items()})[0] == collab.predict(one)[0]
    with pytest.raises(ParameterError, match=r"predict takes one item; this dict holds 3: for several use learn.get_preds"):
        collab.predict(pairs.to_dict("list"))
    with pytest.raises(ParameterError, match=r"this one mixes them: \['movieId'\] hold lists"):
        collab.dls.test_dl({"userId": 73, "movieId": [1097, 924]})
    with pytest.raises(ParameterError, match=r"different lengths \(\{'userId': 1, 'movieId': 2\}\)"):
        collab.dls.test_dl({"userId": [73], "movieId": [1097, 924]})
    people = adult.iloc[1600:1605]
    by_frame = tabular.get_preds(dl=tabular.dls.test_dl(people))[0]
    assert torch.equal(tabular.get_preds(dl=tabular.dls.test_dl(people.to_dict("list")))[0], by_frame)


def test_a_row_as_a_tuple_of_values_is_said_to_need_its_column_names(tabular, adult):
    row = tuple(adult.iloc[1700])
    with pytest.raises(ParameterError, match=r"got a tuple of .*(float|int).*str.* \(values without their column names: "
                                             r"a row needs them, as in dict\(zip\(columns, values\)\)\)"):
        tabular.predict(row)
    assert tabular.predict(dict(zip(adult.columns, row)))[0] in {" <50k", " >=50k", "<50k", ">=50k"}


def test_categorical_columns_need_categorify(adult):
    """Text categories without Categorify were an int() error inside the loaders, numbers a KeyError in get_emb_sz;
    both say to add Categorify (or to give the column as continuous)."""
    with pytest.raises(DataError, match=r"categorical column 'workclass' holds Categorical values .*add Categorify "
                                        r"to procs"):
        TabularDataLoaders.from_df(adult, procs=[], cat_names=["workclass"], cont_names=["age"], y_names="salary")
    dls = TabularDataLoaders.from_df(adult, procs=[Normalize], cat_names=["age"], cont_names=["fnlwgt"],
                                     y_names="salary")
    with pytest.raises(ParameterError, match=r"get_emb_sz: categorical column\(s\) \['age'\] have no classes .* add it "
                                             r"to procs"):
        tabular_learner(dls)


def test_collab_learner_refuses_loaders_that_are_not_ratings(adult, ratings):
    """Tabular loaders with two categorical columns built a dot-product model that failed inside torch at fit (a
    class target, a batch-size mismatch), ignoring the continuous column."""
    dls = TabularDataLoaders.from_df(adult, cat_names=["workclass", "education"], cont_names=["age"], y_names="salary")
    with pytest.raises(ParameterError, match=r"collab_learner: dls must hold a user column, an item column and a "
                                             r"numeric rating .* continuous columns \['age'\], a category target"):
        collab_learner(dls, n_factors=5)
    with pytest.raises(DataError, match=r"1 rating cannot be split into training and validation ratings; give at "
                                        r"least 2"):
        CollabDataLoaders.from_df(ratings.iloc[:1])


def test_a_tokenizer_names_a_missing_text_or_a_number_among_texts():
    """tkn(df.text) as in the book, on imdb_sample's texts with a NaN, a number or bytes among them: a DataError
    naming the row (they were Polars TypeErrors); no texts tokenize to nothing; SubwordTokenizer.setup([]) says there
    is no text."""
    from pipekit.text import SubwordTokenizer, Tokenizer

    texts = pd.read_csv(path("imdb_sample") / "texts.csv")["text"].head(5)
    tkn = Tokenizer()
    with pytest.raises(DataError, match=r"text at row 2 is missing \(NaN or NA\); fill it"):
        tkn(texts.where(texts.index != 2))
    with pytest.raises(DataError, match=r"text at row 1 is a int \('5'\), not a string"):
        tkn([texts[0], 5])
    with pytest.raises(ParameterError, match=r"got bytes; decode it"):
        tkn(texts[0].encode())
    assert len(tkn([])) == 0 and len(tkn(texts)) == 5
    with pytest.raises(DataError, match=r"the training texts contain no words"):
        SubwordTokenizer(vocab_sz=50).setup([])


def test_numericalize_given_a_vocab_encodes_at_once_and_a_fitted_subword_tokenizer_is_not_silently_dropped():
    from pipekit.text import Numericalize, SubwordTokenizer, Tokenizer

    texts = pd.read_csv(path("imdb_sample") / "texts.csv")["text"].head(200).tolist()
    tkn = Tokenizer()
    fitted = Numericalize(min_freq=2)
    fitted.setup(tkn(texts))
    given = Numericalize(vocab=fitted.vocab)
    toks = tkn(texts[3])
    assert torch.equal(given(toks), fitted(toks)) and given.decode(given(toks)) == fitted.decode(fitted(toks))
    sp = SubwordTokenizer(vocab_sz=300)
    sp.setup(texts)
    with pytest.warns(UserWarning, match=r"the SubwordTokenizer given is set up already.*the one trained is not used"):
        wrapped = Tokenizer(sp)
    assert not wrapped.is_fitted
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Tokenizer(SubwordTokenizer(vocab_sz=300))  # not set up: nothing is lost, nothing said


def test_export_writes_a_relative_name_under_the_learners_path(tabular, adult, tmp_path, monkeypatch):
    """As learn.save does, and as the book reloads it (load_learner(learn.path/'export.pkl')); without a path, the
    current folder."""
    import pipekit

    monkeypatch.chdir(tmp_path)
    (tmp_path / "work").mkdir()
    tabular.path = tmp_path / "work"
    try:
        written = tabular.export("export.pipekit")
    finally:
        tabular.path = type(tabular.path)(".")
    assert written == tmp_path / "work" / "export.pipekit" and written.is_file()
    assert not (tmp_path / "export.pipekit").exists()
    back = pipekit.load_learner(tmp_path / "work" / "export.pipekit")
    row = adult.iloc[1800]
    assert np.allclose(back.predict(row)[2].numpy(), tabular.predict(row)[2].numpy(), atol=1e-6)
    assert tabular.export("here.pipekit").resolve() == (tmp_path / "here.pipekit").resolve()


def test_get_preds_of_a_list_of_batches_as_the_book_writes_it(tabular):
    """Chapter 5's learn.get_preds(dl=[(x, y)]): the predictions and targets of that batch (it was an AttributeError
    inside the loop); a list of anything else is refused saying what it must hold."""
    batch = tabular.dls.valid.one_batch()
    preds, targs = tabular.get_preds(dl=[batch])
    whole, all_targs = tabular.get_preds()
    n = len(batch[-1])
    assert torch.equal(targs, batch[-1]) and torch.allclose(preds, whole[:n], atol=1e-6)
    assert torch.equal(targs, all_targs[:n])
    with pytest.raises(ParameterError, match=r"a list or tuple given as the loader must hold batches, each a tuple of 2 input "
                                             r"tensor\(s\) and the targets .* item 0 is not"):
        tabular.get_preds(dl=[{"age": 40}])


def test_a_datablock_without_blocks_gives_what_its_getters_give(adult):
    """Chapter 6 builds DataBlock(get_x=..., get_y=...) before choosing blocks: as there, an input and a target
    each as its getter gives it (it was refused as 'give at least one block')."""
    from pipekit.data import DataBlock, RandomSplitter

    dsets = DataBlock(get_x=lambda r: r["education"], get_y=lambda r: r["salary"],
                      splitter=RandomSplitter(seed=42)).datasets(adult.head(200))
    train_rows = adult.head(200).iloc[dsets.splits[0]]
    assert dsets.train[0] == (train_rows["education"].iloc[0], train_rows["salary"].iloc[0])
    assert len(dsets.train) + len(dsets.valid) == 200


def test_no_rows_to_predict_give_no_predictions_before_and_after_export(tabular, adult, tmp_path):
    """An empty test set scores to empty predictions in the session, and so it does with the learner loaded from its
    export (whose loaders are made anew: it was 'DataLoader: the dataset is empty; check the items and the split')."""
    import pipekit

    back = pipekit.load_learner(tabular.export(tmp_path / "adult.pipekit"))
    for learn in (tabular, back):
        preds, targs = learn.get_preds(dl=learn.dls.test_dl(adult.iloc[:0], with_labels=False))
        assert preds.shape == (0, 2) and targs is None
        preds, targs = learn.get_preds(dl=learn.dls.test_dl(adult.iloc[:0]))  # the rows' target column kept
        assert preds.shape == (0, 2) and targs.shape == (0,)
        preds, targs = learn.get_preds(dl=learn.dls.test_dl(adult.iloc[:0], with_labels=True))
        assert preds.shape == (0, 2) and targs.shape == (0,)


def test_what_a_review_found_in_these_inputs(adult, tmp_path):
    """A 0-d array in a dict row is one value; get_emb_sz(tab) names a categorical column without Categorify, as
    get_emb_sz(cat_names, classes) does; a processing with two FillMissing procs (the second finds nothing to fill)
    saves and loads."""
    import pipekit
    from pipekit.tabular import Tabular, get_emb_sz
    from pipekit.tabular.core import rows_to_frame

    assert rows_to_frame({"age": np.array(40), "workclass": " Private"}).row(0) == (40, " Private")
    tab = Tabular(adult, procs=[Normalize], cat_names=["age"], cont_names=["fnlwgt"], y_names="salary")
    with pytest.raises(ParameterError, match=r"categorical column\(s\) \['age'\] have no classes"):
        get_emb_sz(tab)
    blank = adult.assign(age=adult.age.where(adult.index % 7 != 0))
    twice = Tabular(blank, procs=[Categorify, FillMissing, FillMissing, Normalize], cat_names=["workclass"],
                    cont_names=["age", "fnlwgt"], y_names="salary")
    assert "age_na" in twice.cat_names
    back = pipekit.load(pipekit.save(twice.processor, tmp_path / "procs.pipekit"))
    assert back.transform(pl_frame(blank.head(20))).equals(twice.processor.transform(pl_frame(blank.head(20))))


def pl_frame(df):
    import polars as pl
    return pl.from_pandas(df)
