"""``RandomResizedCrop`` draws its training crops in each source image's proportions whichever way the loader makes the
batch: as rows of the image cache the augmentation reads in place (a loader on the CPU), or gathered first (a loader
on the GPU, a loader of one's own overriding ``create_batch``). The loader hands each image's source size to the
batch transforms with the batch's context, so both ways draw the same crops from the same streams.

The coloured images are 300x100, their left third red, the middle green, the right blue: fastai's training batches of
``RandomResizedCrop(32, min_scale=0.3)`` are about 18% red, 63% green and 19% blue; crops drawn in the proportions of
the squished square in the cache would be about 28% / 45% / 27%.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import pipekit.data.loader as loader_module
import pipekit.datasets as D
from pipekit.data import CategoryBlock, DataBlock, DataLoader, IndexSplitter, get_image_files, parent_label
from pipekit.vision import ImageBlock, RandomResizedCrop


class _Gathering(DataLoader):
    """A loader of one's own gathering its batches itself (fastai's ``create_batch`` override): its batch transforms
    get the gathered tensors, not rows of the image cache."""

    def create_batch(self, entry):
        return self.dataset.gather(entry)


def _like(dl, cls=DataLoader, seed=None, **settings):
    """A loader of ``dl``'s dataset and batch transforms, as ``cls`` makes batches."""
    given = dict(bs=dl.bs, shuffle=dl.shuffle, seed=dl.seed if seed is None else seed, device="cpu",
                 batch_tfms=dl.batch_tfms, augment=dl.augment, num_workers=0)
    return cls(dl.dataset, **{**given, **settings})


def _thirds_dls(folder, seed=0):
    """12 training and 4 validation 300x100 pictures, red | green | blue thirds, labelled by folder."""
    a = np.zeros((100, 300, 3), np.uint8)
    a[:, :100, 0] = a[:, 100:200, 1] = a[:, 200:, 2] = 255
    for i in range(16):
        (folder / "ab"[i % 2]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(a).save(folder / "ab"[i % 2] / f"{i}.png")
    files = sorted(get_image_files(folder))
    return DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=lambda _: files, get_y=parent_label,
                     splitter=IndexSplitter([0, 1, 2, 3]), item_tfms=RandomResizedCrop(32, min_scale=0.3)
                     ).dataloaders(folder, bs=12, seed=seed, device="cpu", num_workers=0)


def _epochs(dl, n=5):
    return [x for _ in range(n) for x, _ in dl]


def _shares(batches):
    tot = sum(x.float().mean((0, 2, 3)).double() for x in batches)
    return (tot / tot.sum()).numpy()


def test_gathered_batches_are_cropped_in_the_source_proportions_as_rows_are(tmp_path):
    dls = _thirds_dls(tmp_path / "img")
    rows, gathered = _like(dls.train), _like(dls.train, _Gathering)
    assert rows._deferred() == (0,) and gathered._deferred() == ()  # the two ways a batch reaches the crop
    by_rows, by_gather = _epochs(rows), _epochs(gathered)
    # the same streams and the same source sizes: the same crops, pixel for pixel
    assert all(torch.equal(a, b) for a, b in zip(by_rows, by_gather))
    shares = _shares(by_gather)
    assert 0.55 < shares[1] < 0.75 and 0.1 < shares[0] < 0.26 and 0.1 < shares[2] < 0.26, shares  # not 28/45/27
    # validation batches: the centre of the cached image, as before
    valid = _like(dls.valid, _Gathering).one_batch()[0]
    assert torch.equal(valid, dls.valid.one_batch()[0])
    assert np.allclose(_shares([valid]), [0.292, 0.417, 0.292], atol=0.005)


def test_the_same_seed_gives_the_same_gathered_crops(tmp_path):
    dls = _thirds_dls(tmp_path / "img")
    a, b, c = (_like(dls.train, _Gathering, seed=s) for s in (3, 3, 4))
    for xa, xb, xc in zip(_epochs(a, 2), _epochs(b, 2), _epochs(c, 2)):
        assert torch.equal(xa, xb) and not torch.equal(xa, xc)


def test_batches_finished_after_a_device_transfer_get_the_source_sizes(tmp_path, monkeypatch):
    """A loader on another device than the CPU gathers, moves the batch, then runs its batch transforms: here the
    transfer is left out (no GPU needed) and the rest of that path is the loader's own."""
    dls = _thirds_dls(tmp_path / "img")
    rows = _like(dls.train, bs=4)
    device = _like(dls.train, bs=4, num_workers=2)  # gathered in prefetch threads, finished in this one
    device.device = torch.device("meta")  # any device but the CPU takes the gather-then-transfer path
    monkeypatch.setattr(loader_module, "_to", lambda b, device, non_blocking=False: b)
    assert all(torch.equal(a, b) for a, b in zip(_epochs(rows, 3), _epochs(device, 3)))
    assert torch.equal(rows.one_batch()[0], device.one_batch()[0])


@pytest.mark.data
@pytest.mark.parametrize("name, folder, step, get_y, valid", [
    ("camvid_tiny", "images", 8, lambda f: f.name[:4], [4, 5, 10, 11]),  # 13 street scenes, 128x96
    ("dogscats", "valid", 80, parent_label, [0, 1, 11, 12]),  # 13 photos of both classes, 200x200
], ids=["camvid_tiny", "dogscats"])
def test_real_photos_are_cropped_alike_gathered_or_read_in_place(name, folder, step, get_y, valid):
    files = sorted(get_image_files(D.path(name) / folder))[::step]
    dls = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=lambda _: files, get_y=get_y,
                    splitter=IndexSplitter(valid), item_tfms=RandomResizedCrop(64, min_scale=0.35)
                    ).dataloaders(D.path(name), bs=5, seed=0, device="cpu", num_workers=0)
    assert dls.train.dataset.stores[0].size == (80, 80)  # cached square, whatever the photos' proportions
    rows, gathered = _like(dls.train), _like(dls.train, _Gathering)
    by_rows, by_gather = _epochs(rows, 3), _epochs(gathered, 3)
    assert len(by_rows) == 6 and all(torch.equal(a, b) for a, b in zip(by_rows, by_gather))
    # show_batch(unique=True)'s batch: one photo's crops, drawn in its own proportions on either path
    first = np.full(4, rows.batch_plan(0)[0][0])
    one = [dl._finish(0, 0, dl._produce(0, 0, first)) for dl in (rows, gathered)]
    assert torch.equal(one[0][0], one[1][0])
