"""fastai's keyword spellings at pipekit's entry points: ``batch_size=`` for ``bs``, misspelt keywords refused in the
name of the function called (with what was meant), the one ``Normalize`` a notebook importing both ``vision.all`` and
``tabular.all`` has, a splitter class, and ``dblock.summary(show_batch=True)``."""
from __future__ import annotations

import warnings

import pandas as pd
import pytest
import torch

import pipekit.datasets as D
from pipekit.core.errors import ParameterError
from pipekit.data import (CategoryBlock, DataBlock, DataLoaders, GrandparentSplitter, RandomSplitter, get_image_files,
                          parent_label)
from pipekit.tabular import CollabDataLoaders, TabularDataLoaders, collab_learner, tabular_learner
from pipekit.tabular.procs import Normalize as TableNormalize
from pipekit.vision import (ImageBlock, ImageDataLoaders, Resize, SegmentationDataLoaders, cnn_learner, unet_learner,
                            vision_learner)
from pipekit.vision.transforms import Normalize as ImageNormalize
from pipekit.vision.transforms import imagenet_stats

pytestmark = pytest.mark.data

CATS, CONTS = ["workclass", "education"], ["age", "fnlwgt"]


@pytest.fixture(scope="module")
def mnist():
    return D.path("mnist_tiny")


@pytest.fixture(scope="module")
def adult():
    return pd.read_csv(D.path("adult_sample") / "adult.csv").iloc[:1000]


@pytest.fixture(scope="module")
def ratings():
    return pd.read_csv(D.path("movie_lens_sample") / "ratings.csv")


@pytest.fixture(scope="module")
def image_dls(mnist):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ImageDataLoaders.from_folder(mnist, item_tfms=Resize(28), bs=64, seed=0)


def _mnist_block(**kw):
    return DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=get_image_files, get_y=parent_label, **kw)


def _star_imports(*modules: str) -> dict:
    """The names a notebook has after ``from pipekit.<m>.all import *`` for each of ``modules``, in that order."""
    ns: dict = {}
    exec("".join(f"from pipekit.{m}.all import *\n" for m in modules), ns)
    return ns


# ---------------------------------------------------------------- batch_size= is bs=
def test_batch_size_is_bs_at_the_fastai_entry_points(mnist, adult, ratings, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dls = ImageDataLoaders.from_folder(mnist, item_tfms=Resize(28), batch_size=16, seed=0)
        assert dls.train.bs == 16 and len(dls.train_ds) == 709  # the folders' split, as with bs=16
        dls = _mnist_block(splitter=GrandparentSplitter(), item_tfms=Resize(28)).dataloaders(mnist, batch_size=8)
        assert dls.train.bs == 8 and dls.one_batch()[0].shape[0] == 8
    dls = TabularDataLoaders.from_df(adult, cat_names=CATS, cont_names=CONTS, y_names="salary", batch_size=32)
    assert dls.train.bs == 32 and dls.one_batch()[0].shape[0] == 32
    adult.to_csv(tmp_path / "adult.csv", index=False)
    dls = TabularDataLoaders.from_csv(tmp_path / "adult.csv", cat_names=CATS, cont_names=CONTS, y_names="salary",
                                      batch_size=24)
    assert dls.train.bs == 24
    dls = CollabDataLoaders.from_df(ratings, item_name="movieId", batch_size=64, seed=0)
    assert dls.train.bs == 64 and tuple(dls.one_batch()[0].shape) == (64, 2)
    dls = CollabDataLoaders.from_csv(D.path("movie_lens_sample") / "ratings.csv", batch_size=50, seed=0)
    assert dls.train.bs == 50
    train = list(zip(torch.randn(20, 2), torch.zeros(20)))
    valid = list(zip(torch.randn(8, 2), torch.zeros(8)))
    dls = DataLoaders.from_dsets(train, valid, batch_size=5, device="cpu")
    assert dls.train.bs == 5 and [tuple(t.shape) for t in dls.one_batch()] == [(5, 2), (5,)]


def test_bs_and_batch_size_given_apart_are_refused(adult, ratings):
    with pytest.raises(ParameterError, match=r"TabularDataLoaders.from_df: bs=16 and batch_size=32 are one argument "
                                             r"\(batch_size is PyTorch's name of bs\); give one of them"):
        TabularDataLoaders.from_df(adult, cat_names=CATS, cont_names=CONTS, y_names="salary", bs=16, batch_size=32)
    with pytest.raises(ParameterError, match=r"CollabDataLoaders.from_df: bs=128 and batch_size=64"):
        CollabDataLoaders.from_df(ratings, bs=128, batch_size=64)
    with pytest.raises(ParameterError, match=r"DataLoaders.from_dsets: bs=4 and batch_size=5"):
        DataLoaders.from_dsets([(1.0, 0.0)] * 8, [(1.0, 0.0)] * 4, bs=4, batch_size=5)
    # the same size given both ways is that size
    dls = TabularDataLoaders.from_df(adult, cat_names=CATS, cont_names=CONTS, y_names="salary", bs=16, batch_size=16)
    assert dls.train.bs == 16


def test_one_argument_under_two_names_is_one_helper():
    """bs/batch_size, shuffle/shuffle_train, FillMissing's, tabular_learner's y_range and xresnet's c_in are checked by
    one helper, exported with its two named uses."""
    import numpy as np

    from pipekit.core.validate import one_of_two_names

    ns: dict = {}
    exec("from pipekit.core.validate import *", ns)
    assert {"one_of_two_names", "bs_or_batch_size", "shuffle_or_shuffle_train"} <= set(ns)
    assert one_of_two_names("f", "bs", 32, "batch_size", None, 64) == 32  # the alias not given
    assert one_of_two_names("f", "bs", 64, "batch_size", 16, 64) == 16  # pipekit's name at its default: not given
    assert one_of_two_names("f", "bs", 16, "batch_size", 16, 64) == 16  # the same value both ways
    with pytest.raises(ParameterError, match=r"^f: bs=16 and batch_size=32 are one argument \(batch_size is "
                                             r"PyTorch's name of bs\); give one of them$"):
        one_of_two_names("f", "bs", 16, "batch_size", 32, 64, whose="PyTorch's")
    # values of no one truth value (arrays) are compared without failing, by `same` when given
    same = lambda a, b: [float(v) for v in a] == [float(v) for v in b]  # noqa: E731
    assert one_of_two_names("f", "y_range", np.array([0.0, 5.0]), "c", (0, 5), None, same=same) == (0, 5)
    with pytest.raises(ParameterError, match=r"^f: y_range=array\(\[0., 6.\]\) and c=\(0, 5\) are one argument \(why"):
        one_of_two_names("f", "y_range", np.array([0.0, 6.0]), "c", (0, 5), None, why="why")
    with pytest.raises(ParameterError, match=r"shuffle_train=1 is not accepted; expected True or False"):
        ns["shuffle_or_shuffle_train"]("f", True, 1)


# ---------------------------------------------------------------- misspelt keywords
def test_misspelt_loader_keywords_are_refused_in_the_name_of_the_factory_called(mnist, adult, ratings):
    files = get_image_files(mnist / "train")
    cases = [
        (lambda: ImageDataLoaders.from_folder(mnist, valid_pc=0.2, item_tfms=Resize(28)),
         r"ImageDataLoaders.from_folder: unknown argument\(s\) \['valid_pc'\]; did you mean 'valid_pct'\? The "
         r"arguments are \[.*'batch_tfms'.*'val_bs'"),
        (lambda: ImageDataLoaders.from_name_func(mnist, files, lambda n: n[0], item_tfm=Resize(28)),
         r"ImageDataLoaders.from_name_func: unknown argument\(s\) \['item_tfm'\]; did you mean 'item_tfms'\?"),
        (lambda: ImageDataLoaders.from_name_re(mnist, files, r"(\d)", sed=1),
         r"ImageDataLoaders.from_name_re: unknown argument\(s\) \['sed'\]; did you mean 'seed'\?"),
        (lambda: SegmentationDataLoaders.from_label_func(mnist, files, lambda p: p, code=["a"]),
         r"SegmentationDataLoaders.from_label_func: unknown argument\(s\) \['code'\]; did you mean 'codes'\?"),
        (lambda: _mnist_block().dataloaders(mnist, bs=8, val_bss=8),
         r"DataBlock.dataloaders: unknown argument\(s\) \['val_bss'\]; did you mean 'val_bs'\?"),
        (lambda: TabularDataLoaders.from_df(adult, cat_names=CATS, y_name="salary"),
         r"TabularDataLoaders.from_df: unknown argument\(s\) \['y_name'\]; did you mean 'y_names'\?"),
        (lambda: TabularDataLoaders.from_csv(D.path("adult_sample") / "adult.csv", cat_name=CATS, y_names="salary"),
         r"TabularDataLoaders.from_csv: unknown argument\(s\) \['cat_name'\]; did you mean 'cat_names'\?"),
        (lambda: CollabDataLoaders.from_df(ratings, item_nam="movieId"),
         r"CollabDataLoaders.from_df: unknown argument\(s\) \['item_nam'\]; did you mean 'item_name'\?"),
        (lambda: DataLoaders.from_dsets([(1.0, 0.0)] * 8, [(1.0, 0.0)] * 4, shufle=False),
         r"DataLoaders.from_dsets: unknown argument\(s\) \['shufle'\]; did you mean 'shuffle'\?"),
    ]
    for call, message in cases:
        with pytest.raises(ParameterError, match=message) as e:
            call()
        assert "from_stores" not in str(e.value)


def test_misspelt_learner_keywords_are_refused_in_the_name_of_the_factory_called(image_dls, adult, ratings):
    tdls = TabularDataLoaders.from_df(adult, cat_names=CATS, cont_names=CONTS, y_names="salary", bs=64)
    cdls = CollabDataLoaders.from_df(ratings, bs=64, seed=0)
    cases = [
        (lambda: vision_learner(image_dls, "simple_cnn", metric=None), "vision_learner", "metric", "metrics"),
        (lambda: cnn_learner(image_dls, "simple_cnn", metric=None), "cnn_learner", "metric", "metrics"),
        (lambda: unet_learner(image_dls, "simple_cnn", metric=None), "unet_learner", "metric", "metrics"),
        (lambda: tabular_learner(tdls, layer=[20]), "tabular_learner", "layer", "layers"),
        (lambda: tabular_learner(tdls, metric=None), "tabular_learner", "metric", "metrics"),
        (lambda: collab_learner(cdls, n_factor=10), "collab_learner", "n_factor", "n_factors"),
    ]
    for call, who, given, meant in cases:
        with pytest.raises(ParameterError, match=rf"^{who}: unknown argument\(s\) \['{given}'\]; it takes \['dls', "
                                                 rf".*and the Learner's \[.*'wd'.*\]; did you mean '{meant}'\?$"):
            call()
    # the keywords the Learner takes still reach it
    assert tabular_learner(tdls, layers=[20], wd=0.25).wd == 0.25


def test_a_synonym_is_suggested_before_a_close_spelling():
    from pipekit.core.validate import check_arguments

    with pytest.raises(ParameterError, match=r"f: unknown argument\(s\) \['batch_size'\]; did you mean 'bs'\?"):
        check_arguments("f", {"batch_size": 8}, ["bs", "batch_tfms"])


# ---------------------------------------------------------------- one Normalize for both star imports
@pytest.mark.parametrize("order", [("vision", "tabular"), ("tabular", "vision")])
def test_normalize_of_either_star_import_normalizes_images(order, mnist):
    ns = _star_imports(*order)
    Normalize = ns["Normalize"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dls = ImageDataLoaders.from_folder(mnist, item_tfms=Resize(28), bs=64, seed=0,
                                           batch_tfms=Normalize.from_stats(*imagenet_stats))
        x = dls.one_batch()[0]
        # mnist's black background, scaled by imagenet's statistics: far below zero (fastai 2.8.12: -1.41)
        assert x.dtype == torch.float32 and -1.6 < float(x.mean()) < -1.2
        # the table proc's class too, where fastai's one Normalize is a class a Pipeline makes
        for given in (Normalize(), [Normalize()], *([Normalize] if Normalize is TableNormalize else [])):
            dls = ImageDataLoaders.from_folder(mnist, item_tfms=Resize(28), bs=64, seed=0, batch_tfms=given)
            norm = [t for t in dls.train.batch_tfms if isinstance(t, ImageNormalize)]
            assert len(norm) == 1 and norm[0].mean is not None  # statistics from a sample of the training images
            x = dls.one_batch()[0]
            assert abs(float(x.mean())) < 0.2 and 0.8 < float(x.std()) < 1.2


@pytest.mark.parametrize("order", [("vision", "tabular"), ("tabular", "vision")])
def test_normalize_of_either_star_import_is_a_table_proc(order, adult):
    ns = _star_imports(*order)
    Normalize, TabularPandas = ns["Normalize"], ns["TabularPandas"]
    for norm in (Normalize, Normalize()):
        to = TabularPandas(adult, procs=[ns["Categorify"], ns["FillMissing"], norm], cat_names=["workclass"],
                           cont_names=["age"], y_names="salary", splits=RandomSplitter(seed=0)(range(len(adult))))
        assert [type(p) for p in to.procs if type(p).__name__ == "Normalize"] == [TableNormalize]
        age = to.train.xs["age"]
        assert abs(float(age.mean())) < 1e-5 and abs(float(age.std(ddof=0)) - 1) < 1e-4


def test_a_normalize_of_the_other_kind_holding_statistics_is_refused(adult, mnist):
    with pytest.raises(ParameterError, match=r"procs holds pipekit.vision's Normalize with image statistics"):
        TabularDataLoaders.from_df(adult, procs=[ImageNormalize.from_stats(*imagenet_stats)], cont_names=CONTS,
                                   y_names="salary")
    tdls = TabularDataLoaders.from_df(adult, procs=[TableNormalize], cont_names=CONTS, y_names="salary")
    fitted = next(p for p in tdls.tabular.procs if isinstance(p, TableNormalize))
    with pytest.raises(ParameterError, match=r"batch_tfms got pipekit.tabular's Normalize \(a table proc\) fitted on "
                                             r"the columns \['age', 'fnlwgt'\]; for images give pipekit.vision's"):
        _mnist_block(batch_tfms=fitted)


# ---------------------------------------------------------------- a splitter class, summary(show_batch=True)
def test_a_splitter_class_is_refused_saying_to_make_one():
    for cls in (RandomSplitter, GrandparentSplitter):
        with pytest.raises(ParameterError, match=rf"DataBlock: splitter takes a splitter, got the class {cls.__name__}; "
                                                 rf"pass {cls.__name__}\(\)"):
            _mnist_block(splitter=cls, item_tfms=Resize(28))


def test_summary_shows_a_batch_after_the_walk(mnist, tmp_path):
    dblock = _mnist_block(splitter=GrandparentSplitter(), item_tfms=Resize(28))
    plots = tmp_path / "plots"  # where headless figures go (tests/conftest.py)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        text = dblock.summary(mnist, show=False)
        assert not list(plots.glob("*.png"))
        text = dblock.summary(mnist, show=False, show_batch=True)
    assert "Splitting with GrandparentSplitter" in text and "Collating a batch of 4" in text
    assert len(list(plots.glob("*.png"))) == 1


def test_fastai_keywords_pipekit_does_not_take_are_refused_saying_what_to_do(adult, mnist):
    dls = TabularDataLoaders.from_df(adult, y_names="salary", cat_names=CATS, cont_names=CONTS, bs=128, seed=0,
                                     device="cpu")
    learn = tabular_learner(dls, layers=[8])
    with pytest.raises(ParameterError, match="inner=True is fastai's flag.*leave inner out"):
        learn.get_preds(inner=True)
    with pytest.raises(ParameterError, match=r"save_preds=.*torch.save\(preds"):
        learn.get_preds(save_preds="preds_dir")
    with pytest.raises(ParameterError, match=r"get_preds: unknown argument\(s\) \['with_inputs'\]"):
        learn.get_preds(with_inputs=True)
    preds, _ = learn.get_preds(inner=False, save_preds=None, save_targs=None)  # fastai's defaults change nothing
    assert preds.shape == (len(dls.valid_ds), 2)
    from pipekit.learn import Learner

    with pytest.raises(ParameterError, match=r"Learner: default_cbs=False .*remove_cb\(ProgressCallback\)"):
        Learner(dls, learn.model, default_cbs=False)
    with pytest.raises(ParameterError, match=r"tabular_learner: default_cbs=False"):
        tabular_learner(dls, default_cbs=False)
    with pytest.raises(ParameterError, match=r"Learner: unknown argument\(s\) \['metric'\]; did you mean 'metrics'"):
        Learner(dls, learn.model, metric=None)
    assert Learner(dls, learn.model, default_cbs=True).recorder is not None
    assert tabular_learner(dls, default_cbs=True).recorder is not None
    with pytest.raises(ParameterError, match="Resize: resamples=.*leave resamples out"):
        Resize(28, resamples=(2, 0))
    # cuda= (fastai's) is taken: the statistics go to the batches' device, whichever it is
    x = ImageDataLoaders.from_folder(mnist, img_cls="L", bs=16, seed=0, device="cpu", shuffle=False,
                                     batch_tfms=ImageNormalize.from_stats([0.5], [0.25], cuda=False)).one_batch()[0]
    ref = ImageDataLoaders.from_folder(mnist, img_cls="L", bs=16, seed=0, device="cpu", shuffle=False,
                                       batch_tfms=ImageNormalize.from_stats([0.5], [0.25])).one_batch()[0]
    assert x.dtype == torch.float32 and torch.equal(x, ref) and float(x.min()) == -2.0
    with pytest.raises(ParameterError, match="cuda"):
        ImageNormalize.from_stats([0.5], [0.25], cuda="yes")


def test_fastai_splitter_keywords_are_one_argument_with_pipekits_names(adult):
    from pipekit.data import ColSplitter, IndexSplitter

    df = pd.DataFrame({"fold": adult["age"].to_numpy() % 3, "is_valid": adult["fnlwgt"].to_numpy() > 200000})
    fold1 = [int(i) for i in (df["fold"] == 1).to_numpy().nonzero()[0]]
    # both names given one value: taken; two values, a flag and the number 1 included: refused, naming both
    assert ColSplitter("fold", valid_value=1, on=1)(df)[1].tolist() == fold1
    assert ColSplitter("fold", on=1)(df)[1].tolist() == fold1
    with pytest.raises(ParameterError, match=r"^ColSplitter: valid_value=True and on=1 are one argument \(on is "
                                             r"fastai's name of valid_value\); give one of them$"):
        ColSplitter("fold", valid_value=True, on=1)
    with pytest.raises(ParameterError, match=r"valid_value=2 and on=1 are one argument"):
        ColSplitter("fold", valid_value=2, on=1)
    # the default: true values, as fastai's on=None
    old = (df["is_valid"]).to_numpy().nonzero()[0].tolist()
    assert ColSplitter()(df)[1].tolist() == ColSplitter(on=None)(df)[1].tolist() == old
    assert ColSplitter(valid_value=True, on=True)(df)[1].tolist() == old
    assert IndexSplitter(idxs=fold1, valid_idx=tuple(fold1))(df)[1].tolist() == fold1
    with pytest.raises(ParameterError, match=r"^IndexSplitter: idxs=\[0, 1\] and valid_idx=\[0, 2\] are one argument"):
        IndexSplitter(idxs=[0, 1], valid_idx=[0, 2])
    with pytest.raises(ParameterError, match=r"idxs=\[True, False\] and valid_idx=\[1, 0\] are one argument"):
        IndexSplitter(idxs=[True, False], valid_idx=[1, 0])  # a mask is no list of positions


def test_fastai_get_preds_concat_dim_at_pipekits_axis_is_taken(adult):
    dls = TabularDataLoaders.from_df(adult, y_names="salary", cat_names=CATS, cont_names=CONTS, bs=128, seed=0,
                                     device="cpu")
    learn = tabular_learner(dls, layers=[8])
    preds, _ = learn.get_preds(concat_dim=0)  # fastai's default: the batches joined along the items
    assert torch.equal(preds, learn.get_preds()[0]) and preds.shape == (len(dls.valid_ds), 2)
    with pytest.raises(ParameterError, match=r"^get_preds: concat_dim=1 \(fastai's axis.*joins them along dim 0, "
                                             r"the items"):
        learn.get_preds(concat_dim=1)
    with pytest.raises(ParameterError) as e:
        learn.get_preds(with_inputs=True)
    assert "'learn'" not in str(e.value) and "'concat_dim'" in str(e.value)  # what a user can pass, only
    from pipekit.learn import Learner

    with pytest.raises(ParameterError) as e:
        Learner(dls, learn.model, metric=None)
    assert "'default_cbs'" in str(e.value) and "'self'" not in str(e.value)


def _adult_learner(adult):
    dls = TabularDataLoaders.from_df(adult, y_names="salary", cat_names=CATS, cont_names=CONTS, bs=128, seed=0,
                                     device="cpu")
    return tabular_learner(dls, layers=[8])


def test_fastai_get_preds_and_tta_keywords_are_taken_or_refused_by_name(adult):
    learn = _adult_learner(adult)
    # the learner is the method's own: learn= is an unknown argument, not a clash with get_preds' first parameter
    with pytest.raises(ParameterError, match=r"^get_preds: unknown argument\(s\) \['learn'\]; the arguments are "):
        learn.get_preds(learn=1)
    # fastai's with_preds=False: None in the place of the predictions, the tuple keeping its length
    preds, targs = learn.get_preds()
    no_preds, same_targs, decoded = learn.get_preds(with_preds=False, with_decoded=True)
    assert no_preds is None and torch.equal(same_targs, targs) and torch.equal(decoded, preds.argmax(1))
    # fastai's pickle_protocol: its default changes nothing, another is refused naming it
    assert torch.equal(learn.get_preds(pickle_protocol=2)[0], preds)
    with pytest.raises(ParameterError, match=r"^get_preds: pickle_protocol=4 \(fastai's.*leave pickle_protocol out"):
        learn.get_preds(pickle_protocol=4)
    # tta takes none of get_preds' keywords (fastai's neither), said with what to do
    with pytest.raises(ParameterError, match=r"^tta: not taken: inner=False, for get_preds: .*leave inner out"):
        learn.tta(inner=False)
    with pytest.raises(ParameterError, match=r"inner=True, with_loss=True, for get_preds.*leave inner and with_loss"):
        learn.tta(inner=True, with_loss=True)
    with pytest.raises(ParameterError, match=r"^tta: unknown argument\(s\) \['learn'\]"):
        learn.tta(learn=1)


def test_fastai_fine_tune_lr_max_and_unknown_keywords_are_refused_before_training(adult):
    learn = _adult_learner(adult)
    before = [p.detach().clone() for p in learn.model.parameters()]
    with pytest.raises(ParameterError, match=r"^fine_tune: lr_max=0.01 is not taken: .*give the rate as base_lr="):
        learn.fine_tune(1, lr_max=1e-2)
    with pytest.raises(ParameterError, match=r"^fine_tune: unknown argument\(s\) \['lr'\]; it takes \['epochs'.*and "
                                             r"fit_one_cycle's \['div_final', 'wd', 'moms', 'cbs', 'reset_opt', "
                                             r"'start_epoch'\]"):
        learn.fine_tune(1, lr=1e-2)
    from pipekit.learn.schedule import fine_tune

    with pytest.raises(ParameterError, match=r"^fine_tune: lr_max=0.01 is not taken"):  # the function itself, too
        fine_tune(learn, 1, lr_max=1e-2)
    assert all(torch.equal(a, b) for a, b in zip(before, learn.model.parameters()))  # nothing trained
    learn.fine_tune(0, freeze_epochs=1, base_lr=1e-2, div_final=1e4, wd=0.0)  # fit_one_cycle's keywords pass on
    assert len(learn.recorder.values) == 1


def test_fastai_keywords_are_one_table_each_through_check_arguments():
    from pipekit.core.validate import FastaiKeyword, check_arguments
    from pipekit.learn import export, inference, learner, schedule

    for table in (export._PICKLE_ARGS, inference._FASTAI_GET_PREDS, inference._FASTAI_TTA, learner._FASTAI_LEARNER,
                  schedule._FASTAI_FINE_TUNE):
        assert table and all(isinstance(v, FastaiKeyword) for v in table.values())
    # keywords of one message are refused together, in the table's order
    with pytest.raises(ParameterError, match=r"^x: pickle_module=, pickle_protocol= choose how fastai pickles its "
                                             r"file; .*leave pickle_module and pickle_protocol out$"):
        check_arguments("x", {"pickle_protocol": 2, "pickle_module": None}, [], fastai=export._PICKLE_ARGS)
