"""fastai's ``L``: the finders, ``ls()`` and ``verify_images`` give a list with the book's methods, on mnist_tiny."""
import copy
import json
import os
import pickle
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import pipekit.datasets as D
import pipekit.text
from pipekit.core.errors import DataError
from pipekit.data import L, get_files, get_image_files, get_text_files, to_items
from pipekit.data import lists as lists_module
from pipekit.vision import verify_images

MNIST = D.path("mnist_tiny")

pytestmark = pytest.mark.data


@pytest.fixture(scope="module")
def fnames():
    return get_image_files(MNIST / "train")


# ---------------------------------------------------------------------------------------- the finders give an L
def test_get_image_files_is_an_L_and_still_a_list(fnames):
    assert type(fnames) is L and isinstance(fnames, list) and len(fnames) == 709
    as_list = list(fnames)
    assert fnames == as_list and as_list == fnames and L([1]) == [1] and [1] == L([1])
    assert isinstance(fnames[0], Path) and fnames[0] == as_list[0] and fnames[-1] == as_list[-1]
    assert type(fnames[::100]) is L and fnames[::100] == as_list[::100]
    assert json.loads(json.dumps(fnames.map(str))) == [str(p) for p in as_list]
    assert to_items(fnames).equals(to_items(as_list))  # pipekit's own readers take it as the list it is


def test_sorted_as_the_book_and_kaggle_sort(fnames):
    # the paddy notebook's get_image_files(path).sorted()
    assert type(fnames.sorted()) is L and fnames.sorted() == sorted(fnames)
    assert fnames.sorted(reverse=True) == sorted(fnames, reverse=True)
    assert fnames.sorted("name") == sorted(fnames, key=lambda p: p.name)  # an attribute name, as fastcore's
    assert fnames.sorted(lambda p: p.stat().st_size) == sorted(fnames, key=lambda p: p.stat().st_size)
    pairs = L([(2, "b"), (1, "c"), (3, "a")])
    assert pairs.sorted(1) == [(3, "a"), (2, "b"), (1, "c")]  # a position


def test_map_attrgot_and_indexing_on_files(fnames):
    stats = fnames[:5].map(Path.stat)
    assert type(stats) is L and [s.st_size for s in stats] == [os.path.getsize(p) for p in fnames[:5]]
    assert fnames.attrgot("name") == [p.name for p in fnames]
    assert fnames.attrgot("parent.name").unique() == ["3", "7"]
    assert fnames.attrgot("no_such_attr", "-")[:2] == ["-", "-"]
    picked = fnames[[0, 2]]
    assert type(picked) is L and picked == [fnames[0], fnames[2]]
    assert fnames[(5, -1)] == [fnames[5], fnames[708]] and fnames[np.array([3, 1])] == [fnames[3], fnames[1]]
    mask = [p.parent.name == "7" for p in fnames]
    sevens = fnames[mask]
    assert type(sevens) is L and len(sevens) == 709 - 346 and sevens == [p for p in fnames if p.parent.name == "7"]
    assert fnames[np.array(mask)] == sevens and fnames[torch.tensor(mask)] == sevens
    assert fnames.filter(lambda p: p.parent.name == "7") == sevens
    assert fnames[np.int64(4)] == fnames[4] and fnames[torch.tensor(4)] == fnames[4]


def test_get_files_and_get_text_files_give_an_L(tmp_path):
    files = get_files(MNIST, extensions=[".csv"])
    assert type(files) is L and files.attrgot("name") == ["labels.csv"]
    for name in ("b.txt", "a.txt", "c.md"):
        (tmp_path / name).write_text("x")
    texts = get_text_files(tmp_path)
    assert type(texts) is L and texts.attrgot("name") == ["a.txt", "b.txt"]
    assert get_text_files(tmp_path).map(Path.read_text) == ["x", "x"]


def test_ls_gives_an_L():
    # chapter 4's (path/'train'/'3').ls().sorted()
    threes = (MNIST / "train" / "3").ls()
    assert type(threes) is L and threes.sorted() == sorted(threes) and len(threes.sorted()) == 346
    assert MNIST.ls().attrgot("name") == ["labels.csv", "test", "train", "valid"]
    assert type((MNIST / "train").ls(n_max=1)) is L and type((MNIST / "train" / "7").ls(file_type="image")) is L


# ---------------------------------------------------------------------------------------- verify_images
def test_verify_images_failed_map_unlink_removes_the_corrupt_file(tmp_path):
    folder = tmp_path / "imgs"
    shutil.copytree(MNIST / "train" / "3", folder / "3")  # a copy: nothing is written into PIPEKIT_DATA
    broken = folder / "3" / "broken.jpg"
    broken.write_bytes(b"not an image")
    fns = get_image_files(folder)
    assert len(fns) == 347
    failed = verify_images(fns)  # chapter 2
    assert type(failed) is L and failed == [broken]
    failed.map(Path.unlink)
    assert not broken.exists() and len(get_image_files(folder)) == 346
    clean = verify_images(folder)  # a folder, all fine: an empty L
    assert type(clean) is L and clean == [] and not clean


def test_resize_images_in_place_shrinks_keeps_aspect_and_reports_the_undecodable(tmp_path):
    """The course's ``resize_images(path/o, max_size=400, dest=path/o)``: camvid's 128x96 photos shrink in place
    to 64x48 (fastai writes the same bytes); grey digits become RGB elsewhere; a broken file is left out, named."""
    from PIL import Image

    from pipekit.vision import resize_images

    folder = tmp_path / "roads"
    shutil.copytree(D.path("camvid_tiny") / "images", folder)  # a copy: nothing is written into PIPEKIT_DATA
    before = {f.name: Image.open(f).size for f in folder.iterdir()}
    assert set(before.values()) == {(128, 96)}
    (folder / "broken.jpg").write_bytes(b"not an image")
    with pytest.warns(UserWarning, match=r"1 file\(s\) could not be decoded .*broken.jpg"):
        failed = resize_images(folder, max_size=64, dest=folder)
    assert type(failed) is L and failed == [folder / "broken.jpg"]
    after = {f.name: Image.open(f).size for f in folder.iterdir() if f.name != "broken.jpg"}
    assert after.keys() == before.keys() and set(after.values()) == {(64, 48)}
    stamps = {f.name: f.stat().st_mtime_ns for f in folder.iterdir()}
    resize_images(folder, max_size=32, dest=folder, resume=True)  # resumed: what is there is kept
    assert {f.name: f.stat().st_mtime_ns for f in folder.iterdir()} == stamps
    out = tmp_path / "digits"
    assert resize_images(MNIST / "train", max_size=100, recurse=True, dest=out) == []
    threes = sorted((out / "3").iterdir())
    assert len(threes) == 346 and Image.open(threes[0]).mode == "RGB" and Image.open(threes[0]).size == (28, 28)
    grey = np.asarray(Image.open(MNIST / "train" / "3" / threes[0].name))
    assert np.array_equal(np.asarray(Image.open(threes[0]))[..., 0], grey)  # converted, not resampled
    with pytest.raises(DataError, match="is not a folder"):
        resize_images(threes[0], max_size=10)


# ---------------------------------------------------------------------------------------- L's methods
def test_L_takes_any_iterable_or_one_value():
    assert L() == [] and L(None) == [] and L([1, 2]) == [1, 2] and L((1, 2)) == [1, 2] and L(range(3)) == [0, 1, 2]
    assert L(x * 2 for x in range(3)) == [0, 2, 4] and L({1: "a"}.keys()) == [1] and L(1, 2, 3) == [1, 2, 3]
    assert L("abc") == ["abc"] and L(b"ab") == [b"ab"] and L(5) == [5] and L(Path("a/b")) == [Path("a/b")]
    assert L({"a": 1}) == [{"a": 1}]  # a dict is one item, as fastai's
    arr = np.arange(3)
    one = L(arr)
    assert len(one) == 1 and one[0] is arr  # an array is one item, as fastai's; use_list reads it item by item
    assert L(arr, use_list=True) == [0, 1, 2]
    src = [1, 2]
    made = L(src)
    made.append(3)
    assert src == [1, 2]  # a copy, not the caller's list


def test_L_itemgot_as_chapter_4_reads_the_recorder():
    values = [[0.31, 0.27, 0.94], [0.12, 0.10, 0.97], [0.08, 0.07, 0.98]]  # learn.recorder.values' rows
    acc = L(values).itemgot(2)
    assert type(acc) is L and acc == [0.94, 0.97, 0.98]
    assert L([{"a": (1, 2)}, {"a": (3, 4)}]).itemgot("a", 1) == [2, 4]


def test_L_map_filter_and_friends():
    xs = L([3, 1, 2, 3])
    assert xs.map(lambda x: x * 10) == [30, 10, 20, 30] and type(xs.map(str)) is L
    assert xs.map(lambda a, x: (a, x), "k")[0] == ("k", 3)  # args first, as functools.partial (fastcore's bind)
    assert xs.map(lambda x, n: x + n, n=1) == [4, 2, 3, 4]
    assert xs.map("#{}") == ["#3", "#1", "#2", "#3"] and L([0, 1]).map(["cat", "dog"]) == ["cat", "dog"]
    assert xs.filter(lambda x: x > 1) == [3, 2, 3] and xs.filter(lambda x: x > 1, negate=True) == [1]
    assert L([0, 1, "", "a", None]).filter() == [1, "a"] and L([0, 1]).filter(None) == [0, 1]
    assert xs.unique() == [3, 1, 2] and xs.unique(sort=True) == [1, 2, 3]
    assert xs.enumerate() == [(0, 3), (1, 1), (2, 2), (3, 3)]
    assert L([[1, 2], ["a", "b"]]).zip() == [(1, "a"), (2, "b")]
    assert L([[1, 2], [3], 4, "ab"]).concat() == [1, 2, 3, 4, "ab"]
    assert xs.sum() == 9 and L().sum() == 0 and L([0.5, 0.25]).sum() == 0.75  # from 0, as fastcore's
    assert type(xs.copy()) is L and xs.copy() == xs and xs.copy() is not xs
    random.seed(7)
    shuffled = xs.shuffle()
    random.seed(7)
    expected = list(xs)
    random.shuffle(expected)
    assert type(shuffled) is L and shuffled == expected and xs == [3, 1, 2, 3]  # a copy, the caller's RNG


def test_L_operators_keep_L():
    a = L([1, 2])
    for res, want in ((a + [3], [1, 2, 3]), (a + L([3]), [1, 2, 3]), (a + 3, [1, 2, 3]), ([0] + a, [0, 1, 2]),
                      ((0,) + a, [0, 1, 2]), (a * 2, [1, 2, 1, 2]), (2 * a, [1, 2, 1, 2])):
        assert type(res) is L and res == want
    b = a
    b += [3]
    assert b is a and a == [1, 2, 3]
    assert type(copy.copy(a)) is L and copy.deepcopy(a) == a
    assert type(pickle.loads(pickle.dumps(a))) is L and pickle.loads(pickle.dumps(a)) == a


def test_L_index_errors_name_the_problem():
    xs = L([1, 2, 3])
    with pytest.raises(IndexError, match="mask has 2 values, the list 3"):
        xs[[True, False]]
    with pytest.raises(TypeError, match="whole numbers"):
        xs[[0.5]]
    with pytest.raises(TypeError, match="not str"):
        xs["a"]
    with pytest.raises(IndexError):
        xs[[0, 5]]
    assert xs[[]] == [] and type(xs[[]]) is L


# ---------------------------------------------------------------------------------------- how it shows
def test_repr_is_a_lists_and_a_notebook_shows_fastcores_coll_repr(fnames):
    pretty = pytest.importorskip("IPython.lib.pretty").pretty
    assert repr(L([1, 2, 3])) == "[1, 2, 3]" == str(L([1, 2, 3]))  # print(L) as fastai's prints it
    assert pretty(L([1, 2, 3])) == "[1, 2, 3]"  # fastcore's coll_repr: the count from max(7, max_n) items
    shown = pretty(fnames)
    assert shown.startswith(f"(#709) [{fnames[0]!r}, {fnames[1]!r}") and shown.endswith("...]")
    assert shown.count("Path(") == 250
    assert lists_module.coll_repr(range(100), 5) == "(#100) [0, 1, 2, 3, 4...]"
    assert lists_module.coll_repr(list(range(7)), 7) == "(#7) [0, 1, 2, 3, 4, 5, 6]"


def test_coll_repr_moved_and_still_exported_by_text():
    assert pipekit.text.coll_repr is lists_module.coll_repr
    from pipekit.text.rules import coll_repr

    assert coll_repr is lists_module.coll_repr
