"""Three tabular behaviours checked against fastai 2.8's numbers on the real samples.

A training row listed several times in ``splits`` (the usual way to oversample a class) counts that many times in
what the procs learn, as in fastai. A text category column whose vocabulary writes one integer two ways (``'296'``
and ``'0296'``, or ``'296'`` and ``'296.0'``) is looked up by number without failing: a number is the entry written as
that number is written, and text written otherwise is matched only as text. A pandas categorical target of integers
is classes (fastai's ``TabularPandas`` makes them a ``CategoryBlock``), not a regression."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch

import pipekit.datasets as D
from pipekit.core.errors import PipekitWarning
from pipekit.tabular import Categorify, CollabDataLoaders, FillMissing, Normalize, Tabular


@pytest.fixture(scope="module")
def adult() -> pd.DataFrame:
    return pd.read_csv(D.path("adult_sample") / "adult.csv").iloc[:1000].reset_index(drop=True)


@pytest.fixture(scope="module")
def ratings() -> pd.DataFrame:
    return pd.read_csv(D.path("movie_lens_sample") / "ratings.csv")


# ---------------------------------------------------------------- repeated training rows


def test_repeated_training_rows_count_in_the_procs_statistics(adult):
    train, valid = list(range(800)), list(range(800, 1000))
    rich = [i for i in train if adult.salary[i] == ">=50k"]
    to = Tabular(adult, procs=[Categorify, FillMissing, Normalize], cat_names=["workclass"],
                 cont_names=["age", "education-num"], y_names="salary", splits=(train + rich * 5, valid))
    assert len(to.train) == 800 + 5 * len(rich) == 1805
    # fastai 2.8.12's TabularPandas on the same rows and splits: Normalize's means and stds (ddof=0, plus its 1e-7)
    # and FillMissing's median, all learned from the 1,805 rows as listed
    fastai_means = {"age": 41.33130193905817, "education-num": 11.10914134979248}
    fastai_stds = {"age": 11.629932858966617, "education-num": 1.8179620312286378}
    assert to.fill_missing.na_dict == {"education-num": 11.0}  # 10.0 over the 800 distinct rows
    for c in fastai_means:
        assert to.normalize.means[c] == pytest.approx(fastai_means[c], rel=1e-6)
        assert to.normalize.stds[c] == pytest.approx(fastai_stds[c] - 1e-7, rel=1e-6)
    # the same numbers as pandas over the training rows as listed, and the processed training rows standardised
    listed = adult.iloc[train + rich * 5]
    assert to.normalize.means["age"] == pytest.approx(listed["age"].mean(), rel=1e-6)
    assert to.normalize.stds["age"] == pytest.approx(listed["age"].std(ddof=0), rel=1e-6)
    age = to.train.xs["age"].to_numpy(dtype=np.float64)
    assert abs(age.mean()) < 1e-5 and age.std() == pytest.approx(1.0, abs=1e-5)
    # the categories and every row's processing are those of the table split without repeats
    plain = Tabular(adult, procs=[Categorify, FillMissing, Normalize], cat_names=["workclass"],
                    cont_names=["age", "education-num"], y_names="salary", splits=(train, valid))
    assert list(to.classes["workclass"]) == list(plain.classes["workclass"])
    assert to.xs["workclass"].tolist() == plain.xs["workclass"].tolist()
    assert to.xs.shape == plain.xs.shape and len(to.valid) == 200


def test_a_split_without_repeats_is_processed_as_before(adult):
    # no row listed twice: the statistics are the distinct training rows', the values pandas gives over them
    train, valid = list(range(800)), list(range(800, 1000))
    to = Tabular(adult, procs=[Categorify, FillMissing, Normalize], cat_names=["workclass"],
                 cont_names=["age", "education-num"], y_names="salary", splits=(train[::-1], valid))
    assert to.normalize.means["age"] == pytest.approx(adult["age"].iloc[train].mean(), rel=1e-6)
    assert to.fill_missing.na_dict == {"education-num": 10.0}
    assert to.train.xs.index.tolist() == train[::-1]


# ---------------------------------------------------------------- ids written two ways


def _two_ways(ratings: pd.DataFrame, other: str) -> pd.DataFrame:
    """The ratings with text movie ids: 1270 written only as '01270', 296 as '0296', and movie 260 given the id
    ``other`` ('296' or '296.0')."""
    r = ratings.copy()
    m = r["movieId"].astype(str)
    m[m == "1270"], m[m == "296"] = "01270", "0296"
    m[m == "260"] = other
    r["movieId"] = m
    return r


@pytest.mark.parametrize("other", ["296", "296.0"])
def test_an_integer_id_matches_the_entry_written_as_that_integer(ratings, other):
    r = _two_ways(ratings, other)
    to = Tabular(r, procs=[Categorify], cat_names=["userId", "movieId"], cont_names=[], y_names="rating",
                 splits=(list(range(5000)), list(range(5000, len(r)))))
    mv = to.classes["movieId"]
    assert {"0296", other, "01270", "356"} <= set(mv)
    # looked up by number, 296 and 296.0 are the entry written as the number ('296', or '296.0'), never '0296'
    assert mv.o2i[296] == mv.o2i[296.0] == mv.o2i[other] != mv.o2i["0296"]
    # '01270' is the only entry reading as 1270 (a zero-padded id read back as a number): it is 1270's
    assert mv.o2i[1270] == mv.o2i["01270"]
    new = pd.DataFrame({"userId": [r.userId[0]] * 4, "movieId": [296, 1270, 356, 99999], "rating": [3.0] * 4})
    for ids in (new, new.astype({"movieId": float})):
        with pytest.warns(PipekitWarning, match=r"never seen in training.*'movieId': 1"):
            codes = to.new(ids).xs["movieId"].tolist()
        assert codes == [mv.o2i[other], mv.o2i["01270"], mv.o2i["356"], 0]


def test_an_id_written_as_an_integer_and_as_a_float_is_each_by_its_type(ratings):
    r = _two_ways(ratings, "296")
    r.loc[r.movieId == "480", "movieId"] = "296.0"  # '296', '296.0' and '0296' are three categories
    to = Tabular(r, procs=[Categorify], cat_names=["userId", "movieId"], cont_names=[], y_names="rating",
                 splits=(list(range(5000)), list(range(5000, len(r)))))
    mv = to.classes["movieId"]
    assert len({mv.o2i["296"], mv.o2i["296.0"], mv.o2i["0296"]}) == 3
    assert mv.o2i[296] == mv.o2i["296"] and mv.o2i[296.0] == mv.o2i["296.0"]
    new = pd.DataFrame({"userId": [r.userId[0]] * 2, "movieId": [296, 356], "rating": [3.0] * 2})
    assert to.new(new).xs["movieId"].tolist() == [mv.o2i["296"], mv.o2i["356"]]
    assert to.new(new.astype({"movieId": float})).xs["movieId"].tolist() == [mv.o2i["296.0"], mv.o2i["356"]]


def test_collab_ids_written_two_ways_are_looked_up(ratings):
    r = _two_ways(ratings.iloc[:2000], "296")
    dls = CollabDataLoaders.from_df(r, bs=64, seed=0)
    mv = dls.classes["movieId"]
    assert mv.o2i[296] == mv.o2i["296"] != mv.o2i["0296"]
    test = dls.test_dl(pd.DataFrame({"userId": [r.userId[0]], "movieId": [296], "rating": [3.0]}))
    assert len(test.dataset) == 1


# ---------------------------------------------------------------- pandas categorical target


def test_a_pandas_categorical_target_of_integers_is_classes(adult):
    df = adult.copy()
    df["grade"] = pd.Categorical(df["education-num"].fillna(9).astype(int) // 4)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*read as a regression.*")
        to = Tabular(df, procs=[Categorify, FillMissing, Normalize], cat_names=["workclass"], cont_names=["age"],
                     y_names="grade", splits=(list(range(800)), list(range(800, 1000))))
    # fastai 2.8.12: vocab [0, 1, 2, 3, 4] (ints), targets their codes
    assert to.vocab == [0, 1, 2, 3, 4] and all(type(v) is int for v in to.vocab)
    assert to.processor.y_kind_ == "category" and to.processor.c_ == 5
    assert to.train.y.tolist()[:5] == [3, 3, 2, 3, 2]
    assert to.valid.y.tolist() == (df["grade"].iloc[800:].astype(int)).tolist()


def test_a_pandas_categorical_target_keeps_its_declared_order(adult):
    df = adult.copy()
    df["grade"] = pd.Categorical(df["education-num"].fillna(9).astype(int) // 4, categories=[3, 1, 2, 0, 4, 9])
    to = Tabular(df, cat_names=["workclass"], cont_names=["age"], y_names="grade",
                 splits=(list(range(800)), list(range(800, 1000))))
    # fastai 2.8.12: the categories in their order, those never seen in training left out
    assert to.vocab == [3, 1, 2, 0, 4]
    assert to.train.y.tolist()[:5] == [0, 0, 2, 0, 2]
    # and a plain integer column stays a regression, with the warning that it may be classes
    df["grade"] = df["grade"].astype(int)
    with pytest.warns(PipekitWarning, match="read as a regression"):
        reg = Tabular(df, cat_names=["workclass"], cont_names=["age"], y_names="grade",
                      splits=(list(range(800)), list(range(800, 1000))))
    assert reg.processor.y_kind_ == "regression"


def test_process_to_parquet_reads_a_pandas_categorical_target_as_classes(adult, tmp_path):
    """The streaming path makes the same classes as Tabular of the same frame."""
    import polars as pl

    from pipekit.tabular import process_to_parquet

    df = adult.copy()
    df["grade"] = pd.Categorical(df["education-num"].fillna(9).astype(int) // 4)
    processor = process_to_parquet(df, tmp_path / "out.parquet", cat_names=["workclass"], cont_names=["age"],
                                   y_names="grade", valid=pl.col("age") > 60)
    assert processor.y_kind_ == "category" and processor.c_ == 5
    out = pl.read_parquet(tmp_path / "out.parquet")
    assert out["grade"].to_list() == (df["grade"].astype(int)).tolist()


def test_a_single_output_binary_net_predicts_and_shows_its_labels(adult):
    """``tabular_learner(dls, n_out=1, loss_func=BCEWithLogitsLossFlat())`` on a two-class target: predict gives the
    label of the decision (it crashed in argmax of a bool), show_results its labels, get_emb_sz takes fastai's
    positional widths."""
    import pipekit
    from pipekit.learn import BCEWithLogitsLossFlat
    from pipekit.tabular import TabularDataLoaders, get_emb_sz, tabular_learner

    df = adult.iloc[:800].copy()
    df["salary"] = df["salary"].str.strip()
    pipekit.set_seed(0)
    dls = TabularDataLoaders.from_df(df, y_names="salary", cat_names=["workclass", "education", "sex"],
                                     cont_names=["age", "education-num"], valid_idx=list(range(600, 800)), bs=64)
    assert get_emb_sz(dls, {"education": 4}) == get_emb_sz(dls, sz_dict={"education": 4})
    assert [w for _, w in get_emb_sz(dls, {"education": 4})][1] == 4
    learn = tabular_learner(dls, layers=[20], n_out=1, loss_func=BCEWithLogitsLossFlat())
    learn.fit(1, 1e-2)
    label, decision, prob = learn.predict(df.iloc[0])
    assert label == dls.vocab[int(decision.item())] and label in ("<50k", ">=50k")
    assert bool(decision.item()) == bool(prob.item() > 0.5)
    preds, _, decoded = learn.get_preds(with_decoded=True)
    assert decoded.dtype == torch.bool and len(decoded) == 200
    assert torch.equal(decoded.ravel(), preds.ravel() > 0.5)  # get_preds gives the sigmoid, as fastai
    learn.show_results(max_n=3)  # the labels of its decisions beside the targets (it crashed as predict did)
