"""Serving a trained model: one learner answering several threads, loading an export, and the inputs a server is
handed (images of odd modes or of no pixels, a missing item), on real data."""
from __future__ import annotations

import copy
import pickle
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import polars as pl
import pytest
import torch
from PIL import Image
from torch import nn

import pipekit.datasets as D
import pipekit.learn.export as export
from pipekit.core.errors import DataError
from pipekit.learn import Callback, load_learner, register_arch
from pipekit.vision.decode import ImageDecodeError
from pipekit.vision.sources import MemoryImage


def _digits(n: int) -> list[str]:
    return [str(p) for p in sorted((D.path("mnist_tiny") / "valid").rglob("*.png"))[:n]]


@pytest.fixture(scope="module")
def loaded_cnn(mnist_learner, tmp_path_factory):
    """The conftest's small CNN on mnist_tiny, exported and loaded as a server loads it."""
    return load_learner(mnist_learner.export(tmp_path_factory.mktemp("serve") / "cnn.pipekit"))


@pytest.fixture(scope="module")
def adult_learner(adult_1500):
    import pipekit
    from pipekit.tabular import TabularDataLoaders, tabular_learner

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dls = TabularDataLoaders.from_df(adult_1500, y_names="salary", cat_names=["workclass", "education"],
                                         cont_names=["age", "hours-per-week"], bs=64, seed=0)
    pipekit.set_seed(0)
    learn = tabular_learner(dls, layers=[16])
    learn.fit(1, 1e-2)
    return learn


def _answer(learn, item):
    label, idx, probs = learn.predict(item)
    return str(label), int(idx), probs.numpy().copy()


def _threaded_equal_sequential(learn, items, n_threads=4, calls=40):
    ref = [_answer(learn, x) for x in items]
    jobs = [i % len(items) for i in range(n_threads * calls)]
    with ThreadPoolExecutor(n_threads) as ex:
        got = list(ex.map(lambda i: _answer(learn, items[i]), jobs))
    wrong = [i for i, g in zip(jobs, got) if g[:2] != ref[i][:2] or not np.array_equal(g[2], ref[i][2])]
    assert not wrong, f"{len(wrong)} of {len(jobs)} threaded answers differ from the sequential ones"


def test_threads_sharing_a_loaded_image_learner_get_their_own_answers(loaded_cnn, one_torch_thread):
    _threaded_equal_sequential(loaded_cnn, _digits(20))


def test_threads_sharing_a_tabular_learner_get_their_own_answers_and_validation(adult_learner, adult_1500,
                                                                                  one_torch_thread):
    rows = [adult_1500.row(i, named=True) for i in range(20)]
    _threaded_equal_sequential(adult_learner, rows)
    # validate and get_preds gather over the learner's callbacks too
    want_valid, want_preds = adult_learner.validate(), adult_learner.get_preds()[0]
    with ThreadPoolExecutor(4) as ex:
        valids = list(ex.map(lambda _: adult_learner.validate(), range(4)))
        preds = list(ex.map(lambda _: adult_learner.get_preds()[0], range(4)))
    assert all(v == want_valid for v in valids)
    assert all(torch.equal(p, want_preds) for p in preds)


class _Slow(Callback):
    """Makes each training batch last a while, says when the fit is under way and notes its end."""

    def __init__(self, started: threading.Event, ends: list[str]):
        self.started, self.ends = started, ends

    def after_batch(self) -> None:
        if self.learn.training:
            self.started.set()
            time.sleep(0.05)

    def after_fit(self) -> None:
        if not self.learn.validation_only:
            self.ends.append("fit")


def test_a_predict_made_during_a_fit_waits_for_the_fit(mnist_learner, one_torch_thread):
    learn = copy.deepcopy(mnist_learner)  # the fit changes the weights: the shared fixture keeps its own
    item, started, order = _digits(1)[0], threading.Event(), []
    t = threading.Thread(target=lambda: learn.fit(1, 1e-3, cbs=_Slow(started, order)))
    t.start()
    assert started.wait(30)
    during = _answer(learn, item)
    order.append("predict")
    t.join()
    assert order == ["fit", "predict"]
    after = _answer(learn, item)  # the weights the fit left
    assert during[:2] == after[:2] and np.array_equal(during[2], after[2])


def test_lr_find_and_fine_tune_hold_the_lock_between_their_fits(mnist_learner, one_torch_thread, monkeypatch):
    """A predict from another thread never runs between lr_find's sweep and the restore of the weights, nor
    between fine_tune's two fits: the learner's lock stays held by the calling thread across them."""
    from pipekit.learn import Learner

    learn = copy.deepcopy(mnist_learner)
    held_after_fit: list[bool] = []
    real_fit = Learner.fit

    def fit(self, *args, **kwargs):
        real_fit(self, *args, **kwargs)
        held_after_fit.append(self._lock._is_owned())  # the fit has released its own hold

    monkeypatch.setattr(Learner, "fit", fit)
    learn.lr_find(num_it=5, show_plot=False)
    learn.fine_tune(1, freeze_epochs=0)
    assert held_after_fit == [True, True]


def test_copies_of_a_learner_and_their_locks(adult_learner, adult_1500):
    row = adult_1500.row(0, named=True)
    want = _answer(adult_learner, row)
    assert copy.copy(adult_learner)._lock is adult_learner._lock  # a shallow copy shares the callbacks and model
    for other in (copy.deepcopy(adult_learner), pickle.loads(pickle.dumps(adult_learner))):
        assert other._lock is not adult_learner._lock
        got = _answer(other, row)
        assert got[:2] == want[:2] and np.array_equal(got[2], want[2])


# ------------------------------------------------------------------------------------------ loading an export
def _count_builds(monkeypatch) -> list[str]:
    built: list[str] = []
    real = export.build_arch

    def counting(name, *args, **kwargs):
        built.append(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(export, "build_arch", counting)
    return built


def test_loading_a_resnet_export_builds_the_model_once(tmp_path, monkeypatch, one_torch_thread):
    from pipekit.vision import ImageDataLoaders, Resize, vision_learner

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dls = ImageDataLoaders.from_folder(D.path("mnist_tiny"), item_tfms=Resize(28), bs=32, seed=0)
    learn = vision_learner(dls, "resnet18", pretrained=False)
    path = learn.export(tmp_path / "r18.pipekit")
    built = _count_builds(monkeypatch)
    loaded = load_learner(path)
    assert len(built) == 1, built  # not once on the meta device to check it, then again for real
    # the stored weights are the model's own tensors: real, trainable where the trained model's were, equal
    want = learn.model.state_dict()
    got = loaded.model.state_dict()
    assert set(got) == set(want) and all(torch.equal(got[k], want[k].cpu()) and got[k].dtype == want[k].dtype
                                          for k in want)
    assert not any(t.is_meta for t in list(loaded.model.parameters()) + list(loaded.model.buffers()))
    assert all(isinstance(p, nn.Parameter) for p in loaded.model.parameters())
    assert [p.requires_grad for p in loaded.model.parameters()] == [p.requires_grad for p in learn.model.parameters()]
    for f in _digits(4):
        a, b = _answer(learn, f), _answer(loaded, f)
        assert a[:2] == b[:2] and np.array_equal(a[2], b[2])


def test_a_model_with_buffers_it_does_not_save_is_built_for_real(adult_learner, adult_1500, tmp_path, monkeypatch):
    path = adult_learner.export(tmp_path / "tab.pipekit")
    built = _count_builds(monkeypatch)
    loaded = load_learner(path)
    assert len(built) == 2  # checked on the meta device, then built: its index buffers come from the config
    for row in (adult_1500.row(i, named=True) for i in range(5)):
        a, b = _answer(adult_learner, row), _answer(loaded, row)
        assert a[:2] == b[:2] and np.array_equal(a[2], b[2])


@register_arch("test_serving_tied")
class _Tied(nn.Module):
    """Scores from a table shared with the output layer (a language model's tied weights)."""

    def __init__(self, n: int, nf: int):
        super().__init__()
        self.emb, self.out = nn.Embedding(n, nf), nn.Linear(nf, n, bias=False)
        self.out.weight = self.emb.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.emb(x.long()).mean(1))


def test_tied_weights_stay_tied_after_loading(tmp_path):
    from pipekit.data import DataLoaders, TensorStore
    from pipekit.learn import CrossEntropyLossFlat, Learner

    x = np.random.default_rng(0).integers(0, 6, size=(32, 3)).astype("int64")
    y = x[:, 0].copy()
    dls = DataLoaders.from_stores([TensorStore(x[:24]), TensorStore(y[:24])], [TensorStore(x[24:]),
                                                                               TensorStore(y[24:])],
                                  bs=8, seed=0, device="cpu")
    learn = Learner(dls, _Tied(6, 4), loss_func=CrossEntropyLossFlat())
    learn.fit(1, 1e-2)
    loaded = load_learner(learn.export(tmp_path / "tied.pipekit"))
    assert loaded.model.out.weight is loaded.model.emb.weight
    assert torch.equal(loaded.model.emb.weight, learn.model.emb.weight)


# ------------------------------------------------------------------------------------------ inputs
def test_a_mode_i_pil_image_reads_its_values_as_8_or_16_bit_grey(loaded_cnn):
    f = _digits(1)[0]
    digit = np.asarray(Image.open(f).convert("L"))
    want = _answer(loaded_cnn, f)
    as_i = Image.fromarray(digit).convert("I")  # 32-bit integers holding 0..255: 8-bit grey, not black
    assert as_i.mode == "I" and int(np.asarray(as_i).max()) > 0
    as_i16 = Image.fromarray(digit.astype(np.uint16) * 257).convert("I")  # older Pillow's 16-bit PNG
    for img in (as_i, as_i16, as_i.convert("L"), Image.fromarray(digit.astype(np.uint16) * 257)):
        got = _answer(loaded_cnn, img)
        assert got[:2] == want[:2] and np.allclose(got[2], want[2], atol=1e-6), img.mode
    with pytest.raises(ImageDecodeError, match=r"mode I .* holds values -5\.\.255, outside both 8-bit .*convert"):
        loaded_cnn.predict(Image.fromarray((digit.astype(np.int32) - 5 * (digit == 0)).astype(np.int32)))
    with pytest.raises(ImageDecodeError, match="an image array of int32 is not accepted"):
        loaded_cnn.predict(digit.astype(np.int32))
    # a mask of class indices in mode I keeps them, as an int32 array's are kept
    codes = (digit > 127).astype(np.int32) * 2
    assert np.array_equal(MemoryImage("mask", image=Image.fromarray(codes)).decode("mask")[:, :, 0], codes)


@pytest.mark.parametrize("make", [lambda: Image.new("RGB", (0, 0)), lambda: Image.new("L", (28, 0)),
                                  lambda: np.zeros((0, 0, 3), np.uint8), lambda: np.zeros((0, 28), np.uint8),
                                  lambda: torch.zeros(3, 28, 0, dtype=torch.uint8)],
                         ids=["pil-0x0", "pil-28x0", "array-0x0x3", "array-0x28", "tensor-3x28x0"])
def test_an_image_of_no_pixels_is_refused_naming_it(loaded_cnn, make):
    with pytest.raises(ImageDecodeError, match=r"item 0 .*: the image is \d+x\d+ pixels .*has none; give an image "
                                               r"of at least 1x1 pixel"):
        loaded_cnn.predict(make())


def test_predict_on_none_says_to_give_the_item(loaded_cnn, adult_learner):
    from pipekit.text import AWD_LSTM, TextDataLoaders, text_classifier_learner

    texts = pl.read_csv(D.path("imdb_sample") / "texts.csv")
    texts = pl.concat([texts.filter(~pl.col("is_valid")).head(30), texts.filter(pl.col("is_valid")).head(10)])
    dls = TextDataLoaders.from_df(texts, text_col="text", label_col="label", valid_col="is_valid", bs=8, min_freq=3,
                                  seed=0)
    text_learner = text_classifier_learner(dls, AWD_LSTM, config=dict(emb_sz=16, n_hid=16, n_layers=1))
    with pytest.raises(DataError, match="item 0 is nan .*give a str"):  # as a NaN is refused
        text_learner.predict(float("nan"))
    for learn in (text_learner, loaded_cnn, adult_learner):
        with pytest.raises(DataError, match="predict: the item is None.*a str for a text model") as e:
            learn.predict(None)
        assert "fill or drop" not in str(e.value)


def test_a_loaded_learners_tta_draws_as_the_exported_ones(tmp_path):
    """A loaded learner's test_dl draws with the seed the exported one's does, so tta on new files gives the same
    numbers in both and again on a second call (a submission made from the file can be made again)."""
    from pipekit.data import CategoryBlock, DataBlock, GrandparentSplitter, get_image_files, parent_label
    from pipekit.learn import simple_cnn
    from pipekit.vision import ImageBlock, Resize, aug_transforms, vision_learner

    path = D.path("mnist_tiny")
    dls = DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock), get_items=get_image_files, get_y=parent_label,
                    splitter=GrandparentSplitter(), item_tfms=[Resize(32)],
                    batch_tfms=aug_transforms(size=28, max_rotate=20, do_flip=False)).dataloaders(path, bs=64, seed=7)
    learn = vision_learner(dls, simple_cnn, pretrained=False)
    learn.fit(1, 1e-2)
    files = sorted((path / "test").glob("*.png"))[:40]
    loaded = load_learner(learn.export(tmp_path / "digits.pipekit"))
    here, _ = learn.tta(dl=learn.dls.test_dl(files))
    there, _ = loaded.tta(dl=loaded.dls.test_dl(files))
    again, _ = loaded.tta(dl=loaded.dls.test_dl(files))
    assert torch.equal(here, there) and torch.equal(there, again)
    other, _ = loaded.tta(dl=loaded.dls.test_dl(files, seed=99))  # another seed draws other augmentations
    assert not torch.equal(there, other)
