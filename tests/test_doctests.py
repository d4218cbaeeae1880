"""The examples in the docstrings of every pipekit module run and give what they show, and every public class and
function has one."""
import ast
import doctest
import importlib
import inspect
import pkgutil

import pytest

import pipekit


def _modules() -> list[str]:
    """Every module of the installed package (``pipekit.__main__`` runs the command line when imported)."""
    names = ["pipekit"] + [m.name for m in pkgutil.walk_packages(pipekit.__path__, "pipekit.")]
    return sorted(n for n in names if not n.endswith("__main__"))


MODULES = _modules()


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, tmp_path, monkeypatch):
    """Every example in every module's docstrings runs and gives what it shows, from an empty working folder, as the
    user's own code (``__main__``): a class an example defines is the user's, as when pasted, not the module's. An
    example warns nothing it does not show: a pasted example that warns would teach a call to avoid."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PIPEKIT_QUIET", "1")  # an example's fit prints no progress table
    result = doctest.testmod(importlib.import_module(name), extraglobs={"__name__": "__main__"},
                             optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"


def _public_names():
    """(module, name, object) for each class and function a module lists in ``__all__`` and defines itself."""
    seen: set[int] = set()
    for modname in MODULES:
        mod = importlib.import_module(modname)
        for export in getattr(mod, "__all__", []):
            obj = getattr(mod, export, None)
            if not (inspect.isclass(obj) or inspect.isfunction(obj)) or id(obj) in seen:
                continue
            if not (getattr(obj, "__module__", "") or "").startswith("pipekit"):
                continue  # a re-export of torch's or the standard library's name
            seen.add(id(obj))
            yield modname, export, obj


def test_every_public_name_shows_an_example_in_its_docstring():
    """What ``help(name)`` shows for each public class and function ends with an example that runs (run by
    test_docstring_examples in the module that defines it)."""
    names = list(_public_names())
    missing = [f"{obj.__module__}.{obj.__qualname__} (exported by {modname} as {export})"
               for modname, export, obj in names
               if not any(not e.options.get(doctest.SKIP)
                          for t in doctest.DocTestFinder(recurse=False).find(obj, export) for e in t.examples)]
    assert len(names) > 600, len(names)
    assert not missing, f"{len(missing)} public names without an example:\n" + "\n".join(missing)


# the names a user of the book reaches for first: each docstring shows a call that runs (not marked +SKIP), not
# only an import. The examples are run in their modules by test_docstring_examples above
MOST_USED = ["DataBlock", "DataBlock.dataloaders", "Learner", "Learner.fit_one_cycle", "Learner.fine_tune",
             "Learner.lr_find", "vision_learner", "text_classifier_learner", "language_model_learner",
             "tabular_learner", "collab_learner", "TabularPandas", "ImageDataLoaders.from_folder",
             "ImageDataLoaders.from_name_func", "ImageDataLoaders.from_df", "TextDataLoaders.from_csv",
             "TextDataLoaders.from_folder", "load_learner", "Learner.export", "Learner.predict", "Learner.get_preds",
             "Learner.summary", "ClassificationInterpretation", "fit_ensemble", "aug_transforms", "Resize",
             "RandomResizedCrop", "GBM", "RandomForest", "DataLoaders.show_batch", "DataLoaders.test_dl",
             "Learner.fit", "Learner.validate", "Learner.freeze", "Learner.unfreeze", "Learner.tta",
             "Learner.show_results", "Learner.save", "Learner.load", "TabularDataLoaders.from_df",
             "TabularDataLoaders.from_csv", "CollabDataLoaders.from_df", "DataBlock.datasets", "pipekit.load",
             "TimeLimit", "TextLearner", "TorchTabular.from_learner", "embeddings_as_features"]


@pytest.mark.parametrize("name", MOST_USED)
def test_most_used_names_show_an_example(name):
    globs: dict = {}
    exec("import pipekit\nfrom pipekit.vision.all import *\nfrom pipekit.text.all import *\n"
         "from pipekit.tabular.all import *\nfrom pipekit.collab import *\nfrom pipekit.backends import GBM, RandomForest\n"
         "from pipekit.ensemble import *", globs)
    obj = globs[name.split(".")[0]]
    for attr in name.split(".")[1:]:
        obj = getattr(obj, attr)
    # a line that only imports (or is only a comment, which parses to no statement) shows no call
    examples = [e for t in doctest.DocTestFinder(recurse=False).find(obj, name) for e in t.examples
                if not e.options.get(doctest.SKIP)
                and not all(isinstance(s, (ast.Import, ast.ImportFrom)) for s in ast.parse(e.source).body)]
    assert examples, f"{name}'s docstring has no example that runs (a >>> line not marked +SKIP, not only an import)"

