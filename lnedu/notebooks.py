"""Run the notebooks headless: find them, execute one, or re-execute them in place.

``python -m lnedu notebooks --execute-in-place`` refreshes the stored outputs after a library change; every
notebook is written atomically (:mod:`lnedu._io`), so an interrupted run never leaves a half-written one.
An executed notebook is stored clean (:func:`clean_notebook`): no execution timestamps, widget model ids
numbered in order, so executing an unchanged notebook again writes the same bytes. Kernels talk to the runner
over local IPC sockets (no TCP port, and so no "running over TCP without encryption" warning per notebook).
This module sits below the experiments and imports none of them; :mod:`lnedu.reproduce`, above them, uses it
to execute copies of the notebooks into an HTML report. Executing needs the ``[lab]`` extra
(``pip install "lnedu[lab]"``): without it a clear error says so.
"""

from __future__ import annotations

import importlib.util
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ._io import atomic_write_text

__all__ = ["NotebookRun", "find_notebooks", "execute_notebook", "execute_in_place", "require_lab", "check_timeout",
           "clean_notebook", "write_notebook", "INSTALL_TAG", "is_install_cell"]


#: the tag of the Colab install cell (:mod:`lnedu.colab` writes it): a cell that readers of the code skip
INSTALL_TAG = "lnedu-install"


def is_install_cell(cell) -> bool:
    """Whether ``cell`` is the Colab install cell (found by its tag), which a reader of a notebook's code skips."""
    return cell.get("cell_type") == "code" and INSTALL_TAG in cell.get("metadata", {}).get("tags", [])


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


# per-cell metadata that changes on every run and says nothing about the notebook: nbclient's timestamps
VOLATILE_CELL_METADATA = ("execution",)
_WIDGET_ID = re.compile(r"(?<![0-9a-f])[0-9a-f]{32}(?![0-9a-f])")
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def clean_notebook(nb):
    """The executed notebook ``nb`` without what changes from run to run, as a new notebook node.

    Removes each cell's ``metadata.execution`` (nbclient's timestamps), joins adjacent pieces of one stream
    (how a cell's printing was cut into messages depends on when the kernel flushed), and renames the widget
    models (random UUIDs) ``000...1``, ``000...2``, ... in the order the kernel created them, in the stored
    widget state and in every output that shows one. Everything else is kept as it ran.
    """
    import nbformat

    nb = nbformat.from_dict(nb)  # a copy
    for cell in nb.cells:
        for key in VOLATILE_CELL_METADATA:
            cell.metadata.pop(key, None)
        if cell.get("outputs"):
            cell.outputs = _merged_streams(cell.outputs)
    state = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    if not state:
        return nb
    names = {old: f"{i:032x}" for i, old in enumerate(_widget_order(nb, state), start=1)}
    text = _WIDGET_ID.sub(lambda m: names.get(m.group(0), m.group(0)), nbformat.writes(nb))
    return nbformat.reads(text, as_version=4)


def _merged_streams(outputs) -> list:
    """``outputs`` with each run of adjacent ``stream`` outputs of one name (stdout, stderr) joined into one."""
    merged = []
    for out in outputs:
        prev = merged[-1] if merged else None
        if (out.get("output_type") == "stream" and prev is not None and prev.get("output_type") == "stream"
                and prev.get("name") == out.get("name")):
            prev["text"] = _text(prev["text"]) + _text(out["text"])
        else:
            merged.append(out)
    return merged


def _text(text) -> str:
    return "".join(text) if isinstance(text, list) else text


def _widget_order(nb, state) -> list[str]:
    """The widget model ids in an order that depends on the notebook only: as the outputs show them, depth
    first through the models they refer to, then any model no output reaches (by kind and content)."""
    import json

    order, seen = [], set()

    def visit(model_id):
        if model_id in state and model_id not in seen:
            seen.add(model_id)
            order.append(model_id)
            for ref in re.findall(r"IPY_MODEL_([0-9a-f]{32})", json.dumps(state[model_id], sort_keys=True)):
                visit(ref)

    for cell in nb.cells:
        for out in cell.get("outputs", []):
            view = out.get("data", {}).get("application/vnd.jupyter.widget-view+json")
            if view:
                visit(view.get("model_id"))
    rest = [m for m in state if m not in seen]
    rest.sort(key=lambda m: (state[m].get("model_name", ""), _WIDGET_ID.sub("", json.dumps(state[m], sort_keys=True))))
    return order + rest


def write_notebook(path, nb) -> None:
    """Store ``nb`` at ``path`` atomically, clean (:func:`clean_notebook`), in nbformat's own layout."""
    import nbformat

    atomic_write_text(path, nbformat.writes(clean_notebook(nb)))


def _ipc_config(folder: str):
    """Kernel settings: ZeroMQ over IPC sockets in ``folder`` instead of TCP on localhost."""
    from traitlets.config import Config

    cfg = Config()
    cfg.KernelManager.transport = "ipc"
    cfg.KernelManager.ip = os.path.join(folder, "kernel")
    return cfg


def execute_notebook(path, *, timeout: int = 900, env: dict | None = None):
    """Execute the notebook at ``path`` (in its own folder) and return ``(notebook, NotebookRun)``.

    An error inside the notebook does not raise: the run is marked failed and the partial notebook returned.
    ``env`` adds environment variables for the kernel. The notebook returned is clean (:func:`clean_notebook`).
    """
    check_timeout(timeout)
    require_lab("executing notebooks", "nbclient", "nbformat")
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    ok, error = True, ""
    # a short folder of our own: IPC socket paths must stay under ~100 characters
    with tempfile.TemporaryDirectory(prefix="lnedu-kernel-") as sockets:
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(path.parent)}}, config=_ipc_config(sockets))
        try:
            client.execute(env={**os.environ, **(env or {})})
        except (CellExecutionError, CellTimeoutError, DeadKernelError) as exc:  # a timeout or a dead kernel, too
            ok, error = False, str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    return clean_notebook(nb), NotebookRun(path, _title(nb), time.perf_counter() - start, ok, error)


def execute_in_place(paths, *, timeout: int = 900, progress: bool = True) -> list[NotebookRun]:
    """Re-execute notebooks and store them with their new outputs (only those that ran without error).

    One progress bar, labelled with the notebook being executed.
    """
    check_timeout(timeout)
    require_lab("executing notebooks", "nbclient", "nbformat")
    from tqdm.auto import tqdm

    runs = []
    paths = list(paths)
    with tqdm(total=len(paths), desc="notebooks", unit="nb", disable=not progress) as bar:
        for path in paths:
            bar.set_postfix_str(Path(path).name)
            nb, run = execute_notebook(path, timeout=timeout)
            if run.ok:
                write_notebook(path, nb)
            runs.append(run)
            bar.update()
    return runs


def __getattr__(name):
    """``lnedu.notebooks.reproduce`` (it moved to :mod:`lnedu.reproduce`) for one release."""
    if name == "reproduce":
        from .reproduce import reproduce

        return reproduce
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
