"""Every ```python block of the README runs when pasted by itself: each in a fresh interpreter, in an empty
folder, headless (figures become PNG files), on the real data sets, with pipekit's warnings as errors (as pytest's
``-W error::pipekit.PipekitWarning``, which the README suggests, makes them): an example follows its warnings' advice.

The blocks are sized for a CPU; together they get README_BUDGET_S seconds (a guard against a block that
grows to the full-size run, not a speed target). A block's section may also say what its output must show.
"""
from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
README_BUDGET_S = 900
# block.py run as a script with pipekit's warnings as errors: python's own -W error::pipekit.PipekitWarning is read
# before site-packages is on the path, so it cannot name pipekit's category (pytest's -W can)
_WARNINGS_AS_ERRORS = ("import runpy, warnings, pipekit; warnings.simplefilter('error', pipekit.PipekitWarning); "
                       "runpy.run_path('block.py', run_name='__main__')")
_started: list[float] = []

pytestmark = pytest.mark.skipif(not os.environ.get("PIPEKIT_DATA"), reason="the README reads the real data sets")


def readme_blocks() -> list[tuple[str, str]]:
    """``(section#n, code)`` for every python block, ``n`` counting the blocks of its section."""
    blocks, section, count = [], "top", 0
    for part in re.split(r"^(## .*)$", README.read_text(), flags=re.M):
        if part.startswith("## "):
            section, count = part[3:].strip(), 0
            continue
        for code in re.findall(r"^```python\n(.*?)^```", part, flags=re.M | re.S):
            count += 1
            blocks.append((f"{section}#{count}", code))
    return blocks


def _last(out: str):
    """The block's last printed line, as the Python value it shows."""
    return ast.literal_eval(out.strip().splitlines()[-1])


def _ten_lines(out: str, work: Path) -> None:
    assert "Collecting items: 32561 rows" in out and "['<50k', '>=50k'] torch.Size([64, 1])" in out


def _images(out: str, work: Path) -> None:
    # headless: show_batch wrote its figure instead of showing it
    assert [p.suffix for p in (work / "plots").iterdir()] == [".png"]
    assert 0.0 <= _last(out)[1] <= 1.0  # validate: [valid_loss, accuracy]


def _text(out: str, work: Path) -> None:
    assert (work / "models" / "enc.pipekit").is_file()
    assert out.strip().splitlines()[-1].startswith(("('positive', tensor(", "('negative', tensor("))


def _learner(out: str, work: Path) -> None:
    label, reloaded = out.strip().splitlines()[-1].split()
    assert label == reloaded and label in ("3", "7") and "SuggestedLRs(valley=" in out
    assert (work / "model.pipekit").is_file()


def _tabular(out: str, work: Path) -> None:
    lines = out.strip().splitlines()
    validated = ast.literal_eval(next(ln for ln in lines if ln.startswith("[")))
    assert validated[1] > 0.75  # accuracy; predicting '<50k' for everyone scores 0.76
    # row.show(): the CSV's first row (age 49) as the model read it, its prediction in the salary column
    header, values = [ln for ln in lines if "┆" in ln][:2]
    cells = dict(zip((c.strip() for c in header.strip("│ ").split("┆")), (v.strip() for v in values.strip("│ ").split("┆"))))
    assert cells["age"] == "49.0" and cells["occupation"] == "#na#" and cells["salary"] in ("<50k", ">=50k")


def _collab(out: str, work: Path) -> None:
    similar = _last(out)
    assert len(similar) == 3 and all(-1 <= sim <= 1 for _, sim in similar)


def _ensembles(out: str, work: Path) -> None:
    assert (work / "adult_ensemble.pipekit").is_file() and float(out.strip().splitlines()[-1]) > 0.75
    paired = re.search(r"accuracy: (0\.\d+) - (0\.\d+) = ([+-]0\.\d+) \(95% interval ([+-]0\.\d+) to ([+-]0\.\d+) "
                       r"over 6512 rows: (a is better|b is better|a tie)\)", out)
    assert paired, out
    a, b, diff, low, high = (float(v) for v in paired.groups()[:5])
    assert abs(a - b - diff) < 2e-4 and low <= diff <= high


def _cross_val(out: str, work: Path) -> None:
    # scikit-learn turns a fold's failed scoring (a warning made an error) into a warning and a nan score
    scores = [float(v) for v in out.strip().splitlines()[-1].strip("[]").split()]
    assert len(scores) == 3 and all(0.8 < v < 0.95 for v in scores), out


def _core(out: str, work: Path) -> None:
    assert "RandomSplitter: valid_pct=1.5 is not accepted" in out
    assert out.strip().endswith("RandomSplitter(valid_pct=0.1, seed=7)")


def _bench(out: str, work: Path) -> None:
    lines = out.strip().splitlines()
    assert "steady state (warm epochs)" in out and "items/s first epoch incl." in lines[-3]
    assert lines[-2].startswith(("pipekit is", "torch is", "no clear winner"))
    assert lines[-1].startswith(("the loader limits", "the model limits", "loader and model are balanced"))


# what some blocks' output must show, beyond running: check(stdout, the block's folder)
EXPECT = {
    "Ten lines#1": _ten_lines,
    "Images (`pipekit.vision`)#1": _images,
    "Text (`pipekit.text`)#1": _text,
    "Training: one `Learner` (`pipekit.learn`)#1": _learner,
    "Tables and recommendations (`pipekit.tabular`)#1": _tabular,
    "Tables and recommendations (`pipekit.tabular`)#2": _collab,
    "Forests, GBMs and ensembles (`pipekit.backends`, `pipekit.ensemble`, `pipekit.inspection`)#1": _ensembles,
    "Components and files (`pipekit.core`)#1": _core,
    "In scikit-learn's tools, and the ecosystem's pieces in pipekit#1": _cross_val,
    "Benchmarking a data loader (`pipekit.bench`)#1": _bench,
}


def test_the_readme_has_its_blocks_and_expectations():
    names = [name for name, _ in readme_blocks()]
    assert len(names) >= 8 and len(set(names)) == len(names)
    assert set(EXPECT) <= set(names), f"expectations for blocks the README no longer has: {set(EXPECT) - set(names)}"
    # exactly two set-up commands, the ones CI and a new user run
    setup = re.search(r"## Two commands\n\n```bash\n(.*?)```", README.read_text(), flags=re.S)
    assert setup and [ln.split()[:2] for ln in setup.group(1).splitlines()] == [["make", "demo"], ["make", "test"]]


@pytest.mark.slow
@pytest.mark.parametrize("name, code", readme_blocks(), ids=[n for n, _ in readme_blocks()])
def test_readme_block_runs_by_itself(name, code, tmp_path):
    if not _started:
        _started.append(time.monotonic())
    left = README_BUDGET_S - (time.monotonic() - _started[0])
    assert left > 0, f"the README's blocks took more than {README_BUDGET_S} s together; size them for a CPU"
    (tmp_path / "block.py").write_text(code)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PIPEKIT_"))}
    # one torch thread: on these 2-core machines, shared with other processes, two threads that wait on
    # each other made the text block's language-model epoch 10x slower (78 s against 8 s)
    env.update(PIPEKIT_DATA=os.environ["PIPEKIT_DATA"], PIPEKIT_CACHE=str(tmp_path / "cache"),
               PIPEKIT_PLOTS=str(tmp_path / "plots"), MPLBACKEND="Agg", OMP_NUM_THREADS="1")
    try:
        r = subprocess.run([sys.executable, "-c", _WARNINGS_AS_ERRORS], cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=left)
    except subprocess.TimeoutExpired:
        pytest.fail(f"README block {name} did not finish within the README's remaining {left:.0f} s budget")
    assert r.returncode == 0, f"README block {name} failed:\n{r.stderr[-4000:]}"
    if name in EXPECT:
        EXPECT[name](r.stdout, tmp_path)
