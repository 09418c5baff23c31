"""Skip-thought vectors with a GRU or LN-GRU encoder, judged by training loss and a linear probe (LN paper §6.3).

The paper (Ba et al. 2016, §6.3, Figure 3, Table 3) retrains Kiros et al.'s (2015) skip-thoughts model on
BookCorpus: a GRU encoder (2400 units; an LN-GRU, Eq. 26-28, in the LN model) reads a sentence, and two GRU
decoders, started from the encoder's final state, predict the previous and the next sentence word by word. The
sentence vectors are then judged on downstream tasks (SICK relatedness; MR, CR, SUBJ, MPQA classification) by
linear models on the frozen vectors. Claim: LN trains faster (Figure 3: the downstream scores rise sooner per
iteration) and gives better representations (Table 3, e.g. MR 77.3 -> 79.5).

Our small run: consecutive sentences of Python's own documentation (``pydoc_data.topics``, shipped with Python;
or a plain text file of sentences, see :func:`load_sentences`), a small encoder, decoders conditioned only
through their initial state (as in the public code the paper used, which it names as the likely reason for its gap
to the original model). The probe: which of the five largest documentation topics a sentence comes from,
predicted by ridge regression (closed form) on the frozen, standardized encoder states, accuracy on held-out
sentences. The encoder never sees the topic labels; it may have read the probe's sentences while training, as
skip-thoughts read the whole of BookCorpus (the probe measures what the representation makes linearly readable).
Variants: ``gru`` and ``ln-gru`` encoders; the decoders are plain GRUs in both.

Downstream evaluation, on frozen encoder states with a linear read-out: the topic probe above on every run (what
it measures: how linearly readable a sentence's source document is from its vector), and with
``downstream="mr"`` (the ``paper`` preset) MR, one of Table 3's sets (:func:`lnedu.data.sentences.load_mr`), by
nested 10-fold cross-validation (:func:`cv_accuracy`), logged as ``mr_acc`` and used by the verdict. The ``paper``
preset reads your copy of a book corpus (``--data``) and MR's folder (``--set probe_path=...``) and refuses to run
without either. Its settings against the paper's (Kiros et al.'s code where the LN paper says "same
hyperparameters"):

| setting | paper | `paper` preset | `medium` preset | `small` preset |
|---|---|---|---|---|
| training text | BookCorpus (§6.3) | your book text, one sentence a line (BOOKCORPUS_SET) (differs: BookCorpus is no longer distributed by its authors: the preset reads the copy you give it) | Python's help topics (pydoc_data) | Python's help topics (pydoc_data) |
| encoder | GRU, 2,400 units; LN-GRU Eq. 26-28 in the LN model (§6.3) | 2,400 | 128 | 64 |
| decoders | two GRUs (previous, next sentence), started from the encoder's state, no conditioning at each step (§6.3; Kiros's training code) | two GRUs from the encoder's final state | two GRUs from the encoder's final state | two GRUs from the encoder's final state |
| output layer | one softmax layer shared by both decoders (Kiros's training/model.py, ff_logit) | shared | shared | one for each decoder |
| loss | summed over the words and sentences of a batch (Kiros's training/model.py) | mean per word, the two decoders added (differs: the scale differs by the words in a batch; Adam's step does not depend on it, the gradient clip at 5 does (ours clips less often)) | mean per word, the two decoders added | mean per word, the two decoders added |
| word vectors | 620 (Kiros's train.py) | 620 | 64 | 32 |
| vocabulary | 20,000 (Kiros's train.py) | 20,000 | 1,000 | 600 |
| sentence length | under 30 words: a triple with a longer sentence is left out, and a batch's current sentences share one length (maxlen_w; Kiros's homogeneous_data.py) | 30 (differs: we cut each sentence at max_len words and draw triples at random; the encoder masks the padding) | 16 | 16 |
| batch | 64 (Kiros's train.py) | 64 | 32 | 32 |
| optimizer and rate | Adam; 'same hyperparameters' as Kiros et al. (§6.3), whose code ignores its lrate = 0.01 and steps at 2e-4 (training/optim.py) | Adam 0.0002 | Adam 0.002 (per variant: gru 0.005, ln-gru 0.005) | Adam 0.002 (per variant: gru 0.005, ln-gru 0.005) |
| gradient clip (global norm) | 5 (Kiros's train.py) | 5 | 5 | 5 |
| iterations | 1M; the † row about 1.7M, a month (§6.3) | 1,000,000 | 1,500 | 300 |
| evaluations | checkpoints every 50,000 iterations (§6.3), Figure 3 plots them | 50,000 | 75 | 30 |
| downstream tasks | SICK, MR, CR, SUBJ, MPQA (Table 3); 10-fold CV for the classification tasks (Figure 3) | MR, 10-fold CV; topic probe (5 largest documents) (differs: MR only: SICK, CR, SUBJ and MPQA have no loader here) | topic probe (5 largest documents) | topic probe (5 largest documents) |
| linear model | logistic regression, penalty chosen by inner 10-fold CV (Kiros's eval_classification.py) | ridge regression on one-hot targets, penalty chosen by inner CV (MR); fixed penalty (topic probe) (differs: closed-form ridge instead of logistic regression: no iterative solver at 2,400 features, same linear read-out) | ridge regression on one-hot targets, penalty chosen by inner CV (MR); fixed penalty (topic probe) | ridge regression on one-hot targets, penalty chosen by inner CV (MR); fixed penalty (topic probe) |
"""

# ruff: noqa: E501 (the settings table above has one row a line, as settings_table writes it)

from __future__ import annotations

import dataclasses
import functools
import re
from dataclasses import dataclass, field

import numpy as np

from .. import backend, optim
from .. import functional as F
from ..backend import get_array_module, to_numpy
from ..data.captions import WordVocab, pad_batch, tokenize
from ..data.sentences import BOOKCORPUS_SET, MR_SET, load_mr, load_sentence_text
from ..nn import GRU, Embedding, Linear, Module
from ..viz.experiments import plot_band, seed_curves
from . import verdicts as V
from .common import CheckpointedTask, lr_for
from .diagnostics import due, stats_record
from .settings import Setting
from .verdicts import Verdict

NAME = "skip_thoughts"
TITLE = "Skip-thoughts: sentence representations"
PAPER = "LN §6.3, Figure 3, Table 3"
CLAIM = "an LN-GRU encoder trains faster and gives representations at least as good as a GRU's"
VARIANTS = ("gru", "ln-gru")
COLORS = {"gru": "tab:gray", "ln-gru": "tab:red"}

__all__ = ["NAME", "TITLE", "PAPER", "CLAIM", "VARIANTS", "Config", "PRESETS", "SEEDS", "SETTINGS", "Corpus",
           "split_sentences", "pydoc_documents", "load_sentences", "load_corpus", "SkipThoughts", "SkipThoughtTask",
           "ridge_probe", "cv_accuracy", "build", "standin", "verdict", "plot", "BOOKCORPUS_SET", "MR_SET"]


@dataclass
class Config:
    dim: int = 64  # encoder and decoder state size
    dim_word: int = 32
    vocab: int = 600  # most frequent training words kept (Kiros: 20,000)
    max_len: int = 16  # tokens kept per sentence (Kiros: 30)
    batch_size: int = 32
    lr: float = 2e-3
    clip: float = 5.0  # Kiros's grad_clip
    shared_output: bool = False  # one output layer for both decoders (Kiros's ff_logit), else one each
    probe_topics: int = 5
    probe_ridge: float = 10.0  # the ridge penalty on standardized features, fixed in advance
    data: str = "pydoc"  # "pydoc", "text" (the real corpus: a file or folder of sentences) or "standin"
    data_path: str = ""  # the text's file or folder ("": $LNEDU_DATA/bookcorpus)
    downstream: str = ""  # "" or "mr": also judge the vectors on MR by 10-fold cross-validation (logged as mr_acc)
    probe_path: str = ""  # MR's folder ("": $LNEDU_DATA/mr)
    downstream_folds: int = 10  # Figure 3 and Table 3: 10-fold cross-validation
    steps: int = 300
    eval_every: int = 30
    checkpoint_every: int = 100
    # learning rate per variant (the others use lr), chosen on validation by `python -m lnedu tune skip_thoughts`
    lr_by_variant: dict = field(default_factory=dict)


PRESETS = {
    "tiny": Config(dim=16, dim_word=8, vocab=200, max_len=10, batch_size=8, steps=30, eval_every=10,
                   checkpoint_every=10),
    # rates per variant, from `python -m lnedu tune skip_thoughts` (on validation; tuned/skip_thoughts-small.json)
    "small": Config(lr_by_variant={"gru": 0.005, "ln-gru": 0.005}),
    # about 30 minutes for 2 variants x 3 seeds, one after another (one BLAS thread): twice the small width, a
    # larger vocabulary, 5x the updates, the small preset's rates. Sized from 10 timed updates of each variant
    # (OPENBLAS_NUM_THREADS=1, on 2 shared cores): 0.17 s/update (gru), 0.20 (ln-gru), ~1.2 s an evaluation;
    # 6 runs x (1,500 x 0.19 s + 20 x 1.2 s) ~ 31 min.
    "medium": Config(dim=128, dim_word=64, vocab=1000, steps=1500, eval_every=75, checkpoint_every=300,
                     shared_output=True, lr_by_variant={"gru": 0.005, "ln-gru": 0.005}),
    # the LN paper (§6.3): Kiros et al.'s training code and sizes, 1M iterations, checkpoints (here: evaluations)
    # every 50,000. The rate: that code's train.py passes lrate = 0.01 to its Adam, which ignores the argument and
    # steps at lr0 = 0.0002 (training/optim.py), so 2e-4 is the rate the paper's runs used. BookCorpus is not
    # distributed any more: data="text" reads your copy (BOOKCORPUS_SET); the vectors are judged on MR (MR_SET).
    "paper": Config(dim=2400, dim_word=620, vocab=20_000, max_len=30, batch_size=64, lr=2e-4, data="text",
                    shared_output=True, downstream="mr", steps=1_000_000, eval_every=50_000, checkpoint_every=10_000),
}

SEEDS = {"tiny": (0, 1, 2), "small": (0, 1, 2), "medium": (0, 1, 2), "paper": (0, 1, 2)}

_DATA = {"pydoc": "Python's help topics (pydoc_data)", "text": "your book text, one sentence a line (BOOKCORPUS_SET)",
         "standin": "generated (timing only)"}

SETTINGS = (
    Setting("training text", "BookCorpus (§6.3)", lambda c: _DATA.get(c.data, c.data),
            differs="BookCorpus is no longer distributed by its authors: the preset reads the copy you give it"),
    Setting("encoder", "GRU, 2,400 units; LN-GRU Eq. 26-28 in the LN model (§6.3)", "dim"),
    Setting("decoders", "two GRUs (previous, next sentence), started from the encoder's state, no conditioning at "
            "each step (§6.3; Kiros's training code)", lambda c: "two GRUs from the encoder's final state"),
    Setting("output layer", "one softmax layer shared by both decoders (Kiros's training/model.py, ff_logit)",
            lambda c: "shared" if c.shared_output else "one for each decoder"),
    Setting("loss", "summed over the words and sentences of a batch (Kiros's training/model.py)",
            lambda c: "mean per word, the two decoders added", differs="the scale differs by the words in a batch; "
            "Adam's step does not depend on it, the gradient clip at 5 does (ours clips less often)"),
    Setting("word vectors", "620 (Kiros's train.py)", "dim_word"),
    Setting("vocabulary", "20,000 (Kiros's train.py)", "vocab"),
    Setting("sentence length", "under 30 words: a triple with a longer sentence is left out, and a batch's current "
            "sentences share one length (maxlen_w; Kiros's homogeneous_data.py)", "max_len",
            differs="we cut each sentence at max_len words and draw triples at random; the encoder masks the padding"),
    Setting("batch", "64 (Kiros's train.py)", "batch_size"),
    Setting("optimizer and rate", "Adam; 'same hyperparameters' as Kiros et al. (§6.3), whose code ignores its "
            "lrate = 0.01 and steps at 2e-4 (training/optim.py)",
            lambda c: f"Adam {c.lr:g}" + (" (per variant: " + ", ".join(f"{k} {v:g}" for k, v in
                                                                        c.lr_by_variant.items()) + ")"
                                          if c.lr_by_variant else "")),
    Setting("gradient clip (global norm)", "5 (Kiros's train.py)", "clip"),
    Setting("iterations", "1M; the † row about 1.7M, a month (§6.3)", "steps"),
    Setting("evaluations", "checkpoints every 50,000 iterations (§6.3), Figure 3 plots them", "eval_every"),
    Setting("downstream tasks", "SICK, MR, CR, SUBJ, MPQA (Table 3); 10-fold CV for the classification tasks "
            "(Figure 3)", lambda c: (f"MR, {c.downstream_folds}-fold CV; " if c.downstream == "mr" else "")
            + f"topic probe ({c.probe_topics} largest documents)",
            differs="MR only: SICK, CR, SUBJ and MPQA have no loader here"),
    Setting("linear model", "logistic regression, penalty chosen by inner 10-fold CV (Kiros's "
            "eval_classification.py)", lambda c: "ridge regression on one-hot targets, penalty chosen by inner "
            "CV (MR); fixed penalty (topic probe)", differs="closed-form ridge instead of logistic regression: "
            "no iterative solver at 2,400 features, same linear read-out"),
)
# ---------------------------------------------------------------------------------------------------------
# model


class SkipThoughts(Module):
    """An encoder and two decoders sharing one word embedding.

    Children: ``emb`` (:class:`Embedding`, ``W`` (V, dim_word)); ``enc`` (:class:`GRU` dim_word -> dim, gate order
    z, r; ``ln="appendix"`` for the LN-GRU); ``dec_prev``, ``dec_next`` (:class:`GRU` dim_word -> dim); the output
    layer: ``out`` (:class:`Linear`, ``W`` (dim, V)) shared by both decoders with ``shared_output=True`` (as
    Kiros et al.'s ``ff_logit``), else ``out_prev`` and ``out_next``. The encoder's state after the current
    sentence's last word is each decoder's initial state; a decoder reads ``<bos>`` and the target sentence and
    predicts the sentence followed by ``<eos>`` (teacher forcing).
    """

    def __init__(self, vocab_size, dim, dim_word, *, ln=None, shared_output=False, rng=None, dtype=np.float32):
        super().__init__()
        rng = np.random.default_rng(rng)
        self.shared_output = bool(shared_output)
        self.emb = self.add_module("emb", Embedding(vocab_size, dim_word, rng=rng, dtype=dtype))
        self.enc = self.add_module("enc", GRU(dim_word, dim, ln=ln, rng=rng, dtype=dtype))
        self.decs = [self.add_module(f"dec_{k}", GRU(dim_word, dim, rng=rng, dtype=dtype)) for k in ("prev", "next")]
        names = ("",) if self.shared_output else ("_prev", "_next")
        self.outs = [self.add_module(f"out{k}", Linear(dim, vocab_size, init="xavier", rng=rng, dtype=dtype))
                     for k in names]
        self._cache = None

    def encode(self, ids, mask):
        """Sentence vectors (B, dim): the encoder's final state over token ids (T, B) with mask (T, B)."""
        _, (h,) = self.enc.forward(self.emb.forward(ids), mask=mask)
        return h

    def forward(self, batch):
        """The loss (nats per word, the two decoders' mean losses added) of ``batch`` from :meth:`make_batch`."""
        ids, mask, B, targets = batch
        xp = get_array_module(self.emb.params["W"])
        x = self.emb.forward(ids)  # one lookup for the encoder's and both decoders' inputs, split on the batch axis
        _, (h,) = self.enc.forward(x[:, :B], mask=mask[:, :B])
        ys = [dec.forward(x[:, (k + 1) * B: (k + 2) * B], state=(h,), mask=mask[:, (k + 1) * B: (k + 2) * B])[0]
              for k, dec in enumerate(self.decs)]
        if self.shared_output:  # one product for both decoders' states, then each decoder's loss on its half
            logits = self.outs[0].forward(xp.concatenate(ys, axis=1))
            logits = [logits[:, :B], logits[:, B:]]
        else:
            logits = [out.forward(y) for out, y in zip(self.outs, ys)]
        loss, caches = 0.0, []
        for k in range(2):
            sl = slice((k + 1) * B, (k + 2) * B)
            lk, ck = F.softmax_cross_entropy(logits[k], targets[:, sl], mask[:, sl])
            loss += lk
            caches.append(ck)
        self._cache = (caches, x.shape, B)
        return loss

    def backward(self, dloss=1.0):
        caches, shape, B = self._cache
        xp = get_array_module(self.emb.params["W"])
        dlogits = [F.softmax_cross_entropy_backward(dloss, c) for c in caches]
        if self.shared_output:
            dy = self.outs[0].backward(xp.concatenate(dlogits, axis=1))
            dys = [dy[:, :B], dy[:, B:]]
        else:
            dys = [out.backward(d) for out, d in zip(self.outs, dlogits)]
        dx = xp.zeros(shape, dtype=self.emb.params["W"].dtype)
        dh = 0
        for k, dec in enumerate(self.decs):
            dxk, (dh0,) = dec.backward(dys[k])
            dx[:, (k + 1) * B: (k + 2) * B] = dxk
            dh = dh + dh0
        dx[:, :B], _ = self.enc.backward(None, (dh,))
        self.emb.backward(dx)

    def extra_repr(self):
        return f"shared_output={self.shared_output}"


# ---------------------------------------------------------------------------------------------------------
# data: sentences, triples, batches


@dataclass
class Corpus:
    """Documents of tokenized sentences, and which documents are held out for validation."""

    documents: list  # [(topic, [tokens, ...]), ...]
    valid: set  # indices of the held-out documents
    name: str
    description: str


_SENT_END = re.compile(r"(?<=[.?!:])\s+(?=[A-Z\"'(*])")


def split_sentences(text: str) -> list[str]:
    """The prose sentences of a help text: paragraphs of unindented lines (indented lines are code or grammar,
    rules of ``*``, ``=`` or ``-`` are underlines), split after ``.``, ``?``, ``!`` or ``:`` before a capital."""
    paras, cur = [], []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or line[0].isspace() or set(stripped) <= set("*=-"):
            if cur:
                paras.append(" ".join(cur))
                cur = []
            continue
        cur.append(stripped)
    if cur:
        paras.append(" ".join(cur))
    return [s for p in paras for s in _SENT_END.split(p) if s]


def pydoc_documents(*, max_overlap: float = 0.3) -> list:
    """Python's help topics as documents of tokenized sentences, ``[(topic, sentences), ...]``.

    Many topics repeat parts of larger ones ("try" is a section of "compound"), so topics are taken largest
    first and one is dropped when more than ``max_overlap`` of its sentences were already taken.
    """
    from pydoc_data.topics import topics

    docs = sorted(((k, split_sentences(topics[k])) for k in topics), key=lambda d: (-len(d[1]), d[0]))
    seen, out = set(), []
    for key, sents in docs:
        if len(sents) < 3 or sum(s in seen for s in sents) > max_overlap * len(sents):
            continue
        seen.update(sents)
        out.append((key, [tokenize(s) for s in sents]))
    return out


def load_sentences(path) -> list:
    """A plain text file (or a folder of them) of sentences, one a line; a blank line ends a document (a book,
    say). :func:`lnedu.data.sentences.load_sentence_text`, kept under its first name."""
    return load_sentence_text(path)


def standin_documents(vocab: int, max_len: int, *, n_docs: int = 40, seed: int = 0) -> list:
    """Generated documents of the real corpus's shapes, for timing only: ``max_len``-word sentences of ``vocab``
    made-up words drawn uniformly (enough of them that every word occurs), nothing to learn."""
    rng = np.random.default_rng([int(seed), 0x57A])
    n_sent = max(2000, 12 * int(vocab) // max(1, int(max_len)))
    per = -(-n_sent // n_docs)
    words = np.array([f"w{i}" for i in range(int(vocab))])
    return [(f"standin{d}", [list(words[rng.integers(len(words), size=int(max_len))]) for _ in range(per)])
            for d in range(n_docs)]


@functools.lru_cache(maxsize=2)
def load_corpus(source: str = "pydoc", path: str = "", standin_shape: tuple = (600, 16)) -> Corpus:
    """The documents, with every 8th (from the 4th on) held out for the validation loss. ``source``: "pydoc"
    (embedded), "text" (the real corpus at ``path``, else the cache; refused with :data:`BOOKCORPUS_SET`'s
    message when absent) or "standin" (:func:`standin_documents` of ``standin_shape`` = (vocab, max_len))."""
    if source not in ("pydoc", "text", "standin"):
        raise ValueError(f"source: expected 'pydoc', 'text' or 'standin', got {source!r}")
    if path and source != "text":  # a file named is that text, never the embedded one instead
        raise ValueError(f"data_path: expected no path with data={source!r}, which reads no file, got {path!r} "
                         "(data='text' reads a book text: --set data=text)")
    if source == "text":
        docs = load_sentence_text(path)
        name, what = "text", f"sentences from {path or 'the cache'}"
    elif source == "standin":
        docs = standin_documents(*standin_shape)
        name, what = "standin", "generated sentences of the real corpus's shapes (timing only)"
    else:
        import sys

        docs = pydoc_documents()
        name = "pydoc"
        what = f"Python {sys.version_info[0]}.{sys.version_info[1]}'s help topics (pydoc_data, embedded default)"
    valid = set(range(3, len(docs), 8))
    if not valid:
        raise ValueError(f"{source}: expected at least 4 documents (every 8th from the 4th is held out), got "
                         f"{len(docs)}")
    n = sum(len(d[1]) for d in docs)
    return Corpus(docs, valid, name, f"{what}: {len(docs)} documents, {n:,} sentences")


def _triples(docs, which):
    """(previous, current, next) sentence triples of the documents ``which``."""
    return [(s[i - 1], s[i], s[i + 1]) for d in which for s in [docs[d][1]] for i in range(1, len(s) - 1)]


def make_batch(triples, vocab: WordVocab, max_len: int):
    """``(ids (T, 3B), mask (T, 3B), B, targets (T, 3B))``: columns ``0..B-1`` the current sentences (the encoder's
    input), then ``<bos>`` + previous sentence and ``<bos>`` + next sentence (the decoders' inputs); ``targets``
    holds, in the decoders' columns, each sentence followed by ``<eos>`` (``T`` fits the longest)."""
    bos, eos = vocab["<bos>"], vocab["<eos>"]
    cur = [vocab.encode(t[1][:max_len]) or [1] for t in triples]
    dec_in, dec_out = [], []
    for k in (0, 2):
        for t in triples:
            words = vocab.encode(t[k][:max_len])
            dec_in.append([bos, *words])
            dec_out.append([*words, eos])
    ids, mask = pad_batch(cur + dec_in)
    tgt, _ = pad_batch([[0]] * len(cur) + dec_out)
    if tgt.shape[0] < ids.shape[0]:
        tgt = np.pad(tgt, ((0, ids.shape[0] - tgt.shape[0]), (0, 0)))
    return ids, mask, len(triples), tgt[: ids.shape[0]]


def _corpus(config):
    return load_corpus(config.data, config.data_path, (config.vocab, config.max_len))


@functools.lru_cache(maxsize=4)
def _vocab(source, path, size, max_len):
    corpus = load_corpus(source, path, (size, max_len))
    train = [s for d, (_, sents) in enumerate(corpus.documents) if d not in corpus.valid for s in sents]
    return WordVocab.build(train, max_size=size, specials=("<bos>", "<eos>"))


# ---------------------------------------------------------------------------------------------------------
# task


def _standardize(f_train, *others):
    f_train = np.asarray(f_train, dtype=np.float64)
    mu, sd = f_train.mean(0), f_train.std(0) + 1e-8
    return [np.hstack([(np.asarray(f, dtype=np.float64) - mu) / sd, np.ones((len(f), 1))]) for f in (f_train, *others)]


def ridge_probe(f_train, y_train, f_test, y_test, *, ridge: float = 10.0, classes: int | None = None) -> float:
    """Accuracy of a linear classifier by ridge regression on one-hot targets (closed form), fit on standardized
    ``f_train`` (N, D) and applied to ``f_test``: ``W = (X^T X + ridge I)^{-1} X^T Y``, predict ``argmax x W``."""
    X, Xt = _standardize(f_train, f_test)
    C = int(classes or max(y_train.max(), y_test.max()) + 1)
    Y = np.eye(C)[y_train]
    W = np.linalg.solve(X.T @ X + ridge * np.eye(X.shape[1]), X.T @ Y)
    return float(((Xt @ W).argmax(1) == y_test).mean())


RIDGES = (0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0)  # the penalties cv_accuracy chooses among (our grid)


def _ridge_accuracies(f_train, y_train, f_test, y_test, ridges, classes):
    """Test accuracy of :func:`ridge_probe`'s classifier for each penalty in ``ridges``, from one eigendecomposition
    of ``X^T X``: ``W_r = Q diag(1 / (e + r)) Q^T X^T Y``."""
    X, Xt = _standardize(f_train, f_test)
    e, Q = np.linalg.eigh(X.T @ X)
    QtXtY = Q.T @ (X.T @ np.eye(classes)[y_train])
    return [float(((Xt @ (Q @ (QtXtY / (e + r)[:, None]))).argmax(1) == y_test).mean()) for r in ridges]


def cv_accuracy(features, labels, *, folds: int = 10, ridges=RIDGES, seed: int = 1234) -> float:
    """Mean test accuracy of a linear classifier over ``folds``-fold cross-validation (Figure 3 and Table 3's
    protocol for MR, CR, SUBJ, MPQA), nested as in Kiros et al.'s ``eval_classification.py``: in each outer fold
    the penalty is chosen among ``ridges`` by an inner ``folds``-fold cross-validation on the training part only,
    then the classifier is fit on the whole training part and scored on the held-out fold. The classifier is
    :func:`ridge_probe`'s (closed-form ridge regression on standardized features; theirs: logistic regression).
    The examples are shuffled first by a generator seeded with ``seed``."""
    features, labels = np.asarray(features), np.asarray(labels)
    if features.ndim != 2 or len(features) != len(labels):
        raise ValueError(f"features: expected an (N, D) array with N = len(labels) = {len(labels)}, got shape "
                         f"{features.shape}")
    if isinstance(folds, bool) or not isinstance(folds, int) or not 2 <= folds <= len(labels) // 2:
        raise ValueError(f"folds: expected an integer in [2, {len(labels) // 2}], got {folds!r}")
    classes = int(labels.max()) + 1
    outer = np.array_split(np.random.default_rng(seed).permutation(len(labels)), folds)
    scores = []
    for k, test in enumerate(outer):
        train = np.concatenate([f for j, f in enumerate(outer) if j != k])
        inner = np.array_split(train, folds)
        accs = []
        for held in inner:
            fit = np.setdiff1d(train, held)
            accs.append(_ridge_accuracies(features[fit], labels[fit], features[held], labels[held], ridges, classes))
        best = ridges[int(np.argmax(np.mean(accs, axis=0)))]
        scores.append(_ridge_accuracies(features[train], labels[train], features[test], labels[test], [best],
                                        classes)[0])
    return float(np.mean(scores))


class SkipThoughtTask(CheckpointedTask):
    """Train :class:`SkipThoughts` on random triples of consecutive training sentences.

    A batch is drawn by a generator seeded with ``(seed, step)``. ``evaluate`` logs ``train_loss`` (a fixed
    set of training triples), ``valid_loss`` (the held-out documents' triples) and ``probe_acc`` (the topic
    probe's held-out accuracy), with the model in eval mode; with ``downstream`` = ``(sentences, labels)`` (MR),
    also ``mr_acc``, its :func:`cv_accuracy` on the frozen encoder states.
    """

    def __init__(self, model, optimizer, corpus: Corpus, vocab, config: Config, seed: int, downstream=None):
        self.model, self.opt, self.corpus, self.vocab, self.config = model, optimizer, corpus, vocab, config
        self.seed, self.t = int(seed), 0
        self.downstream = downstream
        self.examples_per_update = config.batch_size  # sentence triples
        self.schedule_from(config)
        docs = corpus.documents
        self.train = _triples(docs, [d for d in range(len(docs)) if d not in corpus.valid])
        fixed = np.random.default_rng(0x57)  # not the seed: every run is scored on the same sentences
        self._eval_train = [self.train[i] for i in fixed.permutation(len(self.train))[:256]]
        self._eval_valid = _triples(docs, sorted(corpus.valid))[:256]
        # the probe: distinct sentences of the largest topics, labelled by topic, split in half
        big = sorted(range(len(docs)), key=lambda d: -len(docs[d][1]))[: config.probe_topics]
        seen, sents, labels = set(), [], []
        for label, d in enumerate(big):
            for s in docs[d][1]:
                if len(s) >= 3 and tuple(s) not in seen:
                    seen.add(tuple(s))
                    sents.append(s)
                    labels.append(label)
        order = fixed.permutation(len(sents))
        half = len(order) // 2
        self._probe = {"train": ([sents[i] for i in order[:half]], np.array(labels)[order[:half]]),
                       "test": ([sents[i] for i in order[half:]], np.array(labels)[order[half:]])}
        self.probe_topics = [docs[d][0] for d in big]

    def _loss(self, triples):
        ids, mask, B, tgt = make_batch(triples, self.vocab, self.config.max_len)
        return self.model.forward((backend.asarray(ids), backend.asarray(mask), B, backend.asarray(tgt)))

    def _batch(self, t):
        rng = np.random.default_rng([self.seed, t, 0x5C1])
        return [self.train[i] for i in rng.choice(len(self.train), self.config.batch_size, replace=False)]

    def padded_length(self, updates: int = 8) -> float:
        """The mean padded length ``T`` (time steps of the encoder and of each decoder) of the first batches."""
        return float(np.mean([make_batch(self._batch(t), self.vocab, self.config.max_len)[0].shape[0]
                              for t in range(updates)]))

    def flops_per_update(self, length: float | None = None) -> float:
        """Matrix-product FLOPs of one update (a multiply-add = 2), forward + backward = 3 x the forward's. A batch
        pads the encoder's and both decoders' inputs to one length ``T``, so the forward is, per sentence and
        step, ``3 x 2 x 3H (dim_word + H)`` for the three GRUs' input and recurrent products plus
        ``2 x 2 H V`` for the two output layers (``V`` the vocabulary). ``T``: ``length``, or the mean padded
        length of the first batches (:meth:`padded_length`). Not counted: softmax, normalizations, lookups."""
        T = self.padded_length() if length is None else float(length)
        B, H, E, V = self.config.batch_size, self.config.dim, self.config.dim_word, len(self.vocab)
        return 3.0 * B * T * (3 * 2 * 3 * H * (E + H) + 2 * 2 * H * V)

    def step(self) -> dict:
        batch = self._batch(self.t)
        self.model.train()
        loss = self._loss(batch)
        self.opt.zero_grad()
        self.model.backward(1.0)
        self.opt.step()
        self.t += 1
        return {"loss": loss, "grad_norm": self.opt.last_grad_norm}

    def features(self, sentences, batch: int = 256):
        """Encoder states (N, dim) of tokenized sentences, as a host array."""
        out = []
        for a in range(0, len(sentences), batch):
            ids, mask = pad_batch([self.vocab.encode(s[: self.config.max_len]) for s in sentences[a: a + batch]])
            out.append(to_numpy(self.model.encode(backend.asarray(ids), backend.asarray(mask))))
        return np.concatenate(out)

    def evaluate(self) -> dict:
        self.model.eval()
        out = {"train_loss": float(np.mean([self._loss(self._eval_train[a: a + 64])
                                            for a in range(0, len(self._eval_train), 64)])),
               "valid_loss": float(np.mean([self._loss(self._eval_valid[a: a + 64])
                                            for a in range(0, len(self._eval_valid), 64)]))}
        (s_tr, y_tr), (s_te, y_te) = self._probe["train"], self._probe["test"]
        out["probe_acc"] = ridge_probe(self.features(s_tr), y_tr, self.features(s_te), y_te,
                                       ridge=self.config.probe_ridge, classes=self.config.probe_topics)
        if self.downstream is not None:
            sents, labels = self.downstream
            out["mr_acc"] = cv_accuracy(self.features(sents), labels, folds=self.config.downstream_folds)
        if due(self.t, self.steps, self.eval_every):  # per-time-step statistics: encoder and decoders, 64 triples
            out.update(stats_record(self.model, lambda: self._loss(self._eval_valid[:64])))
        self.model.train()
        return out


# ---------------------------------------------------------------------------------------------------------
# build


def build(config: Config, variant: str, seed: int) -> SkipThoughtTask:
    if variant not in VARIANTS:
        raise ValueError(f"variant: expected one of {VARIANTS}, got {variant!r}")
    if config.downstream not in ("", "mr"):
        raise ValueError(f"downstream: expected '' or 'mr', got {config.downstream!r}")
    downstream = _mr(config.probe_path) if config.downstream == "mr" else None  # refused first if missing
    corpus = _corpus(config)
    vocab = _vocab(config.data, config.data_path, config.vocab, config.max_len)
    model = SkipThoughts(len(vocab), config.dim, config.dim_word, ln="appendix" if variant == "ln-gru" else None,
                         shared_output=config.shared_output, rng=seed)
    if backend.current() != "numpy":
        model.to_backend()
    opt = optim.Adam(model, lr=lr_for(config, variant), clip=config.clip)
    return SkipThoughtTask(model, opt, corpus, vocab, config, seed, downstream)


@functools.lru_cache(maxsize=1)
def _mr(path):
    return load_mr(path)


def standin(config: Config) -> Config:
    """``config`` on generated sentences of the real corpus's shapes (its vocabulary and sentence length; see
    :func:`standin_documents`) and without the downstream set, for measuring a paper-size update without data."""
    return dataclasses.replace(config, data="standin", data_path="", downstream="")


# ---------------------------------------------------------------------------------------------------------
# verdict

PAPER_NUMBERS = ("Table 3 (SICK r / MR / CR / SUBJ / MPQA): ours 0.842/77.3/81.8/92.6/87.9, ours + LN "
                 "0.854/79.5/82.6/93.4/89.0 (LN §6.3); not comparable with a topic probe")
LEARN_MARGIN = 0.1  # "not tested" guard: an arm's mean train loss must fall 0.1 nats/word below its first value
PROBE_MARGIN = 1.0  # "at least as good": LN's probe accuracy no more than 1 point below the GRU's


def _final(results, variant, key):
    return float(np.mean([r.eval[-1][key] for r in results[variant]]))


def _probe_key(results) -> tuple:
    """The representation measure: MR's cross-validated accuracy when every run logged it, else the topic probe."""
    if all("mr_acc" in r.eval[-1] for runs in results.values() for r in runs):
        return "mr_acc", "MR accuracy (10-fold CV)"
    return "probe_acc", "topic-probe accuracy"


def verdict(results) -> Verdict:
    """Two parts over per-seed figures paired by seed (:func:`lnedu.experiments.verdicts.compare`):
    (1) "trains faster": the LN-GRU model reaches the common train-loss target (fixed training triples, see
    :func:`~lnedu.experiments.verdicts.speed`) in fewer updates (and seconds, where logged) than the GRU model;
    (2) "representations at least as good": LN's final probe accuracy plus 1 point is above the GRU's beyond the
    noise (non-inferiority); the probe is MR (10-fold CV, Table 3's protocol) where the runs logged it, else the
    topic probe. Not tested if an arm's train loss never fell 0.1 nats/word below its first value."""
    if not {"gru", "ln-gru"} <= set(results):
        return V.Verdict(None, "needs gru and ln-gru", "", outcome=V.UNDECIDED)
    key, what = _probe_key(results)
    loss = {v: V.per_seed(results[v], V.final("train_loss")) for v in ("gru", "ln-gru")}
    acc = {v: V.per_seed(results[v], V.final(key, 100)) for v in ("gru", "ln-gru")}
    acc0 = 100 * float(np.mean([r.eval[0][key] for v in results for r in results[v]]))
    fig = ("final train loss (nats/word, prev + next decoders): "
           + ", ".join(f"{v} {V.arm_figure(loss[v])}" for v in loss) + f"; {what} "
           + ", ".join(f"{v} {V.arm_figure(acc[v], '.1f', '%')}" for v in acc) + f" (untrained encoders {acc0:.1f}%)")
    if key == "mr_acc":
        note = "MR only of Table 3's tasks, with a ridge read-out instead of logistic regression"
    else:
        note = ("a small model on a small corpus (see the settings table), judged by one topic probe, not a "
                "2400-unit model on BookCorpus judged on SICK, MR, CR, SUBJ and MPQA")
    axis = "updates (and seconds) to a train-loss target; probe accuracy within 1 point"
    for v in ("gru", "ln-gru"):
        ok, why = V.learned(results[v], "train_loss", margin=LEARN_MARGIN)
        if not ok:
            return V.Verdict.of([V.not_tested("both arms learned", "train loss", v, v, {v: loss[v]}, f"{v}: {why}")],
                                fig, note, axis=axis, arms=loss)
    sp = V.speed(results, ("ln-gru", "gru"), "train_loss")
    parts = V.speed_parts(sp, "ln-gru", "gru", f"LN-GRU trains faster ({sp.target_text()})")
    slack = {s: x + PROBE_MARGIN for s, x in acc["ln-gru"].items()}
    parts.append(V.compare(f"LN-GRU's representations at least as good (within {PROBE_MARGIN:g} point)",
                           f"{what} plus {PROBE_MARGIN:g} (%)", "ln-gru", slack, "gru", acc["gru"],
                           better="higher", fmt=".1f"))
    return V.Verdict.of(parts, fig, note, axis=axis, arms=loss)


def describe(results) -> str:
    """Markdown for the notebook: the verdict, each part with mean ± sd (n) and the per-seed values."""
    return V.describe_parts(verdict(results), paper=PAPER_NUMBERS)


# ---------------------------------------------------------------------------------------------------------
# plot


def plot(results):
    """Training loss (left; the fixed training triples) and topic-probe accuracy (middle) against iterations, and
    MR's cross-validated accuracy (right; Figure 3's measure) where the runs logged it: mean of the seeds (line)
    and their range (band)."""
    import matplotlib.pyplot as plt

    panels = [("train_loss", "train loss (nats/word)"), ("probe_acc", "topic-probe accuracy")]
    if _probe_key(results)[0] == "mr_acc":
        panels.append(("mr_acc", "MR accuracy (10-fold CV)"))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.4))
    for ax, (key, label) in zip(axes, panels):
        for variant, runs in results.items():
            plot_band(ax, *seed_curves(runs, key), color=COLORS.get(variant, "k"), label=variant)
        ax.set_xlabel("iterations")
        ax.set_ylabel(label)
    axes[0].legend(frameon=False, fontsize="small")
    fig.tight_layout()
    return fig
