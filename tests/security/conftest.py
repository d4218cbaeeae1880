"""Fixtures the security tests share."""
from __future__ import annotations

import warnings

import pytest

from pipekit.data import CategoryBlock, DataBlock, GrandparentSplitter, get_image_files, parent_label
from pipekit.datasets import path as dataset_path
from pipekit.vision import ImageBlock


@pytest.fixture(scope="module")
def mnist_dls():
    """mnist_tiny's 3s and 7s, grey, at their own 28x28: what a small genuine vision export is trained on."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock), get_items=get_image_files, get_y=parent_label,
                         splitter=GrandparentSplitter()).dataloaders(dataset_path("mnist_tiny"), bs=64, seed=42)
