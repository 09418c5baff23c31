r"""Recurrent layers with backprop through time by hand: LSTM, GRU, MGU and a tanh RNN, each with or without
layer norm, and two rivals, recurrent batch norm (:class:`BNLSTM`) and normalization propagation
(:class:`NormPropLSTM`).

Every layer is time-major and has the same interface::

    layer = LSTM(D, H, ln="appendix")
    out, state = layer.forward(x, state=None, mask=None)    # x (T, B, D) -> out (T, B, H)
    dx, dstate0 = layer.backward(dout, dstate=None)          # BPTT; accumulates into layer.grads

``state`` is a tuple, ``(h, c)`` for the LSTM family and ``(h,)`` otherwise, each (B, H); ``None`` means zeros
(or the learned ``h0``/``c0`` with ``learn_h0=True``). The returned state is the final one, to pass to the next
call for truncated backprop through time: the next call's ``backward`` stops at the boundary and returns
``dstate0``, the gradient of the initial state it was given. ``mask`` (T, B) of 0/1 marks the real steps of
variable-length sequences: at a padded step the state stays as it was, the output is 0 and no gradient flows.

How a layer runs (the speed comes from here, the readability from :mod:`lnedu.functional.recurrent`):

1. the input term ``W_x x_t`` of all T steps is one ``(T*B, D) @ (D, kH)`` product, and its layer norm (when
   asked) one call over all ``T*B`` rows; the bias is added there too;
2. a Python loop over t calls the cell's step function (``lstm_step``, ``gru_step``, ...) with the recurrent
   weights, which reads like the paper's equations;
3. backward runs the step backwards in reverse, writing the gradients of each step's pre-activations into
   ``(T, B, kH)`` buffers; after the loop, ``dW_x`` and ``dW_h`` are one product each.

Layer norm placement (``ln=``): ``None``; ``"appendix"`` (the LN paper's supplementary cells: separate LNs of
``W_x x`` and ``W_h h`` over all stacked gates, LN of the LSTM cell on the output path); ``"eq4"`` (one LN of the
sum ``W_x x + W_h h``, the paper's Eq. 4); ``"cell"`` (LN of ``c`` only, the DRAW cell, LSTM only); or an
:class:`LNConfig`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np

from .. import functional as F
from .. import init as I
from .._checks import check_finite as _check_finite
from .._checks import check_float_array, check_positive, check_shape
from ..backend import get_array_module
from ..functional.recurrent import Norm, normprop_variances
from .layers import _check_size
from .module import Module

__all__ = [
    "LNConfig",
    "LN_PRESETS",
    "RecurrentLayer",
    "LSTM",
    "GRU",
    "MGU",
    "RNN",
    "BNLSTM",
    "NormPropLSTM",
    "StackedRNN",
    "normprop_variances",
]


# --------------------------------------------------------------------------------------------------
# where layer norm goes


@dataclass(frozen=True)
class LNConfig:
    """Where layer normalization goes in a recurrent cell (the switches Keras-style LN cells offer).

    * ``input``: normalize the input term ``W_x x_t`` (gains ``g_x``, biases ``b_x``; for GRU/MGU also the
      candidate's ``W_xc x_t``: ``g_xc``, ``b_xc``);
    * ``recurrent``: normalize the recurrent term ``W_h h_{t-1}`` (``g_h``, ``b_h``; GRU/MGU candidate ``g_hc``,
      ``b_hc``);
    * ``cell``: normalize the LSTM's cell on the output path, ``h = o * tanh(LN(c; g_c, b_c))``; the carried
      ``c`` stays un-normalized (LSTM only: the other cells have no memory cell and ignore it);
    * ``joint_sum``: one LN of the *sum* ``W_x x + W_h h`` (Eq. 4) instead of one per term; its gain is ``g``
      and its bias is the cell's bias ``b`` (GRU/MGU candidate: ``g_c``, ``b_c``); needs input and recurrent;
    * ``per_gate``: statistics over each gate's H units separately instead of over all stacked gates jointly
      (the LN paper's cells normalize the 4H (LSTM) or 2H (GRU) stacked pre-activations as one vector);
    * ``eps``: added to the variance inside the square root (1e-5, as in the paper's released code).

    Gains start at 1 and biases at 0. (The appendix says its "alpha" are additive and initialized to zeros and
    its "beta" multiplicative and initialized to ones; that is a typo: its own Eq. 15 makes alpha the gain,
    and §6 and the released code start gains at 1 and biases at 0.)
    """

    input: bool = True
    recurrent: bool = True
    cell: bool = True
    joint_sum: bool = False
    per_gate: bool = False
    eps: float = 1e-5

    def __post_init__(self):
        for f in fields(self):
            if f.name != "eps" and not isinstance(getattr(self, f.name), (bool, np.bool_)):
                raise TypeError(f"LNConfig.{f.name}: expected a bool, got {type(getattr(self, f.name)).__name__}")
        check_positive("LNConfig.eps", self.eps)
        if self.joint_sum and not (self.input and self.recurrent):
            raise ValueError(
                "LNConfig.joint_sum: one LN over the sum W_x x + W_h h needs input=True and recurrent=True, "
                f"got input={self.input}, recurrent={self.recurrent}"
            )

    @property
    def separate_input(self) -> bool:
        return bool(self.input and not self.joint_sum)

    @property
    def separate_recurrent(self) -> bool:
        return bool(self.recurrent and not self.joint_sum)


LN_PRESETS = {
    "appendix": LNConfig(input=True, recurrent=True, cell=True),
    "eq4": LNConfig(input=True, recurrent=True, cell=False, joint_sum=True),
    "cell": LNConfig(input=False, recurrent=False, cell=True),
}


def _resolve_ln(ln, layer: str, has_cell: bool):
    """``ln`` as an :class:`LNConfig`, or ``None`` when it normalizes nothing this layer has."""
    if ln is None:
        return None
    if isinstance(ln, str):
        if ln not in LN_PRESETS:
            raise ValueError(f"ln: expected None, an LNConfig or one of {sorted(LN_PRESETS)}, got {ln!r}")
        cfg = LN_PRESETS[ln]
    elif isinstance(ln, LNConfig):
        cfg = ln
    else:
        raise TypeError(f"ln: expected None, a preset name or an LNConfig, got {type(ln).__name__}")
    if not has_cell and cfg.cell and not (cfg.input or cfg.recurrent):
        raise ValueError(f"ln: {ln!r} normalizes only the LSTM's memory cell, and {layer} has none")
    if not (cfg.input or cfg.recurrent or (cfg.cell and has_cell)):
        return None
    return cfg


def _weights(init):
    """The initializer ``init`` (name or callable), returning C-contiguous arrays (a wide orthogonal draw is a
    transposed view, and the gradient checks, like BLAS calls, want C order)."""
    make = I.get(init)

    def draw(shape, rng, dtype):
        W = make(shape, rng, dtype)
        return get_array_module(W).ascontiguousarray(W)

    return draw


def _check_bias_value(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__}")
    if not np.isfinite(value):
        raise ValueError(f"{name}: expected a finite number, got {value!r}")
    return float(value)


# --------------------------------------------------------------------------------------------------
# the shared machinery: checks, state, mask, the time loop


class RecurrentLayer(Module):
    """Base class: argument checks, initial state, masking and the time loops of forward and backward.

    A subclass supplies the input term (``_input_term`` / ``_input_term_backward``), the per-sequence set-up of
    the recurrent weights (``_begin``), one step (``_step`` / ``_step_backward``) and the recurrent weights'
    gradients after the loop (``_recurrent_grads``).
    """

    _state_names = ("h",)

    def _init_common(self, input_size, hidden_size, learn_h0, dtype, check_finite):
        self.input_size = _check_size("input_size", input_size)
        self.hidden_size = _check_size("hidden_size", hidden_size)
        self._init_dtype = np.dtype(dtype)
        if self._init_dtype.kind != "f":
            raise TypeError(f"dtype: expected a floating-point dtype (float32 or float64), got {self._init_dtype}")
        self.learn_h0 = bool(learn_h0)
        self.check_finite = bool(check_finite)
        self._cache = None

    def _add_initial_state(self):
        if self.learn_h0:
            for n in self._state_names:
                self.add_param(n + "0", I.zeros((self.hidden_size,), dtype=self.dtype))

    def _weight_dtype(self):
        return self.params["W_x"].dtype

    @property
    def dtype(self):
        """The parameters' dtype (it follows :meth:`astype`)."""
        return self.params["W_x"].dtype if "W_x" in self.params else self._init_dtype

    # ---- checks --------------------------------------------------------------------------------------
    def _check_x(self, x):
        check_float_array("x", x, ndim=3)
        T, B, D = x.shape
        if D != self.input_size:
            raise ValueError(f"x: expected shape (T, B, {self.input_size}) (input_size={self.input_size}), "
                             f"got {tuple(x.shape)}")
        if T < 1 or B < 1:
            raise ValueError(f"x: expected at least one time step and one sequence, got shape {tuple(x.shape)}")
        dtype = self._weight_dtype()
        if x.dtype != dtype:
            raise TypeError(f"x: expected dtype {dtype} (the layer's parameters'), got {x.dtype}")

    def _check_mask(self, mask, T, B, xp):
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

    def _check_state(self, name, state, B, xp, allow_none_entries=False, cast=False):
        n = len(self._state_names)
        if not isinstance(state, (tuple, list)) or len(state) != n:
            names = "(" + ", ".join(self._state_names) + ("," if n == 1 else "") + ")"
            got = f"a {type(state).__name__} of length {len(state)}" if isinstance(state, (tuple, list)) else \
                type(state).__name__
            raise TypeError(f"{name}: expected a tuple {names} of (B, H) arrays, got {got}")
        out = []
        dtype = self._weight_dtype()
        for k, s in enumerate(state):
            label = f"{name}[{k}] ({self._state_names[k]})"
            if s is None and allow_none_entries:
                out.append(None)
                continue
            check_float_array(label, s, ndim=2)
            check_shape(label, s, (B, self.hidden_size))
            if cast:
                s = s.astype(dtype, copy=False)
            elif s.dtype != dtype:
                raise TypeError(f"{label}: expected dtype {dtype} (the layer's parameters'), got {s.dtype}")
            out.append(s)
        return tuple(out)

    def _initial_state(self, state, B, xp):
        H = self.hidden_size
        dtype = self._weight_dtype()
        if state is None:
            if self.learn_h0:
                return tuple(xp.broadcast_to(self.params[n + "0"], (B, H)).copy() for n in self._state_names), True
            return tuple(xp.zeros((B, H), dtype=dtype) for _ in self._state_names), False
        return self._check_state("state", state, B, xp), False

    # ---- forward / backward -----------------------------------------------------------------------------
    def forward(self, x, state=None, mask=None, *, check_finite=None):
        """Run the layer over ``x`` (T, B, D); returns ``(out, state)``: out (T, B, H), the final state tuple.

        ``state``: the initial state tuple (``None``: zeros, or the learned ``h0``); ``mask`` (T, B) of 0/1 or
        bool (``None``: every step real). ``check_finite`` (default: the layer's setting) also checks that
        ``x`` and the state hold no NaN/inf.
        """
        self._check_x(x)
        xp = get_array_module(x)
        T, B, _ = x.shape
        mask = self._check_mask(mask, T, B, xp)
        state0, learned = self._initial_state(state, B, xp)
        if self.check_finite if check_finite is None else check_finite:
            _check_finite("x", x)
            for k, s in enumerate(state0):
                _check_finite(f"state[{k}]", s)
        self._cache = None
        out, final, cache = self._forward(x, state0, mask)
        self._cache = (cache, T, B, mask, learned)
        return out, final

    def backward(self, dout, dstate=None):
        """Backprop through time: returns ``(dx, dstate0)`` and accumulates the parameters' gradients.

        ``dout`` (T, B, H): gradient of the outputs (``None``: zero); ``dstate``: gradient of the returned final
        state, a tuple like the state (``None``, or ``None`` entries: zero). ``dstate0`` is the gradient of the
        initial state (a tuple of (B, H) arrays); with a learned initial state it is also summed into ``h0``.
        """
        if self._cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward: call forward first")
        cache, T, B, mask, learned = self._cache
        H = self.hidden_size
        xp = get_array_module(self.params["W_x"])
        dtype = self._weight_dtype()
        if dout is not None:
            check_float_array("dout", dout, ndim=3)
            check_shape("dout", dout, (T, B, H))
            dout = dout.astype(dtype, copy=False)  # a float64 upstream gradient computes in the layer's dtype
        if dstate is None:
            dstate = (None,) * len(self._state_names)
        dstate = self._check_state("dstate", dstate, B, xp, allow_none_entries=True, cast=True)
        dstate = tuple(xp.zeros((B, H), dtype=dtype) if d is None else d for d in dstate)
        dx, dstate0 = self._backward(cache, dout, dstate, mask)
        if learned:
            for n, d in zip(self._state_names, dstate0):
                self.grads[n + "0"] += d.sum(axis=0)
        return dx, dstate0

    def _forward(self, x, state0, mask):
        xp = get_array_module(x)
        T, B, _ = x.shape
        H = self.hidden_size
        A, icache = self._input_term(x)
        ctx = self._begin(xp, T)
        Hs = xp.empty((T + 1, B, H), dtype=x.dtype)  # h_0 .. h_T: the recurrent products' inputs
        Hs[0] = state0[0]
        out = None if mask is None else xp.empty((T, B, H), dtype=x.dtype)
        caches = []
        state = state0
        for t in range(T):
            new, cache = self._step(t, A[t], state, ctx)
            if mask is not None:  # a padded step keeps the state and outputs 0
                m = mask[t][:, None]
                out[t] = xp.where(m, new[0], 0)
                new = tuple(xp.where(m, n, s) for n, s in zip(new, state))
            Hs[t + 1] = new[0]
            caches.append(cache)
            state = (Hs[t + 1],) + tuple(new[1:])  # the next step reads h from the buffer: h is stored once
        if mask is None:
            out = Hs[1:].copy()
        final = tuple(s.copy() for s in state)
        return out, final, (A.shape, icache, ctx, Hs, caches)

    def _backward(self, cache, dout, dstate, mask):
        A_shape, icache, ctx, Hs, caches = cache
        xp = get_array_module(Hs)
        T = len(caches)
        dA = xp.empty(A_shape, dtype=Hs.dtype)
        bufs = self._begin_backward(xp, ctx, Hs)
        ds = dstate
        for t in reversed(range(T)):
            d = list(ds)
            if dout is not None:
                d[0] = d[0] + dout[t]
            if mask is not None:
                m = mask[t][:, None]
                keep = [xp.where(m, 0, di) for di in ds]  # a padded step passes the state's gradient through
                d = [xp.where(m, di, 0) for di in d]
            dprev = self._step_backward(t, d, caches[t], ctx, dA[t], bufs)
            if mask is not None:
                dprev = [dp + k for dp, k in zip(dprev, keep)]
            ds = tuple(dprev)
        dx = self._input_term_backward(dA, icache)
        self._recurrent_grads(ctx, Hs, caches, bufs, dA)
        return dx, ds

    def _acc(self, names, grads):
        """Add a step's (dgain, dbias) of a norm into ``self.grads`` under ``names``."""
        if grads is None:
            return
        for name, g in zip(names, grads):
            if name is not None and g is not None:
                self.grads[name] += g

    # subclass hooks
    def _input_term(self, x):  # pragma: no cover - abstract
        raise NotImplementedError

    def _input_term_backward(self, dA, icache):  # pragma: no cover - abstract
        raise NotImplementedError

    def _begin(self, xp, T):  # pragma: no cover - abstract
        raise NotImplementedError

    def _begin_backward(self, xp, ctx, Hs):
        return None

    def _step(self, t, a_t, state, ctx):  # pragma: no cover - abstract
        raise NotImplementedError

    def _step_backward(self, t, d, cache, ctx, dA_t, bufs):  # pragma: no cover - abstract
        raise NotImplementedError

    def _recurrent_grads(self, ctx, Hs, caches, bufs, dA):  # pragma: no cover - abstract
        raise NotImplementedError

    def extra_repr(self):
        return f"{self.input_size}, {self.hidden_size}"


# --------------------------------------------------------------------------------------------------
# LSTM, GRU, MGU and RNN with the layer-norm placements


class _LNRecurrent(RecurrentLayer):
    """The four plain cells with optional layer norm, described by two numbers.

    ``_gates``: how many H-unit blocks the gate pre-activation stacks (LSTM 4, GRU 2, MGU 1, RNN 1);
    ``_candidate``: whether a separate candidate ``h_hat`` has its own weights ``W_xc``, ``W_hc`` and bias
    ``b_c`` (GRU, MGU). Parameters, in the order they are created (the weights drawn from ``rng`` first):
    ``W_x`` (D, kH), ``W_h`` (H, kH), [``W_xc`` (D, H), ``W_hc`` (H, H)], ``b`` (kH,), [``b_c`` (H,)], then the
    layer-norm gains and biases the configuration asks for, then ``h0`` [, ``c0``].
    """

    _gates = 1
    _candidate = False
    _has_cell = False
    _candidate_reads_h = False  # the candidate's product takes h itself (GRU "after"), not a gated h

    def _build(self, ln, init, gate_bias, rng):
        H, D, k = self.hidden_size, self.input_size, self._gates
        self.ln = _resolve_ln(ln, type(self).__name__, self._has_cell)
        self.ln_name = ln if isinstance(ln, str) else None
        rng = I.as_rng(rng)
        make = _weights(init)
        self.add_param("W_x", make((D, k * H), rng, self.dtype))
        self.add_param("W_h", make((H, k * H), rng, self.dtype))
        if self._candidate:
            self.add_param("W_xc", make((D, H), rng, self.dtype))
            self.add_param("W_hc", make((H, H), rng, self.dtype))
        b = self.add_param("b", I.zeros((k * H,), dtype=self.dtype))
        b[:H] = gate_bias
        if self._candidate:
            self.add_param("b_c", I.zeros((H,), dtype=self.dtype))
        cfg = self.ln
        if cfg is not None:
            ones, zeros = (lambda n: I.ones((n,), dtype=self.dtype)), (lambda n: I.zeros((n,), dtype=self.dtype))
            if cfg.separate_input:
                self.add_param("g_x", ones(k * H))
                self.add_param("b_x", zeros(k * H))
                if self._candidate:
                    self.add_param("g_xc", ones(H))
                    self.add_param("b_xc", zeros(H))
            if cfg.separate_recurrent:
                self.add_param("g_h", ones(k * H))
                self.add_param("b_h", zeros(k * H))
                if self._candidate:
                    self.add_param("g_hc", ones(H))
                    self.add_param("b_hc", zeros(H))
            if cfg.joint_sum:
                self.add_param("g", ones(k * H))
                if self._candidate:
                    self.add_param("g_c", ones(H))
            if cfg.cell and self._has_cell:
                self.add_param("g_c", ones(H))
                self.add_param("b_c", zeros(H))
        self._add_initial_state()

    @property
    def _groups(self):
        return self._gates if (self.ln is not None and self.ln.per_gate) else 1

    def _ln(self, g, b):
        return Norm.layer(self.params[g], self.params[b], self.ln.eps)

    def _ln_gates(self, g, b):
        return Norm.layer(self.params[g], self.params[b], self.ln.eps, self._groups)

    # ---- input term: all T steps at once --------------------------------------------------------------
    def _input_term(self, x):
        T, B, D = x.shape
        kH = self._gates * self.hidden_size
        xp = get_array_module(x)
        p, cfg = self.params, self.ln
        X = x.reshape(T * B, D)
        W = xp.concatenate([p["W_x"], p["W_xc"]], axis=1) if self._candidate else p["W_x"]
        A = X @ W
        caches = None
        if cfg is not None and cfg.separate_input:
            if self._candidate:
                yg, cg = F.normalize(A[:, :kH], self._ln_gates("g_x", "b_x"))
                yc, cc = F.normalize(A[:, kH:], self._ln("g_xc", "b_xc"))
                A[:, :kH] = yg
                A[:, kH:] = yc
                caches = (cg, cc)
            else:
                A, cg = F.normalize(A, self._ln_gates("g_x", "b_x"))
                caches = (cg,)
        if cfg is None or not cfg.joint_sum:  # with joint_sum, b is the joint LN's bias (inside the step)
            A += xp.concatenate([p["b"], p["b_c"]]) if self._candidate else p["b"]
        return A.reshape(T, B, A.shape[-1]), (X, W, caches)

    def _input_term_backward(self, dA, icache):
        X, W, caches = icache
        T, B, K = dA.shape
        kH = self._gates * self.hidden_size
        dA = dA.reshape(T * B, K)
        cfg = self.ln
        if cfg is None or not cfg.joint_sum:
            db = dA.sum(axis=0)
            self.grads["b"] += db[:kH]
            if self._candidate:
                self.grads["b_c"] += db[kH:]
        if caches is not None:
            if self._candidate:
                dg, dgg, dgb = F.normalize_backward(dA[:, :kH], caches[0])
                dc, dcg, dcb = F.normalize_backward(dA[:, kH:], caches[1])
                dA[:, :kH] = dg
                dA[:, kH:] = dc
                self._acc(("g_x", "b_x", "g_xc", "b_xc"), (dgg, dgb, dcg, dcb))
            else:
                dA, dgg, dgb = F.normalize_backward(dA, caches[0])
                self._acc(("g_x", "b_x"), (dgg, dgb))
        dW = X.T @ dA
        self.grads["W_x"] += dW[:, :kH]
        if self._candidate:
            self.grads["W_xc"] += dW[:, kH:]
        return (dA @ W.T).reshape(T, B, X.shape[1])

    # ---- the recurrence -----------------------------------------------------------------------------------
    def _begin(self, xp, T):
        p, cfg = self.params, self.ln
        W_hh = xp.concatenate([p["W_h"], p["W_hc"]], axis=1) if self._candidate else p["W_h"]
        norms = dict(norm_h=None, norm_a=None)
        if self._candidate:
            norms.update(norm_hc=None, norm_ac=None)
        if cfg is not None:
            if cfg.separate_recurrent:
                norms["norm_h"] = self._ln_gates("g_h", "b_h")
                if self._candidate:
                    norms["norm_hc"] = self._ln("g_hc", "b_hc")
            if cfg.joint_sum:
                norms["norm_a"] = self._ln_gates("g", "b")
                if self._candidate:
                    norms["norm_ac"] = self._ln("g_c", "b_c")
            if cfg.cell and self._has_cell:
                norms["norm_c"] = self._ln("g_c", "b_c")
        return {"W_hh": W_hh, "norms": norms}

    _norm_params = {
        "norm_h": ("g_h", "b_h"),
        "norm_hc": ("g_hc", "b_hc"),
        "norm_a": ("g", "b"),
        "norm_ac": ("g_c", "b_c"),
        "norm_c": ("g_c", "b_c"),
    }

    def _acc_norms(self, g):
        for field in ("norm_h", "norm_hc", "norm_a", "norm_ac", "norm_c"):
            self._acc(self._norm_params[field], getattr(g, field, None))

    def _begin_backward(self, xp, ctx, Hs):
        """A buffer for the recurrent products' gradients when they differ from the input term's."""
        T1, B, H = Hs.shape
        if self._candidate:
            return xp.empty((T1 - 1, B, ctx["W_hh"].shape[1]), dtype=Hs.dtype)
        if ctx["norms"]["norm_h"] is not None:
            return xp.empty((T1 - 1, B, self._gates * H), dtype=Hs.dtype)
        return None

    def _recurrent_grads(self, ctx, Hs, caches, bufs, dA):
        """``dW = sum_t (input of the product at t)^T (gradient of the product at t)``, one GEMM per matrix."""
        T1, B, H = Hs.shape
        dAH = dA if bufs is None else bufs
        Hprev = Hs[:-1].reshape(-1, H)
        kH = self._gates * H
        if not self._candidate:
            self.grads["W_h"] += Hprev.T @ dAH.reshape(-1, kH)
        elif self._candidate_reads_h:
            dW = Hprev.T @ dAH.reshape(-1, kH + H)
            self.grads["W_h"] += dW[:, :kH]
            self.grads["W_hc"] += dW[:, kH:]
        else:
            xp = get_array_module(Hs)
            RH = xp.stack([self._candidate_input(c) for c in caches]).reshape(-1, H)
            dAH = dAH.reshape(-1, kH + H)
            self.grads["W_h"] += Hprev.T @ dAH[:, :kH]
            self.grads["W_hc"] += RH.T @ dAH[:, kH:]

    def extra_repr(self):
        ln = self.ln_name if self.ln_name is not None else self.ln
        return f"{self.input_size}, {self.hidden_size}, ln={ln!r}"


class LSTM(_LNRecurrent):
    r"""Long short-term memory, the LN paper's Eq. 17-22, with layer norm where ``ln`` says.

    .. math::
        (a_f; a_i; a_o; a_g) &= N_h(W_h h_{t-1}) + N_x(W_x x_t) + b,\qquad
        c_t = \sigma(a_f)\odot c_{t-1} + \sigma(a_i)\odot\tanh(a_g),\qquad
        h_t = \sigma(a_o)\odot\tanh(N_c(c_t))

    with ``N`` the identity (``ln=None``) or layer norms (``ln="appendix"``: Eq. 20-22, the N's over all 4H
    stacked gates; ``"eq4"``: one LN of the sum, ``LN(W_h h + W_x x; g, b)``; ``"cell"``: only ``N_c``, DRAW's
    Eq. 29-31). The layer norm of ``c`` is on the output path only; the carried cell is not normalized.

    Gate order f, i, o, g along the 4H axis (the paper's Eq. 17). Parameters: ``W_x`` (D, 4H), ``W_h``
    (H, 4H), ``b`` (4H,) with ``forget_bias`` in its forget block; with layer norm ``g_x, b_x`` (4H,)
    (input LN), ``g_h, b_h`` (4H,) (recurrent LN), ``g_c, b_c`` (H,) (cell LN) or ``g`` (4H,) (joint LN, whose
    bias is ``b``); the appendix's alpha_1/beta_1, alpha_2/beta_2, alpha_3/beta_3 are ``g_h``/``b_h``,
    ``g_x``/``b_x``, ``g_c``/``b_c``. With the appendix placement ``b_x``, ``b_h`` and ``b`` add to one pre-activation;
    the paper (and its code) keeps the three, and so does this layer. ``learn_h0=True`` adds ``h0``, ``c0`` (H,).
    ``init`` (name or callable from :mod:`lnedu.init`) draws ``W_x`` and ``W_h`` (orthogonal: per (H, H) block).
    """

    _gates = 4
    _has_cell = True
    _state_names = ("h", "c")

    def __init__(self, input_size, hidden_size, *, ln=None, init="orthogonal", forget_bias=1.0, learn_h0=False,
                 rng=None, dtype=np.float32, check_finite=False):
        super().__init__()
        self._init_common(input_size, hidden_size, learn_h0, dtype, check_finite)
        self.forget_bias = _check_bias_value("forget_bias", forget_bias)
        self._build(ln, init, self.forget_bias, rng)

    def _begin(self, xp, T):
        ctx = super()._begin(xp, T)
        ctx["norms"].setdefault("norm_c", None)
        return ctx

    def _step(self, t, a_t, state, ctx):
        h, c, cache = F.lstm_step(a_t, state[0], state[1], ctx["W_hh"], **ctx["norms"])
        return (h, c), cache

    def _step_backward(self, t, d, cache, ctx, dA_t, bufs):
        g = F.lstm_step_backward(d[0], d[1], cache, weight_grad=False, out=dA_t)
        if bufs is not None:
            bufs[t] = g.a_h
        self._acc_norms(g)
        return g.h_prev, g.c_prev


class GRU(_LNRecurrent):
    r"""Gated recurrent unit, the LN paper's Eq. 23-28, with the reset ``"after"`` (paper) or ``"before"`` ``U``.

    .. math::
        (a_z; a_r) &= N_h(W_h h_{t-1}) + N_x(W_x x_t) + b,\qquad z = \sigma(a_z),\ r = \sigma(a_r)\\
        \hat h_t &= \tanh\big(N_{xc}(W_{xc} x_t) + r\odot N_{hc}(W_{hc} h_{t-1}) + b_c\big)
        \quad\text{or, before: } \tanh\big(N_{xc}(W_{xc}x_t) + N_{hc}(W_{hc}(r\odot h_{t-1})) + b_c\big)\\
        h_t &= (1-z)\odot h_{t-1} + z\odot\hat h_t

    ``ln="appendix"``: the four separate LNs of Eq. 26-27 (``N_x``, ``N_h`` over the 2H stacked gates);
    ``"eq4"``: one LN of each sum, ``LN(W_h h + W_x x; g, b)`` and ``LN(W_xc x + r*(W_hc h); g_c, b_c)``.
    The update follows Eq. 28, ``(1-z) h + z h_hat`` (the paper's released code uses the opposite).
    "before" is Cho et al.'s v3 cell, also Hafner's LN-GRU.

    Gate order z, r. Parameters: ``W_x`` (D, 2H), ``W_h`` (H, 2H), ``b`` (2H,) (the gates: the paper's
    ``W_x``, ``W_h``); ``W_xc`` (D, H), ``W_hc`` (H, H), ``b_c`` (H,) (the candidate: the paper's ``W``, ``U``);
    with LN ``g_x, b_x, g_h, b_h`` (2H,) and ``g_xc, b_xc, g_hc, b_hc`` (H,) (the paper's alpha_2/beta_2,
    alpha_1/beta_1, alpha_3/beta_3, alpha_4/beta_4), or ``g`` (2H,), ``g_c`` (H,) for the joint LNs. The
    paper's GRU has no ``b``, ``b_c``; they are kept here (redundant with the LN biases, as in its LSTM) so that
    ``update_bias`` (added to ``b``'s z block at init; negative keeps more of h) has a home.
    """

    _gates = 2
    _candidate = True

    def __init__(self, input_size, hidden_size, *, reset="after", ln=None, init="orthogonal", update_bias=0.0,
                 learn_h0=False, rng=None, dtype=np.float32, check_finite=False):
        super().__init__()
        if reset not in ("after", "before"):
            raise ValueError(f"reset: expected 'after' or 'before', got {reset!r}")
        self.reset = reset
        self._candidate_reads_h = reset == "after"
        self._init_common(input_size, hidden_size, learn_h0, dtype, check_finite)
        self.update_bias = _check_bias_value("update_bias", update_bias)
        self._build(ln, init, self.update_bias, rng)

    def _step(self, t, a_t, state, ctx):
        h, cache = F.gru_step(a_t, state[0], ctx["W_hh"], reset=self.reset, **ctx["norms"])
        return (h,), cache

    def _step_backward(self, t, d, cache, ctx, dA_t, bufs):
        g = F.gru_step_backward(d[0], cache, weight_grad=False, out=dA_t)
        bufs[t] = g.a_hh
        self._acc_norms(g)
        return (g.h_prev,)

    @staticmethod
    def _candidate_input(cache):
        return cache.rh

    def extra_repr(self):
        return super().extra_repr() + f", reset={self.reset!r}"


class MGU(_LNRecurrent):
    r"""Minimal gated unit (Zhou et al. 2016): one gate ``f`` serves as the GRU's reset and update.

    .. math::
        f_t = \sigma\big(N_h(W_h h_{t-1}) + N_x(W_x x_t) + b\big),\quad
        \hat h_t = \tanh\big(N_{xc}(W_{xc}x_t) + N_{hc}(W_{hc}(f_t\odot h_{t-1})) + b_c\big),\quad
        h_t = (1-f_t)\odot h_{t-1} + f_t\odot\hat h_t

    No paper places layer norm in the MGU; ``ln`` puts it where the LN paper puts it in the GRU (separate LNs
    of ``W_x x``, ``W_h h``, ``W_xc x``, ``W_hc (f h)``; or one LN of each sum with ``"eq4"``).
    Parameters: ``W_x`` (D, H), ``W_h`` (H, H), ``b`` (H,) (the gate; ``gate_bias`` at init: a large ``f``
    takes more of the candidate), ``W_xc`` (D, H), ``W_hc`` (H, H), ``b_c`` (H,) (the candidate), and the LN
    gains/biases named as in :class:`GRU`.
    """

    _gates = 1
    _candidate = True

    def __init__(self, input_size, hidden_size, *, ln=None, init="orthogonal", gate_bias=0.0, learn_h0=False,
                 rng=None, dtype=np.float32, check_finite=False):
        super().__init__()
        self._init_common(input_size, hidden_size, learn_h0, dtype, check_finite)
        self.gate_bias = _check_bias_value("gate_bias", gate_bias)
        self._build(ln, init, self.gate_bias, rng)

    def _step(self, t, a_t, state, ctx):
        h, cache = F.mgu_step(a_t, state[0], ctx["W_hh"], **ctx["norms"])
        return (h,), cache

    def _step_backward(self, t, d, cache, ctx, dA_t, bufs):
        g = F.mgu_step_backward(d[0], cache, weight_grad=False, out=dA_t)
        bufs[t] = g.a_hh
        self._acc_norms(g)
        return (g.h_prev,)

    @staticmethod
    def _candidate_input(cache):
        return cache.fh


class RNN(_LNRecurrent):
    r"""Plain tanh RNN: :math:`h_t = \tanh\big(N_h(W_h h_{t-1}) + N_x(W_x x_t) + b\big)`.

    ``ln="eq4"`` is the LN paper's Eq. 4 exactly: :math:`h_t = \tanh\big(LN(W_h h_{t-1} + W_x x_t; g, b)\big)`;
    ``"appendix"`` (or an :class:`LNConfig`) normalizes the two terms separately (``g_x, b_x, g_h, b_h``).
    Parameters: ``W_x`` (D, H), ``W_h`` (H, H), ``b`` (H,), and the LN gains/biases.
    """

    _gates = 1

    def __init__(self, input_size, hidden_size, *, ln=None, init="orthogonal", learn_h0=False, rng=None,
                 dtype=np.float32, check_finite=False):
        super().__init__()
        self._init_common(input_size, hidden_size, learn_h0, dtype, check_finite)
        self._build(ln, init, 0.0, rng)

    def _step(self, t, a_t, state, ctx):
        h, cache = F.rnn_step(a_t, state[0], ctx["W_hh"], **ctx["norms"])
        return (h,), cache

    def _step_backward(self, t, d, cache, ctx, dA_t, bufs):
        g = F.rnn_step_backward(d[0], cache, weight_grad=False, out=dA_t)
        if bufs is not None:
            bufs[t] = g.a_h
        self._acc_norms(g)
        return (g.h_prev,)


# --------------------------------------------------------------------------------------------------
# the rivals: recurrent batch norm and normalization propagation


class _LSTMFamily(RecurrentLayer):
    """LSTM cells whose normalizations are not layer norms: shared step and recurrent-weight plumbing."""

    _state_names = ("h", "c")
    _norm_params = {"norm_h": ("g_h", None), "norm_a": (None, None), "norm_c": ("g_c", "b_c")}

    def _step(self, t, a_t, state, ctx):
        norm_h, norm_c = self._step_norms(t, ctx)
        h, c, cache = F.lstm_step(a_t, state[0], state[1], ctx["W_hh"], norm_h=norm_h, norm_c=norm_c,
                                  out_scale=ctx.get("out_scale"))
        return (h, c), cache

    def _step_backward(self, t, d, cache, ctx, dA_t, bufs):
        g = F.lstm_step_backward(d[0], d[1], cache, weight_grad=False, out=dA_t)
        if bufs is not None:
            bufs[t] = g.a_h
        self._acc(self._norm_params["norm_h"], g.norm_h)
        self._acc(self._norm_params["norm_c"], g.norm_c)
        return g.h_prev, g.c_prev


class BNLSTM(_LSTMFamily):
    r"""Batch-normalized LSTM (Cooijmans et al., "Recurrent Batch Normalization", Eq. 6-8).

    .. math::
        (a_f; a_i; a_o; a_g) = BN(W_h h_{t-1}; \gamma_h, 0) + BN(W_x x_t; \gamma_x, 0) + b,\qquad
        h_t = \sigma(a_o)\odot\tanh(BN(c_t; \gamma_c, \beta_c))

    with the cell update of the plain LSTM (the carried ``c_t`` is not normalized). The input and recurrent
    terms are normalized separately, with ``beta_x = beta_h = 0`` (the bias ``b`` covers them).

    Statistics are per time step: in training, each step's mini-batch mean and variance over the B sequences
    (B >= 2; the padded rows of a masked batch count too); running averages
    ``running = (1 - momentum) running + momentum batch`` are kept for every step, and in eval mode step t
    uses step t's population statistics, or the last step's beyond the longest sequence trained on.
    ``max_steps``: how many steps get their own statistics (``None``: as many as the longest training
    sequence so far; the buffers grow). Training steps beyond ``max_steps`` pool into the last slot.

    Parameters: ``W_x`` (D, 4H), ``W_h`` (H, 4H), ``b`` (4H,) (gate order f, i, o, g; ``forget_bias`` in the f
    block), gains ``g_x``, ``g_h`` (4H,) and ``g_c`` (H,), all initialized to ``gamma`` (0.1: with 1 the tanh
    saturates, the paper's Figure 1), and ``b_c`` (H,) = 0. Buffers: ``running_mean_x``, ``running_var_x``,
    ``running_mean_h``, ``running_var_h`` (S, 4H) and ``running_mean_c``, ``running_var_c`` (S, H).
    """

    def __init__(self, input_size, hidden_size, *, gamma=0.1, max_steps=None, momentum=0.1, eps=1e-5,
                 init="orthogonal", forget_bias=1.0, learn_h0=False, rng=None, dtype=np.float32,
                 check_finite=False):
        super().__init__()
        self._init_common(input_size, hidden_size, learn_h0, dtype, check_finite)
        self.gamma = check_positive("gamma", gamma)
        if max_steps is not None:
            max_steps = _check_size("max_steps", max_steps)
        self.max_steps = max_steps
        if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) or not 0 < momentum <= 1:
            raise ValueError(f"momentum: expected a number in (0, 1], got {momentum!r}")
        self.momentum = float(momentum)
        self.eps = check_positive("eps", eps)
        self.forget_bias = _check_bias_value("forget_bias", forget_bias)
        H, D = self.hidden_size, self.input_size
        rng = I.as_rng(rng)
        make = _weights(init)
        self.add_param("W_x", make((D, 4 * H), rng, self.dtype))
        self.add_param("W_h", make((H, 4 * H), rng, self.dtype))
        b = self.add_param("b", I.zeros((4 * H,), dtype=self.dtype))
        b[:H] = self.forget_bias
        for name, n in (("g_x", 4 * H), ("g_h", 4 * H), ("g_c", H)):
            self.add_param(name, I.constant(self.gamma)((n,), dtype=self.dtype))
        self.add_param("b_c", I.zeros((H,), dtype=self.dtype))
        self._add_initial_state()
        self._resize_stats(max_steps or 1)

    _STATS = (("x", 4), ("h", 4), ("c", 1))

    @property
    def stat_steps(self) -> int:
        """How many time steps have their own population statistics."""
        return int(self.buffers["running_mean_x"].shape[0])

    def _resize_stats(self, S):
        """Make the population-statistics buffers hold ``S`` steps (new steps start at mean 0, variance 1)."""
        H = self.hidden_size
        for key, k in self._STATS:
            for stat, fill in (("mean", 0.0), ("var", 1.0)):
                name = f"running_{stat}_{key}"
                new = I.constant(fill)((S, k * H), dtype=self._weight_dtype())
                old = self.buffers.get(name)
                if old is not None:
                    n = min(S, old.shape[0])
                    new[:n] = old[:n]
                self.buffers[name] = new

    def load_state_dict(self, state: dict):
        """As :meth:`Module.load_state_dict`; with ``max_steps=None`` the statistics take the saved length."""
        key = "buffer:running_mean_x"
        if self.max_steps is None and key in state:
            self._resize_stats(int(np.shape(state[key])[0]))
        return super().load_state_dict(state)

    def forward(self, x, state=None, mask=None, *, check_finite=None):
        if self.training and hasattr(x, "shape") and getattr(x, "ndim", 0) == 3 and x.shape[1] < 2:
            raise ValueError("x: BNLSTM in training mode needs a batch of at least 2 sequences (batch "
                             f"statistics), got B={x.shape[1]}")
        return super().forward(x, state, mask, check_finite=check_finite)

    def _slots(self, T):
        return np.minimum(np.arange(T), self.stat_steps - 1)

    def _input_term(self, x):
        T, B, D = x.shape
        p = self.params
        X = x.reshape(T * B, D)
        A = (X @ p["W_x"]).reshape(T, B, -1)
        if self.training:
            A, cache = F.stepwise_batch_norm(A, p["g_x"], None, self.eps)
            kind = "batch"
        else:
            xp = get_array_module(x)
            s = xp.asarray(self._slots(T))
            norm = Norm.fixed(p["g_x"], None, mean=self.buffers["running_mean_x"][s][:, None],
                              var=self.buffers["running_var_x"][s][:, None], eps=self.eps)
            A, cache = F.normalize(A, norm)
            kind = "fixed"
        A += p["b"]
        return A, (X, kind, cache)

    def _input_term_backward(self, dA, icache):
        X, kind, cache = icache
        T, B, K = dA.shape
        self.grads["b"] += dA.reshape(-1, K).sum(axis=0)
        if kind == "batch":
            dA, dg, _ = F.stepwise_batch_norm_backward(dA, cache)
        else:
            dA, dg, _ = F.normalize_backward(dA, cache)
        self.grads["g_x"] += dg
        dA = dA.reshape(T * B, K)
        self.grads["W_x"] += X.T @ dA
        return (dA @ self.params["W_x"].T).reshape(T, B, -1)

    def _begin(self, xp, T):
        return {"W_hh": self.params["W_h"], "slots": self._slots(T)}

    def _step_norms(self, t, ctx):
        p = self.params
        if self.training:
            return Norm.batch(p["g_h"], None, self.eps), Norm.batch(p["g_c"], p["b_c"], self.eps)
        s, buf = int(ctx["slots"][t]), self.buffers
        norm_h = Norm.fixed(p["g_h"], None, mean=buf["running_mean_h"][s], var=buf["running_var_h"][s], eps=self.eps)
        norm_c = Norm.fixed(p["g_c"], p["b_c"], mean=buf["running_mean_c"][s], var=buf["running_var_c"][s],
                            eps=self.eps)
        return norm_h, norm_c

    def _forward(self, x, state0, mask):
        out, final, cache = super()._forward(x, state0, mask)
        if self.training:  # the batch statistics the caches hold, per step: (T, K) means and variances
            xp = get_array_module(x)
            _, (_, _, bn_x), _, _, caches = cache
            stats = {"x": (bn_x.mean, bn_x.var)}
            for key in ("h", "c"):
                inner = [getattr(c, "norm_" + key).inner for c in caches]
                stats[key] = (xp.stack([i.mean for i in inner]), xp.stack([i.var for i in inner]))
            self._update_running(stats, x.shape[1])
        return out, final, cache

    def _update_running(self, stats, B):
        """Move each step's running mean/variance towards its batch statistics (the unbiased variance)."""
        T = next(iter(stats.values()))[0].shape[0]
        if self.max_steps is None and T > self.stat_steps:
            self._resize_stats(T)
        S, m = self.stat_steps, self.momentum
        k = min(T, S)
        for key, (mean, var) in stats.items():
            var = var * (B / (B - 1))
            mean, var = mean[:k].copy(), var[:k].copy()
            if T > S:  # the steps past the last slot pool into it
                mean[S - 1] = stats[key][0][S - 1:].mean(axis=0)
                var[S - 1] = (stats[key][1][S - 1:] * (B / (B - 1))).mean(axis=0)
            for stat, new in (("mean", mean), ("var", var)):
                buf = self.buffers[f"running_{stat}_{key}"]
                buf[:k] *= 1 - m
                buf[:k] += m * new

    def _recurrent_grads(self, ctx, Hs, caches, bufs, dA):
        T1, B, H = Hs.shape
        self.grads["W_h"] += Hs[:-1].reshape(-1, H).T @ bufs.reshape(-1, 4 * H)

    def _begin_backward(self, xp, ctx, Hs):
        T1, B, H = Hs.shape
        return xp.empty((T1 - 1, B, 4 * H), dtype=Hs.dtype)

    def extra_repr(self):
        return f"{self.input_size}, {self.hidden_size}, gamma={self.gamma:g}, max_steps={self.max_steps}"


class WeightNormInput:
    """The input term ``x (g_x v_x / ||v_x||) + b`` of a layer whose ``W_x`` is weight-normalized per unit
    (column), and its backward: a mixin for :class:`NormPropLSTM` and other weight-normalized LSTMs.

    The projection of all T steps is one GEMM; the weight gradient is formed once, then
    :func:`lnedu.functional.weight_norm_backward` splits it into the direction's and the length's gradients.
    """

    def _input_term(self, x):
        T, B, D = x.shape
        p = self.params
        W, wcache = F.weight_norm(p["W_x"], p["g_x"])
        X = x.reshape(T * B, D)
        A = X @ W
        A += p["b"]
        return A.reshape(T, B, -1), (X, W, wcache)

    def _input_term_backward(self, dA, icache):
        X, W, wcache = icache
        T, B, K = dA.shape
        dA = dA.reshape(T * B, K)
        self.grads["b"] += dA.sum(axis=0)
        dW, dg = F.weight_norm_backward(X.T @ dA, wcache)
        self.grads["W_x"] += dW
        self.grads["g_x"] += dg
        return (dA @ W.T).reshape(T, B, X.shape[1])


class NormPropLSTM(WeightNormInput, _LSTMFamily):
    r"""LSTM with recurrent normalization propagation (Laurent, Ballas & Vincent, Eq. 13-15).

    .. math::
        (a_f; a_i; a_o; a_g) &= \gamma_x\odot\frac{W_x}{\|W_{x,\cdot j}\|}x_t
                              + \gamma_h\odot\frac{W_h}{\|W_{h,\cdot j}\|}h_{t-1} + b\\
        c_t &= \sigma(a_f)\odot c_{t-1} + \sigma(a_i)\odot\tanh(a_g)\\
        h_t &= \frac{1}{\sqrt{\mathrm{Var}[h]}}\,\sigma(a_o)\odot
               \tanh\Big(\frac{\gamma_c\odot c_t}{\sqrt{\mathrm{Var}[c]}}\Big)

    Each unit's incoming weight vector (a column ``j`` of ``W_x``, ``W_h`` in lnedu's ``x @ W`` convention) is
    normalized to unit length, which is weight normalization with gain gamma
    (:func:`lnedu.functional.weight_norm`). ``Var[c]`` and ``Var[h]`` are constants computed at construction
    by :func:`~lnedu.functional.normprop_variances` from the initial gammas and kept fixed (as the paper does;
    they do not follow the trained gammas): ``variance="eq22"`` (default) models the pre-activations as
    N(0, gamma_x^2 + gamma_h^2), what independent ``x`` and ``h`` imply (the paper's §4, Eq. 22-23);
    ``"eq9"`` uses the scale gamma_x + gamma_h of Eq. 9-10.

    The paper leaves open whether the gammas are scalars or vectors; here they are per-unit vectors (like
    every other gain in lnedu), initialized to the scalars given: ``g_x``, ``g_h`` (4H,), ``g_c`` (H,).
    Other parameters: ``W_x`` (D, 4H) and ``W_h`` (H, 4H), drawn by ``init`` and rescaled to unit-norm columns
    (§3.3), and ``b`` (4H,), gate order f, i, o, g, with ``forget_bias`` (default 0: the variance estimates
    assume b = 0).
    """

    def __init__(self, input_size, hidden_size, *, gamma_x=2.0, gamma_h=2.0, gamma_c=1.0, variance="eq22",
                 init="orthogonal", forget_bias=0.0, learn_h0=False, rng=None, dtype=np.float32,
                 check_finite=False):
        super().__init__()
        self._init_common(input_size, hidden_size, learn_h0, dtype, check_finite)
        gx, gh, gc = (check_positive(n, v) for n, v in (("gamma_x", gamma_x), ("gamma_h", gamma_h),
                                                           ("gamma_c", gamma_c)))
        if variance not in ("eq22", "eq9"):
            raise ValueError(f"variance: expected 'eq22' or 'eq9', got {variance!r}")
        self.variance = variance
        self.gammas = (gx, gh, gc)
        self.var_c, self.var_h = normprop_variances(gx, gh, gc, variance)
        self.forget_bias = _check_bias_value("forget_bias", forget_bias)
        H, D = self.hidden_size, self.input_size
        rng = I.as_rng(rng)
        make = _weights(init)
        for name, shape in (("W_x", (D, 4 * H)), ("W_h", (H, 4 * H))):
            W = make(shape, rng, self.dtype)
            xp = get_array_module(W)
            self.add_param(name, W / xp.sqrt((W * W).sum(axis=0)))
        b = self.add_param("b", I.zeros((4 * H,), dtype=self.dtype))
        b[:H] = self.forget_bias
        for name, n, v in (("g_x", 4 * H, gx), ("g_h", 4 * H, gh), ("g_c", H, gc)):
            self.add_param(name, I.constant(v)((n,), dtype=self.dtype))
        self._add_initial_state()

    _norm_params = {"norm_h": (None, None), "norm_a": (None, None), "norm_c": ("g_c", None)}

    def _begin(self, xp, T):
        W_hh, wcache = F.weight_norm(self.params["W_h"], self.params["g_h"])
        norm_c = Norm.fixed(self.params["g_c"], None, var=self.var_c, eps=0.0)
        return {"W_hh": W_hh, "wcache": wcache, "norm_c": norm_c, "out_scale": 1.0 / math.sqrt(self.var_h)}

    def _step_norms(self, t, ctx):
        return None, ctx["norm_c"]

    def _recurrent_grads(self, ctx, Hs, caches, bufs, dA):
        T1, B, H = Hs.shape
        dW, dg = F.weight_norm_backward(Hs[:-1].reshape(-1, H).T @ dA.reshape(-1, 4 * H), ctx["wcache"])
        self.grads["W_h"] += dW
        self.grads["g_h"] += dg

    def extra_repr(self):
        gx, gh, gc = self.gammas
        return (f"{self.input_size}, {self.hidden_size}, gamma_x={gx:g}, gamma_h={gh:g}, gamma_c={gc:g}, "
                f"variance={self.variance!r}")


# --------------------------------------------------------------------------------------------------
# stacking


class StackedRNN(Module):
    """Recurrent layers applied in order, each one's output the next one's input (children ``"0"``, ``"1"``, ...).

    ``forward(x, state=None, mask=None)`` returns ``(out, states)`` with ``states`` a list of the layers' final
    state tuples; ``state`` is such a list (or ``None``; entries may be ``None``). ``backward(dout, dstate=None)``
    returns ``(dx, dstates0)``. The mask goes to every layer. Build one from layers, or with
    :meth:`build` (``StackedRNN.build(LSTM, D, H, num_layers=2, ln="appendix", rng=0)``).
    """

    def __init__(self, layers):
        super().__init__()
        layers = list(layers)
        if not layers:
            raise ValueError("layers: expected at least one recurrent layer, got none")
        for i, layer in enumerate(layers):
            if not isinstance(layer, RecurrentLayer):
                raise TypeError(f"layers[{i}]: expected a recurrent layer (LSTM, GRU, ...), "
                                f"got {type(layer).__name__}")
            if i and layer.input_size != layers[i - 1].hidden_size:
                raise ValueError(f"layers[{i}]: expected input_size {layers[i - 1].hidden_size} (the previous "
                                 f"layer's hidden_size), got {layer.input_size}")
            self.add_module(str(i), layer)
        self.layers = layers
        self.input_size = layers[0].input_size
        self.hidden_size = layers[-1].hidden_size

    @classmethod
    def build(cls, layer_cls, input_size, hidden_size, num_layers, **kwargs):
        """``num_layers`` layers of ``layer_cls`` (H units each), sharing the keyword arguments and one rng."""
        n = _check_size("num_layers", num_layers)
        rng = I.as_rng(kwargs.pop("rng", None))
        return cls([layer_cls(input_size if i == 0 else hidden_size, hidden_size, rng=rng, **kwargs)
                    for i in range(n)])

    def __len__(self):
        return len(self.layers)

    def __getitem__(self, i):
        return self.layers[i]

    def _per_layer(self, name, value):
        if value is None:
            return [None] * len(self.layers)
        if not isinstance(value, (list, tuple)) or len(value) != len(self.layers):
            got = type(value).__name__
            if isinstance(value, (list, tuple)):
                got += f" of length {len(value)}"
            raise TypeError(f"{name}: expected a list of {len(self.layers)} per-layer states (or None), got {got}")
        return list(value)

    def forward(self, x, state=None, mask=None, *, check_finite=None):
        states = self._per_layer("state", state)
        finals = []
        for layer, s in zip(self.layers, states):
            x, f = layer.forward(x, s, mask, check_finite=check_finite)
            finals.append(f)
        return x, finals

    def backward(self, dout, dstate=None):
        dstates = self._per_layer("dstate", dstate)
        d0 = [None] * len(self.layers)
        for i in reversed(range(len(self.layers))):
            dout, d0[i] = self.layers[i].backward(dout, dstates[i])
        return dout, d0
