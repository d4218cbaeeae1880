"""ULMFiT learners: a language model (AR/TAR regularized, hidden state reset per phase), its encoder saved
and loaded with vocabulary alignment, and a classifier fine-tuned with gradual unfreezing.

>>> # dls_lm = DataBlock(blocks=TextBlock.from_df('text', is_lm=True), get_x=ColReader('text'), ...).dataloaders(df)
>>> # learn = language_model_learner(dls_lm, AWD_LSTM, drop_mult=0.3, metrics=[accuracy, perplexity])
>>> # learn.fit_one_cycle(1, 2e-2); learn.save_encoder('ft')
>>> # learn = text_classifier_learner(dls_clas, AWD_LSTM, drop_mult=0.5, metrics=accuracy)
>>> # learn.load_encoder('ft'); learn.fit_one_cycle(1, 2e-2); learn.freeze_to(-2); ...
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import polars as pl
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from pipekit.core.registry import register
from pipekit.data.getters import ColReader
from pipekit.learn import Callback, CrossEntropyLossFlat, Learner, register_arch
from pipekit.text.models import (AWD_LSTM, DROPOUTS, awd_lstm_clas_split, awd_lstm_lm_split, get_language_model,
                                 get_text_classifier)
from pipekit.text.tokenize import UNK

#: defaults of the language model (lighter dropout: it sees much more data than the classifier)
AWD_LSTM_LM_CONFIG = dict(emb_sz=400, n_hid=1152, n_layers=3, pad_token=1, hidden_p=0.15, input_p=0.25,
                          embed_p=0.02, weight_p=0.2, output_p=0.1)
AWD_LSTM_CLAS_CONFIG = dict(emb_sz=400, n_hid=1152, n_layers=3, pad_token=1, hidden_p=0.3, input_p=0.4,
                            embed_p=0.05, weight_p=0.5, output_p=0.4)
_ENCODER_KEYS = ("emb_sz", "n_hid", "n_layers", "pad_token", "hidden_p", "input_p", "embed_p", "weight_p")


@register_arch("awd_lstm_lm")
def awd_lstm_lm(vocab_sz: int, emb_sz: int = 400, n_hid: int = 1152, n_layers: int = 3, pad_token: int = 1,
                hidden_p: float = 0.15, input_p: float = 0.25, embed_p: float = 0.02, weight_p: float = 0.2,
                output_p: float = 0.1, tie_weights: bool = True) -> nn.Module:
    """An AWD-LSTM language model (encoder + tied decoder), rebuildable from its arguments."""
    enc = AWD_LSTM(vocab_sz, emb_sz, n_hid, n_layers, pad_token, hidden_p, input_p, embed_p, weight_p)
    return get_language_model(enc, output_p, tie_weights)


@register_arch("awd_lstm_classifier")
def awd_lstm_classifier(vocab_sz: int, n_class: int, seq_len: int = 72, max_len: int = 72 * 20, emb_sz: int = 400,
                        n_hid: int = 1152, n_layers: int = 3, pad_token: int = 1, hidden_p: float = 0.3,
                        input_p: float = 0.4, embed_p: float = 0.05, weight_p: float = 0.5, output_p: float = 0.4,
                        lin_ftrs: list[int] | None = None, ps: list[float] | None = None,
                        drop_mult: float = 1.0) -> nn.Module:
    """An AWD-LSTM classifier (encoder read in windows + concat-pooling head)."""
    enc = AWD_LSTM(vocab_sz, emb_sz, n_hid, n_layers, pad_token, hidden_p, input_p, embed_p, weight_p)
    return get_text_classifier(enc, n_class, seq_len, max_len, lin_ftrs, ps, output_p, drop_mult)


class ModelResetter(Callback):
    """Clear the recurrent state before training, before validation and after fitting."""

    order = -10

    def _reset(self) -> None:
        if hasattr(self.learn.model, "reset"):
            self.learn.model.reset()

    before_train = before_validate = after_fit = _reset


class RNNRegularizer(Callback):
    """AR (``alpha``: size of the dropped-out last-layer activations) and TAR (``beta``: change between
    consecutive time steps of the raw activations), added to the training loss."""

    order = -5

    def __init__(self, alpha: float = 2.0, beta: float = 1.0):
        if alpha < 0 or beta < 0:
            raise ValueError(f"RNNRegularizer: alpha and beta must be >= 0, got {alpha}, {beta}")
        self.alpha, self.beta = alpha, beta
        self.raw_out = self.out = None

    def after_pred(self) -> None:
        pred = self.learn.pred
        if isinstance(pred, tuple) and len(pred) == 3:
            self.raw_out, self.out = pred[1], pred[2]
            self.learn.pred = pred[0]

    def after_loss(self) -> None:
        if not self.learn.training or self.learn.loss_grad is None or self.out is None:
            return
        reg = self.alpha * self.out.float().pow(2).mean()
        if self.raw_out.size(1) > 1:
            reg = reg + self.beta * (self.raw_out[:, 1:] - self.raw_out[:, :-1]).float().pow(2).mean()
        self.learn.loss_grad = self.learn.loss_grad + reg


def text_block_of(dls: Any) -> Any:
    """The TextBlock of ``dls`` (its vocab is the token list)."""
    from pipekit.text.blocks import TextBlock

    for b in getattr(dls, "blocks", ()):
        if isinstance(b, TextBlock):
            return b
    raise TypeError("these DataLoaders have no TextBlock; build them with DataBlock(blocks=(TextBlock.from_df(...), ...))")


def _check_arch(arch: Any) -> None:
    if arch is not AWD_LSTM and arch != "AWD_LSTM":
        raise ValueError(f"arch={arch!r} is not supported; use AWD_LSTM")


def _config(base: dict[str, Any], config: dict[str, Any] | None, drop_mult: float) -> dict[str, Any]:
    if not isinstance(drop_mult, (int, float)) or drop_mult < 0:
        raise ValueError(f"drop_mult must be a number >= 0, got {drop_mult!r}")
    cfg = dict(base)
    unknown = set(config or {}) - set(base)
    if unknown:
        raise ValueError(f"config has unknown keys {sorted(unknown)}; accepted: {sorted(base)}")
    cfg.update(config or {})
    for k in DROPOUTS:
        cfg[k] = min(cfg[k] * drop_mult, 0.99)
    return cfg


@register(kind="learner")
class TextLearner(Learner):
    """A Learner for AWD-LSTM models, able to save and load the encoder with vocabulary alignment."""

    @property
    def encoder(self) -> AWD_LSTM:
        m = self.model[0]
        return m.module if hasattr(m, "module") else m

    @property
    def text_vocab(self) -> list[str]:
        return text_block_of(self.dls).vocab

    def _file(self, name: str | os.PathLike) -> Path:
        p = Path(name)
        if p.suffix == ".safetensors" or p.is_absolute() or p.exists():
            return p if p.suffix else p.with_suffix(".safetensors")
        return self.path / self.model_dir / f"{name}.safetensors"

    def save_encoder(self, name: str) -> Path:
        """Write the encoder weights and its vocab to ``path/model_dir/name.safetensors``."""
        enc = self.encoder
        f = self._file(name)
        f.parent.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous().clone() for k, v in enc.state_dict().items()}
        cfg = {"vocab_sz": enc.vocab_sz, "emb_sz": enc.emb_sz, "n_hid": enc.n_hid, "n_layers": enc.n_layers}
        save_file(state, str(f), metadata={"vocab": json.dumps(self.text_vocab), "config": json.dumps(cfg),
                                           "format": "pipekit-awd-lstm-encoder-1"})
        return f

    def load_encoder(self, name: str | os.PathLike, freeze: bool = True) -> TextLearner:
        """Load encoder weights saved by ``save_encoder``; rows are matched by token, so an encoder trained
        with another vocab fits (tokens it never saw start at the mean embedding). Freezes all but the head."""
        from safetensors import safe_open

        f = self._file(name)
        if not f.exists():
            raise FileNotFoundError(f"no encoder file {f}; save one with learn.save_encoder('{name}')")
        with safe_open(str(f), "pt") as fh:
            meta = fh.metadata() or {}
        if "vocab" not in meta:
            raise ValueError(f"{f} has no vocab metadata; it was not written by save_encoder")
        old_vocab = json.loads(meta["vocab"])
        state = load_file(str(f))
        enc = self.encoder
        own = enc.state_dict()
        mismatch = [k for k in own if k != "encoder.weight" and (k not in state or state[k].shape != own[k].shape)]
        if mismatch:
            got = {k: tuple(state[k].shape) for k in mismatch if k in state}
            raise ValueError(f"{f}: encoder shapes do not match this model at {mismatch[:4]} (file {got}); "
                             f"build the learner with the same config (emb_sz, n_hid, n_layers) as the saved one, "
                             f"saved config: {meta.get('config')}")
        state["encoder.weight"] = match_embeddings(state["encoder.weight"], old_vocab, self.text_vocab)
        enc.load_state_dict(state)
        if freeze:
            self.freeze()
        return self

    def predict(self, item: Any) -> tuple[Any, torch.Tensor, torch.Tensor]:
        """Classify one text: ``(label, class index, probabilities)``."""
        if isinstance(item, str):
            recipe = getattr(self.dls, "recipe", None)
            getter = recipe.getters[0] if recipe is not None and getattr(recipe, "getters", None) else None
            col = getter.cols if isinstance(getter, ColReader) and isinstance(getter.cols, str) else "text"
            item_df = pl.DataFrame({col: [item]})
            from pipekit.learn.inference import get_preds

            dl = self.dls.test_dl(item_df)
            _, preds, _, dec = get_preds(self, dl=dl, with_input=True, with_decoded=True)
            y_block = self.dls.y_block
            return (y_block.decode(dec[0]) if y_block is not None else dec[0]), dec[0], preds[0]
        return super().predict(item)


def match_embeddings(old_w: torch.Tensor, old_vocab: list[str], new_vocab: list[str]) -> torch.Tensor:
    """Rows of ``old_w`` re-ordered for ``new_vocab``; tokens not in ``old_vocab`` get the mean row.

    >>> w = torch.tensor([[1., 1.], [3., 3.]])
    >>> match_embeddings(w, ["a", "b"], ["b", "c", "a"]).tolist()
    [[3.0, 3.0], [2.0, 2.0], [1.0, 1.0]]
    """
    if old_w.size(0) != len(old_vocab):
        raise ValueError(f"embedding has {old_w.size(0)} rows but the saved vocab {len(old_vocab)} tokens")
    index = {t: i for i, t in enumerate(old_vocab)}
    mean = old_w.mean(0)
    new_w = mean.expand(len(new_vocab), old_w.size(1)).clone()
    pairs = [(j, index[t]) for j, t in enumerate(new_vocab) if t in index]
    if pairs:
        dst, src = zip(*pairs)
        new_w[list(dst)] = old_w[list(src)]
    return new_w


@register(kind="learner")
class LMLearner(TextLearner):
    """A language-model Learner; ``predict`` generates text."""

    def predict(self, text: str, n_words: int = 1, temperature: float = 1.0, no_unk: bool = True,
                seed: int | None = None) -> str:
        """Continue ``text`` with ``n_words`` sampled tokens (``temperature`` < 1: safer, > 1: wilder)."""
        if not isinstance(text, str):
            raise TypeError(f"predict takes a str prompt, got {type(text).__name__}")
        if not isinstance(n_words, int) or n_words < 0:
            raise ValueError(f"n_words must be an int >= 0, got {n_words!r}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        block = text_block_of(self.dls)
        vocab = block.vocab
        ids = torch.as_tensor(block.encode_text(text), device=self.device)[None]
        gen = torch.Generator(device="cpu")
        gen.manual_seed(seed if seed is not None else int(torch.randint(0, 2**31 - 1, (1,)).item()))
        banned = [i for i, t in enumerate(vocab) if t in ("xxfake", "xxpad", "xxbos") or (no_unk and t == UNK)]
        model = self.model
        was_training = model.training
        model.eval()
        model.reset()
        out_ids: list[int] = ids[0].tolist()
        with torch.no_grad():
            logits = model(ids)[0][0, -1]
            for _ in range(n_words):
                logits = logits.float().cpu()
                logits[banned] = float("-inf")
                probs = torch.softmax(logits / temperature, -1)
                nxt = int(torch.multinomial(probs, 1, generator=gen))
                out_ids.append(nxt)
                logits = model(torch.tensor([[nxt]], device=self.device))[0][0, -1]
        model.reset()
        model.train(was_training)
        return block.decode(out_ids)


def language_model_learner(dls: Any, arch: Any = AWD_LSTM, config: dict[str, Any] | None = None,
                           drop_mult: float = 1.0, metrics: Any = None, alpha: float = 2.0, beta: float = 1.0,
                           **kwargs: Any) -> LMLearner:
    """A Learner for an AWD-LSTM language model on ``dls`` (a TextBlock with ``is_lm=True``)."""
    _check_arch(arch)
    block = text_block_of(dls)
    if not getattr(block, "is_lm", False):
        raise ValueError("language_model_learner needs language-model data: TextBlock.from_df(..., is_lm=True)")
    cfg = _config(AWD_LSTM_LM_CONFIG, config, drop_mult)
    cfg["pad_token"] = block.pad_idx
    model = awd_lstm_lm(len(block.vocab), **cfg)
    cbs = [ModelResetter(), RNNRegularizer(alpha, beta)] + list(kwargs.pop("cbs", None) or [])
    return LMLearner(dls, model, loss_func=kwargs.pop("loss_func", CrossEntropyLossFlat()),
                     splitter=awd_lstm_lm_split, metrics=metrics, cbs=cbs, **kwargs)


def text_classifier_learner(dls: Any, arch: Any = AWD_LSTM, seq_len: int = 72, config: dict[str, Any] | None = None,
                            drop_mult: float = 0.5, n_out: int | None = None, lin_ftrs: list[int] | None = None,
                            ps: list[float] | None = None, max_len: int = 72 * 20, metrics: Any = None,
                            encoder: str | os.PathLike | None = None, **kwargs: Any) -> TextLearner:
    """A Learner for an AWD-LSTM classifier with a concat-pooling head; layer groups for gradual unfreezing
    are embedding, each LSTM, head. ``encoder`` loads (and freezes) a saved language-model encoder."""
    _check_arch(arch)
    block = text_block_of(dls)
    if getattr(block, "is_lm", False):
        raise ValueError("text_classifier_learner needs classification data (TextBlock without is_lm) and labels")
    n_out = n_out if n_out is not None else getattr(dls, "c", None)
    if not n_out:
        raise ValueError("cannot tell the number of classes: pass n_out= or use a CategoryBlock target")
    cfg = _config(AWD_LSTM_CLAS_CONFIG, config, drop_mult)
    cfg["pad_token"] = block.pad_idx
    output_p = cfg.pop("output_p")
    lin_ftrs = [50] if lin_ftrs is None else list(lin_ftrs)
    ps = [p * drop_mult for p in ([0.1] * len(lin_ftrs) if ps is None else ps)]
    model = awd_lstm_classifier(len(block.vocab), int(n_out), seq_len, max_len, output_p=output_p,
                                lin_ftrs=lin_ftrs, ps=ps, drop_mult=1.0, **cfg)
    cbs = [ModelResetter()] + list(kwargs.pop("cbs", None) or [])
    learn = TextLearner(dls, model, splitter=awd_lstm_clas_split, metrics=metrics, cbs=cbs, **kwargs)
    if encoder is not None:
        learn.load_encoder(encoder)
    return learn
