"""The vision recipes run end to end (quick mode: a few batches) and print their result line.

Each recipe runs with its light architecture option (same code path, smaller net), and the ones
whose default is an xresnet18 run once more with it (marked `slow`: deselect with -m "not slow").
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_recipe(name: str, capsys, **kwargs) -> str:
    spec = importlib.util.spec_from_file_location(f"recipe_{name}", ROOT / "recipes" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.main(quick=True, **kwargs)
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("result:")]
    assert len(lines) == 1
    return lines[0]


@pytest.mark.parametrize("name, kwargs, expect", [
    ("mnist_tiny", {}, "accuracy="),
    ("fashion_mnist", {}, "(256 train / 256 test images)"),
    ("camvid_tiny", {"arch": "simple_cnn"}, "pixel_accuracy_no_void="),
    ("coco_tiny", {"arch": "simple_cnn"}, "largest-object"),
    ("coco_tiny", {"arch": "simple_cnn", "multilabel": True}, "multi-label"),
    ("dogscats", {"arch": "simple_cnn", "size": 32}, "dogscats cats-vs-dogs simple_cnn"),
    ("transfer", {"arch": "simple_cnn"}, "fine_tuned="),
])
def test_recipe_runs(name, kwargs, expect, capsys):
    line = run_recipe(name, capsys, **kwargs)
    assert expect in line and "time=" in line


@pytest.mark.slow
@pytest.mark.parametrize("name", ["camvid_tiny", "coco_tiny", "dogscats", "transfer"])
def test_recipe_runs_with_its_default_arch(name, capsys):
    assert "xresnet18" in run_recipe(name, capsys)
