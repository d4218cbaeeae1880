"""Categorify on float categorical columns stored as float32 (``df_shrink``, a shrunk Parquet file, a Polars
``Float32`` frame): values float32 cannot hold exactly (0.1, 0.3) are their training categories, in the training rows,
in new rows and in ``test_dl``, whichever of float32 and float64 the training rows and the new rows are."""

from __future__ import annotations

import warnings

import numpy as np
import polars as pl
import pytest

import pipekit.datasets as D
from pipekit.core.errors import DataError, FieldError
from pipekit.data import RandomSplitter
from pipekit.tabular import Tabular
from pipekit.tabular.all import df_shrink
from pipekit.core.component import Component
from pipekit.data import CategoryBlock
from pipekit.tabular.procs import NA_TOKEN, Categorify, ColumnNames


@pytest.fixture(scope="module")
def adult():
    """800 adult rows with ``grade``, education-num / 10 (0.1 ... 1.6, most of them no float32 exactly), as float32
    and as float64."""
    df = pl.read_csv(D.path("adult_sample") / "adult.csv").head(800)
    return df.with_columns(grade64=pl.col("education-num") / 10,
                           grade=(pl.col("education-num") / 10).cast(pl.Float32))


def _table(df: pl.DataFrame | object, grade: str = "grade") -> Tabular:
    return Tabular(df, cat_names=["workclass", grade], cont_names=["age"], y_names="salary",
                   splits=RandomSplitter(0.2, seed=1))


def _unseen_warnings(record: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in record if "never seen" in str(w.message)]


def _fit(values: list, dtype: pl.DataType) -> Categorify:
    cat = Categorify()
    cat.setup(pl.DataFrame({"v": pl.Series(values, dtype=dtype)}), pl.lit(True), ColumnNames(["v"], []))
    return cat


def _codes(cat: Categorify, values: list, dtype: pl.DataType) -> list[int]:
    frame = pl.DataFrame({"v": pl.Series(values, dtype=dtype)})
    return frame.select(cat.expressions(frame.schema, eager=True)).to_series().to_list()


def test_float32_column_of_adult_codes_training_rows_new_rows_and_test_dl(adult):
    df = adult.drop("grade64")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        to = _table(df)
        classes = list(to.classes["grade"])
        expected = sorted({f"{v / 10}" for v in df["education-num"].drop_nulls().to_list()}, key=float)
        assert classes == [NA_TOKEN, *expected]
        want = [0 if v is None else classes.index(str(v / 10)) for v in df["education-num"].to_list()]
        assert 0 < want.count(0) == df["grade"].null_count()
        coded = to.train.xs["grade"].to_list() + to.valid.xs["grade"].to_list()
        assert sorted(coded) == sorted(want)  # the training and validation rows hold their own categories
        assert to.new(df).xs["grade"].to_list() == want
        assert to.dataloaders(bs=64).test_dl(df).xs["grade"].to_list() == want
    assert _unseen_warnings(record) == []


def test_df_shrink_pandas_float32_column_codes_as_its_float64_original(adult):
    pdf = adult.drop("grade").rename({"grade64": "grade"}).to_pandas()
    shrunk = df_shrink(pdf)
    assert str(shrunk["grade"].dtype) == "float32"
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        ref, to = _table(pdf), _table(shrunk)
        # the same categories, written as float32 writes them ('0.3' for the float64 0.30000000000000004)
        assert [np.float32(v) for v in to.classes["grade"][1:]] == [np.float32(v) for v in ref.classes["grade"][1:]]
        assert "0.3" in to.classes["grade"] and "0.30000000000000004" in ref.classes["grade"]
        assert to.train.xs["grade"].to_list() == ref.train.xs["grade"].to_list()
        assert 0 not in to.new(shrunk.dropna(subset=["grade"])).xs["grade"].to_list()
    assert _unseen_warnings(record) == []


def test_float64_training_and_float32_new_rows_are_the_same_categories(adult):
    to = _table(adult.drop("grade"), "grade64")
    want = to.new(adult).xs["grade64"].to_list()
    assert want.count(0) == adult["grade64"].null_count()
    rows32 = adult.with_columns(pl.col("grade64").cast(pl.Float32))
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        assert to.new(rows32).xs["grade64"].to_list() == want
        assert to.dataloaders(bs=64).test_dl(rows32).xs["grade64"].to_list() == want
    assert _unseen_warnings(record) == []
    # a user's own float32 values looked up as encoding looks them up
    classes = list(to.classes["grade64"])
    assert to.classes["grade64"].o2i[np.float32(0.4)] == classes.index("0.4")
    assert Categorify.lookup("grade64", to.classes["grade64"], [np.float32(0.8), np.float32(0.4), None]) == [
        classes.index("0.8"), classes.index("0.4"), None]


def test_float32_training_and_float64_new_rows_are_the_same_categories(adult):
    to = _table(adult.drop("grade64"))
    want = to.new(adult).xs["grade"].to_list()
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        # the values as float64 (0.1 is '0.1'), and the float32 values made float64 (0.10000000149011612)
        assert to.new(adult.with_columns(grade=pl.col("grade64"))).xs["grade"].to_list() == want
        assert to.new(adult.with_columns(pl.col("grade").cast(pl.Float64))).xs["grade"].to_list() == want
    assert _unseen_warnings(record) == []


def test_polars_float32_validation_rows_are_not_warned_as_unseen():
    df = pl.DataFrame({"grade": [0.1, 0.2, 0.3, 1.5, 2.7] * 40, "x": np.arange(200.0), "y": np.arange(200.0)}) \
        .with_columns(pl.col("grade").cast(pl.Float32))
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        to = Tabular(df, cat_names=["grade"], cont_names=["x"], y_names="y", splits=(list(range(150)),
                                                                                     list(range(150, 200))))
    assert _unseen_warnings(record) == []
    assert to.train.xs["grade"].head(5).to_list() == [1, 2, 3, 4, 5]
    assert to.valid.xs["grade"].head(5).to_list() == [1, 2, 3, 4, 5]
    cat = _fit([0.1, 0.2, 0.3], pl.Float32)
    assert cat.unseen(pl.DataFrame({"v": pl.Series([0.1, 0.3, 0.7, None], dtype=pl.Float32)})) == {"v": 1}


@pytest.mark.parametrize("learned", [pl.Float32, pl.Float64])
@pytest.mark.parametrize("given", [pl.Float32, pl.Float64])
def test_missing_zero_and_large_values(learned, given):
    cat = _fit([0.1, -2.7, 0.0, 123456789.0, 3.0e38, None, float("nan")], learned)
    vocab = cat.classes_["v"]
    big = "123456790.0" if learned == pl.Float32 else "123456789.0"  # float32 holds 123456789 as 123456792
    assert vocab[:5] == [NA_TOKEN, "-2.7", "0.0", "0.1", big] and np.float32(vocab[5]) == np.float32(3e38)
    # the large value as the rows hold it: 123456789 as float32 is 123456792, also when made float64 from it
    stored = float(np.float32(123456789.0)) if learned == pl.Float32 or given == pl.Float32 else 123456789.0
    top = float(np.float32(3e38)) if learned == pl.Float32 and given == pl.Float64 else 3e38
    codes = _codes(cat, [0.1, -2.7, 0.0, -0.0, stored, top, None, float("nan"), 0.7], given)
    assert codes == [3, 1, 2, 2, 4, 5, 0, 0, 0]


def test_precise_float32_matching_rules():
    # float64 entries one float32 value: the entry written as that float32 is written is its category
    cat = _fit([0.10000000000000002, 0.1, 2.5], pl.Float64)
    assert _codes(cat, [0.1, 2.5], pl.Float32) == [cat.classes_["v"].index("0.1"), cat.classes_["v"].index("2.5")]
    # entries float32 cannot hold are no float32 value: inf and 0 are not 1e300 and 1e-50
    cat = _fit([1e300, 1e-50, 1.0], pl.Float64)
    assert _codes(cat, [float("inf"), 0.0, 1.0], pl.Float32) == [0, 0, cat.classes_["v"].index("1.0")]
    # classes learned from float64 values match a float64 value exactly: 0.10000000000000002 is not '0.1'
    cat = _fit([123456789.0, 0.1], pl.Float64)
    assert _codes(cat, [123456792.0, 0.1, 0.10000000000000002, 0.2], pl.Float64) == [0, 1, 0, 0]
    assert _codes(cat, [123456792.0], pl.Float32) == [2]
    # integers given for a float column learned as float32
    cat = _fit([1.0, 2.0, 0.5], pl.Float32)
    assert _codes(cat, [1, 2, 3, None], pl.Int64) == [2, 3, 0, 0]
    assert cat.classes_["v"].o2i[2] == 3 and cat.classes_["v"].o2i[np.float32(0.5)] == 1


def test_unseen_float64_values_near_a_float64_category_stay_unseen():
    cat = _fit([0.1, 5.0, 1234567.1, 48.8566, 2.3522], pl.Float64)
    near = [0.100000001, 5.0000001, 1234567.15, 48.85660001, 2.35220002, 0.10000000000000002]
    assert _codes(cat, near, pl.Float64) == [0] * 6
    assert cat.unseen(pl.DataFrame({"v": near})) == {"v": 6}
    assert Categorify.lookup("v", cat.classes_["v"], near) == [None] * 6
    with pytest.raises(KeyError, match="never seen"):
        cat.classes_["v"].o2i[0.100000001]
    # classes learned from text that reads as numbers: a float64 value is matched exactly too
    text = _fit(["0.1", "0.5", "1e-05"], pl.String)
    assert _codes(text, [0.1, 0.5, 0.100000001, 1e-05, 1.0000001e-05], pl.Float64) == [1, 2, 0, 3, 0]
    # classes learned from float32 values: a float64 value is also looked up by its float32, and only those
    cat32 = _fit([0.1, 1.2, 2.5], pl.Float32)
    assert cat32.floats_ == {"v": "Float32"} and cat.floats_ == {"v": "Float64"} and text.floats_ == {}
    assert _codes(cat32, [0.1, float(np.float32(0.1)), 1.2000000000000002, 2.5, 0.7], pl.Float64) == [1, 1, 2, 3, 0]


def test_an_unseen_float_target_class_near_a_training_class_is_refused():
    n = 60
    y = [0.1, 0.5, 2.25] * (n // 3)
    y[-1] = 0.100000001  # a validation-row class no training row holds
    df = pl.DataFrame({"a": ["x", "y", "z"] * (n // 3), "x": np.arange(float(n)), "y": y})
    with pytest.raises(DataError, match="0.100000001 at row 59 that is not among the training classes"):
        Tabular(df, cat_names=["a"], cont_names=["x"], y_names="y", y_block=CategoryBlock(),
                splits=(list(range(n - 6)), list(range(n - 6, n))))
    to = Tabular(df.head(n - 1), cat_names=["a"], cont_names=["x"], y_names="y", y_block=CategoryBlock(),
                 splits=(list(range(n - 6)), list(range(n - 6, n - 1))))
    assert to.processor.y_float_ == "Float64"
    with pytest.raises(DataError, match="0.500000001 at row 0 that is not among the training classes"):
        to.processor.transform(pl.DataFrame({"a": ["x"], "x": [1.0], "y": [0.500000001]}), with_labels=True)
    assert to.new(pl.DataFrame({"a": ["x"], "x": [1.0], "y": [0.5]})).ys["y"].to_list() == [1]
    # classes learned from a Float32 column: float64 targets are looked up by their float32 too
    to32 = Tabular(df.head(n - 1).with_columns(pl.col("y").cast(pl.Float32)), cat_names=["a"], cont_names=["x"],
                   y_names="y", y_block=CategoryBlock(), splits=(list(range(n - 6)), list(range(n - 6, n - 1))))
    assert to32.processor.y_float_ == "Float32"
    assert to32.new(pl.DataFrame({"a": ["x", "y"], "x": [1.0, 2.0], "y": [0.1, float(np.float32(0.1))]})) \
        .ys["y"].to_list() == [0, 0]


def _without_floats(record: dict) -> dict:
    """A processing's record as pipekit wrote it before Categorify kept the float types of its columns."""
    for proc in record["params"]["procs"]:
        proc["state"].pop("floats_", None)
    record["state"].pop("y_float_", None)
    return record


def test_a_processing_saved_before_float_types_were_kept_matches_floats_exactly():
    df = pl.DataFrame({"g64": [0.1, 0.2, 0.3, 1.5, 2.7, 0.30000000000000004] * 15, "x": np.arange(90.0),
                       "y": [0.5, 1.5, 2.5] * 30}).with_columns(g32=pl.col("g64").cast(pl.Float32))
    to = Tabular(df, cat_names=["g64", "g32"], cont_names=["x"], y_names="y", y_block=CategoryBlock(),
                 splits=(list(range(80)), list(range(80, 90))))
    cats = [p for p in to.processor.procs if isinstance(p, Categorify)][0]
    assert cats.floats_ == {"g64": "Float64", "g32": "Float32"}
    record = to.processor.to_record()
    assert record["state"]["y_float_"] == "Float64"
    old = Component.from_record(_without_floats(record))
    assert old.y_float_ is None  # what a record without it means: float classes matched exactly
    assert [p for p in old.procs if isinstance(p, Categorify)][0].floats_ == {}
    new = pl.DataFrame({"g64": [0.1, 0.30000000000000004, 0.300000001, 1.5, 0.10000000149011612],
                        "x": [1.0] * 5, "y": [0.5] * 5}).with_columns(g32=pl.col("g64").cast(pl.Float32))
    g64, g32 = list(to.classes["g64"]), list(to.classes["g32"])
    # fitted now: the Float32 column's values are its categories, in training rows and new rows alike
    assert to.train.xs["g32"].head(6).to_list() == [1, 2, 3, 4, 5, 3]
    fitted = to.processor.transform(new, with_labels=True)
    assert fitted["g32"].to_list() == [g32.index("0.1"), 3, 3, 4, g32.index("0.1")]
    assert fitted["g64"].to_list() == [1, g64.index("0.30000000000000004"), 0, g64.index("1.5"), 0]
    # saved before: float values are matched exactly in float64, as that processing coded its training rows (a
    # float32 0.1 was #na# there), so no new row is coded as a category its model never trained
    codes = new.select(*[p for p in old.procs if isinstance(p, Categorify)][0].expressions(new.schema, eager=True))
    assert codes["g32"].to_list() == [0, 0, 0, g32.index("1.5"), 0]
    assert codes["g64"].to_list() == [1, g64.index("0.30000000000000004"), 0, g64.index("1.5"), 0]
    rows32 = new.with_columns(pl.col("g64").cast(pl.Float32))
    assert rows32.select(*[p for p in old.procs if isinstance(p, Categorify)][0].expressions(
        rows32.schema, eager=True))["g64"].to_list() == [0, 0, 0, g64.index("1.5"), 0]


def _float_target(dtype: pl.DataType) -> Tabular:
    n = 60
    df = pl.DataFrame({"a": ["x", "y", "z"] * (n // 3), "x": np.arange(float(n)), "y": [0.1, 0.5, 2.25] * (n // 3)})
    return Tabular(df.with_columns(pl.col("y").cast(dtype)), cat_names=["a"], cont_names=["x"], y_names="y",
                   y_block=CategoryBlock(), splits=(list(range(54)), list(range(54, n))))


def _target_codes(proc, values: list, dtype: pl.DataType) -> list[int]:
    rows = pl.DataFrame({"a": ["x"] * len(values), "x": [1.0] * len(values), "y": pl.Series(values, dtype=dtype)})
    return proc.transform(rows, with_labels=True)["y"].to_list()


def test_a_saved_float_target_keeps_the_float_type_its_classes_were_learned_from():
    import copy
    import pickle

    to32, to64 = _float_target(pl.Float32), _float_target(pl.Float64)
    assert (to32.processor.y_float_, to64.processor.y_float_) == ("Float32", "Float64")
    assert _float_target(pl.String).processor.y_float_ is None
    for proc in (to32.processor, to64.processor):
        loaded = Component.from_record(proc.to_record())
        assert loaded.y_float_ == proc.y_float_
        for each in (loaded, copy.deepcopy(loaded), pickle.loads(pickle.dumps(loaded))):
            # float64 targets of classes learned from Float32 values are also looked up by their float32
            assert _target_codes(each, [0.1, float(np.float32(0.1)), 2.25], pl.Float64) == [0, 0, 2] \
                if proc is to32.processor else _target_codes(each, [0.1, 2.25], pl.Float64) == [0, 2]
            assert _target_codes(each, [0.1, 0.5], pl.Float32) == [0, 1]  # a Float32 column in its own type
    with pytest.raises(DataError, match="not among the training classes"):
        _target_codes(Component.from_record(to64.processor.to_record()), [float(np.float32(0.1))], pl.Float64)
    record = to32.processor.to_record()
    record["state"]["y_float_"] = "float32"
    with pytest.raises(FieldError, match="state.y_float_"):
        Component.from_record(record)


def test_a_float_target_saved_before_its_float_type_was_kept_matches_exactly():
    record = _float_target(pl.Float64).processor.to_record()
    record["state"].pop("y_float_")
    old = Component.from_record(record)
    assert old.y_float_ is None
    assert _target_codes(old, [0.1, 2.25], pl.Float64) == [0, 2]
    # float classes matched exactly in float64, as that processing coded its training targets: a Float32 0.1 is
    # 0.10000000149011612, no training class
    assert _target_codes(old, [0.5, 2.25], pl.Float32) == [1, 2]
    with pytest.raises(DataError, match="not among the training classes"):
        _target_codes(old, [0.1], pl.Float32)


def test_float_classes_keep_the_float_type_they_were_learned_from_in_copies():
    import copy
    import pickle

    cat = _fit([0.1, 1.2, 2.5], pl.Float32)
    vocab = cat.classes_["v"]
    for each in (copy.copy(vocab), copy.deepcopy(vocab), pickle.loads(pickle.dumps(vocab))):
        assert getattr(each, "learned_float", None) == "Float32"
        assert each.o2i[1.2000000000000002] == vocab.index("1.2")  # looked up by its float32, as the original
