"""``create_body(model, n_in=...)`` on a model made for another number of channels: its first convolution is
replaced by one for ``n_in`` channels whose filters are adapted as pretrained weights are (summed for one channel),
as fastai's ``create_body`` does; a first layer pipekit cannot adapt is refused by name. And the EfficientNet-Lite
architecture functions and weight loaders are the book import's names."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from torch import nn

import pipekit.datasets as D
from pipekit.core.errors import ParameterError
from pipekit.data import get_image_files
from pipekit.learn import arch_spec, build_arch
from pipekit.vision import create_body, resnet18, vision_model, xresnet18


def _first_conv(m: nn.Module) -> nn.Conv2d:
    return next(x for x in m.modules() if isinstance(x, nn.Conv2d))


def test_a_colour_resnet_instance_gets_a_summed_first_conv_for_grey_images_as_fastai():
    torch.manual_seed(0)
    m = resnet18()
    w = m.conv1.weight.detach().clone()
    body = create_body(m, n_in=1, pretrained=False, cut=-2)
    conv = body.conv1
    # fastai 2.8.12: Conv2d(1, 64, kernel_size=(7, 7), stride=(2, 2), padding=(3, 3), bias=False), output (1,512,2,2)
    assert (conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, conv.bias) == (
        1, 64, (7, 7), (2, 2), (3, 3), None)
    assert torch.allclose(conv.weight, w.sum(1, keepdim=True))
    assert m.conv1 is conv  # replaced in the model, as fastai does: the body is made of the model's layers
    assert body.eval()(torch.zeros(1, 1, 64, 64)).shape == (1, 512, 2, 2)
    assert arch_spec(m) == ("resnet18", {"n_in": 1, "n_out": 1000})  # an export rebuilds it for one channel


def test_an_xresnet_instance_on_real_grey_digits_and_its_spec_rebuilds_it():
    files = sorted(get_image_files(D.path("mnist_tiny") / "train" / "3"))[:4]
    x = torch.stack([torch.from_numpy(np.asarray(Image.open(f).convert("L"), dtype=np.float32) / 255)[None]
                     for f in files])
    assert x.shape == (4, 1, 28, 28)
    torch.manual_seed(0)
    m = xresnet18(n_out=2)
    stem = m[0][0][0].weight.detach().clone()
    model = vision_model(m, n_out=2, n_in=1).eval()
    assert torch.allclose(model.body[0][0].weight, stem.sum(1, keepdim=True))
    assert model(x).shape == (4, 2)
    name, config = arch_spec(m)
    assert (name, config["n_in"]) == ("xresnet18", 1)
    assert build_arch(name, config).load_state_dict(m.state_dict())  # all keys match


def test_more_channels_keep_the_colours_and_every_other_conv_setting():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 8, 3, stride=2, padding=2, dilation=2, bias=True, padding_mode="reflect")
    model = nn.Sequential(conv, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2))
    body = create_body(model, n_in=4)
    new = body[0]
    assert new is not conv and type(new) is nn.Conv2d and new.in_channels == 4
    assert (new.stride, new.padding, new.dilation, new.groups, new.padding_mode) == ((2, 2), (2, 2), (2, 2), 1,
                                                                                      "reflect")
    assert torch.equal(new.weight[:, :3], conv.weight) and not new.weight[:, 3].any()
    assert torch.equal(new.bias, conv.bias) and new.weight.requires_grad
    assert body(torch.zeros(2, 4, 16, 16)).shape == (2, 8, 8, 8)


def test_a_factory_without_n_in_is_adapted_too_and_a_matching_model_is_left_alone():
    def colour_net():
        return nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))

    assert create_body(colour_net, n_in=2).in_channels == 2  # the one child before the pooling
    grey = nn.Sequential(nn.Conv2d(1, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    first = grey[0]
    assert create_body(grey, n_in=1) is first and grey[0] is first


def test_an_efficientnet_lite_instance_keeps_its_same_padding_conv_and_records_its_channels():
    from pipekit.vision.efficientnet import _Conv, efficientnet_lite0

    m = efficientnet_lite0(n_out=2)
    body = create_body(m, n_in=1)
    assert type(body._conv_stem) is _Conv and body._conv_stem.in_channels == 1 and body.n_in == 1
    assert arch_spec(m)[1]["n_in"] == 1
    assert body.eval()(torch.zeros(1, 1, 64, 64)).shape == (1, 1280, 2, 2)


def test_a_weights_file_loads_into_the_adapted_instance(tmp_path):
    torch.manual_seed(0)
    colour = resnet18()
    path = tmp_path / "resnet18.safetensors"
    save_file({k: v.contiguous() for k, v in colour.state_dict().items()}, str(path))
    body = create_body(resnet18(), n_in=1, pretrained=path)
    assert torch.allclose(body.conv1.weight, colour.conv1.weight.sum(1, keepdim=True))


@pytest.mark.parametrize("first, says", [
    (nn.Conv2d(3, 6, 3, groups=3), ["n_in=1", "Conv2d '0'", "groups=3"]),
    (nn.Linear(3, 6), ["n_in=1", "Linear '0'", "not an nn.Conv2d"]),
    (nn.BatchNorm2d(3), ["n_in=1", "BatchNorm2d '0'", "not an nn.Conv2d"]),
])
def test_a_first_layer_pipekit_cannot_adapt_is_refused_naming_n_in_and_the_layer(first, says):
    model = nn.Sequential(first, nn.AdaptiveAvgPool2d(1), nn.Flatten())
    with pytest.raises(ParameterError) as e:
        create_body(model, n_in=1)
    assert all(s in str(e.value) for s in says), str(e.value)
    assert model[0] is first  # left as it was


def test_a_first_layer_declaring_n_in_channels_is_taken_as_it_is():
    model = nn.Sequential(nn.BatchNorm2d(1), nn.Conv2d(1, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    assert create_body(model, n_in=1, cut=2)(torch.zeros(2, 1, 8, 8)).shape == (2, 4, 6, 6)


def test_the_lite_architectures_and_weight_loaders_are_the_book_imports_names():
    import pipekit.vision.efficientnet as eff

    names: dict = {}
    exec("from pipekit.vision.all import *", names)
    for name in ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2", "efficientnet_lite_weights",
                 "load_pretrained"):
        assert names.get(name) is getattr(eff, name), name
    assert names["model_meta"][names["efficientnet_lite0"]]["stats"] == eff.efficientnet_lite_stats


def _grey_digits(n: int = 4) -> torch.Tensor:
    files = sorted(get_image_files(D.path("mnist_tiny") / "train" / "7"))[:n]
    return torch.stack([torch.from_numpy(np.asarray(Image.open(f).convert("L"), dtype=np.float32) / 255)[None]
                        for f in files])


def test_the_default_n_in_leaves_a_grey_model_as_it_is_as_fastai():
    x = _grey_digits()
    torch.manual_seed(0)
    grey = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    conv, w = grey[0], grey[0].weight.detach().clone()
    body = create_body(grey)  # n_in=3: fastai changes nothing
    assert body[0] is conv and grey[0] is conv and conv.in_channels == 1 and torch.equal(conv.weight, w)
    assert body(x).shape == (4, 4, 26, 26)
    m = xresnet18(n_in=1, n_out=2)
    with pytest.raises(ParameterError, match="fails on a batch of 3-channel images"):
        vision_model(m, n_out=2)
    assert m[0][0][0].in_channels == 1 and arch_spec(m)[1]["n_in"] == 1


def test_a_second_body_at_three_channels_keeps_the_adapted_filters():
    torch.manual_seed(0)
    m = resnet18()
    w = m.conv1.weight.detach().clone()
    create_body(m, n_in=1, cut=-2)
    body = create_body(m, n_in=3, cut=-2)
    assert body.conv1 is m.conv1 and m.conv1.in_channels == 1
    assert torch.allclose(m.conv1.weight, w.sum(1, keepdim=True))
    assert arch_spec(m)[1]["n_in"] == 1


class _GreyNet(nn.Module):  # built for one channel; its classifier is declared before its features
    def __init__(self):
        super().__init__()
        self.classifier = nn.Linear(16, 10)
        self.features = nn.Sequential(nn.Conv2d(1, 16, 3), nn.ReLU())

    def forward(self, x):
        return self.classifier(self.features(x).mean((2, 3)))


class _GreyTokenNet(nn.Module):  # a top-level parameter (as a ViT's class token) registered before the layers
    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))
        self.features = nn.Sequential(nn.Conv2d(1, 16, 3), nn.ReLU())

    def forward(self, x):
        return (self.features(x) * self.scale).mean((2, 3))


@pytest.mark.parametrize("net", [_GreyNet, _GreyTokenNet])
@pytest.mark.parametrize("whole", [False, True])
def test_a_body_taking_n_in_channels_is_left_alone_whatever_its_parameters_order(net, whole):
    x = _grey_digits()
    torch.manual_seed(0)
    m = net()
    conv, w = m.features[0], m.features[0].weight.detach().clone()
    body = create_body(m, n_in=1, cut=(lambda m: m) if whole else (lambda m: m.features))
    assert m.features[0] is conv and torch.equal(conv.weight, w)
    assert body(x).shape == ((4, 10) if net is _GreyNet and whole else (4, 16) if whole else (4, 16, 26, 26))


class _HeadFirstFCN(nn.Module):  # a colour fully-convolutional net whose 1x1 head is declared before its features
    def __init__(self):
        super().__init__()
        self.head = nn.Conv2d(16, 10, 1)
        self.features = nn.Sequential(nn.Conv2d(3, 16, 3), nn.ReLU())

    def forward(self, x):
        return self.head(self.features(x)).mean((2, 3))


def test_the_conv_adapted_is_the_first_the_images_reach_not_the_first_declared():
    torch.manual_seed(0)
    m = _HeadFirstFCN()
    head, stem = m.head, m.features[0]
    w = stem.weight.detach().clone()
    assert create_body(m, cut=lambda m: m.features) is m.features and m.head is head and m.features[0] is stem
    body = create_body(m, n_in=1, cut=lambda m: m)
    assert body is m and m.head is head and head.in_channels == 16
    assert m.features[0].in_channels == 1 and torch.allclose(m.features[0].weight, w.sum(1, keepdim=True))
    assert body(_grey_digits()).shape == (4, 10)


def test_a_body_cut_by_index_and_its_model_share_the_new_conv():
    m = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2))
    body = create_body(m, n_in=1, cut=2)
    assert body[0] is m[0] and m[0].in_channels == 1
    assert body(_grey_digits()).shape == (4, 8, 26, 26) and m(_grey_digits()).shape == (4, 2)


def test_create_body_keeps_each_layers_own_training_mode():
    model = resnet18()
    model.bn1.eval()  # a batch norm frozen inside a training model
    create_body(model, n_in=1)
    assert model.training and not model.bn1.training and model.layer1.training
    frozen = resnet18().eval()
    create_body(frozen, n_in=1)
    assert not any(x.training for x in frozen.modules())
