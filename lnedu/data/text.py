"""Text for character-level language models: Penn Treebank characters, text8, and an embedded default.

Three corpora, each returned as a :class:`TextCorpus` (three strings and a line saying which data it is):

* **Penn Treebank characters** (Marcus et al. 1993, in Mikolov's preprocessing, the splits every
  character-level PTB result uses): the files ``ptb.char.train.txt``, ``ptb.char.valid.txt`` and
  ``ptb.char.test.txt`` of Mikolov's ``simple-examples.tgz``. In them every character is a token separated
  by spaces, ``_`` marks a word boundary and every line is a sentence; :func:`parse_ptb_chars` turns that
  back into plain text (``_`` becomes a space, a line end a newline). lnedu does not download them: we
  know of no published checksum for the archive, so put the three files in a folder and pass ``path``, or
  copy them to ``$LNEDU_DATA/ptb`` (``~/.cache/lnedu/ptb``).
* **text8** (Mahoney): the first 10^8 characters of an English Wikipedia dump reduced to ``a-z`` and
  single spaces. The standard split (Mikolov et al. 2012; Cooijmans et al. 2017) is the first 90M
  characters for training, the next 5M for validation and the last 5M for testing. ``path`` may name the
  ``text8`` file, ``text8.zip`` or a folder holding either; otherwise the cache, or a download of
  ``text8.zip`` when asked for (``download=True`` or ``LNEDU_DOWNLOAD=1``), checked against its SHA-1.
* **Python's documentation** (the embedded default, no network, no files): the standard library ships the
  help texts that ``help("topics")`` shows, as the dict ``pydoc_data.topics.topics``. Joined in sorted key
  order and reduced to printable ASCII, they make about 460,000 characters of English prose and code
  examples, split 90/5/5 by position. The text comes with the Python that runs it, so its exact length
  (and a model's bits per character on it) differs a little between Python versions.

A :class:`CharVocab` maps characters to integer ids (most frequent first, ``<unk>`` for characters the
training split never showed). Two ways to cut an id sequence into mini-batches: :class:`Crops`, independent
fixed-length pieces that each start from a zero state (the NormProp paper's "sequences of length 100 with
random starts", Cooijmans et al.'s procedure), and :class:`BPTTStream`, contiguous streams whose state a model
carries from one window to the next (truncated backpropagation through time).

The two real corpora are described by :data:`PTB_SET` and :data:`TEXT8_SET`
(:class:`~lnedu.data.download.RealDataSet`): asked for explicitly (``source="real"``) and not found, the loader
refuses in one line saying what the set is, where it comes from and how to get it. For measuring the cost of a
paper-size update without the real files, :func:`load_standin_text` generates a text with the real set's
alphabet size.
"""

from __future__ import annotations

import sys
import unicodedata
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .download import DataCorrupt, DataUnavailable, RealDataSet, cache_dir, damaged, fetch

__all__ = [
    "TextCorpus",
    "CharVocab",
    "BPTTStream",
    "Crops",
    "split_by_position",
    "to_ascii",
    "parse_ptb_chars",
    "load_ptb_chars",
    "load_text8",
    "load_pydoc_text",
    "load_standin_text",
    "load_text_corpus",
    "PTB_SET",
    "TEXT8_SET",
    "PTB_CHAR_FILES",
    "TEXT8_URL",
    "TEXT8_SHA1",
]

PTB_CHAR_FILES = {"train": "ptb.char.train.txt", "valid": "ptb.char.valid.txt", "test": "ptb.char.test.txt"}
TEXT8_URL = "http://mattmahoney.net/dc/text8.zip"
# the SHA-1 that GluonNLP's text8 loader checks the archive against; text8.zip is 31,344,016 bytes
TEXT8_SHA1 = "6c70299b93b7e1f927b42cd8f6ac1a31547c7a2e"
TEXT8_SPLIT = (90_000_000, 5_000_000, 5_000_000)
REFETCH_TEXT8 = "`python -m lnedu data fetch text8`"

PTB_SET = RealDataSet(
    name="ptb",
    what="Penn Treebank characters in Mikolov's splits (about 5.0M / 0.4M / 0.45M characters)",
    source="Marcus et al. 1993, as preprocessed by Mikolov in simple-examples.tgz (his RNNLM page, "
           "https://www.fit.vutbr.cz/~imikolov/rnnlm/)",
    get="a manual step: download simple-examples.tgz from that page and copy its data/ptb.char.*.txt files to "
        "$LNEDU_DATA/ptb (lnedu knows no published checksum, so it does not download them)",
    files="ptb.char.train.txt, ptb.char.valid.txt and ptb.char.test.txt",
)
TEXT8_SET = RealDataSet(
    name="text8",
    what="text8, the first 10^8 characters of an English Wikipedia dump reduced to a-z and spaces (90M / 5M / 5M)",
    source="Matt Mahoney, " + TEXT8_URL,
    get=REFETCH_TEXT8,
    files="text8 or text8.zip",
)
REAL_SETS = {"ptb": PTB_SET, "text8": TEXT8_SET}
# alphabet sizes of the stand-ins: text8's a-z and space; PTB's characters (letters, digits shown as 'N', a few
# marks, space and the line end) number about 50 in our parse
STANDIN_ALPHABET = {"ptb": 50, "text8": 27}


@dataclass
class TextCorpus:
    """A text split into training, validation and test parts, and where it came from."""

    train: str
    valid: str
    test: str
    name: str  # "ptb-char", "text8" or "pydoc"
    description: str

    def splits(self) -> dict:
        return {"train": self.train, "valid": self.valid, "test": self.test}

    def __repr__(self) -> str:
        sizes = ", ".join(f"{k} {len(v):,}" for k, v in self.splits().items())
        return f"TextCorpus({self.name!r}: {sizes} characters)"


# ---------------------------------------------------------------------------------------------------------
# vocabulary


class CharVocab:
    """Characters <-> integer ids: id 0 is ``<unk>``, then the characters by falling frequency.

    ``CharVocab.build(text)`` counts the characters of ``text`` (the training split: a model must not see
    the test set's alphabet); ties in frequency are broken by code point, so the same text always gives the
    same ids. ``encode`` maps a character the vocabulary lacks to ``<unk>`` (id 0), and ``decode`` writes
    ``<unk>`` back as ``unk`` (by default the string ``"<unk>"``).
    """

    UNK = "<unk>"

    def __init__(self, chars):
        chars = list(chars)
        if any(not isinstance(c, str) or len(c) != 1 for c in chars):
            raise ValueError(f"chars: expected single characters, got {[c for c in chars if len(str(c)) != 1][:5]}")
        if len(set(chars)) != len(chars):
            raise ValueError("chars: expected distinct characters, got repeats")
        self.itos = [self.UNK, *chars]
        self.stoi = {c: i for i, c in enumerate(self.itos) if i > 0}
        # ASCII text encodes through a 256-entry table, which is fast enough for text8's 10^8 characters
        self._table = np.zeros(256, dtype=np.int64)
        for c, i in self.stoi.items():
            if ord(c) < 256:
                self._table[ord(c)] = i

    @classmethod
    def build(cls, text: str, *, min_count: int = 1) -> CharVocab:
        """The vocabulary of ``text``: characters seen at least ``min_count`` times, most frequent first."""
        if not isinstance(text, str):
            raise TypeError(f"text: expected a str, got {type(text).__name__}")
        if text.isascii():  # text8's 9 * 10^7 characters: count bytes, not Python characters
            n = np.bincount(np.frombuffer(text.encode("ascii"), dtype=np.uint8), minlength=128)
            counts = {chr(i): int(k) for i, k in enumerate(n) if k}
        else:
            counts = Counter(text)
        chars = sorted((c for c, n in counts.items() if n >= min_count), key=lambda c: (-counts[c], ord(c)))
        return cls(chars)

    def __len__(self) -> int:
        return len(self.itos)

    @property
    def chars(self) -> list:
        """The known characters, in id order (without ``<unk>``)."""
        return self.itos[1:]

    def encode(self, text: str, dtype=np.int64) -> np.ndarray:
        """``text`` as an array of ids (``dtype``: int64, or a smaller integer type that holds ``len(self)``, to save
        memory on a long text); unknown characters become 0 (``<unk>``)."""
        if not isinstance(text, str):
            raise TypeError(f"text: expected a str, got {type(text).__name__}")
        dtype = np.dtype(dtype)
        if dtype.kind not in "iu" or np.iinfo(dtype).max < len(self) - 1:
            raise ValueError(f"dtype: expected an integer type that holds ids up to {len(self) - 1}, got {dtype}")
        if text.isascii():
            return self._table.astype(dtype)[np.frombuffer(text.encode("ascii"), dtype=np.uint8)]
        return np.fromiter((self.stoi.get(c, 0) for c in text), dtype=dtype, count=len(text))

    def decode(self, ids, *, unk: str = UNK) -> str:
        """The text of a sequence of ids; id 0 is written as ``unk``."""
        ids = np.asarray(ids).reshape(-1)
        if ids.size and (ids.dtype.kind not in "iu" or int(ids.min()) < 0 or int(ids.max()) >= len(self)):
            raise ValueError(f"ids: expected integers in [0, {len(self)}), got {ids.dtype} values "
                             f"in [{ids.min()}, {ids.max()}]")
        return "".join(unk if i == 0 else self.itos[i] for i in ids.tolist())

    def __repr__(self) -> str:
        return f"CharVocab({len(self)} ids: <unk> + {''.join(self.chars[:20])!r}{'...' if len(self) > 21 else ''})"


# ---------------------------------------------------------------------------------------------------------
# batching for truncated backprop through time


class BPTTStream:
    """Mini-batches for truncated backpropagation through time, cut from one long sequence of ids.

    The sequence is laid out as ``B`` contiguous streams side by side: stream ``b`` is the ``b``-th of ``B``
    consecutive pieces of length ``L``, so column ``b`` of every batch continues where it left off in the
    previous batch, and a recurrent layer can carry its state from one window to the next. Window ``k`` holds
    steps ``kT .. kT+T-1`` of every stream: inputs ``x`` of shape ``(T, B)`` (time-major, like the recurrent
    layers) and targets ``y`` the same characters shifted by one.

    With ``shuffle_offset=True`` each epoch starts the streams at an offset in ``[0, T)`` drawn from
    ``(seed, epoch)``, so window boundaries fall elsewhere every epoch while the batches of an epoch are a
    function of ``(seed, epoch, k)`` alone: a run resumed at any step sees exactly the batches it would have
    seen. Every epoch has the same ``windows_per_epoch`` full windows (the tail that does not fill one is
    left out); with ``drop_last=False`` (for evaluation) a last, shorter window covers the tail too.
    """

    def __init__(self, ids, batch_size: int, seq_len: int, *, seed: int = 0, shuffle_offset: bool = True,
                 drop_last: bool = True):
        ids = np.asarray(ids)
        if ids.ndim != 1 or ids.dtype.kind not in "iu":
            raise TypeError(f"ids: expected a 1-d integer array, got {ids.dtype} array of shape {ids.shape}")
        for name, v in (("batch_size", batch_size), ("seq_len", seq_len)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name}: expected a positive integer, got {v!r}")
        self.ids, self.B, self.T = ids, int(batch_size), int(seq_len)
        self.seed, self.shuffle_offset, self.drop_last = int(seed), bool(shuffle_offset), bool(drop_last)
        max_offset = self.T - 1 if self.shuffle_offset else 0
        # each stream needs L inputs and the one target after them
        self.stream_len = (len(ids) - 1 - max_offset) // self.B
        full, tail = divmod(self.stream_len, self.T)
        self.windows_per_epoch = full + (1 if tail and not self.drop_last else 0)
        if self.windows_per_epoch < 1:
            raise ValueError(
                f"ids: expected at least {self.B * self.T + 1 + max_offset} ids for batch_size={self.B} and "
                f"seq_len={self.T}, got {len(ids)}"
            )

    @property
    def tokens_per_epoch(self) -> int:
        """Targets predicted in one epoch (every window's ``T x B``, the last one possibly shorter)."""
        L = self.stream_len if not self.drop_last else (self.stream_len // self.T) * self.T
        return L * self.B

    def offset(self, epoch: int) -> int:
        """Where the streams of ``epoch`` start in the sequence."""
        if not self.shuffle_offset:
            return 0
        return int(np.random.default_rng([self.seed, int(epoch), 0x7E47]).integers(0, self.T))

    def window(self, epoch: int, k: int):
        """Window ``k`` of ``epoch``: ``(x, y)``, each an int64 array of shape ``(T, B)`` (host NumPy)."""
        if not 0 <= k < self.windows_per_epoch:
            raise ValueError(f"k: expected a window index in [0, {self.windows_per_epoch}), got {k}")
        o, L = self.offset(epoch), self.stream_len
        t0, t1 = k * self.T, min((k + 1) * self.T, L)
        starts = o + L * np.arange(self.B)  # where each stream begins
        cols = starts[None, :] + np.arange(t0, t1)[:, None]  # (T, B) positions of the inputs
        return self.ids[cols].astype(np.int64), self.ids[cols + 1].astype(np.int64)

    def epoch(self, epoch: int = 0):
        """Iterate over the windows of one epoch, in order (the state carries from each to the next)."""
        for k in range(self.windows_per_epoch):
            yield self.window(epoch, k)

    def __len__(self) -> int:
        return self.windows_per_epoch

    def __repr__(self) -> str:
        return (f"BPTTStream({len(self.ids):,} ids -> {self.B} streams of {self.stream_len:,}; "
                f"{self.windows_per_epoch} windows of {self.T} per epoch)")


class Crops:
    """Mini-batches of independent crops: pieces of ``T`` characters that each start from a zero state.

    The NormProp paper (Laurent et al., §5.1) trains "on sequences of length 100 with random starting points"
    (Cooijmans et al.'s procedure) and reports validation bits per character on length-100 sequences: no
    state passes from one crop to the next, unlike :class:`BPTTStream`. A window is ``(x, y)``, each ``(T, B)``
    time-major, ``y`` the characters after ``x``. Three ways to choose the crops:

    * ``mode="random"`` (training): window ``k`` of epoch ``e`` holds ``B`` crops whose starts are drawn
      uniformly from every position that leaves room for ``T + 1`` ids, by a generator seeded with
      ``(seed, e, k)``: the batches are a function of ``(seed, epoch, k)`` alone, so a resumed run sees the
      ones it would have seen. An epoch is ``(len(ids) - 1) // (B T)`` windows: as many predicted characters
      as the text has, seen in expectation once each.
    * ``mode="consecutive"`` (evaluation): the text cut into consecutive, non-overlapping crops at ``0, T,
      2T, ...`` (the tail shorter than ``T`` is left out); ``count`` keeps only the first ``count`` crops. They
      are shared out in order over ``ceil(n / B)`` windows of as equal sizes as can be (at most ``B``, so no
      window is left with a single crop when another has many: batch norm's train-mode figure needs two).
    * ``mode="sample"``: ``count`` crops at starts drawn once from ``seed`` and sorted, a fixed sample of a long
      text (for training-text bpc: spread over the whole split, not its first topic).
    """

    MODES = ("random", "consecutive", "sample")

    def __init__(self, ids, batch_size: int, seq_len: int, *, seed: int = 0, mode: str = "random",
                 count: int | None = None):
        ids = np.asarray(ids)
        if ids.ndim != 1 or ids.dtype.kind not in "iu":
            raise TypeError(f"ids: expected a 1-d integer array, got {ids.dtype} array of shape {ids.shape}")
        for name, v in (("batch_size", batch_size), ("seq_len", seq_len)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name}: expected a positive integer, got {v!r}")
        if mode not in self.MODES:
            raise ValueError(f"mode: expected one of {self.MODES}, got {mode!r}")
        if count is not None and (isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1):
            raise ValueError(f"count: expected a positive integer or None, got {count!r}")
        self.ids, self.B, self.T, self.seed, self.mode = ids, int(batch_size), int(seq_len), int(seed), mode
        self.positions = len(ids) - self.T  # starts 0 .. len - T - 1 leave room for T inputs and the last target
        if self.positions < 1:
            raise ValueError(f"ids: expected at least {self.T + 1} ids for seq_len={self.T}, got {len(ids)}")
        if mode == "random":
            self.starts = None
            self.windows_per_epoch = max(1, (len(ids) - 1) // (self.B * self.T))
        else:
            if mode == "consecutive":
                starts = np.arange((len(ids) - 1) // self.T) * self.T
                starts = starts[:count] if count else starts
            else:
                n = count or max(1, (len(ids) - 1) // self.T)
                starts = np.sort(np.random.default_rng([self.seed, 0x5A3E]).integers(0, self.positions, n))
            self.starts = starts
            self.windows_per_epoch = -(-len(starts) // self.B)
            self._groups = np.array_split(starts, self.windows_per_epoch)

    @property
    def tokens_per_epoch(self) -> int:
        """Targets predicted in one epoch."""
        n = self.windows_per_epoch * self.B if self.starts is None else len(self.starts)
        return n * self.T

    def window(self, epoch: int, k: int):
        """Window ``k`` of ``epoch``: ``(x, y)``, each an int64 array of shape ``(T, B)`` (host NumPy); the
        fixed modes ignore ``epoch``."""
        if not 0 <= k < self.windows_per_epoch:
            raise ValueError(f"k: expected a window index in [0, {self.windows_per_epoch}), got {k}")
        if self.starts is None:
            starts = np.random.default_rng([self.seed, int(epoch), int(k), 0xC409]).integers(0, self.positions, self.B)
        else:
            starts = self._groups[k]
        cols = starts[None, :] + np.arange(self.T)[:, None]  # (T, B) positions of the inputs
        return self.ids[cols].astype(np.int64), self.ids[cols + 1].astype(np.int64)

    def epoch(self, epoch: int = 0):
        """Iterate over the windows of one epoch (each crop starts from a zero state)."""
        for k in range(self.windows_per_epoch):
            yield self.window(epoch, k)

    def __len__(self) -> int:
        return self.windows_per_epoch

    def __repr__(self) -> str:
        what = "random crops" if self.starts is None else f"{len(self.starts)} {self.mode} crops"
        return f"Crops({len(self.ids):,} ids -> {what} of {self.T}; {self.windows_per_epoch} windows of {self.B})"


# ---------------------------------------------------------------------------------------------------------
# the three corpora


def split_by_position(text: str, fractions=(0.9, 0.05, 0.05)) -> tuple[str, str, str]:
    """Cut ``text`` into consecutive training, validation and test parts of the given fractions."""
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-9:
        raise ValueError(f"fractions: expected three non-negative fractions summing to 1, got {fractions!r}")
    n = len(text)
    a, b = round(fractions[0] * n), round((fractions[0] + fractions[1]) * n)
    return text[:a], text[a:b], text[b:]


_TYPOGRAPHY = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-",
                             "\u2014": "-", "\u00a0": " ", "\t": " "})
_PRINTABLE = frozenset(chr(i) for i in range(32, 127)) | {"\n"}


def to_ascii(text: str, *, lowercase: bool = False) -> str:
    """``text`` in printable ASCII and newlines: typographic quotes and dashes become their ASCII
    forms, compatibility characters are decomposed (``…`` becomes ``...``, ``é`` becomes ``e``), and
    whatever is still outside printable ASCII is dropped."""
    text = unicodedata.normalize("NFKD", text.translate(_TYPOGRAPHY))
    text = "".join(c for c in text if c in _PRINTABLE)
    return text.lower() if lowercase else text


def load_pydoc_text(*, lowercase: bool = True, fractions=(0.9, 0.05, 0.05)) -> TextCorpus:
    """The embedded default: Python's own help topics (``pydoc_data.topics``), split by position."""
    from pydoc_data.topics import topics

    text = to_ascii("\n".join(topics[k] for k in sorted(topics)), lowercase=lowercase)
    train, valid, test = split_by_position(text, fractions)
    py = ".".join(map(str, sys.version_info[:2]))
    return TextCorpus(
        train, valid, test, "pydoc",
        f"Python {py}'s help topics (pydoc_data, embedded default{', lowercased' if lowercase else ''}), "
        f"{len(train):,} / {len(valid):,} / {len(test):,} characters",
    )


def load_standin_text(real: str = "ptb", *, chars: int = 2_000_000, seed: int = 0) -> TextCorpus:
    """A generated stand-in for the real corpus ``real`` with its alphabet size (:data:`STANDIN_ALPHABET`), for
    measuring the cost of a paper-size update where the real files are absent: ``chars`` training characters
    and a twentieth of that for validation and test, each character drawn independently with Zipf-like
    frequencies (nothing to learn beyond them: a stand-in for shapes and timing, never for results)."""
    if real not in STANDIN_ALPHABET:
        raise ValueError(f"real: expected one of {sorted(STANDIN_ALPHABET)}, got {real!r}")
    n = STANDIN_ALPHABET[real]
    alphabet = np.frombuffer(("abcdefghijklmnopqrstuvwxyz .,'-&$#N0123456789ABCDEFGHIJKLMNOPQRSTUV")[:n].encode(),
                             dtype=np.uint8)
    p = 1.0 / np.arange(1, n + 1)
    rng = np.random.default_rng(seed)
    parts = []
    for size in (chars, chars // 20, chars // 20):
        codes = rng.choice(n, size=size, p=p / p.sum())
        codes[:n] = np.arange(n)  # every character occurs in every split
        parts.append(alphabet[codes].tobytes().decode("ascii"))
    return TextCorpus(*parts, f"standin-{real}",
                      f"a generated stand-in for {real} ({n} characters, drawn independently), "
                      + " / ".join(f"{len(t):,}" for t in parts) + " characters: for timing, not for results")


def parse_ptb_chars(raw: str) -> str:
    """Mikolov's character-level PTB format as plain text: tokens separated by spaces, ``_`` for a space
    between words, one sentence a line. A line becomes its characters followed by a newline."""
    lines = []
    for line in raw.splitlines():
        tokens = line.split()
        if tokens:
            lines.append("".join(" " if t == "_" else t for t in tokens).strip(" "))
    return "".join(line + "\n" for line in lines)


def load_ptb_chars(path=None) -> TextCorpus:
    """Penn Treebank characters (Mikolov's splits) from the folder ``path`` or ``$LNEDU_DATA/ptb``."""
    folder = Path(path) if path is not None else cache_dir() / "ptb"
    missing = [f for f in PTB_CHAR_FILES.values() if not (folder / f).is_file()]
    if missing:
        raise DataUnavailable(
            f"path: expected Mikolov's {', '.join(PTB_CHAR_FILES.values())} in {folder}, missing {', '.join(missing)} "
            "(they are in simple-examples.tgz from Mikolov's RNNLM page; lnedu does not download them)"
        )
    parts = {k: parse_ptb_chars(_read_text(folder / f, "utf-8")) for k, f in PTB_CHAR_FILES.items()}
    return TextCorpus(
        parts["train"], parts["valid"], parts["test"], "ptb-char",
        "Penn Treebank characters (Mikolov's splits), "
        + " / ".join(f"{len(parts[k]):,}" for k in ("train", "valid", "test")) + " characters",
    )


def _read_text(path: Path, encoding: str) -> str:
    """The text of a file, or a one-line refusal naming it (not a bare UnicodeDecodeError)."""
    try:
        return path.read_text(encoding=encoding)
    except UnicodeDecodeError as exc:
        raise damaged(path, f"expected {encoding} text, got byte 0x{exc.object[exc.start]:02x} at offset {exc.start}") \
            from exc


def _read_text8(path: Path, refetch: str | None = None) -> str:
    if path.suffix == ".zip":
        try:
            with zipfile.ZipFile(path) as z:
                names = [n for n in z.namelist() if not n.endswith("/")]
                if not names:
                    raise damaged(path, "expected the text8 file inside, found an empty archive", refetch=refetch)
                member = "text8" if "text8" in names else names[0]
                raw = z.read(member)
        except (zipfile.BadZipFile, EOFError, OSError, zlib.error) as exc:  # cut short, or not a zip
            raise damaged(path, f"cannot be read as a zip archive ({type(exc).__name__}: {exc})", refetch=refetch) \
                from exc
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError as exc:
            raise damaged(path, f"expected ASCII text inside, got byte 0x{raw[exc.start]:02x} at offset {exc.start}",
                          refetch=refetch) from exc
    return _read_text(path, "ascii")


def load_text8(path=None, *, download: bool | None = None) -> TextCorpus:
    """text8 with the standard 90M / 5M / 5M split (for a file of another length, 90% / 5% / 5%).

    ``path``: the ``text8`` file, ``text8.zip``, or a folder holding either; default ``$LNEDU_DATA/text8``,
    where ``text8.zip`` is downloaded when downloading is allowed.
    """
    if path is not None:
        p = Path(path)
        if p.is_dir():
            found = [p / n for n in ("text8", "text8.zip") if (p / n).is_file()]
            if not found:
                raise DataUnavailable(f"path: expected text8 or text8.zip in {p}, found neither")
            p = found[0]
        elif not p.is_file():
            raise DataUnavailable(f"path: expected the text8 file, text8.zip or a folder, got {str(p)!r}, "
                                  "which does not exist")
    else:  # the cache: the zip is re-checked against its SHA-1, an unpacked text8 must be the whole file
        folder = cache_dir() / "text8"
        p = folder / "text8"
        if not p.is_file():
            p = fetch(TEXT8_URL, folder / "text8.zip", TEXT8_SHA1, algorithm="sha1", download=download,
                      refetch=REFETCH_TEXT8)
        elif p.stat().st_size != sum(TEXT8_SPLIT):
            raise damaged(p, f"expected text8's {sum(TEXT8_SPLIT):,} characters, got {p.stat().st_size:,}",
                          refetch=REFETCH_TEXT8)
    text = _read_text8(p, REFETCH_TEXT8 if path is None else None)
    n = len(text)
    if n == sum(TEXT8_SPLIT):
        a, b = TEXT8_SPLIT[0], TEXT8_SPLIT[0] + TEXT8_SPLIT[1]
        train, valid, test = text[:a], text[a:b], text[b:]
    else:
        train, valid, test = split_by_position(text)
    return TextCorpus(train, valid, test, "text8",
                      f"text8 (Mahoney), {len(train):,} / {len(valid):,} / {len(test):,} characters")


def load_text_corpus(real: str = "ptb", source: str = "auto", path=None, *,
                     download: bool | None = None) -> TextCorpus:
    """A real corpus when it is available, else the embedded default.

    ``real``: which real corpus, ``'ptb'`` or ``'text8'``. ``source``: ``'auto'`` (the real one if it is on
    disk or may be downloaded, else the embedded Python help text), ``'real'`` (the real one, or the refusal
    of :data:`PTB_SET` / :data:`TEXT8_SET`: a :class:`~lnedu.data.download.DataUnavailable` naming the set,
    where it was looked for and how to get it), ``'embedded'`` (the embedded text), ``'standin'`` (a generated
    text with the real one's alphabet size, :func:`load_standin_text`). ``path``: the real corpus's folder or
    file (``None`` or ``""``: the cache); a path given and holding no corpus is refused even with ``'auto'``
    (whoever names a folder means that data, not the embedded text).
    """
    path = path or None
    loaders = {"ptb": lambda: load_ptb_chars(path), "text8": lambda: load_text8(path, download=download)}
    if real not in loaders:
        raise ValueError(f"real: expected 'ptb' or 'text8', got {real!r}")
    if source not in ("auto", "real", "embedded", "standin"):
        raise ValueError(f"source: expected 'auto', 'real', 'embedded' or 'standin', got {source!r}")
    if source in ("embedded", "standin") and path is not None:  # a path named is that corpus, never another
        raise ValueError(f"path: expected no path with source={source!r} (it reads no file; 'real' or 'auto' read "
                         f"{real} from a folder or file), got {str(path)!r}")
    if source == "embedded":
        return load_pydoc_text()
    if source == "standin":
        return load_standin_text(real)
    try:
        return loaders[real]()
    except DataCorrupt:  # a damaged copy is refused, not quietly replaced by the embedded text
        raise
    except DataUnavailable as exc:
        if source == "real" or path is not None:
            looked_in = path if path is not None else cache_dir() / real
            raise REAL_SETS[real].missing(looked_in=[looked_in]) from exc
        return load_pydoc_text()
