"""``learn.no_bar()`` and ``learn.no_logging()`` in threads sharing one learner: each block holds for the calls of the
thread that opened it, so overlapping blocks leave the bar and the table as they were, and a block open in one
thread does not hide another thread's; in one thread, nested blocks put back what they found. Events force the
interleavings."""
import threading

import pandas as pd
import pytest

import pipekit.datasets as D
from pipekit.learn import Callback

pytestmark = pytest.mark.data


class SeesBarAndTable(Callback):
    order = 61  # after the ProgressCallback decided on the bar and the table

    def before_fit(self):
        self.bar_ = self.learn.batch_wrapper is not None
        self.table_ = not self.learn.progress._quiet


@pytest.fixture
def learn(monkeypatch):
    import torch

    from pipekit.tabular import TabularDataLoaders, tabular_learner

    monkeypatch.delenv("PIPEKIT_QUIET", raising=False)
    torch.manual_seed(0)
    df = pd.read_csv(D.path("adult_sample") / "adult.csv").head(300)
    dls = TabularDataLoaders.from_df(df, y_names="salary", cat_names=["workclass"], cont_names=["age"],
                                     valid_idx=list(range(240, 300)), bs=64, path=".")
    return tabular_learner(dls, layers=[4], cbs=SeesBarAndTable())


def run_threads(*targets, timeout=60):
    """Run each target in its own thread; an exception in one (a failed assert) fails the test here, in the main
    thread, as does a thread still running after ``timeout`` seconds."""
    errors = []

    def guarded(target):
        def run():
            try:
                target()
            except BaseException as e:  # noqa: BLE001 - handed to the main thread, which raises it
                errors.append(e)
        return run

    threads = [threading.Thread(target=guarded(t), daemon=True) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    assert not any(t.is_alive() for t in threads), f"a thread did not end within {timeout} s"
    if errors:
        raise errors[0]


def test_run_threads_fails_on_a_threads_failed_assert():
    def fails():
        assert 1 == 2, "inside the thread"

    with pytest.raises(AssertionError, match="inside the thread"):
        run_threads(fails)


def seen(learn):
    learn.fit(1, 1e-3)
    cb = learn.sees_bar_and_table
    return cb.bar_, cb.table_


def test_overlapping_no_bar_blocks_in_two_threads_leave_the_bar_on(learn):
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()

    def a():
        with learn.no_bar():
            a_in.set()
            assert b_in.wait(30)
        a_out.set()

    def b():
        assert a_in.wait(30)
        with learn.no_bar():
            b_in.set()
            assert a_out.wait(30)  # A leaves first, B last

    run_threads(a, b)
    assert seen(learn) == (True, True)


def test_a_block_open_in_one_thread_leaves_the_other_threads_bar_and_table(learn):
    inside, done = threading.Event(), threading.Event()

    def c():
        with learn.no_logging(), learn.no_bar():
            inside.set()
            assert done.wait(60)

    def other():
        try:
            assert inside.wait(30)
            results["other"] = seen(learn)  # this thread opened no block
        finally:
            done.set()

    results = {}
    run_threads(c, other)
    assert results["other"] == (True, True)


def test_the_blocks_hold_for_calls_their_thread_makes_meanwhile_and_nest(learn, capsys):
    with learn.no_bar():
        assert seen(learn) == (False, True)
        with learn.no_logging():
            assert seen(learn) == (False, False)
            with learn.no_bar():
                assert seen(learn) == (False, False)
            assert seen(learn) == (False, False)
        assert seen(learn) == (False, True)
    assert seen(learn) == (True, True)
    results = {}

    def d():  # a thread's own blocks hold for its calls while another thread has none open
        with learn.no_logging():
            results["d"] = seen(learn)

    run_threads(d, timeout=120)
    assert results["d"] == (True, False) and seen(learn) == (True, True)
