"""A pytest plugin for the nbval run: how long each notebook took, and a limit on it.

``make nbval`` loads it (``-p tests.nbval_timing``) while nbval executes every notebook, so the times come
for free: no notebook is executed a second time. A notebook's time is the sum of its cells' setup, call and
teardown phases, kernel start and stop included. Under xdist, ``--dist loadscope`` (which nbval needs)
gives a whole notebook to one worker, so the sum is the notebook's wall time while the other workers are
busy too: the time on a shared 2-core machine. The terminal summary lists every notebook, slowest first; a
notebook over ``--nb-time-limit`` seconds (default 120, or ``$LNEDU_NB_TIME_LIMIT``) fails the run.
"""

from __future__ import annotations

import os
from collections import defaultdict

import pytest

DEFAULT_LIMIT_S = 120.0


def pytest_addoption(parser):
    parser.getgroup("nbval").addoption(
        "--nb-time-limit", type=float, default=float(os.environ.get("LNEDU_NB_TIME_LIMIT", DEFAULT_LIMIT_S)),
        metavar="SECONDS", help=f"fail when one notebook takes longer than this (default {DEFAULT_LIMIT_S:g} s)",
    )


def pytest_configure(config):
    # only in the controller: xdist sends every worker's reports there, so nothing is counted twice
    if not hasattr(config, "workerinput"):
        config.pluginmanager.register(NotebookTimes(config.getoption("nb_time_limit")), "lnedu-notebook-times")


class NotebookTimes:
    """Adds up the duration of every reported phase per notebook file."""

    def __init__(self, limit: float):
        self.limit = limit
        self.seconds: dict[str, float] = defaultdict(float)

    def over_limit(self) -> list[tuple[str, float]]:
        """The notebooks slower than the limit, slowest first."""
        return [(nb, s) for nb, s in self.slowest_first() if s > self.limit]

    def slowest_first(self) -> list[tuple[str, float]]:
        return sorted(self.seconds.items(), key=lambda t: (-t[1], t[0]))

    def pytest_runtest_logreport(self, report):
        path = report.nodeid.split("::", 1)[0]
        if path.endswith(".ipynb"):
            self.seconds[path] += report.duration

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session):
        if self.over_limit() and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter):
        if not self.seconds:
            return
        tr = terminalreporter
        tr.section(f"notebook execution times (limit {self.limit:g} s each)")
        for nb, s in self.slowest_first():
            tr.write_line(f"{s:7.1f} s  {nb}{'  OVER THE LIMIT' if s > self.limit else ''}")
        (slowest, s), total = self.slowest_first()[0], sum(self.seconds.values())
        tr.write_line(f"slowest: {slowest} in {s:.1f} s; {len(self.seconds)} notebooks in {total:.1f} s")
        for nb, s in self.over_limit():
            tr.write_line(f"FAILED {nb}: {s:.1f} s is over the limit of {self.limit:g} s per notebook", red=True)
