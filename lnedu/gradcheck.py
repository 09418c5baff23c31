"""Finite-difference gradient checking, for tests and for teaching.

The idea: project the output on a fixed random direction ``R`` to get a scalar ``L = sum(out * R)``;
the analytic backward with ``dout = R`` must then equal the numerical derivative of ``L`` with respect to
every input entry, ``(L(x + h e_i) - L(x - h e_i)) / 2h``, whose error is O(h^2) plus rounding.

The error of one input is reported *relative to that gradient's largest entry*::

    err = max_i |analytic_i - numeric_i| / max(max_i |analytic_i|, max_i |numeric_i|, floor)

An entry-by-entry ratio would blow up on entries that are zero up to rounding; this normwise form
does not, yet a wrong formula still shows as an error of order 1. The ``floor`` (1e-3 by default)
makes a gradient that is zero in exact arithmetic (a bias feeding batch norm, say) compare in absolute
terms, instead of dividing rounding noise by itself. In float64 a correct backward gives
errors around 1e-10; lnedu's tests demand < 1e-7.

Three entry points:

* :func:`check_gradients` - the core: a scalar loss of some arrays and their analytic gradients;
* :func:`check_function` - a functional pair ``forward(*inputs) -> (out, cache)`` / ``backward(dout, cache)``;
* :func:`check_module` - an :class:`lnedu.nn.Module`: its input gradient and every parameter gradient.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .backend import get_array_module, to_numpy

__all__ = [
    "GradCheckReport",
    "numerical_gradient",
    "relative_error",
    "check_gradients",
    "check_function",
    "check_module",
]


def numerical_gradient(f, x, h: float = 1e-5):
    """Central-difference gradient of the scalar function ``f()`` with respect to array ``x``.

    ``x`` is perturbed in place, one entry at a time, and restored exactly afterwards.
    ``f`` takes no arguments: it closes over ``x`` (and anything else it needs).
    """
    xp = get_array_module(x)
    grad = xp.zeros(x.shape, dtype=np.float64)
    if not x.flags.c_contiguous:
        raise ValueError("x: expected a C-contiguous array, which can be perturbed in place through a flat view")
    flat = x.reshape(-1)  # a view: writing to it writes to x
    gflat = grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i].item()
        flat[i] = old + h
        fp = float(f())
        flat[i] = old - h
        fm = float(f())
        flat[i] = old
        gflat[i] = (fp - fm) / (2 * h)
    return grad


def relative_error(analytic, numeric, floor: float = 1e-3):
    """``(err, index)``: the worst absolute difference over the larger of the two max-norms (at least
    ``floor``), and where it is."""
    a = np.asarray(to_numpy(analytic), dtype=np.float64)
    n = np.asarray(to_numpy(numeric), dtype=np.float64)
    if a.shape != n.shape:
        raise ValueError(f"analytic: expected shape {n.shape} (the numeric gradient's), got {a.shape}")
    if a.size == 0:
        return 0.0, ()
    diff = np.abs(a - n)
    scale = max(np.abs(a).max(), np.abs(n).max(), floor)
    idx = np.unravel_index(int(diff.argmax()), a.shape)
    return float(diff[idx] / scale), tuple(int(i) for i in idx)


@dataclass
class GradCheckReport:
    """Result of a gradient check: per-input errors, the worst one, and where it happened."""

    errors: dict = field(default_factory=dict)  # name -> relative error
    where: dict = field(default_factory=dict)  # name -> index of the worst entry
    scales: dict = field(default_factory=dict)  # name -> largest |gradient| entry

    @property
    def max_rel_error(self) -> float:
        return max(self.errors.values(), default=0.0)

    @property
    def worst(self) -> tuple:
        """``(name, index)`` of the worst entry over all inputs."""
        if not self.errors:
            return (None, ())
        name = max(self.errors, key=self.errors.get)
        return name, self.where[name]

    def passed(self, tol: float = 1e-7) -> bool:
        return self.max_rel_error < tol

    def __str__(self) -> str:
        width = max((len(k) for k in self.errors), default=4)
        lines = [f"{'input':<{width}}  rel. error   worst entry   max |grad|"]
        for k, e in self.errors.items():
            lines.append(f"{k:<{width}}  {e:10.2e}   {str(self.where[k]):<12}  {self.scales[k]:.3g}")
        name, idx = self.worst
        lines.append(f"worst: {self.max_rel_error:.2e} at {name}{list(idx)}")
        return "\n".join(lines)

    def _repr_pretty_(self, p, cycle):  # IPython display
        p.text(str(self))


def check_gradients(loss, arrays: dict, analytic: dict, *, h: float = 1e-5) -> GradCheckReport:
    """Compare ``analytic[name]`` with the numerical gradient of ``loss()`` w.r.t. ``arrays[name]``.

    ``loss`` takes no arguments and returns a scalar computed from the arrays, which are perturbed in
    place. Use float64 arrays: in float32 rounding swamps the finite difference.
    """
    if set(arrays) != set(analytic):
        raise ValueError(
            f"analytic: expected gradients for {sorted(arrays)}, got {sorted(analytic)}"
        )
    report = GradCheckReport()
    for name, x in arrays.items():
        if x.dtype != np.float64:
            raise TypeError(f"arrays[{name!r}]: expected float64 for a gradient check, got {x.dtype}")
        num = numerical_gradient(loss, x, h)
        err, idx = relative_error(analytic[name], num)
        report.errors[name] = err
        report.where[name] = idx
        report.scales[name] = float(np.abs(to_numpy(num)).max()) if num.size else 0.0
    return report


def _projection(out, seed):
    """A random direction to project the output on; its stream differs from ``default_rng(seed)``'s,
    so that it is never a copy of test data drawn with the same seed."""
    xp = get_array_module(out)
    rng = np.random.default_rng([int(seed), 0x6C6E])
    return xp.asarray(rng.standard_normal(np.shape(out)))  # np.shape: a loss is a Python float


def check_function(forward, backward, inputs: dict, *, wrt=None, seed: int = 0, h: float = 1e-5):
    """Check a functional pair: ``forward(**inputs) -> (out, cache)``, ``backward(dout, cache) -> grads``.

    ``backward`` returns the gradients in the order of ``inputs`` (a dict, ordered): a tuple, or a
    single array for a one-input function. ``wrt`` names the inputs to check (default: every input
    whose gradient is not ``None``); non-differentiable inputs (integer targets, say) and inputs
    passed as ``None`` (an absent gain or bias) are skipped. The output may be an array or a scalar
    (a loss).
    """
    out, cache = forward(**inputs)
    R = _projection(out, seed)
    grads = backward(R, cache)
    if not isinstance(grads, tuple):
        grads = (grads,)
    names = list(inputs)
    analytic = {
        n: g
        for n, g in zip(names, grads)
        if g is not None and inputs[n] is not None and (wrt is None or n in wrt)
    }

    def loss():
        o, _ = forward(**inputs)
        return float((o * R).sum())

    return check_gradients(loss, {n: inputs[n] for n in analytic}, analytic, h=h)


def check_module(module, x, *, seed: int = 0, h: float = 1e-5, check_input: bool = True):
    """Check an :class:`lnedu.nn.Module`: ``dx`` from ``backward`` and every ``module.grads[name]``."""
    out = module.forward(x)
    R = _projection(out, seed)
    module.zero_grad()
    dx = module.backward(R)
    named = list(module.named_parameters())
    analytic = {k: g.copy() for k, _, g in named}
    arrays = {k: p for k, p, _ in named}
    if check_input:
        analytic["input"] = dx
        arrays["input"] = x

    def loss():
        return float((module.forward(x) * R).sum())

    return check_gradients(loss, arrays, analytic, h=h)
