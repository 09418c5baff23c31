r"""Character-level language modelling: LSTM, weight norm, batch norm, layer norm and NormProp (RNP §5.1).

The paper (Laurent, Ballas & Vincent, "Recurrent Normalization Propagation", §5.1, Table 1) trains a
1000-unit LSTM with a softmax output on Penn Treebank characters (Mikolov's splits), on length-100 sequences
with random starts. The weights are orthogonal with every unit's weight vector rescaled to unit norm, and
the one-hot inputs are multiplied by a fixed, untrained orthogonal matrix. Training uses Adam at 2e-3
with an exponential decay of 1e-3 and gradient clipping at 1.0. The gammas are 2, 2, 1 (gamma_x, gamma_h,
gamma_c) for NormProp, 1 for LN and 0.1 for BN. Table 1 reports validation bits per character and training
seconds per epoch:

=============  ==========  ==============
model          valid bpc   seconds/epoch
=============  ==========  ==============
baseline       1.455       386
weight norm    1.438       402
batch norm     1.433       545
layer norm     1.439       530
Norm Prop      1.422       413
=============  ==========  ==============

Claim: NormProp costs roughly 30% less computation than BN and LN (the table says 22-24% less time per
epoch) at a validation bpc at least as good as theirs; we test "better than the baseline's".

Our variants, all the same model around a different recurrent layer (:class:`CharLM`, shared with
:mod:`.text8_grid` in :mod:`.charlm_model`):

* ``baseline``: :class:`lnedu.nn.LSTM`, no normalization;
* ``wn``: :func:`WeightNormLSTM`, the baseline with each unit's incoming weight vectors (columns of ``W_x`` and
  ``W_h``) reparametrized as ``w = g v / ||v||`` (Salimans & Kingma 2016), ``g`` initialized to the columns'
  initial norms so that it starts as the same function as the baseline. It is *not* a NormProp LSTM without its
  variance constants: that one would still carry NormProp's trained output gain ``gamma_c`` on the cell, and
  its gammas start at 2 and 2 instead of at the weights' norms;
* ``bn``: :class:`lnedu.nn.BNLSTM` (Cooijmans et al.), gamma 0.1, statistics per time step of a window;
* ``ln``: :class:`lnedu.nn.LSTM` with ``ln="appendix"`` (the LN paper's supplementary LSTM), gains 1;
* ``normprop``: :class:`lnedu.nn.NormPropLSTM`, gammas 2, 2, 1, variance constants of the paper's Eq. 22-23.

Training (``state="crops"``, every preset, the paper's procedure): each update is ``batch_size`` independent
crops of ``seq_len`` characters at random starts, each from a zero state (:class:`lnedu.data.text.Crops`).
Validation bpc, the mean negative log-likelihood in nats divided by ln 2, is measured the same way: the
validation text cut into consecutive crops of ``eval_len``, each from a zero state (Table 1's "bpc on length-100
sequences"); training bpc on a fixed sample of as many crops spread over the training text. ``state="carried"``
is the other mode, kept as an option: truncated backprop through time on ``B`` contiguous streams
(:class:`lnedu.data.BPTTStream`) with the state carried from window to window, and evaluation with the state
carried over the text, which gives every character a longer context and a lower bpc. Seconds per epoch are
measured in the same run: the median wall time of a training update times the updates in an epoch, so
evaluations and checkpoints do not count and a stray slow update does not either; the CPU time of the updates is
logged too, which other programs sharing the machine do not inflate. Times depend on the machine; compare them
within one run, never across machines.

The paper's settings and our presets (``settings_table(charlm)``, :mod:`.settings`):

| setting | paper | `paper` preset | `medium` preset | `small` preset |
|---|---|---|---|---|
| data | Penn Treebank characters, Mikolov's splits (§5.1) | PTB characters (Mikolov's splits); refuses without them | PTB characters if on disk, else Python's help text (pydoc_data) | PTB characters if on disk, else Python's help text (pydoc_data) |
| hidden units | 1000, one LSTM layer, softmax output (§5.1) | 1,000 | 128 | 64 |
| input | one-hot times a fixed, untrained orthogonal matrix (§5.1) | fixed orthogonal codes (differs: the codes are scaled by sqrt(V), so their components have unit mean square, the scale NormProp's variance analysis assumes; the paper's one-hot x orthogonal has mean square 1/V) | fixed orthogonal codes | fixed orthogonal codes |
| initialization | orthogonal, every unit's weight vector rescaled to unit norm (§5.1) | orthogonal gate blocks; NormProp and WN normalize every unit's vector (differs: the baseline, BN and LN keep the orthogonal draw: W_h's units have unit norm, W_x's (semi-orthogonal rows) are not rescaled) | orthogonal gate blocks; NormProp and WN normalize every unit's vector | orthogonal gate blocks; NormProp and WN normalize every unit's vector |
| training sequences | length 100, random starts, from a zero state (§5.1, after Cooijmans et al.) | 64 independent crops of 100 at random starts, each from a zero state | 32 independent crops of 100 at random starts, each from a zero state | 64 independent crops of 25 at random starts, each from a zero state |
| batch size | not restated; Cooijmans et al. used 64 | 64 | 32 | 64 |
| optimizer | Adam (§5.1) | Adam | Adam | Adam |
| learning rate | 2e-3 (§5.1) | 0.002, every variant | 0.01, every variant | baseline 0.03, wn 0.03, bn 0.03, ln 0.01, normprop 0.03 (tuned on validation) |
| learning-rate decay | 'exponential decay of 1e-3' (§5.1); per update or per epoch not stated | lr exp(-0.001 t), t counting updates | lr exp(-0.001 t), t counting updates | lr exp(-0.001 t), t counting updates |
| gradient clipping | 1.0 (§5.1) | 1 | 1 | 1 |
| gammas | NormProp 2, 2, 1; LN 1; BN 0.1 (§5.1) | NormProp 2, 2, 1; LN 1; BN 0.1 | NormProp 2, 2, 1; LN 1; BN 0.1 | NormProp 2, 2, 1; LN 1; BN 0.1 |
| NormProp variance constants | Eq. 9-10 and Eq. 22-23 disagree (§3, §4) | Eq. 22-23, fixed at initialization | Eq. 22-23, fixed at initialization | Eq. 22-23, fixed at initialization |
| length of training | not stated (Figure 2) | 8,000 updates | 1,200 updates | 250 updates |
| validation | bpc on length-100 sequences (Table 1) | the whole validation text cut into crops of 100, each from a zero state | the whole validation text cut into crops of 100, each from a zero state | the first 6,000 validation characters cut into crops of 25, each from a zero state |
| time per epoch | seconds per epoch on their GPU (Table 1) | median update time x updates per epoch (wall and CPU) | median update time x updates per epoch (wall and CPU) | median update time x updates per epoch (wall and CPU) |
"""

# ruff: noqa: E501 (the settings table above has one row a line, as settings_table writes it)

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from ..backend import get_array_module
from ..nn import BNLSTM, LSTM, NormPropLSTM
from ..nn.recurrent import RecurrentLayer
from ..viz.experiments import COLORS, plot_band, seed_curves
from . import verdicts as V
from .charlm_model import (  # the model, data and task text8_grid shares: importable from here too
    LN2,  # noqa: F401
    BlasThreads,
    CharLM,
    LMTask,
    build_task,
    data_choice,
    evaluation_text,
    final_bpc,
    load_lm_data,
    seconds_per_epoch,
    training_batches,
)
from .settings import Setting
from .verdicts import Verdict

NAME = "charlm"
TITLE = "Character-level language modelling: LSTM, WN, BN, LN and NormProp"
PAPER = "Recurrent NormProp §5.1, Table 1"
CLAIM = ("NormProp trains faster per epoch than BN and LN (roughly 30%) and reaches a lower validation bpc than "
         "the un-normalized LSTM")
VARIANTS = ("baseline", "wn", "bn", "ln", "normprop")
PAPER_TABLE1 = {  # validation bpc, seconds per epoch (Laurent et al., Table 1)
    "baseline": (1.455, 386),
    "wn": (1.438, 402),
    "bn": (1.433, 545),
    "ln": (1.439, 530),
    "normprop": (1.422, 413),
}
LABELS = {"baseline": "Baseline", "wn": "Weight Norm", "bn": "Batch Norm", "ln": "Layer Norm", "normprop": "Norm Prop"}
_data_choice = data_choice  # the old private name, kept for one release

__all__ = [
    "NAME", "TITLE", "PAPER", "CLAIM", "VARIANTS", "PAPER_TABLE1", "LABELS", "Config", "PRESETS", "SEEDS",
    "SETTINGS", "standin",
    "WeightNormLSTM", "CharLM", "LMTask", "BlasThreads", "load_lm_data", "build", "build_layer", "gradient_growth",
    "seconds_per_epoch", "final_bpc", "table", "less_or_more", "verdict", "plot",
]


@dataclass
class Config:
    hidden: int = 64  # LSTM units
    batch_size: int = 64  # streams side by side
    seq_len: int = 25  # truncated-BPTT window
    lr: float = 3e-3  # Adam
    lr_decay: float = 1e-3  # lr_t = lr * exp(-lr_decay * t), t counting updates
    clip: float = 1.0  # global gradient norm
    gamma_normprop: tuple = (2.0, 2.0, 1.0)  # gamma_x, gamma_h, gamma_c
    gamma_bn: float = 0.1
    data: str = "auto"  # "auto" (PTB characters if on disk), "ptb" (refuses without it), "pydoc", "standin"
    data_path: str = ""  # the folder of Mikolov's ptb.char.*.txt files ("": $LNEDU_DATA/ptb)
    state: str = "crops"  # "crops": independent crops from a zero state (the paper); "carried": truncated BPTT
    eval_batch: int = 16  # crops (or streams) side by side in evaluation
    eval_len: int = 100  # evaluation crop length (carried: the window, which only sets the batching)
    eval_chars: int = 6_000  # characters of each split to evaluate on (0: the whole split)
    blas_threads: int = 1  # BLAS threads while training and evaluating (0: leave the library's setting)
    steps: int = 250
    eval_every: int = 25
    checkpoint_every: int = 125
    # learning rate per variant (the others use lr), chosen on validation by `python -m lnedu tune charlm`
    lr_by_variant: dict = field(default_factory=dict)


PRESETS = {
    "tiny": Config(hidden=16, batch_size=8, seq_len=12, lr=1e-2, eval_batch=4, eval_len=12, eval_chars=400,
                   data="pydoc", steps=16, eval_every=8, checkpoint_every=8),
    # rates per variant, from `python -m lnedu tune charlm` (on validation; tuned/charlm-small.json)
    "small": Config(eval_len=25,
                    lr_by_variant={"baseline": 0.03, "wn": 0.03, "bn": 0.03, "ln": 0.01, "normprop": 0.03}),
    # about 30 minutes on 2 cores for 5 variants x 3 seeds, one run after another with one BLAS thread. Sized
    # from the CPU seconds per update (time.process_time over 10 updates after 3, OPENBLAS_NUM_THREADS=1, on the
    # embedded text; `python -m lnedu run charlm --preset medium --plan` measures the same updates by wall clock,
    # which a shared machine inflates): baseline 0.059, wn 0.058, bn 0.114, ln 0.130, normprop 0.062, mean 0.084
    # s; x 1,200 updates x 15 runs = 25 min, and 13 evaluations on the whole validation text (~0.5 s each) per run
    "medium": Config(hidden=128, batch_size=32, seq_len=100, eval_len=100, eval_batch=32, eval_chars=0, lr=1e-2,
                     steps=1200, eval_every=100, checkpoint_every=300),
    "paper": Config(hidden=1000, batch_size=64, seq_len=100, lr=2e-3, lr_decay=1e-3, data="ptb", eval_batch=64,
                    eval_len=100, eval_chars=0, steps=8000, eval_every=400, checkpoint_every=400),
}


def _crops(c) -> str:
    return training_batches(c, "crops")


def _evaluation(c) -> str:
    return evaluation_text(c, "crops")


def _rates(c) -> str:
    if not c.lr_by_variant:
        return f"{c.lr:g}, every variant"
    return ", ".join(f"{v} {r:g}" for v, r in c.lr_by_variant.items()) + " (tuned on validation)"


_DATA = {"ptb": "PTB characters (Mikolov's splits); refuses without them", "auto": "PTB characters if on disk, "
         "else Python's help text (pydoc_data)", "pydoc": "Python's help text (pydoc_data)",
         "standin": "generated (timing only)"}

SETTINGS = (
    Setting("data", "Penn Treebank characters, Mikolov's splits (§5.1)", lambda c: _DATA[c.data]),
    Setting("hidden units", "1000, one LSTM layer, softmax output (§5.1)", "hidden"),
    Setting("input", "one-hot times a fixed, untrained orthogonal matrix (§5.1)", lambda c: "fixed orthogonal codes",
            differs="the codes are scaled by sqrt(V), so their components have unit mean square, the scale "
                    "NormProp's variance analysis assumes; the paper's one-hot x orthogonal has mean square 1/V"),
    Setting("initialization", "orthogonal, every unit's weight vector rescaled to unit norm (§5.1)",
            lambda c: "orthogonal gate blocks; NormProp and WN normalize every unit's vector",
            differs="the baseline, BN and LN keep the orthogonal draw: W_h's units have unit norm, W_x's "
                    "(semi-orthogonal rows) are not rescaled"),
    Setting("training sequences", "length 100, random starts, from a zero state (§5.1, after Cooijmans et al.)",
            _crops),
    Setting("batch size", "not restated; Cooijmans et al. used 64", "batch_size"),
    Setting("optimizer", "Adam (§5.1)", lambda c: "Adam"),
    Setting("learning rate", "2e-3 (§5.1)", _rates),
    Setting("learning-rate decay", "'exponential decay of 1e-3' (§5.1); per update or per epoch not stated",
            lambda c: f"lr exp(-{c.lr_decay:g} t), t counting updates"),
    Setting("gradient clipping", "1.0 (§5.1)", "clip"),
    Setting("gammas", "NormProp 2, 2, 1; LN 1; BN 0.1 (§5.1)",
            lambda c: f"NormProp {', '.join(f'{g:g}' for g in c.gamma_normprop)}; LN 1; BN {c.gamma_bn:g}"),
    Setting("NormProp variance constants", "Eq. 9-10 and Eq. 22-23 disagree (§3, §4)",
            lambda c: "Eq. 22-23, fixed at initialization"),
    Setting("length of training", "not stated (Figure 2)", lambda c: f"{c.steps:,} updates"),
    Setting("validation", "bpc on length-100 sequences (Table 1)", _evaluation),
    Setting("time per epoch", "seconds per epoch on their GPU (Table 1)",
            lambda c: "median update time x updates per epoch (wall and CPU)"),
)


def standin(config: Config) -> Config:
    """``config`` on a generated text with PTB's alphabet size (:func:`lnedu.data.text.load_standin_text`): the
    shapes of a paper-size update without the PTB files, for ``--plan``."""
    return dataclasses.replace(config, data="standin", data_path="")


# ---------------------------------------------------------------------------------------------------------
# model: the weight-normalized LSTM, each variant's layer, and how a gradient moves through it


def WeightNormLSTM(input_size, hidden_size, *, init="orthogonal", forget_bias=1.0, rng=None, dtype=np.float32,
                   check_finite=False):
    r"""An LSTM whose input and recurrent weights are weight-normalized (Salimans & Kingma 2016):
    ``LSTM(..., weight_norm=True)``.

    .. math::
        W_x = V_x\,\mathrm{diag}(g_x / \|V_{x,\cdot j}\|),\qquad W_h = V_h\,\mathrm{diag}(g_h / \|V_{h,\cdot j}\|)

    and then the plain LSTM of :class:`lnedu.nn.LSTM` (gate order f, i, o, g). Column ``j`` is unit ``j``'s
    incoming weights (lnedu's ``x @ W``), so each unit's weight vector has its length ``g_j`` as a parameter
    of its own and its direction ``v / ||v||`` as another. Parameters: ``W_x`` (D, 4H) and ``W_h`` (H, 4H),
    the directions ``v``; ``b`` (4H,); ``g_x``, ``g_h`` (4H,), the lengths, initialized to the initial columns'
    norms, so the layer starts as the same function as an :class:`~lnedu.nn.LSTM` drawn from the same ``rng``.

    Backward: the LSTM's weight gradient ``dW`` comes first, then :func:`lnedu.functional.weight_norm_backward`
    turns it into ``dg = (dW . v) / ||v||`` and ``dv = (g / ||v||)(dW - (dW . w_hat) w_hat)``, a scaled gradient
    projected away from ``v``, per column.
    """
    return LSTM(input_size, hidden_size, init=init, forget_bias=forget_bias, rng=rng, dtype=dtype,
                check_finite=check_finite, weight_norm=True)


def build_layer(config: Config, variant: str, vocab_size: int, rng, dtype=np.float32):
    """The recurrent layer of one variant (input size ``vocab_size``, ``config.hidden`` units)."""
    D, H = vocab_size, config.hidden
    if variant == "baseline":
        return LSTM(D, H, rng=rng, dtype=dtype)
    if variant == "wn":
        return WeightNormLSTM(D, H, rng=rng, dtype=dtype)
    if variant == "bn":
        return BNLSTM(D, H, gamma=config.gamma_bn, max_steps=config.seq_len, rng=rng, dtype=dtype)
    if variant == "ln":
        return LSTM(D, H, ln="appendix", rng=rng, dtype=dtype)
    if variant == "normprop":
        gx, gh, gc = config.gamma_normprop
        return NormPropLSTM(D, H, gamma_x=gx, gamma_h=gh, gamma_c=gc, rng=rng, dtype=dtype)
    raise ValueError(f"variant: expected one of {VARIANTS}, got {variant!r}")


def gradient_growth(layer: RecurrentLayer, steps=(1, 5, 10, 20), *, batch: int = 32, burn_in: int = 20,
                    seed: int = 0) -> np.ndarray:
    """How a gradient changes on its way back through time in ``layer``, at initialization.

    For each ``T`` in ``steps``: run the layer for ``burn_in`` steps of N(0, 1) inputs from a zero state (so
    that the measurement starts from a typical state: at ``h = 0`` the normalized recurrent term of LN and BN
    has no spread, and their gradient there is ``1/sqrt(eps)``), then ``T`` more steps from that state; put a
    random gradient of unit mean square on the *last* output only, backpropagate, and measure the root mean
    square of the gradient that reaches the hidden state ``T`` steps back. Returns these RMS values, one per
    ``T``: values that grow with ``T`` mean exploding gradients, values that shrink, vanishing ones.
    The layer's accumulated gradients are left as they were.
    """
    xp = get_array_module(layer.params["W_x"])
    dtype = layer.params["W_x"].dtype
    saved = {k: g.copy() for k, _, g in layer.named_parameters()}
    out = []
    for T in steps:
        rng = np.random.default_rng([int(seed), int(T)])
        _, state = layer.forward(xp.asarray(rng.standard_normal((burn_in, batch, layer.input_size)), dtype=dtype))
        x = xp.asarray(rng.standard_normal((int(T), batch, layer.input_size)), dtype=dtype)
        h, _ = layer.forward(x, state)
        dout = xp.zeros_like(h)
        dout[-1] = xp.asarray(rng.standard_normal((batch, layer.hidden_size)), dtype=dtype)
        _, dstate0 = layer.backward(dout)
        out.append(float(xp.sqrt((dstate0[0].astype(np.float64) ** 2).mean())))
    for k, _, g in layer.named_parameters():
        g[...] = saved[k]
    return np.array(out)


# ---------------------------------------------------------------------------------------------------------
# build


def build(config: Config, variant: str, seed: int) -> LMTask:
    """The :class:`LMTask` of one variant on the PTB characters (or Python's documentation): see
    :func:`.charlm_model.build_task`."""
    return build_task(config, variant, seed, build_layer, "ptb")


# ---------------------------------------------------------------------------------------------------------
# verdict: Table 1

SEEDS = {"tiny": (0, 1, 2), "small": (0, 1, 2), "medium": (0, 1, 2), "paper": (0, 1, 2)}
PAPER_NUMBERS = ("Table 1 (valid bpc, s/epoch): " + ", ".join(f"{v} {b} / {s} s" for v, (b, s) in
                                                                PAPER_TABLE1.items()) + " (Laurent et al., RNP §5.1)")
LEARN_MARGIN = 0.2  # "not tested" guard: an arm's mean valid bpc must fall 0.2 below its first evaluation


def table(results, time_key: str = "seconds") -> dict:
    """``{variant: (mean final valid bpc, its std, mean seconds/epoch, its std)}`` over the seeds (wall time;
    ``time_key="cpu_seconds"`` for CPU time)."""
    out = {}
    for v in VARIANTS:
        if v in results:
            b = [final_bpc(r) for r in results[v]]
            s = [seconds_per_epoch(r, time_key) for r in results[v]]
            out[v] = (float(np.mean(b)), float(np.std(b)), float(np.mean(s)), float(np.std(s)))
    return out


def less_or_more(fraction: float) -> str:
    """``fraction = 1 - normprop / other`` in words: "23% less", or "7% more" where NormProp took longer (a
    negative fraction printed as "-7% less" read as a typo)."""
    return f"{abs(fraction):.0%} {'less' if fraction >= 0 else 'more'}"


def verdict(results) -> Verdict:
    """Three parts over per-seed figures paired by seed (:func:`lnedu.experiments.verdicts.compare`):
    NormProp's CPU seconds per epoch below BN's and below LN's (the paper's "roughly 30%" is reported, not
    required), and NormProp's final validation bpc below the baseline's. CPU time, not wall time: it is not
    inflated by other programs sharing the cores. Not tested if an arm's bpc never fell 0.2 below its first
    evaluation."""
    if not {"baseline", "bn", "ln", "normprop"} <= set(results):
        return V.Verdict(None, "needs baseline, bn, ln and normprop", "", outcome=V.UNDECIDED)
    bpc = {v: V.per_seed(runs, final_bpc) for v, runs in results.items()}
    key = "cpu_seconds" if all("cpu_seconds" in r.train[0] for runs in results.values() for r in runs if r.train) \
        else "seconds"
    sec = {v: V.per_seed(runs, lambda r: seconds_per_epoch(r, key)) for v, runs in results.items()}
    m = {v: V.mean_sd(sec[v])[0] for v in sec}
    faster = {v: 1 - m["normprop"] / m[v] for v in ("bn", "ln")}
    fig = ("valid bpc " + ", ".join(f"{v} {V.arm_figure(bpc[v])}" for v in bpc)
           + f"; {'CPU' if key == 'cpu_seconds' else 'wall'} seconds/epoch "
           + ", ".join(f"{v} {V.arm_figure(sec[v], '.2f')}" for v in sec)
           + f"; NormProp {less_or_more(faster['bn'])} time per epoch than BN and {less_or_more(faster['ln'])} than LN")
    note = ("LSTMs far smaller than the paper's, on a smaller text and for fewer updates (the paper: 1000 units on "
            "PTB, until convergence); the seconds are NumPy's at a small layer size, where per-step overhead "
            "dominates: the ratios depend on the implementation and the layer size and do not transfer")
    axis = f"{'CPU' if key == 'cpu_seconds' else 'wall'} seconds per epoch; final valid bpc"
    for v in ("baseline", "bn", "ln", "normprop"):
        ok, why = V.learned(results[v], "valid_bpc", margin=LEARN_MARGIN)
        if not ok:
            return V.Verdict.of([V.not_tested("every compared arm learned", "valid bpc", v, v, {v: bpc[v]},
                                              f"{v}: {why}")], fig, note, axis=axis, arms=bpc)
    parts = [V.compare(f"NormProp less time per epoch than {v.upper()}", "seconds per epoch", "normprop",
                       sec["normprop"], v, sec[v], fmt=".2f") for v in ("bn", "ln")]
    parts.append(V.compare("NormProp lower valid bpc than the baseline", "final valid bpc", "normprop",
                           bpc["normprop"], "baseline", bpc["baseline"]))
    return V.Verdict.of(parts, fig, note, axis=axis, arms=bpc)


def describe(results) -> str:
    """Markdown for the notebook: the verdict, each part with mean ± sd (n) and the per-seed values."""
    return V.describe_parts(verdict(results), paper=PAPER_NUMBERS)


# ---------------------------------------------------------------------------------------------------------
# plot


def plot(results):
    """Three panels: validation (solid) and training (dashed) bpc against updates, mean of the seeds with the
    range of the validation curves; the final validation bpc per variant; the training seconds per epoch per
    variant, wall clock (bars) and CPU time (dots), Table 1's two columns, with the seeds' spread."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), gridspec_kw={"width_ratios": [1.6, 1, 1]})
    ax = axes[0]
    names = [v for v in VARIANTS if v in results]
    lowest = np.inf
    for v in names:
        color = COLORS.get(v, "k")
        for key, style in (("valid_bpc", "-"), ("train_bpc", "--")):
            steps, vals = seed_curves(results[v], key)
            lowest = min(lowest, vals.mean(0).min())
            if key == "valid_bpc":
                plot_band(ax, steps, vals, color=color, label=LABELS[v], alpha=0.15)
            else:
                ax.plot(steps, vals.mean(0), style, color=color)
    ax.set_xlabel("updates")
    ax.set_ylabel("bits per character")
    ax.set_title("validation (solid), training (dashed)", fontsize="medium")
    ax.legend(frameon=False, fontsize="small")
    ax.set_ylim(lowest - 0.05, lowest + 1.5)
    t, cpu = table(results), table(results, "cpu_seconds")
    x = np.arange(len(names))
    colors = [COLORS.get(v, "k") for v in names]
    for ax, col, label in ((axes[1], 0, "final validation bpc"), (axes[2], 2, "training seconds per epoch")):
        means, spread = np.array([t[v][col] for v in names]), np.array([t[v][col + 1] for v in names])
        ax.bar(x, means, yerr=spread, color=colors, alpha=0.85, capsize=3)
        ax.set_xticks(x, [LABELS[v].replace(" ", "\n") for v in names], fontsize="small")
        ax.set_title(label, fontsize="medium")
        for xi, m, sd in zip(x, means, spread):
            ax.annotate(f"{m:.3f}" if col == 0 else f"{m:.1f}", (xi, m + sd), ha="center", va="bottom",
                        fontsize="x-small", xytext=(0, 2), textcoords="offset points")
        if col == 0:
            ax.set_ylim(means.min() - 0.15, (means + spread).max() + 0.08)
        else:
            ax.set_ylim(0, 1.12 * (means + spread).max())
    axes[2].plot(x, [cpu[v][2] for v in names], "o", color="k", ms=4, label="CPU time")
    axes[2].legend(frameon=False, fontsize="x-small", loc="upper left")
    axes[2].set_title("training seconds per epoch (bars: wall clock)", fontsize="medium")
    fig.tight_layout()
    return fig
