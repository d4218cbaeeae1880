"""Recipe files as the command line reads them: a built-in recipe by name (``pipekit.recipes``) or a Python file
of one's own, loaded with its folder importable, and what its ``datablock()`` or ``dataloaders()`` returns
checked (``pipekit run``, ``summary`` and ``bench-loader`` share them)."""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import inspect
import pkgutil
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from pipekit.core.errors import ParameterError

RECIPES = "pipekit.recipes"

#: what an exported model (``learn.export``) or any other pipekit file is saved as
MODEL_SUFFIX = ".pipekit"


def builtin_recipes() -> list[str]:
    """The names of the recipes that ship with pipekit.

    >>> "mnist_tiny" in builtin_recipes()
    True
    """
    import pipekit.recipes

    return sorted(m.name for m in pkgutil.iter_modules(pipekit.recipes.__path__) if not m.name.startswith("_"))


def user_file(name: str, what: str) -> Path | None:
    """``name`` as a path to a Python file, or None when it is a bare name; a missing file is an error, and so
    is a saved model, which is no recipe. A bare name of a built-in recipe (one listed by :func:`builtin_recipes`)
    is that recipe even where a folder or a file of that name is in the current folder: one's own recipe file is
    given as a path ending in ``.py``.

    >>> user_file("mnist_tiny", "recipe") is None
    True
    """
    p = Path(name)
    if len(p.parts) == 1 and p.suffix != ".py" and name in builtin_recipes():
        return None
    if p.suffix == MODEL_SUFFIX:
        raise SystemExit(f"pipekit: {name!r} is a saved model (an export or checkpoint), not a recipe to run or "
                         f"summarise: predict with it by `pipekit predict {name} FILE...`, or in Python with "
                         f"load_learner({name!r}).predict(item)")
    if p.is_dir():
        raise SystemExit(f"pipekit: {name!r} is a folder; give the {what} file (a .py file) to use")
    if p.suffix != ".py" and len(p.parts) == 1:
        return None
    if not p.is_file():
        raise SystemExit(f"pipekit: {what} file {name!r} not found (looked in {Path.cwd()})")
    return p


def recipe_module(name: str, who: str = "run") -> str:
    """The module of built-in recipe ``name``; an unknown name is an error listing the known ones, with those it
    may have meant and, when ``<name>.py`` is in the current folder, the command (``pipekit <who>``) that takes it."""
    from pipekit.core.validate import close_names

    names = builtin_recipes()
    if name not in names:
        near = close_names(name, names)
        meant = f" (did you mean {' or '.join(map(repr, near))}?)" if near else ""
        here = (f"; {name}.py is in this folder: give it as a file, `pipekit {who} {name}.py`"
                if Path(f"{name}.py").is_file() else "")
        raise SystemExit(f"pipekit: no recipe named {name!r}{meant}{here}; built-in recipes: {', '.join(names)}; "
                         f"or give the path to your own recipe file (pipekit {who} path/to/recipe.py)")
    return f"{RECIPES}.{name}"


def _where(e: SyntaxError) -> str:
    return f"line {e.lineno}" + (f", column {e.offset}" if e.offset else "")


def syntax_message(path: Path | str, e: SyntaxError) -> str:
    """The message for the recipe file ``path`` that does not compile (``e``, the error compiling it)."""
    return f"pipekit: the recipe {str(path)!r} is not valid Python ({e.msg} at {_where(e)}): fix it and run again"


def check_syntax(path: Path) -> None:
    """Refuse, naming the file, line and column, the recipe file at ``path`` when it is not valid Python: it is
    compiled on its own before it runs, so a SyntaxError raised later while it runs is never blamed on it."""
    try:
        compile(path.read_bytes(), str(path), "exec", dont_inherit=True)
    except SyntaxError as e:
        raise SystemExit(syntax_message(path, e)) from None


def running_syntax_message(path: Path | str, e: SyntaxError) -> str | None:
    """The message for a SyntaxError ``e`` raised while the (valid) recipe file ``path`` runs, when it comes from
    another Python file (a module the recipe imports): that file and line are named. None when the recipe's own
    code raised it (``eval``, ``exec`` or ``compile`` of a string, or ``raise SyntaxError``): it is an error the
    recipe raised, shown with its traceback like any other."""
    if not e.filename or not Path(e.filename).is_file() or Path(e.filename).resolve() == Path(path).resolve():
        return None
    return (f"pipekit: {e.filename!r} is not valid Python ({e.msg} at {_where(e)}); it was imported while the "
            f"recipe {str(path)!r} ran: fix that file and run again")


def load_module(name: str, who: str = "run") -> ModuleType:
    """The built-in recipe ``name``, or the recipe file at ``name`` imported with its folder first on ``sys.path``
    (the modules beside it import, for the whole command: its functions may import them when called); ``who``
    is the command (``pipekit <who>``) an unknown name's message shows."""
    path = user_file(name, "recipe")
    if path is None:
        return importlib.import_module(recipe_module(name, who))
    name = module_name(path)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"pipekit: cannot load {str(path)!r} as a Python file")
    mod = importlib.util.module_from_spec(spec)
    folder = str(path.resolve().parent)
    if folder not in sys.path:  # as under `pipekit run`
        sys.path.insert(0, folder)
    check_syntax(path)
    # registered while it runs, as an import registers a module: a @dataclass (with `from __future__ import
    # annotations`), typing.get_type_hints and pickle look the module up there by name
    before = sys.modules.get(name)
    sys.modules[name] = mod
    try:
        spec.loader.exec_module(mod)
    except BaseException as e:
        if before is None:
            sys.modules.pop(name, None)
        else:  # the same file, loaded before: that load stays
            sys.modules[name] = before
        said = running_syntax_message(path, e) if isinstance(e, SyntaxError) else None
        if said is None:
            raise
        raise SystemExit(said) from None
    return mod


def module_name(path: Path) -> str:
    """The name the recipe file at ``path`` is registered under in ``sys.modules`` while it loads and after:
    ``user_recipe_<stem>`` (letters, digits and ``_`` only, so that pickle and dataclasses find it), numbered when a
    module of another file already holds that name (two recipes ``a/recipe.py`` and ``b/recipe.py`` compared).

    >>> module_name(Path("my-recipe.py"))
    'user_recipe_my_recipe'
    """
    base = "user_recipe_" + re.sub(r"\W", "_", path.stem)
    name, n = base, 1
    while (held := sys.modules.get(name)) is not None and not _same_file(getattr(held, "__file__", None), path):
        n += 1
        name = f"{base}_{n}"
    return name


def _same_file(file: str | None, path: Path) -> bool:
    try:
        return file is not None and Path(file).resolve() == path.resolve()
    except OSError:
        return False


def load_recipe(path: str | Path, who: str = "bench-loader") -> ModuleType:
    """The recipe at ``path`` (a Python file, or the name of a built-in recipe) loaded as ``pipekit run`` loads it
    (its folder importable); ``who`` (the command) starts the message of one that defines neither function."""
    mod = load_module(str(path), who)
    if not callable(getattr(mod, "datablock", None)) and not callable(getattr(mod, "dataloaders", None)):
        raise ParameterError(f"{who}: {path} defines neither datablock() (returning (DataBlock, source)) nor "
                             "dataloaders(**kwargs) (returning DataLoaders); add one of them")
    return mod


def recipe_loaders(mod: ModuleType, bs: int | None = None, num_workers: int | None = None, seed: int | None = None,
                   who: str = "bench-loader") -> tuple[Any, Any, dict[str, Any]]:
    """``(pair, dls, kwargs)``: the ``(DataBlock, source)`` pair (or None) and the DataLoaders (None when the
    pair is given: profile builds them) with the loader settings given (``bs``, ``num_workers`` and ``seed``, each
    only when not None: a recipe's ``dataloaders()`` gets those it takes, and keeps its own defaults for the rest)."""
    given = {"bs": bs, "num_workers": num_workers, "seed": seed}
    kwargs: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    if callable(getattr(mod, "datablock", None)):
        _check_callable_with(mod, "datablock", set(), who)
        pair = mod.datablock()
        from pipekit.data.datablock import DataBlock

        if not (isinstance(pair, tuple) and len(pair) == 2 and isinstance(pair[0], DataBlock)):
            raise ParameterError(f"{who}: datablock() must return (DataBlock, source), got {type(pair).__name__}")
        return pair, None, kwargs
    accepted = inspect.signature(mod.dataloaders).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())
    use = {k: v for k, v in kwargs.items() if takes_any or k in accepted}
    _check_callable_with(mod, "dataloaders", set(use), who)
    dls = mod.dataloaders(**use)
    if not (hasattr(dls, "train") and hasattr(dls, "loaders")):
        raise ParameterError(f"{who}: dataloaders() must return DataLoaders (e.g. dblock.dataloaders(source, "
                             f"**kwargs)), got {type(dls).__name__}")
    return None, dls, use


def _check_callable_with(mod: ModuleType, name: str, given: set[str], who: str) -> None:
    """Refuse, in one line naming the recipe file, a recipe function ``name`` that needs parameters other than those
    ``given`` (by keyword): ``datablock()`` is called with none, ``dataloaders()`` with the loader settings it takes."""
    try:
        params = inspect.signature(getattr(mod, name)).parameters.values()
    except (TypeError, ValueError):  # a callable without a signature Python can read: called as it is
        return
    needed = [p.name for p in params if p.default is inspect.Parameter.empty and p.name not in given
              and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)]
    if not needed:
        return
    where = getattr(mod, "__file__", None) or mod.__name__
    calls = ("with no arguments" if name == "datablock" else
             f"with only the loader settings it takes, by keyword ({', '.join(sorted(given)) or 'none given'})")
    example = ", ".join(f"{n}=..." for n in needed)
    raise ParameterError(f"{who}: {where}: {name}() is called {calls}, but it needs {', '.join(map(repr, needed))}: "
                         f"give {'that parameter a default' if len(needed) == 1 else 'those parameters defaults'} "
                         f"(def {name}({example}):)")


def out_folder(text: str) -> Path:
    """An argparse ``type=`` for a recipe's ``--out`` folder: a folder there is fine (it is written into), a file of
    that name is refused before the recipe does any work."""
    folder = Path(text).expanduser()
    if folder.exists() and not folder.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a file, not a folder: give a folder to write the outputs in "
                                         "(a new one is made)")
    return folder


def out_file(text: str) -> Path:
    """An argparse ``type=`` for an option naming a file to write: an existing folder of that name, or a path whose
    folder cannot be made (a file stands where a folder above it would go), is refused before the command does any
    work. The folder itself is made by the writer; suffixes are the caller's to check."""
    file = Path(text).expanduser()
    if file.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a folder, not a file: give a file to write to (a file in that "
                                         f"folder: {file / 'NAME'})")
    above = next((p for p in file.parents if p.exists()), None)
    if above is not None and not above.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} cannot be written: {str(above)!r} is a file, so the folder "
                                         f"{str(file.parent)!r} cannot be made; give a file in a folder")
    return file
