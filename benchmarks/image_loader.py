"""Image loading + augmentation throughput, measured with pipekit.bench: pipekit vs fastai vs the reference
torch DataLoader (albumentations in worker processes) of the same DataBlock.

The dogscats training set (3,000 JPEGs), presize Resize(256), then aug_transforms(size=224,
min_scale=0.75) + ImageNet normalisation, bs 64, 2 CPU threads/workers. Figures (images/s):

  (a) pipekit first epoch, from dataloaders() on an empty cache to the end of the epoch (profile().cold)
  (b) pipekit warm epoch (profile(): untimed epochs; the stage table says where the time goes)
  (c) the limit of this machine for the plan: the same plan's warps, lighting and normalisation written
      into a preallocated batch by 2 threads, straight from the memory-mapped cache, no loader around them
  (d) fastai DataBlock, same files and settings (via $FASTAI_PYTHON; skipped when unset): one whole training
      epoch per round, as a user iterates it (its worker processes started and stopped by the epoch, as in
      every fastai epoch), in one fastai process kept between rounds. fastai caches nothing, so every epoch
      decodes, resizes and augments every image, its first as its later ones. The rounds alternate with
      pipekit's (a) and (b), the order swapped each round; every "x fastai" is the median of the rounds'
      ratios, each a whole pipekit epoch against a whole fastai epoch of the same files. ``--limit`` bounds
      the run time by giving both sides fewer files, never by cutting one side's epochs
  (e) compare(pipekit, reference_loader(...)): alternating rounds, ratio per round
  (f) the decode + resize limit: OpenCV decode and resize to 256 only, one pass in 2 threads
  (g) the augmentation executors alone (OpenCV threads, torch on the CPU, torch on a GPU when there is one)
  (h) on a CUDA device only: the loader with the device it picks by default (gather and pin on the host, the torch
      executor on the device), first and warm epoch; then training xresnet50 from it in fp32, bf16 and fp16
      against the same training steps on one batch already on the device (what the model alone reaches), so
      the ratio says how well the loader keeps the GPU fed

Each part runs in its own process (peak RSS is per part); fastai's rounds run inside pipekit's part, in their
own process. Ratios are against figures measured in the same run, side by side. A JSON record goes to
bench_results/image_loader.json.

    python benchmarks/image_loader.py [--skip-fastai] [--limit N] [--batches N]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIZE, PRESIZE, BS, MIN_SCALE = 224, 256, 64, 0.75
#: rounds of pipekit's first and warm epochs alternating with fastai's epochs
ROUNDS = 3


def data_path() -> Path:
    import pipekit.datasets as D

    return D.path("dogscats")


def peak_rss_mb(children: bool = False) -> float:
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if children:
        r = max(r, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    return r / 1024


def dogscats_items(path, limit: int | None) -> list:
    """The files both libraries read: all of them, or ``limit`` training and ``limit // 4`` validation files."""
    from pipekit.data import get_image_files

    def spread(fs, n):  # every k-th file, so that both classes are in the subset
        return fs[::max(1, len(fs) // n)][:n]

    fs = get_image_files(path)
    return list(fs) if not limit else spread([f for f in fs if f.parent.parent.name == "train"], limit) + \
        spread([f for f in fs if f.parent.parent.name == "valid"], limit // 4)


def dogscats_block(limit: int | None):
    from pipekit.data import CategoryBlock, DataBlock, GrandparentSplitter, parent_label
    from pipekit.vision import ImageBlock, Normalize, Resize, aug_transforms, imagenet_stats

    def get(p):
        return dogscats_items(p, limit)

    return DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=get, get_y=parent_label,
                     splitter=GrandparentSplitter(), item_tfms=[Resize(PRESIZE)],
                     batch_tfms=aug_transforms(size=SIZE, min_scale=MIN_SCALE) + [Normalize.from_stats(*imagenet_stats)])


class AugmentLimit:
    """The loader's own plan (warps, lighting, normalisation) written by ``threads`` threads into a preallocated
    batch, read in place from the memory-mapped cache, batch after batch with no loader around it: what a
    loader of this plan could reach at best on this machine. Iterable with a length, so that ``compare``
    times it in rounds alternating with the loader."""

    def __init__(self, dl, threads: int = 2):
        from pipekit.vision.transforms import BatchAugment, Normalize

        tfms = list(dl.batch_tfms)
        self.dl, self.threads = dl, threads
        self.aug = next(t for t in tfms if isinstance(t, BatchAugment))
        self.norm = next(t for t in tfms if isinstance(t, Normalize))
        self.store = dl.dataset.stores[0]
        self.epoch = 100  # plans of epochs the loader itself does not draw

    def __len__(self) -> int:
        return len(self.dl)

    def __iter__(self):
        from pipekit.vision.augment import warp_cv2_float

        dl, store, s = self.dl, self.store, self.aug.settings
        self.epoch += 1
        for i, entry in enumerate(dl.batch_plan(self.epoch)):
            rows = dl.dataset.idxs[entry]
            ctx = dl.context(self.epoch, i)
            plan = self.aug.plan(len(rows), store.size, ctx.rng, True)
            yield (warp_cv2_float(store.pixels, plan, *self.norm.float_lut(0, "image", store.pixels.shape[3], ctx),
                                  mode=s.mode, pad_mode=s.pad_mode, num_threads=self.threads, rows=rows),)


class FastaiEpochs:
    """fastai's DataBlock over ``files`` in a process of the interpreter ``python`` (fastai installed), kept between
    rounds: :meth:`epoch` runs one whole training epoch and gives its images/s (``batches``: the epoch's batches).
    Its loaders are built before the first (``build_s``, left out of every rate). Raises RuntimeError, with the end of fastai's messages,
    when that process fails."""

    def __init__(self, python: str, files: list):
        self.folder = Path(tempfile.mkdtemp(prefix="pk_bench_fastai_"))
        (self.folder / "files.json").write_text(json.dumps([str(f) for f in files]))
        self.errors = open(self.folder / "stderr.txt", "w+")
        self.proc = subprocess.Popen([python, "-c", FASTAI_SERVER, str(self.folder / "files.json")], text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.errors)
        self.build_s, self.peak_rss_mb, self.batches = None, None, None

    def _ask(self, line: str) -> dict:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass  # said below, with fastai's messages
        for out in self.proc.stdout:
            if out.startswith("RESULT "):
                return json.loads(out[len("RESULT "):])
        self.errors.seek(0)
        raise RuntimeError(f"the fastai process ended (exit {self.proc.wait()}):\n{self.errors.read()[-2000:]}")

    def epoch(self) -> float:
        r = self._ask("epoch")
        if self.build_s is None:
            self.build_s = r["build_s"]
        self.batches = r["batches"]
        return r["items"] / r["seconds"]

    def close(self) -> None:
        try:
            self.peak_rss_mb = self._ask("quit")["peak_rss_mb"]
        except RuntimeError:
            pass
        self.proc.kill()
        self.proc.wait()
        self.errors.close()
        shutil.rmtree(self.folder, ignore_errors=True)


def part_pipekit(limit: int | None, batches: int | None, with_fastai: bool = False) -> dict:
    # an empty cache of this run's own for the comparisons after the rounds; each round's profile builds its own
    cache = tempfile.mkdtemp(prefix="pk_bench_cache_")
    os.environ["PIPEKIT_CACHE"] = cache
    import torch

    from pipekit.bench import compare, profile, reference_loader
    from pipekit.bench.compare import Comparison

    torch.set_num_threads(2)
    dblock, path = dogscats_block(limit), data_path()
    files = dogscats_items(path, limit)
    fa: FastaiEpochs | None = None
    fa_note = None
    if with_fastai:
        try:
            fa = FastaiEpochs(os.environ["FASTAI_PYTHON"], files)
        except OSError as e:  # not an interpreter
            fa_note = f"(d) fastai: FASTAI_PYTHON cannot be run, skipped: {e}"
    profiles, fa_rates = [], []
    for r in range(ROUNDS if fa else 1):
        for side in (("fastai", "pipekit") if r % 2 == 0 else ("pipekit", "fastai")):
            if side == "pipekit":  # (a) on an empty cache of its own, then (b); the rounds give the medians
                profiles.append(profile((dblock, path), bs=BS, seed=0, num_workers=2, device="cpu", cold=True,
                                        warm_epochs=1 if fa else 2))
            elif fa is not None:
                try:
                    fa_rates.append(fa.epoch())
                except RuntimeError as e:
                    fa_note = f"(d) fastai: failed, skipped: {e}"
                    fa.close()
                    fa, fa_rates = None, []
    p = profiles[len(profiles) // 2]
    dls = dblock.dataloaders(path, bs=BS, seed=0, num_workers=2, device="cpu")
    x, _ = dls.train.one_batch()
    assert x.shape[1:] == (3, SIZE, SIZE) and x.dtype == torch.float32
    lim = compare(dls, AugmentLimit(dls.train), rounds=3, names=("pipekit", "limit"), device="cpu")
    ref = reference_loader(dblock, path, bs=BS, num_workers=2, seed=0)
    c = compare(dls, ref, n_batches=batches, rounds=3, names=("pipekit", "reference"), device="cpu")
    warm_kinds = p.warm.by_kind("prefetch")
    shutil.rmtree(cache, ignore_errors=True)
    rss = peak_rss_mb(True)  # before the fastai process is collected: its memory is not pipekit's
    fastai = None
    if fa is not None:
        fa.close()
        # every round: a whole epoch on each side
        first = Comparison(("pipekit first epoch", "fastai"), None, [q.cold.items_per_s for q in profiles], fa_rates)
        warm_cmp = Comparison(("pipekit warm epoch", "fastai"), None, [q.items_per_s for q in profiles], fa_rates)
        fastai = {"epoch_img_s": statistics.median(fa_rates), "rates": fa_rates, "batches_per_epoch": fa.batches,
                  "build_s": fa.build_s, "peak_rss_mb": fa.peak_rss_mb,
                  "first_epoch_vs_fastai": first.to_dict(), "cached_epoch_vs_fastai": warm_cmp.to_dict()}
    return {"first_epoch_img_s": statistics.median(q.cold.items_per_s for q in profiles),
            "first_epoch_rounds": [q.cold.items_per_s for q in profiles],
            "presize_build_s": statistics.median(q.cold.build_s for q in profiles),
            "cached_epoch_img_s": statistics.median(q.items_per_s for q in profiles),
            "cached_epoch_rounds": [q.items_per_s for q in profiles], "limit_img_s": lim.median_b,
            "fastai": fastai, "fastai_note": fa_note,
            "warm_vs_limit": lim.ratio, "vs_limit": lim.to_dict(), "prefetch_seconds_by_kind": warm_kinds,
            "n_images": p.plain_items // max(1, p.warm.epochs), "profile": p.to_dict(),
            "vs_reference": c.to_dict(), "summary": p.summary(), "peak_rss_mb": rss}


def part_executors(limit: int | None) -> dict:
    """The augmentation step alone on a cached uint8 batch: OpenCV threads vs torch grid_sample."""
    import numpy as np
    import torch

    from pipekit.data import BatchContext, get_image_files
    from pipekit.vision import AugmentSettings, Resize, build_image_store, sample_plan, warp_cv2, warp_torch

    files = get_image_files(data_path() / "train")[:256]
    x = build_image_store(files, Resize(PRESIZE), cache_dir=False).gather(np.arange(BS))
    settings = AugmentSettings(size=SIZE, min_scale=MIN_SCALE)
    streams = [BatchContext(("image",), 1, True, torch.device("cpu"), key=(0, 0, i)).rng for i in range(10)]
    plans = [sample_plan(BS, (PRESIZE, PRESIZE), s, settings) for s in streams]
    out = {}
    warp_cv2(x, plans[0])
    t = time.perf_counter()
    for p in plans:
        warp_cv2(x, p)
    out["cv2_executor_img_s"] = 10 * BS / (time.perf_counter() - t)
    warp_torch(x, plans[0])
    t = time.perf_counter()
    for p in plans[:3]:
        warp_torch(x, p)
    out["torch_executor_cpu_img_s"] = 3 * BS / (time.perf_counter() - t)
    if torch.cuda.is_available():
        xc = x.cuda()
        warp_torch(xc, plans[0])
        torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(5):
            for p in plans:
                warp_torch(xc, p)
        torch.cuda.synchronize()
        out["torch_executor_cuda_img_s"] = 50 * BS / (time.perf_counter() - t)
    return out


def _train_steps(model, batches, precision: str, n: int) -> float:
    """Images/s of ``n`` plain training steps (AdamW, cross-entropy) of ``model`` on ``batches`` (an iterable of
    (x, y) batches on the device, restarted when it runs out), in ``precision``: 'fp32', 'bf16' or 'fp16'."""
    import torch

    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None
    loss_fn = torch.nn.CrossEntropyLoss()

    def step(x, y):
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = loss_fn(model(x), y)
        if scaler is None:
            loss.backward()
            opt.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()

    def endless():
        while True:
            yield from batches

    it = endless()
    for _ in range(3):  # warm-up: kernels chosen, allocator filled
        step(*next(it))
    torch.cuda.synchronize()
    t, seen = time.perf_counter(), 0
    for _ in range(n):
        x, y = next(it)
        step(x, y)
        seen += len(x)
    torch.cuda.synchronize()
    return seen / (time.perf_counter() - t)


def part_device(limit: int | None) -> dict:
    """The loader on a CUDA device as a user gets it (no device named), then training from it."""
    import torch

    from pipekit.bench import profile
    from pipekit.vision import vision_model

    cache = tempfile.mkdtemp(prefix="pk_bench_cache_")
    os.environ["PIPEKIT_CACHE"] = cache
    torch.backends.cudnn.benchmark = True
    dblock, path = dogscats_block(limit), data_path()
    p = profile((dblock, path), bs=BS, seed=0, warm_epochs=2)
    dls = dblock.dataloaders(path, bs=BS, seed=0)
    x, _ = dls.train.one_batch()
    assert x.device.type == "cuda" and x.shape[1:] == (3, SIZE, SIZE)
    out = {"device": torch.cuda.get_device_name(0), "first_epoch_img_s": p.cold.items_per_s,
           "warm_epoch_img_s": p.items_per_s, "num_workers": dls.train.num_workers, "summary": p.summary(),
           "train": {}}
    n = 3 * len(dls.train)
    for precision in ("fp32", "bf16", "fp16"):
        torch.manual_seed(0)
        model = vision_model("xresnet50", n_out=2).cuda().to(memory_format=torch.channels_last)
        fed = _train_steps(model, dls.train, precision, n)
        one = [tuple(t.clone() for t in dls.train.one_batch())]
        alone = _train_steps(model, one, precision, n)
        out["train"][precision] = {"from_loader_img_s": fed, "one_batch_img_s": alone, "fed_share": fed / alone}
    shutil.rmtree(cache, ignore_errors=True)
    return out


def part_decode_limit(limit: int | None) -> dict:
    from concurrent.futures import ThreadPoolExecutor

    import cv2

    from pipekit.data import get_image_files

    files = get_image_files(data_path() / "train")[:limit] if limit else get_image_files(data_path() / "train")

    def one(f):
        img = cv2.imread(str(f))
        return cv2.resize(img, (PRESIZE, PRESIZE), interpolation=cv2.INTER_LINEAR)

    t = time.perf_counter()
    with ThreadPoolExecutor(2) as ex:
        n = sum(1 for _ in ex.map(one, files))
    return {"img_s": n / (time.perf_counter() - t), "n_images": n}


# fastai's side of the rounds: the same files (a JSON list), its loaders built once; each "epoch" line runs a new
# whole training epoch and answers with a RESULT line; "quit" answers with the peak RSS
FASTAI_SERVER = r"""
import json, resource, sys, time
from pathlib import Path
import torch
from fastai.vision.all import (CategoryBlock, DataBlock, GrandparentSplitter, ImageBlock, Normalize, Resize,
                               aug_transforms, imagenet_stats, parent_label)
files = [Path(f) for f in json.load(open(sys.argv[1]))]
dblock = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=lambda _: files, get_y=parent_label,
                   splitter=GrandparentSplitter(), item_tfms=Resize(%(presize)d),
                   batch_tfms=[*aug_transforms(size=%(size)d, min_scale=%(min_scale)s), Normalize.from_stats(*imagenet_stats)])
dls = None
for line in sys.stdin:
    cmd, *_ = line.split()
    if cmd == "quit":
        r = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
        print("RESULT " + json.dumps({"peak_rss_mb": r / 1024}), flush=True)
        break
    build = 0.0
    if dls is None:
        t = time.perf_counter()
        dls = dblock.dataloaders(files[0].parent.parent.parent, bs=%(bs)d, device="cpu", num_workers=2)
        build = time.perf_counter() - t
    n, nb = 0, 0
    t = time.perf_counter()
    for x, y in dls.train:
        n += len(x)
        nb += 1
    print("RESULT " + json.dumps({"seconds": time.perf_counter() - t, "items": n, "batches": nb, "build_s": build}), flush=True)
""" % {"presize": PRESIZE, "size": SIZE, "min_scale": MIN_SCALE, "bs": BS}


def run_part(name: str, limit: int | None, batches: int | None = None, with_fastai: bool = False) -> dict:
    cmd = [sys.executable, __file__, "--part", name] + (["--limit", str(limit)] if limit else []) + \
        (["--batches", str(batches)] if batches else []) + (["--with-fastai"] if with_fastai else [])
    res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PIPEKIT_QUIET": "1"})
    if res.returncode != 0:
        raise RuntimeError(f"part {name} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=["pipekit", "executors", "decode_limit", "device"])
    ap.add_argument("--limit", type=int, default=None, help="use only N training files (every k-th, both classes) and N/4 validation files")
    ap.add_argument("--batches", type=int, default=10,
                    help="batches per epoch in the comparison with the reference loader (default 10)")
    ap.add_argument("--skip-fastai", action="store_true")
    ap.add_argument("--with-fastai", action="store_true", help=argparse.SUPPRESS)  # the pipekit part runs fastai's rounds
    a = ap.parse_args()
    if a.part:
        fn = globals()[f"part_{a.part}"]
        print(json.dumps(fn(a.limit, a.batches, a.with_fastai) if a.part == "pipekit" else fn(a.limit)))
        return
    with open("/proc/loadavg") as f:
        load = f.read().split()[0]
    print(f"image_loader: dogscats train, Resize({PRESIZE}) -> aug_transforms(size={SIZE}, min_scale={MIN_SCALE}) "
          f"+ Normalize, bs {BS}, 2 threads; load average at start {load}")
    with_fastai = not a.skip_fastai and bool(os.environ.get("FASTAI_PYTHON"))
    if not a.skip_fastai and not with_fastai:
        print("(d) fastai: skipped, FASTAI_PYTHON is not set")
    pk = run_part("pipekit", a.limit, a.batches, with_fastai)
    fa = pk["fastai"]
    if pk["fastai_note"]:
        print(pk["fastai_note"])
    ex = run_part("executors", a.limit)
    de = run_part("decode_limit", a.limit)
    import torch

    dev = run_part("device", a.limit) if torch.cuda.is_available() else None
    vs = pk["vs_reference"]

    def ratio(key: str) -> str:  # the median of the rounds' ratios, each round's pipekit and fastai side by side
        if not fa:
            return ""
        c = fa[key]
        return f"  ({c['ratio']:5.1f}x fastai; rounds {', '.join(f'{r:.1f}' for r in c['ratios'])})"

    print(f"(a) pipekit first epoch, from dataloaders() on an empty cache (decode+presize+cache+augment): "
          f"{pk['first_epoch_img_s']:8.0f} img/s{ratio('first_epoch_vs_fastai')}  "
          f"[building {pk['presize_build_s']:.1f}s]")
    print(f"(b) pipekit warm epoch (the cache built):            {pk['cached_epoch_img_s']:8.0f} img/s"
          f"{ratio('cached_epoch_vs_fastai')}")
    print(f"(c) limit (the plan alone, 2 threads, no loader):    {pk['limit_img_s']:8.0f} img/s; "
          f"warm epoch = {pk['warm_vs_limit']:.2f}x the limit (goal >= 0.9x; median of rounds "
          f"{', '.join(f'{r:.2f}' for r in pk['vs_limit']['ratios'])})")
    print(f"    where the warm epoch goes: {pk['summary']}")
    if fa:
        rss = f"  peak RSS {fa['peak_rss_mb']:.0f} MB" if fa["peak_rss_mb"] else ""
        print(f"(d) fastai DataBlock epoch (no cache: every epoch decodes): {fa['epoch_img_s']:8.0f} img/s  (1.0x; "
              f"median of {len(fa['rates'])} whole epochs of {fa['batches_per_epoch']} batch(es), alternating with "
              f"(a) and (b); its loaders built in {fa['build_s']:.1f}s apart){rss}")
    print(f"(e) vs the reference torch DataLoader + albumentations (2 workers, {a.batches} batches/round): "
          f"{vs['verdict']} (goal >= 3x); rounds {', '.join(f'{r:.2f}' for r in vs['ratios'])}")
    print(f"(f) decode + resize limit (OpenCV, 2 threads):       {de['img_s']:8.0f} img/s")
    print(f"    pipekit peak RSS {pk['peak_rss_mb']:.0f} MB (memory-mapped cache pages included)")
    on_gpu = f", torch on the GPU {ex['torch_executor_cuda_img_s']:.0f}" if "torch_executor_cuda_img_s" in ex else ""
    print(f"(g) executors alone (img/s): OpenCV threads {ex['cv2_executor_img_s']:.0f}, torch on the CPU "
          f"{ex['torch_executor_cpu_img_s']:.0f}{on_gpu}")
    if dev is None:
        print("(h) CUDA device: skipped, none here")
    else:
        print(f"(h) on {dev['device']} (defaults: num_workers={dev['num_workers']}): first epoch "
              f"{dev['first_epoch_img_s']:.0f} img/s, warm epoch {dev['warm_epoch_img_s']:.0f} img/s")
        print(f"    where the warm epoch goes: {dev['summary']}")
        for k, v in dev["train"].items():
            print(f"    xresnet50 training {k}: {v['from_loader_img_s']:.0f} img/s from the loader, "
                  f"{v['one_batch_img_s']:.0f} img/s on one batch already there: the loader feeds "
                  f"{v['fed_share']:.2f}x of what the model takes")
    with open("/proc/loadavg") as f:
        load_end = f.read().split()[0]
    # Every figure shares the 2 cores with whatever else runs: the load says how comparable a run is.
    print(f"    load average at start {load}, at end {load_end}")
    record = {"benchmark": "image_loader", "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "load_average": float(load), "load_average_end": float(load_end), "settings": {"presize": PRESIZE, "size": SIZE, "bs": BS,
                                                         "min_scale": MIN_SCALE, "limit": a.limit},
              "pipekit": pk, "executors": ex, "fastai": fa, "decode_limit": de, "device": dev,
              "ratios_vs_fastai": ({"first_epoch": fa["first_epoch_vs_fastai"]["ratio"],
                                    "cached_epoch": fa["cached_epoch_vs_fastai"]["ratio"]} if fa else None),
              "goals": {"warm_vs_limit >= 0.9": pk["warm_vs_limit"], "vs_reference >= 3": vs["ratio"],
                        "first_epoch_vs_fastai >= 10": fa["first_epoch_vs_fastai"]["ratio"] if fa else None}}
    out = ROOT / "bench_results"
    out.mkdir(exist_ok=True)
    (out / "image_loader.json").write_text(json.dumps(record, indent=2))
    print(f"result: image_loader cached {pk['cached_epoch_img_s']:.0f} img/s, first epoch "
          f"{pk['first_epoch_img_s']:.0f} img/s" + (f", {fa['cached_epoch_vs_fastai']['ratio']:.1f}x / "
                                                    f"{fa['first_epoch_vs_fastai']['ratio']:.1f}x fastai (medians of "
                                                    f"{len(fa['rates'])} side-by-side rounds)" if fa else ""))


if __name__ == "__main__":
    main()
