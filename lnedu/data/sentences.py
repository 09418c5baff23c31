"""Sentences for skip-thoughts (LN paper §6.3): a book corpus to train on, and a labelled set to judge the vectors.

* :func:`load_sentence_text` reads the training text: a plain text file of sentences, one a line (the form the
  circulated BookCorpus copies take, ``books_large_p1.txt`` ...), or a folder of such ``.txt`` files read in name
  order. Each file is a document, and a blank line also ends one (a book, say); consecutive lines of a document
  make the (previous, current, next) triples skip-thoughts trains on. :data:`BOOKCORPUS_SET` says where the paper's
  corpus came from: BookCorpus (Zhu et al. 2015) is no longer distributed by its authors, so any large text of
  books in this form stands in for it, and the run says which file it read.
* :func:`load_mr` reads one of the paper's downstream sets, MR (Pang & Lee 2005, movie-review sentence polarity;
  Table 3's "MR" column), from the ``rt-polarity.pos`` / ``rt-polarity.neg`` files of its release: one review
  snippet a line, latin-1 text, already lower-cased and tokenized. :data:`MR_SET` says where to get it.

Neither set comes with Python; both loaders refuse a missing set with the set's own message
(:meth:`lnedu.data.download.RealDataSet.missing`), and a damaged file in one line naming it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .captions import tokenize
from .download import DataUnavailable, RealDataSet, cache_dir, damaged

__all__ = ["BOOKCORPUS_SET", "MR_SET", "load_sentence_text", "load_mr", "sentence_text_files"]

BOOKCORPUS_SET = RealDataSet(
    name="bookcorpus",
    what="BookCorpus (Zhu et al. 2015, about 11,000 books, 74M sentences) or another large text of books, "
         "one sentence a line",
    source="Zhu et al. 2015, 'Aligning books and movies' (no longer distributed by its authors; Kiros et al. 2015 "
           "trained skip-thoughts on it)",
    get="a manual step: put the text (books_large_p1.txt, ... or your own books) in $LNEDU_DATA/bookcorpus",
    files="one or more .txt files of sentences, one a line, a blank line between books",
)

MR_SET = RealDataSet(
    name="mr",
    what="MR, movie-review sentence polarity v1.0 (Pang & Lee 2005; 5,331 positive and 5,331 negative snippets)",
    source="https://www.cs.cornell.edu/people/pabo/movie-review-data/ (rt-polaritydata.tar.gz)",
    get="a manual download: unpack rt-polaritydata.tar.gz into $LNEDU_DATA/mr",
    files="rt-polarity.pos and rt-polarity.neg",
)


def sentence_text_files(path=None) -> list[Path]:
    """The text files of the training corpus at ``path`` (a file, or a folder's ``.txt`` files in name order;
    ``None`` or ``""``: ``$LNEDU_DATA/bookcorpus``). Refused with :data:`BOOKCORPUS_SET`'s message when none."""
    where = Path(path) if path not in (None, "") else cache_dir() / "bookcorpus"
    files = [where] if where.is_file() else sorted(where.glob("*.txt")) if where.is_dir() else []
    if not files:
        raise BOOKCORPUS_SET.missing(looked_in=[where])
    return files


def _read_text(path: Path, encoding: str = "utf-8") -> str:
    try:
        return path.read_text(encoding=encoding)
    except UnicodeDecodeError as exc:
        raise damaged(path, f"expected {encoding} text, got byte 0x{exc.object[exc.start]:02x} at offset "
                            f"{exc.start}") from exc


def load_sentence_text(path=None, *, chunk: int = 1000) -> list:
    """The documents of the training corpus at ``path`` (see :func:`sentence_text_files`), as
    ``[(name, [tokens, ...]), ...]``: one document a file, split at blank lines, and cut into pieces of at most
    ``chunk`` sentences (so a text with no blank lines still has documents to hold out for validation; a
    triple never spans two pieces). ``name``: the file's stem and the piece's number."""
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 3:
        raise ValueError(f"chunk: expected an integer >= 3 (sentences a document), got {chunk!r}")
    docs = []
    for f in sentence_text_files(path):
        cur = []
        for line in _read_text(f).splitlines() + [""]:
            if line.strip():
                cur.append(tokenize(line))
            if cur and (not line.strip() or len(cur) == chunk):
                docs.append((f"{f.stem}:{len(docs)}", cur))
                cur = []
    if not docs:
        raise damaged(sentence_text_files(path)[0], "expected sentences, one a line, got no text")
    return docs


def _mr_folder(path) -> Path | None:
    bases = [Path(path)] if path not in (None, "") else [cache_dir() / "mr"]
    for base in bases:
        for folder in (base, base / "rt-polaritydata"):
            if (folder / "rt-polarity.pos").is_file() and (folder / "rt-polarity.neg").is_file():
                return folder
    return None


def load_mr(path=None):
    """MR's snippets and labels: ``(sentences, labels)``, token lists and an int array (1 positive, 0 negative),
    in the files' order, positives first (shuffle before cross-validation). ``path``: the folder holding
    ``rt-polarity.pos`` and ``rt-polarity.neg`` (or their ``rt-polaritydata/`` folder; ``None``:
    ``$LNEDU_DATA/mr``). The files are latin-1 text, as released (Kiros et al.'s ``dataset_handler.py`` reads them
    so too)."""
    folder = _mr_folder(path)
    if folder is None:
        where = Path(path) if path not in (None, "") else cache_dir() / "mr"
        # the generic message offers --data, which sets the training corpus; MR has a field of its own
        raise DataUnavailable(str(MR_SET.missing(looked_in=[where])).replace("--data PATH", "--set probe_path=PATH"))
    sents, labels = [], []
    for name, label in (("rt-polarity.pos", 1), ("rt-polarity.neg", 0)):
        lines = [tokenize(line) for line in _read_text(folder / name, "latin-1").splitlines() if line.strip()]
        if not lines:
            raise damaged(folder / name, "expected review snippets, one a line, got no text")
        sents += lines
        labels += [label] * len(lines)
    return sents, np.array(labels, dtype=np.int64)
