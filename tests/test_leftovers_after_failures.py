"""What a failed or interrupted write leaves behind: process_to_parquet keeps the previous output whole when a run
fails part-way, and clean_stale_temps removes the empty entry folder an interrupted image-cache build leaves."""
from __future__ import annotations

import errno
import os
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

import pipekit
from pipekit.data.cache import clean_stale_temps, temp_name
from pipekit.tabular import Tabular
from pipekit.tabular.stream import process_to_parquet
from pipekit.vision.cache import build_image_store
from pipekit.vision import Resize

DATA = Path(os.environ.get("PIPEKIT_DATA", "/nonexistent"))
ROSSMANN = DATA / "rossmann_sample" / "train.csv"
MNIST = DATA / "mnist_tiny"
LONG_AGO = 3600  # seconds: an entry folder untouched this long is no live build's (its grace is a minute)
NAMES = dict(cat_names=["Store", "DayOfWeek", "StateHoliday"], cont_names=["Customers", "Promo", "SchoolHoliday"],
             y_names="Sales", valid_pct=0.1)


@pytest.fixture(scope="module")
def rossmann() -> pl.DataFrame:
    return pl.read_csv(ROSSMANN, infer_schema_length=100_000).head(20_000)


def _listing(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def _fail_midway(error: BaseException):
    """A LazyFrame sink that writes the start of a Parquet file at its path, then fails as a full disk or Ctrl-C does."""

    def sink(self: pl.LazyFrame, path: object, *args: object, **kwargs: object) -> None:
        Path(os.fspath(path)).write_bytes(b"PAR1" + b"\0" * 4096)  # type: ignore[arg-type]
        raise error

    return sink


@pytest.mark.parametrize("error", [
    OSError(errno.ENOSPC, "No space left on device"),
    pl.exceptions.ComputeError("parquet: File out of specification: underlying IO error: No space left on device "
                               "(os error 28)"),  # as Polars reports a full disk
    KeyboardInterrupt(),
], ids=["oserror", "polars", "ctrl-c"])
def test_failed_run_keeps_previous_output(tmp_path, monkeypatch, rossmann, error):
    out = tmp_path / "out" / "r.parquet"
    process_to_parquet(rossmann.lazy(), out, **NAMES)
    before, table = _listing(out.parent), pl.read_parquet(out)
    assert sorted(before) == ["r.parquet", "r.pipekit"]

    monkeypatch.setattr(pl.LazyFrame, "sink_parquet", _fail_midway(error))
    with pytest.raises(type(error) if isinstance(error, KeyboardInterrupt) else OSError) as caught:
        process_to_parquet(rossmann.head(5_000).lazy(), out, **NAMES)
    monkeypatch.undo()
    if not isinstance(error, KeyboardInterrupt):  # a full disk is said of the output asked for, with the fix
        assert caught.value.errno == errno.ENOSPC
        assert str(out) in str(caught.value) and "No space left on device" in str(caught.value)
        assert "free space there" in str(caught.value)

    # no partial file or staging folder; the previous table and its processing as they were, and still read together
    assert _listing(out.parent) == before
    assert pl.read_parquet(out).equals(table)
    assert Tabular.load(out).processor.cat_names_ == pipekit.load(out.with_suffix(".pipekit")).cat_names_


def test_failed_csv_run_keeps_previous_output(tmp_path, monkeypatch):
    """A CSV source is staged as Parquet first; a full disk while the output is written leaves neither the staged
    files nor a partial output, and the previous output whole."""
    out = tmp_path / "r.parquet"
    process_to_parquet(ROSSMANN, out, **NAMES)
    before = _listing(tmp_path)
    real, failing = pl.LazyFrame.sink_parquet, _fail_midway(OSError(errno.ENOSPC, "No space left on device"))

    def sink(self: pl.LazyFrame, path: object, *args: object, **kwargs: object) -> None:
        staging = Path(os.fspath(path)).name.startswith("staged")  # type: ignore[arg-type]
        (real if staging else failing)(self, path, *args, **kwargs)  # type: ignore[operator]

    monkeypatch.setattr(pl.LazyFrame, "sink_parquet", sink)
    with pytest.raises(OSError, match="No space left on device") as caught:
        process_to_parquet(ROSSMANN, out, **NAMES)
    monkeypatch.undo()
    assert str(out) in str(caught.value)
    assert _listing(tmp_path) == before
    assert len(Tabular.load(out).frame) == len(pl.read_parquet(out))


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_clean_stale_temps_removes_the_empty_folder_of_a_killed_build(tmp_path):
    root = tmp_path / "cache" / "images"
    files = sorted((MNIST / "train" / "3").glob("*.png"))[:6]
    build_image_store(files, Resize(20), cache_dir=tmp_path / "cache")  # a complete entry
    (complete,) = [p for p in root.iterdir() if p.is_dir()]
    kept = sorted(p.name for p in complete.iterdir())
    assert any(n.endswith(".npy") for n in kept)
    _age(complete, LONG_AGO)

    # A build killed after making its entry folder and its temporary pack there, and one killed before the pack:
    # the folder named by the settings' fingerprint, the pack by temp_name with the dead build's pid
    killed = root / "0123456789abcdef"
    killed.mkdir()
    (killed / temp_name("pack", pid=_dead_pid())).write_bytes(b"\x93NUMPY")
    _age(killed, LONG_AGO)
    emptied = root / "fedcba9876543210"
    emptied.mkdir()
    _age(emptied, LONG_AGO)
    # a folder a live build has just made and not yet written in, and a folder pipekit did not name: both stay
    fresh, other = root / "00112233445566ff", root / "my-images"
    fresh.mkdir()
    other.mkdir()
    _age(other, LONG_AGO)

    removed = clean_stale_temps(root)
    assert [p.parent for p in removed] == [killed]
    assert sorted(p.name for p in root.iterdir()) == sorted([complete.name, fresh.name, other.name])
    assert sorted(p.name for p in complete.iterdir()) == kept
    # the complete entry still serves the next build
    assert build_image_store(files, Resize(20), cache_dir=tmp_path / "cache").n_reused_ == len(files)
