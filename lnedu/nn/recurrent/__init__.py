r"""Recurrent layers with backprop through time by hand: LSTM, GRU, MGU and a tanh RNN, each with or without
layer norm, and two rivals, recurrent batch norm (:class:`BNLSTM`) and normalization propagation
(:class:`NormPropLSTM`).

Where to find what (concept -> file in this package):

* the time loops, forward over T and backprop through time, with masks, the initial state and truncated
  BPTT -> ``bptt.py``: :func:`~.bptt.run_forward`, :func:`~.bptt.run_backward`;
* where layer norm goes (``ln=``: the LN placements) -> ``config.py``: :class:`LNConfig`, :data:`LN_PRESETS`;
* the argument checks, the initial state (zeros or learned) and the ``forward``/``backward`` entries that
  keep the cache between them -> ``layer.py`` (also the :class:`RecurrentLayer` interface);
* what the cells share, as functions (the LN gains and biases, the input term ``W_x x + b`` of all steps at
  once with its LN or weight norm) -> ``common.py``;
* one flat class per cell family, its parameter layout and its operations:
  LSTM (LN paper Eq. 17-22, Eq. 4, DRAW's cell; weight norm) -> ``lstm.py``: :class:`LSTM`;
  GRU (LN paper Eq. 23-28; Cho et al.'s "reset before") -> ``gru.py``: :class:`GRU`;
  MGU (Zhou et al. 2016) -> ``mgu.py``: :class:`MGU`;  tanh RNN (LN paper Eq. 4) -> ``rnn.py``: :class:`RNN`;
  BN-LSTM (Cooijmans et al. Eq. 6-8) -> ``bnlstm.py``: :class:`BNLSTM`;
  NormProp-LSTM (Laurent et al. Eq. 13-15) -> ``normprop.py``: :class:`NormPropLSTM`;
* layers in a stack -> ``stacked.py``: :class:`StackedRNN`;
* the published LN-RNN variants by name (``"tfa"``, ``"haste"``, ...), each pinned to its source ->
  ``variants.py``: :data:`VARIANTS`, :func:`~.variants.build`;
* one step's equations and its backward -> :mod:`lnedu.functional.recurrent` (``lstm_step``, ``gru_step``, ...).

Every layer is time-major and has the same interface::

    layer = LSTM(D, H, ln="appendix")
    out, state = layer.forward(x, state=None, mask=None)    # x (T, B, D) -> out (T, B, H)
    dx, dstate0 = layer.backward(dout, dstate=None)          # BPTT; accumulates into layer.grads

``state`` is a tuple, ``(h, c)`` for the LSTM family and ``(h,)`` otherwise, each (B, H); ``None`` means zeros
(or the learned ``h0``/``c0`` with ``learn_h0=True``). The returned state is the final one, to pass to the next
call for truncated backprop through time: the next call's ``backward`` stops at the boundary and returns
``dstate0``, the gradient of the initial state it was given. ``mask`` (T, B) of 0/1 marks the real steps of
variable-length sequences: at a padded step the state stays as it was, the output is 0 and no gradient flows.

Each cell family is one flat class (a :class:`~lnedu.nn.Module`, no recurrent base class): its parameter
layout and its few operations (input term, step context, step, step backward, recurrent-weight gradients),
which the two loops of ``bptt.py`` call; what the cells share are functions (``common.py``, ``layer.py``).

Layer norm placement (``ln=``): ``None``; ``"appendix"`` (the LN paper's supplementary cells: separate LNs of
``W_x x`` and ``W_h h`` over all stacked gates, LN of the LSTM cell on the output path); ``"eq4"`` (one LN of the
sum ``W_x x + W_h h``, the paper's Eq. 4); ``"cell"`` (LN of ``c`` only, the DRAW cell, LSTM only); a
published variant's name (``"tfa"``, ``"haste"``, ``"kiros-torch"``, ... :data:`VARIANTS`, each pinned to its
source file); or an :class:`LNConfig`.
"""

from ...functional.recurrent import normprop_variances
from .bnlstm import BNLSTM
from .config import LN_PRESETS, LNConfig
from .gru import GRU
from .layer import RecurrentLayer
from .lstm import LSTM, WeightNormInput
from .mgu import MGU
from .normprop import NormPropLSTM
from .rnn import RNN
from .stacked import StackedRNN
from .variants import VARIANTS

__all__ = [
    "LNConfig",
    "LN_PRESETS",
    "RecurrentLayer",
    "LSTM",
    "GRU",
    "MGU",
    "RNN",
    "BNLSTM",
    "NormPropLSTM",
    "StackedRNN",
    "VARIANTS",
    "normprop_variances",
    "WeightNormInput",  # deprecated: LSTM(weight_norm=True) replaces the mixin
]
