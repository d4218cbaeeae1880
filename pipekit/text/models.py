"""AWD-LSTM (Merity et al.): an embedding, a stack of LSTMs with DropConnect on the hidden-to-hidden
weights, and dropout everywhere, plus the language-model decoder and the concat-pooling classifier.

>>> enc = AWD_LSTM(vocab_sz=100, emb_sz=16, n_hid=32, n_layers=2)
>>> lm = get_language_model(enc)
>>> logits, raw, out = lm(torch.randint(0, 100, (4, 10)))
>>> tuple(logits.shape), tuple(raw.shape)
((4, 10, 100), (4, 10, 16))
>>> clf = get_text_classifier(AWD_LSTM(vocab_sz=100, emb_sz=16, n_hid=32, n_layers=2), n_class=3, seq_len=8)
>>> tuple(clf.eval()(torch.randint(2, 100, (5, 20))).shape)  # in training: (logits, outputs, outputs), for AR/TAR
(5, 3)
"""
from __future__ import annotations

import contextlib

import inspect
import re
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from pipekit.core.errors import DataError, FieldError, ParameterError
from pipekit.core.validate import BOOL, POSITIVE_SIZES, Y_RANGE, Interval, check
from pipekit.learn.nets import SigmoidRange, check_stored_layers, linear_layers
from pipekit.learn.registry import register_arch

#: the dropout probabilities of an AWD-LSTM's config; ``drop_mult`` scales them all (not a classifier head's own ``ps``)
DROPOUTS = ("input_p", "hidden_p", "embed_p", "weight_p", "output_p")
#: fastai's AWD-LSTM configurations, its keys and values, for the ``config`` of ``language_model_learner`` and
#: ``text_classifier_learner`` (and what they build from): copy one and change it (``config =
#: awd_lstm_clas_config.copy(); config.update({'n_hid': 100})``). The language model's dropouts are lighter: it sees
#: much more data than the classifier. ``bidir``, ``tie_weights`` and ``out_bias`` say what pipekit's AWD-LSTM always
#: is (one-way, its language model's decoder tied to the embedding and with a bias); another value is refused.
awd_lstm_lm_config = dict(emb_sz=400, n_hid=1152, n_layers=3, pad_token=1, bidir=False, output_p=0.1,
                          hidden_p=0.15, input_p=0.25, embed_p=0.02, weight_p=0.2, tie_weights=True, out_bias=True)
awd_lstm_clas_config = dict(emb_sz=400, n_hid=1152, n_layers=3, pad_token=1, bidir=False, output_p=0.4,
                            hidden_p=0.3, input_p=0.4, embed_p=0.05, weight_p=0.5)
#: config keys of fastai's that pipekit's AWD-LSTM accepts at one value only: (that value, why no other)
_FIXED_CONFIG = {
    "bidir": (False, "pipekit's AWD_LSTM reads texts in one direction (no bidirectional LSTMs)"),
    "tie_weights": (True, "language_model_learner ties the decoder's weights to the embedding (for an untied "
                          "decoder build the model by hand: get_language_model(AWD_LSTM(...), tie_weights=False))"),
    "out_bias": (True, "the language model's decoder always has an output bias"),
}


class RNNDropout(nn.Module):
    """Dropout with one mask per sequence (the same units dropped at every time step)."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        return x * x.new_empty(x.size(0), 1, *x.shape[2:]).bernoulli_(1 - self.p).div_(1 - self.p)


class WeightDropLSTM(nn.Module):
    """One LSTM layer whose hidden-to-hidden weights are dropped (DropConnect) at each forward in training."""

    def __init__(self, n_in: int, n_out: int, weight_p: float = 0.5):
        super().__init__()
        self.lstm = nn.LSTM(n_in, n_out, 1, batch_first=True)
        self.weight_p = weight_p

    def forward(self, x: torch.Tensor, h: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, Any]:
        if self.training and self.weight_p > 0:
            w = F.dropout(self.lstm.get_parameter("weight_hh_l0"), self.weight_p, training=True)
            # a functional call swaps the dropped weight in for this forward only; gradients reach the raw weight
            return functional_call(self.lstm, {"weight_hh_l0": w}, (x, h))
        return self.lstm(x, h)


class AWD_LSTM(nn.Module):  # noqa: N801 - the architecture's published name
    """Embedding (with word-level embedding dropout) -> ``n_layers`` weight-dropped LSTMs.

    ``bidir`` is fastai's argument, so fastai's configs (``AWD_LSTM(vocab_sz, **config)``) build one: it must be
    False. Keeps its hidden state between calls (language models read a stream batch after batch);
    ``reset()`` clears it. Returns the last layer's output ``(bs, seq_len, emb_sz)``.

    >>> import torch
    >>> from pipekit.text import AWD_LSTM
    >>> _ = torch.manual_seed(0)
    >>> enc = AWD_LSTM(vocab_sz=100, emb_sz=16, n_hid=32, n_layers=2)
    >>> tuple(enc(torch.randint(0, 100, (4, 10))).shape)
    (4, 10, 16)
    >>> enc.reset()  # a new stream of text: clear the hidden state
    """

    #: the token of each embedding row, on an encoder loaded from its file (``pipekit.load``)
    vocab: list[str]

    def __init__(self, vocab_sz: int, emb_sz: int = 400, n_hid: int = 1152, n_layers: int = 3, pad_token: int = 1,
                 hidden_p: float = 0.3, input_p: float = 0.4, embed_p: float = 0.05, weight_p: float = 0.5, *,
                 bidir: bool = False):
        super().__init__()
        check("AWD_LSTM", bidir=(bidir, BOOL))
        if bidir:
            raise ParameterError("AWD_LSTM: bidir=True is not supported: pipekit's AWD_LSTM reads texts in one "
                                 "direction (no bidirectional LSTMs); pass bidir=False or leave it out")
        size, p = Interval(1, None, integer=True), Interval(0, 1, closed="left")
        check("AWD_LSTM", vocab_sz=(vocab_sz, size), emb_sz=(emb_sz, size), n_hid=(n_hid, size),
              n_layers=(n_layers, size), hidden_p=(hidden_p, p), input_p=(input_p, p), embed_p=(embed_p, p),
              weight_p=(weight_p, p))
        check("AWD_LSTM", pad_token=(pad_token, Interval(0, vocab_sz - 1, integer=True)))
        self.vocab_sz, self.emb_sz, self.n_hid, self.n_layers = vocab_sz, emb_sz, n_hid, n_layers
        self.pad_token, self.embed_p = pad_token, embed_p
        self.encoder = nn.Embedding(vocab_sz, emb_sz, padding_idx=pad_token)
        nn.init.uniform_(self.encoder.weight, -0.1, 0.1)
        with torch.no_grad():
            self.encoder.weight[pad_token].zero_()
        self.rnns = nn.ModuleList([WeightDropLSTM(emb_sz if i == 0 else n_hid, emb_sz if i == n_layers - 1 else n_hid,
                                                  weight_p) for i in range(n_layers)])
        self.input_dp = RNNDropout(input_p)
        self.hidden_dps = nn.ModuleList([RNNDropout(hidden_p) for _ in range(n_layers)])
        self.hidden: list[tuple[torch.Tensor, torch.Tensor]] | None = None

    def embed(self, inp: torch.Tensor) -> torch.Tensor:
        w = self.encoder.weight
        if self.training and self.embed_p > 0:
            # drop whole words: one mask row per vocabulary entry
            mask = w.new_empty(w.size(0), 1).bernoulli_(1 - self.embed_p).div_(1 - self.embed_p)
            w = w * mask
        return F.embedding(inp, w, self.pad_token)

    def reset(self) -> None:
        self.hidden = None

    def _init_hidden(self, bs: int, ref: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        sizes = [self.emb_sz if i == self.n_layers - 1 else self.n_hid for i in range(self.n_layers)]
        return [(ref.new_zeros(1, bs, n), ref.new_zeros(1, bs, n)) for n in sizes]

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        if inp.ndim != 2:
            raise DataError(f"AWD_LSTM expects token ids of shape (bs, seq_len), got {tuple(inp.shape)}")
        bs = inp.size(0)
        emb = self.embed(inp)
        hidden = self.hidden
        if hidden is None:
            hidden = self._init_hidden(bs, emb)
        elif hidden[0][0].size(1) != bs:
            # fewer rows: keep the first ones (sorted batches drop finished rows); more rows: new ones start at zero
            # (a negative pad crops)
            rows = (0, 0, 0, bs - hidden[0][0].size(1))
            hidden = [(F.pad(h, rows), F.pad(c, rows)) for h, c in hidden]
        output = self.input_dp(emb)
        new_hidden = []
        for i, (rnn, dp) in enumerate(zip(self.rnns, self.hidden_dps)):
            output, h = rnn(output, hidden[i])
            new_hidden.append((h[0].detach(), h[1].detach()))  # truncated backpropagation through time
            if i != self.n_layers - 1:
                output = dp(output)
        self.hidden = new_hidden
        return output


class LinearDecoder(nn.Module):
    """Last LSTM output -> vocabulary logits, with output dropout and (optionally) the embedding's weights.

    Returns ``(logits, raw_output, dropped_output)``: the regularizer callback needs the last two.

    >>> import torch
    >>> from pipekit.text import AWD_LSTM, LinearDecoder
    >>> enc = AWD_LSTM(vocab_sz=100, emb_sz=16, n_hid=32, n_layers=2)
    >>> dec = LinearDecoder(100, 16, tie_encoder=enc.encoder)
    >>> logits, raw, out = dec(torch.randn(4, 10, 16))
    >>> tuple(logits.shape), dec.decoder.weight is enc.encoder.weight
    ((4, 10, 100), True)
    """

    def __init__(self, n_out: int, n_hid: int, output_p: float = 0.1, tie_encoder: nn.Embedding | None = None):
        super().__init__()
        self.decoder = nn.Linear(n_hid, n_out)
        nn.init.uniform_(self.decoder.weight, -0.1, 0.1)
        nn.init.zeros_(self.decoder.bias)
        self.output_dp = RNNDropout(output_p)
        if tie_encoder is not None:
            self.decoder.weight = tie_encoder.weight  # weight tying: one matrix for input and output words

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        dp = self.output_dp(x)
        return self.decoder(dp), x, dp


class SequentialRNN(nn.Sequential):
    """A Sequential whose ``reset()`` clears the hidden state of its recurrent parts: every module inside it
    with a ``reset()`` (an AWD-LSTM, a stateful module written by hand).

    >>> import torch
    >>> from pipekit.text import AWD_LSTM, LinearDecoder, SequentialRNN
    >>> enc = AWD_LSTM(vocab_sz=100, emb_sz=16, n_hid=32, n_layers=2)
    >>> lm = SequentialRNN(enc, LinearDecoder(100, 16))
    >>> tuple(lm(torch.randint(0, 100, (2, 5)))[0].shape)
    (2, 5, 100)
    >>> lm.reset()  # resets the AWD_LSTM inside it
    """

    def reset(self) -> None:
        for m in self.modules():
            reset = getattr(m, "reset", None)
            if m is not self and callable(reset):
                reset()


def _built_language_model(encoder: AWD_LSTM, output_p: float = 0.1, tie_weights: bool = True) -> SequentialRNN:
    check("get_language_model", output_p=(output_p, Interval(0, 1, closed="left")),
          tie_weights=(tie_weights, BOOL))
    dec = LinearDecoder(encoder.vocab_sz, encoder.emb_sz, output_p, encoder.encoder if tie_weights else None)
    return SequentialRNN(encoder, dec)


class SentenceEncoder(nn.Module):
    """Runs the encoder over a padded batch in windows of ``seq_len``, keeping the outputs of the last ``max_len``
    tokens of each text. The padding may come first or last in each row (``pad_input`` pads last by default,
    pipekit's classifier loader first): each row's real tokens are found from the padding mask wherever they are,
    and each row is fed from its first real token on, at the start of a window, with no padding before a real token,
    so a text gets the same outputs alone or in any batch, padded first or last. The outputs come back in the
    pad-first layout whichever side the batch pads: each text's outputs end at the last position (its last token's
    there), zeros before them; the mask marks those positions.

    >>> import torch
    >>> from pipekit.text import AWD_LSTM, SentenceEncoder
    >>> enc = SentenceEncoder(AWD_LSTM(vocab_sz=100, emb_sz=16, n_hid=32, n_layers=2), seq_len=4).eval()
    >>> batch = torch.tensor([[1, 1, 5, 6, 7, 8], [9, 10, 11, 12, 13, 14]])  # pad (1) first
    >>> out, mask = enc(batch)
    >>> tuple(out.shape), mask.tolist()[0]  # the mask marks the positions without a token
    ((2, 6, 16), [True, True, False, False, False, False])
    >>> out_last, mask_last = enc(torch.tensor([[5, 6, 7, 8, 1, 1], [9, 10, 11, 12, 13, 14]]))  # pad last
    >>> torch.equal(out_last, out), torch.equal(mask_last, mask)
    (True, True)
    """

    def __init__(self, module: AWD_LSTM, seq_len: int = 72, pad_idx: int = 1, max_len: int | None = 72 * 20):
        super().__init__()
        self.module, self.seq_len, self.pad_idx, self.max_len = module, seq_len, pad_idx, max_len

    def reset(self) -> None:
        self.module.reset()

    def forward(self, inp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        bs, sl = inp.shape
        pad = inp == self.pad_idx
        lengths = sl - pad.sum(1)
        order = torch.argsort(lengths, descending=True, stable=True)
        x, lens = inp[order], lengths[order]
        # the real tokens moved to the front of each row, in their order, the pads after them, so every row starts a
        # window: a stable sort of the padding mask finds them wherever the batch pads (first, last, or both)
        left = x.gather(1, torch.argsort(pad[order].to(torch.uint8), dim=1, stable=True))
        lens_cpu = lens.tolist()  # read once: each window's counts on the host, no device sync per window
        longest = lens_cpu[0] if bs else 0
        width = sl if self.max_len is None else min(sl, self.max_len)
        self.module.reset()
        outs = []
        for i in range(0, max(longest, 1), self.seq_len):
            stop = min(i + self.seq_len, sl)
            real_bs = sum(n > i for n in lens_cpu)  # rows still reading: a prefix, the rows are sorted by length
            if real_bs == 0:
                o = x.new_zeros(bs, stop - i, self.module.emb_sz, dtype=torch.float32)
            else:
                # a window that ends before every reading row's last ``width`` tokens gives no output that is
                # kept, and the hidden state it passes on is detached: it runs without a graph, so a text longer
                # than max_len costs the memory of max_len tokens in training (the same outputs, the same draws)
                before_kept = stop <= lens_cpu[real_bs - 1] - width
                with torch.no_grad() if before_kept else contextlib.nullcontext():
                    o = self.module(left[:real_bs, i:stop])
                if real_bs < bs:
                    o = torch.cat([o, o.new_zeros(bs - real_bs, o.size(1), o.size(2))], 0)
            outs.append(o)
        out_left = torch.cat(outs, 1)
        # back to the pad-first layout, keeping the last ``max_len`` positions
        pos = torch.arange(width, device=inp.device)
        back = pos[None, :] - (width - lens)[:, None]  # where each kept position's token sits in the left layout
        mask = back < 0
        idx = back.clamp(min=0, max=out_left.size(1) - 1)
        out = out_left.gather(1, idx[:, :, None].expand(-1, -1, out_left.size(2))).masked_fill(mask[:, :, None], 0)
        inverse = torch.empty_like(order)
        inverse[order] = torch.arange(bs, device=order.device)
        return out[inverse], mask[inverse]


def masked_concat_pool(output: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """[last real output, max over real tokens, mean over real tokens]; ``mask`` marks the padding, first or last in
    each row (the last real output is that of the last position the mask leaves, the last position in a row with
    none).

    >>> out = torch.tensor([[[1.], [2.], [0.]], [[0.], [3.], [4.]]])
    >>> masked_concat_pool(out, torch.tensor([[False, False, True], [True, False, False]])).tolist()
    [[2.0, 2.0, 1.5], [4.0, 4.0, 3.5]]
    """
    m = mask.unsqueeze(-1)
    lens = (~mask).sum(1, keepdim=True).clamp(min=1).to(output.dtype)
    avg = output.masked_fill(m, 0).sum(1) / lens
    mx = output.masked_fill(m, float("-inf")).max(1).values
    mx = torch.where(torch.isinf(mx), torch.zeros_like(mx), mx)  # a row with no real token
    # the last unmasked position of each row: the first True of the reversed row (argmax gives the first maximum);
    # a row without one gets the last position, as a row padded first
    last = (output.size(1) - 1) - (~mask).flip(1).to(torch.uint8).argmax(1)
    final = output.gather(1, last[:, None, None].expand(-1, 1, output.size(2))).squeeze(1)
    return torch.cat([final, mx, avg], 1)


class PoolingLinearClassifier(nn.Module):
    """Concat pooling, then BatchNorm/Dropout/Linear blocks: ``layers`` sizes, ``ps`` dropouts (then, with
    ``y_range = (low, high)``, a sigmoid squashing the outputs into that range, for a regression).

    It returns the logits. While ``give_activations`` is set, in training, it returns ``(logits, outputs, outputs)``,
    the encoder's outputs twice, as fastai's head does: ``TextLearner``'s ``RNNRegularizer`` sets it around each
    training batch's forward pass, adds AR and TAR computed from them to the loss and gives the loss and the metrics
    the logits alone. A model of one called by a plain ``Learner`` or a training loop of the user's gets the logits.

    >>> import torch
    >>> from pipekit.text import PoolingLinearClassifier
    >>> head = PoolingLinearClassifier([3 * 16, 8, 2], ps=[0.1, 0.1])
    >>> out, mask = torch.randn(5, 7, 16), torch.zeros(5, 7, dtype=torch.bool)  # encoder outputs, no padding
    >>> tuple(head((out, mask)).shape)
    (5, 2)
    >>> head.give_activations = True
    >>> logits, raw, dropped = head((out, mask))  # training: what the AR/TAR regularizer reads, too
    >>> tuple(logits.shape), raw is out
    ((5, 2), True)
    """

    #: return the encoder's outputs too in training (set by RNNRegularizer around a training batch)
    give_activations: bool = False

    def __init__(self, layers: list[int], ps: list[float], y_range: Sequence[float] | None = None):
        super().__init__()
        if len(ps) != len(layers) - 1:
            raise ParameterError(f"PoolingLinearClassifier: {len(layers) - 1} linear layers need as many dropouts, "
                                 f"got ps={ps}")
        check("PoolingLinearClassifier", y_range=(y_range, Y_RANGE))
        self.layers = nn.Sequential(*linear_layers(layers, ps))
        if y_range is not None:  # inside the head (no weights: the stored names stay those of the linear layers)
            self.layers.append(SigmoidRange(*y_range))

    def forward(self, inp: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor | tuple[torch.Tensor, ...]:
        out, mask = inp
        x = self.layers(masked_concat_pool(out, mask))
        return (x, out, out) if self.training and self.give_activations else x


def _built_text_classifier(encoder: AWD_LSTM, n_class: int, seq_len: int = 72, max_len: int | None = 72 * 20,
                           lin_ftrs: list[int] | None = None, ps: list[float] | None = None,
                           output_p: float = 0.4, drop_mult: float = 1.0,
                           y_range: Sequence[float] | None = None) -> SequentialRNN:
    size = Interval(1, None, integer=True)
    check("get_text_classifier", n_class=(n_class, size), y_range=(y_range, Y_RANGE), seq_len=(seq_len, size),
          max_len=(max_len, Interval(1, None, integer=True, none_ok=True)), drop_mult=(drop_mult, Interval(0, None)))
    lin_ftrs = [50] if lin_ftrs is None else list(lin_ftrs)
    ps = [0.1] * len(lin_ftrs) if ps is None else list(ps)
    for name, value in [("lin_ftrs", v) for v in lin_ftrs]:
        check("get_text_classifier", **{name: (value, size)})
    for name, q in [("output_p", output_p), *(("ps", v) for v in ps)]:
        check("get_text_classifier", **{name: (q, Interval(0, 1, closed="left"))})
    if not output_p * drop_mult < 1:
        raise ParameterError(f"get_text_classifier: output_p={output_p} times drop_mult={drop_mult} is a dropout of "
                             f"{output_p * drop_mult:g}; it must stay below 1")
    layers = [encoder.emb_sz * 3] + lin_ftrs + [n_class]
    head = PoolingLinearClassifier(layers, [output_p * drop_mult] + ps, y_range)
    return SequentialRNN(SentenceEncoder(encoder, seq_len, encoder.pad_token, max_len), head)


def awd_lstm_config(fastai_config: dict[str, Any], config: dict[str, Any] | None, drop_mult: float,
                    pad_token: int) -> dict[str, Any]:
    """The builder's arguments from ``fastai_config`` (``awd_lstm_lm_config`` or ``awd_lstm_clas_config``) updated
    with a user's ``config`` (its keys; ``bidir``, ``tie_weights`` and ``out_bias`` only at the values pipekit's
    AWD-LSTM always has), every dropout times ``drop_mult``.

    >>> awd_lstm_config(awd_lstm_clas_config, {"n_hid": 100}, 0.5, 1)["hidden_p"], "bidir" in awd_lstm_config(
    ...     awd_lstm_lm_config, None, 1.0, 1)
    (0.15, False)
    """
    check("text learner", drop_mult=(drop_mult, Interval(0, None)))
    config = dict(config or {})
    fixed = _FIXED_CONFIG  # taken at their values in either config (a language model's keys in a classifier's too)
    base = {k: v for k, v in fastai_config.items() if k not in _FIXED_CONFIG}
    # fastai's config dicts also name what pipekit's AWD-LSTM always is: one-way, its language model's decoder tied
    # to the embedding and with a bias
    for key, (value, why) in fixed.items():
        given = config.pop(key, value)
        if not (isinstance(given, (bool, int)) and given == value):
            raise ParameterError(f"config: {key}={given!r:.40} is not supported: {why}; leave {key} out of the config "
                                 f"or set it to {value}")
    unknown = set(config) - set(base)
    if unknown:
        raise ParameterError(f"config has unknown keys {sorted(unknown)}; accepted: {sorted([*base, *fixed])}")
    cfg = {**base, **config, "pad_token": pad_token}
    for k in DROPOUTS:
        cfg[k] = min(cfg[k] * drop_mult, 0.99)
    return cfg


# the two forms of get_language_model and get_text_classifier, as the error for a wrong first argument names them
_LM_FORMS = ("get_language_model(AWD_LSTM, vocab_sz, config=None, drop_mult=1.0) (fastai's form: the encoder built "
             "from vocab_sz and config, awd_lstm_lm_config by default) or get_language_model(AWD_LSTM(vocab_sz, ...), "
             "output_p=0.1, tie_weights=True) (an encoder already built)")
_CLAS_FORMS = ("get_text_classifier(AWD_LSTM, vocab_sz, n_class, seq_len=72, config=None, drop_mult=1.0, "
               "lin_ftrs=None, ps=None, pad_idx=1, max_len=1440, y_range=None) (fastai's form: the encoder built from "
               "vocab_sz and config, awd_lstm_clas_config by default) or get_text_classifier(AWD_LSTM(vocab_sz, ...), "
               "n_class, seq_len=72, max_len=1440, lin_ftrs=None, ps=None, output_p=0.4, drop_mult=1.0, "
               "y_range=None) (an encoder already built)")


def _call_form(fn: str, form: Any, forms: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> SequentialRNN:
    """``form(*args, **kwargs)``, arguments it does not take refused naming both forms of ``fn``."""
    try:
        inspect.signature(form).bind(*args, **kwargs)
    except TypeError as e:
        raise ParameterError(f"{fn}: {e}; the arguments are those of {forms}") from None
    return form(*args, **kwargs)


def _check_arch(fn: str, arch: Any, forms: str, factory: Any) -> None:
    """Refuse a first argument of fastai's form that is neither the AWD_LSTM class nor ``factory`` (the learners'
    builder: ``awd_lstm_lm`` or ``awd_lstm_classifier``), naming both forms."""
    if arch is not AWD_LSTM and arch is not factory:
        raise ParameterError(f"{fn}: the first argument is {arch!r:.80}, neither an AWD_LSTM encoder already built nor "
                             f"the AWD_LSTM class (or pipekit.text.models.{factory.__name__}, the learners' builder); "
                             f"use {forms}")

def _config_pad(fn: str, config: Mapping[str, Any] | None, pad: int, pad_name: str) -> dict[str, Any] | None:
    """``config`` as a dict (None stays None), refused when not a mapping or when its ``pad_token`` is not ``pad``."""
    if config is None:
        return None
    if not isinstance(config, Mapping):
        raise ParameterError(f"{fn}: config must be a dict of AWD_LSTM settings (a copy of awd_lstm_lm_config or "
                             f"awd_lstm_clas_config, changed), got {type(config).__name__}")
    given = config.get("pad_token", pad)
    if given != pad:
        raise ParameterError(f"{fn}: config's pad_token={given!r:.40} differs from {pad_name}={pad!r:.40}; the "
                             "embedding and the padding of batches must use the same id: make them equal")
    return dict(config)


def _language_model_from_arch(arch: Any, vocab_sz: int, config: Mapping[str, Any] | None = None,
                              drop_mult: float = 1.0) -> SequentialRNN:
    _check_arch("get_language_model", arch, _LM_FORMS, awd_lstm_lm)
    check("get_language_model", drop_mult=(drop_mult, Interval(0, None)))
    pad = config.get("pad_token", 1) if isinstance(config, Mapping) else 1  # the config's, as fastai's
    cfg = awd_lstm_config(awd_lstm_lm_config, _config_pad("get_language_model", config, pad, "pad_token"),
                          drop_mult, pad)
    return awd_lstm_lm(vocab_sz, **cfg)


def _text_classifier_from_arch(arch: Any, vocab_sz: int, n_class: int, seq_len: int = 72,
                               config: Mapping[str, Any] | None = None, drop_mult: float = 1.0,
                               lin_ftrs: list[int] | None = None, ps: list[float] | None = None, pad_idx: int = 1,
                               max_len: int | None = 72 * 20, y_range: Sequence[float] | None = None) -> SequentialRNN:
    _check_arch("get_text_classifier", arch, _CLAS_FORMS, awd_lstm_classifier)
    # what the head is checked for, before an encoder of millions of weights is built
    size = Interval(1, None, integer=True)
    check("get_text_classifier", n_class=(n_class, size), y_range=(y_range, Y_RANGE), seq_len=(seq_len, size),
          max_len=(max_len, Interval(1, None, integer=True, none_ok=True)), drop_mult=(drop_mult, Interval(0, None)))
    cfg = awd_lstm_config(awd_lstm_clas_config, _config_pad("get_text_classifier", config, pad_idx, "pad_idx"),
                          drop_mult, pad_idx)
    output_p = cfg.pop("output_p")
    # drop_mult has scaled output_p (the head's first dropout) with the config's; the head's own ps stay as given
    return awd_lstm_classifier(vocab_sz, n_class, seq_len, max_len, output_p=output_p, lin_ftrs=lin_ftrs,
                                       ps=ps, drop_mult=1.0, y_range=y_range, **cfg)


def get_language_model(arch: AWD_LSTM | type[AWD_LSTM] | Any, *args: Any, **kwargs: Any) -> SequentialRNN:
    """An AWD-LSTM encoder + a linear decoder tied to its embedding, in one of two forms:

    - fastai's ``get_language_model(AWD_LSTM, vocab_sz, config=None, drop_mult=1.0)``: the encoder built from
      ``vocab_sz`` and ``config`` (``awd_lstm_lm_config`` by default, keys as fastai's), every dropout of the config
      (``output_p`` among them) times ``drop_mult``, as ``language_model_learner`` builds it;
    - ``get_language_model(encoder, output_p=0.1, tie_weights=True)`` with an ``AWD_LSTM`` already built.

    >>> lm = get_language_model(AWD_LSTM, 100, config=dict(awd_lstm_lm_config, emb_sz=16, n_hid=32, n_layers=2))
    >>> tuple(lm(torch.randint(0, 100, (4, 10)))[0].shape)
    (4, 10, 100)
    """
    if isinstance(arch, AWD_LSTM):
        return _call_form("get_language_model", _built_language_model, _LM_FORMS, (arch, *args), kwargs)
    _check_arch("get_language_model", arch, _LM_FORMS, awd_lstm_lm)
    return _call_form("get_language_model", _language_model_from_arch, _LM_FORMS, (arch, *args), kwargs)


def get_text_classifier(arch: AWD_LSTM | type[AWD_LSTM] | Any, *args: Any, **kwargs: Any) -> SequentialRNN:
    """An AWD-LSTM encoder read in windows of ``seq_len`` + a concat-pooling head with ``lin_ftrs`` hidden sizes (->
    a sigmoid squashing the outputs into ``y_range = (low, high)``, for a regression), in one of two forms:

    - fastai's ``get_text_classifier(AWD_LSTM, vocab_sz, n_class, seq_len=72, config=None, drop_mult=1.0,
      lin_ftrs=None, ps=None, pad_idx=1, max_len=1440, y_range=None)``: the encoder built from ``vocab_sz`` and
      ``config`` (``awd_lstm_clas_config`` by default), as ``text_classifier_learner`` builds it;
    - ``get_text_classifier(encoder, n_class, seq_len=72, max_len=1440, lin_ftrs=None, ps=None, output_p=0.4,
      drop_mult=1.0, y_range=None)`` with an ``AWD_LSTM`` already built.

    The head's dropouts are ``[output_p * drop_mult] + ps``: ``drop_mult`` scales the encoder config's dropouts,
    ``output_p`` among them, and leaves the head's own ``ps`` (0.1 each by default) as given, as fastai's does.
    The model gives the logits in evaluation (``.eval()``) and, as fastai's, ``(logits, outputs, outputs)`` in
    training, which ``TextLearner`` (its AR/TAR regularizer) takes apart. Its batches may pad first or last.

    >>> clf = get_text_classifier(AWD_LSTM, 100, 3, config=dict(awd_lstm_clas_config, emb_sz=16, n_hid=32, n_layers=2))
    >>> tuple(clf.eval()(torch.randint(2, 100, (5, 20))).shape)
    (5, 3)
    """
    if isinstance(arch, AWD_LSTM):
        return _call_form("get_text_classifier", _built_text_classifier, _CLAS_FORMS, (arch, *args), kwargs)
    _check_arch("get_text_classifier", arch, _CLAS_FORMS, awd_lstm_classifier)
    return _call_form("get_text_classifier", _text_classifier_from_arch, _CLAS_FORMS, (arch, *args), kwargs)


def encoder_of(model: nn.Module) -> AWD_LSTM:
    """The AWD_LSTM inside a language model or classifier (or any module holding one)."""
    enc = next((m for m in model.modules() if isinstance(m, AWD_LSTM)), None)
    if enc is None:
        raise ParameterError(f"{type(model).__name__} holds no AWD_LSTM encoder")
    return enc


def awd_lstm_lm_split(model: nn.Module) -> list[list[nn.Parameter]]:
    """Layer groups of a language model: each LSTM, then embedding + decoder (tied)."""
    enc, decoder = encoder_of(model), list(model.children())[1]
    groups = [list(r.parameters()) for r in enc.rnns]
    seen = {id(p) for g in groups for p in g}
    last = [p for p in list(enc.encoder.parameters()) + list(decoder.parameters()) if id(p) not in seen]
    return groups + [list({id(p): p for p in last}.values())]


def awd_lstm_clas_split(model: nn.Module) -> list[list[nn.Parameter]]:
    """Layer groups of a classifier: embedding, each LSTM, the head (what ``freeze_to`` counts)."""
    enc, head = encoder_of(model), list(model.children())[1]
    return [list(enc.encoder.parameters())] + [list(r.parameters()) for r in enc.rnns] + [list(head.parameters())]


def check_stored_awd_lstm(config: Mapping[str, Any], shapes: Mapping[str, Sequence[int]], field: str) -> None:
    """Refuse the arguments of an AWD-LSTM language model or classifier read from a file (``config``) whose
    ``n_layers`` is not the number of stored LSTMs (``...rnns.<i>.lstm.weight_ih_l0``), or, for a classifier, whose
    ``lin_ftrs`` are not the stored head's hidden linear sizes (2-d ``1.layers.<i>.weight``), before anything is
    built: each requested layer is a module built even on the meta device (a crafted n_layers=10000 took 4.5 s and
    220 MB, lin_ftrs of 20000 7 s and 430 MB, before the weights were compared).

    >>> shapes = {"0.module.rnns.0.lstm.weight_ih_l0": (64, 16), "1.layers.2.weight": (8, 48),
    ...           "1.layers.6.weight": (2, 8)}
    >>> check_stored_awd_lstm({"n_layers": 1, "n_class": 2, "lin_ftrs": [8]}, shapes, "arch.config")
    >>> check_stored_awd_lstm({"n_layers": 100000}, shapes, "arch.config")
    Traceback (most recent call last):
    ...
    pipekit.core.errors.FieldError: field 'arch.config.n_layers' is 100000, but the stored weights hold 1 LSTM layer(s); the file is damaged or was not written by pipekit
    """
    def bad(name: str, what: str) -> FieldError:
        return FieldError(f"{field}.{name}", f"{what}; the file is damaged or was not written by pipekit")

    size = Interval(1, None, integer=True)
    n_layers = config.get("n_layers", 3)
    if not size.accepts(n_layers):
        raise bad("n_layers", f"must be a positive integer, got {str(n_layers)[:60]!r}")
    rnns = {int(m.group(1)) for k in shapes if (m := re.fullmatch(r"(?:.*\.)?rnns\.(\d+)\.lstm\.weight_ih_l0", k))}
    if n_layers != len(rnns):
        raise bad("n_layers", f"is {n_layers}, but the stored weights hold {len(rnns)} LSTM layer(s)")
    if "n_class" not in config:  # a language model: no classifier head
        return
    lin_ftrs = config.get("lin_ftrs")
    hidden = [50] if lin_ftrs is None else lin_ftrs
    if not POSITIVE_SIZES.accepts(hidden):
        raise bad("lin_ftrs", f"must be None or a list of positive sizes, got {str(lin_ftrs)[:60]!r}")
    stored = check_stored_layers(hidden, shapes, field, "1.layers.", "lin_ftrs", "hidden size(s)")
    if config["n_class"] != stored[-1]:
        raise bad("n_class", f"is {str(config['n_class'])[:60]}, but the stored output layer has {stored[-1]} "
                             "output(s)")


@register_arch("awd_lstm_lm")
def awd_lstm_lm(vocab_sz: int, emb_sz: int = 400, n_hid: int = 1152, n_layers: int = 3, pad_token: int = 1,
                hidden_p: float = 0.15, input_p: float = 0.25, embed_p: float = 0.02, weight_p: float = 0.2,
                output_p: float = 0.1, tie_weights: bool = True) -> SequentialRNN:
    """An AWD-LSTM language model (encoder + tied decoder), rebuildable from its arguments."""
    enc = AWD_LSTM(vocab_sz, emb_sz, n_hid, n_layers, pad_token, hidden_p, input_p, embed_p, weight_p)
    return _built_language_model(enc, output_p, tie_weights)


@register_arch("awd_lstm_classifier")
def awd_lstm_classifier(vocab_sz: int, n_class: int, seq_len: int = 72, max_len: int | None = 72 * 20,
                        emb_sz: int = 400,
                        n_hid: int = 1152, n_layers: int = 3, pad_token: int = 1, hidden_p: float = 0.3,
                        input_p: float = 0.4, embed_p: float = 0.05, weight_p: float = 0.5, output_p: float = 0.4,
                        lin_ftrs: list[int] | None = None, ps: list[float] | None = None,
                        drop_mult: float = 1.0, y_range: Sequence[float] | None = None) -> SequentialRNN:
    """An AWD-LSTM classifier (encoder read in windows + concat-pooling head; ``y_range``: outputs squashed into
    ``(low, high)``, for a regression)."""
    enc = AWD_LSTM(vocab_sz, emb_sz, n_hid, n_layers, pad_token, hidden_p, input_p, embed_p, weight_p)
    return _built_text_classifier(enc, n_class, seq_len, max_len, lin_ftrs, ps, output_p, drop_mult, y_range)


# a file's n_layers and lin_ftrs are compared with its stored weights before load_learner builds anything
awd_lstm_lm.check_stored = check_stored_awd_lstm  # type: ignore[attr-defined]
awd_lstm_classifier.check_stored = check_stored_awd_lstm  # type: ignore[attr-defined]
