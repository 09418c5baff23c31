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


def _check_float64(name, x):
    """A gradient check perturbs ``x`` by ``h ~ 1e-5`` in place: only float64 holds that step exactly enough
    (an integer array truncates it, float16/float32 round it away), so anything else is refused."""
    dtype = getattr(x, "dtype", None)
    if dtype is None or not hasattr(x, "shape"):
        raise TypeError(f"{name}: expected a float64 array for a gradient check, got {type(x).__name__}")
    if dtype != np.float64:
        raise TypeError(
            f"{name}: expected float64 for a gradient check, got {dtype} (convert with .astype(np.float64))"
        )


def numerical_gradient(f, x, h: float = 1e-5):
    """Central-difference gradient of the scalar function ``f()`` with respect to array ``x``.

    ``x`` (float64, C-contiguous) is perturbed in place, one entry at a time, and restored exactly afterwards.
    ``f`` takes no arguments: it closes over ``x`` (and anything else it needs). The difference is divided by
    the step actually taken, ``(x + h) - (x - h)``, which rounding makes differ from ``2h`` when ``|x| >> h``;
    an entry so large that the step is mostly lost (``|x| > ~1e14 h``) is refused rather than differentiated
    to a silent 0.
    """
    _check_float64("x", x)
    if isinstance(h, bool) or not isinstance(h, (int, float, np.floating)) or not (0 < h < np.inf):
        raise ValueError(f"h: expected a finite step > 0, got {h!r}")
    xp = get_array_module(x)
    grad = xp.zeros(x.shape, dtype=np.float64)
    if not x.flags.c_contiguous:
        raise ValueError("x: expected a C-contiguous array, which can be perturbed in place through a flat view")
    flat = x.reshape(-1)  # a view: writing to it writes to x
    gflat = grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i].item()
        up, down = old + h, old - h
        step = up - down  # the step actually taken: 2h up to the rounding of old +- h
        if not abs(step - 2 * h) <= 1e-2 * (2 * h):
            where = [int(j) for j in np.unravel_index(i, x.shape)]
            raise ValueError(
                f"h: a step of {h:g} is lost in rounding next to x{where} = {old:g} "
                f"(float64 keeps ~16 digits); pass a larger h (about 1e-5 * |x|) or rescale x"
            )
        flat[i] = up
        fp = float(f())
        flat[i] = down
        fm = float(f())
        flat[i] = old
        gflat[i] = (fp - fm) / step
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
    bad = ~(np.isfinite(a) & np.isfinite(n))
    if bad.any():  # a NaN/inf gradient is a failed check, never a NaN error that compares False everywhere
        idx = np.unravel_index(int(bad.argmax()), a.shape)
        return float("inf"), tuple(int(i) for i in idx)
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
        _check_float64(f"arrays[{name!r}]", x)
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


def _is_float_array(v):
    return hasattr(v, "dtype") and hasattr(v, "shape") and v.dtype.kind == "f"


def check_function(forward, backward, inputs: dict, *, wrt=None, seed: int = 0, h: float = 1e-5):
    """Check a functional pair: ``forward(**inputs) -> (out, cache)``, ``backward(dout, cache) -> grads``.

    ``backward`` returns the gradients in the order of ``inputs`` (a dict, ordered): a tuple, or a
    single array for a one-input function. Inputs that cannot have a gradient are skipped: ``None``
    (an absent gain or bias), integer or bool arrays (targets, say) and non-arrays (``eps``).
    Every floating-point input must get a gradient: a ``None`` where one was expected is an error, not
    a silent skip (a backward that forgot an input would otherwise pass). To check only some inputs,
    and so leave out a float input on purpose (a 0/1 float mask), name them in ``wrt``.
    The output may be an array or a scalar (a loss).
    """
    if not isinstance(inputs, dict) or not inputs:
        raise TypeError(f"inputs: expected a non-empty dict of name -> value, got {type(inputs).__name__}")
    if wrt is not None:
        wrt = [wrt] if isinstance(wrt, str) else list(wrt)
        unknown = [n for n in wrt if n not in inputs]
        if unknown:
            raise ValueError(f"wrt: expected names among {list(inputs)}, got {unknown}")
    out, cache = forward(**inputs)
    R = _projection(out, seed)
    grads = backward(R, cache)
    if not isinstance(grads, tuple):
        grads = (grads,)
    names = list(inputs)
    if len(grads) > len(names):
        raise ValueError(f"backward: returned {len(grads)} gradients for {len(names)} inputs {names}")
    grads = dict(zip(names, grads))
    if wrt is None:
        wanted = [n for n in names if _is_float_array(inputs[n])]
    else:
        wanted = wrt
    missing = [n for n in wanted if grads.get(n) is None]
    if missing:
        hint = "" if wrt is not None else "; if that input has no gradient on purpose, leave it out of wrt=[...]"
        raise ValueError(f"backward: returned no gradient (None) for input(s) {missing}{hint}")
    analytic = {n: grads[n] for n in wanted}

    def loss():
        o, _ = forward(**inputs)
        return float((o * R).sum())

    return check_gradients(loss, {n: inputs[n] for n in analytic}, analytic, h=h)


def check_module(module, x, *, seed: int = 0, h: float = 1e-5, check_input: bool = True):
    """Check an :class:`lnedu.nn.Module`: ``dx`` from ``backward`` and every ``module.grads[name]``.

    The module's parameters and ``x`` must be float64 (build it with ``dtype=np.float64``)."""
    if check_input:
        _check_float64("x", x)
    for name, p, _ in module.named_parameters():
        _check_float64(f"module.params[{name!r}]", p)
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
