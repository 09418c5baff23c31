r"""The LSTM layer, with layer norm where ``ln`` says (the LN paper's Eq. 17-22, Eq. 4, DRAW's cell) or with
weight-normalized weights: its parameter layout and its few operations. The time loops are in :mod:`.bptt`,
the step's equations in :func:`lnedu.functional.lstm_step`.
"""

from __future__ import annotations

import numpy as np

from ... import functional as F
from ... import init as I
from ...functional.ln_variants import VariantLSTMStepCache, lstm_variant_step, lstm_variant_step_backward
from ..module import Module
from . import layer as L
from .common import (
    LNContext,
    add_ln_params,
    add_ln_step_grads,
    add_weight_norm_lengths,
    check_bias_value,
    draw_weights,
    ln_input_term,
    ln_input_term_backward,
    ln_step_context,
    weight_norm_input_term,
    weight_norm_input_term_backward,
    weight_norm_recurrent_grads,
)
from .config import resolve_ln

__all__ = ["LSTM", "WeightNormInput"]


class LSTM(Module):
    r"""Long short-term memory, the LN paper's Eq. 17-22, with layer norm where ``ln`` says.

    .. math::
        (a_f; a_i; a_o; a_g) &= N_h(W_h h_{t-1}) + N_x(W_x x_t) + b,\qquad
        c_t = \sigma(a_f)\odot c_{t-1} + \sigma(a_i)\odot\tanh(a_g),\qquad
        h_t = \sigma(a_o)\odot\tanh(N_c(c_t))

    with ``N`` the identity (``ln=None``) or layer norms (``ln="appendix"``: Eq. 20-22, the N's over all 4H
    stacked gates; ``"eq4"``: one LN of the sum, ``LN(W_h h + W_x x; g, b)``; ``"cell"``: only ``N_c``, DRAW's
    Eq. 29-31). The layer norm of ``c`` is on the output path only; the carried cell is not normalized
    (unless ``LNConfig(carry="LN(c)")``; the variants of released code are ``ln="tfa"``, ``"haste"``, ...:
    :data:`lnedu.nn.recurrent.variants.VARIANTS`).

    Gate order f, i, o, g along the 4H axis (the paper's Eq. 17). Parameters: ``W_x`` (D, 4H), ``W_h``
    (H, 4H), ``b`` (4H,) with ``forget_bias`` in its forget block; with layer norm ``g_x, b_x`` (4H,)
    (input LN), ``g_h, b_h`` (4H,) (recurrent LN), ``g_c, b_c`` (H,) (cell LN) or ``g`` (4H,) (joint LN, whose
    bias is ``b``); the appendix's alpha_1/beta_1, alpha_2/beta_2, alpha_3/beta_3 are ``g_h``/``b_h``,
    ``g_x``/``b_x``, ``g_c``/``b_c``. With the appendix placement ``b_x``, ``b_h`` and ``b`` add to one pre-activation;
    the paper (and its code) keeps the three, and so does this layer. ``learn_h0=True`` adds ``h0``, ``c0`` (H,).
    ``init`` (name or callable from :mod:`lnedu.init`) draws ``W_x`` and ``W_h`` (orthogonal: per (H, H) block).

    ``weight_norm=True`` (with ``ln=None``) weight-normalizes ``W_x`` and ``W_h`` per unit (Salimans & Kingma
    2016): the step uses ``W = V diag(g / ||V_{.j}||)``, with ``W_x``, ``W_h`` the directions ``V`` and new
    parameters ``g_x``, ``g_h`` (4H,) their columns' lengths, initialized to the initial columns' norms (so the
    layer starts as the same function as the plain LSTM of the same ``rng``).
    """

    state_names = ("h", "c")
    _state_names = state_names  # the name before the package split, for one release

    def __init__(self, input_size, hidden_size, *, ln=None, init="orthogonal", forget_bias=1.0, learn_h0=False,
                 rng=None, dtype=np.float32, check_finite=False, weight_norm=False):
        super().__init__()
        L.init_layer(self, input_size, hidden_size, learn_h0, dtype, check_finite)
        self.forget_bias = check_bias_value("forget_bias", forget_bias)
        self.ln = resolve_ln(ln, "LSTM", has_cell=True)
        self.ln_name = ln if isinstance(ln, str) else None
        self.weight_norm = bool(weight_norm)
        if self.weight_norm and self.ln is not None:
            raise ValueError(f"weight_norm: expected ln=None with weight_norm=True, got ln={ln!r}")
        H, D = self.hidden_size, self.input_size
        rng = I.as_rng(rng)
        make = draw_weights(init)
        self.add_param("W_x", make((D, 4 * H), rng, self.dtype))
        self.add_param("W_h", make((H, 4 * H), rng, self.dtype))
        b = self.add_param("b", I.zeros((4 * H,), dtype=self.dtype))
        b[:H] = self.forget_bias
        add_ln_params(self, self.ln, 4, memory=True)
        if self.weight_norm:
            add_weight_norm_lengths(self)
        L.add_initial_state(self)

    @property
    def dtype(self):
        """The parameters' dtype (it follows :meth:`astype`)."""
        return L.param_dtype(self)

    def forward(self, x, state=None, mask=None, *, check_finite=None):
        """Run the layer over ``x`` (T, B, D); returns ``(out (T, B, H), (h_T, c_T))``.

        ``state``: ``(h, c)``, each (B, H) (``None``: zeros, or the learned ``h0``, ``c0``); ``mask`` (T, B) of
        0/1 or bool (``None``: every step real); ``check_finite`` (default: the layer's setting) also checks
        that ``x`` and the state hold no NaN/inf."""
        return L.forward(self, x, state, mask, check_finite)

    def backward(self, dout, dstate=None):
        """Backprop through time: ``(dx, (dh_0, dc_0))``; accumulates into ``grads``. ``dout`` (T, B, H) or
        ``None``; ``dstate``: the final state's gradient (``None``, or ``None`` entries: zero)."""
        return L.backward(self, dout, dstate)

    # ---- the cell's operations, called by the time loops of bptt.py -----------------------------------
    def input_term(self, x):
        if self.weight_norm:
            return weight_norm_input_term(self, x)
        return ln_input_term(self, x, 4)

    def input_term_backward(self, dA, icache):
        if self.weight_norm:
            return weight_norm_input_term_backward(self, dA, icache)
        return ln_input_term_backward(self, dA, icache, 4)

    def step_context(self, T) -> LNContext:
        ctx = ln_step_context(self, 4, memory=True)
        if self.weight_norm:
            W_hh, wcache = F.weight_norm(self.params["W_h"], self.params["g_h"])
            ctx = ctx._replace(W_hh=W_hh, wcache=wcache)
        return ctx

    def step(self, t, a_t, state, ctx: LNContext):
        if self.ln is not None and not self.ln.classic:  # another LN denominator, or LN(c) carried
            h, c, cache = lstm_variant_step(a_t, state[0], state[1], ctx.W_hh, norm_h=ctx.norm_h,
                                            norm_a=ctx.norm_a, norm_c=ctx.norm_c, carry=self.ln.carry)
            return (h, c), cache
        h, c, cache = F.lstm_step(a_t, state[0], state[1], ctx.W_hh, norm_h=ctx.norm_h, norm_a=ctx.norm_a,
                                  norm_c=ctx.norm_c)
        return (h, c), cache

    def step_backward(self, t, dstate, cache, ctx: LNContext, out):
        if isinstance(cache, VariantLSTMStepCache):
            g = lstm_variant_step_backward(dstate[0], dstate[1], cache, weight_grad=False, out=out)
        else:
            g = F.lstm_step_backward(dstate[0], dstate[1], cache, weight_grad=False, out=out)
        add_ln_step_grads(self, g)
        return (g.h_prev, g.c_prev), g.a_h

    def recurrent_grads(self, ctx: LNContext, Hs, caches, dAh):
        """``dW_h = sum_t h_{t-1}^T da_{h,t}``: one product over all steps."""
        if self.weight_norm:
            weight_norm_recurrent_grads(self, ctx.wcache, Hs, dAh)
            return
        H = self.hidden_size
        self.grads["W_h"] += Hs[:-1].reshape(-1, H).T @ dAh.reshape(-1, 4 * H)

    def extra_repr(self):
        ln = self.ln_name if self.ln_name is not None else self.ln
        return f"{self.input_size}, {self.hidden_size}, ln={ln!r}" + (", weight_norm=True" if self.weight_norm else "")


class WeightNormInput:
    """Deprecated, kept for one release so that ``class WeightNormLSTM(WeightNormInput, LSTM)`` still works:
    the operations of ``LSTM(weight_norm=True)`` (weight-normalized ``W_x`` and ``W_h``) as a mixin, for a
    subclass that registers ``g_x``, ``g_h`` itself. Use ``LSTM(..., weight_norm=True)`` instead."""

    def input_term(self, x):
        return weight_norm_input_term(self, x)

    def input_term_backward(self, dA, icache):
        return weight_norm_input_term_backward(self, dA, icache)

    def step_context(self, T) -> LNContext:
        W_hh, wcache = F.weight_norm(self.params["W_h"], self.params["g_h"])
        return ln_step_context(self, 4, memory=True)._replace(W_hh=W_hh, wcache=wcache)

    def recurrent_grads(self, ctx: LNContext, Hs, caches, dAh):
        weight_norm_recurrent_grads(self, ctx.wcache, Hs, dAh)
