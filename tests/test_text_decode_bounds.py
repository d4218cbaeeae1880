"""Decoding runs (``xxrep n c``, ``xxwrep n w``) builds at most MAX_RUN_CHARS characters of them per text."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import polars as pl
import pytest

import pipekit.datasets as D
import pipekit.text.tokenize as tokenize_module
from pipekit.text import Tokenizer, decode_words

# a child process under a 4 GiB address-space cap: a decode that expands a run of a billion characters fails there
# (MemoryError) instead of taking the test machine's memory
_CAPPED = "import resource\nresource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))\n"


def _run_capped(code: str) -> dict:
    """What ``code`` (run under the cap) prints as JSON on its last line."""
    done = subprocess.run([sys.executable, "-c", _CAPPED + textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_text_with_a_huge_literal_run_decodes_as_written():
    out = _run_capped("""
        import json, time
        from pipekit.text import Tokenizer
        tok = Tokenizer()
        toks = tok.tokenize("hello xxrep 1234567890 a world")
        t = time.process_time()  # CPU time: a machine busy with other work does not count
        text = tok.decode(toks)
        print(json.dumps({"toks": toks, "text": text, "s": time.process_time() - t}))
    """)
    assert out["toks"] == ["xxbos", "hello", "xxrep", "1234567890", "a", "world"]
    assert out["text"] == "hello xxrep 1234567890 a world"
    # about 0.1 ms of CPU time: the run is written as its tokens, not expanded to a billion characters
    assert out["s"] < 1.0


def test_a_sampled_run_past_the_bound_is_written_as_its_tokens():
    out = _run_capped("""
        import json
        from pipekit.text import decode_words
        print(json.dumps([decode_words(["xxbos", "xxrep", "9999999999", "a"]),
                          decode_words(["xxbos", "xxmaj", "so", "xxwrep", "9999999999", "xxmaj", "good", "!"]),
                          decode_words(["xxbos", "g", "xxrep", "9999999999", "o", "d", "film"]),
                          decode_words(["xxbos", "wow", "xxrep", "9" * 5000, "!"])]))
    """)
    assert out == ["xxrep 9999999999 a", "So xxwrep 9999999999 Good!", "g xxrep 9999999999 o d film",
                   "wow xxrep " + "9" * 5000 + " !"]


def test_many_medium_runs_share_one_bound():
    limit = tokenize_module.MAX_RUN_CHARS
    assert limit == 1_000_000
    # ten runs of 400,000 characters: two fit in the bound, the other eight are written as their tokens
    toks = ["xxbos"] + ["word", "xxrep", "400000", "!"] * 10
    text = decode_words(toks)
    assert len(text) < limit + 1_000
    assert text.count("!" * 400_000) == 2 and text.count("xxrep 400000 !") == 8
    # runs of a word (each repeat is the word and a space: 1.5M characters here, 500,000 below) and of letters
    text = decode_words(["xxbos"] + ["xxwrep", "300000", "film"] * 10)
    assert len(text) < limit + 1_000 and text.count("xxwrep 300000 film") == 10
    text = decode_words(["xxbos"] + ["xxwrep", "100000", "film"] * 10)
    assert len(text) < limit + 1_000 and text.count("xxwrep 100000 film") == 8
    text = decode_words(["xxbos"] + ["g", "xxrep", "300000", "o", "d"] * 10)
    assert len(text) < limit + 1_000 and text.count("g xxrep 300000 o d") == 7 and text.count("o" * 300_000) == 3


def test_the_bound_can_be_raised_or_lifted(monkeypatch):
    toks = ["xxbos", "so", "xxrep", "20", "!"]
    monkeypatch.setattr(tokenize_module, "MAX_RUN_CHARS", 10)
    assert decode_words(toks) == "so xxrep 20 !"
    monkeypatch.setattr(tokenize_module, "MAX_RUN_CHARS", 20)
    assert decode_words(toks) == "so" + "!" * 20
    monkeypatch.setattr(tokenize_module, "MAX_RUN_CHARS", None)
    assert decode_words(["xxbos", "xxwrep", "2000000", "a"]) == " ".join(["a"] * 2_000_000)


def test_a_csv_of_reviews_with_a_huge_literal_run_shows_its_batches(tmp_path):
    df = pl.read_csv(D.path("imdb_sample") / "texts.csv").head(60)
    df.with_columns((pl.col("text").str.slice(0, 200) + " xxrep 1234567890 a " + pl.col("text").str.slice(200))
                    .alias("text")).write_csv(tmp_path / "texts.csv")
    out = _run_capped(f"""
        import json
        import polars as pl
        from pipekit.text import TextDataLoaders
        df = pl.read_csv({str(tmp_path / "texts.csv")!r})
        dls = TextDataLoaders.from_df(df, text_col="text", label_col="label", valid_pct=0.2, bs=8, seed=0)
        rows = dls.decode_batch(dls.one_batch(), max_n=8)
        png = dls.show_batch(max_n=2, path={str(tmp_path / "batch.png")!r})
        print(json.dumps({{"texts": [str(r[0]) for r in rows], "png": str(png)}}))
    """)
    assert len(out["texts"]) == 8
    for text in out["texts"]:
        assert "xxrep 1234567890 a" in text and len(text) < 20_000, text[:300]
    assert (tmp_path / "batch.png").stat().st_size > 0


@pytest.fixture(scope="module")
def imdb_texts() -> list[str]:
    return pl.read_csv(D.path("imdb_sample") / "texts.csv")["text"].to_list()


def test_runs_of_real_reviews_decode_as_before(imdb_texts):
    tok = Tokenizer()
    encoded = tok.encode(imdb_texts)
    with_runs = [i for i in range(len(imdb_texts)) if "xxrep" in encoded[i] or "xxwrep" in encoded[i]]
    assert len(with_runs) > 50
    for i in with_runs:
        text = tok.decode(encoded[i])
        assert "xxrep" not in text and "xxwrep" not in text, text
    assert tok.decode(tok.tokenize("Sooo goood!!!! a MUST MUST MUST see")) == "Sooo goood!!!! a MUST MUST MUST see"
    assert tok.decode(tok.tokenize("word " * 1000 + "end")) == "word " * 1000 + "end"
