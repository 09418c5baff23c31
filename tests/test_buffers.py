"""The fast paths' reused output buffers (lnedu/functional/_buffers.py): memory is handed out again only when no
one holds it, never while an array, a view of it or a cache still refers to it."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import lnedu.functional as F
from lnedu.functional import _buffers, _numba

BIG = _buffers.MIN_BYTES // 4  # float32 elements in the smallest pooled array


def address(a) -> int:
    return a.__array_interface__["data"][0]


@pytest.fixture(autouse=True)
def empty_pool():
    _buffers.release()
    yield
    _buffers.release()


def test_memory_is_reused_only_once_no_array_or_view_refers_to_it():
    a = _buffers.empty((BIG // 8, 8), np.float32)
    assert a.shape == (BIG // 8, 8) and a.dtype == np.float32 and a.flags.c_contiguous and a.flags.writeable
    where = address(a)
    b = _buffers.empty((BIG // 8, 8), np.float32)
    assert address(b) != where  # a is held
    view = a[3:, 2]
    del a
    c = _buffers.empty((8, BIG // 8), np.float32)  # same bytes, another shape: still held through the view
    assert address(c) not in (where, address(b))
    del view
    d = _buffers.empty((BIG // 2,), np.float64)  # same bytes, another dtype: now free
    assert address(d) == where and d.dtype == np.float64 and d.shape == (BIG // 2,)
    assert _buffers.held_bytes() == 3 * _buffers.MIN_BYTES and _buffers.idle_bytes() == 0
    del b, c, d
    assert _buffers.idle_bytes() == 3 * _buffers.MIN_BYTES
    assert _buffers.release() == 3 * _buffers.MIN_BYTES and _buffers.held_bytes() == 0


def test_small_arrays_and_fresh_blocks_come_from_numpy():
    small = _buffers.empty((BIG - 1,), np.float32)
    assert small.base is None and small.flags.owndata
    with _buffers.fresh():
        big = _buffers.empty((BIG,), np.float32)
    assert big.base is None and _buffers.held_bytes() == 0
    assert _buffers.empty((BIG,), np.float32).base is not None  # outside the block: pooled again


def test_at_most_max_per_size_blocks_of_one_size_are_kept():
    held = [_buffers.empty((BIG,), np.float32) for _ in range(_buffers.MAX_PER_SIZE + 2)]
    assert len({address(a) for a in held}) == len(held)  # all distinct memory
    assert [a.base is not None for a in held] == [True] * _buffers.MAX_PER_SIZE + [False, False]
    assert _buffers.held_bytes() == _buffers.MAX_PER_SIZE * _buffers.MIN_BYTES


def test_idle_blocks_past_the_limit_are_dropped_at_the_next_call(monkeypatch):
    monkeypatch.setattr(_buffers, "MAX_IDLE_BYTES", 3 * _buffers.MIN_BYTES)
    sizes = [(BIG * k,) for k in (1, 2, 3)]
    held = [_buffers.empty(s, np.float32) for s in sizes]
    del held
    assert _buffers.idle_bytes() == 6 * _buffers.MIN_BYTES  # over the limit between calls, as documented
    keep = _buffers.empty((BIG,), np.float32)  # reuses the 1 MiB block, then drops the largest idle ones
    assert _buffers.idle_bytes() <= 3 * _buffers.MIN_BYTES
    assert _buffers.held_bytes() - keep.nbytes == _buffers.idle_bytes()


def test_threads_never_share_a_buffer():
    errors = []

    def work(k):
        for _ in range(200):
            a = _buffers.empty((BIG,), np.float32)
            a.fill(k)
            if not (a == k).all():
                errors.append(k)
            del a

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert _buffers.held_bytes() <= 4 * _buffers.MIN_BYTES  # at most one block per thread at a time


@pytest.mark.skipif(not _numba.available(), reason="the fast path needs Numba (the [fast] extra)")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_held_output_or_cache_is_never_overwritten_by_the_next_call(dtype):
    rng = np.random.default_rng(7)
    n, H = int(rng.integers(300, 600)), 1024  # >= 1 MiB in float32
    x1, x2, dy1, dy2 = (rng.standard_normal((n, H)).astype(dtype) * 3 + 1 for _ in range(4))
    g, b = rng.standard_normal(H).astype(dtype), rng.standard_normal(H).astype(dtype)
    y1, c1 = F.layer_norm(x1, g, b, 1e-5)
    assert y1.base is not None and c1.xhat.base is not None  # pooled: this test is about the pool
    keep_y, keep_xhat = y1.copy(), c1.xhat.copy()
    for _ in range(3):  # other calls of the same size while y1 and c1 are held
        y2, c2 = F.layer_norm(x2, g, b, 1e-5)
        dx2, _, _ = F.layer_norm_backward(dy2, c2)
        del y2, c2, dx2
    assert np.array_equal(y1, keep_y) and np.array_equal(c1.xhat, keep_xhat)
    dx1, dg1, db1 = F.layer_norm_backward(dy1, c1)
    with F.use_reference():
        ry, rc = F.layer_norm(x1, g, b, 1e-5)
        rdx, rdg, rdb = F.layer_norm_backward(dy1, rc)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for ours, ref in ((y1, ry), (dx1, rdx), (dg1, rdg), (db1, rdb)):
        np.testing.assert_allclose(ours, ref, rtol=tol, atol=tol * np.abs(ref).max())
    dx_again, _, _ = F.layer_norm_backward(dy1, c1)  # dx1 is held: the second dx lands elsewhere
    assert address(dx_again) != address(dx1) and np.array_equal(dx_again, dx1)
