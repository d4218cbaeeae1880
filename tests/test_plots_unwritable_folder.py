"""A plot folder that cannot be written is warned about once and the call goes on; a path= that cannot be written,
and an export into a folder that cannot be written, raise an error naming the file asked for and why."""

from __future__ import annotations

import errno
import warnings
from pathlib import Path

import pytest

import pipekit.core.archive as archive
from pipekit.data.plotting import PlotWriteWarning, plot_mode
from pipekit.learn.schedule import SuggestedLRs

pytestmark = pytest.mark.data


@pytest.fixture(autouse=True)
def _headless():
    if plot_mode() != "file":
        pytest.skip("needs a backend that only writes files (MPLBACKEND=Agg)")


@pytest.fixture
def blocked(tmp_path) -> Path:
    """A path under a regular file: no folder can be made there, whoever runs the test (root too)."""
    (tmp_path / "a_file").write_text("not a folder")
    return tmp_path / "a_file"


def plot_warnings(caught) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, PlotWriteWarning)]


def test_an_unwritable_plot_folder_is_warned_about_once_and_each_call_returns(
    mnist_learner, blocked, monkeypatch
):
    plots = blocked / "plots"
    monkeypatch.setenv("PIPEKIT_PLOTS", str(plots))
    learn = mnist_learner
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert learn.recorder.plot_loss() is None  # no figure saved, no error
        assert learn.dls.show_batch(max_n=4) is None
        assert learn.show_results(max_n=4) is None
        res = learn.lr_find(
            num_it=10
        )  # the sweep's suggestions come back, though the figure could not be saved
    assert isinstance(res, SuggestedLRs) and res.plot_path is None
    assert 1e-7 < res.valley < 10 and res._fields == ("valley", "steep", "minimum")
    said = plot_warnings(caught)
    assert len(said) == 1, said  # once per folder, not once per figure
    assert str(plots) in said[0] and f"{blocked} is a file, not a folder" in said[0]
    assert "PIPEKIT_PLOTS=<a writable folder>" in said[0] and "path=" in said[0]
    assert not blocked.with_name("pipekit_plots").exists()


def test_a_plot_folder_the_file_system_refuses_is_warned_about(mnist_learner, tmp_path, monkeypatch):
    """A folder that exists but cannot be written (read-only, another user's): matplotlib's PermissionError."""
    import matplotlib.figure

    plots = tmp_path / "read_only"
    plots.mkdir()
    monkeypatch.setenv("PIPEKIT_PLOTS", str(plots))
    real = matplotlib.figure.Figure.savefig

    def refused(self, fname, *args, **kwargs):
        if Path(fname).parent == plots:
            raise PermissionError(errno.EACCES, "Permission denied", str(fname))
        return real(self, fname, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", refused)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert mnist_learner.recorder.plot_loss() is None
    said = plot_warnings(caught)
    assert len(said) == 1 and f"{plots} cannot be written (Permission denied)" in said[0]


def test_a_path_given_that_cannot_be_written_raises_naming_it(mnist_learner, blocked):
    png = blocked / "loss.png"
    with pytest.raises(OSError, match="path=") as info:
        mnist_learner.recorder.plot_loss(path=png)
    assert f"cannot write the figure to {png}" in str(info.value)
    assert f"the folder {blocked} cannot be written (a file of that name is there)" in str(info.value)
    assert isinstance(info.value.__cause__, OSError)


def test_lr_find_says_a_path_it_cannot_write_before_its_sweep(mnist_learner, blocked):
    learn = mnist_learner
    learn.recorder.lr_find_lrs = None
    with pytest.raises(OSError, match="lr_find's path=") as info:
        learn.lr_find(num_it=10, path=blocked / "lr.png")
    assert str(blocked) in str(info.value)
    assert learn.recorder.lr_find_lrs is None  # no sweep was run whose result would be lost


@pytest.mark.parametrize("fname", ["export.pipekit", "export_folder"])
def test_an_export_into_an_unwritable_folder_names_the_file_asked_for(
    mnist_learner, tmp_path, monkeypatch, fname
):
    """The folder refuses new files (as a read-only folder does): the error names export.pipekit, not the temporary
    file pipekit writes first."""
    real = archive.new_temp_file

    def refused(folder, name):
        raise PermissionError(errno.EACCES, "Permission denied", str(folder / name()))

    monkeypatch.setattr(archive, "new_temp_file", refused)
    monkeypatch.setattr(mnist_learner, "path", tmp_path)
    with pytest.raises(PermissionError) as info:
        mnist_learner.export(fname)
    msg = str(info.value)
    assert f"cannot write {tmp_path / fname}" in msg and "Permission denied" in msg
    assert str(tmp_path) in msg and "folder cannot be written" in msg
    assert ".tmp" not in msg
    assert isinstance(info.value.__cause__, PermissionError) and ".tmp" in str(info.value.__cause__)
    monkeypatch.setattr(archive, "new_temp_file", real)
    assert mnist_learner.export(tmp_path / "again.pipekit").is_file()  # a writable folder still takes it


def test_show_graph_in_an_unwritable_plot_folder_warns_and_the_fit_goes_on(mnist_learner, blocked, monkeypatch):
    from pipekit.learn import Learner, ShowGraphCallback

    monkeypatch.setenv("PIPEKIT_PLOTS", str(blocked / "plots"))
    learn = Learner(mnist_learner.dls, mnist_learner.model, loss_func=mnist_learner.loss_func)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        learn.fit(1, 1e-3, cbs=ShowGraphCallback())
    assert len(learn.recorder.values) == 1 and len(plot_warnings(caught)) == 1
    # a file the user named that cannot be written says which and why
    with pytest.raises(OSError, match="cannot write the figure to .*loss.png"):
        learn.fit(1, 1e-3, cbs=ShowGraphCallback(path=blocked / "loss.png"))
