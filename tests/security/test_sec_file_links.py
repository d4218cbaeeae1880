"""Links in an image folder: each real file is listed once, so no image lands in both train and valid."""
import os
import shutil
import warnings

import numpy as np
import pytest

import pipekit.datasets as D
from pipekit.data import CategoryBlock, DataBlock, RandomSplitter, get_image_files, parent_label
from pipekit.data.getters import get_files


def _folder(tmp_path, n=4):
    """train-style class folders holding real mnist_tiny digits (n of each)."""
    src = D.path("mnist_tiny") / "train"
    root = tmp_path / "pets"
    for cls, digit in (("cats", "3"), ("dogs", "7")):
        (root / cls).mkdir(parents=True)
        for f in sorted((src / digit).iterdir())[:n]:
            shutil.copy(f, root / cls / f.name)
    return root


def _real(paths):
    return [os.path.realpath(p) for p in paths]


def test_a_loop_link_is_not_followed_and_is_reported(tmp_path):
    root = _folder(tmp_path)
    os.symlink("..", root / "cats" / "loop")
    with pytest.warns(UserWarning, match="lists each file once") as rec:
        files = get_image_files(root)
    msg = str(rec[0].message)
    assert len(files) == 8 and len(set(_real(files))) == 8
    assert all("loop" not in f.parts for f in files)
    assert "cats/loop -> '..' loops back to the folder '.' above it and was not followed" in msg
    assert "the 8 file(s) there again" in msg


def test_duplicates_through_links_are_dropped_counted_and_named(tmp_path):
    root = _folder(tmp_path)
    first_cat = sorted((root / "cats").iterdir())[0]
    os.symlink(os.path.join("..", "cats", first_cat.name), root / "dogs" / "same.png")  # a file link
    os.symlink(os.path.join("..", "cats"), root / "dogs" / "more")  # a folder link
    with pytest.warns(UserWarning) as rec:
        files = get_image_files(root)
    msg = str(rec[0].message)
    assert len(files) == 8 and len(set(_real(files))) == 8
    # the path through no link is the one kept, so parent_label reads the true folder
    assert {f.parent.name for f in files} == {"cats", "dogs"} and first_cat in files
    assert "5 duplicate file(s) reached a second time were skipped" in msg
    assert "4 through dogs/more -> '../cats'" in msg and "1 through dogs/same.png -> '../cats/" in msg


def test_split_has_no_image_in_both_subsets_with_a_loop_and_a_duplicate_link(tmp_path):
    root = _folder(tmp_path, n=8)
    os.symlink("..", root / "cats" / "loop")
    os.symlink(os.path.join("..", "cats", sorted((root / "cats").iterdir())[0].name), root / "dogs" / "dup.png")
    dblock = DataBlock(blocks=(CategoryBlock,), get_items=get_image_files, get_x=parent_label,
                       splitter=RandomSplitter(0.5, seed=0))
    with pytest.warns(UserWarning, match="1 duplicate file"):
        ds = dblock.datasets(root)
    paths = ds.items["path"].to_list()
    assert len(paths) == 16 and len(set(_real(paths))) == 16
    train, valid = (set(_real([paths[i] for i in s])) for s in ds.splits)
    assert train.isdisjoint(valid) and len(train) + len(valid) == 16


def test_folders_listed_through_two_roots_count_once(tmp_path):
    """``folders=['train', 'valid']`` where valid links to a train class: the linked files are dropped."""
    root = tmp_path / "set"
    (root / "valid").mkdir(parents=True)
    shutil.copytree(_folder(tmp_path), root / "train")
    os.symlink(os.path.join("..", "train", "cats"), root / "valid" / "cats")
    with pytest.warns(UserWarning, match="4 through valid/cats"):
        files = get_files(root, extensions=[".png"], folders=["train", "valid"])
    assert len(files) == 8 and all(f.parts[-3] == "train" for f in files)


def test_links_outside_the_folder_and_plain_folders_stay_quiet(tmp_path):
    root = _folder(tmp_path)
    other = _folder(tmp_path / "elsewhere")
    os.symlink(other / "cats", root / "more_cats")  # a real extra folder, reached through a link
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        files = get_image_files(root)
        assert len(get_image_files(D.path("mnist_tiny"), folders=["train", "valid"])) == 1408
    assert len(files) == 12 and sum(f.parent.name == "more_cats" for f in files) == 4
    assert np.unique(_real(files)).size == 12
    assert len(get_files(root, followlinks=False)) == 8
