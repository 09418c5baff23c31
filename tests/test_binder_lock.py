"""Binder's lock (binder/requirements.txt) is in step with pyproject.toml, without the network.

The lock is ``uv pip compile pyproject.toml --extra lab`` for Binder's Python (binder/runtime.txt): every package
a student's JupyterLab needs, pinned, and nothing the tests or benchmarks need. ``make binder-lock`` regenerates
it; run it after changing the core or [lab] dependencies (this file says when it is out of step).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "binder" / "requirements.txt"
EXTRAS = ("lab",)  # what Binder installs besides the core: postBuild adds lnedu itself with --no-deps
FIX = "run `make binder-lock`"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)\s*$")


def binder_python() -> str:
    """Binder's Python, ``3.11`` from ``python-3.11`` in binder/runtime.txt."""
    return (ROOT / "binder" / "runtime.txt").read_text(encoding="utf-8").strip().removeprefix("python-")


def direct_requirements(pyproject: dict, extras=EXTRAS) -> list[Requirement]:
    """The core dependencies and those of ``extras`` that apply on Binder (Linux, its Python)."""
    env = {**default_environment(), "python_version": binder_python(), "python_full_version": binder_python() + ".0",
           "sys_platform": "linux", "platform_system": "Linux", "os_name": "posix"}
    project = pyproject["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    for extra in extras:
        reqs += [Requirement(r) for r in project["optional-dependencies"][extra]]
    return [r for r in reqs if r.marker is None or r.marker.evaluate({**env, "extra": ""})]


def parse_lock(text: str) -> tuple[list[str], dict, dict]:
    """``(header lines, {name: Version}, {name: set of names it is there for})`` of a uv/pip-compile lock."""
    header, pins, via, current = [], {}, {}, None
    for line in text.splitlines():
        m = PIN.match(line)
        if m:
            current = canonicalize_name(m.group(1))
            if current in pins:
                raise ValueError(f"{LOCK.name}: {current} pinned twice")
            pins[current], via[current] = Version(m.group(2)), set()
        elif line.startswith("#") and current is None:
            header.append(line)
        elif line.strip().startswith("#") and current is not None:
            why = line.strip().lstrip("#").strip().removeprefix("via").strip()
            if why:
                via[current].add("lnedu" if why.startswith("lnedu") else canonicalize_name(why.split()[0]))
        elif line.strip():
            raise ValueError(f"{LOCK.name}: expected name==version or a comment, got {line!r}")
    return header, pins, via


def problems(pyproject: dict, lock_text: str) -> list[str]:
    """What is out of step between ``pyproject`` and the lock (empty when they agree)."""
    header, pins, via = parse_lock(lock_text)
    out = []
    command = " ".join(h.lstrip("#").strip() for h in header)
    if "uv pip compile pyproject.toml" not in command:
        out.append(f"header: expected the command that made it (uv pip compile pyproject.toml ...), got {command!r}")
    extras = set(re.findall(r"--extra[ =](\S+)", command))
    if extras != set(EXTRAS):
        out.append(f"header: expected the extras {sorted(EXTRAS)}, got {sorted(extras)}")
    if f"--python-version {binder_python()}" not in command:
        out.append(f"header: expected --python-version {binder_python()} (binder/runtime.txt)")
    direct = {canonicalize_name(r.name): r for r in direct_requirements(pyproject)}
    for name, req in direct.items():
        if name not in pins:
            out.append(f"{name}: in pyproject.toml, not pinned in the lock")
        elif not req.specifier.contains(pins[name], prereleases=True):
            out.append(f"{name}: the lock pins {pins[name]}, pyproject.toml asks {req.specifier}")
    for name, reasons in via.items():
        if "lnedu" in reasons and name not in direct:
            out.append(f"{name}: the lock has it for lnedu, pyproject.toml no longer asks for it")
    # every pin is there for lnedu or for another pin: nothing stale, nothing from another extra
    reached, todo = set(), [n for n, r in via.items() if "lnedu" in r]
    while todo:
        name = todo.pop()
        if name not in reached:
            reached.add(name)
            todo += [n for n, r in via.items() if name in r]
    out += [f"{name}: pinned, but nothing in the lock needs it" for name in sorted(set(pins) - reached)]
    return out


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_the_lock_is_in_step_with_pyproject():
    found = problems(_pyproject(), LOCK.read_text(encoding="utf-8"))
    assert not found, f"binder/requirements.txt is out of step with pyproject.toml ({FIX}):\n" + "\n".join(found)


def test_the_lock_is_a_full_lock_of_what_a_student_needs():
    _, pins, _ = parse_lock(LOCK.read_text(encoding="utf-8"))
    direct = {canonicalize_name(r.name) for r in direct_requirements(_pyproject())}
    assert len(pins) > 2 * len(direct), "a full lock pins the dependencies of the dependencies too"
    for tool in ("pytest", "nbval", "hypothesis", "ruff", "torch", "nbgrader", "playwright"):
        assert tool not in pins, f"{tool}: a test/bench tool has no place in Binder's lock"
    post = (ROOT / "binder" / "postBuild").read_text(encoding="utf-8")
    assert "pip install --no-deps -e ." in post, "postBuild installs lnedu alone: its dependencies are the lock's"


def _toy_pyproject(deps, lab=("jupyterlab>=4.0",), test=("pytest>=7",)):
    return {"project": {"dependencies": list(deps), "optional-dependencies": {"lab": list(lab), "test": list(test)}}}


TOY_LOCK = f"""# This file was autogenerated by uv via the following command:
#    uv pip compile pyproject.toml --extra lab --python-version {binder_python()} -o binder/requirements.txt
numpy==2.1.0
    # via
    #   lnedu (pyproject.toml)
    #   matplotlib
matplotlib==3.9.0
    # via lnedu (pyproject.toml)
jupyterlab==4.2.0
    # via lnedu (pyproject.toml)
"""


@pytest.mark.parametrize("deps, lock, expected", [
    (["numpy>=1.24", "matplotlib>=3.7"], TOY_LOCK, []),
    (["numpy>=1.24", "matplotlib>=3.7", "tqdm>=4.60"], TOY_LOCK, ["tqdm: in pyproject.toml, not pinned"]),
    (["numpy>=2.2", "matplotlib>=3.7"], TOY_LOCK, ["numpy: the lock pins 2.1.0, pyproject.toml asks >=2.2"]),
    (["numpy>=1.24"], TOY_LOCK, ["matplotlib: the lock has it for lnedu, pyproject.toml no longer asks"]),
    (["numpy>=1.24", "matplotlib>=3.7"], TOY_LOCK + "pytest==8.0.0\n    # via lnedu (pyproject.toml)\n",
     ["pytest: the lock has it for lnedu"]),
    (["numpy>=1.24", "matplotlib>=3.7"], TOY_LOCK + "six==1.16.0\n    # via python-dateutil\n",
     ["six: pinned, but nothing in the lock needs it"]),
    (["numpy>=1.24", "matplotlib>=3.7"], TOY_LOCK.replace("--extra lab", "--extra lab --extra test"),
     ["header: expected the extras ['lab'], got ['lab', 'test']"]),
    (["numpy>=1.24", "matplotlib>=3.7", "pywin32>=300; platform_system == 'Windows'"], TOY_LOCK, []),
], ids=["in-step", "missing", "too-old", "dropped", "test-extra-pinned", "stray", "wrong-extras", "other-platform"])
def test_problems_names_what_is_out_of_step(deps, lock, expected):
    found = problems(_toy_pyproject(deps), lock)
    assert len(found) == len(expected), found
    for got, want in zip(found, expected):
        assert got.startswith(want), (got, want)
