"""ROOT/sweep.yaml: what a sweep folder holds (its spec, settings and commands), kept consistent."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import yaml

from hybridpg.errors import ConfigError


class SweepSpec(Protocol):
    """What the file records of a sweep (``experiments.sweep.SweepSpec``)."""

    algos: list[str]
    envs: list[str]
    seeds: list[int]
    total_timesteps: int
    overrides: dict[str, str]
    root: Path
    workers: int
    backend: str
    spec_file: Any

    def budget(self, env: str) -> int: ...

    def settings(self, algo: str, env: str) -> dict[str, Any]: ...

    def command(self) -> str: ...

SWEEP_FILE = "sweep.yaml"


def write_sweep_file(spec: SweepSpec) -> None:
    """Create or extend ROOT/sweep.yaml; refuse to mix runs of one (algo, env) with different settings.

    A plain sweep keeps one budget and one set of overrides per folder; a spec sweep records each
    (algo, env)'s budget and merged settings, so envs can be added later (or retuned ones that have
    no runs yet) while a changed setting for runs already there is refused.
    """
    path = spec.root / SWEEP_FILE
    doc: dict[str, Any] = {}
    mine = {env: {algo: {"total_timesteps": spec.budget(env), **spec.settings(algo, env)} for algo in spec.algos}
            for env in spec.envs}
    if path.exists():
        doc = yaml.safe_load(path.read_text()) or {}
        checks = [("run_settings", None)] if spec.spec_file is not None else [
            ("total_timesteps", spec.total_timesteps), ("overrides", spec.overrides)]
        for key, value in checks:
            if key == "run_settings":
                _check_run_settings(spec.root, doc.get(key) or {}, mine)
            elif doc.get(key) != value:
                raise ConfigError(
                    f"{spec.root} holds a sweep with {key}={doc.get(key)!r}, not {value!r}; use another --out"
                )
    recorded = doc.get("run_settings") or {}
    for env, by_algo in mine.items():
        recorded.setdefault(env, {}).update(by_algo)
    merged = {
        "algos": _union(doc.get("algos", []), spec.algos),
        "envs": _union(doc.get("envs", []), spec.envs),
        "seeds": sorted(set(doc.get("seeds", [])) | set(spec.seeds)),
        "total_timesteps": spec.total_timesteps,
        "overrides": dict(spec.overrides),
        **({"run_settings": recorded} if spec.spec_file is not None else {}),
        "backend": spec.backend,
        "workers": spec.workers,
        "commands": _union(doc.get("commands", []), [spec.command()]),
    }
    try:
        spec.root.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".yaml.tmp")
        tmp.write_text(yaml.safe_dump(merged, sort_keys=False))
        tmp.replace(path)
    except OSError as exc:
        raise ConfigError(f"cannot write to sweep folder {spec.root}: {exc.strerror or exc}") from None


def _check_run_settings(root: Path, recorded: dict[str, Any], mine: dict[str, dict[str, Any]]) -> None:
    for env, by_algo in mine.items():
        for algo, settings in by_algo.items():
            before = (recorded.get(env) or {}).get(algo)
            if before is not None and before != settings:
                key = next(k for k in sorted(set(before) | set(settings)) if before.get(k) != settings.get(k))
                raise ConfigError(f"{root} holds {algo} runs on {env} with {key}={before.get(key)!r}, not "
                                  f"{settings.get(key)!r}; use another --out")


def _union(old: list[Any], new: list[Any]) -> list[Any]:
    return list(old) + [x for x in new if x not in old]
