"""fastai's data semantics kept on real data: pandas items read by position, one_batch as iteration gives it, the
loss of a Datasets' target, the loaders' mid-level API (get_idxs, add_tfms, create_batch/before_batch, items,
tfms), weighted and partial epochs, and DataBlock.from_columns taking pandas arrays."""
from operator import attrgetter
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest
import torch
import torch.nn as nn

import pipekit.datasets as D
from pipekit.core.errors import ParameterError
from pipekit.data import (Categorize, CategoryBlock, ColReader, DataBlock, DataLoader, Datasets, GrandparentSplitter,
                          IndexSplitter, MultiCategorize, RegressionBlock, ToFloat, get_image_files, parent_label)
from pipekit.learn import Learner
from pipekit.learn.losses import BCEWithLogitsLossFlat, CrossEntropyLossFlat, MSELossFlat
from pipekit.vision import ImageBlock, IntToFloatTensor, Normalize, PILImageBW, ToTensor

pytestmark = pytest.mark.data


@pytest.fixture(scope="module")
def imdb() -> pd.DataFrame:
    return pd.read_csv(D.path("imdb_sample") / "texts.csv")


@pytest.fixture(scope="module")
def adult() -> pd.DataFrame:
    return pd.read_csv(D.path("adult_sample") / "adult.csv").iloc[:600]


@pytest.fixture(scope="module")
def digits():
    """mnist_tiny's files (every 18th training, every 35th validation one) as chapter 11's Datasets reads them."""
    path = D.path("mnist_tiny")
    items = sorted(get_image_files(path / "train"))[::18] + sorted(get_image_files(path / "valid"))[::35]
    dsets = Datasets(items, tfms=[[PILImageBW.create], [parent_label, Categorize()]],
                     splits=GrandparentSplitter()(items))
    return items, dsets


def _digit_loaders(dsets, **kwargs):
    return dsets.dataloaders(bs=16, after_item=[ToTensor], after_batch=[IntToFloatTensor], device="cpu", seed=0,
                             **kwargs)


# ---------------------------------------------------------------- pandas items are read by position
def test_datasets_over_a_shuffled_frame_pair_each_text_with_its_own_label(imdb):
    shuffled = imdb.sample(frac=1, random_state=0)  # row labels no longer 0..n-1
    splits = [list(range(0, 800)), list(range(800, 1000))]
    ds = Datasets(shuffled, tfms=[[attrgetter("text")], [attrgetter("label"), Categorize()]], splits=splits)
    for sub, pos in ((ds.train, 0), (ds.valid, 0), (ds.train, 17), (ds.valid, 199)):
        text, y = sub[pos]
        matches = shuffled[shuffled.text == text]
        assert len(matches) == 1
        assert ds.vocab[y] == matches.label.iloc[0]  # the label of the row the text came from
    text, y = ds.train[0]
    assert text == shuffled.iloc[0].text and ds.vocab[y] == shuffled.iloc[0].label
    text, y = ds.valid[0]
    assert text == shuffled.iloc[800].text and ds.vocab[y] == shuffled.iloc[800].label
    assert ds[5][0] == shuffled.iloc[5].text


def test_datasets_over_a_frame_reads_the_first_validation_item(imdb):
    ds = Datasets(imdb, tfms=[[attrgetter("text")], [attrgetter("label"), Categorize()]],
                  splits=[range(800), range(800, 1000)])
    text, y = ds.valid[0]
    assert text == imdb.text.iloc[800] and ds.vocab[y] == imdb.label.iloc[800]


# ---------------------------------------------------------------- one_batch is the first batch of iteration
def test_one_batch_is_what_iteration_gives(adult):
    ages = adult.age.tolist()[:23]
    dl = DataLoader(ages, bs=5)
    b = dl.one_batch()
    assert isinstance(b, torch.Tensor) and b.tolist() == ages[:5]
    assert torch.equal(b, next(iter(dl)))
    pairs = DataLoader(list(zip(ages, adult.fnlwgt.tolist()[:23])), bs=5)
    ob, it = pairs.one_batch(), next(iter(pairs))
    assert isinstance(ob, tuple) and len(ob) == 2 and all(torch.equal(a, b) for a, b in zip(ob, it))


# ---------------------------------------------------------------- the loss of a Datasets' target
def test_datasets_loaders_take_the_loss_of_their_target_transform(digits):
    _, dsets = digits
    dls = _digit_loaders(dsets)
    assert isinstance(dls.loss_func, CrossEntropyLossFlat)
    learn = Learner(dls, nn.Sequential(nn.Flatten(), nn.Linear(784, 2)))
    assert isinstance(learn.loss_func, CrossEntropyLossFlat)
    learn.fit(1, 1e-2)
    assert dls.c == 2


def test_datasets_loss_for_multi_label_and_float_targets(adult):
    labels = [attrgetter("workclass"), lambda s: pl.Series([[v.strip()] for v in s]), MultiCategorize()]
    multi = Datasets(adult, tfms=[[attrgetter("age")], labels], splits=[range(500), range(500, 600)])
    assert isinstance(multi.dataloaders(bs=32, device="cpu").loss_func, BCEWithLogitsLossFlat)
    reg = Datasets(adult, tfms=[[attrgetter("education-num")], [attrgetter("age"), lambda s: pl.Series(s.to_numpy()), ToFloat()]],
                   splits=[range(500), range(500, 600)])
    assert isinstance(reg.dataloaders(bs=32, device="cpu").loss_func, MSELossFlat)
    plain = Datasets(adult, tfms=[[attrgetter("education-num")], [attrgetter("age")]], splits=[range(500), range(500, 600)])
    assert plain.dataloaders(bs=32, device="cpu").loss_func is None


# ---------------------------------------------------------------- the loaders' mid-level API
def test_get_idxs_is_the_order_an_epoch_reads(digits):
    _, dsets = digits
    dls = _digit_loaders(dsets)
    idxs = dls.train.get_idxs()
    assert sorted(idxs.tolist()) == list(range(len(dsets.train))) and idxs.tolist() != sorted(idxs.tolist())
    plan = np.concatenate(dls.train.batch_plan(dls.train.epoch))
    assert plan.tolist() == idxs[:len(plan)].tolist()
    assert dls.valid.get_idxs().tolist() == list(range(len(dsets.valid)))


def test_add_tfms_adds_to_every_loader_or_to_those_named(digits):
    _, dsets = digits
    dls = _digit_loaders(dsets)
    before = dls.valid.one_batch()[0]
    dls.add_tfms([Normalize.from_stats(0.5, 0.5)], "after_batch")
    after = dls.valid.one_batch()[0]
    assert torch.allclose(after, (before - 0.5) / 0.5, atol=1e-6) and after.min() < 0
    assert len(dls.train.after_batch) == len(dls.valid.after_batch) == 2
    dls.add_tfms([Normalize.from_stats(0.5, 0.5)], "after_batch", loaders=[0])
    assert len(dls.train.after_batch) == 3 and len(dls.valid.after_batch) == 2
    dls.add_tfms([lambda items: items[:3]], "before_batch", loaders=1)
    assert len(dls.valid.one_batch()[0]) == 3 and len(dls.train.one_batch()[0]) == 16
    with pytest.raises(ParameterError, match="event="):
        dls.add_tfms([Normalize.from_stats(0.5, 0.5)], "after_epoch")


def test_add_tfms_on_datablock_loaders_names_batch_tfms():
    dls = DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock), get_items=get_image_files, get_y=parent_label,
                    splitter=GrandparentSplitter()).dataloaders(D.path("mnist_tiny"), bs=16, device="cpu")
    with pytest.raises(ParameterError, match=r"batch_tfms=\[\.\.\.\]"):
        dls.add_tfms([Normalize.from_stats(0.5, 0.5)], "after_batch")


def test_datasets_items_and_tfms(digits):
    items, dsets = digits
    dls = _digit_loaders(dsets)
    valid_items = [items[i] for i in dsets.splits[1]]
    assert list(dls.valid.items) == valid_items
    assert [type(p).__name__ for p in dsets.tfms] == ["Pipeline", "Pipeline"]
    assert dsets.tfms[1][-1].vocab == ["3", "7"]


def test_dataloader_create_batch_and_before_batch(imdb):
    lengths = imdb.text.str.len().tolist()[:23]
    dl = DataLoader(lengths, bs=5, create_batch=lambda b: torch.tensor(b) * 2)
    assert [t.tolist() for t in dl][0] == [2 * n for n in lengths[:5]]
    assert torch.equal(dl.one_batch(), torch.tensor(lengths[:5]) * 2)
    rev = DataLoader(lengths, bs=5, before_batch=lambda b: b[::-1])
    assert rev.one_batch().tolist() == lengths[:5][::-1] and len(list(rev)) == 5
    texts = imdb.text.tolist()[:10]  # texts of different lengths: padded by a before_batch step, never stacked
    pad = DataLoader([torch.tensor([ord(c) for c in t[:40 + i]]) for i, t in enumerate(texts)], bs=4,
                     before_batch=lambda b: [torch.nn.functional.pad(x, (0, 60 - len(x))) for x in b])
    assert pad.one_batch().shape == (4, 60)
    with pytest.raises(ParameterError, match="create_batch"):
        DataLoader(lengths, bs=5, create_batch="stack")


# ---------------------------------------------------------------- weighted and partial epochs
def _adult_dsets(adult):
    return DataBlock(blocks=(RegressionBlock, CategoryBlock), get_x=ColReader("age"), get_y=ColReader("salary"),
                     splitter=IndexSplitter(list(range(500, 600)))).datasets(adult)


def _epoch_targets(dl):
    return torch.cat([y for _, y in dl]).tolist()


def test_weighted_dataloaders_draw_by_the_weights(adult):
    dss = _adult_dsets(adult)
    rich = dss.vocab.index(">=50k")
    codes = np.array([int(dss.train[i][1]) for i in range(len(dss.train))])
    assert (codes == rich).mean() < 0.35  # a minority class ...
    wgts = np.where(codes == rich, 1.0, 0.001)
    dls = dss.weighted_dataloaders(wgts, bs=50, seed=3, drop_last=False)
    ys = _epoch_targets(dls.train)
    assert len(ys) == len(dss.train) and np.mean(np.array(ys) == rich) > 0.95  # ... drawn nearly alone
    again = dss.weighted_dataloaders(wgts, bs=50, seed=3, drop_last=False)
    assert dls.train.get_idxs(0).tolist() == again.train.get_idxs(0).tolist()
    assert dls.train.get_idxs(0).tolist() != dls.train.get_idxs(1).tolist()
    assert dls.train.get_idxs(0).tolist() != dss.weighted_dataloaders(wgts, bs=50, seed=4).train.get_idxs(0).tolist()
    assert len(dss.weighted_dataloaders(wgts, bs=50, n=120, seed=3, drop_last=False).train.get_idxs()) == 120
    assert _epoch_targets(dls.valid) == [int(dss.valid[i][1]) for i in range(len(dss.valid))]  # as it was
    with pytest.raises(ParameterError, match="one weight per training item"):
        dss.weighted_dataloaders(wgts[:10], bs=50)


def test_partial_dataloaders_read_another_subset_each_epoch(adult):
    dss = _adult_dsets(adult)
    dls = dss.partial_dataloaders(partial_n=64, bs=16, seed=1)
    e0, e1 = dls.train.get_idxs(0), dls.train.get_idxs(1)
    assert len(e0) == len(e1) == 64 and len(set(e0.tolist())) == 64 and set(e0.tolist()) != set(e1.tolist())
    assert len(dls.train) == 4 and sum(len(x) for x, _ in dls.train) == 64
    assert dss.partial_dataloaders(partial_n=64, bs=16, seed=1).train.get_idxs(0).tolist() == e0.tolist()
    assert len(dls.valid.dataset) == 100 and sum(len(x) for x, _ in dls.valid) == 100


def test_weighted_and_partial_on_datasets_and_datablock(digits, adult):
    _, dsets = digits
    codes = np.array([dsets.train[i][1] for i in range(len(dsets.train))])
    dls = dsets.weighted_dataloaders(np.where(codes == 1, 1.0, 0.0), bs=8, after_item=[ToTensor],
                                     after_batch=[IntToFloatTensor], device="cpu", seed=0, drop_last=False)
    assert set(_epoch_targets(dls.train)) == {1}
    part = dsets.partial_dataloaders(partial_n=10, bs=5, after_item=[ToTensor], device="cpu", seed=0)
    assert sum(len(x) for x, _ in part.train) == 10
    dblock = DataBlock(blocks=(RegressionBlock, CategoryBlock), get_x=ColReader("age"), get_y=ColReader("salary"),
                       splitter=IndexSplitter(list(range(500, 600))))
    wgts = (adult.salary == "<50k").to_numpy().astype(float)  # one weight per item of the source
    dls = dblock.weighted_dataloaders(adult, wgts, bs=50, seed=0)
    assert {dls.vocab[c] for c in _epoch_targets(dls.train)} == {"<50k"}
    with pytest.raises(ParameterError, match="one weight per item"):
        dblock.weighted_dataloaders(adult, wgts[:500], bs=50)


# ---------------------------------------------------------------- DataBlock.from_columns takes pandas arrays
def test_from_columns_takes_pandas_arrays(adult):
    db = DataBlock.from_columns(blocks=(RegressionBlock, CategoryBlock),
                                get_items=lambda df: (df["age"].values, df["salary"].values),
                                splitter=IndexSplitter(list(range(400, 500))))
    dls = db.dataloaders(adult.iloc[:500], bs=32, device="cpu")
    x, y = dls.valid_ds[0]
    assert float(x[0]) == adult.age.iloc[400] and dls.vocab[int(y)] == adult.salary.iloc[400]
    assert dls.vocab == sorted(adult.salary.iloc[:400].unique().tolist())
    cat = DataBlock.from_columns(blocks=(RegressionBlock, CategoryBlock),
                                 get_items=lambda df: (df["age"].values, pd.Categorical(df["sex"])),
                                 splitter=IndexSplitter(list(range(400, 500)))).dataloaders(adult.iloc[:500], bs=32,
                                                                                           device="cpu")
    assert cat.vocab == sorted(adult.sex.iloc[:400].unique().tolist())


def test_a_learner_over_bare_batches_reads_whole_batches_for_its_summary_and_checks():
    """Loaders over a plain list give bare tensors (as fastai's); the summary and the learner's checks still read
    the whole batch, not its first row."""
    import torch
    from torch import nn

    from pipekit.data import DataLoader, DataLoaders
    from pipekit.data.loader import batch_parts
    from pipekit.learn import Learner

    x = torch.randn(40, 4, generator=torch.Generator().manual_seed(0))
    dls = DataLoaders(DataLoader(list(x), bs=8), DataLoader(list(x), bs=8))
    assert dls.train.one_batch().shape == (8, 4) and batch_parts(dls.train)[0].shape == (8, 4)
    learn = Learner(dls, nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4)), loss_func=lambda p: p.pow(2).mean())
    assert "input 8x4" in str(learn.summary()).splitlines()[0], str(learn.summary()).splitlines()[0]
    before = learn.model[0].weight.detach().clone()
    learn.fit(1, 1e-2)  # batches of inputs only train on loss_func(pred), as fastai's
    assert learn.recorder.values[-1][0] > 0 and not torch.equal(before, learn.model[0].weight)


def test_training_on_inputs_only_needs_a_loss_of_the_predictions_alone():
    """Batches of inputs only train on loss_func(pred); a loss needing a target is refused before any step,
    naming the fix, where fastai skips every step silently."""
    import pytest
    import torch
    from torch import nn

    from pipekit.core.errors import ParameterError
    from pipekit.data import DataLoader, DataLoaders
    from pipekit.learn import Learner

    x = torch.randn(32, 4, generator=torch.Generator().manual_seed(0))
    dls = DataLoaders(DataLoader(list(x), bs=8), DataLoader(list(x), bs=8))
    learn = Learner(dls, nn.Linear(4, 4), loss_func=nn.MSELoss())
    before = learn.model.weight.detach().clone()
    with pytest.raises(ParameterError, match=r"inputs only .* loss_func 'MSELoss' needs a target"):
        learn.fit(1, 1e-2)
    assert torch.equal(before, learn.model.weight)
    preds, targs = learn.get_preds(dl=dls.valid)  # predictions need no loss
    assert preds.shape == (32, 4)


def test_careless_seeds_epochs_and_weights_are_named_or_taken():
    """test_dl(seed=None) draws a random seed (it crashed at the first batch), a seed or epoch that is not a whole
    number from 0 is refused naming it, weights come as a column or a flat list alike, huge weights do not overflow,
    and weights that are not numbers are named."""
    import numpy as np
    import pytest

    import pipekit.datasets as D
    from pipekit.core.errors import ParameterError
    from pipekit.data import DataLoader
    from pipekit.vision import ImageDataLoaders

    path = D.path("mnist_tiny")
    dls = ImageDataLoaders.from_folder(path, bs=16, seed=0, img_cls="L")
    files = sorted((path / "test").glob("*.png"))[:8]
    assert dls.test_dl(files, seed=None).one_batch()[0].shape[0] == 8
    for bad in ("a", -1, 1.5, True):
        with pytest.raises(ParameterError, match=r"seed=.* is not a seed; give a whole number from 0"):
            dls.test_dl(files, seed=bad)
    dl = DataLoader(list(range(10)), bs=4, shuffle=True, seed=0)
    with pytest.raises(ParameterError, match=r"get_idxs: epoch=-1 is not an epoch"):
        dl.get_idxs(-1)
    n = len(dls.train_ds)
    column = dl.new(dataset=list(range(n))).weighted(np.ones((n, 1)))
    huge = dl.new(dataset=list(range(n))).weighted(np.full(n, 1e308))
    assert len(column.get_idxs()) == n and len(huge.get_idxs()) == n
    with pytest.raises(ParameterError, match=r"wgts must be numbers, one per training item .*got dict"):
        dl.weighted({"a": 1})


def test_a_text_classifiers_vocab_indexed_by_predictions_names_the_block_to_index():
    """``dls.vocab[preds.argmax(1)]`` (an image classifier's spelling) on a text classifier, whose ``dls.vocab`` is
    ``[tokens, classes]``: a TypeError saying to index the classes, not Python's bare one; ints index as a list."""
    import pandas as pd
    import pytest
    import torch

    import pipekit.datasets as D
    from pipekit.text import TextDataLoaders

    df = pd.read_csv(D.path("imdb_sample") / "texts.csv").head(60)
    dls = TextDataLoaders.from_df(df, text_col="text", label_col="label", valid_pct=0.2, seed=0, bs=16)
    assert list(dls.vocab[1]) == ["negative", "positive"] and dls.vocab[0][:2] == ["xxunk", "xxpad"]
    assert dls.vocab == [dls.vocab[0], dls.vocab[1]]
    with pytest.raises(TypeError, match=r"indexed by block first: dls.vocab\[-1\]\[preds.argmax\(1\)\]"):
        dls.vocab[torch.tensor([1, 0])]
    assert [dls.vocab[-1][i] for i in torch.tensor([1, 0]).tolist()] == ["positive", "negative"]


# ---------------------------------------------------------------- fastai habits a DataBlock meets


def _mnist_block(**kwargs):
    from functools import partial

    return DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock), get_y=parent_label,
                     get_items=partial(get_image_files, folders=["train", "valid"]), **kwargs)


def test_a_fastai_batch_transform_is_refused_saying_how_pipekit_writes_one():
    from pipekit.data import Transform
    from pipekit.vision import TensorImage

    class BatchScale(Transform):  # fastai's batch transform: typed for the batch's tensors
        def encodes(self, x: TensorImage):
            return x * 10.0

    with pytest.raises(ParameterError, match=r"subclass BatchTransform and define encode\(self, batch, ctx\).*"
                                             r"order = 95") as e:
        _mnist_block(splitter=GrandparentSplitter(), batch_tfms=[BatchScale()])
    assert "item_tfms=[" not in str(e.value) and "typed x: TensorImage would change nothing" in str(e.value)
    # in item_tfms it would change nothing (items are no tensors): refused, naming the annotation
    with pytest.raises(ParameterError, match=r"annotated x: TensorImage.*would change nothing.*BatchTransform"):
        _mnist_block(splitter=GrandparentSplitter(), item_tfms=[BatchScale()])
    with pytest.raises(ParameterError, match=r"annotated x: Tensor\b"):
        _mnist_block(splitter=GrandparentSplitter(), item_tfms=[Transform(_tensor_typed)])
    # what the message describes runs on the batches
    from pipekit.data import BatchTransform

    class Scale(BatchTransform):
        order = 95  # after IntToFloat, as the message says

        def encode(self, batch, ctx):
            x, *rest = batch
            return (x * 10, *rest)

    plain = _mnist_block(splitter=GrandparentSplitter()).dataloaders(D.path("mnist_tiny"), bs=16, seed=0)
    dls = _mnist_block(splitter=GrandparentSplitter(), batch_tfms=[Scale()]).dataloaders(
        D.path("mnist_tiny"), bs=16, seed=0)
    assert torch.allclose(dls.valid.one_batch()[0], plain.valid.one_batch()[0] * 10)


def _tensor_typed(x: torch.Tensor):
    return x * 10


def test_a_tensor_typed_item_transform_runs_where_the_items_are_tensors(adult):
    from pipekit.data import RandomSplitter, Transform, TransformBlock

    class Scale(Transform):
        def encodes(self, x: torch.Tensor):
            return x * 10

    # a generic TransformBlock's values are what the getter gives: here tensors, which the transform is typed for
    items = [{"x": torch.tensor([a, h], dtype=torch.float32), "y": s}
             for a, h, s in zip(adult["age"], adult["hours-per-week"], adult["salary"])][:200]

    def block(**kwargs):
        return DataBlock(blocks=(TransformBlock, CategoryBlock), get_x=lambda r: r["x"], get_y=lambda r: r["y"],
                         splitter=RandomSplitter(0.2, seed=0), **kwargs)

    plain = block().dataloaders(items, bs=8, seed=0)
    scaled = block(item_tfms=[Scale()]).dataloaders(items, bs=8, seed=0)
    assert torch.equal(torch.stack(list(scaled.valid.one_batch()[0])), torch.stack(list(plain.valid.one_batch()[0])) * 10)
    # blocks whose values pipekit makes (an image, a label) still refuse it, naming them
    with pytest.raises(ParameterError, match=r"item_tfms see in the blocks \(ImageBlock, CategoryBlock\) are no "
                                             r"tensors"):
        _mnist_block(splitter=GrandparentSplitter(), item_tfms=[Scale()])


def test_a_function_splitter_gets_the_items_as_fastai_gives_them(imdb):
    seen = {}

    def by_folder(items):
        seen["items"] = items
        return ([i for i, p in enumerate(items) if p.parent.parent.name == "train"],
                [i for i, p in enumerate(items) if p.parent.parent.name == "valid"])

    dls = _mnist_block(splitter=by_folder).dataloaders(D.path("mnist_tiny"), bs=16, seed=0)
    assert isinstance(seen["items"], list) and all(isinstance(p, Path) for p in seen["items"])
    assert (len(dls.train_ds), len(dls.valid_ds)) == (709, 699)

    def by_flag(df):  # a pandas source: the frame as pandas, as fastai gives it
        seen["df"] = df
        return np.flatnonzero(~df.is_valid.values), np.flatnonzero(df.is_valid.values)

    from pipekit.text import TextBlock

    DataBlock(blocks=(TextBlock.from_df("text"), CategoryBlock), get_x=ColReader("text"), get_y=ColReader("label"),
              splitter=by_flag).datasets(imdb)
    assert isinstance(seen["df"], pd.DataFrame) and len(seen["df"]) == len(imdb)


def test_a_failing_function_splitter_is_told_what_it_was_given():
    from pipekit.core.errors import PipelineStepError

    def by_frame(items):  # written for a frame of paths: it gets the list of Paths fastai gives
        valid = items["path"].cast(pl.String).str.contains("/valid/")
        return np.flatnonzero(~valid), np.flatnonzero(valid)

    with pytest.raises(PipelineStepError) as e:
        _mnist_block(splitter=by_frame).dataloaders(D.path("mnist_tiny"), bs=16, seed=0)
    msg = str(e.value)
    assert "split (by_frame())" in msg and "DataFrame" not in msg
    assert f"a list of {len(get_image_files(D.path('mnist_tiny'), folders=['train', 'valid']))} Paths" in msg
    assert "TypeError: list indices must be integers" in msg
    assert "A function splitter gets the items as fastai gives them" in msg and "as Paths" in msg


def test_a_split_asked_for_validation_items_that_gives_none_warns(imdb):
    from pipekit.core.errors import PipekitWarning
    from pipekit.data import RandomSplitter

    block = DataBlock(blocks=(CategoryBlock, CategoryBlock), get_x=ColReader("label"), get_y=ColReader("label"),
                      splitter=RandomSplitter(0.2, seed=42))
    with pytest.warns(PipekitWarning, match=r"no validation items: valid_pct=0.2 of 4 items.*at least 5 items"):
        dsets = block.datasets(imdb.head(4))
    assert len(dsets.valid) == 0
    import warnings

    with warnings.catch_warnings():  # 0 asked for: no word
        warnings.simplefilter("error")
        block.new(splitter=RandomSplitter(0, seed=42)).datasets(imdb.head(4))


def test_files_nested_under_a_class_folder_are_named_as_such(tmp_path):
    import shutil
    import warnings

    from pipekit.core.errors import PipekitWarning

    src = D.path("mnist_tiny")
    for split in ("train", "valid"):
        for label in ("3", "7"):
            files = sorted((src / split / label).glob("*.png"))[:4]
            (tmp_path / split / label).mkdir(parents=True)
            for f in files:
                shutil.copy(f, tmp_path / split / label / f.name)
    deep = tmp_path / "train" / "3" / "deep" / "er"
    deep.mkdir(parents=True)
    for f in sorted((src / "train" / "3").glob("*.png"))[4:6]:
        shutil.copy(f, deep / f.name)
    with warnings.catch_warnings(record=True) as ws:
        warnings.simplefilter("always")
        dsets = _mnist_block(splitter=GrandparentSplitter()).datasets(tmp_path)
    said = [str(w.message) for w in ws if issubclass(w.category, PipekitWarning) and "neither" in str(w.message)]
    assert len(said) == 1 and "2 of 18 items lie inside a 'train' or 'valid' folder but deeper" in said[0], said
    assert "train/3/deep/er/" in said[0] and "get_items=partial(get_image_files, folders=['train'" not in said[0]
    assert (len(dsets.train), len(dsets.valid)) == (8, 8)


def test_multi_category_block_with_fastai_encoded_first():
    from pipekit.data import MultiCategoryBlock

    with pytest.raises(ParameterError, match=r"MultiCategoryBlock\(True\).*encoded=True, vocab="):
        MultiCategoryBlock(True)
    with pytest.raises(ParameterError, match=r"MultiCategoryBlock\(False\).*MultiCategoryBlock\(\)"):
        MultiCategoryBlock(False)


def test_splitters_take_fastais_argument_names(adult):
    from pipekit.data import ColSplitter

    assert [s.tolist() for s in IndexSplitter(valid_idx=[1, 3])(adult.head(5))] == [[0, 2, 4], [1, 3]]
    assert IndexSplitter(valid_idx=[1, 3]).clone().idxs == [1, 3]
    with pytest.raises(ParameterError, match=r"idxs=\[1\] and valid_idx=\[3\] are one argument \(valid_idx is fastai's name of idxs\)"):
        IndexSplitter([1], valid_idx=[3])
    frame = pl.from_pandas(adult)
    on = ColSplitter("workclass", on=" Private")(frame)[1]
    assert on.tolist() == np.flatnonzero(adult.workclass.values == " Private").tolist()
    several = ColSplitter("education", on=[" Masters", " Doctorate"]).clone()(frame)[1]
    assert several.tolist() == np.flatnonzero(adult.education.isin([" Masters", " Doctorate"]).values).tolist()
