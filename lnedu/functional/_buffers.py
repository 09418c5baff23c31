"""Reused output buffers for the CPU fast paths' large arrays: fresh memory costs more than the arithmetic.

A layer norm's forward + backward at (4096, 1024) float32 returns three new 16 MB arrays (``y``, the cache's
``xhat``, ``dx``). The C library hands memory of that size back to the system when it is freed, so each new
array may come back as untouched pages, and the kernel zero-fills every 4 KB page on its first write.
``benchmarks/bench_norms.py`` shows what that costs: its ``fast-fresh`` column is the Numba path with this
module switched off (:func:`fresh`); ``fast/fast-fresh`` is the ratio (at (32768, 512), 64 MB arrays, a fifth to
a tenth of the time on a 2-core machine; at (4096, 1024) it depends on what the C library's heap keeps).
PyTorch pays the same on the CPU; on the GPU it keeps a caching allocator for the same reason.

:func:`empty` keeps each large array it made, and hands its memory out again once no Python object refers to
it any more: not the array returned, nor a view of it, nor a cache holding it. That is decided by the block's
reference count (every NumPy view keeps its base alive), so a buffer a caller still holds is never reused.
Idle blocks are kept up to :data:`MAX_IDLE_BYTES` in all (the largest dropped first), at most
:data:`MAX_PER_SIZE` blocks of one size; :func:`release` drops them all. Arrays under :data:`MIN_BYTES` come
from ``np.empty`` as usual (the C library keeps those), and so does everything on a Python build without the
GIL, where reference counts are not exact.

The reference bodies (what a student reads) never use this: it serves the compiled kernels only.
"""

from __future__ import annotations

import contextlib
import math
import sys
import threading

import numpy as np

__all__ = ["MIN_BYTES", "MAX_IDLE_BYTES", "MAX_PER_SIZE", "empty", "release", "idle_bytes", "held_bytes", "fresh"]

#: arrays of fewer bytes come from ``np.empty`` (glibc's default mmap threshold is 128 KiB; from a few hundred
#: KiB on, fresh memory starts to show in the fast paths' times)
MIN_BYTES = 1 << 20

#: at most this many bytes of blocks no one refers to are kept for reuse
MAX_IDLE_BYTES = 1 << 28

#: at most this many blocks of one size are kept (in use or idle); past it, arrays of that size come from
#: ``np.empty`` (a caller holding hundreds of same-sized outputs, e.g. every step of a long sequence, would
#: otherwise make each call look through them all)
MAX_PER_SIZE = 8

_lock = threading.Lock()
_fresh = False  # set by fresh()
_pools: dict[int, list[np.ndarray]] = {}  # bytes -> the blocks of that size kept, oldest first


def _refs(blocks, i) -> int:
    return sys.getrefcount(blocks[i])


_IDLE_REFS = _refs([np.empty(1, np.uint8)], 0)  # a block's count here when only its list holds it
_EXACT = getattr(sys, "_is_gil_enabled", lambda: True)()  # free-threaded builds defer reference counts


def _idle(blocks, i) -> bool:
    return _refs(blocks, i) <= _IDLE_REFS


def empty(shape: tuple, dtype) -> np.ndarray:
    """An uninitialized C-contiguous array of ``shape`` and ``dtype``, in reused memory where an idle block of
    the right size is kept (as ``np.empty`` otherwise)."""
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize  # (np.prod of a tuple costs ~2 us, a tenth of a small call)
    if nbytes < MIN_BYTES or not _EXACT or _fresh:
        return np.empty(shape, dtype)
    with _lock:
        blocks = _pools.setdefault(nbytes, [])
        for i in range(len(blocks)):  # by index: a loop variable would count as a reference
            if _idle(blocks, i):
                break
        else:
            if len(blocks) >= MAX_PER_SIZE:
                return np.empty(shape, dtype)
            blocks.append(np.empty(nbytes, np.uint8))
            i = len(blocks) - 1
        out = blocks[i].view(dtype).reshape(shape)
        _trim()
        return out


def _idle_total() -> int:
    """Bytes of the blocks kept that no one refers to (the caller holds the lock)."""
    return sum(nbytes for nbytes, blocks in _pools.items() for i in range(len(blocks)) if _idle(blocks, i))


def _trim() -> None:
    """Drop idle blocks, the largest sizes first, until the idle ones fit in :data:`MAX_IDLE_BYTES` (checked at
    each call of :func:`empty`, so idle memory can exceed it between calls, when callers let arrays go)."""
    total = _idle_total()
    for nbytes in sorted(_pools, reverse=True):
        blocks = _pools[nbytes]
        i = len(blocks) - 1
        while i >= 0 and total > MAX_IDLE_BYTES:
            if _idle(blocks, i):
                del blocks[i]
                total -= nbytes
            i -= 1


def idle_bytes() -> int:
    """Bytes of the blocks kept that no one refers to now."""
    with _lock:
        return _idle_total()


def held_bytes() -> int:
    """Bytes of all blocks kept (those in use and the idle ones)."""
    with _lock:
        return sum(nbytes * len(blocks) for nbytes, blocks in _pools.items())


def release() -> int:
    """Drop every block kept: the idle ones are freed, those in use are no longer reused and go with their
    arrays. Returns the bytes freed."""
    with _lock:
        freed = _idle_total()
        _pools.clear()
        return freed


@contextlib.contextmanager
def fresh():
    """Within the block, :func:`empty` is ``np.empty`` (what reuse buys: ``benchmarks/bench_norms.py``'s
    ``fast-fresh`` column; not thread-local)."""
    global _fresh
    before, _fresh = _fresh, True
    try:
        yield
    finally:
        _fresh = before
