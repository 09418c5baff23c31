"""The README's cost table: ``python -m lnedu run NAME --preset P --plan`` for every experiment and preset.

Each row is one plan (:mod:`lnedu.experiments.plan`): the measured seconds per update on this machine, the whole
run projected from them (every variant x seed, evaluations included where timed), and the run projected on the
stated GPU from the FLOPs. Paper-size updates are measured on each experiment's stand-in data where the real set
is absent (the row says so), with evaluations left out (one paper-size evaluation can take minutes on a CPU), and
for a grid of more than six variants three of them measured and the others projected at their mean.

Usage::

    python benchmarks/plan_table.py                       # every experiment, every preset: prints the table
    python benchmarks/plan_table.py --presets tiny small  # some presets
    python benchmarks/plan_table.py --write README.md     # also replace the table between the README's markers

Run it with one BLAS thread (``OPENBLAS_NUM_THREADS=1``), as ``make reproduce`` runs the notebooks.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

from tqdm.auto import tqdm

from lnedu import experiments
from lnedu.experiments.plan import GPU, cpu_matmul_rate, plan

BEGIN, END = "<!-- plan-table: begin -->", "<!-- plan-table: end -->"
PRESETS = ("tiny", "small", "medium", "paper")


def table(names, presets, *, timed=2, cache: Path | None = None) -> str:
    """The table's markdown; with ``cache`` (a JSON file), rows measured before are kept and only the missing ones
    measured, so the table can be built in parts (the paper rows when the machine is quiet)."""
    done = json.loads(cache.read_text(encoding="utf-8")) if cache and cache.exists() else {}
    jobs = [(n, p) for n in names for p in presets if p in experiments.get(n).PRESETS and f"{n}/{p}" not in done]
    for name, preset in tqdm(jobs, desc="plans"):
        exp = experiments.get(name)
        big = preset == "paper" and len(exp.VARIANTS) > 6  # a large grid at paper size: 3 variants, the rest projected
        p = plan(exp, preset, timed=timed, evaluate=preset != "paper", sample=3 if big else None)
        r = p.to_row()
        data = "stand-in" if "stand-in" in p.data else "embedded/real"
        done[f"{name}/{preset}"] = (f"| {name} | `{preset}` | {r['runs']} | {r['params']:,} | {r['updates']:,} | "
                                    f"{r['s/update']:.3g} | {r['this CPU']} | {r['GPU (projected)']} | {data} |")
        if cache:
            cache.write_text(json.dumps(done, indent=1), encoding="utf-8")
    rows = [done[f"{n}/{p}"] for n in names for p in PRESETS if f"{n}/{p}" in done]
    rate = GPU["peak_tflops"] * GPU["sustained_fraction"]
    head = [
        f"Measured on {platform.processor() or platform.machine()}, {os.cpu_count()} cores, one BLAS thread "
        f"(float32 matrix product: {cpu_matmul_rate():.0f} GFLOP/s), {time.strftime('%Y-%m-%d')}, with "
        "`python benchmarks/plan_table.py` (`--timed 1` for the `paper` rows). *s/update*: the median over the "
        "variants, each timed after one warm-up update. *This CPU*: each variant's measured s/update times its "
        "updates, summed over every variant x seed, evaluations included except at `paper`. *GPU*: FLOPs / "
        f"{rate:.3g} TFLOP/s, an assumed {GPU['sustained_fraction']:.0%} of an {GPU['name']}'s "
        f"{GPU['peak_tflops']:g} TFLOP/s: a floor, not a measurement. *stand-in*: the real set is not on this "
        "machine, so the update was measured on generated data of its shapes.",
        "",
        "| experiment | preset | runs | parameters | updates/run | s/update | this CPU | GPU (projected) | data |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    return "\n".join(head + rows)


def write_into(path: Path, text: str) -> None:
    doc = path.read_text(encoding="utf-8")
    if BEGIN not in doc or END not in doc:
        raise ValueError(f"{path}: expected the markers {BEGIN} and {END}")
    before, rest = doc.split(BEGIN, 1)
    _, after = rest.split(END, 1)
    path.write_text(f"{before}{BEGIN}\n{text}\n{END}{after}", encoding="utf-8")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--experiments", nargs="+", default=experiments.names())
    ap.add_argument("--presets", nargs="+", default=list(PRESETS))
    ap.add_argument("--timed", type=int, default=2, help="updates timed per variant (default 2)")
    ap.add_argument("--write", type=Path, help="replace the table between the markers of this file (README.md)")
    ap.add_argument("--cache", type=Path, help="a JSON file of rows already measured: kept, the missing ones added")
    args = ap.parse_args(argv)
    text = table(args.experiments, args.presets, timed=args.timed, cache=args.cache)
    print(text)
    if args.write:
        write_into(args.write, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
