"""Array backend selection: NumPy by default, CuPy on request.

This is the only module of lnedu that imports CuPy (:mod:`lnedu.cuda` gets it from here to compile its
kernels). Everything else asks an array for its own module::

    xp = get_array_module(x)      # numpy or cupy, whichever owns x
    y = xp.tanh(x)

The default backend (what :func:`asarray` and the initializers allocate on) is NumPy unless the
environment variable ``LNEDU_BACKEND=cupy`` is set before import, or :func:`use` is called.
Importing lnedu never needs CuPy or a GPU; asking for CuPy where it cannot run raises a clear error.
"""

from __future__ import annotations

import os
from types import ModuleType

import numpy as np

__all__ = [
    "BackendError",
    "use",
    "current",
    "xp",
    "get_array_module",
    "asarray",
    "to_numpy",
    "synchronize",
    "gpu_available",
    "available_backends",
]

_NAMES = ("numpy", "cupy")


class BackendError(RuntimeError):
    """The requested array backend cannot run on this machine."""


def _import_cupy() -> ModuleType | None:
    try:
        import cupy  # noqa: PLC0415  (the one place lnedu imports cupy)
    except Exception:  # ImportError, or a broken CUDA install raising at import
        return None
    return cupy


def gpu_available() -> bool:
    """True when CuPy is installed and can reach at least one CUDA device."""
    cupy = _import_cupy()
    if cupy is None:
        return False
    try:
        return bool(cupy.is_available())
    except Exception:
        return False


def available_backends() -> list[str]:
    """Names of the backends that can run here: always ``numpy``, plus ``cupy`` with a GPU."""
    return ["numpy", "cupy"] if gpu_available() else ["numpy"]


def _module_for(name: str) -> ModuleType:
    if name not in _NAMES:
        raise ValueError(f"backend: expected one of {_NAMES}, got {name!r}")
    if name == "numpy":
        return np
    cupy = _import_cupy()
    if cupy is None:
        raise BackendError(
            "backend: 'cupy' was requested but CuPy is not installed; "
            "install it with `pip install lnedu[gpu]` (or cupy-cudaXXx for your CUDA) or use 'numpy'"
        )
    if not gpu_available():
        raise BackendError(
            "backend: 'cupy' was requested but no CUDA device is available on this machine "
            "(cupy.is_available() is False); use 'numpy'"
        )
    return cupy


_current: ModuleType = np


def use(name: str) -> ModuleType:
    """Make ``name`` ('numpy' or 'cupy') the default backend and return its module."""
    global _current
    _current = _module_for(str(name).lower())
    return _current


def current() -> str:
    """Name of the default backend."""
    return "cupy" if _current is not np else "numpy"


def xp() -> ModuleType:
    """Module of the default backend (numpy or cupy)."""
    return _current


def get_array_module(*arrays) -> ModuleType:
    """The module (numpy or cupy) that owns the given arrays; numpy for plain Python values."""
    for a in arrays:
        if a is None or isinstance(a, (np.ndarray, np.generic)):
            continue
        mod = type(a).__module__
        if mod.startswith("cupy"):
            cupy = _import_cupy()
            return cupy.get_array_module(a)
    return np


def asarray(a, dtype=None):
    """``a`` as an array of the default backend (copies host data to the GPU when cupy is current)."""
    return _current.asarray(a, dtype=dtype)


def to_numpy(a):
    """``a`` as a NumPy array (copies from the GPU when it lives there); for plots and printing."""
    if isinstance(a, np.ndarray):
        return a
    get = getattr(a, "get", None)
    if callable(get) and type(a).__module__.startswith("cupy"):
        return get()
    return np.asarray(a)


def synchronize() -> None:
    """Wait until the GPU has finished the work queued so far (CuPy launches kernels asynchronously); nothing to
    wait for on NumPy. Call it before reading a clock, or the time of queued work lands in the next reading."""
    if _current is not np:
        _current.cuda.Device().synchronize()


_env = os.environ.get("LNEDU_BACKEND", "").strip().lower()
if _env:
    use(_env)
