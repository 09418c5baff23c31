"""lnedu's CUDA kernels have no data races between the threads of a block (ThreadSanitizer on the emulator).

A missing ``__syncthreads`` is the classic bug of a hand-written reduction, and on a GPU it may stay
hidden for years, only to give a wrong sum on some other device. Here the kernel source runs on the CPU
emulator (``tests/cuda_emulator``), where every CUDA thread is a real thread and a shuffle only
synchronizes its own warp, built with ``-fsanitize=thread``: ThreadSanitizer then reports any two threads
of a block touching the same memory without a barrier between them. The second test plants such a race
(the leading barrier of ``block_sum`` removed) and checks that it is caught, so the first one can fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cuda_emulator import KERNELS, compiler

ROOT = Path(__file__).resolve().parents[1]


def _libtsan():
    cxx = compiler()
    if cxx is None:
        return None
    path = subprocess.run([cxx, "-print-file-name=libtsan.so"], capture_output=True, text=True).stdout.strip()
    return path if os.path.isabs(path) and os.path.exists(path) else None


LIBTSAN = _libtsan()
pytestmark = pytest.mark.skipif(LIBTSAN is None, reason="no g++ with ThreadSanitizer's runtime (libtsan.so)")


def _run_driver(*args):
    env = {**os.environ, "LD_PRELOAD": LIBTSAN, "TSAN_OPTIONS": "halt_on_error=1 exitcode=66",
           "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "tests.cuda_emulator.race_driver", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_the_kernels_have_no_data_race():
    done = _run_driver()
    assert done.returncode == 0, done.stderr[-4000:]
    assert "ThreadSanitizer" not in done.stderr
    assert "no data race reported" in done.stdout
    for kind in ("norm_forward", "norm_backward", "sum_columns", "lstm_forward", "lstm_backward", "gru_forward",
                 "gru_backward"):
        assert kind in done.stdout


def test_a_missing_barrier_is_reported(tmp_path):
    for source in KERNELS.glob("*.cuh"):
        shutil.copy(source, tmp_path / source.name)
    common = (tmp_path / "common.cuh").read_text()
    barrier = "    for (int n = 0; n < N; ++n) v[n] = warp_sum(v[n]);\n    __syncthreads();\n"
    assert barrier in common  # block_sum's first barrier: it keeps a new call off the previous call's scratch
    (tmp_path / "common.cuh").write_text(common.replace(barrier, barrier.replace("    __syncthreads();\n", "")))
    done = _run_driver("--kernels", str(tmp_path))
    assert done.returncode == 66
    assert "ThreadSanitizer: data race" in done.stderr and "block_sum" in done.stderr
