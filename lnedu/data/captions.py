"""Images with captions, for image-sentence retrieval (order-embeddings, LN paper §6.1), and word vocabularies.

The paper trains on MS-COCO: VGG features of each image and five human captions. Neither comes with Python, so
the embedded default is a small stand-in with the same structure, built from scikit-learn's bundled 8x8 digits:

* an image is its 64 pixel intensities in [0, 1];
* each image gets five captions generated from its label and from attributes *measured on its pixels*: how much
  ink it has (faint / medium / bold), its slant (leaning left / upright / leaning right, from the second moments
  of the ink), its width (narrow / regular / wide, the columns with ink) and where its ink sits (left / centre /
  right, the centre of mass). Each caption mentions a random subset of these, in one of a few phrasings, with
  synonyms ("bold", "thick", "heavy"), and names the digit as a word or a numeral, or not at all.

So a caption describes its image only partly, as real captions do, and both sides carry real structure: a
caption's words follow from the pixels, and many images fit one caption. The attribute thresholds are the
tertiles over all 1,797 images, so "bold" means "in the boldest third".

:func:`load_caption_features` reads the real set instead, from a local folder, in either of the two layouts
the order-embedding code has used (``ivendrov/order-embedding``; :data:`COCO_SET` says where to get it):

* the released ``coco.zip`` (Vendrov et al. 2016, the final ``datasets.py``): ``train.txt``, ``val.txt`` and
  ``test.txt`` (tokenized captions, one a line, the five of image ``i`` on lines ``5 i`` to ``5 i + 4``) and
  ``images/10crop/{train,val,test}.npy`` (one row of VGG19 features per image); ``val`` is the dev split;
* the earlier layout of Kiros et al.'s visual-semantic-embedding code: ``{name}_{split}_ims.npy`` and
  ``{name}_{split}_caps.txt`` for ``split`` in ``train``, ``dev``, ``test``.

:func:`load_standin_captions` generates random data of the real set's shapes (4096 features, COCO-length
captions) for measuring the cost of a paper-size update where the real set is absent (``--plan``).

:class:`WordVocab` maps words to ids (``<pad>`` is 0, ``<unk>`` 1), and :func:`pad_batch` packs token-id lists
into the time-major ``(T, B)`` arrays and mask that the recurrent layers take.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .download import DataUnavailable, RealDataSet, cache_dir, damaged

__all__ = [
    "WordVocab",
    "tokenize",
    "pad_batch",
    "CaptionDataset",
    "digit_attributes",
    "describe_digit",
    "load_digit_captions",
    "load_caption_features",
    "load_captions",
    "load_standin_captions",
    "COCO_SET",
    "DIGIT_WORDS",
]

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

_TOKEN = re.compile(r"[^\W_]+|[^\w\s]|_")  # runs of letters and digits (any script), else one mark


def tokenize(text: str) -> list[str]:
    """Lower-cased words, numbers and single punctuation marks: ``"A bold 7."`` -> ``["a", "bold", "7", "."]``,
    ``"Un café naïf"`` -> ``["un", "café", "naïf"]``."""
    if not isinstance(text, str):
        raise TypeError(f"text: expected a str, got {type(text).__name__}")
    return _TOKEN.findall(text.lower())


# ---------------------------------------------------------------------------------------------------------
# vocabulary and batches


class WordVocab:
    """Words <-> integer ids: the special tokens first (``<pad>`` = 0, ``<unk>`` = 1, then any extra ones, such
    as ``<bos>``, ``<eos>``), then the words by falling frequency, ties broken alphabetically.

    ``WordVocab.build(sentences, max_size=..., min_count=...)`` counts the words of ``sentences`` (lists of
    tokens; use the training split only). ``encode`` maps an unknown word to ``<unk>``.
    """

    PAD, UNK = "<pad>", "<unk>"

    def __init__(self, words, specials=()):
        specials = [self.PAD, self.UNK, *specials]
        words = [w for w in words if w not in specials]
        self.itos = specials + words
        if len(set(self.itos)) != len(self.itos):
            raise ValueError("words: expected distinct words, got repeats")
        self.stoi = {w: i for i, w in enumerate(self.itos)}
        self.specials = tuple(specials)

    @classmethod
    def build(cls, sentences, *, max_size: int | None = None, min_count: int = 1, specials=()) -> WordVocab:
        counts = Counter(w for s in sentences for w in s)
        words = sorted((w for w, n in counts.items() if n >= min_count), key=lambda w: (-counts[w], w))
        if max_size is not None:
            words = words[: max(0, int(max_size) - 2 - len(specials))]
        return cls(words, specials)

    def __len__(self) -> int:
        return len(self.itos)

    def __getitem__(self, word: str) -> int:
        return self.stoi.get(word, 1)

    def encode(self, tokens) -> list[int]:
        if isinstance(tokens, str):
            raise TypeError("tokens: expected a list of tokens, got a str (call tokenize first)")
        return [self.stoi.get(w, 1) for w in tokens]

    def decode(self, ids) -> list[str]:
        return [self.itos[int(i)] for i in ids]

    def __repr__(self) -> str:
        return f"WordVocab({len(self)} ids: {' '.join(self.itos[:12])}{' ...' if len(self) > 12 else ''})"


def pad_batch(seqs, *, max_len: int | None = None, dtype=np.float32):
    """Pack id lists into ``(ids (T, B) int64, mask (T, B))``, time-major; ``T`` the longest (or ``max_len``:
    longer sequences are cut). Padding is id 0 with mask 0. Every sequence must have at least one id."""
    seqs = [list(s)[:max_len] if max_len else list(s) for s in seqs]
    if not seqs or any(len(s) == 0 for s in seqs):
        raise ValueError("seqs: expected a non-empty list of non-empty sequences")
    T = max(len(s) for s in seqs)
    ids = np.zeros((T, len(seqs)), dtype=np.int64)
    mask = np.zeros((T, len(seqs)), dtype=dtype)
    for b, s in enumerate(seqs):
        ids[: len(s), b] = s
        mask[: len(s), b] = 1
    return ids, mask


# ---------------------------------------------------------------------------------------------------------
# the data set


@dataclass
class CaptionDataset:
    """Image features and their captions, per split (``train``, ``dev``, ``test``).

    ``images[split]``: (N, F) float32; ``captions[split]``: token lists; ``caption_image[split]``: (N_cap,)
    the image each caption describes; ``labels[split]``: the digit of each image (generated data only).
    """

    images: dict
    captions: dict
    caption_image: dict
    name: str  # "digit-captions" or the real set's name
    description: str
    labels: dict = field(default_factory=dict)

    @property
    def feature_dim(self) -> int:
        return int(self.images["train"].shape[1])

    def folds(self, n: int = 5, split: str = "test"):
        """The ``n`` test folds of the protocol (Vendrov et al.: 5 folds of 1,000 COCO images): contiguous
        blocks of images, each with all of its captions. A list of ``(image_indices, caption_indices)``."""
        n_img = len(self.images[split])
        if not 1 <= n <= n_img:
            raise ValueError(f"n: expected a number of folds in [1, {n_img}], got {n!r}")
        cap_img = self.caption_image[split]
        out = []
        for block in np.array_split(np.arange(n_img), n):
            out.append((block, np.flatnonzero((cap_img >= block[0]) & (cap_img <= block[-1]))))
        return out

    def __repr__(self) -> str:
        sizes = ", ".join(f"{k} {len(v)}/{len(self.captions[k])}" for k, v in self.images.items())
        return f"CaptionDataset({self.name!r}: images/captions {sizes})"


# ---------------------------------------------------------------------------------------------------------
# generated captions for the 8x8 digits


def digit_attributes(x) -> dict:
    """Attributes measured on 8x8 digit images ``x`` (N, 64) in [0, 1]: a dict of (N,) arrays.

    ``ink``: the summed intensity; ``slant``: the shear ``-cov(col, row) / var(row)`` of the ink (positive: the
    top leans right; rows count downwards); ``width``: columns holding a pixel above 0.25; ``center``: the
    column of the centre of mass.
    """
    x = np.asarray(x, dtype=np.float64).reshape(-1, 8, 8)
    rows, cols = np.mgrid[0:8, 0:8]
    mass = x.sum(axis=(1, 2))
    cx = (x * cols).sum(axis=(1, 2)) / mass
    cy = (x * rows).sum(axis=(1, 2)) / mass
    dc, dr = cols - cx[:, None, None], rows - cy[:, None, None]
    slant = -(x * dc * dr).sum(axis=(1, 2)) / (x * dr * dr).sum(axis=(1, 2))
    width = (x > 0.25).any(axis=1).sum(axis=1).astype(np.float64)
    return {"ink": mass, "slant": slant, "width": width, "center": cx}


_WORDS = {  # attribute -> (low, middle, high) synonyms
    "ink": (("faint", "thin", "light"), ("medium",), ("bold", "thick", "heavy")),
    "slant": (("leaning left", "tilted left", "slanted left"), ("upright", "straight"),
              ("leaning right", "tilted right", "slanted right")),
    "width": (("narrow", "slim"), ("regular",), ("wide", "broad")),
    "center": (("left of centre", "to the left"), ("in the centre", "centred"), ("right of centre", "to the right")),
}


def _levels(values, cuts):
    return np.digitize(values, cuts)  # 0, 1, 2


def describe_digit(label: int, levels: dict, rng) -> str:
    """One generated caption of a digit: its label and a random subset of its attribute ``levels`` (0/1/2 each,
    as words), in one of a few phrasings; ``rng`` a NumPy Generator."""
    def pick(options):
        return options[int(rng.integers(len(options)))]

    def word(attr):
        return pick(_WORDS[attr][levels[attr]])

    say = [a for a in ("ink", "width", "slant", "center") if rng.random() < 0.55]
    if not say:
        say = [pick(("ink", "width", "slant", "center"))]
    r = rng.random()
    if r < 0.45:
        head = DIGIT_WORDS[label]
    elif r < 0.7:
        head = f"number {label}"
    elif r < 0.85:
        head = f"digit {label}"
    else:
        head = pick(("digit", "character", "number"))  # the label left out
    adjs = [word(a) for a in ("ink", "width") if a in say]
    post = [word(a) for a in ("slant", "center") if a in say]
    frame = int(rng.integers(3))
    if frame == 0:  # "a bold narrow seven leaning right"
        words = ["a", *adjs, head, *(" and ".join(post).split())]
    elif frame == 1:  # "seven , bold and leaning right"
        words = [head, ",", *" and ".join(adjs + post).split()]
    else:  # "a handwritten seven with thick strokes , to the left"
        words = ["a", "handwritten", head]
        if "ink" in say:
            words += ["with", word("ink"), "strokes"]
        rest = [word("width")] if "width" in say else []
        rest += post
        if rest:
            words += [",", *" and ".join(rest).split()]
    return " ".join(words)


def load_digit_captions(*, captions_per_image: int = 5, n_dev: int = 100, n_test: int = 500, seed: int = 0,
                        ) -> CaptionDataset:
    """The embedded default: the 1,797 bundled 8x8 digits with ``captions_per_image`` generated captions each.

    Images are split by a fixed permutation (``seed``) into ``test`` (``n_test``, 5 folds of 100 by default),
    ``dev`` (``n_dev``, for validation) and ``train`` (the rest). Captions depend only on the image and ``seed``,
    never on the split.
    """
    from .mnist import bundled_digits

    pixels, labels = bundled_digits()
    x = (pixels / 16.0).astype(np.float32)
    y = labels.copy()
    attrs = digit_attributes(x)
    levels = {}
    for name, v in attrs.items():
        cuts = (4.5, 6.5) if name == "width" else np.quantile(v, [1 / 3, 2 / 3])
        levels[name] = _levels(v, cuts)
    caps = []
    for i in range(len(y)):
        rng = np.random.default_rng([int(seed), i, 0xCA9])
        lv = {k: int(v[i]) for k, v in levels.items()}
        caps.append([tokenize(describe_digit(int(y[i]), lv, rng)) for _ in range(captions_per_image)])
    order = np.random.default_rng([int(seed), 0x5B1]).permutation(len(y))
    parts = {"test": order[:n_test], "dev": order[n_test: n_test + n_dev], "train": order[n_test + n_dev:]}
    if len(parts["train"]) < 1:
        raise ValueError(f"n_dev, n_test: expected fewer than {len(y)} images in all, got {n_dev} + {n_test}")
    k = int(captions_per_image)
    images = {s: x[idx] for s, idx in parts.items()}
    captions = {s: [c for i in idx for c in caps[i]] for s, idx in parts.items()}
    cap_img = {s: np.repeat(np.arange(len(idx)), k) for s, idx in parts.items()}
    labels = {s: y[idx] for s, idx in parts.items()}
    sizes = " / ".join(f"{len(parts[s])}" for s in ("train", "dev", "test"))
    return CaptionDataset(images, captions, cap_img, "digit-captions",
                          f"scikit-learn's 8x8 digits with {k} generated captions each (embedded default), "
                          f"{sizes} train / dev / test images", labels)


# ---------------------------------------------------------------------------------------------------------
# the real format


COCO_SET = RealDataSet(
    name="coco",
    what="MS-COCO captions (5 an image) with VGG19 10-crop image features (4096-d), Karpathy's splits",
    source="Vendrov et al. 2016, the order-embedding release (https://github.com/ivendrov/order-embedding: "
           "http://www.cs.toronto.edu/~vendrov/datasets/coco.zip)",
    get="a manual download: fetch coco.zip from that address and unzip it into $LNEDU_DATA/coco",
    files="train.txt, val.txt, test.txt and images/10crop/{train,val,test}.npy (or NAME_{train,dev,test}_ims.npy "
          "with NAME_{train,dev,test}_caps.txt)",
)


def _find_name(folder: Path) -> str:
    found = sorted(p.name[: -len("_train_ims.npy")] for p in folder.glob("*_train_ims.npy"))
    if len(found) != 1:
        raise DataUnavailable(f"path: expected one NAME_train_ims.npy in {folder}, found {found or 'none'}")
    return found[0]


def _coco_zip_files(folder: Path, cnn: str | None):
    """``{split: (features .npy, captions .txt)}`` of the ``coco.zip`` layout, or None if ``folder`` is not one."""
    if not (folder / "train.txt").is_file():
        return None
    if cnn is None:
        cnns = sorted(p.parent.name for p in (folder / "images").glob("*/train.npy"))
        cnn = "10crop" if "10crop" in cnns else (cnns[0] if len(cnns) == 1 else None)
        if cnn is None:
            raise DataUnavailable(f"path: expected images/10crop/train.npy (or one images/CNN/train.npy) in {folder}, "
                                  f"found {cnns or 'none'}")
    return {split: (folder / "images" / cnn / f"{name}.npy", folder / f"{name}.txt")
            for split, name in (("train", "train"), ("dev", "val"), ("test", "test"))}


def _read_split(fi: Path, fc: Path, folder: Path):
    if not fi.is_file() or not fc.is_file():
        raise DataUnavailable(f"path: expected {fi.relative_to(folder)} and {fc.relative_to(folder)} in {folder}")
    try:  # never pickles; a file that is not a plain .npy array is refused naming it
        ims = np.load(fi, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise damaged(fi, "expected a .npy array of image features, got a file that is not one "
                          f"({type(exc).__name__})") from exc
    if ims.ndim != 2 or ims.dtype.kind not in "fiu":
        raise damaged(fi, f"expected a 2-d numeric array (images, features), got {ims.dtype} of shape {ims.shape}")
    try:
        text = fc.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise damaged(fc, f"expected utf-8 text, got byte 0x{exc.object[exc.start]:02x} at offset {exc.start}") \
            from exc
    lines = [tokenize(line) for line in text.splitlines() if line.strip()]
    if len(ims) == 0 or len(lines) % len(ims):
        raise damaged(fc, f"expected a whole number of captions per image ({len(ims)} images in {fi.name}), "
                          f"got {len(lines)} lines")
    return ims.astype(np.float32), lines, np.repeat(np.arange(len(ims)), len(lines) // len(ims))


def load_caption_features(path=None, name: str | None = None, *, cnn: str | None = None) -> CaptionDataset:
    """Precomputed image features and captions from the folder ``path`` (``None``: ``$LNEDU_DATA/coco``), in the
    ``coco.zip`` layout or the ``{name}_{split}_ims.npy`` / ``_caps.txt`` layout (see the module docstring).
    ``name``: the second layout's prefix (``"coco"``, say), found when the folder holds one set; ``cnn``: the
    features' folder under ``images/`` in the first (default ``10crop``). A missing folder or file is refused
    with :data:`COCO_SET`'s message; a damaged one naming it."""
    folder = Path(path) if path not in (None, "") else cache_dir() / "coco"
    if not folder.is_dir() or not ((folder / "train.txt").is_file() or any(folder.glob("*_train_ims.npy"))):
        raise COCO_SET.missing(looked_in=[folder])
    files = _coco_zip_files(folder, cnn)
    if files is None:
        name = name or _find_name(folder)
        files = {split: (folder / f"{name}_{split}_ims.npy", folder / f"{name}_{split}_caps.txt")
                 for split in ("train", "dev", "test")}
    else:
        name = name or folder.name
    images, captions, cap_img = {}, {}, {}
    for split, (fi, fc) in files.items():
        images[split], captions[split], cap_img[split] = _read_split(fi, fc, folder)
    sizes = " / ".join(str(len(images[s])) for s in ("train", "dev", "test"))
    return CaptionDataset(images, captions, cap_img, name,
                          f"{name} image features and captions from {folder}, {sizes} train / dev / test images")


def load_standin_captions(*, feature_dim: int = 4096, vocab: int = 10_000, caption_len: int = 11,
                          n_train: int = 2000, n_dev: int = 100, n_test: int = 500, seed: int = 0) -> CaptionDataset:
    """Random data of the real set's shapes, to measure the cost of an update where the real set is absent: Gaussian
    "features" (``feature_dim``), five captions an image of ``caption_len`` words drawn uniformly from ``vocab``
    made-up words (COCO's captions are about 10-11 words long; our assumption). Nothing here can be learned."""
    rng = np.random.default_rng([int(seed), 0x57A])
    words = np.array([f"w{i}" for i in range(int(vocab))])
    images, captions, cap_img = {}, {}, {}
    for split, n in (("train", n_train), ("dev", n_dev), ("test", n_test)):
        images[split] = rng.normal(size=(n, int(feature_dim))).astype(np.float32)
        captions[split] = [list(words[rng.integers(len(words), size=int(caption_len))]) for _ in range(5 * n)]
        cap_img[split] = np.repeat(np.arange(n), 5)
    return CaptionDataset(images, captions, cap_img, "standin",
                          f"a generated stand-in of the real set's shapes ({feature_dim} features, {caption_len}-word "
                          f"captions, {vocab} words): for timing only")


def load_captions(source: str = "auto", path=None, name: str | None = None) -> CaptionDataset:
    """``"features"``: the real set, :func:`load_caption_features` (from ``path``, else the cache; refused with
    :data:`COCO_SET`'s message when absent); ``"digits"``: the embedded default; ``"auto"``: the features when
    ``path`` is given, else the digits; ``"standin"``: :func:`load_standin_captions` (timing only)."""
    if source not in ("auto", "features", "digits", "standin"):
        raise ValueError(f"source: expected 'auto', 'features', 'digits' or 'standin', got {source!r}")
    if source in ("digits", "standin") and path not in (None, ""):  # a folder named is that data, never the digits
        raise ValueError(f"path: expected no path with source={source!r} (it reads no file; 'features' or 'auto' "
                         f"read caption features from a folder), got {str(path)!r}")
    if source == "standin":
        return load_standin_captions()
    if source == "features" or (source == "auto" and path not in (None, "")):
        return load_caption_features(path, name)
    return load_digit_captions()
