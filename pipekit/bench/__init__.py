"""pipekit.bench: measure data loaders the way pipekit measures itself.

* :func:`profile`: items/s, batches/s and the share of time per stage (read/decode, item transforms, cache
  gather, collate, host-to-device copy, each batch transform, waiting on prefetch), first epoch and
  steady state apart, with the cost of measuring stated;
* :func:`bottleneck`: loader alone, model alone on cached batches, and the real training step, with a
  verdict on which one limits training;
* :func:`compare`: two loaders in alternating rounds, the ratio per round with its spread;
* :func:`sweep`: one loader over ``num_workers`` settings, and the best;
* :func:`reference_loader`: a DataBlock as the plain torch ``DataLoader`` + albumentations a typical
  PyTorch project would write, to compare against.

>>> from pipekit.bench import compare, profile, reference_loader        # doctest: +SKIP
>>> p = profile((dblock, path), n_batches=50, bs=64)                    # doctest: +SKIP
>>> p.print_report(); p.plot("profile.png"); p.to_json("profile.json")  # doctest: +SKIP
"""
from pipekit.bench.bottleneck import Bottleneck, bottleneck
from pipekit.bench.compare import Comparison, Sweep, compare, sweep
from pipekit.bench.profile import STAGE_TOLERANCE, EpochProfile, LoaderProfile, StageTime, machine, profile
from pipekit.bench.reference import reference_loader

__all__ = ["profile", "bottleneck", "compare", "sweep", "reference_loader", "LoaderProfile", "EpochProfile",
           "StageTime", "Bottleneck", "Comparison", "Sweep", "STAGE_TOLERANCE", "machine"]
