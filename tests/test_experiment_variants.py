"""Every experiment's model is the variant it names (issue 19 item 9), checked by what the variant does, not by
its name: a layer-norm arm's hidden units are standardized per case and do not move when one input case is
re-scaled (LN Table 1, "single training case re-scaling"), the baseline's do; a batch-norm arm's output for one
case depends on the other cases of its batch, a layer-norm arm's does not; NormProp and weight norm are not
layer norm; the gains start where the variant says; the initializers are the ones named."""

from __future__ import annotations

import numpy as np
import pytest

from lnedu import experiments

RNG = np.random.default_rng(19)


def _model(name, variant, seed=0):
    exp = experiments.get(name)
    return exp.build(exp.PRESETS["tiny"], variant, seed).model


def _rescale_one_case(f, x, case=1, c=3.0):
    """``(change of case ``case``, change of the other cases)`` of ``f`` when that case's input is scaled by c."""
    y0 = f(x)
    x2 = x.copy()
    x2[case] *= c
    y1 = f(x2)
    others = [i for i in range(len(x)) if i != case]
    return float(np.abs(y1[case] - y0[case]).max()), float(np.abs(y1[others] - y0[others]).max())


def _replace_other_case(f, x, case=0, other=2):
    """How much case ``case``'s output moves when another case of the batch is replaced."""
    y0 = f(x)
    x2 = x.copy()
    x2[other] = RNG.normal(size=x.shape[1:]) * 2 + 1
    return float(np.abs(f(x2)[case] - y0[case]).max())


# ---- feed-forward classifiers: MNIST and the convnet ------------------------------------------------------------


def _hidden(model, x):
    """The output of the first normalization layer; for a model without one, the first layer's summed inputs."""
    has_norm = any("Norm" in type(m).__name__ for m in model)
    out = x
    for m in model:
        out = m.forward(out)
        if "Norm" in type(m).__name__ or not has_norm:
            return out
    raise AssertionError("the model has no layers")


def _logits(model):
    def f(x):
        model.train()
        return np.asarray(model.forward(x.astype(np.float32)), dtype=np.float64)
    return f


@pytest.mark.parametrize("name, shape", [("mnist", (6, 64)), ("convnet", (6, 1, 8, 8))])
def test_classifier_arms_are_what_they_say(name, shape):
    x = RNG.normal(size=shape) + 0.5
    v = {"mnist": ("baseline-bs4", "ln-bs4", "bn-bs4"), "convnet": ("baseline", "ln", "bn")}[name]
    base, ln, bn = (_model(name, k) for k in v)
    # layer norm: the summed inputs of the first hidden layer standardized per case
    h = np.asarray(_hidden(ln, x.astype(np.float32)), dtype=np.float64).reshape(len(x), -1)
    np.testing.assert_allclose(h.mean(axis=1), 0, atol=1e-5)
    np.testing.assert_allclose(h.std(axis=1), 1, atol=1e-3)
    hb = np.asarray(_hidden(base, x.astype(np.float32)), dtype=np.float64).reshape(len(x), -1)
    assert np.abs(hb.std(axis=1) - 1).max() > 0.05 or np.abs(hb.mean(axis=1)).max() > 0.05
    # re-scaling one case: LN's logits stay, the baseline's move; no arm but BN couples the cases
    moved, others = _rescale_one_case(_logits(ln), x)
    assert moved < 1e-3 and others == 0.0
    moved, others = _rescale_one_case(_logits(base), x)
    assert moved > 1e-2 and others == 0.0
    # batch norm: one case's output depends on the rest of its batch; LN's and the baseline's do not
    assert _replace_other_case(_logits(bn), x) > 1e-2
    assert _replace_other_case(_logits(ln), x) == 0.0 and _replace_other_case(_logits(base), x) == 0.0


def test_mnist_batch_norm_uses_the_unbiased_variance_at_batch_4_only():
    def unbiased(variant):
        return [m.unbiased for m in _model("mnist", variant) if type(m).__name__ == "BatchNorm"]
    assert unbiased("bn-bs4") and all(unbiased("bn-bs4")) and not any(unbiased("bn-bs128"))
    assert not [m for m in _model("mnist", "ln-bs4") if type(m).__name__ == "BatchNorm"]


# ---- recurrent layers ---------------------------------------------------------------------------------------------


def _seq(layer):
    def f(x):  # x: (B, T, D) so that a case is x[i]; the layer takes (T, B, D)
        layer.train()
        h, _ = layer.forward(np.ascontiguousarray(x.transpose(1, 0, 2)).astype(np.float32))
        return np.asarray(h, dtype=np.float64).transpose(1, 0, 2)
    return f


def _inputs(layer, batch=4, steps=5):
    d = layer.params["W_x"].shape[0]
    return RNG.normal(size=(batch, steps, d)) + 0.3


RECURRENT = [  # (experiment, variant, the model's recurrent layer(s), what the variant is)
    ("charlm", "baseline", ("rnn",), "plain"),
    ("charlm", "wn", ("rnn",), "plain"),
    ("charlm", "normprop", ("rnn",), "plain"),
    ("charlm", "ln", ("rnn",), "ln"),
    ("charlm", "bn", ("rnn",), "bn"),
    ("text8_grid", "gru-noln-xavier", ("rnn",), "plain"),
    ("text8_grid", "mgu-ln-orthogonal", ("rnn",), "ln"),
    ("text8_grid", "lstm-ln-variance_scaling", ("rnn",), "ln"),
    ("handwriting", "baseline", ("rnn0",), "plain"),
    ("handwriting", "ln", ("rnn0",), "ln"),
    ("order_embeddings", "gru", ("rnn",), "plain"),
    ("order_embeddings", "ln-gru", ("rnn",), "ln"),
    ("skip_thoughts", "gru", ("enc",), "plain"),
    ("skip_thoughts", "ln-gru", ("enc",), "ln"),
    ("attentive_reader", "lstm", ("doc", "query"), "plain"),
    ("attentive_reader", "ln-lstm", ("doc", "query"), "ln"),
    ("attentive_reader", "ln-lstm-g0.1", ("doc", "query"), "ln"),
    ("attentive_reader", "bn-lstm", ("doc", "query"), "bn"),
    ("attentive_reader", "bn-everywhere", ("doc", "query"), "bn"),
]


@pytest.mark.parametrize("name, variant, layers, kind", RECURRENT, ids=[f"{n}-{v}" for n, v, _, _ in RECURRENT])
def test_recurrent_arms_are_what_they_say(name, variant, layers, kind):
    model = _model(name, variant)
    for attr in layers:
        layer = getattr(model, attr, None) or model._modules[attr]
        f, x = _seq(layer), _inputs(layer)
        moved, others = _rescale_one_case(f, x)
        if kind == "ln":  # LN(W_x x): the summed inputs of every step re-normalized, whatever the case's scale
            assert moved < 2e-3, (attr, moved)
        else:
            assert moved > 1e-2, (attr, moved)
        coupled = _replace_other_case(f, x)
        if kind == "bn":
            assert coupled > 1e-3 and others > 1e-3, (attr, coupled)
        else:
            assert coupled == 0.0 and others == 0.0, (attr, coupled)


@pytest.mark.parametrize("variant, gain", [("ln-lstm", 1.0), ("ln-lstm-g0.1", 0.1)])
def test_reader_layer_norm_gains_start_where_named(variant, gain):
    model = _model("attentive_reader", variant)
    for layer in (model.doc, model.query):
        for g in ("g_x", "g_h", "g_c"):
            np.testing.assert_array_equal(layer.params[g], np.float32(gain))


@pytest.mark.parametrize("variant, gamma", [("bn-lstm", 0.1), ("bn-lstm-g1.0", 1.0), ("bn-everywhere", 0.1)])
def test_reader_batch_norm_gains_start_where_named(variant, gamma):
    model = _model("attentive_reader", variant)
    gains = [v for k, v in model.doc.params.items() if k.startswith("g_")]
    assert gains and all(np.all(g == gamma) for g in gains)


def test_bn_everywhere_normalizes_more_than_the_lstms():
    def outside_lstms(variant):
        return {k for k in _model("attentive_reader", variant).state_dict() if not k.split(":")[-1].startswith(
            ("doc.", "query."))}
    assert outside_lstms("bn-everywhere") - outside_lstms("bn-lstm")


def test_draw_cells_are_normalized_where_named():
    def gains(variant):
        return {k.split(".")[-1] for k in _model("draw", variant).state_dict() if ".g_" in k}
    assert gains("baseline") == set()
    assert gains("ln") == {"g_c"}  # LN on the cell only (LN Eq. 29-31)
    assert gains("normprop") == {"g_x", "g_h", "g_c"}


def test_order_embeddings_score_by_order_or_cosine():
    assert _model("order_embeddings", "gru").method == "order"
    assert _model("order_embeddings", "ln-gru").method == "order"
    assert _model("order_embeddings", "sym-gru").method == "cosine"


def test_text8_initializers_are_the_ones_named():
    def w_h(variant):
        return np.asarray(_model("text8_grid", variant).rnn.params["W_h"], dtype=np.float64)
    w = w_h("lstm-noln-orthogonal")
    h = w.shape[0]
    for k in range(w.shape[1] // h):  # every H x H block orthogonal
        block = w[:, k * h:(k + 1) * h]
        np.testing.assert_allclose(block.T @ block, np.eye(h), atol=1e-5)
    xav = w_h("lstm-noln-xavier")
    assert np.abs(xav[:, :h].T @ xav[:, :h] - np.eye(h)).max() > 0.1
    assert w_h("lstm-noln-variance_scaling").std() > 1.2 * xav.std()  # He-style scale is larger than Xavier's


def test_mnist_layers_have_a_bias_only_without_a_normalization_after_them_and_he_init():
    for variant, hidden_bias in (("baseline-bs4", True), ("ln-bs4", False), ("bn-bs128", False)):
        model = _model("mnist", variant)
        linears = [m for m in model if type(m).__name__ == "Linear"]
        assert [("b" in m.params) for m in linears[:-1]] == [hidden_bias] * (len(linears) - 1), variant
        w = np.asarray(linears[0].params["W"], dtype=np.float64)
        assert abs(w.std() / np.sqrt(2 / w.shape[0]) - 1) < 0.1, variant  # He: variance 2 / fan_in
        assert linears[0].params["W"].dtype == np.float32
