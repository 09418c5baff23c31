"""The command line: ``python -m lnedu COMMAND``.

Commands:

* ``reproduce [--notebooks DIR] [--out DIR] [--only NAME ...]``: execute every notebook headless on the
  embedded defaults and write HTML pages, ``summary.md`` and ``index.html`` into ``--out`` (``reports/``).
* ``notebooks --execute-in-place [PATH ...]``: re-execute stored notebooks and save their fresh outputs.
* ``info``: versions, the array backend and whether a GPU is usable.

Bad arguments and unwritable folders give one clear line on stderr and a non-zero exit.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _cmd_reproduce(args) -> int:
    from .notebooks import reproduce

    runs = reproduce(args.notebooks, args.out, timeout=args.timeout, only=args.only)
    if not runs:
        print(f"lnedu: no notebooks matched in {args.notebooks}", file=sys.stderr)
        return 2
    print((Path(args.out) / "summary.md").read_text(encoding="utf-8"))
    print(f"report: {Path(args.out) / 'index.html'}")
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


def _cmd_info(args) -> int:
    import numpy as np

    from . import __version__, backend

    print(f"lnedu {__version__}, numpy {np.__version__}, Python {sys.version.split()[0]}")
    print(f"backend: {backend.current()}; available: {', '.join(backend.available_backends())}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m lnedu", description="lnedu: learn layer normalization by doing.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    r = sub.add_parser("reproduce", help="execute every notebook headless and write an HTML report")
    r.add_argument("--notebooks", default="notebooks", help="folder of numbered notebooks (default: notebooks)")
    r.add_argument("--out", default="reports", help="output folder (default: reports)")
    r.add_argument("--only", nargs="*", help="run only notebooks whose file name contains one of these")
    r.add_argument("--timeout", type=int, default=900, help="seconds allowed per cell (default: 900)")
    r.set_defaults(func=_cmd_reproduce)

    n = sub.add_parser("notebooks", help="list notebooks, or re-execute them in place")
    n.add_argument("paths", nargs="*", help="notebooks to execute (default: every numbered notebook)")
    n.add_argument("--folder", default="notebooks", help="folder of numbered notebooks (default: notebooks)")
    n.add_argument("--execute-in-place", action="store_true", help="execute and store the fresh outputs")
    n.add_argument("--timeout", type=int, default=900, help="seconds allowed per cell (default: 900)")
    n.set_defaults(func=_cmd_notebooks)

    i = sub.add_parser("info", help="versions and array backends")
    i.set_defaults(func=_cmd_info)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (OSError, ValueError) as exc:
        print(f"lnedu: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lnedu: interrupted; files already written are complete (writes are atomic)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
