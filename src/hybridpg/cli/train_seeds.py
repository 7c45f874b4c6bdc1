"""``hybridpg train --seeds 0-9``: several seeds of one on-policy setting in one process.

The batch folder holds one ordinary run folder per seed (``BATCH/seed0``, ``BATCH/seed1``, ...), so
``eval``, ``compare`` and ``--resume BATCH/seedK`` (that seed alone) treat each as a single run;
``--resume BATCH`` continues all of them together.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from hybridpg.errors import HybridPGError


def seed_dirs(batch_dir: Path, seeds: Sequence[int]) -> list[Path]:
    return [batch_dir / f"seed{seed}" for seed in seeds]


def batch_members(run_dir: Path) -> list[Path]:
    """The seed run folders of a batch folder (none when ``run_dir`` is not one)."""
    if (run_dir / "config.yaml").exists() or not run_dir.is_dir():
        return []
    found = [d for d in run_dir.glob("seed*") if d.is_dir() and (d / "config.yaml").exists() and d.name[4:].isdigit()]
    return sorted(found, key=lambda d: int(d.name[4:]))


def train_seeds(args: Any, seeds: list[int], overrides: dict[str, Any], progress: bool | None) -> int:
    """A fresh batch: every seed's run folder under one batch folder."""
    from hybridpg.algorithms import OnPolicyAgent
    from hybridpg.algorithms.seed_batch import SeedBatch
    from hybridpg.cli.parsing import algorithms
    from hybridpg.cli.run_folders import check_fresh, check_writable

    on_policy = [name for name, cls in algorithms().items() if issubclass(cls, OnPolicyAgent)]
    if args.algo not in on_policy:
        raise HybridPGError(f"--seeds trains several seeds in one process for {', '.join(on_policy)}; "
                            f"run {args.algo} once per --seed")
    if args.total_timesteps < 1:
        raise HybridPGError(f"--total-timesteps={args.total_timesteps}: must be >= 1")
    span = f"{seeds[0]}-{seeds[-1]}" if seeds == list(range(seeds[0], seeds[-1] + 1)) else ",".join(map(str, seeds))
    batch_dir = args.run_dir or Path("runs") / (
        f"{args.algo}-{args.env.replace('/', '_')}-s{span}-{time.strftime('%Y%m%d-%H%M%S')}")
    dirs = seed_dirs(batch_dir, seeds)
    for run_dir in dirs:
        check_fresh(run_dir)
    batch = SeedBatch.create(algorithms()[args.algo], args.env, seeds, **overrides)
    try:
        for run_dir in dirs:
            check_writable(run_dir)
    except HybridPGError:
        batch.close()
        raise
    print(f"batch folder: {batch_dir} ({len(seeds)} seeds: {', '.join(d.name for d in dirs)})", flush=True)
    return _learn(batch, lambda: batch.learn(args.total_timesteps, run_dirs=dirs, progress=progress,
                                             batch_dir=batch_dir), dirs)


def resume_seeds(batch_dir: Path, members: list[Path], progress: bool | None, given: dict[str, Any],
                 target: int | None) -> int:
    """``--resume BATCH``: continue every seed of a batch together, each to its own total."""
    from hybridpg.algorithms.seed_batch import SeedBatch
    from hybridpg.cli.run_folders import is_finished, read_run_config

    if given or target is not None:
        raise HybridPGError(f"--resume {batch_dir} continues its seeds with their own settings and totals; "
                            "give only --progress (extend a seed with --resume BATCH/seedK --total-timesteps N)")
    with _locked(members):
        docs = [read_run_config(d) for d in members]
        totals = {doc["total_timesteps"] for doc in docs}
        done = [is_finished(d) for d in members]
        if all(done):
            print(f"{batch_dir}: every seed already reached its total; nothing to do")
            return 0
        missing = [d.name for d in members if not (d / "checkpoints" / "latest.pt").exists()]
        if any(done) or missing or len(totals) != 1:
            why = f"{', '.join(missing)} have no checkpoint" if missing else "its seeds are in different states"
            raise HybridPGError(f"cannot continue {batch_dir} as one batch ({why}); continue each seed on its own: "
                                f"hybridpg train --resume {batch_dir / members[0].name}")
        total = totals.pop()
        batch = SeedBatch.load([d / "checkpoints" / "latest.pt" for d in members])
        step = batch.global_step
        if step >= total:  # stopped after its last checkpoint but before summary.json
            print(f"batch folder: {batch_dir} (finishing: evaluating at step {step})", flush=True)

            def finish() -> None:
                for agent, run_dir in zip(batch.agents, members, strict=True):
                    agent.finish_run(run_dir, progress=progress)
            return _learn(batch, finish, members)
        print(f"batch folder: {batch_dir} (resuming {len(members)} seeds at step {step} of {total})", flush=True)
        return _learn(batch, lambda: batch.learn(total - step, run_dirs=members, progress=progress, reset=False,
                                                 horizon=total, batch_dir=batch_dir), members)


@contextlib.contextmanager
def _locked(run_dirs: list[Path]) -> Iterator[None]:
    from hybridpg.training.folder import RunLock

    locks: list[Any] = []
    try:
        for run_dir in run_dirs:
            locks.append(RunLock(run_dir))
        yield
    finally:
        for lock in locks:
            lock.release()


def _learn(batch: Any, train: Any, dirs: list[Path]) -> int:
    from hybridpg.cli.run_folders import train_and_summarize

    return train_and_summarize(batch, train, list(zip(batch.agents, dirs, strict=True)))
