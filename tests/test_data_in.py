"""Getting data in as users do: a pandas frame with columns the model never reads, compressed and zipped CSVs, a
folder of Parquet files, a header written ``c, x, y``, a header with no rows, and the errors of a data set that is not
there; on the real adult, Rossmann and data-set folders."""
from __future__ import annotations

import gzip
import os
import shutil
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest

import pipekit.datasets as D
from pipekit.core.errors import DataError
from pipekit.data import URLs, read_table
from pipekit.data.external import DatasetInfo
from pipekit.tabular import Categorify, FillMissing, Normalize, Tabular, TabularDataLoaders, add_datepart, process_to_parquet

PROCS = [Categorify, FillMissing, Normalize]
CATS, CONTS, Y = ["workclass", "education"], ["age", "fnlwgt"], "salary"
N = 3000  # rows of adult.csv written to the files read here


@pytest.fixture(scope="module")
def adult_csv(tmp_path_factory) -> Path:
    """The first rows of the real adult.csv, its bytes as they are (", Private", a blank occupation...)."""
    lines = (D.path("adult_sample") / "adult.csv").read_bytes().splitlines(keepends=True)[:N + 1]
    out = tmp_path_factory.mktemp("adult") / "adult.csv"
    out.write_bytes(b"".join(lines))
    return out


def _loaders(source, **kw):
    return TabularDataLoaders.from_csv(source, procs=PROCS, cat_names=CATS, cont_names=CONTS, y_names=Y,
                                       valid_idx=list(range(N - 500, N)), bs=64, seed=0, **kw)


def _same(a, b) -> None:
    assert a.classes == b.classes and a.y_vocab == b.y_vocab
    assert a.fill_missing.na_dict == pytest.approx(b.fill_missing.na_dict)
    assert a.normalize.means == pytest.approx(b.normalize.means) and a.normalize.stds == pytest.approx(b.normalize.stds)
    for c in a.frame.columns:
        np.testing.assert_allclose(a.frame[c].to_numpy(), b.frame[c].to_numpy(), rtol=1e-5, atol=1e-5, err_msg=c)


# A. a pandas frame is given to Tabular as it is: only the columns the model reads are converted
def test_from_df_converts_only_the_columns_it_reads(adult_csv, monkeypatch):
    df = pd.read_csv(adult_csv)
    df["big_id"] = [10**30 + i for i in range(len(df))]  # a 30-digit id, never read: Arrow cannot hold it as a number
    converted: list[list[str]] = []
    real = pl.from_pandas

    def spy(frame, *args, **kwargs):
        converted.append([str(c) for c in frame.columns])
        return real(frame, *args, **kwargs)

    monkeypatch.setattr(pl, "from_pandas", spy)
    dls = TabularDataLoaders.from_df(df, procs=PROCS, cat_names=CATS, cont_names=CONTS, y_names=Y,
                                     valid_idx=list(range(N - 500, N)), seed=0)
    read = {c for cols in converted for c in cols}
    assert read == {*CATS, *CONTS, Y}  # big_id and the other columns stay in pandas
    monkeypatch.undo()
    ref = TabularDataLoaders.from_df(df.drop(columns="big_id"), procs=PROCS, cat_names=CATS, cont_names=CONTS,
                                     y_names=Y, valid_idx=list(range(N - 500, N)), seed=0)
    _same(dls.tabular, ref.tabular)
    x_cat, x_cont, y = dls.one_batch()
    assert x_cat.shape[1] == 2 and x_cont.shape[1] == 2 and y.shape[0] == 64


def test_from_df_takes_the_numeric_columns_by_their_pandas_types(adult_csv):
    df = pd.read_csv(adult_csv)
    df["big_id"] = [10**30 + i for i in range(len(df))]
    df["flag"] = df["age"] > 40  # a bool column is no continuous one
    dls = TabularDataLoaders.from_df(df, procs=PROCS, cat_names=CATS, y_names=Y, valid_idx=[0, 1, 2], seed=0)
    assert dls.tabular.cont_names == ["age", "fnlwgt", "education-num", "capital-gain", "capital-loss",
                                      "hours-per-week"]


def test_an_integer_beyond_64_bits_in_a_column_read_is_named(adult_csv):
    df = pd.read_csv(adult_csv)
    df["big_id"] = [10**30 + i for i in range(len(df))]
    with pytest.raises(DataError, match=r"column\(s\) 'big_id' \(1000000000000000000000000000000 at row 0\) hold "
                                        r"integers too large for 64 bits.*astype\(float\)"):
        TabularDataLoaders.from_df(df, procs=PROCS, cat_names=[*CATS, "big_id"], cont_names=CONTS, y_names=Y,
                                   valid_idx=[0, 1], seed=0)
    with pytest.raises(DataError, match=r"column\(s\) 'big_id' \(1000000000000000000000000000000 at row 0\) hold"):
        Tabular(df, procs=PROCS, cat_names=[*CATS, "big_id"], cont_names=CONTS, y_names=Y)  # was a bare OverflowError


# B. a data set that is not there: where pipekit looked, what a folder there lacks, and how to put a copy in place
def test_a_missing_data_set_says_where_it_looked(tmp_path, monkeypatch, adult_csv):
    monkeypatch.setenv("PIPEKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("PIPEKIT_DATA", raising=False)
    with pytest.raises(FileNotFoundError, match=r"PIPEKIT_DATA is not set; the cache: .*cache/data/adult_sample is "
                                                r"missing.*extract it there, so that adult_sample/ holds \['adult.csv'\]"):
        D.path("adult_sample", download=False)
    wrong = tmp_path / "wrongdata"
    (wrong / "adult_sample").mkdir(parents=True)
    (wrong / "adult_sample" / "README").write_text("the archive was not extracted here")
    monkeypatch.setenv("PIPEKIT_DATA", str(wrong))
    with pytest.raises(FileNotFoundError, match=r"\$PIPEKIT_DATA/adult_sample: .*wrongdata/adult_sample is there but "
                                                r"lacks \['adult.csv'\]"):
        D.path("adult_sample", download=False)
    own = tmp_path / "own" / "adult_sample"  # PIPEKIT_DATA set to the data set's folder itself, a common slip
    own.mkdir(parents=True)
    shutil.copy(adult_csv, own / "adult.csv")
    monkeypatch.setenv("PIPEKIT_DATA", str(own))
    with pytest.raises(FileNotFoundError, match=r"looks like the data set's own folder: set it to the folder above"):
        D.path("adult_sample", download=False)


def test_a_failed_download_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("PIPEKIT_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("PIPEKIT_CACHE", str(tmp_path / "cache"))
    (tmp_path / "data" / "toy").mkdir(parents=True)
    url = (tmp_path / "gone" / "toy.tgz").as_uri()  # nothing at that address
    monkeypatch.setitem(D.REGISTRY, "toy", DatasetInfo("toy", (url,), ("labels.csv", "train")))
    with pytest.raises(ConnectionError, match=r"could not download toy from .*toy.tgz: .*\$PIPEKIT_DATA/toy: .*data/toy "
                                              r"is there but lacks \['labels.csv', 'train'\]; the cache: .*cache/data/toy"
                                              r" is missing. .*download .*toy.tgz and extract it there"):
        D.path("toy")


def test_an_incomplete_copy_passed_over_is_said(tmp_path, monkeypatch, adult_csv):
    import hashlib
    import tarfile

    from pipekit.data import external as ext
    from pipekit.data.external import Checksum

    data, cache = tmp_path / "data", tmp_path / "cache"
    (data / "adult_sample").mkdir(parents=True)  # an archive extracted to the wrong place: an empty folder
    monkeypatch.setenv("PIPEKIT_CACHE", str(cache))
    monkeypatch.setenv("PIPEKIT_CACHE_KEY_FILE", str(tmp_path / "cache.key"))
    # the cache's copy is one pipekit downloaded and verified (a file:// archive pinned by its sha256)
    arc = tmp_path / "adult_sample.tgz"
    with tarfile.open(arc, "w:gz") as t:
        t.add(adult_csv, arcname="adult_sample/adult.csv")
    url = arc.as_uri()
    monkeypatch.setitem(ext.REGISTRY, "adult_sample", DatasetInfo(
        "adult_sample", (url,), ("adult.csv",),
        checksums={url: Checksum(arc.stat().st_size, sha256=hashlib.sha256(arc.read_bytes()).hexdigest())}))
    ext.fetch(ext.REGISTRY["adult_sample"])
    monkeypatch.setenv("PIPEKIT_DATA", str(data))
    with pytest.warns(UserWarning, match=r"data/adult_sample lacks \['adult.csv'\] of data set 'adult_sample', so it "
                                         r"was passed over for .*cache/data/adult_sample"):
        found = D.path("adult_sample")
    assert found == cache / "data" / "adult_sample"


# C. compressed and zipped CSVs, and .txt CSVs, read as pandas.read_csv reads them
def test_gzip_zip_and_txt_csvs_read_as_the_csv(adult_csv, tmp_path):
    gz, zp, txt = tmp_path / "adult.csv.gz", tmp_path / "adult.csv.zip", tmp_path / "adult.txt"
    gz.write_bytes(gzip.compress(adult_csv.read_bytes()))
    with zipfile.ZipFile(zp, "w", zipfile.ZIP_DEFLATED) as z:
        z.write(adult_csv, "adult.csv")
        z.writestr("__MACOSX/._adult.csv", b"macOS' copy of the file's attributes")
    txt.write_bytes(adult_csv.read_bytes())
    ref_dls = _loaders(adult_csv)
    ref_tab = Tabular(adult_csv, procs=PROCS, cat_names=CATS, cont_names=CONTS, y_names=Y,
                      splits=(list(range(N - 500)), list(range(N - 500, N))))
    for f in (gz, zp, txt):
        dls = _loaders(f)
        assert dls.tabular.frame.equals(ref_dls.tabular.frame), f
        assert dls.tabular.classes["workclass"][:3] == ["#na#", "?", "Federal-gov"]  # ", Private" read as "Private"
        tab = Tabular(f, procs=PROCS, cat_names=CATS, cont_names=CONTS, y_names=Y,
                      splits=(list(range(N - 500)), list(range(N - 500, N))))
        _same(tab, ref_tab)
        assert read_table(f).equals(read_table(adult_csv))
    new = dls.test_dl(gz)  # new rows from a compressed file too
    assert len(new.dataset) == N


def test_a_compressed_csv_is_read_as_a_csv_file_is(adult_csv, tmp_path):
    lines = adult_csv.read_text().splitlines(keepends=True)
    tsv = tmp_path / "adult.tsv.gz"  # tab separated inside
    tsv.write_bytes(gzip.compress("".join(ln.replace(",", "\t") for ln in lines[:101]).encode()))
    assert read_table(tsv).shape == (100, 15)
    blank = tmp_path / "blank.csv.gz"  # a blank line is no row, and the warning names the file given
    blank.write_bytes(gzip.compress("".join(lines[:51] + ["\n", "   \n"] + lines[51:101]).encode()))
    with pytest.warns(UserWarning, match=r"blank.csv.gz: skipped 2 blank line\(s\) \(lines 52, 53\)"):
        assert read_table(blank).equals(read_table(adult_csv).head(100))
    long = tmp_path / "long.csv.gz"  # a faulty line is named, in the file given
    long.write_bytes(gzip.compress("".join(lines[:10] + ["1,2" + lines[10]] + lines[11:20]).encode()))
    with pytest.raises(DataError, match=r"long.csv.gz: line 11 has 16 fields, the header has 15"):
        read_table(long)


def test_a_damaged_or_ambiguous_archive_is_named(adult_csv, tmp_path):
    cut = tmp_path / "cut.csv.gz"
    cut.write_bytes(gzip.compress(adult_csv.read_bytes())[:20_000])
    with pytest.raises(DataError, match=r"cut.csv.gz is not a complete gzip file"):
        Tabular(cut, cat_names=CATS, cont_names=CONTS, y_names=Y)
    two = tmp_path / "two.zip"
    with zipfile.ZipFile(two, "w") as z:
        z.write(adult_csv, "train.csv")
        z.write(adult_csv, "test.csv")
    with pytest.raises(DataError, match=r"two.zip: a zip archive is read as a table when it holds one CSV, and this "
                                        r"one holds 2 files \['train.csv', 'test.csv'\]; extract it"):
        _loaders(two)
    with pytest.raises(DataError, match=r"cannot read .*adult.tar.gz' as a table; the formats read are .*\.csv\.gz"):
        (tmp_path / "adult.tar.gz").write_bytes(b"")
        Tabular(tmp_path / "adult.tar.gz", cat_names=CATS, cont_names=CONTS, y_names=Y)


# D. a folder of Parquet files, or a pattern, read as one table
def test_a_folder_of_parquet_files_is_one_table(adult_csv, tmp_path):
    whole = read_table(adult_csv)
    folder = tmp_path / "parts"
    folder.mkdir()
    for i, part in enumerate(whole.iter_slices(1000)):
        part.write_parquet(folder / f"part-{i}.parquet")
    (folder / "_SUCCESS").write_text("")  # what Spark writes beside its parts
    whole.write_parquet(tmp_path / "adult.parquet")
    kw = dict(procs=PROCS, cat_names=CATS, cont_names=CONTS, y_names=Y, splits=([*range(N - 500)], [*range(N - 500, N)]))
    ref = Tabular(tmp_path / "adult.parquet", **kw)
    for source in (folder, str(folder), f"{folder}/*.parquet"):
        tab = Tabular(source, **kw)
        assert tab.frame.equals(ref.frame) and tab.classes == ref.classes, source
    (folder / "notes.csv").write_text("a\n1\n")
    with pytest.raises(DataError, match=r"parts holds files other than Parquet \(.csv: \['notes.csv'\]; .parquet: "
                                        r"\['part-0.parquet', .*pl.scan_parquet\('.*parts/\*.parquet'\)"):
        Tabular(folder, **kw)
    (folder / "notes.csv").unlink()
    whole.head(10).drop("fnlwgt").write_parquet(folder / "part-9.parquet")
    with pytest.raises(DataError, match=r"part-9.parquet has other columns than part-0.parquet \(part-9.parquet lacks "
                                        r"\['fnlwgt'\]\)"):
        Tabular(folder, **kw)
    with pytest.raises(FileNotFoundError, match=r"matches no file"):
        Tabular(f"{folder}/*.pq", **kw)


# E. skipinitialspace drops the spaces that begin the header's names too, as pandas.read_csv does
def test_skipinitialspace_strips_the_header(adult_csv, tmp_path):
    spaced = tmp_path / "spaced.csv"
    text = adult_csv.read_text()
    header, rest = text.split("\n", 1)
    spaced.write_text(header.replace(",", ", ") + "\n" + rest)
    assert pd.read_csv(spaced, skipinitialspace=True).columns[1] == "workclass"
    dls = _loaders(spaced)
    assert dls.tabular.frame.equals(_loaders(adult_csv).tabular.frame)
    with pytest.raises(DataError, match=r"did you mean ' workclass' \(for 'workclass'\)"):  # read as written without it
        _loaders(spaced, skipinitialspace=False)
    # new rows from a file written so are read as the training file was: the header's names stripped too
    new = dls.test_dl(spaced).dataset
    assert len(new) == len(pd.read_csv(adult_csv)) and dls.tabular.new(spaced).xs.equals(dls.tabular.new(adult_csv).xs)


# F. small ones: a header without rows, URLs.path, the URLs error, dates written with the month's name
def test_a_csv_with_a_header_and_no_rows_is_named(adult_csv, tmp_path):
    header = adult_csv.read_text().split("\n", 1)[0] + "\n"
    empty, empty_gz = tmp_path / "empty.csv", tmp_path / "empty.csv.gz"
    empty.write_text(header)
    empty_gz.write_bytes(gzip.compress(header.encode()))
    for f in (empty, empty_gz):
        with pytest.raises(DataError, match=rf"{f.name} has a header but no rows"):
            _loaders(f)
        with pytest.raises(DataError, match=rf"{f.name} has a header but no rows"):
            TabularDataLoaders.from_csv(f, cat_names=CATS, cont_names=CONTS, y_names=Y, skipinitialspace=False)
    for f in (empty, empty_gz):
        with pytest.raises(DataError, match=rf"{f.name} has a header but no rows"):
            Tabular(f, cat_names=CATS, cont_names=CONTS, y_names=Y)
    with pytest.raises(DataError, match=r"from_df: the table has no rows"):
        TabularDataLoaders.from_df(pd.read_csv(empty), cat_names=CATS, cont_names=CONTS, y_names=Y)


def test_urls_path_is_the_folder_a_data_set_lives_in(tmp_path, monkeypatch):
    assert URLs.path("adult_sample") == D.path("adult_sample")
    data = Path(os.environ["PIPEKIT_DATA"])
    assert URLs.path("bluebook") == data / "bluebook"  # chapter 9's first line: where the download goes
    assert URLs.path(URLs.MNIST_TINY) == D.path("mnist_tiny")
    assert URLs.path("bluebook").ls is not None
    monkeypatch.delenv("PIPEKIT_DATA", raising=False)
    monkeypatch.setenv("PIPEKIT_CACHE", str(tmp_path / "cache"))
    assert URLs.path("bluebook") == tmp_path / "cache" / "data" / "bluebook"
    with pytest.raises(AttributeError, match=r"the other registered data sets are fashion_mnist, rossmann_sample, by "
                                             r"name: untar_data\('fashion_mnist'\)"):
        _ = URLs.PETS


def test_dates_written_with_the_month_name_get_the_format_to_pass():
    train = read_table(D.path("rossmann_sample") / "train.csv", n_rows=2000).select("Date", "Sales")
    written = train.with_columns(pl.col("Date").str.to_date().dt.strftime("%b %-d, %Y"))  # 'Jul 31, 2015'
    assert written["Date"][0] == "Jul 31, 2015"
    with pytest.raises(DataError, match=r"are not dates: 'Jul 31, 2015' at row 0.*they are dates written with the "
                                        r"month's name: pass format='%b %d, %Y'"):
        add_datepart(written, "Date")
    got = add_datepart(written, "Date", format="%b %d, %Y")
    assert got.drop("Sales").equals(add_datepart(train, "Date").drop("Sales"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pdf = add_datepart(written.to_pandas(), "Date", format="%b %d, %Y")
    assert pdf["Year"].tolist() == got["Year"].to_list()


def test_a_missing_file_is_named_by_whichever_reader_was_called(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for call in (lambda: Tabular("nope.csv", cat_names=CATS, cont_names=CONTS, y_names=Y),
                 lambda: process_to_parquet("nope.csv", tmp_path / "o.parquet", cat_names=CATS, cont_names=CONTS,
                                            y_names=Y)):
        with pytest.raises(FileNotFoundError) as e:
            call()
        # no other reader's name (process_to_parquet said 'Tabular: file ...'), and where a relative path starts
        assert str(e.value) == f"nope.csv does not exist; check the path (relative paths start from {tmp_path})"


def test_a_folder_of_parquet_files_named_with_brackets(adult_csv, tmp_path):
    """Names such as Spark's or a user's ``part[0].parquet`` are files, never patterns."""
    whole = read_table(adult_csv)
    folder = tmp_path / "parts[2024]"
    folder.mkdir()
    for i, part in enumerate(whole.iter_slices(10_000)):
        part.write_parquet(folder / f"part[{i}].parquet")
    whole.write_parquet(tmp_path / "adult.parquet")
    kw = dict(procs=PROCS, cat_names=CATS, cont_names=CONTS, y_names=Y, splits=None)
    ref = Tabular(tmp_path / "adult.parquet", **kw)
    tab = Tabular(folder, **kw)
    assert len(tab.frame) == N and tab.frame.equals(ref.frame)
