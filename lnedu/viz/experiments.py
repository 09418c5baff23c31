"""Learning curves across seeds, drawn the way the paper's figures draw them."""

from __future__ import annotations

import numpy as np

__all__ = ["plot_curves", "COLORS"]

COLORS = {"baseline": "tab:gray", "bn": "tab:blue", "ln": "tab:red", "wn": "tab:green", "normprop": "tab:purple"}


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
        series = [r.series(metric, split) for r in runs]
        series = [s for s in series if len(s[0])]
        if not series:
            continue
        n = min(len(s[0]) for s in series)
        steps = series[0][0][:n]
        vals = np.stack([s[1][:n] for s in series])
        color = COLORS.get(variant.split("-")[0], f"C{i}")
        ax.plot(steps, vals.mean(axis=0), color=color, label=label_fmt.format(variant=variant, n=len(series)))
        if len(series) > 1:
            ax.fill_between(steps, vals.min(axis=0), vals.max(axis=0), color=color, alpha=0.2, lw=0)
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("updates")
    ax.set_ylabel(ylabel or metric)
    ax.legend(frameon=False, fontsize="small")
    return ax
