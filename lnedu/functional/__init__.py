"""The derivation layer: stateless forward/backward pairs that read like the paper.

``y, cache = F.layer_norm(x, gain, bias)`` then ``dx, dgain, dbias = F.layer_norm_backward(dy, cache)``.
Every backward here is checked against float64 finite differences in ``tests/``.
"""

from .basic import *  # noqa: F401,F403
from .basic import __all__ as _basic_all
from .conv import *  # noqa: F401,F403
from .conv import __all__ as _conv_all
from .norms import *  # noqa: F401,F403
from .norms import __all__ as _norms_all
from .recurrent import *  # noqa: F401,F403
from .recurrent import __all__ as _recurrent_all

__all__ = list(_basic_all) + list(_norms_all) + list(_conv_all) + list(_recurrent_all)
