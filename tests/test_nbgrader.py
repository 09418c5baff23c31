"""The course under real nbgrader: ``generate_assignment`` from the teaching notebooks, then ``autograde``.

nbgrader gives an autograded cell its points when the cell runs without an error. The checkers therefore raise
``AssertionError`` under nbgrader (it sets ``NBGRADER_EXECUTION``) unless the exercise passed. Three
submissions are graded in a temporary course folder with its own gradebook:

* ``untouched``: the released sheets as they are: 0 points;
* ``solved``: the teaching notebooks (the solutions): full points;
* ``slip``: notebook 01 with one classic slip in exercise 1, the one-pass variance that section 5 warns
  against: that cell 0, every other cell of the notebook full points.

The released sheets keep every hint (nbgrader drops the lines between ``### BEGIN SOLUTION`` and ``### END
SOLUTION``, so the hints sit above them). How a teacher runs this is in the README, "For teachers".
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from lnedu.exercises import build as B

pytest.importorskip("nbgrader", reason="nbgrader is in the [test] extra: pip install -e '.[test]'")
pytestmark = pytest.mark.slow  # nine notebooks executed by nbgrader, about 80 s on one core

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
ASSIGNMENT = "ps1"
ONE_PASS = ("    mu = x.mean(axis=-1, keepdims=True)\n"
            "    var = (x * x).mean(axis=-1, keepdims=True) - mu**2   # one pass: E[x^2] - E[x]^2\n"
            "    return gain * (x - mu) / np.sqrt(var + eps) + bias\n")


def _nbgrader(course: Path, *args: str) -> None:
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")  # nbgrader calls `alembic`
    env.pop("NBGRADER_EXECUTION", None)
    run = subprocess.run([sys.executable, "-m", "nbgrader", *args, "--force"], cwd=course, env=env,
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"


def _slip(source: Path, target: Path) -> None:
    """Notebook 01 with exercise 1 solved by the one-pass variance."""
    nb = nbformat.read(source, as_version=4)
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "ln-forward")
    head, rest = cell.source.split(B.BEGIN_SOLUTION)
    cell.source = head + B.BEGIN_SOLUTION + "\n" + ONE_PASS + rest[rest.index("    " + B.END_SOLUTION):]
    nbformat.write(nb, target)


def _course(tmp_path_factory):
    """A course folder: generated assignment, three submissions autograded; returns (folder, scores), where
    scores[student][notebook][grade_id] = (score, max_score)."""
    course = tmp_path_factory.mktemp("course")
    (course / "nbgrader_config.py").write_text(
        'c = get_config()\nc.CourseDirectory.course_id = "lnedu"\nc.ExecutePreprocessor.timeout = 600\n')
    sources = B.exercise_notebooks(NOTEBOOKS)
    assert len(sources) >= 4
    (course / "source" / ASSIGNMENT).mkdir(parents=True)
    for path in sources:
        shutil.copy(path, course / "source" / ASSIGNMENT / path.name)
    _nbgrader(course, "generate_assignment", ASSIGNMENT)
    released = course / "release" / ASSIGNMENT
    for student, folder in (("untouched", released), ("solved", course / "source" / ASSIGNMENT)):
        shutil.copytree(folder, course / "submitted" / student / ASSIGNMENT)
    slip = course / "submitted" / "slip" / ASSIGNMENT
    slip.mkdir(parents=True)
    _slip(sources[0], slip / sources[0].name)
    _nbgrader(course, "autograde", ASSIGNMENT, "--create")

    from nbgrader.api import Gradebook

    scores = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for student in ("untouched", "solved", "slip"):
            for nb in gb.find_submission(ASSIGNMENT, student).notebooks:
                scores.setdefault(student, {})[nb.name] = {g.name: (g.score, g.max_score) for g in nb.grades}
    return course, scores


def _released_sheets_keep_the_hints_and_hide_the_solutions(course):
    folder, _ = course
    for path in B.exercise_notebooks(NOTEBOOKS):
        teacher = nbformat.read(path, as_version=4)
        released = nbformat.read(folder / "release" / ASSIGNMENT / path.name, as_version=4)
        pairs = [(t, r) for t, r in zip(teacher.cells, released.cells) if B.is_solution_cell(t)]
        assert pairs
        for t, r in pairs:
            assert B.BEGIN_SOLUTION not in r.source and "raise NotImplementedError" in r.source
            hints = [line.strip() for line in t.source.splitlines() if line.strip().startswith("# Hint:")]
            assert hints, f"{path.name}: {t.id} has no hint"
            assert all(h in r.source for h in hints), f"{path.name}: {t.id}: nbgrader dropped the hint"


def _untouched_sheets_score_zero(course):
    _, scores = course
    graded = scores["untouched"]
    assert len(graded) >= 4
    for notebook, cells in graded.items():
        assert cells, notebook
        assert all(score == 0 for score, _ in cells.values()), f"{notebook}: {cells}"


def _solutions_score_full_points(course):
    _, scores = course
    for notebook, cells in scores["solved"].items():
        assert cells and all(score == top > 0 for score, top in cells.values()), f"{notebook}: {cells}"


def _one_classic_slip_costs_that_cell_only(course):
    _, scores = course
    cells = scores["slip"]["01-layer-norm-from-scratch"]
    assert cells["ln-forward-check"][0] == 0
    others = {k: v for k, v in cells.items() if k != "ln-forward-check"}
    assert others and all(score == top for score, top in others.values()), others


def test_the_course_through_generate_assignment_and_autograde(tmp_path_factory):
    """One test, one course: its four checks share the course that took a minute to grade (a module fixture
    would be built again by each xdist worker that draws one of several tests; pytest-xdist's ``loadgroup``,
    which would keep them on one worker, does not group under pytest 9)."""
    course = _course(tmp_path_factory)
    _released_sheets_keep_the_hints_and_hide_the_solutions(course)
    _untouched_sheets_score_zero(course)
    _solutions_score_full_points(course)
    _one_classic_slip_costs_that_cell_only(course)
