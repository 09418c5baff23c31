"""The recurrent package's shape and its time loops (lnedu/nn/recurrent/): the BPTT loops of bptt.py on a cell
written here, the stacked layers' backward against finite differences, one flat class per cell family, and
the GRU/MGU candidate parameters' old names still loading."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import numpy as np
import pytest

import lnedu.nn.recurrent as R
from lnedu.gradcheck import check_gradients
from lnedu.nn import BNLSTM, GRU, LSTM, MGU, RNN, Linear, Module, NormPropLSTM, StackedRNN
from lnedu.nn.recurrent import RecurrentLayer
from lnedu.nn.recurrent.bptt import run_backward, run_forward

TOL = 1e-7
CELLS = [LSTM, GRU, MGU, RNN, BNLSTM, NormPropLSTM]
OPERATIONS = ("input_term", "input_term_backward", "step_context", "step", "step_backward", "recurrent_grads")


# --------------------------------------------------------------------------------------------------
# the loops of bptt.py with a cell written out here: h_t = tanh(x_t U + h_{t-1} W)


class TanhCell:
    """The smallest cell the loops accept: no Module, no norms, the five operations and a step context."""

    hidden_size = 3

    def __init__(self, rng):
        self.U, self.W = rng.normal(0, 0.7, (2, 3)), rng.normal(0, 0.7, (3, 3))
        self.dU, self.dW = np.zeros_like(self.U), np.zeros_like(self.W)

    def input_term(self, x):
        return x @ self.U, x

    def input_term_backward(self, dA, x):
        self.dU += np.einsum("tbd,tbk->dk", x, dA)
        return dA @ self.U.T

    def step_context(self, T):
        return type("Ctx", (), {"own_da_h": False})()

    def step(self, t, a_t, state, ctx):
        h = np.tanh(a_t + state[0] @ self.W)
        return (h,), (state[0], h)

    def step_backward(self, t, dstate, cache, ctx, out):
        h_prev, h = cache
        out[...] = dstate[0] * (1 - h * h)
        return (out @ self.W.T,), out

    def recurrent_grads(self, ctx, Hs, caches, dAh):
        self.dW += np.einsum("tbh,tbk->hk", Hs[:-1], dAh)


@pytest.mark.parametrize("masked", [False, True])
def test_the_bptt_loops_with_a_cell_written_out_against_finite_differences(masked):
    rng = np.random.default_rng(1)
    cell = TanhCell(rng)
    T, B = 5, 3
    x, h0 = rng.normal(size=(T, B, 2)), rng.normal(size=(B, 3))
    mask = (np.arange(T)[:, None] < np.array([5, 2, 4])) if masked else None
    if masked:
        mask[1, 2] = False  # a hole in the middle
    R_out, R_fin = rng.normal(size=(T, B, 3)), rng.normal(size=(B, 3))

    def loss():
        out, fin = run_forward(cell, x, (h0,), mask)[:2]
        return float((out * R_out).sum() + (fin[0] * R_fin).sum())

    out, fin, cache = run_forward(cell, x, (h0,), mask)
    if masked:
        assert np.all(out[~mask] == 0)
        np.testing.assert_array_equal(fin[0][1], out[1, 1])  # sequence 1 ends at step 2: its state stays
    dx, (dh0,) = run_backward(cell, cache, R_out, (R_fin,), mask)
    if masked:
        assert np.all(dx[~mask] == 0)  # a padded step receives no gradient
    rep = check_gradients(loss, {"x": x, "h0": h0, "U": cell.U, "W": cell.W},
                          {"x": dx, "h0": dh0, "U": cell.dU, "W": cell.dW})
    assert rep.max_rel_error < TOL, rep


# --------------------------------------------------------------------------------------------------
# the stacked layers' backward (issue 20, item 18: it was checked by its shapes only)


def _randomize(model, rng):
    """Gains off 1, biases (and learned initial states) off 0: every parameter matters."""
    for name, p, _ in model.named_parameters():
        leaf = name.split(".")[-1]
        if leaf.startswith("g"):
            p[...] = p * rng.uniform(0.7, 1.3, p.shape)
        elif leaf.startswith("b") or leaf in ("h0", "c0"):
            p[...] = p + rng.normal(0, 0.5, p.shape)
    return model


STACKS = {
    "GRU x3 (build)": lambda: StackedRNN.build(GRU, 3, 4, num_layers=3, ln="appendix", reset="before", rng=0),
    "RNN, MGU, LSTM": lambda: StackedRNN([RNN(3, 4, ln="eq4", rng=1), MGU(4, 3, ln="appendix", rng=2),
                                          LSTM(3, 2, ln="cell", rng=3)]),
    "NormProp, BN-LSTM, WN-LSTM": lambda: StackedRNN([NormPropLSTM(3, 3, rng=4), BNLSTM(3, 4, gamma=0.5, rng=5),
                                                      LSTM(4, 3, weight_norm=True, rng=6)]),
}


@pytest.mark.parametrize("name", list(STACKS))
@pytest.mark.parametrize("masked", [False, True])
def test_stacked_rnn_backward_against_finite_differences(name, masked):
    """Every parameter of every layer, the input and every layer's initial state, with random gradients on
    the output and on every layer's final state, in float64."""
    rng = np.random.default_rng(len(name) + masked)
    stack = _randomize(STACKS[name]().astype(np.float64), rng)
    T, B = 5, 3
    x = rng.normal(size=(T, B, stack.input_size))
    s0 = [tuple(rng.normal(0, 0.8, (B, layer.hidden_size)) for _ in layer.state_names) for layer in stack]
    mask = (np.arange(T)[:, None] < np.array([5, 2, 4])) if masked else None
    R_out = rng.normal(size=(T, B, stack.hidden_size))
    R_fin = [tuple(rng.normal(size=s.shape) for s in st) for st in s0]

    def loss():
        out, fins = stack.forward(x, s0, mask)
        return float((out * R_out).sum() + sum((f * r).sum() for fs, rs in zip(fins, R_fin) for f, r in zip(fs, rs)))

    stack.zero_grad()
    stack.forward(x, s0, mask)
    dx, ds0 = stack.backward(R_out, R_fin)
    arrays = {k: p for k, p, _ in stack.named_parameters()}
    analytic = {k: g.copy() for k, _, g in stack.named_parameters()}
    arrays["x"], analytic["x"] = x, dx
    for i, (states, dstates) in enumerate(zip(s0, ds0)):
        for k, (s, d) in enumerate(zip(states, dstates)):
            arrays[f"state0[{i}][{k}]"], analytic[f"state0[{i}][{k}]"] = s, d
    # h = 1e-6: with batch norm between two weight-normalized layers the default step's truncation error
    # (it falls as h^2: 3e-5 at h=1e-4, 3e-7 at 1e-5) reaches the bound
    rep = check_gradients(loss, arrays, analytic, h=1e-6)
    assert rep.max_rel_error < TOL, rep


def test_stacked_rnn_truncated_bptt_chains_through_every_layer():
    """Two windows with the states carried equal one long window: outputs, dx and every gradient."""
    rng = np.random.default_rng(3)
    make = lambda: StackedRNN([LSTM(3, 4, ln="appendix", rng=1), GRU(4, 3, rng=2)]).astype(np.float64)  # noqa: E731
    full, half = make(), make()
    x, dout = rng.normal(size=(8, 2, 3)), rng.normal(size=(8, 2, 3))
    out, _ = full.forward(x)
    dx_full, _ = full.backward(dout)
    o1, s1 = half.forward(x[:4])
    o1 = o1.copy()
    o2, _ = half.forward(x[4:], s1)
    np.testing.assert_allclose(np.concatenate([o1, o2]), out, rtol=1e-12, atol=1e-13)
    dx2, dmid = half.backward(dout[4:])
    half.forward(x[:4])
    dx1, _ = half.backward(dout[:4], dmid)
    np.testing.assert_allclose(np.concatenate([dx1, dx2]), dx_full, rtol=1e-10, atol=1e-12)
    for k, _, g in full.named_parameters():
        np.testing.assert_allclose(dict((n, h) for n, _, h in half.named_parameters())[k], g, rtol=1e-10,
                                   atol=1e-12)


# --------------------------------------------------------------------------------------------------
# the package's shape (issue 13, item 3)


def _package_classes():
    for info in pkgutil.iter_modules(R.__path__):
        mod = importlib.import_module(f"{R.__name__}.{info.name}")
        for _, cls in inspect.getmembers(mod, inspect.isclass):
            if cls.__module__ == mod.__name__:
                yield cls


def test_no_recurrent_class_derives_from_another_and_no_hook_is_abstract():
    classes = list(_package_classes())
    assert set(CELLS + [StackedRNN]) <= set(classes)
    for cls in classes:  # nothing in the package inherits from anything else in the package
        inherited = [b for b in cls.__mro__[1:] if b.__module__.startswith(R.__name__)]
        assert not inherited, f"{cls.__name__} derives from {inherited}"
    for cls in CELLS + [StackedRNN]:
        assert cls.__mro__ == (cls, Module, object), cls
    for cls in CELLS:  # each cell writes out its own operations; none is a placeholder
        for name in OPERATIONS + ("forward", "backward", "__init__"):
            op = cls.__dict__.get(name)
            assert callable(op), f"{cls.__name__}.{name}"
            assert not getattr(op, "__isabstractmethod__", False)
            assert "NotImplementedError" not in inspect.getsource(op), f"{cls.__name__}.{name}"
        assert cls.state_names == cls._state_names  # the old private name stays for one release


def test_recurrent_layer_is_the_interface_callers_check():
    for layer in [LSTM(3, 4), GRU(3, 4), MGU(3, 4), RNN(3, 4), BNLSTM(3, 4), NormPropLSTM(3, 4),
                  LSTM(3, 4, weight_norm=True)]:
        assert isinstance(layer, RecurrentLayer), type(layer).__name__
    assert not isinstance(Linear(3, 4), RecurrentLayer)
    assert not isinstance(StackedRNN([LSTM(3, 4)]), RecurrentLayer)  # a stack does not nest into a stack
    with pytest.raises(TypeError, match="layers\\[0\\]: expected a recurrent layer"):
        StackedRNN([Linear(3, 4)])


def test_weight_norm_lstm_is_an_lstm_option():
    with pytest.raises(ValueError, match="weight_norm: expected ln=None"):
        LSTM(3, 4, ln="appendix", weight_norm=True)
    wn = LSTM(3, 4, weight_norm=True, rng=2)
    assert list(wn.params) == ["W_x", "W_h", "b", "g_x", "g_h"]
    np.testing.assert_allclose(wn.params["g_h"], np.linalg.norm(wn.params["W_h"], axis=0), rtol=1e-6)
    assert "weight_norm=True" in repr(wn)


# --------------------------------------------------------------------------------------------------
# the GRU/MGU candidate's old parameter names still load (for one release)

# written out by hand (not read from the package), the names saved before the rename
OLD_NAMES = {"W_xhat": "W_xc", "W_hhat": "W_hc", "b_hat": "b_c", "g_xhat": "g_xc", "b_xhat": "b_xc",
             "g_hhat": "g_hc", "b_hhat": "b_hc", "g_hat": "g_c"}


def _as_saved_before(state, prefix=""):
    """``state`` with the candidate's parameters under their old names (those that start with ``prefix``)."""
    out = {}
    for k, v in state.items():
        head, _, leaf = k.rpartition(".")
        if k.startswith(prefix) and leaf in OLD_NAMES:
            k = (head + "." if head else "") + OLD_NAMES[leaf]
        out[k] = v
    return out


@pytest.mark.parametrize("make", [lambda r: GRU(3, 4, ln="appendix", rng=r),
                                  lambda r: GRU(3, 4, ln="eq4", reset="before", rng=r),
                                  lambda r: MGU(3, 4, ln="appendix", rng=r),
                                  lambda r: MGU(3, 4, ln="eq4", learn_h0=True, rng=r)])
def test_old_candidate_names_load(make):
    rng = np.random.default_rng(0)
    a = _randomize(make(1), rng)
    old = _as_saved_before(a.state_dict())
    assert set(old) != set(a.state_dict())  # the old names differ
    b = make(2)
    with pytest.warns(DeprecationWarning, match="old parameter names"):
        b.load_state_dict(old)
    x = rng.normal(size=(4, 2, 3)).astype(np.float32)
    np.testing.assert_array_equal(a.forward(x)[0], b.forward(x)[0])
    for k, p in a.params.items():
        np.testing.assert_array_equal(b.params[k], p)


def test_old_candidate_names_load_inside_a_model_and_leave_the_lstm_cell_alone():
    """In a stack of an LN-LSTM (whose ``b_c``, ``g_c`` are its cell LN) and a GRU, only the GRU's names move."""
    rng = np.random.default_rng(1)

    def make(r):
        return StackedRNN([LSTM(3, 4, ln="appendix", rng=r), GRU(4, 3, ln="eq4", rng=r + 1)])

    a = _randomize(make(1), rng)
    old = _as_saved_before(a.state_dict(), prefix="1.")
    assert {"0.b_c", "0.g_c", "1.b_c", "1.g_c", "1.W_hc"} <= set(old)
    b = make(5)
    with pytest.warns(DeprecationWarning):
        b.load_state_dict(old)
    for k, p, _ in a.named_parameters():
        np.testing.assert_array_equal(dict((n, q) for n, q, _ in b.named_parameters())[k], p)
    both = dict(old, **{"1.b_hat": old["1.b_c"]})  # an old and a new name for one parameter: refused
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="unexpected \\['1.b_c'\\]"):
        make(5).load_state_dict(both)
