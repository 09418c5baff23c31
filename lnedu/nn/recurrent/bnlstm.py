r"""The batch-normalized LSTM (Cooijmans et al., "Recurrent Batch Normalization"), layer norm's rival with
per-time-step batch statistics: its parameter layout, its population statistics and its few operations.
The time loops are in :mod:`.bptt`, the step's equations in :func:`lnedu.functional.lstm_step`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ... import functional as F
from ... import init as I
from ..._checks import check_positive
from ...backend import get_array_module
from ...functional.recurrent import Norm
from ..layers import _check_size
from ..module import Module
from . import layer as L
from .common import add_norm_grads, check_bias_value, draw_weights

__all__ = ["BNLSTM"]


class BNContext(NamedTuple):
    """What every step of one sequence shares in a :class:`BNLSTM`."""

    W_hh: object  # W_h (H, 4H)
    slots: object  # (T,) ints: which step's population statistics step t uses (eval mode)
    own_da_h: bool  # always True: a batch norm sits between the recurrent product and the sum


class BNLSTM(Module):
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

    state_names = ("h", "c")
    _state_names = state_names  # the name before the package split, for one release

    def __init__(self, input_size, hidden_size, *, gamma=0.1, max_steps=None, momentum=0.1, eps=1e-5,
                 init="orthogonal", forget_bias=1.0, learn_h0=False, rng=None, dtype=np.float32,
                 check_finite=False):
        super().__init__()
        L.init_layer(self, input_size, hidden_size, learn_h0, dtype, check_finite)
        self.gamma = check_positive("gamma", gamma)
        if max_steps is not None:
            max_steps = _check_size("max_steps", max_steps)
        self.max_steps = max_steps
        if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) or not 0 < momentum <= 1:
            raise ValueError(f"momentum: expected a number in (0, 1], got {momentum!r}")
        self.momentum = float(momentum)
        self.eps = check_positive("eps", eps)
        self.forget_bias = check_bias_value("forget_bias", forget_bias)
        H, D = self.hidden_size, self.input_size
        rng = I.as_rng(rng)
        make = draw_weights(init)
        self.add_param("W_x", make((D, 4 * H), rng, self.dtype))
        self.add_param("W_h", make((H, 4 * H), rng, self.dtype))
        b = self.add_param("b", I.zeros((4 * H,), dtype=self.dtype))
        b[:H] = self.forget_bias
        for name, n in (("g_x", 4 * H), ("g_h", 4 * H), ("g_c", H)):
            self.add_param(name, I.constant(self.gamma)((n,), dtype=self.dtype))
        self.add_param("b_c", I.zeros((H,), dtype=self.dtype))
        L.add_initial_state(self)
        self._resize_stats(max_steps or 1)

    @property
    def dtype(self):
        """The parameters' dtype (it follows :meth:`astype`)."""
        return L.param_dtype(self)

    # ---- population statistics ------------------------------------------------------------------------
    _STATS = (("x", 4), ("h", 4), ("c", 1))  # which pre-activation, and its width in H

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
                new = I.constant(fill)((S, k * H), dtype=self.dtype)
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

    def _slots(self, T):
        return np.minimum(np.arange(T), self.stat_steps - 1)

    # ---- forward / backward -------------------------------------------------------------------------------
    def forward(self, x, state=None, mask=None, *, check_finite=None):
        """Run the layer over ``x`` (T, B, D); returns ``(out (T, B, H), (h_T, c_T))`` (arguments as in
        :meth:`LSTM.forward <lnedu.nn.LSTM.forward>`). In training mode it also moves the running statistics
        towards this batch's."""
        if self.training and hasattr(x, "shape") and getattr(x, "ndim", 0) == 3 and x.shape[1] < 2:
            raise ValueError("x: BNLSTM in training mode needs a batch of at least 2 sequences (batch "
                             f"statistics), got B={x.shape[1]}")
        out, final = L.forward(self, x, state, mask, check_finite)
        if self.training:  # the batch statistics the caches hold, per step: (T, K) means and variances
            xp = get_array_module(x)
            cache = self._cache[0]
            bn_x = cache.icache[2]
            stats = {"x": (bn_x.mean, bn_x.var)}
            for key in ("h", "c"):
                inner = [getattr(c, "norm_" + key).inner for c in cache.caches]
                stats[key] = (xp.stack([i.mean for i in inner]), xp.stack([i.var for i in inner]))
            self._update_running(stats, x.shape[1])
        return out, final

    def backward(self, dout, dstate=None):
        """Backprop through time: ``(dx, (dh_0, dc_0))``; accumulates into ``grads``."""
        return L.backward(self, dout, dstate)

    # ---- the cell's operations, called by the time loops of bptt.py -----------------------------------
    def input_term(self, x):
        """``A[t] = BN_t(x_t W_x; g_x, 0) + b``: the batch's statistics of step t, or its population's (eval)."""
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

    def input_term_backward(self, dA, icache):
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

    def step_context(self, T) -> BNContext:
        return BNContext(self.params["W_h"], self._slots(T), True)

    def _step_norms(self, t, ctx: BNContext):
        """Step t's norms of the recurrent term and of the cell: batch norms, or fixed ones (eval)."""
        p = self.params
        if self.training:
            return Norm.batch(p["g_h"], None, self.eps), Norm.batch(p["g_c"], p["b_c"], self.eps)
        s, buf = int(ctx.slots[t]), self.buffers
        norm_h = Norm.fixed(p["g_h"], None, mean=buf["running_mean_h"][s], var=buf["running_var_h"][s], eps=self.eps)
        norm_c = Norm.fixed(p["g_c"], p["b_c"], mean=buf["running_mean_c"][s], var=buf["running_var_c"][s],
                            eps=self.eps)
        return norm_h, norm_c

    def step(self, t, a_t, state, ctx: BNContext):
        norm_h, norm_c = self._step_norms(t, ctx)
        h, c, cache = F.lstm_step(a_t, state[0], state[1], ctx.W_hh, norm_h=norm_h, norm_c=norm_c, out_scale=None)
        return (h, c), cache

    def step_backward(self, t, dstate, cache, ctx: BNContext, out):
        g = F.lstm_step_backward(dstate[0], dstate[1], cache, weight_grad=False, out=out)
        add_norm_grads(self.grads, ("g_h", None), g.norm_h)
        add_norm_grads(self.grads, ("g_c", "b_c"), g.norm_c)
        return (g.h_prev, g.c_prev), g.a_h

    def recurrent_grads(self, ctx: BNContext, Hs, caches, dAh):
        """``dW_h = sum_t h_{t-1}^T da_{h,t}``: one product over all steps."""
        H = self.hidden_size
        self.grads["W_h"] += Hs[:-1].reshape(-1, H).T @ dAh.reshape(-1, 4 * H)

    def extra_repr(self):
        return f"{self.input_size}, {self.hidden_size}, gamma={self.gamma:g}, max_steps={self.max_steps}"
