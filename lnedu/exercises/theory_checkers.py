"""Checkers for the exercises of notebooks 03 and 04: a block of a weight-normalized GLM's Fisher matrix, and
backprop through time over T steps of an LN-LSTM with a mask and a truncated window.

They work like those of :mod:`.checkers`: the student's function runs on random float64 test cases with fixed
seeds, its answer is compared with lnedu's (the Fisher matrix of :mod:`lnedu.theory.geometry`; the LSTM layer's
own ``backward``), and the feedback names the first wrong output and, when the error has the fingerprint of a
classic slip, a hint. A slip is recognized on the first wrong output alone, so a half-finished answer still gets
its hint.
"""

from __future__ import annotations

import copy

import numpy as np

from .. import functional as F
from .checkers import _as_array, _call, _check_callable, _close, _fail, _name, _run, _unpack, _what_is_wrong

__all__ = ["check_wn_fisher_block", "check_lstm_bptt"]

_SEED = 1607_06450


def _sigmoid(a):
    return 0.5 * (1.0 + np.tanh(0.5 * a))


# --------------------------------------------------------------------------------------------------
# notebook 03: the w-block of a weight-normalized logistic unit's Fisher matrix


def _wn_cases():
    rng = np.random.default_rng([_SEED, 30])
    cases = []
    for N, D, norm_w in ((40, 3, 2.5), (25, 4, 0.7), (60, 2, 4.0)):
        X = rng.standard_normal((N, D)) * rng.uniform(0.5, 2.0, D) + 0.3
        w = rng.standard_normal(D)
        w *= norm_w / np.linalg.norm(w)
        g, b = float(rng.uniform(0.6, 1.6)), float(rng.normal(0.0, 0.4))
        cases.append((f"Test case {len(cases) + 1}: X of shape {(N, D)}, ||w|| = {norm_w}, g = {g:.3g}, "
                      f"b = {b:.3g}.", X, w, g, b))
    return cases


def _wn_block_truth(X, w, g, b):
    """lnedu's Fisher matrix (by backprop, :func:`~lnedu.theory.geometry.fisher_exact`) of the one-output
    weight-normalized logistic GLM, its w-block; checked against Eq. 13 (:func:`fisher_analytic`)."""
    from ..theory import geometry as G

    m = G.GLM(w[:, None].copy(), np.array([b]), G.Logistic(), np.array([g]), "weight")
    exact, closed = G.fisher_exact(m, X), G.fisher_analytic(m, X)
    if not np.allclose(exact, closed, rtol=1e-10, atol=1e-14):
        raise RuntimeError("lnedu's Fisher matrix disagrees with Eq. 13 for weight norm; the checker cannot be "
                           "trusted: please report this")
    return G.block(exact, m, 0, "w")


def _wn_block_variant(X, w, g, b, *, project=True, factor=True, gain=True, weight=True, mean=True,
                      normalized_p=True):
    n = np.linalg.norm(w)
    a = X @ w
    p = _sigmoid(g * a / n + b if normalized_p else a + b)
    chi = X - np.outer(a / n**2, w) if project else X
    k = (g / n) ** 2 if factor else (1.0 / n**2 if not gain else g**2)
    v = p * (1 - p) if weight else np.ones_like(p)
    out = (chi * v[:, None]).T @ chi * k
    return out / len(X) if mean else out


_WN_SLIPS = (
    (dict(project=False), "chi = x - (w^T x / ||w||^2) w: weight norm's sigma = ||w|| depends on w too, which "
                          "removes the component of x along w (Eq. 14)."),
    (dict(factor=False, gain=False), "dz/dw = (g / ||w||) chi: the gain g multiplies the derivative too, so F "
                                     "carries (g / ||w||)^2."),
    (dict(factor=False, gain=True), "dz/dw = (g / ||w||) chi: F carries (g / ||w||)^2, the norm included."),
    (dict(weight=False), "each input's term is weighted by Cov[y|x] = p (1 - p), the Bernoulli variance."),
    (dict(mean=False), "F is an expectation over the inputs: the mean over the N rows of X, not their sum."),
    (dict(normalized_p=False), "p = sigmoid(z) with z = g w^T x / ||w|| + b, the normalized pre-activation."),
)


def check_wn_fisher_block(fn):
    r"""Check ``fn(X, w, g, b) -> F_ww`` (D, D): the ``w``-block of the Fisher matrix of one weight-normalized
    logistic unit ``p = sigmoid(g w^T x / ||w|| + b)`` over the inputs ``X`` (N, D), Eq. 13-14:

    .. math:: F_{ww} = \mathbb E_x\Big[p(1-p)\,\frac{g^2}{\|w\|^2}\,\chi\chi^T\Big],\qquad
              \chi = x - \frac{w^Tx}{\|w\|^2}\,w .

    Compared with :func:`lnedu.theory.geometry.fisher_exact` (by backprop), itself checked against Eq. 13.
    """
    _check_callable(fn, "my_wn_fisher_block(X, w, g, b)")

    def body():
        cases = _wn_cases()
        for text, X, w, g, b in cases:
            want = _wn_block_truth(X, w, g, b)
            X_in, w_in = X.copy(), w.copy()
            got = _as_array("F_ww", _call(fn, text, X_in, w_in, g, b), want.shape, text)
            if not (np.array_equal(X_in, X) and np.array_equal(w_in, w)):
                _fail(text, "Your function changed X or w in place. Compute into new arrays.")
            if _close(got, want):
                continue
            hint = next(("Hint: " + h for flags, h in _WN_SLIPS if _close(got, _wn_block_variant(X, w, g, b, **flags))),
                        "")
            _fail(text, *_what_is_wrong("F_ww", got, want), hint)
        return [f"Your {_name(fn)} gives the w-block of the Fisher matrix equal to lnedu's (by backprop, and "
                f"Eq. 13) on {len(cases)} random weight-normalized units."]

    return _run("Exercise: a block of the Fisher matrix (weight norm)", body)


# --------------------------------------------------------------------------------------------------
# notebook 04: backprop through time, T steps of an LN-LSTM, masked, in a truncated window


_BPTT_OUTPUTS = ("da_x", "dh_0", "dc_0", "dW_h", "dg_h", "db_h", "dg_c", "db_c")


def _bptt_cases():
    """An LN-LSTM layer (float64, gains and biases away from 1 and 0), inputs, a nonzero initial state (the
    window does not start the sequence), a mask with padded steps, and the gradients arriving from above."""
    from ..nn import LSTM

    rng = np.random.default_rng([_SEED, 40])
    cases = []
    for T, B, D, H in ((5, 3, 3, 4), (4, 1, 2, 3), (6, 2, 4, 2)):
        layer = LSTM(D, H, ln="appendix", rng=int(rng.integers(1 << 30)), dtype=np.float64)
        for name, p in layer.params.items():
            if name.startswith("g_"):
                p[...] = 1 + 0.3 * rng.standard_normal(p.shape)
            elif name.startswith("b"):
                p[...] = 0.3 * rng.standard_normal(p.shape)
        x = rng.standard_normal((T, B, D))
        state0 = (np.tanh(rng.standard_normal((B, H))), rng.standard_normal((B, H)))
        lengths = rng.integers(1, T + 1, B)
        lengths[0] = T - 1  # at least one padded step in every case
        mask = np.arange(T)[:, None] < lengths[None, :]
        dout = rng.standard_normal((T, B, H))
        dstate = (rng.standard_normal((B, H)), rng.standard_normal((B, H)))
        text = (f"Test case {len(cases) + 1}: T = {T} steps, a batch of {B} (lengths {list(map(int, lengths))}, "
                f"so mask has padded steps), H = {H}, a nonzero initial state and a nonzero gradient of the final "
                "state (a truncated window).")
        cases.append((text, layer, x, state0, mask, dout, dstate))
    return cases


def _bptt_truth(layer, x, state0, mask, dout, dstate):
    """The layer's own forward and backward: the step caches, and the eight answers (da_x through the
    layer's input term is compared as dx)."""
    layer.zero_grad()
    layer.forward(x, state0, mask)
    cache = layer._cache[0]
    dx, (dh0, dc0) = layer.backward(dout, dstate)
    g = layer.grads
    want = {"dx": dx, "dh_0": dh0, "dc_0": dc0, "dW_h": g["W_h"].copy(), "dg_h": g["g_h"].copy(),
            "db_h": g["b_h"].copy(), "dg_c": g["g_c"].copy(), "db_c": g["b_c"].copy()}
    return cache, want


def _dx_of(layer, icache, da_x):
    """The layer's input term backward applied to a student's da_x (grads saved and restored around it)."""
    saved = {k: v.copy() for k, v in layer.grads.items()}
    dx = layer.input_term_backward(np.ascontiguousarray(da_x), icache)
    for k, v in saved.items():
        layer.grads[k][...] = v
    return dx


def _bptt_reference(caches, mask, dout, dstate, *, with_dout=True, with_final=True, mask_pass=True,
                    accumulate=True, carry_c=True):
    """The BPTT loop over lnedu's step backward, or with one of the classic slips."""
    T = len(caches)
    dh, dc = (d.copy() for d in dstate) if with_final else (np.zeros_like(dstate[0]), np.zeros_like(dstate[1]))
    da_x = np.zeros((T,) + caches[0].gates.shape)
    sums = None
    for t in reversed(range(T)):
        m = mask[t][:, None] if mask_pass else np.ones_like(mask[t][:, None])
        up_h = dh + dout[t] if with_dout else dh
        g = F.lstm_step_backward(up_h * m, dc * m, caches[t])
        da_x[t] = g.a_x
        step = (g.W_h, *g.norm_h, *g.norm_c)
        sums = step if sums is None or not accumulate else tuple(s + d for s, d in zip(sums, step))
        dh = np.where(m, g.h_prev, dh)
        dc = np.where(m, g.c_prev, dc) if carry_c else np.zeros_like(dc)
    return (da_x, dh, dc, *sums)


_BPTT_SLIPS = (
    (dict(with_dout=False), "h_t receives two gradients: dout[t], from the output at step t, and the one from "
                            "step t+1 (dh_prev of the later step). Add both before the step's backward."),
    (dict(with_final=False), "the window is truncated: the loop starts from the gradient of the final state "
                             "(dh_T, dc_T, from the next window's backward), not from zeros."),
    (dict(mask_pass=False), "at a padded step (mask[t] False) the state was carried over unchanged, so its "
                            "gradient passes through unchanged too, and the step itself receives none: "
                            "use np.where(mask[t][:, None], ..., ...)."),
    (dict(accumulate=False), "the weights, gains and biases are shared by every step: their gradients are sums "
                             "over the T steps."),
    (dict(carry_c=False), "the cell state is carried too: dc_prev of step t is the dc arriving at step t-1."),
)


def check_lstm_bptt(fn):
    r"""Check ``fn(dout, dh_T, dc_T, caches, mask) -> (da_x, dh_0, dc_0, dW_h, dg_h, db_h, dg_c, db_c)``:
    backprop through time over the ``T`` steps of an LN-LSTM layer, with a mask and a truncated window.

    ``caches[t]`` is the :class:`~lnedu.functional.LSTMStepCache` of step ``t`` (from ``F.lstm_step``);
    ``dout`` (T, B, H) is the gradient of every step's output ``h_t``; ``dh_T, dc_T`` that of the final
    state, from the next window; ``mask`` (T, B) bool marks the real steps (at a padded step the state is
    carried over unchanged and the output is 0). ``da_x`` (T, B, 4H) holds every step's input-term gradient;
    ``dh_0, dc_0`` are the initial state's gradients; the parameter gradients are summed over the steps.

    Compared with :class:`lnedu.nn.LSTM`'s own ``backward`` (:func:`lnedu.nn.recurrent.bptt.run_backward`) on
    the same window: ``da_x`` through the layer's input term, as ``dx``.
    """
    _check_callable(fn, "my_lstm_bptt(dout, dh_T, dc_T, caches, mask)")

    def body():
        cases = _bptt_cases()
        for text, layer, x, state0, mask, dout, dstate in cases:
            cache, want = _bptt_truth(layer, x, state0, mask, dout, dstate)
            caches = list(cache.caches)
            args = (dout.copy(), dstate[0].copy(), dstate[1].copy(), copy.deepcopy(caches), mask.copy())
            got = _unpack(_call(fn, text, *args), _BPTT_OUTPUTS, fn)
            T, B = mask.shape
            shapes = [(T,) + caches[0].gates.shape, dstate[0].shape, dstate[1].shape] + [
                want[k].shape for k in _BPTT_OUTPUTS[3:]]
            got = [_as_array(n, v, s, text) for n, v, s in zip(_BPTT_OUTPUTS, got, shapes)]
            if not (np.array_equal(args[0], dout) and np.array_equal(args[1], dstate[0])
                    and np.array_equal(args[2], dstate[1])):
                _fail(text, "Your function changed dout, dh_T or dc_T in place. Compute into new arrays.")
            mine = [_dx_of(layer, cache.icache, got[0])] + got[1:]
            truth = [want["dx"]] + [want[k] for k in _BPTT_OUTPUTS[1:]]
            wrong = [k for k in range(len(truth)) if not _close(mine[k], truth[k])]
            if not wrong:
                continue
            first = wrong[0]
            lines = [text, *_what_is_wrong("dx" if first == 0 else _BPTT_OUTPUTS[first], mine[first], truth[first])]
            if first == 0:
                lines.insert(1, "Your da_x is compared through the layer's input term, as dx = the gradient of x.")
            right = [_BPTT_OUTPUTS[k] for k in range(len(truth)) if k not in wrong]
            lines.append(f"Wrong: {', '.join(_BPTT_OUTPUTS[k] for k in wrong)}. "
                         + (f"Right: {', '.join(right)}." if right else "None is right yet."))
            for flags, hint in _BPTT_SLIPS:  # a slip is recognized on the first wrong output alone
                alt = _bptt_reference(caches, mask, dout, dstate, **flags)
                alt_first = _dx_of(layer, cache.icache, alt[0]) if first == 0 else alt[first]
                if _close(mine[first], alt_first):
                    lines.append("Hint: " + hint)
                    break
            _fail(*lines)
        return [f"Your {_name(fn)} gives all {len(_BPTT_OUTPUTS)} gradients equal to those of lnedu's LSTM layer "
                f"(backward over the whole window) on {len(cases)} random windows with padded steps and a "
                "truncated start."]

    return _run("Exercise: backprop through time (LN-LSTM, masked, truncated)", body)
