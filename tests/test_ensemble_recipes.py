"""The ensemble recipes run end to end in --quick mode on the real data and keep their promises."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

RECIPES = Path(__file__).resolve().parents[1] / "recipes"


def load_recipe(name: str):
    spec = importlib.util.spec_from_file_location(f"recipe_{name}", RECIPES / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_adult_ensemble_quick(tmp_path, capsys):
    res = load_recipe("adult_ensemble").main(quick=True, out=tmp_path)
    assert res["weighted"] >= max(res["members"].values())  # never below its best member on the selection set
    assert abs(sum(res["weights"].values()) - 1) < 1e-9
    assert 0.7 < res["heldout_weighted"]["accuracy"] <= 1
    assert (tmp_path / "adult_weighted.pipekit").exists() and (tmp_path / "result.json").exists()
    honest = res["honest"]  # chosen on out-of-fold predictions: never below its best member there
    assert honest["oof"] >= max(honest["members_oof"].values()) - 1e-12 and honest["accuracy"] > 0.78
    assert (tmp_path / "adult_fit_ensemble.pipekit").exists()
    assert "result: adult valid accuracy" in capsys.readouterr().out


def test_rossmann_ensemble_quick(tmp_path, capsys):
    res = load_recipe("rossmann_ensemble").main(quick=True, out=tmp_path)
    assert res["weighted"] <= min(res["members"].values())  # RMSPE: lower is better
    assert res["members"]["gbm"] < 0.3
    # a time split: the adversarial forest tells the sets apart through the date columns
    assert res["ood_auc"] > 0.9
    assert set(res["ood_separating"][:3]) & {"Elapsed", "Year", "Week", "Dayofyear", "Month", "Day"}
    expected = {"permutation_importance.png", "gbm_gain_importance.png", "pdp_competition_distance.png",
                "pdp_promo.png", "pdp_dayofweek_promo.png", "waterfall_gbm_row0.png", "waterfall_rf_row0.png",
                "column_clusters.png"}
    assert expected <= set(res["plots"])
    assert all((tmp_path / p).stat().st_size > 1000 for p in expected)
    assert "result: rossmann_sample valid RMSPE" in capsys.readouterr().out
