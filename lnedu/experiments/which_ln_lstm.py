"""Notebook 15's small side-by-side training run: the character LM of notebook 09 with each published LN-LSTM
variant (:mod:`lnedu.nn.recurrent.variants`) as its recurrent layer, a few seeds each, and the shared verdict
rule (:func:`lnedu.experiments.verdicts.compare`) on the final validation bpc, paired by seed.

Not a registered experiment (it has no claim of a paper to test): a question the trackers ask, answered at a
small scale. The pictures are :func:`lnedu.viz.variants.plot_side_by_side`.
"""

from __future__ import annotations

import numpy as np

from ..nn.recurrent.variants import build
from . import charlm_model, verdicts

__all__ = ["side_by_side", "side_by_side_verdicts"]


def side_by_side(names, seeds, config, *, build_task=None) -> dict:
    """Train the character LM of notebook 09 (:mod:`lnedu.experiments.charlm_model`) with each variant's layer,
    once per seed, for ``config.steps`` updates; returns ``{name: {seed: {"valid_bpc", "first_valid_bpc",
    "curve"}}}`` (the validation bpc at the end, at the start, and after every ``config.eval_every`` updates)."""
    def layer(c, name, vocab_size, rng, dtype=np.float32):
        return build(name, vocab_size, c.hidden, rng=rng, dtype=dtype)

    make = build_task or charlm_model.build_task
    results = {}
    for name in names:
        results[name] = {}
        for seed in seeds:
            task = make(config, name, seed, layer, "ptb")
            curve = [task.evaluate()["valid_bpc"]]
            for t in range(1, config.steps + 1):
                task.step()
                if t % config.eval_every == 0 or t == config.steps:
                    curve.append(task.evaluate()["valid_bpc"])
            results[name][seed] = {"valid_bpc": curve[-1], "first_valid_bpc": curve[0], "curve": curve}
    return results


def side_by_side_verdicts(results: dict, reference: str):
    """For each variant, :func:`lnedu.experiments.verdicts.compare` of "it reaches a lower final validation
    bpc than ``reference``", paired by seed (held / did not hold / undecided within seed noise)."""
    ref = {s: r["valid_bpc"] for s, r in results[reference].items()}
    out = {}
    for name, runs in results.items():
        if name == reference:
            continue
        out[name] = verdicts.compare(f"{name} below {reference}", "final valid bpc", name,
                                     {s: r["valid_bpc"] for s, r in runs.items()}, reference, ref)
    return out
