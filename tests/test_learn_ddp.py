"""Two processes (torchrun, gloo on loopback, CPU) train like one process with twice the batch size."""
from __future__ import annotations

import json
import os
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = r'''
import json, os, sys
import numpy as np, torch
import pipekit
import pipekit.datasets as D
from pipekit.data import CategoryBlock, DataLoaders, TensorStore
from pipekit.data.external import read_idx
from pipekit.learn import Learner, MLP, accuracy

torch.set_num_threads(1)
bs = int(sys.argv[1]); out = sys.argv[2]
root = D.path("fashion_mnist")
x = read_idx(root / "train-images-idx3-ubyte.gz")[:1800].reshape(1800, -1).astype(np.float32) / 255.0
y = read_idx(root / "train-labels-idx1-ubyte.gz")[:1800].astype(np.int64)
dls = DataLoaders.from_stores([TensorStore(x[:1536]), TensorStore(y[:1536])], [TensorStore(x[1536:]), TensorStore(y[1536:])],
                              blocks=(CategoryBlock(), CategoryBlock()), bs=bs, val_bs=128, seed=0, device="cpu",
                              num_workers=0)
pipekit.set_seed(0)
learn = Learner(dls, MLP(784, 10, layers=[32]), metrics=accuracy)
n_batches = []
class Count(pipekit.learn.Callback):
    def before_train(self): n_batches.append(len(self.learn.dl))
with learn.distributed():
    learn.fit_one_cycle(2, 1e-2, cbs=[Count()])
    rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
    world = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
    model_type = type(learn.model).__name__
w = torch.cat([p.detach().reshape(-1) for p in learn.model.parameters()])
with open(f"{out}/rank{rank}_world{world}.json", "w") as f:
    json.dump({"values": learn.recorder.history, "n_batches": n_batches, "model_type": model_type,
               "model_after": type(learn.model).__name__, "wsum": float(w.abs().sum())}, f)
'''


@pytest.mark.skipif(not shutil.which("torchrun", path=str(Path(sys.executable).parent)) and
                    not Path(sys.executable).with_name("torchrun").exists(), reason="torchrun not installed")
def test_two_process_gloo_matches_single_process(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    repo = str(Path(__file__).resolve().parents[1])  # this checkout, whatever the installed copy is
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1", "PIPEKIT_QUIET": "1",
           "PYTHONPATH": os.pathsep.join([repo, os.environ.get("PYTHONPATH", "")])}
    # the single-process reference runs here (one interpreter start fewer): outside torchrun the
    # distributed() context is a no-op
    assert "WORLD_SIZE" not in os.environ
    old_argv = sys.argv
    sys.argv = [str(script), "64", str(tmp_path)]
    try:
        runpy.run_path(str(script), run_name="__main__")
    finally:
        sys.argv = old_argv
    torchrun = str(Path(sys.executable).with_name("torchrun"))
    multi = subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", str(script), "32", str(tmp_path)],
                           capture_output=True, text=True, timeout=180, env=env)
    assert multi.returncode == 0, (multi.stdout[-2000:], multi.stderr[-3000:])
    one = json.loads((tmp_path / "rank0_world1.json").read_text())
    r0 = json.loads((tmp_path / "rank0_world2.json").read_text())
    r1 = json.loads((tmp_path / "rank1_world2.json").read_text())
    # each process read half of the batches, under DDP, and got its plain model back afterwards
    assert one["n_batches"] == [24, 24] and r0["n_batches"] == r1["n_batches"] == [24, 24]
    assert r0["model_type"] == "DistributedDataParallel" and one["model_type"] == "MLP" and r0["model_after"] == "MLP"
    # the processes stayed in sync, and match the single process with twice the batch size
    assert r0["wsum"] == pytest.approx(r1["wsum"], rel=1e-6)
    assert r0["wsum"] == pytest.approx(one["wsum"], rel=1e-4)
    for a, b, c in zip(one["values"], r0["values"], r1["values"]):
        assert b[2] == pytest.approx(a[2], rel=1e-4) and c[2] == pytest.approx(a[2], rel=1e-4)  # valid loss
        assert b[3] == pytest.approx(a[3], abs=2e-3)  # accuracy
        # each rank averages the train loss of its own half of every step: together they make the whole
        assert b[1] != pytest.approx(c[1], rel=1e-3)
        assert (b[1] + c[1]) / 2 == pytest.approx(a[1], rel=1e-4)
