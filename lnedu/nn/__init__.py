"""The model layer: modules that own parameters and gradients and run backprop by hand."""

from .layers import BatchNorm, LayerNorm, Linear, ReLU, RMSNorm, Sigmoid, Tanh, WeightNormLinear
from .module import Module, Sequential, save_npz_atomic

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
]
