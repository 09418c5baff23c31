"""The fused CUDA layer norm and RMSNorm (lnedu/cuda): launch configuration, the kernel source run on the
CPU through the emulator (tests/cuda_emulator), an NVRTC compile of every instantiation, and, where a GPU
is present, the real thing against the portable code and a float64 reference.

On a machine without a GPU the emulator tests are what checks the kernels' arithmetic: the same source,
compiled by g++, with every CUDA thread of a block a real thread and ``__syncthreads`` a real barrier.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import lnedu.cuda as C
import lnedu.functional as F
from lnedu.backend import gpu_available
from lnedu.cuda import _kernels as K
from lnedu.cuda import norms as CN
from lnedu.gradcheck import check_function

# the odd row lengths of the issue, a multiple of the block, the longest fused row, and a short one
ROW_LENGTHS = (1, 3, 37, 1000, 4097, 8192)
# tolerances against a float64 reference, relative to the scale of each result
TOL = {np.float64: 1e-12, np.float32: 2e-6, np.float16: 2e-3}
try:
    from ml_dtypes import bfloat16 as BFLOAT16  # CuPy 14 takes ml_dtypes' bfloat16; so do the kernels

    TOL[BFLOAT16] = 1.6e-2  # 8 significant bits: a unit in the last place is 2^-8 = 3.9e-3
except ImportError:  # ml_dtypes comes with the [gpu] extra
    BFLOAT16 = None
# (row length, dtype) pairs the fused kernels take (float64 rows stop at 4096 units)
FUSED_CASES = [(n, dt) for n in ROW_LENGTHS for dt in TOL if CN.row_config(n, dt) is not None]


def _err(got, want, scale):
    """Largest absolute error over ``scale``; a zero scale (n = 1: xhat is 0) demands an exact 0."""
    diff = float(np.max(np.abs(np.asarray(got, dtype=np.float64) - want)))
    return diff / scale if scale > 0 else diff * np.inf if diff else 0.0


# --------------------------------------------------------------------------------------------------
# launch configuration and the switch (no compiler, no GPU)


@pytest.mark.parametrize("n, want", [(1, (1, 32)), (3, (1, 32)), (256, (1, 256)), (257, (2, 160)), (1000, (4, 256)),
                                     (4096, (16, 256)), (4097, (32, 160)), (8192, (32, 256))])
def test_row_config_picks_the_fewest_items_per_thread_within_256_threads(n, want):
    items, threads = CN.row_config(n)
    assert (items, threads) == want
    assert threads % 32 == 0 and items * threads >= n and (items == 1 or items // 2 * 256 < n)


@pytest.mark.parametrize("n", [0, CN.MAX_ROW + 1, 10**6])
def test_rows_outside_the_fused_range_have_no_config(n):
    assert CN.row_config(n) is None


def test_float64_rows_stop_at_4096_units():
    assert CN.row_config(4096, np.float64) == (16, 256)
    assert CN.row_config(4097, np.float64) is None and CN.row_config(4097, np.float32) == (32, 160)


def test_numpy_arrays_never_take_the_fused_path():
    x = np.random.default_rng(0).standard_normal((4, 8))
    assert not CN.supported(x)
    assert not CN.backward_supported(x, F.layer_norm(x, None, None)[1])


def test_use_fused_switches_and_restores():
    assert C.fused_enabled()
    with C.use_fused(False):
        assert not C.fused_enabled()
        with C.use_fused(True):
            assert C.fused_enabled()
        assert not C.fused_enabled()
    assert C.fused_enabled()


def test_describe_says_what_the_gpu_path_does_here():
    assert C.describe().endswith("fused CUDA kernels: on")
    with C.use_fused(False):
        assert "fused CUDA kernels: off" in C.describe()
    if not gpu_available():
        assert C.describe().startswith("GPU path unused here (")


def test_use_fused_rejects_a_non_boolean():
    with pytest.raises(TypeError, match=r"flag: expected True or False, got 'no'"):
        C.use_fused("no")


def test_lnedu_fused_0_switches_the_kernels_off():
    code = "import lnedu.cuda as c; print(c.fused_enabled())"
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "LNEDU_FUSED": "0"},
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_kernel_source_pastes_in_the_common_header():
    text = C.kernel_source("layer_norm.cuh")
    assert '#include "common.cuh"' not in text
    assert "block_sum" in text and "norm_forward" in text and "norm_backward" in text


def test_every_name_expression_names_a_kernel_file():
    exprs = C.name_expressions()
    assert len(exprs) == len(set(exprs)) >= 73
    for expr in exprs:
        assert C._kernels._source_of(expr) in C.SOURCES


# --------------------------------------------------------------------------------------------------
# NVRTC: every instantiation compiles (no GPU or driver needed)


def _nvrtc_available():
    try:
        from cupy_backends.cuda.libs import nvrtc

        nvrtc.getVersion()
    except Exception:
        return False
    return True


@pytest.mark.skipif(not _nvrtc_available(), reason="CuPy's NVRTC binding or the NVRTC library is not installed")
def test_every_kernel_instantiation_compiles_with_nvrtc():
    """At the oldest architecture the kernels target (Volta, compute_70), or, where the installed NVRTC no longer
    compiles for it (CUDA 13 dropped it: a fixed choice broke when another package brought a newer NVRTC), the
    oldest it supports. NVRTC's front end only: every instantiation parsed, instantiated and type-checked with
    that architecture's ``__CUDA_ARCH__`` (an intrinsic Volta lacks is an error there, as the check below shows);
    the whole way to machine code, NVVM and ptxas, is the sm_90 test's, which lowers every instantiation too.
    Generating Volta's PTX as well took 17-24 s of this suite's time and checked nothing more that a test here
    could see (inline assembly is only read by ptxas)."""
    from cupy_backends.cuda.libs import nvrtc

    arch = f"compute_{min(a for a in nvrtc.getSupportedArchs() if a >= 70)}"
    exprs = C.name_expressions()
    lowered = C.nvrtc_compile(exprs, arch, syntax_only=True)
    assert set(lowered) == set(exprs)
    assert all(name.startswith("_Z") for name in lowered.values())  # mangled C++ names: templates resolved


@pytest.mark.skipif(not _nvrtc_available(), reason="CuPy's NVRTC binding or the NVRTC library is not installed")
def test_the_front_end_check_refuses_what_the_architecture_lacks(monkeypatch):
    """What the syntax-only compile above can catch: an instantiation that calls an intrinsic the oldest target
    lacks (``__reduce_add_sync``, sm_80 on) is refused there and accepted at compute_80, naming the file."""
    from cupy_backends.cuda.libs import nvrtc

    oldest = min(a for a in nvrtc.getSupportedArchs() if a >= 70)  # as above: 70, or 75 under CUDA 13
    if oldest >= 80:
        pytest.skip(f"this NVRTC's oldest architecture is compute_{oldest}, which has __reduce_add_sync")
    arch = f"compute_{oldest}"
    source = "template <typename T> __global__ void k(T* x) { x[0] = (T)__reduce_add_sync(0xffffffffu, 1u); }\n"
    monkeypatch.setattr(K, "kernel_source", lambda name: source)
    monkeypatch.setattr(K, "_source_of", lambda expr: "probe.cuh")
    with pytest.raises(RuntimeError, match=r"probe.cuh does not compile with NVRTC:[\s\S]*__reduce_add_sync"):
        C.nvrtc_compile(["k<float>"], arch, syntax_only=True)
    assert C.nvrtc_compile(["k<float>"], "compute_80", syntax_only=True)["k<float>"].startswith("_Z")
    # an NVRTC that does not know the option compiles fully instead (and still refuses what does not compile)
    from cupy_backends.cuda.libs import nvrtc

    compile_program, seen = nvrtc.compileProgram, []

    def old_nvrtc(prog, options):
        seen.append(list(options))
        if "-fdevice-syntax-only" in options:
            raise nvrtc.NVRTCError(5)  # NVRTC_ERROR_INVALID_OPTION
        return compile_program(prog, options)

    monkeypatch.setattr(nvrtc, "compileProgram", old_nvrtc)
    assert C.nvrtc_compile(["k<float>"], "compute_80", syntax_only=True)["k<float>"].startswith("_Z")
    assert len(seen) == 2 and "-fdevice-syntax-only" not in seen[1]
    with pytest.raises(RuntimeError, match="__reduce_add_sync"):
        C.nvrtc_compile(["k<float>"], arch, syntax_only=True)


@pytest.mark.skipif(not _nvrtc_available(), reason="CuPy's NVRTC binding or the NVRTC library is not installed")
@pytest.mark.slow
def test_no_kernel_spills_registers_on_an_h100():
    """ptxas -v for sm_90: every instantiation keeps its row in registers (no local-memory spills), and the
    biggest fits its launch bound (255 registers at most per thread, 64K per multiprocessor)."""
    report = C.register_report(C.name_expressions(), "sm_90")
    assert set(report) == set(C.name_expressions())
    assert {e: r for e, r in report.items() if r["spill_bytes"]} == {}
    for expr, r in report.items():
        assert 0 < r["registers"] <= 255, (expr, r)
        if expr.startswith("norm_"):  # and fits the block size its __launch_bounds__ promise
            items = int(expr.split(",")[1])
            threads = 1024 if items <= 4 else 512 if items <= 8 else 256
            assert r["registers"] <= 65536 // threads, (expr, r)


# --------------------------------------------------------------------------------------------------
# the kernels on the CPU emulator


def _case(rng, N, n, dtype, offset=0.0):
    x = (rng.standard_normal((N, n)) * rng.uniform(0.5, 3) + offset).astype(dtype)
    g = rng.standard_normal(n).astype(dtype)
    b = rng.standard_normal(n).astype(dtype)
    dy = rng.standard_normal((N, n)).astype(dtype)
    return x, g, b, dy


def _f64(*arrays):
    return [None if a is None else a.astype(np.float64) for a in arrays]


@pytest.mark.parametrize("n, dtype", FUSED_CASES)
def test_fused_layer_norm_matches_the_float64_reference(emulator, n, dtype):
    rng = np.random.default_rng(n)
    x, g, b, dy = _case(rng, 3, n, dtype, offset=2.0)
    y, cache = CN.layer_norm(x, g, b, 1e-5)
    dx, dg, db = CN.layer_norm_backward(dy, cache)
    x64, g64, b64, dy64 = _f64(x, g, b, dy)
    y64, c64 = F.layer_norm(x64, g64, b64, 1e-5)
    dx64, dg64, db64 = F.layer_norm_backward(dy64, c64)
    assert y.dtype == dx.dtype == dg.dtype == db.dtype == dtype
    tol = TOL[dtype]
    # scales: |y| ~ |g| + |b|; dx is a difference of terms of size rstd |dy g|; the column sums grow with rows
    assert _err(y, y64, np.abs(y64).max()) < tol
    assert _err(cache.xhat, c64.xhat, 1.0) < tol
    assert _err(cache.rstd, c64.rstd, c64.rstd.max()) < tol
    assert _err(dx, dx64, (c64.rstd * np.abs(dy64 * g64)).max()) < 4 * tol
    assert _err(dg, dg64, np.abs(dy64 * c64.xhat).sum(axis=0).max()) < 4 * tol
    assert _err(db, db64, np.abs(dy64).sum(axis=0).max()) < 4 * tol


@pytest.mark.parametrize("n, dtype", FUSED_CASES)
def test_fused_rms_norm_matches_the_float64_reference(emulator, n, dtype):
    rng = np.random.default_rng(100 + n)
    x, g, _, dy = _case(rng, 3, n, dtype)
    y, cache = CN.rms_norm(x, g, 1e-5)
    dx, dg = CN.rms_norm_backward(dy, cache)
    x64, g64, dy64 = _f64(x, g, dy)
    y64, c64 = F.rms_norm(x64, g64, 1e-5)
    dx64, dg64 = F.rms_norm_backward(dy64, c64)
    tol = TOL[dtype]
    assert _err(y, y64, np.abs(y64).max()) < tol
    assert _err(dx, dx64, (c64.rstd * np.abs(dy64 * g64)).max()) < 4 * tol
    assert _err(dg, dg64, np.abs(dy64 * c64.xhat).sum(axis=0).max()) < 4 * tol


@pytest.mark.parametrize("gain, bias", [(False, False), (True, False), (False, True)])
def test_absent_gain_or_bias_means_one_or_zero(emulator, gain, bias):
    rng = np.random.default_rng(7)
    x, g, b, dy = _case(rng, 4, 37, np.float64)
    g, b = (g if gain else None), (b if bias else None)
    y, cache = CN.layer_norm(x, g, b, 1e-5)
    y_ref, c_ref = F.layer_norm(x, g, b, 1e-5)
    np.testing.assert_allclose(y, y_ref, rtol=0, atol=1e-13)
    got, want = CN.layer_norm_backward(dy, cache), F.layer_norm_backward(dy, c_ref)
    for a, w in zip(got, want):
        assert (a is None) == (w is None)
        if w is not None:
            np.testing.assert_allclose(a, w, rtol=0, atol=1e-12)


def test_many_rows_per_block_and_a_3d_input(emulator, monkeypatch):
    """More rows than blocks (12 rows on grids of 3), so every block walks several rows (the grid-stride
    loops and the partial sums); and an input with two leading axes."""
    monkeypatch.setattr(C._kernels, "forward_grid", lambda rows: min(rows, 3))
    monkeypatch.setattr(C._kernels, "backward_grid", lambda rows, threads: min(rows, 3))
    rng = np.random.default_rng(11)
    x = rng.standard_normal((3, 4, 300)) + 1.0
    g, b = rng.standard_normal(300), rng.standard_normal(300)
    dy = rng.standard_normal(x.shape)
    emulator.launches.clear()
    y, cache = CN.layer_norm(x, g, b, 1e-5)
    dx, dg, db = CN.layer_norm_backward(dy, cache)
    assert [(e.split("<")[0], grid) for e, grid, _ in emulator.launches] == [
        ("norm_forward", 3), ("norm_backward", 3), ("sum_columns", 3)]  # sum_columns: 600 columns, 3 blocks
    y_ref, c_ref = F.layer_norm(x, g, b, 1e-5)
    assert y.shape == x.shape and dx.shape == x.shape
    np.testing.assert_allclose(y, y_ref, rtol=0, atol=1e-13)
    for a, w in zip((dx, dg, db), F.layer_norm_backward(dy, c_ref)):
        np.testing.assert_allclose(a, w, rtol=1e-12, atol=1e-12)


def test_no_rows_gives_empty_results_and_zero_gain_gradients(emulator):
    x = np.empty((0, 37))
    g, b = np.random.default_rng(0).standard_normal((2, 37))
    y, cache = CN.layer_norm(x, g, b, 1e-5)
    dx, dg, db = CN.layer_norm_backward(np.empty((0, 37)), cache)
    assert y.shape == dx.shape == (0, 37) and cache.rstd.shape == (0, 1)
    assert np.array_equal(dg, np.zeros(37)) and np.array_equal(db, np.zeros(37))
    assert emulator.launches == []  # nothing to launch


def test_float32_keeps_its_precision_on_rows_with_a_large_offset(emulator):
    """Corrected two-pass statistics: mean 1e4, std 1 in float32 loses nothing (one-pass E[x^2]-E[x]^2 would)."""
    rng = np.random.default_rng(5)
    x = (1e4 + rng.standard_normal((4, 1000))).astype(np.float32)
    y, _ = CN.layer_norm(x, None, None, 1e-5)
    y64, _ = F.layer_norm(x.astype(np.float64), None, None, 1e-5)
    assert np.max(np.abs(y - y64)) < 2e-6


def test_results_are_the_same_on_every_run(emulator):
    rng = np.random.default_rng(3)
    x, g, b, dy = _case(rng, 9, 200, np.float32)
    first = CN.layer_norm_backward(dy, CN.layer_norm(x, g, b, 1e-5)[1])
    again = CN.layer_norm_backward(dy, CN.layer_norm(x, g, b, 1e-5)[1])
    for a, w in zip(first, again):
        assert np.array_equal(a, w)  # no atomics: a fixed order of additions


def test_a_fused_cache_works_with_the_portable_backward(emulator):
    rng = np.random.default_rng(9)
    x, g, b, dy = _case(rng, 6, 37, np.float64)
    _, cache = CN.layer_norm(x, g, b, 1e-5)
    for a, w in zip(F.layer_norm_backward(dy, cache), CN.layer_norm_backward(dy, cache)):
        np.testing.assert_allclose(a, w, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("kind", ["layer", "rms"])
@pytest.mark.parametrize("shape", [(3, 5), (1, 37)])  # 37: two warps, so the block-level reductions
def test_fused_backward_passes_a_float64_finite_difference_check(emulator, kind, shape):
    rng = np.random.default_rng(shape[1])
    x = rng.standard_normal(shape) * 2 + 0.5
    g, b = rng.standard_normal(shape[1]), rng.standard_normal(shape[1])
    if kind == "layer":
        rep = check_function(lambda x, gain, bias: CN.layer_norm(x, gain, bias, 1e-5), CN.layer_norm_backward,
                             dict(x=x, gain=g, bias=b), seed=1)
    else:
        rep = check_function(lambda x, gain: CN.rms_norm(x, gain, 1e-5), CN.rms_norm_backward,
                             dict(x=x, gain=g), seed=1)
    assert rep.passed(1e-7), str(rep)


@pytest.mark.parametrize("dtype", [np.float16, "bfloat16"])
def test_float32_to_16_bits_rounds_to_nearest_even_like_numpy(emulator, dtype):
    """``from_acc``: sum_columns over one partial row is a bare float32 -> storage conversion. Ties, the
    largest finite values, subnormals, infinities and NaN convert as NumPy (and ml_dtypes) convert them."""
    if dtype == "bfloat16":
        if BFLOAT16 is None:
            pytest.skip("ml_dtypes is not installed")
        dtype = BFLOAT16
    # (no -0.0: the column sum starts from +0, and +0 + -0 is +0)
    special = np.array([0.0, 1.0, 1 + 2**-8, 1 + 3 * 2**-8, 1 + 2**-11, 1 + 3 * 2**-11, 65504.0, 65520.0,
                        3.3895314e38, 3.4028235e38, 1e-40, 6e-8, 2**-24, np.inf, -np.inf, np.nan], dtype=np.float32)
    part = np.concatenate([special, -special[1:], np.random.default_rng(0).standard_normal(200).astype(np.float32)])
    out = np.empty(part.size, dtype=dtype)
    C.launch(f"sum_columns<{C._kernels.DTYPES[np.dtype(dtype)]}>", 1, 64, part[None, :], np.int32(1),
             np.int32(part.size), out)
    with np.errstate(over="ignore"):  # 3.4e38 is past float16's range: inf, as it should be
        want = part.astype(dtype)
    same = (out.view(np.uint16) == want.view(np.uint16)) | (np.isnan(out.astype(np.float32)) & np.isnan(part))
    assert same.all(), (part[~same], out[~same], want[~same])


def test_a_kernel_that_writes_out_of_bounds_is_caught(emulator):
    """The emulator's guard bands work: sum 40 columns into an array of 37 and the launch fails."""
    part = np.random.default_rng(0).standard_normal((2, 40))
    with pytest.raises(AssertionError, match="wrote outside an array argument"):
        C.launch("sum_columns<double>", 1, 64, part, np.int32(2), np.int32(40), np.empty(37))


def test_a_kernel_that_reads_out_of_bounds_gets_nans(emulator):
    """Claim rows of 40 units on arrays of 37: the second row reads the guard band, and its results are NaN."""
    x = np.random.default_rng(1).standard_normal((2, 37))
    y, xhat, rstd = np.zeros_like(x), np.zeros_like(x), np.zeros((2, 1))
    try:
        C.launch("norm_forward<double, 2, true>", 2, 32, x, None, None, y, xhat, rstd,
                 np.int64(2), np.int32(40), np.float64(1e-5))
    except AssertionError:  # it may also be caught writing past the end
        return
    assert np.isnan(rstd[1, 0]) and not np.isnan(rstd[0, 0])


# --------------------------------------------------------------------------------------------------
# on a real GPU (skipped elsewhere)


@pytest.mark.gpu
class TestOnTheGPU:
    @pytest.fixture(autouse=True)
    def _cupy(self, gpu_spy):
        self.cp, self.calls = gpu_spy(CN, ("layer_norm", "layer_norm_backward", "rms_norm", "rms_norm_backward"))

    @pytest.mark.parametrize("n, dtype", FUSED_CASES)
    def test_fused_vs_portable_vs_float64(self, n, dtype):
        cp = self.cp
        rng = np.random.default_rng(n)
        x, g, b, dy = _case(rng, 33, n, dtype, offset=2.0)
        xd, gd, bd, dyd = (cp.asarray(a) for a in (x, g, b, dy))
        y, cache = F.layer_norm(xd, gd, bd, 1e-5)
        dx, dg, db = F.layer_norm_backward(dyd, cache)
        assert self.calls == ["layer_norm", "layer_norm_backward"]  # the fused path ran
        with C.use_fused(False):
            yp, cp_cache = F.layer_norm(xd, gd, bd, 1e-5)
            dxp, dgp, dbp = F.layer_norm_backward(dyd, cp_cache)
        assert self.calls == ["layer_norm", "layer_norm_backward"]  # and the portable one did not call it
        x64, g64, b64, dy64 = _f64(x, g, b, dy)
        y64, c64 = F.layer_norm(x64, g64, b64, 1e-5)
        dx64, dg64, db64 = F.layer_norm_backward(dy64, c64)
        tol = TOL[dtype]
        scales = (np.abs(y64).max(), (c64.rstd * np.abs(dy64 * g64)).max(),
                  np.abs(dy64 * c64.xhat).sum(axis=0).max(), np.abs(dy64).sum(axis=0).max())
        for fused, portable, ref, scale in zip((y, dx, dg, db), (yp, dxp, dgp, dbp), (y64, dx64, dg64, db64), scales):
            assert fused.dtype == dtype
            assert _err(cp.asnumpy(fused), ref, scale) < 4 * tol
            if dtype != np.float16:  # the portable float16 path accumulates in float16 and is the less accurate
                assert _err(cp.asnumpy(portable), ref, scale) < 8 * tol

    @pytest.mark.parametrize("n", ROW_LENGTHS)
    def test_rms_norm_fused_vs_float64(self, n):
        cp = self.cp
        rng = np.random.default_rng(n)
        x, g, _, dy = _case(rng, 17, n, np.float32)
        y, cache = F.rms_norm(cp.asarray(x), cp.asarray(g), 1e-5)
        dx, dg = F.rms_norm_backward(cp.asarray(dy), cache)
        assert self.calls == ["rms_norm", "rms_norm_backward"]
        x64, g64, dy64 = _f64(x, g, dy)
        y64, c64 = F.rms_norm(x64, g64, 1e-5)
        dx64, dg64 = F.rms_norm_backward(dy64, c64)
        assert _err(cp.asnumpy(y), y64, np.abs(y64).max()) < 4e-6
        assert _err(cp.asnumpy(dx), dx64, (c64.rstd * np.abs(dy64 * g64)).max()) < 1e-5
        assert _err(cp.asnumpy(dg), dg64, np.abs(dy64 * c64.xhat).sum(axis=0).max()) < 1e-5

    def test_gradcheck_on_the_gpu_in_float64(self):
        cp = self.cp
        rng = np.random.default_rng(2)
        inputs = dict(x=cp.asarray(rng.standard_normal((4, 37))), gain=cp.asarray(rng.standard_normal(37)),
                      bias=cp.asarray(rng.standard_normal(37)))
        rep = check_function(F.layer_norm, F.layer_norm_backward, inputs, seed=4)
        assert rep.passed(1e-7), str(rep)

    def test_rows_longer_than_the_fused_range_take_the_portable_path(self):
        cp = self.cp
        x = cp.asarray(np.random.default_rng(0).standard_normal((2, CN.MAX_ROW + 1)).astype(np.float32))
        y, _ = F.layer_norm(x, None, None)
        assert self.calls == []
        assert float(cp.abs(y.mean(axis=-1)).max()) < 1e-5
