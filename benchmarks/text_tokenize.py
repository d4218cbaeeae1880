"""Tokenize + numericalize throughput: pipekit vs fastai (spaCy rules, 2 workers), and LM loader speed.

imdb_sample's 1000 reviews replicated to 20,000 documents. Figures (docs/s, tokenize + numericalize
with min_freq=3, max_vocab=60000, starting cold: no memo, no cache):

  (a) pipekit on the 20,000 replicated documents (as specified)
  (b) pipekit on the 1000 distinct documents, 20 fresh runs (no repeated text across a run: an
      honest figure for a corpus whose texts are all different)
  (c) fastai ``tokenize_df(n_workers=2)`` + ``Numericalize`` on the same 20,000 documents ($FASTAI_PYTHON)
  (d) LM loader (bs=64, seq_len=72), shuffled epochs of the training split, measured with
      ``pipekit.bench.profile``: items/s (sequences of 72 tokens) and batches/s of the warm epochs (untimed
      epochs alternating with stage-timed ones), the first epoch apart, and the stages the time goes to;
      fastai's LMDataLoader over the same token ids, first epoch and the best of two more
  (e) cached rebuild: a TextBlock rebuilt from its on-disk cache (memory-mapped Arrow), docs/s

(a), (b) and (e) time tokenization, not a loader: they are timed directly. Ratios are against fastai
measured in the same run; a JSON record goes to bench_results/text_tokenize.json.

    python benchmarks/text_tokenize.py [--skip-fastai] [--copies 20]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

FASTAI_SCRIPT = r"""
import json, sys, time
import pandas as pd, torch
from fastai.text.all import tokenize_df, make_vocab, Numericalize, LMDataLoader
torch.set_num_threads(1)
texts = json.load(open(sys.argv[1]))
df = pd.DataFrame({"text": texts})
t = time.perf_counter()
tok_df, count = tokenize_df(df, "text", n_workers=2)
vocab = make_vocab(count, min_freq=3, max_vocab=60000)
num = Numericalize(vocab)
ids = [num(t) for t in tok_df["text"]]
dt = time.perf_counter() - t
dl = LMDataLoader(ids, bs=64, seq_len=72, shuffle=True)
epochs = []  # the first epoch, then two warm ones (pipekit's profile: a first epoch, then warm epochs)
for _ in range(3):
    t = time.perf_counter(); nb = 0
    for b in dl:
        nb += 1
    epochs.append(time.perf_counter() - t)
print(json.dumps({"seconds": dt, "docs": len(df), "tokens": int(sum(len(i) for i in ids)), "vocab": len(vocab),
                  "lm_batches": nb, "lm_first_seconds": epochs[0], "lm_seconds": min(epochs[1:])}))
"""


def load_texts(copies: int) -> list[str]:
    import polars as pl

    import pipekit.datasets as D

    texts = pl.read_csv(D.path("imdb_sample") / "texts.csv")["text"].to_list()
    return texts * copies


def pipekit_tokenize(texts: list[str]) -> dict:
    import polars as pl

    from pipekit.text import Numericalize, Tokenizer

    s = pl.Series("text", texts)
    t = time.perf_counter()
    tok = Tokenizer()
    tt = tok.encode(s)
    num = Numericalize(min_freq=3, max_vocab=60000)
    num.setup(tt)
    ids = num.encode(tt)
    dt = time.perf_counter() - t
    return {"seconds": dt, "docs": len(texts), "tokens": len(ids.values), "vocab": len(num.vocab_)}


def top_stages(p, n: int = 3) -> list[dict]:
    """The ``n`` stages of the warm epochs with the most seconds, where they ran and their share."""
    stages = sorted(p.warm.stages, key=lambda s: -s.seconds)[:n]
    return [{"stage": s.name, "kind": s.kind, "where": s.where, "seconds": s.seconds, "share": s.share}
            for s in stages]


def pipekit_lm_loader(texts: list[str]) -> dict:
    import polars as pl

    from pipekit.bench import profile
    from pipekit.data import ColReader, DataBlock, RandomSplitter
    from pipekit.text import TextBlock

    df = pl.DataFrame({"text": texts})
    with tempfile.TemporaryDirectory(prefix="pk_bench_text_") as cache:
        def build():
            return DataBlock(blocks=TextBlock.from_df("text", is_lm=True, cache_dir=cache), get_x=ColReader("text"),
                             splitter=RandomSplitter(0.05, seed=0)).dataloaders(df, bs=64, seed=0, device="cpu")

        dls = build()
        t = time.perf_counter()
        dls2 = build()
        cached = time.perf_counter() - t
        assert dls2.blocks[0].from_cache_
        # whole shuffled epochs of the training split: the first, then warm ones (timed and untimed alternating)
        p = profile(dls, subset="train", cold=True, warm_epochs=2, name="pipekit LMDataLoader")
    assert p.cold is not None
    return {"items_per_s": p.items_per_s, "batches_per_s": p.batches_per_s,
            "first_epoch_items_per_s": p.cold.items_per_s, "first_epoch_batches_per_s": p.cold.batches_per_s,
            "batches_per_epoch": p.n_batches, "seq_len": dls.train.seq_len, "bs": p.bs,
            "num_workers": p.num_workers, "top_stages": top_stages(p), "summary": p.summary(),
            "profile": p.to_dict(), "cached_build_seconds": cached}


def fastai_run(texts: list[str]) -> dict | None:
    py = os.environ.get("FASTAI_PYTHON")
    if not py:
        print("note: FASTAI_PYTHON is unset; the fastai anchor is skipped")
        return None
    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / "texts.json"
        f.write_text(json.dumps(texts))
        script = Path(d) / "fa.py"
        script.write_text(FASTAI_SCRIPT)
        out = subprocess.run([py, str(script), str(f)], capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        print("fastai anchor failed:\n" + out.stderr[-2000:])
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description="text tokenize/numericalize benchmark")
    ap.add_argument("--copies", type=int, default=20)
    ap.add_argument("--skip-fastai", action="store_true")
    args = ap.parse_args(argv)
    texts = load_texts(args.copies)
    n = len(texts)
    rec: dict = {"docs": n, "copies": args.copies}

    a = pipekit_tokenize(texts)
    rec["pipekit_replicated"] = a
    a_rate = n / a["seconds"]
    print(f"(a) pipekit tokenize+numericalize, {n} replicated docs: {a_rate:,.0f} docs/s "
          f"({a['seconds']:.2f} s, {a['tokens']:,} tokens, vocab {a['vocab']})")

    distinct = texts[:1000]
    runs = [pipekit_tokenize(distinct)["seconds"] for _ in range(args.copies)]
    b_rate = 1000 * len(runs) / sum(runs)
    rec["pipekit_distinct_docs_per_s"] = b_rate
    print(f"(b) pipekit on 1000 distinct docs, {len(runs)} cold runs: {b_rate:,.0f} docs/s")

    lm = pipekit_lm_loader(texts)
    rec["pipekit_lm"] = lm
    lm_rate, lm_first = lm["batches_per_s"], lm["first_epoch_batches_per_s"]
    stages = ", ".join(f"{s['stage']} ({s['where']}) {s['share']:.0%}" for s in lm["top_stages"])
    print(f"(d) pipekit LM loader (pipekit.bench.profile, {lm['batches_per_epoch']} batches of "
          f"{lm['bs']}x{lm['seq_len']}, {lm['num_workers']} prefetch threads): warm {lm_rate:,.0f} batches/s "
          f"({lm['items_per_s']:,.0f} sequences/s), first epoch {lm_first:,.0f} batches/s; top stages: {stages}")
    e_rate = n / lm["cached_build_seconds"]
    print(f"(e) TextBlock rebuilt from its cache: {e_rate:,.0f} docs/s ({lm['cached_build_seconds']:.2f} s)")

    fa = None if args.skip_fastai else fastai_run(texts)
    rec["fastai"] = fa
    if fa:
        fa_rate = fa["docs"] / fa["seconds"]
        fa_lm = fa["lm_batches"] / fa["lm_seconds"]
        fa_lm_first = fa["lm_batches"] / fa["lm_first_seconds"]
        rec["ratios"] = {"replicated_vs_fastai": a_rate / fa_rate, "distinct_vs_fastai": b_rate / fa_rate,
                         "lm_loader_vs_fastai": lm_rate / fa_lm, "lm_first_epoch_vs_fastai": lm_first / fa_lm_first,
                         "cached_vs_fastai": e_rate / fa_rate}
        print(f"(c) fastai tokenize_df(n_workers=2) + Numericalize: {fa_rate:,.0f} docs/s "
              f"({fa['seconds']:.1f} s, {fa['tokens']:,} tokens, vocab {fa['vocab']})")
        print(f"    fastai LMDataLoader: warm {fa_lm:,.0f} batches/s, first epoch {fa_lm_first:,.0f} batches/s "
              f"({fa['lm_batches']} batches)")
        r = rec["ratios"]
        print(f"ratio tokenize+numericalize: {r['replicated_vs_fastai']:.1f}x (replicated), "
              f"{r['distinct_vs_fastai']:.1f}x (distinct docs); LM loader {r['lm_loader_vs_fastai']:.1f}x warm, "
              f"{r['lm_first_epoch_vs_fastai']:.1f}x first epoch; "
              f"cached rebuild {r['cached_vs_fastai']:.0f}x")
    out = ROOT / "bench_results" / "text_tokenize.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(rec, indent=2))
    print(f"wrote {out}")
    return rec


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
