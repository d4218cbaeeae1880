"""Loaded models in worker processes: a worker forked (``multiprocessing``'s ``fork``, gunicorn ``--preload``) from a
process whose Polars threads were running says so at pipekit's entry points instead of hanging in Polars; one forked
from a process that only imported pipekit loads and predicts; ``pipekit.basics.ProcessPoolExecutor`` starts workers
that can use a model. Every wait has a timeout, so a hang fails the test rather than the run."""
import os
import subprocess
import sys
import textwrap

import pandas as pd
import pytest

import pipekit
import pipekit.datasets as D
from pipekit.basics import ProcessPoolExecutor

pytestmark = pytest.mark.data

ROWS = [2000, 2001, 2002, 2003]


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    """A tiny tabular learner trained on 600 adult_sample rows, exported."""
    import torch

    from pipekit.tabular import TabularDataLoaders, tabular_learner

    torch.manual_seed(0)
    df = pd.read_csv(D.path("adult_sample") / "adult.csv").head(600)
    dls = TabularDataLoaders.from_df(df, y_names="salary", cat_names=["workclass", "education"],
                                     cont_names=["age", "education-num"], valid_idx=list(range(500, 600)), bs=64,
                                     path=".")
    learn = tabular_learner(dls, layers=[8])
    with learn.no_bar(), learn.no_logging():
        learn.fit(1, 1e-2)
    path = tmp_path_factory.mktemp("fork_workers") / "tab.pipekit"
    learn.export(path)
    return str(path)


@pytest.fixture(scope="module")
def expected(model_path):
    learn = pipekit.load_learner(model_path)
    df = pd.read_csv(D.path("adult_sample") / "adult.csv")
    return [str(learn.predict(df.iloc[i])[0]) for i in ROWS]


def run_script(tmp_path, code: str, *args: str) -> str:
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(code))
    env = dict(os.environ, PIPEKIT_QUIET="1")
    done = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=300,
                          env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


FORKED_AFTER_USE = """
import multiprocessing as mp, sys
import pandas as pd, pipekit
import pipekit.datasets as D

ROW = pd.read_csv(D.path("adult_sample") / "adult.csv").iloc[2000]
learn = pipekit.load_learner(sys.argv[1])
print("parent", learn.predict(ROW)[0])
DL = learn.dls.test_dl(pd.DataFrame([ROW]), with_labels=True)  # made here: making it is Polars work too


def child(call):
    try:
        if call == "predict":
            learn.predict(ROW)
        elif call == "get_preds":
            learn.get_preds(dl=DL)
        elif call == "validate":
            learn.validate(dl=DL)
        elif call == "load_learner":
            pipekit.load_learner(sys.argv[1])
        else:
            learn.fit(1, 1e-3)
    except Exception as e:
        return f"{type(e).__name__}: {e}"
    return "no error"


if __name__ == "__main__":
    with mp.get_context("fork").Pool(1) as pool:
        for call in ["predict", "get_preds", "validate", "fit", "load_learner"]:
            try:
                print(call, "->", pool.apply_async(child, (call,)).get(timeout=60))
            except mp.TimeoutError:
                print(call, "-> HANG")
                break
"""


def test_a_worker_forked_after_the_model_was_used_says_why_instead_of_hanging(model_path, tmp_path):
    out = run_script(tmp_path, FORKED_AFTER_USE, model_path)
    lines = dict(line.split(" -> ", 1) for line in out.splitlines() if " -> " in line)
    assert out.startswith("parent ")
    assert "HANG" not in out, out
    for call in ["predict", "get_preds", "validate", "fit", "load_learner"]:
        message = lines[call]
        where = call if call == "load_learner" else f"Learner.{call}"
        assert message.startswith(f"ForkedProcessError: {where}: this process"), message
        assert "Polars" in message and 'get_context("spawn")' in message and "--preload" in message, message


PLAIN_TORCH_AFTER_POLARS_WORK = """
import multiprocessing as mp

import pandas as pd
import polars as pl
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader as TorchLoader, TensorDataset

import pipekit.datasets as D
from pipekit.core.forks import polars_pool_running
from pipekit.data import DataLoaders
from pipekit.learn import Learner
from pipekit.tabular import TabularDataLoaders, tabular_learner

torch.manual_seed(0)
ds = TensorDataset(torch.randn(64, 4), torch.randint(0, 2, (64,)))
plain = Learner(DataLoaders(TorchLoader(ds, batch_size=16), TorchLoader(ds, batch_size=16), device="cpu"),
                torch.nn.Linear(4, 2), loss_func=F.cross_entropy)
df = pd.read_csv(D.path("adult_sample") / "adult.csv").head(600)
tab = tabular_learner(TabularDataLoaders.from_df(df, y_names="salary", cat_names=["workclass"], cont_names=["age"],
                                                 valid_idx=list(range(500, 600)), bs=64, device="cpu"), layers=[8])
pl.DataFrame({"a": list(range(100000))}).sort("a")  # Polars' threads run in the parent
print("pool", polars_pool_running())


def child(call):
    try:
        if call == "plain get_preds":
            preds, targs = plain.get_preds()
            return f"no error {tuple(preds.shape)}"
        if call == "plain fit":
            plain.fit(1, 1e-2)
        elif call == "plain validate":
            plain.validate()
        else:
            tab.get_preds()
    except Exception as e:
        return f"{type(e).__name__}: {e}"
    return "no error"


if __name__ == "__main__":
    with mp.get_context("fork").Pool(1) as pool:
        for call in ["plain get_preds", "plain fit", "plain validate", "tabular get_preds"]:
            try:
                print(call, "->", pool.apply_async(child, (call,)).get(timeout=60))
            except mp.TimeoutError:
                print(call, "-> HANG")
                break
"""


def test_a_learner_over_plain_torch_loaders_works_in_a_forked_worker_a_pipekit_one_is_refused(tmp_path):
    out = run_script(tmp_path, PLAIN_TORCH_AFTER_POLARS_WORK)
    lines = dict(line.split(" -> ", 1) for line in out.splitlines() if " -> " in line)
    assert out.startswith("pool True"), out  # the child is one the fork check is about
    assert "HANG" not in out, out
    assert lines["plain get_preds"] == "no error (64, 2)", out  # no Polars work: nothing to refuse
    assert lines["plain fit"] == "no error" and lines["plain validate"] == "no error", out
    message = lines["tabular get_preds"]
    assert message.startswith("ForkedProcessError: Learner.get_preds: this process"), message


FORKED_AFTER_IMPORT = """
import multiprocessing as mp, sys
import pipekit


def child(rows):
    import pandas as pd
    import pipekit.datasets as D

    df = pd.read_csv(D.path("adult_sample") / "adult.csv")
    learn = pipekit.load_learner(sys.argv[1])
    return [str(learn.predict(df.iloc[i])[0]) for i in rows]


if __name__ == "__main__":
    with mp.get_context("fork").Pool(1) as pool:
        try:
            print("child", ",".join(pool.apply_async(child, ([2000, 2001, 2002, 2003],)).get(timeout=120)))
        except mp.TimeoutError:
            print("child HANG")
"""


def test_a_worker_forked_from_a_process_that_only_imported_pipekit_loads_and_predicts(model_path, expected,
                                                                                         tmp_path):
    out = run_script(tmp_path, FORKED_AFTER_IMPORT, model_path)
    assert out.strip() == "child " + ",".join(expected), out


_IN_WORKER: dict = {}


def predict_row(i: int, path: str) -> str:
    """One adult row's prediction by the learner at ``path``, loaded once per worker process."""
    if path not in _IN_WORKER:
        _IN_WORKER[path] = (pipekit.load_learner(path), pd.read_csv(D.path("adult_sample") / "adult.csv"))
    learn, df = _IN_WORKER[path]
    return str(learn.predict(df.iloc[i])[0])


def test_pipekit_process_pool_runs_a_model_in_its_workers(model_path, expected):
    # this process has loaded and used models (the fixtures): forked workers would hang in Polars
    ex = ProcessPoolExecutor(2)
    try:
        assert ex._mp_context.get_start_method() == "spawn"
        assert list(ex.map(predict_row, ROWS, path=model_path, timeout=240)) == expected
    finally:
        for p in list((ex._processes or {}).values()):  # workers left hanging by a failure: ended, not waited for
            p.kill()
        ex.shutdown(wait=False, cancel_futures=True)
    with ProcessPoolExecutor(max_workers=0) as serial:  # 0 workers: in this process, one after another
        assert list(serial.map(predict_row, ROWS, path=model_path)) == expected


def test_a_process_pool_given_fork_gets_the_error_in_its_workers(model_path, expected):
    import concurrent.futures
    import multiprocessing

    from pipekit.core.errors import ForkedProcessError

    predict_row(ROWS[0], model_path)  # the model used here first: Polars' threads run in this process
    ex = concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork"))
    try:
        with pytest.raises(ForkedProcessError, match="forked from one whose Polars threads were running"):
            ex.submit(predict_row, ROWS[0], model_path).result(timeout=120)
    finally:
        for p in list((ex._processes or {}).values()):
            p.kill()
        ex.shutdown(wait=False, cancel_futures=True)


NO_POLARS_WORK = """
import multiprocessing
from pipekit.basics import ProcessPoolExecutor


def double(x):
    return 2 * x


with ProcessPoolExecutor(2) as ex:  # no guard: with the default start method, workers do not import this script
    print(ex._mp_context.get_start_method(), multiprocessing.get_start_method(), list(ex.map(double, [1, 2, 3])))
"""


def test_a_process_that_did_no_polars_work_starts_the_pool_with_the_default_method(tmp_path):
    method, default, results = run_script(tmp_path, NO_POLARS_WORK).split(" ", 2)
    assert method == default and results.strip() == "[2, 4, 6]"


NO_GUARD_AFTER_POLARS_WORK = """
import polars as pl
from concurrent.futures.process import BrokenProcessPool
from pipekit.basics import ProcessPoolExecutor

pl.DataFrame({"a": list(range(10000))}).sort("a")  # Polars work: the workers are spawned and import this script


def double(x):
    return 2 * x


try:
    with ProcessPoolExecutor(2) as ex:
        print(list(ex.map(double, [1, 2, 3])))
except BrokenProcessPool as e:
    print("BrokenProcessPool:", e)
"""


def test_a_script_without_the_main_guard_is_told_to_add_it(tmp_path):
    out = run_script(tmp_path, NO_GUARD_AFTER_POLARS_WORK)
    assert out.startswith("BrokenProcessPool: "), out
    assert "script.py" in out and 'if __name__ == "__main__":' in out and "spawn" in out, out
