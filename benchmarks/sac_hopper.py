"""Hopper-v5 learning comparison: hybridpg SAC vs Stable-Baselines3 SAC at equal env steps.

Both use the spec's hyperparameters (Adam 3e-4, batch 256, tau 0.005, gamma 0.99, buffer 1e6,
256-256 ReLU, one gradient step per env step, learned temperature, target entropy -|A|) with the
same learning_starts. Each (library, seed) run is its own process with one torch thread. Both are
evaluated by the same loop: deterministic actions, ``--eval-episodes`` episodes on a fresh env.
Reports the mean final return per library with a 95% stratified-bootstrap CI (hybridpg.experiments.stats).

    python benchmarks/sac_hopper.py --steps 100000 --seeds 0 1 2 --workers 2 --out hopper.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import time
from typing import Any

import numpy as np


def eval_returns(predict: Any, n_episodes: int, seed: int) -> list[float]:
    import gymnasium as gym

    env = gym.make("Hopper-v5")
    out = []
    for i in range(n_episodes):
        obs, _ = env.reset(seed=seed + i)
        done, total = False, 0.0
        while not done:
            obs, r, term, trunc, _ = env.step(predict(obs))
            total += float(r)
            done = bool(term or trunc)
        out.append(total)
    env.close()
    return out


def run_one(job: tuple[str, int, int, int, int]) -> dict[str, Any]:
    lib, seed, steps, learning_starts, episodes = job
    import torch

    torch.set_num_threads(1)
    if lib == "hybridpg":
        from hybridpg import SAC

        t0 = time.perf_counter()
        agent = SAC("Hopper-v5", seed=seed, learning_starts=learning_starts, eval_freq=0, checkpoint_freq=0)
        agent.learn(steps, progress=False)
        wall = time.perf_counter() - t0
        returns = eval_returns(lambda o: agent.predict(o, deterministic=True)[0], episodes, 10_000 + seed)
        agent.close()
    else:
        from stable_baselines3 import SAC as SB3SAC

        t0 = time.perf_counter()
        model = SB3SAC("MlpPolicy", "Hopper-v5", learning_rate=3e-4, buffer_size=1_000_000, batch_size=256,
                       tau=0.005, gamma=0.99, learning_starts=learning_starts, train_freq=1, gradient_steps=1,
                       ent_coef="auto", policy_kwargs={"net_arch": [256, 256]}, seed=seed, device="cpu")
        model.learn(steps)
        wall = time.perf_counter() - t0
        returns = eval_returns(lambda o: model.predict(o, deterministic=True)[0], episodes, 10_000 + seed)
    return {"lib": lib, "seed": seed, "steps": steps, "wall_s": wall, "eval_returns": returns,
            "eval_mean": float(np.mean(returns))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=100_000)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--learning-starts", type=int, default=5000)
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", default=None, help="write all results as JSON here")
    p.add_argument("--libs", nargs="+", default=["hybridpg", "sb3"], choices=["hybridpg", "sb3"])
    args = p.parse_args()
    jobs = [(lib, s, args.steps, args.learning_starts, args.eval_episodes)
            for s in args.seeds for lib in args.libs]
    results = []
    with mp.get_context("spawn").Pool(args.workers, maxtasksperchild=1) as pool:
        for r in pool.imap_unordered(run_one, jobs):
            line = f"{r['lib']:9s} seed {r['seed']}: return {r['eval_mean']:8.1f}  ({r['wall_s']:.0f} s)"
            print(line, flush=True)
            results.append(r)
            if args.out:  # rewritten after every run, so a killed benchmark keeps what it finished
                with open(args.out, "w") as f:
                    json.dump({"args": vars(args), "runs": results}, f, indent=2)
    from hybridpg.experiments.stats import aggregate_with_ci

    print(f"\nHopper-v5, {args.steps} steps, seeds {args.seeds}, {args.eval_episodes} eval episodes each")
    print(f"{'library':9s} | mean final return | 95% CI | wall s (median)")
    summary = {}
    for lib in args.libs:
        rows = sorted((r for r in results if r["lib"] == lib), key=lambda r: r["seed"])
        if not rows:
            continue
        scores = np.array([[r["eval_mean"]] for r in rows])  # (runs, tasks=1)
        est = aggregate_with_ci({lib: scores}, metrics=("mean",), seed=0)[lib]["mean"]
        point, lo, hi = est.point, est.low, est.high
        wall = float(np.median([r["wall_s"] for r in rows]))
        per_seed = [r["eval_mean"] for r in rows]
        summary[lib] = {"mean": point, "ci95": [lo, hi], "per_seed": per_seed, "wall_s": wall}
        print(f"{lib:9s} | {point:17.1f} | [{lo:.1f}, {hi:.1f}] | {wall:.0f}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"args": vars(args), "runs": results, "summary": summary}, f, indent=2)


if __name__ == "__main__":
    main()
