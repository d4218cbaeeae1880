"""What a collab fit runs per step: torch's fused AdamW for large embedding tables whatever the thread count (same
results with 1 and 2 threads, the per-tensor loop's up to float rounding). With two threads the per-tensor loop
took 80-130 ms a step on a 1.1M-row table's embeddings (20k users, 5k items, 50 factors), the fused step 1.5-33 ms."""
import os
import subprocess
import sys
import textwrap

import torch

from pipekit.learn.optim import _fusable


def _collab_script(threads: int, fused: str) -> str:
    return textwrap.dedent(f"""
        import sys, torch
        from functools import partial
        from pipekit.datasets import path
        from pipekit.learn.optim import Adam
        from pipekit.tabular import CollabDataLoaders, collab_learner
        torch.set_num_threads({threads})
        # 2048 factors: embedding tables of about 200k weights, as large per tensor as a real catalogue's
        dls = CollabDataLoaders.from_csv(path("movie_lens_sample") / "ratings.csv", bs=64, seed=0)
        torch.manual_seed(0)
        learn = collab_learner(dls, n_factors=2048, y_range=(0, 5.5), opt_func=partial(Adam, fused={fused}))
        learn.fit_one_cycle(1, 5e-3, wd=0.1)
        import hashlib, numpy as np
        w = learn.model.u_weight.weight.detach().numpy()
        print(type(learn.opt.opt).__name__, bool(learn.opt.opt.defaults.get("fused")),
              repr(float(np.abs(w.astype("float64")).sum())),
              repr(learn.recorder.values[-1][-1]), hashlib.sha256(w.tobytes()).hexdigest())
    """)


def _run(threads: int, fused: str = "None") -> list[str]:
    env = {**os.environ, "PIPEKIT_QUIET": "1"}
    out = subprocess.run([sys.executable, "-c", _collab_script(threads, fused)], capture_output=True, text=True,
                         env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.split()


def test_a_collab_fit_uses_fused_adamw_on_two_threads_and_is_deterministic():
    one, two, two_again = _run(1), _run(2), _run(2)
    assert one[:2] == two[:2] == ["AdamW", "True"]
    # the fused step does not depend on the thread count; a second run gives the same weights and loss
    assert one[2:] == two[2:] == two_again[2:]
    loop = _run(2, "False")  # the per-tensor loop: the same update up to float rounding
    assert loop[1] == "False"
    assert abs(float(loop[2]) - float(two[2])) <= 1e-5 * float(two[2])
    assert abs(float(loop[3]) - float(two[3])) <= 1e-4


def test_fused_on_the_cpu_with_several_threads_only_for_large_tensors():
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert _fusable([{"params": [torch.zeros(20_000, 50), torch.zeros(5_000, 50), torch.zeros(20_000, 1)]}])
        # a model of many small tensors (a CNN, a tabular MLP) keeps the per-tensor loop
        assert not _fusable([{"params": [torch.zeros(64, 3, 3, 3), torch.zeros(64), torch.zeros(10, 64)]}])
        torch.set_num_threads(1)
        assert _fusable([{"params": [torch.zeros(64, 3, 3, 3), torch.zeros(64)]}])
    finally:
        torch.set_num_threads(old)
