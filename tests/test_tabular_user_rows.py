"""A user's own rows at predict time: a yes/no column written another way than in training (0/1, "True" text read
back from a CSV), rows that still carry the target, mixed or clashing columns, dates as text. Each is matched or
refused with a DataError that names the column."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from pipekit.datasets import path

from pipekit.core.errors import DataError
from pipekit.tabular import Tabular


def _line() -> int:
    """The line of the caller."""
    import sys
    return sys._getframe(1).f_lineno


def adult_pd(n: int = 3000) -> pd.DataFrame:
    """The first ``n`` rows of adult.csv with a bool column ``is_male`` (pandas, as a user builds it)."""
    df = pd.read_csv(path("adult_sample") / "adult.csv", nrows=n)
    df["is_male"] = df["sex"].str.strip() == "Male"
    return df


FEATURES = ["age", "education-num", "hours-per-week", "is_male"]


@pytest.mark.parametrize("fit_as", ["bool", "int", "text"])
def test_a_yes_no_column_matches_bools_ints_and_text_at_predict(fit_as):
    from pipekit.sklearn import TabularClassifier

    df = adult_pd()
    forms = {"bool": df["is_male"], "int": df["is_male"].astype(int), "text": df["is_male"].astype(str),
             "lower": df["is_male"].astype(str).str.lower(), "object": df["is_male"].astype(object),
             "float": df["is_male"].astype(float)}
    X = df[FEATURES].assign(is_male=forms[fit_as])
    clf = TabularClassifier("rf", cat_names=["is_male"], random_state=0).fit(X, df["salary"])
    ref = clf.predict_proba(X)
    for name, form in forms.items():
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no value may become #na#
            np.testing.assert_allclose(clf.predict_proba(X.assign(is_male=form)), ref, err_msg=name)
    assert clf.processor_.classes_["is_male"][0] == "#na#"


def test_tabular_new_reads_a_bool_column_back_from_csv_text():
    df = adult_pd()
    tab = Tabular(df, cat_names=["workclass", "is_male"], cont_names=["age"], y_names="salary",
                  splits=(np.arange(2400), np.arange(2400, 3000)))
    ref = tab.new(df).xs["is_male"].to_numpy()
    assert set(ref) == {1, 2}
    for form in (df["is_male"].astype(int), df["is_male"].astype(str), df["is_male"].map({True: "true", False: "false"})):
        np.testing.assert_array_equal(tab.new(df.assign(is_male=form)).xs["is_male"].to_numpy(), ref)


def test_a_column_written_another_way_in_every_row_is_refused_a_new_category_is_not():
    from pipekit.sklearn import TabularClassifier

    df = adult_pd()
    X = df[["age", "workclass", "sex"]]
    clf = TabularClassifier("rf", random_state=0).fit(X, df["salary"])
    # adult's text has a space after each comma: ' Male'; the same words typed without it are all unseen
    with pytest.raises(DataError, match=r"categorical column 'sex'.*given \['(Male|Female)', '(Male|Female)'\].*"
                                        r"learned \[' Female', ' Male'\].*set them to null"):
        clf.predict(X.assign(sex=X["sex"].str.strip()))
    codes = X.assign(sex=(X["sex"] == " Male").astype(int) + 1)
    with pytest.raises(DataError, match=r"categorical column 'sex'.*\(Int64\)"):
        clf.predict(codes)
    # a genuinely new category, in one row or in every row of a batch, is #na# with a warning, as in fastai
    with pytest.warns(UserWarning, match=r"never seen in training.*'workclass': 1"):
        one = clf.predict(X.head(1).assign(workclass=" Space-agency"))
    assert len(one) == 1
    with pytest.warns(UserWarning, match=r"never seen"):
        clf.predict(X.head(4).assign(workclass=[" Space-agency", " Moon-base", " Space-agency", " Guild"]))
    # numeric codes learned beside one text value ('?' for unknown): a batch of new codes is new, not mistyped
    zips = df[["age", "sex"]].assign(zip=np.where(np.arange(len(df)) % 7 == 0, "?", (10001 + np.arange(len(df)) % 5)
                                                  .astype(str)))
    zclf = TabularClassifier("rf", random_state=0).fit(zips, df["salary"])
    with pytest.warns(UserWarning, match=r"never seen in training.*'zip': 3"):
        zclf.predict(zips.head(3).assign(zip=["20001", "20002", "20003"]))


def test_rows_to_score_may_carry_a_blank_or_unknown_target():
    from pipekit.tabular import tabular_learner

    df = adult_pd(1000)
    tab = Tabular(df, cat_names=["workclass", "sex"], cont_names=["age", "education-num"], y_names="salary",
                  splits=(np.arange(800), np.arange(800, 1000)))
    learn = tabular_learner(tab.dataloaders(bs=64), layers=[8])
    new = df.iloc[:4].copy()
    new["salary"] = new["salary"].astype(object)
    new.loc[0, "salary"], new.loc[1, "salary"] = None, "unknown"  # one row still to label, one odd label
    bare = learn.get_preds(dl=learn.dls.test_dl(df.iloc[:4].drop(columns="salary")))[0]
    with pytest.warns(UserWarning, match=r"target column 'salary' has 1 missing.*without their target"):
        scored = learn.get_preds(dl=learn.dls.test_dl(new))  # their target kept when usable: it is not
    np.testing.assert_allclose(scored[0], bare)
    assert scored[1] is None
    assert learn.predict(new.iloc[1])[0] in ("<50k", ">=50k")
    # labels asked for: still checked, by row
    with pytest.raises(DataError, match=r"target column 'salary' has 1 missing"):
        learn.dls.test_dl(new, with_labels=True)
    # Tabular.new (what an ensemble's process reads through) keeps usable labels, and leaves unusable ones out
    assert "salary" in tab.new(df.iloc[:4]).frame.columns
    with pytest.warns(UserWarning, match=r"target column 'salary' has 1 missing.*processed without their target"):
        split = tab.new(new)
    assert "salary" not in split.frame.columns and split.frame.height == 4


def test_a_spreadsheet_column_mixing_numbers_and_text_and_a_name_given_twice():
    from pipekit.sklearn import TabularClassifier

    df = adult_pd(1000)
    X = df[["age", "workclass"]].astype({"workclass": object})
    X.loc[::7, "workclass"] = 3  # a hand-edited cell: a number among the words
    with pytest.warns(UserWarning, match=r"\['workclass'\] mix text and numbers; read as text") as said:
        clf = TabularClassifier("rf", random_state=0).fit(X, df["salary"])
    assert "3" in clf.processor_.classes_["workclass"]
    # the warning points at the user's line, however deep in pipekit it is raised (here five calls down)
    assert [w.filename for w in said if "mix text" in str(w.message)] == [__file__]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert len(clf.predict(X)) == len(X)
    # called through scikit-learn, the warning still points at the user's line, not at scikit-learn's
    from sklearn.inspection import permutation_importance
    seen = X[X["workclass"] != " Never-worked"].iloc[:600]
    clf2 = TabularClassifier("rf", random_state=0).fit(seen.assign(workclass=seen["workclass"].astype(str)),
                                                       df["salary"].loc[seen.index])
    rows = X.iloc[600:].assign(workclass=" Never-worked")
    with pytest.warns(UserWarning, match="never seen in training") as said:
        line = _line() + 1
        permutation_importance(clf2, rows, df["salary"].iloc[600:], n_repeats=1, random_state=0)
    assert {(w.filename, w.lineno) for w in said if "never seen" in str(w.message)} == {(__file__, line)}
    twice = pd.concat([df[["age"]], df[["age", "education-num"]]], axis=1)
    with pytest.raises(DataError, match=r"column name\(s\) \['age'\] more than once"):
        TabularClassifier("rf").fit(twice, df["salary"])


def test_a_users_column_named_like_the_missing_value_flag_is_refused():
    from pipekit.sklearn import TabularClassifier

    df = adult_pd(1000)
    df["education-num_na"] = df["age"] > 40  # the user's own column, named as FillMissing names its flag
    with pytest.raises(DataError, match=r"column 'education-num' has missing values .* already has a column "
                                        r"'education-num_na'; rename that column"):
        Tabular(df, cat_names=["education-num_na"], cont_names=["education-num"], y_names="salary",
                splits=(np.arange(800), np.arange(800, 1000)))
    with pytest.raises(DataError, match=r"already has a column 'education-num_na'"):
        TabularClassifier("rf").fit(df[["education-num", "education-num_na"]], df["salary"])
    # without missing values there is no flag, so no clash
    full = df[df["education-num"].notna()]
    clf = TabularClassifier("rf", random_state=0).fit(full[["education-num", "education-num_na"]], full["salary"])
    assert clf.processor_.cat_names_ == ["education-num_na"]


def test_a_date_column_read_back_from_csv_as_text_gives_the_parts_it_gave_at_fit():
    from pipekit.sklearn import TabularRegressor

    raw = pd.read_csv(path("rossmann_sample") / "train.csv", nrows=2000, dtype={"StateHoliday": str})
    X = raw[["Store", "Promo", "Date"]].assign(Date=pd.to_datetime(raw["Date"]))  # a datetime of days
    reg = TabularRegressor("rf", cat_names=["Store"], random_state=0).fit(X, raw["Sales"])
    assert "Date_Dayofyear" in reg.processor_.cont_names and "Date_Hour" not in reg.processor_.cont_names
    ref = reg.predict(X)
    np.testing.assert_allclose(reg.predict(X.assign(Date=raw["Date"])), ref)  # the CSV's "2015-07-31" text
    np.testing.assert_allclose(reg.predict(X.assign(Date=X["Date"].dt.date)), ref)  # python dates
    with pytest.raises(DataError, match=r"column 'Date' holds text that no date layout pipekit recognises reads \('soon' at row 0\)"):
        reg.predict(X.head(3).assign(Date="soon"))


def test_net_probabilities_sum_to_one_for_log_loss():
    from sklearn.metrics import log_loss

    from pipekit.sklearn import TabularClassifier

    df = adult_pd(1500)
    X, y = df[["age", "education-num", "hours-per-week", "workclass"]], df["salary"]
    clf = TabularClassifier("net", random_state=0).fit(X.iloc[:1200], y.iloc[:1200])
    p = clf.predict_proba(X.iloc[1200:])
    assert p.dtype == np.float64 and np.abs(p.sum(1) - 1).max() <= 1e-12
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scikit-learn warns when rows do not sum to one
        assert 0 < log_loss(y.iloc[1200:], p, labels=clf.classes_) < 1


def test_an_empty_column_of_x_is_named_for_the_estimator():
    from pipekit.sklearn import TabularClassifier, TabularRegressor

    df = adult_pd(500)
    for empty in (np.nan, None):
        X = df[["age", "workclass"]].assign(notes=empty)
        with pytest.raises(DataError, match=r"TabularClassifier: column 'notes' of X has no values .*drop the "
                                            r"column from X"):
            TabularClassifier("rf").fit(X, df["salary"])
    with pytest.raises(DataError, match=r"TabularRegressor: column 'workclass' of X"):
        TabularRegressor("rf").fit(df[["age"]].assign(workclass=None).astype({"workclass": object}), df["age"])


def test_a_users_column_named_like_a_date_part_is_not_taken_for_one(tmp_path):
    """X has a date without times and the user's own 'd_Hour': predict must not read the date as timed (its
    parts would overwrite d_Hour with midnight)."""
    import pipekit
    from pipekit.sklearn import TabularClassifier

    raw = pd.read_csv(path("rossmann_sample") / "train.csv", nrows=1500, dtype={"StateHoliday": str})
    X = pd.DataFrame({"d": pd.to_datetime(raw["Date"]).dt.date, "d_Hour": (raw["Store"] % 24).astype(float)})
    y = np.where(X["d_Hour"] > 11, "late", "early")
    clf = TabularClassifier("rf", random_state=0).fit(X, y)
    assert clf.date_names_ == ["d"] and "d_Hour" in clf.cont_names_
    assert (clf.predict(X) == y).mean() > 0.99  # 0.52 when d_Hour was overwritten
    assert clf.process(X).xs["d_Hour"].n_unique() == X["d_Hour"].nunique() > 10
    pipekit.save(clf, tmp_path / "clf.pipekit")
    np.testing.assert_array_equal(pipekit.load(tmp_path / "clf.pipekit").predict(X), clf.predict(X))


def test_labelled_rows_given_to_test_dl_keep_their_target_and_validate_scores_them():
    # fastai's tabular test_dl keeps the target of rows that carry it: learn.validate(dl=dls.test_dl(df)) scores them
    from pipekit.learn import accuracy
    from pipekit.tabular import tabular_learner

    df = adult_pd(1200)
    tab = Tabular(df, cat_names=["workclass", "sex"], cont_names=["age", "education-num"], y_names="salary",
                  splits=(np.arange(900), np.arange(900, 1200)))
    learn = tabular_learner(tab.dataloaders(bs=64, seed=0), layers=[8], metrics=accuracy)
    learn.fit(1, 1e-2)
    dl = learn.dls.test_dl(df.iloc[900:])
    preds, targs = learn.get_preds(dl=dl)
    assert targs is not None and targs.reshape(-1).tolist() == learn.dls.valid_ds.y.tolist()
    np.testing.assert_allclose(learn.validate(dl=dl), learn.validate(), rtol=1e-6)
    assert learn.validate(dl=dl)[1] == pytest.approx(float((preds.argmax(1) == targs.reshape(-1)).float().mean()))
    # rows without the target, or with it left out on purpose, are scored only; validating them says why not
    for bare in (learn.dls.test_dl(df.iloc[900:].drop(columns="salary")),
                 learn.dls.test_dl(df.iloc[900:], with_labels=False)):
        assert learn.get_preds(dl=bare)[1] is None
        with pytest.raises(DataError, match=r"no targets.*test_dl\(items, with_labels=True\)"):
            learn.validate(dl=bare)
    assert learn.predict(df.iloc[950])[0] in ("<50k", ">=50k")
