"""The vision recipes run end to end (quick mode: a few batches) and print their result line.

The recipes fine-tune ImageNet weights by default; the ones that can also train another architecture from
scratch run once more that way (marked `slow`: deselect with -m "not slow"). The book's chapter-1 model keeps
its promise even in quick mode.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
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


def test_coco_tiny_cross_validation_validates_every_photo_once(capsys):
    line = run_recipe("coco_tiny", capsys, folds=2)
    assert "largest-object efficientnet_lite2 (pretrained) 64px 2-fold" in line
    assert "valid photos 24+24 of 48" in line  # the quick subset, every photo validated once
    per_fold = [float(v) for v in line.split("per fold accuracy ")[1].split(",")[0].split()]
    assert len(per_fold) == 2 and figure(line, "accuracy") == pytest.approx(sum(per_fold) / 2, abs=1e-3)
    with pytest.raises(ValueError, match="folds=1"):
        run_recipe("coco_tiny", capsys, folds=1)


@pytest.mark.parametrize("probe, how", [("linear_probe", "linear probe"), ("box_probe", "box probe")])
def test_coco_tiny_probes_on_the_frozen_features(probe, how, capsys):
    line = run_recipe("coco_tiny", capsys, folds=2, **{probe: True})
    assert f"efficientnet_lite2 (pretrained, {how}) 64px 2-fold" in line and "valid photos 24+24 of 48" in line
    per_fold = [float(v) for v in line.split("per fold accuracy ")[1].split(",")[0].split()]
    assert figure(line, "accuracy") == pytest.approx(sum(per_fold) / 2, abs=1e-3)
    for wrong in ({"multilabel": True}, {"pretrained": False}):
        with pytest.raises(ValueError, match="linear_probe and box_probe need"):
            run_recipe("coco_tiny", capsys, **{probe: True}, **wrong)


def test_the_probe_learns_from_the_training_rows_only():
    mod = recipe_module()
    rng = np.random.default_rng(0)
    labels = np.array(["chair"] * 30 + ["book"] * 20 + ["vase"] * 10)
    centres = {"chair": 0.0, "book": 5.0, "vase": -5.0}
    feats = np.stack([rng.normal(centres[v], 0.3, size=8) for v in labels])
    valid = np.array([0, 1, 2, 30, 31, 50])  # 3 chairs, 2 books, 1 vase
    loss, acc, baseline = mod.probe(feats, labels, valid, c=1.0)
    assert acc == 1.0 and baseline == 0.5 and loss < 0.5  # the training majority (chair) is half the valid rows
    wrong = labels.copy()
    wrong[valid] = "vase"  # the valid labels only score: the fit and its predictions do not change
    _, acc_wrong, _ = mod.probe(feats, wrong, valid, c=1.0)
    assert acc_wrong == pytest.approx(1 / 6)


def test_cells_are_labelled_by_the_largest_box_over_them():
    mod = recipe_module()
    table = mod.photos()
    cells = mod.cell_labels(table, 10)
    assert cells.shape == (200, 2, 10, 10)
    np.testing.assert_array_equal(cells[:, 1], cells[:, 0][:, :, ::-1])  # the mirror image's cells, mirrored
    # the largest object covers the centre of some cell in 188 of the 200 photos (in the others it covers no
    # cell's centre), and no category is made up
    largest = table["largest"].to_numpy()
    assert sum(largest[n] in set(cells[n, 0].ravel()) for n in range(200)) == 188
    assert set(cells.ravel()) == set(largest.tolist()) | {"background"}


def test_the_box_probe_learns_from_the_training_rows_only():
    mod = recipe_module()
    rng = np.random.default_rng(0)
    labels = np.array(["chair"] * 12 + ["book"] * 8 + ["vase"] * 4)
    code = {"background": 0, "chair": 1, "book": 2, "vase": 3}
    # 2x2 cells per photo and mirror: the largest object fills three cells, the fourth is background
    cells = np.empty((len(labels), 2, 2, 2), dtype=object)
    cells[:] = labels[:, None, None, None]
    cells[:, :, 1, 1] = "background"
    maps = rng.normal(0, 0.2, size=(len(labels), 2, 4, 2, 2))
    for n in range(len(labels)):
        for f in range(2):
            for i in range(2):
                for j in range(2):
                    maps[n, f, code[cells[n, f, i, j]], i, j] += 3.0
    valid = np.array([0, 1, 12, 13, 20, 21])
    loss, acc, baseline = mod.fit_box_probe(maps, cells, labels, valid, c=1.0)
    assert acc == 1.0 and baseline == pytest.approx(2 / 6) and loss < 0.5
    wrong = labels.copy()
    wrong[valid] = "vase"  # the valid labels only score
    assert mod.fit_box_probe(maps, cells, wrong, valid, c=1.0)[1] == pytest.approx(2 / 6)


def recipe_module():
    spec = importlib.util.spec_from_file_location("recipe_coco_box", ROOT / "recipes" / "coco_tiny.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
@pytest.mark.parametrize("name, kwargs, expect", [
    ("camvid_tiny", {"arch": "xresnet18", "pretrained": False}, "unet(xresnet18, scratch)"),
    ("coco_tiny", {"arch": "xresnet18", "pretrained": False}, "xresnet18 (scratch)"),
    ("dogscats", {"arch": "xresnet18", "pretrained": False, "size": 64}, "xresnet18 from scratch 64px"),
    ("transfer", {}, "xresnet18 scratch="),
])
def test_recipe_runs_from_scratch_with_another_arch(name, kwargs, expect, capsys):
    assert expect in run_recipe(name, capsys, **kwargs)
