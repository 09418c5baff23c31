"""The package's layering, read from the source: every import goes down, so there is no import circle.

Each top-level part of ``lnedu`` has a rank; a module may import only parts of a lower rank (its own part
aside). Imports inside functions count too: a lazy import is still a dependency. ``lnedu/__init__.py`` is the
one place that imports upwards (it loads ``cuda`` so that the fused kernels register with the dispatch).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "lnedu"

RANK = {
    "backend": 0, "_checks": 1, "_io": 1, "__version__": 0,
    "functional": 2, "init": 2, "gradcheck": 2,
    "nn": 3, "cuda": 3,
    "optim": 4, "checkpoint": 4,
    "theory": 5, "data": 5, "notebooks": 5,
    "viz": 6, "exercises": 6,
    "experiments": 7,
    "reproduce": 8, "colab": 8,
    "__main__": 9,
}

# a renamed public name kept for one release, resolved lazily in a module __getattr__ (the only exceptions)
DEPRECATED_ALIASES = {("notebooks", "reproduce")}


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "lnedu"


def import_edges(package: Path = PACKAGE):
    """``(importer part, imported part, file, line)`` for every import of one lnedu part by another."""
    edges = []
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package.parent).with_suffix("").parts
        module = ".".join(rel[:-1] if rel[-1] == "__init__" else rel)
        here = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets = []
            if isinstance(node, ast.ImportFrom) and node.level:
                base = here.split(".")[: len(here.split(".")) - (node.level - 1)]
                stem = ".".join(base + ([node.module] if node.module else []))
                targets = [stem] if node.module else [f"{stem}.{a.name}" for a in node.names]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("lnedu"):
                targets = [node.module] if node.module != "lnedu" else [f"lnedu.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.startswith("lnedu.")]
            for target in targets:
                a, b = _part(module), _part(target)
                if a != b and module != "lnedu":
                    edges.append((a, b, path.relative_to(package.parent).as_posix(), node.lineno))
    return edges


def test_every_part_has_a_rank():
    parts = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
             if (p.suffix == ".py" and p.stem != "__init__") or (p.is_dir() and (p / "__init__.py").exists())}
    assert parts <= set(RANK), f"give these parts of lnedu a rank in this test: {sorted(parts - set(RANK))}"


def test_every_import_goes_down():
    upward = [f"{f}:{line}: {a} (rank {RANK[a]}) imports {b} (rank {RANK[b]})"
              for a, b, f, line in import_edges() if RANK[b] >= RANK[a] and (a, b) not in DEPRECATED_ALIASES]
    assert not upward, "imports that go up or sideways (an import circle waiting to happen):\n" + "\n".join(upward)


def test_the_deprecated_aliases_are_lazy_and_few():
    for a, b in DEPRECATED_ALIASES:
        src = (PACKAGE / f"{a}.py").read_text(encoding="utf-8")
        tree = ast.parse(src)
        getattr_fn = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "__getattr__"]
        assert getattr_fn, f"{a}: the alias to {b} should live in a module __getattr__"
        inside = {id(n) for n in ast.walk(getattr_fn[0])}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").endswith(b):
                assert id(node) in inside, f"{a} imports {b} outside its __getattr__ alias (line {node.lineno})"


def test_the_check_can_fail(tmp_path):
    pkg = tmp_path / "lnedu"
    (pkg / "functional").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "functional" / "__init__.py").write_text("")
    (pkg / "functional" / "norms.py").write_text("def f():\n    from ..experiments import runner\n")
    assert ("functional", "experiments", "lnedu/functional/norms.py", 2) in import_edges(pkg)


@pytest.mark.parametrize("reference", ["norms.py", "recurrent.py", "basic.py"])
def test_the_reference_bodies_import_no_fast_path(reference):
    """The faster versions register themselves; the code a student reads does not know them."""
    src = (PACKAGE / "functional" / reference).read_text(encoding="utf-8")
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.ImportFrom):
            assert node.module not in ("_blocked", "_numba") and "cuda" not in (node.module or ""), node.lineno
