r"""The MGU layer (minimal gated unit, Zhou et al. 2016), with layer norm placed as the LN paper places it in the
GRU: its parameter layout and its few operations. The time loops are in :mod:`.bptt`, the step's equations in
:func:`lnedu.functional.mgu_step`.
"""

from __future__ import annotations

import numpy as np

from ... import functional as F
from ... import init as I
from ...backend import get_array_module
from ..module import Module
from . import layer as L
from .common import (
    LNContext,
    add_ln_params,
    add_ln_step_grads,
    check_bias_value,
    draw_weights,
    ln_input_term,
    ln_input_term_backward,
    ln_step_context,
)
from .config import resolve_ln
from .gru import CANDIDATE_RENAMES

__all__ = ["MGU"]


class MGU(Module):
    r"""Minimal gated unit (Zhou et al. 2016): one gate ``f`` serves as the GRU's reset and update.

    .. math::
        f_t = \sigma\big(N_h(W_h h_{t-1}) + N_x(W_x x_t) + b\big),\quad
        \hat h_t = \tanh\big(N_{\hat x}(W_{\hat x}x_t) + N_{\hat h}(W_{\hat h}(f_t\odot h_{t-1})) + b_{\hat h}\big),
        \quad h_t = (1-f_t)\odot h_{t-1} + f_t\odot\hat h_t

    No paper places layer norm in the MGU; ``ln`` puts it where the LN paper puts it in the GRU (separate LNs
    of ``W_x x``, ``W_h h``, ``W_xhat x``, ``W_hhat (f h)``; or one LN of each sum with ``"eq4"``).
    Parameters: ``W_x`` (D, H), ``W_h`` (H, H), ``b`` (H,) (the gate; ``gate_bias`` at init: a large ``f``
    takes more of the candidate), ``W_xhat`` (D, H), ``W_hhat`` (H, H), ``b_hat`` (H,) (the candidate), and
    the LN gains/biases named as in :class:`~lnedu.nn.GRU` (whose old names also load here).
    """

    state_names = ("h",)
    _state_names = state_names  # the name before the package split, for one release
    renamed_params = CANDIDATE_RENAMES  # read by Module.load_state_dict

    def __init__(self, input_size, hidden_size, *, ln=None, init="orthogonal", gate_bias=0.0, learn_h0=False,
                 rng=None, dtype=np.float32, check_finite=False):
        super().__init__()
        L.init_layer(self, input_size, hidden_size, learn_h0, dtype, check_finite)
        self.gate_bias = check_bias_value("gate_bias", gate_bias)
        self.ln = resolve_ln(ln, "MGU", has_cell=False)
        self.ln_name = ln if isinstance(ln, str) else None
        H, D = self.hidden_size, self.input_size
        rng = I.as_rng(rng)
        make = draw_weights(init)
        self.add_param("W_x", make((D, H), rng, self.dtype))
        self.add_param("W_h", make((H, H), rng, self.dtype))
        self.add_param("W_xhat", make((D, H), rng, self.dtype))
        self.add_param("W_hhat", make((H, H), rng, self.dtype))
        b = self.add_param("b", I.zeros((H,), dtype=self.dtype))
        b[:H] = self.gate_bias
        self.add_param("b_hat", I.zeros((H,), dtype=self.dtype))
        add_ln_params(self, self.ln, 1, candidate=True)
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
        return ln_input_term(self, x, 1, candidate=True)

    def input_term_backward(self, dA, icache):
        return ln_input_term_backward(self, dA, icache, 1, candidate=True)

    def step_context(self, T) -> LNContext:
        return ln_step_context(self, 1, candidate=True)

    def step(self, t, a_t, state, ctx: LNContext):
        h, cache = F.mgu_step(a_t, state[0], ctx.W_hh, norm_h=ctx.norm_h, norm_hc=ctx.norm_hc, norm_a=ctx.norm_a,
                              norm_ac=ctx.norm_ac)
        return (h,), cache

    def step_backward(self, t, dstate, cache, ctx: LNContext, out):
        g = F.mgu_step_backward(dstate[0], cache, weight_grad=False, out=out)
        add_ln_step_grads(self, g)
        return (g.h_prev,), g.a_hh

    def recurrent_grads(self, ctx: LNContext, Hs, caches, dAh):
        """``dW_h = sum_t h_{t-1}^T da_{h,t}`` and ``dW_hhat = sum_t (f_t h_{t-1})^T da_{\\hat h,t}``."""
        H = self.hidden_size
        Hprev = Hs[:-1].reshape(-1, H)
        FH = get_array_module(Hs).stack([c.fh for c in caches]).reshape(-1, H)  # f_t * h_{t-1}
        dAh = dAh.reshape(-1, 2 * H)
        self.grads["W_h"] += Hprev.T @ dAh[:, :H]
        self.grads["W_hhat"] += FH.T @ dAh[:, H:]

    def extra_repr(self):
        ln = self.ln_name if self.ln_name is not None else self.ln
        return f"{self.input_size}, {self.hidden_size}, ln={ln!r}"
