"""The fields every algorithm shares, and how config values are checked and parsed.

Validation happens in ``__post_init__`` so that a bad value is reported at construction, with one
line naming the field and the reason, long before any environment is built.
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from hybridpg.errors import ConfigError


def _require(ok: bool, name: str, value: Any, reason: str) -> None:
    if not ok:
        raise ConfigError(f"config field '{name}'={value!r}: {reason}")


#: sizes past these cannot be allocated or run on any machine this library targets; refused up front
_INT_CAP = 10**9
_INT_CAPS = {"n_steps": 10**8, "buffer_size": 10**8, "torch_threads": 1024, "num_envs": 4096, "batch_size": 10**7}
_WIDTH_CAP = 65536


def _f(default: Any, help: str) -> Any:
    """A config field with its one-line description (shown by ``hybridpg train --help``)."""
    if isinstance(default, dict):
        return field(default_factory=lambda: dict(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


#: fields every on-policy config carried before PPO's, PROPS's and ROS's configs held only their own
_RETIRED_ON_POLICY_FIELDS = frozenset({
    "behavior", "behavior_steps", "props_lr", "props_epochs", "props_minibatches", "props_clip",
    "props_lambda", "props_target_kl", "props_stale_reference", "ros_lr",
})


@dataclass
class BaseConfig:
    """Fields shared by every algorithm: environments, networks, logging and checkpoints."""

    algo: ClassVar[str] = "base"
    #: Box-only algorithms set this; checked against the env's action space.
    box_only: ClassVar[bool] = False

    num_envs: int = _f(1, "parallel envs; step counts are over all of them")
    async_envs: bool = _f(False, "step the envs in subprocesses (gymnasium AsyncVectorEnv)")
    gamma: float = _f(0.99, "discount factor")
    learning_rate: float = _f(3e-4, "Adam step size of the main networks")
    hidden_sizes: tuple[int, ...] = _f((64, 64), "hidden layer widths, e.g. 64,64")
    eval_freq: int = _f(10, "evaluate every this many updates (0: only at the end)")
    eval_episodes: int = _f(10, "deterministic episodes per evaluation")
    eval_every: float = _f(0.0, "evaluate each time this fraction of the budget has passed (e.g. 0.1: at 10%, 20%, "
                                "...), instead of by eval_freq; 0: use eval_freq")
    checkpoint_freq: int = _f(10, "write checkpoints/latest.pt every this many updates (0: only at the end)")
    torch_threads: int = _f(1, "torch intra-op threads")
    device: str = _f("cpu", "cpu, cuda or auto")
    # saved with the run, so resume, evaluation and load rebuild the same env
    env_kwargs: dict[str, Any] = _f({}, "gym.make keywords, e.g. ctrl_cost_weight=0.5,frame_skip=4")

    def __post_init__(self) -> None:
        self.hidden_sizes = tuple(int(h) for h in self.hidden_sizes)
        self._check_ranges()
        self.validate()

    def _check_ranges(self) -> None:
        """Every number finite and of a size this library can run, before any field's own rule."""
        hints = typing.get_type_hints(type(self))
        for f in fields(self):
            value, kind = getattr(self, f.name), hints[f.name]
            if isinstance(value, bool) or value is None:
                continue
            if isinstance(value, float) or kind in (float, float | None):
                ok = isinstance(value, int | float) and math.isfinite(value)
                _require(ok, f.name, value, "must be a finite number")
            elif isinstance(value, int):
                cap = _INT_CAPS.get(f.name, _INT_CAP)
                _require(-cap <= value <= cap, f.name, value, f"must be at most {cap:,} in size")
        for name in ("hidden_sizes", "policy_hidden_sizes"):
            widths = getattr(self, name, ())
            _require(all(w <= _WIDTH_CAP for w in widths), name, widths, f"layer widths must be at most {_WIDTH_CAP:,}")

    def validate(self) -> None:
        root = getattr(self, "offline_root", None)
        if isinstance(root, str) and root:  # stored absolute: resume and eval may run from another folder
            object.__setattr__(self, "offline_root", os.path.abspath(os.path.expanduser(root)))
        _require(self.num_envs >= 1, "num_envs", self.num_envs, "must be >= 1")
        _require(0.0 < self.gamma <= 1.0, "gamma", self.gamma, "must be in (0, 1]")
        _require(
            math.isfinite(self.learning_rate) and self.learning_rate > 0,
            "learning_rate",
            self.learning_rate,
            "must be > 0",
        )
        _require(
            len(self.hidden_sizes) >= 1 and all(h >= 1 for h in self.hidden_sizes),
            "hidden_sizes",
            self.hidden_sizes,
            "must be a non-empty list of positive layer widths",
        )
        _require(self.eval_freq >= 0, "eval_freq", self.eval_freq, "must be >= 0 (0 disables evaluation)")
        _require(self.eval_episodes >= 1, "eval_episodes", self.eval_episodes, "must be >= 1")
        _require(0.0 <= self.eval_every <= 1.0, "eval_every", self.eval_every, "must be a fraction in [0, 1]")
        _require(
            self.checkpoint_freq >= 0, "checkpoint_freq", self.checkpoint_freq, "must be >= 0 (0 = final only)"
        )
        _require(self.torch_threads >= 1, "torch_threads", self.torch_threads, "must be >= 1")
        _require(self.device in ("cpu", "cuda", "auto"), "device", self.device, "must be cpu, cuda or auto")
        _require(
            isinstance(self.env_kwargs, dict) and all(isinstance(k, str) and k for k in self.env_kwargs),
            "env_kwargs",
            self.env_kwargs,
            "must be a mapping of keyword names to values, e.g. ctrl_cost_weight=0.5,frame_skip=4",
        )

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["hidden_sizes"] = list(self.hidden_sizes)
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> BaseConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            owners = sorted(c.algo for c in _concrete_configs() if unknown[0] in c.__dataclass_fields__)
            where = f" (a field of {', '.join(owners)})" if owners else ""
            raise ConfigError(f"{cls.algo} has no config field '{unknown[0]}'{where}"
                              + (f"; also unknown: {', '.join(unknown[1:])}" if unknown[1:] else ""))
        coerced = {k: coerce_field(cls, k, v) for k, v in values.items()}
        return cls(**coerced)

    @classmethod
    def from_saved(cls, values: dict[str, Any]) -> BaseConfig:
        """A config read back from a run (config.yaml, a checkpoint). Runs written before each
        on-policy method kept only its own fields carry PROPS's and ROS's fields too; those that
        this method does not have are dropped, as that layout ignored them."""
        own = {f.name for f in fields(cls)}
        kept = {k: v for k, v in values.items() if k in own or k not in _RETIRED_ON_POLICY_FIELDS}
        return cls.from_dict(kept)


def _concrete_configs() -> list[type[BaseConfig]]:
    """Every algorithm's config class: the leaves below BaseConfig (OnPolicyConfig is shared, no algorithm's)."""
    found, todo = [], list(BaseConfig.__subclasses__())
    while todo:
        cls = todo.pop()
        children = cls.__subclasses__()
        todo.extend(children)
        if not children:
            found.append(cls)
    return found


def coerce_field(cls: type[BaseConfig], name: str, value: Any) -> Any:
    """Turn a string from the CLI or YAML into the field's declared type, with a clear error."""
    hints = typing.get_type_hints(cls)
    if name not in hints:
        raise ConfigError(f"unknown config field '{name}' for {cls.algo}")
    target = hints[name]
    if target == dict[str, Any]:
        return _env_kwargs(name, value)
    if not isinstance(value, str):
        if target == tuple[int, ...] and isinstance(value, list | tuple):
            return tuple(int(v) for v in value)
        if target == tuple[int, ...]:  # e.g. `hidden_sizes: 64` in YAML
            raise ConfigError(f"config field '{name}'={value!r}: must be a list of integers, e.g. 64,64")
        if target is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        return value
    text = value.strip()
    try:
        origin = typing.get_origin(target)
        if origin in (types.UnionType, typing.Union):
            args = [a for a in typing.get_args(target) if a is not type(None)]
            if text.lower() in ("none", "null", ""):
                return None
            target = args[0]
        if target is bool:
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError("expected true or false")
        if target is int:
            try:
                return int(text)
            except ValueError:
                as_float = float(text)  # accept 1e5 style, but only for whole numbers
                if not as_float.is_integer():
                    raise
                return int(as_float)
        if target is float:
            return float(text)
        if target == tuple[int, ...]:
            return tuple(int(p) for p in text.replace("(", "").replace(")", "").split(",") if p.strip())
        return text
    except ValueError as exc:
        kind = getattr(target, "__name__", target)
        raise ConfigError(f"config field '{name}'={value!r}: not a valid {kind}") from exc


def parse_key_values(items: Iterable[str], what: str) -> dict[str, Any]:
    """``key=value`` items (env keywords from the CLI). A value becomes an int, float, bool or None
    where it reads as one (``1e-3`` is a float, ``false`` a bool), and stays text otherwise."""
    out: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in items)):
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{what}: {item!r} is not key=value")
        out[key.strip()] = _scalar(text.strip())
    return out


def _scalar(text: str) -> Any:
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return {"true": True, "false": False, "none": None, "null": None}.get(text.lower(), text)


def _env_kwargs(name: str, value: Any) -> dict[str, Any]:
    """A mapping as it is (YAML, the API) or ``key=value,key=value`` text."""
    if isinstance(value, dict):
        return dict(value)
    if not isinstance(value, str):
        raise ConfigError(f"config field '{name}'={value!r}: must be a mapping, e.g. key=value,key=value")
    return parse_key_values(value.split(","), f"config field '{name}'={value!r}")


