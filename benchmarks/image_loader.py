"""Image loading + augmentation throughput: pipekit vs fastai vs a hand-written torch/albumentations loader.

The dogscats training set (3,000 JPEGs), presize Resize(256), then aug_transforms(size=224,
min_scale=0.75) + ImageNet normalisation, bs 64, 2 CPU threads/workers. Figures (images/s):

  (a) pipekit first epoch: decode + presize into the on-disk cache + one augmented epoch
  (b) pipekit cached epoch: a later epoch (memory-mapped uint8 cache, one resample per image)
  (c) fastai DataBlock, same settings, one epoch (via $FASTAI_PYTHON; skipped when unset)
  (d) torch DataLoader + albumentations written by hand, one epoch
  (e) the decode + resize limit: OpenCV decode and resize to 256 only, one pass in 2 threads

Each figure runs in its own process (peak RSS is per figure). Ratios are against fastai measured in
the same run. A JSON record goes to bench_results/image_loader.json.

    python benchmarks/image_loader.py [--skip-fastai] [--limit N]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIZE, PRESIZE, BS, MIN_SCALE = 224, 256, 64, 0.75


def data_path() -> Path:
    import pipekit.datasets as D

    return D.path("dogscats")


def peak_rss_mb(children: bool = False) -> float:
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if children:
        r = max(r, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    return r / 1024


def part_pipekit(limit: int | None) -> dict:
    os.environ["PIPEKIT_CACHE"] = tempfile.mkdtemp(prefix="pk_bench_cache_")
    import torch

    from pipekit.data import CategoryBlock, DataBlock, GrandparentSplitter, get_image_files, parent_label
    from pipekit.vision import ImageBlock, Normalize, Resize, aug_transforms, imagenet_stats

    def dblock():
        def get(p):
            fs = get_image_files(p)
            return fs if not limit else [f for f in fs if f.parent.parent.name == "train"][:limit] + \
                [f for f in fs if f.parent.parent.name == "valid"][:limit // 4]

        return DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=get, get_y=parent_label,
                         splitter=GrandparentSplitter(), item_tfms=[Resize(PRESIZE)],
                         batch_tfms=aug_transforms(size=SIZE, min_scale=MIN_SCALE)
                         + [Normalize.from_stats(*imagenet_stats)])

    def epoch(dl) -> int:
        n = 0
        for x, _ in dl:
            n += len(x)
        assert x.shape[1:] == (3, SIZE, SIZE) and x.dtype == torch.float32
        return n

    t0 = time.perf_counter()
    dls = dblock().dataloaders(data_path(), bs=BS, seed=0, device="cpu", num_workers=2)
    t_build = time.perf_counter() - t0
    n1 = epoch(dls.train)
    t_first = time.perf_counter() - t0
    t1 = time.perf_counter()
    n2 = epoch(dls.train)
    t_cached = time.perf_counter() - t1
    t1 = time.perf_counter()
    n3 = epoch(dls.train)
    t_cached2 = time.perf_counter() - t1
    # a later run: the cache is found on disk, nothing is decoded
    t1 = time.perf_counter()
    dls2 = dblock().dataloaders(data_path(), bs=BS, seed=1, device="cpu", num_workers=2)
    n4 = epoch(dls2.train)
    t_warm = time.perf_counter() - t1
    shutil.rmtree(os.environ["PIPEKIT_CACHE"], ignore_errors=True)
    return {"first_epoch_img_s": n1 / t_first, "presize_build_s": t_build,
            "cached_epoch_img_s": max(n2 / t_cached, n3 / t_cached2), "later_run_first_epoch_img_s": n4 / t_warm,
            "n_images": n1, "peak_rss_mb": peak_rss_mb()}


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


def part_albumentations(limit: int | None) -> dict:
    import albumentations as A
    import cv2
    import torch
    from albumentations.pytorch import ToTensorV2

    from pipekit.data import get_image_files, parent_label

    files = get_image_files(data_path() / "train")[:limit] if limit else get_image_files(data_path() / "train")
    labels = [0 if parent_label(f) == "cats" else 1 for f in files]
    tf = A.Compose([
        A.SmallestMaxSize(max_size=PRESIZE), A.CenterCrop(PRESIZE, PRESIZE),
        A.RandomResizedCrop(size=(SIZE, SIZE), scale=(MIN_SCALE, 1.0), ratio=(1.0, 1.0)),
        A.HorizontalFlip(), A.Affine(rotate=(-10, 10), scale=(1.0, 1.1), p=0.75),
        A.Perspective(scale=(0.0, 0.05), p=0.75),
        A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.2, p=0.75),
        A.Normalize(), ToTensorV2()])

    class DS(torch.utils.data.Dataset):
        def __len__(self):
            return len(files)

        def __getitem__(self, i):
            img = cv2.cvtColor(cv2.imread(str(files[i])), cv2.COLOR_BGR2RGB)
            return tf(image=img)["image"], labels[i]

    dl = torch.utils.data.DataLoader(DS(), batch_size=BS, shuffle=True, num_workers=2, drop_last=True)
    t = time.perf_counter()
    n = sum(len(x) for x, _ in dl)
    return {"epoch_img_s": n / (time.perf_counter() - t), "n_images": n, "peak_rss_mb": peak_rss_mb(True)}


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


FASTAI_SCRIPT = r"""
import json, resource, sys, time
import torch
from fastai.vision.all import (CategoryBlock, DataBlock, GrandparentSplitter, ImageBlock, Normalize, Resize,
                               aug_transforms, get_image_files, imagenet_stats, parent_label)
path, limit = sys.argv[1], int(sys.argv[2])
def get(p):
    fs = get_image_files(p)
    return fs if not limit else [f for f in fs if f.parent.parent.name == "train"][:limit] + \
        [f for f in fs if f.parent.parent.name == "valid"][:limit // 4]
t0 = time.perf_counter()
dblock = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=get, get_y=parent_label,
                   splitter=GrandparentSplitter(), item_tfms=Resize(%(presize)d),
                   batch_tfms=[*aug_transforms(size=%(size)d, min_scale=%(min_scale)s), Normalize.from_stats(*imagenet_stats)])
dls = dblock.dataloaders(path, bs=%(bs)d, device="cpu", num_workers=2)
n = 0
for x, y in dls.train:
    n += len(x)
t = time.perf_counter() - t0
r = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
print(json.dumps({"epoch_img_s": n / t, "n_images": n, "peak_rss_mb": r / 1024}))
""" % {"presize": PRESIZE, "size": SIZE, "min_scale": MIN_SCALE, "bs": BS}


def run_part(name: str, limit: int | None) -> dict:
    cmd = [sys.executable, __file__, "--part", name] + (["--limit", str(limit)] if limit else [])
    res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PIPEKIT_QUIET": "1"})
    if res.returncode != 0:
        raise RuntimeError(f"part {name} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def run_fastai(limit: int | None) -> dict | None:
    py = os.environ.get("FASTAI_PYTHON")
    if not py:
        print("(c) fastai: skipped, FASTAI_PYTHON is not set")
        return None
    res = subprocess.run([py, "-c", FASTAI_SCRIPT, str(data_path()), str(limit or 0)], capture_output=True, text=True)
    if res.returncode != 0:
        print(f"(c) fastai: failed, skipped:\n{res.stderr[-2000:]}")
        return None
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=["pipekit", "executors", "albumentations", "decode_limit"])
    ap.add_argument("--limit", type=int, default=None, help="use only the first N training files")
    ap.add_argument("--skip-fastai", action="store_true")
    a = ap.parse_args()
    if a.part:
        print(json.dumps(globals()[f"part_{a.part}"](a.limit)))
        return
    with open("/proc/loadavg") as f:
        load = f.read().split()[0]
    print(f"image_loader: dogscats train, Resize({PRESIZE}) -> aug_transforms(size={SIZE}, min_scale={MIN_SCALE}) "
          f"+ Normalize, bs {BS}, 2 threads; load average at start {load}")
    fa = None if a.skip_fastai else run_fastai(a.limit)
    pk = run_part("pipekit", a.limit)
    ex = run_part("executors", a.limit)
    al = run_part("albumentations", a.limit)
    de = run_part("decode_limit", a.limit)
    anchor = fa["epoch_img_s"] if fa else None

    def ratio(v: float) -> str:
        return f"  ({v / anchor:5.1f}x fastai)" if anchor else ""

    print(f"(a) pipekit first epoch (decode+presize+cache+augment): {pk['first_epoch_img_s']:8.0f} img/s"
          f"{ratio(pk['first_epoch_img_s'])}  [presize build {pk['presize_build_s']:.1f}s]")
    print(f"(b) pipekit cached epoch:                               {pk['cached_epoch_img_s']:8.0f} img/s"
          f"{ratio(pk['cached_epoch_img_s'])}")
    print(f"    pipekit later run, first epoch from the disk cache:  {pk['later_run_first_epoch_img_s']:8.0f} img/s"
          f"{ratio(pk['later_run_first_epoch_img_s'])}")
    if fa:
        print(f"(c) fastai DataBlock epoch:                             {fa['epoch_img_s']:8.0f} img/s  "
              f"(1.0x)  peak RSS {fa['peak_rss_mb']:.0f} MB")
    print(f"(d) torch DataLoader + albumentations epoch:            {al['epoch_img_s']:8.0f} img/s"
          f"{ratio(al['epoch_img_s'])}  peak RSS {al['peak_rss_mb']:.0f} MB")
    print(f"(e) decode + resize limit (OpenCV, 2 threads):          {de['img_s']:8.0f} img/s{ratio(de['img_s'])}")
    print(f"    augmentation step alone: cv2 executor {ex['cv2_executor_img_s']:.0f} img/s, torch executor (CPU) "
          f"{ex['torch_executor_cpu_img_s']:.0f} img/s"
          + (f", torch executor (CUDA) {ex['torch_executor_cuda_img_s']:.0f} img/s" if "torch_executor_cuda_img_s" in ex else ""))
    print(f"    pipekit peak RSS {pk['peak_rss_mb']:.0f} MB (memory-mapped cache pages included)")
    with open("/proc/loadavg") as f:
        load_end = f.read().split()[0]
    # Every figure shares the 2 cores with whatever else runs: the load says how comparable a run is.
    print(f"    load average at start {load}, at end {load_end}")
    record = {"benchmark": "image_loader", "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "load_average": float(load), "load_average_end": float(load_end), "settings": {"presize": PRESIZE, "size": SIZE, "bs": BS,
                                                         "min_scale": MIN_SCALE, "limit": a.limit},
              "pipekit": pk, "executors": ex, "fastai": fa, "albumentations": al, "decode_limit": de,
              "ratios_vs_fastai": ({"first_epoch": pk["first_epoch_img_s"] / anchor,
                                    "cached_epoch": pk["cached_epoch_img_s"] / anchor} if anchor else None)}
    out = ROOT / "bench_results"
    out.mkdir(exist_ok=True)
    (out / "image_loader.json").write_text(json.dumps(record, indent=2))
    print(f"result: image_loader cached {pk['cached_epoch_img_s']:.0f} img/s, first epoch "
          f"{pk['first_epoch_img_s']:.0f} img/s" + (f", {pk['cached_epoch_img_s'] / anchor:.1f}x / "
                                                    f"{pk['first_epoch_img_s'] / anchor:.1f}x fastai" if anchor else ""))


if __name__ == "__main__":
    main()
