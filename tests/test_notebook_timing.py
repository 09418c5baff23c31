"""The per-notebook time limit of the nbval run (the plugin ``tests/nbval_timing.py`` that ``make nbval`` loads)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest

from tests.nbval_timing import NotebookTimes

ROOT = Path(__file__).resolve().parents[1]


def _report(nodeid, duration):
    return SimpleNamespace(nodeid=nodeid, duration=duration)


def test_times_add_up_per_notebook_over_every_phase(rng):
    times = NotebookTimes(limit=5.0)
    expected = {}
    for nb in ("notebooks/01-a.ipynb", "notebooks/sub/02-b.ipynb", "notebooks/03-c.ipynb"):
        durations = rng.uniform(0.0, 3.0, size=int(rng.integers(2, 6)))
        for i, d in enumerate(durations):  # several cells; each could be a setup, call or teardown phase
            times.pytest_runtest_logreport(_report(f"{nb}::Cell {i}", float(d)))
        expected[nb] = float(durations.sum())
    times.pytest_runtest_logreport(_report("tests/test_x.py::test_y", 99.0))  # not a notebook: ignored
    assert times.seconds.keys() == expected.keys()
    for nb, s in expected.items():
        assert times.seconds[nb] == pytest.approx(s, rel=1e-12)
    ordered = [s for _, s in times.slowest_first()]
    assert ordered == sorted(ordered, reverse=True)
    assert times.over_limit() == [(nb, s) for nb, s in times.slowest_first() if s > 5.0]


def test_sessionfinish_fails_a_passing_run_only_when_a_notebook_is_over_the_limit():
    times = NotebookTimes(limit=2.0)
    times.pytest_runtest_logreport(_report("nb/01-a.ipynb::Cell 0", 1.5))
    session = SimpleNamespace(exitstatus=pytest.ExitCode.OK)
    times.pytest_sessionfinish(session)
    assert session.exitstatus == pytest.ExitCode.OK
    times.pytest_runtest_logreport(_report("nb/01-a.ipynb::Cell 1", 0.75))
    times.pytest_sessionfinish(session)
    assert session.exitstatus == pytest.ExitCode.TESTS_FAILED


def test_nbval_run_reports_the_slowest_notebook_and_fails_over_the_limit(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 6 * 7"), nbformat.v4.new_code_cell("print(x)")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "01-tiny.ipynb")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax", "--nbval-current-env",
         "-p", "tests.nbval_timing", "--nb-time-limit=0.01", "01-tiny.ipynb"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert res.returncode == 1, res.stdout + res.stderr
    assert "notebook execution times (limit 0.01 s each)" in res.stdout
    assert "slowest: 01-tiny.ipynb in" in res.stdout
    assert "FAILED 01-tiny.ipynb:" in res.stdout and "over the limit of 0.01 s" in res.stdout
