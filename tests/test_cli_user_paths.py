"""`pipekit run` as a user meets it from a shell: a wrong option value is argparse's one-line error before any work,
a pipekit error of a built-in recipe is one line, Ctrl-C is one line and status 130, an explicit option wins over
--quick, an --out folder never looks complete when its run did not finish, and the help says where a recipe's own
options are. Each command runs in a subprocess, as the shell runs it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

DATA = os.environ.get("PIPEKIT_DATA", str(Path(__file__).resolve().parents[2] / "shared" / "data"))


def _env(tmp_path: Path) -> dict[str, str]:
    return dict(
        os.environ,
        PIPEKIT_DATA=DATA,
        PIPEKIT_QUIET="1",
        PIPEKIT_CACHE=str(tmp_path / "cache"),
        PIPEKIT_PLOTS=str(tmp_path / "plots"),
        MPLBACKEND="Agg",
    )


def pipekit(tmp_path: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipekit", *args],
        cwd=tmp_path,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def started(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    """``pipekit ARGS`` started as a shell starts it: SIGINT (Ctrl-C) at its default action."""
    return subprocess.Popen(
        [sys.executable, "-m", "pipekit", *args],
        cwd=tmp_path,
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


@pytest.mark.parametrize(
    "args, said",
    [
        (["movielens", "--epochs", "0"], "argument --epochs: expected an integer in [1, inf], got '0'"),
        (["adult", "--epochs", "-2"], "argument --epochs: expected an integer in [1, inf], got '-2'"),
        (["movielens", "--factors", "0"], "argument --factors: expected an integer in [1, inf], got '0'"),
        (["movielens", "--lr", "nan"], "argument --lr: expected a number in (0, inf), got 'nan'"),
        (
            ["adult_ensemble", "--quick", "--time-limit", "-1", "--out", "{out}"],
            "argument --time-limit: expected a number in (0, inf), got '-1'",
        ),
        (
            ["adult_ensemble", "--quick", "--out", "{file}"],
            "argument --out: '{file}' is a file, not a folder",
        ),
        (
            ["fashion_mnist", "--quick", "--n-train", "0"],
            "argument --n-train: expected an integer in [1, inf], got '0'",
        ),
        (["imdb_sample", "--quick", "--emb", "0"], "argument --emb: expected an integer in [1, inf], got '0'"),
    ],
)
def test_a_bad_option_value_is_one_line_before_any_work(args, said, tmp_path):
    out, file = tmp_path / "out", tmp_path / "afile"
    file.write_text("x\n")
    args = [a.format(out=out, file=file) for a in args]
    r = pipekit(tmp_path, "run", *args)
    assert r.returncode == 2, r.stderr[-3000:]
    assert "Traceback" not in r.stderr and r.stdout == ""
    assert r.stderr.splitlines()[0].startswith(f"usage: pipekit run {args[0]} ")
    last = r.stderr.splitlines()[-1]
    assert last.startswith(f"pipekit run {args[0]}: error: {said.format(file=file)}"), r.stderr
    assert not out.exists() and file.read_text() == "x\n"  # nothing fitted, nothing written


def test_a_pipekit_error_of_a_builtin_recipe_is_one_line_and_a_users_file_keeps_its_traceback(tmp_path):
    r = pipekit(tmp_path, "run", "coco_tiny", "--probe", "--scratch")
    assert (
        r.returncode == 1
        and r.stderr
        == "pipekit run coco_tiny: linear_probe and box_probe need the pretrained weights and the single-label task\n"
    ), r.stderr[-3000:]
    # a bad option value stops a built-in recipe at its parser, before any work
    r = pipekit(tmp_path, "run", "adult_ensemble", "--quick", "--n-jobs", "0")
    assert r.returncode == 2 and r.stderr.strip().endswith(
        "error: argument --n-jobs: expected -1 (every core) or a positive integer, got '0'"), r.stderr[-3000:]
    # the user's own file: the error with the line of the file that made the call, as `python mine.py` shows it
    (tmp_path / "mine.py").write_text(
        "from pipekit.core.validate import check_positive_int\ncheck_positive_int('mine', 'epochs', 0)\n"
    )
    r = pipekit(tmp_path, "run", "mine.py")
    assert r.returncode == 1 and "Traceback" in r.stderr and 'mine.py", line 2' in r.stderr
    assert r.stderr.strip().endswith("ParameterError: mine: epochs must be a positive integer, got 0")


def fitting(tmp_path, name: str, setup: str):
    """``pipekit run`` of a recipe file ``name`` that runs ``setup``, prints 'fitting' and then loops for ever,
    once it has printed that line."""
    (tmp_path / name).write_text(textwrap.dedent(setup).strip() + textwrap.dedent("""
        print("fitting", flush=True)
        while True:
            time.sleep(0.05)
    """))
    p = started(tmp_path, "run", name)
    assert p.stdout is not None and p.stdout.readline() == "fitting\n"
    return p


def test_ctrl_c_during_a_run_is_one_line_and_status_130(tmp_path):
    p = fitting(tmp_path, "slow.py", "import time")
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130 and err == "pipekit: interrupted\n", (p.returncode, err[-3000:])


def test_a_second_ctrl_c_ends_a_run_whose_threads_keep_it_from_exiting(tmp_path):
    """A recipe whose work goes on in a thread (a fit in a thread pool): the first Ctrl-C prints the one line, and
    the interpreter then waits for that thread; a second Ctrl-C ends the process at once, without a traceback of the
    interpreter's shutdown."""
    p = fitting(tmp_path, "threaded.py", """
        import threading, time
        threading.Thread(target=time.sleep, args=(60,)).start()   # not a daemon: the interpreter waits for it""")
    p.send_signal(signal.SIGINT)
    assert p.stderr is not None and p.stderr.readline() == "pipekit: interrupted\n"
    time.sleep(0.5)  # waiting for the thread now
    assert p.poll() is None
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=20)
    assert p.returncode == -signal.SIGINT and err == "", (p.returncode, err[-3000:])


def test_an_interrupted_run_leaves_no_previous_result_beside_its_outputs(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "result.json").write_text(json.dumps({"quick": True, "seconds": 1.0}))  # a previous run's record
    (out / "adult_weighted.pipekit").write_bytes(b"previous")
    p = started(tmp_path, "run", "adult_ensemble", "--quick", "--seed", "7", "--out", str(out))
    deadline = time.monotonic() + 120
    while (out / "result.json").exists() and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # into the fitting
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    # the fit may have warned before the signal: the interruption is the last line, with no traceback. The status is
    # 130, or, now and then on a loaded machine, an end by SIGINT after that line, which a shell shows as 130 too
    assert p.returncode in (130, -signal.SIGINT) and err.endswith("pipekit: interrupted\n") \
        and "Traceback" not in err, (p.returncode, err[-3000:])
    assert not (out / "result.json").exists()  # the folder does not look like a finished run


def test_a_finished_run_records_its_arguments_and_an_explicit_epochs_wins_over_quick(tmp_path):
    out = tmp_path / "out"
    r = pipekit(
        tmp_path,
        "run",
        "adult_ensemble",
        "--quick",
        "--epochs",
        "2",
        "--seed",
        "3",
        "--time-limit",
        "5",
        "--out",
        str(out),
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((out / "result.json").read_text())
    assert res["args"] == {"quick": True, "epochs": 2, "seed": 3, "n_jobs": 1, "time_limit": 5.0}
    assert sorted(p.name for p in out.iterdir()) == sorted([*res["files"], "result.json"])


@pytest.mark.parametrize(
    "args, said",
    [
        (["movielens", "--quick", "--epochs", "1"], "50 factors, 1 epochs"),
        (["adult", "--quick", "--epochs", "2", "--features", "book"], "; 2 epochs, "),
    ],
)
def test_an_explicit_option_wins_over_quick(args, said, tmp_path):
    r = pipekit(tmp_path, "run", *args)
    assert r.returncode == 0, r.stderr[-3000:]
    assert said in next(ln for ln in r.stdout.splitlines() if ln.startswith("result:"))


def test_the_help_says_where_a_recipes_options_are_and_names_the_command(tmp_path):
    r = pipekit(tmp_path, "run", "--help")
    assert r.returncode == 0 and "`pipekit run NAME --help` lists them" in " ".join(r.stdout.split())
    assert "a built-in recipe's name (pipekit run --list names them)" in " ".join(r.stdout.split())
    r = pipekit(tmp_path, "run", "movielens", "--help")
    assert r.returncode == 0 and r.stdout.startswith("usage: pipekit run movielens [-h] [--quick]")
    assert "3 epochs unless --epochs is given" in " ".join(r.stdout.split())
    r = pipekit(tmp_path, "run", "--list", "movielens")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.splitlines()[-1].startswith(
        "pipekit run: error: --list takes no recipe name, got movielens"
    )
    r = pipekit(tmp_path, "run", "--quick", "movielens")
    assert r.returncode == 2 and r.stderr.startswith("usage: pipekit run ")
