"""Which matmul library is fast at the on-policy networks' shapes on this CPU.

torch's CPU matmuls go to MKL; on AMD CPUs MKL may not take its widest vector paths. This times
fp32 products ``[rows, k] @ [k, n]`` at the shapes the on-policy updates run (PPO's 64-row
minibatch, PROPS's 240-row one, ten seeds' 2400 rows, SAC's 256-wide layers) three ways, one
thread each:

- ``torch.mm`` (MKL, what every eager and compiled step uses);
- ``numpy.matmul`` (the OpenBLAS that numpy ships);
- oneDNN's fused linear (``torch.ops.mkldnn._linear_pointwise``, what ``EnsembleMLP`` uses for
  its large products).

Prints microseconds per product (best of ``--repeats`` blocks) and GFLOP/s.

    python benchmarks/matmul_libraries.py
"""

from __future__ import annotations

import argparse
import functools
import time
from collections.abc import Callable

SHAPES = [(64, 64, 64), (240, 64, 64), (2400, 64, 64), (1024, 256, 256)]


def best_us(fn: Callable[[], object], calls: int, repeats: int) -> float:
    for _ in range(calls // 10):
        fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - start) / calls * 1e6)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    import os

    os.environ["OPENBLAS_NUM_THREADS"] = "1"  # before numpy loads OpenBLAS: one thread, like the others
    import numpy as np
    import torch

    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}, one thread")
    print("| rows x k x n | MKL (torch.mm) | OpenBLAS (numpy) | oneDNN linear |")
    print("|---|---|---|---|")
    for rows, k, n in SHAPES:
        a, b = torch.randn(rows, k), torch.randn(k, n)
        weight, bias = b.t().contiguous(), torch.zeros(n)
        a_np, b_np = a.numpy(), b.numpy()
        onednn = functools.partial(torch.ops.mkldnn._linear_pointwise, a, weight, bias, "none", [], "")
        torch.testing.assert_close(onednn(), a @ b, rtol=1e-4, atol=1e-4)
        flops = 2 * rows * k * n
        cells = []
        for fn in (functools.partial(torch.mm, a, b), functools.partial(np.matmul, a_np, b_np), onednn):
            us = best_us(fn, args.calls, args.repeats)
            cells.append(f"{us:.1f} us, {flops / us / 1e3:.0f} GFLOP/s")
        print(f"| {rows} x {k} x {n} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
