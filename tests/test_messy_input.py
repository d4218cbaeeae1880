"""Messy input read as pandas and fastai read it, or refused naming the line, the column or the fix: blank lines in a
CSV, a line with too many fields, a mistyped column name, a label only the validation items have."""
import gzip
import re
import shutil
import warnings

import pandas as pd
import polars as pl
import pytest

import pipekit.datasets as D
from pipekit.core.errors import DataError, ParameterError
from pipekit.core.validate import close_names, names_shown, unknown_names
from pipekit.data import ColReader, ColSplitter, DataBlock, PipelineStepError, RegressionBlock, TimeSplitter
from pipekit.data.items import read_csv
from pipekit.tabular import Categorify, FillMissing, Normalize, Tabular, TabularDataLoaders, process_to_parquet
from pipekit.tabular.collab import CollabDataLoaders
from pipekit.tabular.dates import add_datepart
from pipekit.text import TextDataLoaders
from pipekit.vision import ImageDataLoaders, Resize

pytestmark = pytest.mark.data

ADULT = D.path("adult_sample") / "adult.csv"
KW = dict(cat_names=["workclass", "education"], cont_names=["age", "fnlwgt"], procs=[Categorify, FillMissing, Normalize])


def adult_lines(n: int) -> list[str]:
    """The header and the first ``n`` rows of adult.csv, as lines."""
    with open(ADULT) as f:
        return [next(f).rstrip("\n") for _ in range(n + 1)]


def blank_warnings(caught) -> list[str]:
    return [str(w.message) for w in caught if "blank line" in str(w.message)]


# 1. blank lines are no rows
def test_a_csv_ending_in_blank_lines_reads_as_pandas_reads_it_in_every_reader(tmp_path):
    train, rows5 = tmp_path / "adult_train.csv", tmp_path / "rows5.csv"
    train.write_text("\n".join(adult_lines(600)) + "\n\n")  # an editor's (or echo >>'s) trailing blank line
    rows5.write_text("\n".join(adult_lines(5)) + "\n\n\n")
    assert len(pd.read_csv(train)) == 600 and len(pd.read_csv(rows5)) == 5
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dls = TabularDataLoaders.from_csv(train, y_names="salary", valid_pct=0.2, seed=42, **KW)
    assert len(dls.train_ds) + len(dls.valid_ds) == 600  # was refused: 'salary' missing at row 600
    said = blank_warnings(caught)
    assert said == [f"{train}: skipped 1 blank line(s) (line 602), as pandas.read_csv does: a blank line is no row "
                    "(a row of missing values is written with its separators, ',,')"]
    # the lazy reader (Tabular of a path, test_dl of a path) drops them too
    assert len(Tabular(rows5, cat_names=["workclass"], cont_names=["age"], y_names=None, splits=None).train) == 5
    assert len(dls.test_dl(rows5).dataset) == 5

    imdb = tmp_path / "texts.csv"
    imdb.write_text((D.path("imdb_sample") / "texts.csv").read_text().rstrip("\n") + "\n\n")
    tdls = TextDataLoaders.from_csv(tmp_path, csv_fname="texts.csv", text_col="text", label_col="label",
                                    valid_col="is_valid", bs=16)
    assert len(tdls.train_ds) + len(tdls.valid_ds) == len(pd.read_csv(imdb)) == 1000

    mnist = D.path("mnist_tiny")
    labels = tmp_path / "labels.csv"
    labels.write_text((mnist / "labels.csv").read_text() + "\n\n")
    idls = ImageDataLoaders.from_csv(mnist, csv_fname=labels, item_tfms=Resize(28), bs=64, seed=42)
    assert len(idls.train_ds) + len(idls.valid_ds) == len(pd.read_csv(labels)) and list(idls.vocab) == [3, 7]


def test_only_blank_lines_are_skipped_not_rows_of_missing_values_or_blank_lines_in_quotes(tmp_path):
    """A line of separators only (',,') is a row whose values are all missing, as pandas reads it; a blank line in a
    quoted text is part of the text; a blank line before the header is skipped; each path reads the same rows."""
    f = tmp_path / "t.csv"
    f.write_text('\nname,text,n\na,"one\n\ntwo",1\n\n,,\nb,x,2\r\n\r\n')
    expected = [("a", "one\n\ntwo", 1), (None, None, None), ("b", "x", 2)]
    assert pd.read_csv(f).shape == (3, 3)
    with pytest.warns(UserWarning, match=r"skipped 2 blank line\(s\) \(lines 6, 9\)"):
        assert read_csv(f).rows() == expected
    lazy = Tabular(f, cat_names=["name"], cont_names=["n"], y_names=None, splits=None, procs=[]).frame
    assert lazy["name"].cast(pl.String).to_list() == ["a", None, "b"] and lazy["n"].to_list() == [1.0, None, 2.0]
    # n_rows counts rows: the blank lines do not take any of them
    assert read_csv(f, n_rows=3).rows() == expected and read_csv(f, n_rows=2).rows() == expected[:2]


def test_lines_of_spaces_or_tabs_are_blank_lines_and_the_columns_keep_their_types(tmp_path):
    """pandas skips a line holding only spaces or tabs; Polars read it as a row whose first value is that text, so
    adult's first column (age, numbers) read as text. In a TSV a tab is a field's end, and a line of tabs a row."""
    lines = adult_lines(300)
    lines[50:50] = ["   "]
    lines[120:120] = ["\t "]
    f = tmp_path / "adult_spaces.csv"
    f.write_text("\n".join(lines) + "\n  ")  # the last line too, without its line end
    ref = pd.read_csv(f)
    assert len(ref) == 300 and ref["age"].dtype.kind == "i"
    with pytest.warns(UserWarning, match=r"skipped 3 blank line\(s\) \(lines 51, 121, 304\)"):
        eager = read_csv(f)
    assert eager.height == 300 and eager.schema["age"] == pl.Int64
    assert eager["age"].to_list() == ref["age"].tolist() and eager["salary"].to_list() == ref["salary"].tolist()
    # the lazy reader and the book's loaders read the same 300 rows, age a continuous column
    lazy = Tabular(f, cat_names=["workclass"], cont_names=["age"], y_names="salary", splits=None, procs=[]).frame
    assert lazy.height == 300 and lazy["age"].to_list() == ref["age"].astype(float).tolist()
    dls = TabularDataLoaders.from_csv(f, y_names="salary", valid_pct=0.2, seed=42, **KW)
    assert len(dls.train_ds) + len(dls.valid_ds) == 300
    # a TSV's line of tabs is a row of missing values (as pandas reads it); its line of spaces is blank
    tsv = tmp_path / "t.tsv"
    tsv.write_text("a\tb\n1\t2\n\t\n \n3\t4\n")
    assert pd.read_csv(tsv, sep="\t").shape == (3, 2)
    with pytest.warns(UserWarning, match=r"skipped 1 blank line\(s\) \(line 4\)"):
        assert read_csv(tsv, separator="\t").rows() == [(1, 2), (None, None), (3, 4)]


def test_the_texts_pandas_reads_as_missing_are_missing_values_in_every_reader(tmp_path):
    """'NA', 'N/A', 'null', 'nan', 'None' ... are missing values to pandas.read_csv (so to fastai): a column of
    numbers holding them was refused as text, a category column took them for three classes."""
    df = pl.read_csv(ADULT, n_rows=12_000)
    markers = ["NA", "N/A", "null", "nan", "None", "#N/A"]
    rows = [3, 40, 500, 7_000, 11_500, 11_900]  # two after the 10,000 rows the column types are read from
    age = df["age"].cast(pl.String).scatter(rows, markers)
    work = df["workclass"].scatter(rows[::2], ["NA", "null", "N/A"])
    f = tmp_path / "adult_na.csv"
    df.with_columns(age=age, workclass=work).write_csv(f)
    ref = pd.read_csv(f)
    assert ref["age"].isna().sum() == 6 and ref["workclass"].isna().sum() == 3
    eager = read_csv(f)
    assert eager.schema["age"] == pl.Int64 and eager["age"].null_count() == 6
    assert eager["age"].to_list() == [None if pd.isna(v) else int(v) for v in ref["age"]]
    assert eager["workclass"].to_list() == [None if pd.isna(v) else v for v in ref["workclass"]]
    # the lazy reader (Tabular of a path): the same missing values, FillMissing's flag on the same rows
    tab = Tabular(f, cat_names=["workclass"], cont_names=["age"], y_names="salary", splits=None,
                  procs=[Categorify, FillMissing])
    assert (tab.frame["age_na"] == 2).arg_true().to_list() == rows  # the flag's code for True, as fastai codes it
    categorify = next(p for p in tab.procs if isinstance(p, Categorify))
    assert not set(markers) & set(categorify.classes_["workclass"])
    dls = TabularDataLoaders.from_csv(f, y_names="salary", valid_pct=0.2, seed=42, **KW)
    assert len(dls.train_ds) + len(dls.valid_ds) == 12_000
    # a value pandas reads as text stays text: ' ?' is adult's own marker, a class of its own to pandas too
    assert (eager["workclass"] == " ?").sum() == (ref["workclass"] == " ?").sum() > 0


# 2. a line with too many fields
def test_a_line_with_more_fields_than_the_header_is_named_with_the_fix(tmp_path):
    lines = adult_lines(400)
    lines[10] += ",EXTRA,FIELDS"
    f = tmp_path / "ragged.csv"
    f.write_text("\n".join(lines) + "\n")
    with pytest.raises(pd.errors.ParserError, match="Expected 15 fields in line 11, saw 17"):
        pd.read_csv(f)
    said = (rf"{f}: line 11 has 17 fields, the header has 15; a value holding the separator ',' must be in double "
            r"quotes, or the line has 2 field\(s\) too many: fix that line, then read the file again$")
    with pytest.raises(DataError, match=said) as eager:
        TabularDataLoaders.from_csv(f, y_names="salary", cat_names=["workclass"], cont_names=["age"])
    assert "truncate_ragged_lines" not in str(eager.value)
    # a table read whole from its lazy scan (ratings given as a path) names the line alike; a tab-separated one too
    ratings = (D.path("movie_lens_sample") / "ratings.csv").read_text().splitlines()[:50]
    for suffix, sep in ((".csv", ","), (".tsv", "\t")):
        ratings[7] += f"{sep}5"
        f = tmp_path / f"ratings{suffix}"
        f.write_text("\n".join(r.replace(",", sep) for r in ratings) + "\n")
        with pytest.raises(DataError, match=re.escape(f"{f}: line 8 has 5 fields, the header has 4; a value holding "
                                                      f"the separator {sep!r} must be in double quotes")) as lazy:
            CollabDataLoaders.from_df(f)
        assert "truncate_ragged_lines" not in str(lazy.value)
        ratings[7] = ratings[7][:-2]


def test_a_long_line_is_refused_by_the_lazy_readers_whichever_columns_they_read(tmp_path):
    """A query of some columns of a lazy scan read the first fields of a long line: an unquoted comma in adult's
    marital-status shifted the line's later values into other columns, and Tabular(path) trained on them."""
    lines = adult_lines(400)
    fields = lines[10].split(",")
    fields[5] = fields[5].replace("-", ", ")  # 'Married-civ-spouse' written unquoted as 'Married, civ, spouse'
    lines[10] = ",".join(fields)
    f = tmp_path / "shifted.csv"
    f.write_text("\n".join(lines) + "\n")
    said = re.escape(f"{f}: line 11 has 17 fields, the header has 15; a value holding the separator ',' must be in "
                     "double quotes, or the line has 2 field(s) too many: fix that line, then read the file again")
    with pytest.raises(DataError, match=f"^{said}$"):  # the columns read are all before the line's extra fields
        Tabular(f, cat_names=["workclass"], cont_names=["age"], y_names="salary", splits=None)
    with pytest.raises(DataError, match=f"^{said}$"):
        process_to_parquet(f, tmp_path / "out" / "t.parquet", cat_names=["workclass"], cont_names=["age"],
                           y_names="salary")
    # the lines as adult.csv wrote them read whole, each column as the eager reader reads it
    good = tmp_path / "good.csv"
    good.write_text("\n".join(adult_lines(400)) + "\n")
    lazy = Tabular(good, cat_names=["workclass"], cont_names=["age"], y_names="salary", splits=None, procs=[]).frame
    assert lazy["age"].to_list() == pd.read_csv(good)["age"].astype(float).tolist()


# 3. mistyped column names
def test_a_mistyped_column_name_is_matched_to_the_close_one_at_every_entry_point(tmp_path):
    df = pl.read_csv(ADULT, n_rows=300)
    adult = dict(y_names="salary", cat_names=["workclass"], cont_names=["age"])
    with pytest.raises(DataError, match=r"\['workclas'\] listed in cat_names are not in the data; did you mean "
                                        r"'workclass'\? The columns are \['age', 'workclass', "):
        TabularDataLoaders.from_df(df, **{**adult, "cat_names": ["workclas"]})
    with pytest.raises(DataError, match=r"did you mean 'age'\?"):  # a slip of case only
        Tabular(df, **{**adult, "cont_names": ["Age"]})
    with pytest.raises(PipelineStepError, match=r"ColReader: column\(s\) \['agee'\] not in the items; did you mean "
                                                r"'age'\?"):
        DataBlock(blocks=(RegressionBlock, RegressionBlock), get_x=ColReader("agee"),
                  get_y=ColReader("fnlwgt")).datasets(df)
    gz = tmp_path / "adult.csv.gz"  # a table a DataBlock takes as one file: the message says how to read it
    gz.write_bytes(gzip.compress(df.write_csv().encode()))
    with pytest.raises(PipelineStepError, match=r"the columns are \['path'\] \(the source .*adult\.csv\.gz is one file "
                                                r"to a DataBlock.*pl\.read_csv\(path\) and pass the frame"):
        DataBlock(blocks=(RegressionBlock, RegressionBlock), get_x=ColReader("age"),
                  get_y=ColReader("fnlwgt")).datasets(gz)
    texts = pl.read_csv(D.path("imdb_sample") / "texts.csv", n_rows=50)
    with pytest.raises(ParameterError, match=r"text_col='txt' is not a column; did you mean 'text'\?"):
        TextDataLoaders.from_df(texts, text_col="txt", label_col="label")
    ratings = pl.read_csv(D.path("movie_lens_sample") / "ratings.csv", n_rows=200)
    with pytest.raises(ParameterError, match=r"user_name='userid' is not a column; did you mean 'userId'\?"):
        CollabDataLoaders.from_df(ratings, user_name="userid", item_name="movieId", rating_name="rating")
    dates = pl.DataFrame({"saledate": ["2011-11-16"], "x": [1]})
    for frame in (dates, dates.to_pandas()):
        with pytest.raises(DataError, match=r"column 'SaleDate' is not in the data; did you mean 'saledate'\? "
                                            r"The columns are \['saledate', 'x'\]\.$"):
            add_datepart(frame, "SaleDate")
    with pytest.raises(DataError, match=r"column 'is_vaild' not in the items; did you mean 'is_valid'\?"):
        ColSplitter("is_vaild")(texts)
    with pytest.raises(DataError, match=r"column 'timestmp' not in the items; did you mean 'timestamp'\?"):
        TimeSplitter("timestmp", 0.8).times(ratings)


def test_a_wide_tables_columns_are_shown_in_part_and_the_close_name_first():
    df = pl.DataFrame({**{f"feature_{i:03d}": [0.0, 1.0] for i in range(300)}, "ProductGroupDesc": ["a", "b"],
                       "y": [0.0, 1.0]})
    with pytest.raises(DataError) as e:
        Tabular(df, cat_names=["ProductGroupDes"], cont_names=["feature_000"], y_names="y")
    said = str(e.value)
    assert "did you mean 'ProductGroupDesc'?" in said and "'feature_019', ... and 282 more]" in said
    assert "feature_020" not in said and len(said) < 700  # was 4,630 characters


def test_the_name_helpers():
    assert close_names("workclas", ["age", "workclass"]) == ["workclass"]
    assert close_names("SALARY", ["salaries", "salary"]) == ["salary", "salaries"]  # the same name but for case first
    assert close_names("zzz", ["age"]) == []
    assert names_shown(list("abc"), limit=2) == "['a', 'b', ... and 1 more]" and names_shown(["a"]) == "['a']"
    assert unknown_names(["Age", "x", "wrkclass"], ["age", "workclass"]) == (
        "did you mean 'age' (for 'Age') and 'workclass' (for 'wrkclass')? The columns are ['age', 'workclass']")


# 4. a label the training items lack
def test_a_class_only_the_validation_folder_has_is_refused_with_add_na_as_a_fix(tmp_path):
    mnist = D.path("mnist_tiny")
    for split in ("train", "valid"):
        for digit in ("3", "7"):
            (tmp_path / split / digit).mkdir(parents=True)
            for f in sorted((mnist / split / digit).iterdir())[:8]:
                shutil.copy(f, tmp_path / split / digit / f.name)
    (tmp_path / "valid" / "zebra").mkdir()
    shutil.copy(next((mnist / "valid" / "3").iterdir()), tmp_path / "valid" / "zebra" / "z1.png")
    with pytest.raises(PipelineStepError, match=r"label\(s\) \['zebra'\] at rows \[32\] are not in the training "
                                                r"labels .*or build with CategoryBlock\(add_na=True\), which gives a "
                                                r"label the training set lacks the class '#na#'"):
        ImageDataLoaders.from_folder(tmp_path, valid="valid", item_tfms=Resize(28), bs=8, seed=42)


def _mnist_folder_with_a_class_only_valid_has(root, n_zebras: int):
    """A copy of part of mnist_tiny (8 images of each digit in train/ and valid/) with ``valid/zebra/``, a class of
    ``n_zebras`` images the training folder lacks; the zebra images' paths."""
    mnist = D.path("mnist_tiny")
    for split in ("train", "valid"):
        for digit in ("3", "7"):
            (root / split / digit).mkdir(parents=True)
            for f in sorted((mnist / split / digit).iterdir())[:8]:
                shutil.copy(f, root / split / digit / f.name)
    (root / "valid" / "zebra").mkdir()
    zebras = [root / "valid" / "zebra" / f"z{i}.png" for i in range(n_zebras)]
    for z, f in zip(zebras, sorted((mnist / "valid" / "7").iterdir())):
        shutil.copy(f, z)
    return zebras


def test_a_label_the_training_items_lack_names_the_files_that_have_it(tmp_path):
    """Row numbers say nothing to a user of from_folder: the first few files with the label are named, relative to
    the folder, with how many there are, beside the fix."""
    zebras = _mnist_folder_with_a_class_only_valid_has(tmp_path, 7)
    with pytest.raises(PipelineStepError) as e:
        ImageDataLoaders.from_folder(tmp_path, valid="valid", item_tfms=Resize(28), bs=8, seed=42)
    said = str(e.value)
    assert "label(s) ['zebra'] at rows [32, 33, 34, 35, 36, 37, 38] are not in the training labels" in said
    assert "CategoryBlock(add_na=True)" in said
    assert ("the item(s) at those rows (7 in all) are the file(s) 'valid/zebra/z0.png', 'valid/zebra/z1.png', "
            "'valid/zebra/z2.png', 'valid/zebra/z3.png', 'valid/zebra/z4.png' and 2 more") in said
    # new items encoded with their labels are named by their files too (the paths as given)
    for z in zebras:
        z.rename(tmp_path / z.name)
    (tmp_path / "valid" / "zebra").rmdir()
    dls = ImageDataLoaders.from_folder(tmp_path, valid="valid", item_tfms=Resize(28), bs=8, seed=42)
    assert list(dls.vocab) == ["3", "7"]
    (tmp_path / "valid" / "zebra").mkdir()
    zebra = (tmp_path / "z0.png").rename(zebras[0])
    seven = sorted((tmp_path / "valid" / "7").iterdir())[0]
    with pytest.raises(DataError) as e:
        dls.test_dl([seven, zebra], with_labels=True)
    assert "label(s) ['zebra'] at rows [1] are not in the training labels" in str(e.value)
    assert f"(1 in all) are the file(s) {str(zebra)!r}" in str(e.value)


def test_a_mistyped_column_of_a_splitter_or_of_a_saved_estimators_rows_is_matched_to_the_close_one(tmp_path, capsys):
    """The splitter's column read by Tabular and the columns `pipekit predict` reads for a saved estimator were
    refused with every column listed but no close name, as every other entry point gives it."""
    import pipekit
    from pipekit.cli import main
    from pipekit.sklearn import TabularClassifier

    sales = pl.read_csv(D.path("rossmann_sample") / "train.csv", n_rows=500)
    with pytest.raises(DataError, match=r"TimeSplitter: column 'date' is not in the table; did you mean 'Date'\? The "
                                        r"columns are \['Store', 'DayOfWeek', 'Date', "):
        Tabular(sales, cat_names=["Store"], cont_names=["Customers"], y_names="Sales",
                splits=TimeSplitter("date", "2015-07-25"))
    df = pl.read_csv(ADULT, n_rows=300)
    clf = TabularClassifier("rf", random_state=0).fit(df.select("workclass", "age"), df["salary"])
    model = pipekit.save(clf, tmp_path / "clf.pipekit")
    rows = tmp_path / "rows.csv"
    df.head(3).rename({"workclass": "Workclass"}).write_csv(rows)
    assert main(["predict", str(model), str(rows)]) == 1
    assert capsys.readouterr().err.strip().endswith(
        "column(s) ['workclass'] the TabularClassifier was fitted on are not in the data; did you mean 'Workclass'? "
        "The columns are ['age', 'Workclass', 'fnlwgt', 'education', 'education-num', 'marital-status', 'occupation', "
        "'relationship', 'race', 'sex', 'capital-gain', 'capital-loss', 'hours-per-week', 'native-country', 'salary'].")
