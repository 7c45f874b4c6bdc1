"""The matmuls of one SAC gradient step on Hopper-v5, alone: the floor that op fusion cannot lower.

Runs exactly the matrix products that ``SAC._gradient_step`` runs (shapes for Hopper-v5: obs 11,
action 3, hidden 256-256, batch 256; layouts as ``EnsembleMLP`` uses them) and nothing else, and
prints the median ms per step over ``--repeats`` blocks. Compare with ``benchmarks/sac_step.py``:
the difference is elementwise work, optimizer steps and per-op overhead.

    python benchmarks/sac_matmul_floor.py --threads 1 2
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable


def one_step_of_matmuls(batch: int = 256, obs: int = 11, act: int = 3, hidden: int = 256) -> Callable[[], None]:
    import torch

    def net(n: int, rows: int, in_dim: int, out: int) -> dict[str, torch.Tensor]:
        shapes = {"x": (rows, in_dim), "w_in": (in_dim, n * hidden), "b_in": (n * hidden,), "h": (n, rows, hidden),
                  "w": (n, hidden, hidden), "b": (n, 1, hidden), "w_out": (n, out, hidden), "b_out": (n, out, 1),
                  "g_out": (n, rows, out), "g_flat": (rows, n * hidden)}
        return {name: torch.randn(shape) for name, shape in shapes.items()}

    actor2, actor, critic = net(1, 2 * batch, obs, 2 * act), net(1, batch, obs, 2 * act), net(2, batch, obs + act, 1)

    def forward(m: dict[str, torch.Tensor]) -> None:
        torch.addmm(m["b_in"], m["x"], m["w_in"])
        torch.baddbmm(m["b"], m["h"], m["w"])
        torch.baddbmm(m["b_out"], m["w_out"], m["h"].transpose(1, 2))

    def backward(m: dict[str, torch.Tensor], weights: bool, input_cols: int = 0) -> None:
        if weights:
            torch.bmm(m["g_out"].transpose(1, 2), m["h"])  # output weight
            torch.bmm(m["h"].transpose(1, 2), m["h"])  # hidden weight
            torch.mm(m["x"].t(), m["g_flat"])  # first-layer weight
        if m["w_out"].shape[1] > 1:
            torch.bmm(m["g_out"], m["w_out"])  # back through the output layer (a broadcast for out=1)
        torch.bmm(m["h"], m["w"].transpose(1, 2))  # back through the hidden layer
        if input_cols:
            torch.mm(m["w_in"][-input_cols:], m["g_flat"].t())  # the action columns' input gradient

    def step() -> None:
        forward(actor2)  # a' ~ pi(s') and a~ ~ pi(s) in one pass
        forward(critic)  # target critics on (s', a')
        forward(critic)  # critics on (s, a)
        backward(critic, weights=True)  # critic loss
        forward(critic)  # updated critics on (s, a~)
        backward(critic, weights=False, input_cols=act)  # dQ/da~
        backward(actor, weights=True)  # actor loss

    return step


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args()

    import torch

    for threads in args.threads:
        torch.set_num_threads(threads)
        step = one_step_of_matmuls()
        for _ in range(10):
            step()
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            for _ in range(args.steps):
                step()
            times.append((time.perf_counter() - t0) / args.steps * 1e3)
        runs = ", ".join(f"{t:.1f}" for t in times)
        print(f"threads={threads}: matmuls of one step {statistics.median(times):.1f} ms (runs {runs})", flush=True)


if __name__ == "__main__":
    main()
