r"""The NormProp LSTM (Laurent, Ballas & Vincent, recurrent normalization propagation), layer norm's rival
with weight-normalized weights and fixed variance constants instead of statistics: its parameter layout and
its few operations. The time loops are in :mod:`.bptt`, the step's equations in
:func:`lnedu.functional.lstm_step`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ... import functional as F
from ... import init as I
from ..._checks import check_positive
from ...backend import get_array_module
from ...functional.recurrent import Norm, normprop_variances
from ..module import Module
from . import layer as L
from .common import (
    add_norm_grads,
    check_bias_value,
    draw_weights,
    weight_norm_input_term,
    weight_norm_input_term_backward,
    weight_norm_recurrent_grads,
)

__all__ = ["NormPropLSTM"]


class NormPropContext(NamedTuple):
    """What every step of one sequence shares in a :class:`NormPropLSTM`."""

    W_hh: object  # g_h W_h / ||W_h columns|| (H, 4H), the weight-normalized recurrent weights
    wcache: object  # weight norm's cache of W_hh, for dW_h and dg_h after the loop
    norm_c: Norm  # the fixed map gamma_c c / sqrt(Var[c])
    out_scale: float  # 1 / sqrt(Var[h])
    own_da_h: bool  # always False: nothing sits between the recurrent product and the sum


class NormPropLSTM(Module):
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

    state_names = ("h", "c")
    _state_names = state_names  # the name before the package split, for one release

    def __init__(self, input_size, hidden_size, *, gamma_x=2.0, gamma_h=2.0, gamma_c=1.0, variance="eq22",
                 init="orthogonal", forget_bias=0.0, learn_h0=False, rng=None, dtype=np.float32,
                 check_finite=False):
        super().__init__()
        L.init_layer(self, input_size, hidden_size, learn_h0, dtype, check_finite)
        gx, gh, gc = (check_positive(n, v) for n, v in (("gamma_x", gamma_x), ("gamma_h", gamma_h),
                                                           ("gamma_c", gamma_c)))
        if variance not in ("eq22", "eq9"):
            raise ValueError(f"variance: expected 'eq22' or 'eq9', got {variance!r}")
        self.variance = variance
        self.gammas = (gx, gh, gc)
        self.var_c, self.var_h = normprop_variances(gx, gh, gc, variance)
        self.forget_bias = check_bias_value("forget_bias", forget_bias)
        H, D = self.hidden_size, self.input_size
        rng = I.as_rng(rng)
        make = draw_weights(init)
        for name, shape in (("W_x", (D, 4 * H)), ("W_h", (H, 4 * H))):
            W = make(shape, rng, self.dtype)
            xp = get_array_module(W)
            self.add_param(name, W / xp.sqrt((W * W).sum(axis=0)))
        b = self.add_param("b", I.zeros((4 * H,), dtype=self.dtype))
        b[:H] = self.forget_bias
        for name, n, v in (("g_x", 4 * H, gx), ("g_h", 4 * H, gh), ("g_c", H, gc)):
            self.add_param(name, I.constant(v)((n,), dtype=self.dtype))
        L.add_initial_state(self)

    @property
    def dtype(self):
        """The parameters' dtype (it follows :meth:`astype`)."""
        return L.param_dtype(self)

    def forward(self, x, state=None, mask=None, *, check_finite=None):
        """Run the layer over ``x`` (T, B, D); returns ``(out (T, B, H), (h_T, c_T))`` (arguments as in
        :meth:`LSTM.forward <lnedu.nn.LSTM.forward>`)."""
        return L.forward(self, x, state, mask, check_finite)

    def backward(self, dout, dstate=None):
        """Backprop through time: ``(dx, (dh_0, dc_0))``; accumulates into ``grads``."""
        return L.backward(self, dout, dstate)

    # ---- the cell's operations, called by the time loops of bptt.py -----------------------------------
    def input_term(self, x):
        return weight_norm_input_term(self, x)

    def input_term_backward(self, dA, icache):
        return weight_norm_input_term_backward(self, dA, icache)

    def step_context(self, T) -> NormPropContext:
        W_hh, wcache = F.weight_norm(self.params["W_h"], self.params["g_h"])
        norm_c = Norm.fixed(self.params["g_c"], None, var=self.var_c, eps=0.0)
        return NormPropContext(W_hh, wcache, norm_c, 1.0 / math.sqrt(self.var_h), False)

    def step(self, t, a_t, state, ctx: NormPropContext):
        h, c, cache = F.lstm_step(a_t, state[0], state[1], ctx.W_hh, norm_h=None, norm_c=ctx.norm_c,
                                  out_scale=ctx.out_scale)
        return (h, c), cache

    def step_backward(self, t, dstate, cache, ctx: NormPropContext, out):
        g = F.lstm_step_backward(dstate[0], dstate[1], cache, weight_grad=False, out=out)
        add_norm_grads(self.grads, ("g_c", None), g.norm_c)
        return (g.h_prev, g.c_prev), g.a_h

    def recurrent_grads(self, ctx: NormPropContext, Hs, caches, dAh):
        """``sum_t h_{t-1}^T da_{h,t}``, one product, split by weight norm into ``dW_h`` and ``dg_h``."""
        weight_norm_recurrent_grads(self, ctx.wcache, Hs, dAh)

    def extra_repr(self):
        gx, gh, gc = self.gammas
        return (f"{self.input_size}, {self.hidden_size}, gamma_x={gx:g}, gamma_h={gh:g}, gamma_c={gc:g}, "
                f"variance={self.variance!r}")

