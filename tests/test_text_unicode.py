"""Texts beyond plain English: scripts without spaces, zero-width joiners, emoji, line endings, byte-order marks,
full-width punctuation, UTF-16 files and a Hugging Face tokenizer's unknown token."""
from __future__ import annotations

import random
import warnings

import polars as pl
import pytest

import pipekit.datasets as D
import pipekit.text.tokenize as tokenize_module
from pipekit.core import DataError, PipelineStepError
from pipekit.core.errors import PipekitWarning
from pipekit.text import (AWD_LSTM, HFTokenizer, Numericalize, TextBlock, TextDataLoaders, Tokenizer,
                          read_text_file, text_classifier_learner)


@pytest.fixture(scope="module")
def imdb() -> pl.DataFrame:
    return pl.read_csv(D.path("imdb_sample") / "texts.csv")


@pytest.fixture(scope="module")
def imdb_learner(imdb, tmp_path_factory):
    dls = TextDataLoaders.from_df(imdb, text_col="text", label_col="label", valid_col="is_valid", bs=32, seed=0,
                                  cache_dir=tmp_path_factory.mktemp("tokens"))
    learn = text_classifier_learner(dls, AWD_LSTM, config=dict(emb_sz=32, n_hid=64, n_layers=1))
    learn.fit_one_cycle(1, 1e-2)
    return learn


def _vocab_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, PipekitWarning)
            and "not in the vocabulary" in str(w.message)]


def _chinese_reviews(n: int = 300) -> pl.DataFrame:
    """Reviews written as Chinese is, without spaces between words; the label is told by the last word of each
    clause."""
    rng = random.Random(0)
    words = ["电影", "演员", "故事", "导演", "音乐", "画面", "剧情", "我们", "觉得", "非常", "真的", "有点"]
    pos, neg = ["好看", "精彩", "感人", "喜欢"], ["无聊", "失望", "难看", "讨厌"]
    rows = []
    for i in range(n):
        label = rng.choice(["positive", "negative"])
        ends = pos if label == "positive" else neg
        text = "".join("".join(rng.choice(words) for _ in range(3)) + rng.choice(ends) + "。" for _ in range(3))
        rows.append((label, text, i % 5 == 0))
    return pl.DataFrame(rows, schema=["label", "text", "is_valid"], orient="row")


def test_a_vocabulary_of_clauses_warns_and_names_the_subword_tokenizer(imdb, tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        TextDataLoaders.from_df(_chinese_reviews(), text_col="text", label_col="label", valid_col="is_valid", bs=32,
                                seed=0, cache_dir=tmp_path)
    (message,) = _vocab_warnings(caught)
    assert "100% of the" in message and "Tokenizer('unigram', vocab_sz=...)" in message and "min_freq" in message
    with warnings.catch_warnings(record=True) as caught:  # English words: 6% unknown, no warning
        warnings.simplefilter("always")
        TextDataLoaders.from_df(imdb, text_col="text", label_col="label", valid_col="is_valid", bs=32, seed=0,
                                cache_dir=tmp_path)
        Numericalize(min_freq=2).setup(Tokenizer()(["a film", "a good film", "a bad film"]))
    assert _vocab_warnings(caught) == []


@pytest.mark.parametrize("text, tokens", [
    ("من می\u200cخواهم", ["من", "می\u200cخواهم"]),                     # Persian: ZWNJ inside "I want"
    ("کتاب\u200cها خوب", ["کتاب\u200cها", "خوب"]),                      # the plural suffix after a ZWNJ
    ("क्\u200dष", ["क्\u200dष"]),                                        # a Devanagari conjunct with ZWJ
    ("Great 👨\u200d👩\u200d👧 film", ["xxmaj", "great", "👨\u200d👩\u200d👧", "film"]),  # an emoji ZWJ sequence
    ("👍🏽 🇩🇪 🇫🇷 ❤\ufe0f 1\ufe0f\u20e3", ["👍🏽", "🇩🇪", "🇫🇷", "❤\ufe0f", "1\ufe0f\u20e3"]),  # tone, flags, selector
])
def test_joiners_and_emoji_stay_in_their_token(text, tokens):
    tok = Tokenizer()
    assert tok(text) == ["xxbos", *tokens]
    assert tok.decode(tok(text)) == text


def test_the_joiners_and_emoji_are_in_the_token_cache_key(monkeypatch):
    before = TextBlock._settings(Tokenizer())
    monkeypatch.setattr(tokenize_module, "RULES_VERSION", tokenize_module.RULES_VERSION + 1)
    assert TextBlock._settings(Tokenizer()) != before


def test_windows_line_endings_and_a_byte_order_mark_tokenize_as_the_plain_text(imdb):
    texts = imdb["text"].head(200).to_list()
    assert any("<br /><br />" in t for t in texts)
    tok = Tokenizer()
    plain = list(tok([t.replace("<br /><br />", "\n\n") for t in texts]))
    assert list(tok([t.replace("<br /><br />", "\r\n\r\n") for t in texts])) == plain
    assert list(tok([t.replace("<br /><br />", "\r\r") for t in texts])) == plain
    assert list(tok(["\ufeff" + t.replace("<br /><br />", "\n\n") for t in texts])) == plain
    sub = Tokenizer("unigram", vocab_sz=500, rules=False)
    sub.setup(texts)
    assert sub("A film.\r\n\r\nGood.") == sub("A film.\n\nGood.")


def test_a_learner_predicts_the_same_for_windows_line_endings_and_a_byte_order_mark(imdb_learner):
    text = "I loved this film.\n\nThe acting was superb and the story moving."
    probs = imdb_learner.predict(text)[2].tolist()
    assert imdb_learner.predict(text.replace("\n", "\r\n"))[2].tolist() == probs
    assert imdb_learner.predict("\ufeff" + text)[2].tolist() == probs


@pytest.mark.parametrize("text", ["这部电影太差了。演员太差了，故事也无聊。", "この映画は最高でした！", "他说「好看」。",
                                  "यह फ़िल्म अच्छी है। पसंद आई"])
def test_full_width_punctuation_and_the_danda_decode_without_spaces(text):
    tok = Tokenizer()
    assert tok.decode(tok(text)) == text


def test_a_utf16_text_file_is_named_with_the_fix(imdb, tmp_path):
    for split in ("train", "valid"):
        for label in ("pos", "neg"):
            folder = tmp_path / split / label
            folder.mkdir(parents=True)
            rows = imdb.filter(pl.col("label") == ("positive" if label == "pos" else "negative"))["text"]
            for i, text in enumerate(rows.head(4).to_list()):
                (folder / f"{i}.txt").write_text(text, encoding="utf-8")
    notepad = tmp_path / "train" / "neg" / "notepad.txt"
    notepad.write_bytes(imdb["text"][0].encode("utf-16"))
    with pytest.raises(DataError, match=r"notepad\.txt: the file is UTF-16 text .*byte-order mark.*encoding='utf-16'"):
        read_text_file(notepad)
    with pytest.raises(DataError, match="UTF-16"):  # not read as NUL characters between the letters
        read_text_file(notepad, errors="replace")
    assert read_text_file(notepad, encoding="utf-16") == imdb["text"][0]
    for errors in ("strict", "replace"):
        with pytest.raises(PipelineStepError, match=r"notepad\.txt: the file is UTF-16 text"):
            TextDataLoaders.from_folder(tmp_path, bs=4, seed=0, errors=errors, cache_dir=tmp_path / "cache")


def test_an_hf_tokenizers_own_unknown_token_decodes_as_xxunk(imdb):
    tokenizers = pytest.importorskip("tokenizers")
    tk = tokenizers.Tokenizer(tokenizers.models.WordPiece(unk_token="[UNK]"))
    tk.normalizer = tokenizers.normalizers.BertNormalizer(lowercase=True)
    tk.pre_tokenizer = tokenizers.pre_tokenizers.BertPreTokenizer()
    tk.decoder = tokenizers.decoders.WordPiece()
    tk.train_from_iterator(imdb["text"].head(200).to_list(), tokenizers.trainers.WordPieceTrainer(
        vocab_size=500, special_tokens=["[UNK]"], show_progress=False))
    hf = HFTokenizer(tk)
    toks = hf("a 好 film")
    assert toks == ["xxbos", "a", "[UNK]", "film"]
    assert hf.decode(toks) == "a xxunk film"
