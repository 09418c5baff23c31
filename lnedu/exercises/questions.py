"""Pen-and-paper questions with a checked numeric answer: ``exercises.check_answer("ln-entry", my_number)``.

Each question of the theory notebooks asks for one number that a student works out on paper (a normalized
entry, a ratio, a factor). The right value is computed here by lnedu itself (``F.layer_norm`` on the
question's row, the Fisher matrix of a weight-normalized model, ...), never typed, and an answer is right
when it agrees to three significant digits (``RTOL``). A wrong answer that matches a classic slip (the
unbiased variance, the sign of a factor, the length ``ds`` taken for the quadratic form, ...) gets a hint
about it; otherwise the checker says only that the number is not right, never what it should be.

The answer is a plain number (``0.25``, ``1/9`` or ``np.sqrt(3)`` are all fine) or, as in the notebooks, a
function without arguments that returns it; a stub that raises ``NotImplementedError`` (and ``None``) counts as
"not done yet".
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache
from typing import NamedTuple

import numpy as np

from .. import functional as F
from .checkers import NOT_DONE, CheckResult, _call, _fail, _run, _Verdict

__all__ = ["Question", "QUESTIONS", "check_answer", "RTOL"]

RTOL = 5e-3
"""Relative tolerance of an answer: three significant digits, as a careful hand calculation gives."""

_TINY_EPS = 1e-300  # the paper's normalizers have no eps; lnedu's functions want a positive one


class Question(NamedTuple):
    """One pen-and-paper question: where it is asked, what it asks, how lnedu computes the answer, and the
    wrong values a classic slip gives (each with its hint)."""

    notebook: str
    text: str
    answer: Callable[[], float]
    slips: Callable[[], tuple]  # ((value, hint), ...)


def _ln_row(a, eps=_TINY_EPS):
    return F.layer_norm(np.asarray([a], dtype=np.float64), None, None, eps=eps)[0][0]


# ---- notebook 01 ---------------------------------------------------------------------------------------------

_ROW = (1.0, 2.0, 3.0, 6.0)


def _ln_entry():
    return float(_ln_row(_ROW)[-1])


def _ln_entry_slips():
    a = np.array(_ROW)
    d = a[-1] - a.mean()
    return (
        (d / a.std(ddof=1), "layer norm's variance divides by H (the biased estimate), not by H - 1."),
        (a[-1] / a.std(), "subtract the row's mean before dividing."),
        (d / a.var(), "divide by the standard deviation, not by the variance."),
        (-d / a.std(), "check the sign: the last entry lies above the row's mean."),
    )


# ---- notebook 02 ---------------------------------------------------------------------------------------------


def _sign_factor():
    a = np.array([0.3, -1.2, 2.0, 0.7, -0.4])
    y, y_neg = _ln_row(a), _ln_row(-2.0 * a)
    k = float(y_neg @ y / (y @ y))
    assert np.allclose(y_neg, k * y, rtol=1e-12, atol=1e-14)
    return k


def _sign_slips():
    return (
        (1.0, "sigma is a square root, so it takes the absolute value of the factor (|-2| = 2), while a - mu "
              "takes its sign."),
        (-2.0, "the factor appears in the numerator a - mu and in the denominator sigma: most of it cancels."),
        (2.0, "the factor appears in the numerator a - mu and in the denominator sigma: most of it cancels."),
        (-0.5, "the factor appears in the numerator a - mu and in the denominator sigma: most of it cancels."),
    )


_VAR, _EPS, _DELTA = 1e-3, 1e-5, 1.0 / 8.0


def _eps_factor():
    a = math.sqrt(_VAR) * np.array([-1.0, 1.0])  # a row of two entries with variance exactly _VAR
    y, y_scaled = _ln_row(a, _EPS), _ln_row(_DELTA * a, _EPS)
    return float(y_scaled[1] / y[1])


def _eps_slips():
    return (
        (1.0, "with eps > 0 re-scaling is not exact: rewrite the scaled row's normalization with eps / delta^2 "
              "(notebook 02, section 5)."),
        (math.sqrt((_VAR + _EPS) / (_VAR + _EPS * _DELTA**2)),
         "re-scaling by delta is the same as dividing eps by delta^2 (not multiplying it)."),
        ((_VAR + _EPS) / (_VAR + _EPS / _DELTA**2), "the normalized values change by the square root of that ratio."),
    )


# ---- notebook 03 ---------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _wn_scaling():
    """Quadratic form and ds along a direction of w_0's block, for w_0 scaled by 1 and 3 (weight norm)."""
    from ..theory import geometry as G

    X = np.random.default_rng(3).standard_normal((60, 3)) + 0.3
    res = G.curvature_under_weight_scaling(G.random_glm(3, 2, G.Logistic(), "weight", seed=5), X, scales=(1, 3))
    r = res.ratios()
    return float(r["quad_form"][1]), float(r["ds"][1])


def _fisher_slips():
    return (
        (1 / 3, "that is the factor of the length ds = sqrt(d^T F d / 2); the quadratic form d^T F d is its square."),
        (1 / 2, "the paper's 1/2 is for doubling the norm, and it describes the length ds, not d^T F d."),
        (1.0, "the predictions do not change, but the metric does: sigma_i = ||w_i|| grows by 3 while chi_i "
              "stays the same, and F's w_i-block carries (g_i / sigma_i)^2."),
        (9.0, "a longer weight vector makes the same step *less* visible in the predictions: the factor is below 1."),
        (3.0, "a longer weight vector makes the same step *less* visible in the predictions: the factor is below 1."),
    )


def _ds_slips():
    return (
        (1 / 9, "that is the factor of the quadratic form d^T F d; ds = sqrt(d^T F d / 2) is its square root."),
        (1 / 2, "the paper's 1/2 is for doubling the norm; here the norm triples."),
        (1.0, "the predictions do not change, but the metric does: sigma_i = ||w_i|| grows by 3."),
        (3.0, "a longer weight vector makes the same step *less* visible in the predictions: the factor is below 1."),
    )


# ---- notebook 04 ---------------------------------------------------------------------------------------------

_FORGET, _STEPS = 0.9, 10


def _carousel():
    """delta c after _STEPS steps back along the carried cell with a constant forget gate, via lstm_step_backward's
    own rule dc_prev = dc * f (the other paths switched off: dh = 0)."""
    dc = np.ones((1, 1))
    for _ in range(_STEPS):
        dc = dc * _FORGET
    return float(dc[0, 0])


def _carousel_slips():
    return (
        (_FORGET * _STEPS, "the factors multiply: each step back multiplies delta c by f."),
        ((1 - _FORGET) ** _STEPS, "delta c_(t-1) = delta c_t * f: the forget gate itself, not 1 - f."),
        (_FORGET, "ten steps, ten factors of f."),
    )


def _tanh_pass():
    h = np.tanh(np.arctanh(0.9))
    return float(1 - h * h)


def _tanh_slips():
    return (
        (0.1, "tanh'(a) = 1 - tanh(a)^2 = 1 - h^2, not 1 - |h|."),
        (0.81, "that is h^2; the derivative is 1 - h^2."),
        (0.9, "the derivative of tanh is 1 - h^2, where h = tanh(a) is the unit's output."),
    )


QUESTIONS = {
    "ln-entry": Question(
        "01", f"the normalized value (eps = 0, no gain or bias) of the last entry of the row a = {_ROW}",
        _ln_entry, _ln_entry_slips),
    "ln-negative-factor": Question(
        "02", "the number k with LN(-2 a) = k LN(a) for any row a (eps = 0, no gain or bias)",
        _sign_factor, _sign_slips),
    "eps-rescale": Question(
        "02", f"the factor by which the normalized values of a row with variance {_VAR:g} change when the row is "
              f"re-scaled by delta = 1/8, with eps = {_EPS:g}", _eps_factor, _eps_slips),
    "wn-quad-form-triple": Question(
        "03", "the factor by which the quadratic form d^T F d along a direction in w_i's block changes when "
              "w_i of a weight-normalized model is tripled", lambda: _wn_scaling()[0], _fisher_slips),
    "wn-ds-triple": Question(
        "03", "the factor by which the metric length ds of that fixed step changes when w_i is tripled",
        lambda: _wn_scaling()[1], _ds_slips),
    "forget-carousel": Question(
        "04", f"the factor by which delta c shrinks over {_STEPS} steps back along the carried cell when the "
              f"forget gate is f = {_FORGET} at every step (and nothing else reaches c)", _carousel, _carousel_slips),
    "tanh-gradient": Question(
        "04", "the fraction of the gradient that a tanh unit passes back when its output is h = 0.9",
        _tanh_pass, _tanh_slips),
}


def _as_number(answer):
    if isinstance(answer, (bool, str, bytes)) or answer is None:
        return None
    try:
        value = float(np.asarray(answer, dtype=np.float64))
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def check_answer(question: str, answer) -> CheckResult:
    """Check a pen-and-paper answer: ``question`` is a key of :data:`QUESTIONS`, ``answer`` a number or a
    function without arguments that returns one.

    Right: within :data:`RTOL` (relative) of lnedu's value. A stub (``NotImplementedError``) or ``None`` is "not
    done yet"; a wrong number is compared with the values the classic slips give, and gets the matching hint.
    """
    if question not in QUESTIONS:
        raise ValueError(f"question: expected one of {sorted(QUESTIONS)}, got {question!r}")
    q = QUESTIONS[question]

    def body():
        given = _call(answer, f"Question: {q.text}.") if callable(answer) else answer
        if given is None:
            raise _Verdict(NOT_DONE, [f"question not answered yet: {q.text}. Return your number from the answer "
                                      "cell, run that cell, then this one."])
        value = _as_number(given)
        if value is None:
            _fail(f"expected one number, got {type(given).__name__} {given!r}.")
        right = q.answer()
        if abs(value - right) <= RTOL * abs(right):
            return [f"{value:.4g} is right: {q.text}."]
        near = [(abs(value - v) / max(abs(v), 1e-12), h) for v, h in q.slips()]  # the closest slip, if close
        hint = min(near)[1] if near and min(near)[0] <= RTOL else ""
        _fail(f"{value:.4g} is not right for {q.text}.",
              "Hint: " + hint if hint else "Check each step of your calculation (three significant digits are "
                                           "enough).")

    return _run(f"Question {question} (notebook {q.notebook})", body)
