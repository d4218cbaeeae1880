"""A loaded file is data: the chains of steps a file describes must not make pipekit read files, allocate without
bound or abort the process. Each attack edits a real export the way a tester did and must be refused at load with
an ExportError that names the file and the field; untouched exports still round-trip with identical predictions.

- Albumentations: a pipeline stored in an export accepted any transform albumentations lists with any parameters,
  so ``PadIfNeeded(min_height=60000, min_width=60000)`` (or Resize, LongestMaxSize, RandomScale, Affine with
  fit_output) made predict allocate without bound when the pipeline runs on validation batches, and
  ``FDA(reference_images=['/etc/hostname'])`` or ``TextImage(font_path=...)`` made pipekit read the files a model
  file names.
- HFTokenizer: a stored tokenizer's steps could multiply a text's length: 14 chained normalizers
  ``Replace(Regex("."), "aaaa")`` (a 1 KB file) abort the process when encoding "hello world"; chained
  pre-tokenizers, decoders and a post-processor template that repeats the text do the same, and a SentencePiece
  character map whose trie points outside itself panics the library on the first text.
"""
from __future__ import annotations

import base64
import json
import os
import re
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
import albumentations as A  # noqa: E402

import pipekit  # noqa: E402
import pipekit.datasets as D  # noqa: E402
from pipekit.core import ExportError  # noqa: E402
from test_sec_file_bombs import members, with_tokenizer_json, write_members  # noqa: E402


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


# ------------------------------------------------------------------------------------------------- HFTokenizer
@pytest.fixture(scope="module")
def hf_block_export(tmp_path_factory):
    """A word-level tokenizer trained on 200 imdb_sample reviews, the TextBlock fitted with it, saved."""
    import polars as pl
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    from pipekit.data import CategoryBlock, ColReader, ColSplitter, DataBlock
    from pipekit.text import HFTokenizer, TextBlock

    df = pl.read_csv(D.path("imdb_sample") / "texts.csv")
    df = pl.concat([df.filter(~pl.col("is_valid")).head(200), df.filter(pl.col("is_valid")).head(50)])
    tk = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tk.train_from_iterator(df.filter(~pl.col("is_valid"))["text"].to_list(),
                           trainers.WordLevelTrainer(vocab_size=2000, special_tokens=["[UNK]"], show_progress=False))
    db = DataBlock(blocks=(TextBlock.from_df("text", tok=HFTokenizer(tk), min_freq=1, cache_dir=False),
                           CategoryBlock), get_x=ColReader("text"), get_y=ColReader("label"),
                   splitter=ColSplitter("is_valid"))
    block = db.dataloaders(df, bs=32, seed=0, num_workers=0).blocks[0]
    return block, pipekit.save(block, tmp_path_factory.mktemp("hfchain") / "block.pipekit"), df


def charsmap(units: list[int], table: bytes) -> str:
    """A SentencePiece character map: the trie's size, its units, then the replacements."""
    trie = b"".join(struct.pack("<I", u) for u in units)
    return base64.b64encode(struct.pack("<I", len(trie)) + trie + table).decode()


def one_rule_charsmap(replacement: str) -> str:
    """A character map with one rule, 'a' -> ``replacement`` (a double-array trie as SentencePiece lays it out)."""
    units = [0] * 1024
    units[0] = 256 << 10  # the root's children start at 256
    units[256 ^ ord("a")] = (512 << 10) | (1 << 8) | ord("a")  # 'a', a leaf, its value at 512 further
    units[(256 ^ ord("a")) ^ 512] = 1 << 31  # value: offset 0 in the table
    return charsmap(units, replacement.encode() + b"\0")


_LOAD_AND_ENCODE_CAPPED = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))  # an allocation that gets past the checks fails here
import pipekit
from pipekit.core import ExportError
for path in sys.argv[1:]:
    try:
        block = pipekit.load(path)
    except ExportError as e:
        print("REFUSED", e, flush=True)
        continue
    except BaseException as e:
        print("CRASHED", path, type(e).__name__, flush=True)
        continue
    try:
        print("LOADED", path, len(block.tok.tokenize("hello world")), len(block.tok.decode(["hello", "world"])),
              flush=True)
    except BaseException as e:
        print("FAILED", path, type(e).__name__, str(e)[:100], flush=True)
"""


def test_sec_hf_chains_that_multiply_a_text_are_refused(hf_block_export, tmp_path):
    """The tester's 14 x Replace(Regex("."), "aaaa") and the same multiplication by the other steps the library
    has (an empty regex, Prepend, Metaspace's mark before each piece, ByteLevel, decoders, a template repeating the
    text), and a character map the library would index outside itself: each refused at load, naming the file, the
    component and the steps. Loaded and used in a child process with a 3 GiB cap, so the old behaviour (an abort
    while encoding "hello world") fails the test instead of taking the machine's memory."""
    _, path, _ = hf_block_export
    replace = {"type": "Replace", "pattern": {"Regex": "."}, "content": "aaaa"}
    attacks = {  # name: (component, its JSON, what the refusal says)
        "tester": ("normalizer", {"type": "Sequence", "normalizers": [replace] * 14},
                   r"its normalizer and pre_tokenizer and post_processor can make a text 268,435,456 times longer, "
                   r"over the 64 accepted: normalizer.normalizers\[0\] \(Replace\) x4"),
        "empty regex": ("normalizer", {"type": "Sequence", "normalizers": [
            {"type": "Replace", "pattern": {"Regex": "(?:)"}, "content": "a"}] * 30},
                        r"can make a text 1,073,741,824 times longer.*normalizers\[0\] \(Replace\) x2"),
        "prepend": ("normalizer", {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "aaa"}] * 8},
                    r"can make a text 65,536 times longer"),
        "metaspace": ("pre_tokenizer", {"type": "Sequence", "pretokenizers": [
            {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True}] * 30},
                      r"pre_tokenizer.pretokenizers\[0\] \(Metaspace\) x2"),
        "bytes": ("pre_tokenizer", {"type": "Sequence", "pretokenizers": [
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}] * 4},
                  r"can make a text 20,736 times longer.*\(ByteLevel\) x12"),
        "decoder": ("decoder", {"type": "Sequence", "decoders": [replace] * 12},
                    r"its decoder can make a text 16,777,216 times longer, over the 64 accepted"),
        "template": ("post_processor", {"type": "TemplateProcessing", "single": [
            {"Sequence": {"id": "A", "type_id": 0}}] * 100_000, "pair": [], "special_tokens": {}},
                     r"post_processor \(TemplateProcessing\) x1000"),
        "steps": ("normalizer", {"type": "Sequence", "normalizers": [{"type": "Lowercase"}] * 40},
                  r"normalizer.normalizers\[32\]: more than 32 steps"),
        "nesting": ("normalizer", json.loads('{"type": "Sequence", "normalizers": [' * 12 + '{"type": "NFC"}'
                                             + "]}" * 12), r"Sequences nested more than 8 deep"),
        "charsmap outside itself": ("normalizer", {"type": "Precompiled", "precompiled_charsmap": charsmap(
            [1000 << 10], b"b\0")}, r"normalizer \(Precompiled\): its precompiled_charsmap's trie points outside"),
        "charsmap rule": ("normalizer", {"type": "Precompiled", "precompiled_charsmap": one_rule_charsmap("b" * 100)},
                          r"can make a text 100 times longer.*normalizer \(Precompiled\) x100"),
    }
    paths = []
    for name, (kind, spec, _) in attacks.items():
        def edit(tokenizer, kind=kind, spec=spec):
            tokenizer[kind] = spec
            return json.dumps(tokenizer)
        paths.append(with_tokenizer_json(path, tmp_path / f"{name.replace(' ', '_')}.pipekit", edit))
    run = subprocess.run([sys.executable, "-c", _LOAD_AND_ENCODE_CAPPED, *map(str, paths)], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, f"the child process died (exit code {run.returncode}): {run.stderr[-800:]}"
    lines = run.stdout.strip().splitlines()
    assert len(lines) == len(attacks), run.stdout + run.stderr[-2000:]
    for line, p, (name, (_, _, said)) in zip(lines, paths, attacks.items()):
        assert line.startswith(f"REFUSED {p}: record.json: "), (name, line)
        assert "HFTokenizer: tokenizer: " in line and re.search(said, line), (name, line)


def test_sec_hf_what_the_library_cannot_read_is_refused(hf_block_export, tmp_path):
    """A character map that is not base64 makes the library panic while reading the JSON (a BaseException, which
    went past the ExportError a loader gives)."""
    _, path, _ = hf_block_export
    for kind, spec, said in (
            ("normalizer", {"type": "Precompiled", "precompiled_charsmap": "!!"},
             r"the stored tokenizer is not a tokenizer the tokenizers library can read \(Precompiled: "),
    ):
        def edit(tokenizer, kind=kind, spec=spec):
            tokenizer[kind] = spec
            return json.dumps(tokenizer)
        bad = with_tokenizer_json(path, tmp_path / "unknown.pipekit", edit)
        with pytest.raises(ExportError, match=rf"{re.escape(str(bad))}: record.json: .*HFTokenizer: {said}"):
            pipekit.load(bad)


def test_sec_hf_tokenizer_layouts_in_use_still_load(hf_block_export, tmp_path):
    """The steps of the tokenizers people publish (BERT, GPT-2, Llama, T5 with a SentencePiece character map) load,
    and the block saved with each encodes as before."""
    block, path, df = hf_block_export
    layouts = {
        "bert": {"normalizer": {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": True,
                                "strip_accents": None, "lowercase": True},
                 "pre_tokenizer": {"type": "BertPreTokenizer"},
                 "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True}},
        "gpt2": {"pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                                   "use_regex": True},
                 "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False,
                                    "use_regex": True},
                 "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}},
        "llama": {"normalizer": {"type": "Sequence", "normalizers": [
                      {"type": "Prepend", "prepend": "\u2581"},
                      {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]},
                  "decoder": {"type": "Sequence", "decoders": [
                      {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "}, {"type": "ByteFallback"},
                      {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}},
        "t5": {"normalizer": {"type": "Sequence", "normalizers": [
                   {"type": "Precompiled", "precompiled_charsmap": one_rule_charsmap("\u0635\u0644\u0649 \u0627\u0644\u0644\u0647 \u0639\u0644\u064a\u0647 \u0648\u0633\u0644\u0645")},
                   {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "}]},
               "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
                   {"type": "WhitespaceSplit"},
                   {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True}]},
               "decoder": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True}},
    }
    text = df["text"][0]
    for name, parts in layouts.items():
        good = with_tokenizer_json(path, tmp_path / f"{name}.pipekit", lambda spec, parts=parts: json.dumps(
            {**spec, **parts}))
        back = pipekit.load(good)
        assert len(back.tok.tokenize(text)) > 10, name
        again = pipekit.load(pipekit.save(back, tmp_path / f"{name}_again.pipekit"))
        assert again.tok.json() == back.tok.json()
        np.testing.assert_array_equal(again.encode_text(text), back.encode_text(text))
    # the untouched export encodes as the block it was saved from
    back = pipekit.load(path)
    for t in df["text"].to_list()[:10]:
        np.testing.assert_array_equal(back.encode_text(t), block.encode_text(t))


def test_sec_hf_growth_rules():
    """How much each kind of step can lengthen a text, and what a regex can match at the least."""
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers

    from pipekit.core import DataError
    from pipekit.text import HFTokenizer
    from pipekit.text.hf_tokenizer import text_growth
    from pipekit.text.regex_check import min_chars

    # a replacement counts by the fewest characters its pattern matches; a pattern that may match nothing inserts
    # its replacement anywhere (one more character per character)
    assert [min_chars(p) for p in (" {2,}", ".", "\\s+", "[^a-z]+", "\\p{L}+", "ab?c", "x{3}", "[]a]")] == [
        2, 1, 1, 1, 1, 2, 3, 1]
    assert [min_chars(p) for p in ("", "a*", "(a|b)", "\\bfoo", "a|b", "(?=a)", "\\x41")] == [0] * 7
    assert text_growth("normalizer", {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "})[0] == 1
    assert text_growth("normalizer", {"type": "Replace", "pattern": {"Regex": "."}, "content": "aaaa"})[0] == 4
    assert text_growth("normalizer", {"type": "Replace", "pattern": {"Regex": "a*"}, "content": "b"})[0] == 2
    assert text_growth("normalizer", {"type": "Replace", "pattern": {"String": "ab"}, "content": "abab"})[0] == 2
    # what a replacement writes counts at its longest normalised form: U+FDFA is 18 characters under NFKD
    assert text_growth("normalizer", {"type": "Replace", "pattern": {"String": "a"}, "content": "\ufdfa"})[0] == 18
    assert text_growth(
        "normalizer", {"type": "Sequence", "normalizers": [{"type": "NFKC"}, {"type": "Prepend", "prepend": "ab"}]}
    ) == (3.0, ["normalizer.normalizers[1] (Prepend) x3"])
    with pytest.raises(ValueError, match="normalizer has type 'Shout', not one of the normalizer steps pipekit knows"):
        text_growth("normalizer", {"type": "Shout"})
    # a tokenizer built in Python is checked the same way, so it is never saved to a file that would be refused
    tk = Tokenizer(models.WordLevel({"[UNK]": 0, "hello": 1}, unk_token="[UNK]"))
    tk.normalizer = normalizers.Sequence([normalizers.Replace(Regex("."), "aaaa")] * 4)
    with pytest.raises(DataError, match="its normalizer and pre_tokenizer and post_processor can make a text 256 times "
                                        "longer, over the 64 accepted"):
        HFTokenizer(tk)

    class Custom:
        def pre_tokenize(self, pretok):
            pass

    tk = Tokenizer(models.WordLevel({"[UNK]": 0, "hello": 1}, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.PreTokenizer.custom(Custom())
    with pytest.raises(DataError, match="HFTokenizer: tokenizer: pre_tokenizer: .*Custom PreTokenizer cannot be "
                                        "serialized"):
        HFTokenizer(tk)
