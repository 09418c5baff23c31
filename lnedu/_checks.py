"""Argument checks shared by the library: each error names the argument, what was expected and what came.

These run on every call, so they only look at metadata (ndim, shape, dtype); the one check that reads
the data, :func:`check_finite`, runs only where the caller asked for it (``check_finite=True``).
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from .backend import get_array_module

FLOAT_KINDS = "f"


def check_float_array(name: str, x, *, ndim: int | None = None, min_ndim: int | None = None):
    """Check that ``x`` is a floating-point array (numpy or cupy) of the given rank; return it."""
    if not hasattr(x, "dtype") or not hasattr(x, "shape"):
        raise TypeError(f"{name}: expected a floating-point array, got {type(x).__name__}")
    if x.dtype.kind not in FLOAT_KINDS and x.dtype.name != "bfloat16":  # ml_dtypes' bfloat16 (CuPy >= 14)
        raise TypeError(
            f"{name}: expected a floating-point array (float32 or float64), got dtype {x.dtype}"
        )
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-d array, got ndim={x.ndim} (shape {tuple(x.shape)})")
    if min_ndim is not None and x.ndim < min_ndim:
        raise ValueError(
            f"{name}: expected an array with at least {min_ndim} dimension(s), got ndim={x.ndim} "
            f"(shape {tuple(x.shape)})"
        )
    return x


def check_shape(name: str, x, shape: tuple) -> None:
    """Check ``x.shape == shape``."""
    if tuple(x.shape) != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)}, got {tuple(x.shape)}")


def check_same_dtype(name: str, x, dtype) -> None:
    if x.dtype != dtype:
        raise TypeError(f"{name}: expected dtype {dtype} (the input's), got {x.dtype}")


def check_positive(name: str, value) -> float:
    """Check that ``value`` is a finite real number > 0; return it as float."""
    if type(value) is float and 0 < value < math.inf:  # the common case, without the ABC check below (~0.4 us)
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a positive real number, got {type(value).__name__}")
    v = float(value)
    if not (v > 0 and math.isfinite(v)):
        raise ValueError(f"{name}: expected a finite number > 0, got {value!r}")
    return v


def check_finite(name: str, x) -> None:
    """Raise if ``x`` holds NaN or inf (reads the data: call only where checking was asked for)."""
    xp = get_array_module(x)
    if not bool(xp.isfinite(x).all()):
        bad = int((~xp.isfinite(x)).sum())
        raise ValueError(f"{name}: expected finite values, got {bad} NaN/inf entr{'y' if bad == 1 else 'ies'}")


def check_int(name: str, value, *, minimum: int | None = None) -> int:
    """Check that ``value`` is an integer (a Python or NumPy one, not a bool), ``>= minimum`` when given; return it."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an integer, got {type(value).__name__} ({value!r})")
    v = int(value)
    if minimum is not None and v < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {v}")
    return v


def check_one_of(name: str, value, choices):
    """Check that ``value`` is one of ``choices`` (compared with ``==``); return it."""
    if not any(value is c or (isinstance(value, type(c)) and value == c) for c in choices):
        raise ValueError(f"{name}: expected one of {tuple(choices)}, got {value!r}")
    return value
