"""Hugging Face ``datasets`` objects as users build them (``Dataset.from_pandas`` of a filtered frame,
``ClassLabel`` and ``Sequence(ClassLabel)`` labels, an ``Image`` column, ``set_transform``, a ``DatasetDict``),
made here from the real adult_sample, imdb_sample and mnist_tiny files (no download)."""
from __future__ import annotations

import pandas as pd
import polars as pl
import pytest
import torch

import pipekit.datasets as D
from pipekit import load_learner
from pipekit.core import DataError, ParameterError
from pipekit.data import (CategoryBlock, ColReader, DataBlock, IndexSplitter, MultiCategoryBlock, RandomSplitter,
                          RegressionBlock, to_items)
from pipekit.tabular import TabularDataLoaders, tabular_learner
from pipekit.vision import ImageBlock, ImageDataLoaders

datasets = pytest.importorskip("datasets")

CATS = ["workclass", "education", "marital-status", "occupation", "relationship", "race", "sex"]


def adult(n: int = 600) -> pd.DataFrame:
    return pd.read_csv(D.path("adult_sample") / "adult.csv", skipinitialspace=True).iloc[:n]


def imdb(names: list[str]) -> datasets.Dataset:
    """imdb_sample with its label a ClassLabel of ``names`` and the length of each review as a number."""
    df = pd.read_csv(D.path("imdb_sample") / "texts.csv")
    return datasets.Dataset.from_dict(
        {"n_chars": df.text.str.len().astype(float).tolist(), "label": df.label.tolist(), "text": df.text.tolist()},
        features=datasets.Features({"n_chars": datasets.Value("float32"), "label": datasets.ClassLabel(names=names),
                                    "text": datasets.Value("string")}))


def mnist(names: list[str], every: int = 10) -> datasets.Dataset:
    files = sorted((D.path("mnist_tiny") / "train").glob("*/*.png"))[::every]
    return datasets.Dataset.from_dict(
        {"image": [str(f) for f in files], "label": [f.parent.name for f in files]},
        features=datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=names)}))


def length_block(blocks: tuple, y: str = "label") -> DataBlock:
    return DataBlock(blocks=blocks, get_x=ColReader("n_chars"), get_y=ColReader(y),
                     splitter=RandomSplitter(0.2, seed=0))


# ------------------------------------------------------------------ the pandas index column
def test_the_pandas_index_a_filtered_frame_keeps_is_no_input(tmp_path):
    sub = adult()[lambda d: d.age > 25]
    ds = datasets.Dataset.from_pandas(sub)
    assert "__index_level_0__" in ds.column_names  # HF keeps the index, for to_pandas
    assert "__index_level_0__" not in to_items(ds).columns
    dls = TabularDataLoaders.from_df(ds, y_names="salary", cat_names=CATS, bs=64, valid_pct=0.2, seed=0)
    assert dls.cont_names == ["age", "fnlwgt", "education-num", "capital-gain", "capital-loss", "hours-per-week"]
    learn = tabular_learner(dls, layers=[8])
    learn.export(tmp_path / "adult.pipekit")
    label, _, probs = load_learner(tmp_path / "adult.pipekit").predict(sub.iloc[0])  # an ordinary pandas row
    assert label in ("<50k", ">=50k") and probs.shape == (2,)


# ------------------------------------------------------------------ ClassLabel: its names, in their order
def test_a_classlabel_column_is_an_enum_of_its_declared_names_on_a_view():
    names = ["positive", "negative"]  # not sorted
    view = imdb(names).filter(lambda r: r["label"] == 1)  # negatives only
    items = to_items(view)
    assert items.schema["label"] == pl.Enum(names)  # every class, in the ClassLabel's order
    assert set(items["label"].to_list()) == {"negative"}
    assert items["label"].to_physical().to_list() == view["label"]  # the codes are HF's ids


def test_a_classlabel_input_keeps_every_declared_class_in_order():
    ds = datasets.Dataset.from_pandas(adult(), preserve_index=False)
    ds = ds.cast_column("sex", datasets.ClassLabel(names=["Male", "Female"]))
    view = ds.filter(lambda r: r["sex"] == 0)  # men only
    dls = TabularDataLoaders.from_df(view, y_names="salary", cat_names=["sex", "race"], cont_names=["age"], bs=64,
                                     valid_pct=0.2, seed=0)
    assert dls.classes["sex"] == ["#na#", "Male", "Female"]


def test_a_classlabel_target_vocab_is_its_names_and_codes_are_hf_ids():
    names = ["positive", "negative"]
    ds = imdb(names)
    dls = length_block((RegressionBlock, CategoryBlock)).dataloaders(ds, bs=200)
    assert list(dls.vocab) == names
    _, y = next(iter(dls.test_dl(ds, with_labels=True)))
    assert y.tolist() == ds["label"][:len(y)]
    view = ds.filter(lambda r: r["label"] == 0)
    with pytest.warns(UserWarning, match="single class 'positive'"):
        assert list(length_block((RegressionBlock, CategoryBlock)).dataloaders(view, bs=8).vocab) == names


def test_an_image_classlabel_target_keeps_hf_ids(tmp_path):
    ds = mnist(["7", "3"])
    db = DataBlock(blocks=(ImageBlock(cls="L", cache_dir=tmp_path), CategoryBlock), get_x=ColReader("image"),
                   get_y=ColReader("label"), splitter=RandomSplitter(0.2, seed=0))
    dls = db.dataloaders(ds, bs=16, num_workers=0)
    assert list(dls.vocab) == ds.features["label"].names
    _, y = next(iter(dls.test_dl(ds, with_labels=True)))
    assert y.tolist() == ds["label"][:len(y)]


def test_a_classlabel_tabular_target_vocab_is_its_names():
    ds = datasets.Dataset.from_pandas(adult(), preserve_index=False)
    ds = ds.cast_column("salary", datasets.ClassLabel(names=[">=50k", "<50k"]))
    dls = TabularDataLoaders.from_df(ds, y_names="salary", cat_names=CATS, bs=64, valid_pct=0.2, seed=0)
    assert list(dls.vocab) == [">=50k", "<50k"]


# ------------------------------------------------------------------ Sequence(ClassLabel): names, not ids
@pytest.mark.parametrize("kind", ["Sequence", "List"])
def test_a_list_of_classlabels_holds_names(kind):
    names = ["positive", "negative", "long"]
    df = pd.read_csv(D.path("imdb_sample") / "texts.csv")
    tags = [[names.index(lab)] + ([2] if len(t) > 1000 else []) for lab, t in zip(df.label, df.text)]
    ds = datasets.Dataset.from_dict(
        {"n_chars": df.text.str.len().astype(float).tolist(), "tags": tags},
        features=datasets.Features({"n_chars": datasets.Value("float32"),
                                    "tags": getattr(datasets, kind)(datasets.ClassLabel(names=names))}))
    items = to_items(ds)
    assert items["tags"].to_list()[:3] == [[names[i] for i in t] for t in tags[:3]]
    dls = length_block((RegressionBlock, MultiCategoryBlock), y="tags").dataloaders(ds, bs=16)
    assert list(dls.vocab) == names  # the ClassLabel's declared order


def imdb_tags(names: list[str], length: int = -1) -> tuple[datasets.Dataset, list[list[int]]]:
    """imdb_sample with two ClassLabel ids per review: its label, then ``names[2]`` for a long review or -1 (no
    label) for a short one; ``length=2`` makes the Sequence a fixed-size list."""
    df = pd.read_csv(D.path("imdb_sample") / "texts.csv")
    tags = [[names.index(lab), 2 if len(t) > 1000 else -1] for lab, t in zip(df.label, df.text)]
    ds = datasets.Dataset.from_dict(
        {"n_chars": df.text.str.len().astype(float).tolist(), "tags": tags},
        features=datasets.Features({"n_chars": datasets.Value("float32"),
                                    "tags": datasets.Sequence(datasets.ClassLabel(names=names), length=length)}))
    return ds, tags


@pytest.mark.parametrize("length", [-1, 2])
def test_a_minus_one_in_a_list_of_classlabels_is_no_label(length):
    names = ["positive", "negative", "long"]
    ds, tags = imdb_tags(names, length)
    items = to_items(ds)
    assert items["tags"].to_list() == [[names[i] for i in t if i >= 0] for t in tags]  # names, -1 left out
    for block, vocab in ((MultiCategoryBlock, names), (MultiCategoryBlock(add_na=True), ["#na#", *names])):
        dls = length_block((RegressionBlock, block), y="tags").dataloaders(ds, bs=1000)
        assert list(dls.vocab) == vocab
        _, y = next(iter(dls.test_dl(ds, with_labels=True)))
        expected = torch.zeros(len(tags), len(vocab))
        for row, t in enumerate(tags):
            expected[row, [vocab.index(names[i]) for i in t if i >= 0]] = 1.0
        torch.testing.assert_close(y, expected)  # no '#na#' for a -1


# ------------------------------------------------------------------ add_na on a ClassLabel target
def test_add_na_on_a_classlabel_target_keeps_its_declared_names_and_takes_minus_one():
    names = ["positive", "negative"]  # not sorted
    ds = imdb(names)
    no_label = ds.map(lambda r, i: {"label": -1 if i % 10 == 0 else r["label"]}, with_indices=True)
    block = length_block((RegressionBlock, CategoryBlock(add_na=True)))
    for source in (no_label, no_label.to_pandas().assign(  # a pandas category of the names, missing for a -1
            label=lambda d: pd.Categorical.from_codes(d.label, categories=names))):
        dls = block.dataloaders(source, bs=16)
        assert list(dls.vocab) == ["#na#", *names]
        _, y = next(iter(dls.test_dl(source, with_labels=True)))
        assert y.tolist() == [0 if i % 10 == 0 else no_label["label"][i] + 1 for i in range(len(y))]


# ------------------------------------------------------------------ one class among the declared ones
def test_a_view_of_one_declared_class_is_warned_about_naming_the_others():
    names = ["negative", "positive"]
    view = imdb(names).filter(lambda r: r["label"] == 0)
    frame = view.to_pandas().assign(label=lambda d: pd.Categorical.from_codes(d.label, categories=names))
    for source in (view, frame):  # a ClassLabel, a pandas category
        with pytest.warns(UserWarning, match=r"single class 'negative'; the vocab's other classes \['positive'\] "
                                             r"have no training rows"):
            dls = length_block((RegressionBlock, CategoryBlock)).dataloaders(source, bs=16)
        assert list(dls.vocab) == names


# ------------------------------------------------------------------ declared_ in a saved state
def test_a_saved_declared_flag_is_checked():
    from pipekit.core.errors import FieldError
    from pipekit.data import Categorize, MultiCategorize

    names = ["positive", "negative"]
    t = Categorize()
    t.setup(to_items(imdb(names))["label"])
    state = t.state_to_data()
    assert state["declared_"] is True and state["vocab_"] == names
    Categorize().state_from_data(dict(state))
    with pytest.raises(FieldError, match=r"state\.declared_.*True or False.*'yes'"):
        Categorize().state_from_data({**state, "declared_": "yes"})
    with pytest.raises(FieldError, match=r"state\.declared_.*was given a vocab"):
        Categorize(vocab=names).state_from_data(dict(state))
    with pytest.raises(FieldError, match=r"state\.declared_.*learned no labels"):
        MultiCategorize().state_from_data({"vocab_": [], "declared_": True})


def test_a_learner_of_a_classlabel_target_exports_and_predicts_alike(tmp_path):
    import json
    import zipfile

    import pipekit
    from pipekit.vision import vision_learner

    ds = mnist(["7", "3"])  # not sorted
    db = DataBlock(blocks=(ImageBlock(cls="L", cache_dir=tmp_path), CategoryBlock), get_x=ColReader("image"),
                   get_y=ColReader("label"), splitter=RandomSplitter(0.2, seed=0))
    pipekit.set_seed(0)
    learn = vision_learner(db.dataloaders(ds, bs=16, num_workers=0), "simple_cnn", pretrained=False)
    learn.fit(1)
    path = learn.export(tmp_path / "mnist.pipekit")

    def declared(v):
        if isinstance(v, dict):
            return [x for k, w in v.items() for x in ([w] if k == "declared_" else declared(w))]
        return [x for w in v for x in declared(w)] if isinstance(v, list) else []

    assert declared(json.loads(zipfile.ZipFile(path).read("record.json"))) == [True]
    loaded = load_learner(path)
    assert list(loaded.dls.vocab) == ["7", "3"]
    for item in list(learn.dls.valid_ds.items)[:4]:
        label, code, probs = learn.predict(item)
        label2, code2, probs2 = loaded.predict(item)
        assert label2 == label and code2 == code
        torch.testing.assert_close(probs2, probs)
    torch.testing.assert_close(loaded.get_preds(dl=loaded.dls.test_dl(ds))[0],
                               learn.get_preds(dl=learn.dls.test_dl(ds))[0])


# ------------------------------------------------------------------ ImageDataLoaders.from_df on an Image column
def test_image_dataloaders_from_df_reads_an_hf_image_column(tmp_path):
    ds = mnist(["3", "7"], every=5)
    dls = ImageDataLoaders.from_df(ds, fn_col="image", label_col="label", valid_pct=0.2, seed=0, bs=16,
                                   img_cls="L", num_workers=0)
    x, y = dls.one_batch()
    assert tuple(x.shape) == (16, 1, 28, 28) and list(dls.vocab) == ["3", "7"]
    assert len(dls.train_ds) + len(dls.valid_ds) == len(ds)
    with pytest.raises(ParameterError, match="holds the images themselves"):
        ImageDataLoaders.from_df(ds, fn_col="image", label_col="label", suff=".png")


# ------------------------------------------------------------------ set_transform: refused, with the fix
@pytest.mark.parametrize("how", ["set_transform", "with_transform"])
def test_a_transform_set_on_a_dataset_is_refused(how):
    ds = imdb(["negative", "positive"])

    def shorten(batch):
        batch["n_chars"] = [n / 1000 for n in batch["n_chars"]]
        return batch

    if how == "set_transform":
        ds.set_transform(shorten)
    else:
        ds = ds.with_transform(shorten)
    with pytest.raises(DataError, match=r"transform set \(shorten.*ds\.with_format\(None\)\.map\(shorten, batched=True\)"):
        to_items(ds)
    with pytest.raises(Exception, match="pipekit reads the stored columns"):
        length_block((RegressionBlock, CategoryBlock)).dataloaders(ds, bs=16)
    stored = ds.with_format(None).map(shorten, batched=True)  # the recipe the message gives
    assert to_items(stored)["n_chars"].max() < 100
    assert to_items(ds.with_format("numpy")).height == len(ds)  # a format of output types changes no value


# ------------------------------------------------------------------ DatasetDict: the recipe keeping its split
def test_a_dataset_dict_message_gives_the_recipe_that_keeps_its_validation_split():
    full = imdb(["negative", "positive"])
    dd = datasets.DatasetDict({"train": full.select(range(150)), "validation": full.select(range(150, 200))})
    with pytest.raises(DataError, match=r"concatenate_datasets\(\[ds\['train'\], ds\['validation'\]\]\).*"
                                        r"IndexSplitter\(range\(len\(ds\['train'\]\), len\(d\)\)\)") as e:
        to_items(dd)
    assert "valid_col='is_valid'" in str(e.value)
    d = datasets.concatenate_datasets([dd["train"], dd["validation"]])  # the recipe, as the message writes it
    db = DataBlock(blocks=(RegressionBlock, CategoryBlock), get_x=ColReader("n_chars"), get_y=ColReader("label"),
                   splitter=IndexSplitter(range(len(dd["train"]), len(d))))
    dls = db.dataloaders(d, bs=16)
    assert (len(dls.train_ds), len(dls.valid_ds)) == (150, 50)
    assert torch.equal(dls.valid_ds[0][0].reshape(-1), torch.tensor([dd["validation"][0]["n_chars"]]))
