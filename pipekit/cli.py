"""Command line: ``pipekit run | bench | bench-loader | datasets | summary``.

    pipekit datasets list          # which data sets are available locally
    pipekit run adult --quick      # run recipes/adult.py (or a path to a recipe file)
    pipekit summary mnist_tiny     # walk one batch of a recipe's DataBlock through the pipeline
    pipekit bench image_loader     # run benchmarks/image_loader.py
    pipekit bench-loader my_recipe.py --batches 50 --workers 0,2,4 --compare reference
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import runpy
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def _find(kind: str, name: str) -> Path:
    p = Path(name)
    if p.suffix == ".py" and p.exists():
        return p
    for base in (Path.cwd() / kind, ROOT / kind):
        cand = base / f"{name}.py"
        if cand.exists():
            return cand
    avail = sorted(f.stem for f in (ROOT / kind).glob("*.py") if not f.stem.startswith("_")) if (ROOT / kind).exists() else []
    raise SystemExit(f"pipekit: no {kind[:-1]} named {name!r}; available: {avail}")


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def cmd_datasets(args: argparse.Namespace) -> int:
    from pipekit.data.external import REGISTRY, available

    for name, where in available().items():
        status = (f"local  {where}" if where else "remote (downloads on first use)" if REGISTRY[name].urls
                  else "missing (no verified download; put its files in $PIPEKIT_DATA)")
        print(f"{name:<20} {status:<70} {REGISTRY[name].description}")
    return 0


def _run_script(path: Path, argv: list[str]) -> int:
    old = sys.argv
    sys.argv = [str(path), *argv]
    try:
        runpy.run_path(str(path), run_name="__main__")
    except SystemExit as e:
        return int(e.code or 0) if not isinstance(e.code, str) else 1
    finally:
        sys.argv = old
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    return _run_script(_find("recipes", args.recipe), args.args)


def cmd_bench(args: argparse.Namespace) -> int:
    names = args.names or [p.stem for p in sorted((ROOT / "benchmarks").glob("*.py"))
                           if not p.stem.startswith("_") and p.stem != "run_all"]
    rc = 0
    for n in names:
        print(f"== benchmark {n}", flush=True)
        rc |= _run_script(_find("benchmarks", n), args.args)
    return rc


def cmd_summary(args: argparse.Namespace) -> int:
    mod = _load(_find("recipes", args.recipe))
    if not hasattr(mod, "datablock"):
        raise SystemExit(f"pipekit: recipe {args.recipe!r} defines no datablock() function to summarise")
    dblock, source = mod.datablock()
    dblock.summary(source)
    return 0


def cmd_bench_loader(args: argparse.Namespace) -> int:
    from pipekit.bench.cli import main as bench_loader

    return bench_loader(args.args)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench-loader"]:  # its own options, in any order (argparse's REMAINDER misses leading ones)
        return cmd_bench_loader(argparse.Namespace(args=argv[1:]))
    parser = argparse.ArgumentParser(prog="pipekit", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("datasets", help="list the registered data sets and where they are")
    d.add_argument("action", choices=["list"], nargs="?", default="list")
    d.set_defaults(fn=cmd_datasets)
    r = sub.add_parser("run", help="run a recipe end to end")
    r.add_argument("recipe")
    r.add_argument("args", nargs=argparse.REMAINDER)
    r.set_defaults(fn=cmd_run)
    b = sub.add_parser("bench", help="run benchmarks (all when none named)")
    b.add_argument("names", nargs="*")
    b.add_argument("--args", nargs=argparse.REMAINDER, default=[])
    b.set_defaults(fn=cmd_bench)
    bl = sub.add_parser("bench-loader", add_help=False,
                        help="profile a recipe file's data loader (pipekit bench-loader --help)")
    bl.add_argument("args", nargs=argparse.REMAINDER)
    bl.set_defaults(fn=cmd_bench_loader)
    s = sub.add_parser("summary", help="walk one batch of a recipe's DataBlock through the pipeline")
    s.add_argument("recipe")
    s.set_defaults(fn=cmd_summary)
    args = parser.parse_args(argv)
    os.environ.setdefault("PIPEKIT_DATA", str(ROOT.parent / "shared" / "data"))
    return args.fn(args)


if __name__ == "__main__":
    raise SystemExit(main())
