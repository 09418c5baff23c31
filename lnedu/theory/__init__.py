"""Computations the theory notebooks call, from §5 of the LN paper (Ba, Kiros & Hinton 2016).

* :mod:`lnedu.theory.invariance` - Table 1, computed: which transformations of weights and data leave a
  batch-, weight-, layer- or RMS-normalized layer unchanged (notebook 02);
* :mod:`lnedu.theory.geometry` - the Fisher geometry of normalized generalized linear models (notebook 03).

The submodules are imported on first use (``from lnedu.theory import invariance``), so each stands alone.
"""

from __future__ import annotations

import importlib

__all__ = ["invariance", "geometry"]


def __getattr__(name: str):
    if name in __all__:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
