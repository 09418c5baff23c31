"""text8 character modelling: LSTM / GRU / MGU x with or without layer norm x three initializers (Hafner 2017).

The study (Danijar Hafner, "Language Modeling with Layer Norm and GRU", a blog post, 2017) compares three
memory cells, LSTM, GRU (Chung et al.) and MGU (Zhou et al. 2016), each with and without layer
normalization and with three methods of initializing the weights, on text8. Its stated settings: one
recurrent layer of 2000 units, batches of 100, sequences of 200 bytes, Adam with a fixed learning rate
(the value did not survive in the copy we could read). Its stated findings: the GRU does better than the LSTM
on this task despite having fewer parameters, and the MGU, with the fewest, does worst. What the
post found for layer norm and for the initializers, and its final bpc, we could not read: the notebook says
so, and this module claims nothing from it. The claims tested here are the study's two findings above plus
the two it set out to measure, stated as hypotheses: layer norm improves the bpc, and the initialization
matters little.

The grid: cells ``lstm``, ``gru``, ``mgu`` x ``noln`` / ``ln`` x inits ``xavier`` (Glorot uniform),
``variance_scaling`` (N(0, 2 / fan_in), TensorFlow's variance-scaling default, i.e. He) and ``orthogonal``;
variant names read ``gru-ln-xavier``. The initializer draws the input and recurrent weights of the cell.
Layer norm is the LN paper's placement (:mod:`lnedu.nn.recurrent`, ``ln="appendix"``): the input and
recurrent terms normalized separately. A public TensorFlow GRU cell that matches the post's description (probably
a copy of the cell the post links; we could not confirm it) does the same, then averages the two normalized terms
where the LN paper sums them, a factor of 2 the gains absorb; like that cell, our GRU resets before its recurrent
product and starts its update gate at bias -1. The MGU, whose LN placement the post does not show, gets the LN
paper's GRU placement and a gate bias of 0; the LSTM a forget bias of 1.

The model and training are :mod:`.charlm`'s, shared in :mod:`.charlm_model` (fixed orthogonal input codes, one
recurrent layer, a softmax), with a fixed learning rate. The post says only "sequences of length 200 bytes"; we
read them as independent sequences, each from a zero state (``state="crops"``, the ``medium`` and ``paper``
presets, and the NormProp and Recurrent BN papers' procedure on PTB and text8), and evaluate the same way. The
``tiny`` and ``small`` presets keep ``state="carried"`` (truncated BPTT on contiguous streams, the state carried
from window to window and across the evaluation text), the mode their stored runs were made in. The verdict
averages as the study's comparisons do: bpc per cell over LN and inits, per init over cells and LN, LN against
no LN over cells and inits. Every run is independent: ``python -m lnedu run text8_grid --jobs 2`` (or
``--scheduler ADDR`` for a Dask cluster) runs them in parallel, see :mod:`.sweep`.

The study's settings and our presets (``settings_table(text8_grid)``, :mod:`.settings`):

| setting | paper | `paper` preset | `medium` preset | `small` preset |
|---|---|---|---|---|
| data | text8; the split is not stated | text8, 90M / 5M / 5M (Mikolov et al. 2012's split); refuses without it | text8 if on disk, else Python's help text (pydoc_data) | text8 if on disk, else Python's help text (pydoc_data) |
| cells | LSTM, GRU (Chung et al.), MGU (Zhou et al. 2016) | LSTM (forget bias 1), GRU (reset before the product), MGU | LSTM (forget bias 1), GRU (reset before the product), MGU | LSTM (forget bias 1), GRU (reset before the product), MGU |
| layer norm | with and without; placement not shown (the public GRU cell that matches the post: W x and U h normalized separately, averaged) | the LN paper's: W x and U h normalized separately, summed (differs: summed where that cell averages (a factor 2 the gains absorb); the MGU's placement is our guess) | the LN paper's: W x and U h normalized separately, summed | the LN paper's: W x and U h normalized separately, summed |
| GRU gate bias | -1 on both gates in that public cell | update gate -1, reset gate 0 (differs: only the update gate starts at -1 (lnedu's GRU has one gate-bias setting)) | update gate -1, reset gate 0 | update gate -1, reset gate 0 |
| initializers | three methods, names not recoverable from the post | xavier, variance_scaling, orthogonal (our choice) | xavier, variance_scaling, orthogonal (our choice) | xavier, variance_scaling, orthogonal (our choice) |
| hidden units | 2000, one recurrent layer | 2,000 | 96 | 64 |
| batch size | 100 | 100 | 32 | 64 |
| training sequences | length 200 bytes; whether the state carries is not stated | 100 independent sequences of 200 at random starts, each from a zero state | 32 independent sequences of 50 at random starts, each from a zero state | 64 contiguous streams, windows of 25, state carried (truncated BPTT) |
| optimizer | Adam, fixed learning rate | Adam | Adam | Adam |
| learning rate | fixed; its value is lost in the copy we read | 0.001 (our choice) | 0.003 (our choice) | 0.003 (our choice) |
| gradient clipping | not stated | 1 (our choice) | 1 (our choice) | 1 (our choice) |
| length of training | not stated | 20,000 updates (our choice) | 1,000 updates (our choice) | 200 updates (our choice) |
| validation | bpc; how it was measured is not stated | the whole validation text cut into sequences of 200, each from a zero state | the whole validation text cut into sequences of 50, each from a zero state | the first 4,000 validation characters, state carried |
"""

# ruff: noqa: E501 (the settings table above has one row a line, as settings_table writes it)

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ..nn import GRU, LSTM, MGU
from . import verdicts as V
from .charlm_model import LMTask, build_task, evaluation_text, final_bpc, seconds_per_epoch, training_batches
from .settings import Setting
from .verdicts import Verdict

NAME = "text8_grid"
TITLE = "text8: LSTM / GRU / MGU x layer norm x initializers"
PAPER = "Hafner 2017, blog post on text8"
CLAIM = ("layer norm improves bpc; GRU beats LSTM and MGU (MGU worst); the initializer matters less than the "
         "cell type")
GRID = True
CELLS = ("lstm", "gru", "mgu")
LNS = ("noln", "ln")
INITS = ("xavier", "variance_scaling", "orthogonal")
VARIANTS = tuple(f"{c}-{n}-{i}" for c in CELLS for n in LNS for i in INITS)

__all__ = [
    "NAME", "TITLE", "PAPER", "CLAIM", "GRID", "CELLS", "LNS", "INITS", "VARIANTS", "Config", "PRESETS", "SEEDS",
    "SETTINGS", "standin",
    "parse_variant", "build_layer", "build", "grid", "marginals", "marginals_by_seed", "verdict", "plot",
    "plot_curves", "seconds",
]


@dataclass
class Config:
    hidden: int = 64
    batch_size: int = 64
    seq_len: int = 25
    lr: float = 3e-3  # Adam, fixed (the study's value is unknown)
    lr_decay: float = 0.0
    clip: float = 1.0
    data: str = "auto"  # "auto" (text8 if on disk), "text8" (refuses without it), "pydoc", "standin"
    data_path: str = ""  # the text8 file, text8.zip or their folder ("": $LNEDU_DATA/text8)
    state: str = "crops"  # "crops": independent sequences from a zero state; "carried": truncated BPTT
    eval_batch: int = 16
    eval_len: int = 100  # evaluation crop length (carried: the window, which only sets the batching)
    eval_chars: int = 4_000
    blas_threads: int = 1
    steps: int = 200
    eval_every: int = 25
    checkpoint_every: int = 100


PRESETS = {
    "tiny": Config(hidden=8, batch_size=8, seq_len=8, lr=2e-2, eval_batch=2, eval_len=20, eval_chars=200,
                   data="pydoc", state="carried", steps=10, eval_every=5, checkpoint_every=5),
    "small": Config(state="carried"),
    # about 30 minutes on 2 cores for 18 variants x 3 seeds one after another with one BLAS thread (--jobs 2
    # halves it). Sized from the CPU seconds per update (time.process_time over 10 updates after 3,
    # OPENBLAS_NUM_THREADS=1, embedded text; `--plan` measures the same by wall clock, which a shared machine
    # inflates), xavier: lstm 0.019, lstm-ln 0.062, gru 0.015, gru-ln 0.029, mgu 0.011, mgu-ln 0.022, mean 0.026 s;
    # x 1,000 updates x 54 runs = 23 min, and 11 evaluations on the whole validation text (~0.3 s each) per run
    "medium": Config(hidden=96, batch_size=32, seq_len=50, eval_batch=32, eval_len=50, eval_chars=0, lr=3e-3,
                     steps=1000, eval_every=100, checkpoint_every=500),
    # the study's sizes; the learning rate (its value is lost), the clipping and the 20,000 updates are our choice
    "paper": Config(hidden=2000, batch_size=100, seq_len=200, lr=1e-3, data="text8", eval_batch=100, eval_len=200,
                    eval_chars=0, steps=20_000, eval_every=1000, checkpoint_every=1000),
}


def _sequences(c) -> str:
    return training_batches(c, "sequences")


def _evaluation(c) -> str:
    return evaluation_text(c, "sequences")


_DATA = {"text8": "text8, 90M / 5M / 5M (Mikolov et al. 2012's split); refuses without it",
         "auto": "text8 if on disk, else Python's help text (pydoc_data)", "pydoc": "Python's help text (pydoc_data)",
         "standin": "generated (timing only)"}

SETTINGS = (
    Setting("data", "text8; the split is not stated", lambda c: _DATA[c.data]),
    Setting("cells", "LSTM, GRU (Chung et al.), MGU (Zhou et al. 2016)",
            lambda c: "LSTM (forget bias 1), GRU (reset before the product), MGU"),
    Setting("layer norm", "with and without; placement not shown (the public GRU cell that matches the post: "
            "W x and U h normalized separately, averaged)", lambda c: "the LN paper's: W x and U h normalized "
            "separately, summed",
            differs="summed where that cell averages (a factor 2 the gains absorb); the MGU's placement is our guess"),
    Setting("GRU gate bias", "-1 on both gates in that public cell", lambda c: "update gate -1, reset gate 0",
            differs="only the update gate starts at -1 (lnedu's GRU has one gate-bias setting)"),
    Setting("initializers", "three methods, names not recoverable from the post",
            lambda c: ", ".join(INITS) + " (our choice)"),
    Setting("hidden units", "2000, one recurrent layer", "hidden"),
    Setting("batch size", "100", "batch_size"),
    Setting("training sequences", "length 200 bytes; whether the state carries is not stated", _sequences),
    Setting("optimizer", "Adam, fixed learning rate", lambda c: "Adam" if not c.lr_decay else
            f"Adam, lr exp(-{c.lr_decay:g} t)"),
    Setting("learning rate", "fixed; its value is lost in the copy we read", lambda c: f"{c.lr:g} (our choice)"),
    Setting("gradient clipping", "not stated", lambda c: f"{c.clip:g} (our choice)"),
    Setting("length of training", "not stated", lambda c: f"{c.steps:,} updates (our choice)"),
    Setting("validation", "bpc; how it was measured is not stated", _evaluation),
)


def standin(config: Config) -> Config:
    """``config`` on a generated text with text8's alphabet (27 characters:
    :func:`lnedu.data.text.load_standin_text`): the shapes of a paper-size update without text8, for ``--plan``."""
    return dataclasses.replace(config, data="standin", data_path="")


# ---------------------------------------------------------------------------------------------------------
# model


def parse_variant(variant: str) -> tuple[str, bool, str]:
    """``"gru-ln-xavier"`` -> ``("gru", True, "xavier")``."""
    if variant not in VARIANTS:
        raise ValueError(f"variant: expected a name like 'gru-ln-xavier' from VARIANTS, got {variant!r}")
    cell, ln, init = variant.split("-", 2)
    return cell, ln == "ln", init


def build_layer(config: Config, variant: str, vocab_size: int, rng, dtype=np.float32):
    """The recurrent layer of one grid point."""
    cell, ln, init = parse_variant(variant)
    ln = "appendix" if ln else None
    D, H = vocab_size, config.hidden
    if cell == "lstm":
        return LSTM(D, H, ln=ln, init=init, rng=rng, dtype=dtype)
    if cell == "gru":
        return GRU(D, H, reset="before", update_bias=-1.0, ln=ln, init=init, rng=rng, dtype=dtype)
    return MGU(D, H, ln=ln, init=init, rng=rng, dtype=dtype)


# ---------------------------------------------------------------------------------------------------------
# build


def build(config: Config, variant: str, seed: int) -> LMTask:
    """The :class:`~lnedu.experiments.charlm_model.LMTask` of one grid point on text8 (or Python's documentation):
    see :func:`.charlm_model.build_task`."""
    return build_task(config, variant, seed, build_layer, "text8")


# ---------------------------------------------------------------------------------------------------------
# verdict: averaging as the study does

SEEDS = {"tiny": (0, 1, 2), "small": (0, 1, 2), "medium": (0, 1, 2), "paper": (0, 1, 2)}
PAPER_NUMBERS = ("none recovered: the study's result table, its LN and initializer findings and its 1.27 bpc "
                 "were not found; its text ranks GRU above LSTM and MGU last (Hafner 2017)")
LEARN_MARGIN = 0.2  # "not tested" guard: a grid point's mean valid bpc must fall 0.2 below its first evaluation


def grid(results, key: str = "valid_bpc") -> np.ndarray:
    """Final ``key`` (mean over seeds) as an array indexed ``[cell, ln, init]`` (NaN where a variant is missing)."""
    out = np.full((len(CELLS), len(LNS), len(INITS)), np.nan)
    for v, runs in results.items():
        c, ln, i = parse_variant(v)
        out[CELLS.index(c), int(ln), INITS.index(i)] = np.mean([final_bpc(r, key) for r in runs])
    return out


def marginals(results, key: str = "valid_bpc") -> dict:
    """Mean final bpc per cell (over LN and inits), per LN setting (over cells and inits) and per init
    (over cells and LN): ``{"cell": {...}, "ln": {...}, "init": {...}}``."""
    g = grid(results, key)
    return {
        "cell": {c: float(np.nanmean(g[k])) for k, c in enumerate(CELLS)},
        "ln": {n: float(np.nanmean(g[:, k])) for k, n in enumerate(LNS)},
        "init": {i: float(np.nanmean(g[:, :, k])) for k, i in enumerate(INITS)},
    }


def marginals_by_seed(results, key: str = "valid_bpc") -> dict:
    """:func:`marginals` of each seed's runs alone: ``{"cell": {c: array over seeds}, "ln": ..., "init": ...}``,
    to see how much of a difference between averages the seeds alone would make."""
    seeds = sorted({r.seed for runs in results.values() for r in runs})
    per = [marginals({v: [r for r in runs if r.seed == s] for v, runs in results.items()}, key) for s in seeds]
    return {g: {k: np.array([m[g][k] for m in per]) for k in per[0][g]} for g in per[0]}


def verdict(results) -> Verdict:
    """Four parts, each decided by :func:`lnedu.experiments.verdicts.compare` on per-seed marginals (the
    average over the grid of each seed's runs alone, paired by seed): (1) LN's mean bpc below no-LN's;
    (2, 3) GRU's below LSTM's and below MGU's; (4) the spread (max - min) of the per-init means below the
    spread of the per-cell means. Needs the full grid; not tested if a grid point's bpc never fell 0.2."""
    if set(results) != set(VARIANTS):
        return V.Verdict(None, "needs all 18 grid points", "", outcome=V.UNDECIDED)
    seeds = sorted({r.seed for runs in results.values() for r in runs})
    mb = marginals_by_seed(results)

    def seedwise(arr):
        return {s: float(x) for s, x in zip(seeds, arr)}

    cell = {c: seedwise(mb["cell"][c]) for c in CELLS}
    ln = {n: seedwise(mb["ln"][n]) for n in LNS}
    init = {i: seedwise(mb["init"][i]) for i in INITS}
    spread = {"init": {s: max(init[i][s] for i in INITS) - min(init[i][s] for i in INITS) for s in seeds},
              "cell": {s: max(cell[c][s] for c in CELLS) - min(cell[c][s] for c in CELLS) for s in seeds}}
    fig = ("mean final valid bpc: " + ", ".join(f"{c} {V.arm_figure(v)}" for c, v in cell.items())
           + "; " + ", ".join(f"{'no LN' if n == 'noln' else 'LN'} {V.arm_figure(v)}" for n, v in ln.items())
           + "; " + ", ".join(f"{i} {V.arm_figure(v)}" for i, v in init.items())
           + f"; init spread {V.arm_figure(spread['init'])} vs cell spread {V.arm_figure(spread['cell'])}")
    note = ("cells trained for a few epochs at most (sizes and data: the preset's settings table; the study: 2000 "
            "units on text8); "
            "the study's own LN and init results were not found, so only its cell ranking is compared")
    axis = "final valid bpc, averaged over the grid per seed"
    for v, runs in results.items():
        ok, why = V.learned(runs, "valid_bpc", margin=LEARN_MARGIN)
        if not ok:
            return V.Verdict.of([V.not_tested("every grid point learned", "valid bpc", v, v,
                                              {v: V.per_seed(runs, final_bpc)}, f"{v}: {why}")], fig, note, axis=axis)
    parts = [
        V.compare("LN improves bpc", "mean final valid bpc", "ln", ln["ln"], "noln", ln["noln"]),
        V.compare("GRU beats LSTM", "mean final valid bpc", "gru", cell["gru"], "lstm", cell["lstm"]),
        V.compare("GRU beats MGU", "mean final valid bpc", "gru", cell["gru"], "mgu", cell["mgu"]),
        V.compare("the initializer matters less than the cell", "spread of the per-init vs per-cell means (bpc)",
                  "init spread", spread["init"], "cell spread", spread["cell"]),
    ]
    return V.Verdict.of(parts, fig, note, axis=axis, arms={**cell, **ln, **init})


def describe(results) -> str:
    """Markdown for the notebook: the verdict, each part with mean ± sd (n) and the per-seed values."""
    return V.describe_parts(verdict(results), paper=PAPER_NUMBERS)


# ---------------------------------------------------------------------------------------------------------
# plot


def plot(results):
    """Heat maps of the final validation bpc over cell x init, without and with layer norm (one color scale),
    and the marginal means per cell, per LN setting and per init."""
    import matplotlib.pyplot as plt

    g = grid(results)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), gridspec_kw={"width_ratios": [1, 1, 1.1]}, layout="constrained")
    lo, hi = np.nanmin(g), np.nanmax(g)
    for k, title in enumerate(("without layer norm", "with layer norm")):
        ax = axes[k]
        im = ax.imshow(g[:, k], cmap="viridis_r", vmin=lo, vmax=hi)
        ax.set_xticks(range(len(INITS)), [i.replace("_", "\n") for i in INITS], fontsize="small")
        ax.set_yticks(range(len(CELLS)), [c.upper() for c in CELLS])
        ax.set_title(title, fontsize="medium")
        for r in range(len(CELLS)):
            for c in range(len(INITS)):
                if np.isfinite(g[r, k, c]):
                    ax.text(c, r, f"{g[r, k, c]:.3f}", ha="center", va="center", fontsize="small",
                            color="w" if g[r, k, c] > (lo + hi) / 2 else "k")
    fig.colorbar(im, ax=axes[1], shrink=0.9, label="final validation bpc")
    m = marginals(results)
    ax = axes[2]
    labels, values, colors = [], [], []
    for group, color in (("cell", "tab:blue"), ("ln", "tab:red"), ("init", "tab:green")):
        for name, v in m[group].items():
            labels.append(name.replace("variance_scaling", "var. scal.").upper() if group == "cell" else
                          name.replace("variance_scaling", "var. scal."))
            values.append(v)
            colors.append(color)
    y = np.arange(len(values))[::-1]
    ax.barh(y, values, color=colors, alpha=0.85)
    ax.set_yticks(y, labels, fontsize="small")
    ax.set_xlim(min(values) - 0.1, max(values) + 0.05)
    ax.set_xlabel("mean final validation bpc")
    ax.set_title("averages: cell, LN, init", fontsize="medium")
    return fig


def plot_curves(results):
    """Validation bpc against updates: the mean over inits and seeds for each cell, without (dashed) and with
    (solid) LN; the vertical axis starts just below the lowest curve."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.8))
    lowest = np.inf
    for c, color in zip(CELLS, ("tab:gray", "tab:blue", "tab:orange")):
        for ln, style in ((False, "--"), (True, "-")):
            runs = [r for v, rs in results.items() for r in rs if parse_variant(v)[:2] == (c, ln)]
            if not runs:
                continue
            series = [r.series("valid_bpc") for r in runs]
            n = min(len(s[0]) for s in series)
            mean = np.mean([s[1][:n] for s in series], axis=0)
            lowest = min(lowest, mean.min())
            ax.plot(series[0][0][:n], mean, style, color=color, label=f"{c.upper()}{' + LN' if ln else ''}")
    ax.set_ylim(lowest - 0.05, lowest + 1.0)
    ax.set_xlabel("updates")
    ax.set_ylabel("validation bpc")
    ax.legend(frameon=False, fontsize="small", ncol=2)
    fig.tight_layout()
    return fig


def seconds(results) -> dict:
    """Mean training seconds per epoch of each variant (machine-dependent; parallel runs share the cores)."""
    return {v: float(np.mean([seconds_per_epoch(r) for r in runs])) for v, runs in results.items()}
