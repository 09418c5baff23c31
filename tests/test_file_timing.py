"""Where the unit-test run's time goes, per test file (the plugin ``tests/file_timing.py`` that ``make unit`` loads)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.file_timing import FileTimes, pytest_configure

ROOT = Path(__file__).resolve().parents[1]


def _report(nodeid, duration):
    return SimpleNamespace(nodeid=nodeid, duration=duration)


def test_times_add_up_per_file_over_every_phase_and_count_each_test_once(rng):
    times = FileTimes(shown=2)
    expected, tests = {}, {}
    for path in ("tests/test_a.py", "tests/sub/test_b.py", "tests/test_c.py"):
        n = int(rng.integers(1, 5))
        total = 0.0
        for i in range(n):
            for _phase in ("setup", "call", "teardown"):  # three reports per test, one test
                d = float(rng.uniform(0.0, 3.0))
                times.pytest_runtest_logreport(_report(f"{path}::test_{i}[x{i}]", d))
                total += d
        expected[path], tests[path] = total, n
    assert times.seconds.keys() == expected.keys()
    for path, s in expected.items():
        assert times.seconds[path] == pytest.approx(s, rel=1e-12)
        assert len(times.tests[path]) == tests[path]
    order = sorted(expected, key=lambda p: -expected[p])
    assert [p for p, _ in times.slowest_first()] == order
    lines = times.lines()
    assert len(lines) == 3  # the two slowest, then the total
    grand = sum(expected.values())
    for line, path in zip(lines[:-1], order):
        seconds, share, count, name = re.fullmatch(r"\s*([\d.]+) s\s+(\d+)%\s+(\d+) tests  (\S+)", line).groups()
        assert (name, int(count)) == (path, tests[path])
        assert float(seconds) == pytest.approx(expected[path], abs=0.051)
        assert int(share) == round(100 * expected[path] / grand)
    assert lines[-1] == f"3 files, {sum(tests.values())} tests: {grand:.1f} s in all (summed over the workers)"
    with pytest.raises(ValueError, match="shown: expected a positive number of files to list, got 0"):
        FileTimes(shown=0)


def test_a_run_on_two_workers_lists_its_files_once(tmp_path):
    """Under xdist the controller alone adds up (the workers' reports reach it): three tests in two files are three
    tests, not six; --file-times 1 lists one file."""
    (tmp_path / "test_one.py").write_text("def test_a():\n    assert sum(range(10)) == 45\n\n"
                                          "def test_b():\n    assert max(3, 4) == 4\n")
    (tmp_path / "test_two.py").write_text("def test_c():\n    assert 'ab'.upper() == 'AB'\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:nbval", "-n", "2",
         "-p", "tests.file_timing", "--file-times", "1", "test_one.py", "test_two.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "the 1 slowest test files (setup + call + teardown of their tests)" in res.stdout
    listed = re.findall(r"^\s*[\d.]+ s\s+\d+%\s+(\d) tests  (test_\w+\.py)$", res.stdout, re.M)
    assert len(listed) == 1 and listed[0] in {("2", "test_one.py"), ("1", "test_two.py")}, res.stdout
    assert re.search(r"^2 files, 3 tests: [\d.]+ s in all \(summed over the workers\)$", res.stdout, re.M), res.stdout


def test_a_negative_count_of_files_is_refused_and_zero_lists_none():
    registered = []
    config = SimpleNamespace(getoption=lambda name: -2,
                             pluginmanager=SimpleNamespace(register=lambda p, name: registered.append(name)))
    with pytest.raises(pytest.UsageError, match=r"--file-times: expected how many files to list \(0: none\), got -2"):
        pytest_configure(config)
    config.getoption = lambda name: 0
    pytest_configure(config)
    assert registered == []
    config.getoption = lambda name: 3
    pytest_configure(config)
    assert registered == ["lnedu-file-times"]
