"""An export names the getters it leaves out (and the loaded learner which one it lacks, and a process that has not
registered a user's getter how to register it), get_preds(with_loss=True) refuses a loader without targets, and
DataBlock.summary decodes only the images it walks and reads only the head of the others (mnist_tiny)."""
import re
import shutil
import warnings
from functools import partial
from pathlib import Path

import pandas as pd
import pytest

import pipekit
import pipekit.datasets as D
import pipekit.vision.cache as image_cache
from pipekit.core import DataError, PipekitWarning
from pipekit.data import CategoryBlock, DataBlock, GrandparentSplitter, RandomSplitter, get_image_files, parent_label
from pipekit.vision import ImageBlock, ImageDataLoaders, Normalize, Resize, vision_learner

path = D.path("mnist_tiny")


def get_x(r):
    return path / r["name"]


def get_y(r):
    return r["label"]


def lab(f):
    return Path(f).parent.name


@pytest.fixture(scope="module")
def df():
    labels = pd.read_csv(path / "labels.csv")
    return labels.groupby("label").head(40).reset_index(drop=True)  # both classes


@pytest.fixture(scope="module")
def files():
    return [f for split in ("train", "valid") for c in ("3", "7") for f in sorted(get_image_files(path / split / c))[:20]]


def export_warnings(learn, name):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        f = learn.export(name)
    return f, [str(x.message) for x in w if issubclass(x.category, PipekitWarning) and "getter" in str(x.message)]


def test_export_names_each_getter_left_out_and_its_role(df, tmp_path):
    dls = DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock), get_x=get_x, get_y=get_y,
                    splitter=RandomSplitter(seed=0)).dataloaders(df, bs=16)
    learn = vision_learner(dls, "resnet18", pretrained=False, path=tmp_path)
    f, said = export_warnings(learn, "g.pipekit")
    assert len(said) == 1
    msg = said[0]
    assert "'get_x', 'get_y' cannot be kept in the file" in msg
    assert "the input getter of block 0" in msg and "the label getter of block 1" in msg
    assert "pipekit.register(get_x, kind='getter')" in msg and "pipekit.register(get_y, kind='getter')" in msg
    loaded = pipekit.load_learner(f)
    with pytest.raises(DataError, match=r"without its getter 'get_x', which reads the input.*pipekit.register\(get_x"):
        loaded.predict(df.iloc[0])
    assert loaded.predict(path / df.name[0])[0] == learn.predict(df.iloc[0])[0]  # the input itself still predicts


def test_left_out_label_func_says_labels_cannot_be_read(files, tmp_path):
    dls = ImageDataLoaders.from_path_func(path, files, label_func=lab, valid_pct=0.2, seed=0, bs=16, img_cls="L")
    learn = vision_learner(dls, "resnet18", pretrained=False, path=tmp_path)
    f, said = export_warnings(learn, "m.pipekit")
    assert len(said) == 1 and "'lab'" in said[0] and "the label getter of block 1" in said[0]
    assert "labels of new items (test_dl(items, with_labels=True)) without 'lab'" in said[0]
    loaded = pipekit.load_learner(f)
    with pytest.raises(DataError, match="getter 'lab', which reads the labels") as e:
        loaded.dls.test_dl(files[:4], with_labels=True)
    assert "give the input itself" not in str(e.value) and "pipekit.register(lab, kind='getter')" in str(e.value)
    assert loaded.get_preds(dl=loaded.dls.test_dl(files[:4]))[0].shape == (4, 2)  # without labels: as before


def test_lambda_advice_is_code_that_keeps_them(df, tmp_path):
    block = partial(DataBlock, blocks=(ImageBlock(cls="L"), CategoryBlock), splitter=RandomSplitter(seed=0))
    dls = block(get_x=lambda r: path / r["name"], get_y=lambda r: r["label"]).dataloaders(df, bs=16)
    _, said = export_warnings(vision_learner(dls, "resnet18", pretrained=False, path=tmp_path), "l.pipekit")
    assert len(said) == 1 and "'<lambda>', '<lambda>'" in said[0]
    advice = re.findall(r"(get_[xy] = pipekit\.register\(lambda r: \.\.\., kind='getter', name='myproject\.get_[xy]'\))",
                        said[0])
    assert len(advice) == 2
    for line in advice:
        compile(line, "advice", "exec")
    # as the advice says: two lambdas, each registered under a name of its own, are kept
    gx = pipekit.register(lambda r: path / r["name"], kind="getter", name="found80.lambda_get_x", replace=True)
    gy = pipekit.register(lambda r: r["label"], kind="getter", name="found80.lambda_get_y", replace=True)
    learn = vision_learner(block(get_x=gx, get_y=gy).dataloaders(df, bs=16), "resnet18", pretrained=False,
                           path=tmp_path)
    f, said = export_warnings(learn, "r.pipekit")
    assert said == []
    loaded = pipekit.load_learner(f)
    assert loaded.predict(df.iloc[3])[0] == learn.predict(df.iloc[3])[0]
    assert loaded.get_preds(dl=loaded.dls.test_dl(df.head(5), with_labels=True))[1].shape == (5,)


def test_get_preds_with_loss_refuses_a_loader_without_targets(files, tmp_path):
    dls = ImageDataLoaders.from_folder(path, img_cls="L", bs=16, seed=0)
    learn = vision_learner(dls, "resnet18", pretrained=False, path=tmp_path)
    with pytest.raises(DataError, match=r"with_loss=True.*no targets.*with_labels=True"):
        learn.get_preds(dl=dls.test_dl(files[:6]), with_loss=True)
    _, targs, losses = learn.get_preds(dl=dls.test_dl(files[:6], with_labels=True), with_loss=True)
    assert targs.shape == (6,) and losses.shape == (6,)
    assert learn.get_preds(dl=dls.test_dl(files[:6]))[1] is None  # without with_loss: predictions only, as before


def test_summary_decodes_only_what_it_walks(tmp_path, monkeypatch):
    monkeypatch.setenv("PIPEKIT_CACHE", str(tmp_path / "cache"))
    decoded = []
    real = image_cache._decode_one
    monkeypatch.setattr(image_cache, "_decode_one", lambda p, *a, **k: decoded.append(p) or real(p, *a, **k))
    dblock = DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock), get_y=parent_label,
                       get_items=partial(get_image_files, folders=["train", "valid"]), splitter=GrandparentSplitter(),
                       item_tfms=Resize(20), batch_tfms=Normalize())
    text = dblock.summary(path, bs=4, show=False)
    assert not (tmp_path / "cache" / "images").exists()  # no presize cache written
    # the batch's 4 images and the 256 Normalize() learns from (of 709 training images, 1408 in all)
    assert len(decoded) <= 4 + 256 + 1 and len(set(decoded)) == len(decoded)
    stored = next(line for line in text.splitlines() if line.startswith("  stored as ImageStore"))
    assert "n=1408, size=(20, 20), channels=1" in stored
    assert f"presized by Resize(size=20) in the image cache under {tmp_path / 'cache' / 'images'}" in stored
    assert "Collating a batch of 4" in text and "Batch transform Normalize" in text
    assert "(Tensor(4, 1, 20, 20) float32, Tensor(4,) int64)" in text
    dls = dblock.dataloaders(path, bs=4)  # dataloaders() still presizes every image into the cache
    assert len(decoded) > 1408 and (tmp_path / "cache" / "images").exists() and len(dls.train_ds) == 709


# ------------------------------------------------- summary: what dataloaders() refuses, checked over every item
def _class_folders(tmp_path, n=6):
    """mnist_tiny's first ``n`` training images of each class, copied to ``tmp_path/{3,7}``."""
    for c in ("3", "7"):
        (tmp_path / c).mkdir(parents=True)
        for f in sorted(get_image_files(path / "train" / c))[:n]:
            (tmp_path / c / f.name).write_bytes(f.read_bytes())
    return tmp_path


def _summary_then_dataloaders(dblock, source, cache):
    """The errors ``summary`` and ``dataloaders`` raise for ``source`` (each None when it builds); ``summary``
    writes nothing under the image cache ``cache``."""
    errors = []
    for build in (lambda: dblock.summary(source, bs=4, show=False), lambda: dblock.dataloaders(source, bs=4)):
        try:
            build()
            errors.append(None)
        except Exception as e:  # noqa: BLE001 - the two are compared
            errors.append(e)
        if len(errors) == 1:
            assert not (cache / "images").exists()
    return errors


def test_summary_refuses_images_of_different_sizes_as_dataloaders_does(tmp_path, monkeypatch):
    from PIL import Image

    monkeypatch.setenv("PIPEKIT_CACHE", str(tmp_path / "cache"))
    src = _class_folders(tmp_path / "data")
    first = sorted(get_image_files(path / "train" / "7"))[0]
    Image.open(first).resize((40, 30)).save(src / "7" / "zz_big.png")  # sorts last: a 4-item walk never reads it
    dblock = DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock), get_items=get_image_files, get_y=parent_label,
                       splitter=RandomSplitter(seed=0))
    summary_error, loaders_error = _summary_then_dataloaders(dblock, src, tmp_path / "cache")
    assert summary_error is not None and loaders_error is not None
    for e in (summary_error, loaders_error):
        assert re.search(r"zz_big\.png: image is 40x30 but .* is 28x28; images of different sizes need an item "
                         r"transform such as Resize\(224\)", str(e))
    shutil.rmtree(tmp_path / "cache")
    dblock = DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock), get_items=get_image_files, get_y=parent_label,
                       splitter=RandomSplitter(seed=0), item_tfms=Resize(20))
    text = dblock.summary(src, bs=4, show=False)  # a presize transform makes them one size
    assert "  decode + Resize(size=20): ImageStore(n=13, size=(20, 20), channels=1)" in text.splitlines()
    assert not (tmp_path / "cache" / "images").exists()
    assert "ImagesAsRead" not in text


def test_summary_refuses_an_unreadable_file_as_dataloaders_does(tmp_path, monkeypatch):
    monkeypatch.setenv("PIPEKIT_CACHE", str(tmp_path / "cache"))
    src = _class_folders(tmp_path / "data")
    (src / "7" / "zz_broken.png").write_bytes(bytes(range(256)) * 2)  # no image format's bytes
    dblock = DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock), get_items=get_image_files, get_y=parent_label,
                       splitter=RandomSplitter(seed=0), item_tfms=Resize(28))
    summary_error, loaders_error = _summary_then_dataloaders(dblock, src, tmp_path / "cache")
    assert summary_error is not None and loaders_error is not None
    for e in (summary_error, loaders_error):
        assert "ImageDecodeError" in str(e) and "zz_broken.png: not a readable image" in str(e)


def test_summary_checks_every_mask_against_the_codes(tmp_path, monkeypatch):
    import numpy as np

    from pipekit.data import PathFormat
    from pipekit.vision import MaskBlock

    monkeypatch.setenv("PIPEKIT_CACHE", str(tmp_path / "cache"))
    camvid = D.path("camvid_tiny")
    codes = np.loadtxt(camvid / "codes.txt", dtype=str)

    def dblock(n):
        return DataBlock(blocks=(ImageBlock, MaskBlock(codes[:n])), get_items=get_image_files,
                         get_y=PathFormat(camvid / "labels", "{stem}_P{suffix}"), splitter=RandomSplitter(seed=0),
                         item_tfms=Resize(32))

    summary_error, loaders_error = _summary_then_dataloaders(dblock(5), camvid / "images", tmp_path / "cache")
    assert summary_error is not None and loaders_error is not None
    for e in (summary_error, loaders_error):
        assert re.search(r"_P\.png: mask value \d+ but only 5 codes were given \(\d+ mask\(s\) affected\)", str(e))
    shutil.rmtree(tmp_path / "cache")
    text = dblock(len(codes)).summary(camvid / "images", bs=4, show=False)  # every code given: it walks
    assert "Collating a batch of 4" in text and "(Tensor(4, 3, 32, 32) float32, Tensor(4, 32, 32) int64)" in text
    assert not (tmp_path / "cache" / "images").exists()


# ------------------------------------------------- export: getters that are objects, from_name_func's label_func
def test_object_getter_advice_registers_the_object(tmp_path):
    def parent_of(f, k=1):
        return Path(f).parents[k - 1].name

    get_y = partial(parent_of, k=1)
    block = partial(DataBlock, blocks=(ImageBlock(cls="L"), CategoryBlock), get_items=get_image_files,
                    splitter=RandomSplitter(seed=0), item_tfms=Resize(28))
    dls = block(get_y=get_y).dataloaders(path / "train", bs=16)
    _, said = export_warnings(vision_learner(dls, "resnet18", pretrained=False, path=tmp_path), "p.pipekit")
    assert len(said) == 1 and "'<partial object>' cannot be kept" in said[0]
    assert "register(partial" not in said[0]
    advice = re.search(r"(pipekit\.register\(g, kind='getter', name='myproject\.get_y'\)), g being the partial "
                       r"object given as get_y", said[0])
    assert advice is not None
    compile(advice[1], "advice", "exec")
    pipekit.register(get_y, kind="getter", name="found80.partial_get_y", replace=True)  # as the advice says
    learn = vision_learner(dls, "resnet18", pretrained=False, path=tmp_path)
    f, said = export_warnings(learn, "p2.pipekit")
    assert said == []
    files = sorted(get_image_files(path / "train"))[::40]
    targs = pipekit.load_learner(f).get_preds(dl=learn.dls.test_dl(files, with_labels=True))[1]
    assert [learn.dls.vocab[int(t)] for t in targs] == [Path(p).parent.name for p in files]


def odd_stem(name):
    return int(name.split(".")[0]) % 2 == 1


def test_from_name_func_label_func_is_kept_once_registered(tmp_path):
    names = sorted(get_image_files(path / "train"))[::20]
    dls = ImageDataLoaders.from_name_func(path, names, odd_stem, item_tfms=Resize(28), bs=8, seed=0, img_cls="L")
    learn = vision_learner(dls, "resnet18", pretrained=False, path=tmp_path)
    _, said = export_warnings(learn, "n.pipekit")
    assert len(said) == 1 and "pipekit.register(odd_stem, kind='getter')" in said[0]
    pipekit.register(odd_stem, kind="getter", name="found80.odd_stem", replace=True)  # as the advice says
    f, said = export_warnings(learn, "n2.pipekit")
    assert said == []
    loaded = pipekit.load_learner(f)
    targs = loaded.get_preds(dl=loaded.dls.test_dl(names, with_labels=True))[1]
    assert [loaded.dls.vocab[int(t)] for t in targs] == [odd_stem(f.name) for f in names]
    assert sorted(set(loaded.dls.vocab)) == [False, True]


def test_a_single_output_binary_model_loads_its_own_export(tmp_path):
    """A one-output net trained with BCEWithLogitsLossFlat on two classes (read as one 0/1 label) exports a file
    load_learner opens, predicting as before (adult), and an image model's too (mnist_tiny)."""
    from pipekit.learn import Learner, load_learner, simple_cnn
    from pipekit.learn.losses import BCEWithLogitsLossFlat
    from pipekit.tabular import TabularDataLoaders, tabular_learner

    rows = pd.read_csv(D.path("adult_sample") / "adult.csv").head(600)
    tab = TabularDataLoaders.from_df(rows, y_names="salary", cat_names=["workclass", "sex"],
                                     cont_names=["age", "hours-per-week"], bs=128, device="cpu", seed=0)
    learn = tabular_learner(tab, layers=[8], n_out=1, loss_func=BCEWithLogitsLossFlat())
    learn.fit(1, 1e-2)
    learn.export(tmp_path / "tab.pipekit")
    loaded = load_learner(tmp_path / "tab.pipekit")
    before, after = learn.predict(rows.iloc[3]), loaded.predict(rows.iloc[3])
    assert after[2].shape == (1,) and float(after[2][0]) == pytest.approx(float(before[2][0]), abs=1e-6)

    files = sorted(get_image_files(path / "train"))[::20]
    images = ImageDataLoaders.from_path_func(path, files, parent_label, item_tfms=Resize(16), bs=16, seed=0,
                                             device="cpu")
    net = Learner(images, simple_cnn(n_in=3, n_out=1, channels=(4, 8)), loss_func=BCEWithLogitsLossFlat())
    net.export(tmp_path / "img.pipekit")
    assert load_learner(tmp_path / "img.pipekit").predict(files[0])[2].shape == (1,)


# ------------------------------------------------- summary: headers from each file's head, masks on the pool
def _noise_jpeg(f, hw, rng, **kw):
    import numpy as np
    from PIL import Image

    Image.fromarray(rng.integers(0, 255, (*hw, 3), dtype=np.uint8)).save(f, quality=95, **kw)


def test_summary_store_reads_only_the_head_of_each_file(tmp_path, monkeypatch):
    import numpy as np

    rng = np.random.default_rng(0)
    files = []
    for i in range(40):  # more than one thread task's worth, each file over the head's 64 KiB
        files.append(tmp_path / f"{i:02d}.jpg")
        _noise_jpeg(files[-1], (300 + i, 360), rng)
    late = tmp_path / "late.jpg"  # its frame marker lies past the head: the whole file is read for it
    _noise_jpeg(late, (50, 70), rng, comment=b"x" * 65000, icc_profile=b"y" * 70000)
    files.append(late)
    assert all(f.stat().st_size > image_cache.HEAD_BYTES for f in files)
    assert late.read_bytes().find(b"\xff\xc0") > image_cache.HEAD_BYTES
    whole = []
    real = image_cache._read_bytes
    monkeypatch.setattr(image_cache, "_read_bytes", lambda p: whole.append(Path(p).name) or real(p))
    store = image_cache.ImagesAsRead([str(f) for f in files], Resize(16), mode="RGB", cache=None, num_workers=2)
    assert np.asarray(store.orig_sizes).tolist() == [[300 + i, 360] for i in range(40)] + [[50, 70]]
    assert sorted(whole) == ["00.jpg", "late.jpg"]  # the first image, decoded for the store's size, and late.jpg
    assert tuple(store.gather(np.array([40])).shape) == (1, 16, 16, 3)


def test_summary_store_decodes_masks_for_their_largest_values_on_its_threads(tmp_path, monkeypatch):
    import threading

    import numpy as np
    from PIL import Image

    masks = []
    for i in range(40):
        masks.append(str(tmp_path / f"{i:02d}_P.png"))
        Image.fromarray(np.full((12, 10), i % 7, dtype=np.uint8)).save(masks[-1])
    threads = []
    real = image_cache._decode_source
    monkeypatch.setattr(image_cache, "_decode_source",
                        lambda p, *a, **k: threads.append(threading.current_thread().name) or real(p, *a, **k))
    store = image_cache.ImagesAsRead(masks, Resize(8), mode="mask", cache=None, num_workers=2)
    threads.clear()
    assert store.value_max.tolist() == [i % 7 for i in range(40)]
    assert len(threads) == 40 and all(t.startswith("pipekit-headers") for t in threads)


# ------------------------------------------------- load: a user's getter the loading process has not registered
def is_cat_found80(name):
    return int(name.split(".")[0]) % 2 == 1


def test_load_names_a_users_getter_left_unregistered_and_the_fix(tmp_path, monkeypatch):
    import pipekit.core.registry as registry

    names = sorted(get_image_files(path / "train"))[::40]
    for name in ("__main__.is_cat_found80", "myproject.labels.is_cat_found80"):
        pipekit.register(is_cat_found80, kind="getter", name=name, replace=True)
        dls = ImageDataLoaders.from_name_func(path, names, is_cat_found80, item_tfms=Resize(28), bs=8, seed=0,
                                              img_cls="L")
        f = vision_learner(dls, "resnet18", pretrained=False, path=tmp_path).export(f"{name}.pipekit")
        assert pipekit.load_learner(f).dls.vocab == dls.vocab  # registered here: it loads
        with monkeypatch.context() as m:  # a process that has not registered it
            m.delitem(registry._ENTRIES, name)
            m.delitem(registry._NAMES, id(is_cat_found80))
            with pytest.raises(pipekit.core.ExportError) as e:
                pipekit.load_learner(f)
        said = str(e.value)
        assert f"names '{name}', a getter or function that the process which exported the file registered and " \
               "this process has not" in said
        assert "damaged" not in said and "newer pipekit" not in said
        assert "pipekit.register(is_cat_found80, kind='getter')" in said
        if name.startswith("__main__"):
            assert "define is_cat_found80 in the script or notebook that loads it" in said
            assert f"pipekit.register(is_cat_found80, kind='getter', name='{name}')" in said
        else:
            assert "import is_cat_found80 (from myproject.labels)" in said
        registry._NAMES.pop(id(is_cat_found80), None)
        registry._ENTRIES.pop(name, None)


@pytest.mark.parametrize("name", ["pipekit.data.no_such_getter", "os.system; rm -rf", "json"])
def test_a_name_no_user_registers_keeps_the_damaged_file_wording(name):
    import sys

    from pipekit.core import from_data

    before = set(sys.modules)
    with pytest.raises(pipekit.core.ExportError, match="the file is damaged, was not written by pipekit"):
        from_data({"__ref__": name}, _kinds=("getter", "function"))
    assert set(sys.modules) == before  # nothing the record names is imported
