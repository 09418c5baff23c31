"""Timing helpers shared by the benchmark scripts: interleaved repeated runs, and a ratio table.

Machines are noisy, and shared ones more so, so a benchmark here never reports a bare time as a claim.
It times every contender in the *same* run, interleaved round-robin (round ``r`` runs A, B, C, then
B, C, A, ...), so that a burst of load from elsewhere lands on all of them alike, and it reports the
ratio of their medians. The per-round ratios give an honest spread: the contenders of one round ran
within milliseconds of each other, so their ratio is steadier than either time.

    timings = compare({"lnedu": f, "naive": g}, rounds=15)
    print(format_table("(4096, 1024) float32", timings, ratios=[("lnedu", "naive")]))

Thread pools need a moment to go quiet. After a call, OpenBLAS (NumPy's BLAS) keeps its worker threads
spinning for up to ~0.1 s, and OpenMP (PyTorch's pool) does much the same; on a machine with few cores a
spinning pool left over from one contender steals a core from the next one (measured on a 2-core machine:
PyTorch's layer norm ran 5-10x slower right after a NumPy matrix-vector product). ``settle`` sleeps that
long before every sample, so that each contender starts on an idle machine.

GPU benchmarks pass ``sync`` (``cupy.cuda.Device().synchronize`` or ``torch.cuda.synchronize``): it runs
before each clock read, so a sample times finished work rather than queued launches.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "Timing",
    "calibrate",
    "compare",
    "paired_ratios",
    "format_table",
    "environment",
    "format_environment",
    "write_json",
    "parse_shape",
]


@dataclass
class Timing:
    """Seconds per call of one contender: one sample per round, each the mean over ``number`` calls."""

    name: str
    samples: list
    number: int

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def best(self) -> float:
        return min(self.samples)

    def as_dict(self) -> dict:
        return {
            "median_ms": self.median * 1e3,
            "best_ms": self.best * 1e3,
            "samples_ms": [s * 1e3 for s in self.samples],
            "calls_per_sample": self.number,
        }


def _noop():
    pass


def _sample(fn: Callable[[], object], number: int, sync: Callable[[], object]) -> float:
    """Seconds per call over ``number`` back-to-back calls."""
    sync()
    t0 = time.perf_counter()
    for _ in range(number):
        fn()
    sync()
    return (time.perf_counter() - t0) / number


def calibrate(fn: Callable[[], object], *, min_time: float = 0.02, sync: Callable[[], object] | None = None) -> int:
    """How many back-to-back calls of ``fn`` make one sample last at least ``min_time`` seconds.

    Short calls are batched so that the clock's resolution and the loop's overhead stay negligible;
    a call that is already long enough is timed alone.
    """
    sync = sync or _noop
    number = 1
    while True:
        t = _sample(fn, number, sync) * number
        if t >= min_time:
            return number
        # aim a little past min_time, at most x10 per step so one slow outlier does not overshoot
        number = max(number + 1, min(10 * number, int(number * 1.2 * min_time / max(t, 1e-9))))


def compare(
    contenders: Mapping[str, Callable[[], object]],
    *,
    rounds: int = 15,
    warmup: int = 2,
    min_time: float = 0.02,
    settle: float = 0.0,
    sync: Callable[[], object] | None = None,
) -> dict[str, Timing]:
    """Time each contender ``rounds`` times, round-robin, after ``warmup`` untimed calls each.

    Each round runs the contenders in a new order (a permutation drawn from a generator seeded with the
    round's number, so a rerun repeats it), so none always runs right after the same neighbour, whose cache,
    allocator state or still-spinning thread pool it could inherit (rotating the start alone would keep
    the neighbours: PyTorch's threads always ran just before lnedu). Each sample is ``number`` back-to-back
    calls lasting at least ``min_time`` seconds, preceded by ``settle`` seconds of sleep (see the module
    docstring). Returns ``{name: Timing}``.
    """
    if rounds < 1:
        raise ValueError(f"rounds: expected >= 1, got {rounds}")
    sync = sync or _noop
    names = list(contenders)
    for name in names:
        for _ in range(warmup):
            contenders[name]()
    sync()
    numbers = {name: calibrate(contenders[name], min_time=min_time, sync=sync) for name in names}
    samples: dict[str, list] = {name: [] for name in names}
    for r in range(rounds):
        for name in random.Random(r).sample(names, len(names)):
            if settle > 0:
                time.sleep(settle)
            samples[name].append(_sample(contenders[name], numbers[name], sync))
    return {name: Timing(name, samples[name], numbers[name]) for name in names}


def paired_ratios(a: Timing, b: Timing) -> list:
    """Per-round ratios ``a/b``: the two samples of a round ran back to back, under the same load."""
    return [x / y for x, y in zip(a.samples, b.samples)]


def _quartiles(values: Sequence[float]) -> tuple:
    if len(values) < 2:
        return values[0], values[0]
    q = statistics.quantiles(values, n=4)
    return q[0], q[2]


def format_table(title: str, timings: Mapping[str, Timing], ratios: Sequence[tuple] = ()) -> str:
    """A plain-text table: median and best ms per call of each contender, then the requested ratios.

    ``ratios`` lists ``(numerator, denominator)`` names; a pair naming an absent contender is skipped.
    Each ratio line gives the ratio of medians and, in brackets, the interquartile range of the
    per-round ratios (a ratio below 1 means the numerator is faster), then the ratio of the best samples
    (on a loaded machine the least disturbed round of each, the closer figure to the kernels' speed).
    """
    lines = [title]
    width = max([len(n) for n in timings] + [9])
    lines.append(f"  {'contender':<{width}}  {'median ms':>10}  {'best ms':>10}  {'calls x rounds':>14}")
    for name, t in timings.items():
        runs = f"{t.number} x {len(t.samples)}"
        lines.append(f"  {name:<{width}}  {t.median * 1e3:10.3f}  {t.best * 1e3:10.3f}  {runs:>14}")
    for num, den in ratios:
        if num not in timings or den not in timings:
            continue
        a, b = timings[num], timings[den]
        lo, hi = _quartiles(paired_ratios(a, b))
        label = f"{num}/{den}"
        lines.append(f"  {label:<{width + 12}} {a.median / b.median:6.2f}x   (per-round IQR {lo:.2f}-{hi:.2f})"
                     f"  best/best {a.best / b.best:.2f}x")
    return "\n".join(lines)


def environment() -> dict:
    """What the timings depend on: Python, NumPy, the BLAS and thread pools loaded so far, core count.

    Call it after importing every library that is benchmarked, so that their thread pools are listed.
    ``threadpoolctl`` (a scikit-learn dependency) names the BLAS and its threads; without it, NumPy's
    own build configuration stands in.
    """
    import numpy as np  # noqa: PLC0415  (the helper itself needs no numpy)

    env = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "numpy": np.__version__,
        "env": {
            k: os.environ[k]
            for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_CORETYPE")
            if k in os.environ
        },
    }
    try:
        from threadpoolctl import threadpool_info  # noqa: PLC0415

        env["threadpools"] = [
            {k: p.get(k) for k in ("user_api", "internal_api", "version", "num_threads", "architecture", "prefix")}
            for p in threadpool_info()
        ]
    except ImportError:
        try:
            blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]  # numpy >= 1.26
        except Exception:
            blas = {}
        env["threadpools"] = [{"user_api": "blas", "internal_api": blas.get("name"), "version": blas.get("version")}]
    return env


def format_environment(env: Mapping) -> str:
    """The environment as a few readable lines."""
    lines = [
        f"python {env['python']} on {env['platform']} ({env['processor']}), {env['cpu_count']} CPU(s)"
        + (f", load average {env['load_average'][0]:.2f}" if env.get("load_average") else ""),
        f"numpy {env['numpy']}",
    ]
    for p in env.get("threadpools", []):
        extra = f", arch {p['architecture']}" if p.get("architecture") else ""
        threads = p.get("num_threads", "?")
        lines.append(f"  {p.get('user_api')}: {p.get('internal_api')} {p.get('version')}, {threads} thread(s){extra}")
    if env.get("env"):
        lines.append("  " + " ".join(f"{k}={v}" for k, v in env["env"].items()))
    return "\n".join(lines)


def write_json(path: str, payload) -> None:
    """Write ``payload`` as JSON to ``path`` atomically: a temporary file beside it, then ``os.replace``.

    A reader never sees a half-written file, and an interrupted run leaves the previous one intact.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=folder)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(payload, f, indent=1)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


if __name__ == "__main__":  # pragma: no cover - a quick look at this machine
    print(format_environment(environment()))
    sys.exit(0)


def parse_shape(text: str) -> tuple:
    """``"4096x1024"`` -> ``(4096, 1024)``, for a ``--shapes`` option; an ``argparse`` error otherwise."""
    try:
        shape = tuple(int(d) for d in text.lower().split("x"))
    except ValueError:
        shape = ()
    if len(shape) < 2 or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"expected a shape like 4096x1024 (rows x features), got {text!r}")
    return shape
