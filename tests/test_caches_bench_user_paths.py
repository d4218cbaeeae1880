"""What a user meets around the caches, the loader profile and recipe files: cleaning a folder of images and
rebuilding keeps one presized copy on disk, a CSV copied over with its size and time kept is read anew, a cold
profile builds a block's own cache folder anew, ``--compare reference`` refuses what it cannot mirror before
measuring, and a recipe or a relative folder that cannot be used is named in one line."""
from __future__ import annotations

import os
import shutil
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest

import pipekit.datasets as D
from pipekit.data import CategoryBlock, DataBlock, GrandparentSplitter, get_image_files, parent_label
from pipekit.vision import ImageBlock, Resize

pytestmark = [pytest.mark.data, pytest.mark.filterwarnings("ignore:.*in neither the training")]


@pytest.fixture
def digits(tmp_path) -> Path:
    """A copy of mnist_tiny's train/ and valid/ folders, to delete and replace images in."""
    out = tmp_path / "mnist_tiny"
    for sub in ("train", "valid"):
        shutil.copytree(D.path("mnist_tiny") / sub, out / sub)
    return out


def _digits_block(cache_dir) -> DataBlock:
    return DataBlock(blocks=(ImageBlock(cls="L", cache_dir=cache_dir), CategoryBlock), get_items=get_image_files,
                     get_y=parent_label, splitter=GrandparentSplitter(), item_tfms=[Resize(32)])


def _pixels(path: Path, cache_dir) -> tuple[list[str], np.ndarray]:
    """The items and the pixels of every item of both loaders, as the loaders serve them."""
    dls = _digits_block(cache_dir).dataloaders(path, bs=64, seed=0, num_workers=0, device="cpu")
    items, pixels = [], []
    for dl in dls.loaders:
        ds = dl.dataset
        items += [str(x) for x in ds.items]
        pixels.append(ds.stores[0].gather(ds.idxs).numpy())
    return items, np.concatenate(pixels)


def _bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def test_deleting_or_replacing_images_and_rebuilding_keeps_about_one_pack_on_disk(digits, tmp_path):
    """The book's clean-up: delete a few images (or replace one), build the loaders again. Each rebuild used to
    keep the whole previous pack for the one entry of the deleted file, so the cache grew by a pack per round."""
    cache = tmp_path / "cache"
    _, first = _pixels(digits, cache)
    one_pack = _bytes(cache / "images")
    victims = [digits / "train" / "3" / "7.png", digits / "train" / "7" / "7301.png", digits / "valid" / "3" / "7730.png"]
    for f in victims:
        f.unlink()
        items, served = _pixels(digits, cache)
        assert _bytes(cache / "images") < 1.1 * one_pack, f"after deleting {f.name}"
        assert len(list((cache / "images").rglob("*.npy"))) == 1
        # the pixels served are those of the files there now, decoded without any cache
        assert np.array_equal(served, _pixels(digits, False)[1])
        assert str(f) not in items
    assert len(served) == len(first) - 3
    # one image replaced by another (its old content's entry goes with the old pack)
    shutil.copy(sorted((digits / "train" / "7").glob("*.png"))[0], digits / "train" / "3" / "7463.png")
    _, served = _pixels(digits, cache)
    assert _bytes(cache / "images") < 1.1 * one_pack
    assert np.array_equal(served, _pixels(digits, False)[1])


def test_building_a_sample_of_a_folder_keeps_the_folders_own_pack(digits, tmp_path):
    """A build sharing fewer of a pack's files (here half of them, as a quick run on a sample does) is another
    data set: the folder's own pack stays, and its next build decodes nothing."""
    from pipekit.vision import build_image_store

    files = sorted(get_image_files(digits))
    cache = tmp_path / "cache"
    whole = build_image_store(files, Resize(32), mode="L", cache_dir=cache)
    half = build_image_store(files[::2], Resize(32), mode="L", cache_dir=cache)
    assert half.n_reused_ == len(files[::2]) and half.path_ != whole.path_
    again = build_image_store(files, Resize(32), mode="L", cache_dir=cache)
    assert again.n_decoded_ == 0 and again.path_ == whole.path_
    assert len(list(whole.path_.parent.glob("*.npy"))) == 2


@pytest.mark.parametrize("how", ["os.utime", "copy2"])
def test_a_csv_copied_over_with_its_size_and_time_kept_is_read_anew(tmp_path, how):
    """A file fixed in place (``cp -p fixed.csv data.csv``, ``rsync -t``) keeps its size and modification time:
    what was remembered about the old file's blank lines must not be used for the new one."""
    from pipekit.data.items import read_csv

    lines = (D.path("adult_sample") / "adult.csv").read_text().splitlines(keepends=True)[:21]
    blank = " " * (len(lines[5]) - 1) + "\n"  # a line of spaces as long as the row it stands for
    old, new = "".join(lines[:5] + [blank] + lines[6:]), "".join(lines)
    assert len(old) == len(new)
    p = tmp_path / "adult.csv"
    p.write_text(old)
    with pytest.warns(UserWarning, match=r"skipped 1 blank line\(s\) \(line 6\)"):
        assert read_csv(p).height == 19  # the line of spaces is no row
    st = p.stat()
    if how == "os.utime":  # written in place, its time set back
        p.write_text(new)
        os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    else:  # cp -p: the fixed copy's bytes and times over the file
        fixed = tmp_path / "fixed.csv"
        fixed.write_text(new)
        os.utime(fixed, ns=(st.st_atime_ns, st.st_mtime_ns))
        shutil.copy2(fixed, p)
    assert (p.stat().st_size, p.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    frame = read_csv(p)
    shutil.copy(p, tmp_path / "check.csv")  # the same bytes under a name read for the first time
    assert frame.height == 20 and frame.equals(read_csv(tmp_path / "check.csv"))


def test_blank_lines_are_dropped_without_a_polars_deprecation_warning(tmp_path):
    from pipekit.data.items import read_csv

    lines = (D.path("adult_sample") / "adult.csv").read_text().splitlines(keepends=True)[:11]
    p = tmp_path / "blank.csv"
    p.write_text("".join(lines[:4] + ["\n"] + lines[4:]))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frame = read_csv(p)
    assert frame.height == 10
    assert not [w for w in caught if issubclass(w.category, DeprecationWarning)], [str(w.message) for w in caught]


def test_a_cold_profile_builds_a_blocks_own_cache_folder_anew_and_leaves_it_alone(tmp_path, monkeypatch):
    """``profile(cold=True)`` says its first epoch includes building the cache: with ``ImageBlock(cache_dir=...)``
    the user's folder was used (warm), and filled."""
    from pipekit.bench import profile

    own = tmp_path / "own_cache"
    source = D.path("mnist_tiny")
    _digits_block(str(own)).dataloaders(source, bs=64, seed=0, num_workers=0, device="cpu")  # the user's, warm
    before = {f: f.stat().st_mtime_ns for f in own.rglob("*")}
    p = profile(_digits_block(str(own)), source=source, n_batches=2, warm_epochs=1, bs=64, seed=0, num_workers=0,
                device="cpu")
    n_files = len(get_image_files(source / "train")) + len(get_image_files(source / "valid"))
    decoded = sum(s.calls for s in p.cold.stages if s.name == "decode" and s.where == "build")
    assert decoded == n_files and "cache build included" in p.cold.label
    assert {f: f.stat().st_mtime_ns for f in own.rglob("*")} == before  # the user's folder as it was
    # a warm profile (cold=False) uses the block's folder as it is, and says so
    warm = profile(_digits_block(str(own)), source=source, n_batches=2, warm_epochs=1, bs=64, seed=0,
                   num_workers=0, device="cpu", cold=False)
    assert not any(s.name == "decode" for s in warm.cold.stages) and "already built" in warm.cold.label


TEXT_RECIPE = '''
import os
from pathlib import Path
import polars as pl
from pipekit.data import CategoryBlock, ColReader, ColSplitter, DataBlock
from pipekit.text import TextBlock


def datablock():
    df = pl.read_csv(Path(os.environ["PIPEKIT_DATA"]) / "imdb_sample" / "texts.csv")
    return DataBlock(blocks=(TextBlock.from_df("text"), CategoryBlock), get_x=ColReader("text"),
                     get_y=ColReader("label"), splitter=ColSplitter("is_valid")), df
'''


def test_compare_reference_on_a_text_datablock_is_refused_before_anything_is_measured(tmp_path, monkeypatch):
    import pipekit.bench
    from pipekit.cli import main

    def measured(*args, **kwargs):
        raise AssertionError("the loader was measured before --compare reference was checked")

    monkeypatch.setattr(pipekit.bench, "profile", measured)
    monkeypatch.setattr(pipekit.bench, "sweep", measured)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my_text.py").write_text(TEXT_RECIPE)
    with pytest.raises(SystemExit, match=r"--compare reference: the reference is written for one image input.*"
                                         r"\['TextBlock', 'CategoryBlock'\].*--compare other_recipe.py"):
        main(["bench-loader", "my_text.py", "--compare", "reference", "--workers", "0,1", "--json", "x.json"])
    assert not (tmp_path / "x.json").exists()


@pytest.mark.parametrize("command", ["summary", "bench-loader"])
def test_a_recipe_function_that_needs_arguments_is_named_in_one_line(tmp_path, monkeypatch, command):
    from pipekit.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "needsarg.py").write_text(textwrap.dedent('''
        from pipekit.data import CategoryBlock, DataBlock, get_image_files, parent_label
        from pipekit.vision import ImageBlock, Resize

        def datablock(size):
            return DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=get_image_files, get_y=parent_label,
                             item_tfms=Resize(size)), "."
        '''))
    with pytest.raises(SystemExit) as e:
        main([command, "needsarg.py"])
    said = str(e.value.code)
    assert str(tmp_path / "needsarg.py") in said and "datablock() is called with no arguments" in said
    assert "'size'" in said and "give that parameter a default (def datablock(size=...):)" in said
    # dataloaders() gets the loader settings it takes; another parameter without a default is named the same way
    (tmp_path / "needsdl.py").write_text("def dataloaders(path, bs=16):\n    raise AssertionError('called')\n")
    with pytest.raises(SystemExit, match=r"needsdl.py: dataloaders\(\) is called with only the loader settings it "
                                         r"takes.*needs 'path'"):
        main([command, "needsdl.py"])


def test_a_relative_folder_that_does_not_exist_is_named_with_the_working_folder(tmp_path, monkeypatch):
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    with pytest.raises(FileNotFoundError) as e:
        get_image_files("../data/mnist_tiny")
    said = str(e.value)
    assert said.startswith("get_files: ../data/mnist_tiny does not exist")
    assert f"looked for {tmp_path / 'data' / 'mnist_tiny'}" in said and f"working folder {tmp_path / 'work'}" in said
