"""MNIST, and its embedded stand-in: scikit-learn's bundled 8x8 digits.

:func:`load_digits_dataset` chooses, in this order: the IDX files in ``path`` if given (and only those: a
folder named explicitly is never replaced by anything else); the cached real MNIST if present (or
downloadable, when downloading was asked for, see :mod:`lnedu.data.download`); otherwise scikit-learn's 1,797
bundled 8x8 digits (Alpaydin & Kaynak, UCI), which ship with the package and need no network. The returned
:class:`Dataset` says which one it is, so a notebook can print it. Asked for MNIST explicitly
(``source="mnist"``, what a ``paper`` preset does), a missing copy is refused with :data:`MNIST_SET`'s one-line
message, never replaced by the 8x8 digits.

:func:`load_mnist_standin` generates random images of MNIST's shapes and split sizes (for timing a paper-size
update where the real set is absent, ``python -m lnedu run ... --plan``); :func:`write_idx` writes the IDX
format that :func:`read_idx` reads (for small test files in the real format).
"""

from __future__ import annotations

import gzip
import math
import zlib
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np

from .download import DataCorrupt, DataUnavailable, RealDataSet, cache_dir, damaged, download_allowed, fetch

__all__ = ["Dataset", "read_idx", "write_idx", "write_mnist", "load_mnist", "load_mnist_standin", "load_digits",
           "load_digits_dataset", "last_training_images", "binarize", "MNIST_FILES", "MNIST_SET"]

# file -> md5 of the gzipped IDX files as published (LeCun, Cortes & Burges)
MNIST_FILES = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
MNIST_MIRROR = "https://ossci-datasets.s3.amazonaws.com/mnist/"
# the shape of each file's array: the cached copy must be the whole set (its uncompressed files have no
# published checksum, so their header and size are what is checked)
MNIST_SHAPES = {
    "train-images-idx3-ubyte.gz": (60000, 28, 28),
    "train-labels-idx1-ubyte.gz": (60000,),
    "t10k-images-idx3-ubyte.gz": (10000, 28, 28),
    "t10k-labels-idx1-ubyte.gz": (10000,),
}
REFETCH_MNIST = "`python -m lnedu data fetch mnist`"
MNIST_SET = RealDataSet(
    name="mnist",
    what="MNIST handwritten digits (60,000 + 10,000 28x28 images, IDX files)",
    source="LeCun, Cortes & Burges; https://yann.lecun.com/exdb/mnist/",
    get=REFETCH_MNIST,
    files="train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte, "
          "each gzipped (.gz) or not",
)

_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


@dataclass
class Dataset:
    """Images as float rows in [0, 1], integer labels, and where they came from."""

    x_train: np.ndarray  # (N, H*W) float32
    y_train: np.ndarray  # (N,) int64
    x_test: np.ndarray
    y_test: np.ndarray
    name: str  # "mnist" or "digits"
    image_shape: tuple
    description: str

    @property
    def num_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_test.max())) + 1


def read_idx(path) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzipped or not: magic, dimensions, big-endian data.

    A file that cannot be read whole (a truncated ``.gz``, say) or is not IDX raises :class:`DataCorrupt`
    naming it."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (EOFError, OSError, zlib.error) as exc:  # EOFError: a .gz cut short; BadGzipFile is an OSError
        raise damaged(path, f"cannot be read whole ({type(exc).__name__}: {exc})") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise damaged(path, f"expected an IDX file (magic 0x0000TTNN), got {raw[:4].hex() or 'an empty file'}")
    dtype, ndim = raw[2], raw[3]
    if dtype not in _IDX_TYPES:
        raise damaged(path, f"unknown IDX data type 0x{dtype:02x}")
    if len(raw) < 4 + 4 * ndim:
        raise damaged(path, f"declares {ndim} dimensions but ends inside its header ({len(raw)} bytes)")
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    itemsize = np.dtype(_IDX_TYPES[dtype]).itemsize
    body = len(raw) - 4 - 4 * ndim
    if body != math.prod(dims) * itemsize:
        raise damaged(path, f"declares shape {dims} but holds {body // itemsize} values")
    return np.frombuffer(raw, dtype=_IDX_TYPES[dtype], offset=4 + 4 * ndim).reshape(dims)


def write_idx(path, array) -> Path:
    """Write ``array`` as an IDX file (gzipped when ``path`` ends in ``.gz``): the inverse of :func:`read_idx`.
    The data type is kept (uint8, int8, big-endian int16/int32/float32/float64)."""
    array = np.asarray(array)
    codes = {np.dtype(v).newbyteorder(">") if np.dtype(v).itemsize > 1 else np.dtype(v): k
             for k, v in _IDX_TYPES.items()}
    big = array.dtype.newbyteorder(">") if array.dtype.itemsize > 1 else array.dtype
    if big not in codes:
        raise ValueError(f"array: expected one of IDX's types (uint8, int8, int16, int32, float32, float64), "
                         f"got {array.dtype}")
    header = bytes([0, 0, codes[big], array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path = Path(path)
    with (gzip.open if path.suffix == ".gz" else open)(path, "wb") as f:
        f.write(header + array.astype(big).tobytes())
    return path


def write_mnist(folder, x_train, y_train, x_test, y_test, *, compress: bool = True) -> Path:
    """Write images (N, 28, 28) uint8 and labels (N,) uint8 as MNIST's four IDX files in ``folder`` (gzipped or
    not), named as :func:`load_mnist` reads them: a small data set in the real format, for tests and examples."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = dict(zip(MNIST_FILES, (x_train, y_train, x_test, y_test)))
    for name, array in arrays.items():
        write_idx(folder / (name if compress else name[:-3]), np.asarray(array, dtype=np.uint8))
    return folder


def _find(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / name[:-3]):
        if candidate.exists():
            return candidate
    return None


def _check_split(images, labels, img_file, lbl_file, n=None):
    """Images (N, 28, 28) uint8 and as many labels in 0..9 (exactly ``n`` of each when given)."""
    if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
        raise damaged(img_file, f"expected (N, 28, 28) uint8 images, got {images.dtype} of shape {images.shape}")
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise damaged(lbl_file, f"expected (N,) uint8 labels, got {labels.dtype} of shape {labels.shape}")
    if n is not None and len(images) != n:
        raise damaged(img_file, f"expected MNIST's {n} images, got {len(images)}", refetch=REFETCH_MNIST)
    if n is not None and len(labels) != n:
        raise damaged(lbl_file, f"expected MNIST's {n} labels, got {len(labels)}", refetch=REFETCH_MNIST)
    if len(images) != len(labels):
        raise damaged(lbl_file, f"expected one label per image of {img_file.name} ({len(images)}), got {len(labels)}")
    if len(labels) == 0:
        raise damaged(img_file, "expected at least one image, got none")
    if int(labels.max()) > 9:
        raise damaged(lbl_file, f"expected digit labels 0..9, got values up to {int(labels.max())}")


def load_mnist(path=None, *, download: bool | None = None) -> Dataset:
    """The real MNIST (60,000 / 10,000 28x28 digits) from ``path``, the cache, or a download if allowed.

    Every call re-checks what it reads. In the cache, a ``.gz`` must have its published MD5 and an
    uncompressed file MNIST's exact shape; anything else is refused (:class:`DataCorrupt`, one line naming the
    file and how to download it again), never read half-way. From ``path``, any number of images is allowed,
    but each split needs one label in 0..9 per 28x28 image.
    """
    folder = Path(path) if path not in (None, "") else cache_dir() / "mnist"
    files = {}
    for name, md5 in MNIST_FILES.items():
        local = _find(folder, name)
        if local is None and path not in (None, ""):
            raise DataUnavailable(f"{MNIST_SET.missing([folder])}; missing: {name}")
        if path in (None, "") and (local is None or local.suffix == ".gz"):  # cached .gz: re-verified each load
            try:
                local = fetch(MNIST_MIRROR + name, folder / name, md5, download=download, refetch=REFETCH_MNIST)
            except DataCorrupt:
                raise
            except DataUnavailable as exc:  # not cached, and no download asked for (or the download failed)
                failed = f" ({exc})" if download_allowed(download) else ""
                raise DataUnavailable(f"{MNIST_SET.missing([folder])}; missing: {name}{failed}") from exc
        files[name] = local
    arrays = {name: read_idx(f) for name, f in files.items()}
    for split in ("train", "t10k"):
        img, lbl = f"{split}-images-idx3-ubyte.gz", f"{split}-labels-idx1-ubyte.gz"
        _check_split(arrays[img], arrays[lbl], files[img], files[lbl],
                     None if path not in (None, "") else MNIST_SHAPES[img][0])
    xtr = arrays["train-images-idx3-ubyte.gz"].reshape(-1, 784).astype(np.float32) / 255
    ytr = arrays["train-labels-idx1-ubyte.gz"].astype(np.int64)
    xte = arrays["t10k-images-idx3-ubyte.gz"].reshape(-1, 784).astype(np.float32) / 255
    yte = arrays["t10k-labels-idx1-ubyte.gz"].astype(np.int64)
    return Dataset(xtr, ytr, xte, yte, "mnist", (28, 28), f"MNIST (LeCun et al.), {len(ytr)} train / {len(yte)} test")


DIGITS_FILE = ("datasets", "data", "digits.csv.gz")  # where scikit-learn keeps its bundled digits
DIGITS_SHAPE = (1797, 65)  # 64 pixels (0 .. 16) and the label, one image a row


def digits_file() -> Path | None:
    """Where the installed scikit-learn keeps its digits table (found without importing scikit-learn), or
    ``None`` where scikit-learn is not installed."""
    import importlib.util

    spec = importlib.util.find_spec("sklearn")
    folders = list(spec.submodule_search_locations or ()) if spec is not None else []
    return Path(folders[0]).joinpath(*DIGITS_FILE) if folders else None


@lru_cache(maxsize=1)
def bundled_digits() -> tuple:
    """``(pixels (1797, 64) float64 in 0 .. 16, labels (1797,) int64)``: scikit-learn's bundled 8x8 digits, read
    from the file scikit-learn ships (``sklearn/datasets/data/digits.csv.gz``) the way its ``load_digits`` reads
    it (``np.loadtxt`` of the gzipped CSV), so the numbers are its numbers; without importing scikit-learn, which
    (with SciPy) costs about a second in every process that loads the digits: each notebook kernel, each
    training worker, each command-line run. Where the file is not at that place (another scikit-learn layout),
    scikit-learn's own loader reads it. Cached: read once per process."""
    path = digits_file()
    if path is None or not path.is_file():
        from sklearn.datasets import load_digits as _sk_digits

        d = _sk_digits()
        pixels, labels = d.data, d.target.astype(np.int64)
    else:
        try:
            with gzip.open(path, "rt", encoding="utf-8") as f:
                table = np.loadtxt(f, delimiter=",")
        except (OSError, EOFError, ValueError, zlib.error) as exc:
            raise damaged(path, f"not scikit-learn's digits table ({type(exc).__name__}: {exc})",
                          todo="reinstall scikit-learn") from None
        if table.shape != DIGITS_SHAPE:
            raise damaged(path, f"expected a table of shape {DIGITS_SHAPE}, got {table.shape}",
                          todo="reinstall scikit-learn")
        pixels, labels = table[:, :-1], table[:, -1].astype(np.int64)
    pixels.flags.writeable = labels.flags.writeable = False  # one copy, shared by every caller in the process
    return pixels, labels


def load_digits(test_fraction: float = 0.25, seed: int = 0) -> Dataset:
    """scikit-learn's bundled 8x8 digits (:func:`bundled_digits`), scaled to [0, 1], split reproducibly into train
    and test."""
    pixels, labels = bundled_digits()
    x = (pixels / 16.0).astype(np.float32)
    y = labels.copy()
    order = np.random.default_rng(seed).permutation(len(y))
    n_test = int(round(test_fraction * len(y)))
    te, tr = order[:n_test], order[n_test:]
    return Dataset(x[tr], y[tr], x[te], y[te], "digits", (8, 8),
                   f"scikit-learn's bundled 8x8 digits (embedded default), {len(tr)} train / {len(te)} test")


@lru_cache(maxsize=1)
def load_mnist_standin(n_train: int = 60000, n_test: int = 10000, seed: int = 0) -> Dataset:
    """Random 28x28 images in [0, 1] with labels 0..9, MNIST's shapes and split sizes: what ``--plan`` times a
    paper-size update on when the real MNIST is absent (the cost of an update depends on the shapes, not on
    the values). Nothing here can be learned. Cached: every variant of a plan shares one copy (~220 MB)."""
    rng = np.random.default_rng(seed)
    x = rng.random((n_train + n_test, 784), dtype=np.float32)
    y = rng.integers(0, 10, n_train + n_test).astype(np.int64)
    y[:10] = np.arange(10)  # every class present, as in MNIST
    return Dataset(x[:n_train], y[:n_train], x[n_train:], y[n_train:], "standin", (28, 28),
                   f"random 28x28 images of MNIST's shapes (a stand-in for timing only), {n_train} train / "
                   f"{n_test} test")


def load_digits_dataset(source: str = "auto", path=None, *, download: bool | None = None) -> Dataset:
    """MNIST when it is available (or ``source='mnist'``), else the embedded 8x8 digits (but a damaged MNIST
    file is an error, :class:`DataCorrupt`, not a reason to fall back).

    ``source``: ``'auto'`` (real if on disk or allowed to download, else embedded), ``'mnist'`` (real or the
    refusal :data:`MNIST_SET` words), ``'digits'`` (embedded), ``'standin'`` (:func:`load_mnist_standin`).
    ``path``: a folder holding MNIST's four IDX files (gzipped or not); given, it is read and nothing else, for
    ``'auto'`` too (a folder named explicitly that lacks a file is an error, not a reason to fall back).
    """
    if source not in ("auto", "mnist", "digits", "standin"):
        raise ValueError(f"source: expected 'auto', 'mnist', 'digits' or 'standin', got {source!r}")
    if source in ("digits", "standin") and path not in (None, ""):
        raise ValueError(f"path: expected no path with source={source!r} (it reads no file; 'mnist' or 'auto' read "
                         f"MNIST's IDX files from a folder), got {str(path)!r}")
    if source == "digits":
        return load_digits()
    if source == "standin":
        return load_mnist_standin()
    try:
        return load_mnist(path, download=download)
    except DataCorrupt:  # a damaged copy is refused, not quietly replaced by the 8x8 digits
        raise
    except DataUnavailable:
        if source == "mnist" or path not in (None, ""):
            raise
        return load_digits()


def last_training_images(data: Dataset, n: int) -> Dataset:
    """``data`` with its training set cut to its last ``n`` images (all of them when it has no more than ``n``;
    ``n = 0``: all). On MNIST, ``n = 55000`` leaves out the first 5,000 training images, the validation split
    of TensorFlow's MNIST tutorial reader (``input_data.py``, ``VALIDATION_SIZE = 5000``): the 55,000 training
    images the LN paper trains on (§6.6)."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"train_images: expected a number of training images >= 0 (0: all), got {n!r}")
    if n == 0 or n >= len(data.y_train):
        return data
    return replace(data, x_train=data.x_train[-n:], y_train=data.y_train[-n:],
                   description=f"{data.description}; trained on the last {n} training images")


def binarize(x: np.ndarray, *, threshold: float | None = 0.5, rng=None) -> np.ndarray:
    """Binary images: a fixed threshold, or (``threshold=None``) a sample with P(1) = intensity."""
    if threshold is not None:
        return (x > threshold).astype(np.float32)
    rng = np.random.default_rng(rng)
    return (rng.random(x.shape) < x).astype(np.float32)
