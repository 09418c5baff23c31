"""Where faster versions of a functional pair plug in, so that the public body can stay the paper's math.

Every public forward or backward in :mod:`lnedu.functional` that has a faster version starts with::

    if (fast := dispatch.lookup(layer_norm, x, gain, bias)) is not None:
        return fast(x, gain, bias, eps)
    ...                                   # the reference: the equations, short and plain

``lookup`` asks, newest registration first, each implementation registered under the function's name
whether it takes these arguments (its ``supported(*args, **kwargs)``), and returns the first that does;
``None`` means the reference below runs. The faster versions register themselves from *outside* this
file: the cache-blocked NumPy norms of :mod:`lnedu.functional._blocked` when :mod:`lnedu.functional` is
imported, lnedu's fused CUDA kernels when :mod:`lnedu` is. Nothing here knows them.

``with use_reference():`` switches every registered implementation off (to read, step through or time the
reference; a test compares the two this way).

Storage-only floats. float16 and bfloat16 (ml_dtypes') are *stored* at 16 bits but *computed* in float32:
a statistic over a row in float16 overflows at a spread of ~20 for 256 units, and NumPy has few bfloat16
kernels. When no registered implementation takes such arguments, ``lookup`` returns a wrapper that converts
every 16-bit array (also inside caches, :class:`~lnedu.functional.Norm` values and tuples) to float32, calls
the function again, and rounds each float32 array it returns once, back to 16 bits; arrays named ``rstd``
(a cache's ``1/sigma``) stay float32, as the fused kernels keep them. This happens under
``use_reference()`` as well: it is a matter of numerics, not speed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

__all__ = ["register", "unregister", "registered", "lookup", "use_reference", "reference_only", "implementations",
           "STORAGE_DTYPES"]


class _Impl(NamedTuple):
    supported: Callable
    impl: Callable
    label: str


_registry: dict = {}  # function name -> list of _Impl, newest first
_reference_only = False

class _StorageDtypes:
    """``dtype in STORAGE_DTYPES``: float16, or ml_dtypes' bfloat16, recognized by its name. Importing ml_dtypes
    here to compare with its type took 0.7 s of every process that imports lnedu (each notebook kernel, each
    worker); an array can only be bfloat16 once its maker has imported ml_dtypes, so nothing is missed."""

    def __contains__(self, dtype) -> bool:
        return (getattr(dtype, "itemsize", 0) == 2 and isinstance(dtype, np.dtype)
                and (dtype == _FLOAT16 or (dtype.kind == "V" and dtype.name == "bfloat16")))

    def __repr__(self) -> str:
        return "STORAGE_DTYPES(float16, bfloat16)"


_FLOAT16 = np.dtype(np.float16)
#: the dtypes computed in float32 and stored as they came: float16; bfloat16 (ml_dtypes') where it is installed
STORAGE_DTYPES = _StorageDtypes()


def register(name: str, supported: Callable, impl: Callable, *, label: str = "") -> Callable:
    """Register ``impl`` for the public function ``name`` (e.g. ``"layer_norm"``), tried before the reference
    whenever ``supported(*args, **kwargs)`` is true for a call's arguments. ``supported`` must be cheap (look
    at types, shapes, dtypes and flags, never at the data). The newest registration is asked first.
    ``impl`` is called with the arguments the public function hands on (its arguments after checking).
    Returns ``impl``, so that it can serve as a decorator's result.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"name: expected a function's name as a non-empty str, got {name!r}")
    for what, fn in (("supported", supported), ("impl", impl)):
        if not callable(fn):
            raise TypeError(f"{what}: expected a callable, got {type(fn).__name__}")
    _registry.setdefault(name, []).insert(0, _Impl(supported, impl, label or getattr(impl, "__qualname__", "")))
    return impl


def unregister(name: str, impl: Callable) -> None:
    """Remove ``impl`` from ``name``'s implementations (a ``KeyError`` naming it if it was not registered)."""
    entries = _registry.get(name, [])
    for k, entry in enumerate(entries):
        if entry.impl is impl:
            del entries[k]
            return
    raise KeyError(f"impl: {getattr(impl, '__qualname__', impl)!r} is not registered for {name!r}")


@contextlib.contextmanager
def registered(name: str, supported: Callable, impl: Callable, *, label: str = ""):
    """``register`` for the length of a ``with`` block (for tests and experiments)."""
    register(name, supported, impl, label=label)
    try:
        yield impl
    finally:
        unregister(name, impl)


def implementations(name: str) -> list:
    """The labels of ``name``'s registered implementations, in the order they are asked."""
    return [entry.label for entry in _registry.get(name, [])]


def reference_only() -> bool:
    """Whether :func:`use_reference` is in force."""
    return _reference_only


class _Restore:
    """What :func:`use_reference` returns: a context manager that puts the previous setting back on exit (a class,
    not a ``contextlib`` generator: entering and leaving cost 0.3 instead of 1 us, which showed beside a
    teaching-size layer norm of ~75 us)."""

    __slots__ = ("previous",)

    def __init__(self, previous: bool):
        self.previous = previous

    def __enter__(self):
        return None

    def __exit__(self, *exc) -> bool:
        global _reference_only
        _reference_only = self.previous
        return False


def use_reference(flag: bool = True):
    """Run the reference bodies only (``True``), or let registered implementations in again (``False``).

    ``with use_reference(): ...`` sets it for the block; a bare ``use_reference()`` for the session.
    """
    global _reference_only
    if not isinstance(flag, (bool, np.bool_)):
        raise TypeError(f"flag: expected True or False, got {flag!r}")
    previous, _reference_only = _reference_only, bool(flag)
    return _Restore(previous)


def lookup(fn: Callable, *args, **kwargs):
    """The implementation to run instead of ``fn``'s reference body for these arguments, or ``None``.

    ``args[0]`` is the function's main array (``x``, ``dy``, ``a_x``): its dtype decides the float32
    detour for 16-bit storage (see the module's docstring).
    """
    if not _reference_only:
        for entry in _registry.get(fn.__name__, ()):
            if entry.supported(*args, **kwargs):
                return entry.impl
    dtype = getattr(args[0], "dtype", None)
    if dtype is not None and dtype in STORAGE_DTYPES:
        return _in_float32(fn, dtype)
    return None


# --------------------------------------------------------------------------------------------------
# 16-bit storage, 32-bit arithmetic


def _convert(value, test, cast):
    """``value`` with every array for which ``test(array)`` holds replaced by ``cast(array)``; tuples
    (named ones included) are rebuilt with their converted items."""
    if hasattr(value, "dtype") and hasattr(value, "shape"):
        return cast(value) if test(value) else value
    if isinstance(value, tuple):
        items = [_convert(v, test, cast) for v in value]
        return type(value)(*items) if hasattr(value, "_fields") else tuple(items)
    return value


def _round_results(value, dtype):
    """Every float32 array of ``value`` rounded to ``dtype``, except a named tuple's ``rstd``."""
    if isinstance(value, tuple):
        if not hasattr(value, "_fields"):
            return tuple(_round_results(v, dtype) for v in value)
        return type(value)(*(v if f == "rstd" else _round_results(v, dtype) for f, v in zip(value._fields, value)))
    return _convert(value, lambda a: a.dtype == np.float32, lambda a: a.astype(dtype))


def _in_float32(fn, dtype):
    """``fn`` computed in float32 on 16-bit ``dtype`` arguments, its results rounded back to ``dtype``."""

    def run(*args, out=None, **kwargs):
        wide = lambda v: _convert(v, lambda a: a.dtype in STORAGE_DTYPES, lambda a: a.astype(np.float32))  # noqa: E731
        result = _round_results(fn(*wide(args), **{k: wide(v) for k, v in kwargs.items()}), dtype)
        if out is not None:  # a step backward's out= buffer (16-bit) receives its first result, da_x
            out[...] = result[0]
            result = result._replace(**{result._fields[0]: out})
        return result

    run.__qualname__ = f"{fn.__name__} in float32, stored as {dtype}"
    return run
