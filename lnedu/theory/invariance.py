r"""Table 1 of the LN paper, computed: which changes to weights and data leave a normalized layer unchanged.

Ba, Kiros & Hinton (2016, arXiv:1607.06450, §5.1) write batch norm (BN), weight norm (WN) and layer norm (LN)
in one form, Eq. (5):

.. math:: h_i = f\Big(\frac{g_i}{\sigma_i}(a_i - \mu_i) + b_i\Big),\qquad a = x W,

and list in Table 1 which of six transformations leave ``h`` unchanged. This module decides each cell
*numerically*: it builds the layer from :mod:`lnedu.functional` (``linear`` then ``batch_norm``,
``layer_norm`` or ``rms_norm``; for WN ``weight_norm`` of the weights then ``linear``), applies a
transformation with a random magnitude to random data, and measures the relative change of the output,
``||h' - h|| / ||h||``, over several trials. A cell is *invariant* when every trial changes the output by
less than ``tol`` (1e-6; rounding gives about 1e-15, a real change is of order 1).

The six transformations, in lnedu's ``x @ W`` convention (``x``: N cases x D inputs, ``W``: D x H, unit
``j``'s incoming weight vector ``w_j`` is column ``j``; ``delta > 0``, ``gamma`` a vector of length D):

=========================  =====================================  ==========================================
name                       the change                             what it does to the summed inputs ``a``
=========================  =====================================  ==========================================
``weight_rescale``         ``W' = delta W``                       ``a' = delta a``
``weight_recenter``        ``w_j' = w_j + gamma`` for every j     ``a'_nj = a_nj + gamma.x_n`` (one shift per case)
``weight_vector_rescale``  ``w_k' = delta w_k`` for one unit k    column k of ``a`` times delta
``data_rescale``           ``x' = delta x``                       ``a' = delta a``
``data_recenter``          ``x_n' = x_n + gamma`` for every n     ``a'_nj = a_nj + gamma.w_j`` (one shift per unit)
``case_rescale``           ``x_m' = delta x_m`` for one case m    row m of ``a`` times delta
=========================  =====================================  ==========================================

The paper's W is (H, D) with rows ``w_i``, and its re-centering ``W' = delta W + 1 gamma^T`` adds
``gamma^T`` to every row; here W is (D, H), so ``gamma`` is added to every column. Re-scaling means
``delta > 0``: a negative factor flips the sign of every normalized output.

Two values of epsilon are measured for every cell. The paper's normalizers have none; ``eps = 0`` is
passed to :mod:`lnedu.functional` as :data:`EPS_ZERO`, the smallest positive normal float, which vanishes
next to any variance above about 1e-292. The library's default ``eps = 1e-5`` (as in the paper's released
code) breaks the *scale* invariances: ``sqrt(delta^2 sigma^2 + eps)`` is not ``delta sqrt(sigma^2 + eps)``,
and the difference is visible once ``sigma^2`` is comparable to ``eps`` (small summed inputs). The *shift*
invariances survive any eps, since a shift leaves the variance alone. WN has no eps at all.

The expected table is derived, not typed, by :func:`derive_invariance` from two facts per row (which
group of summed inputs the statistics run over, and whether the mean is removed) and two per column (what
the transformation does within each group). It reproduces the paper's rows for BN, WN and LN and gives
RMSNorm's row (Zhang & Sennrich 2019), which the computed table must then match.
"""

from __future__ import annotations

import html
import math
import numbers
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from .. import functional as F
from .._checks import check_float_array, check_positive
from ..backend import asarray, get_array_module, to_numpy

__all__ = [
    "NORMS",
    "TRANSFORMATIONS",
    "NORM_LABELS",
    "TRANSFORMATION_LABELS",
    "PAPER_TABLE1",
    "RMSNORM_README_ROW",
    "EPS_ZERO",
    "DEFAULT_EPS",
    "DEFAULT_TOL",
    "Layer",
    "random_layer",
    "layer_output",
    "transform",
    "relative_change",
    "BeforeAfter",
    "before_after",
    "eps_sweep",
    "derive_invariance",
    "derived_table",
    "Cell",
    "InvarianceTable",
    "invariance_table",
]

NORMS = ("batch", "weight", "layer", "rms")
"""The normalizations of the table, in the paper's row order, then RMSNorm. ``"none"`` is also accepted."""

TRANSFORMATIONS = (
    "weight_rescale",
    "weight_recenter",
    "weight_vector_rescale",
    "data_rescale",
    "data_recenter",
    "case_rescale",
)
"""The six transformations, in the column order of the paper's Table 1."""

NORM_LABELS = {
    "batch": "Batch norm",
    "weight": "Weight norm",
    "layer": "Layer norm",
    "rms": "RMSNorm",
    "none": "No normalization",
}

TRANSFORMATION_LABELS = {
    "weight_rescale": "Weight matrix re-scaling",
    "weight_recenter": "Weight matrix re-centering",
    "weight_vector_rescale": "Weight vector re-scaling",
    "data_rescale": "Dataset re-scaling",
    "data_recenter": "Dataset re-centering",
    "case_rescale": "Single training case re-scaling",
}

_RESCALINGS = frozenset({"weight_rescale", "weight_vector_rescale", "data_rescale", "case_rescale"})

PAPER_TABLE1 = {
    "batch": (True, False, True, True, True, False),
    "weight": (True, False, True, False, False, False),
    "layer": (True, True, False, True, False, True),
}
"""Table 1 of Ba, Kiros & Hinton (2016), "Layer Normalization", arXiv:1607.06450: True = "Invariant",
False = "No", columns in the order of :data:`TRANSFORMATIONS`."""

RMSNORM_README_ROW = (True, False, False, True, False, True)
"""The RMSNorm row that the README of github.com/bzhangGo/rmsnorm (Zhang & Sennrich 2019) adds to Table 1,
kept as a claim to compare against, not as the expected answer (that is :func:`derive_invariance`)."""

EPS_ZERO = float(np.finfo(np.float64).tiny)
"""What ``eps = 0`` (the paper's value) is passed on as: :mod:`lnedu.functional` needs ``eps > 0``."""

DEFAULT_EPS = 1e-5
"""lnedu's default, as in the paper's released code (eps added to the variance inside the square root)."""

DEFAULT_TOL = 1e-6
"""Largest relative output change still called invariant (float64 rounding gives about 1e-15)."""

_ACTIVATIONS = ("tanh", "identity")


# --------------------------------------------------------------------------------------------------
# argument checks


def _check_name(arg: str, value, allowed) -> str:
    if value is None and arg == "norm":
        value = "none"
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{arg}: expected one of {tuple(allowed)}, got {value!r}")
    return value


def _check_norm(norm) -> str:
    return _check_name("norm", norm, NORMS + ("none",))


def _check_transformation(transformation) -> str:
    return _check_name("transformation", transformation, TRANSFORMATIONS)


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an integer >= {minimum}, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value}")
    return int(value)


def _check_eps(eps) -> float:
    """``eps`` as passed to lnedu.functional: 0 (the paper) becomes :data:`EPS_ZERO`."""
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real):
        raise TypeError(f"eps: expected a real number >= 0, got {type(eps).__name__}")
    if not (math.isfinite(eps) and eps >= 0):
        raise ValueError(f"eps: expected a finite number >= 0 (0: the paper's normalizers), got {eps!r}")
    return float(eps) if eps > 0 else EPS_ZERO


# --------------------------------------------------------------------------------------------------
# the layer and the transformations


class Layer(NamedTuple):
    """Data and parameters of one normalized layer: ``x`` (N, D), ``W`` (D, H), gains ``g`` and biases
    ``b`` (H,). For weight norm ``W`` holds the direction parameters (``v`` of Salimans & Kingma)."""

    x: object
    W: object
    g: object
    b: object


def random_layer(n_cases: int = 16, n_inputs: int = 10, n_units: int = 8, *, input_scale: float = 1.0,
                 seed=0) -> Layer:
    """A random float64 layer on the default backend.

    Inputs are Gaussian with a random offset per feature, times ``input_scale`` (so the summed inputs have
    a standard deviation of the order of ``input_scale``: ``W`` has entries of variance ``1/D``); gains are drawn
    from U(0.5, 1.5) and biases from N(0, 0.2^2). ``seed``: an int or a ``numpy.random.Generator``.
    """
    # Generic sizes only. With two units, layer norm maps every case to b +- (g_1, -g_2): only the sign of
    # a_1 - a_2 survives, which hides most changes; two cases do the same to batch norm, and with one input
    # every case's summed inputs are multiples of one vector.
    n_cases = _check_int("n_cases", n_cases, 3)
    n_inputs = _check_int("n_inputs", n_inputs, 2)
    n_units = _check_int("n_units", n_units, 3)
    input_scale = check_positive("input_scale", input_scale)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    x = (rng.standard_normal((n_cases, n_inputs)) + rng.standard_normal(n_inputs)) * input_scale
    W = rng.standard_normal((n_inputs, n_units)) / math.sqrt(n_inputs)
    g = rng.uniform(0.5, 1.5, n_units)
    b = rng.normal(0.0, 0.2, n_units)
    return Layer(*(asarray(p, dtype=np.float64) for p in (x, W, g, b)))


def layer_output(norm: str, layer: Layer, eps: float = DEFAULT_EPS, *, activation: str = "tanh"):
    r"""``h = f(z)`` of a normalized layer, with ``z`` the paper's Eq. (5) for the chosen normalization.

    * ``"batch"``: ``z = batch_norm(x W, g, b)``, statistics of each unit over the N cases (Eq. 2);
    * ``"layer"``: ``z = layer_norm(x W, g, b)``, statistics of each case over the H units (Eq. 3);
    * ``"rms"``: ``z = rms_norm(x W, g) + b``, the root mean square over the units, no mean removed;
    * ``"weight"``: ``z = x w + b`` with ``w = weight_norm(W, g) = g W / ||W||`` per column: Eq. (5) with
      ``mu = 0`` and ``sigma = ||w_j||``, and no eps;
    * ``"none"``: ``z = x W + b``.

    ``f`` is ``tanh`` or the identity. Any fixed one-to-one ``f`` gives the same invariances, since it is
    applied after the normalization; ``eps = 0`` means the paper's normalizers (no eps).
    """
    norm = _check_norm(norm)
    activation = _check_name("activation", activation, _ACTIVATIONS)
    eps = _check_eps(eps)
    x, W, g, b = _check_layer(layer)
    if norm == "weight":
        w, _ = F.weight_norm(W, g)
        z, _ = F.linear(x, w, b)
    elif norm == "none":
        z, _ = F.linear(x, W, b)
    else:
        a, _ = F.linear(x, W)
        if norm == "batch":
            z, _ = F.batch_norm(a, g, b, eps)
        elif norm == "layer":
            z, _ = F.layer_norm(a, g, b, eps)
        else:
            z, _ = F.rms_norm(a, g, eps)
            z += b
    return F.tanh(z)[0] if activation == "tanh" else z


def _shift(rng, vectors, axis: int, magnitude: float, direction):
    """A shift ``gamma`` (length D) of ``magnitude`` times the mean length of ``vectors`` along ``axis``
    (the columns of W for ``axis=0``, the rows of x for ``axis=1``), pointing along ``direction``."""
    xp = get_array_module(vectors)
    n = vectors.shape[axis]
    u = xp.asarray(rng.standard_normal(n) if direction is None else direction, dtype=vectors.dtype)
    if u.shape != (n,):
        raise ValueError(f"direction: expected shape ({n},), got {tuple(u.shape)}")
    length = float(xp.linalg.norm(u))
    if not length > 0:
        raise ValueError("direction: expected a non-zero vector, got all zeros")
    typical = float(xp.sqrt((vectors * vectors).sum(axis=axis)).mean())
    return u * (magnitude * typical / length)


def transform(transformation: str, layer: Layer, magnitude: float, *, unit: int = 0, case: int = 0,
              direction=None, seed=0) -> Layer:
    """Apply one of the six transformations to ``layer``; returns a new :class:`Layer` (inputs not modified).

    ``magnitude`` is the factor ``delta > 0`` of a re-scaling, or the length of the shift ``gamma`` of a
    re-centering, relative to the mean length of a weight vector (``weight_recenter``) or of an input
    case (``data_recenter``). ``unit`` is the weight vector that ``weight_vector_rescale`` scales, ``case``
    the row that ``case_rescale`` scales. ``direction`` (length D) fixes the direction of ``gamma``;
    by default it is drawn from ``seed``. Gains and biases never change.
    """
    transformation = _check_transformation(transformation)
    if isinstance(magnitude, bool) or not isinstance(magnitude, numbers.Real):
        raise TypeError(f"magnitude: expected a real number, got {type(magnitude).__name__}")
    if not math.isfinite(magnitude):
        raise ValueError(f"magnitude: expected a finite number, got {magnitude!r}")
    if transformation in _RESCALINGS:
        magnitude = check_positive("magnitude", magnitude)
    x, W, g, b = _check_layer(layer)
    N, H = x.shape[0], W.shape[1]
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    if transformation == "weight_rescale":
        W = W * magnitude
    elif transformation == "weight_recenter":  # gamma added to every column w_j
        W = W + _shift(rng, W, 0, magnitude, direction)[:, None]
    elif transformation == "weight_vector_rescale":
        unit = _check_index("unit", unit, H)
        W = W.copy()
        W[:, unit] *= magnitude
    elif transformation == "data_rescale":
        x = x * magnitude
    elif transformation == "data_recenter":  # gamma added to every case x_n
        x = x + _shift(rng, x, 1, magnitude, direction)[None, :]
    else:  # case_rescale
        case = _check_index("case", case, N)
        x = x.copy()
        x[case] *= magnitude
    return Layer(x, W, g, b)


def _check_layer(layer) -> Layer:
    if not isinstance(layer, Layer):
        raise TypeError(f"layer: expected an invariance.Layer (x, W, g, b), got {type(layer).__name__}")
    x, W = layer.x, layer.W
    check_float_array("layer.x", x, ndim=2)
    check_float_array("layer.W", W, ndim=2)
    if x.shape[1] != W.shape[0]:
        raise ValueError(f"layer.W: expected {x.shape[1]} rows (= layer.x.shape[1]), got shape {tuple(W.shape)}")
    return layer


def _check_index(name: str, value, size: int) -> int:
    value = _check_int(name, value, 0)
    if value >= size:
        raise ValueError(f"{name}: expected an index in [0, {size - 1}], got {value}")
    return value


def relative_change(before, after) -> float:
    """``||after - before|| / ||before||`` (Frobenius norms), as a Python float."""
    xp = get_array_module(before, after)
    return float(xp.linalg.norm(after - before) / xp.linalg.norm(before))


# --------------------------------------------------------------------------------------------------
# one transformation, before and after (the explorer's computation)


@dataclass(frozen=True)
class BeforeAfter:
    """The output of one normalized layer before and after one transformation (host arrays, N x H)."""

    norm: str
    transformation: str
    magnitude: float
    eps: float
    input_scale: float
    before: np.ndarray
    after: np.ndarray
    change: float  # ||after - before|| / ||before||


def before_after(norm: str, transformation: str, magnitude: float, *, eps: float = 0.0, input_scale: float = 1.0,
                 activation: str = "tanh", n_cases: int = 16, n_inputs: int = 10, n_units: int = 8,
                 seed: int = 0) -> BeforeAfter:
    """Build a random layer (``seed``), apply ``transformation`` with ``magnitude`` and compare the outputs.

    The same seed gives the same data, parameters and shift direction whatever the other arguments, so
    moving one slider changes only what it names. ``eps = 0`` is the paper's normalizer (no eps).
    """
    norm = _check_norm(norm)
    rng = np.random.default_rng(seed)
    layer = random_layer(n_cases, n_inputs, n_units, input_scale=input_scale, seed=rng)
    moved = transform(transformation, layer, magnitude, seed=rng)
    h0 = layer_output(norm, layer, eps, activation=activation)
    h1 = layer_output(norm, moved, eps, activation=activation)
    return BeforeAfter(norm, transformation, float(magnitude), float(eps), float(input_scale), to_numpy(h0),
                       to_numpy(h1), relative_change(h0, h1))


def eps_sweep(norm: str, transformation: str, magnitude: float, input_scales, *, eps: float = DEFAULT_EPS,
              activation: str = "tanh", seed: int = 0):
    """Relative output change of one transformation as the inputs shrink: one value per ``input_scales`` entry.

    The data, parameters and shift direction are the same at every scale (only multiplied by it), so the
    curve shows eps alone at work: with ``eps = 0`` it stays at rounding level for an invariant cell; with
    ``eps > 0`` it grows once the variance of the summed inputs (about ``input_scale^2``) nears ``eps``.
    Returns a float64 host array.
    """
    return np.array([
        before_after(norm, transformation, magnitude, eps=eps, input_scale=s, activation=activation, seed=seed).change
        for s in input_scales
    ])


# --------------------------------------------------------------------------------------------------
# the table derived by hand

# What each transformation does within each group of summed inputs a = x W (N cases x H units):
#   "case":    a row a_n, the H units of one case (what LN and RMSNorm take statistics over);
#   "unit":    a column a_:j, one unit over the N cases (what BN takes statistics over);
#   "weights": a weight vector w_j together with its column a_:j = x w_j (what WN divides by ||w_j||).
# "scale": every group is multiplied by one factor of its own (> 0; 1 for groups left alone);
# "shift": every group is moved by one constant of its own, the same for all its entries;
# None:    the entries of a group move differently (for generic data), or, for "weights", the column of
#          a moves while w_j does not follow with the same factor.
_EFFECTS = {
    "weight_rescale": {"case": "scale", "unit": "scale", "weights": "scale"},  # a -> delta a
    "weight_recenter": {"case": "shift", "unit": None, "weights": None},  # a_nj + gamma.x_n
    "weight_vector_rescale": {"case": None, "unit": "scale", "weights": "scale"},  # a_:k -> delta a_:k
    "data_rescale": {"case": "scale", "unit": "scale", "weights": None},  # a -> delta a, W unchanged
    "data_recenter": {"case": None, "unit": "shift", "weights": None},  # a_nj + gamma.w_j
    "case_rescale": {"case": "scale", "unit": None, "weights": None},  # a_m: -> delta a_m:
}

# Each normalizer: the group its statistics run over, and which of the group's moves it removes exactly:
# dividing by a statistic that scales with the group removes "scale", subtracting the mean removes "shift".
_NORMALIZERS = {
    "batch": ("unit", ("scale", "shift")),  # mu_j, sigma_j over the cases (Eq. 2)
    "layer": ("case", ("scale", "shift")),  # mu, sigma over the units of a case (Eq. 3)
    "rms": ("case", ("scale",)),  # sqrt(mean_j a_nj^2): scales with the case, no mean removed
    "weight": ("weights", ("scale",)),  # ||w_j||: scales with w_j; blind to the data
    "none": (None, ()),
}


def derive_invariance(norm: str, transformation: str, *, eps: bool = False) -> bool:
    r"""Whether ``norm`` is invariant to ``transformation``, derived by hand rather than measured.

    A normalizer takes its statistics over a group of summed inputs and removes what the group does as a
    whole: the division by ``sigma`` (or the RMS, or ``||w_j||``) removes a positive factor common to the
    group, since the statistic takes the same factor; subtracting the mean ``mu`` removes a constant shift.
    So the layer is invariant exactly when, within every one of its groups, the transformation is such a
    factor (or, if the mean is removed, such a shift). Reading each transformation's effect off its
    definition (module docstring) gives, for example:

    * LN, weight matrix re-centering: ``a_nj + gamma.x_n`` moves all units of case n by one constant,
      which ``mu`` removes: invariant (the paper's Eq. 6). BN sees a different shift in every case of a
      unit's column: not invariant.
    * BN, dataset re-centering: ``a_nj + gamma.w_j`` moves unit j's column by one constant: invariant.
    * LN, single training case re-scaling: row m is multiplied by delta, and so are its ``mu`` and
      ``sigma``: invariant (Eq. 7). BN mixes that row with the others in each column: not invariant.
    * WN, dataset re-scaling: ``a`` scales with delta, ``||w_j||`` does not: **not invariant** (Table 1
      says No, although §5.1's text says all three methods are invariant to re-scaling the dataset).
    * RMSNorm: ``rms(a_n)`` scales with the case, nothing is subtracted, so it is invariant to weight
      matrix, dataset and single case re-scaling and to nothing else: (Invariant, No, No, Invariant, No,
      Invariant), the row bzhangGo/rmsnorm's README gives.

    ``eps=True`` asks whether the invariance survives a positive ``eps`` exactly: ``sqrt(delta^2 sigma^2
    + eps) != delta sqrt(sigma^2 + eps)``, so invariances through "scale" become approximate for BN, LN
    and RMSNorm, while shifts (which leave the variance alone) and WN (which has no eps) stay exact.
    """
    norm = _check_norm(norm)
    effect = _EFFECTS[_check_transformation(transformation)]
    group, removes = _NORMALIZERS[norm]
    move = effect[group] if group is not None else None
    if move not in removes:
        return False
    return not (eps and move == "scale" and norm != "weight")


def derived_table(norms=NORMS, *, eps: bool = False) -> dict:
    """``{norm: (bool, ...)}`` from :func:`derive_invariance`, columns in the order of :data:`TRANSFORMATIONS`."""
    return {n: tuple(derive_invariance(n, t, eps=eps) for t in TRANSFORMATIONS) for n in norms}


# --------------------------------------------------------------------------------------------------
# the table measured


@dataclass(frozen=True)
class Cell:
    """One cell of the computed table: the verdict and the measured relative output changes.

    ``changes`` and ``changes_eps`` hold one relative change per trial, with ``eps -> 0`` (the paper) and with
    the table's eps; ``magnitudes`` the factor (re-scalings) or relative shift length (re-centerings) of each
    trial. ``invariant`` is the paper's question: every trial below ``tol`` with eps -> 0.
    """

    norm: str
    transformation: str
    invariant: bool
    changes: tuple
    changes_eps: tuple
    magnitudes: tuple

    @property
    def change(self) -> float:
        """The largest relative change over the trials, eps -> 0."""
        return max(self.changes)

    @property
    def change_eps(self) -> float:
        """The largest relative change over the trials, with the table's eps."""
        return max(self.changes_eps)


def _fmt(v: float) -> str:
    """A relative change for display: rounding noise (< 1e-12) as one bucket, so it prints the same anywhere."""
    return "<1e-12" if v < 1e-12 else f"{v:.1e}"


@dataclass(frozen=True)
class InvarianceTable:
    """Table 1 computed: ``table[norm, transformation]`` is a :class:`Cell`.

    ``rows()`` gives ``{norm: (bool, ...)}`` in the layout of :data:`PAPER_TABLE1`; ``to_markdown()`` and
    ``to_html()`` render it (the latter is what Jupyter shows), optionally beside a reference table.
    """

    norms: tuple
    transformations: tuple
    cells: dict = field(repr=False)
    eps: float
    tol: float
    trials: int
    seed: int
    input_scale: float
    shape: tuple  # (N cases, D inputs, H units)

    def __getitem__(self, key) -> Cell:
        norm, transformation = _check_norm(key[0]), _check_transformation(key[1])
        if (norm, transformation) not in self.cells:
            raise KeyError(f"({norm!r}, {transformation!r}) is not a cell of this table "
                           f"(rows {self.norms}, columns {self.transformations})")
        return self.cells[norm, transformation]

    def row(self, norm: str) -> tuple:
        return tuple(self[norm, t].invariant for t in self.transformations)

    def rows(self) -> dict:
        return {n: self.row(n) for n in self.norms}

    def mismatches(self, reference: dict) -> list:
        """``(norm, transformation)`` of every cell where the computed verdict differs from ``reference``
        (``{norm: (bool, ...)}`` over all six transformations, e.g. :data:`PAPER_TABLE1`)."""
        out = []
        for n in self.norms:
            if n in reference:
                for t, want in zip(TRANSFORMATIONS, reference[n]):
                    if t in self.transformations and self[n, t].invariant != bool(want):
                        out.append((n, t))
        return out

    def _text(self, cell: Cell, changes: bool) -> str:
        word = "Invariant" if cell.invariant else "No"
        return f"{word} ({_fmt(cell.change)} / {_fmt(cell.change_eps)})" if changes else word

    def to_markdown(self, *, changes: bool = False, reference: dict | None = None) -> str:
        """The table as Markdown, in the paper's words ("Invariant" / "No").

        ``changes=True`` adds the largest relative change measured with eps -> 0 and with the table's eps,
        in that order. With a ``reference``, each cell that disagrees with it is marked "(ref: ...)".
        """
        head = "| | " + " | ".join(TRANSFORMATION_LABELS[t] for t in self.transformations) + " |"
        lines = [head, "|---" * (len(self.transformations) + 1) + "|"]
        for n in self.norms:
            cells = []
            for t in self.transformations:
                text = self._text(self[n, t], changes)
                if reference is not None and n in reference:
                    want = bool(reference[n][TRANSFORMATIONS.index(t)])
                    if want != self[n, t].invariant:
                        text += f" **(ref: {'Invariant' if want else 'No'})**"
                cells.append(text)
            lines.append(f"| {NORM_LABELS[n]} | " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def to_html(self, *, reference: dict | None = None, reference_name: str = "paper") -> str:
        """The table as HTML: each cell gives the verdict, the largest relative change with eps -> 0 and with
        the table's eps, and (with a ``reference``) the reference's verdict beside it. Green: invariant and
        unaffected by eps; yellow: invariant only as eps -> 0; red: not invariant."""
        esc = html.escape
        style = "border:1px solid #bbb;padding:4px 6px;text-align:center;font-size:90%"
        out = ['<table style="border-collapse:collapse">', f"<tr><th style='{style}'></th>"]
        out += [f"<th style='{style}'>{esc(TRANSFORMATION_LABELS[t])}</th>" for t in self.transformations]
        out.append("</tr>")
        for n in self.norms:
            out.append(f"<tr><th style='{style}'>{esc(NORM_LABELS[n])}</th>")
            for t in self.transformations:
                c = self[n, t]
                colour = "#f4c7c3" if not c.invariant else ("#c8e6c9" if c.change_eps < self.tol else "#fff2b3")
                verdict = "Invariant" if c.invariant else "No"
                text = f"<b>{verdict}</b><br>{esc(_fmt(c.change))} / {esc(_fmt(c.change_eps))}"
                if reference is not None and n in reference:
                    want = bool(reference[n][TRANSFORMATIONS.index(t)])
                    mark = "agrees" if want == c.invariant else "<b>DIFFERS</b>"
                    text += f"<br><i>{esc(reference_name)}: {'Invariant' if want else 'No'} ({mark})</i>"
                out.append(f"<td style='{style};background:{colour};color:black'>{text}</td>")
            out.append("</tr>")
        out.append("</table>")
        out.append(
            f"<p style='font-size:85%'>Largest relative output change over {self.trials} trials: "
            f"eps &rarr; 0 / eps = {self.eps:g}. Invariant: below {self.tol:g} with eps &rarr; 0.</p>"
        )
        return "".join(out)

    def _repr_html_(self) -> str:
        return self.to_html()


def _draw_magnitude(rng, transformation: str) -> float:
    """A random factor, log-uniform on [1/8, 1/2] or [2, 8] (never near 1), or a relative shift in [0.5, 2]."""
    if transformation in _RESCALINGS:
        return float(np.exp(rng.choice((-1.0, 1.0)) * rng.uniform(math.log(2), math.log(8))))
    return float(rng.uniform(0.5, 2.0))


def invariance_table(norms=NORMS, transformations=TRANSFORMATIONS, *, trials: int = 4, eps: float = DEFAULT_EPS,
                     tol: float = DEFAULT_TOL, input_scale: float = 1.0, n_cases: int = 16, n_inputs: int = 10,
                     n_units: int = 8, activation: str = "tanh", seed: int = 0) -> InvarianceTable:
    """Measure Table 1: every (norm, transformation) pair, ``trials`` times, with eps -> 0 and with ``eps``.

    Each trial draws a fresh random layer (:func:`random_layer`, with ``input_scale``), a random magnitude
    (factors log-uniform in [1/8, 1/2] or [2, 8], shifts of 0.5 to 2 times a typical vector's length), a
    random unit, case and shift direction, and applies the same change to every normalization, so that rows
    differ only by the normalizer. Deterministic for a given ``seed``.
    """
    norms = tuple(_check_norm(n) for n in norms)
    transformations = tuple(_check_transformation(t) for t in transformations)
    if not norms or not transformations:
        raise ValueError("norms, transformations: expected at least one of each, got an empty sequence")
    trials = _check_int("trials", trials, 1)
    eps = _check_eps(eps)
    tol = check_positive("tol", tol)
    seed = _check_int("seed", seed, 0)
    rng = np.random.default_rng(seed)
    found = {(n, t): ([], [], []) for n in norms for t in transformations}
    for _ in range(trials):
        layer = random_layer(n_cases, n_inputs, n_units, input_scale=input_scale, seed=rng)
        base = {(n, e): layer_output(n, layer, e, activation=activation) for n in norms for e in (0.0, eps)}
        for t in transformations:
            m = _draw_magnitude(rng, t)
            unit, case = int(rng.integers(n_units)), int(rng.integers(n_cases))
            moved = transform(t, layer, m, unit=unit, case=case, seed=rng)
            for n in norms:
                changes, changes_eps, magnitudes = found[n, t]
                changes.append(relative_change(base[n, 0.0], layer_output(n, moved, 0.0, activation=activation)))
                changes_eps.append(relative_change(base[n, eps], layer_output(n, moved, eps, activation=activation)))
                magnitudes.append(m)
    cells = {
        key: Cell(key[0], key[1], max(ch) < tol, tuple(ch), tuple(che), tuple(mag))
        for key, (ch, che, mag) in found.items()
    }
    return InvarianceTable(norms, transformations, cells, float(eps), tol, trials, seed, float(input_scale),
                           (n_cases, n_inputs, n_units))
