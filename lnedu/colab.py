"""Opening the notebooks on Google Colab: the badge, the install cell, and the GPU runtime.

Colab starts from a bare Python with NumPy, matplotlib, ipywidgets and (on a GPU runtime) CuPy, but no lnedu,
and with the one notebook alone in ``/content``. So every teaching notebook starts with one guarded code cell
(:data:`INSTALL_TAG`): where ``import lnedu`` already works (JupyterLab on a checkout, Binder) it does nothing;
where it does not (Colab) it clones the release tag from GitHub into ``lnedu-release/``, pip-installs it, and
works from ``lnedu-release/notebooks``, so that what a notebook reads beside it (``../benchmarks``, the other
notebooks) is there as in a checkout. ``LNEDU_SOURCE`` and ``LNEDU_REF`` name another repository and tag (a
local copy in the tests). The GPU notebooks ask Colab for a GPU runtime in their metadata and use the CuPy
Colab ships (the install is plain ``lnedu``, without the ``[gpu]`` extra, so pip leaves Colab's CuPy alone).

``python -m lnedu.colab NOTEBOOK ...`` adds or updates the cell (and the GPU metadata) in place; ``--check``
only says which notebooks would change. Both are idempotent: a second run changes nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import __version__
from .notebooks import INSTALL_TAG, is_install_cell  # the cell's tag: how a later run finds it again

__all__ = ["REPO", "TAG", "GPU_NOTEBOOKS", "INSTALL_TAG", "RELEASE_FOLDER", "colab_url", "colab_badge",
           "is_install_cell", "install_source", "ensure_colab_cell", "update_notebook", "main"]

# The GitHub repository that holds the release (the README says to fill it in, as for Binder's badge) and the
# release tag the notebooks install from: `git tag v0.1.0 && git push --tags` makes it.
REPO = "OWNER/REPO"
TAG = f"v{__version__}"
GPU_NOTEBOOKS = ("14-gpu.ipynb",)
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"


def colab_url(name: str, *, repo: str = REPO, ref: str = TAG, folder: str = "notebooks") -> str:
    """The address that opens ``folder/name`` of ``repo`` at ``ref`` on Colab."""
    if not name.endswith(".ipynb"):
        raise ValueError(f"name: expected a notebook file name (NN-name.ipynb), got {name!r}")
    return f"https://colab.research.google.com/github/{repo}/blob/{ref}/{folder}/{name}"


def colab_badge(name: str, *, image: bool = True, **where) -> str:
    """A Markdown "Open in Colab" badge for notebook ``name``: Colab's badge image (for the README), or with
    ``image=False`` a plain link (for pages that must load nothing from the web, like nb00 in the report)."""
    url = colab_url(name, **where)
    return f"[![Open In Colab]({BADGE_IMAGE})]({url})" if image else f"[Open in Colab]({url})"


RELEASE_FOLDER = "lnedu-release"


def install_source(*, repo: str = REPO, ref: str = TAG) -> str:
    """The code of the install cell: fetch and install lnedu only where ``import lnedu`` would fail."""
    return (
        "# Colab: fetch and install lnedu where it is missing (this does nothing in JupyterLab or on Binder)\n"
        "import importlib.util\n"
        "import os\n"
        "import subprocess\n"
        "import sys\n"
        "\n"
        f'RELEASE = "{RELEASE_FOLDER}"  # the release, cloned beside this notebook\n'
        'if importlib.util.find_spec("lnedu") is None:\n'
        "    if not os.path.isdir(RELEASE):\n"
        f'        source = os.environ.get("LNEDU_SOURCE", "https://github.com/{repo}")\n'
        f'        ref = os.environ.get("LNEDU_REF", "{ref}")\n'
        '        subprocess.run(["git", "clone", "-q", "--depth", "1", "--branch", ref, source, RELEASE], check=True)\n'
        '    subprocess.run([sys.executable, "-m", "pip", "install", "-q", f"./{RELEASE}"], check=True)\n'
        "    importlib.invalidate_caches()\n"
        'if os.path.isdir(os.path.join(RELEASE, "notebooks")):  # work where the notebooks\' ../ paths lead\n'
        '    os.chdir(os.path.join(RELEASE, "notebooks"))'
    )


_is_install_cell = is_install_cell


def ensure_colab_cell(nb, *, gpu: bool = False, repo: str = REPO, ref: str = TAG) -> bool:
    """Make ``nb`` (a notebook node, changed in place) ready for Colab; return whether anything changed.

    The install cell goes just before the first code cell (after the title and "What you will learn"), or is
    brought up to date where it already is. With ``gpu`` the notebook asks Colab for a GPU runtime
    (``metadata.accelerator = "GPU"`` and ``metadata.colab.gpuType``, Colab's own format).
    """
    import nbformat

    source = install_source(repo=repo, ref=ref)
    changed = False
    cells = [c for c in nb.cells if _is_install_cell(c)]
    for extra in cells[1:]:  # one is enough
        nb.cells.remove(extra)
        changed = True
    if cells:
        cell = cells[0]
        if cell.source != source:
            cell.source, cell.outputs, cell.execution_count = source, [], None
            changed = True
    else:
        cell = nbformat.v4.new_code_cell(source, metadata={"tags": [INSTALL_TAG]})
        cell.pop("id", None)
        if nb.nbformat_minor >= 5:
            cell.id = INSTALL_TAG
        first = next((i for i, c in enumerate(nb.cells) if c.cell_type == "code"), len(nb.cells))
        nb.cells.insert(first, cell)
        changed = True
    if gpu:
        colab = nb.metadata.setdefault("colab", {})
        if nb.metadata.get("accelerator") != "GPU" or colab.get("gpuType") != "T4" or "provenance" not in colab:
            nb.metadata["accelerator"] = "GPU"
            colab["gpuType"] = "T4"
            colab.setdefault("provenance", [])
            changed = True
    return changed


def update_notebook(path, *, check: bool = False, **where) -> bool:
    """Apply :func:`ensure_colab_cell` to the notebook file ``path`` (GPU runtime for :data:`GPU_NOTEBOOKS`);
    write it back atomically when it changed, unless ``check``. Returns whether it changed (or would)."""
    import nbformat

    from ._io import atomic_write_text

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    changed = ensure_colab_cell(nb, gpu=path.name in GPU_NOTEBOOKS, **where)
    if changed and not check:
        atomic_write_text(path, nbformat.writes(nb))
    return changed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lnedu.colab", description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", help="notebooks to make ready for Colab")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a notebook would change")
    parser.add_argument("--repo", default=REPO, help=f"GitHub owner/repository (default: {REPO})")
    parser.add_argument("--ref", default=TAG, help=f"release tag to install from (default: {TAG})")
    args = parser.parse_args(argv)
    changed = [p for p in args.paths if update_notebook(p, check=args.check, repo=args.repo, ref=args.ref)]
    for p in changed:
        print(f"{'would change' if args.check else 'changed'}: {p}")
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
