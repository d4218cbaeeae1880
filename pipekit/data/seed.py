"""One call to make a run repeatable."""
from __future__ import annotations

import contextlib
import itertools
import os
import random
import threading
from collections.abc import Iterator

import numpy as np
import torch


# how many times set_seed has been called in this process, and the seed it was given last
_RESEEDS = itertools.count(1)
_GENERATION: tuple[int, int | None] = (0, None)
#: this process's mark on what it records of those calls: a loader pickled in another process counts another's
PROCESS_MARK = os.urandom(8).hex()


def reseed_generation() -> tuple[int, int | None]:
    """``(n, seed)``: how many times :func:`set_seed` has been called in this process (0 before the first) and
    the seed it was given last (None before the first). A :class:`~pipekit.data.loader.DataLoader` compares it
    with the one it last saw to tell that ``set_seed`` was called since (see :func:`set_seed`).

    >>> n, _ = reseed_generation()
    >>> set_seed(5); reseed_generation() == (n + 1, 5)
    True
    """
    return _GENERATION


def reseeded_stream(base: int, seed: int) -> int:
    """The seed a loader built with seed ``base`` draws its order and augmentation with after ``set_seed(seed)``:
    the same pair, the same stream; another ``seed``, another one.

    >>> reseeded_stream(3, 0) == reseeded_stream(3, 0), reseeded_stream(3, 0) == reseeded_stream(3, 1)
    (True, False)
    """
    return int(np.random.SeedSequence([int(base), int(seed) % 2**64]).generate_state(1)[0])


def set_seed(seed: int, deterministic: bool = True, reproducible: bool | None = None) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) so a run can be repeated exactly on CPU, and start the loaders
    already built afresh from this seed.

    A loader's order and augmentation come from its seed (given, or drawn from NumPy's generator as it is built)
    and its epoch, which counts on across learners. A loader built before a ``set_seed`` and iterated after it
    starts again at epoch 0: with the seed it was given (``seed=``, which fixes its batches), or, its seed drawn
    from NumPy's generator, with that seed when this value is the one in force as it was drawn, else with a stream
    made of it and this one. So ``set_seed(42)``, the loaders, a learner fitted, then ``set_seed(42)`` and a second
    learner on the same ``dls`` trains both on the same batches and augmentation and gives the same results
    (re-running a notebook cell, comparing models on the same loaders), while ``set_seed(1)`` gives loaders built
    without ``seed=`` other batches (a sweep over seeds).
    Reseeding each epoch with the same value (a callback's ``before_epoch`` calling ``set_seed(42)``) repeats the
    same epoch; ``set_seed(e)`` at epoch ``e`` gives each its own. A loader built after the call and never reseeded
    reads as its seed alone says. An epoch under way when it is called ends as it began (unless ``dl.seed`` or
    ``dl.epoch`` is read during it); the restart counts from the next. To resume a fit exactly, call it before
    ``learn.load``, which puts back the loaders' place. A ``torch.utils.data.DataLoader`` given to ``DataLoaders``
    as it is keeps its own order: a ``generator`` of its own goes on where it was (this reseeds torch's global
    generator only, which one without a ``generator`` draws from).

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
    >>> dl = DataLoader(list(range(8)), bs=4, shuffle=True, seed=0)
    >>> first = [b.tolist() for b in dl]; second = [b.tolist() for b in dl]
    >>> first != second, dl.epoch
    (True, 2)
    >>> set_seed(7); [b.tolist() for b in dl] == first, dl.epoch  # epoch 0 of the seed it was given, again
    (True, 1)
    """
    global _GENERATION
    seed_generators(seed, deterministic, reproducible)
    _GENERATION = (next(_RESEEDS), int(seed))


def seed_generators(seed: int, deterministic: bool = True, reproducible: bool | None = None) -> None:
    """What :func:`set_seed` does, less starting the loaders afresh (:func:`reseed_generation` is left as it
    is): the process's generators seeded and torch's deterministic settings (see :func:`set_seed` for the
    arguments). A model seeding its own training (:func:`seeded`) uses it, so the loaders of the code around it go
    on where they were."""
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
    the code around it nor takes them. The loaders already built are not started afresh (``set_seed`` starts
    them afresh): the ones of the code around the block go on at the epoch they were at. Seeded blocks run one at a time (a
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
