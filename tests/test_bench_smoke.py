"""Keep the benchmarks runnable: a quick run of bench_norms on the small shape, with and without PyTorch.

These tests check that the script runs and prints its table and ratios; they assert nothing about
speed (a speed claim comes from running the benchmark itself, never from a unit test).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks" / "bench_norms.py"
HAS_TORCH = importlib.util.find_spec("torch") is not None
HAS_NUMBA = importlib.util.find_spec("numba") is not None
RATIO = r"\s+\d+\.\d\dx\s+\(per-round IQR \d+\.\d\d-\d+\.\d\d\)"


def _run(args, *, hide_torch=False, tmp_path=None, ok=True):
    """Run bench_norms.py in a fresh interpreter (optionally with ``import torch`` made to fail);
    return the finished process, whose exit status must be 0 when ``ok``."""
    if hide_torch:  # sys.modules["torch"] = None makes `import torch` raise ImportError
        code = (
            "import runpy, sys; sys.modules['torch'] = None; "
            f"sys.argv = [{str(BENCH)!r}] + {list(args)!r}; runpy.run_path({str(BENCH)!r}, run_name='__main__')"
        )
        cmd = [sys.executable, "-c", code]
    else:
        cmd = [sys.executable, str(BENCH), *args]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=tmp_path or ROOT, env=env)
    if ok:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


@pytest.mark.skipif(not HAS_TORCH, reason="PyTorch (the [bench] extra) is not installed")
def test_quick_run_prints_both_ratios_and_writes_json(tmp_path):
    out_json = tmp_path / "bench.json"
    out = _run(["--quick", "--shapes", "64x256", "--json", str(out_json)], tmp_path=tmp_path).stdout
    assert "shape (64, 256) float32" in out
    assert re.search(r"lnedu/torch" + RATIO, out), out
    assert re.search(r"lnedu/naive" + RATIO, out), out
    assert re.search(r"\d+ intra-op thread", out), out  # the torch thread count is reported
    assert "blas:" in out  # and which BLAS NumPy uses
    data = json.loads(out_json.read_text())
    (record,) = data["results"]
    assert record["shape"] == [64, 256]
    fast = {"fast"} if HAS_NUMBA else set()
    assert set(record["timings"]) == {"lnedu", "lnedu-ref", "naive", "blocked", "copy", "torch", "torch-direct"} | fast
    assert set(record["ratios"]) == ({"lnedu/torch", "lnedu/torch-direct", "lnedu/naive", "lnedu/lnedu-ref",
                                      "lnedu-ref/naive", "blocked/naive"}
                                     | ({"fast/torch", "fast/naive"} if HAS_NUMBA else set()))
    assert all(t["median_ms"] > 0 for t in record["timings"].values())
    assert set(record["fraction_of_copy_bandwidth"]) == set(record["timings"]) - {"copy"}
    assert record["copy_rate_gb_s"]["best"] > 0
    assert [p.name for p in tmp_path.iterdir()] == ["bench.json"]  # no temporary file left behind


def test_quick_run_without_torch_skips_its_column():
    out = _run(["--quick", "--shapes", "64x256"], hide_torch=True).stdout
    assert re.search(r"lnedu/naive" + RATIO, out), out
    assert re.search(r"lnedu/lnedu-ref" + RATIO, out) and re.search(r"lnedu-ref/naive" + RATIO, out), out
    assert "lnedu/torch     skipped (torch not installed)" in out
    assert "torch: not installed" in out
    assert not re.search(r"lnedu/torch" + RATIO, out)
    assert re.search(r"blocked/naive" + RATIO, out), out
    assert re.search(r"copy rate \d+\.\d GB/s", out) and "fraction of it" in out, out
    assert bool(re.search(r"fast/naive" + RATIO, out)) == HAS_NUMBA, out


def test_bad_shape_is_refused():
    proc = _run(["--shapes", "64by256"], hide_torch=True, ok=False)
    assert proc.returncode == 2  # argparse's usage error
    assert "expected a shape like 4096x1024" in proc.stderr


def _timing_module():
    spec = importlib.util.spec_from_file_location("_timing", ROOT / "benchmarks" / "_timing.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("_timing", mod)  # dataclasses look their module up there
    spec.loader.exec_module(sys.modules["_timing"])
    return sys.modules["_timing"]


def test_timing_helper_interleaves_and_formats(tmp_path):
    timing = _timing_module()
    calls = []
    timings = timing.compare(
        {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, rounds=4, warmup=1, min_time=1e-4
    )
    assert [len(t.samples) for t in timings.values()] == [4, 4]
    assert all(t.number >= 1 and t.best <= t.median for t in timings.values())
    table = timing.format_table("title", timings, ratios=[("a", "b"), ("a", "absent")])
    assert table.splitlines()[0] == "title"
    assert re.search(r"a/b" + RATIO, table) and "a/absent" not in table
    path = tmp_path / "sub" / "t.json"
    timing.write_json(str(path), {"x": 1})
    assert json.loads(path.read_text()) == {"x": 1}


def test_cold_start_is_measured_or_skipped_with_the_reason():
    out = _run(["--quick", "--cold", "--shapes", "8x16"], hide_torch=True).stdout
    if HAS_NUMBA:
        for label in ("compile", "cached"):
            assert re.search(rf"cold start, numba {label}: import lnedu.functional \d+\.\d\d s, first float32 "
                             r"forward \+ backward at \(64, 256\) \d+\.\d\d s", out), out
    else:
        assert "cold start: skipped (numba not installed)" in out
