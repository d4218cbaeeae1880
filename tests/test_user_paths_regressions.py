"""Paths the book's readers take: a typed item transform in a DataBlock, fastai's batch_size= on every loader,
Normalize given as a class, pickling a vision learner, validate called from a callback, and a cache entry an older
pipekit wrote."""
from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import pipekit.data.cache as cache_mod
import pipekit.datasets as D
from pipekit.core.errors import ParameterError
from pipekit.data import (CategoryBlock, DataBlock, Datasets, GrandparentSplitter, RandomSplitter, TfmdLists,
                          get_image_files, parent_label)
from pipekit.data.cache import CacheRebuildWarning, atomic_write_json, read_json
from pipekit.data.transform import Transform
from pipekit.vision import ImageBlock, PILImage, PILImageBW, build_image_store


def _every_8th(p: Path) -> list[Path]:
    return get_image_files(p)[::8]


def _mnist_dls(item_tfms, cls=PILImageBW, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the test/ folder is in neither subset
        return DataBlock(blocks=(ImageBlock(cls=cls), CategoryBlock), get_items=_every_8th,
                         splitter=GrandparentSplitter(), get_y=parent_label, item_tfms=item_tfms,
                         **kwargs).dataloaders(D.path("mnist_tiny"), bs=16, shuffle=False, device="cpu")


class Neg(Transform):
    def encodes(self, x: PILImage):
        return 255 - x


class NegBW(Transform):
    def encodes(self, x: PILImageBW):
        return 255 - x


# ---------------------------------------------------------------------------------- 1. typed item transforms
@pytest.mark.parametrize("cls,tfm", [(PILImageBW, Neg), (PILImageBW, NegBW), (PILImage, Neg)])
def test_an_item_transform_typed_for_images_runs_on_each_image_of_a_datablock(cls, tfm):
    plain = _mnist_dls([], cls=cls)
    negated = _mnist_dls([tfm()], cls=cls)
    x, y = plain.valid.one_batch()
    xn, yn = negated.valid.one_batch()
    assert torch.equal(y, yn)
    assert torch.allclose(xn, 1 - x, atol=1e-6)  # fastai's 0.165 -> 0.835 on this batch
    # new items (predict, test_dl) go through it too
    files = get_image_files(D.path("mnist_tiny") / "valid")[:4]
    assert torch.allclose(negated.test_dl(files).one_batch()[0], 1 - plain.test_dl(files).one_batch()[0], atol=1e-6)


def test_an_item_transform_typed_for_grey_images_leaves_colour_images_and_labels_alone():
    x, y = _mnist_dls([], cls=PILImage).valid.one_batch()
    xb, yb = _mnist_dls([NegBW()], cls=PILImage).valid.one_batch()
    assert torch.equal(x, xb) and torch.equal(y, yb)


def test_a_typed_item_transform_runs_before_the_resize_and_refuses_pixels_that_are_no_image():
    class Crop(Transform):
        def encodes(self, x: PILImage):
            return x[:14]  # the top half, then Resize(28) squishes it back

    from pipekit.vision import Resize

    x, _ = _mnist_dls([Resize(28, method="squish"), Crop()]).valid.one_batch()
    assert tuple(x.shape) == (16, 1, 28, 28)
    assert not torch.equal(x, _mnist_dls([Resize(28, method="squish")]).valid.one_batch()[0])

    class ToFloat(Transform):
        def encodes(self, x: PILImage):
            return x / 255

    with pytest.raises(Exception, match="ToFloat gave float64 pixels"):
        _mnist_dls([ToFloat()])


# ---------------------------------------------------------------------------------- 2. batch_size=
def _mnist_files():
    return get_image_files(D.path("mnist_tiny") / "train")[::8]


def test_batch_size_is_bs_on_the_mid_level_loaders_test_dl_new_and_summary():
    from pipekit.data import Categorize
    from pipekit.vision import Resize, ToTensor

    fn = _mnist_files()
    splits = RandomSplitter(seed=0)(fn)
    dsets = Datasets(fn, [[PILImage.create], [parent_label, Categorize()]], splits=splits)
    dls = dsets.dataloaders(after_item=[Resize(28), ToTensor()], batch_size=16, device="cpu")
    assert dls.train.bs == 16 and dls.valid.one_batch()[0].shape[0] == 16
    tls = TfmdLists(fn, [PILImage.create, Resize(28), ToTensor()], splits=splits)
    assert tls.dataloaders(batch_size=16, device="cpu").train.bs == 16
    with pytest.raises(ParameterError, match="bs=8 and batch_size=16"):
        tls.dataloaders(bs=8, batch_size=16)

    image_dls = _mnist_dls([])
    assert image_dls.test_dl(fn[:10], batch_size=4).bs == 4
    assert len(image_dls.test_dl(fn[:10], batch_size=4).one_batch()[0]) == 4
    assert image_dls.train.new(batch_size=4).bs == 4
    with pytest.raises(ParameterError, match="bs=8 and batch_size=4"):
        image_dls.test_dl(fn[:10], bs=8, batch_size=4)
    with pytest.raises(ParameterError, match="did you mean 'shuffle'"):
        image_dls.test_dl(fn[:10], shufle=False)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        text = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=_every_8th, splitter=GrandparentSplitter(),
                         get_y=parent_label).summary(D.path("mnist_tiny"), batch_size=3, show=False)
    assert "Collating a batch of 3 " in text


def test_batch_size_is_bs_on_a_tabular_pandas(adult_1500):
    from pipekit.tabular import Categorify, FillMissing, Normalize, TabularPandas

    to = TabularPandas(adult_1500, procs=[Categorify, FillMissing, Normalize], cat_names=["workclass"],
                       cont_names=["age"], y_names="salary", splits=RandomSplitter(seed=0)(range(len(adult_1500))))
    dls = to.dataloaders(batch_size=16, device="cpu")
    assert dls.train.bs == 16 and len(dls.valid.one_batch()[-1]) == 16


# ---------------------------------------------------------------------------------- 3. Normalize as a class
def test_the_image_normalize_class_is_a_datablock_batch_transform():
    from pipekit.vision import Normalize

    x, _ = _mnist_dls([], batch_tfms=Normalize).train.one_batch()
    assert abs(float(x.mean())) < 0.3 and 0.7 < float(x.std()) < 1.3


@pytest.mark.parametrize("given", ["class", "instance"])
def test_the_table_normalize_stands_for_the_image_one_in_after_batch(given):
    from pipekit.tabular import Normalize as TableNormalize
    from pipekit.vision import IntToFloatTensor, Resize, ToTensor

    fn = _mnist_files()
    tls = TfmdLists(fn, [PILImage.create, Resize(28), ToTensor()], splits=RandomSplitter(seed=0)(fn))
    norm = TableNormalize if given == "class" else TableNormalize()
    x = tls.dataloaders(after_batch=[IntToFloatTensor, norm], bs=32, device="cpu").train.one_batch()
    x = x[0] if isinstance(x, tuple) else x
    assert abs(float(x.mean())) < 0.3 and 0.7 < float(x.std()) < 1.3


# ---------------------------------------------------------------------------------- 4. pickling a vision learner
def test_a_vision_learner_pickles_and_predicts_the_same():
    from pipekit.vision import resnet18, vision_learner

    torch.manual_seed(0)
    dls = _mnist_dls([])
    learn = vision_learner(dls, resnet18, pretrained=False)
    back = pickle.loads(pickle.dumps(learn))
    preds, _ = learn.get_preds()
    preds_back, _ = back.get_preds()
    assert torch.allclose(preds, preds_back)
    back.dls = _mnist_dls([])  # new loaders still go through the learner's normalisation (its dls_hook)
    assert any(type(t).__name__ == "Normalize" for t in back.dls.train.batch_tfms.tfms)


def _adult_learner(adult_1500):
    """A tabular learner on adult's first 1,500 rows (the last 300 for validation), scored by accuracy."""
    from pipekit.learn import accuracy
    from pipekit.tabular import Categorify, FillMissing, Normalize, TabularDataLoaders, tabular_learner

    dls = TabularDataLoaders.from_df(adult_1500, y_names="salary", cat_names=["workclass"], cont_names=["age"],
                                     procs=[Categorify, FillMissing, Normalize], bs=64, device="cpu",
                                     valid_idx=list(range(1200, 1500)))
    return tabular_learner(dls, metrics=accuracy)


# ---------------------------------------------------------------------------------- 5. validate in a callback
def test_validate_called_from_a_callback_during_fit_says_so(adult_1500):
    from pipekit.learn import Callback

    learn = _adult_learner(adult_1500)

    class ValidateEachEpoch(Callback):
        def after_epoch(self):
            self.learn.validate()

    with pytest.raises(ParameterError, match="called from a callback while the learner is running a fit"):
        learn.fit(1, cbs=ValidateEachEpoch())
    loss, acc = learn.validate()  # after the fit it scores, the loader's targets were there all along
    assert loss is not None and 0 <= acc <= 1


@pytest.mark.parametrize("call", ["fit", "fit_one_cycle", "fine_tune"])
def test_fit_called_from_a_callback_during_fit_says_so_and_leaves_the_learner_whole(adult_1500, call):
    from pipekit.learn import Callback

    learn = _adult_learner(adult_1500)
    frozen = [p.requires_grad for p in learn.model.parameters()]

    class TrainAgain(Callback):
        def after_epoch(self):
            getattr(self.learn, call)(1)

    with pytest.raises(ParameterError, match=rf"^{call}: called from a callback while the learner is running a fit"):
        learn.fit(1, 1e-2, cbs=TrainAgain())
    assert [p.requires_grad for p in learn.model.parameters()] == frozen  # fine_tune froze nothing
    assert not any(isinstance(c, TrainAgain) for c in learn.cbs)
    learn.fit(1, 1e-2)  # after the fit it trains, one row of its own
    assert len(learn.recorder.values) == 1 and 0 <= learn.recorder.values[0][2] <= 1


def test_lr_find_and_get_preds_still_run_from_a_callback_during_fit(adult_1500):
    from pipekit.learn import Callback

    learn = _adult_learner(adult_1500)

    class Look(Callback):
        def after_epoch(self):
            if not hasattr(self, "lrs"):  # once: the sweep's own epochs reach this callback too
                self.lrs = None
                self.lrs = self.learn.lr_find(num_it=20, show_plot=False)
                self.n = len(self.learn.get_preds()[0])

    look = Look()
    learn.fit(2, 1e-2, cbs=look)
    assert 1e-7 < look.lrs.valley < 10 and look.n == 300
    assert len(learn.recorder.values) == 2 and learn.epoch == 1
    with pytest.raises(ParameterError, match="^fit: called from a callback"):  # the sweep's lift of the flag ends with it

        class Late(Callback):
            def after_epoch(self):
                if not hasattr(self, "swept"):
                    self.swept = True
                    self.learn.lr_find(num_it=5, show_plot=False, stop_div=False)
                    self.learn.fit(1)

        learn.fit(1, 1e-2, cbs=Late())


def test_lr_find_from_a_callback_of_a_prediction_pass_is_refused_naming_lr_find(adult_1500):
    from pipekit.learn import Callback

    learn = _adult_learner(adult_1500)

    class Call(Callback):
        def __init__(self, what):
            self.what = what

        def after_validate(self):
            getattr(self.learn, self.what)(**({"num_it": 5, "show_plot": False} if self.what == "lr_find" else
                                              {"n_epoch": 1}))

    with pytest.raises(ParameterError) as e:
        learn.get_preds(cbs=[Call("lr_find")])
    msg = str(e.value)
    assert msg.startswith("lr_find: called from a callback while the learner is running a validation-only pass "
                          "(get_preds)")
    assert "after learn.get_preds returns, or from a callback of a fit" in msg
    assert "learn.lr_find() and learn.get_preds() work as they are" not in msg
    with pytest.raises(ParameterError) as e:
        learn.get_preds(cbs=[Call("fit")])
    msg = str(e.value)  # fit names the pass it met, and does not say lr_find works there
    assert msg.startswith("fit: called from a callback while the learner is running a validation-only pass")
    assert "after learn.get_preds returns" in msg and "learn.lr_find() and learn.fit() do not" in msg
    assert len(learn.get_preds()[0]) == 300  # the learner is whole after it


# ---------------------------------------------------------------------------------- 6. an older cache entry
def test_a_cache_entry_an_older_pipekit_wrote_is_named_so_and_rebuilt_once(tmp_path, monkeypatch):
    monkeypatch.setenv("PIPEKIT_CACHE_KEY_FILE", str(tmp_path / "config" / "user.key"))
    monkeypatch.setattr(cache_mod, "_KEYS", {})
    paths = sorted((D.path("mnist_tiny") / "train" / "3").glob("*.png"))[:40]
    cache = tmp_path / "cache"
    pack = build_image_store(paths, None, mode="L", cache_dir=cache).path_
    meta = read_json(pack.with_suffix(".json"))
    # as pipekit wrote it before packs listed their content keys and were signed
    meta.pop("keys")
    meta["checksum"] = {k: v for k, v in meta["checksum"].items() if k != "signature"} | {"algo": "sha256-records-1"}
    atomic_write_json(pack.with_suffix(".json"), meta)

    with pytest.warns(CacheRebuildWarning) as log:
        again = build_image_store(paths, None, mode="L", cache_dir=cache)
    text = " ".join(str(w.message) for w in log)
    assert "made by an older pipekit" in text and "rebuilt once" in text
    assert "lacks the field" not in text
    assert again.n_decoded_ == 40
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheRebuildWarning)
        assert build_image_store(paths, None, mode="L", cache_dir=cache).n_reused_ == 40
    assert np.array_equal(again.pixels, build_image_store(paths, None, mode="L", cache_dir=False).pixels)


def test_dls_new_is_the_training_loader_with_other_settings_and_to_new_process_runs():
    """fastai's tabular tutorial: ``to_tst = to.new(df); to_tst.process()``; and ``dls.new(bs=4)``, a training loader
    with another batch size."""
    import pandas as pd

    from pipekit.tabular import Categorify, FillMissing, Normalize, TabularPandas

    df = pd.read_csv(D.path("adult_sample") / "adult.csv", nrows=600)
    to = TabularPandas(df.head(500), procs=[Categorify, FillMissing, Normalize], cat_names=["workclass", "education"],
                       cont_names=["age", "education-num"], y_names="salary", splits=RandomSplitter(seed=0)(range(500)))
    to_tst = to.new(df.iloc[500:510])
    assert to_tst.process() is None
    assert len(to_tst.xs) == 10 and to_tst.xs.index.tolist() == list(range(500, 510))
    assert to_tst.xs["age"].tolist() == to.new(df.iloc[500:510]).xs["age"].tolist()  # process() changed nothing
    dls = to.dataloaders(bs=64)
    dl = dls.new(bs=4)
    cats, conts, y = dl.one_batch()
    assert dl.bs == 4 and len(y) == 4 and dl.dataset is dls.train.dataset and dls.train.bs == 64


def test_a_pair_of_paths_for_predict_is_named_with_the_fix():
    from pipekit.core.errors import DataError
    from pipekit.data.loader import collate_items

    files = _mnist_files()[:2]
    with pytest.raises(DataError, match=r"part 0 of item 0 is a PosixPath .*PILImage.create\(path\)"):
        collate_items([(files[0], files[1], True)])
    with pytest.raises(DataError, match=r"part 1 of item 0 is a dict"):
        collate_items([(1, {"a": 1}), (2, {"b": [1, "x"]})])
