"""The course exercises: the checkers accept right answers and reject typical wrong ones with the right hint;
the exercise sheets are generated deterministically and match what is checked in; the student sheets run from
top to bottom with their stubs; the teacher versions (the teaching notebooks) pass every checker."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import numpy as np
import pytest

import lnedu.functional as F
from lnedu import exercises as E
from lnedu.__main__ import main
from lnedu.exercises import build as B
from lnedu.notebooks import execute_notebook

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
SHEETS = NOTEBOOKS / "exercises"


def _feedback(result) -> str:
    """The feedback as one line of text, whatever the wrapping."""
    return " ".join(str(result).split())


# --------------------------------------------------------------------------------------------------
# layer norm forward


def ln_right(x, gain, bias, eps):
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    return gain * (x - mu) / np.sqrt(var + eps) + bias


def ln_batch_axis(x, gain, bias, eps):
    mu = x.mean(axis=0, keepdims=True)
    return gain * (x - mu) / np.sqrt(x.var(axis=0, keepdims=True) + eps) + bias


def ln_no_gain(x, gain, bias, eps):
    return ln_right(x, np.ones_like(gain), bias, eps)


def ln_eps_outside(x, gain, bias, eps):
    return gain * (x - x.mean(axis=-1, keepdims=True)) / (x.std(axis=-1, keepdims=True) + eps) + bias


def ln_unbiased(x, gain, bias, eps):
    var = x.var(axis=-1, ddof=1, keepdims=True)
    return gain * (x - x.mean(axis=-1, keepdims=True)) / np.sqrt(var + eps) + bias


def ln_fixed_eps(x, gain, bias, eps):
    return ln_right(x, gain, bias, 1e-5)


def ln_no_keepdims(x, gain, bias, eps):
    return gain * (x - x.mean(axis=-1)) / np.sqrt(x.var(axis=-1) + eps) + bias


def ln_in_place(x, gain, bias, eps):
    x -= x.mean(axis=-1, keepdims=True)
    return ln_right(x, gain, bias, eps)


@pytest.mark.parametrize("wrong, hint", [
    (ln_batch_axis, "over the cases (axis 0)"),
    (ln_no_gain, "the gain g multiplies"),
    (ln_eps_outside, "eps belongs inside the square root"),
    (ln_unbiased, "divides by H"),
    (ln_fixed_eps, "not a fixed 1e-5"),
    (ln_no_keepdims, "keepdims=True"),
    (ln_in_place, "changed its inputs in place"),
], ids=lambda v: getattr(v, "__name__", "hint"))
def test_forward_checker_rejects_typical_mistakes_with_the_right_hint(wrong, hint):
    result = E.check_layer_norm_forward(wrong)
    assert result.status == "failed" and not result.passed
    assert hint in _feedback(result)


def test_forward_checker_accepts_the_right_answer_and_says_so():
    result = E.check_layer_norm_forward(ln_right)
    assert result.passed, str(result)
    assert str(result).startswith("Exercise: layer norm forward: PASSED")


class _DeviceArray:
    """Stands in for a CuPy array a student hands back: its type lives in ``cupy``, ``get()`` copies it home."""

    def __init__(self, host):
        self.host = host

    def get(self):
        return self.host.copy()


_DeviceArray.__module__ = "cupy._core.core"


def test_forward_checker_takes_an_answer_back_from_the_gpu():
    result = E.check_layer_norm_forward(lambda x, gain, bias, eps: _DeviceArray(ln_right(x, gain, bias, eps)))
    assert result.passed, str(result)


def test_a_check_does_not_import_cupy():
    """Only code that imported CuPy can hand back a CuPy array: a check that imported it to ask cost a student's
    first check about a second where the [gpu] extra is installed."""
    import subprocess
    import sys

    code = ("import sys, numpy as np\n"
            "from lnedu import exercises as E\n"
            "def ln(x, gain, bias, eps):\n"
            "    mu = x.mean(axis=-1, keepdims=True)\n"
            "    return gain * (x - mu) / np.sqrt(((x - mu) ** 2).mean(axis=-1, keepdims=True) + eps) + bias\n"
            "assert E.check_layer_norm_forward(ln).passed\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'cupy'))\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"


def test_forward_checker_locates_the_wrong_element_without_giving_the_answer():
    def off_in_one_place(x, gain, bias, eps):
        y = ln_right(x, gain, bias, eps)
        y[2, 5] += 0.25
        return y

    text = _feedback(E.check_layer_norm_forward(off_in_one_place))
    assert "y[2, 5], off by 2.50e-01" in text and "Test case 1" in text
    assert "Hint" not in text  # no known slip fits, so no hint is invented


# --------------------------------------------------------------------------------------------------
# layer norm backward


def bw_right(dy, cache):
    xhat, rstd, gain = cache
    dxhat = dy * gain
    dx = rstd * (dxhat - dxhat.mean(-1, keepdims=True) - xhat * (dxhat * xhat).mean(-1, keepdims=True))
    return dx, (dy * xhat).sum(axis=0), dy.sum(axis=0)


def _compact_variant(*, mean=True, sigma=True, gain=True, axis=-1, dgain_axis=0):
    def backward(dy, cache):
        xhat, rstd, g = cache
        dxhat = dy * g if gain else dy
        bracket = dxhat.copy()
        if mean:
            bracket -= dxhat.mean(axis, keepdims=True)
        if sigma:
            bracket -= xhat * (dxhat * xhat).mean(axis, keepdims=True)
        return rstd * bracket, (dy * xhat).sum(axis=dgain_axis), dy.sum(axis=0)

    return backward


def bw_swapped_param_grads(dy, cache):
    dx, dgain, dbias = bw_right(dy, cache)
    return dx, dbias, dgain


@pytest.mark.parametrize("wrong, hint", [
    (_compact_variant(mean=False), "the mean path is missing or wrong"),
    (_compact_variant(sigma=False), "the sigma path is missing or wrong"),
    (_compact_variant(mean=False, sigma=False), "both the mean path and the sigma path"),
    (_compact_variant(gain=False), "dxhat = dy * gain"),
    (_compact_variant(axis=0), "your means run over the cases (axis 0)"),
    (_compact_variant(dgain_axis=1), "dgain has shape (4,); it should have shape (8,)"),
    (bw_swapped_param_grads, "that is dbias"),
], ids=["no-mean-path", "no-sigma-path", "neither-path", "no-gain", "batch-axis", "dgain-axis", "swapped"])
def test_compact_backward_checker_rejects_typical_mistakes_with_the_right_hint(wrong, hint):
    result = E.check_layer_norm_backward(wrong)
    assert result.status == "failed"
    assert hint in _feedback(result)


def staged_right(dy, cache, *, second_path_into_x=True, half=0.5, sigma_path=True):
    x, mu, xc, sq, var, std, rstd, xhat, gain, H = cache
    dbias, dgain, dxhat = dy.sum(axis=0), (dy * xhat).sum(axis=0), dy * gain
    dxc = dxhat * rstd
    dstd = -(dxhat * xc).sum(axis=-1, keepdims=True) / std**2
    dsq = np.ones_like(sq) * (dstd * half / std) / H
    if sigma_path:
        dxc = dxc + 2 * xc * dsq
    dx = dxc.copy()
    if second_path_into_x:
        dx += -dxc.sum(axis=-1, keepdims=True) / H
    return dx, dgain, dbias


@pytest.mark.parametrize("kw, hint", [
    (dict(second_path_into_x=False), "x feeds both step 1 (the mean) and step 2"),
    (dict(half=1.0), "Check steps 3 to 6"),
    (dict(sigma_path=False), "xc feeds both step 3 (the square) and step 7"),
], ids=["mean-step", "sqrt-derivative", "xc-twice"])
def test_staged_backward_checker_rejects_typical_mistakes_with_the_right_hint(kw, hint):
    result = E.check_layer_norm_backward(lambda dy, cache: staged_right(dy, cache, **kw), kind="staged")
    assert result.status == "failed"
    assert hint in _feedback(result)


def test_backward_checkers_accept_the_right_answers():
    assert E.check_layer_norm_backward(bw_right).passed
    assert E.check_layer_norm_backward(staged_right, kind="staged").passed


def test_backward_checker_reports_a_wrong_cache_layout_as_the_students_error():
    # the compact function handed the staged cache: unpacking fails in the student's own line
    text = _feedback(E.check_layer_norm_backward(bw_right, kind="staged"))
    assert "raised ValueError" in text and "in bw_right, at `xhat, rstd, gain = cache`" in text


def test_checkers_check_their_arguments():
    with pytest.raises(ValueError, match=r"kind: expected one of \('compact', 'staged'\), got 'fast'"):
        E.check_layer_norm_backward(bw_right, kind="fast")
    with pytest.raises(TypeError, match="fn: expected your function"):
        E.check_layer_norm_forward("my_layer_norm")


# --------------------------------------------------------------------------------------------------
# a row of Table 1


def _row_measurer(*, recenter_w="columns", rescale_one="column", case="row", delta=3.0, tol=1e-9, exact=False):
    def my_invariance_row(layer, x, W):
        rng = np.random.default_rng(0)
        h = layer(x, W)
        gamma = rng.normal(size=W.shape[0])
        one_unit, one_case = W.copy(), x.copy()
        if rescale_one == "column":
            one_unit[:, 0] *= delta
        else:
            one_unit[0, :] *= delta
        if case == "row":
            one_case[0] *= delta
        else:
            one_case[:, 0] *= delta
        W_shifted = W + gamma[:, None] if recenter_w == "columns" else W + rng.normal(size=W.shape[1])
        moved = [layer(x, delta * W), layer(x, W_shifted), layer(x, one_unit), layer(delta * x, W),
                 layer(x + gamma, W), layer(one_case, W)]
        if exact:
            return [bool(np.array_equal(m, h)) for m in moved]
        return {t: bool(np.abs(m - h).max() < tol * np.abs(h).max())
                for t, m in zip(("weight_rescale", "weight_recenter", "weight_vector_rescale", "data_rescale",
                                 "data_recenter", "case_rescale"), moved)}

    return my_invariance_row


@pytest.mark.parametrize("kw, hint", [
    (dict(recenter_w="rows"), "adds the same vector gamma (length D) to every column of W"),
    (dict(rescale_one="row"), "one weight vector is one column W[:, k]"),
    (dict(case="column"), "a training case is one row x[m]"),
    (dict(delta=-2.0), "a negative factor flips the sign"),
    (dict(exact=True), "not with =="),
    (dict(tol=10.0), "every layer is invariant to every transformation"),
    (dict(delta=1.0), "missed a real change"),
], ids=["recenter-rows", "rescale-row", "case-column", "negative-delta", "exact-equality", "loose-tol", "delta-1"])
def test_invariance_checker_rejects_typical_mistakes_with_the_right_hint(kw, hint):
    result = E.check_invariance_row(_row_measurer(**kw))
    assert result.status == "failed"
    assert hint in _feedback(result)


def test_invariance_checker_accepts_a_measurement_and_rejects_a_typed_table():
    assert E.check_invariance_row(_row_measurer()).passed

    def layer_norm_row_typed_in(layer, x, W):  # right for layer norm, but it does not measure
        return (True, True, False, True, False, True)

    text = _feedback(E.check_invariance_row(layer_norm_row_typed_in))
    assert "verdicts are wrong" in text and "batch-norm layer" in text

    def wrong_length(layer, x, W):
        return (True, False)

    assert "should return six verdicts" in _feedback(E.check_invariance_row(wrong_length))


# --------------------------------------------------------------------------------------------------
# one LN-LSTM and one LN-GRU step, backward (students work from lnedu's step caches)


def lstm_step_backward(dh, dc, cache, *, dc_next=True, through_ln_c=True, gate_derivatives=True, order="fiog",
                       through_ln_h=True):
    f, i, o, g = (np.split(cache.gates, 4, axis=1)[order.index(k)] for k in "fiog")
    u = cache.tanh_c
    do, dc_hat = dh * u, dh * o * (1 - u**2)
    if through_ln_c:
        dc_t, dg_c, db_c = F.normalize_backward(dc_hat, cache.norm_c)
    else:
        dc_t, dg_c, db_c = dc_hat, None, dc_hat.sum(axis=0)
    if dc_next:
        dc_t = dc_t + dc
    df, di, dg, dc_prev = dc_t * cache.c_prev, dc_t * g, dc_t * i, dc_t * f
    if gate_derivatives:
        df, di, do, dg = df * f * (1 - f), di * i * (1 - i), do * o * (1 - o), dg * (1 - g**2)
    blocks = {"f": df, "i": di, "o": do, "g": dg}
    da = np.concatenate([blocks[k] for k in order], axis=1)
    da_h, dg_h, db_h = F.normalize_backward(da, cache.norm_h) if through_ln_h else (da, None, da.sum(axis=0))
    if dg_c is None:  # a gain gradient is still owed: take the right one, so that only the slip differs
        dg_c = F.normalize_backward(dc_hat, cache.norm_c)[1]
    if dg_h is None:
        dg_h = F.normalize_backward(da, cache.norm_h)[1]
    return da, da_h @ cache.W_h.T, dc_prev, cache.h_prev.T @ da_h, dg_h, db_h, dg_c, db_c


@pytest.mark.parametrize("kw, hint", [
    (dict(dc_next=False), "two gradients meet at c_t"),
    (dict(through_ln_c=False), "between c_t and the tanh sits LN(c_t; g_c, b_c)"),
    (dict(gate_derivatives=False), "need the derivatives s * (1 - s) and 1 - g^2"),
    (dict(order="ifog"), "the gate order is f, i, o, g"),
    (dict(through_ln_h=False), "the recurrent term is LN(h_prev W_h; g_h, b_h)"),
], ids=["no-dc-next", "skips-ln-c", "no-gate-derivatives", "gate-order", "skips-ln-h"])
def test_lstm_checker_rejects_typical_mistakes_with_the_right_hint(kw, hint):
    result = E.check_lstm_step_backward(lambda dh, dc, cache: lstm_step_backward(dh, dc, cache, **kw))
    assert result.status == "failed"
    assert hint in _feedback(result)


def gru_step_backward(dh, cache, *, update="eq28", direct=True, reset_into_du=True, through_ln_hc=True):
    H = cache.h_prev.shape[1]
    z, r = cache.gates[:, :H], cache.gates[:, H:]
    h_prev, h_hat, u, W_hh = cache.h_prev, cache.h_hat, cache.u, cache.W_hh
    keep = 1 - z if update == "eq28" else z  # the share of h_prev kept
    dz = dh * (h_hat - h_prev) if update == "eq28" else dh * (h_prev - h_hat)
    ds = dh * (1 - keep) * (1 - h_hat**2)
    dr, du = ds * u, (ds * r if reset_into_du else ds)
    if through_ln_hc:
        da_u, dg_hc, db_hc = F.normalize_backward(du, cache.norm_hc)
    else:
        da_u, dg_hc, db_hc = du, F.normalize_backward(du, cache.norm_hc)[1], du.sum(axis=0)
    da_zr = np.concatenate([dz * z * (1 - z), dr * r * (1 - r)], axis=1)
    da_h, dg_h, db_h = F.normalize_backward(da_zr, cache.norm_h)
    da_hh = np.concatenate([da_h, da_u], axis=1)
    dh_prev = da_hh @ W_hh.T + (dh * keep if direct else 0)
    return np.concatenate([da_zr, ds], axis=1), dh_prev, h_prev.T @ da_hh, dg_h, db_h, dg_hc, db_hc


@pytest.mark.parametrize("kw, hint", [
    (dict(update="released-code"), "Eq. 28 keeps (1 - z) of the old state"),
    (dict(direct=False), "The direct one is missing from dh_prev"),
    (dict(reset_into_du=False), "the gradient that reaches u is multiplied by r"),
    (dict(through_ln_hc=False), "u = LN(U h_prev; g_hc, b_hc)"),
], ids=["update-convention", "no-direct-path", "no-reset", "skips-ln-hc"])
def test_gru_checker_rejects_typical_mistakes_with_the_right_hint(kw, hint):
    result = E.check_gru_step_backward(lambda dh, cache: gru_step_backward(dh, cache, **kw))
    assert result.status == "failed"
    assert hint in _feedback(result)


def test_step_checkers_accept_the_right_answers_and_locate_a_wrong_gate():
    assert E.check_lstm_step_backward(lstm_step_backward).passed
    assert E.check_gru_step_backward(gru_step_backward).passed

    def one_gate_off(dh, dc, cache):
        grads = list(lstm_step_backward(dh, dc, cache))
        H = dh.shape[1]
        grads[0] = grads[0].copy()
        grads[0][:, 2 * H:3 * H] *= 1.5  # the o block
        return tuple(grads)

    text = _feedback(E.check_lstm_step_backward(one_gate_off))
    assert "In da_x, the block of o (columns 8:12) is wrong; those of f, i and g are right." in text
    assert "Wrong: da_x. Right: dh_prev, dc_prev, dW_h, dg_h, db_h, dg_c, db_c." in text

    def transposed_weight_gradient(dh, cache):
        grads = list(gru_step_backward(dh, cache))
        grads[2] = grads[2].T
        return tuple(grads)

    text = _feedback(E.check_gru_step_backward(transposed_weight_gradient))
    assert "dW_hh has shape (12, 4); it should have shape (4, 12). Hint: that is the transpose" in text


# --------------------------------------------------------------------------------------------------
# stubs


def _stub(*args):
    raise NotImplementedError("exercise demo: replace this line with your code")


@pytest.mark.parametrize("checker", [
    E.check_layer_norm_forward,
    E.check_layer_norm_backward,
    lambda fn: E.check_layer_norm_backward(fn, kind="staged"),
    E.check_invariance_row,
    E.check_lstm_step_backward,
    E.check_gru_step_backward,
], ids=["forward", "compact", "staged", "invariance", "lstm", "gru"])
def test_a_stub_is_not_done_yet_rather_than_an_error(checker):
    result = checker(_stub)
    assert result.status == "not done"
    text = _feedback(result)
    assert "NOT DONE YET" in text and "exercise not done yet: _stub raised NotImplementedError" in text


# --------------------------------------------------------------------------------------------------
# the generator


SOLUTION = '''def f(x):
    """Doc."""
    ### BEGIN SOLUTION
    ### HINT: square it.
    y = x * x
    return y
    ### END SOLUTION'''


def test_strip_solutions_keeps_the_frame_and_replaces_the_region_by_a_stub_with_the_hint():
    out = B.strip_solutions(SOLUTION, grade_id="sq")
    assert out.splitlines() == [
        "def f(x):",
        '    """Doc."""',
        "    # YOUR CODE HERE",
        "    # Hint: square it.",
        '    raise NotImplementedError("exercise sq: replace this line with your code")',
    ]
    assert B.strip_solutions("y = 1", grade_id="all").splitlines()[0] == "# YOUR CODE HERE"  # nbgrader: whole cell
    with pytest.raises(ValueError, match="cell 3: expected '### END SOLUTION'"):
        B.strip_solutions(SOLUTION.rsplit("\n", 1)[0], where="cell 3")


def test_build_twice_gives_the_same_bytes_and_the_checked_in_sheets_are_a_fresh_build(tmp_path):
    first = B.build(NOTEBOOKS, tmp_path / "a")
    second = B.build(NOTEBOOKS, tmp_path / "b")
    assert [p.name for p in first] == [p.name for p in second] and first
    for a, b in zip(first, second):
        assert a.read_bytes() == b.read_bytes()
        assert (SHEETS / a.name).read_bytes() == a.read_bytes(), f"{a.name}: run `python -m lnedu exercises build`"
    assert B.check(NOTEBOOKS) == []
    assert main(["exercises", "build", "--notebooks", str(NOTEBOOKS), "--check"]) == 0


def test_student_sheets_hold_stubs_and_no_solutions():
    sources = B.exercise_notebooks(NOTEBOOKS)
    assert [p.stem + B.STUDENT_SUFFIX for p in sources] == sorted(p.name for p in SHEETS.glob("*.ipynb"))
    with_sheets = {p.stem for p in sources}

    def link(m):
        return f"]({m.group(1)}-exercises.ipynb" if m.group(1) in with_sheets else f"](../{m.group(1)}.ipynb"

    n_exercises = 0
    for source in sources:
        teacher = nbformat.read(source, as_version=4)
        student = nbformat.read(SHEETS / (source.stem + B.STUDENT_SUFFIX), as_version=4)
        assert student.cells[0].source.startswith(teacher.cells[0].source.splitlines()[0] + ": exercises")
        assert [c.id for c in student.cells] == [teacher.cells[0].id, "lnedu-exercise-sheet"] + [
            c.id for c in teacher.cells[1:]]
        assert "widgets" not in student.metadata
        for t, s in zip(teacher.cells[1:], student.cells[2:]):
            if s.cell_type == "code":
                assert s.outputs == [] and s.execution_count is None
            if B.is_solution_cell(t):
                n_exercises += 1
                assert B.is_solution_cell(s) and B.BEGIN_SOLUTION not in s.source
                assert "raise NotImplementedError" in s.source and "# Hint: " in s.source
                region = t.source.split(B.BEGIN_SOLUTION)[1].split(B.END_SOLUTION)[0]
                code = [line.strip() for line in region.splitlines() if line.strip() and "###" not in line]
                leaked = set(code) & {line.strip() for line in s.source.splitlines()}
                assert not leaked, f"solution lines leaked into the sheet: {leaked}"
            elif s.cell_type == "code":
                assert s.source == t.source
            else:  # links lead to the sibling's sheet where it has one, else up to the teaching notebook
                assert s.source == re.sub(r"\]\((\d\d-[\w-]+)\.ipynb", link, t.source)
    assert n_exercises >= 4


def test_teacher_versions_are_the_teaching_notebooks_and_need_a_folder(tmp_path, capsys):
    paths = B.build(NOTEBOOKS, tmp_path, teacher=True)
    assert paths and all(p.name.endswith(B.TEACHER_SUFFIX) for p in paths)
    for path in paths:
        teacher = nbformat.read(path, as_version=4)
        source = nbformat.read(NOTEBOOKS / path.name.replace(B.TEACHER_SUFFIX, ".ipynb"), as_version=4)
        assert teacher.cells[2:] == source.cells[1:]  # code, outputs and solutions as nbval checks them
    assert main(["exercises", "build", "--notebooks", str(NOTEBOOKS), "--teacher"]) == 2
    assert "out: expected a folder for the teacher versions" in capsys.readouterr().err


def _exercise_pairs(nb):
    cells = nb.cells
    return [(c, cells[k + 1]) for k, c in enumerate(cells) if B.is_solution_cell(c) and c.cell_type == "code"]


@pytest.mark.parametrize("path", B.exercise_notebooks(NOTEBOOKS), ids=lambda p: p.name)
def test_teacher_versions_pass_every_checker(path):
    nb = nbformat.read(path, as_version=4)
    pairs = _exercise_pairs(nb)
    assert pairs
    from lnedu.colab import is_install_cell

    imports = next(c for c in nb.cells if c.cell_type == "code" and not is_install_cell(c)).source
    namespace = {}
    exec("\n".join(line for line in imports.splitlines() if not line.startswith("%")), namespace)
    for solution, checker in pairs:
        assert B.is_checker_cell(checker)
        exec(solution.source, namespace)
        result = eval(checker.source, namespace)
        assert result.passed, f"{solution.id}:\n{result}"
        stored = "".join(o.get("data", {}).get("text/plain", "") for o in checker.outputs)
        assert stored == str(result), f"{checker.id}: the stored output is stale: re-execute {path.name}"


@pytest.mark.slow
@pytest.mark.parametrize("path", sorted(SHEETS.glob("*.ipynb")), ids=lambda p: p.name)
def test_student_sheets_run_top_to_bottom_and_say_not_done_yet(path):
    nb, run = execute_notebook(path, timeout=300)
    assert run.ok, run.error
    pairs = _exercise_pairs(nb)
    assert pairs
    for _, checker in pairs:
        text = "".join(o.get("data", {}).get("text/plain", "") for o in checker.outputs)
        assert "NOT DONE YET" in text and "exercise not done yet" in text, text


# --------------------------------------------------------------------------------------------------
# feedback prints plain numbers, and names a dtype that cannot pass (issue 20, item 14)


def test_feedback_prints_plain_numbers_not_numpy_reprs():
    def nan_in_one_place(x, gain, bias, eps):
        y = ln_right(x, gain, bias, eps)
        y[1, 3] = np.nan
        return y

    text = _feedback(E.check_layer_norm_forward(nan_in_one_place))
    assert "the first at y[1, 3]" in text and "np.int64" not in text

    def an_integer_verdict(layer, x, W):
        return (np.int64(0),) * 6

    text = _feedback(E.check_invariance_row(an_integer_verdict))
    assert "one verdict is a int64 (0)" in text and "np." not in text


def test_a_float32_answer_gets_a_dtype_hint():
    def in_float32(x, gain, bias, eps):
        return ln_right(*(a.astype(np.float32) for a in (x, gain, bias)), eps)

    text = _feedback(E.check_layer_norm_forward(in_float32))
    assert "NOT YET RIGHT" in text and "Hint: your y is float32" in text and "Compute in float64" in text

    def off_and_in_float32(x, gain, bias, eps):  # a real mistake gets no dtype hint
        return in_float32(x, gain, bias, eps) + 1.0

    assert "float32" not in _feedback(E.check_layer_norm_forward(off_and_in_float32))

    def lstm_in_float32(dh, dc, cache):
        return [a.astype(np.float32) for a in lstm_step_backward(dh, dc, cache)]

    assert "Hint: your da_x is float32" in _feedback(E.check_lstm_step_backward(lstm_in_float32))



# --------------------------------------------------------------------------------------------------
# issue 14: grading under nbgrader, stronger checkers, new exercises and questions


def test_under_a_grader_a_checker_raises_with_its_feedback_and_interactively_it_does_not(monkeypatch):
    for name in ("NBGRADER_EXECUTION", "LNEDU_GRADING"):
        monkeypatch.delenv(name, raising=False)
    quiet = E.check_layer_norm_forward(_stub)  # interactive: a result, no exception, shown as the cell's value
    assert quiet.status == "not done" and not hasattr(quiet, "_ipython_display_")
    with pytest.raises(AssertionError, match="NOT YET RIGHT"):
        E.check_layer_norm_forward(ln_unbiased).assert_passed()
    assert E.check_layer_norm_forward(ln_right).assert_passed().passed
    for name, value in (("NBGRADER_EXECUTION", "autograde"), ("NBGRADER_EXECUTION", "validate"),
                        ("LNEDU_GRADING", "1")):
        monkeypatch.setenv(name, value)
        with pytest.raises(AssertionError, match="NOT DONE YET"):
            E.check_layer_norm_forward(_stub)
        with pytest.raises(AssertionError, match="divides by H"):  # the feedback, hint included
            E.check_layer_norm_forward(ln_unbiased)
        with pytest.raises(AssertionError, match="not answered yet|not done yet"):
            E.check_answer("ln-entry", _stub)
        passed = E.check_layer_norm_forward(ln_right)
        assert passed.passed and callable(passed._ipython_display_)  # not a value nbgrader reads as a score
        monkeypatch.delenv(name)
    monkeypatch.setenv("LNEDU_GRADING", "0")
    assert E.check_layer_norm_forward(_stub).status == "not done"


def ln_one_pass(x, gain, bias, eps):
    mu = x.mean(axis=-1, keepdims=True)
    var = (x * x).mean(axis=-1, keepdims=True) - mu**2  # E[x^2] - E[x]^2
    return gain * (x - mu) / np.sqrt(var + eps) + bias


def test_forward_checker_catches_the_one_pass_variance_and_passes_a_two_pass_one():
    text = _feedback(E.check_layer_norm_forward(ln_one_pass))
    assert "NOT YET RIGHT" in text and "large common offset" in text and "one-pass variance" in text
    assert E.check_layer_norm_forward(ln_right).passed  # the naive two-pass formula is exact enough at 1e7


def test_compact_backward_checker_names_the_gain_applied_after_the_projection():
    def gain_after(dy, cache):
        xhat, rstd, gain = cache
        dx = gain * rstd * (dy - dy.mean(axis=-1, keepdims=True) - xhat * (dy * xhat).mean(axis=-1, keepdims=True))
        return dx, (dy * xhat).sum(axis=0), dy.sum(axis=0)

    assert "multiply dy by the gain *before* taking the row means" in _feedback(E.check_layer_norm_backward(gain_after))


def test_invariance_checker_catches_a_loose_tolerance_and_gives_only_the_relevant_hint():
    loose = _feedback(E.check_invariance_row(_row_measurer(tol=0.1)))  # passed before the small-input layers
    assert "NOT YET RIGHT" in loose and "a real change can be small" in loose
    negative = _feedback(E.check_invariance_row(_row_measurer(delta=-2.0)))
    assert "is your factor negative?" in negative
    assert "a training case is one row" not in negative and "not with ==" not in negative
    rows = _feedback(E.check_invariance_row(_row_measurer(recenter_w="rows")))
    assert "every column of W" in rows and "not with ==" not in rows  # they did use a tolerance


def test_step_checkers_hint_on_a_half_done_answer():
    def without_recurrent_ln(dh, dc, cache):  # skips LN_h and leaves its gain and bias gradients at zero
        g = F.lstm_step_backward(dh, dc, cache._replace(norm_h=None))
        H4 = cache.gates.shape[1]
        return g.a_x, g.h_prev, g.c_prev, g.W_h, np.zeros(H4), np.zeros(H4), *g.norm_c

    text = _feedback(E.check_lstm_step_backward(without_recurrent_ln))
    assert "Wrong: dh_prev, dW_h, dg_h, db_h" in text and "Hint: the recurrent term is LN(h_prev W_h" in text


def test_the_questions_answers_are_computed_by_lnedu_and_agree_with_the_hand_calculation():
    by_hand = {"ln-entry": 3 / np.sqrt(3.5), "ln-negative-factor": -1.0,
               "eps-rescale": np.sqrt((1e-3 + 1e-5) / (1e-3 + 1e-5 * 64)), "wn-quad-form-triple": 1 / 9,
               "wn-ds-triple": 1 / 3, "forget-carousel": 0.9**10, "tanh-gradient": 0.19}
    assert set(by_hand) == set(E.QUESTIONS)
    for qid, value in by_hand.items():
        assert E.QUESTIONS[qid].answer() == pytest.approx(value, rel=1e-9), qid
        assert E.check_answer(qid, value).passed and E.check_answer(qid, lambda v=value: v).passed
        assert E.check_answer(qid, round(value, 3) if value > 0.1 else value * 1.002).passed  # three digits
        assert not E.check_answer(qid, value * 1.1 + 0.01).passed
        for slip, hint in E.QUESTIONS[qid].slips():  # every slip differs from the answer and gets its hint
            assert abs(slip - value) > 1e-3 * abs(value), (qid, slip)
            assert " ".join(hint.split()) in _feedback(E.check_answer(qid, slip)), (qid, slip)


def test_a_question_left_open_is_not_done_and_a_wrong_type_fails():
    assert E.check_answer("ln-entry", None).status == "not done"
    assert E.check_answer("ln-entry", _stub).status == "not done"
    assert "expected one number" in _feedback(E.check_answer("ln-entry", "1.6"))
    assert "expected one number" in _feedback(E.check_answer("ln-entry", [1.6, 2.0]))
    with pytest.raises(ValueError, match="question: expected one of"):
        E.check_answer("no-such-question", 1.0)


def wn_fisher_block(X, w, g, b):
    norm = np.linalg.norm(w)
    a = X @ w
    p = 1 / (1 + np.exp(-(g * a / norm + b)))
    chi = X - np.outer(a / norm**2, w)
    return (g / norm) ** 2 * (chi * (p * (1 - p))[:, None]).T @ chi / len(X)


def test_fisher_block_checker_accepts_the_formula_and_names_each_slip():
    from lnedu.exercises import theory_checkers as T

    assert E.check_wn_fisher_block(wn_fisher_block).passed
    assert E.check_wn_fisher_block(_stub).status == "not done"
    for flags, hint in T._WN_SLIPS:
        result = E.check_wn_fisher_block(lambda X, w, g, b, f=flags: T._wn_block_variant(X, w, g, b, **f))
        assert result.status == "failed" and " ".join(hint.split()) in _feedback(result), flags


def lstm_bptt(dout, dh_T, dc_T, caches, mask):
    T = len(caches)
    dh, dc = dh_T.copy(), dc_T.copy()
    da_x = np.zeros((T,) + caches[0].gates.shape)
    dW_h = dg_h = db_h = dg_c = db_c = 0.0
    for t in reversed(range(T)):
        m = mask[t][:, None]
        g = F.lstm_step_backward((dh + dout[t]) * m, dc * m, caches[t])
        da_x[t] = g.a_x
        dW_h, dg_h, db_h = dW_h + g.W_h, dg_h + g.norm_h[0], db_h + g.norm_h[1]
        dg_c, db_c = dg_c + g.norm_c[0], db_c + g.norm_c[1]
        dh, dc = np.where(m, g.h_prev, dh), np.where(m, g.c_prev, dc)
    return da_x, dh, dc, dW_h, dg_h, db_h, dg_c, db_c


def test_bptt_checker_compares_with_the_layer_and_names_each_slip():
    from lnedu.exercises import theory_checkers as T

    assert E.check_lstm_bptt(lstm_bptt).passed
    assert E.check_lstm_bptt(_stub).status == "not done"
    for flags, hint in T._BPTT_SLIPS:
        def slipped(dout, dh_T, dc_T, caches, mask, f=flags):
            return T._bptt_reference(caches, mask, dout, (dh_T, dc_T), **f)

        result = E.check_lstm_bptt(slipped)
        assert result.status == "failed" and " ".join(hint.split()) in _feedback(result), flags

    def half_done(dout, dh_T, dc_T, caches, mask):  # right gradients of the state, parameter sums not taken
        out = list(lstm_bptt(dout, dh_T, dc_T, caches, mask))
        return out[:3] + [g * 0 for g in out[3:]]

    assert "Wrong: dW_h, dg_h, db_h, dg_c, db_c. Right: da_x, dh_0, dc_0." in _feedback(E.check_lstm_bptt(half_done))


def test_build_refuses_a_hint_inside_a_solution_region_since_nbgrader_drops_it():
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"},
                                            "language_info": {"name": "python"}})
    nb.cells = [nbformat.v4.new_markdown_cell("# 99. Demo"), nbformat.v4.new_code_cell(SOLUTION),
                nbformat.v4.new_code_cell("check(f)")]
    nb.cells[1].metadata["nbgrader"] = {"solution": True, "grade": False, "grade_id": "sq", "locked": False}
    nb.cells[2].metadata["nbgrader"] = {"solution": False, "grade": True, "grade_id": "sq-check", "points": 1}
    with pytest.raises(ValueError, match="expected the hint above '### BEGIN SOLUTION'"):
        B.student_version(nb, "99-demo.ipynb")
    nb.cells[1].source = SOLUTION.replace("    ### HINT: square it.\n", "").replace(
        "    ### BEGIN", "    # Hint: square it.\n    ### BEGIN")
    sheet = B.student_version(nb, "99-demo.ipynb")
    assert "# Hint: square it." in sheet.cells[2].source and "x * x" not in sheet.cells[2].source


def test_every_theory_notebook_has_an_exercise_or_a_checked_question():
    for number in ("01", "02", "03", "04"):
        path = next(NOTEBOOKS.glob(f"{number}-*.ipynb"))
        nb = nbformat.read(path, as_version=4)
        checked = [c for c in nb.cells if B.is_checker_cell(c)]
        assert any("check_answer(" in c.source for c in checked), f"{path.name}: no pen-and-paper question"
        assert any("check_answer(" not in c.source for c in checked), f"{path.name}: no coding exercise"
