"""A mask value beyond ``codes`` is refused whatever the item transform: each mask's largest value is read from the
decoded file, before a resize or crop that may drop it, and kept with the cached pack so a warm build checks it too."""
from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import pipekit.datasets as D
from pipekit.core.errors import DataError, PipelineStepError
from pipekit.data import DataBlock, RandomSplitter, get_image_files
from pipekit.data.cache import _record, atomic_write_json, read_json
from pipekit.data.transform import Transform
from pipekit.vision import ImageBlock, MaskBlock, RandomResizedCrop, Resize, build_image_store, image_paths_with
from pipekit.vision.decode import decode_bytes

pytestmark = pytest.mark.data

N_FILES = 12
BAD = 200  # a value beyond camvid's 32 codes
TFMS = {"none": None, "resize": Resize(64), "rrc": RandomResizedCrop(48)}


def _codes() -> list[str]:
    return list(np.loadtxt(D.path("camvid_tiny") / "codes.txt", dtype=str))


def _decode_mask(path: Path) -> np.ndarray:
    return decode_bytes(path.read_bytes(), mode="mask", name=str(path))


def _dropped_row(shape: tuple[int, int]) -> int:
    """A row of a (height, width) mask that none of the item transforms of TFMS keeps: a patch there is not in their
    output (Resize(64) crops and shrinks it, RandomResizedCrop squishes it)."""
    rows = np.repeat(np.arange(shape[0], dtype=np.uint8)[:, None], shape[1], axis=1)[..., None]
    kept = set()
    for tfm in TFMS.values():
        if tfm is not None:
            kept |= set(np.unique(tfm.apply(rows, nearest=True)).tolist())
    return next(r for r in range(shape[0] // 3, shape[0]) if r not in kept)


def _copy_camvid(dest: Path, damage: bool) -> tuple[Path, Path | None]:
    """N_FILES camvid_tiny images and masks copied to ``dest``; with ``damage``, a patch of BAD painted into the first
    mask where a resize or crop drops it. Returns the folder and the damaged mask's file."""
    src = D.path("camvid_tiny")
    (dest / "images").mkdir(parents=True)
    (dest / "labels").mkdir()
    for f in sorted((src / "images").glob("*.png"))[:N_FILES]:
        shutil.copy(f, dest / "images")
        shutil.copy(src / "labels" / f"{f.stem}_P.png", dest / "labels")
    if not damage:
        return dest, None
    bad = sorted((dest / "labels").glob("*.png"))[0]
    mask = np.array(Image.open(bad))
    mask[_dropped_row(mask.shape[:2]), 40:44] = BAD
    Image.fromarray(mask).save(bad)
    return dest, bad


def _mask_files(path: Path) -> list[Path]:
    return sorted((path / "labels").glob("*.png"))


def _dls(path: Path, tfm, cache_dir, user=()):
    item_tfms = [*user, *([tfm] if tfm is not None else [])]
    return DataBlock(blocks=(ImageBlock(cache_dir=cache_dir), MaskBlock(_codes(), cache_dir=cache_dir)),
                     get_items=lambda p: sorted(get_image_files(p / "images")),
                     get_y=image_paths_with(path / "labels", lambda p: f"{p.stem}_P{p.suffix}"),
                     splitter=RandomSplitter(0.25, seed=0), item_tfms=item_tfms).dataloaders(
        path, bs=4, seed=0, device="cpu")


def _refused(path: Path, bad: Path, tfm, cache_dir, user=()) -> None:
    with pytest.raises(PipelineStepError) as e:  # the DataError, named with the step of the block that raised it
        _dls(path, tfm, cache_dir, user)
    assert isinstance(e.value.__cause__, DataError)
    msg = str(e.value.__cause__)
    assert f"{bad}: mask value {BAD} but only 32 codes were given" in msg
    if not user:
        assert "(1 mask(s) affected)" in msg
    assert "give all class names in codes" in msg


@pytest.mark.parametrize("name", ["resize", "rrc"])
def test_the_patch_is_lost_by_the_item_transform(tmp_path, name):
    # what makes the data worth testing: the stored (transformed) pixels no longer hold the bad value
    path, bad = _copy_camvid(tmp_path / "data", damage=True)
    raw = _decode_mask(bad)
    assert raw.max() == BAD
    assert TFMS[name].apply(raw, nearest=True).max() < 32


@pytest.mark.parametrize("name", list(TFMS))
def test_out_of_range_mask_refused_in_memory(tmp_path, name):
    path, bad = _copy_camvid(tmp_path / "data", damage=True)
    _refused(path, bad, TFMS[name], cache_dir=False)


@pytest.mark.parametrize("name", list(TFMS))
def test_out_of_range_mask_refused_cold_and_warm(tmp_path, name):
    path, bad = _copy_camvid(tmp_path / "data", damage=True)
    cache = tmp_path / "cache"
    _refused(path, bad, TFMS[name], cache_dir=cache)  # cold: decoded and written to the cache
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the pack is served as it is, never rebuilt
        _refused(path, bad, TFMS[name], cache_dir=cache)
        # the warm build read every mask from the cache: the value kept with the pack is the decoded one
        store = build_image_store(_mask_files(path), TFMS[name], mode="mask", cache_dir=cache)
    assert store.n_reused_ == N_FILES and store.n_decoded_ == 0 and store.path_ is not None
    assert store.value_max is not None and int(store.value_max[0]) == BAD
    assert store.value_max.tolist() == [int(_decode_mask(f).max()) for f in _mask_files(path)]
    assert store.subset(np.array([2, 0])).value_max.tolist() == [store.value_max[2], BAD]


def test_out_of_range_mask_refused_through_user_item_transforms(tmp_path):
    # a user's item transform makes the images each time they are fetched: each mask is checked before the Resize
    class Same(Transform):
        def encodes(self, x):
            return x

    path, bad = _copy_camvid(tmp_path / "data", damage=True)
    _refused(path, bad, Resize(64), cache_dir=False, user=[Same()])


def test_pack_without_mask_values_is_decoded_again(tmp_path):
    # a mask pack whose meta has no value_max (as an older pipekit wrote them) serves no entry: its masks are decoded
    # again, so the check reads the values as decoded, never the resized pixels
    path, bad = _copy_camvid(tmp_path / "data", damage=True)
    cache, files = tmp_path / "cache", _mask_files(path)
    first = build_image_store(files, Resize(64), mode="mask", cache_dir=cache)
    assert first.n_decoded_ == N_FILES and first.pixels.max() < 32
    pack = first.path_
    meta = read_json(pack.with_suffix(".json"))
    record = meta.pop("checksum")
    assert meta.pop("value_max")[0] == BAD
    atomic_write_json(pack.with_suffix(".json"), {**meta, "checksum": _record(
        record["header_len"], record["record_len"], record["size"], record["digest"], pack, meta)})
    assert "value_max" not in read_json(pack.with_suffix(".json"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a valid pack of an older format: rebuilt without a warning
        again = build_image_store(files, Resize(64), mode="mask", cache_dir=cache)
    assert again.n_decoded_ == N_FILES and again.n_reused_ == 0
    assert again.value_max is not None and int(again.value_max[0]) == BAD
    assert np.array_equal(np.asarray(again.pixels), np.asarray(first.pixels))
    assert "value_max" in read_json(again.path_.with_suffix(".json"))
    _refused(path, bad, Resize(64), cache_dir=cache)


@pytest.mark.parametrize("name", list(TFMS))
def test_genuine_masks_build_and_batch_as_stored(tmp_path, name):
    path, _ = _copy_camvid(tmp_path / "data", damage=False)
    tfm, cache = TFMS[name], tmp_path / "cache"
    runs = [_dls(path, tfm, c) for c in (False, cache, cache)]  # in memory, cold, warm
    batches = [[(x.clone(), y.clone()) for x, y in [*dls.train, *dls.valid]] for dls in runs]
    for other in batches[1:]:
        assert len(other) == len(batches[0])
        for (x0, y0), (x1, y1) in zip(batches[0], other):
            assert torch.equal(x0, x1) and torch.equal(y0, y1)
    assert max(int(y.max()) for _, y in batches[0]) < 32
    # the stored masks are the decoded files through the item transform, as they were before the values were kept
    files = _mask_files(path)
    store = build_image_store(files, tfm, mode="mask", cache_dir=cache)
    assert store.n_reused_ == N_FILES
    for i, f in enumerate(files):
        raw = _decode_mask(f)
        want = raw if tfm is None else tfm.apply(raw, nearest=True)
        assert np.array_equal(np.asarray(store.pixels[i]), want.reshape(store.pixels.shape[1:]))
        assert int(store.value_max[i]) == int(raw.max())
