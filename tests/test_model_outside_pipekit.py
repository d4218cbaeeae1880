"""A loaded learner says what preprocessing it applies, so its model can run outside pipekit: ``dls.after_item`` and
``dls.after_batch`` of a loaded image learner (what its ``test_dl`` runs), a batch pipeline's repr in the order a batch
goes through it, and a loaded table learner's ``dls.procs`` named as a table's; the documented values, applied by hand
before a ``torch.export`` program, give ``learn.predict``'s numbers (mnist_tiny, adult_sample)."""
from __future__ import annotations

import warnings

import cv2
import numpy as np
import polars as pl
import pytest
import torch

import pipekit
import pipekit.datasets as D
from pipekit.data import CategoryBlock, DataBlock, GrandparentSplitter, get_image_files, parent_label
from pipekit.data.transform import BatchPipeline, Pipeline
from pipekit.learn import Learner, simple_cnn
from pipekit.vision import ImageBlock, IntToFloat, Normalize, Resize

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def mnist_loaded(tmp_path_factory):
    """A small CNN trained one epoch on mnist_tiny resized to 32 px with ``Normalize()`` (statistics taken from the
    training images), exported and loaded back; with the trained learner."""
    dblock = DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock), get_items=get_image_files, get_y=parent_label,
                       splitter=GrandparentSplitter(), item_tfms=Resize(32), batch_tfms=Normalize())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the test/ folder is in neither subset
        dls = dblock.dataloaders(D.path("mnist_tiny"), bs=64, seed=0)
    pipekit.set_seed(0)
    learn = Learner(dls, simple_cnn(n_in=1, n_out=dls.c))
    learn.fit_one_cycle(1, 1e-2)
    file = learn.export(tmp_path_factory.mktemp("mnist") / "model.pipekit")
    return learn, pipekit.load_learner(file)


@pytest.fixture(scope="module")
def test_images():
    return sorted((D.path("mnist_tiny") / "test").glob("*.png"))[:6]


@pytest.fixture(scope="module")
def digit_images():
    """Three validation images of each digit, 3s then 7s, with their classes (0 for '3', 1 for '7')."""
    files = [f for d in ("3", "7") for f in sorted((D.path("mnist_tiny") / "valid" / d).glob("*.png"))[:3]]
    return files, [0, 0, 0, 1, 1, 1]


def test_loaded_learner_gives_the_pipelines_its_test_dl_runs(mnist_loaded, test_images):
    learn, loaded = mnist_loaded
    tdl = loaded.dls.test_dl(test_images)
    after_batch = loaded.dls.after_batch  # was: AttributeError, "these loaders hold no data"
    assert [type(t) for t in after_batch] == [Normalize, IntToFloat]
    assert [id(t) for t in after_batch] == [id(t) for t in tdl.after_batch]  # the very objects it runs
    assert repr(after_batch) == repr(tdl.after_batch)
    trained = next(t for t in learn.dls.after_batch if isinstance(t, Normalize))
    assert after_batch[0].mean == trained.mean and after_batch[0].std == trained.std
    assert after_batch[0].mean[0] == pytest.approx(0.13, abs=0.03)  # mnist's ink on black, on the 0..1 scale
    after_item = loaded.dls.after_item
    assert [(type(t), t.size, t.method) for t in after_item] == [(Resize, 32, "crop")]
    assert [id(t) for t in after_item] == [id(t) for t in tdl.after_item]  # the very objects, as after_batch's
    assert [repr(t) for t in after_item] == [repr(t) for t in tdl.after_item]


def test_batch_pipeline_repr_is_the_order_a_real_batch_goes_through(mnist_loaded, test_images, monkeypatch):
    _, loaded = mnist_loaded
    tdl = loaded.dls.test_dl(test_images)
    pipeline = tdl.after_batch
    entry = tdl.batch_plan(0)[0]
    raw = tuple(tdl.create_batch(entry))
    assert raw[0].dtype == torch.uint8  # the cached pixels, 0..255
    ctx = tdl.context(0, 0, entry)
    ran, outputs = [], []
    for t in pipeline.tfms:
        def traced(batch, ctx, t=t, encode=t.encode):
            ran.append(type(t).__name__)
            out = encode(batch, ctx)
            outputs.append(out[0])
            return out
        monkeypatch.setattr(t, "encode", traced)
    x = pipeline.encode(raw, ctx)[0]
    inner = repr(pipeline).removeprefix("BatchPipeline(").removesuffix(")")
    shown = [step.split("(")[0] for step in inner.split(" -> ")]
    assert ran == shown == ["Normalize", "IntToFloat"]
    norm = pipeline.tfms[0]
    by_hand = (raw[0].permute(0, 3, 1, 2).float() / 255 - norm.mean[0]) / norm.std[0]
    assert torch.allclose(outputs[0], by_hand, atol=1e-5)  # Normalize took the uint8 pixels and divided by 255
    assert torch.equal(outputs[1], outputs[0]) and torch.equal(x, outputs[0])  # IntToFloat left the floats alone
    # and the repr says so, rather than reading as "normalise 0..255 pixels, then divide by 255"
    text = repr(pipeline)
    assert "Normalize(" in text and "[takes uint8 images: /255 first]" in text.split("->")[0]
    assert "IntToFloat() [images already float after Normalize: unchanged]" in text


def _by_hand(file, size: int, mean: list[float], std: list[float]) -> torch.Tensor:
    """What the README says a loaded learner does to an image file, in OpenCV and torch alone."""
    img = cv2.imread(str(file), cv2.IMREAD_GRAYSCALE)  # 28x28, square: method "crop" crops nothing
    img = cv2.resize(img, (size, size), interpolation=cv2.INTER_LINEAR)  # growing: bilinear (shrinking: INTER_AREA)
    x = torch.from_numpy(img).float()[None] / 255
    return (x - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]


def test_documented_preprocessing_and_an_exported_program_give_predict(mnist_loaded, digit_images):
    _, loaded = mnist_loaded
    test_images, labels = digit_images
    assert loaded.dls.vocab == ["3", "7"]
    resize, = loaded.dls.after_item
    norm = next(t for t in loaded.dls.after_batch if isinstance(t, Normalize))
    program = torch.export.export(loaded.model.eval(), loaded.dls.test_dl(test_images).one_batch())
    x = torch.stack([_by_hand(f, resize.size, norm.mean, norm.std) for f in test_images])
    assert torch.allclose(x, loaded.dls.test_dl(test_images).one_batch()[0], atol=1e-5)
    with torch.no_grad():
        probs = program.module()(x).softmax(1)
    predicted = torch.stack([loaded.predict(f)[2] for f in test_images])
    assert torch.allclose(probs, predicted, atol=1e-4)
    # the digits told apart (not one class for all), so the matching numbers above are a trained model's
    guessed = probs.argmax(1).tolist()
    assert set(guessed) == {0, 1} and sum(g == y for g, y in zip(guessed, labels)) >= 5, (guessed, labels)


@pytest.fixture(scope="module")
def adult_loaded(tmp_path_factory):
    from pipekit.tabular import TabularDataLoaders, tabular_learner

    df = pl.read_csv(D.path("adult_sample") / "adult.csv").head(2000)
    dls = TabularDataLoaders.from_df(df, y_names="salary", cat_names=["workclass", "education"],
                                     cont_names=["age", "education-num"], valid_idx=list(range(1600, 2000)), bs=64)
    pipekit.set_seed(0)
    learn = tabular_learner(dls, layers=[20])
    learn.fit(1, 1e-2)
    return df, pipekit.load_learner(learn.export(tmp_path_factory.mktemp("adult") / "adult.pipekit"))


def test_loaded_table_procs_are_named_as_a_tables(adult_loaded):
    _, loaded = adult_loaded
    procs = loaded.dls.procs
    assert [type(p).__name__ for p in procs] == ["FillMissing", "Categorify", "Normalize"]  # still a list
    assert set(procs.normalize.means) == {"age", "education-num"}  # was: AttributeError on a plain list
    assert procs.means == procs.normalize.means and procs.normalize.stds["age"] > 10
    assert procs.fill_missing.na_dict == {"education-num": 10.0}
    assert procs.categorify["workclass"][:3] == ["#na#", " ?", " Federal-gov"]
    assert procs.categorify["workclass"] == loaded.dls.classes["workclass"]


def test_procs_errors_name_dls_procs(adult_loaded):
    _, loaded = adult_loaded
    with pytest.raises(AttributeError, match=r"^dls\.procs has no 'mean': the fitted procs are \['FillMissing'"):
        _ = loaded.dls.procs.mean  # was: "to.procs has no 'mean'", a table's name on a DataLoaders
    with pytest.raises(AttributeError, match=r"^to\.procs has no 'mean'"):  # a table's own say so still
        _ = loaded.dls.recipe.processor.fitted_procs("to.procs").mean


def test_dls_procs_asks_the_processor_to_name_its_procs():
    """``dls.procs`` uses a processor's ``fitted_procs`` where it has one, else gives its procs as a plain list."""
    from types import SimpleNamespace

    from pipekit.data import DataLoaders

    asked = []
    named = SimpleNamespace(procs=["p"], fitted_procs=lambda where: asked.append(where) or ["named"])
    assert DataLoaders(recipe=SimpleNamespace(processor=named)).procs == ["named"] and asked == ["dls.procs"]
    plain = DataLoaders(recipe=SimpleNamespace(processor=SimpleNamespace(procs=("p", "q")))).procs
    assert type(plain) is list and plain == ["p", "q"]


@pytest.fixture(scope="module")
def imdb_loaded(tmp_path_factory):
    """A small text classifier on 50 imdb_sample reviews, exported unfitted and loaded back; with the live loaders and
    the texts."""
    from pipekit.text import AWD_LSTM, TextDataLoaders, text_classifier_learner

    texts = pl.read_csv(D.path("imdb_sample") / "texts.csv").head(50)
    dls = TextDataLoaders.from_df(texts, text_col="text", label_col="label", valid_col="is_valid", bs=8, seq_len=72)
    learn = text_classifier_learner(dls, AWD_LSTM, config=dict(emb_sz=16, n_hid=16, n_layers=1), pretrained=False)
    return dls, texts["text"].to_list()[:4], pipekit.load_learner(learn.export(tmp_path_factory.mktemp("imdb") / "t.pk"))


@pytest.mark.parametrize("kind", ["table", "text"])
def test_loaded_table_and_text_learners_give_their_test_dls_pipelines(kind, adult_loaded, imdb_loaded):
    if kind == "table":
        df, loaded = adult_loaded
        new = df.head(5)
    else:
        _, new, loaded = imdb_loaded
    tdl = loaded.dls.test_dl(new)
    assert len(tdl.dataset) == len(new)
    for stage, kind_of in (("after_item", Pipeline), ("after_batch", BatchPipeline)):
        shown, ran = getattr(loaded.dls, stage), getattr(tdl, stage)
        assert type(shown) is type(ran) is kind_of  # was: AttributeError, "these loaders hold no data"
        assert [id(t) for t in shown.tfms] == [id(t) for t in ran.tfms]  # the very objects it runs
        assert shown.tfms == ran.tfms == []  # tables and texts are encoded whole: no step per item or batch
    if kind == "text":  # as the live loaders' test_dl
        live, _, _ = imdb_loaded
        live_tdl = live.test_dl(new)
        assert live_tdl.after_item.tfms == tdl.after_item.tfms and live_tdl.after_batch.tfms == tdl.after_batch.tfms


def test_documented_fitted_values_reproduce_test_dl_tensors(adult_loaded):
    df, loaded = adult_loaded
    procs, dls = loaded.dls.procs, loaded.dls
    rows = pl.concat([df.filter(pl.col("education-num").is_null()).head(3), df.tail(3)])
    x_cat, x_cont, _ = dls.test_dl(rows).one_batch()
    classes = procs.categorify.classes
    fill = procs.fill_missing.na_dict
    cat, cont = [], []
    for row in rows.iter_rows(named=True):
        values = {**row, **{f"{c}_na": str(row[c] is None).lower() for c in fill}}
        cat.append([classes[c].index(values[c]) if values[c] in classes[c] else 0 for c in dls.cat_names])
        cont.append([((fill[c] if row[c] is None else row[c]) - procs.normalize.means[c]) / procs.normalize.stds[c]
                     for c in dls.cont_names])
    assert dls.cat_names == ["workclass", "education", "education-num_na"]
    assert x_cat.tolist() == cat and x_cat[:3, 2].tolist() == [classes["education-num_na"].index("true")] * 3
    assert np.allclose(x_cont.numpy(), np.array(cont, dtype=np.float32), atol=1e-5)
