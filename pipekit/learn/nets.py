"""Small plain models: an MLP and a small CNN, both registered so learners using them export safely.

>>> import torch
>>> m = simple_cnn(n_in=1, n_out=10, channels=(8, 16))
>>> m(torch.zeros(2, 1, 28, 28)).shape
torch.Size([2, 10])
"""
from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from pipekit.core.errors import FieldError, ParameterError
from pipekit.core.registry import register
from pipekit.core.validate import BOOL, POSITIVE_SIZES, Y_RANGE, Interval, Is, check
from pipekit.data.arrays import to_numpy
from pipekit.learn.registry import register_arch

__all__ = ["target_y_range", "Y_RANGES", "MLP", "simple_cnn", "ConvLayer", "ConvBlock", "NormType", "BatchNorm", "InstanceNorm", "LinBnDrop", "Flatten", "Lambda", "sequential", "ConcatPool2d", "body_head_splitter", "params", "trainable_params", "linear_layers",
           "Module", "Embedding", "create_params", "sigmoid_range", "SigmoidRange", "to_np", "to_cpu",
           "tensor", "one_hot"]


class Module(nn.Module):
    """An ``nn.Module`` whose subclasses need not call ``super().__init__()`` before assigning layers, as the book
    writes its models from scratch (fastai's ``Module``). Calling it anyway does no harm.

    >>> class DotProduct(Module):
    ...     def __init__(self, n_users, n_items, n_factors):
    ...         self.users, self.items = Embedding(n_users, n_factors), Embedding(n_items, n_factors)
    ...     def forward(self, x):
    ...         return (self.users(x[:, 0]) * self.items(x[:, 1])).sum(dim=1)
    >>> DotProduct(3, 4, 5)(torch.tensor([[0, 1], [2, 3]])).shape
    torch.Size([2])
    """

    def __new__(cls, *args: object, **kwargs: object) -> Module:
        obj = super().__new__(cls)
        nn.Module.__init__(obj)  # before the subclass's __init__ assigns its first layer
        return obj

    def __init__(self) -> None:
        """Nothing: ``nn.Module.__init__`` already ran when the object was made, so a subclass's
        ``super().__init__()`` does not reset the layers it assigned before calling it."""


class Embedding(nn.Embedding):
    """``nn.Embedding`` with small weights (a normal of standard deviation 0.01, truncated at two of them), as the
    book's collaborative filtering models start: torch's N(0, 1) start saturates a ``sigmoid_range`` output.

    >>> float(Embedding(1000, 8).weight.detach().std()) < 0.02
    True
    """

    def __init__(self, ni: int, nf: int, **kwargs: object) -> None:
        super().__init__(ni, nf, **kwargs)  # type: ignore[arg-type]
        with torch.no_grad():
            nn.init.trunc_normal_(self.weight, std=0.01, a=-0.02, b=0.02)


def create_params(size: Sequence[int] | int) -> nn.Parameter:
    """A parameter of shape ``size`` drawn from N(0, 0.01), the book's start for an embedding written by hand.

    >>> create_params([4, 3]).shape
    torch.Size([4, 3])
    """
    shape = (size,) if isinstance(size, int) else tuple(size)
    return nn.Parameter(torch.zeros(*shape).normal_(0, 0.01))


def noop(x: Any = None, *args: Any, **kwargs: Any) -> Any:
    """Its first argument, unchanged: the identity a layer stands in for, as chapter 14's ResBlock writes
    ``self.idconv = noop if ni == nf else ConvLayer(ni, nf, 1, act_cls=None)``.

    >>> noop(3), noop()
    (3, None)
    """
    return x


def to_np(x: torch.Tensor) -> np.ndarray:
    """A tensor as a NumPy array (detached, on the CPU; a bfloat16 one as its float32 values, which NumPy lacks).

    >>> to_np(torch.ones(2, requires_grad=True)).tolist(), to_np(torch.ones(2, dtype=torch.bfloat16)).dtype
    ([1.0, 1.0], dtype('float32'))
    """
    return to_numpy(x)


def tensor(x: Any, *rest: Any, **kwargs: Any) -> torch.Tensor:
    """``x`` as a tensor, as fastai's ``tensor`` (the book's chapter 4): a PIL image gives its pixels (``tensor(im3)``
    of a 28x28 grey image is ``(28, 28)`` uint8), a list, number or array a tensor of its values, several arguments
    one tensor of them (``tensor(1, 2, 3)``), a pandas or Polars frame or series its values (the course's
    ``tensor(df[['Age', 'LogFare']].values)`` or ``tensor(df.LogFare)``); ``kwargs`` as ``torch.tensor``'s
    (``dtype=``). Float64 values become float32, as fastai's do, so they feed a layer as they are; a ``dtype=``
    given is kept.

    >>> tensor([1, 2, 3]) + 1, tensor(1, 2, 3).tolist(), tensor(np.ones((2, 2), np.uint8)).dtype
    (tensor([2, 3, 4]), [1, 2, 3], torch.uint8)
    >>> tensor(np.array([0.5, 1.5])).dtype, tensor(np.array([0.5]), dtype=torch.float64).dtype
    (torch.float32, torch.float64)
    """
    if rest:
        x = (x, *rest)
    if type(x).__module__.startswith("PIL"):
        x = np.asarray(x)
    elif type(x).__module__.split(".")[0] in ("pandas", "polars") and hasattr(x, "to_numpy"):
        x = x.to_numpy()
    if isinstance(x, torch.Tensor):
        out = x
    elif isinstance(x, np.ndarray):
        out = torch.from_numpy(np.array(x))  # a copy: the image's or caller's buffer stays theirs
    else:
        out = torch.tensor(x, **kwargs)
        kwargs = {}
    if kwargs:
        return out.to(**kwargs)
    return out.float() if out.dtype == torch.float64 else out


def one_hot(x: Any, c: int) -> torch.Tensor:
    """A ``(c,)`` tensor of zeros with ones at the index or indices ``x`` (fastai's ``one_hot``, chapter 8's
    ``one_hot(3, n_users).float()`` that looks up a user's factors by a matrix product), of dtype uint8.

    >>> one_hot(3, 5), one_hot([0, 2], 4).tolist()
    (tensor([0, 0, 0, 1, 0], dtype=torch.uint8), [1, 0, 1, 0])
    """
    if not isinstance(c, (int, np.integer)) or isinstance(c, bool) or c < 1:
        raise ParameterError(f"one_hot: c is the number of classes, a whole number >= 1, got {c!r}")
    idx = torch.as_tensor(x, dtype=torch.long).reshape(-1)
    if len(idx) and (int(idx.min()) < 0 or int(idx.max()) >= c):
        raise ParameterError(f"one_hot: index {x!r} is outside 0..{c - 1}")
    res = torch.zeros(int(c), dtype=torch.uint8)
    res[idx] = 1
    return res


def to_cpu(x: Any) -> Any:
    """``x`` moved to the CPU: a tensor, or the tensors in a tuple, list or dict (nested as a batch is, e.g.
    ``to_cpu(dls.train.one_batch())``); anything else is returned as it is. Tensors keep their gradient history,
    as ``Tensor.cpu()`` keeps it (``to_np`` detaches).

    >>> xb, yb = to_cpu((torch.ones(2, 3), {"y": [torch.zeros(2)], "n": 2}))
    >>> xb.device.type, yb["y"][0].device.type, yb["n"]
    ('cpu', 'cpu', 2)
    """
    if isinstance(x, torch.Tensor):
        return x.cpu()
    if isinstance(x, dict):
        return {k: to_cpu(v) for k, v in x.items()}
    if isinstance(x, tuple) and hasattr(x, "_fields"):  # a named tuple is rebuilt field by field
        return type(x)(*(to_cpu(v) for v in x))
    if isinstance(x, (tuple, list)):
        return type(x)(to_cpu(v) for v in x)
    return x


def params(module: nn.Module) -> list[nn.Parameter]:
    """All parameters of ``module`` (a convenience for splitters).

    >>> from torch import nn
    >>> from pipekit.learn import params
    >>> model = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1))
    >>> [tuple(p.shape) for p in params(model)]
    [(2, 3), (2,), (1, 2), (1,)]
    >>> splitter = lambda m: [params(m[0]), params(m[2])]     # one layer group per linear layer
    >>> [len(g) for g in splitter(model)]
    [2, 2]
    """
    return list(module.parameters())


def trainable_params(module: nn.Module) -> list[nn.Parameter]:
    """The parameters of ``module`` that training changes (``requires_grad``), as fastai's ``trainable_params``:
    after ``freeze()``, or ``requires_grad_(False)`` on a layer, that layer's weights are left out.

    >>> model = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1)); _ = model[0].requires_grad_(False)
    >>> [tuple(p.shape) for p in trainable_params(model)]
    [(1, 3), (1,)]
    """
    return [p for p in module.parameters() if p.requires_grad]


def body_head_splitter(model: nn.Module) -> list[list[nn.Parameter]]:
    """Splitter for ``nn.Sequential(body, head)``: two parameter groups, body first.

    ``freeze()`` then trains only the head (plus batch-norm layers), as in transfer learning.

    >>> from torch import nn
    >>> from pipekit.learn import body_head_splitter, simple_cnn
    >>> body, head = body_head_splitter(simple_cnn(n_in=1, n_out=2, channels=(4, 8)))
    >>> len(body), len(head)                     # two conv blocks (conv, norm weight and bias); one linear layer
    (6, 2)
    >>> body_head_splitter(nn.Linear(3, 2))
    Traceback (most recent call last):
    ...
    pipekit.core.errors.ParameterError: body_head_splitter expects nn.Sequential(body, head); got Linear with 0 children
    """
    if not (isinstance(model, nn.Sequential) and len(model) == 2):
        raise ParameterError("body_head_splitter expects nn.Sequential(body, head); "
                             f"got {type(model).__name__} with {len(list(model.children()))} children")
    return [params(model[0]), params(model[1])]


# by name, as an export records a learner's layer groups (load_learner gives them back)
register(body_head_splitter, name="pipekit.learn.body_head_splitter", kind="layer_splitter")


def check_stored_layers(layers: Sequence[int], shapes: Mapping[str, Sequence[int]], field: str,
                        prefix: str = "layers.", name: str = "layers",
                        what: str = "hidden layer size(s)") -> list[int]:
    """Refuse hidden ``layers`` read from a file (the argument ``name`` of an architecture's stored ``field``) that
    are not the output sizes of the stored linear layers (2-d ``<prefix><i>.weight`` in ``shapes``, the last one
    the output): checked before building, as one module per requested layer costs time and memory even on the
    meta device. Returns the stored sizes (the output layer's last), for a caller to compare its output size.

    >>> check_stored_layers([4], {"layers.1.weight": (4, 3), "layers.3.weight": (2, 4)}, "arch.config")
    [4, 2]
    >>> check_stored_layers([1] * 500, {"layers.1.weight": (4, 3), "layers.3.weight": (2, 4)}, "arch.config")
    Traceback (most recent call last):
    ...
    pipekit.core.errors.FieldError: field 'arch.config.layers' has 500 hidden layer size(s), but the stored weights hold 1 hidden linear layer(s) of sizes [4]; the file is damaged or was not written by pipekit
    """
    key = re.compile(re.escape(prefix) + r"(\d+)\.weight")
    linear = sorted((int(m.group(1)), int(s[0])) for k, s in shapes.items()
                    if (m := key.fullmatch(k)) is not None and len(s) == 2)
    stored = [n for _, n in linear]
    layers = list(layers)
    if len(layers) + 1 != len(stored) or layers != stored[:-1]:
        raise FieldError(f"{field}.{name}", f"has {len(layers)} {what}{'' if len(layers) > 8 else f' {layers}'}, but "
                                            f"the stored weights hold {max(len(stored) - 1, 0)} hidden linear layer(s) "
                                            f"of sizes {stored[:-1][:8]}{' ...' if len(stored) > 9 else ''}; the file "
                                            "is damaged or was not written by pipekit")
    return stored


@register_arch("mlp")
class MLP(nn.Module):
    """Fully connected net: ``n_in -> layers... -> n_out`` with ReLU, optional batch-norm and dropout.

    Inputs with more than two dimensions are flattened, so images work too.

    >>> import torch
    >>> from pipekit.learn import MLP
    >>> from pipekit.learn import arch_spec
    >>> mlp = MLP(28 * 28, 10, layers=[32], ps=0.1)
    >>> tuple(mlp(torch.zeros(4, 1, 28, 28)).shape)     # a batch of 28x28 grey images
    (4, 10)
    >>> arch_spec(mlp)                          # what an export records to rebuild it
    ('mlp', {'n_in': 784, 'n_out': 10, 'layers': [32], 'ps': 0.1, 'use_bn': False})
    """

    def __init__(self, n_in: int, n_out: int, layers: Sequence[int] = (200, 100), ps: float = 0.0,
                 use_bn: bool = False):
        super().__init__()
        size = Interval(1, None, integer=True)
        check("MLP", n_in=(n_in, size), n_out=(n_out, size), ps=(ps, Interval(0, 1, closed="left")))
        mods: list[nn.Module] = [nn.Flatten()]
        sizes = [n_in, *layers]
        for a, b in zip(sizes[:-1], sizes[1:]):
            mods.append(nn.Linear(a, b, bias=not use_bn))
            if use_bn:
                mods.append(BatchNorm(b, ndim=1))
            mods.append(nn.ReLU(inplace=True))
            if ps > 0:
                mods.append(nn.Dropout(ps))
        mods.append(nn.Linear(sizes[-1], n_out))
        self.layers = nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x.float())

    @classmethod
    def check_stored(cls, config: Mapping[str, Any], shapes: Mapping[str, Sequence[int]], field: str) -> None:
        """Read by ``load_learner`` before the net is built: the stored ``layers`` against the stored weights."""
        layers = config.get("layers", (200, 100))
        if not POSITIVE_SIZES.accepts(layers):
            raise FieldError(f"{field}.layers", f"must be a list of positive layer sizes, got {str(layers)[:60]!r}; "
                                                "the file is damaged or was not written by pipekit")
        check_stored_layers(layers, shapes, field)


def linear_layers(sizes: Sequence[int], ps: Sequence[float]) -> list[nn.Module]:
    """Batch-norm (:func:`BatchNorm`), dropout ``ps[i]`` and a linear layer for each step of ``sizes``, with a ReLU
    between steps: the classifier heads of the image and text models.

    >>> [type(m).__name__ for m in linear_layers([8, 4, 2], [0.1, 0.2])]
    ['BatchNorm1d', 'Dropout', 'Linear', 'ReLU', 'BatchNorm1d', 'Dropout', 'Linear']
    """
    mods: list[nn.Module] = []
    for i, (a, b, p) in enumerate(zip(sizes[:-1], sizes[1:], ps)):
        mods += [BatchNorm(a, ndim=1), nn.Dropout(p), nn.Linear(a, b)]
        if i < len(sizes) - 2:
            mods.append(nn.ReLU(inplace=True))
    return mods


_NORMS = ("batch", "batch_zero", "instance", "instance_zero", None)
_NORMS_SAID = ("'batch' (NormType.Batch), 'batch_zero' (NormType.BatchZero), 'instance' (NormType.Instance), "
               "'instance_zero' (NormType.InstanceZero) or None")


class NormType:
    """``ConvLayer``'s ``norm_type`` under the book's names: ``ConvLayer(nf, nf, act_cls=None,
    norm_type=NormType.BatchZero)`` is ``norm_type="batch_zero"``. ``Instance`` normalises each image's channels
    on their own (style transfer, GANs); the ``Zero`` kinds start the norm's scale at 0.

    >>> from pipekit.learn import ConvLayer, NormType
    >>> NormType.Batch, NormType.BatchZero, NormType.Instance, NormType.InstanceZero
    ('batch', 'batch_zero', 'instance', 'instance_zero')
    >>> layer = ConvLayer(8, 8, act_cls=None, norm_type=NormType.BatchZero)
    >>> [type(m).__name__ for m in layer], float(layer[1].weight.detach().abs().sum())    # its norm's scale starts at 0
    (['Conv2d', 'BatchNorm2d'], 0.0)
    """

    Batch, BatchZero, Instance, InstanceZero = "batch", "batch_zero", "instance", "instance_zero"


def _norm(kind: str, nf: int, ndim: int, zero: bool, **kwargs: Any) -> nn.Module:
    """A norm layer (``kind`` 'BatchNorm' or 'InstanceNorm') of ``nf`` features over ``ndim`` dimensions, started as
    every norm pipekit builds: scale 1 (0 when ``zero``), shift 1e-3."""
    check(kind, nf=(nf, Interval(1, None, integer=True)), ndim=(ndim, Interval(1, 3, integer=True)))
    norm: nn.modules.batchnorm._NormBase = getattr(nn, f"{kind}{ndim}d")(nf, **kwargs)
    if norm.affine:
        with torch.no_grad():
            norm.bias.fill_(1e-3)
            norm.weight.fill_(0.0 if zero else 1.0)
    return norm


def BatchNorm(nf: int, ndim: int = 2, norm_type: str = "batch", **kwargs: Any) -> nn.Module:  # noqa: N802
    """A batch-norm layer of ``nf`` features over ``ndim`` 1, 2 or 3 (``BatchNorm1d``, ``2d``, ``3d``), as every
    batch norm pipekit builds starts: scale 1 (0 with ``norm_type="batch_zero"``, so a residual block starts as the
    identity) and shift 1e-3. ``kwargs`` go to torch's layer (``momentum=``, ``eps=``).

    >>> from pipekit.learn import BatchNorm
    >>> bn = BatchNorm(4, ndim=1)
    >>> type(bn).__name__, bn.weight.tolist(), [round(b, 4) for b in bn.bias.tolist()]
    ('BatchNorm1d', [1.0, 1.0, 1.0, 1.0], [0.001, 0.001, 0.001, 0.001])
    >>> BatchNorm(2, norm_type="batch_zero").weight.tolist()
    [0.0, 0.0]
    """
    check("BatchNorm", norm_type=(norm_type, Is(lambda v: v in ("batch", "batch_zero"),
                                                "'batch' (NormType.Batch) or 'batch_zero' (NormType.BatchZero)")))
    return _norm("BatchNorm", nf, ndim, norm_type == "batch_zero", **kwargs)


def InstanceNorm(nf: int, ndim: int = 2, norm_type: str = "instance", affine: bool = True,  # noqa: N802
                 **kwargs: Any) -> nn.Module:
    """An instance-norm layer of ``nf`` features over ``ndim`` 1, 2 or 3, which normalises each item's channels on
    their own; with ``affine`` (the default), a learnt scale starting at 1 (0 with ``norm_type="instance_zero"``)
    and shift starting at 1e-3, as :func:`BatchNorm`.

    >>> import torch
    >>> from pipekit.learn import InstanceNorm
    >>> norm = InstanceNorm(3)
    >>> type(norm).__name__, round(float(norm(torch.randn(2, 3, 8, 8)).detach().mean()), 4)   # each channel's mean: 1e-3
    ('InstanceNorm2d', 0.001)
    """
    check("InstanceNorm", norm_type=(norm_type, Is(lambda v: v in ("instance", "instance_zero"),
                                                   "'instance' (NormType.Instance) or 'instance_zero' "
                                                   "(NormType.InstanceZero)")), affine=(affine, BOOL))
    return _norm("InstanceNorm", nf, ndim, norm_type == "instance_zero", affine=affine, **kwargs)


class LinBnDrop(nn.Sequential):
    """Batch-norm, dropout and a linear layer (``n_in`` to ``n_out``), the book's block of a tabular model's or a
    head's layers: the batch norm (:func:`BatchNorm`, of ``n_in`` features, or of ``n_out`` with ``lin_first``)
    only with ``bn``, in which case the linear layer has no bias (the norm's shift is one); dropout only when
    ``p`` is above 0; ``act``, a layer such as ``nn.ReLU(inplace=True)``, right after the linear layer.
    ``lin_first`` puts the linear layer (and ``act``) first.

    >>> from torch import nn
    >>> from pipekit.learn import LinBnDrop
    >>> [type(m).__name__ for m in LinBnDrop(4, 3, p=0.5)], LinBnDrop(4, 3)[1].bias
    (['BatchNorm1d', 'Dropout', 'Linear'], None)
    >>> [type(m).__name__ for m in LinBnDrop(4, 3, bn=False, act=nn.ReLU(), lin_first=True)]
    ['Linear', 'ReLU']
    """

    def __init__(self, n_in: int, n_out: int, bn: bool = True, p: float = 0.0, act: nn.Module | None = None,
                 lin_first: bool = False):
        size = Interval(1, None, integer=True)
        check("LinBnDrop", n_in=(n_in, size), n_out=(n_out, size), bn=(bn, BOOL),
              p=(p, Interval(0, 1, closed="left")), lin_first=(lin_first, BOOL),
              act=(act, Is(lambda v: v is None or isinstance(v, nn.Module),
                           "None or a layer, e.g. nn.ReLU(inplace=True) (an instance, not the class nn.ReLU)")))
        layers: list[nn.Module] = [BatchNorm(n_out if lin_first else n_in, ndim=1)] if bn else []
        if p != 0:
            layers.append(nn.Dropout(p))
        lin: list[nn.Module] = [nn.Linear(n_in, n_out, bias=not bn)]
        if act is not None:
            lin.append(act)
        super().__init__(*(lin + layers if lin_first else layers + lin))


class Flatten(nn.Flatten):
    """Each item's values in one row (``full=True``: the whole batch in one vector), the last layer of the
    book's ``simple_cnn``.

    >>> Flatten()(torch.zeros(4, 2, 1, 1)).shape, Flatten(full=True)(torch.zeros(4, 2)).shape
    (torch.Size([4, 2]), torch.Size([8]))
    """

    def __init__(self, full: bool = False):
        super().__init__(start_dim=0 if full else 1)
        self.full = full

    def extra_repr(self) -> str:
        return f"full={self.full}"


class Lambda(nn.Module):
    """A function as a layer (what :func:`sequential` makes of a function among its layers).

    >>> Lambda(torch.relu)(torch.tensor([-1.0, 2.0])).tolist()
    [0.0, 2.0]
    """

    def __init__(self, func: Callable[..., Any]):
        super().__init__()
        if not callable(func):
            raise ParameterError(f"Lambda takes a function of the input, got {type(func).__name__}")
        self.func = func

    def forward(self, *args: Any) -> Any:
        return self.func(*args)

    def extra_repr(self) -> str:
        return getattr(self.func, "__name__", repr(self.func))


def sequential(*layers: Any) -> nn.Sequential:
    """``nn.Sequential`` of ``layers``, a function among them made a layer (:class:`Lambda`), as the book builds
    its CNNs: ``sequential(ConvLayer(1, 4, stride=2), ..., Flatten())``.

    >>> sequential(nn.Linear(3, 2), torch.relu, Flatten())(torch.ones(1, 3)).shape
    torch.Size([1, 2])
    """
    mods = []
    for i, layer in enumerate(layers):
        if isinstance(layer, nn.Module):
            mods.append(layer)
        elif callable(layer) and not isinstance(layer, type):
            mods.append(Lambda(layer))
        else:
            raise ParameterError(f"sequential: layer {i} is {layer!r:.60}, not a module or a function of the input"
                                 + (" (a class: give an instance, e.g. nn.ReLU())" if isinstance(layer, type) else ""))
    return nn.Sequential(*mods)


#: activations whose layers start from a Kaiming draw (keeps the activations' scale through a ReLU) and those that
#: start from a Xavier one (sigmoid, tanh), as fastai's ``init_linear`` picks them
_KAIMING = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.Mish, nn.SiLU)
_XAVIER = (nn.Sigmoid, nn.Tanh)


def init_for(layer: nn.Module, act_cls: type[nn.Module] | None, bias_std: float = 0.01) -> None:
    """Start ``layer``'s weights as fastai's ``init_linear`` does for the activation after it: Kaiming-uniform
    before a ReLU (or LeakyReLU, ReLU6, Mish, SiLU), Xavier-uniform before a sigmoid or tanh, torch's own
    otherwise; a bias from N(0, ``bias_std``).

    >>> import torch
    >>> from torch import nn
    >>> from pipekit.learn.nets import init_for
    >>> _ = torch.manual_seed(0)
    >>> conv = nn.Conv2d(64, 64, 3)
    >>> init_for(conv, nn.ReLU)
    >>> round(float(conv.weight.detach().std()), 2), round(float((2 / (64 * 9)) ** 0.5), 2)
    (0.06, 0.06)
    """
    bias, weight = getattr(layer, "bias", None), getattr(layer, "weight", None)
    if not isinstance(weight, torch.Tensor):
        return
    with torch.no_grad():
        if bias is not None:
            nn.init.normal_(bias, 0.0, bias_std)
        if isinstance(act_cls, type) and issubclass(act_cls, _KAIMING):
            nn.init.kaiming_uniform_(weight)
        elif isinstance(act_cls, type) and issubclass(act_cls, _XAVIER):
            nn.init.xavier_uniform_(weight)


class ConvLayer(nn.Sequential):
    """conv -> norm -> activation, the book's building block of a CNN: a ``ks`` convolution of ``stride``
    padded by ``(ks - 1) // 2`` (an odd ``ks`` keeps the size at stride 1; a transposed one is not padded), then
    ``norm_type`` (``"batch"``; ``"batch_zero"``, a batch-norm whose scale starts at 0, so a residual block starts as
    the identity; ``"instance"`` or ``"instance_zero"``, an instance norm (:func:`InstanceNorm`); or None, and the conv
    then has a bias), then ``act_cls()`` (None: no activation). ``ndim`` 1, 2 or 3 for sequences, images or volumes;
    ``transpose`` for an up-sampling convolution; ``kwargs`` go to the convolution (``groups=``, ``dilation=``,
    ``padding_mode=``). The convolution starts as fastai's does (:func:`init_for`): Kaiming before a ReLU, so a deep
    stack without batch-norm keeps its activations' scale; the norm as :func:`BatchNorm` starts it.

    >>> [type(m).__name__ for m in ConvLayer(3, 16, stride=2)]
    ['Conv2d', 'BatchNorm2d', 'ReLU']
    >>> ConvLayer(16, 16, act_cls=None, norm_type="batch_zero")[1].weight.abs().sum().item()
    0.0
    >>> conv = ConvLayer(4, 8, groups=2, dilation=2, padding_mode="reflect")[0]
    >>> conv.groups, conv.dilation, conv.padding_mode, tuple(conv.weight.shape)
    (2, (2, 2), 'reflect', (8, 2, 3, 3))
    """

    def __init__(self, ni: int, nf: int, ks: int = 3, stride: int = 1, padding: int | None = None,
                 bias: bool | None = None, ndim: int = 2, norm_type: str | None = "batch",
                 act_cls: type[nn.Module] | None = nn.ReLU, transpose: bool = False, **kwargs: Any):
        size = Interval(1, None, integer=True)
        check("ConvLayer", ni=(ni, size), nf=(nf, size), ks=(ks, size), stride=(stride, size),
              ndim=(ndim, Interval(1, 3, integer=True)), norm_type=(norm_type, Is(lambda v: v in _NORMS, _NORMS_SAID)))
        conv_cls = ({1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d} if transpose
                    else {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d})[ndim]
        takes = [k for k in inspect.signature(conv_cls).parameters
                 if k not in ("in_channels", "out_channels", "kernel_size", "stride", "padding", "bias")]
        unknown = sorted(set(kwargs) - set(takes))
        if unknown:
            raise ParameterError(f"ConvLayer: {', '.join(unknown)} is not an argument of ConvLayer or of its "
                                 f"{conv_cls.__name__}; ConvLayer passes on {', '.join(takes)}")
        pad = ((ks - 1) // 2 if not transpose else 0) if padding is None else padding
        conv = conv_cls(ni, nf, ks, stride=stride, padding=pad, bias=norm_type is None if bias is None else bias,
                        **kwargs)
        init_for(conv, act_cls)
        layers: list[nn.Module] = [conv]
        if norm_type in ("batch", "batch_zero"):
            layers.append(BatchNorm(nf, ndim=ndim, norm_type=norm_type))
        elif norm_type is not None:
            layers.append(InstanceNorm(nf, ndim=ndim, norm_type=norm_type))
        if act_cls is not None:
            layers.append(act_cls())
        super().__init__(*layers)


class ConvBlock(ConvLayer):
    """conv(stride 2) -> batch-norm -> ReLU: halves the spatial size.

    >>> import torch
    >>> from pipekit.learn import ConvBlock
    >>> block = ConvBlock(3, 8)
    >>> [type(m).__name__ for m in block], tuple(block(torch.zeros(2, 3, 28, 28)).shape)
    (['Conv2d', 'BatchNorm2d', 'ReLU'], (2, 8, 14, 14))
    """

    def __init__(self, ni: int, nf: int, ks: int = 3, stride: int = 2):
        super().__init__(ni, nf, ks, stride=stride)


#: what a y_range of several targets may be, as messages name it
Y_RANGES_SAID = ("a (low, high) pair shared by every target, or, for several targets, a pair of one bound per target "
                 "(lists, arrays or tensors of one length, e.g. (tensor([17., 1.]), tensor([91., 100.])))")


def _bounds(v: Any) -> list[Any] | None:
    """A bound of a ``y_range`` given per target (a list, tuple, 1-d array or tensor) as a list; None for one number."""
    if isinstance(v, (torch.Tensor, np.ndarray)):
        return None if v.ndim == 0 else v.tolist() if v.ndim == 1 else [v.tolist()]  # 2-d: refused as not numbers
    return list(v) if isinstance(v, (list, tuple)) else None


def _sides(y_range: Any) -> list[list[Any] | None] | None:
    """The two sides of a ``y_range`` given per target (each a list of bounds, or None for one number on that side);
    None for one ``(low, high)`` pair, or anything else, which :data:`~pipekit.core.validate.Y_RANGE` judges."""
    pair = _bounds(y_range) if not isinstance(y_range, (str, bytes, Mapping)) else None
    sides = [_bounds(b) for b in pair] if pair is not None and len(pair) == 2 else None
    return None if sides is None or all(b is None for b in sides) else sides


def per_target(y_range: Any) -> bool:
    """Whether ``y_range`` is given per target (a list, array or tensor of bounds on a side), not as one pair.

    >>> per_target((0, 5.5)), per_target(([17, 1], [91, 100]))
    (False, True)
    """
    return y_range is not None and _sides(y_range) is not None


def target_y_range(owner: str, y_range: Any, n_out: int | None = None
                   ) -> tuple[float, float] | tuple[list[float], list[float]] | None:
    """``y_range`` checked and as plain numbers: None; ``(low, high)`` shared by every output; or, as fastai's
    ``sigmoid_range`` broadcasts it over the columns, ``([low0, low1...], [high0, high1...])``, one range per target
    (bounds given as lists, tuples, 1-d arrays or tensors of one length; a single number on one side is every
    target's). Each target's range must be one :data:`~pipekit.core.validate.Y_RANGE` accepts. ``n_out``: the model's
    outputs per item, which a range per target must match. A ParameterError names what is wrong.

    >>> import torch
    >>> target_y_range("tabular_learner", (0, 5.5)), target_y_range("x", (torch.tensor([17, 1]), [91.0, 100]), 2)
    ((0.0, 5.5), ([17.0, 1.0], [91.0, 100.0]))
    >>> target_y_range("tabular_learner", ([17, 1], [91, 100]), n_out=3)
    Traceback (most recent call last):
    ...
    pipekit.core.errors.ParameterError: tabular_learner: y_range gives a range for each of 2 targets, and the model gives 3 outputs per item; give one low and one high per output (3 of each), or one (low, high) pair for all
    """
    if y_range is None:
        return None
    sides = _sides(y_range)
    if sides is None:
        check(owner, y_range=(y_range, Y_RANGE))
        return float(y_range[0]), float(y_range[1])
    lengths = {len(b) for b in sides if b is not None}
    if len(lengths) > 1 or 0 in lengths:
        raise ParameterError(f"{owner}: y_range has {' and '.join(str(len(b)) for b in sides if b is not None)} "
                             f"bounds on its two sides; expected {Y_RANGES_SAID}")
    n = lengths.pop()
    lows, highs = (b if b is not None else [y_range[i]] * n for i, b in enumerate(sides))
    for i, (lo, hi) in enumerate(zip(lows, highs)):
        if not Y_RANGE.accepts((lo, hi)):
            raise ParameterError(f"{owner}: y_range of target {i} is ({str(lo)[:30]}, {str(hi)[:30]}), which is not "
                                 f"accepted; each target's range must be {Y_RANGE}")
    if n_out is not None and n != n_out:
        raise ParameterError(f"{owner}: y_range gives a range for each of {n} targets, and the model gives {n_out} "
                             f"outputs per item; give one low and one high per output ({n_out} of each), or one "
                             "(low, high) pair for all")
    return [float(v) for v in lows], [float(v) for v in highs]


def _is_target_y_range(v: Any) -> bool:
    try:
        target_y_range("y_range", v)
    except (ParameterError, TypeError, ValueError):
        return False
    return True


#: a regression's output range as a file or a config holds it: None, one (low, high) pair
#: (:data:`~pipekit.core.validate.Y_RANGE`), or a pair of one bound per target (:func:`target_y_range`)
Y_RANGES = Is(_is_target_y_range, f"None, or {Y_RANGES_SAID}; each range of finite numbers with low < high, within "
              "float32's range")


def sigmoid_range(x: torch.Tensor, low: Any, high: Any) -> torch.Tensor:
    """Squash ``x`` into ``(low, high)``: numbers, or tensors of one bound per column of ``x``, broadcast over its
    rows (each target of a regression its own range, see :func:`target_y_range`).

    >>> import torch
    >>> from pipekit.learn import sigmoid_range
    >>> [round(v, 3) for v in sigmoid_range(torch.tensor([-20.0, 0.0, 20.0]), 0, 5.5).tolist()]   # ratings 0 to 5.5
    [0.0, 2.75, 5.5]
    """
    return torch.sigmoid(x) * (high - low) + low


class SigmoidRange(nn.Module):
    """A layer squashing its input into ``(low, high)`` (a regression head's ``y_range``): numbers, or one bound per
    target (lists, arrays or tensors of one length, as :func:`target_y_range` reads them), each column of the input
    squashed into its own range.

    >>> import torch
    >>> from torch import nn
    >>> from pipekit.learn import SigmoidRange
    >>> head = nn.Sequential(nn.Linear(3, 1), SigmoidRange(0, 5.5))     # predicts ratings from 0 to 5.5
    >>> head[1], head[1](torch.tensor([-1e4, 0.0, 1e4])).tolist()
    (SigmoidRange(low=0.0, high=5.5), [0.0, 2.75, 5.5])
    >>> SigmoidRange(torch.tensor([0.0, 1.0]), torch.tensor([5.0, 10.0]))(torch.zeros(2, 2)).tolist()   # two targets
    [[2.5, 5.5], [2.5, 5.5]]
    """

    low: Any
    high: Any

    def __init__(self, low: Any, high: Any):
        super().__init__()
        y_range = target_y_range("SigmoidRange", (low, high))  # finite in float32, as the layer computes
        assert y_range is not None
        if isinstance(y_range[0], list):  # one range per target, moved with the layer (not part of its weights)
            self.register_buffer("low", torch.tensor(y_range[0]), persistent=False)
            self.register_buffer("high", torch.tensor(y_range[1]), persistent=False)
        else:
            self.low, self.high = y_range

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(self.low, torch.Tensor) and (x.ndim == 0 or x.shape[-1] != len(self.low)):
            raise ParameterError(f"SigmoidRange has a range for each of {len(self.low)} targets, and its input of "
                                 f"shape {tuple(x.shape)} has {x.shape[-1] if x.ndim else 0} columns; give it one "
                                 "output per target, or one (low, high) pair for all")
        return sigmoid_range(x, self.low, self.high)

    def extra_repr(self) -> str:
        low, high = (v.tolist() if isinstance(v, torch.Tensor) else v for v in (self.low, self.high))
        return f"low={low}, high={high}"


class ConcatPool2d(nn.Module):
    """Global average and max pooling side by side: ``[bs, c, h, w] -> [bs, 2c]`` for any image size.

    One layer for both orders and shapes heads use: pipekit's heads take the defaults (average first, flattened);
    fastai's ``AdaptiveConcatPool2d`` (``pipekit.vision``) is this layer with ``max_first=True, flatten=False``,
    ``[bs, c, h, w] -> [bs, 2c, size, size]``. ``size``: the pooled height and width (an int, or ``(h, w)``);
    1, the default, pools each channel to one value. The layer has no weights, so its settings change no file.

    >>> x = torch.arange(8.).view(1, 2, 2, 2)
    >>> ConcatPool2d()(x).tolist(), ConcatPool2d(max_first=True, flatten=False)(x).shape
    ([[1.5, 5.5, 3.0, 7.0]], torch.Size([1, 4, 1, 1]))
    """

    def __init__(self, size: int | tuple[int, int] = 1, max_first: bool = False, flatten: bool = True):
        super().__init__()
        check(type(self).__name__, size=(size, Is(
            lambda v: POSITIVE_SIZES.accepts([v] if isinstance(v, int) else v) and (isinstance(v, int) or len(v) == 2),
            "a positive output size, or (height, width)")), max_first=(max_first, BOOL), flatten=(flatten, BOOL))
        self.size, self.max_first, self.flatten = size, max_first, flatten

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.size in (1, (1, 1), [1, 1]):
            avg, mx = x.mean((2, 3), keepdim=True), x.amax((2, 3), keepdim=True)
        else:
            avg, mx = nn.functional.adaptive_avg_pool2d(x, self.size), nn.functional.adaptive_max_pool2d(x, self.size)
        out = torch.cat([mx, avg] if self.max_first else [avg, mx], dim=1)
        return out.flatten(1) if self.flatten else out

    def extra_repr(self) -> str:
        defaults = {"size": 1, "max_first": False, "flatten": True}
        return ", ".join(f"{k}={getattr(self, k)!r}" for k, v in defaults.items() if getattr(self, k) != v)


@register_arch("simple_cnn")
def simple_cnn(n_in: int = 3, n_out: int = 10, channels: Sequence[int] = (16, 32, 64)) -> nn.Sequential:
    """A small CNN as ``nn.Sequential(body, head)``: stride-2 conv blocks, then avg+max pooling and a linear head.

    Use ``body_head_splitter`` as the Learner's splitter to freeze the body.

    >>> import torch
    >>> from pipekit.learn import simple_cnn
    >>> model = simple_cnn(n_in=1, n_out=2, channels=(4, 8))
    >>> tuple(model(torch.zeros(3, 1, 28, 28)).shape), len(model[0])    # 3 images, 2 classes; 2 conv blocks
    ((3, 2), 2)
    >>> [type(m).__name__ for m in model[1]]
    ['ConcatPool2d', 'Linear']
    """
    if not channels:
        raise ParameterError("simple_cnn: `channels` must list at least one layer width, e.g. (16, 32)")
    sizes = [n_in, *channels]
    body = nn.Sequential(*[ConvBlock(a, b) for a, b in zip(sizes[:-1], sizes[1:])])
    head = nn.Sequential(ConcatPool2d(), nn.Linear(2 * sizes[-1], n_out))
    return nn.Sequential(body, head)


_CONV_KEY = re.compile(r"0\.(\d+)\.0\.weight")


def check_stored_channels(config: Mapping[str, Any], shapes: Mapping[str, Sequence[int]], field: str) -> None:
    """Refuse a ``simple_cnn`` config read from a file whose ``channels`` are not the output widths of the stored
    convolutions (4-d ``0.<i>.0.weight`` in ``shapes``), before building: each requested width is one conv block,
    built even on the meta device, so a long list in a small file costs seconds and hundreds of MB per 20000.
    ``load_learner`` reads it as ``simple_cnn.check_stored``.

    >>> shapes = {"0.0.0.weight": (4, 1, 3, 3), "0.1.0.weight": (8, 4, 3, 3), "1.1.weight": (2, 16)}
    >>> check_stored_channels({"n_in": 1, "n_out": 2, "channels": [4, 8]}, shapes, "arch.config")
    >>> check_stored_channels({"channels": [1] * 500}, shapes, "arch.config")
    Traceback (most recent call last):
    ...
    pipekit.core.errors.FieldError: field 'arch.config.channels' has 500 width(s), but the stored weights hold 2 convolution(s) of widths [4, 8]; the file is damaged or was not written by pipekit
    """
    channels = config.get("channels", (16, 32, 64))
    if not POSITIVE_SIZES.accepts(channels):
        raise FieldError(f"{field}.channels", f"must be a list of positive widths, got {str(channels)[:60]!r}; the "
                                              "file is damaged or was not written by pipekit")
    convs = sorted((int(m.group(1)), tuple(s)) for k, s in shapes.items()
                   if (m := _CONV_KEY.fullmatch(k)) is not None and len(s) == 4)
    stored = [int(s[0]) for _, s in convs]
    if list(channels) != stored:
        raise FieldError(f"{field}.channels", f"has {len(channels)} width(s)"
                                              f"{'' if len(channels) > 8 else f' {list(channels)}'}, but the stored "
                                              f"weights hold {len(stored)} convolution(s) of widths {stored[:8]}"
                                              f"{' ...' if len(stored) > 8 else ''}; the file is damaged or was not "
                                              "written by pipekit")


simple_cnn.check_stored = check_stored_channels  # type: ignore[attr-defined]
