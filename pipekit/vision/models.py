"""Image models: XResNet (ResNet with the improved stem and shortcut), torchvision's ResNets (its layout and names,
random weights), bodies cut from any model, a pooled head, and a U-Net on any body.

Every builder is registered, so learners using them export and reload without pickled code.

>>> import torch
>>> m = xresnet18(n_in=1, n_out=10)
>>> m(torch.zeros(2, 1, 64, 64)).shape
torch.Size([2, 10])
"""
from __future__ import annotations

import functools
import copy
import inspect
import os
import re
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol, Union, cast, runtime_checkable

import torch
import torch.nn.functional as F
from torch import nn

from pipekit.core.errors import FieldError, ParameterError, UnknownNameError
from pipekit.core.registry import lookup
from pipekit.core.validate import (POSITIVE_SIZES, Y_RANGE, Interval, Is, Options, check, check_arguments,
                                   one_of_two_names, shown)
from pipekit.learn.hooks import dummy_eval, leaf_modules, retry_sizes
from pipekit.learn.nets import (BatchNorm, ConcatPool2d, ConvLayer, SigmoidRange, check_stored_layers, linear_layers,
                                simple_cnn)
from pipekit.learn.registry import arch_spec, register_arch, registered_archs, set_arch_spec

__all__ = ["XResNet", "XResNetBody", "xresnet18", "xresnet34", "xresnet50", "ResNet", "ResNetBody", "BasicBlock",
           "Bottleneck", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "RESNET_ARCHS", "UNet", "unet",
           "simple_cnn", "create_head", "AdaptiveConcatPool2d",
           "create_body", "vision_model", "body_features", "probe_body", "default_cut", "vision_archs", "MultiScaleEncoder",
           "LayerGrouped", "ModelMeta", "model_meta"]

#: ``cut=``: an index into the model's children (the body is the children before it) or a function model -> body
Cut = Union[int, Callable[[nn.Module], nn.Module], None]


def conv_bn(ni: int, nf: int, ks: int = 3, stride: int = 1, act: bool = True, zero_bn: bool = False) -> nn.Sequential:
    """conv -> batch-norm (-> ReLU); ``zero_bn`` starts the BN scale at 0 so a residual block starts as identity
    (a :class:`~pipekit.learn.ConvLayer`)."""
    return ConvLayer(ni, nf, ks, stride=stride, norm_type="batch_zero" if zero_bn else "batch",
                     act_cls=nn.ReLU if act else None)


class ResBlock(nn.Module):
    """Basic (expansion 1) or bottleneck (expansion 4) residual block.

    The shortcut of a strided block average-pools before its 1x1 conv (instead of a strided 1x1 conv
    that would drop three quarters of the activations). ``ks``: the kernel size of its convolutions that are not
    1x1 (odd, so the padding keeps the size).

    >>> import torch
    >>> from pipekit.vision import ResBlock
    >>> tuple(ResBlock(1, 16, 32, stride=2)(torch.zeros(2, 16, 8, 8)).shape)  # basic block, halving the size
    (2, 32, 4, 4)
    >>> tuple(ResBlock(4, 16, 16)(torch.zeros(2, 64, 8, 8)).shape)  # bottleneck: 16 * 4 channels in and out
    (2, 64, 8, 8)
    >>> x = torch.randn(2, 8, 4, 4)
    >>> torch.allclose(ResBlock(1, 8, 8)(x), (x + 1e-3).relu())  # its last batch norm starts at scale 0, shift 1e-3
    True
    """

    def __init__(self, expansion: int, ni: int, nh: int, stride: int = 1, ks: int = 3):
        super().__init__()
        nf, ni = nh * expansion, ni * expansion
        if expansion == 1:
            self.convs = nn.Sequential(conv_bn(ni, nh, ks, stride=stride), conv_bn(nh, nf, ks, act=False, zero_bn=True))
        else:
            self.convs = nn.Sequential(conv_bn(ni, nh, 1), conv_bn(nh, nh, ks, stride=stride),
                                       conv_bn(nh, nf, 1, act=False, zero_bn=True))
        self.idconv = nn.Identity() if ni == nf else conv_bn(ni, nf, 1, act=False)
        self.pool = nn.Identity() if stride == 1 else nn.AvgPool2d(2, ceil_mode=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.convs(x) + self.idconv(self.pool(x)))


def _adapt_first_conv(w: torch.Tensor, n_in: int) -> torch.Tensor:
    """Filters ``w`` (out, c, kh, kw) of a first convolution saved for ``c`` input channels, for ``n_in`` channels, by
    fastai's rule (its ``_load_pretrained_weights``): one channel gets the sum over the saved ones (a grey image
    gives the activations of the same colour image); fewer channels keep the first ones, scaled by ``c / n_in`` (2 of
    3 colours: x1.5); more channels keep the saved ones and start the others at zero (an extra alpha, depth or
    infrared channel adds nothing until trained). A grey model's one channel is spread evenly over ``n_in``
    (divided by ``n_in``), so a colour model started from it sees a grey image as the grey model did.

    >>> w = torch.ones(1, 3, 1, 1)
    >>> [_adapt_first_conv(w, n).flatten().tolist() for n in (1, 2, 4)]
    [[3.0], [1.5, 1.5], [1.0, 1.0, 1.0, 0.0]]
    >>> [round(v, 4) for v in _adapt_first_conv(torch.ones(1, 1, 1, 1), 3).flatten().tolist()]
    [0.3333, 0.3333, 0.3333]
    """
    c = w.shape[1]
    if n_in == c:
        return w
    if n_in == 1:
        return w.sum(1, keepdim=True)
    if c == 1:
        return w.repeat(1, n_in, 1, 1) / n_in
    if n_in < c:
        return w[:, :n_in] * (c / n_in)
    return torch.cat([w, w.new_zeros(w.shape[0], n_in - c, *w.shape[2:])], 1)


#: a batch-norm momentum (PyTorch's: the weight of each new batch in the running statistics)
BN_MOMENTUM = Interval(0, 1, none_ok=True)


def _set_bn_momentum(module: nn.Module, momentum: float | None) -> None:
    """Set every batch norm of ``module`` to ``momentum`` (None: leave them as built)."""
    if momentum is None:
        return
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.momentum = float(momentum)


def bn_momentum_of(module: nn.Module) -> float | None:
    """The momentum every batch norm of ``module`` shares, else None (none, or several values)."""
    values = {m.momentum for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)}
    only = next(iter(values)) if len(values) == 1 else None
    return None if only is None else float(only)


def bn_momentum_option(who: str, options: Mapping[str, Any]) -> float | None:
    """The ``bn_momentum=`` keyword of a builder that takes it (its only other keyword), checked. It is a keyword
    the builder records only when given, so the spec of a model built without it is what it always was."""
    check_arguments(who, dict(options), ["bn_momentum"])
    return check(who, bn_momentum=(options.get("bn_momentum"), BN_MOMENTUM))["bn_momentum"]


def record_bn_momentum(model: nn.Module, body: nn.Module) -> None:
    """Record in ``model``'s architecture spec (what an export stores) the momentum ``body``'s batch norms were set
    to after building (a pretrained EfficientNet-Lite's 0.01), when ``model``'s builder takes ``bn_momentum``: the
    rebuilt model then updates its running statistics as this one does. PyTorch's 0.1, what every builder gives,
    is left out, so the spec of a model whose momentum was never changed stays as it was."""
    spec = arch_spec(model)
    if spec is None:
        return
    try:
        builder = lookup(spec[0], "arch")
    except UnknownNameError:
        return
    if not getattr(builder, "takes_bn_momentum", False):
        return
    config = {k: v for k, v in spec[1].items() if k != "bn_momentum"}
    momentum = bn_momentum_of(body)
    if momentum is not None and momentum != 0.1:
        config["bn_momentum"] = momentum
    set_arch_spec(model, spec[0], config)


@runtime_checkable
class LayerGrouped(Protocol):
    """A body that splits its parameters into layer groups, earliest layers first (``ResNetBody``, ``XResNetBody``,
    ``EfficientNetLiteBody``): ``vision_learner`` and ``unet_learner`` give each group its own learning rate
    (``lr=slice(lo, hi)``) and ``freeze`` them together.

    >>> from torch import nn
    >>> from pipekit.vision import LayerGrouped, resnet18
    >>> class TwoPart(nn.Sequential):
    ...     def layer_groups(self):
    ...         return [list(self[0].parameters()), list(self[1].parameters())]
    >>> body = TwoPart(nn.Linear(2, 2), nn.Linear(2, 2))
    >>> isinstance(body, LayerGrouped), isinstance(nn.ReLU(), LayerGrouped)
    (True, False)
    >>> isinstance(resnet18().cut_body(), LayerGrouped)
    True
    """

    def layer_groups(self) -> list[list[nn.Parameter]]: ...


class XResNetBody(nn.Sequential):
    """An XResNet's body: the stem, its max-pool and the residual stages, in order.

    >>> import torch
    >>> from pipekit.vision import xresnet18
    >>> body = xresnet18(n_in=1)[0]
    >>> type(body).__name__, len(body), tuple(body(torch.zeros(1, 1, 64, 64)).shape)
    ('XResNetBody', 8, (1, 512, 2, 2))
    """

    def layer_groups(self) -> list[list[nn.Parameter]]:
        """Two parameter groups for discriminative learning rates, as fastai splits an XResNet (its
        ``_xresnet_split``): the stem's three convolutions, then the max-pool and every residual stage. A body
        sliced to the stem or less is one group.

        >>> [len(g) for g in xresnet18()[0].layer_groups()]
        [9, 57]
        """
        children = list(self)
        groups = [[p for m in children[:3] for p in m.parameters()],
                  [p for m in children[3:] for p in m.parameters()]]
        groups = [g for g in groups if g]
        return groups if groups else [list(self.parameters())]


@register_arch("xresnet")
class XResNet(nn.Sequential):
    """``nn.Sequential(body, head)``: a 3-conv stem, max-pool, four residual stages; avg-pool + linear head.

    ``layers`` is the number of blocks per stage ((2,2,2,2) for 18, (3,4,6,3) for 34 and 50),
    ``expansion`` 1 (basic blocks) or 4 (bottlenecks), ``widths`` the stage widths. ``ks`` (odd, default 3) is the
    kernel size of the stem's convolutions, its max-pool and the blocks' convolutions that are not 1x1, as fastai's
    ``XResNet(ks=...)``.

    >>> import torch
    >>> from pipekit.vision import XResNet
    >>> model = XResNet(expansion=1, layers=(1, 1), n_in=1, n_out=4, widths=(16, 32))  # a small two-stage net
    >>> tuple(model(torch.zeros(2, 1, 32, 32)).shape), model[1][-1].in_features
    ((2, 4), 32)
    """

    def __init__(self, expansion: int = 1, layers: Sequence[int] = (2, 2, 2, 2), n_in: int = 3, n_out: int = 1000,
                 p: float = 0.0, widths: Sequence[int] = (64, 128, 256, 512), ks: int = 3):
        check("XResNet", expansion=(expansion, Options(1, 4)), n_in=(n_in, Interval(1, None, integer=True)),
              n_out=(n_out, Interval(1, None, integer=True)), ks=(ks, _ODD_KS),
              widths=(widths, Is(lambda w: len(w) == len(layers), f"one width per stage ({len(layers)} stages)")))
        stem_w = [n_in, 32, 32, 64]
        stem = [conv_bn(stem_w[i], stem_w[i + 1], ks, stride=2 if i == 0 else 1) for i in range(3)]
        blocks: list[nn.Module] = []
        for i, (n, ni, nh) in enumerate(zip(layers, [64 // expansion, *widths[:-1]], widths)):
            first = ResBlock(expansion, ni, nh, stride=1 if i == 0 else 2, ks=ks)
            blocks.append(nn.Sequential(first, *[ResBlock(expansion, nh, nh, ks=ks) for _ in range(n - 1)]))
        body = XResNetBody(*stem, nn.MaxPool2d(ks, stride=2, padding=ks // 2), *blocks)
        head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(p), nn.Linear(widths[-1] * expansion, n_out))
        super().__init__(body, head)
        for m in self.modules():  # Kaiming-normal convolutions and head, every bias 0 (fastai's init_cnn)
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            if isinstance(bias := getattr(m, "bias", None), torch.Tensor):
                nn.init.zeros_(bias)

    @classmethod
    def check_stored(cls, config: Mapping[str, Any], shapes: Mapping[str, Sequence[int]], field: str) -> None:
        """Read by ``load_learner`` before the net is built: the stored ``layers`` (blocks per stage) must be the
        residual blocks the stored weights hold (``0.<4 + stage>.<block>.*``), as every requested block is built
        even on the meta device (a crafted 5000 took 6 s and 300 MB before the weights were compared).

        >>> XResNet.check_stored({"layers": [1, 1]}, {"0.4.0.convs.0.0.weight": (8, 64, 3, 3),
        ...                                           "0.5.0.convs.0.0.weight": (8, 8, 3, 3)}, "arch.config")
        >>> XResNet.check_stored({"layers": [100000, 1]}, {"0.4.0.convs.0.0.weight": (8, 64, 3, 3),
        ...                                                "0.5.0.convs.0.0.weight": (8, 8, 3, 3)}, "arch.config")
        Traceback (most recent call last):
        ...
        pipekit.core.errors.FieldError: field 'arch.config.layers' has blocks per stage [100000, 1], but the stored weights hold [1, 1]; the file is damaged or was not written by pipekit
        """
        layers = config.get("layers", (2, 2, 2, 2))
        if not POSITIVE_SIZES.accepts(layers):
            raise FieldError(f"{field}.layers", f"must be a list of positive block counts, got {str(layers)[:60]!r}; "
                                                "the file is damaged or was not written by pipekit")
        blocks: dict[int, set[int]] = {}
        for k in shapes:
            if (m := re.match(r"0\.(\d+)\.(\d+)\.", k)) is not None and int(m.group(1)) >= 4:
                blocks.setdefault(int(m.group(1)) - 4, set()).add(int(m.group(2)))
        stored = [len(blocks.get(i, ())) for i in range(max(blocks, default=-1) + 1)]
        if list(layers) != stored:
            said = str(list(layers)) if len(layers) <= 8 else f"{len(layers)} stages"
            raise FieldError(f"{field}.layers", f"has blocks per stage {said[:80]}, but the stored weights hold "
                                                f"{stored[:8]}{' ...' if len(stored) > 8 else ''}; the file is "
                                                "damaged or was not written by pipekit")


#: an odd kernel size, so a convolution's padding keeps the feature map's size
_ODD_KS = Is(lambda k: isinstance(k, int) and not isinstance(k, bool) and k >= 1 and k % 2 == 1,
             "an odd kernel size (1, 3, 5, 7...)")

#: fastai's ``XResNet`` options that pipekit's XResNet has no counterpart for
_FASTAI_XRESNET_OPTIONS = ("stem_szs", "widen", "sa", "act_cls", "ndim", "stride", "groups", "reduction", "nh1",
                           "nh2", "dw", "g2", "norm_type", "pool", "pool_first")


def _xresnet(who: str, expansion: int, layers: Sequence[int], n_in: int, n_out: int, p: float, ks: int,
             fastai: dict[str, Any]) -> XResNet:
    """An XResNet from a factory's arguments and the fastai spellings it takes: ``c_in`` (the input channels, pipekit's
    ``n_in``) and ``pretrained=False``; fastai's other XResNet options are refused by name."""
    pretrained, c_in = fastai.pop("pretrained", False), fastai.pop("c_in", None)
    options = [k for k in fastai if k in _FASTAI_XRESNET_OPTIONS]
    if options:
        raise ParameterError(f"{who}: {', '.join(k + '=' for k in options)} {'is an option' if len(options) == 1 else 'are options'} "
                             "of fastai's XResNet that pipekit's does not have (its stem is 32-32-64 wide, its blocks "
                             "plain ResNet blocks with ReLU, its stages 64-128-256-512 wide); leave "
                             f"{', '.join(options)} out")
    check_arguments(who, fastai, ["n_in", "n_out", "p", "ks", "c_in", "pretrained"])
    check(who, ks=(ks, _ODD_KS))
    if pretrained is not False and pretrained is not None:
        raise ParameterError(f"{who}: pretrained={shown(pretrained)}: pipekit ships no weights for XResNet, which "
                             "starts from random weights (pretrained=False, the default); for ImageNet weights use "
                             "vision_learner(dls, \"efficientnet_lite0\"), for a weights file of this arch "
                             "vision_learner(dls, ..., pretrained=\"file.safetensors\")")
    n_in = one_of_two_names(who, "n_in", n_in, "c_in", c_in, 3)
    return XResNet(expansion, layers, n_in=n_in, n_out=n_out, p=p, ks=ks)


@register_arch("xresnet18")
def xresnet18(n_in: int = 3, n_out: int = 1000, p: float = 0.0, ks: int = 3, **fastai: Any) -> XResNet:
    """XResNet with 18 layers (basic blocks 2-2-2-2). ``ks``: the kernel size (see :class:`XResNet`). fastai's
    spellings are taken too: ``c_in`` for ``n_in``, and ``pretrained=False`` (pipekit ships no XResNet weights, so
    ``True`` is refused, saying so).

    >>> xresnet18(c_in=1, n_out=10)(torch.zeros(2, 1, 64, 64)).shape
    torch.Size([2, 10])
    """
    return _xresnet("xresnet18", 1, (2, 2, 2, 2), n_in, n_out, p, ks, fastai)


@register_arch("xresnet34")
def xresnet34(n_in: int = 3, n_out: int = 1000, p: float = 0.0, ks: int = 3, **fastai: Any) -> XResNet:
    """XResNet with 34 layers (basic blocks 3-4-6-3); the arguments are :func:`xresnet18`'s.

    >>> from pipekit.vision import xresnet34
    >>> model = xresnet34(n_in=1, n_out=2)
    >>> [len(stage) for stage in list(model[0])[4:]], model[0][0][0].in_channels, model[1][-1].out_features
    ([3, 4, 6, 3], 1, 2)
    """
    return _xresnet("xresnet34", 1, (3, 4, 6, 3), n_in, n_out, p, ks, fastai)


@register_arch("xresnet50")
def xresnet50(n_in: int = 3, n_out: int = 1000, p: float = 0.0, ks: int = 3, **fastai: Any) -> XResNet:
    """XResNet with 50 layers (bottleneck blocks 3-4-6-3); the arguments are :func:`xresnet18`'s.

    >>> from pipekit.vision import xresnet50
    >>> model = xresnet50()
    >>> sum(p.numel() for p in model.parameters()), model[1][-1].in_features  # bottlenecks: 512 * 4 features
    (25576264, 2048)
    """
    return _xresnet("xresnet50", 4, (3, 4, 6, 3), n_in, n_out, p, ks, fastai)


class BasicBlock(nn.Module):
    """torchvision's ResNet basic block (two 3x3 convs), with its attribute names, so its weights load by name.

    >>> import torch
    >>> from pipekit.vision.models import BasicBlock
    >>> block = BasicBlock(64, 64)
    >>> tuple(block(torch.zeros(1, 64, 8, 8)).shape), [n for n, _ in block.named_children()]
    ((1, 64, 8, 8), ['conv1', 'bn1', 'relu', 'conv2', 'bn2'])
    """

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class Bottleneck(nn.Module):
    """torchvision's ResNet bottleneck block (1x1, strided 3x3, 1x1 convs; ResNet v1.5), with its attribute names.

    >>> import torch
    >>> from pipekit.vision.models import Bottleneck
    >>> block = Bottleneck(64, 16)  # 16 channels inside, 16 * expansion out
    >>> Bottleneck.expansion, tuple(block(torch.zeros(1, 64, 8, 8)).shape), tuple(block.conv2.weight.shape)
    (4, (1, 64, 8, 8), (16, 16, 3, 3))
    """

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


class ResNetBody(nn.Sequential):
    """A ResNet's body (``conv1`` ... ``layer4``) under torchvision's names: a torchvision ResNet's state dict loads
    into it as it is (its ``fc`` left out).

    >>> import torch
    >>> from pipekit.vision import resnet18
    >>> body = resnet18(n_in=1).cut_body()
    >>> list(body._modules), tuple(body(torch.zeros(1, 1, 64, 64)).shape)
    (['conv1', 'bn1', 'relu', 'maxpool', 'layer1', 'layer2', 'layer3', 'layer4'], (1, 512, 2, 2))
    """

    def layer_groups(self) -> list[list[nn.Parameter]]:
        """Two parameter groups, as fastai splits a ResNet: the stem with ``layer1`` and ``layer2``, then ``layer3``
        and ``layer4``. A body sliced before ``layer3`` is one group.

        >>> [len(g) for g in resnet18().cut_body().layer_groups()]
        [30, 30]
        """
        names = list(self._modules)
        if "layer3" not in names[1:]:
            return [list(self.parameters())]
        split = names.index("layer3")
        children = list(self)
        return [[p for m in children[:split] for p in m.parameters()],
                [p for m in children[split:] for p in m.parameters()]]


class ResNet(nn.Module):
    """torchvision's ResNet, its layout and parameter names included (``conv1``, ``bn1``, ``relu``, ``maxpool``,
    ``layer1``..``layer4`` of ``BasicBlock``/``Bottleneck`` with ``downsample``, ``avgpool``, ``fc``): the book's
    ``resnet18`` ... ``resnet152``, built by the factories of those names with random weights.

    ``n_in`` input channels (``conv1``), ``n_out`` outputs (``fc``). Its body (``cut_body``, what ``vision_learner``
    cuts by default) is every child before ``avgpool``, fastai's ``cut=-2``, under the same names.

    >>> import torch
    >>> from pipekit.vision.models import BasicBlock, ResNet
    >>> model = ResNet(BasicBlock, (1, 1, 1, 1), n_in=1, n_out=10)  # one block per stage
    >>> tuple(model(torch.zeros(2, 1, 32, 32)).shape), model.fc.in_features, type(model.cut_body()).__name__
    ((2, 10), 512, 'ResNetBody')
    """

    def __init__(self, block: type[BasicBlock] | type[Bottleneck], layers: Sequence[int], n_in: int = 3,
                 n_out: int = 1000):
        super().__init__()
        check("ResNet", n_in=(n_in, Interval(1, None, integer=True)), n_out=(n_out, Interval(1, None, integer=True)),
              layers=(layers, Is(lambda v: POSITIVE_SIZES.accepts(v) and len(v) == 4,
                                 "four positive block counts, one per stage")))
        self.inplanes = 64
        self.conv1 = nn.Conv2d(n_in, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, n_out)
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def _make_layer(self, block: type[BasicBlock] | type[Bottleneck], planes: int, blocks: int,
                    stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride=stride, bias=False),
                                       nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def cut_body(self) -> ResNetBody:
        """The children before ``avgpool`` (the same modules, not copies), under their names."""
        children = list(self.named_children())
        return ResNetBody(OrderedDict(children[:[n for n, _ in children].index("avgpool")]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


@register_arch("resnet18")
def resnet18(n_in: int = 3, n_out: int = 1000) -> ResNet:
    """torchvision's ResNet-18 (basic blocks 2-2-2-2; 11,689,512 parameters with 1000 outputs), random weights.

    >>> sum(p.numel() for p in resnet18().parameters())
    11689512
    """
    return ResNet(BasicBlock, (2, 2, 2, 2), n_in=n_in, n_out=n_out)


@register_arch("resnet34")
def resnet34(n_in: int = 3, n_out: int = 1000) -> ResNet:
    """torchvision's ResNet-34 (basic blocks 3-4-6-3; 21,797,672 parameters with 1000 outputs), random weights.

    >>> import torch
    >>> from pipekit.vision import resnet34
    >>> model = resnet34(n_out=2).eval()
    >>> [len(model.layer1), len(model.layer2), len(model.layer3), len(model.layer4)]
    [3, 4, 6, 3]
    >>> tuple(model(torch.zeros(1, 3, 32, 32)).shape)
    (1, 2)
    """
    return ResNet(BasicBlock, (3, 4, 6, 3), n_in=n_in, n_out=n_out)


@register_arch("resnet50")
def resnet50(n_in: int = 3, n_out: int = 1000) -> ResNet:
    """torchvision's ResNet-50 (bottlenecks 3-4-6-3; 25,557,032 parameters with 1000 outputs), random weights.

    >>> from pipekit.vision import resnet50
    >>> model = resnet50()
    >>> sum(p.numel() for p in model.parameters()), type(model.layer1[0]).__name__, model.fc.in_features
    (25557032, 'Bottleneck', 2048)
    """
    return ResNet(Bottleneck, (3, 4, 6, 3), n_in=n_in, n_out=n_out)


@register_arch("resnet101")
def resnet101(n_in: int = 3, n_out: int = 1000) -> ResNet:
    """torchvision's ResNet-101 (bottlenecks 3-4-23-3; 44,549,160 parameters with 1000 outputs), random weights.

    >>> from pipekit.vision import resnet101
    >>> model = resnet101()
    >>> sum(p.numel() for p in model.parameters()), [len(model.layer3), len(model.layer4)]
    (44549160, [23, 3])
    """
    return ResNet(Bottleneck, (3, 4, 23, 3), n_in=n_in, n_out=n_out)


@register_arch("resnet152")
def resnet152(n_in: int = 3, n_out: int = 1000) -> ResNet:
    """torchvision's ResNet-152 (bottlenecks 3-8-36-3; 60,192,808 parameters with 1000 outputs), random weights.

    >>> from pipekit.vision import resnet152
    >>> model = resnet152()
    >>> sum(p.numel() for p in model.parameters()), [len(model.layer2), len(model.layer3)]
    (60192808, [8, 36])
    """
    return ResNet(Bottleneck, (3, 8, 36, 3), n_in=n_in, n_out=n_out)


#: the book's torchvision ResNets, by name: pipekit builds them (random weights) but ships none of their weights
RESNET_ARCHS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")


def vision_archs() -> list[str]:
    """The registered architectures pipekit builds image bodies from by name (any registered arch works too).

    >>> vision_archs()[:3]
    ['efficientnet_lite0', 'efficientnet_lite1', 'efficientnet_lite2']
    """
    import pipekit.vision.efficientnet  # noqa: F401  (registers the EfficientNet-Lite names)

    ours = ("xresnet18", "xresnet34", "xresnet50", "simple_cnn", "efficientnet_lite0", "efficientnet_lite1",
            "efficientnet_lite2", *RESNET_ARCHS)
    return sorted(n for n in registered_archs() if n in ours)


def _int_cut(model: nn.Module) -> int:
    """:func:`default_cut`'s body of ``model`` as an int ``cut=``: minus the number of children after it."""
    body = default_cut(model)
    inside = {id(body), *(id(m) for m in body.children())}
    children = list(model.children())
    kept = next((i for i, c in enumerate(children) if id(c) not in inside), len(children))
    return kept - len(children)


class ModelMeta(Mapping[Callable[..., nn.Module], dict[str, Any]]):
    """fastai's ``model_meta`` (the book's chapter 15 reads ``model_meta[resnet50]``): for each architecture function
    pipekit builds image models from (``resnet18`` ... ``resnet152``, ``xresnet18/34/50``, ``simple_cnn``,
    ``efficientnet_lite0/1/2``; its registered name works too), what ``vision_learner`` does with it, as a dict:

    - ``cut``: where ``create_body`` cuts its body by default, as the int ``cut=`` that takes the same children (``-2``
      for a ResNet: everything before ``avgpool`` and ``fc``; ``-1`` for a model built as ``(body, head)``);
    - ``split``: the splitter giving the layer groups of ``vision_learner``'s model (body groups, then the head);
    - ``stats``: the ``(mean, std)`` its starting weights expect, which ``vision_learner`` normalises with:
      ImageNet's for a ResNet (the statistics of torchvision's weights, for a weights file), EfficientNet-Lite's own
      for those, ``None`` where there are no such weights (``vision_learner`` measures the training images).

    An entry is worked out when first read (its model built on the meta device: no memory, no weights).

    >>> model_meta[resnet50]["cut"], model_meta[resnet50]["stats"][0]
    (-2, [0.485, 0.456, 0.406])
    >>> model_meta["xresnet18"]["cut"], model_meta[xresnet18]["stats"]
    (-1, None)
    """

    def __init__(self) -> None:
        self._meta: dict[Callable[..., nn.Module], dict[str, Any]] | None = None

    def _entries(self) -> dict[Callable[..., nn.Module], dict[str, Any]]:
        if self._meta is None:
            # imported here: these modules import this one
            from pipekit.vision.efficientnet import (efficientnet_lite0, efficientnet_lite1, efficientnet_lite2,
                                                     efficientnet_lite_stats)
            from pipekit.vision.learner import _body_head
            from pipekit.vision.transforms import imagenet_stats

            archs: list[tuple[Callable[..., nn.Module], Any]] = [
                *((fn, imagenet_stats) for fn in (resnet18, resnet34, resnet50, resnet101, resnet152)),
                *((fn, None) for fn in (xresnet18, xresnet34, xresnet50, simple_cnn)),
                *((fn, efficientnet_lite_stats) for fn in (efficientnet_lite0, efficientnet_lite1, efficientnet_lite2))]
            # the cut is found when an entry is first read (None until then)
            self._meta = {fn: {"cut": None, "split": _body_head, "stats": stats} for fn, stats in archs}
        return self._meta

    def __getitem__(self, arch: Callable[..., nn.Module] | str) -> dict[str, Any]:
        entries = self._entries()
        if isinstance(arch, str):
            fn = next((f for f in entries if f.__name__ == arch), None)
        else:
            fn = arch if arch in entries else None
        if fn is None:
            names = ", ".join(f.__name__ for f in entries)
            raise KeyError(f"model_meta: {getattr(arch, '__name__', arch)!r} is not one of pipekit's image "
                           f"architectures ({names}); for another model, pass cut= (or let create_body find the "
                           "body) and splitter= to vision_learner")
        entry = entries[fn]
        if entry["cut"] is None:
            with torch.device("meta"):
                entry["cut"] = _int_cut(_call_builder(fn, 3))
        return copy.deepcopy(entry)  # a copy, its stats too: changing it leaves what vision_learner does as it is

    def __iter__(self) -> Iterator[Callable[..., nn.Module]]:
        return iter(self._entries())

    def __len__(self) -> int:
        return len(self._entries())

    def __repr__(self) -> str:
        return f"model_meta({', '.join(f.__name__ for f in self._entries())})"


#: the architectures' cut, splitter and normalisation statistics, by architecture function (see :class:`ModelMeta`)
model_meta = ModelMeta()


class AdaptiveConcatPool2d(ConcatPool2d):
    """fastai's layer (chapter 15's ``create_head``): adaptive max and average pooling to ``size`` (default 1), joined
    along the channels, max first: ``[bs, c, h, w] -> [bs, 2c, size, size]``, so a ``Flatten()`` follows it in a head.
    It is :class:`~pipekit.learn.ConcatPool2d` in fastai's order and shape (``max_first=True, flatten=False``);
    pipekit's own heads use ``ConcatPool2d()``, which flattens as it pools (average first).

    >>> AdaptiveConcatPool2d()(torch.arange(8.).view(1, 2, 2, 2)).flatten().tolist()
    [3.0, 7.0, 1.5, 5.5]
    """

    def __init__(self, size: int | tuple[int, int] | None = None):
        super().__init__(size or 1, max_first=True, flatten=False)

    def extra_repr(self) -> str:
        return "" if self.size == 1 else f"size={self.size!r}"


_POOLS = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, ConcatPool2d)  # AdaptiveConcatPool2d is a ConcatPool2d


def _starts_with_pool(m: nn.Module) -> bool:
    return isinstance(m, _POOLS) or (isinstance(m, nn.Sequential) and len(m) > 0 and _starts_with_pool(m[0]))


def default_cut(model: nn.Module) -> nn.Module:
    """The body of a classifier: its ``body`` child when it has one (pipekit's models), a :class:`ResNet`'s
    children before ``avgpool`` under their names (fastai's cut -2, so torchvision's weights load by name), else
    every child before the last global pooling layer (or before the last child that starts with one, as in
    ``nn.Sequential(body, nn.Sequential(pool, ...))``).

    >>> type(default_cut(xresnet18())).__name__, len(default_cut(xresnet18()))
    ('XResNetBody', 8)
    """
    body = model._modules.get("body")
    if isinstance(body, nn.Module):
        return body
    if isinstance(model, ResNet):
        return model.cut_body()
    children = list(model.children())
    for i in range(len(children) - 1, 0, -1):
        if _starts_with_pool(children[i]):
            return children[0] if i == 1 else nn.Sequential(*children[:i])
    names = [type(c).__name__ for c in children][:8]
    raise ParameterError(f"cannot find where the body of {type(model).__name__} ends: it has no 'body' child and no "
                         f"global pooling layer among its children {names}; pass cut= (the index of the first child "
                         "that is not part of the body, or a function model -> body)")


def _call_builder(fn: Callable[..., nn.Module], n_in: int) -> nn.Module:
    """Build a model from an arch factory or class, giving it ``n_in`` when it takes one. ``n_out=2`` keeps a
    classifier's own head (dropped by the cut) small."""
    try:
        params: Mapping[str, Any] = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        params = {}
    kwargs = {k: v for k, v in (("n_in", n_in), ("n_out", 2)) if k in params}
    model = fn(**kwargs)
    if not isinstance(model, nn.Module):
        raise ParameterError(f"arch {getattr(fn, '__name__', fn)!r} built a {type(model).__name__}, not an nn.Module")
    return model


def _declares_channels(layer: nn.Module, n_in: int) -> bool:
    return getattr(layer, "in_channels", getattr(layer, "num_features", None)) == n_in


def _first_layer(body: nn.Module, n_in: int) -> nn.Module | None:
    """The layer of ``body`` that an ``n_in``-channel image reaches first, None when ``body`` already takes such
    images (or has no parameters). When its first layer in module order declares ``n_in`` channels, ``body`` is
    taken as it is without running it (a body on the meta device is never run); otherwise it runs on a dummy batch
    of ``n_in``-channel images (:func:`dummy_eval`): if that works it takes them, if not the first layer with
    parameters the batch entered is the one to look at (the first in module order when the batch failed before
    entering any, or on the meta device)."""
    leaves = leaf_modules(body)
    if not leaves or _declares_channels(leaves[0], n_in):
        return None
    if any(p.is_meta for p in leaves[0].parameters()):
        return leaves[0]
    reached: list[nn.Module] = []

    def enter(layer: nn.Module, args: Any) -> None:
        if not reached:
            reached.append(layer)

    hooks = [x.register_forward_pre_hook(enter) for x in leaves]
    try:
        dummy_eval(body, (64, 64), n_in=n_in)
        return None
    except Exception:  # any failure of a model on images it was not made for
        return reached[0] if reached else leaves[0]
    finally:
        for h in hooks:
            h.remove()


def _set_first_conv_channels(model: nn.Module, body: nn.Module, n_in: int) -> nn.Module:
    """Give ``body``, cut from ``model`` by :func:`create_body`, ``n_in`` input channels; returns the body. A body
    that takes ``n_in``-channel images is left as it is (see :func:`_first_layer`). Otherwise its first layer must be
    a convolution, which is replaced, wherever ``model`` and ``body`` hold it, by a copy whose filters
    :func:`_adapt_first_conv` adapts (its stride, padding, bias, dilation and subclass kept), and the ``n_in`` its
    architecture recorded (the spec an export rebuilds it from, an ``n_in`` attribute) follows. Any other first layer
    is refused, unless it declares ``n_in`` channels.

    >>> m = resnet18()
    >>> _ = _set_first_conv_channels(m, m, 1)
    >>> m.conv1
    Conv2d(1, 64, kernel_size=(7, 7), stride=(2, 2), padding=(3, 3), bias=False)
    """
    layer = _first_layer(body, n_in)
    if layer is None:
        return body
    # every path to the layer, in model then body (the first is the one named; the others reach its other holders)
    paths = [(root, n) for root in (model, body) for n, x in root.named_modules(remove_duplicate=False) if x is layer]
    path = paths[0][1] if paths else ""
    where = f"{type(layer).__name__} {path or '(the model itself)'!r} of {type(model).__name__}"
    if not isinstance(layer, nn.Conv2d):
        if _declares_channels(layer, n_in):
            return body
        raise ParameterError(f"create_body: n_in={n_in}, but the first layer of the model is the {where}, not an "
                             f"nn.Conv2d whose input channels pipekit can change; build the model for {n_in} input "
                             f"channel(s), or give an architecture name or factory taking n_in")
    if layer.in_channels == n_in:
        return body  # the body fails for another reason, which vision_learner's check of it reports
    owners = list({id(x): x for x in (root.get_submodule(n.rpartition(".")[0]) for root, n in paths if n)}.values())
    if layer.groups != 1 or not owners:
        why = f"a grouped convolution (groups={layer.groups})" if owners else "the whole model"
        raise ParameterError(f"create_body: n_in={n_in}, but the first layer of the model, the {where}, is {why} "
                             f"made for {layer.in_channels} channels, which pipekit cannot replace by one for {n_in}; "
                             f"build the model for {n_in} input channel(s)")
    old = layer.in_channels
    new = copy.deepcopy(layer)
    new.in_channels = n_in
    new.weight = nn.Parameter(_adapt_first_conv(layer.weight.detach(), n_in).clone(),
                              requires_grad=layer.weight.requires_grad)
    ancestors = {id(x): x for root, n in paths for x in (root.get_submodule(n[:i]) for i in
                                                         [0, *(i for i, c in enumerate(n) if c == ".")])}
    for owner in owners:
        for attr in [k for k, c in owner._modules.items() if c is layer]:
            owner.register_module(attr, new)
    for owner in ancestors.values():
        if owner is layer:
            continue
        if owner.__dict__.get("n_in") == old:
            owner.__dict__["n_in"] = n_in  # a plain attribute (an int)
        spec = arch_spec(owner)
        if spec is not None and spec[1].get("n_in", spec[1].get("c_in")) == old:  # fastai's c_in spelling too
            set_arch_spec(owner, spec[0], {**spec[1], **{k: n_in for k in ("n_in", "c_in") if k in spec[1]}})
    return new if body is layer else body


def create_body(arch: str | nn.Module | Callable[..., nn.Module], n_in: int = 3, cut: Cut = None,
                pretrained: bool | str | os.PathLike = False) -> nn.Module:
    """The feature extractor of ``arch`` (images -> a feature map ``(N, C, H, W)``), with random weights unless
    ``pretrained``: ``True`` loads the ImageNet weights pipekit knows (``efficientnet_lite0/1/2``, as
    ``vision_learner(pretrained=True)`` does; other archs are refused, saying so), a path a weights file of the
    same arch.

    ``arch``: a registered architecture name or a factory function (``xresnet34``, built with ``n_in`` channels
    when it takes them), or a module. With ``n_in`` other than 3, a body that does not take ``n_in``-channel images
    (a module, or a factory without ``n_in``) gets, in place of the first convolution they reach, one for ``n_in``
    channels, in the model itself as fastai does. Its filters are adapted from the old ones whether or not
    ``pretrained`` (see :func:`_adapt_first_conv`: summed over the colours for one channel, fastai's rule for
    pretrained weights; fastai starts a new random convolution otherwise). At ``n_in=3`` the model is left as it
    is. ``cut``: None (see :func:`default_cut`), an int (the body is ``nn.Sequential`` of the children before it;
    negative counts from the end) or a function ``model -> body``.

    >>> body = create_body("xresnet18", n_in=1)
    >>> body(torch.zeros(1, 1, 64, 64)).shape
    torch.Size([1, 512, 2, 2])
    >>> create_body(resnet18(), n_in=1, cut=-2).conv1.in_channels  # a colour model's body, for grey images
    1
    """
    if isinstance(arch, str):
        try:
            fn = lookup(arch, "arch")
        except UnknownNameError:
            raise ParameterError(f"arch={arch!r} is not a registered architecture; use one of {vision_archs()}, "
                                 "the name of an arch you registered (pipekit.learn.register_arch), a factory "
                                 "function or an nn.Module") from None
        model = _call_builder(fn, n_in)
    elif isinstance(arch, nn.Module):
        model = arch
    elif callable(arch):
        model = _call_builder(arch, n_in)
    else:
        raise ParameterError(f"arch must be an architecture name, a factory function or an nn.Module, got "
                             f"{type(arch).__name__}")
    body = _cut(model, cut)
    if n_in != 3:
        body = _set_first_conv_channels(model, body, n_in)
    if pretrained:
        from pipekit.vision.learner import _start_from

        _start_from(body, pretrained, arch if isinstance(arch, str) else getattr(arch, "__name__", type(arch).__name__))
    return body


def _cut(model: nn.Module, cut: Cut) -> nn.Module:
    if cut is None:
        return default_cut(model)
    if isinstance(cut, bool) or not (isinstance(cut, int) or callable(cut)):
        raise ParameterError(f"cut={cut!r}: give the index of the first child that is not part of the body (an int) "
                             "or a function model -> body")
    if isinstance(cut, int):
        children = list(model.children())
        kept = children[:cut]
        if not kept:
            names = [type(c).__name__ for c in children]
            raise ParameterError(f"cut={cut} keeps none of the {len(children)} children of {type(model).__name__} "
                                 f"({', '.join(names[:8])}{', ...' if len(names) > 8 else ''}); cut=None (the default) "
                                 "takes its body, the part before the pooling and the head, which a book's cut=-2 "
                                 "takes from a torchvision ResNet")
        if isinstance(model, ResNet) and len(kept) > 1:  # under torchvision's names, as the default cut keeps them
            return ResNetBody(OrderedDict(list(model.named_children())[:cut]))
        return kept[0] if len(kept) == 1 else nn.Sequential(*kept)
    body = cut(model)
    if not isinstance(body, nn.Module):
        raise ParameterError(f"cut={getattr(cut, '__name__', cut)!r} returned a {type(body).__name__}, not an "
                             "nn.Module (the body)")
    return body


#: layers whose output has as many channels as their input
_SAME_CHANNELS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.SiLU, nn.GELU, nn.Hardswish, nn.Mish, nn.Sigmoid, nn.Tanh,
                  nn.Identity, nn.Dropout, nn.Dropout2d, nn.MaxPool2d, nn.AvgPool2d)


def _declared_channels(m: nn.Module) -> int | None:
    """The channels of the feature map ``m`` outputs, read from its layers without running it: a 2-d convolution's
    or batch-norm's width, a residual block's or an EfficientNet-Lite body's last batch-norm, an ``nn.Sequential``'s
    last layer that is not one of ``_SAME_CHANNELS``. None for any other module, whose output only a forward pass
    tells."""
    from pipekit.vision.efficientnet import EfficientNetLiteBody

    if type(m) is nn.Conv2d:
        return int(m.out_channels)
    if type(m) is nn.BatchNorm2d:
        return int(m.num_features)
    if type(m) is BasicBlock:
        return int(m.bn2.num_features)
    if type(m) is Bottleneck:
        return int(m.bn3.num_features)
    if type(m) is ResBlock:
        return _declared_channels(m.convs)
    if type(m) is EfficientNetLiteBody:
        return _declared_channels(m._bn1)
    if isinstance(m, nn.Sequential) and type(m).forward is nn.Sequential.forward:
        for layer in reversed(m):
            if type(layer) not in _SAME_CHANNELS:
                return _declared_channels(layer)
    return None


def probe_body(body: nn.Module, n_in: int = 3, size: int = 64) -> Any:
    """What ``body`` outputs for a dummy batch of two ``n_in``-channel images of ``size`` pixels (then of 224 pixels,
    for a body that needs its native size), run in eval mode without gradients; a body that fails on both is a
    :class:`ParameterError` naming each error. :func:`body_features` and ``vision_learner(pool=False)`` read the
    output's shape.

    >>> tuple(probe_body(create_body("simple_cnn", n_in=1), n_in=1).shape)
    (2, 64, 8, 8)
    """
    return retry_sizes(lambda s: dummy_eval(body, (s, s), n_in=n_in, bs=2), dict.fromkeys((size, 224)),
                       lambda errors: ParameterError(
                           f"the body ({type(body).__name__}) fails on a batch of {n_in}-channel images ("
                           f"{'; '.join(errors)}); check that it takes {n_in} input channel(s), or pass cut="))


def body_features(body: nn.Module, n_in: int = 3, size: int = 64) -> int:
    """Number of channels of the feature map a body outputs (measured on a dummy batch of ``size`` pixels,
    then of 224 pixels for a body that needs its native size); an error says why a body cannot be pooled.
    A body on the meta device (``load_learner`` builds the architecture a file describes there, to check it
    against the stored weights) is not run where its layers declare its width (:func:`_declared_channels`): torch
    would import its compiler stack for the meta forward pass (seconds in a new process).

    >>> body_features(create_body("simple_cnn", n_in=1), n_in=1)
    64
    """
    p = next(body.parameters(), None)
    if p is not None and p.is_meta:
        declared = _declared_channels(body)
        if declared is not None:
            return declared
    out = probe_body(body, n_in, size)
    if not isinstance(out, torch.Tensor) or out.ndim != 4:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ParameterError(f"the body ({type(body).__name__}) gives outputs of shape {shape}, not a feature map "
                             "(N, channels, height, width) that the head can pool; cut it before its pooling and "
                             "classifier layers with cut=")
    return int(out.shape[1])


@register_arch("create_head")
def create_head(nf: int, n_out: int, lin_ftrs: Sequence[int] | None = None, ps: float | Sequence[float] = 0.5,
                concat_pool: bool = True, first_bn: bool = True, bn_final: bool = False, lin_first: bool = False,
                y_range: Sequence[float] | None = None, pool: bool = True) -> nn.Sequential:
    """The head ``vision_learner`` puts on a body of ``nf`` channels, with the arguments fastai users know: pooling
    (average and max concatenated, or average alone with ``concat_pool=False``), then for each linear layer
    batch-norm, dropout, linear (and a ReLU between them) up to ``n_out`` scores.

    ``lin_ftrs``: the hidden layers' sizes (None: one of 512, as in fastai; ``[]``: one linear layer).
    ``ps``: the last dropout, the others being half of it, or one probability per linear layer.
    ``first_bn=False`` leaves out the first batch-norm (on the pooled features; after the first linear layer with
    ``lin_first``). ``lin_first=True`` orders each hidden block linear, ReLU, batch-norm, dropout, after a dropout
    on the pooled features, and ends with a plain linear layer. ``bn_final`` adds a batch-norm on the outputs;
    ``y_range = (low, high)`` a sigmoid squashing them into that range (a regression). ``pool=False`` leaves the
    pooling out, for features that are already ``(batch, nf)`` (as fastai's).

    Registered as an architecture, so a head built here is exported with a learner that uses it as
    ``custom_head``.

    >>> [type(m).__name__ for m in create_head(64, 3, lin_ftrs=[32])]
    ['ConcatPool2d', 'BatchNorm1d', 'Dropout', 'Linear', 'ReLU', 'BatchNorm1d', 'Dropout', 'Linear']
    >>> [type(m).__name__ for m in create_head(64, 3, lin_ftrs=[32], lin_first=True, first_bn=False)]
    ['ConcatPool2d', 'Dropout', 'Linear', 'ReLU', 'Dropout', 'Linear']
    >>> create_head(64, 3, lin_ftrs=[], pool=False)(torch.randn(2, 64)).shape
    torch.Size([2, 3])
    """
    size, prob = Interval(1, None, integer=True), Interval(0, 1, closed="left")
    hidden = [512] if lin_ftrs is None else lin_ftrs
    check("create_head", nf=(nf, size), n_out=(n_out, size),
          lin_ftrs=(hidden, POSITIVE_SIZES),
          y_range=(y_range, Is(lambda v: v is None or (len(v) == 2 and float(v[0]) < float(v[1])),
                               "None or (low, high) with low < high")))
    sizes = [int(nf) * (2 if concat_pool and pool else 1), *(int(n) for n in hidden), int(n_out)]
    n_lin = len(sizes) - 1
    if isinstance(ps, (list, tuple)):
        check("create_head", ps=(ps, Is(lambda v: len(v) == n_lin and all(prob.accepts(p) for p in v),
                                        f"a probability in [0, 1) or {n_lin} of them (one per linear layer)")))
        drops = [float(p) for p in ps]
    else:
        check("create_head", ps=(ps, prob))
        last = float(cast(float, ps))  # a number: checked above
        drops = [last / 2] * (n_lin - 1) + [last]
    layers: list[nn.Module] = [] if not pool else [
        ConcatPool2d() if concat_pool else nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())]
    if not lin_first:
        block = linear_layers(sizes, drops)
        layers += block if first_bn else block[1:]  # the pooled features' batch-norm comes first
    else:
        layers.append(nn.Dropout(drops[0]))
        for i in range(n_lin - 1):
            layers += [nn.Linear(sizes[i], sizes[i + 1]), nn.ReLU(inplace=True)]
            if i > 0 or first_bn:
                layers.append(BatchNorm(sizes[i + 1], ndim=1))
            layers.append(nn.Dropout(drops[i + 1]))
        layers.append(nn.Linear(sizes[-2], sizes[-1]))
    if bn_final:
        layers.append(nn.BatchNorm1d(n_out, momentum=0.01))
    if y_range is not None:
        layers.append(SigmoidRange(*y_range))
    return nn.Sequential(*layers)


#: create_head's options and their defaults: a ``custom_head`` replaces the head they describe
_HEAD_DEFAULTS: dict[str, Any] = {"lin_ftrs": None, "ps": 0.5, "concat_pool": True, "first_bn": True,
                                 "bn_final": False, "lin_first": False, "y_range": None}


def _refuse_head_options(who: str, given: Mapping[str, Any], defaults: Mapping[str, Any] = _HEAD_DEFAULTS) -> None:
    """With a ``custom_head``, the options of the head pipekit would build have nothing to act on: refuse any that
    was changed rather than ignore it."""
    def plain(v: Any) -> Any:  # a tuple and a list of the same values are the same option
        return list(v) if isinstance(v, tuple) else v

    changed = sorted(k for k, v in given.items() if k in defaults and plain(v) != plain(defaults[k]))
    if changed:
        raise ParameterError(f"{who}: {', '.join(changed)} shape{'s' if len(changed) == 1 else ''} the head pipekit "
                             "builds, which custom_head replaces; build your head with them (e.g. custom_head="
                             "create_head(nf, n_out, ...), or a SigmoidRange(low, high) as its last layer for y_range) "
                             "or leave custom_head out")


@register_arch("vision_model")
def vision_model(arch: str | nn.Module, n_out: int, n_in: int = 3, lin_ftrs: Sequence[int] | None = (512,),
                 ps: float | Sequence[float] = 0.5, concat_pool: bool = True, cut: Cut = None,
                 y_range: Sequence[float] | None = None, first_bn: bool = True, bn_final: bool = False,
                 lin_first: bool = False, custom_head: nn.Module | None = None, **body_options: Any) -> nn.Sequential:
    """``nn.Sequential(body=<body of arch>, head=<pooled head>)``: what ``vision_learner`` trains.

    ``model.body(x)`` is the feature map, ``model.head`` turns it into ``n_out`` scores (squashed into
    ``y_range = (low, high)`` when given, e.g. ``(-1, 1)`` for points in pipekit's coordinates). ``arch`` and ``cut``
    as in :func:`create_body`; a module ``arch`` is stored in an export by its own registered architecture,
    a function ``cut`` by its registered name (``pipekit.register(fn, kind="cut")``). The head options are
    :func:`create_head`'s, except that ``lin_ftrs=None`` here means no hidden layer (as exports store it).
    ``custom_head``: a module taking the body's feature map ``(N, C, H, W)`` to the outputs, used as the head
    instead; an export stores it when a registered architecture built it (``create_head``, or your class or
    factory decorated with ``pipekit.learn.register_arch``) and refuses otherwise. ``bn_momentum=``: the momentum of
    every batch norm of the body (None: as ``arch`` builds them); ``vision_learner`` records it for a pretrained
    EfficientNet-Lite body (0.01, see :func:`~pipekit.vision.efficientnet.load_pretrained`), so its export rebuilds
    the body with the momentum it trained with.

    >>> m = vision_model("simple_cnn", n_out=3, n_in=1)
    >>> m.body(torch.zeros(2, 1, 32, 32)).shape, m(torch.zeros(2, 1, 32, 32)).shape
    (torch.Size([2, 64, 4, 4]), torch.Size([2, 3]))
    """
    check("vision_model", n_out=(n_out, Interval(1, None, integer=True)), n_in=(n_in, Interval(1, None, integer=True)),
          custom_head=(custom_head, Is(lambda h: h is None or isinstance(h, nn.Module),
                                       "None or an nn.Module (the head, taking the body's feature map)")))
    bn_momentum = bn_momentum_option("vision_model", body_options)
    options: dict[str, Any] = {"lin_ftrs": lin_ftrs, "ps": ps, "concat_pool": concat_pool, "first_bn": first_bn,
               "bn_final": bn_final, "lin_first": lin_first, "y_range": y_range}
    body = create_body(arch, n_in, cut)
    _set_bn_momentum(body, bn_momentum)
    if custom_head is not None:
        _refuse_head_options("vision_model", options, {**_HEAD_DEFAULTS, "lin_ftrs": (512,)})
        head: nn.Module = custom_head
    else:
        head = create_head(body_features(body, n_in), n_out, **{
            **options, "lin_ftrs": list(lin_ftrs or []), "y_range": None if y_range is None else [float(v) for v in y_range]})
    return nn.Sequential(OrderedDict(body=body, head=head))


@runtime_checkable
class MultiScaleEncoder(Protocol):
    """An encoder that gives its feature maps at each resolution, finest first, the last being its output
    (``EfficientNetLiteBody.forward_features``); a U-Net takes its skip connections from them.

    >>> import torch.nn.functional as F
    >>> from torch import nn
    >>> from pipekit.vision import EfficientNetLiteBody
    >>> from pipekit.vision.models import MultiScaleEncoder
    >>> class TwoScales(nn.Module):
    ...     def forward_features(self, x):
    ...         return [x, F.avg_pool2d(x, 2)]
    >>> isinstance(TwoScales(), MultiScaleEncoder), isinstance(nn.Sequential(), MultiScaleEncoder)
    (True, False)
    >>> isinstance(EfficientNetLiteBody("lite0"), MultiScaleEncoder)
    True
    """

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]: ...


class _UpBlock(nn.Module):
    """Upsample x2 with a conv, join the encoder's skip features, two convs."""

    def __init__(self, up_in: int, skip_in: int, nf: int):
        super().__init__()
        self.up = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), conv_bn(up_in, up_in // 2))
        self.bn = nn.BatchNorm2d(skip_in)
        self.convs = nn.Sequential(conv_bn(up_in // 2 + skip_in, nf), conv_bn(nf, nf))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(x)
        if x.shape[-2:] != skip.shape[-2:]:
            x = F.interpolate(x, size=skip.shape[-2:], mode="nearest")
        return self.convs(torch.cat([x, self.bn(skip)], 1))


class UNet(nn.Module):
    """A U-Net: the encoder's features at each resolution feed a decoder that upsamples back to the input size.

    ``encoder`` is an ``nn.Sequential`` (e.g. an XResNet body), whose children's outputs just before each
    downsampling are kept as skip connections, or a :class:`MultiScaleEncoder` (e.g. an EfficientNet-Lite
    body), whose ``forward_features`` gives them. The middle convolutions work at most 512 channels wide.

    >>> import torch
    >>> from pipekit.vision import UNet, create_body
    >>> model = UNet(create_body("xresnet18", n_in=1), n_out=3, n_in=1, size=32).eval()
    >>> model.multi_scale, model.skip_idx, tuple(model(torch.zeros(1, 1, 32, 48)).shape)
    (False, [2, 4, 5, 6], (1, 3, 32, 48))
    """

    def __init__(self, encoder: nn.Module, n_out: int, n_in: int = 3, size: int = 64):
        super().__init__()
        self.encoder = encoder
        self.multi_scale = isinstance(encoder, MultiScaleEncoder)
        if not (self.multi_scale or isinstance(encoder, nn.Sequential)):
            raise ParameterError(f"UNet: the encoder must be an nn.Sequential or have forward_features(x) (a list of "
                                 f"feature maps, finest first); got {type(encoder).__name__}")
        with torch.no_grad():
            was = encoder.training
            encoder.eval()
            maps = self._maps(torch.zeros(1, n_in, size, size))
            encoder.train(was)
        shapes = [tuple(m.shape[1:]) for m in maps]
        # Sequential: children whose output is the last at its resolution (before the next downsampling)
        self.skip_idx = list(range(len(shapes) - 1)) if self.multi_scale else \
            [i for i in range(len(shapes) - 1) if shapes[i + 1][-1] < shapes[i][-1]]
        nf = shapes[-1][0]
        mid = min(nf, 512)
        self.middle = nn.Sequential(conv_bn(nf, mid), conv_bn(mid, mid))
        ups, up_in = [], mid
        for i in reversed(self.skip_idx):
            skip_c = shapes[i][0]
            out_c = max(skip_c, 32) if i != self.skip_idx[0] else max(skip_c, 64)
            ups.append(_UpBlock(up_in, skip_c, out_c))
            up_in = out_c
        self.ups = nn.ModuleList(ups)
        self.final = nn.Sequential(conv_bn(up_in + n_in, 32), nn.Conv2d(32, n_out, 1))

    def _maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        if self.multi_scale:
            return list(self.encoder.forward_features(x))  # type: ignore[operator]
        out = []
        for m in self.encoder:  # type: ignore[attr-defined]
            x = m(x)
            out.append(x)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = self._maps(x)
        y = self.middle(maps[-1])
        for up, i in zip(self.ups, reversed(self.skip_idx)):
            y = up(y, maps[i])
        y = F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return self.final(torch.cat([y, x], 1))


@register_arch("unet")
def unet(encoder: str = "xresnet18", n_out: int = 2, n_in: int = 3, y_range: Sequence[float] | None = None,
         **encoder_options: Any) -> UNet:
    """A U-Net over the body of ``encoder`` (an arch name: an XResNet, ``simple_cnn``, an EfficientNet-Lite)
    with ``n_out`` classes (or values) per pixel; with ``y_range`` = (low, high) a sigmoid squashes every output
    into that range, its last layer (``model.final[-1]``) a ``SigmoidRange`` (``unet_learner(..., y_range=)``).
    ``bn_momentum=``: the momentum of every batch norm of the encoder (None: as built), as in :func:`vision_model`.

    >>> unet("xresnet18", n_out=5)(torch.zeros(1, 3, 64, 96)).shape
    torch.Size([1, 5, 64, 96])
    >>> y = unet("xresnet18", n_out=1, y_range=(0, 1)).eval()(torch.rand(1, 3, 32, 32))
    >>> bool(((y > 0) & (y < 1)).all())
    True
    """
    size = Interval(1, None, integer=True)
    checked = check("unet", n_out=(n_out, size), n_in=(n_in, size), y_range=(y_range, Y_RANGE))
    bn_momentum = bn_momentum_option("unet", encoder_options)
    encoder_body = create_body(encoder, checked["n_in"])
    _set_bn_momentum(encoder_body, bn_momentum)
    model = UNet(encoder_body, n_out=checked["n_out"], n_in=checked["n_in"])
    if y_range is not None:
        model.final.append(SigmoidRange(float(y_range[0]), float(y_range[1])))
    return model


def check_stored_unet(config: Mapping[str, Any], shapes: Mapping[str, Sequence[int]], field: str) -> None:
    """``unet.check_stored``, read by ``load_learner`` before the net is built: ``n_out`` must be the stored output
    convolution's channel count (``final.1.weight``), so an edited value is refused by its field name rather than
    by torch while building."""
    out = shapes.get("final.1.weight")
    n_out = config.get("n_out", 2)
    if out and (type(n_out) is not int or n_out != out[0]):
        raise FieldError(f"{field}.n_out", f"is {str(n_out)[:60]}, but the stored output convolution has {out[0]} "
                         "output channel(s); the file is damaged or was not written by pipekit")


unet.check_stored = check_stored_unet  # type: ignore[attr-defined]
unet.takes_bn_momentum = True  # type: ignore[attr-defined]


def check_stored_head(config: Mapping[str, Any], shapes: Mapping[str, Sequence[int]], field: str,
                      prefix: str = "head.", default: Sequence[int] | None = (512,),
                      none: Sequence[int] = ()) -> None:
    """Refuse a head's stored ``lin_ftrs`` (and ``n_out``) that are not the output sizes of the stored linear
    layers (2-d ``<prefix><i>.weight`` in ``shapes``), before building: each requested size is a linear,
    batch-norm and dropout built even on the meta device, so a long list in a small file costs seconds and
    hundreds of MB per 20000. ``load_learner`` reads it as ``vision_model.check_stored`` and
    ``create_head.check_stored`` (``default``: the sizes when the config has no ``lin_ftrs``, ``none`` what
    ``lin_ftrs=None`` means: no hidden layer for ``vision_model``, one of 512 for ``create_head``); a ``custom_head``'s own
    weights are compared once it is built.

    >>> shapes = {"head.1.weight": (128,), "head.3.weight": (8, 128), "head.7.weight": (2, 8)}
    >>> check_stored_head({"n_out": 2, "lin_ftrs": [8]}, shapes, "arch.config")
    >>> check_stored_head({"n_out": 2, "lin_ftrs": [1] * 500}, shapes, "arch.config")
    Traceback (most recent call last):
    ...
    pipekit.core.errors.FieldError: field 'arch.config.lin_ftrs' has 500 hidden size(s), but the stored weights hold 1 hidden linear layer(s) of sizes [8]; the file is damaged or was not written by pipekit
    """
    def bad(name: str, what: str) -> FieldError:
        return FieldError(f"{field}.{name}", f"{what}; the file is damaged or was not written by pipekit")

    if config.get("custom_head") is not None:
        return
    lin_ftrs = config.get("lin_ftrs", default)
    lin_ftrs = none if lin_ftrs is None else lin_ftrs
    if not POSITIVE_SIZES.accepts(lin_ftrs):
        raise bad("lin_ftrs", f"must be None or a list of positive sizes, got {str(lin_ftrs)[:60]!r}")
    stored = check_stored_layers(lin_ftrs, shapes, field, prefix, "lin_ftrs", "hidden size(s)")
    if "n_out" in config and config["n_out"] != stored[-1]:
        raise bad("n_out", f"is {str(config['n_out'])[:60]}, but the stored output layer has {stored[-1]} output(s)")




def _stored_spec(value: Any, name: str) -> Mapping[str, Any] | None:
    """The stored config of a module built by registered architecture ``name``, as an export stores it, else None."""
    if isinstance(value, Mapping) and value.get("class") == "pipekit.learn.ArchSpec":
        params = value.get("params")
        if isinstance(params, Mapping) and params.get("name") == name and isinstance(params.get("config"), Mapping):
            return cast(Mapping[str, Any], params["config"])
    return None


def check_stored_vision_model(config: Mapping[str, Any], shapes: Mapping[str, Sequence[int]], field: str) -> None:
    """``vision_model.check_stored``, read by ``load_learner`` before the net is built: the head's ``lin_ftrs``
    (:func:`check_stored_head`), and the stored arguments of a body or ``custom_head`` built by a registered
    architecture (an ``xresnet`` or ``simple_cnn`` body cut as by default, a ``create_head`` head), each against its own stored
    weights, as nested arguments ask for modules the same way (an xresnet body of 5000 blocks took 15 s and 300 MB,
    a custom head of 20000 hidden sizes 6 s and 370 MB, before the weights were compared)."""
    check_stored_head(config, shapes, field)
    head = _stored_spec(config.get("custom_head"), "create_head")
    if head is not None:
        create_head.check_stored(head, {k[5:]: v for k, v in shapes.items() if k.startswith("head.")},  # type: ignore[attr-defined]
                                 f"{field}.custom_head.params.config")
    if config.get("cut") is not None:  # a body cut elsewhere holds only part of the stored architecture's weights
        return
    for name, check_body in (("xresnet", XResNet.check_stored),
                             ("simple_cnn", simple_cnn.check_stored)):  # type: ignore[attr-defined]
        body = _stored_spec(config.get("arch"), name)
        if body is not None:
            check_body(body, {"0." + k[5:]: v for k, v in shapes.items() if k.startswith("body.")},
                       f"{field}.arch.params.config")


vision_model.check_stored = check_stored_vision_model  # type: ignore[attr-defined]
vision_model.takes_bn_momentum = True  # type: ignore[attr-defined]
create_head.check_stored = functools.partial(  # type: ignore[attr-defined]
    check_stored_head, prefix="", default=None, none=(512,))
