"""The paths that change on a GPU, on real data: batches gathered on the host and augmented on the device by the
torch executor, masks resampled there, mixed-precision training (fp16 with a gradient scaler, bf16 without),
LSTMs with weight dropout, tables and ratings, and a model trained on the GPU loaded in a fresh CPU process.

They run where CUDA is available and are skipped elsewhere. ``PIPEKIT_TEST_DEVICE=cpu`` runs them on the CPU
instead (bf16 autocast in place of fp16), to check the tests themselves on a machine without a GPU.
"""
from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

import pipekit
import pipekit.datasets as D
from pipekit.data import CategoryBlock, DataBlock, GrandparentSplitter, get_image_files, parent_label, set_seed
from pipekit.learn import MixedPrecision, accuracy, rmse
from pipekit.vision import (ImageBlock, MaskBlock, Normalize, Resize, aug_transforms, imagenet_stats, mnist_stats,
                            vision_learner)

DEVICE = os.environ.get("PIPEKIT_TEST_DEVICE") or ("cuda" if torch.cuda.is_available() else None)
CUDA = DEVICE is not None and DEVICE.startswith("cuda")
pytestmark = [pytest.mark.data,
              pytest.mark.skipif(DEVICE is None, reason="needs a CUDA device (or PIPEKIT_TEST_DEVICE)")]
ROOT = Path(__file__).resolve().parents[1]


def half(learn):
    """The learner in the mixed precision the device offers: fp16 (with its gradient scaler) on CUDA."""
    return learn.to_fp16() if CUDA else learn.to_bf16()


class _Precision:
    """Records the dtype of each training batch's predictions inside autocast and the scaler in use."""

    def __init__(self):
        self.dtypes, self.scaled = set(), set()

    def hook(self, learn):
        rec = self

        def grab(module, args, out):
            if module.training and torch.is_tensor(out):
                rec.dtypes.add(out.dtype)
            mp = next((c for c in learn.cbs if isinstance(c, MixedPrecision)), None)
            rec.scaled.add(mp is not None and mp.scaler is not None)

        return learn.model.register_forward_hook(grab)


# ----------------------------------------------------------------------------------------- augmentation
def _dogs_block(n: int = 48):
    def some(p):
        return [f for kind in ("cats", "dogs") for f in get_image_files(Path(p) / "train" / kind)[:n // 2]] + \
            [f for kind in ("cats", "dogs") for f in get_image_files(Path(p) / "valid" / kind)[:n // 4]]

    return DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=some, get_y=parent_label,
                     splitter=GrandparentSplitter(), item_tfms=[Resize(256)],
                     batch_tfms=aug_transforms(size=224, min_scale=0.75) + [Normalize.from_stats(*imagenet_stats)])


def test_images_are_augmented_on_the_device_as_the_cpu_augments_them(tmp_path):
    """The same seed draws the same plan on both: the torch executor on the device and the OpenCV executor on
    the CPU give the same pictures within interpolation tolerance, and the device repeats itself exactly."""
    path = D.path("dogscats")
    on = _dogs_block().dataloaders(path, bs=16, seed=3, device=DEVICE)
    cpu = _dogs_block().dataloaders(path, bs=16, seed=3, device="cpu")
    assert on.device.type == torch.device(DEVICE).type
    for a_dl, b_dl in ((on.train, cpu.train), (on.valid, cpu.valid)):
        (xa, ya), (xb, yb) = a_dl.one_batch(), b_dl.one_batch()
        assert xa.device.type == ya.device.type == torch.device(DEVICE).type and xa.dtype == torch.float32
        assert xa.shape == xb.shape == (16, 3, 224, 224)
        assert torch.equal(ya.cpu(), yb)  # the same items in the same order
        diff = (xa.cpu() - xb).abs() * 255 * 0.225  # about one grey level per 1/255/std
        assert diff.mean() < 1.0, diff.mean()
        assert torch.quantile(diff.flatten()[::97], 0.999) < 12
    # a second epoch draws new crops; the same seed on a new set of loaders draws the first ones again
    first = on.train.one_batch()[0]
    again = _dogs_block().dataloaders(path, bs=16, seed=3, device=DEVICE).train.one_batch()[0]
    assert torch.equal(first, again)
    epochs = iter(on.train)
    one = next(epochs)[0]
    two = next(iter(on.train))[0]
    assert (one - two).abs().mean() > 0.05


def test_masks_are_resampled_on_the_device_with_their_images():
    path = D.path("camvid_tiny")
    codes = np.loadtxt(path / "codes.txt", dtype=str)

    def block():
        return DataBlock(blocks=(ImageBlock, MaskBlock(codes)), get_items=get_image_files,
                         get_y=lambda o: path / "labels" / f"{o.stem}_P{o.suffix}",
                         splitter=lambda items: (list(range(80)), list(range(80, len(items)))),
                         item_tfms=[Resize((96, 128))], batch_tfms=aug_transforms(size=(72, 96), max_rotate=20))

    on = block().dataloaders(path / "images", bs=8, seed=1, device=DEVICE)
    cpu = block().dataloaders(path / "images", bs=8, seed=1, device="cpu")
    (_, ma), (_, mb) = on.train.one_batch(), cpu.train.one_batch()
    assert ma.device.type == torch.device(DEVICE).type and ma.shape == mb.shape == (8, 72, 96)
    assert ma.dtype == mb.dtype and not ma.is_floating_point()
    assert (ma.cpu() == mb).float().mean() > 0.98  # nearest neighbours: only edge pixels may differ
    assert set(torch.unique(ma).tolist()) <= set(range(len(codes)))  # no blended class values


# ----------------------------------------------------------------------------------------- training
def _digits(device):
    dblock = DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock), get_items=get_image_files, get_y=parent_label,
                       splitter=GrandparentSplitter(),
                       batch_tfms=aug_transforms(do_flip=False, max_rotate=10, max_warp=0.0, max_lighting=0.1)
                       + [Normalize.from_stats(*mnist_stats)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the unlabelled test/ folder is left out of the split, as intended
        return dblock.dataloaders(D.path("mnist_tiny"), bs=64, seed=42, device=device)


def test_mixed_precision_trains_a_cnn_and_a_fresh_cpu_process_predicts_as_the_device_did(tmp_path):
    set_seed(42)
    dls = _digits(DEVICE)
    learn = half(vision_learner(dls, "xresnet18", pretrained=False, metrics=accuracy, path=tmp_path))
    rec = _Precision()
    handle = rec.hook(learn)
    learn.fit_one_cycle(4, 3e-3)
    handle.remove()
    # autocast ran the forward passes in half precision; fp16 has its loss scaler, bf16 needs none
    assert rec.dtypes == {torch.float16 if CUDA else torch.bfloat16}, rec.dtypes
    assert rec.scaled == {CUDA}
    assert all(p.dtype == torch.float32 for p in learn.model.parameters())  # the weights stay in fp32
    assert all(np.isfinite(v) for v in learn.recorder.losses)
    loss, acc = learn.validate()
    assert acc > 0.95, acc
    # predictions in full precision after the fit, on the device; then in a new process on the CPU
    probs, targs = learn.get_preds()
    assert probs.dtype == torch.float32 and probs.device.type == "cpu"
    assert float((probs.argmax(1) == targs).float().mean()) == pytest.approx(acc, abs=1e-6)
    learn.export(tmp_path / "digits.pipekit")
    items = [str(p) for p in get_image_files(D.path("mnist_tiny") / "valid")]
    np.save(tmp_path / "want.npy", learn.get_preds(dl=learn.dls.test_dl(items))[0].numpy())
    (tmp_path / "items.txt").write_text("\n".join(items))
    code = ("import sys, numpy as np, torch, pipekit\n"
            "from pathlib import Path\n"
            "d = Path(sys.argv[1])\n"
            "learn = pipekit.load_learner(d / 'digits.pipekit')\n"
            "assert learn.device.type == 'cpu' and next(learn.model.parameters()).device.type == 'cpu'\n"
            "items = (d / 'items.txt').read_text().splitlines()\n"
            "got = learn.get_preds(dl=learn.dls.test_dl(items))[0].numpy()\n"
            "want = np.load(d / 'want.npy')\n"
            "print((got.argmax(1) == want.argmax(1)).mean(), np.abs(got - want).max())\n")
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    agree, worst = map(float, r.stdout.split())
    assert agree == 1.0 and worst < 2e-2, (agree, worst)  # the device's convolutions may round in TF32


@pytest.mark.skipif(not CUDA, reason="bf16 chosen by default is a CUDA behaviour")
def test_mixed_precision_picks_bf16_where_the_gpu_has_it(tmp_path):
    dls = _digits(DEVICE)
    learn = vision_learner(dls, "xresnet18", pretrained=False, path=tmp_path, cbs=[MixedPrecision()])
    rec = _Precision()
    handle = rec.hook(learn)
    learn.fit(1, 1e-3)
    handle.remove()
    want = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    assert rec.dtypes == {want} and rec.scaled == {want is torch.float16}


def test_lstm_language_model_and_classifier_train_in_mixed_precision(tmp_path):
    from pipekit.text import AWD_LSTM, TextBlock, language_model_learner, text_classifier_learner

    set_seed(0)
    df = pl.read_csv(D.path("imdb_sample") / "texts.csv")
    config = dict(emb_sz=64, n_hid=128, n_layers=2)
    lm_dls = DataBlock(blocks=TextBlock.from_df("text", is_lm=True), get_x=lambda r: r["text"],
                       splitter=lambda items: (list(range(800)), list(range(800, len(items))))
                       ).dataloaders(df, bs=32, seq_len=48, seed=0, device=DEVICE)
    lm = half(language_model_learner(lm_dls, AWD_LSTM, config=config, drop_mult=0.3, metrics=accuracy,
                                     path=tmp_path))
    before = lm.validate()[0]
    lm.fit_one_cycle(2, 1e-2)
    after, lm_acc = lm.validate()
    assert np.isfinite(after) and after < before - 0.5, (before, after)
    assert lm_acc > 0.15
    lm.save_encoder("enc")
    clas = DataBlock(blocks=(TextBlock.from_df("text", vocab=lm_dls.vocab), CategoryBlock), get_x=lambda r: r["text"],
                     get_y=lambda r: r["label"], splitter=lambda items: (list(range(800)), list(range(800, len(items))))
                     ).dataloaders(df, bs=32, seed=0, device=DEVICE)
    clf = half(text_classifier_learner(clas, AWD_LSTM, config=config, drop_mult=0.5, metrics=accuracy,
                                       path=tmp_path))
    clf.load_encoder("enc")
    clf.fit_one_cycle(1, 2e-2)
    clf.unfreeze()
    clf.fit_one_cycle(2, 1e-3)
    loss, acc = clf.validate()
    assert np.isfinite(loss) and acc > 0.55, acc
    label, idx, probs = clf.predict(df["text"][900])
    assert label in ("negative", "positive") and probs.shape == (2,) and float(probs.sum()) == pytest.approx(1, abs=1e-5)


def test_tables_and_ratings_train_on_the_device(tmp_path):
    from pipekit.tabular import (Categorify, CollabDataLoaders, FillMissing, Normalize as TNormalize, Tabular,
                                 collab_learner, tabular_learner)
    from pipekit.data import RandomSplitter

    set_seed(0)
    df = pl.read_csv(D.path("adult_sample") / "adult.csv")
    tab = Tabular(df, procs=[Categorify, FillMissing, TNormalize],
                  cat_names=["workclass", "education", "marital-status", "occupation", "relationship", "race"],
                  cont_names=["age", "fnlwgt", "education-num"], y_names="salary",
                  splits=RandomSplitter(valid_pct=0.2, seed=42)(df))
    learn = half(tabular_learner(tab.dataloaders(bs=256, seed=0, device=DEVICE), layers=[200, 100], metrics=accuracy,
                                 path=tmp_path))
    assert learn.device.type == torch.device(DEVICE).type
    learn.fit_one_cycle(2, 1e-2)
    assert learn.validate()[1] > 0.82
    row = df.row(7, named=True)
    label, idx, probs = learn.predict(row)
    assert label in ("<50k", ">=50k") and probs.device.type == "cpu" and probs.shape == (2,)
    assert learn.dls.vocab[int(idx)] == label

    ratings = pl.read_csv(D.path("movie_lens_sample") / "ratings.csv")
    dls = CollabDataLoaders.from_df(ratings, valid_pct=0.2, seed=42, bs=64, device=DEVICE)
    learn = half(collab_learner(dls, n_factors=50, y_range=(0, 5.5), metrics=rmse(), path=tmp_path))
    learn.fit_one_cycle(5, 5e-3, wd=0.1)
    loss, err = learn.validate()
    assert np.isfinite(loss) and err < 1.0, err


def test_the_same_seed_trains_the_same_tabular_net_on_the_device():
    """The embeddings' gradients are summed in a fixed order on the device too (torch's ``take`` adds them with
    atomics there): the same seed gives the same weights, bit for bit."""
    from pipekit.tabular import Categorify, FillMissing, Normalize as TNormalize, Tabular, tabular_learner

    df = pl.read_csv(D.path("adult_sample") / "adult.csv")
    tab = Tabular(df, procs=[Categorify, FillMissing, TNormalize],
                  cat_names=["workclass", "education", "marital-status", "occupation", "relationship", "race",
                             "native-country"], cont_names=["age", "fnlwgt"], y_names="salary",
                  splits=(np.arange(8000), np.arange(8000, 10000)))
    weights = []
    for _ in range(2):
        set_seed(5)
        with warnings.catch_warnings():
            warnings.filterwarnings("error", message=".*does not have a deterministic implementation")
            learn = tabular_learner(tab.dataloaders(bs=256, seed=5, device=DEVICE), layers=[64, 32])
            learn.fit_one_cycle(2, 1e-2)
        weights.append({k: v.detach().cpu().clone() for k, v in learn.model.state_dict().items()})
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_a_checkpoint_saved_on_the_device_resumes_with_its_random_states(tmp_path):
    """learn.save keeps the device's random state with the weights; learn.load sets it back, so the next draws on
    the device (dropout, augmentation on the GPU) are the ones the saved run would have made."""
    set_seed(0)
    learn = vision_learner(_digits(DEVICE), "xresnet18", pretrained=False, path=tmp_path, ps=0.5)
    learn.fit(1, 1e-3)
    learn.save("ckpt")
    dev = torch.device(DEVICE)
    want = torch.rand(5, device=dev)  # the next draws after the save
    torch.rand(100, device=dev)
    learn.load("ckpt")
    assert torch.equal(torch.rand(5, device=dev), want)
    assert next(learn.model.parameters()).device.type == dev.type


def test_a_model_exported_on_the_cpu_loads_onto_the_device(tmp_path):
    dls = _digits("cpu")
    learn = vision_learner(dls, "xresnet18", pretrained=False, path=tmp_path)
    f = learn.export(tmp_path / "cpu.pipekit")
    loaded = pipekit.load_learner(f, device=DEVICE)
    assert next(loaded.model.parameters()).device.type == torch.device(DEVICE).type
    items = get_image_files(D.path("mnist_tiny") / "valid")[:40]
    want = learn.get_preds(dl=learn.dls.test_dl(items))[0]
    got = loaded.get_preds(dl=loaded.dls.test_dl(items))[0]
    assert got.device.type == "cpu"
    torch.testing.assert_close(got, want, atol=2e-3, rtol=1e-3)
