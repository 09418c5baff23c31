"""What every recurrent layer does around the time loops: the :class:`RecurrentLayer` interface, the checks of
``x``, ``mask`` and ``state``, the initial state (zeros or learned), and the ``forward`` / ``backward`` entries
that run the loops of :mod:`.bptt` and keep the cache between them.

A cell class calls :func:`forward` and :func:`backward` from its own ``forward`` / ``backward`` with itself as
the cell (composition: the cells share these functions, not a base class).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from ... import init as I
from ..._checks import check_finite as _check_finite
from ..._checks import check_float_array, check_shape
from ...backend import get_array_module
from ..layers import _check_size
from .bptt import run_backward, run_forward

__all__ = ["RecurrentLayer", "init_layer", "param_dtype", "add_initial_state", "forward", "backward"]


@runtime_checkable
class RecurrentLayer(Protocol):
    """What a recurrent layer offers its callers (``isinstance(m, RecurrentLayer)`` checks for it): every
    layer of this package has these, and so may a layer written elsewhere.

    Time-major: ``forward(x (T, B, D), state=None, mask=None) -> (out (T, B, H), final state)`` and
    ``backward(dout, dstate=None) -> (dx, dstate0)``; a state is a tuple named by ``state_names``."""

    input_size: int
    hidden_size: int
    state_names: tuple

    def forward(self, x, state=None, mask=None, *, check_finite=None): ...

    def backward(self, dout, dstate=None): ...


# --------------------------------------------------------------------------------------------------
# construction


def init_layer(layer, input_size, hidden_size, learn_h0, dtype, check_finite):
    """Set the attributes every recurrent layer has (checked): sizes, dtype, ``learn_h0``, ``check_finite``."""
    layer.input_size = _check_size("input_size", input_size)
    layer.hidden_size = _check_size("hidden_size", hidden_size)
    layer._init_dtype = np.dtype(dtype)
    if layer._init_dtype.kind != "f":
        raise TypeError(f"dtype: expected a floating-point dtype (float32 or float64), got {layer._init_dtype}")
    layer.learn_h0 = bool(learn_h0)
    layer.check_finite = bool(check_finite)
    layer._cache = None


def param_dtype(layer):
    """The parameters' dtype (``W_x``'s; it follows :meth:`Module.astype`), or the constructor's before."""
    return layer.params["W_x"].dtype if "W_x" in layer.params else layer._init_dtype


def add_initial_state(layer):
    """With ``learn_h0``: the learned initial state, ``h0`` [, ``c0``] (H,), zeros at first."""
    if layer.learn_h0:
        for n in layer.state_names:
            layer.add_param(n + "0", I.zeros((layer.hidden_size,), dtype=layer.dtype))


# --------------------------------------------------------------------------------------------------
# checks


def _check_x(layer, x):
    check_float_array("x", x, ndim=3)
    T, B, D = x.shape
    if D != layer.input_size:
        raise ValueError(f"x: expected shape (T, B, {layer.input_size}) (input_size={layer.input_size}), "
                         f"got {tuple(x.shape)}")
    if T < 1 or B < 1:
        raise ValueError(f"x: expected at least one time step and one sequence, got shape {tuple(x.shape)}")
    dtype = param_dtype(layer)
    if x.dtype != dtype:
        raise TypeError(f"x: expected dtype {dtype} (the layer's parameters'), got {x.dtype}")


def _check_mask(mask, T, B, xp):
    """``mask`` as a (T, B) bool array, or ``None`` when it is ``None`` or marks every step real."""
    if mask is None:
        return None
    if not hasattr(mask, "shape") or not hasattr(mask, "dtype"):
        raise TypeError(f"mask: expected a (T, B) array of 0/1 or bool, got {type(mask).__name__}")
    if tuple(mask.shape) != (T, B):
        raise ValueError(f"mask: expected shape (T, B) = {(T, B)}, got {tuple(mask.shape)}")
    mask = xp.asarray(mask)
    if mask.dtype.kind != "b":
        if mask.dtype.kind not in "iuf":
            raise TypeError(f"mask: expected bool or 0/1 numbers, got dtype {mask.dtype}")
        if bool(((mask != 0) & (mask != 1)).any()):
            raise ValueError("mask: expected only 0 and 1, got other values")
        mask = mask != 0
    return None if bool(mask.all()) else mask


def _check_state(layer, name, state, B, allow_none_entries=False, cast=False):
    names = layer.state_names
    n = len(names)
    if not isinstance(state, (tuple, list)) or len(state) != n:
        shown = "(" + ", ".join(names) + ("," if n == 1 else "") + ")"
        got = f"a {type(state).__name__} of length {len(state)}" if isinstance(state, (tuple, list)) else \
            type(state).__name__
        raise TypeError(f"{name}: expected a tuple {shown} of (B, H) arrays, got {got}")
    out = []
    dtype = param_dtype(layer)
    for k, s in enumerate(state):
        label = f"{name}[{k}] ({names[k]})"
        if s is None and allow_none_entries:
            out.append(None)
            continue
        check_float_array(label, s, ndim=2)
        check_shape(label, s, (B, layer.hidden_size))
        if cast:
            s = s.astype(dtype, copy=False)
        elif s.dtype != dtype:
            raise TypeError(f"{label}: expected dtype {dtype} (the layer's parameters'), got {s.dtype}")
        out.append(s)
    return tuple(out)


def _initial_state(layer, state, B, xp):
    """The state to start from and whether it is the learned one: zeros (``None``), ``h0``/``c0`` broadcast
    (``None`` with ``learn_h0``), or ``state`` checked."""
    H = layer.hidden_size
    dtype = param_dtype(layer)
    if state is None:
        if layer.learn_h0:
            return tuple(xp.broadcast_to(layer.params[n + "0"], (B, H)).copy() for n in layer.state_names), True
        return tuple(xp.zeros((B, H), dtype=dtype) for _ in layer.state_names), False
    return _check_state(layer, "state", state, B), False


# --------------------------------------------------------------------------------------------------
# the entries: check, run the loop, keep (or use) the cache


def forward(layer, x, state=None, mask=None, check_finite=None):
    """Check the arguments, run :func:`.bptt.run_forward` with ``layer`` as the cell, keep its cache on the
    layer (:attr:`Module.cache`); return ``(out, final state)``."""
    _check_x(layer, x)
    xp = get_array_module(x)
    T, B, _ = x.shape
    mask = _check_mask(mask, T, B, xp)
    state0, learned = _initial_state(layer, state, B, xp)
    if layer.check_finite if check_finite is None else check_finite:
        _check_finite("x", x)
        for k, s in enumerate(state0):
            _check_finite(f"state[{k}]", s)
    layer._cache = None
    out, final, cache = run_forward(layer, x, state0, mask)
    layer._cache = (cache, T, B, mask, learned)
    return out, final


def backward(layer, dout, dstate=None):
    """Check the arguments, run :func:`.bptt.run_backward` on the kept cache; with a learned initial state
    also sum ``dstate0`` into ``h0``/``c0``. Returns ``(dx, dstate0)``."""
    if layer._cache is None:
        raise RuntimeError(f"{type(layer).__name__}.backward: call forward first")
    cache, T, B, mask, learned = layer._cache
    H = layer.hidden_size
    xp = get_array_module(layer.params["W_x"])
    dtype = param_dtype(layer)
    if dout is not None:
        check_float_array("dout", dout, ndim=3)
        check_shape("dout", dout, (T, B, H))
        dout = dout.astype(dtype, copy=False)  # a float64 upstream gradient computes in the layer's dtype
    if dstate is None:
        dstate = (None,) * len(layer.state_names)
    dstate = _check_state(layer, "dstate", dstate, B, allow_none_entries=True, cast=True)
    dstate = tuple(xp.zeros((B, H), dtype=dtype) if d is None else d for d in dstate)
    dx, dstate0 = run_backward(layer, cache, dout, dstate, mask)
    if learned:
        for n, d in zip(layer.state_names, dstate0):
            layer.grads[n + "0"] += d.sum(axis=0)
    return dx, dstate0
