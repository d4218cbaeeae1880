"""Chapter 10's fastai spellings on imdb_sample: TextDataLoaders' tok_tfm/backwards/tok_text_col/splitter, the
Tokenizer's rules=None, TextBlock.from_df's fastai arguments, LMLearner.predict in fastai's order with min_p,
only_last_word and decoder, Numericalize(vocab) and o2i, tokenize_df/tokenize_texts/Tokenizer.from_df.

Values marked "fastai 2.8.12" were measured with fastai 2.8.12 on the same rows."""
from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd
import polars as pl
import pytest
import torch

import pipekit.datasets as D
from pipekit.core.errors import DataError, ParameterError
from pipekit.data import ColReader, DataBlock, RandomSplitter
from pipekit.text import (AWD_LSTM, SPECIAL_TOKENS, Numericalize, TextBlock, TextDataLoaders, Tokenizer, WordTokenizer,
                          defaults, fix_html, language_model_learner, replace_all_caps)

TINY = dict(emb_sz=16, n_hid=16, n_layers=1)

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # the test machine is shared: one thread avoids stalls


@pytest.fixture(scope="module")
def imdb_pd() -> pd.DataFrame:
    return pd.read_csv(D.path("imdb_sample") / "texts.csv")


@pytest.fixture(scope="module")
def small(imdb_pd) -> pd.DataFrame:
    """64 training and 16 validation reviews, as a pandas frame (the book's)."""
    return pd.concat([imdb_pd[~imdb_pd.is_valid].head(64), imdb_pd[imdb_pd.is_valid].head(16)]).reset_index(drop=True)


@pytest.fixture(scope="module")
def imdb_folder(imdb_pd, tmp_path_factory) -> Path:
    """80 training and 20 validation reviews as the book's IMDB folders, train/ and test/, each with neg/ and pos/."""
    root = tmp_path_factory.mktemp("imdb")
    rows = pd.concat([imdb_pd[~imdb_pd.is_valid].head(80), imdb_pd[imdb_pd.is_valid].head(20)])
    for i, (label, text, valid) in enumerate(rows[["label", "text", "is_valid"]].itertuples(index=False)):
        folder = root / ("test" if valid else "train") / ("pos" if label == "positive" else "neg")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i}.txt").write_text(text, encoding="utf-8")
    return root


def sizes(dls) -> tuple[int, int]:
    return len(dls.train_ds), len(dls.valid_ds)


# ------------------------------------------------------------------ 1. TextDataLoaders: fastai's arguments
def test_from_df_takes_tok_tfm_backwards_and_tok_text_col(small):
    kw = dict(text_col="text", label_col="label", valid_col="is_valid", bs=16, seed=0, cache_dir=False)
    dls = TextDataLoaders.from_df(small, tok_tfm=WordTokenizer(), tok_text_col="text", backwards=False, **kw)
    assert sizes(dls) == (64, 16)  # fastai 2.8.12: (64, 16), batches of 16
    assert dls.one_batch()[0].shape[0] == 16
    # tok_tfm is the tokenizer, as tok= is: WordTokenizer() with the rules on top is the default tokenizer
    assert dls.blocks[0].vocab == TextDataLoaders.from_df(small, **kw).blocks[0].vocab
    assert TextDataLoaders.from_df(small, tok_tfm=Tokenizer(rules=False), **kw).blocks[0].vocab != dls.blocks[0].vocab
    with pytest.raises(ParameterError, match="tok and tok_tfm are the same argument"):
        TextDataLoaders.from_df(small, tok=Tokenizer(), tok_tfm=WordTokenizer(), **kw)
    with pytest.raises(ParameterError, match=r"TextDataLoaders.from_df: backwards=True .* not supported"):
        TextDataLoaders.from_df(small, backwards=True, **kw)
    with pytest.raises(ParameterError, match="TextDataLoaders.from_df: tok_text_col='tokens' is not supported"):
        TextDataLoaders.from_df(small, tok_text_col="tokens", **kw)


def test_factories_refuse_an_unknown_keyword_in_their_own_name(small, tmp_path, imdb_folder):
    kw = dict(text_col="text", label_col="label", valid_col="is_valid", cache_dir=False)
    with pytest.raises(ParameterError, match=r"TextDataLoaders.from_df: unknown argument\(s\) \['tok_tfn'\]; did you "
                                             r"mean 'tok_tfm'\?") as e:
        TextDataLoaders.from_df(small, tok_tfn=WordTokenizer(), **kw)
    assert "DataBlock.dataloaders()" not in str(e.value) and "'val_bs'" in str(e.value)  # the loaders' too
    small.to_csv(tmp_path / "texts.csv", index=False)
    with pytest.raises(ParameterError, match=r"TextDataLoaders.from_csv: unknown argument\(s\) \['sed'\]; did you "
                                             r"mean 'seed'\?"):
        TextDataLoaders.from_csv(tmp_path, "texts.csv", sed=0, **kw)
    with pytest.raises(ParameterError, match=r"TextDataLoaders.from_folder: unknown argument\(s\) \['spliter'\]; did "
                                             r"you mean 'splitter'\?"):
        TextDataLoaders.from_folder(imdb_folder, valid="test", spliter=RandomSplitter(0.2))


def test_from_folder_takes_tok_tfm_and_a_splitter(imdb_folder):
    kw = dict(bs=16, seed=0, cache_dir=False)
    dls = TextDataLoaders.from_folder(imdb_folder, valid="test", tok_tfm=WordTokenizer(), backwards=False, **kw)
    assert sizes(dls) == (80, 20) and dls.vocab[1] == ["neg", "pos"]  # fastai 2.8.12: (80, 20)
    # the splitter given replaces the folders' split, over the same files (those in train/ and test/)
    split = TextDataLoaders.from_folder(imdb_folder, valid="test", splitter=RandomSplitter(0.25, seed=0), **kw)
    assert sizes(split) == (75, 25)  # fastai 2.8.12: (75, 25), and (75, 25) with is_lm=True
    lm = TextDataLoaders.from_folder(imdb_folder, valid="test", splitter=RandomSplitter(0.25, seed=0), is_lm=True,
                                     **kw)
    assert sizes(lm) == (75, 25)
    # a folder with neither split folder: every text file under it, split by the splitter
    train = TextDataLoaders.from_folder(imdb_folder / "train", splitter=RandomSplitter(0.2, seed=1), **kw)
    assert sizes(train) == (64, 16) and train.vocab[1] == ["neg", "pos"]
    with pytest.raises(ParameterError, match=r"TextDataLoaders.from_folder: backwards=True .* not supported"):
        TextDataLoaders.from_folder(imdb_folder, valid="test", backwards=True, **kw)


# ------------------------------------------------------------------ 2. the Tokenizer's rules, TextBlock.from_df
def test_tokenizer_takes_rules_none_and_the_books_list():
    text = "Hello WORLD, it's sooo GOOD fun!!!"
    # fastai 2.8.12, Tokenizer(WordTokenizer(), rules=None) and rules=defaults.text_proc_rules:
    fastai = ["xxbos", "xxmaj", "hello", "xxup", "world", ",", "it", "'s", "s", "xxrep", "3", "o", "xxup", "good",
              "fun", "xxrep", "3", "!"]
    assert Tokenizer(WordTokenizer(), rules=None)(text) == fastai
    assert Tokenizer(WordTokenizer(), rules=defaults.text_proc_rules)(text) == fastai
    assert Tokenizer(rules=None).rules is True and Tokenizer(rules=None).clone().rules is True
    with pytest.raises(ParameterError, match=r"rules=\['fix_html', 'replace_all_caps'\] is not accepted: pipekit "
                                             r"applies the book's rules .* as one fixed set.*rules=False for none"):
        Tokenizer(WordTokenizer(), rules=[fix_html, replace_all_caps])
    with pytest.raises(ParameterError, match=r"rules=\[\] .*rules=False, add_bos=False"):
        Tokenizer(WordTokenizer(), rules=[])


def test_textblock_from_df_takes_fastais_arguments(small):
    block = TextBlock.from_df("text", None, True, 20, False, 2, 500)  # fastai's order
    assert (block.is_lm, block.seq_len, block.min_freq, block.max_vocab) == (True, 20, 2, 500)
    block = TextBlock.from_df("text", rules=None, mark_fields=None, n_workers=4, tok_text_col="text", cache_dir=False)
    assert block.tok.rules is True
    two = TextBlock.from_df(["label", "text"], mark_fields=True)  # several columns are marked, as fastai's default
    assert two.text_cols == ["label", "text"]
    bare = TextBlock.from_df("text", rules=False, min_freq=1, cache_dir=False)
    dls = DataBlock(blocks=bare, get_x=ColReader("text"), splitter=RandomSplitter(0.2, seed=0)).dataloaders(
        small, bs=8, seq_len=20, seed=0)
    assert "xxmaj" not in dls.blocks[0].vocab[len(SPECIAL_TOKENS):] and "The" in dls.blocks[0].vocab
    with pytest.raises(ParameterError, match="mark_fields=True with one text column is not supported"):
        TextBlock.from_df("text", mark_fields=True)
    with pytest.raises(ParameterError, match=r"mark_fields=False with several text columns \['label', 'text'\]"):
        TextBlock.from_df(["label", "text"], mark_fields=False)
    with pytest.raises(ParameterError, match="TextBlock.from_df: n_workers=-1 is not accepted"):
        TextBlock.from_df("text", n_workers=-1)
    with pytest.raises(ParameterError, match=r"TextBlock.from_df: rules=\['fix_html'\] is not accepted"):
        TextBlock.from_df("text", rules=[fix_html])
    with pytest.raises(ParameterError, match=r"TextBlock.from_df: backwards=True .* not supported"):
        TextBlock.from_df("text", backwards=True)
    with pytest.raises(ParameterError, match=r"TextBlock.from_df: unknown argument\(s\) \['max_vocb'\]; did you mean "
                                             r"'max_vocab'\?"):
        TextBlock.from_df("text", max_vocb=100)


# ------------------------------------------------------------------ 3. LMLearner.predict in fastai's order
@pytest.fixture(scope="module")
def lm(small):
    dls = TextDataLoaders.from_df(small, text_col="text", is_lm=True, valid_col="is_valid", bs=8, seq_len=20, seed=0,
                                  cache_dir=False)
    torch.manual_seed(0)
    return language_model_learner(dls, AWD_LSTM, config=TINY, pretrained=False)


def _next_probs(lm, ids: list[int]) -> torch.Tensor:
    """The model's probabilities for the token after ``ids``, its state cleared first."""
    lm.model.eval()
    lm.encoder.reset()
    with torch.no_grad():
        return torch.softmax(lm.model(torch.tensor([ids]))[0][0, -1].float(), -1)


def test_lm_predict_takes_fastais_positional_order(lm):
    prompt = "I liked this movie because"
    # fastai's (text, n_words, no_unk, temperature): the sample at temperature 0.5, as by name
    assert lm.predict(prompt, 5, True, 0.5, seed=3) == lm.predict(prompt, n_words=5, temperature=0.5, seed=3)
    # the fourth argument is the temperature: near 0 the same words whatever the seed, at 1 a sample of each
    assert len({lm.predict(prompt, 5, True, 1e-6, seed=s) for s in range(4)}) == 1
    assert len({lm.predict(prompt, 5, True, 1.0, seed=s) for s in range(4)}) > 1
    # the old order (temperature third) is refused, not read as no_unk
    with pytest.raises(ParameterError, match=r"no_unk=0.75 is not accepted; expected True or False \(the third "
                                             r"argument, as in fastai; give temperature by name\)"):
        lm.predict(prompt, 5, 0.75)
    # no_bar is taken; decoder gets the tokens (no xxbos), joined with spaces as fastai joins them
    assert lm.predict(prompt, 4, no_bar=True, seed=1) == lm.predict(prompt, 4, seed=1)
    raw = lm.predict(prompt, 4, decoder=lambda toks: toks, seed=1).split(" ")
    assert raw[:5] == ["i", "liked", "this", "movie", "because"] and len(raw) == 9  # fastai 2.8.12's form


def test_lm_predict_min_p_and_only_last_word(lm):
    block = lm.dls.blocks[0]
    prompt = "the film was"
    ids = block.encode_text(prompt).tolist()
    probs = _next_probs(lm, ids)
    probs[[block.vocab.index(t) for t in ("xxunk", "xxpad", "xxbos", "xxfake")]] = 0
    top = int(probs.argmax())
    # min_p at the top token's probability leaves that token only: every seed samples it
    picks = {lm.predict(prompt, 1, min_p=float(probs[top]), decoder=lambda t: t, seed=s).split(" ")[-1]
             for s in range(5)}
    assert picks == {block.vocab[top]}
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        lm.predict(prompt, 2, min_p=1.0, seed=0)  # no token reaches it: warned once, none left out
    assert sum("min_p=1.0" in str(x.message) for x in w) == 1
    # only_last_word: each word after the first from the word before it alone (fastai's), here sampled greedily
    out = lm.predict(prompt, 3, temperature=1e-6, only_last_word=True, decoder=lambda t: t, seed=0).split(" ")
    vocab = block.vocab
    first, second, third = (vocab.index(t) for t in out[-3:])
    banned = [vocab.index(t) for t in ("xxunk", "xxpad", "xxbos", "xxfake")]

    def greedy(ids: list[int]) -> int:
        p = _next_probs(lm, ids)
        p[banned] = 0
        return int(p.argmax())

    assert first == greedy(ids) and second == greedy([first]) and third == greedy([second])


# ------------------------------------------------------------------ 4. Numericalize(vocab), o2i
def test_numericalize_takes_the_vocab_first_and_has_o2i():
    vocab = ["xxunk", "xxpad", "xxbos", "xxeos", "xxfld", "xxrep", "xxwrep", "xxup", "xxmaj", "hi"]
    num = Numericalize(vocab)
    assert num(["hi", "there"]).tolist() == [9, 0]  # fastai 2.8.12: TensorText([9, 0])
    assert num.o2i["hi"] == 9 and num.o2i["there"] == 0
    num = Numericalize()
    num.setup([["a", "b", "b", "b", "a", "a", "c"] * 3])
    # fastai 2.8.12: o2i['b'] 10, o2i['c'] 11, o2i['zzz'] 0, and this vocab
    assert (num.o2i["b"], num.o2i["c"], num.o2i["zzz"]) == (10, 11, 0)
    assert num.vocab[:13] == SPECIAL_TOKENS + ["a", "b", "c", "xxfake"]
    assert "xxfake" not in num.o2i
    assert Numericalize(min_freq=2).min_freq == 2
    with pytest.raises(ParameterError, match="vocab=3 is not accepted; expected None or a list of tokens .*give "
                                             "min_freq by name"):
        Numericalize(3)


# ------------------------------------------------------------------ 5. tokenize_df, tokenize_texts, Tokenizer.from_df
def test_tokenize_df_and_tokenize_texts_as_fastai(imdb_pd):
    from pipekit.text.all import Tokenizer as StarTokenizer, tokenize_df, tokenize_texts

    rows = imdb_pd[~imdb_pd.is_valid].head(20)
    out, counts = tokenize_df(rows, ["text"])
    # fastai 2.8.12 on these 20 rows: these columns, 1317 distinct tokens, and this start of the first review
    assert isinstance(out, pd.DataFrame) and out.columns.tolist() == ["label", "is_valid", "text", "text_length"]
    assert len(counts) == 1317
    assert out["text"].iloc[0][:12] == ["xxbos", "xxmaj", "un", "-", "bleeping", "-", "believable", "!", "xxmaj",
                                        "meg", "xxmaj", "ryan"]
    assert out["text_length"].tolist() == [len(t) for t in out["text"]]
    assert sum(counts.values()) == out["text_length"].sum()
    assert counts["xxbos"] == 20 and out["label"].tolist() == rows["label"].tolist()
    two, _ = tokenize_df(rows, ["label", "text"])  # several columns: marked with xxfld, as fastai's default
    assert two.columns.tolist() == ["is_valid", "text", "text_length"]
    assert two["text"].iloc[0][:12] == ["xxbos", "xxfld", "1", "negative", "xxfld", "2", "xxmaj", "un", "-",
                                        "bleeping", "-", "believable"]  # fastai 2.8.12
    polars_out, polars_counts = tokenize_df(pl.from_pandas(rows), "text")
    assert isinstance(polars_out, pl.DataFrame) and polars_out["text"][0].to_list() == out["text"].iloc[0]
    assert polars_counts == counts
    with pytest.raises(ParameterError, match="has a column 'text' that is not among text_cols"):
        tokenize_df(rows.assign(review=rows.text), "review")
    # fastai 2.8.12: [['xxbos', 'xxmaj', 'hello', 'xxmaj', 'world'], ['xxbos', 'xxmaj', 'two']]
    assert tokenize_texts(["Hello World", "Two"]) == [["xxbos", "xxmaj", "hello", "xxmaj", "world"],
                                                       ["xxbos", "xxmaj", "two"]]
    tok = StarTokenizer.from_df("text")
    assert tok("A GOOD film.") == Tokenizer()("A GOOD film.")
    assert StarTokenizer.from_df("text", tok=WordTokenizer(), rules=False)("A GOOD film.") == ["xxbos", "A", "GOOD",
                                                                                               "film", "."]
    with pytest.raises(ParameterError, match=r"Tokenizer.from_df: unknown argument\(s\) \['n_worker'\]; did you mean "
                                             r"'n_workers'\?"):
        StarTokenizer.from_df("text", n_worker=2)


# ------------------------------------------------------------------ 6. a column of numbers given as the texts
def test_a_pandas_column_of_numbers_is_refused_with_the_pandas_fix():
    df = pd.DataFrame({"text": [1, 2, 3, 4] * 10, "label": ["a", "b"] * 20})
    with pytest.raises(DataError, match=r"text_col='text' holds Int64 values, not texts; convert the column to text "
                                        r"first, df\['text'\] = df\['text'\].astype\(str\)"):
        TextDataLoaders.from_df(df, bs=4, cache_dir=False)
    with pytest.raises(DataError, match=r"\.cast\(pl\.String\); a pandas one: df\[col\]\.astype\(str\)"):
        Tokenizer()(pl.Series([1, 2]))
