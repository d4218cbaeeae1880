"""One call to make a run repeatable."""
from __future__ import annotations

import contextlib
import os
import random
import threading
import weakref
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch


# the loaders made so far and not yet collected (a weak set: it keeps none of them alive), which set_seed restarts
_LOADERS: weakref.WeakSet[Any] = weakref.WeakSet()
_LOADERS_LOCK = threading.Lock()


def register_loader(loader: Any) -> None:
    """Have ``set_seed`` restart ``loader`` (set its ``epoch`` back to 0) from now on, for as long as it lives;
    a :class:`~pipekit.data.loader.DataLoader` registers itself as it is made, copies of it included."""
    with _LOADERS_LOCK:
        _LOADERS.add(loader)


def restart_loaders() -> None:
    """Every loader made so far starts again at its epoch 0: the next pass over it reads the batches (and draws
    the augmentation) of its first epoch. An epoch under way ends as it began; the restart counts from the next."""
    with _LOADERS_LOCK:
        loaders = list(_LOADERS)
    for dl in loaders:
        dl.epoch = 0


def set_seed(seed: int, deterministic: bool = True, reproducible: bool | None = None) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) so a run can be repeated exactly on CPU, and restart the loaders
    already built at their first epoch.

    A loader's order and augmentation come from its seed (fixed as it is built) and its epoch, which counts on
    across learners: ``set_seed`` sets every live loader's epoch back to 0, so ``set_seed(0)`` before each of two
    learners made on one ``dls`` trains both on the same batches and gives the same results (re-running a
    notebook cell, comparing models on the same loaders). A loader iterated with no ``set_seed`` in between goes on
    to other batches each epoch; an epoch under way when it is called ends as it began.

    ``deterministic`` (the default) also switches torch to its deterministic kernels for the rest of the
    process (``torch.use_deterministic_algorithms``): with more than one CPU thread some backward passes
    otherwise add into the same gradient entry from several threads at once, in whatever order the threads
    run, so two runs of the same seed drift apart in the last bits (a tabular net's embedding gradient
    does). On CPU these kernels cost nothing measurable; on a GPU an op with no deterministic kernel warns
    instead of failing. ``deterministic=False`` leaves torch's settings as they are. ``reproducible`` is fastai's
    name for it (``set_seed(42, reproducible=True)``); given, it decides.

    >>> import torch
    >>> set_seed(42); a = torch.rand(2)
    >>> set_seed(42); bool((a == torch.rand(2)).all())
    True
    >>> torch.are_deterministic_algorithms_enabled()
    True
    >>> from pipekit.data import DataLoader
    >>> dl = DataLoader(list(range(6)), bs=3, shuffle=True, seed=0)
    >>> first = [b.tolist() for b in dl]; second = [b.tolist() for b in dl]
    >>> first != second, dl.epoch
    (True, 2)
    >>> set_seed(0); [b.tolist() for b in dl] == first
    True
    """
    seed_generators(seed, deterministic, reproducible)
    restart_loaders()


def seed_generators(seed: int, deterministic: bool = True, reproducible: bool | None = None) -> None:
    """What :func:`set_seed` does, less restarting the loaders: the process's generators seeded and torch's
    deterministic settings (see :func:`set_seed` for the arguments). A model seeding its own training
    (:func:`seeded`) uses it, so the loaders of the code around it go on where they were."""
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise TypeError(f"set_seed: seed must be an int, got {seed!r}")
    if reproducible is not None:
        deterministic = bool(reproducible)
    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    if deterministic:
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        # cuBLAS is repeatable only with a fixed workspace; read when its first handle is made
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        # deterministic mode would also fill every new empty tensor with NaN (a debugging aid that costs
        # each allocation and changes no result of code that writes before it reads)
        torch.utils.deterministic.fill_uninitialized_memory = False  # type: ignore[attr-defined]


# the environment variables set_seed writes, which seeded() gives back
_SEED_ENV = ("PYTHONHASHSEED", "CUBLAS_WORKSPACE_CONFIG")
_SEEDED = threading.RLock()  # one seeded run at a time: they all draw from the process's generators


@contextlib.contextmanager
def kept_random_states() -> Iterator[None]:
    """The global random generators (Python's, NumPy's, torch's and CUDA's) put back as they were when the block
    ends, whatever it drew: code measured or tried inside it (a benchmark's training steps drawing dropout masks)
    leaves a seeded run after it as it would have been.

    >>> _ = torch.manual_seed(0)
    >>> with kept_random_states():
    ...     _ = torch.rand(3)
    >>> after = torch.rand(1)
    >>> _ = torch.manual_seed(0)
    >>> bool(torch.rand(1) == after)
    True
    """
    py, npy, cpu = random.getstate(), np.random.get_state(), torch.random.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    try:
        yield
    finally:
        random.setstate(py)
        np.random.set_state(npy)
        torch.random.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run the block as after ``set_seed(seed)``, then give the process back its random state and torch's
    settings as they were: a model that seeds its own training (``TorchTabular``) neither changes the draws of
    the code around it nor takes them. The loaders already built are not restarted (``set_seed`` restarts them):
    the ones of the code around the block go on at the epoch they were at. Seeded blocks run one at a time (a
    lock), so two such models fitted in threads (``BaggedModel(..., n_jobs=2)``) each draw their own seed's
    numbers, as fitted one after the other. The generators are the process's own (torch's dropout draws from no other): code of yours drawing from them in
    another thread while such a block runs takes numbers from its stream, which then changes the model, and gets its
    own numbers changed; keep the two apart, or fit in another process, where the same seed must give the same
    model.

    >>> np.random.seed(123); before = np.random.rand()
    >>> np.random.seed(123)
    >>> with seeded(7): inside = torch.rand(1)
    >>> np.random.rand() == before, torch.are_deterministic_algorithms_enabled() is not None
    (True, True)
    """
    with _SEEDED, kept_random_states():
        env = {name: os.environ.get(name) for name in _SEED_ENV}
        fill = torch.utils.deterministic.fill_uninitialized_memory  # type: ignore[attr-defined]
        algorithms = (torch.are_deterministic_algorithms_enabled(),
                      torch.is_deterministic_algorithms_warn_only_enabled())
        cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
        try:
            seed_generators(seed)  # the loaders of the code around the block go on where they were
            yield
        finally:
            for name, value in env.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
            torch.utils.deterministic.fill_uninitialized_memory = fill  # type: ignore[attr-defined]
            torch.use_deterministic_algorithms(algorithms[0], warn_only=algorithms[1])
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn
