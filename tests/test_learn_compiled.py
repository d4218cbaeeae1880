"""A torch.compile'd learner exports, saves, loads and freezes as the model it runs; strict=False never loads
nothing; get_preds and validate work inside a caller's torch.inference_mode(). On mnist_tiny's 3s and 7s at 28x28."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import pipekit
import pipekit.datasets as D
from pipekit.core.archive import read_pipekit, write_archive
from pipekit.learn import ExportError, Learner, accuracy, load_learner, simple_cnn
from pipekit.vision import vision_learner

pytestmark = [pytest.mark.data, pytest.mark.filterwarnings("ignore:.*in neither the training")]


def compiled(model: nn.Module) -> nn.Module:
    """``torch.compile(model)`` as a user writes it, on torch's eager backend: the same wrapper (``_orig_mod``,
    the names it gives the weights) without building kernels, which takes a minute and a C compiler."""
    return torch.compile(model, backend="eager")


def new_items() -> list:
    return sorted((D.path("mnist_tiny") / "test").glob("*.png"))[:16]


def test_compiled_learner_exports_saves_and_loads(mnist_learner, tmp_path):
    dls = mnist_learner.dls
    pipekit.set_seed(0)
    learn = Learner(dls, simple_cnn(n_in=1, n_out=2), metrics=accuracy, path=tmp_path)
    learn.model = compiled(learn.model)
    learn.fit(1, 1e-2)
    dl = dls.test_dl(new_items())
    preds = learn.get_preds(dl=dl)[0]

    loaded = load_learner(learn.export("compiled.pipekit"))  # the weights under the model's own names
    assert torch.allclose(loaded.get_preds(dl=loaded.dls.test_dl(new_items()))[0], preds, atol=1e-5)
    assert (
        pipekit.load(pipekit.save(learn, tmp_path / "saved.pipekit")).predict(new_items()[0])[0]
        == learn.predict(new_items()[0])[0]
    )

    path = learn.save("stage1")
    assert not any(k.startswith("model._orig_mod.") for k in read_pipekit(path).tensors())
    plain = Learner(dls, simple_cnn(n_in=1, n_out=2), path=tmp_path).load("stage1")  # strict: every name matches
    assert torch.allclose(plain.get_preds(dl=dl)[0], preds, atol=1e-5)
    again = Learner(dls, simple_cnn(n_in=1, n_out=2), path=tmp_path)
    again.model = compiled(again.model)
    again.load("stage1")  # into the module the compiled one runs
    assert all(torch.equal(a, b) for a, b in zip(again.model.parameters(), plain.model.parameters()))


def _renamed(path, out, kind: str, rename) -> None:
    """The file at ``path`` written again to ``out`` with its weights' names changed by ``rename``."""
    archive = read_pipekit(path)
    write_archive(
        out,
        kind,
        archive.record,
        archive.arrays,
        weights={rename(k): v for k, v in archive.tensors().items()},
    )


def test_files_of_compiled_models_with_orig_mod_names_load_into_a_plain_learner(mnist_learner, tmp_path):
    # what pipekit wrote from a torch.compile'd model before it stored the inner module's names: every model
    # tensor as _orig_mod.<name>
    learn = mnist_learner
    dl = learn.dls.test_dl(new_items())
    preds = learn.get_preds(dl=dl)[0]
    _renamed(
        learn.save(tmp_path / "plain"),
        tmp_path / "old.pipekit",
        "checkpoint",
        lambda k: k.replace("model.", "model._orig_mod.", 1) if k.startswith("model.") else k,
    )
    fresh = Learner(learn.dls, simple_cnn(n_in=1, n_out=2), path=tmp_path).load(tmp_path / "old.pipekit")
    assert torch.equal(fresh.get_preds(dl=dl)[0], preds)

    _renamed(
        learn.export(tmp_path / "plain_export.pipekit"),
        tmp_path / "old_export.pipekit",
        "learner",
        lambda k: f"_orig_mod.{k}",
    )
    loaded = load_learner(tmp_path / "old_export.pipekit")
    assert torch.allclose(loaded.get_preds(dl=loaded.dls.test_dl(new_items()))[0], preds, atol=1e-6)


def test_strict_false_refuses_a_file_none_of_whose_weights_match(mnist_learner, tmp_path):
    dls = mnist_learner.dls
    other = Learner(dls, nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 2)), path=tmp_path)
    other.save("linear")  # names 1.weight, 1.bias: none of simple_cnn's
    learn = Learner(dls, simple_cnn(n_in=1, n_out=2), path=tmp_path)
    before = {k: v.clone() for k, v in learn.model.state_dict().items()}
    with pytest.raises(
        ExportError, match=r"strict=False, but none of the file's 2 model weights.*'1\.weight'"
    ):
        learn.load("linear", strict=False)
    assert all(torch.equal(before[k], v) for k, v in learn.model.state_dict().items())

    # some names match: the load goes ahead and says how many
    bigger = Learner(dls, nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 2), nn.Linear(2, 2)), path=tmp_path)
    bigger.save("bigger")
    with pytest.warns(RuntimeWarning, match="loaded 2 of the 4 model weights in the file"):
        other.load("bigger", strict=False)
    assert torch.equal(other.model[1].weight, bigger.model[1].weight)


def test_get_preds_and_validate_under_inference_mode_equal_no_grad(mnist_learner):
    learn = mnist_learner
    dl = learn.dls.test_dl(new_items())
    preds, targs = learn.get_preds()
    values = learn.validate()
    with torch.inference_mode():
        inf_preds, inf_targs = learn.get_preds()
        inf_values = learn.validate()
        inf_test = learn.get_preds(dl=dl)[0]
    assert torch.equal(inf_preds, preds) and torch.equal(inf_targs, targs)
    assert inf_values == pytest.approx(values)
    assert torch.equal(inf_test, learn.get_preds(dl=dl)[0])


def test_summary_of_a_compiled_learner_is_the_model_it_runs(mnist_learner):
    plain = mnist_learner.summary()
    learn = Learner(mnist_learner.dls, mnist_learner.model, loss_func=mnist_learner.loss_func)
    learn.model = compiled(learn.model)
    text = learn.summary()
    # headed by the model's own class, its layers under their own names with their output shapes, as uncompiled
    assert text.splitlines()[0] == plain.splitlines()[0] and not text.startswith("OptimizedModule")
    def rows(t: str) -> list[str]:  # the layers and totals (the fitted learner also names its optimiser)
        return [line for line in t.splitlines()[2:] if not line.startswith("Optimiser")]

    assert "_orig_mod" not in text and rows(text) == rows(plain)


def test_compiled_vision_learner_freezes_its_body(mnist_dls):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        learn = vision_learner(mnist_dls, "resnet18", pretrained=False)
    learn.model = compiled(learn.model)
    learn.freeze()  # the layer groups of the model the compiled one runs, whose parameters are the same
    body, head = learn.model._orig_mod[0], learn.model._orig_mod[1]
    assert all(p.requires_grad for p in head.parameters())
    assert not any(
        p.requires_grad for m in body.modules() if isinstance(m, nn.Conv2d) for p in m.parameters()
    )
    learn.unfreeze()
    assert all(p.requires_grad for p in learn.model.parameters())


def test_text_files_of_compiled_models_with_orig_mod_names_load_into_a_plain_learner(tmp_path):
    # a text classifier's export and its encoder file as pipekit wrote them from a torch.compile'd model before it
    # stored the inner module's names: every tensor as _orig_mod.<name>
    import polars as pl

    from pipekit.text import TextDataLoaders, text_classifier_learner

    df = pl.read_csv(D.path("imdb_sample") / "texts.csv").head(40).to_pandas()
    dls = TextDataLoaders.from_df(df, text_col="text", label_col="label", valid_col="is_valid", bs=8, seq_len=16,
                                  path=tmp_path, seed=0)
    cfg = {"emb_sz": 16, "n_hid": 24, "n_layers": 1}
    learn = text_classifier_learner(dls, config=cfg, pretrained=False, path=tmp_path, drop_mult=0.0)
    rows = df.head(6)
    preds = learn.get_preds(dl=learn.dls.test_dl(rows))[0]

    _renamed(learn.export(tmp_path / "plain.pipekit"), tmp_path / "old.pipekit", "learner", lambda k: f"_orig_mod.{k}")
    loaded = load_learner(tmp_path / "old.pipekit")
    assert torch.allclose(loaded.get_preds(dl=loaded.dls.test_dl(rows))[0], preds, atol=1e-6)

    _renamed(learn.save_encoder("enc"), tmp_path / "old_enc.pipekit", "encoder", lambda k: f"_orig_mod.{k}")
    enc = learn.encoder
    back = pipekit.load(tmp_path / "old_enc.pipekit").state_dict()
    assert list(back) == list(enc.state_dict()) and all(torch.equal(back[k], v) for k, v in enc.state_dict().items())
    fresh, plain = (text_classifier_learner(dls, config=cfg, pretrained=False, path=tmp_path, drop_mult=0.0)
                    for _ in range(2))
    fresh.load_encoder(tmp_path / "old_enc.pipekit")
    plain.load_encoder("enc")
    got, want = fresh.encoder.state_dict(), plain.encoder.state_dict()
    assert list(got) == list(want) and all(torch.equal(got[k], v) for k, v in want.items())


def test_a_data_parallel_model_exports_and_saves_as_the_model_it_runs(mnist_learner, tmp_path):
    # nn.DataParallel is a wrapper as DDP is: its export said the model "was not built by a registered
    # architecture", and learn.save wrote module.<name> weights a plain learner refused
    from pipekit.learn import arch_spec

    dls = mnist_learner.dls
    pipekit.set_seed(0)
    learn = Learner(dls, nn.DataParallel(simple_cnn(n_in=1, n_out=2)), path=tmp_path)
    assert arch_spec(learn.model) == arch_spec(learn.model.module) is not None
    dl = dls.test_dl(new_items())
    preds = learn.get_preds(dl=dl)[0]
    loaded = load_learner(learn.export("dp.pipekit"))
    assert torch.allclose(loaded.get_preds(dl=loaded.dls.test_dl(new_items()))[0], preds, atol=1e-6)
    plain = Learner(dls, simple_cnn(n_in=1, n_out=2), path=tmp_path).load(learn.save("dp"))
    assert torch.allclose(plain.get_preds(dl=dl)[0], preds, atol=1e-6)
