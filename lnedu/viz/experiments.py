"""Learning curves across seeds, drawn the way the paper's figures draw them."""

from __future__ import annotations

import numpy as np

__all__ = ["plot_curves", "seed_curves", "plot_band", "COLORS"]

COLORS = {"baseline": "tab:gray", "bn": "tab:blue", "ln": "tab:red", "wn": "tab:green", "normprop": "tab:purple"}


def seed_curves(runs, metric: str, split: str = "eval", x: str = "step"):
    """``(xs, values)`` of one metric over the seeds of one variant: ``values`` is (seeds, points), every run
    cut to the shortest. ``x`` is the record key for the horizontal axis (``"step"``, or ``"epoch"``)."""
    recs = [[r for r in (run.eval if split == "eval" else run.train) if metric in r] for run in runs]
    n = min(len(rs) for rs in recs)
    xs = np.array([r[x] for r in recs[0][:n]], dtype=float)
    return xs, np.array([[r[metric] for r in rs[:n]] for rs in recs], dtype=float)


def plot_band(ax, xs, values, *, color, label=None, style="-", alpha=0.2):
    """The mean over seeds as a line and, with several seeds, their min-max range as a band."""
    ax.plot(xs, values.mean(axis=0), style, color=color, label=label)
    if len(values) > 1:
        ax.fill_between(xs, values.min(axis=0), values.max(axis=0), color=color, alpha=alpha, lw=0)


def plot_curves(results: dict, metric: str, *, split: str = "eval", ax=None, logx=False, logy=False,
                ylabel=None, label_fmt="{variant}"):
    """Mean over seeds (line) and min-max across seeds (band) of ``metric`` for every variant.

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
        xs, vals = seed_curves(runs, metric, split)
        plot_band(ax, xs, vals, color=COLORS.get(variant.split("-")[0], f"C{i}"),
                  label=label_fmt.format(variant=variant, n=len(runs)))
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("updates")
    ax.set_ylabel(ylabel or metric)
    ax.legend(frameon=False, fontsize="small")
    return ax
