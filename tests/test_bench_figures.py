"""pipekit.bench's figures mean what they say: the first epoch is measured whole whatever ``n_batches`` (its build
reads every item), ``bottleneck`` (as ``lr_find``) leaves the files a learner's callbacks wrote as they were and adds none, ``sweep`` and ``profile``
report the ``num_workers`` in effect (a loader whose items go through a user's item transforms as they are fetched
makes its batches in the iterating thread, whatever the setting), and the mnist_tiny recipe's items are those of its
two sets."""
from __future__ import annotations

import json
import random
import warnings
from functools import partial
from pathlib import Path

import polars as pl
import pytest
import torch
from torch.utils.data import DataLoader as TorchLoader
from torch.utils.data import TensorDataset

import pipekit.datasets as D
from pipekit.bench import Sweep, bottleneck, profile, sweep
from pipekit.bench.runner import count_items
from pipekit.data import CategoryBlock, DataBlock, GrandparentSplitter, Transform, get_image_files, parent_label
from pipekit.vision import ImageBlock, PILImage, Resize

pytestmark = pytest.mark.data

LEFT_OUT = "neither the training nor the validation set"


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PIPEKIT_CACHE", str(tmp_path / "cache"))


class Jitter(Transform):
    """A user's item transform drawing from Python's ``random``: the loader makes its batches in the iterating thread."""

    order = 2

    def encodes(self, x: PILImage):
        return x if random.random() < 0.5 else x[:, ::-1].copy()


def digits(*user_tfms) -> DataBlock:
    return DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock), get_y=parent_label, splitter=GrandparentSplitter(),
                     get_items=partial(get_image_files, folders=["train", "valid"]),
                     item_tfms=[Resize(24), *user_tfms])


def epoch_of(dl) -> tuple[int, int]:
    """(batches, items) of one whole epoch of ``dl``."""
    batches = list(dl)
    return len(batches), sum(count_items(b) for b in batches)


def test_the_first_epoch_is_measured_whole_whatever_n_batches():
    source = D.path("mnist_tiny")
    dls = digits().dataloaders(source, bs=64, seed=0, num_workers=0, device="cpu")
    whole = epoch_of(dls.train)
    assert whole[0] > 2
    for n in (2, None):
        # from a DataBlock: its build read every item, so the figure is the whole epoch's, the build's time in it
        p = profile(digits(), source=source, n_batches=n, warm_epochs=1, bs=64, seed=0, num_workers=0, device="cpu")
        assert (p.cold.batches, p.cold.items, p.cold.epochs) == (*whole, 1) and p.cold.build_s > 0
        assert p.warm.batches == (n or whole[0]) and p.n_batches == (n or whole[0])
        d = json.loads(p.to_json())
        assert (d["cold"]["batches"], d["cold"]["items"]) == whole and d["warm"]["batches"] == (n or whole[0])
    # loaders already built, pipekit's and torch's: the same whole first epoch (a comparison of first epochs is fair)
    p = profile(dls, n_batches=2, warm_epochs=1)
    assert (p.cold.batches, p.cold.items) == whole and p.warm.batches == 2
    xs = torch.zeros(300, 4)
    p = profile(TorchLoader(TensorDataset(xs, torch.zeros(300)), batch_size=32), n_batches=2, warm_epochs=1,
                device="cpu")
    assert (p.cold.batches, p.cold.items) == (10, 300) and (p.warm.batches, p.warm.items) == (2, 64)


def _trained_with_files(tmp_path, monkeypatch):
    """A learner fitted with callbacks that write files: a log, checkpoints, a loss graph to a file of the user's
    and one to ``$PIPEKIT_PLOTS``; the files written, with their bytes."""
    from pipekit.learn.callbacks.builtin import SaveModelCallback
    from pipekit.learn.callbacks.loggers import CSVLogger, ShowGraphCallback
    from pipekit.tabular import TabularDataLoaders, tabular_learner

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PIPEKIT_PLOTS", str(tmp_path / "plots"))
    df = pl.read_csv(D.path("adult_sample") / "adult.csv").head(2000)
    dls = TabularDataLoaders.from_df(df, y_names="salary", cat_names=["workclass"], cont_names=["age"], bs=64,
                                     seed=0, valid_pct=0.2, path=tmp_path)
    torch.manual_seed(0)
    learn = tabular_learner(dls, layers=[20], cbs=[CSVLogger(), SaveModelCallback(fname="ck", every_epoch=True),
                                                   ShowGraphCallback(path=tmp_path / "graph.png"),
                                                   ShowGraphCallback()])
    learn.fit(2, 1e-2)
    written = {p: p.read_bytes() for p in sorted(tmp_path.rglob("*")) if p.is_file()}
    assert tmp_path / "history.csv" in written and tmp_path / "models" / "ck_0.pipekit" in written
    graphs = list((tmp_path / "plots").glob("loss_graph*.png"))  # loss_graph_2.png... after other fits in the process
    assert tmp_path / "graph.png" in written and len(graphs) == 1
    return learn, written


def test_bottleneck_leaves_the_learners_log_and_checkpoints_as_they_were(tmp_path, monkeypatch):
    learn, written = _trained_with_files(tmp_path, monkeypatch)
    cbs = list(learn.cbs)
    b = bottleneck(learn, n_batches=4)
    assert b.loader_items_s > 0 and b.full_items_s > 0
    # the log, the checkpoints and both graphs as they were, and no new graph in the plot folder
    assert {p: p.read_bytes() for p in sorted(tmp_path.rglob("*")) if p.is_file()} == written
    assert [p for p in (tmp_path / "plots").glob("*.png") if p not in written] == []
    assert learn.cbs == cbs  # the callbacks are back, in their order, for the next fit


def test_lr_find_leaves_the_learners_loss_graphs_as_they_were(tmp_path, monkeypatch):
    learn, written = _trained_with_files(tmp_path, monkeypatch)
    learn.lr_find(num_it=40, stop_div=False, show_plot=False)  # over a second epoch: an epoch of the sweep ends
    assert {p: p.read_bytes() for p in sorted(tmp_path.rglob("*")) if p.is_file()} == written


def test_sweep_and_profile_report_the_workers_in_effect():
    source = D.path("mnist_tiny")
    per_fetch = digits(Jitter())
    s = sweep(per_fetch, source=source, workers=(0, 2), n_batches=2, rounds=1, bs=64, seed=0, device="cpu")
    assert s.best is None and s.no_effect and "num_workers has no effect on this loader" in s.no_effect
    assert "item transforms of your own" in s.no_effect and "best" not in repr(s)
    d = s.to_dict()
    assert d["best"] is None and d["no_effect"] == s.no_effect and set(d["rates"]) == {"0", "2"}
    assert "best" not in s.table().title and s.table().title == f"pipekit: {s.headline}" == f"pipekit: {s.no_effect}"
    assert [c.header for c in s.table().columns] == ["num_workers", "items/s (median)", "rounds"]
    dls = per_fetch.dataloaders(source, bs=64, seed=0, num_workers=2, device="cpu")
    p = profile(dls, n_batches=2, warm_epochs=1, cold=False)
    assert p.num_workers == 0 and p.to_dict()["num_workers"] == 0 and "num_workers 0" in p.table().title
    assert p.workers_note == s.no_effect and s.no_effect in p.summary() and p.warm.threads == {"main": 1}
    # a loader that uses its prefetch threads: its setting reported, a best named
    plain = digits().dataloaders(source, bs=64, seed=0, num_workers=2, device="cpu")
    p = profile(plain, n_batches=2, warm_epochs=1, cold=False)
    assert p.num_workers == 2 and p.workers_note is None and "no effect" not in p.summary()
    s = sweep(plain, workers=(0, 2), n_batches=2, rounds=1)
    assert s.no_effect is None and s.best in (0, 2) and s.headline == f"best num_workers={s.best}"
    t = s.table()
    assert t.title == f"pipekit: {s.headline}" and f"Sweep(pipekit: {s.headline}, " in repr(s)
    assert [c.header for c in t.columns] == ["num_workers", "items/s (median)", "rounds", "vs best"]
    assert list(t.columns[3].cells) == [f"{r / s.rates[s.best]:.2f}x" for r in s.rates.values()]


def test_a_sweeps_table_and_repr_lead_with_one_headline():
    s = Sweep("pipekit", 10, {0: [900.0, 1000.0, 950.0], 2: [1500.0, 1400.0, 1600.0]})
    t = s.table()
    assert s.headline == "best num_workers=2" and t.title == "pipekit: best num_workers=2"
    assert repr(s) == "Sweep(pipekit: best num_workers=2, 0: 950 items/s, 2: 1,500 items/s)"
    assert [c.header for c in t.columns] == ["num_workers", "items/s (median)", "rounds", "vs best"]
    assert [list(c.cells) for c in t.columns] == [["0", "2"], ["950", "1,500"], ["900, 1,000, 950", "1,500, 1,400, 1,600"],
                                                  ["0.63x", "1.00x"]]
    why = "num_workers has no effect on this loader"
    s = Sweep("pipekit", 10, {0: [900.0], 2: [950.0]}, no_effect=why)
    t = s.table()
    assert s.best is None and s.headline == why and t.title == f"pipekit: {why}"
    assert repr(s) == f"Sweep(pipekit: {why}, 0: 900 items/s, 2: 950 items/s)"
    assert [list(c.cells) for c in t.columns] == [["0", "2"], ["900", "950"], ["900", "950"]]


RECIPE = '''
import random
from functools import partial

import pipekit.datasets as D
from pipekit.data import CategoryBlock, DataBlock, GrandparentSplitter, Transform, get_image_files, parent_label
from pipekit.vision import ImageBlock, PILImage, Resize


class Jitter(Transform):
    order = 2

    def encodes(self, x: PILImage):
        return x if random.random() < 0.5 else x[:, ::-1].copy()


def datablock():
    return DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock), get_y=parent_label, splitter=GrandparentSplitter(),
                     get_items=partial(get_image_files, folders=["train", "valid"]),
                     item_tfms=[Resize(24), Jitter()]), D.path("mnist_tiny")
'''


def test_bench_loader_reports_a_sweep_without_effect_and_the_whole_first_epoch(tmp_path, monkeypatch, capsys):
    from pipekit.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "rec.py").write_text(RECIPE)
    assert main(["bench-loader", "rec.py", "--batches", "2", "--workers", "0,2", "--rounds", "1", "--warm-epochs", "1",
                 "--bs", "32", "--json", "out.json"]) == 0
    out = json.loads((tmp_path / "out.json").read_text())
    printed = capsys.readouterr().out
    assert out["sweep"]["best"] is None and "num_workers has no effect" in out["sweep"]["no_effect"]
    assert "best setting for pipekit" not in printed and "num_workers has no effect" in printed
    assert out["profile"]["num_workers"] == 0 and out["profile"]["warm"]["batches"] == 2
    # the first epoch whole: every training item (709, bs 32, the last batch dropped)
    assert out["profile"]["cold"]["items"] == 709 // 32 * 32 and out["profile"]["cold"]["batches"] == 709 // 32


def test_the_mnist_tiny_recipe_reads_its_two_sets_only(tmp_path, monkeypatch, capsys):
    from pipekit.cli import main
    from pipekit.recipes import mnist_tiny

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        dblock, path = mnist_tiny.datablock()
        dsets = dblock.datasets(path)
        dls = mnist_tiny.dataloaders(None, None)
    assert (len(dsets.train), len(dsets.valid)) == (709, 699) == (len(dls.train.dataset), len(dls.valid.dataset))
    assert {Path(f).parent.parent.name for f in dsets.train.items} == {"train"}
    assert {Path(f).parent.parent.name for f in dsets.valid.items} == {"valid"}
    assert not [w for w in seen if LEFT_OUT in str(w.message)]
    monkeypatch.chdir(tmp_path)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert main(["bench-loader", "mnist_tiny", "--batches", "2", "--rounds", "1", "--warm-epochs", "1"]) == 0
        assert main(["summary", "mnist_tiny"]) == 0
    said = capsys.readouterr()
    assert not [w for w in seen if LEFT_OUT in str(w.message)] and LEFT_OUT not in said.err
    assert "Collecting items: 1408 rows" in said.out and "709 train, 699 valid" in said.out


def _adult_loaders(rows: int, bs: int):
    """Tabular loaders of the first ``rows`` rows of adult_sample (the last 20 for validation), two prefetch threads."""
    from pipekit.tabular import TabularDataLoaders

    df = pl.read_csv(D.path("adult_sample") / "adult.csv").head(rows)
    return TabularDataLoaders.from_df(df, y_names="salary", cat_names=["workclass"], cont_names=["age"], bs=bs,
                                      seed=0, valid_idx=list(range(rows - 20, rows)), num_workers=2, device="cpu")


def test_a_loader_of_one_batch_an_epoch_reports_no_prefetch_threads_in_effect():
    dls = _adult_loaders(84, bs=64)  # 64 training rows: one batch an epoch, made in the iterating thread
    train = dls.train
    assert len(train) == 1 and train.num_workers == 2 and len(list(train)) == 1
    workers, why = train.workers_in_effect(len(train))
    assert workers == 0 and "num_workers has no effect on this loader" in why and "1 batch (64 items, bs=64)" in why
    p = profile(dls, warm_epochs=1, cold=False)
    assert p.num_workers == 0 and p.to_dict()["num_workers"] == 0 and "num_workers 0" in p.table().title
    assert p.workers_note == why and why in p.summary() and p.warm.threads == {"main": 1}
    s = sweep(dls, workers=(0, 2), rounds=1)
    assert s.best is None and s.no_effect == why and "best" not in repr(s) and s.to_dict()["best"] is None
    assert s.headline == why and s.table().title == f"pipekit: {why}" and len(s.table().columns) == 3
    # a loader of several batches an epoch uses its threads, however few of its batches are measured
    dls = _adult_loaders(84, bs=16)
    assert len(dls.train) == 4 and dls.train.workers_in_effect(len(dls.train)) == (2, None)
    p = profile(dls, n_batches=1, warm_epochs=1, cold=False)
    assert p.num_workers == 2 and p.workers_note is None and "no effect" not in p.summary()
    assert p.warm.threads.get("main") == 1 and len(p.warm.threads) > 1
    s = sweep(dls, workers=(0, 2), n_batches=1, rounds=1)
    assert s.no_effect is None and s.best in (0, 2)
