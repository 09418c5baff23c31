"""The set-up files agree: pyproject.toml, environment.yml, binder/ and the CI entry point."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]


def _pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def _reqs(lines) -> dict:
    out = {}
    for line in lines:
        req = Requirement(line)
        out[req.name.lower()] = req.specifier
    return out


def _conda_deps() -> dict:
    deps, in_deps = {}, False
    for raw in (ROOT / "environment.yml").read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].rstrip()
        if line.startswith("dependencies:"):
            in_deps = True
            continue
        m = re.match(r"^  - ([A-Za-z0-9_.-]+)\s*([<>=!].*)?$", line)
        if in_deps and m and m.group(1) not in ("python", "pip"):
            deps[m.group(1).lower()] = SpecifierSet(m.group(2) or "")
    return deps


def _binder_pins() -> dict:
    pins = {}
    for raw in (ROOT / "binder" / "requirements.txt").read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[name.strip().lower()] = Version(version.strip())
    return pins


def test_environment_yml_has_the_same_dependencies_as_pyproject():
    project = _pyproject()
    expected = _reqs(project["dependencies"])
    for extra in ("lab", "test"):
        expected.update(_reqs(project["optional-dependencies"][extra]))
    assert _conda_deps() == expected


def test_binder_pins_cover_core_and_lab_and_satisfy_pyproject_bounds():
    project = _pyproject()
    expected = _reqs(project["dependencies"])
    expected.update(_reqs(project["optional-dependencies"]["lab"]))
    pins = _binder_pins()
    assert set(expected) <= set(pins)  # a full lock: tests/test_binder_lock.py checks the rest
    for name, spec in expected.items():
        assert pins[name] in spec, f"binder pins {name}=={pins[name]}, pyproject asks {spec}"


def test_binder_post_build_installs_lnedu_and_is_executable():
    post = ROOT / "binder" / "postBuild"
    assert post.stat().st_mode & 0o111, "binder/postBuild must be executable"
    assert "pip install" in post.read_text(encoding="utf-8")


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    commands = [ln.strip() for ln in ci.splitlines() if ln.strip() and not ln.lstrip().startswith(("#", "set ", "cd "))]
    assert commands == ["make test"]
    assert "make test" in readme and "make reproduce" in readme


def test_cli_reports_bad_arguments_in_one_line(tmp_path):
    res = subprocess.run(
        [sys.executable, "-m", "lnedu", "reproduce", "--notebooks", str(tmp_path / "missing")],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert res.returncode == 2
    assert res.stderr.startswith("lnedu: folder: expected a folder of notebooks")
    assert len(res.stderr.strip().splitlines()) == 1


def test_cli_reports_an_unwritable_output_folder(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    res = subprocess.run(
        [sys.executable, "-m", "lnedu", "reproduce", "--out", str(blocker / "sub")],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert res.returncode == 2
    assert "out: expected a writable folder" in res.stderr


def test_readme_python_examples_run():
    """Every plain ```python block runs; a block fenced as a file to save and run elsewhere
    (```python title="slurm_cluster.py", a SLURM launcher) must at least compile."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    assert blocks, "the README should show the library in a python block"
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})
    scripts = re.findall(r'```python title="[\w.]+"\n(.*?)```', readme, flags=re.S)
    assert scripts, "the README's cluster launcher should be a python block titled with its file name"
    for script in scripts:
        compile(script, "README.md", "exec")


def test_the_cuda_kernel_sources_ship_with_the_package():
    """Wheels carry lnedu/cuda/kernels/*.cuh (package data): the fused path reads them at run time."""
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["package-data"]
    shipped = {p.name for pattern in data["lnedu.cuda"] for p in (ROOT / "lnedu" / "cuda").glob(pattern)}
    on_disk = {p.name for p in (ROOT / "lnedu" / "cuda" / "kernels").iterdir() if p.is_file()}
    assert on_disk and shipped == on_disk


def test_the_benchmark_peer_is_pinned_to_a_cuda_12_pytorch():
    """issue 20 item 15: `make bench` installs [bench] into the venv of [gpu] (CuPy for CUDA 12 and its NVRTC).
    PyPI's Linux PyTorch wheels depend on the CUDA 13 toolkit from 2.11 on (measured with `pip install --dry-run
    --report`: 2.10.0 needs nvidia-cuda-nvrtc-cu12==12.8.93, 2.11.0 cuda-toolkit[nvrtc,...]==13.0.2), whose
    NVRTC CuPy then loaded and which dropped compute_70. So the peer is one exact version (comparable figures)
    below 2.11, and the [gpu] NVRTC is CUDA 12's."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    (torch_req,) = project["optional-dependencies"]["bench"]
    name, _, version = torch_req.partition("==")
    assert name == "torch" and version, f"[bench]: expected an exact torch==X pin, got {torch_req!r}"
    assert tuple(int(p) for p in version.split(".")[:2]) < (2, 11), f"torch {version} brings CUDA 13 from PyPI"
    gpu = " ".join(project["optional-dependencies"]["gpu"])
    assert "cupy-cuda12x" in gpu and "nvidia-cuda-nvrtc-cu12" in gpu
