"""What a run will cost, before it runs: ``python -m lnedu run NAME --preset P --plan``.

For every variant the plan builds the task (seed 0), runs a few real updates and reports

* the model's parameter count and the examples per update (``task.examples_per_update``);
* the updates in the run (``task.steps``) and the seeds the preset runs;
* the seconds per update **measured here** (the median of the timed updates, after one warm-up update), on the
  array backend in use (NumPy, or CuPy with ``--device gpu``);
* the floating-point operations of one update, ``task.flops_per_update()``: each experiment counts its matrix
  products (a multiply-add is 2 FLOPs; forward + backward is about 3 x the forward), and says what it counts;
* the projected time of the whole run: on this machine, from the measured seconds; on a stated GPU, from the
  FLOPs and a stated sustained rate (:data:`GPU`, an assumption, printed with the figure).

One evaluation per variant is timed too (after a first, untimed one that warms it up) and multiplied by the
evaluations in the schedule (checkpoints are not counted; ``--plan-skip-eval`` leaves evaluations out, for paper
sizes where one takes long). Where the real data set of the ``paper`` preset is not on this machine, the plan
measures on the experiment's ``standin(config)``, generated data of the real set's shapes, and says so: the cost
of an update depends on the shapes, not on the values.

The measured figures on this CPU also give an achieved rate (FLOPs / seconds), printed beside this CPU's rate on a
large matrix product: a count that claimed more than the machine can do would show at once.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from dataclasses import dataclass, field

import numpy as np

from .. import backend
from ..data.download import DataUnavailable

__all__ = ["GPU", "VariantCost", "Plan", "plan", "cpu_matmul_rate"]

# the GPU a projection is stated for: its peak float32 rate (NVIDIA A100 datasheet, 19.5 TFLOP/s without tensor
# cores) and the fraction of it we assume these layer sizes sustain (an assumption, printed with every figure)
GPU = {"name": "NVIDIA A100 (float32, no tensor cores)", "peak_tflops": 19.5, "sustained_fraction": 0.3}


@dataclass
class VariantCost:
    variant: str
    params: int
    examples_per_update: int | None
    updates: int
    seconds_per_update: float  # measured, median of the timed updates
    flops_per_update: float | None
    timed_updates: int
    evaluations: int = 0  # in the run: at step 0, every eval_every updates and after the last
    seconds_per_evaluation: float | None = None  # measured once; None: not measured (--plan-skip-eval)

    @property
    def seconds(self) -> float:
        """One run of this variant: its updates at the measured rate, plus its evaluations when measured."""
        return self.seconds_per_update * self.updates + (self.seconds_per_evaluation or 0.0) * self.evaluations

    @property
    def achieved_gflops(self) -> float | None:
        if not self.flops_per_update or self.seconds_per_update <= 0:
            return None
        return self.flops_per_update / self.seconds_per_update / 1e9


@dataclass
class Plan:
    experiment: str
    preset: str
    seeds: tuple
    device: str
    data: str  # what the measurement ran on: the real data, or the stand-in
    variants: list = field(default_factory=list)  # the measured ones (VariantCost)
    all_variants: tuple = ()  # every variant of the run; more than the measured ones when sampled
    cpu_gflops: float | None = None  # this machine's rate on a large float32 matrix product
    gpu: dict = field(default_factory=lambda: dict(GPU))

    @property
    def runs(self) -> int:
        return len(self.all_variants or self.variants) * len(self.seeds)

    @property
    def _scale(self) -> float:
        """Every run per measured run and seed: ``len(all_variants) / len(variants)`` (1 when all were measured):
        unmeasured variants are projected at the measured ones' mean."""
        return len(self.all_variants or self.variants) / len(self.variants)

    @property
    def measured_seconds(self) -> float:
        """The whole run at the measured rates (every variant x every seed, updates and measured evaluations)."""
        return sum(v.seconds for v in self.variants) * self._scale * len(self.seeds)

    @property
    def total_flops(self) -> float | None:
        if any(v.flops_per_update is None for v in self.variants):
            return None
        return sum(v.flops_per_update * v.updates for v in self.variants) * self._scale * len(self.seeds)

    @property
    def gpu_seconds(self) -> float | None:
        f = self.total_flops
        if f is None:
            return None
        return f / (self.gpu["peak_tflops"] * 1e12 * self.gpu["sustained_fraction"])

    def to_text(self) -> str:
        n = len(self.all_variants or self.variants)
        lines = [f"plan: {self.experiment}, preset {self.preset!r}: {n} variants x "
                 f"{len(self.seeds)} seeds ({', '.join(map(str, self.seeds))}) = {self.runs} runs",
                 f"  measured on {self.device}, {self.data}"]
        if n > len(self.variants):
            lines.append(f"  measured {len(self.variants)} of the {n} variants; the others are projected at their "
                         "mean")
        head = f"  {'variant':<22} {'params':>12} {'ex/update':>9} {'updates':>10} {'s/update':>10} " \
               f"{'GFLOP/update':>13} {'GFLOP/s':>8} {'s/eval':>8} {'per run':>10}"
        lines.append(head)
        for v in self.variants:
            gf = "-" if v.flops_per_update is None else f"{v.flops_per_update / 1e9:.4g}"
            ach = "-" if v.achieved_gflops is None else f"{v.achieved_gflops:.3g}"
            ex = "-" if v.examples_per_update is None else f"{v.examples_per_update:,}"
            ev = "-" if v.seconds_per_evaluation is None else f"{v.seconds_per_evaluation:.3g}"
            lines.append(f"  {v.variant:<22} {v.params:>12,} {ex:>9} {v.updates:>10,} {v.seconds_per_update:>10.4g} "
                         f"{gf:>13} {ach:>8} {ev:>8} {_duration(v.seconds):>10}")
        evals = ("and its evaluations" if all(v.seconds_per_evaluation is not None for v in self.variants)
                 else "training updates only: evaluations not measured")
        lines.append(f"  projected, this machine ({self.device}, measured rates): {_duration(self.measured_seconds)} "
                     f"for every run one after another ({evals})")
        if self.cpu_gflops:
            lines.append(f"  this CPU multiplies float32 matrices at {self.cpu_gflops:.3g} GFLOP/s (2048^3, NumPy), "
                         "the ceiling for the GFLOP/s column")
        g = self.gpu_seconds
        if g is None:
            lines.append("  projected, GPU: not stated (a variant's task does not count its FLOPs)")
        else:
            rate = self.gpu["peak_tflops"] * self.gpu["sustained_fraction"]
            lines.append(f"  projected, {self.gpu['name']}: {_duration(g)} from {self.total_flops:.3g} FLOPs at an "
                         f"assumed {rate:.3g} TFLOP/s sustained ({self.gpu['sustained_fraction']:.0%} of its "
                         f"{self.gpu['peak_tflops']:g} TFLOP/s peak): training updates only; a small model leaves "
                         "a GPU mostly idle, so measure with --device gpu on the machine")
        return "\n".join(lines)

    def to_row(self) -> dict:
        """One line of the README's cost table."""
        g = self.gpu_seconds
        return {"experiment": self.experiment, "preset": self.preset, "runs": self.runs,
                "params": max(v.params for v in self.variants),
                "updates": max(v.updates for v in self.variants),
                "s/update": statistics.median(v.seconds_per_update for v in self.variants),
                "this CPU": _duration(self.measured_seconds),
                "GPU (projected)": "-" if g is None else _duration(g), "measured on": self.data}


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def cpu_matmul_rate(n: int = 2048, repeats: int = 3) -> float:
    """GFLOP/s of a float32 ``n x n`` matrix product on this CPU (the best of ``repeats``)."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best / 1e9


def _measure(task, timed: int) -> list:
    times = []
    for i in range(timed + 1):  # the first update warms up (JIT, BLAS buffers, caches): not counted
        t = time.perf_counter()
        task.step()
        backend.synchronize()
        if i:
            times.append(time.perf_counter() - t)
    return times


def plan(exp, preset: str, *, config=None, variants=None, seeds=None, timed: int = 2,
         evaluate: bool = True, sample: int | None = None) -> Plan:
    """Measure and project the cost of running ``exp`` at ``preset`` (see the module docstring).

    ``config``: the preset's config with overrides (``--data``, ``--set``); ``variants``: a subset (default all);
    ``seeds``: the seeds the run would use (default the experiment's for the preset); ``timed``: updates timed
    per variant after one warm-up; ``evaluate``: also time one evaluation per variant (it runs over the whole
    evaluation set, so at paper sizes it can take a while); ``sample``: measure only this many variants, evenly
    spaced in the list, and project the others at their mean (a large grid at paper size)."""
    from .runner import resolve
    from .verdicts import seeds_for

    if isinstance(timed, bool) or not isinstance(timed, int) or timed < 1:
        raise ValueError(f"timed: expected a positive number of updates, got {timed!r}")
    config, variants = resolve(exp, preset, config, variants)
    every = tuple(variants)
    if sample is not None:
        if isinstance(sample, bool) or not isinstance(sample, int) or sample < 1:
            raise ValueError(f"sample: expected a positive number of variants, got {sample!r}")
        if sample < len(variants):
            variants = [variants[round(i * (len(variants) - 1) / max(1, sample - 1))] for i in range(sample)]
            variants = list(dict.fromkeys(variants))
    seeds = tuple(seeds) if seeds is not None else tuple(seeds_for(exp, preset))
    data = "the preset's own data"
    try:
        exp.build(config, variants[0], 0)
    except DataUnavailable as exc:
        standin = getattr(exp, "standin", None)
        if standin is None:
            raise
        config = standin(config)
        data = f"a generated stand-in of the real data's shapes (the real set is not here: {str(exc).split(';')[0]})"
    device = "GPU (CuPy)" if backend.current() == "cupy" else "CPU (NumPy)"
    out = Plan(exp.NAME, preset, seeds, device, data, all_variants=every)
    for v in variants:
        task = exp.build(config, v, 0)
        times = _measure(task, timed)
        t_eval = None
        if evaluate:
            task.evaluate()  # warms up too: the first evaluation compiles what only evaluation runs (Numba)
            backend.synchronize()
            t = time.perf_counter()
            task.evaluate()
            backend.synchronize()
            t_eval = time.perf_counter() - t
        n_eval = 1 + task.steps // task.eval_every + (task.steps % task.eval_every != 0)
        flops = task.flops_per_update() if hasattr(task, "flops_per_update") else None
        model = getattr(task, "model", None)
        params = model.num_parameters() if hasattr(model, "num_parameters") else 0
        out.variants.append(VariantCost(v, int(params), getattr(task, "examples_per_update", None), int(task.steps),
                                        statistics.median(times), None if flops is None else float(flops), timed,
                                        int(n_eval), t_eval))
    if backend.current() == "numpy":
        out.cpu_gflops = cpu_matmul_rate()
    return out


def with_overrides(config, overrides: dict):
    """``config`` with fields replaced by text values (the CLI's ``--data PATH`` and ``--set FIELD=VALUE``), each
    parsed with the type of the field's current value; an unknown field or a value of the wrong type is refused
    naming the field."""
    fields = {f.name: f for f in dataclasses.fields(config)}
    changes = {}
    for name, text in overrides.items():
        if name not in fields:
            raise ValueError(f"--set: expected a field of {type(config).__name__} ({', '.join(sorted(fields))}), "
                             f"got {name!r}")
        current, declared = getattr(config, name), str(fields[name].type)
        optional = "None" in declared.replace(" ", "").split("|")  # `clip: float | None = None`
        if optional and text.strip().lower() == "none":
            changes[name] = None
            continue
        for kind, example in (("bool", False), ("int", 0), ("float", 0.0)):  # the declared type wins over the
            if kind in declared.replace(" ", "").split("|"):  # value's: `epochs: float = 1` holds an int, and
                current = example if current is None or isinstance(current, bool) else type(example)(current)
                break  # `clip: float | None` a None
        changes[name] = parse_value(name, text, current)
    return dataclasses.replace(config, **changes)


def parse_value(name: str, text: str, current):
    """``text`` read as the type of ``current`` (the field's value in the preset)."""
    try:
        if isinstance(current, bool):
            low = text.strip().lower()
            if low not in ("1", "0", "true", "false", "yes", "no"):
                raise ValueError
            return low in ("1", "true", "yes")
        if isinstance(current, int):
            return int(text.replace("_", ""))
        if isinstance(current, float):
            return float(text)
        if isinstance(current, (tuple, list)):
            items = [t.strip() for t in text.split(",") if t.strip()]
            kind = type(current[0]) if current else str
            return type(current)(parse_value(name, t, kind()) for t in items)
        if isinstance(current, dict):
            raise ValueError
        return text
    except ValueError:
        raise ValueError(f"--set {name}: expected a value like {current!r} ({type(current).__name__}), "
                         f"got {text!r}") from None
