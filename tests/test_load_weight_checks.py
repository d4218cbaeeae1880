"""What loading an export checks in its weights, and what that check costs: every stored tensor is tested for
numbers the model cannot predict with (NaN, inf, a float64 too large for the model's float32), in one fused pass
where all are finite, the tensor at fault named where one is not."""

import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import load, save
from test_models_helpers import mnist_eighth_learner

import pipekit
from pipekit.core import ExportError
from pipekit.learn import model_weights
from pipekit.learn.export import unusable_weights


@pytest.fixture(scope="module")
def cnn_export(tmp_path_factory):
    """An untrained small CNN on mnist_tiny (an eighth of it), exported: conv weights and batch-norm statistics."""
    learn = mnist_eighth_learner()
    learn.path = tmp_path_factory.mktemp("export")
    return learn.export("cnn.pipekit")


def _rewrite_weights(base: Path, out: Path, edit) -> Path:
    with zipfile.ZipFile(base) as z:
        files = {n: z.read(n) for n in z.namelist()}
    files["weights.safetensors"] = save(edit(dict(load(files["weights.safetensors"]))))
    with zipfile.ZipFile(out, "w") as z:
        for k, v in files.items():
            z.writestr(k, v)
    return out


def _middle_weight(w: dict) -> str:
    """A conv/linear weight that is neither the first nor the last of the file's floating-point tensors."""
    names = [k for k in sorted(w) if k.endswith("weight") and w[k].is_floating_point() and w[k].dim() > 1]
    return names[len(names) // 2]


def test_finite_weights_are_checked_without_a_test_per_tensor(cnn_export, monkeypatch):
    # every stored tensor was converted and tested element by element (torch.isfinite(v).all(), 112 times and 0.8 s
    # of a resnet18's 1.7 s load); finite weights now pass on one fused norm, with no isfinite call
    weights = model_weights(cnn_export)
    own = {k: torch.zeros_like(v) for k, v in weights.items()}
    calls = []
    real = torch.isfinite

    def counting(t, *args, **kwargs):
        calls.append(tuple(t.shape))
        return real(t, *args, **kwargs)

    monkeypatch.setattr(torch, "isfinite", counting)
    assert unusable_weights(own, weights) == []
    assert calls == [], f"{len(calls)} tensors tested one by one though every weight is finite"


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_a_weight_that_is_not_finite_is_refused_naming_it(cnn_export, tmp_path, bad):
    named = {}

    def edit(w):
        k = named["k"] = _middle_weight(w)
        w[k].view(-1)[-1] = bad
        return w

    path = _rewrite_weights(cnn_export, tmp_path / "bad.pipekit", edit)
    with pytest.raises(ExportError) as e:
        pipekit.load_learner(path)
    said = str(e.value)
    assert f"{named['k']!r} holds numbers that are not finite" in said, said
    assert said.count("holds numbers") == 1, said  # the other tensors are not blamed


def test_a_float64_weight_too_large_for_float32_is_refused_among_finite_ones(cnn_export):
    # stored in float64, finite there, inf once load_state_dict makes it the model's float32
    weights = model_weights(cnn_export)
    own = {k: torch.zeros_like(v) for k, v in weights.items()}
    k = _middle_weight(weights)
    weights[k] = weights[k].double()
    weights[k].view(-1)[0] = 1e300
    assert unusable_weights(own, weights) == [f"{k!r} holds numbers too large for the model's float32"]
    weights[k].view(-1)[0] = 1e30  # finite in float32 as well
    assert unusable_weights(own, weights) == []


def test_huge_but_finite_weights_still_load(cnn_export, tmp_path):
    # finite numbers whose sum (and float32 norm) overflow to inf: a check on a sum alone would refuse them
    named = {}

    def edit(w):
        k = named["k"] = _middle_weight(w)
        w[k] = torch.full_like(w[k], 3e38)
        return w

    path = _rewrite_weights(cnn_export, tmp_path / "huge.pipekit", edit)
    assert not torch.isfinite(load(zipfile.ZipFile(path).read("weights.safetensors"))[named["k"]].sum())
    loaded = pipekit.load_learner(path)
    assert bool((loaded.model.state_dict()[named["k"]] == 3e38).all())


def test_float64_weights_whose_norm_overflows_float64_are_finite():
    # a float64 model's weights near float64's limit: their norm is inf even in float64, each number is finite
    own = {"w": torch.zeros(8, dtype=torch.float64), "b": torch.zeros(2, dtype=torch.float64)}
    weights = {"w": torch.full((8,), 1e200, dtype=torch.float64), "b": torch.ones(2, dtype=torch.float64)}
    assert unusable_weights(own, weights) == []
    weights["b"][1] = float("nan")
    assert unusable_weights(own, weights) == ["'b' holds numbers that are not finite"]
