"""DataBlock.from_columns, fastai's data block tutorial spelling: get_items returns one column per block and item i is
their i-th values; on coco_tiny's labels (the tutorial's PASCAL multi-label section) and mnist_tiny's labels.csv."""
import json

import numpy as np
import pandas as pd
import pytest
import torch

import pipekit.datasets as D
from pipekit.core.errors import PipelineStepError
from pipekit.data import CategoryBlock, ColReader, DataBlock, IndexSplitter, MultiCategoryBlock
from pipekit.vision import ImageBlock, Resize

pytestmark = pytest.mark.data


@pytest.fixture(scope="module")
def pascal(tmp_path_factory):
    """The tutorial's PASCAL table made of coco_tiny's annotations: fname, the image's labels (space separated) and
    is_valid (every fifth image), written as a CSV and read with pandas, as the tutorial reads train.csv."""
    source = D.path("coco_tiny")
    coco = json.loads((source / "train.json").read_text())
    names = {c["id"]: c["name"] for c in coco["categories"]}
    labels: dict[int, set] = {}
    for a in coco["annotations"]:
        labels.setdefault(a["image_id"], set()).add(names[a["category_id"]])
    rows = [{"fname": im["file_name"], "labels": " ".join(sorted(labels[im["id"]])), "is_valid": i % 5 == 0}
            for i, im in enumerate(coco["images"])]
    csv = tmp_path_factory.mktemp("pascal") / "train.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    return source, pd.read_csv(csv), sorted(names.values())


def test_the_tutorials_pascal_from_columns_gives_fastais_split_vocab_and_targets(pascal):
    source, df, classes = pascal

    def _pascal_items(x):
        return (f"{source}/train/" + x.fname, x.labels.str.split())

    valid_idx = df[df["is_valid"]].index.values
    dblock = DataBlock.from_columns(blocks=(ImageBlock, MultiCategoryBlock), get_items=_pascal_items,
                                    splitter=IndexSplitter(valid_idx), item_tfms=Resize(32))
    dls = dblock.dataloaders(df, bs=16, seed=0)
    # fastai 2.8.12 on this table: vocab ['book', 'chair', 'couch', 'remote', 'tv', 'vase'], 160 train / 40 valid
    assert dls.vocab == classes == ["book", "chair", "couch", "remote", "tv", "vase"]
    assert (len(dls.train_ds), len(dls.valid_ds)) == (160, 40)
    x, _ = dls.one_batch()
    assert x.shape == (16, 3, 32, 32)
    # the validation targets, in the table's order, are each image's own labels
    got = torch.cat([y.cpu() for _, y in dls.valid])
    want = torch.tensor([[float(c in labels.split()) for c in classes] for labels in df.labels[valid_idx]])
    assert torch.equal(got, want)
    # the items table holds the columns themselves, named after them: no Python tuples
    first = dls.valid_ds.items[0]  # the table's row 0, a validation row
    assert first == {"fname": f"{source}/train/{df.fname[0]}", "labels": df.labels[0].split()}
    text = dblock.summary(df, show=False)
    assert "columns ['fname', 'labels']" in text and "160 train, 40 valid" in text


@pytest.fixture(scope="module")
def mnist():
    path = D.path("mnist_tiny")
    df = pd.read_csv(path / "labels.csv")
    return path, df, df[df.name.str.startswith("valid/")].index.values


def test_a_from_columns_learner_exports_and_loads_and_predicts_a_files_path(mnist, tmp_path):
    from pipekit.learn import Learner, load_learner, simple_cnn

    path, df, valid_idx = mnist

    def mnist_items(x):  # a function of the user's, not registered: the export leaves it out
        return (f"{path}/" + x.name, x.label)

    dblock = DataBlock.from_columns(blocks=(ImageBlock(cls="L"), CategoryBlock), get_items=mnist_items,
                                    splitter=IndexSplitter(valid_idx))
    dls = dblock.dataloaders(df, bs=64, seed=0)
    assert (dls.vocab, len(dls.train_ds), len(dls.valid_ds)) == ([3, 7], 709, 699)
    torch.manual_seed(0)
    learn = Learner(dls, simple_cnn(n_in=1, n_out=2, channels=(4, 8)))
    learn.export(tmp_path / "mnist.pkl")
    loaded = load_learner(tmp_path / "mnist.pkl")
    recipe = loaded.dls.recipe
    assert recipe.get_items is None and [g.cols for g in recipe.getters_] == [0, 1]
    files = [f"{path}/{df.name[i]}" for i in (0, 800, 1400)]
    want, _ = learn.get_preds(dl=learn.dls.test_dl(files))
    got, _ = loaded.get_preds(dl=loaded.dls.test_dl(files))
    assert torch.allclose(want, got)
    label, idx, probs = loaded.predict(files[1])
    assert label == [3, 7][int(idx)] and torch.allclose(probs, want[1])


def test_getters_of_the_users_get_each_item_as_a_tuple_and_pipekit_getters_read_the_columns(mnist):
    path, df, valid_idx = mnist

    def mnist_items(x):
        return (f"{path}/" + x.name, x.label)

    seen = []

    def digit_name(t):
        seen.append(t)
        return "three" if t[1] == 3 else "seven"

    dblock = DataBlock.from_columns(blocks=(ImageBlock(cls="L"), CategoryBlock), get_items=mnist_items,
                                    get_y=digit_name, splitter=IndexSplitter(valid_idx))
    dls = dblock.dataloaders(df, bs=64, seed=0)
    assert dls.vocab == ["seven", "three"]
    assert seen[0] == (f"{path}/{df.name[0]}", int(df.label[0])) and len(seen) == len(df)
    # getters=[...]: a pipekit getter reads its column (by position, as fastai's on a tuple), a function gets tuples
    dblock = DataBlock.from_columns(blocks=(ImageBlock(cls="L"), CategoryBlock), get_items=mnist_items,
                                    getters=[ColReader(0), lambda t: f"digit {t[1]}"],
                                    splitter=IndexSplitter(valid_idx))
    assert dblock.dataloaders(df, bs=64, seed=0).vocab == ["digit 3", "digit 7"]


def test_without_get_items_the_source_is_the_columns():
    dsets = DataBlock.from_columns().datasets((np.arange(10) * 0.5, list("ababababab")), seed=0)
    assert sorted(dsets.train[i] for i in range(len(dsets.train)))[:2] == [(0.0, "a"), (0.5, "b")]
    assert (len(dsets.train), len(dsets.valid)) == (8, 2)


@pytest.mark.parametrize("get_items, message", [
    (lambda x: x, r"gave a DataFrame \(columns \['name', 'label'\]\); DataBlock.from_columns takes one column per "
                  r"block.*return them: \(df\['fname'\], df\['labels'\]\)"),
    (lambda x: (x.name,), r"gave 1 column\(s\) for 2 blocks"),
    (lambda x: (x.name, x.label[:5]), r"columns of \[1408, 5\] values"),
    (lambda x: (x.name, 3), r"column 1 is int 3, not a column of values"),
])
def test_get_items_that_gives_no_columns_is_refused_saying_what_to_return(mnist, get_items, message):
    _, df, _ = mnist
    dblock = DataBlock.from_columns(blocks=(ImageBlock(cls="L"), CategoryBlock), get_items=get_items)
    with pytest.raises(PipelineStepError, match=message):
        dblock.dataloaders(df)
