"""Three static pictures for the theory notebooks, drawn with matplotlib (boxes, arrows and grids, no image files).

* :func:`plot_ln_graph` - notebook 01: layer norm's forward as the computational graph that the staged backward
  walks in reverse, with the two nodes that feed two others (their gradients add) highlighted;
* :func:`plot_ln_lstm_cell` - notebook 04: the LN-LSTM cell of the paper's appendix (Eq. 20-22): the three layer
  norms, the gates, and the carried cell that stays un-normalized;
* :func:`plot_rows_vs_columns` - notebook 02: what each transformation of Table 1 does to the grid of summed
  inputs ``a`` (cases by units), measured by :func:`lnedu.theory.invariance.transform`, next to the groups that
  batch norm (columns) and layer norm (rows) normalize over.

Each function returns a matplotlib ``Figure`` made without pyplot (:func:`.common.new_figure`).
"""

from __future__ import annotations

import numpy as np

from .common import new_figure

__all__ = ["plot_ln_graph", "plot_ln_lstm_cell", "plot_rows_vs_columns", "LN_GRAPH_NODES", "LN_GRAPH_EDGES"]

# the staged forward of lnedu.functional.layer_norm_staged: node -> (x, y, label)
LN_GRAPH_NODES = {
    "x": (0.0, 1.0, "$a$ (x)"),
    "mu": (1.6, 2.4, "$\\mu$\n(mu)"),
    "xc": (3.2, 1.0, "$a-\\mu$\n(xc)"),
    "sq": (4.8, 2.4, "$(a-\\mu)^2$\n(sq)"),
    "var": (6.4, 2.4, "$v$\n(var)"),
    "std": (8.0, 2.4, "$\\sqrt{v+\\epsilon}$\n(std)"),
    "rstd": (9.6, 2.4, "$1/\\sigma$\n(rstd)"),
    "xhat": (11.2, 1.0, "$\\hat a$\n(xhat)"),
    "y": (12.8, 1.0, "$y$"),
    "gain": (12.8, 2.4, "$g$, $b$\n(gain, bias)"),
}
# (from, to, step of the staged table that computes `to`)
LN_GRAPH_EDGES = (
    ("x", "mu", 1), ("x", "xc", 2), ("mu", "xc", 2), ("xc", "sq", 3), ("sq", "var", 4), ("var", "std", 5),
    ("std", "rstd", 6), ("xc", "xhat", 7), ("rstd", "xhat", 7), ("xhat", "y", 8), ("gain", "y", 8),
)


def _box(ax, x, y, text, *, color="white", edge="black", width=1.0, height=0.62, fontsize=10, lw=1.2):
    from matplotlib.patches import FancyBboxPatch

    ax.add_patch(FancyBboxPatch((x - width / 2, y - height / 2), width, height, boxstyle="round,pad=0.04",
                                fc=color, ec=edge, lw=lw, zorder=2))
    ax.text(x, y, text, ha="center", va="center", fontsize=fontsize, zorder=3)


def _edge_point(center, toward, half):
    """Where the segment from ``center`` to ``toward`` leaves the box of half-sizes ``half`` around ``center``."""
    (x0, y0), (x1, y1) = center, toward
    dx, dy = x1 - x0, y1 - y0
    t = min(half[0] / abs(dx) if dx else np.inf, half[1] / abs(dy) if dy else np.inf)
    return x0 + t * dx, y0 + t * dy


def _arrow(ax, start, end, *, color="black", text=None, lw=1.3, half=(0.56, 0.37), style="-|>"):
    """An arrow between the edges of the boxes centred at ``start`` and ``end``."""
    a, b = _edge_point(start, end, half), _edge_point(end, start, half)
    ax.annotate("", xy=b, xytext=a, zorder=1,
                arrowprops=dict(arrowstyle=style, color=color, lw=lw, shrinkA=0, shrinkB=1, mutation_scale=12))
    if text is not None:
        mx, my = (a[0] + b[0]) / 2, (a[1] + b[1]) / 2
        ax.text(mx, my, text, ha="center", va="center", fontsize=8, color=color, zorder=4,
                bbox=dict(fc="white", ec="none", pad=0.3))


def _frame(ax, xlim, ylim):
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_aspect("equal")
    ax.axis("off")


def plot_ln_graph():
    """Layer norm's forward as a graph of the eight elementary steps of ``F.layer_norm_staged`` (edge labels:
    the step that computes the target). The staged backward walks it from ``y`` back to ``a``: at ``a`` and at
    ``a - mu``, which feed two nodes each, the two gradients that come back are added (highlighted)."""
    fig, (ax,) = new_figure(1, width=12.0, height=3.4)
    fan_out = {"x", "xc"}
    for name, (x, y, text) in LN_GRAPH_NODES.items():
        _box(ax, x, y, text, color="#fde0c5" if name in fan_out else "white",
             edge="#d95f02" if name in fan_out else "black", lw=2.0 if name in fan_out else 1.2)
    for a, b, step in LN_GRAPH_EDGES:
        (x0, y0, _), (x1, y1, _) = LN_GRAPH_NODES[a], LN_GRAPH_NODES[b]
        hot = a in fan_out
        _arrow(ax, (x0, y0), (x1, y1), color="#d95f02" if hot else "black", text=str(step), lw=1.8 if hot else 1.2)
    ax.text(0.0, 0.25, "used twice (steps 1, 2):\nits gradient is the sum", ha="center", va="top", fontsize=8,
            color="#d95f02")
    ax.text(3.2, 0.25, "used twice (steps 3, 7):\nits gradient is the sum", ha="center", va="top", fontsize=8,
            color="#d95f02")
    ax.text(7.6, 0.45, "forward: left to right, one elementary step per arrow (numbers: the staged table)\n"
                       "backward: right to left, each node's gradient = sum over its outgoing arrows",
            ha="center", va="top", fontsize=9)
    _frame(ax, (-0.8, 13.6), (-0.5, 3.0))
    ax.set_title("Layer norm's computational graph, as the staged backward walks it", fontsize=11)
    return fig


def plot_ln_lstm_cell():
    """The LN-LSTM cell of the paper's appendix (Eq. 20-22, gate order f, i, o, g): ``W_h h_{t-1}`` and
    ``W_x x_t`` each through their own layer norm, summed into the four gates; the cell update; the copy of
    ``c_t`` on the output path through a third layer norm; and ``c_t`` carried to the next step un-normalized."""
    fig, (ax,) = new_figure(1, width=12.0, height=5.2)
    ln, gate, op = "#cfe3f5", "#e8e8e8", "white"
    nodes = {
        "h_prev": (0.0, 3.6, "$h_{t-1}$", op),
        "x": (0.0, 1.2, "$x_t$", op),
        "Wh": (2.0, 3.6, "$W_h h_{t-1}$", op),
        "Wx": (2.0, 1.2, "$W_x x_t$", op),
        "LN1": (4.0, 3.6, "LN$_1$\n($g_h$, $b_h$)", ln),
        "LN2": (4.0, 1.2, "LN$_2$\n($g_x$, $b_x$)", ln),
        "sum": (6.0, 2.4, "$+\\,b$", op),
        "gates": (8.0, 2.4, "$f, i, o$: $\\sigma$\n$g$: tanh", gate),
        "c_prev": (8.0, 5.4, "$c_{t-1}$", op),
        "cell": (10.0, 5.4, "$c_t = f\\odot c_{t-1}$\n$+\\; i\\odot g$", gate),
        "c_next": (12.6, 5.4, "$c_t$ to step $t+1$\n(not normalized)", op),
        "LN3": (10.0, 3.9, "LN$_3$\n($g_c$, $b_c$)", ln),
        "tanh": (10.0, 2.4, "tanh", gate),
        "out": (10.0, 0.6, "$h_t = o\\odot\\tanh(\\cdot)$", gate),
    }
    for x, y, text, color in nodes.values():
        _box(ax, x, y, text, color=color, width=1.45, height=0.8, fontsize=9)
    edges = [("h_prev", "Wh"), ("x", "Wx"), ("Wh", "LN1"), ("Wx", "LN2"), ("LN1", "sum"), ("LN2", "sum"),
             ("sum", "gates"), ("c_prev", "cell"), ("gates", "cell"), ("cell", "c_next"), ("cell", "LN3"),
             ("LN3", "tanh"), ("tanh", "out"), ("gates", "out")]
    labels = {("gates", "cell"): "$f, i, g$", ("gates", "out"): "$o$"}
    for a, b in edges:
        (x0, y0), (x1, y1) = nodes[a][:2], nodes[b][:2]
        carried = (a, b) == ("cell", "c_next")
        _arrow(ax, (x0, y0), (x1, y1), color="#d95f02" if carried else "black", lw=2.0 if carried else 1.2,
               half=(0.78, 0.45), text=labels.get((a, b)))
    ax.text(4.0, 0.3, "two separate layer norms: scaling $W_h$ alone\nchanges nothing (each over the 4H gates)",
            ha="center", va="top", fontsize=8)
    ax.text(12.6, 4.6, "the gradient back to $c_{t-1}$\nis only multiplied by $f$", ha="center", va="top",
            fontsize=8, color="#d95f02")
    _frame(ax, (-0.9, 13.6), (-0.4, 6.0))
    ax.set_title("The LN-LSTM cell (appendix Eq. 20-22): blue boxes are layer norms", fontsize=11)
    return fig


def plot_rows_vs_columns(n_cases: int = 5, n_units: int = 6, *, seed: int = 0):
    """Table 1 by eye. For each of the six transformations, the grid of summed inputs ``a`` (rows: cases,
    columns: units) after the change, as measured on a random layer with :func:`~lnedu.theory.invariance.transform`:
    a re-scaling shows ``a'/a`` (1 where nothing changed), a re-centering ``a' - a``. Layer norm normalizes each
    row, batch norm each column: a normalizer is invariant when, within each of its groups, the change is one
    common factor (or, since both subtract the mean, one common shift). The title gives both verdicts, as
    derived by :func:`~lnedu.theory.invariance.derive_invariance`."""
    from ..theory import invariance as I

    layer = I.random_layer(n_cases=n_cases, n_inputs=4, n_units=n_units, seed=seed)
    a = layer.x @ layer.W
    fig, axes = new_figure(3, nrows=2, width=3.3, height=2.9)
    for ax, t in zip(axes, I.TRANSFORMATIONS):
        shift = "recenter" in t
        moved = I.transform(t, layer, 1.0 if shift else 3.0, unit=2, case=1, seed=seed + 1)
        change = moved.x @ moved.W - a if shift else (moved.x @ moved.W) / a
        scale = max(float(np.abs(change).max()), 1e-12) if shift else 3.0
        ax.imshow(change, cmap="coolwarm" if shift else "Oranges", vmin=-scale if shift else 0.0,
                  vmax=scale if shift else 2 * scale,
                  aspect="equal")
        for n in range(n_cases):
            for i in range(n_units):
                ax.text(i, n, f"{change[n, i]:+.1f}" if shift else f"{change[n, i]:.0f}", ha="center", va="center",
                        fontsize=7)
        ax.set_xticks(np.arange(n_units + 1) - 0.5, minor=True)
        ax.set_yticks(np.arange(n_cases + 1) - 0.5, minor=True)
        ax.grid(which="minor", color="white", linewidth=1.5)
        ax.tick_params(which="both", length=0, labelbottom=False, labelleft=False)
        ax.set_xlabel("units $i$ (BN: a column is a group)", fontsize=8)
        ax.set_ylabel("cases $n$ (LN: a row)", fontsize=8)
        verdict = {n: "Inv." if I.derive_invariance(n, t) else "No" for n in ("batch", "layer")}
        what = "$a' - a$" if shift else "$a'/a$"
        ax.set_title(f"{I.TRANSFORMATION_LABELS[t]}: {what}\nBN {verdict['batch']}, LN {verdict['layer']}",
                     fontsize=9)
    fig.suptitle("What each transformation does to the grid of summed inputs: per row (LN's groups) or per "
                 "column (BN's)", fontsize=10)
    return fig
