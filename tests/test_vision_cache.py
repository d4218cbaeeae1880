"""Decoding, presizing and the on-disk cache, on real files."""
from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest

import pipekit.datasets as D
from pipekit.vision import (CropPad, ImageDecodeError, RandomResizedCrop, Resize, build_image_store, decode_image,
                            verify_images)


@pytest.fixture
def dog_files(tmp_path):
    src = sorted((D.path("dogscats") / "valid" / "dogs").glob("*.jpg"))[:10]
    out = tmp_path / "imgs"
    out.mkdir()
    for f in src:
        shutil.copy(f, out / f.name)
    return sorted(out.glob("*.jpg"))


def test_decode_gives_uint8_hwc_rgb_and_grey():
    f = D.path("mnist_tiny") / "train" / "3" / "7463.png"
    g = decode_image(f, mode="L")
    c = decode_image(f, mode="RGB")
    assert g.shape == (28, 28, 1) and c.shape == (28, 28, 3) and g.dtype == np.uint8
    assert np.array_equal(c[..., 0], g[..., 0])
    dog_file = sorted((D.path("dogscats") / "train" / "dogs").glob("*.jpg"))[0]
    dog = decode_image(dog_file)
    assert dog.shape[2] == 3 and dog.mean() > 20
    # RGB order, whichever OpenCV path decodes it: the reverse of OpenCV's own BGR
    assert np.array_equal(dog, cv2.imread(str(dog_file), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)[..., ::-1])


def test_cache_hit_then_invalidation_of_one_changed_file(dog_files, tmp_path):
    cache = tmp_path / "cache"
    first = build_image_store(dog_files, Resize(48), cache_dir=cache)
    assert first.n_decoded_ == 10 and first.path_ is not None
    pixels = first.gather(np.arange(10)).clone()
    again = build_image_store(dog_files, Resize(48), cache_dir=cache)
    assert again.n_decoded_ == 0 and again.n_reused_ == 10
    assert again.path_ == first.path_  # the single-pass cold build names its pack as a warm lookup does
    assert np.array_equal(again.gather(np.arange(10)).numpy(), pixels.numpy())
    # another presize setting is another cache entry
    assert build_image_store(dog_files, Resize(40), cache_dir=cache).n_decoded_ == 10
    # change one file: only that one is decoded again, and its pixels change
    shutil.copy(sorted((D.path("dogscats") / "valid" / "cats").glob("*.jpg"))[0], dog_files[3])
    changed = build_image_store(dog_files, Resize(48), cache_dir=cache)
    assert changed.n_decoded_ == 1 and changed.n_reused_ == 9
    now = changed.gather(np.arange(10)).numpy()
    assert not np.array_equal(now[3], pixels[3].numpy())
    assert np.array_equal(np.delete(now, 3, 0), np.delete(pixels.numpy(), 3, 0))


def test_cached_pixels_equal_direct_decode_and_in_memory(dog_files, tmp_path):
    store = build_image_store(dog_files, Resize(32, method="squish"), cache_dir=tmp_path / "c")
    mem = build_image_store(dog_files, Resize(32, method="squish"), cache_dir=False)
    direct = Resize(32, method="squish").apply(decode_image(dog_files[2]))
    assert np.array_equal(store.item(2).numpy(), direct)
    assert np.array_equal(mem.gather(np.arange(10)).numpy(), store.gather(np.arange(10)).numpy())
    assert store.orig_sizes[2].tolist() == list(decode_image(dog_files[2]).shape[:2])


def test_corrupt_empty_and_missing_files_are_named(dog_files, tmp_path):
    bad = dog_files[4]
    bad.write_bytes(b"this is not a jpeg" * 10)
    empty = dog_files[6]
    empty.write_bytes(b"")
    cut = dog_files[8]
    cut.write_bytes(cut.read_bytes()[:-2])  # the end marker is gone: it decodes, but the file is cut short
    assert decode_image(cut).shape[2] == 3
    assert verify_images(dog_files) == [bad, empty, cut]
    with pytest.raises(ImageDecodeError, match=bad.name) as e:
        build_image_store(dog_files, Resize(32), cache_dir=tmp_path / "c")
    assert "verify_images" in str(e.value)
    with pytest.raises(ImageDecodeError, match="empty"):
        decode_image(empty)
    with pytest.raises(ImageDecodeError, match="not found"):
        build_image_store([tmp_path / "nope.jpg"], Resize(32), cache_dir=False)
    with pytest.raises(ImageDecodeError, match="nope2.jpg: file not found"):
        build_image_store(dog_files[:2] + [tmp_path / "nope2.jpg"], Resize(32), cache_dir=tmp_path / "cold")
    assert not list((tmp_path / "c").rglob("*.tmp.npy"))  # a failed build leaves no half-written pack
    # a web address is no file: the message says so and how to pass the image instead (pipekit fetches nothing)
    with pytest.raises(ImageDecodeError, match=r"https://example.com/grizzly.jpg: is a web address, not a file;.*bytes"):
        decode_image("https://example.com/grizzly.jpg")


def test_different_sizes_without_item_transform_say_what_to_do(tmp_path):
    files = [D.path("mnist_tiny") / "train" / "3" / "7463.png", sorted((D.path("dogscats") / "train" / "cats").glob("*.jpg"))[0]]
    with pytest.raises(ValueError, match="Resize"):
        build_image_store(files, None, mode="L", cache_dir=tmp_path)


@pytest.mark.parametrize("tfm, shape", [(Resize(40), (40, 40)), (Resize((30, 50), method="pad"), (30, 50)),
                                        (Resize((30, 50), method="squish"), (30, 50)), (CropPad(24), (24, 24)),
                                        (CropPad((40, 20)), (40, 20)),
                                        # the whole image, squished to 36 plus fastai's validation margin of 8
                                        (RandomResizedCrop(36, min_scale=0.5), (44, 44))])
def test_item_transforms_sizes_and_point_geometry(tfm, shape):
    h, w = 27, 33
    img = np.zeros((h, w, 1), np.uint8)
    px, py = 14, 11
    img[py, px] = 255
    out = tfm.apply(img, nearest=False)
    assert out.shape == shape + (1,)
    m = tfm.point_matrix(h, w)
    qx, qy = m[:2, :2] @ np.array([px + 0.5, py + 0.5]) + m[:2, 2]
    ys, xs = np.mgrid[: shape[0], : shape[1]]
    wgt = out[..., 0].astype(float)
    assert abs((wgt * xs).sum() / wgt.sum() + 0.5 - qx) < 0.6 and abs((wgt * ys).sum() / wgt.sum() + 0.5 - qy) < 0.6


def test_item_transform_parameters_are_validated():
    with pytest.raises(ValueError, match="method"):
        Resize(10, method="stretch")
    with pytest.raises(ValueError, match="size"):
        Resize(0)
    with pytest.raises(ValueError, match="pad_mode"):
        CropPad(10, pad_mode="mirror")
    with pytest.raises(ValueError, match="min_scale"):
        RandomResizedCrop(10, min_scale=1.5)


class _Inverting(Resize):
    """A user's subclass of Resize whose code changes between two builds (``flip`` stands for an edit)."""

    flip = True

    def apply(self, img, nearest=False):
        out = super().apply(img, nearest)
        return 255 - out if type(self).flip else out


class _InvertingCrop(RandomResizedCrop):
    def apply(self, img, nearest=False):
        return 255 - super().apply(img, nearest)


def _mnist_dls(tfm, cache):
    from pipekit.data import CategoryBlock, DataBlock, RandomSplitter, get_image_files, parent_label
    from pipekit.vision import ImageBlock

    dblock = DataBlock(blocks=(ImageBlock(cls="L", cache_dir=cache), CategoryBlock), get_items=get_image_files, get_y=parent_label,
                       splitter=RandomSplitter(0.2, seed=42), item_tfms=[tfm])
    return dblock.dataloaders(D.path("mnist_tiny") / "train", bs=16, seed=0)


def test_a_users_subclass_of_an_item_transform_is_not_served_from_the_cache(tmp_path, monkeypatch):
    # its code can change between two runs under the same class name and settings: each build runs it, as fastai
    cache = tmp_path / "cache"
    first = float(np.asarray(_mnist_dls(_Inverting(28), cache).train_ds[0][0], np.float32).mean())
    monkeypatch.setattr(_Inverting, "flip", False)
    second = float(np.asarray(_mnist_dls(_Inverting(28), cache).train_ds[0][0], np.float32).mean())
    assert first > 200 and second < 60  # MNIST digits are dark on black: inverted, then as they are
    assert not list(cache.rglob("*.npy"))  # nothing of theirs was written
    # a subclass of RandomResizedCrop does not take the built-in's entry of the same settings
    plain = _mnist_dls(RandomResizedCrop(28), cache).valid.one_batch()[0].float().mean()
    sub = _mnist_dls(_InvertingCrop(28), cache).valid.one_batch()[0].float().mean()
    assert sub > 0.5 > plain


def test_build_image_store_presizes_a_users_subclass_in_memory(dog_files, tmp_path, monkeypatch):
    # even one named like the built-in: its pixels are its own code's, never the built-in's entry
    class Resize(_Inverting):
        pass

    cache = tmp_path / "cache"
    plain = build_image_store(dog_files, globals()["Resize"](32), cache_dir=cache)
    theirs = build_image_store(dog_files, Resize(32), cache_dir=cache)
    assert theirs.path_ is None and plain.path_ is not None
    np.testing.assert_array_equal(theirs.gather(np.arange(10)).numpy(), 255 - plain.gather(np.arange(10)).numpy())


def _resave_brighter(files) -> None:
    """Re-save each of ``files`` a little brighter: the same photo, other content."""
    from PIL import Image

    for f in files:
        a = np.asarray(Image.open(f)).astype(int)
        Image.fromarray(np.clip(a + 3, 0, 255).astype(np.uint8)).save(f, quality=85)


@pytest.fixture
def photos(tmp_path):
    """40 real photos (dogs and cats) copied to a folder of their own."""
    out = tmp_path / "photos"
    out.mkdir()
    for c in ("dogs", "cats"):
        for f in sorted((D.path("dogscats") / "train" / c).glob("*.jpg"))[:20]:
            shutil.copy(f, out / f"{c}_{f.name}")
    return sorted(out.glob("*.jpg"))


def test_repeated_edits_keep_one_copy_and_cache_info_counts_them(photos, tmp_path, monkeypatch, capsys):
    from pipekit.cli import main

    monkeypatch.setenv("PIPEKIT_CACHE", str(tmp_path / "cache"))
    entry = tmp_path / "cache" / "images"
    first = build_image_store(photos, Resize(32))
    rng = np.random.default_rng(0)
    for _ in range(4):  # 40% of the files re-saved each time: less than the three quarters that supersede a pack
        edited = rng.choice(len(photos), 16, replace=False)
        _resave_brighter([photos[i] for i in edited])
        store = build_image_store(photos, Resize(32))
        assert store.n_decoded_ == 16 and store.n_reused_ == 24
        # the old contents of the edited files are held by no file any more: their copy is not kept
        assert len(list(entry.rglob("*.npy"))) == 1
    pixels = store.gather(np.arange(40)).numpy()
    assert not np.array_equal(pixels, first.gather(np.arange(40)).numpy())
    # files deleted from the folder (40% of them): their images go with the old copy too
    for p in photos[::5] + photos[1::5]:
        p.unlink()
    kept = [p for p in photos if p.exists()]
    assert build_image_store(kept, Resize(32)).n_decoded_ == 0
    assert len(list(entry.rglob("*.npy"))) == 1
    # a sample of the data set (a third of it) keeps the whole set's copy: its next build decodes nothing
    build_image_store(kept[:8], Resize(32))
    assert len(list(entry.rglob("*.npy"))) == 2
    again = build_image_store(kept, Resize(32))
    assert again.n_decoded_ == 0
    assert np.array_equal(again.gather(np.arange(24)).numpy(), pixels[[i for i in range(40) if i % 5 > 1]])
    # `pipekit cache info` shows each setting's copies and their size
    assert main(["cache", "info", "--images"]) == 0
    out = capsys.readouterr().out.splitlines()
    size = sum(f.stat().st_size for f in entry.rglob("*") if f.suffix in (".npy", ".json") and f.name != "index.json")
    assert out[0].split()[3:5] == ["1", "setting"]
    assert out[1].split()[:4] == [f"{size / 1e6:.1f}", "MB", "2", "copies"] and "RGB, Resize[" in out[1]


def test_a_cache_disk_without_room_is_said_before_decoding_and_the_images_kept_in_memory(photos, tmp_path,
                                                                                          monkeypatch):
    from collections import namedtuple

    from pipekit.data.cache import CacheWriteWarning

    cache = tmp_path / "cache"
    build_image_store(photos, Resize(32), cache_dir=cache)
    _resave_brighter(photos[:3])
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 50_000, 50_000))
    with pytest.warns(CacheWriteWarning) as said:
        store = build_image_store(photos, Resize(32), cache_dir=cache)
    message = str(said[0].message)
    need = (40 * 32 * 32 * 3 + 128) / 1e6  # the raw pixels and the .npy header
    # told in enough digits to read differently (0.1 and 0.1 MB at one digit)
    assert f"{cache / 'images'}" in message and f"has 0.05 MB free but these presized images need {need:.2f} MB" in message
    assert "pipekit cache clear" in message and "PIPEKIT_CACHE=" in message
    # in memory, from the cache where it holds a file: only the edited files are decoded
    assert store.path_ is None and store.n_decoded_ == 3 and store.n_reused_ == 37
    assert len(list(cache.rglob("*.npy"))) == 1 and not list(cache.rglob("*.pk-tmp"))
    assert np.array_equal(store.gather(np.arange(40)).numpy(),
                          build_image_store(photos, Resize(32), cache_dir=False).gather(np.arange(40)).numpy())


def test_every_broken_file_is_named_in_one_error(photos, tmp_path):
    empty, cut, text = photos[3], photos[10], photos[31]
    empty.write_bytes(b"")
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    text.write_text("not an image")
    for where in (tmp_path / "cold", False):  # a cold cache and in memory
        with pytest.raises(ImageDecodeError) as e:
            build_image_store(photos, Resize(32), cache_dir=where)
        said = str(e.value)
        assert said.startswith("3 of the image files cannot be read or decoded")
        assert [line.split(":")[0].strip() for line in said.splitlines()[1:4]] == [str(empty), str(cut), str(text)]
        assert "verify_images" in said
    assert not list((tmp_path / "cold").rglob("*.npy")) and not list((tmp_path / "cold").rglob("*.pk-tmp"))
    # a warm cache (the other files already cached), and a broken first file
    good = [p for p in photos if p not in (empty, cut, text)]
    build_image_store(good, Resize(32), cache_dir=tmp_path / "warm")
    with pytest.raises(ImageDecodeError, match=r"^3 of the image files") as e:
        build_image_store([empty, *good, cut, text], Resize(32), cache_dir=tmp_path / "warm")
    assert all(str(p) in str(e.value) for p in (empty, cut, text))
    # many: the first 20 are named, the others counted
    for p in photos[:25]:
        p.write_bytes(b"")
    with pytest.raises(ImageDecodeError, match=r"^26 of the image files") as e:
        build_image_store(photos, Resize(32), cache_dir=False)
    assert str(photos[19]) in str(e.value) and str(photos[20]) not in str(e.value) and "... and 6 more" in str(e.value)
