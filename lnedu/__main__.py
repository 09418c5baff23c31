"""The command line: ``python -m lnedu COMMAND``.

Commands:

* ``reproduce [--notebooks DIR] [--out DIR] [--only NAME ...] [--preset small|medium] [--jobs N]``: execute every
  notebook headless on the embedded defaults and write HTML pages, ``summary.md`` and ``index.html`` into
  ``--out`` (``reports/``); the experiments run at ``--preset`` (default ``small``), N runs and then N notebooks
  at a time.
* ``notebooks --execute-in-place [PATH ...]``: re-execute stored notebooks and save their fresh outputs.
* ``list``: the experiments, with the paper's claim each one tests.
* ``run NAME [--preset tiny|small|medium|paper] [--seeds ...] [--variants ...] [--device cpu|gpu] [--out DIR]
  [--resume] [--restart-damaged] [--jobs N] [--scheduler ADDR] [--data PATH] [--set FIELD=VALUE ...]
  [--plan]``: train every variant x seed of one experiment
  into ``OUT/PRESET/NAME`` (``runs/small/mnist``: the folder the notebooks read, so a notebook opened afterwards
  shows these runs instead of training again); the seeds default to the experiment's own for the preset;
  checkpoints make ``--resume`` lose nothing, and a run whose files are damaged is refused (naming the file)
  unless ``--restart-damaged`` starts it over. A grid experiment (``GRID = True``) runs N runs at once with
  ``--jobs``, or on a Dask cluster with ``--scheduler``. ``--data PATH`` gives the real data set (a ``paper``
  preset refuses to run without it, naming the set and how to get it); ``--set`` changes config fields;
  ``--plan`` trains nothing and prints what the run will cost (:mod:`lnedu.experiments.plan`).
* ``tune NAME [--preset P] [--rates ...] [--seeds ...] [--variants ...] [--jobs N] [--out DIR] [--store]``: the
  per-variant learning-rate sweep (:mod:`lnedu.experiments.tune`): every variant at a few rates on validation
  data, seeds 100 and up; prints the table, writes it to ``OUT/PRESET/tune/NAME/table.json`` (``--store``: also
  to ``lnedu/experiments/tuned/``, what notebooks show) and says whether the preset holds the rates chosen.
* ``report [--runs DIR] [--preset NAME] [--out DIR]``: the claims table and the plots of the finished experiments
  under ``RUNS/PRESET`` (or ``RUNS`` itself when it holds the experiments' folders).
* ``data fetch NAME``: download a real data set (with its checksum) into the cache.
* ``info``: versions, the array backend and whether a GPU is usable.
* ``exercises build [--teacher --out DIR] [--check]``: write the exercise sheets (student versions, solutions
  replaced by stubs and hints) of the teaching notebooks into ``notebooks/exercises/``; ``--teacher`` writes the
  versions with solutions into ``--out``; ``--check`` only says whether the sheets are up to date.

Bad arguments, unwritable folders, damaged files and a run folder another process is writing into give one
clear line on stderr and a non-zero exit; SIGTERM stops like Ctrl-C (files already written are complete).
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path


def _cmd_reproduce(args) -> int:
    from .reproduce import reproduce

    runs = reproduce(args.notebooks, args.out, runs=args.runs, timeout=args.timeout, only=args.only,
                     preset=args.preset, jobs=args.jobs)
    if not runs:
        print(f"lnedu: no notebooks matched in {args.notebooks}", file=sys.stderr)
        return 2
    return 0 if all(r.ok for r in runs) else 1


def _cmd_notebooks(args) -> int:
    from .notebooks import execute_in_place, find_notebooks

    if not args.execute_in_place:
        for p in find_notebooks(args.folder):
            print(p)
        return 0
    paths = [Path(p) for p in args.paths] if args.paths else find_notebooks(args.folder)
    for p in paths:
        if not p.is_file():
            print(f"lnedu: paths: expected notebook files, got {str(p)!r}, which does not exist", file=sys.stderr)
            return 2
    runs = execute_in_place(paths, timeout=args.timeout)
    for r in runs:
        print(f"{'ok    ' if r.ok else 'FAILED'} {r.seconds:6.1f} s  {r.path}{'  ' + r.error if r.error else ''}")
    return 0 if all(r.ok for r in runs) else 1


def _cmd_list(args) -> int:
    from . import experiments

    for name in experiments.names():
        exp = experiments.get(name)
        print(f"{name:<14} {exp.TITLE} ({exp.PAPER})")
        print(f"{'':<14} claim: {exp.CLAIM}")
        print(f"{'':<14} variants: {', '.join(exp.VARIANTS)}; presets: {', '.join(exp.PRESETS)}")
    return 0


def _cmd_run(args) -> int:
    from . import backend, experiments
    from .experiments.runner import check_seeds
    from .experiments.verdicts import seeds_for, word_of

    exp = experiments.get(args.name)
    if args.seeds is not None:
        args.seeds = check_seeds(args.seeds)
    if args.preset not in exp.PRESETS:
        raise ValueError(f"--preset: expected one of {sorted(exp.PRESETS)}, got {args.preset!r}")
    if args.seeds is None:
        args.seeds = list(seeds_for(exp, args.preset))
    config = _config(exp, args)
    out = Path(args.out) / args.preset  # one layout: the notebooks read runs/PRESET/NAME too
    if args.jobs is not None and (args.jobs == 0 or args.jobs < -1):
        raise ValueError(f"--jobs: expected a positive number of workers or -1 (every core), got {args.jobs}")
    if args.device == "gpu" and (args.scheduler is None or args.plan):  # a cluster's workers hold the GPUs
        backend.use("cupy")
    if args.plan:
        from .experiments.plan import plan

        print(plan(exp, args.preset, config=config, variants=args.variants, seeds=args.seeds,
                   timed=args.plan_updates, evaluate=not args.plan_skip_eval, sample=args.plan_sample).to_text())
        return 0
    if args.jobs is not None or args.scheduler is not None:
        if not getattr(exp, "GRID", False):
            grids = [n for n in experiments.names() if getattr(experiments.get(n), "GRID", False)]
            raise ValueError(f"--jobs/--scheduler: expected a grid experiment ({', '.join(grids)}), got {args.name!r}, "
                             "whose runs go one after another")
        from .experiments.sweep import run_grid

        jobs = 2 if args.jobs is None else args.jobs
        run_grid(exp, args.preset, seeds=args.seeds, out=out, n_jobs=jobs, scheduler=args.scheduler,
                 variants=args.variants, resume=args.resume, config=config,
                 array_backend="cupy" if args.device == "gpu" else "numpy", restart_damaged=args.restart_damaged)
    else:
        experiments.run(exp, args.preset, seeds=args.seeds, variants=args.variants, out=out,
                        resume=args.resume, restart_damaged=args.restart_damaged, config=config)
    summary = out / exp.NAME / "summary.json"
    import json
    from types import SimpleNamespace

    s = json.loads(summary.read_text(encoding="utf-8"))
    verdict = word_of(SimpleNamespace(outcome=s.get("verdict", ""), held=s["held"]))
    print(f"{exp.TITLE}: {s['claim']}")
    print(f"  ours ({args.preset}): {s['our_figure']}")
    axis = f" (on {s['axis']})" if s.get("axis") else ""
    print(f"  verdict: {verdict}{axis}. {s['note']}")
    print(f"  results: {summary.parent}")
    return 0


def _config(exp, args):
    """The preset's config with ``--data PATH`` and ``--set FIELD=VALUE ...`` applied."""
    from .experiments.plan import with_overrides

    overrides = {}
    for item in args.set or ():
        name, eq, value = item.partition("=")
        if not eq or not name.strip():
            raise ValueError(f"--set: expected FIELD=VALUE, got {item!r}")
        overrides[name.strip()] = value
    config = exp.PRESETS[args.preset]
    if args.data is not None:
        if not hasattr(config, "data_path"):
            raise ValueError(f"--data: {exp.NAME} reads no data set from a path (its Config has no data_path)")
        if not Path(args.data).exists():
            raise ValueError(f"--data: expected the folder or file of {exp.NAME}'s data set, got {args.data!r}, "
                             "which does not exist")
        overrides["data_path"] = str(Path(args.data).resolve())
    return with_overrides(config, overrides) if overrides else config


def _cmd_tune(args) -> int:
    from . import experiments
    from .experiments import tune

    exp = experiments.get(args.name)
    if args.preset not in exp.PRESETS:
        raise ValueError(f"--preset: expected one of {sorted(exp.PRESETS)}, got {args.preset!r}")
    tab = tune.sweep(exp, args.preset, rates=args.rates, seeds=args.seeds, variants=args.variants, out=args.out,
                     n_jobs=args.jobs, store=args.store)
    print(tab.to_markdown())
    print(f"table: {Path(args.out) / args.preset / 'tune' / exp.NAME / 'table.json'}")
    got = getattr(exp.PRESETS[args.preset], "lr_by_variant", None) or {}
    differ = [f"{v}: {got.get(v)} -> {r:g}" for v, r in tab.chosen.items() if got.get(v) != r]
    if differ:
        print(f"the {args.preset!r} preset does not hold these choices yet (its lr_by_variant): {'; '.join(differ)}")
    else:
        print(f"the {args.preset!r} preset holds every choice")
    return 0


def _cmd_report(args) -> int:
    from .experiments.report import write_report

    runs = Path(args.runs) / args.preset
    if not runs.is_dir():  # RUNS itself holds the experiments' folders (an older layout, or a preset folder)
        runs = Path(args.runs)
    rows = write_report(runs, args.out)
    if not rows:
        print(f"lnedu: runs: no finished experiments under {runs}; run `python -m lnedu run NAME` first",
              file=sys.stderr)
        return 2
    print(Path(args.out, "claims.md").read_text(encoding="utf-8"))
    return 0


def _cmd_data(args) -> int:
    from .data import load_binarized_mnist, load_mnist, load_text8

    fetchers = {"mnist": lambda: load_mnist(download=True), "text8": lambda: load_text8(download=True),
                "binarized_mnist": lambda: load_binarized_mnist(download=True)}
    d = fetchers[args.name]()
    print(f"{d.description}: cached")
    return 0


def _cmd_info(args) -> int:
    import numpy as np

    from . import __version__, backend

    print(f"lnedu {__version__}, numpy {np.__version__}, Python {sys.version.split()[0]}")
    print(f"backend: {backend.current()}; available: {', '.join(backend.available_backends())}")
    from .cuda import describe

    print(describe())
    return 0


def _cmd_exercises(args) -> int:
    from .exercises import build as B

    if args.check:
        problems = B.check(args.notebooks, args.out)
        for p in problems:
            print(f"lnedu: {p}; run `python -m lnedu exercises build`", file=sys.stderr)
        if not problems:
            print(f"exercise sheets up to date in {B.sheets_folder(args.notebooks, args.out)}")
        return 1 if problems else 0
    paths = B.build(args.notebooks, args.out, teacher=args.teacher)
    if not paths:
        print(f"lnedu: no notebook in {args.notebooks} holds an exercise (nbgrader solution cells)", file=sys.stderr)
        return 2
    for p in paths:
        print(p)
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad command line gives one line (``lnedu: ...``) and exit status 2."""

    def error(self, message):
        self.exit(2, f"lnedu: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m lnedu", description="lnedu: learn layer normalization by doing.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    r = sub.add_parser("reproduce", help="execute every notebook headless and write an HTML report")
    r.add_argument("--notebooks", default="notebooks", help="folder of numbered notebooks (default: notebooks)")
    r.add_argument("--out", default="reports", help="output folder (default: reports)")
    r.add_argument("--runs", default="runs", help="where experiment notebooks keep their runs (default: runs)")
    r.add_argument("--only", nargs="*", help="run only notebooks whose file name contains one of these")
    r.add_argument("--preset", help="the experiments' preset: small (default, or $LNEDU_PRESET) or medium (about "
                   "half an hour per experiment on 2 cores)")
    r.add_argument("--timeout", type=_positive_int, default=900, help="seconds allowed per cell (default: 900)")
    r.add_argument("--jobs", type=_positive_int, default=1, help="processes at once, one core each, taking the runs "
                   "and the notebooks as they free up; a notebook starts once its runs are trained (default: 1: "
                   "every run, then every notebook; make reproduce uses 2)")
    r.set_defaults(func=_cmd_reproduce)

    n = sub.add_parser("notebooks", help="list notebooks, or re-execute them in place")
    n.add_argument("paths", nargs="*", help="notebooks to execute (default: every numbered notebook)")
    n.add_argument("--folder", default="notebooks", help="folder of numbered notebooks (default: notebooks)")
    n.add_argument("--execute-in-place", action="store_true", help="execute and store the fresh outputs")
    n.add_argument("--timeout", type=_positive_int, default=900, help="seconds allowed per cell (default: 900)")
    n.set_defaults(func=_cmd_notebooks)

    sub.add_parser("list", help="the experiments and their claims").set_defaults(func=_cmd_list)

    from .experiments import EXPERIMENTS

    u = sub.add_parser("run", help="run one experiment (every variant x seed)")
    u.add_argument("name", choices=list(EXPERIMENTS), metavar="NAME", help=f"one of: {', '.join(EXPERIMENTS)}")
    u.add_argument("--preset", default="small", help="tiny (seconds), small (default, minutes), medium (about "
                   "half an hour on 2 cores) or paper (the paper's sizes, meant for a GPU)")
    u.add_argument("--seeds", type=int, nargs="+", help="seeds (default: the experiment's own for the preset)")
    u.add_argument("--variants", nargs="+", help="a subset of the experiment's variants (default: all)")
    u.add_argument("--device", choices=["cpu", "gpu"], default="cpu", help="gpu runs on CuPy")
    u.add_argument("--out", default="runs", help="results folder; runs go to OUT/PRESET/NAME (default: runs)")
    u.add_argument("--resume", action="store_true", help="continue from the last checkpoints in --out")
    u.add_argument("--restart-damaged", action="store_true",
                   help="start a run whose checkpoint, log or result is damaged over (default: refuse it)")
    u.add_argument("--jobs", type=int, help="grid experiments: run N (variant, seed) runs at once on local cores")
    u.add_argument("--scheduler", metavar="ADDR", help="grid experiments: run on the Dask cluster at ADDR "
                   "(tcp://host:port; needs lnedu[cluster])")
    u.add_argument("--data", metavar="PATH", help="the real data set's file or folder (default: the cache, "
                   "$LNEDU_DATA or ~/.cache/lnedu); the paper preset refuses to run without its data")
    u.add_argument("--set", nargs="+", metavar="FIELD=VALUE", help="change fields of the preset's config, e.g. "
                   "--set steps=3 hidden=16 (the run folder records the config; --resume needs the same)")
    u.add_argument("--plan", action="store_true", help="train nothing: measure a few updates of every variant "
                   "and print the parameters, updates, s/update, FLOPs and the projected cost on this machine "
                   "and on a GPU")
    u.add_argument("--plan-updates", type=_positive_int, default=2, metavar="N",
                   help="--plan: updates timed per variant, after one warm-up (default: 2)")
    u.add_argument("--plan-skip-eval", action="store_true", help="--plan: do not time an evaluation")
    u.add_argument("--plan-sample", type=_positive_int, metavar="K", help="--plan: measure K of the variants "
                   "(evenly spaced) and project the others at their mean (large grids at paper size)")
    u.set_defaults(func=_cmd_run)

    t = sub.add_parser("tune", help="choose each variant's learning rate on validation data (a small sweep)")
    t.add_argument("name", metavar="NAME", help="an experiment with a sweep (see lnedu.experiments.tune.SPECS)")
    t.add_argument("--preset", default="small", help="whose budget and sizes the sweep uses (default: small)")
    t.add_argument("--rates", type=float, nargs="+", help="learning rates to try (default: the experiment's own)")
    t.add_argument("--seeds", type=int, nargs="+", help="seeds (default: the experiment's sweep seeds, 100 and up)")
    t.add_argument("--variants", nargs="+", help="a subset of the experiment's variants (default: all)")
    t.add_argument("--jobs", type=_positive_int, default=1, help="runs at once in worker processes (default: 1)")
    t.add_argument("--out", default="runs", help="results folder (default: runs); runs go to OUT/PRESET/tune/NAME")
    t.add_argument("--store", action="store_true", help="also write the table into lnedu/experiments/tuned/")
    t.set_defaults(func=_cmd_tune)

    o = sub.add_parser("report", help="claims table and plots of the finished experiments")
    o.add_argument("--runs", default="runs", help="results folder (default: runs), read at RUNS/PRESET")
    o.add_argument("--preset", default="small", help="the preset whose runs to report (default: small)")
    o.add_argument("--out", default="reports", help="output folder (default: reports)")
    o.set_defaults(func=_cmd_report)

    d = sub.add_parser("data", help="fetch a real data set into the cache")
    d.add_argument("action", choices=["fetch"])
    d.add_argument("name", choices=["mnist", "text8", "binarized_mnist"],
                   help="the sets with a published checksum; the others (PTB, IAM-OnDB, CNN, COCO, BookCorpus, MR) "
                   "are copied by hand: a paper run without one says where it comes from")
    d.set_defaults(func=_cmd_data)

    i = sub.add_parser("info", help="versions and array backends")
    i.set_defaults(func=_cmd_info)

    e = sub.add_parser("exercises", help="build the exercise sheets of the teaching notebooks")
    e.add_argument("action", choices=["build"])
    e.add_argument("--notebooks", default="notebooks", help="folder of teaching notebooks (default: notebooks)")
    e.add_argument("--out", help="output folder (default: NOTEBOOKS/exercises; required with --teacher)")
    e.add_argument("--teacher", action="store_true", help="write the teacher versions, solutions included")
    e.add_argument("--check", action="store_true", help="write nothing; exit 1 if the sheets are out of date")
    e.set_defaults(func=_cmd_exercises)
    return p


def _terminate(signum, frame):
    raise KeyboardInterrupt("terminated")


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _terminate)  # SIGTERM unwinds like Ctrl-C: locks are released
    try:
        return args.func(args)
    except (OSError, ValueError, RuntimeError) as exc:
        print(f"lnedu: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lnedu: interrupted; files already written are complete (writes are atomic)", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
