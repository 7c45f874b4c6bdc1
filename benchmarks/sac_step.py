"""Time SAC's gradient step alone on Hopper-v5 (no env steps), to compare code versions.

Builds ``SAC("Hopper-v5")``, fills the buffer with ``--fill`` random-action steps, then times
``--repeats`` blocks of ``--steps`` gradient steps on ``--batch-size``-row batches and prints the
median ms per step. A tiny batch (e.g. 8) shows the per-step overhead that does not scale with
the matmuls. To compare with an older checkout, run it with ``PYTHONPATH=<checkout>/src``.

    python benchmarks/sac_step.py --threads 1 2 --batch-size 256
"""

from __future__ import annotations

import argparse
import inspect
import statistics
import time
from typing import Any


def block(agent: Any, n: int, batch_size: int) -> None:
    # unlogged steps, as in training (one in log_freq is logged); older versions always logged
    log_arg = (False,) if "log" in inspect.signature(agent._gradient_step).parameters else ()
    for _ in range(n):
        agent._step(agent.buffer.sample(batch_size, agent.torch_rng), True, *log_arg)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, nargs="+", default=[1])
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--fill", type=int, default=2000)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--compile", action="store_true", help="SAC(compile=True): torch.compile the step")
    args = p.parse_args()

    import torch

    import hybridpg
    from hybridpg import SAC

    for threads in args.threads:
        torch.set_num_threads(threads)
        agent = SAC("Hopper-v5", seed=0, learning_starts=args.fill, torch_threads=threads, eval_freq=0,
                    checkpoint_freq=0, eval_episodes=1, compile=args.compile)
        agent.learn(args.fill, progress=False)

        block(agent, 50, args.batch_size)  # warm-up: allocator, first-call paths, compilation
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            block(agent, args.steps, args.batch_size)
            times.append((time.perf_counter() - t0) / args.steps * 1e3)
        agent.close()
        runs = ", ".join(f"{t:.1f}" for t in times)
        print(f"{hybridpg.__file__}: threads={threads} batch={args.batch_size} "
              f"{statistics.median(times):.1f} ms/step (runs {runs})")


if __name__ == "__main__":
    main()
