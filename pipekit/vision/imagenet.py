"""ImageNet's 1000 classes, and zero-shot predictions with a pretrained ImageNet classifier.

The class list ships with pipekit (``imagenet_classes.txt``: WordNet id and lemmas per class, in class-index
order). Dogs are classes 151-268, domestic cats 281-285.

>>> from pipekit.vision import imagenet_labels
>>> names = imagenet_labels()
>>> len(names), names[0], names[151], names[281]
(1000, 'tench', 'Chihuahua', 'tabby')
"""
from __future__ import annotations

import functools
import importlib.resources
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pipekit.core.errors import DataError, ParameterError
from pipekit.core.validate import Interval, check
from pipekit.vision.decode import decode_image, image_from_value, is_image_value
from pipekit.vision.efficientnet import (EfficientNetLite, LiteImageNetHead, efficientnet_lite, efficientnet_lite_stats,
                                         lite_variant, pretrained_archs)

__all__ = ["imagenet_classes", "imagenet_labels", "imagenet_predict", "IMAGENET_DOGS", "IMAGENET_CATS"]

#: Class indices of dog breeds and of domestic cats in ImageNet-1k.
IMAGENET_DOGS, IMAGENET_CATS = range(151, 269), range(281, 286)

_CLASSES_FILE = "imagenet_classes.txt"


@functools.lru_cache(maxsize=1)
def imagenet_classes() -> tuple[tuple[str, tuple[str, ...]], ...]:
    """``(wordnet_id, lemmas)`` of each of the 1000 classes, in class-index order.

    >>> from pipekit.vision.imagenet import imagenet_classes
    >>> imagenet_classes()[285]
    ('n02124075', ('Egyptian cat',))
    """
    text = importlib.resources.files("pipekit.vision").joinpath(_CLASSES_FILE).read_text(encoding="utf-8")
    rows = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        wnid, _, lemmas = line.partition(" ")
        rows.append((wnid, tuple(lemmas.split(", "))))
    if len(rows) != 1000:
        raise DataError(f"pipekit/vision/{_CLASSES_FILE} lists {len(rows)} classes, not 1000: the installed "
                        "pipekit is damaged; reinstall it")
    return tuple(rows)


def imagenet_labels() -> list[str]:
    """One short label per class (the first WordNet lemma), in class-index order.

    >>> from pipekit.vision import IMAGENET_CATS, imagenet_labels
    >>> labels = imagenet_labels()
    >>> len(labels), [labels[i] for i in IMAGENET_CATS]
    (1000, ['tabby', 'tiger cat', 'Persian cat', 'Siamese cat', 'Egyptian cat'])
    """
    return [lemmas[0] for _, lemmas in imagenet_classes()]


def _to_batch(images: Any, size: int) -> torch.Tensor:
    """uint8 RGB images of any size -> float (N, 3, size, size): shorter side resized to ``size``, centre crop."""
    if isinstance(images, (np.ndarray, torch.Tensor)):
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ParameterError(f"imagenet_predict: images must be (N, height, width, 3) uint8, got shape "
                                 f"{tuple(images.shape)}")
        items = list(images)
    else:
        items = list(images)
    out = []
    for i, img in enumerate(items):
        # a file, or an image in memory as learn.predict takes it (encoded bytes, a PIL image, an array or a
        # tensor, grey or with alpha), as RGB pixels
        arr = decode_image(img, mode="RGB") if isinstance(img, (str, os.PathLike)) else \
            image_from_value(img, mode="RGB", name=f"image {i}")
        t = torch.from_numpy(np.array(arr, dtype=np.uint8))
        x = t.permute(2, 0, 1)[None].float()
        h, w = x.shape[-2:]
        scale = size / min(h, w)
        nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
        x = F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False, antialias=True)
        top, left = (nh - size) // 2, (nw - size) // 2
        out.append(x[..., top:top + size, left:left + size])
    if not out:
        raise ParameterError("imagenet_predict: no images given")
    return torch.cat(out) / 255.0


def imagenet_predict(model: nn.Module | str,
                     images: Any,
                     size: int | None = None, stats: tuple[Sequence[float], Sequence[float]] | None = None,
                     batch_size: int = 32) -> tuple[list[str], np.ndarray]:
    """Top-1 ImageNet class of each image: ``(labels, probabilities)``, with a model's 1000-class head.

    ``model``: an architecture with ImageNet weights by name (``"efficientnet_lite0"``, ``"efficientnet_lite1"``,
    ``"efficientnet_lite2"``: its pretrained classifier, what ``vision_learner(..., pretrained=True)`` starts
    from), or a model with a 1000-class head. ``images``: one image or a list of them (files, encoded bytes,
    PIL images, arrays or tensors, as ``learn.predict`` takes them), or one (N, height, width, 3) uint8 array. Each is resized (shorter side to ``size``, centre crop) and normalised
    with ``stats`` (0..1 scale). For an EfficientNet-Lite both default to what its weights were trained with;
    any other model needs them given.

    >>> import pipekit.datasets as D
    >>> from pipekit.vision import imagenet_predict
    >>> # dogscats is a large download (839 MB) the first time D.path("dogscats") is called
    >>> cat = D.path("dogscats") / "valid" / "cats" / "cat.1503.jpg"
    >>> dog = D.path("dogscats") / "valid" / "dogs" / "dog.1511.jpg"
    >>> labels, probs = imagenet_predict("efficientnet_lite0", [cat, dog])   # each image's top class, its probability
    >>> labels, probs.round(2)
    (['Egyptian cat', 'dalmatian'], array([0.69, 0.9 ], dtype=float32))
    """
    if isinstance(model, str):
        if model not in pretrained_archs():
            raise ParameterError(f"imagenet_predict: model={model!r} has no ImageNet weights in pipekit; use one of "
                                 f"{pretrained_archs()} or pass a model with a 1000-class head")
        model = efficientnet_lite(lite_variant(model).name, n_out=1000, head="imagenet", pretrained=True)
    if isinstance(model, EfficientNetLite):
        if not (isinstance(model.head, LiteImageNetHead) and model.head._fc.out_features == 1000):
            raise ParameterError("imagenet_predict: the model needs the 1000-class ImageNet head; build it with "
                                 "efficientnet_lite(variant, n_out=1000, head='imagenet', pretrained=True)")
        size = model.resolution if size is None else size
        stats = efficientnet_lite_stats if stats is None else stats
    elif size is None or stats is None:
        raise ParameterError(f"imagenet_predict: give size= and stats= for a {type(model).__name__} (the input size "
                             "and normalisation its ImageNet weights were trained with)")
    check("imagenet_predict", size=(size, Interval(8, None, integer=True)),
          batch_size=(batch_size, Interval(1, None, integer=True)))
    mean = torch.tensor(stats[0], dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(stats[1], dtype=torch.float32).view(1, -1, 1, 1)
    arrays = isinstance(images, (np.ndarray, torch.Tensor))
    one = isinstance(images, (str, os.PathLike, bytes, bytearray)) or (arrays and images.ndim < 4) or (  # type: ignore[union-attr]
        not arrays and is_image_value(images))
    items = [images] if one else images if isinstance(images, (np.ndarray, torch.Tensor)) else list(images)
    labels = imagenet_labels()
    param = next(model.parameters())
    was_training = model.training
    model.eval()
    names, probs = [], []
    try:
        with torch.inference_mode():
            for start in range(0, len(items), batch_size):
                x = (_to_batch(items[start:start + batch_size], size) - mean) / std
                logits = model(x.to(device=param.device, dtype=param.dtype)).float()
                if logits.ndim != 2 or logits.shape[1] != 1000:
                    raise ParameterError(f"imagenet_predict: the model gives outputs of shape {tuple(logits.shape)}, "
                                         "not one score per ImageNet class (N, 1000)")
                p, idx = logits.softmax(1).max(1)
                names += [labels[i] for i in idx.tolist()]
                probs.append(p.cpu().numpy())
    finally:
        model.train(was_training)
    return names, np.concatenate(probs).astype(np.float32)
