"""A sweep's spec (algos x envs x seeds, settings, budgets, backend) and ROOT/sweep.yaml, its
record in the sweep folder (the spec, settings and commands), kept consistent."""

from __future__ import annotations

import dataclasses
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hybridpg.errors import ConfigError
from hybridpg.experiments.runs import RunSpec, run_dir_for
from hybridpg.experiments.spec_file import SpecFile

SWEEP_FILE = "sweep.yaml"


@dataclass
class SweepSpec:
    algos: list[str]
    envs: list[str]
    seeds: list[int]
    total_timesteps: int
    overrides: dict[str, str]
    root: Path
    workers: int = 1
    backend: str = "local"
    ray_address: str | None = None
    cpus_per_run: float = 1.0
    #: on-policy seeds of one setting trained together in one process (seeds as a batch dimension)
    seeds_per_process: int = 1
    #: a spec file's per-algo/env settings and budgets; ``total_timesteps`` > 0 overrides its budgets
    spec_file: SpecFile | None = None

    def budget(self, env: str) -> int:
        if self.spec_file is not None and self.total_timesteps <= 0:
            return self.spec_file.budget_for(env)
        return self.total_timesteps

    def settings(self, algo: str, env: str) -> dict[str, Any]:
        """The spec's settings for (algo, env), then each ``--set`` that this algorithm has."""
        from hybridpg.algorithms import ALGORITHMS

        layered = self.spec_file.settings_for(algo, env) if self.spec_file is not None else {}
        own = ALGORITHMS[algo].config_cls.__dataclass_fields__
        return {**layered, **{k: v for k, v in self.overrides.items() if k in own}}

    def runs(self) -> list[RunSpec]:
        from hybridpg.algorithms import ALGORITHMS, OnPolicyAgent

        out = []
        for env in self.envs:
            for algo in self.algos:
                specs = [RunSpec(algo, env, seed, self.budget(env), str(run_dir_for(self.root, env, algo, seed)),
                                 self.settings(algo, env)) for seed in self.seeds]
                size = self.seeds_per_process if issubclass(ALGORITHMS[algo], OnPolicyAgent) else 1
                if size == 1:
                    out += specs
                    continue
                for i in range(0, len(specs), size):
                    group = specs[i : i + size]
                    batch = [(s.seed, s.run_dir) for s in group] if len(group) > 1 else []
                    out.append(dataclasses.replace(group[0], batch=batch))
        return out

    def command(self) -> str:
        """The ``hybridpg sweep`` command line that reproduces this sweep."""
        if self.spec_file is not None:
            args = ["hybridpg", "sweep", "--spec", self.spec_file.path, "--seeds", ",".join(map(str, self.seeds))]
            if self.total_timesteps > 0:
                args += ["--total-timesteps", str(self.total_timesteps)]
        else:
            args = ["hybridpg", "sweep", "--algos", ",".join(self.algos), "--envs", ",".join(self.envs),
                    "--seeds", ",".join(map(str, self.seeds)), "--total-timesteps", str(self.total_timesteps)]
        for key, value in self.overrides.items():
            args += ["--set", f"{key}={value}"]
        args += ["--out", str(self.root), "--workers", str(self.workers), "--backend", self.backend]
        if self.ray_address:
            args += ["--ray-address", self.ray_address]
        if self.seeds_per_process != 1:
            args += ["--seeds-per-process", str(self.seeds_per_process)]
        if self.backend == "ray" and self.cpus_per_run != 1.0:
            args += ["--cpus-per-run", f"{self.cpus_per_run:g}"]
        return shlex.join(args)


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
