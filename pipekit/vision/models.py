"""Image models: XResNet (ResNet with the improved stem and shortcut), a U-Net on any of its bodies.

Every builder is registered, so learners using them export and reload without pickled code.

>>> import torch
>>> m = xresnet18(n_in=1, n_out=10)
>>> m(torch.zeros(2, 1, 64, 64)).shape
torch.Size([2, 10])
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from pipekit.core.errors import ParameterError
from pipekit.core.validate import Interval, Is, Options, check
from pipekit.learn.nets import ConcatPool2d, simple_cnn
from pipekit.learn.registry import register_arch

__all__ = ["XResNet", "xresnet18", "xresnet34", "xresnet50", "UNet", "unet", "simple_cnn", "create_head",
           "vision_model", "body_features", "ARCHS"]


def conv_bn(ni: int, nf: int, ks: int = 3, stride: int = 1, act: bool = True, zero_bn: bool = False) -> nn.Sequential:
    """conv -> batch-norm (-> ReLU); ``zero_bn`` starts the BN scale at 0 so a residual block starts as identity."""
    bn = nn.BatchNorm2d(nf)
    nn.init.constant_(bn.weight, 0.0 if zero_bn else 1.0)
    layers: list[nn.Module] = [nn.Conv2d(ni, nf, ks, stride=stride, padding=ks // 2, bias=False), bn]
    if act:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class ResBlock(nn.Module):
    """Basic (expansion 1) or bottleneck (expansion 4) residual block.

    The shortcut of a strided block average-pools before its 1x1 conv (instead of a strided 1x1 conv
    that would drop three quarters of the activations).
    """

    def __init__(self, expansion: int, ni: int, nh: int, stride: int = 1):
        super().__init__()
        nf, ni = nh * expansion, ni * expansion
        if expansion == 1:
            self.convs = nn.Sequential(conv_bn(ni, nh, stride=stride), conv_bn(nh, nf, act=False, zero_bn=True))
        else:
            self.convs = nn.Sequential(conv_bn(ni, nh, 1), conv_bn(nh, nh, stride=stride),
                                       conv_bn(nh, nf, 1, act=False, zero_bn=True))
        self.idconv = nn.Identity() if ni == nf else conv_bn(ni, nf, 1, act=False)
        self.pool = nn.Identity() if stride == 1 else nn.AvgPool2d(2, ceil_mode=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.convs(x) + self.idconv(self.pool(x)))


@register_arch("xresnet")
class XResNet(nn.Sequential):
    """``nn.Sequential(body, head)``: a 3-conv stem, max-pool, four residual stages; avg-pool + linear head.

    ``layers`` is the number of blocks per stage ((2,2,2,2) for 18, (3,4,6,3) for 34 and 50),
    ``expansion`` 1 (basic blocks) or 4 (bottlenecks), ``widths`` the stage widths.
    """

    def __init__(self, expansion: int = 1, layers: Sequence[int] = (2, 2, 2, 2), n_in: int = 3, n_out: int = 1000,
                 p: float = 0.0, widths: Sequence[int] = (64, 128, 256, 512)):
        check("XResNet", expansion=(expansion, Options(1, 4)), n_in=(n_in, Interval(1, None, integer=True)),
              n_out=(n_out, Interval(1, None, integer=True)),
              widths=(widths, Is(lambda w: len(w) == len(layers), f"one width per stage ({len(layers)} stages)")))
        stem_w = [n_in, 32, 32, 64]
        stem = [conv_bn(stem_w[i], stem_w[i + 1], stride=2 if i == 0 else 1) for i in range(3)]
        blocks: list[nn.Module] = []
        ins = [64 // expansion, *widths[:-1]]
        for i, (n, ni, nh) in enumerate(zip(layers, ins, widths)):
            stage = [ResBlock(expansion, ni if j == 0 else nh, nh, stride=1 if (i == 0 or j > 0) else 2)
                     for j in range(n)]
            blocks.append(nn.Sequential(*stage))
        body = nn.Sequential(*stem, nn.MaxPool2d(3, stride=2, padding=1), *blocks)
        head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(p), nn.Linear(widths[-1] * expansion, n_out))
        super().__init__(body, head)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")


@register_arch("xresnet18")
def xresnet18(n_in: int = 3, n_out: int = 1000, p: float = 0.0) -> XResNet:
    """XResNet with 18 layers (basic blocks 2-2-2-2)."""
    return XResNet(1, (2, 2, 2, 2), n_in=n_in, n_out=n_out, p=p)


@register_arch("xresnet34")
def xresnet34(n_in: int = 3, n_out: int = 1000, p: float = 0.0) -> XResNet:
    """XResNet with 34 layers (basic blocks 3-4-6-3)."""
    return XResNet(1, (3, 4, 6, 3), n_in=n_in, n_out=n_out, p=p)


@register_arch("xresnet50")
def xresnet50(n_in: int = 3, n_out: int = 1000, p: float = 0.0) -> XResNet:
    """XResNet with 50 layers (bottleneck blocks 3-4-6-3)."""
    return XResNet(4, (3, 4, 6, 3), n_in=n_in, n_out=n_out, p=p)


ARCHS = {"xresnet18": xresnet18, "xresnet34": xresnet34, "xresnet50": xresnet50, "simple_cnn": simple_cnn}


def body_features(body: nn.Module, n_in: int = 3, size: int = 64) -> int:
    """Number of channels a body outputs (measured with a dummy batch)."""
    was = body.training
    body.eval()
    with torch.no_grad():
        p = next(body.parameters())
        out = body(torch.zeros(1, n_in, size, size, device=p.device, dtype=p.dtype))
    body.train(was)
    return int(out.shape[1])


def create_head(nf: int, n_out: int, lin_ftrs: Sequence[int] | None = (512,), ps: float = 0.5,
                concat_pool: bool = True, bn_final: bool = False) -> nn.Sequential:
    """Pooling (avg+max concatenated) -> [BN, dropout, linear, ReLU]* -> BN, dropout, linear to ``n_out``."""
    check("create_head", ps=(ps, Interval(0, 1, closed="left")))
    pool: nn.Module = ConcatPool2d() if concat_pool else nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
    sizes = [nf * (2 if concat_pool else 1), *(lin_ftrs or []), n_out]
    drops = [ps / 2] * (len(sizes) - 2) + [ps]
    layers: list[nn.Module] = [pool]
    for i, (a, b, p) in enumerate(zip(sizes[:-1], sizes[1:], drops)):
        layers += [nn.BatchNorm1d(a), nn.Dropout(p), nn.Linear(a, b, bias=True)]
        if i < len(sizes) - 2:
            layers.append(nn.ReLU(inplace=True))
    if bn_final:
        layers.append(nn.BatchNorm1d(n_out, momentum=0.01))
    return nn.Sequential(*layers)


def _body(arch: str, n_in: int) -> nn.Module:
    if arch not in ARCHS:
        raise ParameterError(f"arch={arch!r} is not known; use one of {sorted(ARCHS)} or pass a model")
    model = ARCHS[arch](n_in=n_in, n_out=2)
    return model[0]


@register_arch("vision_model")
def vision_model(arch: str, n_out: int, n_in: int = 3, lin_ftrs: Sequence[int] | None = (512,), ps: float = 0.5,
                 concat_pool: bool = True) -> nn.Sequential:
    """``nn.Sequential(body of arch, pooled head)``: what ``vision_learner`` trains."""
    body = _body(arch, n_in)
    head = create_head(body_features(body, n_in), n_out, lin_ftrs, ps, concat_pool)
    return nn.Sequential(body, head)


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

    ``encoder`` is an ``nn.Sequential`` (e.g. an XResNet body); the outputs of its children just before
    each downsampling are kept as skip connections.
    """

    def __init__(self, encoder: nn.Sequential, n_out: int, n_in: int = 3, size: int = 64):
        super().__init__()
        self.encoder = encoder
        with torch.no_grad():
            was = encoder.training
            encoder.eval()
            x = torch.zeros(1, n_in, size, size)
            shapes = []
            for m in encoder:
                x = m(x)
                shapes.append(tuple(x.shape[1:]))
            encoder.train(was)
        # indices of children whose output is the last at its resolution (before the next downsampling)
        self.skip_idx = [i for i in range(len(shapes) - 1) if shapes[i + 1][-1] < shapes[i][-1]]
        nf = shapes[-1][0]
        self.middle = nn.Sequential(conv_bn(nf, nf), conv_bn(nf, nf))
        ups, up_in = [], nf
        for i in reversed(self.skip_idx):
            skip_c = shapes[i][0]
            out_c = max(skip_c, 32) if i != self.skip_idx[0] else max(skip_c, 64)
            ups.append(_UpBlock(up_in, skip_c, out_c))
            up_in = out_c
        self.ups = nn.ModuleList(ups)
        self.final = nn.Sequential(conv_bn(up_in + n_in, 32), nn.Conv2d(32, n_out, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        inp, skips = x, []
        for i, m in enumerate(self.encoder):
            x = m(x)
            if i in self.skip_idx:
                skips.append(x)
        x = self.middle(x)
        for up, skip in zip(self.ups, reversed(skips)):
            x = up(x, skip)
        x = F.interpolate(x, size=inp.shape[-2:], mode="bilinear", align_corners=False)
        return self.final(torch.cat([x, inp], 1))


@register_arch("unet")
def unet(encoder: str = "xresnet18", n_out: int = 2, n_in: int = 3) -> UNet:
    """A U-Net over the body of ``encoder`` (an arch name) with ``n_out`` classes per pixel.

    >>> unet("xresnet18", n_out=5)(torch.zeros(1, 3, 64, 96)).shape
    torch.Size([1, 5, 64, 96])
    """
    return UNet(_body(encoder, n_in), n_out=n_out, n_in=n_in)
