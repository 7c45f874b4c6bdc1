"""``hybridpg train``: a fresh run in a new folder, or ``--resume`` of an existing one."""

from __future__ import annotations

import argparse
import shlex
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hybridpg.cli.parsing import (
    ArgumentParser,
    add_config_fields,
    add_import_option,
    algorithms,
    import_modules,
    step_count,
)
from hybridpg.cli.run_folders import (
    check_fresh,
    check_writable,
    is_finished,
    read_run_config,
    train_and_summarize,
)
from hybridpg.errors import HybridPGError


def _train_parser(algo: str) -> argparse.ArgumentParser:
    algos = algorithms()
    parser = ArgumentParser(prog="hybridpg train", description="Train an agent and write a run folder.")
    parser.add_argument("--algo", default=algo, choices=sorted(algos), help="algorithm (default: %(default)s)")
    parser.add_argument("--env", default="CartPole-v1", help="Gymnasium id (default: %(default)s)")
    parser.add_argument(
        "--total-timesteps", type=step_count, default=100_000,
        help="env steps, e.g. 1e5 (default: %(default)s); with --resume: the run's new total (default: its own)",
    )
    parser.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    parser.add_argument(
        "--seeds", default=None, metavar="SEEDS",
        help="train several seeds in one process (ppo, ppo-buffer, props, ros): a count (10), a list (0,3,7) or a "
             "range (5-9); each seed gets its own run folder RUN_DIR/seedK",
    )
    parser.add_argument("--run-dir", type=Path, default=None, help="run folder (default: runs/ALGO-ENV-sSEED-TIME)")
    parser.add_argument(
        "--resume",
        type=Path,
        default=None,
        metavar="RUN_DIR",
        help="continue a run from its latest checkpoint up to its total_timesteps, or up to --total-timesteps N "
             "(extends a finished run; the learning-rate schedule then anneals to 0 at N); the run keeps its own "
             "settings: only --total-timesteps, --progress and --import may be given with it",
    )
    parser.add_argument(
        "--progress", choices=["auto", "on", "off"], default="auto",
        help="auto: a bar on a terminal, else a line every $HYBRIDPG_PROGRESS_SECONDS (30) s; on: bar; off: none"
    )
    add_import_option(parser)
    add_config_fields(parser, algos[algo].config_cls)
    return parser


def cmd_train(argv: Sequence[str]) -> int:
    pre = ArgumentParser(add_help=False)
    pre.add_argument("--algo", default="ppo")
    known, _ = pre.parse_known_args(argv)
    algos = algorithms()
    if known.algo not in algos:
        raise HybridPGError(f"unknown algorithm '{known.algo}'; choose from {', '.join(sorted(algos))}")
    parser = _train_parser(known.algo)
    args, extra = parser.parse_known_args(argv)
    if extra:
        if args.resume is not None:
            _refuse_other_algo_fields(extra)
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    import_modules(args)
    progress = {"auto": None, "on": True, "off": False}[args.progress]
    agent_cls = algos[args.algo]
    if args.resume is not None:
        given = _given_options(known.algo, argv)
        total = given.pop("--total-timesteps", (None, None))[1]
        return _resume(args.resume, progress, given, total)
    overrides = {k[4:]: v for k, v in vars(args).items() if k.startswith("cfg_") and v is not None}
    if args.seeds is not None:
        from hybridpg.cli.train_seeds import train_seeds
        from hybridpg.experiments.spec_file import parse_seeds

        if "--seed" in argv or any(a.startswith("--seed=") for a in argv):
            raise HybridPGError("give --seed or --seeds, not both")
        return train_seeds(args, parse_seeds(args.seeds), overrides, progress)
    run_dir = (
        args.run_dir
        or Path("runs") / f"{args.algo}-{args.env.replace('/', '_')}-s{args.seed}-{time.strftime('%Y%m%d-%H%M%S')}"
    )
    check_fresh(run_dir)
    if args.total_timesteps < 1:
        raise HybridPGError(f"--total-timesteps={args.total_timesteps}: must be >= 1")
    agent = agent_cls(args.env, seed=args.seed, **overrides)
    try:
        check_writable(run_dir)
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
            check_fresh(run_dir)  # again, now that no other trainer can start here
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


def _learn(agent: Any, train: Callable[[], Any], run_dir: Path) -> int:
    return train_and_summarize(agent, train, [(agent, run_dir)])


# what --resume may be given along (and --total-timesteps): everything else is the run's own (config.yaml)
WITH_RESUME = frozenset({"resume", "progress", "imports"})


def _given_options(algo: str, argv: Sequence[str]) -> dict[str, tuple[str, Any]]:
    """{flag: (dest, value)} for the options argv gives explicitly (not their defaults)."""
    probe = _train_parser(algo)
    for action in probe._actions:
        action.default = argparse.SUPPRESS
    given, _ = probe.parse_known_args(argv)
    flags = {a.dest: a.option_strings[-1] for a in probe._actions if a.option_strings}  # the --long form
    return {flags[dest]: (dest, value) for dest, value in vars(given).items() if dest not in WITH_RESUME}


def _refuse_other_algo_fields(extra: Sequence[str]) -> None:
    """An option of another algorithm's config: refused like the run's own fields, not 'unrecognized'."""
    import dataclasses

    fields = {f"--{f.name.replace('_', '-')}" for a in algorithms().values() for f in dataclasses.fields(a.config_cls)}
    for arg in extra:
        if arg.split("=", 1)[0] in fields:
            raise HybridPGError(_refusal([arg.split("=", 1)[0]]))


def _refusal(flags: Sequence[str]) -> str:
    return f"--resume continues the run's own settings; {', '.join(flags)} cannot be changed"


def _check_unchanged(doc: dict[str, Any], given: dict[str, tuple[str, Any]]) -> None:
    """Refuse options --resume cannot honour; one equal to the run's own value is harmless."""
    from hybridpg.config import coerce_field

    refused = []
    config = doc["config_obj"]
    for flag, (dest, value) in given.items():
        if dest in ("algo", "env", "seed"):
            same = value == doc[dest]
        elif dest.startswith("cfg_"):
            try:
                # through the config, so a value it normalizes (a relative offline_root) compares as stored
                coerced = {dest[4:]: coerce_field(type(config), dest[4:], value)}
                same = getattr(type(config).from_dict({**config.to_dict(), **coerced}), dest[4:]) == getattr(
                    config, dest[4:])
            except (HybridPGError, TypeError, ValueError, AttributeError):
                same = False  # a field this algorithm lacks, or a value it could not take
        else:
            same = False  # --run-dir: the folder is the one --resume names
        if not same:
            refused.append(flag)
    if refused:
        raise HybridPGError(_refusal(refused))


def _resume(
    run_dir: Path, progress: bool | None, given: dict[str, tuple[str, Any]] | None = None, target: int | None = None
) -> int:
    from hybridpg.algorithms.base import Agent
    from hybridpg.training.folder import RunLock, is_dead_setup

    if not run_dir.is_dir():
        raise HybridPGError(f"{run_dir} is not a run folder" + (" (it is a file)" if run_dir.exists() else ""))
    from hybridpg.cli.train_seeds import batch_members, resume_seeds

    members = batch_members(run_dir)
    if members:  # a folder of seeds trained together (train --seeds): continue them together
        return resume_seeds(run_dir, members, progress, given or {}, target)
    if not (run_dir / "config.yaml").exists():
        if is_dead_setup(run_dir):
            raise HybridPGError(
                f"{run_dir} was interrupted while being set up (no config.yaml); "
                f"start it again with: hybridpg train --run-dir {shlex.quote(str(run_dir))} ..."
            )
        raise HybridPGError(f"{run_dir} is not a run folder (no config.yaml)")
    lock = RunLock(run_dir)  # before reading: the holder could be rewriting what we would read
    try:
        return _resume_locked(run_dir, progress, Agent, given or {}, target)
    finally:
        lock.release()


def _resume_locked(
    run_dir: Path, progress: bool | None, agent_base: Any, given: dict[str, tuple[str, Any]], target: int | None
) -> int:
    doc = read_run_config(run_dir)
    _check_unchanged(doc, given)
    if target is not None and target < 1:
        raise HybridPGError(f"--total-timesteps={target}: must be >= 1")
    total = doc["total_timesteps"] if target is None else target
    latest = run_dir / "checkpoints" / "latest.pt"
    if not latest.exists():
        if (run_dir / "summary.json").exists() or (run_dir / "checkpoints" / "final.pt").exists():
            # a finished run that lost its checkpoint: retraining would silently replace its results
            raise HybridPGError(
                f"{run_dir} has finished (summary.json or final.pt) but checkpoints/latest.pt is missing; "
                "refusing to train it again from scratch"
            )
        # stopped before its first checkpoint: start over in the same folder, same settings
        algos = algorithms()
        agent = algos[doc["algo"]](doc["env"], seed=doc["seed"], config=doc["config_obj"])
        agent.restart_in(run_dir)
        _announce(run_dir, " (starting again: it stopped before its first checkpoint)")
        return _learn(agent, lambda: agent.learn(total, run_dir=run_dir, progress=progress), run_dir)
    agent = agent_base.load(latest)
    step, own = agent.global_step, max(doc["total_timesteps"], agent.horizon or 0)  # the checkpoint's horizon
    if target is None or own <= target < step:
        total = own  # the run's own budget (a target it has already passed asks for nothing new)
    elif target < step:
        agent.close()
        raise HybridPGError(
            f"--total-timesteps {target} is below the {step} steps {run_dir} has already trained; "
            f"give at least {step}"
        )
    else:
        agent.horizon = target  # the lr schedule anneals over the new total, from this step on
    finished = is_finished(run_dir)
    if step >= total:
        if finished:
            agent.close()
            print(f"{run_dir} already reached {total} steps; nothing to do")
            return 0
        # stopped after its last checkpoint but before summary.json: evaluate and write it now
        _announce(run_dir, f" (finishing: evaluating at step {step})")
        return _learn(agent, lambda: agent.finish_run(run_dir, progress=progress), run_dir)
    try:
        if total != doc["total_timesteps"]:
            _set_total(run_dir, total)
        if finished:  # in progress again: Run.finish writes a new summary.json at the new total
            (run_dir / "summary.json").unlink(missing_ok=True)
    except BaseException:
        agent.close()
        raise
    note = f"extending from step {step} to {total}" if finished else f"resuming at step {step} of {total}"
    _announce(run_dir, f" ({note})")
    return _learn(
        agent,
        lambda: agent.learn(total - step, run_dir=run_dir, progress=progress, reset=False, horizon=total),
        run_dir,
    )


def _set_total(run_dir: Path, total: int) -> None:
    """config.yaml's total_timesteps, replaced atomically: a plain --resume and compare see it."""
    import yaml

    from hybridpg.training.checkpoint import atomic_write_bytes

    path = run_dir / "config.yaml"
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))  # read_run_config has checked it
    doc["total_timesteps"] = total
    try:
        atomic_write_bytes(path, yaml.safe_dump(doc, sort_keys=False).encode())
    except OSError as exc:
        raise HybridPGError(f"cannot write {path}: {exc.strerror or exc}") from None
