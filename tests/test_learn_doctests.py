"""The examples in pipekit.learn's docstrings run and give what they show."""
import doctest
import importlib

import pytest

MODULES = ["pipekit.learn.registry", "pipekit.learn.nets", "pipekit.learn.losses", "pipekit.learn.optim",
           "pipekit.learn.callbacks", "pipekit.learn.callbacks.core", "pipekit.learn.callbacks.builtin",
           "pipekit.learn.callbacks.training", "pipekit.learn.callbacks.nonfinite", "pipekit.learn.callbacks.mixing", "pipekit.learn.schedule",
           "pipekit.learn.learner", "pipekit.learn.export", "pipekit.learn.interpret", "pipekit.learn.distributed",
           "pipekit.learn.inference", "pipekit.learn.summary"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PIPEKIT_QUIET", "1")
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
