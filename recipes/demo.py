"""pipekit demo: a DataBlock over the real mnist_tiny digits, walked through and iterated for one epoch.

    make demo            # or: python recipes/demo.py
"""
from __future__ import annotations

import time

import pipekit.datasets as D
from pipekit.data import CategoryBlock, ColReader, DataBlock, GrandparentSplitter, TransformBlock


def datablock():
    path = D.path("mnist_tiny")
    dblock = DataBlock(blocks=(TransformBlock, CategoryBlock), get_x=ColReader("name", pref=path),
                       get_y=ColReader("label"), splitter=GrandparentSplitter(col="name"))
    return dblock, path / "labels.csv"


def main() -> None:
    dblock, source = datablock()
    dblock.summary(source)
    t0 = time.perf_counter()
    dls = dblock.dataloaders(source, bs=64, seed=42)
    n = sum(len(y) for _, y in dls.train) + sum(len(y) for _, y in dls.valid)
    print(dls)
    print(f"result: mnist_tiny one epoch, {n} items in {time.perf_counter() - t0:.2f}s, vocab={dls.vocab}")


if __name__ == "__main__":
    main()
