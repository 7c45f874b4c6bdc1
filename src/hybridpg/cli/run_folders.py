"""Run folders as the train command sees them: fresh or not, writable, finished, their config.yaml."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hybridpg.cli.parsing import algorithms
from hybridpg.errors import ConfigError, HybridPGError


def check_fresh(run_dir: Path) -> None:
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
    algos = algorithms()
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


def is_finished(run_dir: Path) -> bool:
    import json

    try:
        summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(summary, dict) and summary.get("status") == "finished"


def check_writable(run_dir: Path) -> None:
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


def print_summary(agent: Any, run_dir: Path) -> None:
    import json

    summary = json.loads((run_dir / "summary.json").read_text())
    ret = "n/a" if summary["eval_return_mean"] is None else f"{summary['eval_return_mean']:.1f}"
    sps = "" if summary["sps"] is None else f", {summary['sps']:.0f} sps"
    print(
        f"{summary['algo']} on {summary['env']} seed {summary['seed']}: {summary['global_step']} steps, "
        f"eval return {ret}{sps} -> {run_dir}"
    )


def train_and_summarize(owner: Any, train: Callable[[], Any], runs: Sequence[tuple[Any, Path]]) -> int:
    """Train; SIGINT/SIGTERM checkpoint first and exit 128+signal with a one-line resume hint.
    ``owner`` (an agent or a seed batch) is closed either way; then each run's summary is printed."""
    from hybridpg.training.run import TrainingInterrupted

    try:
        train()
    except TrainingInterrupted as exc:
        print(exc, file=sys.stderr)
        return exc.exit_code
    finally:
        owner.close()
    for agent, run_dir in runs:
        print_summary(agent, run_dir)
    return 0
