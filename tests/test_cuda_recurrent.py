"""The fused LN-LSTM and LN-GRU steps (lnedu/cuda/recurrent.py, kernels/recurrent.cuh): which cases they
take, the kernel source run on the CPU through the emulator (tests/cuda_emulator) against the portable
steps and a float64 reference, an NVRTC compile of every instantiation, and, where a GPU is present, the
nn layers with the fused kernels on and off against NumPy.

The emulator runs every CUDA thread of a block as a real thread, so the cases stay small: a few rows,
hidden sizes 1, 3, 37 (odd, and not whole warps) and 300 (two units per thread).
"""

from __future__ import annotations

import numpy as np
import pytest

import lnedu.cuda as C
import lnedu.functional as F
from lnedu.cuda import _kernels
from lnedu.cuda import recurrent as CR
from lnedu.functional.recurrent import GRUStepGrads, LSTMStepGrads, Norm

try:
    from ml_dtypes import bfloat16 as BFLOAT16
except ImportError:  # ml_dtypes comes with the [gpu] extra
    BFLOAT16 = None

EPS = 1e-5

# --------------------------------------------------------------------------------------------------
# helpers: random steps, and comparing every gradient a step returns


def _norm(rng, K, on, groups=1, gain=True, bias=True):
    """A layer Norm over K units with a gain and a bias away from 1 and 0 (or ``None`` when not ``on``)."""
    if not on:
        return None
    g = rng.normal(1.0, 0.3, K) if gain else None
    b = rng.normal(0.0, 0.5, K) if bias else None
    return Norm.layer(g, b, EPS, groups)


def _lstm_case(rng, B, H, groups_h, ln_c, gain=True, bias=True):
    args = (rng.normal(0.2, 1.0, (B, 4 * H)), rng.normal(0, 0.8, (B, H)), rng.normal(0, 1.5, (B, H)),
            rng.normal(0, 1.0 / np.sqrt(H), (H, 4 * H)))
    norms = dict(norm_h=_norm(rng, 4 * H, groups_h, groups_h or 1, gain, bias),
                 norm_c=_norm(rng, H, ln_c, 1, gain, bias))
    return args, norms


def _gru_case(rng, B, H, groups_h, ln_hc, gain=True, bias=True):
    args = (rng.normal(0.2, 1.0, (B, 3 * H)), rng.normal(0, 0.8, (B, H)), rng.normal(0, 1.0 / np.sqrt(H), (H, 3 * H)))
    norms = dict(norm_h=_norm(rng, 2 * H, groups_h, groups_h or 1, gain, bias),
                 norm_hc=_norm(rng, H, ln_hc, 1, gain, bias))
    return args, norms


def _cast(dtype, arrays):
    return tuple(None if a is None else np.asarray(a, dtype=dtype) for a in arrays)


def _cast_norms(dtype, norms):
    return {k: None if n is None else n._replace(gain=_cast(dtype, [n.gain])[0], bias=_cast(dtype, [n.bias])[0])
            for k, n in norms.items()}


def _flat(grads):
    """The arrays of a step's grads namedtuple, in order, with the norms' (dgain, dbias) pairs spread out;
    ``None`` stays ``None`` (so that a missing gradient on one side shows)."""
    out = []
    for name, g in zip(type(grads)._fields, grads):
        if isinstance(g, tuple):
            out += [(f"{name}.{part}", a) for part, a in zip(("gain", "bias"), g)]
        else:
            out.append((name, g))
    return out


def _assert_close(got, want, tol, what=""):
    """``|got - want| <= tol * (max|want| + 1)`` elementwise-max: relative for large results, absolute for
    ones near 0 (a layer norm over 2 values has a gradient that is rounding noise, say)."""
    got64 = np.asarray(got, dtype=np.float64)
    err = float(np.max(np.abs(got64 - want), initial=0.0))
    scale = float(np.max(np.abs(want), initial=0.0)) + 1.0
    assert err <= tol * scale, f"{what}: error {err:.3g} > {tol:g} * {scale:.3g}"


def _compare_grads(got, want, tol):
    assert type(got) is type(want)
    for (name, a), (_, w) in zip(_flat(got), _flat(want)):
        assert (a is None) == (w is None), f"{name}: {'None' if a is None else 'an array'} vs the reference"
        if w is not None:
            assert a.shape == w.shape, name
            _assert_close(a, w, tol, name)


# --------------------------------------------------------------------------------------------------
# which cases the kernels take (no compiler, no GPU)


@pytest.mark.parametrize("H, want", [(1, (1, 32)), (3, (1, 32)), (37, (1, 64)), (256, (1, 256)), (257, (2, 160)),
                                     (300, (2, 160)), (1000, (4, 256)), (2048, (8, 256))])
def test_unit_config_picks_the_fewest_units_per_thread_within_256_threads(H, want):
    assert CR.unit_config(H) == want


@pytest.mark.parametrize("H", [0, CR.MAX_UNITS + 1])
def test_hidden_sizes_outside_the_fused_range_have_no_config(H):
    assert CR.unit_config(H) is None
    assert CR.lstm_config(H) is None and CR.gru_config(H) is None


def test_the_ln_papers_cells_and_the_baselines_are_supported():
    ln = Norm.layer(None, None, EPS)
    assert CR.lstm_config(37) == (1, 64, 0, 0)
    assert CR.lstm_config(37, norm_h=ln, norm_c=ln) == (1, 64, 1, 1)
    assert CR.lstm_config(37, norm_h=Norm.layer(groups=4), norm_c=ln).groups_h == 4
    assert CR.lstm_config(37, norm_c=ln) == (1, 64, 0, 1)  # DRAW's cell
    assert CR.gru_config(37, norm_h=ln, norm_hc=ln) == (1, 64, 1, 1)
    assert CR.gru_config(37, norm_h=Norm.layer(groups=2)).groups_h == 2
    assert CR.gru_config(37) == (1, 64, 0, 0)


@pytest.mark.parametrize("kwargs", [
    dict(norm_a=Norm.layer()),  # Eq. 4's LN of the sum
    dict(norm_h=Norm.batch()),  # BN-LSTM
    dict(norm_c=Norm.fixed(var=0.5)),  # NormProp
    dict(out_scale=0.5),
    dict(norm_h=Norm.layer(groups=2)),  # a grouping other than all gates or each gate
    dict(norm_c=Norm.layer(groups=1, eps=0.0)),
])
def test_other_lstm_configurations_are_not_supported(kwargs):
    assert CR.lstm_config(8, **kwargs) is None


@pytest.mark.parametrize("kwargs", [
    dict(reset="before"),
    dict(norm_a=Norm.layer()),
    dict(norm_ac=Norm.layer()),
    dict(norm_h=Norm.layer(groups=4)),
    dict(norm_hc=Norm.batch()),
])
def test_other_gru_configurations_are_not_supported(kwargs):
    assert CR.gru_config(8, **kwargs) is None


def test_numpy_arrays_are_never_supported_and_never_reach_the_fused_code(monkeypatch):
    rng = np.random.default_rng(0)
    (a_x, h, c, W), norms = _lstm_case(rng, 3, 5, 1, 1)
    assert not CR.lstm_supported(a_x, h, c, W, **norms)
    (g_x, gh, gW), gnorms = _gru_case(rng, 3, 5, 1, 1)
    assert not CR.gru_supported(g_x, gh, gW, **gnorms)
    want_h, want_c, cache = F.lstm_step(a_x, h, c, W, **norms)
    want_g = F.lstm_step_backward(h, c, cache)
    want_gh, gcache = F.gru_step(g_x, gh, gW, **gnorms)

    def boom(*args, **kwargs):
        raise AssertionError("the fused path ran for NumPy arrays")

    for name in ("lstm_supported", "lstm_step", "lstm_step_backward", "gru_supported", "gru_step", "gru_step_backward"):
        monkeypatch.setattr(CR, name, boom)
    h2, c2, cache2 = F.lstm_step(a_x, h, c, W, **norms)
    assert isinstance(cache2, F.LSTMStepCache)
    np.testing.assert_array_equal(h2, want_h)
    np.testing.assert_array_equal(c2, want_c)
    for (_, a), (_, w) in zip(_flat(F.lstm_step_backward(h, c, cache2)), _flat(want_g)):
        np.testing.assert_array_equal(a, w)
    gh2, gcache2 = F.gru_step(g_x, gh, gW, **gnorms)
    np.testing.assert_array_equal(gh2, want_gh)
    F.gru_step_backward(gh, gcache2)


def test_supported_checks_the_arrays_and_the_switch(monkeypatch):
    """With NumPy arrays passing for device arrays: dtypes, shapes, the norms' parameters, the switch."""
    import types

    device = types.ModuleType("device")
    monkeypatch.setattr(CR, "get_array_module", lambda a: device)
    rng = np.random.default_rng(1)
    (a_x, h, c, W), norms = _lstm_case(rng, 3, 5, 1, 1)
    assert CR.lstm_supported(a_x, h, c, W, **norms)
    assert not CR.lstm_supported(a_x, h, c.astype(np.float32), W, **norms)  # mixed dtypes
    assert not CR.lstm_supported(a_x.astype(np.int64), h, c, W, **norms)  # not a float the kernels take
    assert not CR.lstm_supported(a_x[:, :-1], h, c, W, **norms)  # (B, 4H) expected
    assert not CR.lstm_supported(a_x, h, c, W[:, :-4], **norms)
    bad_gain = norms["norm_h"]._replace(gain=np.ones(5))
    assert not CR.lstm_supported(a_x, h, c, W, norm_h=bad_gain, norm_c=norms["norm_c"])  # (4H,) expected
    assert not CR.lstm_supported(a_x, h, c, W, **norms, out_scale=2.0)
    with C.use_fused(False):
        assert not CR.lstm_supported(a_x, h, c, W, **norms)
    (g_x, gh, gW), gnorms = _gru_case(rng, 3, 5, 2, 1)
    assert CR.gru_supported(g_x, gh, gW, **gnorms)
    assert not CR.gru_supported(g_x, gh, gW, reset="before", **gnorms)
    assert not CR.gru_supported(g_x, gh, gW.astype(np.float32), **gnorms)
    assert not CR.gru_supported(g_x, gh[:, :4], gW, **gnorms)


def test_every_recurrent_name_expression_is_listed_once_and_names_a_kernel_file():
    exprs = C.name_expressions()
    assert len(exprs) == len(set(exprs))
    for expr in CR.name_expressions():
        assert expr in exprs
        assert C._kernels._source_of(expr) == ("layer_norm.cuh" if expr.startswith("sum_columns") else "recurrent.cuh")


# (every instantiation, these included, compiles with NVRTC and keeps within its registers on sm_90:
# tests/test_cuda_norms.py checks all of lnedu.cuda.name_expressions())


# --------------------------------------------------------------------------------------------------
# the kernels on the CPU emulator, against the portable steps


# (B, H, groups_h, LN of c / of U h, gain and bias, dc given): every placement, odd sizes, 2 units a thread
LSTM_CASES = [
    (5, 37, 1, 1, True, True),  # the LN paper's LN-LSTM
    (5, 37, 4, 1, True, False),  # per-gate statistics
    (5, 37, 0, 0, True, True),  # the baseline
    (1, 3, 0, 1, True, False),  # DRAW's cell: LN of c only
    (5, 3, 1, 0, True, True),  # LN of the recurrent term only
    (5, 1, 1, 1, True, True),
    (1, 1, 4, 1, True, False),  # per-gate over one unit: xhat = 0
    (3, 37, 1, 1, False, True),  # no gains or biases: 1 and 0
    (2, 300, 1, 1, True, True),  # 2 units per thread
]
GRU_CASES = [
    (5, 37, 1, 1, True),  # the LN paper's LN-GRU
    (5, 37, 2, 1, True),
    (5, 37, 0, 0, True),  # the baseline
    (1, 3, 0, 1, True),
    (5, 3, 1, 0, True),
    (5, 1, 1, 1, True),
    (1, 1, 2, 1, True),
    (3, 37, 1, 1, False),
    (2, 300, 1, 1, True),
]


def _lstm_both(rng, dtype, B, H, gh, lnc, params, with_dc, weight_grad=True):
    """The fused step and backward in ``dtype``, and the portable ones on the same values in float64."""
    args, norms = _lstm_case(rng, B, H, gh, lnc, params, params)
    dh, dc = rng.standard_normal((B, H)), (rng.standard_normal((B, H)) if with_dc else None)
    h, c, cache = CR.lstm_step(*_cast(dtype, args), **_cast_norms(dtype, norms))
    g = F.lstm_step_backward(*_cast(dtype, (dh, dc)), cache, weight_grad=weight_grad)  # dispatches on the cache
    h64, c64, cache64 = F.lstm_step(*args, **norms)
    g64 = F.lstm_step_backward(dh, dc, cache64, weight_grad=weight_grad)
    return (h, c, g), (h64, c64, g64)


def _gru_both(rng, dtype, B, H, gh, lnc, params, weight_grad=True):
    args, norms = _gru_case(rng, B, H, gh, lnc, params, params)
    dh = rng.standard_normal((B, H))
    h, cache = CR.gru_step(*_cast(dtype, args), **_cast_norms(dtype, norms))
    g = F.gru_step_backward(np.asarray(dh, dtype=dtype), cache, weight_grad=weight_grad)
    h64, cache64 = F.gru_step(*args, **norms)
    return (h, g), (h64, F.gru_step_backward(dh, cache64, weight_grad=weight_grad))


@pytest.mark.parametrize("case", LSTM_CASES, ids=lambda c: "B{}-H{}-gh{}-lnc{}-p{:d}-dc{:d}".format(*c))
def test_fused_lstm_matches_the_portable_step_in_float64(emulator, case):
    B, H, gh, lnc, params, with_dc = case
    (h, c, g), (h64, c64, g64) = _lstm_both(np.random.default_rng(H + 10 * gh + B), np.float64, *case)
    assert isinstance(g, LSTMStepGrads) and h.dtype == c.dtype == g.a_x.dtype == np.float64
    _assert_close(h, h64, 1e-13, "h")
    _assert_close(c, c64, 1e-13, "c")
    _compare_grads(g, g64, 1e-12)


@pytest.mark.parametrize("case", GRU_CASES, ids=lambda c: "B{}-H{}-gh{}-lnhc{}-p{:d}".format(*c))
def test_fused_gru_matches_the_portable_step_in_float64(emulator, case):
    B, H, gh, lnc, params = case
    (h, g), (h64, g64) = _gru_both(np.random.default_rng(H + 10 * gh + B), np.float64, *case)
    assert isinstance(g, GRUStepGrads) and h.dtype == g.a_x.dtype == np.float64
    _assert_close(h, h64, 1e-13, "h")
    _compare_grads(g, g64, 1e-12)


# float32, float16 and bfloat16 (where ml_dtypes provides it) against the float64 reference: storage
# rounding, float accumulation
LOW_TOL = {np.float32: 1e-5, np.float16: 5e-3}
if BFLOAT16 is not None:
    LOW_TOL[BFLOAT16] = 4e-2  # 8 significant bits: a unit in the last place is 2^-8 = 3.9e-3


@pytest.mark.parametrize("dtype", list(LOW_TOL))
@pytest.mark.parametrize("B, H, gh", [(5, 37, 1), (1, 300, 4)])
def test_fused_lstm_in_low_precision_matches_the_float64_reference(emulator, dtype, B, H, gh):
    (h, c, g), (h64, c64, g64) = _lstm_both(np.random.default_rng(H), dtype, B, H, gh, 1, True, True)
    assert h.dtype == c.dtype == g.a_x.dtype == g.h_prev.dtype == g.norm_h[0].dtype == dtype
    _assert_close(h, h64, LOW_TOL[dtype], "h")
    _assert_close(c, c64, LOW_TOL[dtype], "c")
    _compare_grads(g, g64, 2 * LOW_TOL[dtype])


@pytest.mark.parametrize("dtype", list(LOW_TOL))
@pytest.mark.parametrize("B, H, gh", [(5, 37, 1), (1, 300, 2)])
def test_fused_gru_in_low_precision_matches_the_float64_reference(emulator, dtype, B, H, gh):
    (h, g), (h64, g64) = _gru_both(np.random.default_rng(H), dtype, B, H, gh, 1, True)
    assert h.dtype == g.a_x.dtype == g.norm_hc[1].dtype == dtype
    _assert_close(h, h64, LOW_TOL[dtype], "h")
    _compare_grads(g, g64, 2 * LOW_TOL[dtype])


def test_many_rows_per_block(emulator, monkeypatch):
    """More rows than blocks (7 rows on grids of 3 blocks, forward and backward): the grid-stride loops, and
    a block's partial gain sums added over its rows."""
    monkeypatch.setattr(_kernels, "forward_grid", lambda rows: min(rows, 3))
    monkeypatch.setattr(_kernels, "backward_grid", lambda rows, threads: min(rows, 3))
    rng = np.random.default_rng(4)
    emulator.launches.clear()
    (h, c, g), (h64, c64, g64) = _lstm_both(rng, np.float64, 7, 3, 1, 1, True, True)
    (gh, gg), (gh64, gg64) = _gru_both(rng, np.float64, 7, 3, 1, 1, True)
    grids = {expr.split("<")[0]: grid for expr, grid, _ in emulator.launches}
    assert grids["lstm_forward"] == grids["lstm_backward"] == grids["gru_forward"] == grids["gru_backward"] == 3
    _assert_close(h, h64, 1e-13, "h")
    _compare_grads(g, g64, 1e-12)
    _assert_close(gh, gh64, 1e-13, "GRU h")
    _compare_grads(gg, gg64, 1e-12)


def test_out_and_weight_grad_as_the_layers_use_them(emulator):
    """``out=`` receives da_x (and is what comes back), ``weight_grad=False`` skips dW, as in lnedu.nn."""
    rng = np.random.default_rng(8)
    (a_x, h0, c0, W), norms = _lstm_case(rng, 4, 37, 1, 1)
    dh, dc = rng.standard_normal((2, 4, 37))
    buf = np.full((3, 4, 4 * 37), np.nan)
    _, _, cache = CR.lstm_step(a_x, h0, c0, W, **norms)
    out = buf[1]
    g = F.lstm_step_backward(dh, dc, cache, weight_grad=False, out=out)
    assert g.a_x is out and g.W_h is None and not np.isnan(buf[1]).any() and np.isnan(buf[[0, 2]]).all()
    want = F.lstm_step_backward(dh, dc, F.lstm_step(a_x, h0, c0, W, **norms)[2])
    np.testing.assert_allclose(buf[1], want.a_x, rtol=0, atol=1e-12)
    np.testing.assert_allclose(g.a_h, want.a_h, rtol=0, atol=1e-12)

    (g_x, gh0, gW), gnorms = _gru_case(rng, 4, 37, 1, 1)
    gbuf = np.full((2, 4, 3 * 37), np.nan)
    _, gcache = CR.gru_step(g_x, gh0, gW, **gnorms)
    gout = gbuf[0]
    gg = F.gru_step_backward(dh, gcache, weight_grad=False, out=gout)
    assert gg.a_x is gout and gg.W_hh is None and not np.isnan(gbuf[0]).any()
    np.testing.assert_allclose(gbuf[0], F.gru_step_backward(dh, F.gru_step(g_x, gh0, gW, **gnorms)[1]).a_x,
                               rtol=0, atol=1e-12)


def test_baseline_lstm_returns_da_x_as_the_products_gradient(emulator):
    """Without LN_h the gradient of h_prev @ W_h is da_x itself, as in the portable code (nn then needs no buffer)."""
    rng = np.random.default_rng(9)
    (a_x, h0, c0, W), norms = _lstm_case(rng, 2, 3, 0, 1)
    g = F.lstm_step_backward(h0, None, CR.lstm_step(a_x, h0, c0, W, **norms)[2])
    assert g.a_h is g.a_x and g.norm_h is None


def test_the_backward_does_not_read_arrays_the_caller_may_overwrite(emulator):
    """The input term and the returned h and c can be overwritten (nn writes h into its buffer, say)."""
    rng = np.random.default_rng(10)
    (a_x, h0, c0, W), norms = _lstm_case(rng, 3, 37, 1, 1)
    dh, dc = rng.standard_normal((2, 3, 37))
    want = F.lstm_step_backward(dh, dc, CR.lstm_step(a_x, h0, c0, W, **norms)[2])
    a_x2 = a_x.copy()
    h, c, cache = CR.lstm_step(a_x2, h0, c0, W, **norms)
    for a in (a_x2, h, c):
        a[...] = np.nan
    _compare_grads(F.lstm_step_backward(dh, dc, cache), want, 0.0)


def test_results_are_the_same_on_every_run(emulator):
    rng = np.random.default_rng(3)
    (a_x, h0, c0, W), norms = _lstm_case(rng, 4, 37, 1, 1)
    dh = rng.standard_normal((4, 37)).astype(np.float32)
    args, norms32 = _cast(np.float32, (a_x, h0, c0, W)), _cast_norms(np.float32, norms)
    first = CR.lstm_step_backward(dh, None, CR.lstm_step(*args, **norms32)[2])
    again = CR.lstm_step_backward(dh, None, CR.lstm_step(*args, **norms32)[2])
    for (_, a), (_, w) in zip(_flat(first), _flat(again)):
        assert (a is None and w is None) or np.array_equal(a, w)  # no atomics: a fixed order of additions


def test_an_empty_batch(emulator):
    rng = np.random.default_rng(1)
    (a_x, h0, c0, W), norms = _lstm_case(rng, 0, 5, 1, 1)
    h, c, cache = CR.lstm_step(a_x, h0, c0, W, **norms)
    g = CR.lstm_step_backward(h, c, cache)
    assert h.shape == (0, 5) and g.a_x.shape == (0, 20)
    assert np.array_equal(g.norm_h[0], np.zeros(20)) and np.array_equal(g.norm_c[1], np.zeros(5))


def test_a_portable_cache_is_refused_by_the_fused_backward():
    rng = np.random.default_rng(2)
    (a_x, h0, c0, W), norms = _lstm_case(rng, 2, 3, 1, 1)
    with pytest.raises(TypeError, match="expected a FusedLSTMCache"):
        CR.lstm_step_backward(h0, c0, F.lstm_step(a_x, h0, c0, W, **norms)[2])


@pytest.fixture
def fused_numpy_steps(emulator, monkeypatch):
    """Route lnedu.functional's LSTM and GRU steps to the fused code for NumPy arrays too (through the
    emulator), as the dispatch does for CuPy ones; counts the fused forward steps."""
    counts = {"lstm": 0, "gru": 0}
    real_lstm, real_gru = F.lstm_step, F.gru_step

    def lstm_step(a_x, h_prev, c_prev, W_h, **kw):
        if CR.lstm_config(h_prev.shape[1], **kw) is None:
            return real_lstm(a_x, h_prev, c_prev, W_h, **kw)
        counts["lstm"] += 1
        return CR.lstm_step(a_x, h_prev, c_prev, W_h, norm_h=kw.get("norm_h"), norm_c=kw.get("norm_c"))

    def gru_step(a_x, h_prev, W_hh, **kw):
        if CR.gru_config(h_prev.shape[1], **kw) is None:
            return real_gru(a_x, h_prev, W_hh, **kw)
        counts["gru"] += 1
        return CR.gru_step(a_x, h_prev, W_hh, norm_h=kw.get("norm_h"), norm_hc=kw.get("norm_hc"))

    monkeypatch.setattr(F, "lstm_step", lstm_step)
    monkeypatch.setattr(F, "gru_step", gru_step)
    return counts


def _layer_run(layer, x, mask):
    out, state = layer.forward(x, mask=mask)
    R = np.random.default_rng(5).standard_normal(out.shape)
    dx, ds0 = layer.backward(R, tuple(0.5 * s for s in state))
    return {"out": out, "dx": dx, **{f"d{n}0": d for n, d in enumerate(ds0)}, **layer.grads}


@pytest.mark.parametrize("cell, ln", [("LSTM", "appendix"), ("LSTM", "per_gate"), ("LSTM", None), ("LSTM", "cell"),
                                      ("GRU", "appendix"), ("GRU", "per_gate"), ("GRU", None)])
def test_the_nn_layers_run_unchanged_on_the_fused_steps(fused_numpy_steps, cell, ln):
    """lnedu.nn's LSTM and GRU (forward, BPTT with out=, the (T, B, kH) buffers, the gains' gradients, a
    mask) give the same results on the fused steps as on the portable ones."""
    from lnedu import nn

    cfg = nn.LNConfig(per_gate=True) if ln == "per_gate" else ln
    make = lambda: getattr(nn, cell)(3, 5, ln=cfg, rng=0, dtype=np.float64)  # noqa: E731
    rng = np.random.default_rng(6)
    x = rng.standard_normal((4, 3, 3))
    mask = np.ones((4, 3), bool)
    mask[2:, 1] = False
    got = _layer_run(make(), x, mask)
    assert fused_numpy_steps[cell.lower()] == 4
    with pytest.MonkeyPatch.context() as mp:  # the portable steps, for the reference
        mp.setattr(F, "lstm_step", _portable("lstm_step"))
        mp.setattr(F, "gru_step", _portable("gru_step"))
        want = _layer_run(make(), x, mask)
    assert got.keys() == want.keys()
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-11, atol=1e-12, err_msg=k)


def _portable(name):
    from lnedu.functional import recurrent

    return getattr(recurrent, name)


# --------------------------------------------------------------------------------------------------
# on a real GPU (skipped elsewhere): the nn layers, fused on and off, against NumPy in float64


@pytest.mark.gpu
class TestOnTheGPU:
    @pytest.fixture(autouse=True)
    def _cupy(self, gpu_spy):
        self.cp, self.calls = gpu_spy(CR, ("lstm_step", "lstm_step_backward", "gru_step", "gru_step_backward"))

    def _run(self, layer, x, xp):
        """forward + backward of a loss sum(out * R); returns out, dx, dstate0 and every parameter gradient."""
        from lnedu import backend

        try:
            if xp is not np:
                layer.to_backend("cupy")
            out, state = layer.forward(xp.asarray(x))
            R = np.random.default_rng(5).standard_normal(out.shape)
            dx, ds0 = layer.backward(xp.asarray(R, dtype=out.dtype), None)
            got = [out, dx, *ds0, *(layer.grads[k] for k in sorted(layer.grads))]
        finally:
            backend.use("numpy")
        return [np.asarray(a.get() if hasattr(a, "get") else a, dtype=np.float64) for a in got]

    @pytest.mark.parametrize("dtype", [np.float64, np.float32])
    @pytest.mark.parametrize("cell, H", [("LSTM", 37), ("LSTM", 300), ("GRU", 37), ("GRU", 300)])
    @pytest.mark.parametrize("ln", ["appendix", None])
    def test_layers_fused_vs_portable_vs_float64(self, cell, H, ln, dtype):
        from lnedu import nn

        make = lambda d: getattr(nn, cell)(7, H, ln=ln, rng=0, dtype=d)  # noqa: E731
        x = np.random.default_rng(H).standard_normal((6, 5, 7))
        ref = self._run(make(np.float64), x, np)
        fused = self._run(make(dtype), x.astype(dtype), self.cp)
        step = "lstm_step" if cell == "LSTM" else "gru_step"
        assert self.calls.count(step) == 6 and self.calls.count(step + "_backward") == 6  # the fused path ran
        with C.use_fused(False):
            portable = self._run(make(dtype), x.astype(dtype), self.cp)
        assert self.calls.count(step) == 6  # and the portable run did not come here
        tol = 1e-10 if dtype == np.float64 else 5e-4
        for f, p, r in zip(fused, portable, ref):
            scale = np.abs(r).max() + 1.0
            assert np.abs(f - r).max() <= tol * scale
            assert np.abs(p - r).max() <= tol * scale

    def test_per_gate_statistics_and_a_mask(self):
        from lnedu import nn

        cfg = nn.LNConfig(per_gate=True)
        x = np.random.default_rng(1).standard_normal((5, 4, 3))
        mask = np.ones((5, 4), bool)
        mask[3:, 2] = False
        for make in (lambda: nn.LSTM(3, 37, ln=cfg, rng=0, dtype=np.float64),
                     lambda: nn.GRU(3, 37, ln=cfg, rng=0, dtype=np.float64)):
            ref_layer, layer = make(), make().to_backend("cupy")
            try:
                out, state = layer.forward(self.cp.asarray(x), mask=self.cp.asarray(mask))
                dx, _ = layer.backward(out, state)
            finally:
                from lnedu import backend

                backend.use("numpy")
            rout, rstate = ref_layer.forward(x, mask=mask)
            rdx, _ = ref_layer.backward(rout, rstate)
            np.testing.assert_allclose(self.cp.asnumpy(out), rout, rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(self.cp.asnumpy(dx), rdx, rtol=1e-10, atol=1e-12)
            for k in ref_layer.grads:
                np.testing.assert_allclose(self.cp.asnumpy(layer.grads[k]), ref_layer.grads[k], rtol=1e-9, atol=1e-11)
        assert "lstm_step" in self.calls and "gru_step_backward" in self.calls

    def test_unsupported_configurations_take_the_portable_path(self):
        from lnedu import nn

        for layer in (nn.LSTM(3, 8, ln="eq4", rng=0), nn.GRU(3, 8, ln="appendix", reset="before", rng=0)):
            layer.to_backend("cupy")
            try:
                x = np.random.default_rng(2).standard_normal((3, 2, 3)).astype(np.float32)
                out, state = layer.forward(self.cp.asarray(x))
                layer.backward(out, state)
            finally:
                from lnedu import backend

                backend.use("numpy")
        assert self.calls == []
