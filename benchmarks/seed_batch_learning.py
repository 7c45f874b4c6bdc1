"""Learning with seeds as a batch dimension against the same seeds trained one per process.

The single runs are the PROPS RL comparison's (benchmarks/results/props_rl/runs, the authors'
settings, 200k steps on Hopper-v5); ``run`` trains the same seeds with the same config.yaml as
one ``SeedBatch`` in one process, and ``report`` compares the two seed by seed and as IQMs with 95%
bootstrap CIs. Per seed the batched update equals the single one up to float summation order, so
early evaluations agree and later ones drift apart as chaotic training amplifies rounding; the
claim is that the distributions of returns agree.

    python benchmarks/seed_batch_learning.py run [--env Hopper-v5] [--algo props] [--seeds 0-9]
    python benchmarks/seed_batch_learning.py report [--env Hopper-v5] [--algo props]
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import yaml
from _results import learning_check_main  # benchmarks/_results.py

from hybridpg.algorithms import ALGORITHMS
from hybridpg.algorithms.seed_batch import SeedBatch
from hybridpg.experiments.stats import per_env_iqm_with_ci, probability_of_improvement

SINGLE = Path("benchmarks/results/props_rl/runs")
SCRATCH = Path("runs/seed_batch_learning")
OUT = Path("benchmarks/results/seed_batch_learning")


def run(env: str, algo: str, seeds: list[int]) -> None:
    dirs = [SCRATCH / env / algo / f"seed{s}" for s in seeds]
    if all((d / "checkpoints" / "latest.pt").exists() for d in dirs):
        batch = SeedBatch.load(dirs)
        total = int(yaml.safe_load((dirs[0] / "config.yaml").read_text())["total_timesteps"])
        batch.learn(total - batch.global_step, run_dirs=dirs, reset=False, horizon=total)
    else:
        doc = yaml.safe_load((SINGLE / env / algo / f"seed{seeds[0]}" / "config.yaml").read_text())
        config = ALGORITHMS[algo].config_cls.from_saved(doc["config"])
        batch = SeedBatch.create(ALGORITHMS[algo], env, seeds, config=config)  # type: ignore[arg-type]
        start = time.perf_counter()
        batch.learn(int(doc["total_timesteps"]), run_dirs=dirs)
        print(f"{len(seeds)} seeds x {doc['total_timesteps']} steps in {time.perf_counter() - start:.0f} s")
    batch.close()
    OUT.mkdir(parents=True, exist_ok=True)
    for d in dirs:  # keep the small records: config, summary, evaluations
        target = OUT / "runs" / env / algo / d.name
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy2(d / "config.yaml", target / "config.yaml")
        evals = [line for line in (d / "metrics.jsonl").read_text().splitlines() if '"eval/' in line]
        (target / "metrics.jsonl").write_text("".join(line + "\n" for line in evals))
        shutil.copy2(d / "summary.json", target / "summary.json")


def _evals(run_dir: Path) -> list[tuple[int, float]]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [(int(r["step"]), float(r["eval/return_mean"])) for r in rows if "eval/return_mean" in r]


def report(env: str, algo: str) -> None:
    batched_root = OUT / "runs" / env / algo
    seeds = sorted(int(d.name[4:]) for d in batched_root.glob("seed*") if (d / "summary.json").exists())
    lines = [f"# {algo} on {env}: seeds trained together (one process) vs one process per seed", "",
             "| seed | single: final eval | batched: final eval | evaluations equal (of) | first that differs |",
             "|---|---|---|---|---|"]
    finals: dict[str, list[float]] = {"single": [], "batched": []}
    for seed in seeds:
        single, batched = _evals(SINGLE / env / algo / f"seed{seed}"), _evals(batched_root / f"seed{seed}")
        pairs = list(zip(single, batched, strict=False))
        equal = [abs(a[1] - b[1]) <= 1e-6 * max(1.0, abs(a[1])) for a, b in pairs]
        first = next((pairs[i][0][0] for i, same in enumerate(equal) if not same), None)
        finals["single"].append(single[-1][1])
        finals["batched"].append(batched[-1][1])
        lines.append(f"| {seed} | {single[-1][1]:.1f} | {batched[-1][1]:.1f} | {sum(equal)} ({len(pairs)}) | "
                     f"{'-' if first is None else f'step {first}'} |")
    lines.append("")
    for name, values in finals.items():
        est = per_env_iqm_with_ci(np.asarray(values))
        lines.append(f"- {name}: IQM of the final return {est.point:.1f} [{est.low:.1f}, {est.high:.1f}] "
                     f"(mean {np.mean(values):.1f}, n={len(values)})")
    poi = probability_of_improvement(np.asarray(finals["batched"])[:, None], np.asarray(finals["single"])[:, None])
    lines.append(f"- P(batched > single): {poi.point:.3f} [{poi.low:.3f}, {poi.high:.3f}]")
    text = "\n".join(lines) + "\n"
    (OUT / f"summary_{env}_{algo}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    learning_check_main(__doc__, run, report)
