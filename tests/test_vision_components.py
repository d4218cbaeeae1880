"""Every vision component follows the core contract: parameters from __init__, clone, records, repr; and the
examples in the vision modules' docstrings run."""
from __future__ import annotations

import inspect
import json

import numpy as np
import pytest
import torch

import pipekit.vision  # noqa: F401  (registers the vision classes)
from pipekit.core import Component
from pipekit.core.component import param_names
from pipekit.core.errors import ParameterError
from pipekit.core.registry import registered

# the parameters a class needs when its __init__ has required ones
REQUIRED = {"Resize": {"size": (32, 48)}, "CropPad": {"size": 16}, "RandomResizedCrop": {"size": 24},
            "Normalize": {"mean": [0.5], "std": [0.25]}}
VISION = {name.rsplit(".", 1)[1]: cls for name, cls in registered().items()
          if name.startswith("pipekit.vision.") and isinstance(cls, type) and issubclass(cls, Component)}


def _build(cls):
    return cls(**REQUIRED.get(cls.__name__, {}))


def test_the_vision_components_are_registered():
    assert {"AugmentSettings", "BatchAugment", "RandomCrop", "Flip", "FlipVert", "Rotate", "Zoom", "Warp",
            "Brightness", "Contrast", "PixelAccuracy", "Resize", "ImageBlock", "BBoxBlock"} <= set(VISION)


@pytest.mark.parametrize("name", sorted(VISION))
def test_parameters_clone_record_and_repr(name):
    cls = VISION[name]
    if inspect.isabstract(cls) or cls.__name__ in ("ItemTransform", "Sampler", "AffineSampler", "LightingSampler"):
        pytest.skip("a base class")
    obj = _build(cls)
    params = obj.get_params(deep=False)
    assert list(params) == param_names(cls)
    again = cls(**params)
    assert repr(again) == repr(obj) and again.get_params(deep=False) == params  # normalising twice changes nothing
    assert not obj.clone().is_fitted and repr(obj.clone()) == repr(obj)
    rec = json.loads(json.dumps(obj.to_record()))
    back = Component.from_record(rec)
    assert type(back) is cls and repr(back) == repr(obj)
    assert back.get_params(deep=False) == params, "a record must give back the same parameters, types included"


@pytest.mark.parametrize("cls, bad", [
    ("Rotate", {"max_deg": -1}), ("Zoom", {"min_zoom": 2.0, "max_zoom": 1.5}), ("Warp", {"magnitude": 1.0}),
    ("Flip", {"p": 1.5}), ("FlipVert", {"p": -0.1}), ("Brightness", {"max_lighting": 1.0}),
    ("Contrast", {"p": "often"}), ("RandomCrop", {"ratio": (2.0, 1.0)}), ("Resize", {"size": 0}),
    ("CropPad", {"size": (3, 4, 5)}), ("Normalize", {"std": [0.0]}), ("PixelAccuracy", {"ignore_index": 0.5}),
    ("BBoxBlock", {"img_size": (128,)}), ("PointBlock", {"img_size": (0, 5)}), ("MaskBlock", {"codes": []}),
])
def test_bad_parameters_raise_a_parameter_error_naming_them(cls, bad):
    with pytest.raises(ParameterError, match=rf"{cls}: {next(iter(bad))}="):
        VISION[cls](**{**REQUIRED.get(cls, {}), **bad})


def test_samplers_draw_the_same_for_the_same_stream_only():
    for cls in ("RandomCrop", "Flip", "FlipVert", "Rotate", "Zoom", "Warp"):
        s = VISION[cls](**({"p": 0.5} if "p" in param_names(VISION[cls]) else {"min_scale": 0.5}))
        a, b = (s.matrices(8, np.random.default_rng(k), (40, 40), (32, 32)) for k in (0, 0))
        c = s.matrices(8, np.random.default_rng(1), (40, 40), (32, 32))
        assert a.shape == (8, 3, 3) and np.array_equal(a, b) and not np.array_equal(a, c), cls
    for cls in ("Brightness", "Contrast"):
        s = VISION[cls](p=0.5)
        (sa, ha), (sb, hb), (sc, hc) = (s.lighting(8, np.random.default_rng(k)) for k in (0, 0, 1))
        assert np.array_equal(sa, sb) and np.array_equal(ha, hb) and not (np.array_equal(sa, sc) and
                                                                           np.array_equal(ha, hc)), cls


def test_segmentation_metrics_take_label_indices_a_mask_can_hold():
    from pipekit.core import ParameterError
    from pipekit.vision import DiceMulti, ForegroundAcc, PixelAccuracy

    for make, name in ((DiceMulti, "ignore_index"), (PixelAccuracy, "ignore_index"), (ForegroundAcc, "bkg_idx")):
        assert getattr(make(**{name: 30}), name) == 30
        for bad in (10**30, -(10**25), 1.5, "30"):
            with pytest.raises(ParameterError, match=rf"{make.__name__}: {name}=.* is not accepted; expected an integer"):
                make(**{name: bad})


def test_pixel_accuracy_is_a_metric_instance_and_a_factory():
    from pipekit.metrics import MeanMetric
    from pipekit.vision import PixelAccuracy, pixel_accuracy

    assert isinstance(pixel_accuracy, MeanMetric) and pixel_accuracy.ignore_index is None
    assert pixel_accuracy.name == "pixel_accuracy" and pixel_accuracy.greater_is_better
    configured = pixel_accuracy(ignore_index=2)
    assert isinstance(configured, PixelAccuracy) and configured.ignore_index == 2 and pixel_accuracy.ignore_index is None
    pred = torch.zeros(2, 3, 2, 2)
    pred[:, 1] = 1  # class 1 everywhere
    targ = torch.tensor([[[1, 1], [2, 0]], [[1, 2], [2, 2]]])
    assert float(pixel_accuracy(pred, targ)) == pytest.approx(3 / 8)
    # pooled over pixels, not averaged over batches: the second batch has 1 kept pixel, the first 3
    m = pixel_accuracy(ignore_index=2)
    m.reset()
    m.accumulate(pred[:1], targ[:1], None, 1)
    m.accumulate(pred[1:], targ[1:], None, 1)
    assert m.value == pytest.approx(3 / 4)
