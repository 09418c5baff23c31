"""The sequence toolkit around recurrent layers: Embedding, Dropout and the sequence cross-entropy."""

from __future__ import annotations

import numpy as np
import pytest

from lnedu import init as I
from lnedu.gradcheck import check_gradients, check_module
from lnedu.nn import LSTM, Dropout, Embedding, Linear, SequenceCrossEntropy


def _log_softmax_reference(z):
    """Log-softmax written independently of lnedu (log-sum-exp in float64)."""
    z = np.asarray(z, dtype=np.float64)
    m = z.max(axis=-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=-1, keepdims=True))


# ---------------------------------------------------------------------------------------------------
# Embedding


@pytest.mark.parametrize("seed,V,D,T,B", [(0, 5, 3, 4, 3), (1, 3, 4, 6, 2), (2, 7, 2, 3, 5)])
def test_embedding_gradcheck_with_repeated_tokens(seed, V, D, T, B):
    rng = np.random.default_rng(seed)
    emb = Embedding(V, D, rng=rng, dtype=np.float64)
    idx = rng.integers(0, V, size=(T, B))
    assert len(np.unique(idx)) < idx.size  # some tokens repeat: their gradients must add
    report = check_module(emb, idx, seed=seed, check_input=False)
    assert report.max_rel_error < 1e-7, str(report)


def test_embedding_forward_is_row_lookup_and_backward_is_onehot_transpose():
    rng = np.random.default_rng(3)
    V, D = 6, 4
    emb = Embedding(V, D, rng=rng, dtype=np.float64)
    idx = np.array([[1, 1, 4], [0, 1, 5]])
    y = emb.forward(idx)
    onehot = np.eye(V)[idx]  # (2, 3, V)
    np.testing.assert_allclose(y, onehot @ emb.params["W"], rtol=0, atol=1e-15)
    dy = rng.standard_normal(y.shape)
    emb.zero_grad()
    assert emb.backward(dy) is None  # integer indices have no gradient
    expected = onehot.reshape(-1, V).T @ dy.reshape(-1, D)
    np.testing.assert_allclose(emb.grads["W"], expected, rtol=1e-13, atol=1e-13)
    assert not emb.grads["W"][[2, 3]].any()  # tokens that never occur get no gradient
    # backward accumulates
    emb.backward(dy)
    np.testing.assert_allclose(emb.grads["W"], 2 * expected, rtol=1e-13, atol=1e-13)


def test_embedding_validates_indices():
    emb = Embedding(4, 2, rng=0)
    with pytest.raises(TypeError, match="idx"):
        emb.forward(np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        emb.forward(np.array([0, 4]))
    with pytest.raises(ValueError, match="idx"):
        emb.forward(np.array([-1, 2]))
    with pytest.raises(ValueError, match="num_embeddings"):
        Embedding(0, 2)
    emb.forward(np.array([[1, 2]]))
    with pytest.raises(ValueError, match="dy"):
        emb.backward(np.zeros((1, 2, 3), dtype=np.float32))


def test_embedding_dtype_and_seed():
    a = Embedding(5, 3, rng=7)
    b = Embedding(5, 3, rng=7)
    assert a.params["W"].dtype == np.float32
    np.testing.assert_array_equal(a.params["W"], b.params["W"])
    assert not np.array_equal(a.params["W"], Embedding(5, 3, rng=8).params["W"])


# ---------------------------------------------------------------------------------------------------
# Dropout


def test_dropout_mask_scaling_and_backward():
    rng = np.random.default_rng(0)
    p = 0.3
    drop = Dropout(p, rng=1)
    x = rng.standard_normal((50, 40, 10)) + 2.0  # no zeros in x, so zeros in y are dropped entries
    y = drop.forward(x)
    kept = y != 0
    np.testing.assert_allclose(y[kept], x[kept] / (1 - p), rtol=1e-15)
    frac_dropped = 1 - kept.mean()
    assert abs(frac_dropped - p) < 0.02  # 20000 Bernoulli draws: std of the fraction is ~0.003
    dy = rng.standard_normal(x.shape)
    dx = drop.backward(dy)
    np.testing.assert_array_equal(dx == 0, ~kept)  # same mask in backward
    np.testing.assert_allclose(dx[kept], dy[kept] / (1 - p), rtol=1e-15)


def test_dropout_fresh_masks_and_seeded_reproducibility():
    x = np.ones((8, 16), dtype=np.float32) * 1.5
    a, b = Dropout(0.5, rng=42), Dropout(0.5, rng=42)
    ya1, ya2 = a.forward(x), a.forward(x)
    yb1 = b.forward(x)
    np.testing.assert_array_equal(ya1, yb1)  # same seed, same mask
    assert not np.array_equal(ya1, ya2)  # a new mask on every forward
    assert ya1.dtype == np.float32


def test_dropout_preserves_expectation():
    drop = Dropout(0.25, rng=5)
    x = np.random.default_rng(5).standard_normal(6)
    mean = np.mean([drop.forward(x) for _ in range(4000)], axis=0)
    np.testing.assert_allclose(mean, x, atol=0.06 * np.abs(x).max())


def test_dropout_eval_and_p0_are_identity():
    x = np.random.default_rng(2).standard_normal((3, 4))
    dy = np.random.default_rng(3).standard_normal((3, 4))
    drop = Dropout(0.9, rng=0).eval()
    assert drop.forward(x) is x
    assert drop.backward(dy) is dy
    drop.train()
    assert (drop.forward(x) == 0).any()
    zero = Dropout(0.0)
    np.testing.assert_array_equal(zero.forward(x), x)


def test_dropout_gradcheck_with_frozen_mask():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 2, 5))
    R = rng.standard_normal(x.shape)
    drop = Dropout(0.4, rng=9)
    state = drop.rng.bit_generator.state

    def loss():
        drop.rng.bit_generator.state = state  # replay the same mask on every evaluation
        return float((drop.forward(x) * R).sum())

    loss()
    dx = drop.backward(R)
    report = check_gradients(loss, {"x": x}, {"x": dx})
    assert report.max_rel_error < 1e-7, str(report)


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5, True])
def test_dropout_rejects_bad_p(p):
    with pytest.raises(ValueError, match="p"):
        Dropout(p)


# ---------------------------------------------------------------------------------------------------
# sequence cross-entropy


@pytest.mark.parametrize("seed,T,B,C,use_mask", [(0, 4, 3, 5, True), (1, 3, 2, 4, False), (2, 6, 1, 3, True)])
def test_sequence_cross_entropy_value_and_gradcheck(seed, T, B, C, use_mask):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((T, B, C)) * 2
    y = rng.integers(0, C, size=(T, B))
    mask = None
    if use_mask:
        mask = (rng.random((T, B)) > 0.4).astype(np.float64)
        mask[0, 0] = 1.0
    ce = SequenceCrossEntropy()
    loss = ce.forward(z, y, mask)
    logp = _log_softmax_reference(z)
    nll = -np.take_along_axis(logp, y[..., None], axis=-1)[..., 0]
    m = np.ones((T, B)) if mask is None else mask
    assert loss == pytest.approx((nll * m).sum() / m.sum(), rel=1e-12)

    dz = ce.backward()
    report = check_gradients(lambda: ce.forward(z, y, mask), {"logits": z}, {"logits": dz})
    assert report.max_rel_error < 1e-7, str(report)
    if mask is not None:
        assert not dz[mask == 0].any()  # padded steps receive no gradient
    ce.forward(z, y, mask)  # the gradient check left the cache of a perturbed forward
    np.testing.assert_allclose(ce.backward(2.5), 2.5 * dz, rtol=1e-14)


def test_sequence_cross_entropy_validates():
    ce = SequenceCrossEntropy()
    z = np.zeros((2, 3, 4))
    with pytest.raises(TypeError, match="targets"):
        ce.forward(z, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="targets"):
        ce.forward(z, np.full((2, 3), 4))
    with pytest.raises(ValueError, match="mask"):
        ce.forward(z, np.zeros((2, 3), dtype=int), mask=np.zeros((2, 3)))
    with pytest.raises(RuntimeError, match="before forward"):
        SequenceCrossEntropy().backward()


def test_embedding_linear_loss_chain_gradcheck():
    """Tokens -> Embedding -> Dropout (eval) -> Linear -> cross-entropy, all gradients by finite differences."""
    rng = np.random.default_rng(11)
    V, D, C, T, B = 5, 3, 4, 3, 2
    emb = Embedding(V, D, rng=rng, dtype=np.float64)
    drop = Dropout(0.5, rng=0).eval()
    proj = Linear(D, C, rng=rng, dtype=np.float64)
    proj.params["b"][:] = rng.standard_normal(C)
    ce = SequenceCrossEntropy()
    idx, y = rng.integers(0, V, size=(T, B)), rng.integers(0, C, size=(T, B))
    mask = np.array([[1, 1], [1, 0], [0, 1]], dtype=np.float64)

    def loss():
        return ce.forward(proj.forward(drop.forward(emb.forward(idx))), y, mask)

    loss()
    for m in (emb, proj):
        m.zero_grad()
    emb.backward(drop.backward(proj.backward(ce.backward())))
    arrays = {"emb.W": emb.params["W"], "proj.W": proj.params["W"], "proj.b": proj.params["b"]}
    analytic = {"emb.W": emb.grads["W"].copy(), "proj.W": proj.grads["W"].copy(), "proj.b": proj.grads["b"].copy()}
    report = check_gradients(loss, arrays, analytic)
    assert report.max_rel_error < 1e-7, str(report)


# ---------------------------------------------------------------------------------------------------
# the forget-gate bias helper


def test_forget_gate_bias_matches_the_lstm_layout():
    H = 5
    b = I.forget_gate_bias(H, 1.5)
    assert b.shape == (4 * H,) and b.dtype == np.float32
    np.testing.assert_array_equal(b[:H], 1.5)
    assert not b[H:].any()
    layer = LSTM(3, H, forget_bias=1.5, rng=0)  # the layer puts its forget bias in the same block
    np.testing.assert_array_equal(layer.params["b"], b)
    g = I.forget_gate_bias(3, -1.0, gates=2, block=1, dtype=np.float64)
    np.testing.assert_array_equal(g, [0, 0, 0, -1, -1, -1])
    with pytest.raises(ValueError, match="block"):
        I.forget_gate_bias(3, block=4)
    with pytest.raises(ValueError, match="hidden_size"):
        I.forget_gate_bias(0)


@pytest.mark.parametrize("bad", [[[1, -1, 1], [1, 1, 1]], [[1, 0.5, 1], [1, 1, 1]], [[1, np.nan, 1], [1, 1, 0]]])
def test_sequence_cross_entropy_refuses_the_masks_lstm_refuses(bad):
    from lnedu.nn import LSTM

    rng = np.random.default_rng(0)
    z, y, mask = rng.normal(size=(2, 3, 4)), rng.integers(0, 4, (2, 3)), np.array(bad, dtype=np.float64)
    with pytest.raises(ValueError, match=r"^mask: expected only 0 and 1"):
        LSTM(4, 2, rng=0, dtype=np.float64).forward(z, mask=mask)
    # before: the loss accepted it and returned a differently weighted mean
    with pytest.raises(ValueError, match=r"^mask: expected only 0 and 1"):
        SequenceCrossEntropy().forward(z, y, mask)
    with pytest.raises(ValueError, match=r"^logits: expected at least one row"):
        SequenceCrossEntropy().forward(np.ones((0, 3, 4)), np.zeros((0, 3), dtype=int))
