"""The vision recipes run end to end (quick mode: a few batches) and print their result line.

The recipes fine-tune ImageNet weights by default; the ones that can also train another architecture from
scratch run once more that way (marked `slow`: deselect with -m "not slow"). The book's chapter-1 model keeps
its promise even in quick mode.
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


def figure(line: str, name: str) -> float:
    return float(line.split(f"{name}=")[1].split()[0])


@pytest.mark.parametrize("name, kwargs, expect", [
    ("mnist_tiny", {}, "efficientnet_lite0 pretrained 64px accuracy="),
    ("fashion_mnist", {}, "(256 train / 256 test images, 2 epochs each)"),
    ("camvid_tiny", {}, "unet(efficientnet_lite0, pretrained)"),
    ("coco_tiny", {}, "largest-object efficientnet_lite2 (pretrained)"),
    ("coco_tiny", {"multilabel": True}, "multi-label"),
    ("transfer", {"arch": "simple_cnn"}, "efficientnet_lite0 from imagenet 64px fine_tuned="),
])
def test_recipe_runs(name, kwargs, expect, capsys):
    line = run_recipe(name, capsys, **kwargs)
    assert expect in line and "time=" in line


def test_chapter_one_dogscats_fine_tune_is_accurate_even_in_quick_mode(capsys):
    line = run_recipe("dogscats", capsys)
    assert "dogscats is_cat efficientnet_lite0 fine_tune" in line and "train=200 valid=100" in line
    assert figure(line, "accuracy") >= 0.9, line


@pytest.mark.slow
@pytest.mark.parametrize("name, kwargs, expect", [
    ("camvid_tiny", {"arch": "xresnet18", "pretrained": False}, "unet(xresnet18, scratch)"),
    ("coco_tiny", {"arch": "xresnet18", "pretrained": False}, "xresnet18 (scratch)"),
    ("dogscats", {"arch": "xresnet18", "pretrained": False, "size": 64}, "xresnet18 from scratch 64px"),
    ("transfer", {}, "xresnet18 scratch="),
])
def test_recipe_runs_from_scratch_with_another_arch(name, kwargs, expect, capsys):
    assert expect in run_recipe(name, capsys, **kwargs)
