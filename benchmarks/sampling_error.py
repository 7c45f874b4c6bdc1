"""Fidelity benchmark: fixed random target, SE after each batch for on-policy sampling, PROPS and ROS.

Reports SE at the end of the run (mean +- 95% t-interval over seeds), the PROPS / on-policy ratio
(paper: 0.5-0.75x; target <= 0.7) and ROS against on-policy at each step size given to
``--ros-lr`` (ROS acts with phi = theta - lr * g_bar, reset to theta before every env step; at lr
1e-5 it is indistinguishable from on-policy). ROS costs O(buffer) per env step, so
``--ros-batches`` may cap its run; it is then compared with on-policy at the same number of samples.

    python benchmarks/sampling_error.py --env Hopper-v5 --seeds 5 --se-epochs 100 --out runs/bench-se
    python benchmarks/sampling_error.py --methods on-policy,ros --ros-lr 1e-5 1e-3 1e-1 10 --out runs/ros-sweep
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from hybridpg.errors import NonFiniteError
from hybridpg.experiments.fixed_target import (
    add_props_arguments,
    label,
    label_order,
    mean_ci,
    props_overrides,
    run_fixed_target,
    write_outputs,
)


def _at(rows: list[dict[str, Any]], env: str, method: str, samples: int) -> dict[int, float]:
    return {r["seed"]: r["se"] for r in rows if r["env"] == env and label(r) == method and r["samples"] == samples}


def report(rows: list[dict[str, Any]], env: str) -> None:
    print(f"\n{env}: SE (mean +- 95% CI over seeds)")
    print("| method | samples | seeds | SE | ratio to on-policy (paired per seed) |")
    print("|---|---|---|---|---|")
    for method in sorted({label(r) for r in rows if r["env"] == env}, key=label_order):
        mine = [r for r in rows if r["env"] == env and label(r) == method]
        if not mine:
            continue
        samples = max(r["samples"] for r in mine)
        se = _at(rows, env, method, samples)
        base = _at(rows, env, "on-policy", samples)
        mean, half = mean_ci(list(se.values()))
        paired = [se[s] / base[s] for s in se if s in base]
        ratio = ""
        if method != "on-policy" and paired:
            r_mean, r_half = mean_ci(paired)
            of_means = mean / np.mean([base[s] for s in se if s in base])
            ratio = f"{r_mean:.2f} +- {r_half:.2f} (ratio of means {of_means:.2f})"
        print(f"| {method} | {samples} | {len(se)} | {mean:.5f} +- {half:.5f} | {ratio} |")


def overhead(env: str, steps: int, se_freq: int, se_epochs: int) -> None:
    """Share of a training run's wall time spent in the live SE diagnostic.

    Measured inside one run (time in the hook / total), so both parts see the same machine load.
    """
    import hybridpg.algorithms.onpolicy as onpolicy
    from hybridpg import PPO

    spent: list[float] = []
    original = onpolicy.sampling_error_metric

    def timed(*args: Any, **kwargs: Any) -> dict[str, float]:
        t = time.perf_counter()
        out = original(*args, **kwargs)
        if out:
            spent.append(time.perf_counter() - t)
        return out

    onpolicy.sampling_error_metric = timed  # type: ignore[assignment]
    agent = PPO(env, seed=0, se_freq=se_freq, se_epochs=se_epochs, eval_freq=0, checkpoint_freq=0)
    t0 = time.perf_counter()
    agent.learn(steps)
    wall = time.perf_counter() - t0
    agent.close()
    onpolicy.sampling_error_metric = original  # type: ignore[assignment]
    print(f"overhead {env} {steps} steps se_freq={se_freq} se_epochs={se_epochs}: {len(spent)} estimates, "
          f"{sum(spent):.1f}s of {wall:.1f}s wall = {100 * sum(spent) / wall:.1f}% "
          f"({sum(spent) / max(len(spent), 1):.2f}s each)", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--env", nargs="+", default=["Hopper-v5", "CartPole-v1"])
    p.add_argument("--methods", default="on-policy,props,ros")
    p.add_argument("--ros-lr", type=float, nargs="+", default=[1e-5],
                   help="ROS step sizes to sweep, one ROS run per value and seed (default: 1e-5)")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--seed-start", type=int, default=0, help="first seed (to split seeds over processes)")
    p.add_argument("--batches", type=int, default=16)
    p.add_argument("--ros-batches", type=int, default=None, help="fewer batches for ROS (its cost is quadratic)")
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--se-epochs", type=int, default=1000)
    p.add_argument("--record-at", type=int, nargs="+", default=None,
                   help="1-based batches after which SE is estimated (default: every batch)")
    p.add_argument("--out", type=Path, default=Path("runs/bench-sampling-error"))
    p.add_argument("--overhead", type=int, default=None, metavar="STEPS",
                   help="instead: train PPO for STEPS with the live SE hook and report its share of wall time")
    p.add_argument("--se-freq", type=int, default=-1, help="with --overhead (default: auto)")
    add_props_arguments(p)
    args = p.parse_args()
    overrides = props_overrides(args)
    if args.overhead is not None:
        for env in args.env:
            overhead(env, args.overhead, args.se_freq, args.se_epochs)
        return
    rows: list[dict[str, Any]] = []
    start = time.perf_counter()
    for env in args.env:
        for seed in range(args.seed_start, args.seed_start + args.seeds):
            for method in args.methods.split(","):
                batches = args.ros_batches if method == "ros" and args.ros_batches else args.batches
                record = None if args.record_at is None else [b for b in args.record_at if b <= batches]
                settings = {"props": [overrides], "ros": [{"ros_lr": lr} for lr in args.ros_lr]}.get(method, [{}])
                for setting in settings:
                    t0 = time.perf_counter()
                    try:
                        new = run_fixed_target(env, method, "random", seed, batches, args.batch_size,
                                               args.se_epochs, overrides=setting, record_at=record)
                    except NonFiniteError as exc:  # a too-large ROS step diverges: a result of the sweep, not a crash
                        print(f"{env} {method} {setting} seed {seed}: diverged ({exc})", flush=True)
                        continue
                    write_outputs(args.out, new)  # appended as it goes: a killed run keeps its finished seeds
                    rows += new
                    print(f"{env} {label(new[-1])} seed {seed}: SE {new[-1]['se']:.5f} at {new[-1]['samples']} "
                          f"({time.perf_counter() - t0:.0f}s)", flush=True)
        report(rows, env)
    print(f"\ntotal wall time {time.perf_counter() - start:.0f}s", flush=True)


if __name__ == "__main__":
    main()
