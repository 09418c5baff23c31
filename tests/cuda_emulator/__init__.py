"""Run lnedu's CUDA kernels on the CPU: g++ compiles the kernel source against ``emulate.h``.

:class:`EmulatorProvider` is a kernel provider for :func:`lnedu.cuda.set_provider`: the fused code paths of
``lnedu.cuda`` then launch the real kernel source, compiled as C++, on NumPy arrays. Every array argument
is copied into a buffer with a guard band of 0xFF bytes (a NaN in float16, float32 and float64) on each
side; a kernel that writes outside its array fails the launch, and one that reads outside gets NaNs that
show up in its results. (A NaN read from one guard band and written into another keeps the guard's bit
pattern and so passes the write check; its NaNs still show in the results.)
"""

from __future__ import annotations

import ctypes
import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from lnedu.cuda import SOURCES

HERE = Path(__file__).resolve().parent
KERNELS = HERE.parent.parent / "lnedu" / "cuda" / "kernels"
GUARD = 256  # bytes of guard band on each side of every array argument


def compiler():
    """The C++ compiler to use, or ``None`` (then the emulator tests skip)."""
    return shutil.which(os.environ.get("CXX", "g++"))


def _harness(exprs) -> str:
    lines = ['#include "emulate.h"']
    lines += [f'#include "{name}"' for name in SOURCES]
    lines += ["#include <map>", "#include <string>", "",
              "static const std::map<std::string, std::function<void(unsigned, unsigned, void**)>> kernels = {"]
    lines += [f'    {{"{e}", emu_kernel(&{e})}},' for e in exprs]
    lines += ["};", "",
              'extern "C" int emu_launch_by_name(const char* name, unsigned grid, unsigned block, void** args) {',
              "    auto it = kernels.find(name);",
              "    if (it == kernels.end()) return -1;",
              "    it->second(grid, block, args);",
              "    return 0;",
              "}"]
    return "\n".join(lines) + "\n"


def build(exprs, cache_dir=None, flags=()) -> Path:
    """Compile the instantiations ``exprs`` into a shared library (cached by the hash of all sources).

    ``flags``: extra compiler flags, e.g. ``("-fsanitize=thread",)`` for ThreadSanitizer (see test_cuda_races).
    """
    exprs = sorted(set(exprs))
    text = _harness(exprs)
    digest = hashlib.sha256(text.encode() + repr(tuple(flags)).encode())
    for path in sorted(KERNELS.glob("*.cuh")) + [HERE / "emulate.h"]:
        digest.update(path.read_bytes())
    cache_dir = Path(cache_dir or tempfile.gettempdir()) / "lnedu-cuda-emulator"
    lib = cache_dir / f"kernels-{digest.hexdigest()[:16]}.so"
    if lib.exists():
        return lib
    cache_dir.mkdir(parents=True, exist_ok=True)
    # one compile per library: a second test worker that needs it meanwhile waits for it (and so leaves the
    # core to that compile) instead of compiling it again beside it
    with open(cache_dir / f"{lib.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not lib.exists():
            _compile(text, flags, cache_dir, lib)
    return lib


def _compile(text: str, flags, cache_dir: Path, lib: Path) -> None:
    with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:
        src = Path(tmp) / "harness.cpp"
        src.write_text(text)
        out = Path(tmp) / "kernels.so"
        cmd = [compiler(), "-std=c++20", "-O1", "-pthread", "-shared", "-fPIC", "-w", *flags,
               f"-I{HERE}", f"-I{KERNELS}", str(src), "-o", str(out)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"the kernels do not compile as C++ for the emulator:\n{done.stderr[-6000:]}")
        os.replace(out, lib)  # atomic: a parallel test worker sees the whole library or none


class EmulatorProvider:
    """A kernel provider (see :func:`lnedu.cuda.set_provider`) that runs the kernels on the CPU."""

    def __init__(self, exprs, *, multiprocessors: int = 2, cache_dir=None, flags=()):
        self.lib = ctypes.CDLL(str(build(exprs, cache_dir, flags)))
        self.lib.emu_launch_by_name.restype = ctypes.c_int
        self.lib.emu_launch_by_name.argtypes = [ctypes.c_char_p, ctypes.c_uint, ctypes.c_uint,
                                                ctypes.POINTER(ctypes.c_void_p)]
        self._sms = multiprocessors
        self.launches = []  # (expr, grid, block) of every launch, for tests of the launch configuration

    def multiprocessors(self) -> int:
        return self._sms

    def launch(self, expr, grid, block, args):
        if block % 32 or not 0 < block <= 1024 or grid <= 0:
            raise ValueError(f"launch of {expr}: grid {grid}, block {block} (want whole warps, at most 1024)")
        keep, guarded = [], []
        for a in args:
            if a is None or (isinstance(a, np.integer) and a.dtype == np.uint64 and int(a) == 0):
                keep.append(ctypes.c_void_p(0))
            elif isinstance(a, np.ndarray):
                if not a.flags.c_contiguous:
                    raise ValueError(f"launch of {expr}: an array argument is not C-contiguous")
                buf = np.full(a.nbytes + 2 * GUARD, 0xFF, dtype=np.uint8)
                buf[GUARD:GUARD + a.nbytes] = a.reshape(-1).view(np.uint8)
                guarded.append((a, buf))
                keep.append(ctypes.c_void_p(buf.ctypes.data + GUARD))
            elif isinstance(a, (np.integer, np.floating)):
                keep.append(np.ctypeslib.as_ctypes_type(a.dtype)(a))
            else:
                raise TypeError(f"launch of {expr}: pass NumPy scalars or arrays, got {type(a).__name__}")
        ptrs = (ctypes.c_void_p * len(keep))(*[ctypes.cast(ctypes.pointer(k), ctypes.c_void_p) for k in keep])
        if self.lib.emu_launch_by_name(expr.encode(), grid, block, ptrs):
            raise KeyError(f"launch: {expr} was not compiled into the emulator")
        self.launches.append((expr, grid, block))
        for a, buf in guarded:
            if (buf[:GUARD] != 0xFF).any() or (buf[GUARD + a.nbytes:] != 0xFF).any():
                raise AssertionError(f"launch of {expr}: the kernel wrote outside an array argument")
            a.reshape(-1).view(np.uint8)[...] = buf[GUARD:GUARD + a.nbytes]
