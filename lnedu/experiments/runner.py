"""The experiment runner: presets, seeds, variants, JSON-lines metrics, atomic checkpoints, resume.

An experiment is a module in :mod:`lnedu.experiments` that defines

* ``NAME``, ``TITLE``, ``PAPER`` (where the claim is: paper, section, figure), ``CLAIM`` (in words);
* ``Config``: a dataclass with at least ``steps``, ``eval_every``, ``checkpoint_every``;
* ``PRESETS``: ``{"tiny": Config(...), "small": Config(...), "paper": Config(...)}``: ``tiny`` runs in seconds
  (tests, nbval), ``small`` is the default (all variants x 3 seeds in about two minutes on 2 CPU cores),
  ``paper`` uses the paper's sizes and is meant for a GPU;
* ``VARIANTS``: the names compared (``("baseline", "bn", "ln")``, say);
* ``build(config, variant, seed) -> Task``, where a :class:`Task` trains one model;
* ``verdict(results) -> Verdict``: whether the claim held in this run, and the figure to compare with.

The runner (:func:`run`) trains every ``(variant, seed)`` pair, logs metrics to
``OUT/NAME/VARIANT-seedS/metrics.jsonl``, saves a checkpoint atomically every ``checkpoint_every`` steps and,
with ``resume=True``, continues an interrupted run from its last checkpoint with identical results: the task's
state (model, optimizer, random generators, data position) is all in its ``state_dict``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from ..backend import to_numpy
from ..nn.module import save_npz_atomic
from ..notebooks import atomic_write_text

__all__ = [
    "Task",
    "Verdict",
    "RunResult",
    "run",
    "run_one",
    "resolve",
    "load_task",
    "load_results",
    "rng_state",
    "set_rng_state",
]


class Task(Protocol):
    """One model being trained: a step, an evaluation, and all of its state as arrays.

    A task may also set ``steps``, ``eval_every`` and ``checkpoint_every`` to override the config's.
    """

    def step(self) -> dict:
        """One training update; returns scalar metrics such as ``{"loss": 0.7}``."""

    def evaluate(self) -> dict:
        """Held-out metrics such as ``{"nll": 0.3, "error": 0.05}``."""

    def state_dict(self) -> dict:
        """Every array needed to resume exactly (host arrays; strings as 0-d arrays)."""

    def load_state_dict(self, state: dict) -> None: ...


@dataclass
class Verdict:
    """Whether the paper's claim held in this run, with the numbers behind the answer."""

    held: bool | None  # None: the run cannot decide (too short, say)
    our_figure: str  # e.g. "LN error 3.1% vs BN 6.4% at batch 4 (mean of 3 seeds)"
    note: str = ""  # why a small run may differ


@dataclass
class RunResult:
    """Metrics of one ``(variant, seed)`` run: train and eval records as logged."""

    variant: str
    seed: int
    train: list
    eval: list

    def series(self, key: str, split: str = "eval"):
        """``(steps, values)`` of one metric."""
        recs = [r for r in (self.eval if split == "eval" else self.train) if key in r]
        return np.array([r["step"] for r in recs]), np.array([r[key] for r in recs], dtype=float)


def mean_of(n: int) -> str:
    """'mean of 3 seeds', 'mean of 1 seed': how a verdict says what its numbers average."""
    return f"mean of {n} seed{'s' if n != 1 else ''}"


def rng_state(rng: np.random.Generator) -> np.ndarray:
    """A Generator's state as a 0-d string array (JSON), for checkpoints."""
    return np.array(json.dumps(rng.bit_generator.state))


def set_rng_state(rng: np.random.Generator, state) -> None:
    rng.bit_generator.state = json.loads(str(np.asarray(state)))


def _jsonable(metrics: dict) -> dict:
    out = {}
    for k, v in metrics.items():
        v = to_numpy(v) if hasattr(v, "shape") else v
        out[k] = float(v) if isinstance(v, (float, int, np.floating, np.integer, np.ndarray)) else v
    return out


def _truncate_log(path: Path, last_step: int) -> None:
    """Keep only the records up to ``last_step`` (a resumed run re-logs what came after the checkpoint)."""
    if not path.exists():
        return
    keep = []
    for ln in path.read_text(encoding="utf-8").splitlines():
        try:
            if ln and json.loads(ln)["step"] <= last_step:
                keep.append(ln)
        except json.JSONDecodeError:  # a record cut off by the interruption: it is re-logged anyway
            continue
    atomic_write_text(path, "".join(ln + "\n" for ln in keep))


def run_one(exp, config, variant: str, seed: int, out: Path, *, resume: bool = False, progress: bool = True,
            stop_after: int | None = None) -> RunResult:
    """Train one ``(variant, seed)`` of experiment module ``exp``; returns its :class:`RunResult`.

    ``stop_after`` stops early after that many steps of this call (to test interruption and resume).
    """
    from tqdm.auto import tqdm

    folder = Path(out) / exp.NAME / f"{variant}-seed{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    log, ckpt, done = folder / "metrics.jsonl", folder / "checkpoint.npz", folder / "result.json"
    config_json = json.dumps(dataclasses.asdict(config), sort_keys=True)
    if resume and done.exists():
        saved = json.loads(done.read_text(encoding="utf-8"))
        if saved.get("config") == config_json:
            return RunResult(variant, seed, saved["train"], saved["eval"])

    task = exp.build(config, variant, seed)
    start = 0
    if resume and ckpt.exists():
        with np.load(ckpt) as z:
            state = {k: z[k] for k in z.files}
        if str(state.pop("__config__")) != config_json:
            raise ValueError(f"resume: the checkpoint in {folder} was made with another config; use a fresh --out")
        start = int(state.pop("__step__"))
        task.load_state_dict(state)
        _truncate_log(log, start)
    elif log.exists():
        log.unlink()

    def write(record):
        with open(log, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    # a task may schedule itself (per-variant step counts, e.g. equal epochs at different batch sizes)
    steps = int(getattr(task, "steps", config.steps))
    eval_every = int(getattr(task, "eval_every", config.eval_every))
    checkpoint_every = int(getattr(task, "checkpoint_every", config.checkpoint_every))
    bar = tqdm(total=steps, initial=start, desc=f"{exp.NAME} {variant} s{seed}", disable=not progress, leave=False)
    if start == 0:
        write({"step": 0, "split": "eval", **_jsonable(task.evaluate())})
    for step in range(start + 1, steps + 1):
        write({"step": step, "split": "train", **_jsonable(task.step())})
        if step % eval_every == 0 or step == steps:
            write({"step": step, "split": "eval", **_jsonable(task.evaluate())})
        if step % checkpoint_every == 0 or step == steps:
            state = dict(task.state_dict())
            state["__step__"] = np.array(step)
            state["__config__"] = np.array(config_json)
            save_npz_atomic(ckpt, state)
        bar.update(1)
        if stop_after is not None and step - start >= stop_after and step < steps:
            bar.close()
            raise KeyboardInterrupt(f"stopped after step {step} (stop_after={stop_after})")
    bar.close()
    records = [json.loads(ln) for ln in log.read_text(encoding="utf-8").splitlines() if ln]
    result = RunResult(variant, seed, [r for r in records if r["split"] == "train"],
                       [r for r in records if r["split"] == "eval"])
    atomic_write_text(done, json.dumps({"config": config_json, "train": result.train, "eval": result.eval}))
    return result


def resolve(exp, preset: str, config=None, variants=None):
    """``(config, variants)`` of a run request, checked: the preset's config unless one is given, and the
    named variants (default: all)."""
    if config is None:
        if preset not in exp.PRESETS:
            raise ValueError(f"preset: expected one of {sorted(exp.PRESETS)}, got {preset!r}")
        config = exp.PRESETS[preset]
    variants = list(exp.VARIANTS if variants is None else variants)
    for v in variants:
        if v not in exp.VARIANTS:
            raise ValueError(f"variants: expected names from {list(exp.VARIANTS)}, got {v!r}")
    return config, variants


def load_task(exp, out, config, variant: str, seed: int):
    """The task of a run that :func:`run` saved under ``out``, restored from its last checkpoint (for a
    finished run: the trained model), to generate from or look inside."""
    path = Path(out) / exp.NAME / f"{variant}-seed{seed}" / "checkpoint.npz"
    if not path.exists():
        raise FileNotFoundError(f"out: expected a checkpoint at {path}; run the experiment there first")
    with np.load(path) as z:
        state = {k: z[k] for k in z.files}
    if str(state.pop("__config__")) != json.dumps(dataclasses.asdict(config), sort_keys=True):
        raise ValueError(f"config: the checkpoint in {path.parent} was made with another config")
    state.pop("__step__")
    task = exp.build(config, variant, seed)
    task.load_state_dict(state)
    return task


def run(exp, preset: str = "small", *, seeds=(0, 1, 2), variants=None, out="runs", resume: bool = False,
        progress: bool = True, config=None) -> dict:
    """Run every variant x seed of experiment module ``exp``; returns ``{variant: [RunResult, ...]}``.

    Writes ``OUT/NAME/summary.json`` (the verdict and the config) atomically when all runs are done.
    """
    config, variants = resolve(exp, preset, config, variants)
    results = {v: [run_one(exp, config, v, int(s), Path(out), resume=resume, progress=progress) for s in seeds]
               for v in variants}
    verdict = exp.verdict(results)
    summary = {
        "name": exp.NAME,
        "title": exp.TITLE,
        "paper": exp.PAPER,
        "claim": exp.CLAIM,
        "preset": preset,
        "seeds": [int(s) for s in seeds],
        "variants": variants,
        "held": verdict.held,
        "our_figure": verdict.our_figure,
        "note": verdict.note,
        "config": dataclasses.asdict(config),
    }
    atomic_write_text(Path(out) / exp.NAME / "summary.json", json.dumps(summary, indent=2))
    return results


def load_results(out, name: str) -> dict:
    """The finished runs of one experiment under ``out``: ``{variant: [RunResult, ...]}``."""
    folder = Path(out) / name
    results: dict = {}
    for done in sorted(folder.glob("*-seed*/result.json")):
        variant, seed = done.parent.name.rsplit("-seed", 1)
        saved = json.loads(done.read_text(encoding="utf-8"))
        results.setdefault(variant, []).append(RunResult(variant, int(seed), saved["train"], saved["eval"]))
    return results
