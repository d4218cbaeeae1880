"""The DataBlock engine on real data (adult, mnist_tiny) and on bad input."""
import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
import torch

import pipekit.datasets as D
from pipekit.core.errors import DataError
from pipekit.data import (Categorize, CategoryBlock, ColReader, ColSplitter, DataBlock, DataLoader, FuncSplitter,
                          GrandparentSplitter, IndexSplitter, MultiCategoryBlock, Pipe, PipelineStepError,
                          RandomSplitter, RegexLabeller, RegressionBlock, TensorStore, TimeSplitter,
                          TransformBlock, get_image_files, parent_label)
from pipekit.data.loader import ArrayDataset

ADULT = D.path("adult_sample") / "adult.csv"
MNIST = D.path("mnist_tiny")


def adult_block(seed=42):
    return DataBlock(blocks=(RegressionBlock, CategoryBlock), get_x=ColReader("age"), get_y=ColReader("salary"),
                     splitter=RandomSplitter(valid_pct=0.2, seed=seed))


def mnist_block():
    return DataBlock(blocks=(TransformBlock, CategoryBlock), get_x=ColReader("name", pref=MNIST),
                     get_y=ColReader("label"), splitter=GrandparentSplitter(col="name"))


def test_adult_full_epochs_counts_and_labels():
    dls = adult_block().dataloaders(ADULT, bs=256, seed=0)
    assert dls.vocab == ["<50k", ">=50k"] and dls.c == 2 and dls.loss_kind == "cross_entropy"
    n_rows = pl.read_csv(ADULT).height
    assert len(dls.train.dataset) + len(dls.valid.dataset) == n_rows == 32561
    assert len(dls.valid.dataset) == round(0.2 * n_rows)
    # the training loader drops the last partial batch, the validation loader keeps everything
    seen_valid = sum(len(y) for _, y in dls.valid)
    assert seen_valid == len(dls.valid.dataset)
    seen_train = sum(len(y) for _, y in dls.train)
    assert seen_train == (len(dls.train.dataset) // 256) * 256
    # decoded labels are the CSV's labels for the same rows
    raw = pl.read_csv(ADULT)
    valid_idx = dls.datasets.splits[1]
    x, y = next(iter(dls.valid))
    decoded = [r[1] for r in dls.valid.decode_batch((x, y))]
    assert decoded == raw["salary"].gather(valid_idx[:len(y)]).to_list()
    assert torch.allclose(x[:, 0], torch.tensor(raw["age"].gather(valid_idx[:len(y)]).to_numpy(), dtype=torch.float32))


def test_mnist_tiny_grandparent_split_counts():
    dls = mnist_block().dataloaders(MNIST / "labels.csv", bs=64, seed=0)
    assert len(dls.train.dataset) == 709 and len(dls.valid.dataset) == 699
    assert dls.vocab == [3, 7]
    paths, labels = [], []
    for xb, yb in dls.valid:
        paths += xb
        labels += [dls.vocab[i] for i in yb.tolist()]
    assert len(paths) == 699
    # every label decodes to the digit folder the file is in
    assert all(p.split("/")[-2] == str(lab) for p, lab in zip(paths, labels))
    assert all("/valid/" in p for p in paths)


def test_folder_source_with_get_items_and_parent_label():
    dblock = DataBlock(blocks=(TransformBlock, CategoryBlock), get_items=get_image_files, get_y=parent_label,
                       splitter=GrandparentSplitter())
    with pytest.warns(UserWarning, match="20 of 1428 items are in neither"):
        dsets = dblock.datasets(MNIST)  # test/ holds 20 unlabelled images in no split
    assert [len(s) for s in dsets.splits] == [709, 699] and len(dsets.items) == 1408
    assert dsets.vocab == ["3", "7"]


def test_same_seed_same_batches_different_seed_differs():
    def first_batches(seed):
        dls = adult_block().dataloaders(ADULT, bs=128, seed=seed)
        return [torch.cat([b[0].flatten(), b[1].float()]) for _, b in zip(range(3), dls.train)]

    a, b, c = first_batches(1), first_batches(1), first_batches(2)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not all(torch.equal(x, y) for x, y in zip(a, c))


def test_epochs_reshuffle_but_are_repeatable():
    dls = adult_block().dataloaders(ADULT, bs=512, seed=3)
    e1 = next(iter(dls.train))[0]
    e2 = next(iter(dls.train))[0]
    assert not torch.equal(e1, e2)
    dls2 = adult_block().dataloaders(ADULT, bs=512, seed=3)
    assert torch.equal(next(iter(dls2.train))[0], e1)


def test_random_splitter_same_seed_same_split():
    items = pl.DataFrame({"x": range(1000)})
    a, b = RandomSplitter(0.25, seed=7)(items), RandomSplitter(0.25, seed=7)(items)
    assert np.array_equal(a[1], b[1]) and len(a[1]) == 250
    assert not np.array_equal(a[1], RandomSplitter(0.25, seed=8)(items)[1])
    assert len(np.intersect1d(*a)) == 0 and len(a[0]) + len(a[1]) == 1000


def test_random_splitter_counts_the_validation_items_as_fastai():
    # fastai 2.8.12's RandomSplitter(valid_pct, seed=42) on these numbers of items: int(valid_pct * n) validation items
    fastai = {(48, 0.2): 9, (1428, 0.2): 285, (10, 0.25): 2, (7, 0.5): 3, (6031, 0.2): 1206}
    for (n, pct), n_valid in fastai.items():
        train, valid = RandomSplitter(pct, seed=42)(pl.DataFrame({"x": range(n)}))
        assert (len(train), len(valid)) == (n - n_valid, n_valid), (n, pct)
    files = get_image_files(D.path("mnist_tiny") / "train")[:48]  # the book's from_name_func on 48 images: 39 / 9
    assert [len(s) for s in RandomSplitter(valid_pct=0.2, seed=42)(files)] == [39, 9]


def test_stratified_split_without_a_seed_follows_set_seed():
    from pipekit import set_seed
    from pipekit.data import TrainTestSplitter

    adult = pl.read_csv(ADULT).head(2000)
    splits = []
    for seed in (42, 42, 43):
        set_seed(seed)
        splits.append(TrainTestSplitter(0.2, stratify_col="salary")(adult)[1])
    assert np.array_equal(splits[0], splits[1]) and not np.array_equal(splits[0], splits[2])
    share = (adult["salary"] == ">=50k").mean()
    assert abs((adult["salary"][splits[0]] == ">=50k").mean() - share) < 0.005  # still stratified
    # fastai's and scikit-learn's names: test_size, random_state, and stratify= the labels themselves
    by_names = TrainTestSplitter(test_size=0.2, random_state=7, stratify=adult["salary"].to_list())(adult)
    assert np.array_equal(by_names[1], TrainTestSplitter(0.2, seed=7, stratify_col="salary")(adult)[1])
    with pytest.raises(ValueError, match="holds 3 labels for 2000 items"):
        TrainTestSplitter(stratify=["a", "b", "a"])(adult)


def test_other_splitters():
    df = pl.DataFrame({"t": ["2015-01-01", "2015-02-01", "2015-03-01", "2015-04-01"], "v": [0, 1, 0, 1],
                       "name": ["a", "b", "c", "d"]})
    assert TimeSplitter("t", "2015-03-01")(df)[1].tolist() == [2, 3]
    assert ColSplitter("v", valid_value=1)(df)[1].tolist() == [1, 3]
    assert IndexSplitter([0])(df)[1].tolist() == [0]
    assert FuncSplitter(lambda r: r["name"] in ("a", "c"))(df)[1].tolist() == [0, 2]


def test_sources_pandas_arrow_parquet_hf(tmp_path):
    raw = pl.read_csv(ADULT).head(500)
    raw.write_parquet(tmp_path / "a.parquet")
    import datasets as hf

    sources = [raw, raw.to_pandas(), raw.to_arrow(), tmp_path / "a.parquet", hf.Dataset.from_polars(raw)]
    vocabs = set()
    for src in sources:
        dsets = adult_block().datasets(src)
        assert len(dsets) == 500
        vocabs.add(tuple(dsets.vocab))
    assert vocabs == {("<50k", ">=50k")}


def test_multicategory_and_regex():
    df = pl.DataFrame({"path": [f"img/{c}_{i}.jpg" for i, c in enumerate("aabbc" * 4)],
                       "tags": ["x y", "y", "", "x", "z"] * 4})
    dblock = DataBlock(blocks=(CategoryBlock, MultiCategoryBlock), get_x=RegexLabeller(r"/(\w)_\d+\.jpg$"),
                       get_y=ColReader("tags", label_delim=" "), splitter=IndexSplitter([0, 1, 2, 3, 4]))
    dsets = dblock.datasets(df)
    assert dsets.blocks[1].vocab == ["x", "y", "z"]
    x, y = dsets[0]
    assert y.tolist() == [1.0, 1.0, 0.0] and dsets.decode(dsets[0]) == ("a", ["x", "y"])
    assert dsets.decode(dsets[2])[1] == []


def test_test_dl_reuses_fitted_state():
    dblock = adult_block()
    dls = dblock.dataloaders(ADULT, bs=64, seed=0)
    new = pl.DataFrame({"age": [30, 60], "salary": [">=50k", "<50k"]})
    dl = dls.test_dl(new, with_labels=True)
    x, y = next(iter(dl))
    assert x[:, 0].tolist() == [30.0, 60.0] and y.tolist() == [1, 0]
    (x_only,) = next(iter(dls.test_dl(new)))
    assert x_only.shape == (2, 1)


def test_state_roundtrip_rebuilds_recipe_without_data():
    import json

    dls = adult_block().dataloaders(ADULT, bs=64, seed=0)
    state = json.loads(json.dumps(dls.state()))  # plain data
    from pipekit.data import DataLoaders

    fresh = DataLoaders.from_state(state)
    assert fresh.vocab == ["<50k", ">=50k"]
    (x,) = next(iter(fresh.test_dl(pl.DataFrame({"age": [41]}))))
    assert x.tolist() == [[41.0]]


def test_summary_walks_every_step(capsys):
    assert mnist_block().summary(MNIST / "labels.csv") is None  # printed, not returned: a notebook shows it once
    shown = capsys.readouterr().out
    for step in ("Collecting items: 1408 rows", "709 train, 699 valid", "Categorize learned vocab_=[3, 7]",
                 "Collating a batch of 4"):
        assert shown.count(step) == 1, step
    text = mnist_block().summary(MNIST / "labels.csv", show=False)  # the text, for a script, printed nowhere
    assert text == shown and capsys.readouterr().out == ""


def test_summary_names_failing_step():
    bad = DataBlock(blocks=(TransformBlock, CategoryBlock), get_x=ColReader("name"), get_y=ColReader("nope"),
                    splitter=GrandparentSplitter(col="name"))
    with pytest.raises(PipelineStepError, match=r"CategoryBlock \[y0\] getter.*\['nope'\] not in the items"):
        bad.summary(MNIST / "labels.csv", show=False)


def test_show_batch_writes_png(tmp_path):
    dls = adult_block().dataloaders(ADULT, bs=16, seed=0)
    out = dls.show_batch(max_n=4, path=tmp_path / "batch.png")
    assert out.exists() and out.stat().st_size > 1000


# ---------------------------------------------------------------------------------------- bad input
def test_empty_source(tmp_path):
    with pytest.raises(ValueError, match="found no items"):
        DataBlock(blocks=(TransformBlock, CategoryBlock), get_items=get_image_files, get_y=parent_label).datasets(tmp_path)
    with pytest.raises(ValueError, match="no rows"):
        adult_block().datasets(pl.DataFrame({"age": [], "salary": []}))


def test_getter_failure_names_item():
    def boom(item):
        if item["age"] == 49:
            raise ValueError("cannot read")
        return item["age"]

    dblock = DataBlock(blocks=(RegressionBlock, CategoryBlock), get_x=boom, get_y=ColReader("salary"),
                       splitter=RandomSplitter(seed=0))
    with pytest.raises(PipelineStepError, match=r"getter boom failed on item 0 .*'age': 49"):
        dblock.datasets(pl.read_csv(ADULT).head(50))


def test_getter_failure_names_only_the_item_that_failed():
    files = get_image_files(D.path("mnist_tiny"))
    bad = files[len(files) // 2]

    def get_y(p):
        if p == bad:
            raise KeyError("no label for this file")
        return p.parent.name

    dblock = DataBlock(blocks=(TransformBlock, CategoryBlock), get_items=get_image_files, get_y=get_y,
                       splitter=RandomSplitter(seed=0))
    with pytest.raises(PipelineStepError) as err:
        dblock.datasets(D.path("mnist_tiny"))
    msg = str(err.value)
    assert msg.startswith("step 'CategoryBlock [y0] getter get_y' failed: KeyError: ")
    assert f"failed on item {files.index(bad)} ({bad!r})" in msg and msg.count(".png") == 1  # no other file

    def get_y_text(p):  # an error type that cannot be re-made from a message: it once hid the failure itself
        if p == bad:
            b"\xff".decode("utf-8")
        return p.parent.name

    with pytest.raises(PipelineStepError, match=r"failed: DataError: getter get_y_text failed on item \d+ .*'utf-8' "
                                                r"codec can't decode byte 0xff"):
        dblock.new(get_y=get_y_text).datasets(D.path("mnist_tiny"))


def test_test_dl_of_a_folder_says_how_to_give_its_items():
    import re

    from pipekit.core.errors import DataError

    root = D.path("mnist_tiny")
    dls = DataBlock(blocks=(TransformBlock, CategoryBlock), get_items=get_image_files, get_y=parent_label,
                    splitter=RandomSplitter(seed=0)).dataloaders(root, bs=16, seed=0)
    advice = f"dls.test_dl(get_image_files({str(root / 'test')!r}))"
    with pytest.raises(DataError, match=re.escape(f"test_dl: {root / 'test'} is a folder; give the items in it, "
                                                  f"e.g. {advice}")):
        dls.test_dl(root / "test")
    assert len(eval(advice, {"dls": dls, "get_image_files": get_image_files}).dataset) == 20  # the advice works


def test_labels_with_nulls_named():
    df = pl.read_csv(ADULT).head(100).with_columns(
        pl.when(pl.int_range(pl.len()) == 7).then(None).otherwise(pl.col("salary")).alias("salary"))
    with pytest.raises(PipelineStepError, match=r"null value\(s\) at rows \[7\]"):
        adult_block().datasets(df)


def test_split_leaving_valid_empty_trains_on_every_row():
    """An empty validation split is a user's choice (fastai's "final fit on everything"): every row trains."""
    dblock = DataBlock(blocks=(RegressionBlock, CategoryBlock), get_x=ColReader("age"), get_y=ColReader("salary"),
                       splitter=IndexSplitter([]))
    dsets = dblock.datasets(pl.read_csv(ADULT).head(20))
    assert (len(dsets.train), len(dsets.valid)) == (20, 0)


@pytest.mark.parametrize("bs", [0, -3, 2.5])
def test_bad_batch_size(bs):
    with pytest.raises(ValueError, match="bs must be a positive integer"):
        adult_block().dataloaders(pl.read_csv(ADULT).head(50), bs=bs)


def test_given_vocab_missing_a_label():
    dblock = DataBlock(blocks=(RegressionBlock, CategoryBlock(vocab=["<50k"])), get_x=ColReader("age"),
                       get_y=ColReader("salary"), splitter=RandomSplitter(seed=0))
    with pytest.raises(PipelineStepError, match=r"label\(s\) \['>=50k'\] at rows .* not in the vocab you gave"):
        dblock.datasets(pl.read_csv(ADULT).head(200))


def test_unseen_valid_label_is_an_error_not_a_silent_drop():
    df = pl.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "y": ["a", "b", "a", "c"]})
    dblock = DataBlock(blocks=(RegressionBlock, CategoryBlock), get_x=ColReader("x"), get_y=ColReader("y"),
                       splitter=IndexSplitter([3]))
    with pytest.raises(PipelineStepError, match=r"\['c'\] at rows \[3\] are not in the training labels"):
        dblock.datasets(df)


def test_mixed_types_in_label_column():
    def label(item):
        return 3 if item["age"] > 40 else "young"

    dblock = DataBlock(blocks=(RegressionBlock, CategoryBlock), get_x=ColReader("age"), get_y=label,
                       splitter=RandomSplitter(seed=0))
    with pytest.raises(PipelineStepError, match=r"mixed types \['int', 'str'\]"):
        dblock.datasets(pl.read_csv(ADULT).head(50))


def test_missing_column_named():
    dblock = DataBlock(blocks=(RegressionBlock, CategoryBlock), get_x=ColReader("agee"), get_y=ColReader("salary"))
    with pytest.raises(PipelineStepError, match=r"\['agee'\] not in the items"):
        dblock.datasets(ADULT)


def test_regression_target_with_text_names_row():
    df = pl.DataFrame({"x": ["1", "2", "3", "x"], "y": ["a", "b", "a", "b"]})
    dblock = DataBlock(blocks=(CategoryBlock, RegressionBlock), get_x=ColReader("y"), get_y=ColReader("x"),
                       splitter=IndexSplitter([0]))
    with pytest.raises(PipelineStepError, match="RegressionBlock needs numbers"):
        dblock.datasets(df)


def test_loader_prefetch_matches_synchronous():
    ds = ArrayDataset([TensorStore(np.arange(1000)), TensorStore(np.arange(1000) % 3)])
    a = [b[0] for b in DataLoader(ds, bs=37, shuffle=True, seed=5, num_workers=0)]
    b = [b[0] for b in DataLoader(ds, bs=37, shuffle=True, seed=5, num_workers=2)]
    assert all(torch.equal(x, y) for x, y in zip(a, b)) and len(a) == 28
    assert sorted(torch.cat(a).tolist()) == list(range(1000))


def test_pipe_getter_and_pandas_items():
    df = pd.DataFrame({"name": ["train/3/1.png", "valid/7/2.png", "train/7/3.png"]})
    dblock = DataBlock(blocks=(TransformBlock, CategoryBlock), get_x=ColReader("name"),
                       get_y=Pipe(ColReader("name"), parent_label), splitter=GrandparentSplitter(col="name"))
    dsets = dblock.datasets(df)
    assert dsets.vocab == ["3", "7"] and [len(s) for s in dsets.splits] == [2, 1]
    assert isinstance(pa.table({"a": [1]}), pa.Table)


def test_shards_partition_an_epoch():
    ds = ArrayDataset([TensorStore(np.arange(100))], n_inp=1)
    dl = DataLoader(ds, bs=8, shuffle=True, seed=4)
    full = [b[0] for b in dl.new()]
    s0, s1 = [b[0] for b in dl.shard(0, 2)], [b[0] for b in dl.shard(1, 2)]
    assert len(s0) == len(s1) == 7 == len(dl.shard(0, 2))
    # together the shards cover the epoch; the odd batch out is repeated, never dropped
    assert sorted(torch.cat(s0 + s1).tolist()) == sorted(torch.cat(full + [full[0]]).tolist())
    with pytest.raises(ValueError, match="rank must be in"):
        dl.shard(2, 2)


def test_test_dl_takes_bare_values_for_a_column_reader():
    dls = adult_block().dataloaders(ADULT, bs=64, seed=0)
    (x,) = next(iter(dls.test_dl([33, 71])))  # values, not rows: ColReader('age') reads them as the column
    assert x[:, 0].tolist() == [33.0, 71.0]


@pytest.mark.parametrize("kind", ["list", "pandas", "polars", "numpy"])
def test_categorize_refuses_missing_labels_naming_their_positions(kind):
    labels = pd.read_csv(D.path("mnist_tiny") / "labels.csv", dtype={"label": str})["label"].sample(20, random_state=0).reset_index(drop=True)
    labels[[3, 11]] = None  # NaN in pandas; None in the others
    listed = [None if v != v else v for v in labels.tolist()]
    given = {"list": listed, "pandas": labels, "polars": pl.Series(listed),
             "numpy": np.array(listed, dtype=object)}[kind]
    with pytest.raises(DataError, match=r"2 missing label\(s\).*at position\(s\) \[3, 11\].*drop those items or fill"):
        Categorize().setup(given)
    c = Categorize()
    c.setup(labels.dropna())
    with pytest.raises(DataError, match=r"position\(s\) \[3, 11\]"):
        c.encode(given)  # not codes of NaN


def test_categorize_decodes_float_codes_of_whole_numbers_and_refuses_other_floats():
    c = Categorize()
    c.setup(pd.read_csv(D.path("mnist_tiny") / "labels.csv", dtype={"label": str})["label"])
    assert c.decode(np.array([0.0, 1.0, 1.0])) == ["3", "7", "7"]
    with pytest.raises(DataError, match="not whole numbers"):
        c.decode(np.array([0.2, 0.8]))
    with pytest.raises(DataError, match=r"code\(s\) \[2\] outside the vocab of 2 classes"):
        c.decode(np.array([0, 2]))


@pytest.mark.parametrize("finder", ["get_files", "get_image_files", "get_text_files"])
def test_a_finder_given_a_list_of_files_names_itself_and_the_fix(finder):
    """Called directly (not only through a DataBlock), a finder says the list is already the files."""
    from pipekit.data import getters
    files = getters.get_image_files(D.path("mnist_tiny") / "train")[:3]
    with pytest.raises(DataError, match=rf"get_items={finder} finds the files in a folder, and the source is already "
                                        r"a list of 3 files: give the folder, or leave get_items out"):
        getattr(getters, finder)(files)


# ---------------------------------------------------------------------------------------- the vocab as an index
def coco_tiny_labels(n=40):
    """coco_tiny's first ``n`` images with their labels (the names of the objects in them), as a table."""
    import json

    p = D.path("coco_tiny")
    meta = json.loads((p / "train.json").read_text())
    names, labels = {c["id"]: c["name"] for c in meta["categories"]}, {}
    for a in meta["annotations"]:
        labels.setdefault(a["image_id"], set()).add(names[a["category_id"]])
    return p, pl.DataFrame([{"fname": im["file_name"], "labels": " ".join(sorted(labels[im["id"]]))}
                            for im in meta["images"][:n]])


def test_the_books_chapter_6_reads_a_multi_hot_targets_labels_through_the_vocab():
    from pipekit.data.vocab import CategoryMap
    from pipekit.vision import ImageBlock

    p, items = coco_tiny_labels()
    dblock = DataBlock(blocks=(ImageBlock, MultiCategoryBlock(label_delim=" ")), get_x=ColReader("fname", pref=p / "train"),
                       get_y=ColReader("labels"), splitter=RandomSplitter(0.5, seed=0))
    dsets = dblock.datasets(items)
    assert isinstance(dsets.train.vocab, CategoryMap) and dsets.train.vocab == sorted(dsets.train.vocab)
    for i in range(5):
        y = dsets.train[i][1]
        idxs = torch.where(y == 1.)[0]  # the book's line
        truth = items["labels"][int(dsets.splits[0][i])].split(" ")
        assert dsets.train.vocab[idxs] == truth
        assert dsets.train.vocab[y == 1.] == dsets.train.vocab[idxs.numpy()] == dsets.train.vocab[idxs.tolist()] == truth
        assert [dsets.train.vocab.o2i[t] for t in truth] == idxs.tolist()


def test_dls_vocab_takes_a_batch_of_predicted_codes_on_mnist_tiny_and_keeps_it_through_export(tmp_path):
    from pipekit.data.vocab import CategoryMap
    from pipekit.learn import load_learner
    from pipekit.vision import ImageBlock, vision_learner

    files = [f for f in get_image_files(MNIST) if "/test/" not in f.as_posix()]
    dls = DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock), get_y=parent_label,
                    splitter=GrandparentSplitter()).dataloaders(files, bs=16, seed=0, device="cpu")
    xb, yb = dls.valid.one_batch()
    truth = [f.parent.name for f in dls.valid.dataset.items[:16]]
    preds = torch.nn.functional.one_hot(yb, 2).float() * 3 - 1  # scores whose highest is the true class
    assert dls.vocab[preds.argmax(1)] == dls.vocab[yb] == truth and dls.vocab.o2i["7"] == 1
    learn = vision_learner(dls, "simple_cnn", path=tmp_path)
    learn.model.eval()
    with torch.no_grad():
        mine = learn.model(xb).argmax(1)
    again = load_learner(learn.export(tmp_path / "digits.pipekit"))
    assert isinstance(again.dls.vocab, CategoryMap) and again.dls.vocab == ["3", "7"]
    with torch.no_grad():
        theirs = again.model(xb).argmax(1)
    assert again.dls.vocab[theirs] == dls.vocab[mine] == [["3", "7"][int(c)] for c in mine]


def test_a_category_blocks_record_holds_the_vocab_as_a_list_and_loads_it_back_as_a_vocab():
    import json

    from pipekit.core.component import Component
    from pipekit.data.vocab import CategoryMap

    dsets = mnist_block().datasets(MNIST / "labels.csv")
    block = dsets.blocks[1]
    rec = json.loads(json.dumps(block.to_record()))  # what a file holds
    assert [t["state"]["vocab_"] for t in rec["state"]["tfms_"]] == [[3, 7]]
    back = Component.from_record(rec)
    assert isinstance(back.vocab, CategoryMap) and back.vocab == [3, 7]
    assert back.vocab[np.array([1, 0, 1])] == [7, 3, 7]


def test_vocab_index_forms_and_bad_indices():
    import json

    from pipekit.core.errors import ParameterError
    from pipekit.data.vocab import CategoryMap

    v = CategoryMap(["a", "b", "c"])
    assert v[1] == "b" and v[-1] == "c" and v[1:] == ["b", "c"] and type(v[1:]) is list
    assert v[torch.tensor(2)] == v[np.int64(2)] == v[np.array(2)] == "c"
    assert v[torch.tensor([2, 0, 2])] == v[np.array([2, 0, 2], np.uint8)] == v[[2, 0, 2]] == ["c", "a", "c"]
    assert v[torch.tensor([True, False, True])] == v[np.array([1, 0, 1]) > 0] == v[[True, False, True]] == ["a", "c"]
    assert v[torch.tensor([], dtype=torch.long)] == [] and v[[]] == []
    with pytest.raises(IndexError, match=r"code\(s\) \[3\] outside the vocab of 3 classes"):
        v[torch.tensor([0, 3])]
    with pytest.raises(IndexError, match="a boolean mask of 2 values for a vocab of 3 classes"):
        v[torch.tensor([True, False])]
    with pytest.raises(ParameterError, match="1-D integer codes .* got 1-D values of type float32"):
        v[torch.tensor([0.0, 1.0])]  # scores are no codes: argmax them first
    with pytest.raises(ParameterError, match="got 2-D values"):
        v[torch.tensor([[0, 1]])]
    with pytest.raises(ParameterError, match=r"vocab.o2i\[value\]"):
        v["a"]
    assert json.dumps(v) == '["a", "b", "c"]' and v == ["a", "b", "c"]


def test_vocab_o2i_matches_labels_as_categorize_encodes_them():
    t = Categorize()
    t.setup(pl.read_csv(MNIST / "labels.csv")["label"])  # integer labels keep their type in the vocab
    assert t.vocab == [3, 7] and t.encode([7, 3]).tolist() == [t.vocab.o2i[7], t.vocab.o2i[3]] == [1, 0]
    assert t.vocab.o2i[np.int64(7)] == t.vocab.o2i[torch.tensor(7)] == 1 and 7 in t.vocab.o2i
    # text digits and whole floats are the integer labels, for encoding as for o2i
    assert t.encode(["7", "3"]).tolist() == t.encode([7.0, 3.0]).tolist() == [t.vocab.o2i["7"], t.vocab.o2i[3.0]]
    # a flag is no integer label: one label gave two codes, [3, 7] read as flags
    with pytest.raises(DataError, match="labels of type Boolean cannot be matched to a vocab of int"):
        t.encode([True])
    for value in (True, 5, 7.5, "x", None):
        with pytest.raises(KeyError, match="is not in the vocab"):
            t.vocab.o2i[value]
    assert True not in t.vocab.o2i and t.vocab.o2i.get(5) is None


def test_tabular_classes_are_the_same_vocab_type_and_take_tensor_indices():
    from pipekit.data.vocab import CategoryMap
    from pipekit.tabular import Tabular
    from pipekit.tabular.procs import CategoryMap as TabularCategoryMap, Categorify

    assert TabularCategoryMap is CategoryMap
    df = pl.read_csv(ADULT).head(2000)
    tab = Tabular(df, procs=Categorify, cat_names="workclass", cont_names=[], y_names="salary",
                  splits=(range(1500), range(1500, 2000)))
    classes = tab.classes["workclass"]
    assert isinstance(classes, CategoryMap) and classes[0] == "#na#"
    codes = torch.tensor(tab.train.cats["workclass"].to_numpy()[:20])
    assert classes[codes] == [w if w is not None else "#na#" for w in df["workclass"][:20].to_list()]
    assert [classes.o2i[w] for w in classes[codes]] == codes.tolist()


def test_first_of_a_loader_is_its_one_batch_and_leaves_no_threads():
    import threading

    from pipekit.data.loader import first
    ds = ArrayDataset([TensorStore(np.arange(100)), TensorStore(np.arange(100) % 3)])
    dl = DataLoader(ds, bs=8, shuffle=True, seed=4, num_workers=2, device="cpu")
    b = first(dl)
    assert torch.equal(b[0], dl.one_batch()[0]) and dl.epoch == 0
    # with a condition the epoch is iterated; stopping early still shuts its prefetch threads down
    odd = first(dl, lambda batch: int(batch[0][0]) % 2 == 1)
    assert odd is not None and int(odd[0][0]) % 2 == 1
    assert not [t for t in threading.enumerate() if t.name.startswith("pipekit-prefetch")]
    assert first(dl, lambda batch: False) is None
    assert first([]) is None and first(iter([5, 6])) == 5 and first(range(10), lambda i: i > 6) == 7


def test_the_loaders_answer_for_their_training_loader_as_fastais_do_on_mnist_tiny():
    from pipekit.data import DataLoaders, GrandparentSplitter, get_image_files, parent_label
    from pipekit.vision import ImageBlock

    root = D.path("mnist_tiny")
    dls = DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock),
                    get_items=lambda p: get_image_files(p, folders=["train", "valid"]), get_y=parent_label,
                    splitter=GrandparentSplitter()).dataloaders(root, bs=16, seed=0, device="cpu")
    b = dls.one_batch()
    assert [label for _, label in dls.decode_batch(b, max_n=5)] == [label for _, label in dls.train.decode_batch(b, max_n=5)]
    assert dls.n == len(dls.train_ds) == len(dls.items) and dls.dataset is dls.train.dataset
    assert dls.items[0] == dls.train_ds.items[0] and dls.items[0].parent.parent.name == "train"
    assert dls.cpu() is dls and dls.device == torch.device("cpu")
    with pytest.raises(AttributeError, match="no attribute 'after_batchs'"):
        _ = dls.after_batchs
    with pytest.raises(AttributeError, match="hold no data"):
        _ = DataLoaders(recipe=dls.recipe).n


def test_set_seed_takes_fastais_reproducible_keyword():
    import random

    import torch

    from pipekit import set_seed

    set_seed(7, reproducible=True)
    a = (random.random(), float(torch.rand(1)))
    set_seed(7, reproducible=True)
    assert (random.random(), float(torch.rand(1))) == a and torch.are_deterministic_algorithms_enabled()
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark


def test_test_dl_takes_the_loader_settings_fastai_passes_on(tmp_path):
    from pipekit.core.errors import ParameterError
    from pipekit.learn import load_learner
    from pipekit.tabular import TabularDataLoaders, tabular_learner
    from pipekit.vision import ImageDataLoaders

    dls = ImageDataLoaders.from_folder(MNIST, img_cls="L", bs=64, seed=0)
    files = get_image_files(MNIST / "test")
    dl = dls.test_dl(files, shuffle=False)
    assert not dl.shuffle and len(dl.dataset) == 20
    assert dls.test_dl(files, shuffle=True).shuffle
    assert len(dls.test_dl(files, drop_last=True, bs=8)) == 2
    # loaders rebuilt from an export (no loader to copy) honour the settings, and refuse others by name
    df = pl.read_csv(ADULT).head(300)
    tdls = TabularDataLoaders.from_df(df, cat_names=["workclass"], cont_names=["age"], y_names="salary",
                                      valid_pct=0.2, seed=0, bs=50)
    tabular_learner(tdls, layers=[8]).export(tmp_path / "adult.pipekit")
    loaded = load_learner(tmp_path / "adult.pipekit").dls
    dl = loaded.test_dl(df.tail(30), bs=8, drop_last=True, shuffle=False)
    assert dl.drop_last and not dl.shuffle and len(dl) == 3
    with pytest.raises(ParameterError, match="drop_lst"):
        loaded.test_dl(df.tail(30), drop_lst=True)


def test_loaded_loaders_decode_a_batch_as_the_first_loader_does(tmp_path):
    from pipekit.learn import load_learner
    from pipekit.tabular import TabularDataLoaders, tabular_learner

    df = pl.read_csv(ADULT).head(300)
    dls = TabularDataLoaders.from_df(df, cat_names=["workclass"], cont_names=["age"], y_names="salary",
                                     valid_pct=0.2, seed=0, bs=50)
    tabular_learner(dls, layers=[8]).export(tmp_path / "adult.pipekit")
    loaded = load_learner(tmp_path / "adult.pipekit").dls
    batch = loaded.test_dl(df.tail(4), with_labels=True).one_batch()
    assert loaded.decode_batch(batch) == dls.decode_batch(batch)
    assert loaded.decode_batch(batch)[0][2] == df["salary"][-4]
