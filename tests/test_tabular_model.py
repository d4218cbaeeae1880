"""TabularModel, tabular DataLoaders and tabular_learner on a subset of adult_sample (short trainings)."""

import re
import warnings

import numpy as np
import polars as pl
import pytest
import torch

from pipekit.core.errors import DataError, ParameterError
from pipekit.core.protocols import Recipe
from pipekit.data.seed import set_seed
from pipekit.data.splitters import RandomSplitter
from pipekit.learn import accuracy
from pipekit.tabular import Tabular, TabularModel, TabularRecipe, emb_sz_rule, get_emb_sz, tabular_learner
from pipekit.datasets import path

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CAT = ["workclass", "education", "marital-status", "occupation", "relationship", "race"]
CONT = ["age", "fnlwgt", "education-num"]






@pytest.fixture(scope="module")
def adult() -> pl.DataFrame:
    return pl.read_csv(path("adult_sample") / "adult.csv").head(6000)


@pytest.fixture(scope="module")
def tab(adult) -> Tabular:
    return Tabular(adult, cat_names=CAT, cont_names=CONT, y_names="salary", splits=RandomSplitter(0.2, seed=42))


def test_emb_sz_rule():
    assert emb_sz_rule(10) == 6 and emb_sz_rule(3) == 3 and emb_sz_rule(2) == 2
    assert emb_sz_rule(10**7) == 600
    with pytest.raises(ParameterError, match="n_cat"):
        emb_sz_rule(0)
    szs = get_emb_sz(["a", "b"], {"a": list("xyz"), "b": list(range(10))}, {"b": 4})
    assert szs == [(3, 3), (10, 4)]
    with pytest.raises(ParameterError, match="'c'"):
        get_emb_sz(["a"], {"a": list("xy")}, {"c": 3})


def test_tabular_model_shapes_and_range():
    torch.manual_seed(0)
    m = TabularModel([(5, 3), (7, 4)], n_cont=2, out_sz=1, layers=[8, 4], ps=0.1, y_range=(1.0, 2.0))
    x_cat, x_cont = torch.tensor([[1, 2], [4, 6], [0, 0]]), torch.randn(3, 2) * 100
    out = m(x_cat, x_cont)
    assert out.shape == (3, 1) and bool(((out > 1.0) & (out < 2.0)).all())
    only_cats = TabularModel([(5, 3)], n_cont=0, out_sz=3, layers=[4])
    assert only_cats(torch.tensor([[1], [2]]), torch.zeros(2, 0)).shape == (2, 3)
    only_conts = TabularModel([], n_cont=2, out_sz=2, layers=[4])
    assert only_conts(torch.zeros(2, 0, dtype=torch.long), torch.randn(2, 2)).shape == (2, 2)
    with pytest.raises(ParameterError, match="ps has 1 values for 2 layers"):
        TabularModel([(5, 3)], n_cont=0, out_sz=1, layers=[4, 4], ps=[0.1])


def test_dataloaders_batches(tab):
    dls = tab.dataloaders(bs=128, seed=0)
    cats, conts, y = dls.one_batch()
    assert cats.shape == (128, 7) and conts.shape == (128, 3) and y.shape == (128,)
    assert cats.dtype == torch.int64 and conts.dtype == torch.float32 and y.dtype == torch.int64
    assert dls.c == 2 and dls.vocab == ["<50k", ">=50k"] and dls.loss_kind == "cross_entropy"
    assert len(dls.valid) == -(-len(tab.valid) // 128)
    # the valid loader walks the valid rows in order: its first batch equals the processed valid rows
    vc, vn, vy = next(iter(dls.valid))
    exp_c, exp_n, exp_y = tab.valid.to_torch()
    vc, vn, vy = vc.cpu(), vn.cpu(), vy.cpu()  # the loaders' device may be a GPU
    assert torch.equal(vc, exp_c[:128]) and torch.equal(vn, exp_n[:128]) and torch.equal(vy, exp_y[:128])
    # same seed -> same shuffled batches
    a = tab.dataloaders(bs=128, seed=3).one_batch()[0]
    b = tab.dataloaders(bs=128, seed=3).one_batch()[0]
    assert torch.equal(a, b)
    with pytest.raises(ParameterError, match="bs"):
        tab.dataloaders(bs=0)


def test_dataloaders_without_valid_rows_have_an_empty_validation_loader(adult):
    no_valid = Tabular(adult.head(200), cat_names=CAT, cont_names=CONT, y_names="salary")
    dls = no_valid.dataloaders(bs=32)
    assert (len(dls.train_ds), len(dls.valid_ds), len(dls.valid)) == (200, 0, 0)


def _fit(tab, seed):
    set_seed(seed)
    learn = tabular_learner(tab.dataloaders(bs=256, seed=seed), layers=[64, 32], metrics=accuracy)
    learn.fit_one_cycle(2, 1e-2)
    return learn


def test_tabular_learner_trains_and_is_deterministic(tab):
    learn = _fit(tab, 0)
    loss, acc = learn.validate()[:2]
    majority = float(np.bincount(tab.valid.y_array()).max() / len(tab.valid))
    assert acc > majority + 0.03, (acc, majority)
    loss2, acc2 = _fit(tab, 0).validate()[:2]
    assert loss2 == pytest.approx(loss, rel=1e-6) and acc2 == acc


def test_test_dl_and_predict_with_unseen_values(tab, adult):
    learn = _fit(tab, 1)
    rows = adult.tail(5).with_columns(pl.lit("Astronaut").alias("occupation"), pl.lit(None, dtype=pl.Int64).alias("age"))
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        dl = learn.dls.test_dl(rows.drop("salary"))
    assert any("never seen in training" in str(x.message) for x in w)
    preds = learn.get_preds(dl=dl)[0]
    assert preds.shape == (5, 2) and torch.isfinite(preds).all()
    assert torch.allclose(preds.sum(1), torch.ones(5), atol=1e-5)
    label, _, probs = learn.predict(adult.row(0, named=True))
    assert label in ("<50k", ">=50k") and probs.shape == (2,)


def test_labelled_test_dl_with_no_rows_and_recipe_record(tab, adult):
    set_seed(0)
    learn = tabular_learner(tab.dataloaders(bs=64, seed=0), layers=[8])
    dl = learn.dls.test_dl(adult.head(0), with_labels=True)
    preds, targs = learn.get_preds(dl=dl)
    assert preds.shape == (0, 2) and targs.shape == (0,) and targs.dtype == torch.int64
    _, targs3 = learn.get_preds(dl=learn.dls.test_dl(adult.head(3), with_labels=True))
    assert targs3.tolist() == [tab.y_vocab.index(v) for v in adult["salary"].head(3)]
    with pytest.raises(DataError, match="lacks the target column"):
        learn.dls.test_dl(adult.head(3).drop("salary"), with_labels=True)
    # an all-null target column is an unlabelled test set: inputs only
    unlabelled = adult.head(3).with_columns(pl.lit(None, dtype=pl.String).alias("salary"))
    assert len(learn.dls.test_dl(unlabelled).one_batch()) == 2
    # the recipe's one parameter is the fitted processor, stored as its record
    recipe = learn.dls.recipe
    rec = recipe.to_record()
    assert rec["class"] == "pipekit.tabular.TabularRecipe" and rec["state"] == {}
    assert rec["params"]["processor"]["state"]["y_vocab_"] == ["<50k", ">=50k"]
    again = TabularRecipe.from_record(rec)
    assert isinstance(again, Recipe) and not again.clone().is_fitted
    assert [type(b).__name__ for b in again.fitted_blocks] == ["TabularCatBlock", "TabularContBlock", "CategoryBlock"]
    assert again.fitted_blocks[0].decode(torch.tensor([1, 1, 1, 1, 1, 1, 1]))["workclass"] == tab.classes["workclass"][1]
    assert again.fitted_blocks[-1].loss_kind == "cross_entropy" and again.n_inp_ == 2


def test_regression_learner_with_y_range(adult):
    tab = Tabular(adult, cat_names=CAT, cont_names=["fnlwgt", "education-num"], y_names="age",
                  splits=RandomSplitter(0.2, seed=0))
    dls = tab.dataloaders(bs=256, seed=0)
    assert dls.loss_kind == "mse" and dls.c == 1
    set_seed(0)
    learn = tabular_learner(dls, layers=[32], y_range=(15.0, 95.0))
    learn.fit_one_cycle(2, 1e-2)
    preds, targs = learn.get_preds()[:2]
    assert preds.shape == (len(tab.valid), 1) and float(preds.min()) > 15.0 and float(preds.max()) < 95.0
    assert targs.shape == preds.shape  # (n, 1) both, so the book's r_mse(preds, targs) does not broadcast
    baseline = float(((targs - targs.mean()) ** 2).mean())
    assert float(((preds - targs) ** 2).mean()) < baseline


def test_tabular_learner_rejects_other_dls():
    with pytest.raises(ParameterError, match="Tabular.dataloaders"):
        tabular_learner(object())


def test_export_and_load_roundtrip(tab, adult, tmp_path):
    from pipekit.learn.export import load_learner

    learn = _fit(tab, 2)
    fname = learn.export(tmp_path / "adult.pipekit")
    loaded = load_learner(fname)
    rows = adult.tail(50).drop("salary")
    p1 = learn.get_preds(dl=learn.dls.test_dl(rows))[0]
    p2 = loaded.get_preds(dl=loaded.dls.test_dl(rows))[0]
    assert torch.allclose(p1, p2, atol=1e-6)


SZS = [(10, 6), (17, 8), (8, 5), (3, 3)]


def _codes(n: int, gen: torch.Generator) -> torch.Tensor:
    return torch.stack([torch.randint(0, ni, (n,), generator=gen) for ni, _ in SZS], 1)


def test_shared_embedding_table_matches_one_embedding_per_column():
    torch.manual_seed(0)
    m = TabularModel(SZS, n_cont=2, out_sz=2, layers=[8])
    torch.manual_seed(0)
    # the same initial draws, column by column: pipekit.learn.nets.Embedding's (fastai's) truncated normal
    draws = [torch.nn.init.trunc_normal_(torch.empty(ni, nf), std=0.01, a=-0.02, b=0.02) for ni, nf in SZS]
    ref = [torch.nn.Embedding(ni, nf, _weight=w) for (ni, nf), w in zip(SZS, draws)]
    assert len(m.embeds) == 4 and m.embeds.weight.shape == (sum(ni * nf for ni, nf in SZS),)
    for e, r in zip(m.embeds, ref):
        assert (e.num_embeddings, e.embedding_dim) == (r.num_embeddings, r.embedding_dim)
        assert torch.equal(e.weight, r.weight)
    x = _codes(32, torch.Generator().manual_seed(1))
    out = m.embeds(x)
    exp = torch.cat([r(x[:, i]) for i, r in enumerate(ref)], 1)
    assert torch.equal(out, exp) and torch.equal(m.embeds[-1](x[:, 3]), ref[3](x[:, 3]))
    (out * torch.arange(out.shape[1])).sum().backward()
    (exp * torch.arange(exp.shape[1])).sum().backward()
    for i, r in enumerate(ref):  # each column's gradient lands in its own slice of the shared table
        assert torch.equal(m.embeds.weight.grad[m.embeds._starts[i]:m.embeds._starts[i + 1]].view_as(r.weight),
                           r.weight.grad)
    # int32 codes work; a code outside its column's table is refused, naming the column
    assert torch.equal(m.embeds(x.int()), out)
    bad = x.clone()
    bad[5, 2] = 8
    with pytest.raises(IndexError, match="categorical input 2 has codes in \\[0, 8\\].*8 rows"):
        m(bad, torch.zeros(32, 2))
    bad[5, 2] = -1
    with pytest.raises(IndexError, match="categorical input 2"):
        m(bad, torch.zeros(32, 2))
    with pytest.raises(IndexError, match="4 categorical columns"):
        m.embeds[4]


def test_direct_layer_calls_equal_module_calls():
    """The forward that calls the torch ops directly trains exactly like calling every module."""
    torch.manual_seed(0)
    fast = TabularModel(SZS, n_cont=2, out_sz=2, layers=[16, 8], ps=[0.2, 0.1], embed_p=0.1, bn_final=True)
    slow = TabularModel(SZS, n_cont=2, out_sz=2, layers=[16, 8], ps=[0.2, 0.1], embed_p=0.1, bn_final=True)
    slow.load_state_dict(fast.state_dict())
    seen: list[str] = []
    for name, mod in slow.named_modules():  # a hook on every layer forces the module calls
        if name:
            mod.register_forward_hook(lambda mod, i, o, name=name: seen.append(name))
    opts = [torch.optim.SGD(m.parameters(), lr=0.1) for m in (fast, slow)]
    gen = torch.Generator().manual_seed(2)
    for step in range(6):
        x, xc, y = _codes(16, gen), torch.randn(16, 2, generator=gen), torch.randint(0, 2, (16,), generator=gen)
        outs = []
        for m, opt in zip((fast, slow), opts):
            m.train(step != 5)
            torch.manual_seed(step)  # same dropout masks
            out = m(x, xc)
            if m.training:
                torch.nn.functional.cross_entropy(out, y).backward()
                opt.step()
                opt.zero_grad()
            outs.append(out.detach())
        assert torch.equal(outs[0], outs[1]), step
    assert "layers.2" in seen and "bn_cont" in seen and "emb_drop" in seen
    sf, ss = fast.state_dict(), slow.state_dict()
    assert sf.keys() == ss.keys() and all(torch.equal(sf[k], ss[k]) for k in sf)
    assert int(sf["layers.2.num_batches_tracked"]) == 5
    # a global module hook sees every layer too
    kinds: list[str] = []
    h = torch.nn.modules.module.register_module_forward_hook(lambda mod, i, o: kinds.append(type(mod).__name__))
    try:
        fast.eval()(x, xc)
    finally:
        h.remove()
    assert kinds.count("Linear") == 3 and kinds.count("BatchNorm1d") == 4 and "TabularEmbeddings" in kinds


def test_state_dict_with_one_embedding_per_column_still_loads():
    torch.manual_seed(0)
    m = TabularModel(SZS, n_cont=2, out_sz=2, layers=[8]).eval()
    sd = {k: v for k, v in m.state_dict().items() if k != "embeds.weight"}
    for i, e in enumerate(m.embeds):  # the layout of models saved before the shared table
        sd[f"embeds.{i}.weight"] = e.weight.detach().clone()
    other = TabularModel(SZS, n_cont=2, out_sz=2, layers=[8]).eval()
    other.load_state_dict(sd)
    x, xc = _codes(8, torch.Generator().manual_seed(3)), torch.randn(8, 2)
    assert torch.equal(other(x, xc), m(x, xc))


# ---------------------------------------------------------------------------------------- a user's body
class ResidualBody(torch.nn.Module):
    """A user's own tabular body: two residual blocks over the embedded inputs."""

    def __init__(self, n_in: int, width: int = 64):
        super().__init__()
        self.inp = torch.nn.Linear(n_in, width)
        self.blocks = torch.nn.ModuleList(torch.nn.Sequential(torch.nn.ReLU(), torch.nn.BatchNorm1d(width),
                                                              torch.nn.Linear(width, width)) for _ in range(2))

    def forward(self, x):
        x = self.inp(x)
        for b in self.blocks:
            x = x + b(x)
        return torch.relu(x)


def test_a_users_module_as_the_tabular_body_trains_and_exports_once_registered(tab, adult, tmp_path):
    from pipekit.core.errors import ExportError
    from pipekit.learn import register_arch
    from pipekit.learn.export import load_learner

    set_seed(0)
    dls = tab.dataloaders(bs=128, seed=0)
    learn = tabular_learner(dls, body=ResidualBody, metrics=accuracy)  # a factory, called with n_in
    n_in = learn.model.n_emb + len(CONT)
    assert isinstance(learn.model.layers[0], ResidualBody) and learn.model.layers[0].inp.in_features == n_in
    assert learn.model.layers[1].in_features == 64 and learn.model.layers[1].out_features == 2
    learn.fit_one_cycle(2, 1e-2)
    majority = float(np.bincount(tab.valid.y_array()).max() / len(tab.valid))
    assert learn.validate()[1] > majority + 0.03
    with pytest.raises(ExportError, match="ResidualBody"):  # not registered: the file could not rebuild it
        learn.export(tmp_path / "unregistered.pipekit")
    register_arch("test_tabular.ResidualBody", ResidualBody)
    learn2 = tabular_learner(dls, body=ResidualBody(n_in, width=32), metrics=accuracy)
    learn2.fit(1, 1e-2)
    loaded = load_learner(learn2.export(tmp_path / "body.pipekit"), device=learn2.dls.device)
    assert isinstance(loaded.model.layers[0], ResidualBody) and loaded.model.layers[0].inp.out_features == 32
    rows = adult.tail(40).drop("salary")
    assert torch.equal(learn2.get_preds(dl=learn2.dls.test_dl(rows))[0], loaded.get_preds(dl=loaded.dls.test_dl(rows))[0])


def test_a_body_that_does_not_fit_the_inputs_is_named_when_the_learner_is_built(tab):
    dls = tab.dataloaders(bs=128, seed=0)
    with pytest.raises(ParameterError, match=r"cannot take the embedded inputs, a \(batch, \d+\)"):
        tabular_learner(dls, body=torch.nn.Linear(7, 16))
    with pytest.raises(ParameterError, match="must return a \\(batch, features\\) tensor"):
        tabular_learner(dls, body=lambda n_in: torch.nn.Sequential(torch.nn.Linear(n_in, 8), torch.nn.Unflatten(1, (2, 4))))
    with pytest.raises(ParameterError, match="nn.Module or a function"):
        tabular_learner(dls, body=3)


def test_show_batch_and_show_results_are_tables_of_decoded_rows(tab, adult, tmp_path, monkeypatch, capsys):
    from matplotlib.figure import Figure

    figs: list = []
    save = Figure.savefig
    monkeypatch.setattr(Figure, "savefig", lambda fig, *a, **k: (figs.append(fig), save(fig, *a, **k))[1])
    dls = tab.dataloaders(bs=64, seed=0)
    png = dls.valid.show_batch(max_n=5, path=tmp_path / "batch.png")
    printed = capsys.readouterr().out
    assert png.exists() and "workclass" in printed and "age" in printed and "{" not in printed
    cells = figs[0].axes[0].tables[0].get_celld()
    header = [cells[0, j].get_text().get_text() for j in range(1 + max(j for _, j in cells))]
    assert header[:len(CAT)] == CAT and header[-len(CONT) - 1:] == [*CONT, "salary"]  # the missing flag between
    raw = adult.with_columns(pl.col(c).cast(pl.Float64) for c in CONT)
    for r in range(1, 6):  # every row is a row of the data: categories and numbers in the data's own units
        row = {h: cells[r, j].get_text().get_text() for j, h in enumerate(header)}
        match = raw.filter(*(pl.col(c) == row[c] for c in CAT if row[c] != "#na#"),
                           *((pl.col(c) - float(row[c])).abs() < 1e-3 if row.get(f"{c}_na") != "true"
                             else pl.col(c).is_null() for c in CONT))  # a missing number shows its filled value
        assert len(match) >= 1 and row["salary"] in match["salary"].to_list(), row
    learn = tabular_learner(dls, layers=[20], metrics=accuracy)
    learn.show_results(max_n=5, path=tmp_path / "results.png")
    cells = figs[1].axes[0].tables[0].get_celld()
    last = max(j for _, j in cells)
    assert [cells[0, j].get_text().get_text() for j in (last - 1, last)] == ["salary", "salary_pred"]
    assert {cells[r, last].get_text().get_text() for r in range(1, 6)} <= {"<50k", ">=50k"}


def test_y_range_that_cannot_hold_the_targets_warns(adult):
    """Regression on age with the book's log-price y_range=(8, 12): every target lies outside, predictions can
    never reach them; the warning names their range. A range that holds them is quiet."""
    tab = Tabular(adult, cat_names=CAT, cont_names=["fnlwgt", "education-num"], y_names="age",
                  y_block="regression", splits=RandomSplitter(0.2, seed=42))
    dls = tab.dataloaders(bs=64, seed=0)
    lo, hi = float(tab.train.y.min()), float(tab.train.y.max())
    with pytest.warns(UserWarning, match=rf"tabular_learner: y_range=\(8, 12\), but {len(tab.train)} of "
                                         rf"{len(tab.train)} training targets lie outside it \(they run from "
                                         rf"{lo:g} to {hi:g}\)"):
        tabular_learner(dls, y_range=(8, 12))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tabular_learner(dls, y_range=(0, 100))
        tabular_learner(dls)
        tabular_learner(Tabular(adult, cat_names=CAT, cont_names=CONT, y_names="salary",
                                splits=RandomSplitter(0.2, seed=42)).dataloaders(bs=64), y_range=(0, 1))


def test_y_range_from_the_log_targets_own_min_and_max_is_quiet():
    """Rossmann log(Sales) with the usual y_range=(y.min(), y.max()*1.2): the targets are float32 in the model, and
    float32 rounding puts the smallest a hair below the float64 y.min(); that is not a target outside the range.
    A range that does cut targets off suggests bounds that hold them all."""
    ross = pl.read_csv(path("rossmann_sample") / "train.csv", schema_overrides={"StateHoliday": pl.Utf8},
                       n_rows=20000).filter(pl.col("Sales") > 0).with_columns(pl.col("Sales").log())
    tab = Tabular(ross, cat_names=["Store", "DayOfWeek"], cont_names=["Promo"], y_names="Sales",
                  splits=RandomSplitter(0.2, seed=0))
    dls = tab.dataloaders(bs=256, seed=0)
    y = ross["Sales"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tabular_learner(dls, layers=[8], y_range=(float(y.min()), float(y.max()) * 1.2))
        tabular_learner(dls, layers=[8], y_range=(float(tab.train.y.min()), float(tab.train.y.max())))
    with pytest.warns(UserWarning, match=r"lie outside it") as rec:
        tabular_learner(dls, layers=[8], y_range=(8.0, 9.0))
    lo, hi = (float(v) for v in re.search(r"pass y_range=\(([-\d.e]+), ([-\d.e]+)\)", str(rec[0].message)).groups())
    ys = tab.train.y.cast(pl.Float32)
    assert lo <= float(tab.train.y.min()) and hi >= float(tab.train.y.max())
    assert ((ys >= np.float32(lo)) & (ys <= np.float32(hi))).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tabular_learner(dls, layers=[8], y_range=(lo, hi))


def test_category_missing_only_in_new_rows_is_named_with_its_count(tab, adult, tmp_path):
    """adult's workclass has no missing values in the training rows: a NaN or None there at predict is read as
    '#na#', a code the model never learned from, and shifts its probabilities; the warning names the column and
    count. occupation has missing values in training, so its missing values are no news; a file whose processing
    does not say which columns had missing values (written before it was kept) stays quiet."""
    from pipekit.learn.export import load_learner

    assert adult["workclass"].null_count() == 0 and "workclass" in tab.processor.cat_complete_
    assert "occupation" not in tab.processor.cat_complete_
    learn = _fit(tab, 3)
    rows = adult.tail(40).drop("salary")
    p0 = learn.get_preds(dl=learn.dls.test_dl(rows))[0]
    pdf = rows.to_pandas()
    pdf.loc[pdf.index[:7], "workclass"] = np.nan
    pdf.loc[pdf.index[7:10], "workclass"] = None
    with pytest.warns(UserWarning, match=r"Categorify: categorical column\(s\) with no missing values in training "
                                         r"have missing values here \(count per column: \{'workclass': 10\}\); the "
                                         r"model sees them as '#na#'"):
        dl = learn.dls.test_dl(pdf)
    assert (learn.get_preds(dl=dl)[0] - p0).abs().max() > 0  # the rows' predictions did change
    with pytest.warns(UserWarning, match=r"\{'workclass': 40\}"):
        tab.new(rows.with_columns(pl.lit(None, dtype=pl.String).alias("workclass")))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        learn.dls.test_dl(rows)
        tab.new(rows.with_columns(pl.lit(None, dtype=pl.String).alias("occupation")))
    loaded = load_learner(learn.export(tmp_path / "adult.pipekit"))
    with pytest.warns(UserWarning, match=r"\{'workclass': 10\}"):
        loaded.dls.test_dl(pdf)
    proc = loaded.dls.recipe.processor
    rec = proc.to_record()
    del rec["state"]["cat_complete_"]  # as a file written before the training rows' missing values were kept
    proc = type(proc).from_record(rec)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        proc.transform(pl.from_pandas(pdf))


def test_category_missing_only_in_the_validation_rows_is_said_as_the_split_is_made(adult):
    """A split whose validation rows alone hold missing values of a categorical column (a later export of the data
    with a field left blank) is said as the Tabular is made, with the count; a random split of adult is quiet."""
    n = len(adult)
    blank = adult.with_columns(pl.when(pl.int_range(n) >= n - 500).then(None).otherwise(pl.col("workclass"))
                               .alias("workclass"))
    with pytest.warns(UserWarning, match=r"Categorify: categorical column\(s\) with no missing values in training "
                                         r"have missing values in the validation rows \(count per column: "
                                         r"\{'workclass': 500\}\)"):
        Tabular(blank, cat_names=CAT, cont_names=CONT, y_names="salary",
                splits=(np.arange(n - 1000), np.arange(n - 1000, n)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Tabular(adult, cat_names=CAT, cont_names=CONT, y_names="salary", splits=RandomSplitter(0.2, seed=42))


def test_exp_rmspe_scores_a_log_sales_net_in_sales_on_rossmann():
    # fastai's Rossmann tutorial: a net on log(Sales) scored with exp_rmspe, the competition's RMSPE in sales
    from pipekit import set_seed
    from pipekit.learn import exp_rmspe, rmspe

    ross = pl.read_csv(path("rossmann_sample") / "train.csv", schema_overrides={"StateHoliday": pl.Utf8},
                       n_rows=20000).filter(pl.col("Sales") > 0).with_columns(pl.col("Sales").log())
    tab = Tabular(ross, cat_names=["Store", "DayOfWeek"], cont_names=["Promo"], y_names="Sales",
                  splits=RandomSplitter(0.2, seed=0))
    y = ross["Sales"]
    set_seed(0)
    learn = tabular_learner(tab.dataloaders(bs=256, seed=0), layers=[16], metrics=[exp_rmspe, rmspe],
                            y_range=(float(y.min()), float(y.max()) * 1.2))
    learn.fit_one_cycle(2, 1e-2)
    preds, targs = learn.get_preds()
    sales, pred_sales = np.exp(targs.double().numpy().ravel()), np.exp(preds.double().numpy().ravel())
    expected = float(np.sqrt(np.mean(((sales - pred_sales) / sales) ** 2)))
    loss, got, on_logs = learn.validate()
    assert got == pytest.approx(expected, rel=1e-5) and 0.05 < got < 0.6
    assert on_logs == pytest.approx(float(np.sqrt(np.mean(((targs - preds).double().numpy().ravel()
                                                            / targs.double().numpy().ravel()) ** 2))), rel=1e-5)


def test_torch_export_keeps_the_code_range_check_and_eager_still_names_the_column(adult):
    """torch.export (and torch.compile's full graph) take the tabular net: its code-range check is an assertion
    in the exported graph, which refuses an out-of-range code when the program runs; eager mode names the column."""
    tab = Tabular(adult.head(400), cat_names=CAT, cont_names=CONT, y_names="salary",
                  splits=RandomSplitter(0.2, seed=42))
    learn = tabular_learner(tab.dataloaders(bs=64, seed=42), layers=[20, 10])
    model = learn.model.eval()
    x_cat, x_cont, _ = learn.dls.valid.one_batch()
    program = torch.export.export(model, (x_cat, x_cont))
    with torch.no_grad():
        assert torch.equal(program.module()(x_cat, x_cont), model(x_cat, x_cont))
    assert any("_assert_async" in str(n.target) for n in program.graph.nodes)
    bad = x_cat.clone()
    bad[0, 1] = len(tab.processor.classes_[CAT[1]]) + 5
    with pytest.raises(RuntimeError, match="outside its column's embedding table"):
        program.module()(bad, x_cont)
    with pytest.raises(IndexError, match=r"categorical input 1 has codes in .* but its embedding has \d+ rows "
                                         r"\(codes 0\.\.\d+\); encode new data with the fitted procs\."):
        model(bad, x_cont)
