"""``hybridpg demo`` (what ``make demo`` runs): PROPS vs PPO-Buffer vs PPO on CartPole-v1, end to end.

A real sweep (5 seeds per method by default, in parallel, restartable) followed by ``compare``, so
the demo exercises the same path as a paper-scale experiment. The budget is small enough for a
2-core machine: PPO with n_steps=512 solves CartPole (return 500) in about 20k steps, and PROPS,
which also trains its behavior policy, runs at roughly a third of PPO's SPS.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from hybridpg.errors import ConfigError

ALGOS = ["props", "ppo-buffer", "ppo"]
ENV = "CartPole-v1"
# smaller batches than the MuJoCo defaults so that 20k steps are ~40 updates; se_freq logs the
# sampling error of the buffer every 10 updates
OVERRIDES = {
    "n_steps": "512",
    "behavior_steps": "256",
    "n_minibatches": "8",
    "eval_freq": "5",
    "eval_episodes": "5",
    "checkpoint_freq": "5",
    "se_freq": "10",
}


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo", help="PROPS vs PPO-Buffer vs PPO on CartPole-v1: a small sweep, then compare",
        description="Run a small restartable sweep on CartPole-v1 and print the comparison table.",
    )
    parser.add_argument("--out", type=Path, default=Path("runs/demo"),
                        help="sweep root (default: %(default)s)")
    parser.add_argument("--seeds", type=int, default=5, help="seeds per method (default: %(default)s)")
    parser.add_argument("--total-timesteps", type=int, default=20_000, help="per run (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="parallel runs")
    parser.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from hybridpg.experiments.compare import compare
    from hybridpg.experiments.sweep import SweepSpec, run_sweep

    if args.seeds < 2:
        raise ConfigError(f"--seeds={args.seeds}: a confidence interval needs at least 2 seeds")
    spec = SweepSpec(ALGOS, [ENV], list(range(args.seeds)), args.total_timesteps, dict(OVERRIDES),
                     args.out.resolve(), workers=args.workers)
    print(f"$ {spec.command()}", flush=True)
    start = time.perf_counter()
    progress = run_sweep(spec)
    print(f"sweep took {time.perf_counter() - start:.0f}s", flush=True)
    print(f"$ hybridpg compare {spec.root}", flush=True)
    compare(spec.root)
    if progress.failed:
        print(f"{progress.failed} run(s) failed; see their error.txt", file=sys.stderr)
        return 1
    return 0
