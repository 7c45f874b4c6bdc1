"""Sweep spec files: methods, envs, seeds, budgets and settings per algo, per env and per algo x env.

A spec is YAML, in the spirit of rl-zoo's hyperparameter files::

    algos: [props, ppo-buffer, ppo]
    envs: [Hopper-v5, CartPole-v1]
    seeds: 10                       # a count, a list [0, 3] or a range "5-9"
    total_timesteps:                # an int for every env, or a mapping with an optional default
      default: 200000
      CartPole-v1: 50000
    settings: {ent_coef: 0.01}      # every run
    algo_settings:
      ppo: {buffer_batches: 1}
    env_settings:
      CartPole-v1: {n_minibatches: 8}
    algo_env_settings:
      props:
        Hopper-v5: {n_steps: 2048, behavior_steps: 256}

Later layers win: settings < algo_settings < env_settings < algo_env_settings < ``--set``. Every
key must be a config field of the algorithm it reaches and every value must pass that config's
validation; both are checked for every (algo, env) before any run starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from hybridpg.errors import ConfigError

LAYERS = ("settings", "algo_settings", "env_settings", "algo_env_settings")
KEYS = {"description", "algos", "envs", "seeds", "total_timesteps", *LAYERS}
#: specs shipped with the package, by name (``hybridpg sweep --spec props-paper``)
BUNDLED = {"props-paper": "props_paper.yaml"}


@dataclass
class SpecFile:
    """A parsed spec; ``runs`` of a sweep come from :meth:`settings_for` and :meth:`budget_for`."""

    path: str
    algos: list[str]
    envs: list[str]
    seeds: list[int]
    budgets: dict[str, int]
    layers: dict[str, dict[str, Any]] = field(default_factory=dict)
    description: str = ""

    def settings_for(self, algo: str, env: str) -> dict[str, Any]:
        merged: dict[str, Any] = dict(self.layers.get("settings", {}))
        merged.update(self.layers.get("algo_settings", {}).get(algo, {}))
        merged.update(self.layers.get("env_settings", {}).get(env, {}))
        merged.update(self.layers.get("algo_env_settings", {}).get(algo, {}).get(env, {}))
        return merged

    def budget_for(self, env: str) -> int:
        return self.budgets.get(env, self.budgets["default"])

    def to_dict(self) -> dict[str, Any]:
        """The resolved spec, as recorded in the sweep's ``sweep.yaml``."""
        return {"algos": self.algos, "envs": self.envs, "budgets": self.budgets, **self.layers}


def resolve_path(name_or_path: str) -> Path:
    """A bundled spec's name, or a file path."""
    if name_or_path in BUNDLED:
        return Path(str(resources.files("hybridpg.experiments.specs").joinpath(BUNDLED[name_or_path])))
    path = Path(name_or_path).expanduser()
    if not path.is_file():
        bundled = ", ".join(sorted(BUNDLED))
        raise ConfigError(f"--spec {name_or_path}: no such file (bundled specs: {bundled})")
    return path


def load_spec(name_or_path: str) -> SpecFile:
    """Parse and fully validate a spec file; every problem is one ``ConfigError`` line."""
    path = resolve_path(name_or_path)
    where = f"spec {path}"
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        detail = " ".join(str(exc).split())
        raise ConfigError(f"{where}: cannot read it as YAML: {detail}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{where}: expected a mapping with algos, envs, seeds and total_timesteps")
    unknown = sorted(set(map(str, doc)) - KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(KEYS))}")
    missing = [key for key in ("algos", "envs", "total_timesteps") if key not in doc]
    if missing:
        raise ConfigError(f"{where}: missing {', '.join(missing)}")
    algos, envs = _names(doc["algos"], "algos", where), _names(doc["envs"], "envs", where)
    seeds = parse_seeds(str(doc.get("seeds", 5)).strip("[]").replace(" ", ""))
    shown = name_or_path if name_or_path in BUNDLED else str(path)
    spec = SpecFile(shown, algos, envs, seeds, _budgets(doc["total_timesteps"], envs, where),
                    description=str(doc.get("description", "")))
    for layer in LAYERS:
        spec.layers[layer] = _layer(doc.get(layer) or {}, layer, algos, envs, where)
    validate_settings(spec, {}, where)
    return spec


def parse_seeds(text: str) -> list[int]:
    """``10`` -> seeds 0..9; ``3,7`` -> those seeds; ``5-9`` -> 5..9."""
    try:
        if "," in text:
            seeds = [int(s) for s in text.split(",") if s.strip()]
        elif "-" in text.strip()[1:]:
            lo, hi = text.split("-", 1)
            seeds = list(range(int(lo), int(hi) + 1))
        else:
            seeds = list(range(int(text)))
    except ValueError:
        raise ConfigError(f"--seeds={text!r}: give a count (10), a list (0,3,7) or a range (5-9)") from None
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds={text!r}: need distinct, non-negative seeds")
    return seeds


def validate_settings(spec: SpecFile, extra: dict[str, Any], where: str) -> None:
    """Build each (algo, env)'s config from its merged settings: unknown fields and bad values fail here."""
    from hybridpg.algorithms import ALGORITHMS

    for algo in spec.algos:
        config_cls = ALGORITHMS[algo].config_cls
        for env in spec.envs:
            settings = {**spec.settings_for(algo, env), **extra}
            foreign = sorted(set(settings) - set(config_cls.__dataclass_fields__))
            if foreign:
                raise ConfigError(f"{where}: {algo} has no setting {foreign[0]!r} (for {env})")
            try:
                config_cls.from_dict(settings)
            except ConfigError as exc:
                raise ConfigError(f"{where}: {algo} on {env}: {exc}") from None


def _names(value: Any, key: str, where: str) -> list[str]:
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",")]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{where}: {key} must be a non-empty list of names")
    if len(set(value)) != len(value):
        raise ConfigError(f"{where}: {key} repeats an entry")
    if key == "algos":
        from hybridpg.algorithms import ALGORITHMS

        bad = [v for v in value if v not in ALGORITHMS]
        if bad:
            raise ConfigError(f"{where}: unknown algorithm {bad[0]!r}; choose from {', '.join(sorted(ALGORITHMS))}")
    return list(value)


def _budget(value: Any, what: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value) or value < 1:
        raise ConfigError(f"{where}: total_timesteps {what}={value!r} must be a whole number >= 1")
    return int(value)


def _budgets(value: Any, envs: list[str], where: str) -> dict[str, int]:
    if not isinstance(value, dict):
        return {"default": _budget(value, "", where)}
    out = {str(k): _budget(v, f"[{k}]", where) for k, v in value.items()}
    stray = sorted(set(out) - set(envs) - {"default"})
    if stray:
        raise ConfigError(f"{where}: total_timesteps names {stray[0]!r}, which is not in envs")
    if "default" not in out and set(envs) - set(out):
        raise ConfigError(f"{where}: total_timesteps has no default and no entry for {sorted(set(envs) - set(out))[0]}")
    return out


def _layer(value: Any, layer: str, algos: list[str], envs: list[str], where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: {layer} must be a mapping")
    if layer == "settings":
        return _fields(value, layer, where)
    scope = {"algo_settings": algos, "env_settings": envs, "algo_env_settings": algos}[layer]
    out: dict[str, Any] = {}
    for name, inner in value.items():
        if name not in scope:
            kind = "algos" if layer != "env_settings" else "envs"
            raise ConfigError(f"{where}: {layer} names {name!r}, which is not in {kind}")
        if not isinstance(inner, dict):
            raise ConfigError(f"{where}: {layer}.{name} must be a mapping")
        if layer == "algo_env_settings":
            stray = sorted(set(inner) - set(envs))
            if stray:
                raise ConfigError(f"{where}: algo_env_settings.{name} names {stray[0]!r}, which is not in envs")
            out[name] = {env: _fields(inner[env] or {}, f"{layer}.{name}.{env}", where) for env in inner}
        else:
            out[name] = _fields(inner, f"{layer}.{name}", where)
    return out


def _fields(value: Any, what: str, where: str) -> dict[str, Any]:
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ConfigError(f"{where}: {what} must map config field names to values")
    return {key.replace("-", "_"): item for key, item in value.items()}
