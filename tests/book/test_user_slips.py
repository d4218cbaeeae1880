"""What a reader of the book types, slips included: a head-pose head with ``y_range``, a split repeated by the
seed, a training set smaller than the batch, a splitter written for the pandas frame, a label returned as a
Path, a NaN target, several files handed to ``predict``: each works as in the book or says what to change."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest
import torch

import pipekit
import pipekit.datasets as D
from pipekit.core.errors import DataError, ParameterError, PipelineStepError
from pipekit.data import (CategoryBlock, ColReader, DataBlock, FuncSplitter, GrandparentSplitter, IndexSplitter,
                          MultiCategoryBlock, RandomSplitter, RegressionBlock, get_image_files, parent_label)
from pipekit.learn import load_learner
from pipekit.learn.nets import SigmoidRange
from pipekit.vision import ImageBlock, PointBlock, Resize, vision_learner

pytestmark = pytest.mark.filterwarnings("ignore:.*are in neither the training nor the validation set")


def _digits(step: int = 10) -> DataBlock:
    return DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=lambda p: get_image_files(p)[::step],
                     get_y=parent_label, item_tfms=Resize(28))


def _valid_items(dls) -> pl.DataFrame:
    return dls.datasets.items[dls.datasets.splits[1]]


def _split(dls) -> list[str]:
    return sorted(_valid_items(dls)["path"].to_list())


def test_a_point_head_with_y_range_stays_in_range_and_exports(tmp_path):
    root = D.path("mnist_tiny") / "train"
    files = sorted(get_image_files(root))[::8]
    db = DataBlock(blocks=(ImageBlock, PointBlock(img_size=(28, 28))), get_items=lambda p: files,
                   get_y=lambda f: [[7.0 if Path(f).parent.name == "3" else 21.0, 14.0]],
                   splitter=IndexSplitter(list(range(0, len(files), 4))), item_tfms=Resize(32))
    dls = db.dataloaders(root, bs=8, seed=0)
    learn = vision_learner(dls, "simple_cnn", y_range=(-1, 1))
    assert isinstance(learn.model.head[-1], SigmoidRange)
    learn.fit_one_cycle(1, 1e-2)
    learn.model.eval()
    with torch.no_grad():
        out = learn.model(torch.randn(4, 3, 32, 32) * 50)  # far outside the data: the head still squashes
        inside = learn.model(learn.dls.valid.one_batch()[0])
    assert out.abs().max() <= 1 and inside.abs().max() < 1
    learn.export(tmp_path / "points.pipekit")
    back = load_learner(tmp_path / "points.pipekit")
    assert isinstance(back.model.head[-1], SigmoidRange)
    np.testing.assert_allclose(back.predict(files[0])[0], learn.predict(files[0])[0], atol=1e-4)
    with pytest.raises(ValueError, match="y_range"):
        vision_learner(dls, "simple_cnn", y_range=(1, -1))


def test_the_default_split_follows_the_seed():
    root = D.path("mnist_tiny") / "train"
    pipekit.set_seed(42)
    a = _split(_digits().dataloaders(root, bs=8))
    pipekit.set_seed(42)
    b = _split(_digits().dataloaders(root, bs=8))
    pipekit.set_seed(43)
    c = _split(_digits().dataloaders(root, bs=8))
    assert a == b and a != c
    # the loaders' seed seeds a random splitter that has none of its own; one that has keeps its own
    d, e = (_split(_digits().dataloaders(root, bs=8, seed=1)) for _ in range(2))
    f = _split(_digits().dataloaders(root, bs=8, seed=2))
    assert d == e and d != f
    own = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=lambda p: get_image_files(p)[::10],
                    get_y=parent_label, item_tfms=Resize(28), splitter=RandomSplitter(0.2, seed=7))
    assert _split(own.dataloaders(root, bs=8, seed=1)) == _split(own.dataloaders(root, bs=8, seed=2))


def test_a_training_set_smaller_than_the_batch_still_trains_or_says_why():
    db = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=lambda p: get_image_files(p)[::60],
                   get_y=parent_label, splitter=GrandparentSplitter(), item_tfms=Resize(28))
    dls = db.dataloaders(D.path("mnist_tiny"), bs=64, seed=0)
    n = len(dls.train.dataset)
    assert 1 < n < 64 and len(dls.train) == 1 and len(dls.one_batch()[0]) == n  # the one partial batch is kept
    learn = vision_learner(dls, "simple_cnn")
    before = [p.detach().clone() for p in learn.model.parameters()]
    learn.fit(1, 1e-2)
    assert any(not torch.equal(a, b) for a, b in zip(before, learn.model.parameters()))
    with pytest.raises(DataError, match=rf"{n} items, fewer than bs=64.*drop_last=False"):
        db.dataloaders(D.path("mnist_tiny"), bs=64, seed=0, drop_last=True)


def test_a_splitter_written_for_the_pandas_frame_gets_it():
    path = D.path("mnist_tiny")
    df = pd.read_csv(path / "labels.csv").iloc[::20].reset_index(drop=True)
    df["is_valid"] = df.name.str.startswith("valid")

    def splitter(df):  # the book's chapter 6 splitter: pandas' index and boolean masks
        return df.index[~df["is_valid"]].tolist(), df.index[df["is_valid"]].tolist()

    db = DataBlock(blocks=(ImageBlock, CategoryBlock), splitter=splitter, get_x=ColReader("name", pref=f"{path}/"),
                   get_y=ColReader("label"), item_tfms=Resize(28))
    dls = db.dataloaders(df, bs=8, seed=0)
    assert len(dls.valid_ds) == int(df["is_valid"].sum()) and len(dls.train_ds) == int((~df["is_valid"]).sum())
    assert all(n.startswith("valid") for n in _valid_items(dls)["name"].to_list())


def test_bad_input_is_named_by_its_row_and_the_items_in_one_line():
    df = pl.DataFrame({"x": [float(i) for i in range(10)], "y": [0.0, 1, 2, 3, 4, 5, 6, 7, 8, float("nan")]})
    db = DataBlock(blocks=(RegressionBlock, RegressionBlock), get_x=ColReader("x"), get_y=ColReader("y"),
                   splitter=RandomSplitter(0.2, seed=0))
    with pytest.raises(PipelineStepError, match=r"non-finite value\(s\) \(NaN or inf\) at rows \[9\]"):
        db.dataloaders(df, bs=4)
    wrong = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=get_image_files, get_y=parent_label,
                      splitter=GrandparentSplitter(valid_name="val"))
    # no 'val' folder: fastai's empty validation set, said in one line naming the folders there are
    with pytest.warns(UserWarning, match=r"no items under 'val' folders; grandparent folders found: .*'valid'.*"
                                         r"no validation set \(set valid_name= if one was meant\)"):
        dls = wrong.dataloaders(D.path("mnist_tiny"), bs=8)
    assert (len(dls.train_ds), len(dls.valid_ds)) == (709, 0)


def test_a_label_returned_as_a_path_is_its_text_and_several_files_are_not_one_item():
    root = D.path("mnist_tiny") / "train"
    db = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=lambda p: get_image_files(p)[::20],
                   get_y=lambda p: Path(p).parent, splitter=RandomSplitter(seed=0), item_tfms=Resize(28))
    dls = db.dataloaders(root, bs=8, seed=0)
    assert dls.vocab == [str(root / "3"), str(root / "7")]
    learn = vision_learner(dls, "simple_cnn")
    files = sorted(get_image_files(root))[:2]
    assert learn.predict(files[0])[0] in dls.vocab
    with pytest.raises(ParameterError, match=r"predict takes one item; this list holds 2.*test_dl"):
        learn.predict(files)
    with pytest.raises(ParameterError, match=r"predict takes one item, not a list of one: pass the item itself"):
        learn.predict(files[:1])


def test_a_label_returned_in_a_list_is_refused_pointing_to_multicategoryblock():
    """``get_y=lambda p: [p.parent.name]`` with a CategoryBlock made each one-item list a class of its own (the
    vocab was [['3'], ['7']]), trained, and predicted lists; it is refused, naming both fixes."""
    root = D.path("mnist_tiny") / "train"
    db = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=lambda p: get_image_files(p)[::20],
                   get_y=lambda p: [Path(p).parent.name], splitter=RandomSplitter(seed=0), item_tfms=Resize(28))
    with pytest.raises(PipelineStepError, match=r"one label per item, and these labels are lists \(the first: "
                                                 r"\['3'\]\): for several labels per item use MultiCategoryBlock"):
        db.dataloaders(root, bs=8, seed=0)
    from pipekit.data import Categorize
    with pytest.raises(DataError, match="these labels are lists"):
        Categorize().setup(pd.Series([["a"], ["b"]]))
    assert Categorize().setup(pd.Series(["a", "b"])) is None  # one label each is as before


def test_a_label_per_file_says_get_y_gives_names_not_classes():
    """``get_y=lambda p: Path(p).name`` makes every training file a class of its own, and the validation files'
    names are no training label: the error says that each item has a label of its own."""
    root = D.path("mnist_tiny") / "train"
    db = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=lambda p: get_image_files(p)[::20],
                   get_y=lambda p: Path(p).name, splitter=RandomSplitter(seed=0), item_tfms=Resize(28))
    with pytest.raises(PipelineStepError, match=r"each of the \d+ training items has a label of its own, so get_y "
                                                 r"gives each item's name or id rather than its class"):
        db.dataloaders(root, bs=8, seed=0)


def test_predicted_points_come_back_in_pixels_through_a_validation_crop():
    from PIL import Image
    from torch import nn

    from pipekit.learn import Learner
    from pipekit.vision import aug_transforms

    files = get_image_files(D.path("dogscats") / "train")[::200]

    def get_pt(f):  # one point at a quarter of the width, a tenth of the height
        w, h = Image.open(f).size
        return {"points": [[w * 0.25, h * 0.1]], "size": [h, w]}

    class Perfect(nn.Module):  # answers the validation target it was given, whatever the image
        def __init__(self, v):
            super().__init__()
            self.v = nn.Parameter(torch.tensor(v))

        def forward(self, x):
            return self.v.expand(len(x), -1).clone()

    w, h = Image.open(files[0]).size
    for item_tfm, batch_tfms in [(Resize(64), None), (Resize(64), aug_transforms(size=(48, 64))),
                                 (Resize((64, 96)), aug_transforms(size=48))]:
        db = DataBlock(blocks=(ImageBlock, PointBlock), get_items=lambda p: files, get_y=get_pt,
                       splitter=IndexSplitter(list(range(1, len(files)))), item_tfms=item_tfm, batch_tfms=batch_tfms)
        dls = db.dataloaders("/", bs=4, seed=0)
        target = next(iter(dls.valid))[1][0].reshape(-1).tolist()  # files[0]'s point as the model sees it
        np.testing.assert_allclose(Learner(dls, Perfect(target)).predict(files[0])[0], [[w * 0.25, h * 0.1]],
                                   atol=0.6)


def test_a_mask_of_another_size_than_its_image_is_named(tmp_path):
    import shutil

    from PIL import Image

    from pipekit.vision import MaskBlock

    src = D.path("camvid_tiny")
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    for k, f in enumerate(sorted((src / "images").glob("*.png"))[:4]):
        shutil.copy(f, tmp_path / "images")
        mask = Image.open(src / "labels" / f"{f.stem}_P.png")
        if k == 2:  # one mask saved at another size and aspect than its photo
            mask = mask.resize((96, 96), Image.NEAREST)
        mask.save(tmp_path / "labels" / f"{f.stem}_P.png")
    codes = list(np.loadtxt(src / "codes.txt", dtype=str))
    db = DataBlock(blocks=(ImageBlock, MaskBlock(codes)), get_items=get_image_files,
                   get_y=lambda o: tmp_path / "labels" / f"{Path(o).stem}_P.png", splitter=RandomSplitter(0.25, seed=0),
                   item_tfms=Resize(32))
    third = sorted((tmp_path / "images").glob("*.png"))[2].name
    with pytest.raises(DataError, match=rf"item 2 \(.*{third}.*\): the image is 128x96 but its MaskBlock is 96x96 "
                                        r"\(1 item\(s\) differ\)"):
        db.dataloaders(tmp_path / "images", bs=2)


def test_a_getter_reads_a_rows_columns_as_attributes():
    """The Kaggle habit ``get_x=lambda r: path/r.fname`` on a pandas frame: a row's columns read as attributes,
    as a pandas row's do; a missing one names the columns."""
    path = D.path("mnist_tiny")
    df = pd.read_csv(path / "labels.csv").rename(columns={"name": "fname"})
    db = DataBlock(blocks=(ImageBlock, CategoryBlock), get_x=lambda r: path / r.fname, get_y=lambda r: r.label,
                   splitter=FuncSplitter(lambda r: r.fname.startswith("valid")), item_tfms=Resize(28))
    dls = db.dataloaders(df, bs=8, seed=0)
    assert sorted(str(v) for v in dls.vocab) == ["3", "7"]
    assert len(dls.valid_ds) == int(df.fname.str.startswith("valid").sum()) > 0
    first = dls.train_ds.items[0]  # the items are the rows, read the same way
    assert isinstance(first, dict) and first.fname == first["fname"] and first.fname.endswith(".png")
    bad = DataBlock(blocks=(ImageBlock, CategoryBlock), get_x=lambda r: path / r.file, get_y=lambda r: r.label,
                    splitter=RandomSplitter(seed=0))
    with pytest.raises(PipelineStepError, match=r"item 0 .*no column .file.; its columns: \[.fname., .label.\]"):
        bad.dataloaders(df, bs=8)


def test_single_augmentations_in_batch_tfms_make_one_augmentation():
    """fastai's ``batch_tfms=[Flip(), Rotate(max_deg=20), Brightness()]``: one BatchAugment drawing from those
    samplers (resampled once), the same batches for the same seed, and validation batches left as they are."""
    from pipekit.vision import BatchAugment, Brightness, Flip, Rotate

    def dls(seed):
        db = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=get_image_files, get_y=parent_label,
                       splitter=GrandparentSplitter(), item_tfms=Resize(28),
                       batch_tfms=[Flip(p=1.0), Rotate(max_deg=20, p=1.0), Brightness()])
        return db, db.dataloaders(D.path("mnist_tiny"), bs=16, seed=seed)

    db, a = dls(0)
    (aug,) = db.batch_tfms
    assert isinstance(aug, BatchAugment) and [type(s).__name__ for s in aug.extra_samplers] == \
        ["Flip", "Rotate", "Brightness"]
    _, b = dls(0)
    xa, xb = a.train.one_batch()[0], b.train.one_batch()[0]
    assert torch.equal(xa, xb)
    plain = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=get_image_files, get_y=parent_label,
                      splitter=GrandparentSplitter(), item_tfms=Resize(28)).dataloaders(D.path("mnist_tiny"), bs=16,
                                                                                         seed=0)
    assert not torch.equal(xa, plain.train.one_batch()[0])  # flipped and rotated: every image moved
    assert torch.equal(a.valid.one_batch()[0], plain.valid.one_batch()[0])  # validation is not augmented


def test_dihedral_draws_each_of_the_eight_symmetries_of_the_square():
    """fastai's ``batch_tfms=Dihedral()`` (pictures with no up or down): each training image is one of the 8
    symmetries of its plain self, pixel for pixel, all 8 drawn over a few batches; validation is left as it is."""
    from pipekit.vision import Dihedral

    def dls(tfms):
        return DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=get_image_files, get_y=parent_label,
                         splitter=GrandparentSplitter(), item_tfms=Resize(28), batch_tfms=tfms
                         ).dataloaders(D.path("mnist_tiny"), bs=32, seed=0, shuffle=False)

    turned, plain = dls([Dihedral(p=1.0)]), dls(None)
    seen = set()
    for (x, _), (p, _) in zip(list(turned.train)[:4], list(plain.train)[:4]):
        syms = [p, p.flip(-1), p.flip(-2), p.flip(-1, -2)]
        syms += [s.transpose(-1, -2) for s in syms]
        for i in range(len(x)):
            err = torch.stack([(x[i] - s[i]).abs().max() for s in syms])
            assert err.min() < 1e-4, f"image {i} is no symmetry of its plain self (closest: {err.min():.3f})"
            seen.add(int(err.argmin()))
    assert seen == set(range(8))
    assert torch.equal(turned.valid.one_batch()[0], plain.valid.one_batch()[0])
    with pytest.raises(ParameterError, match="Dihedral: p"):
        Dihedral(p=2)


def test_mask_splitter_puts_the_items_marked_true_in_the_validation_set():
    from pipekit.data import MaskSplitter

    df = pd.read_csv(D.path("adult_sample") / "adult.csv")
    mask = (df.age > 60).to_numpy()
    train, valid = MaskSplitter(mask)(df)
    assert len(valid) == mask.sum() == (df.age > 60).sum() and len(train) + len(valid) == len(df)
    assert (df.age.iloc[valid] > 60).all() and (df.age.iloc[train] <= 60).all()
    assert MaskSplitter(df.age > 60)(df)[1].tolist() == valid.tolist()  # a pandas Series of booleans too
    with pytest.raises(ParameterError, match="one True/False per item .* for row positions use IndexSplitter"):
        MaskSplitter([0, 3, 7])
    with pytest.raises(DataError, match=r"mask has 3 values for 32561 rows"):
        MaskSplitter([True, False, True])(df)


def _adult() -> pd.DataFrame:
    return pd.read_csv(D.path("adult_sample") / "adult.csv")


def test_category_block_add_na_takes_unseen_and_missing_labels_as_na():
    """``CategoryBlock(add_na=True)``: a class '#na#' first, which validation labels the training set never had
    (and missing ones) become, where without it they are refused, naming them."""
    from pipekit.data import MaskSplitter

    df = _adult()
    rare = df.workclass.str.strip().isin(["Never-worked", "Without-pay"])
    df.loc[df.index[-5:], "workclass"] = None
    valid = rare.to_numpy() | (np.arange(len(df)) % 5 == 0)

    def block(y_block):
        return DataBlock(blocks=(RegressionBlock, y_block), get_x=ColReader("age"), get_y=ColReader("workclass"),
                         splitter=MaskSplitter(valid))

    dls = block(CategoryBlock(add_na=True)).dataloaders(df, bs=256, seed=0, shuffle=False)
    assert dls.vocab[0] == "#na#" and dls.c == len(dls.vocab) == 8  # '#na#' and the 7 classes seen in training
    assert " Never-worked" not in dls.vocab
    ys = torch.cat([y for _, y in dls.valid]).numpy()
    rows = np.flatnonzero(valid)
    unseen = rare.to_numpy()[rows] | df.workclass.isna().to_numpy()[rows]
    assert unseen.sum() == rare.sum() + 1 and (ys[unseen] == 0).all() and (ys[~unseen] > 0).all()
    assert [dls.vocab[c] for c in ys[~unseen][:50]] == df.workclass.to_numpy()[rows][~unseen][:50].tolist()
    with pytest.raises(PipelineStepError, match=r"label\(s\) \[' Never-worked', ' Without-pay'\] at rows .* are not "
                                               r"in the training labels"):
        block(CategoryBlock()).dataloaders(df.fillna({"workclass": " ?"}), bs=256)
    with pytest.raises(PipelineStepError, match=r"CategoryBlock\(add_na=True\) takes text labels"):
        DataBlock(blocks=(RegressionBlock, CategoryBlock(add_na=True)), get_x=ColReader("age"),
                  get_y=ColReader("age"), splitter=RandomSplitter(seed=0)
                  ).dataloaders(df.fillna({"workclass": " ?"}), bs=64)


@pytest.mark.parametrize("get_y", ["columns", "function"])
def test_multi_category_block_encoded_reads_a_row_of_flags_per_item(get_y):
    """``MultiCategoryBlock(encoded=True, vocab=[...])``: labels already one-hot (a 0/1 column per label), read with
    ``ColReader(columns)`` or a function of the row, kept as they are."""
    df = _adult().head(3000)
    df["rich"] = (df.salary == ">=50k").astype(int)
    df["over_50"] = (df.age > 50).astype(int)
    df["married"] = df["marital-status"].str.contains("Married").astype(int)
    cols = ["rich", "over_50", "married"]
    gy = ColReader(cols) if get_y == "columns" else (lambda r: [r[c] for c in cols])
    db = DataBlock(blocks=(RegressionBlock, MultiCategoryBlock(encoded=True, vocab=cols)),
                   get_x=ColReader("hours-per-week"), get_y=gy, splitter=RandomSplitter(seed=0))
    dls = db.dataloaders(df, bs=128, seed=0, shuffle=False)
    assert dls.vocab == cols and dls.c == 3
    ys = torch.cat([y for _, y in dls.valid]).numpy()
    rows = dls.datasets.splits[1]
    assert ys.dtype == np.float32 and np.array_equal(ys, df[cols].to_numpy()[rows].astype(np.float32))
    assert dls.valid_ds[0][1].tolist() == df[cols].iloc[rows[0]].tolist()
    with pytest.raises(ParameterError, match=r"encoded=True\) needs vocab="):
        MultiCategoryBlock(encoded=True)
    with pytest.raises(PipelineStepError, match=r"got 2 columns \['rich', 'over_50'\] for a vocab of 3 labels"):
        DataBlock(blocks=(RegressionBlock, MultiCategoryBlock(encoded=True, vocab=cols)),
                  get_x=ColReader("hours-per-week"), get_y=ColReader(cols[:2]),
                  splitter=RandomSplitter(seed=0)).dataloaders(df, bs=128)
    if get_y == "columns":
        df.loc[df.index[7], "married"] = np.nan
        with pytest.raises(PipelineStepError, match=r"item 7 holds a missing or infinite value"):
            db.dataloaders(df, bs=128)
