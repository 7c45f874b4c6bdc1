"""Combination-lock benchmark: HNPG vs PPO without data vs PPO with a BC warm start.

For each horizon H: an offline dataset of the scripted optimal policy with epsilon = 1/H noise is
written to a temporary Minari root; every method then trains online for ``--budget`` env steps per
seed. Success: the moving average (last ``--window`` episodes) of the optimal-reward indicator
exceeds 0.5. On this lock an episode's return is 1 exactly when the last step paid the optimal
reward (any other episode returns 0 or 0.1), so the indicator is ``return > 0.5``, the same event
as ``info["optimal_reward"]``.

    python benchmarks/lock.py --variant continuous --horizons 5 10 --seeds 5 --budget 60000 --jobs 2
"""

from __future__ import annotations

import argparse
import functools
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from _results import run_and_append  # benchmarks/_results.py

ENV_IDS = {"continuous": "hybridpg/CombinationLockContinuous-v0", "discrete": "hybridpg/CombinationLock-v0"}
METHODS = ("hnpg", "ppo", "ppo-bc")


def make_dataset(variant: str, horizon: int, episodes: int, root: str) -> str:
    from hybridpg.data.datasets import collect_episodes, write_dataset
    from hybridpg.envs.lock import LockOptimalPolicy

    env = gym.make(ENV_IDS[variant], horizon=horizon)
    policy: Any = LockOptimalPolicy(env, epsilon=1.0 / horizon, seed=123)
    dataset_id = f"lock-{variant}-h{horizon}-v0"
    write_dataset(dataset_id, collect_episodes(env, policy, episodes, seed=10_000), env.spec, env.observation_space,
                  env.action_space, root=root)
    env.close()
    return dataset_id


def first_success(returns: list[float], steps: list[int], window: int) -> int | None:
    hits = np.asarray(returns) > 0.5
    if len(hits) < window:
        return None
    moving = np.convolve(hits, np.ones(window) / window, mode="valid")
    above = np.flatnonzero(moving > 0.5)
    return int(steps[above[0] + window - 1]) if len(above) else None


def run_one(job: dict[str, Any]) -> dict[str, Any]:
    from hybridpg import HNPG, PPO
    from hybridpg.training.logger import read_metrics

    env = functools.partial(gym.make, ENV_IDS[job["variant"]], horizon=job["horizon"])
    common: dict[str, Any] = {"eval_freq": 0, "checkpoint_freq": 0}
    if job["method"] == "hnpg":
        agent: Any = HNPG(env, seed=job["seed"], offline_dataset=job["dataset"], offline_root=job["root"],
                          finite_horizon=True, horizon=job["horizon"], gamma=1.0, policy_hidden_sizes=(16, 16),
                          **common)
    else:
        bc: dict[str, Any] = {"offline_dataset": job["dataset"], "offline_root": job["root"], "bc_steps": 2000} if (
            job["method"] == "ppo-bc") else {}
        agent = PPO(env, seed=job["seed"], n_steps=1000, n_minibatches=8, **bc, **common)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as run_dir:
        agent.learn(job["budget"], run_dir=run_dir)
        rows = [r for r in read_metrics(Path(run_dir) / "metrics.jsonl") if "charts/episode_return" in r]
    agent.close()
    returns = [r["charts/episode_return"] for r in rows]
    steps = [int(r["step"]) for r in rows]
    tail = np.asarray(returns[-job["window"]:]) > 0.5
    return {**{k: job[k] for k in ("variant", "horizon", "method", "seed", "budget")},
            "solved_at": first_success(returns, steps, job["window"]), "final_rate": float(tail.mean()),
            "wall_s": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=sorted(ENV_IDS), default="continuous")
    parser.add_argument("--horizons", type=int, nargs="+", default=[5, 10])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budget", type=int, default=60_000, help="online env steps per run")
    parser.add_argument("--episodes", type=int, default=2000, help="offline episodes per dataset")
    parser.add_argument("--window", type=int, default=100, help="moving-average window (episodes)")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/lock.jsonl"))
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    root = tempfile.mkdtemp(prefix="hybridpg-lock-")
    jobs = []
    for horizon in args.horizons:
        dataset = make_dataset(args.variant, horizon, args.episodes, root)
        jobs += [{"variant": args.variant, "horizon": horizon, "method": m, "seed": s, "budget": args.budget,
                  "dataset": dataset, "root": root, "window": args.window}
                 for s in range(args.seeds) for m in args.methods]
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    run_and_append(run_one, jobs, args.jobs, args.out)


if __name__ == "__main__":
    main()
