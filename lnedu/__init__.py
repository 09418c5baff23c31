"""lnedu: learn Layer Normalization (Ba, Kiros & Hinton, 2016) by deriving, running and poking at it.

Layers, lowest first (every import between them goes down; ``tests/test_architecture.py`` keeps it so):

* :mod:`lnedu.backend` - NumPy by default, CuPy on request; :mod:`lnedu._io` - atomic writes, locks, readers
  that name a damaged file;
* :mod:`lnedu.functional` - forward/backward pairs whose public bodies are the paper's equations; faster versions
  register with :mod:`lnedu.functional.dispatch` (``F.use_reference()`` switches them off);
  :mod:`lnedu.gradcheck` - finite-difference checks of every backward;
* :mod:`lnedu.nn` - modules with parameters and hand-written backprop (recurrent layers in
  :mod:`lnedu.nn.recurrent`: the BPTT loops in ``bptt.py``); :mod:`lnedu.cuda` - fused kernels, registered on
  import; :mod:`lnedu.optim`, :mod:`lnedu.init`, :mod:`lnedu.checkpoint`;
* :mod:`lnedu.theory`, :mod:`lnedu.data`, :mod:`lnedu.notebooks` (the headless notebook runner);
* :mod:`lnedu.viz`, :mod:`lnedu.exercises`;
* :mod:`lnedu.experiments` - the experiment contract, one module per experiment, the runner, the verdict rule;
* :mod:`lnedu.reproduce` (the main job), :mod:`lnedu.colab`, and the command line (``python -m lnedu``).
"""

# importing cuda registers the fused GPU kernels with functional's dispatch (it needs neither CuPy nor a GPU)
from . import backend, cuda, functional, gradcheck, init, nn, optim  # noqa: F401

__version__ = "0.1.0"

__all__ = ["backend", "functional", "gradcheck", "init", "nn", "optim", "__version__"]
