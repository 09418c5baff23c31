"""Notebook 15, "Which LN-LSTM?": a diagram per published variant, the per-step hidden statistics of two
variants side by side (and their explorer), the small side-by-side training run, and the axes explorer.

The pure functions behind the pictures (:func:`hidden_statistics`, :func:`reduction_groups`) are what the
tests call; the figures and widgets only draw them. The side-by-side training run itself is
:mod:`lnedu.experiments.which_ln_lstm` (viz sits below the experiments and imports none of them).
Matplotlib and ipywidgets are imported when a figure or widget is built.
"""

from __future__ import annotations

import io

import numpy as np

from ..functional.axes import LAYOUTS, which_normalization
from ..nn.recurrent.variants import VARIANTS, build
from .common import new_figure

__all__ = [
    "draw_variant",
    "variant_diagrams",
    "hidden_statistics",
    "plot_hidden_statistics",
    "divergence_explorer",
    "plot_side_by_side",
    "reduction_groups",
    "plot_reduction",
    "axes_explorer",
]

_LN = "#f4a261"  # a layer norm
_PLAIN = "#e9ecef"
_CARRY = "#2a9d8f"


# --------------------------------------------------------------------------------------------------
# one diagram per variant


def _box(ax, x, y, text, color=_PLAIN, w=0.23, h=0.12):
    from matplotlib.patches import FancyBboxPatch

    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.01", fc=color, ec="0.3",
                                lw=0.8))
    ax.text(x, y, text, ha="center", va="center", fontsize=7)


def _arrow(ax, a, b, color="0.3", style="-|>", rad=0.0):
    ax.annotate("", xy=b, xytext=a, arrowprops=dict(arrowstyle=style, color=color, lw=0.9,
                                                    connectionstyle=f"arc3,rad={rad}"))


def draw_variant(name: str, ax) -> None:
    """Draw variant ``name``'s cell into ``ax``: where its layer norms are (orange), whether they are joint
    or per gate and have a beta, where the bias enters, and which cell is carried to the next step (green)."""
    v = VARIANTS[name]
    cfg = v.ln
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.axis("off")
    ax.set_title(name, fontsize=9)
    beta = "" if cfg.center else " (no β)"
    stats = " per gate" if cfg.per_gate else ""
    bias_in = {"after": "", "before": " + b", "both": " + b"}[cfg.input_bias]
    if cfg.joint_sum:
        _box(ax, 0.2, 0.85, "W_x x")
        _box(ax, 0.2, 0.62, "W_h h")
        _box(ax, 0.5, 0.74, f"LN{stats}\nof the sum", _LN)
        _arrow(ax, (0.32, 0.85), (0.38, 0.76))
        _arrow(ax, (0.32, 0.62), (0.38, 0.72))
        src = (0.62, 0.74)
        gate_label = "+ b" if v.cell == "RNN" else "gates\n(b = LN's β)"
    else:
        _box(ax, 0.2, 0.85, f"W_x x{bias_in}")
        _box(ax, 0.2, 0.62, "W_h h")
        ends = []
        for y, on in ((0.85, cfg.input), (0.62, cfg.recurrent)):
            if on:
                _box(ax, 0.5, y, f"LN{stats}{beta}", _LN)
                _arrow(ax, (0.32, y), (0.38, y))
                ends.append((0.62, y))
            else:
                ends.append((0.32, y))
        for a, y in zip(ends, (0.77, 0.71)):
            _arrow(ax, a, (0.68, y))
        src = None
        after = v.cell_bias and cfg.input_bias != "before"
        gate_label = "Σ + b\n→ gates" if after else "Σ (no b)\n→ gates"
    if v.cell == "GRU":
        if cfg.fuse_candidate:  # one LN of each 3H term: the candidate's statistics are the gates'
            _box(ax, 0.8, 0.74, "+ biases\n→ z, r")
            _box(ax, 0.2, 0.3, "same LN:\nW_xhat x part", _LN)
            _box(ax, 0.5, 0.3, "r ⊙ (same LN:\nW_hhat h part)", _LN)
            ax.text(0.5, 0.97, "LNs over the fused 3H [gates | candidate]", ha="center", fontsize=6)
        else:
            _box(ax, 0.8, 0.74, "z, r")
            _box(ax, 0.2, 0.3, f"LN(W_xhat x{bias_in})", _LN)
            _box(ax, 0.5, 0.3, "r ⊙ LN(W_hhat h)", _LN)
        _box(ax, 0.8, 0.3, "tanh → ĥ")
        _arrow(ax, (0.32, 0.3), (0.38, 0.3))
        _arrow(ax, (0.62, 0.3), (0.68, 0.3))
        _arrow(ax, (0.8, 0.68), (0.55, 0.37))
        ax.text(0.5, 0.12, "h = (1−z) h + z ĥ  (code: z' h + (1−z') ĥ, z' = 1 − z)", ha="center", fontsize=6,
                color=_CARRY)
        ax.text(0.02, 0.02, f"LN divides by {cfg.denominator}, eps {cfg.eps:g}", fontsize=6, color="0.4")
        return
    if v.cell == "RNN":
        _box(ax, 0.8, 0.74, "+ b, tanh\n→ h", _PLAIN)
        _arrow(ax, src, (0.68, 0.74))
        _arrow(ax, (0.8, 0.68), (0.2, 0.56), color=_CARRY, rad=-0.3)
        ax.text(0.5, 0.35, "carried: h", ha="center", fontsize=7, color=_CARRY)
        return
    _box(ax, 0.8, 0.74, gate_label)
    if src is not None:
        _arrow(ax, src, (0.68, 0.74))
    _box(ax, 0.8, 0.45, "c = f c~ + i g")
    _arrow(ax, (0.8, 0.68), (0.8, 0.51))
    if cfg.cell:
        _box(ax, 0.5, 0.3, "LN(c)", _LN)
        _arrow(ax, (0.72, 0.42), (0.6, 0.33))
        _box(ax, 0.2, 0.3, "h = o tanh(·)")
        _arrow(ax, (0.38, 0.3), (0.32, 0.3))
        carry_from = (0.5, 0.24) if cfg.carry == "LN(c)" else (0.8, 0.39)
    else:
        _box(ax, 0.2, 0.3, "h = o tanh(c)")
        _arrow(ax, (0.72, 0.42), (0.32, 0.32))
        carry_from = (0.8, 0.39)
    _arrow(ax, carry_from, (0.8, 0.08), color=_CARRY)
    ax.text(0.8, 0.03, f"carried: {cfg.carry}", ha="center", fontsize=7, color=_CARRY)
    ax.text(0.02, 0.02, f"LN divides by {cfg.denominator}, eps {cfg.eps:g}", fontsize=6, color="0.4")


def variant_diagrams(names=None, ncols: int = 3):
    """A figure with :func:`draw_variant` for each of ``names`` (default: every variant)."""
    names = list(VARIANTS) if names is None else list(names)
    nrows = -(-len(names) // ncols)
    fig, axes = new_figure(ncols, nrows=nrows, width=3.2, height=2.4)
    for ax, name in zip(axes, names):
        draw_variant(name, ax)
    for ax in axes[len(names):]:
        ax.axis("off")
    return fig


# --------------------------------------------------------------------------------------------------
# two variants, one input: per-step hidden statistics


def hidden_statistics(a: str, b: str, *, T: int = 40, B: int = 16, D: int = 8, H: int = 16, growth: float = 1.06,
                      seed: int = 0) -> dict:
    """Run variants ``a`` and ``b`` (same weights: both layers drawn from one seed; gains 1, biases 0, each
    source's forget bias) on one input whose scale grows by ``growth`` per step, and return per step:
    ``{name: {"h_std", "h_mean", "c_std"}}`` (over units, averaged over the batch; ``c`` the carried cell,
    absent for an RNN) and ``"gap"``: the mean |h_a - h_b|. A pure function (float64)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, (T, B, D)) * (growth ** np.arange(T))[:, None, None]
    out = {}
    hs = {}
    for name in (a, b):
        layer = build(name, D, H, rng=np.random.default_rng(seed + 1), dtype=np.float64)
        states = []
        state = None
        for t in range(T):  # one step at a time, to see the carried cell of every step
            o, state = layer.forward(x[t:t + 1], state)
            states.append(state)
        h = np.stack([s[0] for s in states])
        hs[name] = h
        rec = {"h_std": h.std(axis=-1).mean(axis=-1), "h_mean": h.mean(axis=-1).mean(axis=-1)}
        if len(states[0]) > 1:
            c = np.stack([s[1] for s in states])
            rec["c_std"] = c.std(axis=-1).mean(axis=-1)
        out[name] = rec
    out["gap"] = np.abs(hs[a] - hs[b]).mean(axis=(1, 2))
    out["scale"] = growth ** np.arange(T)
    return out


def plot_hidden_statistics(stats: dict, a: str, b: str):
    """Three panels of :func:`hidden_statistics`: the spread of h, the spread of the carried cell, and the
    gap between the two variants' h, against the time step."""
    fig, axes = new_figure(3, width=3.3, height=2.6)
    for name, style in ((a, "-"), (b, "--")):
        axes[0].plot(stats[name]["h_std"], style, label=name)
        if "c_std" in stats[name]:
            axes[1].semilogy(stats[name]["c_std"], style, label=name)
    axes[0].set(title="spread of h over units", xlabel="time step")
    axes[1].set(title="spread of the carried cell", xlabel="time step")
    axes[2].plot(stats["gap"], color="k")
    axes[2].set(title=f"mean |h({a}) − h({b})|", xlabel="time step")
    for ax in axes[:2]:
        ax.legend(frameon=False, fontsize="x-small")
    return fig


def _png(fig, dpi=80) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def divergence_explorer(a: str = "ba2016-appendix", b: str = "tfa", **kwargs):
    """Pick two variants and see their per-step hidden statistics diverge (:func:`hidden_statistics`).
    Returns an ``ipywidgets.VBox``; it carries ``.pickers`` (two dropdowns), ``.image`` and ``.stats`` (the
    latest result) for scripts and tests."""
    import ipywidgets as widgets

    names = list(VARIANTS)
    pickers = [widgets.Dropdown(options=names, value=a, description="variant A"),
               widgets.Dropdown(options=names, value=b, description="variant B")]
    image = widgets.Image(format="png")
    box = widgets.VBox([widgets.HBox(pickers), image])

    def update(_change=None):
        va, vb = pickers[0].value, pickers[1].value
        box.stats = hidden_statistics(va, vb, **kwargs)
        image.value = _png(plot_hidden_statistics(box.stats, va, vb))

    for p in pickers:
        p.observe(update, names="value")
    box.pickers, box.image = pickers, image
    update()
    return box


# --------------------------------------------------------------------------------------------------
# a small side-by-side training run


def plot_side_by_side(results: dict):
    """Validation bpc against evaluations, one line per seed, one colour per variant."""
    fig, axes = new_figure(1, width=5.0, height=3.0)
    ax = axes[0]
    colors = [f"C{i}" for i in range(10)]
    for (name, runs), color in zip(results.items(), colors):
        for k, r in enumerate(runs.values()):
            ax.plot(r["curve"], color=color, alpha=0.8, label=name if k == 0 else None)
    ax.set(xlabel="evaluation", ylabel="valid bpc")
    ax.legend(frameon=False, fontsize="x-small")
    return fig


# --------------------------------------------------------------------------------------------------
# which axes make which normalization


def reduction_groups(layout: str, axes, shape) -> np.ndarray:
    """Integer array of ``shape`` (in ``layout``'s order): entries with the same number share one mean and
    variance when standardizing over ``axes`` (letters or integers, as :func:`which_normalization`)."""
    which_normalization(layout, axes)  # checks the arguments
    letters = set(layout[a] if isinstance(a, int) else a for a in ([axes] if isinstance(axes, int) else axes))
    if len(shape) != len(layout):
        raise ValueError(f"shape: expected {len(layout)} sizes for {layout!r}, got {tuple(shape)}")
    kept = [i for i, c in enumerate(layout) if c not in letters]
    idx = np.indices(shape)
    group = np.zeros(shape, dtype=int)
    for i in kept:
        group = group * shape[i] + idx[i]
    return group


def plot_reduction(layout: str, axes, shape=None):
    """The entries of a small ``layout`` tensor coloured by :func:`reduction_groups`: one panel per example
    (N) or time step (T), channels/units across."""
    shape = shape or {"NCHW": (2, 3, 3, 3), "NHWC": (2, 3, 3, 3), "TNH": (4, 3, 6)}[layout]
    groups = reduction_groups(layout, axes, shape)
    first = layout[0]
    n = shape[0]
    fig, axs = new_figure(n, width=2.0, height=2.0)
    cmap = "tab20"
    for k in range(n):
        g = groups[k]
        if layout == "TNH":
            img = g  # (N, H)
            axs[k].set(xlabel="H", ylabel="N")
        elif layout == "NCHW":
            img = np.concatenate([np.pad(g[c], ((0, 0), (0, 1)), constant_values=-1) for c in range(g.shape[0])], 1)
            axs[k].set(xlabel="C blocks of (H, W)")
        else:  # NHWC
            img = np.concatenate([np.pad(g[..., c], ((0, 0), (0, 1)), constant_values=-1)
                                  for c in range(g.shape[-1])], 1)
            axs[k].set(xlabel="C blocks of (H, W)")
        masked = np.ma.masked_less(img, 0)
        axs[k].imshow(masked, cmap=cmap, vmin=0, vmax=max(int(groups.max()), 1), interpolation="nearest")
        axs[k].set_title(f"{first} = {k}", fontsize=8)
        axs[k].set_xticks([])
        axs[k].set_yticks([])
    return fig


def axes_explorer(layout: str = "NCHW", axes=("H", "W")):
    """Pick a layout and the reduction axes; see which normalization that is (:func:`which_normalization`),
    its PyTorch, Keras and Chainer spellings, and which entries share statistics (:func:`plot_reduction`).
    Returns an ``ipywidgets.VBox`` carrying ``.layout``, ``.boxes`` (letter -> checkbox), ``.html``,
    ``.image`` and ``.choice`` (the latest :class:`~lnedu.functional.axes.NormChoice`)."""
    import html

    import ipywidgets as widgets

    layout_w = widgets.Dropdown(options=sorted(LAYOUTS), value=layout, description="layout")
    row = widgets.HBox()
    text = widgets.HTML()
    image = widgets.Image(format="png")
    box = widgets.VBox([layout_w, row, text, image])
    box.boxes = {}

    def render(_change=None):
        chosen = [c for c, w in box.boxes.items() if w.value]
        if not chosen:
            text.value = "<i>tick at least one axis to reduce over</i>"
            return
        box.choice = choice = which_normalization(layout_w.value, chosen)
        rows = [("method", choice.name), ("shares a mean", choice.meaning), ("PyTorch", choice.pytorch),
                ("Keras", choice.keras), ("Chainer", choice.chainer)]
        text.value = "<table>" + "".join(
            f"<tr><td><b>{k}</b></td><td><code>{html.escape(v or '(no built-in)')}</code></td></tr>"
            for k, v in rows) + "</table>"
        image.value = _png(plot_reduction(layout_w.value, chosen))

    def relayout(_change=None, initial=()):
        box.boxes = {c: widgets.Checkbox(value=c in initial, description=c, indent=False,
                                         layout=widgets.Layout(width="5em")) for c in layout_w.value}
        for w in box.boxes.values():
            w.observe(render, names="value")
        row.children = list(box.boxes.values())
        render()

    layout_w.observe(lambda ch: relayout(ch, initial=layout_w.value[-1]), names="value")
    box.layout_picker, box.html, box.image = layout_w, text, image
    relayout(initial=tuple(axes))
    return box
