"""Weight initializers. Each takes a shape, a NumPy ``Generator`` and a dtype, and returns an array of
the default backend (see :mod:`lnedu.backend`). Weights are drawn on the host with NumPy, so a seed gives
the same numbers on the CPU and on the GPU.

Shapes follow lnedu's ``x @ W`` convention: ``W`` is (fan_in, fan_out).
"""

from __future__ import annotations

import numpy as np

from . import backend

__all__ = [
    "as_rng",
    "zeros",
    "ones",
    "constant",
    "xavier_uniform",
    "xavier_normal",
    "variance_scaling",
    "he_normal",
    "orthogonal",
    "uniform",
    "forget_gate_bias",
    "get",
]


def as_rng(rng) -> np.random.Generator:
    """A ``numpy.random.Generator`` from ``None`` (fresh entropy), an int seed, or a Generator."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, (int, np.integer)):
        return np.random.default_rng(rng)
    raise TypeError(f"rng: expected None, an int seed or a numpy.random.Generator, got {type(rng).__name__}")


def _out(a, dtype):
    # C-contiguous always: a transposed orthogonal block would otherwise leak a strided view
    return backend.asarray(np.ascontiguousarray(a, dtype=dtype))


def _fans(shape):
    if len(shape) < 2:
        raise ValueError(f"shape: expected at least 2 dimensions (fan_in, fan_out), got {tuple(shape)}")
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[0] * receptive, shape[1] * receptive


def zeros(shape, rng=None, dtype=np.float32):
    return _out(np.zeros(shape), dtype)


def ones(shape, rng=None, dtype=np.float32):
    return _out(np.ones(shape), dtype)


def constant(value):
    """An initializer that fills with ``value``."""

    def init(shape, rng=None, dtype=np.float32):
        return _out(np.full(shape, value), dtype)

    return init


def uniform(scale):
    """An initializer drawing from U(-scale, scale)."""

    def init(shape, rng=None, dtype=np.float32):
        return _out(as_rng(rng).uniform(-scale, scale, size=shape), dtype)

    return init


def xavier_uniform(shape, rng=None, dtype=np.float32):
    """Glorot & Bengio (2010): U(-a, a) with ``a = sqrt(6 / (fan_in + fan_out))``, variance 2/(fan_in+fan_out)."""
    fan_in, fan_out = _fans(shape)
    a = np.sqrt(6.0 / (fan_in + fan_out))
    return _out(as_rng(rng).uniform(-a, a, size=shape), dtype)


def xavier_normal(shape, rng=None, dtype=np.float32):
    """Glorot normal: N(0, 2 / (fan_in + fan_out))."""
    fan_in, fan_out = _fans(shape)
    return _out(as_rng(rng).normal(0.0, np.sqrt(2.0 / (fan_in + fan_out)), size=shape), dtype)


def variance_scaling(shape, rng=None, dtype=np.float32, *, scale: float = 2.0, mode: str = "fan_in"):
    """Variance scaling: N(0, scale / fan), ``fan`` by ``mode`` ('fan_in', 'fan_out', 'fan_avg').

    ``scale=2, mode='fan_in'`` is He et al. (2015); ``scale=1, mode='fan_avg'`` is Glorot normal.
    """
    fan_in, fan_out = _fans(shape)
    fans = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}
    if mode not in fans:
        raise ValueError(f"mode: expected one of {sorted(fans)}, got {mode!r}")
    return _out(as_rng(rng).normal(0.0, np.sqrt(scale / fans[mode]), size=shape), dtype)


def he_normal(shape, rng=None, dtype=np.float32):
    """He et al. (2015): N(0, 2 / fan_in)."""
    return variance_scaling(shape, rng, dtype, scale=2.0, mode="fan_in")


def orthogonal(shape, rng=None, dtype=np.float32, *, gain: float = 1.0):
    """Saxe et al. (2014): a (semi-)orthogonal matrix from the QR decomposition of a Gaussian matrix.

    When ``shape[1]`` is a multiple of ``shape[0]`` the matrix is built from square (D, D) orthogonal blocks side
    by side: for a recurrent matrix W_h of shape (H, k*H) these are exactly its k gate blocks. Otherwise the
    whole matrix is (semi-)orthogonal (for an input matrix W_x of shape (D, k*H), its rows are orthonormal).
    """
    if len(shape) != 2:
        raise ValueError(f"shape: expected 2 dimensions, got {tuple(shape)}")
    rng = as_rng(rng)
    rows, cols = shape

    def block(r, c):
        a = rng.standard_normal((max(r, c), min(r, c)))
        q, rr = np.linalg.qr(a)
        q *= np.sign(np.diag(rr))  # make the decomposition unique (Mezzadri, 2007)
        return q if r >= c else q.T

    if cols > rows and cols % rows == 0:
        w = np.concatenate([block(rows, rows) for _ in range(cols // rows)], axis=1)
    else:
        w = block(rows, cols)
    return _out(gain * w, dtype)


def forget_gate_bias(hidden_size: int, value: float = 1.0, *, gates: int = 4, block: int = 0, dtype=np.float32):
    """A stacked-gate bias of shape (gates * H,): zeros, except ``value`` in gate ``block``'s H entries.

    For an LSTM in lnedu's gate order (f, i, o, g) the defaults put 1 in the forget gate's block, so that
    ``sigma(f) ~ 0.73`` at the start and the cell keeps its memory while the rest learns (Jozefowicz, Zaremba
    & Sutskever 2015 recommend a forget bias of 1). The recurrent layers take it as ``forget_bias=``.
    """
    for name, v, low in (("hidden_size", hidden_size, 1), ("gates", gates, 1)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
            raise ValueError(f"{name}: expected a positive integer, got {v!r}")
    if isinstance(block, bool) or not isinstance(block, (int, np.integer)) or not 0 <= block < gates:
        raise ValueError(f"block: expected a gate index in [0, {gates}), got {block!r}")
    b = np.zeros(gates * hidden_size)
    b[block * hidden_size:(block + 1) * hidden_size] = value
    return _out(b, dtype)


_BY_NAME = {
    "zeros": zeros,
    "ones": ones,
    "xavier": xavier_uniform,
    "xavier_uniform": xavier_uniform,
    "glorot": xavier_uniform,
    "xavier_normal": xavier_normal,
    "he": he_normal,
    "he_normal": he_normal,
    "variance_scaling": variance_scaling,
    "orthogonal": orthogonal,
}


def get(init):
    """An initializer from a callable or a name (``'xavier'``, ``'orthogonal'``, ``'variance_scaling'``, ...)."""
    if callable(init):
        return init
    if isinstance(init, str) and init.lower() in _BY_NAME:
        return _BY_NAME[init.lower()]
    raise ValueError(f"init: expected a callable or one of {sorted(_BY_NAME)}, got {init!r}")
