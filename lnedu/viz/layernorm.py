"""Pictures and an explorer for notebook 01, layer norm from scratch.

* :func:`plot_norm_axes` - which entries of a batch x hidden-units grid share a mean and a standard
  deviation under batch norm (per unit, over the batch) and layer norm (per case, over the units);
* :func:`explore_row` - the explorer's computation, a pure function: shift and scale one row of summed
  inputs, layer-normalize it with a given eps, gain and bias, and report the statistics;
* :func:`plot_row` - a figure of one :func:`explore_row` result: input, output, and output against input;
* :func:`layer_norm_explorer` - ipywidgets sliders around :func:`explore_row` and :func:`plot_row`.

The figures are built without pyplot (see :func:`lnedu.viz.common.new_figure`); nothing here displays
anything: the notebook shows what these functions return.
"""

from __future__ import annotations

import io
import numbers

import numpy as np

from .. import functional as F
from .._checks import check_float_array, check_positive
from ..backend import get_array_module, to_numpy
from .common import new_figure

__all__ = ["plot_norm_axes", "explore_row", "plot_row", "layer_norm_explorer", "EXPLORER_RANGES"]

# the explorer's sliders: (min, max, start); scale and eps are on a log10 scale
EXPLORER_RANGES = {
    "shift": (-10.0, 10.0, 0.0),
    "log10_scale": (-4.0, 1.0, 0.0),
    "log10_eps": (-10.0, 0.0, -5.0),
    "gain": (0.0, 2.0, 1.0),
    "bias": (-2.0, 2.0, 0.0),
}


# --------------------------------------------------------------------------------------------------
# which entries share statistics


def _check_count(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return int(value)


def plot_norm_axes(n_cases: int = 5, n_units: int = 8, *, highlight: tuple = (1, 2)):
    """Two grids of summed inputs ``a_i`` (rows: training cases n, columns: hidden units i), side by side.

    Left, batch norm (the paper's Eq. 2): each *column* is one group, sharing ``mu_i`` and ``sigma_i``
    taken over the batch. Right, layer norm (Eq. 3): each *row* is one group, sharing ``mu`` and
    ``sigma`` taken over the H units of one case. Entries of the same colour are normalized together;
    the outlined group (case ``highlight[0]``, unit ``highlight[1]``) is the one an arrow walks through.
    Returns the matplotlib Figure.
    """
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Rectangle

    n_cases = _check_count("n_cases", n_cases, 2)
    n_units = _check_count("n_units", n_units, 2)
    case, unit = highlight
    if not (0 <= case < n_cases and 0 <= unit < n_units):
        raise ValueError(f"highlight: expected (case, unit) inside the {n_cases} x {n_units} grid, got {highlight!r}")

    fig, axes = new_figure(2, width=max(3.2, 0.5 * n_units + 1.2), height=max(2.4, 0.5 * n_cases + 1.4))
    rows, cols = np.mgrid[0:n_cases, 0:n_units]
    panels = (
        (cols, "batch norm (Eq. 2): one $\\mu_i$, $\\sigma_i$ per unit,\nover the cases of the batch"),
        (rows, "layer norm (Eq. 3): one $\\mu$, $\\sigma$ per case,\nover its $H$ hidden units"),
    )
    arrow = dict(arrowstyle="->", lw=1.5, color="black")
    for ax, (group, title) in zip(axes, panels):
        n_groups = int(group.max()) + 1
        palette = ListedColormap([f"C{k % 10}" for k in range(n_groups)])
        ax.imshow(group, cmap=palette, vmin=-0.5, vmax=n_groups - 0.5, alpha=0.45, aspect="equal")
        ax.set_xticks(np.arange(n_units), [str(i + 1) for i in range(n_units)])
        ax.set_yticks(np.arange(n_cases), [str(n + 1) for n in range(n_cases)])
        ax.set_xticks(np.arange(n_units + 1) - 0.5, minor=True)
        ax.set_yticks(np.arange(n_cases + 1) - 0.5, minor=True)
        ax.grid(which="minor", color="white", linewidth=2)
        ax.tick_params(which="minor", length=0)
        ax.set_xlabel("hidden unit $i$")
        ax.set_ylabel("training case $n$")
        ax.set_title(title, fontsize=10)
        if group is cols:  # the highlighted group is a column: an arrow down the batch
            box = Rectangle((unit - 0.5, -0.5), 1, n_cases, fill=False, lw=2.5, ec="black", zorder=5)
            ax.annotate("", xy=(unit, n_cases - 0.8), xytext=(unit, -0.2), arrowprops=arrow, zorder=6)
        else:  # a row: an arrow across the units
            box = Rectangle((-0.5, case - 0.5), n_units, 1, fill=False, lw=2.5, ec="black", zorder=5)
            ax.annotate("", xy=(n_units - 0.8, case), xytext=(-0.2, case), arrowprops=arrow, zorder=6)
        ax.add_patch(box)
    return fig


# --------------------------------------------------------------------------------------------------
# the explorer: a pure computation, a figure, and widgets around them


def _real(name, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__}")
    v = float(value)
    if not np.isfinite(v):
        raise ValueError(f"{name}: expected a finite number, got {value!r}")
    return v


def _per_unit(name, value, x):
    """A scalar gain/bias as an (H,) array of x's dtype and module; an (H,) array checked and kept."""
    xp = get_array_module(x)
    if hasattr(value, "shape"):
        check_float_array(name, value, ndim=1)
        if value.shape != x.shape:
            raise ValueError(f"{name}: expected a number or shape {tuple(x.shape)} (= x.shape), got {value.shape}")
        return xp.asarray(value, dtype=x.dtype)
    return xp.full(x.shape, _real(name, value), dtype=x.dtype)


def explore_row(x, shift: float = 0.0, scale: float = 1.0, eps: float = 1e-5, gain=1.0, bias=0.0) -> dict:
    r"""Layer-normalize the row ``a = scale * x + shift`` and report what happened; a pure function.

    ``x``: 1-d float array of H >= 2 summed inputs (one training case). ``scale`` > 0, ``eps`` > 0;
    ``gain`` and ``bias`` are numbers (the same for every unit) or (H,) arrays. Returns a dict with

    * ``a``, ``y``: the input row and ``y = LN(a) = g (a - mu) / sqrt(sigma^2 + eps) + b`` (Eq. 3, with eps);
    * ``in_mean``, ``in_std``, ``out_mean``, ``out_std``: statistics of ``a`` and ``y`` over the units
      (population std, dividing by H, as Eq. 3 does);
    * ``sigma``: ``sqrt(var(a) + eps)``, the divisor actually used;
    * ``shrink``: ``sqrt(var / (var + eps))``, the std of the normalized row before the gain: 1 when eps
      is negligible, and small when the row's variance is not large next to eps;
    * ``slope``: ``g / sigma`` (mean over units when the gain varies), the slope of ``y`` against ``a``.

    Without eps the output would not depend on ``shift`` or ``scale`` at all (the paper's Eq. 7); eps
    breaks that exactly where ``scale^2 var(x)`` is not large next to ``eps``.
    """
    check_float_array("x", x, ndim=1)
    if x.shape[0] < 2:
        raise ValueError(f"x: expected a row of at least 2 units, got shape {tuple(x.shape)}")
    shift = _real("shift", shift)
    scale = check_positive("scale", scale)
    eps = check_positive("eps", eps)
    g = _per_unit("gain", gain, x)
    b = _per_unit("bias", bias, x)
    xp = get_array_module(x)

    a = x * scale + shift
    y, cache = F.layer_norm(a[None, :], g, b, eps)
    y = y[0]
    _, _, mean, var = F.standardize(a[None, :], eps)  # the same (shifted two-pass) statistics as F.layer_norm
    var = float(var[0, 0])
    sigma = float(1.0 / cache.rstd[0, 0])
    return {
        "a": a,
        "y": y,
        "in_mean": float(mean[0, 0]),
        "in_std": var**0.5,
        "out_mean": float(y.mean()),
        "out_std": float(xp.sqrt(((y - y.mean()) ** 2).mean())),
        "sigma": sigma,
        "shrink": (var / (var + eps)) ** 0.5,
        "slope": float((g / sigma).mean()),
        "eps": eps,
    }


def _draw_row(axes, result, *, reference=None, reference_label="reference", in_lim=None, out_lim=None):
    """Draw one :func:`explore_row` result into three axes (cleared first); ``reference``, another result,
    is drawn as black outlines behind the input and output bars."""
    a, y = to_numpy(result["a"]), to_numpy(result["y"])
    units = np.arange(1, a.size + 1)
    for ax in axes:
        ax.clear()
    panels = (
        (axes[0], a, "a", result["in_mean"], result["in_std"], "input row $a$", in_lim, "C0"),
        (axes[1], y, "y", result["out_mean"], result["out_std"], "output $y = \\mathrm{LN}(a)$", out_lim, "C3"),
    )
    for ax, v, key, m, s, title, lim, color in panels:
        m = 0.0 if abs(m) <= 1e-12 * float(np.abs(v).max(initial=0.0)) else m  # rounding noise shows as 0
        ax.axhspan(m - s, m + s, color=color, alpha=0.15, lw=0)
        ax.axhline(m, color=color, lw=1, ls="--")
        ax.bar(units, v, color=color, width=0.7)
        if reference is not None:
            ax.bar(units, to_numpy(reference[key]), width=0.7, fill=False, edgecolor="black", lw=0.8)
        ax.set_title(f"{title}\nmean {m:.3g}, std {s:.3g}", fontsize=10)
        ax.set_xlabel("hidden unit $i$" + (f"\n(outlines: {reference_label})" if reference is not None else ""))
        if lim is not None:
            ax.set_ylim(*lim)
    ax = axes[2]
    ax.scatter(a, y, color="C3", s=16, zorder=3)
    span = np.array([a.min(), a.max()])
    pad = 0.1 * (span[1] - span[0]) if span[1] > span[0] else 1.0
    line = np.array([span[0] - pad, span[1] + pad])
    ax.plot(line, result["out_mean"] + result["slope"] * (line - result["in_mean"]), color="gray", lw=1)
    ax.set_title(f"$y$ against $a$: slope $g/\\sigma$ = {result['slope']:.3g}", fontsize=10)
    ax.locator_params(axis="x", nbins=4)
    ax.set_xlabel("$a_i$")
    ax.set_ylabel("$y_i$")
    if out_lim is not None:
        ax.set_ylim(*out_lim)


def _num(v: float) -> str:
    """4 significant digits; rounding noise (|v| < 1e-12, e.g. the mean of a normalized row) shown as 0."""
    return "0" if abs(v) < 1e-12 else f"{v:.4g}"


def plot_row(result: dict, *, reference: dict | None = None, reference_label: str = "reference", in_lim=None,
             out_lim=None):
    """Figure of one :func:`explore_row` result: the input row, the output row (bars, mean dashed, +-1 std
    shaded) and the output against the input, a straight line of slope ``g/sigma``.

    ``reference``: another :func:`explore_row` result (the unshifted, unscaled row, say), drawn as
    outlines to compare with and named by ``reference_label``. ``in_lim``, ``out_lim``: fixed (low, high)
    limits of the value axes. Returns the Figure.
    """
    fig, axes = new_figure(3, width=3.3, height=2.9)
    _draw_row(axes, result, reference=reference, reference_label=reference_label, in_lim=in_lim, out_lim=out_lim)
    return fig


def _stats_html(r) -> str:
    rows = [
        ("mean", _num(r["in_mean"]), _num(r["out_mean"])),
        ("std", _num(r["in_std"]), _num(r["out_std"])),
    ]
    body = "".join(f"<tr><td>{k}</td><td>{i}</td><td>{o}</td></tr>" for k, i, o in rows)
    return (
        "<table><tr><th></th><th>input a</th><th>output y</th></tr>" + body + "</table>"
        f"<p>&sigma; = sqrt(var + eps) = {r['sigma']:.4g}<br>"
        f"eps = {r['eps']:.1e}<br>"
        f"std of the normalized row = sqrt(var/(var+eps)) = {r['shrink']:.4f}</p>"
    )


def _png(fig, dpi) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def layer_norm_explorer(x=None, *, seed: int = 0, hidden: int = 16, dpi: int = 80):
    """An ipywidgets explorer of :func:`explore_row`: sliders for shift, scale, eps, gain and bias.

    ``x``: the base row (1-d float array); default ``hidden`` draws from ``N(0.5, 1)`` with ``seed``.
    Returns an ``ipywidgets.VBox`` (sliders, then the picture beside a table of statistics); display it
    in a notebook. The picture outlines in black the same row without shift and scale (same eps, gain and
    bias), so what the shift and scale change, or do not change, is visible.

    For scripts and tests the box also carries ``.x`` (the base row), ``.sliders`` (name -> slider),
    ``.image`` (the PNG widget), ``.stats`` (the HTML table) and ``.result`` (the latest
    :func:`explore_row` dict); moving a slider recomputes the last three.
    """
    import ipywidgets as widgets

    if x is None:
        x = np.random.default_rng(seed).normal(0.5, 1.0, _check_count("hidden", hidden, 2))
    check_float_array("x", x, ndim=1)
    r = EXPLORER_RANGES
    style = {"description_width": "6em"}
    layout = widgets.Layout(width="22em")
    sliders = {
        "shift": widgets.FloatSlider(value=r["shift"][2], min=r["shift"][0], max=r["shift"][1], step=0.1,
                                     description="shift", style=style, layout=layout),
        "scale": widgets.FloatLogSlider(value=10 ** r["log10_scale"][2], base=10, min=r["log10_scale"][0],
                                        max=r["log10_scale"][1], step=0.05, description="scale",
                                        readout_format=".1e", style=style, layout=layout),
        "eps": widgets.FloatLogSlider(value=10 ** r["log10_eps"][2], base=10, min=r["log10_eps"][0],
                                      max=r["log10_eps"][1], step=0.25, description="eps",
                                      readout_format=".0e", style=style, layout=layout),
        "gain": widgets.FloatSlider(value=r["gain"][2], min=r["gain"][0], max=r["gain"][1], step=0.05,
                                    description="gain g", style=style, layout=layout),
        "bias": widgets.FloatSlider(value=r["bias"][2], min=r["bias"][0], max=r["bias"][1], step=0.05,
                                    description="bias b", style=style, layout=layout),
    }
    for s in sliders.values():
        s.continuous_update = False

    # fixed axes, so that a change shows as a change: the output's covers every gain and bias; the input's
    # covers every shift at scale 1 and grows only when a larger scale needs it
    x_host = to_numpy(x)
    in_reach = r["shift"][1] + float(np.abs(x_host).max())
    xhat_max = float(np.abs(to_numpy(explore_row(x, eps=1e-12)["y"])).max())
    out_reach = 1.1 * (r["gain"][1] * xhat_max + max(abs(r["bias"][0]), r["bias"][1]))
    out_lim = (-out_reach, out_reach)

    fig, axes = new_figure(3, width=3.3, height=2.9)
    image = widgets.Image(format="png")
    stats = widgets.HTML()
    box = widgets.VBox(
        [widgets.HBox([widgets.VBox(list(sliders.values())[:3]), widgets.VBox(list(sliders.values())[3:])]),
         widgets.HBox([image, stats])]
    )

    def update(_change=None):
        v = {k: s.value for k, s in sliders.items()}
        result = explore_row(x, v["shift"], v["scale"], v["eps"], v["gain"], v["bias"])
        reach = max(in_reach, 1.1 * float(np.abs(to_numpy(result["a"])).max()))
        base = explore_row(x, 0.0, 1.0, v["eps"], v["gain"], v["bias"])  # the same row, unshifted, unscaled
        _draw_row(axes, result, reference=base, reference_label="shift 0, scale 1", in_lim=(-reach, reach),
                  out_lim=out_lim)
        image.value = _png(fig, dpi)
        stats.value = _stats_html(result)
        box.result = result

    for s in sliders.values():
        s.observe(update, names="value")
    box.x, box.sliders, box.image, box.stats = x, sliders, image, stats
    update()
    return box
