"""Fault injection for runs: killed at random points, every file damaged, two runs at once.

Each case ends in one of two ways, never a traceback and never a silent hole:

* a resume whose files equal an uninterrupted run's bit for bit (log, result, checkpoint, summary), or
* a one-line refusal (exit status 2) naming the damaged file, after which the clean way out the message
  offers (``--restart-damaged``, or deleting a lock) ends in that same bit-exact state.

The kill points and the garbled bytes come from a fixed generator, so a failure can be replayed. A kill point
is a number of log records, waited for by polling, then a signal: kills land between and inside steps, while
checkpoints are written, and during start-up, not only at checkpoints. Runtime: well under a minute.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from lnedu.__main__ import main
from lnedu._io import read_jsonl
from lnedu.checkpoint import load_state
from lnedu.experiments import mnist_mlp
from lnedu.experiments.runner import run_one, strip_timing

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["run", "mnist", "--preset", "tiny", "--seeds", "0", "--variants", "ln-bs4"]
RUN = Path("tiny") / "mnist" / "ln-bs4-seed0"  # the CLI writes OUT/PRESET/NAME
FILES = ("checkpoint.npz", "metrics.jsonl", "result.json", "lock")
RNG_SEED = 20  # every random choice below (kill points, signals, garbled bytes) comes from this


def _main(out, *extra, capsys):
    capsys.readouterr()
    code = main([*ARGS, "--out", str(out), *extra])
    return code, capsys.readouterr().err


def _snapshot(out) -> dict:
    """What a run leaves: the log, result and summary as bytes, the checkpoint as (step, arrays, extra)."""
    folder = Path(out) / RUN
    step, state, extra = load_state(folder / "checkpoint.npz")
    return {
        "files": sorted(p.name for p in folder.iterdir()),
        # the training clocks (wall_seconds, process_seconds) differ between any two runs: all else is bit-exact
        "metrics.jsonl": strip_timing(read_jsonl(folder / "metrics.jsonl")),
        "result.json": {k: strip_timing(v) if k in ("train", "eval") else v
                        for k, v in json.loads((folder / "result.json").read_text()).items()},
        "summary.json": (Path(out) / "tiny" / "mnist" / "summary.json").read_bytes(),
        "checkpoint": (step, state, extra),
    }


def _assert_same(out, ref: dict) -> None:
    got = _snapshot(out)
    assert got["files"] == ["checkpoint.npz", "metrics.jsonl", "result.json"]  # no lock, no temporary left
    for name in ("metrics.jsonl", "result.json", "summary.json"):
        assert got[name] == ref[name], f"{name} differs from the uninterrupted run's"
    (s1, a1, e1), (s2, a2, e2) = got["checkpoint"], ref["checkpoint"]
    e1, e2 = ({k: v for k, v in e.items() if k != "log_sha256"} for e in (e1, e2))  # its log's clocks differ
    assert (s1, e1, sorted(a1)) == (s2, e2, sorted(a2))
    for k in a1:
        np.testing.assert_array_equal(a1[k], a2[k], err_msg=k)


def _assert_refusal(code: int, err: str, path: Path) -> None:
    assert "Traceback" not in err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"lnedu: {path}: "), err


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run, its snapshot and its number of log records."""
    out = tmp_path_factory.mktemp("reference")
    assert main([*ARGS, "--out", str(out)]) == 0
    snap = _snapshot(out)
    snap["records"] = len(snap["metrics.jsonl"])
    snap["out"] = out
    return snap


def _records(out) -> int:
    try:
        return (Path(out) / RUN / "metrics.jsonl").read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def _start(out, log_path):
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    log = open(log_path, "w")
    proc = subprocess.Popen([sys.executable, "-m", "lnedu", *ARGS, "--out", str(out)], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    return proc, log


def _wait_for(proc, out, records: int, timeout: float = 60.0) -> bool:
    """Poll until the run has logged ``records`` records; False if it exited first."""
    end = time.monotonic() + timeout
    while _records(out) < records:
        if proc.poll() is not None or time.monotonic() > end:
            return False
        time.sleep(0.002)
    return True


def _kill_cases(n=5):
    rng = np.random.default_rng(RNG_SEED)
    # fractions of the run's log; 0 = during start-up, before the first record
    fractions = [0.0] + sorted(rng.uniform(0.02, 0.98, size=n - 1).round(3).tolist())
    sigs = [signal.SIGKILL if i % 2 == 0 else signal.SIGTERM for i in range(n)]
    return list(zip(sigs, fractions))


@pytest.mark.parametrize("sig, fraction", _kill_cases(), ids=lambda v: getattr(v, "name", str(v)))
def test_killed_run_resumes_bit_exact(tmp_path, reference, capsys, sig, fraction):
    out = tmp_path / "out"
    proc, log = _start(out, tmp_path / "console.txt")
    try:
        if fraction == 0.0:
            time.sleep(0.05)  # still importing
        else:
            _wait_for(proc, out, max(1, int(fraction * reference["records"])))
        proc.send_signal(sig)
        proc.wait(timeout=60)
    finally:
        log.close()
    console = (tmp_path / "console.txt").read_text(errors="replace")
    assert "Traceback" not in console, console
    if sig == signal.SIGTERM and proc.returncode == 130:  # it stopped like Ctrl-C: locks released
        assert console.strip().splitlines()[-1].startswith("lnedu: interrupted"), console
        assert not (out / RUN / "lock").exists()
    assert proc.returncode in (0, 130, -signal.SIGTERM, -signal.SIGKILL), console
    code, err = _main(out, "--resume", capsys=capsys)
    assert code == 0, err
    _assert_same(out, reference)


@pytest.fixture(scope="module")
def mid_run(tmp_path_factory):
    """A run stopped at step 230 with its checkpoint at step 200, and the lock of the process that died."""
    out = tmp_path_factory.mktemp("mid-run")
    orig = mnist_mlp.build

    def build(config, variant, seed):
        task = orig(config, variant, seed)
        task.checkpoint_every = 50
        return task

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(mnist_mlp, "build", build)
        with pytest.raises(KeyboardInterrupt):
            run_one(mnist_mlp, mnist_mlp.PRESETS["tiny"], "ln-bs4", 0, out / "tiny", progress=False, stop_after=230)
    assert load_state(out / RUN / "checkpoint.npz")[0] == 200
    _stale_lock(out / RUN / "lock")
    return out


def _stale_lock(path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    path.write_text(json.dumps({"pid": int(dead.stdout), "host": socket.gethostname(), "since": 0.0}))


def _damage(path: Path, how: str, rng) -> None:
    data = path.read_bytes()
    if how == "truncate":
        path.write_bytes(data[: int(rng.integers(0, len(data)))])
    elif how == "zero":
        path.write_bytes(bytes(len(data)))
    else:  # garble 16 bytes somewhere
        at = int(rng.integers(0, max(1, len(data) - 16)))
        path.write_bytes(data[:at] + rng.bytes(16) + data[at + 16:])


CORRUPTIONS = [(state, name, how) for state in ("finished", "mid-run") for name in FILES
               for how in ("truncate", "zero", "garble") if not (state == "mid-run" and name == "result.json")]


@pytest.mark.parametrize("state, name, how", CORRUPTIONS)
def test_damaged_file_resumes_bit_exact_or_is_refused_by_name(tmp_path, reference, mid_run, capsys, state, name,
                                                              how):
    rng = np.random.default_rng([RNG_SEED, CORRUPTIONS.index((state, name, how))])
    out = tmp_path / "out"
    shutil.copytree(reference["out"] if state == "finished" else mid_run, out)
    if state == "finished":
        _stale_lock(out / RUN / "lock")
    path = out / RUN / name
    _damage(path, how, rng)
    code, err = _main(out, "--resume", capsys=capsys)
    if code != 0:
        _assert_refusal(code, err, path)
        if "--restart-damaged" in err:
            code, err = _main(out, "--resume", "--restart-damaged", capsys=capsys)
        else:
            assert name == "lock" and "delete" in err, err
            path.unlink()
            code, err = _main(out, "--resume", capsys=capsys)
    assert code == 0, err
    _assert_same(out, reference)


def test_second_run_into_a_busy_folder_is_refused(tmp_path, reference, capsys):
    out = tmp_path / "out"
    proc, log = _start(out, tmp_path / "console.txt")
    try:
        assert _wait_for(proc, out, reference["records"] // 3), "the first run ended before it was half-way"
        code, err = _main(out, capsys=capsys)  # the same runs, the same --out, while the first is writing
        assert proc.wait(timeout=60) == 0
    finally:
        log.close()
    _assert_refusal(code, err, out / RUN / "lock")
    assert f"another run (pid {proc.pid} on {socket.gethostname()})" in err
    _assert_same(out, reference)


def test_two_runs_started_together_never_interleave(tmp_path, reference):
    out = tmp_path / "out"
    procs = [_start(out, tmp_path / f"console{i}.txt") for i in range(2)]
    codes = []
    for i, (proc, log) in enumerate(procs):
        codes.append(proc.wait(timeout=60))
        log.close()
        console = (tmp_path / f"console{i}.txt").read_text(errors="replace")
        assert "Traceback" not in console, console
        if codes[-1] != 0:
            assert codes[-1] == 2 and "another run (pid" in console, console
    assert 0 in codes
    _assert_same(out, reference)  # whichever won, its files are whole and exact: no record twice or lost
