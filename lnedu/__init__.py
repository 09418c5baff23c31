"""lnedu: learn Layer Normalization (Ba, Kiros & Hinton, 2016) by deriving, running and poking at it.

Layers:

* :mod:`lnedu.functional` - forward/backward pairs that read like the paper's equations;
* :mod:`lnedu.nn` - modules with parameters and hand-written backprop; :mod:`lnedu.optim`, :mod:`lnedu.init`;
* :mod:`lnedu.gradcheck` - finite-difference checks of every backward;
* :mod:`lnedu.backend` - NumPy by default, CuPy on request.
"""

# importing cuda registers the fused GPU kernels with functional's dispatch (it needs neither CuPy nor a GPU)
from . import backend, cuda, functional, gradcheck, init, nn, optim  # noqa: F401

__version__ = "0.1.0"

__all__ = ["backend", "functional", "gradcheck", "init", "nn", "optim", "__version__"]
