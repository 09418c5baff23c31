"""Handwriting sequence generation: an LSTM with a mixture density output, baseline vs layer norm (LN §6.5).

The paper (Ba et al. 2016, §6.5, Figure 5) trains Graves's (2013, §4-5) handwriting model on IAM-OnDB:
3 hidden layers of 400 LSTM cells, an input of size 3 (a pen offset and an end-of-stroke bit), and an
output layer that is a mixture of 20 bivariate Gaussians plus a Bernoulli end-of-stroke probability. Adam,
mini-batches of 8, sequences of length 500. (The paper's model is Graves's *synthesis* network, with a
character window of 10 Gaussians; ours predicts the next offset from the pen alone, Graves's §4 model.)
LN is placed as in the paper's LN-LSTM equations (Eq. 20-22). Figure 5 plots the train and test negative
log-likelihood against "updates x 200" on a log axis.
Claim: "the model converges to a comparable log likelihood as the baseline model but is much faster".
The paper gives no numbers and no learning rate.

This module: the network of Graves's Figure 1 (every LSTM layer sees the input, as a skip connection, and
the output layer reads every layer), trained by teacher forcing to predict the next offset, with the loss of
:mod:`lnedu.functional.mdn` in nats per pen point. Batches are windows of ``seq_len + 1`` points cut from
random lines (the first ``seq_len`` are the input, the last ``seq_len`` the targets), each starting from a zero
state. Adam with global-norm clipping (Graves clipped the derivatives elementwise instead).
"""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass, field

import numpy as np

from .. import backend, optim
from ..backend import get_array_module, to_numpy
from ..data.handwriting import load_handwriting, offsets_to_strokes
from ..functional.mdn import mdn_nll, mdn_nll_backward, mdn_sample, mdn_size
from ..nn import LSTM, Linear, Module
from ..viz.experiments import COLORS, plot_band, seed_curves
from . import verdicts as V
from .common import CheckpointedTask, hold_out, lr_for
from .diagnostics import due, stats_record
from .runner import load_task
from .verdicts import Verdict

NAME = "handwriting"
TITLE = "Handwriting sequence generation"
PAPER = "LN §6.5, Figure 5"
CLAIM = "LN-LSTM converges to a comparable log likelihood as the baseline LSTM, but much faster"
VARIANTS = ("baseline", "ln")

__all__ = [
    "NAME", "TITLE", "PAPER", "CLAIM", "VARIANTS", "Config", "PRESETS",
    "HandwritingModel", "HandwritingTask", "build", "build_model", "load_trained", "make_windows", "sample_batch",
    "speedup", "verdict", "plot", "plot_strokes", "generate",
]


@dataclass
class Config:
    hidden: int = 64  # LSTM cells per layer
    layers: int = 1
    components: int = 8  # bivariate Gaussians in the mixture
    seq_len: int = 60  # points per training window
    batch_size: int = 8
    lr: float = 1e-3
    clip: float = 10.0  # global gradient norm
    data: str = "auto"  # "auto" (IAM-OnDB if on disk), "iam", "synthetic"
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
    # rates per variant, from `python -m lnedu tune handwriting` (on validation; tuned/handwriting-small.json)
    "small": Config(lr_by_variant={"baseline": 0.03, "ln": 0.01}),
    # the paper's sizes (it states no learning rate: Adam's usual 1e-3); Figure 5 runs to 200,000 updates
    "paper": Config(hidden=400, layers=3, components=20, seq_len=500, lr=1e-3, data="iam", eval_windows=256,
                    steps=200_000, eval_every=1000, checkpoint_every=1000),
}


# ---------------------------------------------------------------------------------------------------------
# model


class HandwritingModel(Module):
    """Graves's prediction network: a stack of LSTMs with skip connections and a mixture density output.

    Layer 1 reads the pen offsets ``x`` (T, B, 3); layer ``n > 1`` reads ``[x, h^{n-1}]`` (T, B, 3 + H); the
    output ``y_hat = [h^1, ..., h^L] W + b`` (T, B, 1 + 6M) parametrizes the next offset
    (see :mod:`lnedu.functional.mdn` for the layout). Children: ``rnn0`` ... ``rnn{L-1}`` (:class:`lnedu.nn.LSTM`,
    ``ln=None`` or ``"appendix"``), ``out`` (:class:`lnedu.nn.Linear`, ``W`` (L H, 1 + 6M)).
    """

    def __init__(self, hidden: int, layers: int, components: int, *, ln=None, rng=None, dtype=np.float32):
        super().__init__()
        self.hidden, self.layers, self.components = int(hidden), int(layers), int(components)
        if self.layers < 1:
            raise ValueError(f"layers: expected a positive integer, got {layers!r}")
        rng = np.random.default_rng(rng)
        self.rnns = [self.add_module(f"rnn{n}", LSTM(3 if n == 0 else 3 + self.hidden, self.hidden, ln=ln, rng=rng,
                                                     dtype=dtype))
                     for n in range(self.layers)]
        self.out = self.add_module("out", Linear(self.layers * self.hidden, mdn_size(components), rng=rng,
                                                 dtype=dtype))
        self.state = None

    def forward(self, x, state=None):
        """``y_hat`` (T, B, 1 + 6M) from offsets ``x`` (T, B, 3); ``state``: a list of per-layer LSTM states
        (``None``: zeros). The final states are kept in ``self.state`` (to carry on generating)."""
        xp = get_array_module(x)
        state = state if state is not None else [None] * self.layers
        hs, new_state = [], []
        for n, rnn in enumerate(self.rnns):
            h, st = rnn.forward(x if n == 0 else xp.concatenate([x, hs[-1]], axis=-1), state[n])
            hs.append(h)
            new_state.append(st)
        self.state = new_state
        return self.out.forward(hs[0] if self.layers == 1 else xp.concatenate(hs, axis=-1))

    def backward(self, dy):
        """``dx`` (T, B, 3) from ``dy`` (T, B, 1 + 6M); accumulates every parameter's gradient. Backprop runs
        from the top layer down: layer ``n``'s output gets the output layer's share plus what layer ``n + 1``
        sends back through its input ``[x, h^n]``; every layer's share for ``x`` adds into ``dx``."""
        H = self.hidden
        dhs = self.out.backward(dy)
        dh = dhs[..., (self.layers - 1) * H:]
        dx = 0
        for n in range(self.layers - 1, -1, -1):
            dinp, _ = self.rnns[n].backward(dh)
            if n == 0:
                dx = dx + dinp
            else:
                dx = dx + dinp[..., :3]
                dh = dhs[..., (n - 1) * H: n * H] + dinp[..., 3:]
        return dx

    def extra_repr(self):
        return f"hidden={self.hidden}, layers={self.layers}, components={self.components}"


def build_model(config: Config, variant: str, rng) -> HandwritingModel:
    if variant not in VARIANTS:
        raise ValueError(f"variant: expected one of {VARIANTS}, got {variant!r}")
    return HandwritingModel(config.hidden, config.layers, config.components,
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


def sample_batch(data_lines, batch_size: int, seq_len: int, seed: int, step: int):
    """The training batch of update ``step``: ``(inputs (T, B, 3), targets (T, B, 3), mask (T, B))``.

    A function of ``(seed, step)`` alone, so a resumed run sees exactly the batches it would have seen.
    """
    rng = np.random.default_rng([int(seed), int(step), 0x4A4D])
    idx = rng.choice(len(data_lines), size=batch_size, replace=len(data_lines) < batch_size)
    lines = [data_lines[i] for i in idx]
    w, m = make_windows(lines, _random_starts(lines, seq_len + 1, rng), seq_len + 1)
    return w[:-1], w[1:], m[1:]


@functools.lru_cache(maxsize=4)
def _data(source, n_train, n_test, max_lines):
    return load_handwriting(source, n_train=n_train, n_test=n_test, max_lines=max_lines or None)


# ---------------------------------------------------------------------------------------------------------
# task


class HandwritingTask(CheckpointedTask):
    """Train one :class:`HandwritingModel` by teacher forcing; ``evaluate`` scores fixed windows.

    Metrics are NLLs in nats per pen point (multiply by the points in a line for Graves's per-sequence
    numbers): ``loss`` of the training batch, and ``train_nll``/``test_nll`` over ``eval_windows`` fixed windows
    of each split (the same windows for every variant and seed).
    """

    def __init__(self, model, optimizer, data, config: Config, seed: int):
        self.model, self.opt, self.data, self.config, self.seed = model, optimizer, data, config, int(seed)
        self.schedule_from(config)
        self.t = 0
        T = config.seq_len
        self._eval = {}
        for split, lines in (("train", data.train), ("test", data.test)):
            rng = np.random.default_rng(0xE7A1)  # not the seed: every run scores the same windows
            pick = rng.permutation(len(lines))[: config.eval_windows]
            chosen = [lines[i] for i in pick]
            w, m = make_windows(chosen, _random_starts(chosen, T + 1, rng), T + 1)
            self._eval[split] = tuple(backend.asarray(a) for a in (w[:-1], w[1:], m[1:]))

    def step(self) -> dict:
        c = self.config
        xs, ys, mask = (backend.asarray(a) for a in sample_batch(self.data.train, c.batch_size, c.seq_len,
                                                                 self.seed, self.t))
        self.model.train()
        y_hat = self.model.forward(xs)
        loss, cache = mdn_nll(y_hat, ys, mask)
        self.opt.zero_grad()
        self.model.backward(mdn_nll_backward(1.0, cache))
        self.opt.step()
        self.t += 1
        return {"loss": loss, "grad_norm": self.opt.last_grad_norm}

    def evaluate(self) -> dict:
        self.model.eval()
        out = {}
        for split, (xs, ys, mask) in self._eval.items():
            out[f"{split}_nll"], _ = mdn_nll(self.model.forward(xs), ys, mask)
        if due(self.t, self.steps, self.eval_every):  # per-time-step statistics on the first test windows
            xs = self._eval["test"][0][:, : self.config.batch_size]
            out.update(stats_record(self.model, lambda: self.model.forward(xs)))
        self.model.train()
        return out


# ---------------------------------------------------------------------------------------------------------
# build: the task, and what uses a trained run (load_trained, generation)


def build(config: Config, variant: str, seed: int) -> HandwritingTask:
    data = hold_out(_data(config.data, config.n_train, config.n_test, config.max_lines), config.holdout,
                    train="train", labels=None, test="test")
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


def generate(model: HandwritingModel, steps: int, rng, *, batch: int = 1, bias: float = 0.0):
    """Sample ``steps`` pen offsets from the model, feeding each sample back in: an array (steps, batch, 3).

    The first input is ``(0, 0, 1)``, "the pen has just been lifted". ``rng``: a seed or NumPy Generator;
    ``bias``: Graves's sampling bias (0: the model's own distribution; larger: neater, less varied).
    """
    rng = np.random.default_rng(rng)
    dtype = model.out.params["W"].dtype
    xp = get_array_module(model.out.params["W"])
    x = xp.zeros((1, int(batch), 3), dtype=dtype)
    x[..., 2] = 1
    state, out = None, []
    model.eval()
    for _ in range(int(steps)):
        y_hat = model.forward(x, state)
        state = model.state
        x = mdn_sample(y_hat, rng, bias=bias)
        out.append(to_numpy(x[0]))
    model.train()
    return np.stack(out)


# ---------------------------------------------------------------------------------------------------------
# verdict

SEEDS = {"tiny": (0, 1, 2), "small": (0, 1, 2), "paper": (0, 1, 2)}
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
    note = ("a small LSTM on short windows of synthetic lines; the paper's 3x400 network trains 200,000 updates "
            "on IAM-OnDB")
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
