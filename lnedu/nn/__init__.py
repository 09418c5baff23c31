"""The model layer: modules that own parameters and gradients and run backprop by hand."""

from .conv import BatchNorm2d, Conv2d, Flatten, LayerNorm2d
from .layers import BatchNorm, LayerNorm, Linear, ReLU, RMSNorm, Sigmoid, Tanh, WeightNormLinear
from .module import Module, Sequential, save_npz_atomic
from .recurrent import BNLSTM, GRU, LN_PRESETS, LSTM, MGU, RNN, LNConfig, NormPropLSTM, StackedRNN
from .seq import Dropout, Embedding, SequenceCrossEntropy

__all__ = [
    "Module",
    "Sequential",
    "save_npz_atomic",
    "Linear",
    "LayerNorm",
    "RMSNorm",
    "BatchNorm",
    "WeightNormLinear",
    "Tanh",
    "Sigmoid",
    "ReLU",
    "Conv2d",
    "LayerNorm2d",
    "BatchNorm2d",
    "Flatten",
    "Embedding",
    "Dropout",
    "SequenceCrossEntropy",
    "LNConfig",
    "LN_PRESETS",
    "LSTM",
    "GRU",
    "MGU",
    "RNN",
    "BNLSTM",
    "NormPropLSTM",
    "StackedRNN",
]
