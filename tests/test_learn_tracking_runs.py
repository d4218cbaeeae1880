"""Where a fit's trackers write, on mnist_tiny: TensorBoardCallback's runs (one per callback under learn.path/runs),
its model graph (trace_model), fastai's arguments it takes, a folder that cannot be written refused before the first
epoch by SaveModelCallback, CSVLogger and TensorBoardCallback alike, and learn.load(name, device=...)."""

from __future__ import annotations

import errno
import re
import socket
import warnings

import pytest
import torch
from torch import nn

import pipekit
import pipekit.datasets as D
import pipekit.core.archive as archive
from pipekit.core.errors import ParameterError
from pipekit.data import CategoryBlock, DataBlock, GrandparentSplitter, get_image_files, parent_label
from pipekit.learn import Callback, CSVLogger, Learner, SaveModelCallback, TensorBoardCallback, accuracy
from pipekit.learn.callbacks import loggers
from pipekit.vision import ImageBlock

pytestmark = pytest.mark.data
pytest.importorskip("tensorboard")

#: the folder name SummaryWriter() gives a run: month, day, time, host (and pipekit's _2, _3... in the same second)
RUN_NAME = re.compile(
    rf"[A-Z][a-z]{{2}}\d{{2}}_\d{{2}}-\d{{2}}-\d{{2}}_{re.escape(socket.gethostname())}(_\d+)?"
)


@pytest.fixture(scope="module")
def dls(one_torch_thread):
    """A quarter of mnist_tiny's 3s and 7s, grey, 28x28."""
    items = lambda p: get_image_files(p, folders=["train", "valid"])[::4]  # noqa: E731
    return DataBlock(
        blocks=(ImageBlock(cls="L"), CategoryBlock),
        get_items=items,
        get_y=parent_label,
        splitter=GrandparentSplitter(),
    ).dataloaders(D.path("mnist_tiny"), bs=32, seed=0, device="cpu", num_workers=0)


def _learner(dls, path, model=None, device=None):
    pipekit.set_seed(0)
    return Learner(
        dls,
        model or nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 2)),
        metrics=accuracy,
        path=path,
        device=device,
    )


class _CountBatches(Callback):
    def __init__(self):
        self.n = 0

    def after_batch(self):
        self.n += 1


def _events(folder):
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    return [e for f in sorted(folder.glob("events.out.tfevents.*")) for e in EventFileLoader(str(f)).Load()]


def _scalars(folder, tag):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(str(folder))
    ea.Reload()
    return [(e.step, e.value) for e in ea.Scalars(tag)]


# ------------------------------------------------------------------------------------------ TensorBoard runs
def test_two_experiments_are_two_runs_under_learn_path_runs(dls, tmp_path):
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer

    cbs = []
    for lr in (1e-2, 1e-4):  # two experiments, each a learner of its own with the default log_dir
        learn = _learner(dls, tmp_path)
        cb = TensorBoardCallback(n_images=0)
        learn.fit(1, lr, cbs=cb)
        cbs.append(cb)
    runs = tmp_path / "runs"
    assert not list(runs.glob("events.out.tfevents.*"))  # nothing straight in runs/: that was one run '.'
    folders = sorted(p for p in runs.iterdir())
    assert sorted(cb.run_dir for cb in cbs) == folders
    assert len(folders) == 2 and all(RUN_NAME.fullmatch(p.name) for p in folders)
    em = EventMultiplexer().AddRunsFromDirectory(str(runs))
    em.Reload()
    assert sorted(em.Runs()) == sorted(p.name for p in folders)
    n = len(dls.train)
    for run in em.Runs():  # each run holds its own experiment's single epoch
        assert [e.step for e in em.Scalars(run, "valid_loss")] == [n]


def test_a_callback_keeps_its_run_over_its_fits(dls, tmp_path, monkeypatch):
    # two callbacks started in the same second: the second run is named as the first, with _2 after it
    monkeypatch.setattr(loggers, "_run_name", lambda: f"Jan05_14-03-22_{socket.gethostname()}")
    learn = _learner(dls, tmp_path)
    cb, other = TensorBoardCallback(n_images=0), TensorBoardCallback(n_images=0)
    learn.fit(1, 1e-2, cbs=cb)
    learn.fit(1, 1e-2, cbs=other)
    learn.fit(1, 1e-2, cbs=cb)  # the first callback again: its run, its steps going on
    assert cb.run_dir == tmp_path / "runs" / f"Jan05_14-03-22_{socket.gethostname()}"
    assert other.run_dir == tmp_path / "runs" / f"Jan05_14-03-22_{socket.gethostname()}_2"
    n = len(dls.train)
    assert [s for s, _ in _scalars(cb.run_dir, "train_loss")] == list(range(1, 2 * n + 1))
    assert [s for s, _ in _scalars(cb.run_dir, "valid_loss")] == [n, 2 * n]
    assert [s for s, _ in _scalars(other.run_dir, "valid_loss")] == [n]
    # an explicit log_dir is written as given
    given = TensorBoardCallback(log_dir=tmp_path / "mine", n_images=0)
    learn.fit(1, 1e-2, cbs=given)
    assert given.run_dir == tmp_path / "mine" and _events(tmp_path / "mine")


# ------------------------------------------------------------------------------------------ fastai's arguments
def test_trace_model_writes_the_graph_once(dls, tmp_path):
    learn = _learner(dls, tmp_path)
    cb = TensorBoardCallback(trace_model=True, log_preds=False, n_preds=4, n_images=0)
    learn.fit(1, 1e-2, cbs=cb)
    learn.fit(1, 1e-2, cbs=cb)
    graphs = [e for e in _events(cb.run_dir) if e.HasField("graph_def")]
    assert len(graphs) == 1  # once, at the callback's first fit
    assert b"Linear" in graphs[0].graph_def  # the model's own layers, traced
    assert [s for s, _ in _scalars(cb.run_dir, "valid_loss")] == [len(dls.train), 2 * len(dls.train)]


class _Untraceable(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(28 * 28, 2)

    def forward(self, x):
        if torch.jit.is_tracing():
            raise RuntimeError("this model refuses to be traced")
        return self.lin(x.flatten(1))


def test_trace_model_failure_warns_and_the_fit_goes_on(dls, tmp_path):
    learn = _learner(dls, tmp_path, model=_Untraceable())
    cb = TensorBoardCallback(trace_model=True, n_images=0)
    with pytest.warns(UserWarning, match=r"graph was not written.*refuses to be traced.*trace_model=False"):
        learn.fit(1, 1e-2, cbs=cb)
    assert len(learn.recorder.values) == 1
    assert not [e for e in _events(cb.run_dir) if e.HasField("graph_def")]
    assert len(_scalars(cb.run_dir, "valid_loss")) == 1


def test_log_preds_true_is_refused_saying_what_to_use():
    cb = TensorBoardCallback(trace_model=False, log_preds=False, n_preds=9)  # fastai's spelling, accepted
    assert (cb.trace_model, cb.log_preds, cb.n_preds) == (False, False, 9)
    with pytest.raises(ParameterError, match=r"log_preds=True.*learn\.show_results\(max_n=9, path="):
        TensorBoardCallback(log_preds=True)
    with pytest.raises(ParameterError, match="trace_model"):
        TensorBoardCallback(trace_model="yes")


# ------------------------------------------------------------------------------------------ folders not writable
_TRACKERS = [
    (lambda: SaveModelCallback(), "models", r"learn\.model_dir"),
    (lambda: CSVLogger(), "", r"CSVLogger\(fname="),
    (lambda: TensorBoardCallback(n_images=0), "runs", r"TensorBoardCallback\(log_dir="),
]


@pytest.mark.parametrize("make, sub, own_fix", _TRACKERS, ids=["save_model", "csv_logger", "tensorboard"])
def test_a_learner_path_at_a_file_stops_the_fit_before_its_first_epoch(dls, tmp_path, make, sub, own_fix):
    at_file = tmp_path / "a_file"
    at_file.write_text("not a folder")
    learn = _learner(dls, at_file)
    counter = _CountBatches()
    with pytest.raises(OSError) as info:
        learn.fit(1, 1e-2, cbs=[make(), counter])
    msg = str(info.value)
    folder = at_file / sub if sub else at_file
    assert str(folder) in msg and r"Learner(..., path=" in msg and re.search(own_fix, msg), msg
    assert counter.n == 0 and learn.recorder.values == []  # no epoch was trained and then lost
    learn.path = tmp_path / "writable"  # the fix the message gives
    cb = make()
    learn.fit(1, 1e-2, cbs=[cb, counter])
    assert counter.n == len(dls.train) + len(dls.valid) and len(learn.recorder.values) == 1
    written = [p for p in learn.path.rglob("*") if p.is_file()]
    # the write test left nothing behind
    assert written and not [p for p in written if p.name.endswith(".tmp")]


@pytest.mark.parametrize("make, sub, own_fix", _TRACKERS, ids=["save_model", "csv_logger", "tensorboard"])
def test_a_read_only_folder_is_one_clear_error(dls, tmp_path, monkeypatch, make, sub, own_fix):
    def read_only(folder):  # as a read-only mount answers a write
        raise OSError(errno.EROFS, "Read-only file system", str(folder / ".probe"))

    monkeypatch.setattr(archive, "_write_probe", read_only)
    learn = _learner(dls, tmp_path)
    counter = _CountBatches()
    with pytest.raises(OSError, match="Read-only file system") as info:
        learn.fit(1, 1e-2, cbs=[make(), counter])
    msg = str(info.value)
    folder = tmp_path / sub if sub else tmp_path
    assert info.value.errno == errno.EROFS
    assert f"writes in the folder {folder}, which cannot be written" in msg and re.search(own_fix, msg), msg
    assert counter.n == 0


# ------------------------------------------------------------------------------------------ learn.load(device=)
def test_load_takes_fastais_device_argument(dls, tmp_path):
    learn = _learner(dls, tmp_path)
    learn.fit(1, 1e-2)
    learn.save("stage1", with_opt=True)
    for device in ("cpu", torch.device("cpu"), None):
        fresh = _learner(dls, tmp_path)
        assert fresh.load("stage1", device=device, with_opt=True, strict=True) is fresh
        assert all(torch.equal(a, b) for a, b in zip(fresh.model.parameters(), learn.model.parameters()))
        assert all(p.device == fresh.device for p in fresh.model.parameters())
        assert fresh.resume_epoch == 1
    fresh = _learner(dls, tmp_path)
    assert fresh.load("stage1", "cpu") is fresh  # fastai's order: the device second
    with pytest.raises(ParameterError, match=r"Learner\.load: device='xla'"):
        fresh.load("stage1", device="xla")
    with pytest.raises(ParameterError, match=r"with_opt=False"):
        fresh.load("stage1", False)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_load_device_between_cpu_and_cuda(dls, tmp_path):
    learn = _learner(dls, tmp_path)
    learn.fit(1, 1e-2)
    learn.save("stage1", with_opt=True)
    on_gpu = _learner(dls, tmp_path, device="cuda")
    for device in ("cpu", "cuda", None):
        assert on_gpu.load("stage1", device=device) is on_gpu
        assert all(p.is_cuda for p in on_gpu.model.parameters())
        assert all(
            torch.equal(a.cpu(), b) for a, b in zip(on_gpu.model.parameters(), learn.model.parameters())
        )
    on_cpu = _learner(dls, tmp_path)
    assert on_cpu.load("stage1", device="cuda:0", with_opt=True) is on_cpu
    assert all(not p.is_cuda for p in on_cpu.model.parameters())
    assert all(torch.equal(a, b) for a, b in zip(on_cpu.model.parameters(), learn.model.parameters()))
    with warnings.catch_warnings():
        # the optimiser state read to the GPU lands on the CPU parameters: a step works
        warnings.simplefilter("error")
        on_cpu.fit(1, 1e-2, start_epoch=on_cpu.resume_epoch)
