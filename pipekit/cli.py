"""Command line: ``pipekit run | summary | predict | datasets | cache | bench | bench-loader``.

    pipekit datasets list             # which data sets are available locally
    pipekit cache info                # where the image and token caches are, and their sizes
    pipekit cache clear --tokens      # delete the token cache (--images: the presized images; neither: both)
    pipekit run adult --quick         # run a built-in recipe (pipekit run --list names them all)
    pipekit run path/to/recipe.py     # run your own recipe file
    pipekit summary mnist_tiny        # walk one batch of a recipe's data through the pipeline
    pipekit predict model.pipekit cat.jpg dog.jpg    # an exported model's prediction for each file
    pipekit predict ensemble.pipekit rows.csv        # a saved ensemble's (ens.export) for each row of a table
    pipekit predict clf.pipekit rows.csv             # a TabularClassifier's (pipekit.save(clf, ...)) too
    pipekit bench image_loader        # run benchmarks/image_loader.py (in a pipekit source checkout)
    pipekit bench-loader my_recipe.py --batches 50 --workers 0,2,4 --compare reference
    pipekit --version

The built-in recipes ship inside the package (``pipekit.recipes``; the ``recipes/`` folder of a source
checkout), so an installed wheel runs them too. The benchmarks compare pipekit with other libraries and
live only in a source checkout's ``benchmarks/`` folder.
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import importlib
import importlib.util
import math
import os
import runpy
import signal
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pipekit
from pipekit.core.errors import DatasetUnavailableError, ParameterError, PipekitError, WeightsNotInstalledError
from pipekit.core.validate import POSITIVE, Interval, Is
from pipekit.recipe_files import (MODEL_SUFFIX, builtin_recipes, check_syntax, out_file, out_folder,  # noqa: F401
                                  recipe_module, running_syntax_message, user_file)  # out_*: recipes import them here

#: the folder holding the ``pipekit`` package: a source checkout when it has a pyproject.toml
CHECKOUT = Path(pipekit.__file__).resolve().parents[1]


def recipe_parser(file: str, doc: str | None, **kwargs: Any) -> argparse.ArgumentParser:
    """The argument parser of the built-in recipe in ``file`` (its ``__file__``): its usage and error lines name the
    command that runs it, ``pipekit run NAME``, not the file."""
    return argparse.ArgumentParser(prog=f"pipekit run {Path(file).stem}", description=doc, **kwargs)


def number_option(interval: Interval | Is, integer: bool | None = None) -> Callable[[str], Any]:
    """An argparse ``type=`` for a number option taking the values of ``interval`` (an integer one when
    ``interval.integer``, or ``integer`` when given: an :class:`~pipekit.core.validate.Is` rule for values no one
    interval holds): a value outside it is argparse's one-line error, before the recipe does any work.

    >>> epochs = number_option(POSITIVE_INT)
    >>> epochs("3")
    3
    >>> epochs("0")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: expected an integer in [1, inf], got '0'
    >>> n_jobs = number_option(N_JOBS, integer=True)
    >>> n_jobs("-1"), n_jobs("4")
    (-1, 4)
    >>> n_jobs("0")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: expected -1 (every core) or a positive integer, got '0'
    """
    whole = bool(getattr(interval, "integer", False)) if integer is None else integer

    def parse(text: str) -> Any:
        try:
            value: Any = int(text) if whole else float(text)
        except ValueError:
            value = None
        if value is None or not math.isfinite(value) or not interval.accepts(value):
            raise argparse.ArgumentTypeError(f"expected {interval}, got {text!r}")
        return value

    parse.__name__ = "integer" if whole else "number"  # argparse's "invalid <name> value" when unused
    return parse


#: the intervals of a recipe's usual number options: counts (epochs, factors, sizes), rates and time limits,
#: amounts that may be zero (weight decay, dropout), seeds (torch's and NumPy's; a recipe fitting boosters takes
#: theirs) and the processes or threads of a forest or booster (-1: every core)
POSITIVE_INT = Interval(1, None, integer=True)
NON_NEGATIVE = Interval(0, None)
SEED_MAX = 2**31 - 1  # LightGBM's seed is a C int
SEED = Is(lambda v: 0 <= v < 2**64, "a seed from 0 to 2**64 - 1")  # torch's and NumPy's
BOOSTER_SEED = Is(lambda v: 0 <= v <= SEED_MAX, f"a seed from 0 to {SEED_MAX} (the boosters' limit)")
N_JOBS = Is(lambda v: v == -1 or v >= 1, "-1 (every core) or a positive integer")
positive_int = number_option(POSITIVE_INT)
positive_number = number_option(POSITIVE)
non_negative_number = number_option(NON_NEGATIVE)
seed_int = number_option(SEED, integer=True)
booster_seed_int = number_option(BOOSTER_SEED, integer=True)
n_jobs_int = number_option(N_JOBS, integer=True)


def _run_main(path: Path, argv: list[str], own_folder: bool = True, name: str | None = None) -> int:
    """Run the script at ``path`` as ``__main__`` with ``sys.argv`` and ``sys.path`` as if it had been started by
    itself (``python path``): with ``own_folder``, its folder first on the path, so it imports the modules beside
    it. A built-in recipe is a module of ``pipekit.recipes`` and imports as one: its folder stays off the path,
    where its file names (``demo``, ``transfer``) would hide modules of those names.

    ``name``: the built-in recipe's name; a pipekit error it raises (an option or data set to fix) is said in one
    line, ``pipekit run NAME: message``. A user's own recipe file keeps Python's traceback for its errors, pipekit's
    included, as ``python path`` shows them: the line of the file that made the call is the one to fix."""
    old = sys.argv
    sys.argv = [str(path), *argv]
    folder = str(path.resolve().parent)
    if own_folder:
        sys.path.insert(0, folder)
    try:
        check_syntax(path)  # the file itself: "not valid Python"; a SyntaxError raised later is not the file's
        runpy.run_path(str(path), run_name="__main__")
    except SystemExit as e:
        if isinstance(e.code, str):
            print(e.code, file=sys.stderr)
            return 1
        return int(e.code or 0)
    except SyntaxError as e:  # a module it imports (named), or the recipe's own eval/exec (its traceback)
        said = running_syntax_message(path, e)
        if said is None:
            raise
        print(said, file=sys.stderr)
        return 1
    except (WeightsNotInstalledError, DatasetUnavailableError) as e:  # said in full by pipekit: no traceback
        print(printable(f"pipekit run: {e}"), file=sys.stderr)
        return 1
    except PipekitError as e:
        if name is None:
            raise
        print(printable(f"pipekit run {name}: {str(e).removeprefix(f'{name}: ')}"), file=sys.stderr)
        return 1
    finally:
        sys.argv = old
        if own_folder and folder in sys.path:  # the first one: the script may have put it there itself too
            sys.path.remove(folder)
    return 0


def _imports_local(node: ast.Import | ast.ImportFrom, folder: Path | None) -> bool:
    """Whether the import ``node`` imports a module of the script's own ``folder`` (a ``.py`` file or a package
    beside it, which it finds first on its path, or a relative import), which runs that module's code: a script
    whose work is ``import prepare_data`` does something. Installed and standard modules (numpy, pipekit, sys)
    only define names, and so does any import when the folder is unknown."""
    if isinstance(node, ast.ImportFrom) and node.level:
        return True
    if folder is None:
        return False
    tops = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
    return any((folder / f"{top}.py").is_file() or (folder / top / "__init__.py").is_file()
               for top in (t.partition(".")[0] for t in tops) if top)


#: top-level statements that only define names: a file of nothing else does nothing when run
_DEFINING = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Assign,
             ast.AnnAssign, ast.AugAssign, ast.Pass)


def _calls_when_run(node: ast.AST) -> bool:
    """Whether running the top-level statement ``node`` calls something: anywhere in it but the bodies of the
    functions it defines (a decorator and default values run; a class body runs)."""
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, (ast.Call, ast.Await)) or getattr(n, "decorator_list", None):
            return True  # a decorator is called with what it decorates
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            stack += [*n.args.defaults, *(d for d in n.args.kw_defaults if d)]
            continue
        stack += ast.iter_child_nodes(n)
    return False


def defines_only(source: str, folder: Path | None = None) -> list[str] | None:
    r"""The names a Python file defines when it only defines names (imports, functions, classes, assignments,
    docstrings: nothing to run, no ``if __name__ == "__main__":`` block), else None (it does something when run,
    or is no valid Python). An import of a module in the file's ``folder`` (or a relative one) runs that module,
    so it does something; an import of an installed or standard module only defines a name.

    >>> defines_only("'Digits.'\nimport sys\nBS = 64\ndef datablock():\n    return sys.argv\n")
    ['BS', 'datablock']
    >>> defines_only("def main():\n    pass\n\nif __name__ == '__main__':\n    main()\n") is None
    True
    >>> defines_only("def main():\n    return 1\nresult = main()\n") is None
    True
    >>> defines_only("import atexit\n@atexit.register\ndef report():\n    print('saved')\n") is None
    True
    >>> import tempfile
    >>> here = Path(tempfile.mkdtemp())
    >>> _ = (here / "prepare.py").write_text("print('prepared the data')\n")
    >>> defines_only("import sys\nimport prepare\n", here) is None  # prepare.py, beside the file, runs
    True
    >>> defines_only("from prepare import cleaned\n", here) is None
    True
    >>> defines_only("from . import prepare\n") is None
    True
    >>> defines_only("import sys, numpy\nfrom pipekit.data import DataBlock\nBS = 64\n", here)
    ['BS']
    """
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return None
    names: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            continue  # a docstring
        if not isinstance(node, _DEFINING):
            return None
        if isinstance(node, (ast.Import, ast.ImportFrom)) and _imports_local(node, folder):
            return None  # the module beside the file runs when imported
        if _calls_when_run(node):
            return None  # `learn = train()` or a decorator runs something, where `BS = 64` only names a value
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names += [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]
    return list(dict.fromkeys(names))


def _nothing_ran(path: Path) -> str | None:
    """What to say after running ``path`` when the file only defines names, so running it did nothing."""
    try:
        names = defines_only(path.read_text(encoding="utf-8"), path.resolve().parent)
    except (OSError, UnicodeDecodeError):
        return None
    if names is None:
        return None
    main_block = 'add an `if __name__ == "__main__":` block'
    if not names:
        return f"pipekit run: {path} holds no code that runs, so it did nothing: {main_block} that does something"
    shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
    instead = [f"walk its data with `pipekit summary {path}` or profile its loader with `pipekit bench-loader "
               f"{path}`"] if {"datablock", "dataloaders"} & set(names) else []
    return (f"pipekit run: {path} only defines names ({shown}) and has no code that runs them, so it did nothing: "
            f"{', or '.join([*instead, main_block + ' that calls them'])}")


def cmd_run(args: argparse.Namespace) -> int:
    if args.list:
        print("\n".join(builtin_recipes()))
        return 0
    if not args.recipe:
        raise SystemExit("pipekit run: name a recipe (pipekit run --list shows them) or a recipe file")
    path = user_file(args.recipe, "recipe")
    builtin = path is None
    if path is None:
        spec = importlib.util.find_spec(recipe_module(args.recipe, "run"))
        assert spec is not None and spec.origin  # listed by builtin_recipes(), so its file is there
        path = Path(spec.origin)
    rc = _run_main(path, args.args, own_folder=not builtin, name=args.recipe if builtin else None)
    said = _nothing_ran(path) if rc == 0 else None
    if said:
        print(said, file=sys.stderr)
    return rc


def cmd_summary(args: argparse.Namespace) -> int:
    from pipekit.recipe_files import load_recipe, recipe_loaders

    try:  # what the recipe returns is checked as bench-loader checks it; a step that fails is said in one line
        with said_warnings("pipekit summary"):
            mod = load_recipe(args.recipe, "summary")
            pair, dls, _ = recipe_loaders(mod, who="summary")
            if pair is not None:
                pair[0].summary(pair[1])
            else:
                dls.summary()
    except PipekitError as e:
        raise SystemExit(printable(f"pipekit summary: {str(e).removeprefix('summary: ')}")) from None
    return 0


def _label(decoded: Any, dec: Any, probs: Any, classes: Any = None) -> str:
    """One prediction as a line: a class and the model's probability for it, labels each with its probability
    (multi-label), a mask's classes by their share of its pixels (``classes``: the mask codes), a number or
    coordinates (labels through :func:`printable`: they come from the data a model was fitted on).

    >>> import torch
    >>> _label(["3", "7"], torch.tensor([True, False, True]), torch.tensor([0.91, 0.2, 0.5]))
    '3 0.9100, 7 0.5000'
    >>> _label(torch.tensor([[0, 0, 1], [2, 2, 2]]), None, None, classes=["road", "sky", "tree"])
    'mask 2x3: tree 50.0%, road 33.3%, sky 16.7%'
    """
    import numpy as np
    import torch

    if isinstance(dec, torch.Tensor) and dec.ndim == 0 and not dec.is_floating_point() and \
            isinstance(probs, torch.Tensor) and probs.ndim == 1 and probs.numel() > int(dec) >= 0:
        return f"{printable(str(decoded))}\t{float(probs[int(dec)]):.4f}"
    if isinstance(decoded, (list, tuple)):
        if isinstance(dec, torch.Tensor) and dec.dtype == torch.bool and isinstance(probs, torch.Tensor) and \
                probs.shape == dec.shape and probs.ndim == 1 and int(dec.sum()) == len(decoded):
            chosen = torch.nonzero(dec).flatten().tolist()
            return ", ".join(f"{printable(str(v))} {float(probs[i]):.4f}" for v, i in zip(decoded, chosen)) \
                if decoded else "(no label)"
        return ", ".join(printable(str(v)) for v in decoded) if decoded else "(no label)"
    if isinstance(decoded, (np.ndarray, torch.Tensor)):
        arr = np.asarray(decoded.detach().cpu() if isinstance(decoded, torch.Tensor) else decoded)
        if arr.ndim == 2 and arr.dtype.kind in "iu" and classes is not None:
            return _mask_line(arr, list(classes))
        return f"{arr.item():.6g}" if arr.size == 1 else np.array2string(arr, precision=4, separator=", ",
                                                                          max_line_width=10**6)
    return f"{decoded:.6g}" if isinstance(decoded, float) else printable(str(decoded))


def _mask_line(mask: Any, classes: list[Any], most: int = 8) -> str:
    """A predicted mask as one line: its size, then its classes by their share of its pixels, largest first (at most
    ``most``, the rest counted)."""
    import numpy as np

    counts = np.bincount(mask.ravel(), minlength=len(classes))
    order = [int(k) for k in np.argsort(-counts, kind="stable") if counts[k]]
    name = lambda k: printable(str(classes[k])) if k < len(classes) else str(k)  # noqa: E731
    shares = ", ".join(f"{name(k)} {100 * counts[k] / mask.size:.1f}%" for k in order[:most])
    more = f", and {len(order) - most} more classes" if len(order) > most else ""
    return f"mask {mask.shape[0]}x{mask.shape[1]}: {shares}{more}"


def _many(learn: Any, items: Any, what: str, first: int) -> list[tuple[str, str]]:
    """Predictions for several items at once (a table's rows from 0, a file's lines from 1), in their order."""
    preds, _, dec = learn.get_preds(dl=learn.dls.test_dl(items), with_decoded=True)
    from pipekit.data.dataloaders import classes_vocab

    y_block = learn.dls.y_block
    classes = classes_vocab(learn.dls)
    out = []
    for i in range(len(preds)):
        decoded = y_block.decode(dec[i]) if y_block is not None else dec[i]
        out.append((f"{what} {first + i}", _label(decoded, dec[i], preds[i], classes)))
    return out


def input_kind(learn: Any) -> str | None:
    """What a model's input is, as the files ``pipekit predict`` takes for it name it: "table" (rows of a table
    file), "text" (lines of a .txt file), "image" (image files), or None (a recipe of another kind: any file
    is one item)."""
    from pipekit.tabular.loaders import TabularRecipe
    from pipekit.text.blocks import TextBlock
    from pipekit.vision.blocks import _PixelBlock

    recipe = getattr(learn.dls, "recipe", None)
    if isinstance(recipe, TabularRecipe):
        return "table"
    blocks = learn.dls.blocks
    first = blocks[0] if blocks else None
    return "text" if isinstance(first, TextBlock) else "image" if isinstance(first, _PixelBlock) else None


def reads_whole_files(learn: Any) -> bool:
    """Whether a text model was trained one document per file (``TextDataLoaders.from_folder``,
    ``TextBlock.from_folder`` over ``get_text_files``): its items were files it read whole, so ``pipekit predict``
    reads a ``.txt`` file whole as one text. A text model trained on a column of texts, and a language model (whose
    texts are prompts), read each line as one."""
    if input_kind(learn) != "text" or getattr(learn.dls.blocks[0], "is_lm", False):  # a language model: prompts
        return False
    return bool(getattr(learn.dls.blocks[0], "read_files", False)) and \
        getattr(getattr(learn.dls, "recipe", None), "item_columns_", None) == ["path"]


#: the words ``pipekit predict`` has a language model add to each line (a prompt), sampled with seed 0
LM_WORDS = 20

#: the files ``pipekit predict`` takes for each kind of input ("text files": a model trained one document per file)
KIND_FILES = {"table": "tables (.csv, .tsv, .parquet, .arrow), a row each",
              "text": "UTF-8 .txt files, a text a line",
              "text files": ".txt files, each one text (the model was trained one document per file)",
              "image": "image files (.jpg, .png, ...)"}


def _model_rows(model: Any, path: Path) -> list[tuple[str, str]]:
    """A saved model's, ensemble's or estimator's prediction for each row of the table ``path``, read and processed by
    the procs it keeps, as a tabular learner's are (a target column in the rows is ignored), in the learner's format."""
    import numpy as np
    import torch

    from pipekit.tabular.core import TabularSplit, process_new

    if _is_estimator(model):
        preds = _estimator_scores(model, path)
    else:
        processor = _model_processor(model, type(model).__name__)
        preds = np.asarray(model.predict(TabularSplit(process_new(processor, path, with_labels=False), processor,
                                                      None, "new")))
    where = f"{path} row"
    if model.task != "classification":
        return [(f"{where} {i}", _label(np.asarray(v), None, None)) for i, v in enumerate(preds)]
    # an ensemble's classes are a NumPy array of labels, an estimator's the labels y had (an object array of text)
    labels, best = np.asarray(model.classes_).tolist(), preds.argmax(1)
    return [(f"{where} {i}", _label(labels[k], torch.tensor(int(k)), torch.from_numpy(p)))
            for i, (k, p) in enumerate(zip(best, preds))]


def _is_estimator(obj: Any) -> bool:
    """Whether ``obj`` is a ``TabularClassifier`` or ``TabularRegressor`` (which keep their fitted procs)."""
    from pipekit.inspection.explain import is_estimator

    return is_estimator(obj)


def _estimator_scores(est: Any, path: Path) -> Any:
    """A fitted ``TabularClassifier``'s class probabilities (in ``classes_`` order) or a ``TabularRegressor``'s
    values for the rows of the table ``path``: the columns it was fitted on, read as its procs read rows (other
    columns, the target's among them, are ignored); a missing one is refused naming the file."""
    import numpy as np

    from pipekit.core.errors import DataError
    from pipekit.core.validate import unknown_names
    from pipekit.tabular.core import naming_file, read_frame

    frame = read_frame(path, est.cat_names_, est.processor_.skipinitialspace)
    inputs = est.input_columns()
    missing = [c for c in inputs if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: column(s) {missing} the {type(est).__name__} was fitted on are not in the data; "
                        f"{unknown_names(missing, frame.columns)}.")
    with naming_file(path):
        rows = frame.select(inputs)
        return np.asarray(est.predict_proba(rows) if est.task == "classification" else est.predict(rows))


def _model_processor(model: Any, what: str) -> Any:
    """The fitted procs a saved model or ensemble (``what``) processes raw rows with (every model fitted on a split
    of a Tabular keeps them). A model fitted on a bare frame (``as_data``), or read from a file written before
    models kept them, has none: refused, saying how to predict with it."""
    from pipekit.ensemble.base import members_processor

    processor = members_processor([model])
    if processor is None:
        raise ParameterError(
            f"{what} holds a {type(model).__name__} that keeps no procs (it was fitted on a bare frame, or saved "
            "before models kept them), so it cannot process raw rows: score processed rows in Python "
            "(model.predict(tab.new(df))), or fit it on a split of the Tabular (model.fit(tab.train)) and export it "
            "again")
    return processor


def predictions(learn: Any, path: Path) -> list[tuple[str, str]]:
    """``(where, prediction)`` for the file ``path``: each row of a table (CSV, TSV, Parquet, Arrow) read as the
    model's recipe reads rows, each non-empty line of a ``.txt`` file as a text (the whole file as one text for a
    model trained one document per file, :func:`reads_whole_files`), an image as one item. A file of
    another kind than the model's input (a table for an image model, an image for a text model) is refused with
    the kinds it takes. ``learn`` is a Learner, or a saved model or ensemble (``pipekit.load`` of a file written by
    its ``export``) or a fitted ``TabularClassifier``/``TabularRegressor`` (``pipekit.save``), which read rows of a
    table."""
    from pipekit.backends.base import Model
    from pipekit.data.getters import IMAGE_EXTENSIONS
    from pipekit.data.items import table_kind

    if not path.is_file():
        raise FileNotFoundError("no such file" + ("" if path.is_absolute() else f" (looked in {Path.cwd()})"))
    suffix = path.suffix.lower()
    is_model = isinstance(learn, Model) or _is_estimator(learn)
    kind = _kind_of(learn)
    # a .txt file is lines of text here; .csv.gz and .zip are tables as the table readers read them
    given = "text" if suffix == ".txt" else "table" if table_kind(path) is not None else \
        "image" if suffix in IMAGE_EXTENSIONS else None
    # a model whose items were rows of a table (a column of texts, a CSV of file names) reads a table's rows too
    rows = not is_model and \
        getattr(getattr(learn.dls, "recipe", None), "item_columns_", None) not in (None, ["path"], ["item"])
    if kind is not None and given != kind and not (given == "table" and rows):
        names = {"table": "a table", "text": "a text file", "image": "an image", None: "none of those"}
        also = f", or {KIND_FILES['table']}" if rows and kind != "table" else ""
        raise ValueError(f"this is {'an image' if kind == 'image' else 'a ' + kind} model; it takes "
                         f"{_takes(learn)}{also}, and {path.name!r} is {names[given]}")
    if given == "table":
        from pipekit.data.items import read_table

        if read_table(path, n_rows=1).height == 0:
            raise ValueError("the table has no rows (a header only): there is nothing to predict")
    if is_model:
        return _model_rows(learn, path)
    if given == "table":
        return _many(learn, path, f"{path} row", 0)
    if suffix == ".txt" and reads_whole_files(learn):  # one document per file, as the model was trained
        from pipekit.text.tokenize import read_text_file

        from pipekit.core.errors import DataError

        block = learn.dls.blocks[0]
        try:
            whole = read_text_file(path, block.encoding, block.errors)
        except DataError:
            raise ValueError(f"it is not {block.encoding} text; save the file as {block.encoding} text") from None
        if not whole.strip():
            raise ValueError(f"{path}: the file holds no text")
    elif suffix == ".txt":
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise ValueError(f"byte {e.start} is not UTF-8 ({e.reason}); save the file as UTF-8 text") from None
        numbered = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
        if not numbered:
            raise ValueError(f"{path}: the file holds no text")
        if getattr(learn.dls.blocks[0], "is_lm", False):  # a language model: each line a prompt it continues
            return [(f"{path} line {n}", printable(learn.predict(line, n_words=LM_WORDS, no_bar=True, seed=0)))
                    for n, line in numbered]
        found = _many(learn, [line for _, line in numbered], f"{path} line", 0)
        return [(f"{path} line {n}", text) for (n, _), (_, text) in zip(numbered, found)]
    from pipekit.data.dataloaders import classes_vocab

    decoded, dec, probs = learn.predict(path)
    return [(str(path), _label(decoded, dec, probs, classes_vocab(learn.dls)))]


def _kind_of(learn: Any) -> str | None:
    from pipekit.backends.base import Model

    return "table" if isinstance(learn, Model) or _is_estimator(learn) else input_kind(learn)


def _takes(learn: Any) -> str:
    kind = _kind_of(learn)
    if kind == "text" and reads_whole_files(learn):
        kind = "text files"
    return KIND_FILES[kind] if kind is not None else "any file, one item each"


def folder_files(learn: Any, folder: Path) -> list[Path]:
    """The files in ``folder`` and its folders that ``learn`` takes (images for an image model, tables for a
    table model, .txt files for a text model, each then read line by line, or whole when the model was trained one
    document per file; any file for a model of another kind), hidden ones left out, in
    order of their path. A link whose target lies outside ``folder`` is left out too, with one warning naming each
    (a link to a file inside it is kept): giving a folder predicts what is in it, never a file it points elsewhere at."""
    from pipekit.core.errors import warn
    from pipekit.core.validate import names_shown
    from pipekit.data.getters import IMAGE_EXTENSIONS
    from pipekit.data.items import table_kind

    kind = _kind_of(learn)

    def takes(p: Path) -> bool:
        suffix = p.suffix.lower()
        if kind == "table":  # a .txt file is text here, never a table
            return suffix != ".txt" and table_kind(p) is not None
        return {"text": suffix == ".txt", "image": suffix in IMAGE_EXTENSIONS}.get(kind or "", True)

    root = folder.resolve()
    found, outside = [], []
    for p in sorted(folder.rglob("*")):  # rglob does not go into linked folders: only p itself may be a link
        if not p.is_file() or any(part.startswith(".") for part in p.relative_to(folder).parts) or not takes(p):
            continue
        if p.is_symlink() and not p.resolve().is_relative_to(root):
            outside.append(f"{p.relative_to(folder)} -> {os.readlink(p)}")
        else:
            found.append(p)
    if outside:
        with said_warnings(f"pipekit predict: {folder}"):
            warn(f"skipped {len(outside)} link(s) to files outside the folder: {names_shown(outside)}; copy a file "
                 f"into {folder} (or give its path) to predict it")
    return found


def _load_predictor(model: Path) -> Any:
    """What ``pipekit predict`` predicts with: the Learner of a learner export, or the model or ensemble a file
    written by its ``export`` (``pipekit.save``) holds, or a fitted ``TabularClassifier``/``TabularRegressor`` saved
    with ``pipekit.save``, as ``pipekit.load`` rebuilds them (onto the CPU). Any other
    pipekit file, and a model that cannot process raw rows, is refused saying what to give instead."""
    from pipekit.backends.base import Model
    from pipekit.core.archive import load
    from pipekit.learn import Learner

    loaded = load(model)
    if _is_estimator(loaded):
        if not loaded.is_fitted:
            raise ParameterError(f"{model} holds an unfitted {type(loaded).__name__}: fit it (est.fit(X, y)) before "
                                 "pipekit.save, then predict with the file")
        return loaded  # it keeps its fitted procs (processor_): it reads raw rows
    if isinstance(loaded, Model):
        _model_processor(loaded, str(model))  # refused once here, not once per file
        return loaded
    if isinstance(loaded, Learner):
        return loaded
    raise ParameterError(f"{model} holds a {type(loaded).__name__}, not a model to predict with: give the file "
                         "learn.export wrote, or one a model's or ensemble's export wrote, or a fitted "
                         f"TabularClassifier/TabularRegressor saved with pipekit.save (a {MODEL_SUFFIX} file)")


def printable(text: str) -> str:
    r"""``text`` with each character a terminal would act on (escape sequences, carriage returns, tabs, newlines)
    written as its Python escape: labels and file names come from files, and must not recolour, overwrite or
    split the lines ``pipekit predict`` prints.

    >>> printable("\x1b[31mSEVEN\x1b[0m\r3"), printable("café\tcrème")
    ('\\x1b[31mSEVEN\\x1b[0m\\r3', 'café\\tcrème')
    """
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


@contextlib.contextmanager
def said_warnings(prefix: str) -> Iterator[None]:
    """Warnings raised inside, printed on stderr as the command's own lines, ``<prefix>: warning: <message>``, each
    once: the ``pipekit`` command has no line of the user's to point at (a warning raised inside it would point at
    its ``sys.exit(main())``). The warning filters are kept (``python -W ignore`` still silences them)."""
    with warnings.catch_warnings(record=True) as caught:
        try:
            yield
        finally:  # said also when the command then fails: a warning may be why
            for message in dict.fromkeys(str(w.message) for w in caught):
                print(printable(f"{prefix}: warning: {message}"), file=sys.stderr)


def cmd_predict(args: argparse.Namespace) -> int:
    from pipekit.core.archive import is_export_folder

    model = Path(args.model)
    # a folder an export was written into is read as its file; one with a manifest.json (or the marker of an export
    # stopped part-way) that is no pipekit export's is handed to load too, which says what is wrong with it
    if model.is_dir() and not is_export_folder(model):
        raise SystemExit(printable(f"pipekit predict: {args.model!r} is a folder, not a model file: give the file "
                                   f"learn.export wrote, or a model's or ensemble's export (a {MODEL_SUFFIX} file), "
                                   "first, then the files to predict"))
    if not (model.is_file() or model.is_dir()):
        raise SystemExit(printable(f"pipekit predict: model file {args.model!r} not found (looked in {Path.cwd()}); "
                                   "give the file learn.export wrote, or a model's or ensemble's export (a "
                                   f"{MODEL_SUFFIX} file)"))
    try:  # an error that is not pipekit's while the file is rebuilt is an ExportError naming it (pipekit.load)
        with said_warnings(f"pipekit predict: {args.model}"):
            learn = _load_predictor(model)
    except (PipekitError, OSError) as e:
        raise SystemExit(printable(f"pipekit predict: {e}")) from None
    rc = 0
    names: list[str] = []
    for name in args.files:  # a folder is the files in it (and in its folders) of the kind the model takes
        if Path(name).is_dir():
            inside = folder_files(learn, Path(name))
            if not inside:
                print(printable(f"pipekit predict: {name}: a folder holding none of the files this model takes "
                                f"({_takes(learn)})"), file=sys.stderr)
                rc = 1
            names += [str(p) for p in inside]
        else:
            names.append(name)
    for name in names:
        try:
            with said_warnings(f"pipekit predict: {name}"):
                found = predictions(learn, Path(name))
        except (PipekitError, OSError, ValueError) as e:  # one bad file is named; the others are still predicted
            # a table's rows are refused naming the file already: it is named once
            print(printable(f"pipekit predict: {name}: {str(e).removeprefix(f'{name}: ')}"), file=sys.stderr)
            rc = 1
            continue
        except Exception as e:  # noqa: BLE001  (a model that reads this file wrongly: named too, never a traceback)
            print(printable(f"pipekit predict: {name}: this model could not read it ({type(e).__name__}: "
                            f"{str(e)[:300]})"), file=sys.stderr)
            rc = 1
            continue
        for where, text in found:
            print(f"{printable(where)}\t{text}", flush=True)
    return rc


def benchmark_dirs() -> list[Path]:
    """Where benchmarks are looked for: the ``benchmarks/`` folder of the source checkout pipekit runs from, found
    beside the package's own files (none for an installed wheel). The current folder is never searched: a
    project's own ``benchmarks/`` scripts are not pipekit's, and ``pipekit bench`` does not run them."""
    own = CHECKOUT / "benchmarks"
    return [own.resolve()] if (CHECKOUT / "pyproject.toml").is_file() and own.is_dir() else []


def cmd_bench(args: argparse.Namespace) -> int:
    dirs = benchmark_dirs()
    available = {p.stem: p for d in reversed(dirs) for p in sorted(d.glob("*.py"))
                 if not p.stem.startswith("_") and p.stem != "run_all"}
    if args.list and not available:
        raise SystemExit("pipekit bench --list: no benchmarks here. They compare pipekit with other libraries and live "
                         "in the benchmarks/ folder of a pipekit source checkout: run it there.")
    if args.list:
        for name, file in sorted(available.items()):
            # the first line of each file's docstring, read without running the file
            doc = ast.get_docstring(ast.parse(file.read_text(encoding="utf-8"))) or ""
            print(f"{name:<28} {doc.strip().splitlines()[0] if doc.strip() else ''}")
        return 0
    if not args.names and not available:
        raise SystemExit("pipekit bench: no benchmarks to run. They compare pipekit with other libraries and live "
                         "in the benchmarks/ folder of a pipekit source checkout: run `pipekit bench` (or "
                         "`make bench`) there, or give the path of a benchmark file.")
    stray = [a for a in args.args if a in available or (a.endswith(".py") and Path(a).is_file())]
    if not args.names and stray:  # `--args` takes all that follows it: names after it would run every benchmark
        raise SystemExit(f"pipekit bench: --args passes everything after it to the benchmarks, so {stray[0]!r} would "
                         f"be passed on too and every benchmark would run; put the names first: pipekit bench "
                         f"{' '.join(stray)} --args {' '.join(a for a in args.args if a not in stray)}")
    scripts = []
    for n in args.names or sorted(available):
        path = user_file(n, "benchmark") or available.get(n)
        if path is None:
            raise SystemExit(f"pipekit bench: no benchmark named {n!r}; "
                             f"available: {', '.join(sorted(available)) or 'none (not in a source checkout)'}")
        scripts.append(path)
    rc = 0
    for path in scripts:
        print(f"== benchmark {path.stem}", flush=True)
        record = path.resolve().parents[1] / "bench_results" / f"{path.stem}.json"  # each writes its figures there
        before = _stamp(record)
        rc |= _run_main(path, args.args)
        # written by this run: the file is new or changed (the file system's clock is coarser than time.time(), so
        # a file written just after the start can carry an earlier time than the start)
        if (after := _stamp(record)) is not None and after != before:
            print(f"== {path.stem}: figures written to {record}", flush=True)
    return rc


def cmd_datasets(args: argparse.Namespace) -> int:
    from pipekit.data.external import REGISTRY, available

    for name, where in available().items():
        status = (f"local  {where}" if where else "remote (downloads on first use)" if REGISTRY[name].urls
                  else "missing (no verified download; put its files in $PIPEKIT_DATA)")
        print(f"{name:<20} {status:<70} {REGISTRY[name].description}")
    return 0


def megabytes(n: int) -> str:
    """A size in bytes as pipekit's progress bars write it.

    >>> megabytes(1_400_000), megabytes(0)
    ('1.4 MB', '0.0 MB')
    """
    return f"{n / 1e6:.1f} MB"


def cmd_cache(args: argparse.Namespace) -> int:
    from pipekit.data.cache import (CACHE_KINDS, cache_folder, cache_usage, clear_cache_folder, image_cache_copies,
                                    link_target)

    def where(kind: str) -> str:
        """The kind's folder, and where it points when it is a link (a cache moved to another disk)."""
        folder = cache_folder(None, CACHE_KINDS[kind])
        target = None if folder is None else link_target(folder)
        return f"{folder}" + (f" (a link to {target})" if target is not None else "")

    kinds = [k for k in CACHE_KINDS if getattr(args, k)] or list(CACHE_KINDS)
    try:  # PIPEKIT_CACHE set to a relative folder: the message, not a traceback
        cache_folder(None, "")
    except ParameterError as e:
        raise SystemExit(printable(f"pipekit cache {args.action}: {e}")) from None
    if args.action == "info":
        for kind in kinds:
            folder = cache_folder(None, CACHE_KINDS[kind])
            size, entries = cache_usage(folder)
            # an image entry is one setting (image mode and item transform), holding one copy per data set or
            # version of one kept
            unit = ("setting", "settings") if kind == "images" else ("entry", "entries")
            print(f"{kind:<8} {megabytes(size):>10} {entries:>6} {unit[0] if entries == 1 else unit[1]}  "
                  f"{where(kind)}")
            if kind == "images":
                for settings, copies, used in image_cache_copies(folder):
                    print(f"{'':<8} {megabytes(used):>10} {copies:>6} {'copy' if copies == 1 else 'copies'}   "
                          f"{settings}")
        return 0
    # each folder listed once: what was freed and what could not be removed are measured as it is cleared
    folders = {kind: cache_folder(None, CACHE_KINDS[kind]) for kind in kinds}
    with said_warnings("pipekit cache clear"):  # what was kept in a folder that is not only pipekit's
        cleared = {kind: clear_cache_folder(folder) for kind, folder in folders.items()}
    rc = 0
    for kind, (n, left) in cleared.items():
        folder = folders[kind]
        print(f"{kind:<8} freed {megabytes(n)} in {where(kind)}")
        if left:
            print(f"pipekit cache clear: {megabytes(left)} could not be removed from {folder}: check that the folder "
                  "is yours and writable", file=sys.stderr)
            rc = 1
    return rc


def cmd_bench_loader(args: argparse.Namespace) -> int:
    from pipekit.bench.cli import main as bench_loader

    try:
        with said_warnings("pipekit bench-loader"):
            return bench_loader(args.args)
    except PipekitError as e:  # a recipe or an option to fix: the message, not a traceback
        raise SystemExit(f"pipekit bench-loader: {str(e).removeprefix('bench-loader: ')}") from None


def _stamp(path: Path) -> tuple[int, int, int] | None:
    """What tells one version of the file ``path`` from the next (its inode, size and modification time in ns),
    None when there is no file."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except KeyboardInterrupt:  # Ctrl-C: one line and 128 + SIGINT, as git and pip end, not the traceback of
        # wherever the work was
        print("pipekit: interrupted", file=sys.stderr)
        # From here a Ctrl-C ends the process at once (a second press while the interpreter waits on threads), and an
        # interrupt a library raises again while shutting down is no second KeyboardInterrupt: the status stays 130
        with contextlib.suppress(ValueError):  # not the main thread (main() called from a thread): left as it is
            signal.signal(signal.SIGINT, signal.SIG_DFL)
        return 130
    except BrokenPipeError:  # the output piped into a reader that stopped (`| head`): a quiet end, as the Python
        # documentation's recipe does: stdout to devnull, so the interpreter's last flush cannot fail, and exit 1
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # a source checkout keeps the real data sets beside it (the Makefile points there too)
    shared = CHECKOUT.parent / "shared" / "data"
    if (CHECKOUT / "pyproject.toml").is_file() and shared.is_dir():
        os.environ.setdefault("PIPEKIT_DATA", str(shared))
    if argv[:1] == ["bench-loader"]:  # its own options, in any order (argparse's REMAINDER misses leading ones)
        return cmd_bench_loader(argparse.Namespace(args=argv[1:]))
    parser = argparse.ArgumentParser(prog="pipekit", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--version", action="version", version=f"pipekit {pipekit.__version__}")
    sub = parser.add_subparsers(dest="cmd", title="commands", metavar="COMMAND")
    d = sub.add_parser("datasets", help="list the registered data sets and where they are")
    d.add_argument("action", choices=["list"], nargs="?", default="list")
    d.set_defaults(fn=cmd_datasets)
    c = sub.add_parser("cache", help="show or clear the caches of presized images and token ids ($PIPEKIT_CACHE)",
                       description="The caches live under $PIPEKIT_CACHE (default ~/.cache/pipekit): presized images "
                                   "in images/, token ids in text/. Clearing deletes them (downloaded data sets are "
                                   "kept); they are rebuilt from the source data when next needed. Only pipekit's own "
                                   "entries are deleted: anything else in those folders is kept, and named.")
    c.add_argument("action", choices=["info", "clear"])
    c.add_argument("--images", action="store_true", help="only the presized images")
    c.add_argument("--tokens", action="store_true", help="only the token ids")
    c.set_defaults(fn=cmd_cache)
    r = sub.add_parser("run", help="run a recipe end to end (a built-in name or a path to a .py file)",
                       description="Run a built-in recipe by name, or a recipe file of your own, end to end.",
                       epilog="A recipe's own options go after its name: `pipekit run NAME --help` lists them "
                              "(e.g. pipekit run movielens --help; pipekit run adult --quick --epochs 2).")
    r.add_argument("--list", action="store_true", help="list the built-in recipes (takes no recipe name)")
    r.add_argument("recipe", nargs="?", help="a built-in recipe's name (pipekit run --list names them) or the path "
                                             "of your own recipe file (a .py file)")
    r.add_argument("args", nargs=argparse.REMAINDER, help="the recipe's own options (e.g. --quick; pipekit run NAME "
                                                         "--help lists them)")
    r.set_defaults(fn=cmd_run)
    s = sub.add_parser("summary", help="walk one batch of a recipe's data through the pipeline")
    s.add_argument("recipe")
    s.set_defaults(fn=cmd_summary)
    pr = sub.add_parser("predict", help="an exported model's prediction for each file (images; rows of a CSV; lines "
                                        "of a .txt file for a text model, or the whole file for one trained one "
                                        "document per file; a language model continues each line)")
    pr.add_argument("model", help=f"the exported model (learn.export's {MODEL_SUFFIX} file, or a saved model's or "
                                  "ensemble's export or a TabularClassifier saved by pipekit.save, which read rows "
                                  "of tables; or the folder an export to a name without an extension wrote)")
    pr.add_argument("files", nargs="+", help="images, tables (.csv, .tsv, .parquet, .csv.gz, .zip) or text files (.txt: "
                                         "a text a line, or one text per file for a model trained one document "
                                         "per file, TextDataLoaders.from_folder), or folders of them")
    pr.set_defaults(fn=cmd_predict)
    b = sub.add_parser("bench", help="run benchmarks (all when none named; in a source checkout)",
                       description="Run the benchmarks in the benchmarks/ folder of a pipekit source checkout: each "
                                   "compares pipekit with another library and prints their ratio. With no name, every "
                                   "one runs, which takes many minutes; --list shows what there is. Each writes its "
                                   "figures to bench_results/<name>.json beside the benchmarks/ folder it is in "
                                   "(replacing that file's last figures), named when it ends.")
    b.add_argument("names", nargs="*", help="benchmark names (see --list) or paths of benchmark files; none: all")
    b.add_argument("--list", action="store_true", help="list the benchmarks (name and what each measures) and exit")
    b.add_argument("--args", nargs=argparse.REMAINDER, default=[], help="arguments passed on to each benchmark")
    b.set_defaults(fn=cmd_bench)
    bl = sub.add_parser("bench-loader", add_help=False,
                        help="profile a recipe file's data loader (pipekit bench-loader --help)")
    bl.add_argument("args", nargs=argparse.REMAINDER)
    bl.set_defaults(fn=cmd_bench_loader)
    args, extra = parser.parse_known_args(argv)
    if extra:  # as parse_args says it, and under run where a recipe's own options go
        after = (f"; a recipe's own options go after its name: pipekit run {args.recipe or 'RECIPE'} "
                 f"{' '.join(extra)}") if args.cmd == "run" else \
            (f"; a benchmark's own options go after --args, last: pipekit bench {' '.join(args.names) or 'NAME'} "
             f"--args {' '.join([*extra, *args.args])}") if args.cmd == "bench" else ""
        (r if args.cmd == "run" else b if args.cmd == "bench" else parser).error(
            f"unrecognized arguments: {' '.join(extra)}{after}")
    if args.cmd == "run" and args.list and (args.recipe or args.args):
        named = " ".join([*([args.recipe] if args.recipe else []), *args.args])
        r.error(f"--list takes no recipe name, got {named}: `pipekit run --list` lists the built-in recipes, "
                f"`pipekit run {args.recipe or 'NAME'} --help` lists a recipe's options")
    if args.cmd is None:  # no command: what there is to run, as `git` and `pip` answer with nothing to do
        parser.print_help(sys.stderr)
        return 2
    return args.fn(args)


if __name__ == "__main__":
    raise SystemExit(main())
