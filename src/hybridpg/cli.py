"""The ``hybridpg`` command line: train, eval, and the subcommands that feature modules add.

A user error (``HybridPGError``) prints one ``error: ...`` line and exits with status 2; nothing
else is printed. Feature modules register subcommands through ``SUBCOMMAND_MODULES``: each module
exposes ``add_parser(subparsers)`` which sets ``func`` on its parser.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import sys
import time
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hybridpg.errors import HybridPGError

# modules that add subcommands; imported lazily so `hybridpg train` stays quick to start
SUBCOMMAND_MODULES: list[str] = [
    "hybridpg.experiments.sweep",
    "hybridpg.experiments.compare",
    "hybridpg.experiments.demo",
    "hybridpg.data.collect",
    "hybridpg.diagnostics.fixed_target",
]


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports a bad argument as one error line instead of usage + error."""

    def error(self, message: str) -> typing.NoReturn:
        raise HybridPGError(f"{self.prog}: {message}")


def _algorithms() -> dict[str, Any]:
    from hybridpg.algorithms import ALGORITHMS

    return ALGORITHMS


def _add_config_fields(parser: argparse.ArgumentParser, config_cls: type) -> None:
    group = parser.add_argument_group(f"{config_cls.algo} config fields")  # type: ignore[attr-defined]
    hints = typing.get_type_hints(config_cls)
    for f in dataclasses.fields(config_cls):
        default: Any = f.default
        if default is dataclasses.MISSING and callable(f.default_factory):
            default = f.default_factory()
        kind = getattr(hints[f.name], "__name__", str(hints[f.name]))
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        group.add_argument(
            f"--{f.name.replace('_', '-')}",
            dest=f"cfg_{f.name}",
            default=None,
            metavar=kind.upper(),
            help=f"(default: {shown})",
        )


def _train_parser(algo: str) -> argparse.ArgumentParser:
    algos = _algorithms()
    parser = ArgumentParser(prog="hybridpg train", description="Train an agent and write a run folder.")
    parser.add_argument("--algo", default=algo, choices=sorted(algos), help="algorithm (default: %(default)s)")
    parser.add_argument("--env", default="CartPole-v1", help="Gymnasium id (default: %(default)s)")
    parser.add_argument("--total-timesteps", type=int, default=100_000, help="env steps (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    parser.add_argument("--run-dir", type=Path, default=None, help="run folder (default: runs/ALGO-ENV-sSEED-TIME)")
    parser.add_argument(
        "--resume",
        type=Path,
        default=None,
        metavar="RUN_DIR",
        help="continue a run from its latest checkpoint up to its total_timesteps",
    )
    parser.add_argument(
        "--progress", choices=["auto", "on", "off"], default="auto", help="progress bar (auto: only on a terminal)"
    )
    _add_config_fields(parser, algos[algo].config_cls)
    return parser


def cmd_train(argv: Sequence[str]) -> int:
    pre = ArgumentParser(add_help=False)
    pre.add_argument("--algo", default="ppo")
    known, _ = pre.parse_known_args(argv)
    algos = _algorithms()
    if known.algo not in algos:
        raise HybridPGError(f"unknown algorithm '{known.algo}'; choose from {', '.join(sorted(algos))}")
    parser = _train_parser(known.algo)
    args = parser.parse_args(argv)
    progress = {"auto": None, "on": True, "off": False}[args.progress]
    agent_cls = algos[args.algo]
    if args.resume is not None:
        return _resume(args.resume, progress)
    overrides = {k[4:]: v for k, v in vars(args).items() if k.startswith("cfg_") and v is not None}
    run_dir = (
        args.run_dir
        or Path("runs") / f"{args.algo}-{args.env.replace('/', '_')}-s{args.seed}-{time.strftime('%Y%m%d-%H%M%S')}"
    )
    if run_dir.exists() and any(run_dir.iterdir()):
        raise HybridPGError(
            f"run folder {run_dir} already exists and is not empty; use --resume {run_dir} or another --run-dir"
        )
    if args.total_timesteps < 1:
        raise HybridPGError(f"--total-timesteps={args.total_timesteps}: must be >= 1")
    agent = agent_cls(args.env, seed=args.seed, **overrides)
    _check_writable(run_dir)
    return _learn(agent, args.total_timesteps, run_dir, progress, reset=True)


def _learn(agent: Any, steps: int, run_dir: Path, progress: bool | None, reset: bool) -> int:
    """Train; SIGINT/SIGTERM checkpoint first and exit 128+signal with a one-line resume hint."""
    from hybridpg.training.run import TrainingInterrupted

    try:
        agent.learn(steps, run_dir=run_dir, progress=progress, reset=reset)
    except TrainingInterrupted as exc:
        print(exc, file=sys.stderr)
        return exc.exit_code
    finally:
        agent.close()
    _print_summary(agent, run_dir)
    return 0


def _resume(run_dir: Path, progress: bool | None) -> int:
    import yaml

    from hybridpg.algorithms.base import Agent

    config_path = run_dir / "config.yaml"
    if not config_path.exists():
        raise HybridPGError(f"{run_dir} is not a run folder (no config.yaml)")
    doc = yaml.safe_load(config_path.read_text())
    total = int(doc["total_timesteps"])
    if not (run_dir / "checkpoints" / "latest.pt").exists():
        # stopped before its first checkpoint: start over in the same folder, same settings
        algos = _algorithms()
        if doc.get("algo") not in algos:
            raise HybridPGError(f"{run_dir}/config.yaml names unknown algorithm {doc.get('algo')!r}")
        fresh = algos[doc["algo"]].config_cls.from_dict(doc["config"])
        agent = algos[doc["algo"]](doc["env"], seed=int(doc["seed"]), config=fresh)
        agent.restart_in(run_dir)
        return _learn(agent, total, run_dir, progress, reset=True)
    agent = Agent.load(run_dir / "checkpoints" / "latest.pt")
    total = max(total, agent.horizon or 0)  # the checkpoint's horizon is the schedule's
    if agent.global_step >= total:
        agent.close()
        print(f"{run_dir} already reached {total} steps; nothing to do")
        return 0
    return _learn(agent, total - agent.global_step, run_dir, progress, reset=False)


def _check_writable(run_dir: Path) -> None:
    existed = run_dir.exists()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        if not existed and run_dir.is_dir() and not any(run_dir.iterdir()):
            run_dir.rmdir()  # leave nothing behind for a bad --run-dir
        raise HybridPGError(f"cannot write to run folder {run_dir}: {exc.strerror or exc}") from None


def _print_summary(agent: Any, run_dir: Path) -> None:
    import json

    summary = json.loads((run_dir / "summary.json").read_text())
    print(
        f"{summary['algo']} on {summary['env']} seed {summary['seed']}: {summary['global_step']} steps, "
        f"eval return {summary['eval_return_mean']:.1f}, {summary['sps']:.0f} sps -> {run_dir}"
    )


def cmd_eval(argv: Sequence[str]) -> int:
    parser = ArgumentParser(prog="hybridpg eval", description="Evaluate a run's saved policy.")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--stochastic", action="store_true", help="sample actions instead of the mode")
    args = parser.parse_args(argv)
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


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="hybridpg", description="Data-efficient policy-gradient RL.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("train", help="train an agent (hybridpg train --help lists every config field)", add_help=False)
    sub.add_parser("eval", help="evaluate a run folder's saved policy", add_help=False)
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] == "train":
            return cmd_train(argv[1:])
        if argv and argv[0] == "eval":
            return cmd_eval(argv[1:])
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return 0 if not argv else 2
        return int(args.func(args) or 0)
    except HybridPGError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        # a local sweep stopped by SIGTERM raises a KeyboardInterrupt that carries 143
        print(f"interrupted: {exc}" if str(exc) else "interrupted", file=sys.stderr)
        return int(getattr(exc, "exit_code", 130))


if __name__ == "__main__":
    sys.exit(main())
