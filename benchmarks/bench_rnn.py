"""One training step of a layer-normalized recurrent layer: lnedu's hand-written BPTT vs PyTorch autograd.

The contenders compute the same thing, on the CPU, in float32:

* **lnedu**: ``LSTM(D, H, ln="appendix")`` (or ``GRU``) forward over ``(T, B, D)``, the squared-error loss
  against a fixed target, backprop through time by hand, then ``Adam.step()``;
* **torch**: the same cell written in PyTorch (appendix Eq. 20-22 and 26-28 of Ba, Kiros & Hinton 2016) with
  ``nn.LayerNorm`` inside a Python loop over time, ``loss.backward()`` (autograd) and ``torch.optim.Adam``.

Both hoist the input projection out of the loop (one ``(T*B, D) @ (D, kH)`` product and its layer norm for
all steps, since it does not depend on the recurrence), as a careful author would on either side. The torch
model is built from lnedu's initial weights, and a float64 cross-check confirms that the two compute the
same loss and gradients before anything is timed.

Timing interleaves the contenders round-robin (``benchmarks/_timing.py``) and reports the median ms per
step and the ratio lnedu/torch (below 1: lnedu is faster). ``lnedu-ref`` is the same lnedu step under
``lnedu.functional.use_reference()`` (the reference bodies only, no cache-blocked layer norm of the big
input term), and ``lnedu/lnedu-ref`` what the registered CPU fast path buys. Memory per step:

* lnedu: the peak of NumPy allocations during one step (``tracemalloc``, which sees NumPy's buffers), and
  the bytes the layer keeps for its backward (its caches after ``forward``);
* torch: the bytes autograd saves for backward (unique storages packed by ``saved_tensors_hooks``).
  PyTorch's CPU allocator exposes no peak statistic, so the saved-tensor size is the comparable number.

Then one update of an experiment model, on both sides: the permutation-MNIST MLP of
``lnedu.experiments.mnist_mlp`` (arm ``ln``: two hidden layers of Linear without bias, LayerNorm, ReLU, then
Linear; B=128, 784 inputs, H=256, 10 classes) against the same ``torch.nn.Sequential`` holding its weights,
cross-entropy, backward and Adam (float64 cross-check first); and the handwriting model of
``lnedu.experiments.handwriting`` at its small preset's sizes (one LN-LSTM layer, H=64, an 8-component
mixture density head, T=60, B=8; the MDN NLL, BPTT and Adam with the gradient norm clipped at 10) against the
same network in PyTorch (the LN-LSTM above, ``nn.Linear`` and the MDN NLL written with torch operations).

Last, the attentive reader's batch-normalized LSTM (``lnedu.nn.BNLSTM``, Cooijmans et al.'s Eq. 6-8, gamma 0.1,
statistics per time step) at that experiment's small preset's sizes (its batch, word vector and hidden sizes, read
from the preset; T=30 words, our choice), one training step as above, lnedu against ``lnedu-ref`` only: its step
is the reference one, and what the fast path changes is the batch norm of each (B, 4H) term
(``lnedu.functional._numba``). PyTorch has no recurrent batch norm to compare with.

Usage::

    python benchmarks/bench_rnn.py              # T=50, B=32, D=64, H=256 (the issue's sizes)
    python benchmarks/bench_rnn.py --quick      # tiny sizes, few rounds: a smoke run
    python benchmarks/bench_rnn.py --json out.json
"""

from __future__ import annotations

import argparse
import os
import sys
import tracemalloc

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _timing import compare, environment, format_environment, format_table, write_json  # noqa: E402

from lnedu.functional import use_reference  # noqa: E402
from lnedu.nn import GRU, LSTM  # noqa: E402
from lnedu.optim import Adam  # noqa: E402

CELLS = {"LN-LSTM": LSTM, "LN-GRU": GRU}
LR = 1e-3
SIZES = {"full": dict(T=50, B=32, D=64, H=256), "quick": dict(T=6, B=4, D=8, H=16)}


# ---------------------------------------------------------------------------------------------------
# the PyTorch peer: the same cells, parameters named as lnedu's, autograd for the backward

torch = None  # imported by load_torch(), only when the peer runs (the import alone takes seconds)
TORCH_CELLS = {}


def load_torch():
    """Import PyTorch and define the peer's cells; returns the module, or ``None`` when it is not installed."""
    global torch
    if torch is not None:
        return torch
    try:
        import torch as _torch  # noqa: PLC0415
    except ImportError:
        return None
    torch = _torch

    class TorchLNLSTM(torch.nn.Module):
        """LN-LSTM, appendix Eq. 20-22 (gate order f, i, o, g, as lnedu's):
        ``a = LN(W_h h; g_h, b_h) + LN(W_x x; g_x, b_x) + b``, ``c = s(f) c + s(i) tanh(g)``,
        ``h = s(o) tanh(LN(c; g_c, b_c))``, with ``nn.LayerNorm`` in a Python loop over time."""

        def __init__(self, D, H):
            super().__init__()
            self.H = H
            self.W_x = torch.nn.Parameter(torch.empty(D, 4 * H))
            self.W_h = torch.nn.Parameter(torch.empty(H, 4 * H))
            self.b = torch.nn.Parameter(torch.zeros(4 * H))
            self.ln_x = torch.nn.LayerNorm(4 * H, eps=1e-5)
            self.ln_h = torch.nn.LayerNorm(4 * H, eps=1e-5)
            self.ln_c = torch.nn.LayerNorm(H, eps=1e-5)

        def forward(self, x):
            T, B, _ = x.shape
            H = self.H
            ax = self.ln_x(x @ self.W_x) + self.b  # all steps at once: the input path has no recurrence
            h = x.new_zeros(B, H)
            c = x.new_zeros(B, H)
            outs = []
            for t in range(T):
                a = ax[t] + self.ln_h(h @ self.W_h)
                f, i, o, g = a.split(H, dim=1)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(self.ln_c(c))
                outs.append(h)
            return torch.stack(outs)

    class TorchLNGRU(torch.nn.Module):
        """LN-GRU, appendix Eq. 26-28 with lnedu's biases (gate order z, r; reset after ``U``):
        ``(z; r) = LN(W_h h; g_h, b_h) + LN(W_x x; g_x, b_x) + b``,
        ``h~ = tanh(LN(W_xhat x; g_xhat, b_xhat) + b_hat + s(r) * LN(W_hhat h; g_hhat, b_hhat))``,
        ``h = (1 - s(z)) h + s(z) h~``.
        Like lnedu's layer it takes the gates' and the candidate's products of ``x`` and of ``h`` together."""

        def __init__(self, D, H):
            super().__init__()
            self.H = H
            self.W_x = torch.nn.Parameter(torch.empty(D, 2 * H))
            self.W_h = torch.nn.Parameter(torch.empty(H, 2 * H))
            self.W_xhat = torch.nn.Parameter(torch.empty(D, H))
            self.W_hhat = torch.nn.Parameter(torch.empty(H, H))
            self.b = torch.nn.Parameter(torch.zeros(2 * H))
            self.b_hat = torch.nn.Parameter(torch.zeros(H))
            self.ln_x = torch.nn.LayerNorm(2 * H, eps=1e-5)
            self.ln_h = torch.nn.LayerNorm(2 * H, eps=1e-5)
            self.ln_xhat = torch.nn.LayerNorm(H, eps=1e-5)
            self.ln_hhat = torch.nn.LayerNorm(H, eps=1e-5)

        def forward(self, x):
            T, B, _ = x.shape
            H = self.H
            ax = x @ torch.cat([self.W_x, self.W_xhat], dim=1)  # hoisted input paths
            a_gates = self.ln_x(ax[..., : 2 * H]) + self.b
            a_cand = self.ln_xhat(ax[..., 2 * H:]) + self.b_hat
            W_hh = torch.cat([self.W_h, self.W_hhat], dim=1)
            h = x.new_zeros(B, H)
            outs = []
            for t in range(T):
                hh = h @ W_hh
                z, r = (a_gates[t] + self.ln_h(hh[:, : 2 * H])).sigmoid().split(H, dim=1)
                cand = torch.tanh(a_cand[t] + r * self.ln_hhat(hh[:, 2 * H:]))
                h = (1 - z) * h + z * cand
                outs.append(h)
            return torch.stack(outs)

    TORCH_CELLS.update({"LN-LSTM": TorchLNLSTM, "LN-GRU": TorchLNGRU})
    return torch


def torch_from_lnedu(name, layer):
    """The PyTorch model of ``name`` holding copies of ``layer``'s parameters (``ln_k.weight`` is lnedu's
    ``g_k``, ``ln_k.bias`` its ``b_k``; every other name is the same)."""
    model = TORCH_CELLS[name](layer.input_size, layer.hidden_size)
    dtype = torch.float64 if layer.dtype == np.float64 else torch.float32
    model = model.to(dtype)
    with torch.no_grad():
        for tname, p in model.named_parameters():
            p.copy_(torch.from_numpy(np.ascontiguousarray(layer.params[_lnedu_name(tname)])))
    return model


def _lnedu_name(tname):
    """``ln_x.weight`` -> ``g_x``, ``ln_x.bias`` -> ``b_x``, ``W_h`` -> ``W_h``."""
    mod, _, leaf = tname.partition(".")
    if not leaf:
        return tname
    return ("g_" if leaf == "weight" else "b_") + mod[len("ln_"):]


# ---------------------------------------------------------------------------------------------------
# one training step on each side: squared error against a fixed target, backward, Adam


def make_lnedu_step(layer, x, y, lr=LR):
    opt = Adam(layer, lr=lr)
    scale = 1.0 / y.size

    def step():
        opt.zero_grad()
        out, _ = layer.forward(x)
        diff = out - y
        loss = 0.5 * scale * float(np.vdot(diff, diff))
        diff *= scale
        layer.backward(diff)
        opt.step()
        return loss

    return step


def make_torch_step(model, x, y, lr=LR):
    opt = torch.optim.Adam(model.parameters(), lr=lr)

    def step():
        opt.zero_grad(set_to_none=True)
        out = model(x)
        loss = 0.5 * ((out - y) ** 2).mean()
        loss.backward()
        opt.step()
        return loss.detach().item()

    return step


def cross_check(name, sizes, seed=0):
    """Max relative difference, over the loss and every parameter gradient, of lnedu and torch in float64,
    from the same weights (LN gains and biases drawn away from 1 and 0 so that a swapped name would show)."""
    T, B, D, H = sizes["T"], sizes["B"], sizes["D"], sizes["H"]
    rng = np.random.default_rng(seed)
    layer = CELLS[name](D, H, ln="appendix", rng=rng, dtype=np.float64)
    for k, p in layer.params.items():
        if k.startswith(("g_", "b")):
            p[...] = (1.0 if k.startswith("g_") else 0.0) + 0.3 * rng.standard_normal(p.shape)
    x = rng.standard_normal((T, B, D))
    y = rng.standard_normal((T, B, H))
    model = torch_from_lnedu(name, layer)

    layer.zero_grad()
    out, _ = layer.forward(x)
    diff = out - y
    loss = 0.5 * float(np.vdot(diff, diff)) / y.size
    layer.backward(diff / y.size)
    tl = 0.5 * ((model(torch.from_numpy(x)) - torch.from_numpy(y)) ** 2).mean()
    tl.backward()
    tl_value = float(tl.detach())
    worst = abs(loss - tl_value) / abs(tl_value)
    for tname, p in model.named_parameters():
        g = layer.grads[_lnedu_name(tname)]
        tg = p.grad.numpy()
        worst = max(worst, float(np.abs(g - tg).max() / max(np.abs(tg).max(), 1e-300)))
    return worst


# ---------------------------------------------------------------------------------------------------
# memory per step


def _nbytes_reachable(obj, skip_ids):
    """Bytes of the distinct NumPy buffers reachable from ``obj`` (tuples, lists, dicts, named tuples); a view
    counts as its base array, each base once."""
    seen, total, stack = set(), 0, [obj]
    while stack:
        o = stack.pop()
        if isinstance(o, np.ndarray):
            base = o
            while isinstance(base.base, np.ndarray):
                base = base.base
            if id(base) not in seen and id(base) not in skip_ids:
                seen.add(id(base))
                total += base.nbytes
        elif isinstance(o, dict):
            stack.extend(o.values())
        elif isinstance(o, (tuple, list)):
            stack.extend(o)
    return total


def lnedu_memory(layer, step):
    """``(peak, kept)``: the peak of NumPy allocations during one step above what was live before it
    (``tracemalloc``), and the bytes of the caches the layer keeps from forward for backward."""
    step()  # settle the optimizer's moments, so that the measured step is a steady-state one
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        step()
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    params = {id(p) for _, p, _ in layer.named_parameters()}
    kept = _nbytes_reachable(layer._cache, params)
    return peak, kept


def torch_saved_bytes(model, x, y):
    """Bytes of the distinct tensor storages autograd saves for backward during one forward."""
    storages = {}

    def pack(t):
        s = t.untyped_storage()
        storages[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = 0.5 * ((model(x) - y) ** 2).mean()
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    del loss
    return sum(n for ptr, n in storages.items() if ptr not in params)


# ---------------------------------------------------------------------------------------------------
# the run


def _mib(n):
    return n / 2**20


def run(sizes, *, rounds, min_time, use_torch, seed=0):
    """Time and measure every cell; returns a list of result dicts (and prints as it goes)."""
    T, B, D, H = sizes["T"], sizes["B"], sizes["D"], sizes["H"]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, B, D)).astype(np.float32)
    y = rng.standard_normal((T, B, H)).astype(np.float32)
    results = []
    for name, cls in CELLS.items():
        layer = cls(D, H, ln="appendix", rng=seed, dtype=np.float32)
        contenders = {}
        res = {"cell": name}
        if use_torch:
            res["check_rel_diff"] = cross_check(name, SIZES["quick"], seed)
            model = torch_from_lnedu(name, layer)
            tx, ty = torch.from_numpy(x), torch.from_numpy(y)
            res["torch_saved_bytes"] = torch_saved_bytes(model, tx, ty)
            contenders["torch"] = make_torch_step(model, tx, ty)
        step = make_lnedu_step(layer, x, y)
        res["lnedu_peak_bytes"], res["lnedu_kept_bytes"] = lnedu_memory(layer, make_lnedu_step(layer, x, y))
        reference_step = make_lnedu_step(cls(D, H, ln="appendix", rng=seed, dtype=np.float32), x, y)

        def lnedu_reference(reference_step=reference_step):  # the reference bodies only (no blocked NumPy)
            with use_reference():
                return reference_step()

        contenders = {"lnedu": step, "lnedu-ref": lnedu_reference, **contenders}
        timings = compare(contenders, rounds=rounds, min_time=min_time)
        title = f"{name}: one training step (forward, BPTT, Adam), float32, T={T} B={B} D={D} H={H}"
        print(format_table(title, timings, ratios=[("lnedu", "torch"), ("lnedu", "lnedu-ref")]))
        res["ratio_lnedu_over_reference"] = timings["lnedu"].median / timings["lnedu-ref"].median
        for k, t in timings.items():
            res[k] = t.as_dict()
        if use_torch:
            res["ratio_lnedu_over_torch"] = timings["lnedu"].median / timings["torch"].median
        mem = (f"  memory per step: lnedu peak {_mib(res['lnedu_peak_bytes']):.2f} MiB (tracemalloc), "
               f"kept for backward {_mib(res['lnedu_kept_bytes']):.2f} MiB")
        if use_torch:
            mem += f"; torch saved for backward {_mib(res['torch_saved_bytes']):.2f} MiB"
        print(mem)
        if use_torch:
            print(f"  same model: max rel. diff of loss and gradients vs torch (float64) "
                  f"{res['check_rel_diff']:.1e}")
        print()
        results.append(res)
    return results


# ---------------------------------------------------------------------------------------------------
# experiment models: the permutation-MNIST MLP with layer norm (lnedu.experiments.mnist_mlp, arm "ln")

MLP_SIZES = {"full": dict(B=128, D=784, H=256, C=10), "quick": dict(B=8, D=20, H=16, C=5)}


def _mlp_pair(sizes, dtype, seed=0):
    """lnedu's MNIST MLP (arm ``ln``: Linear without bias, LayerNorm, ReLU; twice; then Linear) and the same
    network in PyTorch holding copies of its weights, with one batch of data."""
    from lnedu.experiments.mnist_mlp import build_model

    B, D, H, C = sizes["B"], sizes["D"], sizes["H"], sizes["C"]
    rng = np.random.default_rng(seed)
    model = build_model(f"ln-bs{B}", D, C, H, 2, rng, dtype=dtype)
    nn = torch.nn
    peer = nn.Sequential(nn.Linear(D, H, bias=False), nn.LayerNorm(H), nn.ReLU(), nn.Linear(H, H, bias=False),
                         nn.LayerNorm(H), nn.ReLU(), nn.Linear(H, C))
    peer = peer.to(torch.float64 if dtype == np.float64 else torch.float32)
    ours = [p for _, p, _ in model.named_parameters()]
    theirs = list(peer.parameters())
    assert len(ours) == len(theirs), (len(ours), len(theirs))
    with torch.no_grad():
        for a, t in zip(ours, theirs):
            t.copy_(torch.from_numpy(np.ascontiguousarray(a.T if a.ndim == 2 else a)))  # torch keeps W as (out, in)
    x = rng.standard_normal((B, D)).astype(dtype)
    y = rng.integers(0, C, B)
    return model, peer, x, y


def make_mlp_steps(model, peer, x, y, lr=LR):
    """One update each: forward, cross-entropy, backward, Adam."""
    lnedu_step = _lnedu_mlp_step(model, x, y, lr)
    topt = torch.optim.Adam(peer.parameters(), lr=lr)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)

    def torch_step():
        topt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(peer(tx), ty)
        loss.backward()
        topt.step()
        return loss.detach().item()

    return lnedu_step, torch_step


def mlp_cross_check(seed=0):
    """Max relative difference of the loss and every gradient, lnedu vs torch, in float64."""
    import lnedu.functional as F

    model, peer, x, y = _mlp_pair(MLP_SIZES["quick"], np.float64, seed)
    model.zero_grad()
    loss, cache = F.softmax_cross_entropy(model.forward(x), y)
    model.backward(F.softmax_cross_entropy_backward(1.0, cache))
    tloss = torch.nn.functional.cross_entropy(peer(torch.from_numpy(x)), torch.from_numpy(y))
    tloss.backward()
    diffs = [abs(float(loss) - tloss.item()) / abs(tloss.item())]
    for (_, _, g), t in zip(model.named_parameters(), peer.parameters()):
        tg = t.grad.numpy()
        tg = tg.T if tg.ndim == 2 else tg
        diffs.append(float(np.abs(g - tg).max() / max(np.abs(tg).max(), 1e-300)))
    return max(diffs)


def run_models(quick, *, rounds, min_time, use_torch, seed=0):
    """Time one update of each experiment model; returns a list of result dicts (and prints as it goes)."""
    sizes = MLP_SIZES["quick" if quick else "full"]
    model, peer, x, y = _mlp_pair(sizes, np.float32, seed) if use_torch else _lnedu_mlp(sizes, seed)
    res = {"model": "MNIST-MLP-LN", "sizes": sizes}
    contenders = {}
    if use_torch:
        lnedu_step, torch_step = make_mlp_steps(model, peer, x, y)
        res["check_rel_diff"] = mlp_cross_check(seed)
        contenders["torch"] = torch_step
    else:
        lnedu_step = _lnedu_mlp_step(model, x, y)

    _time_update(res, "MNIST-MLP-LN: one update (forward, cross-entropy, backward, Adam)", sizes, lnedu_step,
                 contenders, rounds=rounds, min_time=min_time)
    return [res, run_handwriting(quick, rounds=rounds, min_time=min_time, use_torch=use_torch, seed=seed),
            run_bn_lstm(quick, rounds=rounds, min_time=min_time, seed=seed)]


def run_bn_lstm(quick, *, rounds, min_time, seed=0):
    """One training step of the attentive reader's BN-LSTM at its small preset's sizes (``--quick``: tiny ones,
    still big enough for the fast batch norm), lnedu against the reference bodies; returns the result dict."""
    from lnedu.experiments.attentive_reader import PRESETS
    from lnedu.nn import BNLSTM

    c = PRESETS["small"]
    sizes = dict(T=5, B=4, D=8, H=32) if quick else dict(T=30, B=c.batch_size, D=c.embed, H=c.hidden)
    T, B, D, H = sizes["T"], sizes["B"], sizes["D"], sizes["H"]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, B, D)).astype(np.float32)
    y = rng.standard_normal((T, B, H)).astype(np.float32)
    layer = BNLSTM(D, H, gamma=0.1, max_steps=T, rng=seed, dtype=np.float32)
    res = {"model": "BN-LSTM", "sizes": sizes}
    _time_update(res, "BN-LSTM (the attentive reader's cell): one training step (forward, BPTT, Adam)", sizes,
                 make_lnedu_step(layer, x, y), {}, rounds=rounds, min_time=min_time)
    res["ratio_lnedu_over_reference"] = res["lnedu"]["median_ms"] / res["lnedu-ref"]["median_ms"]
    return res


HW_SIZES = {"full": dict(T=60, B=8, H=64, M=8), "quick": dict(T=5, B=3, H=6, M=2)}  # the small preset's sizes


def _hw_data(sizes, dtype, rng):
    """Pen offsets ``x`` (T, B, 3) and next offsets ``y``, the third column an end-of-stroke bit."""
    T, B = sizes["T"], sizes["B"]
    x, y = (rng.standard_normal((T, B, 3)).astype(dtype) for _ in range(2))
    for a in (x, y):
        a[..., 2] = rng.random((T, B)) < 0.1
    return x, y


def _hw_pair(sizes, dtype, seed=0, *, with_torch=True):
    """lnedu's handwriting model (one LN-LSTM layer, ``ln="appendix"``, and the MDN output layer of
    ``lnedu.experiments.handwriting``) and, with ``with_torch``, the same network in PyTorch."""
    from lnedu.experiments.handwriting import HandwritingModel

    rng = np.random.default_rng(seed)
    model = HandwritingModel(sizes["H"], 1, sizes["M"], ln="appendix", rng=rng, dtype=dtype)
    x, y = _hw_data(sizes, dtype, rng)
    if not with_torch:
        return model, None, x, y
    rnn = torch_from_lnedu("LN-LSTM", model.rnns[0])
    out = torch.nn.Linear(sizes["H"], 1 + 6 * sizes["M"]).to(rnn.W_x.dtype)
    with torch.no_grad():
        out.weight.copy_(torch.from_numpy(np.ascontiguousarray(model.out.params["W"].T)))
        out.bias.copy_(torch.from_numpy(model.out.params["b"]))
    return model, torch.nn.Sequential(rnn, out), x, y


def torch_mdn_nll(y_hat, x, M):
    """The mean NLL of ``lnedu.functional.mdn_nll`` (no mask), written with PyTorch's operations."""
    F_ = torch.nn.functional
    Y, X = y_hat.reshape(-1, 1 + 6 * M), x.reshape(-1, 3)
    e_hat = Y[:, 0]
    pi_hat, mu1, mu2, ls1, ls2, rho_hat = Y[:, 1:].split(M, dim=1)
    u1, u2 = (X[:, :1] - mu1) / ls1.exp(), (X[:, 1:2] - mu2) / ls2.exp()
    rho = torch.tanh(rho_hat)
    one_m_r2 = 1 - rho * rho
    log_n = (-np.log(2 * np.pi) - ls1 - ls2 - 0.5 * torch.log(one_m_r2)
             - 0.5 * (u1 * u1 + u2 * u2 - 2 * rho * u1 * u2) / one_m_r2)
    log_mix = torch.logsumexp(F_.log_softmax(pi_hat, dim=1) + log_n, dim=1)
    nll_pen = F_.softplus(torch.where(X[:, 2] > 0.5, -e_hat, e_hat))
    return (nll_pen - log_mix).mean()


def _lnedu_hw_step(model, x, y, lr=LR, clip=10.0):
    from lnedu.functional.mdn import mdn_nll, mdn_nll_backward

    opt = Adam(model, lr=lr, clip=clip)

    def step():
        model.train()
        loss, cache = mdn_nll(model.forward(x), y)
        opt.zero_grad()
        model.backward(mdn_nll_backward(1.0, cache))
        opt.step()
        return loss

    return step


def _torch_hw_step(peer, x, y, M, lr=LR, clip=10.0):
    opt = torch.optim.Adam(peer.parameters(), lr=lr)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = torch_mdn_nll(peer(tx), ty, M)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(peer.parameters(), clip)
        opt.step()
        return loss.detach().item()

    return step


def hw_cross_check(seed=0):
    """Max relative difference of the loss and every gradient, lnedu vs torch, in float64."""
    from lnedu.functional.mdn import mdn_nll, mdn_nll_backward

    sizes = HW_SIZES["quick"]
    model, peer, x, y = _hw_pair(sizes, np.float64, seed)
    model.zero_grad()
    loss, cache = mdn_nll(model.forward(x), y)
    model.backward(mdn_nll_backward(1.0, cache))
    tloss = torch_mdn_nll(peer(torch.from_numpy(x)), torch.from_numpy(y), sizes["M"])
    tloss.backward()
    diffs = [abs(loss - tloss.item()) / abs(tloss.item())]
    ours = {name: g for name, _, g in model.named_parameters()}
    rnn, out = peer
    for tname, t in rnn.named_parameters():
        tg = t.grad.numpy()
        g = ours[f"rnn0.{_lnedu_name(tname)}"]
        diffs.append(float(np.abs(g - tg).max() / max(np.abs(tg).max(), 1e-300)))
    for g, tg in ((ours["out.W"], out.weight.grad.numpy().T), (ours["out.b"], out.bias.grad.numpy())):
        diffs.append(float(np.abs(g - tg).max() / max(np.abs(tg).max(), 1e-300)))
    return max(diffs)


def run_handwriting(quick, *, rounds, min_time, use_torch, seed=0):
    """Time one update of the handwriting model (LN-LSTM and MDN head) on both sides."""
    sizes = HW_SIZES["quick" if quick else "full"]
    model, peer, x, y = _hw_pair(sizes, np.float32, seed, with_torch=use_torch)
    res = {"model": "handwriting-LN-LSTM-MDN", "sizes": sizes}
    contenders = {}
    if use_torch:
        res["check_rel_diff"] = hw_cross_check(seed)
        contenders["torch"] = _torch_hw_step(peer, x, y, sizes["M"])
    _time_update(res, "handwriting LN-LSTM + MDN: one update (forward, MDN NLL, BPTT, clipped Adam)", sizes,
                 _lnedu_hw_step(model, x, y), contenders, rounds=rounds, min_time=min_time)
    return res


def _time_update(res, what, sizes, lnedu_step, others, *, rounds, min_time):
    """Time one model's update: lnedu, lnedu under ``use_reference()`` and ``others`` (PyTorch, when present),
    interleaved; print the table (and the float64 cross-check in ``res``) and store the timings in ``res``."""
    def lnedu_reference():
        with use_reference():
            return lnedu_step()

    timings = compare({"lnedu": lnedu_step, "lnedu-ref": lnedu_reference, **others}, rounds=rounds, min_time=min_time)
    title = f"{what}, float32, " + " ".join(f"{k}={v}" for k, v in sizes.items())
    print(format_table(title, timings, ratios=[("lnedu", "torch"), ("lnedu", "lnedu-ref")]))
    for k, t in timings.items():
        res[k] = t.as_dict()
    if "torch" in timings:
        res["ratio_lnedu_over_torch"] = timings["lnedu"].median / timings["torch"].median
        print(f"  same model: max rel. diff of loss and gradients vs torch (float64) {res['check_rel_diff']:.1e}")
    print()


def _lnedu_mlp(sizes, seed):
    from lnedu.experiments.mnist_mlp import build_model

    rng = np.random.default_rng(seed)
    model = build_model(f"ln-bs{sizes['B']}", sizes["D"], sizes["C"], sizes["H"], 2, rng, dtype=np.float32)
    return model, None, rng.standard_normal((sizes["B"], sizes["D"])).astype(np.float32), \
        rng.integers(0, sizes["C"], sizes["B"])


def _lnedu_mlp_step(model, x, y, lr=LR):
    import lnedu.functional as F

    opt = Adam(model, lr=lr)

    def step():
        model.train()
        opt.zero_grad()
        loss, cache = F.softmax_cross_entropy(model.forward(x), y)
        model.backward(F.softmax_cross_entropy_backward(1.0, cache), input_grad=False)  # as the experiment does
        opt.step()
        return loss

    return step


def summary(results, use_torch):
    head = f"{'cell':<8}  {'lnedu ms':>9}"
    if use_torch:
        head += f"  {'torch ms':>9}  {'lnedu/torch':>11}"
    head += f"  {'lnedu peak MiB':>14}  {'lnedu kept MiB':>14}"
    if use_torch:
        head += f"  {'torch saved MiB':>15}"
    lines = ["summary (median per step; memory per step)", head]
    for r in results:
        line = f"{r['cell']:<8}  {r['lnedu']['median_ms']:9.2f}"
        if use_torch:
            line += f"  {r['torch']['median_ms']:9.2f}  {r['ratio_lnedu_over_torch']:10.2f}x"
        line += f"  {_mib(r['lnedu_peak_bytes']):14.2f}  {_mib(r['lnedu_kept_bytes']):14.2f}"
        if use_torch:
            line += f"  {_mib(r['torch_saved_bytes']):15.2f}"
        lines.append(line)
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes and few rounds (a smoke run)")
    ap.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 15; 3 with --quick)")
    ap.add_argument("--threads", type=int, default=None,
                    help="threads for both sides: PyTorch's intra-op pool and NumPy's BLAS (default: each "
                         "library's own choice)")
    ap.add_argument("--no-torch", action="store_true", help="time lnedu alone")
    ap.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = ap.parse_args(argv)

    sizes = SIZES["quick" if args.quick else "full"]
    rounds = args.rounds or (3 if args.quick else 15)
    min_time = 0.002 if args.quick else 0.05
    use_torch = not args.no_torch and load_torch() is not None
    if args.threads:
        if args.threads < 1:
            ap.error(f"--threads: expected a positive count, got {args.threads}")
        from threadpoolctl import threadpool_limits  # noqa: PLC0415  (a scikit-learn dependency)

        threadpool_limits(limits=args.threads)  # stays in force (it is undone only by an explicit restore)
        if use_torch:
            torch.set_num_threads(args.threads)

    env = environment()
    print("lnedu recurrent training step vs PyTorch autograd (CPU)")
    print(format_environment(env))
    if use_torch:
        print(f"torch {torch.__version__}, {torch.get_num_threads()} intra-op thread(s)")
    else:
        print("torch: not used" + ("" if args.no_torch else " (not installed)"))
    print()
    results = run(sizes, rounds=rounds, min_time=min_time, use_torch=use_torch)
    models = run_models(args.quick, rounds=rounds, min_time=min_time, use_torch=use_torch)
    print(summary(results, use_torch))
    if args.json:
        payload = {"sizes": sizes, "environment": env, "results": results, "models": models,
                   "torch": None if not use_torch else {"version": torch.__version__,
                                                        "threads": torch.get_num_threads()}}
        write_json(args.json, payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
