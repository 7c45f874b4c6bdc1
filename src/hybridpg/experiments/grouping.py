"""Which runs are the same setting: only seeds of one setting are pooled into a table row.

A setting is the algo, the env, the budget (``total_timesteps``) and every config field that can
change what is learned, ``env_kwargs`` included. Rows of one (env, algo) are labelled with the
fields where the settings of that algo differ, e.g. ``ppo [total_timesteps=3000]``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from hybridpg.experiments.records import RunData

#: config fields that do not change what is learned, so runs differing only in them are one setting:
#: when and how precisely evaluations, checkpoints and diagnostics happen, where the run computes,
#: and where the dataset is stored (not which one it is)
IGNORED_FIELDS = frozenset({
    "eval_freq", "eval_every", "eval_episodes", "checkpoint_freq", "log_freq", "se_freq", "se_epochs",
    "torch_threads", "device", "async_envs", "compile", "save_replay_buffer", "offline_root",
})
#: shown for an env keyword that one setting passes and another does not
UNSET = "unset"


def _freeze(value: Any) -> Any:
    """A hashable value: YAML gives lists where the config has tuples."""
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((str(k), _freeze(v)) for k, v in value.items()))
    return value


def _saved_config(algo: str, config: dict[str, Any]) -> dict[str, Any]:
    """The config as the algo reads it: fields an older version did not write take their default
    (the behaviour it had), and fields this algo does not have (older layouts) are dropped."""
    from hybridpg.config import CONFIGS

    cls = CONFIGS.get(algo)
    if cls is None:  # an algo this version does not know: take the record as written
        return dict(config)
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in config:
            out[f.name] = config[f.name]
        elif f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


def setting_fields(run: RunData) -> dict[str, Any]:
    """The fields that define a run's setting besides algo and env, in display order."""
    out: dict[str, Any] = {"total_timesteps": run.total_timesteps}
    env_kwargs: dict[str, Any] = {}
    for name, value in _saved_config(run.algo, run.config).items():
        if name in IGNORED_FIELDS:
            continue
        if name == "env_kwargs" and isinstance(value, dict):
            env_kwargs = value
            continue
        out[name] = _freeze(value)
    # one entry per keyword, so a label names the keyword that differs, not the whole mapping
    out.update({f"env_kwargs.{k}": _freeze(v) for k, v in sorted(env_kwargs.items())})
    return out


@dataclass
class Setting:
    """The runs (seeds) of one setting on one env, and the row label it gets."""

    env: str
    algo: str
    fields: dict[str, Any]
    runs: list[RunData] = field(default_factory=list)
    label: str = ""

    @property
    def key(self) -> tuple[Any, ...]:
        return (self.env, self.algo, tuple(sorted(self.fields.items())))


def _show(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, tuple):
        return ",".join(_show(v) for v in value)
    return str(value)


def differing(field_sets: list[dict[str, Any]]) -> list[str]:
    """Fields whose value is not the same in every one of ``field_sets`` (first-seen order)."""
    names: list[str] = []
    for fields in field_sets:
        names += [n for n in fields if n not in names]
    return [n for n in names if len({repr(f.get(n, UNSET)) for f in field_sets}) > 1]


def label_settings(settings: list[Setting]) -> dict[str, list[str]]:
    """Label every setting. The fields named for an algo are those where two of its settings on
    one env differ; every env's rows of that algo name the same fields, so one label means one
    method across envs (what the aggregate over envs pools)."""
    by_env_algo: dict[tuple[str, str], list[Setting]] = {}
    for s in settings:
        by_env_algo.setdefault((s.env, s.algo), []).append(s)
    named: dict[str, list[str]] = {}
    for (_, algo), same in by_env_algo.items():
        names = named.setdefault(algo, [])
        names += [n for n in differing([s.fields for s in same]) if n not in names]
    for s in settings:
        names = named.get(s.algo, [])
        parts = [f"{n}={_show(s.fields.get(n, UNSET))}" for n in names]
        s.label = s.algo + (f" [{', '.join(parts)}]" if parts else "")
    return named


def _order(value: Any) -> tuple[int, float, str]:
    """Numbers in numeric order (3000 before 30000), everything else by its text."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (0, float(value), "")
    return (1, 0.0, _show(value))


def group_settings(runs: list[RunData]) -> dict[str, list[Setting]]:
    """``{env: [settings]}``, envs and settings sorted by name, each setting's runs by seed."""
    settings: dict[tuple[Any, ...], Setting] = {}
    for run in sorted(runs, key=lambda r: (r.env, r.algo, r.seed)):
        s = Setting(run.env, run.algo, setting_fields(run))
        settings.setdefault(s.key, s).runs.append(run)
    ordered = list(settings.values())
    named = label_settings(ordered)
    out: dict[str, list[Setting]] = {}
    for s in sorted(ordered, key=lambda s: (s.env, s.algo, [_order(s.fields.get(n)) for n in named[s.algo]])):
        out.setdefault(s.env, []).append(s)
    return out
