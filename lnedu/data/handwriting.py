"""Online handwriting as pen offsets: IAM-OnDB's stroke files, and an embedded synthetic stand-in.

A line of handwriting is a sequence of rows ``(dx, dy, pen_up)``: row ``t`` is the pen's move from point
``t-1`` to point ``t`` (the first row is ``(0, 0)``) and ``pen_up = 1`` when point ``t`` ends a stroke, so the
next row is a jump with the pen in the air. This is the representation of Graves (2013, §4) and of the LN
paper's §6.5. Offsets are divided by one global scale (the root mean square of all training offsets, both
axes together, so letters keep their shape), stored in :attr:`StrokeDataset.scale`.

Sources, chosen by :func:`load_handwriting`:

* **IAM-OnDB** (Liwicki & Bunke 2005): 12,179 lines by 221 writers, captured on a whiteboard. It needs a
  registration, so lnedu never downloads it (:data:`IAM_ONDB` says how to get it): unpack
  ``lineStrokes-all.tar.gz`` and ``ascii-all.tar.gz`` yourself into one folder and point ``path`` (``--data``, or
  ``$LNEDU_DATA/iam-ondb``) at it. :func:`parse_strokes_xml` reads one stroke file, :func:`read_transcriptions`
  the text of every line (the ``CSR:`` section of ``ascii/a01/a01-000/a01-000u.txt``: its line ``i`` is the
  text of ``lineStrokes/a01/a01-000/a01-000u-0i.xml``). The split into train and test is by form (the folder
  ``a01-000`` holding a form's lines), seeded.
* **Synthetic** (the embedded default): lines of cursive "words" written with a tiny stroke font of eleven
  lowercase letters (``a c e h i l n o r t u``), each letter a handful of control points joined by a
  Catmull-Rom spline. Every line draws its own slant, size, width, baseline tilt, spacing and a jitter of
  every control point, and the pen samples the curve at a jittered, roughly constant arc length with a
  little noise on every point. Dots on ``i`` and bars on ``t`` are separate short strokes added after their
  word, as people write them. Every line keeps its text (letters, a space between words), which Graves's
  synthesis network reads through its character window. Deterministic by seed; nothing is read from disk.
* **Stand-in** (``"standin"``): the synthetic generator with longer lines (3-5 words of 3-5 letters, about
  700 points and 19 characters, near IAM-OnDB's line), for measuring a paper-size update without the real set.

Text is one-hot over :data:`ALPHABET` (:func:`one_hot_text`): 57 symbols, the size Graves (2013, §5.2) and the
LN paper (§6.5) give for IAM-OnDB's character vectors; they do not list them, so ours are the space, a-z, A-Z,
``. , '`` and one symbol for every other character.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .download import DataUnavailable, RealDataSet, cache_dir

__all__ = [
    "IAM_ONDB",
    "ALPHABET",
    "encode_text",
    "one_hot_text",
    "read_transcriptions",
    "StrokeDataset",
    "parse_strokes_xml",
    "strokes_to_offsets",
    "offsets_to_strokes",
    "find_iam_ondb",
    "load_iam_ondb",
    "synthetic_line",
    "synthetic_lines",
    "synthetic_lines_with_text",
    "load_synthetic_handwriting",
    "load_handwriting",
    "GLYPHS",
]


@dataclass
class StrokeDataset:
    """Lines of handwriting as ``(T_i, 3)`` float32 arrays of ``(dx, dy, pen_up)``, scaled offsets, and the text
    of each line (``train_text[i]`` is written by ``train[i]``; ``None`` where the source has no text)."""

    train: list
    test: list
    name: str  # "iam-ondb", "synthetic" or "standin"
    scale: float  # raw units per unit of the stored offsets
    description: str
    train_text: list | None = None
    test_text: list | None = None

    @property
    def lengths(self) -> tuple:
        """Mean number of points per line, train and test."""
        return float(np.mean([len(s) for s in self.train])), float(np.mean([len(s) for s in self.test]))


IAM_ONDB = RealDataSet(
    name="iam-ondb",
    what="IAM-OnDB online handwriting (12,179 lines by 221 writers: pen strokes as XML, and their text)",
    source="Liwicki & Bunke 2005; https://fki.tic.heia-fr.ch/databases/iam-on-line-handwriting-database",
    get=("the manual step (the set needs a free registration, so lnedu cannot download it): register on that "
         "page, download lineStrokes-all.tar.gz and ascii-all.tar.gz, and unpack both into $LNEDU_DATA/iam-ondb"),
    files="lineStrokes/**/*.xml and ascii/**/*.txt",
)

# the 57 symbols of the one-hot text (Graves 2013 §5.2: "57"); index 0 stands for every character not listed
ALPHABET = "\0 abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.,'"
_INDEX = {ch: i for i, ch in enumerate(ALPHABET) if i}


def encode_text(text: str) -> np.ndarray:
    """The indices of ``text``'s characters in :data:`ALPHABET` (0 for a character it does not list)."""
    if not isinstance(text, str):
        raise TypeError(f"text: expected a string, got {type(text).__name__}")
    return np.array([_INDEX.get(ch, 0) for ch in text], dtype=np.int64)


def one_hot_text(texts, dtype=np.float32) -> np.ndarray:
    """``(B, U, 57)`` one-hot characters of ``texts`` (B strings), zero vectors after a text's end (``U`` is the
    longest text's length, at least 1): Graves's ``c_1 .. c_U`` for each sequence of a batch."""
    codes = [encode_text(t) for t in texts]
    out = np.zeros((len(codes), max([1] + [len(c) for c in codes]), len(ALPHABET)), dtype=dtype)
    for b, c in enumerate(codes):
        out[b, np.arange(len(c)), c] = 1
    return out


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
    :func:`lnedu.data.cache_dir`). Raises :data:`IAM_ONDB`'s refusal (a :class:`DataUnavailable`) saying where
    it looked and how to get the set."""
    folder = Path(path) if path not in (None, "") else cache_dir() / "iam-ondb"
    root = folder / "lineStrokes" if (folder / "lineStrokes").is_dir() else folder
    files = sorted(root.rglob("*.xml")) if root.is_dir() else []
    if not files:
        raise IAM_ONDB.missing(looked_in=[folder])
    return files


def _csr_lines(path: Path) -> list:
    """The transcribed lines of one IAM-OnDB text file: the non-empty lines after its ``CSR:`` marker."""
    text = path.read_text(encoding="latin-1")
    if "CSR:" not in text:
        raise ValueError(f"path: expected an IAM-OnDB transcription with a 'CSR:' section, but {path.name} has none")
    return [ln.strip() for ln in text.split("CSR:", 1)[1].splitlines() if ln.strip()]


def read_transcriptions(path) -> dict:
    """The text of every line of IAM-OnDB: ``{stroke file stem: text}``, e.g. ``{"a01-000u-01": "A MOVE to stop
    Mr. Gaitskell from"}``, from ``PATH/ascii/**/*.txt`` (or ``PATH/**/*.txt`` when ``PATH`` is the ``ascii``
    folder). Line ``i`` (from 1) of the ``CSR:`` section of ``a01-000u.txt`` is the text of ``a01-000u-0i.xml``.
    An empty dict when there is no ``ascii`` folder."""
    folder = Path(path)
    root = folder / "ascii" if (folder / "ascii").is_dir() else folder
    if not root.is_dir() or root.name != "ascii":
        return {}
    return {f"{f.stem}-{i:02d}": line for f in sorted(root.rglob("*.txt")) for i, line in
            enumerate(_csr_lines(f), start=1)}


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
                  min_points: int = 2, need_text: bool = False) -> StrokeDataset:
    """IAM-OnDB's lines from a local copy (see :func:`find_iam_ondb`), split by form, scaled, with their text
    (:func:`read_transcriptions`) where the ``ascii`` folder is there.

    ``max_lines`` keeps the first lines of a seeded shuffle (for quick runs); lines with fewer than
    ``min_points`` points are dropped. ``need_text`` (the synthesis network): refuse without the ``ascii``
    folder, and drop the lines it has no text for (the description counts them).
    """
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction: expected a number in (0, 1), got {test_fraction!r}")
    files = find_iam_ondb(path)
    folder = Path(path) if path not in (None, "") else cache_dir() / "iam-ondb"
    texts = read_transcriptions(folder.parent if folder.name == "lineStrokes" else folder)  # PATH/ascii, beside
    if need_text and not texts:
        raise IAM_ONDB.missing(looked_in=[folder / "ascii"])
    if need_text:
        files = [f for f in files if f.stem in texts]
        if not files:
            raise IAM_ONDB.missing(looked_in=[folder])
    order = np.random.default_rng(seed).permutation(len(files))
    if max_lines is not None:
        order = order[: int(max_lines)]
    files = [files[i] for i in order]
    forms = sorted({f.parent.name for f in files})
    perm = np.random.default_rng([seed, 1]).permutation(len(forms))
    n_test = max(1, int(round(test_fraction * len(forms)))) if len(forms) > 1 else 0
    test_forms = {forms[i] for i in perm[:n_test]}
    split = {"train": ([], []), "test": ([], [])}
    for f in files:
        seq = parse_strokes_xml(f)
        if len(seq) >= min_points:
            lines, text = split["test" if f.parent.name in test_forms else "train"]
            lines.append(seq)
            text.append(texts.get(f.stem))
    (train, train_text), (test, test_text) = split["train"], split["test"]
    if not train or not test:
        raise DataUnavailable(f"IAM-OnDB: found {len(train)} train and {len(test)} test lines; need both")
    train, test, scale = _normalize(train, test)
    with_text = sum(t is not None for t in train_text + test_text)
    return StrokeDataset(train, test, "iam-ondb", scale,
                         f"IAM-OnDB (Liwicki & Bunke 2005), {len(train)} train / {len(test)} test lines, split by "
                         f"form, {with_text} with their text", train_text if with_text else None,
                         test_text if with_text else None)


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
    return _synthetic_line(rng, words, letters, units)[0]


def _synthetic_line(rng, words, letters, units):
    """:func:`synthetic_line`'s offsets and the line's text (its words joined by spaces)."""
    alphabet = sorted(GLYPHS)
    slant = rng.uniform(0.1, 0.45)  # x += slant * y
    size = units * rng.uniform(0.8, 1.25)
    stretch = rng.uniform(0.85, 1.2)  # letter width relative to height
    tilt = rng.normal(0, 0.02)  # baseline drift, rise per unit of x
    step = rng.uniform(0.07, 0.11)  # pen sampling distance, in x-heights
    strokes, cursor, text = [], 0.0, []
    for _ in range(rng.integers(words[0], words[1] + 1)):
        word = rng.choice(alphabet, size=rng.integers(letters[0], letters[1] + 1))
        text.append("".join(word))
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
    return strokes_to_offsets(strokes), " ".join(text)


def synthetic_lines_with_text(n: int, seed: int = 0, *, words: tuple = (2, 4), letters: tuple = (1, 5),
                              units: float = 30.0) -> tuple:
    """``(lines, texts)``: ``n`` synthetic lines (raw offsets) and the text each one writes, the same for the
    same seed; line ``i`` depends only on ``(seed, i)``."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n: expected a positive integer, got {n!r}")
    pairs = [_synthetic_line(np.random.default_rng([int(seed), i, 0x57]), words, letters, units)
             for i in range(int(n))]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def synthetic_lines(n: int, seed: int = 0, **kwargs) -> list:
    """``n`` synthetic lines (raw offsets), the same for the same seed; line ``i`` depends only on ``(seed, i)``."""
    return synthetic_lines_with_text(n, seed, **kwargs)[0]


def load_synthetic_handwriting(n_train: int = 400, n_test: int = 80, seed: int = 0, *,
                               standin: bool = False) -> StrokeDataset:
    """The embedded default: ``n_train`` + ``n_test`` synthetic lines (disjoint draws) with their text, scaled
    like the real set. ``standin``: longer lines, near IAM-OnDB's length (for measuring a paper-size update)."""
    shape = {"words": (3, 5), "letters": (3, 5)} if standin else {}
    lines, texts = synthetic_lines_with_text(int(n_train) + int(n_test), seed, **shape)
    train, test, scale = _normalize(lines[: int(n_train)], lines[int(n_train):])
    what = ("IAM-OnDB-length stand-in lines from lnedu's stroke font (generated, not IAM-OnDB)" if standin else
            "synthetic cursive from lnedu's stroke font (embedded default)")
    return StrokeDataset(train, test, "standin" if standin else "synthetic", scale,
                         f"{what}, {len(train)} train / {len(test)} test lines",
                         texts[: int(n_train)], texts[int(n_train):])


def load_handwriting(source: str = "auto", path=None, *, seed: int = 0, n_train: int = 400, n_test: int = 80,
                     max_lines: int | None = None, need_text: bool = False) -> StrokeDataset:
    """IAM-OnDB when a local copy is found (or ``source='iam'``), else the synthetic lines.

    ``source``: ``'auto'`` (real if on disk, else synthetic), ``'iam'`` (real, or :data:`IAM_ONDB`'s refusal),
    ``'synthetic'``, ``'standin'`` (synthetic lines of IAM-OnDB's length). ``path``: the IAM-OnDB folder (``None``
    or ``""``: ``$LNEDU_DATA/iam-ondb``); a folder given and holding no IAM-OnDB is refused even with ``'auto'``
    (whoever names a folder means that data), and the generated sources take none. ``n_train``/``n_test`` size
    the synthetic set; ``max_lines`` limits the real one; ``need_text``: the lines' text is required (see
    :func:`load_iam_ondb`).
    """
    if source not in ("auto", "iam", "synthetic", "standin"):
        raise ValueError(f"source: expected 'auto', 'iam', 'synthetic' or 'standin', got {source!r}")
    if path not in (None, "") and source in ("synthetic", "standin"):
        raise ValueError(f"path: expected no path with source={source!r} (it reads no file; 'iam' or 'auto' read "
                         f"IAM-OnDB from a folder), got {str(path)!r}")
    if source in ("auto", "iam"):
        try:
            return load_iam_ondb(path, seed=seed, max_lines=max_lines, need_text=need_text)
        except DataUnavailable:
            if source == "iam" or path not in (None, ""):  # a folder named is that data, never the synthetic lines
                raise
    return load_synthetic_handwriting(n_train, n_test, seed, standin=source == "standin")
