"""The Numba GRU and MGU steps (lnedu.functional._numba_gru, the ``[fast]`` extra) against the reference steps.

* they register with the dispatch exactly when Numba is installed, for the steps they take (both resets of the
  GRU and the MGU; no norm, or whole-row layer norms of the recurrent terms) and no others (a norm of a sum,
  batch norm, per-gate layer norm, haste's one norm of the 3H product), and not below ``_numba.MIN_SIZE``;
* forward and backward equal the reference in float64 (to rounding) and float32, with and without gains and
  biases and ``out``, and pass a float64 finite-difference check;
* caches are the reference's types: a forward on one path and a backward on the other agree;
* a row whose statistics overflow goes to the reference; a gain of the wrong shape is refused by the reference,
  naming it; float16 storage is computed in float32 (the MGU now goes through the dispatch as the GRU does);
* whole GRU and MGU layers trained on the fast path give the reference's loss to rounding.

Where Numba is not installed the tests are skipped with the reason (CI installs it).
"""

from __future__ import annotations

import numpy as np
import pytest

import lnedu.functional as F
from lnedu.functional import _numba, _numba_gru, dispatch
from lnedu.functional.recurrent import GRUStepCache, MGUStepCache, Norm
from lnedu.gradcheck import check_function
from tests.test_fast_lstm import (  # as for the LSTM step
    _assert_close,
    _flat,
    assert_registered_exactly_when_numba_is_there,
    trained_loss,
)

pytestmark = pytest.mark.skipif(not _numba.available(), reason="Numba (the [fast] extra) is not installed: "
                                "pip install -e '.[fast]'")

CELLS = {  # name: (step, backward, gate width in H, keywords)
    "gru after": (F.gru_step, F.gru_step_backward, 2, dict(reset="after")),
    "gru before": (F.gru_step, F.gru_step_backward, 2, dict(reset="before")),
    "mgu": (F.mgu_step, F.mgu_step_backward, 1, {}),
}
PLACEMENTS = {"baseline": (False, False), "ln": (True, True), "ln gates only": (True, False),
              "ln candidate only": (False, True)}


def _step(rng, B, H, dtype, cell, placement, gains="gain and bias"):
    _, _, k, kw = CELLS[cell]
    on_h, on_c = PLACEMENTS[placement]

    def norm(n):
        g = rng.normal(1, 0.3, n).astype(dtype) if gains != "none" else None
        return Norm.layer(g, rng.normal(0, 0.5, n).astype(dtype) if gains == "gain and bias" else None)

    args = (rng.normal(0, 1, (B, (k + 1) * H)).astype(dtype), rng.normal(0, 1, (B, H)).astype(dtype),
            (rng.normal(0, 1, (H, (k + 1) * H)) / np.sqrt(H)).astype(dtype))
    return args, dict(kw, norm_h=norm(k * H) if on_h else None, norm_hc=norm(H) if on_c else None)


@pytest.mark.parametrize("placement", PLACEMENTS)
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-13), (np.float32, 2e-6)])
@pytest.mark.parametrize("gains", ["gain and bias", "gain only", "none"])
def test_the_fast_step_equals_the_reference(rng, cell, placement, dtype, tol, gains):
    step, backward, k, _ = CELLS[cell]
    B, H = int(rng.integers(16, 40)), int(rng.integers(16, 40))  # the MGU's B x 2H from 512 = MIN_SIZE
    args, kw = _step(rng, B, H, dtype, cell, placement, gains)
    assert dispatch.lookup(step, *args, **kw) is getattr(_numba_gru, step.__name__)
    h, cache = step(*args, **kw)
    with dispatch.use_reference():
        h0, cache0 = step(*args, **kw)
    _assert_close([h], [h0], tol)
    dh = rng.normal(0, 1, (B, H)).astype(dtype)
    assert dispatch.lookup(backward, dh, cache) is getattr(_numba_gru, backward.__name__)
    for out in (np.empty(((k + 1) * H, B), dtype).T, np.empty((B, (k + 1) * H), dtype)):  # strided, contiguous
        grads = backward(dh, cache, out=out)
        with dispatch.use_reference():
            want = backward(dh, cache0)
        assert grads.a_x is out
        _assert_close(_flat(grads), _flat(want), tol)
        assert all(g is None or g.dtype == dtype for g in _flat(grads))
    assert backward(dh, cache, weight_grad=False).W_hh is None


@pytest.mark.parametrize("cell, placement", [("gru after", "ln"), ("gru before", "ln"), ("mgu", "ln"),
                                             ("gru before", "baseline"), ("mgu", "ln gates only")])
def test_the_fast_step_passes_a_float64_finite_difference_check(rng, monkeypatch, cell, placement):
    monkeypatch.setattr(_numba, "MIN_SIZE", 0)  # small enough for finite differences, on the kernels
    step, backward, _, _ = CELLS[cell]
    (a_x, h, W), kw = _step(rng, 3, 5, np.float64, cell, placement)
    norms = {k: v for k, v in kw.items() if isinstance(v, Norm)}
    other = {k: v for k, v in kw.items() if k not in norms and k not in ("norm_h", "norm_hc")}
    params = dict(a_x=a_x, h_prev=h, W_hh=W)
    for name, n in norms.items():
        params[f"{name}_gain"], params[f"{name}_bias"] = n.gain, n.bias

    def forward(a_x, h_prev, W_hh, **p):
        nk = {k: Norm.layer(p[f"{k}_gain"], p[f"{k}_bias"]) for k in norms}
        assert dispatch.lookup(step, a_x, h_prev, W_hh, **other, **nk) is getattr(_numba_gru, step.__name__)
        return step(a_x, h_prev, W_hh, **other, **nk)

    def back(dh, cache):
        g = backward(dh, cache)
        return (g.a_x, g.h_prev, g.W_hh) + tuple(x for name in norms for x in getattr(g, name))

    report = check_function(forward, back, params, seed=1)
    assert report.max_rel_error < 1e-7, report


@pytest.mark.parametrize("placement", PLACEMENTS)
@pytest.mark.parametrize("cell", CELLS)
def test_caches_cross_paths(rng, cell, placement):
    step, backward, _, _ = CELLS[cell]
    args, kw = _step(rng, 24, 16, np.float64, cell, placement)
    dh = rng.normal(size=(24, 16))
    _, fast_cache = step(*args, **kw)
    with dispatch.use_reference():
        _, ref_cache = step(*args, **kw)
        on_ref = _flat(backward(dh, fast_cache))  # the reference backward, the kernels' cache
    assert type(fast_cache) is type(ref_cache) is (MGUStepCache if cell == "mgu" else GRUStepCache)
    _assert_close(_flat(backward(dh, ref_cache)), on_ref, 1e-13)  # the kernels' backward, the reference's cache


def test_other_normalizations_and_hand_sized_steps_take_the_reference(rng):
    for cell in CELLS:
        step, _, k, _ = CELLS[cell]
        args, kw = _step(rng, 32, 16, np.float32, cell, "ln")
        g = np.ones(k * 16, np.float32)
        others = [dict(norm_h=Norm.batch(g, None)), dict(norm_a=Norm.layer(g, None)),
                  dict(norm_ac=Norm.layer(np.ones(16, np.float32), None)),
                  dict(norm_h=Norm.layer(g, None, groups=2))]
        if cell == "gru after":
            others.append(dict(norm_h=None, norm_hc=None, norm_hh=Norm.layer(np.ones(48, np.float32), None)))
        for other in others:
            assert dispatch.lookup(step, *args, **{**kw, **other}) is None, (cell, other)
        hand_sized, kw_small = _step(rng, 2, 3, np.float32, cell, "ln")
        assert hand_sized[0].size < _numba.MIN_SIZE
        assert dispatch.lookup(step, *hand_sized, **kw_small) is None
        with dispatch.use_reference():
            assert dispatch.lookup(step, *args, **kw) is None


def test_an_infinite_eps_is_refused_naming_it(rng):
    """The kernels take a finite positive eps only; the reference refuses the rest (an infinite eps would make
    every output the bias)."""
    for cell in CELLS:
        step, _, k, _ = CELLS[cell]
        args, kw = _step(rng, 32, 16, np.float32, cell, "ln")
        bad = Norm.layer(kw["norm_hc"].gain, kw["norm_hc"].bias, eps=float("inf"))
        assert not _numba_gru.step_supported(*args, **{**kw, "norm_hc": bad})
        with pytest.raises(ValueError, match="eps: expected a finite number > 0"):
            step(*args, **{**kw, "norm_hc": bad})


def test_a_gain_of_the_wrong_shape_is_refused_naming_it(rng):
    args, kw = _step(rng, 32, 16, np.float32, "gru before", "ln")
    bad = Norm.layer(np.ones(31, np.float32), None)  # 2H is 32
    assert not _numba_gru.step_supported(*args, **{**kw, "norm_h": bad})
    with pytest.raises(ValueError, match=r"gain: expected shape \(32,\)"):
        F.gru_step(*args, **{**kw, "norm_h": bad})


@pytest.mark.parametrize("cell", CELLS)
def test_a_row_whose_statistics_overflow_goes_to_the_reference(rng, cell):
    step, _, _, _ = CELLS[cell]
    args, kw = _step(rng, 32, 16, np.float64, cell, "ln")
    a_x, h, W = args
    h = h.copy()
    h[5] *= 1e300  # the recurrent products overflow in this row's squares: the reference rescales them
    with np.errstate(over="ignore"):  # the reference's first try at the statistics; then it rescales
        got, _ = step(a_x, h, W, **kw)
        with dispatch.use_reference():
            want, _ = step(a_x, h, W, **kw)
    assert np.isfinite(got).all() and np.array_equal(got, want)


def test_float16_storage_is_computed_in_float32(rng):
    """The MGU's step goes through the dispatch as the GRU's does: float16 in, float32 arithmetic, float16 out."""
    (a_x, h, W), kw = _step(rng, 16, 32, np.float32, "mgu", "ln")
    half = [v.astype(np.float16) for v in (a_x, h, W)]
    norms16 = {k: Norm.layer(*(p.astype(np.float16) for p in n[1:3])) for k, n in kw.items()}
    h16, cache = F.mgu_step(*half, **norms16)
    norms32 = {k: Norm.layer(*(p.astype(np.float16).astype(np.float32) for p in n[1:3])) for k, n in kw.items()}
    h32, _ = F.mgu_step(*(v.astype(np.float32) for v in half), **norms32)
    assert h16.dtype == np.float16
    np.testing.assert_array_equal(h16, h32.astype(np.float16))
    g = F.mgu_step_backward(np.ones_like(h16), cache)
    assert g.a_x.dtype == g.h_prev.dtype == np.float16 and np.isfinite(g.a_x).all()


def test_registered_exactly_when_numba_is_there(monkeypatch):
    assert_registered_exactly_when_numba_is_there(
        monkeypatch, _numba_gru, ("gru_step", "gru_step_backward", "mgu_step", "mgu_step_backward"))


@pytest.mark.parametrize("cell", ["GRU-after", "GRU-before", "MGU"])
def test_a_layer_trains_the_same_on_either_path(rng, cell):
    from lnedu.nn.recurrent import GRU, MGU

    x = rng.normal(size=(12, 16, 10)).astype(np.float32)

    def make():
        if cell == "MGU":
            return MGU(10, 32, ln="appendix", rng=np.random.default_rng(3))
        return GRU(10, 32, ln="appendix", reset=cell.split("-")[1], rng=np.random.default_rng(3))

    losses = {path: trained_loss(make, x, path) for path in ("fast", "reference")}
    assert losses["fast"] == pytest.approx(losses["reference"], rel=1e-5)
