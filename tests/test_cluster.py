"""The text8 grid on a real Dask cluster (:mod:`lnedu.experiments.sweep`): a ``distributed.LocalCluster`` (a
scheduler and two worker processes on loopback, one thread each) runs the grid and gives the joblib run's
results bit for bit, also when a worker is killed mid-run (its run resumes from its checkpoint elsewhere); a
run's error reaches the caller naming the run; a second attempt at a run takes over the lock its lost worker
left on another host."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from lnedu import backend
from lnedu._io import DamagedFile, FolderLocked
from lnedu.checkpoint import DamagedCheckpoint, read_meta
from lnedu.experiments import text8_grid
from lnedu.experiments.runner import TIMING, load_results, run_one
from lnedu.experiments.sweep import ATTEMPTS, _one, run_grid

distributed = pytest.importorskip("distributed")

ROOT = Path(__file__).resolve().parents[1]
CLOCKS = ("seconds", "cpu_seconds", *TIMING)  # the task's per-update times and the runner's clocks
ENV = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}


def _untimed(results: dict) -> dict:
    """``{(variant, seed): (train, eval)}`` without any clock field: what two runs of one training share."""
    strip = lambda records: [{k: v for k, v in r.items() if k not in CLOCKS} for r in records]  # noqa: E731
    return {(r.variant, r.seed): (strip(r.train), strip(r.eval)) for runs in results.values() for r in runs}


@pytest.fixture(scope="module")
def cluster():
    """A scheduler and two worker processes (each restarted by its nanny when killed), no dashboard."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None, silence_logs=logging.CRITICAL) as c:
        yield c


def _worker_pids(cluster) -> set:
    with distributed.Client(cluster) as client:
        return set(client.run(os.getpid).values())


def _cli(out: Path, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lnedu", "run", "text8_grid", "--preset", "tiny", "--seeds", "0",
                           "--out", str(out), *args], capture_output=True, text=True, cwd=ROOT, env=ENV, timeout=300)


@pytest.mark.slow
def test_the_tiny_grid_on_a_cluster_gives_the_joblib_results(cluster, tmp_path):
    dask = _cli(tmp_path / "dask", "--scheduler", cluster.scheduler_address)
    assert dask.returncode == 0, dask.stderr
    run_grid(text8_grid, "tiny", seeds=(0,), out=tmp_path / "joblib" / "tiny", n_jobs=2)  # what --jobs 2 runs
    a, b = (load_results(tmp_path / side / "tiny", "text8_grid") for side in ("dask", "joblib"))
    assert set(a) == set(text8_grid.VARIANTS) and len(_untimed(a)) == len(text8_grid.VARIANTS)
    assert _untimed(a) == _untimed(b)  # every metric of every step, bit for bit
    assert all(len(r.eval) >= 2 and r.train[-1]["step"] == 10 for runs in a.values() for r in runs)
    summaries = [json.loads((tmp_path / side / "tiny" / "text8_grid" / "summary.json").read_text())
                 for side in ("dask", "joblib")]
    assert summaries[0] == summaries[1]
    assert f"results: {tmp_path / 'dask' / 'tiny' / 'text8_grid'}" in dask.stdout
    # every run was one task on one of the cluster's workers, and both workers trained
    attempts = [json.loads(p.read_text()) for p in (tmp_path / "dask").rglob(ATTEMPTS)]
    assert len(attempts) == len(text8_grid.VARIANTS) and len({a["call"] for a in attempts}) == 1
    assert all(len(a["attempts"]) == 1 and a["attempts"][0]["from_step"] == 0 for a in attempts)
    assert {a["attempts"][0]["pid"] for a in attempts} == _worker_pids(cluster)


@pytest.mark.slow
def test_a_killed_worker_s_run_resumes_and_the_grid_gives_the_joblib_results(cluster, tmp_path):
    variants = ["gru-ln-xavier", "lstm-noln-orthogonal", "mgu-ln-variance_scaling"]
    config = dataclasses.replace(text8_grid.PRESETS["tiny"], steps=150, eval_every=50, checkpoint_every=10)
    out = tmp_path / "dask"
    pids = _worker_pids(cluster)
    outcome = {}

    def grid():
        try:
            outcome["results"] = run_grid(text8_grid, "tiny", seeds=(0,), out=out, config=config,
                                          variants=variants, scheduler=cluster.scheduler_address)
        except BaseException as exc:  # noqa: BLE001 (handed to the test's thread)
            outcome["error"] = exc

    thread = threading.Thread(target=grid)
    thread.start()
    killed = None
    deadline = time.monotonic() + 120
    while killed is None and thread.is_alive() and time.monotonic() < deadline:
        for ckpt in out.glob("text8_grid/*-seed0/checkpoint.npz"):  # a run in flight with a checkpoint
            lock = ckpt.parent / "lock"
            try:
                owner, step = json.loads(lock.read_text()), read_meta(ckpt)["step"]
            except (OSError, ValueError):
                continue  # finished or between writes: look again
            if owner["pid"] in pids and step <= config.steps - 50:  # well before its end
                os.kill(owner["pid"], signal.SIGKILL)
                killed = (ckpt.parent, owner["pid"], step)
                break
        time.sleep(0.01)
    thread.join(timeout=180)
    assert killed is not None, "no run was seen in flight with a checkpoint"
    assert not thread.is_alive() and "error" not in outcome, outcome.get("error")

    local = run_grid(text8_grid, "tiny", seeds=(0,), out=tmp_path / "joblib", config=config, variants=variants,
                     n_jobs=2)
    assert _untimed(outcome["results"]) == _untimed(local)  # bit for bit, the killed run included
    folder, pid, step = killed
    attempts = json.loads((folder / ATTEMPTS).read_text())["attempts"]
    assert [a["pid"] for a in attempts][:1] == [pid] and len(attempts) == 2 and attempts[1]["pid"] != pid
    assert attempts[0]["from_step"] == 0 and step <= attempts[1]["from_step"] < config.steps  # resumed there
    assert attempts[1]["from_step"] % config.checkpoint_every == 0 and step >= config.checkpoint_every
    assert not (folder / "lock").exists()
    train_steps = [json.loads(line)["step"] for line in (folder / "metrics.jsonl").read_text().splitlines()
                   if json.loads(line)["split"] == "train"]
    assert train_steps == list(range(1, config.steps + 1))  # no hole, no repeat


def test_a_failed_run_reaches_the_caller_naming_it_and_the_others_are_stored(cluster, tmp_path):
    variants = ["gru-ln-xavier", "mgu-noln-orthogonal"]
    folder = tmp_path / "text8_grid" / "gru-ln-xavier-seed0"
    folder.mkdir(parents=True)
    (folder / "checkpoint.npz").write_bytes(b"PK\x03\x04 cut off")
    with pytest.raises(RuntimeError) as info:
        run_grid(text8_grid, "tiny", seeds=(0,), out=tmp_path, variants=variants, resume=True,
                 scheduler=cluster.scheduler_address)
    msg = str(info.value)
    assert msg.startswith("text8_grid: 1 of 2 runs failed on the cluster (gru-ln-xavier seed 0: DamagedCheckpoint: ")
    assert str(folder / "checkpoint.npz") in msg and "--restart-damaged" in msg and "--resume" in msg
    assert f"the others are finished and stored in {tmp_path}" in msg
    assert "\n" not in msg and isinstance(info.value.__cause__, DamagedCheckpoint)
    assert (tmp_path / "text8_grid" / "mgu-noln-orthogonal-seed0" / "result.json").exists()
    assert not (tmp_path / "text8_grid" / "summary.json").exists()
    # the runner's refusals travel between processes whole (pickled on the worker, read back here)
    for exc in (DamagedFile(folder / "x.json", "garbled"), DamagedCheckpoint(folder / "c.npz", "cut off")):
        back = pickle.loads(pickle.dumps(exc))
        assert type(back) is type(exc) and (back.path, back.problem, str(back)) == (exc.path, exc.problem, str(exc))


@pytest.mark.skipif(backend.gpu_available(), reason="this machine's workers could train on CuPy")
def test_device_gpu_goes_to_the_workers_not_to_this_process(cluster, tmp_path):
    """``--device gpu --scheduler ADDR`` on a machine without a GPU (a cluster's login node) sends CuPy to the
    workers; here they have none either, so each run fails there, and says why."""
    res = subprocess.run([sys.executable, "-m", "lnedu", "run", "text8_grid", "--preset", "tiny", "--seeds", "0",
                          "--variants", "gru-ln-xavier", "mgu-noln-xavier", "--device", "gpu", "--scheduler",
                          cluster.scheduler_address, "--out", str(tmp_path)], capture_output=True, text=True, cwd=ROOT,
                         env=ENV, timeout=300)
    assert res.returncode == 2
    assert res.stderr.startswith("lnedu: text8_grid: 2 of 2 runs failed on the cluster (gru-ln-xavier seed 0, "
                                 "mgu-noln-xavier seed 0: BackendError: backend: 'cupy' was requested"), res.stderr
    assert res.stderr.count("BackendError") == 1  # one cause, said once
    with pytest.raises(ValueError, match="array_backend: expected 'numpy' or 'cupy', got 'tpu'"):
        run_grid(text8_grid, "tiny", seeds=(0,), out=tmp_path, scheduler=cluster.scheduler_address,
                 array_backend="tpu")


def test_no_scheduler_at_the_address_is_a_clear_error(tmp_path):
    import socket

    import dask

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        with pytest.raises(OSError, match=rf"scheduler: expected a Dask scheduler listening at 'tcp://127.0.0.1:{port}'"):
            run_grid(text8_grid, "tiny", seeds=(0,), out=tmp_path, variants=["gru-ln-xavier"],
                     scheduler=f"tcp://127.0.0.1:{port}")


def test_a_second_attempt_takes_over_the_lost_worker_s_lock_on_another_host_and_resumes(tmp_path):
    """What the scheduler's retry after a lost worker finds: the run's checkpoint, its log and the lock of a
    process on a machine that is gone. Same grid call: resume; another call: the lock is refused."""
    config, variant = text8_grid.PRESETS["tiny"], "gru-ln-xavier"
    whole = run_one(text8_grid, config, variant, 0, tmp_path / "whole", progress=False)
    with pytest.raises(KeyboardInterrupt):
        run_one(text8_grid, config, variant, 0, tmp_path / "cut", progress=False, stop_after=7)
    folder = tmp_path / "cut" / "text8_grid" / f"{variant}-seed0"
    lost = {"host": "node-that-died", "pid": 4242}
    (folder / "lock").write_text(json.dumps({**lost, "since": 0.0}))
    (folder / ATTEMPTS).write_text(json.dumps({"call": "call-1", "attempts": [{**lost, "from_step": 0}]}))
    with pytest.raises(FolderLocked, match="pid 4242 on node-that-died"):  # a new grid call: not its run
        _one(text8_grid.__name__, config, variant, 0, str(tmp_path / "cut"), False, "numpy", "call-2")
    (folder / ATTEMPTS).write_text(json.dumps({"call": "call-1", "attempts": [{**lost, "from_step": 0}]}))
    resumed = _one(text8_grid.__name__, config, variant, 0, str(tmp_path / "cut"), False, "numpy", "call-1")
    assert _untimed({variant: [resumed]}) == _untimed({variant: [whole]})
    attempts = json.loads((folder / ATTEMPTS).read_text())["attempts"]
    assert attempts[1]["from_step"] == 5 and attempts[1]["pid"] == os.getpid()
    (folder / ATTEMPTS).write_text("{not json")
    with pytest.raises(DamagedFile, match=f"{ATTEMPTS}: "):
        _one(text8_grid.__name__, config, variant, 0, str(tmp_path / "cut"), False, "numpy", "call-1")


def test_a_failed_run_on_local_workers_reaches_the_caller_naming_the_file(tmp_path):
    """The joblib path: the worker's refusal comes back whole (a fresh process, without Dask's exception
    pickling installed), as the one line the runner wrote."""
    folder = tmp_path / "tiny" / "text8_grid" / "gru-ln-xavier-seed0"
    folder.mkdir(parents=True)
    (folder / "checkpoint.npz").write_bytes(b"PK\x03\x04 cut off")
    res = subprocess.run([sys.executable, "-m", "lnedu", "run", "text8_grid", "--preset", "tiny", "--seeds", "0",
                          "--variants", "gru-ln-xavier", "--jobs", "1", "--resume", "--out", str(tmp_path)],
                         capture_output=True, text=True, cwd=ROOT, env=ENV, timeout=300)
    assert res.returncode == 2
    line = res.stderr.strip().splitlines()[0]
    assert line.startswith(f"lnedu: {folder / 'checkpoint.npz'}: not a readable checkpoint"), res.stderr


def test_without_dask_s_distributed_the_scheduler_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if not installed: importing it fails
    with pytest.raises(RuntimeError, match=r"^scheduler: running on the Dask cluster at 'tcp://127.0.0.1:8786' "
                                           r"needs Dask's distributed package.*lnedu\[cluster\]"):
        run_grid(text8_grid, "tiny", seeds=(0,), out=tmp_path, variants=["gru-ln-xavier"],
                 scheduler="tcp://127.0.0.1:8786")
