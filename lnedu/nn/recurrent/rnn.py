r"""The plain tanh RNN layer, with layer norm where ``ln`` says (``"eq4"`` is the LN paper's Eq. 4 exactly): its
parameter layout and its few operations. The time loops are in :mod:`.bptt`, the step's equation in
:func:`lnedu.functional.rnn_step`.
"""

from __future__ import annotations

import numpy as np

from ... import functional as F
from ... import init as I
from ..module import Module
from . import layer as L
from .common import (
    LNContext,
    add_ln_params,
    add_ln_step_grads,
    draw_weights,
    ln_input_term,
    ln_input_term_backward,
    ln_step_context,
)
from .config import resolve_ln

__all__ = ["RNN"]


class RNN(Module):
    r"""Plain tanh RNN: :math:`h_t = \tanh\big(N_h(W_h h_{t-1}) + N_x(W_x x_t) + b\big)`.

    ``ln="eq4"`` is the LN paper's Eq. 4 exactly: :math:`h_t = \tanh\big(LN(W_h h_{t-1} + W_x x_t; g, b)\big)`;
    ``"appendix"`` (or an :class:`LNConfig`) normalizes the two terms separately (``g_x, b_x, g_h, b_h``).
    Parameters: ``W_x`` (D, H), ``W_h`` (H, H), ``b`` (H,), and the LN gains/biases.
    """

    state_names = ("h",)
    _state_names = state_names  # the name before the package split, for one release

    def __init__(self, input_size, hidden_size, *, ln=None, init="orthogonal", learn_h0=False, rng=None,
                 dtype=np.float32, check_finite=False):
        super().__init__()
        L.init_layer(self, input_size, hidden_size, learn_h0, dtype, check_finite)
        self.ln = resolve_ln(ln, "RNN", has_cell=False)
        self.ln_name = ln if isinstance(ln, str) else None
        H, D = self.hidden_size, self.input_size
        rng = I.as_rng(rng)
        make = draw_weights(init)
        self.add_param("W_x", make((D, H), rng, self.dtype))
        self.add_param("W_h", make((H, H), rng, self.dtype))
        self.add_param("b", I.zeros((H,), dtype=self.dtype))
        add_ln_params(self, self.ln, 1)
        L.add_initial_state(self)

    @property
    def dtype(self):
        """The parameters' dtype (it follows :meth:`astype`)."""
        return L.param_dtype(self)

    def forward(self, x, state=None, mask=None, *, check_finite=None):
        """Run the layer over ``x`` (T, B, D); returns ``(out (T, B, H), (h_T,))`` (arguments as in
        :meth:`LSTM.forward <lnedu.nn.LSTM.forward>`, with the state ``(h,)``)."""
        return L.forward(self, x, state, mask, check_finite)

    def backward(self, dout, dstate=None):
        """Backprop through time: ``(dx, (dh_0,))``; accumulates into ``grads``."""
        return L.backward(self, dout, dstate)

    # ---- the cell's operations, called by the time loops of bptt.py -----------------------------------
    def input_term(self, x):
        return ln_input_term(self, x, 1)

    def input_term_backward(self, dA, icache):
        return ln_input_term_backward(self, dA, icache, 1)

    def step_context(self, T) -> LNContext:
        return ln_step_context(self, 1)

    def step(self, t, a_t, state, ctx: LNContext):
        h, cache = F.rnn_step(a_t, state[0], ctx.W_hh, norm_h=ctx.norm_h, norm_a=ctx.norm_a)
        return (h,), cache

    def step_backward(self, t, dstate, cache, ctx: LNContext, out):
        g = F.rnn_step_backward(dstate[0], cache, weight_grad=False, out=out)
        add_ln_step_grads(self, g)
        return (g.h_prev,), g.a_h

    def recurrent_grads(self, ctx: LNContext, Hs, caches, dAh):
        """``dW_h = sum_t h_{t-1}^T da_{h,t}``: one product over all steps."""
        H = self.hidden_size
        self.grads["W_h"] += Hs[:-1].reshape(-1, H).T @ dAh.reshape(-1, H)

    def extra_repr(self):
        ln = self.ln_name if self.ln_name is not None else self.ln
        return f"{self.input_size}, {self.hidden_size}, ln={ln!r}"
