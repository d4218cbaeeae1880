"""Tokenize + numericalize throughput: pipekit vs fastai (spaCy rules, 2 workers), and LM loader speed.

imdb_sample's 1000 reviews replicated to 20,000 documents, measured in 3 rounds of about 7,000 (``--copies``
over ``--rounds``), pipekit's and fastai's alternating, the order swapped each round; every figure is the median
of the rounds, every ratio the median of the rounds' ratios. Each side runs each round in a fresh process.
Figures (docs/s, tokenize + numericalize with min_freq=3, max_vocab=60000, no memo, no cache):

  (a) pipekit on the round's replicated documents, cold: the first call in its process (fastai's every call
      is cold too: ``tokenize_df`` starts its worker processes, and they load spaCy, on each call)
  (b) pipekit on the 1000 distinct documents, warm: later calls in the same process, a new Tokenizer each (no
      repeated text across a run: an honest figure for a corpus whose texts are all different)
  (c) fastai ``tokenize_df(n_workers=2)`` + ``Numericalize`` on the same documents ($FASTAI_PYTHON)
  (d) LM loader (bs=64, seq_len=72), shuffled epochs of the training split, measured with
      ``pipekit.bench.profile``: items/s (sequences of 72 tokens) and batches/s of the warm epochs (untimed
      epochs alternating with stage-timed ones), the first epoch apart, and the stages the time goes to;
      fastai's LMDataLoader over the same token ids, first epoch and the best of two more
  (e) cached rebuild: a TextBlock rebuilt from its on-disk cache (memory-mapped Arrow), docs/s

(a), (b) and (e) time tokenization, not a loader: they are timed directly. Ratios are against fastai
measured in the same run, side by side; a JSON record goes to bench_results/text_tokenize.json.

    python benchmarks/text_tokenize.py [--skip-fastai] [--copies 20] [--rounds 3]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROUNDS = 3

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


def pipekit_round(copies: int) -> dict:
    """pipekit's figures of one round, in a process of its own: (a) its first tokenization (cold), (b) then
    ``copies`` of the 1000 distinct documents (warm), (d) the LM loader and (e) the cached rebuild."""
    texts = load_texts(copies)
    a = pipekit_tokenize(texts)
    runs = [pipekit_tokenize(texts[:1000])["seconds"] for _ in range(copies)]
    return {"replicated": a, "distinct_seconds": runs, "lm": pipekit_lm_loader(texts)}


def run_pipekit_round(copies: int) -> dict:
    cmd = [sys.executable, __file__, "--part", "pipekit", "--copies", str(copies)]
    res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PIPEKIT_QUIET": "1"})
    if res.returncode != 0:
        raise RuntimeError(f"pipekit's round failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def fastai_run(texts: list[str], py: str) -> dict | None:
    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / "texts.json"
        f.write_text(json.dumps(texts))
        script = Path(d) / "fa.py"
        script.write_text(FASTAI_SCRIPT)
        out = subprocess.run([py, str(script), str(f)], capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        print("(c) fastai: failed, skipped:\n" + out.stderr[-2000:])
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def _rounds(rates: list[float]) -> str:
    return ", ".join(f"{r:,.0f}" for r in rates)


def main(argv: list[str] | None = None) -> dict:
    from pipekit.bench.compare import Comparison

    ap = argparse.ArgumentParser(description="text tokenize/numericalize benchmark")
    ap.add_argument("--copies", type=int, default=20, help="copies of the 1000 reviews, over all the rounds")
    ap.add_argument("--rounds", type=int, default=ROUNDS, help="rounds of pipekit and fastai, alternating")
    ap.add_argument("--skip-fastai", action="store_true")
    ap.add_argument("--part", choices=["pipekit"], help=argparse.SUPPRESS)  # one round of pipekit's, in its process
    args = ap.parse_args(argv)
    if args.part:
        out = pipekit_round(args.copies)
        print(json.dumps(out))
        return out
    per = max(1, round(args.copies / max(1, args.rounds)))
    texts = load_texts(per)
    n = len(texts)
    rec: dict = {"docs_per_round": n, "copies": args.copies, "rounds": args.rounds}
    py = None if args.skip_fastai else os.environ.get("FASTAI_PYTHON")
    if not args.skip_fastai and not py:
        print("note: FASTAI_PYTHON is unset; the fastai anchor (c) is skipped")
    pk: list[dict] = []
    fa: list[dict] = []
    for r in range(max(1, args.rounds)):
        for side in (("fastai", "pipekit") if r % 2 == 0 else ("pipekit", "fastai")):
            if side == "pipekit":
                pk.append(run_pipekit_round(per))
            elif py:
                got = fastai_run(texts, py)
                if got is None:  # said by fastai_run; no ratio without every round's fastai figure
                    py, fa = None, []
                else:
                    fa.append(got)
    rec["pipekit_rounds"], rec["fastai_rounds"] = pk, fa or None
    med = statistics.median

    a_rates = [n / p["replicated"]["seconds"] for p in pk]
    a = pk[0]["replicated"]
    print(f"(a) pipekit tokenize+numericalize, {n} replicated docs, cold (the first call in a fresh process): "
          f"{med(a_rates):,.0f} docs/s (rounds {_rounds(a_rates)}; {a['tokens']:,} tokens, vocab {a['vocab']})")
    b_rates = [1000 * len(p["distinct_seconds"]) / sum(p["distinct_seconds"]) for p in pk]
    print(f"(b) pipekit on the 1000 distinct docs, warm (later calls in that process, a new Tokenizer each, {per} "
          f"a round): {med(b_rates):,.0f} docs/s (rounds {_rounds(b_rates)})")
    rec["pipekit_replicated_cold_docs_per_s"], rec["pipekit_distinct_warm_docs_per_s"] = med(a_rates), med(b_rates)
    if fa:
        fa_rates = [f["docs"] / f["seconds"] for f in fa]
        print(f"(c) fastai tokenize_df(n_workers=2) + Numericalize on the same {n} docs, a fresh process each round: "
              f"{med(fa_rates):,.0f} docs/s (rounds {_rounds(fa_rates)}; {fa[0]['tokens']:,} tokens, "
              f"vocab {fa[0]['vocab']})")
        fa_lm = [f["lm_batches"] / f["lm_seconds"] for f in fa]
        fa_lm_first = [f["lm_batches"] / f["lm_first_seconds"] for f in fa]
        print(f"    fastai LMDataLoader: warm {med(fa_lm):,.0f} batches/s, first epoch {med(fa_lm_first):,.0f} "
              f"batches/s ({fa[0]['lm_batches']} batches)")
    lm_rates = [p["lm"]["batches_per_s"] for p in pk]
    lm_first = [p["lm"]["first_epoch_batches_per_s"] for p in pk]
    lm = pk[0]["lm"]
    stages = ", ".join(f"{s['stage']} ({s['where']}) {s['share']:.0%}" for s in lm["top_stages"])
    print(f"(d) pipekit LM loader (pipekit.bench.profile, {lm['batches_per_epoch']} batches of "
          f"{lm['bs']}x{lm['seq_len']}, {lm['num_workers']} prefetch threads): warm {med(lm_rates):,.0f} batches/s "
          f"({med(p['lm']['items_per_s'] for p in pk):,.0f} sequences/s), first epoch {med(lm_first):,.0f} "
          f"batches/s; top stages (round 1): {stages}")
    e_rates = [n / p["lm"]["cached_build_seconds"] for p in pk]
    print(f"(e) TextBlock rebuilt from its cache: {med(e_rates):,.0f} docs/s (rounds {_rounds(e_rates)})")
    if fa:
        ratios = {"replicated_cold_vs_fastai": Comparison(("pipekit", "fastai"), None, a_rates, fa_rates),
                  "distinct_warm_vs_fastai": Comparison(("pipekit", "fastai"), None, b_rates, fa_rates),
                  "lm_loader_vs_fastai": Comparison(("pipekit", "fastai"), None, lm_rates, fa_lm),
                  "lm_first_epoch_vs_fastai": Comparison(("pipekit", "fastai"), None, lm_first, fa_lm_first),
                  "cached_vs_fastai": Comparison(("pipekit", "fastai"), None, e_rates, fa_rates)}
        rec["ratios"] = {k: c.ratio for k, c in ratios.items()}
        rec["ratio_rounds"] = {k: c.ratios for k, c in ratios.items()}
        r = rec["ratios"]
        print(f"ratios (medians of the {len(fa)} rounds' ratios, side by side): tokenize+numericalize "
              f"{r['replicated_cold_vs_fastai']:.1f}x (a, cold), {r['distinct_warm_vs_fastai']:.1f}x (b, warm, "
              f"against fastai's calls, each cold); LM loader {r['lm_loader_vs_fastai']:.1f}x warm, "
              f"{r['lm_first_epoch_vs_fastai']:.1f}x first epoch; cached rebuild {r['cached_vs_fastai']:.0f}x")
    out = ROOT / "bench_results" / "text_tokenize.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(rec, indent=2))
    print(f"wrote {out}")
    return rec


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
