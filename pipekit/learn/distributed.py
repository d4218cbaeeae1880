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
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from torch import nn

from pipekit.core.errors import ParameterError
from pipekit.core.validate import Options, check
from pipekit.data.loader import PIPEKIT_LOADERS_FIX, DataLoader, ForeignLoader

if TYPE_CHECKING:
    from pipekit.learn.learner import Learner

__all__ = ["distributed_context", "rank_distrib", "is_main_process", "distrib_barrier", "trains_together"]


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


def _train_shard(train: Any, rank: int, world: int) -> Any:
    """This process's training loader: a pipekit loader's shard, or a torch loader that already reads this
    process's share through a ``DistributedSampler``; anything else is refused before the context changes anything."""
    if isinstance(train, DataLoader):
        sharded = train.shard(rank, world)
        sharded.epoch = train.epoch
        return sharded
    where = getattr(train, "where", type(train).__name__)
    if isinstance(train, ForeignLoader):
        sampler = train.distributed_sampler
        if sampler is not None and (sampler.num_replicas, sampler.rank) == (world, rank):
            return train  # the torch loader reads this process's share itself
        if sampler is not None:
            raise ParameterError(
                f"learn.distributed(): the training loader {where} reads through a DistributedSampler for rank "
                f"{sampler.rank} of {sampler.num_replicas}, and this process is rank {rank} of {world}: build it "
                f"with DistributedSampler(dataset, num_replicas={world}, rank={rank})")
    raise ParameterError(
        f"learn.distributed(): the training loader {where} cannot be split between the {world} processes (each would "
        "train on all of its batches, every item counted once per process in a step). Give the torch DataLoader "
        f"sampler=torch.utils.data.distributed.DistributedSampler(dataset, num_replicas={world}, rank={rank}) "
        "(shuffle=False on the DataLoader: the sampler shuffles, anew each epoch), "
        f"or {PIPEKIT_LOADERS_FIX}")


def _sync_batchnorm(model: nn.Module) -> tuple[nn.Module, Callable[[], None]]:
    """``model`` with its batch-norm layers made ``SyncBatchNorm`` (sharing their parameters and statistics), and
    a function that puts the original layers back in the user's model.

    >>> import torch
    >>> from pipekit.learn.distributed import _sync_batchnorm
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    >>> synced, restore = _sync_batchnorm(net)
    >>> type(net[1]).__name__
    'SyncBatchNorm'
    >>> restore(); type(net[1]).__name__
    'BatchNorm1d'
    """
    originals = [(parent, name, child) for parent in model.modules() for name, child in parent.named_children()
                 if isinstance(child, nn.modules.batchnorm._BatchNorm)]
    synced = nn.SyncBatchNorm.convert_sync_batchnorm(model)

    def restore() -> None:
        for parent, name, child in originals:
            child.train(getattr(parent, name).training)  # the statistics and parameters are the same tensors
            setattr(parent, name, child)
    return synced, restore


def distrib_barrier() -> None:
    """Wait until every process of a torchrun job gets here (nothing to wait for outside one). Every process must
    call it: one that never does leaves the others waiting.

    >>> from pipekit.learn.distributed import distrib_barrier
    >>> distrib_barrier()         # a plain ``python`` process: returns at once
    """
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def trains_together(model: nn.Module) -> bool:
    """Whether ``model`` is the ``DistributedDataParallel`` model of ``learn.distributed()`` (inside a
    ``torch.compile`` wrapper or not): the processes of the job then run the same steps, each on its own copy of
    the weights, and ``learn.load`` waits for all of them (:func:`distrib_barrier`) before reading, so a checkpoint
    rank 0 alone writes (``learn.save``, ``SaveModelCallback``) is whole when every process reads it. Anywhere
    else (no context, or after it) ``learn.load`` does not wait, and ``if is_main_process(): learn.load(name)`` is
    fine.

    >>> import torch
    >>> from pipekit.learn.distributed import trains_together
    >>> trains_together(torch.nn.Linear(2, 1))           # outside learn.distributed()
    False
    """
    while not isinstance(model, nn.parallel.DistributedDataParallel):
        inner = getattr(model, "_orig_mod", None)  # the model torch.compile runs
        if not isinstance(inner, nn.Module):
            return False
        model = inner
    return True


@contextlib.contextmanager
def distributed_context(learn: Learner, backend: str | None = None, sync_bn: bool = True,
                        find_unused_parameters: bool = False) -> Iterator[Learner]:
    """``with learn.distributed(): learn.fit_one_cycle(5, 1e-3)`` under ``torchrun``: a DDP model, each process
    reading its own shard of training batches; nothing happens outside torchrun. Backend: 'nccl' on CUDA,
    'gloo' on CPU. ``sync_bn`` syncs batch-norm statistics on CUDA (the model's batch-norm layers are its own
    again after the context). ``learn.distrib_ctx()`` (fastai's name) is the same context.

    The training loader is a pipekit loader (sharded as the module says), or a torch DataLoader that reads this
    process's share itself through a ``DistributedSampler``; any other is refused before the context changes
    anything. ``get_preds`` and ``validate`` with ``ds_idx=0`` read the whole training set, not the shard.

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
    loaders = learn.dls.loaders
    old_train = loaders[0]
    sharded = _train_shard(old_train, rank, world)  # a loader that cannot be shared out is refused here
    plain_model: nn.Module = learn.model
    restore_bn: Callable[[], None] | None = None
    created = finished = False
    try:
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
        model = plain_model
        if sync_bn and use_cuda:
            model, restore_bn = _sync_batchnorm(plain_model)
        learn.model = nn.parallel.DistributedDataParallel(
            model, device_ids=[local_rank] if use_cuda else None, find_unused_parameters=find_unused_parameters)
        loaders[0] = sharded
        # get_preds / validate on the training set (ds_idx=0) read all of it, not this process's shard
        learn.unsharded_train = old_train if sharded is not old_train else None
        yield learn
        finished = True
    finally:
        loaders[0] = old_train
        if sharded is not old_train:
            old_train.epoch = sharded.epoch  # later epochs keep fresh shuffles
        learn.unsharded_train = None
        if restore_bn is not None:
            restore_bn()
        learn.model = plain_model
        if created:
            if finished:  # after an error in one process the others may never reach a barrier
                dist.barrier()
            dist.destroy_process_group()
