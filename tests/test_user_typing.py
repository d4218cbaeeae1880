"""Users' code as mypy reads it: the book's star imports give their names, the top level's lazy names and the
factories have their real types (so a misspelt method is reported), and the book's calls type-check."""

import ast
import importlib
import inspect
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: each star-import module and the modules whose ``__all__`` it gives, in order, with its own names after them;
#: ``pipekit.basics`` writes its ``__all__`` out (mypy reads only a list of literals), the others have none: a star
#: import of a module without one gives its public names, which mypy reads from the star imports it makes
STAR_MODULES = {
    "pipekit.basics": (["pipekit.data", "pipekit.learn"], None),
    "pipekit.vision.all": (["pipekit.basics", "pipekit.vision"], []),
    "pipekit.text.all": (["pipekit.basics", "pipekit.text"], []),
    "pipekit.tabular.all": (["pipekit.basics", "pipekit.tabular"], []),
    "pipekit.collab": (
        ["pipekit.basics"],
        ["CollabDataLoaders", "EmbeddingDotBias", "EmbeddingNN", "collab_learner", "unseen_report"],
    ),
}


def _literal_all(module: str) -> list[str] | None:
    """The module's ``__all__`` as written in its source (a list of string literals, or a failure saying why
    not), None when it has none."""
    path = Path(importlib.import_module(module).__file__)
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets):
            assert isinstance(node.value, ast.List), f"{path}: __all__ is not a list literal"
            bad = [ast.unparse(e) for e in node.value.elts if not isinstance(e, ast.Constant)]
            assert not bad, (
                f"{path}: __all__ holds {bad[:3]}, which type checkers cannot read: write the names out"
            )
            return [e.value for e in node.value.elts]
    return None


def _expected_all(module: str) -> list[str]:
    """The names ``from module import *`` must give: its sources' names in order (a source that is itself a star
    module by what it must give, so a name added to ``pipekit.learn`` fails every one at once), then its own."""
    sources, own = STAR_MODULES[module]
    given = [n for s in sources for n in (_expected_all(s) if s in STAR_MODULES else importlib.import_module(s).__all__)]
    if own is None:  # pipekit.basics: its own names (those its sources do not give) come first
        given_set = set(given)
        own = [n for n in _literal_all(module) or [] if n not in given_set]
        return list(dict.fromkeys(own + given))
    return list(dict.fromkeys(given + own))


@pytest.mark.parametrize("module", list(STAR_MODULES))
def test_star_imports_give_their_sources_names_as_type_checkers_read_them(module):
    mod = importlib.import_module(module)
    written, expected = _literal_all(module), _expected_all(module)
    if module == "pipekit.basics":
        assert written is not None, f"{mod.__file__}: write its __all__ out"
        missing, extra = [n for n in expected if n not in written], [n for n in written if n not in expected]
        assert not missing and not extra, (
            f"{mod.__file__}: __all__ lacks {missing} and has {extra}, which pipekit.data and pipekit.learn no "
            "longer give: write it out as they list their names"
        )
        assert written == expected and mod.__all__ == written
    else:
        assert written is None, f"{mod.__file__}: leave __all__ out (its public names are its star imports')"
        given = {n for n in vars(mod) if not n.startswith("_")}  # what `from module import *` gives
        assert given == set(expected), (sorted(set(expected) - given), sorted(given - set(expected)))
    undefined = [n for n in expected if not hasattr(mod, n)]
    assert not undefined, f"{module} lacks {undefined[:5]}"


def test_datasets_signature_is_fastais_call():
    from pipekit.data import Datasets, TfmdDatasets

    assert list(inspect.signature(Datasets).parameters) == ["items", "tfms", "tls", "n_inp", "splits"]
    assert inspect.signature(Datasets) == inspect.signature(TfmdDatasets)


USER_SCRIPT = """\
from pipekit.vision.all import *
import pipekit
from pipekit.tabular import CollabDataLoaders, collab_learner

path = untar_data(URLs.MNIST_TINY)
dls = ImageDataLoaders.from_folder(path, valid="valid", item_tfms=Resize(28), bs=16)
learn = vision_learner(dls, resnet18, metrics=accuracy)
head = nn.Linear(256, dls.c)
loaded = pipekit.load_learner("model.pipekit")
loaded.predcit("x.png")
cdls = CollabDataLoaders.from_csv(path / "ratings.csv")
clearn = collab_learner(cdls, n_factors=20)
clearn.fit_one_cyle(1, 1e-2)
files = get_image_files(path / "train")
dsets = Datasets(files, [[PILImage.create], [parent_label, Categorize()]], splits=RandomSplitter(0.2, seed=1)(files))
dsets.decode(dsets.valid[0])
blocks = DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock), get_items=get_image_files, get_y=parent_label)
model = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 256), nn.ReLU(), nn.Linear(256, blocks.dataloaders(path).c))
from functools import partial
import torch
from pipekit.tabular import TabularDataLoaders, tabular_learner
tdls = TabularDataLoaders.from_csv(path / "adult.csv", y_names="salary", cat_names=["workclass"], cont_names=["age"])
tlearn = tabular_learner(tdls, layers=[20])
tlearn.fit_one_cyle(1)
cnn = simple_cnn(n_out="two")
@register_arch("tiny")
def tiny(n_in: int, n_out: int) -> nn.Module:
    return nn.Linear(n_in, n_out)
tiny_model: nn.Module = tiny(2, 1)
sgd = Learner(dls, tiny(2, 1), opt_func=partial(OptimWrapper, opt=torch.optim.SGD, momentum=0.9))
"""


@pytest.mark.slow  # about 45 s: mypy reads pipekit and torch's annotations once, with a fresh cache
def test_book_code_type_checks(tmp_path):
    (tmp_path / "user.py").write_text(USER_SCRIPT)
    env = {**os.environ, "MYPYPATH": str(ROOT)}
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--cache-dir",
            str(tmp_path / "mypy_cache"),
            "--follow-imports=silent",
            "--no-error-summary",
            "--show-error-codes",
            "--disallow-untyped-decorators",  # a user's @register_arch("name") keeps the function's type
            "user.py",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = [ln for ln in run.stdout.splitlines() if ln.startswith("user.py:")]
    assert run.returncode in (0, 1), run.stdout + run.stderr  # 2: mypy itself failed
    assert lines == [
        'user.py:10: error: "Learner" has no attribute "predcit"; maybe "predict"?  [attr-defined]',
        'user.py:13: error: "Learner" has no attribute "fit_one_cyle"; maybe "fit_one_cycle"?  [attr-defined]',
        'user.py:24: error: "Learner" has no attribute "fit_one_cyle"; maybe "fit_one_cycle"?  [attr-defined]',
        'user.py:25: error: Argument "n_out" to "simple_cnn" has incompatible type "str"; expected "int"  [arg-type]',
    ], textwrap.indent(run.stdout, "    ")
