"""Run every benchmark in this folder, one process each, and list the JSON records they wrote.

    make bench                                   # all of them
    FASTAI_PYTHON=/path/to/fastai/venv/bin/python make bench   # with the fastai anchor side by side
    python benchmarks/run_all.py image_loader    # just one

Each benchmark prints one line per figure (with its ratio to the anchor measured in the same run)
and writes bench_results/<name>.json.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    names = argv or sorted(p.stem for p in HERE.glob("*.py") if p.stem not in ("run_all",) and not p.stem.startswith("_"))
    if not os.environ.get("FASTAI_PYTHON"):
        print("note: FASTAI_PYTHON is not set; the fastai anchor figures are skipped", flush=True)
    failed = []
    for name in names:
        script = HERE / f"{name}.py"
        if not script.exists():
            print(f"no benchmark named {name!r}", file=sys.stderr)
            return 2
        print(f"\n=== {name}", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.call([sys.executable, str(script)])
        print(f"=== {name}: {'ok' if rc == 0 else f'FAILED (exit {rc})'} in {time.perf_counter() - t0:.0f}s", flush=True)
        if rc:
            failed.append(name)
    results = HERE.parent / "bench_results"  # the checkout's, as each benchmark writes, wherever this runs from
    if results.exists():
        print("\nrecords:")
        for f in sorted(results.glob("*.json")):
            try:
                rec = json.loads(f.read_text())
                print(f"  {f}: {', '.join(list(rec)[:8]) if isinstance(rec, dict) else type(rec).__name__}")
            except ValueError:
                print(f"  {f}: unreadable")
    if failed:
        print(f"\nfailed: {failed}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
