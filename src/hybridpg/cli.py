"""The ``hybridpg`` command line: train, eval, and the subcommands that feature modules add.

A user error (``HybridPGError``) prints one ``error: ...`` line and exits with status 2; nothing
else is printed. Feature modules register subcommands through ``SUBCOMMAND_MODULES``: each module
exposes ``add_parser(subparsers)`` which sets ``func`` on its parser.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import importlib
import math
import shlex
import sys
import time
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hybridpg.errors import ConfigError, HybridPGError

# modules that add subcommands; imported lazily so `hybridpg train` stays quick to start
SUBCOMMAND_MODULES: list[str] = [
    "hybridpg.experiments.sweep",
    "hybridpg.experiments.compare",
    "hybridpg.experiments.demo",
    "hybridpg.data.collect",
    "hybridpg.diagnostics.fixed_target",
    "hybridpg.training.export",
]


def step_count(text: str) -> int:
    """An env-step count as users write it: 100000, 100_000 or 1e5 (whole numbers only)."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not value.is_integer():
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number of steps (e.g. 100000 or 1e5)")
    return int(value)


def _is_step_option(option_strings: Sequence[str]) -> bool:
    return any(o.startswith("--") and (o.endswith("timesteps") or o.endswith("-steps")) for o in option_strings)


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports a bad argument as one error line instead of usage + error.

    Subcommand parsers made with ``add_subparsers`` are this class too, so every subcommand
    gets step counts written as 1e5 and "did you mean" hints for mistyped options.
    """

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        # every integer step-count option takes 1e5 (rl-zoo habit), whichever module adds it
        if kwargs.get("type") is int and _is_step_option(args):
            kwargs["type"] = step_count
        return super().add_argument(*args, **kwargs)

    def error(self, message: str) -> typing.NoReturn:
        if message.startswith("unrecognized arguments:"):
            message += self.suggestion(message.split(":", 1)[1].split())
        raise HybridPGError(f"{self.prog}: {message}")

    def suggestion(self, unknown: Sequence[str]) -> str:
        """'; did you mean --X?' for the first mistyped option that resembles one of ours."""
        options = [o for o in self._option_string_actions if o.startswith("--")]
        for arg in unknown:
            if arg.startswith("-"):
                close = difflib.get_close_matches(arg.split("=", 1)[0], options, n=1, cutoff=0.6)
                if close:
                    return f"; did you mean {close[0]}?"
        return ""


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
        described = f.metadata.get("help")
        text = f"{described} (default: {shown})" if described else f"(default: {shown})"
        group.add_argument(
            f"--{f.name.replace('_', '-')}",
            dest=f"cfg_{f.name}",
            default=None,
            metavar=kind.upper(),
            help=text.replace("%", "%%"),  # argparse %-formats help; a literal % in a description must survive
        )


def _add_import_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--import", dest="imports", action="append", default=[], metavar="MODULE",
        help="import a module that registers your envs (gymnasium.register) first; repeatable. "
             "Or name the env as MODULE:EnvId-v0",
    )


def _import_modules(args: argparse.Namespace) -> None:
    from hybridpg.envs.registry import import_env_modules

    import_env_modules(getattr(args, "imports", None) or [], export=True)


def _train_parser(algo: str) -> argparse.ArgumentParser:
    algos = _algorithms()
    parser = ArgumentParser(prog="hybridpg train", description="Train an agent and write a run folder.")
    parser.add_argument("--algo", default=algo, choices=sorted(algos), help="algorithm (default: %(default)s)")
    parser.add_argument("--env", default="CartPole-v1", help="Gymnasium id (default: %(default)s)")
    parser.add_argument(
        "--total-timesteps", type=step_count, default=100_000, help="env steps, e.g. 1e5 (default: %(default)s)"
    )
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
        "--progress", choices=["auto", "on", "off"], default="auto",
        help="auto: a bar on a terminal, else a line every $HYBRIDPG_PROGRESS_SECONDS (30) s; on: bar; off: none"
    )
    _add_import_option(parser)
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
    _import_modules(args)
    progress = {"auto": None, "on": True, "off": False}[args.progress]
    agent_cls = algos[args.algo]
    if args.resume is not None:
        return _resume(args.resume, progress)
    overrides = {k[4:]: v for k, v in vars(args).items() if k.startswith("cfg_") and v is not None}
    run_dir = (
        args.run_dir
        or Path("runs") / f"{args.algo}-{args.env.replace('/', '_')}-s{args.seed}-{time.strftime('%Y%m%d-%H%M%S')}"
    )
    _check_fresh(run_dir)
    if args.total_timesteps < 1:
        raise HybridPGError(f"--total-timesteps={args.total_timesteps}: must be >= 1")
    agent = agent_cls(args.env, seed=args.seed, **overrides)
    try:
        _check_writable(run_dir)
    except HybridPGError:
        agent.close()
        raise
    from hybridpg.training.folder import RunLock, clear_dead_setup

    try:
        lock = RunLock(run_dir)
    except HybridPGError:
        agent.close()
        raise
    try:
        try:
            _check_fresh(run_dir)  # again, now that no other trainer can start here
            clear_dead_setup(run_dir)
        except (HybridPGError, OSError):
            agent.close()
            raise
        _announce(run_dir)
        return _learn(agent, lambda: agent.learn(args.total_timesteps, run_dir=run_dir, progress=progress), run_dir)
    finally:
        lock.release()


def _announce(run_dir: Path, note: str = "") -> None:
    """The run folder first, so a user can tail its metrics or open TensorBoard right away."""
    print(f"run folder: {run_dir}{note}", flush=True)


def _check_fresh(run_dir: Path) -> None:
    """A fresh run needs a new or empty folder, or one left by a setup that died before config.yaml."""
    from hybridpg.training.folder import check_not_locked, is_dead_setup

    if not run_dir.exists():
        return
    if not run_dir.is_dir():
        raise HybridPGError(f"--run-dir {run_dir} is a file, not a folder")
    check_not_locked(run_dir)
    try:
        fresh = is_dead_setup(run_dir)
    except OSError as exc:
        raise HybridPGError(f"cannot read run folder {run_dir}: {exc.strerror or exc}") from None
    if not fresh:
        raise HybridPGError(
            f"run folder {run_dir} already exists and is not empty; use --resume {run_dir} or another --run-dir"
        )


def _learn(agent: Any, train: Callable[[], Any], run_dir: Path) -> int:
    """Train; SIGINT/SIGTERM checkpoint first and exit 128+signal with a one-line resume hint."""
    from hybridpg.training.run import TrainingInterrupted

    try:
        train()
    except TrainingInterrupted as exc:
        print(exc, file=sys.stderr)
        return exc.exit_code
    finally:
        agent.close()
    _print_summary(agent, run_dir)
    return 0


RUN_KEYS = ("algo", "env", "seed", "total_timesteps", "config")


def read_run_config(run_dir: Path) -> dict[str, Any]:
    """RUN/config.yaml, checked field by field: every problem is one ConfigError naming the file."""
    import yaml

    path = run_dir / "config.yaml"
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(f"cannot read {path}: {reason or exc}") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise ConfigError(f"{path} is not valid YAML{where}: {problem}") from None
    if not isinstance(doc, dict):
        got = "an empty file" if doc is None else f"a {type(doc).__name__}"
        raise ConfigError(f"{path} must be a mapping with keys {', '.join(RUN_KEYS)}; it is {got}")
    missing = [k for k in RUN_KEYS if k not in doc]
    if missing:
        raise ConfigError(f"{path} lacks {', '.join(missing)}")
    algos = _algorithms()
    if not isinstance(doc["algo"], str) or doc["algo"] not in algos:
        raise ConfigError(f"{path}: unknown algorithm {doc['algo']!r}")
    if not isinstance(doc["env"], str) or not doc["env"]:
        raise ConfigError(f"{path}: env={doc['env']!r} must be an env id")
    for key in ("seed", "total_timesteps"):
        value = doc[key]
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ConfigError(f"{path}: {key}={value!r} must be an integer")
        try:
            doc[key] = int(value)
        except ValueError:
            raise ConfigError(f"{path}: {key}={value!r} must be an integer") from None
    if doc["total_timesteps"] < 1:
        raise ConfigError(f"{path}: total_timesteps={doc['total_timesteps']} must be >= 1")
    if not isinstance(doc["config"], dict):
        raise ConfigError(f"{path}: config must be a mapping of config fields, not {doc['config']!r}")
    config_cls = algos[doc["algo"]].config_cls
    try:
        doc["config_obj"] = config_cls.from_saved(doc["config"])
    except HybridPGError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except (TypeError, ValueError, AttributeError):
        # a value of the wrong type (e.g. gamma: [1, 2]) fails deep in validation: name the field
        for name, value in doc["config"].items():
            try:
                config_cls.from_saved({name: value})
            except (HybridPGError, TypeError, ValueError, AttributeError):
                raise ConfigError(f"{path}: config field '{name}'={value!r} has the wrong type or value") from None
        raise ConfigError(f"{path}: config fields do not fit together") from None
    return doc


def _resume(run_dir: Path, progress: bool | None) -> int:
    from hybridpg.algorithms.base import Agent
    from hybridpg.training.folder import RunLock, is_dead_setup

    if not run_dir.is_dir():
        raise HybridPGError(f"{run_dir} is not a run folder" + (" (it is a file)" if run_dir.exists() else ""))
    if not (run_dir / "config.yaml").exists():
        if is_dead_setup(run_dir):
            raise HybridPGError(
                f"{run_dir} was interrupted while being set up (no config.yaml); "
                f"start it again with: hybridpg train --run-dir {shlex.quote(str(run_dir))} ..."
            )
        raise HybridPGError(f"{run_dir} is not a run folder (no config.yaml)")
    lock = RunLock(run_dir)  # before reading: the holder could be rewriting what we would read
    try:
        return _resume_locked(run_dir, progress, Agent)
    finally:
        lock.release()


def _resume_locked(run_dir: Path, progress: bool | None, agent_base: Any) -> int:
    doc = read_run_config(run_dir)
    total = doc["total_timesteps"]
    latest = run_dir / "checkpoints" / "latest.pt"
    if not latest.exists():
        if (run_dir / "summary.json").exists() or (run_dir / "checkpoints" / "final.pt").exists():
            # a finished run that lost its checkpoint: retraining would silently replace its results
            raise HybridPGError(
                f"{run_dir} has finished (summary.json or final.pt) but checkpoints/latest.pt is missing; "
                "refusing to train it again from scratch"
            )
        # stopped before its first checkpoint: start over in the same folder, same settings
        algos = _algorithms()
        agent = algos[doc["algo"]](doc["env"], seed=doc["seed"], config=doc["config_obj"])
        agent.restart_in(run_dir)
        _announce(run_dir, " (starting again: it stopped before its first checkpoint)")
        return _learn(agent, lambda: agent.learn(total, run_dir=run_dir, progress=progress), run_dir)
    agent = agent_base.load(latest)
    total = max(total, agent.horizon or 0)  # the checkpoint's horizon is the schedule's
    if agent.global_step >= total:
        if _finished(run_dir):
            agent.close()
            print(f"{run_dir} already reached {total} steps; nothing to do")
            return 0
        # stopped after its last checkpoint but before summary.json: evaluate and write it now
        _announce(run_dir, f" (finishing: evaluating at step {agent.global_step})")
        return _learn(agent, lambda: agent.finish_run(run_dir, progress=progress), run_dir)
    _announce(run_dir, f" (resuming at step {agent.global_step} of {total})")
    return _learn(
        agent, lambda: agent.learn(total - agent.global_step, run_dir=run_dir, progress=progress, reset=False), run_dir
    )


def _finished(run_dir: Path) -> bool:
    import json

    try:
        summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(summary, dict) and summary.get("status") == "finished"


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
    ret = "n/a" if summary["eval_return_mean"] is None else f"{summary['eval_return_mean']:.1f}"
    sps = "" if summary["sps"] is None else f", {summary['sps']:.0f} sps"
    print(
        f"{summary['algo']} on {summary['env']} seed {summary['seed']}: {summary['global_step']} steps, "
        f"eval return {ret}{sps} -> {run_dir}"
    )


def cmd_eval(argv: Sequence[str]) -> int:
    parser = ArgumentParser(prog="hybridpg eval", description="Evaluate a run's saved policy.")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--stochastic", action="store_true", help="sample actions instead of the mode")
    _add_import_option(parser)
    args = parser.parse_args(argv)
    _import_modules(args)
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
    from hybridpg import __version__

    parser = ArgumentParser(prog="hybridpg", description="Data-efficient policy-gradient RL.")
    parser.add_argument("--version", action="version", version=f"hybridpg {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("train", help="train an agent (hybridpg train --help lists every config field)", add_help=False)
    sub.add_parser("eval", help="evaluate a run folder's saved policy", add_help=False)
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).add_parser(sub)
    if "sweep" in sub.choices:  # its workers inherit the imports (see import_env_modules)
        _add_import_option(sub.choices["sweep"])
    return parser


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """parse_args, but an unknown option is reported by the subcommand it was given to (argparse
    hands a subparser's leftovers to the top-level parser, which would name neither)."""
    args, extra = parser.parse_known_args(argv)
    if extra:
        command = getattr(args, "command", None)
        subparsers = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
        owner = subparsers.choices.get(command, parser) if subparsers is not None and command else parser
        owner.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv and not argv[0].startswith("-") else None
    try:
        if command == "train":
            return cmd_train(argv[1:])
        if command == "eval":
            return cmd_eval(argv[1:])
        parser = build_parser()
        args = _parse(parser, argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return 0 if not argv else 2
        _import_modules(args)
        return int(args.func(args) or 0)
    except HybridPGError as exc:
        print(f"error: {_name_command(str(exc), command)}", file=sys.stderr)
        return 2
    except OSError as exc:  # a full disk or read-only folder met somewhere unforeseen: still one line
        where = f" {exc.filename}" if exc.filename else ""
        print(f"error: {_name_command(f'cannot access{where}: {exc.strerror or exc}', command)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        # a local sweep stopped by SIGTERM raises a KeyboardInterrupt that carries 143
        print(f"interrupted: {exc}" if str(exc) else "interrupted", file=sys.stderr)
        return int(getattr(exc, "exit_code", 130))


def _name_command(message: str, command: str | None) -> str:
    """Prefix 'hybridpg COMMAND: ' so a log line says which subcommand failed (argparse's own
    messages already carry it)."""
    if command is None or message.startswith("hybridpg"):
        return message
    return f"hybridpg {command}: {message}"


if __name__ == "__main__":
    sys.exit(main())
