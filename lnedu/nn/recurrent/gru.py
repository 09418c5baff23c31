r"""The GRU layer, with layer norm where ``ln`` says (the LN paper's Eq. 23-28, or one LN of each sum): its
parameter layout and its few operations. The time loops are in :mod:`.bptt`, the step's equations in
:func:`lnedu.functional.gru_step`.
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
    add_fused_norm_grads,
    add_ln_params,
    add_ln_step_grads,
    check_bias_value,
    draw_weights,
    ln_input_term,
    ln_input_term_backward,
    ln_step_context,
)
from .config import resolve_ln

__all__ = ["GRU", "CANDIDATE_RENAMES"]

#: the candidate's parameter names before they took the paper's hat (``b_c``/``g_c`` also named the LSTM's
#: cell LN): ``load_state_dict`` still accepts the old names for one release
CANDIDATE_RENAMES = {
    "W_xc": "W_xhat",
    "W_hc": "W_hhat",
    "b_c": "b_hat",
    "g_xc": "g_xhat",
    "b_xc": "b_xhat",
    "g_hc": "g_hhat",
    "b_hc": "b_hhat",
    "g_c": "g_hat",
}


class GRU(Module):
    r"""Gated recurrent unit, the LN paper's Eq. 23-28, with the reset ``"after"`` (paper) or ``"before"`` ``U``.

    .. math::
        (a_z; a_r) &= N_h(W_h h_{t-1}) + N_x(W_x x_t) + b,\qquad z = \sigma(a_z),\ r = \sigma(a_r)\\
        \hat h_t &= \tanh\big(N_{\hat x}(W_{\hat x} x_t) + r\odot N_{\hat h}(W_{\hat h} h_{t-1}) + b_{\hat h}\big)
        \quad\text{or, before: } \tanh\big(N_{\hat x}(W_{\hat x}x_t) + N_{\hat h}(W_{\hat h}(r\odot h_{t-1}))
        + b_{\hat h}\big)\\
        h_t &= (1-z)\odot h_{t-1} + z\odot\hat h_t

    ``ln="appendix"``: the four separate LNs of Eq. 26-27 (``N_x``, ``N_h`` over the 2H stacked gates);
    ``"eq4"``: one LN of each sum, ``LN(W_h h + W_x x; g, b)`` and ``LN(W_xhat x + r*(W_hhat h); g_hat, b_hat)``.
    The update follows Eq. 28, ``(1-z) h + z h_hat`` (the paper's released code uses the opposite).
    "before" is Cho et al.'s v3 cell, also Hafner's LN-GRU.

    Gate order z, r. Parameters: ``W_x`` (D, 2H), ``W_h`` (H, 2H), ``b`` (2H,) (the gates: the paper's
    ``W_x``, ``W_h``); the candidate ``h_hat``'s ``W_xhat`` (D, H), ``W_hhat`` (H, H), ``b_hat`` (H,) (the
    paper's ``W``, ``U``); with LN ``g_x, b_x, g_h, b_h`` (2H,) and ``g_xhat, b_xhat, g_hhat, b_hhat`` (H,) (the
    paper's alpha_2/beta_2, alpha_1/beta_1, alpha_3/beta_3, alpha_4/beta_4), or ``g`` (2H,), ``g_hat`` (H,)
    for the joint LNs. (Before this release the candidate's names ended in ``c``, ``W_xc`` ... ``b_c``,
    ``g_c``; a saved state with those names still loads, see :data:`CANDIDATE_RENAMES`.) The paper's GRU has
    no ``b``, ``b_hat``; they are kept here (redundant with the LN biases, as in its LSTM) so that
    ``update_bias`` (added to ``b``'s z block at init; negative keeps more of h) has a home.
    """

    state_names = ("h",)
    _state_names = state_names  # the name before the package split, for one release
    renamed_params = CANDIDATE_RENAMES  # read by Module.load_state_dict

    def __init__(self, input_size, hidden_size, *, reset="after", ln=None, init="orthogonal", update_bias=0.0,
                 learn_h0=False, rng=None, dtype=np.float32, check_finite=False):
        super().__init__()
        if reset not in ("after", "before"):
            raise ValueError(f"reset: expected 'after' or 'before', got {reset!r}")
        self.reset = reset
        L.init_layer(self, input_size, hidden_size, learn_h0, dtype, check_finite)
        self.update_bias = check_bias_value("update_bias", update_bias)
        self.ln = resolve_ln(ln, "GRU", has_cell=False)
        if self.ln is not None and self.ln.fuse_candidate and reset != "after":
            raise ValueError(f"reset: LNConfig.fuse_candidate normalizes [W_h h | W_hhat h] as one product and needs "
                             f"reset='after', got {reset!r}")
        self.ln_name = ln if isinstance(ln, str) else None
        H, D = self.hidden_size, self.input_size
        rng = I.as_rng(rng)
        make = draw_weights(init)
        self.add_param("W_x", make((D, 2 * H), rng, self.dtype))
        self.add_param("W_h", make((H, 2 * H), rng, self.dtype))
        self.add_param("W_xhat", make((D, H), rng, self.dtype))
        self.add_param("W_hhat", make((H, H), rng, self.dtype))
        b = self.add_param("b", I.zeros((2 * H,), dtype=self.dtype))
        b[:H] = self.update_bias
        self.add_param("b_hat", I.zeros((H,), dtype=self.dtype))
        add_ln_params(self, self.ln, 2, candidate=True)
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
        return ln_input_term(self, x, 2, candidate=True)

    def input_term_backward(self, dA, icache):
        return ln_input_term_backward(self, dA, icache, 2, candidate=True)

    def step_context(self, T) -> LNContext:
        return ln_step_context(self, 2, candidate=True)

    def step(self, t, a_t, state, ctx: LNContext):
        fused = {} if ctx.norm_hh is None else {"norm_hh": ctx.norm_hh}  # haste's one LN of [W_h h | W_hhat h]
        h, cache = F.gru_step(a_t, state[0], ctx.W_hh, reset=self.reset, norm_h=ctx.norm_h, norm_hc=ctx.norm_hc,
                              norm_a=ctx.norm_a, norm_ac=ctx.norm_ac, **fused)
        return (h,), cache

    def step_backward(self, t, dstate, cache, ctx: LNContext, out):
        g = F.gru_step_backward(dstate[0], cache, weight_grad=False, out=out)
        add_ln_step_grads(self, g)
        add_fused_norm_grads(self, getattr(g, "norm_hh", None))
        return (g.h_prev,), g.a_hh

    def recurrent_grads(self, ctx: LNContext, Hs, caches, dAh):
        """``dW_h = sum_t h_{t-1}^T da_{h,t}``, and ``dW_hhat`` the same with the candidate product's input:
        ``h_{t-1}`` ("after": both in one product) or ``r_t * h_{t-1}`` ("before")."""
        H = self.hidden_size
        Hprev = Hs[:-1].reshape(-1, H)
        if self.reset == "after":
            dW = Hprev.T @ dAh.reshape(-1, 3 * H)
            self.grads["W_h"] += dW[:, : 2 * H]
            self.grads["W_hhat"] += dW[:, 2 * H:]
        else:
            RH = get_array_module(Hs).stack([c.rh for c in caches]).reshape(-1, H)  # r_t * h_{t-1}
            dAh = dAh.reshape(-1, 3 * H)
            self.grads["W_h"] += Hprev.T @ dAh[:, : 2 * H]
            self.grads["W_hhat"] += RH.T @ dAh[:, 2 * H:]

    def extra_repr(self):
        ln = self.ln_name if self.ln_name is not None else self.ln
        return f"{self.input_size}, {self.hidden_size}, ln={ln!r}, reset={self.reset!r}"
