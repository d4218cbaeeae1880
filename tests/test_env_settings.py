"""PIPEKIT_* environment variables as deployments write them: a yes/no flag takes 1/true/yes/on and 0/false/no/off
(or empty), a count a positive whole number (empty: the default); any other value is refused naming the variable,
its value and what is accepted, wherever pipekit reads it."""
import os
from pathlib import Path

import pytest

from pipekit.core.errors import ParameterError
from pipekit.core.validate import env_flag, env_positive_int
from pipekit.data import CategoryBlock, DataBlock, GrandparentSplitter, get_image_files, parent_label
from pipekit.data.progress import progress_enabled
from pipekit.learn import EarlyStoppingCallback, accuracy
from pipekit.tabular import TabularDataLoaders, tabular_learner
from pipekit.vision import ImageBlock, Resize, aug_transforms

DATA = Path(os.environ.get("PIPEKIT_DATA", "/nonexistent"))


@pytest.mark.parametrize("value, on", [("1", True), ("true", True), ("YES", True), (" on ", True), ("True", True),
                                       ("0", False), ("false", False), ("No", False), ("off", False), ("", False)])
def test_env_flag_reads_the_usual_spellings(monkeypatch, value, on):
    monkeypatch.setenv("PIPEKIT_QUIET", value)
    assert env_flag("PIPEKIT_QUIET") is on


def test_env_flag_unset_is_the_default_and_other_values_are_refused(monkeypatch):
    monkeypatch.delenv("PIPEKIT_QUIET", raising=False)
    assert env_flag("PIPEKIT_QUIET") is False and env_flag("PIPEKIT_QUIET", default=True) is True
    monkeypatch.setenv("PIPEKIT_QUIET", "quiet")
    with pytest.raises(ParameterError, match=r"PIPEKIT_QUIET='quiet' is not accepted; expected 1, true, yes or on "
                                             r"\(on\), or 0, false, no, off or empty \(off\)"):
        env_flag("PIPEKIT_QUIET")


@pytest.mark.parametrize("value, n", [("4", 4), (" 2 ", 2), ("", None), ("  ", None)])
def test_env_positive_int_reads_a_count_and_empty_is_the_default(monkeypatch, value, n):
    monkeypatch.setenv("PIPEKIT_AUG_THREADS", value)
    assert env_positive_int("PIPEKIT_AUG_THREADS") == n
    monkeypatch.delenv("PIPEKIT_AUG_THREADS")
    assert env_positive_int("PIPEKIT_AUG_THREADS", 5) == 5


@pytest.mark.parametrize("value", ["abc", "-1", "0", "2.5"])
def test_env_positive_int_refuses_other_values_naming_the_variable(monkeypatch, value):
    monkeypatch.setenv("PIPEKIT_AUG_THREADS", value)
    with pytest.raises(ParameterError, match=rf"environment variable PIPEKIT_AUG_THREADS='{value}' is not accepted; "
                                             r"expected a positive whole number.*unset or empty for the default"):
        env_positive_int("PIPEKIT_AUG_THREADS")


def mnist_aug_dls():
    """A tenth of mnist_tiny with batch augmentation, which runs on the shared augmentation pool."""
    dblock = DataBlock(blocks=(ImageBlock, CategoryBlock),
                       get_items=lambda p: get_image_files(p, folders=["train", "valid"])[::10], get_y=parent_label,
                       splitter=GrandparentSplitter(), item_tfms=[Resize(32)], batch_tfms=aug_transforms(size=28))
    return dblock.dataloaders(DATA / "mnist_tiny", bs=16, seed=42)


def test_aug_threads_empty_is_the_default_and_bad_values_are_named_at_the_batch(monkeypatch):
    monkeypatch.setenv("PIPEKIT_AUG_THREADS", "")
    dls = mnist_aug_dls()
    xb, _ = dls.one_batch()
    assert tuple(xb.shape) == (16, 3, 28, 28)
    for value in ("abc", "-1"):
        monkeypatch.setenv("PIPEKIT_AUG_THREADS", value)
        with pytest.raises(ParameterError, match=rf"PIPEKIT_AUG_THREADS='{value}' is not accepted"):
            dls.one_batch()


def adult_learner():
    dls = TabularDataLoaders.from_csv(DATA / "adult_sample" / "adult.csv", y_names="salary",
                                      cat_names=["workclass", "education"], cont_names=["age"], valid_pct=0.2,
                                      seed=0, bs=1024)
    return tabular_learner(dls, layers=[8], metrics=accuracy)


@pytest.mark.parametrize("quiet", ["true", "yes", "on", "1"])
def test_quiet_spellings_silence_the_table_and_the_trackers(monkeypatch, capsys, quiet):
    learn = adult_learner()
    monkeypatch.delenv("PIPEKIT_PROGRESS", raising=False)
    monkeypatch.setenv("PIPEKIT_QUIET", "false")  # off: the table prints
    learn.fit(2, 1e-2, cbs=[EarlyStoppingCallback(min_delta=100.0, patience=0)])
    out = capsys.readouterr().out
    assert "train_loss" in out and "No improvement since epoch" in out
    monkeypatch.setenv("PIPEKIT_QUIET", quiet)
    learn.fit(2, 1e-2, cbs=[EarlyStoppingCallback(min_delta=100.0, patience=0)])
    assert capsys.readouterr().out == ""


def test_quiet_and_progress_flags_decide_the_bars(monkeypatch):
    monkeypatch.setenv("PIPEKIT_QUIET", "yes")
    monkeypatch.setenv("PIPEKIT_PROGRESS", "1")
    assert progress_enabled() is False
    monkeypatch.setenv("PIPEKIT_QUIET", "off")
    monkeypatch.setenv("PIPEKIT_PROGRESS", "true")
    assert progress_enabled() is True


def test_a_bad_quiet_value_is_named_when_training(monkeypatch):
    learn = adult_learner()
    monkeypatch.setenv("PIPEKIT_QUIET", "y")
    with pytest.raises(ParameterError, match=r"PIPEKIT_QUIET='y' is not accepted"):
        learn.fit(1, 1e-2)


@pytest.mark.parametrize("env", [{"PIPEKIT_QUIET": "2"}, {"PIPEKIT_QUIET": "1", "PIPEKIT_PROGRESS": "maybe"}])
def test_a_bad_flag_stops_a_fit_before_any_batch_whichever_callbacks_print(monkeypatch, env):
    """Without the progress callback the first to read PIPEKIT_QUIET would be a tracker, after an epoch trained."""
    from pipekit.learn import Callback, ProgressCallback

    class CountBatches(Callback):
        def before_fit(self):
            self.n = 0

        def after_batch(self):
            self.n += 1

    learn = adult_learner()
    learn.remove_cb(ProgressCallback)
    count = CountBatches()
    monkeypatch.delenv("PIPEKIT_PROGRESS", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    bad = list(env)[-1]
    with pytest.raises(ParameterError, match=rf"environment variable {bad}='{env[bad]}' is not accepted"):
        learn.fit(2, 1e-2, cbs=[count, EarlyStoppingCallback(min_delta=100.0, patience=0)])
    assert getattr(count, "n", 0) == 0


def test_opencv_limits_are_read_as_opencv_reads_them_and_bad_values_are_named(monkeypatch):
    from pipekit.vision.decode import _opencv_limit

    monkeypatch.setenv("OPENCV_IO_MAX_IMAGE_PIXELS", "")
    assert _opencv_limit("OPENCV_IO_MAX_IMAGE_PIXELS", 1 << 30) == 1 << 30
    for value, limit in [("5000", 5000), ("2MB", 2 << 20), ("64kb", 64 << 10)]:
        monkeypatch.setenv("OPENCV_IO_MAX_IMAGE_PIXELS", value)
        assert _opencv_limit("OPENCV_IO_MAX_IMAGE_PIXELS", 1 << 30) == limit
    for value in ("0", "-5", "1e6", "2GB"):
        monkeypatch.setenv("OPENCV_IO_MAX_IMAGE_WIDTH", value)
        with pytest.raises(ParameterError, match=rf"OPENCV_IO_MAX_IMAGE_WIDTH='{value}' is not accepted; expected a "
                                                 r"positive whole number, optionally ending with KB"):
            _opencv_limit("OPENCV_IO_MAX_IMAGE_WIDTH", 1 << 20)


@pytest.mark.parametrize("name", ["OPENCV_IO_MAX_IMAGE_PIXELS", "OPENCV_IO_MAX_IMAGE_WIDTH", "OPENCV_IO_MAX_IMAGE_HEIGHT"])
@pytest.mark.parametrize("code", ["import pipekit.vision", "from pipekit.vision.decode import decode_image",
                                  "import pipekit.bench"])
def test_a_bad_opencv_variable_is_named_before_opencv_aborts_on_it(name, code):
    import subprocess
    import sys

    env = {**os.environ, name: "abc"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode not in (-6, 134), done.stderr[-2000:]  # SIGABRT: OpenCV's parser terminated the process
    assert done.returncode == 1
    assert f"ParameterError: environment variable {name}='abc' is not accepted" in done.stderr, done.stderr[-2000:]


def test_env_folder_expands_home_and_refuses_a_relative_folder(monkeypatch, tmp_path):
    from pipekit.core.validate import env_folder

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("PIPEKIT_CACHE", "~/cache")
    assert env_folder("PIPEKIT_CACHE", "for ~/.cache/pipekit") == tmp_path / "cache"
    monkeypatch.setenv("PIPEKIT_CACHE", "")
    assert env_folder("PIPEKIT_CACHE", "for ~/.cache/pipekit") is None
    monkeypatch.setenv("PIPEKIT_CACHE", "cache")
    with pytest.raises(ParameterError, match=r"PIPEKIT_CACHE='cache' is a relative folder.*unset it for ~/.cache"):
        env_folder("PIPEKIT_CACHE", "for ~/.cache/pipekit")
