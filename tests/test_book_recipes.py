"""The recipes of the book's later chapters run end to end in quick mode, print their result line, and show what
their chapter shows: learned weights beat pixel similarity (chapter 4), a regularised LSTM beats a model reading
three words (chapter 12), batch-norm keeps a CNN's activations alive (chapters 13 and 17) and a ResNet learns
(chapter 14)."""
from __future__ import annotations

import doctest
import importlib.util
import re
import string
from pathlib import Path

import pandas as pd
import pytest

from pipekit.datasets import path

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.data, pytest.mark.usefixtures("one_torch_thread")]


def recipe(name: str):
    spec = importlib.util.spec_from_file_location(f"recipe_{name}", ROOT / "recipes" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def run_quick(name: str, capsys) -> tuple[str, dict]:
    out = recipe(name).main(quick=True)
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("result:")]
    assert len(lines) == 1
    return lines[0], out


def figure(line: str, name: str) -> float:
    return float(line.split(f" {name}=")[1].split()[0])


def test_mnist_basics_learned_weights_beat_pixel_similarity(capsys):
    line, out = run_quick("mnist_basics", capsys)
    assert line.startswith("result: mnist_basics 3-vs-7 (709 train / 699 valid digits)") and "time=" in line
    baseline = figure(line, "pixel_similarity")
    assert baseline == pytest.approx(out["pixel_similarity"]["all"], abs=1e-4)
    # 675 of 699 digits are closer to their own class's mean: a property of the data, no training involved
    assert baseline == pytest.approx(675 / 699, abs=1e-4)
    for name in ("linear_learner", "two_layer_learner"):
        assert figure(line, name) > baseline, line
    assert figure(line, "linear_by_hand") > 0.85, line  # 5 epochs by hand from random weights


def test_mnist_basics_loss_and_metric_are_the_books():
    mod = recipe("mnist_basics")
    import torch

    preds, targs = torch.tensor([[3.0], [-3.0], [0.0]]), torch.tensor([[1.0], [1.0], [0.0]])
    p = preds.sigmoid()
    assert float(mod.mnist_loss(preds, targs)) == pytest.approx(float((1 - p[0] + 1 - p[1] + p[2]) / 3))
    assert float(mod.batch_accuracy(preds, targs)) == pytest.approx(2 / 3)  # 0.0 -> 0.5, not above: a 7


def test_language_model_regularised_lstm_beats_three_words(capsys):
    line, out = run_quick("language_model", capsys)
    assert "human numbers (63098 tokens, vocab 30, quick" in line and "time=" in line
    acc = out["accuracy"]
    # "." and "thousand" tie (one of each per number from 8,000 on): the first met wins
    assert out["most_common"] == "." and acc["most_common_word"] == pytest.approx(1917 / 12634, abs=1e-4)
    assert all(figure(line, name) == pytest.approx(a, abs=1e-4) for name, a in acc.items())
    assert acc["3_words"] > acc["most_common_word"] + 0.2, line
    assert acc["lstm_regularised"] > acc["3_words"] + 0.1, line


def test_human_numbers_corpus_is_the_english_words_for_1_to_9999():
    mod = recipe("language_model")
    examples = doctest.testmod(mod)
    assert examples.attempted >= 1 and examples.failed == 0
    words = [mod.number_words(n) for n in range(1, 10_000)]
    assert len(set(words)) == 9999
    assert words[:3] == ["one", "two", "three"] and words[-1] == "nine thousand nine hundred ninety nine"
    assert mod.number_words(1000) == "one thousand" and mod.number_words(110) == "one hundred ten"
    nums, vocab = mod.corpus()
    assert len(vocab) == 30 and vocab[:3] == ["one", ".", "two"]
    assert " ".join(vocab[i] for i in nums[:8].tolist()) == "one . two . three . four ."
    for bad in (0, 10_000):
        with pytest.raises(ValueError, match="outside the corpus's 1..9999"):
            mod.number_words(bad)


def test_language_model_batches_continue_row_by_row():
    mod = recipe("language_model")
    import torch

    nums = torch.arange(1000)
    dls = mod.windows(nums, 5, multi=True, bs=4)
    b0, b1 = list(dls.train)[:2]
    # row r of the second batch starts where row r of the first ended, and y is x shifted by one token
    assert torch.equal(b1[0][:, 0], b0[0][:, -1] + 1) and torch.equal(b0[1], b0[0] + 1)
    assert all(len(x) == 4 for x, _ in dls.valid)  # every batch full: the kept state has one row per stream


def test_resnet_fashion_batch_norm_keeps_activations_alive(capsys, tmp_path):
    line, out = run_quick("resnet_fashion", capsys)
    assert "(1024 of 60000 train / 512 test images, 28px)" in line and "time=" in line
    # without batch-norm most inputs of the last hidden ReLU are at or below zero; with it about half
    assert figure(line, "dead_last") > 0.8 and figure(line, "dead_last_bn") < 0.65, line
    assert figure(line, "dead_last") > figure(line, "dead_last_bn") + 0.2
    assert figure(line, "accuracy_bn") > figure(line, "accuracy") + 0.1, line
    assert figure(line, "accuracy_resnet") > 0.4, line  # ten classes: chance is 0.1
    # the charts went to $PIPEKIT_PLOTS (the test's folder), one pair per CNN (numbered past any of the same name an
    # earlier run in this process wrote)
    names = [re.sub(r"_\d+\.png$", ".png", p.name) for p in out["plots"]]
    assert names == ["color_dim_3.0.png", "dead_chart_3.0.png", "color_dim_3.1.png", "dead_chart_3.1.png"]
    assert all(p.parent == tmp_path / "plots" and p.stat().st_size > 1000 for p in out["plots"])


def test_book_spellings_run_as_the_book_writes_them(capsys):
    line, out = run_quick("book_spellings", capsys)
    assert line.startswith("result: book_spellings quick ch8_mse=") and "time=" in line
    # chapter 2's cleaner: 8 validation cats shown highest loss first; one deleted, one moved to the dogs
    cl = out["cleaner"]
    assert cl["shown"] == 8 and cl["sorted"] and (cl["valid_cats"], cl["valid_dogs"]) == (6, 9), line
    assert "ch2_cleaned_valid=6cats+9dogs" in line
    # chapter 11 over every file (test/ in no split, said once), chapter 15's model_meta and @delegates, chapter
    # 17's own NaN callback ending the fit at lr=1e4 without an error
    m = out["ch11_15_17"]
    assert m["items"] == (1428, 709, 699) and m["left_out"] == 1 and "ch11_all_files=709+699/1428" in line
    assert m["cut"] == -2 and m["delegated"] and "ch15_cut=-2 ch15_delegates=metrics" in line
    assert len(m["nan_stop"]) == 1 and "ch17_nan_stop=quiet" in line
    c, t, k, s = out["collab"], out["tabular"], out["tokens"], out["tfmdlists"]
    # chapter 8's model through torch's F.mse_loss learns as through MSELossFlat: targets are (n, 1) like its outputs
    assert c["mse_torch_loss"] == pytest.approx(c["mse"], abs=1e-4) and f"ch8_mse_loss={c['mse_torch_loss']:.4f}" in line
    # chapter 10: a classifier's dls.vocab is the text's tokens, then the classes; chapter 4's array and params
    assert k["dls_vocab"] == (["xxunk", "xxpad"], ["negative", "positive"])
    assert "ch10_dls_vocab=xxunk+xxpad/negative+positive" in line
    assert out["scratch"]["corner"] == (6, 6) and out["scratch"]["trainable"] == 2
    assert "ch4_array=6x6 ch4_trainable=2" in line
    # chapters 7, 15, 16 and 19: fine_tune of one group runs 1 + 1 epochs, a final fit records no validation loss,
    # the in-place penalty trains under an RMSE loss, the step functions' own mom, fastai's get_text_classifier form
    b = out["ch7_16_19"]
    assert b["epochs"] == 2 and b["valid"][0] is None and 0 < b["train_loss"] < 1 and b["mom"] == (0.9, 0.5)
    assert b["clf_out"] == (3, 2) and b["cpus"] >= 1
    assert "ch7_fine_tune_epochs=2 ch7_final_fit_valid=None" in line and "ch16_mom=0.9->0.5" in line
    assert "ch15_text_classifier=3x2" in line
    # chapter 8: the model written from scratch learns (it would saturate from torch's N(0, 1) embeddings)
    assert c["mse"] < 0.9 * c["mean_rating_mse"], line
    # ... and its lookups: o2i of the most rated movie is its row; its closest are other movies (the book skips itself)
    assert c["idx"] == c["code"] and c["movie"] not in c["closest"], line
    assert len(c["closest"]) == 3 and f"ch8_closest_to_{c['movie']}=" in line
    # chapter 9: the 1-D .y feeds scikit-learn, and the book's ensemble is the mean of the forest and the net
    assert t["rf_sklearn"] > 0.8 and t["forest"] > 0.8 and t["net"] > 0.75, line
    assert t["ensemble_is_mean"] and t["net_is_learner"]
    assert t["trees_are_forest"] and 0 < t["tree_std"] < 0.5  # the book's per-tree spread, from rf.estimators_
    # chapter 9's TabularPandas(df, procs, cat, cont, ...): its split, to.show(3) in years, the loaders' columns
    assert t["rows"] == (4800, 1200) and "ch9_rows=4800+1200" in line
    # ... saved and loaded as data files, and its xs given back as pandas, as the frame it was built from
    assert t["reloaded"] and t["xs_kind"] == "pandas" and "ch9_xs=pandas ch9_reloaded=identical" in line
    # ... its to.procs.normalize.means: the training rows' means, in the columns' own units
    train_rows = pd.read_csv(path("adult_sample") / "adult.csv", skipinitialspace=True, nrows=4800)
    assert list(t["means"]) == ["age", "fnlwgt", "education-num"]
    assert abs(t["means"]["age"] - train_rows["age"].mean()) < 1e-3 and t["means"]["fnlwgt"] > 1e5
    assert t["shown_age"] == pd.read_csv(path("adult_sample") / "adult.csv", nrows=3)["age"].astype(float).tolist()
    assert t["cat_names"][:6] == ["workclass", "education", "marital-status", "occupation", "relationship", "race"]
    # chapter 10: the ids of one text index the vocabulary back to its tokens
    assert k["text"].startswith("xxbos xxmaj") and len(k["text"].split()) == 20 and k["vocab"] > 1000
    # chapter 11: mnist_tiny's two folders and the label of the first file
    assert s["vocab"] == ["3", "7"] and (s["train"], s["valid"]) == (709, 699) and s["first"] == s["first_folder"]
    assert s["hot"] == ["7"] and k["first"] == "xxbos"  # chapter 6's vocab[torch.where(y == 1.)[0]]; first(toks)
    assert s["dsets_batch"] == (64, 1, 28, 28)  # chapter 11's dsets.dataloaders(bs=64)
    # chapter 4: the book's own DataLoader(list(zip(x, y)), batch_size=256) trains its linear model past chance
    z = out["scratch"]
    assert z["bs"] == 256 and z["items"] == 709 and z["accuracy"] > 0.9 and "ch4_accuracy=" in line, line
    # ... its collections batched as fastai's: bare tensors of every number once, letters as a tuple beside ids
    assert sorted(v for b in z["range_batches"] for v in b) == list(range(15)) and "ch4_range_batches=3x5" in line
    ids, letters = z["letters"]
    assert len(ids) == 6 and isinstance(letters, tuple) and [string.ascii_lowercase[i] for i in ids] == list(letters)
    # chapter 11's Transform(f) of f(x:int), and chapter 13's image2tensor of a 200x200 photo under a 3x3 kernel
    assert s["typed"] == (3, 2.0) and isinstance(s["typed"][1], float) and "ch11_typed=3,2.0" in line
    # a Transform subclass's encodes for a Path beside its parent's for a str: each value to its own
    assert s["subclass"] == (s["first_folder"], "SEVEN") and f"ch11_subclass={s['first_folder']},SEVEN" in line
    assert z["image"] == (3, 200, 200) and z["edges"] == (1, 1, 198, 198) and "ch13_image=3x200x200" in line
    # chapter 4's L(learn.recorder.values).itemgot(2) and (path/'train'/'3').ls().sorted(); chapter 2's
    # verify_images then failed.map(Path.unlink), which finds nothing to remove in mnist_tiny
    assert len(z["accuracies"]) == 5 and z["accuracies"][-1] == z["accuracy"]  # one per epoch of the quick run
    threes = sorted((path("mnist_tiny") / "train" / "3").iterdir())
    assert list(z["threes"]) == threes and "ch4_threes=346" in line and z["failed"] == 0 and "ch2_failed=0" in line
    # chapter 8's one_hot(3, n_users).float(): the product with it is the user's row of factors
    assert c["one_hot_lookup"] and "ch8_one_hot_lookup=same" in line
    # chapter 11's Siamese pairs through TfmdLists and tls.dataloaders(after_item=..., after_batch=...): two image
    # batches and whether each pair matches, both kinds among them; chapter 6's DataBlock().datasets(df) rows
    p = out["siamese"]
    assert p["batch"] == ((16, 3, 32, 32), (16, 3, 32, 32), (16,)) and 0 < p["same"] < 16
    assert "ch11_siamese_batch=16x3x32x32" in line and p["row"] and "ch6_row=itself" in line
    # chapter 2's RandomResizedCrop and aug_transforms(mult=2) with a RandTransform of the reader's: each epoch draws
    # other images, the same seed the same ones, and validation batches repeat
    a = out["augment"]
    assert a["batch"] == (16, 3, 64, 64) and a["valid"][1:] == (3, 64, 64)
    assert a["epochs_differ"] and a["seeded"] and a["valid_repeats"]
    assert "ch2_rrc_batch=16x3x64x64 ch2_epochs=differ ch2_seeded=same" in line
