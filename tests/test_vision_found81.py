"""Integer box labels keep their values (sorted by number, looked up by value), and an item transform's reflection
pad mirrors about the edge pixel (np.pad's ``mode="reflect"``), on coco_tiny and camvid_tiny."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import cv2
import numpy as np
import polars as pl
import pytest
import torch
from torch import nn

import pipekit.datasets as D
from pipekit.core.errors import DataError
from pipekit.data import DataBlock, IndexSplitter
from pipekit.learn import Learner, load_learner, register_arch
from pipekit.vision import BBoxBlock, BBoxLblBlock, CropPad, ImageBlock, MaskBlock, Resize
from pipekit.vision.bbox import BoxLabels
from pipekit.vision.decode import decode_image

IDS = [2, 3, 12, 15, 24, 26]  # coco_tiny's category ids less 60: whole numbers of one and two digits


def coco_int_labels(n: int = 60) -> tuple[list[Path], dict[str, tuple[list, list]]]:
    """The first ``n`` coco_tiny images and, per file name, its boxes in pixels and its integer category ids."""
    path = D.path("coco_tiny")
    meta = json.loads((path / "train.json").read_text())
    names = {im["id"]: im["file_name"] for im in meta["images"]}
    ann: dict[str, tuple[list, list]] = {}
    for a in meta["annotations"]:
        x, y, w, h = a["bbox"]
        boxes, labels = ann.setdefault(names[a["image_id"]], ([], []))
        boxes.append([x, y, x + w, y + h])
        labels.append(a["category_id"] - 60)
    return [path / "train" / f for f in list(ann)[:n]], ann


def int_dls(vocab=None):
    files, ann = coco_int_labels()
    dblock = DataBlock(blocks=(ImageBlock, BBoxBlock, BBoxLblBlock(vocab=vocab)), n_inp=1, item_tfms=Resize(64),
                       get_y=[lambda o: ann[o.name][0], lambda o: ann[o.name][1]],
                       splitter=IndexSplitter(list(range(8))))
    return dblock.dataloaders(files, bs=8, seed=0, device="cpu"), files, ann


def check_codes_name_the_labels(dls, files, ann) -> None:
    vocab = dls.vocab
    _, _, lab = next(iter(dls.valid))
    n = 0
    for i, codes in enumerate(lab.tolist()):
        labels = ann[files[int(dls.valid.dataset.idxs[i])].name][1]
        for j, code in enumerate(codes):
            if code:  # 0: padding, or a box the crop took away
                assert vocab[code] == labels[j] and type(vocab[code]) is int
                n += 1
    assert n > 20


def test_integer_box_labels_are_sorted_by_value_and_coded_by_value():
    dls, files, ann = int_dls()
    assert dls.vocab == ["#na#", *IDS] and all(type(v) is int for v in dls.vocab[1:])
    check_codes_name_the_labels(dls, files, ann)
    # decoded labels are the values themselves
    _, _, lab = next(iter(dls.valid))
    decoded = dls.blocks[2].decode(lab[0])
    assert decoded == [dls.vocab[int(c)] for c in lab[0] if int(c)] and all(type(v) is int for v in decoded)


def test_a_given_integer_vocab_matches_integer_labels():
    dls, files, ann = int_dls(vocab=IDS)
    assert dls.vocab == ["#na#", *IDS]
    check_codes_name_the_labels(dls, files, ann)


def test_a_text_vocab_for_integer_labels_codes_them_as_categorize_does():
    from pipekit.data.blocks import Categorize

    texts = [str(v) for v in IDS]
    t = BoxLabels(vocab=texts)
    t.setup(pl.Series([[2, 12]]))
    assert t.vocab_ == ["#na#", *texts]
    cat = Categorize(vocab=texts)
    # a vocab of text learned from text labels (sorted as text), as a learner exported with them holds it
    assert t.encode(pl.Series([[2, 12], [26]])).tolist() == [[1 + int(cat.encode(2)), 1 + int(cat.encode(12))],
                                                              [1 + int(cat.encode(26)), 0]]
    assert t.encode(pl.Series([["2", "12"]])).tolist() == t.encode(pl.Series([[2, 12]])).tolist()
    assert t.decode(t.encode(pl.Series([[np.int64(15), 3]]))[0]) == ["15", "3"]
    with pytest.raises(DataError, match=r"box label 7 \(item 0\) is not in the training labels"):
        t.encode(pl.Series([[2, 7]]))


@pytest.mark.parametrize("labels", [[[2, 3], [12, None]], [[2.0, 3.0], [12.0, float("nan")]]])
def test_a_missing_box_label_is_refused_naming_it_and_its_item(labels):
    t = BoxLabels()
    with pytest.raises(DataError, match=r"missing box label \((None|nan)\) for box 1 of item 1.*drop that box"):
        t.setup(pl.Series(labels))
    t = BoxLabels(vocab=[2, 3, 12])
    t.setup(pl.Series([[2]]))
    with pytest.raises(DataError, match=r"missing box label \((None|nan)\) for box 1 of item 1"):
        t.encode(pl.Series(labels))


def test_flags_among_numbers_are_refused_as_mixed_types():
    with pytest.raises(DataError, match=r"mixed types \['bool', 'int'\].*one type"):
        BoxLabels().setup(pl.Series([[True, 1, 2]], dtype=pl.Object))
    t = BoxLabels()
    t.setup(pl.Series([[np.int64(2), 3]], dtype=pl.Object))
    assert t.vocab_ == ["#na#", 2, 3] and all(type(v) is int for v in t.vocab_[1:])


def test_mixed_box_label_types_are_refused_with_the_fix():
    t = BoxLabels()
    with pytest.raises(DataError, match=r"mixed types \['int', 'str'\].*one type"):
        t.setup(pl.Series([[2, "cat"]], dtype=pl.Object))


@register_arch("found81_box_head", overwrite=True)
class BoxHead(nn.Module):
    """Boxes and label scores from the mean colour: enough to export and load a detection learner."""

    def __init__(self, c: int):
        super().__init__()
        self.lin, self.c = nn.Linear(3, 4 + c), c

    def forward(self, x: torch.Tensor):
        out = self.lin(x.float().mean((2, 3)))[:, None].expand(-1, 20, -1)
        return out[..., :4].tanh(), out[..., 4:]


def test_a_learner_with_integer_box_labels_exports_them_as_numbers_and_loads_them(tmp_path):
    dls, _, _ = int_dls()
    learn = Learner(dls, BoxHead(len(dls.vocab)), loss_func=nn.L1Loss())
    with pytest.warns(Warning, match="getter"):  # the lambdas cannot be kept in the file
        path = learn.export(tmp_path / "boxes.pipekit")
    record = json.loads(zipfile.ZipFile(path).read("record.json"))
    assert ["#na#", *IDS] in [s.get("state", {}).get("vocab_") for s in _records(record)]
    loaded = load_learner(path)
    assert loaded.dls.vocab == ["#na#", *IDS] and all(type(v) is int for v in loaded.dls.vocab[1:])
    labels = next(t for t in loaded.dls.blocks[2].tfms_ if isinstance(t, BoxLabels))
    assert labels.encode(pl.Series([[26, 2, 12]])).tolist() == [[6, 1, 3]]
    assert labels.decode(np.array([6, 1, 0])) == [26, 2]


def _records(obj):
    """Every dict inside a JSON record."""
    if isinstance(obj, dict):
        yield obj
        for v in obj.values():
            yield from _records(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _records(v)


def test_show_batch_writes_integer_box_labels_at_their_boxes(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    dls, files, ann = int_dls()
    figs: list = []
    save = Figure.savefig
    monkeypatch.setattr(Figure, "savefig", lambda fig, *a, **k: (figs.append(fig), save(fig, *a, **k))[1])
    dls.valid.show_batch(max_n=4, path=tmp_path / "boxes.png")
    _, _, lab = dls.valid.one_batch()
    axes = [ax for ax in figs[0].axes if ax.images]
    assert len(axes) == 4
    for i, ax in enumerate(axes):  # each box's own category id, written as the number
        labels = ann[files[int(dls.valid.dataset.idxs[i])].name][1]
        want = [str(labels[j]) for j, k in enumerate(lab[i].tolist()) if k]
        assert [t.get_text() for t in ax.texts] == want and want


CAMVID = "0001TP_006750"


def camvid_64x48() -> tuple[np.ndarray, np.ndarray]:
    """A camvid_tiny mask and its image, already 64 wide and 48 high: Resize(64, "pad") only pads them."""
    path = D.path("camvid_tiny")
    mask = decode_image(path / "labels" / f"{CAMVID}_P.png", mode="mask")
    img = decode_image(path / "images" / f"{CAMVID}.png")
    mask = cv2.resize(mask, (64, 48), interpolation=cv2.INTER_NEAREST_EXACT)[:, :, None]
    return mask, cv2.resize(img, (64, 48), interpolation=cv2.INTER_AREA)


@pytest.mark.parametrize("tfm", [Resize(64, method="pad"), CropPad(64, pad_mode="reflection")])
def test_reflection_pad_mirrors_about_the_edge_pixel_as_np_pad_reflect(tfm):
    mask, img = camvid_64x48()
    want_mask = np.pad(mask, ((8, 8), (0, 0), (0, 0)), mode="reflect")
    assert np.array_equal(tfm.apply(mask, nearest=True), want_mask)
    assert np.array_equal(tfm.apply(img), np.pad(img, ((8, 8), (0, 0), (0, 0)), mode="reflect"))
    assert not np.array_equal(want_mask, np.pad(mask, ((8, 8), (0, 0), (0, 0)), mode="symmetric"))  # cba|abc differs


def test_pad_modes_name_their_border_in_the_cache_key():
    assert f"border={cv2.BORDER_REFLECT_101}" in Resize(64, method="pad").cache_key()
    assert f"border={cv2.BORDER_CONSTANT}" in Resize(64, method="pad", pad_mode="zeros").cache_key()
    assert f"border={cv2.BORDER_REPLICATE}" in CropPad(64, pad_mode="border").cache_key()


def test_camvid_batches_padded_by_resize_hold_the_reflection_of_their_rows():
    """Resize(64, "pad") of camvid's 96x128 images: 48 rows of picture and 8 padded rows each side, through the
    cache and the loader, are the picture's rows mirrored about the edge row, for masks and images."""
    path = D.path("camvid_tiny")
    codes = np.loadtxt(path / "codes.txt", dtype=str)
    fnames = sorted((path / "images").iterdir())[:12]
    dblock = DataBlock(blocks=(ImageBlock, MaskBlock(codes)),
                       get_y=lambda fn: path / "labels" / f"{fn.stem}_P{fn.suffix}",
                       splitter=IndexSplitter(list(range(4))), item_tfms=Resize(64, method="pad"))
    dls = dblock.dataloaders(fnames, bs=4, seed=0, device="cpu")
    x, m = next(iter(dls.valid))
    assert tuple(m.shape) == (4, 64, 64)
    m = m.numpy()
    assert np.array_equal(m, np.pad(m[:, 8:56], ((0, 0), (8, 8), (0, 0)), mode="reflect"))
    x = x.numpy()
    assert np.array_equal(x, np.pad(x[:, :, 8:56], ((0, 0), (0, 0), (8, 8), (0, 0)), mode="reflect"))


def test_a_learner_exported_with_text_box_labels_codes_integer_labels(tmp_path):
    files, ann = coco_int_labels(40)
    dblock = DataBlock(blocks=(ImageBlock, BBoxBlock, BBoxLblBlock), n_inp=1, item_tfms=Resize(64),
                       get_y=[lambda o: ann[o.name][0], lambda o: [str(v) for v in ann[o.name][1]]],
                       splitter=IndexSplitter(list(range(8))))
    dls = dblock.dataloaders(files, bs=8, seed=0, device="cpu")
    learn = Learner(dls, BoxHead(len(dls.vocab)), loss_func=nn.L1Loss())
    with pytest.warns(Warning, match="getter"):
        path = learn.export(tmp_path / "text_boxes.pipekit")
    labels = next(t for t in load_learner(path).dls.blocks[2].tfms_ if isinstance(t, BoxLabels))
    assert labels.vocab_ == ["#na#", *sorted(str(v) for v in IDS)]  # text, sorted as text
    codes = labels.encode(pl.Series([[2, 12], [np.int64(26)]])).tolist()
    assert codes == labels.encode(pl.Series([["2", "12"], ["26"]])).tolist()
    assert [labels.vocab_[c] for c in codes[0]] == ["2", "12"]
