"""How a checker's verdict becomes a grade: friendly feedback in a notebook, an ``AssertionError`` under a grader.

nbgrader scores an autograded cell by whether it raises: a cell that runs without an error gets its points.
A checker that only *returns* "not yet right" would therefore give full marks to any sheet, even an untouched
one. So every checker of :mod:`lnedu.exercises` returns its :class:`~.checkers.CheckResult` in interactive use,
and raises ``AssertionError(feedback)`` for a wrong or unattempted answer when nbgrader runs the notebook (its
autograder and validator set the environment variable ``NBGRADER_EXECUTION``). The same can be asked for
explicitly, in any grader, with ``check_...(...).assert_passed()``, or by setting ``LNEDU_GRADING=1``.
"""

from __future__ import annotations

import os

__all__ = ["GRADER_VARIABLES", "under_grader", "graded"]

GRADER_VARIABLES = ("NBGRADER_EXECUTION", "LNEDU_GRADING")
"""Environment variables that switch the checkers to grading: nbgrader's own (set to ``autograde`` or
``validate`` while it executes a notebook), and lnedu's, for other graders (any value but ``""`` or ``0``)."""


def under_grader() -> bool:
    """Whether a grader runs this notebook: one of :data:`GRADER_VARIABLES` is set (not to ``""`` or ``"0"``)."""
    return any(os.environ.get(name, "") not in ("", "0") for name in GRADER_VARIABLES)


def graded(result):
    """``result`` itself, unless a grader runs and it did not pass: then ``AssertionError`` with its feedback."""
    if under_grader() and not result.passed:
        raise AssertionError("\n" + str(result))
    return result
