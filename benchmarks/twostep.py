"""TwoStep-v0: how often PROPS vs PPO converge to the optimal return 2 (paper: 100% vs 71%).

From s0, action 0 leads to s1 (returns 2 or 0.5) and action 1 to s2 (return 1 either way). Early
sampling error can make an agent give up on s1 before it has seen the 2 often enough. Both methods
share the network and batch settings below; PROPS adds b = 2 and its behavior policy. An agent has
converged when its deterministic policy earns 2.

    python benchmarks/twostep.py --seeds 50 --steps 40000
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import gymnasium as gym

import hybridpg.envs  # noqa: F401  (registers hybridpg/TwoStep-v0)
from hybridpg import PPO, PROPS
from hybridpg.diagnostics.fixed_target import mean_ci

ENV = "hybridpg/TwoStep-v0"
# a 2-step MDP needs neither wide networks nor long batches
# (for PPO, behavior_steps is only the collection chunk: it changes nothing in learning)
SHARED: dict[str, Any] = {"hidden_sizes": (16, 16), "n_steps": 128, "behavior_steps": 64, "n_minibatches": 4,
                          "learning_rate": 1e-3, "eval_freq": 0, "checkpoint_freq": 0}
PROPS_ONLY: dict[str, Any] = {"buffer_batches": 2, "props_minibatches": 4}


def greedy_return(agent: Any) -> float:
    env = gym.make(ENV)
    obs, _ = env.reset(seed=0)
    total, done = 0.0, False
    while not done:
        obs, reward, terminated, truncated, _ = env.step(int(agent.predict(obs)))
        total += float(reward)
        done = terminated or truncated
    env.close()
    return total


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seeds", type=int, default=50)
    p.add_argument("--steps", type=int, default=40_000)
    p.add_argument("--out", type=Path, default=Path("runs/bench-twostep.jsonl"))
    args = p.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    results: dict[str, list[float]] = {"ppo": [], "props": []}
    for seed in range(args.seeds):
        for name, cls, extra in (("ppo", PPO, {}), ("props", PROPS, PROPS_ONLY)):
            t0 = time.perf_counter()
            agent = cls(ENV, seed=seed, **SHARED, **extra)
            agent.learn(args.steps)
            ret = greedy_return(agent)
            agent.close()
            results[name].append(float(ret == 2.0))
            with open(args.out, "a", encoding="utf-8") as f:
                f.write(json.dumps({"method": name, "seed": seed, "steps": args.steps, "greedy_return": ret}) + "\n")
            print(f"{name} seed {seed}: greedy return {ret} ({time.perf_counter() - t0:.0f}s)", flush=True)
    for name, hits in results.items():
        mean, half = mean_ci(hits)
        print(f"{name}: {sum(hits):.0f}/{len(hits)} converged to 2 ({100 * mean:.0f}% +- {100 * half:.0f}%)")


if __name__ == "__main__":
    main()
