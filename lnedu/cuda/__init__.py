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

Importing this package registers the fused functions with :mod:`lnedu.functional.dispatch` (:func:`register`;
``import lnedu`` imports it), so that :func:`lnedu.functional.layer_norm` and the rest take them for CuPy
arrays. This package imports :mod:`lnedu.functional`, never the reverse.
"""

import numpy as np

from ..functional import dispatch
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
    "register",
]


def name_expressions():
    """Every kernel instantiation lnedu can launch, across all kernel files."""
    from . import norms, recurrent  # noqa: PLC0415  (they import lnedu.functional, which imports us lazily)

    return list(dict.fromkeys(norms.name_expressions() + recurrent.name_expressions()))  # shared ones once


def _on_device(a) -> bool:
    """``a`` is not a NumPy array (the first, cheap question every registered ``supported`` asks)."""
    return a is not None and type(a) is not np.ndarray


def register():
    """Register the fused layer norm, RMSNorm, LSTM and GRU steps (and backwards) with the dispatch.

    Each entry looks its function up in :mod:`lnedu.cuda.norms` / :mod:`lnedu.cuda.recurrent` at call time,
    so that a test can watch or replace them there. A fused step's backward is chosen by its cache type.
    Registering twice has no further effect.
    """
    global _registered
    if _registered:
        return
    from . import norms as N  # noqa: PLC0415  (they import lnedu.functional, as this package does)
    from . import recurrent as R  # noqa: PLC0415

    entries = [
        ("layer_norm", lambda x, gain, bias: _on_device(x) and N.supported(x, gain, bias),
         lambda x, gain, bias, eps: N.layer_norm(x, gain, bias, eps)),
        ("layer_norm_backward", lambda dy, cache: _on_device(dy) and N.backward_supported(dy, cache),
         lambda dy, cache: N.layer_norm_backward(dy, cache)),
        ("rms_norm", lambda x, gain: _on_device(x) and N.supported(x, gain),
         lambda x, gain, eps: N.rms_norm(x, gain, eps)),
        ("rms_norm_backward", lambda dy, cache: _on_device(dy) and N.backward_supported(dy, cache),
         lambda dy, cache: N.rms_norm_backward(dy, cache)),
        ("lstm_step", lambda a_x, h, c, W, **kw: _on_device(a_x) and R.lstm_supported(a_x, h, c, W, **kw),
         lambda a_x, h, c, W, *, norm_h, norm_c, **_: R.lstm_step(a_x, h, c, W, norm_h=norm_h, norm_c=norm_c)),
        ("lstm_step_backward", lambda dh, dc, cache, **_: isinstance(cache, R.FusedLSTMCache),
         lambda dh, dc, cache, **kw: R.lstm_step_backward(dh, dc, cache, **kw)),
        ("gru_step", lambda a_x, h, W, **kw: _on_device(a_x) and R.gru_supported(a_x, h, W, **kw),
         lambda a_x, h, W, *, norm_h, norm_hc, **_: R.gru_step(a_x, h, W, norm_h=norm_h, norm_hc=norm_hc)),
        ("gru_step_backward", lambda dh, cache, **_: isinstance(cache, R.FusedGRUCache),
         lambda dh, cache, **kw: R.gru_step_backward(dh, cache, **kw)),
    ]
    for name, supported, impl in entries:
        dispatch.register(name, supported, impl, label=f"lnedu.cuda.{name}")
    _registered = True


_registered = False
register()
