"""Notebook 04: what layer norm does to a recurrent layer's hidden state and to its gradients through time.

* :func:`hidden_dynamics` - the pure computation: run one layer over random inputs and record, at every step,
  the mean ``|h_t|``, the fraction of saturated units and the norm of ``dL/dh_t`` for a loss on the last state;
* :func:`compare_dynamics` - the same for the baseline cell and its layer-normalized twin (same weights);
* :func:`plot_dynamics` - the three curves of both, side by side (a matplotlib Figure);
* :func:`dynamics_explorer` - ipywidgets sliders (recurrent weight scale, sequence length, cell) around them.

Why this picture: a recurrent weight matrix scaled up drives ``tanh`` into saturation, and a saturated unit
passes almost no gradient (``tanh' = 1 - h^2``); scaled down, the recurrence is contractive and the gradient
shrinks geometrically going back in time. Layer norm of ``W_h h_{t-1}`` divides that scale out (the LN paper,
§3 and Eq. 4: "invariant to re-scaling all of the summed inputs"), so the normalized cell sees the same
dynamics whatever the weight scale.
"""

from __future__ import annotations

import io
from typing import NamedTuple

import numpy as np

from .._checks import check_positive
from ..nn.recurrent import GRU, LSTM, RNN
from .common import new_figure

__all__ = [
    "CELLS",
    "RECURRENT_WEIGHTS",
    "Dynamics",
    "build_layer",
    "state_gradients",
    "hidden_dynamics",
    "compare_dynamics",
    "plot_dynamics",
    "dynamics_explorer",
]

#: cell name -> (layer class, its layer-norm placement in the LN paper)
CELLS = {"rnn": (RNN, "eq4"), "lstm": (LSTM, "appendix"), "gru": (GRU, "appendix")}
#: the recurrent weights that ``weight_scale`` multiplies (``W_hhat`` is the GRU candidate's ``U``)
RECURRENT_WEIGHTS = ("W_h", "W_hhat")

STYLE = {"baseline": dict(color="tab:gray", label="baseline"), "ln": dict(color="tab:red", label="layer norm")}


class Dynamics(NamedTuple):
    """Per-step statistics of one run of :func:`hidden_dynamics` (each array has one entry per step t = 1..T)."""

    cell: str
    ln: object  # the layer-norm placement, or None
    weight_scale: float
    threshold: float
    mean_abs_h: np.ndarray  # mean over sequences and units of |h_t|
    frac_saturated: np.ndarray  # fraction of the (sequence, unit) entries with |h_t| > threshold
    grad_norm: np.ndarray  # mean over sequences of ||dL/dh_t||_2, L = sum_b r_b . h_{T,b}


def _check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_cell(cell):
    if cell not in CELLS:
        raise ValueError(f"cell: expected one of {sorted(CELLS)}, got {cell!r}")
    return cell


def build_layer(cell: str, ln, *, input_size: int, hidden_size: int, weight_scale: float = 1.0, seed: int = 0,
                dtype=np.float64):
    """A ``cell`` layer (``"rnn"``, ``"lstm"``, ``"gru"``) with layer norm ``ln`` and its recurrent weights times
    ``weight_scale``. Every other setting is the layer's default (orthogonal weights); the weights are drawn
    before any layer-norm parameter, so a baseline and an LN layer of the same ``seed`` share them."""
    cls, _ = CELLS[_check_cell(cell)]
    scale = check_positive("weight_scale", weight_scale)
    layer = cls(input_size, hidden_size, ln=ln, rng=seed, dtype=dtype)
    for name in RECURRENT_WEIGHTS:
        if name in layer.params:
            layer.params[name] *= scale
    return layer


def state_gradients(layer, x, dh_last):
    r"""Hidden states ``h_1..h_T`` and the gradients ``dL/dh_t`` of :math:`L = \sum r \odot h_T` for every step.

    A layer's ``backward`` returns the gradient of its *initial* state only, so the sequence is run one step at
    a time: a forward pass keeps every state, then, from the last step back, each step is run again from its
    saved state and back-propagated with the gradient of the state after it (truncated BPTT with windows of
    length 1, which chains to exactly the full BPTT). Uses only the public layer API.

    ``x`` (T, B, D); ``dh_last`` (B, H) is ``r``. Returns ``(h, dh)``: arrays (T, B, H), ``dh[t]`` being
    ``dL/dh_{t+1}`` (so ``dh[-1]`` is ``r``), and ``dh0``, the gradient of the initial state ``h_0``.
    """
    T = x.shape[0]
    states = [None]  # None: the layer's zero initial state
    hs = []
    state = None
    for t in range(T):
        out, state = layer.forward(x[t:t + 1], state)
        hs.append(out[0])
        states.append(state)
    d = (dh_last,) + (None,) * (len(state) - 1)
    dhs = [dh_last]
    for t in reversed(range(T)):
        layer.forward(x[t:t + 1], states[t])
        _, d = layer.backward(None, dstate=d)
        dhs.append(d[0])
    dhs.reverse()  # dhs[t] = dL/dh_t for t = 0..T
    return np.stack(hs), np.stack(dhs[1:]), dhs[0]


def hidden_dynamics(cell: str = "rnn", ln="default", weight_scale: float = 1.0, T: int = 50, *, batch: int = 16,
                    input_size: int = 16, hidden_size: int = 64, threshold: float = 0.9, seed: int = 0) -> Dynamics:
    """Run a ``cell`` layer over ``T`` steps of N(0, 1) inputs and record its hidden-state statistics.

    ``ln``: ``"default"`` (the LN paper's placement for the cell: Eq. 4 for the tanh RNN, the appendix's for LSTM
    and GRU), ``None`` (the baseline), or any ``ln`` the layers accept. ``weight_scale`` multiplies the
    (orthogonal) recurrent weights. The loss behind the gradients is ``L = sum(r * h_T)`` with a fixed random
    ``r``, so ``||dL/dh_t||`` shows how much of a signal at the end reaches step t. Float64, NumPy.
    """
    _check_cell(cell)
    T = _check_int("T", T, 1)
    B = _check_int("batch", batch, 1)
    D = _check_int("input_size", input_size, 1)
    H = _check_int("hidden_size", hidden_size, 2)
    threshold = check_positive("threshold", threshold)
    if ln == "default":
        ln = CELLS[cell][1]
    layer = build_layer(cell, ln, input_size=D, hidden_size=H, weight_scale=weight_scale, seed=seed)
    rng = np.random.default_rng([seed, 4])
    x = rng.standard_normal((T, B, D))
    r = rng.standard_normal((B, H))
    h, dh, _ = state_gradients(layer, x, r)
    a = np.abs(h)
    return Dynamics(cell, ln, float(weight_scale), threshold, a.mean(axis=(1, 2)), (a > threshold).mean(axis=(1, 2)),
                    np.linalg.norm(dh, axis=2).mean(axis=1))


def compare_dynamics(cell: str = "rnn", weight_scale: float = 1.0, T: int = 50, *, ln="default", **kwargs) -> dict:
    """``{"baseline": Dynamics, "ln": Dynamics}``: :func:`hidden_dynamics` without and with layer norm ``ln``, on
    the same weights and inputs (``kwargs`` go to both)."""
    if ln is None:
        raise ValueError("ln: expected a layer-norm placement to compare with the baseline, got None")
    return {"baseline": hidden_dynamics(cell, None, weight_scale, T, **kwargs),
            "ln": hidden_dynamics(cell, ln, weight_scale, T, **kwargs)}


def plot_dynamics(results: dict, *, fig_axes=None):
    """Mean ``|h_t|``, fraction saturated and ``||dL/dh_t||`` against t, one curve per entry of ``results``
    (``{"baseline": Dynamics, "ln": Dynamics}``, from :func:`compare_dynamics`). Returns the Figure."""
    fig, axes = fig_axes if fig_axes is not None else new_figure(3, width=3.6, height=3.0)
    for ax in axes:
        ax.clear()
    first = next(iter(results.values()))
    for key, d in results.items():
        st = dict(STYLE.get(key, dict(label=key)))
        if key == "ln":
            st["label"] = f"layer norm ({d.ln})"
        t = np.arange(1, len(d.mean_abs_h) + 1)
        axes[0].plot(t, d.mean_abs_h, **st)
        axes[1].plot(t, d.frac_saturated, **st)
        axes[2].semilogy(t, np.maximum(d.grad_norm, 1e-300), **st)
    axes[0].set_title("mean $|h_t|$", fontsize="medium")
    axes[1].set_title(f"fraction with $|h_t| > {first.threshold:g}$", fontsize="medium")
    axes[2].set_title(r"$\|\partial L/\partial h_t\|$,  $L = r\cdot h_T$", fontsize="medium")
    axes[0].set_ylim(0, 1)
    axes[1].set_ylim(-0.02, 1.02)
    for ax in axes:
        ax.set_xlabel("time step t")
    axes[0].legend(loc="best", fontsize="small")
    fig.suptitle(f"{first.cell.upper()}, recurrent weights x {first.weight_scale:g}", fontsize="medium")
    return fig


def _png(fig, dpi) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def _stats_html(results) -> str:
    rows = "".join(
        f"<tr><td>{STYLE[k]['label']}</td><td>{d.mean_abs_h[-1]:.3f}</td><td>{d.frac_saturated[-1]:.3f}</td>"
        f"<td>{d.grad_norm[0]:.2e}</td></tr>"
        for k, d in results.items()
    )
    return ("<table><tr><th></th><th>mean |h<sub>T</sub>|</th><th>saturated at T</th>"
            f"<th>||dL/dh<sub>1</sub>||</th></tr>{rows}</table>")


def dynamics_explorer(cell: str = "rnn", *, ln: str = "default", weight_scale: float = 1.0, T: int = 50,
                      dpi: int = 80, **kwargs):
    """An ipywidgets explorer of :func:`compare_dynamics`: sliders for the recurrent weight scale (0.1 to 20, log)
    and the sequence length, menus for the cell and the layer-norm placement (``"default"``: the LN paper's for
    the cell, ``"eq4"``: one LN of the summed inputs, ``"appendix"``: separate LNs of ``W_x x`` and ``W_h h``);
    the figure of :func:`plot_dynamics` and a small table.

    Returns an ``ipywidgets.VBox``; for scripts and tests it carries ``.sliders`` (name -> widget), ``.image``,
    ``.stats`` and ``.results`` (the latest :func:`compare_dynamics` dict), which moving a slider recomputes.
    """
    import ipywidgets as widgets

    _check_cell(cell)
    style = {"description_width": "9em"}
    layout = widgets.Layout(width="26em")
    sliders = {
        "weight_scale": widgets.FloatLogSlider(value=weight_scale, base=10, min=-1, max=np.log10(20), step=0.05,
                                               description="recurrent scale", readout_format=".2f",
                                               style=style, layout=layout),
        "T": widgets.IntSlider(value=T, min=5, max=200, step=5, description="sequence length", style=style,
                               layout=layout),
        "cell": widgets.Dropdown(options=sorted(CELLS), value=cell, description="cell", style=style),
        "ln": widgets.Dropdown(options=["default", "eq4", "appendix"], value=ln, description="layer norm",
                               style=style),
    }
    for s in sliders.values():
        s.continuous_update = False
    fig_axes = new_figure(3, width=3.6, height=3.0)
    image = widgets.Image(format="png")
    stats = widgets.HTML()
    box = widgets.VBox([widgets.HBox([widgets.VBox([sliders["weight_scale"], sliders["T"]]),
                                      widgets.VBox([sliders["cell"], sliders["ln"]])]),
                        image, stats])

    def update(_change=None):
        v = {k: s.value for k, s in sliders.items()}
        results = compare_dynamics(v["cell"], v["weight_scale"], v["T"], ln=v["ln"], **kwargs)
        plot_dynamics(results, fig_axes=fig_axes)
        image.value = _png(fig_axes[0], dpi)
        stats.value = _stats_html(results)
        box.results = results

    for s in sliders.values():
        s.observe(update, names="value")
    box.sliders, box.image, box.stats = sliders, image, stats
    update()
    return box
