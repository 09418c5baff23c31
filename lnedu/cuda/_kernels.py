"""Compiling and launching lnedu's CUDA kernels: sources, name expressions, the kernel provider, the switch.

The kernels are C++ templates in ``lnedu/cuda/kernels/*.cuh``. One instantiation, such as
``norm_forward<float, 4, true>``, is a *name expression*; :func:`launch` compiles each one the first time
it is used (CuPy's ``RawModule`` with NVRTC, cached on disk by CuPy) and launches it. What compiles and
launches is a *provider*: :class:`CuPyProvider` on a GPU; the tests install a CPU emulator with
:func:`set_provider`, so that the same Python code and the same kernel source run where there is no GPU.

The fused kernels are used for CuPy arrays unless switched off, with ``LNEDU_FUSED=0`` in the environment
or :func:`use_fused`::

    with lnedu.cuda.use_fused(False):   # the portable CuPy code, e.g. to compare the two
        y, cache = F.layer_norm(x, g, b)
"""

from __future__ import annotations

import contextlib
import os
import re
from importlib import resources

import numpy as np

from ..backend import (
    _module_for,  # CuPy, or a clear BackendError where it cannot run
    get_array_module,
)

__all__ = [
    "fused_enabled",
    "use_fused",
    "describe",
    "kernel_source",
    "SOURCES",
    "launch",
    "set_provider",
    "get_provider",
    "CuPyProvider",
    "nvrtc_compile",
    "register_report",
    "DTYPES",
    "KERNEL_TYPES",
]

#: the kernel files, each a self-contained translation unit once its ``#include "common.cuh"`` is resolved
SOURCES = ("layer_norm.cuh", "recurrent.cuh")

#: the storage types every kernel is instantiated for (common.cuh): float32, float64, float16, bfloat16
KERNEL_TYPES = ("float", "double", "lnedu_half", "lnedu_bf16")

class _KernelTypes(dict):
    """NumPy dtype -> kernel storage type. bfloat16 is ml_dtypes' (NumPy has none of its own), which CuPy 14
    accepts: it is recognized by its name, not by importing ml_dtypes to compare with its type (0.7 s of every
    ``import lnedu``); an array can only be bfloat16 once its maker has imported ml_dtypes."""

    def __contains__(self, dtype) -> bool:
        return dict.__contains__(self, dtype) or _is_bfloat16(dtype)

    def __missing__(self, dtype):
        if _is_bfloat16(dtype):
            return "lnedu_bf16"
        raise KeyError(dtype)


def _is_bfloat16(dtype) -> bool:
    return isinstance(dtype, np.dtype) and dtype.kind == "V" and dtype.name == "bfloat16"


#: NumPy dtype -> kernel storage type, for the dtypes arrays can have here (bfloat16 where ml_dtypes is installed)
DTYPES = _KernelTypes({np.dtype(np.float32): "float", np.dtype(np.float64): "double",
                       np.dtype(np.float16): "lnedu_half"})

_fused = os.environ.get("LNEDU_FUSED", "1").strip().lower() not in ("0", "false", "no", "off")


def fused_enabled() -> bool:
    """Whether CuPy arrays take the fused kernels (``True`` unless ``LNEDU_FUSED=0`` or :func:`use_fused`)."""
    return _fused


@contextlib.contextmanager
def _restore(previous):
    global _fused
    try:
        yield
    finally:
        _fused = previous


def use_fused(flag: bool):
    """Switch the fused kernels on or off; the old setting comes back at the end of a ``with`` block.

    ``use_fused(False)`` alone switches them off for the rest of the session; ``with use_fused(False):``
    only inside the block.
    """
    global _fused
    if not isinstance(flag, (bool, np.bool_)):
        raise TypeError(f"flag: expected True or False, got {flag!r}")
    previous, _fused = _fused, bool(flag)
    return _restore(previous)


def describe() -> str:
    """One line on the GPU path here: CuPy's version, whether a device is usable, and the fused switch."""
    try:
        cupy = _module_for("cupy")
    except Exception as err:  # BackendError: not installed, or no device
        first = str(err).split(";")[0].replace("backend: 'cupy' was requested but ", "")
        state = f"GPU path unused here ({first})"
    else:
        name = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)["name"]
        state = f"CuPy {cupy.__version__} on {name.decode() if isinstance(name, bytes) else name}"
    switch = "on" if _fused else "off (LNEDU_FUSED=0 or use_fused(False))"
    return f"{state}; fused CUDA kernels: {switch}"


def kernel_source(name: str) -> str:
    """The text of ``lnedu/cuda/kernels/<name>``, with ``#include "common.cuh"`` pasted in (NVRTC has no path)."""
    folder = resources.files("lnedu.cuda") / "kernels"
    text = (folder / name).read_text(encoding="utf-8")
    common = (folder / "common.cuh").read_text(encoding="utf-8")
    return text.replace('#include "common.cuh"', common)


def _source_of(expr: str) -> str:
    """Which kernel file defines the template that ``expr`` instantiates."""
    template = expr.split("<", 1)[0].strip()
    for name in SOURCES:
        if f" {template}(" in kernel_source(name) or f"\n{template}(" in kernel_source(name):
            return name
    raise KeyError(f"expr: no kernel file defines {template!r} (looked in {SOURCES})")


# --------------------------------------------------------------------------------------------------
# providers


class CuPyProvider:
    """Compiles each name expression with NVRTC through ``cupy.RawModule`` (once; CuPy caches it on disk)."""

    options = ("--std=c++17",)

    def __init__(self):
        self._functions = {}
        self._sms = {}

    def function(self, expr: str):
        """The compiled kernel ``expr`` for the current device (a loaded module belongs to one device)."""
        cupy = _module_for("cupy")
        key = (cupy.cuda.runtime.getDevice(), expr)
        fn = self._functions.get(key)
        if fn is None:
            source = kernel_source(_source_of(expr))
            module = cupy.RawModule(code=source, options=self.options, name_expressions=(expr,))
            fn = self._functions[key] = module.get_function(expr)
        return fn

    def launch(self, expr: str, grid: int, block: int, args: tuple) -> None:
        args = tuple(np.uint64(0) if a is None else a for a in args)  # a null pointer for an absent gain or bias
        self.function(expr)((int(grid),), (int(block),), args)

    def multiprocessors(self) -> int:
        """The current device's multiprocessor count (asked once per device: the query is slow)."""
        cupy = _module_for("cupy")
        device = cupy.cuda.runtime.getDevice()
        count = self._sms.get(device)
        if count is None:
            count = self._sms[device] = int(cupy.cuda.runtime.getDeviceProperties(device)["multiProcessorCount"])
        return count


_provider = None


def set_provider(provider):
    """Install ``provider`` (an object with ``launch`` and ``multiprocessors``); returns the previous one.

    ``None`` goes back to the default, :class:`CuPyProvider`. The tests install a CPU emulator this way.
    """
    global _provider
    previous, _provider = _provider, provider
    return previous


def get_provider():
    global _provider
    if _provider is None:
        _provider = CuPyProvider()
    return _provider


def launch(expr: str, grid: int, block: int, *args) -> None:
    """Launch the kernel instantiation ``expr`` on ``grid`` blocks of ``block`` threads with ``args``."""
    get_provider().launch(expr, grid, block, args)


# --------------------------------------------------------------------------------------------------
# launch helpers shared by the row kernels (norms.py, recurrent.py)


def block_config(n: int, choices, target_threads: int = 256):
    """``(items, threads)`` for spreading ``n`` values (or hidden units) over one block: the fewest items per
    thread among ``choices`` (ascending) that keep the block within ``target_threads``, rounded up to
    whole warps; ``None`` when ``n`` is 0 or even the most items need more threads."""
    for items in choices if n > 0 else ():
        threads = -(-n // items)
        if threads <= target_threads:
            return items, max(32, -(-threads // 32) * 32)
    return None


def acc_dtype(dtype):
    """The dtype the kernels accumulate in, and keep per-row statistics in: float64 for float64, else float32."""
    return np.float64 if np.dtype(dtype) == np.float64 else np.float32


def forward_grid(rows: int) -> int:
    """Blocks for a forward row kernel: one per row, up to 32 per multiprocessor (then a grid-stride loop)."""
    return min(rows, 32 * get_provider().multiprocessors())


def backward_grid(rows: int, threads: int) -> int:
    """Blocks for a backward row kernel: about half a GPU's worth of resident threads, each block walking
    several rows when there are more, so that fewer rows of partial gain and bias sums are left to add."""
    return min(rows, get_provider().multiprocessors() * max(1, 1024 // threads))


def launch_row_backward(expr: str, rows: int, threads: int, width: int, dtype, args: tuple, tail: tuple):
    """Launch the backward row kernel ``expr`` on ``(*args, part, *tail)`` and return the gain and bias gradients.

    ``part`` (blocks, ``width``) receives each block's partial column sums over the rows it walked;
    :func:`column_sums` adds the blocks up. Returns that ``(width,)`` array of ``dtype`` (zeros when there are
    no rows, or nothing to sum: ``width`` 0, no gain or bias).
    """
    xp = get_array_module(args[0])
    grid, part = 0, None
    if rows:
        grid = backward_grid(rows, threads)
        part = xp.empty((grid, width), dtype=acc_dtype(dtype)) if width else None
        launch(expr, grid, threads, *args, part, *tail)
    return column_sums(xp, part, grid, width, dtype)


def column_sums(xp, part, grid: int, width: int, dtype):
    """``part`` (grid, width) summed over its rows by ``sum_columns`` (layer_norm.cuh), as ``dtype``;
    zeros when ``part`` is ``None`` (no rows)."""
    sums = xp.zeros(width, dtype=dtype)
    if part is not None and grid:
        launch(f"sum_columns<{DTYPES[np.dtype(dtype)]}>", -(-width // 256), 256, part, np.int32(grid),
               np.int32(width), sums)
    return sums


_NVRTC_ERROR_INVALID_OPTION = 5  # nvrtcResult (CuPy's binding names no constant for it)


def _nvrtc_programs(exprs, arch, extra=()):
    """Compile ``exprs`` with NVRTC for ``arch``, one program per kernel file; yields ``(prog, group, nvrtc)``."""
    from cupy_backends.cuda.libs import nvrtc  # noqa: PLC0415

    by_source = {}
    for expr in exprs:
        by_source.setdefault(_source_of(expr), []).append(expr)
    for name, group in by_source.items():
        prog = nvrtc.createProgram(kernel_source(name), name, [], [])
        try:
            for expr in group:
                nvrtc.addNameExpression(prog, expr)
            options = [f"--gpu-architecture={arch}", *CuPyProvider.options, *extra]
            try:
                try:
                    nvrtc.compileProgram(prog, options)
                except nvrtc.NVRTCError as err:  # an NVRTC too old for -fdevice-syntax-only: compile fully
                    if "-fdevice-syntax-only" not in extra or err.status != _NVRTC_ERROR_INVALID_OPTION:
                        raise
                    nvrtc.compileProgram(prog, [o for o in options if o != "-fdevice-syntax-only"])
            except Exception as err:
                raise RuntimeError(f"{name} does not compile with NVRTC:\n{nvrtc.getProgramLog(prog)}") from err
            yield prog, group, nvrtc
        finally:
            nvrtc.destroyProgram(prog)


def nvrtc_compile(exprs, arch: str = "compute_80", *, syntax_only: bool = False) -> dict:
    """Compile the given name expressions with NVRTC, without a GPU; returns ``{expr: lowered name}``.

    Only needs CuPy's NVRTC binding (``cupy_backends``, imported here and nowhere else) and the NVRTC library
    (``nvidia-cuda-nvrtc-cu12``), not a device or a driver: the tests use it to check that every kernel
    instantiation compiles where no GPU is present. ``arch``: ``compute_XX`` for PTX, ``sm_XX`` for machine
    code. ``syntax_only``: the front end alone (``-fdevice-syntax-only``): every instantiation is parsed,
    instantiated and type-checked for ``arch`` (its ``__CUDA_ARCH__``, so an intrinsic the architecture lacks is
    an error), but no PTX is generated, which is where nearly all the time goes (0.2 s instead of 19 s for
    lnedu's 160 instantiations); an NVRTC without that option compiles fully. Raises ``RuntimeError`` with
    NVRTC's log when a source does not compile.
    """
    lowered = {}
    for prog, group, nvrtc in _nvrtc_programs(exprs, arch, ("-fdevice-syntax-only",) if syntax_only else ()):
        lowered.update({expr: nvrtc.getLoweredName(prog, expr) for expr in group})
    return lowered


def register_report(exprs, arch: str = "sm_90") -> dict:
    """What the assembler reports for each instantiation on ``arch`` (default: H100), without a GPU.

    Returns ``{expr: {"registers": int, "spill_bytes": int}}`` from ``ptxas -v``. A spill (registers
    that do not fit, stored to local memory) would slow a kernel badly; the tests demand none.
    """
    report = {}
    for prog, group, nvrtc in _nvrtc_programs(exprs, arch, ("--ptxas-options=-v",)):
        expr_of = {nvrtc.getLoweredName(prog, expr): expr for expr in group}
        current = None
        for line in nvrtc.getProgramLog(prog).splitlines():
            if "Compiling entry function" in line:
                current = expr_of.get(line.split("'")[1])
                report.setdefault(current, {"registers": 0, "spill_bytes": 0})
            elif current and "spill stores" in line:
                stores, loads = (int(w) for w in re.findall(r"(\d+) bytes spill", line))
                report[current]["spill_bytes"] = stores + loads
            elif current and "registers" in line:
                report[current]["registers"] = int(re.search(r"Used (\d+) registers", line).group(1))
    report.pop(None, None)
    return report
