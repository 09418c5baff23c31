"""Layer norm forward + backward on the CPU: lnedu against textbook NumPy and PyTorch, as time ratios.

The contenders compute the same thing, ``y = g * (x - mu) / sigma + b`` over the last axis and the
gradients of ``x``, ``g`` and ``b`` for a given ``dy``, on the same float32 data:

* ``lnedu``: :func:`lnedu.functional.layer_norm` and :func:`~lnedu.functional.layer_norm_backward` as they
  run by default: the reference body at teaching sizes, then the registered fast paths: the Numba kernels
  (``lnedu/functional/_numba.py``, the ``[fast]`` extra) from ``_numba.MIN_SIZE`` elements on where Numba
  is installed, else the cache-blocked NumPy code (``lnedu/functional/_blocked.py``) from
  ``_blocked.MIN_SIZE`` on;
* ``lnedu-ref``: the same functions under ``lnedu.functional.use_reference()``: the reference body (what a
  student reads) at every size, so that ``lnedu/lnedu-ref`` is what the fast paths buy;
* ``blocked`` and ``fast``: the cache-blocked NumPy code and the Numba kernels called directly, at every
  size (``fast`` only where Numba is installed); ``fast-fresh``: the Numba kernels writing into new memory
  each call, as ``np.empty`` gives it, instead of the large buffers ``lnedu/functional/_buffers.py`` reuses
  once no one holds them (``fast/fast-fresh`` is what the reuse buys: fresh pages cost a fault and a
  zero-fill each);
* ``naive``: the code a student writes first (``x.mean``, ``x.var``, the compact backward with
  ``.mean`` and temporaries), defined below;
* ``torch``: ``torch.nn.functional.layer_norm`` and ``.backward()`` through autograd, as a student uses
  it, and ``torch-direct``: the two ATen kernels (``native_layer_norm`` and its backward) called without
  autograd; both at PyTorch's default thread count, when PyTorch is installed
  (``pip install -e ".[bench]"``); otherwise the columns are skipped with a note;
* ``torch-1t`` (only with ``--torch-single-thread``): autograd on one thread, as NumPy's elementwise
  operations run. On a small machine shared with other work the default thread pool suffers most from
  the load (a descheduled thread stalls the whole pool), so this column tells kernel speed from load;
* ``copy``: the bandwidth floor. Forward + backward must at least read ``x`` and write ``y``, read ``dy``
  and write ``dx``: that is two copies of the array, timed here with ``np.copyto`` on the machine itself.
  Each contender's *fraction of copy bandwidth* is ``copy time / its time`` (1.0 would be as fast as
  moving the unavoidable bytes once; the caches kept by lnedu and PyTorch make the true minimum higher).

Before timing, every result is compared with the naive one, so a fast wrong answer cannot win.
The contenders run interleaved round-robin (see ``_timing.py``) and the table reports median
and best milliseconds per forward + backward, ratios (below 1: the first is faster), and the fractions
of copy bandwidth (median and best).

    python benchmarks/bench_norms.py                         # the three default shapes
    python benchmarks/bench_norms.py --quick --shapes 64x256 # a smoke run, a few seconds
    python benchmarks/bench_norms.py --json results.json     # also write the numbers (atomically)
    python benchmarks/bench_norms.py --cold --shapes 64x256  # the Numba kernels' compile and cache-load time

Timings on a busy machine vary from run to run, PyTorch's multithreaded ones most: the load average is
printed before and after, and the per-round ratio ranges show how steady a ratio was.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # _timing, when run from anywhere
sys.path.insert(1, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))  # lnedu, uninstalled

from _timing import (  # noqa: E402
    compare,
    environment,
    format_environment,
    format_table,
    parse_shape,
    write_json,
)

import lnedu.functional as F  # noqa: E402
from lnedu.functional import _blocked, _buffers, _numba  # noqa: E402

try:
    import torch
except ImportError:  # the [bench] extra is not installed: run without the torch column
    torch = None

DEFAULT_SHAPES = ((64, 256), (4096, 1024), (32768, 512))
EPS = 1e-5


# --------------------------------------------------------------------------------------------------
# the textbook version


def naive_layer_norm(x, gain, bias, eps=EPS):
    """Layer norm as first written: NumPy's mean and var, then normalize, scale and shift."""
    mu = x.mean(axis=-1, keepdims=True)
    var = x.var(axis=-1, keepdims=True)
    rstd = 1.0 / np.sqrt(var + eps)
    xhat = (x - mu) * rstd
    return xhat * gain + bias, (xhat, rstd, gain)


def naive_layer_norm_backward(dy, cache):
    """The compact formula ``dx = (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)) / sigma``."""
    xhat, rstd, gain = cache
    dbias = dy.sum(axis=0)
    dgain = (dy * xhat).sum(axis=0)
    dxhat = dy * gain
    dx = rstd * (dxhat - dxhat.mean(axis=-1, keepdims=True) - xhat * (dxhat * xhat).mean(axis=-1, keepdims=True))
    return dx, dgain, dbias


# --------------------------------------------------------------------------------------------------
# the contenders: each a function of no arguments doing one forward + backward, and its results


def make_contenders(x, gain, bias, dy, *, with_torch=True, torch_single_thread=False):
    """``({name: step}, {name: results})``: each ``step()`` runs one forward + backward, and each
    ``results()`` runs one and returns ``(y, dx, dgain, dbias)`` as NumPy arrays."""

    def lnedu_results():
        y, cache = F.layer_norm(x, gain, bias, EPS)
        return (y, *F.layer_norm_backward(dy, cache))

    def reference_results():
        with F.use_reference():
            return lnedu_results()

    def naive_results():
        y, cache = naive_layer_norm(x, gain, bias, EPS)
        return (y, *naive_layer_norm_backward(dy, cache))

    def blocked_results():
        y, cache = _blocked.layer_norm(x, gain, bias, EPS)
        return (y, *_blocked.layer_norm_backward(dy, cache))

    y_copy, dx_copy = np.empty_like(x), np.empty_like(dy)

    def copy_floor():  # the bytes forward + backward cannot avoid: x -> y, dy -> dx
        np.copyto(y_copy, x)
        np.copyto(dx_copy, dy)

    steps = {"lnedu": lnedu_results, "lnedu-ref": reference_results, "naive": naive_results,
             "blocked": blocked_results}
    if _numba.available():
        def fast_results():
            y, cache = _numba.layer_norm(x, gain, bias, EPS)
            return (y, *_numba.layer_norm_backward(dy, cache))

        def fast_fresh_results():
            with _buffers.fresh():
                return fast_results()

        steps["fast"] = fast_results
        steps["fast-fresh"] = fast_fresh_results
    results = dict(steps)
    steps["copy"] = copy_floor

    if with_torch and torch is not None:
        xt = torch.from_numpy(x).requires_grad_()  # shares memory with x: the same data, no copy
        gt = torch.from_numpy(gain).requires_grad_()
        bt = torch.from_numpy(bias).requires_grad_()
        dyt = torch.from_numpy(dy)
        shape = (x.shape[-1],)

        def torch_step():
            xt.grad = gt.grad = bt.grad = None  # fresh gradients, as lnedu's: no accumulation pass
            y = torch.nn.functional.layer_norm(xt, shape, gt, bt, EPS)
            y.backward(dyt)
            return y

        def torch_results():
            y = torch_step()
            return tuple(t.detach().numpy() for t in (y, xt.grad, gt.grad, bt.grad))

        steps["torch"] = torch_step
        results["torch"] = torch_results
        xd, gd, bd = (torch.from_numpy(a) for a in (x, gain, bias))
        mask = [True, True, True]

        def torch_direct_results():  # the ATen kernels autograd calls, without autograd's bookkeeping
            y, mean, rstd = torch.ops.aten.native_layer_norm(xd, shape, gd, bd, EPS)
            dx, dg, db = torch.ops.aten.native_layer_norm_backward(dyt, xd, shape, mean, rstd, gd, bd, mask)
            return y, dx, dg, db

        steps["torch-direct"] = torch_direct_results
        results["torch-direct"] = lambda: tuple(t.numpy() for t in torch_direct_results())
        if torch_single_thread:
            threads = torch.get_num_threads()

            def torch_1t_step():  # switching the pool's size costs a few microseconds per call
                torch.set_num_threads(1)
                try:
                    return torch_step()
                finally:
                    torch.set_num_threads(threads)

            steps["torch-1t"] = torch_1t_step
    return steps, results


def max_rel_diff(a, b) -> float:
    """``max|a - b| / max|b|``: the difference relative to the reference's scale."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


def check_agreement(results, tol: float) -> dict:
    """Compare every contender's ``(y, dx, dgain, dbias)`` with the naive one's; raise if any differs
    by more than ``tol`` (relative to the largest entry). Returns ``{name: worst difference}``."""
    ref = results["naive"]()
    worst = {}
    for name, fn in results.items():
        if name == "naive":
            continue
        got = fn()
        diffs = [max_rel_diff(g, r) for g, r in zip(got, ref)]
        worst[name] = max(diffs)
        if worst[name] > tol:
            labels = ("y", "dx", "dgain", "dbias")
            detail = ", ".join(f"{k} {d:.1e}" for k, d in zip(labels, diffs))
            raise AssertionError(f"{name} disagrees with naive beyond {tol:g}: {detail}")
    return worst


# --------------------------------------------------------------------------------------------------
# the run


_COLD = """
import sys, time
t0 = time.perf_counter()
import numpy as np
import lnedu.functional as F
t1 = time.perf_counter()
assert "numba" not in sys.modules
x = np.random.default_rng(0).normal(size=(64, 256)).astype(np.float32)
g = np.ones(256, np.float32)
y, cache = F.layer_norm(x, g, g)
F.layer_norm_backward(x, cache)
t2 = time.perf_counter()
print(f"{t1 - t0:.3f} {t2 - t1:.3f}")
"""


def cold_start() -> dict:
    """Seconds to import lnedu.functional and for its first layer norm forward + backward through the Numba
    kernels, in fresh interpreters: once with an empty Numba cache (the kernels compile), once more with the
    cache that run left (they load). The cache sits in a temporary folder (``NUMBA_CACHE_DIR``)."""
    import subprocess
    import tempfile

    out = {}
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        for label in ("compile", "cached"):
            proc = subprocess.run([sys.executable, "-c", _COLD], env=env, capture_output=True, text=True,
                                  timeout=600, cwd=os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))
            if proc.returncode != 0:
                raise RuntimeError(f"cold start ({label}) failed: {proc.stderr[-2000:]}")
            imported, first = (float(v) for v in proc.stdout.split())
            out[label] = {"import_s": imported, "first_call_s": first}
    return out


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--shapes",
        type=lambda s: [parse_shape(t) for t in s.split(",")],
        default=list(DEFAULT_SHAPES),
        help="comma-separated shapes, last axis normalized (default: 64x256,4096x1024,32768x512)",
    )
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32", help="default: float32")
    p.add_argument("--rounds", type=int, default=None, help="timed rounds per contender (default 15, --quick 3)")
    p.add_argument("--quick", action="store_true", help="a smoke run: 3 short rounds, 1 warm-up call")
    p.add_argument("--no-torch", action="store_true", help="leave PyTorch out even when it is installed")
    p.add_argument("--torch-single-thread", action="store_true", help="add PyTorch on one thread (torch-1t)")
    p.add_argument(
        "--settle",
        type=float,
        default=None,
        help="seconds of sleep before each sample, for the thread pools to go idle (default 0.25, --quick 0)",
    )
    p.add_argument("--cold", action="store_true",
                   help="first measure the fast path's cold start (compile, then cached) in fresh interpreters")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH (atomically)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    rounds = args.rounds or (3 if args.quick else 15)
    warmup, min_time = (1, 0.002) if args.quick else (3, 0.05)
    settle = args.settle if args.settle is not None else (0.0 if args.quick else 0.25)
    dtype = np.dtype(args.dtype)
    with_torch = torch is not None and not args.no_torch

    env = environment()  # after the imports, so that torch's thread pools are listed too
    print(format_environment(env))
    if with_torch:
        env["torch"] = {"version": torch.__version__, "num_threads": torch.get_num_threads()}
        print(f"torch {torch.__version__}, {torch.get_num_threads()} intra-op thread(s) (its default)")
    elif torch is None:
        print("torch: not installed, so the torch columns are skipped (pip install -e '.[bench]' adds them)")
    else:
        print("torch: left out (--no-torch)")
    if _numba.available():
        import numba

        env["numba"] = {"version": numba.__version__, "num_threads": numba.get_num_threads(),
                        "min_size": _numba.MIN_SIZE}
        print(f"numba {numba.__version__}, {numba.get_num_threads()} thread(s); lnedu takes it from "
              f"{_numba.MIN_SIZE} elements")
    else:
        print("numba: not installed, so the fast column is skipped (pip install -e '.[fast]' adds it)")
    print(
        f"layer norm forward + backward, {dtype}, eps={EPS:g}; {rounds} interleaved rounds "
        f"({settle:g} s settle before each sample); ms per call\n"
    )

    if args.cold:
        if not _numba.available():
            print("cold start: skipped (numba not installed)")
        else:
            env["cold_start"] = cold = cold_start()
            for label, c in cold.items():
                print(f"cold start, numba {label}: import lnedu.functional {c['import_s']:.2f} s, first float32 "
                      f"forward + backward at (64, 256) {c['first_call_s']:.2f} s")
        print()
    rng = np.random.default_rng(args.seed)
    records = []
    for shape in args.shapes:
        H = shape[-1]
        x = rng.normal(0.5, 2.0, size=shape).astype(dtype)
        gain = rng.normal(1.0, 0.1, size=H).astype(dtype)
        bias = rng.normal(0.0, 0.1, size=H).astype(dtype)
        dy = rng.normal(size=shape).astype(dtype)

        steps, results = make_contenders(
            x, gain, bias, dy, with_torch=with_torch, torch_single_thread=args.torch_single_thread
        )
        agree = check_agreement(results, tol=1e-3 if dtype == np.float32 else 1e-10)
        timings = compare(steps, rounds=rounds, warmup=warmup, min_time=min_time, settle=settle)

        title = (
            f"shape {shape} {dtype}  (max rel. difference to naive: "
            + ", ".join(f"{k} {v:.1e}" for k, v in agree.items())
            + ")"
        )
        pairs = [("lnedu", "torch"), ("lnedu", "torch-direct"), ("lnedu", "naive"), ("lnedu", "lnedu-ref"),
                 ("lnedu-ref", "naive"), ("blocked", "naive"), ("fast", "torch"), ("fast", "fast-fresh"),
                 ("fast", "naive"), ("lnedu", "torch-1t")]
        print(format_table(title, timings, ratios=pairs))
        copy = timings["copy"]
        nbytes = 4 * x.nbytes  # read x and dy, write y and dx
        fractions = {k: {"median": copy.median / t.median, "best": copy.best / t.best}
                     for k, t in timings.items() if k != "copy"}
        print(f"  copy rate {nbytes / copy.best / 1e9:.1f} GB/s (best; median {nbytes / copy.median / 1e9:.1f}), "
              "fraction of it (median, best): "
              + ", ".join(f"{k} {f['median']:.0%} {f['best']:.0%}" for k, f in fractions.items()))
        if not with_torch:
            print(f"  lnedu/torch     skipped ({'torch not installed' if torch is None else '--no-torch'})")
        print()
        records.append(
            {
                "shape": list(shape),
                "dtype": str(dtype),
                "timings": {k: t.as_dict() for k, t in timings.items()},
                "ratios": {f"{a}/{b}": timings[a].median / timings[b].median for a, b in pairs
                           if a in timings and b in timings},
                "max_rel_diff_to_naive": agree,
                "copy_rate_gb_s": {"best": nbytes / copy.best / 1e9, "median": nbytes / copy.median / 1e9},
                "fraction_of_copy_bandwidth": fractions,
            }
        )

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"load average at the end: {load:.2f}")
    if args.json:
        config = {
            "rounds": rounds,
            "warmup": warmup,
            "min_time_s": min_time,
            "settle_s": settle,
            "seed": args.seed,
            "eps": EPS,
            "load_average_at_end": load,
        }
        write_json(
            args.json, {"benchmark": "layer_norm fwd+bwd", "environment": env, "config": config, "results": records}
        )
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
