"""The transforms each loader stage applies (fastai's ``dls.train.after_item``, ``dls.after_batch``) and fastai's
``bb_pad`` before_batch step for boxes, on real data."""
import os
from functools import partial
from pathlib import Path

import pytest
import torch

from pipekit.core.errors import ParameterError
from pipekit.data import CategoryBlock, DataBlock, GrandparentSplitter, RandomSplitter, get_image_files, parent_label
from pipekit.vision import (BBoxBlock, BBoxLblBlock, ImageBlock, ImageDataLoaders, Normalize, Resize, aug_transforms,
                            bb_pad, get_annotations, imagenet_stats)

DATA = Path(os.environ.get("PIPEKIT_DATA", "/work/shared/data"))


@pytest.fixture(scope="module")
def mnist_dls():
    return ImageDataLoaders.from_folder(DATA / "mnist_tiny", valid="valid", bs=16, seed=0, item_tfms=Resize(28),
                                        batch_tfms=[*aug_transforms(size=28),
                                                    Normalize.from_stats(*imagenet_stats)])


def names(p):
    return [type(t).__name__ for t in p]


def test_stages_per_split(mnist_dls):
    dls = mnist_dls
    assert names(dls.train.after_item) == names(dls.valid.after_item) == ["Resize"]
    assert "Resize(size=28)" in repr(dls.after_item) and len(dls.train.after_item) == 1
    assert names(dls.train.after_batch) == ["BatchAugment", "Normalize", "IntToFloat"]
    assert names(dls.after_batch) == names(dls.train.after_batch)
    # every loader lists the same transforms, as fastai's; the validation batches are not augmented for it
    assert names(dls.valid.after_batch) == names(dls.train.after_batch)
    assert "size=28" in repr(dls.train.after_batch)
    first, again = dls.valid.one_batch()[0], dls.valid.one_batch()[0]
    assert torch.equal(first, again)  # nothing drawn on validation batches
    assert len(dls.train.before_batch) == 0 and list(dls.before_batch) == []


def test_valid_lists_augmentation_that_resizes():
    dls = ImageDataLoaders.from_folder(DATA / "mnist_tiny", valid="valid", bs=16, seed=0, item_tfms=Resize(32),
                                       batch_tfms=aug_transforms(size=28))
    # 32-pixel images resampled to 28 on validation batches too, by the augmentation listed there
    assert names(dls.valid.after_batch) == ["BatchAugment", "IntToFloat"]
    assert tuple(dls.valid.one_batch()[0].shape[-2:]) == (28, 28)


def test_no_item_tfms_and_assignment_refused(mnist_dls):
    dls = DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock), get_items=partial(get_image_files, folders=["train", "valid"]),
                    get_y=parent_label, splitter=GrandparentSplitter()).dataloaders(DATA / "mnist_tiny", bs=16)
    assert len(dls.train.after_item) == 0 and names(dls.valid.after_batch) == ["IntToFloat"]
    with pytest.raises(AttributeError, match=r"item_tfms=\[\.\.\.\]"):
        mnist_dls.train.after_item = [Resize(64)]
    with pytest.raises(AttributeError, match="batch_tfms"):
        mnist_dls.after_batch = []


def test_mid_level_stages():
    from pipekit.data import Categorize, TfmdDatasets
    from pipekit.vision import IntToFloatTensor, PILImage, ToTensor
    files = get_image_files(DATA / "mnist_tiny" / "train")[::17][:40]
    dsets = TfmdDatasets(files, [[PILImage.create], [parent_label, Categorize]], splits=[list(range(30)),
                                                                                         list(range(30, 40))])
    dls = dsets.dataloaders(bs=8, after_item=[Resize(16), ToTensor()], after_batch=[IntToFloatTensor()])
    assert names(dls.train.after_item) == ["Resize", "ToTensor"] and names(dls.valid.after_item) == names(
        dls.train.after_item)
    assert names(dls.after_batch) == ["IntToFloat"]
    assert len(dls.train.before_batch) == 0


def test_tabular_stages_empty():
    from pipekit.tabular import TabularDataLoaders
    import pandas as pd
    df = pd.read_csv(DATA / "adult_sample" / "adult.csv").head(300)
    dls = TabularDataLoaders.from_df(df, y_names="salary", cat_names=["workclass"], cont_names=["age"], bs=64)
    assert len(dls.train.after_item) == 0 and len(dls.after_batch) == 0 and len(dls.valid.before_batch) == 0


def test_bb_pad_fastai_semantics():
    img = torch.zeros(3, 4, 4)
    samples = [(img, torch.tensor([[-0.5, -0.5, 0.5, 0.5]]), torch.tensor([3])),
               (img, torch.tensor([[0.0, 0.0, 0.5, 0.5], [0.2, 0.1, 0.2, 0.9], [-2.0, -0.5, 0.5, 1.5]]),
                torch.tensor([1, 2, 4]))]
    out = bb_pad(samples, pad_idx=7)
    assert out[0][0] is img
    # the empty box (no width) and its label dropped, the box beyond -1..1 clipped; two boxes each
    assert out[1][1].tolist() == [[0.0, 0.0, 0.5, 0.5], [-1.0, -0.5, 0.5, 1.0]] and out[1][2].tolist() == [1, 4]
    assert out[0][1].tolist() == [[-0.5, -0.5, 0.5, 0.5], [0.0, 0.0, 0.0, 0.0]] and out[0][2].tolist() == [3, 7]
    assert bb_pad(samples)[0][2].tolist() == [3, 0]
    # a box with both sides inverted (x1 < x0 and y1 < y0: a positive area) is empty, as the augmentation drops it,
    # and a padding row (NaN) is no box: both dropped with their labels, as a NaN-padded store's rows would be
    nan = float("nan")
    odd = [("a", [[-0.5, -0.5, 0.5, 0.5], [nan] * 4], [2, 0]),
           ("b", [[0.5, 0.5, -0.5, -0.5], [0.25, 0.5, 0.75, 1.0], [0.25, 0.5, nan, 1.0]], [5, 6, 8])]
    out = bb_pad(odd)
    assert [o[1].tolist() for o in out] == [[[-0.5, -0.5, 0.5, 0.5]], [[0.25, 0.5, 0.75, 1.0]]]
    assert [o[2].tolist() for o in out] == [[2], [6]]
    assert not any(o[1].isnan().any() for o in out)
    # an integer box tensor is taken as the float boxes it holds
    ints = bb_pad([("c", torch.tensor([[-1, -1, 1, 1], [1, 1, -1, -1]]), torch.tensor([1, 2]))])
    assert ints[0][1].tolist() == [[-1.0, -1.0, 1.0, 1.0]] and ints[0][2].tolist() == [1]


def test_bb_pad_before_batch_on_coco():
    path = DATA / "coco_tiny"
    images, lbl_bbox = get_annotations(path / "train.json")
    img2bbox = dict(zip(images, lbl_bbox))
    coco = DataBlock(blocks=(ImageBlock, BBoxBlock, BBoxLblBlock), splitter=RandomSplitter(seed=42),
                     getters=[lambda o: path / "train" / o, lambda o: img2bbox[o][0], lambda o: img2bbox[o][1]],
                     item_tfms=Resize(128), n_inp=1)
    dsets = coco.datasets(images)
    with_pad, without = dsets.dataloaders(bs=8, seed=0, before_batch=bb_pad), dsets.dataloaders(bs=8, seed=0)
    for dl_a, dl_b in ((with_pad.train, without.train), (with_pad.valid, without.valid)):
        for a, b in zip(dl_a.one_batch(), dl_b.one_batch()):
            assert torch.equal(torch.nan_to_num(a, nan=-9.0), torch.nan_to_num(b, nan=-9.0))
    assert len(with_pad.train.before_batch) == 0
    with pytest.raises(ParameterError, match="before_batch"):
        dsets.dataloaders(bs=8, before_batch=lambda samples: samples)
    # fastai's tutorial passes it to the DataBlock's dataloaders, as written
    from_block = coco.dataloaders(images, bs=8, seed=0, before_batch=bb_pad)
    for a, b in zip(from_block.valid.one_batch(), without.valid.one_batch()):
        assert torch.equal(torch.nan_to_num(a, nan=-9.0), torch.nan_to_num(b, nan=-9.0))
    with pytest.raises(ParameterError, match="before_batch"):
        coco.dataloaders(images, bs=8, before_batch=lambda samples: samples)
