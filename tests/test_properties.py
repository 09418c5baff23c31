"""Property-based tests (Hypothesis) over the public functional API: never a silent wrong answer.

Every call below gets random shapes (0 and 1 included), dtypes (float16/32/64), scales from 1e-30 to 1e30
(as far as the dtype holds them) and offsets, and must end in one of two ways:

* a clear error: ``ValueError``/``TypeError`` whose message starts with the name of an argument
  (``"x: expected ..."``), or
* a finite result of the input's dtype and shape, within a stated tolerance of a float64 reference
  computed here from the same (exactly representable) input values.

The tolerances are rounding-error bounds, not fudge factors: with ``u`` the unit roundoff of the type the
computation runs in (float32 for float16, as the GPU kernels do), summing ``H`` numbers costs at most about
``H u`` of their magnitude; centering a row of offset ``|x|`` much larger than its spread ``sigma`` loses
``u |x| / sigma`` (the row's condition number ``kappa``); storing the result costs ``u_out`` of it. A silent
zero or NaN is off by order 1 and fails every bound.

Profiles: the default is derandomized (the same examples on every machine, as CI needs) and small enough for
the default run to stay well within a minute; ``HYPOTHESIS_PROFILE=explore`` searches 20x more random examples.
"""

from __future__ import annotations

import math
import os
import re

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import lnedu.functional as F  # noqa: E402
from lnedu.gradcheck import numerical_gradient  # noqa: E402

# examples per parametrized case (each test runs once per dtype and scale, so the edges are always visited)
settings.register_profile("default", max_examples=6, derandomize=True, database=None, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("explore", max_examples=150, database=None, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "default")

DTYPES = (np.float16, np.float32, np.float64)
# log10 of the inputs' scale: the edges where squares underflow (1e-20) or overflow (float32 past ~1e19), and
# the middle; float16 holds only up to ~6e4, so its scales stop there
SCALES = (-30, -20, -6, 0, 6, 19, 25, 30)
HALF_SCALES = (-30, -6, 0, 3)
FULL = [(d, s) for d in (np.float32, np.float64) for s in SCALES]
HALF_CASES = [(np.float16, s) for s in HALF_SCALES]
ALL = FULL + HALF_CASES

def _u(dtype) -> float:
    """Unit roundoff of ``dtype``."""
    return float(np.finfo(dtype).eps) / 2


def _u_compute(dtype) -> float:
    """Half precision is computed in float32 (issue 20 item 2); the others in their own type."""
    return _u(np.float32) if np.dtype(dtype).itemsize < 4 else _u(dtype)


def _profile(test):
    return settings(settings.get_profile(PROFILE))(test)


# --------------------------------------------------------------------------------------------------
# strategies


@st.composite
def arrays(draw, shape, dtype, log_scale, *, headroom=1.0, offset=True):
    """``10**s * (offset + z)`` with ``z`` standard normal (now and then a constant row), cast to ``dtype``;
    ``s`` within 1 of ``log_scale``, capped so that the values fit ``dtype`` ``headroom`` times over."""
    off = draw(st.sampled_from([0.0, 0.0, 1.0, -3.0, 100.0, 1e4])) if offset else 0.0
    cap = math.log10(float(np.finfo(dtype).max) / (abs(off) + 6.0) / headroom) - 0.5
    s = min(max(log_scale + draw(st.floats(-1.0, 1.0)), -30.0), cap)
    seed = draw(st.integers(0, 2**32 - 1))
    z = np.random.default_rng(seed).standard_normal(shape)
    if draw(st.integers(0, 9)) == 0 and z.size:  # a constant row: variance exactly 0
        z[...] = z.flat[0]
    return ((10.0 ** s) * (off + z)).astype(dtype)


@st.composite
def affine(draw, H, dtype):
    """A gain and a bias of shape (H,), or None: values of order 1, as a trained layer has."""
    if draw(st.booleans()):
        return None, None
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return rng.normal(1.0, 0.5, H).astype(dtype), rng.normal(0.0, 1.0, H).astype(dtype)


def _named_error(exc, names):
    """The error's message starts with one of the argument ``names`` followed by ':'."""
    msg = str(exc)
    assert isinstance(exc, (ValueError, TypeError)), f"{type(exc).__name__}: {msg}"
    assert re.match(rf"^({'|'.join(map(re.escape, names))})(\[[^]]*\])?: ", msg), f"no argument named: {msg!r}"


def _close(got, ref, bound, what):
    """``got`` finite and within ``bound`` (elementwise) of the float64 ``ref``."""
    got64 = np.asarray(got, dtype=np.float64)
    assert np.isfinite(got64).all(), f"{what}: {int((~np.isfinite(got64)).sum())} non-finite entries"
    err = np.abs(got64 - ref)
    bad = err > bound
    if bad.any():
        i = np.unravel_index(int(np.argmax(err - bound)), err.shape)
        raise AssertionError(f"{what}: off by {err[i]:.3g} > bound {np.broadcast_to(bound, err.shape)[i]:.3g} "
                             f"at {i} (got {got64[i]:.6g}, float64 reference {ref[i]:.6g})")


def _affine_bound(core_err, y_hat, g, b, dtype):
    """Error of ``y_hat * g + b`` given the error of ``y_hat``: scaled by |g|, plus storing in ``dtype``."""
    gg = 1.0 if g is None else np.abs(g.astype(np.float64))
    bb = 0.0 if b is None else np.abs(b.astype(np.float64))
    return core_err * gg + 2 * _u(dtype) * (np.abs(y_hat) * gg + bb) + 4 * _u_compute(dtype) * bb


def _apply_affine(y_hat, g, b):
    y = y_hat if g is None else y_hat * g.astype(np.float64)
    return y if b is None else y + b.astype(np.float64)


# --------------------------------------------------------------------------------------------------
# layer norm, RMS norm, batch norm


@st.composite
def norm_case(draw, dtype, log_scale, min_size=1):
    N, H = draw(st.integers(0, 4)), draw(st.integers(min_size, 48))
    x = draw(arrays((N, H), dtype, log_scale))
    g, b = draw(affine(H, dtype))
    eps = draw(st.sampled_from([1e-5, 1e-5, 1e-12, 0.1]))
    return x, g, b, eps


def _row_reference(x, eps, axis):
    """Centered and scaled rows (axis=-1) or columns (axis=0) in float64, and the bound's ingredients."""
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=axis, keepdims=True)
    d = x64 - mean
    sigma = np.sqrt((d * d).mean(axis=axis, keepdims=True) + eps)
    kappa = np.abs(x64).max(axis=axis, keepdims=True) / sigma  # condition number of the centering
    return d / sigma, kappa


def _check_layer_norm(x, g, b, eps):
    N, H = x.shape
    try:
        y, _ = F.layer_norm(x, g, b, eps)
    except (ValueError, TypeError) as exc:
        _named_error(exc, ["x", "gain", "bias", "eps"])
        return
    assert y.shape == x.shape and y.dtype == x.dtype
    y_hat, kappa = _row_reference(x, eps, -1)
    core = 4 * (H + 2) * _u_compute(x.dtype) * (np.abs(y_hat) + kappa + 1)
    _close(y, _apply_affine(y_hat, g, b), _affine_bound(core, y_hat, g, b, x.dtype), "layer_norm")


@pytest.mark.parametrize("dtype, log_scale", FULL)
@_profile
@given(data=st.data())
def test_layer_norm_is_right_or_refuses(dtype, log_scale, data):
    _check_layer_norm(*data.draw(norm_case(dtype, log_scale)))


@pytest.mark.parametrize("dtype, log_scale", HALF_CASES)
@_profile
@given(data=st.data())
def test_layer_norm_of_float16_is_computed_in_float32(dtype, log_scale, data):
    _check_layer_norm(*data.draw(norm_case(dtype, log_scale)))


def _check_rms_norm(x, g, eps):
    N, H = x.shape
    try:
        y, _ = F.rms_norm(x, g, eps)
    except (ValueError, TypeError) as exc:
        _named_error(exc, ["x", "gain", "eps"])
        return
    assert y.shape == x.shape and y.dtype == x.dtype
    x64 = x.astype(np.float64)
    y_hat = x64 / np.sqrt((x64 * x64).mean(axis=-1, keepdims=True) + eps)
    core = 4 * (H + 2) * _u_compute(x.dtype) * (np.abs(y_hat) + 1)
    _close(y, _apply_affine(y_hat, g, None), _affine_bound(core, y_hat, g, None, x.dtype), "rms_norm")


@pytest.mark.parametrize("dtype, log_scale", FULL)
@_profile
@given(data=st.data())
def test_rms_norm_is_right_or_refuses(dtype, log_scale, data):
    x, g, _, eps = data.draw(norm_case(dtype, log_scale))
    _check_rms_norm(x, g, eps)


@pytest.mark.parametrize("dtype, log_scale", HALF_CASES)
@_profile
@given(data=st.data())
def test_rms_norm_of_float16_is_computed_in_float32(dtype, log_scale, data):
    x, g, _, eps = data.draw(norm_case(dtype, log_scale))
    _check_rms_norm(x, g, eps)


def _check_batch_norm(x, g, b, eps, unbiased):
    N, H = x.shape
    try:
        y, _ = F.batch_norm(x, g, b, eps, unbiased=unbiased)
    except (ValueError, TypeError) as exc:
        _named_error(exc, ["x"])
        assert N < 2, f"refused a valid batch of {N}: {exc}"
        return
    assert N >= 2, "a batch of fewer than 2 has no variance to normalize by: it must be refused"
    assert y.shape == x.shape and y.dtype == x.dtype
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=0, keepdims=True)
    d = x64 - mean
    var = (d * d).sum(axis=0, keepdims=True) / (N - 1 if unbiased else N)
    sigma = np.sqrt(var + eps)
    y_hat, kappa = d / sigma, np.abs(x64).max(axis=0, keepdims=True) / sigma
    core = 4 * (N + 2) * _u_compute(x.dtype) * (np.abs(y_hat) + kappa + 1)
    _close(y, _apply_affine(y_hat, g, b), _affine_bound(core, y_hat, g, b, x.dtype), "batch_norm")


@pytest.mark.parametrize("dtype, log_scale", FULL)
@_profile
@given(data=st.data(), unbiased=st.booleans())
def test_batch_norm_is_right_or_refuses(dtype, log_scale, data, unbiased):
    _check_batch_norm(*data.draw(norm_case(dtype, log_scale)), unbiased)


@pytest.mark.parametrize("dtype, log_scale", HALF_CASES)
@_profile
@given(data=st.data(), unbiased=st.booleans())
def test_batch_norm_of_float16_is_computed_in_float32(dtype, log_scale, data, unbiased):
    _check_batch_norm(*data.draw(norm_case(dtype, log_scale)), unbiased)


@_profile
@given(st.sampled_from(DTYPES), st.sampled_from([(0, 5), (3, 0), (0, 0), (1, 1), (2, 1)]), st.booleans())
def test_norms_of_zero_and_one_sizes_refuse_or_return_the_right_shape(dtype, shape, affine_):
    """An empty row has no mean: refused (naming ``x``) or an empty result; never NumPy's own error."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(dtype)
    H = shape[1]
    g, b = (np.ones(H, dtype), np.zeros(H, dtype)) if affine_ else (None, None)
    for call, names in ((lambda: F.layer_norm(x, g, b), ["x", "gain", "bias"]),
                        (lambda: F.rms_norm(x, g), ["x", "gain"]),
                        (lambda: F.batch_norm(x, g, b), ["x", "gain", "bias"])):
        try:
            y, _ = call()
        except (ValueError, TypeError) as exc:
            _named_error(exc, names)
            continue
        assert y.shape == x.shape and y.dtype == x.dtype and np.isfinite(y.astype(np.float64)).all()


# --------------------------------------------------------------------------------------------------
# softmax cross-entropy with masks


@st.composite
def ce_case(draw, dtype, log_scale):
    N, C = draw(st.integers(0, 6)), draw(st.integers(0, 6))
    logits = draw(arrays((N, C), dtype, log_scale, headroom=4.0))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    targets = rng.integers(0, max(C, 1), N)
    kind = draw(st.sampled_from(["none", "bool", "int", "float", "bad"]))
    mask = None
    if kind != "none":
        m = rng.integers(0, 2, N)
        mask = {"bool": m.astype(bool), "int": m, "float": m.astype(dtype)}.get(kind)
        if kind == "bad":  # one entry that is not 0/1: negative, fractional, NaN or 2
            mask = m.astype(np.float64)
            if N:
                mask[rng.integers(N)] = draw(st.sampled_from([-1.0, 0.5, float("nan"), 2.0]))
    return logits, targets, mask


@pytest.mark.parametrize("dtype, log_scale", ALL)
@_profile
@given(data=st.data())
def test_softmax_cross_entropy_is_right_or_refuses(dtype, log_scale, data):
    logits, targets, mask = data.draw(ce_case(dtype, log_scale))
    N, C = logits.shape
    try:
        loss, cache = F.softmax_cross_entropy(logits, targets, mask)
    except (ValueError, TypeError) as exc:
        _named_error(exc, ["logits", "targets", "mask"])
        m = None if mask is None else np.asarray(mask, dtype=np.float64)
        valid_mask = m is None or (np.isin(m, (0.0, 1.0)).all() and m.sum() > 0)
        assert N == 0 or C == 0 or not valid_mask, f"refused a valid call: {exc}"
        return
    m = np.ones(N) if mask is None else np.asarray(mask, dtype=np.float64)
    assert N > 0 and C > 0 and np.isin(m, (0.0, 1.0)).all() and m.sum() > 0, "accepted an invalid call"
    z = logits.astype(np.float64)
    top = z.max(axis=1, keepdims=True)
    logp = (z - top) - np.log(np.exp(z - top).sum(axis=1, keepdims=True))
    nll = -logp[np.arange(N), targets]
    ref = float((nll * m).sum() / m.sum())
    spread = float(np.abs(z - top).max())  # the shifted logits' size: what rounding is relative to
    _close(np.array(loss), np.array(ref), 8 * _u_compute(logits.dtype) * (spread + math.log(C) + 1), "loss")
    d = F.softmax_cross_entropy_backward(1.0, cache)
    assert d.shape == logits.shape and d.dtype == logits.dtype
    p = np.exp(logp)
    p[np.arange(N), targets] -= 1
    ref_d = p * (m / m.sum())[:, None]
    _close(d, ref_d, 8 * _u_compute(logits.dtype) * C + 2 * _u(logits.dtype) * np.abs(ref_d), "dlogits")


# --------------------------------------------------------------------------------------------------
# gradient-check inputs


@pytest.mark.parametrize("log_scale", SCALES)
@_profile
@given(st.sampled_from([np.float64, np.float64, np.float32, np.float16, np.int64, np.int32, np.bool_]),
       st.integers(0, 6), st.floats(-1, 1), st.integers(0, 2**32 - 1))
def test_numerical_gradient_is_right_or_refuses(log_scale, dtype, n, jitter, seed):
    with np.errstate(over="ignore", invalid="ignore"):  # 1e30 as an int or float16: refused below anyway
        x = (10.0 ** (log_scale + jitter) * np.random.default_rng(seed).standard_normal(n)).astype(dtype)
    c = np.linspace(-1.0, 2.0, n)  # f(x) = sum(c x + x^2 / 2): gradient c + x, no overflow at 1e30

    def f():
        x64 = x.astype(np.float64)
        return float((c * x64 + 0.5 * x64 * x64).sum())

    try:
        g = numerical_gradient(f, x)
    except (ValueError, TypeError) as exc:
        _named_error(exc, ["x", "h"])
        assert dtype != np.float64 or np.abs(x).max() > 1e8 * 1e-5, f"refused a float64 input: {exc}"
        return
    assert x.dtype == np.float64, f"accepted {x.dtype}: its +-h steps are rounded away or truncated"
    want = c + x
    # central differences of a quadratic are exact: what is left is the rounding of f, ~u |f| / h per entry
    bound = 8 * _u(np.float64) * (np.abs(c * x).sum() + (x * x).sum() + 1) / 1e-5 + 1e-9 * np.abs(want)
    _close(g, want, bound, "numerical_gradient")


# --------------------------------------------------------------------------------------------------
# the recurrent steps


def _sigmoid(a):
    return 0.5 * (1 + np.tanh(0.5 * a))


@st.composite
def step_case(draw, k, dtype, log_scale):
    """``a_x`` (B, kH), ``c_prev`` and ``W_h`` (H, kH) at the given scale; ``h_prev`` in (-1, 1), as a cell's
    output is."""
    B, H = draw(st.integers(0, 3)), draw(st.integers(1, 5))
    head = 8.0 * (H + 1)  # a_x + h W_h must fit the dtype too
    a_x = draw(arrays((B, k * H), dtype, log_scale, headroom=head))
    h_prev = np.tanh(draw(arrays((B, H), np.float64, draw(st.sampled_from([-3, 0, 2])), offset=False)))
    h_prev = h_prev.astype(dtype)
    c_prev = draw(arrays((B, H), dtype, log_scale, headroom=head))
    W_h = draw(arrays((H, k * H), dtype, log_scale, headroom=head, offset=False))
    return a_x, h_prev, c_prev, W_h


def _a_bound(a_x, h_prev, W_h):
    """Size of the pre-activations' rounding: |a_x| + |h| |W_h| (H terms each)."""
    H = h_prev.shape[1]
    mag = np.abs(a_x.astype(np.float64)) + np.abs(h_prev.astype(np.float64)) @ np.abs(W_h.astype(np.float64))
    return 4 * (H + 2) * _u_compute(a_x.dtype) * (mag + 1)


@pytest.mark.parametrize("dtype, log_scale", ALL)
@_profile
@given(data=st.data())
def test_lstm_step_is_right_or_refuses(dtype, log_scale, data):
    a_x, h_prev, c_prev, W_h = data.draw(step_case(4, dtype, log_scale))
    try:
        h, c, _ = F.lstm_step(a_x, h_prev, c_prev, W_h)
    except (ValueError, TypeError) as exc:
        _named_error(exc, ["a_x", "h_prev", "c_prev", "W_h"])
        return
    H = h_prev.shape[1]
    a = a_x.astype(np.float64) + h_prev.astype(np.float64) @ W_h.astype(np.float64)
    f, i, o, gg = (_sigmoid(a[:, :H]), _sigmoid(a[:, H:2 * H]), _sigmoid(a[:, 2 * H:3 * H]), np.tanh(a[:, 3 * H:]))
    c_ref = f * c_prev.astype(np.float64) + i * gg
    h_ref = o * np.tanh(c_ref)
    ea = _a_bound(a_x, h_prev, W_h).reshape(a.shape[0], 4, H).max(axis=1)  # per unit, the worst of its 4 gates
    e_c = (ea * (np.abs(c_prev.astype(np.float64)) + 1) + 4 * _u_compute(a_x.dtype) * (np.abs(c_ref) + 1))
    assert h.dtype == c.dtype == a_x.dtype and h.shape == c.shape == h_prev.shape
    _close(c, c_ref, e_c + 2 * _u(a_x.dtype) * np.abs(c_ref), "c_t")
    _close(h, h_ref, ea + e_c + 2 * _u(a_x.dtype) + 4 * _u_compute(a_x.dtype), "h_t")


@pytest.mark.parametrize("dtype, log_scale", ALL)
@_profile
@given(data=st.data())
def test_rnn_step_is_right_or_refuses(dtype, log_scale, data):
    a_x, h_prev, _, W_h = data.draw(step_case(1, dtype, log_scale))
    try:
        h, _ = F.rnn_step(a_x, h_prev, W_h)
    except (ValueError, TypeError) as exc:
        _named_error(exc, ["a_x", "h_prev", "W_h"])
        return
    h_ref = np.tanh(a_x.astype(np.float64) + h_prev.astype(np.float64) @ W_h.astype(np.float64))
    assert h.dtype == a_x.dtype and h.shape == h_prev.shape
    _close(h, h_ref, _a_bound(a_x, h_prev, W_h) + 2 * _u(a_x.dtype) + 4 * _u_compute(a_x.dtype), "h_t")


@pytest.mark.parametrize("dtype, log_scale", ALL)
@_profile
@given(data=st.data(), reset=st.sampled_from(["after", "before"]))
def test_gru_step_agrees_with_its_float64_self_or_refuses(dtype, log_scale, data, reset):
    """The GRU reference is the same step in float64 (its float64 formula is checked in
    tests/test_recurrent_cells.py); here: every dtype and scale gives that answer within rounding."""
    a_x, h_prev, _, W_h = data.draw(step_case(3, dtype, log_scale))
    try:
        h, _ = F.gru_step(a_x, h_prev, W_h, reset=reset)
    except (ValueError, TypeError) as exc:
        _named_error(exc, ["a_x", "h_prev", "W_hh", "reset"])
        return
    h_ref, _ = F.gru_step(a_x.astype(np.float64), h_prev.astype(np.float64), W_h.astype(np.float64), reset=reset)
    assert h.dtype == a_x.dtype and h.shape == h_prev.shape
    ea = _a_bound(a_x, h_prev, W_h).reshape(a_x.shape[0], 3, h_prev.shape[1]).max(axis=1)
    _close(h, h_ref, 4 * ea + 2 * _u(a_x.dtype) + 8 * _u_compute(a_x.dtype), "h_t")


@_profile
@given(st.sampled_from(["a_x", "h_prev", "c_prev", "W_h"]), st.sampled_from(["shape", "int", "dtype", "broadcast"]))
def test_lstm_step_names_the_bad_argument(which, how):
    """Wrong shapes, integer arrays, mixed dtypes and a (1, H) state broadcast over the batch: refused,
    naming the argument (issue 20 item 5), never a NumPy matmul error or a silent broadcast."""
    rng = np.random.default_rng(0)
    B, H = 3, 2
    args = {"a_x": rng.standard_normal((B, 4 * H)), "h_prev": rng.standard_normal((B, H)) * 0.5,
            "c_prev": rng.standard_normal((B, H)), "W_h": rng.standard_normal((H, 4 * H))}
    args = {k: v.astype(np.float32) for k, v in args.items()}
    v = args[which]
    if how == "shape":
        args[which] = np.concatenate([v, v[..., :1]], axis=-1)
    elif how == "int":
        args[which] = v.astype(np.int64)
    elif how == "dtype":
        args[which] = v.astype(np.float64)
    else:
        args[which] = v[:1]  # (1, ...): a state would broadcast over the batch
    with pytest.raises((ValueError, TypeError)) as e:
        F.lstm_step(args["a_x"], args["h_prev"], args["c_prev"], args["W_h"])
    _named_error(e.value, ["a_x", "h_prev", "c_prev", "W_h"])
