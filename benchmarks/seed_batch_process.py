"""Whole-process time of ten PROPS seeds trained as one batch (``SeedBatch``), and how many graphs a
compiled batch compiles, to compare code versions.

Each measurement is a fresh process at one torch thread: import, ``SeedBatch.create`` and
``learn(--steps)`` for seeds 0-9 on Hopper-v5 with SB3's PPO hyperparameters and b=2, m=256 (as
``throughput.py``'s ten-seed row), ``compile=True`` unless ``--eager``. It prints the aggregate env
steps per second over the whole process and dynamo's count of unique graphs.

``--compare OLD_SRC`` alternates the current checkout's ``src`` with ``OLD_SRC`` (a ``git worktree``
of another commit) for ``--pairs`` pairs, after one untimed run of each at the same budget that warms torch's
compile cache, and prints the medians and their ratio:

    git worktree add /tmp/hybridpg-old HEAD~1
    python benchmarks/seed_batch_process.py --compare /tmp/hybridpg-old/src --pairs 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

CHILD = r"""
import json, os, sys, time
start = time.perf_counter()
os.environ["TORCHINDUCTOR_COMPILE_THREADS"] = "1"
import torch
torch.set_num_threads(1)
from torch._dynamo.utils import counters
sys.path.insert(0, sys.argv[3])
from throughput import SB3_DEFAULTS
from hybridpg import PROPS
from hybridpg.algorithms.seed_batch import SeedBatch
steps, compile_flag = int(sys.argv[1]), sys.argv[2] == "1"
cfg = {**SB3_DEFAULTS, "buffer_batches": 2, "behavior_steps": 256, "compile": compile_flag}
batch = SeedBatch.create(PROPS, "Hopper-v5", range(10), **cfg)
batch.learn(steps, progress=False)
wall = time.perf_counter() - start
print(json.dumps({"sps": 10 * steps / wall, "wall_s": wall, "graphs": counters["stats"]["unique_graphs"]}))
"""


def measure(src: Path, steps: int, compile_flag: bool) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    out = subprocess.run([sys.executable, "-c", CHILD, str(steps), "1" if compile_flag else "0", str(HERE)],
                         check=True, capture_output=True, text=True, env=env)
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=8192, help="env steps per seed")
    parser.add_argument("--eager", action="store_true", help="compile=False")
    parser.add_argument("--compare", type=Path, default=None, help="another checkout's src folder")
    parser.add_argument("--pairs", type=int, default=3)
    args = parser.parse_args()
    srcs = {"current": HERE.parent / "src"}
    if args.compare is not None:
        srcs["old"] = args.compare.resolve()
    for name, src in srcs.items():  # untimed, at the same budget: every graph the timed runs meet is cached
        print(f"warm-up {name}: {measure(src, args.steps, not args.eager)}", file=sys.stderr)
    results: dict[str, list[dict[str, float]]] = {name: [] for name in srcs}
    for pair in range(args.pairs):
        order = list(srcs) if pair % 2 == 0 else list(reversed(srcs))
        for name in order:
            results[name].append(measure(srcs[name], args.steps, not args.eager))
            print(f"pair {pair} {name:8s} {results[name][-1]}", file=sys.stderr)
    med = {name: statistics.median(r["sps"] for r in rs) for name, rs in results.items()}
    for name, rs in results.items():
        each = ", ".join(f"{r['sps']:.0f}" for r in rs)
        print(f"{name:8s} {med[name]:7.0f} SPS (median of {len(rs)}: {each}), graphs {rs[0]['graphs']:.0f}")
    if "old" in med:
        print(f"current / old: {med['current'] / med['old']:.2f}x")


if __name__ == "__main__":
    main()
