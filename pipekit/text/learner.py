"""ULMFiT learners: a language model (AR/TAR regularized, hidden state reset per phase), its encoder saved
and loaded with vocabulary alignment, and a classifier fine-tuned with gradual unfreezing.

>>> # dls_lm = DataBlock(blocks=TextBlock.from_df('text', is_lm=True), get_x=ColReader('text'), ...).dataloaders(df)
>>> # learn = language_model_learner(dls_lm, AWD_LSTM, drop_mult=0.3, metrics=[accuracy, perplexity])
>>> # learn.fit_one_cycle(1, 2e-2); learn.save_encoder('ft')
>>> # learn = text_classifier_learner(dls_clas, AWD_LSTM, drop_mult=0.5, metrics=accuracy)
>>> # learn.load_encoder('ft'); learn.fit_one_cycle(1, 2e-2); learn.freeze_to(-2); ...

An encoder file is a pipekit file of kind "encoder" (record: architecture, config, vocabulary; weights:
the encoder's); ``pipekit.load`` of one gives the ``AWD_LSTM`` with a ``vocab`` attribute.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pipekit.core.archive import Archive, read_pipekit, write_archive
from pipekit.core.errors import ExportError, ParameterError, warn
from pipekit.core.forks import check_fork_safe
from pipekit.core.registry import register
from pipekit.core.validate import POSITIVE, BOOL, Interval, Is, check
from pipekit.data.dataloaders import DataLoaders
from pipekit.data.transform import as_list
from pipekit.learn import Callback, CrossEntropyLossFlat, Learner
from pipekit.learn.learner import check_learner_kwargs, check_targets_fit
from pipekit.learn.export import checkpoint_path, plain_weight_names, unusable_weights
from pipekit.text.blocks import TextBlock, check_forwards
from pipekit.text.models import (AWD_LSTM, Y_RANGE, awd_lstm_clas_config, awd_lstm_clas_split,
                                 awd_lstm_classifier, awd_lstm_config, awd_lstm_lm, awd_lstm_lm_config, awd_lstm_lm_split,
                                 encoder_of)
from pipekit.text.tokenize import UNK

#: what an encoder file's config may hold: AWD_LSTM's own arguments, nothing else
_ENCODER_KEYS = ("vocab_sz", "emb_sz", "n_hid", "n_layers", "pad_token", "hidden_p", "input_p", "embed_p", "weight_p")

# by name, as an export records the layer groups of a language model's and a classifier's learner (load_learner
# restores them, so a loaded learner freezes gradually, freeze_to(-2), as the exported one did)
register(awd_lstm_lm_split, name="pipekit.text.awd_lstm_lm_split", kind="layer_splitter")
register(awd_lstm_clas_split, name="pipekit.text.awd_lstm_clas_split", kind="layer_splitter")


class ModelResetter(Callback):
    """Clear the recurrent state before training, before validation and after fitting: the model's own
    ``reset()`` when it has one (a stateful RNN written by hand, ``SequentialRNN``), else that of every
    ``AWD_LSTM`` inside it.

    >>> import numpy as np
    >>> from torch import nn
    >>> from pipekit.data import DataLoaders, TensorStore
    >>> from pipekit.learn import CrossEntropyLossFlat, Learner
    >>> from pipekit.text import ModelResetter
    >>> class StatefulNet(nn.Module):                    # a hand-written RNN keeps its state between batches
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.lin, self.resets = nn.Linear(4, 2), 0
    ...     def reset(self):
    ...         self.resets += 1
    ...     def forward(self, x):
    ...         return self.lin(x)
    >>> x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32"); y = (x[:, 0] > 0).astype("int64")
    >>> dls = DataLoaders.from_stores([TensorStore(x), TensorStore(y)], [TensorStore(x), TensorStore(y)], bs=16,
    ...                               device="cpu")
    >>> learn = Learner(dls, StatefulNet(), loss_func=CrossEntropyLossFlat(), cbs=ModelResetter())
    >>> _ = learn.validate()
    >>> learn.model.resets                               # before validating, and after it (as after a fit)
    2
    """

    unique = True  # one per learner: another replaces it

    order = -10

    def _reset(self) -> None:
        model = self.learn.model
        model = getattr(model, "module", model) if not hasattr(model, "reset") else model  # under DDP
        reset = getattr(model, "reset", None)
        if callable(reset):
            reset()
            return
        for m in model.modules():
            if isinstance(m, AWD_LSTM):
                m.reset()

    before_train = before_validate = after_fit = _reset


class RNNRegularizer(Callback):
    """AR (``alpha``: size of the dropped-out last-layer activations) and TAR (``beta``: change between
    consecutive time steps of the raw activations), added to the training loss.

    >>> import numpy as np
    >>> import torch
    >>> from torch import nn
    >>> from pipekit.data import DataLoaders, TensorStore
    >>> from pipekit.learn import CrossEntropyLossFlat, Learner
    >>> from pipekit.text import RNNRegularizer
    >>> class TinyRNN(nn.Module):                      # returns (logits, raw activations, dropped-out activations)
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.rnn, self.head = nn.GRU(4, 8, batch_first=True), nn.Linear(8, 2)
    ...     def forward(self, x):
    ...         out, _ = self.rnn(x)
    ...         return self.head(out[:, -1]), out, out
    >>> x = np.random.default_rng(0).normal(size=(32, 5, 4)).astype("float32"); y = (x[:, -1, 0] > 0).astype("int64")
    >>> dls = DataLoaders.from_stores([TensorStore(x), TensorStore(y)], [TensorStore(x), TensorStore(y)], bs=16,
    ...                               device="cpu")
    >>> _ = torch.manual_seed(0)
    >>> reg = RNNRegularizer(alpha=2.0, beta=1.0)
    >>> learn = Learner(dls, TinyRNN(), loss_func=CrossEntropyLossFlat(), cbs=reg)
    >>> loss = learn.validate()[0]                    # the loss is given the logits alone
    >>> tuple(reg.out.shape)                          # the activations the AR and TAR terms are computed from
    (16, 5, 8)
    >>> try:
    ...     RNNRegularizer(alpha=-1.0)
    ... except ValueError as e:
    ...     print(type(e).__name__)
    ParameterError
    """

    unique = True  # one per learner: another replaces it

    order = -5

    def __init__(self, alpha: float = 2.0, beta: float = 1.0):
        check("RNNRegularizer", alpha=(alpha, Interval(0, None)), beta=(beta, Interval(0, None)))
        self.alpha, self.beta = alpha, beta
        self.raw_out = self.out = None

    def before_fit(self) -> None:
        from pipekit.text.models import PoolingLinearClassifier

        # classifier heads give their encoder's outputs only while this regularizer reads them
        self._heads = [m for m in self.learn.model.modules() if isinstance(m, PoolingLinearClassifier)]

    def before_batch(self) -> None:
        for head in getattr(self, "_heads", ()):
            head.give_activations = self.learn.training

    def after_pred(self) -> None:
        self._heads_off()
        pred = self.learn.pred
        if isinstance(pred, tuple) and len(pred) == 3:
            self.raw_out, self.out = pred[1], pred[2]
            self.learn.pred = pred[0]

    def _heads_off(self) -> None:
        for head in getattr(self, "_heads", ()):
            head.give_activations = False

    def after_fit(self) -> None:
        self._heads_off()

    def release(self) -> None:  # a fit ended by an error mid-batch: the heads give the logits alone again
        self._heads_off()

    def after_loss(self) -> None:
        if not self.learn.training or self.learn.loss_grad is None or self.out is None:
            return
        reg = self.alpha * self.out.float().pow(2).mean()
        if self.raw_out.size(1) > 1:
            reg = reg + self.beta * (self.raw_out[:, 1:] - self.raw_out[:, :-1]).float().pow(2).mean()
        self.learn.loss_grad = self.learn.loss_grad + reg


def text_block_of(dls: Any) -> Any:
    """The TextBlock of ``dls`` (its vocab is the token list)."""
    for b in dls.blocks if isinstance(dls, DataLoaders) else ():
        if isinstance(b, TextBlock):
            return b
    raise ParameterError("these DataLoaders have no TextBlock; build them with "
                         "DataBlock(blocks=(TextBlock.from_df(...), ...))")


def _check_arch(arch: Any) -> None:
    if arch is not AWD_LSTM and arch != "AWD_LSTM":
        raise ParameterError(f"arch={arch!r} is not supported; use AWD_LSTM")


def _check_pretrained(fn: str, pretrained: Any, backwards: Any) -> None:
    """pipekit ships no pretrained text weights and reads texts forwards: say so and what to do instead."""
    check(fn, pretrained=(pretrained, BOOL))
    if pretrained:
        raise ParameterError(f"{fn}: pretrained=True asks for the book's AWD_LSTM weights pretrained on WikiText-103, "
                             "which pipekit does not ship; pass pretrained=False and train the language model on "
                             "your own texts (language_model_learner(dls_lm, AWD_LSTM, pretrained=False), then "
                             "learn.save_encoder('ft') and text_classifier_learner(..., pretrained=False, "
                             "encoder='ft')), as the recipe `pipekit run imdb_sample` does")
    check_forwards(fn, backwards)


@register(kind="learner")
class TextLearner(Learner):
    """A Learner for recurrent text models: it resets the model's hidden state before each phase
    (``ModelResetter``) and, for a model returning ``(logits, raw_outputs, outputs)`` as the AWD-LSTM language
    model and classifier (in training) and the book's ``LMModel7`` do, trains on the logits with AR (``alpha``) and
    TAR (``beta``) added to the loss (``RNNRegularizer``). It saves and loads an AWD-LSTM encoder with vocabulary
    alignment. Its ``moms`` default to ULMFiT's ``(0.8, 0.7, 0.8)``, as fastai's TextLearner (a Learner's are
    ``(0.95, 0.85, 0.95)``); ``moms=`` given wins, as ``language_model_learner`` and ``text_classifier_learner``
    pass it.

    >>> import polars as pl, pipekit.datasets as D
    >>> from pipekit.learn import CrossEntropyLossFlat, accuracy
    >>> from pipekit.text import AWD_LSTM, TextDataLoaders, TextLearner, get_language_model
    >>> df = pl.read_csv(D.path("imdb_sample") / "texts.csv").head(10)
    >>> dls = TextDataLoaders.from_df(df, text_col="text", is_lm=True, bs=8, seq_len=24, seed=0, cache_dir=False)
    >>> model = get_language_model(AWD_LSTM(len(dls.vocab), emb_sz=16, n_hid=16, n_layers=1))
    >>> learn = TextLearner(dls, model, loss_func=CrossEntropyLossFlat(), metrics=accuracy)
    >>> [type(cb).__name__ for cb in learn.cbs][-2:]
    ['ModelResetter', 'RNNRegularizer']
    >>> loss, acc = learn.validate()             # scored on the logits of (logits, raw_outputs, outputs)
    >>> learn.text_vocab[:2], 0 <= acc <= 1
    (['xxunk', 'xxpad'], True)

    The book's ``LMModel7`` (chapter 12) trains the same way:

    >>> # learn = TextLearner(dls, LMModel7(len(vocab), 64, 2, 0.5), loss_func=CrossEntropyLossFlat(),
    >>> #                     metrics=accuracy); learn.fit_one_cycle(15, 1e-2, wd=0.1)
    """

    def __init__(self, dls: Any, model: nn.Module, alpha: float = 2.0, beta: float = 1.0,
                 moms: tuple[float, float, float] = (0.8, 0.7, 0.8), **kwargs: Any):
        # a user's ModelResetter or RNNRegularizer (given in cbs) replaces these: both are unique
        cbs = [ModelResetter(), RNNRegularizer(alpha, beta), *as_list(kwargs.pop("cbs", None))]
        super().__init__(dls, model, cbs=cbs, moms=moms, **kwargs)

    @property
    def encoder(self) -> AWD_LSTM:
        """The model's AWD-LSTM encoder (of a language model or a classifier): what ``save_encoder`` writes and
        ``load_encoder`` reads."""
        return encoder_of(self.model)

    @property
    def text_vocab(self) -> list[str]:
        """The text vocabulary, the tokens in id order (``learn.text_vocab[i]`` is the token of id ``i``)."""
        return text_block_of(self.dls).vocab

    def _file(self, name: str | os.PathLike) -> Path:
        """Where ``save_encoder(name)`` writes and ``load_encoder(name)`` looks first: ``learn.save``'s
        :func:`~pipekit.learn.export.checkpoint_path`, absolute (a relative name under ``learn.path / model_dir``)."""
        return checkpoint_path(self, name).absolute()

    def save_encoder(self, name: str) -> Path:
        """Write the encoder (architecture, config, vocabulary and weights) to ``path/model_dir/name.pipekit``, where
        ``learn.save(name)`` writes (a relative ``name``, with folders or a suffix, under ``learn.path / model_dir``;
        an absolute one as given); the absolute path written is returned."""
        enc = self.encoder
        cfg = {"vocab_sz": enc.vocab_sz, "emb_sz": enc.emb_sz, "n_hid": enc.n_hid, "n_layers": enc.n_layers,
               "pad_token": enc.pad_token, "hidden_p": enc.hidden_dps[0].p, "input_p": enc.input_dp.p,
               "embed_p": enc.embed_p, "weight_p": enc.rnns[0].weight_p}
        return write_archive(self._file(name), "encoder", record={"arch": "AWD_LSTM", "config": cfg,
                                                                   "vocab": list(self.text_vocab)},
                             weights=enc.state_dict())

    def load_encoder(self, name: str | os.PathLike, freeze: bool = True) -> TextLearner:
        """Load an encoder saved by ``save_encoder``; rows are matched by token, so an encoder trained with
        another vocab fits (tokens it never saw start at the mean embedding). Freezes all but the head.

        A name is read where ``learn.load(name)`` reads (:func:`~pipekit.learn.export.checkpoint_path`): a relative
        name, with folders or a suffix, under this learner's ``path/model_dir`` (``name.pipekit``), where
        ``save_encoder(name)`` of a learner with the same ``path`` writes it; an absolute one as given. An encoder
        saved by a learner with another ``path`` is loaded by its full path, with or without ``.pipekit``:
        ``learn.load_encoder(lm.path/'models'/'finetuned')``; ``learn.load_encoder(learn.save_encoder(name))`` reads
        the file just written.
        """
        f = self._file(name)
        if not f.exists():
            raise FileNotFoundError(self._no_encoder(name, f))
        cfg, old_vocab, state = _checked_encoder(read_pipekit(f))  # all of the file, before the model is touched
        enc = self.encoder
        own = enc.state_dict()

        def fits(k: str) -> bool:  # the embedding's rows follow the vocabulary (matched by token below), its width not
            start = 1 if k == "encoder.weight" else 0
            return k in state and state[k].shape[start:] == own[k].shape[start:]

        mismatch = [k for k in own if not fits(k)] + sorted(set(state) - set(own))
        if mismatch:
            got = {k: tuple(state[k].shape) for k in mismatch if k in state}
            raise ExportError(f"{f}: encoder shapes do not match this model at {mismatch[:4]} (file {got}); "
                              f"build the learner with the same config (emb_sz, n_hid, n_layers) as the saved one, "
                              f"saved config: {cfg}")
        state["encoder.weight"] = match_embeddings(state["encoder.weight"], old_vocab, self.text_vocab)
        enc.load_state_dict(state)
        if freeze:
            self.freeze()
        return self

    def _no_encoder(self, name: str | os.PathLike, f: Path) -> str:
        """Where ``load_encoder(name)`` looked, what is there, and how to load an encoder saved elsewhere."""
        where, stem, md = f.absolute(), Path(name).name.removesuffix(".pipekit"), str(self.model_dir)
        there = sorted(p.name for p in where.parent.glob("*.pipekit")) if where.parent.is_dir() else []
        listed = (f"the .pipekit files there: {there[:10]}{' ...' if len(there) > 10 else ''}" if there
                  else "no .pipekit file there")
        return (f"load_encoder({str(name)!r}): no encoder file {where} ({listed}). A name is looked for in "
                f"{md!r} under this learner's path, {self.path.absolute()} (learn.path: the path= its loaders were "
                f"given); an encoder saved by a learner with another path (the language model's) is under that one: "
                f"load it by its full path, learn.load_encoder(lm.path/{md!r}/{stem!r}) (with or without .pipekit), "
                f"or give both loaders the same path= (TextDataLoaders.from_folder(path, ..., path=path), as "
                f"DataBlock(...).dataloaders(path, path=path) does for the language model); or save one here with "
                f"learn.save_encoder({stem!r}){self._encoder_in_working_folder(name, where)}")

    @staticmethod
    def _encoder_in_working_folder(name: str | os.PathLike, where: Path) -> str:
        """The sentence naming an encoder file at ``name`` relative to the working folder (where pipekit once read a
        name that was not under ``path/model_dir``) and how to load it; empty when there is none."""
        if Path(name).is_absolute():
            return ""
        for old in (Path(name), Path(f"{os.fspath(name)}.pipekit")):
            if old.is_file() and old.absolute() != where:
                return (f". An encoder file is at {old.absolute()}, relative to the working folder (where pipekit once "
                        f"looked for such names): load it by its absolute path, "
                        f"learn.load_encoder({str(old.absolute())!r})")
        return ""


def _encoder_parts(archive: Archive) -> tuple[dict[str, Any], list[str], dict[str, torch.Tensor]]:
    """The config, vocabulary and weights of an encoder file, each checked before anything is built."""
    rec, where = archive.record, archive.where
    if archive.kind != "encoder" or not isinstance(rec, dict) or rec.get("arch") != "AWD_LSTM":
        raise ExportError(f"{where} is not an AWD_LSTM encoder written by save_encoder (kind {archive.kind!r})")
    cfg, vocab = rec.get("config"), rec.get("vocab")
    if not isinstance(cfg, dict) or not set(cfg) <= set(_ENCODER_KEYS) or "vocab_sz" not in cfg:
        raise ExportError(f"{where}: the encoder config must hold vocab_sz and only {list(_ENCODER_KEYS)}, got {cfg!r:.200}")
    if not (isinstance(vocab, list) and all(isinstance(t, str) for t in vocab) and len(vocab) == cfg["vocab_sz"]):
        raise ExportError(f"{where}: the encoder vocab must be a list of {cfg['vocab_sz']} tokens (text)")
    return cfg, vocab, plain_weight_names(archive.tensors())  # a compiled encoder's file: its own names


def _checked_encoder(archive: Archive) -> tuple[dict[str, Any], list[str], dict[str, torch.Tensor]]:
    """The config, vocabulary and weights of an encoder file, the weights checked against the AWD_LSTM its config
    builds (built on the meta device: no memory) before any model is built or changed: the same names and shapes,
    and numbers a model can predict with (no integers, complex numbers, NaN or infinity)."""
    cfg, vocab, state = _encoder_parts(archive)
    fix = "the file is damaged or was not written by save_encoder: save the encoder again (lm.save_encoder(name))"
    try:
        layers = {k.split(".")[1] for k in state if k.startswith("rnns.")}
        if cfg.get("n_layers", 3) != len(layers):  # before building: a module per layer costs, even without memory
            raise ValueError(f"its config asks for n_layers={cfg.get('n_layers', 3)!r:.20} where its weights hold "
                             f"{len(layers)} LSTM layers")
        with torch.device("meta"):  # the shapes the config asks for, without memory: the file's weights must match
            wanted = AWD_LSTM(**cfg).state_dict()
    except (TypeError, ValueError, RuntimeError) as e:
        raise ExportError(f"{archive.where}: the config or weights are not an AWD_LSTM encoder's ({e}); {fix}") from None
    stored, shapes = {k: tuple(v.shape) for k, v in state.items()}, {k: tuple(v.shape) for k, v in wanted.items()}
    if stored != shapes:
        odd = sorted(set(stored) ^ set(shapes)) or [k for k in shapes if stored[k] != shapes[k]]
        raise ExportError(f"{archive.where}: the config or weights are not an AWD_LSTM encoder's (its weights do not "
                          f"have the shapes its config gives (first: {odd[:3]})); {fix}")
    unusable = unusable_weights(wanted, state)
    if unusable:
        raise ExportError(f"{archive.where}: the encoder weights (weights.safetensors) cannot predict: "
                          f"{'; '.join(unusable[:3])}{' ...' if len(unusable) > 3 else ''}; {fix}")
    return cfg, vocab, state


def load_encoder_file(archive: Archive, **kwargs: Any) -> AWD_LSTM:
    """What ``pipekit.load`` gives for an encoder file: the AWD_LSTM with its weights and its ``vocab``."""
    cfg, vocab, state = _checked_encoder(archive)
    try:
        enc = AWD_LSTM(**cfg)
        enc.load_state_dict(state)
    except (TypeError, ValueError, RuntimeError) as e:
        raise ExportError(f"{archive.where}: the config or weights are not an AWD_LSTM encoder's ({e})") from None
    enc.vocab = vocab
    return enc


register(load_encoder_file, name="encoder", kind="loader")


def match_embeddings(old_w: torch.Tensor, old_vocab: list[str], new_vocab: list[str]) -> torch.Tensor:
    """Rows of ``old_w`` re-ordered for ``new_vocab``; tokens not in ``old_vocab`` get the mean row.

    >>> w = torch.tensor([[1., 1.], [3., 3.]])
    >>> match_embeddings(w, ["a", "b"], ["b", "c", "a"]).tolist()
    [[3.0, 3.0], [2.0, 2.0], [1.0, 1.0]]
    """
    if old_w.size(0) != len(old_vocab):
        raise ParameterError(f"embedding has {old_w.size(0)} rows but the saved vocab {len(old_vocab)} tokens")
    index = {t: i for i, t in enumerate(old_vocab)}
    new_w = old_w.mean(0).expand(len(new_vocab), old_w.size(1)).clone()
    pairs = [(j, index[t]) for j, t in enumerate(new_vocab) if t in index]
    if pairs:
        dst, src = zip(*pairs)
        new_w[list(dst)] = old_w[list(src)]
    return new_w


@register(kind="learner")
class LMLearner(TextLearner):
    """A language-model Learner; ``predict`` generates text.

    >>> import polars as pl
    >>> import torch
    >>> import pipekit.datasets as D
    >>> from pipekit.text import AWD_LSTM, LMLearner, TextDataLoaders, language_model_learner
    >>> df = pl.read_csv(D.path("imdb_sample") / "texts.csv").head(20)
    >>> dls = TextDataLoaders.from_df(df, text_col="text", is_lm=True, bs=4, seq_len=16, seed=0, cache_dir=False)
    >>> _ = torch.manual_seed(0)
    >>> learn = language_model_learner(dls, AWD_LSTM, pretrained=False, config=dict(emb_sz=16, n_hid=16, n_layers=1))
    >>> isinstance(learn, LMLearner)
    True
    >>> text = learn.predict("this movie", n_words=4, seed=0)      # untrained: four sampled tokens
    >>> text.lower().startswith("this movie"), len(text.split()) >= 4
    (True, True)
    """

    @classmethod
    def data_problem(cls, dls: Any) -> str | None:
        """Language-model data only: its first TextBlock, whose vocab ``predict`` samples from, made with ``is_lm``."""
        blocks = [b for b in getattr(dls, "blocks", None) or () if isinstance(b, TextBlock)]
        if blocks and blocks[0].is_lm:
            return None
        return ("needs language-model data, whose texts a language model learns to continue: a TextBlock made with "
                "is_lm=True (TextBlock.from_df(..., is_lm=True))")

    def predict(self, text: str, n_words: int = 1, no_unk: bool = True,  # type: ignore[override]
                temperature: float = 1.0, min_p: float | None = None, no_bar: bool = False,
                decoder: Callable[[list[str]], Sequence[str]] | None = None, only_last_word: bool = False, *,
                seed: int | None = None) -> str:
        """Continue ``text`` with ``n_words`` sampled tokens; fastai's arguments in fastai's order.

        ``no_unk``: never sample ``xxunk``. ``temperature`` < 1: safer, > 1: wilder. ``min_p``: leave out the tokens
        the model gives a probability below ``min_p`` (before the temperature, as fastai does; when none reaches it,
        a warning and no token left out). ``only_last_word``: predict each token after the first from the last
        token alone, the model's state cleared (fastai's: it reads only the last word), rather than from all the
        text so far; the text returned is the whole of it either way. ``decoder``: a function from the tokens
        (``xxbos`` and padding left out) to the words joined with spaces, as fastai's ``decoder`` (its default,
        ``decode_spec_tokens``, applies the case and repetition markers); None, pipekit's default, decodes to
        readable text (:meth:`~pipekit.text.Tokenizer.decode`). ``no_bar`` is taken for fastai's calls and has no
        effect: pipekit shows no progress bar here. ``seed`` (by name) makes the sample repeatable.

        A language model's prediction is text, not a class: the signature differs from ``Learner.predict``."""
        check_fork_safe("LMLearner.predict")
        check("LMLearner.predict", text=(text, Is(lambda t: isinstance(t, str), "a str prompt")),
              n_words=(n_words, Interval(0, None, integer=True)),
              no_unk=(no_unk, Is(lambda v: v in (True, False) and type(v) in (bool, int),
                                 "True or False (the third argument, as in fastai; give temperature by name)")),
              temperature=(temperature, POSITIVE),
              min_p=(min_p, Interval(0, 1, none_ok=True)),
              no_bar=(no_bar, BOOL),
              decoder=(decoder, Is(lambda d: d is None or callable(d), "None or a function of the tokens")),
              only_last_word=(only_last_word, BOOL))
        block = text_block_of(self.dls)
        ids = torch.as_tensor(block.encode_text(text), device=self.device)[None]
        gen = torch.Generator(device="cpu")
        gen.manual_seed(seed if seed is not None else int(torch.randint(0, 2**31 - 1, (1,)).item()))
        banned = [i for i, t in enumerate(block.vocab) if t in ("xxfake", "xxpad", "xxbos") or (no_unk and t == UNK)]
        model, enc = self.model, self.encoder
        was_training = model.training
        model.eval()
        enc.reset()
        out_ids: list[int] = ids[0].tolist()
        warned = False
        with torch.no_grad():
            logits = model(ids)[0][0, -1]
            for _ in range(n_words):
                logits = logits.float().cpu()
                probs = torch.softmax(logits, -1)  # what min_p is measured against, before the temperature
                logits[banned] = float("-inf")
                if min_p is not None:
                    low = probs < min_p
                    low[banned] = True
                    if bool(low.all()):
                        if not warned:
                            warn(f"LMLearner.predict: no token has a probability of min_p={min_p} or more; none is "
                                 "left out (try a lower min_p)")
                            warned = True
                    else:
                        logits[low] = float("-inf")
                probs = torch.softmax(logits / temperature, -1)
                nxt = int(torch.multinomial(probs, 1, generator=gen))
                out_ids.append(nxt)
                if only_last_word:  # as fastai: the next word from this one alone, the state cleared
                    enc.reset()
                logits = model(torch.tensor([[nxt]], device=self.device))[0][0, -1]
        enc.reset()
        model.train(was_training)
        if decoder is None:
            return block.decode(out_ids)
        vocab = block.vocab
        return " ".join(decoder([vocab[i] for i in out_ids if vocab[i] not in ("xxbos", "xxpad")]))


def language_model_learner(dls: Any, arch: Any = AWD_LSTM, config: dict[str, Any] | None = None,
                           drop_mult: float = 1.0, backwards: bool = False, pretrained: bool = False,
                           metrics: Any = None, alpha: float = 2.0, beta: float = 1.0, **kwargs: Any) -> LMLearner:
    """A Learner for an AWD-LSTM language model on ``dls`` (a TextBlock with ``is_lm=True``).

    The weights start at random: pipekit ships no pretrained text weights, so ``pretrained`` must be False
    (the book's default True is refused saying so), and ``backwards=True`` is refused. ``alpha`` and ``beta`` weigh
    the AR and TAR terms added to the training loss; the momentums default to ULMFiT's ``(0.8, 0.7, 0.8)``
    (``TextLearner``). Other keyword arguments (``loss_func``, ``cbs``, ``wd``, ``moms``, ``path``, ...) go to
    ``Learner``; any other is refused, naming them.

    >>> import pipekit.datasets as D
    >>> from pipekit.text import AWD_LSTM, TextDataLoaders, language_model_learner
    >>> dls_lm = TextDataLoaders.from_csv(D.path("imdb_sample"), "texts.csv", text_col="text", is_lm=True,
    ...                                   valid_pct=0.1, bs=16, seed=0)
    >>> learn = language_model_learner(dls_lm, AWD_LSTM, drop_mult=0.3, config=dict(emb_sz=16, n_hid=16, n_layers=1))
    >>> xb, yb = dls_lm.one_batch()     # 16 streams of 72 tokens; the targets are the next tokens
    >>> scores = learn.model(xb)[0]     # a score for every word of the vocab at every position
    >>> tuple(xb.shape), tuple(scores.shape) == (16, 72, len(dls_lm.vocab))
    ((16, 72), True)
    """
    check_learner_kwargs("language_model_learner", kwargs, language_model_learner,
                         given=("dls", "model", "splitter"))
    _check_pretrained("language_model_learner", pretrained, backwards)
    _check_arch(arch)
    block = text_block_of(dls)
    problem = LMLearner.data_problem(dls)
    if problem is not None:
        raise ParameterError(f"language_model_learner {problem}")
    cfg = awd_lstm_config(awd_lstm_lm_config, config, drop_mult, block.pad_idx)
    model = awd_lstm_lm(len(block.vocab), **cfg)
    return LMLearner(dls, model, alpha=alpha, beta=beta, loss_func=kwargs.pop("loss_func", CrossEntropyLossFlat()),
                     splitter=awd_lstm_lm_split, metrics=metrics, **kwargs)


def text_classifier_learner(dls: Any, arch: Any = AWD_LSTM, seq_len: int = 72, config: dict[str, Any] | None = None,
                            backwards: bool = False, pretrained: bool = False, drop_mult: float = 0.5,
                            n_out: int | None = None, lin_ftrs: list[int] | None = None, ps: list[float] | None = None,
                            max_len: int = 72 * 20, y_range: Sequence[float] | None = None, metrics: Any = None,
                            encoder: str | os.PathLike | None = None, alpha: float = 2.0, beta: float = 1.0,
                            **kwargs: Any) -> TextLearner:
    """A Learner for an AWD-LSTM classifier with a concat-pooling head; layer groups for gradual unfreezing
    are embedding, each LSTM, head. ``encoder`` loads (and freezes) a saved language-model encoder.

    The head: ``lin_ftrs`` hidden sizes (default ``[50]``) with dropouts ``[output_p * drop_mult] + ps`` (``ps``
    default 0.1 each): ``drop_mult`` scales the config's dropouts, ``output_p`` among them, not ``ps``, as in fastai.

    For a regression (``y_block=RegressionBlock``), ``y_range=(low, high)`` squashes the outputs into that
    range with a sigmoid (:class:`~pipekit.learn.nets.SigmoidRange`). ``pretrained`` must be False and
    ``backwards`` is refused, as in :func:`language_model_learner`. ``alpha`` and ``beta`` weigh the AR and TAR
    terms added to the training loss, computed from the encoder's outputs (0 leaves a term out), as fastai's; the
    momentums default to ULMFiT's (``TextLearner``). Other keyword arguments go to ``Learner``; any other is refused,
    naming them.

    >>> import polars as pl, pipekit.datasets as D
    >>> from pipekit.data import RegressionBlock
    >>> from pipekit.text import TextDataLoaders
    >>> df = pl.read_csv(D.path("imdb_sample") / "texts.csv").head(40)
    >>> df = df.with_columns(pl.col("text").str.len_chars().log().alias("log_len"))
    >>> dls = TextDataLoaders.from_df(df, text_col="text", label_col="log_len", y_block=RegressionBlock, bs=8,
    ...                               seed=0, cache_dir=False)
    >>> learn = text_classifier_learner(dls, AWD_LSTM, pretrained=False, y_range=(4, 9),
    ...                                 config=dict(emb_sz=16, n_hid=16, n_layers=1))
    >>> preds = learn.get_preds()[0]
    >>> bool(((preds > 4) & (preds < 9)).all())
    True
    """
    check_learner_kwargs("text_classifier_learner", kwargs, text_classifier_learner,
                         given=("dls", "model", "splitter"))
    _check_pretrained("text_classifier_learner", pretrained, backwards)
    check("text_classifier_learner", y_range=(y_range, Y_RANGE))
    _check_arch(arch)
    block = text_block_of(dls)
    if block.is_lm:
        raise ParameterError("text_classifier_learner needs classification data (TextBlock without is_lm) and labels")
    check_targets_fit("text_classifier_learner", dls, kwargs.get("loss_func"), n_out, builds_model=True)
    n_out = n_out if n_out is not None else dls.c
    if not n_out:
        raise ParameterError("cannot tell the number of classes: pass n_out= or use a CategoryBlock target")
    cfg = awd_lstm_config(awd_lstm_clas_config, config, drop_mult, block.pad_idx)
    output_p = cfg.pop("output_p")
    lin_ftrs = [50] if lin_ftrs is None else list(lin_ftrs)
    # drop_mult scales the config's dropouts (output_p, the head's first, among them), not the head's ps: fastai's
    ps = [0.1] * len(lin_ftrs) if ps is None else list(ps)
    model = awd_lstm_classifier(len(block.vocab), int(n_out), seq_len, max_len, output_p=output_p,
                                lin_ftrs=lin_ftrs, ps=ps, drop_mult=1.0,
                                y_range=None if y_range is None else [float(y_range[0]), float(y_range[1])], **cfg)
    learn = TextLearner(dls, model, alpha=alpha, beta=beta, splitter=awd_lstm_clas_split, metrics=metrics, **kwargs)
    if encoder is not None:
        learn.load_encoder(encoder)
    return learn
