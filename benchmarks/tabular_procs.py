"""Categorify + FillMissing + Normalize on adult.csv replicated to about 10M rows: time and peak memory.

The 32,561 real rows of adult_sample are repeated (``--copies``, default 300 -> 9,768,300 rows) into a
CSV in a temporary folder: a replication of the real rows, not new data. Each contender runs in its
own process that reads the CSV, splits it 80/20 (seeded) and fits the three procs on the training rows;
the process reports its wall time (read, procs) and its peak RSS (``ru_maxrss``), so the whole process
is measured the same way for every contender:

  pipekit   Tabular(path, procs=[Categorify, FillMissing, Normalize], ...): pipekit's typed reader (model
            columns only, text as Categorical, numbers as Float32). Its text-to-category conversion is done
            by the read, so its procs time leaves out work that fastai's procs time includes: against fastai
            this line gives the total (read + procs) ratio and the whole process's peak RSS, not a procs ratio
  plain     the user's default path: the frame they already have, pl.read_csv(path) (all 14 columns,
            text as strings), handed to Tabular(df, procs=[...], ...)
  pandas_frame  the book's path: pd.read_csv(path) handed to Tabular(df, procs=[...], ...), whose
            ``tab.train.xs`` is then a pandas DataFrame, as fastai's is (the conversion back is timed)
  fastai    pd.read_csv + TabularPandas(..., procs=[Categorify, FillMissing, Normalize])  ($FASTAI_PYTHON)
  pandas    pd.read_csv + a plain pandas implementation of the same three procs
  stream    pipekit process_to_parquet from a Parquet copy and from the CSV (out-of-core, streaming
            engine), each under an enforced memory cap (``--memory-cap-mb``, default 1280: the kernel's
            RLIMIT_DATA, so an allocation past it fails and the run fails); the in-memory pipekit path is
            also tried under the same cap, to show the cap is below what the table needs in memory

The in-memory contenders run ``--rounds`` times (default 2), in alternating order; each line shows a
contender's median round, and the goals are given per round (plain frame against fastai in the same
round). Ratios are printed against fastai measured in the same run (the pipekit line's: total and peak RSS
only, see above), in wall-clock time and in CPU seconds
(all threads); ``--busy N`` keeps N other processes spinning on the cores during the rounds, the same load for
every side, to show the ratio on a machine busy with other work. A JSON record goes to
bench_results/tabular_procs.json. Heavy (about 4 GB for fastai): run it once, not in tests.

    FASTAI_PYTHON=/path/to/python python benchmarks/tabular_procs.py [--copies 300] [--skip-fastai] [--busy 2]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CAT = ["workclass", "education", "marital-status", "occupation", "relationship", "race"]
CONT = ["age", "fnlwgt", "education-num"]

_REPORT = """
import json, resource, sys, threading, time as _time
class _Rss:
    # the peak RSS while the procs step runs, above the RSS when it starts (the table already read): a
    # thread reads /proc/self/statm every 2 ms; ru_maxrss cannot say this, it is the whole process's peak.
    # Also the CPU seconds of the step, all threads (what a busy machine must share out), less this thread's own
    def __init__(self):
        self.peak, self.stop, self.own_cpu = 0.0, False, 0.0
    @staticmethod
    def now():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize() / 2**20
    def start(self):
        self.cpu0 = _time.process_time()
        self.base = self.peak = self.now()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()
    def run(self):
        while not self.stop:
            self.peak = max(self.peak, self.now())
            _time.sleep(0.002)
        self.own_cpu = _time.thread_time()
    def end(self):
        self.stop = True
        self.thread.join()
        self.cpu_s = _time.process_time() - self.cpu0 - self.own_cpu
        self.peak = max(self.peak, self.now())
        return self.peak - self.base
rss = _Rss()
def report(**kw):
    kw["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if hasattr(rss, "cpu_s"):
        kw["procs_cpu_s"] = rss.cpu_s
    print("RESULT " + json.dumps(kw))
"""

PIPEKIT = _REPORT + """
import time
from pipekit.data.splitters import RandomSplitter
from pipekit.tabular import Categorify, FillMissing, Normalize, Tabular, scan_table
path, cat, cont = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
t0 = time.perf_counter()
# the same read Tabular(path, ...) does: model columns only, text as Categorical, numbers as Float32
df = scan_table(path, cat, ["salary"], cont).select(cat + cont + ["salary"]).collect(engine="streaming")
t1 = time.perf_counter()
rss.start()
tab = Tabular(df, procs=[Categorify, FillMissing, Normalize], cat_names=cat, cont_names=cont, y_names="salary",
              splits=RandomSplitter(valid_pct=0.2, seed=42))
xs = tab.train.xs  # materialise the training inputs like TabularPandas does
t2 = time.perf_counter()
report(rows=len(df), read_s=t1 - t0, procs_s=t2 - t1, total_s=t2 - t0, procs_extra_mb=rss.end(), n_train=len(tab.train),
       categories_at_read=True)
"""

FASTAI = _REPORT + """
import time
import pandas as pd
from fastai.tabular.all import Categorify, FillMissing, Normalize, RandomSplitter, TabularPandas, range_of
path, cat, cont = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
t0 = time.perf_counter()
df = pd.read_csv(path)
t1 = time.perf_counter()
rss.start()
to = TabularPandas(df, procs=[Categorify, FillMissing, Normalize], cat_names=cat, cont_names=cont,
                   y_names="salary", splits=RandomSplitter(valid_pct=0.2, seed=42)(range_of(df)))
xs = to.train.xs
t2 = time.perf_counter()
report(rows=len(df), read_s=t1 - t0, procs_s=t2 - t1, total_s=t2 - t0, procs_extra_mb=rss.end(), n_train=len(to.train))
"""

PANDAS = _REPORT + """
import time
import numpy as np
import pandas as pd
path, cat, cont = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
t0 = time.perf_counter()
df = pd.read_csv(path)
t1 = time.perf_counter()
rss.start()
perm = np.random.default_rng(42).permutation(len(df))
train = np.zeros(len(df), dtype=bool)
train[perm[int(round(0.2 * len(df))):]] = True
out = {}
for c in cont:  # FillMissing (median of train) + flag, then Normalize (train mean/std)
    col = df[c].astype("float32")
    na = col.isna()
    if na[train].any():
        out[c + "_na"] = na.astype("int8") + 1
    col = col.fillna(col[train].median())
    out[c] = ((col - col[train].mean()) / col[train].std()).astype("float32")
for c in cat:  # Categorify: vocab from train values, 0 = missing/unseen
    vocab = pd.Index(sorted(df.loc[train, c].dropna().unique()))
    out[c] = (vocab.get_indexer(df[c]) + 1).astype("int16")
res = pd.DataFrame(out)
t2 = time.perf_counter()
report(rows=len(df), read_s=t1 - t0, procs_s=t2 - t1, total_s=t2 - t0, procs_extra_mb=rss.end(), n_train=int(train.sum()))
"""

PIPEKIT_PLAIN = _REPORT + """
import time
import polars as pl
from pipekit.data.splitters import RandomSplitter
from pipekit.tabular import Categorify, FillMissing, Normalize, Tabular
path, cat, cont = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
t0 = time.perf_counter()
df = pl.read_csv(path)  # what a user has at hand: every column, text as strings
t1 = time.perf_counter()
rss.start()
tab = Tabular(df, procs=[Categorify, FillMissing, Normalize], cat_names=cat, cont_names=cont, y_names="salary",
              splits=RandomSplitter(valid_pct=0.2, seed=42))
xs = tab.train.xs
t2 = time.perf_counter()
report(rows=len(df), read_s=t1 - t0, procs_s=t2 - t1, total_s=t2 - t0, procs_extra_mb=rss.end(), n_train=len(tab.train))
"""

PIPEKIT_PANDAS = _REPORT + """
import time
import pandas as pd
from pipekit.data.splitters import RandomSplitter
from pipekit.tabular import Categorify, FillMissing, Normalize, Tabular
path, cat, cont = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
t0 = time.perf_counter()
df = pd.read_csv(path)  # the book's reading, as the fastai contender's
t1 = time.perf_counter()
rss.start()
tab = Tabular(df, procs=[Categorify, FillMissing, Normalize], cat_names=cat, cont_names=cont, y_names="salary",
              splits=RandomSplitter(valid_pct=0.2, seed=42))
xs = tab.train.xs  # a pandas DataFrame, labelled as df's rows, as TabularPandas gives it
t2 = time.perf_counter()
report(rows=len(df), read_s=t1 - t0, procs_s=t2 - t1, total_s=t2 - t0, procs_extra_mb=rss.end(), n_train=len(tab.train))
"""

STREAM = _REPORT + """
import time
from pipekit.tabular.stream import process_to_parquet
src, out, cat, cont = sys.argv[1], sys.argv[4], json.loads(sys.argv[2]), json.loads(sys.argv[3])
t0 = time.perf_counter()
proc = process_to_parquet(src, out, cat_names=cat, cont_names=cont, y_names="salary", valid_pct=0.2, seed=42)
t1 = time.perf_counter()
report(read_s=0.0, procs_s=t1 - t0, total_s=t1 - t0)
"""


def replicate(src: Path, dst: Path, copies: int) -> int:
    """Write the header once and the real rows ``copies`` times (streamed, no table in memory)."""
    text = src.read_bytes()
    header, body = text.split(b"\n", 1)
    if not body.endswith(b"\n"):
        body += b"\n"
    with open(dst, "wb") as f:
        f.write(header + b"\n")
        for _ in range(copies):
            f.write(body)
        f.flush()
        os.fsync(f.fileno())  # written out now, not by the kernel while a contender runs
    return body.count(b"\n") * copies


def run(python: str, code: str, *args: str, env: dict | None = None, cap_mb: int | None = None,
        allow_fail: bool = False) -> dict:
    """Run one contender in its own process; ``cap_mb`` enforces a memory cap on it (RLIMIT_DATA)."""

    def limit() -> None:
        if cap_mb:
            import resource

            resource.setrlimit(resource.RLIMIT_DATA, (cap_mb * 2**20, cap_mb * 2**20))

    proc = subprocess.run([python, "-c", textwrap.dedent(code), *args], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, **(env or {})}, preexec_fn=limit if cap_mb else None)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return {**json.loads(line[7:]), **({"memory_cap_mb": cap_mb} if cap_mb else {})}
    if allow_fail:
        lines = proc.stderr.strip().splitlines() or ["(no message)"]
        why = next((ln for ln in lines if "memory" in ln.lower() or "alloc" in ln.lower()), lines[-1])
        return {"failed": why.strip()[:300], "memory_cap_mb": cap_mb}
    raise RuntimeError(f"benchmark process failed ({python}):\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")


@contextlib.contextmanager
def spinning(n: int) -> Iterator[None]:
    """``n`` processes that keep a core busy each, for as long as the block runs."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--copies", type=int, default=300, help="times the real adult rows are repeated")
    ap.add_argument("--skip-fastai", action="store_true")
    ap.add_argument("--skip-pandas", action="store_true")
    ap.add_argument("--skip-stream", action="store_true")
    ap.add_argument("--rounds", type=int, default=2,
                    help="rounds of the in-memory contenders, in alternating order; ratios are taken per round")
    ap.add_argument("--busy", type=int, default=0, metavar="N",
                    help="keep N other processes spinning on the cores while the in-memory contenders run (the same "
                         "load for every side): the ratios of a machine busy with other work")
    ap.add_argument("--memory-cap-mb", type=int, default=1280,
                    help="enforced memory cap (RLIMIT_DATA) for the out-of-core runs; 0 = none")
    args = ap.parse_args()
    import pipekit.datasets as D

    src = Path(D.path("adult_sample")) / "adult.csv"
    fastai_py = None if args.skip_fastai else os.environ.get("FASTAI_PYTHON")
    if not args.skip_fastai and not fastai_py:
        print("note: FASTAI_PYTHON is not set; the fastai anchor is skipped")
    cat, cont = json.dumps(CAT), json.dumps(CONT)
    results: dict[str, dict] = {}
    rounds: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="pipekit_bench_") as tmp:
        big = Path(tmp) / "adult_replicated.csv"
        rows = replicate(src, big, args.copies)
        print(f"data: adult.csv real rows replicated x{args.copies} = {rows:,} rows, "
              f"{big.stat().st_size / 1e9:.2f} GB CSV (replication, not new data)")
        quiet = {"PIPEKIT_QUIET": "1"}
        contenders = [("pipekit", sys.executable, PIPEKIT, quiet),
                      ("pipekit_plain_frame", sys.executable, PIPEKIT_PLAIN, quiet),
                      ("pipekit_pandas_frame", sys.executable, PIPEKIT_PANDAS, quiet)]
        if fastai_py:
            contenders.append(("fastai", fastai_py, FASTAI, {}))
        if args.busy:
            print(f"load: {args.busy} other process(es) spinning on the {os.cpu_count()} cores during every round")
        with spinning(args.busy):
            for r in range(args.rounds):  # the order alternates, so a change in the machine's load hits all alike
                for name, python, code, env in (contenders if r % 2 == 0 else contenders[::-1]):
                    rounds.setdefault(name, []).append(run(python, code, str(big), cat, cont, env=env))
        for name, runs in rounds.items():  # each contender's median round by procs time
            results[name] = sorted(runs, key=lambda x: x["procs_s"])[(len(runs) - 1) // 2]
        if not args.skip_pandas:
            results["pandas"] = run(sys.executable, PANDAS, str(big), cat, cont)
        if not args.skip_stream:
            pq = Path(tmp) / "adult_replicated.parquet"
            import polars as pl

            pl.scan_csv(big).sink_parquet(pq)
            cap = args.memory_cap_mb or None
            results["stream_parquet"] = run(sys.executable, STREAM, str(pq), cat, cont,
                                            str(Path(tmp) / "processed.parquet"), env=quiet, cap_mb=cap)
            results["stream_csv"] = run(sys.executable, STREAM, str(big), cat, cont,
                                        str(Path(tmp) / "processed2.parquet"), env=quiet, cap_mb=cap)
            if cap:
                results["pipekit_in_memory_capped"] = run(sys.executable, PIPEKIT, str(big), cat, cont, env=quiet,
                                                          cap_mb=cap, allow_fail=True)
    anchor = results.get("fastai")
    for name, r in results.items():
        if "failed" in r:
            print(f"{name:20s} failed under the {r['memory_cap_mb']} MB cap: {r['failed']}")
            continue
        step = f"procs-step memory {r['procs_extra_mb']:6.0f} MB  " if "procs_extra_mb" in r else ""
        cpu = f" ({r['procs_cpu_s']:5.1f} CPU s)" if "procs_cpu_s" in r else ""
        line = (f"{name:20s} read {r['read_s']:6.2f} s  procs {r['procs_s']:6.2f} s{cpu}  total {r['total_s']:6.2f} s  "
                f"{step}peak RSS {r['peak_rss_mb']:7.0f} MB")
        if r.get("memory_cap_mb"):
            line += f" (under an enforced {r['memory_cap_mb']} MB cap)"
        if anchor and name != "fastai" and r.get("categories_at_read"):
            # its read made the text columns categories, which fastai's procs do: only the totals compare
            line += (f"  | vs fastai: total {anchor['total_s'] / r['total_s']:.1f}x faster, peak RSS "
                     f"{r['peak_rss_mb'] / anchor['peak_rss_mb']:.2f}x (no procs ratio: its procs time leaves out the "
                     "text-to-category conversion done at its read, which fastai's procs time includes)")
        elif anchor and name != "fastai":
            line += (f"  | vs fastai: procs {anchor['procs_s'] / r['procs_s']:.1f}x faster, total "
                     f"{anchor['total_s'] / r['total_s']:.1f}x faster, peak RSS {r['peak_rss_mb'] / anchor['peak_rss_mb']:.2f}x")
            if "procs_extra_mb" in r:
                line += f", procs-step memory {r['procs_extra_mb'] / anchor['procs_extra_mb']:.2f}x"
        print(line)
    if anchor and "pipekit_plain_frame" in results:
        r = results["pipekit_plain_frame"]
        pairs = list(zip(rounds["pipekit_plain_frame"], rounds["fastai"]))
        speed = [f["procs_s"] / p["procs_s"] for p, f in pairs]
        memory = [p["procs_extra_mb"] / f["procs_extra_mb"] for p, f in pairs]
        cpu = [f["procs_cpu_s"] / p["procs_cpu_s"] for p, f in pairs]
        print(f"plain-frame path goals, per round: procs >= 6x fastai (now {', '.join(f'{x:.1f}x' for x in speed)}; "
              f"in CPU seconds, which a machine busy with other work shares out, "
              f"{', '.join(f'{x:.1f}x' for x in cpu)}); "
              f"procs-step memory <= 0.4x fastai's (now {', '.join(f'{x:.2f}x' for x in memory)}). The whole process "
              f"peaks at {r['peak_rss_mb'] / anchor['peak_rss_mb']:.2f}x fastai's, most of it the user's own "
              "pl.read_csv of every column as text, which pipekit does not control")
    if anchor and "pipekit_pandas_frame" in results:
        pairs = list(zip(rounds["pipekit_pandas_frame"], rounds["fastai"]))
        speed = ", ".join(f"{f['procs_s'] / p['procs_s']:.1f}x" for p, f in pairs)
        memory = ", ".join(f"{p['procs_extra_mb'] / f['procs_extra_mb']:.2f}x" for p, f in pairs)
        print(f"pandas-frame path (the book's pd.read_csv, xs given back as pandas), per round: procs {speed} faster "
              f"than fastai; procs-step memory {memory} fastai's")
    out = ROOT / "bench_results"
    out.mkdir(exist_ok=True)
    record = {"benchmark": "tabular_procs", "rows": rows, "copies": args.copies, "time": time.time(), "busy": args.busy,
              "note": "adult.csv real rows replicated; each contender in its own process; peak RSS = ru_maxrss (whole process); procs_extra_mb = peak RSS sampled every 2 ms during the procs step minus the RSS when it started",
              "results": results, "rounds": rounds}
    (out / "tabular_procs.json").write_text(json.dumps(record, indent=1))
    print(f"record: {out / 'tabular_procs.json'}")


if __name__ == "__main__":
    main()
