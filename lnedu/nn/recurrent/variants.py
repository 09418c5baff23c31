r"""Which LN-LSTM? Every published layer-norm RNN variant, each pinned to the source file it was read from.

A variant is a cell (``"RNN"``, ``"LSTM"`` or ``"GRU"``), an :class:`~.config.LNConfig` (also in
:data:`LN_PRESETS` under the variant's name, so ``LSTM(D, H, ln="tfa")`` works) and the initial forget-gate
bias of its source. Gate
orders differ between sources (lnedu: f, i, o, g); with the LN over all stacked gates the order does not
change the function, and ``tests/test_variants.py`` maps each source's blocks onto lnedu's.

Notation: ``LN(z; g, b) = g * (z - mean(z)) / s + b`` over the units of one row, ``s`` the denominator
(:data:`lnedu.functional.ln_variants.DENOMINATORS`); ``a = (a_f, a_i, a_o, a_g)`` the gate pre-activations;
``c_t = sigma(a_f) c~_{t-1} + sigma(a_i) tanh(a_g)``, ``h_t = sigma(a_o) tanh(N_c(c_t))``; ``c~`` the carried
cell. What each source does (equations, then what its documentation says and its code does not):

* ``ba2016-eq4``: the LN paper §3.1, Eq. 4, for a tanh RNN: ``h_t = tanh(LN(W_h h + W_x x; g, b))``; the
  same cell as TensorFlow Addons' ``LayerNormSimpleRNNCell`` (tensorflow/addons,
  ``tensorflow_addons/rnn/layer_norm_simple_rnn_cell.py``), which normalizes with ``center=False`` and adds
  its bias after the LN: ``tanh(g * LN0(net) + b)``, the same function.
* ``ba2016-appendix``: the LN paper's appendix Eq. 20-22 as printed: ``a = LN(W_h h; g_h, b_h) +
  LN(W_x x; g_x, b_x) + b``, joint over 4H, ``h = o tanh(LN(c; g_c, b_c))``, the raw ``c`` carried, eps
  1e-5. (No code; its Theano code is ``kiros-theano``.)
* ``kiros-theano``: ryankiros/layer-norm, ``layers.py::lnlstm_layer`` (gate order i, f, o, c): the input
  term is ``dot(x, W) + b`` *before* the scan, normalized inside the step, and ``b`` is added again:
  ``a = LN(W_x x + b; s1, b1) + LN(W_h h; s2, b2) + b``. Paper vs code: Eq. 20 has ``b`` once, after the LNs.
  eps 1e-5 inside the square root, biased variance.
* ``kiros-torch``: ryankiros/layer-norm, ``torch_modules/LSTM_LN.lua`` with
  ``torch_modules/LayerNormalization.lua``: no LN of the gates, LN of ``c`` on the output path only, raw
  ``c`` carried. Code vs its own names: ``LayerNormalization.lua`` computes ``std`` as the mean of squares
  (the variance) and divides by ``std + eps`` without a square root: ``(c - mean) / (var + 1e-5)``; and
  ``new_input_sum_bias(-4.)`` never uses its argument, so the forget-gate bias -4 the code asks for is never
  set (each gate keeps ``nn.Linear``'s default bias, on both the input and the recurrent product).
* ``haste``: lmnt-com/haste, ``frameworks/pytorch/layer_norm_lstm.py`` (``LayerNormLSTM``) and
  ``lib/layer_norm_lstm_forward_gpu.cu.cc`` (gate order i, g, f, o): ``a = LN0(W_x x; gamma[0]) +
  LN0(W_h h; gamma[1]) + b``, the two input LNs with gains only (no beta), joint over 4H; ``h = o tanh(LN(c;
  gamma_h, beta_h))``; raw ``c`` carried; eps 1e-5 (``lib/layer_norm_forward_gpu.cu.cc``);
  ``forget_bias=1.0``.
* ``tfa``: tensorflow/addons, ``tensorflow_addons/rnn/layer_norm_lstm_cell.py`` (``LayerNormLSTMCell``,
  gate order i, f, c, o): ``a = LN(W_x x) + LN(W_h h) + b`` (Keras ``LayerNormalization``, beta on), then
  ``c = LN(c)`` *replaces* the cell: ``h = o tanh(c)`` and that normalized ``c`` is the carried state; eps
  ``norm_epsilon=1e-3``; ``unit_forget_bias`` adds 1. Doc vs code: the docstring cites the LN paper and says
  the LN "is applied before the internal nonlinearities"; the paper does not normalize the carried cell.
* ``tf-contrib``: tensorflow ``tensorflow/contrib/rnn/python/ops/rnn_cell.py`` (``LayerNormBasicLSTMCell``,
  gate order i, j, f, o): one product ``[x, h] W`` (so ``W_x x + W_h h``, no bias), an LN *per gate* of that
  sum (gains ``norm_gain``, shifts ``norm_shift``), ``forget_bias`` (1.0) added after the LN, ``c = LN(c)``
  carried; eps 1e-12 (``contrib/layers`` ``layer_norm``). In lnedu that is ``joint_sum`` with
  ``per_gate`` and ``b``'s forget block = shift + 1. Doc vs code: same docstring as Addons (the paper), and
  the paper has neither per-gate statistics nor a normalized carried cell.
* ``keras-per-gate``: Binbose/keras-layer-normalization-rnn, ``LayerNormalizationRNN.py`` (``LSTMCell``,
  ``implementation=1``, the default; gate order i, f, c, o): ``a_k = LN(W_k x + b_k) + LN(U_k h)`` per gate,
  ``h = o tanh(LN(c))``, raw ``c`` carried, ``normalize_layer`` dividing by ``sqrt(var + 1e-7) + 1e-7``.
  Doc vs code: ``normalize_layer_seperately`` (README: ``normalize_seperately``) "whether the mean and std
  are calculated over all gates jointly, or seperately": ``__init__`` stores it with a trailing comma, as a
  one-element tuple, which is always true, so the statistics are per gate whatever the flag says; the
  ``"input"`` switch normalizes the recurrent products and ``"recurrent"`` the input products in
  ``implementation=1`` (the other way round in 2); gains start at 0 and biases at 1 (the appendix's
  alpha/beta typo, taken literally); the joint branch slices ``u_f`` with a step (``[:, :H:2H]``) and
  ``implementation=2`` adds every gate's bias to ``z0``; ``recurrent_activation`` defaults to
  ``hard_sigmoid`` (the conformance test uses the sigmoid, as lnedu).
* ``pytorch-fastrnns``: pytorch/pytorch, ``benchmarks/fastrnns/custom_lstms.py`` (``LayerNormLSTMCell``,
  gate order i, f, g, o): ``a = LN(W_ih x) + LN(W_hh h)`` with no cell bias ("the layernorms provide learnable
  biases"), ``cy = LN(c)`` carried and used for ``h = o tanh(cy)``; eps 1e-5 (``nn.LayerNorm``; with
  ``decompose_layernorm=True`` its own ``LayerNorm`` divides by the biased std with no eps at all). Doc vs
  code: ``script_lnlstm`` "Returns a ScriptModule that mimics a PyTorch native LSTM" and asserts ``bias``,
  yet its cell has no bias parameter and carries the normalized cell.

* ``kiros-theano-gru``: ryankiros/layer-norm, ``layers.py::lngru_layer`` (gates r, u): the input terms
  ``dot(x, W) + b`` and ``dot(x, Wx) + bx`` are formed before the scan and normalized inside the step, so the
  biases sit *inside* the input LNs (the LN removes their mean) and no bias follows:
  ``(a_r; a_u) = LN(W x + b; s1, b1) + LN(U h; s3, b3)``, ``h_hat = tanh(LN(Wx x + bx; s2, b2) + r *
  LN(Ux h; s4, b4))``, ``h = u h + (1 - u) h_hat``. Paper vs code: Eq. 28 writes ``h = (1 - z) h + z h_hat``;
  lnedu keeps Eq. 28, and ``u = 1 - z`` is the same cell with the update block's LN gains and biases negated
  (``build`` starts its gains at -1, so at initialization the layer is the Theano cell).

* ``haste-gru``: lmnt-com/haste, ``frameworks/pytorch/layer_norm_gru.py`` (``LayerNormGRU`` and its
  CPU body ``LayerNormGRUScript``; ``lib/layer_norm_gru_forward_gpu.cu.cc``; gates z, r, h): one LN of the
  whole 3H ``x kernel`` and one of the whole 3H ``h recurrent_kernel``, gains only (gamma[0], gamma[1]), then
  ``bias`` and ``recurrent_bias``; ``z = sigma(vx_z + vh_z)``, ``r = sigma(vx_r + vh_r)``, ``g = tanh(vx_h
  + r * vh_h)``, ``h = z h + (1 - z) g``; eps 1e-5. In lnedu: ``LNConfig(fuse_candidate=True)``, the
  recurrent bias being the recurrent LN's beta, and ``z = 1 - z_lnedu`` through negated update-block gains
  (``build`` starts them at -1). Doc vs code: the docstring gives ``gamma`` the shape
  ``(2, hidden_size * 4)``; the code makes it ``(2, hidden_size * 3)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import LN_PRESETS, LNConfig
from .gru import GRU
from .lstm import LSTM
from .rnn import RNN

__all__ = ["Variant", "VARIANTS", "build", "variant_rows"]


@dataclass(frozen=True)
class Variant:
    """One published variant: the cell, its LN configuration, its source, and what the table shows."""

    name: str
    cell: str  # "RNN", "LSTM" or "GRU"
    repo: str  # the source repository (or the paper)
    file: str  # the file read, and the class or function in it
    gate_order: str  # the source's gate order along the stacked axis
    where: str  # where the LN goes, in words
    stats: str  # "joint" (over all stacked gates), "per gate", or "-"
    beta: str  # which LNs have a beta
    carried: str  # the carried cell
    denominator: str
    eps: float
    forget_bias: float
    disagreement: str  # where the source's documentation (or the paper) and its code disagree; "" when none
    cell_bias: bool = True  # whether the source has the cell's bias b (lnedu's layer always has it)

    @property
    def ln(self) -> LNConfig:
        return LN_PRESETS[self.name]


VARIANTS = {v.name: v for v in (
    Variant("ba2016-eq4", "RNN", "Ba, Kiros & Hinton 2016 (Eq. 4); tensorflow/addons",
            "tensorflow_addons/rnn/layer_norm_simple_rnn_cell.py::LayerNormSimpleRNNCell", "-",
            "one LN of W_h h + W_x x", "joint", "the sum's (= the cell's b)", "h", "sqrt(var+eps)", 1e-5, 0.0,
            "Addons scales only (center=False) and adds b after the LN: the same function as Eq. 4, as its "
            "docstring says"),
    Variant("ba2016-appendix", "LSTM", "Ba, Kiros & Hinton 2016 (appendix Eq. 20-22)", "the paper (no code)",
            "f, i, o, g", "LN(W_x x) + LN(W_h h) + b; LN(c) inside tanh", "joint", "all three", "c",
            "sqrt(var+eps)", 1e-5, 1.0,
            "the appendix calls the additive parameters alpha (initialized to 0) and the gains beta (to 1); its "
            "Eq. 15 and code use them the other way round"),
    Variant("kiros-theano", "LSTM", "ryankiros/layer-norm", "layers.py::lnlstm_layer", "i, f, o, c",
            "LN(W_x x + b) + LN(W_h h) + b; LN(c) inside tanh", "joint", "all three", "c", "sqrt(var+eps)",
            1e-5, 0.0,
            "Eq. 20 adds b once after the LNs; the code also adds it before the input LN (which removes its "
            "mean)"),
    Variant("kiros-torch", "LSTM", "ryankiros/layer-norm",
            "torch_modules/LSTM_LN.lua + torch_modules/LayerNormalization.lua", "i, f, o, g",
            "LN(c) inside tanh only", "-", "cell", "c", "var+eps", 1e-5, 0.0,
            "the LN's 'std' is the variance and is never square-rooted: it divides by var + eps; "
            "new_input_sum_bias(-4.) ignores its argument, so the forget bias -4 is never set"),
    Variant("haste", "LSTM", "lmnt-com/haste",
            "frameworks/pytorch/layer_norm_lstm.py::LayerNormLSTM, lib/layer_norm_lstm_forward_gpu.cu.cc",
            "i, g, f, o", "LN0(W_x x) + LN0(W_h h) + b; LN(c) inside tanh", "joint", "cell only", "c",
            "sqrt(var+eps)", 1e-5, 1.0, ""),
    Variant("tfa", "LSTM", "tensorflow/addons", "tensorflow_addons/rnn/layer_norm_lstm_cell.py::LayerNormLSTMCell",
            "i, f, c, o", "LN(W_x x) + LN(W_h h) + b; c = LN(c)", "joint", "all three", "LN(c)",
            "sqrt(var+eps)", 1e-3, 1.0,
            "cites the LN paper and says the LN is applied before the internal nonlinearities; the code "
            "carries the normalized cell, which the paper does not"),
    Variant("tf-contrib", "LSTM", "tensorflow/tensorflow",
            "tensorflow/contrib/rnn/python/ops/rnn_cell.py::LayerNormBasicLSTMCell", "i, j, f, o",
            "LN per gate of W_x x + W_h h, then + forget_bias; c = LN(c)", "per gate", "all", "LN(c)",
            "sqrt(var+eps)", 1e-12, 1.0,
            "same paper citation; per-gate statistics and the normalized carried cell are not the paper's"),
    Variant("keras-per-gate", "LSTM", "Binbose/keras-layer-normalization-rnn",
            "LayerNormalizationRNN.py::LSTMCell (implementation=1)", "i, f, c, o",
            "LN(W_k x + b_k) + LN(U_k h) per gate; LN(c) inside tanh", "per gate", "all three", "c",
            "sqrt(var+eps)+eps", 1e-7, 1.0,
            "normalize_layer_seperately is stored as a tuple, so it is always true (per gate whatever the "
            "flag); 'input' normalizes the recurrent products; gains start at 0 and biases at 1; "
            "hard_sigmoid gates by default"),
    Variant("kiros-theano-gru", "GRU", "ryankiros/layer-norm", "layers.py::lngru_layer", "r, u (lnedu: z, r)",
            "LN(W x + b) + LN(U h); h_hat = tanh(LN(Wx x + bx) + r LN(Ux h))", "joint", "all four", "h",
            "sqrt(var+eps)", 1e-5, 0.0,
            "Eq. 28 updates h = (1 - z) h + z h_hat, the code u h + (1 - u) h_hat (z = 1 - u); Eq. 26-27 add no "
            "bias, the code adds b and bx inside the input LNs, which remove their mean"),
    Variant("haste-gru", "GRU", "lmnt-com/haste",
            "frameworks/pytorch/layer_norm_gru.py::LayerNormGRU, lib/layer_norm_gru_forward_gpu.cu.cc",
            "z, r, h (h = z h + (1 - z) g)", "LN0 of the fused 3H x W and h U, + biases; reset after U h",
            "joint (3H)", "none (biases after)", "h", "sqrt(var+eps)", 1e-5, 0.0,
            "the docstring gives gamma the shape (2, hidden_size * 4); the code's is (2, hidden_size * 3)"),
    Variant("pytorch-fastrnns", "LSTM", "pytorch/pytorch", "benchmarks/fastrnns/custom_lstms.py::LayerNormLSTMCell",
            "i, f, g, o", "LN(W_ih x) + LN(W_hh h), no cell bias; c = LN(c)", "joint", "all three", "LN(c)",
            "sqrt(var+eps)", 1e-5, 0.0,
            "script_lnlstm 'mimics a PyTorch native LSTM' and asserts bias, but the cell has no bias and "
            "carries the normalized cell; decompose_layernorm=True divides by the std with no eps",
            cell_bias=False),
)}


def build(name: str, input_size: int, hidden_size: int, *, rng=None, dtype=np.float32, **kwargs):
    """The layer of variant ``name`` (a key of :data:`VARIANTS`): ``RNN``, ``LSTM`` or ``GRU`` with its LN
    configuration and (LSTM) its source's initial forget-gate bias; ``kwargs`` go to the layer. A source
    without the cell's bias (``cell_bias=False``: PyTorch's fastrnns) still gets lnedu's ``b``, starting at 0:
    the same functions (it adds where the LN biases add), one more parameter to train."""
    if name not in VARIANTS:
        raise ValueError(f"name: expected one of {sorted(VARIANTS)}, got {name!r}")
    v = VARIANTS[name]
    kwargs.update(rng=rng, dtype=dtype)
    if v.cell == "RNN":
        return RNN(input_size, hidden_size, ln=name, **kwargs)
    if v.cell == "GRU":  # the Theano and haste LN-GRUs: u = 1 - z, so the update block's gains start at -1
        layer = GRU(input_size, hidden_size, ln=name, reset="after", **kwargs)
        H = layer.hidden_size
        layer.params["g_x"][:H] = -1.0
        layer.params["g_h"][:H] = -1.0
        return layer
    kwargs.setdefault("forget_bias", v.forget_bias)
    return LSTM(input_size, hidden_size, ln=name, **kwargs)


def variant_rows():
    """The variants as table rows (dicts): name, cell, source, where the LN goes, statistics, beta, carried
    cell, denominator, eps, and the disagreement between documentation and code."""
    return [dict(variant=v.name, cell=v.cell, source=f"{v.repo}: {v.file}", gate_order=v.gate_order,
                 where=v.where, stats=v.stats, beta=v.beta, carried=v.carried, denominator=v.denominator,
                 eps=v.eps, forget_bias=v.forget_bias, cell_bias=v.cell_bias, doc_vs_code=v.disagreement)
            for v in VARIANTS.values()]
