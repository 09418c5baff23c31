"""The fixed binarized MNIST of Larochelle & Murray (2011), and a stand-in with its shapes.

DRAW's numbers (Gregor et al. 2015, Table 2), the LN paper's (§6.4, Figure 4) and Recurrent NormProp's
(§5.2, Table 3) are test bounds on *one* published binarization of MNIST: each pixel drawn once as a
Bernoulli sample of its intensity, by Larochelle & Murray (2011), and distributed as three text files::

    binarized_mnist_train.amat   50,000 rows
    binarized_mnist_valid.amat   10,000 rows
    binarized_mnist_test.amat    10,000 rows

Each row is one 28x28 image, 784 values ``0`` or ``1`` separated by spaces, row by row. A bound on another
binarization (another Bernoulli sample, or a threshold) is a bound on a different data set, so the papers'
numbers are comparable only with these files.

:func:`load_binarized_mnist` reads them from a folder (``path``) or the cache (``$LNEDU_DATA/binarized_mnist``,
downloaded there when asked, see :mod:`lnedu.data.download`). Every file is checked: each row must hold 784
values, each 0 or 1; a file of its published size must also have its published SHA-256. A damaged file is
refused in one line naming it (:class:`~lnedu.data.DataCorrupt`); missing files raise the refusal of
:data:`BINARIZED_MNIST_SET` (:class:`~lnedu.data.DataUnavailable`), never a fallback to other data.

:func:`standin_binarized_mnist` generates images of the same shapes and split sizes (the embedded 8x8
digits, enlarged to 28x28 and binarized) for measuring the cost of a paper-size update without the files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .download import RealDataSet, cache_dir, damaged, download_allowed, fetch, file_hash

__all__ = ["BinaryImages", "BINARIZED_MNIST_SET", "BINARIZED_MNIST_FILES", "BINARIZED_MNIST_URL", "read_amat",
           "write_amat", "load_binarized_mnist", "standin_binarized_mnist"]

# The address the files are published at (Larochelle's site; the IWAE code of Burda et al. and TensorFlow
# Datasets' `binarized_mnist` read them from there).
BINARIZED_MNIST_URL = "http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/"
# file -> (rows, bytes, SHA-256) as recorded by TensorFlow Datasets (tensorflow/datasets,
# tensorflow_datasets/url_checksums/binarized_mnist.txt); 1,568 bytes a row: 784 digits, 783 spaces, a newline
BINARIZED_MNIST_FILES = {
    "binarized_mnist_train.amat": (50000, 78400000,
                                   "ad693b29f94c14277b095f5238ddefbbdaaae0939789dd2f4f0205278cee3e4d"),
    "binarized_mnist_valid.amat": (10000, 15680000,
                                   "1de3d397c40fe8eeb33dafd4099a1f665ec01e96d9be234aaeeac8a34930e2e2"),
    "binarized_mnist_test.amat": (10000, 15680000,
                                  "e6687bfea3f820c174f33b7865140b2a2dd2930ef786f35d45795fc193b5ab2c"),
}
PIXELS = 784  # 28 x 28

BINARIZED_MNIST_SET = RealDataSet(
    name="binarized_mnist",
    what="the fixed binarized MNIST of Larochelle & Murray (2011) (50,000 / 10,000 / 10,000 28x28 binary images, "
         ".amat text files)",
    source=f"Larochelle & Murray (2011, AISTATS); {BINARIZED_MNIST_URL}",
    get="`python -m lnedu data fetch binarized_mnist` (the three files into the cache, SHA-256 checked) or by "
        "hand from that address",
    files=", ".join(BINARIZED_MNIST_FILES),
)
_REFETCH = f"`python -m lnedu data fetch binarized_mnist`, or by hand from {BINARIZED_MNIST_URL}"


@dataclass
class BinaryImages:
    """Binary images (rows of pixels, float32 0.0/1.0) in three splits, and where they came from. No labels:
    the binarized MNIST files have none."""

    x_train: np.ndarray  # (N, H*W)
    x_valid: np.ndarray
    x_test: np.ndarray
    name: str  # "binarized_mnist" or "standin"
    image_shape: tuple
    description: str


def read_amat(path) -> np.ndarray:
    """The rows of an ``.amat`` file of binary images: a (rows, 784) uint8 array of 0/1.

    The file must hold lines of 784 values, each ``0`` or ``1``, separated by white space (blank lines only at
    the end). Anything else (another character, a value such as ``10``, a row of another length, an empty file)
    is refused with :class:`~lnedu.data.DataCorrupt`, one line naming the file and the first bad row.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise damaged(path, f"cannot be read ({type(exc).__name__}: {exc})") from exc
    b = np.frombuffer(raw, dtype=np.uint8)
    row = 2 * PIXELS  # the published layout: "v v ... v\n", 1,568 bytes a row; checked without a general parse
    if len(b) and len(b) % row == 0:
        v = b.reshape(-1, row)
        if ((v[:, 0::2] == ord("0")) | (v[:, 0::2] == ord("1"))).all() and (v[:, 1:-1:2] == ord(" ")).all() \
                and (v[:, -1] == ord("\n")).all():
            return v[:, 0::2] - ord("0")
    digit = (b == ord("0")) | (b == ord("1"))
    space = (b == ord(" ")) | (b == ord("\t")) | (b == ord("\r")) | (b == ord("\n"))
    line_of = lambda i: raw.count(b"\n", 0, int(i)) + 1  # noqa: E731 (1-based line of byte i)
    bad = np.flatnonzero(~(digit | space))
    if bad.size:
        i = int(bad[0])
        raise damaged(path, f"expected values 0 or 1 separated by spaces, got byte {raw[i:i + 1]!r} on line "
                            f"{line_of(i)}")
    joined = np.flatnonzero(digit[1:] & digit[:-1])
    if joined.size:
        i = int(joined[0])
        raise damaged(path, f"expected values 0 or 1, got {raw[i:i + 2].decode()}... on line {line_of(i)}")
    newlines = np.flatnonzero(b == ord("\n"))
    starts = np.concatenate([[0], newlines + 1])
    ends = np.concatenate([newlines, [len(b)]])
    counts = np.concatenate([[0], np.cumsum(digit, dtype=np.int32)])
    per_line = counts[ends] - counts[starts]
    last = np.flatnonzero(per_line)
    if not last.size:
        raise damaged(path, "expected rows of 784 values 0/1, got no values")
    per_line = per_line[: last[-1] + 1]  # blank lines at the end are allowed
    wrong = np.flatnonzero(per_line != PIXELS)
    if wrong.size:
        k = int(wrong[0])
        raise damaged(path, f"expected {PIXELS} values on every line, got {int(per_line[k])} on line {k + 1}")
    return (b[digit] - ord("0")).reshape(len(per_line), PIXELS)


def write_amat(path, images) -> Path:
    """Write binary images (rows of 784 values 0/1, or (N, 28, 28)) in the ``.amat`` layout of the published
    files: one row a line, values separated by single spaces. Returns the path."""
    x = np.asarray(images)
    x = x.reshape(len(x), -1)
    if x.shape[1] != PIXELS or not np.isin(x, (0, 1)).all():
        raise ValueError(f"images: expected rows of {PIXELS} values 0 or 1, got shape {x.shape} with values "
                         f"{np.unique(x)[:5].tolist()}")
    text = "\n".join(" ".join("1" if v else "0" for v in row) for row in x) + "\n"
    path = Path(path)
    path.write_text(text, encoding="ascii")
    return path


def _check_published(path: Path, name: str) -> None:
    """A file of its published size must be the published file (SHA-256); other sizes are read and checked."""
    _, size, sha = BINARIZED_MNIST_FILES[name]
    if path.stat().st_size == size:
        got = file_hash(path, "sha256")
        if got != sha:
            raise damaged(path, f"has the published size but not the published SHA-256 (expected {sha}, got {got})",
                          refetch=_REFETCH)


def load_binarized_mnist(path=None, *, download: bool | None = None) -> BinaryImages:
    """Larochelle & Murray's binarized MNIST from the folder ``path``, or from the cache
    (``$LNEDU_DATA/binarized_mnist``), downloading it there if allowed (``download=True`` or
    ``LNEDU_DOWNLOAD=1``).

    From the cache, each file must be the published one (its SHA-256, hence 50,000 / 10,000 / 10,000 rows).
    From ``path``, any number of rows is read (a file of the published size must still have the published
    SHA-256), and the description says when the sizes are not the published ones. Missing files raise
    :data:`BINARIZED_MNIST_SET`'s refusal naming the folder; damaged ones :class:`~lnedu.data.DataCorrupt`.
    """
    folder = Path(path) if path not in (None, "") else cache_dir() / "binarized_mnist"
    if path not in (None, "") and not folder.is_dir():
        raise BINARIZED_MNIST_SET.missing(looked_in=[folder])
    files = {}
    for name, (_, _, sha) in BINARIZED_MNIST_FILES.items():
        local = folder / name
        if not local.exists() and (path not in (None, "") or not download_allowed(download)):
            raise BINARIZED_MNIST_SET.missing(looked_in=[folder])
        if path in (None, ""):  # the cache: the published file, re-checked on every load (or downloaded)
            local = fetch(BINARIZED_MNIST_URL + name, local, sha, algorithm="sha256", download=download,
                          refetch=_REFETCH)
        else:
            _check_published(local, name)
        files[name] = local
    x = {name: read_amat(f).astype(np.float32) for name, f in files.items()}
    xtr, xva, xte = (x[n] for n in BINARIZED_MNIST_FILES)
    sizes = f"{len(xtr):,} train / {len(xva):,} valid / {len(xte):,} test"
    published = tuple(r for r, _, _ in BINARIZED_MNIST_FILES.values())
    note = "" if (len(xtr), len(xva), len(xte)) == published else " (not the published 50,000 / 10,000 / 10,000)"
    return BinaryImages(xtr, xva, xte, "binarized_mnist", (28, 28),
                        f"binarized MNIST (Larochelle & Murray 2011) from {folder}, {sizes}{note}")


def standin_binarized_mnist(n_train: int = 50000, n_valid: int = 10000, n_test: int = 10000,
                            seed: int = 0) -> BinaryImages:
    """Generated binary 28x28 images in binarized MNIST's split sizes, for timing a paper-size run without the
    files: scikit-learn's embedded 8x8 digits, enlarged to 20x20 (bilinear), placed at a random offset in a
    28x28 frame and binarized with one Bernoulli draw per pixel. Not MNIST: its bounds mean nothing."""
    from .mnist import load_digits

    for name, n in (("n_train", n_train), ("n_valid", n_valid), ("n_test", n_test)):
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"{name}: expected a positive number of images, got {n!r}")
    d = load_digits()
    small = np.concatenate([d.x_train, d.x_test]).reshape(-1, 8, 8)
    grid = np.linspace(0, 7, 20)  # bilinear: 8x8 -> 20x20
    i0 = np.minimum(grid.astype(int), 6)
    w = (grid - i0)[None, :]
    rows = small[:, i0, :] * (1 - w[..., None]) + small[:, i0 + 1, :] * w[..., None]
    big = rows[:, :, i0] * (1 - w[:, None, :]) + rows[:, :, i0 + 1] * w[:, None, :]  # (n, 20, 20)
    rng = np.random.default_rng([int(seed), 0x5D1])

    def split(n):
        pick = rng.integers(0, len(big), n)
        dy, dx = rng.integers(0, 9, n), rng.integers(0, 9, n)
        out = np.zeros((n, 28, 28), dtype=np.float32)
        for k in range(9):  # place each image at its offset, one row offset at a time
            for j in range(9):
                sel = np.flatnonzero((dy == k) & (dx == j))
                out[sel, k:k + 20, j:j + 20] = big[pick[sel]]
        return (rng.random(out.shape, dtype=np.float32) < out).astype(np.float32).reshape(n, PIXELS)

    return BinaryImages(split(n_train), split(n_valid), split(n_test), "standin", (28, 28),
                        f"a generated stand-in with binarized MNIST's shapes (enlarged 8x8 digits, not MNIST), "
                        f"{n_train:,} train / {n_valid:,} valid / {n_test:,} test")
