"""Course exercises: automatic checkers (:mod:`.checkers`, :mod:`.theory_checkers`), pen-and-paper questions
(:mod:`.questions`), grading (:mod:`.grading`) and the exercise-sheet generator (:mod:`.build`).

The teaching notebooks hold the exercises, with their solutions marked the way nbgrader marks them;
``python -m lnedu exercises build`` writes the student versions (solutions replaced by stubs and hints) into
``notebooks/exercises/``, and ``--teacher --out DIR`` the teacher versions. Each exercise is followed by a
checker call, e.g. ``exercises.check_layer_norm_forward(my_layer_norm)``, whose answer says in words what is
right or wrong, without giving the solution away. Under a grader (nbgrader sets ``NBGRADER_EXECUTION``) a
wrong or unattempted answer raises ``AssertionError`` with the same words, so the graded cell scores 0.
"""

from .checkers import *  # noqa: F401,F403
from .checkers import __all__ as _checkers_all
from .grading import graded, under_grader
from .questions import QUESTIONS, check_answer
from .theory_checkers import check_lstm_bptt, check_wn_fisher_block

__all__ = list(_checkers_all) + ["check_answer", "QUESTIONS", "check_wn_fisher_block", "check_lstm_bptt", "graded",
                                 "under_grader"]
