"""Text holding a lone surrogate (``'\\ud800'``: a scrape decoded badly, ``errors='surrogateescape'``), which UTF-8
cannot encode: a pandas frame or a list of texts is refused with a DataError naming the column, the rows, the
character and the fix, never a bare UnicodeEncodeError; the fix it names makes the frame readable."""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from pipekit.core.errors import DataError, PipelineStepError
from pipekit.data import DataBlock, RandomSplitter, to_items
from pipekit.text import TextBlock, TextDataLoaders

pytestmark = pytest.mark.data

IMDB = Path(os.environ.get("PIPEKIT_DATA", "/nonexistent")) / "imdb_sample" / "texts.csv"


def reviews() -> pd.DataFrame:
    """200 of imdb_sample's reviews (150 training, 50 validation), two holding lone surrogates (rows 5 and 7)."""
    every = pd.read_csv(IMDB)
    df = pd.concat([every.iloc[:150], every.iloc[-50:]], ignore_index=True)
    df["text"] = df["text"].astype(object)
    df.loc[5, "text"] = "bad \ud800 surrogate here"
    df.loc[7, "text"] = df.loc[7, "text"][:40] + " \udcff"
    return df


def test_from_df_names_the_column_rows_character_and_fix():
    df = reviews()
    with pytest.raises(DataError) as e:
        TextDataLoaders.from_df(df, text_col="text", label_col="label", valid_col="is_valid", bs=16, seed=0)
    said = str(e.value)
    assert "column 'text'" in said and "2 rows, first 5, 7" in said and "'\\ud800'" in said
    assert "df['text'] = df['text'].str.encode('utf-8', 'replace').str.decode('utf-8')" in said
    # the fix it names makes the same frame readable, each surrogate a '?'
    df["text"] = df["text"].str.encode("utf-8", "replace").str.decode("utf-8")
    dls = TextDataLoaders.from_df(df, text_col="text", label_col="label", valid_col="is_valid", bs=16, seed=0)
    assert dls.one_batch()[0].shape[0] == 16
    assert to_items(df)["text"][5] == "bad ? surrogate here"


def test_one_row_is_named_by_its_label():
    df = reviews().set_index(pd.Index([f"r{i}" for i in range(200)]))
    df.loc["r7", "text"] = "fine"
    with pytest.raises(DataError, match=r"column 'text' holds text with a lone surrogate \('\\ud800'.* at row 'r5',"):
        to_items(df)


@pytest.mark.parametrize("how", ["categorical", "mixed types", "string dtype", "category dtype"])
def test_every_pandas_conversion_names_the_column(how):
    df = reviews()[["text", "label"]]
    categorical: list[str] = []
    if how == "categorical":  # the text columns read as categories, one at a time
        categorical = ["text"]
    elif how == "mixed types":  # a column mixing numbers and text, read as text after a warning
        df.insert(0, "num", [0, "a"] * 100)  # read first: refused as mixed, then read as text
    elif how == "string dtype":
        df["text"] = df["text"].astype(pd.StringDtype("python"))
    else:
        df["text"] = pd.Categorical(df["text"], categories=pd.Index(df["text"].unique(), dtype=object))
    with pytest.warns(UserWarning) if how == "mixed types" else _nothing():
        with pytest.raises(DataError, match=r"column 'text' .*'\\ud800'.* at 2 rows, first 5, 7"):
            to_items(df, categorical)


def test_a_list_of_texts_names_the_items():
    texts = pd.read_csv(IMDB)["text"].iloc[:20].tolist()
    texts[3] = texts[3][:30] + " \udcff"
    with pytest.raises(DataError, match=r"the items hold text with a lone surrogate \('\\udcff'.* at item 3,"):
        to_items(texts)
    db = DataBlock(blocks=(TextBlock,), splitter=RandomSplitter(seed=0))
    with pytest.raises(PipelineStepError, match=r"DataError: the items hold .* at item 3.*encode\('utf-8', 'replace'\)"):
        db.dataloaders(texts, bs=4)


def test_a_column_mixing_numbers_and_text_names_the_column_and_rows():
    """A column of numbers and texts is read as text after a warning; its surrogates are named, not a bare
    UnicodeEncodeError from the text column pandas builds of it."""
    df = reviews()[["text", "label"]]
    df["text"] = pd.Series([*range(5), *df["text"].iloc[5:]], dtype=object)  # rows 0..4 numbers
    with pytest.warns(UserWarning, match=r"column\(s\) \['text'\] mix text and numbers"):
        with pytest.raises(DataError, match=r"column 'text' .*'\\ud800'.* at 2 rows, first 5, 7.*"
                                            r"df\['text'\] = df\['text'\]\.str\.encode"):
            to_items(df)
    df["text"] = df["text"].map(lambda v: v.encode("utf-8", "replace").decode("utf-8") if isinstance(v, str) else v)
    with pytest.warns(UserWarning, match="mix text and numbers"):
        assert to_items(df)["text"][5] == "bad ? surrogate here"


def test_dict_rows_and_a_dict_of_columns_name_the_column_and_rows():
    texts = reviews()["text"].iloc[:10].tolist()  # rows 5 and 7 hold surrogates
    labels = reviews()["label"].iloc[:10].tolist()
    said = (r"column 'text' holds text with a lone surrogate \('\\ud800'.* at 2 rows, first 5, 7, "
            r".*\[t\.encode\('utf-8', 'replace'\)\.decode\('utf-8'\) for t in texts\]")
    with pytest.raises(DataError, match=said):
        to_items([{"label": lbl, "text": t} for lbl, t in zip(labels, texts)])
    with pytest.raises(DataError, match=said):
        to_items({"label": labels, "text": texts})
    with pytest.raises(DataError, match=r"column 'text' .*'\\udcff'.* at row 0,"):
        to_items({"label": "neg", "text": texts[7]})  # scalars: one row
    fixed = [t.encode("utf-8", "replace").decode("utf-8") for t in texts]
    assert to_items({"label": labels, "text": fixed})["text"][5] == "bad ? surrogate here"
    assert to_items([{"label": lbl, "text": t} for lbl, t in zip(labels, fixed)]).shape == (10, 2)


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None
