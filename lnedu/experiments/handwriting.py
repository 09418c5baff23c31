"""Handwriting sequence generation: an LSTM with a mixture density output, baseline vs layer norm (LN §6.5).

The paper (Ba et al. 2016, §6.5, Figure 5) trains Graves's (2013, §5) handwriting *synthesis* network on
IAM-OnDB: 3 hidden layers of 400 LSTM cells, an input of size 3 (a pen offset and an end-of-stroke bit), a
soft window of 10 Gaussians over the line's text (one-hot characters of size 57) that tells the network which
letter it is writing, and an output layer that is a mixture of 20 bivariate Gaussians plus a Bernoulli
end-of-stroke probability; about 3.7M weights. Adam, mini-batches of 8, sequences of length 500. LN is placed
as in the paper's LN-LSTM equations (Eq. 20-22). Figure 5 plots the train and test negative log-likelihood
against "updates x 200" on a log axis.
Claim: "the model converges to a comparable log likelihood as the baseline model but is much faster".
The paper gives no numbers and no learning rate.

This module: Graves's synthesis network (his Eq. 46-55: every LSTM layer sees the input and the window vector,
as skip connections, and the output layer reads every layer; the window is
:mod:`lnedu.functional.window`), trained by teacher forcing to predict the next offset, with the loss of
:mod:`lnedu.functional.mdn` in nats per pen point. Batches are the first ``seq_len + 1`` points of random lines
(the first ``seq_len`` are the input, the last ``seq_len`` the targets; the text is the whole line's), each
starting from a zero state. Adam with global-norm clipping (Graves clipped the derivatives elementwise instead).
``window=False`` is Graves's §4 *unconditional* prediction network (no text; windows cut anywhere in a line),
what this module ran before the window existed.

The paper's settings and our presets (:func:`lnedu.experiments.settings.settings_table`; "differs" marks
where the ``paper`` preset does not do what the paper says):

| setting | paper | `paper` preset | `medium` preset | `small` preset |
|---|---|---|---|---|
| data | IAM-OnDB: 12,179 lines by 221 writers, with their text (§6.5) | IAM-OnDB | IAM-OnDB if on disk, else synthetic lines | IAM-OnDB if on disk, else synthetic lines |
| train / test split | not stated | by form, 10% of the forms for test (seeded) | by form (IAM-OnDB); synthetic: 1000 / 200 lines | by form (IAM-OnDB); synthetic: 400 / 80 lines |
| network | Graves's synthesis network (§6.5, Graves 2013 §5.2) | synthesis (character window) | synthesis (character window) | synthesis (character window) |
| LSTM layers x cells | 3 x 400 (§6.5) | 3 x 400 | 2 x 128 | 1 x 64 |
| skip connections | input and window to every layer, every layer to the output (Graves Eq. 52-55) | yes | yes | yes |
| mixture components | 20 bivariate Gaussians (§6.5) | 20 | 10 | 8 |
| window Gaussians | 10 (§6.5) | 10 | 10 | 10 |
| character vectors | one-hot, 57 (§6.5); the symbols are not listed | one-hot, 57: space, a-z, A-Z, . , ' and 'other' | one-hot, 57: space, a-z, A-Z, . , ' and 'other' | one-hot, 57: space, a-z, A-Z, . , ' and 'other' |
| weights | about 3.7M (§6.5) | 3,650,151 (baseline) | 278,619 (baseline) | 37,135 (baseline) |
| layer norm | LN-LSTM, Eq. 20-22 | ln='appendix' (Eq. 20-22) | ln='appendix' (Eq. 20-22) | ln='appendix' (Eq. 20-22) |
| optimizer | Adam (§6.5) | Adam | Adam | Adam |
| learning rate | not stated | 0.001 | 0.003 | baseline 0.03; ln 0.03 |
| gradient clipping | not stated (Graves: derivatives clipped elementwise) | global norm 10 | global norm 10 | global norm 10 |
| batch size | 8 (Figure 5) | 8 | 8 | 8 |
| sequence length | 500 (Figure 5); lines average about 700 points (§6.5) | 500: the first 500 points of a line | 150: the first 150 points of a line | 60: the first 60 points of a line |
| updates | 200,000 (Figure 5's axis: updates x 200 to 10^3) | 200,000 | 700 | 600 |
| initialization | not stated | orthogonal W, forget bias 1; window: kappa_hat bias -3 | orthogonal W, forget bias 1; window: kappa_hat bias -3 | orthogonal W, forget bias 1; window: kappa_hat bias -3 |
| evaluation | train and test NLL per sequence, curves (Figure 5) | NLL per pen point on 256 fixed windows per split, every 1000 (differs: per pen point on fixed windows of seq_len points, not per whole line: multiply by a line's points to compare; the curves' shape is the claim) | NLL per pen point on 64 fixed windows per split, every 50 | NLL per pen point on 32 fixed windows per split, every 10 |
"""

# ruff: noqa: E501 (the settings table above has one row a line, as settings_table writes it)

from __future__ import annotations

import dataclasses
import functools
import sys
from dataclasses import dataclass, field

import numpy as np

from .. import backend, optim
from ..backend import get_array_module, to_numpy
from ..data.handwriting import ALPHABET, load_handwriting, offsets_to_strokes, one_hot_text
from ..functional.mdn import mdn_nll, mdn_nll_backward, mdn_sample, mdn_size
from ..functional.window import char_window, char_window_backward
from ..nn import LSTM, Linear, Module
from ..nn.recurrent.bptt import BPTTCache
from ..viz.experiments import COLORS, plot_band, seed_curves
from . import verdicts as V
from .common import CheckpointedTask, hold_out, lr_for
from .diagnostics import due, stats_record
from .runner import load_task
from .settings import Setting
from .verdicts import Verdict

NAME = "handwriting"
TITLE = "Handwriting sequence generation"
PAPER = "LN §6.5, Figure 5"
CLAIM = "LN-LSTM converges to a comparable log likelihood as the baseline LSTM, but much faster"
VARIANTS = ("baseline", "ln")

__all__ = [
    "NAME", "TITLE", "PAPER", "CLAIM", "VARIANTS", "Config", "PRESETS",
    "HandwritingModel", "HandwritingTask", "build", "build_model", "load_trained", "make_windows", "sample_batch",
    "speedup", "verdict", "plot", "plot_strokes", "generate", "load_data", "standin", "SETTINGS", "SEEDS",
]


@dataclass
class Config:
    hidden: int = 64  # LSTM cells per layer
    layers: int = 1
    components: int = 8  # bivariate Gaussians in the mixture
    window: bool = True  # Graves's synthesis network (§5); False: his unconditional prediction network (§4)
    window_gaussians: int = 10  # K, the Gaussians of the character window (Graves §5.1)
    seq_len: int = 60  # points per training window (from the line's start with the window, else anywhere)
    batch_size: int = 8
    lr: float = 1e-3
    clip: float = 10.0  # global gradient norm
    data: str = "auto"  # "auto" (IAM-OnDB if on disk), "iam", "synthetic", "standin" (IAM-length synthetic)
    data_path: str = ""  # the IAM-OnDB folder (holding lineStrokes/ and ascii/); "": $LNEDU_DATA/iam-ondb
    n_train: int = 400  # synthetic lines (ignored for IAM-OnDB)
    n_test: int = 80
    max_lines: int = 0  # IAM-OnDB lines to use, 0 for all
    eval_windows: int = 32  # fixed windows of each split that evaluate() scores
    steps: int = 600
    eval_every: int = 10
    checkpoint_every: int = 200
    # learning rate per variant (the others use lr), chosen on validation by `python -m lnedu tune handwriting`
    lr_by_variant: dict = field(default_factory=dict)
    holdout: int = 0  # > 0: evaluate on this many held-out training lines instead of the test set (tuning)


PRESETS = {
    "tiny": Config(hidden=16, components=3, seq_len=20, lr=5e-3, n_train=24, n_test=8, eval_windows=8, steps=40,
                   eval_every=10, checkpoint_every=20, data="synthetic"),
    # rates per variant, from `python -m lnedu tune handwriting --rates 3e-4 1e-3 3e-3 1e-2 3e-2 1e-1` (on
    # validation; tuned/handwriting-small.json); both variants x 3 seeds take about 1.5 minutes of one core
    # (87 s of CPU for the six runs, `time python -m lnedu run handwriting --preset small`)
    "small": Config(lr_by_variant={"baseline": 0.03, "ln": 0.03}),
    # about 30 minutes for both variants x 3 seeds, one after another, one BLAS thread: sized from 0.29 s (baseline)
    # and 0.55 s (ln) per update and about 1.5 s per evaluation, measured on a busy 2-core machine with
    # `OPENBLAS_NUM_THREADS=1 python -m lnedu run handwriting --preset medium --plan --plan-updates 3` (it
    # projects 32 min for the six runs)
    "medium": Config(hidden=128, layers=2, components=10, seq_len=150, lr=3e-3, n_train=1000, n_test=200,
                     eval_windows=64, steps=700, eval_every=50, checkpoint_every=100, data="auto"),
    # the paper's sizes: Graves's synthesis network, 3 x 400 LSTM, 20 mixture components, a window of 10
    # Gaussians over 57 characters, on IAM-OnDB only (refused without it); Adam (no rate stated: its usual 1e-3),
    # batch 8, length 500; Figure 5 runs to 200,000 updates ("updates x 200" up to 10^3)
    "paper": Config(hidden=400, layers=3, components=20, window=True, window_gaussians=10, seq_len=500, lr=1e-3,
                    data="iam", eval_windows=256, steps=200_000, eval_every=1000, checkpoint_every=1000),
}


def _data_name(c):
    return {"iam": "IAM-OnDB", "auto": "IAM-OnDB if on disk, else synthetic lines",
            "synthetic": "synthetic lines", "standin": "IAM-length synthetic lines"}[c.data]


def _weights(c):
    return f"{build_model(c, 'baseline', 0).num_parameters():,} (baseline)"


def _lr(c):
    return "; ".join(f"{v} {r:g}" for v, r in c.lr_by_variant.items()) if c.lr_by_variant else f"{c.lr:g}"


SETTINGS = (
    Setting("data", "IAM-OnDB: 12,179 lines by 221 writers, with their text (§6.5)", _data_name),
    Setting("train / test split", "not stated", lambda c: "by form, 10% of the forms for test (seeded)"
            if c.data == "iam" else f"by form (IAM-OnDB); synthetic: {c.n_train} / {c.n_test} lines"),
    Setting("network", "Graves's synthesis network (§6.5, Graves 2013 §5.2)",
            lambda c: "synthesis (character window)" if c.window else "prediction (no window, Graves §4)"),
    Setting("LSTM layers x cells", "3 x 400 (§6.5)", lambda c: f"{c.layers} x {c.hidden}"),
    Setting("skip connections", "input and window to every layer, every layer to the output (Graves Eq. 52-55)",
            lambda c: "yes"),
    Setting("mixture components", "20 bivariate Gaussians (§6.5)", "components"),
    Setting("window Gaussians", "10 (§6.5)", lambda c: c.window_gaussians if c.window else "no window"),
    Setting("character vectors", "one-hot, 57 (§6.5); the symbols are not listed",
            lambda c: f"one-hot, {len(ALPHABET)}: space, a-z, A-Z, . , ' and 'other'" if c.window else "-"),
    Setting("weights", "about 3.7M (§6.5)", _weights),
    Setting("layer norm", "LN-LSTM, Eq. 20-22", lambda c: "ln='appendix' (Eq. 20-22)"),
    Setting("optimizer", "Adam (§6.5)", lambda c: "Adam"),
    Setting("learning rate", "not stated", _lr),
    Setting("gradient clipping", "not stated (Graves: derivatives clipped elementwise)",
            lambda c: f"global norm {c.clip:g}"),
    Setting("batch size", "8 (Figure 5)", "batch_size"),
    Setting("sequence length", "500 (Figure 5); lines average about 700 points (§6.5)",
            lambda c: f"{c.seq_len}: the first {c.seq_len} points of a line" if c.window else
            f"{c.seq_len}, cut anywhere in a line"),
    Setting("updates", "200,000 (Figure 5's axis: updates x 200 to 10^3)", "steps"),
    Setting("initialization", "not stated",
            lambda c: "orthogonal W, forget bias 1; window: kappa_hat bias -3" if c.window else
            "orthogonal W, forget bias 1"),
    Setting("evaluation", "train and test NLL per sequence, curves (Figure 5)",
            lambda c: f"NLL per pen point on {c.eval_windows} fixed windows per split, every {c.eval_every}",
            differs="per pen point on fixed windows of seq_len points, not per whole line: multiply by a line's "
                    "points to compare; the curves' shape is the claim"),
)


# ---------------------------------------------------------------------------------------------------------
# model


class HandwritingModel(Module):
    """Graves's handwriting network: a stack of LSTMs with skip connections, a mixture density output and, with
    ``window > 0``, the soft character window of his synthesis network (Graves 2013, §5, Eq. 46-55).

    Without a window (``window=0``, Graves's §4 *prediction* network): layer 1 reads the pen offsets ``x``
    (T, B, 3), layer ``n > 1`` reads ``[x, h^{n-1}]``. With a window of ``K = window`` Gaussians over the one-hot
    text ``chars`` (B, U, V) (Eq. 52-53): layer 1 reads ``[x_t, w_{t-1}]``, the window vector ``w_t`` is computed
    from ``h^1_t`` (:func:`lnedu.functional.window.char_window`, Eq. 46-51), and layer ``n > 1`` reads
    ``[x_t, h^{n-1}_t, w_t]``. The output ``y_hat = [h^1, ..., h^L] W + b`` (T, B, 1 + 6M) parametrizes the next
    offset (Eq. 55; see :mod:`lnedu.functional.mdn` for the layout). Children: ``rnn0`` ... ``rnn{L-1}``
    (:class:`lnedu.nn.LSTM`, ``ln=None`` or ``"appendix"``), ``window`` (:class:`lnedu.nn.Linear`, ``W`` (H, 3K):
    Eq. 48's map to ``(alpha_hat, beta_hat, kappa_hat)``), ``out`` (:class:`lnedu.nn.Linear`, ``W`` (L H, 1 + 6M)).

    Layer 1 and the window form one recurrence (``w_t`` depends on ``h^1_t`` and feeds ``h^1_{t+1}``), so they
    run in one step loop here, forward and back (:meth:`_window_forward`, :meth:`_window_backward`), stepping
    ``rnn0`` with its own cell operations (the ones :mod:`lnedu.nn.recurrent.bptt`'s loops call); the layers
    above see the whole sequence of ``w`` and run their usual loops.
    """

    def __init__(self, hidden: int, layers: int, components: int, *, window: int = 0, alphabet: int = 57, ln=None,
                 rng=None, dtype=np.float32):
        super().__init__()
        self.hidden, self.layers, self.components = int(hidden), int(layers), int(components)
        self.K, self.V = int(window), (int(alphabet) if window else 0)
        if self.layers < 1:
            raise ValueError(f"layers: expected a positive integer, got {layers!r}")
        if self.K < 0 or (self.K and self.V < 1):
            raise ValueError(f"window, alphabet: expected window >= 0 Gaussians over alphabet >= 1 characters, got "
                             f"{window!r}, {alphabet!r}")
        rng = np.random.default_rng(rng)
        V = self.V
        self.rnns = [self.add_module(f"rnn{n}", LSTM(3 + V if n == 0 else 3 + self.hidden + V, self.hidden, ln=ln,
                                                     rng=rng, dtype=dtype))
                     for n in range(self.layers)]
        if self.K:
            self.window = self.add_module("window", Linear(self.hidden, 3 * self.K, rng=rng, dtype=dtype))
            # kappa_hat's bias: a first step of exp(-3) = 0.05 characters per pen point, about a line's ratio of
            # characters to points (Graves does not say how he started it); alpha_hat and beta_hat start at 0
            self.window.params["b"][2 * self.K:] = -3.0
        self.out = self.add_module("out", Linear(self.layers * self.hidden, mdn_size(components), rng=rng,
                                                 dtype=dtype))
        self.state = None
        self._wcache = None

    def forward(self, x, state=None, *, chars=None):
        """``y_hat`` (T, B, 1 + 6M) from offsets ``x`` (T, B, 3) and, with a window, the text ``chars`` (B, U, V);
        ``state``: what ``self.state`` held after an earlier call (``None``: zeros), to carry on generating:
        the list of per-layer LSTM states, and with a window the pair ``(that list, (kappa, w) of the last
        step)``."""
        xp = get_array_module(x)
        if self.K and chars is None:
            raise ValueError("chars: expected the one-hot text (B, U, V) the lines write (this model has a "
                             "character window), got None")
        if not self.K and chars is not None:
            raise ValueError("chars: expected None (this model has no character window), got an array")
        lstm_state, win_state = (state, None) if state is None or not self.K else state
        lstm_state = lstm_state if lstm_state is not None else [None] * self.layers
        hs, new_state, ws = [], [], None
        for n, rnn in enumerate(self.rnns):
            if n == 0 and self.K:
                h, st, ws, win_state = self._window_forward(x, chars, lstm_state[0], win_state)
            else:
                inputs = [x] if n == 0 else [x, hs[-1]]
                h, st = rnn.forward(xp.concatenate(inputs + ([ws] if self.K else []), axis=-1), lstm_state[n])
            hs.append(h)
            new_state.append(st)
        self.state = (new_state, win_state) if self.K else new_state
        return self.out.forward(hs[0] if self.layers == 1 else xp.concatenate(hs, axis=-1))

    def backward(self, dy):
        """``dx`` (T, B, 3) from ``dy`` (T, B, 1 + 6M); accumulates every parameter's gradient. Backprop runs
        from the top layer down: layer ``n``'s output gets the output layer's share plus what layer ``n + 1``
        sends back through its input ``[x, h^n(, w)]``; every layer's share for ``x`` adds into ``dx``, and the
        shares for ``w`` go to the window's loop with layer 1."""
        H = self.hidden
        dhs = self.out.backward(dy)
        dh = dhs[..., (self.layers - 1) * H:]
        dx, dws = 0, 0
        for n in range(self.layers - 1, -1, -1):
            if n == 0 and self.K:
                return dx + self._window_backward(dh, dws)
            dinp, _ = self.rnns[n].backward(dh)
            dx = dx + dinp[..., :3]
            if self.K:
                dws = dws + dinp[..., dinp.shape[-1] - self.V:]
            if n > 0:
                dh = dhs[..., (n - 1) * H: n * H] + dinp[..., 3: 3 + H]
        return dx

    # ---- layer 1 and the window: one recurrence --------------------------------------------------------
    def _window_forward(self, x, chars, lstm_state, win_state):
        """Steps ``t = 1 .. T`` of Eq. 52 (layer 1) and Eq. 46-51 (the window). Returns ``(h^1 (T, B, H), (h_T,
        c_T), w (T, B, V), (kappa_T, w_T))`` and keeps what :meth:`_window_backward` needs."""
        xp = get_array_module(x)
        rnn, T, B, H = self.rnns[0], x.shape[0], x.shape[1], self.hidden
        dtype = self.out.params["W"].dtype
        h, c = lstm_state if lstm_state is not None else (xp.zeros((B, H), dtype), xp.zeros((B, H), dtype))
        kappa, w = win_state if win_state is not None else (xp.zeros((B, self.K), dtype),
                                                            xp.zeros((B, self.V), dtype))
        Wp, bp = self.window.params["W"], self.window.params["b"]
        ctx = rnn.step_context(T)
        Hs = xp.empty((T + 1, B, H), dtype=dtype)  # h^1_0 .. h^1_T
        Ws = xp.empty((T + 1, B, self.V), dtype=dtype)  # w_0 .. w_T
        Hs[0], Ws[0] = h, w
        icaches, caches, wcaches = [], [], []
        for t in range(T):
            a_x, icache = rnn.input_term(xp.concatenate([x[t], Ws[t]], axis=-1)[None])  # W_x [x_t, w_{t-1}] + b
            (h, c), cache = rnn.step(t, a_x[0], (h, c), ctx)
            Hs[t + 1] = h
            Ws[t + 1], kappa, wcache = char_window(h @ Wp + bp, kappa, chars)  # Eq. 48, then 46-51
            icaches.append(icache)
            caches.append(cache)
            wcaches.append(wcache)
        self._wcache = (ctx, Hs, icaches, caches, wcaches)
        # the layer's own cache, in the form its loops keep, so the per-time-step statistics read layer 1 too
        rnn.cache = (BPTTCache((T, B, 4 * H), icaches, ctx, Hs, caches), T, B, None, False)
        return Hs[1:].copy(), (h, c), Ws[1:].copy(), (kappa, Ws[T].copy())

    def _window_backward(self, dh, dws):
        """Backprop through :meth:`_window_forward`, ``t = T .. 1``: ``dh`` (T, B, H) reaches ``h^1_t`` from the
        output and layer 2, ``dws`` (T, B, V) reaches ``w_t`` from the layers above. Returns layer 1's ``dx``."""
        if self._wcache is None:
            raise RuntimeError("HandwritingModel.backward: call forward first")
        ctx, Hs, icaches, caches, wcaches = self._wcache
        xp = get_array_module(Hs)
        rnn, (T1, B, H), dtype = self.rnns[0], Hs.shape, Hs.dtype
        Wp = self.window.params["W"]
        dx = xp.empty((T1 - 1, B, 3), dtype=dtype)
        dP = xp.empty((T1 - 1, B, 3 * self.K), dtype=dtype)  # gradients of p_hat_t (Eq. 48)
        dA = xp.empty((T1 - 1, B, 4 * H), dtype=dtype)  # of layer 1's input terms
        dAh = xp.empty_like(dA)  # of its recurrent products
        dh_next, dc_next = xp.zeros((B, H), dtype), xp.zeros((B, H), dtype)
        dkappa, dw_next = None, xp.zeros((B, self.V), dtype)  # w_T feeds nothing inside this call
        for t in reversed(range(T1 - 1)):
            dw = dw_next if self.layers == 1 else dws[t] + dw_next  # w_t went up to layers 2.. and into step t+1
            dP[t], dkappa = char_window_backward(dw, dkappa, wcaches[t])
            (dh_next, dc_next), dAh[t] = rnn.step_backward(t, (dh[t] + dh_next + dP[t] @ Wp.T, dc_next), caches[t],
                                                           ctx, out=dA[t])
            dinp = rnn.input_term_backward(dA[t][None], icaches[t])[0]  # (B, 3 + V)
            dx[t], dw_next = dinp[:, :3], dinp[:, 3:]  # w_{t-1} fed layer 1 at step t
        rnn.recurrent_grads(ctx, Hs, caches, dAh)
        self.window.grads["W"] += Hs[1:].reshape(-1, H).T @ dP.reshape(-1, 3 * self.K)
        self.window.grads["b"] += dP.reshape(-1, 3 * self.K).sum(axis=0)
        return dx

    def extra_repr(self):
        return f"hidden={self.hidden}, layers={self.layers}, components={self.components}, window={self.K}"


def build_model(config: Config, variant: str, rng) -> HandwritingModel:
    if variant not in VARIANTS:
        raise ValueError(f"variant: expected one of {VARIANTS}, got {variant!r}")
    return HandwritingModel(config.hidden, config.layers, config.components,
                            window=config.window_gaussians if config.window else 0, alphabet=len(ALPHABET),
                            ln=None if variant == "baseline" else "appendix", rng=rng)


# ---------------------------------------------------------------------------------------------------------
# data: windows cut from lines (a function of the seed and the step)


def make_windows(lines, starts, length: int):
    """Windows ``(length, B, 3)`` of ``lines[i][starts[i]:]`` (zero-padded) and their mask ``(length, B)``."""
    x = np.zeros((length, len(lines), 3), dtype=np.float32)
    mask = np.zeros((length, len(lines)), dtype=np.float32)
    for b, (line, s) in enumerate(zip(lines, starts)):
        piece = line[int(s): int(s) + length]
        x[: len(piece), b] = piece
        mask[: len(piece), b] = 1
    return x, mask


def _random_starts(lines, length, rng):
    return [int(rng.integers(0, max(len(line) - length, 0) + 1)) for line in lines]


def sample_batch(data_lines, batch_size: int, seq_len: int, seed: int, step: int, *, texts=None):
    """The training batch of update ``step``: ``(inputs (T, B, 3), targets (T, B, 3), mask (T, B))``.

    A function of ``(seed, step)`` alone, so a resumed run sees exactly the batches it would have seen.
    Without ``texts`` each window starts anywhere in its line. With ``texts`` (the synthesis network) every
    window starts at its line's first point, where the text starts, and a fourth item is the lines' one-hot text
    ``chars`` (B, U, 57).
    """
    rng = np.random.default_rng([int(seed), int(step), 0x4A4D])
    idx = rng.choice(len(data_lines), size=batch_size, replace=len(data_lines) < batch_size)
    lines = [data_lines[i] for i in idx]
    starts = _random_starts(lines, seq_len + 1, rng) if texts is None else [0] * len(lines)
    w, m = make_windows(lines, starts, seq_len + 1)
    if texts is None:
        return w[:-1], w[1:], m[1:]
    return w[:-1], w[1:], m[1:], one_hot_text([texts[i] for i in idx])


@functools.lru_cache(maxsize=4)
def _data(source, n_train, n_test, max_lines, path="", need_text=False):
    return load_handwriting(source, path or None, n_train=n_train, n_test=n_test, max_lines=max_lines or None,
                            need_text=need_text)


def load_data(config: Config):
    """The lines (and texts) ``config`` trains on: IAM-OnDB for ``data="iam"`` (else :data:`IAM_ONDB`'s
    refusal), the synthetic lines for ``"synthetic"``/``"standin"``, the first found for ``"auto"``."""
    return _data(config.data, config.n_train, config.n_test, config.max_lines, config.data_path, bool(config.window))


def standin(config: Config) -> Config:
    """``config`` with its data replaced by generated lines of IAM-OnDB's shapes (about 700 points and 19
    characters a line, the same 57-symbol text): for ``--plan`` to time a paper-size update without the set."""
    return dataclasses.replace(config, data="standin", data_path="")


# ---------------------------------------------------------------------------------------------------------
# task


class HandwritingTask(CheckpointedTask):
    """Train one :class:`HandwritingModel` by teacher forcing; ``evaluate`` scores fixed windows.

    Metrics are NLLs in nats per pen point (multiply by the points in a line for Graves's per-sequence
    numbers): ``loss`` of the training batch, and ``train_nll``/``test_nll`` over ``eval_windows`` fixed windows
    of each split (the same windows for every variant and seed; with the window, each from its line's start).
    """

    def __init__(self, model, optimizer, data, config: Config, seed: int):
        self.model, self.opt, self.data, self.config, self.seed = model, optimizer, data, config, int(seed)
        self.schedule_from(config)
        self.t = 0
        self.examples_per_update = int(config.batch_size)  # sequences
        T = config.seq_len
        if config.window and (data.train_text is None or data.test_text is None):
            raise ValueError(f"data: expected lines with their text for the character window (window=True), got "
                             f"{data.name} without text")
        self._eval = {}
        splits = (("train", data.train, data.train_text), ("test", data.test, data.test_text))
        for split, lines, texts in splits:
            rng = np.random.default_rng(0xE7A1)  # not the seed: every run scores the same windows
            pick = rng.permutation(len(lines))[: config.eval_windows]
            chosen = [lines[i] for i in pick]
            starts = [0] * len(chosen) if config.window else _random_starts(chosen, T + 1, rng)
            w, m = make_windows(chosen, starts, T + 1)
            chars = one_hot_text([texts[i] for i in pick]) if config.window else None
            self._eval[split] = tuple(None if a is None else backend.asarray(a) for a in (w[:-1], w[1:], m[1:], chars))
        self._text_len = float(np.mean([len(t) for t in data.train_text])) if config.window else 0.0

    def _forward(self, xs, chars):
        return self.model.forward(xs, chars=chars)

    def step(self) -> dict:
        c = self.config
        batch = sample_batch(self.data.train, c.batch_size, c.seq_len, self.seed, self.t,
                             texts=self.data.train_text if c.window else None)
        xs, ys, mask, chars = (backend.asarray(a) for a in batch) if c.window else \
            (*(backend.asarray(a) for a in batch), None)
        self.model.train()
        y_hat = self._forward(xs, chars)
        loss, cache = mdn_nll(y_hat, ys, mask)
        self.opt.zero_grad()
        self.model.backward(mdn_nll_backward(1.0, cache))
        self.opt.step()
        self.t += 1
        return {"loss": loss, "grad_norm": self.opt.last_grad_norm}

    def evaluate(self) -> dict:
        self.model.eval()
        out = {}
        for split, (xs, ys, mask, chars) in self._eval.items():
            out[f"{split}_nll"], _ = mdn_nll(self._forward(xs, chars), ys, mask)
        if due(self.t, self.steps, self.eval_every):  # per-time-step statistics on the first test windows
            xs, _, _, chars = self._eval["test"]
            n = self.config.batch_size
            out.update(stats_record(self.model, lambda: self._forward(xs[:, :n], None if chars is None else chars[:n])))
        self.model.train()
        return out

    def flops_per_update(self) -> float:
        """Floating-point operations of one update: 3 x the forward's matrix products (the backward's two
        products per forward product), a multiply-add counted as 2, per step ``t`` and sequence:
        layer 1 ``2 (3 + V) 4H + 2 H 4H``, layers 2..L ``2 (3 + H + V) 4H + 2 H 4H``, the output ``2 L H (1 + 6M)``,
        and with the window (``V = 57``) its map ``2 H 3K`` and Eq. 47's sum ``2 U V`` (``U``: the mean length
        of the training texts); times ``T = seq_len`` and ``B = batch_size``. Elementwise work (gates, norms,
        the window's exponentials, the mixture density) is left out."""
        c, m = self.config, self.model
        H, L, V, K = c.hidden, c.layers, m.V, m.K
        per_step = 2 * (3 + V) * 4 * H + 2 * H * 4 * H + (L - 1) * (2 * (3 + H + V) * 4 * H + 2 * H * 4 * H)
        per_step += 2 * L * H * mdn_size(c.components)
        if K:
            per_step += 2 * H * 3 * K + 2 * self._text_len * V
        return 3.0 * per_step * c.seq_len * c.batch_size


# ---------------------------------------------------------------------------------------------------------
# build: the task, and what uses a trained run (load_trained, generation)


def build(config: Config, variant: str, seed: int) -> HandwritingTask:
    data = load_data(config)
    data = hold_out(data, config.holdout, train="train", test="test",  # the texts move with their lines
                    labels=None if data.train_text is None else "train_text", test_labels="test_text")
    model = build_model(config, variant, np.random.default_rng(seed))
    if backend.current() != "numpy":
        model.to_backend()
    opt = optim.Adam(model, lr=lr_for(config, variant), clip=config.clip)
    return HandwritingTask(model, opt, data, config, seed)


def load_trained(out, config: Config, variant: str, seed: int) -> HandwritingTask:
    """``lnedu.experiments.load_task(handwriting, out, config, variant, seed)``: the task of a run saved under
    ``out``, in its last checkpointed state (the trained model of a finished run), to generate from or to look
    inside. An alias kept for one release; use :func:`lnedu.experiments.load_task`."""
    return load_task(sys.modules[__name__], out, config, variant, seed)


def generate(model: HandwritingModel, steps: int, rng, *, batch: int = 1, bias: float = 0.0, text=None):
    """Sample ``steps`` pen offsets from the model, feeding each sample back in: an array (steps, batch, 3).

    The first input is ``(0, 0, 1)``, "the pen has just been lifted". ``rng``: a seed or NumPy Generator;
    ``bias``: Graves's sampling bias (0: the model's own distribution; larger: neater, less varied). ``text``:
    what a model with a character window writes (a string, the same for every sample of the batch); it writes
    for ``steps`` points (Graves stops when the window passes the last character; we do not).
    """
    if model.K and not isinstance(text, str):
        raise ValueError(f"text: expected the string to write (the model has a character window), got {text!r}")
    if not model.K and text is not None:
        raise ValueError(f"text: expected None (the model has no character window), got {text!r}")
    rng = np.random.default_rng(rng)
    dtype = model.out.params["W"].dtype
    xp = get_array_module(model.out.params["W"])
    chars = None if text is None else xp.asarray(one_hot_text([text] * int(batch), dtype=dtype))
    x = xp.zeros((1, int(batch), 3), dtype=dtype)
    x[..., 2] = 1
    state, out = None, []
    model.eval()
    for _ in range(int(steps)):
        y_hat = model.forward(x, state, chars=chars)
        state = model.state
        x = mdn_sample(y_hat, rng, bias=bias)
        out.append(to_numpy(x[0]))
    model.train()
    return np.stack(out)


# ---------------------------------------------------------------------------------------------------------
# verdict

SEEDS = {"tiny": (0, 1, 2), "small": (0, 1, 2), "medium": (0, 1, 2), "paper": (0, 1, 2)}
PAPER_NUMBERS = "curves only: Figure 5 (train and test NLL against updates; LN §6.5 gives no final number)"
LEARN_MARGIN = 0.1  # "not tested" guard: an arm's mean train NLL must fall 0.1 nats/point below its first value


def _mean_curve(runs, key):
    curves = [r.series(key) for r in runs]
    n = min(len(c[0]) for c in curves)
    return curves[0][0][:n], np.mean([c[1][:n] for c in curves], axis=0)


def speedup(results, *, fraction: float = 0.9):
    """Updates each variant needs to make ``fraction`` of the baseline's whole improvement in train NLL.

    From the mean curves over seeds: the target is ``initial - fraction * (initial - final)`` of the
    baseline's curve; returns ``({variant: first eval step at or below the target, or None}, target)``.
    (The verdict uses the shared rule, :func:`lnedu.experiments.verdicts.speed`, per seed.)
    """
    _, base = _mean_curve(results["baseline"], "train_nll")
    target = float(base[0] - fraction * (base[0] - base[-1]))
    reach = {}
    for v, runs in results.items():
        steps, curve = _mean_curve(runs, "train_nll")
        hit = np.flatnonzero(curve <= target)
        reach[v] = int(steps[hit[0]]) if len(hit) else None
    return reach, target


def verdict(results, *, fraction: float = 0.9, margin: float = 0.05) -> Verdict:
    """Two parts over per-seed figures paired by seed (:func:`lnedu.experiments.verdicts.compare`):
    (1) "much faster": LN reaches the common train-NLL target (``fraction`` of the smallest improvement, see
    :func:`~lnedu.experiments.verdicts.speed`) in fewer updates (and seconds, where logged) than the baseline;
    (2) "a comparable log likelihood": LN's final test NLL minus ``margin`` (0.05 nats per point) is below the
    baseline's beyond the noise (non-inferiority; did not hold when LN is worse by more than the margin).

    Why not "LN reaches the baseline's final NLL": when both converge to the same level, which of two
    flattening, noisy curves touches that level first is a coin toss, and it says nothing about speed.
    Not tested if an arm's train NLL never fell 0.1 nats/point below its first evaluation.
    """
    if not {"baseline", "ln"} <= set(results):
        return V.Verdict(None, "needs baseline and ln", "", outcome=V.UNDECIDED)
    test = {v: V.per_seed(results[v], V.final("test_nll")) for v in ("baseline", "ln")}
    fig = "final test NLL (nats/point): " + ", ".join(f"{v} {V.arm_figure(test[v])}" for v in test)
    updates = max((e["step"] for runs in results.values() for r in runs for e in r.eval), default=0)
    note = (f"{int(updates):,} updates a run (sizes and data: the preset's settings table); the paper's 3x400 "
            "network trains 200,000 updates on IAM-OnDB")
    axis = "updates (and seconds) to a train-NLL target; final test NLL within 0.05 nats/point"
    for v in ("baseline", "ln"):
        ok, why = V.learned(results[v], "train_nll", margin=LEARN_MARGIN)
        if not ok:
            return V.Verdict.of([V.not_tested("both arms learned", "train NLL", v, v, {v: test[v]}, f"{v}: {why}")],
                                fig, note, axis=axis, arms=test)
    sp = V.speed(results, ("ln", "baseline"), "train_nll", fraction=fraction)
    parts = V.speed_parts(sp, "ln", "baseline", f"LN much faster than the baseline ({sp.target_text()})")
    slack = {s: x - margin for s, x in test["ln"].items()}
    parts.append(V.compare(f"LN's final test NLL within {margin} nats/point of the baseline's",
                           f"final test NLL minus {margin} (nats/point)", "ln", slack, "baseline", test["baseline"]))
    return V.Verdict.of(parts, fig, note, axis=axis, arms=test)


def describe(results) -> str:
    """Markdown for the notebook: the verdict, each part with mean ± sd (n) and the per-seed values."""
    return V.describe_parts(verdict(results), paper=PAPER_NUMBERS)


# ---------------------------------------------------------------------------------------------------------
# plot


def plot(results):
    """Figure 5's layout: train (solid) and test (dashed) NLL against updates on a log axis, mean of the seeds
    (line) and their range (band); the dotted line is the level :func:`verdict` times both variants to."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for variant, runs in results.items():
        color = COLORS.get(variant, "k")
        for key, style in (("train_nll", "-"), ("test_nll", "--")):
            steps, vals = seed_curves(runs, key)
            keep = steps > 0  # a log axis has no update 0
            plot_band(ax, steps[keep], vals[:, keep], color=color, label=f"{variant} {key.split('_')[0]}",
                      style=style, alpha=0.15)
    if {"baseline", "ln"} <= set(results):
        _, target = speedup(results)
        ax.axhline(target, color="k", lw=0.6, ls=":", label="90% of the baseline's gain")
    ax.set_xscale("log")
    ax.set_xlabel("updates")
    ax.set_ylabel("NLL (nats per pen point)")
    ax.legend(frameon=False, fontsize="small")
    fig.tight_layout()
    return fig


def plot_strokes(sequences, *, titles=None, ncols: int = 1, width: float = 8.0, row_height: float = 1.3,
                 color="k"):
    """Draw offset sequences (each ``(T, 3)``, ``(dx, dy, pen_up)``) as handwriting: one panel each, the pen
    drawing a line within a stroke and lifting between strokes. Returns a matplotlib Figure."""
    from ..viz.common import new_figure

    sequences = [np.asarray(to_numpy(s)) for s in sequences]
    nrows = -(-len(sequences) // ncols)
    fig, axes = new_figure(ncols, width=width / ncols, height=row_height, nrows=nrows)
    for i, ax in enumerate(axes):
        ax.set_axis_off()
        if i >= len(sequences):
            continue
        for stroke in offsets_to_strokes(sequences[i]):
            if len(stroke) == 1:
                ax.plot(stroke[:, 0], stroke[:, 1], ".", color=color, ms=1.5)
            else:
                ax.plot(stroke[:, 0], stroke[:, 1], "-", color=color, lw=1)
        ax.set_aspect("equal", adjustable="datalim")
        if titles is not None:
            ax.set_title(titles[i], fontsize="small", loc="left")
    return fig
