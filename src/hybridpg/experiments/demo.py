"""``hybridpg demo`` (what ``make demo`` runs): PROPS vs PPO-Buffer vs PPO on CartPole-v1, end to end.

A real sweep (5 seeds per method by default, in parallel, restartable) followed by ``compare``, so
the demo exercises the same path as a paper-scale experiment. Every setting comes from the bundled
``props-paper`` spec (its CartPole-v1 entries were chosen on seeds that neither the demo nor the
benchmark reports); only the budget is the demo's. PROPS's behavior chunk m is small next to its
buffer b*n there, the regime where correcting sampling error can matter.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from hybridpg.errors import ConfigError
from hybridpg.experiments.spec_file import parse_seeds

ALGOS = ["props", "ppo-buffer", "ppo"]
ENV = "CartPole-v1"
SPEC = "props-paper"


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo", help="PROPS vs PPO-Buffer vs PPO on CartPole-v1: a small sweep, then compare",
        description="Run a small restartable sweep on CartPole-v1 with the props-paper spec's settings and "
                    "print the comparison table with a plain verdict.",
    )
    parser.add_argument("--out", type=Path, default=Path("runs/demo"),
                        help="sweep root (default: %(default)s)")
    parser.add_argument("--seeds", default="5", help="as in sweep: a count N (seeds 0..N-1), a list 0,3,7 or a "
                                                     "range 5-9 (default: %(default)s)")
    parser.add_argument("--total-timesteps", type=int, default=20_000, help="per run (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="parallel runs")
    parser.set_defaults(func=handle)


def verdict(rows: list[Any]) -> list[str]:
    """One plain line per baseline: is PROPS ahead on return, and do the intervals separate them?"""
    by_method = {row.method: row for row in rows}
    props = by_method.get("props")
    if props is None:
        return ["PROPS has no finished runs, so there is nothing to compare."]
    lines = []
    for base in ("ppo-buffer", "ppo"):
        other = by_method.get(base)
        if other is None:
            continue
        for label, mine, theirs in (("final return", props.final, other.final),
                                    ("return at 30% of the budget", props.early, other.early)):
            if mine is None or theirs is None:  # the runs' evaluations cannot support the column
                lines.append(f"PROPS vs {base} on {label}: n/a (see the table's n/a lines)")
                continue
            if mine.low > theirs.high:
                word = "ahead of"
            elif mine.high < theirs.low:
                word = "BEHIND"
            else:
                word = "not separable from" if mine.point >= theirs.point else "not separable from (and below)"
            lines.append(f"PROPS is {word} {base} on {label}: IQM {mine.point:.1f} vs {theirs.point:.1f} "
                         "(95% CIs" + (" overlap)" if word.startswith("not") else " do not overlap)"))
    if props.sampling_error is not None and "ppo-buffer" in by_method:
        base_se = by_method["ppo-buffer"].sampling_error
        if base_se:
            lines.append(f"PROPS's sampling error is {props.sampling_error / base_se:.2f}x PPO-Buffer's "
                         "(below 1 means its buffer is closer to on-policy data).")
    return lines


def handle(args: argparse.Namespace) -> int:
    from hybridpg.experiments.compare import compare, load_runs, method_rows
    from hybridpg.experiments.spec_file import load_spec
    from hybridpg.experiments.sweep import SweepSpec, run_sweep

    seeds = parse_seeds(args.seeds)
    if len(seeds) < 2:
        raise ConfigError(f"--seeds={args.seeds}: a confidence interval needs at least 2 seeds")
    spec = SweepSpec(ALGOS, [ENV], seeds, args.total_timesteps, {}, args.out.resolve(),
                     workers=args.workers, spec_file=load_spec(SPEC))
    print(f"$ {spec.command()}", flush=True)
    start = time.perf_counter()
    progress = run_sweep(spec)
    print(f"sweep took {time.perf_counter() - start:.0f}s", flush=True)
    print(f"$ hybridpg compare {spec.root}", flush=True)
    compare(spec.root)
    for line in verdict(method_rows(load_runs(spec.root))):
        print(line)
    print("The demo is small (a few seeds, a short budget); benchmarks/props_rl.py runs the paper's "
          "comparison with 10 seeds (BENCHMARKS.md).")
    if progress.failed:
        print(f"{progress.failed} run(s) failed; see their error.txt", file=sys.stderr)
        return 1
    return 0
