"""Where pipekit's figures go outside a notebook: a PNG file when nothing can show them, a window (the
backend's show) when something can, and never a switch of the backend the user has or chose.

Each case runs in a fresh interpreter, as a script would: matplotlib picks its backend once per process.
(tests/test_notebook.py covers the inline case in a real Jupyter kernel.)
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not os.environ.get("PIPEKIT_DATA"), reason="draws a batch of mnist_tiny")

# a small batch of real digits, drawn by show_batch; the script reports what happened as JSON
SHOW_BATCH = """
import json, os, warnings
import matplotlib
{before}
import pipekit.datasets as D
from pipekit.data import CategoryBlock, DataBlock, GrandparentSplitter, get_image_files, parent_label
from pipekit.vision import ImageBlock

backend_before = matplotlib.get_backend()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # the unlabelled test/ folder is left out of the split
    dls = DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock), get_items=lambda p: get_image_files(p)[::50],
                    get_y=parent_label, splitter=GrandparentSplitter()).dataloaders(D.path("mnist_tiny"), bs=8, seed=0)
written = dls.show_batch(max_n=4)
{after}
print(json.dumps({{"backend_before": backend_before, "backend_after": matplotlib.get_backend(),
                  "written": str(written) if written else None, "extra": extra}}))
"""


def run_script(tmp_path: Path, before: str = "", after: str = "extra = None", env: dict | None = None) -> dict:
    (tmp_path / "script.py").write_text(SHOW_BATCH.format(before=textwrap.dedent(before), after=textwrap.dedent(after)))
    # a headless user's environment: no screen, no backend chosen by the tests
    base = {k: v for k, v in os.environ.items()
            if k not in ("MPLBACKEND", "DISPLAY", "WAYLAND_DISPLAY") and not k.startswith(("PYTHON", "PIPEKIT_"))}
    base.update(PIPEKIT_DATA=os.environ["PIPEKIT_DATA"], PIPEKIT_CACHE=str(tmp_path / "cache"),
                PIPEKIT_PLOTS=str(tmp_path / "plots"), MPLCONFIGDIR=str(tmp_path / "mpl"), **(env or {}))
    r = subprocess.run([sys.executable, "script.py"], cwd=tmp_path, env=base, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_headless_script_writes_a_png_and_keeps_matplotlibs_backend(tmp_path):
    got = run_script(tmp_path)
    assert got["backend_before"].lower() == got["backend_after"].lower() == "agg"  # matplotlib's own fallback
    png = Path(got["written"])
    assert png.parent == tmp_path / "plots" and png.suffix == ".png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 2000


def test_each_headless_figure_keeps_its_own_file(tmp_path):
    got = run_script(tmp_path, after="""
        valid = dls.valid.show_batch(max_n=4)
        extra = [str(valid), str(dls.show_batch(max_n=2))]
        """)
    first, second, third = Path(got["written"]), *map(Path, got["extra"])
    assert [p.name for p in (first, second, third)] == ["show_batch.png", "show_batch_2.png", "show_batch_3.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in (first, second, third))
    assert len({p.read_bytes() for p in (first, second, third)}) == 3  # three figures, none written over


def test_a_backend_the_user_chose_stays_chosen(tmp_path):
    got = run_script(tmp_path, before='matplotlib.use("svg")')
    assert got["backend_before"] == got["backend_after"] == "svg"
    assert Path(got["written"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # svg cannot show: a PNG file instead


def test_with_a_screen_figures_are_shown_and_the_users_show_still_works(tmp_path):
    # an interactive backend stand-in: it records each plt.show() and how many figures were open then
    (tmp_path / "recording_backend.py").write_text(textwrap.dedent("""
        from matplotlib._pylab_helpers import Gcf
        from matplotlib.backend_bases import FigureManagerBase
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        SHOWN = []

        class FigureCanvas(FigureCanvasAgg):
            manager_class = FigureManagerBase

        def show(*args, **kwargs):
            SHOWN.append(len(Gcf.get_all_fig_managers()))
    """))
    after = """
        import matplotlib.pyplot as plt
        import recording_backend
        plt.plot([0, 1], [1, 0])
        plt.show()  # the user's own figure, after pipekit's
        extra = recording_backend.SHOWN
    """
    got = run_script(tmp_path, after=after, env={"MPLBACKEND": "module://recording_backend", "PYTHONPATH": str(tmp_path)})
    assert got["backend_before"] == got["backend_after"] == "module://recording_backend"
    assert got["written"] is None and not (tmp_path / "plots").exists()  # shown, not written
    assert got["extra"] == [1, 1]  # pipekit's batch, then the user's figure, each shown while open


def test_headless_user_calls_after_a_plot_act_on_it(tmp_path):
    # a script's habit: pipekit's plot, then the user's own title and file; then a loop of plots
    got = run_script(tmp_path, after="""
        import matplotlib.pyplot as plt
        n_axes = len(plt.gcf().axes)
        plt.suptitle("s")
        plt.savefig("mine.png")
        suptitle = plt.gcf().get_suptitle()
        open_after = []
        for _ in range(10):
            dls.show_batch(max_n=2)
            open_after.append(len(plt.get_fignums()))
        extra = {"n_axes": n_axes, "suptitle": suptitle, "open_after": open_after}
        """)
    import numpy as np
    from PIL import Image

    assert got["extra"]["n_axes"] == 4 and got["extra"]["suptitle"] == "s"  # the batch's figure, not a new one
    theirs = np.asarray(Image.open(got["written"]).convert("L"), dtype=float)
    mine = np.asarray(Image.open(tmp_path / "mine.png").convert("L"), dtype=float)
    # the user's file holds the batch of digits (dark pictures on white), not a blank page with a title
    assert mine.std() > 0.7 * theirs.std() and (mine < 64).mean() > 0.5 * (theirs < 64).mean()
    assert got["extra"]["open_after"] == [1] * 10  # each plot closes the one before: no pile of figures
    assert (tmp_path / "plots" / "show_batch_11.png").exists()  # and each still wrote its own file
