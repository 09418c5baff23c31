"""MNIST, and its embedded stand-in: scikit-learn's bundled 8x8 digits.

:func:`load_digits_dataset` chooses, in this order: the IDX files in ``path`` if given; the cached real
MNIST if present (or downloadable, when downloading was asked for, see :mod:`lnedu.data.download`);
otherwise scikit-learn's 1,797 bundled 8x8 digits (Alpaydin & Kaynak, UCI), which ship with the package and
need no network. The returned :class:`Dataset` says which one it is, so a notebook can print it.
"""

from __future__ import annotations

import gzip
import math
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .download import DataCorrupt, DataUnavailable, cache_dir, damaged, fetch

__all__ = ["Dataset", "read_idx", "load_mnist", "load_digits", "load_digits_dataset", "binarize", "MNIST_FILES"]

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
    folder = Path(path) if path is not None else cache_dir() / "mnist"
    files = {}
    for name, md5 in MNIST_FILES.items():
        local = _find(folder, name)
        if local is None and path is not None:
            raise DataUnavailable(f"path: expected MNIST's IDX files in {folder}, missing {name}")
        if path is None and (local is None or local.suffix == ".gz"):  # cached .gz: re-verified on every load
            local = fetch(MNIST_MIRROR + name, folder / name, md5, download=download, refetch=REFETCH_MNIST)
        files[name] = local
    arrays = {name: read_idx(f) for name, f in files.items()}
    for split in ("train", "t10k"):
        img, lbl = f"{split}-images-idx3-ubyte.gz", f"{split}-labels-idx1-ubyte.gz"
        _check_split(arrays[img], arrays[lbl], files[img], files[lbl],
                     None if path is not None else MNIST_SHAPES[img][0])
    xtr = arrays["train-images-idx3-ubyte.gz"].reshape(-1, 784).astype(np.float32) / 255
    ytr = arrays["train-labels-idx1-ubyte.gz"].astype(np.int64)
    xte = arrays["t10k-images-idx3-ubyte.gz"].reshape(-1, 784).astype(np.float32) / 255
    yte = arrays["t10k-labels-idx1-ubyte.gz"].astype(np.int64)
    return Dataset(xtr, ytr, xte, yte, "mnist", (28, 28), f"MNIST (LeCun et al.), {len(ytr)} train / {len(yte)} test")


def load_digits(test_fraction: float = 0.25, seed: int = 0) -> Dataset:
    """scikit-learn's bundled 8x8 digits, scaled to [0, 1], split reproducibly into train and test."""
    from sklearn.datasets import load_digits as _sk_digits

    d = _sk_digits()
    x = (d.data / 16.0).astype(np.float32)
    y = d.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(y))
    n_test = int(round(test_fraction * len(y)))
    te, tr = order[:n_test], order[n_test:]
    return Dataset(x[tr], y[tr], x[te], y[te], "digits", (8, 8),
                   f"scikit-learn's bundled 8x8 digits (embedded default), {len(tr)} train / {len(te)} test")


def load_digits_dataset(source: str = "auto", path=None, *, download: bool | None = None) -> Dataset:
    """MNIST when it is available (or ``source='mnist'``), else the embedded 8x8 digits (but a damaged MNIST
    file is an error, :class:`DataCorrupt`, not a reason to fall back).

    ``source``: ``'auto'`` (real if on disk or allowed to download, else embedded), ``'mnist'`` (real or an
    error), ``'digits'`` (embedded).
    """
    if source not in ("auto", "mnist", "digits"):
        raise ValueError(f"source: expected 'auto', 'mnist' or 'digits', got {source!r}")
    if source == "digits":
        return load_digits()
    try:
        return load_mnist(path, download=download)
    except DataCorrupt:  # a damaged copy is refused, not quietly replaced by the 8x8 digits
        raise
    except DataUnavailable:
        if source == "mnist":
            raise
        return load_digits()


def binarize(x: np.ndarray, *, threshold: float | None = 0.5, rng=None) -> np.ndarray:
    """Binary images: a fixed threshold, or (``threshold=None``) a sample with P(1) = intensity."""
    if threshold is not None:
        return (x > threshold).astype(np.float32)
    rng = np.random.default_rng(rng)
    return (rng.random(x.shape) < x).astype(np.float32)
