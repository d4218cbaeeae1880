"""Questions pipekit asks in several places answered by one rule: whether items are rows of a table (show_batch,
predict, plot_top_losses), and what ``pipekit cache clear`` freed and left, measured from one listing of each folder."""
from __future__ import annotations

import os

import numpy as np
import polars as pl
import pytest
from PIL import Image

import pipekit.datasets as D
from pipekit.cli import main, megabytes
from pipekit.data import get_image_files
from pipekit.data.cache import cache_usage
from pipekit.data.show import are_table_rows, show_items
from pipekit.tabular.loaders import TabularCatBlock, TabularContBlock
from pipekit.text import TextBlock
from pipekit.vision import ImageBlock, build_image_store


# ---------------------------------------------------------------------------------- rows of a table
class _Picture:
    """A block of a user's own, not a TransformBlock: it says how to draw its value and nothing about columns."""
    draws_on_input = False

    def show(self, ax, value, title=None):
        ax.imshow(value, cmap="gray")


class _Word:
    draws_on_input = False


def test_rows_of_a_table_are_told_by_the_inputs_blocks_alone(tmp_path):
    assert are_table_rows((TabularCatBlock(["a"]), TabularContBlock(["b"]), _Word()), 2)
    assert not are_table_rows((TabularCatBlock(["a"]), ImageBlock()), 2)  # one input of another kind
    assert not are_table_rows((ImageBlock(), TabularCatBlock(["a"])), 1)  # a table block as target only
    assert not are_table_rows((), 1)
    # a block that says nothing about columns is drawn, as predict and plot_top_losses treat it
    img = np.asarray(Image.open(get_image_files(D.path("mnist_tiny") / "train")[0]))
    assert not are_table_rows((_Picture(), _Word()), 1)
    png = show_items([(img, "3")], (_Picture(), _Word()), 1, path=tmp_path / "shown.png")
    assert png == tmp_path / "shown.png" and png.stat().st_size > 1000


# ---------------------------------------------------------------------------------- pipekit cache clear
@pytest.fixture
def both_caches(tmp_path) -> dict[str, tuple[os.PathLike, int]]:
    """A token entry (imdb_sample's texts) and an image pack (mnist_tiny) in ``$PIPEKIT_CACHE``: each kind's folder
    and the bytes pipekit wrote there."""
    texts = pl.read_csv(D.path("imdb_sample") / "texts.csv").head(200)
    TextBlock.from_df("text").setup(texts["text"], np.arange(150))
    build_image_store(get_image_files(D.path("mnist_tiny") / "train")[:30], None, mode="L")
    root = tmp_path / "cache"
    out = {kind: (root / sub, cache_usage(root / sub)[0]) for kind, sub in (("images", "images"), ("tokens", "text"))}
    assert all(size > 0 for _, size in out.values())
    return out


def test_cache_clear_lists_each_folder_once(both_caches, monkeypatch, capsys):
    listed: list[str] = []
    listdir = os.listdir

    def counted(path="."):
        listed.append(os.fspath(path))
        return listdir(path)

    monkeypatch.setattr(os, "listdir", counted)
    assert main(["cache", "clear"]) == 0
    assert capsys.readouterr().out.splitlines() == [f"{kind:<8} freed {megabytes(size)} in {folder}"
                                                    for kind, (folder, size) in both_caches.items()]
    for kind, (folder, _) in both_caches.items():
        assert listed.count(os.fspath(folder)) == 1, kind
        assert not folder.exists()


def test_cache_clear_says_what_it_could_not_remove(both_caches, monkeypatch, capsys):
    folder, size = both_caches["tokens"]
    stuck = next(p for p in folder.rglob("ids.arrow"))
    unlink = os.unlink

    def refused(path, *args, **kwargs):  # a file of another user's in a shared folder, which root may not remove
        if os.fspath(path) == os.fspath(stuck):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return unlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", refused)
    left = stuck.stat().st_size
    assert main(["cache", "clear", "--tokens"]) == 1
    out, err = capsys.readouterr()
    assert out == f"tokens   freed {megabytes(size - left)} in {folder}\n"
    assert f"pipekit cache clear: {megabytes(left)} could not be removed from {folder}" in err
    assert stuck.exists() and cache_usage(folder)[0] == left
