"""The examples in the docstrings of the core modules run and give what they show."""
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
