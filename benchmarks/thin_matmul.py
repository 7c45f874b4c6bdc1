"""Why EnsembleMLP computes its output layer transposed: MKL on thin matmul results.

Times the output layer of SAC's networks (hidden 256, batch 256) both ways:

- critic: 2 members, 256 -> 1; actor: 1 member, 256 -> 6;
- forward: ``bias + h @ W`` with ``W`` stored ``(n, h, out)`` (a thin ``(B, out)`` result), against
  ``bias + W h^T`` with ``W`` stored ``(n, out, h)`` (a wide ``(out, B)`` result, used as its
  transposed view);
- weight gradient: ``h^T @ g`` (thin ``(h, out)`` result) against ``g^T @ h`` (wide ``(out, h)``).

Prints the median microseconds of ``--repeats`` blocks for each torch thread count.

    python benchmarks/thin_matmul.py --threads 1 2
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable


def median_us(fn: Callable[[], object], calls: int, repeats: int) -> float:
    for _ in range(calls // 10):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - t0) / calls * 1e6)
    return statistics.median(times)


def layer_times(n: int, out: int, calls: int, repeats: int) -> list[float]:
    """[forward h @ W, forward W h^T, grad h^T g, grad g^T h] in us, batch 256, hidden 256."""
    import torch

    batch, hidden = 256, 256
    h, g = torch.randn(n, batch, hidden), torch.randn(n, batch, out)
    w_thin, b_thin = torch.randn(n, hidden, out), torch.randn(n, 1, out)
    w_wide, b_wide = torch.randn(n, out, hidden), torch.randn(n, out, 1)
    variants: list[Callable[[], object]] = [
        lambda: torch.baddbmm(b_thin, h, w_thin),
        lambda: torch.baddbmm(b_wide, w_wide, h.transpose(1, 2)).transpose(1, 2),
        lambda: torch.bmm(h.transpose(1, 2), g),
        lambda: torch.bmm(g.transpose(1, 2), h),
    ]
    return [median_us(fn, calls, repeats) for fn in variants]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--calls", type=int, default=300)
    p.add_argument("--repeats", type=int, default=9)
    args = p.parse_args()

    import torch

    print("| layer | threads | forward h @ W (us) | forward W h^T (us) | weight grad h^T g (us) "
          "| weight grad g^T h (us) |")
    print("|---|---|---|---|---|---|")
    for threads in args.threads:
        torch.set_num_threads(threads)
        for name, n, out in (("critic 256->1 x2", 2, 1), ("actor 256->6", 1, 6)):
            cells = layer_times(n, out, args.calls, args.repeats)
            print(f"| {name} | {threads} | " + " | ".join(f"{c:.0f}" for c in cells) + " |", flush=True)


if __name__ == "__main__":
    main()
