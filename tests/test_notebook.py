"""examples/quickstart.ipynb runs top to bottom in a real Jupyter kernel (ipykernel, driven by nbclient), and
its plots appear inline: the show_batch and confusion-matrix cells carry image/png outputs, and nothing is
written to the PNG folder that a headless run would use."""
from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "quickstart.ipynb"

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not os.environ.get("PIPEKIT_DATA"), reason="the notebook reads mnist_tiny")]


def _cell(nb, text: str):
    (cell,) = [c for c in nb.cells if c.cell_type == "code" and text in c.source]
    return cell


def _pngs(cell) -> list[str]:
    return [o["data"]["image/png"] for o in cell.outputs
            if o.get("output_type") in ("display_data", "execute_result") and "image/png" in o.get("data", {})]


def _one_cell(code: str, tmp_path):
    """A notebook of one cell holding ``code``, its client and the user's environment it runs in (quiet: no table
    or bar unless a test asks)."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND" and not k.startswith(("PYTHON", "PIPEKIT_"))}
    env.update(PIPEKIT_DATA=os.environ["PIPEKIT_DATA"], PIPEKIT_CACHE=str(tmp_path / "cache"),
               PIPEKIT_PLOTS=str(tmp_path / "plots"), OMP_NUM_THREADS="1", PIPEKIT_QUIET="1")
    client = NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    return nb, client, env


def test_quickstart_runs_in_a_kernel_with_inline_plots(tmp_path):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "commit the notebook without outputs"
    # the kernel gets a user's environment: no MPLBACKEND (the tests' Agg would hide the inline backend)
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND" and not k.startswith(("PYTHON", "PIPEKIT_"))}
    # (one torch thread, as tests/test_readme.py explains)
    env.update(PIPEKIT_DATA=os.environ["PIPEKIT_DATA"], PIPEKIT_CACHE=str(tmp_path / "cache"),
               PIPEKIT_PLOTS=str(tmp_path / "plots"), OMP_NUM_THREADS="1")
    client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    bars = []
    real = client._update_display_id

    def spy(display_id, msg):  # the kernel's in-place updates: the progress bar's, while the epoch runs
        html = msg["content"]["data"].get("text/html", "")
        if "<progress" in html:
            bars.append(html)
        return real(display_id, msg)

    client._update_display_id = spy
    client.execute(env=env)  # a failing cell raises CellExecutionError naming it

    batch, cm = _pngs(_cell(nb, "show_batch")), _pngs(_cell(nb, "plot_confusion_matrix"))
    assert len(batch) == 1 and len(cm) == 1, "each plot is shown once, inline"
    assert all(len(png) > 2000 for png in batch + cm)  # base64 PNGs of real figures, not empty canvases
    # the progress table, as text a notebook shows (streamed or displayed)
    training = "".join(o.get("text", "") + o.get("data", {}).get("text/plain", "") for o in _cell(nb, "fit_one_cycle").outputs)
    epochs = [ln.split() for ln in training.splitlines() if ln.split()[:1] == ["0"]]
    assert "train_loss  valid_loss  accuracy" in training and len(epochs) == 1, training
    assert 0.5 < float(epochs[0][3]) <= 1.0, training  # one epoch tells most 3s from 7s
    # the table is HTML in the notebook, its plain text free of terminal colour codes
    fit = _cell(nb, "fit_one_cycle").outputs
    assert any("<th>train_loss</th>" in o.get("data", {}).get("text/html", "") for o in fit), fit
    assert "\x1b[" not in training
    # a bar moved through the epoch's batches in place, and is gone once the fit is done
    assert any("epoch 1/1 train" in b for b in bars) and any("epoch 1/1 valid" in b for b in bars), bars
    assert len({b for b in bars if "train" in b}) >= 2, bars
    assert not any("<progress" in o.get("data", {}).get("text/html", "") for o in fit), fit
    assert not list(tmp_path.rglob("*.png")), "inline plots are not also written as files"


def test_show_graph_updates_one_inline_figure(tmp_path):
    """ShowGraphCallback in a notebook draws one figure and updates it after every epoch, writing no file."""
    code = (
        "import numpy as np, pipekit, pipekit.datasets as D, torch\n"
        "from pipekit.learn import Learner, ShowGraphCallback, accuracy, simple_cnn\n"
        "from pipekit.vision import dataloaders_from_arrays\n"
        "p = D.path('fashion_mnist')\n"
        "x, y = D.read_idx(p / 'train-images-idx3-ubyte.gz')[:256], D.read_idx(p / 'train-labels-idx1-ubyte.gz')[:256]\n"
        "dls = dataloaders_from_arrays(x[:192], y[:192], x[192:], y[192:], vocab=[str(i) for i in range(10)], bs=64)\n"
        "learn = Learner(dls, simple_cnn(1, 10, (8,)), metrics=accuracy)\n"
        "graph = ShowGraphCallback()\n"
        "learn.fit(3, 1e-2, cbs=graph)\n"
        "print('graph file', graph.file_)\n"
    )
    nb, client, env = _one_cell(code, tmp_path)
    updates = []
    real = client._update_display_id

    def spy(display_id, msg):  # the kernel's display messages as they come
        if msg["header"]["msg_type"] == "update_display_data":
            updates.append(display_id)
        return real(display_id, msg)

    client._update_display_id = spy
    client.execute(env=env)
    (cell,) = nb.cells
    pngs = _pngs(cell)
    assert len(pngs) == 1 and len(pngs[0]) > 2000  # one figure, holding the last epoch's graph
    assert len(updates) == 2 and len(set(updates)) == 1  # epochs 2 and 3 redrew it in place
    assert "graph file None" in "".join(o.get("text", "") for o in cell.outputs)
    assert not list(tmp_path.rglob("*.png"))


def test_text_batches_are_tables_in_a_notebook(tmp_path):
    """A text classifier's and a language model's show_batch in a notebook are HTML tables of the texts (text and
    category; text and text_), readable and selectable, as fastai shows them, rather than pictures of text."""
    code = (
        "import polars as pl, pipekit.datasets as D\n"
        "from pipekit.text import TextDataLoaders\n"
        "df = pl.read_csv(D.path('imdb_sample') / 'texts.csv').sample(200, seed=0)\n"
        "dls = TextDataLoaders.from_df(df, text_col='text', label_col='label', valid_col='is_valid', bs=16)\n"
        "dls.show_batch(max_n=3)\n"
        "lm = TextDataLoaders.from_df(df, text_col='text', is_lm=True, valid_col='is_valid', bs=16, seq_len=20)\n"
        "lm.show_batch(max_n=2)\n"
    )
    nb, client, env = _one_cell(code, tmp_path)
    client.execute(env=env)
    (cell,) = nb.cells
    tables = [o["data"]["text/html"] for o in cell.outputs if "text/html" in o.get("data", {})]
    assert not _pngs(cell) and not list(tmp_path.rglob("*.png")), cell.outputs
    assert len(tables) == 2, cell.outputs
    classifier, lm = tables
    assert "<th>text</th><th>category</th>" in classifier and classifier.count("<tr>") == 3, classifier[:300]
    assert ("<td style='text-align: left;'>positive</td>" in classifier
            or "<td style='text-align: left;'>negative</td>" in classifier)
    assert classifier.count("<td style='text-align: left;'>") == 6 and len(classifier) > 1000  # whole reviews
    assert "<th>text</th><th>text_</th>" in lm and lm.count("<tr>") == 2, lm[:300]


def test_users_matplotlib_calls_after_a_plot_change_that_plot(tmp_path):
    """In a notebook, a pipekit figure stays open and current until the cell ends, as matplotlib's own plots:
    ``plt.title`` and drawing on the returned axes change it, and the notebook shows each figure once, with
    the change, rather than a finished figure and a second, empty one."""
    setup = (
        "import warnings\n"
        "import matplotlib.pyplot as plt, numpy as np, pipekit.datasets as D\n"
        "from pipekit.data import CategoryBlock, DataBlock, GrandparentSplitter, get_image_files, parent_label\n"
        "from pipekit.vision import ImageBlock, PILImage, show_image, show_images\n"
        "files = get_image_files(D.path('mnist_tiny'))[::50]\n"
        "img = PILImage.create(files[0])\n"
        "with warnings.catch_warnings():\n"
        "    warnings.simplefilter('ignore')\n"
        "    dls = DataBlock(blocks=(ImageBlock(cls='L'), CategoryBlock), get_items=lambda p: files,\n"
        "                    get_y=parent_label, splitter=GrandparentSplitter()).dataloaders(D.path('mnist_tiny'), bs=8)\n"
    )
    cells = [
        "show_image(img); plt.title('t'); print(len(plt.gcf().axes), plt.gca().get_title())",
        "dls.show_batch(max_n=4)",
        "axs = show_images([img, img]); axs[0].imshow(np.random.rand(28, 28), alpha=0.5)\n"
        "print(len(plt.gcf().axes), len(axs[0].images))",
        "for i in range(3):\n    show_image(img, title=str(i))",
        "print(len(plt.get_fignums()))",
    ]
    nb, client, env = _one_cell(setup, tmp_path)
    nb.cells += [nbformat.v4.new_code_cell(c) for c in cells]
    client.execute(env=env)
    titled, batch, overlaid, loop, after = nb.cells[1:]

    def printed(cell) -> str:
        return "".join(o.get("text", "") for o in cell.outputs if o.get("output_type") == "stream").strip()

    assert printed(titled) == "1 t" and len(_pngs(titled)) == 1, titled.outputs  # the title on the image's axes
    assert len(_pngs(batch)) == 1 and len(_pngs(batch)[0]) > 2000, batch.outputs
    assert printed(overlaid) == "2 2" and len(_pngs(overlaid)) == 1, overlaid.outputs  # the overlay on the first
    assert len(_pngs(loop)) == 3, loop.outputs  # each figure of a loop shown once
    assert printed(after) == "0" and not _pngs(after)  # shown figures are closed when their cell ends
    assert not list(tmp_path.rglob("*.png"))
