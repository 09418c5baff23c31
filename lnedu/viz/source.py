"""Show a library function in a notebook, and find it: the code a student reads is the code that runs.

``show_source(F.layer_norm)`` prints the function as it is in the installed package, without its docstring
(the notebook's text holds the equations), so a cell never carries a stale copy. The stored notebooks are
checked against the current source by ``tests/test_notebook_hygiene.py``: when a function changes, its
stored listing must be re-executed.

``where_table()`` answers "where is ...?" in one step: concept -> ``file::function`` -> the paper's equation,
shown in notebook 00 and the README (a test keeps the README's copy equal to it and every row resolving).
"""

from __future__ import annotations

import ast
import inspect
import textwrap

__all__ = ["source_of", "show_source", "WHERE", "where_table"]


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


# --------------------------------------------------------------------------------------------------
# "Where is ...?": from a concept to the code and the equation, in one step

#: (concept, dotted path of the object or a file path under lnedu/, the paper's equation or source)
WHERE = [
    ("Layer norm, forward", "lnedu.functional.layer_norm", "LN paper Eq. 3 and 5"),
    ("Layer norm, backward (compact formula)", "lnedu.functional.layer_norm_backward", "notebook 01, §4"),
    ("Layer norm as a staged graph", "lnedu.functional.layer_norm_staged", "notebook 01, §3"),
    ("... and its backward, one step per line", "lnedu.functional.layer_norm_staged_backward", "notebook 01, §3"),
    ("RMSNorm", "lnedu.functional.rms_norm", "Zhang & Sennrich (2019), Eq. 4"),
    ("Batch norm", "lnedu.functional.batch_norm", "LN paper Eq. 2; Ioffe & Szegedy (2015), Alg. 1"),
    ("Weight norm", "lnedu.functional.weight_norm", "Salimans & Kingma (2016), Eq. 2"),
    ("A normalization inside a cell (LN, BN or fixed)", "lnedu.functional.recurrent.Norm", "LN paper Eq. 20-22"),
    ("Faster routes (blocked NumPy, fused CUDA) and the switch to the reference",
     "lnedu.functional.dispatch", "tested against the reference"),
    ("LN-LSTM step and its backward", "lnedu.functional.recurrent.lstm_step", "LN paper appendix Eq. 17-22"),
    ("LN-GRU step and its backward", "lnedu.functional.recurrent.gru_step", "LN paper appendix Eq. 23-28"),
    ("The loop through time, forward", "lnedu.nn.recurrent.bptt.run_forward", "backpropagation through time"),
    ("The loop through time, backward (BPTT)", "lnedu.nn.recurrent.bptt.run_backward", "backpropagation through time"),
    ("Where LN goes in a recurrent layer", "lnedu.nn.recurrent.config.LNConfig", "LN paper Eq. 4 vs the appendix"),
    ("LSTM layer (baseline, LN, placements)", "lnedu.nn.recurrent.lstm.LSTM", "LN paper Eq. 17-22"),
    ("GRU layer", "lnedu.nn.recurrent.gru.GRU", "LN paper Eq. 23-28"),
    ("BN-LSTM", "lnedu.nn.recurrent.bnlstm.BNLSTM", "Cooijmans et al. (2017), Eq. 6-8"),
    ("Normalization propagation LSTM", "lnedu.nn.recurrent.normprop.NormPropLSTM", "Laurent et al. (2017), Eq. 13-15"),
    ("Fused CUDA layer-norm kernel", "lnedu/cuda/kernels/layer_norm.cuh", "one pass per row (notebook 14)"),
    ("Fused CUDA LN-LSTM and LN-GRU steps", "lnedu/cuda/kernels/recurrent.cuh", "LN paper Eq. 20-22"),
    ("Table 1, computed", "lnedu.theory.invariance.invariance_table", "LN paper Table 1"),
    ("The Fisher metric of a normalized GLM", "lnedu.theory.geometry.fisher_analytic", "LN paper §5.2, Eq. 11-13"),
    ("Gradient checks by finite differences", "lnedu.gradcheck.check_function", "central differences, float64"),
    ("Verdict: permutation-invariant MNIST", "lnedu.experiments.mnist_mlp.verdict", "LN paper §6.6, Fig. 6"),
    ("Verdict: convolutional networks", "lnedu.experiments.convnet.verdict", "LN paper §6.7"),
    ("Verdict: DRAW", "lnedu.experiments.draw.verdict", "LN paper §6.4, Fig. 4"),
    ("Verdict: handwriting generation", "lnedu.experiments.handwriting.verdict", "LN paper §6.5, Fig. 5"),
    ("Verdict: character language model", "lnedu.experiments.charlm.verdict", "Laurent et al. (2017), §5.1, Table 1"),
    ("Verdict: text8 cells x LN x initializers", "lnedu.experiments.text8_grid.verdict", "the text8 study"),
    ("Verdict: order-embeddings", "lnedu.experiments.order_embeddings.verdict", "LN paper §6.1, Table 2, Fig. 1"),
    ("Verdict: skip-thoughts", "lnedu.experiments.skip_thoughts.verdict", "LN paper §6.3, Table 3, Fig. 3"),
    ("Verdict: attentive reader", "lnedu.experiments.attentive_reader.verdict", "LN paper §6.2, Fig. 2"),
]


def resolve(target: str):
    """The object (or, for a path ending in a file suffix, the ``Path``) that a :data:`WHERE` row names."""
    import importlib
    from pathlib import Path

    if "/" in target:
        path = Path(__file__).resolve().parents[2] / target
        if not path.is_file():
            raise LookupError(f"target: expected a file of the package, got {target!r}, which does not exist")
        return path
    parts = target.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for name in parts[cut:]:
            if not hasattr(obj, name):
                raise LookupError(f"target: {target!r} names nothing: {'.'.join(parts[:cut])} has no {name!r}")
            obj = getattr(obj, name)
        return obj
    raise LookupError(f"target: expected an importable dotted path, got {target!r}")


def location(target: str) -> str:
    """``file::name`` of a :data:`WHERE` row's target (the file alone for a module or a kernel file)."""
    import types

    obj = resolve(target)
    if "/" in target:
        return target
    if isinstance(obj, types.ModuleType):
        return _where(inspect.getsourcefile(obj) or "", obj).split("::")[0]
    obj = inspect.unwrap(obj)
    return _where(inspect.getsourcefile(obj) or "", obj)


def where_table() -> str:
    """The "Where is ...?" table as Markdown: concept | code (``file::name``) | equation or source."""
    rows = ["| concept | where | equation |", "|---|---|---|"]
    rows += [f"| {concept} | `{location(target)}` | {eq} |" for concept, target, eq in WHERE]
    return "\n".join(rows)
