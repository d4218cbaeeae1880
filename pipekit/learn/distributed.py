"""Data-parallel training with ``torchrun``: ``with learn.distributed(): learn.fit_one_cycle(...)``.

Launched as ``torchrun --nproc_per_node N train.py``, each process wraps the model in
DistributedDataParallel and reads its own shard of the training batches (``DataLoader.shard``): the
batch plan of an epoch (seeded, identical everywhere) is dealt out round-robin, so rank ``r`` takes
batches ``r, r+N, ...`` and one step of N processes with batch size ``bs`` sees exactly the items of one ``N*bs`` batch of a
single process. Validation runs on the full set in every process, so metrics need no gathering.
Outside ``torchrun`` (WORLD_SIZE unset or 1) the context does nothing.

>>> # train.py, run with: torchrun --nproc_per_node 2 train.py
>>> # learn = Learner(dls, MLP(10, 2)); with learn.distributed(): learn.fit(3, 1e-3)
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import torch
import torch.distributed as dist
from torch import nn

from pipekit.core.validate import Options, check

if TYPE_CHECKING:
    from pipekit.learn.learner import Learner

__all__ = ["distributed_context", "rank_distrib", "is_main_process"]


def rank_distrib() -> int:
    """This process's rank (0 outside torchrun).

    >>> from pipekit.learn.distributed import rank_distrib
    >>> rank_distrib()            # a plain ``python`` process: the only one
    0
    """
    initialized = dist.is_available() and dist.is_initialized()
    return dist.get_rank() if initialized else int(os.environ.get("RANK", 0))


def is_main_process() -> bool:
    """True in the process that should print, save and export (rank 0).

    >>> from pipekit.learn.distributed import is_main_process
    >>> is_main_process()         # outside torchrun every process is the main one
    True
    """
    return rank_distrib() == 0


@contextlib.contextmanager
def distributed_context(learn: Learner, backend: str | None = None, sync_bn: bool = True,
                        find_unused_parameters: bool = False) -> Iterator[Learner]:
    """``with learn.distributed(): learn.fit_one_cycle(5, 1e-3)`` under ``torchrun``: a DDP model, each process
    reading its own shard of training batches; nothing happens outside torchrun. Backend: 'nccl' on CUDA,
    'gloo' on CPU. ``sync_bn`` syncs batch-norm statistics on CUDA.

    >>> import torch, torch.nn.functional as F
    >>> from pipekit.data import DataLoaders
    >>> from pipekit.learn import Learner
    >>> ds = list(zip(torch.randn(32, 4), torch.randint(0, 2, (32,))))
    >>> learn = Learner(DataLoaders.from_dsets(ds, ds, bs=16, device="cpu"), torch.nn.Linear(4, 2), loss_func=F.cross_entropy)
    >>> with learn.distributed() as ctx:               # outside torchrun: the learner as it is, no DDP wrapper
    ...     print(ctx is learn, type(ctx.model).__name__)
    True Linear
    """
    world = int(os.environ.get("WORLD_SIZE", 1))
    if world <= 1:
        yield learn
        return
    rank, local_rank = int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", 0))
    use_cuda = learn.device.type == "cuda" and torch.cuda.is_available()
    backend = backend or ("nccl" if use_cuda else "gloo")
    check("distributed", backend=(backend, Options("nccl", "gloo", "mpi")))
    created = False
    if not dist.is_initialized():
        if use_cuda:
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend)
        created = True
    if use_cuda:
        learn.device = torch.device("cuda", local_rank)
        learn.model.to(learn.device)
        learn.dls.to(learn.device)
    if learn.opt is None:  # the splitter sees the plain model, not the DDP wrapper
        learn.create_opt()
    plain_model: nn.Module = learn.model
    model = nn.SyncBatchNorm.convert_sync_batchnorm(plain_model) if sync_bn and use_cuda else plain_model
    learn.model = nn.parallel.DistributedDataParallel(
        model, device_ids=[local_rank] if use_cuda else None, find_unused_parameters=find_unused_parameters)
    loaders = learn.dls.loaders
    old_train = loaders[0]
    sharded = old_train.shard(rank, world)
    sharded.epoch = old_train.epoch
    loaders[0] = sharded
    try:
        yield learn
    finally:
        loaders[0] = old_train
        old_train.epoch = sharded.epoch  # later epochs keep fresh shuffles
        learn.model = plain_model
        if created:
            dist.barrier()
            dist.destroy_process_group()
