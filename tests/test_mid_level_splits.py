"""Chapter 11's mid-level TfmdLists and Datasets over every file of mnist_tiny with a GrandparentSplitter: the
unlabelled ``test/`` files are in neither split, so they are left out of ``train``, ``valid`` and the loaders (and said
so, as a DataBlock says it), while ``tls[i]`` still reads every item, encoding one in no split only when it is read."""
from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

import pipekit.datasets as D
from pipekit.core.errors import DataError
from pipekit.data import Categorize, Datasets, GrandparentSplitter, TfmdLists, get_image_files, parent_label
from pipekit.vision import IntToFloatTensor, PILImage, ToTensor

pytestmark = pytest.mark.data

NEITHER = r"items are in neither the training nor the validation set"


@pytest.fixture(scope="module")
def files() -> list:
    return sorted(get_image_files(D.path("mnist_tiny")), key=os.fspath)


@pytest.fixture(scope="module")
def splits(files) -> list:
    return GrandparentSplitter(train_name="train", valid_name="valid")(files)


@pytest.fixture(scope="module")
def tls(files, splits) -> TfmdLists:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return TfmdLists(files, [parent_label, Categorize()], splits=splits)


def _in_no_split(files, splits) -> list[int]:
    return sorted(set(range(len(files))) - set(np.concatenate(splits).tolist()))


def test_tfmdlists_builds_with_the_unlabelled_test_files_in_no_split_and_says_how_many(files, splits):
    left = _in_no_split(files, splits)
    assert len(left) == 20 and all(files[i].parent.name == "test" for i in left)
    with pytest.warns(UserWarning, match=rf"TfmdLists: 20 of {len(files)} {NEITHER} and are left out .*test/"):
        tls = TfmdLists(files, [parent_label, Categorize()], splits=splits)
    assert tls.vocab == ["3", "7"]
    assert (len(tls), len(tls.train), len(tls.valid)) == (len(files), len(splits[0]), len(splits[1]))
    first_train, first_valid = int(splits[0][0]), int(splits[1][0])
    assert tls.train[0] == ["3", "7"].index(files[first_train].parent.name) == tls[first_train]
    assert tls.valid[0] == ["3", "7"].index(files[first_valid].parent.name) == tls[first_valid]
    assert tls.decode(tls.train[0]) == files[first_train].parent.name


def test_every_split_item_is_encoded_as_its_folder_label(tls, files, splits):
    for k, sub in enumerate((tls.train, tls.valid)):
        want = [["3", "7"].index(files[int(i)].parent.name) for i in splits[k]]
        assert list(sub) == want


def test_reading_an_item_in_no_split_names_it_its_label_and_that_it_is_in_no_split(tls, files, splits):
    i = _in_no_split(files, splits)[0]
    name = files[i].relative_to(D.path("mnist_tiny")).as_posix()
    with pytest.raises(DataError, match=rf"TfmdLists: item {i} \(.*{name}'\)\) is in neither the training nor the "
                                        r"validation split, and step 1 \(Categorize\(\)\) cannot encode its value "
                                        r"'test' .*not in the training labels.*read the items of a split"):
        tls[i]
    with pytest.raises(DataError, match=rf"item {i} "):
        tls[i - len(tls)]  # counted from the end, the same item


def test_an_item_in_no_split_with_a_known_label_is_encoded_when_read(files, splits):
    train = splits[0][:-1]  # the last training file is left in no split; its label is one the training set has
    out = int(splits[0][-1])
    with pytest.warns(UserWarning, match=rf"TfmdLists: 21 of {len(files)} {NEITHER}"):
        tls = TfmdLists(files, [parent_label, Categorize()], splits=[train, splits[1]])
    assert len(tls.train) == len(splits[0]) - 1
    assert tls[out] == ["3", "7"].index(files[out].parent.name)


def test_tfmdlists_dataloaders_batch_the_split_items_only(tls, splits):
    dls = tls.dataloaders(bs=64, seed=0, device="cpu")
    assert (len(dls.train.dataset), len(dls.valid.dataset)) == (len(splits[0]), len(splits[1]))
    seen = np.concatenate([b[0].numpy() for b in dls.valid])
    assert len(seen) == len(splits[1]) and set(seen.tolist()) == {0, 1}


def test_datasets_of_images_and_labels_builds_warns_once_and_batches(files, splits):
    some = files[::4]
    parts = GrandparentSplitter()(some)
    left = _in_no_split(some, parts)
    assert left
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        dsets = Datasets(some, [[PILImage.create], [parent_label, Categorize()]], splits=parts)
    told = [str(w.message) for w in said if "neither" in str(w.message)]
    assert told == [f"Datasets: {len(left)} of {len(some)} items are in neither the training nor the validation set "
                    f"and are left out of its train and valid subsets and their loaders (first: item {left[0]}, "
                    f"{some[left[0]]!r}); to leave them out without this warning, give only the items to split, or "
                    "splits=[train_idx, valid_idx] that place every item"]
    assert dsets.vocab == ["3", "7"] and len(dsets) == len(some)
    img, y = dsets.train[0]
    assert isinstance(img, PILImage) and img.size == (28, 28)
    assert y == ["3", "7"].index(some[int(parts[0][0])].parent.name)
    with pytest.raises(DataError, match=rf"item {left[0]} .*neither the training nor the validation split.*'test'"):
        dsets[left[0]]
    dls = dsets.dataloaders(bs=16, after_item=[ToTensor], after_batch=[IntToFloatTensor], seed=0, device="cpu")
    x, yb = dls.one_batch()
    assert tuple(x.shape) == (16, 3, 28, 28) and set(yb.tolist()) <= {0, 1}
    assert (len(dls.train.dataset), len(dls.valid.dataset)) == (len(parts[0]), len(parts[1]))


def test_a_validation_label_outside_the_vocab_names_categorize_and_add_na(files):
    threes = [f for f in files if f.parent.name == "3"]
    sevens = [f for f in files if f.parent.name == "7" and f.parent.parent.name == "valid"][:2]
    items = threes + sevens
    train = [i for i, f in enumerate(items) if f.parent.parent.name == "train"]
    valid = [i for i, f in enumerate(items) if f.parent.parent.name == "valid"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # one training class
        with pytest.raises(DataError, match=r"label\(s\) \['7'\] at rows .* are not in the training labels .*"
                                            r"Categorize\(vocab=\[\.\.\.\]\) in TfmdLists or Datasets\), or build with "
                                            r"CategoryBlock\(add_na=True\), .*\(Categorize\(add_na=True\) in "
                                            r"TfmdLists or Datasets\)"):
            TfmdLists(items, [parent_label, Categorize()], splits=[train, valid])
        tls = TfmdLists(items, [parent_label, Categorize(add_na=True)], splits=[train, valid])
    assert tls.vocab == ["#na#", "3"] and tls.valid[len(valid) - 1] == 0


def test_datasets_finds_the_items_in_no_split_once_for_all_its_parts_without_touching_warning_filters(
        files, splits, monkeypatch):
    """The items in neither split are worked out once and said once, as "Datasets: ...", and every part shares them;
    the parts are built without changing the process's warning filters (another thread's warnings are left alone)."""
    import pipekit.data.dataloaders as dl

    calls = []
    found = dl._left_out_of_splits

    def spy(*args, **kwargs):
        calls.append(args[-1])
        return found(*args, **kwargs)

    def no_filters(*args, **kwargs):
        raise AssertionError("the process's warning filters were changed")

    monkeypatch.setattr(dl, "_left_out_of_splits", spy)
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        monkeypatch.setattr(warnings, "catch_warnings", no_filters)
        dsets = Datasets(files, [[parent_label], [parent_label, Categorize()]], splits=splits)
        monkeypatch.undo()
    assert calls == ["Datasets"]
    told = [str(w.message) for w in said if "neither" in str(w.message)]
    assert len(told) == 1 and told[0].startswith(f"Datasets: 20 of {len(files)} {NEITHER}")
    first, second = dsets.tls
    assert first._row is second._row and first._kept is second._kept
    assert (len(dsets.train), len(dsets.valid)) == (len(splits[0]), len(splits[1]))
    assert dsets.valid[0] == (files[int(splits[1][0])].parent.name, ["3", "7"].index(files[int(splits[1][0])].parent.name))
