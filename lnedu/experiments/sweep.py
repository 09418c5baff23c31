"""Run a grid of independent training runs in parallel: joblib on local cores, or a Dask cluster.

A grid experiment (one that sets ``GRID = True``, such as ``text8_grid``) has many ``(variant, seed)`` runs
that share nothing, so they can run at the same time. :func:`run_grid` hands each one to
:func:`lnedu.experiments.run_one` through ``joblib.Parallel``:

* locally (the default), with joblib's ``loky`` backend: ``n_jobs`` worker processes, each run in one of
  them (joblib also limits each worker's BLAS threads, so ``n_jobs`` workers share the cores instead of
  oversubscribing them);
* on a Dask cluster when ``scheduler`` gives its address (``"tcp://host:port"``): a
  ``distributed.Client`` connects to it and ``joblib.parallel_config(backend="dask")`` sends the same
  calls to the cluster's workers. This needs ``pip install "lnedu[cluster]"`` here and lnedu installed on
  every worker.

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
from pathlib import Path

from .. import backend
from .._io import atomic_write_text
from .runner import RunResult, check_seeds, resolve, run, run_one

__all__ = ["run_grid", "connect"]


def _one(module: str, config, variant: str, seed: int, out: str, resume: bool, array_backend: str) -> RunResult:
    """One ``(variant, seed)`` run; what a joblib worker executes (the module travels by name, and the worker
    takes the caller's array backend)."""
    backend.use(array_backend)
    exp = importlib.import_module(module)
    return run_one(exp, config, variant, seed, Path(out), resume=resume, progress=False)


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
    return Client(scheduler)


def _store(out: Path, exp, config, result: RunResult) -> None:
    """Write a run's ``result.json`` here unless its worker already did (a worker on another machine)."""
    done = out / exp.NAME / f"{result.variant}-seed{result.seed}" / "result.json"
    config_json = json.dumps(dataclasses.asdict(config), sort_keys=True)
    if done.exists() and json.loads(done.read_text(encoding="utf-8")).get("config") == config_json:
        return
    done.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(done, json.dumps({"config": config_json, "train": result.train, "eval": result.eval}))


def run_grid(exp, preset: str = "small", seeds=None, out="runs", n_jobs: int = 2, scheduler=None, *,
             variants=None, resume: bool = False, config=None, verbose: int = 0) -> dict:
    """Run every ``variant x seed`` of experiment module ``exp`` in parallel; returns ``{variant: [RunResult]}``.

    ``n_jobs``: local worker processes (joblib's ``loky`` backend; ``-1`` for every core). ``scheduler``: the
    address of a Dask scheduler; when given, the runs go to that cluster instead and ``n_jobs`` is not used.
    The other arguments are those of :func:`lnedu.experiments.run`, whose results and ``summary.json`` this
    reproduces exactly: only the wall-clock time differs.
    """
    from joblib import Parallel, delayed, parallel_config

    from .verdicts import seeds_for

    seeds = check_seeds(seeds_for(exp, preset) if seeds is None else seeds)
    config, variants = resolve(exp, preset, config, variants)
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs == 0 or n_jobs < -1:
        raise ValueError(f"n_jobs: expected a positive number of workers or -1 (every core), got {n_jobs!r}")
    out = Path(out)
    jobs = [delayed(_one)(exp.__name__, config, v, int(s), str(out), resume, backend.current())
            for v in variants for s in seeds]
    if scheduler is None:
        with parallel_config(backend="loky", n_jobs=n_jobs):
            results = Parallel(verbose=verbose)(jobs)
    else:
        client = connect(str(scheduler))
        try:
            with parallel_config(backend="dask"):
                results = Parallel(verbose=verbose)(jobs)
        finally:
            client.close()
    for r in results:
        _store(out, exp, config, r)
    # every run is finished and stored: the runner now only reads them back and writes the summary
    return run(exp, preset, seeds=seeds, variants=variants, out=out, resume=True, progress=False, config=config)
