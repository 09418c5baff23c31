"""Run every kind of lnedu kernel once through the emulator built with ThreadSanitizer (float64, odd sizes).

    LD_PRELOAD=$(g++ -print-file-name=libtsan.so) python -m tests.cuda_emulator.race_driver [--kernels DIR]

ThreadSanitizer watches the threads of each emulated block and reports any data race between them (a
missing ``__syncthreads``, two threads writing one address): the process then exits with status 66.
``--kernels DIR`` reads the kernel sources from DIR instead (the tests use it to plant a race).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import tests.cuda_emulator as E


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kernels", type=Path, default=None, help="folder of the kernel sources to use")
    args = parser.parse_args(argv)
    if args.kernels is not None:
        E.KERNELS = args.kernels.resolve()

    import lnedu.cuda as C
    from lnedu.cuda import norms as CN
    from lnedu.cuda import recurrent as CR
    from lnedu.functional.recurrent import Norm

    exprs = [e for e in C.name_expressions() if "double" in e]
    provider = E.EmulatorProvider(exprs, flags=("-fsanitize=thread", "-g"))
    C.set_provider(provider)
    rng = np.random.default_rng(0)

    def rand(*shape):
        return rng.standard_normal(shape)

    for n in (37, 300):  # two warps with one item a thread; eight warps with two
        x, g, b = rand(3, n), rand(n), rand(n)
        CN.layer_norm_backward(rand(3, n), CN.layer_norm(x, g, b, 1e-5)[1])
        CN.rms_norm_backward(rand(3, n), CN.rms_norm(x, g, 1e-5)[1])
    B, H = 3, 37
    h0, c0 = rand(B, H), rand(B, H)
    for groups in (1, 4):
        norm_h, norm_c = Norm.layer(rand(4 * H), rand(4 * H), groups=groups), Norm.layer(rand(H), rand(H))
        _, _, cache = CR.lstm_step(rand(B, 4 * H), h0, c0, rand(H, 4 * H) * 0.1, norm_h=norm_h, norm_c=norm_c)
        CR.lstm_step_backward(rand(B, H), rand(B, H), cache)
    for groups in (1, 2):
        norm_h, norm_hc = Norm.layer(rand(2 * H), rand(2 * H), groups=groups), Norm.layer(rand(H), rand(H))
        _, cache = CR.gru_step(rand(B, 3 * H), h0, rand(H, 3 * H) * 0.1, norm_h=norm_h, norm_hc=norm_hc)
        CR.gru_step_backward(rand(B, H), cache)
    kinds = sorted({expr.split("<")[0] for expr, _, _ in provider.launches})
    print(f"{len(provider.launches)} launches of {', '.join(kinds)}: no data race reported")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
