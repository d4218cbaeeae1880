"""Data of several targets that are not all single categories (``blocks=(ImageBlock, CategoryBlock,
MultiCategoryBlock)``, a category and a number, a number and a category): a size per target, ``predict`` reading each
target from its own outputs as its block reads a prediction, ``show_results`` writing each target's prediction, and an
export that loads and predicts as before."""
from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F

import pipekit
import pipekit.data.show as show
import pipekit.datasets as D
from pipekit.core.errors import ParameterError
from pipekit.data import (CategoryBlock, DataBlock, GrandparentSplitter, MultiCategoryBlock, RegressionBlock,
                          get_image_files, parent_label)
from pipekit.learn import load_learner
from pipekit.vision import ImageBlock, Resize, vision_learner

pytestmark = pytest.mark.data


def size(f):
    """A second label of each digit, from its file: 'big' over 300 bytes, else 'small'."""
    return "big" if f.stat().st_size > 300 else "small"


def tags(f):
    """The digit and its size, as a list of labels (a multi-label target of 4 labels)."""
    return [parent_label(f), size(f)]


def n_bytes(f):
    return float(f.stat().st_size) / 300


def every_fourth(path):
    return get_image_files(path)[::4]


def blocks_dls(targets, get_y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the test/ folder is in neither subset
        return DataBlock(blocks=(ImageBlock(cls="L"), *targets), n_inp=1, get_items=every_fourth, get_y=get_y,
                         splitter=GrandparentSplitter(), item_tfms=Resize(28)).dataloaders(D.path("mnist_tiny"),
                                                                                          bs=8, seed=0)


# losses as the course's multi-target notebook writes them: each target's outputs, side by side in target order
def cat_multicat_loss(inp, digit, labels):
    return F.cross_entropy(inp[:, :2], digit) + F.binary_cross_entropy_with_logits(inp[:, 2:], labels.float())


def cat_reg_loss(inp, digit, nb):
    return F.cross_entropy(inp[:, :2], digit) + F.mse_loss(inp[:, 2], nb.float().view(-1))


def reg_cat_loss(inp, nb, digit):
    return F.mse_loss(inp[:, 0], nb.float().view(-1)) + F.cross_entropy(inp[:, 1:], digit)


LAYOUTS = {
    "cat+multicat": ((CategoryBlock, MultiCategoryBlock), [parent_label, tags], cat_multicat_loss),
    "cat+reg": ((CategoryBlock, RegressionBlock), [parent_label, n_bytes], cat_reg_loss),
    "reg+cat": ((RegressionBlock, CategoryBlock), [n_bytes, parent_label], reg_cat_loss),
}


@pytest.fixture(scope="module")
def learners():
    """A learner per layout, untrained: a seeded model is enough to check how its outputs are read."""
    out = {}
    for name, (targets, get_y, loss) in LAYOUTS.items():
        dls = blocks_dls(targets, get_y)
        pipekit.set_seed(0)
        out[name] = vision_learner(dls, "simple_cnn", pretrained=False, n_out=sum(dls.c), loss_func=loss)
    return out


def test_size_is_one_per_target_and_vocab_as_fastai_gives_it(learners):
    # fastai 2.8.12 on these layouts: c [2, 4], [2, 1], [1, 2]; a vocab per target only where two have one
    dls = learners["cat+multicat"].dls
    assert dls.c == [2, 4] and dls.vocab == [["3", "7"], ["3", "7", "big", "small"]]
    assert learners["cat+reg"].dls.c == [2, 1] and learners["cat+reg"].dls.vocab == ["3", "7"]
    assert learners["reg+cat"].dls.c == [1, 2] and learners["reg+cat"].dls.vocab == ["3", "7"]
    two_numbers = blocks_dls((RegressionBlock, RegressionBlock), [n_bytes, n_bytes])
    assert two_numbers.c == [1, 1] and two_numbers.vocab is None


def _items_and_outputs(learn, k=12):
    items = list(learn.dls.valid_ds.items)[:k]
    return items, learn.get_preds(dl=learn.dls.test_dl(items))[0]


def test_predict_reads_a_multi_label_target_as_its_labels_over_the_threshold(learners):
    learn = learners["cat+multicat"]
    items, outputs = _items_and_outputs(learn)
    digits, labels = learn.dls.vocab
    sizes_of_sets = set()
    for item, out in zip(items, outputs):
        decoded, dec, probs = learn.predict(item)
        torch.testing.assert_close(probs, out)
        digit = digits[int(out[:2].argmax())]
        chosen = [labels[j] for j in range(4) if float(torch.sigmoid(out[2 + j])) > 0.5]
        assert decoded == (digit, chosen)
        assert int(dec[0]) == int(out[:2].argmax())
        assert dec[1].tolist() == (torch.sigmoid(out[2:]) > 0.5).tolist()
        sizes_of_sets.add(len(chosen))
    assert sizes_of_sets != {1}  # the model's labels are sets, not one class each


@pytest.mark.parametrize("name", ["cat+reg", "reg+cat"])
def test_predict_gives_the_number_of_a_regression_target(learners, name):
    learn = learners[name]
    items, outputs = _items_and_outputs(learn, 6)
    digits = learn.dls.vocab
    cat, reg = (slice(0, 2), slice(2, 3)) if name == "cat+reg" else (slice(1, 3), slice(0, 1))
    for item, out in zip(items, outputs):
        decoded, dec, probs = learn.predict(item)
        torch.testing.assert_close(probs, out)
        number, digit = (decoded[1], decoded[0]) if name == "cat+reg" else decoded
        assert digit == digits[int(out[cat].argmax())]
        assert isinstance(number, float) and number == pytest.approx(float(out[reg]))
        dec_number = dec[1] if name == "cat+reg" else dec[0]
        torch.testing.assert_close(dec_number, out[reg])


def _titles(learn, monkeypatch, **kwargs):
    import matplotlib.pyplot as plt

    figs = []

    def record(fig, *a, **k):
        figs.append([ax.get_title() for ax in fig.axes])
        plt.close(fig)

    monkeypatch.setattr(show, "savefig_or_show", record)
    learn.show_results(**kwargs)
    assert len(figs) == 1
    return figs[0]


def test_show_results_writes_each_targets_prediction(learners, monkeypatch):
    learn = learners["cat+multicat"]
    batch = learn.dls.valid.one_batch()
    outputs = learn.get_preds(dl=[batch])[0][:3]
    rows = learn.dls.valid.decode_batch(batch, max_n=3)
    digits, labels = learn.dls.vocab
    titles = _titles(learn, monkeypatch, max_n=3)
    assert len(titles) == 3
    for title, row, out in zip(titles, rows, outputs):
        predicted = [labels[j] for j in range(4) if float(torch.sigmoid(out[2 + j])) > 0.5]
        want = [f"{row[1]} / {digits[int(out[:2].argmax())]}",
                f"{';'.join(row[2])} / {';'.join(predicted) or '(none)'}"]
        assert title.split("\n") == want
    # new items without labels: each target's prediction alone
    items = list(learn.dls.valid_ds.items)[:2]
    outputs = learn.get_preds(dl=learn.dls.test_dl(items))[0]
    titles = _titles(learn, monkeypatch, dl=learn.dls.test_dl(items), max_n=2)
    assert [t.split("\n")[0] for t in titles] == [digits[int(out[:2].argmax())] for out in outputs]
    learn = learners["cat+reg"]
    titles = _titles(learn, monkeypatch, max_n=2)
    first = learn.get_preds(dl=[learn.dls.valid.one_batch()])[0][0]
    assert titles[0].split("\n")[1].endswith(f" / {show.label_text(float(first[2]))}")


def test_show_results_says_when_the_outputs_are_no_targets_side_by_side(learners):
    learn = learners["cat+reg"]
    pipekit.set_seed(0)
    wrong = vision_learner(learn.dls, "simple_cnn", pretrained=False, n_out=5, loss_func=cat_reg_loss)
    with pytest.raises(ParameterError, match=r"show_results cannot show .* 2 targets \(CategoryBlock, "
                                             r"RegressionBlock\) of sizes \[2, 1\].*shape \(\d+, 5\).*n_out=sum"):
        wrong.show_results(max_n=2)


def test_export_loads_and_predicts_each_target_as_before(learners, tmp_path):
    learn = learners["cat+multicat"]
    items = list(learn.dls.valid_ds.items)[:4]
    loaded = load_learner(learn.export(tmp_path / "multi.pipekit"))
    assert loaded.dls.c == [2, 4] and loaded.dls.vocab == learn.dls.vocab
    for item in items:
        decoded, dec, probs = learn.predict(item)
        decoded2, dec2, probs2 = loaded.predict(item)
        assert decoded2 == decoded and isinstance(decoded[1], list)
        torch.testing.assert_close(dec2, dec)
        torch.testing.assert_close(probs2, probs)
