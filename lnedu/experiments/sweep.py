"""Run a grid of independent training runs in parallel: joblib on local cores, or a Dask cluster.

A grid experiment (one that sets ``GRID = True``, such as ``text8_grid``) has many ``(variant, seed)`` runs
that share nothing, so they can run at the same time. :func:`run_grid` hands each one to
:func:`lnedu.experiments.run_one`:

* locally (the default), through ``joblib.Parallel`` with the ``loky`` backend: ``n_jobs`` worker processes,
  each run in one of them (joblib also limits each worker's BLAS threads, so ``n_jobs`` workers share the
  cores instead of oversubscribing them); the first run that fails stops the grid;
* on a Dask cluster when ``scheduler`` gives its address (``"tcp://host:port"``): a ``distributed.Client``
  connects to it and submits every run as its own task (named ``NAME-VARIANT-seedS-CALL``, as the scheduler's
  dashboard shows it). A run that fails does not stop the others; when all are done, one error names every
  failed run and why. This needs ``pip install "lnedu[cluster]"`` here and the same lnedu on every worker.

A worker that dies (killed, out of memory, its batch job's time is up) loses the run it was training; the
scheduler gives that task to another worker (up to ``distributed.scheduler.allowed-failures`` times, 3 by
default, then the run fails with ``KilledWorker``). The new attempt resumes from the run's last checkpoint
when it can see the run folder (shared storage), even without ``resume=True``: each attempt is noted in the
run folder's ``attempts.json`` (this grid call's id; for every attempt its host, pid and the step it started
from), so a second attempt of the same call knows the run is its own, takes over the lock the lost worker
left, and continues. A later grid call starts its runs over unless ``resume=True``; a run that an earlier,
interrupted call started is still training on its worker (Dask cannot stop a running task), holds its folder's
lock, and the new attempt is refused, naming its process and host.

Every run writes its logs and checkpoints under ``out`` where it runs (a worker without a shared file
system keeps them on its own disk); the finished results come back to this process, which stores each
one under ``out`` and then writes the experiment's ``summary.json`` as :func:`lnedu.experiments.run` does.
With ``resume=True`` finished runs are read back and interrupted ones continue from their checkpoints.
Results do not depend on how the runs were spread: each run is a function of its config, variant and seed.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import socket
import time
import uuid
from pathlib import Path

from .. import backend
from .._io import DamagedFile, atomic_write_text, read_json
from ..checkpoint import read_meta
from .runner import RunResult, check_seeds, resolve, run, run_one

__all__ = ["run_grid", "connect", "ATTEMPTS"]

ATTEMPTS = "attempts.json"  # in a run folder: the cluster's attempts at that run (see the module docstring)


def _one(module: str, config, variant: str, seed: int, out: str, resume: bool, array_backend: str,
         call: str = "", restart_damaged: bool = False) -> RunResult:
    """One ``(variant, seed)`` run; what a worker executes (the module travels by name, and the worker takes
    the caller's array backend). ``call``: the id of the grid call on a cluster, which lets a second attempt
    at the run (after its first worker was lost) resume it. ``restart_damaged``: as in :func:`run_one`."""
    backend.use(array_backend)
    exp = importlib.import_module(module)
    if call:
        resume = _note_attempt(Path(out) / exp.NAME / f"{variant}-seed{seed}", call, resume)
    return run_one(exp, config, variant, seed, Path(out), resume=resume, progress=False,
                   restart_damaged=restart_damaged)


def _note_attempt(folder: Path, call: str, resume: bool) -> bool:
    """Add this attempt to ``folder/attempts.json``; returns whether the run should resume.

    An earlier attempt of the same grid call means the scheduler gave this run to us after the worker
    training it was lost: resume from its checkpoint, and remove its lock (the runner takes over a dead
    owner's lock by itself only on the same host; the lost worker may have been on another)."""
    path = folder / ATTEMPTS
    attempts = []
    if path.exists():
        saved = read_json(path, "record of a run's attempts on a cluster (JSON)")
        if not (isinstance(saved, dict) and isinstance(saved.get("attempts"), list)
                and all(isinstance(a, dict) for a in saved["attempts"])):
            raise DamagedFile(path, "expected {'call': ..., 'attempts': [...]}, got other JSON; delete it")
        if saved.get("call") == call:
            attempts = saved["attempts"]
    if attempts:
        resume = True
        lock = folder / "lock"
        try:
            owner = json.loads(lock.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            owner = None  # no lock, or a garbled one: the runner deals with it
        lost = attempts[-1]
        if isinstance(owner, dict) and (owner.get("host"), owner.get("pid")) == (lost.get("host"), lost.get("pid")):
            lock.unlink(missing_ok=True)
    ckpt = folder / "checkpoint.npz"
    try:
        from_step = read_meta(ckpt)["step"] if resume and ckpt.exists() else 0
    except DamagedFile:
        from_step = None  # the runner refuses the damaged checkpoint, naming it
    folder.mkdir(parents=True, exist_ok=True)
    attempts.append({"host": socket.gethostname(), "pid": os.getpid(), "from_step": from_step, "since": time.time()})
    atomic_write_text(path, json.dumps({"call": call, "attempts": attempts}, indent=1))
    return resume


def connect(scheduler: str):
    """A ``distributed.Client`` connected to the Dask scheduler at ``scheduler`` (``"tcp://host:port"``)."""
    try:
        from distributed import Client
    except ImportError as exc:
        raise RuntimeError(
            f"scheduler: running on the Dask cluster at {scheduler!r} needs Dask's distributed package, which is "
            "not installed; install it with `pip install \"lnedu[cluster]\"` (or run without a scheduler to use "
            "the local cores)"
        ) from exc
    try:
        return Client(scheduler)
    except OSError as exc:
        raise OSError(f"scheduler: expected a Dask scheduler listening at {scheduler!r}, but could not reach it "
                      f"({exc}); start one (`dask scheduler`, or a dask-jobqueue cluster) and pass its address") \
            from None


def _store(out: Path, exp, config, result: RunResult) -> None:
    """Write a run's ``result.json`` here unless its worker already did (a worker on another machine)."""
    done = out / exp.NAME / f"{result.variant}-seed{result.seed}" / "result.json"
    config_json = json.dumps(dataclasses.asdict(config), sort_keys=True)
    if done.exists() and json.loads(done.read_text(encoding="utf-8")).get("config") == config_json:
        return
    done.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(done, json.dumps({"config": config_json, "train": result.train, "eval": result.eval}))


def _finished(out: Path, exp, config_json: str, variant: str, seed: int) -> bool:
    """Whether the run has a readable ``result.json`` made with the config ``config_json`` (the runner checks
    the rest)."""
    done = out / exp.NAME / f"{variant}-seed{seed}" / "result.json"
    try:
        return json.loads(done.read_text(encoding="utf-8"))["config"] == config_json
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _why(exc: BaseException) -> str:
    """One failed run's cause in a line, with the way out where one is known."""
    why = f"{type(exc).__name__}: {exc}".splitlines()[0]
    if type(exc).__name__ == "KilledWorker":
        why += (" (the worker died each time: out of memory, or a batch job's time limit? for runs longer than "
                "a job, raise distributed.scheduler.allowed-failures)")
    elif isinstance(exc, ModuleNotFoundError):
        why += " (every worker needs lnedu installed, the same version as here)"
    return why


def _on_cluster(client, exp, config, variants, seeds, out: Path, resume: bool, array_backend: str,
                restart_damaged: bool = False) -> None:
    """Submit every run as its own task, store each result as it arrives; then one error for all that failed."""
    from distributed import as_completed

    call = uuid.uuid4().hex  # this grid call: a second attempt at one of its runs resumes it (see _one)
    futures = {client.submit(_one, exp.__name__, config, v, s, str(out), resume, array_backend, call,
                             restart_damaged, key=f"{exp.NAME}-{v}-seed{s}-{call[:8]}"): (v, s)
               for v in variants for s in seeds}
    failed = []
    for future in as_completed(futures):
        if future.status == "finished":
            _store(out, exp, config, future.result())
        else:  # "error": the run raised; "cancelled": the scheduler dropped it
            exc = future.exception() if future.status == "error" else RuntimeError(f"its task was {future.status} "
                                                                                     "by the scheduler")
            failed.append((*futures[future], exc))
    if failed:
        failed.sort(key=lambda f: (variants.index(f[0]), seeds.index(f[1])))
        by_cause: dict = {}  # one cause (the data missing on every worker, say) is said once
        for v, s, exc in failed:
            by_cause.setdefault(_why(exc), []).append(f"{v} seed {s}")
        runs = "; ".join(", ".join(named[:3]) + (f" and {len(named) - 3} more" if len(named) > 3 else "") + f": {why}"
                         for why, named in by_cause.items())
        done = "the others are finished and stored" if len(failed) < len(futures) else "none finished"
        raise RuntimeError(f"{exp.NAME}: {len(failed)} of {len(futures)} runs failed on the cluster ({runs}); {done} "
                           f"in {out}: fix the cause and run again with --resume (resume=True) to train only what is "
                           "missing") from failed[0][2]


def run_grid(exp, preset: str = "small", seeds=None, out="runs", n_jobs: int = 2, scheduler=None, *,
             variants=None, resume: bool = False, config=None, verbose: int = 0, array_backend=None,
             restart_damaged: bool = False) -> dict:
    """Run every ``variant x seed`` of experiment module ``exp`` in parallel; returns ``{variant: [RunResult]}``.

    ``n_jobs``: local worker processes (joblib's ``loky`` backend; ``-1`` for every core). ``scheduler``: the
    address of a Dask scheduler; when given, the runs go to that cluster instead and ``n_jobs`` is not used.
    The other arguments are those of :func:`lnedu.experiments.run`, whose results and ``summary.json`` this
    reproduces exactly: only the wall-clock time differs. ``verbose``: joblib's progress messages (local runs).
    ``array_backend``: ``"numpy"`` or ``"cupy"``, what the workers train on (default: this process's,
    :func:`lnedu.backend.current`); on a cluster the workers may have GPUs where this process has none.
    ``restart_damaged``: a run whose checkpoint, log or result is damaged starts over instead of being refused.
    """
    from .verdicts import seeds_for

    seeds = check_seeds(seeds_for(exp, preset) if seeds is None else seeds)
    config, variants = resolve(exp, preset, config, variants)
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs == 0 or n_jobs < -1:
        raise ValueError(f"n_jobs: expected a positive number of workers or -1 (every core), got {n_jobs!r}")
    array_backend = backend.current() if array_backend is None else array_backend
    if array_backend not in ("numpy", "cupy"):
        raise ValueError(f"array_backend: expected 'numpy' or 'cupy', got {array_backend!r}")
    out = Path(out)
    if scheduler is None:
        from joblib import Parallel, delayed, parallel_config

        # with resume, a run whose result is there (for this config) needs no worker: the runner below checks and
        # reads it (so a notebook shown after its runs finished starts no process pool); any other goes to one
        config_json = json.dumps(dataclasses.asdict(config), sort_keys=True)
        todo = [(v, s) for v in variants for s in seeds if not (resume and _finished(out, exp, config_json, v, s))]
        if todo:
            with parallel_config(backend="loky", n_jobs=n_jobs):
                results = Parallel(verbose=verbose)(
                    delayed(_one)(exp.__name__, config, v, s, str(out), resume, array_backend, "", restart_damaged)
                    for v, s in todo)
            for r in results:
                _store(out, exp, config, r)
    else:
        client = connect(str(scheduler))
        try:  # an absolute folder: a worker's working directory is not this one (on shared storage: the same)
            _on_cluster(client, exp, config, variants, seeds, out.absolute(), resume, array_backend, restart_damaged)
        finally:
            client.close()
    # every run is finished and stored: the runner now only reads them back and writes the summary
    return run(exp, preset, seeds=seeds, variants=variants, out=out, resume=True, progress=False, config=config,
               restart_damaged=restart_damaged)
