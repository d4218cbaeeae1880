"""pipekit.text: tokenization, numericalization, text blocks and loaders, LSTM models, ULMFiT learners."""
from pipekit.text.blocks import TextBlock
from pipekit.text.loaders import LMDataLoader, SortedDataLoader
from pipekit.text.numericalize import Numericalize, check_vocab
from pipekit.text.store import TextStore
from pipekit.text.tokenize import (SPECIAL_TOKENS, TokenizedTexts, Tokenizer, decode_words, read_text_file)

__all__ = ["LMDataLoader", "Numericalize", "SPECIAL_TOKENS", "SortedDataLoader", "TextBlock", "TextStore",
           "TokenizedTexts", "Tokenizer", "check_vocab", "decode_words", "read_text_file"]
