"""Time SAC's gradient step alone on Hopper-v5 (no env steps), to compare code versions.

Builds ``SAC("Hopper-v5")`` with ``--hidden`` layers (default 256 256), fills the buffer with
``--fill`` random-action steps, then times ``--repeats`` blocks of ``--steps`` gradient steps on
``--batch-size``-row batches and prints the median ms per step, wall-clock and CPU time (the
process's, which other jobs on a shared machine inflate less). A tiny batch (e.g. 8) shows the
per-step overhead that does not scale with the matmuls. To compare with an older checkout, run it
with ``PYTHONPATH=<checkout>/src``.

``--matmuls-only`` times instead exactly the matrix products one step runs (shapes for Hopper-v5:
obs 11, action 3, hidden 256-256, batch 256; layouts as ``EnsembleMLP`` uses them) and nothing
else: the floor that op fusion cannot lower. The difference to the full step is elementwise work,
optimizer steps and per-op overhead.

    python benchmarks/sac_step.py --threads 1 2 --batch-size 256
    python benchmarks/sac_step.py --threads 1 --hidden 64 64
    python benchmarks/sac_step.py --threads 1 2 --matmuls-only
"""

from __future__ import annotations

import argparse
import inspect
import statistics
import time
from collections.abc import Callable
from typing import Any


class GradientSteps:
    """``n`` gradient steps of ``agent``, unlogged as in training (one in log_freq is logged)."""

    def __init__(self, agent: Any, batch_size: int) -> None:
        self.agent, self.batch_size = agent, batch_size
        # older versions had no ``log`` argument and always computed the losses
        self.log_arg = (False,) if "log" in inspect.signature(agent._gradient_step).parameters else ()

    def __call__(self, n: int) -> None:
        for _ in range(n):
            self.agent._step(self.agent.buffer.sample(self.batch_size, self.agent.torch_rng), True, *self.log_arg)


class MatmulSteps:
    """``n`` times the matmuls of one gradient step, and nothing else."""

    def __init__(self) -> None:
        self.step = one_step_of_matmuls()

    def __call__(self, n: int) -> None:
        for _ in range(n):
            self.step()


def time_blocks(run: Callable[[int], None], steps: int, repeats: int) -> tuple[list[float], list[float]]:
    """ms per step of ``repeats`` blocks of ``steps``, after a 50-step warm-up (allocator, compilation):
    wall-clock and the process's CPU time (which other jobs on the machine inflate less)."""
    run(50)
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        run(steps)
        wall.append((time.perf_counter() - t0) / steps * 1e3)
        cpu.append((time.process_time() - c0) / steps * 1e3)
    return wall, cpu


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
    p.add_argument("--threads", type=int, nargs="+", default=[1])
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--hidden", type=int, nargs="+", default=[256, 256], help="hidden layer widths")
    p.add_argument("--fill", type=int, default=2000)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--compile", action="store_true", help="SAC(compile=True): torch.compile the step")
    p.add_argument("--matmuls-only", action="store_true", help="time only the matmuls of one step (batch 256)")
    args = p.parse_args()

    import torch

    import hybridpg
    from hybridpg import SAC

    for threads in args.threads:
        torch.set_num_threads(threads)
        if args.matmuls_only:
            times, cpu = time_blocks(MatmulSteps(), args.steps, args.repeats)
            label = "matmuls only"
        else:
            agent = SAC("Hopper-v5", seed=0, learning_starts=args.fill, torch_threads=threads, eval_freq=0,
                        checkpoint_freq=0, eval_episodes=1, compile=args.compile, hidden_sizes=tuple(args.hidden))
            agent.learn(args.fill, progress=False)
            times, cpu = time_blocks(GradientSteps(agent, args.batch_size), args.steps, args.repeats)
            agent.close()
            label = f"batch={args.batch_size} hidden={'-'.join(map(str, args.hidden))}"
        runs = ", ".join(f"{t:.2f}" for t in times)
        cpu_runs = ", ".join(f"{t:.2f}" for t in cpu)
        print(f"{hybridpg.__file__}: threads={threads} {label} {statistics.median(times):.2f} ms/step (runs {runs}); "
              f"CPU {statistics.median(cpu):.2f} ms/step (runs {cpu_runs})")

if __name__ == "__main__":
    main()
