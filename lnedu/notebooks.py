"""Run the notebooks headless: find them, execute one, or re-execute them in place.

``python -m lnedu notebooks --execute-in-place`` refreshes the stored outputs after a library change; every
notebook is written atomically (:mod:`lnedu._io`), so an interrupted run never leaves a half-written one.
This module sits below the experiments and imports none of them; :mod:`lnedu.reproduce`, above them, uses it
to execute copies of the notebooks into an HTML report. Executing needs the ``[lab]`` extra
(``pip install "lnedu[lab]"``): without it a clear error says so.
"""

from __future__ import annotations

import importlib.util
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from ._io import atomic_write_text

__all__ = ["NotebookRun", "find_notebooks", "execute_notebook", "execute_in_place", "require_lab", "check_timeout"]

_NAME = re.compile(r"^(\d\d)-[\w-]+\.ipynb$")


def require_lab(what: str, *modules: str) -> None:
    """Raise a ``RuntimeError`` saying which extra to install when one of ``modules`` is missing."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise RuntimeError(f"{what}: needs the [lab] extra ({', '.join(missing)} not installed); install it with "
                           "`pip install \"lnedu[lab]\"`")


def check_timeout(timeout) -> None:
    """``timeout``: seconds allowed per cell, a positive integer."""
    if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < 1:
        raise ValueError(f"timeout: expected a positive number of seconds per cell, got {timeout!r}")


def find_notebooks(folder) -> list[Path]:
    """The numbered notebooks (``NN-name.ipynb``) of ``folder``, in reading order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"folder: expected a folder of notebooks, got {str(folder)!r}, which does not exist")
    return sorted(p for p in folder.glob("*.ipynb") if _NAME.match(p.name))


@dataclass
class NotebookRun:
    """What happened when one notebook ran."""

    path: Path
    title: str
    seconds: float
    ok: bool
    error: str = ""


def _title(nb) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return ""


def execute_notebook(path, *, timeout: int = 900, env: dict | None = None):
    """Execute the notebook at ``path`` (in its own folder) and return ``(notebook, NotebookRun)``.

    An error inside the notebook does not raise: the run is marked failed and the partial notebook returned.
    ``env`` adds environment variables for the kernel.
    """
    check_timeout(timeout)
    require_lab("executing notebooks", "nbclient", "nbformat")
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    start = time.perf_counter()
    ok, error = True, ""
    try:
        client.execute(env={**os.environ, **(env or {})})
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as exc:  # a timeout or a dead kernel, too
        ok, error = False, str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    return nb, NotebookRun(path, _title(nb), time.perf_counter() - start, ok, error)


def execute_in_place(paths, *, timeout: int = 900, progress: bool = True) -> list[NotebookRun]:
    """Re-execute notebooks and store them with their new outputs (only those that ran without error)."""
    check_timeout(timeout)
    require_lab("executing notebooks", "nbclient", "nbformat")
    import nbformat
    from tqdm.auto import tqdm

    runs = []
    for path in tqdm(list(paths), desc="notebooks", disable=not progress):
        nb, run = execute_notebook(path, timeout=timeout)
        if run.ok:
            atomic_write_text(path, nbformat.writes(nb))
        runs.append(run)
    return runs


def __getattr__(name):
    """``lnedu.notebooks.reproduce`` (it moved to :mod:`lnedu.reproduce`) for one release."""
    if name == "reproduce":
        from .reproduce import reproduce

        return reproduce
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
