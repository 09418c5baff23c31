"""The three static figures of the theory notebooks build, render, and show what their docstrings say."""

from __future__ import annotations

import io

import numpy as np
import pytest

from lnedu.theory import invariance as I
from lnedu.viz import diagrams as D


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=40)
    return buf.getvalue()


@pytest.mark.parametrize("build", [D.plot_ln_graph, D.plot_ln_lstm_cell, D.plot_rows_vs_columns],
                         ids=lambda f: f.__name__)
def test_each_figure_builds_and_renders(build):
    fig = build()
    png = _png(fig)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 2000
    assert fig.axes and all(ax.get_title() or ax.texts or ax.images for ax in fig.axes)


def test_the_graph_is_the_staged_forward_with_its_two_fan_outs():
    assert {a for a, _, _ in D.LN_GRAPH_EDGES} | {b for _, b, _ in D.LN_GRAPH_EDGES} == set(D.LN_GRAPH_NODES)
    assert sorted({s for _, _, s in D.LN_GRAPH_EDGES}) == list(range(1, 9))  # the eight steps of the table
    fan_out = {a for a in D.LN_GRAPH_NODES if sum(e[0] == a for e in D.LN_GRAPH_EDGES) == 2}
    assert fan_out == {"x", "xc"}  # a feeds steps 1 and 2, a - mu feeds steps 3 and 7


def test_rows_vs_columns_shows_measured_changes_and_the_derived_verdicts():
    fig = D.plot_rows_vs_columns(n_cases=4, n_units=5, seed=2)
    panels = dict(zip(I.TRANSFORMATIONS, fig.axes))
    for t, ax in panels.items():
        verdicts = {n: "Inv." if I.derive_invariance(n, t) else "No" for n in ("batch", "layer")}
        assert f"BN {verdicts['batch']}, LN {verdicts['layer']}" in ax.get_title()
    shift_rows = np.asarray(panels["weight_recenter"].images[0].get_array())
    shift_cols = np.asarray(panels["data_recenter"].images[0].get_array())
    assert np.allclose(shift_rows, shift_rows[:, :1]) and np.ptp(shift_rows[:, 0]) > 1e-3  # one shift per case
    assert np.allclose(shift_cols, shift_cols[:1]) and np.ptp(shift_cols[0]) > 1e-3  # one shift per unit
    one_unit = np.asarray(panels["weight_vector_rescale"].images[0].get_array())
    assert np.allclose(one_unit[:, 2], 3.0) and np.allclose(np.delete(one_unit, 2, axis=1), 1.0)
