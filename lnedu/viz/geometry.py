"""Plots for notebook 03, the Fisher geometry of normalized learning (LN paper §5.2).

Each function takes results computed by :mod:`lnedu.theory.geometry` and returns a matplotlib Figure;
nothing here computes geometry or calls ``plt.show()``.
"""

from __future__ import annotations

import numpy as np

from ..backend import to_numpy

__all__ = ["MODEL_STYLE", "plot_fisher_agreement", "plot_curvature_scaling", "plot_gain_metric",
           "plot_training_geometry"]

MODEL_STYLE = {
    None: dict(color="tab:gray", label="plain GLM", marker="o"),
    "batch": dict(color="tab:blue", label="batch norm", marker="s"),
    "weight": dict(color="tab:green", label="weight norm", marker="^"),
    "layer": dict(color="tab:red", label="layer norm", marker="D"),
}


def _figure(ncols, width=4.2, height=3.4):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, height), squeeze=False)
    return fig, axes[0]


def plot_fisher_agreement(reference, estimates: dict, *, se=None, title=None):
    """Entries of one or more estimates of a Fisher matrix against a reference, one panel per estimate.

    ``estimates``: ``{label: (P, P) array}``. ``se`` (optional, P x P): standard errors drawn as error bars
    (two of them) on the first panel. Points on the diagonal agree.
    """
    ref = to_numpy(reference).ravel()
    fig, axes = _figure(len(estimates), 3.8, 3.6)
    lo, hi = ref.min(), ref.max()
    pad = 0.05 * (hi - lo)
    for k, (ax, (label, est)) in enumerate(zip(axes, estimates.items())):
        e = to_numpy(est).ravel()
        if k == 0 and se is not None:
            ax.errorbar(ref, e, yerr=2 * to_numpy(se).ravel(), fmt="o", ms=3, lw=0.8, alpha=0.7, color="tab:blue")
        else:
            ax.plot(ref, e, "o", ms=3, alpha=0.7, color="tab:blue" if k == 0 else "tab:orange")
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], "k--", lw=0.8)
        ax.set_xlabel("exact entry $F_{pq}$")
        ax.set_ylabel(label)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_curvature_scaling(results: dict):
    """Curvature and metric length along a fixed direction in ``w_i`` against the weight scale ``c``.

    ``results``: ``{norm: CurvatureScaling}``. Left: the quadratic form ``d^T F d`` and the exact KL of a
    fixed step, relative to ``c = 1``, with the line ``1/c^2``; right: the length ``ds`` with ``1/c``.
    """
    fig, (ax_q, ax_s) = _figure(2)
    c_all = None
    for norm, res in results.items():
        st = MODEL_STYLE[norm]
        r = res.ratios()
        c_all = res.scales
        ax_q.plot(res.scales, r["quad_form"], marker=st["marker"], color=st["color"], ls="none", label=st["label"])
        ax_q.plot(res.scales, r["kl"], marker="x", color=st["color"], ls="none", ms=9)
        ax_s.plot(res.scales, r["ds"], marker=st["marker"], color=st["color"], ls="none", label=st["label"])
    c = np.geomspace(c_all.min(), c_all.max(), 50)
    ax_q.plot(c, 1 / c**2, "k--", lw=1, label="$1/c^2$")
    ax_s.plot(c, 1 / c, "k:", lw=1, label="$1/c$")
    ax_q.set_title("quadratic form $\\delta^T F \\delta$ (markers) and KL (x)", fontsize="medium")
    ax_s.set_title("metric length $ds$", fontsize="medium")
    for ax in (ax_q, ax_s):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log", base=2)
        ax.set_xlabel("scale $c$ of the weights (output unchanged)")
        ax.set_ylabel("relative to $c = 1$")
        ax.legend(frameon=False, fontsize="small")
    fig.tight_layout()
    return fig


def plot_gain_metric(scales, panels: dict):
    """``ds^2`` along the magnitude of the incoming weights against the input scale, one panel per family.

    ``panels``: ``{family_name: {norm: values}}`` with one value per entry of ``scales`` (log-log axes).
    """
    fig, axes = _figure(len(panels))
    for ax, (name, curves) in zip(axes, panels.items()):
        for norm, vals in curves.items():
            st = MODEL_STYLE[norm]
            ls = "-" if norm in ("batch", "layer") else "--"
            ax.plot(scales, vals, ls, marker=st["marker"], color=st["color"], label=st["label"], ms=4)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("input scale $s$ ($x \\to s\\,x$)")
        ax.set_ylabel("$ds^2$ along the gains")
        ax.set_title(f"{name.capitalize()} GLM", fontsize="medium")
        ax.legend(frameon=False, fontsize="small")
    fig.tight_layout()
    return fig


def plot_training_geometry(histories):
    """Weight norm, effective learning rate and loss against SGD steps for several :class:`TrainingGeometry`.

    The effective learning rate is drawn measured (solid) and as ``lr / ||W||^2`` (dashed).
    """
    fig, (ax_n, ax_e, ax_l) = _figure(3, 4.0, 3.3)
    for h in histories:
        st = MODEL_STYLE[h.norm]
        t = np.arange(len(h.weight_norm))
        ax_n.plot(t, h.weight_norm, color=st["color"], label=st["label"])
        ax_e.plot(t, h.effective_lr, color=st["color"], lw=1.2, label=st["label"])
        ax_e.plot(t, h.lr / h.weight_norm**2, color=st["color"], ls="--", lw=0.8)
        k = max(1, len(t) // 50)
        smooth = np.convolve(h.loss, np.ones(k) / k, mode="valid")
        ax_l.plot(t[k - 1:], smooth, color=st["color"], label=st["label"])
    ax_n.set_ylabel("$\\|W\\|_F$")
    ax_e.set_ylabel("effective learning rate of $W/\\|W\\|$")
    ax_e.set_yscale("log")
    ax_e.set_title("solid: measured; dashed: $\\eta/\\|W\\|^2$", fontsize="medium")
    ax_l.set_ylabel("mini-batch loss (running mean)")
    for ax in (ax_n, ax_e, ax_l):
        ax.set_xlabel("SGD step")
    ax_n.legend(frameon=False, fontsize="small")
    fig.tight_layout()
    return fig
