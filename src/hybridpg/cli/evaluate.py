"""``hybridpg eval``: evaluate a run folder's saved policy."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hybridpg.cli.parsing import ArgumentParser, add_import_option, import_modules
from hybridpg.errors import HybridPGError


def cmd_eval(argv: Sequence[str]) -> int:
    parser = ArgumentParser(prog="hybridpg eval", description="Evaluate a run's saved policy.")
    parser.add_argument("run_dir", type=Path, help="a run folder, a checkpoint or a policy file (policy.save)")
    parser.add_argument("--episodes", type=int, default=10, help="episodes to run (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=12345, help="the first episode's reset seed (default: %(default)s)")
    parser.add_argument("--stochastic", action="store_true", help="sample actions instead of the mode")
    add_import_option(parser)
    args = parser.parse_args(argv)
    import_modules(args)
    if args.episodes < 1:
        raise HybridPGError(f"--episodes={args.episodes}: must be >= 1")
    if not 0 <= args.seed < 2**32 - args.episodes:
        raise HybridPGError(f"--seed={args.seed}: must be in [0, 2**32 - episodes) (episode i resets with seed + i)")
    from hybridpg.algorithms.base import Agent
    from hybridpg.training.evaluate import evaluate

    # the policy alone: neither the training envs nor an offline dataset (BC, HNPG) is needed
    policy = Agent.load_policy(args.run_dir)
    result = evaluate(policy, None, args.episodes, seed=args.seed, deterministic=not args.stochastic)
    print(
        f"{policy.algo} on {policy.env_id}: return {result.mean:.2f} +- {result.std:.2f} "
        f"over {args.episodes} episodes (mean length {sum(result.lengths) / len(result.lengths):.1f})"
    )
    return 0
