"""Text data: the PTB-character and text8 loaders on small files written here, the embedded default, the
generated stand-in, the refusal when a real corpus is asked for and missing, the character vocabulary, the
independent crops and the truncated-BPTT batches (deterministic by seed, contiguous across windows)."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from lnedu.data import DataCorrupt, DataUnavailable
from lnedu.data.text import (
    STANDIN_ALPHABET,
    BPTTStream,
    CharVocab,
    Crops,
    load_ptb_chars,
    load_pydoc_text,
    load_standin_text,
    load_text8,
    load_text_corpus,
    parse_ptb_chars,
    split_by_position,
    to_ascii,
)

WORDS = ["the", "bank", "note", "of", "a", "market", "fell", "n't", "<unk>", "N", "$", "rates"]


def _random_sentences(rng, n):
    return [[WORDS[i] for i in rng.integers(0, len(WORDS), rng.integers(1, 9))] for _ in range(n)]


def _ptb_char_line(words):
    """A sentence in Mikolov's character format: characters spaced out, ``_`` between words."""
    return " " + " _ ".join(" ".join(w) for w in words) + " "


def test_parse_ptb_chars_gives_back_the_sentences(rng):
    sentences = _random_sentences(rng, 7)
    raw = "\n".join(_ptb_char_line(s) for s in sentences) + "\n\n"
    assert parse_ptb_chars(raw) == "".join(" ".join(s) + "\n" for s in sentences)


def test_load_ptb_chars_from_a_folder_written_here(tmp_path, rng):
    expected = {}
    for split, n in (("train", 20), ("valid", 4), ("test", 5)):
        sentences = _random_sentences(rng, n)
        (tmp_path / f"ptb.char.{split}.txt").write_text("\n".join(_ptb_char_line(s) for s in sentences) + "\n")
        expected[split] = "".join(" ".join(s) + "\n" for s in sentences)
    c = load_ptb_chars(tmp_path)
    assert c.name == "ptb-char" and c.splits() == expected
    assert "Penn Treebank" in c.description
    assert load_text_corpus("ptb", "real", tmp_path).splits() == expected


def test_missing_ptb_files_name_what_is_missing(tmp_path):
    (tmp_path / "ptb.char.train.txt").write_text(" a _ b \n")
    with pytest.raises(DataUnavailable, match="missing ptb.char.valid.txt, ptb.char.test.txt"):
        load_ptb_chars(tmp_path)
    for source in ("real", "auto"):  # a folder named explicitly is what was meant, even in auto mode
        with pytest.raises(DataUnavailable, match=f"^ptb: .* not found in {tmp_path};"):
            load_text_corpus("ptb", source, tmp_path)


@pytest.mark.parametrize("form", ["file", "zip", "folder"])
def test_load_text8_from_a_file_a_zip_or_a_folder(tmp_path, rng, form):
    n = int(rng.integers(900, 1300))
    text = "".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz "), n))
    (tmp_path / "text8").write_text(text)
    if form == "zip":
        with zipfile.ZipFile(tmp_path / "text8.zip", "w") as z:
            z.write(tmp_path / "text8", "text8")
        (tmp_path / "text8").unlink()
    path = {"file": tmp_path / "text8", "zip": tmp_path / "text8.zip", "folder": tmp_path}[form]
    c = load_text8(path)
    assert c.name == "text8" and c.train + c.valid + c.test == text
    assert len(c.train) == round(0.9 * n) and len(c.train) + len(c.valid) == round(0.95 * n)


def test_text8_missing_without_download_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("LNEDU_DATA", str(tmp_path))
    monkeypatch.delenv("LNEDU_DOWNLOAD", raising=False)
    with pytest.raises(DataUnavailable, match="downloading was not requested"):
        load_text8()
    with pytest.raises(DataUnavailable, match="does not exist"):
        load_text8(tmp_path / "nowhere")
    (tmp_path / "text8").mkdir()
    (tmp_path / "text8" / "text8.zip").write_bytes(b"not the archive")
    with pytest.raises(DataUnavailable, match="checksum mismatch"):
        load_text8()


def test_split_by_position_keeps_order_and_sizes(rng):
    text = "".join(rng.choice(list("xyz\n "), 1001))
    a, b, c = split_by_position(text)
    assert a + b + c == text and (len(a), len(a) + len(b)) == (round(900.9), round(950.95))
    with pytest.raises(ValueError, match="fractions"):
        split_by_position(text, (0.5, 0.2, 0.2))


def test_to_ascii_maps_typography_and_drops_the_rest():
    assert to_ascii("\u201cIt\u2019s\u201d \u2013 caf\u00e9\u2026") == "\"It's\" - cafe..."
    out = to_ascii("\u201cIt\u2019s\u201d \u2013 caf\u00e9\u2026 \u00df\tX", lowercase=True)
    assert out == "\"it's\" - cafe...  x"
    assert all(c == "\n" or 32 <= ord(c) < 127 for c in out)


def test_embedded_corpus_is_printable_ascii_and_reproducible():
    a, b = load_pydoc_text(), load_pydoc_text()
    assert a.splits() == b.splits() and a.name == "pydoc" and "help topics" in a.description
    n = sum(len(s) for s in a.splits().values())
    assert n > 200_000 and abs(len(a.train) / n - 0.9) < 1e-3
    text = a.train + a.valid + a.test
    assert set(text) <= {chr(i) for i in range(32, 127)} | {"\n"}
    assert text == text.lower() and "assert" in a.train


def test_vocab_orders_by_frequency_and_maps_unseen_to_unk(rng):
    text = "".join(rng.choice(list("aaaabbbcc d"), 500))
    v = CharVocab.build(text)
    counts = [text.count(c) for c in v.chars]
    assert v.itos[0] == "<unk>" and counts == sorted(counts, reverse=True) and len(v) == len(set(text)) + 1
    ids = v.encode(text)
    assert ids.dtype == np.int64 and v.decode(ids) == text
    assert v.encode("a\u00e9q").tolist() == [v.stoi["a"], 0, 0]  # non-ASCII and unseen ASCII alike
    assert v.decode(v.encode("aq"), unk="?") == "a?"
    small = v.encode(text, np.uint8)
    assert small.dtype == np.uint8 and np.array_equal(small, ids)
    with pytest.raises(ValueError, match="dtype: expected an integer type"):
        v.encode(text, np.float32)
    with pytest.raises(ValueError, match="ids: expected integers in"):
        v.decode([len(v)])
    with pytest.raises(TypeError, match="text: expected a str"):
        v.encode(b"abc")


def test_bptt_windows_are_contiguous_streams_carrying_across_windows(rng):
    ids = rng.integers(0, 50, 2000)
    s = BPTTStream(ids, batch_size=4, seq_len=7, seed=3)
    for epoch in (0, 1):
        xs, ys = zip(*s.epoch(epoch))
        x, y = np.concatenate(xs), np.concatenate(ys)  # (windows*T, B): each column one stream
        assert x.shape == (s.windows_per_epoch * 7, 4)
        o, L = s.offset(epoch), s.stream_len
        for b in range(4):
            np.testing.assert_array_equal(x[:, b], ids[o + b * L: o + b * L + len(x)])
            np.testing.assert_array_equal(y[:, b], ids[o + b * L + 1: o + b * L + 1 + len(x)])
    assert s.stream_len == (2000 - 1 - 6) // 4 and s.windows_per_epoch == s.stream_len // 7


def test_bptt_batches_are_a_function_of_seed_epoch_and_index(rng):
    ids = rng.integers(0, 30, 3000)
    a, b = BPTTStream(ids, 5, 11, seed=1), BPTTStream(ids, 5, 11, seed=1)
    offsets = [a.offset(e) for e in range(12)]
    assert offsets == [b.offset(e) for e in range(12)] and len(set(offsets)) > 1
    assert all(0 <= o < 11 for o in offsets)
    for e, k in ((0, 0), (4, 3), (9, a.windows_per_epoch - 1)):
        np.testing.assert_array_equal(a.window(e, k)[0], b.window(e, k)[0])
    other = BPTTStream(ids, 5, 11, seed=2)
    assert [other.offset(e) for e in range(12)] != offsets


def test_eval_stream_covers_the_tail_with_a_shorter_window(rng):
    ids = rng.integers(0, 9, 103)
    s = BPTTStream(ids, 2, 10, shuffle_offset=False, drop_last=False)
    shapes = [x.shape for x, _ in s.epoch()]
    assert shapes[:-1] == [(10, 2)] * 5 and shapes[-1] == (1, 2) and s.tokens_per_epoch == 2 * 51
    targets = np.concatenate([y for _, y in s.epoch()])
    np.testing.assert_array_equal(targets.T.reshape(-1), ids[1:103])


def test_bptt_bad_arguments(rng):
    with pytest.raises(ValueError, match="ids: expected at least"):
        BPTTStream(rng.integers(0, 5, 20), 4, 7)
    with pytest.raises(ValueError, match="seq_len: expected a positive integer"):
        BPTTStream(rng.integers(0, 5, 200), 4, 0)
    with pytest.raises(TypeError, match="ids: expected a 1-d integer array"):
        BPTTStream(rng.random(200), 4, 7)
    with pytest.raises(ValueError, match="k: expected a window index"):
        BPTTStream(rng.integers(0, 5, 200), 4, 7).window(0, 99)


# issue 20 items 12 and 14: cached text is re-checked; a damaged file is refused in one line naming it


def test_a_short_unpacked_text8_in_the_cache_is_refused(tmp_path, monkeypatch):
    from lnedu.data import load_text_corpus

    monkeypatch.setenv("LNEDU_DATA", str(tmp_path))
    (tmp_path / "text8").mkdir()
    (tmp_path / "text8" / "text8").write_text("anarchism originated as a term " * 10, encoding="ascii")
    # before: any file named text8 in the cache was used as text8
    with pytest.raises(DataCorrupt, match=r"text8: expected text8's 100,000,000 characters, got 310; delete it") as e:
        load_text8()
    assert "python -m lnedu data fetch text8" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(DataCorrupt):  # and `auto` does not quietly fall back to the embedded text
        load_text_corpus("text8", "auto")


def test_a_truncated_or_non_ascii_text8_names_the_file(tmp_path):
    with zipfile.ZipFile(tmp_path / "text8.zip", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("text8", "some words " * 200)
    raw = (tmp_path / "text8.zip").read_bytes()
    (tmp_path / "cut.zip").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataCorrupt, match=r"cut.zip: cannot be read as a zip archive \(BadZipFile"):
        load_text8(tmp_path / "cut.zip")
    (tmp_path / "t").write_bytes("caf\u00e9 words".encode("utf-8"))
    with pytest.raises(DataCorrupt, match=r"t: expected ascii text, got byte 0xc3 at offset 3"):
        load_text8(tmp_path / "t")


def test_a_ptb_file_that_is_not_utf8_names_the_file(tmp_path):
    from lnedu.data.text import PTB_CHAR_FILES

    for f in PTB_CHAR_FILES.values():
        (tmp_path / f).write_text("a b c\n", encoding="utf-8")
    (tmp_path / PTB_CHAR_FILES["valid"]).write_bytes(b"a \xff b\n")
    with pytest.raises(DataCorrupt, match=r"ptb.char.valid.txt: expected utf-8 text, got byte 0xff at offset 2"):
        load_ptb_chars(tmp_path)


def test_random_crops_are_pieces_of_the_text_fixed_by_seed_epoch_and_index(rng):
    ids = rng.integers(0, 50, 997)
    crops = Crops(ids, batch_size=5, seq_len=13, seed=4)
    assert len(crops) == 996 // 65 and crops.tokens_per_epoch == len(crops) * 65
    x, y = crops.window(1, 2)
    assert x.shape == y.shape == (13, 5) and x.dtype == np.int64
    for b in range(5):  # each column is a crop of the text, its targets the characters one later
        start = int(np.flatnonzero([np.array_equal(ids[i:i + 13], x[:, b]) for i in range(997 - 13)])[0])
        np.testing.assert_array_equal(y[:, b], ids[start + 1:start + 14])
    again = Crops(ids, batch_size=5, seq_len=13, seed=4).window(1, 2)
    assert np.array_equal(again[0], x) and np.array_equal(again[1], y)
    assert not np.array_equal(crops.window(1, 3)[0], x) and not np.array_equal(crops.window(2, 2)[0], x)
    assert not np.array_equal(Crops(ids, 5, 13, seed=5).window(1, 2)[0], x)
    starts = np.concatenate([Crops(ids, 64, 13, seed=s).window(0, 0)[0][0] for s in range(30)])
    assert starts.size == 64 * 30  # every start leaves room for the last target: the last crop can end the text
    ends = Crops(np.arange(20), 200, 19, seed=1).window(0, 0)[1]
    assert set(ends[-1]) == {19}


def test_consecutive_crops_cover_the_text_and_a_sample_is_fixed(rng):
    ids = rng.integers(0, 30, 103)
    crops = Crops(ids, batch_size=4, seq_len=10, mode="consecutive")
    windows = list(crops.epoch(7))
    assert len(windows) == len(crops) == 3 and [w[0].shape for w in windows] == [(10, 4), (10, 3), (10, 3)]
    x = np.concatenate([w[0] for w in windows], axis=1)  # crop j is ids[10 j : 10 j + 10]
    np.testing.assert_array_equal(x.T.reshape(-1), ids[:100])
    np.testing.assert_array_equal(np.concatenate([w[1] for w in windows], axis=1).T.reshape(-1), ids[1:101])
    assert len(Crops(ids, 4, 10, mode="consecutive", count=5).starts) == 5
    a, b = Crops(ids, 3, 10, mode="sample", count=7, seed=2), Crops(ids, 3, 10, mode="sample", count=7, seed=2)
    assert np.array_equal(a.starts, b.starts) and len(a) == 3 and a.tokens_per_epoch == 70
    assert np.all(np.diff(a.starts) >= 0) and a.starts.max() <= 103 - 11


def test_crops_bad_arguments(rng):
    ids = rng.integers(0, 5, 30)
    with pytest.raises(ValueError, match="mode: expected one of"):
        Crops(ids, 2, 5, mode="streams")
    with pytest.raises(ValueError, match="count: expected a positive integer or None, got 0"):
        Crops(ids, 2, 5, mode="sample", count=0)
    with pytest.raises(ValueError, match="ids: expected at least 31 ids for seq_len=30, got 30"):
        Crops(ids, 2, 30)
    with pytest.raises(ValueError, match="seq_len: expected a positive integer"):
        Crops(ids, 2, 0)
    with pytest.raises(TypeError, match="ids: expected a 1-d integer array"):
        Crops(ids.astype(float), 2, 5)
    with pytest.raises(ValueError, match=r"k: expected a window index in \[0, 2\), got 2"):
        Crops(ids, 2, 5).window(0, 2)


@pytest.mark.parametrize("real", ["ptb", "text8"])
def test_standin_text_has_the_real_alphabet_size(real):
    c = load_text_corpus(real, "standin")
    assert c.name == f"standin-{real}" and "not for results" in c.description
    assert len(CharVocab.build(c.train)) == STANDIN_ALPHABET[real] + 1  # and <unk>
    assert set(c.valid) == set(c.train) and len(c.valid) == len(c.train) // 20
    assert load_standin_text(real).train == c.train  # the same text every time
    with pytest.raises(ValueError, match="real: expected one of"):
        load_standin_text("wikitext")


def test_an_explicit_real_corpus_that_is_missing_is_refused_with_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("LNEDU_DATA", str(tmp_path))
    monkeypatch.delenv("LNEDU_DOWNLOAD", raising=False)
    with pytest.raises(DataUnavailable) as err:
        load_text_corpus("ptb", "real")
    msg = str(err.value)
    assert msg.startswith("ptb: Penn Treebank characters") and str(tmp_path / "ptb") in msg
    assert "simple-examples.tgz" in msg and "--data PATH" in msg and "ptb.char.valid.txt" in msg
    assert len(msg.splitlines()) == 1
    with pytest.raises(DataUnavailable, match=r"^text8: text8.*python -m lnedu data fetch text8.*--data PATH"):
        load_text_corpus("text8", "real")
    with pytest.raises(DataUnavailable, match=f"not found in {tmp_path / 'elsewhere'}"):
        load_text_corpus("text8", "real", tmp_path / "elsewhere")
    assert load_text_corpus("text8", "auto").name == "pydoc"  # auto falls back, and says so
    assert "embedded default" in load_text_corpus("ptb", "auto").description
