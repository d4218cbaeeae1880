"""A loaded file is data: the chains of steps a file describes must not make pipekit read files, allocate without
bound or abort the process. Each attack edits a real export the way a tester did and must be refused at load with
an ExportError that names the file and the field; untouched exports still round-trip with identical predictions.

- Albumentations: a pipeline stored in an export accepted any transform albumentations lists with any parameters,
  so ``PadIfNeeded(min_height=60000, min_width=60000)`` (or Resize, LongestMaxSize, RandomScale, Affine with
  fit_output) made predict allocate without bound when the pipeline runs on validation batches, and
  ``FDA(reference_images=['/etc/hostname'])`` or ``TextImage(font_path=...)`` made pipekit read the files a model
  file names.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
import albumentations as A  # noqa: E402

import pipekit.datasets as D  # noqa: E402
from pipekit.core import ExportError  # noqa: E402
from test_sec_file_bombs import members, write_members  # noqa: E402


def edit_records(path: Path, out: Path, cls: str, edit) -> Path:
    """``path`` with ``edit`` applied to the params of every record of class ``cls`` in its record.json."""
    files = members(path)
    record = json.loads(files["record.json"])
    found = []

    def walk(node):
        if isinstance(node, dict):
            if node.get("class") == cls:
                found.append(node)
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(record)
    assert found, f"no {cls} record in {path}"
    for node in found:
        edit(node["params"])
    return write_members(out, {**files, "record.json": json.dumps(record).encode()})


# ------------------------------------------------------------------------------------------- Albumentations
ALBU = "pipekit.vision.Albumentations"


@pytest.fixture(scope="module")
def albu_export(tmp_path_factory, one_torch_thread):
    """simple_cnn trained one epoch on a third of mnist_tiny with an albumentations pipeline that also runs on
    validation batches (a flip, so predictions depend on it), exported; the learner, the file and test digits."""
    from pipekit.data import CategoryBlock, DataBlock, GrandparentSplitter, get_image_files, parent_label
    from pipekit.learn import Learner, simple_cnn
    from pipekit.vision import Albumentations, ImageBlock, Resize

    pipeline = A.Compose([A.HorizontalFlip(p=1.0), A.PadIfNeeded(32, 32), A.CenterCrop(28, 28)])
    dls = DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock), get_items=lambda p: get_image_files(p)[::3],
                    get_y=parent_label, splitter=GrandparentSplitter(),
                    item_tfms=[Resize(28), Albumentations(pipeline, on_valid=True)]
                    ).dataloaders(D.path("mnist_tiny"), bs=32, seed=0, num_workers=0)
    learn = Learner(dls, simple_cnn(n_in=1, n_out=dls.c))
    learn.fit(1)
    path = learn.export(tmp_path_factory.mktemp("albu") / "albu.pipekit")
    return learn, path, sorted((D.path("mnist_tiny") / "test").glob("*.png"))[:4]


def with_pipeline(path: Path, out: Path, *leaves: dict) -> Path:
    """The export with its stored pipeline's transforms replaced by ``leaves``."""
    def edit(params):
        params["transform"]["albumentations"]["transforms"] = [dict(x) for x in leaves]
        params["on_valid"] = True
    return edit_records(path, out, ALBU, edit)


def full(t) -> dict:
    """A transform as albumentations' description writes it (every parameter)."""
    return A.to_dict(t)["transform"]


_PREDICT_CAPPED = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))  # an allocation that gets past the checks fails here
import torch
torch.set_num_threads(1)
from pipekit.core import ExportError
from pipekit.learn import load_learner
digit = sys.argv[1]
for path in sys.argv[2:]:
    try:
        learn = load_learner(path)
    except ExportError as e:
        print("REFUSED", e, flush=True)
        continue
    try:
        learn.predict(digit)
        print("PREDICTED", path, flush=True)
    except Exception as e:
        print("FAILED", path, type(e).__name__, str(e)[:200], flush=True)
"""


def test_sec_albumentations_image_sizes_are_bounded_at_load(albu_export, tmp_path):
    """The tester's PadIfNeeded(60000, 60000) and the other ways a stored pipeline can size an image: each refused at
    load naming the file, the field and the parameter. Loaded and predicted in a child process with a 3 GiB cap,
    so the old behaviour (a 60000 x 60000 buffer per image at predict) fails the test instead of taking the
    machine's memory."""
    _, path, digits = albu_export
    attacks = {  # name: (the stored transforms, what the refusal says)
        "pad": ([{"__class_fullname__": "PadIfNeeded", "min_height": 60000, "min_width": 60000, "p": 1.0}],
                r"albumentations.PadIfNeeded: min_height=60000 is not accepted; expected None or an integer in "
                r"\[1, 8192\]"),
        "resize": ([full(A.Resize(64, 64)) | {"height": 60000}],
                   r"albumentations.Resize: height=60000 is not accepted; expected an integer in \[1, 8192\]"),
        "longest": ([full(A.LongestMaxSize(max_size=64)) | {"max_size": 60000}],
                    r"albumentations.LongestMaxSize: max_size=60000 is not accepted"),
        "scale": ([full(A.RandomScale(scale_limit=(0.0, 20.0), p=1.0)), full(A.CenterCrop(28, 28))],
                  r"albumentations.RandomScale: scale_limit can turn an image of up to 8,192 x 8,192 px .* into one "
                  r"of 172,032 x 172,032 px, over the 8192 px per side"),
        "fit_output": ([full(A.Affine(scale=8.0, fit_output=True, p=1.0)), full(A.Resize(28, 28))],
                       r"albumentations.Affine: fit_output \(with scale and shear\) can turn an image .* into one of "
                       r"131,073 x 131,073 px"),
        "smallest": ([full(A.SmallestMaxSize(max_size=28)), full(A.CenterCrop(28, 28))],
                     r"albumentations.SmallestMaxSize: max_size/max_size_hw can turn an image of up to 8,192 x 8,192 "
                     r"px \(its shortest side at least 1 px\) into one of 229,376 x 229,376 px"),
        "divisor": ([{k: v for k, v in full(A.PadIfNeeded(None, None, pad_height_divisor=5000, pad_width_divisor=8)
                                               ).items() if k != "padding"}, full(A.CenterCrop(28, 28))],
                    r"albumentations.PadIfNeeded: min_height/min_width/pad_height_divisor/pad_width_divisor can turn "
                    r"an image .* into one of 10,000 x 8,192 px"),
    }
    paths = [with_pipeline(path, tmp_path / f"{name}.pipekit", *leaves) for name, (leaves, _) in attacks.items()]
    run = subprocess.run([sys.executable, "-c", _PREDICT_CAPPED, str(digits[0]), *map(str, paths)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, f"the child process died (exit code {run.returncode}): {run.stderr[-800:]}"
    lines = run.stdout.strip().splitlines()
    assert len(lines) == len(attacks), run.stdout + run.stderr
    for line, p, (name, (_, said)) in zip(lines, paths, attacks.items()):
        assert line.startswith(f"REFUSED {p}: record.json field 'dls': "), (name, line)
        assert "Albumentations: transform: Compose.transforms[0]: " in line or "transforms[1]" in line, (name, line)
        assert re.search(said, line), (name, line)


def test_sec_albumentations_paths_functions_and_unlisted_transforms_are_refused(albu_export, tmp_path):
    """Transforms that read the files they name (FDA, TextImage, HistogramMatching), run a function (Lambda) or
    take parameters pipekit does not list are refused before anything is built; nothing is opened."""
    _, path, _ = albu_export
    attacks = {
        "fda": ({"__class_fullname__": "FDA", "reference_images": ["/etc/hostname"], "p": 1.0},
                r"albumentations.FDA is not among the transforms a saved pipeline may hold"),
        "text": ({"__class_fullname__": "TextImage", "font_path": "/etc/hostname", "p": 1.0},
                 r"albumentations.TextImage is not among the transforms"),
        "histogram": ({"__class_fullname__": "HistogramMatching", "reference_images": ["/etc/hostname"]},
                      r"albumentations.HistogramMatching is not among the transforms"),
        "lambda": ({"__class_fullname__": "Lambda", "name": "x"}, r"albumentations.Lambda is not among"),
        "a parameter it does not list": (full(A.HorizontalFlip()) | {"read_fn": "cv2.imread"},
                                         r"albumentations.HorizontalFlip takes no parameters \['read_fn'\]"),
        "a registered function as a value": (full(A.HorizontalFlip()) | {"p": {"__ref__": "pipekit.vision.Resize"}},
                                             r"albumentations.HorizontalFlip: p=.* is not accepted; expected a number "
                                             r"in \[0, 1\]"),
        "a kernel": (full(A.MedianBlur()) | {"blur_limit": [3, 100_001]},
                     r"albumentations.MedianBlur: blur_limit=\[3, 100001\] is not accepted"),
        "boxes": (full(A.Compose([A.HorizontalFlip()], bbox_params=A.BboxParams("coco"))),
                  r"albumentations.Compose: bbox_params=.* is not accepted; expected None"),
    }
    from pipekit.learn import load_learner

    for name, (leaf, said) in attacks.items():
        bad = with_pipeline(path, tmp_path / "bad.pipekit", leaf)
        with pytest.raises(ExportError, match=rf"{re.escape(str(bad))}: record.json field 'dls': .*Albumentations: "
                                              rf"transform: Compose.transforms\[0\]: {said}"):
            load_learner(bad)
            pytest.fail(f"{name}: loaded")


def test_sec_albumentations_exports_still_round_trip(albu_export):
    from pipekit.learn import load_learner
    from pipekit.vision import Albumentations

    learn, path, digits = albu_export
    back = load_learner(path)
    kept = [t for t in back.dls.recipe.batch_tfms_ if isinstance(t, Albumentations)]
    assert len(kept) == 1 and kept[0].on_valid and [type(t).__name__ for t in kept[0].transform.transforms] == [
        "HorizontalFlip", "PadIfNeeded", "CenterCrop"]
    for digit in digits:
        assert torch.equal(back.predict(digit)[2], learn.predict(digit)[2]), digit
