"""lnedu.init: shapes, dtypes, the variances the papers prescribe, orthogonality, reproducibility."""

from __future__ import annotations

import numpy as np
import pytest

from lnedu import backend
from lnedu import init as I

NAMES = ["zeros", "ones", "xavier", "xavier_uniform", "glorot", "xavier_normal", "he", "he_normal",
         "variance_scaling", "orthogonal"]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_shapes_and_dtypes(name, dtype):
    w = I.get(name)((5, 8), np.random.default_rng(0), dtype)
    assert isinstance(w, np.ndarray) and w.shape == (5, 8) and w.dtype == dtype
    assert np.isfinite(w).all()


@pytest.mark.parametrize("name", [n for n in NAMES if n not in ("zeros", "ones")])
def test_reproducible_with_a_seed(name):
    init = I.get(name)
    a = init((6, 4), 123)
    np.testing.assert_array_equal(init((6, 4), 123), a)
    np.testing.assert_array_equal(init((6, 4), np.random.default_rng(123)), a)  # an int seeds default_rng
    assert not np.array_equal(init((6, 4), 124), a)
    rng = np.random.default_rng(5)
    first, second = init((6, 4), rng), init((6, 4), rng)
    assert not np.array_equal(first, second)  # a Generator is a stream: two draws differ


def _var_close(w, expected, rtol=0.03):
    w = np.asarray(w, dtype=np.float64)
    assert abs(w.mean()) < 5 * np.sqrt(expected / w.size)  # mean 0 within 5 standard errors
    assert w.var() == pytest.approx(expected, rel=rtol)


def test_xavier_uniform_variance_and_bound():
    fan_in, fan_out = 300, 500
    w = I.xavier_uniform((fan_in, fan_out), 0, np.float64)
    _var_close(w, 2.0 / (fan_in + fan_out))
    a = np.sqrt(6.0 / (fan_in + fan_out))
    assert np.abs(w).max() <= a and np.abs(w).max() > 0.99 * a


def test_xavier_normal_and_he_variances():
    _var_close(I.xavier_normal((300, 500), 1, np.float64), 2.0 / 800)
    _var_close(I.he_normal((400, 300), 2, np.float64), 2.0 / 400)
    _var_close(I.variance_scaling((400, 200), 3, np.float64, scale=1.0, mode="fan_out"), 1.0 / 200)
    _var_close(I.variance_scaling((400, 200), 4, np.float64, scale=3.0, mode="fan_avg"), 3.0 / 300)


def test_uniform_and_constant():
    w = I.uniform(0.08)((200, 300), 0, np.float64)
    assert np.abs(w).max() <= 0.08
    _var_close(w, 0.08**2 / 3)
    np.testing.assert_array_equal(I.constant(0.25)((2, 3), None, np.float32), np.full((2, 3), 0.25, np.float32))
    np.testing.assert_array_equal(I.zeros((3,)), 0)
    np.testing.assert_array_equal(I.ones((3,)), 1)


def _assert_orthonormal_columns(q, tol=1e-12):
    np.testing.assert_allclose(q.T @ q, np.eye(q.shape[1]), atol=tol)


@pytest.mark.parametrize("shape", [(6, 6), (9, 4), (1, 1)])
def test_orthogonal_square_and_tall(shape):
    q = I.orthogonal(shape, 7, np.float64)
    _assert_orthonormal_columns(q)
    if shape[0] == shape[1]:
        np.testing.assert_allclose(q @ q.T, np.eye(shape[0]), atol=1e-12)


def test_orthogonal_wide_has_orthonormal_rows():
    q = I.orthogonal((3, 7), 7, np.float64)  # 7 is no multiple of 3: one semi-orthogonal matrix
    np.testing.assert_allclose(q @ q.T, np.eye(3), atol=1e-12)


@pytest.mark.parametrize("H,gates", [(5, 4), (3, 3), (4, 2)])
def test_orthogonal_is_blockwise_for_stacked_gates(H, gates):
    # a recurrent matrix W_h (H, gates*H): each gate's (H, H) block is orthogonal on its own
    W = I.orthogonal((H, gates * H), 11, np.float64)
    for k in range(gates):
        block = W[:, k * H:(k + 1) * H]
        _assert_orthonormal_columns(block)
        np.testing.assert_allclose(block @ block.T, np.eye(H), atol=1e-12)
    assert not np.allclose(W[:, :H], W[:, H:2 * H])  # independent draws, not copies


def test_orthogonal_gain_and_float32():
    q = I.orthogonal((5, 5), 0, np.float32, gain=2.0)
    assert q.dtype == np.float32
    np.testing.assert_allclose(q.T.astype(np.float64) @ q, 4 * np.eye(5), atol=1e-5)


def test_get_and_bad_names():
    assert I.get("Xavier") is I.xavier_uniform
    assert I.get(I.he_normal) is I.he_normal
    with pytest.raises(ValueError, match="init: expected a callable or one of .*'xavier'.*got 'kaiming'"):
        I.get("kaiming")
    with pytest.raises(ValueError, match="init:"):
        I.get(3)


def test_bad_arguments():
    with pytest.raises(TypeError, match="rng: expected None, an int seed or a numpy.random.Generator, got float"):
        I.as_rng(1.5)
    with pytest.raises(ValueError, match=r"shape: expected at least 2 dimensions \(fan_in, fan_out\), got \(5,\)"):
        I.xavier_uniform((5,))
    with pytest.raises(ValueError, match="shape: expected 2 dimensions"):
        I.orthogonal((2, 3, 4))
    with pytest.raises(ValueError, match="mode: expected one of"):
        I.variance_scaling((3, 4), 0, mode="fan_max")


@pytest.mark.gpu
def test_initializers_allocate_on_the_current_backend():
    import cupy

    try:
        backend.use("cupy")
        w = I.xavier_uniform((4, 3), 9)
        assert isinstance(w, cupy.ndarray) and w.dtype == np.float32
    finally:
        backend.use("numpy")
    # the same seed gives the same numbers on the host and on the device
    np.testing.assert_array_equal(w.get(), I.xavier_uniform((4, 3), 9))
