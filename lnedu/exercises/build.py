"""Exercise sheets generated from the teaching notebooks: ``python -m lnedu exercises build``.

The teaching notebooks in ``notebooks/`` are the teacher versions: their exercises are solved, and the solutions
are marked the way nbgrader marks them, so that a course that grades with nbgrader can take them as they are.
An exercise is two cells:

* a **solution cell**, with the cell metadata ``{"nbgrader": {"solution": true, "grade": false, "locked": false,
  "task": false, "grade_id": ID, "schema_version": 3}}``. The solution sits between a ``### BEGIN SOLUTION`` and a
  ``### END SOLUTION`` line; what is outside (the ``def`` line, the docstring, the hint as ``# Hint: ...``
  comment lines just above ``### BEGIN SOLUTION``) stays in the student version, in this builder's sheets and in
  nbgrader's ``generate_assignment`` alike. (Older notebooks put ``### HINT: ...`` lines *inside* the region;
  :func:`strip_solutions` still turns them into the stub's hint, but nbgrader drops every line of the region,
  so :func:`build` refuses them.) A pen-and-paper question is a solution cell too: ``answer = None`` above the
  region, the worked answer inside;
* a **checker cell** right after it, nbgrader's autograded-test cell (``"grade": true, "solution": false,
  "locked": true, "points": 1``), calling a checker such as
  ``exercises.check_layer_norm_forward(my_layer_norm)``.

The **student version** ``notebooks/exercises/NN-name-exercises.ipynb`` is the teaching notebook with every
solution region replaced by nbgrader's stub (``# YOUR CODE HERE`` and ``raise NotImplementedError(...)``, here
with the hint and the exercise's id), every output cleared, and a note on how to work with it. It is
deterministic: the cell ids are the teaching notebook's, metadata that varies between runs (execution times,
widget state, the Python version) is dropped, and the JSON is written with sorted keys, so that building twice
gives the same bytes, and the files checked in can be compared with a fresh build (``--check``).

The **teacher version** (``--teacher --out DIR``) is the teaching notebook itself, with its outputs and
solutions, under the name ``NN-name-solutions.ipynb`` and with a note saying what it is.
"""

from __future__ import annotations

import copy
import os
import re
import textwrap
from pathlib import Path

from ..notebooks import atomic_write_text, find_notebooks

__all__ = [
    "BEGIN_SOLUTION",
    "END_SOLUTION",
    "HINT",
    "is_solution_cell",
    "is_checker_cell",
    "strip_solutions",
    "student_version",
    "teacher_version",
    "exercise_notebooks",
    "sheets_folder",
    "build",
    "check",
]

BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"
HINT = "### HINT:"
STUDENT_SUFFIX = "-exercises.ipynb"
TEACHER_SUFFIX = "-solutions.ipynb"

_NOTE_ID = "lnedu-exercise-sheet"
_LANGUAGE_INFO_KEYS = ("codemirror_mode", "file_extension", "mimetype", "name", "nbconvert_exporter", "pygments_lexer")
_CELL_METADATA_KEYS = ("nbgrader", "tags")
_SIBLING_LINK = re.compile(r"\]\((\d\d-[\w-]+\.ipynb)")


def _nbgrader(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def is_solution_cell(cell) -> bool:
    """Whether ``cell`` is marked as an nbgrader solution cell."""
    return bool(_nbgrader(cell).get("solution", False))


def is_checker_cell(cell) -> bool:
    """Whether ``cell`` is marked as an nbgrader autograded test cell (a checker call)."""
    meta = _nbgrader(cell)
    return bool(meta.get("grade", False)) and not meta.get("solution", False)


def _stub(cell_type: str, indent: str, hint: str, grade_id: str) -> list:
    if cell_type == "markdown":
        return ["YOUR ANSWER HERE" + (f" (Hint: {hint})" if hint else "")]
    lines = [f"{indent}# YOUR CODE HERE"]
    if hint:
        lines += textwrap.wrap(f"Hint: {hint}", 100 - len(indent), initial_indent=f"{indent}# ",
                               subsequent_indent=f"{indent}#   ", break_long_words=False, break_on_hyphens=False)
    lines.append(f'{indent}raise NotImplementedError("exercise {grade_id}: replace this line with your code")')
    return lines


def strip_solutions(source: str, *, cell_type: str = "code", grade_id: str = "exercise", where: str = "cell") -> str:
    """``source`` with every ``### BEGIN SOLUTION`` ... ``### END SOLUTION`` region replaced by a stub.

    The stub keeps the indentation of the ``BEGIN`` line and carries the region's ``### HINT:`` lines. A cell
    without delimiters is replaced whole, as nbgrader does. ``where`` names the cell in error messages.
    """
    lines = source.splitlines()
    if not any(BEGIN_SOLUTION in line for line in lines):
        return "\n".join(_stub(cell_type, "", "", grade_id))
    out, region = [], None
    for number, line in enumerate(lines, 1):
        if BEGIN_SOLUTION in line:
            if region is not None:
                raise ValueError(f"{where}: expected {END_SOLUTION!r} before the next {BEGIN_SOLUTION!r}, "
                                 f"got a second one at line {number}")
            region = (line[: len(line) - len(line.lstrip())], [])
        elif END_SOLUTION in line:
            if region is None:
                raise ValueError(f"{where}: expected {BEGIN_SOLUTION!r} before {END_SOLUTION!r}, got none "
                                 f"(line {number})")
            indent, hints = region
            out += _stub(cell_type, indent, " ".join(hints), grade_id)
            region = None
        elif region is not None:
            stripped = line.strip()
            if stripped.startswith(HINT):
                region[1].append(stripped[len(HINT):].strip())
        else:
            out.append(line)
    if region is not None:
        raise ValueError(f"{where}: expected {END_SOLUTION!r} after {BEGIN_SOLUTION!r}, got the end of the cell")
    return "\n".join(out)


def _check_marks(nb, name: str) -> None:
    """Check the exercise marks of ``nb``: every solution cell has a unique grade_id and, if it holds code, a
    checker cell right after it."""
    seen = set()
    for k, cell in enumerate(nb.cells):
        if not is_solution_cell(cell):
            continue
        grade_id = _nbgrader(cell).get("grade_id")
        if not grade_id:
            raise ValueError(f"{name}: cell {k}: expected a solution cell with an nbgrader grade_id, got none")
        if grade_id in seen:
            raise ValueError(f"{name}: cell {k}: expected a unique grade_id, got {grade_id!r} twice")
        seen.add(grade_id)
        region = cell.source.partition(BEGIN_SOLUTION)[2].partition(END_SOLUTION)[0]
        if any(line.strip().startswith(HINT) for line in region.splitlines()):
            raise ValueError(f"{name}: cell {k} ({grade_id}): expected the hint above {BEGIN_SOLUTION!r} as "
                             f"'# Hint: ...' comment lines, got {HINT!r} lines inside the solution region (nbgrader's "
                             "generate_assignment drops every line of the region, hints included)")
        if cell.cell_type == "code" and (k + 1 >= len(nb.cells) or not is_checker_cell(nb.cells[k + 1])):
            raise ValueError(f"{name}: cell {k} ({grade_id}): expected a checker cell (nbgrader grade: true) right "
                             "after the solution cell, got none")


def _retitle(nb, suffix: str) -> None:
    first = nb.cells[0]
    if first.cell_type != "markdown" or not first.source.startswith("# "):
        raise ValueError("notebook: expected a markdown title '# NN. Title' as the first cell, got something else")
    title, _, rest = first.source.partition("\n")
    first.source = f"{title}: {suffix}" + (f"\n{rest}" if rest else "")


def _note(text: str):
    import nbformat

    cell = nbformat.v4.new_markdown_cell(text)
    cell.id = _NOTE_ID
    return cell


def _relink(markdown: str, sheets) -> str:
    """Links to sibling notebooks, as seen from the sheets' folder: to the sheet where there is one, else up."""

    def target(match):
        name = match.group(1)
        return f"]({Path(name).stem}{STUDENT_SUFFIX}" if name in sheets else f"](../{name}"

    return _SIBLING_LINK.sub(target, markdown)


def student_version(nb, name: str, *, sheets=()):
    """The exercise sheet made from the teaching notebook ``nb`` (file name ``name``): a new notebook.

    ``sheets`` names the teaching notebooks that have sheets too, so that links to them lead to their sheets.
    """
    import nbformat

    _check_marks(nb, name)
    nb = copy.deepcopy(nb)
    for k, cell in enumerate(nb.cells):
        cell.metadata = {key: cell.metadata[key] for key in _CELL_METADATA_KEYS if key in cell.metadata}
        if is_solution_cell(cell):
            cell.source = strip_solutions(cell.source, cell_type=cell.cell_type, where=f"{name}: cell {k}",
                                          grade_id=_nbgrader(cell)["grade_id"])
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        elif cell.cell_type == "markdown":
            cell.source = _relink(cell.source, set(sheets))  # the sheet lives one folder down
    _retitle(nb, "exercises")
    nb.cells.insert(1, _note(
        f"**This is an exercise sheet**, made from the teaching notebook `{name}` by "
        "`python -m lnedu exercises build` (edit the teaching notebook, not this file). Where the teaching "
        "notebook has a solution, this sheet has `# YOUR CODE HERE`, a hint, and a `raise NotImplementedError` "
        "line. Write your code in its place and run the cell, then run the checker cell below it: it tries your "
        "code on random test cases and says in words what is right and what is not. Run the notebook from the "
        "top, in order. (The teaching notebook holds the solutions: try first.)"
    ))
    language = nb.metadata.get("language_info", {})
    nb.metadata = {
        "kernelspec": nb.metadata.get("kernelspec", {}),
        "language_info": {k: language[k] for k in _LANGUAGE_INFO_KEYS if k in language},
        "lnedu": {"made_from": name, "version": "student"},
    }
    nbformat.validate(nb)
    return nb


def teacher_version(nb, name: str):
    """The teacher version of the teaching notebook ``nb``: itself, solutions and outputs included, with a note."""
    import nbformat

    _check_marks(nb, name)
    nb = copy.deepcopy(nb)
    _retitle(nb, "exercises with solutions")
    nb.cells.insert(1, _note(
        f"**Teacher version** of the exercises in `{name}`, made by `python -m lnedu exercises build --teacher`: "
        f"the solutions sit between `{BEGIN_SOLUTION}` and `{END_SOLUTION}` in the cells marked as nbgrader "
        "solution cells, and every checker cell passes. The student version replaces each solution by a stub "
        "and a hint."
    ))
    nb.metadata.setdefault("lnedu", {}).update({"made_from": name, "version": "teacher"})
    nbformat.validate(nb)
    return nb


def exercise_notebooks(notebooks="notebooks") -> list:
    """The numbered notebooks of the folder ``notebooks`` that hold at least one exercise."""
    import nbformat

    return [p for p in find_notebooks(notebooks)
            if any(is_solution_cell(c) for c in nbformat.read(p, as_version=4).cells)]


def _render(path: Path, teacher: bool, sheets=()) -> tuple:
    """``(file name, text)`` of the student or teacher version of the notebook at ``path``."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    made = teacher_version(nb, path.name) if teacher else student_version(nb, path.name, sheets=sheets)
    text = nbformat.writes(made)
    return path.stem + (TEACHER_SUFFIX if teacher else STUDENT_SUFFIX), text if text.endswith("\n") else text + "\n"


def sheets_folder(notebooks="notebooks", out=None) -> Path:
    """Where the student sheets go: ``out``, or by default the ``exercises`` folder inside ``notebooks``."""
    return Path(out) if out is not None else Path(notebooks) / "exercises"


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def build(notebooks="notebooks", out=None, *, teacher: bool = False) -> list:
    """Write the student versions (default: into ``notebooks/exercises``) or, with ``teacher=True``, the teacher
    versions (``out`` required) of every notebook in ``notebooks`` that holds an exercise; return their paths.

    A student build also removes sheets of ``out`` whose teaching notebook no longer has exercises.
    """
    if teacher and out is None:
        raise ValueError("out: expected a folder for the teacher versions (they hold the solutions: keep them "
                         "apart from what students get), got none")
    out = sheets_folder(notebooks, out)
    written = []
    sources = exercise_notebooks(notebooks)
    for path in sources:
        name, text = _render(path, teacher, [p.name for p in sources])
        target = out / name
        if not (target.is_file() and target.read_text(encoding="utf-8") == text):
            atomic_write_text(target, text)
            target.chmod(0o666 & ~_umask())  # the temporary file behind the atomic write was private
        written.append(target)
    if not teacher and out.is_dir():
        for old in sorted(out.glob(f"[0-9][0-9]-*{STUDENT_SUFFIX}")):
            if old not in written:
                old.unlink()
    return written


def check(notebooks="notebooks", out=None) -> list:
    """What differs between the student sheets in ``out`` (default ``notebooks/exercises``) and a fresh build:
    a list of problems in words, empty when the sheets are up to date."""
    out = sheets_folder(notebooks, out)
    problems, expected = [], set()
    sources = exercise_notebooks(notebooks)
    for path in sources:
        name, text = _render(path, False, [p.name for p in sources])
        expected.add(name)
        target = out / name
        if not target.is_file():
            problems.append(f"{target}: missing (made from {path.name})")
        elif target.read_text(encoding="utf-8") != text:
            problems.append(f"{target}: out of date with {path.name}")
    if out.is_dir():
        problems += [f"{p}: no teaching notebook has its exercises any more"
                     for p in sorted(out.glob(f"[0-9][0-9]-*{STUDENT_SUFFIX}")) if p.name not in expected]
    return problems
