"""Losses and layers as fastai's users write them: BCEWithLogitsLossFlat's ``pos_weight`` on a single-output binary
model and as one number, the regression losses under mixed precision (targets not rounded to half precision),
fastai's ``DiceLoss``, ``FocalLoss``, ``LinBnDrop``, ``ConvLayer``'s convolution arguments and instance norm,
``SigmoidRange`` per target, and batch norms that start as fastai's (shift 1e-3).

The expected numbers of DiceLoss, FocalLoss and the layers are fastai 2.8.12's on the same inputs."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import pipekit
import pipekit.datasets as D
import pipekit.learn as L
from pipekit.core.errors import ParameterError
from pipekit.data import DataBlock, RandomSplitter, get_image_files


# -- BCEWithLogitsLossFlat's pos_weight ---------------------------------------------------------------------------

def test_bce_pos_weight_reads_a_single_output_models_labels():
    inp, targ = torch.tensor([[2.0], [-1.0], [0.5], [0.0]]), torch.tensor([1, 0, 1, 0])   # (bs, 1) and (bs,)
    want = F.binary_cross_entropy_with_logits(inp[:, 0], targ.float(), pos_weight=torch.tensor([3.0]))
    got = L.BCEWithLogitsLossFlat(pos_weight=[3.0])(inp, targ)
    assert round(float(got), 4) == 0.7024
    torch.testing.assert_close(got, want)
    each = L.BCEWithLogitsLossFlat(pos_weight=[3.0], reduction="none")(inp, targ)
    assert each.shape == (4,)   # one loss per item, as without pos_weight
    torch.testing.assert_close(each.mean(), want)


@pytest.mark.parametrize("pw", [3.0, 3, torch.tensor(3.0), np.float64(3.0), [3.0]])
def test_bce_pos_weight_may_be_one_number_for_every_class(pw):
    inp, targ = torch.tensor([[2.0, -1.0], [0.5, 0.0]]), torch.tensor([[1, 0], [1, 1]])
    loss = L.BCEWithLogitsLossFlat(pos_weight=pw)
    want = nn.BCEWithLogitsLoss(pos_weight=torch.tensor(3.0))(inp, targ.float())
    torch.testing.assert_close(loss(inp, targ), want)
    assert loss.get_params()["pos_weight"] == [3.0]
    back = pipekit.core.component.Component.from_record(loss.to_record())   # as an export records it
    torch.testing.assert_close(back(inp, targ), want)


def test_bce_pos_weight_per_class_keeps_its_meaning_on_the_class_axis():
    torch.manual_seed(0)
    pw = [1.0, 2.0, 5.0]
    inp, targ = torch.randn(4, 3), torch.randint(0, 2, (4, 3))
    torch.testing.assert_close(L.BCEWithLogitsLossFlat(pos_weight=pw)(inp, targ),
                               nn.BCEWithLogitsLoss(pos_weight=torch.tensor(pw))(inp, targ.float()))
    img, mask = torch.randn(2, 3, 4, 5), torch.randint(0, 2, (2, 3, 4, 5))   # classes on axis 1
    torch.testing.assert_close(L.BCEWithLogitsLossFlat(axis=1, pos_weight=pw)(img, mask),
                               nn.BCEWithLogitsLoss(pos_weight=torch.tensor(pw))(img.movedim(1, -1),
                                                                                  mask.movedim(1, -1).float()))
    with pytest.raises(ParameterError, match=r"pos_weight holds 2 weights, and the model gives 3 outputs"):
        L.BCEWithLogitsLossFlat(pos_weight=[1.0, 2.0])(inp, targ)


def test_single_output_binary_model_with_pos_weight_trains_on_mnist_tiny():
    from pipekit.vision import ImageDataLoaders

    pipekit.set_seed(0)
    dls = ImageDataLoaders.from_folder(D.path("mnist_tiny"), train="train", valid="valid", bs=64, device="cpu")
    learn = L.Learner(dls, L.simple_cnn(n_in=3, n_out=1, channels=(8, 16)),
                      loss_func=L.BCEWithLogitsLossFlat(pos_weight=[3.0]))
    learn.fit(1, 1e-2)
    train_loss, valid_loss = learn.recorder.values[-1][:2]
    assert np.isfinite(train_loss) and np.isfinite(valid_loss)
    xb, yb = dls.valid.one_batch()
    learn.model.eval()
    with torch.no_grad():
        out = learn.model(xb)
    torch.testing.assert_close(learn.loss_func(out, yb), F.binary_cross_entropy_with_logits(
        out[:, 0], yb.float(), pos_weight=torch.tensor([3.0])))


# -- regression losses under mixed precision ----------------------------------------------------------------------

def test_regression_losses_compare_half_precision_outputs_with_float32_targets():
    targ = torch.tensor([70000.0, 1001.0])
    pred16 = torch.tensor([[60000.0], [1000.0]]).half()
    predbf = torch.tensor([[69000.0], [1000.0]]).bfloat16()
    mse = L.MSELossFlat()(pred16, targ)
    assert mse.dtype == torch.float32 and float(mse) == 5e7           # (1e4 ** 2 + 1) / 2, not inf
    assert L.L1LossFlat(reduction="none")(pred16, targ).tolist() == [10000.0, 1.0]
    assert L.L1LossFlat(reduction="none")(predbf, targ).tolist() == [880.0, 1.0]   # 69000 in bf16 is 68864
    soft = torch.tensor([[0.3337], [0.9001]])                          # soft labels (label smoothing, MixUp)
    logits = torch.tensor([[0.5], [2.0]]).half()
    torch.testing.assert_close(L.BCEWithLogitsLossFlat()(logits, soft),
                               F.binary_cross_entropy_with_logits(logits.float(), soft))
    p64, t64 = torch.tensor([1.0, 2.0], dtype=torch.float64), torch.tensor([1.5, 2.0], dtype=torch.float64)
    assert L.MSELossFlat()(p64, t64).dtype == torch.float64


def test_rossmann_regression_under_cpu_mixed_precision_trains_on_the_float32_loss():
    from pipekit.tabular import TabularDataLoaders, tabular_learner

    pipekit.set_seed(0)
    df = pd.read_csv(D.path("rossmann_sample") / "train.csv", low_memory=False).head(3000)
    df = df[df.Sales > 0][["Store", "DayOfWeek", "Promo", "Customers", "Sales"]]
    df["Sales"] = df["Sales"].astype("float32")
    dls = TabularDataLoaders.from_df(df, y_names="Sales", cat_names=["Store", "DayOfWeek", "Promo"],
                                     cont_names=["Customers"], bs=256, device="cpu")
    seen = []

    class Check(L.Callback):
        order = 50

        def after_loss(self):
            if self.learn.training:
                pred, yb = self.learn.pred.detach(), self.learn.yb[0]
                seen.append((float(self.learn.loss),
                             float(F.mse_loss(pred.float().reshape(-1), yb.float().reshape(-1)))))

    learn = tabular_learner(dls, layers=[16], loss_func=L.MSELossFlat())
    learn.fit(1, 1e-3, cbs=[L.MixedPrecision(cpu=True), Check()])
    assert seen
    for loss, full in seen:   # sales of thousands: rounded to bf16 they are off by up to 16
        assert loss == pytest.approx(full, rel=1e-6)


# -- fastai's names -------------------------------------------------------------------------------------------------

def _dice_case():
    inp = (torch.linspace(-3, 3, 2 * 3 * 4 * 5).reshape(2, 3, 4, 5) * 2.5).sin() * 4
    return inp, (torch.arange(2 * 4 * 5).reshape(2, 4, 5) * 7) % 3


@pytest.mark.parametrize("kwargs, want", [
    ({}, [4.4399157]), ({"reduction": "mean"}, [0.7399859]),
    ({"reduction": "none"}, [0.659472, 0.5719775, 0.9915298, 0.5463297, 0.8717052, 0.7989017]),
    ({"square_in_union": True}, [4.2738323]), ({"smooth": 1.0}, [4.0415654]),
])
def test_dice_loss_gives_fastais_numbers(kwargs, want):
    inp, targ = _dice_case()
    got = L.DiceLoss(**kwargs)(inp, targ)
    np.testing.assert_allclose(got.reshape(-1).tolist(), want, atol=1e-6)
    loss = L.DiceLoss()
    assert torch.equal(loss.decodes(loss.activation(inp)), inp.argmax(1))
    torch.testing.assert_close(loss.activation(inp).sum(1), torch.ones(2, 4, 5))


def test_dice_loss_refuses_targets_that_are_not_a_mask_of_class_indices():
    inp, targ = _dice_case()
    with pytest.raises(ParameterError, match=r"targets of shape \(2, 3, 4, 5\) do not fit outputs"):
        L.DiceLoss()(inp, F.one_hot(targ, 3).movedim(-1, 1))
    with pytest.raises(ParameterError, match="smooth"):
        L.DiceLoss(smooth=-1.0)


@pytest.mark.parametrize("kwargs, want", [({}, 1.2868751), ({"gamma": 0.5}, 1.6144416),
                                          ({"reduction": "sum"}, 10.295001)])
def test_focal_loss_gives_fastais_numbers(kwargs, want):
    inp, targ = (torch.linspace(-2, 2, 8 * 5).reshape(8, 5) * 3).cos() * 3, torch.arange(8) % 5
    assert float(L.FocalLoss(**kwargs)(inp, targ)) == pytest.approx(want, abs=1e-5)
    torch.testing.assert_close(L.FocalLoss(gamma=0.0)(inp, targ), F.cross_entropy(inp, targ))
    img, mask = torch.randn(2, 5, 3, 3), torch.randint(0, 5, (2, 3, 3))   # the class axis is 1
    torch.testing.assert_close(L.FocalLoss(gamma=0.0)(img, mask), F.cross_entropy(img, mask))


def test_dice_loss_trains_a_camvid_segmentation_and_survives_export(tmp_path):
    from pipekit.vision import ImageBlock, MaskBlock, Resize, image_paths_with, unet_learner

    path = D.path("camvid_tiny")
    codes = (path / "codes.txt").read_text().split()
    files = sorted(get_image_files(path / "images"))
    dls = DataBlock(blocks=(ImageBlock, MaskBlock(codes)), get_items=lambda p: files[:12],
                    get_y=image_paths_with(path / "labels", "{stem}_P{suffix}"),
                    splitter=RandomSplitter(0.25, seed=42), item_tfms=[Resize((32, 48))]).dataloaders(path, bs=4,
                                                                                                    seed=42)
    pipekit.set_seed(0)
    learn = unet_learner(dls, "xresnet18", pretrained=False, loss_func=L.DiceLoss(reduction="mean"))
    learn.fit(1, 1e-3)
    assert np.isfinite(learn.recorder.values[-1][0])
    new = files[12:15]
    before = learn.validate(dl=dls.test_dl(new, with_labels=True))
    loaded = L.load_learner(learn.export(tmp_path / "dice.pipekit"))
    assert type(loaded.loss_func) is L.DiceLoss and loaded.loss_func.get_params() == learn.loss_func.get_params()
    after = loaded.validate(dl=loaded.dls.test_dl(new, with_labels=True))
    np.testing.assert_allclose(before, after, rtol=1e-5)
    preds, _, decoded = loaded.get_preds(dl=loaded.dls.test_dl(new), with_decoded=True)
    assert decoded.shape == (3, 32, 48) and torch.equal(decoded, preds.argmax(1))


def test_focal_loss_survives_export(tmp_path):
    from pipekit.vision import ImageDataLoaders

    pipekit.set_seed(0)
    dls = ImageDataLoaders.from_folder(D.path("mnist_tiny"), train="train", valid="valid", bs=64, device="cpu")
    learn = L.Learner(dls, L.simple_cnn(n_in=3, n_out=2, channels=(8, 16)), loss_func=L.FocalLoss(gamma=1.5))
    learn.fit(1, 1e-2)
    back = L.load_learner(learn.export(tmp_path / "focal.pipekit"))
    assert type(back.loss_func) is L.FocalLoss and back.loss_func.get_params() == {
        "gamma": 1.5, "weight": None, "reduction": "mean"}
    files = sorted(get_image_files(D.path("mnist_tiny") / "valid"))
    np.testing.assert_allclose(back.validate(dl=back.dls.test_dl(files, with_labels=True)), learn.validate(),
                               rtol=1e-5)


def test_lin_bn_drop_is_fastais_layer():
    def parts(m):
        return [(type(x).__name__, getattr(x, "num_features", None), getattr(x, "bias", 0) is None) for x in m]

    assert parts(L.LinBnDrop(4, 3, p=0.5)) == [("BatchNorm1d", 4, False), ("Dropout", None, False),
                                                ("Linear", None, True)]
    assert parts(L.LinBnDrop(4, 3, lin_first=True)) == [("Linear", None, True), ("BatchNorm1d", 3, False)]
    assert parts(L.LinBnDrop(4, 3, bn=False, act=nn.ReLU())) == [("Linear", None, False), ("ReLU", None, False)]
    assert L.LinBnDrop(4, 3)[0].bias.tolist() == pytest.approx([1e-3] * 4)
    with pytest.raises(ParameterError, match=r"an instance, not the class nn.ReLU"):
        L.LinBnDrop(4, 3, act=nn.ReLU)


def test_conv_layer_passes_convolution_arguments_on():
    conv = L.ConvLayer(4, 8, groups=2, dilation=2, padding_mode="reflect")[0]
    assert (conv.groups, conv.dilation, conv.padding_mode, tuple(conv.weight.shape)) == (2, (2, 2), "reflect",
                                                                                         (8, 2, 3, 3))
    assert L.ConvLayer(4, 8, ndim=1, dilation=3)(torch.zeros(2, 4, 16)).shape == (2, 8, 12)   # padded by 1, as fastai
    with pytest.raises(ParameterError, match=r"bn_1st is not an argument of ConvLayer or of its Conv2d"):
        L.ConvLayer(4, 8, bn_1st=False)


@pytest.mark.parametrize("norm, weight, total", [("Instance", 1.0, 202.12447), ("InstanceZero", 0.0, 0.512)])
def test_conv_layer_with_instance_norm_as_fastai_builds_it(norm, weight, total):
    layer = L.ConvLayer(3, 4, norm_type=getattr(L.NormType, norm))
    assert [type(m).__name__ for m in layer] == ["Conv2d", "InstanceNorm2d", "ReLU"] and layer[0].bias is None
    assert layer[1].affine and layer[1].weight.tolist() == [weight] * 4
    assert layer[1].bias.tolist() == pytest.approx([1e-3] * 4)
    torch.manual_seed(1)
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        layer[0].weight.copy_(torch.arange(4 * 3 * 9, dtype=torch.float32).view(4, 3, 3, 3).sin() / 5)
        assert float(layer.eval()(x).sum()) == pytest.approx(total, abs=1e-3)


def test_sigmoid_range_takes_one_range_per_target():
    layer = L.SigmoidRange(torch.tensor([0.0, 1.0]), torch.tensor([5.0, 10.0]))
    assert layer(torch.zeros(2, 2)).tolist() == [[2.5, 5.5], [2.5, 5.5]]
    assert layer(torch.full((1, 2), 50.0)).tolist() == [[5.0, 10.0]]
    assert repr(layer) == "SigmoidRange(low=[0.0, 1.0], high=[5.0, 10.0])"
    assert L.SigmoidRange([0, 1], 10)(torch.zeros(1, 2)).tolist() == [[5.0, 5.5]]   # one high for both
    assert layer.state_dict() == {}   # the bounds are not weights
    with pytest.raises(ParameterError, match=r"a range for each of 2 targets, and its input of shape \(4, 3\)"):
        layer(torch.zeros(4, 3))
    with pytest.raises(ParameterError, match="y_range of target 1"):
        L.SigmoidRange([0.0, 5.0], [1.0, 2.0])


def test_star_import_gives_fastais_loss_and_layer_names():
    import pipekit.vision.all as V

    for name in ("DiceLoss", "FocalLoss", "LinBnDrop", "BatchNorm", "InstanceNorm"):
        assert getattr(V, name) is getattr(L, name)


# -- batch norms start as fastai's ----------------------------------------------------------------------------------

def test_batch_norms_start_with_a_shift_of_1e_3():
    torch.manual_seed(0)
    layer = L.ConvLayer(3, 4)
    assert layer[1].bias.tolist() == pytest.approx([1e-3] * 4) and layer[1].weight.tolist() == [1.0] * 4
    zero = L.ConvLayer(3, 4, norm_type=L.NormType.BatchZero)[1]
    assert zero.bias.tolist() == pytest.approx([1e-3] * 4) and zero.weight.tolist() == [0.0] * 4
    from pipekit.learn.nets import linear_layers

    heads = [m for m in linear_layers([8, 4, 2], [0.5, 0.5]) if isinstance(m, nn.BatchNorm1d)]
    mlp = [m for m in L.MLP(6, 2, layers=[5], use_bn=True).modules() if isinstance(m, nn.BatchNorm1d)]
    for bn in heads + mlp:
        assert bn.bias.tolist() == pytest.approx([1e-3] * bn.num_features)
    torch.manual_seed(1)
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        layer[0].weight.copy_(torch.arange(4 * 3 * 9, dtype=torch.float32).view(4, 3, 3, 3).sin() / 5)
        assert float(layer.eval()(x).sum()) == pytest.approx(149.414139, abs=1e-3)   # fastai's; 149.157 from 0


def test_a_residual_block_starts_as_identity_plus_the_norms_shift():
    from pipekit.vision import ResBlock

    x = torch.randn(2, 8, 4, 4)
    torch.testing.assert_close(ResBlock(1, 8, 8)(x), (x + 1e-3).relu())
