"""lnedu.colab: the Open-in-Colab badge, the guarded install cell and the GPU runtime, on made-up notebooks; and
the install cell itself run twice: in a fresh environment without lnedu (it installs it, from a copy of this
checkout) and where lnedu is present (it does nothing)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import nbformat
import pytest

from lnedu import colab

ROOT = Path(__file__).resolve().parents[1]


def _notebook():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# 03. A title"), nbformat.v4.new_markdown_cell("## What you will learn"),
                nbformat.v4.new_code_cell("import lnedu\nprint(lnedu.__version__)"),
                nbformat.v4.new_markdown_cell("More."), nbformat.v4.new_code_cell("x = 2")]
    nb.cells[2].execution_count = 1
    return nb


def _install_cells(nb):
    return [c for c in nb.cells if colab.INSTALL_TAG in c.metadata.get("tags", [])]


def test_the_install_cell_goes_before_the_first_code_cell_once():
    nb = _notebook()
    assert colab.ensure_colab_cell(nb) is True
    assert [c.cell_type for c in nb.cells] == ["markdown", "markdown", "code", "code", "markdown", "code"]
    assert _install_cells(nb) == [nb.cells[2]]
    assert nb.cells[2].source == colab.install_source()
    assert nb.cells[3].source.startswith("import lnedu") and nb.cells[3].execution_count == 1  # untouched
    assert "accelerator" not in nb.metadata and "colab" not in nb.metadata
    before = nbformat.writes(nb)
    assert colab.ensure_colab_cell(nb) is False
    assert nbformat.writes(nb) == before, "a second run must change nothing"
    nbformat.validate(nb)


def test_a_stale_or_doubled_install_cell_is_brought_up_to_date():
    nb = _notebook()
    colab.ensure_colab_cell(nb, ref="v0.0.1")
    assert "\"v0.0.1\"" in nb.cells[2].source
    nb.cells[2].execution_count, nb.cells[2].outputs = 1, [nbformat.v4.new_output("stream", text="hi\n")]
    nb.cells.append(nbformat.v4.new_code_cell("x", metadata={"tags": [colab.INSTALL_TAG]}))
    assert colab.ensure_colab_cell(nb) is True
    (cell,) = _install_cells(nb)
    assert cell.source == colab.install_source() and f"\"{colab.TAG}\"" in cell.source
    assert cell.outputs == [] and cell.execution_count is None
    assert colab.ensure_colab_cell(nb) is False


def test_the_gpu_notebook_asks_colab_for_a_gpu_runtime():
    nb = _notebook()
    assert colab.ensure_colab_cell(nb, gpu=True) is True
    assert nb.metadata["accelerator"] == "GPU"
    assert nb.metadata["colab"]["gpuType"] == "T4" and nb.metadata["colab"]["provenance"] == []
    assert colab.ensure_colab_cell(nb, gpu=True) is False
    assert "[gpu]" not in colab.install_source(), "Colab's own CuPy: the install must not pull cupy-cuda12x"


def test_a_notebook_without_code_gets_the_cell_at_the_end():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# 00. Only words")]
    assert colab.ensure_colab_cell(nb)
    assert nb.cells[-1].cell_type == "code" and _install_cells(nb) == [nb.cells[-1]]


def test_update_notebook_and_the_command_line(tmp_path, capsys):
    gpu, plain = tmp_path / "14-gpu.ipynb", tmp_path / "03-plain.ipynb"
    for p in (gpu, plain):
        nbformat.write(_notebook(), p)
    assert colab.main(["--check", str(gpu), str(plain)]) == 1
    assert "accelerator" not in nbformat.read(gpu, as_version=4).metadata, "--check must write nothing"
    assert colab.main([str(gpu), str(plain)]) == 0
    assert capsys.readouterr().out.count("changed: ") == 2
    assert nbformat.read(gpu, as_version=4).metadata["accelerator"] == "GPU"
    assert "accelerator" not in nbformat.read(plain, as_version=4).metadata
    data = plain.read_bytes()
    assert colab.main([str(gpu), str(plain)]) == 0 and capsys.readouterr().out == ""
    assert colab.main(["--check", str(gpu), str(plain)]) == 0
    assert plain.read_bytes() == data


def test_badges_point_at_the_release_tag_on_colab():
    url = colab.colab_url("01-layer-norm-from-scratch.ipynb", repo="me/lnedu", ref="v0.2")
    assert url == "https://colab.research.google.com/github/me/lnedu/blob/v0.2/notebooks/01-layer-norm-from-scratch.ipynb"
    assert colab.colab_badge("01-x.ipynb").startswith(f"[![Open In Colab]({colab.BADGE_IMAGE})](https://colab.")
    assert colab.colab_badge("01-x.ipynb", image=False) == f"[Open in Colab]({colab.colab_url('01-x.ipynb')})"
    assert colab.TAG == "v" + __import__("lnedu").__version__
    with pytest.raises(ValueError, match="name: expected a notebook file name"):
        colab.colab_url("01-x")


def test_the_install_cell_is_clean_python(tmp_path):
    source = colab.install_source()
    compile(source, "cell", "exec")
    ruff = Path(sys.executable).with_name("ruff")
    if not ruff.exists():
        pytest.skip("ruff is not installed")
    (tmp_path / "cell.py").write_text(source + "\n", encoding="utf-8")
    res = subprocess.run([str(ruff), "check", "--config", str(ROOT / "pyproject.toml"), str(tmp_path / "cell.py")],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout


def _run_cell(python, cwd, **env):
    """Run the install cell in ``python`` from ``cwd``; its last line printed is the folder it left us in."""
    env = {**os.environ, "LNEDU_SOURCE": str(cwd / "no-such-repository"), **env}
    env.pop("PYTHONPATH", None)
    code = colab.install_source() + "\nprint(os.getcwd())"
    return subprocess.run([str(python), "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_the_install_cell_does_nothing_where_lnedu_is_present(tmp_path):
    res = _run_cell(sys.executable, tmp_path)  # a clone or a pip install would fail on the missing repository
    assert res.returncode == 0 and res.stdout == f"{tmp_path}\n" and res.stderr == "", res.stderr


def _release(tmp_path) -> Path:
    """A git repository holding a copy of this checkout's package, tagged ``v-test``: the release to clone."""
    repo = tmp_path / "release"
    repo.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, repo / name)
    shutil.copytree(ROOT / "lnedu", repo / "lnedu", ignore=shutil.ignore_patterns("__pycache__"))
    (repo / "notebooks").mkdir()
    (repo / "notebooks" / "00-index.ipynb").write_text("{}", encoding="utf-8")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", "-c", "init.defaultBranch=main"]
    for args in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "release"], ["tag", "v-test"]):
        subprocess.run(git + args, cwd=repo, check=True, capture_output=True, timeout=60)
    return repo


@pytest.mark.slow
def test_the_install_cell_installs_lnedu_where_it_is_missing(tmp_path):
    """A fresh venv that sees this environment's packages (a .pth line) but not lnedu; the cell clones a tagged copy
    of the checkout, installs it (``--no-deps``: the dependencies are already visible; pip takes setuptools for the
    build from the package index) and moves to its notebooks/; run again (a restarted kernel), it only moves."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    release = _release(tmp_path)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    # this environment's packages (pip, numpy, ...) without running its .pth files: no editable lnedu
    (site / "outer.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    where = "import importlib.util as u; s = u.find_spec('lnedu'); print(s.origin if s else 'absent')"
    probe = tmp_path / "content"  # Colab's /content: the notebook alone
    probe.mkdir()
    assert subprocess.run([str(python), "-c", where], cwd=probe, capture_output=True, text=True).stdout == "absent\n"

    res = _run_cell(python, probe, LNEDU_SOURCE=str(release), LNEDU_REF="v-test", PIP_NO_DEPS="1")
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    notebooks = probe / colab.RELEASE_FOLDER / "notebooks"
    assert res.stdout.splitlines()[-1] == str(notebooks), "the cell should work from the release's notebooks/"
    assert (notebooks / "00-index.ipynb").is_file()
    found = subprocess.run([str(python), "-c", where], cwd=probe, capture_output=True, text=True).stdout.strip()
    assert Path(found).is_relative_to(site), f"lnedu should now be installed in the venv, found {found}"
    res = _run_cell(python, probe)  # a restarted kernel: lnedu is there, the release too
    assert res.returncode == 0 and res.stdout == f"{notebooks}\n" and res.stderr == "", res.stderr
