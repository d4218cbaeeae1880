"""What a user finds by asking Python: ``help(PILImage)``, ``isinstance(img, PILImage)``, a docstring example pasted
after the book's star import, ``from pipekit.collab import *``, and a docstring on every user-facing name."""
from __future__ import annotations

import ast
import builtins
import doctest
import importlib
import inspect
import pydoc
import types

import numpy as np
import pandas as pd
import pytest
import torch

import pipekit.datasets as D
from pipekit.vision.all import PILImage, Transform  # a transform's annotation names a class of its module

STAR_MODULES = ["pipekit", "pipekit.vision.all", "pipekit.text.all", "pipekit.tabular.all", "pipekit.collab",
                "pipekit.ensemble"]


def _mnist_files(n: int = 4) -> list:
    """``n`` of mnist_tiny's validation digits, alternating 3s and 7s."""
    from pipekit.data import get_image_files

    files = get_image_files(D.path("mnist_tiny") / "valid")
    threes, sevens = (sorted(f for f in files if f.parent.name == d) for d in ("3", "7"))
    return [f for pair in zip(threes, sevens) for f in pair][:n]


# ------------------------------------------------------------------ PILImage and PILImageBW are classes
def test_help_on_pilimage_and_pilimagebw_documents_the_classes():
    from pipekit.vision.all import PILImage, PILImageBW

    for cls, mode in ((PILImage, "RGB"), (PILImageBW, "L")):
        text = pydoc.render_doc(cls)
        assert f"class {cls.__name__}" in text and "create(item)" in text
        assert inspect.isclass(cls) and cls.mode == mode and cls == mode
    assert issubclass(PILImageBW, PILImage)


def test_isinstance_works_on_what_create_gives_for_real_files():
    from pipekit.vision.all import PILImage, PILImageBW

    f = _mnist_files(1)[0]
    rgb, grey = PILImage.create(f), PILImageBW.create(f)
    assert rgb.shape == (28, 28, 3) and grey.shape == (28, 28, 1)
    assert isinstance(rgb, PILImage) and not isinstance(rgb, PILImageBW)
    assert isinstance(grey, PILImageBW) and isinstance(grey, PILImage)  # as fastai's PILImageBW is a PILImage
    assert isinstance(rgb.convert("L"), PILImageBW) and isinstance(rgb.resize((14, 14)), PILImage)
    # what is not a decoded picture is not an image: a path, plain pixels, a channel, floats
    for other in (f, np.asarray(rgb).copy(), rgb[:, :, 0], rgb / 255, "RGB"):
        assert not isinstance(other, PILImage)


def test_a_transform_typed_pilimage_changes_the_images_of_real_items_and_leaves_labels():
    from pipekit.vision.all import Categorize, Datasets, parent_label

    class Half(Transform):
        def encodes(self, x: PILImage):
            return x.resize((x.size[0] // 2, x.size[1] // 2))

    files = _mnist_files(4)
    dsets = Datasets(files, [[PILImage.create], [parent_label, Categorize]], splits=[[0, 1], [2, 3]])
    img, label = dsets.train[0]
    out_img, out_label = Half()((img, label))
    assert out_img.shape == (14, 14, 3) and out_label == label
    assert np.array_equal(np.asarray(out_img), np.asarray(PILImage.create(files[0]).resize((14, 14))))
    assert Half()("a label") == "a label"


def test_pilimagebw_as_cls_and_img_cls_builds_grey_batches_of_real_images():
    from pipekit.vision.all import CategoryBlock, DataBlock, ImageBlock, ImageDataLoaders, PILImage, PILImageBW, \
        parent_label

    files = _mnist_files(6)
    assert ImageBlock(cls=PILImageBW).cls == "L" and ImageBlock(cls=PILImage).to_record()["params"]["cls"] == "RGB"
    dls = ImageDataLoaders.from_lists(D.path("mnist_tiny"), files, [parent_label(f) for f in files], valid_pct=0.5,
                                      seed=0, img_cls=PILImageBW, bs=3)
    assert dls.one_batch()[0].shape == (3, 1, 28, 28)
    dls = DataBlock(blocks=(ImageBlock(cls=PILImage), CategoryBlock), get_items=lambda _: files, get_y=parent_label,
                    splitter=lambda items: ([0, 1, 2], [3, 4, 5])).dataloaders(D.path("mnist_tiny"), bs=3)
    assert dls.one_batch()[0].shape == (3, 3, 28, 28)


# ------------------------------------------------------------------ docstring examples after the star imports
def _names_bound_and_used(source: str) -> tuple[set[str], set[str]]:
    bound: set[str] = set()
    used: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Name):
            (used if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                if alias.name == "*":
                    star = importlib.import_module(node.module or "")
                    bound.update(getattr(star, "__all__", [n for n in dir(star) if not n.startswith("_")]))
                else:
                    bound.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
    return bound, used


def _documented(obj: object):
    """``obj`` and what ``help(obj)`` shows with it: a class's public methods and properties (pipekit's own)."""
    cls = obj if inspect.isclass(obj) else None
    if cls is None and not callable(obj) and not isinstance(obj, types.ModuleType):
        cls = type(obj)  # an instance exported by name (``exp_rmspe``): help shows its class
    if cls is None:
        yield getattr(obj, "__qualname__", repr(obj)), obj
        return
    yield cls.__qualname__, cls
    for klass in cls.__mro__:
        if not (klass.__module__ or "").startswith("pipekit"):
            continue
        for name, member in vars(klass).items():
            if name.startswith("_") and name not in ("__init__", "__call__"):
                continue
            member = member.__func__ if isinstance(member, (staticmethod, classmethod)) else member
            member = member.fget if isinstance(member, property) else member
            if inspect.isfunction(member):
                yield f"{cls.__qualname__}.{name}", member


def test_every_public_docstring_example_runs_with_the_star_import_and_its_own_imports():
    """A user pastes an example from ``help()`` after ``from pipekit.<app>.all import *``: every name it uses is
    one that import gives, a builtin, or one the example binds (imports, assigns) itself. An example marked
    ``+SKIP`` stands for the user's own data (``path``, arrays) and is left out."""
    parser = doctest.DocTestParser()
    missing: dict[str, set[str]] = {}
    scanned = 0
    for modname in STAR_MODULES:
        star = importlib.import_module(modname)
        given = [n for n in vars(star) if not n.startswith("_")]  # what the star import gives (no __all__ but basics')
        available = set(given) | set(dir(builtins))
        for export in given:
            obj = getattr(star, export)
            if isinstance(obj, types.ModuleType) or not (getattr(obj, "__module__", "") or "").startswith("pipekit"):
                continue
            for where, documented in _documented(obj):
                doc = documented.__doc__
                if not isinstance(doc, str) or ">>>" not in doc:
                    continue
                bound: set[str] = set()
                used: set[str] = set()
                for example in parser.get_examples(doc):
                    if example.options.get(doctest.SKIP):
                        continue
                    b, u = _names_bound_and_used(example.source)
                    bound |= b
                    used |= u
                scanned += 1
                if used - bound - available:
                    missing.setdefault(f"{modname}: {where}", set()).update(used - bound - available)
    assert scanned > 300, scanned
    assert not missing, "\n".join(f"{k} uses {sorted(v)} without importing it" for k, v in sorted(missing.items()))


@pytest.mark.parametrize("name", ["RandomSplitter", "Categorize", "MultiCategorize", "Pipe", "using_attr",
                                  "IndexSplitter", "MaskSplitter", "TrainTestSplitter", "ColReader", "to_items",
                                  "Tabular.show", "Tabular.xs"])
def test_examples_that_build_polars_tables_run_after_the_tabular_star_import(name, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    globs: dict = {}
    exec("from pipekit.tabular.all import *", globs)
    obj = globs[name.split(".")[0]]
    if "." in name:
        obj = inspect.getattr_static(obj, name.split(".")[1])
        obj = obj.fget if isinstance(obj, property) else obj
    tests = doctest.DocTestFinder(recurse=False).find(obj, name, globs=dict(globs))
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in tests:
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.attempted > 0 and result.failed == 0, capsys.readouterr().out[-2000:]


# ------------------------------------------------------------------ from pipekit.collab import *
def test_collab_star_import_gives_chapter_8_names_and_trains_on_real_ratings():
    globs: dict = {}
    exec("from pipekit.collab import *", globs)
    for name in ("CollabDataLoaders", "collab_learner", "EmbeddingDotBias", "EmbeddingNN", "untar_data", "URLs",
                 "pd", "torch", "Learner"):
        assert name in globs, name
    collab = importlib.import_module("pipekit.collab")
    assert collab.__doc__ and "fastai.collab" in collab.__doc__
    ratings = pd.read_csv(D.path("movie_lens_sample") / "ratings.csv")
    dls = globs["CollabDataLoaders"].from_df(ratings, bs=64, seed=0)
    learn = globs["collab_learner"](dls, n_factors=8, y_range=(0, 5.5))
    assert isinstance(learn.model, globs["EmbeddingDotBias"])
    xb, yb = dls.one_batch()
    with torch.no_grad():
        pred = learn.model(xb)
    assert pred.shape[0] == 64 and float(pred.min()) >= 0 and float(pred.max()) <= 5.5


# ------------------------------------------------------------------ docstrings on user-facing names
USER_FACING = {
    "pipekit.data": ["default_device", "DataLoaders.train", "DataLoaders.valid", "DataLoaders.train_ds",
                     "DataLoaders.valid_ds", "DataLoaders.device", "DataLoaders.to", "DataLoaders.one_batch",
                     "DataLoaders.n_inp", "DataLoaders.blocks", "DataLoaders.y_block", "DataLoaders.loss_kind",
                     "DataLoaders.from_datasets", "DataLoader.n", "DataLoader.n_inp", "DataLoader.to",
                     "DataBlock.items_from", "DataBlock.fitted_blocks", "DataBlock.is_fitted"],
    "pipekit.tabular": ["Tabular.procs", "Tabular.y_kind", "Tabular.cat_names", "Tabular.cont_names",
                        "Tabular.y_names", "Tabular.y_vocab", "TabularSplit.cats", "TabularSplit.conts",
                        "TabularSplit.frame", "TabularSplit.has_targets"],
    "pipekit.text": ["TextBlock.tok", "TextBlock.num", "TextBlock.pad_idx", "TextLearner.encoder",
                     "TextLearner.text_vocab"],
    "pipekit.ensemble": ["MeanEnsemble.task", "WeightedEnsemble.classes_", "StackingEnsemble.fitted_members",
                         "MeanEnsemble.predict_proba", "WeightedEnsemble.feature_importance", "BaggedModel.task",
                         "MeanEnsemble.is_fitted"],
}


@pytest.mark.parametrize("module", sorted(USER_FACING))
def test_user_facing_names_have_docstrings(module):
    mod = importlib.import_module(module)
    undocumented = []
    for name in USER_FACING[module]:
        owner, _, attr = name.partition(".")
        obj = getattr(mod, owner)
        doc = inspect.getdoc(obj) if not attr else inspect.getdoc(inspect.getattr_static(obj, attr))
        if not doc:
            undocumented.append(name)
    assert not undocumented, f"{module}: no docstring on {undocumented}"


def test_text_block_show_says_what_it_draws():
    from pipekit.text import TextBlock

    assert "decoded text" in (TextBlock.show.__doc__ or "")  # its own, not the generic block's
