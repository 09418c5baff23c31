"""Learning curves across seeds, drawn the way the paper's figures draw them, against updates or seconds; and
the mechanism behind them: gradient norms, per-time-step statistics of the recurrent layers, batch norm's
train-mode vs eval-mode gap (what :mod:`lnedu.experiments.diagnostics` logs)."""

from __future__ import annotations

import numpy as np

__all__ = ["plot_curves", "seed_curves", "plot_band", "COLORS", "X_LABELS", "plot_grad_norm", "plot_time_steps",
           "plot_bn_gap", "diag_steps"]

COLORS = {"baseline": "tab:gray", "bn": "tab:blue", "ln": "tab:red", "wn": "tab:green", "normprop": "tab:purple"}

# the horizontal axes a learning curve can use: updates, or the training time the runner logs (cumulative,
# evaluations excluded): wall clock and this process's CPU time
X_KEYS = {"updates": "step", "step": "step", "seconds": "wall_seconds", "wall_seconds": "wall_seconds",
          "process_seconds": "process_seconds"}
X_LABELS = {"updates": "updates", "step": "updates", "seconds": "training seconds (wall clock)",
            "wall_seconds": "training seconds (wall clock)", "process_seconds": "training seconds (CPU time)",
            "epoch": "epoch"}


def _color(variant: str, i: int) -> str:
    return COLORS.get(variant.split("-")[0], f"C{i}")


def _clock(run, key: str) -> dict:
    """``{step: cumulative training seconds}`` of one run, from its records (0 before the first update)."""
    got = {0: 0.0}
    for r in list(run.train) + list(run.eval):
        if key in r:
            got[r["step"]] = float(r[key])
    if len(got) == 1 and (run.train or run.eval):
        raise ValueError(f"x: expected {key!r} in the run's records (logged by the runner since wall-clock timing "
                         "was added), got none; run it again")
    return got


def seed_curves(runs, metric: str, split: str = "eval", x: str = "step"):
    """``(xs, values)`` of one metric over the seeds of one variant: ``values`` is (seeds, points), every run
    cut to the shortest. ``x``: ``"updates"`` (or ``"step"``), ``"seconds"`` (training wall-clock seconds,
    cumulative, evaluations excluded), ``"process_seconds"`` (CPU time), or any record key such as ``"epoch"``.
    On a time axis each point sits at the mean over the seeds of the time its seed reached it."""
    recs = [[r for r in (run.eval if split == "eval" else run.train) if metric in r] for run in runs]
    n = min(len(rs) for rs in recs)
    values = np.array([[r[metric] for r in rs[:n]] for rs in recs], dtype=float)
    key = X_KEYS.get(x, x)
    if key in ("wall_seconds", "process_seconds"):
        clocks = [_clock(run, key) for run in runs]
        xs = np.array([[c.get(r["step"], np.nan) for r in rs[:n]] for c, rs in zip(clocks, recs)]).mean(axis=0)
    else:
        xs = np.array([r[key] for r in recs[0][:n]], dtype=float)
    return xs, values


def plot_band(ax, xs, values, *, color, label=None, style="-", alpha=0.2):
    """The mean over seeds as a line and, with several seeds, their min-max range as a band."""
    ax.plot(xs, values.mean(axis=0), style, color=color, label=label)
    if len(values) > 1:
        ax.fill_between(xs, values.min(axis=0), values.max(axis=0), color=color, alpha=alpha, lw=0)


def plot_curves(results: dict, metric: str, *, split: str = "eval", ax=None, logx=False, logy=False,
                ylabel=None, label_fmt="{variant}", x: str = "updates"):
    """Mean over seeds (line) and min-max across seeds (band) of ``metric`` for every variant, against
    ``x`` = ``"updates"`` or ``"seconds"`` (see :func:`seed_curves`).

    ``results``: ``{variant: [RunResult, ...]}`` as :func:`lnedu.experiments.run` returns.
    Returns the matplotlib Axes.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.4))
    for i, (variant, runs) in enumerate(results.items()):
        runs = [r for r in runs if len(r.series(metric, split)[0])]
        if not runs:
            continue
        xs, vals = seed_curves(runs, metric, split, x=x)
        plot_band(ax, xs, vals, color=_color(variant, i), label=label_fmt.format(variant=variant, n=len(runs)))
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(X_LABELS.get(x, x))
    ax.set_ylabel(ylabel or metric)
    ax.legend(frameon=False, fontsize="small")
    return ax


def plot_grad_norm(results: dict, *, ax=None, x: str = "updates", smooth: int = 20):
    """The global gradient norm of every update (before clipping), a running mean over ``smooth`` updates,
    mean and range over seeds, on a log axis: how large the steps the optimizer is handed are, per variant."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.4))
    k = max(1, int(smooth))
    for i, (variant, runs) in enumerate(results.items()):
        runs = [r for r in runs if any(rec.get("grad_norm") is not None for rec in r.train)]
        if not runs:
            continue
        xs, vals = seed_curves(runs, "grad_norm", "train", x=x)
        if vals.shape[1] >= k:
            kernel = np.ones(k) / k
            vals = np.array([np.convolve(v, kernel, mode="valid") for v in vals])
            xs = xs[k - 1:]
        plot_band(ax, xs, vals, color=_color(variant, i), label=variant)
    ax.set_yscale("log")
    ax.set_xlabel(X_LABELS.get(x, x))
    ax.set_ylabel(f"gradient norm (mean of {k} updates)" if k > 1 else "gradient norm")
    ax.legend(frameon=False, fontsize="small")
    return ax


def diag_steps(run, layer: str) -> list:
    """The steps at which ``run`` logged per-time-step statistics of ``layer``."""
    return [r["step"] for r in run.eval if f"diag/{layer}/gate_saturation" in r]


def plot_time_steps(results: dict, layer: str, stats=("preact_std", "gate_saturation", "h_std"), *, axes=None,
                    at=("first", "last")):
    """Per time step of recurrent layer ``layer`` (its name in the model, e.g. ``"doc"``), one panel per statistic
    of :func:`lnedu.experiments.diagnostics.recurrent_stats`, one color per variant, mean over seeds: dotted
    before training (``"first"``), solid at the end (``"last"``). Flat lines are the "stable hidden-to-hidden
    dynamics" the LN paper argues for; a rising saturation is gates closing."""
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(1, len(stats), figsize=(4 * len(stats), 3.2), squeeze=False)
        axes = axes[0]
    styles = {"first": ":", "last": "-"}
    for i, (variant, runs) in enumerate(results.items()):
        for when in at:
            for ax, stat in zip(axes, stats):
                key = f"diag/{layer}/{stat}"
                curves = []
                for run in runs:
                    recs = [r for r in run.eval if key in r]
                    if recs:
                        curves.append(recs[0 if when == "first" else -1][key])
                if not curves:
                    continue
                n = min(len(c) for c in curves)
                mean = np.mean([c[:n] for c in curves], axis=0)
                ax.plot(np.arange(1, n + 1), mean, styles.get(when, "-"), color=_color(variant, i),
                        label=f"{variant} ({'start' if when == 'first' else 'end'})")
    for ax, stat in zip(axes, stats):
        ax.set_xlabel("time step")
        ax.set_title(f"{layer}: {stat}", fontsize="medium")
    axes[0].legend(frameon=False, fontsize="x-small")
    return axes


def plot_bn_gap(results: dict, metric: str = "valid_error", *, other: str | None = None, ax=None,
                x: str = "updates"):
    """Batch norm's two evaluations side by side for the variants that logged both: ``metric`` (solid: eval mode,
    the statistics the run evaluates with) and ``other`` (dashed; default ``metric + "_batchstats"``: the same
    data with each batch's own statistics; for MNIST pass ``metric + "_running"``). A wide gap says the
    evaluation statistics, not the training, are what is poor."""
    import matplotlib.pyplot as plt

    other = other or f"{metric}_batchstats"
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.4))
    for i, (variant, runs) in enumerate(results.items()):
        runs = [r for r in runs if any(other in rec for rec in r.eval)]
        if not runs:
            continue
        for key, style in ((metric, "-"), (other, "--")):
            xs, vals = seed_curves(runs, key, x=x)
            plot_band(ax, xs, vals, color=_color(variant, i), style=style, alpha=0.1,
                      label=f"{variant}: {key}")
    ax.set_xlabel(X_LABELS.get(x, x))
    ax.set_ylabel(metric)
    ax.legend(frameon=False, fontsize="x-small")
    return ax
