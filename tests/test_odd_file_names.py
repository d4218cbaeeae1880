"""File names that are not valid UTF-8 (Latin-1 bytes, as old Windows zips leave them; Python holds them as lone
surrogates) or that Python does not decode as UTF-8 (a C locale outside UTF-8 mode): a column of items cannot hold
them, so each way in (a folder, test_dl, predict) refuses them naming the files and the fix; UTF-8 names load."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipekit.core.errors import DataError, PipekitError
from pipekit.data import RegexLabeller, UsingAttr, get_image_files, to_items
from pipekit.vision import ImageDataLoaders, Resize

MNIST = Path(os.environ.get("PIPEKIT_DATA", "/nonexistent")) / "mnist_tiny"
LATIN1 = b"caf\xe9.png"


def small_folder(root: Path, labels=("3", "7"), names=None) -> Path:
    """A copy of a few mnist_tiny images: train/<label>/ four each, valid/<label>/ two each; ``names`` renames the
    first training image of each label (a bytes name kept as bytes)."""
    for split, n in (("train", 4), ("valid", 2)):
        for i, label in enumerate(labels):
            src = sorted((MNIST / split / ("3", "7")[i % 2]).glob("*.png"))[:n]
            dest = root / split / label
            dest.mkdir(parents=True)
            for j, f in enumerate(src):
                name = (names[i] if names and split == "train" and j == 0 else None) or f.name
                target = os.path.join(os.fsencode(dest), name) if isinstance(name, bytes) else dest / name
                shutil.copyfile(f, target)
    return root


def test_latin1_name_in_folder_is_named_with_the_fix(tmp_path):
    root = small_folder(tmp_path / "imgs", names=[LATIN1, None])
    with pytest.raises(PipekitError) as info:
        ImageDataLoaders.from_folder(root, valid="valid", item_tfms=Resize(28), bs=4, seed=0)
    msg = str(info.value)
    cause = info.value if isinstance(info.value, DataError) else info.value.__cause__
    assert isinstance(cause, DataError)
    assert "1 file name is not valid UTF-8" in msg
    assert repr(os.path.join(os.fsencode(root / "train" / "3"), LATIN1)) in msg  # the file, as its bytes
    assert "convmv -f latin1 -t utf-8 -r --notest" in msg and "decode('latin-1')" in msg
    # the Python fix the message gives, run as given, renames the file, and the folder loads
    snippet = re.search(r"in UTF-8 mode: (import os, pathlib; \[.*\])", msg).group(1)
    exec(snippet, {})
    assert (root / "train" / "3" / "café.png").exists()
    dls = ImageDataLoaders.from_folder(root, valid="valid", item_tfms=Resize(28), bs=4, seed=0)
    assert len(dls.train.items) == 8 and "café.png" in {Path(p).name for p in dls.train.items}


def test_several_bad_names_first_few_shown_and_counted(tmp_path):
    files = [os.fsdecode(os.path.join(os.fsencode(tmp_path), b"x%d\xff.png" % i)) for i in range(7)]
    with pytest.raises(DataError, match=r"7 file names are not valid UTF-8.*x0\\xff\.png.*\.\.\. \(2 more\)"):
        to_items([Path(f) for f in files])


def test_utf8_non_ascii_names_load(tmp_path):
    root = small_folder(tmp_path / "imgs", labels=("café", "日本"), names=["ímg.png", "写真.png"])
    dls = ImageDataLoaders.from_folder(root, valid="valid", item_tfms=Resize(28), bs=4, seed=0)
    assert list(dls.vocab) == ["café", "日本"]
    assert {Path(p).name for p in dls.train.items} >= {"ímg.png", "写真.png"}


def test_test_dl_and_predict_refuse_a_latin1_name_with_the_fix(tmp_path):
    root = small_folder(tmp_path / "imgs")
    dls = ImageDataLoaders.from_folder(root, valid="valid", item_tfms=Resize(28), bs=4, seed=0)
    bad = os.fsdecode(os.path.join(os.fsencode(tmp_path), LATIN1))
    shutil.copyfile(get_image_files(root)[0], bad)
    for source in ([Path(bad)], Path(bad), bad, [bad]):  # what test_dl, predict and `pipekit predict` give
        with pytest.raises(DataError, match=r"not valid UTF-8.*caf\\xe9\.png.*convmv"):
            dls.test_dl(source)


def test_c_locale_outside_utf8_mode_names_the_setting(tmp_path):
    root = small_folder(tmp_path / "imgs", labels=("café", "日本"))
    code = ("from pipekit.vision import ImageDataLoaders, Resize\n"
            f"ImageDataLoaders.from_folder({str(root)!r}, valid='valid', item_tfms=Resize(28), bs=4, seed=0)\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "PYTHONIOENCODING"))}
    env.update(LANG="C", LC_ALL="C", PYTHONUTF8="0")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, errors="replace",
                         timeout=300)
    assert out.returncode != 0
    last = out.stderr.strip().splitlines()[-1]
    assert "file names Python could not decode as ascii" in last
    assert "PYTHONUTF8=1" in last and "LC_ALL=C.UTF-8" in last
    assert "convmv" not in last  # the names are UTF-8: only the setting is wrong


def test_from_lists_refuses_a_latin1_name_with_the_fix(tmp_path):
    root = small_folder(tmp_path / "imgs", names=[LATIN1, None])
    files = list(get_image_files(root / "train"))
    bad = os.path.join(os.fsencode(root / "train" / "3"), LATIN1)
    assert bad in {os.fsencode(f) for f in files}
    with pytest.raises(DataError) as info:
        ImageDataLoaders.from_lists(root, files, [f.parent.name for f in files], item_tfms=Resize(28), bs=4, seed=0)
    msg = str(info.value)
    assert "1 file name is not valid UTF-8" in msg and repr(bad) in msg
    assert "convmv -f latin1 -t utf-8 -r --notest" in msg and "decode('latin-1')" in msg


def test_getters_called_on_a_latin1_name_refuse_it_with_the_fix(tmp_path):
    root = small_folder(tmp_path / "imgs", names=[LATIN1, None])
    bad = os.path.join(os.fsencode(root / "train" / "3"), LATIN1)
    for getter in (UsingAttr(RegexLabeller(r"^(.+)\.png$"), "name"), RegexLabeller(r"/(\d)/[^/]+$")):
        for item in (os.fsdecode(bad), Path(os.fsdecode(bad))):
            with pytest.raises(DataError, match="1 file name is not valid UTF-8") as info:
                getter(item)
            assert repr(bad) in str(info.value) and "convmv" in str(info.value)
    # the same getters on a UTF-8 name
    good = root / "train" / "3" / "café.png"
    assert UsingAttr(RegexLabeller(r"^(.+)\.png$"), "name")(good) == "café"
    assert RegexLabeller(r"/(\d)/[^/]+$")(str(good)) == "3"
