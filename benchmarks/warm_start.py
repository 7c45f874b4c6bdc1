"""MuJoCo warm-start row: PROPS from scratch vs PROPS with a BC warm start from a trained policy's data.

1. Train PPO on the env for ``--teacher-steps`` steps; 2. collect ``--episodes`` episodes of its
deterministic policy into a Minari dataset (temporary root); 3. train PROPS from scratch and PROPS
with ``bc_steps`` BC pre-training for ``--budget`` online steps per seed; report the final
deterministic evaluation return (``--eval-episodes`` episodes) per run.

    python benchmarks/warm_start.py --env Hopper-v5 --teacher-steps 100000 --budget 50000 --seeds 5
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from _results import run_and_append  # benchmarks/_results.py


def teacher_dataset(env_id: str, steps: int, episodes: int, root: str) -> tuple[str, float]:
    from hybridpg import PPO
    from hybridpg.data.datasets import collect_episodes, write_dataset

    teacher = PPO(env_id, seed=1000, eval_freq=0, checkpoint_freq=0)
    teacher.learn(steps)
    env = gym.make(env_id)
    records = collect_episodes(env, lambda obs: teacher.predict(obs, deterministic=True)[0], episodes, seed=20_000)
    dataset_id = f"{env_id.split('-')[0].lower()}-teacher-v0"
    write_dataset(dataset_id, records, env.spec, env.observation_space, env.action_space, root=root)
    env.close()
    teacher.close()
    return dataset_id, float(np.mean([r.rewards.sum() for r in records]))


def run_one(job: dict[str, Any]) -> dict[str, Any]:
    from hybridpg import PROPS
    from hybridpg.training.evaluate import evaluate

    bc = {"offline_dataset": job["dataset"], "offline_root": job["root"], "bc_steps": job["bc_steps"],
          "bc_critic": True} if job["method"] == "props-bc" else {}
    start = time.perf_counter()
    agent = PROPS(job["env"], seed=job["seed"], eval_freq=0, checkpoint_freq=0, **bc)
    agent.learn(job["budget"])
    result = evaluate(agent, job["env"], job["eval_episodes"], seed=50_000 + job["seed"])
    agent.close()
    return {k: job[k] for k in ("env", "method", "seed", "budget")} | {
        "eval_return": result.mean, "wall_s": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="Hopper-v5")
    parser.add_argument("--teacher-steps", type=int, default=100_000)
    parser.add_argument("--episodes", type=int, default=20, help="teacher episodes in the dataset")
    parser.add_argument("--budget", type=int, default=50_000)
    parser.add_argument("--bc-steps", type=int, default=2000)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--seed-start", type=int, default=0, help="first seed (to add seeds to a results file)")
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/warm_start.jsonl"))
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    root = tempfile.mkdtemp(prefix="hybridpg-warm-")
    dataset, teacher_return = teacher_dataset(args.env, args.teacher_steps, args.episodes, root)
    print(json.dumps({"teacher_steps": args.teacher_steps, "teacher_return": teacher_return}), flush=True)
    jobs = [{"env": args.env, "method": m, "seed": s, "budget": args.budget, "dataset": dataset, "root": root,
             "bc_steps": args.bc_steps, "eval_episodes": args.eval_episodes}
            for s in range(args.seed_start, args.seed_start + args.seeds) for m in ("props", "props-bc")]
    header = {"teacher_steps": args.teacher_steps, "teacher_return": teacher_return}
    run_and_append(run_one, jobs, args.jobs, args.out, header=header)


if __name__ == "__main__":
    main()
