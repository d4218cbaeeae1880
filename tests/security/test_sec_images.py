"""Image folders: what the EXIF orientation tag does (nothing), and warnings for one class or an empty class folder."""
import shutil
import warnings

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

import pipekit.datasets as D
from pipekit.data import CategoryBlock, DataBlock, GrandparentSplitter, get_image_files, parent_label
from pipekit.vision import build_image_store, decode_bytes, decode_image, verify_images

ORIENTATION = 0x0112  # the EXIF tag; 6 means "rotate 90 degrees clockwise to display"


@pytest.fixture
def rotated_jpeg(tmp_path):
    """A real photo cropped to 200 wide x 120 high, saved with EXIF orientation 6 (displayed 120 x 200)."""
    photo = Image.open(D.path("dogscats") / "train" / "cats" / "cat.0.jpg").convert("RGB").crop((0, 40, 200, 160))
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    out = tmp_path / "phone.jpg"
    photo.save(out, quality=95, exif=exif)
    return out


def test_exif_orientation_is_ignored_pixels_come_as_stored(rotated_jpeg):
    with Image.open(rotated_jpeg) as im:
        assert im.getexif()[ORIENTATION] == 6 and im.size == (200, 120)
        stored = np.asarray(im.convert("RGB"))
        displayed = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    assert displayed.shape == (200, 120, 3)
    img = decode_image(rotated_jpeg)
    assert img.shape == (120, 200, 3)  # the stored frame, not the displayed one
    assert np.abs(img.astype(int) - stored.astype(int)).mean() < 2  # two JPEG decoders, the same picture
    data = rotated_jpeg.read_bytes()
    assert decode_bytes(data, mode="L").shape == (120, 200, 1)
    # OpenCV on its own would have turned it: the flag in decode_bytes is what keeps the stored frame
    assert cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR).shape == (200, 120, 3)
    store = build_image_store([rotated_jpeg], cache_dir=False)
    assert np.array_equal(np.asarray(store.pixels[0]).reshape(img.shape), img)
    assert verify_images([rotated_jpeg]) == []


def _copy(root, layout):
    """layout: {"train/3": n, ...} -> that many real mnist_tiny digits of the folder's class in each folder."""
    src = D.path("mnist_tiny") / "train"
    for folder, n in layout.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        digit = folder.rsplit("/", 1)[-1]
        for f in sorted((src / digit).iterdir())[:n]:
            shutil.copy(f, root / folder / f.name)
    return root


def _block():
    return DataBlock(blocks=(CategoryBlock,), get_items=get_image_files, get_x=parent_label,
                     splitter=GrandparentSplitter())


def _label_warnings(record):
    return [str(w.message) for w in record if str(w.message).startswith("parent_label")]


def test_a_single_class_warns_once_per_build_naming_the_folders(tmp_path):
    root = _copy(tmp_path / "digits", {"train/3": 6, "valid/3": 3})
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        _block().datasets(root)
        _block().summary(root, show=False)
    msgs = _label_warnings(rec)
    assert len(msgs) == 2  # one per build
    assert "all 9 items have the label '3'" in msgs[0] and f"{root}/train/3" in msgs[0] and f"{root}/valid/3" in msgs[0]


def test_an_empty_class_folder_is_named(tmp_path):
    root = _copy(tmp_path / "digits", {"train/3": 6, "train/7": 6, "valid/3": 3})
    (root / "valid" / "7").mkdir()
    (root / "train" / "8").mkdir()
    (root / "train" / "8" / "notes.txt").write_text("no images here")
    (root / "train" / ".ipynb_checkpoints").mkdir()  # hidden: not a class
    with pytest.warns(UserWarning, match="parent_label") as rec:
        ds = _block().datasets(root)
    msgs = _label_warnings(rec)
    assert len(msgs) == 1 and len(ds.items) == 15
    assert f"2 class folder(s) hold no image, so their class is missing: ['{root}/train/8', '{root}/valid/7']" \
        in msgs[0]


def test_the_usual_layouts_stay_quiet(tmp_path):
    root = _copy(tmp_path / "digits", {"train/3": 6, "train/7": 6, "valid/3": 3, "valid/7": 3})
    (root / "test").mkdir()
    shutil.copy(next((D.path("mnist_tiny") / "test").iterdir()), root / "test")
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        ds = _block().datasets(root)
        _block().datasets(D.path("mnist_tiny"))
        # a subset chosen by get_items: the folders it leaves out hold images, so they are not empty
        DataBlock(blocks=(CategoryBlock,), get_items=lambda p: get_image_files(p)[:15], get_x=parent_label,
                  splitter=GrandparentSplitter()).datasets(root)
    assert _label_warnings(rec) == [] and len(ds.items) == 18
    assert parent_label(root / "train" / "3" / "x.png") == "3"  # one item on its own is not checked
