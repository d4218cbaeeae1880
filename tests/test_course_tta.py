"""``learn.tta`` with fastai's ``item_tfms=`` and ``batch_tfms=`` (in fastai's argument order), on mnist_tiny: the
given transforms take the place of the loader's augmentations in the augmented passes, the loader's normalisation
stays, and the plain pass is ``get_preds``' own."""
from __future__ import annotations

import inspect
import warnings

import pytest
import torch

import pipekit
import pipekit.datasets as D
from pipekit.core.errors import ParameterError
from pipekit.data import CategoryBlock, DataBlock, GrandparentSplitter, get_image_files, parent_label
from pipekit.vision import FlipItem, ImageBlock, Normalize, Resize, aug_transforms, vision_learner

#: a batch augmentation that draws nothing: the images only resampled to their own size
NO_AUG = dict(size=28, do_flip=False, max_rotate=0, max_zoom=1, max_warp=0, max_lighting=0)


@pytest.fixture(scope="module")
def learn():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dls = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=lambda p: get_image_files(p)[::5],
                        get_y=parent_label, splitter=GrandparentSplitter(), item_tfms=Resize(28),
                        batch_tfms=aug_transforms(size=28)).dataloaders(D.path("mnist_tiny"), bs=64, seed=0,
                                                                        device="cpu")
    pipekit.set_seed(0)
    learn = vision_learner(dls, "simple_cnn", pretrained=False)
    learn.fit(1, 1e-2)
    assert any(isinstance(t, Normalize) for t in learn.dls.valid.batch_tfms)  # added by vision_learner
    return learn


def test_tta_takes_fastais_arguments_in_fastais_order(learn):
    named = [p.name for p in inspect.signature(learn.tta).parameters.values() if p.kind is not p.VAR_KEYWORD]
    assert named == ["ds_idx", "dl", "n", "item_tfms", "batch_tfms", "beta", "use_max"]  # **: fastai keywords refused
    preds, targs = learn.tta(1, None, 2, None)  # fastai's positional call: item_tfms=None, beta as its default
    assert isinstance(preds, torch.Tensor) and preds.shape == (len(learn.dls.valid_ds), 2)
    assert torch.equal(preds, learn.tta(n=2)[0]) and torch.equal(targs, learn.get_preds()[1])


def test_tta_batch_tfms_replace_the_loaders_augmentation_and_keep_its_normalisation(learn):
    plain, _ = learn.get_preds()
    (aug, plain_d), _ = learn.tta(n=2, beta=None)
    strong = aug_transforms(size=28, max_rotate=45, max_lighting=0.6, p_lighting=1.0, p_affine=1.0)
    (aug_b, plain_b), targs = learn.tta(n=2, beta=None, batch_tfms=strong)
    assert torch.equal(plain_b, plain) and torch.equal(plain_d, plain)  # the plain pass is get_preds' own
    assert not torch.allclose(aug_b, aug, atol=1e-4)  # other augmentation, other predictions
    (again, _), _ = learn.tta(n=2, beta=None, batch_tfms=aug_transforms(size=28, max_rotate=45, max_lighting=0.6,
                                                                        p_lighting=1.0, p_affine=1.0))
    assert torch.equal(again, aug_b)  # deterministic
    # an augmentation that draws nothing gives the plain predictions: the images are still converted and normalised
    (none, _), _ = learn.tta(n=1, beta=None, batch_tfms=aug_transforms(**NO_AUG))
    assert torch.allclose(none, plain, atol=1e-5)
    blended, _ = learn.tta(n=2, batch_tfms=strong)
    assert torch.allclose(blended, 0.75 * aug_b + 0.25 * plain, atol=1e-6)


def test_tta_item_tfms_flip_each_image(learn):
    plain, _ = learn.get_preds()
    # every image mirrored, the batch augmentation given as none: the passes are the model on the mirrored images
    (flipped, plain2), _ = learn.tta(n=1, beta=None, item_tfms=FlipItem(p=1.0), batch_tfms=[])
    assert torch.equal(plain2, plain)
    x = torch.cat([b[0] for b in learn.dls.valid])
    learn.model.eval()
    with torch.no_grad():
        expected = torch.softmax(learn.model(x.flip(-1)), 1)
    assert torch.allclose(flipped, expected, atol=1e-4)
    assert not torch.allclose(flipped, plain, atol=1e-3)
    # with the loader's batch augmentation kept, the flip changes the passes too
    (aug, _), _ = learn.tta(n=2, beta=None)
    (aug_f, _), _ = learn.tta(n=2, beta=None, item_tfms=[FlipItem(p=1.0)])
    assert not torch.allclose(aug_f, aug, atol=1e-4)


@pytest.mark.parametrize("args", [(1, None, 4, 0.5), (1, None, 4, None, 0.5)])
def test_tta_says_beta_is_given_by_name_when_a_number_takes_a_transforms_place(learn, args):
    name, value = ("item_tfms", 0.5) if len(args) == 4 else ("batch_tfms", 0.5)
    with pytest.raises(ParameterError) as e:
        learn.tta(*args)  # pipekit's earlier order put beta 4th
    msg = str(e.value)
    assert msg.startswith(f"tta: {name}={value} is a number, not a transform")
    assert "the 4th and 5th arguments are item_tfms and batch_tfms" in msg and "beta=0.5" in msg
    assert "item transform that resizes" not in msg


def test_tta_refuses_item_tfms_done_as_items_are_encoded(learn):
    with pytest.raises(ParameterError, match=r"tta: item_tfms=Resize.*not a batch transform.*FlipItem\(\)"):
        learn.tta(n=1, item_tfms=Resize(32))


def test_tta_item_tfms_take_the_place_of_random_resized_crops_random_crop():
    from pipekit.vision import RandomResizedCrop, imagenet_stats

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dls = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=lambda p: get_image_files(p)[::10],
                        get_y=parent_label, splitter=GrandparentSplitter(),
                        item_tfms=[RandomResizedCrop(24, min_scale=0.5), FlipItem()],
                        batch_tfms=aug_transforms(size=24)).dataloaders(D.path("mnist_tiny"), bs=64, seed=0,
                                                                        device="cpu")
    learn = vision_learner(dls, "simple_cnn", pretrained=False)
    plain, _ = learn.get_preds()
    # no item or batch augmentation: the crop is the validation one, so the passes are the plain pass
    (aug, _), _ = learn.tta(n=1, beta=None, item_tfms=[], batch_tfms=[])
    assert torch.allclose(aug, plain, atol=1e-5)
    # fastai's habit of listing Normalize in batch_tfms: the images are normalised once, with the loader's statistics
    with pytest.warns(UserWarning, match=r"tta: Normalize\(mean=\[0\.485.*left out; the passes use the loader's own"):
        (aug, _), _ = learn.tta(n=1, beta=None, item_tfms=[], batch_tfms=[Normalize.from_stats(*imagenet_stats)])
    assert torch.allclose(aug, plain, atol=1e-5)
    # batch_tfms alone: the item stage (the random crop, the flip) is the loader's own, drawing
    (aug, _), _ = learn.tta(n=1, beta=None, batch_tfms=[])
    assert not torch.allclose(aug, plain, atol=1e-4)
