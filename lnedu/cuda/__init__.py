"""Fused CUDA kernels for the GPU path: layer norm and RMSNorm, and the LN-LSTM and LN-GRU cell steps.

The portable code in :mod:`lnedu.functional` runs on CuPy arrays as it is, one array operation (one CUDA
kernel) at a time. This package replaces the hot spots with hand-written kernels that do a whole layer
norm, or the whole pointwise part of a recurrent step, in one pass over memory. Nothing here is needed
on the CPU, and importing it needs neither CuPy nor a GPU: the kernels compile the first time a CuPy
array reaches them. Switch them off with ``LNEDU_FUSED=0`` or :func:`use_fused`.

* :mod:`lnedu.cuda.norms`: fused ``layer_norm`` / ``rms_norm`` forward and backward;
* :mod:`lnedu.cuda.recurrent`: the fused LN-LSTM and LN-GRU steps, forward and backward (one kernel each
  for the pointwise part of a step: the LNs over the stacked gates, the gates, the cell update, the LN
  of ``c``; the matrix products stay with cuBLAS);
* ``lnedu/cuda/kernels/*.cuh``: the kernel sources (read them: each starts with what it computes and how).
"""

from ._kernels import (
    SOURCES,
    CuPyProvider,
    describe,
    fused_enabled,
    get_provider,
    kernel_source,
    launch,
    nvrtc_compile,
    register_report,
    set_provider,
    use_fused,
)

__all__ = [
    "SOURCES",
    "CuPyProvider",
    "describe",
    "fused_enabled",
    "get_provider",
    "kernel_source",
    "launch",
    "nvrtc_compile",
    "register_report",
    "set_provider",
    "use_fused",
    "name_expressions",
]


def name_expressions():
    """Every kernel instantiation lnedu can launch, across all kernel files."""
    from . import norms, recurrent  # noqa: PLC0415  (they import lnedu.functional, which imports us lazily)

    return list(dict.fromkeys(norms.name_expressions() + recurrent.name_expressions()))  # shared ones once
