"""Checkpoints: an interrupted-and-resumed run equals the uninterrupted one, and saving is atomic."""

from __future__ import annotations

import os

import numpy as np
import pytest

from lnedu.checkpoint import DamagedCheckpoint, load_checkpoint, load_state, read_meta, save_checkpoint, save_state
from lnedu.nn import LSTM, Dropout, Embedding, Linear, Module, SequenceCrossEntropy, Sequential, Tanh
from lnedu.optim import SGD, Adam

V, D, H, T, B = 7, 5, 6, 4, 3


class _LSTMLanguageModel(Module):
    """Tokens -> embedding -> LN-LSTM -> dropout -> logits."""

    def __init__(self, rng):
        super().__init__()
        self.emb = self.add_module("emb", Embedding(V, D, rng=rng))
        self.rnn = self.add_module("rnn", LSTM(D, H, ln="appendix", rng=rng))
        self.drop = self.add_module("drop", Dropout(0.2, rng=rng))
        self.out = self.add_module("out", Linear(H, V, rng=rng))

    def forward(self, idx):
        h, _ = self.rnn.forward(self.emb.forward(idx))
        return self.out.forward(self.drop.forward(h))

    def backward(self, dlogits):
        dx, _ = self.rnn.backward(self.drop.backward(self.out.backward(dlogits)))
        return self.emb.backward(dx)


def _build(seed=0, kind="mlp"):
    """A tiny language model and its Adam: ``"mlp"`` (embedding -> tanh layer -> dropout -> logits) or
    ``"lstm"`` (:class:`_LSTMLanguageModel`).

    Every piece of state that affects the next step lives in the model, the optimizer (moments, step
    count, decayed learning rate) or the shared Generator (data and dropout masks).
    """
    rng = np.random.default_rng(seed)
    if kind == "lstm":
        model = _LSTMLanguageModel(rng)
    else:
        model = Sequential(Embedding(V, D, rng=rng), Linear(D, H, rng=rng), Tanh(), Dropout(0.2, rng=rng),
                           Linear(H, V, rng=rng))
    opt = Adam(model, lr=3e-2, clip=0.5, lr_decay=1e-2)
    return model, opt, rng


def _train(model, opt, rng, steps):
    ce = SequenceCrossEntropy()
    losses = []
    for _ in range(steps):
        idx = rng.integers(0, V, size=(T + 1, B))
        mask = (rng.random((T, B)) > 0.2).astype(np.float32)
        mask[0] = 1
        opt.zero_grad()
        losses.append(ce.forward(model.forward(idx[:-1]), idx[1:], mask))
        model.backward(ce.backward())
        opt.step()
    return losses


def _params(model):
    return {k: p.copy() for k, p, _ in model.named_parameters()}


@pytest.mark.parametrize("kind", ["mlp", "lstm"])
def test_resume_is_bit_for_bit(tmp_path, kind):
    N = 8
    model_a, opt_a, rng_a = _build(kind=kind)
    losses_a = _train(model_a, opt_a, rng_a, N)

    model_b, opt_b, rng_b = _build(kind=kind)
    losses_b = _train(model_b, opt_b, rng_b, N // 2)
    path = tmp_path / "ckpt.npz"
    save_checkpoint(path, model_b, opt_b, step=N // 2, rng_state=rng_b, extra={"losses": losses_b, "note": "half"})

    # a fresh model (different seed: every number must come from the file) and a fresh optimizer
    model_c, opt_c, rng_c = _build(seed=123, kind=kind)
    step, extra = load_checkpoint(path, model_c, opt_c, rng=rng_c)
    assert step == N // 2
    assert extra == {"losses": losses_b, "note": "half"}
    assert opt_c.t == opt_b.t and opt_c.lr == opt_b.lr
    losses_c = extra["losses"] + _train(model_c, opt_c, rng_c, N - step)

    assert losses_c == losses_a
    pa, pc = _params(model_a), _params(model_c)
    assert pa.keys() == pc.keys()
    for k in pa:
        assert pa[k].dtype == pc[k].dtype
        np.testing.assert_array_equal(pa[k], pc[k], err_msg=k)
    for k in opt_a.m:
        np.testing.assert_array_equal(opt_a.m[k], opt_c.m[k])
        np.testing.assert_array_equal(opt_a.v[k], opt_c.v[k])


def test_without_rng_restore_the_run_differs(tmp_path):
    """The Generator state matters: resuming with a fresh Generator gives a different run (so the test above
    is not passing by accident)."""
    model_a, opt_a, rng_a = _build()
    _train(model_a, opt_a, rng_a, 4)
    model_b, opt_b, rng_b = _build()
    _train(model_b, opt_b, rng_b, 2)
    save_checkpoint(tmp_path / "c.npz", model_b, opt_b, step=2, rng_state=rng_b)
    model_c, opt_c, _ = _build()
    load_checkpoint(tmp_path / "c.npz", model_c, opt_c)
    _train(model_c, opt_c, np.random.default_rng(99), 2)
    pa, pc = _params(model_a), _params(model_c)
    assert any(not np.array_equal(pa[k], pc[k]) for k in pa)


def test_interrupted_write_leaves_previous_checkpoint(tmp_path, monkeypatch):
    model, opt, rng = _build()
    _train(model, opt, rng, 2)
    path = tmp_path / "ckpt.npz"
    save_checkpoint(path, model, opt, step=2, rng_state=rng, extra={"tag": "first"})
    before = path.read_bytes()
    saved_params = _params(model)

    _train(model, opt, rng, 1)

    def savez_then_crash(f, **arrays):  # writes part of a file, then dies (disk full, Ctrl-C, ...)
        f.write(b"PK\x03\x04 half a zip file")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", savez_then_crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, model, opt, step=3, rng_state=rng, extra={"tag": "second"})
    monkeypatch.undo()

    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["ckpt.npz"]  # no temporary file left behind
    fresh, fresh_opt, _ = _build(seed=5)
    step, extra = load_checkpoint(path, fresh, fresh_opt)
    assert (step, extra) == (2, {"tag": "first"})
    for k, p in _params(fresh).items():
        np.testing.assert_array_equal(p, saved_params[k])


def test_mismatched_model_or_optimizer_is_rejected_and_leaves_state(tmp_path):
    model, opt, rng = _build()
    _train(model, opt, rng, 1)
    path = tmp_path / "c.npz"
    save_checkpoint(path, model, opt, step=1, rng_state=rng)

    other = Sequential(Embedding(V, D), Linear(D, H + 1), Tanh(), Linear(H + 1, V))
    before = _params(other)
    with pytest.raises(ValueError, match="state"):
        load_checkpoint(path, other)
    for k, p in _params(other).items():
        np.testing.assert_array_equal(p, before[k])

    model2, _, _ = _build(seed=1)
    before = _params(model2)
    with pytest.raises(TypeError, match="optimizer: expected the saved optimizer class Adam, got SGD"):
        load_checkpoint(path, model2, SGD(model2, lr=0.1))
    for k, p in _params(model2).items():
        np.testing.assert_array_equal(p, before[k])


def test_meta_and_argument_checks(tmp_path):
    model, opt, rng = _build()
    path = tmp_path / "sub" / "c.npz"
    save_checkpoint(path, model, None, step=0, extra=[1, 2.5, "x"])
    meta = read_meta(path)
    assert meta["step"] == 0 and meta["optimizer"] is None and meta["rng_state"] is None
    assert meta["extra"] == [1, 2.5, "x"]
    with pytest.raises(ValueError, match="no optimizer state"):
        load_checkpoint(path, model, opt)
    with pytest.raises(ValueError, match="rng_state"):
        load_checkpoint(path, model, rng=np.random.default_rng())
    with pytest.raises(ValueError, match="step"):
        save_checkpoint(path, model, opt, step=-1)
    with pytest.raises(TypeError, match="model"):
        save_checkpoint(path, opt, opt, step=0)
    with pytest.raises(TypeError, match="extra"):
        save_checkpoint(path, model, opt, step=0, extra={"bad": object()})
    np.savez(tmp_path / "plain.npz", a=np.zeros(2))
    with pytest.raises(ValueError, match="lnedu checkpoint"):
        load_checkpoint(tmp_path / "plain.npz", model)


def test_mt19937_state_round_trips(tmp_path):
    """A bit generator whose state holds an array (MT19937's key) survives the JSON encoding."""
    model, opt, _ = _build()
    rng = np.random.Generator(np.random.MT19937(3))
    rng.random(10)
    save_checkpoint(tmp_path / "c.npz", model, opt, step=0, rng_state=rng)
    expected = rng.random(5)
    other = np.random.Generator(np.random.MT19937(0))
    load_checkpoint(tmp_path / "c.npz", model, opt, rng=other)
    np.testing.assert_array_equal(other.random(5), expected)


# ---- damaged files: refused in one line naming the file, never unpickled, never a traceback ----------------


def _saved(tmp_path):
    model, opt, rng = _build()
    _train(model, opt, rng, 2)
    path = tmp_path / "ckpt.npz"
    save_checkpoint(path, model, opt, step=2, rng_state=rng)
    return path, model, opt


def _rewrite(path, change):
    """Load every entry of ``path``, let ``change`` edit the dict, save it back (an uncompressed .npz)."""
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    change(arrays)
    np.savez(path, **arrays)


DAMAGE = {
    "empty": lambda p: p.write_bytes(b""),
    "truncated": lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]),
    "zeroed": lambda p: p.write_bytes(bytes(len(p.read_bytes()))),
    "garbage": lambda p: p.write_bytes(np.random.default_rng(0).bytes(500)),
    "pickled entry": lambda p: np.savez(p, step=np.array(2), meta=np.array([{"x": 1}], dtype=object)),
    "no meta": lambda p: _rewrite(p, lambda a: a.pop("meta")),
    "meta not JSON": lambda p: _rewrite(p, lambda a: a.update(meta=np.array("{not json"))),
    "negative step": lambda p: _rewrite(p, lambda a: a.update(step=np.array(-3))),
    "float step": lambda p: _rewrite(p, lambda a: a.update(step=np.array(2.5))),
    "nan parameter": lambda p: _rewrite(p, lambda a: a["model/1.W"].__setitem__((0, 0), np.nan)),
    "inf moment": lambda p: _rewrite(p, lambda a: a["optim/m:0/1.W"].__setitem__((0, 0), np.inf)),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_checkpoint_is_refused_naming_the_file(tmp_path, damage):
    path, _, _ = _saved(tmp_path)
    DAMAGE[damage](path)
    fresh, fresh_opt, _ = _build(seed=7)
    before = _params(fresh)
    for read in (lambda: load_checkpoint(path, fresh, fresh_opt), lambda: read_meta(path)):
        with pytest.raises(DamagedCheckpoint) as err:
            read()
        msg = str(err.value)
        assert msg.startswith(f"{path}: ") and "\n" not in msg
        assert "allow_pickle" not in msg  # never nudged toward unsafe loading
    for k, p in _params(fresh).items():  # nothing was loaded
        np.testing.assert_array_equal(p, before[k])


def test_nan_parameter_is_named(tmp_path):
    path, _, _ = _saved(tmp_path)
    DAMAGE["nan parameter"](path)
    with pytest.raises(DamagedCheckpoint, match=r"entry 'model/1.W' holds NaN or infinite numbers"):
        load_checkpoint(path, _build()[0])


def test_save_state_round_trips_any_state_dict(tmp_path):
    rng = np.random.default_rng(4)
    state = {"model/W": rng.normal(size=(3, 2)).astype(np.float32), "t": np.array(17), "rng/g": np.array('{"a": 1}')}
    save_state(tmp_path / "s.npz", state, step=17, extra={"config": "{}"})
    step, back, extra = load_state(tmp_path / "s.npz")
    assert step == 17 and extra == {"config": "{}"} and back.keys() == state.keys()
    for k in state:
        assert back[k].dtype == state[k].dtype
        np.testing.assert_array_equal(back[k], state[k])
    assert read_meta(tmp_path / "s.npz")["format"] == "lnedu-checkpoint/1"
    with pytest.raises(ValueError, match="step: expected a non-negative integer"):
        save_state(tmp_path / "s.npz", state, step=-1)


def test_the_runners_old_checkpoints_still_load_for_one_release(tmp_path):
    w = np.arange(6.0).reshape(2, 3)
    np.savez(tmp_path / "old.npz", **{"model/W": w, "__step__": np.array(5), "__config__": np.array('{"a": 1}')})
    step, state, extra = load_state(tmp_path / "old.npz")
    assert step == 5 and extra == {"config": '{"a": 1}'} and list(state) == ["model/W"]
    np.testing.assert_array_equal(state["model/W"], w)
    np.savez(tmp_path / "old.npz", **{"model/W": w, "__step__": np.array(5)})
    with pytest.raises(DamagedCheckpoint, match="no '__config__' entry"):
        load_state(tmp_path / "old.npz")
