"""Where layer norm goes in a recurrent cell: :class:`LNConfig`, the named placements :data:`LN_PRESETS`, and
:func:`resolve_ln`, which turns a layer's ``ln=`` argument into one of them.

The placements come from the LN paper (Ba, Kiros & Hinton 2016): its appendix cells normalize the input term
``W_x x_t`` and the recurrent term ``W_h h_{t-1}`` separately, and the LSTM's cell on the output path
(Eq. 20-22, 26-27); its Eq. 4 normalizes their sum once; DRAW's cell normalizes only ``c_t`` (Eq. 29-31).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from ..._checks import check_one_of, check_positive
from ...functional.ln_variants import DENOMINATORS

__all__ = ["LNConfig", "LN_PRESETS", "resolve_ln"]


@dataclass(frozen=True)
class LNConfig:
    """Where layer normalization goes in a recurrent cell (the switches Keras-style LN cells offer).

    * ``input``: normalize the input term ``W_x x_t`` (gains ``g_x``, biases ``b_x``; for GRU/MGU also the
      candidate's ``W_xhat x_t``: ``g_xhat``, ``b_xhat``);
    * ``recurrent``: normalize the recurrent term ``W_h h_{t-1}`` (``g_h``, ``b_h``; GRU/MGU candidate
      ``g_hhat``, ``b_hhat``);
    * ``cell``: normalize the LSTM's cell on the output path, ``h = o * tanh(LN(c; g_c, b_c))``; the carried
      ``c`` stays un-normalized (LSTM only: the other cells have no memory cell and ignore it);
    * ``joint_sum``: one LN of the *sum* ``W_x x + W_h h`` (Eq. 4) instead of one per term; its gain is ``g``
      and its bias is the cell's bias ``b`` (GRU/MGU candidate: ``g_hat``, ``b_hat``); needs input and recurrent;
    * ``per_gate``: statistics over each gate's H units separately instead of over all stacked gates jointly
      (the LN paper's cells normalize the 4H (LSTM) or 2H (GRU) stacked pre-activations as one vector);
    * ``eps``: added to the variance inside the square root (1e-5, as in the paper's released code);
    * ``center``: the separate input and recurrent LNs have biases ``b_x``, ``b_h`` (``False``: gains only,
      as haste's ``LayerNormLSTM``; the cell's ``b`` still follows them);
    * ``denominator``: what the LNs divide by, ``"sqrt(var+eps)"`` (the paper) or ``"std+eps"``,
      ``"var+eps"`` (the paper's Torch module), ``"sqrt(var+eps)+eps"`` (the Keras port); LSTM only;
    * ``carry``: the cell carried to the next step, ``"c"`` (the paper) or ``"LN(c)"``, the normalized
      cell (TensorFlow Addons, TensorFlow contrib, PyTorch's fastrnns); LSTM only, needs ``cell``;
    * ``input_bias``: where the cell's bias ``b`` enters the input term, ``"after"`` the input LN
      (``LN(W_x x) + b``, the paper), ``"before"`` it (``LN(W_x x + b)``: the LN removes b's mean; the Keras
      port) or ``"both"`` (``LN(W_x x + b) + b``: the paper's Theano ``lnlstm_layer``); needs a separate
      input LN;
    * ``fuse_candidate``: GRU only (reset after): one LN of the whole 3H input term ``[W_x x | W_xhat x]``
      and one of the whole recurrent product ``[W_h h | W_hhat h]``, the gates and the candidate sharing
      their statistics (haste's ``LayerNormGRU``), instead of separate LNs of the gates and the candidate.

    The variants of released code that these switches express are named in
    :data:`lnedu.nn.recurrent.variants.VARIANTS` (and their LN configurations are in :data:`LN_PRESETS`).

    Gains start at 1 and biases at 0. (The appendix says its "alpha" are additive and initialized to zeros and
    its "beta" multiplicative and initialized to ones; that is a typo: its own Eq. 15 makes alpha the gain,
    and §6 and the released code start gains at 1 and biases at 0.)
    """

    input: bool = True
    recurrent: bool = True
    cell: bool = True
    joint_sum: bool = False
    per_gate: bool = False
    eps: float = 1e-5
    center: bool = True
    denominator: str = "sqrt(var+eps)"
    carry: str = "c"
    input_bias: str = "after"
    fuse_candidate: bool = False

    def __post_init__(self):
        for f in fields(self):
            if f.name not in _NOT_BOOL and not isinstance(getattr(self, f.name), (bool, np.bool_)):
                raise TypeError(f"LNConfig.{f.name}: expected a bool, got {type(getattr(self, f.name)).__name__}")
        check_positive("LNConfig.eps", self.eps)
        check_one_of("LNConfig.denominator", self.denominator, DENOMINATORS)
        check_one_of("LNConfig.carry", self.carry, ("c", "LN(c)"))
        check_one_of("LNConfig.input_bias", self.input_bias, ("after", "before", "both"))
        if self.carry == "LN(c)" and not self.cell:
            raise ValueError("LNConfig.carry: carrying LN(c) needs the cell LN, got cell=False")
        if self.fuse_candidate and not (self.separate_input and self.separate_recurrent and not self.per_gate):
            raise ValueError("LNConfig.fuse_candidate: one LN over the gates and the candidate needs separate input "
                             f"and recurrent LNs and no per_gate, got input={self.input}, recurrent={self.recurrent}, "
                             f"joint_sum={self.joint_sum}, per_gate={self.per_gate}")
        if self.input_bias != "after" and not self.separate_input:
            raise ValueError(f"LNConfig.input_bias: {self.input_bias!r} puts b inside the input LN and needs "
                             f"input=True without joint_sum, got input={self.input}, joint_sum={self.joint_sum}")
        if self.joint_sum and not (self.input and self.recurrent):
            raise ValueError(
                "LNConfig.joint_sum: one LN over the sum W_x x + W_h h needs input=True and recurrent=True, "
                f"got input={self.input}, recurrent={self.recurrent}"
            )

    @property
    def separate_input(self) -> bool:
        """An LN of the input term on its own (``input`` without ``joint_sum``)."""
        return bool(self.input and not self.joint_sum)

    @property
    def separate_recurrent(self) -> bool:
        """An LN of the recurrent term on its own (``recurrent`` without ``joint_sum``)."""
        return bool(self.recurrent and not self.joint_sum)

    @property
    def classic(self) -> bool:
        """The LN paper's norms and carried cell (the steps of :mod:`lnedu.functional.recurrent` run it);
        otherwise the LSTM runs :func:`lnedu.functional.ln_variants.lstm_variant_step`."""
        return self.denominator == "sqrt(var+eps)" and self.carry == "c"

    def uses_lstm_only_options(self) -> bool:
        """Whether a switch only the LSTM implements is set (``denominator``, ``carry``)."""
        return not self.classic


_NOT_BOOL = ("eps", "denominator", "carry", "input_bias")


LN_PRESETS = {
    "appendix": LNConfig(input=True, recurrent=True, cell=True),  # the LN paper's supplementary cells
    "eq4": LNConfig(input=True, recurrent=True, cell=False, joint_sum=True),  # one LN of the sum, Eq. 4
    "cell": LNConfig(input=False, recurrent=False, cell=True),  # DRAW: the LSTM's cell only, Eq. 29-31
    # the published variants, each pinned to its source in lnedu.nn.recurrent.variants.VARIANTS
    "ba2016-eq4": LNConfig(input=True, recurrent=True, cell=False, joint_sum=True),
    "ba2016-appendix": LNConfig(input=True, recurrent=True, cell=True),
    "kiros-theano": LNConfig(input_bias="both"),
    "kiros-torch": LNConfig(input=False, recurrent=False, cell=True, denominator="var+eps"),
    "haste": LNConfig(center=False),
    "tfa": LNConfig(eps=1e-3, carry="LN(c)"),
    "tf-contrib": LNConfig(joint_sum=True, per_gate=True, eps=1e-12, carry="LN(c)"),
    "keras-per-gate": LNConfig(per_gate=True, eps=1e-7, denominator="sqrt(var+eps)+eps", input_bias="before"),
    "pytorch-fastrnns": LNConfig(carry="LN(c)"),
    "kiros-theano-gru": LNConfig(input_bias="before"),
    "haste-gru": LNConfig(fuse_candidate=True),
}


def resolve_ln(ln, layer: str, has_cell: bool):
    """``ln`` (``None``, a preset name or an :class:`LNConfig`) as an :class:`LNConfig`, or ``None`` when it
    normalizes nothing a ``layer`` cell has (``has_cell``: whether the cell has an LSTM memory cell)."""
    if ln is None:
        return None
    if isinstance(ln, str):
        if ln not in LN_PRESETS:
            raise ValueError(f"ln: expected None, an LNConfig or one of {sorted(LN_PRESETS)}, got {ln!r}")
        cfg = LN_PRESETS[ln]
    elif isinstance(ln, LNConfig):
        cfg = ln
    else:
        raise TypeError(f"ln: expected None, a preset name or an LNConfig, got {type(ln).__name__}")
    if cfg.fuse_candidate and layer != "GRU":
        raise ValueError(f"ln: fuse_candidate is a GRU option (the LN over the gates and the candidate), got {layer}")
    if layer != "LSTM" and cfg.uses_lstm_only_options():
        raise ValueError(f"ln: denominator={cfg.denominator!r} and carry={cfg.carry!r} are LSTM options; {layer} "
                         "implements the paper's sqrt(var+eps) and has no cell to carry")
    if not has_cell and cfg.cell and not (cfg.input or cfg.recurrent):
        raise ValueError(f"ln: {ln!r} normalizes only the LSTM's memory cell, and {layer} has none")
    if not (cfg.input or cfg.recurrent or (cfg.cell and has_cell)):
        return None
    return cfg
