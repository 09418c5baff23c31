"""Cloze questions with anonymized entities: a generator that keeps the CNN task's structure, and a reader for
the DeepMind CNN ``.question`` files.

Hermann et al. (2015, "Teaching machines to read and comprehend") turned news articles into questions: a
*document*, a *query* (a summary sentence with one entity replaced by ``@placeholder``) and the *answer*, that
entity. Every entity is replaced by an anonymous marker ``@entity0``, ``@entity1``, ... numbered afresh in each
document, so a model cannot answer from what it knows about "Obama"; it has to read. The candidates are the
entities that occur in the document.

**The generator** (:func:`generate_cloze`, :func:`load_generated_cloze`) writes short documents of templated
facts, ``"@entity3 works for @entity7 ."``, and asks about one of them, ``"@entity3 works for @placeholder"``.
Each document also holds a *mirror* fact with the same relation and the query's entity on the other side,
``"@entity1 works for @entity3 ."``, and filler facts. A bag of words cannot tell the answer (7) from the
mirror's other entity (1): both share a sentence with ``@entity3`` and ``works for``. Only word order separates
them, so a bag-of-words reader gets about half of these right (:func:`bag_of_words_accuracy`), while every
question has exactly one answer that a reader who follows the order finds (:func:`rule_reader`). Entity
numbers are drawn afresh for every document, as in the CNN data. Everything is a function of the seed.

**The reader** (:func:`read_question`, :func:`load_cnn_questions`) parses the released format (:data:`CNN_SET`):
one question per file, the lines being the article's URL, a blank line, the context, a blank, the query, a
blank, the answer, a blank, then the entity mapping, one ``@entityN:name`` per line; the files sit in
``training/``, ``validation/`` and ``test/`` folders (``cnn/questions/training/*.question`` in DeepMind's
``cnn.tgz``). The data are not downloaded here (their licence is the articles'); pass the folder of your copy
(:func:`write_question` writes the format, for tests and small hand-made sets).

**The "top 4" passages.** Cooijmans et al. (2017, "Recurrent Batch Normalization", Appendix C) read only "the 4
most relevant sentences from the description, as identified by a string matching procedure", for training and
validation alike, and note that this "sometimes strips the answers from the passage, putting an upper bound of
57% on the validation accuracy". Their procedure is not published; :func:`top_sentences` is our reading of it:
each sentence scores the number of distinct query words (``@placeholder`` aside) it contains, the ``k`` best
are kept (ties: the earlier sentence) in document order. Questions whose answer was stripped are kept
(:meth:`ClozeSet.answerable` marks them), as they were in the papers' data.

**The stand-in** (:func:`generate_standin`) has the real set's shapes and nothing else (random words): it
lets ``python -m lnedu run attentive_reader --preset paper --plan`` time a paper-size update without the files.

Both return :class:`ClozeSet` arrays (batch-major, padded) whose :meth:`ClozeSet.batch` gives time-major
mini-batches for the recurrent layers. Token ids: ``@entity0`` .. ``@entity{K-1}`` are ids ``0 .. K-1``, so an
answer's id is its class in a K-way output; then ``<pad>``, ``<unk>``, ``@placeholder`` and the words.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .download import DataCorrupt, RealDataSet, cache_dir, damaged

__all__ = [
    "ClozeSet",
    "ClozeCorpus",
    "ClozeVocab",
    "RELATIONS",
    "generate_cloze",
    "load_generated_cloze",
    "bag_of_words_accuracy",
    "rule_reader",
    "read_question",
    "write_question",
    "split_sentences",
    "top_sentences",
    "load_cnn_questions",
    "find_cnn_questions",
    "generate_standin",
    "CNN_SET",
    "CNN_SHAPES",
]

PAD, UNK, PLACEHOLDER = "<pad>", "<unk>", "@placeholder"
# entity ids a question file may use: the vocabulary holds one row per id up to the largest seen, so a file's
# "@entity99999999999" would otherwise allocate 10^11 of them. The anonymized CNN / Daily Mail files number
# their entities per document (ids in the hundreds); 10,000 leaves ample room.
MAX_ENTITY_ID = 9_999

# the DeepMind Q&A CNN questions the `paper` preset needs (refused, never replaced by generated ones, when absent)
CNN_SET = RealDataSet(
    name="cnn",
    what="the DeepMind Q&A CNN questions (Hermann et al. 2015: 380,298 training / 3,924 validation .question files)",
    source="Hermann et al., 'Teaching machines to read and comprehend' (NIPS 2015): the questions at "
           "https://cs.nyu.edu/~kcho/DMQA/, built by https://github.com/deepmind/rc-data",
    get="a manual download of the CNN questions (cnn.tgz) from the DMQA page, unpacked into $LNEDU_DATA/cnn (the "
        "articles' licence applies)",
    files="training/ and validation/ folders (optionally under questions/) of .question files: URL, blank, "
          "context, blank, query with @placeholder, blank, answer @entityN, blank, @entityN:name lines",
)

# the shapes of Cooijmans et al.'s top-4 CNN data, for the stand-in that times a paper-size update:
# vocabulary 65,829 words (RBN Appendix C); entity ids up to 527 per document (Hermann et al. 2015, Table 1:
# "max # entities 527"); 4 sentences of ~25 tokens (Table 1's 762 tokens per document over ~30 sentences: an
# estimate, derived here); a CNN query is ~13 tokens (derived here, approximate).
CNN_SHAPES = {"vocab": 65_829, "entities": 528, "doc_len": 100, "query_len": 13}

# two words each, so every generated sentence has the same length: entity, relation, entity, "."
RELATIONS = ("works for", "lives near", "spoke to", "voted for", "sold to", "wrote to", "argued with", "waited for")


class ClozeVocab:
    """Token <-> id: entities first (``@entityK`` is id K), then ``<pad>``, ``<unk>``, ``@placeholder``, words."""

    def __init__(self, n_entities: int, words=()):
        if isinstance(n_entities, bool) or not isinstance(n_entities, (int, np.integer)) or n_entities < 2:
            raise ValueError(f"n_entities: expected an integer >= 2, got {n_entities!r}")
        self.n_entities = int(n_entities)
        self.tokens = [f"@entity{k}" for k in range(self.n_entities)] + [PAD, UNK, PLACEHOLDER]
        self.tokens += [w for w in words if w not in self.tokens[self.n_entities:]]
        self.index = {t: i for i, t in enumerate(self.tokens)}
        self.pad, self.unk, self.placeholder = (self.index[t] for t in (PAD, UNK, PLACEHOLDER))

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, tokens) -> np.ndarray:
        unk = self.unk
        return np.array([self.index.get(t, unk) for t in tokens], dtype=np.int64)

    def decode(self, ids) -> str:
        return " ".join(self.tokens[int(i)] for i in ids if int(i) != self.pad)


@dataclass
class ClozeSet:
    """Questions as padded integer arrays (batch-major).

    ``docs`` (N, T_d) and ``queries`` (N, T_q): token ids padded with the vocabulary's pad id; ``doc_len``,
    ``query_len`` (N,): their real lengths; ``answers`` (N,): the answer's entity number (its token id);
    ``candidates`` (N, K) bool: which entities occur in each document.
    """

    docs: np.ndarray
    doc_len: np.ndarray
    queries: np.ndarray
    query_len: np.ndarray
    answers: np.ndarray
    candidates: np.ndarray

    def __len__(self) -> int:
        return len(self.answers)

    def answerable(self) -> np.ndarray:
        """(N,) bool: whether each question's answer occurs in its (kept) document."""
        return self.candidates[np.arange(len(self)), self.answers]

    def subset(self, idx) -> ClozeSet:
        """Questions ``idx`` (indices or a bool mask) as a new set."""
        idx = np.asarray(idx)
        return ClozeSet(self.docs[idx], self.doc_len[idx], self.queries[idx], self.query_len[idx], self.answers[idx],
                        self.candidates[idx])

    def batch(self, idx):
        """Questions ``idx`` for the model, time-major and trimmed to the batch's longest document and query:
        ``(doc (T_d, B), doc_mask (T_d, B) bool, query (T_q, B), query_mask (T_q, B), answers (B,),
        candidates (B, K))``."""
        idx = np.asarray(idx)
        dl, ql = self.doc_len[idx], self.query_len[idx]
        td, tq = int(dl.max()), int(ql.max())
        doc = np.ascontiguousarray(self.docs[idx, :td].T)
        query = np.ascontiguousarray(self.queries[idx, :tq].T)
        doc_mask = np.arange(td)[:, None] < dl[None, :]
        query_mask = np.arange(tq)[:, None] < ql[None, :]
        return doc, doc_mask, query, query_mask, self.answers[idx], self.candidates[idx]


@dataclass
class ClozeCorpus:
    """A training and a validation :class:`ClozeSet` with their vocabulary, and a line saying which data it is."""

    train: ClozeSet
    valid: ClozeSet
    vocab: ClozeVocab
    description: str


def _pack(vocab: ClozeVocab, questions, *, answer_in_doc: bool = True) -> ClozeSet:
    """``questions``: (doc tokens, query tokens, answer entity number) triples -> a :class:`ClozeSet`.
    ``answer_in_doc``: refuse a question whose answer is not among its document's entities."""
    K = vocab.n_entities
    docs = [vocab.encode(d) for d, _, _ in questions]
    queries = [vocab.encode(q) for _, q, _ in questions]
    n = len(questions)
    td, tq = max((len(d) for d in docs), default=1), max((len(q) for q in queries), default=1)
    D = np.full((n, td), vocab.pad, dtype=np.int64)
    Q = np.full((n, tq), vocab.pad, dtype=np.int64)
    cand = np.zeros((n, K), dtype=bool)
    for i, (d, q) in enumerate(zip(docs, queries)):
        D[i, : len(d)] = d
        Q[i, : len(q)] = q
        ents = d[d < K]
        cand[i, ents] = True
    answers = np.array([a for _, _, a in questions], dtype=np.int64)
    if answer_in_doc and n and not cand[np.arange(n), answers].all():
        bad = int(np.flatnonzero(~cand[np.arange(n), answers])[0])
        raise ValueError(f"questions: expected every answer among its document's entities; question {bad} is not")
    return ClozeSet(D, np.array([len(d) for d in docs], dtype=np.int64), Q,
                    np.array([len(q) for q in queries], dtype=np.int64), answers, cand)


# ---------------------------------------------------------------------------------------------------------
# the generator


def _sentence(a: int, rel: str, b: int) -> list[str]:
    return [f"@entity{a}", *rel.split(), f"@entity{b}", "."]


def _one_question(rng: np.random.Generator, n_entities: int, n_sentences: int):
    """A document of ``n_sentences`` facts, a query about one of them, and its answer (an entity number)."""
    ents = rng.permutation(n_entities)  # this document's anonymous names
    known, answer, mirror = (int(e) for e in ents[:3])
    pool = [int(e) for e in ents[: min(n_entities, 3 + max(n_sentences - 2, 0))]]
    rel = RELATIONS[rng.integers(len(RELATIONS))]
    ask_object = bool(rng.integers(2))
    if ask_object:  # "known rel @placeholder": the answer is an object of `known`
        facts = [(known, rel, answer), (mirror, rel, known)]
    else:  # "@placeholder rel known": the answer is a subject of `known`
        facts = [(answer, rel, known), (known, rel, mirror)]
    while len(facts) < n_sentences:
        a, b = (int(e) for e in rng.choice(pool, 2, replace=False))
        r = RELATIONS[rng.integers(len(RELATIONS))]
        answers_query = r == rel and ((ask_object and a == known) or (not ask_object and b == known))
        if not answers_query and (a, r, b) not in facts:
            facts.append((a, r, b))
    order = rng.permutation(len(facts))
    doc = [tok for i in order for tok in _sentence(*facts[i])]
    query = [f"@entity{known}", *rel.split(), PLACEHOLDER] if ask_object else \
        [PLACEHOLDER, *rel.split(), f"@entity{known}"]
    return doc, query, answer


def _generator_vocab(n_entities: int) -> ClozeVocab:
    words = sorted({w for r in RELATIONS for w in r.split()}) + ["."]
    return ClozeVocab(n_entities, words)


def generate_cloze(n: int, *, n_entities: int = 20, n_sentences: int = 4, seed=0) -> tuple[ClozeSet, ClozeVocab]:
    """``n`` generated questions and their vocabulary; a function of ``(n, n_entities, n_sentences, seed)``.

    Each document has ``n_sentences`` (>= 2) facts ``@entityA <relation> @entityB .`` over at most
    ``n_sentences + 1`` of the ``n_entities`` anonymous names (drawn afresh per document): the asked fact,
    its mirror (same relation, the query's entity on the other side) and fillers that never answer the query.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n: expected a positive integer, got {n!r}")
    if isinstance(n_sentences, bool) or not isinstance(n_sentences, (int, np.integer)) or n_sentences < 2:
        raise ValueError(f"n_sentences: expected an integer >= 2 (the asked fact and its mirror), got {n_sentences!r}")
    if isinstance(n_entities, bool) or not isinstance(n_entities, (int, np.integer)) or n_entities < 4:
        raise ValueError(f"n_entities: expected an integer >= 4, got {n_entities!r}")
    vocab = _generator_vocab(int(n_entities))
    rng = np.random.default_rng(seed)
    questions = [_one_question(rng, int(n_entities), int(n_sentences)) for _ in range(int(n))]
    return _pack(vocab, questions), vocab


def load_generated_cloze(n_train: int = 5000, n_valid: int = 1000, *, n_entities: int = 20, n_sentences: int = 4,
                         seed: int = 0) -> ClozeCorpus:
    """Generated training and validation questions (separate random streams of ``seed``) as a :class:`ClozeCorpus`."""
    train, vocab = generate_cloze(n_train, n_entities=n_entities, n_sentences=n_sentences, seed=[int(seed), 0])
    valid, _ = generate_cloze(n_valid, n_entities=n_entities, n_sentences=n_sentences, seed=[int(seed), 1])
    desc = (f"generated cloze questions (embedded default): {n_sentences} facts per document, {n_entities} "
            f"anonymous entities, {len(train)} train / {len(valid)} validation")
    return ClozeCorpus(train, valid, vocab, desc)


def _sentences(ids: np.ndarray, stop: int) -> list[np.ndarray]:
    cut = np.flatnonzero(ids == stop)
    return [s for s in np.split(ids, cut + 1) if len(s)]


def bag_of_words_accuracy(data: ClozeSet, vocab: ClozeVocab, *, seed: int = 0) -> float:
    """Accuracy of a reader that ignores word order: each candidate scores the largest number of query words
    that share a sentence with it (sentences end at ``"."``), and the best score wins (ties broken at random)."""
    rng = np.random.default_rng(seed)
    stop = vocab.index.get(".", -1)
    K, correct = vocab.n_entities, 0
    for i in range(len(data)):
        doc = data.docs[i, : data.doc_len[i]]
        q = set(data.queries[i, : data.query_len[i]].tolist()) - {vocab.placeholder}
        score = np.full(K, -1)
        for sent in _sentences(doc, stop):
            words = set(sent.tolist())
            for e in words:
                if e < K:
                    score[e] = max(score[e], len((words - {e}) & q))
        best = np.flatnonzero(score == score.max())
        correct += int(rng.choice(best) == data.answers[i])
    return correct / len(data)


def rule_reader(data: ClozeSet, vocab: ClozeVocab) -> np.ndarray:
    """The answers a reader that follows word order gives to generated questions: the entity that fills the
    placeholder's slot in a sentence matching the query's other words exactly; -1 where no single one does."""
    stop = vocab.index["."]
    out = np.full(len(data), -1, dtype=np.int64)
    for i in range(len(data)):
        q = data.queries[i, : data.query_len[i]]
        slot = int(np.flatnonzero(q == vocab.placeholder)[0])
        found = set()
        for sent in _sentences(data.docs[i, : data.doc_len[i]], stop):
            body = sent[:-1] if sent[-1] == stop else sent
            if len(body) == len(q) and all(body[j] == q[j] for j in range(len(q)) if j != slot):
                found.add(int(body[slot]))
        if len(found) == 1:
            out[i] = found.pop()
    return out


# ---------------------------------------------------------------------------------------------------------
# the DeepMind CNN / Daily Mail question files


def _entity_id(token: str):
    """``"@entity12"`` -> 12; ``None`` for any other token."""
    return int(token[7:]) if token.startswith("@entity") and token[7:].isdigit() else None


def read_question(path) -> dict:
    """One ``.question`` file: ``{"url", "context", "query", "answer", "entities"}``; the context and query as
    token lists, the answer as a token (``"@entity12"``), ``entities`` mapping ``"@entityN"`` to its name.

    Refused, in one line naming the file: text that is not UTF-8, a missing block, an answer that is not an
    ``@entityN`` token, and entity ids above ``MAX_ENTITY_ID`` (each id costs a vocabulary row)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise damaged(path, f"expected utf-8 text, got byte 0x{exc.object[exc.start]:02x} at offset {exc.start}") \
            from exc
    blocks = text.split("\n\n")
    if len(blocks) < 4:
        raise DataCorrupt(f"path: expected URL, context, query and answer separated by blank lines in {path}, "
                          f"got {len(blocks)} block(s)")
    url, context, query, answer = (b.strip() for b in blocks[:4])
    entities = {}
    for line in "\n".join(blocks[4:]).splitlines():
        if line.strip():
            key, _, name = line.partition(":")
            entities[key.strip()] = name.strip()
    if _entity_id(answer) is None or PLACEHOLDER not in query.split():
        raise DataCorrupt(f"path: expected an @entity answer and a query with {PLACEHOLDER} in {path}, "
                          f"got answer {answer[:40]!r}")
    context, query = context.split(), query.split()
    ids = [i for i in map(_entity_id, context + query + [answer] + list(entities)) if i is not None]
    if ids and max(ids) > MAX_ENTITY_ID:
        raise damaged(path, f"expected entity ids up to @entity{MAX_ENTITY_ID}, got @entity{max(ids)}", todo="")
    return {"url": url, "context": context, "query": query, "answer": answer, "entities": entities}


def write_question(path, context, query, answer, entities=None, url: str = "http://example.com/story") -> Path:
    """Write one question in the ``.question`` layout :func:`read_question` reads: ``context`` and ``query`` as
    text or token lists, ``answer`` an ``@entityN`` token, ``entities`` a ``{"@entityN": name}`` mapping
    (default: every ``@entityN`` of the context and query, named ``"Entity N"``)."""
    context, query = (" ".join(t) if not isinstance(t, str) else t for t in (context, query))
    if entities is None:
        entities = {t: f"Entity {t[7:]}" for t in (context + " " + query).split() if _entity_id(t) is not None}
    mapping = "\n".join(f"{k}:{v}" for k, v in entities.items())
    path = Path(path)
    path.write_text(f"{url}\n\n{context}\n\n{query}\n\n{answer}\n\n{mapping}\n", encoding="utf-8")
    return path


SENTENCE_ENDS = (".", "!", "?")


def split_sentences(tokens) -> list[list[str]]:
    """A token list cut after every ``.``, ``!`` or ``?`` (a last sentence without one is kept)."""
    out, cur = [], []
    for t in tokens:
        cur.append(t)
        if t in SENTENCE_ENDS:
            out.append(cur)
            cur = []
    return out + ([cur] if cur else [])


def top_sentences(context, query, k: int = 4) -> list[str]:
    """The ``k`` sentences of ``context`` (tokens) that best match ``query`` (tokens), in document order.

    Our reading of Cooijmans et al.'s "4 most relevant sentences ... identified by a string matching procedure"
    (RBN Appendix C; their code for it is not published): a sentence scores the number of distinct query
    tokens other than ``@placeholder`` that it contains; the ``k`` highest scores are kept, a tie going to the
    earlier sentence. A document of at most ``k`` sentences is returned whole."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k: expected a positive integer, got {k!r}")
    sents = split_sentences(context)
    if len(sents) <= k:
        return list(context)
    words = set(query) - {PLACEHOLDER}
    score = [len(words & set(s)) for s in sents]
    best = sorted(sorted(range(len(sents)), key=lambda i: -score[i])[:k])  # stable sort: ties keep the earlier
    return [t for i in best for t in sents[i]]


def _question_files(folder: Path, max_questions):
    files = sorted(folder.glob("*.question"))
    return files[:max_questions] if max_questions else files


def _split_folder(root: Path, names) -> Path | None:
    for name in names:
        for cand in (root / name, root / "questions" / name):
            if cand.is_dir():
                return cand
    return None


def find_cnn_questions(path=None) -> tuple[Path, Path] | None:
    """The ``(training, validation)`` folders of ``.question`` files under ``path`` (default: the cache's
    ``cnn/`` folder, ``$LNEDU_DATA/cnn``), or ``None`` where either is absent or holds no ``.question`` file."""
    root = Path(path) if path else cache_dir() / "cnn"
    tr, va = _split_folder(root, ("training", "train")), _split_folder(root, ("validation", "valid", "dev"))
    if tr is None or va is None or not any(tr.glob("*.question")) or not any(va.glob("*.question")):
        return None
    return tr, va


def load_cnn_questions(path=None, *, max_vocab: int = 50_000, max_questions: int | None = None,
                       max_sentences: int | None = None, select: str = "query") -> ClozeCorpus:
    """The CNN (or Daily Mail) questions under ``path`` (default: ``$LNEDU_DATA/cnn``): a folder with ``training/``
    and ``validation/`` (or ``questions/training`` ...) of ``.question`` files; refused with :data:`CNN_SET`'s
    message where they are absent. The vocabulary is the ``max_vocab`` most frequent words of the training
    documents and queries (the rest become ``<unk>``); the entity ids run up to the largest ``@entityN`` seen.
    ``max_questions``: read at most that many files per split (sorted by name). ``max_sentences``: cut each
    document to that many sentences, chosen by ``select``: ``"query"`` the ones that best match the query
    (:func:`top_sentences`, Cooijmans et al.'s "top 4"), ``"first"`` the first ones. Every question is kept,
    also one whose answer the cut removed (:meth:`ClozeSet.answerable` is False for it; the description counts
    them), as in Cooijmans et al.'s data.
    """
    if select not in ("query", "first"):
        raise ValueError(f"select: expected 'query' or 'first', got {select!r}")
    root = Path(path) if path else cache_dir() / "cnn"
    found = find_cnn_questions(root)
    if found is None:
        raise CNN_SET.missing(looked_in=[root])
    splits = {}
    for name, folder in zip(("train", "valid"), found):
        qs = [read_question(f) for f in _question_files(folder, max_questions)]
        if max_sentences:
            for q in qs:
                if select == "query":
                    q["context"] = top_sentences(q["context"], q["query"], int(max_sentences))
                else:
                    q["context"] = [t for s in split_sentences(q["context"])[: int(max_sentences)] for t in s]
        splits[name] = qs
    all_q = splits["train"] + splits["valid"]
    n_ent = 1 + max(i for q in all_q for i in map(_entity_id, q["context"] + q["query"] + [q["answer"]])
                    if i is not None)  # at most MAX_ENTITY_ID + 1: read_question refuses larger ids
    counts = Counter(t for q in splits["train"] for t in q["context"] + q["query"] if not t.startswith("@"))
    vocab = ClozeVocab(max(n_ent, 2), [w for w, _ in counts.most_common(int(max_vocab))])
    packed = {name: _pack(vocab, [(q["context"], q["query"], int(q["answer"][7:])) for q in qs], answer_in_doc=False)
              for name, qs in splits.items()}
    cut = f"{max_sentences} sentences per document ({'best match to the query' if select == 'query' else 'the first'})"
    gone = ", ".join(f"{int((~s.answerable()).sum())} {n}" for n, s in packed.items())
    desc = (f"CNN-format questions from {root}: {len(packed['train'])} train / {len(packed['valid'])} validation, "
            f"{len(vocab)} tokens, {vocab.n_entities} entity ids"
            + (f"; {cut}; answer not in the kept sentences: {gone}" if max_sentences else ""))
    return ClozeCorpus(packed["train"], packed["valid"], vocab, desc)


def generate_standin(n_train: int, n_valid: int, *, vocab: int = CNN_SHAPES["vocab"],
                     n_entities: int = CNN_SHAPES["entities"], doc_len: int = CNN_SHAPES["doc_len"],
                     query_len: int = CNN_SHAPES["query_len"], seed: int = 0) -> ClozeCorpus:
    """Random questions with the real set's shapes (:data:`CNN_SHAPES`): a ``vocab``-token vocabulary with
    ``n_entities`` entity ids, documents of ``doc_len`` and queries of ``query_len`` tokens, every answer among
    its document's entities. Nothing to learn in them: they exist to time a paper-size update."""
    for name, v in (("n_train", n_train), ("n_valid", n_valid), ("doc_len", doc_len), ("query_len", query_len)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name}: expected a positive integer, got {v!r}")
    if vocab < n_entities + 4:
        raise ValueError(f"vocab: expected at least n_entities + 4 = {n_entities + 4}, got {vocab!r}")
    voc = ClozeVocab(int(n_entities), [f"w{i}" for i in range(int(vocab) - int(n_entities) - 3)])
    rng = np.random.default_rng(seed)
    first_word = voc.placeholder + 1

    def make(n):
        words = rng.integers(first_word, len(voc), size=(n, doc_len))
        ents = rng.integers(0, n_entities, size=(n, 8))  # 8 entity mentions per document
        pos = rng.permuted(np.tile(np.arange(doc_len), (n, 1)), axis=1)[:, :8]
        np.put_along_axis(words, pos, ents, axis=1)
        q = rng.integers(first_word, len(voc), size=(n, query_len))
        q[:, 0] = voc.placeholder
        cand = np.zeros((n, n_entities), dtype=bool)
        np.put_along_axis(cand, ents, True, axis=1)
        return ClozeSet(words, np.full(n, doc_len), q, np.full(n, query_len), ents[:, 0].copy(), cand)

    desc = (f"stand-in questions with the CNN top-4 shapes (random words, nothing to learn): vocabulary {len(voc)}, "
            f"{n_entities} entity ids, documents of {doc_len} and queries of {query_len} tokens")
    return ClozeCorpus(make(int(n_train)), make(int(n_valid)), voc, desc)
