"""pipekit.text: tokenization, numericalization, text blocks and loaders, AWD-LSTM models, ULMFiT learners.

>>> from pipekit.text import TextBlock, Tokenizer, WordTokenizer, HFTokenizer, language_model_learner, text_classifier_learner, AWD_LSTM
>>> from pipekit.text import coll_repr, defaults  # chapter 10's coll_repr(tkn(txt), 31), defaults.text_proc_rules
>>> from pipekit.text import awd_lstm_clas_config, awd_lstm_lm_config  # fastai's configs, to copy and update
"""
from pipekit.text.base_tokenizers import SubwordTokenizer, WordTokenizer
from pipekit.text.blocks import TextBlock
from pipekit.text.hf_tokenizer import HFTokenizer
from pipekit.text.dataloaders import TextDataLoaders
from pipekit.text.learner import (LMLearner, ModelResetter, RNNRegularizer, TextLearner, language_model_learner,
                                  match_embeddings, text_classifier_learner)
from pipekit.text.loaders import LMDataLoader, SortedDataLoader, SortedDL
from pipekit.text.models import (AWD_LSTM, LinearDecoder, PoolingLinearClassifier, SentenceEncoder, SequentialRNN,
                                 awd_lstm_clas_config, awd_lstm_lm_config, get_language_model, get_text_classifier)
from pipekit.text.numericalize import Numericalize, check_vocab
from pipekit.text.rules import (coll_repr, defaults, fix_html, lowercase, replace_all_caps, replace_maj, replace_rep,
                                replace_wrep, split_pieces)
from pipekit.text.store import TextStore
from pipekit.text.tokenize import (SPECIAL_TOKENS, TokenizedTexts, Tokenizer, decode_words, read_text_file,
                                   tokenize_df, tokenize_texts)

__all__ = ["AWD_LSTM", "HFTokenizer", "LMDataLoader", "LMLearner", "LinearDecoder", "ModelResetter", "Numericalize",
           "PoolingLinearClassifier", "RNNRegularizer", "SPECIAL_TOKENS", "SentenceEncoder", "SequentialRNN",
           "SortedDataLoader", "SortedDL", "SubwordTokenizer", "TextBlock", "TextDataLoaders", "TextLearner", "TextStore", "TokenizedTexts", "Tokenizer", "check_vocab",
           "awd_lstm_clas_config", "awd_lstm_lm_config",
           "decode_words", "get_language_model", "get_text_classifier", "language_model_learner",
           "match_embeddings", "read_text_file", "text_classifier_learner", "tokenize_df", "tokenize_texts",
           "WordTokenizer",
           # the book's rules one function each (defaults.text_proc_rules), and coll_repr to print tokens
           "coll_repr", "defaults", "fix_html", "lowercase", "replace_all_caps", "replace_maj", "replace_rep",
           "replace_wrep", "split_pieces"]
