"""Course exercises: automatic checkers (:mod:`.checkers`) and the exercise-sheet generator (:mod:`.build`).

The teaching notebooks hold the exercises, with their solutions marked the way nbgrader marks them;
``python -m lnedu exercises build`` writes the student versions (solutions replaced by stubs and hints) into
``notebooks/exercises/``, and ``--teacher --out DIR`` the teacher versions. Each exercise is followed by a
checker call, e.g. ``exercises.check_layer_norm_forward(my_layer_norm)``, whose answer says in words what is
right or wrong, without giving the solution away.
"""

from .checkers import *  # noqa: F401,F403
from .checkers import __all__ as _checkers_all

__all__ = list(_checkers_all)
