"""The Numba LSTM step (lnedu.functional._numba_lstm, the ``[fast]`` extra) against the reference step.

* it registers with the dispatch exactly when Numba is installed, for the steps it takes (no norm, whole-row layer
  norms of ``W_h h`` and ``c``, NormProp's output scale) and no others (batch norm, per-gate layer norm, a norm of
  the sum, a fixed norm), and not below ``_numba.MIN_SIZE`` (a hand-sized step runs the reference);
* forward and backward equal the reference in float64 (to rounding) and float32, with and without gains, biases,
  ``dc`` and ``out``, and pass a float64 finite-difference check;
* caches are the reference's types: a forward on one path and a backward on the other agree;
* a row whose statistics overflow goes to the reference; a gain of the wrong shape is refused by the reference,
  naming it (the kernels never read past an array);
* a whole LN-LSTM layer trained on the fast path gives the reference's loss to rounding.

Where Numba is not installed the tests are skipped with the reason (CI installs it).
"""

from __future__ import annotations

import numpy as np
import pytest

import lnedu.functional as F
from lnedu.functional import _numba, _numba_lstm, dispatch
from lnedu.functional.recurrent import LSTMStepCache, Norm
from lnedu.gradcheck import check_function

pytestmark = pytest.mark.skipif(not _numba.available(), reason="Numba (the [fast] extra) is not installed: "
                                "pip install -e '.[fast]'")

PLACEMENTS = {  # (norm_h, norm_c, out_scale): the steps the kernels take
    "baseline": (False, False, None),
    "ln-lstm": (True, True, None),
    "ln-recurrent-only": (True, False, None),
    "ln-cell-only (DRAW)": (False, True, None),
    "scaled output": (False, True, 0.7),
}


def _step(rng, B, H, dtype, placement, gains=True):
    on_h, on_c, scale = PLACEMENTS[placement]

    def norm(n):
        g = rng.normal(1, 0.3, n).astype(dtype) if gains else None
        return Norm.layer(g, rng.normal(0, 0.5, n).astype(dtype) if gains else None)

    args = (rng.normal(0, 1, (B, 4 * H)).astype(dtype), rng.normal(0, 1, (B, H)).astype(dtype),
            rng.normal(0, 1, (B, H)).astype(dtype), (rng.normal(0, 1, (H, 4 * H)) / np.sqrt(H)).astype(dtype))
    return args, dict(norm_h=norm(4 * H) if on_h else None, norm_c=norm(H) if on_c else None, out_scale=scale)


def _flat(grads):
    out = []
    for g in grads:
        out += list(g) if isinstance(g, tuple) else [g]
    return out


def _assert_close(got, want, tol):
    assert len(got) == len(want)
    for k, (a, b) in enumerate(zip(got, want)):
        assert (a is None) == (b is None), k
        if a is not None:
            scale = max(1.0, float(np.abs(b).max()))
            assert np.abs(np.asarray(a, np.float64) - b).max() <= tol * scale, (k, np.abs(a - b).max())


@pytest.mark.parametrize("placement", PLACEMENTS)
@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-13), (np.float32, 2e-6)])
def test_the_fast_step_equals_the_reference(rng, placement, dtype, tol):
    B, H = int(rng.integers(16, 40)), int(rng.integers(8, 40))
    args, kw = _step(rng, B, H, dtype, placement, gains=bool(rng.integers(2)))
    assert dispatch.lookup(F.lstm_step, *args, **kw) is _numba_lstm.lstm_step
    h, c, cache = F.lstm_step(*args, **kw)
    with dispatch.use_reference():
        h0, c0, cache0 = F.lstm_step(*args, **kw)
    _assert_close([h, c, cache.gates, cache.tanh_c], [h0, c0, cache0.gates, cache0.tanh_c], tol)
    dh, dc = rng.normal(0, 1, (B, H)).astype(dtype), rng.normal(0, 1, (B, H)).astype(dtype)
    out = np.empty((B, 4 * H), dtype)
    assert dispatch.lookup(F.lstm_step_backward, dh, dc, cache) is _numba_lstm.lstm_step_backward
    for d_c in (dc, None):
        grads = F.lstm_step_backward(dh, d_c, cache, out=out)
        with dispatch.use_reference():
            want = F.lstm_step_backward(dh, d_c, cache0)
        assert grads.a_x is out
        _assert_close(_flat(grads), _flat(want), tol)
        assert all(g is None or g.dtype == dtype for g in _flat(grads))


@pytest.mark.parametrize("placement", ["ln-lstm", "scaled output", "baseline"])
def test_the_fast_step_passes_a_float64_finite_difference_check(rng, monkeypatch, placement):
    monkeypatch.setattr(_numba, "MIN_SIZE", 0)  # small enough for finite differences, on the kernels
    (a_x, h, c, W), kw = _step(rng, 3, 5, np.float64, placement)
    norms = {k: v for k, v in kw.items() if isinstance(v, Norm)}
    params = dict(a_x=a_x, h_prev=h, c_prev=c, W_h=W)
    for name, n in norms.items():
        params[f"{name}_gain"], params[f"{name}_bias"] = n.gain, n.bias
    H = h.shape[1]

    def forward(a_x, h_prev, c_prev, W_h, **p):
        nk = {k: Norm.layer(p[f"{k}_gain"], p[f"{k}_bias"]) for k in norms}
        assert dispatch.lookup(F.lstm_step, a_x, h_prev, c_prev, W_h, **nk) is _numba_lstm.lstm_step
        h_t, c_t, cache = F.lstm_step(a_x, h_prev, c_prev, W_h, out_scale=kw["out_scale"], **nk)
        return np.concatenate([h_t, c_t], axis=1), cache  # both outputs, so that dc is checked too

    def backward(dout, cache):
        g = F.lstm_step_backward(np.ascontiguousarray(dout[:, :H]), np.ascontiguousarray(dout[:, H:]), cache)
        return (g.a_x, g.h_prev, g.c_prev, g.W_h) + tuple(x for name in norms for x in getattr(g, name))

    report = check_function(forward, backward, params, seed=1)
    assert report.max_rel_error < 1e-7, report


def test_caches_cross_paths(rng):
    args, kw = _step(rng, 24, 16, np.float64, "ln-lstm")
    dh = rng.normal(size=(24, 16))
    _, _, fast_cache = F.lstm_step(*args, **kw)
    with dispatch.use_reference():
        _, _, ref_cache = F.lstm_step(*args, **kw)
        on_ref = _flat(F.lstm_step_backward(dh, None, fast_cache))  # the reference backward, the kernels' cache
    assert type(fast_cache) is type(ref_cache) is LSTMStepCache
    _assert_close(_flat(F.lstm_step_backward(dh, None, ref_cache)), on_ref, 1e-13)


def test_other_normalizations_and_hand_sized_steps_take_the_reference(rng):
    args, kw = _step(rng, 32, 16, np.float32, "ln-lstm")
    g = np.ones(64, np.float32)
    for other in (dict(norm_h=Norm.batch(g, None)), dict(norm_a=Norm.layer(g, None)),
                  dict(norm_h=Norm.layer(g, None, groups=4)), dict(norm_c=Norm.fixed(None, None, var=2.0))):
        assert dispatch.lookup(F.lstm_step, *args, **{**kw, **other}) is None, other
    hand_sized, _ = _step(rng, 2, 3, np.float32, "baseline")
    assert hand_sized[0].size < _numba.MIN_SIZE
    assert dispatch.lookup(F.lstm_step, *hand_sized) is None
    with dispatch.use_reference():
        assert dispatch.lookup(F.lstm_step, *args, **kw) is None


def test_a_gain_of_the_wrong_shape_is_refused_naming_it(rng):
    args, kw = _step(rng, 32, 16, np.float32, "ln-lstm")
    bad = Norm.layer(np.ones(63, np.float32), None)  # 4H is 64
    assert not _numba_lstm.step_supported(*args, norm_h=bad)
    with pytest.raises(ValueError, match=r"gain: expected shape \(64,\)"):
        F.lstm_step(*args, norm_h=bad)


def test_a_row_whose_statistics_overflow_goes_to_the_reference(rng):
    args, kw = _step(rng, 32, 16, np.float64, "ln-lstm")
    a_x, h, c, W = args
    h = h.copy()
    h[5] *= 1e300  # W_h h overflows in this row's squares: the reference rescales it
    got = F.lstm_step(a_x, h, c, W, **kw)
    with dispatch.use_reference():
        want = F.lstm_step(a_x, h, c, W, **kw)
    assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])


def assert_registered_exactly_when_numba_is_there(monkeypatch, module, names):
    """Each of ``names`` has ``module``'s implementation registered; without Numba, ``register()`` says False and
    registers none (the GRU/MGU tests ask the same of their module)."""
    for name in names:
        assert f"{module.__name__}.{name}" in dispatch.implementations(name)
    monkeypatch.setattr(_numba, "available", lambda: False)
    module.unregister()
    try:
        assert module.register() is False
        assert all(f"{module.__name__}.{name}" not in dispatch.implementations(name) for name in names)
    finally:
        monkeypatch.undo()
        module.register()


def test_registered_exactly_when_numba_is_there(monkeypatch):
    assert_registered_exactly_when_numba_is_there(monkeypatch, _numba_lstm, ("lstm_step", "lstm_step_backward"))


def test_a_layer_trains_the_same_on_either_path(rng):
    from lnedu.nn.recurrent import LSTM

    x = rng.normal(size=(12, 16, 10)).astype(np.float32)
    losses = {path: trained_loss(lambda: LSTM(10, 32, ln="appendix", rng=np.random.default_rng(3)), x, path)
              for path in ("fast", "reference")}
    assert losses["fast"] == pytest.approx(losses["reference"], rel=1e-5)


def trained_loss(make_layer, x, path: str) -> float:
    """``mean(h^2)`` of a new layer after three plain gradient steps on it, on the ``"fast"`` or ``"reference"``
    path."""
    layer = make_layer()
    with dispatch.use_reference(path == "reference"):
        for _ in range(3):
            h, _ = layer.forward(x)
            layer.zero_grad()
            layer.backward(2 * h / h.size)  # of mean(h^2)
            for _, p, g in layer.named_parameters():
                p -= 0.5 * g
        return float(np.mean(layer.forward(x)[0] ** 2))
