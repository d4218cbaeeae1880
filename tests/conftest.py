import os
from pathlib import Path

import pytest

# tests read the real data sets; the Makefile points PIPEKIT_DATA at ../shared/data
_default = Path(__file__).resolve().parents[1].parent / "shared" / "data"
if not os.environ.get("PIPEKIT_DATA") and _default.exists():
    os.environ["PIPEKIT_DATA"] = str(_default)
os.environ.setdefault("PIPEKIT_QUIET", "1")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(autouse=True)
def _plots_to_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("PIPEKIT_PLOTS", str(tmp_path / "plots"))
    monkeypatch.setenv("PIPEKIT_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def one_torch_thread():
    """Modules that time or compare training runs use one torch thread (repeatable, and fair on 2 cores)."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
