"""Plots and the explorer of notebook 02, the invariance properties of normalization (LN paper Table 1).

The numbers come from :mod:`lnedu.theory.invariance` (the explorer's computation is its pure function
:func:`~lnedu.theory.invariance.before_after`); these functions only draw. Each returns a matplotlib
``Figure`` or an ipywidgets widget and displays nothing.
"""

from __future__ import annotations

import io

import numpy as np

from ..theory.invariance import (
    NORM_LABELS,
    NORMS,
    TRANSFORMATION_LABELS,
    TRANSFORMATIONS,
    BeforeAfter,
    InvarianceTable,
    before_after,
)
from .common import new_figure

__all__ = ["EPS_CHOICES", "plot_table_changes", "plot_before_after", "plot_eps_sweep", "invariance_explorer"]

EPS_CHOICES = {"0 (paper)": 0.0, "1e-5 (lnedu default)": 1e-5, "1e-3": 1e-3}
"""The explorer's eps menu: label -> value."""

_FLOOR = 1e-17  # exact zeros (a factor 2 re-scaling is exact in binary) drawn at this level on log scales


def plot_table_changes(table: InvarianceTable):
    """Two heat maps of the largest relative output change per cell (log10): eps -> 0 and the table's eps.

    Invariant cells sit at rounding level (about 1e-16) on the left; on the right, those that eps breaks
    rise towards 1e-6..1e-3 at unit input scale, while the shift invariances stay at rounding level.
    """
    fig, axes = new_figure(2, width=4.6, height=0.45 * len(table.norms) + 2.4)
    short = [TRANSFORMATION_LABELS[t].replace("Single training case", "Single case").replace(" ", "\n", 1)
             for t in table.transformations]
    image = None
    for ax, which, title in ((axes[0], "change", "eps \u2192 0 (the paper)"),
                             (axes[1], "change_eps", f"eps = {table.eps:g}")):
        vals = np.array([[getattr(table[n, t], which) for t in table.transformations] for n in table.norms])
        logs = np.log10(np.maximum(vals, _FLOOR))
        image = ax.imshow(logs, vmin=-17, vmax=0.5, cmap="viridis", aspect="auto")
        for i in range(logs.shape[0]):
            for j in range(logs.shape[1]):
                v = vals[i, j]
                text = "<1e-12" if v < 1e-12 else f"{v:.0e}"
                ax.text(j, i, text, ha="center", va="center", fontsize=7,
                        color="white" if logs[i, j] < -6 else "black")
        ax.set_xticks(range(len(short)), short, fontsize=7, rotation=45, ha="right")
        ax.set_yticks(range(len(table.norms)), [NORM_LABELS[n] for n in table.norms], fontsize=8)
        ax.set_title(title, fontsize="medium")
    fig.colorbar(image, ax=axes, label="log10 relative output change", shrink=0.9)
    return fig


def _draw_before_after(axes, r: BeforeAfter, *, lim=(-1.05, 1.05)):
    ax_s, ax_b = axes
    for ax in axes:
        ax.clear()
    ax_s.plot(r.before.ravel(), r.after.ravel(), "o", ms=3, alpha=0.6, color="tab:blue")
    ax_s.plot(lim, lim, "k--", lw=0.8)
    ax_s.set_xlim(*lim)
    ax_s.set_ylim(*lim)
    ax_s.set_xlabel("output $h$ before")
    ax_s.set_ylabel("output $h'$ after")
    ax_s.set_title(f"all {r.before.size} outputs; on the line = unchanged", fontsize="small")
    units = np.arange(r.before.shape[1])
    ax_b.bar(units - 0.2, r.before[0], 0.4, color="tab:gray", label="before")
    ax_b.bar(units + 0.2, r.after[0], 0.4, color="tab:orange", label="after")
    ax_b.axhline(0, color="k", lw=0.6)
    ax_b.set_ylim(*lim)
    ax_b.set_xlabel("unit $i$")
    ax_b.set_ylabel("$h_i$ of case 0")
    ax_b.legend(frameon=False, fontsize="small", loc="lower right")
    eps = "0" if r.eps == 0 else f"{r.eps:g}"
    ax_b.set_title(f"relative change {r.change:.1e}", fontsize="small")
    ax_s.figure.suptitle(
        f"{NORM_LABELS[r.norm]}, {TRANSFORMATION_LABELS[r.transformation].lower()} ({r.magnitude:.3g}), "
        f"eps = {eps}, input scale {r.input_scale:.0e}", fontsize="medium")


def plot_before_after(result: BeforeAfter, *, lim=(-1.05, 1.05)):
    """Figure of one :func:`~lnedu.theory.invariance.before_after` result: every output after against before
    (points on the diagonal are unchanged), and case 0's outputs as bars, with the relative change."""
    fig, axes = new_figure(2, width=3.8, height=3.3)
    _draw_before_after(axes, result, lim=lim)
    return fig


def plot_eps_sweep(input_scales, curves: dict, *, eps: float, guide: float | None = None):
    """Relative output change against the input scale (log-log), one line per ``curves`` entry
    (``{label: changes}``), with the scale where the summed inputs' variance equals ``eps`` marked.

    ``guide``: if given, the line ``guide * eps / s^2`` (the first-order effect of eps) is drawn too.
    """
    s = np.asarray(input_scales, dtype=float)
    fig, (ax,) = new_figure(1, width=5.6, height=3.6)
    for k, (label, vals) in enumerate(curves.items()):
        ax.plot(s, np.maximum(np.asarray(vals, dtype=float), _FLOOR), marker="os^Dv"[k % 5], ms=4, label=label)
    if guide is not None:
        ax.plot(s, guide * eps / s**2, "k:", lw=1, label=r"$\propto \epsilon/\sigma^2$")
    ax.axvline(np.sqrt(eps), color="tab:red", lw=0.8, ls="--")
    ax.text(np.sqrt(eps), 1e-15, r" $\sigma^2 = \epsilon$", color="tab:red", fontsize="small")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylim(_FLOOR / 3, 10)
    ax.set_xlabel(r"input scale (about the std $\sigma$ of the summed inputs)")
    ax.set_ylabel("relative output change")
    ax.legend(frameon=False, fontsize="small")
    return fig


def _png(fig, dpi: int) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def invariance_explorer(norm: str = "layer", transformation: str = "data_rescale", magnitude: float = 2.0, *,
                        eps: float = 0.0, input_scale: float = 1.0, seed: int = 0, dpi: int = 80):
    """An ipywidgets explorer of :func:`~lnedu.theory.invariance.before_after`.

    Dropdowns choose the normalization, the transformation and eps; sliders the magnitude (the factor of a
    re-scaling, the relative length of a re-centering's shift, 1/8 to 8) and the input scale (1e-4 to 10,
    where eps shows). Returns an ``ipywidgets.VBox``; for scripts and tests it also carries ``.controls``
    (name -> widget), ``.image`` (the PNG), ``.readout`` (HTML) and ``.result`` (the latest
    :class:`~lnedu.theory.invariance.BeforeAfter`); changing a control recomputes them.
    """
    import ipywidgets as widgets

    if eps not in EPS_CHOICES.values():
        raise ValueError(f"eps: expected one of {tuple(EPS_CHOICES.values())}, got {eps!r}")
    style = {"description_width": "7em"}
    layout = widgets.Layout(width="24em")
    controls = {
        "norm": widgets.Dropdown(options=[(NORM_LABELS[n], n) for n in NORMS + ("none",)], value=norm,
                                 description="normalization", style=style, layout=layout),
        "transformation": widgets.Dropdown(options=[(TRANSFORMATION_LABELS[t], t) for t in TRANSFORMATIONS],
                                           value=transformation, description="transformation", style=style,
                                           layout=layout),
        "eps": widgets.Dropdown(options=list(EPS_CHOICES.items()), value=eps, description="eps", style=style,
                                layout=layout),
        "magnitude": widgets.FloatLogSlider(value=magnitude, base=2, min=-3, max=3, step=0.125,
                                            description="magnitude", readout_format=".3g", style=style,
                                            layout=layout),
        "input_scale": widgets.FloatLogSlider(value=input_scale, base=10, min=-4, max=1, step=0.25,
                                              description="input scale", readout_format=".0e", style=style,
                                              layout=layout),
    }
    for w in controls.values():
        w.continuous_update = False
    image = widgets.Image(format="png")
    readout = widgets.HTML()
    names = list(controls)
    box = widgets.VBox([
        widgets.HBox([widgets.VBox([controls[k] for k in names[:3]]), widgets.VBox([controls[k] for k in names[3:]])]),
        image,
        readout,
    ])
    fig, axes = new_figure(2, width=3.8, height=3.3)

    def update(_change=None):
        v = {k: w.value for k, w in controls.items()}
        r = before_after(v["norm"], v["transformation"], v["magnitude"], eps=v["eps"], input_scale=v["input_scale"],
                         seed=seed)
        _draw_before_after(axes, r)
        image.value = _png(fig, dpi)
        verdict = "unchanged (rounding only)" if r.change < 1e-12 else "changed"
        readout.value = f"<p>relative change of the output: <b>{r.change:.2e}</b>, {verdict}</p>"
        box.result = r

    for w in controls.values():
        w.observe(update, names="value")
    box.controls, box.image, box.readout = controls, image, readout
    update()
    return box
