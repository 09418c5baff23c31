"""A pytest plugin for the unit-test run: where its time goes, per test file.

``make unit`` loads it (``-p tests.file_timing``). A file's time is the sum of its tests' setup, call and teardown
phases as pytest measures them (what ``--durations`` reports per test), so nothing runs twice to time it. Under
xdist every worker's reports reach the controller, which adds them up; with two workers the files' sum is about
twice the run's wall time. The terminal summary lists the slowest files (``--file-times N``, default 15; 0 turns
it off) and what all files took together.
"""

from __future__ import annotations

from collections import defaultdict

import pytest

DEFAULT_SHOWN = 15


def pytest_addoption(parser):
    parser.getgroup("terminal reporting").addoption(
        "--file-times", type=int, default=DEFAULT_SHOWN, metavar="N",
        help=f"list the N test files that took longest, with their seconds (default {DEFAULT_SHOWN}; 0: none)",
    )


def pytest_configure(config):
    shown = config.getoption("file_times")
    if shown < 0:
        raise pytest.UsageError(f"--file-times: expected how many files to list (0: none), got {shown}")
    # only in the controller: xdist sends every worker's reports there, so nothing is counted twice
    if not hasattr(config, "workerinput") and shown > 0:
        config.pluginmanager.register(FileTimes(shown), "lnedu-file-times")


class FileTimes:
    """Adds up the duration of every reported phase per test file."""

    def __init__(self, shown: int = DEFAULT_SHOWN):
        if shown < 1:
            raise ValueError(f"shown: expected a positive number of files to list, got {shown}")
        self.shown = shown
        self.seconds: dict[str, float] = defaultdict(float)
        self.tests: dict[str, set] = defaultdict(set)

    def pytest_runtest_logreport(self, report):
        path = report.nodeid.split("::", 1)[0]
        self.seconds[path] += report.duration
        self.tests[path].add(report.nodeid)

    def slowest_first(self) -> list[tuple[str, float]]:
        return sorted(self.seconds.items(), key=lambda t: (-t[1], t[0]))

    def lines(self) -> list[str]:
        """The summary's lines: the slowest files (seconds, share of the total, tests), then the total."""
        total = sum(self.seconds.values())
        out = [f"{s:7.1f} s  {s / total if total else 0.0:4.0%}  {len(self.tests[path]):4d} tests  {path}"
               for path, s in self.slowest_first()[: self.shown]]
        out.append(f"{len(self.seconds)} files, {sum(map(len, self.tests.values()))} tests: {total:.1f} s in all "
                   "(summed over the workers)")
        return out

    def pytest_terminal_summary(self, terminalreporter):
        if not self.seconds:
            return
        shown = min(self.shown, len(self.seconds))
        terminalreporter.section(f"the {shown} slowest test files (setup + call + teardown of their tests)")
        for line in self.lines():
            terminalreporter.write_line(line)
