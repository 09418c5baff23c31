"""Order-embeddings of images and captions with a GRU or LN-GRU sentence encoder (LN paper §6.1, Table 2, Figure 1).

The paper (Ba et al. 2016, §6.1) retrains Vendrov et al.'s (2016) order-embedding model on MS-COCO: VGG image
features mapped by a linear layer, captions encoded by a GRU (an LN-GRU, the paper's Eq. 26-28, in the LN
model), both made unit-length and non-negative (``abs``), scored by the negative order violation
``-||max(0, s - i)||^2`` and trained with the contrastive margin loss (margin 0.05) by Adam; validation R@K
every 300 iterations, the best validation model kept; test R@1/5/10 and mean rank in both directions, averaged
over 5 folds of 1,000 images. Claim: LN "converges to its best validation model in 60% of the time it takes the
baseline" and ends a little better (Table 2: image R@1 37.8 -> 38.9, caption R@1 46.6 -> 48.5).

Our small run: the generated digit captions of :mod:`lnedu.data.captions` (8x8 pixels as the image features,
five captions per image from the label and measured attributes), a small GRU, validation on 100 dev images,
test on 5 folds of 100 images. Variants: ``gru`` and ``ln-gru`` with the order loss, and ``sym-gru``, Vendrov et
al.'s symmetric baseline (cosine score, margin 0.2, no ``abs``). Every evaluation logs the validation and the
test metrics, so Table 2's "test at the best validation model" is read from the log without keeping models.

The ``paper`` preset reads COCO's features and captions from Vendrov et al.'s ``coco.zip`` (``--data``; see
:data:`lnedu.data.captions.COCO_SET`) and refuses to run without them. Its settings against the paper's (Vendrov
et al.'s ``driver.py`` and ``train.py``, which the LN paper ran):

| setting | paper | `paper` preset | `medium` preset | `small` preset |
|---|---|---|---|---|
| data | MS-COCO, VGG19 10-crop features (4,096-d), 5 captions an image (§6.1; Vendrov et al.'s coco.zip) | COCO features (coco.zip) | real features if given, else 8x8 digits with generated captions | real features if given, else 8x8 digits with generated captions |
| caption encoder | GRU; LN-GRU Eq. 26-28 in the LN model (§6.1) | GRU / LN-GRU, reset after | GRU / LN-GRU, reset after | GRU / LN-GRU, reset after |
| embedding size (= GRU state) | 1,024 (driver.py) | 1,024 | 128 | 64 |
| word vectors | 300 (driver.py) | 300 | 64 | 32 |
| score and margin | order violation, abs(l2norm), margin 0.05; symmetric: cosine, 0.2 (driver.py) | order, margin 0.05; cosine, 0.2 | order, margin 0.05; cosine, 0.2 | order, margin 0.05; cosine, 0.2 |
| optimizer | Adam, same hyperparameters for both models (§6.1); lr 1e-3 (driver.py) | Adam 0.001 | Adam 0.002 (per variant: gru 0.005, ln-gru 0.01, sym-gru 0.01) | Adam 0.002 (per variant: gru 0.005, ln-gru 0.01, sym-gru 0.01) |
| batch | 128 images, one caption each (driver.py, datasource.py) | 128 | 64 | 64 |
| gradient clip (global norm) | 2 (driver.py) | 2 | 2 | 2 |
| iterations | Figure 1: 300 x 300 (§6.1); driver.py: up to 100 epochs | 90,000 | 5,000 | 600 |
| validation | R@K every 300 iterations, best model kept (§6.1); train.py: image R@1+5+10 on the first 1,000 dev images | every 300; image R@1+5+10 on 1,000 dev images | every 50; image R@1+5+10 on all dev images | every 50; image R@1+5+10 on all dev images |
| caption length | no cut; the mask reads one <eos> step more (datasource.py) | no cut, + <eos> step | 30 tokens | 30 tokens |
| test | mean over 5 folds of 1,000 images (§6.1) | 5 folds of the test split | 5 folds of the test split | 5 folds of the test split |
| vocabulary | every word of the train and dev captions (train.py) | every word of the train captions (differs: dev words map to <unk>; we never read the validation captions while building the model) | every word of the train captions | every word of the train captions |
"""

# ruff: noqa: E501 (the settings table above has one row a line, as settings_table writes it)

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field

import numpy as np

from .. import backend, optim
from ..backend import get_array_module
from ..data.captions import WordVocab, load_captions, pad_batch
from ..functional import ranking as R
from ..nn import GRU, Embedding, Linear, Module
from ..viz.experiments import plot_band, seed_curves
from . import verdicts as V
from .common import CheckpointedTask, lr_for
from .diagnostics import due, stats_record
from .settings import Setting
from .verdicts import Verdict

NAME = "order_embeddings"
TITLE = "Order-embeddings: image-caption retrieval"
PAPER = "LN §6.1, Table 2, Figure 1"
CLAIM = "LN-GRU reaches the GRU's best validation recall in fewer iterations and ends a little better"
VARIANTS = ("gru", "ln-gru", "sym-gru")
COLORS = {"gru": "tab:gray", "ln-gru": "tab:red", "sym-gru": "tab:blue"}

__all__ = ["NAME", "TITLE", "PAPER", "CLAIM", "VARIANTS", "Config", "PRESETS", "SEEDS", "SETTINGS",
           "OrderEmbeddingModel", "RetrievalTask", "build", "standin", "retrieval_metrics", "table", "verdict", "plot"]


@dataclass
class Config:
    dim: int = 64  # the joint embedding (and GRU state) size
    dim_word: int = 32
    batch_size: int = 64
    lr: float = 2e-3
    clip: float = 2.0  # global gradient norm (Vendrov's grad_clip)
    margin_order: float = 0.05
    margin_cosine: float = 0.2
    data: str = "auto"  # "auto" (features when data_path is set), "features" (the real set), "digits", "standin"
    data_path: str = ""  # the features' folder ("": $LNEDU_DATA/coco)
    folds: int = 5
    dev_images: int = 0  # validate on the first N dev images (0: all; Vendrov's code: 1,000 of COCO's 5,000)
    max_len: int = 30  # caption tokens kept (0: all, as Vendrov's code)
    eos_step: bool = False  # the GRU reads one <eos> step after the caption (Vendrov's mask covers length + 1)
    steps: int = 600
    eval_every: int = 50
    checkpoint_every: int = 200
    # learning rate per variant (the others use lr), chosen on validation by `python -m lnedu tune order_embeddings`
    lr_by_variant: dict = field(default_factory=dict)


PRESETS = {
    "tiny": Config(dim=32, dim_word=16, batch_size=32, steps=60, eval_every=20, checkpoint_every=20, data="digits"),
    # rates per variant, from `python -m lnedu tune order_embeddings` (on validation; tuned/order_embeddings-small.json)
    "small": Config(lr_by_variant={"gru": 0.005, "ln-gru": 0.01, "sym-gru": 0.01}),
    # about 30 minutes for 3 variants x 3 seeds, one after another (one BLAS thread): the small preset's digits and
    # rates at twice the width and 8x the updates (so the best validation model is not the last evaluation).
    # Sized from 10 timed updates of each variant (OPENBLAS_NUM_THREADS=1): 0.026 s/update (gru), 0.033 (ln-gru),
    # 0.014 (sym-gru), ~0.6 s an evaluation. Measured: `python -m lnedu run order_embeddings --preset medium` with
    # evaluations every 100 took 871 s of CPU (42 min wall at nice 5 on 2 cores shared with other jobs); the first
    # evaluations decide the speed part, so they come every 50 (~50 more a run, ~4 min more in all).
    "medium": Config(dim=128, dim_word=64, steps=5000, eval_every=50, checkpoint_every=1000,
                     lr_by_variant={"gru": 0.005, "ln-gru": 0.01, "sym-gru": 0.01}),
    # Vendrov et al.'s driver.py and train.py (ivendrov/order-embedding): dim 1024, dim_word 300, batch 128,
    # Adam 1e-3, clip 2, validation every 300 updates on 1,000 dev images, no caption cut, one <eos> step.
    # Figure 1 runs to 300 x 300 iterations. Needs the COCO features and captions (COCO_SET).
    "paper": Config(dim=1024, dim_word=300, batch_size=128, lr=1e-3, data="features", steps=90_000,
                    eval_every=300, checkpoint_every=3000, dev_images=1000, max_len=0, eos_step=True),
}

SEEDS = {"tiny": (0, 1, 2), "small": (0, 1, 2), "medium": (0, 1, 2), "paper": (0, 1, 2)}

SETTINGS = (
    Setting("data", "MS-COCO, VGG19 10-crop features (4,096-d), 5 captions an image (§6.1; Vendrov et al.'s "
            "coco.zip)", lambda c: {"features": "COCO features (coco.zip)", "digits": "8x8 digits, generated "
                                    "captions", "auto": "real features if given, else 8x8 digits with generated "
                                    "captions"}.get(c.data, c.data)),
    Setting("caption encoder", "GRU; LN-GRU Eq. 26-28 in the LN model (§6.1)", lambda c: "GRU / LN-GRU, reset after"),
    Setting("embedding size (= GRU state)", "1,024 (driver.py)", "dim"),
    Setting("word vectors", "300 (driver.py)", "dim_word"),
    Setting("score and margin", "order violation, abs(l2norm), margin 0.05; symmetric: cosine, 0.2 (driver.py)",
            lambda c: f"order, margin {c.margin_order:g}; cosine, {c.margin_cosine:g}"),
    Setting("optimizer", "Adam, same hyperparameters for both models (§6.1); lr 1e-3 (driver.py)",
            lambda c: f"Adam {c.lr:g}" + (" (per variant: " + ", ".join(f"{k} {v:g}" for k, v in
                                                                        c.lr_by_variant.items()) + ")"
                                          if c.lr_by_variant else "")),
    Setting("batch", "128 images, one caption each (driver.py, datasource.py)", "batch_size"),
    Setting("gradient clip (global norm)", "2 (driver.py)", "clip"),
    Setting("iterations", "Figure 1: 300 x 300 (§6.1); driver.py: up to 100 epochs", "steps"),
    Setting("validation", "R@K every 300 iterations, best model kept (§6.1); train.py: image R@1+5+10 on the "
            "first 1,000 dev images", lambda c: f"every {c.eval_every:,}; image R@1+5+10 on "
            + (f"{c.dev_images:,}" if c.dev_images else "all") + " dev images"),
    Setting("caption length", "no cut; the mask reads one <eos> step more (datasource.py)",
            lambda c: ("no cut" if not c.max_len else f"{c.max_len} tokens") + (", + <eos> step" if c.eos_step
                                                                                else "")),
    Setting("test", "mean over 5 folds of 1,000 images (§6.1)", lambda c: f"{c.folds} folds of the test split"),
    Setting("vocabulary", "every word of the train and dev captions (train.py)",
            lambda c: "every word of the train captions", differs="dev words map to <unk>; we never read the "
            "validation captions while building the model"),
)
# ---------------------------------------------------------------------------------------------------------
# model


class OrderEmbeddingModel(Module):
    """Images and captions in one embedding space.

    Children: ``emb`` (:class:`Embedding`, ``W`` (V, dim_word)), ``rnn`` (:class:`GRU` dim_word -> dim, gate order
    z, r; ``ln="appendix"`` for the LN-GRU), ``img`` (:class:`Linear`, ``W`` (F, dim), ``b`` (dim,)).
    ``method="order"``: ``s = |l2norm(h_T)|``, ``i = |l2norm(W x + b)|`` and score ``-E(s, i)``;
    ``"cosine"``: ``s = h_T``, ``i = W x + b`` and score ``cos(s, i)``. ``h_T`` is the GRU's state after the last
    real word of the caption.
    """

    def __init__(self, vocab_size, feature_dim, dim, dim_word, *, ln=None, method="order", rng=None,
                 dtype=np.float32):
        super().__init__()
        if method not in ("order", "cosine"):
            raise ValueError(f"method: expected 'order' or 'cosine', got {method!r}")
        rng = np.random.default_rng(rng)
        self.method = method
        self.emb = self.add_module("emb", Embedding(vocab_size, dim_word, rng=rng, dtype=dtype))
        self.rnn = self.add_module("rnn", GRU(dim_word, dim, ln=ln, rng=rng, dtype=dtype))
        self.img = self.add_module("img", Linear(feature_dim, dim, init="xavier", rng=rng, dtype=dtype))
        self._caches = {}

    def _embed(self, z, side):
        if self.method == "cosine":
            return z
        u, cache = R.l2_normalize(z)
        self._caches[side] = (u, cache)
        return get_array_module(u).abs(u)

    def _embed_backward(self, de, side):
        if self.method == "cosine":
            return de
        u, cache = self._caches[side]
        return R.l2_normalize_backward(de * get_array_module(u).sign(u), cache)

    def encode_captions(self, ids, mask):
        """``s`` (B, dim) from token ids (T, B) and their mask (T, B)."""
        _, (h,) = self.rnn.forward(self.emb.forward(ids), mask=mask)
        return self._embed(h, "s")

    def encode_images(self, x):
        """``i`` (N, dim) from image features (N, F)."""
        return self._embed(self.img.forward(x), "i")

    def backward_captions(self, ds):
        dx, _ = self.rnn.backward(None, (self._embed_backward(ds, "s"),))
        self.emb.backward(dx)

    def backward_images(self, di):
        self.img.backward(self._embed_backward(di, "i"))

    def scores(self, s, im, *, chunk_elems: int = 1 << 24):
        """The score matrix (N_s, N_im), larger is better, computed in blocks of captions (no backward)."""
        if self.method == "cosine":
            return R.cosine_similarity(s, im)[0]
        xp = get_array_module(s)
        step = max(1, chunk_elems // max(1, im.shape[0] * im.shape[1]))
        return xp.concatenate([-R.order_violation(s[a: a + step], im)[0] for a in range(0, len(s), step)])

    def extra_repr(self):
        return f"method={self.method!r}"


# ---------------------------------------------------------------------------------------------------------
# data


@functools.lru_cache(maxsize=2)
def _data(source, path):
    return load_captions(source, path or None)


def _first_dev_images(data, n: int):
    """``data`` with its dev split cut to the first ``n`` images and their captions (Vendrov's ``datasets.py``
    validates on the first 1,000 of COCO's 5,000 dev images); ``n = 0`` or more than there are: unchanged."""
    if not n or n >= len(data.images["dev"]):
        return data
    keep = np.flatnonzero(data.caption_image["dev"] < n)
    return dataclasses.replace(
        data, images={**data.images, "dev": data.images["dev"][:n]},
        captions={**data.captions, "dev": [data.captions["dev"][c] for c in keep]},
        caption_image={**data.caption_image, "dev": data.caption_image["dev"][keep]},
        description=f"{data.description}; validation on the first {n} dev images")


# ---------------------------------------------------------------------------------------------------------
# task: training on matching pairs, evaluation by retrieval


def retrieval_metrics(S, caption_image, prefix="") -> dict:
    """R@1/5/10 and mean rank for image retrieval (``img_*``) and caption retrieval (``cap_*``), and
    ``img_rsum``/``cap_rsum`` (R@1 + R@5 + R@10), from a score matrix (captions, images)."""
    img_ranks, cap_ranks = R.retrieval_ranks(S, caption_image)
    out = {}
    for side, ranks in (("img", img_ranks), ("cap", cap_ranks)):
        m = R.recall_at_k(ranks)
        for k, v in m.items():
            out[f"{prefix}{side}_{k}"] = v
        out[f"{prefix}{side}_rsum"] = m["r1"] + m["r5"] + m["r10"]
    return out


class RetrievalTask(CheckpointedTask):
    """Train an :class:`OrderEmbeddingModel` on batches of matching (caption, image) pairs.

    A batch holds ``batch_size`` distinct training images, one of its captions each (so no other pair in the
    batch is a hidden match), chosen by a generator seeded with ``(seed, step)``: a resumed run sees the
    batches it would have seen. ``evaluate`` logs ``val_*`` (the dev split) and ``test_*`` (the mean over the
    test folds) retrieval metrics. With ``config.eos_step`` every caption ends with the ``<eos>`` id, read as
    one more step of the GRU.
    """

    def __init__(self, model, optimizer, data, vocab, config: Config, seed: int):
        self.model, self.opt, self.data, self.vocab, self.config = model, optimizer, data, vocab, config
        self.seed = int(seed)
        self.schedule_from(config)
        self.margin = config.margin_order if model.method == "order" else config.margin_cosine
        self.t = 0
        eos = [vocab["<eos>"]] if config.eos_step else []
        self._ids = {s: [vocab.encode(c) + eos for c in data.captions[s]] for s in ("train", "dev", "test")}
        self.examples_per_update = min(config.batch_size, len(data.images["train"]))  # (caption, image) pairs
        self._by_image = np.argsort(data.caption_image["train"], kind="stable").reshape(len(data.images["train"]), -1)
        dtype = model.img.params["W"].dtype
        self._ims = {s: backend.asarray(data.images[s].astype(dtype)) for s in ("train", "dev", "test")}

    def _batch(self):
        rng = np.random.default_rng([int(self.seed), int(self.t), 0x0E])
        n_img = len(self.data.images["train"])
        imgs = rng.choice(n_img, size=min(self.config.batch_size, n_img), replace=False)
        caps = self._by_image[imgs, rng.integers(self._by_image.shape[1], size=len(imgs))]
        return imgs, caps

    def padded_length(self, updates: int = 8) -> float:
        """The mean padded caption length (GRU steps) of the first ``updates`` batches."""
        saved, lengths = self.t, []
        for t in range(updates):
            self.t = t
            _, caps = self._batch()
            lengths.append(pad_batch([self._ids["train"][c] for c in caps], max_len=self.config.max_len)[0].shape[0])
        self.t = saved
        return float(np.mean(lengths))

    def flops_per_update(self, length: float | None = None) -> float:
        """Matrix-product FLOPs of one update (a multiply-add = 2), forward + backward = 3 x the forward's:
        the GRU's input and recurrent products over ``T`` steps, ``2 T B 3H (dim_word + H)``; the image layer,
        ``2 B F H``; for the cosine score the ``B x B`` similarity, ``2 B^2 H``. ``T``: ``length``, or the mean
        padded length of the first batches (:meth:`padded_length`). Not counted: the order violation's
        ``B^2 H`` element-wise terms, normalizations, the embedding lookup."""
        T = self.padded_length() if length is None else float(length)
        B, H, E, F = self.examples_per_update, self.config.dim, self.config.dim_word, self.data.feature_dim
        forward = 2 * T * B * 3 * H * (E + H) + 2 * B * F * H
        if self.model.method == "cosine":
            forward += 2 * B * B * H
        return 3.0 * forward

    def step(self) -> dict:
        imgs, caps = self._batch()
        ids, mask = pad_batch([self._ids["train"][c] for c in caps], max_len=self.config.max_len)
        m = self.model
        m.train()
        s = m.encode_captions(backend.asarray(ids), backend.asarray(mask))
        im = m.encode_images(self._ims["train"][backend.asarray(imgs)])
        if m.method == "order":
            E, ecache = R.order_violation(s, im)
            loss, lcache = R.contrastive_loss(-E, self.margin)
            ds, dim = R.order_violation_backward(-R.contrastive_loss_backward(1.0, lcache), ecache)
        else:
            S, scache = R.cosine_similarity(s, im)
            loss, lcache = R.contrastive_loss(S, self.margin)
            ds, dim = R.cosine_similarity_backward(R.contrastive_loss_backward(1.0, lcache), scache)
        self.opt.zero_grad()
        m.backward_captions(ds)
        m.backward_images(dim)
        self.opt.step()
        self.t += 1
        return {"loss": loss, "grad_norm": self.opt.last_grad_norm}

    def _encode_split(self, split, cap_idx=None, batch=500):
        ids = self._ids[split] if cap_idx is None else [self._ids[split][c] for c in cap_idx]
        out = []
        for a in range(0, len(ids), batch):
            x, mask = pad_batch(ids[a: a + batch], max_len=self.config.max_len)
            out.append(self.model.encode_captions(backend.asarray(x), backend.asarray(mask)))
        return get_array_module(out[0]).concatenate(out)

    def evaluate(self) -> dict:
        m = self.model
        m.eval()
        d = self.data
        out = retrieval_metrics(m.scores(self._encode_split("dev"), m.encode_images(self._ims["dev"])),
                                d.caption_image["dev"], "val_")
        s_all, im_all = self._encode_split("test"), m.encode_images(self._ims["test"])
        folds = []
        for img_idx, cap_idx in d.folds(self.config.folds):
            S = m.scores(s_all[backend.asarray(cap_idx)], im_all[backend.asarray(img_idx)])
            folds.append(retrieval_metrics(S, d.caption_image["test"][cap_idx] - img_idx[0], "test_"))
        out.update({k: float(np.mean([f[k] for f in folds])) for k in folds[0]})
        if due(self.t, self.steps, self.eval_every):  # per-time-step statistics of the caption GRU, 64 captions
            x, mask = pad_batch(self._ids["dev"][:64], max_len=self.config.max_len)
            out.update(stats_record(m, lambda: m.encode_captions(backend.asarray(x), backend.asarray(mask))))
        m.train()
        return out


# ---------------------------------------------------------------------------------------------------------
# build


def build(config: Config, variant: str, seed: int) -> RetrievalTask:
    if variant not in VARIANTS:
        raise ValueError(f"variant: expected one of {VARIANTS}, got {variant!r}")
    data = _first_dev_images(_data(config.data, config.data_path), config.dev_images)
    vocab = WordVocab.build(data.captions["train"], specials=("<eos>",) if config.eos_step else ())
    model = OrderEmbeddingModel(len(vocab), data.feature_dim, config.dim, config.dim_word,
                                ln="appendix" if variant == "ln-gru" else None,
                                method="cosine" if variant == "sym-gru" else "order", rng=seed)
    if backend.current() != "numpy":
        model.to_backend()
    opt = optim.Adam(model, lr=lr_for(config, variant), clip=config.clip)
    return RetrievalTask(model, opt, data, vocab, config, seed)


def standin(config: Config) -> Config:
    """``config`` on generated data of COCO's shapes (4,096 features, 11-word captions; see
    :func:`lnedu.data.captions.load_standin_captions`), for measuring a paper-size update without the real set."""
    return dataclasses.replace(config, data="standin", data_path="", dev_images=0)


# ---------------------------------------------------------------------------------------------------------
# verdict: Table 2's protocol

PAPER_NUMBERS = ("Table 2 (R@1/R@5/R@10, caption | image retrieval): OE 46.6/79.3/89.1 | 37.8/73.6/85.7, "
                 "OE + LN 48.5/80.6/89.8 | 38.9/74.3/86.3 (LN §6.1); LN reaches its best validation model in "
                 "60% of the baseline's time")
LEARN_MARGIN = 5.0  # "not tested" guard: an arm's mean validation R@ sum must rise 5 points above its first value


def _mean_curve(runs, key):
    curves = [r.series(key) for r in runs]
    n = min(len(c[0]) for c in curves)
    return curves[0][0][:n], np.mean([c[1][:n] for c in curves], axis=0)


def _best_eval(run):
    return max(run.eval, key=lambda e: (e["val_img_rsum"], -e["step"]))


def table(results) -> dict:
    """Table 2's numbers per variant: the test metrics (mean of the folds) at each run's best validation
    evaluation (largest ``val_img_rsum``), averaged over the seeds; also ``best_step``, the mean step of it."""
    out = {}
    for variant, runs in results.items():
        rows = []
        for r in runs:
            best = _best_eval(r)
            rows.append({k[5:]: v for k, v in best.items() if k.startswith("test_")} | {"best_step": best["step"]})
        out[variant] = {k: float(np.mean([row[k] for row in rows])) for k in rows[0]}
    return out


def verdict(results) -> Verdict:
    """Two parts over per-seed figures paired by seed (:func:`lnedu.experiments.verdicts.compare`):
    (1) "converges faster": LN-GRU reaches the common validation target (image R@1 + R@5 + R@10, see
    :func:`~lnedu.experiments.verdicts.speed`) in fewer updates (and seconds, where logged) than the GRU;
    (2) "ends a little better": LN-GRU's test image R@ sum at its best validation model (Table 2's protocol) is
    above the GRU's. Not tested if an arm's validation R@ sum never rose 5 points above its first evaluation."""
    if not {"gru", "ln-gru"} <= set(results):
        return V.Verdict(None, "needs gru and ln-gru", "", outcome=V.UNDECIDED)
    test = {v: V.per_seed(runs, lambda r: _best_eval(r)["test_img_rsum"]) for v, runs in results.items()}
    best_at = {v: V.per_seed(runs, lambda r: _best_eval(r)["step"]) for v, runs in results.items()}
    fig = ("test image R@1+5+10 at the best validation model (5 folds): "
           + ", ".join(f"{v} {V.arm_figure(test[v], '.1f')}" for v in test)
           + "; best validation at step " + ", ".join(f"{v} {V.arm_figure(best_at[v], '.0f')}" for v in best_at))
    updates = max((e["step"] for runs in results.values() for r in runs for e in r.eval), default=0)
    note = (f"{int(updates):,} updates a run (sizes and data: the preset's settings table); the paper trains 1,024 "
            "units on COCO's VGG features for about 90,000; on the embedded 8x8 digits the test folds hold 100 "
            "images, not 1,000, so R@K is on an easier scale")
    axis = "updates (and seconds) to a validation R@ target; test R@ sum at the best validation model"
    for v in ("gru", "ln-gru"):
        ok, why = V.learned(results[v], "val_img_rsum", better="higher", margin=LEARN_MARGIN)
        if not ok:
            return V.Verdict.of([V.not_tested("both arms learned", "validation R@ sum", v, v, {v: test[v]},
                                              f"{v}: {why}")], fig, note, axis=axis, arms=test)
    sp = V.speed(results, ("ln-gru", "gru"), "val_img_rsum", better="higher")
    parts = V.speed_parts(sp, "ln-gru", "gru", f"LN-GRU converges faster than the GRU ({sp.target_text()})")
    parts.append(V.compare("LN-GRU ends better", "test image R@1+5+10 at the best validation model", "ln-gru",
                           test["ln-gru"], "gru", test["gru"], better="higher", fmt=".1f"))
    return V.Verdict.of(parts, fig, note, axis=axis, arms=test)


def describe(results) -> str:
    """Markdown for the notebook: the verdict, each part with mean ± sd (n) and the per-seed values."""
    return V.describe_parts(verdict(results), paper=PAPER_NUMBERS)


# ---------------------------------------------------------------------------------------------------------
# plot


def plot(results):
    """Figure 1's layout: validation image-retrieval R@1, R@5 and R@10 against iterations, one panel each:
    mean of the seeds (line) and their range (band)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4), sharex=True)
    for ax, k in zip(axes, (1, 5, 10)):
        for variant, runs in results.items():
            plot_band(ax, *seed_curves(runs, f"val_img_r{k}"), color=COLORS.get(variant, "k"), label=variant)
        ax.set_title(f"image retrieval R@{k} (validation)", fontsize="medium")
        ax.set_xlabel("iterations")
    axes[0].set_ylabel("recall (%)")
    axes[0].legend(frameon=False, fontsize="small")
    fig.tight_layout()
    return fig


def plot_examples(data, indices, split: str = "train"):
    """Images of ``split`` with their captions beside them: a row per image. Returns a matplotlib Figure."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(indices), 2, figsize=(8, 1.3 * len(indices)),
                             gridspec_kw={"width_ratios": [1, 6]}, squeeze=False)
    side = int(round(np.sqrt(data.feature_dim)))
    for row, i in zip(axes, indices):
        row[0].imshow(np.asarray(data.images[split][i]).reshape(side, side), cmap="gray_r")
        caps = [" ".join(data.captions[split][c]) for c in np.flatnonzero(data.caption_image[split] == i)]
        row[1].text(0, 0.5, "\n".join(caps), va="center", fontsize="small", family="monospace")
        for ax in row:
            ax.set_axis_off()
    fig.tight_layout()
    return fig
