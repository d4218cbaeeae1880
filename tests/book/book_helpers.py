"""What the book chapter tests share: predicting with an exported model in a fresh Python process.

Items travel to the other process as data (paths, texts, rows as JSON; arrays as .npy files; bytes as a
file); it rebuilds each item in the same form, loads the export with ``load_learner`` and prints each
prediction's decoded value and probabilities as JSON.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

_SCRIPT = r'''
import json, sys
from pathlib import Path
import numpy as np
import torch
from pipekit.learn import load_learner

torch.set_num_threads(1)  # as the tests' process: the same sums in the same order

spec = json.loads(Path(sys.argv[1]).read_text())
learn = load_learner(spec["export"])
out = []
for kind, value in spec["items"]:
    if kind == "path":
        item = Path(value)
    elif kind in ("str", "row"):
        item = value
    elif kind == "bytes":
        item = Path(value).read_bytes()
    elif kind == "array":
        item = np.load(value)
    elif kind == "tensor":
        import torch
        item = torch.from_numpy(np.load(value))
    elif kind == "pil":
        import PIL.Image
        item = PIL.Image.fromarray(np.load(value))
    elif kind == "pandas_row":
        import pandas as pd
        item = pd.Series(value)
    else:
        raise SystemExit(f"unknown item kind {kind}")
    decoded, _, probs = learn.predict(item)
    out.append([np.asarray(decoded).tolist() if isinstance(decoded, np.ndarray) else decoded,
                probs.float().reshape(-1).tolist()])
print(json.dumps(out))
'''


def _plain(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (np.generic,)):
        return v.item()
    return v


def fresh_predictions(export: Path, items: list[tuple[str, Any]], tmp: Path) -> list[tuple[Any, np.ndarray]]:
    """``(decoded, probabilities)`` of each item predicted by ``load_learner(export)`` in a new process.

    ``items`` are ``(kind, value)``: "path"/"str" (a file or text), "row" (a dict), "pandas_row" (a dict
    sent as a pandas Series), "bytes" (the bytes of a file), "array"/"tensor"/"pil" (a NumPy array).
    """
    sent = []
    for i, (kind, value) in enumerate(items):
        if kind in ("array", "tensor", "pil"):
            f = tmp / f"item{i}.npy"
            np.save(f, np.asarray(value))
            sent.append([kind, str(f)])
        else:
            sent.append([kind, str(value) if isinstance(value, Path) else value])
    spec = tmp / "fresh_spec.json"
    spec.write_text(json.dumps({"export": str(export), "items": sent}, default=_plain))
    script = tmp / "fresh_predict.py"
    script.write_text(_SCRIPT)
    env = {**os.environ, "PIPEKIT_QUIET": "1"}
    res = subprocess.run([sys.executable, str(script), str(spec)], capture_output=True, text=True, env=env,
                         timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    return [(d, np.asarray(p)) for d, p in json.loads(res.stdout.strip().splitlines()[-1])]


def probs_of(pred: tuple) -> np.ndarray:
    """The probabilities of a ``learn.predict`` result, as a flat float array."""
    p = pred[2]
    return (p.float() if isinstance(p, torch.Tensor) else torch.as_tensor(p)).reshape(-1).numpy()


def threes_and_sevens(split: str, y_dtype: torch.dtype = torch.int64) -> tuple[torch.Tensor, torch.Tensor]:
    """mnist_tiny's ``split`` ("train" or "valid") images of 3s and 7s as chapter 4 stacks them: flat float
    tensors in 0..1, and a target column with 3 -> 1 and 7 -> 0."""
    from PIL import Image

    import pipekit.datasets as D

    xs, ys = [], []
    for label, digit in ((1, "3"), (0, "7")):
        for f in sorted((D.path("mnist_tiny") / split / digit).glob("*.png")):
            xs.append(torch.tensor(np.asarray(Image.open(f)), dtype=torch.float32).view(-1) / 255)
            ys.append(label)
    return torch.stack(xs), torch.tensor(ys, dtype=y_dtype).unsqueeze(1)
