"""SAC training throughput and peak memory: hybridpg vs Stable-Baselines3 on Hopper-v5.

Same hyperparameters for both (buffer 1e6, batch 256, 256-256, one gradient step per env step,
learned temperature). Each measurement is its own child process: it builds the agent, runs
``--warmup`` env steps (uniform random actions, = learning_starts, no gradient steps), then times
``--steps`` further env steps, every one with a gradient step, and reports env steps per second
of that timed part and its own peak RSS (``ru_maxrss``, whole process lifetime). Libraries
alternate within each repeat so machine noise hits both; the table shows medians over repeats.

    python benchmarks/throughput_sac.py --repeats 3 --steps 3000 --threads 1
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time


def child(lib: str, warmup: int, steps: int, threads: int, compile_: bool, bf16: bool) -> dict[str, float]:
    import torch

    torch.set_num_threads(threads)
    if lib == "hybridpg":
        from hybridpg import SAC

        agent = SAC("Hopper-v5", seed=0, learning_starts=warmup, torch_threads=threads, compile=compile_,
                    matmul_precision="bfloat16" if bf16 else "float32", eval_freq=0, checkpoint_freq=0, eval_episodes=1)
        agent.learn(warmup, progress=False)
        t0, c0 = time.perf_counter(), time.process_time()
        # the final 1-episode evaluation that learn() always runs is included (a few ms)
        agent.learn(steps, progress=False, reset=False)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        agent.close()
    else:
        from stable_baselines3 import SAC as SB3SAC

        model = SB3SAC("MlpPolicy", "Hopper-v5", learning_rate=3e-4, buffer_size=1_000_000, batch_size=256,
                       tau=0.005, gamma=0.99, learning_starts=warmup, train_freq=1, gradient_steps=1,
                       ent_coef="auto", policy_kwargs={"net_arch": [256, 256]}, seed=0, device="cpu")
        model.learn(warmup)
        t0, c0 = time.perf_counter(), time.process_time()
        model.learn(steps, reset_num_timesteps=False)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    # cpu_sps (steps per CPU-second of the process, all its threads) is less sensitive to other
    # processes competing for the cores than wall-clock sps
    return {"sps": steps / wall, "cpu_sps": steps / cpu, "peak_mib": peak_mib}


def measure(lib: str, args: argparse.Namespace, threads: int, compile_: bool = False, bf16: bool = False
            ) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--child", lib, "--warmup", str(args.warmup), "--steps", str(args.steps),
           "--threads", str(threads)] + (["--compile"] if compile_ else []) + (["--bf16"] if bf16 else [])
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1000, help="learning_starts (random-action steps, untimed)")
    p.add_argument("--steps", type=int, default=3000, help="timed env steps, each with a gradient step")
    p.add_argument("--threads", type=int, nargs="+", default=[1])
    p.add_argument("--compile", action="store_true", help="also measure hybridpg with compile=True")
    p.add_argument("--bf16", action="store_true", help="also measure hybridpg with matmul_precision=bfloat16")
    p.add_argument("--child", choices=["hybridpg", "sb3"], help=argparse.SUPPRESS)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.warmup, args.steps, args.threads[0], args.compile, args.bf16)))
        return
    variants = [(lib, t, False, False) for t in args.threads for lib in ("hybridpg", "sb3")]
    if args.compile:
        variants += [("hybridpg", t, True, False) for t in args.threads]
    if args.bf16:
        variants += [("hybridpg", t, False, True) for t in args.threads]
    runs: dict[str, list[dict[str, float]]] = {}
    for r in range(args.repeats):
        for lib, t, c, b in variants:
            name = f"{lib}{' compile' if c else ''}{' bf16' if b else ''} threads={t}"
            res = measure(lib, args, t, c, b)
            runs.setdefault(name, []).append(res)
            print(f"repeat {r}: {name:26s} {res['sps']:7.1f} sps  peak {res['peak_mib']:5.0f} MiB", flush=True)
    print(f"\nHopper-v5 SAC, {args.steps} timed steps after {args.warmup} warm-up, medians of {args.repeats}")
    print("| variant | SPS (median) | SPS runs | SPS per CPU-s (median) | peak RSS MiB (median) | SPS / SB3 |")
    print("|---|---|---|---|---|---|")
    for name, rs in runs.items():
        sps = statistics.median(x["sps"] for x in rs)
        mem = statistics.median(x["peak_mib"] for x in rs)
        sb3 = statistics.median(x["sps"] for x in runs[f"sb3 threads={name.rsplit('=', 1)[1]}"])
        cpu = statistics.median(x["cpu_sps"] for x in rs)
        each = ", ".join(f"{x['sps']:.1f}" for x in rs)
        print(f"| {name} | {sps:.1f} | {each} | {cpu:.1f} | {mem:.0f} | {sps / sb3:.2f}x |")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"args": vars(args), "runs": runs}, f, indent=2)


if __name__ == "__main__":
    main()
