"""Architecture registry: recording constructor arguments, rebuilding, and clear errors."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from pipekit.core.errors import ExportError
from pipekit.learn import MLP, UnknownArchError, arch_spec, build_arch, register_arch, set_arch_spec, simple_cnn
from pipekit.learn.registry import config_from_data, config_to_data


@register_arch("test_tiny_net")
class TinyNet(nn.Module):
    def __init__(self, n_in: int, n_out: int, act: type = nn.ReLU, *extra: int, **opts: float):
        super().__init__()
        self.lin = nn.Linear(n_in, n_out)
        self.act = act()
        self.extra, self.opts = extra, opts

    def forward(self, x):
        return self.act(self.lin(x))


class SubNet(TinyNet):  # not registered: must not pose as TinyNet
    pass


@register_arch()
def wrapped_net(body: nn.Module, n_out: int = 2) -> nn.Module:
    return nn.Sequential(body, nn.Linear(body.lin.out_features, n_out))


def test_class_records_bound_arguments_and_rebuilds():
    m = TinyNet(3, 4, nn.Tanh, 7, scale=2.0)
    name, cfg = arch_spec(m)
    assert name == "test_tiny_net"
    assert cfg == {"n_in": 3, "n_out": 4, "act": nn.Tanh, "*args": [7], "scale": 2.0}
    js = config_to_data(cfg)
    assert js["act"] == {"__ref__": "torch.nn.Tanh"}
    m2 = build_arch(name, config_from_data(js))
    assert isinstance(m2.act, nn.Tanh) and m2.extra == (7,) and m2.opts == {"scale": 2.0}
    assert arch_spec(m2) == (name, {**cfg, "*args": [7]})


def test_unregistered_subclass_has_no_spec():
    assert arch_spec(SubNet(2, 2)) is None


def test_factory_with_nested_registered_module_roundtrips_weights():
    m = wrapped_net(TinyNet(5, 3), n_out=2)
    name, cfg = arch_spec(m)
    assert name == "wrapped_net"
    js = config_to_data(cfg)
    assert js["body"] == {"class": "pipekit.learn.ArchSpec", "state": {}, "params": {
        "name": "test_tiny_net", "config": {"n_in": 5, "n_out": 3, "act": {"__ref__": "torch.nn.ReLU"}}}}
    m2 = build_arch(name, config_from_data(js))
    m2.load_state_dict(m.state_dict())
    x = torch.randn(4, 5)
    assert torch.equal(m(x), m2(x))


def test_builtin_nets_are_registered():
    cnn = simple_cnn(n_in=1, n_out=10, channels=(4, 8))
    assert arch_spec(cnn) == ("simple_cnn", {"n_in": 1, "n_out": 10, "channels": (4, 8)})
    assert build_arch("simple_cnn", {"n_in": 1, "n_out": 10, "channels": [4, 8]})(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    assert arch_spec(MLP(4, 2, layers=[8]))[0] == "mlp"


def test_unknown_arch_error_says_what_to_register():
    with pytest.raises(UnknownArchError, match=r"register_arch\('no_such_net'\)"):
        build_arch("no_such_net", {})
    with pytest.raises(UnknownArchError):
        set_arch_spec(nn.Linear(2, 2), "no_such_net", {})


def test_non_json_argument_is_named():
    with pytest.raises(ExportError, match=r"config.act"):
        config_to_data({"n_in": 2, "act": lambda x: x}, where="config")
    # torch.nn classes are stored by name only from pipekit's list, never any attribute of torch.nn
    with pytest.raises(ExportError, match=r"config.layer .*not registered"):
        config_to_data({"layer": nn.TransformerEncoderLayer})
    with pytest.raises(ExportError, match=r"config.body is a Linear module that no registered architecture built"):
        config_to_data({"body": nn.Linear(2, 2)})
    with pytest.raises(ExportError, match=r"'torch.nn.TransformerEncoderLayer' is not registered"):
        config_from_data({"layer": {"__ref__": "torch.nn.TransformerEncoderLayer"}})


def test_name_clash_is_refused():
    with pytest.raises(ValueError, match="already registered"):
        register_arch("mlp")(lambda n: nn.Linear(n, n))
    with pytest.raises(TypeError, match="not an nn.Module"):
        register_arch("test_not_module")(type("NotModule", (), {}))
