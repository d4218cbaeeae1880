"""The examples in the docstrings of the core modules run and give what they show."""
import ast
import doctest
import importlib

import pytest

MODULES = ["pipekit", "pipekit.data.blocks", "pipekit.data.cache", "pipekit.data.datablock", "pipekit.data.dataloaders",
           "pipekit.core.component", "pipekit.core.registry", "pipekit.core.validate", "pipekit.core.errors",
           "pipekit.metrics", "pipekit.metrics.functions", "pipekit.metrics.classification",
           "pipekit.metrics.multilabel", "pipekit.metrics.regression", "pipekit.metrics.lookup", "pipekit.metrics.paired",
           "pipekit.data.getters", "pipekit.data.items", "pipekit.vision.widgets",
           "pipekit.data.loader", "pipekit.data.progress", "pipekit.data.plotting", "pipekit.core.archive",
           "pipekit.data.splitters", "pipekit.data.store", "pipekit.data.transform", "pipekit.data.external",
           "pipekit.data.seed", "pipekit.datasets", "pipekit.tabular.procs", "pipekit.tabular.processor", "pipekit.tabular.core", "pipekit.backends.base",
           "pipekit.backends.data", "pipekit.backends.forest", "pipekit.backends.gbm", "pipekit.backends.boosters",
           "pipekit.backends.booster_files",
           "pipekit.ensemble.bagged", "pipekit.ensemble.torch_tabular", "pipekit.ensemble.auto", "pipekit.ensemble.mean",
           "pipekit.ensemble.weighted", "pipekit.ensemble.stacking", "pipekit.inspection.explain",
           "pipekit.inspection.features", "pipekit.data.probe", "pipekit.bench.profile", "pipekit.bench.compare",
           "pipekit.bench.bottleneck", "pipekit.collab", "pipekit.tabular.saving", "pipekit.basics"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"




# the names a user of the book reaches for first: each docstring shows a call that runs (not marked +SKIP). The
# examples are run in their modules by test_docstring_examples above, tests/test_learn_doctests.py and the domains'
# own (pipekit.text.*: test_text_models.py, pipekit.vision.*: test_vision_components.py, pipekit.tabular.*:
# test_tabular_collab.py)
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

