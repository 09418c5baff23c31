"""Data loaders: the IDX format, checked downloads into a cache, and the embedded default."""

from __future__ import annotations

import gzip
import hashlib

import numpy as np
import pytest

from lnedu.data import DataUnavailable, fetch, load_digits, load_digits_dataset, load_mnist, read_idx
from lnedu.data.mnist import MNIST_FILES


def _write_idx(path, array, dtype_code=0x08, compress=True):
    header = bytes([0, 0, dtype_code, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    raw = header + array.astype(">u1" if dtype_code == 0x08 else array.dtype).tobytes()
    (gzip.open if compress else open)(path, "wb").write(raw)


def test_read_idx_roundtrip_gz_and_plain(tmp_path):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, size=(5, 28, 28)).astype(np.uint8)
    _write_idx(tmp_path / "a.gz", imgs)
    _write_idx(tmp_path / "b", imgs, compress=False)
    np.testing.assert_array_equal(read_idx(tmp_path / "a.gz"), imgs)
    np.testing.assert_array_equal(read_idx(tmp_path / "b"), imgs)


def test_read_idx_rejects_other_files(tmp_path):
    (tmp_path / "x").write_bytes(b"PK\x03\x04junk")
    with pytest.raises(ValueError, match="expected an IDX file"):
        read_idx(tmp_path / "x")
    _write_idx(tmp_path / "short", np.zeros((3, 2), np.uint8), compress=False)
    (tmp_path / "short").write_bytes((tmp_path / "short").read_bytes()[:-1])
    with pytest.raises(ValueError, match="declares shape"):
        read_idx(tmp_path / "short")


def test_load_mnist_from_a_local_folder_of_idx_files(tmp_path):
    rng = np.random.default_rng(1)
    for split, n in (("train", 12), ("t10k", 4)):
        _write_idx(tmp_path / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)).astype(np.uint8))
        _write_idx(tmp_path / f"{split}-labels-idx1-ubyte.gz", rng.integers(0, 10, n).astype(np.uint8))
    d = load_mnist(tmp_path)
    assert d.name == "mnist" and d.x_train.shape == (12, 784) and d.x_test.shape == (4, 784)
    assert d.x_train.dtype == np.float32 and 0 <= d.x_train.min() and d.x_train.max() <= 1
    assert d.y_train.dtype == np.int64


def test_load_mnist_from_a_folder_missing_files_is_a_clear_error(tmp_path):
    with pytest.raises(DataUnavailable, match="missing train-images"):
        load_mnist(tmp_path)


def test_fetch_downloads_checks_and_caches(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"layer norm" * 100)
    md5 = hashlib.md5(src.read_bytes()).hexdigest()
    dest = tmp_path / "cache" / "file.bin"
    with pytest.raises(DataUnavailable, match="downloading was not requested"):
        fetch(src.as_uri(), dest, md5, download=False)
    assert fetch(src.as_uri(), dest, md5, download=True, progress=False) == dest
    assert dest.read_bytes() == src.read_bytes()
    src.unlink()  # a cached file with the right checksum needs no source
    assert fetch("file:///nowhere", dest, md5, download=False) == dest


def test_fetch_rejects_a_bad_checksum_and_leaves_nothing(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"abc")
    dest = tmp_path / "cache" / "file.bin"
    with pytest.raises(DataUnavailable, match="checksum mismatch"):
        fetch(src.as_uri(), dest, "0" * 32, download=True, progress=False)
    assert not dest.exists() and list(dest.parent.iterdir()) == []


def test_digits_default_is_reproducible_and_auto_falls_back(tmp_path, monkeypatch):
    monkeypatch.setenv("LNEDU_DATA", str(tmp_path))  # an empty cache
    monkeypatch.delenv("LNEDU_DOWNLOAD", raising=False)
    a, b = load_digits(), load_digits()
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert a.x_train.shape[1] == 64 and len(a.y_train) + len(a.y_test) == 1797
    d = load_digits_dataset("auto")
    assert d.name == "digits" and "embedded" in d.description
    with pytest.raises(DataUnavailable):
        load_digits_dataset("mnist")
    with pytest.raises(ValueError, match="source: expected"):
        load_digits_dataset("cifar")


def test_mnist_checksums_are_well_formed():
    assert len(MNIST_FILES) == 4
    assert all(len(v) == 32 and int(v, 16) >= 0 for v in MNIST_FILES.values())
