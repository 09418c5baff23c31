"""Data loaders: the IDX format, checked downloads into a cache, and the embedded default."""

from __future__ import annotations

import gzip
import hashlib

import numpy as np
import pytest

from lnedu.data import DataCorrupt, DataUnavailable, fetch, load_digits, load_digits_dataset, load_mnist, read_idx
from lnedu.data.mnist import MNIST_FILES, last_training_images, load_mnist_standin, write_idx


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
    with pytest.raises(DataUnavailable, match="missing: train-images") as e:
        load_mnist(tmp_path)
    msg = str(e.value)  # MNIST_SET's refusal: the set, where it was looked for, where it comes from, how to get it
    assert msg.startswith("mnist: MNIST handwritten digits") and str(tmp_path) in msg and "\n" not in msg
    assert "python -m lnedu data fetch mnist" in msg and "--data PATH" in msg and "yann.lecun.com" in msg


def test_an_explicit_folder_is_never_replaced_by_the_embedded_digits(tmp_path, monkeypatch):
    """Issue 18: with a folder given, `auto` reads it or fails; before, a missing file fell back to the digits."""
    monkeypatch.setenv("LNEDU_DATA", str(tmp_path / "cache"))
    monkeypatch.delenv("LNEDU_DOWNLOAD", raising=False)
    _mnist_folder(tmp_path / "m", n_train=12, n_test=4, compress=False)
    assert load_digits_dataset("auto", tmp_path / "m").name == "mnist"
    (tmp_path / "m" / "t10k-images-idx3-ubyte").unlink()
    with pytest.raises(DataUnavailable, match="missing: t10k-images-idx3-ubyte.gz"):
        load_digits_dataset("auto", tmp_path / "m")
    with pytest.raises(DataUnavailable, match=r"^mnist: .* not found in .*cache[/\\]mnist;"):
        load_digits_dataset("mnist")  # asked for by name: refused, with the cache folder it looked in
    assert load_digits_dataset("auto").name == "digits"  # nothing asked for, nothing cached: the embedded default
    with pytest.raises(ValueError, match="path: expected no path with source='digits'"):
        load_digits_dataset("digits", tmp_path / "m")  # before: the folder was silently ignored


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_write_idx_is_read_back_and_writes_the_format_byte_for_byte(tmp_path, dtype):
    rng = np.random.default_rng(3)
    a = (rng.normal(size=(3, 5, 2)) * 50).astype(dtype) if dtype not in (np.uint8,) else \
        rng.integers(0, 256, (3, 5, 2)).astype(dtype)
    write_idx(tmp_path / "a.gz", a)
    write_idx(tmp_path / "a", a)
    np.testing.assert_array_equal(read_idx(tmp_path / "a.gz"), a)
    np.testing.assert_array_equal(read_idx(tmp_path / "a"), a)
    if dtype == np.uint8:  # the same bytes as the independent writer above (magic 0x00000803, dims, data)
        _write_idx(tmp_path / "b", a, compress=False)
        assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes()
    with pytest.raises(ValueError, match="array: expected one of IDX's types"):
        write_idx(tmp_path / "c", a.astype(np.int64))


def test_mnist_standin_has_mnists_shapes_and_the_training_set_can_be_cut_to_its_last_images():
    d = load_digits_dataset("standin")
    assert d.name == "standin" and d.x_train.shape == (60000, 784) and d.x_test.shape == (10000, 784)
    assert d.image_shape == (28, 28) and d.num_classes == 10 and "stand-in" in d.description
    assert 0 <= d.x_train.min() and d.x_train.max() <= 1 and d.x_train.std() > 0.2
    assert load_mnist_standin() is d  # one cached copy for every variant of a plan
    cut = last_training_images(d, 55000)
    assert cut.x_train.shape == (55000, 784) and np.shares_memory(cut.x_train, d.x_train)
    np.testing.assert_array_equal(cut.y_train, d.y_train[5000:])  # the first 5,000 are left out
    assert "last 55000" in cut.description and cut.x_test is d.x_test
    assert last_training_images(d, 0) is d and last_training_images(d, 70000) is d
    with pytest.raises(ValueError, match="train_images: expected a number of training images >= 0"):
        last_training_images(d, -1)


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


def test_bundled_digits_are_scikit_learns_read_without_importing_it(tmp_path, monkeypatch):
    import subprocess
    import sys

    from sklearn.datasets import load_digits as sk_digits

    from lnedu.data import mnist

    pixels, labels = mnist.bundled_digits()
    sk = sk_digits()
    assert np.array_equal(pixels, sk.data) and pixels.dtype == sk.data.dtype == np.float64
    assert np.array_equal(labels, sk.target) and labels.dtype == np.int64
    assert not pixels.flags.writeable and not labels.flags.writeable  # one cached copy: no caller can change it
    # in a fresh process: both embedded defaults built on the digits, and scikit-learn (and SciPy) never imported
    code = ("import sys; from lnedu.data import load_digits; from lnedu.data.captions import load_digit_captions; "
            "load_digits(); load_digit_captions(); print(sorted(m for m in ('sklearn', 'scipy') if m in sys.modules))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stdout.strip() == "[]", run.stdout + run.stderr
    # where the file is not where it is expected, scikit-learn's own loader reads the digits: the same numbers
    monkeypatch.setattr(mnist, "digits_file", lambda: tmp_path / "absent.csv.gz")
    mnist.bundled_digits.cache_clear()
    try:
        again = mnist.bundled_digits()
        assert np.array_equal(again[0], pixels) and np.array_equal(again[1], labels)
    finally:
        mnist.bundled_digits.cache_clear()


# mtime=0: gzip stamps the time otherwise, and the bytes (so the test ids) must be the same in every xdist worker
@pytest.mark.parametrize("content", [b"not gzip at all", gzip.compress(b"1,2,3\n4,5,6\n", mtime=0),
                                     gzip.compress(b"1,x\n", mtime=0)],
                         ids=["not gzip", "wrong width", "not a number"])
def test_a_damaged_digits_table_is_refused_in_one_line_naming_it(tmp_path, monkeypatch, content):
    from lnedu.data import mnist

    bad = tmp_path / "digits.csv.gz"
    bad.write_bytes(content)
    monkeypatch.setattr(mnist, "digits_file", lambda: bad)
    mnist.bundled_digits.cache_clear()
    try:
        with pytest.raises(DataCorrupt) as err:
            load_digits()
        msg = str(err.value)
        assert str(bad) in msg and "\n" not in msg and "reinstall scikit-learn" in msg
    finally:
        mnist.bundled_digits.cache_clear()


def test_mnist_checksums_are_well_formed():
    assert len(MNIST_FILES) == 4
    assert all(len(v) == 32 and int(v, 16) >= 0 for v in MNIST_FILES.values())


# --------------------------------------------------------------------------------------------------
# issue 20 item 12: cached and local files are re-checked; a damaged one is refused in one line naming it


def _mnist_folder(folder, n_train=12, n_test=4, n_train_labels=None, compress=True, seed=1):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for split, n, n_lbl in (("train", n_train, n_train_labels or n_train), ("t10k", n_test, n_test)):
        suffix = ".gz" if compress else ""
        _write_idx(folder / f"train-images-idx3-ubyte{suffix}".replace("train", split),
                   rng.integers(0, 256, (n, 28, 28)).astype(np.uint8), compress=compress)
        _write_idx(folder / f"train-labels-idx1-ubyte{suffix}".replace("train", split),
                   rng.integers(0, 10, n_lbl).astype(np.uint8), compress=compress)
    return folder


def test_load_mnist_refuses_more_images_than_labels(tmp_path):
    _mnist_folder(tmp_path, n_train=20, n_train_labels=7)
    # before: 20 images and 7 labels were returned as a data set
    with pytest.raises(DataCorrupt, match=r"train-labels-idx1-ubyte.gz: expected one label per image .*\(20\), got 7"):
        load_mnist(tmp_path)


def test_load_mnist_refuses_labels_out_of_range_and_wrong_image_size(tmp_path):
    _mnist_folder(tmp_path)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.array([1, 2, 10, 3], np.uint8))
    with pytest.raises(DataCorrupt, match=r"t10k-labels-idx1-ubyte.gz: expected digit labels 0..9, got .* 10"):
        load_mnist(tmp_path)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.array([1, 2, 9, 3], np.uint8))
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.zeros((4, 8, 8), np.uint8))
    with pytest.raises(DataCorrupt, match=r"t10k-images-idx3-ubyte.gz: expected \(N, 28, 28\) uint8 images"):
        load_mnist(tmp_path)


def test_a_truncated_gz_is_refused_naming_the_file(tmp_path):
    _mnist_folder(tmp_path)
    f = tmp_path / "train-images-idx3-ubyte.gz"
    f.write_bytes(f.read_bytes()[: len(f.read_bytes()) // 2])
    # before: EOFError from gzip, naming no file
    with pytest.raises(DataCorrupt, match=r"train-images-idx3-ubyte.gz: cannot be read whole \(EOFError") as e:
        load_mnist(tmp_path)
    assert "\n" not in str(e.value) and str(f) in str(e.value)
    with pytest.raises(DataCorrupt, match=r"ends inside its header"):
        (tmp_path / "h").write_bytes(bytes([0, 0, 8, 3, 0, 0]))
        read_idx(tmp_path / "h")


def _broken_cache(monkeypatch, tmp_path, how):
    monkeypatch.setenv("LNEDU_DATA", str(tmp_path))
    monkeypatch.delenv("LNEDU_DOWNLOAD", raising=False)
    cache = tmp_path / "mnist"
    if how == "truncated-gz":
        _mnist_folder(cache)  # not MNIST's checksum either; then cut short, as an interrupted copy would be
        f = cache / "train-images-idx3-ubyte.gz"
        f.write_bytes(f.read_bytes()[:100])
        return f, "checksum mismatch"
    _mnist_folder(cache, n_train=200, n_test=10, compress=False)  # uncompressed, but a 200-image file
    return cache / "train-images-idx3-ubyte", "expected MNIST's 60000 images, got 200"


@pytest.mark.parametrize("how", ["truncated-gz", "200-images"])
def test_a_damaged_cache_is_refused_by_load_run_and_data_fetch(how, monkeypatch, tmp_path, capsys):
    from lnedu.__main__ import main

    bad, why = _broken_cache(monkeypatch, tmp_path, how)
    with pytest.raises(DataCorrupt, match=why) as e:
        load_mnist()
    msg = str(e.value)
    assert msg.startswith(str(bad) + ":") and "\n" not in msg and "python -m lnedu data fetch mnist" in msg
    # `auto` does not quietly fall back to the 8x8 digits on a damaged copy (what `run` calls)
    with pytest.raises(DataCorrupt, match=why):
        load_digits_dataset("auto")
    # before: `data fetch mnist` crashed with EOFError, or reported the 200-image file as "cached"
    assert main(["data", "fetch", "mnist"]) == 2
    out, err = capsys.readouterr()
    assert "cached" not in out and len(err.strip().splitlines()) == 1 and str(bad) in err and why in err


# --------------------------------------------------------------------------------------------------
# issue 20 item 13: a question file cannot make the CNN loader allocate without bound


def _question(path, answer="@entity1", extra=""):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"http://x/{path.stem}\n\n@entity1 met @entity2 . {extra}\n\n@placeholder met @entity2\n\n"
                    f"{answer}\n\n@entity1:A\n@entity2:B\n", encoding="utf-8")
    return path


def test_cnn_questions_refuse_huge_entity_ids(tmp_path):
    from lnedu.data.cloze import MAX_ENTITY_ID, load_cnn_questions, read_question

    _question(tmp_path / "training" / "a.question")
    bad = _question(tmp_path / "validation" / "b.question", extra="@entity99999999999 said so")
    # before: the vocabulary was built with 10^11 entity rows (memory exhaustion)
    with pytest.raises(DataCorrupt, match=rf"b.question: expected entity ids up to @entity{MAX_ENTITY_ID}, "
                                          r"got @entity99999999999$"):
        load_cnn_questions(tmp_path)
    _question(bad, extra=f"@entity{MAX_ENTITY_ID} said so")  # the largest allowed id still loads
    c = load_cnn_questions(tmp_path)
    assert c.vocab.n_entities == MAX_ENTITY_ID + 1
    with pytest.raises(DataCorrupt, match=r"path: expected an @entity answer .* got answer '@entityX'"):
        read_question(_question(tmp_path / "c.question", answer="@entityX"))
    (tmp_path / "d.question").write_bytes(b"http://x\n\n\xff\xfe\n\nq\n\na\n")
    with pytest.raises(DataCorrupt, match=r"d.question: expected utf-8 text, got byte 0xff at offset 10"):
        read_question(tmp_path / "d.question")


# issue 20 item 14: every loader error names the file


def test_caption_features_refuse_a_damaged_npy_or_text_naming_it(tmp_path):
    from lnedu.data.captions import load_caption_features

    rng = np.random.default_rng(0)
    for split, n in (("train", 4), ("dev", 2), ("test", 3)):
        np.save(tmp_path / f"toy_{split}_ims.npy", rng.normal(size=(n, 6)))
        (tmp_path / f"toy_{split}_caps.txt").write_text("".join(f"thing {i}.\n" for i in range(2 * n)))
    good = (tmp_path / "toy_dev_ims.npy").read_bytes()
    (tmp_path / "toy_dev_ims.npy").write_bytes(good[: len(good) - 20])
    # before: NumPy's own message, naming no file
    with pytest.raises(DataCorrupt, match=r"toy_dev_ims.npy: expected a .npy array of image features"):
        load_caption_features(tmp_path)
    np.save(tmp_path / "toy_dev_ims.npy", np.array([{"a": 1}, {"b": 2}], dtype=object), allow_pickle=True)
    with pytest.raises(DataCorrupt, match=r"toy_dev_ims.npy: expected a .npy array") as e:
        load_caption_features(tmp_path)  # a pickle is never loaded, nor is unsafe loading suggested
    assert "allow_pickle" not in str(e.value)
    (tmp_path / "toy_dev_ims.npy").write_bytes(good)
    (tmp_path / "toy_test_caps.txt").write_bytes(b"ok\n\xff\n")
    with pytest.raises(DataCorrupt, match=r"toy_test_caps.txt: expected utf-8 text, got byte 0xff at offset 3"):
        load_caption_features(tmp_path)
