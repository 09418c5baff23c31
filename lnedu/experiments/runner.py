"""The experiment runner: presets, seeds, variants, JSON-lines metrics, atomic checkpoints, resume.

An experiment is a module in :mod:`lnedu.experiments` that defines

* ``NAME``, ``TITLE``, ``PAPER`` (where the claim is: paper, section, figure), ``CLAIM`` (in words);
* ``Config``: a dataclass of the run's settings (sizes, learning rate, schedule);
* ``PRESETS``: ``{"tiny": ..., "small": ..., "medium": ..., "paper": ...}``: ``tiny`` runs in seconds (tests,
  nbval), ``small`` is the default (all variants x its seeds in a few minutes on 2 CPU cores), ``medium`` in
  about half an hour, ``paper`` uses the paper's sizes and data and is meant for a GPU;
* ``VARIANTS``: the names compared (``("baseline", "bn", "ln")``, say);
* ``build(config, variant, seed) -> Task``, where a :class:`Task` trains one model and carries its schedule
  (``steps``, ``eval_every``, ``checkpoint_every``);
* ``verdict(results) -> Verdict``: whether the claim held in this run, and the figure to compare with.

The runner (:func:`run`) trains every ``(variant, seed)`` pair, logs metrics to
``OUT/NAME/VARIANT-seedS/metrics.jsonl``, saves a checkpoint (:func:`lnedu.checkpoint.save_state`) atomically
every ``checkpoint_every`` steps and, with ``resume=True``, continues an interrupted run from its last
checkpoint with identical results: the task's state (model, optimizer, random generators, data position) is
all in its ``state_dict``.

What can go wrong is refused in one line naming the file, never silently patched over: a second process
writing into the same run folder (a ``lock`` file holds the owner's pid and host; a dead owner's lock is taken
over), a damaged checkpoint, log or result, a log that ends before the checkpoint's step (a hole in the
history), a non-finite training metric (the run stops, naming experiment, variant, seed and step). With
``restart_damaged=True`` (``--restart-damaged``) a run whose files are damaged starts over instead.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from .. import backend
from .._io import DamagedFile, atomic_write_text, folder_lock, read_json, read_jsonl
from ..backend import to_numpy
from ..checkpoint import DamagedCheckpoint, load_state, save_state
from .diagnostics import grad_norm

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
    "check_seeds",
    "Diverged",
    "TIMING",
    "strip_timing",
]

# every record also carries the training time so far, in seconds, cumulative over the run (resumes included),
# evaluations excluded: wall clock (after a device sync on a GPU) and this process's CPU time
TIMING = ("wall_seconds", "process_seconds")


class Task(Protocol):
    """One model being trained: its schedule, a step, an evaluation, and all of its state as arrays.

    ``steps`` updates in all, an evaluation every ``eval_every`` and a checkpoint every ``checkpoint_every``
    (both also after the last step); a task computes them from its config (equal epochs at different batch
    sizes, say).
    """

    steps: int
    eval_every: int
    checkpoint_every: int

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

    def untimed(self) -> RunResult:
        """The same records without their :data:`TIMING` fields: what two runs of the same training share (a
        resumed run and an uninterrupted one compare equal this way, never with the clocks)."""
        return RunResult(self.variant, self.seed, strip_timing(self.train), strip_timing(self.eval))

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


def strip_timing(records: list) -> list:
    """The records without their :data:`TIMING` fields, which differ between two runs of the same training (to
    compare a resumed run with an uninterrupted one)."""
    return [{k: v for k, v in r.items() if k not in TIMING} for r in records]


class Diverged(RuntimeError):
    """Training produced a non-finite metric (NaN or infinite loss): the run stops instead of training on."""


def check_seeds(seeds) -> list:
    """``seeds`` as a list of distinct non-negative integers, or a ``ValueError`` naming what is wrong."""
    try:
        seeds = list(seeds)
    except TypeError:
        raise TypeError(f"seeds: expected a sequence of integers, got {type(seeds).__name__}") from None
    if not seeds:
        raise ValueError("seeds: expected at least one seed, got none")
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0:
            raise ValueError(f"seeds: expected non-negative integers, got {s!r}")
    repeated = sorted({int(s) for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise ValueError(f"seeds: expected distinct seeds (a repeated seed trains the same run twice), got "
                         f"{', '.join(map(str, repeated))} more than once")
    return [int(s) for s in seeds]


def _jsonable(metrics: dict) -> dict:
    out = {}
    for k, v in metrics.items():
        v = to_numpy(v) if hasattr(v, "shape") else v
        out[k] = float(v) if isinstance(v, (float, int, np.floating, np.integer, np.ndarray)) else v
    return out


def _read_log(path: Path, *, allow_cut_last: bool = True) -> list:
    """The records of a run's ``metrics.jsonl``, each checked to have an integer ``step`` and a ``split``."""
    records = read_jsonl(path, allow_cut_last=allow_cut_last)
    for i, rec in enumerate(records, start=1):  # read_jsonl drops at most the last line: record i is line i
        if isinstance(rec.get("step"), bool) or not isinstance(rec.get("step"), int) or rec["step"] < 0:
            raise DamagedFile(path, f"line {i}: expected a non-negative integer 'step', got {rec.get('step')!r}")
        if rec.get("split") not in ("train", "eval"):
            raise DamagedFile(path, f"line {i}: expected 'split' to be 'train' or 'eval', got {rec.get('split')!r}")
    return records


def _log_text(records: list) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def _truncate_log(path: Path, last_step: int) -> list:
    """Keep only the records up to ``last_step`` (a resumed run re-logs what came after the checkpoint) and
    return them. A last record cut off mid-write is dropped; any other unreadable line is a
    :class:`~lnedu._io.DamagedFile` naming the file and the line."""
    keep = [r for r in _read_log(path) if r["step"] <= last_step]
    atomic_write_text(path, _log_text(keep))
    return keep


def _check_history(path: Path, records: list, step: int) -> None:
    """The log of a run resumed at ``step`` must hold every step before it once, in order: else resuming would
    leave a hole (or a repeat) in the history, which no plot would show."""
    train = [r["step"] for r in records if r.get("split") == "train"]
    if train == list(range(1, step + 1)) and any(r.get("split") == "eval" and r["step"] == 0 for r in records):
        return
    if train == list(range(1, len(train) + 1)):
        got = f"ends at step {train[-1] if train else 0}"
    else:
        got = "repeats or reorders steps (did two runs write into it?)"
    raise DamagedFile(path, f"expected the metrics of steps 0 to {step} (the checkpoint's step), but it {got}; "
                            "resuming would leave a hole in the history")


def _advice(exc: DamagedFile, folder: Path) -> DamagedFile:
    """The same error, with the clean way out: start that run over."""
    return type(exc)(exc.path, f"{exc.problem}; to start that run over, pass --restart-damaged "
                               f"(restart_damaged=True) or delete {folder}")


def _read_result(path: Path) -> dict:
    saved = read_json(path, "run result (JSON)")
    if not (isinstance(saved, dict) and isinstance(saved.get("train"), list) and isinstance(saved.get("eval"), list)
            and isinstance(saved.get("config"), str)):
        raise DamagedFile(path, "expected a run result with 'config', 'train' and 'eval', got other JSON")
    return saved


def _schedule(exp, task) -> tuple:
    """``(steps, eval_every, checkpoint_every)``: the schedule a task carries (see :class:`Task`)."""
    out = []
    for name in ("steps", "eval_every", "checkpoint_every"):
        v = getattr(task, name, None)
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name}: expected {exp.NAME}'s task ({type(task).__name__}) to set a positive "
                             f"integer, got {v!r}")
        out.append(int(v))
    return tuple(out)


def run_one(exp, config, variant: str, seed: int, out: Path, *, resume: bool = False, progress: bool = True,
            stop_after: int | None = None, restart_damaged: bool = False) -> RunResult:
    """Train one ``(variant, seed)`` of experiment module ``exp``; returns its :class:`RunResult`.

    ``resume``: continue from the run's last checkpoint (or return its finished result). ``restart_damaged``:
    start the run over when one of its files is damaged, instead of refusing. ``stop_after`` stops early after
    that many steps of this call (to test interruption and resume).
    """
    check_seeds([seed])
    folder = Path(out) / exp.NAME / f"{variant}-seed{seed}"
    try:
        with folder_lock(folder):
            return _run_one(exp, config, variant, int(seed), folder, resume, progress, stop_after, restart_damaged)
    except BaseException:
        for f in (folder, folder.parent):  # a run refused before it wrote anything (its data set is missing, say)
            try:  # leaves no empty folder behind; rmdir removes only an empty one
                f.rmdir()
            except OSError:
                break
        raise


def _run_one(exp, config, variant, seed, folder, resume, progress, stop_after, restart_damaged) -> RunResult:
    from tqdm.auto import tqdm

    log, ckpt, done = folder / "metrics.jsonl", folder / "checkpoint.npz", folder / "result.json"
    for tmp in folder.glob(".tmp-*"):  # left by a process killed mid-write (we hold the folder's lock)
        tmp.unlink(missing_ok=True)
    config_json = json.dumps(dataclasses.asdict(config), sort_keys=True)
    if resume and done.exists():
        try:
            saved = _read_result(done)
            if saved["config"] == config_json:
                _check_finished(log, ckpt, done, saved)
                return RunResult(variant, seed, saved["train"], saved["eval"])
        except DamagedFile as exc:
            if not restart_damaged:
                raise _advice(exc, folder) from None
            done.unlink()  # rebuilt from the log when the run finishes (again, if it had)

    task = exp.build(config, variant, seed)
    start, digest = 0, hashlib.sha256()
    if resume and ckpt.exists():
        try:
            start, state, extra = load_state(ckpt)
            _check_config(ckpt, extra, config_json)
            if not log.exists():
                raise DamagedFile(log, f"missing, but {ckpt.name} is at step {start}; resuming would leave a hole "
                                       "in the history")
            kept = [r for r in _read_log(log) if r["step"] <= start]  # what came after is logged again
            _check_history(log, kept, start)
            digest.update(_log_text(kept).encode())
            if extra.get("log_sha256", digest.hexdigest()) != digest.hexdigest():
                raise DamagedFile(log, f"its records up to step {start} are not those {ckpt.name} saw (edited or "
                                       "garbled)")
            task.load_state_dict(state)
            atomic_write_text(log, _log_text(kept))  # only once everything checked: a refusal changes no file
        except DamagedFile as exc:
            if not restart_damaged:
                raise _advice(exc, folder) from None
            task, start, digest = exp.build(config, variant, seed), 0, hashlib.sha256()
    if start == 0:
        for f in (done, ckpt, log):  # in this order: a kill in between never leaves a checkpoint without its log
            f.unlink(missing_ok=True)

    def write(record):
        line = json.dumps(record) + "\n"
        with open(log, "a", encoding="utf-8") as f:
            f.write(line)
        digest.update(line.encode())

    steps, eval_every, checkpoint_every = _schedule(exp, task)
    # training time so far (cumulative, evaluations excluded), carried on from the log when resuming
    last = [r for r in _read_log(log) if r["split"] == "train"][-1:] if start and log.exists() else []
    clock = {k: float(last[0].get(k, 0.0)) if last else 0.0 for k in TIMING}
    bar = tqdm(total=steps, initial=start, desc=f"{exp.NAME} {variant} s{seed}", disable=not progress, leave=False)
    try:
        if start == 0:
            write({"step": 0, "split": "eval", **_jsonable(task.evaluate()), **clock})
        saved_at = start
        for step in range(start + 1, steps + 1):
            backend.synchronize()  # on a GPU, queued work must not land in this update's time
            wall, cpu = time.perf_counter(), time.process_time()
            record = _jsonable(task.step())
            backend.synchronize()
            clock["wall_seconds"] += time.perf_counter() - wall
            clock["process_seconds"] += time.process_time() - cpu
            if record.get("grad_norm") is None and (norm := grad_norm(task)) is not None:
                record["grad_norm"] = norm  # every run logs it, clipped or not
            bad = [k for k, v in record.items() if isinstance(v, float) and not math.isfinite(v)]
            if bad:  # stop before anything of this step is kept
                raise Diverged(f"{exp.NAME} {variant} seed {seed}: step {step}: {bad[0]} = {record[bad[0]]} (training "
                               f"diverged; its last checkpoint is from step {saved_at}; try a smaller learning rate)")
            write({"step": step, "split": "train", **record, **clock})
            if step % eval_every == 0 or step == steps:
                write({"step": step, "split": "eval", **_jsonable(task.evaluate()), **clock})
            if step % checkpoint_every == 0 or step == steps:
                save_state(ckpt, dict(task.state_dict()), step=step,
                           extra={"config": config_json, "log_sha256": digest.hexdigest()})
                saved_at = step
            bar.update(1)
            if stop_after is not None and step - start >= stop_after and step < steps:
                raise KeyboardInterrupt(f"stopped after step {step} (stop_after={stop_after})")
    finally:
        bar.close()  # however the loop ends: its line is cleared before any message
    records = _read_log(log, allow_cut_last=False)
    result = RunResult(variant, seed, [r for r in records if r["split"] == "train"],
                       [r for r in records if r["split"] == "eval"])
    atomic_write_text(done, json.dumps({"config": config_json, "train": result.train, "eval": result.eval}))
    return result


def _check_config(ckpt: Path, extra, config_json: str) -> None:
    if not (isinstance(extra, dict) and isinstance(extra.get("config"), str)):
        raise DamagedCheckpoint(ckpt, "expected a run's checkpoint (its config in 'meta'), got another")
    if extra["config"] != config_json:
        raise ValueError(f"resume: the checkpoint in {ckpt.parent} was made with another config; use a fresh --out")


def _check_finished(log: Path, ckpt: Path, done: Path, saved: dict) -> None:
    """A finished run's three files agree: the checkpoint is whole and at the last step, it saw exactly this
    log, and the result holds exactly the log's records. Else the damaged one is named."""
    last = saved["train"][-1]["step"] if saved["train"] else 0
    if not ckpt.exists() and not log.exists():
        return  # a result stored on its own: a run made on a cluster worker (see sweep.run_grid)
    if not ckpt.exists():
        raise DamagedFile(ckpt, f"missing, but {done.name} says the run finished at step {last}")
    step, _, extra = load_state(ckpt)
    _check_config(ckpt, extra, saved["config"])
    if step != last:
        raise DamagedCheckpoint(ckpt, f"expected the finished run's step {last}, got step {step}")
    if not log.exists():
        raise DamagedFile(log, f"missing, but {done.name} says the run finished at step {last}")
    records = _read_log(log, allow_cut_last=False)
    text = _log_text(records)
    if extra.get("log_sha256", hashlib.sha256(text.encode()).hexdigest()) != hashlib.sha256(text.encode()).hexdigest():
        raise DamagedFile(log, f"its records are not those {ckpt.name} saw at the last step (cut, edited or garbled)")
    if [r for r in records if r["split"] == "train"] != saved["train"] or \
            [r for r in records if r["split"] == "eval"] != saved["eval"]:
        raise DamagedFile(done, f"its records differ from {log.name}'s (edited or garbled)")


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
    _, state, extra = load_state(path)
    if not isinstance(extra, dict) or extra.get("config") != json.dumps(dataclasses.asdict(config), sort_keys=True):
        raise ValueError(f"config: the checkpoint in {path.parent} was made with another config")
    task = exp.build(config, variant, seed)
    task.load_state_dict(state)
    return task


def run(exp, preset: str = "small", *, seeds=None, variants=None, out="runs", resume: bool = False,
        progress: bool = True, config=None, restart_damaged: bool = False) -> dict:
    """Run every variant x seed of experiment module ``exp``; returns ``{variant: [RunResult, ...]}``.

    ``seeds``: default the experiment's own for the preset (``exp.SEEDS[preset]``, else 0, 1, 2). Writes
    ``OUT/NAME/summary.json`` (the verdict word with its axis, its parts with their per-seed values, the paper's
    numbers and the config) atomically when all runs are done. ``restart_damaged``: start a run whose files are
    damaged over, instead of refusing it. (The command line and the notebooks pass ``OUT = runs/PRESET``.)
    """
    if seeds is None:
        from .verdicts import seeds_for

        seeds = seeds_for(exp, preset)
    seeds = check_seeds(seeds)
    config, variants = resolve(exp, preset, config, variants)
    results = {v: [run_one(exp, config, v, s, Path(out), resume=resume, progress=progress,
                           restart_damaged=restart_damaged) for s in seeds]
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
        "paper_numbers": getattr(exp, "PAPER_NUMBERS", ""),
        "config": dataclasses.asdict(config),
    }
    if hasattr(verdict, "to_json"):  # the rule's word, axis, why and per-seed parts (lnedu.experiments.verdicts)
        summary.update(verdict.to_json())
    atomic_write_text(Path(out) / exp.NAME / "summary.json", json.dumps(summary, indent=2))
    return results


def load_results(out, name: str) -> dict:
    """The finished runs of one experiment under ``out``: ``{variant: [RunResult, ...]}``."""
    folder = Path(out) / name
    results: dict = {}
    for done in sorted(folder.glob("*-seed*/result.json")):
        variant, seed = done.parent.name.rsplit("-seed", 1)
        saved = _read_result(done)
        results.setdefault(variant, []).append(RunResult(variant, int(seed), saved["train"], saved["eval"]))
    return results
