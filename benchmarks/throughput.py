"""Throughput of hybridpg PPO and PROPS against Stable-Baselines3 PPO and the raw env, in one run.

Each measurement runs in its own fresh subprocess (so peak RSS is per method), repeated and
interleaved across methods so that machine noise hits all of them alike; we report medians.
``hybridpg-props-x10`` trains ten PROPS seeds in one process (``SeedBatch``), ``--steps`` each; its
rate is the aggregate over the ten. ``--compiled`` adds runs with ``compile=True`` (each minibatch
step one torch.compile graph; ten PROPS seeds too, unless ``--no-x10``); their time includes
compiling, which torch caches on disk, so only a machine's first such run pays the full compile.
``--warmup N`` first trains N steps untimed in the same process (SB3 too), which times the steady
state of a long run instead.

    python benchmarks/throughput.py --repeats 5 --steps 8192

Needs the benchmark extra: pip install -e ".[bench]".
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

ENV = "Hopper-v5"

# SB3's PPO defaults, spelled out for hybridpg (SB3: no normalization, no target_kl, constant lr)
SB3_DEFAULTS = dict(
    n_steps=2048,
    n_minibatches=32,
    n_epochs=10,
    learning_rate=3e-4,
    gamma=0.99,
    gae_lambda=0.95,
    clip_coef=0.2,
    ent_coef=0.0,
    vf_coef=0.5,
    max_grad_norm=0.5,
    target_kl=None,
    anneal_lr=False,
    clip_vloss=False,
    norm_obs=False,
    norm_reward=False,
    eval_freq=0,
    checkpoint_freq=0,
    se_freq=0,  # the sampling-error diagnostic is ours alone; SB3 computes nothing like it
)

CHILD = r"""
import json, resource, sys, time
method, steps, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
cfg, warmup = json.loads(sys.argv[4]), int(sys.argv[5])  # warmup: untimed steps first (not for raw-env)
import os
os.environ["TORCHINDUCTOR_COMPILE_THREADS"] = "1"  # compile=True compiles on this one core too
import torch
torch.set_num_threads(1)
if method == "raw-env":
    import gymnasium as gym
    env = gym.make("%(env)s")
    env.reset(seed=seed)
    env.action_space.seed(seed)
    t, c = time.perf_counter(), time.process_time()
    for _ in range(steps):
        _, _, te, tr, _ = env.step(env.action_space.sample())
        if te or tr:
            env.reset()
    dt, dc = time.perf_counter() - t, time.process_time() - c
elif method == "sb3-ppo":
    from stable_baselines3 import PPO
    model = PPO("MlpPolicy", "%(env)s", seed=seed, device="cpu", verbose=0)
    if warmup:
        model.learn(warmup)
    t, c = time.perf_counter(), time.process_time()
    model.learn(steps, reset_num_timesteps=not warmup)
    dt, dc = time.perf_counter() - t, time.process_time() - c
elif "-x10" in method:  # ten seeds in one process (SeedBatch); the rate is over all ten
    from hybridpg import PPO, PROPS
    from hybridpg.algorithms.seed_batch import SeedBatch
    algo = {"hybridpg-ppo-x10": PPO, "hybridpg-props-x10": PROPS}[method.removesuffix("-compiled")]
    batch = SeedBatch.create(algo, "%(env)s", range(10 * seed, 10 * seed + 10), **cfg)
    if warmup:
        batch.learn(warmup, progress=False)
    t, c = time.perf_counter(), time.process_time()
    batch.learn(steps, progress=False, reset=not warmup)
    dt, dc = time.perf_counter() - t, time.process_time() - c
    steps *= 10
else:
    from hybridpg import PPO, PROPS
    algo = {"hybridpg-ppo": PPO, "hybridpg-props": PROPS}[method.removesuffix("-compiled")]
    agent = algo("%(env)s", seed=seed, **cfg)
    if warmup:
        agent.learn(warmup, progress=False)
    t, c = time.perf_counter(), time.process_time()
    agent.learn(steps, progress=False, reset=not warmup)
    dt, dc = time.perf_counter() - t, time.process_time() - c
rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"sps": steps / dt, "cpu_sps": steps / dc, "maxrss_mb": rss_mb}))
""".replace("%(env)s", ENV)


def measure(method: str, steps: int, seed: int, cfg: dict[str, object], warmup: int = 0) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, method, str(steps), str(seed), json.dumps(cfg), str(warmup)],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=8192, help="env steps per timed run (multiple of 2048)")
    parser.add_argument("--json", default=None, help="also write the raw results here")
    parser.add_argument("--ppo-x10", action="store_true", help="also time ten PPO seeds in one process")
    parser.add_argument("--compiled", action="store_true", help="also time PPO and PROPS with compile=True")
    parser.add_argument("--no-x10", action="store_true", help="skip the ten-seed rows (single runs only)")
    parser.add_argument("--warmup", type=int, default=0,
                        help="train this many steps untimed before the timed --steps (steady state: compiling, "
                             "the buffer filling); raw-env ignores it")
    args = parser.parse_args()
    methods = {
        "raw-env": {},
        "sb3-ppo": {},
        "hybridpg-ppo": SB3_DEFAULTS,
        "hybridpg-props": {**SB3_DEFAULTS, "buffer_batches": 2, "behavior_steps": 256},
        "hybridpg-props-x10": {**SB3_DEFAULTS, "buffer_batches": 2, "behavior_steps": 256},
    }
    if args.no_x10:
        del methods["hybridpg-props-x10"]
    elif args.ppo_x10:
        methods["hybridpg-ppo-x10"] = SB3_DEFAULTS
    if args.compiled:
        methods["hybridpg-ppo-compiled"] = {**methods["hybridpg-ppo"], "compile": True}
        methods["hybridpg-props-compiled"] = {**methods["hybridpg-props"], "compile": True}
        if "hybridpg-props-x10" in methods:
            methods["hybridpg-props-x10-compiled"] = {**methods["hybridpg-props-x10"], "compile": True}
    results: dict[str, list[dict[str, float]]] = {m: [] for m in methods}
    start = time.time()
    for rep in range(args.repeats):
        for method, cfg in methods.items():  # interleaved, so noise hits every method alike
            steps = args.steps * 4 if method == "raw-env" else args.steps
            results[method].append(measure(method, steps, rep, cfg, 0 if method == "raw-env" else args.warmup))
            print(f"rep {rep} {method:15s} {results[method][-1]['sps']:8.0f} sps", file=sys.stderr)
    med = {m: statistics.median(r["sps"] for r in rs) for m, rs in results.items()}
    cpu = {m: statistics.median(r["cpu_sps"] for r in rs) for m, rs in results.items()}
    rss = {m: statistics.median(r["maxrss_mb"] for r in rs) for m, rs in results.items()}
    print(
        f"\n{ENV}, 1 env, SB3 PPO default hyperparameters, {args.steps} steps/run after {args.warmup} untimed, "
        f"median of {args.repeats} runs ({time.time() - start:.0f}s total)\n"
    )
    print("| method | wall SPS (median) | min-max | SPS per CPU-second | peak RSS MB | wall vs SB3 | CPU vs SB3 |")
    print("|---|---|---|---|---|---|---|")
    for m, rs in results.items():
        lo, hi = min(r["sps"] for r in rs), max(r["sps"] for r in rs)
        print(
            f"| {m} | {med[m]:.0f} | {lo:.0f}-{hi:.0f} | {cpu[m]:.0f} | {rss[m]:.0f} | "
            f"{med[m] / med['sb3-ppo']:.2f}x | {cpu[m] / cpu['sb3-ppo']:.2f}x |"
        )
    print()
    for label, table in (("wall", med), ("CPU-time", cpu)):
        print(
            f"{label}: PPO/SB3 = {table['hybridpg-ppo'] / table['sb3-ppo']:.2f} (target >= 2.5), "
            f"PROPS/SB3 = {table['hybridpg-props'] / table['sb3-ppo']:.2f} (target >= 1.0), "
            f"PPO/raw env = {table['hybridpg-ppo'] / table['raw-env']:.2f} (goal >= 0.5)"
        )
        if "hybridpg-props-x10" in table:
            print(
                f"{label}: 10 PROPS seeds in one process/raw env = "
                f"{table['hybridpg-props-x10'] / table['raw-env']:.2f} (target >= 0.5; "
                f"{table['hybridpg-props-x10'] / table['hybridpg-props']:.2f}x one PROPS process)"
            )
        if args.compiled:
            print(
                f"{label}, compile=True: PPO/SB3 = {table['hybridpg-ppo-compiled'] / table['sb3-ppo']:.2f}, "
                f"PROPS/SB3 = {table['hybridpg-props-compiled'] / table['sb3-ppo']:.2f}, "
                f"PPO/raw env = {table['hybridpg-ppo-compiled'] / table['raw-env']:.2f}"
                + (f", 10 PROPS seeds/raw env = {table['hybridpg-props-x10-compiled'] / table['raw-env']:.2f}"
                   if "hybridpg-props-x10-compiled" in table else "")
            )
    # each repeat's ratios, within the repeat (the machine's speed drifts between repeats)
    for rep in range(args.repeats):
        ours = [m for m in methods if m.startswith("hybridpg")]
        ratios = {m: results[m][rep]["sps"] / results["sb3-ppo"][rep]["sps"] for m in ours}
        raw = {m: results[m][rep]["sps"] / results["raw-env"][rep]["sps"] for m in ours}
        print(f"repeat {rep}: vs SB3 " + ", ".join(f"{m} {r:.2f}" for m, r in ratios.items())
              + "; vs raw env " + ", ".join(f"{m} {r:.2f}" for m, r in raw.items()))
    print("peak RSS MB: " + ", ".join(f"{m} {v:.0f}" for m, v in rss.items()))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"results": results, "median_sps": med, "median_cpu_sps": cpu, "median_rss_mb": rss}, f, indent=1)


if __name__ == "__main__":
    main()
