"""Show the source of a library function in a notebook: the code a student reads is the code that runs.

``show_source(F.layer_norm)`` prints the function as it is in the installed package, without its docstring
(the notebook's text holds the equations), so a cell never carries a stale copy. The stored notebooks are
checked against the current source by ``tests/test_notebook_hygiene.py``: when a function changes, its
stored listing must be re-executed.
"""

from __future__ import annotations

import ast
import inspect
import textwrap

__all__ = ["source_of", "show_source"]


def source_of(obj, *, docstring: bool = False) -> str:
    """The source text of a function, class or method ``obj``, dedented; without its docstring by default.

    The first line is a comment naming where it lives (``# lnedu/functional/norms.py::layer_norm``), so a
    student can open the file. Raises ``TypeError`` for objects that have no Python source (a builtin, a
    NumPy ufunc).
    """
    target = inspect.unwrap(obj)
    try:
        lines, _ = inspect.getsourcelines(target)
        path = inspect.getsourcefile(target) or ""
    except (OSError, TypeError) as exc:
        raise TypeError(f"obj: expected a Python function, class or method with source, got {obj!r}") from exc
    src = textwrap.dedent("".join(lines))
    if not docstring:
        src = _without_docstring(src)
    return f"# {_where(path, target)}\n{src.rstrip()}\n"


def show_source(obj, *, docstring: bool = False) -> None:
    """Print :func:`source_of` ``obj`` (the notebooks' one way of showing library code)."""
    print(source_of(obj, docstring=docstring), end="")


def _where(path: str, obj) -> str:
    """``lnedu/functional/norms.py::layer_norm``: the file from the package root on, and the qualified name."""
    parts = path.replace("\\", "/").split("/")
    rel = "/".join(parts[len(parts) - 1 - parts[::-1].index("lnedu"):]) if "lnedu" in parts else parts[-1]
    return f"{rel}::{getattr(obj, '__qualname__', getattr(obj, '__name__', '?'))}"


def _without_docstring(src: str) -> str:
    """``src`` with the docstring of its first definition removed (decorators and signature kept)."""
    node = ast.parse(src).body[0]
    body = getattr(node, "body", None)
    if not body or not isinstance(body[0], ast.Expr) or not isinstance(getattr(body[0], "value", None), ast.Constant):
        return src
    if not isinstance(body[0].value.value, str):
        return src
    lines = src.splitlines(keepends=True)
    doc = body[0]
    return "".join(lines[: doc.lineno - 1] + lines[doc.end_lineno:])
