"""Values written the ways users' files write them: numbers with decimal commas from a European spreadsheet's CSV
export, a category learned as floats given back as text, and the documented way to read a split's arrays."""

from __future__ import annotations

import doctest
import os
import warnings
from pathlib import Path

import pandas as pd
import polars as pl
import pytest

from pipekit.core.errors import DataError
from pipekit.data import read_table
from pipekit.tabular import Tabular
from pipekit.tabular.core import TabularSplit

DATA = Path(os.environ.get("PIPEKIT_DATA", "/nonexistent"))
ADULT = DATA / "adult_sample" / "adult.csv"
CATS, CONTS = ["workclass"], ["age", "education-num"]


def adult(n: int = 400) -> pd.DataFrame:
    return pd.read_csv(ADULT, nrows=n)


def euro_csv(tmp_path: Path, df: pd.DataFrame) -> Path:
    """``df`` as a European spreadsheet exports it: ';' between fields, a decimal comma in each number."""
    f = tmp_path / "adult_euro.csv"
    df.to_csv(f, index=False, sep=";", decimal=",")
    return f


def test_decimal_comma_column_is_refused_with_how_to_read_it(tmp_path: Path) -> None:
    df = adult()
    df["education-num"] = df["education-num"] + 0.5
    f = euro_csv(tmp_path, df)
    table = read_table(f, separator=";")
    with pytest.raises(DataError) as err:
        Tabular(table, cat_names=CATS, cont_names=CONTS, y_names="salary", splits=None)
    msg = str(err.value)
    # the message as it was, then the hint
    assert msg.startswith("continuous column 'education-num' holds text that is not a number, e.g. '")
    assert "clean the column or list it in cat_names." in msg
    assert "decimal comma" in msg and "pandas.read_csv(path, sep=';', decimal=',')" in msg
    assert ".str.replace(',', '.').cast(pl.Float64)" in msg
    # both fixes it names read the file's numbers
    fixed = pl.read_csv(f, separator=";").with_columns(
        pl.col("education-num").str.replace_all(".", "", literal=True).str.replace(",", ".").cast(pl.Float64)
    )
    expected = Tabular(df, cat_names=CATS, cont_names=CONTS, y_names="salary", splits=None).normalize.means
    assert (
        Tabular(fixed, cat_names=CATS, cont_names=CONTS, y_names="salary", splits=None).normalize.means
        == expected
    )
    read = pd.read_csv(f, sep=";", decimal=",")
    assert (
        Tabular(read, cat_names=CATS, cont_names=CONTS, y_names="salary", splits=None).normalize.means
        == expected
    )


def test_decimal_comma_with_thousands_dots_is_recognised(tmp_path: Path) -> None:
    df = adult()
    f = tmp_path / "adult_fnlwgt.csv"
    # fnlwgt as a German spreadsheet writes it: 77.516,25
    df["fnlwgt"] = [f"{v:,}".replace(",", ".") + ",25" for v in df["fnlwgt"]]
    df.to_csv(f, index=False, sep=";")
    with pytest.raises(DataError, match=r"'fnlwgt'.*e\.g\. '[\d.]+,25'.*decimal=','"):
        Tabular(
            read_table(f, separator=";"),
            cat_names=CATS,
            cont_names=["age", "fnlwgt"],
            y_names="salary",
            splits=None,
        )


def _with_text(tmp_path: Path, text: str) -> Path:
    """adult as a CSV whose continuous column education-num holds ``text`` in row 5."""
    df = adult()
    df["education-num"] = df["education-num"].astype(str)
    df.loc[5, "education-num"] = text
    f = tmp_path / "adult_text.csv"
    df.to_csv(f, index=False)
    return f


@pytest.mark.parametrize("bad", [" ?", "12,5,1", "unknown", "1,2e3", "52,300", "-1,200"])
def test_other_text_gets_no_decimal_comma_hint(tmp_path: Path, bad: str) -> None:
    with pytest.raises(DataError) as err:
        Tabular(read_table(_with_text(tmp_path, bad)), cat_names=CATS, cont_names=CONTS, y_names="salary",
                splits=None)
    msg = str(err.value)
    assert msg.endswith("clean the column or list it in cat_names.") and "decimal" not in msg, msg


@pytest.mark.parametrize("comma", ["12,5", "1.234,5", "-0,25", "0,250", "1234,500", "1.234,500"])
def test_decimal_comma_hint_where_no_thousands_comma_reads_it(tmp_path: Path, comma: str) -> None:
    # '52,300' may be 52300 (no hint, see above); these read only as numbers with a decimal comma
    with pytest.raises(DataError, match=r"decimal comma.*decimal=','"):
        Tabular(read_table(_with_text(tmp_path, comma)), cat_names=CATS, cont_names=CONTS, y_names="salary",
                splits=None)


def _tab_with_age_category(tmp_path: Path, missing: bool) -> tuple[Tabular, pd.DataFrame]:
    """A Tabular whose categorical column 'age' is learned from a CSV of adult rows: with a blank age pandas reads
    the column as floats (39.0), without one as integers."""
    df = adult()
    if missing:
        df.loc[3, "age"] = None
    f = tmp_path / f"adult_age_{missing}.csv"
    df.to_csv(f, index=False)
    train = pd.read_csv(f)
    assert train["age"].dtype == ("float64" if missing else "int64")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # validation ages the training rows never had
        tab = Tabular(
            train,
            cat_names=["age", "workclass"],
            cont_names=["education-num"],
            y_names="salary",
            splits=[list(range(300)), list(range(300, len(train)))],
        )
    return tab, df.drop(index=3).head(50)


def _codes(tab: Tabular, rows: pd.DataFrame) -> tuple[list[int], list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        codes = tab.new(rows).inputs["age"].to_list()
    return codes, [str(w.message) for w in caught]


@pytest.mark.parametrize("missing", [True, False], ids=["float-learned", "int-learned"])
def test_text_of_a_whole_number_matches_a_category_learned_as_a_number(tmp_path: Path, missing: bool) -> None:
    tab, rows = _tab_with_age_category(tmp_path, missing)
    assert tab.categorify["age"][1].endswith(".0") == missing
    ages = rows["age"].astype(int)
    ref, _ = _codes(tab, rows.assign(age=ages))
    assert 0 not in ref
    # the same ages as ints, floats and text (as a CSV read without types gives them): the same codes, no warning
    for given in (ages, ages.astype(float), ages.astype(str)):
        codes, warned = _codes(tab, rows.assign(age=given))
        assert codes == ref, given.dtype
        assert not [w for w in warned if "never seen in training" in w], warned
    text = tmp_path / "new_rows.csv"
    rows.assign(age=ages).to_csv(text, index=False)
    as_text = pl.read_csv(text, infer_schema=False)
    assert as_text["age"].dtype == pl.String
    assert tab.new(as_text).inputs["age"].to_list() == ref
    assert tab.new(as_text.with_columns(pl.col("age").cast(pl.Categorical))).inputs["age"].to_list() == ref
    assert tab.categorify.lookup("age", tab.categorify["age"], [str(a) for a in ages]) == ref


def test_whole_number_texts_worked_out_once_per_vocab(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pipekit.tabular.procs as procs

    tab, rows = _tab_with_age_category(tmp_path, True)
    vocab = tab.categorify["age"]
    real, calls = procs._whole_number_aliases, []
    monkeypatch.setattr(procs, "_whole_number_aliases", lambda v: calls.append(len(v)) or real(v))
    text = rows.assign(age=rows["age"].astype(int).astype(str))
    ref, _ = _codes(tab, text)
    assert 0 not in ref
    for _ in range(3):  # each encode and lookup of the same vocab reuses its aliases
        assert _codes(tab, text)[0] == ref
        assert vocab.o2i[str(text["age"].iloc[0])] == ref[0]
    assert calls == [len(vocab)]
    # a vocab changed since is worked out again: its new entry's text is found
    vocab.append("101.0")
    given = pl.DataFrame({"age": ["101", "39"]})
    codes = given.select(procs.Categorify.encode_values("age", vocab, pl.String)).to_series().to_list()
    assert codes == [len(vocab) - 1, vocab.index("39.0")]
    assert calls == [len(vocab) - 1, len(vocab)]


@pytest.mark.parametrize("missing", [True, False], ids=["float-learned", "int-learned"])
def test_other_text_still_matches_no_learned_number(tmp_path: Path, missing: bool) -> None:
    tab, rows = _tab_with_age_category(tmp_path, missing)
    for odd in ("39.5", "abc", "039"):
        codes, warned = _codes(tab, rows.head(5).assign(age=odd))
        assert codes == [0] * 5, odd
        assert any("never seen in training" in w for w in warned), (odd, warned)
    # a number that is no training value is unseen as text or as a number
    for odd in ("39.5", 39.5):
        codes, _ = _codes(tab, rows.head(5).assign(age=[odd] * 5))
        assert codes == [0] * 5, odd


def test_tabular_split_docstring_example_runs() -> None:
    tests = doctest.DocTestFinder().find(TabularSplit, "TabularSplit", globs={})
    own = next(t for t in tests if t.name == "TabularSplit")
    assert own.examples and not [e for e in own.examples if e.options.get(doctest.SKIP)]
    assert any("to_numpy()" in e.source for e in own.examples)
    assert any(".inputs" in e.source for e in own.examples) and any(
        ".targets" in e.source for e in own.examples
    )
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    result = runner.run(own)
    assert result.failed == 0 and result.attempted >= 5
