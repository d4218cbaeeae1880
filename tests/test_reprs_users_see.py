"""What a user sees typing an object's name in a REPL or a notebook: a text classifier's token vocab cut to a line (and
still the list of tokens it was), a tokenized corpus, a learner's optimiser, a DataBlock's block classes, a mask as
printed and as a notebook displays it, a mistyped data set's name and the abstract Store. Real data: imdb_sample,
mnist_tiny, camvid_tiny, adult_sample.
"""

from __future__ import annotations

import io
import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

import pipekit.datasets as D
from pipekit.core.errors import UnknownNameError
from pipekit.data import CategoryBlock, DataBlock, GrandparentSplitter, get_image_files, parent_label
from pipekit.data.store import Store
from pipekit.learn import load_learner
from pipekit.learn.optim import SGD, Adam, OptimWrapper
from pipekit.tabular import TabularDataLoaders, tabular_learner
from pipekit.text import AWD_LSTM, Numericalize, TextDataLoaders, Tokenizer, text_classifier_learner
from pipekit.vision import ImageBlock, PILMask, Resize

SMALL = dict(emb_sz=16, n_hid=16, n_layers=1)


@pytest.fixture(scope="module")
def reviews() -> pd.DataFrame:
    df = pd.read_csv(D.path("imdb_sample") / "texts.csv")
    return pd.concat([df[~df.is_valid].head(120), df[df.is_valid].head(40)], ignore_index=True)


@pytest.fixture(scope="module")
def text_dls(reviews):
    return TextDataLoaders.from_df(
        reviews, text_col="text", label_col="label", valid_col="is_valid", bs=16, seed=42, cache_dir=False
    )


def test_a_text_classifiers_token_vocab_prints_in_a_line_and_stays_the_list_of_tokens(text_dls, reviews):
    tokens = text_dls.vocab[0]
    n = len(tokens)
    assert n > 500
    assert repr(tokens).startswith("['xxunk', 'xxpad', 'xxbos'") and repr(tokens).endswith(f"({n} tokens)")
    assert len(repr(tokens)) < 200 and str(tokens) == repr(tokens)
    shown = repr(text_dls.vocab)
    assert len(shown) < 300 and f"({n} tokens)" in shown and "['negative', 'positive']" in shown
    # a list of tokens, as before: indexed, sliced, iterated, equal to the plain list, in the order of the ids
    plain = list(tokens)
    assert isinstance(tokens, list) and tokens == plain and plain == tokens and tokens[:4] == plain[:4]
    assert [t for t in tokens][-1] == plain[-1] and tokens.index("xxbos") == 2 == Numericalize(plain).o2i[
        "xxbos"
    ]
    # pickled, and stored as the plain list by a record, it reads back as the same short vocab
    again = pickle.loads(pickle.dumps(tokens))
    assert again == plain and repr(again) == repr(tokens)
    num = text_dls.blocks[0].num
    loaded = Numericalize.from_record(num.to_record())
    assert loaded.vocab == plain and repr(loaded.vocab) == repr(tokens)
    # handed on as a vocabulary, as the book reuses a language model's
    some = pd.concat([reviews.iloc[:30], reviews.iloc[120:130]], ignore_index=True)
    reused = TextDataLoaders.from_df(
        some,
        text_col="text",
        label_col="label",
        valid_col="is_valid",
        text_vocab=tokens,
        bs=8,
        cache_dir=False,
    )
    assert reused.vocab[0] == plain and repr(reused.vocab[0]) == repr(tokens)


def test_an_exported_text_classifier_loads_its_token_vocab_short_and_equal(text_dls, tmp_path):
    learn = text_classifier_learner(text_dls, AWD_LSTM, config=SMALL, seq_len=16, max_len=64, lin_ftrs=[8])
    learn.export(tmp_path / "clf.pkl")
    loaded = load_learner(tmp_path / "clf.pkl", cpu=True)
    assert loaded.dls.vocab[0] == text_dls.vocab[0] and list(loaded.dls.vocab[0]) == list(text_dls.vocab[0])
    assert repr(loaded.dls.vocab[0]) == repr(text_dls.vocab[0]) and len(repr(loaded.dls.vocab)) < 300


def test_tokenized_texts_print_their_counts_and_first_tokens(reviews):
    texts = reviews.text.head(3).tolist()
    tt = Tokenizer()(texts)
    shown = repr(tt)
    n_tokens = sum(len(t) for t in tt)
    assert shown.startswith(f"TokenizedTexts(3 texts, {n_tokens} tokens; text 0: (#{len(tt[0])}) ['xxbos', ")
    assert len(shown) < 250 and " object at 0x" not in shown and str(tt) == shown
    assert repr(Tokenizer()(["Hi"])) == "TokenizedTexts(1 text, 3 tokens; text 0: ['xxbos', 'xxmaj', 'hi'])"


def test_a_learners_optimiser_shows_its_type_and_hyper_parameters():
    df = pd.read_csv(D.path("adult_sample") / "adult.csv").head(400)
    dls = TabularDataLoaders.from_df(df, y_names="salary", cat_names=["workclass"], cont_names=["age"], bs=64)
    learn = tabular_learner(dls, layers=[8], opt_func=Adam)
    learn.create_opt()
    shown = repr(learn.opt)
    assert shown.startswith("OptimWrapper(AdamW, 1 layer group: {'lr': ") and " object at 0x" not in shown
    assert "'mom': 0.9" in shown and "'wd': 0.01" in shown and str(learn.opt) == shown
    # several layer groups: one dict each when they differ, the frozen ones said
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    opt = OptimWrapper(model, SGD, splitter=lambda m: [list(m[0].parameters()), list(m[1].parameters())])
    assert (
        repr(opt) == "OptimWrapper(Optimizer(weight_decay, sgd_step), 2 layer groups: each {'lr': 0.001, "
        "'mom': 0.0, 'wd': 0.0})"
    )
    opt.set_hyper("lr", slice(1e-3, 1e-2))
    opt.freeze_to(1)
    assert repr(opt).startswith(
        "OptimWrapper(Optimizer(weight_decay, sgd_step), 2 layer groups, frozen_to=1: [{'lr': 0.001, "
    ) and "{'lr': 0.01, " in repr(opt)


def test_a_mistyped_data_set_name_says_the_closest_one_as_a_sentence():
    with pytest.raises(KeyError) as e:
        D.path("adult_sampel")
    assert isinstance(e.value, UnknownNameError)
    said = str(e.value)
    assert said.startswith(
        "unknown data set 'adult_sampel'; did you mean 'adult_sample'? The known data sets are ["
    )
    assert "'imdb_sample'" in said and said.endswith("(add one with register_dataset)")


def test_a_datablocks_repr_names_its_block_classes_and_evaluates():
    db = DataBlock(
        blocks=(ImageBlock, CategoryBlock),
        get_items=get_image_files,
        get_y=parent_label,
        splitter=GrandparentSplitter(),
        item_tfms=[Resize(32)],
    )
    shown = repr(db)
    assert shown.startswith("DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=get_image_files, ")
    assert "<class" not in shown
    again = eval(shown)  # noqa: S307 - the repr is the call that builds it
    # mnist_tiny's test folder is in neither split
    with pytest.warns(Warning, match="in neither the training nor the validation set"):
        dls = again.dataloaders(D.path("mnist_tiny"), bs=16)
    assert list(dls.vocab) == ["3", "7"] and repr(again) == shown
    assert repr(DataBlock(blocks=(ImageBlock(cls="L"), CategoryBlock))).startswith(
        "DataBlock(blocks=(ImageBlock(cls='L'), CategoryBlock)"
    )


def test_a_mask_prints_its_size_and_shows_in_a_notebook_in_its_class_colours():
    fn = sorted((D.path("camvid_tiny") / "labels").iterdir())[0]
    mask = PILMask.create(fn)
    assert str(mask) == repr(mask) == f"PILMask size={mask.shape[1]}x{mask.shape[0]}"
    png = mask._repr_png_()
    shown = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    assert shown.shape == (*mask.shape, 3)
    # one colour per class where the codes are: pixels of one code share a colour, codes 0 and the largest differ
    codes = np.asarray(mask)
    for c in np.unique(codes)[:5]:
        assert len(np.unique(shown[codes == c], axis=0)) == 1
    lo, hi = codes == codes.min(), codes == codes.max()
    assert not np.array_equal(shown[lo][0], shown[hi][0])


def test_the_abstract_store_has_a_repr_that_does_not_raise():
    assert repr(Store()) == "Store()" and str(Store()) == "Store()"
