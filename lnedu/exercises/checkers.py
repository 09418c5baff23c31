"""Automatic checkers for the course exercises: run a student's function, then say in plain words what is wrong.

Every checker calls the student's function on random float64 test cases (fixed seeds, several shapes, never
zeros or ones), compares each output with lnedu's own implementation, which is itself first checked against
central finite differences, and returns a :class:`CheckResult`. Its text names the output that is wrong, the
element where it is worst and by how much, and, when the error has the fingerprint of a classic slip (the mean
path left out, statistics over the wrong axis, a forgotten gain, ...), a hint about where to look. It never
shows the right numbers or the right code.

A student's stub still raises ``NotImplementedError``; the checker turns that into "exercise not done yet"
rather than a traceback, so that an exercise notebook runs from top to bottom. Under a grader (nbgrader sets
``NBGRADER_EXECUTION``; see :mod:`.grading`) a result that did not pass raises ``AssertionError`` with the same
words instead, so that the graded cell scores 0; ``result.assert_passed()`` asks for that in any setting.

The checkers run on NumPy host arrays whatever lnedu's backend, since students write NumPy.
"""

from __future__ import annotations

import copy
import os
import textwrap
import traceback
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .. import functional as F
from .._checks import check_one_of
from ..gradcheck import check_gradients, relative_error
from .grading import graded, under_grader

__all__ = [
    "CheckResult",
    "check_layer_norm_forward",
    "check_layer_norm_backward",
    "check_invariance_row",
    "check_lstm_step_backward",
    "check_gru_step_backward",
]

PASSED, FAILED, NOT_DONE = "passed", "failed", "not done"

TOL = 1e-8
"""Largest relative error (normwise, as in :mod:`lnedu.gradcheck`) still counted right when comparing with
lnedu: float64 rounding gives about 1e-15, and every slip the checkers know about gives more than 1e-6."""

FD_TOL = 1e-6
"""Largest relative error between lnedu's analytic gradients and central differences (a right one: ~1e-10)."""

_SEED = 1607_06450  # the paper's arXiv number: the same test cases on every run
_WIDTH = 100  # feedback lines are wrapped to this many characters


# --------------------------------------------------------------------------------------------------
# the result


@dataclass(frozen=True)
class CheckResult:
    """What a checker found: ``status`` is ``"passed"``, ``"failed"`` or ``"not done"``, and ``lines`` say why.

    Its text (``str``, and what Jupyter shows) is the feedback for the student; ``passed`` is for code.
    """

    exercise: str
    status: str
    lines: tuple

    @property
    def passed(self) -> bool:
        return self.status == PASSED

    def __str__(self) -> str:
        head = {PASSED: "PASSED", FAILED: "NOT YET RIGHT", NOT_DONE: "NOT DONE YET"}[self.status]
        body = [textwrap.fill(line, _WIDTH, initial_indent="  ", subsequent_indent="    ", break_long_words=False,
                              break_on_hyphens=False) for line in self.lines]
        return "\n".join([f"{self.exercise}: {head}"] + body)

    __repr__ = __str__

    def _repr_pretty_(self, p, cycle):  # IPython shows the feedback, not a dataclass repr
        p.text(str(self))

    def assert_passed(self) -> CheckResult:
        """``self`` if the exercise passed, else ``AssertionError`` carrying the feedback (for a graded cell)."""
        if not self.passed:
            raise AssertionError("\n" + str(self))
        return self

    def __getattr__(self, name):
        # nbgrader reads a graded cell's *value* as partial credit; under a grader the feedback is shown as display
        # output instead (IPython asks for _ipython_display_ first), so a passed cell keeps its full points
        if name == "_ipython_display_" and under_grader():
            return self._display_as_output
        raise AttributeError(name)

    def _display_as_output(self):
        from IPython.display import display

        display({"text/plain": str(self)}, raw=True)


class _Verdict(Exception):
    """Raised inside a checker to stop at the first problem found, with the words for the student."""

    def __init__(self, status: str, lines):
        super().__init__(status)
        self.status = status
        self.lines = [line for line in lines if line]


def _fail(*lines):
    raise _Verdict(FAILED, lines)


def _run(exercise: str, body) -> CheckResult:
    """The result of ``body`` (its lines: passed; a :class:`_Verdict`: failed or not done), passed through
    :func:`.grading.graded`, which raises under a grader unless it passed."""
    try:
        lines = body()
    except _Verdict as v:
        return graded(CheckResult(exercise, v.status, tuple(v.lines)))
    return graded(CheckResult(exercise, PASSED, tuple(lines)))


# --------------------------------------------------------------------------------------------------
# calling the student's function


def _name(fn) -> str:
    return getattr(fn, "__name__", None) or type(fn).__name__


def _check_callable(fn, what: str):
    if not callable(fn):
        raise TypeError(f"fn: expected your function ({what}), got {type(fn).__name__}")


_LNEDU_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _student_frame(exc) -> str:
    """The line of the student's own code where ``exc`` was raised, as `` in NAME: `code` ``, or ''."""
    frames = [
        f for f in traceback.extract_tb(exc.__traceback__)
        if not os.path.abspath(f.filename).startswith(_LNEDU_DIR + os.sep) and "site-packages" not in f.filename
    ]
    if not frames or not frames[-1].line:
        return ""
    return f" in {frames[-1].name}, at `{frames[-1].line.strip()}`"


def _call(fn, case: str, *args):
    """``fn(*args)``; a stub's NotImplementedError becomes "not done yet", any other error a failure."""
    try:
        return fn(*args)
    except NotImplementedError as exc:
        raise _Verdict(NOT_DONE, [
            f"exercise not done yet: {_name(fn)} raised NotImplementedError({str(exc)!r}).",
            "Write your code in the exercise cell (in place of the `raise NotImplementedError(...)` line), run that "
            "cell, then run this one again.",
        ]) from None
    except Exception as exc:
        hint = ""
        if "broadcast" in str(exc):
            hint = ("Hint: a statistic of each row has shape (N,) unless you keep its axis; take it with "
                    "keepdims=True, shape (N, 1), so that it broadcasts against the (N, H) rows.")
        raise _Verdict(FAILED, [
            case,
            f"{_name(fn)} raised {type(exc).__name__}: {exc}{_student_frame(exc)}",
            hint,
        ]) from None


def _host(value):
    """``value`` brought to the host if it is a CuPy array (a student may hand one back), else as it is.

    Told by the array's type, without importing CuPy: only code that has imported CuPy can hold one, and the
    import cost a student's first check about a second where CuPy is installed (the ``[gpu]`` extra)."""
    if type(value).__module__.split(".")[0] in ("cupy", "cupyx") and callable(getattr(value, "get", None)):
        return value.get()
    return value


def _as_array(label: str, value, shape, case: str = "", shape_hints=()):
    """``value`` as a float64 array of ``shape``, or a failure that says what came back instead.

    ``case`` describes the test case; ``shape_hints`` are ``(wrong_shape, hint)`` pairs for shapes that betray a
    known slip.
    """
    if value is None:
        _fail(case, f"{label} is None: your function has to return it.")
    value = _host(value)
    try:
        arr = np.asarray(value, dtype=np.float64).view(_Answer)
    except (TypeError, ValueError):
        _fail(case, f"{label} should be an array, but your function returned a {type(value).__name__}.")
    arr.came_as = getattr(value, "dtype", None)
    if arr.shape != tuple(shape):
        hint = next((h for s, h in shape_hints if tuple(s) == arr.shape), "")
        if not hint and arr.shape == tuple(shape)[::-1]:
            hint = "Hint: that is the transpose of the right shape."
        _fail(case, f"{label} has shape {arr.shape}; it should have shape {tuple(shape)}.", hint)
    if not np.isfinite(arr).all():
        bad = np.unravel_index(int(np.argmin(np.isfinite(arr))), arr.shape)
        _fail(case, f"{label} holds NaN or inf values, the first at {label}{_index(bad)}.",
              "Hint: a division by zero or a square root of a negative number?")
    return arr


class _Answer(np.ndarray):
    """A student's array as float64, remembering the dtype it came in (``came_as``) for the dtype hint."""

    came_as = None


def _index(idx) -> str:
    """An array index as plain numbers, ``[0, 3]`` (not ``[np.int64(0), np.int64(3)]``)."""
    return str([int(i) for i in idx])


def _plain(v):
    """A NumPy scalar as the Python number it holds (so that feedback prints ``0``, not ``np.int64(0)``)."""
    return v.item() if isinstance(v, np.generic) else v


def _unpack(value, names, fn):
    """The student's return value as a tuple of ``len(names)`` items."""
    n = len(names)
    if n == 1:
        return (value,)
    if not isinstance(value, (tuple, list)) or len(value) != n:
        got = f"a {type(value).__name__} of {len(value)} items" if isinstance(value, (tuple, list)) else (
            f"a {type(value).__name__}")
        _fail(f"{_name(fn)} should return {n} items ({', '.join(names)}), in that order; it returned {got}.")
    return tuple(value)


def _close(got, want, tol: float = TOL) -> bool:
    return got.shape == want.shape and relative_error(got, want)[0] < tol


def _what_is_wrong(label: str, got, want) -> list:
    """Words for a wrong output: the worst element and by how much, and its pattern if it is a simple one."""
    err, idx = relative_error(got, want)
    diff = abs(got[idx] - want[idx])
    scale = float(np.abs(want).max())
    lines = [f"{label} is wrong: the worst element is {label}{_index(idx)}, off by {diff:.2e} "
             f"(the right {label} has entries up to about {scale:.2g} in size; relative error {err:.1e})."]
    if _close(got, -want):
        lines.append(f"{label} has the wrong sign everywhere.")
    elif _close(got, np.zeros_like(want)):
        lines.append(f"{label} is zero everywhere.")
    else:
        k = float((got * want).sum() / (want * want).sum())
        if abs(k) > 1e-12 and _close(got, k * want):
            lines.append(f"{label} is off by a constant factor: it is {k:.4g} times the right one.")
    came_as = getattr(got, "came_as", None)
    if came_as is not None and came_as.kind == "f" and came_as.itemsize < 8 and err < 1e-2:
        lines.append(f"Hint: your {label} is {came_as} (about {np.finfo(came_as).precision} significant digits); "
                     f"the test cases are float64 and the check asks for a relative error below {TOL:g}. "
                     "Compute in float64: do not convert the inputs or the result to a lower precision.")
    return lines


def _first_match(got, slips):
    """The hint of the first ``(alternative, hint)`` in ``slips`` that ``got`` equals, or ''."""
    for alternative, hint in slips:
        if alternative is not None and _close(got, alternative):
            return "Hint: " + hint
    return ""


def _projected_loss(forward, args, R):
    """``L() = sum(forward(*args)[0] * R)``: the scalar whose gradient a backward with ``dout = R`` computes."""
    return lambda: float((forward(*args)[0] * R).sum())


def _verify_library(label: str, loss, arrays: dict, analytic: dict):
    """Guard against a broken lnedu: its analytic gradients must match central differences of ``loss``."""
    report = check_gradients(loss, arrays, analytic)
    if not report.max_rel_error < FD_TOL:
        raise RuntimeError(f"lnedu's own {label} disagrees with finite differences ({report.worst}, relative "
                           f"error {report.max_rel_error:.1e}); the checker cannot be trusted: please report this")


def _copy(cache):
    """A copy of a cache (a named tuple) whose arrays the student may change without harm."""
    return type(cache)(*(c.copy() if isinstance(c, np.ndarray) else c for c in cache))


# --------------------------------------------------------------------------------------------------
# layer norm: test data


class _LNCase(NamedTuple):
    text: str  # how the case is described to the student
    x: np.ndarray
    gain: np.ndarray
    bias: np.ndarray
    eps: float


_LARGE_OFFSET = "(rows with a large common offset: mean 1e6 to 1e7, spread 1)"


def _ln_cases() -> list:
    """Rows with different offsets and spreads, a batch of one, a row whose variance is below eps, another eps,
    and float64 rows with means of 1e6 to 1e7: there the one-pass variance E[x^2] - E[x]^2 loses 5 to 9 digits
    (relative error 6e-5 to 1e-2 in y) while a two-pass one keeps y to 1e-10 (review of notebook 01, N1-1)."""
    rng = np.random.default_rng(_SEED)
    cases = []
    for (n, h), eps, spread in [((4, 8), 1e-5, 1.0), ((1, 6), 1e-5, 1.0), ((5, 7), 1e-5, 1e-3), ((3, 5), 1e-2, 1.0)]:
        offset = rng.normal(0.0, 3.0, (n, 1))
        scale = spread * rng.uniform(0.5, 2.0, (n, 1))
        x = offset + scale * rng.standard_normal((n, h))
        gain, bias = rng.normal(1.0, 0.3, h), rng.normal(0.0, 0.3, h)
        text = f"x of shape {(n, h)}, random gain and bias, eps = {eps:g}"
        if spread < 1:
            text += " (rows with a variance below eps)"
        cases.append(_LNCase(f"Test case {len(cases) + 1}: {text}.", x, gain, bias, eps))
    n, h = 4, 16
    x = 10.0 ** rng.uniform(6.0, 7.0, (n, 1)) + rng.standard_normal((n, h))
    gain, bias = rng.normal(1.0, 0.3, h), rng.normal(0.0, 0.3, h)
    cases.append(_LNCase(f"Test case {len(cases) + 1}: x of shape {(n, h)}, random gain and bias, eps = 1e-05 "
                         f"{_LARGE_OFFSET}.", x, gain, bias, 1e-5))
    return cases


def _standardized(x, eps, *, axis=-1, ddof=0, eps_outside=False, center=True, root=True):
    """``(x - mean) / sqrt(var + eps)`` and the variants a student may write by mistake."""
    d = x - x.mean(axis=axis, keepdims=True) if center else x
    var = ((x - x.mean(axis=axis, keepdims=True)) ** 2).sum(axis=axis, keepdims=True) / (x.shape[axis] - ddof)
    if not root:
        return d / (var + eps)
    if eps_outside:
        return d / (np.sqrt(var) + eps)
    return d / np.sqrt(var + eps)


# --------------------------------------------------------------------------------------------------
# layer norm forward


def check_layer_norm_forward(fn) -> CheckResult:
    r"""Check ``fn(x, gain, bias, eps) -> y``, layer norm of the rows of ``x`` (N, H) (the paper's Eq. 3 and 5).

    ``y = gain * (x - mu) / sqrt(sigma^2 + eps) + bias`` with ``mu`` and the biased ``sigma^2`` of each row.
    Compared with :func:`lnedu.functional.layer_norm` on four test cases; a wrong answer is matched against
    the usual slips: statistics over the batch, a forgotten gain or bias, eps outside the root or missing,
    the unbiased variance, no square root, no centring, eps hard-wired, the input changed in place.
    """
    _check_callable(fn, "my_layer_norm(x, gain, bias, eps)")

    def body():
        cases = _ln_cases()
        for case in cases:
            x, g, b, eps = case.x.copy(), case.gain.copy(), case.bias.copy(), case.eps
            y = _as_array("y", _call(fn, case.text, x, g, b, eps), case.x.shape, case.text, [
                ((case.x.shape[0], 1), "Hint: y has one value per row: did you return a statistic of the row "
                                       "instead of the normalized row?"),
            ])
            if not (np.array_equal(x, case.x) and np.array_equal(g, case.gain) and np.array_equal(b, case.bias)):
                _fail(case.text, "Your function changed its inputs in place (x, gain or bias). Compute into new "
                                 "arrays: the caller still needs its x.")
            want, _ = F.layer_norm(case.x, case.gain, case.bias, eps)
            if _close(y, want):
                continue
            xs, g, b = case.x, case.gain, case.bias
            if _LARGE_OFFSET in case.text:
                _fail(case.text, *_what_is_wrong("y", y, want),
                      "Hint: your function is right on the ordinary rows but not on rows whose mean is huge next to "
                      "their spread. The one-pass variance E[x^2] - E[x]^2 subtracts two numbers of about 1e13 that "
                      "agree in almost all their digits (catastrophic cancellation; section 5). Centre the row "
                      "first, then average the squares: ((x - mu)**2).mean(...).")
            slips = [
                (_standardized(xs, eps, axis=0) * g + b if xs.shape[0] > 1 else None,
                 "you took the mean and variance over the cases (axis 0), one per unit: that is batch norm. "
                 "Layer norm takes them over the H units of each row (axis=-1)."),
                (_standardized(xs, eps) + b, "the gain g multiplies the normalized row before the bias is added."),
                (_standardized(xs, eps) * g, "the bias b is added after the gain."),
                (_standardized(xs, eps) * b + g, "the gain and the bias have swapped roles."),
                (_standardized(xs, eps, eps_outside=True) * g + b,
                 "eps belongs inside the square root, added to the variance: sqrt(var + eps)."),
                (_standardized(xs, 0.0) * g + b if np.all(xs.var(axis=-1) > 0) else None,
                 "eps is missing: it is added to the variance inside the square root (it keeps a row with a "
                 "tiny variance from blowing up)."),
                (_standardized(xs, eps, ddof=1) * g + b,
                 "layer norm's variance divides by H (the biased estimate), not by H - 1."),
                (_standardized(xs, eps, root=False) * g + b,
                 "you divided by the variance; divide by the standard deviation sqrt(var + eps)."),
                (_standardized(xs, eps, center=False) * g + b, "subtract the row's mean before dividing."),
                (_standardized(xs, 1e-5) * g + b if eps != 1e-5 else None,
                 "use the eps your function receives as an argument, not a fixed 1e-5."),
            ]
            _fail(case.text, *_what_is_wrong("y", y, want), _first_match(y, slips))
        return [f"Your {_name(fn)} agrees with lnedu.functional.layer_norm on {len(cases)} random test cases "
                "(batches of one and of several cases, a row with a variance below eps, two values of eps, rows "
                "with a large common offset)."]

    return _run("Exercise: layer norm forward", body)


# --------------------------------------------------------------------------------------------------
# layer norm backward


_STAGED_HINTS = {
    "mean": "each row of dx is off by a constant: the mean path is missing or wrong. x feeds both step 1 "
            "(the mean) and step 2 (the centring): its gradient is the sum of both, and the mean's share goes "
            "to every entry of the row.",
    "sigma": "each row of dx is off by a multiple of xhat: the sigma path is missing or wrong. xc feeds both "
             "step 3 (the square) and step 7: add both gradients. Check steps 3 to 6 (the factor 2, the 1/H of "
             "the mean, the derivatives of the square root and of 1/std).",
    "both": "each row of dx is off by a constant plus a multiple of xhat: both the mean path (steps 1-2) and the "
            "sigma path (steps 3-6) are off.",
}

_COMPACT_HINTS = {
    "mean": "each row of dx is off by a constant: the mean path is missing or wrong. Did you subtract the mean "
            "of dxhat (over the H units of the row)?",
    "sigma": "each row of dx is off by a multiple of xhat: the sigma path is missing or wrong. Did you subtract "
             "xhat times the mean of dxhat * xhat?",
    "both": "each row of dx is off by a constant plus a multiple of xhat: both the mean path and the sigma path "
            "are off.",
}


def _path_hint(dx, want, xhat, hints) -> str:
    """If ``dx - want`` is, row by row, a constant plus a multiple of ``xhat``, say which path is off."""
    diff = dx - want
    scale = np.abs(diff).max()
    alpha = diff.mean(axis=-1, keepdims=True)  # xhat has zero mean in every row, so the two parts separate
    beta = (diff * xhat).mean(axis=-1, keepdims=True) / (xhat * xhat).mean(axis=-1, keepdims=True)
    if np.abs(diff - alpha - beta * xhat).max() > 1e-6 * scale:
        return ""
    mean_off = np.abs(alpha).max() > 1e-6 * scale
    sigma_off = np.abs(beta * xhat).max() > 1e-6 * scale
    return "Hint: " + hints["both" if (mean_off and sigma_off) else ("mean" if mean_off else "sigma")]


def _ln_dx_variant(dy, xhat, rstd, gain, *, axis=-1, with_gain=True, with_rstd=True):
    """The compact dx formula, and the variants a student may write by mistake."""
    dxhat = dy * gain if with_gain else dy
    dx = dxhat - dxhat.mean(axis=axis, keepdims=True) - xhat * (dxhat * xhat).mean(axis=axis, keepdims=True)
    return dx * rstd if with_rstd else dx


def check_layer_norm_backward(fn, kind: str = "compact") -> CheckResult:
    r"""Check a student's layer-norm backward ``fn(dy, cache) -> (dx, dgain, dbias)`` for x of shape (N, H).

    ``kind="compact"``: ``cache`` is what :func:`lnedu.functional.layer_norm` returns (``xhat``, ``rstd``,
    ``gain``); the expected answer is the collapsed formula
    ``dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))`` with ``dxhat = dy * gain``.
    ``kind="staged"``: ``cache`` comes from :func:`lnedu.functional.layer_norm_staged` (every node of the
    graph: ``x, mu, xc, sq, var, std, rstd, xhat, gain, H``), to be walked backwards step by step.

    lnedu's backward is first checked against central differences of the forward, then the student's three
    gradients are compared with it. A wrong ``dx`` is tested for the classic slips (the mean path, the sigma
    path, the gain, the axis, the ``1/sigma``), a wrong ``dgain`` or ``dbias`` for the wrong sum or product.
    """
    check_one_of("kind", kind, ("compact", "staged"))
    _check_callable(fn, "my_layer_norm_backward(dy, cache)")
    forward = F.layer_norm if kind == "compact" else F.layer_norm_staged
    hints = _COMPACT_HINTS if kind == "compact" else _STAGED_HINTS

    def body():
        rng = np.random.default_rng([_SEED, 1])
        # central differences cannot resolve rows of 1e7: the large-offset case is for the forward only
        cases = [c for c in _ln_cases() if _LARGE_OFFSET not in c.text]
        for case in cases:
            x, g, b, eps = case.x, case.gain, case.bias, case.eps
            y, cache = forward(x, g, b, eps)
            dy = rng.standard_normal(y.shape)
            want = F.layer_norm_backward(dy, F.layer_norm(x, g, b, eps)[1])
            _verify_library("layer_norm_backward", _projected_loss(forward, (x, g, b, eps), dy),
                            {"x": x, "gain": g, "bias": b}, dict(zip(("x", "gain", "bias"), want)))
            dy_in = dy.copy()
            got = _unpack(_call(fn, case.text, dy_in, _copy(cache)), ("dx", "dgain", "dbias"), fn)
            n, h = x.shape
            sums = [((n,), "Hint: that is one value per case: sum over the cases (axis 0), one value per unit."),
                    ((n, h), "Hint: the gain and bias are shared by every case, so their gradients are summed "
                             "over the cases (axis 0).")]
            dx = _as_array("dx", got[0], (n, h), case.text)
            dgain = _as_array("dgain", got[1], (h,), case.text, sums)
            dbias = _as_array("dbias", got[2], (h,), case.text, sums)
            if not np.array_equal(dy_in, dy):
                _fail(case.text, "Your function changed dy in place. Compute into new arrays.")
            xhat, rstd = (cache.xhat, cache.rstd)
            if not _close(dx, want[0]):
                slips = [
                    (_ln_dx_variant(dy, xhat, rstd, g, with_gain=False),
                     "dxhat = dy * gain: the gain multiplies xhat in the forward, so it multiplies the gradient "
                     "on the way back."),
                    (_ln_dx_variant(dy, xhat, rstd, g, axis=0) if n > 1 else None,
                     "your means run over the cases (axis 0). In layer norm every row has its own mean and "
                     "sigma, so the means in the backward run over the H units of each row (axis=-1)."),
                    (_ln_dx_variant(dy, xhat, rstd, g, with_rstd=False),
                     "dx is missing the factor 1/sigma (rstd) that xhat = xc / sigma puts on every path."),
                    (_ln_dx_variant(dy, xhat, rstd, g, with_rstd=False) / rstd,
                     "dx should be multiplied by 1/sigma (rstd), not by sigma."),
                    (g * _ln_dx_variant(dy, xhat, rstd, g, with_gain=False),
                     "multiply dy by the gain *before* taking the row means: dxhat = dy * gain, then the means of "
                     "dxhat and of dxhat * xhat."),
                ]
                hint = _first_match(dx, slips) or _path_hint(dx, want[0], xhat, hints)
                _fail(case.text, *_what_is_wrong("dx", dx, want[0]), hint)
            if not _close(dgain, want[1]):
                slips = [
                    (dy.sum(axis=0), "that is dbias: dgain sums dy times the normalized input xhat."),
                    ((dy * g * xhat).sum(axis=0), "dgain = sum over the cases of dy * xhat; the gain itself "
                                                  "does not appear in its own gradient."),
                    ((dy * x).sum(axis=0), "the gain multiplies the normalized input xhat, not x."),
                ]
                _fail(case.text, *_what_is_wrong("dgain", dgain, want[1]), _first_match(dgain, slips))
            if not _close(dbias, want[2]):
                slips = [
                    ((dy * g).sum(axis=0), "the bias is added after the gain: its gradient is dy summed over the "
                                           "cases, with no gain."),
                    ((dy * xhat).sum(axis=0), "that is dgain: dbias is dy summed over the cases."),
                ]
                _fail(case.text, *_what_is_wrong("dbias", dbias, want[2]), _first_match(dbias, slips))
        return [f"Your {_name(fn)} gives dx, dgain and dbias equal to lnedu's layer_norm_backward, itself "
                f"checked against finite differences, on {len(cases)} random test cases."]

    return _run(f"Exercise: layer norm backward ({kind})", body)


# --------------------------------------------------------------------------------------------------
# a row of the invariance table (Table 1)


_SMALL_INPUTS = 1e-3  # the summed inputs' scale of the third layer of each kind: real changes of h are small there


def _invariance_layers():
    """``(label, norm, layer_fn, x, W)`` for every normalization, at two sizes and once with small inputs
    (scale 1e-3, where weight norm's "No" changes h by only about 1e-3 relatively, so that a loose tolerance
    such as 0.1 fails): the student's function has to measure, since the same answer does not fit every layer."""
    from ..theory import invariance as I

    rng = np.random.default_rng([_SEED, 2])
    out = []
    for norm in ("layer", "batch", "weight", "rms", "none"):
        for n_cases, n_inputs, n_units, scale in ((16, 10, 8, 1.0), (6, 5, 7, 1.0), (12, 6, 5, _SMALL_INPUTS)):
            x, W, g, b = I.random_layer(n_cases, n_inputs, n_units, input_scale=scale, seed=rng)

            def layer(x, W, _norm=norm, _g=g, _b=b):
                return I.layer_output(_norm, I.Layer(x, W, _g, _b), eps=0.0)

            out.append((_LAYER_LABELS[norm], norm, layer, x, W))
    return out


_SHOULD_BE_INVARIANT = {
    "weight_rescale": "a re-scaling multiplies by a factor delta > 0 (a negative factor flips the sign of every "
                      "normalized value).",
    "weight_recenter": "in lnedu, W is (D, H) and unit j's weight vector is column j: re-centering the weights "
                       "adds the same vector gamma (length D) to every column of W.",
    "weight_vector_rescale": "one weight vector is one column W[:, k], unit k's incoming weights, not a row.",
    "data_rescale": "a re-scaling multiplies by a factor delta > 0 (a negative factor flips the sign of every "
                    "normalized value).",
    "data_recenter": "re-centering the dataset adds the same vector gamma (length D) to every case, that is to "
                     "every row of x.",
    "case_rescale": "a training case is one row x[m] of x (not a column), multiplied by a factor delta > 0.",
}

_TOLERANCE_HINT = ("compare the outputs with a tolerance relative to their size, not with ==: rounding alone "
                   "changes them by about 1e-16.")

_MISSED_CHANGE = ("your measurement missed a real change: is the factor far from 1 (or the shift comparable to the "
                  "data), and the tolerance tight enough? A real change of h is of order 0.1 to 1.")

_LOOSE_TOLERANCE = ("a real change can be small: with small inputs (scale 1e-3) a layer that is not invariant "
                    "changes h by only about 1e-3 of its size. Use a tolerance near rounding (about 1e-9 relative), "
                    "not 0.1.")

_NEGATIVE_FACTOR = ("every re-scaling that should leave h unchanged changes it in your measurement: is your factor "
                    "negative? A re-scaling multiplies by delta > 0; a negative factor flips the sign of every "
                    "normalized value (LN(delta a) = sign(delta) LN(a)).")

_RESCALINGS = ("weight_rescale", "weight_vector_rescale", "data_rescale", "case_rescale")

_LAYER_LABELS = {"layer": "layer-norm", "batch": "batch-norm", "weight": "weight-norm", "rms": "RMSNorm",
                 "none": "unnormalized"}


def check_invariance_row(fn) -> CheckResult:
    r"""Check ``fn(layer, x, W) -> six verdicts``: a row of Table 1 measured for any normalized layer.

    ``layer(x, W)`` returns ``h`` (N, H), the output of a layer ``f(N(x W))`` whose normalization is hidden
    inside it (lnedu's convention: ``x`` is (N, D), ``W`` is (D, H) with unit ``j``'s weights in column ``j``;
    no eps, as in the paper). ``fn`` applies each of the six transformations of Table 1 (in the order of
    :data:`lnedu.theory.invariance.TRANSFORMATIONS`) and says, by measuring, whether ``h`` stays the same:
    six booleans, or a dict from the transformation names to booleans.

    The checker hands ``fn`` layers with batch, weight, layer and RMS normalization and none at all, at two
    sizes, and compares with the table derived by :func:`lnedu.theory.invariance.derive_invariance`.
    """
    _check_callable(fn, "my_invariance_row(layer, x, W)")
    from ..theory import invariance as I

    def body():
        layers = _invariance_layers()
        expected, said = [], []  # one row of six verdicts per layer
        for label, norm, layer, x, W in layers:
            text = f"The {label} layer, x of shape {x.shape} and W of shape {W.shape}."
            if np.abs(x).max() < 100 * _SMALL_INPUTS:
                text = text[:-1] + f", small inputs (scale {_SMALL_INPUTS:g})."
            x_in, W_in = x.copy(), W.copy()
            got = _call(fn, text, layer, x_in, W_in)
            if not (np.array_equal(x_in, x) and np.array_equal(W_in, W)):
                _fail(text, "Your function changed x or W in place: transform copies (x * delta makes a new "
                            "array; x[m] *= delta does not).")
            said.append(_verdicts(got, fn, I.TRANSFORMATIONS))
            expected.append([I.derive_invariance(norm, t) for t in I.TRANSFORMATIONS])
        expected, said = np.array(expected), np.array(said)
        if (said == expected).all():
            return [f"Your {_name(fn)} measures the right row for all {len(layers)} layers it was given "
                    "(batch, weight, layer and RMS normalization and none, each at two sizes and with small inputs)."]
        if said.all():
            _fail("Your function says every layer is invariant to every transformation.",
                  "Hint: does each transformation really change x or W (a factor far from 1, a shift comparable "
                  "to the data)? Is your tolerance too loose? A real change of h is of order 0.1 to 1, or 1e-3 "
                  "with small inputs.")
        if not said.any():
            _fail("Your function says no layer is invariant to anything.", "Hint: " + _TOLERANCE_HINT)
        wrong = {}  # (layer, transformation) -> should it be invariant; the sizes count once
        small = np.array([np.abs(x).max() < 100 * _SMALL_INPUTS for _, _, _, x, _ in layers])
        for i, j in zip(*np.nonzero(said != expected)):
            wrong.setdefault((layers[i][0], I.TRANSFORMATIONS[j]), bool(expected[i, j]))
        lines = [f"{int((said != expected).sum())} of the {said.size} verdicts are wrong, among them:"]
        for (label, t), should in list(wrong.items())[:3]:
            claim = "changes" if should else "does not change"
            lines.append(f"- {I.TRANSFORMATION_LABELS[t].lower()}: for the {label} layer your function says the "
                         f"output {claim}; a careful measurement disagrees.")
        _fail(*lines, *("Hint: " + h for h in _invariance_hints(said, expected, small, wrong, I.TRANSFORMATIONS)))

    return _run("Exercise: a row of Table 1, measured", body)


def _invariance_hints(said, expected, small, wrong, transformations) -> list:
    """Only the hints that the pattern of wrong verdicts points to: a negative factor (every re-scaling that
    should be invariant is called a change, and nothing else is wrong), a loose tolerance (changes missed only
    on the small-input layers), the convention of the transformations that are wrong, and the tolerance of the
    comparison only when the verdicts on the invariant cells are wrong for most transformations."""
    missed = (said != expected) & ~expected  # said invariant, is not
    false_alarm = (said != expected) & expected  # said it changes, is invariant
    rescale = np.array([t in _RESCALINGS for t in transformations])
    if false_alarm.any() and not missed.any() and not false_alarm[:, ~rescale].any() and \
            false_alarm[:, rescale].sum() == expected[:, rescale].sum():
        return [_NEGATIVE_FACTOR]
    hints = []
    if missed.any():
        hints.append(_LOOSE_TOLERANCE if missed[small].any() and not missed[~small].any() else _MISSED_CHANGE)
    bad = [t for k, t in enumerate(transformations) if false_alarm[:, k].any()]
    if len(bad) >= 4:  # most invariant cells look changed: the comparison itself, not a convention
        hints.append(_TOLERANCE_HINT)
    else:
        hints += [_SHOULD_BE_INVARIANT[t] for t in bad]
    return hints


def _verdicts(got, fn, transformations) -> list:
    """The student's six verdicts as Python bools, in the order of ``transformations``."""
    if isinstance(got, dict):
        if set(got) != set(transformations):
            _fail(f"{_name(fn)} returned a dict with keys {sorted(got)}; it should have exactly the six "
                  f"transformation names {list(transformations)}.")
        got = [got[t] for t in transformations]
    if isinstance(got, np.ndarray):
        got = list(got)
    if not isinstance(got, (list, tuple)) or len(got) != len(transformations):
        _fail(f"{_name(fn)} should return six verdicts (True: invariant), one per transformation in the order "
              f"{list(transformations)}; it returned {type(got).__name__}"
              + (f" of length {len(got)}." if isinstance(got, (list, tuple)) else "."))
    out = []
    for v in got:
        if not isinstance(v, (bool, np.bool_)):
            _fail(f"{_name(fn)} should return True or False for each transformation; one verdict is a "
                  f"{type(v).__name__} ({_plain(v)!r}).")
        out.append(bool(v))
    return out


# --------------------------------------------------------------------------------------------------
# one step of the LN-LSTM and the LN-GRU, backward


_EPS = 1e-5  # the cells' layer-norm eps, as in the paper's released code


class _StepCase(NamedTuple):
    text: str
    inputs: dict  # the step's inputs, by name, in the forward's order
    upstream: dict  # dh (and dc): the gradients arriving from above


def _step_cases(kind: str) -> list:
    """Random float64 inputs for one LN-LSTM or LN-GRU step: three sizes, a batch of one among them."""
    rng = np.random.default_rng([_SEED, 3 if kind == "lstm" else 4])
    k_gates, k_norm = (4, 4) if kind == "lstm" else (3, 2)
    cases = []
    for B, H in ((3, 4), (1, 3), (2, 5)):
        inputs = {"a_x": rng.standard_normal((B, k_gates * H)),
                  "h_prev": np.tanh(rng.standard_normal((B, H)))}
        if kind == "lstm":
            inputs["c_prev"] = rng.standard_normal((B, H))
            inputs["W_h"] = rng.standard_normal((H, 4 * H)) / np.sqrt(H)
        else:
            inputs["W_hh"] = rng.standard_normal((H, 3 * H)) / np.sqrt(H)
        second = "c" if kind == "lstm" else "hc"
        for name, size in (("h", k_norm * H), (second, H)):
            inputs[f"g_{name}"] = 1.0 + 0.3 * rng.standard_normal(size)
            inputs[f"b_{name}"] = 0.3 * rng.standard_normal(size)
        upstream = {"dh": rng.standard_normal((B, H))}
        if kind == "lstm":
            upstream["dc"] = rng.standard_normal((B, H))
        cases.append(_StepCase(f"Test case {len(cases) + 1}: a batch of {B}, H = {H} hidden units.", inputs, upstream))
    return cases


def _lstm_forward(a_x, h_prev, c_prev, W_h, g_h, b_h, g_c, b_c):
    return F.lstm_step(a_x, h_prev, c_prev, W_h, norm_h=F.Norm.layer(g_h, b_h, _EPS),
                       norm_c=F.Norm.layer(g_c, b_c, _EPS))


def _gru_forward(a_x, h_prev, W_hh, g_h, b_h, g_hc, b_hc):
    return F.gru_step(a_x, h_prev, W_hh, reset="after", norm_h=F.Norm.layer(g_h, b_h, _EPS),
                      norm_hc=F.Norm.layer(g_hc, b_hc, _EPS))


_LSTM_OUTPUTS = ("da_x", "dh_prev", "dc_prev", "dW_h", "dg_h", "db_h", "dg_c", "db_c")
_GRU_OUTPUTS = ("da_x", "dh_prev", "dW_hh", "dg_h", "db_h", "dg_hc", "db_hc")


def _lstm_truth(case):
    """lnedu's gradients of one LN-LSTM step, after checking them against finite differences."""
    p, dh, dc = case.inputs, case.upstream["dh"], case.upstream["dc"]
    h, c, cache = _lstm_forward(**p)
    g = F.lstm_step_backward(dh, dc, cache)
    want = (g.a_x, g.h_prev, g.c_prev, g.W_h, *g.norm_h, *g.norm_c)

    def loss():
        h, c, _ = _lstm_forward(**p)
        return float((h * dh).sum() + (c * dc).sum())

    _verify_library("lstm_step_backward", loss, p, dict(zip(p, want)))
    return cache, want


def _gru_truth(case):
    """lnedu's gradients of one LN-GRU step, after checking them against finite differences."""
    p, dh = case.inputs, case.upstream["dh"]
    h, cache = _gru_forward(**p)
    g = F.gru_step_backward(dh, cache)
    want = (g.a_x, g.h_prev, g.W_hh, *g.norm_h, *g.norm_hc)
    _verify_library("gru_step_backward", _projected_loss(_gru_forward, tuple(p.values()), dh), p,
                    dict(zip(p, want)))
    return cache, want


def _lstm_outputs(g) -> list:
    """The eight gradients of an :class:`~lnedu.functional.LSTMStepGrads`, a missing norm's as ``None``."""
    return [g.a_x, g.h_prev, g.c_prev, g.W_h, *(g.norm_h or (None, None)), *(g.norm_c or (None, None))]


def _gru_outputs(g) -> list:
    return [g.a_x, g.h_prev, g.W_hh, *(g.norm_h or (None, None)), *(g.norm_hc or (None, None))]


def _lstm_slip(case, cache, want, *, dc_next=True, ln_c=True, gain_c=True, tanh_grad=True, gate_grads=True,
               forget_into_dc_prev=True, order="fiog", ln_h=True) -> list:
    """What an LN-LSTM backward returns with one classic slip (one flag changed), built on lnedu's own step.

    Most slips are lnedu's :func:`~lnedu.functional.lstm_step_backward` on the same cache with its upstream
    gradient or its cache changed (the backward is linear in ``dh`` and ``dc``, so a gradient that reaches
    ``c_t`` wrongly is a change of ``dc``); the others change ``da_x``, and what follows it is
    :func:`~lnedu.functional.normalize_backward` and the two products, as in the step.
    """
    dh, dc = case.upstream["dh"], case.upstream["dc"]
    H = dh.shape[1]
    f, i, o, g = np.split(cache.gates, 4, axis=1)
    dc_hat = dh * o * (1 - cache.tanh_c**2)  # the gradient at LN_c's output

    def backward(dc=dc, cache=cache):
        return _lstm_outputs(F.lstm_step_backward(dh, dc, cache))

    def ln_c_back(d, norm_cache=cache.norm_c):
        return F.normalize_backward(d, norm_cache)

    def from_da(out, da):  # da_x changed: LN_h's backward and the products follow from it
        da_h, dg_h, db_h = F.normalize_backward(da, cache.norm_h)
        return [da, da_h @ cache.W_h.T, out[2], cache.h_prev.T @ da_h, dg_h, db_h, *out[6:]]

    if not dc_next:
        return backward(dc=None)
    if not ln_c:  # dc_hat reaches c_t as it is
        return backward(dc=dc + dc_hat - ln_c_back(dc_hat)[0])
    if not gain_c:
        no_gain = cache.norm_c._replace(inner=cache.norm_c.inner._replace(gain=None))
        return backward(dc=dc + ln_c_back(dc_hat, no_gain)[0] - ln_c_back(dc_hat)[0])
    if not tanh_grad:  # dh * o reaches LN_c, that is dc_hat + dh * o * tanh^2
        extra, dgain, dbias = ln_c_back(dh * o * cache.tanh_c**2)
        out = backward(dc=dc + extra)
        return out[:6] + [out[6] + dgain, out[7] + dbias]
    if not gate_grads:
        return from_da(want, want[0] / np.concatenate([f * (1 - f), i * (1 - i), o * (1 - o), 1 - g * g], axis=1))
    if not forget_into_dc_prev:
        return [*want[:2], want[2] / f, *want[3:]]
    if order != "fiog":  # f's and i's blocks read and written the other way round
        check_one_of("order", order, ("fiog", "ifog"))
        swap = lambda a: np.concatenate([a[:, H:2 * H], a[:, :H], a[:, 2 * H:]], axis=1)  # noqa: E731
        out = backward(cache=cache._replace(gates=swap(cache.gates)))
        return from_da(out, swap(out[0]))
    if not ln_h:  # da_x reaches W_h and h_prev without LN_h's backward (whose gain and bias gradients are right)
        out = backward(cache=cache._replace(norm_h=None))
        return out[:4] + list(want[4:6]) + out[6:]
    return list(want)


def _gru_slip(case, cache, want, *, swap_update=False, direct_path=True, u_path=True, tanh_grad=True,
              r_into_du=True, ln_hc=True, gate_grads=True, ln_h=True) -> list:
    """What an LN-GRU backward (reset after ``U``) returns with one classic slip, built on lnedu's own step.

    lnedu's :func:`~lnedu.functional.gru_step_backward` gives the gradients at the gates' pre-activations
    ``da_zr`` and at the candidate's ``ds``; a slip changes some of them, and the rest of the step follows
    with :func:`~lnedu.functional.normalize_backward` and the products.
    """
    dh = case.upstream["dh"]
    H = dh.shape[1]
    z, r = np.split(cache.gates, 2, axis=1)
    h_prev, h_hat, u = cache.h_prev, cache.h_hat, cache.u
    da_zr, ds = want[0][:, :2 * H], want[0][:, 2 * H:]
    direct = dh * (1 - z)
    if swap_update:  # h = z h_prev + (1 - z) h_hat, the released code's convention
        ds = dh * (1 - z) * (1 - h_hat**2)
        da_zr = np.concatenate([dh * (h_prev - h_hat), ds * u], axis=1) * cache.gates * (1 - cache.gates)
        direct = dh * z
    if not tanh_grad:
        ds = dh * z
        da_zr = np.concatenate([dh * (h_hat - h_prev), ds * u], axis=1) * cache.gates * (1 - cache.gates)
    if not gate_grads:
        da_zr = da_zr / (cache.gates * (1 - cache.gates))
    du, dg_hc, db_hc = F.normalize_backward(ds * r if r_into_du else ds, cache.norm_hc)
    if not ln_hc:
        du = ds * r
    da_h, dg_h, db_h = F.normalize_backward(da_zr, cache.norm_h)
    if not ln_h:
        da_h = da_zr
    dh_prev = da_h @ cache.W_hh[:, :2 * H].T
    if u_path:
        dh_prev = dh_prev + du @ cache.W_hh[:, 2 * H:].T
    if direct_path:
        dh_prev = dh_prev + direct
    dW = h_prev.T @ np.concatenate([da_h, du], axis=1)
    return [np.concatenate([da_zr, ds], axis=1), dh_prev, dW, dg_h, db_h, dg_hc, db_hc]


_LSTM_SLIPS = (
    (dict(dc_next=False), "two gradients meet at c_t: the one from the output path (through tanh and LN) and "
                          "dc, the one from step t+1 through the carried cell. Add dc."),
    (dict(ln_c=False), "between c_t and the tanh sits LN(c_t; g_c, b_c): take the gradient back through that "
                       "layer norm (F.normalize_backward with cache.norm_c), not straight to c_t."),
    (dict(gain_c=False), "inside LN(c_t; g_c, b_c) the gain multiplies the normalized cell, so it multiplies "
                         "the gradient on the way back too."),
    (dict(tanh_grad=False), "h = o * tanh(LN(c_t)): on the way back, multiply by the tanh's derivative, "
                            "1 - tanh^2 (cache.tanh_c holds the tanh)."),
    (dict(gate_grads=False), "cache.gates holds the gate values sigma(a) and tanh(a); the gradients of the "
                             "pre-activations a need the derivatives s * (1 - s) and 1 - g^2."),
    (dict(forget_into_dc_prev=False), "c_t = f * c_prev + i * g: the gradient of c_prev is that of c_t times f."),
    (dict(order="ifog"), "the gate order is f, i, o, g: cache.gates holds sigma(a_f), sigma(a_i), sigma(a_o), "
                         "tanh(a_g) side by side, and da_x follows the same order. (The paper's released code "
                         "uses i, f, o, g.)"),
    (dict(ln_h=False), "the recurrent term is LN(h_prev W_h; g_h, b_h): take da back through that layer norm "
                       "(cache.norm_h) before it reaches W_h and h_prev."),
)

_GRU_SLIPS = (
    (dict(swap_update=True), "Eq. 28 keeps (1 - z) of the old state: h = (1 - z) * h_prev + z * h_hat. (The "
                             "paper's released code uses the opposite convention; this cell follows the equation.)"),
    (dict(direct_path=False), "h_prev reaches h_t along three paths: directly (the (1 - z) * h_prev term), "
                              "through the gates' LN(W_h h_prev), and through u = LN(U h_prev). The direct one "
                              "is missing from dh_prev."),
    (dict(u_path=False), "h_prev reaches h_t along three paths: directly, through the gates' LN(W_h h_prev), and "
                         "through u = LN(U h_prev). The one through u is missing from dh_prev."),
    (dict(tanh_grad=False), "h_hat = tanh(...): on the way back, multiply by its derivative, 1 - h_hat^2."),
    (dict(r_into_du=False), "the candidate adds r * u: the gradient that reaches u is multiplied by r."),
    (dict(ln_hc=False), "u = LN(U h_prev; g_hc, b_hc): take du back through that layer norm (cache.norm_hc) "
                        "before it reaches U and h_prev."),
    (dict(gate_grads=False), "cache.gates holds the gate values z = sigma(a_z) and r = sigma(a_r); the gradients "
                             "of the pre-activations need the sigmoid's derivative, s * (1 - s)."),
    (dict(ln_h=False), "the gates' recurrent term is LN(h_prev W_h; g_h, b_h): take their gradient back through "
                       "that layer norm (cache.norm_h) before it reaches W_h and h_prev."),
)

_LSTM_BLOCKS = {"da_x": ("f", "i", "o", "g"), "dW_h": ("f", "i", "o", "g"), "dg_h": ("f", "i", "o", "g"),
                "db_h": ("f", "i", "o", "g")}
_GRU_BLOCKS = {"da_x": ("z", "r", "candidate"), "dW_hh": ("z", "r", "candidate (U)"), "dg_h": ("z", "r"),
               "db_h": ("z", "r")}


def _block_words(label, got, want, blocks) -> str:
    """Which column blocks (gates) of a wrong output are wrong, in words, or ''."""
    n = len(blocks)
    width = want.shape[-1] // n
    bad = [not _close(got[..., k * width:(k + 1) * width], want[..., k * width:(k + 1) * width]) for k in range(n)]
    if all(bad):
        return ""
    wrong = [f"{blocks[k]} (columns {k * width}:{(k + 1) * width})" for k in range(n) if bad[k]]
    right = [blocks[k] for k in range(n) if not bad[k]]
    if len(wrong) == 1:
        return f"In {label}, the block of {wrong[0]} is wrong; those of {_words(right)} are right."
    return f"In {label}, the blocks of {_words(wrong)} are wrong; {_words(right)} right."


def _words(items) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _check_step(fn, exercise, kind, names, truth, reference, slips, blocks, signature) -> CheckResult:
    _check_callable(fn, signature)

    def body():
        cases = _step_cases(kind)
        for case in cases:
            cache, want = truth(case)
            upstream = {k: v.copy() for k, v in case.upstream.items()}
            got = _unpack(_call(fn, case.text, *upstream.values(), copy.deepcopy(cache)), names, fn)
            got = [_as_array(n, g, w.shape, case.text) for n, g, w in zip(names, got, want)]
            if any(not np.array_equal(upstream[k], v) for k, v in case.upstream.items()):
                _fail(case.text, f"Your function changed {' or '.join(case.upstream)} in place. Compute into new "
                                 "arrays.")
            wrong = [k for k in range(len(names)) if not _close(got[k], want[k])]
            if not wrong:
                continue
            first = wrong[0]
            lines = [case.text, *_what_is_wrong(names[first], got[first], want[first])]
            if names[first] in blocks:
                lines.append(_block_words(names[first], got[first], want[first], blocks[names[first]]))
            right = [names[k] for k in range(len(names)) if k not in wrong]
            lines.append(f"Wrong: {', '.join(names[k] for k in wrong)}. "
                         + (f"Right: {', '.join(right)}." if right else "None is right yet."))
            alternatives = [(reference(case, cache, want, **flags), hint) for flags, hint in slips]
            hint = next((h for alt, h in alternatives if all(_close(g, a) for g, a in zip(got, alt))), None)
            if hint is None:  # a half-done answer: the slip whose value matches the first wrong output
                hint = next((h for alt, h in alternatives if alt[first] is not None and _close(got[first], alt[first])),
                            None)
            if hint is not None:
                lines.append("Hint: " + hint)
            _fail(*lines)
        return [f"Your {_name(fn)} gives all {len(names)} gradients ({', '.join(names)}) equal to lnedu's, "
                f"themselves checked against finite differences, on {len(cases)} random test cases."]

    return _run(exercise, body)


def check_lstm_step_backward(fn) -> CheckResult:
    r"""Check ``fn(dh, dc, cache) -> (da_x, dh_prev, dc_prev, dW_h, dg_h, db_h, dg_c, db_c)``, one LN-LSTM step.

    The step is the LN paper's Eq. 20-22 (appendix), gate order f, i, o, g, as
    ``h, c, cache = F.lstm_step(a_x, h_prev, c_prev, W_h, norm_h=F.Norm.layer(g_h, b_h),
    norm_c=F.Norm.layer(g_c, b_c))``:

    .. math::
        a = a_x + \mathrm{LN}(h_{t-1}W_h; g_h, b_h),\quad (f, i, o, g) = (\sigma, \sigma, \sigma, \tanh)(a),\quad
        c_t = f\odot c_{t-1} + i\odot g,\quad h_t = o\odot\tanh\mathrm{LN}(c_t; g_c, b_c)

    ``dh`` and ``dc`` are the gradients of ``h_t`` and ``c_t`` (``dc`` from step t+1); ``cache`` is the
    :class:`~lnedu.functional.LSTMStepCache` (``h_prev, c_prev, W_h``, the gate values ``gates`` (B, 4H),
    ``tanh_c``, and the layer norms' caches ``norm_h``, ``norm_c`` for :func:`~lnedu.functional.normalize_backward`).
    Compared with :func:`lnedu.functional.lstm_step_backward`, itself checked by finite differences.
    """
    return _check_step(fn, "Exercise: LN-LSTM step backward", "lstm", _LSTM_OUTPUTS, _lstm_truth, _lstm_slip,
                       _LSTM_SLIPS, _LSTM_BLOCKS, "my_lstm_step_backward(dh, dc, cache)")


def check_gru_step_backward(fn) -> CheckResult:
    r"""Check ``fn(dh, cache) -> (da_x, dh_prev, dW_hh, dg_h, db_h, dg_hc, db_hc)``, one LN-GRU step.

    The step is the LN paper's Eq. 26-28 (appendix), gate order z, r, the reset applied after ``U`` as in
    Eq. 27: ``h, cache = F.gru_step(a_x, h_prev, W_hh, reset="after", norm_h=F.Norm.layer(g_h, b_h),
    norm_hc=F.Norm.layer(g_hc, b_hc))`` with ``W_hh = [W_h | U]`` (H, 3H) and ``a_x`` (B, 3H):

    .. math::
        (a_z; a_r) = a_x^{zr} + \mathrm{LN}(h_{t-1}W_h; g_h, b_h),\quad z, r = \sigma(a_z), \sigma(a_r),\quad
        \hat h = \tanh\big(a_x^{c} + r\odot\mathrm{LN}(h_{t-1}U; g_{hc}, b_{hc})\big),\quad
        h_t = (1-z)\odot h_{t-1} + z\odot\hat h

    ``cache`` is the :class:`~lnedu.functional.GRUStepCache` (``h_prev, W_hh``, ``gates`` = (z, r),
    ``u`` = LN(U h_prev), ``h_hat``, and the layer norms' caches ``norm_h``, ``norm_hc``). Compared with
    :func:`lnedu.functional.gru_step_backward`, itself checked by finite differences.
    """
    return _check_step(fn, "Exercise: LN-GRU step backward", "gru", _GRU_OUTPUTS, _gru_truth, _gru_slip,
                       _GRU_SLIPS, _GRU_BLOCKS, "my_gru_step_backward(dh, cache)")
