"""``hybridpg eval``: evaluate a run folder's saved policy."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hybridpg.cli.parsing import ArgumentParser, add_import_option, import_modules
from hybridpg.errors import HybridPGError


def cmd_eval(argv: Sequence[str]) -> int:
    parser = ArgumentParser(prog="hybridpg eval", description="Evaluate a run's saved policy.")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--stochastic", action="store_true", help="sample actions instead of the mode")
    add_import_option(parser)
    args = parser.parse_args(argv)
    import_modules(args)
    if args.episodes < 1:
        raise HybridPGError(f"--episodes={args.episodes}: must be >= 1")
    from hybridpg.algorithms.base import Agent
    from hybridpg.training.evaluate import evaluate

    agent = Agent.load(args.run_dir)
    try:
        result = evaluate(agent, None, args.episodes, seed=args.seed, deterministic=not args.stochastic)
    finally:
        agent.close()
    print(
        f"{agent.config.algo} on {agent.env_id}: return {result.mean:.2f} +- {result.std:.2f} "
        f"over {args.episodes} episodes (mean length {sum(result.lengths) / len(result.lengths):.1f})"
    )
    return 0
