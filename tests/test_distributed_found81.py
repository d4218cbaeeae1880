"""Training under torchrun (two processes, gloo on loopback, CPU) with checkpoints, NaN stops, predictions on the
training set and torch loaders; MixUp and CutMix on inputs they cannot or can only partly mix; the batch-norm layers
``sync_bn`` converts are put back. Real data: a few rows of fashion_mnist and adult_sample."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import types
import warnings
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
import torch.nn.functional as F

import pipekit
import pipekit.datasets as D
from pipekit.core.errors import ParameterError
from pipekit.data import DataLoaders
from pipekit.data.external import read_idx
from pipekit.learn import CutMix, Learner, MixUp

TORCHRUN = Path(sys.executable).with_name("torchrun")
needs_torchrun = pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun not installed")

SCRIPT = r'''
import json, os, sys, time
import numpy as np, torch, torch.nn.functional as F
import torch.distributed as dist
import pipekit
import pipekit.datasets as D
import pipekit.learn.export as E
from pipekit.data import DataLoaders
from pipekit.data.external import read_idx
from pipekit.learn import Learner, NonFiniteError, SaveModelCallback
from pipekit.learn.distributed import is_main_process

torch.set_num_threads(1)
case, out = sys.argv[1], sys.argv[2]
rank = int(os.environ["RANK"])
root = D.path("fashion_mnist")
X = torch.from_numpy(read_idx(root / "train-images-idx3-ubyte.gz")[:56].reshape(56, -1).astype(np.float32) / 255.0)
Y = torch.from_numpy(read_idx(root / "train-labels-idx1-ubyte.gz")[:56].astype(np.int64))
res = {}


def learner(x=X[:40], bs=8, shuffle=True, path=None, width=16):
    pipekit.set_seed(0)
    dls = DataLoaders.from_dsets(list(zip(x, Y[:40])), list(zip(X[40:], Y[40:])), bs=bs, device="cpu",
                                 shuffle=shuffle, seed=0)
    model = torch.nn.Sequential(torch.nn.Linear(784, width), torch.nn.ReLU(), torch.nn.Linear(width, 10))
    return Learner(dls, model, loss_func=F.cross_entropy, path=path or out)


def checksum(model):
    return float(sum(v.double().sum() for v in model.state_dict().values()))


def attempt(key, f):
    try:
        res[key] = f()
    except Exception as e:
        res[key] = f"{type(e).__name__}: {e}"


if case == "save":
    real_write = E.write_archive

    def slow_write(*args, **kwargs):  # rank 0 takes a while to write, as a large model would
        time.sleep(1.0)
        return real_write(*args, **kwargs)

    E.write_archive = slow_write
    dist.init_process_group("gloo")  # one group for the three contexts below (a context that made it would end it)
    for n_epoch in (1, 3):
        learn = learner(path=f"{out}/fit{n_epoch}")
        with learn.distributed():
            cb = SaveModelCallback(monitor="valid_loss")
            attempt(f"fit{n_epoch}", lambda: (learn.fit(n_epoch, 1e-2, cbs=cb), checksum(learn.model))[1])
        saved = E.model_weights(f"{out}/fit{n_epoch}/models/model.pipekit")
        res[f"file{n_epoch}"] = float(sum(v.double().sum() for v in saved.values()))
    learn = learner(path=f"{out}/solo")
    with learn.distributed():
        learn.fit(1, 1e-2)
        before = checksum(learn.model)
        if is_main_process():  # only rank 0 saves: nothing waits for the others
            learn.save("solo")
        with torch.no_grad():
            for p in learn.model.parameters():
                p.zero_()
        attempt("solo", lambda: (learn.load("solo"), checksum(learn.model) == before)[1])
elif case == "rank0_load":
    real_write = E.write_archive

    def slow_write(*args, **kwargs):
        time.sleep(0.5)
        return real_write(*args, **kwargs)

    E.write_archive = slow_write
    dist.init_process_group("gloo")  # the user's group: it outlives the context
    learn = learner(path=f"{out}/r0")
    with learn.distributed():
        learn.fit(1, 1e-2)
        if is_main_process():
            learn.save("after")
    dist.barrier()  # the file is written
    want = checksum(learn.model)
    if is_main_process():  # rank 0 alone loads, and fits with SaveModelCallback; rank 1 has finished
        with torch.no_grad():
            for p in learn.model.parameters():
                p.zero_()
        attempt("load", lambda: (learn.load("after"), checksum(learn.model) == want)[1])
        pipekit.set_seed(0)
        solo = Learner(learn.dls, torch.nn.Sequential(torch.nn.Linear(784, 16), torch.nn.ReLU(),
                                                      torch.nn.Linear(16, 10)),
                       loss_func=F.cross_entropy, path=f"{out}/r0fit")  # its NaN checks wait for no one
        cb = SaveModelCallback(monitor="valid_loss")
        attempt("fit", lambda: (solo.fit(3, 1e-2, cbs=cb), checksum(solo.model))[1])
        saved = E.model_weights(f"{out}/r0fit/models/model.pipekit")
        res["file"] = float(sum(v.double().sum() for v in saved.values()))
elif case == "nan":
    x = X[:32].clone()
    x[20, 5] = float("inf")  # batch 5 of 4 items: rank 1's third batch
    learn = learner(x=x, bs=4, shuffle=False)
    with learn.distrib_ctx():
        try:
            learn.fit(1, 1e-2)
            res["error"] = None
        except NonFiniteError as e:
            res["error"] = str(e)
    res["finite"] = all(bool(torch.isfinite(p).all()) for p in learn.model.parameters())
    res["checksum"] = checksum(learn.model)
elif case == "preds":
    learn = learner()
    res["outside"] = [list(learn.get_preds(ds_idx=0)[0].shape), learn.validate(ds_idx=0)[0]]
    with learn.distributed():
        res["train_batches"] = len(learn.dls.train)
        preds, targs = learn.get_preds(ds_idx=0)
        res["inside"] = [list(preds.shape), learn.validate(ds_idx=0)[0]]
        res["targets_in_order"] = bool(torch.equal(targs, Y[:40]))
elif case == "torch_loaders":
    from torch.utils.data import DataLoader as TorchDataLoader, TensorDataset
    from torch.utils.data.distributed import DistributedSampler
    ds = TensorDataset(X[:40], Y[:40])
    vdl = TorchDataLoader(TensorDataset(X[40:], Y[40:]), batch_size=8)
    plain = Learner(DataLoaders(TorchDataLoader(ds, batch_size=8, shuffle=True), vdl, device="cpu"),
                    torch.nn.Linear(784, 10), loss_func=F.cross_entropy, path=out)
    try:
        with plain.distributed():
            plain.fit(1, 1e-2)
        res["refused"] = None
    except Exception as e:
        res["refused"] = f"{type(e).__name__}: {e}"
    res["after_refusal"] = [type(plain.model).__name__, dist.is_initialized()]
    pipekit.set_seed(0)
    sampler = DistributedSampler(ds, num_replicas=2, rank=rank, seed=0)
    learn = Learner(DataLoaders(TorchDataLoader(ds, batch_size=8, sampler=sampler), vdl, device="cpu"),
                    torch.nn.Linear(784, 10), loss_func=F.cross_entropy, path=out)
    with learn.distributed():
        attempt("fit", lambda: learn.fit(1, 1e-2) or "ok")
        res["batches"] = len(learn.dls.train)
        res["preds_rows"] = int(learn.get_preds(ds_idx=0)[0].shape[0])
    res["checksum"] = checksum(learn.model)
with open(f"{out}/{case}_rank{rank}.json", "w") as f:
    json.dump(res, f)
'''


def _torchrun(tmp_path: Path, case: str) -> tuple[dict, dict]:
    script = tmp_path / "ddp.py"
    script.write_text(SCRIPT)
    repo = str(Path(__file__).resolve().parents[1])  # this checkout, whatever the installed copy is
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1", "PIPEKIT_QUIET": "1",
           "PYTHONPATH": os.pathsep.join([repo, os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([str(TORCHRUN), "--standalone", "--nproc_per_node", "2", str(script), case, str(tmp_path)],
                         capture_output=True, text=True, timeout=150, env=env)
    assert run.returncode == 0, (run.stdout[-2000:], run.stderr[-3000:])
    return tuple(json.loads((tmp_path / f"{case}_rank{r}.json").read_text()) for r in (0, 1))  # type: ignore


# ------------------------------------------------------------------ 1. SaveModelCallback and learn.load under DDP
@needs_torchrun
def test_every_process_reloads_the_best_model_rank_0_wrote(tmp_path):
    r0, r1 = _torchrun(tmp_path, "save")
    for n in (1, 3):  # no process reads the checkpoint before rank 0 has written it: all end with its weights
        assert isinstance(r0[f"fit{n}"], float) and isinstance(r1[f"fit{n}"], float), (r0, r1)
        assert r0[f"fit{n}"] == pytest.approx(r0[f"file{n}"], rel=1e-9)
        assert r1[f"fit{n}"] == pytest.approx(r0[f"file{n}"], rel=1e-9)
    # a checkpoint only rank 0 saves (if is_main_process(): learn.save(...)) is loaded by every process
    assert r0["solo"] is True and r1["solo"] is True, (r0["solo"], r1["solo"])


@needs_torchrun
def test_after_the_context_rank_0_alone_loads_without_waiting_for_the_others(tmp_path):
    # the user's process group outlives learn.distributed(); rank 1 has ended when rank 0 loads
    r0, r1 = _torchrun(tmp_path, "rank0_load")
    assert r0["load"] is True, r0["load"]
    assert isinstance(r0["fit"], float), r0["fit"]  # SaveModelCallback's reload at the end of rank 0's own fit
    assert r0["fit"] == pytest.approx(r0["file"], rel=1e-9)
    assert r1 == {}


# ------------------------------------------------------------------ 3. TerminateOnNaN under DDP
@needs_torchrun
def test_a_nan_loss_in_one_process_stops_all_with_the_same_weights(tmp_path):
    r0, r1 = _torchrun(tmp_path, "nan")
    assert r0["finite"] and r1["finite"]
    assert r0["checksum"] == r1["checksum"]  # every process put back the same weights
    # rank 1 met the inf item; rank 0's own loss was finite, and each message says which
    assert r1["error"].startswith("training stopped at epoch 0, batch 2: the training loss was NaN/inf. ")
    assert r0["error"].startswith("training stopped at epoch 0, batch 2: the training loss was NaN/inf in another "
                                  "process of the job (this process's was finite). ")


# ------------------------------------------------------------------ 5. get_preds / validate on the training set
@needs_torchrun
def test_predictions_on_the_training_set_read_all_of_it_in_every_process(tmp_path):
    r0, r1 = _torchrun(tmp_path, "preds")
    assert r0["train_batches"] == r1["train_batches"] == 3  # 5 batches of 8 dealt to 2 processes
    for r in (r0, r1):
        assert r["outside"][0] == r["inside"][0] == [40, 10] and r["targets_in_order"]
        assert r["inside"][1] == pytest.approx(r["outside"][1], rel=1e-6)


# ------------------------------------------------------------------ 4. torch DataLoaders
@needs_torchrun
def test_torch_loaders_are_refused_unless_they_read_through_a_distributed_sampler(tmp_path):
    r0, r1 = _torchrun(tmp_path, "torch_loaders")
    for r in (r0, r1):
        # refused before the model is wrapped or a process group made: the learner is as it was
        assert r["refused"].startswith("ParameterError: learn.distributed(): the training loader"), r["refused"]
        assert "DistributedSampler(dataset, num_replicas=2, rank=" in r["refused"]
        assert r["after_refusal"] == ["Linear", False]
        # a torch loader reading through a DistributedSampler trains on its half; predictions read all of it
        assert r["fit"] == "ok" and r["batches"] == 3 and r["preds_rows"] == 40
    assert r0["checksum"] == pytest.approx(r1["checksum"], rel=1e-9)


# ------------------------------------------------------------------ small ones
def _tiny_learner():
    root = D.path("fashion_mnist")
    x = torch.from_numpy(read_idx(root / "train-images-idx3-ubyte.gz")[:32].reshape(32, -1).astype(np.float32) / 255)
    y = torch.from_numpy(read_idx(root / "train-labels-idx1-ubyte.gz")[:32].astype(np.int64))
    ds = list(zip(x, y))
    return Learner(DataLoaders.from_dsets(ds, ds, bs=16, device="cpu"), torch.nn.Linear(784, 10),
                   loss_func=F.cross_entropy)


def test_distrib_ctx_is_fastais_name_of_the_distributed_context():
    learn = _tiny_learner()
    with learn.distrib_ctx() as ctx:  # outside torchrun: the learner as it is
        assert ctx is learn and type(ctx.model).__name__ == "Linear"


def test_sync_batchnorm_layers_are_the_users_again_after_the_context():
    from pipekit.learn.distributed import _sync_batchnorm

    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4),
                              torch.nn.Sequential(torch.nn.Flatten(), torch.nn.BatchNorm1d(4 * 26 * 26)))
    bn1, bn2 = net[1], net[2][1]
    synced, restore = _sync_batchnorm(net)
    assert synced is net and isinstance(net[1], torch.nn.SyncBatchNorm) and isinstance(net[2][1], torch.nn.SyncBatchNorm)
    assert net[1].weight is bn1.weight and net[1].running_mean is bn1.running_mean  # trained in place
    net.eval()
    restore()
    assert net[1] is bn1 and net[2][1] is bn2 and not bn1.training and not bn2.training


# ------------------------------------------------------------------ 2. MixUp / CutMix on integer inputs
def test_mixup_refuses_inputs_with_no_float_to_blend():
    tokens = torch.tensor([[3, 17, 5, 9], [8, 1, 40, 2], [11, 11, 4, 0], [7, 25, 6, 30]])
    for cb in (MixUp(), CutMix()):
        cb.learn = types.SimpleNamespace(xb=(tokens,), yb=(torch.tensor([0, 1, 0, 1]),))
        with pytest.raises(ParameterError) as e:
            cb.before_batch()
        msg = str(e.value)
        assert "int64" in msg and "embedding" in msg and "use MixUp" not in msg, msg


def test_mixup_on_a_table_blends_the_continuous_columns_and_warns_of_the_categories():
    from pipekit.data.splitters import RandomSplitter
    from pipekit.tabular import Tabular, tabular_learner

    df = pl.read_csv(D.path("adult_sample") / "adult.csv").head(300)
    tab = Tabular(df, cat_names=["workclass", "education"], cont_names=["age", "fnlwgt"], y_names="salary",
                  splits=RandomSplitter(0.2, seed=42))

    class Spy(pipekit.learn.Callback):
        order = 40  # after MixUp

        def before_batch(self):
            if self.training and not hasattr(self, "seen"):
                self.seen = tuple(x.clone() for x in self.learn.xb)

    class Before(pipekit.learn.Callback):
        order = 20  # before MixUp

        def before_batch(self):
            if self.training and not hasattr(self, "seen"):
                self.seen = tuple(x.clone() for x in self.learn.xb)

    pipekit.set_seed(0)
    mix, spy, before = MixUp(0.4), Spy(), Before()
    learn = tabular_learner(tab.dataloaders(bs=64, seed=0), layers=[8], cbs=[mix, spy, before])
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        learn.fit(1, 1e-3)
    said = [str(x.message) for x in w if "MixUp" in str(x.message)]
    assert len(said) == 1 and "MixUp: input 0 (int64) of the batch holds integers (categories" in said[0], said
    cats, conts = before.seen
    assert torch.equal(spy.seen[0], cats) and not torch.allclose(spy.seen[1], conts)


def test_cutmix_box_sides_are_rounded_not_truncated():
    cb = CutMix(1.0)
    x = torch.rand(64, 3, 9, 9)
    cb.learn = types.SimpleNamespace(xb=(x,), yb=(torch.zeros(64, dtype=torch.long),))
    torch.manual_seed(3)
    cb.before_batch()
    torch.manual_seed(3)  # the same draws
    lam = torch.distributions.Beta(1.0, 1.0).sample((64,))
    torch.randperm(64)
    side = 9 * torch.sqrt(1 - lam)
    cy, cx = torch.randint(0, 9, (64,)), torch.randint(0, 9, (64,))
    half = torch.round(side).long() // 2
    want = torch.stack([(cy - half).clamp(0, 9), (cy + half).clamp(0, 9), (cx - half).clamp(0, 9),
                        (cx + half).clamp(0, 9)], 1)
    assert torch.equal(cb.boxes, want)
    assert bool((torch.round(side).long() // 2 != side.long() // 2).any())  # where rounding and truncating differ


# ------------------------------------------------------------------ torch loaders reading through a DistributedSampler
def _sampled_orders(rank: int, seed: int, n_epoch: int = 2) -> list[list[int]]:
    """The training targets' indices, epoch by epoch, of a fit over a torch loader reading rank ``rank``'s half of
    32 fashion_mnist rows through a DistributedSampler."""
    from torch.utils.data import DataLoader as TorchDataLoader, TensorDataset
    from torch.utils.data.distributed import DistributedSampler

    root = D.path("fashion_mnist")
    x = torch.from_numpy(read_idx(root / "train-images-idx3-ubyte.gz")[:32].reshape(32, -1).astype(np.float32) / 255)
    ds = TensorDataset(x, torch.arange(32))  # the targets say which rows were read
    sampler = DistributedSampler(ds, num_replicas=2, rank=rank, shuffle=True, seed=seed)
    dls = DataLoaders(TorchDataLoader(ds, batch_size=4, sampler=sampler), TorchDataLoader(ds, batch_size=8),
                      device="cpu")
    seen: list[list[int]] = []

    class Rows(pipekit.learn.Callback):
        def before_epoch(self):
            seen.append([])

        def before_batch(self):
            if self.training:
                seen[-1].extend(self.learn.yb[0].tolist())

    learn = Learner(dls, torch.nn.Linear(784, 32), loss_func=F.cross_entropy, cbs=Rows())
    learn.fit(n_epoch, 1e-2)
    return seen


def test_a_distributed_sampler_shuffles_anew_each_epoch():
    r0, r1 = _sampled_orders(0, seed=0), _sampled_orders(1, seed=0)
    assert r0[0] != r0[1] and r1[0] != r1[1]  # each epoch another order
    for e in (0, 1):  # the two processes' shards of an epoch are its items, each once
        assert sorted(r0[e] + r1[e]) == list(range(32))
    assert _sampled_orders(0, seed=0) == r0  # the same seed: the same orders
    assert _sampled_orders(0, seed=1)[0] != r0[0]
