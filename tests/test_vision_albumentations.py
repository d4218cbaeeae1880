"""albumentations pipelines as item transforms on the presized images (dogscats, camvid_tiny, coco_tiny):
the same pixels albumentations gives on the same image and seed, masks, keypoints and boxes following
their image, determinism, refusals, and the pipeline kept as data in files."""
from __future__ import annotations

import copy
import json
import os

import numpy as np
import polars as pl
import pytest
import torch

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
import albumentations as A  # noqa: E402

import pipekit  # noqa: E402
import pipekit.datasets as D  # noqa: E402
from pipekit.core import Component, DataError, ExportError, ParameterError  # noqa: E402
from pipekit.data import (CategoryBlock, ColReader, DataBlock, RandomSplitter, get_image_files,  # noqa: E402
                          parent_label)
from pipekit.vision import (Albumentations, BBoxBlock, BBoxLblBlock, ImageBlock, IntToFloat, MaskBlock,  # noqa: E402
                            PointBlock, Resize, image_paths_with)
from test_vision_bbox import coco_items  # noqa: E402

PIPELINE = [A.HorizontalFlip(p=0.5), A.Affine(rotate=(-25, 25), scale=(0.9, 1.1), p=0.8),
            A.RandomBrightnessContrast(p=0.5), A.CoarseDropout(num_holes_range=(1, 3), p=0.5)]


def as_float(x, **kw):
    return x.astype(np.float32)


def fails(x, **kw):
    raise ValueError("needs 4 channels")


def dogscats(n: int = 24) -> list:
    root = D.path("dogscats") / "train"
    return get_image_files(root / "cats")[:n // 2] + get_image_files(root / "dogs")[:n // 2]


def pets_dls(aug, tmp_path, **kw):
    dblock = DataBlock(blocks=(ImageBlock(cache_dir=tmp_path), CategoryBlock), get_y=parent_label,
                       splitter=RandomSplitter(0.25, seed=0), item_tfms=[Resize(64), aug])
    return dblock.dataloaders(dogscats(), bs=8, seed=7, device="cpu", num_workers=0, **kw)


def test_each_image_is_what_albumentations_gives_on_it_with_its_seed(tmp_path):
    aug = Albumentations(A.Compose(PIPELINE))
    dls = pets_dls(aug, tmp_path)
    dl = dls.train
    # it runs first among the batch transforms, on the host, then pipekit turns the images into floats
    assert [type(t).__name__ for t in dl.batch_tfms] == ["Albumentations", "IntToFloat"]
    raw = dl.create_batch(dl.batch_plan(0)[0])  # uint8 (8, 64, 64, 3), straight from the presize cache
    ctx = dl.context(0, 0)
    out = dl.batch_tfms.tfms[0].encode(tuple(raw), ctx)
    seeds = Albumentations.seeds(ctx, len(raw[0]))
    changed = 0
    for i in range(len(raw[0])):
        want = A.Compose(copy.deepcopy(PIPELINE), seed=int(seeds[i]))(image=raw[0][i].numpy())["image"]
        assert np.array_equal(out[0][i].numpy(), want), i
        changed += not np.array_equal(want, raw[0][i].numpy())
    assert changed >= 6  # the pipeline did change the pictures
    # the loader's own batch: the same pixels, as floats
    x, _ = dl.one_batch()
    assert torch.allclose(x, IntToFloat().encode((out[0],), ctx)[0])
    # on an accelerator it runs in the loader's workers before the transfer; the other batch transforms after
    on_device = dl.new(device="meta")
    host, device = on_device._split_tfms()
    assert [type(t).__name__ for t in host] == ["Albumentations"] and [type(t).__name__ for t in device] == ["IntToFloat"]
    handed_over = on_device._produce(0, 0, dl.batch_plan(0)[0])
    assert handed_over[0].device.type == "cpu" and torch.equal(handed_over[0], out[0])
    # the cache holds the presized images only: the augmentation is not cached, it is drawn per epoch
    assert np.array_equal(np.asarray(dl.dataset.stores[0].pixels[0]), np.asarray(
        pets_dls(Albumentations(), tmp_path).train.dataset.stores[0].pixels[0]))


def test_augmentation_is_repeatable_per_seed_and_new_per_epoch(tmp_path):
    aug = Albumentations(A.Compose(PIPELINE))
    a = pets_dls(aug, tmp_path).train
    b = pets_dls(aug, tmp_path).train
    epoch0 = [x for x, _ in a]
    assert all(torch.equal(x, y) for x, (y, _) in zip(epoch0, b))  # same seed: same batches, same draws
    epoch1 = [x for x, _ in a]
    assert not all(torch.equal(x, y) for x, y in zip(epoch0, epoch1))  # the next epoch draws again
    # validation batches are not augmented (unless on_valid=True)
    v = pets_dls(aug, tmp_path).valid
    plain = pets_dls(Albumentations(), tmp_path).valid
    assert all(torch.equal(x, y) for (x, _), (y, _) in zip(v, plain))
    flip = pets_dls(Albumentations(A.HorizontalFlip(p=1.0), on_valid=True), tmp_path).valid
    assert all(torch.equal(x.flip(-1), y) for (x, _), (y, _) in zip(flip, plain))


def test_masks_follow_their_image_on_camvid(tmp_path):
    path = D.path("camvid_tiny")
    codes = (path / "codes.txt").read_text().split()
    pipeline = [A.HorizontalFlip(p=0.5), A.Affine(rotate=(-30, 30), p=1.0), A.GridDistortion(p=0.5)]
    dblock = DataBlock(blocks=(ImageBlock, MaskBlock(codes)), get_items=lambda p: get_image_files(p / "images")[:16],
                       get_y=image_paths_with(path / "labels", lambda p: f"{p.stem}_P{p.suffix}"),
                       splitter=RandomSplitter(0.25, seed=0),
                       item_tfms=[Resize((48, 64)), Albumentations(A.Compose(pipeline))])
    dl = dblock.dataloaders(path, bs=6, seed=1, device="cpu", num_workers=0).train
    raw = dl.create_batch(dl.batch_plan(0)[0])
    ctx = dl.context(0, 0)
    img, mask = dl.batch_tfms.tfms[0].encode(tuple(raw), ctx)
    seeds = Albumentations.seeds(ctx, 6)
    for i in range(6):
        want = A.Compose(copy.deepcopy(pipeline), seed=int(seeds[i]))(image=raw[0][i].numpy(), mask=raw[1][i].numpy())
        assert np.array_equal(img[i].numpy(), want["image"]) and np.array_equal(mask[i].numpy(), want["mask"])
        assert set(np.unique(mask[i].numpy())) <= set(np.unique(raw[1][i].numpy())) | {0}  # nearest: no new classes
    x, y = dl.one_batch()
    assert y.dtype == torch.int64 and torch.equal(y, mask.long())


def test_keypoints_follow_their_image(tmp_path):
    files = dogscats(12)
    items = pl.DataFrame({"path": [str(f) for f in files]})
    pts = [[100.0, 100.0], [50.0, 30.0], [180.0, 150.0]]  # pixels of the 200x200 sources
    flip = Albumentations(A.HorizontalFlip(p=1.0))
    dblock = DataBlock(blocks=(ImageBlock, PointBlock(img_size=(200, 200))), getters=[ColReader("path"), lambda r: pts],
                       splitter=RandomSplitter(0.25, seed=0), item_tfms=[Resize(64), flip])
    dl = dblock.dataloaders(items, bs=4, seed=0, device="cpu", num_workers=0).train
    raw = dl.create_batch(dl.batch_plan(0)[0])
    img, p = dl.batch_tfms.tfms[0].encode(tuple(raw), dl.context(0, 0))
    # a mirror: pixels flipped, and every point at -x (pipekit's -1..1 frame has its edges at -1 and 1)
    assert torch.equal(img, raw[0].flip(2))
    assert torch.allclose(p[..., 0], -raw[1][..., 0], atol=1e-5) and torch.allclose(p[..., 1], raw[1][..., 1])
    # a rotation moves points as albumentations moves them; points that leave the image are kept
    rot = Albumentations(A.Affine(rotate=(40, 40), scale=(1.6, 1.6), p=1.0))
    ctx = dl.context(0, 0)
    img2, p2 = rot.encode(tuple(raw), ctx)
    s = Albumentations.seeds(ctx, 4)
    for i in range(4):
        kp = ((raw[1][i].numpy().astype(np.float64) + 1) / 2 * 64 - 0.5)
        want = A.Compose([A.Affine(rotate=(40, 40), scale=(1.6, 1.6), p=1.0)], seed=int(s[i]),
                         keypoint_params=A.KeypointParams(format="xy", remove_invisible=False))(
            image=raw[0][i].numpy(), keypoints=kp)
        assert np.array_equal(img2[i].numpy(), want["image"])
        assert np.allclose((np.asarray(want["keypoints"])[:, :2] + 0.5) / 64 * 2 - 1, p2[i].numpy(), atol=1e-5)
    assert p2.shape == raw[1].shape and (p2.abs() > 1).any()


def test_boxes_follow_their_image_on_coco(tmp_path):
    df = coco_items(24)
    dblock = DataBlock(blocks=(ImageBlock, BBoxBlock(img_size=(128, 128)), BBoxLblBlock), n_inp=1,
                       getters=[ColReader("path"), ColReader("boxes"), ColReader("labels")],
                       splitter=RandomSplitter(0.25, seed=0),
                       item_tfms=[Resize(64), Albumentations(A.HorizontalFlip(p=1.0))])
    dl = dblock.dataloaders(df, bs=6, seed=0, device="cpu", num_workers=0).train
    raw = dl.create_batch(dl.batch_plan(0)[0])
    img, boxes, labels = dl.batch_tfms.tfms[0].encode(tuple(raw), dl.context(0, 0))
    real = ~torch.isnan(raw[1]).any(-1)
    assert torch.equal(img, raw[0].flip(2)) and torch.equal(labels, raw[2])
    assert torch.equal(~torch.isnan(boxes).any(-1), real)  # padding stays padding, every box is kept
    # mirrored: x0' = -x1, x1' = -x0 in the -1..1 frame; y unchanged
    assert torch.allclose(boxes[real][:, 0], -raw[1][real][:, 2], atol=1e-5)
    assert torch.allclose(boxes[real][:, 2], -raw[1][real][:, 0], atol=1e-5)
    assert torch.allclose(boxes[real][:, [1, 3]], raw[1][real][:, [1, 3]], atol=1e-5)
    # a crop into the top-left corner: boxes are clipped to it, those left with no area become padding
    crop = Albumentations(A.Compose([A.Crop(0, 0, 32, 32), A.Resize(64, 64)]))
    _, cropped, _ = crop.encode(tuple(raw), dl.context(0, 0))
    kept = ~torch.isnan(cropped).any(-1)
    assert (kept <= real).all() and kept.sum() < real.sum()
    assert (cropped[kept] >= -1 - 1e-5).all() and (cropped[kept] <= 1 + 1e-5).all()


def test_what_cannot_run_on_the_cached_images_is_refused(tmp_path):
    with pytest.raises(ParameterError, match="Normalize \\(pipekit normalises on the device"):
        Albumentations(A.Compose([A.HorizontalFlip(), A.Normalize()]))
    with pytest.raises(ParameterError, match="Albumentations: transform=.* is not accepted; expected an albumentations"):
        Albumentations(Resize(64))
    with pytest.raises(ParameterError, match="wrap an albumentations transform or Compose: "
                                             "pipekit.vision.Albumentations\\(t\\)"):
        DataBlock(blocks=(ImageBlock, CategoryBlock), item_tfms=[Resize(64), A.HorizontalFlip()])
    dls = pets_dls(Albumentations(A.RandomCrop(48, 48, p=1.0)), tmp_path)
    with pytest.raises(DataError, match=r"changed the image size from \(64, 64\) to \(48, 48\).*"
                                        r"A.RandomResizedCrop\(size=\(64, 64\)\)"):
        dls.one_batch()
    dls = pets_dls(Albumentations(A.Lambda(image=as_float, p=1.0)), tmp_path)
    with pytest.raises(DataError, match="returned float32 image pixels; it must keep uint8"):
        dls.one_batch()

    dls = pets_dls(Albumentations(A.Lambda(image=fails, p=1.0)), tmp_path)
    with pytest.raises(DataError, match=r"cannot run on the cached 64x64x3 uint8 images .*needs 4 channels"):
        dls.one_batch()


def test_a_used_transform_copies_and_pickles(tmp_path):
    import pickle

    aug = Albumentations(A.Compose(PIPELINE))
    dl = pets_dls(aug, tmp_path).train
    x, _ = dl.one_batch()  # the threads now hold their own copies of the pipeline
    used = dl.batch_tfms.tfms[0]
    for again in (copy.deepcopy(used), pickle.loads(pickle.dumps(used))):
        dl2 = dl.new()
        dl2.batch_tfms.tfms[0] = again
        assert torch.equal(dl2.one_batch()[0], x)


def test_the_pipeline_is_stored_as_data(tmp_path):
    aug = Albumentations(A.Compose(PIPELINE, p=0.9))
    rec = json.loads(json.dumps(aug.to_record()))
    back = Component.from_record(rec)
    assert A.to_dict(back.transform) == A.to_dict(aug.transform)
    assert pipekit.load(pipekit.save(aug, tmp_path / "aug.pipekit")).transform.p == 0.9
    # a file names only transforms albumentations lists, with the parameters their signatures take
    bad = json.loads(json.dumps(rec))
    bad["params"]["transform"]["albumentations"]["transforms"][0]["__class_fullname__"] = "os.system"
    with pytest.raises(ExportError, match="'os.system' is not a transform albumentations lists"):
        Component.from_record(bad)
    bad = json.loads(json.dumps(rec))
    bad["params"]["transform"]["albumentations"]["transforms"][0]["exec"] = "print(1)"
    with pytest.raises(ExportError, match=r"albumentations.HorizontalFlip takes no parameters \['exec'\]"):
        Component.from_record(bad)
    # a function in the pipeline cannot be data: the file leaves the pipeline out (it never changes predictions)
    with pytest.warns(UserWarning, match="left out of the saved file"):
        rec = Albumentations(A.Lambda(image=as_float)).to_record()
    assert rec["params"]["transform"] is None and Component.from_record(rec).transform is None


def test_a_learner_trained_with_a_pipeline_exports_and_predicts_the_same(tmp_path, one_torch_thread):
    from pipekit.learn import accuracy, load_learner
    from pipekit.vision import vision_learner

    from pipekit import set_seed

    set_seed(0)  # the model's starting weights: two epochs from an unlucky start can stay near chance
    files = get_image_files(D.path("mnist_tiny") / "train")[::4]
    aug = Albumentations(A.Compose([A.Affine(rotate=(-15, 15), p=0.7), A.RandomBrightnessContrast(p=0.5)]))
    dblock = DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock), get_y=parent_label,
                       splitter=RandomSplitter(0.2, seed=0), item_tfms=[aug])
    dls = dblock.dataloaders(files, bs=32, seed=0, device="cpu")
    learn = vision_learner(dls, "simple_cnn", metrics=accuracy, path=tmp_path)
    learn.fit(2, 3e-3)
    again = load_learner(learn.export(tmp_path / "mnist.pipekit"))
    # the recipe kept the pipeline as data and rebuilt it; predictions (never augmented) are the same
    kept = [t for t in again.dls.recipe.batch_tfms_ if isinstance(t, Albumentations)]
    assert len(kept) == 1 and A.to_dict(kept[0].transform) == A.to_dict(aug.transform)
    test = get_image_files(D.path("mnist_tiny") / "valid" / "3")[:8]
    p1 = learn.get_preds(dl=learn.dls.test_dl(test))[0]
    p2 = again.get_preds(dl=again.dls.test_dl(test))[0]
    assert torch.allclose(p1, p2, atol=1e-5)
    assert float(learn.validate()[1]) > 0.6  # it learned from the augmented images


def test_a_saved_pipeline_holds_only_what_a_file_may_hold(tmp_path):
    """A file names only the transforms of FILE_TRANSFORMS with checked parameters; the export applies the same
    checks, so it never writes a pipeline a load would refuse."""
    from pipekit.vision.albu import FILE_TRANSFORMS, albumentations_from_data, albumentations_to_data

    # every listed transform, as albumentations builds it by default, is written and rebuilt the same (after a
    # Resize, for the ones whose output size follows the image's)
    needs = {"Crop": dict(x_max=32, y_max=32), "CenterCrop": dict(height=32, width=32),
             "RandomCrop": dict(height=32, width=32), "Resize": dict(height=32, width=32),
             "RandomResizedCrop": dict(size=(32, 32)), "RandomSizedCrop": dict(min_max_height=(16, 32), size=(32, 32)),
             "LongestMaxSize": dict(max_size=32), "SmallestMaxSize": dict(max_size=32)}
    composes = {"Compose", "Sequential", "OneOf", "SomeOf", "RandomOrder"}
    for name in FILE_TRANSFORMS:
        t = getattr(A, name)([A.HorizontalFlip()]) if name in composes else getattr(A, name)(**needs.get(name, {}))
        pipeline = A.Compose([A.Resize(64, 64), t])
        back = albumentations_from_data(json.loads(json.dumps(albumentations_to_data(pipeline))))
        assert A.to_dict(back) == A.to_dict(pipeline), name
    # PadIfNeeded round-trips (albumentations' description adds a parameter its class does not take); a pipeline's
    # box and keypoint settings, which pipekit replaces, are not written
    pad = Albumentations(A.Compose([A.PadIfNeeded(72, 72), A.RandomCrop(64, 64)], bbox_params=A.BboxParams("coco")))
    back = Component.from_record(json.loads(json.dumps(pad.to_record())))
    assert [type(t).__name__ for t in back.transform.transforms] == ["PadIfNeeded", "RandomCrop"]
    assert back.transform.transforms[0].min_height == 72 and back.transform.processors == {}
    # a transform that reads files, or an upscaling step with nothing setting the size before it, is left out of the
    # file with the reason (training augmentation never changes predictions) ...
    for t, said in ((A.Compose([A.RandomScale(scale_limit=0.2), A.CenterCrop(64, 64)]),
                     r"albumentations.RandomScale: scale_limit can turn an image of up to 8,192 x 8,192 px .* into one "
                     r"of 9,830 x 9,830 px, over the 8192 px per side pipekit accepts .*set the size first with "
                     r"A.Resize or a crop"),
                    (A.Compose([A.TextImage(font_path=str(tmp_path / "font.ttf"))]),
                     r"albumentations.TextImage is not among the transforms a saved pipeline may hold")):
        with pytest.warns(UserWarning, match=r"left out of the saved file.*" + said):
            rec = Albumentations(t).to_record()
        assert rec["params"]["transform"] is None
        # ... and refused when it runs on validation batches, where it decides the predictions
        with pytest.raises(ExportError, match=r"Albumentations: transform: the pipeline runs on validation batches "
                                              r"\(on_valid=True\).*" + said):
            Albumentations(t, on_valid=True).to_record()
    # with the size set first, the same zoom is written
    ok = Albumentations(A.Compose([A.Resize(64, 64), A.RandomScale(scale_limit=0.2), A.CenterCrop(64, 64)]))
    assert pipekit.load(pipekit.save(ok, tmp_path / "zoom.pipekit")).transform.transforms[1].scale_limit == (-0.2, 0.2)
