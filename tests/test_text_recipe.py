"""The ULMFiT recipe end to end (quick mode): every stage runs and the figures are sane."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "imdb_sample.py"


@pytest.fixture()
def recipe():
    spec = importlib.util.spec_from_file_location("imdb_sample_recipe", RECIPE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_imdb_sample_quick(recipe, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PIPEKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PIPEKIT_QUIET", "1")
    n_threads = torch.get_num_threads()
    try:
        res = recipe.main(quick=True, out=tmp_path / "run")
    finally:
        torch.set_num_threads(n_threads)
    out = capsys.readouterr().out
    assert "result: classifier accuracy" in out.splitlines()[-2]
    assert out.splitlines()[-1] == f"figures written to {tmp_path / 'run' / 'result.json'}"
    assert 0.6 < res["tfidf_logreg_accuracy"] <= 1.0
    for k in ("classifier_accuracy", "ensemble_mean_accuracy", "ensemble_stacked_accuracy",
              "oof_classifier_accuracy", "oof_tfidf_logreg_accuracy"):
        assert 0.0 <= res[k] <= 1.0, k
    # two fold classifiers (quick mode), each scored on the validation reviews; the stacking model is
    # fitted on the out-of-fold predictions of the training reviews, never the validation ones
    assert len(res["single_classifier_accuracies"]) == res["folds"] == 2
    assert "out-of-fold predictions of 120 training reviews" in out
    assert set(res["stacking_coefs"]) == {"baseline", "classifier", "intercept"}
    assert 0.0 <= res["tfidf_logreg_recalibrated_accuracy"] <= 1.0
    assert 0.0 < res["lm_accuracy"] < 1.0 and res["lm_perplexity"] > 1.0
    # every training review is held out by exactly one fold, and the stacking model refitted on the
    # out-of-fold predictions alone gives the reported validation probabilities: the validation reviews
    # chose nothing
    rec = json.loads((tmp_path / "run" / "result.json").read_text())
    fold = np.array(rec["fold"])
    assert len(fold) == 120 and sorted(np.bincount(fold)) == [60, 60]
    texts = recipe.pl.read_csv(recipe.D.path("imdb_sample") / "texts.csv")
    train_labels = texts.filter(~recipe.pl.col("is_valid")).head(120)["label"]
    valid_labels = texts.filter(recipe.pl.col("is_valid")).head(40)["label"]
    meta = recipe.stack([np.array(rec["oof_baseline_p_positive"]), np.array(rec["oof_classifier_p_positive"])],
                        train_labels)
    x = np.stack([recipe.logit(np.array(rec["baseline_p_positive_full"])),
                  recipe.logit(np.array(rec["classifier_p_positive_full"]))], 1)
    np.testing.assert_allclose(meta.predict_proba(x)[:, 1], rec["stacked_p_positive"], atol=1e-9)
    assert res["ensemble_stacked_accuracy"] == recipe.accuracy_of(np.array(rec["stacked_p_positive"]), valid_labels)
