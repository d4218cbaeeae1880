"""vision_learner and unet_learner: an image body with a pooled head (or a U-Net decoder), ready to train.

>>> learn = vision_learner(dls, "xresnet18", metrics=accuracy)          # doctest: +SKIP
>>> learn.fine_tune(2)                                                 # doctest: +SKIP
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pipekit.core.errors import DataError, ParameterError
from pipekit.core.validate import Interval
from pipekit.learn import CrossEntropyLossFlat, Learner, model_weights
from pipekit.metrics import MeanMetric
from pipekit.vision.models import ARCHS, UNet, body_features, create_head, unet, vision_model
from pipekit.vision.transforms import Normalize

__all__ = ["vision_learner", "unet_learner", "load_body_weights", "PixelAccuracy", "pixel_accuracy"]


def _image_channels(dls: Any) -> int:
    blocks = getattr(dls, "blocks", ())
    if blocks and blocks[0].geometry == "image":
        return 1 if getattr(blocks[0], "cls", "RGB") == "L" else 3
    x = dls.one_batch()[0]
    return int(x.shape[1]) if x.is_floating_point() else int(x.shape[-1])


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    if not path.exists():
        raise FileNotFoundError(f"pretrained={str(path)!r}: no such file; give a .pipekit (written by learn.save), "
                                ".safetensors or .pth weights file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    if path.suffix == ".pipekit":  # a checkpoint (learn.save) or an export
        return model_weights(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # an unsafe pickle or a damaged file
        raise DataError(f"pretrained={str(path)!r} cannot be read as a weights file without running code: {e}") from e
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]  # a pipekit checkpoint (learn.save)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DataError(f"pretrained={str(path)!r} does not hold a state dict of tensors")
    return state


def load_body_weights(body: nn.Module, path: str | os.PathLike, prefixes: Sequence[str] = ("0.", "encoder.", "")) -> int:
    """Load the body part of a saved model into ``body``; returns the number of tensors loaded.

    Works with files of an ``XResNet``, a ``vision_learner`` model (body is child ``0``), a U-Net
    (``encoder.``) or a bare body. A first convolution saved for another number of input channels is
    adapted (averaged or repeated), so a grey-image model can start a colour one and back.
    """
    state = _read_state(Path(path))
    target = body.state_dict()
    best: dict[str, torch.Tensor] = {}
    for pre in prefixes:
        cand = {k[len(pre):]: v for k, v in state.items() if k.startswith(pre) and k[len(pre):] in target}
        if len(cand) > len(best):
            best = cand
    if len(best) < len(target) * 0.9:
        missing = [k for k in target if k not in best][:5]
        raise DataError(f"pretrained={str(path)!r} does not match this architecture: {len(best)} of {len(target)} "
                        f"body tensors found (missing e.g. {missing}); use the same arch that was saved")
    for k, v in best.items():
        t = target[k]
        if v.shape != t.shape:
            if v.ndim == 4 and v.shape[0] == t.shape[0] and v.shape[2:] == t.shape[2:]:
                v = v.mean(1, keepdim=True).repeat(1, t.shape[1], 1, 1) * (v.shape[1] / t.shape[1])
            else:
                raise DataError(f"pretrained weights {k}: shape {tuple(v.shape)} but the model needs {tuple(t.shape)}")
        best[k] = v
    body.load_state_dict({**target, **best})
    return len(best)


def _add_normalize(dls: Any, n_in: int) -> None:
    """Add per-channel normalisation measured on a training batch when the pipeline has none."""
    loaders = [dl for dl in getattr(dls, "loaders", []) if hasattr(dl, "batch_tfms")]
    if not loaders or any(isinstance(t, Normalize) for t in loaders[0].batch_tfms):
        return
    dl = loaders[0]
    raw = dl.dataset.gather(np.arange(min(len(dl.dataset), 256)))[0]
    if raw.dtype != torch.uint8:
        return
    flat = raw.reshape(-1, raw.shape[-1]).float() / 255
    norm = Normalize(flat.mean(0).tolist(), flat.std(0).clamp_min(1e-3).tolist())
    pipelines = {id(d.batch_tfms): d.batch_tfms for d in loaders}  # loaders often share one pipeline
    for pipe in pipelines.values():
        pipe.tfms = sorted([*pipe.tfms, norm], key=lambda t: t.order)
    recipe = getattr(dls, "recipe", None)
    if recipe is not None and isinstance(getattr(recipe, "batch_tfms_", None), list):
        recipe.batch_tfms_.append(norm)  # so export and test_dl normalise the same way


def _torch_adapter(model: nn.Module) -> tuple[nn.Module, int]:
    """Body of a torchvision/timm classifier (everything before global pooling) and its width."""
    if hasattr(model, "forward_features") and hasattr(model, "num_features"):  # timm
        class _Feat(nn.Module):
            def __init__(self, m: nn.Module):
                super().__init__()
                self.m = m

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return self.m.forward_features(x)

        return _Feat(model), int(model.num_features)
    children = list(model.children())
    for cut in range(len(children), 0, -1):
        if isinstance(children[cut - 1], (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
            body = nn.Sequential(*children[:cut - 1])
            return body, body_features(body)
    raise ParameterError(f"cannot find the pooling layer of {type(model).__name__} to cut its body; pass an arch name")


def vision_learner(dls: Any, arch: str | Callable | nn.Module = "xresnet18", n_out: int | None = None,
                   pretrained: bool | str | os.PathLike = False, normalize: bool = True, loss_func: Any = None,
                   metrics: Any = None, lr: float = 1e-3, lin_ftrs: Sequence[int] | None = (512,), ps: float = 0.5,
                   concat_pool: bool = True, cbs: Any = None, **kwargs: Any) -> Learner:
    """A Learner with ``arch``'s body and a new head (avg+max pooling, batch-norm, dropout, linear).

    ``arch``: ``'xresnet18'``, ``'xresnet34'``, ``'xresnet50'``, ``'simple_cnn'`` (or the builder function),
    or a torchvision/timm model instance (its body is cut; such learners cannot be exported).
    ``pretrained``: False, or a local weights file (``learn.save`` checkpoint, ``.safetensors``) of the same
    arch; then the body starts from it and is frozen (``fine_tune`` unfreezes it). Parameter groups
    are (body, head), so ``slice`` learning rates give the body the smaller one.
    """
    n_out, n_in = _n_out(dls, n_out, "vision_learner", "the data has no target block with a size"), _image_channels(dls)
    if isinstance(arch, nn.Module):
        if pretrained not in (False, None):
            raise ParameterError("pretrained= is for arch names; a model instance already carries its weights")
        body, nf = _torch_adapter(arch)
        model: nn.Module = nn.Sequential(body, create_head(nf, n_out, lin_ftrs, ps, concat_pool))
    else:
        name = arch if isinstance(arch, str) else getattr(arch, "__name__", "")
        if name not in ARCHS:
            raise ParameterError(f"arch={arch!r} is not known; use one of {sorted(ARCHS)} or a torch model instance")
        model = vision_model(name, n_out, n_in=n_in, lin_ftrs=list(lin_ftrs) if lin_ftrs else None, ps=ps,
                             concat_pool=concat_pool)
        _start_from(model[0], pretrained)
    if normalize:
        _add_normalize(dls, n_in)
    learn = Learner(dls, model, loss_func=loss_func, metrics=metrics, lr=lr, splitter=_body_head, cbs=cbs, **kwargs)
    if pretrained or isinstance(arch, nn.Module):
        learn.freeze()
    return learn


def _n_out(dls: Any, n_out: int | None, who: str, why: str) -> int:
    n_out = n_out if n_out is not None else getattr(dls, "c", None)
    if n_out is None:
        raise ParameterError(f"{who}: n_out was not given and {why}; pass n_out=")
    return n_out


def _start_from(body: nn.Module, pretrained: bool | str | os.PathLike) -> None:
    if pretrained is True:
        raise ParameterError("pretrained=True needs downloadable weights, which pipekit does not fetch; pass the "
                             "path of a weights file saved from a model of the same arch")
    if pretrained:
        load_body_weights(body, pretrained)


def _body_head(model: nn.Module) -> list[list[nn.Parameter]]:
    return [list(model[0].parameters()), list(model[1].parameters())]


def _encoder_decoder(model: UNet) -> list[list[nn.Parameter]]:
    enc = {id(p) for p in model.encoder.parameters()}
    return [list(model.encoder.parameters()), [p for p in model.parameters() if id(p) not in enc]]




class PixelAccuracy(MeanMetric):
    """Share of pixels whose predicted class (axis 1) is right, not counting pixels labelled
    ``ignore_index`` (void); pooled over every pixel of the set.

    >>> pixel_accuracy(torch.tensor([[[[0.0, 1.0]], [[1.0, 0.0]]]]), torch.tensor([[[1, 1]]])).item()
    0.5
    """

    param_constraints = {"ignore_index": Interval(None, None, integer=True, none_ok=True)}

    def __init__(self, ignore_index: int | None = None):
        self.ignore_index = ignore_index
        self.check_params()

    def batch_stats(self, pred: torch.Tensor, targ: torch.Tensor, loss: Any) -> tuple[Any, Any]:
        keep = targ != self.ignore_index if self.ignore_index is not None else torch.ones_like(targ, dtype=torch.bool)
        return ((pred.argmax(1) == targ) & keep).sum(), keep.sum()


#: ``metrics=pixel_accuracy``, or configured: ``pixel_accuracy(ignore_index=codes.index('Void'))``
pixel_accuracy = PixelAccuracy()


def unet_learner(dls: Any, arch: str = "xresnet18", n_out: int | None = None,
                 pretrained: bool | str | os.PathLike = False, normalize: bool = True, loss_func: Any = None,
                 metrics: Any = None, lr: float = 1e-3, cbs: Any = None, **kwargs: Any) -> Learner:
    """A Learner with a U-Net over ``arch``'s body for segmentation (one class score per pixel).

    Default loss: cross-entropy over the class axis. Parameter groups are (encoder, decoder).
    """
    n_out, n_in = _n_out(dls, n_out, "unet_learner", "the mask block has no codes"), _image_channels(dls)
    model = unet(arch, n_out=n_out, n_in=n_in)
    _start_from(model.encoder, pretrained)
    if normalize:
        _add_normalize(dls, n_in)
    learn = Learner(dls, model, loss_func=loss_func if loss_func is not None else CrossEntropyLossFlat(axis=1),
                    metrics=metrics, lr=lr, splitter=_encoder_decoder, cbs=cbs, **kwargs)
    if pretrained:
        learn.freeze()
    return learn
