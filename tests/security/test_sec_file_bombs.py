"""A loaded file is data: a few edited numbers in it must not crash the process or size an allocation without
bound. Each attack edits a real export of a tiny model trained on a real data set the way a tester did, and
must be refused at load with an ExportError that names the file and the field; untouched exports still
round-trip with identical predictions.

- GBM: the LightGBM model text's header (num_class, num_tree_per_iteration, objective) sized LightGBM's output
  buffers, so an edited header crashed ``predict`` (SIGSEGV, a double free) or asked for hundreds of GB.
- HFTokenizer: the stored tokenizer JSON gave a token id of 2**32-1 (a list of that many entries was allocated at
  load), padded every text to 10**8 tokens (the library aborts the process), and a record could name a path for
  pipekit to open instead of holding the JSON.
- Vision: an exported learner's Resize size (and every image size a file sets: CropPad, RandomResizedCrop, the
  batch augmentation's output) had no upper bound, so ``"size": 60000`` made ``predict`` allocate 60000x60000.
"""
from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from file_edits import component_records

import pipekit
import pipekit.datasets as D
from pipekit.core import ExportError


def members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as z:
        return {n: z.read(n) for n in z.namelist()}


def write_members(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for n, b in files.items():
            z.writestr(n, b)
    return path


def with_array(files: dict[str, bytes], key: str, value: np.ndarray) -> dict[str, bytes]:
    arrays = dict(np.load(io.BytesIO(files["arrays.npz"]), allow_pickle=False))
    arrays[key] = value
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return {**files, "arrays.npz": buf.getvalue()}


def as_bytes(text: str) -> np.ndarray:
    return np.frombuffer(text.encode(), dtype=np.uint8).copy()


# ------------------------------------------------------------------------------------------------- GBM
@pytest.fixture(scope="module")
def gbm_export(tmp_path_factory):
    """A 10-round LightGBM classifier on 2,000 adult rows (workclass as a category, age), its export, the text
    LightGBM wrote and the processed validation rows."""
    from pipekit.backends import GBM
    from pipekit.data import RandomSplitter
    from pipekit.tabular import Categorify, FillMissing, Normalize, Tabular

    adult = pl.read_csv(D.path("adult_sample") / "adult.csv").head(2000)
    tab = Tabular(adult, procs=[Categorify, FillMissing, Normalize], cat_names=["workclass"], cont_names=["age"],
                  y_names="salary", splits=RandomSplitter(valid_pct=0.2, seed=42))
    model = GBM("classification", n_estimators=10, n_jobs=1).fit(tab.train, tab.valid)
    path = pipekit.save(model, tmp_path_factory.mktemp("gbm") / "gbm.pipekit")
    files = members(path)
    key = json.loads(files["record.json"])["state"]["booster_"]["__array__"]
    text = np.load(io.BytesIO(files["arrays.npz"]))[key].tobytes().decode()
    return model, path, files, key, text, tab.valid


_PREDICT_EACH = """
import sys
import numpy as np, polars as pl, pipekit
from pipekit.core import ExportError
rows = pl.DataFrame({"workclass": np.arange(200) % 9, "age": np.linspace(-2, 3, 200)})
for path in sys.argv[1:]:
    try:
        model = pipekit.load(path)
    except ExportError as e:
        print("REFUSED", e, flush=True)
        continue
    print("LOADED", path, model.predict_proba(rows).shape, flush=True)
"""


def test_sec_gbm_header_edits_are_refused_before_lightgbm_predicts(gbm_export, tmp_path):
    """The tester's three edits (a multiclass objective, 5 trees per round, 100 million classes) on a binary
    classifier, and a multiclass header on it: loaded and predicted in a child process, so a crash shows as its
    exit code; each must be refused naming the booster_ field and what in the header disagrees."""
    _, _, files, key, text, _ = gbm_export
    edits = {
        "objective_multiclass": ("objective=binary sigmoid:1", "objective=multiclass num_class:1000000",
                                 r"objective='multiclass num_class:1000000' must say num_class:2"),
        "trees_per_iter_5": ("num_tree_per_iteration=1", "num_tree_per_iteration=5", r"num_tree_per_iteration=5"),
        "num_class_1e8": ("num_class=1", "num_class=100000000", r"num_class=100000000"),
        "a_multiclass_header": ("num_class=1\nnum_tree_per_iteration=1", "num_class=2\nnum_tree_per_iteration=2",
                                r"num_class=2, num_tree_per_iteration=2; a 2-class classifier with objective binary"),
    }
    paths = []
    for name, (old, new, _) in edits.items():
        assert old in text
        paths.append(write_members(tmp_path / f"{name}.pipekit", with_array(files, key, as_bytes(text.replace(old, new, 1)))))
    run = subprocess.run([sys.executable, "-c", _PREDICT_EACH, *map(str, paths)], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, f"the child process died (exit code {run.returncode}): {run.stderr[-800:]}"
    lines = run.stdout.strip().splitlines()
    assert len(lines) == len(edits), run.stdout + run.stderr
    for line, path, (name, (_, _, said)) in zip(lines, paths, edits.items()):
        assert line.startswith(f"REFUSED {path}: record.json: GBM: booster_: "), (name, line)
        assert re.search(said, line), (name, line)


def test_sec_gbm_tree_fields_lightgbm_would_read_otherwise_are_refused(gbm_export, tmp_path):
    """Python's checks and LightGBM's reader must see the same numbers: LightGBM reads at most 22 lines of a
    tree (so a repeated field after them is checked but not read), stops a number at a '_' Python skips, and
    takes a chain of leaves as deep as the file makes it (its TreeSHAP recurses once per level)."""
    _, _, files, key, text, _ = gbm_export
    text = re.sub(r"tree_sizes=[^\n]*\n", "", text)
    good = re.search(r"left_child=([^\n]*)\n", text)
    end = text.index("\n\n", good.end())
    shadowed = (text[:good.start()] + "left_child=-1000000" + good.group(1)[good.group(1).index(" "):] + "\n"
                + text[good.end():end] + "\n" + "shrinkage=1\n" * 4 + f"left_child={good.group(1)}" + text[end:])
    m = 2100  # a chain of internal nodes, each with one leaf
    chain = "\n".join([
        "Tree=0", f"num_leaves={m + 1}", "num_cat=0", "split_feature=" + " ".join(["1"] * m),
        "split_gain=" + " ".join(["1"] * m), "threshold=" + " ".join(f"{i / m:.4f}" for i in range(m)),
        "decision_type=" + " ".join(["2"] * m), "left_child=" + " ".join(str(~i) for i in range(m)),
        "right_child=" + " ".join(str(i + 1) for i in range(m - 1)) + f" {~m}",
        "leaf_value=" + " ".join(["0.1"] * (m + 1)), "leaf_count=" + " ".join(["1"] * (m + 1)),
        "internal_count=" + " ".join(str(m + 1 - i) for i in range(m)), "is_linear=0", "shrinkage=1"])
    head, rest = text.split("\nTree=0\n", 1)
    deep = head + "\n" + chain + "\n\n" + rest[rest.index("\nTree=1\n") + 1:]
    attacks = {
        "a field LightGBM does not read": (shadowed, r"LightGBM tree 0: the line 'shrinkage=1' is not a tree field"),
        "a digit separator": (text.replace("num_leaves=31", "num_leaves=3_1", 1), r"LightGBM tree 0: num_leaves"),
        "a carriage return": (text.replace("num_class=1\n", "num_class=1\r\n", 1), r"the character '\\r'"),
        "a chain of leaves": (deep, r"LightGBM tree 0: its leaves are 2100 levels deep, over the 2048"),
    }
    for name, (bad, said) in attacks.items():
        path = write_members(tmp_path / f"{name.replace(' ', '_')}.pipekit", with_array(files, key, as_bytes(bad)))
        with pytest.raises(ExportError, match=rf"{re.escape(str(path))}: record.json: GBM: booster_: .*{said}"):
            pipekit.load(path)
            pytest.fail(f"{name}: loaded")


def test_sec_gbm_exports_still_round_trip(gbm_export, tmp_path):
    from pipekit.backends import GBM

    model, path, _, _, _, valid = gbm_export
    back = pipekit.load(path)
    np.testing.assert_array_equal(back.predict_proba(valid), model.predict_proba(valid))
    np.testing.assert_array_equal(back.contributions(valid).values, model.contributions(valid).values)
    # a loaded model exports and loads again as itself
    again = pipekit.load(pipekit.save(back, tmp_path / "again.pipekit"))
    np.testing.assert_array_equal(again.predict_proba(valid), model.predict_proba(valid))
    # parameters whose values are lists of lists are written with brackets inside the brackets of their line
    constrained = GBM("classification", n_estimators=10, n_jobs=1,
                      params={"interaction_constraints": [[0], [1]], "monotone_constraints": [0, 1]})
    constrained.fit(valid, valid)
    back = pipekit.load(pipekit.save(constrained, tmp_path / "constrained.pipekit"))
    np.testing.assert_array_equal(back.predict_proba(valid), constrained.predict_proba(valid))
    assert back.booster_.params["interaction_constraints"] == [[0], [1]]


# ------------------------------------------------------------------------------------------- HFTokenizer
@pytest.fixture(scope="module")
def text_block_export(tmp_path_factory):
    """A word-level tokenizer trained on 200 imdb_sample reviews, the TextBlock fitted with it on 250 reviews, and
    that block saved (its recipe and its fitted transforms each hold the tokenizer's JSON)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    from pipekit.data import CategoryBlock, ColReader, ColSplitter, DataBlock
    from pipekit.text import HFTokenizer, TextBlock

    df = pl.read_csv(D.path("imdb_sample") / "texts.csv")
    df = pl.concat([df.filter(~pl.col("is_valid")).head(200), df.filter(pl.col("is_valid")).head(50)])
    tk = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tk.train_from_iterator(df.filter(~pl.col("is_valid"))["text"].to_list(),
                           trainers.WordLevelTrainer(vocab_size=2000, special_tokens=["[UNK]"], show_progress=False))
    folder = tmp_path_factory.mktemp("hf")
    tk.save(str(folder / "tokenizer.json"))
    db = DataBlock(blocks=(TextBlock.from_df("text", tok=HFTokenizer(folder / "tokenizer.json"), min_freq=1,
                                             cache_dir=False), CategoryBlock),
                   get_x=ColReader("text"), get_y=ColReader("label"), splitter=ColSplitter("is_valid"))
    block = db.dataloaders(df, bs=32, seed=0, num_workers=0).blocks[0]
    path = pipekit.save(block, folder / "block.pipekit")
    return block, path, folder / "tokenizer.json", df


def with_tokenizer_json(path: Path, out: Path, edit) -> Path:
    """``path`` with ``edit`` applied to the tokenizer JSON (a dict) every HFTokenizer record of it stores."""
    files = members(path)
    record = json.loads(files["record.json"])
    keys = [r["params"]["tokenizer"]["__array__"] for r in component_records(record, "pipekit.text.HFTokenizer")]
    assert len(keys) == 2  # the recipe's block and the fitted one
    arrays = np.load(io.BytesIO(files["arrays.npz"]))
    for key in keys:
        spec = json.loads(arrays[key].tobytes())
        files = with_array(files, key, as_bytes(edit(spec)))
    return write_members(out, files)


_LOAD_EACH_CAPPED = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))  # an allocation that gets past the checks fails here
import pipekit
from pipekit.core import ExportError
for path in sys.argv[1:]:
    try:
        pipekit.load(path)
        print("LOADED", path, flush=True)
    except ExportError as e:
        print("REFUSED", e, flush=True)
    except MemoryError:
        print("MEMORY", path, flush=True)
"""


def test_sec_hf_token_ids_far_past_the_vocabulary_are_refused(text_block_export, tmp_path):
    """One token's id set to 2**32-1 (or 300 million): pipekit kept a list as long as the highest id, so a 1 KB
    edit allocated tens of GB at load. Loaded in a child process with a 3 GiB cap, so the old behaviour fails the
    test with a MemoryError instead of taking the machine's memory."""
    _, path, _, _ = text_block_export
    paths = []
    for top in (2**32 - 1, 300_000_000):
        def edit(spec, top=top):
            spec["model"]["vocab"]["the"] = top
            return json.dumps(spec)
        paths.append(with_tokenizer_json(path, tmp_path / f"id_{top}.pipekit", edit))
    run = subprocess.run([sys.executable, "-c", _LOAD_EACH_CAPPED, *map(str, paths)], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr[-800:]
    lines = run.stdout.strip().splitlines()
    assert len(lines) == 2, run.stdout + run.stderr
    for line, p, top in zip(lines, paths, (2**32 - 1, 300_000_000)):
        assert line.startswith(f"REFUSED {p}: record.json: "), line
        assert re.search(rf"HFTokenizer: tokenizer: token 'the' has id {top:,}, but the tokenizer has [\d,]+ tokens; "
                         r"ids must be below", line), line


def test_sec_hf_padding_and_stride_that_size_every_encoding_are_refused(text_block_export, tmp_path):
    """The library pads (or cuts into overlapping pieces) every text as the stored JSON says: padding to 10**8
    tokens aborts the process on the first text encoded. Refused at load, naming the setting."""
    _, path, _, _ = text_block_export

    def padding(spec):
        spec["padding"] = {"strategy": {"Fixed": 10**8}, "direction": "Right", "pad_to_multiple_of": None,
                           "pad_id": 0, "pad_type_id": 0, "pad_token": "[UNK]"}
        return json.dumps(spec)

    def stride(spec):
        spec["truncation"] = {"direction": "Right", "max_length": 100_000, "strategy": "LongestFirst", "stride": 99_999}
        return json.dumps(spec)

    for name, edit, said in (("padding", padding, r"its padding has length=100,000,000, over the 8,192 tokens"),
                             ("stride", stride, r"its truncation has stride=99,999")):
        bad = with_tokenizer_json(path, tmp_path / f"{name}.pipekit", edit)
        with pytest.raises(ExportError, match=rf"{re.escape(str(bad))}: record.json: .*HFTokenizer: tokenizer: {said}"):
            pipekit.load(bad)


def test_sec_hf_tokenizer_json_size_is_bounded(text_block_export, tmp_path):
    from pipekit.text.hf_tokenizer import MAX_JSON_BYTES

    _, path, _, _ = text_block_export
    bad = with_tokenizer_json(path, tmp_path / "large.pipekit", lambda spec: json.dumps(spec) + " " * MAX_JSON_BYTES)
    with pytest.raises(ExportError, match=rf"{re.escape(str(bad))}: record.json: .*HFTokenizer: tokenizer: the stored "
                                          rf"tokenizer is [\d,]+ bytes of JSON, over the {MAX_JSON_BYTES:,} accepted"):
        pipekit.load(bad)


def test_sec_a_saved_hf_tokenizer_never_opens_a_path_the_file_names(text_block_export, tmp_path):
    """A record whose tokenizer is a path (a valid tokenizer.json on this machine, or any file) instead of the JSON
    itself is refused without reading it; the file's own JSON is the only source."""
    _, path, tokenizer_json, _ = text_block_export
    for target in (tokenizer_json, Path("/etc/hostname")):
        files = members(path)
        record = json.loads(files["record.json"])
        for r in component_records(record, "pipekit.text.HFTokenizer"):
            r["params"]["tokenizer"] = str(target)
        bad = write_members(tmp_path / "path.pipekit", {**files, "record.json": json.dumps(record).encode()})
        with pytest.raises(ExportError, match=rf"{re.escape(str(bad))}: record.json: .*HFTokenizer: tokenizer: a saved "
                                              rf"HFTokenizer holds its tokenizer as JSON data, not the path "
                                              rf"'{re.escape(str(target))}'"):
            pipekit.load(bad)


def test_sec_hf_exports_still_round_trip(text_block_export):
    block, path, tokenizer_json, df = text_block_export
    back = pipekit.load(path)
    assert back.tok.json() == block.tok.json() and back.vocab == block.vocab
    for text in df["text"].to_list()[:20]:
        np.testing.assert_array_equal(back.encode_text(text), block.encode_text(text))
    # a tokenizer given by its path still reads it (on first use), as a user's code gives it
    from pipekit.text import HFTokenizer

    tok = HFTokenizer(str(tokenizer_json))
    assert tok.tokenize(df["text"][0]) == block.tok.tokenize(df["text"][0])


# ------------------------------------------------------------------------------------------------ vision
@pytest.fixture(scope="module")
def vision_exports(tmp_path_factory, one_torch_thread):
    """simple_cnn trained one epoch on a third of mnist_tiny, exported with each image item transform (and the
    batch augmentation with its own output size); the exports and a test digit."""
    from pipekit.data import CategoryBlock, DataBlock, GrandparentSplitter, get_image_files, parent_label
    from pipekit.learn import Learner, simple_cnn
    from pipekit.vision import CropPad, ImageBlock, RandomResizedCrop, Resize, aug_transforms

    folder = tmp_path_factory.mktemp("vision")
    recipes = {"resize": ([Resize(28)], []), "croppad": ([CropPad(28)], aug_transforms(size=24, max_rotate=5)),
               "rrc": ([RandomResizedCrop(28, min_scale=0.5)], [])}
    out = {}
    for name, (item_tfms, batch_tfms) in recipes.items():
        dls = DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock), get_items=lambda p: get_image_files(p)[::3],
                        get_y=parent_label, splitter=GrandparentSplitter(), item_tfms=item_tfms,
                        batch_tfms=batch_tfms).dataloaders(D.path("mnist_tiny"), bs=32, seed=0, num_workers=0)
        learn = Learner(dls, simple_cnn(n_in=1, n_out=dls.c))
        learn.fit(1)
        out[name] = (learn, learn.export(folder / f"{name}.pipekit"))
    return out, sorted((D.path("mnist_tiny") / "test").glob("*.png"))[0]


def test_sec_image_sizes_in_an_exported_learner_are_bounded(vision_exports, tmp_path):
    from pipekit.learn import load_learner

    exports, _ = vision_exports
    attacks = {  # export, what the record says, what the edit makes it say, the refusal
        "the tester's Resize": ("resize", '"size": 28', '"size": 60000', r"Resize: size=60000"),
        "a Resize pair": ("resize", '"size": 28', '"size": [28, 200000]', r"Resize: size=\[28, 200000\]"),
        "CropPad": ("croppad", '"size": 28', '"size": 30000', r"CropPad: size=30000"),
        "the batch augmentation": ("croppad", '"size": 24', '"size": 100000', r"AugmentSettings: size=100000"),
        "RandomResizedCrop": ("rrc", '"size": 28', '"size": 8193', r"size=8193"),
    }
    for what, (name, old, new, said) in attacks.items():
        files = members(exports[name][1])
        record = files["record.json"].decode()
        assert old in record, (what, old)
        bad = write_members(tmp_path / f"{name}.pipekit", {**files, "record.json": record.replace(old, new).encode()})
        with pytest.raises(ExportError, match=rf"{re.escape(str(bad))}: record.json field 'dls': .*{said} is not "
                                              r"accepted; expected .*at most 8192 per side"):
            load_learner(bad)
            pytest.fail(f"{what}: loaded")


def test_sec_vision_exports_still_round_trip(vision_exports):
    import torch

    from pipekit.learn import load_learner
    from pipekit.vision import Resize

    exports, digit = vision_exports
    for name, (learn, path) in exports.items():
        back = load_learner(path)
        assert torch.equal(back.predict(digit)[2], learn.predict(digit)[2]), name
    # the bound is a side of 8192 pixels: that size is still accepted, one more is not
    assert Resize(8192).size == 8192 and Resize((8192, 64)).size == (8192, 64)
    with pytest.raises(ValueError, match=r"Resize: size=8193 is not accepted"):
        Resize(8193)
