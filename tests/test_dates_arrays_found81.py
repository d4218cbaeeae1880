"""Numeric dates in mixed layouts, time-zone-aware month ends, pandas categories of numbers, and new array items
cast to a model's dtype (lossy casts refused, bfloat16 read)."""

import warnings

import numpy as np
import pandas as pd
import polars as pl
import pytest
import torch

from pipekit.core.errors import DataError
from pipekit.data import DataLoaders, TensorStore
from pipekit.data.dates import numeric_date_format, numeric_date_layouts
from pipekit.data.splitters import TimeSplitter
from pipekit.datasets import path
from pipekit.tabular.dates import add_datepart, cont_cat_split


@pytest.fixture(scope="module")
def rossmann() -> pd.DataFrame:
    return pd.read_csv(path("rossmann_sample") / "train.csv", nrows=3000, dtype={"StateHoliday": str})


# ------------------------------------------------------------------ numeric dates written in several layouts
@pytest.mark.parametrize("values", [["01/02/2015 10:00", "03/04/2015 10:00:30"],  # time precision
                                    ["01/02/2015", "03-04-2015"],  # separators
                                    ["01/02/2015", "03.04.2015 10:00"]])
def test_mixed_layouts_reading_both_ways_are_refused(values):
    with pytest.raises(DataError, match=r"column 't' is ambiguous.*'01/02/2015.*format="):
        add_datepart(pd.DataFrame({"t": values}), "t", time=True)
    with pytest.raises(DataError, match="ambiguous"):
        numeric_date_format(pl.Series(values), "t", "add_datepart")


def test_mixed_year_widths_are_refused():
    with pytest.raises(DataError, match=r"column 't' writes years with 4 and with 2 digits.*'01/02/2015'.*'03/04/15'"
                                        r".*format="):
        add_datepart(pd.DataFrame({"t": ["01/02/2015", "03/04/15"]}), "t")
    with pytest.raises(DataError, match="4 and with 2 digits"):  # even when the order is settled
        add_datepart(pl.DataFrame({"t": ["13/02/2015", "03/04/15"]}), "t")


@pytest.mark.parametrize("values, order", [(["13/02/2015 10:00", "03/04/2015 10:00:30"], "day"),
                                           (["02/13/2015 10:00", "04/03/2015 10:00:30"], "month"),
                                           (["13/02/2015", "03-04-2015"], "day"),
                                           (["02/13/2015", "04.03.2015 10:00"], "month")])
def test_mixed_layouts_read_in_the_order_they_settle(values, order):
    out = add_datepart(pl.DataFrame({"t": values}), "t", time=True)
    assert out.select("tYear", "tMonth", "tDay").rows() == [(2015, 2, 13), (2015, 4, 3)]
    assert numeric_date_format(pl.Series(values), "t", "x") is None  # no single layout
    layouts = numeric_date_layouts(pl.Series(values), "t", "x")
    assert layouts is not None and all(f.startswith("%d" if order == "day" else "%m") for f in layouts)


def test_one_layout_columns_still_read(rossmann):
    day_first = pl.Series(pd.to_datetime(rossmann["Date"]).dt.strftime("%d/%m/%Y").tolist())
    assert numeric_date_format(day_first, "Date", "x") == "%d/%m/%Y"
    out = add_datepart(pl.DataFrame({"Date": day_first}), "Date")
    assert out["Year"].to_list() == pd.to_datetime(rossmann["Date"]).dt.year.tolist()
    assert out["Day"].to_list() == pd.to_datetime(rossmann["Date"]).dt.day.tolist()
    # TimeSplitter reads the same layouts, and refuses the same ambiguity
    with pytest.raises(DataError, match="ambiguous"):
        TimeSplitter("t", cutoff="2015-03-01").split(pl.DataFrame({"t": ["01/02/2015", "03-04-2015"]}))


# ------------------------------------------------------------------ month ends of time-zone-aware datetimes
def test_month_end_on_a_dst_change_day():
    t = pd.Series(pd.to_datetime(["2024-03-31 02:30", "2024-03-30 02:30", "2021-10-31 02:30", "2024-12-31 02:30",
                                  "2024-06-30 23:00"]))
    aware = pd.DataFrame({"t": t.dt.tz_localize("Europe/Berlin", nonexistent="shift_forward", ambiguous=True)})
    for frame in (aware, pl.from_pandas(aware)):
        out = add_datepart(frame, "t", time=True)
        assert list(out["tIs_month_end"]) == [True, False, True, True, True]
        assert list(out["tIs_quarter_end"]) == [True, False, False, True, True]
        assert list(out["tIs_year_end"]) == [False, False, False, True, False]


def test_estimator_fits_hourly_berlin_dates_across_march_end():
    from pipekit.sklearn import TabularRegressor
    when = pd.date_range("2024-03-01 01:30", periods=40, freq="D", tz="UTC").tz_convert("Europe/Berlin")
    model = TabularRegressor(random_state=0).fit(pd.DataFrame({"when": when, "x": np.arange(40.0)}), np.arange(40.0))
    assert len(model.predict(pd.DataFrame({"when": when[:3], "x": [1.0, 2.0, 3.0]}))) == 3


# ------------------------------------------------------------------ pandas categories of numbers
def test_pandas_category_of_numbers_is_categorical(rossmann):
    df = rossmann.drop(columns=["Date"])
    df["Store"] = df["Store"].astype("category")
    df["StoreOrd"] = pd.Categorical(df["Store"].astype(int), ordered=True)
    df["Price"] = pd.Categorical(np.round(np.linspace(1, 50, len(df)), 1))  # categories of floats
    cont, cat = cont_cat_split(df, max_card=20, dep_var="Sales")
    assert {"Store", "StoreOrd", "Price"} <= set(cat) and not {"Store", "StoreOrd", "Price"} & set(cont)
    assert "Customers" in cont
    # the same numbers, not made categories, stay continuous
    cont, _ = cont_cat_split(rossmann.drop(columns=["Date"]), max_card=20, dep_var="Sales")
    assert "Store" in cont


# ------------------------------------------------------------------ new items cast to the model's dtype
def _loaders(x, y):
    return DataLoaders.from_stores([TensorStore(x[:16]), TensorStore(y[:16])], [TensorStore(x[16:]),
                                                                                TensorStore(y[16:])],
                                   bs=4, seed=0, device="cpu")


@pytest.fixture(scope="module")
def uint8_dls():
    x = np.random.default_rng(0).integers(0, 256, (20, 4, 4, 3), dtype=np.uint8)
    return _loaders(x, np.arange(20) % 2), x


@pytest.mark.parametrize("bad, shown", [(-1, "-1.0"), (300.0, "300.0"), (np.nan, "nan"), (2.5, "2.5")])
def test_lossy_casts_are_refused(uint8_dls, bad, shown):
    dls, x = uint8_dls
    item = x[1].astype("float64")
    item[2, 1, 0] = bad
    with pytest.raises(DataError, match=rf"item 1, input 0: value {shown} at \(2, 1, 0\).*uint8.*0\.\.255"):
        dls.test_dl([x[0], item])


def test_scaled_images_are_told_to_scale_back(uint8_dls):
    dls, x = uint8_dls
    with pytest.raises(DataError, match=r"item 0.*scaled to 0\.\.1: scale them back"):
        dls.test_dl([x[0] / 255.0])


def test_integer_model_refuses_fractions_and_keeps_lossless_casts(uint8_dls):
    dls, x = uint8_dls
    assert dls.test_dl([x[0].astype("float32"), x[1].astype("int64")]).one_batch()[0].tolist() == \
        torch.from_numpy(x[:2]).tolist()  # whole numbers in range read as they were
    xi = np.arange(60).reshape(20, 3)
    ints = _loaders(xi, np.arange(20) % 2)
    with pytest.raises(DataError, match=r"value 0\.7 .*int64"):
        ints.test_dl([np.array([0.7, 1.9, 2.0])])
    assert ints.test_dl([np.array([0.0, 1.0, 2.0])]).one_batch()[0].tolist() == [[0, 1, 2]]


def test_bfloat16_stores_and_items():
    x = torch.randn(20, 3, dtype=torch.bfloat16)
    y = torch.arange(20) % 2
    dls = _loaders(x, y)
    assert dls.one_batch()[0].dtype == torch.bfloat16
    b = dls.test_dl([x[0], x[1]]).one_batch()[0]
    assert b.dtype == torch.bfloat16 and torch.equal(b, x[:2])
    f32 = _loaders(x.float(), y)  # a float32 model given bfloat16 features
    b = f32.test_dl(x[:2]).one_batch()[0]
    assert b.dtype == torch.float32 and torch.equal(b, x[:2].float())


@pytest.mark.parametrize("items, dtype, shown, allowed", [
    (np.array([1, 300, 2]), "uint8", "300", r"0\.\.255"),  # an integer cast would wrap (300 -> 44)
    (np.array([1, -1, 2]), "uint8", "-1", r"0\.\.255"),
    (np.array([1, 2 ** 63 - 1, 2]), "int32", str(2 ** 63 - 1), "in range"),
    (np.array([1, 2 ** 64 - 1, 2], dtype="uint64"), "int64", str(2 ** 64 - 1), "in range"),  # -1 as int64
    (np.array([0, 2, 1]), "bool", "2", "0 or 1"),
    (np.array([0.0, np.nan, 1.0]), "bool", "nan", "0 or 1"),
])
def test_integer_and_boolean_models_refuse_what_a_cast_changes(items, dtype, shown, allowed):
    dls = _loaders(np.zeros((20, 3), dtype=dtype), np.arange(20) % 2)
    with pytest.raises(DataError, match=rf"item 0, input 0: value {shown} at \(1,\) would change when cast to "
                                        rf"{dtype}: the model was trained on {dtype} values \([^)]*{allowed}\)"):
        dls.test_dl([items])


def test_integer_and_boolean_models_keep_what_a_cast_keeps(uint8_dls):
    dls, x = uint8_dls
    got = dls.test_dl([x[0].astype("int64"), x[1].astype("uint16")]).one_batch()[0]
    assert got.dtype == torch.uint8 and torch.equal(got, torch.from_numpy(x[:2]))
    ints = _loaders(np.arange(60, dtype=np.int64).reshape(20, 3), np.arange(20) % 2)
    big = np.array([2 ** 63 - 1, 0, 5], dtype="uint64")  # in range of int64
    assert ints.test_dl([big, np.array([True, False, True])]).one_batch()[0].tolist() == [[2 ** 63 - 1, 0, 5],
                                                                                          [1, 0, 1]]
    flags = _loaders(np.arange(60).reshape(20, 3) % 2 == 0, np.arange(20) % 2)
    assert flags.test_dl([np.array([0, 1, 1]), np.array([1.0, 0.0, -0.0])]).one_batch()[0].tolist() == \
        [[False, True, True], [True, False, False]]


def test_float16_models_refuse_values_that_would_become_infinite(rossmann):
    sales = rossmann["Sales"].to_numpy(dtype="float64")[:3]  # a few thousand each: float16 holds them
    x = np.random.default_rng(0).random((20, 3)).astype("float16")
    dls = _loaders(x, np.arange(20) % 2)
    assert dls.test_dl([sales]).one_batch()[0].tolist() == [[float(np.float16(v)) for v in sales]]
    big = sales * 100  # hundreds of thousands: past float16's largest, 65504
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # refused with a DataError, not NumPy's overflow warning
        with pytest.raises(DataError, match=rf"item 0, input 0: value {float(big[0])!r} at \(0,\) would change when cast to "
                                            r"float16: the model was trained on float16 values \(numbers within "
                                            r"\+-65504\)"):
            dls.test_dl([big])
        with pytest.raises(DataError, match=r"value 70000 at \(2,\) .*float16"):
            dls.test_dl([np.array([1, 2, 70000], dtype="int32")])
    # the items' own infinities and NaNs are given as they are
    own = dls.test_dl([np.array([np.inf, np.nan, -np.inf])]).one_batch()[0]
    assert torch.isinf(own[0, 0]) and torch.isnan(own[0, 1]) and own[0, 2] == -np.inf


# ------------------------------------------------------------------ one reader of text dates in several layouts
def _mixed_layouts(rossmann: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """The sample's dates written day first in two layouts (every other row with a time of day), and the datetimes
    they stand for."""
    when = pd.to_datetime(rossmann["Date"]) + pd.to_timedelta(np.arange(len(rossmann)) % 2 * 10, unit="h")
    text = np.where(np.arange(len(rossmann)) % 2 == 0, when.dt.strftime("%d/%m/%Y"), when.dt.strftime("%d-%m-%Y %H:%M"))
    return pd.Series(text, name="Date"), when


def test_text_times_and_time_splitter_read_mixed_layouts_as_add_datepart(rossmann):
    from pipekit.data.splitters import text_times
    text, when = _mixed_layouts(rossmann)
    assert text.str.contains("-").any() and text.str.contains("/").any()
    got = text_times(pl.Series(text), "Date", "TimeSplitter")
    assert got.to_list() == list(when.dt.to_pydatetime())
    parts = add_datepart(pl.DataFrame({"Date": text}), "Date", time=True)
    assert parts["Day"].to_list() == got.dt.day().to_list() and parts["Hour"].to_list() == got.dt.hour().to_list()
    cutoff = when.sort_values().iloc[len(when) // 2]
    train, valid = TimeSplitter("Date", cutoff=str(cutoff.date())).split(pl.DataFrame({"Date": text}))
    assert set(valid) == set(np.flatnonzero((when >= cutoff.normalize()).to_numpy()))
    assert len(train) + len(valid) == len(text) and len(train) and len(valid)


@pytest.mark.filterwarnings("ignore:Categorify")  # the later rows' month start flag was never seen at fit
def test_estimator_keeps_the_order_of_mixed_layouts_for_later_rows(rossmann, tmp_path):
    import pipekit
    from pipekit.sklearn import TabularRegressor
    text, _ = _mixed_layouts(rossmann)
    X = pd.DataFrame({"Store": rossmann["Store"], "Date": text})
    reg = TabularRegressor("rf", date_names=["Date"], random_state=0).fit(X, rossmann["Sales"])
    assert reg.date_formats_ == {"Date": ["%d/%m/%Y", "%d-%m-%Y %H:%M"]}
    # later rows in one layout, reading both ways on their own: read day first, as the training rows settled
    later = pd.DataFrame({"Store": [1, 2], "Date": ["05/03/2015", "01-02-2015 10:00"]})
    inputs = reg.process(later).inputs
    assert inputs["Date_Day"].to_list() == [5, 1] and inputs["Date_Month"].to_list() == [3, 2]
    pipekit.save(reg, tmp_path / "reg.pipekit")
    back = pipekit.load(tmp_path / "reg.pipekit")
    assert back.date_formats_ == reg.date_formats_
    assert np.allclose(back.predict(later), reg.predict(later), rtol=1e-12)
