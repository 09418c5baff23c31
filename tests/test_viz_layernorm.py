"""Tests of lnedu.viz for notebooks 00 and 01: the layer-norm row explorer, its figures and widget, and
the notebook index. Figures are drawn off-screen (Agg); the numbers behind them are checked against an
independent float64 formula.
"""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from lnedu import viz as V  # noqa: E402


def _row(seed, H=None):
    rng = np.random.default_rng(seed)
    H = H or int(rng.integers(3, 40))
    return rng.normal(rng.uniform(-3, 3), rng.uniform(0.3, 3), H), rng


def _ln_reference(a, eps, g, b):
    """Eq. 3 with eps, written directly (no lnedu code)."""
    mu = a.mean()
    return g * (a - mu) / np.sqrt(((a - mu) ** 2).mean() + eps) + b


# --------------------------------------------------------------------------------------------------
# explore_row: the explorer's computation


@pytest.mark.parametrize("seed", range(5))
def test_explore_row_matches_the_equation(seed):
    x, rng = _row(seed)
    shift, scale, eps = rng.uniform(-5, 5), 10 ** rng.uniform(-1, 1), 10 ** rng.uniform(-6, -1)
    gain, bias = rng.uniform(0.2, 2), rng.uniform(-1, 1)
    r = V.explore_row(x, shift, scale, eps, gain, bias)
    a = scale * x + shift
    np.testing.assert_allclose(r["a"], a, rtol=1e-15, atol=1e-13)
    np.testing.assert_allclose(r["y"], _ln_reference(a, eps, gain, bias), rtol=1e-12, atol=1e-12)
    var = a.var()
    assert r["in_mean"] == pytest.approx(a.mean(), rel=1e-12, abs=1e-12)
    assert r["in_std"] == pytest.approx(a.std(), rel=1e-12)
    assert r["sigma"] == pytest.approx(np.sqrt(var + eps), rel=1e-12)
    assert r["shrink"] == pytest.approx(np.sqrt(var / (var + eps)), rel=1e-12)
    assert r["slope"] == pytest.approx(gain / np.sqrt(var + eps), rel=1e-12)
    assert r["out_mean"] == pytest.approx(bias, abs=1e-12)
    assert r["out_std"] == pytest.approx(gain * r["shrink"], rel=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_output_is_invariant_to_shifting_and_scaling_the_row_when_eps_is_tiny(seed):
    x, rng = _row(seed)
    gain, bias = rng.uniform(0.2, 2, x.size), rng.uniform(-1, 1, x.size)  # per-unit arrays work too
    base = V.explore_row(x, eps=1e-14, gain=gain, bias=bias)["y"]
    for shift, scale in zip(rng.uniform(-10, 10, 4), 10 ** rng.uniform(-2, 1, 4)):
        moved = V.explore_row(x, shift, scale, 1e-14, gain, bias)["y"]
        np.testing.assert_allclose(moved, base, rtol=0, atol=1e-9)
    # a negative check, so that the comparison above can fail: a different row gives a different output
    other = V.explore_row(rng.permutation(x), eps=1e-14, gain=gain, bias=bias)["y"]
    assert np.abs(other - base).max() > 1e-3


@pytest.mark.parametrize("seed", range(3))
def test_eps_visibly_matters_for_a_small_variance_row(seed):
    x, rng = _row(seed)
    x = (x - x.mean()) / x.std()  # unit variance, so var(scale * x) = scale^2
    eps = 10 ** rng.uniform(-6, -3)
    gain = rng.uniform(0.5, 2)
    big = V.explore_row(x, scale=1.0, eps=eps, gain=gain)
    small = V.explore_row(x, scale=np.sqrt(eps), eps=eps, gain=gain)  # var == eps: std shrinks by sqrt(1/2)
    assert big["shrink"] == pytest.approx(1.0, abs=1e-3)
    assert small["shrink"] == pytest.approx(np.sqrt(0.5), rel=1e-9)
    assert small["out_std"] == pytest.approx(gain * np.sqrt(0.5), rel=1e-9)
    assert np.abs(small["y"] - big["y"]).max() > 0.2 * gain
    tiny = V.explore_row(x, scale=1e-3 * np.sqrt(eps), eps=eps, gain=gain)  # var << eps: the row collapses
    assert tiny["out_std"] < 2e-3 * gain


def test_explore_row_rejects_bad_arguments():
    x = np.random.default_rng(7).normal(size=6)
    with pytest.raises(TypeError, match="x"):
        V.explore_row(np.arange(6), 0.0)
    with pytest.raises(ValueError, match="x"):
        V.explore_row(x[:1])
    with pytest.raises(ValueError, match="x"):
        V.explore_row(x.reshape(2, 3))
    with pytest.raises(ValueError, match="scale"):
        V.explore_row(x, scale=-1.0)
    with pytest.raises(ValueError, match="eps"):
        V.explore_row(x, eps=0.0)
    with pytest.raises(TypeError, match="shift"):
        V.explore_row(x, shift="1")
    with pytest.raises(ValueError, match="gain"):
        V.explore_row(x, gain=np.ones(5))
    with pytest.raises(ValueError, match="bias"):
        V.explore_row(x, bias=float("nan"))


# --------------------------------------------------------------------------------------------------
# figures


def test_norm_axes_figure_shades_columns_for_batch_norm_and_rows_for_layer_norm():
    fig = V.plot_norm_axes(n_cases=4, n_units=7, highlight=(2, 5))
    bn, ln = fig.axes
    groups_bn = np.asarray(bn.images[0].get_array())
    groups_ln = np.asarray(ln.images[0].get_array())
    assert groups_bn.shape == groups_ln.shape == (4, 7)
    np.testing.assert_array_equal(groups_bn, np.tile(np.arange(7), (4, 1)))  # a group per unit (column)
    np.testing.assert_array_equal(groups_ln, np.tile(np.arange(4)[:, None], (1, 7)))  # a group per case (row)
    (box_bn,), (box_ln,) = bn.patches, ln.patches
    assert (box_bn.get_x(), box_bn.get_width(), box_bn.get_height()) == (4.5, 1, 4)
    assert (box_ln.get_y(), box_ln.get_width(), box_ln.get_height()) == (1.5, 7, 1)
    fig.savefig(__import__("io").BytesIO(), format="png")  # it renders
    with pytest.raises(ValueError, match="highlight"):
        V.plot_norm_axes(n_cases=3, n_units=3, highlight=(3, 0))
    with pytest.raises(ValueError, match="n_units"):
        V.plot_norm_axes(n_units=1)


def test_plot_row_draws_input_output_and_their_relation():
    x, _ = _row(11, H=9)
    r = V.explore_row(x, 2.0, 3.0, 1e-5, 1.5, -0.5)
    fig = V.plot_row(r)
    ax_in, ax_out, ax_rel = fig.axes
    np.testing.assert_allclose([p.get_height() for p in ax_in.containers[0]], r["a"])
    np.testing.assert_allclose([p.get_height() for p in ax_out.containers[0]], r["y"])
    np.testing.assert_allclose(ax_rel.collections[0].get_offsets(), np.column_stack([r["a"], r["y"]]))
    ref = V.explore_row(x)
    fig = V.plot_row(r, reference=ref, out_lim=(-4, 4))
    np.testing.assert_allclose([p.get_height() for p in fig.axes[0].containers[1]], ref["a"])
    np.testing.assert_allclose([p.get_height() for p in fig.axes[1].containers[1]], ref["y"])
    assert fig.axes[1].get_ylim() == (-4, 4)


# --------------------------------------------------------------------------------------------------
# the widget


def test_explorer_widget_builds_and_follows_its_sliders():
    import ipywidgets as widgets

    x, rng = _row(3, H=10)
    box = V.layer_norm_explorer(x, dpi=30)
    assert isinstance(box, widgets.VBox)
    assert set(box.sliders) == {"shift", "scale", "eps", "gain", "bias"}
    assert all(isinstance(s, widgets.ValueWidget) for s in box.sliders.values())
    assert isinstance(box.image, widgets.Image) and box.image.value[:8] == b"\x89PNG\r\n\x1a\n"
    np.testing.assert_allclose(box.result["y"], V.explore_row(x)["y"])

    png, html = box.image.value, box.stats.value
    box.sliders["gain"].value = 1.75
    box.sliders["shift"].value = 4.0
    box.sliders["eps"].value = 0.1
    expected = V.explore_row(x, 4.0, 1.0, box.sliders["eps"].value, 1.75, 0.0)
    np.testing.assert_allclose(box.result["y"], expected["y"], rtol=1e-12)
    assert box.result["in_mean"] == pytest.approx(expected["in_mean"])
    assert box.image.value != png and box.stats.value != html
    assert f"{expected['out_std']:.4g}" in box.stats.value


# --------------------------------------------------------------------------------------------------
# the notebook index


def _write_nb(path, cells):
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))


def _md(text):
    return {"cell_type": "markdown", "metadata": {}, "source": text}


def test_notebook_index_lists_numbers_names_and_titles(tmp_path):
    _write_nb(tmp_path / "02-second.ipynb", [_md(["# 02. The second\n", "text"])])
    _write_nb(tmp_path / "00-index.ipynb", [{"cell_type": "code", "source": "# not a title"}, _md("# 00. Index")])
    _write_nb(tmp_path / "scratch.ipynb", [_md("no heading here"), _md("# too late")])
    (tmp_path / "notes.txt").write_text("not a notebook")
    rows = V.notebook_index(tmp_path)
    assert rows == [
        V.NotebookEntry(0, "00-index", "Index"),
        V.NotebookEntry(2, "02-second", "The second"),
        V.NotebookEntry(None, "scratch", ""),
    ]


def test_notebook_index_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="folder"):
        V.notebook_index(tmp_path / "missing")
    (tmp_path / "01-broken.ipynb").write_text("{not json")
    with pytest.raises(ValueError, match="01-broken.ipynb"):
        V.notebook_index(tmp_path)
