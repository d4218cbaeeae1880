"""``pipekit bench-loader recipe.py``: profile the loader a recipe file describes, sweep its workers, compare it.

A recipe is a Python file of the user's (or the name of a built-in recipe, e.g. ``mnist_tiny``) that
defines one of:

* ``datablock()`` returning ``(DataBlock, source)``: the DataBlock and what to build it from (a folder, a
  file, a table). The loaders are built here (``--bs``, ``--workers``, ``--seed``; those not given are
  ``DataBlock.dataloaders``' defaults), so the first epoch
  includes building them and filling an empty image cache; ``--compare reference`` is available.
* ``dataloaders(**kwargs)`` returning pipekit ``DataLoaders`` (for data not described by a DataBlock, e.g.
  ``Tabular(...).dataloaders``); it is called with those of ``--bs``, ``--workers`` and ``--seed`` given that
  it accepts, so the settings not given are the function's own defaults.

The file is run as a module (its ``if __name__ == "__main__":`` block is not), so a recipe can be a
training script as well.

    pipekit bench-loader my_recipe.py --batches 50
    pipekit bench-loader my_recipe.py --workers 0,2,4 --compare reference --json out.json --plot out.png
"""
from __future__ import annotations

import argparse
import contextlib
import json
import warnings
from pathlib import Path
from collections.abc import Iterator
from types import ModuleType
from typing import Any

from pipekit.core.archive import atomic_write_bytes
from pipekit.recipe_files import out_file
from pipekit.core.errors import ParameterError
from pipekit.recipe_files import load_recipe, recipe_loaders


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"takes a whole number >= 1, got {text!r}")
    return n


def _workers(text: str) -> list[int]:
    fields = text.split(",")
    if any(not f.strip() for f in fields):  # `0,,2`: a number left out is not guessed
        raise argparse.ArgumentTypeError(f"--workers takes numbers separated by commas, e.g. 0,2,4, none of them "
                                         f"left empty; got {text!r}")
    try:
        ws = [int(w) for w in fields]
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"--workers takes numbers separated by commas, e.g. 0,2,4; got {text!r}") from e
    if not ws or min(ws) < 0:
        raise argparse.ArgumentTypeError(f"--workers takes numbers >= 0 separated by commas; got {text!r}")
    return ws


def _plot_file(text: str) -> Path:
    """``--plot``: the file the bar chart is written to (:func:`~pipekit.recipe_files.out_file`, with ``.png`` added to a name
    without an image suffix), checked before anything is measured."""
    from pipekit.data.plotting import figure_path

    try:
        return figure_path(out_file(text))
    except ParameterError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="pipekit bench-loader", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("recipe", help="a Python file defining datablock() or dataloaders(), or a built-in recipe's name")
    ap.add_argument("--batches", type=_positive, default=None,
                    help="batches per epoch measured (default: whole epochs); the profile's first epoch is measured "
                         "whole, the same figure at any --batches")
    ap.add_argument("--bs", type=int, default=None,
                    help="batch size (default: the recipe's own; 64 for a datablock() recipe)")
    ap.add_argument("--subset", choices=["train", "valid"], default="train")
    ap.add_argument("--seed", type=int, default=None, help="shuffling seed (default: the recipe's own)")
    ap.add_argument("--workers", type=_workers, default=None,
                    help="num_workers settings to sweep, e.g. 0,2,4 (pipekit: prefetch threads; the reference: "
                         "worker processes); the profile uses the best")
    ap.add_argument("--compare", default=None,
                    help="'reference' (the same DataBlock as a torch DataLoader + albumentations; for a DataBlock of "
                         "one image input and label or number targets) or another recipe file")
    ap.add_argument("--rounds", type=_positive, default=3, help="alternating rounds for --workers and --compare")
    ap.add_argument("--warm-epochs", type=_positive, default=2, help="timed warm epochs (as many untimed ones alternate)")
    ap.add_argument("--no-cold", action="store_true", help="use the existing image cache instead of an empty one")
    ap.add_argument("--json", type=out_file, default=None,
                    help="write every figure to this JSON file (its folder is made when missing)")
    ap.add_argument("--plot", type=_plot_file, default=None,
                    help="write the profile's bar chart to this PNG (.png is added to a name without an image suffix)")
    return ap


def main(argv: list[str] | None = None) -> int:
    from rich.console import Console

    from pipekit.bench import machine

    args = parser().parse_args(argv)
    console = Console(highlight=False, width=max(Console().width, 110))
    mod = load_recipe(args.recipe)
    # what --compare names is checked before anything is measured
    omod = None if args.compare in (None, "reference") else load_recipe(args.compare)
    loaded = None
    if args.compare == "reference":
        if not callable(getattr(mod, "datablock", None)):
            raise ParameterError("bench-loader: --compare reference needs a recipe with datablock() (the reference is "
                                 "built from the DataBlock); this one defines only dataloaders()")
        from pipekit.bench.reference import reference_blocks

        loaded = recipe_loaders(mod, args.bs, args.workers[0] if args.workers else None, args.seed)
        reference_blocks(loaded[0][0], "bench-loader: --compare reference")
    for option, file in (("--json", args.json), ("--plot", args.plot)):
        if file is not None:  # its folder made before anything is measured, not found unwritable at the end
            try:
                file.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise ParameterError(f"bench-loader: {option} {str(file)!r}: its folder {str(file.parent)!r} cannot be "
                                     f"made ({e.strerror or e}{f': {e.filename}' if e.filename else ''}); give a file in a folder "
                                     "you can write to") from None
    record: dict[str, Any] = {"recipe": str(Path(args.recipe).resolve()), "settings": vars(args), "machine": machine()}
    try:
        with _each_warning_once():
            _measure(args, mod, omod, console, record, loaded)
    finally:  # what was measured is kept, even when a later step fails
        if args.json:  # written whole or not at all: an earlier file of that name is never left half-replaced
            atomic_write_bytes(args.json, json.dumps(record, indent=1, default=str).encode())
            console.print(f"figures written to {args.json}")
    return 0


@contextlib.contextmanager
def _each_warning_once() -> Iterator[None]:
    """Show each warning's text once. The loaders are built several times (for each worker count, for the
    reference), so a warning about the data would otherwise come once for each place that builds them;
    Python's ``"once"`` filter cannot do this, as importing a library that adds a filter resets it."""
    seen: set[tuple[str, type]] = set()
    show = warnings.showwarning

    def once(message: Any, category: type[Warning], *args: Any, **kwargs: Any) -> None:
        if (str(message), category) not in seen:
            seen.add((str(message), category))
            show(message, category, *args, **kwargs)

    warnings.showwarning = once
    try:
        yield
    finally:
        warnings.showwarning = show


def _with_workers(dls: Any, num_workers: int | None) -> Any:
    """``dls`` with its pipekit loaders at ``num_workers`` (``loader.new(num_workers=...)``, as :func:`sweep`
    measured each setting), for a recipe whose ``dataloaders()`` does not take ``num_workers``; ``dls`` itself when
    ``num_workers`` is None."""
    import copy

    from pipekit.data.loader import DataLoader

    if num_workers is None:
        return dls
    out = copy.copy(dls)
    out.loaders = [dl.new(num_workers=num_workers) if isinstance(dl, DataLoader) else dl for dl in dls.loaders]
    return out


def _measure(args: argparse.Namespace, mod: ModuleType, omod: ModuleType | None, console: Any,
             record: dict[str, Any], loaded: tuple[Any, Any, dict[str, Any]] | None = None) -> None:
    """Sweep, profile and compare as the arguments ask, printing each result and adding it to ``record``;
    ``loaded``: what :func:`recipe_loaders` already gave for ``mod``, if it was called."""
    from pipekit.bench import compare, profile, reference_loader, sweep
    from pipekit.data.dataloaders import DataLoaders

    first_workers = args.workers[0] if args.workers else None
    pair, dls, kwargs = loaded or recipe_loaders(mod, args.bs, first_workers, args.seed)
    best = first_workers
    ref_best = best if best is not None else 2  # the reference's own best setting when swept
    # the reference gets the settings given; those not given are its defaults, as DataBlock.dataloaders' are
    ref_kw = {k: v for k, v in kwargs.items() if k in ("bs", "seed")}
    if args.workers:
        target = pair if pair is not None else dls
        s = sweep(target, workers=args.workers, n_batches=args.batches, rounds=args.rounds, subset=args.subset,
                  **({k: v for k, v in kwargs.items() if k != "num_workers"} if pair is not None else {}))
        console.print(s.table())
        if s.best is None:  # the loader makes its batches in the iterating thread: profiled at the 0 in effect
            best = 0
            console.print(f"pipekit: {s.no_effect}")
        else:
            best = s.best
            console.print(f"best setting for pipekit: num_workers={best} ({s.rates[best]:,.0f} items/s)")
        record["sweep"] = s.to_dict()
        if args.compare == "reference":
            ref = sweep(lambda w: reference_loader(pair, num_workers=w, subset=args.subset, **ref_kw),
                        workers=args.workers, n_batches=args.batches, rounds=args.rounds, name="reference")
            console.print(ref.table())
            assert ref.best is not None  # a torch DataLoader's workers are processes of its own: one setting is best
            ref_best = ref.best
            console.print(f"best setting for the reference: num_workers={ref_best} ({ref.rates[ref_best]:,.0f} "
                          "items/s)")
            record["sweep_reference"] = ref.to_dict()
        if pair is None:
            dls = mod.dataloaders(**{**kwargs, "num_workers": best}) if "num_workers" in kwargs else \
                _with_workers(dls, best)
    if pair is not None:
        if best is not None:
            kwargs["num_workers"] = best
        p = profile(pair, n_batches=args.batches, subset=args.subset, warm_epochs=args.warm_epochs,
                    cold=not args.no_cold, **kwargs)
    else:
        p = profile(dls, n_batches=args.batches, subset=args.subset if isinstance(dls, DataLoaders) else None,
                    warm_epochs=args.warm_epochs)
    console.print(p.table())
    console.print(p.summary())
    record["profile"] = p.to_dict()
    if args.plot:
        console.print(f"bar chart: {p.plot(args.plot)}")
    if args.compare:
        if args.compare == "reference":
            # each side at its own best setting (the sweeps above), or both at the same when not swept
            other: Any = reference_loader(pair, num_workers=ref_best, subset=args.subset, **ref_kw)
            names = ("pipekit", "reference")
            record["compare_num_workers"] = {"pipekit": p.num_workers, "reference": ref_best}
        else:
            opair, odls, okw = recipe_loaders(omod, args.bs, best, args.seed)  # type: ignore[arg-type]
            if odls is not None and best is not None and "num_workers" not in okw:
                odls = _with_workers(odls, best)
            other = opair if opair is not None else odls
            names = (Path(args.recipe).stem, Path(args.compare).stem)
            if names[0] == names[1]:
                names = (f"{names[0]} (recipe)", f"{names[1]} (--compare)")
        mine = pair if pair is not None else dls
        # a DataBlock on either side is built with the settings given, the number of workers chosen included
        given = {k: v for k, v in (("bs", args.bs), ("num_workers", best), ("seed", args.seed)) if v is not None}
        c = compare(mine, other, n_batches=args.batches, rounds=args.rounds, subset=args.subset, names=names,
                    **(given if pair is not None or isinstance(other, tuple) else {}))
        console.print(c.table())
        record["compare"] = c.to_dict()
