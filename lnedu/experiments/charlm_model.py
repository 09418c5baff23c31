"""The character-level language model that :mod:`.charlm` and :mod:`.text8_grid` share: the model, its data,
its training task and what its runs report.

* :class:`CharLM`: fixed orthogonal input codes, one recurrent layer (any of :mod:`lnedu.nn.recurrent`), a
  softmax over the next character;
* :func:`load_lm_data` and :func:`data_choice`: a corpus as character ids;
* :class:`LMTask`: training on independent crops from a zero state (``state="crops"``, the NormProp paper's
  procedure) or by truncated backprop through time on contiguous streams with the state carried from window to
  window (``state="carried"``); validation bits per character, measured the same way; seconds per update (wall
  and CPU); the FLOPs of an update;
* :func:`build_task`: the task of one variant, given the experiment's ``build_layer``;
* :func:`seconds_per_epoch`, :func:`final_bpc`: what a finished run reports (Table 1's two columns).

Each experiment module brings its own recurrent layers (its variants), its config, its verdict and its figures.
"""

from __future__ import annotations

import functools
import math
import time

import numpy as np

from .. import backend, optim
from .. import functional as F
from .. import init as I
from ..backend import get_array_module
from ..data.text import BPTTStream, CharVocab, Crops, load_text_corpus
from ..nn import Linear, Module
from ..nn.recurrent import RecurrentLayer
from .common import CheckpointedTask, lr_for
from .diagnostics import due, stats_record, train_mode_forward

__all__ = ["LN2", "STATES", "CharLM", "load_lm_data", "data_choice", "BlasThreads", "LMTask", "build_task",
           "seconds_per_epoch", "final_bpc", "training_batches", "evaluation_text"]

LN2 = math.log(2.0)
STATES = ("crops", "carried")  # a config's ``state``: independent zero-state crops, or the state carried


# ---------------------------------------------------------------------------------------------------------
# model


class CharLM(Module):
    r"""A character-level language model: fixed orthogonal input codes, one recurrent layer, a softmax.

    .. math::
        x_t = \sqrt{V}\,Q_{c_t,:},\qquad (h_1..h_T, s_T) = \mathrm{RNN}(x_1..x_T; s_0),\qquad
        p(c_{t+1} \mid c_{\le t}) = \mathrm{softmax}(h_t W + b)

    ``Q`` (V, V) is a random orthogonal matrix, a buffer that is never trained: the NormProp paper's
    "one-hot inputs multiplied by a fixed orthogonal matrix". Scaled by ``sqrt(V)``, every input vector has
    components of unit mean square, the scale the normalization methods' analyses assume. Children: ``rnn``
    (any :mod:`lnedu.nn.recurrent` layer with ``input_size == V``) and ``out`` (:class:`lnedu.nn.Linear`,
    ``W`` (H, V), ``b`` (V,)).

    ``forward(ids, state)`` takes integer ids (T, B) and the recurrent state (``None``: zeros) and returns
    ``(logits (T, B, V), final state)``; ``backward(dlogits)`` backpropagates through the window (truncated
    BPTT: nothing flows into the state it started from) and returns ``None`` (integer inputs).
    """

    def __init__(self, rnn: RecurrentLayer, vocab_size: int, *, rng=None):
        super().__init__()
        if not isinstance(rnn, RecurrentLayer):
            raise TypeError(f"rnn: expected a recurrent layer (LSTM, GRU, ...), got {type(rnn).__name__}")
        if rnn.input_size != vocab_size:
            raise ValueError(f"rnn: expected input_size {vocab_size} (the vocabulary), got {rnn.input_size}")
        rng = I.as_rng(rng)
        dtype = rnn.params["W_x"].dtype
        self.vocab_size = int(vocab_size)
        self.add_buffer("Q", I.orthogonal((vocab_size, vocab_size), rng, dtype, gain=math.sqrt(vocab_size)))
        self.rnn = self.add_module("rnn", rnn)
        self.out = self.add_module("out", Linear(rnn.hidden_size, vocab_size, rng=rng, dtype=dtype))

    def forward(self, ids, state=None):
        xp = get_array_module(self.buffers["Q"])
        h, state = self.rnn.forward(self.buffers["Q"][xp.asarray(ids)], state)
        return self.out.forward(h), state

    def backward(self, dlogits):
        self.rnn.backward(self.out.backward(dlogits))
        return None

    def extra_repr(self):
        return f"vocab_size={self.vocab_size}"


# ---------------------------------------------------------------------------------------------------------
# data


@functools.lru_cache(maxsize=4)
def load_lm_data(real: str, source: str, path: str = ""):
    """``(corpus, vocab, {split: ids})`` of a text corpus (cached: every run of a sweep reads it once); ``path``:
    the real corpus's folder or file ("": the cache)."""
    corpus = load_text_corpus(real, source, path or None)
    vocab = CharVocab.build(corpus.train)
    dtype = np.uint8 if len(vocab) <= 256 else np.int32  # text8's 10^8 ids take 100 MB, not 800
    return corpus, vocab, {k: vocab.encode(v, dtype) for k, v in corpus.splits().items()}


def data_choice(data: str, real: str):
    """``(real, source)`` for :func:`load_lm_data` from a config's ``data``: ``"auto"`` (the real corpus if on disk,
    else Python's documentation), the real corpus's name (``"ptb"``, ``"text8"``: it must be there, or the run
    refuses), ``"pydoc"``, ``"standin"`` (generated, the real corpus's alphabet size: for timing only)."""
    choices = {"auto": (real, "auto"), real: (real, "real"), "pydoc": (real, "embedded"), "standin": (real, "standin")}
    if data not in choices:
        raise ValueError(f"data: expected one of {sorted(choices)}, got {data!r}")
    return choices[data]


class BlasThreads:
    """A context that limits the BLAS library to ``n`` threads (``n = 0``: leaves it alone).

    A small model's matrix products are too small for threads to pay off, and on a busy machine (two cores
    shared with other jobs, or runs of a sweep side by side) threads that wait for a core slow every product
    down by orders of magnitude. Uses threadpoolctl (installed with scikit-learn) when it is there.
    """

    _controller = None

    def __init__(self, n: int):
        self.n, self._ctx = int(n), None

    def __enter__(self):
        if self.n > 0:
            try:
                from threadpoolctl import ThreadpoolController
            except ImportError:  # pragma: no cover - scikit-learn brings it
                return self
            if BlasThreads._controller is None:
                BlasThreads._controller = ThreadpoolController()
            self._ctx = BlasThreads._controller.limit(limits=self.n, user_api="blas")
        return self

    def __exit__(self, *exc):
        if self._ctx is not None:
            self._ctx.restore_original_limits()
            self._ctx = None


# ---------------------------------------------------------------------------------------------------------
# task


class LMTask(CheckpointedTask):
    """Train a :class:`CharLM` on characters; evaluate bits per character.

    ``config.state`` says how the text is cut (:data:`STATES`):

    * ``"crops"``: every update is ``batch_size`` independent crops of ``seq_len`` characters at random starts,
      each from a zero state (:class:`lnedu.data.text.Crops`; the NormProp paper's "sequences of length 100
      with random starts"); evaluation likewise on crops of ``eval_len`` from a zero state: the validation text
      cut into consecutive crops, the training text as a fixed sample of as many crops spread over it;
    * ``"carried"``: truncated BPTT on ``batch_size`` contiguous streams, the state carried from window to
      window and reset at every epoch (:class:`lnedu.data.text.BPTTStream`); evaluation on the first
      ``eval_chars`` characters of each split read as ``eval_batch`` streams, the state carried.

    ``step``: one update; returns ``loss`` (nats), ``bpc``, ``seconds`` (the update's wall time),
    ``cpu_seconds`` (the CPU time this process spent on it: unlike the wall time, not inflated when other programs
    share the cores; with several BLAS threads it adds theirs up) and ``grad_norm``. ``evaluate``:
    ``valid_bpc`` and ``train_bpc`` (the model in eval mode), the ``epoch`` and the ``updates_per_epoch``.
    ``state_dict`` holds the model, Adam, the update count and (carried mode) the carried state, so a resumed
    run continues exactly. ``examples_per_update``: the sequences in one update (``batch_size``).
    """

    def __init__(self, model: CharLM, optimizer, ids: dict, config, seed: int):
        self.model, self.opt, self.config, self.seed = model, optimizer, config, int(seed)
        self.schedule_from(config)
        c = config
        self.mode = getattr(c, "state", "carried")
        if self.mode not in STATES:
            raise ValueError(f"state: expected one of {STATES}, got {self.mode!r}")
        n = c.eval_chars + 1 if c.eval_chars else None
        if self.mode == "crops":
            self.stream = Crops(ids["train"], c.batch_size, c.seq_len, seed=seed)
            valid = Crops(ids["valid"][:n], c.eval_batch, c.eval_len, mode="consecutive")
            sample = Crops(ids["train"], c.eval_batch, c.eval_len, mode="sample", count=len(valid.starts))
            self.eval_streams = {"valid_bpc": valid, "train_bpc": sample}
        else:
            self.stream = BPTTStream(ids["train"], c.batch_size, c.seq_len, seed=seed)
            self.eval_streams = {f"{k}_bpc": BPTTStream(ids[k][:n], c.eval_batch, c.eval_len, shuffle_offset=False,
                                                        drop_last=False) for k in ("valid", "train")}
        self.steps_per_epoch = len(self.stream)
        self.examples_per_update = int(c.batch_size)
        self.t = 0
        self.state = None

    def _xp(self):
        return get_array_module(self.model.out.params["W"])

    def flops_per_update(self) -> float:
        """Floating-point operations of one update, counting the matrix products only: per character, the input
        product ``(1, V) @ (V, G H)``, the recurrent ones ``(1, H) @ (H, G H)`` and the output ``(1, H) @ (H, V)``
        (every 2-d weight of the layer and the output layer, ``2 k n`` each, a multiply-add being 2), times the
        ``batch_size x seq_len`` characters, times 3 for forward and backward (the backward's products for the
        weights' and the inputs' gradients, 2 x the forward's). Normalization, gates and the softmax are
        element-wise, ``O(B T H)``, and left out."""
        weights = sum(int(p.size) for _, p, _ in self.model.rnn.named_parameters() if p.ndim == 2)
        weights += int(self.model.out.params["W"].size)
        return 3.0 * 2.0 * self.config.batch_size * self.config.seq_len * weights

    def step(self) -> dict:
        epoch, k = divmod(self.t, self.steps_per_epoch)
        if k == 0 or self.mode == "crops":
            self.state = None  # a crop starts from zeros; a new epoch starts the streams elsewhere
        xp = self._xp()
        x, y = (xp.asarray(a) for a in self.stream.window(epoch, k))
        with BlasThreads(self.config.blas_threads):
            start, cpu = time.perf_counter(), time.process_time()
            self.model.train()
            logits, state = self.model.forward(x, self.state)
            loss, cache = F.softmax_cross_entropy(logits, y)  # a Python float: waits for a GPU to finish
            self.opt.zero_grad()
            self.model.backward(F.softmax_cross_entropy_backward(1.0, cache))
            self.opt.step()
            if xp is not np:
                xp.cuda.get_current_stream().synchronize()
            seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        self.state = state if self.mode == "carried" else None
        self.t += 1
        return {"loss": loss, "bpc": loss / LN2, "seconds": seconds, "cpu_seconds": cpu,
                "grad_norm": self.opt.last_grad_norm}

    def bpc(self, stream, *, eval_mode: bool = True) -> float:
        """Bits per character of the model on ``stream`` (eval mode; each crop from a zero state, or the state
        carried across the windows of a :class:`BPTTStream`; ``eval_mode=False``: in the model's current mode,
        for batch norm's train-mode figure)."""
        xp = self._xp()
        if eval_mode:
            self.model.eval()
        carry = isinstance(stream, BPTTStream)
        state, nats, count = None, 0.0, 0
        for x, y in stream.epoch(0):
            logits, state = self.model.forward(xp.asarray(x), state if carry else None)
            loss, _ = F.softmax_cross_entropy(logits, xp.asarray(y))
            nats += loss * y.size
            count += y.size
        self.model.train()
        return nats / count / LN2

    def evaluate(self) -> dict:
        with BlasThreads(self.config.blas_threads):
            out = {key: self.bpc(s) for key, s in self.eval_streams.items()}
            valid = [k for k in self.eval_streams if k.startswith("valid")]
            batch_norm = any("running_" in k for k, _ in self.model.named_buffers())
            if valid and batch_norm and due(self.t, self.steps, self.eval_every):  # BN's train-vs-eval gap
                out[f"{valid[0]}_batchstats"] = train_mode_forward(
                    self.model, lambda: self.bpc(self.eval_streams[valid[0]], eval_mode=False))
            if valid and due(self.t, self.steps, self.eval_every):  # per-time-step statistics, first window
                x, _ = next(iter(self.eval_streams[valid[0]].epoch(0)))
                out.update(stats_record(self.model, lambda: self.model.forward(self._xp().asarray(x), None)))
        out["epoch"] = self.t / self.steps_per_epoch
        out["updates_per_epoch"] = self.steps_per_epoch
        return out

    def state_dict(self) -> dict:
        state = super().state_dict()  # model, optimizer, update count
        for i, s in enumerate(self.state or ()):
            state[f"carry/{i}"] = backend.to_numpy(s).copy()
        return state

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        carry = sorted((k for k in state if k.startswith("carry/")), key=lambda k: int(k[6:]))
        xp = self._xp()
        self.state = tuple(xp.asarray(state[k]) for k in carry) if carry else None


def build_task(config, variant: str, seed: int, build_layer, real: str) -> LMTask:
    """The :class:`LMTask` of one variant: ``build_layer(config, variant, vocab_size, rng)`` makes the recurrent
    layer, ``real`` names the corpus ``config.data="auto"`` looks for (``"ptb"``, ``"text8"``), in
    ``config.data_path`` if set. The layer, then the model's input codes and output layer, are drawn from one
    generator seeded with ``seed``; Adam with the config's ``lr``, ``clip`` and ``lr_decay``; the schedule is the
    config's."""
    _, vocab, ids = load_lm_data(*data_choice(config.data, real), getattr(config, "data_path", ""))
    rng = np.random.default_rng(seed)
    model = CharLM(build_layer(config, variant, len(vocab), rng), len(vocab), rng=rng)
    if backend.current() != "numpy":
        model.to_backend()
    opt = optim.Adam(model, lr=lr_for(config, variant), clip=config.clip, lr_decay=config.lr_decay)
    return LMTask(model, opt, ids, config, seed)


# ---------------------------------------------------------------------------------------------------------
# what a run reports


def training_batches(c, unit: str = "crops") -> str:
    """The settings table's words for how a config cuts its training text (``unit``: what one piece is called)."""
    if c.state == "carried":
        return f"{c.batch_size} contiguous streams, windows of {c.seq_len}, state carried (truncated BPTT)"
    return f"{c.batch_size} independent {unit} of {c.seq_len} at random starts, each from a zero state"


def evaluation_text(c, unit: str = "crops") -> str:
    """The settings table's words for what a config evaluates on."""
    text = "the whole validation text" if not c.eval_chars else f"the first {c.eval_chars:,} validation characters"
    if c.state == "carried":
        return f"{text}, state carried"
    return f"{text} cut into {unit} of {c.eval_len}, each from a zero state"


def seconds_per_epoch(run, key: str = "seconds") -> float:
    """A run's training seconds per epoch: the median update's wall time (``key="cpu_seconds"``: CPU time)
    times the updates in an epoch."""
    per_epoch = run.eval[-1]["updates_per_epoch"]
    return float(np.median([r[key] for r in run.train]) * per_epoch)


def final_bpc(run, key: str = "valid_bpc") -> float:
    """A run's last evaluation of ``key`` (the validation bits per character)."""
    return float(run.eval[-1][key])
