"""The derivation layer: stateless forward/backward pairs that read like the paper.

``y, cache = F.layer_norm(x, gain, bias)`` then ``dx, dgain, dbias = F.layer_norm_backward(dy, cache)``.
Every backward here is checked against float64 finite differences in ``tests/``.

The public bodies are the reference math. Faster versions of a few of them register with
:mod:`lnedu.functional.dispatch` from outside the bodies: the cache-blocked NumPy layer norm and RMSNorm
(:mod:`lnedu.functional._blocked`, registered below), the Numba-compiled ones where the ``[fast]`` extra
is installed (:mod:`lnedu.functional._numba` and, for the recurrent steps' pointwise parts,
:mod:`lnedu.functional._numba_lstm` and :mod:`lnedu.functional._numba_gru`; registered below, compiled on first
use) and lnedu's fused
GPU kernels (registered by the package that holds them, which imports this one; never the reverse).
``with F.use_reference():`` runs the reference alone.
"""

from . import _blocked, _numba, _numba_gru, _numba_lstm, dispatch
from .axes import *  # noqa: F401,F403
from .axes import __all__ as _axes_all
from .basic import *  # noqa: F401,F403
from .basic import __all__ as _basic_all
from .conv import *  # noqa: F401,F403
from .conv import __all__ as _conv_all
from .dispatch import use_reference
from .ln_variants import *  # noqa: F401,F403
from .ln_variants import __all__ as _ln_variants_all
from .norms import *  # noqa: F401,F403
from .norms import __all__ as _norms_all
from .recurrent import *  # noqa: F401,F403
from .recurrent import __all__ as _recurrent_all
from .window import *  # noqa: F401,F403
from .window import __all__ as _window_all

_blocked.register()
_numba.register()  # after _blocked, so asked first; only when Numba is installed, and nothing compiles yet
_numba_lstm.register()  # the LSTM step's pointwise part, likewise
_numba_gru.register()  # and the GRU's and MGU's

__all__ = (["dispatch", "use_reference"] + list(_basic_all) + list(_norms_all) + list(_conv_all) + list(_recurrent_all)
           + list(_axes_all) + list(_ln_variants_all) + list(_window_all))
