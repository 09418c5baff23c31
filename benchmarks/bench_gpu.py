"""Layer norm and an LN-LSTM training step on a GPU: lnedu's fused kernels against its portable CuPy code and PyTorch.

One run measures, on one CUDA device:

* **copy bandwidth**: ``dst[...] = src`` on a 1 GiB array, which reads and writes it once (2 x 1 GiB moved).
  It is the practical ceiling for a kernel that streams memory, and the yardstick of every GB/s below;
* **layer norm, forward and backward**, at (4096, 1024), (32768, 512) and (8192, 4096), timed forward alone,
  backward alone and the two together, for three contenders computing the same thing on the same data:

  - ``lnedu-fused``: :func:`lnedu.functional.layer_norm` / ``layer_norm_backward`` on CuPy arrays, which take
    the fused kernels of ``lnedu/cuda/kernels/layer_norm.cuh`` (one kernel forward, one kernel and a
    column sum backward);
  - ``lnedu-portable``: the same calls under ``lnedu.cuda.use_fused(False)``: the readable array code of
    :mod:`lnedu.functional.norms`, one CuPy kernel per array operation;
  - ``torch``: ``torch.nn.functional.layer_norm`` and autograd on ``"cuda"`` (PyTorch's fused kernels), when
    PyTorch with CUDA is importable;

  in float32, float16 and bfloat16. NumPy has no bfloat16 of its own: CuPy (>= 14) takes ``ml_dtypes``'
  bfloat16, and so does lnedu (the ``[gpu]`` extra installs it); where ``ml_dtypes`` is missing, the
  ``bfloat16`` rows are PyTorch alone, as context, and count toward no target;
* **an LN-LSTM training step** (forward over T = 100 steps, backprop through time, Adam; batch 64, input and
  hidden size 1024, float32): lnedu's ``LSTM(D, H, ln="appendix")`` on CuPy, fused kernels on and off, against
  the same model written in PyTorch and trained with autograd (``benchmarks/bench_rnn.py``'s peer, built
  from lnedu's initial weights), on ``"cuda"``.

Before anything is timed every result is checked: each layer-norm contender's ``(y, dx, dgain, dbias)``
against a float64 reference computed on the host from the same (rounded) inputs, and the LSTM pair by
their loss and every parameter gradient in float64 on the device. A contender that disagrees is flagged
in the table (``!``) and cannot meet a target: a fast wrong answer does not win.

The byte model (what "GB/s" means). Each contender is credited with the bytes its design must move, per
call, for ``x`` of ``rows x n`` elements of ``s`` bytes (``n`` per-column values; per-row statistics in
float32):

=================  ===================================================  ===============================
contender          forward                                              backward
=================  ===================================================  ===============================
lnedu-fused        read x, write y, write xhat: 3 rows n s              read dy, read xhat, write dx: 3
                   + write rstd (rows x 4) + read gain, bias (2 n s)    + read rstd + gain, write dgain, dbias
torch              read x, write y: 2 rows n s                          read dy, read x, write dx: 3
                   + write mean, rstd + read gain, bias                 + read mean, rstd, gain; write dgain, dbias
lnedu-portable     14 full-size passes (9 reads, 5 writes)              18 passes (12 reads, 6 writes)
=================  ===================================================  ===============================

lnedu keeps ``xhat`` as its backward's cache (the portable code's cache, so the two paths mix): one more
array written forward than PyTorch, which keeps only the per-row mean and rstd and recomputes ``xhat`` from
``x`` in its backward. The portable counts are one per full-size operand read and one per full-size result
written, over the CuPy operations of ``lnedu/functional/norms.py`` (a matrix-vector product reads its matrix
once; the row-wise dot products ``xc . xc`` read two operands; ``a -= b`` reads two arrays and writes one when
``b`` is full-size, one and one when it is a per-row vector). Left out, so the GB/s figures are conservative:
the fused backward's partial column sums (one row of ``2 n`` float32 per block, written and read back once:
with 132 multiprocessors about 2% and 4% of the forward + backward's bytes at the large shapes, 9% at
(4096, 1024)), and PyTorch's second backward kernel for the gain and bias gradients, which reads ``dy`` and ``x`` again
(``LaunchGammaBetaBackwardCUDAKernel`` in ATen's ``layer_norm_kernel.cu``). ``GB/s = bytes / median time``,
and ``% copy`` divides it by the copy bandwidth of the same run.

The targets (issue 8), checked at the large shapes (x of at least 16 Mi elements: (32768, 512) and
(8192, 4096), whose arrays no longer fit in the L2 cache), in every dtype lnedu runs:

1. lnedu-fused forward + backward within 1.1x of PyTorch's time;
2. lnedu-fused forward + backward above 70% of the measured copy bandwidth;
3. the LN-LSTM training step no slower than the PyTorch autograd version (lnedu-fused / torch <= 1).

Timing: ``benchmarks/_timing.py`` interleaves the contenders round-robin and reports medians; every sample
ends with a device synchronize, so it times finished work, not queued launches. Usage::

    python benchmarks/bench_gpu.py            # the full run: a few minutes; writes benchmarks/results/bench_gpu.json
    python benchmarks/bench_gpu.py --quick    # a smoke run: one shape, tiny LSTM, 3 rounds
    python benchmarks/bench_gpu.py --json out.json --shapes 4096x1024 --dtypes float32

Without a usable CUDA device it prints why and exits with status 2, measuring and writing nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)  # _timing and bench_rnn, when run from anywhere
sys.path.insert(1, os.path.dirname(HERE))  # lnedu, uninstalled

import bench_rnn  # noqa: E402  (the PyTorch LN-LSTM peer; imports no torch until load_torch())
from _timing import compare, environment, format_environment, parse_shape, write_json  # noqa: E402

import lnedu.functional as F  # noqa: E402
from lnedu.backend import gpu_available, to_numpy  # noqa: E402
from lnedu.cuda import fused_enabled, use_fused  # noqa: E402
from lnedu.nn import LSTM  # noqa: E402

DEFAULT_SHAPES = ((4096, 1024), (32768, 512), (8192, 4096))
QUICK_SHAPES = ((4096, 1024),)
DTYPES = ("float32", "float16", "bfloat16")
try:  # NumPy's dtypes, plus ml_dtypes' bfloat16 where it is installed (CuPy >= 14 takes it)
    import ml_dtypes

    NUMPY_DTYPES = {"float32": np.float32, "float16": np.float16, "bfloat16": ml_dtypes.bfloat16}
except ImportError:
    NUMPY_DTYPES = {"float32": np.float32, "float16": np.float16}
LNEDU_DTYPES = tuple(NUMPY_DTYPES)  # what lnedu's arrays can hold here; any other dtype is PyTorch-only context
CONTENDERS = ("lnedu-fused", "lnedu-portable", "torch")
PHASES = ("fwd", "bwd", "fwd+bwd")
EPS = 1e-5
LARGE_ELEMENTS = 1 << 24  # x of at least 16 Mi elements (64 MiB in float32) counts as a large shape
TARGET_RATIO = 1.1  # lnedu-fused time / torch time, at most
TARGET_COPY = 0.70  # lnedu-fused GB/s / copy GB/s, at least
TOL = {"float32": 1e-3, "float16": 1e-2, "bfloat16": 5e-2}  # max |got - ref| / max |ref|, per result
COPY_BYTES = {"full": 1 << 30, "quick": 1 << 26}
LSTM_SIZES = {"full": dict(T=100, B=64, D=1024, H=1024), "quick": dict(T=5, B=64, D=256, H=256)}
CHECK_SIZES = bench_rnn.SIZES["quick"]  # the float64 LSTM cross-check: T=6 B=4 D=8 H=16
DEFAULT_JSON = os.path.join(HERE, "results", "bench_gpu.json")


# --------------------------------------------------------------------------------------------------
# the byte model (see the module docstring)


@dataclass(frozen=True)
class Traffic:
    """What one call moves: ``full`` arrays of ``rows x n``, ``per_row`` float32 vectors of ``rows``, and
    ``per_col`` vectors of ``n`` (gains, biases and their gradients) in the storage type."""

    full: int
    per_row: int
    per_col: int

    def bytes(self, rows: int, n: int, itemsize: int) -> int:
        return self.full * rows * n * itemsize + self.per_row * rows * 4 + self.per_col * n * itemsize


TRAFFIC = {
    ("lnedu-fused", "fwd"): Traffic(3, 1, 2),  # x in; y, xhat out; rstd out; gain, bias in
    ("lnedu-fused", "bwd"): Traffic(3, 1, 3),  # dy, xhat in; dx out; rstd in; gain in; dgain, dbias out
    ("torch", "fwd"): Traffic(2, 2, 2),  # x in; y out; mean, rstd out; gain, bias in
    ("torch", "bwd"): Traffic(3, 2, 3),  # dy, x in; dx out; mean, rstd in; gain in; dgain, dbias out
    ("lnedu-portable", "fwd"): Traffic(14, 1, 2),  # counted per operation in lnedu/functional/norms.py
    ("lnedu-portable", "bwd"): Traffic(18, 1, 3),
}


def traffic_bytes(contender: str, phase: str, rows: int, n: int, itemsize: int) -> int:
    """Bytes ``contender`` must move for ``phase`` ('fwd', 'bwd' or 'fwd+bwd') on ``rows x n`` elements."""
    if phase == "fwd+bwd":
        return sum(traffic_bytes(contender, p, rows, n, itemsize) for p in ("fwd", "bwd"))
    try:
        model = TRAFFIC[contender, phase]
    except KeyError:
        raise ValueError(f"contender, phase: expected one of {sorted(TRAFFIC)}, got {(contender, phase)!r}") from None
    return model.bytes(rows, n, itemsize)


def bytes_per_element(contender: str, phase: str, itemsize: int) -> int:
    """Full-size traffic per element of ``x`` (the per-row and per-column terms left out): 6 x 4 for fused float32."""
    phases = ("fwd", "bwd") if phase == "fwd+bwd" else (phase,)
    return sum(TRAFFIC[contender, p].full for p in phases) * itemsize


def itemsize_of(dtype: str) -> int:
    return {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8}[dtype]


def is_large(shape) -> bool:
    return math.prod(shape) >= LARGE_ELEMENTS


# --------------------------------------------------------------------------------------------------
# where the contenders run


@dataclass
class Backend:
    """The device side of a run: lnedu's array module and kernels, a synchronize, PyTorch's device name.

    On a GPU (:func:`gpu_backend`) the fused contender calls the public :mod:`lnedu.functional`, which
    dispatches CuPy arrays to the fused kernels. The tests build one on the CPU instead, with NumPy arrays,
    the fused functions of :mod:`lnedu.cuda.norms` called directly and the kernels run by the CPU emulator,
    so that everything but the CUDA device itself is exercised where there is none.
    """

    name: str  # lnedu's backend name for the arrays: "cupy" on a GPU
    xp: ModuleType
    sync: Callable[[], object]
    torch_device: str
    fused_forward: Callable = F.layer_norm
    fused_backward: Callable = F.layer_norm_backward
    fused_taken: Callable = None  # (x, gain, bias, dy, cache) -> bool: did the fused kernels take this case
    device: dict = None  # what the device is, for the report


def gpu_backend() -> Backend:
    """The CuPy backend on the current CUDA device (call only where :func:`lnedu.backend.gpu_available`)."""
    import cupy  # noqa: PLC0415

    from lnedu.cuda import norms as fused  # noqa: PLC0415

    dev = cupy.cuda.Device()
    props = cupy.cuda.runtime.getDeviceProperties(dev.id)
    name = props["name"]
    device = {
        "name": name.decode() if isinstance(name, bytes) else str(name),
        "compute_capability": dev.compute_capability,
        "multiprocessors": int(props["multiProcessorCount"]),
        "memory_gib": round(props["totalGlobalMem"] / 2**30, 1),
        "cuda_runtime": cupy.cuda.runtime.runtimeGetVersion(),
        "cuda_driver": cupy.cuda.runtime.driverGetVersion(),
        "cupy": cupy.__version__,
        "CUPY_TF32": os.environ.get("CUPY_TF32", "0"),
    }

    def taken(x, gain, bias, dy, cache):
        return fused.supported(x, gain, bias) and fused.backward_supported(dy, cache)

    return Backend("cupy", cupy, dev.synchronize, "cuda", fused_taken=taken, device=device)


def _host64(a) -> np.ndarray:
    """A float64 NumPy copy of a NumPy, CuPy or PyTorch array."""
    if type(a).__module__.startswith("torch"):
        return a.detach().double().cpu().numpy()
    return to_numpy(a).astype(np.float64)


def _rel_err(got, ref) -> float:
    """``max|got - ref| / max|ref|``: the error relative to the reference's scale."""
    return float(np.abs(_host64(got) - ref).max() / max(np.abs(ref).max(), 1e-30))


def _describe(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"[:300]


@dataclass
class Contender:
    """One way of computing layer norm: a forward, a backward (on a fixed cache), both, and checked results."""

    forward: Callable
    backward: Callable
    both: Callable
    results: Callable  # -> (y, dx, dgain, dbias) as float64 NumPy arrays

    def phase(self, name: str) -> Callable:
        return {"fwd": self.forward, "bwd": self.backward, "fwd+bwd": self.both}[name]


def lnedu_contender(backend: Backend, inputs: dict, dtype: str, *, fused: bool) -> Contender:
    """lnedu's layer norm on ``backend``: its fused kernels, or the portable array code."""
    xp = backend.xp
    x, gain, bias, dy = (xp.asarray(inputs[k].astype(NUMPY_DTYPES[dtype])) for k in ("x", "gain", "bias", "dy"))
    if fused:
        fwd, bwd = backend.fused_forward, backend.fused_backward
        switch = contextlib.nullcontext  # the default: the run switched the fused kernels on once
    else:
        fwd, bwd = F.layer_norm, F.layer_norm_backward
        switch = lambda: use_fused(False)  # noqa: E731  (per call: the contenders are interleaved)
    with switch():
        _, cache = fwd(x, gain, bias, EPS)  # the backward phase reuses one forward's cache
        if fused and backend.fused_taken is not None and not backend.fused_taken(x, gain, bias, dy, cache):
            raise RuntimeError(f"the fused kernels do not take {x.shape} {x.dtype}: this would time the portable code")

    def forward():
        with switch():
            return fwd(x, gain, bias, EPS)

    def backward():
        with switch():
            return bwd(dy, cache)

    def both():
        with switch():
            _, c = fwd(x, gain, bias, EPS)
            return bwd(dy, c)

    def results():
        with switch():
            y, c = fwd(x, gain, bias, EPS)
            return tuple(_host64(a) for a in (y, *bwd(dy, c)))

    return Contender(forward, backward, both, results)


def torch_contender(torch, backend: Backend, inputs: dict, dtype: str) -> Contender:
    """``torch.nn.functional.layer_norm`` and autograd on ``backend.torch_device``."""
    tdt = getattr(torch, dtype)

    def tensor(a, grad):  # float32 host data, rounded to ``dtype`` the same way NumPy rounds it
        t = torch.from_numpy(np.ascontiguousarray(a)).to(backend.torch_device).to(tdt)
        return t.requires_grad_() if grad else t

    x, gain, bias = (tensor(inputs[k], True) for k in ("x", "gain", "bias"))
    dy = tensor(inputs["dy"], False)
    shape, wrt = (x.shape[-1],), (x, gain, bias)
    layer_norm = torch.nn.functional.layer_norm

    def forward():
        return layer_norm(x, shape, gain, bias, EPS)

    y0 = forward()

    def backward():  # new gradient tensors each call, as lnedu's: no accumulation into .grad
        return torch.autograd.grad(y0, wrt, dy, retain_graph=True)

    def both():
        return torch.autograd.grad(forward(), wrt, dy)

    def results():
        y = forward()
        return tuple(_host64(a) for a in (y, *torch.autograd.grad(y, wrt, dy)))

    return Contender(forward, backward, both, results)


def reference(inputs: dict, dtype: str, torch=None) -> tuple:
    """``(y, dx, dgain, dbias)`` in float64 on the host, from the inputs rounded to ``dtype`` (by ml_dtypes or,
    for a dtype NumPy cannot hold here, by PyTorch)."""
    if dtype in NUMPY_DTYPES:
        r = {k: v.astype(NUMPY_DTYPES[dtype]).astype(np.float64) for k, v in inputs.items()}
    else:
        r = {k: torch.from_numpy(v).to(getattr(torch, dtype)).double().numpy() for k, v in inputs.items()}
    y, cache = F.layer_norm(r["x"], r["gain"], r["bias"], EPS)
    return (y, *F.layer_norm_backward(r["dy"], cache))


# --------------------------------------------------------------------------------------------------
# the measurements


def measure_copy(backend: Backend, nbytes: int, *, rounds: int, warmup: int, min_time: float) -> dict:
    """Device-to-device copy bandwidth: ``dst[...] = src`` on ``nbytes`` reads and writes them once."""
    xp = backend.xp
    src = xp.ones(nbytes // 4, dtype=np.float32)
    dst = xp.empty_like(src)

    def copy():
        dst[...] = src

    t = compare({"copy": copy}, rounds=rounds, warmup=warmup, min_time=min_time, sync=backend.sync)["copy"]
    moved = 2 * src.nbytes
    return {"nbytes": nbytes, "bytes_moved": moved, "timing": t.as_dict(), "gbps": moved / t.median / 1e9}


def measure_layer_norm(backend: Backend, torch, shape, dtype: str, *, rounds: int, warmup: int, min_time: float,
                       seed: int = 0) -> dict:
    """One (shape, dtype) case: build the contenders, check them against the float64 reference, time each phase.

    A contender that fails to build or run is recorded with its error and left out; the others go on.
    """
    rows, n = math.prod(shape[:-1]), shape[-1]
    rng = np.random.default_rng(seed)
    inputs = {  # float32 on the host; every contender rounds them to ``dtype`` itself
        "x": rng.normal(0.5, 2.0, size=shape).astype(np.float32),
        "gain": rng.normal(1.0, 0.1, size=n).astype(np.float32),
        "bias": rng.normal(0.0, 0.1, size=n).astype(np.float32),
        "dy": rng.normal(size=shape).astype(np.float32),
    }
    record = {"shape": list(shape), "dtype": dtype, "large": is_large(shape), "tolerance": TOL[dtype],
              "contenders": {}, "notes": []}
    builders = {}
    if dtype in LNEDU_DTYPES:
        builders["lnedu-fused"] = lambda: lnedu_contender(backend, inputs, dtype, fused=True)
        builders["lnedu-portable"] = lambda: lnedu_contender(backend, inputs, dtype, fused=False)
    else:
        record["notes"].append(f"lnedu: no {dtype} here (install ml_dtypes); PyTorch alone, as context")
    if torch is not None:
        builders["torch"] = lambda: torch_contender(torch, backend, inputs, dtype)

    if not builders:
        record["notes"].append("nothing to run: no contender takes this dtype here")
        return record
    ref = reference(inputs, dtype, torch)
    ready = {}
    for name, build in builders.items():
        entry = record["contenders"][name] = {"error": None}
        try:
            contender = build()
            diffs = [_rel_err(got, want) for got, want in zip(contender.results(), ref)]
        except Exception as err:  # e.g. a kernel that does not compile: report it, time the others
            entry["error"] = _describe(err)
            print(f"  {name} failed on {shape} {dtype}:\n{traceback.format_exc()}", file=sys.stderr)
            continue
        entry["max_rel_diff"] = dict(zip(("y", "dx", "dgain", "dbias"), diffs))
        entry["agrees"] = max(diffs) <= TOL[dtype]
        entry["bytes"] = {p: traffic_bytes(name, p, rows, n, itemsize_of(dtype)) for p in PHASES}
        entry["timings"] = {}
        ready[name] = contender
    for phase in PHASES:
        if ready:
            timings = compare({k: c.phase(phase) for k, c in ready.items()}, rounds=rounds, warmup=warmup,
                              min_time=min_time, sync=backend.sync)
            for k, t in timings.items():
                record["contenders"][k]["timings"][phase] = t.as_dict()
    return record


def _with_fused(flag: bool, step: Callable) -> Callable:
    def run():
        with use_fused(flag):
            return step()

    return run


def lstm_device_check(backend: Backend, sizes: dict = CHECK_SIZES, seed: int = 0) -> float:
    """Max relative difference, over the loss and every parameter gradient, of one training step of lnedu's
    LN-LSTM and of ``bench_rnn``'s PyTorch peer, both on the device in float64 from the same weights (the LN
    gains and biases drawn away from 1 and 0, so that a swapped name would show)."""
    T, B, D, H = sizes["T"], sizes["B"], sizes["D"], sizes["H"]
    torch = bench_rnn.torch
    rng = np.random.default_rng(seed)
    layer = LSTM(D, H, ln="appendix", rng=rng, dtype=np.float64)
    for k, p in layer.params.items():
        if k.startswith(("g_", "b")):
            p[...] = (1.0 if k.startswith("g_") else 0.0) + 0.3 * rng.standard_normal(p.shape)
    x, y = rng.standard_normal((T, B, D)), rng.standard_normal((T, B, H))
    model = bench_rnn.torch_from_lnedu("LN-LSTM", layer).to(backend.torch_device)
    layer.to_backend(backend.name)
    # one step each: the gradients stay in layer.grads and in p.grad after the optimizer's update
    loss = bench_rnn.make_lnedu_step(layer, backend.xp.asarray(x), backend.xp.asarray(y))()
    tx, ty = (torch.from_numpy(a).to(backend.torch_device) for a in (x, y))
    tloss = bench_rnn.make_torch_step(model, tx, ty)()
    worst = abs(loss - tloss) / abs(tloss)
    for tname, p in model.named_parameters():
        worst = max(worst, _rel_err(layer.grads[bench_rnn._lnedu_name(tname)], _host64(p.grad)))
    return worst


def measure_lstm(backend: Backend, torch, sizes: dict, *, rounds: int, warmup: int, min_time: float,
                 seed: int = 0) -> dict:
    """One LN-LSTM training step (forward, BPTT, Adam) in float32: lnedu fused on and off, and PyTorch autograd."""
    T, B, D, H = sizes["T"], sizes["B"], sizes["D"], sizes["H"]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, B, D)).astype(np.float32)
    y = rng.standard_normal((T, B, H)).astype(np.float32)
    record = {"sizes": dict(sizes), "dtype": "float32", "contenders": {}}
    layers = {name: LSTM(D, H, ln="appendix", rng=seed, dtype=np.float32) for name in ("lnedu-fused", "lnedu-portable")}
    steps = {}
    if torch is not None:  # the peer takes lnedu's initial weights, before they move to the device
        model = bench_rnn.torch_from_lnedu("LN-LSTM", layers["lnedu-fused"]).to(backend.torch_device)
        record["check_rel_diff_float64"] = lstm_device_check(backend, seed=seed)
        tx, ty = (torch.from_numpy(a).to(backend.torch_device) for a in (x, y))
        steps["torch"] = bench_rnn.make_torch_step(model, tx, ty)
    for name, layer in layers.items():
        layer.to_backend(backend.name)  # the optimizer is made after the move, inside make_lnedu_step
        step = bench_rnn.make_lnedu_step(layer, backend.xp.asarray(x), backend.xp.asarray(y))
        steps[name] = _with_fused(name == "lnedu-fused", step)
    steps = {k: steps[k] for k in CONTENDERS if k in steps}
    # the same initial weights and data: every contender's first loss is the same number
    record["first_loss"] = {k: float(step()) for k, step in steps.items()}
    timings = compare(steps, rounds=rounds, warmup=warmup, min_time=min_time, sync=backend.sync)
    for k, t in timings.items():
        record["contenders"][k] = {"timing": t.as_dict()}
    return record


# --------------------------------------------------------------------------------------------------
# from a results dict to the table and the verdicts (pure functions: the notebook and the tests use them)


def _median_ms(entry: dict, phase: str):
    t = (entry.get("timings") or {}).get(phase)
    return None if t is None else t["median_ms"]


def derived(case: dict, name: str, copy_gbps: float | None) -> dict:
    """GB/s and fraction of the copy bandwidth per phase, and the time ratios to torch and to lnedu-fused."""
    entry = case["contenders"][name]
    out = {"gbps": {}, "copy_fraction": {}, "ratio_to": {}}
    for phase in PHASES:
        ms = _median_ms(entry, phase)
        if ms is None or "bytes" not in entry:
            continue
        gbps = entry["bytes"][phase] / (ms * 1e-3) / 1e9
        out["gbps"][phase] = gbps
        if copy_gbps:
            out["copy_fraction"][phase] = gbps / copy_gbps
    ms = _median_ms(entry, "fwd+bwd")
    for other in ("torch", "lnedu-fused"):
        den = _median_ms(case["contenders"].get(other, {}), "fwd+bwd")
        if ms is not None and den:
            out["ratio_to"][other] = ms / den
    return out


def _shape_text(shape) -> str:
    return "x".join(str(d) for d in shape)


def _fmt(value, spec: str, missing: str = "-") -> str:
    return missing if value is None else format(value, spec)


def _ratio(value) -> str:
    return "-" if value is None else f"{value:.2f}x"


def format_layer_norm_table(payload: dict) -> str:
    """The layer-norm table: per case and contender, times, ratios, GB/s and % of the copy bandwidth."""
    copy = payload.get("copy") or {}
    copy_gbps = copy.get("gbps")
    device = (payload.get("device") or {}).get("name", "an unnamed device")
    rounds = payload.get("config", {}).get("rounds", "?")
    bandwidth = "not measured"
    if copy_gbps:
        bandwidth = f"{copy_gbps:.0f} GB/s (dst[...] = src on {copy['nbytes'] / 2**30:.3g} GiB, twice its bytes moved)"
    lines = [
        f"Layer norm forward + backward on {device}; copy bandwidth {bandwidth}",
        f"ms: median per call over {rounds} interleaved rounds; / torch, / fused: time ratios of forward + backward"
        " (below 1: faster);",
        "B/elem: bytes moved per element of x, forward + backward (the byte model in --help); GB/s: those bytes"
        " / time; % copy: GB/s over the copy bandwidth, forward / backward / both; err: max relative error",
        "",
    ]
    widths = (11, 8, 14, 8, 8, 8, 7, 7, 6, 6, 11, 7)
    names = ("shape", "dtype", "contender", "fwd ms", "bwd ms", "both ms", "/ torch", "/ fused", "B/elem", "GB/s",
             "% copy", "err")

    def row(cells):
        left = [f"{c:<{w}}" for c, w in zip(cells[:3], widths[:3])]
        right = [f"{c:>{w}}" for c, w in zip(cells[3:], widths[3:])]
        return " ".join(left + right).rstrip()

    head = row(names)
    lines += [head, "-" * len(head)]
    flagged = False
    for case in payload.get("layer_norm", []):
        label = [_shape_text(case["shape"]), case["dtype"]]
        if case.get("error"):
            lines.append(row(label + [f"error: {case['error']}"]))
            continue
        for name, entry in case["contenders"].items():
            if entry.get("error"):
                lines.append(row(label + [name]) + f"  error: {entry['error']}")
            else:
                d = derived(case, name, copy_gbps)
                pct = "/".join(f"{100 * d['copy_fraction'][p]:.0f}" if p in d["copy_fraction"] else "-"
                               for p in PHASES)
                agrees = entry.get("agrees", True)
                flagged |= not agrees
                lines.append(row(label + [
                    name,
                    *(_fmt(_median_ms(entry, p), ".3f") for p in PHASES),
                    _ratio(d["ratio_to"].get("torch")),
                    _ratio(d["ratio_to"].get("lnedu-fused")),
                    str(bytes_per_element(name, "fwd+bwd", itemsize_of(case["dtype"]))),
                    _fmt(d["gbps"].get("fwd+bwd"), ".0f"),
                    pct if d["copy_fraction"] else "-",
                    f"{max(entry['max_rel_diff'].values()):.0e}" + ("" if agrees else "!"),
                ]))
            label = ["", ""]  # the shape and dtype once per case
        for note in case.get("notes", []):
            lines.append(row(["", "", f"note: {note}"]))
    if flagged:
        lines.append("! disagrees with the float64 reference beyond the dtype's tolerance: its time proves nothing")
    return "\n".join(lines)


def format_lstm_table(payload: dict) -> str:
    lstm = payload.get("lstm")
    if not lstm:
        return "LN-LSTM training step: not run"
    s = lstm["sizes"]
    lines = [f"LN-LSTM training step (forward, BPTT, Adam), {lstm.get('dtype', 'float32')}, "
             f"T={s['T']} B={s['B']} D={s['D']} H={s['H']}; median ms per step"]
    if lstm.get("error"):
        return "\n".join(lines + [f"  error: {lstm['error']}"])
    torch_ms = (lstm["contenders"].get("torch") or {}).get("timing", {}).get("median_ms")
    lines.append(f"  {'contender':<15} {'median ms':>10} {'/ torch':>8} {'first loss':>12}")
    for name, entry in lstm["contenders"].items():
        ms = entry["timing"]["median_ms"]
        ratio = f"{ms / torch_ms:.2f}x" if torch_ms else "-"
        loss = lstm.get("first_loss", {}).get(name)
        lines.append(f"  {name:<15} {ms:10.2f} {ratio:>8} {_fmt(loss, '12.6f'):>12}")
    if "check_rel_diff_float64" in lstm:
        c = CHECK_SIZES
        lines.append(f"  same model: max rel. diff of loss and gradients, lnedu vs torch on the device, float64, "
                     f"T={c['T']} B={c['B']} D={c['D']} H={c['H']}: {lstm['check_rel_diff_float64']:.1e}")
    return "\n".join(lines)


def evaluate_targets(payload: dict) -> list:
    """The three targets as ``{"target", "status": "met" | "not met" | "not checked", "detail"}`` dicts."""
    copy_gbps = (payload.get("copy") or {}).get("gbps")
    ratio, frac = [], []  # (label, value, fused agrees with the reference)
    for case in payload.get("layer_norm", []):
        # lnedu not run for this dtype (a bfloat16 row without ml_dtypes): context only, no target
        if not case.get("large") or "lnedu-fused" not in case["contenders"] or case.get("error"):
            continue
        entry = case["contenders"]["lnedu-fused"]
        label = f"{_shape_text(case['shape'])} {case['dtype']}"
        if entry.get("error"):
            ratio.append((label, None, False))
            frac.append((label, None, False))
            continue
        d = derived(case, "lnedu-fused", copy_gbps)
        ok = entry.get("agrees", False)
        peer = case["contenders"].get("torch")
        if peer is not None and not peer.get("error"):
            ratio.append((label, d["ratio_to"].get("torch"), ok))
        frac.append((label, d["copy_fraction"].get("fwd+bwd"), ok))

    def verdict(target, items, show, passes):
        if not items:
            return {"target": target, "status": "not checked",
                    "detail": "no large shape with the contenders it needs in this run"}
        parts, good = [], True
        for label, value, ok in items:
            if value is None:
                parts.append(f"{label} failed")
                good = False
            else:
                parts.append(f"{label} {show(value)}" + ("" if ok else " (wrong results)"))
                good &= ok and passes(value)
        return {"target": target, "status": "met" if good else "not met", "detail": ", ".join(parts)}

    out = [
        verdict(f"lnedu-fused LN forward + backward within {TARGET_RATIO}x of PyTorch at the large shapes",
                ratio, _ratio, lambda v: v <= TARGET_RATIO),
        verdict(f"lnedu-fused LN forward + backward above {TARGET_COPY:.0%} of the copy bandwidth at the large shapes",
                frac, lambda v: f"{v:.0%}", lambda v: v > TARGET_COPY),
    ]
    lstm = payload.get("lstm") or {}
    target = "LN-LSTM training step no slower than PyTorch autograd (lnedu-fused / torch <= 1)"
    c = lstm.get("contenders", {})
    if "lnedu-fused" in c and "torch" in c:
        r = c["lnedu-fused"]["timing"]["median_ms"] / c["torch"]["timing"]["median_ms"]
        same = lstm.get("check_rel_diff_float64", 0.0) < 1e-8
        out.append({"target": target, "status": "met" if r <= 1.0 and same else "not met",
                    "detail": f"{r:.2f}x" + ("" if same else " (the models disagree)")})
    else:
        out.append({"target": target, "status": "not checked",
                    "detail": lstm.get("error") or "PyTorch with CUDA or the LSTM run is missing"})
    return out


def format_verdicts(targets: list) -> str:
    return "\n".join(f"{t['status'].upper():<11} {t['target']}: {t['detail']}" for t in targets)


def format_report(payload: dict) -> str:
    """The whole report of a run (what the script prints, and what notebook 14 shows from the JSON)."""
    targets = payload.get("targets") or evaluate_targets(payload)
    return "\n\n".join([format_layer_norm_table(payload), format_lstm_table(payload),
                        "targets\n" + format_verdicts(targets)])


# --------------------------------------------------------------------------------------------------
# the run


def parse_dtypes(text: str) -> list:
    names = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in names if t not in DTYPES]
    if not names or bad:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of {', '.join(DTYPES)}, got {text!r}")
    return names


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shapes", type=lambda s: [parse_shape(t) for t in s.split(",")], default=None,
                   help="comma-separated layer-norm shapes, last axis normalized "
                        "(default 4096x1024,32768x512,8192x4096; --quick 4096x1024)")
    p.add_argument("--dtypes", type=parse_dtypes, default=list(DTYPES),
                   help="comma-separated, of float32, float16, bfloat16 (default: all three)")
    p.add_argument("--rounds", type=int, default=None, help="interleaved timed rounds (default 15, --quick 3)")
    p.add_argument("--quick", action="store_true", help="a smoke run: one shape, a small LSTM, 3 short rounds")
    p.add_argument("--no-torch", action="store_true", help="leave PyTorch out even when it is importable")
    p.add_argument("--no-lstm", action="store_true", help="skip the LN-LSTM training step")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", metavar="PATH", default=DEFAULT_JSON,
                   help="where to write the results, atomically (default: benchmarks/results/bench_gpu.json)")
    args = p.parse_args(argv)
    if args.rounds is not None and args.rounds < 1:
        p.error(f"--rounds: expected a positive count, got {args.rounds}")
    if args.shapes is None:
        args.shapes = list(QUICK_SHAPES if args.quick else DEFAULT_SHAPES)
    return args


NO_GPU = ("bench_gpu: no usable CUDA device here (lnedu.backend.gpu_available() is False: CuPy is missing or "
          "sees no GPU); nothing was measured and no results were written. Run it on a machine with an NVIDIA "
          "GPU and CuPy (pip install -e '.[gpu,bench]').")


def load_torch_cuda():
    """``(torch, note)``: PyTorch when it is importable and sees a CUDA device, else ``(None, why not)``."""
    torch = bench_rnn.load_torch()
    if torch is None:
        return None, "torch: not installed, so its column and the LSTM peer are skipped (pip install -e '.[bench]')"
    if not torch.cuda.is_available():
        return None, f"torch {torch.__version__}: no CUDA device visible to it (a CPU build?), so it is skipped"
    return torch, (f"torch {torch.__version__} (CUDA {torch.version.cuda}) on {torch.cuda.get_device_name()}, "
                   f"TF32 matmul {'on' if torch.backends.cuda.matmul.allow_tf32 else 'off'}")


def run(backend: Backend, torch, *, shapes, dtypes, rounds: int, warmup: int, min_time: float, copy_bytes: int,
        lstm_sizes: dict | None, seed: int = 0, log=print) -> dict:
    """Every measurement of a run; returns the results dict (what is written as JSON)."""
    if not fused_enabled():  # LNEDU_FUSED=0 in the environment: the fused contender needs them on
        use_fused(True)
    payload = {"benchmark": "bench_gpu", "device": backend.device or {"name": backend.name},
               "config": {"shapes": [list(s) for s in shapes], "dtypes": list(dtypes), "rounds": rounds,
                          "warmup": warmup, "min_time_s": min_time, "seed": seed, "eps": EPS,
                          "large_elements": LARGE_ELEMENTS, "tolerance": TOL}}
    log(f"copy bandwidth: dst[...] = src on {copy_bytes / 2**30:.2g} GiB ...")
    payload["copy"] = measure_copy(backend, copy_bytes, rounds=rounds, warmup=warmup, min_time=min_time)
    log(f"  {payload['copy']['gbps']:.0f} GB/s")
    payload["layer_norm"] = []
    for shape in shapes:
        for dtype in dtypes:
            log(f"layer norm {_shape_text(shape)} {dtype} ...")
            start = time.perf_counter()
            try:
                case = measure_layer_norm(backend, torch, shape, dtype, rounds=rounds, warmup=warmup,
                                          min_time=min_time, seed=seed)
            except Exception as err:
                print(traceback.format_exc(), file=sys.stderr)
                case = {"shape": list(shape), "dtype": dtype, "large": is_large(shape), "error": _describe(err),
                        "contenders": {}}
            payload["layer_norm"].append(case)
            log(f"  done in {time.perf_counter() - start:.1f} s")
            _free(backend, torch)
    payload["lstm"] = None
    if lstm_sizes is not None:
        log("LN-LSTM training step ...")
        try:
            payload["lstm"] = measure_lstm(backend, torch, lstm_sizes, rounds=rounds, warmup=warmup,
                                           min_time=min_time, seed=seed)
        except Exception as err:
            print(traceback.format_exc(), file=sys.stderr)
            payload["lstm"] = {"sizes": dict(lstm_sizes), "error": _describe(err), "contenders": {}}
        _free(backend, torch)
    for case in payload["layer_norm"]:  # the derived figures, for readers of the JSON
        for name in case["contenders"]:
            if not case["contenders"][name].get("error"):
                case["contenders"][name]["derived"] = derived(case, name, payload["copy"]["gbps"])
    payload["targets"] = evaluate_targets(payload)
    return payload


def _free(backend: Backend, torch) -> None:
    """Hand cached device memory back between cases, so that one case's pool does not crowd the next."""
    if backend.name == "cupy":
        backend.xp.get_default_memory_pool().free_all_blocks()
    if torch is not None and backend.torch_device == "cuda":
        torch.cuda.empty_cache()


def main(argv=None) -> int:
    args = parse_args(argv)
    if not gpu_available():
        print(NO_GPU, file=sys.stderr)
        return 2
    quick = "quick" if args.quick else "full"
    rounds = args.rounds or (3 if args.quick else 15)
    warmup, min_time = (1, 0.002) if args.quick else (3, 0.05)
    backend = gpu_backend()
    torch, note = (None, "torch: left out (--no-torch)") if args.no_torch else load_torch_cuda()

    env = environment()  # after the imports, so that their thread pools are listed
    print(format_environment(env))
    dev = backend.device
    print(f"{dev['name']}: {dev['multiprocessors']} SMs, {dev['memory_gib']} GiB, compute capability "
          f"{dev['compute_capability']}, CUDA runtime {dev['cuda_runtime']}, CuPy {dev['cupy']}")
    print(note)
    if "bfloat16" in args.dtypes and "bfloat16" not in LNEDU_DTYPES:
        print("bfloat16: ml_dtypes is not installed, so lnedu cannot hold it (NumPy has no bfloat16 of its own); "
              "the bfloat16 rows are PyTorch alone, as context")
    print()
    payload = run(backend, torch, shapes=args.shapes, dtypes=args.dtypes, rounds=rounds, warmup=warmup,
                  min_time=min_time, copy_bytes=COPY_BYTES[quick],
                  lstm_sizes=None if args.no_lstm else LSTM_SIZES[quick], seed=args.seed,
                  log=lambda s: print(s, file=sys.stderr, flush=True))
    env["torch"] = None if torch is None else {"version": torch.__version__, "cuda": torch.version.cuda,
                                               "allow_tf32_matmul": bool(torch.backends.cuda.matmul.allow_tf32)}
    payload["environment"] = env
    payload["config"]["quick"] = args.quick
    print(format_report(payload))
    write_json(args.json, payload)
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
