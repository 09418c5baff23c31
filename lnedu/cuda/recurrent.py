"""Fused LN-LSTM and LN-GRU steps for CuPy arrays: the launch side of ``kernels/recurrent.cuh``.

A recurrent step is one matrix product, ``h_{t-1} @ W_h``, and a long tail of small pointwise operations:
two layer norms, four gate nonlinearities, the cell update, the layer norm of ``c``, ``tanh``, a product.
The portable code (:func:`lnedu.functional.lstm_step` and friends) runs the tail of an LN-LSTM step as
about fifteen CuPy kernels forward and twenty-five backward, each reading and writing whole ``(B, H)`` or
``(B, 4H)`` arrays; here the product stays with cuBLAS (CuPy's ``@``) and the tail is ONE kernel forward
and one kernel (plus a column sum for the gains and biases) backward.

:func:`lnedu.functional.lstm_step` and :func:`~lnedu.functional.gru_step` find :func:`lstm_step` /
:func:`gru_step` through :mod:`lnedu.functional.dispatch` (registered by :func:`lnedu.cuda.register`)
and call them for CuPy arrays when :func:`lstm_supported` / :func:`gru_supported` say the kernels take
the case: the LN paper's cells and the baselines, that is

* LSTM: ``norm_h`` ``None`` or a layer norm over the 4H stacked gates (``groups`` 1) or per gate (4),
  ``norm_c`` ``None`` or a layer norm over H, no ``norm_a`` (Eq. 4's placement) and no ``out_scale``;
* GRU: ``reset="after"`` (the LN paper's Eq. 27), ``norm_h`` ``None`` or a layer norm over 2H (``groups``
  1 or 2), ``norm_hc`` ``None`` or a layer norm over H, no ``norm_a`` / ``norm_ac``;

with at most :data:`MAX_UNITS` hidden units. Batch norm, NormProp's fixed norms, Eq. 4's joint LN, the
reset-before GRU, MGU and the tanh RNN take the portable path, as does every NumPy array.

The fused forward returns the same ``h`` (and ``c``) and its own cache (:class:`FusedLSTMCache`,
:class:`FusedGRUCache`); the step's backward sees that cache and comes here, whatever the switch says by
then, and returns the same :class:`~lnedu.functional.recurrent.LSTMStepGrads` /
:class:`~lnedu.functional.recurrent.GRUStepGrads` as the portable backward, so
:mod:`lnedu.nn.recurrent` runs unchanged. The caches hold ``h_prev``, ``c_prev`` and the weights by
reference, as the portable caches do (the layers never write to them afterwards), and everything else in
arrays of their own.

Launch configuration: one block per row (a grid-stride loop past 32 blocks per multiprocessor forward,
past about a GPU's worth of resident threads backward), ``ITEMS`` hidden units per thread, the fewest of
1, 2, 4, 8 that keep a block within 256 threads (:func:`unit_config`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..backend import get_array_module
from ..functional.recurrent import GRUStepGrads, LSTMStepGrads
from . import _kernels
from ._kernels import DTYPES, KERNEL_TYPES, acc_dtype, fused_enabled, launch

__all__ = [
    "MAX_UNITS",
    "unit_config",
    "StepConfig",
    "lstm_config",
    "gru_config",
    "lstm_supported",
    "gru_supported",
    "FusedLSTMCache",
    "FusedGRUCache",
    "lstm_step",
    "lstm_step_backward",
    "gru_step",
    "gru_step_backward",
    "name_expressions",
]

_ITEMS = (1, 2, 4, 8)
_TARGET_THREADS = 256
MAX_UNITS = _ITEMS[-1] * _TARGET_THREADS  # 2048 hidden units


def _into(out, value):
    """``value`` copied into ``out`` when a caller's ``out`` array is given (and is not ``value``), else ``value``."""
    if out is None or value is out:
        return value
    out[...] = value
    return out


def unit_config(H: int):
    """``(items, threads)`` for ``H`` hidden units, or ``None`` past :data:`MAX_UNITS`.

    The fewest units per thread (1, 2, 4, 8) that keep a block within 256 threads, rounded up to whole
    warps: H = 37 gives (1, 64), H = 300 gives (2, 160), H = 2048 gives (8, 256).
    """
    return _kernels.block_config(H, _ITEMS, _TARGET_THREADS)


class StepConfig(NamedTuple):
    """How the kernels run one step: the launch shape and the norms, as the kernels' run-time arguments."""

    items: int
    threads: int
    groups_h: int  # 0: no LN of the recurrent term; 1: over all stacked gates; k: per gate
    ln_c: int  # 1: an LN of the LSTM's c (or of the GRU's candidate term U h), 0: none


def _layer_groups(norm, allowed):
    """The ``groups`` of a layer :class:`~lnedu.functional.recurrent.Norm` the kernels take (0 for ``None``),
    or ``None`` when they do not take it (another kind, other groups, a bad eps)."""
    if norm is None:
        return 0
    if norm.kind != "layer" or norm.groups not in allowed or not norm.eps > 0:
        return None
    return norm.groups


def _config(H, gh, gc):
    launch_shape = unit_config(H)
    if launch_shape is None or gh is None or gc is None:
        return None
    return StepConfig(*launch_shape, gh, int(bool(gc)))


def lstm_config(H: int, *, norm_h=None, norm_a=None, norm_c=None, out_scale=None):
    """The :class:`StepConfig` of an LSTM step with these norms (``lstm_step``'s arguments), or ``None``
    when the kernels do not take it. Depends only on the configuration, not on arrays or the switch."""
    if norm_a is not None or out_scale is not None:
        return None
    return _config(H, _layer_groups(norm_h, (1, 4)), _layer_groups(norm_c, (1,)))


def gru_config(H: int, *, reset: str = "after", norm_h=None, norm_hc=None, norm_a=None, norm_ac=None, norm_hh=None):
    """The :class:`StepConfig` of a GRU step (``gru_step``'s arguments), or ``None`` when the kernels do
    not take it (the reset before ``U``, ``norm_a``, ``norm_ac``, ``norm_hh``, other norms than layer norm)."""
    if reset != "after" or norm_a is not None or norm_ac is not None or norm_hh is not None:
        return None
    return _config(H, _layer_groups(norm_h, (1, 2)), _layer_groups(norm_hc, (1,)))


def _arrays_fit(xp, dtype, shaped, norms):
    """Every array of ``shaped`` ((array, shape) pairs) has that shape, and each norm's gain and bias
    (K units) is ``None`` or a (K,) array; all of ``dtype`` and on the array module ``xp``."""
    pairs = list(shaped)
    for norm, K in norms:
        if norm is not None:
            pairs += [(p, (K,)) for p in (norm.gain, norm.bias) if p is not None]
    return all(getattr(a, "dtype", None) == dtype and get_array_module(a) is xp and a.shape == shape
               for a, shape in pairs)


def lstm_supported(a_x, h_prev, c_prev, W_h, *, norm_h=None, norm_a=None, norm_c=None, out_scale=None) -> bool:
    """Whether :func:`lstm_step` takes these arguments: CuPy arrays of one dtype and consistent shapes,
    the fused kernels switched on, and a configuration :func:`lstm_config` accepts."""
    xp = get_array_module(a_x)
    if xp is np or not fused_enabled() or a_x.dtype not in DTYPES or getattr(h_prev, "ndim", 0) != 2:
        return False
    B, H = h_prev.shape
    if lstm_config(H, norm_h=norm_h, norm_a=norm_a, norm_c=norm_c, out_scale=out_scale) is None:
        return False
    return _arrays_fit(xp, a_x.dtype, [(a_x, (B, 4 * H)), (h_prev, (B, H)), (c_prev, (B, H)), (W_h, (H, 4 * H))],
                       [(norm_h, 4 * H), (norm_c, H)])


def gru_supported(a_x, h_prev, W_hh, *, reset="after", norm_h=None, norm_hc=None, norm_a=None, norm_ac=None,
                  norm_hh=None) -> bool:
    """Whether :func:`gru_step` takes these arguments (see :func:`lstm_supported`); never with ``norm_hh``
    (haste's one LN of the whole 3H product, which the kernels do not implement)."""
    if norm_hh is not None:
        return False
    xp = get_array_module(a_x)
    if xp is np or not fused_enabled() or a_x.dtype not in DTYPES or getattr(h_prev, "ndim", 0) != 2:
        return False
    B, H = h_prev.shape
    if gru_config(H, reset=reset, norm_h=norm_h, norm_hc=norm_hc, norm_a=norm_a, norm_ac=norm_ac) is None:
        return False
    return _arrays_fit(xp, a_x.dtype, [(a_x, (B, 3 * H)), (h_prev, (B, H)), (W_hh, (H, 3 * H))],
                       [(norm_h, 2 * H), (norm_hc, H)])


# --------------------------------------------------------------------------------------------------
# helpers


def _param(xp, norm, name):
    """A norm's gain or bias as a contiguous array, or ``None`` (no norm, or gain 1 / bias 0)."""
    p = None if norm is None else getattr(norm, name)
    return None if p is None else xp.ascontiguousarray(p)


def _eps(norm) -> np.float64:
    return np.float64(norm.eps if norm is not None else 0.0)


def _product(xp, a, b, dtype):
    """``a @ b`` (cuBLAS on a GPU) as a C-contiguous array of ``dtype``: NumPy multiplies ml_dtypes' bfloat16
    in float32, and the kernels read the product as ``dtype``."""
    return xp.ascontiguousarray(a @ b, dtype=dtype)


def _output(xp, out, shape, dtype):
    """``out`` when the kernel can write into it (C-contiguous, right shape and dtype), else a new array."""
    if out is not None and out.shape == shape and out.dtype == dtype and out.flags.c_contiguous:
        return out
    return xp.empty(shape, dtype=dtype)


def _norm_grads(norm, sums, start, K):
    """``(dgain, dbias)`` of a norm over K units from ``sums[start:start+2K]`` = [sum dy xhat | sum dy],
    ``None`` for an absent gain or bias, and ``None`` altogether without the norm."""
    if norm is None:
        return None
    dgain = sums[start: start + K] if norm.gain is not None else None
    dbias = sums[start + K: start + 2 * K] if norm.bias is not None else None
    return dgain, dbias


# --------------------------------------------------------------------------------------------------
# LSTM


class FusedLSTMCache(NamedTuple):
    """What the fused LSTM backward needs (the portable :class:`~lnedu.functional.recurrent.LSTMStepCache`
    keeps ``N_h``'s output and ``c`` itself; this one the normalized values and their scales)."""

    h_prev: object  # (B, H)
    c_prev: object  # (B, H)
    W_h: object  # (H, 4H)
    gates: object  # (B, 4H): sigma f, i, o | tanh g
    tanh_c: object  # (B, H): tanh(LN_c(c_t))
    xhat_h: object  # (B, 4H): xhat of LN_h (the product's array, overwritten), or None without LN_h
    rstd_h: object  # (B, groups_h) in the accumulation dtype, or None
    xhat_c: object  # (B, H) or None without LN_c
    rstd_c: object  # (B, 1) or None
    norm_h: object  # the Norm (gain, bias, groups) or None
    norm_c: object
    config: StepConfig


def lstm_step(a_x, h_prev, c_prev, W_h, *, norm_h=None, norm_c=None):
    """Fused :func:`lnedu.functional.lstm_step` for a case :func:`lstm_supported` accepts: ``(h, c, cache)``.

    One cuBLAS product ``a_h = h_prev @ W_h``, then one ``lstm_forward`` kernel for everything else.
    """
    xp = get_array_module(a_x)
    B, H = h_prev.shape
    cfg = lstm_config(H, norm_h=norm_h, norm_c=norm_c)
    if cfg is None:
        raise ValueError(f"lstm_step: the fused kernels do not take H={H} with norm_h={norm_h}, norm_c={norm_c}")
    dtype = a_x.dtype
    a_h = _product(xp, h_prev, W_h, dtype)  # a fresh array of ours: the kernel leaves LN_h's xhat in it
    a_x, c_prev = xp.ascontiguousarray(a_x), xp.ascontiguousarray(c_prev)
    h, c, tanh_c = (xp.empty((B, H), dtype=dtype) for _ in range(3))
    gates = xp.empty((B, 4 * H), dtype=dtype)
    xhat_c = xp.empty((B, H), dtype=dtype) if cfg.ln_c else None
    rstd_h = xp.empty((B, cfg.groups_h), dtype=acc_dtype(dtype)) if cfg.groups_h else None
    rstd_c = xp.empty((B, 1), dtype=acc_dtype(dtype)) if cfg.ln_c else None
    if B:
        launch(f"lstm_forward<{DTYPES[dtype]}, {cfg.items}>", _kernels.forward_grid(B), cfg.threads,
               a_x, a_h, c_prev, _param(xp, norm_h, "gain"), _param(xp, norm_h, "bias"),
               _param(xp, norm_c, "gain"), _param(xp, norm_c, "bias"), h, c, gates, tanh_c, xhat_c, rstd_h, rstd_c,
               np.int64(B), np.int32(H), np.int32(cfg.groups_h), np.int32(cfg.ln_c), _eps(norm_h), _eps(norm_c))
    cache = FusedLSTMCache(h_prev, c_prev, W_h, gates, tanh_c, a_h if cfg.groups_h else None, rstd_h, xhat_c,
                           rstd_c, norm_h, norm_c, cfg)
    return h, c, cache


def lstm_step_backward(dh, dc, cache: FusedLSTMCache, *, weight_grad: bool = True, out=None) -> LSTMStepGrads:
    """Fused :func:`lnedu.functional.lstm_step_backward` (for a :class:`FusedLSTMCache`): one
    ``lstm_backward`` kernel, a column sum for the gains and biases, and the products with cuBLAS."""
    if not isinstance(cache, FusedLSTMCache):
        raise TypeError(f"cache: expected a FusedLSTMCache, got {type(cache).__name__}")
    h_prev, c_prev, W_h, gates, tanh_c, xhat_h, rstd_h, xhat_c, rstd_c, norm_h, norm_c, cfg = cache
    xp = get_array_module(gates)
    B, H = c_prev.shape
    dtype = gates.dtype
    dh = xp.ascontiguousarray(dh, dtype=dtype)
    dc = None if dc is None else xp.ascontiguousarray(dc, dtype=dtype)
    da_x = _output(xp, out, (B, 4 * H), dtype)
    da_h = xp.empty((B, 4 * H), dtype=dtype) if cfg.groups_h else None
    dc_prev = xp.empty((B, H), dtype=dtype)
    base_c = 8 * H if cfg.groups_h else 0
    width = base_c + (2 * H if cfg.ln_c else 0)
    sums = _kernels.launch_row_backward(
        f"lstm_backward<{DTYPES[dtype]}, {cfg.items}>", B, cfg.threads, width, dtype,
        (dh, dc, gates, tanh_c, c_prev, xhat_c, rstd_c, _param(xp, norm_c, "gain"), xhat_h, rstd_h,
         _param(xp, norm_h, "gain"), da_x, da_h, dc_prev),
        (np.int64(B), np.int32(H), np.int32(cfg.groups_h), np.int32(cfg.ln_c)))
    da_x = _into(out, da_x)
    if da_h is None:  # no LN_h: the product's gradient is the pre-activation's
        da_h = da_x
    dh_prev = _product(xp, da_h, W_h.T, dtype)
    dW_h = _product(xp, h_prev.T, da_h, dtype) if weight_grad else None
    return LSTMStepGrads(da_x, dh_prev, dc_prev, dW_h, _norm_grads(norm_h, sums, 0, 4 * H), None,
                         _norm_grads(norm_c, sums, base_c, H), da_h)


# --------------------------------------------------------------------------------------------------
# GRU


class FusedGRUCache(NamedTuple):
    """What the fused GRU backward needs (reset after ``U``)."""

    h_prev: object  # (B, H)
    W_hh: object  # (H, 3H) = [W_h | U]
    gates: object  # (B, 2H): z, r
    h_hat: object  # (B, H)
    xhat: object  # (B, 3H): the product's array, holding LN_h's and LN_hc's xhat (raw where no LN)
    rstd_h: object  # (B, groups_h) or None
    rstd_hc: object  # (B, 1) or None
    norm_h: object
    norm_hc: object
    config: StepConfig


def gru_step(a_x, h_prev, W_hh, *, norm_h=None, norm_hc=None):
    """Fused :func:`lnedu.functional.gru_step` (``reset="after"``, a case :func:`gru_supported` accepts):
    ``(h, cache)``. One cuBLAS product ``h_prev @ [W_h | U]``, then one ``gru_forward`` kernel."""
    xp = get_array_module(a_x)
    B, H = h_prev.shape
    cfg = gru_config(H, norm_h=norm_h, norm_hc=norm_hc)
    if cfg is None:
        raise ValueError(f"gru_step: the fused kernels do not take H={H} with norm_h={norm_h}, norm_hc={norm_hc}")
    dtype = a_x.dtype
    a_hh = _product(xp, h_prev, W_hh, dtype)  # ours: the kernel leaves the LNs' xhat in it
    a_x, h_prev = xp.ascontiguousarray(a_x), xp.ascontiguousarray(h_prev)
    h, h_hat = xp.empty((B, H), dtype=dtype), xp.empty((B, H), dtype=dtype)
    gates = xp.empty((B, 2 * H), dtype=dtype)
    rstd_h = xp.empty((B, cfg.groups_h), dtype=acc_dtype(dtype)) if cfg.groups_h else None
    rstd_hc = xp.empty((B, 1), dtype=acc_dtype(dtype)) if cfg.ln_c else None
    if B:
        launch(f"gru_forward<{DTYPES[dtype]}, {cfg.items}>", _kernels.forward_grid(B), cfg.threads,
               a_x, a_hh, h_prev, _param(xp, norm_h, "gain"), _param(xp, norm_h, "bias"),
               _param(xp, norm_hc, "gain"), _param(xp, norm_hc, "bias"), h, gates, h_hat, rstd_h, rstd_hc,
               np.int64(B), np.int32(H), np.int32(cfg.groups_h), np.int32(cfg.ln_c), _eps(norm_h), _eps(norm_hc))
    return h, FusedGRUCache(h_prev, W_hh, gates, h_hat, a_hh, rstd_h, rstd_hc, norm_h, norm_hc, cfg)


def gru_step_backward(dh, cache: FusedGRUCache, *, weight_grad: bool = True, out=None) -> GRUStepGrads:
    """Fused :func:`lnedu.functional.gru_step_backward` (for a :class:`FusedGRUCache`): one ``gru_backward``
    kernel, a column sum for the gains and biases, ``dh_{t-1} += da_hh [W_h | U]^T`` and ``dW`` with cuBLAS."""
    if not isinstance(cache, FusedGRUCache):
        raise TypeError(f"cache: expected a FusedGRUCache, got {type(cache).__name__}")
    h_prev, W_hh, gates, h_hat, xhat, rstd_h, rstd_hc, norm_h, norm_hc, cfg = cache
    xp = get_array_module(gates)
    B, H = h_prev.shape
    dtype = gates.dtype
    dh = xp.ascontiguousarray(dh, dtype=dtype)
    da_x = _output(xp, out, (B, 3 * H), dtype)
    da_hh = xp.empty((B, 3 * H), dtype=dtype)
    dh_prev = xp.empty((B, H), dtype=dtype)
    base_hc = 4 * H if cfg.groups_h else 0
    width = base_hc + (2 * H if cfg.ln_c else 0)
    sums = _kernels.launch_row_backward(
        f"gru_backward<{DTYPES[dtype]}, {cfg.items}>", B, cfg.threads, width, dtype,
        (dh, h_prev, gates, h_hat, xhat, rstd_h, rstd_hc, _param(xp, norm_h, "gain"), _param(xp, norm_hc, "gain"),
         _param(xp, norm_hc, "bias"), da_x, da_hh, dh_prev),
        (np.int64(B), np.int32(H), np.int32(cfg.groups_h), np.int32(cfg.ln_c)))
    da_x = _into(out, da_x)
    dh_prev += _product(xp, da_hh, W_hh.T, dtype)
    dW = _product(xp, h_prev.T, da_hh, dtype) if weight_grad else None
    return GRUStepGrads(da_x, dh_prev, dW, _norm_grads(norm_h, sums, 0, 2 * H), _norm_grads(norm_hc, sums, base_hc, H),
                        None, None, da_hh)


def name_expressions():
    """Every instantiation these functions can launch (for ahead-of-time compile checks), ``sum_columns``
    of layer_norm.cuh included."""
    out = []
    for T in KERNEL_TYPES:
        for items in _ITEMS:
            out += [f"{k}<{T}, {items}>" for k in ("lstm_forward", "lstm_backward", "gru_forward", "gru_backward")]
        out.append(f"sum_columns<{T}>")
    return out
