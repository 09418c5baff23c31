"""Data sets: real loaders (a local path, a cache, a checked download when asked) and embedded defaults.

Nothing here touches the network unless asked to (see :mod:`lnedu.data.download`); every loader says in its
result which data it returned, so a notebook can print whether the real set or the embedded default ran.
"""

from .binarized_mnist import BINARIZED_MNIST_SET, BinaryImages, load_binarized_mnist, read_amat
from .download import DataCorrupt, DataUnavailable, RealDataSet, cache_dir, fetch, md5sum
from .handwriting import StrokeDataset, load_handwriting, load_iam_ondb, parse_strokes_xml
from .mnist import Dataset, binarize, load_digits, load_digits_dataset, load_mnist, read_idx
from .sentences import BOOKCORPUS_SET, MR_SET, load_mr, load_sentence_text
from .text import BPTTStream, CharVocab, TextCorpus, load_ptb_chars, load_pydoc_text, load_text8, load_text_corpus

__all__ = [
    "DataUnavailable",
    "DataCorrupt",
    "RealDataSet",
    "cache_dir",
    "fetch",
    "md5sum",
    "Dataset",
    "read_idx",
    "load_mnist",
    "load_digits",
    "load_digits_dataset",
    "binarize",
    "BinaryImages",
    "BINARIZED_MNIST_SET",
    "load_binarized_mnist",
    "read_amat",
    "TextCorpus",
    "CharVocab",
    "BPTTStream",
    "load_ptb_chars",
    "load_text8",
    "load_pydoc_text",
    "load_text_corpus",
    "StrokeDataset",
    "load_handwriting",
    "load_iam_ondb",
    "parse_strokes_xml",
    "BOOKCORPUS_SET",
    "MR_SET",
    "load_mr",
    "load_sentence_text",
]
