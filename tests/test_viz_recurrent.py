"""The recurrent-dynamics explorer of notebook 04: its computation, its figure and its widget."""

from __future__ import annotations

import numpy as np
import pytest

from lnedu.viz.recurrent import (
    build_layer,
    compare_dynamics,
    dynamics_explorer,
    hidden_dynamics,
    plot_dynamics,
    state_gradients,
)


@pytest.mark.parametrize("cell,ln", [("rnn", "eq4"), ("lstm", "appendix"), ("gru", None), ("gru", "appendix")])
def test_step_by_step_gradients_equal_full_bptt(cell, ln):
    """dL/dh_t from the one-step windows equals the full sequence's BPTT started at step t."""
    rng = np.random.default_rng(1)
    T, B, D, H = 7, 3, 4, 5
    layer = build_layer(cell, ln, input_size=D, hidden_size=H, weight_scale=1.7, seed=2)
    x = rng.standard_normal((T, B, D))
    r = rng.standard_normal((B, H))
    h, dh, dh0 = state_gradients(layer, x, r)
    out, _ = layer.forward(x)
    np.testing.assert_allclose(h, out, rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(dh[-1], r)
    n_state = 2 if cell == "lstm" else 1
    for t in (0, 3):
        # run x[t:] from the state after t steps, back-propagate from the end: its dstate0 is dL/dh_t
        state = None
        if t:
            _, state = layer.forward(x[:t])
        layer.forward(x[t:], state)
        _, d0 = layer.backward(None, dstate=(r,) + (None,) * (n_state - 1))
        expected = dh0 if t == 0 else dh[t - 1]
        np.testing.assert_allclose(expected, d0[0], rtol=1e-10, atol=1e-13)


def test_dynamics_shapes_and_ranges():
    d = hidden_dynamics("lstm", "default", 2.0, 12, batch=4, input_size=3, hidden_size=6)
    assert d.ln == "appendix" and d.cell == "lstm" and d.weight_scale == 2.0
    for a in (d.mean_abs_h, d.frac_saturated, d.grad_norm):
        assert a.shape == (12,) and np.isfinite(a).all()
    assert ((d.mean_abs_h > 0) & (d.mean_abs_h < 1)).all()
    assert ((d.frac_saturated >= 0) & (d.frac_saturated <= 1)).all()
    assert (d.grad_norm > 0).all()


def test_ln_of_the_recurrent_term_makes_dynamics_independent_of_weight_scale():
    """With W_h h normalized on its own, scaling W_h changes nothing but the eps term; the baseline changes a lot."""
    kw = dict(batch=4, input_size=4, hidden_size=8)
    ln = [hidden_dynamics("gru", "appendix", s, 15, **kw) for s in (0.5, 4.0)]
    np.testing.assert_allclose(ln[0].mean_abs_h, ln[1].mean_abs_h, rtol=1e-3)
    np.testing.assert_allclose(ln[0].grad_norm, ln[1].grad_norm, rtol=1e-2)
    base = [hidden_dynamics("gru", None, s, 15, **kw) for s in (0.5, 4.0)]
    assert base[1].grad_norm[0] > 100 * base[0].grad_norm[0]


def test_large_weights_saturate_the_baseline_not_the_ln_rnn():
    res = compare_dynamics("rnn", 10.0, 20, batch=8, input_size=8, hidden_size=16)
    base, ln = res["baseline"], res["ln"]
    assert ln.ln == "eq4"
    assert base.frac_saturated[5:].mean() > 0.5
    assert ln.frac_saturated[5:].mean() < 0.5 * base.frac_saturated[5:].mean()
    assert ln.grad_norm[0] < 1e-2 * base.grad_norm[0]  # the exploding gradient is tamed


def test_argument_checks():
    with pytest.raises(ValueError, match="cell"):
        hidden_dynamics("transformer")
    with pytest.raises(ValueError, match="weight_scale"):
        hidden_dynamics("rnn", None, 0.0, 5)
    with pytest.raises(ValueError, match="T"):
        hidden_dynamics("rnn", None, 1.0, 0)
    with pytest.raises(ValueError, match="ln"):
        compare_dynamics("rnn", 1.0, 5, ln=None)


def test_figure_and_explorer():
    res = compare_dynamics("rnn", 3.0, 8, batch=2, input_size=3, hidden_size=4)
    fig = plot_dynamics(res)
    axes = fig.get_axes()
    assert len(axes) == 3
    assert all(len(ax.get_lines()) == 2 for ax in axes)
    box = dynamics_explorer("lstm", T=10, dpi=30, batch=2, input_size=3, hidden_size=4)
    assert box.image.value[:4] == b"\x89PNG"
    assert box.results["ln"].ln == "appendix"
    assert len(box.results["baseline"].mean_abs_h) == 10
    first = box.image.value
    box.sliders["ln"].value = "eq4"  # moving a control recomputes and redraws
    assert box.results["ln"].ln == "eq4"
    assert box.image.value != first
    assert "saturated" in box.stats.value
