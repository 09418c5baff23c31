"""Stacking recurrent layers: :class:`StackedRNN`, each layer's output the next one's input, and backprop through
the stack in reverse (each layer running its own BPTT, :mod:`.bptt`).
"""

from __future__ import annotations

from ... import init as I
from ..layers import _check_size
from ..module import Module
from .layer import RecurrentLayer

__all__ = ["StackedRNN"]


class StackedRNN(Module):
    """Recurrent layers applied in order, each one's output the next one's input (children ``"0"``, ``"1"``, ...).

    ``forward(x, state=None, mask=None)`` returns ``(out, states)`` with ``states`` a list of the layers' final
    state tuples; ``state`` is such a list (or ``None``; entries may be ``None``). ``backward(dout, dstate=None)``
    returns ``(dx, dstates0)``. The mask goes to every layer. Build one from layers, or with
    :meth:`build` (``StackedRNN.build(LSTM, D, H, num_layers=2, ln="appendix", rng=0)``).
    """

    def __init__(self, layers):
        super().__init__()
        layers = list(layers)
        if not layers:
            raise ValueError("layers: expected at least one recurrent layer, got none")
        for i, layer in enumerate(layers):
            if not isinstance(layer, RecurrentLayer):
                raise TypeError(f"layers[{i}]: expected a recurrent layer (LSTM, GRU, ...), "
                                f"got {type(layer).__name__}")
            if i and layer.input_size != layers[i - 1].hidden_size:
                raise ValueError(f"layers[{i}]: expected input_size {layers[i - 1].hidden_size} (the previous "
                                 f"layer's hidden_size), got {layer.input_size}")
            self.add_module(str(i), layer)
        self.layers = layers
        self.input_size = layers[0].input_size
        self.hidden_size = layers[-1].hidden_size

    @classmethod
    def build(cls, layer_cls, input_size, hidden_size, num_layers, **kwargs):
        """``num_layers`` layers of ``layer_cls`` (H units each), sharing the keyword arguments and one rng."""
        n = _check_size("num_layers", num_layers)
        rng = I.as_rng(kwargs.pop("rng", None))
        return cls([layer_cls(input_size if i == 0 else hidden_size, hidden_size, rng=rng, **kwargs)
                    for i in range(n)])

    def __len__(self):
        return len(self.layers)

    def __getitem__(self, i):
        return self.layers[i]

    def _per_layer(self, name, value):
        if value is None:
            return [None] * len(self.layers)
        if not isinstance(value, (list, tuple)) or len(value) != len(self.layers):
            got = type(value).__name__
            if isinstance(value, (list, tuple)):
                got += f" of length {len(value)}"
            raise TypeError(f"{name}: expected a list of {len(self.layers)} per-layer states (or None), got {got}")
        return list(value)

    def forward(self, x, state=None, mask=None, *, check_finite=None):
        states = self._per_layer("state", state)
        finals = []
        for layer, s in zip(self.layers, states):
            x, f = layer.forward(x, s, mask, check_finite=check_finite)
            finals.append(f)
        return x, finals

    def backward(self, dout, dstate=None):
        dstates = self._per_layer("dstate", dstate)
        d0 = [None] * len(self.layers)
        for i in reversed(range(len(self.layers))):
            dout, d0[i] = self.layers[i].backward(dout, dstates[i])
        return dout, d0
