"""Online handwriting as pen offsets: IAM-OnDB's stroke files, and an embedded synthetic stand-in.

A line of handwriting is a sequence of rows ``(dx, dy, pen_up)``: row ``t`` is the pen's move from point
``t-1`` to point ``t`` (the first row is ``(0, 0)``) and ``pen_up = 1`` when point ``t`` ends a stroke, so the
next row is a jump with the pen in the air. This is the representation of Graves (2013, §4) and of the LN
paper's §6.5. Offsets are divided by one global scale (the root mean square of all training offsets, both
axes together, so letters keep their shape), stored in :attr:`StrokeDataset.scale`.

Sources, chosen by :func:`load_handwriting`:

* **IAM-OnDB** (Liwicki & Bunke 2005): 12,179 lines by 221 writers, captured on a whiteboard. It needs a
  registration, so lnedu never downloads it: unpack ``lineStrokes-all.tar.gz`` yourself and point ``path``
  (or ``$LNEDU_DATA/iam-ondb``) at the folder holding ``lineStrokes/``. :func:`parse_strokes_xml` reads one
  file. The split into train and test is by form (the folder ``a01-000`` holding a form's lines), seeded.
* **Synthetic** (the embedded default): lines of cursive "words" written with a tiny stroke font of eleven
  lowercase letters (``a c e h i l n o t u``), each letter a handful of control points joined by a
  Catmull-Rom spline. Every line draws its own slant, size, width, baseline tilt, spacing and a jitter of
  every control point, and the pen samples the curve at a jittered, roughly constant arc length with a
  little noise on every point. Dots on ``i`` and bars on ``t`` are separate short strokes added after their
  word, as people write them. Deterministic by seed; nothing is read from disk.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .download import DataUnavailable, cache_dir

__all__ = [
    "StrokeDataset",
    "parse_strokes_xml",
    "strokes_to_offsets",
    "offsets_to_strokes",
    "find_iam_ondb",
    "load_iam_ondb",
    "synthetic_line",
    "synthetic_lines",
    "load_synthetic_handwriting",
    "load_handwriting",
    "GLYPHS",
]


@dataclass
class StrokeDataset:
    """Lines of handwriting as ``(T_i, 3)`` float32 arrays of ``(dx, dy, pen_up)``, scaled offsets."""

    train: list
    test: list
    name: str  # "iam-ondb" or "synthetic"
    scale: float  # raw units per unit of the stored offsets
    description: str

    @property
    def lengths(self) -> tuple:
        """Mean number of points per line, train and test."""
        return float(np.mean([len(s) for s in self.train])), float(np.mean([len(s) for s in self.test]))


# ---------------------------------------------------------------------------------------------------------
# the representation


def strokes_to_offsets(strokes) -> np.ndarray:
    """``(N, 3)`` rows ``(dx, dy, pen_up)`` from a list of strokes, each an ``(n_i, 2)`` array of points.

    The first row is ``(0, 0, .)``; ``pen_up`` is 1 on the last point of every stroke.
    """
    strokes = [np.asarray(s, dtype=np.float64).reshape(-1, 2) for s in strokes]
    strokes = [s for s in strokes if len(s)]
    if not strokes:
        raise ValueError("strokes: expected at least one stroke with at least one point, got none")
    points = np.concatenate(strokes)
    out = np.zeros((len(points), 3))
    out[1:, :2] = np.diff(points, axis=0)
    ends = np.cumsum([len(s) for s in strokes]) - 1
    out[ends, 2] = 1.0
    return out


def offsets_to_strokes(offsets, origin=(0.0, 0.0)) -> list:
    """The inverse of :func:`strokes_to_offsets`: absolute points, one ``(n_i, 2)`` array per stroke.

    A sequence that does not end with ``pen_up = 1`` (a window cut from a line, a sample) keeps its
    last, unfinished stroke.
    """
    offsets = np.asarray(offsets, dtype=np.float64)
    if offsets.ndim != 2 or offsets.shape[1] != 3:
        raise ValueError(f"offsets: expected an array of shape (N, 3), got {offsets.shape}")
    points = np.cumsum(offsets[:, :2], axis=0) + np.asarray(origin, dtype=np.float64)
    cuts = np.flatnonzero(offsets[:, 2] > 0.5) + 1
    return [s for s in np.split(points, cuts) if len(s)]


# ---------------------------------------------------------------------------------------------------------
# IAM-OnDB


def parse_strokes_xml(path, *, flip_y: bool = True) -> np.ndarray:
    """One IAM-OnDB line file as raw ``(N, 3)`` offsets (whiteboard units, not yet scaled).

    The format: ``<WhiteboardCaptureSession><StrokeSet><Stroke ...><Point x=".." y=".." time=".."/>``...
    Strokes are taken in file order (the order they were written). ``flip_y``: the whiteboard's y axis
    points down, as on a screen; flipping it makes up positive, so lines plot upright.
    """
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise ValueError(f"path: expected an IAM-OnDB stroke XML file, but {path.name} is not valid XML ({exc})") \
            from exc
    strokes = []
    for stroke in root.iter("Stroke"):
        pts = []
        for p in stroke.iter("Point"):
            try:
                pts.append((float(p.attrib["x"]), float(p.attrib["y"])))
            except (KeyError, ValueError) as exc:
                raise ValueError(f"path: {path.name} has a <Point> without numeric x and y: {p.attrib}") from exc
        if pts:
            strokes.append(pts)
    if not strokes:
        raise ValueError(f"path: expected <Stroke> elements with <Point>s in {path.name}, found none")
    out = strokes_to_offsets(strokes)
    if flip_y:
        out[:, 1] = -out[:, 1]
    return out


def find_iam_ondb(path=None) -> list:
    """The stroke files of IAM-OnDB, sorted: ``PATH/lineStrokes/**/*.xml`` (or ``PATH/**/*.xml`` when ``PATH``
    is the ``lineStrokes`` folder itself). ``path`` defaults to ``$LNEDU_DATA/iam-ondb`` (see
    :func:`lnedu.data.cache_dir`). Raises :class:`DataUnavailable` saying where it looked."""
    folder = Path(path) if path is not None else cache_dir() / "iam-ondb"
    root = folder / "lineStrokes" if (folder / "lineStrokes").is_dir() else folder
    files = sorted(root.rglob("*.xml")) if root.is_dir() else []
    if not files:
        raise DataUnavailable(
            f"IAM-OnDB: no stroke files (lineStrokes/**/*.xml) under {folder}. The set needs a registration at "
            "https://fki.tic.heia-fr.ch/databases/iam-on-line-handwriting-database, so lnedu cannot download it: "
            "unpack lineStrokes-all.tar.gz there, or pass path=..."
        )
    return files


def _normalize(train, test):
    """Divide offsets by the RMS of all training offsets (one number for both axes); returns lists and scale."""
    d = np.concatenate([s[:, :2] for s in train])
    scale = float(np.sqrt(np.mean(d * d)))
    if not scale > 0:
        raise ValueError("train: expected pen movement, got only zero offsets")

    def norm(s):
        s = s.astype(np.float32)
        s[:, :2] /= scale
        return s

    return [norm(s) for s in train], [norm(s) for s in test], scale


def load_iam_ondb(path=None, *, test_fraction: float = 0.1, seed: int = 0, max_lines: int | None = None,
                  min_points: int = 2) -> StrokeDataset:
    """IAM-OnDB's lines from a local copy (see :func:`find_iam_ondb`), split by form, scaled.

    ``max_lines`` keeps the first lines of a seeded shuffle (for quick runs); lines with fewer than
    ``min_points`` points are dropped.
    """
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction: expected a number in (0, 1), got {test_fraction!r}")
    files = find_iam_ondb(path)
    order = np.random.default_rng(seed).permutation(len(files))
    if max_lines is not None:
        order = order[: int(max_lines)]
    files = [files[i] for i in order]
    forms = sorted({f.parent.name for f in files})
    perm = np.random.default_rng([seed, 1]).permutation(len(forms))
    n_test = max(1, int(round(test_fraction * len(forms)))) if len(forms) > 1 else 0
    test_forms = {forms[i] for i in perm[:n_test]}
    train, test = [], []
    for f in files:
        seq = parse_strokes_xml(f)
        if len(seq) >= min_points:
            (test if f.parent.name in test_forms else train).append(seq)
    if not train or not test:
        raise DataUnavailable(f"IAM-OnDB: found {len(train)} train and {len(test)} test lines; need both")
    train, test, scale = _normalize(train, test)
    return StrokeDataset(train, test, "iam-ondb", scale,
                         f"IAM-OnDB (Liwicki & Bunke 2005), {len(train)} train / {len(test)} test lines, split by form")


# ---------------------------------------------------------------------------------------------------------
# the synthetic default: a tiny cursive stroke font

# control points in units of the x-height (baseline y = 0, x-height 1, ascenders up to 2); a letter enters
# at its first point and leaves at its last, where the next letter of the word picks up the line.
# The second list holds the letter's extra strokes (i's dot, t's bar), written after the word.
GLYPHS = {
    "a": ([(0, .15), (.45, .75), (.35, .95), (.1, .75), (.08, .3), (.25, .05), (.5, .4), (.58, .9), (.55, .3),
           (.65, .05), (.85, .15)], []),
    "c": ([(0, .15), (.3, .6), (.6, .85), (.45, .95), (.15, .75), (.08, .3), (.3, .03), (.6, .08), (.8, .2)], []),
    "e": ([(0, .15), (.5, .45), (.55, .8), (.35, .95), (.12, .7), (.1, .25), (.35, .02), (.65, .1), (.8, .2)], []),
    "h": ([(0, .15), (.35, 1.1), (.45, 1.8), (.3, 2.0), (.15, 1.7), (.15, 0), (.25, .65), (.45, .92), (.6, .7),
           (.6, .15), (.72, .02), (.9, .15)], []),
    "i": ([(0, .15), (.2, .6), (.25, .95), (.22, .35), (.3, .05), (.5, .15)], [[(.24, 1.35), (.28, 1.42)]]),
    "l": ([(0, .15), (.4, 1.0), (.55, 1.7), (.45, 2.0), (.25, 1.75), (.25, .8), (.35, .1), (.55, .05), (.7, .2)], []),
    "n": ([(0, .15), (.12, .6), (.15, .95), (.15, 0), (.25, .65), (.45, .92), (.6, .7), (.6, .15), (.72, .02),
           (.9, .15)], []),
    "o": ([(0, .15), (.35, .85), (.12, .78), (.08, .3), (.3, .02), (.55, .3), (.55, .75), (.35, .88), (.6, .85),
           (.85, .8)], []),
    "r": ([(0, .15), (.15, .9), (.2, .7), (.4, .95), (.5, .85), (.45, .4), (.5, .05), (.75, .15)], []),
    "t": ([(0, .15), (.25, .8), (.35, 1.6), (.3, .9), (.28, .2), (.4, .02), (.6, .15)], [[(.05, .95), (.6, 1.0)]]),
    "u": ([(0, .15), (.12, .6), (.15, .95), (.15, .3), (.3, .03), (.5, .2), (.6, .95), (.58, .3), (.7, .03),
           (.88, .15)], []),
}


def _catmull_rom(ctrl: np.ndarray, step: float, rng: np.random.Generator) -> np.ndarray:
    """Points along the uniform Catmull-Rom spline through ``ctrl`` (K, 2), about ``step`` apart (jittered)."""
    if len(ctrl) == 1:
        return ctrl.copy()
    P = np.concatenate([ctrl[:1], ctrl, ctrl[-1:]])
    out = [ctrl[:1]]
    for k in range(1, len(P) - 2):
        p0, p1, p2, p3 = P[k - 1], P[k], P[k + 1], P[k + 2]
        n = max(1, int(np.ceil(np.linalg.norm(p2 - p1) / (step * rng.uniform(0.7, 1.3)))))
        t = (np.arange(1, n + 1) / n)[:, None]
        out.append(0.5 * ((2 * p1) + (-p0 + p2) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2
                          + (-p0 + 3 * p1 - 3 * p2 + p3) * t**3))
    return np.concatenate(out)


def synthetic_line(rng: np.random.Generator, *, words: tuple = (2, 4), letters: tuple = (1, 5),
                   units: float = 30.0) -> np.ndarray:
    """One synthetic line as raw ``(N, 3)`` offsets (``units`` per x-height), drawn with ``rng``.

    ``words`` and ``letters`` are inclusive ranges for the number of words per line and letters per word.
    """
    alphabet = sorted(GLYPHS)
    slant = rng.uniform(0.1, 0.45)  # x += slant * y
    size = units * rng.uniform(0.8, 1.25)
    stretch = rng.uniform(0.85, 1.2)  # letter width relative to height
    tilt = rng.normal(0, 0.02)  # baseline drift, rise per unit of x
    step = rng.uniform(0.07, 0.11)  # pen sampling distance, in x-heights
    strokes, cursor = [], 0.0
    for _ in range(rng.integers(words[0], words[1] + 1)):
        word = rng.choice(alphabet, size=rng.integers(letters[0], letters[1] + 1))
        ctrl, extras = [], []
        for k, ch in enumerate(word):
            body, marks = GLYPHS[ch]
            pts = np.array(body, dtype=np.float64)
            pts[:, 0] = pts[:, 0] * stretch + cursor
            ctrl.append(pts if k == 0 else pts[1:])  # the join: the previous letter's exit leads into this one
            extras += [np.array(m, dtype=np.float64) * (stretch, 1.0) + (cursor, 0.0) for m in marks]
            cursor = pts[-1, 0]
        for piece in [np.concatenate(ctrl)] + extras:
            piece = piece + rng.normal(0, 0.04, piece.shape)  # the writer's variation, letter by letter
            pts = _catmull_rom(piece, step, rng)
            pts = pts + rng.normal(0, 0.006, pts.shape)  # pen noise
            pts[:, 1] += tilt * pts[:, 0]
            pts[:, 0] += slant * pts[:, 1]
            strokes.append(pts * size)
        cursor += rng.uniform(0.5, 1.0) * stretch  # the space between words
    return strokes_to_offsets(strokes)


def synthetic_lines(n: int, seed: int = 0, **kwargs) -> list:
    """``n`` synthetic lines (raw offsets), the same for the same seed; line ``i`` depends only on ``(seed, i)``."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n: expected a positive integer, got {n!r}")
    return [synthetic_line(np.random.default_rng([int(seed), i, 0x57]), **kwargs) for i in range(int(n))]


def load_synthetic_handwriting(n_train: int = 400, n_test: int = 80, seed: int = 0) -> StrokeDataset:
    """The embedded default: ``n_train`` + ``n_test`` synthetic lines (disjoint draws), scaled like the real set."""
    lines = synthetic_lines(int(n_train) + int(n_test), seed)
    train, test, scale = _normalize(lines[: int(n_train)], lines[int(n_train):])
    return StrokeDataset(train, test, "synthetic", scale,
                         f"synthetic cursive from lnedu's stroke font (embedded default), "
                         f"{len(train)} train / {len(test)} test lines")


def load_handwriting(source: str = "auto", path=None, *, seed: int = 0, n_train: int = 400, n_test: int = 80,
                     max_lines: int | None = None) -> StrokeDataset:
    """IAM-OnDB when a local copy is found (or ``source='iam'``), else the synthetic lines.

    ``source``: ``'auto'`` (real if on disk, else synthetic), ``'iam'`` (real or an error), ``'synthetic'``.
    ``n_train``/``n_test`` size the synthetic set; ``max_lines`` limits the real one.
    """
    if source not in ("auto", "iam", "synthetic"):
        raise ValueError(f"source: expected 'auto', 'iam' or 'synthetic', got {source!r}")
    if source != "synthetic":
        try:
            return load_iam_ondb(path, seed=seed, max_lines=max_lines)
        except DataUnavailable:
            if source == "iam":
                raise
    return load_synthetic_handwriting(n_train, n_test, seed)
