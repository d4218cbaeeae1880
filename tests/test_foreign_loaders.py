"""DataLoaders of plain torch loaders (fastai's "Pure PyTorch to fastai"): trained, validated and predicted over as
they come; what needs pipekit's own loaders is refused, saying how to build them."""
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader as TorchDataLoader
from torch.utils.data import IterableDataset, TensorDataset

from pipekit.core.errors import ParameterError
from pipekit.data import DataLoaders
from pipekit.data.loader import ForeignLoader
from pipekit.learn import MLP, Adam, Learner, accuracy

pytestmark = pytest.mark.data


@pytest.fixture(scope="module")
def adult_tensors(adult_xy):
    x, y = (torch.from_numpy(a) for a in adult_xy)
    return (x[:400], y[:400]), (x[400:], y[400:])


def torch_loaders(adult_tensors, seed=0):
    (tx, ty), (vx, vy) = adult_tensors
    train = TorchDataLoader(TensorDataset(tx, ty), batch_size=64, shuffle=True,
                            generator=torch.Generator().manual_seed(seed))
    return train, TorchDataLoader(TensorDataset(vx, vy), batch_size=64)


def adult_learner(adult_tensors, seed=0, model=None):
    torch.manual_seed(0)
    model = model if model is not None else nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))
    dls = DataLoaders(*torch_loaders(adult_tensors, seed), device="cpu")
    return Learner(dls, model, loss_func=nn.CrossEntropyLoss(), opt_func=Adam, metrics=accuracy)


def test_torch_loaders_train_validate_as_fastais_tutorial(adult_tensors):
    (_, _), (vx, vy) = adult_tensors
    learn = adult_learner(adult_tensors)
    assert learn.dls.n_inp == 1 and learn.dls.bs == 64 and len(learn.dls.train) == 7
    assert isinstance(learn.dls.train, ForeignLoader) and repr(learn.dls).startswith(
        "DataLoaders(train=400 items/7 batches, valid=112 items/2 batches")
    learn.fit_one_cycle(5, 1e-2)
    values = learn.recorder.values
    assert values[-1][1] < values[0][1] - 0.1  # the validation loss falls (0.68 to 0.49, as fastai's on this data)
    # the loss and the metric are those of the whole validation set, as a hand computation gives them
    with torch.no_grad():
        out = learn.model(vx)
    valid_loss, acc = learn.validate()
    assert valid_loss == pytest.approx(float(F.cross_entropy(out, vy)), abs=1e-5)
    assert acc == pytest.approx(float((out.argmax(1) == vy).float().mean()), abs=1e-6)
    assert [valid_loss, acc] == pytest.approx(values[-1][1:], abs=1e-6)


def test_get_preds_follow_the_torch_loaders_items(adult_tensors):
    (tx, ty), (vx, vy) = adult_tensors
    learn = adult_learner(adult_tensors)
    learn.fit(1, 1e-2)
    _, valid = torch_loaders(adult_tensors)
    preds, targs = learn.get_preds()
    assert preds.shape == (112, 2) and targs.shape == (112,)  # fastai's get_preds(dl=valid_loader): the same
    torch.testing.assert_close(targs, torch.cat([b[1] for b in valid]))
    with torch.no_grad():
        torch.testing.assert_close(preds, learn.model(torch.cat([b[0] for b in valid])))
        # the shuffled training loader's items, every one and in its dataset's order
        preds, targs = learn.get_preds(ds_idx=0)
        torch.testing.assert_close(targs, ty)
        torch.testing.assert_close(preds, learn.model(tx))


def test_a_seeded_generator_gives_the_same_training(adult_tensors):
    train, _ = torch_loaders(adult_tensors)
    dls = DataLoaders(*torch_loaders(adult_tensors), device="cpu")
    # wrapping does not draw from the loader's generator: its first epoch is that of the torch loader itself
    torch.testing.assert_close(torch.cat([b[1] for b in dls.train]), torch.cat([b[1] for b in train]))
    runs = []
    for seed in (0, 0, 1):
        learn = adult_learner(adult_tensors, seed)
        learn.fit(1, 1e-2)
        # predicting over the training items in order draws nothing from the training loader's generator
        drawn = learn.dls.train.loader.generator.get_state()
        learn.get_preds(ds_idx=0)
        assert torch.equal(drawn, learn.dls.train.loader.generator.get_state())
        learn.fit(1, 1e-2)
        runs.append(learn.recorder.values)
    assert runs[0] == runs[1] and runs[0][0][0] != runs[2][0][0]


def test_mnist_pixels_reach_a_good_accuracy():
    from PIL import Image

    root = Path(os.environ["PIPEKIT_DATA"]) / "mnist_tiny"

    def pixels(split):
        files = [(f, c) for c, d in enumerate("37") for f in sorted((root / split / d).glob("*.png"))]
        x = np.stack([np.asarray(Image.open(f).convert("L"), np.float32) / 255 for f, _ in files])
        return TensorDataset(torch.from_numpy(x)[:, None], torch.tensor([c for _, c in files]))

    train = TorchDataLoader(pixels("train"), batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(0))
    dls = DataLoaders(train, TorchDataLoader(pixels("valid"), batch_size=128), device="cpu")
    torch.manual_seed(0)
    learn = Learner(dls, nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 32), nn.ReLU(), nn.Linear(32, 2)),
                    loss_func=nn.CrossEntropyLoss(), metrics=accuracy)
    suggested = learn.lr_find(num_it=20, show_plot=False)
    assert 1e-7 < suggested.valley < 10 and learn.recorder.values == [] and learn.dls.train.epoch == 0
    learn.fit_one_cycle(2, 1e-2)
    assert learn.recorder.values[-1][2] > 0.95
    preds, targs = learn.get_preds()
    assert preds.shape == (699, 2) and targs.shape == (699,) and targs.dtype == torch.int64


def test_n_inp_as_fastai_decides_it_or_as_given(adult_tensors):
    (tx, ty), _ = adult_tensors

    class TwoInputs(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(4, 2), nn.Linear(4, 2)

        def forward(self, x1, x2):
            return self.a(x1) + self.b(x2)

    def three_parts():
        return TorchDataLoader(TensorDataset(tx, tx.flip(1), ty), batch_size=100)

    dls = DataLoaders(three_parts(), three_parts(), device="cpu")
    assert dls.n_inp == 2
    learn = Learner(dls, TwoInputs(), loss_func=nn.CrossEntropyLoss())
    learn.fit(1, 1e-2)
    assert learn.get_preds()[0].shape == (400, 2)
    assert DataLoaders(three_parts(), three_parts(), n_inp=1).n_inp == 1
    with pytest.raises(ParameterError, match=r"loader 0 .*n_inp=3, and its batches have 2 part.*from 1 to 2"):
        DataLoaders(TorchDataLoader(TensorDataset(tx, ty)), TorchDataLoader(TensorDataset(tx, ty)), n_inp=3)


def test_any_reiterable_object_with_a_length_is_a_loader(adult_tensors):
    (tx, ty), (vx, vy) = adult_tensors

    class Batches:
        def __init__(self, x, y):
            self.x, self.y = x, y

        def __len__(self):
            return -(-len(self.x) // 50)

        def __iter__(self):
            return ([self.x[i:i + 50], self.y[i:i + 50]] for i in range(0, len(self.x), 50))

    dls = DataLoaders(Batches(tx, ty), Batches(vx, vy), device="cpu")
    assert (dls.bs, dls.n_inp, len(dls.valid)) == (50, 1, 3) and "train=? items/8 batches" in repr(dls)
    torch.manual_seed(0)
    learn = Learner(dls, nn.Linear(4, 2), loss_func=nn.CrossEntropyLoss(), metrics=accuracy)
    learn.fit(2, 1e-2)
    assert learn.recorder.values[-1][1] < learn.recorder.values[0][1]
    torch.testing.assert_close(learn.get_preds(ds_idx=0)[1], ty)


def test_loaders_that_cannot_serve_are_refused_naming_them_and_the_fix(adult_tensors):
    (tx, ty), _ = adult_tensors
    good = TorchDataLoader(TensorDataset(tx, ty), batch_size=64)

    class Stream(IterableDataset):
        def __iter__(self):
            return iter(zip(tx, ty))

    dicts = TorchDataLoader([{"x": x, "y": y} for x, y in zip(tx[:8], ty[:8])], batch_size=4)
    for bad, said in [((b for b in [(tx, ty)]), "loader 1 \\(builtins.generator\\) is an iterator"),
                      (5, "loader 1 \\(builtins.int\\) is not iterable"),
                      (TorchDataLoader(Stream(), batch_size=4), "loader 1 .*has no length"),
                      (dicts, r"loader 1 .*yields a dict with keys \['x', 'y'\] as a batch.*collate_fn returning"),
                      ([(tx, ty), "text"], "loader 1 .*yields a str as a batch")]:
        with pytest.raises(ParameterError, match=said + ".*DataLoaders.from_dsets"):
            dls = DataLoaders(good, bad)
            list(dls.valid)  # a bad batch after the first is refused as it comes


def test_what_needs_pipekits_own_loaders_says_how_to_build_them(adult_tensors, tmp_path):
    (tx, _), _ = adult_tensors
    learn = adult_learner(adult_tensors, model=MLP(4, 2, layers=(8,)))
    learn.path = tmp_path
    said = r"needs loaders pipekit built.*made from plain torch loaders.*DataLoaders.from_dsets\(.*from_stores\("
    for what, call in [("show_batch", learn.dls.show_batch), ("show_batch", learn.dls.valid.show_batch),
                       ("test_dl", lambda: learn.dls.test_dl(tx[:3])), ("test_dl", lambda: learn.predict(tx[0])),
                       ("export", lambda: learn.export("model.pipekit")),
                       ("summary", lambda: learn.dls.summary(show=False))]:
        with pytest.raises(ParameterError, match=what + ".*" + said):
            call()
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_a_torch_loader_given_as_dl_is_predicted_and_scored(adult_tensors, tmp_path):
    (_, _), (vx, vy) = adult_tensors
    learn = adult_learner(adult_tensors)  # the tutorial's own nn.Sequential, not a registered architecture
    learn.fit(1, 1e-2)
    _, valid = torch_loaders(adult_tensors)
    preds, targs = learn.get_preds(dl=valid)  # as fastai's get_preds(dl=valid_loader)
    torch.testing.assert_close(targs, vy)
    with torch.no_grad():
        torch.testing.assert_close(preds, learn.model(vx))
    assert learn.validate(dl=valid) == pytest.approx(learn.validate(), abs=1e-6)
    # export says what the loaders need before what the model needs
    learn.path = tmp_path
    with pytest.raises(ParameterError, match=r"export.*made from plain torch loaders"):
        learn.export("model.pipekit")


def test_checkpoints_of_a_learner_on_torch_loaders_save_and_load(adult_tensors, tmp_path):
    """learn.save, learn.load and SaveModelCallback (fastai saves and loads here too) failed on the loader's seed."""
    from pipekit.learn import SaveModelCallback

    learn = adult_learner(adult_tensors)
    learn.path = tmp_path
    learn.fit(2, 1e-2, cbs=[SaveModelCallback(fname="best")])
    best = learn.validate()
    saved = {k: v.clone() for k, v in learn.model.state_dict().items()}
    learn.save("manual")
    learn.fit(1, 1e-1)
    learn.load("manual")
    assert all(torch.equal(v, learn.model.state_dict()[k]) for k, v in saved.items())
    assert learn.validate() == pytest.approx(best)


def test_get_preds_reads_every_validation_item_and_any_loader_by_index():
    # fastai reads dls[ds_idx].new(shuffle=False, drop_last=False): a validation loader built with drop_last=True
    # still gives a prediction per item, and a third loader is read by its index
    from pipekit.learn import CrossEntropyLossFlat

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(400, 6, generator=g), torch.randint(0, 2, (400,), generator=g)
    dls = DataLoaders.from_dsets(list(zip(x[:300], y[:300])), list(zip(x[300:], y[300:])), bs=64, drop_last=True)
    learn = Learner(dls, nn.Linear(6, 2), loss_func=CrossEntropyLossFlat())
    preds, targs = learn.get_preds()
    assert len(preds) == 100 and torch.equal(targs, y[300:])
    assert len(learn.get_preds(ds_idx=0)[0]) == 300
    torch_dl = lambda a, b, **kw: TorchDataLoader(TensorDataset(x[a:b], y[a:b]), batch_size=64, **kw)  # noqa: E731
    three = DataLoaders(torch_dl(0, 200), torch_dl(200, 300, drop_last=True), torch_dl(300, 350))
    learn = Learner(three, nn.Linear(6, 2), loss_func=CrossEntropyLossFlat())
    assert torch.equal(learn.get_preds()[1], y[200:300])  # the torch loader remade in order, whole
    p2, t2 = learn.get_preds(ds_idx=2)
    assert torch.equal(t2, y[300:350]) and torch.equal(p2, learn.get_preds(dl=three[2])[0])
    with pytest.raises(ValueError, match=r"ds_idx.*0 \(train\), 1 \(valid\) to 2"):
        learn.get_preds(ds_idx=3)


def test_test_dl_keeps_the_targets_of_items_given_as_the_training_pairs():
    # the (x, y) pairs DataLoaders.from_dsets took, given to test_dl: scored as fastai scores them
    from pipekit.learn import CrossEntropyLossFlat

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(300, 6, generator=g), torch.randint(0, 2, (300,), generator=g)
    dls = DataLoaders.from_dsets(list(zip(x[:200], y[:200])), list(zip(x[200:], y[200:])), bs=64)
    learn = Learner(dls, nn.Linear(6, 2), loss_func=CrossEntropyLossFlat())
    pairs = dls.test_dl(list(zip(x[200:], y[200:])))
    assert learn.validate(dl=pairs) == learn.validate()
    assert torch.equal(learn.get_preds(dl=pairs)[1], y[200:])
    inputs = dls.test_dl(list(x[200:]))  # inputs only: no targets
    assert learn.get_preds(dl=inputs)[1] is None
